//! Telemetry: what a running Vigil tells its operators.
//!
//! - [`metrics`]: every metric, declared in one struct ([`Metrics`]), and the cheap ways the
//!   hot path feeds them ([`Tally`], [`InputCounters`]);
//! - [`readiness`]: readiness as named conditions ([`register_readiness`]) and liveness as the
//!   processing loop's [`Heartbeat`];
//! - [`http`]: the listener serving `/metrics`, `/healthz` and `/readyz`;
//! - [`logging`]: the `tracing` subscriber (text or JSON on stderr) and what logs may say.
//!
//! The metrics, the readiness conditions and the heartbeat are one per process, reached
//! through [`metrics()`], [`readiness()`] and [`heartbeat()`], so that any part of the
//! process (the history writer, the Redis client) can report without being handed a
//! handle; tests that need isolation build their own instances.

pub mod http;
pub mod logging;
pub mod metrics;
pub mod readiness;

pub use metrics::{Dependency, InputCounters, Metrics, Tally};
pub use readiness::{Check, Heartbeat, Readiness, State};

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &metrics::GLOBAL
}

/// The process's readiness conditions.
pub fn readiness() -> &'static Readiness {
    &readiness::READINESS
}

/// The processing loop's heartbeat.
pub fn heartbeat() -> &'static Heartbeat {
    &readiness::HEARTBEAT
}

/// Adds a readiness condition to the process's `/readyz` (see [`Readiness::register`]): a
/// name shown to operators and a cheap closure saying how it stands now, e.g.
///
/// ```
/// use vigil::telemetry::{register_readiness, Check};
/// register_readiness("redis", || Check::ready("connected"));
/// ```
pub fn register_readiness(name: &str, probe: impl Fn() -> Check + Send + Sync + 'static) {
    readiness().register(name, probe);
}
