//! `vigil health` as operators run it: the binary, its lines, its JSON and its exit codes, with
//! everything up (the real broker, PostgreSQL and Redis of `scripts/services`), with Redis
//! stopped, with Kafka unreachable, in the embedded mode with a SQLite file, and with
//! `--no-environment`.
//!
//! Without a service the tests that need it are skipped with a message, except with `CI=true`,
//! where that is a failure. Elapsed times are measured only to catch a hang: the bounds are
//! several times the checks' timeouts.

#[path = "common/database.rs"]
mod database;
#[path = "common/kafka.rs"]
mod kafka_env;
#[path = "common/kafka_sandbox.rs"]
mod kafka_sandbox;
#[path = "common/redis.rs"]
mod redis_env;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use kafka_sandbox::Sandbox;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

/// The Redis outage test stops the Redis the others use: it takes this for writing, the
/// others that need Redis for reading.
static REDIS: RwLock<()> = RwLock::new(());

/// Far above any check's timeout (5 s by default): only a hang gets near it.
const HANG: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `vigil ARGS` in `dir` with only the `VIGIL_…` variables given in `env`, and reports
/// how long it took.
fn vigil(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, Duration) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
    command.current_dir(dir).args(args).env("NO_COLOR", "1");
    for (var, _) in std::env::vars() {
        if var.starts_with("VIGIL_") {
            command.env_remove(var);
        }
    }
    for (var, value) in env {
        command.env(var, value);
    }
    let started = Instant::now();
    let out = command.output().expect("vigil runs");
    let elapsed = started.elapsed();
    eprintln!(
        "vigil {args:?}: {} in {elapsed:?}\nstdout:\n{}stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, elapsed)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The check lines of a text report (everything but the summary and the indented notes).
fn check_lines(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("    ")).collect();
    lines[..lines.len().saturating_sub(1)].to_vec()
}

/// The one check line that starts with `mark name`.
fn line<'a>(text: &'a str, mark: &str, name: &str) -> &'a str {
    let prefix = format!("{mark} {name}");
    let found: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(found.len(), 1, "one line `{prefix}…` in:\n{text}");
    found[0]
}

fn rules() -> String {
    root().join("rules").display().to_string()
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A SQLite history in `dir`, migrated, as `vigil run` leaves it.
fn migrated_sqlite(dir: &Path) -> String {
    let url = format!("sqlite:{}", dir.join("history.db").display());
    let (out, _) = vigil(dir, &["migrate", "--history", &url], &[]);
    assert_eq!(out.status.code(), Some(0));
    url
}

// ---------------------------------------------------------------- everything up

/// One test's Kafka topics (under a prefix of its own) and PostgreSQL schema, removed at the end.
struct Environment {
    /// Also the folder `vigil` runs in, and so where it finds `vigil.toml`.
    kafka: Sandbox,
    database: String,
    schema: String,
    base: String,
    redis: String,
}

impl Environment {
    /// `None` when a service is missing (and the test must skip).
    fn new() -> Option<Environment> {
        let brokers = kafka_env::brokers()?;
        let base = database::database_url()?;
        let redis = redis_env::redis_url()?;
        let kafka = Sandbox::new(brokers, "vigil-health");
        let schema = kafka_sandbox::unique("health").replace('-', "_");
        let database = kafka.block_on(database::create_schema(&base, &schema));
        Some(Environment {
            kafka,
            database,
            schema,
            base,
            redis,
        })
    }

    fn vigil(&self, args: &[&str]) -> (Output, Duration) {
        let mut env = self.kafka.env().to_vec();
        env.push(("VIGIL_DATABASE_URL", &self.database));
        env.push(("VIGIL_REDIS_URL", &self.redis));
        vigil(self.kafka.dir.path(), args, &env)
    }
}

impl Drop for Environment {
    // The topics (the health probe's among them) go with the sandbox.
    fn drop(&mut self) {
        let (base, schema) = (self.base.clone(), self.schema.clone());
        self.kafka.block_on(async move {
            if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(&pool)
                    .await;
                pool.close().await;
            }
        });
    }
}

#[test]
fn everything_up_is_healthy_and_every_line_passes() {
    let Some(env) = Environment::new() else {
        return;
    };
    let _shared = REDIS.read().unwrap_or_else(|e| e.into_inner());
    let (applied, _) = env.vigil(&["topics", "apply"]);
    assert_eq!(applied.status.code(), Some(0));
    let (migrated, _) = env.vigil(&["migrate"]);
    assert_eq!(migrated.status.code(), Some(0));

    let (out, elapsed) = env.vigil(&["health", "--kafka", "--rules", &rules()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(elapsed < HANG);
    let lines = check_lines(&text);
    assert!(lines.iter().all(|l| l.starts_with("✓ ")), "{text}");
    line(&text, "✓", "config");
    line(&text, "✓", "rules");
    line(&text, "✓", &format!("kafka broker {}", env.kafka.brokers));
    for topic in ["health-events", "alerts", "alerts-silenced", "vigil-state"] {
        line(
            &text,
            "✓",
            &format!("kafka topic {}{topic} ", env.kafka.prefix),
        );
    }
    let probe = line(
        &text,
        "✓",
        &format!("kafka probe {}vigil-health-probe", env.kafka.prefix),
    );
    assert!(probe.contains("round trip"), "{probe}");
    // Nothing has consumed yet: informational, and still passing.
    let lag = line(
        &text,
        "✓",
        &format!(
            "kafka lag {} {}health-events",
            env.kafka.group, env.kafka.prefix
        ),
    );
    assert!(lag.contains("no committed offsets yet"), "{lag}");
    line(
        &text,
        "✓",
        &format!(
            "kafka lag {}-history {}alerts",
            env.kafka.group, env.kafka.prefix
        ),
    );
    assert!(line(&text, "✓", "history postgres://").contains("PostgreSQL reachable"));
    line(&text, "✓", "history migrations current");
    assert!(line(&text, "✓", &format!("redis {}", env.redis)).contains("PING round trip"));
    // 1 config + 1 rules + 1 broker + 8 topics + 1 probe + 4 lag + 2 history + 1 redis.
    assert_eq!(lines.len(), 19, "{text}");
    assert!(text.ends_with("healthy: 19 ok (exit 0)\n"), "{text}");

    // A second run finds the probe topic there and reuses it.
    let (again, _) = env.vigil(&["health", "--kafka", "--rules", &rules()]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}

#[test]
fn lag_above_the_threshold_and_a_topic_unlike_its_configuration_are_degraded() {
    let Some(env) = Environment::new() else {
        return;
    };
    let _shared = REDIS.read().unwrap_or_else(|e| e.into_inner());
    let (applied, _) = env.vigil(&["topics", "apply"]);
    assert_eq!(applied.status.code(), Some(0));
    let (migrated, _) = env.vigil(&["migrate"]);
    assert_eq!(migrated.status.code(), Some(0));

    // Five records on partition 0 of health-events, the group committed after the second.
    let topic = format!("{}health-events", env.kafka.prefix);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.brokers)
        .create()
        .expect("producer");
    for i in 0..5 {
        producer
            .send(
                BaseRecord::to(&topic)
                    .partition(0)
                    .key("u")
                    .payload(&format!("{i}")),
            )
            .map_err(|(e, _)| e)
            .expect("queued");
    }
    producer.flush(Duration::from_secs(15)).expect("delivered");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.brokers)
        .set("group.id", &env.kafka.group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&topic, 0, Offset::Offset(2))
        .expect("offset");
    // A broker that has just started answers "not coordinator" until its group coordinator
    // is loaded: ask again for a while.
    let started = std::time::Instant::now();
    while let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "committed: {e}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The configuration now wants alerts kept for one day; the broker keeps them three.
    env.kafka
        .write_config("[kafka.topics.alerts]\nretention = \"1d\"\n");
    let (out, elapsed) = env.vigil(&["health", "--kafka", "--rules", &rules(), "--max-lag", "2"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(elapsed < HANG);
    let lag = line(
        &text,
        "!",
        &format!("kafka lag {} {topic} ", env.kafka.group),
    );
    assert!(
        lag.ends_with("lag 3 records, above 2 (1 of 6 partitions committed)"),
        "{lag}"
    );
    let alerts = line(
        &text,
        "!",
        &format!("kafka topic {}alerts ", env.kafka.prefix),
    );
    assert!(
        alerts.ends_with("differs: retention.ms 3d, configured 1d (`vigil topics show`)"),
        "{alerts}"
    );
    assert!(
        text.ends_with("degraded: 2 degraded, 17 ok (exit 1)\n"),
        "{text}"
    );

    // Within the threshold, the same lag passes, with its figure in the JSON.
    let (out, _) = env.vigil(&["health", "--kafka", "--rules", &rules(), "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let lag = doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["kind"] == "kafka.lag" && c["target"] == format!("{} {topic}", env.kafka.group))
        .cloned()
        .expect("the lag check");
    assert_eq!(lag["status"], "ok", "{lag}");
    assert_eq!(lag["figure"]["value"], 3.0, "{lag}");
    assert_eq!(lag["figure"]["unit"], "records", "{lag}");
}

#[test]
fn an_unreachable_database_is_degraded_not_failing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("postgres://vigil:secret@127.0.0.1:{}/vigil", closed_port());
    let (out, elapsed) = vigil(
        dir.path(),
        &["health", "--rules", &rules(), "--history", &url],
        &[],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(elapsed < HANG);
    let db = line(&text, "!", "history postgres://vigil:***@127.0.0.1:");
    assert!(db.contains(" unreachable: "), "{db}");
    assert!(!text.contains("secret"), "the password is hidden: {text}");
    line(
        &text,
        "-",
        "history migrations skipped: the database is unreachable",
    );
}

// ---------------------------------------------------------------- Redis down

#[test]
fn redis_down_is_degraded_and_answers_within_its_timeout() {
    let Some(redis) = redis_env::redis_url() else {
        return;
    };
    let Some(port) = redis_env::outage_port(&redis) else {
        return;
    };
    let _exclusive = REDIS.write().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let history = migrated_sqlite(dir.path());
    let env = [("VIGIL_REDIS_URL", redis.as_str())];
    let args = [
        "health",
        "--rules",
        &rules(),
        "--history",
        &history,
        "--timeout",
        "2s",
    ];

    let restart = redis_env::Restart(port);
    database::services(&["down", "redis"]);
    let (out, elapsed) = vigil(dir.path(), &args, &env);
    restart.now();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(elapsed < HANG, "{elapsed:?}");
    let redis_line = line(&text, "!", &format!("redis {redis} unreachable: "));
    assert!(redis_line.contains("(after "), "{redis_line}");
    // Everything else still passes: only Redis is degraded.
    assert_eq!(
        check_lines(&text)
            .iter()
            .filter(|l| !l.starts_with("✓ "))
            .count(),
        1,
        "{text}"
    );
    assert!(
        text.ends_with("degraded: 1 degraded, 4 ok (exit 1)\n"),
        "{text}"
    );

    // Back up: healthy again.
    let (out, _) = vigil(dir.path(), &args, &env);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    line(&stdout(&out), "✓", &format!("redis {redis} reachable"));
}

// ---------------------------------------------------------------- Kafka down

#[test]
fn kafka_unreachable_is_failing_within_one_timeout_and_skips_what_depends_on_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = migrated_sqlite(dir.path());
    let broker = format!("127.0.0.1:{}", closed_port());
    let (out, elapsed) = vigil(
        dir.path(),
        &[
            "health",
            "--kafka",
            "--rules",
            &rules(),
            "--history",
            &history,
        ],
        &[("VIGIL_KAFKA_BROKERS", &broker)],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(elapsed < HANG, "{elapsed:?}");
    let broker_line = line(&text, "✗", &format!("kafka broker {broker} unreachable: "));
    assert!(broker_line.contains("(after "), "{broker_line}");
    line(&text, "-", "kafka topics skipped: no broker answered");
    line(
        &text,
        "-",
        "kafka probe vigil-health-probe skipped: no broker answered",
    );
    line(&text, "-", "kafka lag skipped: no broker answered");
    // The rest is checked all the same.
    line(&text, "✓", "history migrations current");
    line(&text, "-", "redis not configured");
    assert!(
        text.ends_with("failing: 1 failing, 4 ok, 4 skipped (exit 2)\n"),
        "{text}"
    );
}

// ---------------------------------------------------------------- embedded mode

#[test]
fn embedded_mode_checks_the_sqlite_file_without_creating_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = ["health", "--rules", &rules()];
    let db = dir.path().join("vigil-history.db");

    // No file yet: degraded (run would create it), and health does not.
    let (out, elapsed) = vigil(dir.path(), &args, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(elapsed < HANG);
    line(
        &text,
        "!",
        "history sqlite:vigil-history.db vigil-history.db does not exist yet",
    );
    line(&text, "-", "history migrations skipped: no database file");
    assert!(!db.exists());

    // Created but not migrated: the migrations are not current.
    std::fs::File::create(&db).expect("create an empty file");
    let (out, _) = vigil(dir.path(), &args, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    line(
        &text,
        "✓",
        "history sqlite:vigil-history.db SQLite reachable",
    );
    line(&text, "!", "history migrations not current: pending ");

    let (migrated, _) = vigil(dir.path(), &["migrate"], &[]);
    assert_eq!(migrated.status.code(), Some(0));
    let (out, _) = vigil(dir.path(), &args, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    line(&text, "✓", "config valid: no vigil.toml");
    line(&text, "✓", "history migrations current");
    line(&text, "-", "redis not configured");
    assert!(
        !text.contains("kafka"),
        "no Kafka in the embedded mode: {text}"
    );
}

// ---------------------------------------------------------------- no environment

#[test]
fn no_environment_with_a_bad_rule_file_fails_on_the_rules_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[rule]\nid = \"x\"\nnonsense = 1\n").expect("write");
    let (out, elapsed) = vigil(
        dir.path(),
        &[
            "health",
            "--no-environment",
            "--rules",
            bad.to_str().expect("utf-8 path"),
        ],
        // Unreachable on purpose: --no-environment must not try.
        &[(
            "VIGIL_KAFKA_BROKERS",
            &format!("127.0.0.1:{}", closed_port()),
        )],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(elapsed < HANG);
    line(&text, "✓", "config");
    line(&text, "✗", &format!("rules {} invalid: ", bad.display()));
    assert!(
        text.lines()
            .any(|l| l.starts_with("    ") && l.contains("bad.toml:")),
        "the problems are listed with their file: {text}"
    );
    assert_eq!(
        check_lines(&text).len(),
        2,
        "nothing else is checked: {text}"
    );
    assert!(!dir.path().join("vigil-history.db").exists());
}

#[test]
fn an_invalid_configuration_fails_and_the_environment_is_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("vigil.toml"), "[kafka]\nbrokerz = 1\n").expect("write");
    let (out, _) = vigil(dir.path(), &["health", "--rules", &rules()], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(line(&text, "✗", "config vigil.toml invalid: ").contains("brokerz"));
    line(&text, "✓", "rules");
    line(
        &text,
        "-",
        "environment skipped: the configuration is invalid",
    );
}

// ---------------------------------------------------------------- JSON

#[test]
fn json_is_one_document_with_every_check_and_the_verdict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = migrated_sqlite(dir.path());
    let broker = format!("127.0.0.1:{}", closed_port());
    let (out, _) = vigil(
        dir.path(),
        &[
            "health",
            "--kafka",
            "--json",
            "--rules",
            &rules(),
            "--history",
            &history,
            "--timeout",
            "2s",
        ],
        &[("VIGIL_KAFKA_BROKERS", &broker)],
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(doc["status"], "failing");
    assert_eq!(doc["exit_code"], 2);
    assert_eq!(doc["counts"]["failing"], 1);
    let checks = doc["checks"].as_array().expect("checks");
    for c in checks {
        assert!(c["kind"].is_string() && c["target"].is_string(), "{c}");
        assert!(
            c["detail"].is_string() && c["elapsed_ms"].is_number(),
            "{c}"
        );
        let status = c["status"].as_str().expect("status");
        assert!(
            ["ok", "degraded", "failing", "skipped"].contains(&status),
            "{c}"
        );
    }
    let kinds: Vec<(&str, &str)> = checks
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap_or_default(),
                c["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("config", "ok"),
            ("rules", "ok"),
            ("kafka.broker", "failing"),
            ("kafka.topics", "skipped"),
            ("kafka.probe", "skipped"),
            ("kafka.lag", "skipped"),
            ("history", "ok"),
            ("history.migrations", "ok"),
            ("redis", "skipped"),
        ]
    );
    let rules = &checks[1];
    assert_eq!(rules["figure"]["name"], "rules");
    assert!(rules["figure"]["value"].as_f64() >= Some(8.0), "{rules}");
    let history = &checks[6];
    assert_eq!(history["figure"]["name"], "latency");
    assert_eq!(history["figure"]["unit"], "ms");
    assert_eq!(checks[2]["target"], broker.as_str());
}
