//! The embedded run loop: every input line ends up in exactly one place, bad input is
//! dead-lettered with a reason, late events are routed and counted, nothing panics.

use std::path::PathBuf;
use std::sync::Arc;

use vigil::engine::{Engine, EngineConfig};
use vigil::event::Decoder;
use vigil::io::pipeline::{run, Sinks, Summary};
use vigil::rules::load_rules;

fn rules() -> Arc<vigil::rules::RuleSet> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
    Arc::new(load_rules(&[dir]).expect("the rule pack is valid"))
}

struct Run {
    summary: Summary,
    outputs: Vec<serde_json::Value>,
    dead: Vec<serde_json::Value>,
    late: Vec<serde_json::Value>,
}

fn run_lines(input: &[u8], lateness_ms: i64, max_line: usize) -> Run {
    let mut engine = Engine::new(
        rules(),
        EngineConfig {
            lateness: vigil::engine::Lateness::uniform(lateness_ms),
            ..Default::default()
        },
    );
    let decoder = Decoder::with_max_line_bytes(max_line);
    let (mut out, mut dead, mut late) = (Vec::new(), Vec::new(), Vec::new());
    let mut sinks = Sinks {
        outputs: &mut out,
        dead_letters: &mut dead,
        late: &mut late,
    };
    let summary = run(&mut engine, &decoder, input, "test", &mut sinks).unwrap();
    let parse = |bytes: &[u8]| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    Run {
        summary,
        outputs: parse(&out),
        dead: parse(&dead),
        late: parse(&late),
    }
}

fn hr(user: &str, time: &str, bpm: f64) -> String {
    format!(
        r#"{{"id":"{user}-{time}","user_id":"{user}","type":"heart_rate","source":"t","time":"{time}","data":{{"heart_rate":{bpm}}}}}"#
    )
}

#[test]
fn malformed_lines_are_dead_lettered_with_reasons_and_the_run_continues() {
    let mut input = String::new();
    input.push_str(&hr("u1", "2024-05-01T10:00:00+02:00", 70.0));
    input.push('\n');
    input.push_str("{not json\n");
    input.push_str("[1,2,3]\n");
    input.push_str(r#"{"id":"x","user_id":"u1","type":"heart_rate","source":"t","time":"2024-05-01T10:00:01+02:00","data":{"heart_rate":-3}}"#);
    input.push('\n');
    input.push_str(r#"{"id":"x","user_id":"u1","type":"telepathy","source":"t","time":"2024-05-01T10:00:01+02:00","data":{}}"#);
    input.push('\n');
    let mut bytes = input.into_bytes();
    bytes.extend_from_slice(&[0xff, 0xfe, 0x00, 0x01, b'\n']);
    bytes.extend_from_slice(format!("{}\n", "x".repeat(5000)).as_bytes());
    bytes.extend_from_slice(hr("u1", "2024-05-01T10:00:02+02:00", 71.0).as_bytes());
    let run = run_lines(&bytes, 3_600_000, 4096);
    assert_eq!(run.summary.records, 8);
    assert_eq!(run.summary.events, 2);
    assert_eq!(run.summary.dead_lettered, 6);
    let reasons: Vec<&str> = run
        .dead
        .iter()
        .map(|d| d["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].starts_with("not valid JSON"), "{reasons:?}");
    assert!(reasons[1].contains("expected a JSON object"), "{reasons:?}");
    assert!(reasons[2].contains("/data/heart_rate"), "{reasons:?}");
    assert!(
        reasons[3].contains("unknown event type `telepathy`"),
        "{reasons:?}"
    );
    assert!(
        reasons[4].starts_with("not UTF-8: invalid byte sequence at byte 0"),
        "{reasons:?}"
    );
    assert!(
        reasons[5].contains("exceeds the limit of 4096 bytes"),
        "{reasons:?}"
    );
    assert_eq!(run.dead[1]["payload"], "[1,2,3]");
    assert_eq!(run.dead[1]["line"], 3);
    assert_eq!(run.dead[5]["payload_bytes"], 5000);
    assert_eq!(run.dead[5]["truncated"], true);
}

#[test]
fn late_is_judged_per_user_and_late_events_are_routed() {
    let lines = [
        hr("a", "2024-05-03T12:00:00Z", 70.0),
        // Another user's data from two days earlier: not late, each user has their own time.
        hr("b", "2024-05-01T12:00:00Z", 70.0),
        // Within the hour of lateness for user a.
        hr("a", "2024-05-03T11:30:00Z", 70.0),
        // Two hours behind user a: late.
        hr("a", "2024-05-03T10:00:00Z", 70.0),
        hr("b", "2024-05-01T12:00:01Z", 70.0),
    ];
    let run = run_lines(lines.join("\n").as_bytes(), 3_600_000, 1 << 20);
    assert_eq!(run.summary.events, 5);
    assert_eq!(run.summary.late, 1);
    assert_eq!(run.late.len(), 1);
    assert_eq!(run.late[0]["event"]["time"], "2024-05-03T10:00:00Z");
    assert_eq!(run.late[0]["behind_ms"], 7_200_000);
    assert!(run.dead.is_empty());
}

#[test]
fn absence_fires_on_the_global_clock_and_resolves_when_data_resumes() {
    let lines = [
        hr("a", "2024-05-01T08:00:00+02:00", 60.0),
        hr("b", "2024-05-01T08:00:00Z", 60.0),
        hr("b", "2024-05-03T06:00:00Z", 60.0), // 48 h after a's last event: a's timer fires
        hr("b", "2024-05-04T00:00:00Z", 60.0),
        hr("a", "2024-05-04T09:00:00+02:00", 60.0), // a is back: resolved
    ];
    let run = run_lines(lines.join("\n").as_bytes(), 3_600_000, 1 << 20);
    let no_data: Vec<(String, String, String)> = run
        .outputs
        .iter()
        .filter(|o| o["data"]["rule_id"] == "no_data_48h")
        .map(|o| {
            (
                o["subject"].as_str().unwrap().to_string(),
                o["data"]["state"].as_str().unwrap().to_string(),
                o["time"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        no_data,
        vec![
            (
                "a".into(),
                "firing".into(),
                "2024-05-03T08:00:00+02:00".into()
            ),
            (
                "a".into(),
                "resolved".into(),
                "2024-05-04T09:00:00+02:00".into()
            ),
        ]
    );
}

#[test]
fn a_byte_order_mark_opening_the_input_is_skipped() {
    let first = hr("u1", "2024-05-01T10:00:00+02:00", 70.0);
    let second = hr("u1", "2024-05-01T10:00:01+02:00", 71.0);
    let input = format!("\u{feff}{first}\n\u{feff}{second}\n");
    let run = run_lines(input.as_bytes(), 3_600_000, 4096);
    assert_eq!(run.summary.events, 1);
    // Anywhere else, a mark is an error in that line, and the reason says so.
    assert_eq!(run.summary.dead_lettered, 1);
    assert_eq!(run.dead[0]["line"], 2);
    let reason = run.dead[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("byte-order mark (U+FEFF)"), "{reason}");
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A deterministic pseudo-random byte soup, split into lines, with some near-miss JSON.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut bytes = Vec::new();
    for i in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.push((state & 0xff) as u8);
        if i % 97 == 0 {
            bytes.extend_from_slice(br#"{"id":"1","user_id":"u","type":"heart_rate","source":"s","time":"2024-05-01T00:00:00Z","data":{"heart_rate":1e999}}"#);
            bytes.push(b'\n');
        }
    }
    let run = run_lines(&bytes, 0, 1 << 20);
    assert_eq!(
        run.summary.records,
        run.summary.events + run.summary.dead_lettered
    );
}

#[test]
fn a_state_ttl_drops_idle_users_keeping_only_their_firings_to_resolve_them() {
    let config = EngineConfig {
        state_ttl_ms: Some(86_400_000),
        ..Default::default()
    };
    let mut engine = Engine::new(rules(), config);
    let decoder = Decoder::new();
    let mut out = Vec::new();
    let mut feed = |engine: &mut Engine, line: String| {
        engine.process(&decoder.decode(line.as_bytes()).unwrap(), &mut out);
    };
    // `quiet` sends one sample; `busy` keeps sending for three days.
    feed(&mut engine, hr("quiet", "2024-05-01T08:00:00Z", 60.0));
    for hour in 0..72 {
        let time = format!("2024-05-{:02}T{:02}:00:00Z", 1 + hour / 24, hour % 24);
        feed(&mut engine, hr("busy", &time, 60.0));
    }
    // After 48 h the absence alert of `quiet` fires; a day later `quiet` is past the TTL: its
    // state goes, and only the firing stays (dormant), to be resolved if `quiet` returns.
    assert_eq!(engine.keys_in_state(), 1);
    assert_eq!(engine.keys_dormant(), 1);
    assert_eq!(engine.counters().keys_expired, 1);
    let value = |o: &vigil::engine::OutputEvent| serde_json::to_value(o).unwrap();
    let fired: Vec<_> = out.iter().map(value).collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0]["subject"], "quiet");
    assert_eq!(fired[0]["data"]["state"], "firing");
    out.clear();
    let mut again = Vec::new();
    engine.process(
        &decoder
            .decode(hr("quiet", "2024-05-04T01:00:00Z", 62.0).as_bytes())
            .unwrap(),
        &mut again,
    );
    let resolved: Vec<_> = again.iter().map(value).collect();
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert_eq!(resolved[0]["data"]["state"], "resolved");
    assert_eq!(resolved[0]["data"]["rule_id"], "no_data_48h");
    assert_eq!(resolved[0]["data"]["firing_id"], fired[0]["id"]);
    assert_eq!(engine.keys_dormant(), 0);
    assert_eq!(engine.keys_in_state(), 2);
    // With rules that leave nothing open, an idle user's state goes.
    let mut plain = Engine::new(
        Arc::new(
            load_rules(&[
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules/constructs")
            ])
            .unwrap(),
        ),
        EngineConfig {
            state_ttl_ms: Some(86_400_000),
            ..Default::default()
        },
    );
    let step = |user: &str, time: &str| {
        format!(
            r#"{{"id":"{user}{time}","user_id":"{user}","type":"step_count","source":"t","time":"{time}","data":{{"step_count":10}}}}"#
        )
    };
    let mut sink = Vec::new();
    for line in [
        step("idle", "2024-05-01T08:00:00Z"),
        step("busy", "2024-05-01T09:00:00Z"),
        step("busy", "2024-05-01T20:00:00Z"),
    ] {
        plain.process(&decoder.decode(line.as_bytes()).unwrap(), &mut sink);
    }
    assert_eq!(plain.keys_in_state(), 2);
    let later = step("busy", "2024-05-02T10:00:00Z");
    plain.process(&decoder.decode(later.as_bytes()).unwrap(), &mut sink);
    assert_eq!(
        plain.keys_in_state(),
        1,
        "idle for more than the TTL: dropped"
    );
    assert_eq!(plain.counters().keys_expired, 1);
}
