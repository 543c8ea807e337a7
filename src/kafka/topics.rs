//! Topic provisioning: `vigil topics apply` and `vigil topics show`.
//!
//! [`apply`] creates the configured topics that are missing, raises partition counts that are
//! below the configuration (Kafka cannot lower them: a count above it is reported, never
//! changed) and sets `retention.ms` and `cleanup.policy` where they differ. Kafka's
//! AlterConfigs replaces a topic's whole set of dynamic configs, so the ones Vigil does not
//! manage are read first and sent back unchanged. A second `apply` finds nothing to do.
//!
//! [`show`] reads each configured topic as the broker reports it and lists every difference
//! from the configuration.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{anyhow, bail};
use rdkafka::admin::{
    AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use serde::Serialize;

use super::Admin;
use crate::config::{describe_retention, CleanupPolicy, KafkaConfig};

const RETENTION_MS: &str = "retention.ms";
const CLEANUP_POLICY: &str = "cleanup.policy";

/// One topic as the broker reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Observed {
    pub partitions: i32,
    /// The largest replica count over the partitions.
    pub replication_factor: i32,
    pub retention_ms: Option<i64>,
    pub cleanup_policy: Option<String>,
    /// The topic's own (dynamic) configs, which AlterConfigs must send back to keep.
    #[serde(skip)]
    pub dynamic_configs: BTreeMap<String, String>,
}

/// Reads the topics named in `names` that exist; the missing ones are absent from the map.
pub async fn describe(
    admin: &Admin,
    names: &[String],
) -> anyhow::Result<BTreeMap<String, Observed>> {
    let metadata = admin.metadata()?;
    let mut found: BTreeMap<String, (i32, i32)> = BTreeMap::new();
    for topic in metadata.topics() {
        if !names.iter().any(|n| n == topic.name()) || topic.error().is_some() {
            continue;
        }
        let partitions = i32::try_from(topic.partitions().len()).unwrap_or(i32::MAX);
        let replication = topic
            .partitions()
            .iter()
            .map(|p| i32::try_from(p.replicas().len()).unwrap_or(i32::MAX))
            .max()
            .unwrap_or(0);
        found.insert(topic.name().to_string(), (partitions, replication));
    }
    if found.is_empty() {
        return Ok(BTreeMap::new());
    }
    let specifiers: Vec<ResourceSpecifier> = found
        .keys()
        .map(|n| ResourceSpecifier::Topic(n.as_str()))
        .collect();
    let results = admin
        .call(
            "describing the topics' configs",
            admin
                .client()
                .describe_configs(&specifiers, &admin.options()),
        )
        .await?;
    let mut observed = BTreeMap::new();
    for (name, result) in found.keys().zip(results) {
        let resource =
            result.map_err(|code| anyhow!("describing the configs of topic {name}: {code}"))?;
        let value = |key: &str| resource.get(key).and_then(|e| e.value.clone());
        let retention_ms = match value(RETENTION_MS) {
            Some(text) => Some(text.trim().parse::<i64>().map_err(|_| {
                anyhow!("topic {name}: the broker reports retention.ms `{text}`, not a number")
            })?),
            None => None,
        };
        let dynamic_configs = resource
            .entries
            .iter()
            .filter(|e| e.source == ConfigSource::DynamicTopic && !e.is_read_only)
            .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
            .collect();
        let (partitions, replication_factor) = found[name];
        observed.insert(
            name.clone(),
            Observed {
                partitions,
                replication_factor,
                retention_ms,
                cleanup_policy: value(CLEANUP_POLICY),
                dynamic_configs,
            },
        );
    }
    Ok(observed)
}

/// What a topic should be, in the broker's terms.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Wanted {
    pub partitions: i32,
    pub replication_factor: i32,
    pub retention_ms: i64,
    pub cleanup_policy: String,
}

/// Every configured topic: its key in `vigil.toml`, its name on the broker, what it should be.
pub fn wanted(config: &KafkaConfig) -> Vec<(&'static str, String, Wanted)> {
    config
        .topics
        .all()
        .into_iter()
        .map(|(key, t)| {
            (
                key,
                config.topic_name(t),
                Wanted {
                    partitions: t.partitions,
                    replication_factor: t.replication_factor,
                    retention_ms: t.retention.as_kafka(),
                    cleanup_policy: t.cleanup_policy.as_kafka().to_string(),
                },
            )
        })
        .collect()
}

/// One difference between the configuration and the broker.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Difference {
    /// `exists`, `partitions`, `replication-factor`, `retention.ms` or `cleanup.policy`.
    pub field: &'static str,
    pub configured: String,
    /// What the broker reports (`missing` for a topic that does not exist).
    pub actual: String,
}

/// The differences of one topic; `observed` is `None` when the topic does not exist.
pub fn differences(wanted: &Wanted, observed: Option<&Observed>) -> Vec<Difference> {
    let Some(o) = observed else {
        return vec![Difference {
            field: "exists",
            configured: "yes".to_string(),
            actual: "missing".to_string(),
        }];
    };
    let mut out = Vec::new();
    if o.partitions != wanted.partitions {
        out.push(Difference {
            field: "partitions",
            configured: wanted.partitions.to_string(),
            actual: o.partitions.to_string(),
        });
    }
    if o.replication_factor != wanted.replication_factor {
        out.push(Difference {
            field: "replication-factor",
            configured: wanted.replication_factor.to_string(),
            actual: o.replication_factor.to_string(),
        });
    }
    if o.retention_ms != Some(wanted.retention_ms) {
        out.push(Difference {
            field: RETENTION_MS,
            configured: wanted.retention_ms.to_string(),
            actual: o
                .retention_ms
                .map_or_else(|| "unknown".to_string(), |v| v.to_string()),
        });
    }
    if !same_policy(o.cleanup_policy.as_deref(), &wanted.cleanup_policy) {
        out.push(Difference {
            field: CLEANUP_POLICY,
            configured: wanted.cleanup_policy.clone(),
            actual: o
                .cleanup_policy
                .clone()
                .unwrap_or_else(|| "unknown".to_string()),
        });
    }
    out
}

fn same_policy(actual: Option<&str>, wanted: &str) -> bool {
    actual.and_then(CleanupPolicy::from_kafka) == CleanupPolicy::from_kafka(wanted)
}

/// A configured topic as the broker reports it, with its differences from the configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TopicStatus {
    /// The topic's key in `vigil.toml` (`health-events`, …).
    pub key: &'static str,
    /// Its name on the broker.
    pub name: String,
    pub configured: Wanted,
    /// `None` when the topic does not exist.
    pub actual: Option<Observed>,
    /// Empty when the topic is in line with the configuration.
    pub differences: Vec<Difference>,
}

/// Every configured topic as the broker reports it.
pub async fn show(admin: &Admin, config: &KafkaConfig) -> anyhow::Result<Vec<TopicStatus>> {
    let wanted = wanted(config);
    let names: Vec<String> = wanted.iter().map(|(_, n, _)| n.clone()).collect();
    let observed = describe(admin, &names).await?;
    Ok(wanted
        .into_iter()
        .map(|(key, name, configured)| {
            let actual = observed.get(&name).cloned();
            let differences = differences(&configured, actual.as_ref());
            TopicStatus {
                key,
                name,
                configured,
                actual,
                differences,
            }
        })
        .collect())
}

/// One change `apply` made.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum Change {
    Created {
        topic: String,
        partitions: i32,
        replication_factor: i32,
        retention_ms: i64,
        cleanup_policy: String,
    },
    Partitions {
        topic: String,
        from: i32,
        to: i32,
    },
    Config {
        topic: String,
        key: &'static str,
        from: Option<String>,
        to: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Created {
                topic,
                partitions,
                replication_factor,
                retention_ms,
                cleanup_policy,
            } => write!(
                f,
                "created {topic}: {partitions} partitions, replication factor \
                 {replication_factor}, retention.ms {retention_ms} ({}), cleanup.policy \
                 {cleanup_policy}",
                describe_retention(*retention_ms)
            ),
            Change::Partitions { topic, from, to } => {
                write!(f, "altered {topic}: partitions {from} -> {to}")
            }
            Change::Config {
                topic,
                key,
                from,
                to,
            } => {
                let shown = |v: &str| match (*key, v.parse::<i64>()) {
                    (RETENTION_MS, Ok(ms)) => format!("{v} ({})", describe_retention(ms)),
                    _ => v.to_string(),
                };
                let from = from.as_deref().map_or_else(|| "unset".to_string(), shown);
                write!(f, "altered {topic}: {key} {from} -> {}", shown(to))
            }
        }
    }
}

/// What `apply` did, and what it could not do.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ApplyReport {
    pub changes: Vec<Change>,
    /// Differences Kafka cannot resolve for Vigil (fewer partitions, another replication
    /// factor), as sentences.
    pub warnings: Vec<String>,
}

/// Brings the brokers in line with the configuration; see the module documentation.
pub async fn apply(admin: &Admin, config: &KafkaConfig) -> anyhow::Result<ApplyReport> {
    let wanted = wanted(config);
    let names: Vec<String> = wanted.iter().map(|(_, n, _)| n.clone()).collect();
    let observed = describe(admin, &names).await?;
    let mut report = ApplyReport::default();

    // Missing topics, created with their configs.
    let missing: Vec<&(&str, String, Wanted)> = wanted
        .iter()
        .filter(|(_, name, _)| !observed.contains_key(name))
        .collect();
    if !missing.is_empty() {
        let retentions: Vec<String> = missing
            .iter()
            .map(|(_, _, w)| w.retention_ms.to_string())
            .collect();
        let new_topics: Vec<NewTopic> = missing
            .iter()
            .zip(&retentions)
            .map(|((_, name, w), retention)| {
                NewTopic::new(
                    name,
                    w.partitions,
                    TopicReplication::Fixed(w.replication_factor),
                )
                .set(RETENTION_MS, retention)
                .set(CLEANUP_POLICY, &w.cleanup_policy)
            })
            .collect();
        let results = admin
            .call(
                "creating topics",
                admin.client().create_topics(&new_topics, &admin.options()),
            )
            .await?;
        let mut failures = Vec::new();
        for ((_, name, w), result) in missing.iter().zip(results) {
            match result {
                Ok(_) => report.changes.push(Change::Created {
                    topic: name.clone(),
                    partitions: w.partitions,
                    replication_factor: w.replication_factor,
                    retention_ms: w.retention_ms,
                    cleanup_policy: w.cleanup_policy.clone(),
                }),
                Err((_, code)) => failures.push(format!("cannot create topic {name}: {code}")),
            }
        }
        if !failures.is_empty() {
            bail!("{}", failures.join("\n"));
        }
    }

    // Existing topics: partitions, then configs.
    let mut more_partitions = Vec::new();
    let mut alters: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for (key, name, w) in &wanted {
        let Some(o) = observed.get(name) else {
            continue;
        };
        if o.partitions < w.partitions {
            more_partitions.push((name.clone(), o.partitions, w.partitions));
        } else if o.partitions > w.partitions {
            report.warnings.push(format!(
                "{name} ({key}) has {} partitions, more than the {} configured; Kafka cannot \
                 remove partitions, so it stays at {}",
                o.partitions, w.partitions, o.partitions
            ));
        }
        if o.replication_factor != w.replication_factor {
            report.warnings.push(format!(
                "{name} ({key}) has replication factor {}, not the {} configured; Vigil does \
                 not reassign replicas (use kafka-reassign-partitions)",
                o.replication_factor, w.replication_factor
            ));
        }
        let mut configs = o.dynamic_configs.clone();
        let mut changed = false;
        if o.retention_ms != Some(w.retention_ms) {
            report.changes.push(Change::Config {
                topic: name.clone(),
                key: RETENTION_MS,
                from: o.retention_ms.map(|v| v.to_string()),
                to: w.retention_ms.to_string(),
            });
            configs.insert(RETENTION_MS.to_string(), w.retention_ms.to_string());
            changed = true;
        }
        if !same_policy(o.cleanup_policy.as_deref(), &w.cleanup_policy) {
            report.changes.push(Change::Config {
                topic: name.clone(),
                key: CLEANUP_POLICY,
                from: o.cleanup_policy.clone(),
                to: w.cleanup_policy.clone(),
            });
            configs.insert(CLEANUP_POLICY.to_string(), w.cleanup_policy.clone());
            changed = true;
        }
        if changed {
            alters.push((name.clone(), configs));
        }
    }

    if !more_partitions.is_empty() {
        let requests: Vec<NewPartitions> = more_partitions
            .iter()
            .map(|(name, _, to)| NewPartitions::new(name, usize::try_from(*to).unwrap_or(1)))
            .collect();
        let results = admin
            .call(
                "adding partitions",
                admin
                    .client()
                    .create_partitions(&requests, &admin.options()),
            )
            .await?;
        for ((name, from, to), result) in more_partitions.iter().zip(results) {
            result.map_err(|(_, code)| anyhow!("cannot add partitions to {name}: {code}"))?;
            report.changes.push(Change::Partitions {
                topic: name.clone(),
                from: *from,
                to: *to,
            });
        }
    }

    if !alters.is_empty() {
        let requests: Vec<AlterConfig> = alters
            .iter()
            .map(|(name, configs)| {
                configs.iter().fold(
                    AlterConfig::new(ResourceSpecifier::Topic(name)),
                    |alter, (k, v)| alter.set(k, v),
                )
            })
            .collect();
        let results = admin
            .call(
                "altering topic configs",
                admin.client().alter_configs(&requests, &admin.options()),
            )
            .await?;
        for ((name, _), result) in alters.iter().zip(results) {
            result.map_err(|(_, code)| anyhow!("cannot alter the configs of {name}: {code}"))?;
        }
    }
    if !report.changes.is_empty() {
        wait_until_visible(admin, config, &mut report).await?;
    }
    // Creations first, then partitions, then configs, each in the configuration's order.
    report.changes.sort_by_key(|c| match c {
        Change::Created { .. } => 0,
        Change::Partitions { .. } => 1,
        Change::Config { .. } => 2,
    });
    Ok(report)
}

/// Waits until the broker reports what `apply` changed: brokers answer from a metadata cache
/// that follows the controller a moment later, and a second `apply` (or a `show`) right after
/// this one must see the new state. Past the deadline, a warning says so.
async fn wait_until_visible(
    admin: &Admin,
    config: &KafkaConfig,
    report: &mut ApplyReport,
) -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    loop {
        let statuses = show(admin, config).await?;
        // Only what apply can fix counts; surplus partitions and replication stay as they are.
        let pending: Vec<String> = statuses
            .iter()
            .flat_map(|s| {
                s.differences.iter().filter_map(move |d| {
                    let fixable = match d.field {
                        "exists" | RETENTION_MS | CLEANUP_POLICY => true,
                        "partitions" => {
                            s.actual.as_ref().map(|o| o.partitions) < Some(s.configured.partitions)
                        }
                        _ => false,
                    };
                    fixable.then(|| format!("{} {}", s.name, d.field))
                })
            })
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= admin.timeout {
            report.warnings.push(format!(
                "the broker does not report these changes yet: {}; run `vigil topics show` \
                 in a moment",
                pending.join(", ")
            ));
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(partitions: i32, retention: i64, policy: &str) -> Observed {
        Observed {
            partitions,
            replication_factor: 1,
            retention_ms: Some(retention),
            cleanup_policy: Some(policy.to_string()),
            dynamic_configs: BTreeMap::new(),
        }
    }

    fn wanted_one() -> Wanted {
        Wanted {
            partitions: 6,
            replication_factor: 1,
            retention_ms: 86_400_000,
            cleanup_policy: "compact,delete".to_string(),
        }
    }

    #[test]
    fn in_line_topics_have_no_differences() {
        let w = wanted_one();
        assert!(differences(&w, Some(&observed(6, 86_400_000, "delete,compact"))).is_empty());
    }

    #[test]
    fn every_difference_is_listed() {
        let w = wanted_one();
        let d = differences(&w, Some(&observed(3, 1, "delete")));
        let fields: Vec<&str> = d.iter().map(|d| d.field).collect();
        assert_eq!(fields, ["partitions", "retention.ms", "cleanup.policy"]);
        assert_eq!(d[1].configured, "86400000");
        assert_eq!(d[1].actual, "1");
        let d = differences(&w, None);
        assert_eq!(d[0].field, "exists");
    }

    #[test]
    fn changes_read_as_sentences() {
        let c = Change::Config {
            topic: "alerts".to_string(),
            key: RETENTION_MS,
            from: Some("259200000".to_string()),
            to: "86400000".to_string(),
        };
        assert_eq!(
            c.to_string(),
            "altered alerts: retention.ms 259200000 (3d) -> 86400000 (1d)"
        );
        let c = Change::Partitions {
            topic: "alerts".to_string(),
            from: 3,
            to: 6,
        };
        assert_eq!(c.to_string(), "altered alerts: partitions 3 -> 6");
    }
}
