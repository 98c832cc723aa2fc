//! Landlock, the second filesystem layer: which access rights to handle for the kernel's
//! ABI and which rules to grant inside the sandbox.
//!
//! The rules are applied in the child after `pivot_root` (rules bind to inodes)
//! with raw syscalls, because the child of a multi-threaded parent must not allocate.

use std::ffi::CString;

pub(crate) const ACCESS_FS_EXECUTE: u64 = 1 << 0;
pub(crate) const ACCESS_FS_WRITE_FILE: u64 = 1 << 1;
pub(crate) const ACCESS_FS_READ_FILE: u64 = 1 << 2;
pub(crate) const ACCESS_FS_READ_DIR: u64 = 1 << 3;
const ACCESS_FS_ABI1_ALL: u64 = (1 << 13) - 1;
const ACCESS_FS_REFER: u64 = 1 << 13;
const ACCESS_FS_TRUNCATE: u64 = 1 << 14;
const ACCESS_FS_IOCTL_DEV: u64 = 1 << 15;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;
const CREATE_RULESET_VERSION: u32 = 1 << 0;
pub(crate) const RULE_PATH_BENEATH: libc::c_int = 1;

/// `struct landlock_ruleset_attr` (the ABI 6 layout; older kernels accept it when the
/// fields they do not know are zero).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RulesetAttr {
    pub handled_access_fs: u64,
    pub handled_access_net: u64,
    pub scoped: u64,
}

/// `struct landlock_path_beneath_attr`, packed as in the kernel header.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct PathBeneathAttr {
    pub allowed_access: u64,
    pub parent_fd: i32,
}

/// The Landlock ABI version of the running kernel, or `None` when Landlock is absent or
/// disabled.
pub(crate) fn abi_version() -> Option<u32> {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a null attribute and size 0 only
    // queries the ABI version; no memory is read or written and no fd is created.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(v).ok().filter(|v| *v >= 1)
}

/// Everything the child needs to apply Landlock, prepared before `clone`.
#[derive(Debug)]
pub(crate) struct Plan {
    pub attr: RulesetAttr,
    /// Paths inside the sandbox and the rights granted beneath them.
    pub rules: Vec<(CString, u64)>,
}

/// Builds the ruleset for a kernel ABI: read and execute everywhere in the (already
/// minimal) root, full access beneath `/tmp`, read and write on the device nodes.
pub(crate) fn plan(abi: u32) -> Plan {
    let mut fs = ACCESS_FS_ABI1_ALL;
    if abi >= 2 {
        fs |= ACCESS_FS_REFER;
    }
    if abi >= 3 {
        fs |= ACCESS_FS_TRUNCATE;
    }
    if abi >= 5 {
        fs |= ACCESS_FS_IOCTL_DEV;
    }
    let scoped = if abi >= 6 {
        SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    } else {
        0
    };
    let read = ACCESS_FS_EXECUTE | ACCESS_FS_READ_FILE | ACCESS_FS_READ_DIR;
    let dev = ACCESS_FS_READ_FILE
        | ACCESS_FS_WRITE_FILE
        | (fs & (ACCESS_FS_TRUNCATE | ACCESS_FS_IOCTL_DEV));
    let cs = |s: &str| CString::new(s).unwrap_or_default();
    Plan {
        attr: RulesetAttr {
            handled_access_fs: fs,
            handled_access_net: 0,
            scoped,
        },
        rules: vec![(cs("/"), read), (cs("/tmp"), fs), (cs("/dev"), dev)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_follow_the_abi() {
        let p1 = plan(1);
        assert_eq!(p1.attr.handled_access_fs, (1 << 13) - 1);
        assert_eq!(p1.attr.scoped, 0);
        let p6 = plan(6);
        assert_eq!(p6.attr.handled_access_fs, (1 << 16) - 1);
        assert_eq!(p6.attr.scoped, 3);
        // Granted rights must be a subset of the handled ones or the kernel refuses them.
        for p in [p1, p6] {
            for (_, r) in &p.rules {
                assert_eq!(r & !p.attr.handled_access_fs, 0);
            }
        }
    }

    #[test]
    fn path_beneath_attr_has_kernel_size() {
        assert_eq!(std::mem::size_of::<PathBeneathAttr>(), 12);
        assert_eq!(std::mem::size_of::<RulesetAttr>(), 24);
    }
}
