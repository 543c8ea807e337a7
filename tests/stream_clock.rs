//! One user's wrong device clock changes no other user's outputs: a simulated population with
//! one user whose events are dated in year 9999, one in 1970 and one a year ahead gives every
//! other user exactly the outputs (ids and bytes) of the same run without those users.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration};
use vigil::engine::{Engine, EngineConfig};
use vigil::event::Decoder;
use vigil::io::admit::FixedClock;
use vigil::io::pipeline::{run_with, Around, Sinks, Summary};
use vigil::rules::load_rules;
use vigil::simulate::{simulate, user_id, SimConfig};

const USERS: usize = 100;

fn rules() -> Arc<vigil::rules::RuleSet> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
    Arc::new(load_rules(&[dir]).expect("the rule pack is valid"))
}

/// The population: nightly data with sync gaps (so `no_data_48h` fires now and then), in
/// time order, as JSON values.
fn population() -> Vec<serde_json::Value> {
    let config = SimConfig {
        users: USERS,
        days: 60,
        seed: 17,
        ..SimConfig::default()
    };
    simulate(&config).map(|e| e.to_json()).collect()
}

fn user_of(event: &serde_json::Value) -> &str {
    event["user_id"].as_str().unwrap_or_default()
}

/// Rewrites the times of `user`'s events in place (they keep their place in the stream).
fn retime(events: &mut [serde_json::Value], user: &str, change: impl Fn(&str) -> String) {
    for event in events.iter_mut().filter(|e| user_of(e) == user) {
        let time = event["time"].as_str().unwrap_or_default().to_string();
        event["time"] = serde_json::Value::String(change(&time));
    }
}

fn shifted(time: &str, by: Duration) -> String {
    let t = DateTime::parse_from_rfc3339(time).expect("simulated times are RFC 3339");
    (t + by).to_rfc3339()
}

struct Run {
    summary: Summary,
    /// Output lines by subject (user), in order.
    outputs: BTreeMap<String, Vec<String>>,
    dead_letters: Vec<serde_json::Value>,
}

/// Runs the lines through the file mode's pipeline, with the machine's clock at `now_ms`.
fn run(events: &[serde_json::Value], now_ms: i64) -> Run {
    let mut input = String::new();
    for event in events {
        input.push_str(&event.to_string());
        input.push('\n');
    }
    let mut engine = Engine::new(rules(), EngineConfig::default());
    let (mut out, mut dead, mut late) = (Vec::new(), Vec::new(), Vec::new());
    let mut sinks = Sinks {
        outputs: &mut out,
        dead_letters: &mut dead,
        late: &mut late,
    };
    let summary = run_with(
        &mut engine,
        &Decoder::new(),
        input.as_bytes(),
        "population",
        &mut sinks,
        &mut Around {
            clock: &FixedClock(now_ms),
            ..Around::default()
        },
    )
    .expect("writing to memory cannot fail");
    let mut outputs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out).lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("outputs are JSON");
        let subject = value["subject"].as_str().unwrap_or_default().to_string();
        outputs.entry(subject).or_default().push(line.to_string());
    }
    let dead_letters = String::from_utf8_lossy(&dead)
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead letters are JSON"))
        .collect();
    Run {
        summary,
        outputs,
        dead_letters,
    }
}

fn now() -> i64 {
    DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
        .expect("a time")
        .timestamp_millis()
}

fn absences(run: &Run) -> usize {
    run.outputs
        .values()
        .flatten()
        .filter(|line| line.contains("\"no_data_48h\""))
        .count()
}

/// The outputs of every user but `except`.
fn others(run: &Run, except: &[String]) -> BTreeMap<String, Vec<String>> {
    run.outputs
        .iter()
        .filter(|(user, _)| !except.contains(user))
        .map(|(user, lines)| (user.clone(), lines.clone()))
        .collect()
}

#[test]
fn wrong_clocks_dated_9999_and_1970_change_no_other_users_outputs() {
    let events = population();
    let (future, past) = (user_id(40), user_id(60));
    let bad = [future.clone(), past.clone()];
    let clean: Vec<_> = events
        .iter()
        .filter(|e| !bad.iter().any(|b| b == user_of(e)))
        .cloned()
        .collect();
    let mut poisoned = events.clone();
    retime(&mut poisoned, &future, |t| format!("9999{}", &t[4..]));
    retime(&mut poisoned, &past, |t| format!("1970{}", &t[4..]));

    let clean_run = run(&clean, now());
    let poisoned_run = run(&poisoned, now());
    assert!(
        absences(&clean_run) > 0,
        "the population must exercise the absence rule"
    );
    assert_eq!(others(&poisoned_run, &bad), others(&clean_run, &bad));
    // The events dated 9999 are dead letters with a reason, none of them lost.
    let reasons: Vec<&str> = poisoned_run
        .dead_letters
        .iter()
        .map(|d| d["reason"].as_str().unwrap_or_default())
        .collect();
    let sent = events
        .iter()
        .filter(|e| bad.iter().any(|b| b == user_of(e)))
        .count();
    assert_eq!(reasons.len(), sent);
    // Every one of them for its date: in the future, before 2000, or a 29 February that 9999
    // and 1970 do not have (2024 had).
    for reason in &reasons {
        assert!(
            reason.contains("is in the future")
                || reason.contains("is before 2000-01-01")
                || reason.contains("-02-29T"),
            "{reason}"
        );
    }
    assert!(reasons.iter().any(|r| r.contains("is in the future")));
    assert_eq!(
        poisoned_run.summary.records,
        poisoned_run.summary.events + poisoned_run.summary.dead_lettered
    );
}

/// Without the edge's check against the machine's clock (a backtest run long after the fact,
/// or a phone a year ahead), the stream clock alone keeps the other users' timers.
#[test]
fn a_user_a_year_ahead_changes_no_other_users_outputs() {
    let events = population();
    let ahead = user_id(50);
    let clean: Vec<_> = events
        .iter()
        .filter(|e| user_of(e) != ahead)
        .cloned()
        .collect();
    let mut poisoned = events.clone();
    retime(&mut poisoned, &ahead, |t| shifted(t, Duration::days(365)));
    // A machine clock that accepts every date.
    let clean_run = run(&clean, i64::MAX);
    let poisoned_run = run(&poisoned, i64::MAX);
    assert!(absences(&clean_run) > 0);
    assert_eq!(poisoned_run.summary.dead_lettered, 0);
    let except = [ahead];
    assert_eq!(others(&poisoned_run, &except), others(&clean_run, &except));
    // The same run, every event of that user dated 9999: the same outputs for the others.
    let mut far = events.clone();
    retime(&mut far, &except[0], |t| format!("9999{}", &t[4..]));
    assert_eq!(
        others(&run(&far, i64::MAX), &except),
        others(&clean_run, &except)
    );
}
