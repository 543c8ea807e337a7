//! A fast path for the common well-formed bare event: several times faster (BENCHMARKS.md)
//! than building a `serde_json::Value` tree and running the JSON Schema validator over it.
//!
//! It accepts a line only when it can prove that the schema accepts it too: the envelope is
//! parsed into typed fields (unknown keys refused, and a key given twice, as the validator's
//! reader refuses it), the payload straight into its typed struct (both from JSON objects
//! only), and the payload's schema constraints are checked on the typed values. Those
//! constraints are read from the same generated schema the validator uses, when the decoder
//! is built; an event type whose payload schema uses any keyword this module does not check
//! (e.g. `pattern`, `$ref`) never takes the fast path. Anything the fast path does not accept
//! goes to the full validator, which decides and words the error: the fast path can make
//! decoding quicker, never different: `Decoder::compare_paths` states what "the same" means,
//! and a property test (`paths_agree.rs`) and the `decode` fuzz target hold this path to it.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value as Json;

use super::json::struct_from_str;
use super::plausible::{identifier_problem, IDENTIFIER_PATTERN};
use super::schema::{IDENTIFIER_MAX_CHARS, IDENTIFIER_MIN_CHARS};
use super::{event_envelope_schema, Event, EventData, EventTime, EventType, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    source: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// The checks one payload field needs beyond what its Rust type enforces.
#[derive(Debug, Default, Clone, PartialEq)]
struct FieldCheck {
    index: usize,
    minimum: Option<f64>,
    maximum: Option<f64>,
    min_chars: Option<usize>,
    max_chars: Option<usize>,
    /// The schema gives it the identifiers' pattern (see [`identifier_problem`]).
    not_blank_no_controls: bool,
}

/// The payload checks per event type (by its position in [`EventType::ALL`], a lookup on
/// every event), for the types the fast path can decide.
pub(super) struct FastPath {
    checks: Vec<Option<Vec<FieldCheck>>>,
}

impl FastPath {
    pub(super) fn new() -> Self {
        let checks = EventType::ALL.iter().map(|&ty| field_checks(ty)).collect();
        FastPath { checks }
    }

    fn checks(&self, ty: EventType) -> Option<&[FieldCheck]> {
        self.checks.get(ty as usize)?.as_deref()
    }

    /// The event, when `line` is a bare event this path can prove valid; `None` otherwise
    /// (the full validator then decides).
    pub(super) fn decode(&self, line: &[u8]) -> Option<Event> {
        // UTF-8 checked once for the whole line: `from_str` then skips checking each string,
        // which made the envelope a third faster than `from_slice` (invalid UTF-8 goes to the
        // full validator either way).
        let line = std::str::from_utf8(line).ok()?;
        let envelope: Envelope<'_> = struct_from_str(line).ok()?;
        let ty = EventType::from_name(&envelope.event_type)?;
        let checks = self.checks(ty)?;
        // The envelope schema's constraints on these three (a test pins them).
        for text in [&envelope.id, &envelope.user_id, &envelope.source] {
            if !chars_within(text, Some(IDENTIFIER_MIN_CHARS), Some(IDENTIFIER_MAX_CHARS))
                || identifier_problem(text).is_some()
            {
                return None;
            }
        }
        let time = plain_rfc3339_time(&envelope.time)?;
        let data = EventData::from_json_str(ty, envelope.data.get()).ok()?;
        if !checks
            .iter()
            .all(|check| check.accepts(data.field(check.index)))
        {
            return None;
        }
        Some(Event {
            id: envelope.id.into_owned(),
            user_id: envelope.user_id.into_owned(),
            source: envelope.source.into_owned(),
            time,
            data,
        })
    }

    /// Whether events of `ty` can take this path.
    pub(super) fn handles(&self, ty: EventType) -> bool {
        self.checks(ty).is_some()
    }
}

impl FieldCheck {
    fn accepts(&self, value: Value<'_>) -> bool {
        match value {
            Value::Null | Value::Bool(_) => true,
            Value::Num(n) => {
                self.minimum.is_none_or(|min| n >= min) && self.maximum.is_none_or(|max| n <= max)
            }
            Value::Str(s) => {
                chars_within(s, self.min_chars, self.max_chars)
                    && !(self.not_blank_no_controls && identifier_problem(s).is_some())
            }
        }
    }
}

fn chars_within(text: &str, min: Option<usize>, max: Option<usize>) -> bool {
    // Counting characters only matters near the limits; bytes bound them from both sides.
    let bytes = text.len();
    let fits_max = max.is_none_or(|max| bytes <= max || text.chars().count() <= max);
    let fits_min = min.is_none_or(|min| bytes >= 4 * min || text.chars().count() >= min);
    fits_max && fits_min
}

/// The payload checks of `ty`, or `None` when its payload schema uses a keyword not checked
/// here, or a property that is not a field.
fn field_checks(ty: EventType) -> Option<Vec<FieldCheck>> {
    let envelope = event_envelope_schema(ty);
    let data = envelope.get("properties")?.get("data")?.as_object()?;
    for (key, value) in data {
        let understood = match key.as_str() {
            "properties" | "description" | "required" => true,
            "type" => value == "object",
            "additionalProperties" => value == false,
            _ => false,
        };
        if !understood {
            return None;
        }
    }
    let mut checks = Vec::new();
    for (name, schema) in data.get("properties")?.as_object()? {
        let mut check = FieldCheck {
            index: ty.field_index(name)?,
            ..FieldCheck::default()
        };
        for (key, value) in schema.as_object()? {
            match key.as_str() {
                // The Rust field's type enforces these (serde refuses anything else).
                "description" | "type" => {}
                "format" if matches!(value.as_str(), Some("double" | "float" | "uint32")) => {}
                "minimum" => check.minimum = Some(value.as_f64()?),
                "maximum" => check.maximum = Some(value.as_f64()?),
                "minLength" => check.min_chars = Some(usize::try_from(value.as_u64()?).ok()?),
                "maxLength" => check.max_chars = Some(usize::try_from(value.as_u64()?).ok()?),
                "pattern" if value == IDENTIFIER_PATTERN => check.not_blank_no_controls = true,
                _ => return None,
            }
        }
        let required = data
            .get("required")
            .and_then(Json::as_array)
            .is_some_and(|r| r.iter().any(|n| n == name.as_str()));
        if !field_type_matches(ty, check.index, schema.get("type")?, required) {
            return None;
        }
        checks.push(check);
    }
    Some(checks)
}

/// Whether the schema's `type` of a field is what its Rust type accepts, so that serde
/// refusing everything else is the same as the schema refusing it. Optional fields (serde
/// `default`, an `Option`) are the ones not required, and only they may be null.
fn field_type_matches(ty: EventType, index: usize, schema_type: &Json, required: bool) -> bool {
    use super::ValueType;
    let Some(field) = ty.fields().get(index) else {
        return false;
    };
    let (name, nullable) = match schema_type {
        Json::String(name) => (name.as_str(), false),
        Json::Array(names) => match names.as_slice() {
            [Json::String(name), Json::String(null)] if null == "null" => (name.as_str(), true),
            _ => return false,
        },
        _ => return false,
    };
    nullable != required
        && matches!(
            (name, field.value_type),
            ("number" | "integer", ValueType::Number)
                | ("boolean", ValueType::Bool)
                | ("string", ValueType::Text)
        )
}

/// RFC 3339 in its plainest form, `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with seconds
/// 00–59 and an offset within ±23:59: a form every RFC 3339 reader agrees on. Other forms
/// (lower-case `t`/`z`, a space, leap seconds) go to the full validator.
pub(super) fn plain_rfc3339(text: &str) -> bool {
    plain_rfc3339_time(text).is_some()
}

/// The time `text` gives when it is in the plain form of [`plain_rfc3339`] and names a real
/// date (`None` otherwise), read in one pass over its bytes: a third of the cost of checking
/// the form and then parsing with chrono, on every event. It must read every such text as
/// `EventTime::parse` does (fractions past nanoseconds ignored, `-00:00` as UTC); the
/// differential tests of the two decoding paths hold it to that.
pub(super) fn plain_rfc3339_time(text: &str) -> Option<EventTime> {
    use chrono::{FixedOffset, NaiveDate, TimeZone};
    let b = text.as_bytes();
    let digit = |at: usize| match b.get(at) {
        Some(d @ b'0'..=b'9') => Some(u32::from(d - b'0')),
        _ => None,
    };
    let two = |at: usize| Some(digit(at)? * 10 + digit(at + 1)?);
    let is = |at: usize, c: u8| b.get(at) == Some(&c);
    if !(is(4, b'-') && is(7, b'-') && is(10, b'T') && is(13, b':') && is(16, b':')) {
        return None;
    }
    let year = two(0)? * 100 + two(2)?;
    let (month, day) = (two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    if second > 59 {
        return None;
    }
    let mut at = 19;
    let mut nanos = 0u32;
    if is(at, b'.') {
        at += 1;
        let start = at;
        while let Some(d) = digit(at) {
            // chrono reads nine digits and ignores the rest.
            if at - start < 9 {
                nanos = nanos * 10 + d;
            }
            at += 1;
        }
        let read = at - start;
        if read == 0 {
            return None;
        }
        if read < 9 {
            nanos *= 10u32.pow(u32::try_from(9 - read).ok()?);
        }
    }
    let offset_seconds = match &b[at..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (two(at + 1)?, two(at + 4)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = i32::try_from(hours * 3600 + minutes * 60).ok()?;
            if *sign == b'-' {
                -seconds
            } else {
                seconds
            }
        }
        _ => return None,
    };
    let local = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
        .and_hms_nano_opt(hour, minute, second, nanos)?;
    let offset = FixedOffset::east_opt(offset_seconds)?;
    offset.from_local_datetime(&local).single().map(EventTime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_found_by_each_types_position() {
        let fast = FastPath::new();
        for (position, &ty) in EventType::ALL.iter().enumerate() {
            assert_eq!(ty as usize, position, "{ty:?}");
            assert_eq!(
                fast.checks(ty).map(<[_]>::to_vec),
                field_checks(ty),
                "{ty:?}"
            );
        }
    }

    #[test]
    fn the_envelope_constraints_checked_here_are_the_schemas() {
        use super::super::plausible::IDENTIFIER_PATTERN;
        for &ty in EventType::ALL {
            let schema = event_envelope_schema(ty);
            for key in ["id", "user_id", "source"] {
                let mut property = schema["properties"][key].clone();
                if let Some(p) = property.as_object_mut() {
                    p.remove("description");
                }
                assert_eq!(
                    property,
                    serde_json::json!({
                        "type": "string",
                        "minLength": IDENTIFIER_MIN_CHARS,
                        "maxLength": IDENTIFIER_MAX_CHARS,
                        "pattern": IDENTIFIER_PATTERN,
                    }),
                    "{ty:?} {key}"
                );
            }
            let mut time = schema["properties"]["time"].clone();
            if let Some(t) = time.as_object_mut() {
                t.remove("description");
            }
            assert_eq!(
                time,
                serde_json::json!({"type": "string", "format": "date-time"})
            );
        }
    }

    #[test]
    fn plain_rfc3339_accepts_only_the_plain_form() {
        for ok in [
            "2024-05-01T07:00:00Z",
            "2024-05-01T07:00:00+02:00",
            "2024-05-01T07:00:00.123-05:30",
        ] {
            assert!(plain_rfc3339(ok), "{ok}");
        }
        for not in [
            "2024-05-01t07:00:00Z",
            "2024-05-01 07:00:00Z",
            "2024-05-01T07:00:00z",
            "2024-05-01T07:00:60Z",
            "2024-05-01T07:00:00",
            "2024-05-01T07:00:00.Z",
            "2024-05-01T07:00:00+24:00",
            "2024-05-01T07:00:00+0200",
            "2024-5-01T07:00:00Z",
        ] {
            assert!(!plain_rfc3339(not), "{not}");
        }
    }

    #[test]
    fn the_plain_form_reads_as_chrono_reads_it() {
        for text in [
            "2024-05-01T07:00:00Z",
            "2024-05-01T07:00:00+02:00",
            "2024-05-01T07:00:00-00:00",
            "2024-05-01T07:00:00.1Z",
            "2024-05-01T07:00:00.123-05:30",
            "2024-05-01T07:00:00.123456789+23:59",
            "2024-05-01T07:00:00.1234567891234-23:59",
            "0000-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-23:59",
            "2024-02-29T12:00:00Z",
        ] {
            let ours = plain_rfc3339_time(text).map(|t| (t, t.to_rfc3339()));
            let chrono = EventTime::parse(text).ok().map(|t| (t, t.to_rfc3339()));
            assert_eq!(ours, chrono, "{text}");
            assert!(ours.is_some(), "{text}");
        }
        for not_a_date in [
            "2023-02-29T12:00:00Z",
            "2024-04-31T12:00:00Z",
            "2024-13-01T00:00:00Z",
        ] {
            assert!(plain_rfc3339_time(not_a_date).is_none(), "{not_a_date}");
            assert!(EventTime::parse(not_a_date).is_err(), "{not_a_date}");
        }
    }

    #[test]
    fn the_frequent_types_take_the_fast_path_and_patterns_do_not() {
        let fast = FastPath::new();
        for ty in [
            EventType::HeartRate,
            EventType::HeartRateVariability,
            EventType::RestingHeartRate,
            EventType::StepCount,
            EventType::PhysicalActivity,
        ] {
            assert!(fast.handles(ty), "{ty:?}");
        }
        // `pattern` and `$ref` are not checked here.
        assert!(!fast.handles(EventType::Illness));
        assert!(!fast.handles(EventType::SleepEpisode));
    }

    #[test]
    fn character_limits_count_characters_not_bytes() {
        assert!(chars_within("é", Some(1), Some(1)));
        assert!(!chars_within("", Some(1), None));
        assert!(chars_within(&"é".repeat(256), None, Some(256)));
        assert!(!chars_within(&"é".repeat(257), None, Some(256)));
    }
}
