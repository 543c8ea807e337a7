//! Kafka, in the production mode: each bootstrap broker, each configured topic, a produce →
//! consume round trip through the probe topic, and the consumer groups' lag.
//!
//! Every call gets the check's timeout (`--timeout`, or `kafka.request-timeout` when that is
//! shorter). The brokers are asked all at once, each first with a plain TCP connection (a
//! refused one fails at once) and then for the cluster's metadata, so a dead cluster costs at
//! most one timeout; the later checks are skipped when no broker answered.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{remaining, sentence, show_duration, Check, Figure, Options};
use crate::config::{describe_retention, KafkaConfig};
use crate::kafka::topics::{self, TopicStatus};
use crate::kafka::{client_config, Admin};

/// The probe topic's name after `kafka.topic-prefix`. Not one of the configured topics: only
/// `vigil health` uses it.
pub const PROBE_TOPIC: &str = "vigil-health-probe";
/// How long probe records are kept (and how often its segments roll, so they really go).
const PROBE_RETENTION_MS: &str = "3600000";
/// librdkafka refuses a connection setup timeout under a second.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Every Kafka check, in order: brokers, topics, probe, lag.
pub fn checks(config: &KafkaConfig, options: &Options) -> Vec<Check> {
    let timeout = options.timeout.min(config.request_timeout).max(MIN_TIMEOUT);
    let mut config = config.clone();
    config.request_timeout = timeout;

    let mut checks = brokers(&config, timeout);
    if !checks.iter().any(|c| c.status == super::Status::Ok) {
        let reason = "skipped: no broker answered";
        checks.push(Check::start("kafka.topics", "").skipped(reason));
        checks.push(Check::start("kafka.probe", probe_topic(&config)).skipped(reason));
        checks.push(Check::start("kafka.lag", "").skipped(reason));
        return checks;
    }
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            checks.push(
                Check::start("kafka.topics", "")
                    .failing(format!("cannot start the async runtime: {e}")),
            );
            return checks;
        }
    };
    let statuses = match Admin::new(&config) {
        Ok(admin) => {
            let check = Check::start("kafka.topics", "");
            match runtime.block_on(topics::show(&admin, &config)) {
                Ok(statuses) => Some(statuses),
                Err(e) => {
                    checks.push(check.failing(format!("cannot be described: {}", sentence(&e))));
                    None
                }
            }
        }
        Err(e) => {
            checks.push(Check::start("kafka.topics", "").failing(sentence(&e)));
            None
        }
    };
    if let Some(statuses) = &statuses {
        checks.extend(statuses.iter().map(topic));
    }
    checks.push(runtime.block_on(probe(&config, timeout, options.max_probe_latency)));
    match &statuses {
        Some(statuses) => checks.extend(lags(&config, statuses, timeout, options.max_lag)),
        None => checks
            .push(Check::start("kafka.lag", "").skipped("skipped: the topics could not be read")),
    }
    checks
}

fn probe_topic(config: &KafkaConfig) -> String {
    format!("{}{PROBE_TOPIC}", config.topic_prefix)
}

// ---------------------------------------------------------------- brokers

/// One check per bootstrap broker, asked in parallel, each on its own client so one answering
/// does not hide another that does not.
fn brokers(config: &KafkaConfig, timeout: Duration) -> Vec<Check> {
    let mut checks: Vec<Check> = std::thread::scope(|scope| {
        let handles: Vec<_> = config
            .brokers
            .iter()
            .map(|address| (address, scope.spawn(|| broker(config, address, timeout))))
            .collect();
        handles
            .into_iter()
            .map(|(address, handle)| {
                handle.join().unwrap_or_else(|_| {
                    Check::start("kafka.broker", address.as_str())
                        .failing("the check stopped unexpectedly (a bug in Vigil)")
                })
            })
            .collect()
    });
    settle_brokers(&mut checks);
    checks
}

/// One silent broker of several is degraded, not failing: the clients work through the others.
fn settle_brokers(checks: &mut [Check]) {
    if checks.iter().any(|c| c.status == super::Status::Ok) {
        for c in checks.iter_mut() {
            if c.status == super::Status::Failing {
                c.status = super::Status::Degraded;
            }
        }
    }
}

fn broker(config: &KafkaConfig, address: &str, timeout: Duration) -> Check {
    let check = Check::start("kafka.broker", address);
    let deadline = Instant::now() + timeout;
    // A plain connection first: it tells "connection refused" or "no such host" at once, where
    // librdkafka would retry until the deadline and say only "transport failure".
    if let Err(why) = super::connect(address, deadline) {
        let after = show_duration(check.elapsed());
        return check.failing(format!("unreachable: {why} (after {after})"));
    }
    let mut client = client_config(config);
    client.set("bootstrap.servers", address);
    let consumer: BaseConsumer = match client.create() {
        Ok(c) => c,
        Err(e) => {
            return check.failing(format!(
                "cannot create a client (check [kafka.librdkafka]): {}",
                sentence(&e)
            ))
        }
    };
    match consumer.fetch_metadata(None, remaining(deadline)) {
        Ok(metadata) => {
            let latency = check.elapsed();
            let n = metadata.brokers().len();
            let plural = if n == 1 { "" } else { "s" };
            check
                .ok(format!(
                    "reachable ({}; the cluster has {n} broker{plural})",
                    show_duration(latency)
                ))
                .with_figure(Figure::latency(latency))
        }
        Err(e) => {
            let after = show_duration(check.elapsed());
            check.failing(format!(
                "connects, but the metadata request failed: {} (after {after}; a TLS or SASL \
                 mismatch? see [kafka.librdkafka])",
                sentence(&e)
            ))
        }
    }
}

// ---------------------------------------------------------------- topics

/// Missing is failing (the engine cannot run); a difference from the configuration is
/// degraded (it runs, but not as configured).
fn topic(status: &TopicStatus) -> Check {
    let check = Check::start("kafka.topic", status.name.as_str());
    let Some(actual) = &status.actual else {
        return check.failing("missing (`vigil topics apply` creates it)");
    };
    let partitions = Figure::count(
        "partitions",
        u64::try_from(actual.partitions).unwrap_or(0),
        "",
    );
    if status.differences.is_empty() {
        let retention = actual
            .retention_ms
            .map_or_else(|| "?".to_string(), describe_retention);
        return check
            .ok(format!(
                "{} partitions, retention {retention}",
                actual.partitions
            ))
            .with_figure(partitions);
    }
    let shown = |field: &str, value: &str| match (field, value.parse::<i64>()) {
        ("retention.ms", Ok(ms)) => describe_retention(ms),
        _ => value.to_string(),
    };
    let differences: Vec<String> = status
        .differences
        .iter()
        .map(|d| {
            format!(
                "{} {}, configured {}",
                d.field,
                shown(d.field, &d.actual),
                shown(d.field, &d.configured)
            )
        })
        .collect();
    check
        .degraded(format!(
            "differs: {} (`vigil topics show`)",
            differences.join("; ")
        ))
        .with_figure(partitions)
}

// ---------------------------------------------------------------- probe

/// Produces a unique record to the probe topic (created on demand) and reads it back by
/// assignment at its offset; the figure is the time from send to receipt.
async fn probe(config: &KafkaConfig, timeout: Duration, max_latency: Duration) -> Check {
    let name = probe_topic(config);
    let check = Check::start("kafka.probe", name.as_str());
    let deadline = Instant::now() + timeout;
    match round_trip(config, &name, deadline).await {
        Ok((partition, offset, latency)) => {
            let shown = show_duration(latency);
            let figure = Figure::latency(latency);
            if latency > max_latency {
                check
                    .degraded(format!(
                        "slow: produce → consume round trip {shown}, above {}",
                        show_duration(max_latency)
                    ))
                    .with_figure(figure)
            } else {
                check
                    .ok(format!(
                        "produce → consume round trip {shown} (partition {partition}, offset \
                         {offset})"
                    ))
                    .with_figure(figure)
            }
        }
        Err(why) => {
            let after = show_duration(check.elapsed());
            check.failing(format!("{why} (after {after})"))
        }
    }
}

async fn round_trip(
    config: &KafkaConfig,
    topic: &str,
    deadline: Instant,
) -> Result<(i32, i64, Duration), String> {
    ensure_probe_topic(config, topic, deadline).await?;

    // The reader exists (and knows the cluster) before the record is sent, as a live consumer
    // would: the round trip then measures the brokers, not the client's start-up.
    let mut reader = client_config(config);
    reader
        .set("group.id", format!("{}-health", config.group))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    let consumer: BaseConsumer = reader
        .create()
        .map_err(|e| format!("cannot create the probe consumer: {}", sentence(&e)))?;
    consumer
        .fetch_metadata(Some(topic), remaining(deadline))
        .map_err(|e| format!("cannot read the probe topic's metadata: {}", sentence(&e)))?;

    let mut writer = client_config(config);
    let message_timeout = remaining(deadline).max(Duration::from_millis(1));
    writer.set("linger.ms", "0").set(
        "message.timeout.ms",
        message_timeout.as_millis().to_string(),
    );
    let producer: FutureProducer = writer
        .create()
        .map_err(|e| format!("cannot create the probe producer: {}", sentence(&e)))?;
    let token = token(&config.client_id);
    let sent = Instant::now();
    let (partition, offset) = producer
        .send(
            FutureRecord::to(topic).key("vigil-health").payload(&token),
            Timeout::After(remaining(deadline)),
        )
        .await
        .map_err(|(e, _)| format!("cannot produce: {}", sentence(&e)))?;

    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(offset))
        .map_err(|e| format!("cannot assign the probe partition: {}", sentence(&e)))?;
    consumer
        .assign(&assignment)
        .map_err(|e| format!("cannot assign the probe partition: {}", sentence(&e)))?;
    let mut last_error = None;
    while !remaining(deadline).is_zero() {
        let poll = remaining(deadline).min(Duration::from_millis(100));
        match consumer.poll(poll) {
            Some(Ok(message)) if message.payload() == Some(token.as_bytes()) => {
                return Ok((partition, offset, sent.elapsed()));
            }
            Some(Ok(_)) | None => {}
            Some(Err(e)) => last_error = Some(sentence(&e)),
        }
    }
    Err(match last_error {
        Some(e) => format!("produced at offset {offset}, not read back: {e}"),
        None => format!("produced at offset {offset}, not read back in time"),
    })
}

/// A payload no other probe sends: this client, process and instant.
fn token(client_id: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{client_id} {} {nanos}", std::process::id())
}

/// Creates the probe topic when missing (one partition, short retention) and waits until the
/// cluster reports a leader for it, so that the round trip does not include its creation.
async fn ensure_probe_topic(
    config: &KafkaConfig,
    topic: &str,
    deadline: Instant,
) -> Result<(), String> {
    let admin = Admin::new(config).map_err(|e| sentence(&e))?;
    // All topics, not this one by name: asking for one by name may auto-create it on brokers
    // that allow that, with the broker's defaults instead of the probe's.
    let led = |admin: &Admin| -> Result<Option<bool>, String> {
        let metadata = admin
            .client()
            .inner()
            .fetch_metadata(None, remaining(deadline))
            .map_err(|e| format!("cannot read the cluster's metadata: {}", sentence(&e)))?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.error().is_none() && t.partitions().iter().all(|p| p.leader() >= 0)))
    };
    if led(&admin)? == Some(true) {
        return Ok(());
    }
    if led(&admin)?.is_none() {
        let replication = config.topics.health_events.replication_factor;
        let new = NewTopic::new(topic, 1, TopicReplication::Fixed(replication))
            .set("retention.ms", PROBE_RETENTION_MS)
            .set("segment.ms", PROBE_RETENTION_MS);
        let results = admin
            .call(
                "creating the probe topic",
                admin.client().create_topics([&new], &admin.options()),
            )
            .await
            .map_err(|e| sentence(&e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(format!("cannot create the probe topic: {code}")),
            }
        }
    }
    while led(&admin)? != Some(true) {
        if remaining(deadline).is_zero() {
            return Err("the probe topic has no leader yet".to_string());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

// ---------------------------------------------------------------- lag

/// The groups whose lag matters, with the topics each consumes: the engine's group on the
/// inputs, and the history sink's on the outputs it stores.
fn groups(config: &KafkaConfig) -> Vec<(String, Vec<String>)> {
    let t = &config.topics;
    vec![
        (
            config.group.clone(),
            vec![
                config.topic_name(&t.health_events),
                config.topic_name(&t.biometric_updates),
            ],
        ),
        (
            format!("{}-history", config.group),
            vec![
                config.topic_name(&t.alerts),
                config.topic_name(&t.milestones),
            ],
        ),
    ]
}

fn lags(
    config: &KafkaConfig,
    statuses: &[TopicStatus],
    timeout: Duration,
    max_lag: u64,
) -> Vec<Check> {
    let mut checks = Vec::new();
    for (group, topics) in groups(config) {
        let mut reader = client_config(config);
        reader
            .set("group.id", &group)
            .set("enable.auto.commit", "false");
        let consumer: Result<BaseConsumer, _> = reader.create();
        for topic in topics {
            let check = Check::start("kafka.lag", format!("{group} {topic}"));
            let partitions = statuses
                .iter()
                .find(|s| s.name == topic)
                .and_then(|s| s.actual.as_ref())
                .map(|a| a.partitions);
            let Some(partitions) = partitions else {
                checks.push(check.skipped("skipped: the topic is missing"));
                continue;
            };
            let consumer = match &consumer {
                Ok(c) => c,
                Err(e) => {
                    checks
                        .push(check.degraded(format!("cannot create a consumer: {}", sentence(e))));
                    continue;
                }
            };
            let deadline = Instant::now() + timeout;
            checks.push(match lag(consumer, &topic, partitions, deadline) {
                Ok(found) => lag_check(check, &found, max_lag),
                Err(why) => {
                    let after = show_duration(check.elapsed());
                    check.degraded(format!("cannot be read: {why} (after {after})"))
                }
            });
        }
    }
    checks
}

/// A group's position on one topic. On topics written in transactions (the outputs), each
/// commit marker takes an offset, so a group that has read everything still shows a record or
/// so per partition: far below any useful threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lag {
    pub partitions: i32,
    /// Partitions with a committed offset.
    pub committed: i32,
    /// Records between the committed offsets (or the log's start, where there is none: the
    /// group reads from the earliest) and the ends.
    pub records: u64,
}

/// How long to wait before asking a coordinator that is still settling again.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether `e` is the group coordinator not being ready yet (a broker just started).
fn coordinator_settling(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        e.rdkafka_error_code(),
        Some(
            Code::NotCoordinator | Code::CoordinatorLoadInProgress | Code::CoordinatorNotAvailable
        )
    )
}

fn lag(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: i32,
    deadline: Instant,
) -> Result<Lag, String> {
    let mut wanted = TopicPartitionList::new();
    for p in 0..partitions {
        wanted.add_partition(topic, p);
    }
    // A broker that has just started loads its group coordinator on the first group request
    // (and creates `__consumer_offsets`): it answers "not coordinator" or "loading" for a
    // moment, which is not the group's lag. Asked again until the check's deadline.
    let committed = loop {
        match consumer.committed_offsets(wanted.clone(), remaining(deadline)) {
            Ok(committed) => break committed,
            Err(e) if coordinator_settling(&e) && Instant::now() + RETRY_AFTER < deadline => {
                std::thread::sleep(RETRY_AFTER);
            }
            Err(e) => return Err(format!("committed offsets: {}", sentence(&e))),
        }
    };
    let mut found = Lag {
        partitions,
        committed: 0,
        records: 0,
    };
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, remaining(deadline))
            .map_err(|e| format!("partition {p}'s offsets: {}", sentence(&e)))?;
        let from = match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(at)) => {
                found.committed += 1;
                at.max(low)
            }
            _ => low,
        };
        found.records += u64::try_from(high - from).unwrap_or(0);
    }
    Ok(found)
}

/// A group with no committed offsets has not started: informational, not a failure.
fn lag_check(check: super::CheckBuilder, lag: &Lag, max_lag: u64) -> Check {
    let figure = Figure::count("lag", lag.records, "records");
    if lag.committed == 0 {
        return check.ok(format!(
            "no committed offsets yet (the group has not consumed; {} records to read)",
            lag.records
        ));
    }
    let of = if lag.committed == lag.partitions {
        format!("{} partitions", lag.partitions)
    } else {
        format!(
            "{} of {} partitions committed",
            lag.committed, lag.partitions
        )
    };
    if lag.records > max_lag {
        check
            .degraded(format!(
                "lag {} records, above {max_lag} ({of})",
                lag.records
            ))
            .with_figure(figure)
    } else {
        check
            .ok(format!("lag {} records ({of})", lag.records))
            .with_figure(figure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Status;
    use crate::kafka::topics::{Difference, Observed, Wanted};

    fn status(actual: Option<Observed>, differences: Vec<Difference>) -> TopicStatus {
        TopicStatus {
            key: "alerts",
            name: "p.alerts".to_string(),
            configured: Wanted {
                partitions: 6,
                replication_factor: 1,
                retention_ms: 259_200_000,
                cleanup_policy: "delete".to_string(),
            },
            actual,
            differences,
        }
    }

    fn observed(partitions: i32) -> Observed {
        Observed {
            partitions,
            replication_factor: 1,
            retention_ms: Some(259_200_000),
            cleanup_policy: Some("delete".to_string()),
            dynamic_configs: Default::default(),
        }
    }

    #[test]
    fn topics_missing_fail_and_differing_degrade() {
        let c = topic(&status(None, vec![]));
        assert_eq!(c.status, Status::Failing);
        let c = topic(&status(Some(observed(6)), vec![]));
        assert_eq!(c.status, Status::Ok);
        assert_eq!(c.detail, "6 partitions, retention 3d");
        let c = topic(&status(
            Some(observed(3)),
            vec![Difference {
                field: "retention.ms",
                configured: "259200000".to_string(),
                actual: "86400000".to_string(),
            }],
        ));
        assert_eq!(c.status, Status::Degraded);
        assert_eq!(
            c.detail,
            "differs: retention.ms 1d, configured 3d (`vigil topics show`)"
        );
    }

    #[test]
    fn lag_above_the_threshold_degrades_and_no_commits_is_informational() {
        let lag = |committed, records| Lag {
            partitions: 6,
            committed,
            records,
        };
        let c = lag_check(Check::start("kafka.lag", "g t"), &lag(6, 10), 100);
        assert_eq!(
            (c.status, c.detail.as_str()),
            (Status::Ok, "lag 10 records (6 partitions)")
        );
        let c = lag_check(Check::start("kafka.lag", "g t"), &lag(3, 101), 100);
        assert_eq!(c.status, Status::Degraded);
        assert_eq!(
            c.detail,
            "lag 101 records, above 100 (3 of 6 partitions committed)"
        );
        let c = lag_check(Check::start("kafka.lag", "g t"), &lag(0, 5_000), 100);
        assert_eq!(c.status, Status::Ok);
        assert!(c.detail.starts_with("no committed offsets yet"), "{c:?}");
    }

    #[test]
    fn one_silent_broker_of_several_is_degraded_all_silent_fail() {
        let broker = |status| Check::start("kafka.broker", "b").finish(status, "x");
        let mut some = vec![broker(Status::Ok), broker(Status::Failing)];
        settle_brokers(&mut some);
        assert_eq!(some[1].status, Status::Degraded);
        let mut none = vec![broker(Status::Failing), broker(Status::Failing)];
        settle_brokers(&mut none);
        assert!(none.iter().all(|c| c.status == Status::Failing));
    }

    #[test]
    fn silent_brokers_fail_within_the_timeout() {
        // Closed ports: nothing answers, so both fail, and nothing else is asked.
        let closed = |_: u8| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.to_string())
                .expect("a free port")
        };
        let config = KafkaConfig {
            brokers: vec![closed(0), closed(1)],
            ..KafkaConfig::default()
        };
        let started = Instant::now();
        let found = brokers(&config, Duration::from_secs(1));
        // Asked in parallel: about one timeout, not two (the bound is generous for busy hosts).
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(found.len(), 2);
        assert!(
            found.iter().all(|c| c.status == Status::Failing),
            "{found:?}"
        );
        assert!(
            found.iter().all(|c| c.detail.starts_with("unreachable: ")),
            "{found:?}"
        );
    }
}
