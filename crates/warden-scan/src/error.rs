//! The one error type of the crate: what stops an inventory, an advisory import or the
//! advisory store as a whole. A single malformed lockfile or advisory is not an error: it
//! is reported in the result ([`crate::Problem`], [`crate::ImportReport`]) and skipped.

use std::path::PathBuf;

/// What went wrong; each variant names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The package is not a readable zip archive.
    #[error("reading the package archive: {0}")]
    ReadArchive(#[source] zip::result::ZipError),
    /// The package has more entries than [`crate::Limits::max_entries`].
    #[error("the package has {found} entries, more than the {limit} that are scanned")]
    TooManyEntries {
        /// Entries in the package.
        found: usize,
        /// The limit.
        limit: usize,
    },
    /// The manifests read add up to more than [`crate::Limits::max_total_bytes`].
    #[error("the package's manifests add up to more than {limit} bytes")]
    TooManyBytes {
        /// The limit.
        limit: u64,
    },
    /// A file name that is absolute or climbs out of the package with `..`.
    #[error("the package path `{path}` leaves the package root")]
    UnsafePath {
        /// The name as given.
        path: String,
    },
    /// Listing or reading the advisory directory failed.
    #[error("reading the advisories at `{}`: {source}", path.display())]
    ReadAdvisories {
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The advisory export is not a readable zip archive.
    #[error("reading the advisory archive: {0}")]
    ReadAdvisoryArchive(#[source] zip::result::ZipError),
    /// The import holds more advisory files than [`crate::ImportLimits::max_advisories`].
    #[error("the advisory import has more than {limit} files")]
    TooManyAdvisories {
        /// The limit.
        limit: usize,
    },
    /// Accepting one more advisory would pass [`crate::accept::MAX_ACCEPTANCES`].
    #[error("at most {limit} advisories can be accepted at once; revoke some first")]
    TooManyAcceptances {
        /// The limit.
        limit: usize,
    },
    /// Opening, reading or writing the advisory store failed.
    #[error("{context}: {message}")]
    Store {
        /// The step that failed.
        context: &'static str,
        /// The database's error.
        message: String,
    },
}

/// Maps any database error to [`Error::Store`] with `context`.
pub(crate) fn store<E: std::fmt::Display>(context: &'static str) -> impl FnOnce(E) -> Error {
    move |e| Error::Store {
        context,
        message: e.to_string(),
    }
}
