//! `warden audit verify`: checks the log against itself, its signed digests and any exported
//! digests, and says precisely what was done to it.
//!
//! **What is checked.**
//! - Every event: its stored leaf hash is the hash of its stored bytes, and the indexed
//!   columns (time, names, ARNs, resources) are those the bytes say.
//! - Sequence numbers run from 0 without gaps.
//! - The chain: each event's chain hash is `SHA-256(previous chain || leaf)`.
//! - Each digest (stored, or exported and given in [`VerifyOptions::exported`]): its
//!   signature, its link to the digest before it, and that its root and chain hash are
//!   those recomputed from the stored leaves at its size. Recomputing every root from the
//!   leaves is stronger than checking an inclusion proof per event (each proof only
//!   re-derives a root from one leaf), so verification does that and streams: memory is
//!   O(log n) for the tree plus what the findings need.
//! - Between successive digests, the consistency proof the log serves (built from its node
//!   index) verifies against the two signed roots, which checks the index that serves
//!   proofs to others.
//! - Exported digests agree with the stored ones; a log shorter than a digest says is
//!   truncated.
//!
//! **How damage is told apart** (heuristics; the chain proves *that* order changed, these
//! rules say *how* in the cases an editor of the file can produce):
//! - `Altered`: the bytes do not hash to the stored leaf hash, or the columns disagree with
//!   the bytes, or the row's chain hash does not follow from its predecessor while its
//!   successor's does follow from it (the bytes and their leaf hash were replaced together).
//! - `Removed`: a gap in the sequence numbers. The row after the gap cannot link to its
//!   predecessor, and that is not reported again.
//! - For any other row whose chain hash does not follow from its predecessor's, its true
//!   predecessor is searched among the rows next to any chain break (the rows an edit can
//!   have moved). Rows that no row follows (dead ends), other than the last, walked back to
//!   the row two successors claim (the fork), are `Inserted`: a forged row can be chained to
//!   its predecessor, but its successor still names the predecessor, so it is a dead branch.
//! - The remaining breaks are a permutation of runs of intact rows: the original order is
//!   rebuilt by following the links, and the rows outside the heaviest subsequence of runs
//!   already in order are `Reordered` (so two swapped rows report both rows; two adjacent
//!   rows swapped report one of them, since moving either restores the order).
//! - A break none of these explains is `ChainBroken`.
//! - A signed digest whose root or chain does not match is `DigestMismatch` only when no
//!   row-level finding lies below its size: otherwise that finding already explains it. A
//!   log rewritten consistently (hashes, chain and nodes recomputed) shows no row-level
//!   finding, so signed digests are what catch it; an attacker who also deleted the
//!   stored digests is caught by the exported ones (`DigestMissing`).
//! - Deleting the newest events *and* the digests covering them is visible only against
//!   exported digests (or a witness): keep them off the data directory.
//!
//! **Time range.** `from`/`to` choose which row-level findings are reported (those among
//! the events whose time lies in the range), never which digests are checked. Checking
//! starts at the newest signed digest made before `from`, whose signed root and chain hash
//! are the trusted starting point (its tree's right edge is loaded from the node index and
//! must hash to the signed root), else at event 0.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use serde::Serialize;

use crate::digest::{Digest, Verifier};
use crate::error::Error;
use crate::event::{decode, EventIndex};
use crate::log::{chain_hash, AuditReader, Nodes, GENESIS_CHAIN};
use crate::merkle::{self, Frontier, Hash};
use crate::source::PAGE;

/// How many rows before a chain break are searched for a moved row's predecessor, and how
/// far back an inserted branch is followed.
const WINDOW: usize = 16;

/// Beyond this many chain breaks the rest are reported unclassified: classification costs
/// grow with the square of the breaks.
const MAX_CLASSIFIED_BREAKS: usize = 4096;

/// What verification needs besides the log.
#[derive(Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// Checks digest signatures.
    pub verifier: &'a dyn Verifier,
    /// Digests kept outside the data directory (see [`crate::digest::read_exported`]).
    pub exported: &'a [Digest],
    /// Report row-level findings only among events at or after this time (epoch ms).
    pub from_ms: Option<i64>,
    /// Report row-level findings only among events at or before this time (epoch ms).
    pub to_ms: Option<i64>,
}

impl std::fmt::Debug for VerifyOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("exported", &self.exported.len())
            .field("from_ms", &self.from_ms)
            .field("to_ms", &self.to_ms)
            .finish_non_exhaustive()
    }
}

/// One thing verification found wrong. Sequence numbers are positions in the file as it is
/// now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "finding", rename_all = "camelCase")]
pub enum Finding {
    /// The event's bytes or indexed columns were changed.
    Altered {
        /// Its position.
        seq: u64,
    },
    /// Events `first..=last` are missing.
    Removed {
        /// The first missing position.
        first: u64,
        /// The last missing position.
        last: u64,
    },
    /// The event was not recorded by Warden: it was put into the file.
    Inserted {
        /// Its position.
        seq: u64,
    },
    /// These events were moved from where they were recorded.
    Reordered {
        /// Their positions.
        seqs: Vec<u64>,
    },
    /// The chain breaks here for a reason the rules above do not tell.
    ChainBroken {
        /// The first position whose chain hash does not follow.
        seq: u64,
    },
    /// The log holds fewer events than a digest covers: its tail was deleted.
    Truncated {
        /// The largest tree size a trusted digest covers.
        had: u64,
        /// Events the log holds now (one past its highest position).
        now: u64,
    },
    /// A digest whose signature does not verify (or that does not parse): not made by the
    /// key, so not trusted.
    DigestForged {
        /// The tree size it claims.
        tree_size: u64,
    },
    /// An exported digest the database no longer holds.
    DigestMissing {
        /// Its tree size.
        tree_size: u64,
    },
    /// A digest whose previous-digest hash names no digest before it: one between was
    /// deleted or replaced.
    DigestChainBroken {
        /// The tree size of the digest whose link is broken.
        tree_size: u64,
    },
    /// A signed digest whose root or chain hash is not the log's at its size, with no
    /// row-level finding to explain it: the history it covers was rewritten consistently.
    DigestMismatch {
        /// Its tree size.
        tree_size: u64,
    },
    /// Two validly signed digests of one tree size differ (one stored, one exported): the
    /// signing key signed two histories.
    DigestConflict {
        /// The tree size.
        tree_size: u64,
    },
    /// The log's consistency proof between two digests that each match the log does not
    /// verify: the node index that serves proofs is damaged.
    ProofFailed {
        /// The older digest's size.
        old: u64,
        /// The newer digest's size.
        new: u64,
    },
}

impl Finding {
    /// The positions a finding about events covers; `None` for a finding about digests.
    fn row_range(&self) -> Option<(u64, u64)> {
        match self {
            Finding::Altered { seq } | Finding::Inserted { seq } | Finding::ChainBroken { seq } => {
                Some((*seq, *seq))
            }
            Finding::Removed { first, last } => Some((*first, *last)),
            Finding::Reordered { seqs } => Some((
                seqs.first().copied().unwrap_or(0),
                seqs.last().copied().unwrap_or(0),
            )),
            _ => None,
        }
    }
}

/// What verification saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Everything found wrong, row-level findings by position, then digest findings.
    pub findings: Vec<Finding>,
    /// One past the highest position stored.
    pub size: u64,
    /// Events read and checked.
    pub events_checked: u64,
    /// The position checking started at (the trusted digest's size, or 0).
    pub started_at: u64,
    /// The largest tree size a trusted digest covers and the log matches; events beyond
    /// it are not yet attested by any signature.
    pub attested: u64,
}

impl Report {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pred {
    /// The starting point (genesis, or the trusted digest's chain hash).
    Start,
    At(u64),
    Unknown,
}

#[derive(Debug)]
struct Break {
    seq: u64,
    leaf: Hash,
    chain: Hash,
    after_gap: bool,
}

/// A digest and what was found about it.
#[derive(Debug)]
struct Trusted {
    digest: Digest,
    matches: Option<bool>,
}

impl AuditReader {
    /// Verifies the log (see the module's documentation).
    pub fn verify(&self, options: &VerifyOptions<'_>) -> Result<Report, Error> {
        let mut digest_findings = Vec::new();
        let size = self.source.size()?;
        let mut trusted = self.trusted_digests(options, size, &mut digest_findings)?;

        // The starting point: the newest matching signed digest made before `from`.
        let mut start = 0u64;
        let mut frontier = Frontier::default();
        let mut start_chain = GENESIS_CHAIN;
        if let Some(from) = options.from_ms {
            let candidate = trusted
                .iter()
                .filter(|t| t.digest.time < from && t.digest.tree_size <= size)
                .max_by_key(|t| t.digest.tree_size);
            if let Some(t) = candidate {
                if let Some((f, chain)) = self.trusted_start(&t.digest)? {
                    start = t.digest.tree_size;
                    frontier = f;
                    start_chain = chain;
                }
            }
        }

        let mut pass = Pass::new(start, frontier, start_chain, options);
        self.stream(&mut pass, &mut trusted)?;
        let last_row = pass.last;
        for t in trusted.iter_mut() {
            if t.matches.is_none() && t.digest.tree_size <= size && t.digest.tree_size >= start {
                t.matches = Some(pass.matches(&t.digest));
            }
        }

        let mut findings = pass.classify(last_row);
        findings.sort_by_key(|f| f.row_range().map_or(0, |r| r.0));
        if options.from_ms.is_some() || options.to_ms.is_some() {
            let window = pass.window_in_range;
            findings.retain(|f| match (f.row_range(), window) {
                (Some((lo, hi)), Some((a, b))) => hi >= a && lo <= b,
                _ => false,
            });
        }
        // A digest mismatch below which a row-level finding lies is explained by it.
        let first_row_finding = findings
            .iter()
            .filter_map(Finding::row_range)
            .map(|r| r.0)
            .min();
        let mut attested = start;
        for t in &trusted {
            let n = t.digest.tree_size;
            match t.matches {
                Some(true) => attested = attested.max(n),
                Some(false) if first_row_finding.is_none_or(|f| f >= n) => {
                    digest_findings.push(Finding::DigestMismatch { tree_size: n })
                }
                _ => {}
            }
        }
        if let Some(had) = trusted.iter().map(|t| t.digest.tree_size).max() {
            if had > size {
                digest_findings.push(Finding::Truncated { had, now: size });
            }
        }
        digest_findings.extend(self.check_proofs(&trusted, start)?);
        findings.extend(digest_findings);
        Ok(Report {
            findings,
            size,
            events_checked: pass.checked,
            started_at: start,
            attested,
        })
    }

    /// Stored and exported digests whose signatures verify, one per size, smallest first;
    /// the others, missing ones, conflicts and broken links go into `findings`.
    fn trusted_digests(
        &self,
        options: &VerifyOptions<'_>,
        size: u64,
        findings: &mut Vec<Finding>,
    ) -> Result<Vec<Trusted>, Error> {
        let mut stored: HashMap<u64, Digest> = HashMap::new();
        for (column, body) in self.source.digest_rows()? {
            let claimed = u64::try_from(column).unwrap_or(0);
            match Digest::from_json(&body, "") {
                Ok(d) if d.tree_size == claimed && d.verify_signature(options.verifier) => {
                    stored.insert(claimed, d);
                }
                _ => findings.push(Finding::DigestForged { tree_size: claimed }),
            }
        }
        let mut all: HashMap<u64, Digest> = stored.clone();
        for d in options.exported {
            if !d.verify_signature(options.verifier) {
                findings.push(Finding::DigestForged {
                    tree_size: d.tree_size,
                });
                continue;
            }
            match stored.get(&d.tree_size) {
                Some(s) if s == d => {}
                Some(_) => {
                    findings.push(Finding::DigestConflict {
                        tree_size: d.tree_size,
                    });
                    // The copy outside the data directory is the one to believe.
                    all.insert(d.tree_size, d.clone());
                }
                None => {
                    // Beyond the log's end it is reported as truncation instead.
                    if d.tree_size <= size {
                        findings.push(Finding::DigestMissing {
                            tree_size: d.tree_size,
                        });
                    }
                    all.insert(d.tree_size, d.clone());
                }
            }
        }
        let mut trusted: Vec<Trusted> = all
            .into_values()
            .map(|digest| Trusted {
                digest,
                matches: None,
            })
            .collect();
        trusted.sort_by_key(|t| t.digest.tree_size);
        let mut previous: Option<Hash> = None;
        for t in &trusted {
            if t.digest.previous_digest_hash != previous {
                findings.push(Finding::DigestChainBroken {
                    tree_size: t.digest.tree_size,
                });
            }
            previous = Some(t.digest.hash());
        }
        Ok(trusted)
    }

    /// The tree's right edge and chain hash at `digest`'s size, if the node index and the
    /// event row there agree with what it signed.
    fn trusted_start(&self, digest: &Digest) -> Result<Option<(Frontier, Hash)>, Error> {
        let n = digest.tree_size;
        if n == 0 {
            return Ok(None);
        }
        let Ok(frontier) = Frontier::load(&Nodes(&*self.source), n) else {
            return Ok(None);
        };
        let chain = self.source.chain_at(n - 1)?;
        let ok =
            frontier.root() == digest.root_hash && chain.as_deref() == Some(&digest.chain_hash[..]);
        Ok(ok.then_some((frontier, digest.chain_hash)))
    }

    fn stream(&self, pass: &mut Pass<'_>, trusted: &mut [Trusted]) -> Result<(), Error> {
        let mut next_digest = trusted
            .iter()
            .position(|t| t.digest.tree_size >= pass.start)
            .unwrap_or(trusted.len());
        // Events are read a page at a time, and with each page the resource rows up to its
        // last event (all that remain, with the last page), merged in by position.
        let mut from = pass.start;
        let mut resources_from = pass.start;
        loop {
            let page = self.source.events_from(from, PAGE)?;
            let last_seq = page.last().map(|r| u64::try_from(r.seq).unwrap_or(0));
            let upper = if page.len() < PAGE { None } else { last_seq };
            let mut resources = self
                .source
                .resources_between(resources_from, upper)?
                .into_iter()
                .map(|(s, name)| (u64::try_from(s).unwrap_or(0), name))
                .peekable();
            for row in page {
                let seq = u64::try_from(row.seq).unwrap_or(0);
                let mut columns = row.index;
                while let Some(item) = resources.next_if(|(s, _)| *s <= seq) {
                    if item.0 < seq {
                        pass.orphan_resource(item.0);
                    } else {
                        columns.resources.push(item.1);
                    }
                }
                // Digests whose last event lies before this row are checked with the state
                // the rows before it left.
                while let Some(t) = trusted.get_mut(next_digest) {
                    if t.digest.tree_size > seq {
                        break;
                    }
                    t.matches = Some(pass.matches(&t.digest));
                    next_digest += 1;
                }
                pass.row(seq, &columns, &row.body, &row.leaf, &row.chain);
            }
            match upper {
                Some(last) => {
                    from = last.saturating_add(1);
                    resources_from = from;
                }
                None => return Ok(()),
            }
        }
    }

    /// Consistency proofs from the node index between successive digests that both match.
    fn check_proofs(&self, trusted: &[Trusted], start: u64) -> Result<Vec<Finding>, Error> {
        let mut findings = Vec::new();
        let good: Vec<&Digest> = trusted
            .iter()
            .filter(|t| t.matches == Some(true) && t.digest.tree_size >= start.max(1))
            .map(|t| &t.digest)
            .collect();
        for pair in good.windows(2) {
            let (old, new) = (pair[0], pair[1]);
            let ok = match merkle::consistency_proof(
                &Nodes(&*self.source),
                old.tree_size,
                new.tree_size,
            ) {
                Ok(Some(proof)) => merkle::verify_consistency(
                    old.tree_size,
                    new.tree_size,
                    &proof,
                    &old.root_hash,
                    &new.root_hash,
                ),
                Ok(None) | Err(Error::Damaged { .. }) => false,
                Err(e) => return Err(e),
            };
            if !ok {
                findings.push(Finding::ProofFailed {
                    old: old.tree_size,
                    new: new.tree_size,
                });
            }
        }
        Ok(findings)
    }
}

/// The state of the streaming pass over the rows.
struct Pass<'a> {
    options: &'a VerifyOptions<'a>,
    start: u64,
    start_chain: Hash,
    frontier: Frontier,
    /// The position the next row should have.
    expected: u64,
    /// The last row read: its position and stored chain hash.
    last: Option<(u64, Hash)>,
    checked: u64,
    gaps: Vec<(u64, u64)>,
    altered: BTreeSet<u64>,
    breaks: Vec<Break>,
    /// The last rows read, for the predecessor search.
    recent: VecDeque<(u64, Hash)>,
    /// Rows a moved row may follow: those just before a break.
    candidates: HashMap<u64, Hash>,
    /// The first and last positions of rows whose (verified) time is in the range.
    window_in_range: Option<(u64, u64)>,
    /// Whether the frontier still stands for positions `0..frontier.size()` exactly.
    tree_exact: bool,
}

impl<'a> Pass<'a> {
    fn new(
        start: u64,
        frontier: Frontier,
        start_chain: Hash,
        options: &'a VerifyOptions<'a>,
    ) -> Self {
        Pass {
            options,
            start,
            start_chain,
            frontier,
            expected: start,
            last: None,
            checked: 0,
            gaps: Vec::new(),
            altered: BTreeSet::new(),
            breaks: Vec::new(),
            recent: VecDeque::with_capacity(WINDOW + 1),
            candidates: HashMap::new(),
            window_in_range: None,
            tree_exact: true,
        }
    }

    /// Whether `digest` (whose last event is the last row read) matches the log.
    fn matches(&self, digest: &Digest) -> bool {
        let n = digest.tree_size;
        let chain = match self.last {
            Some((seq, chain)) if seq + 1 == n => chain,
            None if n == self.start => self.start_chain,
            _ => return false,
        };
        self.tree_exact
            && self.frontier.size() == n
            && self.frontier.root() == digest.root_hash
            && chain == digest.chain_hash
    }

    fn orphan_resource(&mut self, seq: u64) {
        // A resource row for an event that is not there: the event's index was edited.
        if seq >= self.start {
            self.altered.insert(seq);
        }
    }

    fn row(&mut self, seq: u64, columns: &EventIndex, body: &[u8], leaf: &[u8], chain: &[u8]) {
        self.checked += 1;
        let after_gap = seq > self.expected;
        if after_gap {
            self.gaps.push((self.expected, seq - 1));
            self.tree_exact = false;
            // Resource rows left behind by the removed events are explained by the removal.
            let gap = self.expected..seq;
            self.altered.retain(|s| !gap.contains(s));
        }
        self.expected = seq + 1;

        let computed = merkle::leaf_hash(body);
        let stored_leaf = Hash::try_from(leaf).ok();
        let mut intact = stored_leaf == Some(computed);
        match decode(body).and_then(|e| EventIndex::of(&e)) {
            Ok(mut from_bytes) => {
                from_bytes.resources.sort();
                from_bytes.resources.dedup();
                if from_bytes != *columns {
                    intact = false;
                }
                if intact {
                    self.note_time(seq, from_bytes.time_ms);
                }
            }
            Err(_) => intact = false,
        }
        if !intact {
            self.altered.insert(seq);
        }
        // The tree is rebuilt over the stored leaf hashes, so that changed bytes under an
        // intact leaf hash are reported once, as `Altered`, not again by every digest.
        let leaf = stored_leaf.unwrap_or(computed);
        self.frontier.push(leaf, |_, _, _| {});
        let chain = Hash::try_from(chain).unwrap_or([0xff; 32]);
        let previous = match self.last {
            Some((_, c)) => c,
            None => self.start_chain,
        };
        if chain_hash(&previous, &leaf) != chain {
            if self.breaks.len() < MAX_CLASSIFIED_BREAKS {
                for (s, c) in &self.recent {
                    self.candidates.insert(*s, *c);
                }
            }
            self.breaks.push(Break {
                seq,
                leaf,
                chain,
                after_gap,
            });
        }
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back((seq, chain));
        self.last = Some((seq, chain));
    }

    fn note_time(&mut self, seq: u64, time_ms: i64) {
        let after = self.options.from_ms.is_none_or(|f| time_ms >= f);
        let before = self.options.to_ms.is_none_or(|t| time_ms <= t);
        if after && before {
            self.window_in_range = Some(match self.window_in_range {
                Some((a, _)) => (a, seq),
                None => (seq, seq),
            });
        }
    }

    fn present(&self, seq: u64) -> bool {
        let Some((last, _)) = self.last else {
            return false;
        };
        seq >= self.start && seq <= last && !self.gaps.iter().any(|&(a, b)| seq >= a && seq <= b)
    }

    /// Turns gaps, altered rows and chain breaks into findings (see the module's
    /// documentation for the rules).
    fn classify(&mut self, last_row: Option<(u64, Hash)>) -> Vec<Finding> {
        let mut findings: Vec<Finding> = self
            .gaps
            .iter()
            .map(|&(first, last)| Finding::Removed { first, last })
            .collect();
        let overflow = self.breaks.len().saturating_sub(MAX_CLASSIFIED_BREAKS);
        for b in self.breaks.iter().skip(MAX_CLASSIFIED_BREAKS) {
            findings.push(Finding::ChainBroken { seq: b.seq });
        }
        self.breaks.truncate(self.breaks.len() - overflow);
        if let Some((seq, chain)) = last_row {
            self.candidates.insert(seq, chain);
        }
        let break_at: HashMap<u64, usize> = self
            .breaks
            .iter()
            .enumerate()
            .map(|(i, b)| (b.seq, i))
            .collect();

        // Each broken row's true predecessor.
        let preds: Vec<Pred> = self
            .breaks
            .iter()
            .map(|b| {
                if chain_hash(&self.start_chain, &b.leaf) == b.chain {
                    return Pred::Start;
                }
                self.candidates
                    .iter()
                    .find(|(s, c)| **s != b.seq && chain_hash(c, &b.leaf) == b.chain)
                    .map_or(Pred::Unknown, |(s, _)| Pred::At(*s))
            })
            .collect();

        // Rows that stay where they are although their link is broken: the row after a
        // gap, and a row whose bytes and leaf hash were replaced together.
        let mut in_place = vec![false; self.breaks.len()];
        for (i, b) in self.breaks.iter().enumerate() {
            if preds[i] != Pred::Unknown {
                continue;
            }
            let successor_follows = self.present(b.seq + 1) && !break_at.contains_key(&(b.seq + 1));
            if b.after_gap {
                in_place[i] = true;
            } else if successor_follows {
                in_place[i] = true;
                self.altered.insert(b.seq);
            }
        }

        // How many rows name each row as their predecessor.
        let claims = |r: u64| -> usize {
            let by_successor = usize::from(
                self.present(r + 1) && break_at.get(&(r + 1)).is_none_or(|&i| in_place[i]),
            );
            let by_breaks = preds
                .iter()
                .enumerate()
                .filter(|&(i, p)| !in_place[i] && *p == Pred::At(r))
                .count();
            by_successor + by_breaks
        };
        let pred_of = |r: u64| -> Pred {
            match break_at.get(&r) {
                Some(&i) if !in_place[i] => preds[i],
                _ if r == self.start => Pred::Start,
                _ => Pred::At(r - 1),
            }
        };

        // Dead ends, walked back to the fork: inserted.
        let mut inserted = BTreeSet::new();
        for b in &self.breaks {
            if b.after_gap || b.seq == self.start {
                continue;
            }
            let dead_end = b.seq - 1;
            if !self.present(dead_end) || claims(dead_end) > 0 {
                continue;
            }
            let mut branch = vec![dead_end];
            let mut at = dead_end;
            let complete = loop {
                match pred_of(at) {
                    Pred::At(q) if self.present(q) => {
                        if claims(q) >= 2 {
                            break true;
                        }
                        if branch.len() >= WINDOW {
                            break false;
                        }
                        branch.push(q);
                        at = q;
                    }
                    _ => break true,
                }
            };
            if complete {
                inserted.extend(branch);
            }
        }

        // What is left: moved runs, or unexplained breaks.
        let mut moved_heads = Vec::new();
        for (i, b) in self.breaks.iter().enumerate() {
            if in_place[i] || inserted.contains(&b.seq) {
                continue;
            }
            match preds[i] {
                Pred::At(q)
                    if q < b.seq
                        && (q + 1..b.seq).all(|s| !self.present(s) || inserted.contains(&s)) => {}
                Pred::Unknown => findings.push(Finding::ChainBroken { seq: b.seq }),
                p => moved_heads.push((b.seq, p)),
            }
        }
        if !moved_heads.is_empty() {
            match self.reordered(&moved_heads, &inserted) {
                Some(seqs) => findings.push(Finding::Reordered { seqs }),
                None => findings.extend(
                    moved_heads
                        .iter()
                        .map(|&(seq, _)| Finding::ChainBroken { seq }),
                ),
            }
        }
        findings.extend(self.altered.iter().map(|&seq| Finding::Altered { seq }));
        findings.extend(inserted.iter().map(|&seq| Finding::Inserted { seq }));
        findings
    }

    /// Rebuilds the recorded order of the runs of rows between `heads` and returns the
    /// positions of the rows in runs outside the heaviest in-order subsequence; `None` if
    /// the links do not form one sequence.
    fn reordered(&self, heads: &[(u64, Pred)], inserted: &BTreeSet<u64>) -> Option<Vec<u64>> {
        let (last, _) = self.last?;
        // Runs in file order: (head, tail, predecessor of the head).
        let mut runs: Vec<(u64, u64, Pred)> = Vec::new();
        if heads.first().is_none_or(|h| h.0 != self.start) {
            runs.push((self.start, 0, Pred::Start));
        }
        runs.extend(heads.iter().map(|&(s, p)| (s, 0, p)));
        for i in 0..runs.len() {
            let end = runs.get(i + 1).map_or(last, |r| r.0 - 1);
            let tail = (runs[i].0..=end)
                .rev()
                .find(|s| self.present(*s) && !inserted.contains(s))?;
            runs[i].1 = tail;
        }
        let by_tail: HashMap<u64, usize> = runs.iter().enumerate().map(|(i, r)| (r.1, i)).collect();
        let mut next: Vec<Option<usize>> = vec![None; runs.len()];
        let mut first = None;
        for (i, run) in runs.iter().enumerate() {
            match run.2 {
                Pred::Start if first.is_none() => first = Some(i),
                Pred::At(q) => {
                    let j = *by_tail.get(&q)?;
                    if next[j].replace(i).is_some() {
                        return None;
                    }
                }
                _ => return None,
            }
        }
        let mut rank = vec![usize::MAX; runs.len()];
        let mut seen = HashSet::new();
        let mut at = first;
        let mut r = 0;
        while let Some(i) = at {
            if !seen.insert(i) {
                return None;
            }
            rank[i] = r;
            r += 1;
            at = next[i];
        }
        if seen.len() != runs.len() {
            return None;
        }
        // The heaviest increasing subsequence of ranks, weighted by rows.
        let weight = |i: usize| runs[i].1 - runs[i].0 + 1;
        let mut best = vec![0u64; runs.len()];
        let mut back = vec![None; runs.len()];
        for i in 0..runs.len() {
            best[i] = weight(i);
            for j in 0..i {
                if rank[j] < rank[i] && best[j] + weight(i) > best[i] {
                    best[i] = best[j] + weight(i);
                    back[i] = Some(j);
                }
            }
        }
        let mut keep = HashSet::new();
        let mut at = (0..runs.len()).max_by_key(|&i| (best[i], std::cmp::Reverse(i)));
        while let Some(i) = at {
            keep.insert(i);
            at = back[i];
        }
        let mut seqs = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            if !keep.contains(&i) {
                seqs.extend((run.0..=run.1).filter(|s| self.present(*s) && !inserted.contains(s)));
            }
        }
        Some(seqs)
    }
}

#[cfg(test)]
mod tests;
