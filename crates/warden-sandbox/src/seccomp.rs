//! Builds the seccomp BPF program once, as a binary search over syscall numbers.
//!
//! Install cost grows with the number of instructions the kernel must emulate to build its
//! per-syscall cache, so a linear denylist is about four times slower to install than a
//! tree. This module is pure: it only produces instructions, which
//! `child` installs with one `prctl` after `clone`.

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30; // BPF_JMP | BPF_JGE | BPF_K
const BPF_JMP_JSET_K: u16 = 0x05 | 0x40; // BPF_JMP | BPF_JSET | BPF_K
const BPF_ALU_AND_K: u16 = 0x04 | 0x50; // BPF_ALU | BPF_AND | BPF_K
const BPF_RET_K: u16 = 0x06;

const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// Syscall numbers at or above this are the x32 ABI on x86_64.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0_LO: u32 = 16;
const OFF_ARG1_LO: u32 = 24;

/// Namespace flags refused on `clone` (all fit in the low 32 bits of the flags argument).
pub(crate) const CLONE_NS_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32
    | 0x80; // CLONE_NEWTIME

/// What the filter does for one syscall number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Fail with `EPERM`.
    Deny,
    /// Fail with `ENOSYS` (used for `clone3`, so libc falls back to `clone`, whose flags
    /// the filter can inspect).
    NoSys,
    /// `clone`: refuse namespace flags, allow the rest.
    CloneFlags,
    /// `socket`: allow only `AF_UNIX`, `AF_INET`, `AF_INET6`, and never raw or packet types.
    SocketFamily,
    /// `ioctl`: refuse terminal input injection (`TIOCSTI`, `TIOCLINUX`).
    IoctlRequest,
}

/// The syscalls the filter looks at, by x86_64 number. Everything else is allowed.
pub(crate) const RULES: &[(u32, Rule, &str)] = &[
    (16, Rule::IoctlRequest, "ioctl"),
    (41, Rule::SocketFamily, "socket"),
    (56, Rule::CloneFlags, "clone"),
    (101, Rule::Deny, "ptrace"),
    (134, Rule::Deny, "uselib"),
    (155, Rule::Deny, "pivot_root"),
    (156, Rule::Deny, "_sysctl"),
    (161, Rule::Deny, "chroot"),
    (163, Rule::Deny, "acct"),
    (165, Rule::Deny, "mount"),
    (166, Rule::Deny, "umount2"),
    (167, Rule::Deny, "swapon"),
    (168, Rule::Deny, "swapoff"),
    (169, Rule::Deny, "reboot"),
    (172, Rule::Deny, "iopl"),
    (173, Rule::Deny, "ioperm"),
    (175, Rule::Deny, "init_module"),
    (176, Rule::Deny, "delete_module"),
    (179, Rule::Deny, "quotactl"),
    (212, Rule::Deny, "lookup_dcookie"),
    (246, Rule::Deny, "kexec_load"),
    (248, Rule::Deny, "add_key"),
    (249, Rule::Deny, "request_key"),
    (250, Rule::Deny, "keyctl"),
    (272, Rule::Deny, "unshare"),
    (298, Rule::Deny, "perf_event_open"),
    (300, Rule::Deny, "fanotify_init"),
    (303, Rule::Deny, "name_to_handle_at"),
    (304, Rule::Deny, "open_by_handle_at"),
    (308, Rule::Deny, "setns"),
    (310, Rule::Deny, "process_vm_readv"),
    (311, Rule::Deny, "process_vm_writev"),
    (313, Rule::Deny, "finit_module"),
    (320, Rule::Deny, "kexec_file_load"),
    (321, Rule::Deny, "bpf"),
    (323, Rule::Deny, "userfaultfd"),
    (425, Rule::Deny, "io_uring_setup"),
    (426, Rule::Deny, "io_uring_enter"),
    (427, Rule::Deny, "io_uring_register"),
    (428, Rule::Deny, "open_tree"),
    (429, Rule::Deny, "move_mount"),
    (430, Rule::Deny, "fsopen"),
    (431, Rule::Deny, "fsconfig"),
    (432, Rule::Deny, "fsmount"),
    (433, Rule::Deny, "fspick"),
    (435, Rule::NoSys, "clone3"),
    (438, Rule::Deny, "pidfd_getfd"),
    (442, Rule::Deny, "mount_setattr"),
    (443, Rule::Deny, "quotactl_fd"),
    (467, Rule::Deny, "open_tree_attr"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    Allow,
    Eperm,
    Enosys,
    Kill,
    Clone,
    Socket,
    Ioctl,
    Node(usize),
}

enum Item {
    Stmt(SockFilter),
    Jump {
        code: u16,
        k: u32,
        jt: Label,
        jf: Label,
    },
    At(Label),
}

/// Error from assembling the program: a conditional jump went further than 255 instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JumpTooFar;

fn stmt(code: u16, k: u32) -> Item {
    Item::Stmt(SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    })
}

fn ret(k: u32) -> Item {
    stmt(BPF_RET_K, k)
}

/// Emits a search over `rules[lo..hi]`: jump to the rule's label on a match, otherwise
/// return allow. Ranges of up to three rules are compared linearly.
fn tree(rules: &[(u32, Rule, &str)], items: &mut Vec<Item>, next_node: &mut usize) {
    if rules.len() <= 3 {
        for (nr, rule, _) in rules {
            let target = match rule {
                Rule::Deny => Label::Eperm,
                Rule::NoSys => Label::Enosys,
                Rule::CloneFlags => Label::Clone,
                Rule::SocketFamily => Label::Socket,
                Rule::IoctlRequest => Label::Ioctl,
            };
            let fallthrough = Label::Node(*next_node);
            *next_node += 1;
            items.push(Item::Jump {
                code: BPF_JMP_JEQ_K,
                k: *nr,
                jt: target,
                jf: fallthrough,
            });
            items.push(Item::At(fallthrough));
        }
        items.push(ret(SECCOMP_RET_ALLOW));
        return;
    }
    let mid = rules.len() / 2;
    let right = Label::Node(*next_node);
    let left = Label::Node(*next_node + 1);
    *next_node += 2;
    items.push(Item::Jump {
        code: BPF_JMP_JGE_K,
        k: rules[mid].0,
        jt: right,
        jf: left,
    });
    items.push(Item::At(left));
    tree(&rules[..mid], items, next_node);
    items.push(Item::At(right));
    tree(&rules[mid..], items, next_node);
}

/// Builds the whole filter. The result is short (about 120 instructions) and every path
/// from entry to a return is at most about 12 instructions.
pub(crate) fn build() -> Result<Vec<SockFilter>, JumpTooFar> {
    let mut items = Vec::new();
    let mut next_node = 0;
    // Any other architecture (i386 via int 0x80) or an x32 number kills the process:
    // the tree below only knows x86_64 numbers.
    items.push(stmt(BPF_LD_W_ABS, OFF_ARCH));
    let arch_ok = Label::Node(next_node);
    next_node += 1;
    items.push(Item::Jump {
        code: BPF_JMP_JEQ_K,
        k: AUDIT_ARCH_X86_64,
        jt: arch_ok,
        jf: Label::Kill,
    });
    items.push(Item::At(arch_ok));
    items.push(stmt(BPF_LD_W_ABS, OFF_NR));
    let native = Label::Node(next_node);
    next_node += 1;
    items.push(Item::Jump {
        code: BPF_JMP_JGE_K,
        k: X32_SYSCALL_BIT,
        jt: Label::Kill,
        jf: native,
    });
    items.push(Item::At(native));
    tree(RULES, &mut items, &mut next_node);

    // clone(flags, ...): the flags are the first argument on x86_64.
    items.push(Item::At(Label::Clone));
    items.push(stmt(BPF_LD_W_ABS, OFF_ARG0_LO));
    items.push(Item::Jump {
        code: BPF_JMP_JSET_K,
        k: CLONE_NS_FLAGS,
        jt: Label::Eperm,
        jf: Label::Allow,
    });

    // socket(domain, type, protocol): an allowlist of families, then no raw or packet types.
    items.push(Item::At(Label::Socket));
    items.push(stmt(BPF_LD_W_ABS, OFF_ARG0_LO));
    let fam_ok = Label::Node(next_node);
    let not_unix = Label::Node(next_node + 1);
    let not_inet = Label::Node(next_node + 2);
    next_node += 3;
    items.push(Item::Jump {
        code: BPF_JMP_JEQ_K,
        k: libc::AF_UNIX as u32,
        jt: fam_ok,
        jf: not_unix,
    });
    items.push(Item::At(not_unix));
    items.push(Item::Jump {
        code: BPF_JMP_JEQ_K,
        k: libc::AF_INET as u32,
        jt: fam_ok,
        jf: not_inet,
    });
    items.push(Item::At(not_inet));
    items.push(Item::Jump {
        code: BPF_JMP_JEQ_K,
        k: libc::AF_INET6 as u32,
        jt: fam_ok,
        jf: Label::Eperm,
    });
    items.push(Item::At(fam_ok));
    items.push(stmt(BPF_LD_W_ABS, OFF_ARG1_LO));
    items.push(stmt(BPF_ALU_AND_K, 0xf)); // SOCK_TYPE_MASK: strips SOCK_CLOEXEC/NONBLOCK
    let not_raw = Label::Node(next_node);
    next_node += 1;
    items.push(Item::Jump {
        code: BPF_JMP_JEQ_K,
        k: libc::SOCK_RAW as u32,
        jt: Label::Eperm,
        jf: not_raw,
    });
    items.push(Item::At(not_raw));
    items.push(Item::Jump {
        code: BPF_JMP_JEQ_K,
        k: 10,
        jt: Label::Eperm,
        jf: Label::Allow,
    }); // SOCK_PACKET

    // ioctl(fd, request, ...): the tty layer compares the request as 32 bits.
    items.push(Item::At(Label::Ioctl));
    items.push(stmt(BPF_LD_W_ABS, OFF_ARG1_LO));
    let not_sti = Label::Node(next_node);
    items.push(Item::Jump {
        code: BPF_JMP_JEQ_K,
        k: libc::TIOCSTI as u32,
        jt: Label::Eperm,
        jf: not_sti,
    });
    items.push(Item::At(not_sti));
    items.push(Item::Jump {
        code: BPF_JMP_JEQ_K,
        k: 0x541c,
        jt: Label::Eperm,
        jf: Label::Allow,
    }); // TIOCLINUX

    items.push(Item::At(Label::Allow));
    items.push(ret(SECCOMP_RET_ALLOW));
    items.push(Item::At(Label::Eperm));
    items.push(ret(SECCOMP_RET_ERRNO | libc::EPERM as u32));
    items.push(Item::At(Label::Enosys));
    items.push(ret(SECCOMP_RET_ERRNO | libc::ENOSYS as u32));
    items.push(Item::At(Label::Kill));
    items.push(ret(SECCOMP_RET_KILL_PROCESS));
    assemble(&items)
}

fn assemble(items: &[Item]) -> Result<Vec<SockFilter>, JumpTooFar> {
    let mut positions: Vec<(Label, usize)> = Vec::new();
    let mut pc = 0;
    for item in items {
        match item {
            Item::At(label) => positions.push((*label, pc)),
            _ => pc += 1,
        }
    }
    let find = |label: Label| positions.iter().find(|(l, _)| *l == label).map(|(_, p)| *p);
    let offset = |from: usize, label: Label| -> Result<usize, JumpTooFar> {
        let to = find(label).ok_or(JumpTooFar)?;
        to.checked_sub(from + 1).ok_or(JumpTooFar)
    };
    let mut out = Vec::with_capacity(pc);
    for item in items {
        let pc = out.len();
        match item {
            Item::At(_) => {}
            Item::Stmt(s) => out.push(*s),
            Item::Jump { code, k, jt, jf } => {
                let jt = u8::try_from(offset(pc, *jt)?).map_err(|_| JumpTooFar)?;
                let jf = u8::try_from(offset(pc, *jf)?).map_err(|_| JumpTooFar)?;
                out.push(SockFilter {
                    code: *code,
                    jt,
                    jf,
                    k: *k,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seccomp data as the kernel would present it, for the interpreter below.
    fn data(nr: u32, arch: u32, args: [u64; 6]) -> [u8; 64] {
        let mut d = [0u8; 64];
        d[0..4].copy_from_slice(&nr.to_le_bytes());
        d[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            d[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        d
    }

    /// A tiny classic-BPF interpreter covering the opcodes `build` emits.
    fn run(prog: &[SockFilter], d: &[u8; 64]) -> u32 {
        let mut acc: u32 = 0;
        let mut pc = 0;
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 64, "path too long");
            let i = prog[pc];
            match i.code {
                BPF_LD_W_ABS => {
                    let k = i.k as usize;
                    acc = u32::from_le_bytes(d[k..k + 4].try_into().unwrap());
                    pc += 1;
                }
                BPF_ALU_AND_K => {
                    acc &= i.k;
                    pc += 1;
                }
                BPF_RET_K => return i.k,
                code => {
                    let taken = match code {
                        BPF_JMP_JEQ_K => acc == i.k,
                        BPF_JMP_JGE_K => acc >= i.k,
                        BPF_JMP_JSET_K => acc & i.k != 0,
                        other => panic!("unexpected opcode {other:#x}"),
                    };
                    pc += 1 + if taken { i.jt as usize } else { i.jf as usize };
                }
            }
        }
    }

    fn verdict(nr: u32, args: [u64; 6]) -> u32 {
        run(&build().unwrap(), &data(nr, AUDIT_ARCH_X86_64, args))
    }

    const EPERM: u32 = SECCOMP_RET_ERRNO | libc::EPERM as u32;

    #[test]
    fn every_denied_syscall_gets_eperm_and_neighbours_are_allowed() {
        for (nr, rule, name) in RULES {
            if *rule == Rule::Deny {
                assert_eq!(verdict(*nr, [0; 6]), EPERM, "{name}");
            }
        }
        for nr in 0..500u32 {
            if RULES.iter().all(|(n, _, _)| *n != nr) {
                assert_eq!(verdict(nr, [0; 6]), SECCOMP_RET_ALLOW, "syscall {nr}");
            }
        }
    }

    #[test]
    fn clone_with_namespace_flags_is_refused_and_plain_fork_allowed() {
        let fork_flags =
            (libc::SIGCHLD | libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID) as u64;
        assert_eq!(verdict(56, [fork_flags, 0, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD) as u64;
        assert_eq!(verdict(56, [thread, 0, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        for flag in [
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWPID,
        ] {
            assert_eq!(
                verdict(56, [fork_flags | flag as u64, 0, 0, 0, 0, 0]),
                EPERM
            );
        }
        assert_eq!(
            verdict(435, [0; 6]),
            SECCOMP_RET_ERRNO | libc::ENOSYS as u32
        );
    }

    #[test]
    fn sockets_allow_inet_and_unix_streams_only() {
        let v = |domain: i32, ty: i32| verdict(41, [domain as u64, ty as u64, 0, 0, 0, 0]);
        assert_eq!(
            v(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(v(libc::AF_INET6, libc::SOCK_DGRAM), SECCOMP_RET_ALLOW);
        assert_eq!(v(libc::AF_UNIX, libc::SOCK_SEQPACKET), SECCOMP_RET_ALLOW);
        assert_eq!(v(libc::AF_INET, libc::SOCK_RAW), EPERM);
        assert_eq!(
            v(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_NONBLOCK),
            EPERM
        );
        assert_eq!(v(libc::AF_PACKET, libc::SOCK_DGRAM), EPERM);
        assert_eq!(v(libc::AF_NETLINK, libc::SOCK_RAW), EPERM);
        assert_eq!(v(libc::AF_VSOCK, libc::SOCK_STREAM), EPERM);
    }

    #[test]
    fn foreign_architectures_and_x32_numbers_are_killed() {
        let prog = build().unwrap();
        assert_eq!(
            run(&prog, &data(1, 0x4000_0003, [0; 6])),
            SECCOMP_RET_KILL_PROCESS
        );
        assert_eq!(
            run(&prog, &data(X32_SYSCALL_BIT | 1, AUDIT_ARCH_X86_64, [0; 6])),
            SECCOMP_RET_KILL_PROCESS
        );
    }

    #[test]
    fn ioctl_refuses_terminal_injection() {
        assert_eq!(verdict(16, [0, libc::TIOCSTI, 0, 0, 0, 0]), EPERM);
        assert_eq!(
            verdict(16, [0, libc::FIONREAD, 0, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        );
    }

    #[test]
    fn rules_are_sorted_and_program_is_short() {
        assert!(RULES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(build().unwrap().len() < 160);
    }

    proptest::proptest! {
        #[test]
        fn any_syscall_and_args_terminate_with_a_known_verdict(nr in 0u32..0x5000_0000, a0 in proptest::num::u64::ANY, a1 in proptest::num::u64::ANY) {
            let v = verdict(nr, [a0, a1, 0, 0, 0, 0]);
            proptest::prop_assert!([SECCOMP_RET_ALLOW, EPERM, SECCOMP_RET_ERRNO | libc::ENOSYS as u32, SECCOMP_RET_KILL_PROCESS].contains(&v));
        }
    }
}
