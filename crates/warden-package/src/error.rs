//! The one error type of this crate, plus the reasons an entry name or symlink is refused.

use std::{fmt, io, path::PathBuf};

/// Why a package could not be extracted or a directory could not be zipped.
///
/// Messages are meant to be shown to the caller who uploaded the zip: they name the entry
/// (as written in the zip) but never a path of the host.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The zip is larger than [`crate::Limits::max_zip_bytes`].
    #[error("zip is {size} bytes, more than the limit of {limit} bytes")]
    ZipTooLarge {
        /// Size of the uploaded zip.
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The destination directory could not be listed.
    #[error("could not read the destination directory: {0}")]
    ReadDest(#[source] io::Error),
    /// The destination directory already holds something.
    #[error("destination directory is not empty")]
    DestNotEmpty,
    /// The bytes are not a zip archive, or its directory is corrupt.
    #[error("could not read the zip archive: {0}")]
    Archive(#[source] zip::result::ZipError),
    /// The archive lists more entries than [`crate::Limits::max_entries`].
    #[error("zip has {count} entries, more than the limit of {limit}")]
    TooManyEntries {
        /// Entries in the central directory.
        count: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The central directory lists the same raw name twice.
    #[error("zip lists the same entry name more than once")]
    DuplicateNames,
    /// Two entries name the same path once normalized (`a` and `./a`, `a` and `a/`).
    #[error("entry `{name}` names a path that an earlier entry already uses")]
    DuplicateEntry {
        /// The entry name as written in the zip.
        name: String,
    },
    /// An entry name or symlink target is unsafe.
    #[error("entry `{name}` is refused: {problem}")]
    UnsafeEntry {
        /// The entry name as written in the zip.
        name: String,
        /// What is wrong with it.
        problem: EntryProblem,
    },
    /// The entry is encrypted.
    #[error("entry `{name}` is encrypted, which is not supported")]
    Encrypted {
        /// The entry name as written in the zip.
        name: String,
    },
    /// The entry uses a compression method other than store or deflate.
    #[error(
        "entry `{name}` uses compression method `{method}`; only store and deflate are supported"
    )]
    UnsupportedCompression {
        /// The entry name as written in the zip.
        name: String,
        /// The method the entry declares.
        method: String,
    },
    /// The package unzips to more than [`crate::Limits::max_unzipped_bytes`].
    #[error("package unzips to more than the limit of {limit} bytes (at entry `{name}`)")]
    UnzippedTooLarge {
        /// The entry being written (or declared) when the limit was passed.
        name: String,
        /// The limit in force.
        limit: u64,
    },
    /// The entry produced more bytes than its header declares.
    #[error("entry `{name}` is larger than its declared size of {declared} bytes")]
    LargerThanDeclared {
        /// The entry name as written in the zip.
        name: String,
        /// Uncompressed size from the central directory.
        declared: u64,
    },
    /// The entry expands far more than real code does: a zip bomb.
    #[error("entry `{name}` expands more than {ratio} times its compressed size")]
    CompressionRatio {
        /// The entry name as written in the zip.
        name: String,
        /// The ratio in force.
        ratio: u64,
    },
    /// The entry's data could not be decompressed (corrupt data, bad checksum, size mismatch).
    #[error("could not unzip entry `{name}`: {source}")]
    ReadEntry {
        /// The entry name as written in the zip.
        name: String,
        /// What the decompressor reported.
        source: io::Error,
    },
    /// The entry could not be written to the destination.
    #[error("could not write entry `{name}`: {source}")]
    WriteEntry {
        /// The entry name as written in the zip.
        name: String,
        /// What the file system reported.
        source: io::Error,
    },
    /// A file of the directory being zipped could not be read.
    #[error("could not read `{path}`: {source}")]
    ReadSource {
        /// The local path.
        path: PathBuf,
        /// What the file system reported.
        source: io::Error,
    },
    /// A file name in the directory being zipped is not UTF-8.
    #[error("file name `{path}` is not valid UTF-8")]
    NonUtf8Name {
        /// The local path, lossily shown.
        path: PathBuf,
    },
    /// A symlink in the directory being zipped could not be extracted safely.
    #[error("symlink `{path}` is refused: {problem}")]
    UnsafeSymlink {
        /// The local path.
        path: PathBuf,
        /// What is wrong with its target.
        problem: EntryProblem,
    },
    /// The directory being zipped holds a socket, fifo or device.
    #[error("`{path}` is not a regular file, directory or symlink")]
    SpecialFile {
        /// The local path.
        path: PathBuf,
    },
    /// The zip writer failed.
    #[error("could not write the zip: {0}")]
    WriteZip(#[source] zip::result::ZipError),
}

/// What makes an entry name or symlink target unsafe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryProblem {
    /// The name is empty or names only the package root.
    Empty,
    /// The name starts with `/`.
    Absolute,
    /// The name has a `..` component.
    ParentDir,
    /// The name has a NUL byte.
    Nul,
    /// The name has a backslash (a Windows separator or drive path).
    Backslash,
    /// The name starts with a drive such as `C:`.
    Drive,
    /// The name has an empty component (`a//b`).
    EmptyComponent,
    /// An earlier entry made a symlink at this prefix; writing here would follow it.
    BelowSymlink {
        /// The symlink's path in the package.
        link: String,
    },
    /// A symlink's name ends with `/`.
    SymlinkIsDir,
    /// A symlink's target is not UTF-8 or longer than a path may be.
    SymlinkTargetInvalid,
    /// A symlink's target is absolute.
    SymlinkAbsolute {
        /// The target.
        target: String,
    },
    /// A symlink's target climbs above the package root.
    SymlinkEscapes {
        /// The target.
        target: String,
    },
    /// A symlink's target has `..` after a name, whose meaning depends on other symlinks.
    SymlinkInnerParent {
        /// The target.
        target: String,
    },
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the name is empty"),
            Self::Absolute => f.write_str("the path is absolute"),
            Self::ParentDir => f.write_str("the path contains `..`"),
            Self::Nul => f.write_str("the name contains a NUL byte"),
            Self::Backslash => f.write_str("the name contains a backslash"),
            Self::Drive => f.write_str("the path starts with a drive letter"),
            Self::EmptyComponent => f.write_str("the path has an empty component"),
            Self::BelowSymlink { link } => {
                write!(f, "it lies below the symlink `{link}`")
            }
            Self::SymlinkIsDir => f.write_str("a symlink name cannot end with `/`"),
            Self::SymlinkTargetInvalid => {
                f.write_str("the symlink target is empty, not UTF-8 or too long")
            }
            Self::SymlinkAbsolute { target } => {
                write!(f, "the symlink target `{target}` is absolute")
            }
            Self::SymlinkEscapes { target } => {
                write!(f, "the symlink target `{target}` points outside the package")
            }
            Self::SymlinkInnerParent { target } => write!(
                f,
                "the symlink target `{target}` has `..` after a name (only leading `..` are allowed)"
            ),
        }
    }
}
