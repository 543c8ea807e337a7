//! The shared state against a real Redis (status, dedup and cooldown keys, silences) and the
//! embedded default (silences in the SQLite history, honoured by `vigil run --input`).
//!
//! Without `VIGIL_REDIS_URL` the Redis tests are skipped with a message, except with
//! `CI=true`, where that is a failure. Each test uses a key prefix of its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use vigil::status::redis_store::RedisStore;
use vigil::status::silence::Silence;
use vigil::status::user::{Change, StatusOutput};

#[path = "common/database.rs"]
mod database;
#[path = "common/redis.rs"]
mod redis_env;

fn prefix(test: &str) -> String {
    format!(
        "vigil-test-{}-{}-{test}:",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or(0)
    )
}

fn output(id: &str, rule: &str, change: Change, cooldown: u64) -> StatusOutput {
    StatusOutput {
        id: id.into(),
        user: "u1".into(),
        rule: rule.into(),
        change,
        summary: format!("{{\"id\":\"{id}\"}}"),
        baseline: format!("{{\"stats\":{{\"from\":\"{id}\"}}}}"),
        cooldown_secs: cooldown,
        time_ms: 0,
    }
}

#[test]
fn redis_status_counts_each_output_once_and_keeps_cooldowns() {
    let Some(url) = redis_env::redis_url() else {
        return;
    };
    let prefix = prefix("status");
    let mut store = RedisStore::new(&url, &prefix, Duration::from_secs(5)).expect("client");
    assert!(store.ping().is_ok());
    let firing = output("f1", "hrv_drop", Change::Firing, 3_600);
    let milestone = output("m1", "hrv_recovered", Change::Milestone, 0);
    assert_eq!(
        store
            .apply(&[("u1".into(), 2_000)], &[firing.clone(), milestone])
            .unwrap(),
        2
    );
    // A replay (or another instance after a rebalance) changes nothing, and an older last
    // event time does not move the status back.
    assert_eq!(store.apply(&[("u1".into(), 1_000)], &[firing]).unwrap(), 0);
    let status = store.user_status("u1").unwrap();
    assert_eq!(status.last_event_ms(), Some(2_000));
    assert_eq!(status.count("alerts_fired"), 1);
    assert_eq!(status.count("milestones"), 1);
    assert_eq!(
        status.firing().keys().copied().collect::<Vec<_>>(),
        ["hrv_drop"]
    );
    assert_eq!(
        status.baselines()["hrv_drop"]["stats"]["from"],
        Value::from("f1")
    );
    assert_eq!(
        store.cooldown("u1", "hrv_drop").unwrap().as_deref(),
        Some("f1")
    );
    let ttl = redis_env::ttl(&url, &store.keys().cooldown("u1", "hrv_drop"));
    assert!((3_500..=3_600).contains(&ttl), "cooldown TTL {ttl}");
    assert!(redis_env::ttl(&url, &store.keys().dedup("u1", "f1")) > 0);
    assert!(redis_env::ttl(&url, &store.keys().status("u1")) > 0);

    store
        .apply(&[], &[output("r1", "hrv_drop", Change::Resolved, 0)])
        .unwrap();
    let status = store.user_status("u1").unwrap();
    assert!(status.firing().is_empty());
    assert_eq!(status.count("alerts_resolved"), 1);
    assert_eq!(
        status.baselines()["hrv_drop"]["stats"]["from"],
        Value::from("r1")
    );
}

#[test]
fn redis_silences_are_added_listed_expired_and_removed() {
    let Some(url) = redis_env::redis_url() else {
        return;
    };
    let prefix = prefix("silences");
    let mut store = RedisStore::new(&url, &prefix, Duration::from_secs(5)).expect("client");
    let now = Utc::now();
    let long = Silence::new("u1", Some("hrv_drop"), Some("travel"), 3_600_000, now)
        .expect("a valid silence");
    let short = Silence::new("u2", None, None, 1_000, now).expect("a valid silence");
    store.add_silence(&long, now).unwrap();
    store.add_silence(&short, now).unwrap();
    assert_eq!(store.silences().unwrap(), vec![short.clone(), long.clone()]);
    // Redis expires the short one; the index forgets it on the next read.
    std::thread::sleep(Duration::from_millis(2_100));
    assert_eq!(store.silences().unwrap(), vec![long.clone()]);
    assert!(store.remove_silence(&long.id).unwrap());
    assert!(!store.remove_silence(&long.id).unwrap());
    assert!(store.silences().unwrap().is_empty());
}

fn vigil(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    // The embedded default: no Redis, silences in the SQLite history of the working folder.
    c.current_dir(dir)
        .env_remove("VIGIL_REDIS_URL")
        .env_remove("VIGIL_DATABASE_URL");
    c
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/simulated-7-users.jsonl")
}

fn rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules")
}

fn run(dir: &Path) -> (Vec<Value>, String) {
    let out = vigil(dir)
        .arg("run")
        .arg("--rules")
        .arg(rules())
        .arg("--input")
        .arg(fixture())
        .output()
        .expect("vigil run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outputs = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (outputs, String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn the_embedded_run_honours_silences_kept_in_the_sqlite_history() {
    let reference_dir = tempfile::tempdir().unwrap();
    let (reference, _) = run(reference_dir.path());
    let firings = |user: &str, outputs: &[Value]| -> Vec<String> {
        outputs
            .iter()
            .filter(|o| o["subject"] == user && o["type"] == "io.vigil.alert.firing")
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect()
    };
    let silenced_ids = firings("sim-0003", &reference);
    assert!(!silenced_ids.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let add = vigil(dir.path())
        .args([
            "silence", "add", "--user", "sim-0003", "--for", "2h", "--reason", "on leave",
        ])
        .output()
        .unwrap();
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    // A silence of a milestone rule: milestones are never silenced, so it changes nothing.
    let other = vigil(dir.path())
        .args([
            "silence",
            "add",
            "--user",
            "sim-0002",
            "--rule",
            "sleep_streak_7",
            "--for",
            "1h",
            "--json",
        ])
        .arg("--rules")
        .arg(rules())
        .output()
        .unwrap();
    let other: Silence = serde_json::from_slice(&other.stdout).expect("the silence as JSON");
    let list = vigil(dir.path())
        .args(["silence", "list", "--json"])
        .output()
        .unwrap();
    let listed: Vec<Silence> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .any(|s| s.user_id == "sim-0003" && s.reason.as_deref() == Some("on leave")));

    let (outputs, log) = run(dir.path());
    assert!(
        firings("sim-0003", &outputs).is_empty(),
        "silenced firings stay off the output"
    );
    assert_eq!(outputs.len(), reference.len() - silenced_ids.len());
    assert!(
        log.contains(&format!("silenced: {}", silenced_ids.len())),
        "{log}"
    );

    // Stored, and marked.
    let stored = vigil(dir.path())
        .args(["alerts", "list", "--limit", "0", "--json"])
        .output()
        .unwrap();
    let rows: Vec<Value> = String::from_utf8(stored.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), reference.len());
    let mut marked: Vec<String> = rows
        .iter()
        .filter(|r| r["silenced"] == true)
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    marked.sort();
    let mut want = silenced_ids.clone();
    want.sort();
    assert_eq!(marked, want);

    // Removed: the next run publishes them again.
    let removed = vigil(dir.path())
        .args(["silence", "remove", &other.id])
        .output()
        .unwrap();
    assert_eq!(removed.status.code(), Some(0));
    let again = vigil(dir.path())
        .args(["silence", "remove", &other.id])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(6), "no such silence any more");
}
