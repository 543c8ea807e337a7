//! Input events: the typed model, the wire formats it arrives in, and their validation.
//!
//! An event arrives as one JSON object, either bare
//! (`{"id","user_id","type","source","time","data":{…}}`) or wrapped as a CloudEvents 1.0
//! structured event (`subject` carries the user id). [`Decoder`] validates every line against
//! the JSON Schema of its type (compiled once) before decoding it into an [`Event`], then
//! checks what no schema can express ([`plausible`]: across fields, against the calendar).
//! The common bare event takes a fast path that must decide exactly as the validator does;
//! [`Decoder::compare_paths`] is the oracle the property tests and the fuzzer hold it to.

mod decode;
mod fast;
mod json;
#[cfg(test)]
mod paths_agree;
pub mod plausible;
mod schema;
mod time;
mod types;
mod value;

pub use decode::{DecodeError, Decoder, DEFAULT_MAX_LINE_BYTES};
pub use json::{JsonError, MAX_NESTING};
pub use schema::{event_envelope_schema, event_union_schema};
pub use time::{day_to_string, EventTime, DAY_MS};
pub use types::*;
pub use value::{FieldValue, Value, ValueType};

/// A validated input event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Producer-assigned id, unique per source; outputs cite it as provenance.
    pub id: String,
    pub user_id: String,
    /// Where it came from, e.g. "whoop", "apple-health", "vigil-simulate".
    pub source: String,
    /// When it happened (for nightly metrics: when that sleep ended), offset preserved.
    pub time: EventTime,
    pub data: EventData,
}

impl Event {
    pub fn event_type(&self) -> EventType {
        self.data.event_type()
    }

    /// The bare JSON form, as accepted by [`Decoder`].
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "user_id": self.user_id,
            "type": self.event_type().name(),
            "source": self.source,
            "time": self.time.to_rfc3339(),
            "data": self.data.to_json(),
        })
    }

    /// The value of a top-level string attribute or payload field, by name (for rule keys).
    pub fn attribute(&self, name: &str) -> Option<String> {
        match name {
            "user_id" => Some(self.user_id.clone()),
            "source" => Some(self.source.clone()),
            "id" => Some(self.id.clone()),
            other => {
                let index = self.event_type().field_index(other)?;
                match self.data.field(index) {
                    Value::Str(s) => Some(s.to_string()),
                    Value::Num(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    Value::Null => None,
                }
            }
        }
    }
}
