//! `--store` and `--bus`: where a node keeps what it shares with other nodes, and how it
//! hears of their changes.
//!
//! The embedded default keeps everything in the data directory (SQLite files and sealed
//! zips). `--store postgres://...` puts the function store (functions, versions,
//! aliases, layers, the async queue, logs), the code (sealed, in chunks), identity and the
//! KMS keys in PostgreSQL, so several nodes serve the same functions; each node keeps its
//! own data directory for what is still per node (see ARCHITECTURE.md, "Many nodes").
//!
//! Connection URLs carry passwords: a password is accepted only from the environment
//! (`WARDEN_STORE`, `WARDEN_BUS`), never from the command line, where every local user
//! can read it in the process list; and URLs are shown only redacted.

use std::sync::Arc;

use anyhow::{bail, Context};
use warden_types::change::{ChangeEvent, ChangeObserver};
use warden_types::NodeId;

/// Connections each smaller shared store keeps to PostgreSQL (identity, KMS, secrets,
/// and one pool for code signing, input contracts, function URLs, the network model, the
/// configuration history and the findings): they are read from memory, or rarely, and
/// written rarely.
pub(crate) const SIDE_STORE_CONNECTIONS: usize = 2;

/// Connections the shared audit trail keeps: one for the writer's group commits, one for
/// readers (LookupEvents, verification, the posture checks, the size bound).
pub(crate) const AUDIT_STORE_CONNECTIONS: usize = 2;

/// How often a node re-reads identity and the KMS keys for changes other nodes made: the
/// bound on how long a key revoked on another node still works here.
pub(crate) const SHARED_REFRESH_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

/// Where the node's shared state lives.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum StoreChoice {
    /// SQLite files in the data directory.
    Embedded,
    /// A PostgreSQL database shared with other nodes.
    Postgres(String),
}

impl std::fmt::Debug for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreChoice::Embedded => f.write_str("Embedded"),
            StoreChoice::Postgres(url) => f
                .debug_tuple("Postgres")
                .field(&warden_postgres::redacted(url))
                .finish(),
        }
    }
}

/// Whether `url` (`scheme://user:password@host...`) carries a password.
fn has_password(url: &str) -> bool {
    warden_postgres::redacted(url) != url
}

/// Refuses a URL with a password that did not come from the environment variable `env`.
fn password_only_from_env(option: &str, env: &str, url: &str) -> anyhow::Result<()> {
    if has_password(url) && std::env::var(env).ok().as_deref() != Some(url) {
        bail!(
            "{option}: a password on the command line is visible to every local user; \
             give the URL in the environment variable {env} instead"
        );
    }
    Ok(())
}

/// Refuses a `--store` or `--bus` URL with a password that did not come from its
/// environment variable. Called before those variables leave the environment, since the
/// parsers below compare with them.
pub(crate) fn check_password_sources(store: &str, bus: Option<&str>) -> anyhow::Result<()> {
    if store.starts_with("postgres") {
        password_only_from_env("--store", "WARDEN_STORE", store)?;
    }
    if let Some(bus) = bus {
        password_only_from_env("--bus", "WARDEN_BUS", bus)?;
    }
    Ok(())
}

impl StoreChoice {
    /// Parses `--store`: `sqlite`, or a `postgres://` / `postgresql://` URL.
    pub(crate) fn parse(value: &str) -> anyhow::Result<StoreChoice> {
        if value == "sqlite" {
            return Ok(StoreChoice::Embedded);
        }
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return Ok(StoreChoice::Postgres(value.to_owned()));
        }
        bail!(
            "--store `{}`: expected `sqlite` or a `postgres://USER@HOST:PORT/DATABASE` URL",
            warden_postgres::redacted(value)
        )
    }
}

/// Parses `--bus`: a `nats://` URL (its password only from `WARDEN_BUS`).
pub(crate) fn parse_bus(value: &str) -> anyhow::Result<String> {
    if !(value.starts_with("nats://") || value.starts_with("tls://")) {
        bail!(
            "--bus `{}`: expected a `nats://HOST:PORT` URL",
            warden_postgres::redacted(value)
        );
    }
    Ok(value.to_owned())
}

/// What a node re-reads from the shared store when other nodes changed it: each state
/// that keeps a copy in memory.
#[derive(Clone)]
pub(crate) struct SharedState {
    pub(crate) kms: warden_kms::Kms,
    /// Identity, and the `AssumeRole` sessions other nodes issued.
    pub(crate) identity: warden_identity::Identity,
    pub(crate) signer: warden_signer::Signer,
    pub(crate) contracts: warden_contract::store::ContractStore,
    pub(crate) urls: warden_urls::store::UrlStore,
    /// VPCs, subnets and security groups (the packet filter follows).
    pub(crate) network: warden_network::Network,
    pub(crate) flow_logs: warden_network::FlowLogs,
    /// DNS Firewall (the resolver's verdicts follow).
    pub(crate) dns_firewall: warden_dnsfw::DnsFirewall,
}

impl SharedState {
    /// Re-reads each state another node changed (one small read of a generation number
    /// each when nothing changed); a failure is logged and the copy kept until the next
    /// round.
    fn refresh(&self) {
        let warn = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, "could not re-read the shared {what}");
        };
        if let Err(e) = self.kms.refresh() {
            warn("KMS keys", &e);
        }
        if let Err(e) = self.identity.refresh() {
            warn("identity", &e);
        }
        if let Err(e) = self.signer.refresh() {
            warn("code signing state", &e);
        }
        if let Err(e) = self.contracts.refresh() {
            warn("input contracts", &e);
        }
        if let Err(e) = self.urls.refresh() {
            warn("function URLs", &e);
        }
        if let Err(e) = self.network.refresh() {
            warn("network model", &e);
        }
        if let Err(e) = self.flow_logs.refresh() {
            warn("flow logs", &e);
        }
        if let Err(e) = self.dns_firewall.refresh() {
            warn("DNS Firewall", &e);
        }
    }
}

/// Re-reads, every [`SHARED_REFRESH_PERIOD`], what other nodes changed in `shared`.
pub(crate) async fn refresh_shared_periodically(shared: SharedState) {
    let mut tick = tokio::time::interval(SHARED_REFRESH_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let shared = shared.clone();
        let refreshed = tokio::task::spawn_blocking(move || shared.refresh()).await;
        if let Err(e) = refreshed {
            tracing::warn!(error = %e, "the shared state refresh failed");
        }
    }
}

/// Hands changes other nodes made to this node's control plane, which delivers them to
/// every cache (never back to the bus).
struct RemoteChanges(warden_control::Control);

impl ChangeObserver for RemoteChanges {
    fn on_change(&self, event: &ChangeEvent) {
        self.0.apply_remote(event);
    }
}

/// Connects to the bus at `url` as `node`, and opens the cluster's async queue on it. The
/// queue must exist before the engine starts; [`join_bus`] then joins the control plane.
pub(crate) async fn connect_bus(
    url: &str,
    node: NodeId,
) -> anyhow::Result<(warden_bus::Bus, warden_bus::AsyncQueue)> {
    let bus = warden_bus::Bus::connect(url, node)
        .await
        .context("cannot join the bus")?;
    let queue = bus
        .async_queue(warden_bus::QueueOptions::default())
        .await
        .context("cannot open the async queue on the bus")?;
    Ok((bus, queue))
}

/// Joins `control` to `bus`: this node's changes are announced there (and a deleted
/// function's queued events are purged from `queue`), and other nodes' changes reach
/// `control`'s subscribers; after a gap in the notices every cache is dropped.
pub(crate) async fn join_bus(
    bus: &warden_bus::Bus,
    queue: &warden_bus::AsyncQueue,
    control: &warden_control::Control,
) -> anyhow::Result<()> {
    control.announce_to(Arc::new(Announcer {
        publisher: bus.publisher(),
        queue: queue.clone(),
    }));
    let resync_control = control.clone();
    bus.subscribe(warden_bus::Subscriptions {
        changes: vec![Arc::new(RemoteChanges(control.clone()))],
        identity: Arc::new(|_generation| {}),
        resync: Arc::new(move || {
            let control = resync_control.clone();
            // The store is read on a blocking thread, off the bus's task.
            tokio::task::spawn_blocking(move || {
                if let Err(e) = control.resync() {
                    tracing::warn!(error = %e, "could not reload the caches after a gap in the bus's notices");
                }
            });
        }),
    })
    .await
    .context("cannot subscribe to the bus")?;
    Ok(())
}

/// How often a node moves the events an earlier release queued in the shared store's
/// table into the JetStream work queue.
const STORE_QUEUE_MOVE_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

/// Events moved per round; a round repeats at once while it finds a full batch.
const STORE_QUEUE_MOVE_BATCH: usize = 100;

/// Moves the events that wait in the shared store's own queue (accepted by nodes of an
/// earlier release, which queued there) into the cluster's JetStream queue, every
/// [`STORE_QUEUE_MOVE_PERIOD`], as they fall due. Each is leased in this node's name like
/// any other, published with its attempts, due time and acceptance time, and removed from
/// the table only once JetStream has it; a node that dies in between leaves the lease to
/// expire, and the event's second publish within the duplicate window is stored once.
/// Events an older node is running stay leased by it and are never moved from under it.
pub(crate) async fn move_store_queue(
    store: Arc<dyn warden_store::Store>,
    queue: warden_bus::AsyncQueue,
    node: NodeId,
) {
    // This node's leases from a run under an earlier release are its own to end.
    {
        let (store, node) = (Arc::clone(&store), node.clone());
        match tokio::task::spawn_blocking(move || store.reclaim_leases(&node)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not end this node's leases in the shared store's queue")
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not end this node's leases in the shared store's queue")
            }
        }
    }
    let mut tick = tokio::time::interval(STORE_QUEUE_MOVE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            let (store, queue, node) = (Arc::clone(&store), queue.clone(), node.clone());
            let round =
                tokio::task::spawn_blocking(move || move_batch(&*store, &queue, &node)).await;
            match round {
                Ok(Ok(n)) if n == STORE_QUEUE_MOVE_BATCH => continue,
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(
                    events = n,
                    "moved async events from the shared store's queue to JetStream"
                ),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not move async events from the shared store's queue")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not move async events from the shared store's queue")
                }
            }
            break;
        }
    }
}

/// One round of [`move_store_queue`]: the number of events moved.
fn move_batch(
    store: &dyn warden_store::Store,
    queue: &warden_bus::AsyncQueue,
    node: &NodeId,
) -> Result<usize, warden_store::StoreError> {
    use warden_store::EventQueue;
    let leased = store.lease_events(
        node,
        warden_types::now_millis(),
        60_000,
        STORE_QUEUE_MOVE_BATCH,
    )?;
    let n = leased.len();
    for warden_store::LeasedEvent { event, lease } in leased {
        match queue.enqueue_event(&event) {
            // Published by an earlier round that died before removing it.
            Ok(()) | Err(warden_store::StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        // Lost only if this round outlived its minute-long lease and another node moved
        // the event too: the work queue stored that second publish once.
        let _ = store.complete_event(&lease)?;
    }
    Ok(n)
}

/// Hears the changes this node makes: purges a deleted function's queued events (before
/// the deletion is answered, so a function of the same name made afterwards never sees
/// them), then tells the other nodes.
struct Announcer {
    publisher: warden_bus::Publisher,
    queue: warden_bus::AsyncQueue,
}

impl ChangeObserver for Announcer {
    fn on_change(&self, event: &ChangeEvent) {
        self.queue.on_change(event);
        self.publisher.on_change(event);
    }
}

/// The node's claim on its id in a shared store's registry, kept fresh every
/// [`warden_store::postgres::NODE_HEARTBEAT`] by a thread of its own; dropping it stops
/// the thread and lets go of the id, so that the node is no longer counted live.
pub(crate) struct NodeHeartbeat {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    store: warden_store::PostgresStore,
    id: NodeId,
    holder: Vec<u8>,
}

impl NodeHeartbeat {
    /// Claims `id` for `holder` (refused while another holder of it is live) and starts
    /// marking it seen. If another process ever takes the id (this one was not seen for
    /// the liveness window), this process exits at once: two processes may not use one
    /// id's leases.
    pub(crate) fn start(
        store: warden_store::PostgresStore,
        id: NodeId,
        holder: Vec<u8>,
    ) -> anyhow::Result<NodeHeartbeat> {
        store
            .claim_node(&id, &holder, warden_store::postgres::NODE_LIVENESS)
            .context("cannot claim this node's id in the shared store")?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = {
            let (store, id, holder) = (store.clone(), id.clone(), holder.clone());
            std::thread::Builder::new()
                .name("node-heartbeat".into())
                .spawn(move || loop {
                    match stopped.recv_timeout(warden_store::postgres::NODE_HEARTBEAT) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    match store.node_seen(&id, &holder) {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::error!(node = %id, "another process claimed this node id while this one was not seen; stopping now");
                            std::process::exit(1);
                        }
                        Err(e) => tracing::warn!(error = %e, "could not mark this node seen"),
                    }
                })
                .context("cannot start the node heartbeat")?
        };
        Ok(NodeHeartbeat {
            stop: Some(stop),
            thread: Some(thread),
            store,
            id,
            holder,
        })
    }
}

impl Drop for NodeHeartbeat {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Err(e) = self.store.release_node(&self.id, &self.holder) {
            tracing::warn!(error = %e, "could not release this node's id; it counts as live for a few more seconds");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_choices_parse_and_unknown_ones_are_refused_without_their_password() {
        assert_eq!(StoreChoice::parse("sqlite").unwrap(), StoreChoice::Embedded);
        assert_eq!(
            StoreChoice::parse("postgres://warden@db:5432/warden").unwrap(),
            StoreChoice::Postgres("postgres://warden@db:5432/warden".into())
        );
        let e = StoreChoice::parse("mysql://u:hunter2@db/x").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("--store"), "{e}");
    }

    #[test]
    fn a_password_on_the_command_line_is_refused() {
        // The variable is not set to this URL in the test process, as when the URL came
        // from the command line.
        let e = check_password_sources("postgres://warden:hunter2@db/warden", None).unwrap_err();
        assert!(e.to_string().contains("WARDEN_STORE"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = check_password_sources("sqlite", Some("nats://u:hunter2@bus:4222")).unwrap_err();
        assert!(e.to_string().contains("WARDEN_BUS"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        check_password_sources("postgres://warden@db/warden", Some("nats://bus:4222")).unwrap();
        assert!(parse_bus("nats://bus:4222").is_ok());
        assert!(parse_bus("http://bus").is_err());
    }

    #[test]
    fn the_debug_form_hides_the_password() {
        let choice = StoreChoice::Postgres("postgres://w:hunter2@db/w".into());
        assert!(!format!("{choice:?}").contains("hunter2"));
    }
}
