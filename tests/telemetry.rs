//! The HTTP listener of `vigil run`: `/metrics` counts what was processed, `/healthz` answers,
//! `/readyz` turns ready once partitions are assigned and state restored.
//!
//! The Kafka test runs against the real broker of `scripts/services up`; without
//! `VIGIL_KAFKA_BROKERS` it is skipped with a message, except with `CI=true`, where that is a
//! failure. The file-mode test needs no service.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use vigil::event::{EventType, Topic};

#[path = "common/kafka.rs"]
mod kafka_env;
#[path = "common/kafka_sandbox.rs"]
mod kafka_sandbox;
use kafka_sandbox::Sandbox;

const PARTITIONS: i32 = 2;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture_lines() -> Vec<String> {
    std::fs::read_to_string(root().join("tests/fixtures/simulated-7-users.jsonl"))
        .expect("the fixture")
        .lines()
        .map(str::to_string)
        .collect()
}

/// A port nobody listens on now (the OS's choice, released at once).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One HTTP/1.0 GET: the status code and the body; `None` while nothing listens.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: vigil\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// The samples of an OpenMetrics text: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of every sample of the family `name` (any labels) whose labels contain `having`.
fn sum(samples: &BTreeMap<String, f64>, name: &str, having: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| {
            (k.as_str() == name || k.starts_with(&format!("{name}{{"))) && k.contains(having)
        })
        .map(|(_, v)| v)
        .sum()
}

/// Polls `check` every 100 ms until it returns `Some`; the limit only keeps a broken run from
/// hanging the test suite.
fn eventually<T>(
    what: &str,
    limit: Duration,
    log: impl Fn() -> String,
    check: impl Fn() -> Option<T>,
) -> T {
    let give_up = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < give_up, "{what}: gave up\n{}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The counts of the last summary line in a log: `events in: N, alerts: N, milestones: N, …`.
fn summary(log: &str) -> BTreeMap<String, u64> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.starts_with("events in: "))
        .unwrap_or_else(|| panic!("no summary line:\n{log}"));
    line.split(", ")
        .filter_map(|part| {
            let (k, v) = part.rsplit_once(": ")?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// A sandbox with Vigil's topics, and the one instance the test runs there.
struct Kafka {
    sandbox: Sandbox,
}

impl Kafka {
    fn new(brokers: String) -> Kafka {
        Kafka {
            sandbox: Sandbox::with_topics(brokers, "vigil-telemetry", PARTITIONS),
        }
    }

    /// `vigil ARGS` in the sandbox, logging as it does by default: the test reads its log.
    fn vigil(&self, args: &[&str]) -> Command {
        let mut c = self.sandbox.vigil(args);
        c.env_remove("VIGIL_LOG")
            .env_remove("RUST_LOG")
            .env_remove("VIGIL_LOG_FORMAT");
        c
    }

    fn log_path(&self) -> PathBuf {
        self.sandbox.dir.path().join("vigil.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Produces the fixture's lines, each on its type's topic, keyed by user.
    fn produce(&self, lines: &[String]) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.sandbox.brokers)
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        for line in lines {
            let json: serde_json::Value = serde_json::from_str(line).expect("a fixture event");
            let ty = json["type"]
                .as_str()
                .and_then(EventType::from_name)
                .expect("a known type");
            let topic = match ty.topic() {
                Topic::HealthEvents => "health-events",
                Topic::BiometricUpdates => "biometric-updates",
            };
            let user = json["user_id"].as_str().expect("a user");
            let topic = self.sandbox.topic(topic);
            let mut record = BaseRecord::to(&topic)
                .key(user.as_bytes())
                .payload(line.as_bytes());
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(_), r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => panic!("produce: {e}"),
                }
            }
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
    }
}

/// Kills the child if the test fails before it is stopped.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn kafka_mode_serves_metrics_health_and_readiness() {
    let Some(brokers) = kafka_env::brokers() else {
        return;
    };
    let k = Kafka::new(brokers);
    let lines = fixture_lines();
    k.produce(&lines);

    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = std::fs::File::create(k.log_path()).expect("log file");
    let rules = root().join("rules");
    let mut child = k.vigil(&[
        "run",
        "--kafka",
        "--rules",
        rules.to_str().expect("utf-8"),
        "--instance-id",
        "telemetry",
        "--no-history",
    ]);
    child
        .env("VIGIL_HTTP_LISTEN", addr.to_string())
        .stdout(Stdio::null())
        .stderr(log);
    let mut running = Running(Some(child.spawn().expect("vigil starts")));
    let limit = Duration::from_secs(120);

    let (status, body) = eventually("/healthz", limit, || k.log(), || get(addr, "/healthz"));
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // Ready once the group has assigned the partitions and the tasks are restored.
    let ready = eventually(
        "/readyz 200",
        limit,
        || k.log(),
        || get(addr, "/readyz").filter(|(status, _)| *status == 200),
    );
    let report: serde_json::Value = serde_json::from_str(&ready.1).expect("JSON readiness");
    assert_eq!(report["ready"], true, "{report}");
    let conditions: BTreeMap<String, String> = report["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        conditions.get("partitions assigned").map(String::as_str),
        Some("ready"),
        "{report}"
    );
    assert_eq!(
        conditions.get("state restored").map(String::as_str),
        Some("ready"),
        "{report}"
    );

    // Every produced event is counted once, by topic and type, when its transaction commits.
    let fed = lines.len() as f64;
    let metrics = eventually(
        "every event counted",
        limit,
        || k.log(),
        || {
            let (_, text) = get(addr, "/metrics")?;
            let s = samples(&text);
            let lag = sum(&s, "vigil_consumer_lag_records", "");
            (sum(&s, "vigil_events_in_total", "") == fed
                && lag == 0.0
                && sum(&s, "vigil_state_bytes", "") > 0.0)
                .then_some((s, text))
        },
    );
    let (s, text) = metrics;
    let health = format!("topic=\"{}health-events\"", k.sandbox.prefix);
    let bio = format!("topic=\"{}biometric-updates\"", k.sandbox.prefix);
    let mut by_type: BTreeMap<String, f64> = BTreeMap::new();
    for line in &lines {
        let json: serde_json::Value = serde_json::from_str(line).expect("event");
        *by_type
            .entry(json["type"].as_str().unwrap_or_default().to_string())
            .or_default() += 1.0;
    }
    for (ty, n) in &by_type {
        assert_eq!(
            sum(&s, "vigil_events_in_total", &format!("type=\"{ty}\"")),
            *n,
            "{ty}:\n{text}"
        );
    }
    assert_eq!(
        sum(&s, "vigil_events_in_total", &health) + sum(&s, "vigil_events_in_total", &bio),
        fed
    );
    assert_eq!(sum(&s, "vigil_events_invalid_total", ""), 0.0);
    assert!(
        sum(&s, "vigil_transactions_total", "outcome=\"commit\"") > 0.0,
        "{text}"
    );
    assert_eq!(
        sum(&s, "vigil_transactions_total", "outcome=\"abort\""),
        0.0
    );
    assert!(
        sum(&s, "vigil_event_processing_seconds_count", "") > 0.0,
        "{text}"
    );
    assert_eq!(
        sum(&s, "vigil_assigned_partitions", ""),
        f64::from(2 * PARTITIONS)
    );
    assert_eq!(sum(&s, "vigil_state_users", ""), 7.0, "seven users: {text}");
    let alerts = sum(&s, "vigil_alerts_total", "");
    let milestones = sum(&s, "vigil_milestones_total", "");
    assert!(alerts > 0.0, "the fixture raises alerts:\n{text}");
    assert!(
        sum(&s, "vigil_alerts_total", "rule=\"sleep_poor_streak\"") > 0.0,
        "by rule:\n{text}"
    );

    // SIGTERM: the run commits and prints its summary, which the counters agree with.
    let mut child = running.0.take().expect("running");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = child.wait().expect("vigil exits");
    assert!(exit.success(), "{exit}\n{}", k.log());
    let log = k.log();
    let counts = summary(&log);
    assert_eq!(counts["events in"] as f64, fed, "{log}");
    assert_eq!(counts["alerts"] as f64, alerts, "{log}\n{text}");
    assert_eq!(counts["milestones"] as f64, milestones, "{log}\n{text}");
    // Logs at info carry no user ids (the fixture's users are sim-0000 … sim-0006).
    assert!(!log.contains("sim-000"), "a user id in the log:\n{log}");
}

#[test]
fn file_mode_serves_metrics_while_it_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let rules = root().join("rules");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(dir.path())
        .args(["run", "--no-history", "--input", "-", "--rules"])
        .arg(&rules)
        .args(["--http", &addr.to_string()])
        .env_remove("VIGIL_HTTP_LISTEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vigil starts");
    let stderr = child.stderr.take().expect("stderr");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let log = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut log) = log.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        })
    };
    let mut running = Running(Some(child));
    let show = || log.lock().map(|l| l.clone()).unwrap_or_default();
    let lines = fixture_lines();
    {
        let child = running.0.as_mut().expect("running");
        let mut stdin = child.stdin.take().expect("stdin");
        for line in &lines {
            writeln!(stdin, "{line}").expect("write");
        }
        // The input stays open: the run is still reading while it is scraped.
        let fed = lines.len() as f64;
        let limit = Duration::from_secs(120);
        let text = eventually("every line counted", limit, show, || {
            let (status, text) = get(addr, "/metrics")?;
            (status == 200 && sum(&samples(&text), "vigil_events_in_total", "") == fed)
                .then_some(text)
        });
        let s = samples(&text);
        assert_eq!(
            sum(&s, "vigil_events_in_total", "topic=\"stdin\""),
            fed,
            "{text}"
        );
        assert!(sum(&s, "vigil_alerts_total", "") > 0.0, "{text}");
        assert_eq!(get(addr, "/healthz").map(|r| r.0), Some(200));
        let (status, body) = get(addr, "/readyz").expect("readyz");
        assert_eq!(status, 200, "{body}");
        drop(stdin);
    }
    let mut child = running.0.take().expect("running");
    let exit = child.wait().expect("vigil exits");
    let _ = reader.join();
    assert!(exit.success(), "{exit}\n{}", show());
    assert!(show().contains("events in: "), "{}", show());
}
