//! Code intake: every package a deploy brings (CreateFunction, UpdateFunctionCode, their
//! dry runs) passes an ordered chain of [`CodeCheck`]s before anything references it.
//!
//! Today the chain is Lambda's package limits: the zip's size ([`ZipSize`]), then
//! unpacking it within the unzipped-size, entry-count and compression-ratio limits,
//! refusing any entry that would escape the package ([`ZipExtraction`]). Checks that need
//! the package's bytes or its files plug in after these (dependency scanning,
//! `crate::scan::DependencyScan`, when configured; code signing later): the extraction
//! check leaves the unpacked tree where later checks can read it.
//! A package is installed in the blob store only if every check passed.

use std::path::Path;

use warden_types::limits;

/// Why a check refused a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRefusal {
    /// Larger than Lambda's zip limit.
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
        /// The API operation that carried the package.
        operation: &'static str,
    },
    /// Not a zip, or one that cannot be unpacked within the limits.
    InvalidZip(String),
    /// A later check (signing, scanning) refused it, saying why.
    Refused {
        /// The name of the check.
        check: &'static str,
        /// Why it refused.
        message: String,
    },
    /// The check itself failed (I/O); Warden's fault, not the package's.
    Internal(String),
}

/// One package under intake, as the checks see it.
pub struct Intake<'a> {
    operation: &'static str,
    zip: &'a [u8],
    sha256: &'a str,
    tree: &'a Path,
    unpacked: bool,
    function: Option<&'a Subject>,
}

/// The function a package is deployed to (none for a layer): its name and tags, which
/// checks may read (dependency scanning's per-function policy and accepted advisories).
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// The function's name.
    pub name: String,
    /// Its tags: those of the CreateFunction request, or the stored ones.
    pub tags: std::collections::BTreeMap<String, String>,
}

impl<'a> Intake<'a> {
    /// A package whose files are not unpacked yet; `staging` is an empty directory that an
    /// extraction check may fill.
    pub fn new(operation: &'static str, zip: &'a [u8], sha256: &'a str, staging: &'a Path) -> Self {
        Self {
            operation,
            zip,
            sha256,
            tree: staging,
            unpacked: false,
            function: None,
        }
    }

    /// A package that was unpacked and installed before (the same bytes passed every check
    /// then): `tree` is its installed, read-only tree.
    pub fn installed(
        operation: &'static str,
        zip: &'a [u8],
        sha256: &'a str,
        tree: &'a Path,
    ) -> Self {
        Self {
            operation,
            zip,
            sha256,
            tree,
            unpacked: true,
            function: None,
        }
    }

    /// The same intake, for a package deployed to `function`.
    pub fn for_function(mut self, function: Option<&'a Subject>) -> Self {
        self.function = function;
        self
    }

    /// The function the package is deployed to, if it is a function's code.
    pub fn function(&self) -> Option<&Subject> {
        self.function
    }

    /// The API operation that brought the package (for error messages).
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The zip as uploaded.
    pub fn zip(&self) -> &[u8] {
        self.zip
    }

    /// Base64 SHA-256 of the zip: Lambda's `CodeSha256`.
    pub fn sha256(&self) -> &str {
        self.sha256
    }

    /// The package's files, once a check has unpacked them (or they were installed before).
    pub fn tree(&self) -> Option<&Path> {
        self.unpacked.then_some(self.tree)
    }
}

/// One check of the intake chain. Checks run in order; the first refusal ends the intake
/// and nothing of the package is kept.
pub trait CodeCheck: Send + Sync {
    /// A short name, shown when the check refuses a package.
    fn name(&self) -> &'static str;
    /// Accepts or refuses the package. Runs on a blocking thread; may read (and, for an
    /// extraction, fill) the intake's tree.
    fn check(&self, intake: &mut Intake<'_>) -> Result<(), CodeRefusal>;
}

/// Lambda's zip size limit: 50 MB after base64 decoding.
pub struct ZipSize;

impl CodeCheck for ZipSize {
    fn name(&self) -> &'static str {
        "zip-size"
    }

    fn check(&self, intake: &mut Intake<'_>) -> Result<(), CodeRefusal> {
        if intake.zip.len() as u64 > limits::ZIP_BYTES {
            return Err(CodeRefusal::TooLarge {
                limit: limits::ZIP_BYTES,
                operation: intake.operation,
            });
        }
        Ok(())
    }
}

/// Unpacks the zip into the intake's staging directory within Lambda's limits
/// (`warden_package::Limits::default()`: unzipped size, entries, compression ratio),
/// refusing traversal, absolute paths, escaping symlinks and duplicate entries. A package
/// installed before is not unpacked again.
pub struct ZipExtraction;

impl CodeCheck for ZipExtraction {
    fn name(&self) -> &'static str {
        "zip-extraction"
    }

    fn check(&self, intake: &mut Intake<'_>) -> Result<(), CodeRefusal> {
        if intake.unpacked {
            return Ok(());
        }
        warden_package::extract(intake.zip, intake.tree, &warden_package::Limits::default())
            .map_err(|e| CodeRefusal::InvalidZip(e.to_string()))?;
        intake.unpacked = true;
        Ok(())
    }
}

/// The chain every deploy runs today, in order.
pub fn standard_checks() -> Vec<std::sync::Arc<dyn CodeCheck>> {
    vec![
        std::sync::Arc::new(ZipSize),
        std::sync::Arc::new(ZipExtraction),
    ]
}

/// Runs `checks` in order over `intake`.
pub(crate) fn run(
    checks: &[std::sync::Arc<dyn CodeCheck>],
    intake: &mut Intake<'_>,
) -> Result<(), CodeRefusal> {
    for check in checks {
        if let Err(refusal) = check.check(intake) {
            tracing::info!(
                check = check.name(),
                sha256 = intake.sha256,
                "a code check refused a package"
            );
            return Err(refusal);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct SeesTree(std::sync::Mutex<Option<bool>>);
    impl CodeCheck for SeesTree {
        fn name(&self) -> &'static str {
            "sees-tree"
        }
        fn check(&self, intake: &mut Intake<'_>) -> Result<(), CodeRefusal> {
            let has = intake.tree().is_some_and(|t| t.join("bootstrap").is_file());
            *self.0.lock().unwrap() = Some(has);
            Ok(())
        }
    }

    struct Refuses;
    impl CodeCheck for Refuses {
        fn name(&self) -> &'static str {
            "refuses"
        }
        fn check(&self, _: &mut Intake<'_>) -> Result<(), CodeRefusal> {
            Err(CodeRefusal::Refused {
                check: "refuses",
                message: "unsigned".into(),
            })
        }
    }

    fn zip_with_bootstrap() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bootstrap"), b"#!/bin/sh\n").unwrap();
        warden_package::zip_directory(dir.path(), &mut |_, _| {}).unwrap()
    }

    #[test]
    fn checks_run_in_order_and_later_ones_see_the_unpacked_tree() {
        let zip = zip_with_bootstrap();
        let staging = tempfile::tempdir().unwrap();
        let seen = Arc::new(SeesTree(std::sync::Mutex::new(None)));
        let mut chain = standard_checks();
        chain.push(seen.clone());
        let mut intake = Intake::new("CreateFunction", &zip, "sha", staging.path());
        run(&chain, &mut intake).unwrap();
        assert_eq!(*seen.0.lock().unwrap(), Some(true));

        // A refusal stops the chain: the check after it never runs.
        let after = Arc::new(SeesTree(std::sync::Mutex::new(None)));
        let chain: Vec<Arc<dyn CodeCheck>> = vec![Arc::new(Refuses), after.clone()];
        let staging = tempfile::tempdir().unwrap();
        let mut intake = Intake::new("CreateFunction", &zip, "sha", staging.path());
        assert!(matches!(
            run(&chain, &mut intake),
            Err(CodeRefusal::Refused {
                check: "refuses",
                ..
            })
        ));
        assert_eq!(*after.0.lock().unwrap(), None);
    }

    #[test]
    fn lambdas_package_limits_are_the_standard_chain() {
        let staging = tempfile::tempdir().unwrap();
        let mut intake = Intake::new("UpdateFunctionCode", b"not a zip", "sha", staging.path());
        assert!(matches!(
            run(&standard_checks(), &mut intake),
            Err(CodeRefusal::InvalidZip(_))
        ));
        let big = vec![0u8; limits::ZIP_BYTES as usize + 1];
        let mut intake = Intake::new("UpdateFunctionCode", &big, "sha", staging.path());
        assert_eq!(
            run(&standard_checks(), &mut intake),
            Err(CodeRefusal::TooLarge {
                limit: limits::ZIP_BYTES,
                operation: "UpdateFunctionCode"
            })
        );
    }
}
