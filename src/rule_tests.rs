//! Rule tests: `*.test.toml` files beside the rules, in the spirit of `promtool test rules` and
//! `vector test`. Each test feeds events to the rules and compares the outputs of the rules
//! under test with the expected ones, exactly; a failure shows a diff.
//!
//! Events can be written out one by one (`[[test.events]]`), generated as one value per night
//! (`[[test.nights]]`) or as a regular stream of samples (`[[test.samples]]`).
//!
//! A module of its own beside [`rules`](crate::rules) rather than inside it: it runs rules
//! through the [`engine`](crate::engine), which itself depends on `rules`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Duration, NaiveDate, NaiveTime};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use crate::engine::{Disposition, Engine, EngineConfig, Lateness, OutputEvent};
use crate::event::{Decoder, EventTime};
use crate::rules::duration::parse_duration;
use crate::rules::{RuleSet, Severity};

/// The user of generated events unless a test says otherwise.
pub const DEFAULT_USER: &str = "test-user";

/// A rule test file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    #[serde(rename = "test")]
    pub tests: Vec<TestCase>,
}

/// One test.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    /// Rules whose outputs are compared (default: the rule named like the file).
    #[serde(default)]
    pub rules: Option<Vec<String>>,
    /// Allowed lateness of every event type in this test (default: `vigil run`'s, 1h and 2d
    /// for the nightly types).
    #[serde(default)]
    pub allowed_lateness: Option<String>,
    /// Feed events in the order written instead of sorting them by time.
    #[serde(default)]
    pub keep_order: bool,
    #[serde(default)]
    pub events: Vec<EventSpec>,
    #[serde(default)]
    pub nights: Vec<NightsSpec>,
    #[serde(default)]
    pub samples: Vec<SamplesSpec>,
    /// The expected outputs, in order. Empty: the rules must emit nothing.
    #[serde(default)]
    pub expect: Vec<Expected>,
    /// Expected number of late events (default 0).
    #[serde(default)]
    pub expect_late: u64,
    /// Expected number of rejected events (default 0).
    #[serde(default)]
    pub expect_rejected: u64,
}

/// One event written out.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    #[serde(rename = "type")]
    pub event_type: String,
    pub time: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// One event per night: each field lists a value per night from `first` on; `""` skips the
/// field that night, and a night with no field gets no event.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NightsSpec {
    #[serde(rename = "type")]
    pub event_type: String,
    /// First night, YYYY-MM-DD (local date).
    pub first: String,
    /// Local wake time, HH:MM (default 07:00).
    #[serde(default)]
    pub wake: Option<String>,
    /// UTC offset, e.g. "+02:00" (default "+00:00").
    #[serde(default)]
    pub offset: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    pub fields: IndexMap<String, Vec<serde_json::Value>>,
}

/// A regular stream: `values` (repeated `repeat` times) every `every` from `start`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SamplesSpec {
    #[serde(rename = "type")]
    pub event_type: String,
    pub field: String,
    pub start: String,
    pub every: String,
    pub values: Vec<f64>,
    #[serde(default)]
    pub repeat: Option<usize>,
    #[serde(default)]
    pub user: Option<String>,
}

/// An expected output.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub rule: String,
    /// "firing", "resolved" or "milestone".
    pub state: String,
    /// Local night, for nightly rules.
    #[serde(default)]
    pub night: Option<String>,
    /// Output time (RFC 3339), for other rules.
    #[serde(default)]
    pub time: Option<String>,
    /// Default: the rule's severity.
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

/// The result of one test.
#[derive(Debug)]
pub struct TestResult {
    pub file: PathBuf,
    pub name: String,
    /// None when passed; otherwise what went wrong (a diff of expected and actual).
    pub failure: Option<String>,
}

/// Runs every test in `file` against `rules`.
pub fn run_test_file(file: &Path, rules: &Arc<RuleSet>) -> Vec<TestResult> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return vec![fail(file, "(file)", format!("cannot read: {e}"))],
    };
    let parsed: TestFile = match toml::from_str(&text) {
        Ok(p) => p,
        Err(e) => {
            let d =
                crate::rules::Diagnostic::new(file, e.span().unwrap_or(0..0), e.message().trim());
            return vec![fail(file, "(file)", d.render(&text, false))];
        }
    };
    let default_rule = file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(crate::rules::load::TEST_SUFFIX))
        .unwrap_or("")
        .to_string();
    parsed
        .tests
        .iter()
        .map(|case| {
            let failure = run_case(case, rules, &default_rule).err();
            TestResult {
                file: file.to_path_buf(),
                name: case.name.clone(),
                failure,
            }
        })
        .collect()
}

fn fail(file: &Path, name: &str, failure: String) -> TestResult {
    TestResult {
        file: file.to_path_buf(),
        name: name.to_string(),
        failure: Some(failure),
    }
}

fn run_case(case: &TestCase, rules: &Arc<RuleSet>, default_rule: &str) -> Result<(), String> {
    let under_test = case
        .rules
        .clone()
        .unwrap_or_else(|| vec![default_rule.to_string()]);
    for id in &under_test {
        if rules.rule_index(id).is_none() {
            return Err(format!("no rule \"{id}\" is loaded"));
        }
    }
    let lateness = match &case.allowed_lateness {
        Some(text) => Lateness::uniform(parse_duration(text)?),
        None => Lateness::default(),
    };
    let mut events = build_events(case)?;
    if !case.keep_order {
        events.sort_by_key(|(t, _)| *t);
    }
    let decoder = Decoder::new();
    let mut engine = Engine::new(
        Arc::clone(rules),
        EngineConfig {
            lateness,
            ..Default::default()
        },
    );
    let mut outputs: Vec<OutputEvent> = Vec::new();
    let (mut late, mut rejected) = (0u64, 0u64);
    let mut errors = Vec::new();
    for (_, json) in events {
        match decoder.decode_value(json.clone()) {
            Ok(event) => {
                if engine.process(&event, &mut outputs) == Disposition::Late {
                    late += 1;
                }
            }
            Err(e) => {
                rejected += 1;
                if case.expect_rejected == 0 {
                    errors.push(format!("input rejected: {e}\n  {json}"));
                }
            }
        }
    }
    let actual: Vec<String> = outputs
        .iter()
        .filter(|o| under_test.contains(&o.data.rule_id))
        .map(describe_output)
        .collect();
    let expected: Vec<String> = case
        .expect
        .iter()
        .map(|e| describe_expected(e, rules))
        .collect::<Result<_, _>>()?;
    let mut problems = errors;
    if actual != expected {
        problems.push(diff(&expected, &actual));
    }
    if late != case.expect_late {
        problems.push(format!(
            "expected {} late events, got {late}",
            case.expect_late
        ));
    }
    if rejected != case.expect_rejected {
        problems.push(format!(
            "expected {} rejected events, got {rejected}",
            case.expect_rejected
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// One output as a comparable line.
pub fn describe_output(o: &OutputEvent) -> String {
    let state = match o.data.state {
        Some(s) => s.name(),
        None => "milestone",
    };
    let when = match &o.data.night {
        Some(night) => format!("night {night}"),
        None => format!("at {}", o.time),
    };
    format!(
        "{} {} {state} {} {when}",
        o.subject,
        o.data.rule_id,
        o.data.severity.name()
    )
}

fn describe_expected(e: &Expected, rules: &RuleSet) -> Result<String, String> {
    let rule = rules
        .rule_index(&e.rule)
        .map(|i| &rules.rules[i])
        .ok_or_else(|| format!("expected output names unknown rule \"{}\"", e.rule))?;
    let severity = match &e.severity {
        Some(s) => Severity::parse(s).ok_or_else(|| format!("unknown severity \"{s}\""))?,
        None => rule.severity,
    };
    if !matches!(e.state.as_str(), "firing" | "resolved" | "milestone") {
        return Err(format!(
            "unknown state \"{}\" (expected firing, resolved or milestone)",
            e.state
        ));
    }
    let when = match (&e.night, &e.time) {
        (Some(night), _) => format!("night {night}"),
        (None, Some(time)) => {
            let t =
                EventTime::parse(time).map_err(|err| format!("expected time \"{time}\": {err}"))?;
            format!("at {t}")
        }
        (None, None) => {
            return Err(format!(
                "expected output of \"{}\" needs `night` or `time`",
                e.rule
            ))
        }
    };
    let user = e.user.as_deref().unwrap_or(DEFAULT_USER);
    Ok(format!(
        "{user} {} {} {} {when}",
        e.rule,
        e.state,
        severity.name()
    ))
}

fn diff(expected: &[String], actual: &[String]) -> String {
    let expected = expected.join("\n") + "\n";
    let actual = actual.join("\n") + "\n";
    let mut out = String::from("outputs differ (- expected, + actual):\n");
    for change in similar::TextDiff::from_lines(&expected, &actual).iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => "- ",
            similar::ChangeTag::Insert => "+ ",
            similar::ChangeTag::Equal => "  ",
        };
        if change.value().trim().is_empty() {
            continue;
        }
        out.push_str(sign);
        out.push_str(change.value());
    }
    out
}

/// The test's events as bare JSON, with their times for sorting.
fn build_events(case: &TestCase) -> Result<Vec<(i64, serde_json::Value)>, String> {
    let mut events = Vec::new();
    for (i, e) in case.events.iter().enumerate() {
        let t = EventTime::parse(&e.time)
            .map_err(|err| format!("event {}: time \"{}\": {err}", i + 1, e.time))?;
        let id =
            e.id.clone()
                .unwrap_or_else(|| format!("{}-{}", e.event_type, i + 1));
        let user = e.user.as_deref().unwrap_or(DEFAULT_USER);
        events.push((t.millis(), json!({"id": id, "user_id": user, "type": e.event_type, "source": "test", "time": e.time, "data": e.data})));
    }
    for spec in &case.nights {
        let first = NaiveDate::parse_from_str(&spec.first, "%Y-%m-%d")
            .map_err(|e| format!("nights: first \"{}\": {e}", spec.first))?;
        let wake = NaiveTime::parse_from_str(spec.wake.as_deref().unwrap_or("07:00"), "%H:%M")
            .map_err(|e| format!("nights: wake: {e}"))?;
        let offset = spec.offset.as_deref().unwrap_or("+00:00");
        let nights = spec.fields.values().map(Vec::len).max().unwrap_or(0);
        let user = spec.user.as_deref().unwrap_or(DEFAULT_USER);
        for n in 0..nights {
            let mut data = serde_json::Map::new();
            for (field, values) in &spec.fields {
                match values.get(n) {
                    Some(serde_json::Value::String(s)) if s.is_empty() => {}
                    Some(v) => {
                        data.insert(field.clone(), v.clone());
                    }
                    None => {}
                }
            }
            if data.is_empty() {
                continue;
            }
            let date = first + Duration::days(n as i64);
            let time = format!(
                "{}T{}{offset}",
                date.format("%Y-%m-%d"),
                wake.format("%H:%M:%S")
            );
            let t = EventTime::parse(&time).map_err(|e| format!("nights: time \"{time}\": {e}"))?;
            let id = format!("{}-{}", spec.event_type, date.format("%Y-%m-%d"));
            events.push((t.millis(), json!({"id": id, "user_id": user, "type": spec.event_type, "source": "test", "time": time, "data": data})));
        }
    }
    for spec in &case.samples {
        let start = EventTime::parse(&spec.start)
            .map_err(|e| format!("samples: start \"{}\": {e}", spec.start))?;
        let every = parse_duration(&spec.every)?;
        let user = spec.user.as_deref().unwrap_or(DEFAULT_USER);
        let count = spec.values.len() * spec.repeat.unwrap_or(1);
        for i in 0..count {
            let value = spec.values[i % spec.values.len()];
            let time = start.plus_millis(every * i as i64);
            let id = format!("{}-{}", spec.event_type, time.millis());
            events.push((time.millis(), json!({"id": id, "user_id": user, "type": spec.event_type, "source": "test", "time": time.to_rfc3339(), "data": {spec.field.clone(): value}})));
        }
    }
    Ok(events)
}
