//! `vigil health`: a staged readiness check in the style of `vector validate`.
//!
//! The stages, in order:
//!
//! 1. [`local`]: the configuration loads and the rules compile;
//! 2. the environment (unless `--no-environment`), each dependency on its own thread so that a
//!    dead one costs one timeout, not one per dependency:
//!    - [`kafka`] (production mode only): each bootstrap broker, each configured topic, a
//!      produce → consume round trip through a probe topic, the consumer groups' lag;
//!    - [`history`]: the history database (PostgreSQL or the SQLite file) and its migrations;
//!    - [`redis`]: when `redis.url` is configured, a PING round trip;
//!    - [`instance`]: when a running `vigil run` listens on `http.listen` (or `--instance`),
//!      what its `/readyz` says of its rules (a refused reload is degraded).
//!
//! Every check ends in one [`Check`]: a [`Status`], a sentence, and the figure that decided it.
//! A check that depends on one that failed is [`Status::Skipped`] with the reason, never run.
//!
//! # Severity
//!
//! - **failing** (exit 2): what the engine cannot run without — an invalid configuration or rule
//!   file, no Kafka broker answering, a configured topic missing, the probe round trip failing;
//! - **degraded** (exit 1): what it runs without, catching up later — the history database or
//!   Redis unreachable, migrations not current (`vigil run` applies them), a topic whose
//!   partitions, replication, retention or cleanup policy differ from the configuration, one
//!   bootstrap broker of several not answering, lag or latency above its threshold;
//! - **ok**, and **skipped** (not counted: a skipped check follows one that already decided).

pub mod history;
pub mod instance;
pub mod kafka;
pub mod local;
pub mod redis;
mod report;

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use report::Report;

use crate::config::Config;

/// How one check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not run: a check it depends on did not pass, or there is nothing to check.
    Skipped,
    Ok,
    /// The engine runs, but something needs attention.
    Degraded,
    /// The engine cannot run (or cannot run correctly).
    Failing,
}

impl Status {
    /// The mark at the start of the check's line.
    pub fn symbol(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Degraded => "!",
            Status::Failing => "✗",
            Status::Skipped => "-",
        }
    }
}

/// The number that decided a check: a latency, a lag, a count.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figure {
    /// `latency`, `lag`, `partitions`, `rules`, …
    pub name: &'static str,
    pub value: f64,
    /// `ms`, `records`, … (empty for plain counts).
    pub unit: &'static str,
}

impl Figure {
    pub fn latency(elapsed: Duration) -> Figure {
        Figure {
            name: "latency",
            value: round_ms(elapsed),
            unit: "ms",
        }
    }

    pub fn count(name: &'static str, value: u64, unit: &'static str) -> Figure {
        Figure {
            name,
            // Counts here (records, partitions, rules) stay far below 2^53.
            value: value as f64,
            unit,
        }
    }
}

/// Milliseconds with one decimal, for figures and JSON.
fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// A duration as people read it in a check's line: `3 ms`, `0.4 ms`, `5.0 s`.
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    /// What kind of check: `config`, `rules`, `kafka.broker`, `kafka.topic`, `kafka.probe`,
    /// `kafka.lag`, `history`, `history.migrations`, `redis`.
    pub kind: &'static str,
    /// What it checked: a file, a broker address, a topic, a URL (passwords hidden).
    pub target: String,
    pub status: Status,
    /// A sentence: what was found, or why it was skipped.
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub figure: Option<Figure>,
    /// More lines worth showing: every problem of an invalid rule file, say.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// How long the check took, ms.
    pub elapsed_ms: f64,
}

impl Check {
    /// Starts a check of `kind` on `target`; its outcome comes from the builder.
    pub fn start(kind: &'static str, target: impl Into<String>) -> CheckBuilder {
        CheckBuilder {
            kind,
            target: target.into(),
            started: Instant::now(),
        }
    }

    /// The name shown at the start of its line: `kafka broker 127.0.0.1:9092`.
    pub fn name(&self) -> String {
        let kind = self.kind.replace('.', " ");
        if self.target.is_empty() {
            kind
        } else {
            format!("{kind} {}", self.target)
        }
    }

    pub fn with_figure(mut self, figure: Figure) -> Check {
        self.figure = Some(figure);
        self
    }

    pub fn with_notes(mut self, notes: Vec<String>) -> Check {
        self.notes = notes;
        self
    }
}

/// A check being run: it knows what it checks and since when, so every outcome carries its
/// elapsed time without each check measuring it.
pub struct CheckBuilder {
    kind: &'static str,
    target: String,
    started: Instant,
}

impl CheckBuilder {
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn finish(self, status: Status, detail: impl Into<String>) -> Check {
        Check {
            kind: self.kind,
            target: self.target,
            status,
            detail: detail.into(),
            figure: None,
            notes: Vec::new(),
            elapsed_ms: round_ms(self.started.elapsed()),
        }
    }

    pub fn ok(self, detail: impl Into<String>) -> Check {
        self.finish(Status::Ok, detail)
    }

    pub fn degraded(self, detail: impl Into<String>) -> Check {
        self.finish(Status::Degraded, detail)
    }

    pub fn failing(self, detail: impl Into<String>) -> Check {
        self.finish(Status::Failing, detail)
    }

    pub fn skipped(self, reason: impl Into<String>) -> Check {
        self.finish(Status::Skipped, reason)
    }
}

/// Which dependencies to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Configuration and rules only.
    NoEnvironment,
    /// The embedded mode: the history database, and Redis when configured.
    Embedded,
    /// The production mode: Kafka as well.
    Kafka,
}

/// What `vigil health` was asked.
#[derive(Clone, Debug)]
pub struct Options {
    pub mode: Mode,
    /// `--config`, else `vigil.toml` when it exists.
    pub config: Option<PathBuf>,
    pub rules: Vec<PathBuf>,
    /// `--history URL`, over the configuration's `history.url`.
    pub history: Option<String>,
    /// The longest any one check may take.
    pub timeout: Duration,
    /// Lag (records, per group and topic) above which a check is degraded.
    pub max_lag: u64,
    /// Probe round trip above which the probe is degraded.
    pub max_probe_latency: Duration,
    /// Redis PING round trip above which Redis is degraded.
    pub max_redis_latency: Duration,
    /// The running instance's HTTP address, over the configuration's `http.listen`.
    pub instance: Option<SocketAddr>,
}

/// Default `--timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `--max-lag`: a few seconds of a busy deployment's input; far more than a healthy
/// group keeps unconsumed, far less than a stalled one piles up.
pub const DEFAULT_MAX_LAG: u64 = 10_000;
/// Default `--max-probe-latency`: a produce and a fetch on a healthy cluster take milliseconds;
/// a second means the brokers are struggling.
pub const DEFAULT_MAX_PROBE_LATENCY: Duration = Duration::from_secs(1);
/// Default `--max-redis-latency`: Redis answers a PING in well under a millisecond nearby.
pub const DEFAULT_MAX_REDIS_LATENCY: Duration = Duration::from_millis(100);

/// Runs every check `options` asks for.
pub fn run(options: &Options) -> Report {
    let (config_check, config) = local::config(options.config.as_deref());
    let mut checks = vec![config_check, local::rules(&options.rules)];
    if options.mode == Mode::NoEnvironment {
        return Report::new(checks);
    }
    let Some(config) = config else {
        checks
            .push(Check::start("environment", "").skipped("skipped: the configuration is invalid"));
        return Report::new(checks);
    };
    checks.extend(environment(options, &config));
    Report::new(checks)
}

/// The dependencies, each group on its own thread; their checks in a fixed order.
fn environment(options: &Options, config: &Config) -> Vec<Check> {
    let history_url = options
        .history
        .clone()
        .unwrap_or_else(|| config.history.url.clone());
    std::thread::scope(|scope| {
        let kafka = (options.mode == Mode::Kafka)
            .then(|| scope.spawn(|| kafka::checks(&config.kafka, options)));
        let history = scope.spawn(|| history::checks(&history_url, options.timeout));
        let redis = scope.spawn(|| redis::checks(&config.redis, options));
        let address = options.instance.or(config.http.listen);
        let instance = scope.spawn(move || instance::checks(address, options.timeout));
        let mut checks = Vec::new();
        for (what, handle) in [
            ("kafka", kafka),
            ("history", Some(history)),
            ("redis", Some(redis)),
            ("instance", Some(instance)),
        ] {
            let Some(handle) = handle else {
                continue;
            };
            match handle.join() {
                Ok(found) => checks.extend(found),
                // A check that panicked is a bug of ours; say so instead of taking the report down.
                Err(_) => checks.push(
                    Check::start(what, "")
                        .failing("the check stopped unexpectedly (a bug in Vigil)"),
                ),
            }
        }
        checks
    })
}

/// A runtime for one group's async checks (sqlx, redis and the Kafka admin API are async).
fn runtime() -> Result<tokio::runtime::Runtime, std::io::Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The first line of an error's message chain, lower-cased at the start, for a check's line.
fn sentence(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default().trim();
    if first.is_empty() {
        return "unknown error".to_string();
    }
    // "Connection refused" reads better mid-sentence as "connection refused"; "SQLite …" or
    // "NOAUTH …" must keep their capitals.
    let mut chars = first.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if a.is_uppercase() && b.is_lowercase() => {
            a.to_lowercase().chain(first.chars().skip(1)).collect()
        }
        _ => first.to_string(),
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Opens (and closes) a TCP connection to `address` (`host:port`), trying each address the
/// name resolves to. Clients that retry until their deadline (librdkafka, sqlx's pool) would
/// say only "timed out" where this says "connection refused" or "no such host", at once.
fn connect(address: &str, deadline: Instant) -> Result<(), String> {
    let addresses: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address}: {}", sentence(&e)))?
        .collect();
    let mut last = format!("{address} resolves to no address");
    for a in addresses {
        let left = remaining(deadline);
        if left.is_zero() {
            return Err(format!("no connection within the timeout ({last})"));
        }
        match TcpStream::connect_timeout(&a, left) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = format!("no answer from {a}");
            }
            Err(e) => last = sentence(&e),
        }
    }
    Err(last)
}
