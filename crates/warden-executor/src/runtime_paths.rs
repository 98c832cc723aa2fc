//! Which host paths every sandboxed instance sees at their own paths: the system's shared
//! libraries and binaries. (A runtime's interpreter is not among them: the engine mounts
//! its installation where the function expects it, through [`crate::Mount`].)
//!
//! Everything returned is bound read-only at the same path inside the instance. Nothing of
//! `/etc` but `/etc/ssl` (certificates) is included: the rest holds host secrets and
//! configuration that a function has no business reading.

use std::path::PathBuf;

/// The host directories every instance gets: `/usr`, `/lib`, `/lib64`, `/bin`, `/sbin`
/// and `/etc/ssl`, those that exist.
pub fn system_runtime_paths() -> Vec<PathBuf> {
    ["/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc/ssl"]
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect()
}
