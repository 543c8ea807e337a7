//! `[kafka.topics.*]`: the eight topics Vigil reads and writes, as it wants them on the brokers
//! (`vigil topics apply` makes them so, `vigil topics show` compares).
//!
//! A topic's defaults depend on the topic (its name, its retention), which is why the file is
//! read over a document of the defaults rather than with per-type defaults (see `file.rs`).

use std::fmt;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{duration, value};

/// Default partitions of every topic: room for six consumers in one group.
pub const DEFAULT_PARTITIONS: i32 = 6;

/// The topics, one table each. A table names only what it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Topics {
    /// Input: health events (symptoms, sleep episodes, nightly summaries …), keyed by user id.
    /// Default name `health-events`, retention `30d`.
    pub health_events: TopicConfig,
    /// Input: biometric samples (heart rate, HRV, steps …), keyed by user id. Default name
    /// `biometric-updates`, retention `7d`.
    pub biometric_updates: TopicConfig,
    /// Output: alerts (firing and resolved) as CloudEvents, keyed by user id. Default name
    /// `alerts`, retention `3d`.
    pub alerts: TopicConfig,
    /// Output: milestones as CloudEvents, keyed by user id. Default name `milestones`,
    /// retention `30d`.
    pub milestones: TopicConfig,
    /// Rejected input: the original bytes with the reason, source topic, partition and offset.
    /// Default name `dead-letter`, retention `14d`.
    pub dead_letter: TopicConfig,
    /// Events too late for their user's event time. Default name `late-events`, retention
    /// `14d`.
    pub late_events: TopicConfig,
    /// Alerts that matched a silence (`vigil silence add`): computed and stored in the history,
    /// but kept off `alerts`, so downstream services never see them. Default name
    /// `alerts-silenced`, retention `3d`.
    pub silenced: TopicConfig,
    /// The changelog of the engine's state (`vigil run --kafka`), with as many partitions as
    /// the input topics (task N's state lives in partition N). Default name `vigil-state`,
    /// retention `forever`, cleanup policy `compact`.
    pub state: TopicConfig,
}

/// One topic as Vigil wants it on the brokers. Every key has a default, given with each topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(transform = every_key_optional)]
pub struct TopicConfig {
    /// The topic's name, put after `kafka.topic-prefix` on the brokers: 1 to 249 letters,
    /// digits, `.`, `_` or `-`. Default: the topic's own (see each topic).
    #[serde(deserialize_with = "name")]
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    pub name: String,
    /// Partition count. `vigil topics apply` raises it, never lowers it (Kafka cannot).
    /// Default: `6`.
    #[serde(deserialize_with = "count")]
    #[schemars(range(min = 1))]
    pub partitions: i32,
    /// Replicas of each partition, set when the topic is created and not changed afterwards.
    /// Default: `1`.
    #[serde(deserialize_with = "count")]
    #[schemars(range(min = 1))]
    pub replication_factor: i32,
    /// How long Kafka keeps the records (`retention.ms`): a duration such as `"30d"`, or
    /// `"forever"`. Default: the topic's own (see each topic).
    pub retention: Retention,
    /// Kafka's `cleanup.policy`: `"delete"`, `"compact"` or `"compact,delete"` (in either
    /// order). Default: `"delete"`, `"compact"` for `state`.
    pub cleanup_policy: CleanupPolicy,
}

/// Each topic's defaults are given with it in [`Topics`], so a table may leave out any key.
fn every_key_optional(schema: &mut Schema) {
    schema.remove("required");
}

fn name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let name = String::deserialize(deserializer)?;
    check_topic_name(&name).map_err(|why| D::Error::custom(format!("`{name}` {why}")))?;
    Ok(name)
}

fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    let range = 1..=i64::from(i32::MAX);
    let n = value::whole_number(deserializer, range, "at least 1 (e.g. 1, 3 or 6)")?;
    // In range, so the conversion cannot fail.
    Ok(i32::try_from(n).unwrap_or(i32::MAX))
}

impl TopicConfig {
    fn new(name: &str, retention_days: u64) -> Self {
        TopicConfig {
            name: name.to_string(),
            partitions: DEFAULT_PARTITIONS,
            replication_factor: 1,
            retention: Retention::Limited(Duration::from_secs(retention_days * 86_400)),
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
                retention: Retention::Forever,
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
}

/// Kafka's rule for topic names: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn check_topic_name(name: &str) -> Result<(), &'static str> {
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

/// How long Kafka keeps a topic's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// `"forever"`.
    Forever,
    /// A duration such as `"30d"`.
    Limited(Duration),
}

impl Retention {
    /// The value of Kafka's `retention.ms`: milliseconds, or -1 for forever.
    pub fn as_kafka(self) -> i64 {
        match self {
            Retention::Forever => -1,
            Retention::Limited(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retention::Forever => f.write_str("forever"),
            Retention::Limited(d) => f.write_str(&duration::format(*d)),
        }
    }
}

impl Serialize for Retention {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim() == "forever" {
            return Ok(Retention::Forever);
        }
        duration::parse(&text)
            .map(Retention::Limited)
            .map_err(D::Error::custom)
    }
}

impl JsonSchema for Retention {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Retention".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "anyOf": [{ "const": "forever" }, duration::schema()] })
    }
}

/// A retention as people read it: `30d`, or the milliseconds when it has no shorter form.
pub fn describe_retention(ms: i64) -> String {
    if ms < 0 {
        "forever".to_string()
    } else if ms == 0 {
        "0ms".to_string()
    } else {
        crate::rules::duration::format_duration(ms)
    }
}

/// Kafka's `cleanup.policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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

/// Read as the broker's value is ([`CleanupPolicy::from_kafka`]), so the file may write the
/// parts in either order, as it always could.
impl<'de> Deserialize<'de> for CleanupPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        CleanupPolicy::from_kafka(&text).ok_or_else(|| {
            D::Error::custom(format!(
                "`{text}` is not a policy; write one of \"delete\", \"compact\", \"compact,delete\""
            ))
        })
    }
}

/// The three values for completion, and the pattern of every spelling the loader accepts.
impl JsonSchema for CleanupPolicy {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CleanupPolicy".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "enum": ["delete", "compact", "compact,delete"] },
                {
                    "type": "string",
                    "pattern": r"^\s*(compact|delete)\s*(,\s*(compact|delete)\s*)*$",
                },
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn defaults_are_the_documented_retentions() {
        let t = Topics::default();
        let retention = |topic: &TopicConfig| topic.retention.as_kafka();
        assert_eq!(retention(&t.health_events), 30 * DAY_MS);
        assert_eq!(retention(&t.biometric_updates), 7 * DAY_MS);
        assert_eq!(retention(&t.alerts), 3 * DAY_MS);
        assert_eq!(retention(&t.milestones), 30 * DAY_MS);
        assert_eq!(retention(&t.dead_letter), 14 * DAY_MS);
        assert_eq!(retention(&t.late_events), 14 * DAY_MS);
        assert_eq!(retention(&t.silenced), 3 * DAY_MS);
        assert_eq!(retention(&t.state), -1);
        assert_eq!(t.state.cleanup_policy, CleanupPolicy::Compact);
        for (key, topic) in t.all() {
            assert_eq!(topic.partitions, DEFAULT_PARTITIONS);
            assert_eq!(topic.replication_factor, 1);
            if key != "state" {
                assert_eq!(topic.cleanup_policy, CleanupPolicy::Delete);
            }
        }
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

    #[test]
    fn retention_is_a_duration_or_forever() {
        let read = |text: &str| toml::Value::String(text.to_string()).try_into::<Retention>();
        assert_eq!(read(" forever "), Ok(Retention::Forever));
        assert_eq!(read("2d").map(Retention::as_kafka), Ok(2 * DAY_MS));
        assert!(read("0d").is_err(), "no retention at all is refused");
        assert!(read("never").is_err());
        assert_eq!(Retention::Forever.to_string(), "forever");
        assert_eq!(
            Retention::Limited(Duration::from_secs(86_400)).to_string(),
            "1d"
        );
    }
}
