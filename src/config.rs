//! `vigil.toml`: the configuration of Vigil: Kafka for the production mode, and the history
//! database (both modes).
//!
//! Three layers, each overriding the one before:
//!
//! 1. built-in defaults ([`Config::default`]), the values documented in `vigil.example.toml`;
//! 2. the file: `--config PATH`, or `vigil.toml` in the working directory when it exists;
//! 3. environment variables ([`ENV_VARS`]): `VIGIL_KAFKA_BROKERS`, `VIGIL_KAFKA_GROUP`, …
//!
//! The file is strict: unknown keys are rejected with file:line:column, durations are strings
//! such as `"30d"` (see [`parse_duration`]), and every problem found after parsing is reported
//! at once. A file only names what it changes; everything else keeps its default.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::rules::diagnostic::Diagnostic;
use crate::rules::duration::{format_duration, parse_duration, parse_duration_or_zero};

/// The file read when `--config` is not given, if it exists in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "vigil.toml";

/// Environment variables read over the file, with what they set.
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "VIGIL_KAFKA_BROKERS",
        "kafka.brokers, comma-separated host:port list",
    ),
    ("VIGIL_KAFKA_CLIENT_ID", "kafka.client-id"),
    ("VIGIL_KAFKA_GROUP", "kafka.group"),
    ("VIGIL_KAFKA_TOPIC_PREFIX", "kafka.topic-prefix"),
    ("VIGIL_INSTANCE_ID", "kafka.streaming.instance-id"),
    ("VIGIL_DATABASE_URL", "history.url"),
    ("VIGIL_REDIS_URL", "redis.url"),
    ("VIGIL_HTTP_LISTEN", "http.listen"),
];

/// The whole configuration, all layers applied.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    pub kafka: KafkaConfig,
    pub history: HistoryConfig,
    pub redis: RedisConfig,
    pub http: HttpConfig,
}

/// The state several instances share and downstream services read: per-user status, silences,
/// cooldown and dedup keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS). `None`: the
    /// embedded default, where this state lives in the process and silences in the history
    /// database.
    pub url: Option<String>,
    /// Put before every key Vigil writes, so that several deployments can share one Redis.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            key_prefix: "vigil:".to_string(),
        }
    }
}

/// The HTTP listener of `vigil run`: `/metrics`, `/healthz`, `/readyz`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HttpConfig {
    /// `host:port` to listen on; `None`: no listener.
    pub listen: Option<std::net::SocketAddr>,
}

/// Where alerts and milestones are stored (see [`crate::history`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HistoryConfig {
    /// `postgres://user:password@host:port/db` in production, or `sqlite:PATH` (the file is
    /// created when missing); [`crate::history::DEFAULT_URL`] by default.
    pub url: String,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            url: crate::history::DEFAULT_URL.to_string(),
        }
    }
}

/// How Vigil reaches Kafka, and the topics it uses.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port` each.
    pub brokers: Vec<String>,
    /// The client id the brokers see in their logs and quotas.
    pub client_id: String,
    /// The consumer group of `vigil run` instances that share the input partitions.
    pub group: String,
    /// Put before every topic name, e.g. `"staging."`; empty by default.
    pub topic_prefix: String,
    /// Longest wait for one request to the brokers (admin calls, metadata), in milliseconds.
    pub request_timeout_ms: i64,
    /// Passed to librdkafka as they are (security, TLS, SASL, tuning), after Vigil's own
    /// settings, so they win: `security.protocol`, `sasl.mechanism`, `ssl.ca.location`, …
    pub librdkafka: BTreeMap<String, String>,
    pub topics: Topics,
    pub streaming: StreamingConfig,
}

/// How `vigil run --kafka` consumes, commits and keeps its state.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct StreamingConfig {
    /// This instance's stable identity within the group: its transactional id (so a restarted
    /// instance aborts what its previous run left open) and its static group membership (so a
    /// restart does not move partitions). `None`: the host name.
    pub instance_id: Option<String>,
    /// How often a transaction (outputs, state changes, consumed offsets) starts committing,
    /// ms. Outputs become visible to `read_committed` consumers when it commits, so this
    /// bounds the event-to-alert latency from below. Commits run beside processing (one at a
    /// time), so a short interval costs the loop little; its price is transactions on the
    /// brokers (BENCHMARKS.md: 20 ms vs 100 ms).
    pub commit_interval_ms: i64,
    /// How long a task waits for one of its input partitions that has nothing buffered and
    /// is read to its end, for records its producers may still send, before processing the
    /// other anyway (Kafka Streams' `max.task.idle.ms`), ms. A partition with records on the
    /// broker not yet fetched is always waited for.
    pub max_task_idle_ms: i64,
    /// `transaction.timeout.ms`: how long the broker waits before aborting the transaction
    /// of an instance that died and never came back.
    pub transaction_timeout_ms: i64,
    /// Threads that process this instance's tasks (decoding, the engine, state changes) in
    /// parallel, like Kafka Streams' `num.stream.threads` but under one consumer and one
    /// transaction. `None`: one per core. A task is processed by one thread at a time, so more
    /// threads than assigned partitions are idle.
    pub threads: Option<usize>,
    /// Two transactional producers, used in turn: while one commits a transaction, the
    /// outputs that arise go into the next one on the other, instead of waiting for the
    /// commit to end (BENCHMARKS.md: the event-to-alert p99). The second producer's
    /// transactional id is the instance's with `#1` appended. `false`: one producer.
    pub pipelined_transactions: bool,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            instance_id: None,
            commit_interval_ms: 20,
            max_task_idle_ms: 0,
            transaction_timeout_ms: 30_000,
            threads: None,
            pipelined_transactions: true,
        }
    }
}

/// The topics Vigil reads and writes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Topics {
    pub health_events: TopicConfig,
    pub biometric_updates: TopicConfig,
    pub alerts: TopicConfig,
    pub milestones: TopicConfig,
    pub dead_letter: TopicConfig,
    pub late_events: TopicConfig,
    /// Alerts that matched a silence: computed and stored in the history, kept off `alerts`.
    pub silenced: TopicConfig,
    /// The compacted changelog of the engine's state, one partition per input partition.
    pub state: TopicConfig,
}

/// One topic as Vigil wants it on the brokers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TopicConfig {
    /// Name without [`KafkaConfig::topic_prefix`].
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// `retention.ms`.
    pub retention_ms: i64,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
}

/// Kafka's `cleanup.policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CleanupPolicy {
    #[serde(rename = "delete")]
    Delete,
    #[serde(rename = "compact")]
    Compact,
    #[serde(rename = "compact,delete")]
    CompactDelete,
}

impl CleanupPolicy {
    /// The value Kafka stores.
    pub fn as_kafka(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }

    /// Reads a broker's value, in either order (`delete,compact` is `compact,delete`).
    pub fn from_kafka(value: &str) -> Option<CleanupPolicy> {
        let mut parts: Vec<&str> = value.split(',').map(str::trim).collect();
        parts.sort_unstable();
        parts.dedup();
        match parts.as_slice() {
            ["delete"] => Some(CleanupPolicy::Delete),
            ["compact"] => Some(CleanupPolicy::Compact),
            ["compact", "delete"] => Some(CleanupPolicy::CompactDelete),
            _ => None,
        }
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_kafka())
    }
}

const DAY_MS: i64 = 86_400_000;
/// Default partitions of every topic: room for six consumers in one group.
pub const DEFAULT_PARTITIONS: i32 = 6;

impl TopicConfig {
    fn new(name: &str, retention_days: i64) -> Self {
        TopicConfig {
            name: name.to_string(),
            partitions: DEFAULT_PARTITIONS,
            replication_factor: 1,
            retention_ms: retention_days * DAY_MS,
            cleanup_policy: CleanupPolicy::Delete,
        }
    }
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            health_events: TopicConfig::new("health-events", 30),
            biometric_updates: TopicConfig::new("biometric-updates", 7),
            alerts: TopicConfig::new("alerts", 3),
            milestones: TopicConfig::new("milestones", 30),
            dead_letter: TopicConfig::new("dead-letter", 14),
            late_events: TopicConfig::new("late-events", 14),
            silenced: TopicConfig::new("alerts-silenced", 3),
            state: TopicConfig {
                retention_ms: -1,
                cleanup_policy: CleanupPolicy::Compact,
                ..TopicConfig::new("vigil-state", 0)
            },
        }
    }
}

impl Topics {
    /// Every topic with its key in the file (`health-events`, …), in a fixed order.
    pub fn all(&self) -> [(&'static str, &TopicConfig); 8] {
        [
            ("health-events", &self.health_events),
            ("biometric-updates", &self.biometric_updates),
            ("alerts", &self.alerts),
            ("milestones", &self.milestones),
            ("dead-letter", &self.dead_letter),
            ("late-events", &self.late_events),
            ("silenced", &self.silenced),
            ("state", &self.state),
        ]
    }

    fn all_mut(&mut self) -> [(&'static str, &mut TopicConfig); 8] {
        [
            ("health-events", &mut self.health_events),
            ("biometric-updates", &mut self.biometric_updates),
            ("alerts", &mut self.alerts),
            ("milestones", &mut self.milestones),
            ("dead-letter", &mut self.dead_letter),
            ("late-events", &mut self.late_events),
            ("silenced", &mut self.silenced),
            ("state", &mut self.state),
        ]
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: vec!["127.0.0.1:9092".to_string()],
            client_id: "vigil".to_string(),
            group: "vigil".to_string(),
            topic_prefix: String::new(),
            request_timeout_ms: 10_000,
            librdkafka: BTreeMap::new(),
            topics: Topics::default(),
            streaming: StreamingConfig::default(),
        }
    }
}

impl KafkaConfig {
    /// The name of a topic on the brokers: the prefix, then the topic's name.
    pub fn topic_name(&self, topic: &TopicConfig) -> String {
        format!("{}{}", self.topic_prefix, topic.name)
    }

    /// `bootstrap.servers` for librdkafka.
    pub fn bootstrap_servers(&self) -> String {
        self.brokers.join(",")
    }
}

// ---------------------------------------------------------------- the file layer

/// What a file may say: every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileLayer {
    kafka: Option<KafkaLayer>,
    history: Option<HistoryLayer>,
    redis: Option<RedisLayer>,
    http: Option<HttpLayer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RedisLayer {
    url: Option<Spanned<String>>,
    key_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HttpLayer {
    listen: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HistoryLayer {
    url: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct KafkaLayer {
    brokers: Option<Spanned<Vec<String>>>,
    client_id: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    topic_prefix: Option<String>,
    request_timeout: Option<Spanned<String>>,
    librdkafka: Option<BTreeMap<String, Spanned<String>>>,
    topics: Option<TopicsLayer>,
    streaming: Option<StreamingLayer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct StreamingLayer {
    instance_id: Option<Spanned<String>>,
    commit_interval: Option<Spanned<String>>,
    max_task_idle: Option<Spanned<String>>,
    transaction_timeout: Option<Spanned<String>>,
    threads: Option<Spanned<i64>>,
    pipelined_transactions: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TopicsLayer {
    health_events: Option<TopicLayer>,
    biometric_updates: Option<TopicLayer>,
    alerts: Option<TopicLayer>,
    milestones: Option<TopicLayer>,
    dead_letter: Option<TopicLayer>,
    late_events: Option<TopicLayer>,
    silenced: Option<TopicLayer>,
    state: Option<TopicLayer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TopicLayer {
    name: Option<Spanned<String>>,
    partitions: Option<Spanned<i64>>,
    replication_factor: Option<Spanned<i64>>,
    retention: Option<Spanned<String>>,
    cleanup_policy: Option<Spanned<String>>,
}

/// Why the configuration could not be loaded.
#[derive(Debug)]
pub enum ConfigError {
    /// The file named by `--config` could not be read.
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file has problems, each with its span.
    Invalid {
        source: String,
        diagnostics: Vec<Diagnostic>,
    },
    /// An environment variable has a value that cannot be used.
    Env { var: &'static str, message: String },
    /// The layers combined give an unusable configuration (e.g. two topics with one name).
    Combined(Vec<String>),
}

impl ConfigError {
    /// Every problem, with a source snippet for file problems.
    pub fn render(&self, color: bool) -> String {
        match self {
            ConfigError::Invalid {
                source,
                diagnostics,
            } => diagnostics
                .iter()
                .map(|d| d.render(source, color))
                .collect(),
            other => format!("{other}\n"),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, error } => {
                write!(
                    f,
                    "cannot read the configuration {}: {error}",
                    path.display()
                )
            }
            ConfigError::Invalid {
                source,
                diagnostics,
            } => {
                for (i, d) in diagnostics.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    let (line, column) = d.line_col(source);
                    write!(f, "{}:{line}:{column}: {}", d.file.display(), d.message)?;
                    if let Some(help) = &d.help {
                        write!(f, " (help: {help})")?;
                    }
                }
                Ok(())
            }
            ConfigError::Env { var, message } => write!(f, "environment variable {var}: {message}"),
            ConfigError::Combined(problems) => f.write_str(&problems.join("\n")),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Defaults, then the file (`path`, or `vigil.toml` when it exists), then the process's
    /// environment. Returns the configuration and the file it read, if any.
    pub fn load(path: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        let file = match path {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
        };
        let mut config = Config::default();
        if let Some(file) = &file {
            let text = std::fs::read_to_string(file).map_err(|error| ConfigError::Read {
                path: file.clone(),
                error,
            })?;
            config.apply_file(file, &text)?;
        }
        config.apply_env(|var| std::env::var(var).ok())?;
        config.validate()?;
        Ok((config, file))
    }

    /// Parses `text` (the contents of `file`) and applies what it says over `self`.
    pub fn apply_file(&mut self, file: &Path, text: &str) -> Result<(), ConfigError> {
        let layer: FileLayer = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_string();
            let mut d = Diagnostic::new(file, e.span().unwrap_or(0..0), message.clone());
            if message.starts_with("unknown field") {
                d = d.help("the keys are documented in vigil.example.toml");
            }
            ConfigError::Invalid {
                source: text.to_string(),
                diagnostics: vec![d],
            }
        })?;
        let mut problems = Vec::new();
        if let Some(kafka) = layer.kafka {
            self.kafka.apply(file, kafka, &mut problems);
        }
        if let Some(url) = layer.history.and_then(|h| h.url) {
            match crate::history::Backend::from_url(url.get_ref()) {
                Ok(_) => self.history.url = url.into_inner(),
                Err(_) => problems.push(
                    Diagnostic::new(file, url.span(), "history.url has an unknown scheme")
                        .help("write \"postgres://user:password@host:5432/db\" or \"sqlite:PATH\""),
                ),
            }
        }
        if let Some(redis) = layer.redis {
            if let Some(url) = redis.url {
                match check_redis_url(url.get_ref()) {
                    Ok(()) => self.redis.url = Some(url.into_inner()),
                    Err(why) => problems.push(
                        Diagnostic::new(file, url.span(), format!("redis.url {why}"))
                            .help("write \"redis://host:6379\" or \"rediss://host:6380/0\""),
                    ),
                }
            }
            if let Some(prefix) = redis.key_prefix {
                self.redis.key_prefix = prefix;
            }
        }
        if let Some(listen) = layer.http.and_then(|h| h.listen) {
            match listen.get_ref().parse() {
                Ok(address) => self.http.listen = Some(address),
                Err(_) => problems.push(
                    Diagnostic::new(file, listen.span(), "http.listen is not host:port")
                        .help("write an IP address and a port, e.g. \"127.0.0.1:9464\""),
                ),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                source: text.to_string(),
                diagnostics: problems,
            })
        }
    }

    /// Applies the `VIGIL_…` variables that `get` returns (the process environment in
    /// [`Config::load`]; a map in tests).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(value) = get("VIGIL_KAFKA_BROKERS") {
            let brokers: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(String::from)
                .collect();
            if brokers.is_empty() {
                return Err(ConfigError::Env {
                    var: "VIGIL_KAFKA_BROKERS",
                    message: "no broker in it; write host:port[,host:port…]".to_string(),
                });
            }
            self.kafka.brokers = brokers;
        }
        for (var, target) in [
            ("VIGIL_KAFKA_CLIENT_ID", &mut self.kafka.client_id),
            ("VIGIL_KAFKA_GROUP", &mut self.kafka.group),
        ] {
            if let Some(value) = get(var) {
                if value.trim().is_empty() {
                    return Err(ConfigError::Env {
                        var,
                        message: "empty; unset it to keep the file's value".to_string(),
                    });
                }
                *target = value.trim().to_string();
            }
        }
        if let Some(value) = get("VIGIL_KAFKA_TOPIC_PREFIX") {
            self.kafka.topic_prefix = value;
        }
        if let Some(value) = get("VIGIL_INSTANCE_ID") {
            if value.trim().is_empty() {
                return Err(ConfigError::Env {
                    var: "VIGIL_INSTANCE_ID",
                    message: "empty; unset it to keep the file's value".to_string(),
                });
            }
            self.kafka.streaming.instance_id = Some(value.trim().to_string());
        }
        if let Some(value) = get("VIGIL_DATABASE_URL") {
            let value = value.trim();
            if let Err(e) = crate::history::Backend::from_url(value) {
                return Err(ConfigError::Env {
                    var: "VIGIL_DATABASE_URL",
                    message: e.to_string(),
                });
            }
            self.history.url = value.to_string();
        }
        if let Some(value) = get("VIGIL_REDIS_URL") {
            let value = value.trim();
            if let Err(why) = check_redis_url(value) {
                return Err(ConfigError::Env {
                    var: "VIGIL_REDIS_URL",
                    message: why.to_string(),
                });
            }
            self.redis.url = Some(value.to_string());
        }
        if let Some(value) = get("VIGIL_HTTP_LISTEN") {
            match value.trim().parse() {
                Ok(address) => self.http.listen = Some(address),
                Err(_) => {
                    return Err(ConfigError::Env {
                        var: "VIGIL_HTTP_LISTEN",
                        message: "not host:port; write e.g. 127.0.0.1:9464".to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Checks what only the combination of layers can break.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (key, topic) in self.kafka.topics.all() {
            let name = self.kafka.topic_name(topic);
            if let Err(why) = check_topic_name(&name) {
                problems.push(format!("topic {key}: the name `{name}` {why}"));
            }
            if let Some(other) = seen.insert(name.clone(), key) {
                problems.push(format!(
                    "topics {other} and {key} have the same name `{name}`; each needs its own"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Combined(problems))
        }
    }
}

impl KafkaConfig {
    fn apply(&mut self, file: &Path, layer: KafkaLayer, problems: &mut Vec<Diagnostic>) {
        if let Some(brokers) = layer.brokers {
            if brokers.get_ref().iter().all(|b| b.trim().is_empty()) {
                problems.push(
                    Diagnostic::new(file, brokers.span(), "no broker given")
                        .help("write brokers = [\"host:port\", …]"),
                );
            } else {
                self.brokers = brokers.into_inner();
            }
        }
        for (value, target, what) in [
            (layer.client_id, &mut self.client_id, "client-id"),
            (layer.group, &mut self.group, "group"),
        ] {
            if let Some(value) = value {
                if value.get_ref().trim().is_empty() {
                    problems.push(Diagnostic::new(
                        file,
                        value.span(),
                        format!("{what} is empty"),
                    ));
                } else {
                    *target = value.into_inner();
                }
            }
        }
        if let Some(prefix) = layer.topic_prefix {
            self.topic_prefix = prefix;
        }
        if let Some(timeout) = layer.request_timeout {
            if let Some(ms) = duration_setting(file, &timeout, "request-timeout", problems) {
                self.request_timeout_ms = ms;
            }
        }
        if let Some(settings) = layer.librdkafka {
            for (key, value) in settings {
                if OWN_LIBRDKAFKA_KEYS.contains(&key.as_str()) {
                    problems.push(
                        Diagnostic::new(
                            file,
                            value.span(),
                            format!("librdkafka `{key}` is set by Vigil itself"),
                        )
                        .help("use kafka.brokers, kafka.client-id or kafka.group instead"),
                    );
                } else {
                    self.librdkafka.insert(key, value.into_inner());
                }
            }
        }
        if let Some(streaming) = layer.streaming {
            self.streaming.apply(file, streaming, problems);
        }
        if let Some(topics) = layer.topics {
            let layers = [
                topics.health_events,
                topics.biometric_updates,
                topics.alerts,
                topics.milestones,
                topics.dead_letter,
                topics.late_events,
                topics.silenced,
                topics.state,
            ];
            for ((key, topic), layer) in self.topics.all_mut().into_iter().zip(layers) {
                if let Some(layer) = layer {
                    topic.apply(file, key, layer, problems);
                }
            }
        }
    }
}

impl StreamingConfig {
    fn apply(&mut self, file: &Path, layer: StreamingLayer, problems: &mut Vec<Diagnostic>) {
        if let Some(id) = layer.instance_id {
            if id.get_ref().trim().is_empty() {
                problems.push(Diagnostic::new(
                    file,
                    id.span(),
                    "streaming.instance-id is empty",
                ));
            } else {
                self.instance_id = Some(id.into_inner());
            }
        }
        if let Some(pipelined) = layer.pipelined_transactions {
            self.pipelined_transactions = pipelined;
        }
        if let Some(threads) = layer.threads {
            match usize::try_from(*threads.get_ref()) {
                Ok(n) if (1..=MAX_THREADS).contains(&n) => self.threads = Some(n),
                _ => problems.push(Diagnostic::new(
                    file,
                    threads.span(),
                    format!("streaming.threads must be between 1 and {MAX_THREADS}"),
                )),
            }
        }
        // Not waiting at all is a valid `max-task-idle` (and its default).
        if let Some(value) = layer.max_task_idle {
            match parse_duration_or_zero(value.get_ref()) {
                Ok(ms) => self.max_task_idle_ms = ms,
                Err(e) => problems.push(Diagnostic::new(
                    file,
                    value.span(),
                    format!("streaming.max-task-idle: {e}"),
                )),
            }
        }
        for (value, target, what) in [
            (
                layer.commit_interval,
                &mut self.commit_interval_ms,
                "streaming.commit-interval",
            ),
            (
                layer.transaction_timeout,
                &mut self.transaction_timeout_ms,
                "streaming.transaction-timeout",
            ),
        ] {
            if let Some(value) = value {
                if let Some(ms) = duration_setting(file, &value, what, problems) {
                    *target = ms;
                }
            }
        }
    }
}

/// More processing threads than this is a typo, not a machine.
const MAX_THREADS: usize = 256;

impl StreamingConfig {
    /// The processing threads to run: as configured, else one per core.
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

/// librdkafka settings that have keys of their own in `[kafka]`.
const OWN_LIBRDKAFKA_KEYS: &[&str] = &["bootstrap.servers", "metadata.broker.list", "client.id"];

impl TopicConfig {
    fn apply(&mut self, file: &Path, key: &str, layer: TopicLayer, problems: &mut Vec<Diagnostic>) {
        if let Some(name) = layer.name {
            match check_topic_name(name.get_ref()) {
                Ok(()) => self.name = name.into_inner(),
                Err(why) => problems.push(Diagnostic::new(
                    file,
                    name.span(),
                    format!("topics.{key}.name `{}` {why}", name.get_ref()),
                )),
            }
        }
        for (value, target, what) in [
            (layer.partitions, &mut self.partitions, "partitions"),
            (
                layer.replication_factor,
                &mut self.replication_factor,
                "replication-factor",
            ),
        ] {
            if let Some(value) = value {
                match i32::try_from(*value.get_ref()) {
                    Ok(n) if n >= 1 => *target = n,
                    _ => problems.push(
                        Diagnostic::new(
                            file,
                            value.span(),
                            format!("topics.{key}.{what} must be at least 1"),
                        )
                        .help("a whole number such as 1, 3 or 6"),
                    ),
                }
            }
        }
        if let Some(retention) = layer.retention {
            let what = format!("topics.{key}.retention");
            if retention.get_ref().trim() == "forever" {
                self.retention_ms = -1;
            } else if let Some(ms) = duration_setting(file, &retention, &what, problems) {
                self.retention_ms = ms;
            }
        }
        if let Some(policy) = layer.cleanup_policy {
            match CleanupPolicy::from_kafka(policy.get_ref()) {
                Some(p) => self.cleanup_policy = p,
                None => problems.push(
                    Diagnostic::new(
                        file,
                        policy.span(),
                        format!(
                            "topics.{key}.cleanup-policy `{}` is not a policy",
                            policy.get_ref()
                        ),
                    )
                    .help("one of \"delete\", \"compact\", \"compact,delete\""),
                ),
            }
        }
    }
}

/// Kafka's rule for topic names: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
/// A duration setting such as `"30d"`; a bad one is recorded in `problems` with its span.
fn duration_setting(
    file: &Path,
    value: &Spanned<String>,
    what: &str,
    problems: &mut Vec<Diagnostic>,
) -> Option<i64> {
    parse_duration(value.get_ref())
        .map_err(|e| problems.push(Diagnostic::new(file, value.span(), format!("{what}: {e}"))))
        .ok()
}

/// A Redis URL the `redis` crate will accept: scheme and host, checked without connecting.
fn check_redis_url(url: &str) -> Result<(), &'static str> {
    if !(url.starts_with("redis://")
        || url.starts_with("rediss://")
        || url.starts_with("redis+unix://")
        || url.starts_with("unix://"))
    {
        return Err("has an unknown scheme (redis://, rediss://, redis+unix:// or unix://)");
    }
    redis::parse_redis_url(url)
        .map(|_| ())
        .ok_or("is not a valid URL")
}

fn check_topic_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > 249 {
        return Err("is longer than Kafka's 249 characters");
    }
    if name == "." || name == ".." {
        return Err("is not allowed by Kafka");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err("may only have letters, digits, `.`, `_` and `-`");
    }
    Ok(())
}

/// A retention as people read it: `30d`, or the milliseconds when it has no shorter form.
pub fn describe_retention(ms: i64) -> String {
    if ms < 0 {
        "forever".to_string()
    } else if ms == 0 {
        "0ms".to_string()
    } else {
        format_duration(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from_file(text: &str) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        c.apply_file(Path::new("vigil.toml"), text)?;
        Ok(c)
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_the_documented_retentions() {
        let c = Config::default();
        let t = &c.kafka.topics;
        assert_eq!(t.health_events.retention_ms, 30 * DAY_MS);
        assert_eq!(t.biometric_updates.retention_ms, 7 * DAY_MS);
        assert_eq!(t.alerts.retention_ms, 3 * DAY_MS);
        assert_eq!(t.milestones.retention_ms, 30 * DAY_MS);
        assert_eq!(t.dead_letter.retention_ms, 14 * DAY_MS);
        assert_eq!(t.late_events.retention_ms, 14 * DAY_MS);
        assert_eq!(t.state.retention_ms, -1);
        assert_eq!(t.state.cleanup_policy, CleanupPolicy::Compact);
        for (key, topic) in t.all() {
            assert_eq!(topic.partitions, DEFAULT_PARTITIONS);
            assert_eq!(topic.replication_factor, 1);
            if key != "state" {
                assert_eq!(topic.cleanup_policy, CleanupPolicy::Delete);
            }
        }
        c.validate().expect("defaults are valid");
    }

    #[test]
    fn the_example_file_states_the_defaults() {
        let text = include_str!("../vigil.example.toml");
        let c = from_file(text).unwrap_or_else(|e| panic!("{e}"));
        let mut expected = Config::default();
        expected.kafka.librdkafka = c.kafka.librdkafka.clone();
        assert_eq!(c, expected);
    }

    #[test]
    fn redis_and_http_from_file_and_environment() {
        let c = from_file(
            "[redis]\nurl = \"redis://127.0.0.1:6380/2\"\nkey-prefix = \"staging:\"\n\
             [http]\nlisten = \"127.0.0.1:9464\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.redis.url.as_deref(), Some("redis://127.0.0.1:6380/2"));
        assert_eq!(c.redis.key_prefix, "staging:");
        assert_eq!(c.http.listen, Some("127.0.0.1:9464".parse().unwrap()));
        let mut c = Config::default();
        assert_eq!(c.redis.url, None);
        assert_eq!(c.http.listen, None);
        c.apply_env(env(&[
            ("VIGIL_REDIS_URL", "redis://cache:6379"),
            ("VIGIL_HTTP_LISTEN", "0.0.0.0:9000"),
        ]))
        .unwrap();
        assert_eq!(c.redis.url.as_deref(), Some("redis://cache:6379"));
        assert_eq!(c.http.listen, Some("0.0.0.0:9000".parse().unwrap()));
        let bad = Config::default().apply_env(env(&[("VIGIL_REDIS_URL", "http://cache")]));
        assert!(bad.unwrap_err().to_string().contains("VIGIL_REDIS_URL"));
        let bad = Config::default().apply_env(env(&[("VIGIL_HTTP_LISTEN", "localhost")]));
        assert!(bad.unwrap_err().to_string().contains("VIGIL_HTTP_LISTEN"));
    }

    #[test]
    fn bad_redis_and_http_values_are_reported_with_their_place() {
        let err = from_file("[redis]\nurl = \"mysql://x\"\n[http]\nlisten = \"nowhere\"\n")
            .unwrap_err()
            .render(false);
        assert!(err.contains("redis.url has an unknown scheme"), "{err}");
        assert!(err.contains(":2:7"), "{err}");
        assert!(err.contains("http.listen is not host:port"), "{err}");
        assert!(err.contains(":4:10"), "{err}");
    }

    #[test]
    fn processing_threads_default_to_the_cores_and_are_checked() {
        let c = Config::default();
        assert_eq!(c.kafka.streaming.threads, None);
        assert!(c.kafka.streaming.threads() >= 1);
        let c = from_file("[kafka.streaming]\nthreads = 3\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.kafka.streaming.threads, Some(3));
        assert_eq!(c.kafka.streaming.threads(), 3);
        for bad in ["0", "-1", "100000"] {
            let err = from_file(&format!("[kafka.streaming]\nthreads = {bad}\n"))
                .unwrap_err()
                .render(false);
            assert!(
                err.contains("streaming.threads must be between 1 and 256"),
                "{err}"
            );
            assert!(err.contains(":2:11"), "{err}");
        }
    }

    #[test]
    fn pipelined_transactions_are_on_unless_turned_off() {
        assert!(Config::default().kafka.streaming.pipelined_transactions);
        let c = from_file("[kafka.streaming]\npipelined-transactions = false\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.kafka.streaming.pipelined_transactions);
        let err = from_file("[kafka.streaming]\npipelined-transactions = \"no\"\n")
            .unwrap_err()
            .render(false);
        assert!(err.contains(":2:26"), "{err}");
    }

    #[test]
    fn the_file_overrides_only_what_it_names() {
        let c = from_file(
            r#"
            [kafka]
            brokers = ["k1:9092", "k2:9092"]
            group = "vigil-prod"
            topic-prefix = "prod."
            request-timeout = "5s"

            [kafka.librdkafka]
            "security.protocol" = "SASL_SSL"
            "sasl.mechanism" = "SCRAM-SHA-512"

            [kafka.topics.alerts]
            retention = "1d"
            partitions = 12

            [kafka.topics.dead-letter]
            name = "vigil-dlq"
            cleanup-policy = "compact,delete"
            "#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let k = &c.kafka;
        assert_eq!(k.bootstrap_servers(), "k1:9092,k2:9092");
        assert_eq!(k.group, "vigil-prod");
        assert_eq!(k.client_id, "vigil");
        assert_eq!(k.request_timeout_ms, 5_000);
        assert_eq!(k.librdkafka["security.protocol"], "SASL_SSL");
        assert_eq!(k.topics.alerts.retention_ms, DAY_MS);
        assert_eq!(k.topics.alerts.partitions, 12);
        assert_eq!(k.topics.alerts.replication_factor, 1);
        assert_eq!(k.topic_name(&k.topics.alerts), "prod.alerts");
        assert_eq!(k.topic_name(&k.topics.dead_letter), "prod.vigil-dlq");
        assert_eq!(
            k.topics.dead_letter.cleanup_policy,
            CleanupPolicy::CompactDelete
        );
        assert_eq!(k.topics.dead_letter.retention_ms, 14 * DAY_MS);
        assert_eq!(
            k.topics.health_events,
            Config::default().kafka.topics.health_events
        );
    }

    #[test]
    fn environment_wins_over_the_file() {
        let mut c = from_file("[kafka]\nbrokers = [\"file:9092\"]\ngroup = \"from-file\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        c.apply_env(env(&[
            ("VIGIL_KAFKA_BROKERS", "127.0.0.1:19092, 127.0.0.1:19093"),
            ("VIGIL_KAFKA_TOPIC_PREFIX", "t1-"),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.kafka.brokers, ["127.0.0.1:19092", "127.0.0.1:19093"]);
        assert_eq!(c.kafka.group, "from-file");
        assert_eq!(c.kafka.topic_prefix, "t1-");
        c.apply_env(env(&[("VIGIL_KAFKA_GROUP", "from-env")]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.kafka.group, "from-env");
        assert_eq!(c.kafka.brokers, ["127.0.0.1:19092", "127.0.0.1:19093"]);
    }

    #[test]
    fn history_url_from_default_file_and_environment() {
        assert_eq!(Config::default().history.url, "sqlite:vigil-history.db");
        let mut c = from_file("[history]\nurl = \"sqlite:/var/lib/vigil/h.db\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.history.url, "sqlite:/var/lib/vigil/h.db");
        c.apply_env(env(&[(
            "VIGIL_DATABASE_URL",
            "postgres://v:v@db:5432/vigil",
        )]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.history.url, "postgres://v:v@db:5432/vigil");

        let e = from_file("[history]\nurl = \"mysql://db/x\"\n").expect_err("scheme");
        assert!(
            e.to_string()
                .starts_with("vigil.toml:2:7: history.url has an unknown scheme"),
            "{e}"
        );
        let e = from_file("[history]\nuri = \"sqlite:x\"\n").expect_err("unknown key");
        assert!(e.to_string().contains("unknown field `uri`"), "{e}");
        let e = Config::default()
            .apply_env(env(&[("VIGIL_DATABASE_URL", "")]))
            .expect_err("empty");
        assert!(e.to_string().contains("VIGIL_DATABASE_URL"), "{e}");
    }

    #[test]
    fn empty_environment_values_are_errors() {
        let mut c = Config::default();
        let e = c
            .apply_env(env(&[("VIGIL_KAFKA_BROKERS", " , ")]))
            .expect_err("no brokers");
        assert!(e.to_string().contains("VIGIL_KAFKA_BROKERS"), "{e}");
        let e = c
            .apply_env(env(&[("VIGIL_KAFKA_GROUP", "")]))
            .expect_err("empty group");
        assert!(e.to_string().contains("VIGIL_KAFKA_GROUP"), "{e}");
    }

    #[test]
    fn unknown_keys_are_rejected_with_line_and_column() {
        let text = "[kafka]\nbrokers = [\"a:1\"]\n\n[kafka.topics.alerts]\nretension = \"1d\"\n";
        let e = from_file(text).expect_err("unknown key");
        let shown = e.to_string();
        assert!(
            shown.starts_with("vigil.toml:5:1: unknown field `retension`"),
            "{shown}"
        );
        assert!(e.render(false).contains("retension = \"1d\""));

        let e = from_file("[kafak]\n").expect_err("unknown table");
        assert!(
            e.to_string()
                .starts_with("vigil.toml:1:2: unknown field `kafak`"),
            "{e}"
        );

        let e = from_file("[kafka.topics.alert]\n").expect_err("unknown topic");
        assert!(e.to_string().contains("unknown field `alert`"), "{e}");
    }

    #[test]
    fn max_task_idle_may_be_zero_and_nothing_else_that_is_not_a_duration() {
        for (text, ms) in [
            ("0", 0),
            ("0ms", 0),
            ("00s", 0),
            ("250ms", 250),
            ("2s", 2000),
        ] {
            let c = from_file(&format!("[kafka.streaming]\nmax-task-idle = \"{text}\"\n"))
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(c.kafka.streaming.max_task_idle_ms, ms, "{text}");
        }
        for text in ["0x", "-1s", "soon", ""] {
            let e = from_file(&format!("[kafka.streaming]\nmax-task-idle = \"{text}\"\n"))
                .expect_err(text);
            assert!(
                e.to_string()
                    .starts_with("vigil.toml:2:17: streaming.max-task-idle:"),
                "{text}: {e}"
            );
        }
        let c = from_file("[kafka.streaming]\ncommit-interval = \"0ms\"\n");
        assert!(c.is_err(), "a commit interval of 0 stays refused");
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let text = r#"[kafka]
request-timeout = "soon"

[kafka.librdkafka]
"bootstrap.servers" = "x:1"

[kafka.topics.alerts]
retention = "3M"
partitions = 0
cleanup-policy = "forever"

[kafka.topics.milestones]
name = "mile stones"
replication-factor = -1
"#;
        let e = from_file(text).expect_err("bad values");
        let shown = e.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 7, "{shown}");
        assert!(
            lines[0].starts_with("vigil.toml:2:19: request-timeout:"),
            "{shown}"
        );
        assert!(lines[1].starts_with("vigil.toml:5:23: librdkafka `bootstrap.servers`"));
        assert!(
            lines[2].starts_with("vigil.toml:9:14: topics.alerts.partitions"),
            "{shown}"
        );
        assert!(lines[3].starts_with("vigil.toml:8:13: topics.alerts.retention: unit `M`"));
        assert!(lines[4].starts_with("vigil.toml:10:18: topics.alerts.cleanup-policy"));
        assert!(
            lines[5].starts_with("vigil.toml:13:8: topics.milestones.name"),
            "{shown}"
        );
        assert!(lines[6].starts_with("vigil.toml:14:22: topics.milestones.replication-factor"));
    }

    #[test]
    fn wrong_types_are_reported_with_their_place() {
        let e = from_file("[kafka.topics.alerts]\npartitions = \"six\"\n").expect_err("type");
        assert!(
            e.to_string().starts_with("vigil.toml:2:14: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn two_topics_with_one_name_are_rejected() {
        let c = from_file("[kafka.topics.alerts]\nname = \"milestones\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let e = c.validate().expect_err("same name");
        assert!(e.to_string().contains("alerts and milestones"), "{e}");
        let mut c = Config::default();
        c.kafka.topic_prefix = "bad prefix/".to_string();
        assert!(c.validate().is_err());
    }

    #[test]
    fn load_reads_the_named_file_and_reports_a_missing_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v.toml");
        std::fs::write(&path, "[kafka.topics.alerts]\nretention = \"2d\"\n").expect("write");
        let (c, used) = Config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(used.as_deref(), Some(path.as_path()));
        assert_eq!(c.kafka.topics.alerts.retention_ms, 2 * DAY_MS);
        let e = Config::load(Some(&dir.path().join("missing.toml"))).expect_err("missing");
        assert!(e.to_string().contains("missing.toml"), "{e}");
    }

    #[test]
    fn cleanup_policy_reads_either_order() {
        assert_eq!(
            CleanupPolicy::from_kafka("delete,compact"),
            Some(CleanupPolicy::CompactDelete)
        );
        assert_eq!(
            CleanupPolicy::from_kafka("delete"),
            Some(CleanupPolicy::Delete)
        );
        assert_eq!(CleanupPolicy::from_kafka("nope"), None);
        assert_eq!(describe_retention(30 * DAY_MS), "30d");
        assert_eq!(describe_retention(-1), "forever");
    }
}
