//! Turning one input line into a validated [`Event`], or a reason why not.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};
use thiserror::Error;

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
}
