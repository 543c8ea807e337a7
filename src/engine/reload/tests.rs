use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::engine::{EngineConfig, OutputEvent};
use crate::event::{Decoder, Event};
use crate::rules::{compile_files, find_rule_files, SourceFile};

fn compile(files: &[(&str, String)]) -> Arc<RuleSet> {
    let sources: Vec<SourceFile> = files
        .iter()
        .map(|(path, text)| SourceFile {
            path: PathBuf::from(path),
            text: text.clone(),
        })
        .collect();
    Arc::new(compile_files(&sources).unwrap_or_else(|d| panic!("{d:?}")))
}

/// The shipped rule pack's files, in `order`.
fn pack_files(reverse: bool) -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut files: Vec<(String, String)> = find_rule_files(&[dir])
        .expect("the pack")
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable");
            (p.display().to_string(), text)
        })
        .collect();
    if reverse {
        files.reverse();
    }
    files
}

fn pack(reverse: bool) -> Arc<RuleSet> {
    let files = pack_files(reverse);
    let borrowed: Vec<(&str, String)> =
        files.iter().map(|(p, t)| (p.as_str(), t.clone())).collect();
    compile(&borrowed)
}

/// The simulated users of the fixture (nightly metrics, and heart rate with steps).
fn simulated() -> Vec<Event> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/simulated-7-users.jsonl");
    let text = std::fs::read_to_string(path).expect("the fixture");
    let decoder = Decoder::new();
    text.lines()
        .map(|line| decoder.decode(line.as_bytes()).expect("valid events"))
        .collect()
}

fn config() -> EngineConfig {
    EngineConfig {
        // Dormant firings and idle-key sweeps take part too.
        state_ttl_ms: Some(10 * 86_400_000),
        ..Default::default()
    }
}

fn run(engine: &mut Engine, events: &[Event], out: &mut Vec<OutputEvent>) {
    for event in events {
        engine.process(event, out);
    }
}

fn json(outputs: &[OutputEvent]) -> Vec<String> {
    outputs
        .iter()
        .map(|o| serde_json::to_string(o).expect("serialisable"))
        .collect()
}

/// Processing A with a set, reloading an equivalent set, then B gives exactly the outputs of
/// A + B with the set alone: the same rules compiled anew (same positions), and compiled
/// from the files in reverse order (other positions of rules and series: the same outputs,
/// within an event possibly in another order).
#[test]
fn reloading_an_equivalent_set_changes_no_output() {
    let events = simulated();
    let rules = pack(false);
    let mut whole = Engine::new(Arc::clone(&rules), config());
    let mut expected = Vec::new();
    run(&mut whole, &events, &mut expected);
    assert!(expected.len() > 20, "the fixture decides something");
    let n = events.len();
    for split in [1, n / 7, n / 3, n / 2, 2 * n / 3, n - 1] {
        for reverse in [false, true] {
            let mut engine = Engine::new(Arc::clone(&rules), config());
            let mut outputs = Vec::new();
            run(&mut engine, &events[..split], &mut outputs);
            let report = engine.replace_rules(pack(reverse));
            assert!(report.outputs.is_empty());
            assert!(report
                .rules
                .iter()
                .all(|r| r.outcome == RuleOutcome::Kept && r.reason.is_empty()));
            assert_eq!(report.series_kept, rules.series.len());
            run(&mut engine, &events[split..], &mut outputs);
            let (mut got, mut want) = (json(&outputs), json(&expected));
            if reverse {
                got.sort();
                want.sort();
            }
            assert!(
                got == want,
                "split at {split} (reversed: {reverse}) differs"
            );
            assert_eq!(engine.counters(), whole.counters());
        }
    }
}

fn decoder() -> Decoder {
    Decoder::new()
}

fn event(decoder: &Decoder, user: &str, ty: &str, time: &str, data: &str) -> Event {
    let line = format!(
        r#"{{"id":"{user}-{ty}-{time}","type":"{ty}","time":"{time}","user_id":"{user}","source":"test","data":{data}}}"#
    );
    decoder
        .decode(line.as_bytes())
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn hrv_rule(version: u32, window: &str, fire: &str) -> String {
    format!(
        r#"id = "hrv_low"
version = {version}
kind = "alert"
on = "heart_rate_variability"
[stats]
signal = {{ agg = "mean", of = "rmssd", window = "{window}", min_samples = 3 }}
[fire]
when = "signal < {fire}"
[resolve]
when = "signal >= 60"
"#
    )
}

fn hrv_night(decoder: &Decoder, day: u32, rmssd: f64) -> Event {
    event(
        decoder,
        "u1",
        "heart_rate_variability",
        &format!("2024-03-{day:02}T07:00:00+01:00"),
        &format!(r#"{{"rmssd":{rmssd}}}"#),
    )
}

#[test]
fn a_threshold_change_keeps_the_windows_and_the_open_alert_which_resolves_with_its_id() {
    let d = decoder();
    let v1 = compile(&[("hrv.toml", hrv_rule(1, "last 7 nights", "40"))]);
    let mut engine = Engine::new(v1, EngineConfig::default());
    let mut out = Vec::new();
    for day in 1..=4 {
        engine.process(&hrv_night(&d, day, 30.0), &mut out);
    }
    assert_eq!(out.len(), 1, "fires under v1 on the third night");
    let firing = out[0].clone();
    assert_eq!(firing.data.rule_version, 1);

    let report = engine.replace_rules(compile(&[("hrv.toml", hrv_rule(2, "last 7 nights", "45"))]));
    assert_eq!(report.rules[0].outcome, RuleOutcome::Kept);
    assert_eq!(
        report.rules[0].statistics,
        [("signal".to_string(), Reuse::Kept)]
    );
    assert!(report.outputs.is_empty());

    out.clear();
    engine.process(&hrv_night(&d, 5, 200.0), &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    let resolved = &out[0].data;
    assert_eq!(resolved.rule_version, 2, "decided by v2");
    assert_eq!(resolved.firing_id.as_deref(), Some(firing.id.as_str()));
    // The window kept the four nights before the reload: (4 × 30 + 200) / 5.
    assert_eq!(resolved.samples["signal"], 5);
    assert_eq!(resolved.stats["signal"], Some(64.0));
}

#[test]
fn a_longer_window_rebuilds_the_series_from_its_samples() {
    let d = decoder();
    let v1 = compile(&[("hrv.toml", hrv_rule(1, "last 3 nights", "40"))]);
    let mut engine = Engine::new(v1, EngineConfig::default());
    let mut out = Vec::new();
    for day in 1..=3 {
        engine.process(&hrv_night(&d, day, 50.0), &mut out);
    }
    let report = engine.replace_rules(compile(&[(
        "hrv.toml",
        hrv_rule(2, "last 14 nights", "49"),
    )]));
    assert_eq!(report.series_rebuilt, 1);
    assert_eq!(
        report.rules[0].statistics,
        [("signal".to_string(), Reuse::Rebuilt)]
    );
    engine.process(&hrv_night(&d, 4, 10.0), &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        out[0].data.samples["signal"], 4,
        "the three earlier nights were kept"
    );
    assert_eq!(out[0].data.rule_version, 2);
}

#[test]
fn a_removed_rules_open_alert_is_resolved_by_the_reload() {
    let d = decoder();
    let other = "id = \"other\"\nversion = 1\nkind = \"milestone\"\non = \"sleep_episode\"\n\
                 [fire]\nwhen = \"total_sleep_time > 600\"\n"
        .to_string();
    let v1 = compile(&[
        ("hrv.toml", hrv_rule(1, "last 7 nights", "40")),
        ("o.toml", other.clone()),
    ]);
    let mut engine = Engine::new(v1, EngineConfig::default());
    let mut out = Vec::new();
    for day in 1..=3 {
        engine.process(&hrv_night(&d, day, 30.0), &mut out);
    }
    let firing = out.pop().expect("fired");
    let report = engine.replace_rules(compile(&[("o.toml", other)]));
    let removed = report
        .rules
        .iter()
        .find(|r| r.id == "hrv_low")
        .expect("reported");
    assert_eq!(removed.outcome, RuleOutcome::Removed);
    assert_eq!(report.alerts_closed, 1);
    let closing = &report.outputs[0];
    assert_eq!(
        closing.data.state,
        Some(crate::engine::AlertState::Resolved)
    );
    assert_eq!(closing.data.firing_id.as_deref(), Some(firing.id.as_str()));
    assert_eq!(closing.data.rule_version, 1);
    assert_eq!(closing.time, firing.time, "at the user's latest event time");
    assert!(closing
        .data
        .message
        .as_deref()
        .unwrap_or("")
        .contains("removed"));
    assert_eq!(engine.counters().alerts_resolved, 1);
}

#[test]
fn a_rule_whose_state_changes_meaning_starts_fresh_and_its_open_alert_is_closed() {
    let d = decoder();
    let v1 = compile(&[("hrv.toml", hrv_rule(1, "last 7 nights", "40"))]);
    let mut engine = Engine::new(v1, EngineConfig::default());
    let mut out = Vec::new();
    for day in 1..=3 {
        engine.process(&hrv_night(&d, day, 30.0), &mut out);
    }
    assert_eq!(out.len(), 1);
    // Without [resolve], an open alert could never close.
    let v2 = hrv_rule(2, "last 7 nights", "40").replace("[resolve]\nwhen = \"signal >= 60\"\n", "");
    let report = engine.replace_rules(compile(&[("hrv.toml", v2)]));
    assert_eq!(report.rules[0].outcome, RuleOutcome::Fresh);
    assert!(
        report.rules[0].reason.contains("[resolve]"),
        "{}",
        report.rules[0].reason
    );
    assert_eq!(report.outputs.len(), 1);
    assert!(report.outputs[0]
        .data
        .message
        .as_deref()
        .unwrap_or("")
        .contains("changed"));
    // The windows were kept (same series): the next night fires again, under v2.
    out.clear();
    engine.process(&hrv_night(&d, 4, 30.0), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].data.rule_version, 2);
}

fn absence_rule(timeout: &str) -> String {
    format!("id = \"silent\"\nversion = 1\nkind = \"alert\"\n[absence]\nfor = \"{timeout}\"\n")
}

#[test]
fn a_shorter_absence_timeout_moves_the_pending_deadline() {
    let d = decoder();
    let hr = |user: &str, time: &str| event(&d, user, "heart_rate", time, r#"{"heart_rate":60}"#);
    let mut engine = Engine::new(
        compile(&[("a.toml", absence_rule("48h"))]),
        EngineConfig::default(),
    );
    let mut out = Vec::new();
    for user in ["u1", "u2", "u3"] {
        engine.process(&hr(user, "2024-03-01T08:00:00Z"), &mut out);
    }
    let mut v2 = absence_rule("24h");
    v2 = v2.replace("version = 1", "version = 2");
    let report = engine.replace_rules(compile(&[("a.toml", v2)]));
    assert_eq!(report.rules[0].outcome, RuleOutcome::Rebuilt);
    // Two users, heard from again 12 h later, move the stream clock 30 h past u1's last
    // event: past its moved deadline (24 h), not past the old one (48 h), nor their own.
    for time in ["2024-03-01T20:00:00Z", "2024-03-02T14:00:00Z"] {
        for user in ["u2", "u3"] {
            engine.process(&hr(user, time), &mut out);
        }
    }
    let fired: Vec<(&str, u32, String)> = out
        .iter()
        .map(|o| {
            (
                o.subject.as_str(),
                o.data.rule_version,
                o.time.0.to_rfc3339(),
            )
        })
        .collect();
    assert_eq!(fired, [("u1", 2, "2024-03-02T08:00:00+00:00".to_string())]);
}

#[test]
fn a_dormant_firing_follows_its_rule_across_a_version_bump_or_is_closed_with_it() {
    let d = decoder();
    let rule = |version: u32| {
        format!(
            "id = \"low\"\nversion = {version}\nkind = \"alert\"\non = \"heart_rate_variability\"\n\
             [fire]\nwhen = \"rmssd < 40\"\n[resolve]\nwhen = \"rmssd >= 60\"\n"
        )
    };
    let hrv = |user: &str, day: u32, rmssd: f64| {
        event(
            &d,
            user,
            "heart_rate_variability",
            &format!("2024-03-{day:02}T07:00:00Z"),
            &format!(r#"{{"rmssd":{rmssd}}}"#),
        )
    };
    let config = EngineConfig {
        state_ttl_ms: Some(5 * 86_400_000),
        ..Default::default()
    };
    for removed in [false, true] {
        let mut engine = Engine::new(compile(&[("low.toml", rule(1))]), config.clone());
        let mut out = Vec::new();
        engine.process(&hrv("u1", 1, 30.0), &mut out);
        let firing = out.pop().expect("fired");
        for day in 2..=12 {
            for user in ["u2", "u3"] {
                engine.process(&hrv(user, day, 50.0), &mut out);
            }
        }
        assert_eq!(
            engine.keys_dormant(),
            1,
            "u1's state went, its firing stayed"
        );
        let next = if removed {
            compile(&[("o.toml", absence_rule("48h"))])
        } else {
            compile(&[("low.toml", rule(2))])
        };
        let report = engine.replace_rules(next);
        if removed {
            assert_eq!(engine.keys_dormant(), 0);
            assert_eq!(report.outputs.len(), 1);
            assert_eq!(
                report.outputs[0].data.firing_id.as_deref(),
                Some(firing.id.as_str())
            );
            continue;
        }
        assert!(report.outputs.is_empty());
        assert_eq!(engine.keys_dormant(), 1);
        out.clear();
        engine.process(&hrv("u1", 13, 70.0), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].data.firing_id.as_deref(), Some(firing.id.as_str()));
        assert_eq!(out[0].data.rule_version, 2);
    }
}

/// With a changelog: the records written after a reload restore an engine that goes on as
/// the reloaded one does (rules and series at other positions, dropped series deleted).
#[test]
fn the_changelog_after_a_reload_restores_the_reloaded_engine() {
    let events = simulated();
    let n = events.len();
    // Just after the last heart-rate sample, while its chunks are still kept.
    let reload_at = events
        .iter()
        .rposition(|e| e.event_type() == crate::event::EventType::HeartRate)
        .map_or(n / 3, |i| i + 1);
    let restart_at = (reload_at + n) / 2;
    let mut expected = Vec::new();
    let mut whole = Engine::new(pack(false), config());
    run(&mut whole, &events, &mut expected);

    let mut log = Vec::new();
    let mut engine = Engine::restored(pack(false), config(), Vec::new()).expect("empty log");
    let mut outputs = Vec::new();
    run(&mut engine, &events[..reload_at], &mut outputs);
    engine.drain_changelog(&mut log);
    assert!(
        live_chunks(&log) > 0,
        "the heart-rate series have chunks to delete"
    );
    // Without high_hr_at_rest: its heart-rate series go, their chunks with them.
    let mut files = pack_files(true);
    files.retain(|(path, _)| !path.ends_with("high_hr_at_rest.toml"));
    let borrowed: Vec<(&str, String)> =
        files.iter().map(|(p, t)| (p.as_str(), t.clone())).collect();
    let reduced = compile(&borrowed);
    let report = engine.replace_rules(Arc::clone(&reduced));
    assert!(report.series_dropped > 0);
    outputs.extend(report.outputs);
    run(&mut engine, &events[reload_at..restart_at], &mut outputs);
    engine.drain_changelog(&mut log);
    assert_eq!(
        live_chunks(&log),
        0,
        "the dropped series' chunks are deleted"
    );

    let mut restored = Engine::restored(Arc::clone(&reduced), config(), log).expect("the log");
    run(&mut restored, &events[restart_at..], &mut outputs);
    run(&mut engine, &events[restart_at..], &mut Vec::new());

    let keep = |o: &&OutputEvent| o.data.rule_id != "high_hr_at_rest";
    let mut got = json(&outputs.iter().filter(keep).cloned().collect::<Vec<_>>());
    let mut want = json(&expected.iter().filter(keep).cloned().collect::<Vec<_>>());
    got.sort();
    want.sort();
    assert!(got == want, "the outputs of the other rules differ");
}

/// Chunk records whose latest value in `log` is not a deletion.
fn live_chunks(log: &[crate::engine::StateRecord]) -> usize {
    let mut live = std::collections::HashMap::new();
    for r in log.iter().filter(|r| r.key.first() == Some(&b'C')) {
        live.insert(r.key.clone(), r.value.is_some());
    }
    live.values().filter(|l| **l).count()
}
