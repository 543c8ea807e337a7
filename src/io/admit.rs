//! Admission of decoded events against the machine's clock, shared by every edge that runs
//! live (file mode, Kafka mode). The engine itself never reads a clock: rule tests and
//! backtests stay deterministic.
//!
//! A device whose date is wrong sends events from the future. Kept, such an event would set its
//! user's event time years ahead (every later event of that user late) and, before the stream
//! clock stopped counting lone outliers, fired everyone's absence timers. No real event can be
//! dated after the moment it is processed, beyond the clock skew tolerated between machines.

use std::cell::Cell;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::event::Event;

/// Where the edges read the time of day.
pub trait WallClock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The machine's clock.
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis()
    }
}

/// A clock that always says the same time (tests).
pub struct FixedClock(pub i64);

impl WallClock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

/// A wall clock as admission reads it: only when the reading taken before does not already
/// clear the event. Time moves on, so an event no later than an earlier reading plus the skew
/// is no later than the current one plus the skew; only an event beyond it makes the clock be
/// read again, and it is judged on that fresh reading. Reading the clock for every line was
/// 1.5 % of `vigil run`'s time. (A clock stepped back by NTP lets through, for a while, events
/// up to the step further ahead: seconds, against a skew of a day.)
pub struct AdmissionClock<'a> {
    clock: &'a dyn WallClock,
    last: Cell<Option<i64>>,
}

impl<'a> AdmissionClock<'a> {
    pub fn new(clock: &'a dyn WallClock) -> Self {
        AdmissionClock {
            clock,
            last: Cell::new(None),
        }
    }

    /// [`future_reason`] at the current time.
    pub fn future_reason(&self, event: &Event, max_skew_ms: i64) -> Option<String> {
        if let Some(last) = self.last.get() {
            if event.time.millis() <= last.saturating_add(max_skew_ms) {
                return None;
            }
        }
        let now = self.clock.now_ms();
        self.last.set(Some(now));
        future_reason(event, now, max_skew_ms)
    }
}

/// Why `event` may not enter the engine at wall-clock time `now_ms`, if it may not: dated more
/// than `max_skew_ms` ahead of it.
pub fn future_reason(event: &Event, now_ms: i64, max_skew_ms: i64) -> Option<String> {
    let t = event.time.millis();
    if t <= now_ms.saturating_add(max_skew_ms) {
        return None;
    }
    let shown = |ms: i64| {
        DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(
            || format!("{ms} ms"),
            |d| d.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
    };
    Some(format!(
        "event time {} is in the future: more than the allowed skew of {} ahead of the \
         processing clock ({})",
        event.time,
        crate::rules::duration::format_duration(max_skew_ms),
        shown(now_ms),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Decoder;

    fn event_at(time: &str) -> Event {
        let line = format!(
            r#"{{"id":"e","user_id":"u","type":"heart_rate","source":"t","time":"{time}","data":{{"heart_rate":60}}}}"#
        );
        Decoder::new()
            .decode(line.as_bytes())
            .expect("a valid event")
    }

    #[test]
    fn an_event_beyond_the_skew_is_in_the_future() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
            .expect("a time")
            .timestamp_millis();
        let day = 86_400_000;
        assert_eq!(
            future_reason(&event_at("2026-12-07T12:00:00Z"), now, day),
            None
        );
        let reason =
            future_reason(&event_at("9999-01-01T00:00:00Z"), now, day).expect("in the future");
        assert!(reason.contains("9999-01-01T00:00:00"), "{reason}");
        assert!(reason.contains("in the future"), "{reason}");
        assert!(reason.contains("2026-12-06T12:00:00Z"), "{reason}");
        assert!(future_reason(&event_at("2026-12-07T12:00:01Z"), now, day).is_some());
    }

    /// A clock that counts how often it is read and can be moved.
    struct Counted {
        now: std::sync::atomic::AtomicI64,
        reads: std::sync::atomic::AtomicU32,
    }

    impl WallClock for Counted {
        fn now_ms(&self) -> i64 {
            use std::sync::atomic::Ordering::SeqCst;
            self.reads.fetch_add(1, SeqCst);
            self.now.load(SeqCst)
        }
    }

    #[test]
    fn the_admission_clock_is_read_again_only_for_an_event_its_last_reading_does_not_clear() {
        use std::sync::atomic::Ordering::SeqCst;
        let start = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
            .expect("a time")
            .timestamp_millis();
        let clock = Counted {
            now: start.into(),
            reads: 0.into(),
        };
        let admission = AdmissionClock::new(&clock);
        let day = 86_400_000;
        assert_eq!(
            admission.future_reason(&event_at("2026-12-06T13:00:00Z"), day),
            None
        );
        assert_eq!(
            admission.future_reason(&event_at("2026-12-07T11:00:00Z"), day),
            None
        );
        assert_eq!(clock.reads.load(SeqCst), 1, "one reading clears both");
        // Beyond the last reading plus the skew: read again, and judged on the fresh reading.
        clock.now.store(start + 3_600_000, SeqCst);
        assert_eq!(
            admission.future_reason(&event_at("2026-12-07T12:30:00Z"), day),
            None
        );
        assert_eq!(clock.reads.load(SeqCst), 2);
        let reason = admission
            .future_reason(&event_at("2026-12-07T13:30:00Z"), day)
            .expect("in the future of the fresh reading");
        assert!(reason.contains("2026-12-06T13:00:00Z"), "{reason}");
        assert_eq!(clock.reads.load(SeqCst), 3);
    }
}
