//! `[absence]` rules: a deadline set by events, and the timer that fires when it passes.

use super::emit::{resolution, Decision};
use super::env::step_matches;
use super::Context;
use crate::engine::output::{AlertState, OutputEvent};
use crate::engine::state::{Firing, KeyState};
use crate::event::{Event, EventTime};
use crate::rules::{Mode, RuleKind};

impl Context<'_> {
    pub(super) fn absence_event(
        &mut self,
        r: usize,
        key: &str,
        state: &mut KeyState,
        event: &Event,
        out: &mut Vec<OutputEvent>,
    ) {
        let rule = &self.rules.rules[r];
        let Mode::Absence {
            of,
            timeout_ms,
            start,
            ..
        } = &rule.mode
        else {
            return;
        };
        let t = event.time.millis();
        // Only an event at or after the key's latest time means data resumed: an older one
        // (late, within the allowed lateness) neither resolves nor restarts the timeout.
        let newest = t >= state.clock;
        let watched = newest && of.is_none_or(|ty| ty == event.event_type());
        let starts = start.as_ref().is_some_and(|s| step_matches(s, event));
        let rs = state.rules[r].get_or_insert_with(Default::default);
        if watched {
            if let Some(firing) = rs.firing.take() {
                let decision = resolution(rule, key, firing, event, None);
                self.emit(r, key, state, decision, out);
            }
        }
        let Some(rs) = state.rules[r].as_mut() else {
            return;
        };
        let extra = rs.absence();
        let new_deadline = if start.is_some() {
            if watched {
                extra.deadline = None;
                extra.cause = None;
            }
            (starts && extra.deadline.is_none()).then_some(t + timeout_ms)
        } else if watched {
            Some(t + timeout_ms).filter(|d| extra.deadline.is_none_or(|old| *d > old))
        } else {
            None
        };
        if let Some(deadline) = new_deadline {
            extra.deadline = Some(deadline);
            // "A not followed by B" cites A. A plain absence has no input event behind it (the
            // silence is the cause; its start is the firing time minus the timeout), and not
            // keeping the last event's id saves every user ~70 bytes.
            if start.is_some() {
                extra.cause = Some(event.id.as_str().into());
            }
            if !extra.queued {
                extra.queued = true;
                self.timers.push((deadline, key.into(), r));
            }
        }
    }

    /// A queued timer came due: fire the absence if its deadline still stands, or re-queue.
    pub fn expire_absence(
        &mut self,
        r: usize,
        key: &str,
        state: &mut KeyState,
        due: i64,
        out: &mut Vec<OutputEvent>,
    ) {
        let rule = &self.rules.rules[r];
        let offset = state.offset_seconds;
        let Some(rs) = state.rules[r].as_mut() else {
            return;
        };
        let already_firing = rs.firing.is_some();
        let extra = rs.absence();
        extra.queued = false;
        let Some(deadline) = extra.deadline else {
            return;
        };
        if deadline > due {
            extra.queued = true;
            self.timers.push((deadline, key.into(), r));
            return;
        }
        extra.deadline = None;
        let cause = extra.cause.take();
        if already_firing {
            return;
        }
        let time = chrono::FixedOffset::east_opt(offset).and_then(|o| {
            chrono::DateTime::from_timestamp_millis(deadline)
                .map(|d| EventTime(d.with_timezone(&o)))
        });
        let Some(time) = time else { return };
        let severity = rule.severity;
        let decision = Decision {
            state: (rule.kind == RuleKind::Alert).then_some(AlertState::Firing),
            severity,
            time,
            night: None,
            occasion: deadline.to_string(),
            ids: cause.into_iter().map(String::from).collect(),
            firing_id: None,
            eval: None,
            event: None,
        };
        let emitted = self.emit(r, key, state, decision, out);
        if let (Some(_), Some(rs), Mode::Absence { resolves: true, .. }) =
            (emitted, state.rules[r].as_mut(), &rule.mode)
        {
            rs.firing = Some(Firing {
                occasion: deadline,
                severity,
                version: None,
            });
        }
    }
}
