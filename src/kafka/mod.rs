//! Kafka, the production mode's edge: clients built from [`crate::config::KafkaConfig`], topic
//! provisioning and the exactly-once streaming run.
//!
//! - `session`: the run — sessions in the consumer group, the loop, rebalances, restarts;
//!   with its parts: restoring a task from its changelog (`session::restore`), where the
//!   inputs end (`session::ends`), what the loop tells operators (`session::gauges`);
//! - `source`: polling and staging records, watermarks, the topics' check;
//! - `merge`: the event-time merge of a task's input partitions;
//! - `task`: a task's engine, the records it processes through the shared routing step
//!   ([`crate::io::route`]), and what they produce;
//! - `workers`: the threads that process tasks;
//! - `transaction`: batches of output and their commits, on their own thread;
//! - [`topics`]: `vigil topics` (provisioning and showing the topics);
//! - [`history_sink`]: the history kept from the committed output topics.
//!
//! Every call to the brokers has a deadline (`kafka.request-timeout`), so an unreachable broker
//! is an error with the addresses tried, never a hang. The admin calls are async (librdkafka's
//! admin API answers on its own thread); callers run them on a small tokio runtime
//! ([`runtime`]).
mod error;
pub mod history_sink;
mod merge;
mod session;
mod source;
mod task;
pub mod topics;
mod transaction;
mod workers;

pub use session::gauges::StreamStatus;
pub use session::{instance_id, run, StreamOptions, StreamSummary};

use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, Context};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::metadata::Metadata;
use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

/// The offset `list` holds for `topic`'s `partition`, when it holds a real one.
fn offset_in(list: &rdkafka::TopicPartitionList, topic: &str, partition: i32) -> Option<i64> {
    real_offset(list.find_partition(topic, partition)?.offset())
}

/// `offset` when it is a position in the log, not a logical one (beginning, end, invalid…).
fn real_offset(offset: rdkafka::Offset) -> Option<i64> {
    match offset {
        rdkafka::Offset::Offset(at) => Some(at),
        _ => None,
    }
}

/// librdkafka settings for `config`: Vigil's own, then the `[kafka.librdkafka]` passthrough.
pub fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    let timeout_ms = config.request_timeout.as_millis().max(1).to_string();
    c.set("bootstrap.servers", config.bootstrap_servers())
        .set("client.id", &config.client_id)
        .set("socket.timeout.ms", &timeout_ms)
        .set("socket.connection.setup.timeout.ms", &timeout_ms);
    for (key, value) in &config.librdkafka {
        c.set(key, value);
    }
    c
}

/// A single-threaded runtime for the admin calls of one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("cannot start the async runtime")
}

/// An admin client with the deadline every call gets.
pub struct Admin {
    client: AdminClient<DefaultClientContext>,
    pub(crate) timeout: Duration,
    brokers: String,
}

impl Admin {
    /// Connects lazily: librdkafka only reaches the brokers on the first call.
    pub fn new(config: &KafkaConfig) -> anyhow::Result<Admin> {
        let client: AdminClient<DefaultClientContext> = client_config(config)
            .create()
            .context("cannot create the Kafka admin client (check [kafka.librdkafka])")?;
        Ok(Admin {
            client,
            timeout: config.request_timeout.max(Duration::from_millis(1)),
            brokers: config.bootstrap_servers(),
        })
    }

    pub fn client(&self) -> &AdminClient<DefaultClientContext> {
        &self.client
    }

    /// Options that give the broker and librdkafka the same deadline.
    pub fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.timeout))
            .operation_timeout(Some(self.timeout))
    }

    /// The cluster's metadata: topics, partitions, replicas. Also the reachability check: an
    /// unreachable cluster fails here within the deadline.
    pub fn metadata(&self) -> anyhow::Result<Metadata> {
        self.client
            .inner()
            .fetch_metadata(None, self.timeout)
            .map_err(|e| {
                anyhow!(
                    "cannot reach the Kafka brokers {} within {} ms ({e}); is the broker \
                     running? (brokers come from kafka.brokers or VIGIL_KAFKA_BROKERS)",
                    self.brokers,
                    self.timeout.as_millis()
                )
            })
    }

    /// Awaits one admin call with a deadline a little past the one librdkafka was given, so a
    /// call that librdkafka never answers still ends.
    pub async fn call<T, E: std::fmt::Display>(
        &self,
        what: &str,
        future: impl Future<Output = Result<T, E>>,
    ) -> anyhow::Result<T> {
        let deadline = self.timeout + Duration::from_secs(2);
        match tokio::time::timeout(deadline, future).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(anyhow!("{what} failed on {}: {e}", self.brokers)),
            Err(_) => Err(anyhow!(
                "{what}: no answer from {} within {} ms",
                self.brokers,
                deadline.as_millis()
            )),
        }
    }
}
