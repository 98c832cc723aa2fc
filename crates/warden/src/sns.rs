//! The server's side of SNS: `lambda` subscriptions invoke functions through the engine's
//! durable asynchronous queue, `http` deliveries reach only the networks the operator
//! allowed (`--sns-allow-network`), and on a shared store the cluster's message-signing
//! key is sealed under the master key.

use std::net::SocketAddr;
use std::sync::Arc;

use warden_sns::deliver::{InvokeError, InvokeFuture, LambdaInvocation};

/// Invokes a subscribed function asynchronously, as SNS invokes Lambda: the event is
/// queued durably (the queue retries failed invocations as Lambda does); SNS retries only
/// when it could not be queued (the function is gone, the queue is full).
pub struct EngineTarget(pub warden_engine::Engine, pub Arc<warden_api::ApiState>);

impl warden_sns::LambdaTarget for EngineTarget {
    fn invoke(&self, invocation: LambdaInvocation) -> InvokeFuture {
        let engine = self.0.clone();
        let state = Arc::clone(&self.1);
        Box::pin(async move {
            let function = state
                .function_ref(&invocation.function_arn)
                .map_err(|e| InvokeError(e.message))?;
            engine
                .enqueue(&function, bytes::Bytes::from(invocation.event))
                .await
                .map(|_| ())
                .map_err(|e| InvokeError(e.to_string()))
        })
    }
}

/// The networks `http` deliveries may connect to.
pub struct AllowedNetworks(pub Vec<ipnet::IpNet>);

impl warden_sns::EndpointGuard for AllowedNetworks {
    fn allow(&self, addr: &SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// What the master key's seal of SNS's signing key is bound to.
const SEAL_AAD: &[u8] = b"warden sns signing key v1";

/// Seals SNS's message-signing key under the master key, for the shared store.
pub struct MasterSealer(pub warden_kms::MasterKey);

impl warden_sns::KeySealer for MasterSealer {
    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, warden_sns::SealError> {
        self.0
            .seal(SEAL_AAD, plain)
            .map_err(|e| warden_sns::SealError(e.to_string()))
    }

    fn unseal(&self, sealed: &[u8]) -> Result<Vec<u8>, warden_sns::SealError> {
        self.0
            .open(SEAL_AAD, sealed)
            .map(|plain| plain.to_vec())
            .ok_or_else(|| {
                warden_sns::SealError(
                    "the shared SNS signing key does not open under this master key: every node needs the same master key"
                        .to_owned(),
                )
            })
    }
}

/// The pool SNS keeps the cluster's topics, subscriptions and outbox on, with a shared
/// store: a pool of its own, as the deliverer polls it. Opened before the server's
/// runtime starts (connecting blocks).
pub(crate) fn shared_pool(
    store: &crate::backend::StoreChoice,
) -> anyhow::Result<Option<warden_postgres::Pool>> {
    use anyhow::Context;
    match store {
        crate::backend::StoreChoice::Embedded => Ok(None),
        crate::backend::StoreChoice::Postgres(url) => warden_postgres::Pool::open(
            url,
            &warden_postgres::Options {
                connections: crate::backend::SIDE_STORE_CONNECTIONS,
                application_name: "warden-sns".to_owned(),
            },
            &[warden_sns::postgres::TRACK],
        )
        .map(Some)
        .context("cannot open SNS in PostgreSQL"),
    }
}

/// Opens SNS's store: `DATA_DIR/sns.db`, or on the `shared` pool the cluster's. On the
/// shared store, a `DATA_DIR/sns.db` an earlier release left (topics, subscriptions,
/// undelivered messages, dead letters) is moved into it first; start-up fails if that
/// fails, as nothing of the file would be served otherwise.
pub(crate) fn open(
    data_dir: &std::path::Path,
    shared: Option<warden_postgres::Pool>,
    base_url: &str,
    master: &warden_kms::MasterKey,
) -> anyhow::Result<warden_sns::Sns> {
    use anyhow::Context;
    let file = data_dir.join("sns.db");
    match shared {
        None => warden_sns::Sns::open(&file, base_url).context("cannot open the SNS database"),
        Some(pool) => {
            let sns = warden_sns::Sns::open_shared(
                pool,
                base_url,
                Arc::new(MasterSealer(master.clone())),
            )
            .context("cannot open SNS in PostgreSQL")?;
            let report = sns.import_file(&file).with_context(|| {
                format!(
                    "cannot move the SNS state in `{}` to the shared store",
                    file.display()
                )
            })?;
            log_import(&file, &report);
            Ok(sns)
        }
    }
}

/// Says what moving a node's `sns.db` to the shared store did (counts and topic ARNs
/// only: never a message, an endpoint or a token).
fn log_import(file: &std::path::Path, report: &warden_sns::ImportReport) {
    if !report.found {
        return;
    }
    if report.already_imported {
        tracing::info!(
            file = %file.display(),
            moved_to = ?report.moved_to,
            "the node's SNS file had been moved to the shared store already; set it aside"
        );
        return;
    }
    tracing::info!(
        file = %file.display(),
        topics = report.topics,
        topics_existing = report.topics_existing,
        subscriptions = report.subscriptions,
        subscriptions_existing = report.subscriptions_existing,
        unsubscriptions = report.unsubscriptions,
        deliveries = report.deliveries,
        dead_letters = report.dead_letters,
        skipped = report.skipped,
        moved_to = ?report.moved_to,
        "moved the node's SNS state to the shared store"
    );
    if !report.is_complete() {
        tracing::warn!(
            file = %file.display(),
            topics = report.left.topics,
            subscriptions = report.left.subscriptions,
            deliveries = report.left.deliveries,
            dead_letters = report.left.dead_letters,
            of_topics = ?report.left_topics,
            "part of the node's SNS state does not fit within the shared store's bounds; it \
             stays in the file, which is kept, and moves at a later start once there is room"
        );
    }
}

/// Reseals the cluster's SNS signing key in the shared store at `url` from `old` to
/// `new` (`warden admin rotate-master-key`). Returns whether it resealed.
pub(crate) fn reseal_shared(
    url: &str,
    old: &warden_kms::MasterKey,
    new: &warden_kms::MasterKey,
) -> anyhow::Result<bool> {
    use anyhow::Context;
    let pool = warden_postgres::Pool::open(
        url,
        &warden_postgres::Options {
            connections: 1,
            application_name: "warden-admin".to_owned(),
        },
        &[warden_sns::postgres::TRACK],
    )
    .context("cannot open SNS in PostgreSQL")?;
    warden_sns::postgres::reseal_signing_key(
        &pool,
        &MasterSealer(old.clone()),
        &MasterSealer(new.clone()),
    )
    .context("cannot reseal the shared SNS signing key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_sns::EndpointGuard;

    #[test]
    fn only_the_allowed_networks_are_reached() {
        let guard = AllowedNetworks(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        assert!(guard.allow(&"127.0.0.1:80".parse().unwrap()));
        assert!(guard.allow(&"[::1]:80".parse().unwrap()));
        assert!(guard.allow(&"[::ffff:127.0.0.1]:80".parse().unwrap()));
        for refused in [
            "169.254.169.254:80",
            "10.0.0.1:80",
            "[fe80::1]:80",
            "8.8.8.8:53",
        ] {
            assert!(!guard.allow(&refused.parse().unwrap()), "{refused}");
        }
    }
}
