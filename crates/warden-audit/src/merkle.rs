//! The Merkle tree of RFC 6962 §2.1 over the log's leaves: tree heads, inclusion proofs
//! (audit paths) and consistency proofs, and the checks a party holding only signed tree
//! heads runs on them.
//!
//! Nothing here does I/O. The hashes of complete, aligned subtrees come from a
//! [`SubtreeSource`]: the store answers from its table of interior nodes (written with the
//! leaves, so a proof costs O(log² n) lookups and never needs every leaf in memory), tests
//! answer from a slice. [`Frontier`] computes a tree head while leaves stream past, in
//! O(log n) memory; it is how the writer knows its root and how verification recomputes
//! every root from the stored bytes.

use sha2::{Digest as _, Sha256};

/// A SHA-256 output: a leaf, node, root or chain hash.
pub type Hash = [u8; 32];

/// The hash of the empty tree: SHA-256 of no bytes.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// A leaf's hash: SHA-256(0x00 || bytes). The prefix keeps a leaf from passing as a node.
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(bytes);
    h.finalize().into()
}

/// An interior node's hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly below `n` (`n` ≥ 2): where RFC 6962 splits a tree.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Where the hashes of complete subtrees come from.
pub trait SubtreeSource {
    /// The error a lookup can fail with.
    type Error;
    /// The hash of the complete subtree of `2^level` leaves starting at leaf
    /// `index << level`; level 0 is a leaf hash.
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// Leaf hashes held in memory answer for any subtree (computed on demand: for tests and
/// small trees).
impl SubtreeSource for [Hash] {
    type Error = std::convert::Infallible;

    fn perfect(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        let width = 1u64 << level;
        let start = usize::try_from(index * width).unwrap_or(usize::MAX);
        let end = usize::try_from((index + 1) * width).unwrap_or(usize::MAX);
        let mut f = Frontier::default();
        for leaf in self.get(start..end).unwrap_or_default() {
            f.push(*leaf, |_, _, _| {});
        }
        Ok(f.root())
    }
}

/// MTH(D[lo:hi]). Every range RFC 6962's recursion visits starts at a multiple of a power
/// of two at least its size, so its complete subtrees are aligned and come straight from
/// `src`; the general split below only guards against a caller passing another range.
pub fn subtree_root<S: SubtreeSource + ?Sized>(
    src: &S,
    lo: u64,
    hi: u64,
) -> Result<Hash, S::Error> {
    let size = hi.saturating_sub(lo);
    if size == 0 {
        return Ok(empty_root());
    }
    if size.is_power_of_two() && lo & (size - 1) == 0 {
        return src.perfect(size.trailing_zeros(), lo / size);
    }
    let k = if size.is_power_of_two() {
        size / 2
    } else {
        split(size)
    };
    let left = subtree_root(src, lo, lo + k)?;
    let right = subtree_root(src, lo + k, hi)?;
    Ok(node_hash(&left, &right))
}

/// The tree head of the first `size` leaves.
pub fn root<S: SubtreeSource + ?Sized>(src: &S, size: u64) -> Result<Hash, S::Error> {
    subtree_root(src, 0, size)
}

/// The audit path of leaf `index` in the tree of the first `size` leaves (RFC 6962 §2.1.1,
/// PATH), leaf-side first. `None` when `index` is not below `size`.
pub fn inclusion_proof<S: SubtreeSource + ?Sized>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Option<Vec<Hash>>, S::Error> {
    if index >= size {
        return Ok(None);
    }
    let mut path = Vec::new();
    path_into(src, index, 0, size, &mut path)?;
    Ok(Some(path))
}

fn path_into<S: SubtreeSource + ?Sized>(
    src: &S,
    m: u64,
    lo: u64,
    hi: u64,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = hi - lo;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    // The sibling goes after the deeper elements: recurse first, then push.
    if m < k {
        path_into(src, m, lo, lo + k, out)?;
        out.push(subtree_root(src, lo + k, hi)?);
    } else {
        path_into(src, m - k, lo + k, hi, out)?;
        out.push(subtree_root(src, lo, lo + k)?);
    }
    Ok(())
}

/// The proof that the tree of the first `old` leaves is a prefix of the tree of the first
/// `new` (RFC 6962 §2.1.2, PROOF). `None` unless `0 < old ≤ new`; empty when they are equal.
pub fn consistency_proof<S: SubtreeSource + ?Sized>(
    src: &S,
    old: u64,
    new: u64,
) -> Result<Option<Vec<Hash>>, S::Error> {
    if old == 0 || old > new {
        return Ok(None);
    }
    let mut proof = Vec::new();
    subproof_into(src, old, 0, new, true, &mut proof)?;
    Ok(Some(proof))
}

fn subproof_into<S: SubtreeSource + ?Sized>(
    src: &S,
    m: u64,
    lo: u64,
    hi: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = hi - lo;
    if m == n {
        // The old tree is this whole subtree: its root is known to the verifier only when
        // it is the old tree itself.
        if !whole {
            out.push(subtree_root(src, lo, hi)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof_into(src, m, lo, lo + k, whole, out)?;
        out.push(subtree_root(src, lo + k, hi)?);
    } else {
        subproof_into(src, m - k, lo + k, hi, false, out)?;
        out.push(subtree_root(src, lo, lo + k)?);
    }
    Ok(())
}

/// Checks an audit path: that `leaf` is leaf `index` of the tree of `size` leaves whose
/// head is `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    // Walk up from the leaf. `node` is the leaf's ancestor's index at the current level,
    // `last` the index of the right-most node at that level; a node with no right sibling
    // (node == last, even) is promoted unchanged, so the loop skips those levels.
    let (mut node, mut last) = (index, size - 1);
    let mut acc = *leaf;
    for sibling in path {
        if last == 0 {
            return false;
        }
        if node % 2 == 1 || node == last {
            acc = node_hash(sibling, &acc);
            while node % 2 == 0 && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            acc = node_hash(&acc, sibling);
        }
        node >>= 1;
        last >>= 1;
    }
    last == 0 && acc == *root
}

/// Checks a consistency proof: that the tree of `old` leaves with head `old_root` is a
/// prefix of the tree of `new` leaves with head `new_root`.
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> bool {
    if old == 0 || old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if proof.is_empty() {
        return false;
    }
    // When the old tree is a complete subtree on the new tree's left edge, its root is the
    // proof's implicit first element.
    let mut elements = proof.iter();
    let first = if old.is_power_of_two() {
        *old_root
    } else {
        match elements.next() {
            Some(h) => *h,
            None => return false,
        }
    };
    let (mut node, mut last) = (old - 1, new - 1);
    // Start at the lowest ancestor of the old tree's last leaf that is a left child or the
    // root of a complete subtree: the first element is that subtree's hash.
    while node % 2 == 1 {
        node >>= 1;
        last >>= 1;
    }
    // `old_acc` rebuilds the old root, `new_acc` the new one, from the same elements.
    let (mut old_acc, mut new_acc) = (first, first);
    for c in elements {
        if last == 0 {
            return false;
        }
        if node % 2 == 1 || node == last {
            old_acc = node_hash(c, &old_acc);
            new_acc = node_hash(c, &new_acc);
            while node % 2 == 0 && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            new_acc = node_hash(&new_acc, c);
        }
        node >>= 1;
        last >>= 1;
    }
    last == 0 && old_acc == *old_root && new_acc == *new_root
}

/// The right edge of a tree being built leaf by leaf: the roots of its complete subtrees,
/// largest first (one per bit set in the leaf count), so O(log n) hashes whatever n.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    /// `(level, hash)`; levels strictly decrease.
    stack: Vec<(u32, Hash)>,
    size: u64,
}

impl Frontier {
    /// Rebuilds the frontier of a tree of `size` leaves from its complete subtrees.
    pub fn load<S: SubtreeSource + ?Sized>(src: &S, size: u64) -> Result<Self, S::Error> {
        let mut stack = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            let width = 1u64 << level;
            if size & width != 0 {
                stack.push((level, src.perfect(level, start >> level)?));
                start += width;
            }
        }
        Ok(Frontier { stack, size })
    }

    /// The right edge as bytes: for each complete subtree, largest first, its level (one
    /// byte) and its hash. With the size, [`Frontier::from_bytes`] reads it back.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.stack.len() * 33);
        for (level, hash) in &self.stack {
            // Levels are below 64: a tree never holds 2^64 leaves.
            out.push(u8::try_from(*level).unwrap_or(u8::MAX));
            out.extend_from_slice(hash);
        }
        out
    }

    /// The frontier of a tree of `size` leaves stored as [`Frontier::to_bytes`] wrote it;
    /// `None` unless its subtrees are exactly those a tree of `size` leaves has.
    pub fn from_bytes(size: u64, bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(33) {
            return None;
        }
        let stack: Vec<(u32, Hash)> = bytes
            .chunks_exact(33)
            .map(|c| Some((u32::from(c[0]), Hash::try_from(&c[1..]).ok()?)))
            .collect::<Option<_>>()?;
        let expected = (0..64u32).rev().filter(|l| size & (1u64 << l) != 0);
        if !stack.iter().map(|(l, _)| *l).eq(expected) {
            return None;
        }
        Some(Frontier { stack, size })
    }

    /// How many leaves have been pushed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf. `on_node(level, index, hash)` is called for every complete subtree
    /// of two or more leaves the leaf completes, smallest first, so a store can keep them.
    pub fn push(&mut self, leaf: Hash, mut on_node: impl FnMut(u32, u64, &Hash)) {
        self.size += 1;
        let mut level = 0u32;
        let mut acc = leaf;
        while let Some(&(top_level, top)) = self.stack.last() {
            if top_level != level {
                break;
            }
            self.stack.pop();
            acc = node_hash(&top, &acc);
            level += 1;
            on_node(level, (self.size >> level) - 1, &acc);
        }
        self.stack.push((level, acc));
    }

    /// The tree head of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

#[cfg(test)]
mod tests;
