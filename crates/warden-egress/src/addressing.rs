//! Addresses of instance links.
//!
//! The range is `198.18.0.0/15`, set aside for benchmarking networks (RFC 2544): never
//! routed on the internet and rarely used by hosts, so it does not collide with the
//! private ranges functions are given rules to reach. Several Warden servers may run on one
//! host (each with its own table), so the range is cut into [`BLOCKS`] blocks of /21, and
//! each server holds one ([`Block::acquire`], an exclusive lock that ends with the
//! process). Link `N` of block `B` is the /30 at `198.18.0.0 + 2048B + 4N`: the host's end,
//! interface `wd<B>n<N>`, at `+1`, the instance's `eth0` at `+2`.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The range instance links are carved from.
pub const INSTANCE_NETWORK: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(198, 18, 0, 0), 15) {
    Ok(n) => n,
    Err(_) => panic!("a /15 is a valid prefix"),
};

/// How many blocks the range holds (one /21 each).
pub const BLOCKS: u32 = 64;

/// How many links one block holds (one /30 each): the most instances with a network link
/// one server runs at once.
pub const MAX_LINKS: u32 = 512;

/// Prefix of every Warden server's host-side interface names.
pub const HOST_IFNAME_PREFIX: &str = "wd";

/// One server's share of the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockId(pub u32);

impl BlockId {
    /// The prefix of this block's host-side interface names (`wd7n`).
    pub fn ifname_prefix(self) -> String {
        format!("{HOST_IFNAME_PREFIX}{}n", self.0)
    }

    /// The name of this block's nftables table (in family `inet`).
    pub fn table(self) -> String {
        format!("warden_b{}", self.0)
    }
}

/// A block this process holds until it ends (an exclusive `flock` on its lock file, which
/// the kernel releases with the process, so a killed server's block is free again).
#[derive(Debug)]
pub struct Block {
    /// Which block.
    pub id: BlockId,
    _lock: std::fs::File,
}

impl Block {
    /// Takes the first free block, with lock files in `dir` (created `0700`).
    pub fn acquire(dir: &std::path::Path) -> Result<Block, crate::EgressError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let io = |source| {
            crate::EgressError::Unavailable(format!(
                "could not take an address block in {}: {source}",
                dir.display()
            ))
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        for id in 0..BLOCKS {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(dir.join(format!("block-{id}.lock")))
                .map_err(io)?;
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {
                    return Ok(Block {
                        id: BlockId(id),
                        _lock: file,
                    })
                }
                Err(rustix::io::Errno::WOULDBLOCK) => continue,
                Err(e) => return Err(io(e.into())),
            }
        }
        Err(crate::EgressError::Unavailable(format!(
            "all {BLOCKS} address blocks are held by other Warden servers"
        )))
    }
}

impl Block {
    /// Whether a process other than this one holds a block in `dir`.
    pub fn others_held(&self, dir: &std::path::Path) -> bool {
        (0..BLOCKS).filter(|id| *id != self.id.0).any(|id| {
            let Ok(file) = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join(format!("block-{id}.lock")))
            else {
                return false;
            };
            // Taken and let go at once if free (the lock ends with `file`).
            rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err()
        })
    }
}

/// One instance link's names and addresses.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkAddresses {
    /// The link's number.
    pub index: u32,
    /// The host-side interface (`wd<N>`).
    pub host_ifname: String,
    /// The host's address on the link (the instance's gateway).
    pub host_addr: Ipv4Addr,
    /// The instance's address.
    pub instance_addr: Ipv4Addr,
    /// The link's prefix length (30).
    pub prefix_len: u8,
}

impl LinkAddresses {
    /// The addresses of link `index` of `block`, or `None` past [`MAX_LINKS`] or
    /// [`BLOCKS`].
    pub fn of(block: BlockId, index: u32) -> Option<LinkAddresses> {
        if index >= MAX_LINKS || block.0 >= BLOCKS {
            return None;
        }
        let base = u32::from(INSTANCE_NETWORK.network()) + block.0 * MAX_LINKS * 4 + index * 4;
        Some(LinkAddresses {
            index,
            host_ifname: format!("{}{index}", block.ifname_prefix()),
            host_addr: Ipv4Addr::from(base + 1),
            instance_addr: Ipv4Addr::from(base + 2),
            prefix_len: 30,
        })
    }
}

/// Hands out the links of one block, and takes them back. Fresh links are used before
/// released ones, and released ones oldest first: the kernel removes a dead namespace's
/// veth pair asynchronously, so a link number is reused as late as possible.
#[derive(Debug)]
pub struct Allocator {
    block: BlockId,
    next: u32,
    free: std::collections::VecDeque<u32>,
}

impl Allocator {
    /// Links of `block`, all free.
    pub fn new(block: BlockId) -> Allocator {
        Allocator {
            block,
            next: 0,
            free: std::collections::VecDeque::new(),
        }
    }

    /// A free link, or `None` when all [`MAX_LINKS`] are in use.
    pub fn allocate(&mut self) -> Option<LinkAddresses> {
        let index = if self.next < MAX_LINKS {
            self.next += 1;
            self.next - 1
        } else {
            self.free.pop_front()?
        };
        LinkAddresses::of(self.block, index)
    }

    /// Gives a link back (its namespace, hence its veth pair, is gone).
    pub fn release(&mut self, index: u32) {
        if index < self.next && !self.free.contains(&index) {
            self.free.push_back(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_disjoint_slash_30s_inside_the_range() {
        let a = LinkAddresses::of(BlockId(0), 0).unwrap();
        assert_eq!(a.host_ifname, "wd0n0");
        assert_eq!(a.host_addr, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(a.instance_addr, Ipv4Addr::new(198, 18, 0, 2));
        let b = LinkAddresses::of(BlockId(0), 64).unwrap();
        assert_eq!(b.host_addr, Ipv4Addr::new(198, 18, 1, 1));
        let c = LinkAddresses::of(BlockId(1), 0).unwrap();
        assert_eq!(c.host_addr, Ipv4Addr::new(198, 18, 8, 1));
        let last = LinkAddresses::of(BlockId(BLOCKS - 1), MAX_LINKS - 1).unwrap();
        assert!(INSTANCE_NETWORK.contains(&last.instance_addr));
        assert_eq!(last.instance_addr, Ipv4Addr::new(198, 19, 255, 254));
        assert_eq!(last.host_ifname, "wd63n511");
        assert!(LinkAddresses::of(BlockId(0), MAX_LINKS).is_none());
        assert!(LinkAddresses::of(BlockId(BLOCKS), 0).is_none());
        // Interface names fit the kernel's 15 bytes.
        assert!(last.host_ifname.len() <= 15);
    }

    #[test]
    fn blocks_are_exclusive_while_held() {
        let dir = std::env::temp_dir().join(format!("warden-egress-blocks-{}", std::process::id()));
        let a = Block::acquire(&dir).unwrap();
        let b = Block::acquire(&dir).unwrap();
        assert_ne!(a.id, b.id);
        let held = a.id;
        drop(a);
        assert_eq!(Block::acquire(&dir).unwrap().id, held);
        drop(b);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_allocator_reuses_released_links_late_and_stops_at_the_end() {
        let mut a = Allocator::new(BlockId(3));
        let first = a.allocate().unwrap().index;
        let second = a.allocate().unwrap().index;
        assert_eq!((first, second), (0, 1));
        a.release(first);
        a.release(first);
        a.release(99);
        // Fresh links first.
        assert_eq!(a.allocate().unwrap().index, 2);
        a.next = MAX_LINKS;
        a.release(second);
        // Then released ones, oldest first, each once.
        assert_eq!(a.allocate().unwrap().index, 0);
        assert_eq!(a.allocate().unwrap().index, 1);
        assert!(a.allocate().is_none());
    }
}
