//! The fast path and the full validator decide alike: a differential property test.
//!
//! Lines are generated around every event type's valid form and then bent: values at and past
//! the schema's limits and in every JSON spelling of a number, wrong types, identifiers with
//! escapes, control characters, whitespace and non-ASCII, times of every shape, payloads as
//! arrays, keys left out, added, given twice or spelt with escapes, CloudEvents envelopes,
//! byte-order marks, deep nesting, truncation and flipped bytes. Each line goes through both
//! paths ([`Decoder::compare_paths`]): they must accept the same lines as the same events, and
//! the fast path must take every valid bare event it handles.

use std::sync::LazyLock;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRng, TestRunner};

use super::{Decoder, EventType, ValueType};

static DECODER: LazyLock<Decoder> = LazyLock::new(Decoder::new);

/// A JSON string literal for `text`, spelt one of three ways: as `serde_json` writes it, with
/// every character as `\u` escapes (UTF-16, so astral characters as surrogate pairs), or raw
/// (only `"` and `\` escaped: a control character then makes the line invalid JSON).
fn json_string(text: &str, spelling: u8) -> String {
    match spelling % 3 {
        0 => serde_json::Value::String(text.to_string()).to_string(),
        1 => {
            let mut out = String::from("\"");
            for unit in text.encode_utf16() {
                out.push_str(&format!("\\u{unit:04x}"));
            }
            out.push('"');
            out
        }
        _ => format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"")),
    }
}

/// Text for identifiers and string fields: mostly plain, sometimes empty, blank, with control
/// characters, odd Unicode, or around the 200- and 256-character limits.
fn text() -> impl Strategy<Value = String> {
    const ODD: &[&str] = &[
        "", " ", "  ", "\u{3000}", "\u{a0}", "\u{2028}", "\u{feff}", "\u{200b}", "\u{180e}", "\t",
        "u\u{0}1", "\u{0}", "\u{1f}", "\u{7f}", "\u{85}", "\u{9f}", " u1 ", "é", "😀", "u\"1",
        "u\\1", "ok", "running",
    ];
    prop_oneof![
        40 => "[a-z0-9_-]{1,12}",
        3 => select(ODD).prop_map(str::to_string),
        1 => "(?s).{0,6}",
        1 => (select(&["a", "é", "😀", " "][..]), 198usize..=202)
            .prop_map(|(c, n)| c.repeat(n)),
        1 => (select(&["a", "é", "😀"][..]), 254usize..=258).prop_map(|(c, n)| c.repeat(n)),
    ]
}

/// A JSON value of the wrong kind for most fields.
fn wrong_kind() -> impl Strategy<Value = String> {
    select(
        &[
            "null",
            "true",
            "false",
            "0",
            "\"61\"",
            "[]",
            "[61]",
            "{}",
            "{\"heart_rate\":61}",
            "\"\"",
        ][..],
    )
    .prop_map(str::to_string)
}

/// A text value as JSON: a string, spelt some way, or another kind of value.
fn text_json() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => (text(), any::<u8>()).prop_map(|(t, s)| json_string(&t, s)),
        1 => wrong_kind(),
    ]
}

/// Times: mostly valid and plain, then every other shape (lower case, spaces, leap seconds,
/// long fractions, odd offsets, before 2000, impossible dates), then generated ones.
fn time() -> impl Strategy<Value = String> {
    const TIMES: &[&str] = &[
        "2024-05-01T07:00:00+02:00",
        "2024-05-01T07:00:00Z",
        "2024-05-01t07:00:00z",
        "2024-05-01 07:00:00Z",
        "2024-02-30T07:00:00Z",
        "2024-02-29T07:00:00Z",
        "2023-02-29T07:00:00Z",
        "2024-05-01T23:59:60Z",
        "2016-12-31T23:59:60Z",
        "2024-05-01T07:00:00",
        "2024-05-01T07:00:00.5+23:59",
        "2024-05-01T07:00:00-24:00",
        "2024-05-01T07:00:00+00:60",
        "2024-05-01T07:00:00.123456789123Z",
        "2024-05-01T07:00:00.Z",
        "2024-05-01T07:00:00,5Z",
        "2024-05-01T07:00Z",
        "2024-05-01T24:00:00Z",
        "2024-5-01T07:00:00Z",
        "+2024-05-01T07:00:00Z",
        "1999-12-31T23:59:59Z",
        "1999-12-31T23:59:59.999999999Z",
        "2000-01-01T00:00:00Z",
        "2000-01-01T00:59:59+01:00",
        "2000-01-01T01:00:00+01:00",
        "1999-12-31T23:00:00-01:00",
        "1970-01-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2024-05-01T07:00:00+02:00 ",
        "",
        "x",
    ];
    prop_oneof![
        20 => Just("2024-05-01T07:00:00+02:00".to_string()),
        4 => select(TIMES).prop_map(str::to_string),
        3 => (
            (1995u32..2031, 0u32..14, 0u32..33),
            (0u32..25, 0u32..61, 0u32..62),
            prop::option::of(0u32..1_000_000),
            prop_oneof![Just("Z".to_string()), (-24i32..25, 0u32..61).prop_map(|(h, m)| {
                format!("{}{:02}:{m:02}", if h < 0 { '-' } else { '+' }, h.abs())
            })],
        )
            .prop_map(|((y, mo, d), (h, mi, s), frac, offset)| {
                let frac = frac.map_or(String::new(), |f| format!(".{f}"));
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{offset}")
            }),
    ]
}

fn time_json() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => (time(), any::<u8>()).prop_map(|(t, s)| json_string(&t, s)),
        1 => wrong_kind(),
    ]
}

/// A number in one of its JSON spellings: `61`, `61.0`, `6.1e1`, `6.1E+1`, `610e-1`.
fn spell(value: f64, spelling: u8) -> String {
    let plain = format!("{value}");
    match spelling % 5 {
        0 => plain,
        1 if value.fract() == 0.0 && plain.len() < 20 => format!("{plain}.0"),
        2 => format!("{value:e}"),
        3 => format!("{value:E}").replace('E', "E+").replace("E+-", "E-"),
        _ => format!("{}e-1", value * 10.0),
    }
}

/// Numbers for a field whose schema bounds are `lo..=hi`: inside, at and just past each
/// limit, the edges of the double and of the integers, in every spelling.
fn number_json(lo: f64, hi: f64) -> BoxedStrategy<String> {
    const LITERALS: &[&str] = &[
        "-0",
        "-0.0",
        "0e0",
        "1e400",
        "-1e400",
        "1e-400",
        "1.7976931348623157e308",
        "5e-324",
        "9007199254740993",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "NaN",
        "Infinity",
        "-Infinity",
        "+1",
        "01",
        ".5",
        "1.",
        "0x10",
    ];
    let edges = vec![
        lo,
        hi,
        lo - 0.5,
        hi + 0.5,
        lo - 1e-9,
        hi + 1e-9,
        lo + 0.1,
        hi - 0.1,
        (lo + hi) / 2.0,
        -1.0,
        0.0,
        61.0,
        1e300,
    ];
    prop_oneof![
        20 => (lo..=hi, any::<u8>()).prop_map(|(v, s)| spell((v * 100.0).round() / 100.0, s)),
        4 => (select(edges), any::<u8>()).prop_map(|(v, s)| spell(v, s)),
        1 => select(LITERALS).prop_map(str::to_string),
    ]
    .boxed()
}

/// The schema bounds of field `name` of `ty`, where it has them.
fn bounds(ty: EventType, name: &str) -> (f64, f64) {
    let schema = ty.data_schema();
    let field = schema
        .as_value()
        .get("properties")
        .and_then(|p| p.get(name));
    let bound = |key: &str| field.and_then(|f| f.get(key)).and_then(|v| v.as_f64());
    (
        bound("minimum").unwrap_or(0.0),
        bound("maximum").unwrap_or(100.0),
    )
}

/// A value for one payload field, or `None` to leave it out.
fn field_json(
    ty: EventType,
    name: &'static str,
    value_type: ValueType,
) -> BoxedStrategy<Option<String>> {
    let valid: BoxedStrategy<String> = match (name, value_type) {
        ("sleep_onset", _) => prop_oneof![
            3 => select(&[
                "\"2024-04-30T23:00:00+02:00\"",
                "\"2024-05-01T05:00:00Z\"",
                "\"2024-05-01T07:00:00+02:00\"",
                "\"2024-05-01T07:00:01+02:00\"",
                "\"1999-12-31T23:00:00Z\"",
            ][..])
            .prop_map(str::to_string),
            1 => time_json(),
        ]
        .boxed(),
        ("number_of_awakenings", _) => prop_oneof![
            select(
                &[
                    "3",
                    "3.0",
                    "3e0",
                    "0.3e1",
                    "-0",
                    "0",
                    "1440",
                    "1441",
                    "2.5",
                    "-1",
                    "1e2",
                    "4294967295",
                    "4294967296",
                    "1e300",
                    "\"3\"",
                ][..]
            )
            .prop_map(str::to_string),
            (0u32..2000).prop_map(|n| n.to_string()),
        ]
        .boxed(),
        ("status", _) => {
            let valid: &'static [&'static str] = if ty == EventType::Illness {
                &["\"onset\"", "\"recovered\"", "\"rec\\u006fvered\""]
            } else {
                &["\"ok\"", "\"failed\"", "\"partial\"", "\"o\\u006b\""]
            };
            let invalid = &[
                "\"Onset\"",
                "\"ok \"",
                "\"okay\"",
                "\"\"",
                "\"onset\\u0000\"",
            ][..];
            prop_oneof![
                8 => select(valid).prop_map(str::to_string),
                2 => select(invalid).prop_map(str::to_string),
            ]
            .boxed()
        }
        (_, ValueType::Number) => {
            let (lo, hi) = bounds(ty, name);
            number_json(lo, hi)
        }
        (_, ValueType::Bool) => select(&["true", "false"][..])
            .prop_map(str::to_string)
            .boxed(),
        _ => text_json().boxed(),
    };
    prop_oneof![
        30 => valid.prop_map(Some),
        2 => Just(None),
        1 => Just(Some("null".to_string())),
        1 => wrong_kind().prop_map(Some),
    ]
    .boxed()
}

/// How a payload is bent.
#[derive(Clone, Copy, Debug)]
enum DataTwist {
    None,
    /// serde reads a struct from an array of its fields; the schema does not.
    AsArray,
    ExtraField,
    /// A field given twice, with the same value or another.
    Duplicate(bool),
    /// A key spelt with an escape (`"rmss\u0064"`).
    EscapedKey,
    DeepNesting,
}

fn data_twist() -> impl Strategy<Value = DataTwist> {
    prop_oneof![
        30 => Just(DataTwist::None),
        1 => Just(DataTwist::AsArray),
        1 => Just(DataTwist::ExtraField),
        1 => any::<bool>().prop_map(DataTwist::Duplicate),
        1 => Just(DataTwist::EscapedKey),
        1 => Just(DataTwist::DeepNesting),
    ]
}

/// How the whole line is bent, after it is written.
#[derive(Clone, Copy, Debug)]
enum LineTwist {
    None,
    /// An envelope key given twice, with the same value or another.
    Duplicate(usize, bool),
    Remove(usize),
    ExtraKey,
    /// The envelope as an array of its values.
    AsArray,
    EscapedKey(usize),
    CloudEvents {
        prefix: bool,
        content_type: bool,
    },
    ByteOrderMark,
    Spaces,
    Truncate(usize),
    Trailing(u8),
    FlipByte(usize, u8),
    Reorder(usize),
}

fn line_twist() -> impl Strategy<Value = LineTwist> {
    prop_oneof![
        40 => Just(LineTwist::None),
        2 => (0usize..6, any::<bool>()).prop_map(|(i, same)| LineTwist::Duplicate(i, same)),
        1 => (0usize..6).prop_map(LineTwist::Remove),
        1 => Just(LineTwist::ExtraKey),
        1 => Just(LineTwist::AsArray),
        1 => (0usize..6).prop_map(LineTwist::EscapedKey),
        4 => (any::<bool>(), any::<bool>())
            .prop_map(|(prefix, content_type)| LineTwist::CloudEvents { prefix, content_type }),
        1 => Just(LineTwist::ByteOrderMark),
        2 => Just(LineTwist::Spaces),
        1 => any::<usize>().prop_map(LineTwist::Truncate),
        1 => any::<u8>().prop_map(LineTwist::Trailing),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| LineTwist::FlipByte(at, b)),
        2 => any::<usize>().prop_map(LineTwist::Reorder),
    ]
}

/// Writes `{k:v,…}` (or, bent, `[v,…]`), with `: ` and `, ` when `spaced`.
fn object(entries: &[(String, String)], as_array: bool, spaced: bool) -> String {
    let (colon, comma) = if spaced { (" : ", " ,\t") } else { (":", ",") };
    if as_array {
        let values: Vec<&str> = entries.iter().map(|(_, v)| v.as_str()).collect();
        return format!("[{}]", values.join(comma));
    }
    let pairs: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{k}{colon}{v}"))
        .collect();
    if spaced {
        format!(" {{ {} }} ", pairs.join(comma))
    } else {
        format!("{{{}}}", pairs.join(comma))
    }
}

/// `"key"` with its first character escaped as `\u00XX`.
fn escaped_key(key: &str) -> String {
    let mut chars = key.trim_matches('"').chars();
    let first = chars.next().map_or(0, u32::from);
    format!("\"\\u{first:04x}{}\"", chars.as_str())
}

fn payload(ty: EventType) -> impl Strategy<Value = (Vec<Option<String>>, DataTwist)> {
    let fields: Vec<BoxedStrategy<Option<String>>> = ty
        .fields()
        .iter()
        .map(|f| field_json(ty, f.name, f.value_type))
        .collect();
    (fields, data_twist())
}

fn write_payload(
    ty: EventType,
    values: &[Option<String>],
    twist: DataTwist,
    spaced: bool,
) -> String {
    let mut entries: Vec<(String, String)> = ty
        .fields()
        .iter()
        .zip(values)
        .filter_map(|(f, v)| v.clone().map(|v| (format!("\"{}\"", f.name), v)))
        .collect();
    match twist {
        DataTwist::ExtraField => entries.push(("\"bpm\"".into(), "3".into())),
        DataTwist::Duplicate(same) => {
            if let Some((k, v)) = entries.first().cloned() {
                let v = if same { v } else { "1".to_string() };
                entries.push((k, v));
            }
        }
        DataTwist::EscapedKey => {
            if let Some(entry) = entries.first_mut() {
                entry.0 = escaped_key(&entry.0);
            }
        }
        DataTwist::DeepNesting => {
            return format!("{}{}", "[".repeat(140), "]".repeat(140));
        }
        DataTwist::None | DataTwist::AsArray => {}
    }
    object(&entries, matches!(twist, DataTwist::AsArray), spaced)
}

/// One generated line.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let type_name = prop_oneof![
        30 => select(EventType::ALL).prop_map(|ty| (ty, ty.name().to_string())),
        1 => select(EventType::ALL).prop_map(|ty| (ty, "weather".to_string())),
        1 => select(EventType::ALL).prop_map(|ty| (ty, format!("io.vigil.{}", ty.name()))),
    ];
    type_name
        .prop_flat_map(|(ty, name)| {
            (
                Just((ty, name)),
                payload(ty),
                [text_json(), text_json(), text_json()],
                time_json(),
                line_twist(),
            )
        })
        .prop_map(
            |((ty, name), (values, data_twist), [id, user_id, source], time, twist)| {
                let spaced = matches!(twist, LineTwist::Spaces);
                let mut entries: Vec<(String, String)> = vec![
                    ("\"id\"".into(), id),
                    ("\"user_id\"".into(), user_id),
                    ("\"type\"".into(), json_string(&name, 0)),
                    ("\"source\"".into(), source),
                    ("\"time\"".into(), time),
                    (
                        "\"data\"".into(),
                        write_payload(ty, &values, data_twist, spaced),
                    ),
                ];
                match twist {
                    LineTwist::Duplicate(i, same) => {
                        let (k, v) = entries[i].clone();
                        let v = if same { v } else { "\"other\"".to_string() };
                        entries.push((k, v));
                    }
                    LineTwist::Remove(i) => {
                        entries.remove(i);
                    }
                    LineTwist::ExtraKey => entries.push(("\"extra\"".into(), "1".into())),
                    LineTwist::EscapedKey(i) => entries[i].0 = escaped_key(&entries[i].0),
                    LineTwist::CloudEvents {
                        prefix,
                        content_type,
                    } => {
                        entries[1].0 = "\"subject\"".into();
                        if prefix {
                            entries[2].1 = json_string(&format!("io.vigil.{}", ty.name()), 0);
                        }
                        entries.insert(0, ("\"specversion\"".into(), "\"1.0\"".into()));
                        if content_type {
                            entries.push((
                                "\"datacontenttype\"".into(),
                                "\"application/json\"".into(),
                            ));
                        }
                    }
                    LineTwist::Reorder(seed) => {
                        let n = entries.len();
                        entries.rotate_left(seed % n);
                        entries.swap(0, (seed / 7) % n);
                    }
                    _ => {}
                }
                let mut bytes =
                    object(&entries, matches!(twist, LineTwist::AsArray), spaced).into_bytes();
                match twist {
                    LineTwist::ByteOrderMark => {
                        bytes.splice(0..0, "\u{feff}".bytes()).for_each(drop)
                    }
                    LineTwist::Truncate(at) => bytes.truncate(at % (bytes.len() + 1)),
                    LineTwist::Trailing(b) => bytes.extend_from_slice(match b % 4 {
                        0 => b"x",
                        1 => b"}",
                        2 => b" ,",
                        _ => b" \r\n\t",
                    }),
                    LineTwist::FlipByte(at, b) => {
                        let at = at % bytes.len().max(1);
                        if let Some(byte) = bytes.get_mut(at) {
                            *byte = b;
                        }
                    }
                    _ => {}
                }
                bytes
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6000))]

    #[test]
    fn the_fast_path_and_the_validator_decide_alike(line in line()) {
        if let Err(difference) = DECODER.compare_paths(&line) {
            prop_assert!(false, "{}", difference);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any double, as Rust writes it (shortest text, plain or with an exponent), decodes to
    /// itself in both paths: what Vigil writes, it reads back unchanged.
    #[test]
    fn a_number_decodes_to_itself(value in 1.0f64..=400.0, exponent in any::<bool>()) {
        let text = if exponent { format!("{value:e}") } else { format!("{value}") };
        let line = format!(
            r#"{{"id":"e","user_id":"u","type":"heart_rate","source":"s","time":"2024-05-01T07:00:00Z","data":{{"heart_rate":{text}}}}}"#
        );
        match DECODER.compare_paths(line.as_bytes()) {
            Ok(Some(event)) => prop_assert_eq!(event.data.field(0).as_num(), Some(value)),
            other => prop_assert!(false, "{}: {:?}", line, other),
        }
    }
}

/// The generator's lines fall on all three sides often enough for the property to bite:
/// taken by the fast path, accepted only by the validator, and refused.
#[test]
fn the_generated_lines_cover_every_outcome() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let strategy = line();
    let (mut fast, mut slow_only, mut refused) = (0usize, 0usize, 0usize);
    let total = 2000;
    for _ in 0..total {
        let line = match strategy.new_tree(&mut runner) {
            Ok(tree) => tree.current(),
            Err(e) => panic!("{e}"),
        };
        match DECODER.compare_paths(&line) {
            Ok(Some(_)) if DECODER.fast_path_takes(&line) => fast += 1,
            Ok(Some(_)) => slow_only += 1,
            Ok(None) => refused += 1,
            Err(difference) => panic!("{difference}"),
        }
    }
    for (what, n) in [
        ("fast", fast),
        ("validator only", slow_only),
        ("refused", refused),
    ] {
        assert!(
            n * 20 >= total,
            "{what}: {n} of {total} (fast {fast}, validator only {slow_only}, refused {refused})"
        );
    }
}
