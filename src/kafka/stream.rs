//! `vigil run --kafka`: exactly-once consume–process–produce.
//!
//! - **Tasks.** Partition N of every input topic forms task N, with an engine of its own
//!   (Kafka Streams' model): the input topics must be co-partitioned (same partition count,
//!   keyed by user id with the same partitioner), and the `range` assignor gives a task's
//!   partitions to one instance. The task's clock (the latest event time it has seen) drives
//!   its timers, so the outputs do not depend on which instance runs the task.
//! - **Order.** Within a task the partitions are merged by event time (Kafka Streams merges by
//!   record timestamp, which producers often set to the send time; the engine cares about event
//!   time), waiting up to `max-task-idle` for a partition that has nothing buffered and is not at
//!   its end; a backlog is therefore processed in one deterministic order, and one topic read
//!   ahead of the other does not make the other's events late.
//! - **Transactions.** Every `commit-interval`, one transaction commits the outputs, dead
//!   letters, late events, the state changes of every task (its changelog partition) and the
//!   consumed offsets (bound to the group's generation, so an instance that lost its partitions
//!   in a rebalance cannot commit for them).
//! - **Restore.** A task's engine is rebuilt from its changelog partition, read with
//!   `read_committed`, when the task is first seen in a session. Any failure or rebalance
//!   aborts the open transaction and drops the engines; they are restored again from the
//!   changelog, which matches the committed offsets exactly.
//! - **Failures.** An unreachable broker, a failed commit or a fenced producer ends the
//!   session; the run starts a new one after a backoff (0.5 s doubling to 30 s), logging why.
//!   Nothing is lost: what was not committed is processed again from the committed offsets.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use bytes::{Bytes, BytesMut};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::client_config;
use super::commit::{Batch, Committer, OutRecord, OutTopic, OutTopics};
use crate::config::KafkaConfig;
use crate::engine::{Disposition, Engine, EngineConfig, OutputEvent, RestoreError, StateRecord};
use crate::event::{DecodeError, Decoder, Event};
use crate::io::admit::{future_reason, SystemClock, WallClock};
use crate::rules::{RuleKind, RuleSet};
use crate::status::buffer::{silence_for, StatusBuffer};
use crate::status::StatusStore;
use crate::telemetry::{self, Check, InputCounters, Readiness, Tally};

/// Largest payload copied whole to the dead-letter or late-events topic: under the broker's
/// default `message.max.bytes` (1 MiB), headers included.
const FORWARD_LIMIT: usize = 900 * 1024;

/// What a run needs besides the Kafka configuration.
pub struct StreamOptions {
    pub rules: Arc<RuleSet>,
    pub engine: EngineConfig,
    pub max_message_bytes: usize,
    /// Stop (committing first) once every assigned partition is at its end and nothing has
    /// arrived for this long: for backtests and tests; `None` runs until signalled.
    pub exit_when_idle: Option<Duration>,
    /// Set by SIGINT/SIGTERM: finish and commit the open transaction, then return.
    pub stop: Arc<AtomicBool>,
    /// Silences to honour and the status to keep (Redis, or in process).
    pub shared: Option<Arc<StatusStore>>,
    /// What the loop tells readiness (see [`StreamStatus::register`]).
    pub status: Arc<StreamStatus>,
}

/// The run loop's state as readiness sees it: written by the loop, read by the HTTP thread.
#[derive(Debug, Default)]
pub struct StreamStatus {
    /// True while a session is in the consumer group (from its start to its end).
    session: AtomicBool,
    /// Input partitions assigned, as of the loop's last look (about once a second).
    assigned: AtomicUsize,
    /// Tasks whose engine is in memory.
    tasks: AtomicUsize,
    /// 1 + the task being restored from the changelog; 0 when none is.
    restoring: AtomicI64,
}

impl StreamStatus {
    /// Registers the conditions "partitions assigned" and "state restored" with `readiness`.
    pub fn register(self: &Arc<Self>, readiness: &Readiness) {
        let status = Arc::clone(self);
        readiness.register("partitions assigned", move || status.partitions());
        let status = Arc::clone(self);
        readiness.register("state restored", move || status.restored());
    }

    fn partitions(&self) -> Check {
        if !self.session.load(Ordering::Relaxed) {
            return Check::not_ready("not in the consumer group (starting, or starting again)");
        }
        match self.assigned.load(Ordering::Relaxed) {
            0 => Check::not_ready(
                "no input partitions assigned (joining the group, or more instances than \
                 partitions)",
            ),
            n => Check::ready(format!("{n} input partitions")),
        }
    }

    fn restored(&self) -> Check {
        if !self.session.load(Ordering::Relaxed) {
            return Check::not_ready("not in the consumer group (starting, or starting again)");
        }
        match self.restoring.load(Ordering::Relaxed) {
            0 => Check::ready(format!(
                "{} tasks in memory (a task is restored when its first record arrives)",
                self.tasks.load(Ordering::Relaxed)
            )),
            p => Check::not_ready(format!("restoring task {} from the changelog", p - 1)),
        }
    }
}

/// Totals of committed work over the whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamSummary {
    pub events: u64,
    pub alerts: u64,
    pub milestones: u64,
    pub late: u64,
    pub dead_lettered: u64,
    /// Alerts a silence kept off the alerts topic (counted in `alerts` too).
    pub silenced: u64,
    pub commits: u64,
    pub aborts: u64,
    pub sessions: u64,
}

impl StreamSummary {
    pub fn add(&mut self, other: &StreamSummary) {
        self.events += other.events;
        self.alerts += other.alerts;
        self.milestones += other.milestones;
        self.late += other.late;
        self.dead_lettered += other.dead_lettered;
        self.silenced += other.silenced;
        self.commits += other.commits;
        self.aborts += other.aborts;
        self.sessions += other.sessions;
    }
}

impl std::fmt::Display for StreamSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "events in: {}, alerts: {}, milestones: {}, late: {}, dead-lettered: {}, \
             transactions committed: {}, aborted: {}",
            self.events,
            self.alerts,
            self.milestones,
            self.late,
            self.dead_lettered,
            self.commits,
            self.aborts
        )?;
        if self.silenced > 0 {
            write!(f, ", silenced: {}", self.silenced)?;
        }
        Ok(())
    }
}

/// Runs until stopped (or idle, with `exit_when_idle`); retries broker failures forever.
pub fn run(config: &KafkaConfig, options: &StreamOptions) -> anyhow::Result<StreamSummary> {
    let mut summary = StreamSummary::default();
    let mut backoff = Duration::from_millis(500);
    loop {
        summary.sessions += 1;
        let started = Instant::now();
        match Session::start(config, options).and_then(|mut s| s.run(&mut summary)) {
            Ok(()) => return Ok(summary),
            Err(SessionError::Fatal(e)) => return Err(e),
            Err(SessionError::Retry(e)) => {
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_millis(500);
                }
                let backoff_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(
                    error = %format!("{e:#}"),
                    backoff_ms,
                    "the session failed; starting again in {backoff_ms} ms (nothing uncommitted \
                     is lost: it is processed again from the committed offsets)"
                );
                let until = Instant::now() + backoff;
                while Instant::now() < until {
                    telemetry::heartbeat().beat();
                    if options.stop.load(Ordering::Relaxed) {
                        return Ok(summary);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[derive(Debug)]
enum SessionError {
    /// Configuration or topology that no retry can fix.
    Fatal(anyhow::Error),
    /// The brokers, a transaction or a rebalance failed; start a new session.
    Retry(anyhow::Error),
}

impl From<anyhow::Error> for SessionError {
    fn from(e: anyhow::Error) -> Self {
        SessionError::Retry(e)
    }
}

impl From<KafkaError> for SessionError {
    fn from(e: KafkaError) -> Self {
        SessionError::Retry(e.into())
    }
}

/// Counts rebalances for the run loop, which reacts after `poll` returns.
#[derive(Default)]
struct RebalanceFlag {
    count: AtomicU64,
}

impl RebalanceFlag {
    fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}

impl ClientContext for RebalanceFlag {}

impl ConsumerContext for RebalanceFlag {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.count.fetch_add(1, Ordering::SeqCst);
        if let Rebalance::Error(e) = rebalance {
            tracing::warn!(error = %e, "rebalance error");
        }
    }
}

/// One buffered input record: what processing needs of a Kafka message, copied out of
/// librdkafka's buffer on arrival. The bytes stay for the dead-letter and late-events topics;
/// the task's thread decodes them.
struct Record {
    offset: i64,
    /// The key's bytes, then the payload's, in a shared block of [`Staging::arena`].
    bytes: Bytes,
    /// Where the key ends in `bytes`; `None` for a record without a key.
    key_len: Option<usize>,
    has_payload: bool,
    /// `None` until the task's thread has decoded the record.
    decoded: Option<Result<Event, String>>,
    /// Dead-lettered for an event time in the future (counted apart).
    future: bool,
    /// Where the record sorts in its task's merge: its event time, or the earliest possible
    /// time for a record that only goes to the dead-letter topic. Set when decoded.
    merge_time: i64,
}

impl Record {
    /// The message's key and payload are copied into `arena`, whose blocks records share.
    fn copied(message: &BorrowedMessage<'_>, arena: &mut BytesMut) -> Record {
        Record::new(message.offset(), message.key(), message.payload(), arena)
    }

    fn new(offset: i64, key: Option<&[u8]>, payload: Option<&[u8]>, arena: &mut BytesMut) -> Self {
        let key_len = key.map(<[u8]>::len);
        let len = key_len.unwrap_or(0) + payload.map_or(0, <[u8]>::len);
        if arena.capacity() < len {
            arena.reserve(len.max(ARENA_BLOCK));
        }
        arena.extend_from_slice(key.unwrap_or_default());
        arena.extend_from_slice(payload.unwrap_or_default());
        Record {
            offset,
            bytes: arena.split().freeze(),
            key_len,
            has_payload: payload.is_some(),
            decoded: None,
            future: false,
            merge_time: i64::MIN,
        }
    }

    fn payload(&self) -> Option<&[u8]> {
        self.has_payload
            .then(|| &self.bytes[self.key_len.unwrap_or(0)..])
    }

    /// The key and the payload, copied out of the arena.
    fn into_parts(self) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let key_len = self.key_len.unwrap_or(0);
        let payload = self.has_payload.then(|| self.bytes[key_len..].to_vec());
        (
            self.key_len.map(|_| self.bytes[..key_len].to_vec()),
            payload,
        )
    }
}

/// One input partition of a task.
#[derive(Default)]
struct InputPartition {
    /// Decoded, waiting for the merge.
    buffered: VecDeque<Record>,
    /// Offset after the last record processed, to commit.
    processed_to: Option<i64>,
    /// Offset after the last record received.
    received_to: Option<i64>,
}

/// Records polled and not yet handed to their tasks, by partition: the loop hands each task
/// its records in one piece ([`Session::hand_to_tasks`]), a step per task rather than per
/// record on the loop's thread, and the tasks' threads file them.
#[derive(Default)]
struct Staging {
    /// By partition number: (input, record), in the order polled.
    by_partition: Vec<Vec<(usize, Record)>>,
    records: usize,
    /// Where records' bytes are copied: one allocation per block of records instead of one
    /// per record. Allocated on the loop's thread and freed on a task's, a buffer per record
    /// cost the allocator a cross-thread free each, and the loop fresh pages.
    arena: BytesMut,
}

impl Staging {
    fn push(&mut self, input: usize, message: &BorrowedMessage<'_>) -> Result<(), SessionError> {
        let index = Staging::index_of(message.partition())?;
        let record = Record::copied(message, &mut self.arena);
        self.add(input, index, record);
        Ok(())
    }

    fn add(&mut self, input: usize, index: usize, record: Record) {
        if self.by_partition.len() <= index {
            self.by_partition.resize_with(index + 1, Vec::new);
        }
        self.by_partition[index].push((input, record));
        self.records += 1;
    }

    fn index_of(partition: i32) -> Result<usize, SessionError> {
        usize::try_from(partition).map_err(|_| {
            SessionError::Fatal(anyhow!(
                "librdkafka delivered a record of partition {partition}"
            ))
        })
    }

    fn partition_of(index: usize) -> Result<i32, SessionError> {
        i32::try_from(index)
            .map_err(|_| SessionError::Fatal(anyhow!("partition {index} is out of range")))
    }

    fn clear(&mut self) {
        self.by_partition.iter_mut().for_each(Vec::clear);
        self.records = 0;
    }
}

/// Partition N of every input topic, with the engine that owns its users. A task is processed
/// by one thread at a time; different tasks share nothing, so they run in parallel.
struct Task {
    partition: i32,
    engine: Engine,
    /// Records handed over by the loop (input, record), in the order polled, not yet filed
    /// into `inputs`: the loop moves a pass's records for the task in one piece, and the
    /// task's own thread files and decodes them.
    incoming: Vec<(usize, Record)>,
    /// By position in [`OutTopics::inputs`].
    inputs: Vec<InputPartition>,
    /// What the event-time merge of `inputs` knows of their ends, and how long it has waited.
    merge: Merge,
    /// What processing produced since the loop last gathered it into the batch.
    out: TaskOutput,
    /// Scratch for the engine's outputs of one event.
    outputs: Vec<OutputEvent>,
    /// Scratch for the engine's state changes.
    changes: Vec<StateRecord>,
    /// Records until the next one whose processing time is measured.
    sample_in: u32,
    /// Bytes in state as last measured (see [`Session::update_gauges`]).
    bytes: usize,
}

/// A task's part of the next transaction, gathered into the [`Batch`] by the loop.
struct TaskOutput {
    records: Vec<OutRecord>,
    counts: StreamSummary,
    tally: Tally,
    /// For the shared state: last event times and outputs.
    status: StatusBuffer,
}

impl Batch {
    /// Moves a task's output into the batch; the task keeps its buffers' capacity.
    fn absorb(&mut self, out: &mut TaskOutput) {
        self.records.append(&mut out.records);
        self.counts.add(&std::mem::take(&mut out.counts));
        self.tally.absorb(&mut out.tally);
    }
}

/// What every task reads while the tasks are processed on several threads.
struct TaskContext<'a> {
    decoder: &'a Decoder,
    topics: &'a OutTopics,
    shared: Option<&'a StatusStore>,
    counters: &'a InputCounters,
    max_message_bytes: usize,
    max_task_idle_ms: i64,
    /// The wall clock when the pass began: events dated more than the engine's
    /// `max_future_skew_ms` ahead of it are dead-lettered (read once a pass, not per record).
    now_ms: i64,
}

/// The threads that process tasks: with one, the loop's own thread does it.
enum Workers {
    Inline,
    Pool(rayon::ThreadPool),
}

impl Workers {
    fn new(threads: usize) -> anyhow::Result<Workers> {
        if threads <= 1 {
            return Ok(Workers::Inline);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("vigil-task-{i}"))
            .build()
            .context("cannot start the processing threads")?;
        Ok(Workers::Pool(pool))
    }

    /// Runs `work` on every task that `amount` gives work (records or keys to handle), in
    /// parallel when there are threads and enough work for them, and `meanwhile` on the
    /// calling thread while the pool works (or after the work, when it is done in line). Both
    /// always run; the first error of `work`, if any, and what `meanwhile` returned.
    fn each_while<W, T>(
        &self,
        tasks: &mut BTreeMap<i32, Task>,
        amount: impl Fn(&Task) -> usize,
        work: W,
        meanwhile: impl FnOnce() -> T,
    ) -> (anyhow::Result<()>, T)
    where
        W: Fn(&mut Task) -> anyhow::Result<()> + Sync,
    {
        let mut total = 0;
        let mut selected: Vec<(usize, &mut Task)> = tasks
            .values_mut()
            .map(|t| (amount(t), t))
            .filter(|(n, _)| *n > 0)
            .inspect(|(n, _)| total += n)
            .collect();
        // Largest first: the pool takes the jobs in the order spawned, so a large task left
        // for last would finish alone while the other threads idle.
        selected.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
        let selected = selected.into_iter().map(|(_, t)| t);
        match self {
            // Little work is done in line: waking another thread costs more than it saves, and
            // on a busy machine the wake-up alone can take milliseconds, which live traffic
            // would see as latency.
            Workers::Pool(pool) if selected.len() > 1 && total >= PARALLEL_FROM => {
                let failed: Mutex<Option<anyhow::Error>> = Mutex::new(None);
                let work = &work;
                let failed_ref = &failed;
                let side = pool.in_place_scope(|scope| {
                    for task in selected {
                        scope.spawn(move |_| {
                            if let Err(e) = work(task) {
                                if let Ok(mut slot) = failed_ref.lock() {
                                    slot.get_or_insert(e);
                                }
                            }
                        });
                    }
                    meanwhile()
                });
                let failed = failed.into_inner().ok().flatten();
                (failed.map_or(Ok(()), Err), side)
            }
            _ => {
                let result = selected.into_iter().try_for_each(work);
                (result, meanwhile())
            }
        }
    }
}

struct Session<'a> {
    options: &'a StreamOptions,
    config: &'a KafkaConfig,
    topics: Arc<OutTopics>,
    /// The input topics' names for librdkafka's C API, made once: the merge asks for
    /// watermarks per record.
    inputs_c: Vec<CString>,
    consumer: BaseConsumer<RebalanceFlag>,
    committer: Committer,
    decoder: Decoder,
    tasks: BTreeMap<i32, Task>,
    workers: Workers,
    /// The next transaction, gathered while the previous one commits.
    batch: Batch,
    timeout: Duration,
    last_input: Instant,
    /// When [`Session::all_processed`] last asked the brokers for committed offsets.
    committed_asked: Option<Instant>,
    /// What the shared state gets at the next hand-off.
    shared_status: StatusBuffer,
    /// The input counters, resolved once; the batch's tally is added to them on commit.
    counters: InputCounters,
    /// The task whose bytes in state the next gauge update measures (one per update).
    measure_next: i32,
    /// Records polled while the tasks processed, for the loop to hand to them next.
    staging: Staging,
    /// Rebalances the loop has reacted to (see [`RebalanceFlag`]).
    rebalances_seen: u64,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let status = &self.options.status;
        status.session.store(false, Ordering::Relaxed);
        status.assigned.store(0, Ordering::Relaxed);
        status.tasks.store(0, Ordering::Relaxed);
    }
}

impl<'a> Session<'a> {
    fn start(config: &'a KafkaConfig, options: &'a StreamOptions) -> Result<Self, SessionError> {
        let t = &config.topics;
        let inputs = vec![
            config.topic_name(&t.health_events),
            config.topic_name(&t.biometric_updates),
        ];
        let inputs_c = inputs
            .iter()
            .map(|name| CString::new(name.as_str()))
            .collect::<Result<_, _>>()
            .map_err(|e| SessionError::Fatal(anyhow!("topic name: {e}")))?;
        let topics = OutTopics {
            inputs,
            alerts: config.topic_name(&t.alerts),
            silenced: config.topic_name(&t.silenced),
            milestones: config.topic_name(&t.milestones),
            dead_letter: config.topic_name(&t.dead_letter),
            late: config.topic_name(&t.late_events),
            state: config.topic_name(&t.state),
        };
        let instance = instance_id(config);
        let timeout = config.request_timeout.max(Duration::from_millis(1));

        let mut producer_config = client_config(config);
        producer_config
            .set(
                "transaction.timeout.ms",
                config
                    .streaming
                    .transaction_timeout
                    .as_millis()
                    .max(1000)
                    .to_string(),
            )
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "2")
            .set("compression.type", "lz4")
            .set("message.max.bytes", "2000000");
        let count = if config.streaming.pipelined_transactions {
            2
        } else {
            1
        };
        let mut producers = Vec::with_capacity(count);
        for n in 0..count {
            let producer: BaseProducer = producer_config
                .clone()
                .set(
                    "transactional.id",
                    transactional_id(&config.group, &instance, n),
                )
                .create()
                .map_err(|e| {
                    SessionError::Fatal(anyhow!("cannot create the Kafka producer: {e}"))
                })?;
            // Also aborts (or completes) whatever this instance's previous run left open, so
            // the changelog and the offsets read below are settled.
            producer.init_transactions(timeout).with_context(|| {
                format!(
                    "cannot start Kafka transactions with {} (is the broker up?)",
                    config.bootstrap_servers()
                )
            })?;
            producers.push(Arc::new(producer));
        }

        let mut consumer_config = client_config(config);
        consumer_config
            .set("group.id", &config.group)
            .set("group.instance.id", &instance)
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "range")
            // librdkafka counts the shared consumer queue against each partition's
            // `queued.min.messages`, and once past it waits `fetch.queue.backoff.ms` (1 s by
            // default) before fetching that partition again: with a dozen partitions a backlog
            // then arrives in bursts four times a second, and the loop idles in between
            // (measured: 122 k events/s with the default, 430 k with 10 ms).
            .set("fetch.queue.backoff.ms", "10");
        let consumer: BaseConsumer<RebalanceFlag> = consumer_config
            .create_with_context(RebalanceFlag::default())
            .map_err(|e| SessionError::Fatal(anyhow!("cannot create the Kafka consumer: {e}")))?;

        check_topics(&consumer, &topics, timeout)?;
        let topics = Arc::new(topics);
        let inputs: Vec<&str> = topics.inputs.iter().map(String::as_str).collect();
        consumer.subscribe(&inputs)?;
        tracing::info!(
            instance = %instance,
            topics = %inputs.join(", "),
            group = %config.group,
            "consuming the input topics"
        );
        let counters = telemetry::metrics().input_counters(&inputs);
        let workers = Workers::new(config.streaming.threads()).map_err(SessionError::Fatal)?;
        options.status.session.store(true, Ordering::Relaxed);
        Ok(Session {
            options,
            config,
            committer: Committer::new(producers, Arc::clone(&topics), timeout, counters.clone())
                .map_err(SessionError::Fatal)?,
            topics,
            inputs_c,
            consumer,
            decoder: Decoder::with_max_line_bytes(options.max_message_bytes),
            tasks: BTreeMap::new(),
            workers,
            batch: Batch::default(),
            timeout,
            last_input: Instant::now(),
            committed_asked: None,
            shared_status: StatusBuffer::new(&options.rules),
            counters,
            measure_next: 0,
            staging: Staging::default(),
            rebalances_seen: 0,
        })
    }

    fn run(&mut self, summary: &mut StreamSummary) -> Result<(), SessionError> {
        let commit_every = self
            .config
            .streaming
            .commit_interval
            .max(Duration::from_millis(1));
        let mut last_commit = Instant::now();
        let mut last_report = Instant::now();
        let mut last_gauges: Option<Instant> = None;
        loop {
            telemetry::heartbeat().beat();
            if last_gauges.is_none_or(|at| at.elapsed() >= GAUGES_EVERY) {
                last_gauges = Some(Instant::now());
                self.update_gauges();
            }
            if last_report.elapsed() >= Duration::from_secs(10) {
                last_report = Instant::now();
                let buffered = self.buffered();
                tracing::info!(
                    events = summary.events,
                    alerts = summary.alerts,
                    milestones = summary.milestones,
                    late = summary.late,
                    dead_lettered = summary.dead_lettered,
                    commits = summary.commits,
                    aborts = summary.aborts,
                    tasks = ?self.tasks.keys().collect::<Vec<_>>(),
                    buffered,
                    "progress"
                );
            }
            if self.options.stop.load(Ordering::Relaxed) {
                self.commit_all(summary)?;
                tracing::info!("stopped: the open transaction is committed");
                return Ok(());
            }
            // With no commit in flight, this pass's records (state changes included) go out
            // right after it, into the open transaction. During a commit its outputs go out
            // into the next transaction (on the other producer) once the committing one's
            // records are acknowledged. A backlog's state changes wait until the hand-off or a
            // pass with no commit, so that those of a key coalesce in the engine; live
            // traffic's go out with its outputs, so that the hand-off has little left to send
            // and its commit little to wait for.
            let sending = !self.committer.busy();
            // Records the hand-off polled join this pass: from a backlog, the tasks process
            // them while this thread polls the next ones.
            let waiting = self.hand_to_tasks()?;
            let (received, processed) = self.pass(sending, waiting > 0)?;
            self.after_rebalance(summary)?;
            self.hand_to_tasks()?;
            // A backlog (a full poll) waits for the next pass, whose tasks process it while this
            // thread polls the records after it; live traffic is processed at once.
            if !processed && !self.overlaps(received) {
                self.process_buffered(sending || self.committer.can_send())?;
            }
            if received > 0 {
                self.last_input = Instant::now();
            }
            if self.batch.records.len() >= Batch::FULL {
                self.settle(summary)?;
            }
            // Settled once here, the commit's end is known for the rest of the iteration: the
            // next commit starts only once this one has ended.
            let committed = !self.committer.busy();
            if committed {
                self.settle(summary)?;
            }
            if self.committer.can_send() {
                self.committer.send(&mut self.batch.records)?;
            }
            if committed
                && last_commit.elapsed() >= commit_every
                && (self.committer.is_open() || !self.batch.is_empty())
            {
                if self.hand_off(self.overlaps(received))? > 0 {
                    self.last_input = Instant::now();
                }
                self.after_rebalance(summary)?;
                last_commit = Instant::now();
            }
            if let Some(idle) = self.options.exit_when_idle {
                if self.last_input.elapsed() >= idle && self.all_processed() {
                    self.commit_all(summary)?;
                    tracing::info!("idle: every assigned partition is processed and committed");
                    return Ok(());
                }
            }
        }
    }

    /// After a rebalance the engines may hold work that will not commit: abort it and drop
    /// them; they are restored from the changelog as their partitions deliver records again,
    /// from the committed offsets.
    fn after_rebalance(&mut self, summary: &mut StreamSummary) -> Result<(), SessionError> {
        let count = self.consumer.context().count();
        if count == self.rebalances_seen {
            return Ok(());
        }
        self.rebalances_seen = count;
        // The batch in flight holds only partitions this instance owned when it was gathered,
        // and its offsets are bound to that generation: it commits whole or not at all. What
        // was gathered since is dropped with the engines.
        if let Err(e) = self.settle(summary) {
            tracing::warn!(error = %format!("{e:#}"), "the transaction in flight failed around a rebalance");
        }
        if self.committer.is_open() {
            summary.aborts += 1;
            self.committer.abort_open()?;
        }
        self.batch = Batch::default();
        self.tasks.clear();
        // The new assignment resumes from the committed offsets: it has had no time yet to
        // deliver what lies after them, so the idle clock starts again.
        self.last_input = Instant::now();
        self.update_gauges();
        tracing::info!(
            "partitions assigned anew (a rebalance); each task is restored from the changelog"
        );
        Ok(())
    }

    /// Sets the gauges (assigned partitions, consumer lag, users, bytes in state) and the
    /// readiness status, about once a second. Measuring a task's bytes walks every key's
    /// state (milliseconds for 20 000 users, a stall live traffic would feel), so each update
    /// measures one task, in turn, and the gauge sums the latest figures.
    fn update_gauges(&mut self) {
        let mut lag = vec![0i64; self.topics.inputs.len()];
        let mut assigned = 0usize;
        if let Ok(assignment) = self.consumer.assignment() {
            let positions = self.consumer.position().ok();
            for e in assignment.elements() {
                let Some(input) = self.topics.inputs.iter().position(|n| n == e.topic()) else {
                    continue;
                };
                assigned += 1;
                let Some(high) =
                    high_watermark(&self.consumer, &self.inputs_c[input], e.partition())
                else {
                    continue;
                };
                // The next record to process: the first one buffered, else where the consumer
                // stands (past transaction markers), else where the task resumed. A partition
                // this session has received nothing from yet counts as caught up.
                let slot = self.tasks.get(&e.partition()).map(|t| &t.inputs[input]);
                let next = match slot.and_then(|s| s.buffered.front()) {
                    Some(head) => Some(head.offset),
                    None => positions
                        .as_ref()
                        .and_then(|p| super::offset_in(p, e.topic(), e.partition()))
                        .or_else(|| slot.and_then(|s| s.received_to)),
                };
                if let Some(next) = next {
                    lag[input] += (high - next).max(0);
                }
            }
        }
        for (input, records) in lag.into_iter().enumerate() {
            self.counters.set_lag(input, records);
        }
        let users = self.tasks.values().map(|t| t.engine.keys_in_state()).sum();
        let next = (self.tasks.range(self.measure_next..).next())
            .or_else(|| self.tasks.iter().next())
            .map(|(p, _)| *p);
        if let Some(task) = next.and_then(|p| self.tasks.get_mut(&p)) {
            task.bytes = task.engine.state_bytes();
            self.measure_next = task.partition + 1;
        }
        let bytes = self.tasks.values().map(|t| t.bytes).sum();
        let metrics = telemetry::metrics();
        metrics.set_assigned_partitions(assigned);
        metrics.set_state(users, Some(bytes));
        let status = &self.options.status;
        status.assigned.store(assigned, Ordering::Relaxed);
        status.tasks.store(self.tasks.len(), Ordering::Relaxed);
    }

    /// Hands each task the records staged for it, as a whole (the task files them on its own
    /// thread when next processed), restoring the tasks of partitions new to this session.
    /// Returns how many records it handed over.
    fn hand_to_tasks(&mut self) -> Result<usize, SessionError> {
        let records = self.staging.records;
        if records == 0 {
            return Ok(0);
        }
        for index in 0..self.staging.by_partition.len() {
            if self.staging.by_partition[index].is_empty() {
                continue;
            }
            let partition = Staging::partition_of(index)?;
            if !self.tasks.contains_key(&partition) {
                let task = self.restore_task(partition)?;
                self.tasks.insert(partition, task);
                let status = &self.options.status;
                status.tasks.store(self.tasks.len(), Ordering::Relaxed);
            }
            let staged = &mut self.staging.by_partition[index];
            if let Some(task) = self.tasks.get_mut(&partition) {
                if task.incoming.is_empty() {
                    // The task's empty buffer, with its capacity, takes the next records.
                    std::mem::swap(&mut task.incoming, staged);
                } else {
                    task.incoming.append(staged);
                }
            }
        }
        self.staging.records = 0;
        Ok(records)
    }

    /// Reads task `partition`'s changelog to its end (committed records only) and builds its
    /// engine from it.
    fn restore_task(&mut self, partition: i32) -> Result<Task, SessionError> {
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
                counts: StreamSummary::default(),
                tally: Tally::default(),
                status,
            },
            outputs: Vec::new(),
            changes: Vec::new(),
            sample_in: telemetry::metrics::LATENCY_SAMPLE_EVERY,
            bytes: engine_bytes,
        })
    }

    /// Records buffered in all tasks.
    fn buffered(&self) -> usize {
        self.tasks.values().map(Task::buffered).sum()
    }

    /// True when `records` are a backlog worth the other threads: processed (or their state
    /// changes encoded) on the pool while this thread polls.
    fn overlaps(&self, records: usize) -> bool {
        records >= PARALLEL_FROM && matches!(self.workers, Workers::Pool(_))
    }

    /// Asks, for each task with records buffered, where its input partitions end (their high
    /// watermarks) and how far the consumer has read them, right before processing (once per
    /// processing: the calls take librdkafka's locks, which its fetcher needs too, and the
    /// answers only change as fetches arrive).
    fn set_reach(&mut self) {
        if !self.tasks.values().any(|t| t.buffered() > 0) {
            return;
        }
        // The consumer's position passes transaction markers and aborted records, which are
        // never delivered: without it, a partition whose log ends with a marker would never
        // look read to its end. It counts only while no record is staged: a staged record is
        // read but not yet in its task, whose partition must not look read past it.
        let positions = if self.staging.records == 0 {
            self.consumer.position().ok()
        } else {
            None
        };
        for task in self.tasks.values_mut() {
            if task.buffered() == 0 {
                continue;
            }
            for (input, name) in self.inputs_c.iter().enumerate() {
                let topic = &self.topics.inputs[input];
                let (high, position) = match positions
                    .as_ref()
                    .map(|p| p.find_partition(topic, task.partition))
                {
                    // Not assigned here (the topics' partition counts changed under a
                    // running group): nothing will come to wait for.
                    Some(None) => (Some(0), Some(0)),
                    Some(Some(e)) => (
                        high_watermark(&self.consumer, name, task.partition),
                        super::real_offset(e.offset()),
                    ),
                    None => (high_watermark(&self.consumer, name, task.partition), None),
                };
                task.merge.set_reach(input, high, position);
            }
        }
    }

    /// Polls the consumer into `staged`; returns how many records it polled and whether it
    /// processed the buffered records meanwhile. With a backlog buffered (and threads to
    /// share it) the tasks process it in parallel while this thread polls the next pass's
    /// records (with `drain`, their state changes go out too). Otherwise it only polls, waiting
    /// a little for more: the loop processes right after, so live traffic goes out in the
    /// transaction it arrived in.
    fn pass(&mut self, drain: bool, fresh: bool) -> Result<(usize, bool), SessionError> {
        if !self.overlaps(self.buffered()) {
            // Records the hand-off polled (`fresh`) are waiting already: no waiting for more
            // then. While a transaction commits, look back soon: the records gathered
            // meanwhile go out as soon as it has.
            let wait = if fresh {
                Duration::ZERO
            } else {
                Duration::from_millis(if self.committer.busy() { 1 } else { 5 })
            };
            let polled = poll_into(&self.consumer, &self.topics.inputs, &mut self.staging, wait)?;
            return Ok((polled, false));
        }
        let polled = self.process_tasks(drain, true)?;
        Ok((polled, true))
    }

    /// Processes every task's buffered records that the timestamp merge allows now (the
    /// tasks in parallel when there is enough work), with `drain` their state changes too,
    /// and gathers what they produced into the batch.
    fn process_buffered(&mut self, drain: bool) -> Result<(), SessionError> {
        self.process_tasks(drain, false).map(|_| ())
    }

    /// [`Session::process_buffered`]; with `poll`, this thread polls the records after them
    /// into `staged` meanwhile, and returns how many it polled.
    fn process_tasks(&mut self, drain: bool, poll: bool) -> Result<usize, SessionError> {
        self.set_reach();
        let context = TaskContext {
            decoder: &self.decoder,
            topics: &self.topics,
            shared: self.options.shared.as_deref(),
            counters: &self.counters,
            max_message_bytes: self.options.max_message_bytes,
            max_task_idle_ms: i64::try_from(self.config.streaming.max_task_idle.as_millis())
                .unwrap_or(i64::MAX),
            now_ms: SystemClock.now_ms(),
        };
        let consumer = &self.consumer;
        let staging = &mut self.staging;
        let (processed, polled) = self.workers.each_while(
            &mut self.tasks,
            |t| task_work(t, drain),
            |t| t.process_ready(&context, drain),
            || {
                if poll {
                    poll_into(consumer, &context.topics.inputs, staging, Duration::ZERO)
                } else {
                    Ok(0)
                }
            },
        );
        self.gather();
        processed?;
        polled
    }

    /// Moves what the tasks produced into the batch and the shared-state buffer.
    fn gather(&mut self) {
        for task in self.tasks.values_mut() {
            self.batch.absorb(&mut task.out);
            self.shared_status.absorb(&mut task.out.status);
        }
    }

    /// Waits for the transaction in flight, if any, and adds what it committed to `summary`.
    fn settle(&mut self, summary: &mut StreamSummary) -> anyhow::Result<()> {
        match self.committer.finish() {
            Ok(committed) => {
                summary.add(&committed);
                Ok(())
            }
            Err(e) => {
                summary.aborts += 1;
                Err(e)
            }
        }
    }

    /// Completes the open transaction (every task's state changes, the offsets it was computed
    /// from) and starts committing it; returns how many records it polled meanwhile (staged
    /// for the next pass). With `backlog` (the last poll was full) the tasks encode their state
    /// changes in parallel; live traffic's are few, and encoded in line. The previous one must
    /// be settled.
    fn hand_off(&mut self, backlog: bool) -> Result<usize, SessionError> {
        if let Some(shared) = &self.options.shared {
            self.shared_status.hand_to(shared);
        }
        // The offsets' generation: a rebalance during the poll below makes this transaction
        // one the group no longer accepts offsets for, so it is left to `after_rebalance`.
        let group = self
            .consumer
            .group_metadata()
            .ok_or_else(|| anyhow!("the consumer has no group metadata"))?;
        let rebalances = self.consumer.context().count();
        // From a backlog, encoding the state changes is a good part of the work: each task does
        // its own, in parallel, while this thread polls the next records (the loop's own thread
        // is otherwise the bottleneck). Live, waking the other threads would cost more latency
        // than the encoding: it is done in line unless the changes are many.
        let weight = if backlog { PARALLEL_FROM } else { 1 };
        let consumer = &self.consumer;
        let inputs = &self.topics.inputs;
        let staging = &mut self.staging;
        let (drained, polled) = self.workers.each_while(
            &mut self.tasks,
            |t| t.engine.keys_changed() * weight,
            |task| {
                task.drain_changelog();
                Ok(())
            },
            || poll_into(consumer, inputs, staging, Duration::ZERO),
        );
        drained?;
        let polled = polled?;
        self.gather();
        if self.consumer.context().count() != rebalances {
            return Ok(polled);
        }
        let mut batch = std::mem::take(&mut self.batch);
        self.committer.send(&mut batch.records)?;
        // The next batch keeps the (now empty) record buffer: a fresh one would grow through
        // page faults at every transaction.
        self.batch.records = std::mem::take(&mut batch.records);
        for (&partition, task) in &self.tasks {
            for (input, slot) in task.inputs.iter().enumerate() {
                if let Some(offset) = slot.processed_to {
                    batch.offsets.push((input, partition, offset));
                }
            }
        }
        self.committer.start(batch, group)?;
        Ok(polled)
    }

    /// Commits everything processed so far and waits until it is committed.
    fn commit_all(&mut self, summary: &mut StreamSummary) -> Result<(), SessionError> {
        self.settle(summary)?;
        if self.committer.is_open() || !self.batch.is_empty() {
            self.hand_off(false)?;
            // A rebalance during the hand-off leaves the transaction uncommitted: it is
            // aborted, and the partitions' next owner processes those records again.
            self.after_rebalance(summary)?;
            self.settle(summary)?;
        }
        Ok(())
    }

    /// True when nothing is buffered and every assigned partition is at its end: read to its
    /// high watermark, or, for a partition this session has received nothing from, committed
    /// up to it (asked of the brokers at most once a second). Not while the group session is
    /// lost (a broker away revokes the assignment: the input has not ended), and not on a
    /// partition whose end is unknown.
    fn all_processed(&mut self) -> bool {
        if self.staging.records > 0 || self.tasks.values().any(|t| t.buffered() > 0) {
            return false;
        }
        if self.consumer.assignment_lost() {
            return false;
        }
        // Positions pass transaction markers, which no record reaches (see `set_reach`).
        let Ok(assignment) = self.consumer.position() else {
            return false;
        };
        let mut untouched = TopicPartitionList::new();
        for e in assignment.elements() {
            let Some(input) = self.topics.inputs.iter().position(|n| n == e.topic()) else {
                continue;
            };
            let Some((low, high)) =
                watermarks(&self.consumer, &self.inputs_c[input], e.partition())
            else {
                return false;
            };
            let position = super::real_offset(e.offset());
            let received = self
                .tasks
                .get(&e.partition())
                .and_then(|t| t.inputs[input].received_to)
                .max(position);
            match received {
                Some(at) if at >= high => {}
                Some(_) => return false,
                // Nothing in it at all (or nothing left after retention): nothing to wait for.
                None if low >= high => {}
                None => {
                    if untouched
                        .add_partition_offset(e.topic(), e.partition(), Offset::Offset(high))
                        .is_err()
                    {
                        return false;
                    }
                }
            }
        }
        if untouched.count() == 0 {
            return true;
        }
        if self
            .committed_asked
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return false;
        }
        self.committed_asked = Some(Instant::now());
        let limit = self.timeout.min(Duration::from_secs(2));
        let Ok(committed) = self.consumer.committed_offsets(untouched.clone(), limit) else {
            return false;
        };
        committed.elements().iter().all(|e| {
            let end = super::offset_in(&untouched, e.topic(), e.partition());
            matches!((e.offset(), end), (Offset::Offset(at), Some(end)) if at >= end)
        })
    }
}

/// Records (or keys with state changes) below which a pass is not worth other threads.
const PARALLEL_FROM: usize = 2_000;

/// Bytes of a block of [`Staging::arena`] (larger records get a block of their own size).
const ARENA_BLOCK: usize = 256 * 1024;

/// Most records one pass of the loop takes before processing them (see the loop). A pass
/// ends at a barrier (the threads wait for the slowest task, the loop gathers and sends), so
/// a backlog goes faster in larger passes: paired runs measured 40 000 ~6 % faster than
/// 20 000, and 80 000 ~6 % faster than 40 000 (BENCHMARKS.md). Live traffic's passes are far
/// smaller either way.
const PASS_RECORDS: usize = 80_000;

/// How often the loop sets the gauges (lag, state, assigned partitions) and readiness.
const GAUGES_EVERY: Duration = Duration::from_secs(1);

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

impl Task {
    /// Records received and not processed yet, over its inputs.
    fn buffered(&self) -> usize {
        self.incoming.len() + self.inputs.iter().map(|i| i.buffered.len()).sum::<usize>()
    }

    /// Decodes what arrived since the last pass, then processes every record the merge allows;
    /// with `drain`, moves the state changes into the output too.
    fn process_ready(&mut self, context: &TaskContext<'_>, drain: bool) -> anyhow::Result<()> {
        let max_skew = self.engine.config().max_future_skew_ms;
        for (input, mut record) in self.incoming.drain(..) {
            let mut decoded = decode(context.decoder, record.payload(), context.max_message_bytes);
            // Here, not when processed: an event dated in the future must not hold its
            // partition back in the merge (every other user's events would be late behind it).
            if let Some(reason) = decoded
                .as_ref()
                .ok()
                .and_then(|e| future_reason(e, context.now_ms, max_skew))
            {
                decoded = Err(reason);
                record.future = true;
            }
            record.merge_time = decoded.as_ref().map_or(i64::MIN, |e| e.time.millis());
            record.decoded = Some(decoded);
            let slot = &mut self.inputs[input];
            slot.received_to = Some(record.offset + 1);
            slot.buffered.push_back(record);
        }
        let max_idle = Duration::from_millis(u64::try_from(context.max_task_idle_ms).unwrap_or(0));
        while let Some(input) = self.merge.next(&self.inputs, max_idle) {
            let Some(record) = self.inputs[input].buffered.pop_front() else {
                break;
            };
            self.inputs[input].processed_to = Some(record.offset + 1);
            self.sample_in -= 1;
            if self.sample_in == 0 {
                self.sample_in = telemetry::metrics::LATENCY_SAMPLE_EVERY;
                let started = Instant::now();
                self.process_record(context, input, record)?;
                context
                    .counters
                    .observe_processing(started.elapsed().as_secs_f64());
            } else {
                self.process_record(context, input, record)?;
            }
        }
        if let Some(wait) = self.merge.long_wait(&self.inputs) {
            let behind = &context.topics.inputs[wait.input];
            tracing::warn!(
                task = self.partition,
                waited_s = wait.waited.as_secs(),
                position = ?wait.read_to,
                end = ?wait.high,
                "task {} waits for {behind} [{}], whose records up to its end are not \
                 delivered yet (a slow or unreachable broker?): its other input waits with it, \
                 so that the merge stays in event time",
                self.partition,
                self.partition,
            );
        }
        if drain {
            self.drain_changelog();
        }
        Ok(())
    }

    fn process_record(
        &mut self,
        context: &TaskContext<'_>,
        input: usize,
        mut record: Record,
    ) -> anyhow::Result<()> {
        let source = &context.topics.inputs[input];
        let out = &mut self.out;
        let event = match record.decoded.take() {
            Some(Ok(event)) => event,
            None => return Err(anyhow!("a record was processed before it was decoded")),
            Some(Err(reason)) => {
                out.counts.dead_lettered += 1;
                if record.future {
                    out.tally.future(input);
                } else {
                    out.tally.invalid(input);
                }
                out.records.push(forward(
                    OutTopic::DeadLetter,
                    source,
                    self.partition,
                    record,
                    &reason,
                    None,
                ));
                return Ok(());
            }
        };
        out.counts.events += 1;
        out.tally.event(input, event.event_type());
        self.outputs.clear();
        if self.engine.process(&event, &mut self.outputs) == Disposition::Late {
            out.counts.late += 1;
            out.tally.late(input);
            let behind = self
                .engine
                .user_clock(&event.user_id)
                .map_or(0, |c| c - event.time.millis());
            out.records.push(forward(
                OutTopic::Late,
                source,
                self.partition,
                record,
                "later than the allowed lateness behind its user's event time",
                Some(behind),
            ));
            return Ok(());
        }
        let shared = context.shared;
        if shared.is_some() {
            out.status.event(&event.user_id, event.time.millis());
        }
        for output in &self.outputs {
            let silence = shared.and_then(|s| silence_for(s, output));
            if shared.is_some() {
                out.status.output(output, silence.is_some());
            }
            out.tally.output(output);
            let topic = match output.kind() {
                RuleKind::Alert if silence.is_some() => {
                    out.counts.alerts += 1;
                    out.counts.silenced += 1;
                    OutTopic::Silenced
                }
                RuleKind::Alert => {
                    out.counts.alerts += 1;
                    OutTopic::Alerts
                }
                RuleKind::Milestone => {
                    out.counts.milestones += 1;
                    OutTopic::Milestones
                }
            };
            let body = serde_json::to_vec(output).map_err(|e| anyhow!("{e}"))?;
            let time = output.time.to_string();
            let mut headers = OwnedHeaders::new()
                .insert(header("content-type", "application/cloudevents+json"))
                .insert(header("ce_specversion", &output.specversion))
                .insert(header("ce_id", &output.id))
                .insert(header("ce_source", &output.source))
                .insert(header("ce_type", &output.event_type))
                .insert(header("ce_subject", &output.subject))
                .insert(header("ce_time", &time));
            if let Some(silence) = silence {
                headers = headers.insert(header("vigil_silence_id", &silence.id));
            }
            out.records.push(OutRecord {
                topic,
                partition: None,
                key: Some(output.subject.as_bytes().to_vec()),
                payload: Some(body),
                headers: Some(headers),
            });
        }
        Ok(())
    }

    /// Moves the engine's state changes since the last transaction into the task's output,
    /// bound for its changelog partition.
    fn drain_changelog(&mut self) {
        self.engine.drain_changelog(&mut self.changes);
        let partition = self.partition;
        self.out
            .records
            .extend(self.changes.drain(..).map(|change| OutRecord {
                topic: OutTopic::State,
                partition: Some(partition),
                key: Some(change.key),
                payload: change.value,
                headers: None,
            }));
    }
}

/// A rejected or late input record for `topic`, bytes untouched, with headers saying why and
/// where it came from.
fn forward(
    topic: OutTopic,
    source: &str,
    partition: i32,
    record: Record,
    reason: &str,
    behind_ms: Option<i64>,
) -> OutRecord {
    let partition = partition.to_string();
    let offset = record.offset.to_string();
    let mut headers = OwnedHeaders::new()
        .insert(header("vigil.reason", reason))
        .insert(header("vigil.source.topic", source))
        .insert(header("vigil.source.partition", &partition))
        .insert(header("vigil.source.offset", &offset));
    if let Some(behind) = behind_ms {
        headers = headers.insert(header("vigil.behind-ms", &behind.to_string()));
    }
    // A record larger than the broker accepts would fail the transaction again at every
    // retry: keep its head, and say so.
    let (key, payload) = record.into_parts();
    let payload = payload.map(|mut p| {
        if p.len() > FORWARD_LIMIT {
            let full = p.len().to_string();
            headers =
                std::mem::take(&mut headers).insert(header("vigil.truncated-from-bytes", &full));
            p.truncate(FORWARD_LIMIT);
        }
        p
    });
    OutRecord {
        topic,
        partition: None,
        key,
        payload,
        headers: Some(headers),
    }
}

fn decode(decoder: &Decoder, payload: Option<&[u8]>, max_bytes: usize) -> Result<Event, String> {
    match payload {
        None => Err("empty message (no value)".to_string()),
        Some(payload) if payload.len() > max_bytes => Err(DecodeError::TooLarge {
            len: payload.len(),
            max: max_bytes,
        }
        .to_string()),
        Some(payload) => decoder.decode(payload).map_err(|e| e.to_string()),
    }
}

/// The work a task has in a pass, to decide whether other threads are worth waking: its
/// buffered records, and with `drain` the keys whose state changes it writes.
fn task_work(task: &Task, drain: bool) -> usize {
    task.buffered() + if drain { task.engine.keys_changed() } else { 0 }
}

/// Polls up to [`PASS_RECORDS`] records into `staging`, waiting up to `wait` for the first:
/// what processing needs is copied out of each message, which borrows the consumer. Records
/// polled before a rebalance are dropped (their tasks are dropped too, and the partitions
/// resume from the committed offsets). Returns how many records it polled.
fn poll_into(
    consumer: &BaseConsumer<RebalanceFlag>,
    inputs: &[String],
    staging: &mut Staging,
    mut wait: Duration,
) -> Result<usize, SessionError> {
    let mut polled = 0;
    let mut rebalances = consumer.context().count();
    // librdkafka hands fetched data over a partition at a time (up to a fetch's worth, ~5 000
    // records): a pass much smaller than PASS_RECORDS would hold one task and leave the
    // other threads idle.
    while polled < PASS_RECORDS {
        let Some(result) = consumer.poll(wait) else {
            break;
        };
        wait = Duration::ZERO;
        let now = consumer.context().count();
        if now != rebalances {
            rebalances = now;
            staging.clear();
        }
        match result {
            Ok(m) => {
                if let Some(input) = inputs.iter().position(|t| t == m.topic()) {
                    staging.push(input, &m)?;
                    polled += 1;
                }
            }
            Err(KafkaError::PartitionEOF(_)) => {}
            Err(e @ KafkaError::MessageConsumptionFatal(_)) => {
                return Err(SessionError::Retry(e.into()))
            }
            Err(e) => tracing::warn!(error = %e, "consumer error"),
        }
    }
    Ok(polled)
}

/// A task's event-time merge of its input partitions: which one's head record goes next, and
/// when to wait for a partition with nothing buffered that may still deliver an earlier one.
///
/// As in Kafka Streams since KIP-695: a partition whose records up to its end (its high
/// watermark, or last stable offset) have not all arrived, or whose end librdkafka does not
/// know yet, holds the task back until they have, however long a slow or stalled broker takes,
/// so that input already written is merged in event time whatever the timing of its fetches
/// (bounding that wait made a broker outage turn events late). A partition read to its end
/// holds the task back for at most `max-task-idle`, for records its producers may still be
/// sending (0 by default: live traffic goes on at once).
struct Merge {
    /// The input partitions' high watermarks, asked by the loop before each pass.
    highs: Vec<Option<i64>>,
    /// The consumer's positions in them, asked with the watermarks.
    positions: Vec<Option<i64>>,
    /// Since when a partition with nothing buffered has held the task back.
    waiting_since: Option<Instant>,
    /// The current wait has been reported as long.
    reported: bool,
}

/// A wait for a partition's records that has lasted [`LONG_WAIT`].
#[derive(Debug, PartialEq)]
struct LongWait {
    input: usize,
    waited: Duration,
    read_to: Option<i64>,
    high: Option<i64>,
}

/// A task's wait for a partition behind its end is reported (once) when it lasts this long.
const LONG_WAIT: Duration = Duration::from_secs(30);

impl Merge {
    fn new(inputs: usize) -> Self {
        Merge {
            highs: vec![None; inputs],
            positions: vec![None; inputs],
            waiting_since: None,
            reported: false,
        }
    }

    fn set_reach(&mut self, input: usize, high: Option<i64>, position: Option<i64>) {
        if let (Some(h), Some(p)) = (self.highs.get_mut(input), self.positions.get_mut(input)) {
            *h = high;
            *p = position;
        }
    }

    /// Where `input` is read to: past its last record received, or past what the consumer
    /// skipped after it (transaction markers, aborted records).
    fn read_to(&self, input: usize, partition: &InputPartition) -> Option<i64> {
        partition
            .received_to
            .max(self.positions.get(input).copied().flatten())
    }

    /// Whether `input` is read to its end; `None` while its end is unknown.
    fn at_end(&self, input: usize, partition: &InputPartition) -> Option<bool> {
        at_end(
            self.read_to(input, partition),
            self.highs.get(input).copied().flatten(),
        )
    }

    /// The input whose head record goes next, by (event time, input order); `None` while the
    /// task waits for a partition that may still deliver an earlier record.
    fn next(&mut self, inputs: &[InputPartition], max_idle: Duration) -> Option<usize> {
        let mut best: Option<(i64, usize)> = None;
        let mut behind = false;
        let mut read_to_end = false;
        for (i, input) in inputs.iter().enumerate() {
            match input.buffered.front() {
                Some(head) => {
                    if best.is_none_or(|(t, _)| head.merge_time < t) {
                        best = Some((head.merge_time, i));
                    }
                }
                None => match self.at_end(i, input) {
                    Some(true) => read_to_end = true,
                    Some(false) | None => behind = true,
                },
            }
        }
        let (_, input) = best?;
        if behind {
            self.waiting_since.get_or_insert_with(Instant::now);
            return None;
        }
        if read_to_end && !max_idle.is_zero() {
            let since = *self.waiting_since.get_or_insert_with(Instant::now);
            return (since.elapsed() >= max_idle).then_some(input);
        }
        self.waiting_since = None;
        self.reported = false;
        Some(input)
    }

    /// The partition the task has waited for since [`LONG_WAIT`] or longer, once per wait.
    fn long_wait(&mut self, inputs: &[InputPartition]) -> Option<LongWait> {
        let waited = self.waiting_since?.elapsed();
        if self.reported || waited < LONG_WAIT {
            return None;
        }
        let (input, partition) = inputs
            .iter()
            .enumerate()
            .find(|(i, p)| p.buffered.is_empty() && self.at_end(*i, p) != Some(true))?;
        self.reported = true;
        Some(LongWait {
            input,
            waited,
            read_to: self.read_to(input, partition),
            high: self.highs.get(input).copied().flatten(),
        })
    }
}

/// Whether an input partition has nothing more to deliver: everything up to its high
/// watermark received (`received_to`: offset after the last record received, or the committed
/// offset), or an empty partition. `None` while librdkafka does not know its watermark yet.
fn at_end(received_to: Option<i64>, high: Option<i64>) -> Option<bool> {
    match (received_to, high?) {
        (Some(at), high) => Some(at >= high),
        (None, high) => Some(high == 0),
    }
}

/// The consumer's position in `topic`'s `partition`: the offset after the last record (or
/// transaction marker) it has read; 0 before any.
fn position(reader: &BaseConsumer, topic: &str, partition: i32) -> Result<i64, KafkaError> {
    Ok(super::offset_in(&reader.position()?, topic, partition).unwrap_or(0))
}

/// The high watermark librdkafka last saw for a partition (the last stable offset, for a
/// `read_committed` consumer), from its local cache: no request to the broker. rdkafka does
/// not wrap `rd_kafka_get_watermark_offsets`, hence the direct call.
fn high_watermark<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &CStr,
    partition: i32,
) -> Option<i64> {
    watermarks(consumer, topic, partition).map(|(_, high)| high)
}

/// The low and high watermarks librdkafka last saw for a partition (see [`high_watermark`]).
fn watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &CStr,
    partition: i32,
) -> Option<(i64, i64)> {
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid while `consumer` lives; the topic is a valid C
    // string; librdkafka writes only the two offsets.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some((low, high))
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// The transactional id of an instance's `n`th producer. The first keeps the id that a
/// single-producer Vigil used, so an upgrade settles what the previous version left open.
fn transactional_id(group: &str, instance: &str, n: usize) -> String {
    if n == 0 {
        format!("{group}-{instance}")
    } else {
        format!("{group}-{instance}#{n}")
    }
}

/// This instance's id: configured, else the host name.
pub fn instance_id(config: &KafkaConfig) -> String {
    config.streaming.instance_id.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "vigil".to_string())
    })
}

/// Checks that the topics exist and that the inputs and the changelog are co-partitioned.
fn check_topics<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topics: &OutTopics,
    timeout: Duration,
) -> Result<(), SessionError> {
    let metadata = consumer
        .fetch_metadata(None, timeout)
        .context("cannot read the cluster's metadata (is the broker up?)")?;
    let partitions = |name: &str| {
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none())
            .map(|t| t.partitions().len())
    };
    let mut counts = Vec::new();
    for name in topics.inputs.iter().chain([
        &topics.alerts,
        &topics.silenced,
        &topics.milestones,
        &topics.dead_letter,
        &topics.late,
        &topics.state,
    ]) {
        match partitions(name) {
            Some(n) => counts.push((name.as_str(), n)),
            None => {
                return Err(SessionError::Fatal(anyhow!(
                    "topic {name} does not exist; create the topics with `vigil topics apply`"
                )))
            }
        }
    }
    let inputs = counts[0].1;
    if counts[1].1 != inputs {
        return Err(SessionError::Fatal(anyhow!(
            "{} has {} partitions and {} has {}: the input topics must be co-partitioned (same \
             partition count, keyed by user id) so that a user's events meet in one task",
            counts[0].0,
            counts[0].1,
            counts[1].0,
            counts[1].1
        )));
    }
    let state = counts[counts.len() - 1];
    if state.1 < inputs {
        return Err(SessionError::Fatal(anyhow!(
            "{} has {} partitions but the inputs have {inputs}: the changelog needs one per task",
            state.0,
            state.1
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key and payload of record `i`: sizes from none to several arena blocks, so records
    /// share blocks, straddle their ends and get blocks of their own.
    fn parts(i: usize) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let key = (!i.is_multiple_of(5)).then(|| format!("user-{i}").into_bytes());
        let len = match i % 7 {
            0 => 0,
            1 => ARENA_BLOCK + 17,
            2 => ARENA_BLOCK / 3,
            _ => 100 + i,
        };
        let payload =
            (!i.is_multiple_of(11)).then(|| (0..len).map(|b| (b * 31 + i) as u8).collect());
        (key, payload)
    }

    #[test]
    fn records_in_the_arena_keep_their_own_bytes() {
        let mut arena = BytesMut::new();
        let records: Vec<Record> = (0..200)
            .map(|i| {
                let (key, payload) = parts(i);
                Record::new(i as i64, key.as_deref(), payload.as_deref(), &mut arena)
            })
            .collect();
        // Dropping some records frees nothing the others use.
        let kept: Vec<Record> = records.into_iter().filter(|r| r.offset % 3 != 1).collect();
        for record in kept {
            let i = usize::try_from(record.offset).expect("offset");
            let (key, payload) = parts(i);
            assert_eq!(record.payload(), payload.as_deref(), "record {i}");
            assert_eq!(record.into_parts(), (key, payload), "record {i}");
        }
    }

    /// An input partition with records at these event times buffered, received up to
    /// `received_to`.
    fn partition_with(times: &[i64], received_to: Option<i64>) -> InputPartition {
        let mut arena = BytesMut::new();
        let mut partition = InputPartition {
            received_to,
            ..InputPartition::default()
        };
        for (offset, &time) in times.iter().enumerate() {
            let mut record = Record::new(offset as i64, None, Some(b"{}"), &mut arena);
            record.merge_time = time;
            partition.buffered.push_back(record);
        }
        partition
    }

    /// Backdates the merge's current wait by `by`.
    fn waited(merge: &mut Merge, by: Duration) {
        let since = merge.waiting_since.expect("the merge is waiting");
        merge.waiting_since = Some(since.checked_sub(by).expect("an instant that far back"));
    }

    #[test]
    fn the_merge_takes_the_earliest_head_when_both_partitions_have_records() {
        let inputs = [
            partition_with(&[30, 40], Some(2)),
            partition_with(&[20], Some(1)),
        ];
        let mut merge = Merge::new(2);
        assert_eq!(merge.next(&inputs, Duration::ZERO), Some(1));
        let inputs = [
            partition_with(&[10], Some(1)),
            partition_with(&[10], Some(1)),
        ];
        assert_eq!(
            merge.next(&inputs, Duration::ZERO),
            Some(0),
            "ties go to input order"
        );
        assert_eq!(
            merge.next(
                &[partition_with(&[], None), partition_with(&[], None)],
                Duration::ZERO
            ),
            None
        );
    }

    /// Records already on the broker are waited for however long their fetch takes: a bounded
    /// wait let a broker outage make the other input's events late.
    #[test]
    fn a_partition_behind_its_end_holds_the_task_until_its_records_arrive() {
        let mut merge = Merge::new(2);
        merge.set_reach(1, Some(50), Some(10));
        let mut inputs = [
            partition_with(&[100], Some(1)),
            partition_with(&[], Some(10)),
        ];
        assert_eq!(merge.next(&inputs, Duration::from_millis(100)), None);
        assert_eq!(merge.long_wait(&inputs), None, "not long yet");
        waited(&mut merge, LONG_WAIT);
        assert_eq!(merge.next(&inputs, Duration::from_millis(100)), None);
        let wait = merge.long_wait(&inputs).expect("a long wait is reported");
        assert_eq!(
            (wait.input, wait.read_to, wait.high),
            (1, Some(10), Some(50))
        );
        assert!(wait.waited >= LONG_WAIT);
        assert_eq!(merge.long_wait(&inputs), None, "reported once per wait");
        // An earlier record arrives: it goes first, then the wait is over.
        inputs[1] = partition_with(&[90], Some(50));
        assert_eq!(merge.next(&inputs, Duration::from_millis(100)), Some(1));
        inputs[1].buffered.clear();
        assert_eq!(merge.next(&inputs, Duration::ZERO), Some(0));
        assert_eq!(merge.waiting_since, None);
        assert!(!merge.reported);
    }

    #[test]
    fn a_partition_whose_end_is_unknown_holds_the_task() {
        let mut merge = Merge::new(2);
        let inputs = [partition_with(&[100], Some(1)), partition_with(&[], None)];
        assert_eq!(merge.next(&inputs, Duration::ZERO), None);
        waited(&mut merge, LONG_WAIT);
        assert_eq!(merge.next(&inputs, Duration::ZERO), None);
        merge.set_reach(1, Some(0), None);
        assert_eq!(
            merge.next(&inputs, Duration::ZERO),
            Some(0),
            "an empty partition"
        );
    }

    /// A log that ends with a transaction marker (or aborted records) is read to its end
    /// when the consumer's position has passed them, though no record reached that far.
    #[test]
    fn the_consumers_position_past_a_marker_reads_a_partition_to_its_end() {
        let mut merge = Merge::new(2);
        let inputs = [
            partition_with(&[100], Some(1)),
            partition_with(&[], Some(7)),
        ];
        merge.set_reach(1, Some(8), None);
        assert_eq!(merge.next(&inputs, Duration::ZERO), None);
        merge.set_reach(1, Some(8), Some(8));
        assert_eq!(merge.next(&inputs, Duration::ZERO), Some(0));
    }

    /// `max-task-idle`: how long a partition read to its end holds the task for records its
    /// producers may still send; 0 (the default) goes on at once.
    #[test]
    fn a_partition_read_to_its_end_holds_the_task_for_max_task_idle() {
        let mut merge = Merge::new(2);
        merge.set_reach(1, Some(5), None);
        let inputs = [
            partition_with(&[100], Some(1)),
            partition_with(&[], Some(5)),
        ];
        assert_eq!(merge.next(&inputs, Duration::ZERO), Some(0));
        let idle = Duration::from_secs(60);
        assert_eq!(merge.next(&inputs, idle), None);
        assert_eq!(
            merge.long_wait(&inputs),
            None,
            "waiting for producers is not reported"
        );
        waited(&mut merge, idle);
        assert_eq!(merge.next(&inputs, idle), Some(0));
        waited(&mut merge, LONG_WAIT);
        assert_eq!(merge.long_wait(&inputs), None);
    }

    #[test]
    fn staging_files_records_by_partition_in_order() {
        let mut staging = Staging::default();
        for (offset, partition) in [(0, 3), (1, 0), (2, 3), (3, 3)] {
            let record = Record::new(offset, None, Some(b"{}"), &mut staging.arena);
            let index = Staging::index_of(partition).expect("a partition");
            staging.add(offset as usize % 2, index, record);
        }
        assert_eq!(staging.records, 4);
        assert!(Staging::index_of(-1).is_err());
        let offsets =
            |v: &Vec<(usize, Record)>| v.iter().map(|(_, r)| r.offset).collect::<Vec<_>>();
        assert_eq!(offsets(&staging.by_partition[3]), [0, 2, 3]);
        assert_eq!(offsets(&staging.by_partition[0]), [1]);
        assert_eq!(Staging::partition_of(3).expect("fits"), 3);
        assert!(Staging::partition_of(usize::MAX).is_err());
        staging.clear();
        assert_eq!(staging.records, 0);
        assert!(staging.by_partition.iter().all(Vec::is_empty));
    }
}
