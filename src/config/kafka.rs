//! `[kafka]`: how Vigil reaches the brokers, the settings it passes through to librdkafka
//! (`[kafka.librdkafka]`), and its two sub-tables, `[kafka.topics.*]` and `[kafka.streaming]`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::topics::{check_topic_name, TopicConfig, Topics};
use super::{duration, value, StreamingConfig};

/// librdkafka settings that have keys of their own in `[kafka]`.
const OWN_LIBRDKAFKA_KEYS: &[&str] = &["bootstrap.servers", "metadata.broker.list", "client.id"];

/// How Vigil reaches Kafka, and the topics it uses: `vigil run --kafka`, `vigil topics`, the
/// Kafka checks of `vigil health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port` each (librdkafka's `bootstrap.servers`); at least one.
    /// `VIGIL_KAFKA_BROKERS` (comma-separated) overrides it. Default: `["127.0.0.1:9092"]`.
    #[serde(deserialize_with = "brokers")]
    #[schemars(length(min = 1))]
    pub brokers: Vec<String>,
    /// The client id the brokers see in their logs and quotas. `VIGIL_KAFKA_CLIENT_ID`
    /// overrides it. Default: `"vigil"`.
    #[serde(deserialize_with = "value::non_blank")]
    #[schemars(length(min = 1))]
    pub client_id: String,
    /// The consumer group of the `vigil run` instances that share the input partitions
    /// (`vigil run` also uses `<group>-history` and `<group>-restore`). `VIGIL_KAFKA_GROUP`
    /// overrides it. Default: `"vigil"`.
    #[serde(deserialize_with = "value::non_blank")]
    #[schemars(length(min = 1))]
    pub group: String,
    /// Put before every topic name, e.g. `"staging."`, so several deployments can share a
    /// cluster. `VIGIL_KAFKA_TOPIC_PREFIX` overrides it. Default: `""` (the names as they are).
    pub topic_prefix: String,
    /// Longest wait for one request to the brokers (admin calls, metadata, connection setup);
    /// an unreachable broker is reported after this long. A duration. Default: `"10s"`.
    #[serde(
        serialize_with = "duration::positive::serialize",
        deserialize_with = "duration::positive::deserialize"
    )]
    #[schemars(schema_with = "duration::positive::schema")]
    pub request_timeout: Duration,
    /// Passed to librdkafka as they are, after Vigil's own settings, so they win: security
    /// (`security.protocol`, `sasl.mechanism`, `sasl.username`, `ssl.ca.location` …) and
    /// tuning. Keys and values are librdkafka's, both strings; `bootstrap.servers` and
    /// `client.id` have keys of their own above. Default: none.
    #[serde(deserialize_with = "librdkafka")]
    #[schemars(extend("propertyNames" = {
        "not": { "enum": ["bootstrap.servers", "metadata.broker.list", "client.id"] }
    }))]
    pub librdkafka: BTreeMap<String, String>,
    /// The topics Vigil reads and writes, one table each.
    pub topics: Topics,
    /// How `vigil run --kafka` consumes, commits and keeps its state.
    pub streaming: StreamingConfig,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: vec!["127.0.0.1:9092".to_string()],
            client_id: "vigil".to_string(),
            group: "vigil".to_string(),
            topic_prefix: String::new(),
            request_timeout: Duration::from_secs(10),
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

    /// What only the prefix and the names together can break: a full name Kafka refuses, or
    /// two topics with one name.
    pub(super) fn topic_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (key, topic) in self.topics.all() {
            let name = self.topic_name(topic);
            if let Err(why) = check_topic_name(&name) {
                problems.push(format!("topic {key}: the name `{name}` {why}"));
            }
            if let Some(other) = seen.insert(name.clone(), key) {
                problems.push(format!(
                    "topics {other} and {key} have the same name `{name}`; each needs its own"
                ));
            }
        }
        problems
    }
}

fn brokers<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let brokers = Vec::<String>::deserialize(deserializer)?;
    if brokers.iter().all(|b| b.trim().is_empty()) {
        return Err(D::Error::custom(
            "no broker given; write brokers = [\"host:port\", …]",
        ));
    }
    Ok(brokers)
}

/// The passthrough table, refusing the keys Vigil sets itself. Each value is read with its
/// key at hand, so the refusal points at that entry rather than at the whole table.
fn librdkafka<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    struct Settings;

    impl<'de> Visitor<'de> for Settings {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table of librdkafka settings, each a string")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut settings = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if OWN_LIBRDKAFKA_KEYS.contains(&key.as_str()) {
                    match map.next_value::<Refused>()? {}
                }
                settings.insert(key, map.next_value()?);
            }
            Ok(settings)
        }
    }

    deserializer.deserialize_map(Settings)
}

/// The value of a setting Vigil owns: there is none to read, and failing while the
/// deserializer is at the value gives the error the value's place in the file.
enum Refused {}

impl<'de> Deserialize<'de> for Refused {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(D::Error::custom(
            "is set by Vigil itself; use kafka.brokers, kafka.client-id or kafka.group instead",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_must_stay_distinct() {
        let mut k = KafkaConfig {
            topic_prefix: "prod.".to_string(),
            ..KafkaConfig::default()
        };
        assert_eq!(k.topic_name(&k.topics.alerts), "prod.alerts");
        assert!(k.topic_problems().is_empty());
        k.topics.alerts.name = "milestones".to_string();
        let problems = k.topic_problems();
        assert!(
            problems[0].contains("alerts and milestones"),
            "{problems:?}"
        );
        k.topic_prefix = "bad prefix/".to_string();
        assert!(k
            .topic_problems()
            .iter()
            .any(|p| p.contains("may only have")));
    }
}
