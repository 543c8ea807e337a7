//! JSON Schemas (draft 2020-12) of input events, built from the Rust types.

use serde_json::{json, Map, Value as Json};

use super::plausible::IDENTIFIER_PATTERN;
use super::EventType;

/// The length limits of `id`, `user_id` and `source`, in characters (as JSON Schema counts).
pub(super) const IDENTIFIER_MIN_CHARS: usize = 1;
pub(super) const IDENTIFIER_MAX_CHARS: usize = 256;

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The schema of a bare event of one type: the envelope with its typed `data`.
pub fn event_envelope_schema(ty: EventType) -> Json {
    let mut data = serde_json::to_value(ty.data_schema()).unwrap_or(Json::Null);
    refuse_control_characters(&mut data);
    // schemars puts shared definitions at the payload's root; hoist them to the envelope's
    // root so their `#/$defs/…` references still resolve once the payload is nested.
    let defs = data
        .as_object_mut()
        .and_then(|o| {
            o.remove("$schema");
            o.remove("title");
            o.remove("$defs")
        })
        .unwrap_or_else(|| Json::Object(Map::new()));
    let mut schema = json!({
        "$schema": DRAFT,
        "$id": format!("https://vigil.dev/schemas/events/{}.schema.json", ty.name()),
        "title": format!("Vigil input event: {}", ty.name()),
        "description": ty.doc().trim(),
        "type": "object",
        "additionalProperties": false,
        "required": ["id", "user_id", "type", "source", "time", "data"],
        "properties": {
            "id": identifier("Producer-assigned id, unique per source."),
            "user_id": identifier("The user the event belongs to (the default rule key)."),
            "type": {"const": ty.name()},
            "source": identifier("Where the event came from, e.g. \"whoop\"."),
            "time": {"type": "string", "format": "date-time",
                     "description": "RFC 3339 with UTC offset, not before 2000-01-01T00:00:00Z; \
                                     for nightly metrics, when the sleep ended."},
            "data": data,
        }
    });
    if defs.as_object().is_some_and(|d| !d.is_empty()) {
        schema["$defs"] = defs;
    }
    schema
}

/// Gives every free-text field of a payload (a string without a pattern of its own) the
/// identifiers' pattern: text that is blank or holds a control character is a broken producer,
/// and PostgreSQL text cannot store a NUL.
fn refuse_control_characters(data: &mut Json) {
    let Some(properties) = data.get_mut("properties").and_then(Json::as_object_mut) else {
        return;
    };
    for property in properties.values_mut() {
        let Some(p) = property.as_object_mut() else {
            continue;
        };
        let text = match p.get("type") {
            Some(Json::String(t)) => t == "string",
            Some(Json::Array(ts)) => ts.iter().any(|t| t == "string"),
            _ => false,
        };
        if text && !p.contains_key("pattern") {
            p.insert("pattern".to_string(), json!(IDENTIFIER_PATTERN));
            if let Some(Json::String(d)) = p.get_mut("description") {
                d.push_str(" Not blank; no control characters.");
            }
        }
    }
}

/// The schema of `id`, `user_id` and `source`.
fn identifier(description: &str) -> Json {
    json!({
        "type": "string",
        "minLength": IDENTIFIER_MIN_CHARS,
        "maxLength": IDENTIFIER_MAX_CHARS,
        "pattern": IDENTIFIER_PATTERN,
        "description": format!("{description} Not blank; no control characters."),
    })
}

/// One schema accepting any bare input event (a `oneOf` keyed by `type`), for consumers.
pub fn event_union_schema() -> Json {
    let variants: Vec<Json> = EventType::ALL
        .iter()
        .map(|ty| json!({"$ref": format!("events/{}.schema.json", ty.name())}))
        .collect();
    json!({
        "$schema": DRAFT,
        "$id": "https://vigil.dev/schemas/event.schema.json",
        "title": "Vigil input event",
        "description": "Any bare input event; each type's schema is in events/.",
        "oneOf": variants,
    })
}
