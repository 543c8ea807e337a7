//! One row of the history: an output's CloudEvent with the columns people filter by.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;

use super::HistoryError;
use crate::engine::OutputEvent;

/// An alert or milestone as the history stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryRow {
    /// The CloudEvent id; the primary key, so storing an output twice keeps one row.
    pub id: String,
    /// The CloudEvent type: `io.vigil.alert.firing`, `io.vigil.alert.resolved` or
    /// `io.vigil.milestone`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `alert` or `milestone`.
    pub kind: String,
    pub rule_id: String,
    pub rule_version: i64,
    /// The CloudEvent subject: the user id.
    pub user_id: String,
    /// The CloudEvent time, in UTC; the offset it was recorded in stays in `event`.
    pub time: DateTime<Utc>,
    /// The user's local night, for nightly rules.
    pub night: Option<NaiveDate>,
    /// `firing` or `resolved` for alerts; none for milestones.
    pub state: Option<String>,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// A silence covered it: stored, but not published.
    pub silenced: bool,
    /// The CloudEvent JSON, byte for byte as `vigil run` emits it.
    #[serde(serialize_with = "as_raw_json")]
    pub event: String,
}

impl HistoryRow {
    /// The row of an output, not silenced.
    pub fn from_output(output: &OutputEvent) -> Result<HistoryRow, HistoryError> {
        let event = serde_json::to_string(output).map_err(|e| HistoryError::Row {
            id: output.id.clone(),
            message: format!("cannot serialise the CloudEvent: {e}"),
        })?;
        let night = output
            .data
            .night
            .as_deref()
            .map(|n| parse_night(&output.id, n))
            .transpose()?;
        Ok(HistoryRow {
            id: output.id.clone(),
            event_type: output.event_type.clone(),
            kind: output.data.kind.name().to_string(),
            rule_id: output.data.rule_id.clone(),
            rule_version: i64::from(output.data.rule_version),
            user_id: output.subject.clone(),
            time: output.time.0.with_timezone(&Utc),
            night,
            state: output.data.state.map(|s| s.name().to_string()),
            severity: output.data.severity.name().to_string(),
            silenced: false,
            event,
        })
    }

    /// The stored CloudEvent, parsed back.
    pub fn output(&self) -> Result<OutputEvent, HistoryError> {
        serde_json::from_str(&self.event).map_err(|e| HistoryError::Row {
            id: self.id.clone(),
            message: format!("the stored CloudEvent does not parse: {e}"),
        })
    }
}

pub(crate) fn parse_night(id: &str, night: &str) -> Result<NaiveDate, HistoryError> {
    NaiveDate::parse_from_str(night, "%Y-%m-%d").map_err(|e| HistoryError::Row {
        id: id.to_string(),
        message: format!("night `{night}` is not a YYYY-MM-DD date: {e}"),
    })
}

/// SQLite keeps times as text: fixed-width RFC 3339 in UTC with milliseconds, so that text
/// order is time order and `time >= $1` compares instants.
pub(crate) fn sqlite_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn parse_sqlite_time(id: &str, text: &str) -> Result<DateTime<Utc>, HistoryError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| HistoryError::Row {
            id: id.to_string(),
            message: format!("stored time `{text}` is not RFC 3339: {e}"),
        })
}

/// `event` goes out as the JSON object it is, not as a string holding JSON; text that is not
/// JSON (written by hand into the table) goes out as a string rather than failing the listing.
fn as_raw_json<S: serde::Serializer>(event: &str, s: S) -> Result<S::Ok, S::Error> {
    match serde_json::from_str::<&serde_json::value::RawValue>(event) {
        Ok(raw) => raw.serialize(s),
        Err(_) => s.serialize_str(event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRING: &str = r#"{"specversion":"1.0","id":"a1","source":"vigil/rules/hrv_drop","type":"io.vigil.alert.firing","subject":"u1","time":"2024-05-01T07:12:00+02:00","datacontenttype":"application/json","data":{"rule_id":"hrv_drop","rule_version":3,"kind":"alert","state":"firing","severity":"critical","night":"2024-05-01","stats":{"signal":null},"samples":{"signal":2},"input_event_ids":["e1"]}}"#;
    const MILESTONE: &str = r#"{"specversion":"1.0","id":"m1","source":"vigil/rules/sleep_streak_7","type":"io.vigil.milestone","subject":"u2","time":"2024-05-01T23:30:00-05:00","datacontenttype":"application/json","data":{"rule_id":"sleep_streak_7","rule_version":1,"kind":"milestone","severity":"info","stats":{},"samples":{},"input_event_ids":[]}}"#;

    fn output(json: &str) -> OutputEvent {
        serde_json::from_str(json).expect("a valid output")
    }

    #[test]
    fn an_alert_maps_to_its_columns_and_keeps_its_json() {
        let row = HistoryRow::from_output(&output(FIRING)).expect("maps");
        assert_eq!(row.id, "a1");
        assert_eq!(row.event_type, "io.vigil.alert.firing");
        assert_eq!(row.kind, "alert");
        assert_eq!(row.rule_id, "hrv_drop");
        assert_eq!(row.rule_version, 3);
        assert_eq!(row.user_id, "u1");
        assert_eq!(sqlite_time(&row.time), "2024-05-01T05:12:00.000Z");
        assert_eq!(row.night, NaiveDate::from_ymd_opt(2024, 5, 1));
        assert_eq!(row.state.as_deref(), Some("firing"));
        assert_eq!(row.severity, "critical");
        assert!(!row.silenced);
        assert_eq!(row.event, FIRING, "the CloudEvent as vigil run emits it");
        assert_eq!(row.output().expect("parses back"), output(FIRING));
    }

    #[test]
    fn a_milestone_has_no_state_and_keeps_its_offset_in_the_event() {
        let row = HistoryRow::from_output(&output(MILESTONE)).expect("maps");
        assert_eq!(row.kind, "milestone");
        assert_eq!(row.state, None);
        assert_eq!(row.night, None);
        // 23:30 at -05:00 is the next day in UTC; the event keeps the local time.
        assert_eq!(sqlite_time(&row.time), "2024-05-02T04:30:00.000Z");
        assert!(row.event.contains("2024-05-01T23:30:00-05:00"));
    }

    #[test]
    fn json_output_embeds_the_event_as_an_object() {
        let row = HistoryRow::from_output(&output(MILESTONE)).expect("maps");
        let v = serde_json::to_value(&row).expect("serialises");
        assert_eq!(v["event"]["subject"], "u2");
        assert_eq!(v["type"], "io.vigil.milestone");
        assert_eq!(v["time"], "2024-05-02T04:30:00Z");
        assert!(v["state"].is_null());
        let mut broken = row;
        broken.event = "not json".to_string();
        let v = serde_json::to_value(&broken).expect("serialises");
        assert_eq!(v["event"], "not json");
    }

    #[test]
    fn bad_stored_text_is_an_error_not_a_panic() {
        assert!(parse_night("x", "2024-13-01").is_err());
        assert!(parse_sqlite_time("x", "yesterday").is_err());
        let t = parse_sqlite_time("x", "2024-05-01T05:12:00.000Z").expect("parses");
        assert_eq!(sqlite_time(&t), "2024-05-01T05:12:00.000Z");
    }
}
