//! Turning one input line into a validated [`Event`], or a reason why not.

use std::collections::HashMap;

use jsonschema::error::ValidationErrorKind;
use serde_json::{Map, Value as Json};
use thiserror::Error;

use super::fast::{plain_rfc3339, FastPath};
use super::json::{self, JsonError};
use super::plausible::{self, identifier_problem, IDENTIFIER_PATTERN};
use super::{event_envelope_schema, Event, EventData, EventTime, EventType};

/// Lines longer than this are dead-lettered unread (1 MiB): no event needs more, and an
/// unbounded line is how a broken producer exhausts memory.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// CloudEvents `type` values may carry this reverse-DNS prefix before the event type name.
const CLOUDEVENTS_TYPE_PREFIX: &str = "io.vigil.";

/// Why an input line was rejected; the text goes to the dead-letter output.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DecodeError {
    #[error("line of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// Not JSON as both decoding paths read it.
    #[error(transparent)]
    Json(#[from] JsonError),
    #[error("expected a JSON object, found {0}")]
    NotObject(&'static str),
    #[error("missing string field `type`")]
    MissingType,
    #[error("unknown event type `{0}` (known: {known})", known = known_types())]
    UnknownType(String),
    #[error("not a valid CloudEvents 1.0 event: {0}")]
    CloudEvents(String),
    #[error("schema violation: {0}")]
    Schema(String),
    #[error("implausible event: {0}")]
    Implausible(String),
}

fn known_types() -> String {
    EventType::ALL
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Validates and decodes input lines. Build once: compiling the schemas is the costly part.
pub struct Decoder {
    validators: HashMap<EventType, jsonschema::Validator>,
    fast: FastPath,
    max_line_bytes: usize,
}

impl Decoder {
    pub fn new() -> Self {
        Self::with_max_line_bytes(DEFAULT_MAX_LINE_BYTES)
    }

    pub fn with_max_line_bytes(max_line_bytes: usize) -> Self {
        let validators = EventType::ALL
            .iter()
            .map(|&ty| {
                let schema = event_envelope_schema(ty);
                let validator = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&schema)
                    // The schemas are generated from our own types; failing to compile one is
                    // a programming error caught by the schema tests, not an input error.
                    .unwrap_or_else(|e| panic!("schema of {} does not compile: {e}", ty.name()));
                (ty, validator)
            })
            .collect();
        Decoder {
            validators,
            fast: FastPath::new(),
            max_line_bytes,
        }
    }

    pub fn decode(&self, line: &[u8]) -> Result<Event, DecodeError> {
        self.decode_kept(line, line.len())
    }

    /// The most bytes a line may have.
    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }

    /// Decodes a line of `full_len` bytes of which a reader kept `line` (a reader keeps at
    /// most a little more than the limit of a longer line, and still reports its length).
    pub fn decode_kept(&self, line: &[u8], full_len: usize) -> Result<Event, DecodeError> {
        let len = full_len.max(line.len());
        if len > self.max_line_bytes {
            return Err(DecodeError::TooLarge {
                len,
                max: self.max_line_bytes,
            });
        }
        if let Some(event) = self.fast.decode(line) {
            return plausible_event(event);
        }
        self.decode_slowly(line)
    }

    /// Decoding through a JSON tree and the schema validator, for whatever the fast path
    /// leaves (and to word every rejection).
    fn decode_slowly(&self, line: &[u8]) -> Result<Event, DecodeError> {
        self.decode_value(json::parse_line(line)?)
    }

    pub fn decode_value(&self, json: Json) -> Result<Event, DecodeError> {
        let Json::Object(object) = json else {
            return Err(DecodeError::NotObject(json_kind(&json)));
        };
        let object = if object.contains_key("specversion") {
            from_cloudevent(object)?
        } else {
            object
        };
        let type_name = object
            .get("type")
            .and_then(Json::as_str)
            .ok_or(DecodeError::MissingType)?;
        let ty = EventType::from_name(type_name)
            .ok_or_else(|| DecodeError::UnknownType(type_name.to_string()))?;
        let json = Json::Object(object);
        let validator = &self.validators[&ty];
        if !validator.is_valid(&json) {
            let reasons: Vec<String> = validator.iter_errors(&json).map(schema_reason).collect();
            return Err(DecodeError::Schema(reasons.join("; ")));
        }
        // Decode the typed event from the validated value by reference: no map surgery.
        let text = |key: &str| match json.get(key) {
            Some(Json::String(s)) => Ok(s.as_str()),
            _ => Err(DecodeError::Schema(format!("/{key}: expected a string"))),
        };
        let time = EventTime::parse(text("time")?)
            .map_err(|e| DecodeError::Schema(format!("/time: {e}")))?;
        let data = EventData::from_json_ref(ty, json.get("data").unwrap_or(&Json::Null))
            .map_err(|e| DecodeError::Schema(format!("/data: {e}")))?;
        let (id, user_id, source) = (
            text("id")?.to_string(),
            text("user_id")?.to_string(),
            text("source")?.to_string(),
        );
        plausible_event(Event {
            id,
            user_id,
            source,
            time,
            data,
        })
    }

    /// Decodes `line` by the fast path and by the full validator, and says how they differ.
    ///
    /// `Ok(Some(event))`: both accept it, as the same event (offsets and all); `Ok(None)`: both
    /// reject it (the fast path by leaving it to the validator); `Err`: they disagree. The fast
    /// path may leave a line to the validator only when the line is not a bare event of a type
    /// it handles with its time in the plain RFC 3339 form: every such valid event is its to
    /// take. The property tests and the `decode` fuzz target hold the two paths to this.
    #[doc(hidden)]
    pub fn compare_paths(&self, line: &[u8]) -> Result<Option<Event>, String> {
        let slow = self.decode_slowly(line);
        let show = |line: &[u8]| String::from_utf8_lossy(line).into_owned();
        match self.fast.decode(line) {
            Some(event) => {
                let fast = plausible_event(event);
                if format!("{fast:?}") != format!("{slow:?}") {
                    return Err(format!(
                        "the paths differ on {}\n  fast: {fast:?}\n  full: {slow:?}",
                        show(line)
                    ));
                }
                Ok(fast.ok())
            }
            None => match slow {
                Ok(event) if self.fast_path_owns(line, &event) => Err(format!(
                    "the fast path left a valid bare {} event with a plain time to the \
                     validator: {}\n  full: {event:?}",
                    event.event_type().name(),
                    show(line)
                )),
                Ok(event) => Ok(Some(event)),
                Err(_) => Ok(None),
            },
        }
    }

    /// Whether the fast path takes `line` (for tests of the paths).
    #[cfg(test)]
    pub(super) fn fast_path_takes(&self, line: &[u8]) -> bool {
        self.fast.decode(line).is_some()
    }

    /// Whether the fast path must take `line`, which the validator decoded as `event`.
    fn fast_path_owns(&self, line: &[u8], event: &Event) -> bool {
        let Ok(Json::Object(object)) = json::parse_line(line) else {
            return false;
        };
        self.fast.handles(event.event_type())
            && !object.contains_key("specversion")
            && object
                .get("time")
                .and_then(Json::as_str)
                .is_some_and(plain_rfc3339)
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

/// `event`, once it passes the checks beyond its schema that both paths share.
fn plausible_event(event: Event) -> Result<Event, DecodeError> {
    plausible::check(&event).map_err(DecodeError::Implausible)?;
    Ok(event)
}

/// One schema violation as a reason: where, and what is wrong.
fn schema_reason(e: jsonschema::ValidationError<'_>) -> String {
    let path = e.instance_path.to_string();
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    // The identifier pattern is a wall of character ranges; say in words what it refuses.
    if let (ValidationErrorKind::Pattern { pattern }, Json::String(text)) = (&e.kind, &*e.instance)
    {
        if pattern == IDENTIFIER_PATTERN {
            if let Some(problem) = identifier_problem(text) {
                return format!("{path}: {text:?} {problem}");
            }
        }
    }
    format!("{path}: {e}")
}

/// Maps a CloudEvents 1.0 structured event onto the bare form (`subject` → `user_id`).
fn from_cloudevent(mut ce: Map<String, Json>) -> Result<Map<String, Json>, DecodeError> {
    match ce.remove("specversion") {
        Some(Json::String(v)) if v == "1.0" => {}
        other => {
            let found = other.unwrap_or(Json::Null);
            return Err(DecodeError::CloudEvents(format!(
                "specversion must be \"1.0\", found {found}"
            )));
        }
    }
    if let Some(ct) = ce.remove("datacontenttype") {
        if !ct
            .as_str()
            .is_some_and(|ct| ct.starts_with("application/json"))
        {
            return Err(DecodeError::CloudEvents(format!(
                "datacontenttype must be application/json, found {ct}"
            )));
        }
    }
    ce.remove("dataschema");
    let subject = ce
        .remove("subject")
        .ok_or_else(|| DecodeError::CloudEvents("missing `subject` (the user id)".into()))?;
    if ce.contains_key("user_id") {
        return Err(DecodeError::CloudEvents(
            "`user_id` is not a CloudEvents attribute; put the user id in `subject`".into(),
        ));
    }
    if let Some(Json::String(ty)) = ce.get_mut("type") {
        if let Some(stripped) = ty.strip_prefix(CLOUDEVENTS_TYPE_PREFIX) {
            *ty = stripped.to_string();
        }
    }
    ce.insert("user_id".into(), subject);
    Ok(ce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Value;

    fn decoder() -> Decoder {
        Decoder::new()
    }

    const HR: &str = r#"{"id":"e1","user_id":"u1","type":"heart_rate","source":"test","time":"2024-05-01T07:00:00+02:00","data":{"heart_rate":61}}"#;

    #[test]
    fn decodes_bare_event_keeping_offset() {
        let e = decoder().decode(HR.as_bytes()).unwrap();
        assert_eq!(e.user_id, "u1");
        assert_eq!(e.event_type(), EventType::HeartRate);
        assert_eq!(e.time.to_rfc3339(), "2024-05-01T07:00:00+02:00");
        assert_eq!(e.data.field(0).as_num(), Some(61.0));
    }

    #[test]
    fn decodes_cloudevent() {
        let line = r#"{"specversion":"1.0","id":"e1","source":"test","type":"io.vigil.heart_rate","subject":"u9","time":"2024-05-01T07:00:00Z","datacontenttype":"application/json","data":{"heart_rate":61}}"#;
        let e = decoder().decode(line.as_bytes()).unwrap();
        assert_eq!(e.user_id, "u9");
        assert_eq!(e.to_json()["type"], "heart_rate");
    }

    #[test]
    fn rejects_with_reasons() {
        let d = decoder();
        let cases: &[(&str, &str)] = &[
            ("{not json", "not valid JSON: key must be a string"),
            ("[1,2]", "expected a JSON object"),
            (r#"{"type":"weather"}"#, "unknown event type `weather`"),
            (&HR.replace("61", "-4"), "/data/heart_rate"),
            (&HR.replace("+02:00", ""), "/time"),
            (&HR.replace(r#""source":"test","#, ""), "source"),
            (
                &HR.replace(r#"{"heart_rate":61}"#, r#"{"heart_rate":61,"bpm":3}"#),
                "bpm",
            ),
        ];
        for (line, expected) in cases {
            let err = d.decode(line.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(expected), "{line}: {err} lacks {expected}");
        }
        let err = Decoder::with_max_line_bytes(10)
            .decode(HR.as_bytes())
            .unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { .. }));
    }

    #[test]
    fn rejects_bad_cloudevents() {
        let line = r#"{"specversion":"0.3","id":"e1","source":"s","type":"heart_rate","subject":"u","time":"2024-05-01T07:00:00Z","data":{"heart_rate":61}}"#;
        assert!(decoder()
            .decode(line.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("specversion"));
        let line = line.replace("0.3", "1.0").replace(r#""subject":"u","#, "");
        assert!(decoder()
            .decode(line.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("subject"));
        // Not a string is not application/json either.
        let line = line.replace(r#""type""#, r#""subject":"u","datacontenttype":5,"type""#);
        assert!(decoder()
            .decode(line.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("datacontenttype must be application/json, found 5"));
    }

    #[test]
    fn well_formed_frequent_events_take_the_fast_path() {
        let decoder = decoder();
        let lines = [
            HR.to_string(),
            HR.replace(r#""heart_rate","#, r#""resting_heart_rate","#),
            r#"{"id":"e","user_id":"u","type":"heart_rate_variability","source":"s","time":"2024-05-01T07:00:00Z","data":{"rmssd":41.5,"sdnn":null}}"#.to_string(),
            r#"{"id":"e","user_id":"u","type":"step_count","source":"s","time":"2024-05-01T07:00:00.250-04:00","data":{"step_count":120}}"#.to_string(),
        ];
        for line in lines {
            assert!(decoder.fast.decode(line.as_bytes()).is_some(), "{line}");
            assert!(
                matches!(decoder.compare_paths(line.as_bytes()), Ok(Some(_))),
                "{line}"
            );
        }
        // At and past a limit: the edge value is taken fast, the one past it is refused
        // and worded by the validator.
        assert!(decoder
            .fast
            .decode(HR.replace("61", "400").as_bytes())
            .is_some());
        assert!(decoder
            .fast
            .decode(HR.replace("61", "400.5").as_bytes())
            .is_none());
        assert!(decoder
            .decode(HR.replace("61", "400.5").as_bytes())
            .is_err());
    }

    /// `line`'s reason from both paths, which must agree (and reject it).
    fn refused(decoder: &Decoder, line: &str) -> String {
        match decoder.compare_paths(line.as_bytes()) {
            Ok(None) => {}
            Ok(Some(event)) => panic!("{line} accepted as {event:?}"),
            Err(diff) => panic!("{diff}"),
        }
        match decoder.decode(line.as_bytes()) {
            Ok(event) => panic!("{line} accepted as {event:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// `line`'s event from both paths, which must agree (and accept it).
    fn accepted(decoder: &Decoder, line: &str) -> Event {
        match decoder.compare_paths(line.as_bytes()) {
            Ok(Some(event)) => event,
            Ok(None) => panic!("{line} refused: {:?}", decoder.decode(line.as_bytes())),
            Err(diff) => panic!("{diff}"),
        }
    }

    const HRV: &str = r#"{"id":"e4","user_id":"u1","type":"heart_rate_variability","source":"t","time":"2024-05-01T07:00:00+02:00","data":{"rmssd":61}}"#;

    #[test]
    fn an_array_is_not_an_object_in_either_path() {
        let d = decoder();
        // serde reads a struct from an array of its fields in order; the schema does not.
        let reason = refused(&d, &HRV.replace(r#"{"rmssd":61}"#, "[61]"));
        assert_eq!(
            reason,
            r#"schema violation: /data: [61] is not of type "object""#
        );
        refused(&d, &HRV.replace(r#"{"rmssd":61}"#, "[61,null]"));
        let reason = refused(
            &d,
            r#"["e4","u1","heart_rate","t","2024-05-01T07:00:00+02:00",{"heart_rate":61}]"#,
        );
        assert_eq!(reason, "expected a JSON object, found an array");
        assert!(EventData::from_json_str(EventType::HeartRate, "[61]").is_err());
        let array = serde_json::json!([61]);
        assert!(EventData::from_json_ref(EventType::HeartRate, &array).is_err());
        assert!(EventData::from_json(EventType::HeartRate, array).is_err());
    }

    #[test]
    fn a_key_given_twice_is_refused_in_both_paths() {
        let d = decoder();
        for line in [
            HR.replace(r#""user_id":"u1","#, r#""user_id":"u1","user_id":"u2","#),
            HR.replace(r#""user_id":"u1","#, r#""user_id":"u1","user_id":"u1","#),
            HR.replace(
                r#""user_id":"u1","#,
                r#""user_id":"u1","user\u005fid":"u2","#,
            ),
            HR.replace(
                r#"{"heart_rate":61}"#,
                r#"{"heart_rate":61,"heart_rate":62}"#,
            ),
        ] {
            let reason = refused(&d, &line);
            assert!(reason.starts_with("duplicate key `"), "{line}: {reason}");
        }
    }

    #[test]
    fn a_whole_number_field_takes_every_form_of_a_whole_number() {
        let d = decoder();
        let sleep = |awakenings: &str| {
            format!(
                r#"{{"id":"e","user_id":"u","type":"sleep_episode","source":"s","time":"2024-05-01T07:00:00Z","data":{{"total_sleep_time":400,"number_of_awakenings":{awakenings}}}}}"#
            )
        };
        for (text, n) in [
            ("3", 3),
            ("3.0", 3),
            ("3e0", 3),
            ("0.3e1", 3),
            ("-0", 0),
            ("1440", 1440),
        ] {
            let event = accepted(&d, &sleep(text));
            assert_eq!(event.data.field(6).as_num(), Some(f64::from(n)), "{text}");
        }
        assert_eq!(accepted(&d, &sleep("null")).data.field(6), Value::Null);
        // Refused by the schema, with its reason (not serde's, after the schema said yes).
        for text in ["2.5", "-1", "1441", "4294967296", "1e300", "\"3\""] {
            let reason = refused(&d, &sleep(text));
            assert!(
                reason.starts_with("schema violation: /data/number_of_awakenings: "),
                "{text}: {reason}"
            );
        }
    }

    #[test]
    fn identifiers_are_neither_blank_nor_hold_control_characters() {
        let d = decoder();
        for (from, to, reason) in [
            (
                r#""user_id":"u1""#,
                r#""user_id":"u\u0000""#,
                r#"/user_id: "u\0" contains the control character U+0000 (character 2)"#,
            ),
            (
                r#""user_id":"u1""#,
                r#""user_id":" \t ""#,
                r#"/user_id: " \t " contains the control character U+0009 (character 2)"#,
            ),
            (
                r#""user_id":"u1""#,
                r#""user_id":" \u3000 ""#,
                r#"/user_id: " \u{3000} " is blank (only whitespace)"#,
            ),
            (
                r#""id":"e1""#,
                r#""id":"e\u007f""#,
                r#"/id: "e\u{7f}" contains the control character U+007F (character 2)"#,
            ),
            (
                r#""source":"test""#,
                r#""source":"\u0085test""#,
                r#"/source: "\u{85}test" contains the control character U+0085 (character 1)"#,
            ),
        ] {
            let line = HR.replace(from, to);
            let got = refused(&d, &line);
            assert!(got.contains(reason), "{line}:\n{got}\nlacks\n{reason}");
        }
        // Inner spaces and non-ASCII are fine; so is a CloudEvents subject, checked the same.
        accepted(&d, &HR.replace(r#""u1""#, r#""user 1 \u00e9""#));
        let ce = r#"{"specversion":"1.0","id":"e1","source":"test","type":"heart_rate","subject":"u\u0000","time":"2024-05-01T07:00:00Z","data":{"heart_rate":61}}"#;
        assert!(refused(&d, ce).contains("/user_id: \"u\\0\" contains the control character"));
    }

    /// Free text in a payload follows the identifiers' rule: PostgreSQL text cannot store a
    /// NUL, and blank text is a broken producer. Both paths refuse it, with the same reason.
    #[test]
    fn payload_text_is_neither_blank_nor_holds_control_characters() {
        let d = decoder();
        let event = |ty: &str, data: &str| {
            format!(
                r#"{{"id":"e","user_id":"u","type":"{ty}","source":"s","time":"2024-05-01T07:00:00Z","data":{data}}}"#
            )
        };
        for (ty, data, reason) in [
            (
                "symptom",
                r#"{"symptom":"head\u0000ache"}"#,
                r#"/data/symptom: "head\0ache" contains the control character U+0000 (character 5)"#,
            ),
            (
                "physical_activity",
                r#"{"activity_name":"  "}"#,
                r#"/data/activity_name: "  " is blank (only whitespace)"#,
            ),
            (
                "illness",
                r#"{"condition":"flu\u001b[31m","status":"onset"}"#,
                r#"/data/condition: "flu\u{1b}[31m" contains the control character U+001B (character 4)"#,
            ),
            (
                "device_sync",
                r#"{"device":"\u0085","status":"ok"}"#,
                r#"/data/device: "\u{85}" contains the control character U+0085 (character 1)"#,
            ),
            (
                "body_temperature",
                r#"{"body_temperature":36.6,"measurement_location":"wrist\n"}"#,
                r#"/data/measurement_location: "wrist\n" contains the control character U+000A (character 6)"#,
            ),
        ] {
            let line = event(ty, data);
            let got = refused(&d, &line);
            assert!(got.contains(reason), "{line}:\n{got}\nlacks\n{reason}");
            assert_eq!(d.compare_paths(line.as_bytes()), Ok(None), "{line}");
        }
        // Text that is merely unusual stays valid, and body temperature keeps the fast path.
        accepted(
            &d,
            &event("symptom", r#"{"symptom":"mal de tête – léger"}"#),
        );
        accepted(
            &d,
            &event(
                "body_temperature",
                r#"{"body_temperature":36.6,"measurement_location":"skin"}"#,
            ),
        );
        assert!(d.fast.handles(EventType::BodyTemperature));
    }

    #[test]
    fn a_sleep_episode_must_be_possible() {
        let d = decoder();
        let sleep = |data: &str| {
            format!(
                r#"{{"id":"e","user_id":"u","type":"sleep_episode","source":"s","time":"2024-05-01T07:00:00+02:00","data":{data}}}"#
            )
        };
        accepted(&d, &sleep(r#"{"total_sleep_time":420,"time_in_bed":420}"#));
        accepted(
            &d,
            &sleep(r#"{"total_sleep_time":420,"sleep_onset":"2024-05-01T05:00:00Z"}"#),
        );
        for (data, reason) in [
            (
                r#"{"total_sleep_time":420.5,"time_in_bed":420}"#,
                "implausible event: /data: asleep longer than in bed: total_sleep_time 420.5 \
                 min is more than time_in_bed 420 min",
            ),
            (
                r#"{"total_sleep_time":420,"sleep_onset":"2024-05-01T05:00:01Z"}"#,
                "implausible event: /data/sleep_onset: the episode ends before it starts: \
                 sleep onset 2024-05-01T05:00:01Z is after its end, the event time \
                 2024-05-01T07:00:00+02:00",
            ),
            (
                r#"{"total_sleep_time":420,"sleep_onset":"1999-12-31T23:00:00Z"}"#,
                "implausible event: /data/sleep_onset: sleep onset 1999-12-31T23:00:00Z is \
                 before 2000-01-01",
            ),
        ] {
            assert_eq!(refused(&d, &sleep(data)), reason, "{data}");
        }
    }

    #[test]
    fn times_before_2000_are_refused_in_both_paths() {
        let d = decoder();
        for (time, shown) in [
            ("1999-12-31T23:59:59Z", "1999-12-31T23:59:59Z"),
            ("2000-01-01T00:30:00+01:00", "2000-01-01T00:30:00+01:00"),
            ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"),
            ("1970-01-01t00:00:00z", "1970-01-01T00:00:00Z"),
        ] {
            let line = HR.replace("2024-05-01T07:00:00+02:00", time);
            assert_eq!(
                refused(&d, &line),
                format!("implausible event: /time: event time {shown} is before 2000-01-01")
            );
        }
        accepted(
            &d,
            &HR.replace("2024-05-01T07:00:00+02:00", "2000-01-01T00:00:00Z"),
        );
        accepted(
            &d,
            &HR.replace("2024-05-01T07:00:00+02:00", "2000-01-01T01:00:00+01:00"),
        );
    }

    #[test]
    fn a_number_decodes_to_the_double_nearest_its_text() {
        // Found by the whoop_import fuzz target: serde_json's default float parsing may land one
        // unit in the last place away, so 95.76666666666667 (the shortest text of a double)
        // read back as 95.76666666666668, and an event did not survive its own JSON.
        let d = decoder();
        for text in [
            "95.76666666666667",
            "1.3000000000000003",
            "61.000000000000014",
            "1e2",
        ] {
            let Ok(exact) = text.parse::<f64>() else {
                panic!("{text} is not a number");
            };
            for line in [
                HR.replace(":61}", &format!(":{text}}}")),
                HR.replace("\"heart_rate\",", "\"oxygen_saturation\",")
                    .replace(
                        "{\"heart_rate\":61}",
                        &format!("{{\"oxygen_saturation\":{text}}}"),
                    ),
            ] {
                let event = accepted(&d, &line);
                assert_eq!(event.data.field(0).as_num(), Some(exact), "{line}");
            }
        }
    }

    #[test]
    fn reasons_name_what_is_wrong() {
        let d = decoder();
        let with_rate = |rate: &str| HR.replace(":61}", &format!(":{rate}}}"));
        for (rate, reason) in [
            ("NaN", "`NaN` is not a JSON number"),
            ("-Infinity", "`-Infinity` is not a JSON number"),
            ("1e400", "number out of range"),
            ("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "nesting too deep"),
        ] {
            let got = refused(&d, &with_rate(rate));
            assert!(got.starts_with(reason), "{rate}: {got}");
        }
        assert!(refused(&d, &format!("\u{feff}{HR}")).starts_with("byte-order mark"));
        let mut not_utf8 = HR.as_bytes().to_vec();
        not_utf8[25] = 0xff;
        assert_eq!(
            d.decode(&not_utf8).map_err(|e| e.to_string()),
            Err("not UTF-8: invalid byte sequence at byte 25".to_string())
        );
    }
}
