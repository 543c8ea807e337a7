//! `vigil.toml`: the configuration of Vigil: Kafka for the production mode, the history
//! database (both modes), Redis, the HTTP listener and the allowed lateness of events.
//!
//! Three layers, each overriding the one before:
//!
//! 1. built-in defaults ([`Config::default`]), the values `vigil.example.toml` states;
//! 2. the file: `--config PATH`, or `vigil.toml` in the working directory when it exists;
//! 3. environment variables ([`ENV_VARS`]): `VIGIL_KAFKA_BROKERS`, `VIGIL_KAFKA_GROUP`, …
//!
//! One struct per table of the file, and that struct is the reference: its doc comments are
//! what `schemas/config.schema.json` says about each key (`vigil schema` writes it from these
//! types), it refuses unknown keys, and its durations are [`std::time::Duration`]s written as
//! `"30d"`. A file only names what it changes; every problem in it is reported at once, each at
//! its file:line:column.
//!
//! The structs carry `#[serde(default)]` although the file is read over a complete document of
//! the defaults (`file.rs`): it is what puts each default in the schema and leaves every key
//! optional there.
//!
//! # Layout
//!
//! - `mod.rs`: [`Config`], loading the layers, and the checks only their combination can fail;
//! - `file.rs`: the file read over the defaults, its problems with their places;
//! - `env.rs`: the `VIGIL_…` variables;
//! - `kafka.rs`, `topics.rs`, `streaming.rs`, `history.rs`, `redis.rs`, `http.rs`,
//!   `lateness.rs`: one table each, with its defaults and its checks;
//! - `duration.rs`, `value.rs`: durations as written, and the checks values share.

mod duration;
mod env;
mod error;
mod file;
mod history;
mod http;
mod kafka;
mod lateness;
mod redis;
mod streaming;
mod topics;
mod value;

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use self::redis::RedisConfig;
pub use env::ENV_VARS;
pub use error::ConfigError;
pub use history::HistoryConfig;
pub use http::HttpConfig;
pub use kafka::KafkaConfig;
pub use lateness::{ByType, LatenessConfig};
pub use streaming::StreamingConfig;
pub use topics::{
    describe_retention, CleanupPolicy, Retention, TopicConfig, Topics, DEFAULT_PARTITIONS,
};

/// The file read when `--config` is not given, if it exists in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "vigil.toml";

/// `vigil.toml`. Every table and key may be left out: what the file does not name keeps its
/// default, and `VIGIL_…` environment variables override some keys (each key says which).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// How Vigil reaches Kafka, and the topics it uses (the production mode, `vigil run
    /// --kafka`).
    pub kafka: KafkaConfig,
    /// Where alerts and milestones are stored.
    pub history: HistoryConfig,
    /// The state several instances share and downstream services read.
    pub redis: RedisConfig,
    /// The HTTP listener of `vigil run`: metrics, liveness and readiness.
    pub http: HttpConfig,
    /// How late each type of event may arrive behind its user's event time.
    pub lateness: LatenessConfig,
}

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

    /// Checks what only the combination of layers can break (a topic prefix from the
    /// environment and a name from the file, say).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = self.kafka.topic_problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Combined(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_read_back_as_themselves() {
        let c = Config::default();
        c.validate().expect("defaults are valid");
        let mut read = Config::default();
        read.apply_file(Path::new("empty.toml"), "")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read, c);
        let text = toml::to_string(&c).expect("defaults as TOML");
        let mut read = Config {
            kafka: KafkaConfig {
                group: "other".to_string(),
                ..KafkaConfig::default()
            },
            ..Config::default()
        };
        read.apply_file(Path::new("defaults.toml"), &text)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read, c, "{text}");
    }

    #[test]
    fn the_example_file_states_the_defaults() {
        let text = include_str!("../../vigil.example.toml");
        let mut c = Config::default();
        c.apply_file(Path::new("vigil.example.toml"), text)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c, Config::default());
    }

    #[test]
    fn two_topics_with_one_name_are_rejected() {
        let mut c = Config::default();
        c.apply_file(
            Path::new("vigil.toml"),
            "[kafka.topics.alerts]\nname = \"milestones\"\n",
        )
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
        assert_eq!(c.kafka.topics.alerts.retention.as_kafka(), 2 * 86_400_000);
        let e = Config::load(Some(&dir.path().join("missing.toml"))).expect_err("missing");
        assert!(e.to_string().contains("missing.toml"), "{e}");
    }
}
