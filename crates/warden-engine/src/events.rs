//! What happens to invocations, as typed events for whoever watches: the log writer
//! frames `START`, `END` and `REPORT` from them, and metrics and audit subscribe the same
//! way, without the engine knowing them.
//!
//! Every invocation that reaches an instance (or fails to get one) produces, in order:
//! [`InvocationEvent::Initializing`] if it waits for a cold start,
//! [`InvocationEvent::Started`], at most one of [`InvocationEvent::InitFailed`],
//! [`InvocationEvent::TimedOut`] and [`InvocationEvent::Exited`], then
//! [`InvocationEvent::Finished`]. An invocation refused before that produces only
//! [`InvocationEvent::Throttled`].

use warden_executor::ExitStatus;
use warden_store::LogSource;
use warden_types::FunctionName;

use crate::logs::Report;
use crate::ThrottleReason;

/// One thing that happened to one invocation.
#[derive(Debug)]
pub enum InvocationEvent<'a> {
    /// A new instance is being started for the invocation (its memory is reserved): from
    /// here it counts as running, as Lambda counts initializing environments in its
    /// concurrency. Seen by observers only, not by the instance's log.
    Initializing {
        /// The function.
        function: &'a FunctionName,
        /// The version that runs.
        version: &'a str,
        /// The alias the caller named, if any.
        alias: Option<&'a str>,
        /// The invocation's request id.
        request_id: &'a str,
    },
    /// The invocation was handed to an instance, or to a cold start.
    Started {
        /// The function.
        function: &'a FunctionName,
        /// The version that runs.
        version: &'a str,
        /// The alias the caller named, if any.
        alias: Option<&'a str>,
        /// The invocation's request id.
        request_id: &'a str,
        /// Whether the caller asked for the end of the log (`X-Amz-Log-Type: Tail`).
        keep_tail: bool,
    },
    /// The invocation was refused before it started.
    Throttled {
        /// The function.
        function: &'a FunctionName,
        /// Which limit refused it.
        reason: ThrottleReason,
    },
    /// The instance could not be started or did not finish its init phase.
    InitFailed {
        /// The function.
        function: &'a FunctionName,
        /// The invocation's request id.
        request_id: &'a str,
        /// Lambda's error type (`Runtime.InvalidEntrypoint`, `Runtime.ExitError`,
        /// `Runtime.OutOfMemory`, or the type the runtime reported).
        error_type: &'a str,
        /// The error's text.
        message: &'a str,
        /// Who wrote the text: Warden, or the function (an init error it reported).
        source: LogSource,
    },
    /// The function ran past its timeout; its instance is ended.
    TimedOut {
        /// The function.
        function: &'a FunctionName,
        /// The invocation's request id.
        request_id: &'a str,
        /// The function's timeout.
        seconds: f64,
    },
    /// The instance's process ended during the invocation (a crash, or the kernel's
    /// out-of-memory kill: [`ExitStatus::OutOfMemory`]).
    Exited {
        /// The function.
        function: &'a FunctionName,
        /// The invocation's request id.
        request_id: &'a str,
        /// How the process ended.
        status: ExitStatus,
    },
    /// The invocation is over.
    Finished {
        /// The function.
        function: &'a FunctionName,
        /// The version that ran.
        version: &'a str,
        /// The alias the caller named, if any.
        alias: Option<&'a str>,
        /// Its figures (the `REPORT` line's).
        report: &'a Report,
        /// Whether the caller gets a function error.
        function_error: bool,
        /// Whether the instance is about to end (so anything read from it must be read
        /// now).
        instance_ending: bool,
    },
}

/// An asynchronous event's attempts, as the queue's worker makes them (each attempt that
/// runs is also an invocation, with its own events).
#[derive(Debug)]
pub enum AsyncEvent<'a> {
    /// The first attempt of an event is about to run.
    FirstAttempt {
        /// The function.
        function: &'a FunctionName,
        /// How long the event waited in the queue, ms.
        age_ms: u64,
    },
    /// The event is dropped: its last attempt failed, or it grew too old.
    Dropped {
        /// The function.
        function: &'a FunctionName,
    },
}

/// Watches invocations. Called on the invocation's path: an observer must not block (hand
/// slow work to a queue of its own).
pub trait InvocationObserver: Send + Sync + 'static {
    /// Sees one event.
    fn observe(&self, event: &InvocationEvent<'_>);

    /// Sees one asynchronous event's progress; ignored unless overridden.
    fn observe_async(&self, event: &AsyncEvent<'_>) {
        let _ = event;
    }

    /// Sees a line a function logged that starts as a JSON object (the Embedded Metric
    /// Format is such a line), on the log writer's thread once the line is stored, never
    /// on an invocation's path; ignored unless overridden.
    fn observe_json_line(&self, function: &FunctionName, line: &str) {
        let _ = (function, line);
    }
}
