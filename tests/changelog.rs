//! The engine's changelog: an engine restored from it at any point continues exactly as the
//! uninterrupted engine does, outputs (ids included) and state alike.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use vigil::engine::{Engine, EngineConfig, OutputEvent, StateRecord};
use vigil::event::Event;
use vigil::rules::load_rules;
use vigil::simulate::{simulate, SimConfig};

fn rules() -> Arc<vigil::rules::RuleSet> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
    Arc::new(load_rules(&[dir]).expect("the rule pack is valid"))
}

fn events() -> Vec<Event> {
    simulate(&SimConfig {
        users: 4,
        days: 40,
        seed: 7,
        start: NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
        heart_rate: true,
        hr_hours_per_day: 0.5,
        hr_users: None,
        hr_days: Some(6),
        hr_episode_probability: 0.5,
    })
    .collect()
}

fn config() -> EngineConfig {
    EngineConfig {
        lateness: vigil::engine::Lateness::uniform(3_600_000),
        state_ttl_ms: Some(20 * 86_400_000),
        ..Default::default()
    }
}

fn ids(outputs: &[OutputEvent]) -> Vec<String> {
    outputs
        .iter()
        .map(|o| serde_json::to_string(o).unwrap())
        .collect()
}

/// Runs `events`, draining the changelog every `commit_every` events into `log`; at each
/// index in `restarts` the engine is dropped and rebuilt from the log alone.
fn run_with_restarts(
    events: &[Event],
    commit_every: usize,
    restarts: &[usize],
) -> (Vec<OutputEvent>, usize) {
    run_with_restarts_configured(events, commit_every, restarts, &config())
}

fn run_with_restarts_configured(
    events: &[Event],
    commit_every: usize,
    restarts: &[usize],
    config: &EngineConfig,
) -> (Vec<OutputEvent>, usize) {
    let config = || config.clone();
    let rules = rules();
    let mut log: Vec<StateRecord> = Vec::new();
    let mut engine = Engine::restored(Arc::clone(&rules), config(), Vec::new()).unwrap();
    let mut outputs = Vec::new();
    let mut committed = 0;
    let mut pending = Vec::new();
    let mut i = 0;
    let mut restarts = restarts.to_vec();
    while i < events.len() {
        if restarts.first() == Some(&i) {
            restarts.remove(0);
            // A crash: whatever was not committed is lost, and processing resumes at the
            // committed position with the state the log holds.
            pending.clear();
            i = committed;
            engine = Engine::restored(Arc::clone(&rules), config(), log.clone()).unwrap();
        }
        engine.process(&events[i], &mut pending);
        i += 1;
        if i % commit_every == 0 || i == events.len() {
            engine.drain_changelog(&mut log);
            outputs.append(&mut pending);
            committed = i;
        }
    }
    (outputs, log.len())
}

#[test]
fn restored_engine_continues_like_the_uninterrupted_one() {
    let events = events();
    assert!(events.len() > 20_000, "{} events", events.len());
    let (reference, _) = run_with_restarts(&events, 97, &[]);
    assert!(
        reference.len() > 10,
        "the stream should raise outputs: {}",
        reference.len()
    );
    let n = events.len();
    let restarts: Vec<usize> = (1..12).map(|k| k * n / 12 + k * 13).collect();
    let (restored, log_records) = run_with_restarts(&events, 97, &restarts);
    assert!(log_records > 0);
    assert_eq!(ids(&reference), ids(&restored));
}

#[test]
fn firings_of_users_the_ttl_dropped_survive_restarts_and_resolve_on_return() {
    // sim-0001 sends nothing from day 5 to day 30: its no_data_48h fires, a 7-day TTL drops its
    // state (the firing stays, dormant, in the changelog too), and its return resolves it.
    let day = 86_400_000;
    let start = NaiveDate::from_ymd_opt(2024, 3, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    let (gone, back) = (start + 5 * day, start + 30 * day);
    let events: Vec<Event> = events()
        .into_iter()
        .filter(|e| {
            let t = e.time.millis();
            !(e.user_id == "sim-0001" && t >= gone && t < back)
        })
        .collect();
    let config = EngineConfig {
        state_ttl_ms: Some(7 * day),
        ..config()
    };
    let (reference, _) = run_with_restarts_configured(&events, 97, &[], &config);
    let absence: Vec<serde_json::Value> = reference
        .iter()
        .filter(|o| o.subject == "sim-0001" && o.data.rule_id == "no_data_48h")
        .map(|o| serde_json::to_value(o).unwrap())
        .collect();
    assert_eq!(absence.len(), 2, "{absence:#?}");
    assert_eq!(absence[0]["data"]["state"], "firing");
    assert_eq!(absence[1]["data"]["state"], "resolved");
    assert_eq!(absence[1]["data"]["firing_id"], absence[0]["id"]);
    let n = events.len();
    let restarts: Vec<usize> = (1..24).map(|k| k * n / 24 + k * 7).collect();
    let (restored, _) = run_with_restarts_configured(&events, 97, &restarts, &config);
    assert_eq!(ids(&reference), ids(&restored));
}

#[test]
fn changelog_compacts_to_the_live_state() {
    // What compaction keeps (the latest value per key, tombstones removed) restores the same
    // engine as the whole log does.
    let events = events();
    let rules = rules();
    let mut engine = Engine::restored(Arc::clone(&rules), config(), Vec::new()).unwrap();
    let mut log = Vec::new();
    let mut sink = Vec::new();
    let half = events.len() / 2;
    for (i, event) in events[..half].iter().enumerate() {
        engine.process(event, &mut sink);
        if i % 50 == 0 {
            engine.drain_changelog(&mut log);
        }
    }
    engine.drain_changelog(&mut log);
    let mut latest = std::collections::BTreeMap::new();
    for record in &log {
        latest.insert(record.key.clone(), record.value.clone());
    }
    let compacted: Vec<StateRecord> = latest
        .into_iter()
        .filter_map(|(key, value)| {
            value.map(|v| StateRecord {
                key,
                value: Some(v),
            })
        })
        .collect();
    assert!(compacted.len() < log.len());
    // Evicted sample chunks were deleted: every chunk left holds samples the engine still
    // keeps, i.e. within the 10-minute window plus the hour of allowed lateness (and a
    // chunk's width) behind its user's clock.
    let chunks: Vec<&StateRecord> = compacted.iter().filter(|r| r.key[0] == b'C').collect();
    assert!(!chunks.is_empty());
    for record in chunks {
        let chunk = i64::from_be_bytes(record.key[9..17].try_into().unwrap());
        let user = std::str::from_utf8(&record.key[17..]).unwrap();
        let clock = engine.user_clock(user).expect("a chunk of a user in state");
        let oldest_kept = clock - 10 * 60_000 - 3_600_000 - vigil::engine::snapshot::CHUNK_MS;
        assert!(
            (chunk + 1) * vigil::engine::snapshot::CHUNK_MS > oldest_kept,
            "{user}: chunk {chunk} should have been deleted"
        );
    }

    let mut a = Engine::restored(Arc::clone(&rules), config(), log).unwrap();
    let mut b = Engine::restored(Arc::clone(&rules), config(), compacted).unwrap();
    assert_eq!(a.keys_in_state(), engine.keys_in_state());
    assert_eq!(b.keys_in_state(), engine.keys_in_state());
    let (mut out_a, mut out_b, mut out_live) = (Vec::new(), Vec::new(), Vec::new());
    for event in &events[half..] {
        a.process(event, &mut out_a);
        b.process(event, &mut out_b);
        engine.process(event, &mut out_live);
    }
    assert!(!out_live.is_empty());
    assert_eq!(ids(&out_live), ids(&out_a));
    assert_eq!(ids(&out_live), ids(&out_b));
}

#[test]
fn corrupt_changelog_is_an_error_not_a_panic() {
    let rules = rules();
    for (key, value) in [
        (b"Ksim-0001".to_vec(), vec![1u8, 0xff, 0xff]),
        (b"Ksim-0001".to_vec(), vec![9u8, 0]),
        (b"Ksim-0001".to_vec(), vec![]),
        (b"Z".to_vec(), vec![1u8]),
    ] {
        let result = Engine::restored(
            Arc::clone(&rules),
            config(),
            vec![StateRecord {
                key,
                value: Some(value),
            }],
        );
        assert!(result.is_err());
    }
}
