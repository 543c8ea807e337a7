//! Transactions on a thread of their own: while one batch commits, the run loop goes on
//! consuming and processing into the next.
//!
//! A Kafka producer has at most one open transaction, and `commit_transaction` blocks until
//! the coordinator has answered — several milliseconds even on loopback, during which a
//! single-threaded loop would process nothing. So the loop gathers a transaction's records,
//! state changes and offsets in a [`Batch`] and hands it to [`Committer`], which produces,
//! waits for acknowledgements and commits on another thread; the loop only waits when the
//! next batch is ready before the previous one has committed (or when a batch grows past
//! [`Batch::FULL`], which bounds memory).
//!
//! Nothing about exactly-once changes: each batch is one transaction holding its outputs, the
//! state changes that go with them and the offsets they were computed from, and batches
//! commit in order.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
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

/// What one transaction commits.
#[derive(Default)]
pub struct Batch {
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

/// Commits batches one at a time on a thread of its own.
pub struct Committer {
    producer: Arc<BaseProducer>,
    topics: Arc<OutTopics>,
    timeout: Duration,
    counters: InputCounters,
    in_flight: Option<JoinHandle<anyhow::Result<Committed>>>,
    /// The last committed batch's record buffer, emptied, for the next batch: a fresh one
    /// would grow through page faults at every transaction.
    spare: Vec<OutRecord>,
}

/// What the committing thread hands back.
struct Committed {
    summary: StreamSummary,
    records: Vec<OutRecord>,
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
            spare: Vec::new(),
        }
    }

    /// True while a batch is committing.
    pub fn busy(&self) -> bool {
        self.in_flight.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Starts committing `batch`. The previous batch must be [`Committer::finish`]ed first.
    pub fn start(&mut self, batch: Batch, group: ConsumerGroupMetadata) -> anyhow::Result<()> {
        if self.in_flight.is_some() {
            return Err(anyhow!("a transaction is still committing"));
        }
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
            Some(handle) => {
                let committed = handle
                    .join()
                    .map_err(|_| anyhow!("the committing thread panicked"))??;
                self.spare = committed.records;
                Ok(committed.summary)
            }
        }
    }

    /// An empty batch to gather the next transaction in, reusing the last one's buffer.
    pub fn spare_batch(&mut self) -> Batch {
        Batch {
            records: std::mem::take(&mut self.spare),
            ..Batch::default()
        }
    }
}

impl Drop for Committer {
    /// A session that ends with a commit in flight lets it settle, so the next session's
    /// `init_transactions` does not race it.
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// One transaction: the batch's records, then (once all are acknowledged) its offsets, then
/// commit.
fn commit(
    producer: &BaseProducer,
    topics: &OutTopics,
    batch: Batch,
    group: &ConsumerGroupMetadata,
    timeout: Duration,
    counters: &InputCounters,
) -> anyhow::Result<Committed> {
    let started = Instant::now();
    let mut records = batch.records;
    let result = (|| -> anyhow::Result<()> {
        producer.begin_transaction()?;
        for record in records.drain(..) {
            let mut out = BaseRecord::<[u8], [u8]>::to(topics.name(record.topic));
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
            send(producer, out)?;
        }
        let mut offsets = TopicPartitionList::new();
        for &(input, partition, offset) in &batch.offsets {
            let topic = topics
                .inputs
                .get(input)
                .ok_or_else(|| anyhow!("no input topic {input}"))?;
            offsets.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        }
        await_deliveries(producer, timeout);
        producer.send_offsets_to_transaction(&offsets, group, timeout)?;
        producer.commit_transaction(timeout)?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            let mut tally = batch.tally;
            counters.record(&mut tally);
            telemetry::metrics().transaction_committed(started.elapsed().as_secs_f64());
            Ok(Committed {
                summary: StreamSummary {
                    commits: 1,
                    ..batch.counts
                },
                records,
            })
        }
        Err(e) => {
            telemetry::metrics().transaction_aborted();
            // An abortable error leaves the producer usable, but the engines hold the aborted
            // work either way: the session ends and the next one restores them.
            let _ = producer.abort_transaction(timeout);
            Err(anyhow!("transaction failed: {e:#}"))
        }
    }
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
