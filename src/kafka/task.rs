//! A task: partition N of every input topic with the engine that owns its users. It admits
//! the records it is handed, processes them in the merge's order through the shared routing
//! step ([`crate::io::route`]), and keeps what they produced — records for the transaction's
//! topics, counts, the shared status — until the loop gathers it.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use rdkafka::message::{Header, OwnedHeaders};

use crate::engine::{Engine, OutputEvent, StateRecord};
use crate::event::{Decoder, Event};

use crate::io::admit::{AdmissionClock, FixedClock};
use crate::io::route::{self, Context, Deliver, Framed, Rejection, Router, LATE_REASON};
use crate::rules::RuleKind;
use crate::status::buffer::StatusBuffer;
use crate::status::silence::Silence;
use crate::status::StatusStore;
use crate::telemetry::{InputCounters, Tally};

use crate::kafka::merge::{merge_time, InputPartition, Merge};
use crate::kafka::source::Record;
use crate::kafka::transaction::{Batch, OutRecord, OutTopic, OutTopics};

/// Largest payload copied whole to the dead-letter or late-events topic: under the broker's
/// default `message.max.bytes` (1 MiB), headers included.
const FORWARD_LIMIT: usize = 900 * 1024;

/// Partition N of every input topic, with the engine that owns its users. A task is processed
/// by one thread at a time; different tasks share nothing, so they run in parallel.
pub(super) struct Task {
    pub(super) partition: i32,
    pub(super) engine: Engine,
    /// Records handed over by the loop (input, record), in the order polled, not yet filed
    /// into `inputs`: the loop moves a pass's records for the task in one piece, and the
    /// task's own thread files and decodes them.
    pub(super) incoming: Vec<(usize, Record)>,
    /// By position in [`OutTopics::inputs`].
    pub(super) inputs: Vec<InputPartition>,
    /// What the event-time merge of `inputs` knows of their ends, and how long it has waited.
    pub(super) merge: Merge,
    /// What processing produced since the loop last gathered it into the batch.
    pub(super) out: TaskOutput,
    /// The per-record step, with the counts of what it routed since the last gather.
    pub(super) router: Router,
    /// Scratch for the engine's state changes.
    pub(super) changes: Vec<StateRecord>,
    /// Bytes in state as last measured (see [`Session::update_gauges`]).
    pub(super) bytes: usize,
}

/// A task's part of the next transaction, gathered into the [`Batch`] by the loop.
pub(super) struct TaskOutput {
    pub(super) records: Vec<OutRecord>,
    pub(super) tally: Tally,
    /// For the shared state: last event times and outputs.
    pub(super) status: StatusBuffer,
}

/// What every task reads while the tasks are processed on several threads.
pub(super) struct TaskContext<'a> {
    pub(super) decoder: &'a Decoder,
    pub(super) topics: &'a OutTopics,
    pub(super) shared: Option<&'a StatusStore>,
    pub(super) counters: &'a InputCounters,
    pub(super) max_task_idle: Duration,
    /// The wall clock when the pass began: events dated more than the engine's
    /// `max_future_skew_ms` ahead of it are dead-lettered (read once a pass, not per record).
    pub(super) now_ms: i64,
}

impl Task {
    /// Records received and not processed yet, over its inputs.
    pub(super) fn buffered(&self) -> usize {
        self.incoming.len() + self.inputs.iter().map(|i| i.buffered.len()).sum::<usize>()
    }

    /// Moves what the task produced since the last gather into `batch` (the records, the
    /// counts) and `status`; the task keeps its buffers' capacity.
    pub(super) fn move_output(&mut self, batch: &mut Batch, status: &mut StatusBuffer) {
        batch.records.append(&mut self.out.records);
        batch.counts.add(&std::mem::take(&mut self.router.summary));
        batch.tally.absorb(&mut self.out.tally);
        status.absorb(&mut self.out.status);
    }

    /// Decodes what arrived since the last pass, then processes every record the merge allows;
    /// with `drain`, moves the state changes into the output too.
    pub(super) fn process_ready(
        &mut self,
        context: &TaskContext<'_>,
        drain: bool,
    ) -> anyhow::Result<()> {
        let max_skew = self.engine.config().max_future_skew_ms;
        let pass_clock = FixedClock(context.now_ms);
        let admission = AdmissionClock::new(&pass_clock);
        for (input, mut record) in self.incoming.drain(..) {
            // Here, not when processed: an event dated in the future must not hold its
            // partition back in the merge (every other user's events would be late behind it).
            let admitted = route::admit(
                context.decoder,
                Framed::whole(record.payload()),
                &admission,
                max_skew,
            );
            record.merge_time = admitted
                .as_ref()
                .map_or(i64::MIN, |e| merge_time(e.time.millis(), record.sent_ms));
            record.admitted = Some(admitted);
            let slot = &mut self.inputs[input];
            slot.received_to = Some(record.offset + 1);
            slot.buffered.push_back(record);
        }
        let max_idle = context.max_task_idle;
        let step = |input: usize| Context {
            input,
            silences: context.shared,
            clock: &pass_clock,
            latency: Some(context.counters),
        };
        while let Some(input) = self.merge.next(&self.inputs, max_idle, Instant::now) {
            let Some(mut record) = self.inputs[input].buffered.pop_front() else {
                break;
            };
            self.inputs[input].processed_to = Some(record.offset + 1);
            let admitted = record
                .admitted
                .take()
                .ok_or_else(|| anyhow!("a record was processed before it was decoded"))?;
            let out = &mut self.out;
            let mut deliver = TopicDelivery {
                source: &context.topics.inputs[input],
                partition: self.partition,
                record: Some(record),
                records: &mut out.records,
                status: context.shared.is_some().then_some(&mut out.status),
            };
            self.router.route(
                &mut self.engine,
                admitted,
                &step(input),
                &mut out.tally,
                &mut deliver,
            )?;
        }
        if let Some(wait) = self.merge.long_wait(&self.inputs, Instant::now()) {
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

    /// Moves the engine's state changes since the last transaction into the task's output,
    /// bound for its changelog partition.
    pub(super) fn drain_changelog(&mut self) {
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

/// The work a task has in a pass, to decide whether other threads are worth waking: its
/// buffered records, and with `drain` the keys whose state changes it writes.
pub(super) fn task_work(task: &Task, drain: bool) -> usize {
    task.buffered() + if drain { task.engine.keys_changed() } else { 0 }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// The results of one record, as records for the transaction's topics.
struct TopicDelivery<'a> {
    /// The input topic it came from.
    source: &'a str,
    partition: i32,
    /// Forwarded as it is (bytes untouched) when dead-lettered or late.
    record: Option<Record>,
    records: &'a mut Vec<OutRecord>,
    /// Where the shared status is gathered, when it is kept.
    status: Option<&'a mut StatusBuffer>,
}

impl TopicDelivery<'_> {
    fn forward(
        &mut self,
        topic: OutTopic,
        reason: &str,
        behind_ms: Option<i64>,
    ) -> anyhow::Result<()> {
        let record = self
            .record
            .take()
            .ok_or_else(|| anyhow!("a record was routed twice"))?;
        self.records.push(forward(
            topic,
            self.source,
            self.partition,
            record,
            reason,
            behind_ms,
        ));
        Ok(())
    }
}

impl Deliver for TopicDelivery<'_> {
    type Error = anyhow::Error;

    fn dead_letter(&mut self, rejection: Rejection) -> anyhow::Result<()> {
        self.forward(OutTopic::DeadLetter, &rejection.reason, None)
    }

    fn late(&mut self, _event: Event, behind_ms: i64) -> anyhow::Result<()> {
        self.forward(OutTopic::Late, LATE_REASON, Some(behind_ms))
    }

    fn accepted(&mut self, event: &Event) {
        if let Some(status) = self.status.as_deref_mut() {
            status.event(&event.user_id, event.time.millis());
        }
    }

    fn output(&mut self, output: &OutputEvent, silence: Option<&Silence>) -> anyhow::Result<()> {
        if let Some(status) = self.status.as_deref_mut() {
            status.output(output, silence.is_some());
        }
        let topic = match output.kind() {
            RuleKind::Alert if silence.is_some() => OutTopic::Silenced,
            RuleKind::Alert => OutTopic::Alerts,
            RuleKind::Milestone => OutTopic::Milestones,
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
        self.records.push(OutRecord {
            topic,
            partition: None,
            key: Some(output.subject.as_bytes().to_vec()),
            payload: Some(body),
            headers: Some(headers),
        });
        Ok(())
    }
}
