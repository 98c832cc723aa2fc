//! Binding instance links to their policy with nf_tables netlink messages, without an
//! `nft` process.
//!
//! Binding a new link (its interface into the `egress_of` and `ingress_of` verdict maps,
//! its address into its groups' sets) is on the path of a cold start that finds no linked
//! namespace ready. Run as an `nft -f` script, it costs a process that starts libnftables
//! and loads the ruleset into its cache (about 4-5 ms of CPU here); as one netlink batch it
//! costs a socket and one `sendmsg`, which the kernel answers before returning.
//!
//! Why hand-written: the messages are four kinds of fixed shape (batch begin and end, a set
//! and its elements), built from values Warden made itself (names from [`BlockId`] and
//! [`ChainKey`], addresses from the allocator), and the only crate that writes nf_tables
//! messages in Rust is GPL-licensed. What the kernel answers is parsed for its error codes
//! only, defensively (see [`acks`] and its property test). Everything else the table needs
//! (the base table, rule changes, unbinding) still goes through `nft` scripts, and the same
//! scripts remain the fallback when this path fails.

use std::net::Ipv4Addr;
use std::time::Duration;

use rustix::net::netlink::{SocketAddrNetlink, NETFILTER};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::addressing::{BlockId, LinkAddresses};
use crate::nft::ChainKey;
use crate::rules::GroupId;
use crate::EgressError;

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_NEWSETELEM: u16 = 12;

const AF_UNSPEC: u8 = 0;
const NFPROTO_INET: u8 = 1;

const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_ID: u16 = 10;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

/// `NFT_JUMP`, a verdict code.
const NFT_JUMP: i32 = -3;
/// nftables' datatype number of `ipv4_addr`.
const TYPE_IPADDR: u32 = 7;
/// The length of an `ifname` key: `IFNAMSIZ`.
const IFNAMSIZ: usize = 16;

/// How long the kernel's answer is waited for (it is normally there when `send` returns).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds `links` to the policy `key` (and their addresses into the sets of `groups`,
/// creating a missing set as `nft`'s `add set ... { type ipv4_addr; }` would), in one
/// transaction: all of them are bound, or none is.
///
/// # Errors
/// [`EgressError::Netlink`] when the socket fails or the kernel refuses the batch (a chain
/// or the table missing, say); nothing was changed then.
pub fn bind_links(
    block: BlockId,
    links: &[&LinkAddresses],
    key: &ChainKey,
    groups: &[GroupId],
) -> Result<(), EgressError> {
    let batch = bind_batch(block, links, key, groups, 1)?;
    send_batch(&batch)
}

/// The messages of [`bind_links`], sequence numbers from `first_seq`.
fn bind_batch(
    block: BlockId,
    links: &[&LinkAddresses],
    key: &ChainKey,
    groups: &[GroupId],
    first_seq: u32,
) -> Result<Batch, EgressError> {
    let table = block.table();
    let mut b = Batch::new(first_seq);
    b.begin_batch();
    for (verdict_map, chain) in [("egress_of", key.egress()), ("ingress_of", key.ingress())] {
        let m = b.begin_message(NFT_MSG_NEWSETELEM, NLM_F_CREATE);
        b.string(NFTA_SET_ELEM_LIST_TABLE, &table);
        b.string(NFTA_SET_ELEM_LIST_SET, verdict_map);
        let elements = b.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
        for link in links {
            let element = b.nest(NFTA_LIST_ELEM);
            let k = b.nest(NFTA_SET_ELEM_KEY);
            b.attr(NFTA_DATA_VALUE, &ifname_key(&link.host_ifname)?);
            b.end_nest(k);
            let data = b.nest(NFTA_SET_ELEM_DATA);
            let verdict = b.nest(NFTA_DATA_VERDICT);
            b.attr(NFTA_VERDICT_CODE, &NFT_JUMP.to_be_bytes());
            b.string(NFTA_VERDICT_CHAIN, &chain);
            b.end_nest(verdict);
            b.end_nest(data);
            b.end_nest(element);
        }
        b.end_nest(elements);
        b.end_message(m);
    }
    for (id, group) in (1u32..).zip(groups) {
        let set = group.set_name();
        let m = b.begin_message(NFT_MSG_NEWSET, NLM_F_CREATE);
        b.string(NFTA_SET_TABLE, &table);
        b.string(NFTA_SET_NAME, &set);
        b.attr(NFTA_SET_FLAGS, &0u32.to_be_bytes());
        b.attr(NFTA_SET_KEY_TYPE, &TYPE_IPADDR.to_be_bytes());
        b.attr(NFTA_SET_KEY_LEN, &4u32.to_be_bytes());
        b.attr(NFTA_SET_ID, &id.to_be_bytes());
        b.end_message(m);
        let m = b.begin_message(NFT_MSG_NEWSETELEM, NLM_F_CREATE);
        b.string(NFTA_SET_ELEM_LIST_TABLE, &table);
        b.string(NFTA_SET_ELEM_LIST_SET, &set);
        let elements = b.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
        for link in links {
            let element = b.nest(NFTA_LIST_ELEM);
            let k = b.nest(NFTA_SET_ELEM_KEY);
            b.attr(NFTA_DATA_VALUE, &ipv4_key(link.instance_addr));
            b.end_nest(k);
            b.end_nest(element);
        }
        b.end_nest(elements);
        b.end_message(m);
    }
    b.end_batch();
    Ok(b)
}

/// An interface name as an `ifname` key: its bytes, zero-padded to `IFNAMSIZ`.
fn ifname_key(name: &str) -> Result<[u8; IFNAMSIZ], EgressError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= IFNAMSIZ || bytes.contains(&0) {
        return Err(EgressError::Netlink(format!(
            "{name:?} is not an interface name"
        )));
    }
    let mut key = [0u8; IFNAMSIZ];
    key[..bytes.len()].copy_from_slice(bytes);
    Ok(key)
}

fn ipv4_key(addr: Ipv4Addr) -> [u8; 4] {
    addr.octets()
}

/// A netlink batch being written: messages, and the sequence numbers whose
/// acknowledgements it waits for.
struct Batch {
    buf: Vec<u8>,
    next_seq: u32,
    acked: Vec<u32>,
}

impl Batch {
    fn new(first_seq: u32) -> Self {
        Batch {
            buf: Vec::with_capacity(1024),
            next_seq: first_seq,
            acked: Vec::new(),
        }
    }

    /// Writes a message header (its length patched by `end_message`) and the `nfgenmsg`
    /// that follows it; returns where the message starts.
    fn header(&mut self, kind: u16, flags: u16, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.push(family);
        self.buf.push(0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        if flags & NLM_F_ACK != 0 {
            self.acked.push(seq);
        }
        start
    }

    fn begin_batch(&mut self) {
        let m = self.header(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            AF_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        self.end_message(m);
    }

    fn end_batch(&mut self) {
        let m = self.header(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            AF_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        self.end_message(m);
    }

    fn begin_message(&mut self, message: u16, flags: u16) -> usize {
        self.header(
            (NFNL_SUBSYS_NFTABLES << 8) | message,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            NFPROTO_INET,
            0,
        )
    }

    fn end_message(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = (4 + value.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
    }

    /// A NUL-terminated string attribute.
    fn string(&mut self, kind: u16, value: &str) {
        let mut bytes = Vec::with_capacity(value.len() + 1);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
        self.attr(kind, &bytes);
    }

    fn nest(&mut self, kind: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        start
    }

    fn end_nest(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
}

/// Sends `batch` on a new nf_tables netlink socket and waits for every acknowledgement.
fn send_batch(batch: &Batch) -> Result<(), EgressError> {
    let failed = |what: &str, e: rustix::io::Errno| {
        EgressError::Netlink(format!("{what}: {}", std::io::Error::from(e)))
    };
    let socket = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        Some(NETFILTER),
    )
    .map_err(|e| failed("opening an nf_tables netlink socket", e))?;
    rustix::net::sockopt::set_socket_timeout(
        &socket,
        rustix::net::sockopt::Timeout::Recv,
        Some(ANSWER_TIMEOUT),
    )
    .map_err(|e| failed("setting the answer timeout", e))?;
    let kernel = SocketAddrNetlink::new(0, 0);
    let sent = rustix::net::sendto(&socket, &batch.buf, SendFlags::empty(), &kernel)
        .map_err(|e| failed("sending the batch", e))?;
    if sent != batch.buf.len() {
        return Err(EgressError::Netlink(format!(
            "the kernel took {sent} of the batch's {} bytes",
            batch.buf.len()
        )));
    }
    let mut waiting: Vec<u32> = batch.acked.clone();
    let mut answer = vec![0u8; 16 * 1024];
    while !waiting.is_empty() {
        let (n, _) = rustix::net::recv(&socket, &mut answer[..], RecvFlags::empty())
            .map_err(|e| failed("reading the kernel's answer", e))?;
        for (seq, code) in acks(&answer[..n.min(answer.len())])? {
            if code != 0 {
                return Err(EgressError::Netlink(format!(
                    "the kernel refused the binding: {}",
                    std::io::Error::from_raw_os_error(code.saturating_neg())
                )));
            }
            waiting.retain(|s| *s != seq);
        }
    }
    Ok(())
}

/// The acknowledgements and errors in one datagram of the kernel's answer: each message's
/// sequence number and error code (0 for an acknowledgement). Other messages are skipped.
///
/// # Errors
/// A message whose length does not fit the datagram.
fn acks(datagram: &[u8]) -> Result<Vec<(u32, i32)>, EgressError> {
    let malformed = || EgressError::Netlink("a malformed netlink answer".to_owned());
    let mut out = Vec::new();
    let mut rest = datagram;
    while rest.len() >= 16 {
        let word = |at: usize| -> Option<[u8; 4]> { rest.get(at..at + 4)?.try_into().ok() };
        let len = u32::from_ne_bytes(word(0).ok_or_else(malformed)?) as usize;
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        let seq = u32::from_ne_bytes(word(8).ok_or_else(malformed)?);
        if len < 16 || len > rest.len() {
            return Err(malformed());
        }
        if kind == NLMSG_ERROR {
            let code = i32::from_ne_bytes(word(16).ok_or_else(malformed)?);
            if len < 20 {
                return Err(malformed());
            }
            out.push((seq, code));
        }
        let step = len.next_multiple_of(4).min(rest.len());
        rest = &rest[step..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message_kinds(buf: &[u8]) -> Vec<(u16, u16)> {
        let mut kinds = Vec::new();
        let mut rest = buf;
        while !rest.is_empty() {
            let len = u32::from_ne_bytes(rest[..4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            let flags = u16::from_ne_bytes([rest[6], rest[7]]);
            assert!(
                len >= 20 && len.is_multiple_of(4) && len <= rest.len(),
                "{len}"
            );
            kinds.push((kind, flags));
            rest = &rest[len..];
        }
        kinds
    }

    #[test]
    fn a_batch_is_begin_elements_sets_end_with_acks_on_the_changes() {
        let block = BlockId(3);
        let a = LinkAddresses::of(block, 1).unwrap();
        let b = LinkAddresses::of(block, 2).unwrap();
        let g = GroupId::parse("sg-0a").unwrap();
        let key = ChainKey::of_groups(std::slice::from_ref(&g));
        let batch = bind_batch(block, &[&a, &b], &key, &[g], 7).unwrap();
        let kinds = message_kinds(&batch.buf);
        let newsetelem = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM;
        let newset = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSET;
        let change = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
        assert_eq!(
            kinds,
            vec![
                (NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST),
                (newsetelem, change),
                (newsetelem, change),
                (newset, change),
                (newsetelem, change),
                (NFNL_MSG_BATCH_END, NLM_F_REQUEST),
            ]
        );
        // Sequence numbers 7 (begin) to 12 (end); the four changes are acknowledged.
        assert_eq!(batch.acked, vec![8, 9, 10, 11]);
    }

    #[test]
    fn interface_names_must_fit_an_ifname_key() {
        assert_eq!(&ifname_key("wdn3a").unwrap()[..6], b"wdn3a\0");
        for bad in ["", "0123456789abcdef", "a\0b"] {
            assert!(ifname_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn acknowledgements_and_errors_are_read_by_sequence_number() {
        let mut d = Vec::new();
        for (seq, code) in [(8u32, 0i32), (9, -2)] {
            d.extend_from_slice(&36u32.to_ne_bytes());
            d.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            d.extend_from_slice(&0u16.to_ne_bytes());
            d.extend_from_slice(&seq.to_ne_bytes());
            d.extend_from_slice(&0u32.to_ne_bytes());
            d.extend_from_slice(&code.to_ne_bytes());
            d.extend_from_slice(&[0u8; 16]);
        }
        assert_eq!(acks(&d).unwrap(), vec![(8, 0), (9, -2)]);
        // A length past the end, or below a header's, is refused.
        let mut long = d.clone();
        long[..4].copy_from_slice(&400u32.to_ne_bytes());
        assert!(acks(&long).is_err());
        let mut short = d;
        short[..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(acks(&short).is_err());
    }

    /// Runs `f` on a thread inside a new network namespace (held by an `unshare -n`
    /// process), so that the tables it makes are its own; `nft` children of that thread
    /// are in it too.
    fn in_private_netns(f: impl FnOnce() + Send + 'static) {
        assert!(
            rustix::process::geteuid().is_root(),
            "nf_tables needs root (the test suite runs as root)"
        );
        let mut holder = std::process::Command::new("unshare")
            .args(["-n", "sleep", "600"])
            .spawn()
            .unwrap();
        let ns = format!("/proc/{}/ns/net", holder.id());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        while std::fs::read_link(&ns).ok().as_ref() == Some(&own) {
            assert!(
                std::time::Instant::now() < deadline,
                "unshare -n did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let fd = std::fs::File::open(&ns).unwrap();
        let result = std::thread::spawn(move || {
            use std::os::fd::AsFd;
            rustix::thread::move_into_link_name_space(
                fd.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            f();
        })
        .join();
        let _ = holder.kill();
        let _ = holder.wait();
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }

    fn nft_json(args: &[&str]) -> serde_json::Value {
        let mut all = vec!["-j"];
        all.extend_from_slice(args);
        serde_json::from_str(&crate::nft::run("nft", &all, "").unwrap()).unwrap()
    }

    /// The elements of a set or map as `nft -j` prints them.
    fn elements(table: &str, kind: &str, name: &str) -> String {
        let listed = nft_json(&["list", kind, "inet", table, name]);
        listed["nftables"][1][kind]["elem"].to_string()
    }

    #[test]
    fn the_kernel_takes_a_binding_exactly_as_the_nft_script_would_make_it() {
        in_private_netns(|| {
            use crate::nft::{apply, base_table, replace_chain};
            let block = BlockId(7);
            let table = block.table();
            let g = GroupId::parse("sg-0b").unwrap();
            let referenced = GroupId::parse("sg-0c").unwrap();
            let key = ChainKey::of_groups(std::slice::from_ref(&g));
            // The table, and the policy's chains (the egress chain names `referenced`'s
            // set, so nft makes that one; `g`'s set does not exist yet).
            let body = vec![format!("ip daddr @{} accept", referenced.set_name())];
            apply(&format!(
                "{}{}{}",
                base_table(block, false),
                replace_chain(
                    block,
                    &key.egress(),
                    &body,
                    std::slice::from_ref(&referenced)
                ),
                replace_chain(block, &key.ingress(), &[], &[]),
            ))
            .unwrap();
            let a = LinkAddresses::of(block, 1).unwrap();
            let b = LinkAddresses::of(block, 2).unwrap();
            bind_links(block, &[&a, &b], &key, &[g.clone(), referenced.clone()]).unwrap();

            let egress = elements(&table, "map", "egress_of");
            for l in [&a, &b] {
                assert!(
                    egress.contains(&format!("\"{}\"", l.host_ifname)),
                    "{egress}"
                );
            }
            assert!(
                egress.contains(&format!("\"jump\":{{\"target\":\"{}\"", key.egress())),
                "{egress}"
            );
            let ingress = elements(&table, "map", "ingress_of");
            assert!(ingress.contains(&key.ingress()), "{ingress}");
            // Both group sets hold both addresses: the one netlink made, and the one nft
            // had made (taken as it was, not refused as a different set).
            for set in [&g, &referenced] {
                let members = elements(&table, "set", &set.set_name());
                for l in [&a, &b] {
                    assert!(
                        members.contains(&format!("\"{}\"", l.instance_addr)),
                        "{members}"
                    );
                }
            }
            // nft takes the set netlink made as its own: a later rule change naming it
            // (`add set` again, then a rule) applies.
            let body = vec![format!("ip daddr @{} accept", g.set_name())];
            apply(&replace_chain(
                block,
                &key.egress(),
                &body,
                std::slice::from_ref(&g),
            ))
            .unwrap();
            let members = elements(&table, "set", &g.set_name());
            assert!(members.contains(&a.instance_addr.to_string()), "{members}");

            // A refused batch changes nothing: a policy whose chains do not exist.
            let c = LinkAddresses::of(block, 3).unwrap();
            let missing = ChainKey::of_groups(&[GroupId::parse("sg-0d").unwrap()]);
            let refused = bind_links(block, &[&c], &missing, std::slice::from_ref(&g));
            assert!(
                matches!(refused, Err(EgressError::Netlink(_))),
                "{refused:?}"
            );
            let egress = elements(&table, "map", "egress_of");
            assert!(!egress.contains(&c.host_ifname), "{egress}");
            let members = elements(&table, "set", &g.set_name());
            assert!(!members.contains(&c.instance_addr.to_string()), "{members}");
        });
    }

    proptest! {
        #[test]
        fn any_answer_is_read_or_refused_without_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = acks(&bytes);
        }
    }
}
