//! Readiness as a registry of named conditions, and liveness as a heartbeat.
//!
//! Each part of the process that can keep the instance from doing its work registers a
//! condition: a name and a cheap closure saying how it stands right now (read from atomics or
//! a status snapshot; never a network call, since `/readyz` may be probed every second). The
//! instance is ready when no condition is [`State::NotReady`]; a degraded condition (e.g. the
//! history database away while the engine goes on and its rows wait) is shown but does not
//! take the instance out of service.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How one condition stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Ready,
    /// Working, with reduced service (a dependency away, its work queued).
    Degraded,
    NotReady,
}

/// A condition's state and a short explanation for operators (no user data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub state: State,
    pub detail: String,
}

impl Check {
    pub fn ready(detail: impl Into<String>) -> Check {
        Check {
            state: State::Ready,
            detail: detail.into(),
        }
    }

    pub fn degraded(detail: impl Into<String>) -> Check {
        Check {
            state: State::Degraded,
            detail: detail.into(),
        }
    }

    pub fn not_ready(detail: impl Into<String>) -> Check {
        Check {
            state: State::NotReady,
            detail: detail.into(),
        }
    }
}

type Probe = Box<dyn Fn() -> Check + Send + Sync>;

/// The named conditions of readiness. One per process ([`super::readiness`]); tests make
/// their own.
#[derive(Default)]
pub struct Readiness {
    conditions: Mutex<Vec<(String, Probe)>>,
}

/// One condition in a [`Report`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Condition {
    pub name: String,
    #[serde(flatten)]
    pub check: Check,
}

/// Every condition, and whether together they make the instance ready.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub ready: bool,
    pub conditions: Vec<Condition>,
}

impl Readiness {
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// Adds (or, under a name already registered, replaces) a condition. `probe` runs on every
    /// `/readyz` request, on the HTTP thread: keep it to reading shared state.
    pub fn register(&self, name: &str, probe: impl Fn() -> Check + Send + Sync + 'static) {
        let Ok(mut conditions) = self.conditions.lock() else {
            return;
        };
        let probe: Probe = Box::new(probe);
        match conditions.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = probe,
            None => conditions.push((name.to_string(), probe)),
        }
    }

    /// Removes a condition (a part of the process that stopped on purpose).
    pub fn unregister(&self, name: &str) {
        if let Ok(mut conditions) = self.conditions.lock() {
            conditions.retain(|(n, _)| n != name);
        }
    }

    /// Every condition now, in registration order. With none registered the instance is not
    /// ready: nothing has said that it can work yet.
    pub fn report(&self) -> Report {
        let conditions: Vec<Condition> = match self.conditions.lock() {
            Ok(conditions) => conditions
                .iter()
                .map(|(name, probe)| Condition {
                    name: name.clone(),
                    check: probe(),
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        Report {
            ready: !conditions.is_empty()
                && conditions.iter().all(|c| c.check.state != State::NotReady),
            conditions,
        }
    }
}

/// The processing loop's heartbeat, for `/healthz`. Before the loop arms it (or in a mode
/// without one) the process counts as alive while it answers at all.
pub struct Heartbeat {
    started: Instant,
    armed: AtomicBool,
    /// Milliseconds since `started` at the last beat.
    last: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            started: Instant::now(),
            armed: AtomicBool::new(false),
            last: AtomicU64::new(0),
        }
    }
}

impl Heartbeat {
    /// Called by the loop on every pass: one clock read and two relaxed stores.
    #[inline]
    pub fn beat(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
        self.armed.store(true, Ordering::Relaxed);
    }

    /// Stops watching (the loop ended on purpose, the process is shutting down).
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::Relaxed);
    }

    /// How long since the last beat; `None` when not armed.
    pub fn silent_for(&self) -> Option<Duration> {
        if !self.armed.load(Ordering::Relaxed) {
            return None;
        }
        let now = self.started.elapsed();
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        Some(now.saturating_sub(last))
    }

    /// Alive unless the loop has been silent for longer than `limit`.
    pub fn alive(&self, limit: Duration) -> bool {
        self.silent_for().is_none_or(|d| d <= limit)
    }
}

pub(super) static READINESS: LazyLock<Readiness> = LazyLock::new(Readiness::new);
pub(super) static HEARTBEAT: LazyLock<Heartbeat> = LazyLock::new(Heartbeat::default);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_no_condition_is_not_ready() {
        let r = Readiness::new();
        assert!(!r.report().ready, "nothing registered: not ready");
        r.register("a", || Check::ready("3 partitions"));
        r.register("b", || Check::degraded("database away"));
        let report = r.report();
        assert!(report.ready, "degraded still serves: {report:?}");
        assert_eq!(report.conditions.len(), 2);
        assert_eq!(report.conditions[1].check.state, State::Degraded);
        r.register("c", || Check::not_ready("restoring"));
        assert!(!r.report().ready);
        // Registering a name again replaces its probe; unregistering removes it.
        r.register("c", || Check::ready("restored"));
        assert!(r.report().ready);
        r.unregister("c");
        assert_eq!(r.report().conditions.len(), 2);
    }

    #[test]
    fn the_report_serialises_each_condition_flat() {
        let r = Readiness::new();
        r.register("history database", || Check::not_ready("starting"));
        let json = serde_json::to_value(r.report()).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "ready": false,
                "conditions": [
                    {"name": "history database", "state": "not-ready", "detail": "starting"}
                ]
            })
        );
    }

    #[test]
    fn a_heartbeat_is_alive_until_silent_past_the_limit() {
        let h = Heartbeat::default();
        assert!(h.alive(Duration::ZERO), "not armed: alive");
        h.beat();
        assert!(h.alive(Duration::from_secs(3600)));
        std::thread::sleep(Duration::from_millis(5));
        assert!(!h.alive(Duration::from_millis(1)));
        h.disarm();
        assert!(h.alive(Duration::ZERO));
    }
}
