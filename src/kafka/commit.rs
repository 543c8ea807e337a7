//! Transactions: records go out as they arise, the commit runs on a thread of its own.
//!
//! A transaction's records are sent into it while the loop processes (Kafka Streams does the
//! same), so their acknowledgements, and the registration of their partitions with the
//! transaction coordinator, overlap with processing. Every commit interval the loop hands the
//! transaction to [`Committer`], whose thread waits for what is still unacknowledged, adds the
//! consumed offsets and commits: several milliseconds even on loopback, during which the loop
//! goes on processing. A producer has one transaction at a time, so records that arise while
//! a commit is in flight wait in the [`Batch`] and are sent when the next transaction begins
//! (the loop waits only when they pass [`Batch::FULL`], which bounds memory).
//!
//! Nothing about exactly-once changes: each transaction holds its outputs, the state changes
//! that go with them and the offsets they were computed from, and transactions commit in
//! order.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, PurgeConfig};
use rdkafka::{Offset, TopicPartitionList};

use super::stream::StreamSummary;
use crate::telemetry::{self, InputCounters, Tally};

/// Where an outgoing record goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutTopic {
    Alerts,
    /// Firings a silence covered: stored in the history, kept off `Alerts`.
    Silenced,
    Milestones,
    DeadLetter,
    Late,
    State,
}

/// The names behind [`OutTopic`] and the input topics (by position), as configured.
#[derive(Debug)]
pub struct OutTopics {
    pub inputs: Vec<String>,
    pub alerts: String,
    pub silenced: String,
    pub milestones: String,
    pub dead_letter: String,
    pub late: String,
    pub state: String,
}

impl OutTopics {
    fn name(&self, topic: OutTopic) -> &str {
        match topic {
            OutTopic::Alerts => &self.alerts,
            OutTopic::Silenced => &self.silenced,
            OutTopic::Milestones => &self.milestones,
            OutTopic::DeadLetter => &self.dead_letter,
            OutTopic::Late => &self.late,
            OutTopic::State => &self.state,
        }
    }
}

/// One record to produce, owned so that it can cross to the committing thread.
pub struct OutRecord {
    pub topic: OutTopic,
    /// `None`: the partitioner chooses by key.
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Option<OwnedHeaders>,
}

/// The open transaction's bookkeeping: records not sent yet, and what it will commit.
#[derive(Default)]
pub struct Batch {
    /// Records not sent yet (they arose while the previous transaction committed).
    pub records: Vec<OutRecord>,
    /// (input topic by position, partition, offset of the next record to process).
    pub offsets: Vec<(usize, i32, i64)>,
    /// Counts of the work in the batch, added to the run's once it commits.
    pub counts: StreamSummary,
    /// The same work for the metrics, by input, type and rule: added to them once it commits.
    pub tally: Tally,
}

impl Batch {
    /// Records after which the loop waits for the previous commit rather than gather more.
    pub const FULL: usize = 200_000;

    /// True when committing would change nothing: no processed input, nothing to produce.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.counts == StreamSummary::default()
    }
}

/// The transactional producer: sends into the open transaction from the loop's thread and
/// commits on a thread of its own, one transaction at a time.
pub struct Committer {
    producer: Arc<BaseProducer>,
    topics: Arc<OutTopics>,
    timeout: Duration,
    counters: InputCounters,
    in_flight: Option<JoinHandle<anyhow::Result<StreamSummary>>>,
    /// A transaction is begun and not yet handed to the committing thread.
    open: bool,
}

impl Committer {
    /// `counters` receive each batch's tally when, and only when, its transaction commits.
    pub fn new(
        producer: Arc<BaseProducer>,
        topics: Arc<OutTopics>,
        timeout: Duration,
        counters: InputCounters,
    ) -> Self {
        Committer {
            producer,
            topics,
            timeout,
            counters,
            in_flight: None,
            open: false,
        }
    }

    /// True while a batch is committing.
    pub fn busy(&self) -> bool {
        self.in_flight.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// True while a transaction is begun and not handed over to commit.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Sends `records` (emptying it) into the open transaction, beginning one if none is
    /// open. The previous transaction must be [`Committer::finish`]ed first.
    pub fn send(&mut self, records: &mut Vec<OutRecord>) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.begin()?;
        for record in records.drain(..) {
            let mut out = BaseRecord::<[u8], [u8]>::to(self.topics.name(record.topic));
            if let Some(partition) = record.partition {
                out = out.partition(partition);
            }
            if let Some(key) = &record.key {
                out = out.key(&key[..]);
            }
            if let Some(payload) = &record.payload {
                out = out.payload(&payload[..]);
            }
            if let Some(headers) = record.headers {
                out = out.headers(headers);
            }
            send(&self.producer, out)?;
        }
        Ok(())
    }

    fn begin(&mut self) -> anyhow::Result<()> {
        if self.in_flight.is_some() {
            return Err(anyhow!("a transaction is still committing"));
        }
        if !self.open {
            self.producer.begin_transaction()?;
            self.open = true;
        }
        Ok(())
    }

    /// Aborts the open transaction, if any: after a rebalance its records may belong to
    /// partitions this instance no longer owns. A producer that cannot abort cannot go on
    /// (librdkafka refuses every other transactional call until an abort completes): the
    /// error ends the session.
    pub fn abort_open(&mut self) -> anyhow::Result<()> {
        if std::mem::take(&mut self.open) {
            telemetry::metrics().transaction_aborted();
            abort(&self.producer, self.timeout)
                .map_err(|e| anyhow!("cannot abort the open transaction: {e}"))?;
        }
        Ok(())
    }

    /// Commits the open transaction (beginning one if none is open: a batch may hold only
    /// offsets) with `batch`'s offsets, on the committing thread. `batch.records` must have
    /// been sent. The previous transaction must be [`Committer::finish`]ed first.
    pub fn start(&mut self, batch: Batch, group: ConsumerGroupMetadata) -> anyhow::Result<()> {
        if !batch.records.is_empty() {
            return Err(anyhow!("a transaction is committing with records not sent"));
        }
        self.begin()?;
        self.open = false;
        let producer = Arc::clone(&self.producer);
        let topics = Arc::clone(&self.topics);
        let timeout = self.timeout;
        let counters = self.counters.clone();
        let handle = std::thread::Builder::new()
            .name("vigil-commit".into())
            .spawn(move || commit(&producer, &topics, batch, &group, timeout, &counters))
            .map_err(|e| anyhow!("cannot start the committing thread: {e}"))?;
        self.in_flight = Some(handle);
        Ok(())
    }

    /// Waits for the batch in flight, if any: the counts it committed (zero when none was in
    /// flight), or why it failed (the transaction is then aborted).
    pub fn finish(&mut self) -> anyhow::Result<StreamSummary> {
        match self.in_flight.take() {
            None => Ok(StreamSummary::default()),
            Some(handle) => handle
                .join()
                .map_err(|_| anyhow!("the committing thread panicked"))?,
        }
    }
}

impl Drop for Committer {
    /// A session that ends with a commit in flight lets it settle, so the next session's
    /// `init_transactions` does not race it; a transaction still open is aborted.
    fn drop(&mut self) {
        let _ = self.finish();
        if let Err(e) = self.abort_open() {
            tracing::warn!(error = %format!("{e:#}"), "leaving the transaction to be aborted by the next session");
        }
    }
}

/// Ends one transaction: once every record sent is acknowledged, its offsets, then commit.
fn commit(
    producer: &BaseProducer,
    topics: &OutTopics,
    batch: Batch,
    group: &ConsumerGroupMetadata,
    timeout: Duration,
    counters: &InputCounters,
) -> anyhow::Result<StreamSummary> {
    let started = Instant::now();
    let result = (|| -> anyhow::Result<()> {
        let mut offsets = TopicPartitionList::new();
        for &(input, partition, offset) in &batch.offsets {
            let topic = topics
                .inputs
                .get(input)
                .ok_or_else(|| anyhow!("no input topic {input}"))?;
            offsets.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        }
        await_deliveries(producer, timeout);
        let acknowledged = started.elapsed();
        producer.send_offsets_to_transaction(&offsets, group, timeout)?;
        let offsets_added = started.elapsed();
        producer.commit_transaction(timeout)?;
        // Where a slow commit spent its time tells a slow broker (acknowledgements) from a
        // slow coordinator (offsets, commit) when latency rises.
        let took = started.elapsed();
        if took >= SLOW_COMMIT {
            tracing::debug!(
                acknowledgements_ms = millis(acknowledged),
                offsets_ms = millis(offsets_added - acknowledged),
                commit_ms = millis(took - offsets_added),
                "slow transaction commit"
            );
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            let mut tally = batch.tally;
            counters.record(&mut tally);
            telemetry::metrics().transaction_committed(started.elapsed().as_secs_f64());
            Ok(StreamSummary {
                commits: 1,
                ..batch.counts
            })
        }
        Err(e) => {
            telemetry::metrics().transaction_aborted();
            // An abortable error leaves the producer usable, but the engines hold the aborted
            // work either way: the session ends and the next one restores them.
            let _ = abort(producer, timeout);
            Err(anyhow!("transaction failed: {e:#}"))
        }
    }
}

/// Commits at least this long are logged (debug) with where the time went.
const SLOW_COMMIT: Duration = Duration::from_millis(50);

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Serves delivery reports until every record sent is acknowledged (or `limit` passes), so
/// that the flush inside `commit_transaction` finds nothing in flight. rdkafka's own flush
/// polls with 100 ms waits and charges each report served to its timeout: left to it, a
/// commit could wait for nothing or give up early with many reports queued.
fn await_deliveries(producer: &BaseProducer, limit: Duration) {
    let deadline = Instant::now() + limit;
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        producer.poll(Duration::from_millis(1));
    }
}

/// Aborts the open transaction. Its records still queued or in flight are purged first and
/// their delivery reports served here: librdkafka's abort waits for those reports, and with a
/// `BaseProducer` nothing else serves them while it blocks, so an abort with records in flight
/// timed out ("Failed to flush all outstanding messages") and left the producer unusable.
fn abort(producer: &BaseProducer, timeout: Duration) -> rdkafka::error::KafkaResult<()> {
    producer.purge(PurgeConfig::default().queue().inflight());
    await_deliveries(producer, timeout);
    producer.abort_transaction(timeout)
}

/// Enqueues a record, waiting for room when librdkafka's queue is full.
fn send(producer: &BaseProducer, mut record: BaseRecord<'_, [u8], [u8]>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                r,
            )) if Instant::now() < deadline => {
                record = r;
                producer.poll(Duration::from_millis(20));
            }
            Err((e, _)) => return Err(anyhow!("cannot produce: {e}")),
        }
    }
}
