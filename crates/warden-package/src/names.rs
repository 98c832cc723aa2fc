//! Validation of entry names and symlink targets, decided on the strings alone.
//!
//! Nothing here touches the disk: a name is accepted only if its meaning cannot depend on
//! what is already on disk, so the extractor can create paths component by component.

use crate::EntryProblem;

/// Longest symlink target accepted, in bytes (Linux `PATH_MAX` is 4096 with its NUL).
pub(crate) const MAX_SYMLINK_TARGET: usize = 4095;

/// An entry name split into safe components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryPath {
    /// Normal components only: no `.`, `..`, empty or separator-bearing parts.
    pub components: Vec<String>,
    /// The name ended with `/`, the zip convention for a directory.
    pub trailing_slash: bool,
}

impl EntryPath {
    /// The normalized path, components joined with `/`.
    pub fn joined(&self) -> String {
        self.components.join("/")
    }
}

/// Splits an entry name into components, refusing anything that could leave the package.
///
/// `.` components are dropped (some tools write `./a`); a name that is only `.` or `./`
/// yields no components, which the caller treats as the package root.
pub(crate) fn parse_entry_name(name: &str) -> Result<EntryPath, EntryProblem> {
    if name.is_empty() {
        return Err(EntryProblem::Empty);
    }
    if name.contains('\0') {
        return Err(EntryProblem::Nul);
    }
    if name.contains('\\') {
        return Err(EntryProblem::Backslash);
    }
    if name.starts_with('/') {
        return Err(EntryProblem::Absolute);
    }
    let bytes = name.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(EntryProblem::Drive);
    }
    let trailing_slash = name.ends_with('/');
    let body = name.strip_suffix('/').unwrap_or(name);
    let mut components = Vec::new();
    for part in body.split('/') {
        match part {
            "" => return Err(EntryProblem::EmptyComponent),
            "." => {}
            ".." => return Err(EntryProblem::ParentDir),
            normal => components.push(normal.to_owned()),
        }
    }
    Ok(EntryPath {
        components,
        trailing_slash,
    })
}

/// Checks a symlink target for a link whose parent directory is `depth` levels below the
/// package root.
///
/// INVARIANT relied on by the extractor: no entry is ever written below a symlink, so every
/// parent of a link is a real directory and `depth` leading `..` stay inside the package.
/// Going down from there may pass through other links, each of which obeys this same rule,
/// so by induction a target never resolves outside the package.
pub(crate) fn check_symlink_target(depth: usize, target: &str) -> Result<(), EntryProblem> {
    if target.is_empty() || target.len() > MAX_SYMLINK_TARGET {
        return Err(EntryProblem::SymlinkTargetInvalid);
    }
    if target.contains('\0') {
        return Err(EntryProblem::Nul);
    }
    if target.contains('\\') {
        return Err(EntryProblem::Backslash);
    }
    if target.starts_with('/') {
        return Err(EntryProblem::SymlinkAbsolute {
            target: target.to_owned(),
        });
    }
    let mut ups = 0usize;
    let mut seen_name = false;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if seen_name => {
                return Err(EntryProblem::SymlinkInnerParent {
                    target: target.to_owned(),
                })
            }
            ".." => {
                ups += 1;
                if ups > depth {
                    return Err(EntryProblem::SymlinkEscapes {
                        target: target.to_owned(),
                    });
                }
            }
            _ => seen_name = true,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parts(name: &str) -> Result<Vec<String>, EntryProblem> {
        parse_entry_name(name).map(|p| p.components)
    }

    #[test]
    fn accepts_ordinary_names() {
        assert_eq!(parts("bootstrap").unwrap(), ["bootstrap"]);
        assert_eq!(parts("lib/a.so").unwrap(), ["lib", "a.so"]);
        assert_eq!(parts("./lib/./a.so").unwrap(), ["lib", "a.so"]);
        let dir = parse_entry_name("lib/").unwrap();
        assert!(dir.trailing_slash);
        assert_eq!(dir.joined(), "lib");
        assert!(parts("./").unwrap().is_empty());
        assert_eq!(parts("a..b/..c").unwrap(), ["a..b", "..c"]);
    }

    #[test]
    fn refuses_dangerous_names() {
        assert_eq!(parts(""), Err(EntryProblem::Empty));
        assert_eq!(parts("/etc/passwd"), Err(EntryProblem::Absolute));
        assert_eq!(parts("../x"), Err(EntryProblem::ParentDir));
        assert_eq!(parts("a/../../x"), Err(EntryProblem::ParentDir));
        assert_eq!(parts("a/.."), Err(EntryProblem::ParentDir));
        assert_eq!(parts("a\0b"), Err(EntryProblem::Nul));
        assert_eq!(parts("C:\\Windows"), Err(EntryProblem::Backslash));
        assert_eq!(parts("..\\x"), Err(EntryProblem::Backslash));
        assert_eq!(parts("C:/x"), Err(EntryProblem::Drive));
        assert_eq!(parts("a//b"), Err(EntryProblem::EmptyComponent));
    }

    #[test]
    fn symlink_targets() {
        assert!(check_symlink_target(0, "libfoo.so.1").is_ok());
        assert!(check_symlink_target(0, "./a/b").is_ok());
        assert!(check_symlink_target(0, ".").is_ok());
        assert!(check_symlink_target(2, "../../x").is_ok());
        assert_eq!(
            check_symlink_target(1, "../../x"),
            Err(EntryProblem::SymlinkEscapes {
                target: "../../x".into()
            })
        );
        assert_eq!(
            check_symlink_target(0, ".."),
            Err(EntryProblem::SymlinkEscapes {
                target: "..".into()
            })
        );
        assert_eq!(
            check_symlink_target(3, "/etc/passwd"),
            Err(EntryProblem::SymlinkAbsolute {
                target: "/etc/passwd".into()
            })
        );
        assert_eq!(
            check_symlink_target(3, "a/../b"),
            Err(EntryProblem::SymlinkInnerParent {
                target: "a/../b".into()
            })
        );
        assert_eq!(
            check_symlink_target(0, ""),
            Err(EntryProblem::SymlinkTargetInvalid)
        );
    }

    proptest! {
        /// Whatever the name, accepted components are plain names: joined under a root they
        /// can only name something below it.
        #[test]
        fn accepted_names_stay_below_root(name in "[a-zA-Z./\\\\:\0]{0,24}") {
            if let Ok(path) = parse_entry_name(&name) {
                for c in &path.components {
                    prop_assert!(!c.is_empty() && c != "." && c != "..");
                    prop_assert!(!c.contains('/') && !c.contains('\\') && !c.contains('\0'));
                }
            }
        }

        /// An accepted target, resolved lexically from a link at `depth`, never climbs above
        /// the root.
        #[test]
        fn accepted_targets_stay_inside(depth in 0usize..4, target in "(\\.\\.|\\.|a|/){0,10}") {
            if check_symlink_target(depth, &target).is_ok() {
                let mut level = depth as i64;
                for part in target.split('/') {
                    match part {
                        ".." => level -= 1,
                        "" | "." => {}
                        _ => level += 1,
                    }
                    prop_assert!(level >= 0);
                }
            }
        }
    }
}
