//! Reading one line as JSON for the full validator, with reasons that name what is wrong, and
//! the one JSON language both decoding paths accept.
//!
//! Two rules go beyond `serde_json`'s defaults, so that every consumer of a line sees the same
//! event (I-JSON, RFC 7493):
//!
//! - a key appears once per object: RFC 8259 leaves duplicates to each parser, and parsers
//!   differ (first wins, last wins, error), so a line with one is refused rather than read one
//!   way here and another way downstream;
//! - a struct is read from a JSON object only ([`ObjectOnly`]): serde's derived structs also
//!   take an array of their fields in order (`[61]` for `{"heart_rate":61}`), which no schema
//!   allows.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Number, Value as Json};
use thiserror::Error;

/// `serde_json`'s nesting limit (arrays and objects), for the reason given when it is hit.
pub const MAX_NESTING: usize = 128;

const BYTE_ORDER_MARK: char = '\u{feff}';

/// Why a line is not JSON as both decoding paths read it. Its own type rather than
/// [`DecodeError`](super::DecodeError)'s variants: reading JSON comes before, and knows
/// nothing of, decoding events, which wraps it.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum JsonError {
    #[error("not UTF-8: invalid byte sequence at byte {offset}")]
    NotUtf8 { offset: usize },
    #[error(
        "byte-order mark (U+FEFF) before the JSON: one is skipped only at the very start of \
         a file or stream"
    )]
    ByteOrderMark,
    #[error("not valid JSON: {0}")]
    Invalid(String),
    #[error("nesting too deep: more than {MAX_NESTING} levels of arrays and objects {at}")]
    TooDeep { at: String },
    #[error("number out of range: beyond the largest finite double (about 1.8e308) {at}")]
    NumberOutOfRange { at: String },
    #[error("`{literal}` is not a JSON number (JSON has no NaN or infinities) {at}")]
    NotANumber { literal: String, at: String },
    #[error("duplicate key `{key}` {at}: a key may appear only once in an object")]
    DuplicateKey { key: String, at: String },
}

/// Parses `line` into a JSON tree, refusing duplicate keys; the error says what is wrong.
pub(super) fn parse_line(line: &[u8]) -> Result<Json, JsonError> {
    let text = std::str::from_utf8(line).map_err(|e| JsonError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    if text.starts_with(BYTE_ORDER_MARK) {
        return Err(JsonError::ByteOrderMark);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = UniqueKeys
        .deserialize(&mut de)
        .and_then(|json| de.end().map(|()| json));
    parsed.map_err(|e| classify(text, &e))
}

/// The precise reason for a `serde_json` error. `serde_json` has no public error codes, so its
/// messages are matched; a unit test pins each one, so a change of wording fails the tests
/// instead of blurring the reasons.
fn classify(text: &str, e: &serde_json::Error) -> JsonError {
    let at = format!("at line {} column {}", e.line(), e.column());
    let message = e.to_string();
    if message.starts_with("recursion limit exceeded") {
        return JsonError::TooDeep { at };
    }
    if message.starts_with("number out of range") {
        return JsonError::NumberOutOfRange { at };
    }
    if let Some(key) = message.strip_prefix(DUPLICATE_KEY) {
        let key = key.split(DUPLICATE_KEY_END).next().unwrap_or_default();
        return JsonError::DuplicateKey {
            key: key.to_string(),
            at,
        };
    }
    if let Some(literal) = non_finite_literal(text, e.line(), e.column()) {
        return JsonError::NotANumber { literal, at };
    }
    JsonError::Invalid(message)
}

/// `NaN`, `Infinity` and the like where the parser stopped: what some encoders write for
/// non-finite floats, which JSON cannot represent.
fn non_finite_literal(text: &str, line: usize, column: usize) -> Option<String> {
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n').nth(line - 2).map(|(i, _)| i + 1)?
    };
    // `column` is 1-based, in bytes, and names the byte the parser stopped at (or the one
    // after it at the end of a token), so look one byte either side.
    let at = line_start + column.saturating_sub(1);
    for start in [at.saturating_sub(1), at, at + 1] {
        let Some(rest) = text.get(start..) else {
            continue;
        };
        let sign = usize::from(rest.starts_with(['-', '+']));
        let word: String = rest[sign..]
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .collect();
        if ["nan", "inf", "infinity"].contains(&word.to_ascii_lowercase().as_str()) {
            return Some(rest[..sign + word.len()].to_string());
        }
    }
    None
}

const DUPLICATE_KEY: &str = "duplicate key `";
const DUPLICATE_KEY_END: &str = "` in an object";

/// Builds a [`Json`] tree as `serde_json::Value` does, but refuses a key given twice in one
/// object.
struct UniqueKeys;

impl<'de> DeserializeSeed<'de> for UniqueKeys {
    type Value = Json;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        // The parser never yields a non-finite number; `serde_json::Value` maps one to null.
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(UniqueKeys)? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "{DUPLICATE_KEY}{key}{DUPLICATE_KEY_END}"
                )));
            }
            let value = map.next_value_seed(UniqueKeys)?;
            object.insert(key, value);
        }
        Ok(Json::Object(object))
    }
}

/// A deserializer that reads a struct from a JSON object only, never from an array.
///
/// Only the outermost struct goes through it: that is where a payload or an envelope is read,
/// and their fields are scalars (or strings parsed by their own types).
pub(crate) struct ObjectOnly<D>(pub D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Reads a `T` from the JSON text of an object (and nothing after it).
pub(crate) fn struct_from_str<'de, T: de::Deserialize<'de>>(
    text: &'de str,
) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(ObjectOnly(&mut de))?;
    de.end()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(line: &str) -> String {
        match parse_line(line.as_bytes()) {
            Ok(json) => panic!("{line} parsed as {json}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_like_serde_json_when_keys_are_unique() {
        let line = r#"{"a":[1,-2,3.5,1e2,"x\u00e9",null,true,{"b":{}}],"c":18446744073709551615}"#;
        let ours = parse_line(line.as_bytes()).map_err(|e| e.to_string());
        let theirs: Result<Json, String> = serde_json::from_str(line).map_err(|e| e.to_string());
        assert_eq!(ours, theirs);
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth_and_however_it_is_escaped() {
        for (line, key) in [
            (r#"{"id":"a","id":"b"}"#, "id"),
            (r#"{"id":"a","i\u0064":"b"}"#, "id"),
            (
                r#"{"data":{"heart_rate":61,"heart_rate":62}}"#,
                "heart_rate",
            ),
            (r#"[{"x":1},{"y":1,"y":1}]"#, "y"),
        ] {
            let e = parse_line(line.as_bytes()).unwrap_err();
            assert!(
                matches!(&e, JsonError::DuplicateKey { key: k, .. } if k == key),
                "{line}: {e:?}"
            );
            assert!(e.to_string().starts_with("duplicate key `"), "{e}");
        }
        // The same key in sibling objects is not a duplicate.
        assert!(parse_line(br#"[{"id":1},{"id":2}]"#).is_ok());
    }

    #[test]
    fn reasons_name_what_is_wrong() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(
            reason(&deep).starts_with("nesting too deep"),
            "{}",
            reason(&deep)
        );
        assert!(parse_line(format!("{}{}", "[".repeat(127), "]".repeat(127)).as_bytes()).is_ok());
        for n in ["1e400", "-1e400", "123456789e999"] {
            let r = reason(&format!(r#"{{"x":{n}}}"#));
            assert!(r.starts_with("number out of range"), "{n}: {r}");
        }
        for (text, literal) in [
            (r#"{"x":NaN}"#, "NaN"),
            (r#"{"x":Infinity}"#, "Infinity"),
            (r#"{"x":-Infinity}"#, "-Infinity"),
            (r#"{"x": inf }"#, "inf"),
            (r#"[1,nan]"#, "nan"),
            ("{\n\"x\":\n NaN}", "NaN"),
        ] {
            let r = reason(text);
            assert!(
                r.starts_with(&format!("`{literal}` is not a JSON number")),
                "{text}: {r}"
            );
        }
        assert_eq!(
            reason("{\"id\":\"\u{e9}\"}\u{ff}"),
            "not valid JSON: trailing characters at line 1 column 12"
        );
        assert!(reason("{not json").starts_with("not valid JSON: key must be a string"));
        let bad_utf8 = parse_line(b"{\"id\":\"\xff\"}").unwrap_err();
        assert_eq!(bad_utf8, JsonError::NotUtf8 { offset: 7 });
        assert!(reason("\u{feff}{}").contains("byte-order mark"));
    }
}
