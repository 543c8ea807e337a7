use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::engine::{Engine, EngineConfig};
use crate::event::{Decoder, EventType};
use crate::rules::load_rules;

fn config(users: usize, days: u32) -> SimConfig {
    SimConfig {
        users,
        days,
        seed: 7,
        ..SimConfig::default()
    }
}

fn with_hr(mut c: SimConfig) -> SimConfig {
    c.heart_rate = true;
    c.hr_hours_per_day = 0.5;
    c.hr_days = Some(2);
    c.hr_episode_probability = 0.5;
    c
}

#[test]
fn deterministic_for_a_seed() {
    let c = with_hr(config(4, 20));
    let a: Vec<Event> = simulate(&c).collect();
    let b: Vec<Event> = simulate(&c).collect();
    assert!(!a.is_empty());
    assert_eq!(a, b);
    let other: Vec<Event> = simulate(&SimConfig {
        seed: 8,
        ..c.clone()
    })
    .collect();
    assert_ne!(a, other);
    // A user's nights do not depend on how many users there are, nor on heart rate.
    let nights = |events: &[Event], user: &str| -> Vec<Event> {
        events
            .iter()
            .filter(|e| e.user_id == user && e.event_type() != EventType::HeartRate)
            .filter(|e| e.event_type() != EventType::StepCount)
            .cloned()
            .collect()
    };
    let fewer: Vec<Event> = simulate(&config(2, 20)).collect();
    assert_eq!(nights(&a, "sim-0002"), nights(&fewer, "sim-0002"));
}

#[test]
fn events_are_sorted_with_unique_ids() {
    let events: Vec<Event> = simulate(&with_hr(config(6, 30))).collect();
    assert!(events
        .windows(2)
        .all(|w| w[0].time.millis() <= w[1].time.millis()));
    let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "event ids are unique");
    assert!(events.iter().all(|e| e.source == SOURCE));
    assert!(events
        .iter()
        .any(|e| e.event_type() == EventType::HeartRate));
    assert!(events
        .iter()
        .any(|e| e.event_type() == EventType::StepCount));
}

#[test]
fn every_event_validates_and_round_trips() {
    let decoder = Decoder::new();
    let mut offsets = std::collections::BTreeSet::new();
    for event in simulate(&with_hr(config(20, 100))) {
        let line = serde_json::to_string(&event.to_json()).unwrap();
        let decoded = decoder
            .decode(line.as_bytes())
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(decoded, event);
        offsets.insert((event.user_id.clone(), event.time.offset_seconds()));
    }
    // Some users change offset (daylight saving) within the 100 days from 1 January.
    let mut per_user = BTreeMap::<String, usize>::new();
    for (user, _) in &offsets {
        *per_user.entry(user.clone()).or_default() += 1;
    }
    assert!(
        per_user.values().any(|&n| n > 1),
        "no DST change: {offsets:?}"
    );
}

#[test]
fn nightly_values_are_plausible() {
    let events: Vec<Event> = simulate(&config(50, 60)).collect();
    let nights = events
        .iter()
        .filter(|e| e.event_type() == EventType::SleepEpisode)
        .count();
    let missing = 1.0 - nights as f64 / (50.0 * 60.0);
    assert!((0.01..0.07).contains(&missing), "missing nights {missing}");
    for e in &events {
        // Nightly events are at the wake time, between 05:00 and 10:30 local.
        let hour = chrono::Timelike::hour(&e.time.0);
        assert!((5..=10).contains(&hour), "{e:?}");
    }
}

#[test]
fn rule_pack_finds_alerts_and_milestones() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let rules = load_rules(&[root.join("rules")]).expect("rules load");
    let mut engine = Engine::new(Arc::new(rules), EngineConfig::default());
    let mut out = Vec::new();
    for event in simulate(&config(50, 120)) {
        engine.process(&event, &mut out);
    }
    let mut by_rule = BTreeMap::<String, usize>::new();
    for o in &out {
        *by_rule.entry(o.data.rule_id.clone()).or_default() += 1;
    }
    for rule in [
        "hrv_drop",
        "rhr_elevated",
        "sleep_poor_streak",
        "sleep_streak_7",
    ] {
        assert!(
            by_rule.get(rule).copied().unwrap_or(0) > 0,
            "{rule}: {by_rule:?}"
        );
    }
}

#[test]
fn heart_rate_episodes_fire_high_hr_at_rest() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let rules = load_rules(&[root.join("rules")]).expect("rules load");
    let mut engine = Engine::new(Arc::new(rules), EngineConfig::default());
    let mut out = Vec::new();
    let c = SimConfig {
        hr_episode_probability: 1.0,
        ..with_hr(config(3, 3))
    };
    for event in simulate(&c) {
        engine.process(&event, &mut out);
    }
    let fired: Vec<String> = out
        .iter()
        .filter(|o| o.data.rule_id == "high_hr_at_rest")
        .map(|o| format!("{} {} {:?}", o.subject, o.time, o.data.state))
        .collect();
    // One episode per user and HR day (3 users x 2 days), firing and resolving.
    assert_eq!(fired.len(), 12, "{fired:#?}");
}
