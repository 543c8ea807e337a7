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
//!   ahead of the other does not make the other's events late. A record dated after its own
//!   Kafka timestamp (a device's clock ahead of the world) sorts by that timestamp instead, so
//!   that it cannot hold the other users' records behind it ([`super::merge::merge_time`]).
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

mod ends;
pub mod gauges;
mod restore;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use rdkafka::consumer::{BaseConsumer, Consumer};

use rdkafka::producer::{BaseProducer, Producer};

use crate::config::KafkaConfig;
use crate::engine::EngineConfig;
use crate::event::Decoder;
use crate::io::admit::{SystemClock, WallClock};
use crate::io::route::Summary;
use crate::rules::RuleSet;
use crate::status::buffer::StatusBuffer;
use crate::status::StatusStore;
use crate::telemetry::{self, InputCounters};

use crate::kafka::client_config;
use crate::kafka::error::SessionError;
use crate::kafka::source::{check_topics, poll_into, RebalanceFlag, Staging};
use crate::kafka::task::{task_work, Task, TaskContext};
use crate::kafka::transaction::{Batch, Committer, OutTopics};
use crate::kafka::workers::{Workers, PARALLEL_FROM};
use gauges::{StreamStatus, GAUGES_EVERY};

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

/// Totals of committed work over the whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamSummary {
    /// What the committed transactions hold.
    pub routed: Summary,
    pub commits: u64,
    pub aborts: u64,
    pub sessions: u64,
}

impl std::fmt::Display for StreamSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, transactions committed: {}, aborted: {}",
            self.routed, self.commits, self.aborts
        )
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
                    events = summary.routed.events,
                    alerts = summary.routed.alerts,
                    milestones = summary.routed.milestones,
                    late = summary.routed.late,
                    dead_lettered = summary.routed.dead_lettered,
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

    /// Records buffered in all tasks.
    fn buffered(&self) -> usize {
        self.tasks.values().map(Task::buffered).sum()
    }

    /// True when `records` are a backlog worth the other threads: processed (or their state
    /// changes encoded) on the pool while this thread polls.
    fn overlaps(&self, records: usize) -> bool {
        records >= PARALLEL_FROM && matches!(self.workers, Workers::Pool(_))
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
            max_task_idle: self.config.streaming.max_task_idle,
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
            task.move_output(&mut self.batch, &mut self.shared_status);
        }
    }

    /// Waits for the transaction in flight, if any, and adds what it committed to `summary`.
    fn settle(&mut self, summary: &mut StreamSummary) -> anyhow::Result<()> {
        match self.committer.finish() {
            Ok(committed) => {
                if let Some(committed) = committed {
                    summary.routed.add(&committed);
                    summary.commits += 1;
                }
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
