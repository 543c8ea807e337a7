//! Open alerts whose rule is gone, or whose state a reload could not carry over, are resolved
//! with an output that says why, rather than left open forever (nothing would ever resolve
//! them) or dropped silently (a consumer would hold them open).

use indexmap::IndexMap;

use crate::engine::evaluate::firing_id;
use crate::engine::output::{output_id, AlertState, OutputData, OutputEvent, ALERT_RESOLVED_TYPE};
use crate::engine::state::Firing;
use crate::event::{day_to_string, EventTime};
use crate::rules::Rule;

/// Why an open alert is closed by a reload.
#[derive(Clone, Copy, Debug)]
pub(super) enum Why {
    Removed,
    Changed,
}

/// The resolved output closing `firing` of `rule` (of the old set) for `key`, at `at` (ms, the
/// key's latest event time) in the UTC offset `offset_seconds`.
pub(super) fn closing_output(
    rule: &Rule,
    key: &str,
    firing: Firing,
    at: i64,
    offset_seconds: i32,
    why: Why,
) -> OutputEvent {
    let firing_id = firing_id(rule, key, firing);
    let version = firing.version.unwrap_or(rule.version);
    let (tag, message) = match why {
        Why::Removed => (
            "rule-removed",
            format!("Resolved: rule {} was removed from the rule set", rule.id),
        ),
        Why::Changed => (
            "rule-changed",
            format!(
                "Resolved: rule {} changed so that its open alerts cannot carry over",
                rule.id
            ),
        ),
    };
    let id = output_id(
        &rule.id,
        version,
        key,
        AlertState::Resolved.name(),
        &format!("{firing_id}\u{1f}{tag}"),
    );
    let time = event_time(at, offset_seconds);
    OutputEvent {
        specversion: "1.0".into(),
        id: id.to_string(),
        source: format!("vigil/rules/{}", rule.id),
        event_type: ALERT_RESOLVED_TYPE.into(),
        subject: key.rsplit('\u{1f}').next().unwrap_or(key).to_string(),
        time,
        datacontenttype: "application/json".into(),
        data: OutputData {
            rule_id: rule.id.clone(),
            rule_version: version,
            kind: rule.kind,
            state: Some(AlertState::Resolved),
            severity: firing.severity,
            night: rule.nightly.then(|| day_to_string(time.local_day())),
            message: Some(message),
            stats: IndexMap::new(),
            samples: IndexMap::new(),
            input_event_ids: Vec::new(),
            firing_id: Some(firing_id.to_string()),
        },
    }
}

/// `at` in the offset, falling back to UTC and to the epoch for values no calendar holds (a
/// key that never saw an event has the earliest clock).
fn event_time(at: i64, offset_seconds: i32) -> EventTime {
    use chrono::Offset as _;
    let offset = chrono::FixedOffset::east_opt(offset_seconds).unwrap_or(chrono::Utc.fix());
    let instant = chrono::DateTime::from_timestamp_millis(at).unwrap_or_default();
    EventTime(instant.with_timezone(&offset))
}
