//! Durations as `vigil.toml` writes them (`"20ms"`, `"30s"`, `"7d"`), read into [`Duration`]s
//! and written back in the same form, so the defaults layer and the schema's defaults read as
//! a user would write them.
//!
//! The grammar is the rules' ([`crate::rules::duration`]): a whole number and a lower-case unit
//! (ms, s, m, h, d, w), repeated (`"1h30m"`). Most settings refuse zero ([`positive`]), because
//! a timeout or interval of nothing is a typo; [`or_zero`] is for waits where not waiting is a
//! choice.

use std::time::Duration;

use schemars::{json_schema, Schema, SchemaGenerator};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

use crate::rules::duration::{format_duration, parse_duration, parse_duration_or_zero};

/// A duration in its shortest written form; zero as `"0ms"` rather than `"0w"`.
pub fn format(duration: Duration) -> String {
    let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    if ms == 0 {
        "0ms".to_string()
    } else {
        format_duration(ms)
    }
}

/// Reads `text` with `parse`, which never yields a negative number of milliseconds.
fn parse_with(text: &str, parse: fn(&str) -> Result<i64, String>) -> Result<Duration, String> {
    parse(text).map(|ms| Duration::from_millis(ms.unsigned_abs()))
}

/// A positive duration, as [`parse_duration`] reads it.
pub fn parse(text: &str) -> Result<Duration, String> {
    parse_with(text, parse_duration)
}

fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*duration))
}

/// A string with one or more number-and-unit pairs, the grammar both modules accept. The
/// schema leaves zero and overflow to the loader: it only has to be no stricter than it.
const PATTERN: &str = r"^\s*([0-9]+(ms|s|m|h|d|w))+\s*$";

/// `serialize_with`, `deserialize_with` and `schema_with` for a duration that must be positive.
pub mod positive {
    use super::*;

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        super::serialize(duration, serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).map_err(D::Error::custom)
    }

    pub fn schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": PATTERN,
            "examples": ["500ms", "30s", "10m", "36h", "7d", "1h30m"],
        })
    }
}

/// The same for a wait that may be zero (`"0"`, `"0ms"`).
pub mod or_zero {
    use super::*;

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        super::serialize(duration, serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_with(&text, parse_duration_or_zero).map_err(D::Error::custom)
    }

    pub fn schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": r"^\s*(0+|([0-9]+(ms|s|m|h|d|w))+)\s*$",
            "examples": ["0ms", "250ms", "2s"],
        })
    }
}

/// The schema of a positive duration, for types that embed one (a topic's retention).
pub fn schema() -> Schema {
    positive::schema(&mut SchemaGenerator::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_forms_read_back() {
        for (text, ms) in [
            ("20ms", 20),
            ("30s", 30_000),
            ("1h30m", 5_400_000),
            ("7d", 604_800_000),
        ] {
            let d = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(d, Duration::from_millis(ms));
            assert_eq!(parse(&format(d)), Ok(d));
        }
        assert_eq!(format(Duration::from_millis(5_400_000)), "90m");
        assert_eq!(format(Duration::ZERO), "0ms");
        assert!(parse("0ms").unwrap_err().contains("zero"));
        assert!(parse("3M").unwrap_err().contains("unit `M`"));
    }
}
