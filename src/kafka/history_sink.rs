//! The history in Kafka mode: a consumer of the `alerts`, `milestones` and `alerts-silenced`
//! topics that stores what they hold, as a sink connector would (rows from `alerts-silenced`
//! marked silenced).
//!
//! Reading the topics (`read_committed`) rather than taking outputs from the engine means the
//! history holds exactly what downstream consumers see: nothing from an aborted transaction,
//! and nothing lost when the process dies with rows still queued for the database. The sink's
//! consumer group (`<group>-history`) commits its offsets only once the rows before them are
//! stored, so after a crash, a rebalance or a database outage the rows not yet stored are read
//! again, and the idempotent insert (on the CloudEvent id) keeps one row each.
//!
//! The database never holds up the engine: the sink runs on its own thread, and while the
//! database is away it stops reading once [`MAX_QUEUED`] rows wait, and catches up from its
//! committed offsets when the database returns. A stop of more than `max.poll.interval.ms`
//! (5 min by default) drops the sink from its group; it rejoins on its next read and starts
//! again from its committed offsets.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::client_config;
use crate::config::KafkaConfig;
use crate::engine::OutputEvent;
use crate::history::{HistoryRow, HistoryWriter, WriterOptions, WriterState, WriterStatus};
use crate::telemetry::Check;

/// Rows handed to the writer and not yet stored, past which the sink stops reading.
const MAX_QUEUED: u64 = 50_000;

/// What the sink did over the run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// Records read from the topics and handed to the writer.
    pub read: u64,
    /// Rows stored that were new.
    pub written: u64,
    /// Rows read but not stored when the sink stopped; their offsets are not committed, so
    /// the next run reads them again.
    pub unstored: u64,
    /// Records that are not Vigil outputs (written by something else): skipped.
    pub unreadable: u64,
    pub last_error: Option<String>,
}

/// The running sink.
pub struct HistorySink {
    /// Set to stop: how long to wait for the database first, and whether to read to the end
    /// of the topics before stopping.
    stop: Arc<Mutex<Option<Stop>>>,
    thread: Option<JoinHandle<anyhow::Result<SinkReport>>>,
    writer_status: Arc<Mutex<Option<WriterStatus>>>,
}

impl HistorySink {
    /// Starts storing the outputs of `config`'s topics in the database at `url`. An unknown
    /// URL scheme fails here; an unreachable database does not (the writer retries).
    pub fn start(config: &KafkaConfig, url: &str) -> anyhow::Result<HistorySink> {
        let writer = HistoryWriter::start(url, WriterOptions::default())?;
        let silenced = config.topic_name(&config.topics.silenced);
        let topics = [
            config.topic_name(&config.topics.alerts),
            config.topic_name(&config.topics.milestones),
            silenced.clone(),
        ];
        let mut consumer_config = client_config(config);
        consumer_config
            .set("group.id", format!("{}-history", config.group))
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        let consumer: BaseConsumer = consumer_config
            .create()
            .map_err(|e| anyhow!("cannot create the history consumer: {e}"))?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .context("the history consumer cannot subscribe")?;
        let stop = Arc::new(Mutex::new(None));
        let writer_status = Arc::new(Mutex::new(None));
        let thread_stop = Arc::clone(&stop);
        let thread_status = Arc::clone(&writer_status);
        let thread = std::thread::Builder::new()
            .name("vigil-history-sink".into())
            .spawn(move || {
                Ok(sink_loop(
                    &consumer,
                    writer,
                    &silenced,
                    &thread_stop,
                    &thread_status,
                ))
            })
            .context("cannot start the history sink")?;
        Ok(HistorySink {
            stop,
            thread: Some(thread),
            writer_status,
        })
    }

    /// The writer's latest status (for health and readiness).
    pub fn writer_status(&self) -> Option<WriterStatus> {
        self.writer_status.lock().ok().and_then(|s| s.clone())
    }

    /// A readiness probe for the history database (see [`WriterStatus::readiness`]).
    pub fn readiness_probe(&self) -> impl Fn() -> Check + Send + Sync + 'static {
        let status = Arc::clone(&self.writer_status);
        move || match status.lock().ok().and_then(|s| s.clone()) {
            Some(s) => s.readiness(),
            None => Check::ready("starting"),
        }
    }

    /// Stores what was read, and with `read_to_end` first reads on to the end of the topics
    /// (a run that ended because its input did: its history should be complete), waiting at
    /// most `drain`; commits what was stored, and stops. What is left is read by the next run.
    pub fn stop(mut self, drain: Duration, read_to_end: bool) -> anyhow::Result<SinkReport> {
        *self
            .stop
            .lock()
            .map_err(|_| anyhow!("stop flag poisoned"))? = Some(Stop { drain, read_to_end });
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow!("the history sink panicked"))?,
            None => Ok(SinkReport::default()),
        }
    }
}

impl Drop for HistorySink {
    fn drop(&mut self) {
        if let Ok(mut stop) = self.stop.lock() {
            stop.get_or_insert(Stop {
                drain: Duration::ZERO,
                read_to_end: false,
            });
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Clone, Copy)]
struct Stop {
    drain: Duration,
    read_to_end: bool,
}

/// Offsets to commit once the rows read before them are stored.
struct Checkpoint {
    /// Rows handed to the writer up to and including this checkpoint.
    sent: u64,
    offsets: BTreeMap<(String, i32), i64>,
}

fn sink_loop(
    consumer: &BaseConsumer,
    writer: HistoryWriter,
    silenced: &str,
    stop: &Mutex<Option<Stop>>,
    status_out: &Mutex<Option<WriterStatus>>,
) -> SinkReport {
    let mut report = SinkReport::default();
    let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut checkpoints: VecDeque<Checkpoint> = VecDeque::new();
    let mut sent = 0u64;
    let mut stopping_since: Option<Instant> = None;
    let mut degraded = false;
    loop {
        let status = writer.status();
        match status.state {
            WriterState::Degraded if !degraded => {
                degraded = true;
                tracing::warn!(
                    error = status.last_error.as_deref().unwrap_or("no answer"),
                    queued = status.queued,
                    "history: the database is unreachable; outputs go on, their history waits \
                     and is retried"
                );
            }
            WriterState::Connected if degraded => {
                degraded = false;
                tracing::info!(
                    queued = status.queued,
                    "history: the database is back; catching up"
                );
            }
            _ => {}
        }
        let stored = status.written + status.duplicates;
        if let Ok(mut out) = status_out.lock() {
            *out = Some(status.clone());
        }
        // Commit the newest checkpoint whose rows are all stored (the writer stores in order).
        let mut ready = None;
        while checkpoints.front().is_some_and(|c| c.sent <= stored) {
            ready = checkpoints.pop_front();
        }
        if let Some(checkpoint) = ready {
            commit(consumer, &checkpoint.offsets, &mut report);
        }
        let stopping = stop.lock().map(|s| *s).unwrap_or(Some(Stop {
            drain: Duration::ZERO,
            read_to_end: false,
        }));
        if let Some(Stop { drain, read_to_end }) = stopping {
            // Store what was read (and, asked to, read on to the end of the topics first),
            // then stop; or stop at the deadline, leaving the rest to the next run.
            let since = *stopping_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= drain
                || (checkpoints.is_empty() && (!read_to_end || caught_up(consumer)))
            {
                break;
            }
            if !read_to_end {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        }
        if status.queued >= MAX_QUEUED {
            // The database is behind (or away): read no further until it catches up.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let mut wait = Duration::from_millis(100);
        let mut read_now = 0;
        while read_now < 1_000 {
            let Some(result) = consumer.poll(wait) else {
                break;
            };
            wait = Duration::ZERO;
            let message = match result {
                Ok(message) => message,
                Err(e) => {
                    report.last_error = Some(format!("history consumer: {e}"));
                    continue;
                }
            };
            read_now += 1;
            next.insert(
                (message.topic().to_string(), message.partition()),
                message.offset() + 1,
            );
            match row_of(message.payload(), message.topic() == silenced) {
                Some(row) => match writer.send_row(row) {
                    Ok(()) => {
                        sent += 1;
                        report.read += 1;
                    }
                    Err(e) => report.last_error = Some(e.to_string()),
                },
                None => report.unreadable += 1,
            }
        }
        if read_now > 0 {
            checkpoints.push_back(Checkpoint {
                sent,
                offsets: next.clone(),
            });
        }
    }
    let closed = writer.close(Duration::from_secs(1));
    report.written = closed.written;
    report.unstored = closed.unwritten;
    report.last_error = closed.last_error.or(report.last_error);
    // The writer stores in order: whatever it stored before closing is safe to commit.
    if report.unstored == 0 {
        if let Some(last) = checkpoints.pop_back() {
            commit(consumer, &last.offsets, &mut report);
        }
    }
    report
}

/// Whether the sink has read everything its partitions hold: for each assigned partition, its
/// position (past transaction markers too; else its committed offset, when nothing was read)
/// is at the high watermark. The high watermark, not the `read_committed` end: a transaction
/// that committed just before may not have its markers written yet.
fn caught_up(consumer: &BaseConsumer) -> bool {
    let timeout = Duration::from_secs(5);
    let Ok(assignment) = consumer.assignment() else {
        return false;
    };
    if assignment.count() == 0 {
        return false; // not in the group yet
    }
    let positions = consumer.position().ok();
    let committed = consumer.committed(timeout).ok();
    assignment.elements().iter().all(|e| {
        let Ok((_, high)) = consumer.fetch_watermarks(e.topic(), e.partition(), timeout) else {
            return false;
        };
        let at = positions
            .as_ref()
            .and_then(|p| super::offset_in(p, e.topic(), e.partition()))
            .or_else(|| {
                committed
                    .as_ref()
                    .and_then(|c| super::offset_in(c, e.topic(), e.partition()))
            })
            .unwrap_or(0);
        at >= high
    })
}

/// A history row from an output record, its CloudEvent kept byte for byte.
fn row_of(payload: Option<&[u8]>, silenced: bool) -> Option<HistoryRow> {
    let bytes = payload?;
    let output: OutputEvent = serde_json::from_slice(bytes).ok()?;
    let mut row = HistoryRow::from_output(&output).ok()?;
    row.silenced = silenced;
    row.event = String::from_utf8(bytes.to_vec()).ok()?;
    Some(row)
}

fn commit(
    consumer: &BaseConsumer,
    offsets: &BTreeMap<(String, i32), i64>,
    report: &mut SinkReport,
) {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in offsets {
        if list
            .add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .is_err()
        {
            return;
        }
    }
    // A failed commit (a rebalance took the partitions) only means those rows are read and
    // stored again.
    if let Err(e) = consumer.commit(&list, CommitMode::Async) {
        report.last_error = Some(format!("history offsets: {e}"));
    }
}
