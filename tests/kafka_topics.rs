//! `vigil topics apply` and `vigil topics show` against a real Kafka broker.
//!
//! The broker is the one `scripts/services up` starts (`VIGIL_KAFKA_BROKERS`, which
//! `scripts/test` takes from `.services.env`). Without it the tests are skipped with a message,
//! except with `CI=true`, where a missing broker fails them. Each test works under a topic
//! prefix of its own, unique to the run, and deletes its topics at the end.

use std::process::{Command, Output};
use std::time::Duration;

use rdkafka::admin::{AlterConfig, ConfigResource, ResourceSpecifier};
use serde_json::Value;

#[path = "common/kafka.rs"]
mod kafka_env;
#[path = "common/kafka_sandbox.rs"]
mod kafka_sandbox;
use kafka_env::TOPICS;
use kafka_sandbox::{admin_options, Sandbox};

const DAY_MS: i64 = 86_400_000;

/// Runs `vigil topics ARGS` in the test's sandbox, and shows what it said.
fn vigil_topics(f: &Sandbox, args: &[&str]) -> Output {
    let mut all = vec!["topics"];
    all.extend_from_slice(args);
    let out = f.vigil(&all).output().expect("run vigil");
    eprintln!(
        "vigil topics {args:?}: {}\nstdout:\n{}stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The broker's view of one topic: partitions, then its configs.
fn describe(f: &Sandbox, topic: &str) -> (usize, ConfigResource) {
    let name = f.topic(topic);
    let partitions = f.partitions(topic);
    let mut results = f
        .block_on(
            f.admin()
                .describe_configs(&[ResourceSpecifier::Topic(&name)], &admin_options()),
        )
        .expect("describe configs");
    let resource = results.remove(0).expect("topic config");
    (partitions, resource)
}

fn config_value(f: &Sandbox, topic: &str, key: &str) -> String {
    let (_, resource) = describe(f, topic);
    resource
        .get(key)
        .and_then(|e| e.value.clone())
        .unwrap_or_else(|| panic!("{topic} has no {key}"))
}

/// Alters a topic behind Vigil's back (AlterConfigs replaces the topic's dynamic configs).
fn alter(f: &Sandbox, topic: &str, configs: &[(&str, &str)]) {
    let name = f.topic(topic);
    let alter = configs.iter().fold(
        AlterConfig::new(ResourceSpecifier::Topic(&name)),
        |a, (k, v)| a.set(k, v),
    );
    let results = f
        .block_on(f.admin().alter_configs(&[alter], &admin_options()))
        .expect("alter configs");
    for r in results {
        r.expect("altered");
    }
    // The broker answers describe requests from its metadata cache, which follows the
    // controller a moment later: wait until the change shows, as Vigil would see it.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, resource) = describe(f, topic);
        let visible = configs
            .iter()
            .all(|(k, v)| resource.get(k).and_then(|e| e.value.as_deref()) == Some(*v));
        if visible {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}: altered configs still not visible after 15 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn apply_creates_all_seven_topics_and_a_second_apply_changes_nothing() {
    let Some(brokers) = kafka_env::brokers() else {
        return;
    };
    let f = Sandbox::new(brokers, "vigil-test");
    f.write_config("[kafka.topics.alerts]\npartitions = 3\n");
    let out = vigil_topics(&f, &["apply"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), TOPICS.len(), "{text}");
    for (_, name) in TOPICS {
        assert!(
            text.contains(&format!("created {}:", f.topic(name))),
            "{text}"
        );
    }

    let expected = [
        ("health-events", 6, 30),
        ("biometric-updates", 6, 7),
        ("alerts", 3, 3),
        ("milestones", 6, 30),
        ("dead-letter", 6, 14),
        ("late-events", 6, 14),
        ("alerts-silenced", 6, 3),
        ("vigil-state", 6, -1),
    ];
    for (topic, partitions, days) in expected {
        let (have, resource) = describe(&f, topic);
        assert_eq!(have, partitions, "{topic} partitions");
        let value = |k: &str| resource.get(k).and_then(|e| e.value.clone());
        let (retention, policy) = if days < 0 {
            ("-1".to_string(), "compact")
        } else {
            ((days * DAY_MS).to_string(), "delete")
        };
        assert_eq!(value("retention.ms"), Some(retention), "{topic} retention");
        assert_eq!(value("cleanup.policy").as_deref(), Some(policy), "{topic}");
    }

    let again = vigil_topics(&f, &["apply"]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(stdout(&again), "no changes\n");
}

#[test]
fn a_new_retention_in_the_config_reaches_the_broker_and_keeps_other_settings() {
    let Some(brokers) = kafka_env::brokers() else {
        return;
    };
    let f = Sandbox::new(brokers, "vigil-test");
    f.write_config("");
    assert_eq!(vigil_topics(&f, &["apply"]).status.code(), Some(0));
    // A setting Vigil does not manage, which its AlterConfigs must send back unchanged.
    alter(
        &f,
        "health-events",
        &[
            ("retention.ms", &(30 * DAY_MS).to_string()),
            ("cleanup.policy", "delete"),
            ("segment.ms", "3600000"),
        ],
    );
    assert_eq!(config_value(&f, "health-events", "segment.ms"), "3600000");

    f.write_config(
        "[kafka.topics.health-events]\nretention = \"45d\"\n\n\
         [kafka.topics.alerts]\npartitions = 8\ncleanup-policy = \"compact,delete\"\n",
    );
    let out = vigil_topics(&f, &["apply"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            format!("altered {}: partitions 6 -> 8", f.topic("alerts")),
            format!(
                "altered {}: retention.ms 2592000000 (30d) -> 3888000000 (45d)",
                f.topic("health-events")
            ),
            format!(
                "altered {}: cleanup.policy delete -> compact,delete",
                f.topic("alerts")
            ),
        ],
        "{text}"
    );
    assert_eq!(
        config_value(&f, "health-events", "retention.ms"),
        (45 * DAY_MS).to_string()
    );
    assert_eq!(config_value(&f, "health-events", "segment.ms"), "3600000");
    let (partitions, resource) = describe(&f, "alerts");
    assert_eq!(partitions, 8);
    let policy = resource
        .get("cleanup.policy")
        .and_then(|e| e.value.clone())
        .unwrap_or_default();
    assert!(
        policy == "compact,delete" || policy == "delete,compact",
        "{policy}"
    );
    assert_eq!(stdout(&vigil_topics(&f, &["apply"])), "no changes\n");

    // Fewer partitions in the config than on the broker: reported, never decreased.
    f.write_config(
        "[kafka.topics.health-events]\nretention = \"45d\"\n\n\
         [kafka.topics.alerts]\npartitions = 2\ncleanup-policy = \"compact,delete\"\n",
    );
    let out = vigil_topics(&f, &["apply"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "no changes\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Kafka cannot remove partitions"));
    assert_eq!(describe(&f, "alerts").0, 8);
}

#[test]
fn show_json_reflects_the_broker_and_marks_a_change_made_behind_vigils_back() {
    let Some(brokers) = kafka_env::brokers() else {
        return;
    };
    let f = Sandbox::new(brokers, "vigil-test");
    f.write_config("");

    // Before apply: every topic missing.
    let out = vigil_topics(&f, &["show", "--json"]);
    assert_eq!(out.status.code(), Some(5));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["in_line"], false);
    for t in doc["topics"].as_array().expect("topics") {
        assert_eq!(t["actual"], Value::Null);
        assert_eq!(t["differences"][0]["field"], "exists");
    }

    assert_eq!(vigil_topics(&f, &["apply"]).status.code(), Some(0));
    let out = vigil_topics(&f, &["show", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["in_line"], true);
    let topics = doc["topics"].as_array().expect("topics");
    assert_eq!(topics.len(), TOPICS.len());
    for (t, (key, name)) in topics.iter().zip(TOPICS) {
        assert_eq!(t["key"], key);
        assert_eq!(t["name"], f.topic(name));
        assert_eq!(t["actual"]["partitions"], 6);
        assert_eq!(t["actual"]["replication_factor"], 1);
        assert_eq!(t["actual"]["retention_ms"], t["configured"]["retention_ms"]);
        let policy = if key == "state" { "compact" } else { "delete" };
        assert_eq!(t["actual"]["cleanup_policy"], policy);
        assert_eq!(t["differences"], Value::Array(vec![]));
    }

    // Someone shortens the retention of milestones with another tool.
    alter(
        &f,
        "milestones",
        &[("retention.ms", "3600000"), ("cleanup.policy", "delete")],
    );
    let out = vigil_topics(&f, &["show", "--json"]);
    assert_eq!(out.status.code(), Some(5));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["in_line"], false);
    for t in doc["topics"].as_array().expect("topics") {
        if t["key"] == "milestones" {
            assert_eq!(t["actual"]["retention_ms"], 3_600_000);
            assert_eq!(
                t["differences"],
                serde_json::json!([{
                    "field": "retention.ms",
                    "configured": (30 * DAY_MS).to_string(),
                    "actual": "3600000",
                }])
            );
        } else {
            assert_eq!(t["differences"], Value::Array(vec![]), "{t}");
        }
    }

    // The table marks it too, and apply puts it back.
    let table = stdout(&vigil_topics(&f, &["show"]));
    assert!(
        table.contains(&format!(
            "* {}: retention.ms is 3600000 (1h), configured 2592000000 (30d)",
            f.topic("milestones")
        )),
        "{table}"
    );
    let out = vigil_topics(&f, &["apply"]);
    assert_eq!(
        stdout(&out),
        format!(
            "altered {}: retention.ms 3600000 (1h) -> 2592000000 (30d)\n",
            f.topic("milestones")
        )
    );
    assert_eq!(vigil_topics(&f, &["show", "--json"]).status.code(), Some(0));
}

#[test]
fn an_unreachable_broker_is_a_clear_error_not_a_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("vigil.toml");
    std::fs::write(&config, "[kafka]\nrequest-timeout = \"2s\"\n").expect("write");
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["topics", "apply", "--config"])
        .arg(&config)
        .env("VIGIL_KAFKA_BROKERS", "127.0.0.1:1")
        .output()
        .expect("run vigil");
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(15));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the Kafka brokers 127.0.0.1:1 within 2000 ms"),
        "{err}"
    );
}

#[test]
fn an_unknown_key_in_the_config_is_reported_with_its_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("vigil.toml");
    std::fs::write(&config, "[kafka]\nbrokerz = [\"x:1\"]\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["topics", "show", "--config"])
        .arg(&config)
        .output()
        .expect("run vigil");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:2:1: error: unknown field `brokerz`",
            config.display()
        )),
        "{err}"
    );
}
