//! Version parsing and ordering per ecosystem, as OSV ranges need it: PEP 440 for PyPI
//! (the `pep440_rs` crate, the implementation `uv` grew from), Semantic Versioning 2.0 for
//! crates.io, npm and Go and for every range of type `SEMVER` (the `semver` crate).
//!
//! No comparator is written by hand; the one rule added on top of `semver` is OSV's: build
//! metadata (`+...`) does not take part in the order, as SemVer 2.0 says, whereas
//! `semver::Version`'s own `Ord` breaks ties with it.

use std::cmp::Ordering;
use std::str::FromStr;

use crate::Ecosystem;

/// Which ordering a version string is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// PEP 440.
    Pep440,
    /// Semantic Versioning 2.0.
    Semver,
}

impl Scheme {
    /// The scheme of the ecosystem's own ordering (an OSV `ECOSYSTEM` range).
    pub(crate) fn of(ecosystem: Ecosystem) -> Scheme {
        match ecosystem {
            Ecosystem::PyPi => Scheme::Pep440,
            Ecosystem::Npm | Ecosystem::CratesIo | Ecosystem::Go => Scheme::Semver,
        }
    }
}

/// A parsed version; versions of one scheme are totally ordered.
#[derive(Debug, Clone)]
pub(crate) enum Version {
    /// A PEP 440 version (`1.0` equals `1.0.0`, `1.0rc1 < 1.0 < 1.0.post1`).
    Pep440(pep440_rs::Version),
    /// A SemVer version, ordered without its build metadata.
    Semver(semver::Version),
}

impl Version {
    /// Parses `s` in `scheme`. SemVer accepts one leading `v` (Go tags, npm's loose
    /// spelling) or `=` (npm), nothing else loose.
    pub(crate) fn parse(scheme: Scheme, s: &str) -> Result<Version, String> {
        let s = s.trim();
        match scheme {
            Scheme::Pep440 => pep440_rs::Version::from_str(s)
                .map(Version::Pep440)
                .map_err(|e| e.to_string()),
            Scheme::Semver => {
                let bare = s
                    .strip_prefix('v')
                    .or_else(|| s.strip_prefix('='))
                    .unwrap_or(s);
                semver::Version::parse(bare)
                    .map(Version::Semver)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Version::Pep440(a), Version::Pep440(b)) => a.cmp(b),
            (Version::Semver(a), Version::Semver(b)) => {
                (a.major, a.minor, a.patch, &a.pre).cmp(&(b.major, b.minor, b.patch, &b.pre))
            }
            // Never compared in practice (one range, one scheme); an arbitrary but fixed
            // order keeps `Ord` total.
            (Version::Pep440(_), Version::Semver(_)) => Ordering::Less,
            (Version::Semver(_), Version::Pep440(_)) => Ordering::Greater,
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pep(s: &str) -> Version {
        Version::parse(Scheme::Pep440, s).expect("valid PEP 440 version")
    }

    fn sem(s: &str) -> Version {
        Version::parse(Scheme::Semver, s).expect("valid SemVer version")
    }

    #[test]
    fn pep440_order() {
        let ordered = [
            "1.0.dev1",
            "1.0a1",
            "1.0a2.dev1",
            "1.0a2",
            "1.0b1",
            "1.0rc1",
            "1.0",
            "1.0+local",
            "1.0.post1",
            "1.1",
            "1.10",
            "2!0.1",
        ];
        for pair in ordered.windows(2) {
            assert!(pep(pair[0]) < pep(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(pep("1.0"), pep("1.0.0"));
        assert_eq!(pep("v2.3"), pep("2.3"));
        assert!(Version::parse(Scheme::Pep440, "not a version").is_err());
    }

    #[test]
    fn semver_order() {
        let ordered = [
            "0.0.0-0",
            "0.4.0-0",
            "0.4.0-alpha",
            "0.4.0-alpha.1",
            "0.4.0-beta",
            "0.4.0",
            "0.4.5",
            "1.0.0",
        ];
        for pair in ordered.windows(2) {
            assert!(sem(pair[0]) < sem(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        // Build metadata is not part of the order (SemVer 2.0 section 10).
        assert_eq!(sem("1.2.3+build.7"), sem("1.2.3"));
        assert_eq!(sem("v1.2.3"), sem("=1.2.3"));
        assert!(Version::parse(Scheme::Semver, "1.2").is_err());
    }

    fn semver_string() -> impl Strategy<Value = String> {
        (
            0u64..4,
            0u64..4,
            0u64..4,
            prop::option::of(prop::sample::select(vec![
                "0",
                "1",
                "alpha",
                "alpha.1",
                "alpha.beta",
                "beta.2",
                "rc.1",
            ])),
            prop::option::of(prop::sample::select(vec!["b1", "x.y"])),
        )
            .prop_map(|(a, b, c, pre, build)| {
                let mut s = format!("{a}.{b}.{c}");
                if let Some(pre) = pre {
                    s.push('-');
                    s.push_str(pre);
                }
                if let Some(build) = build {
                    s.push('+');
                    s.push_str(build);
                }
                s
            })
    }

    fn pep440_string() -> impl Strategy<Value = String> {
        (
            prop::option::of(1u64..3),
            prop::collection::vec(0u64..4, 1..4),
            prop::option::of(prop::sample::select(vec!["a1", "b2", "rc1", "a0"])),
            prop::option::of(prop::sample::select(vec![".post1", ".post2"])),
            prop::option::of(prop::sample::select(vec![".dev0", ".dev3"])),
            prop::option::of(prop::sample::select(vec!["+local", "+ubuntu.1"])),
        )
            .prop_map(|(epoch, release, pre, post, dev, local)| {
                let mut s = epoch.map(|e| format!("{e}!")).unwrap_or_default();
                let parts: Vec<String> = release.iter().map(u64::to_string).collect();
                s.push_str(&parts.join("."));
                for part in [pre, post, dev, local].into_iter().flatten() {
                    s.push_str(part);
                }
                s
            })
    }

    /// The order is a total order: antisymmetric, consistent with `==`, transitive.
    fn check_total(a: &Version, b: &Version, c: &Version) -> Result<(), TestCaseError> {
        prop_assert_eq!(a.cmp(b), b.cmp(a).reverse());
        prop_assert_eq!(a == b, a.cmp(b) == Ordering::Equal);
        prop_assert_eq!(a.cmp(a), Ordering::Equal);
        if a <= b && b <= c {
            prop_assert!(a <= c);
        }
        if a < b && b < c {
            prop_assert!(a < c);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn semver_is_a_total_order(a in semver_string(), b in semver_string(), c in semver_string()) {
            check_total(&sem(&a), &sem(&b), &sem(&c))?;
        }

        #[test]
        fn pep440_is_a_total_order(a in pep440_string(), b in pep440_string(), c in pep440_string()) {
            check_total(&pep(&a), &pep(&b), &pep(&c))?;
        }

        #[test]
        fn sorting_generated_versions_is_consistent(v in prop::collection::vec(pep440_string(), 0..20)) {
            let mut parsed: Vec<Version> = v.iter().map(|s| pep(s)).collect();
            parsed.sort();
            for pair in parsed.windows(2) {
                prop_assert!(pair[0] <= pair[1]);
            }
        }

        #[test]
        fn parsing_never_panics(s in ".{0,40}") {
            let _ = Version::parse(Scheme::Pep440, &s);
            let _ = Version::parse(Scheme::Semver, &s);
        }
    }
}
