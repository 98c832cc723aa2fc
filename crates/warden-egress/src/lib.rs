//! Warden's network enforcement: what a sandboxed instance may reach, decided by the
//! kernel at the packet level.
//!
//! An instance with no network configuration has a loopback interface only (the sandbox's
//! default). An instance whose function is attached to security groups (or, with
//! `--default-egress internet`, any instance) runs in a network namespace with one veth
//! link to the host ([`addressing`]): `eth0` inside, `wd<N>` on the host, a /30 of
//! [`addressing::INSTANCE_NETWORK`] between them, and a default route through the host.
//! Everything that crosses that link is judged by one nftables table in the host's
//! namespace, `inet warden` ([`nft::base_table`]):
//!
//! - packets from an instance (forwarded, or to the host itself) jump, by their input
//!   interface, to the egress chain of the instance's policy; packets to an instance (from
//!   another instance, or from the host) jump by output interface to its ingress chain;
//!   established and related traffic passes; anything no rule accepts is rejected
//!   (`admin-prohibited`), so a refused connection fails at once rather than timing out;
//! - a policy's chains are compiled from its security groups ([`rules`]): private ranges,
//!   link-local (the cloud metadata address included), Warden's own instance range and the
//!   host's own addresses are reachable only through a rule whose range lies entirely
//!   inside them (naming them), never through a wider rule such as `0.0.0.0/0`;
//! - IPv6 from an instance is rejected (instances get no IPv6 address at all);
//! - traffic leaving for a non-instance interface is masqueraded to the host's address.
//!
//! The instance has no capability in its namespace's owning user namespace, so it can
//! change neither its routes nor any rule, and raw sockets are refused by its seccomp
//! filter; the table lives in the host's namespace, out of its reach. A rule change
//! rewrites the chains of every policy using the group in one nftables transaction
//! ([`Firewall::refresh`]), which warm instances see at once.
//!
//! Enforcement needs root (to create veth pairs and load rules) and the `nft` program;
//! [`probe`] says whether this host has them.

pub mod addressing;
mod firewall;
pub mod flows;
pub mod nfnl;
pub mod nft;
pub mod rules;

pub use firewall::{DefaultEgress, Firewall, GroupSource, Policy};
pub use rules::{GroupId, GroupRules, Peer, Protocol, Rule};

/// Why the network could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// A program this needs is missing or failed to start.
    #[error("could not run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `nft` refused a change.
    #[error("`{program}` refused the change: {stderr}")]
    Refused {
        /// The program.
        program: String,
        /// What it printed.
        stderr: String,
    },
    /// Egress is not available on this host.
    #[error("network egress control is unavailable here: {0}")]
    Unavailable(String),
    /// A policy names a security group that does not exist.
    #[error("the security group `{0}` does not exist")]
    NoSuchGroup(String),
    /// An identifier that cannot be used in a rule.
    #[error("`{0}` is not a valid security group id")]
    BadGroupId(String),
    /// An nf_tables netlink batch failed (nothing in it was applied).
    #[error("nf_tables netlink: {0}")]
    Netlink(String),
}

/// Whether this host can enforce egress rules, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Root, with `nft`, and the kernel accepts nftables tables.
    Enforced,
    /// Egress control cannot work here; the reason.
    Unavailable(String),
}

/// Checks what enforcing egress needs: root, the `nft` program, and a kernel with
/// nftables (by listing tables, which changes nothing). Links themselves are made over
/// rtnetlink, without `ip`.
pub fn probe() -> Capability {
    if rustix::process::geteuid().is_root() {
        if nft::find_program("nft").is_none() {
            return Capability::Unavailable(
                "the `nft` program is not installed (Debian: nftables)".to_owned(),
            );
        }
        match nft::run("nft", &["list", "tables"], "") {
            Ok(_) => Capability::Enforced,
            Err(e) => Capability::Unavailable(format!("the kernel refused nftables: {e}")),
        }
    } else {
        Capability::Unavailable(
            "not root: creating veth links and loading nftables rules needs root, so instances \
             keep loopback only"
                .to_owned(),
        )
    }
}
