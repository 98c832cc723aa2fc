//! The asynchronous invocation worker: takes due events from the durable queue, runs them,
//! and applies Lambda's retry policy (two retries with back-off) before dropping them.
//!
//! An event is removed from the queue only after it ran to success or exhausted its
//! retries, so a crash at any point loses nothing; an event interrupted by a crash runs
//! again (at least once, as Lambda's async invocations). Events are leased in this node's
//! name; an outcome is recorded only while the lease is still this node's (see
//! `warden_store::queue`), so a node that lost an event to another never overrides it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use warden_store::{LeasedEvent, QueuedEvent, Settled};
use warden_types::{FunctionRef, Qualifier};

use crate::registry::blocking;
use crate::{Engine, InvokeError, InvokeRequest};

/// How long a leased event stays hidden from other workers: longer than any function can
/// run (900 s) plus its init phase.
const LEASE_MS: i64 = 20 * 60 * 1000;
/// Longest sleep between queue scans when nothing wakes the worker.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Delay before retrying an event that was throttled.
const THROTTLE_RETRY: Duration = Duration::from_secs(1);
/// Most events in flight at once from the queue.
pub(crate) const MAX_IN_FLIGHT: usize = 64;

impl Engine {
    /// Durably accepts an asynchronous invocation and returns its request id.
    pub async fn enqueue(
        &self,
        function: &FunctionRef,
        payload: Bytes,
    ) -> Result<String, InvokeError> {
        self.resolve(function).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let now = warden_types::now_millis();
        let event = QueuedEvent {
            id: id.clone(),
            function: function.name.clone(),
            qualifier: function
                .qualifier
                .as_ref()
                .map(Qualifier::to_string)
                .unwrap_or_else(|| warden_types::LATEST.into()),
            payload: payload.to_vec(),
            attempts: 0,
            not_before_ms: now,
            enqueued_ms: now,
        };
        let queue = Arc::clone(&self.inner.queue);
        blocking(move || queue.enqueue_event(&event)).await?;
        self.inner.queue_wakeup.notify_one();
        Ok(id)
    }

    pub(crate) async fn queue_loop(self) {
        let in_flight = Arc::clone(&self.inner.async_in_flight);
        loop {
            if self
                .inner
                .shutting_down
                .load(std::sync::atomic::Ordering::Acquire)
            {
                return;
            }
            let free = in_flight.available_permits();
            let mut leased = Vec::new();
            if free > 0 {
                let queue = Arc::clone(&self.inner.queue);
                let node = self.inner.config.node_id.clone();
                match blocking(move || {
                    queue.lease_events(&node, warden_types::now_millis(), LEASE_MS, free)
                })
                .await
                {
                    Ok(events) => leased = events,
                    Err(e) => tracing::error!(error = %e, "could not read the async queue"),
                }
            }
            for event in leased {
                let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
                    return;
                };
                let engine = self.clone();
                tokio::spawn(async move {
                    engine.run_event(event).await;
                    drop(permit);
                });
            }
            let _ = tokio::time::timeout(IDLE_POLL, self.inner.queue_wakeup.notified()).await;
        }
    }

    async fn run_event(&self, leased: LeasedEvent) {
        let LeasedEvent { event, lease } = leased;
        let qualifier = Qualifier::parse(&event.qualifier).ok();
        let function = FunctionRef {
            name: event.function.clone(),
            qualifier,
        };
        let request = InvokeRequest {
            function,
            payload: Bytes::from(event.payload.clone()),
            tail: false,
            client_context: None,
            request_id: Some(event.id.clone()),
            stream: None,
        };
        if event.attempts == 0 {
            let age = warden_types::now_millis() - event.enqueued_ms;
            self.observe_async(&crate::events::AsyncEvent::FirstAttempt {
                function: &event.function,
                age_ms: u64::try_from(age).unwrap_or(0),
            });
        }
        let result = self.invoke(request).await;
        let queue = Arc::clone(&self.inner.queue);
        let id = event.id.clone();
        let attempt = event.attempts + 1;
        let succeeded = matches!(&result, Ok(r) if r.function_error.is_none());
        let max_age_ms = i64::from(warden_types::limits::ASYNC_MAX_EVENT_AGE_SECONDS) * 1000;
        let too_old = warden_types::now_millis() - event.enqueued_ms > max_age_ms;
        let outcome = match &result {
            // Throttled events never ran: they wait without using up an attempt, as in Lambda,
            // until the maximum event age.
            Err(InvokeError::Throttled(_) | InvokeError::Store(_)) if !too_old => {
                let not_before = warden_types::now_millis() + THROTTLE_RETRY.as_millis() as i64;
                blocking(move || queue.postpone_event(&lease, not_before)).await
            }
            Ok(r)
                if r.function_error.is_some()
                    && attempt <= warden_types::limits::ASYNC_MAX_RETRIES
                    && !too_old =>
            {
                let delay = self
                    .inner
                    .config
                    .async_retry_delays
                    .get(event.attempts as usize)
                    .copied()
                    .unwrap_or_default();
                let not_before = warden_types::now_millis() + delay.as_millis() as i64;
                tracing::info!(event = %id, function = %event.function, attempt, "async invocation failed; retrying");
                blocking(move || queue.retry_event(&lease, not_before)).await
            }
            _ => {
                if !succeeded {
                    self.observe_async(&crate::events::AsyncEvent::Dropped {
                        function: &event.function,
                    });
                    tracing::warn!(event = %id, function = %event.function, attempt, "async invocation dropped after its last attempt");
                }
                blocking(move || queue.complete_event(&lease)).await
            }
        };
        match outcome {
            Ok(Settled::Applied) => {}
            // Its function was deleted meanwhile, or it completed elsewhere after this
            // node's lease expired.
            Ok(Settled::Gone) => {
                tracing::debug!(event = %event.id, "async event already gone when its result was recorded")
            }
            Ok(Settled::LeaseLost) => tracing::warn!(
                event = %event.id,
                function = %event.function,
                "async invocation outlived its lease and the event was leased again; its result here is discarded"
            ),
            Err(e) => {
                tracing::error!(event = %event.id, error = %e, "could not record the result of an async invocation")
            }
        }
    }
}
