//! Turning one input line into a validated [`Event`], or a reason why not.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};
use thiserror::Error;

use super::fast::FastPath;
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
    #[error("not UTF-8 JSON: {0}")]
    Json(String),
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
        if line.len() > self.max_line_bytes {
            return Err(DecodeError::TooLarge {
                len: line.len(),
                max: self.max_line_bytes,
            });
        }
        if let Some(event) = self.fast.decode(line) {
            return Ok(event);
        }
        self.decode_slowly(line)
    }

    /// Decoding through a JSON tree and the schema validator, for whatever the fast path
    /// leaves (and to word every rejection).
    fn decode_slowly(&self, line: &[u8]) -> Result<Event, DecodeError> {
        let json: Json =
            serde_json::from_slice(line).map_err(|e| DecodeError::Json(e.to_string()))?;
        self.decode_value(json)
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
            let reasons: Vec<String> = validator
                .iter_errors(&json)
                .map(|e| {
                    let path = e.instance_path.to_string();
                    let path = if path.is_empty() {
                        "/".to_string()
                    } else {
                        path
                    };
                    format!("{path}: {e}")
                })
                .collect();
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
        Ok(Event {
            id,
            user_id,
            source,
            time,
            data,
        })
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
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
        if ct
            .as_str()
            .is_some_and(|ct| !ct.starts_with("application/json"))
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
            ("{not json", "not UTF-8 JSON"),
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
    }

    mod fast_path_agrees {
        use super::*;
        use proptest::prelude::*;

        const TEXTS: &[&str] = &[
            r#""u1""#,
            r#""""#,
            r#"5"#,
            r#"null"#,
            r#""\u00e9x""#,
            r#""running""#,
            r#""onset""#,
            r#""ok""#,
        ];
        const TIMES: &[&str] = &[
            "2024-05-01T07:00:00+02:00",
            "2024-05-01T07:00:00Z",
            "2024-05-01t07:00:00z",
            "2024-05-01 07:00:00Z",
            "2024-02-30T07:00:00Z",
            "2024-05-01T23:59:60Z",
            "2024-05-01T07:00:00",
            "2024-05-01T07:00:00.5+23:59",
            "2024-05-01T07:00:00-24:00",
            "x",
        ];
        const NUMBERS: &[&str] = &[
            "-1",
            "0",
            "0.05",
            "0.1",
            "1",
            "20",
            "45",
            "61",
            "100",
            "300",
            "400",
            "401",
            "1000",
            "1001",
            "1440",
            "1441",
            "86400",
            "100000",
            "100001",
            "3.5",
            "1e300",
            "4294967296",
            "true",
            "null",
            r#""61""#,
        ];

        fn long(c: &str, n: usize) -> String {
            format!("\"{}\"", c.repeat(n))
        }

        fn text_value() -> impl Strategy<Value = String> {
            prop_oneof![
                6 => Just(r#""u1""#.to_string()),
                1 => proptest::sample::select(TEXTS).prop_map(str::to_string),
                1 => (proptest::sample::select(&["a", "é"][..]), 199usize..=201)
                    .prop_map(|(c, n)| long(c, n)),
                1 => (proptest::sample::select(&["a", "é"][..]), 255usize..=257)
                    .prop_map(|(c, n)| long(c, n)),
            ]
        }

        fn field_value() -> impl Strategy<Value = Option<String>> {
            prop_oneof![
                6 => proptest::sample::select(&["1", "20", "45", "61", "100", "0.1"][..])
                    .prop_map(|n| Some(n.to_string())),
                3 => proptest::sample::select(NUMBERS).prop_map(|n| Some(n.to_string())),
                1 => text_value().prop_map(Some),
                1 => Just(None),
            ]
        }

        /// Lines around every event type's valid form: each key's value drawn from values that
        /// are valid, at a limit, or wrong; keys left out, added or given twice.
        fn line() -> impl Strategy<Value = String> {
            // Weighted toward valid values, so that a good share of lines is accepted and the
            // comparison has something to compare.
            (
                proptest::sample::select(EventType::ALL),
                proptest::collection::vec(field_value(), 8),
                proptest::collection::vec(text_value(), 3),
                prop_oneof![
                    3 => Just("2024-05-01T07:00:00+02:00"),
                    1 => proptest::sample::select(TIMES),
                ],
                0u8..12,
            )
                .prop_map(|(ty, fields, texts, time, twist)| {
                    let data: Vec<String> = ty
                        .fields()
                        .iter()
                        .zip(&fields)
                        .filter_map(|(f, v)| v.as_ref().map(|v| format!("\"{}\":{v}", f.name)))
                        .chain((twist == 1).then(|| "\"bpm\":3".to_string()))
                        .collect();
                    let mut keys = vec![
                        format!("\"id\":{}", texts[0]),
                        format!("\"user_id\":{}", texts[1]),
                        format!("\"source\":{}", texts[2]),
                        format!("\"type\":\"{}\"", ty.name()),
                        format!("\"time\":\"{time}\""),
                        format!("\"data\":{{{}}}", data.join(",")),
                    ];
                    match twist {
                        2 => keys.push("\"extra\":1".into()),
                        3 => {
                            keys.remove(0);
                        }
                        4 => keys.push(format!("\"id\":{}", texts[2])),
                        _ => {}
                    }
                    format!("{{{}}}", keys.join(","))
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]
            #[test]
            fn whatever_the_fast_path_accepts_the_validator_accepts_identically(line in line()) {
                let decoder = Decoder::new();
                if let Some(event) = decoder.fast.decode(line.as_bytes()) {
                    prop_assert_eq!(Ok(event), decoder.decode_slowly(line.as_bytes()), "{}", line);
                }
            }
        }

        #[test]
        fn well_formed_frequent_events_take_the_fast_path() {
            let decoder = Decoder::new();
            let lines = [
                HR.to_string(),
                HR.replace(r#""heart_rate","#, r#""resting_heart_rate","#),
                r#"{"id":"e","user_id":"u","type":"heart_rate_variability","source":"s","time":"2024-05-01T07:00:00Z","data":{"rmssd":41.5,"sdnn":null}}"#.to_string(),
                r#"{"id":"e","user_id":"u","type":"step_count","source":"s","time":"2024-05-01T07:00:00.250-04:00","data":{"step_count":120}}"#.to_string(),
            ];
            for line in lines {
                let fast = decoder.fast.decode(line.as_bytes());
                assert!(fast.is_some(), "{line}");
                assert_eq!(
                    fast.ok_or(()),
                    decoder.decode_slowly(line.as_bytes()).map_err(|_| ())
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
    }
}
