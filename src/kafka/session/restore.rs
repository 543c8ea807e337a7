//! Restoring a task: its engine from its changelog partition (`read_committed`), and where
//! each of its input partitions resumes.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::engine::{Engine, RestoreError, StateRecord};
use crate::io::route::Router;
use crate::status::buffer::StatusBuffer;
use crate::telemetry::{self, Tally};

use super::Session;
use crate::kafka::client_config;
use crate::kafka::error::SessionError;
use crate::kafka::merge::{InputPartition, Merge};
use crate::kafka::source::position;
use crate::kafka::task::{Task, TaskOutput};

impl Session<'_> {
    /// Reads task `partition`'s changelog to its end (committed records only) and builds its
    /// engine from it.
    pub(super) fn restore_task(&mut self, partition: i32) -> Result<Task, SessionError> {
        let started = Instant::now();
        let options = self.options;
        let _restoring = Restoring::new(&options.status.restoring, partition);
        let mut reader_config = client_config(self.config);
        reader_config
            .set("group.id", format!("{}-restore", self.config.group))
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "20");
        let reader: BaseConsumer = reader_config
            .create()
            .map_err(|e| SessionError::Fatal(anyhow!("cannot create the changelog reader: {e}")))?;
        let (low, high) = reader.fetch_watermarks(&self.topics.state, partition, self.timeout)?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&self.topics.state, partition, Offset::Beginning)?;
        reader.assign(&assignment)?;
        let mut records = Vec::new();
        let mut last_progress = Instant::now();
        // An empty changelog has no end to reach: librdkafka signals EOF only after a fetch.
        let mut at_end = high <= low;
        while !at_end {
            telemetry::heartbeat().beat();
            match reader.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    last_progress = Instant::now();
                    records.push(StateRecord {
                        key: m.key().unwrap_or_default().to_vec(),
                        value: m.payload().map(<[u8]>::to_vec),
                    });
                }
                // The end must be the high watermark read above, not merely the last stable
                // offset: a transaction that committed just before (this instance's own last
                // one, or the previous owner's) may not have its markers written yet, and
                // stopping short of them would restore state older than the committed offsets.
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    at_end = position(&reader, &self.topics.state, partition)? >= high;
                }
                Some(Err(e)) => {
                    tracing::warn!(task = partition, error = %e, "changelog reader error")
                }
                None => {
                    if last_progress.elapsed() > self.timeout {
                        return Err(SessionError::Retry(anyhow!(
                            "restoring task {partition}: no progress reading {} for {} ms",
                            self.topics.state,
                            self.timeout.as_millis()
                        )));
                    }
                }
            }
        }
        let n = records.len();
        let engine = Engine::restored(
            Arc::clone(&self.options.rules),
            self.options.engine.clone(),
            records,
        )
        .map_err(|e| {
            // The record's key holds a user id: only debug logs may show it.
            tracing::debug!(task = partition, error = %e, "the changelog cannot be restored");
            let why = match e {
                RestoreError::Corrupt { reason, .. } => {
                    format!("a changelog record is not Vigil state: {reason}")
                }
                RestoreError::Format { found, .. } => {
                    format!("a changelog record has format {found}, which this Vigil does not read")
                }
            };
            SessionError::Fatal(anyhow!("task {partition}: {why}"))
        })?;
        tracing::info!(
            task = partition,
            records = n,
            keys = engine.keys_in_state(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "state restored"
        );
        // Where each input partition of the task resumes: a partition whose committed offset
        // is its end has nothing to wait for.
        let mut inputs: Vec<InputPartition> = (0..self.topics.inputs.len())
            .map(|_| InputPartition::default())
            .collect();
        let mut wanted = TopicPartitionList::new();
        for topic in &self.topics.inputs {
            wanted.add_partition(topic, partition);
        }
        let committed = self.consumer.committed_offsets(wanted, self.timeout)?;
        for e in committed.elements() {
            if let (Some(i), Offset::Offset(at)) = (
                self.topics.inputs.iter().position(|t| t == e.topic()),
                e.offset(),
            ) {
                inputs[i].received_to = Some(at);
            }
        }
        let status = StatusBuffer::new(&self.options.rules);
        let engine_bytes = engine.state_bytes();
        Ok(Task {
            partition,
            engine,
            incoming: Vec::new(),
            merge: Merge::new(inputs.len()),
            inputs,
            out: TaskOutput {
                records: Vec::new(),
                tally: Tally::default(),
                status,
            },
            router: Router::default(),
            changes: Vec::new(),
            bytes: engine_bytes,
        })
    }
}

/// Marks a task as being restored for readiness, until dropped (on every way out).
struct Restoring<'a>(&'a AtomicI64);

impl<'a> Restoring<'a> {
    fn new(slot: &'a AtomicI64, partition: i32) -> Self {
        slot.store(i64::from(partition) + 1, Ordering::Relaxed);
        Restoring(slot)
    }
}

impl Drop for Restoring<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Relaxed);
    }
}
