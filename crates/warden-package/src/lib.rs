//! Function packages: safe, bounded zip extraction and zipping of a directory.
//!
//! Function code arrives from untrusted callers as a zip (`Code.ZipFile`). [`extract`] unpacks
//! it into an empty directory and refuses anything that could write outside that directory,
//! exhaust the disk or smuggle special permissions; [`zip_directory`] makes the deterministic
//! zip that the `warden` client uploads.
//!
//! Symlinks: a package may carry relative symlinks (shared libraries such as
//! `libfoo.so -> libfoo.so.1` and `node_modules/.bin` need them), but only in a shape whose
//! safety is decidable without touching the disk: the target is relative, every `..` comes
//! first and there are no more of them than the link's depth, and no entry may be written
//! below a symlink. Absolute targets and everything else are refused.

#![forbid(unsafe_code)]

mod error;
mod extract;
mod names;
mod zipdir;

pub use error::{EntryProblem, PackageError};
pub use extract::{
    extract, top_level_names, Extracted, Limits, MAX_COMPRESSION_RATIO, RATIO_GRACE_BYTES,
};
pub use zipdir::zip_directory;
