//! The Merkle tree against RFC 6962's worked example of seven leaves, against the
//! definition written out naively, and property tests: every proof of every shape verifies,
//! and any change to a leaf, a root or a proof element makes it fail.

use proptest::prelude::*;

use super::*;

/// MTH straight from the definition, over a slice.
fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

fn leaves(n: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(format!("event {i}").as_bytes()))
        .collect()
}

#[test]
fn hashes_are_domain_separated() {
    assert_eq!(
        hex::encode(empty_root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    // SHA-256 of the single byte 0x00: the hash of an empty leaf.
    assert_eq!(
        hex::encode(leaf_hash(b"")),
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    );
    let l = leaf_hash(b"a");
    assert_ne!(node_hash(&l, &l), leaf_hash(&[l, l].concat()));
}

#[test]
fn splits_at_the_largest_power_of_two_below() {
    let cases = [
        (2, 1),
        (3, 2),
        (4, 2),
        (5, 4),
        (7, 4),
        (8, 4),
        (9, 8),
        (1 << 40, 1 << 39),
    ];
    for (n, k) in cases {
        assert_eq!(split(n), k, "n = {n}");
    }
}

/// RFC 6962 §2.1.3's example: seven leaves d0..d6, named a..f and j (d6) as there.
#[test]
fn rfc_6962_example_of_seven_leaves() {
    let d = leaves(7);
    let (a, b, c, dd, e, f, j) = (d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
    let g = node_hash(&a, &b);
    let h = node_hash(&c, &dd);
    let i = node_hash(&e, &f);
    let k = node_hash(&g, &h);
    let l = node_hash(&i, &j);
    let hash = node_hash(&k, &l);
    let src = d.as_slice();
    assert_eq!(root(src, 7).unwrap(), hash);
    assert_eq!(root(src, 4).unwrap(), k);
    assert_eq!(root(src, 3).unwrap(), node_hash(&g, &c));

    let path = |m| inclusion_proof(src, m, 7).unwrap().unwrap();
    assert_eq!(path(0), vec![b, h, l]);
    assert_eq!(path(3), vec![c, g, l]);
    assert_eq!(path(4), vec![f, j, k]);
    assert_eq!(path(6), vec![i, k]);

    let proof = |m| consistency_proof(src, m, 7).unwrap().unwrap();
    assert_eq!(proof(3), vec![c, dd, g, l]);
    assert_eq!(proof(4), vec![l]);
    assert_eq!(proof(6), vec![i, j, k]);
    for m in [3, 4, 6] {
        assert!(verify_consistency(
            m,
            7,
            &proof(m),
            &root(src, m).unwrap(),
            &hash
        ));
    }
    for m in [0, 3, 4, 6] {
        assert!(verify_inclusion(m, 7, &d[m as usize], &path(m), &hash));
    }
}

#[test]
fn degenerate_proofs() {
    let d = leaves(5);
    let src = d.as_slice();
    assert_eq!(inclusion_proof(src, 5, 5).unwrap(), None);
    assert_eq!(inclusion_proof(src, 0, 1).unwrap(), Some(vec![]));
    assert!(verify_inclusion(0, 1, &d[0], &[], &d[0]));
    assert_eq!(consistency_proof(src, 0, 5).unwrap(), None);
    assert_eq!(consistency_proof(src, 6, 5).unwrap(), None);
    assert_eq!(consistency_proof(src, 5, 5).unwrap(), Some(vec![]));
    let r = root(src, 5).unwrap();
    assert!(verify_consistency(5, 5, &[], &r, &r));
    assert!(!verify_consistency(5, 5, &[], &r, &d[0]));
    assert!(!verify_consistency(4, 5, &[], &root(src, 4).unwrap(), &r));
    assert!(!verify_consistency(0, 5, &[], &empty_root(), &r));
}

#[test]
fn frontier_reports_every_complete_subtree_once() {
    let d = leaves(13);
    let mut f = Frontier::default();
    let mut nodes = Vec::new();
    for leaf in &d {
        f.push(*leaf, |level, index, hash| {
            nodes.push((level, index, *hash))
        });
    }
    // 13 leaves: 6 nodes at level 1, 3 at level 2, 1 at level 3.
    assert_eq!(nodes.len(), 10);
    for (level, index, hash) in nodes {
        assert_eq!(d.as_slice().perfect(level, index).unwrap(), hash);
    }
    assert_eq!(f.root(), naive_root(&d));
    assert_eq!(Frontier::load(d.as_slice(), 13).unwrap(), f);
    assert_eq!(Frontier::default().root(), empty_root());
}

fn flip(h: &Hash) -> Hash {
    let mut h = *h;
    h[7] ^= 0x40;
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn roots_match_the_definition(n in 0u64..300) {
        let d = leaves(n);
        let mut f = Frontier::default();
        for leaf in &d {
            f.push(*leaf, |_, _, _| {});
        }
        prop_assert_eq!(f.root(), naive_root(&d));
        prop_assert_eq!(root(d.as_slice(), n).unwrap(), naive_root(&d));
    }

    #[test]
    fn inclusion_proofs_verify_and_detect_changes(n in 1u64..300, pick in any::<u64>(), which in any::<usize>()) {
        let d = leaves(n);
        let src = d.as_slice();
        let r = root(src, n).unwrap();
        let m = pick % n;
        let path = inclusion_proof(src, m, n).unwrap().unwrap();
        prop_assert!(verify_inclusion(m, n, &d[m as usize], &path, &r));
        prop_assert!(!verify_inclusion(m, n, &flip(&d[m as usize]), &path, &r));
        prop_assert!(!verify_inclusion(m, n, &d[m as usize], &path, &flip(&r)));
        if n > 1 {
            prop_assert!(!verify_inclusion((m + 1) % n, n, &d[m as usize], &path, &r));
            let mut bad = path.clone();
            let i = which % bad.len();
            bad[i] = flip(&bad[i]);
            prop_assert!(!verify_inclusion(m, n, &d[m as usize], &bad, &r));
            prop_assert!(!verify_inclusion(m, n, &d[m as usize], &path[..path.len() - 1], &r));
        }
    }

    #[test]
    fn consistency_proofs_verify_and_detect_changes(n in 1u64..300, pick in any::<u64>(), which in any::<usize>()) {
        let d = leaves(n);
        let src = d.as_slice();
        let m = pick % n + 1;
        let (old, new) = (root(src, m).unwrap(), root(src, n).unwrap());
        let proof = consistency_proof(src, m, n).unwrap().unwrap();
        prop_assert!(verify_consistency(m, n, &proof, &old, &new));
        prop_assert!(!verify_consistency(m, n, &proof, &flip(&old), &new));
        prop_assert!(!verify_consistency(m, n, &proof, &old, &flip(&new)));
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let i = which % bad.len();
            bad[i] = flip(&bad[i]);
            prop_assert!(!verify_consistency(m, n, &bad, &old, &new));
        }
        // A changed leaf inside the old tree gives an old root the new tree does not extend.
        let mut changed = d.clone();
        let at = (which as u64 % m) as usize;
        changed[at] = flip(&changed[at]);
        let forged_old = root(changed.as_slice(), m).unwrap();
        prop_assert!(!verify_consistency(m, n, &proof, &forged_old, &new));
    }
}

proptest! {
    #[test]
    fn a_frontier_reads_back_from_its_bytes_and_nothing_else_does(
        n in 0u64..300,
        garbage in proptest::collection::vec(any::<u8>(), 0..200),
        other in 0u64..300,
    ) {
        let mut f = Frontier::default();
        for leaf in leaves(n) {
            f.push(leaf, |_, _, _| {});
        }
        let bytes = f.to_bytes();
        prop_assert_eq!(Frontier::from_bytes(n, &bytes), Some(f.clone()));
        // The bytes of another size's frontier never pass as this one's.
        prop_assert_eq!(Frontier::from_bytes(other, &bytes).is_some(), other == n);
        // Arbitrary bytes either are refused or describe exactly the subtrees of `other`.
        if let Some(g) = Frontier::from_bytes(other, &garbage) {
            prop_assert_eq!(g.to_bytes(), garbage);
            prop_assert_eq!(g.size(), other);
        }
    }
}
