//! Transactions: records go out as they arise, the commit runs on a thread of its own.
//!
//! A transaction's records are sent into it while the loop processes (Kafka Streams does the
//! same), so their acknowledgements, and the registration of their partitions with the
//! transaction coordinator, overlap with processing. Every commit interval the loop hands the
//! transaction to [`Committer`], whose thread waits for what is still unacknowledged, adds the
//! consumed offsets and commits: several milliseconds even on loopback, during which the loop
//! goes on processing.
//!
//! A producer has one transaction at a time, so the committer keeps two transactional
//! producers (`pipelined-transactions`) and alternates: while one commits transaction N, the
//! records that arise go into transaction N + 1 on the other as soon as every record of N is
//! acknowledged (so none of N + 1 can land before one of N in a partition's log), and their
//! acknowledgements overlap with the rest of N's commit (the offsets, the end of the
//! transaction, its markers). With one producer those records wait in the [`Batch`] until N
//! has committed, and an alert raised during a slow commit waits for that commit, then its own.
//!
//! Nothing about exactly-once changes: each transaction holds its outputs, the state changes
//! that go with them and the offsets they were computed from, and transactions commit in
//! order — N + 1 starts committing only once N has committed, and a failed N ends the session,
//! which aborts N + 1. Each producer has a transactional id of its own, derived from the
//! instance's, so a restarted instance settles both: it completes a commit that was under way
//! and aborts the transaction that was still open.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, PurgeConfig};
use rdkafka::{Offset, TopicPartitionList};

use crate::io::route::Summary;
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
    pub counts: Summary,
    /// The same work for the metrics, by input, type and rule: added to them once it commits.
    pub tally: Tally,
}

impl Batch {
    /// Records after which the loop waits for the previous commit rather than gather more.
    pub const FULL: usize = 200_000;

    /// True when committing would change nothing: no processed input, nothing to produce.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.counts == Summary::default()
    }
}

/// The transactional producers: sends into the open transaction from the loop's thread and
/// commits on a thread of its own, one transaction at a time, in order.
pub struct Committer {
    /// Used in turn, one transaction each (see the module's documentation).
    producers: Vec<Arc<BaseProducer>>,
    /// The producer whose transaction is open, or opens at the next send.
    current: usize,
    topics: Arc<OutTopics>,
    timeout: Duration,
    counters: InputCounters,
    in_flight: Option<InFlight>,
    /// A transaction is begun on `current` and not yet handed to the committing thread.
    open: bool,
}

impl Committer {
    /// `producers` (at least one, each with `init_transactions` done) are used in turn;
    /// `counters` receive each batch's tally when, and only when, its transaction commits.
    pub fn new(
        producers: Vec<Arc<BaseProducer>>,
        topics: Arc<OutTopics>,
        timeout: Duration,
        counters: InputCounters,
    ) -> anyhow::Result<Self> {
        if producers.is_empty() {
            return Err(anyhow!("a committer needs a producer"));
        }
        Ok(Committer {
            producers,
            current: 0,
            topics,
            timeout,
            counters,
            in_flight: None,
            open: false,
        })
    }

    /// True while a batch is committing.
    pub fn busy(&self) -> bool {
        self.in_flight
            .as_ref()
            .is_some_and(|f| !f.handle.is_finished())
    }

    /// True when records can be sent now: the next transaction is on a producer that is not
    /// committing, and every record of the transaction committing is in the log. Sent any
    /// earlier, a record of the next transaction could be appended before one of the
    /// previous (each producer has its own connection): a key's outputs would reach
    /// `read_committed` consumers out of order, and its changelog would end on a stale state.
    pub fn can_send(&self) -> bool {
        self.in_flight
            .as_ref()
            .is_none_or(|f| f.on != self.current && f.acknowledged.load(Ordering::Acquire))
    }

    /// True while a transaction is begun and not handed over to commit.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Sends `records` (emptying it) into the open transaction, beginning one if none is
    /// open. Only when [`Committer::can_send`].
    pub fn send(&mut self, records: &mut Vec<OutRecord>) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.begin()?;
        let producer = &self.producers[self.current];
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
            send(producer, out)?;
        }
        Ok(())
    }

    fn begin(&mut self) -> anyhow::Result<()> {
        if !self.can_send() {
            return Err(anyhow!(
                "the next transaction's producer is still committing"
            ));
        }
        if !self.open {
            self.producers[self.current].begin_transaction()?;
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
            abort(&self.producers[self.current], self.timeout)
                .map_err(|e| anyhow!("cannot abort the open transaction: {e}"))?;
        }
        Ok(())
    }

    /// Commits the open transaction (beginning one if none is open: a batch may hold only
    /// offsets) with `batch`'s offsets, on the committing thread; the next transaction goes
    /// to the next producer. `batch.records` must have been sent, and the previous
    /// transaction [`Committer::finish`]ed: transactions commit in order.
    pub fn start(&mut self, batch: Batch, group: ConsumerGroupMetadata) -> anyhow::Result<()> {
        if !batch.records.is_empty() {
            return Err(anyhow!("a transaction is committing with records not sent"));
        }
        if self.in_flight.is_some() {
            return Err(anyhow!("the previous transaction is still committing"));
        }
        self.begin()?;
        self.open = false;
        let on = self.current;
        let producer = Arc::clone(&self.producers[on]);
        let topics = Arc::clone(&self.topics);
        let timeout = self.timeout;
        let counters = self.counters.clone();
        let acknowledged = Arc::new(AtomicBool::new(false));
        let ends = Ends {
            group,
            timeout,
            acknowledged: Arc::clone(&acknowledged),
        };
        let handle = std::thread::Builder::new()
            .name("vigil-commit".into())
            .spawn(move || commit(&producer, &topics, batch, &ends, &counters))
            .map_err(|e| anyhow!("cannot start the committing thread: {e}"))?;
        self.in_flight = Some(InFlight {
            on,
            handle,
            acknowledged,
        });
        self.current = (on + 1) % self.producers.len();
        Ok(())
    }

    /// Waits for the batch in flight, if any: the counts it committed (`None` when none was
    /// in flight), or why it failed (the transaction is then aborted).
    pub fn finish(&mut self) -> anyhow::Result<Option<Summary>> {
        match self.in_flight.take() {
            None => Ok(None),
            Some(InFlight { handle, .. }) => handle
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

/// A transaction handed to the committing thread.
struct InFlight {
    /// The producer it is on.
    on: usize,
    handle: JoinHandle<anyhow::Result<Option<Summary>>>,
    /// Set once every record sent into it is acknowledged.
    acknowledged: Arc<AtomicBool>,
}

/// What ending a transaction needs besides its producer and batch.
struct Ends {
    group: ConsumerGroupMetadata,
    timeout: Duration,
    acknowledged: Arc<AtomicBool>,
}

/// Ends one transaction: once every record sent is acknowledged, its offsets, then commit.
fn commit(
    producer: &BaseProducer,
    topics: &OutTopics,
    batch: Batch,
    ends: &Ends,
    counters: &InputCounters,
) -> anyhow::Result<Option<Summary>> {
    let timeout = ends.timeout;
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
        if producer.in_flight_count() == 0 {
            ends.acknowledged.store(true, Ordering::Release);
        }
        let acknowledged = started.elapsed();
        producer.send_offsets_to_transaction(&offsets, &ends.group, timeout)?;
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
            Ok(Some(batch.counts))
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
///
/// librdkafka sends lingering batches at once (ignoring `linger.ms`) only while a call to
/// `rd_kafka_flush` is under way, and with delivery reports as events that call serves none of
/// them: it waits until they are all served. So a scoped thread sits in it, which makes the
/// last records of the transaction go out without their linger, while this one serves the
/// reports; the flush returns as the last report is served (or at `limit`, as this loop does).
fn await_deliveries(producer: &BaseProducer, limit: Duration) {
    if producer.in_flight_count() == 0 {
        return;
    }
    let deadline = Instant::now() + limit;
    let limit_ms = i32::try_from(limit.as_millis()).unwrap_or(i32::MAX);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // SAFETY: the client pointer is valid while `producer` lives, which outlives this
            // scope; `rd_kafka_flush` may be called from any thread.
            unsafe { rdkafka::bindings::rd_kafka_flush(producer.client().native_ptr(), limit_ms) };
        });
        while producer.in_flight_count() > 0 && Instant::now() < deadline {
            producer.poll(Duration::from_millis(1));
        }
    });
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

/// The broker the tests below need: the integration tests' and the bench's helper.
#[cfg(test)]
#[path = "../../tests/common/kafka.rs"]
mod kafka_env;

#[cfg(test)]
mod tests {
    //! Against the real broker (`VIGIL_KAFKA_BROKERS`, from `scripts/services up`); skipped
    //! without one, except with `CI=true`, where that fails.

    use std::time::SystemTime;

    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message};

    use super::*;

    fn producer(brokers: &str, id: &str, linger_ms: u32) -> Arc<BaseProducer> {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("transactional.id", id)
            .set("enable.idempotence", "true")
            .set("linger.ms", linger_ms.to_string())
            .create()
            .expect("producer");
        producer
            .init_transactions(Duration::from_secs(30))
            .expect("init_transactions");
        Arc::new(producer)
    }

    fn record(payload: &str) -> OutRecord {
        OutRecord {
            topic: OutTopic::Alerts,
            partition: Some(0),
            key: Some(b"user-1".to_vec()),
            payload: Some(payload.as_bytes().to_vec()),
            headers: None,
        }
    }

    /// The payloads of `topic`'s partition 0 that a `read_committed` consumer sees, in order.
    fn committed(brokers: &str, topic: &str, expect: usize) -> Vec<String> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("{topic}-reader"))
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, 0, Offset::Beginning)
            .expect("partition");
        consumer.assign(&list).expect("assign");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        while got.len() < expect && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
        }
        got
    }

    /// The next transaction's records are held until the committing one's are in the log.
    /// Here the committing producer lingers 300 ms and the next one not at all: a record
    /// sent into the next transaction as soon as the first began committing would land first.
    #[test]
    fn transactions_on_two_producers_reach_the_log_in_order() {
        let Some(brokers) = super::kafka_env::brokers() else {
            return;
        };
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let topic = format!("vigil-commit-order-{nanos}");
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("admin");
        let runtime = crate::kafka::runtime().expect("runtime");
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let created = runtime
            .block_on(admin.create_topics(
                &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
                &options,
            ))
            .expect("create_topics");
        assert!(created.iter().all(Result::is_ok), "{created:?}");

        let topics = Arc::new(OutTopics {
            inputs: vec![topic.clone()],
            alerts: topic.clone(),
            silenced: topic.clone(),
            milestones: topic.clone(),
            dead_letter: topic.clone(),
            late: topic.clone(),
            state: topic.clone(),
        });
        let producers = vec![
            producer(&brokers, &format!("{topic}-0"), 300),
            producer(&brokers, &format!("{topic}-1"), 0),
        ];
        let group: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("{topic}-group"))
            .create()
            .expect("consumer");
        let metadata = || group.group_metadata().expect("group metadata");
        let counters = telemetry::metrics().input_counters(&[topic.as_str()]);
        let mut committer =
            Committer::new(producers, topics, Duration::from_secs(30), counters).expect("new");

        assert!(committer.can_send());
        committer.send(&mut vec![record("first")]).expect("send");
        committer
            .start(Batch::default(), metadata())
            .expect("start");
        assert!(
            !committer.can_send(),
            "the next transaction may not take records while the first's are lingering"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !committer.can_send() {
            assert!(
                Instant::now() < deadline,
                "the first transaction never acknowledged"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        committer.send(&mut vec![record("second")]).expect("send");
        committer.finish().expect("first commit");
        committer
            .start(Batch::default(), metadata())
            .expect("start");
        committer.finish().expect("second commit");

        assert_eq!(committed(&brokers, &topic, 2), ["first", "second"]);
        let _ = runtime.block_on(admin.delete_topics(&[topic.as_str()], &options));
    }
}
