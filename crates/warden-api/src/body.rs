//! Reading request bodies within bounds of size, time and memory.
//!
//! A body is read only after the request's headers have passed authentication as far as
//! headers can (see `access::authenticate_headers`), or, for a request without a signature,
//! after it has been authorized; and then:
//!
//! - **Memory.** Before the first byte is read, the body's size (its `Content-Length`, or the
//!   operation's limit when it is chunked) is reserved from a [`BodyBudget`] shared by all
//!   connections, and held until the request has been answered. Bodies over
//!   [`LARGE_BODY_BYTES`] share three quarters of the budget and smaller ones the last quarter,
//!   so uploads, however many, never keep ordinary calls out; requests without a signature may
//!   hold at most an eighth. A request that cannot get its bytes within [`BUDGET_WAIT`] is
//!   answered 429 `TooManyRequestsException`, which the SDKs retry.
//! - **Time.** A signed body must arrive within [`SIGNED_BASE_TIME`] plus one second per MiB,
//!   with no gap of more than [`SIGNED_STALL`] between two reads; an unsigned one within
//!   [`UNSIGNED_BASE_TIME`] plus one second per MiB, with gaps of at most [`UNSIGNED_STALL`].
//!   A late body is answered 408 `RequestTimeoutException` and its connection closed.
//! - **Size.** The operation's limit, as before: 413 `RequestTooLargeException`.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::ApiError;

/// Bodies above this size are "large" and draw from their own share of the budget.
pub const LARGE_BODY_BYTES: usize = 1024 * 1024;
/// How long a request waits for its bytes of the budget before it is refused.
pub const BUDGET_WAIT: Duration = Duration::from_secs(2);
/// Time every signed body is allowed, on top of one second per MiB.
pub const SIGNED_BASE_TIME: Duration = Duration::from_secs(10);
/// Longest pause within a signed body.
pub const SIGNED_STALL: Duration = Duration::from_secs(10);
/// Time every unsigned body is allowed, on top of one second per MiB.
pub const UNSIGNED_BASE_TIME: Duration = Duration::from_secs(5);
/// Longest pause within an unsigned body.
pub const UNSIGNED_STALL: Duration = Duration::from_secs(5);
/// The slowest average rate a body may arrive at, after its base time.
const MIN_RATE_BYTES_PER_SEC: u64 = 1024 * 1024;
/// The budget counts in KiB, so that any size fits a semaphore's permit count.
const UNIT: usize = 1024;
/// Bodies discarded after an early refusal are read for at most this long.
const DISCARD_TIME: Duration = Duration::from_secs(10);

/// Memory for request bodies, shared by every connection.
pub struct BodyBudget {
    small: Arc<Semaphore>,
    large: Arc<Semaphore>,
    unsigned: Arc<Semaphore>,
    small_units: usize,
    large_units: usize,
    unsigned_units: usize,
}

/// Bytes of the budget a request holds until it is dropped.
#[derive(Debug, Default)]
pub struct Reservation {
    _permits: Vec<OwnedSemaphorePermit>,
}

impl BodyBudget {
    /// A budget of `bytes` in all.
    pub fn new(bytes: usize) -> Self {
        let units = bytes / UNIT;
        let small_units = units / 4;
        let large_units = units - small_units;
        let unsigned_units = units / 8;
        Self {
            small: Arc::new(Semaphore::new(small_units)),
            large: Arc::new(Semaphore::new(large_units)),
            unsigned: Arc::new(Semaphore::new(unsigned_units)),
            small_units,
            large_units,
            unsigned_units,
        }
    }

    /// Reserves `bytes` for one body, waiting at most `wait`.
    pub async fn reserve(
        &self,
        bytes: usize,
        signed: bool,
        wait: Duration,
    ) -> Result<Reservation, ApiError> {
        let units = bytes.div_ceil(UNIT);
        if units == 0 {
            return Ok(Reservation::default());
        }
        let (pool, pool_units) = if bytes > LARGE_BODY_BYTES {
            (&self.large, self.large_units)
        } else {
            (&self.small, self.small_units)
        };
        let busy = || {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                "Too many request bodies are being received at once; retry the request later.",
            )
        };
        if units > pool_units || (!signed && units > self.unsigned_units) {
            return Err(busy());
        }
        let count = u32::try_from(units).map_err(|_| busy())?;
        let deadline = Instant::now() + wait;
        let mut permits = Vec::with_capacity(2);
        if !signed {
            let p = tokio::time::timeout_at(
                deadline,
                Arc::clone(&self.unsigned).acquire_many_owned(count),
            )
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
            permits.push(p);
        }
        let p = tokio::time::timeout_at(deadline, Arc::clone(pool).acquire_many_owned(count))
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        permits.push(p);
        Ok(Reservation { _permits: permits })
    }
}

/// How one body is to be read.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The operation's size limit.
    pub limit: usize,
    /// `Content-Length`, when the request declared one.
    pub declared: Option<u64>,
    /// Whether the request is signed (signed bodies are hashed and given more time).
    pub signed: bool,
}

impl Plan {
    /// Bytes to reserve: the declared size, or the limit for a chunked body.
    fn reserve(&self) -> usize {
        match self.declared {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX).min(self.limit),
            None => self.limit,
        }
    }

    /// The longest pause between two reads, and the time the whole body may take.
    fn deadlines(&self) -> (Duration, Duration) {
        let (stall, base) = if self.signed {
            (SIGNED_STALL, SIGNED_BASE_TIME)
        } else {
            (UNSIGNED_STALL, UNSIGNED_BASE_TIME)
        };
        let size = u64::try_from(self.reserve()).unwrap_or(u64::MAX);
        (
            stall,
            base + Duration::from_secs(size / MIN_RATE_BYTES_PER_SEC),
        )
    }
}

/// A body read in full.
pub struct Received {
    pub bytes: Bytes,
    /// SHA-256 of the bytes, for signed requests.
    pub sha256: Option<[u8; 32]>,
    /// Budget held for the bytes; drop it once the request is answered.
    pub reservation: Reservation,
}

/// Reads `body` according to `plan`.
///
/// # Errors
/// 413 beyond the limit (the rest of the body is discarded first, within bounds, so that a
/// client still sending sees the answer), 429 when the budget has no room, 408 when the body
/// is late, 400 when the connection fails mid-body.
pub async fn read(
    mut body: Incoming,
    plan: Plan,
    budget: &BodyBudget,
    too_large: impl Fn() -> ApiError,
) -> Result<Received, ApiError> {
    if plan
        .declared
        .is_some_and(|n| n > u64::try_from(plan.limit).unwrap_or(u64::MAX))
    {
        drain(body, 0).await;
        return Err(too_large());
    }
    let size = plan.reserve();
    let reservation = budget.reserve(size, plan.signed, BUDGET_WAIT).await?;
    let (stall, total) = plan.deadlines();
    let end = Instant::now() + total;
    let late = || {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeoutException",
            "The request body did not arrive in time.",
        )
    };
    let mut hasher = plan.signed.then(Sha256::new);
    let mut collected = BytesMut::with_capacity(if plan.declared.is_some() { size } else { 0 });
    loop {
        let wait = (Instant::now() + stall).min(end);
        let frame = match tokio::time::timeout_at(wait, body.frame()).await {
            Err(_) => return Err(late()),
            Ok(None) => break,
            Ok(Some(frame)) => frame.map_err(|e| {
                ApiError::bad_content(format!("could not read the request body: {e}"))
            })?,
        };
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > plan.limit {
                drain(body, collected.len() + data.len()).await;
                return Err(too_large());
            }
            if let Some(h) = hasher.as_mut() {
                h.update(&data);
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(Received {
        bytes: collected.freeze(),
        sha256: hasher.map(|h| h.finalize().into()),
        reservation,
    })
}

/// Reads and discards the rest of an oversized body (within bounds), so that the client,
/// still sending, receives the 413 instead of a reset connection.
async fn drain(mut body: Incoming, mut seen: usize) {
    let deadline = Instant::now() + DISCARD_TIME;
    while seen <= warden_types::limits::API_BODY_BYTES {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => seen += frame.data_ref().map(|d| d.len()).unwrap_or(0),
            _ => return,
        }
    }
}

/// Discards the body of a request refused before it was read, in the background, so that
/// the answer goes out at once; nothing is buffered and the reading stops after the bounds
/// of [`drain`]. A client that asked `Expect: 100-continue` is not invited to send it.
pub fn discard(expects_continue: bool, body: Incoming) {
    if expects_continue {
        return;
    }
    tokio::spawn(drain(body, 0));
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[tokio::test]
    async fn large_bodies_never_take_the_share_of_small_ones() {
        let budget = BodyBudget::new(128 * MIB);
        let wait = Duration::from_millis(10);
        let upload = budget.reserve(70 * MIB, true, wait).await.unwrap();
        // The large share (96 MiB) has no room for a second upload...
        assert_eq!(
            budget
                .reserve(70 * MIB, true, wait)
                .await
                .unwrap_err()
                .status,
            StatusCode::TOO_MANY_REQUESTS
        );
        // ...while small bodies still find theirs.
        let small: Vec<_> = reserve_many(&budget, 100, 64 * 1024).await;
        assert_eq!(small.len(), 100);
        drop(upload);
        assert!(budget.reserve(70 * MIB, true, wait).await.is_ok());
    }

    async fn reserve_many(budget: &BodyBudget, n: usize, bytes: usize) -> Vec<Reservation> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(
                budget
                    .reserve(bytes, true, Duration::from_millis(10))
                    .await
                    .unwrap(),
            );
        }
        out
    }

    #[tokio::test]
    async fn unsigned_bodies_hold_at_most_an_eighth() {
        let budget = BodyBudget::new(128 * MIB);
        let wait = Duration::from_millis(10);
        let held: Vec<_> = [6 * MIB, 6 * MIB]
            .into_iter()
            .map(|n| budget.reserve(n, false, wait))
            .collect::<Vec<_>>();
        let mut reservations = Vec::new();
        for r in held {
            reservations.push(r.await.unwrap());
        }
        // 16 MiB for unsigned bodies: a third 6 MiB one does not fit, a signed one does.
        assert!(budget.reserve(6 * MIB, false, wait).await.is_err());
        assert!(budget.reserve(6 * MIB, true, wait).await.is_ok());
    }

    #[tokio::test]
    async fn a_waiting_request_gets_bytes_freed_within_its_wait() {
        let budget = Arc::new(BodyBudget::new(128 * MIB));
        let first = budget
            .reserve(90 * MIB, true, Duration::from_millis(10))
            .await
            .unwrap();
        let b = Arc::clone(&budget);
        let waiter =
            tokio::spawn(async move { b.reserve(50 * MIB, true, Duration::from_secs(60)).await });
        tokio::task::yield_now().await;
        drop(first);
        assert!(waiter.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn empty_bodies_need_no_budget() {
        let budget = BodyBudget::new(0);
        assert!(budget.reserve(0, false, Duration::ZERO).await.is_ok());
        assert!(budget.reserve(1, true, Duration::ZERO).await.is_err());
    }

    #[test]
    fn deadlines_grow_with_the_size_and_are_tighter_without_a_signature() {
        let plan = |declared, signed| Plan {
            limit: 70 * MIB,
            declared,
            signed,
        };
        assert_eq!(
            plan(Some(0), true).deadlines(),
            (SIGNED_STALL, SIGNED_BASE_TIME)
        );
        assert_eq!(
            plan(Some(70 * MIB as u64), true).deadlines().1,
            SIGNED_BASE_TIME + Duration::from_secs(70)
        );
        assert_eq!(
            plan(None, false).deadlines(),
            (UNSIGNED_STALL, UNSIGNED_BASE_TIME + Duration::from_secs(70))
        );
        // A declared size beyond the limit reserves only the limit.
        assert_eq!(plan(Some(u64::MAX), true).reserve(), 70 * MIB);
    }
}
