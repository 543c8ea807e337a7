//! `vigil run --kafka` end to end through the local broker (issue 3), next to a bare rdkafka
//! loop that does no processing (the ceiling on this machine), in one run:
//!
//! 1. **Throughput from a backlog.** Simulated 1 Hz heart rate (plus a step count a minute)
//!    from many users at once is produced into `biometric-updates` of a fresh topic prefix.
//!    Then, each in a consumer group of its own, over the same input records:
//!    - the **bare loop** (in this process): a `read_committed` consumer and a transactional
//!      producer that forward every record's bytes to an output topic and commit (offsets in
//!      the transaction) every commit interval: Vigil's delivery guarantees without Vigil's
//!      work;
//!    - **Vigil**: `vigil run --kafka --exit-when-idle 2s` with the shipped rule pack
//!      (`rules/`), as a subprocess.
//!
//!    This is done in rounds (5; `VIGIL_BENCH_ROUNDS`), each on a fresh prefix (so Vigil's
//!    changelog starts empty), alternating which processor goes first: the broker's speed
//!    drifts within a run, and the ceiling with it. The result is the median of each and the
//!    ratio of the medians; every round is printed too.
//!
//!    Both are timed the same way, from outside: a consumer in the processor's group polls the
//!    group's committed offsets every 50 ms; events/s = events committed between the first poll
//!    that shows progress and the poll that shows the end, divided by the time between them.
//!    That leaves out process start, group join and task set-up.
//! 2. **Latency at a fixed rate.** With Vigil running and nothing behind, a producer thread
//!    sends heart-rate events at 20 000 events/s — 20 000 users at 1 Hz, as that rate looks in
//!    production (librdkafka's default `linger.ms` = 5) — and notes when it sent each, by event
//!    id; a `read_committed` consumer of `alerts` and `milestones` takes each output's
//!    `data.input_event_ids[0]` and records receive time − send time. The rules are the pack
//!    plus `benches/fixtures/rules/` (bench-only rules that fire on a few % of heart-rate
//!    samples, so there are thousands of outputs). A first round of one event per user (the
//!    probe) waits for the group join; the first seconds at the rate are a warm-up and are not
//!    counted. The same is measured for the bare loop (send → forwarded record visible to a
//!    `read_committed` consumer), on the same input.
//!
//! Each Vigil run also reports what it wrote (alerts, milestones, state changelog records and
//! bytes) and the CPU used by Vigil, the broker (when it is the one `scripts/services` started
//! from this checkout) and this process, from /proc.
//!
//! Topics, consumer groups and Vigil's logs are per run (prefix `vigil-bench-<pid>-<time>-0.`).
//! Each throughput round's topics are deleted when the round ends (so that the kernel does
//! not write gigabytes back to disk during the later phases), the others and the groups at the
//! end, also after a failure; Vigil's groups cannot be yet (its static member stays until its
//! session times out) and are left for the broker to drop, their offsets gone with the topics.
//!
//! Needs the broker of `scripts/services up` (`VIGIL_KAFKA_BROKERS`, from `.services.env`).
//! Without it the bench prints that it is skipped and exits 0; with `CI=true` that is a
//! failure. `VIGIL_BENCH_SMOKE=1` shrinks everything (figures meaningless; ~25 s here).
//! `VIGIL_BENCH_KAFKA_PARTITIONS` changes the partition count (default 6),
//! `VIGIL_BENCH_COMMIT_INTERVAL_MS` the commit interval of both Vigil and the bare loop
//! (default: Vigil's default), and `VIGIL_BENCH_PIPELINED=0` gives Vigil one transactional
//! producer instead of two (`pipelined-transactions = false`). `VIGIL_BENCH_ONLY=throughput`
//! or `=latency` runs one phase; `VIGIL_BENCH_COMPARE=PATH` runs another build of Vigil (a
//! copy of an earlier `target/release/vigil`) over each round's backlog too, in turn with this
//! one, and reports the paired ratio per round: how a change is judged when the ceiling itself
//! drifts between runs; `VIGIL_BENCH_LATENCY_DUMP=DIR` writes every measured latency
//! to DIR, and `VIGIL_BENCH_LOGS=DIR` keeps Vigil's logs there. No assertions on timings.

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::NaiveDate;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Deserialize;
use vigil::event::EventType;
use vigil::simulate::{simulate, SimConfig};

#[path = "../tests/common/kafka.rs"]
mod kafka_env;
#[path = "../tests/common/kafka_sandbox.rs"]
mod kafka_sandbox;

/// Vigil's `pipelined-transactions`: its default, unless `VIGIL_BENCH_PIPELINED=0`.
fn pipelined() -> bool {
    std::env::var("VIGIL_BENCH_PIPELINED").map_or(
        vigil::config::StreamingConfig::default().pipelined_transactions,
        |v| v != "0",
    )
}

/// Vigil's commit interval, and the bare loop's: Vigil's default (`[kafka.streaming]
/// commit-interval`), unless `VIGIL_BENCH_COMMIT_INTERVAL_MS` says otherwise.
fn commit_interval() -> Duration {
    static INTERVAL: OnceLock<Duration> = OnceLock::new();
    *INTERVAL.get_or_init(|| {
        let ms = std::env::var("VIGIL_BENCH_COMMIT_INTERVAL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&ms| ms > 0)
            .unwrap_or_else(|| {
                let default = vigil::config::StreamingConfig::default().commit_interval;
                u64::try_from(default.as_millis()).unwrap_or(100)
            });
        Duration::from_millis(ms)
    })
}
/// How often the committed offsets are polled.
const POLL_EVERY: Duration = Duration::from_millis(50);
const INPUTS: [&str; 2] = ["health-events", "biometric-updates"];
const BARE_OUT: &str = "bare-out";
/// Appended to the names of the output and changelog topics of the build compared.
const COMPARED: &str = "-compared";

/// Sizes of one run.
struct Plan {
    smoke: bool,
    partitions: i32,
    /// Backlog: this many users streaming 1 Hz heart rate together for this many seconds.
    backlog_users: usize,
    backlog_seconds: u32,
    /// Latency: events/s, users, warm-up and measured time.
    rate: f64,
    latency_users: usize,
    warmup: Duration,
    measure: Duration,
}

impl Plan {
    fn new(smoke: bool) -> Plan {
        let partitions = std::env::var("VIGIL_BENCH_KAFKA_PARTITIONS")
            .ok()
            .and_then(|p| p.parse().ok())
            .filter(|&p| p > 0)
            .unwrap_or(6);
        if smoke {
            Plan {
                smoke,
                partitions,
                backlog_users: 100,
                backlog_seconds: 500,
                rate: 20_000.0,
                latency_users: 5_000,
                warmup: Duration::from_secs(1),
                measure: Duration::from_secs(2),
            }
        } else {
            Plan {
                smoke,
                partitions,
                backlog_users: 2000,
                backlog_seconds: 1500,
                rate: 20_000.0,
                latency_users: 20_000,
                warmup: Duration::from_secs(2),
                measure: Duration::from_secs(15),
            }
        }
    }

    /// Events the fixed-rate phase sends (warm-up included).
    fn rate_events(&self) -> usize {
        (self.rate * (self.warmup + self.measure).as_secs_f64()).round() as usize
    }
}

// ------------------------------------------------------------------------------------------
// Input records

/// Simulated events as the records to produce, in the order to produce them: round by round,
/// one event of every user per round, so that all users stream at once.
struct Stream {
    users: Vec<String>,
    /// Every record's JSON body, back to back.
    bytes: Vec<u8>,
    records: Vec<Rec>,
    /// Event ids by record, when asked for.
    ids: Vec<String>,
}

#[derive(Clone, Copy)]
struct Rec {
    start: usize,
    end: usize,
    user: u32,
    /// Event time, ms since 1970: the record's timestamp.
    time_ms: i64,
}

impl Stream {
    fn new(users: usize, seconds: u32, seed: u64, keep_ids: bool) -> Stream {
        let mut bytes = Vec::new();
        let mut per_user: Vec<Vec<(Rec, String)>> = vec![Vec::new(); users];
        let events = simulate(&SimConfig {
            users,
            days: 1,
            seed,
            start: NaiveDate::from_ymd_opt(2024, 5, 1).expect("date"),
            heart_rate: true,
            hr_hours_per_day: f64::from(seconds) / 3600.0,
            hr_users: None,
            hr_days: None,
            hr_episode_probability: 0.3,
        })
        .filter(|e| matches!(e.event_type(), EventType::HeartRate | EventType::StepCount));
        for e in events {
            let user: usize = e.user_id["sim-".len()..].parse::<usize>().expect("sim id") - 1;
            let start = bytes.len();
            serde_json::to_writer(&mut bytes, &e.to_json()).expect("serialise");
            let rec = Rec {
                start,
                end: bytes.len(),
                user: u32::try_from(user).expect("users"),
                time_ms: e.time.millis(),
            };
            per_user[user].push((rec, if keep_ids { e.id } else { String::new() }));
        }
        let total = per_user.iter().map(Vec::len).sum();
        let mut records = Vec::with_capacity(total);
        let mut ids = Vec::with_capacity(if keep_ids { total } else { 0 });
        let mut iters: Vec<_> = per_user.into_iter().map(Vec::into_iter).collect();
        while records.len() < total {
            for it in &mut iters {
                if let Some((rec, id)) = it.next() {
                    records.push(rec);
                    if keep_ids {
                        ids.push(id);
                    }
                }
            }
        }
        Stream {
            users: (0..users).map(vigil::simulate::user_id).collect(),
            bytes,
            records,
            ids,
        }
    }

    fn payload(&self, r: &Rec) -> &[u8] {
        &self.bytes[r.start..r.end]
    }

    fn key(&self, r: &Rec) -> &[u8] {
        self.users[r.user as usize].as_bytes()
    }

    fn record<'a>(&'a self, topic: &'a str, r: &Rec) -> BaseRecord<'a, [u8], [u8]> {
        BaseRecord::to(topic)
            .key(self.key(r))
            .payload(self.payload(r))
            .timestamp(r.time_ms)
    }
}

fn input_producer(brokers: &str, linger_ms: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", linger_ms)
        .set("partitioner", "murmur2_random")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.max.bytes", "2000000")
        .create()
        .expect("producer")
}

/// Enqueues a record, waiting for room when librdkafka's queue is full.
fn send(producer: &BaseProducer, mut record: BaseRecord<'_, [u8], [u8]>) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("produce: {e}"),
        }
    }
}

/// Waits until every record is acknowledged, serving the delivery reports. (rdkafka's own
/// `flush` counts every delivery-report event served as 100 ms of its timeout, so it gives up
/// early, without an error from the broker, when many reports are queued.)
fn flush(producer: &BaseProducer, limit: Duration) {
    let start = Instant::now();
    while producer.in_flight_count() > 0 {
        assert!(
            start.elapsed() < limit,
            "{} records not acknowledged within {limit:?}",
            producer.in_flight_count()
        );
        producer.poll(Duration::from_millis(100));
    }
}

/// Produces `records` as fast as the broker takes them; returns the time it took.
fn produce_all(brokers: &str, topic: &str, stream: &Stream, records: &[Rec]) -> Duration {
    let producer = input_producer(brokers, "20");
    let start = Instant::now();
    for r in records {
        send(&producer, stream.record(topic, r));
        producer.poll(Duration::ZERO);
    }
    flush(&producer, Duration::from_secs(300));
    start.elapsed()
}

// ------------------------------------------------------------------------------------------
// Topics, groups, clean-up

/// Everything a run creates on the broker, deleted when dropped (also on a panic).
struct Broker {
    brokers: String,
    run_id: String,
    dir: tempfile::TempDir,
    admin: AdminClient<DefaultClientContext>,
    rt: tokio::runtime::Runtime,
    topics: Vec<String>,
    groups: Vec<String>,
}

impl Broker {
    fn new(brokers: String) -> Broker {
        let admin = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("admin client");
        Broker {
            brokers,
            run_id: kafka_sandbox::unique("vigil-bench"),
            dir: tempfile::tempdir().expect("tempdir"),
            admin,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime"),
            topics: Vec::new(),
            groups: Vec::new(),
        }
    }

    fn options() -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(Duration::from_secs(30)))
            .operation_timeout(Some(Duration::from_secs(30)))
    }

    /// A topic prefix with Vigil's seven topics and `bare-out`, all with `partitions`.
    fn prefix(&mut self, name: &str, partitions: i32) -> Prefix {
        let prefix = Prefix {
            prefix: format!("{}.{name}.", self.run_id),
            config: self.dir.path().join(format!("{name}.toml")),
            config_compared: self.dir.path().join(format!("{name}{COMPARED}.toml")),
        };
        let compare = compared_build().is_some();
        let mut text = format!(
            "# Written by benches/kafka_e2e.rs.\n[kafka]\nrequest-timeout = \"15s\"\n\n\
             [kafka.streaming]\ncommit-interval = \"{}ms\"\npipelined-transactions = {}\n",
            commit_interval().as_millis(),
            pipelined()
        );
        text.push_str(&kafka_sandbox::topic_tables(partitions));
        std::fs::write(&prefix.config, &text).expect("write config");
        for (_, topic) in kafka_env::TOPICS {
            self.topics.push(prefix.topic(topic));
        }
        self.topics.push(prefix.topic(BARE_OUT));
        let mut configs = vec![&prefix.config];
        if compare {
            for (table, topic) in kafka_env::TOPICS {
                if !INPUTS.contains(&topic) {
                    let own = format!("{topic}{COMPARED}");
                    text = text.replace(
                        &format!("[kafka.topics.{table}]\n"),
                        &format!("[kafka.topics.{table}]\nname = \"{own}\"\n"),
                    );
                    self.topics.push(prefix.topic(&own));
                }
            }
            std::fs::write(&prefix.config_compared, text).expect("write config");
            configs.push(&prefix.config_compared);
        }
        for config in configs {
            let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
                .args(["topics", "apply", "--config"])
                .arg(config)
                .env("VIGIL_KAFKA_BROKERS", &self.brokers)
                .env("VIGIL_KAFKA_TOPIC_PREFIX", &prefix.prefix)
                .output()
                .expect("vigil topics apply");
            assert!(
                out.status.success(),
                "vigil topics apply failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let bare_out = prefix.topic(BARE_OUT);
        let topic = NewTopic::new(&bare_out, partitions, TopicReplication::Fixed(1))
            .set("retention.ms", "-1");
        let results = self
            .rt
            .block_on(self.admin.create_topics([&topic], &Self::options()))
            .expect("create topic");
        for r in results {
            if let Err((name, e)) = r {
                panic!("cannot create {name}: {e}");
            }
        }
        prefix
    }

    fn group(&mut self, name: &str) -> String {
        let group = format!("{}-{name}", self.run_id);
        self.groups.push(group.clone());
        self.groups.push(format!("{group}-restore"));
        group
    }

    /// Deletes `prefix`'s topics now rather than at the end: a throughput round writes about
    /// 2 GB, which, left in place, the kernel would write back to disk during the rounds and
    /// the latency phase after it (the broker removes a deleted topic's files within a second,
    /// before that; see `scripts/services`).
    fn retire(&mut self, prefix: &Prefix) {
        let (retired, kept): (Vec<String>, Vec<String>) = std::mem::take(&mut self.topics)
            .into_iter()
            .partition(|t| t.starts_with(&prefix.prefix));
        self.topics = kept;
        let names: Vec<&str> = retired.iter().map(String::as_str).collect();
        match self
            .rt
            .block_on(self.admin.delete_topics(&names, &Self::options()))
        {
            Ok(results) => {
                for r in results {
                    if let Err((name, e)) = r {
                        eprintln!("kafka_e2e: cannot delete {name}: {e}");
                    }
                }
            }
            Err(e) => eprintln!(
                "kafka_e2e: cannot delete the topics of {}: {e}",
                prefix.prefix
            ),
        }
    }

    /// Vigil's log for a run: in the broker's temporary folder, or kept in
    /// `VIGIL_BENCH_LOGS` when that names a folder.
    fn log_path(&self, name: &str) -> PathBuf {
        match std::env::var_os("VIGIL_BENCH_LOGS") {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                std::fs::create_dir_all(&dir).expect("VIGIL_BENCH_LOGS folder");
                dir.join(format!("{name}.log"))
            }
            None => self.dir.path().join(format!("{name}.log")),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        let groups: Vec<&str> = self.groups.iter().map(String::as_str).collect();
        let mut deleted = 0;
        if !topics.is_empty() {
            match self
                .rt
                .block_on(self.admin.delete_topics(&topics, &Self::options()))
            {
                Ok(results) => {
                    for r in results {
                        match r {
                            Ok(_) => deleted += 1,
                            Err((name, e)) => eprintln!("kafka_e2e: cannot delete {name}: {e}"),
                        }
                    }
                }
                Err(e) => eprintln!("kafka_e2e: cannot delete the topics: {e}"),
            }
        }
        // Groups that never stored offsets do not exist (GroupIdNotFound, fine). Vigil's
        // groups are not empty until its static membership (group.instance.id) times out,
        // `session.timeout.ms` after it stopped; the broker drops them later on its own, their
        // offsets having gone with the topics.
        let (mut groups_deleted, mut still_members) = (0, 0);
        if !groups.is_empty() {
            if let Ok(results) = self
                .rt
                .block_on(self.admin.delete_groups(&groups, &Self::options()))
            {
                for r in results {
                    match r {
                        Ok(_) => groups_deleted += 1,
                        Err((_, RDKafkaErrorCode::NonEmptyGroup)) => still_members += 1,
                        Err(_) => {}
                    }
                }
            }
        }
        println!(
            "clean-up: {deleted} of {} topics deleted (prefix {}.*); {groups_deleted} consumer \
             groups deleted{}",
            topics.len(),
            self.run_id,
            if still_members > 0 {
                format!(
                    ", {still_members} left to the broker (Vigil's static member has not timed \
                     out yet)"
                )
            } else {
                String::new()
            }
        );
    }
}

struct Prefix {
    prefix: String,
    config: PathBuf,
    /// For the build compared (`VIGIL_BENCH_COMPARE`): the same inputs, outputs and changelog
    /// of its own (named with [`COMPARED`] appended), so neither run reads the other's state.
    config_compared: PathBuf,
}

impl Prefix {
    fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn inputs(&self) -> Vec<String> {
        INPUTS.iter().map(|t| self.topic(t)).collect()
    }
}

// ------------------------------------------------------------------------------------------
// Watching a group's committed offsets

/// Polls a group's committed offsets of the input topics (read_uncommitted: the broker answers
/// at once instead of waiting for pending transactional offsets to settle).
struct Committed {
    consumer: BaseConsumer,
    partitions: TopicPartitionList,
}

impl Committed {
    fn new(brokers: &str, group: &str, topics: &[String], partitions: i32) -> Committed {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_uncommitted")
            .create()
            .expect("offsets consumer");
        let mut tpl = TopicPartitionList::new();
        for t in topics {
            for p in 0..partitions {
                tpl.add_partition(t, p);
            }
        }
        Committed {
            consumer,
            partitions: tpl,
        }
    }

    /// Sum of the committed offsets (a partition without one counts 0).
    fn total(&self) -> Option<i64> {
        let tpl = self
            .consumer
            .committed_offsets(self.partitions.clone(), Duration::from_secs(10))
            .ok()?;
        Some(
            tpl.elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                })
                .sum(),
        )
    }
}

/// What the committed offsets showed over one throughput run.
struct Watched {
    events: i64,
    /// From the processor's start to the first poll that showed progress.
    startup: Duration,
    /// (time, committed) at the first poll that showed progress, and at the end.
    first: (Instant, i64),
    end: (Instant, i64),
    polls: usize,
    /// CPU seconds used by (this process, vigil, the broker) and the machine's busy share
    /// between the two polls.
    cpu: CpuWindow,
}

impl Watched {
    fn seconds(&self) -> f64 {
        (self.end.0 - self.first.0).as_secs_f64()
    }

    fn rate(&self) -> Option<f64> {
        let s = self.seconds();
        (s > 0.0).then(|| (self.end.1 - self.first.1) as f64 / s)
    }

    fn describe(&self) -> String {
        match self.rate() {
            Some(rate) => format!(
                "{} events/s ({} events committed in {:.2} s between the first poll showing \
                 progress and the end; {} polls; start-up and group join before that: {:.2} s)",
                thousands(rate.round() as i64),
                thousands(self.end.1 - self.first.1),
                self.seconds(),
                self.polls,
                self.startup.as_secs_f64()
            ),
            None => format!(
                "too fast to time: all {} events were committed at the first poll",
                thousands(self.events)
            ),
        }
    }
}

/// Polls until the group has committed `events`, or `alive` says the processor is gone.
fn watch(
    committed: &Committed,
    events: i64,
    limit: Duration,
    pids: Pids,
    mut alive: impl FnMut() -> bool,
) -> Result<Watched, String> {
    let start = Instant::now();
    let mut first: Option<(Instant, i64, CpuSample)> = None;
    let mut polls = 0;
    loop {
        let asked = Instant::now();
        let total = committed.total();
        let now = Instant::now();
        polls += 1;
        if let Some(total) = total {
            if total > 0 && first.is_none() {
                first = Some((now, total, CpuSample::take(pids)));
            }
            if total >= events {
                let (t0, c0, cpu0) = first.expect("progress seen");
                return Ok(Watched {
                    events,
                    startup: t0 - start,
                    first: (t0, c0),
                    end: (now, total),
                    polls,
                    cpu: CpuSample::take(pids).since(&cpu0),
                });
            }
        }
        if !alive() {
            return Err(format!(
                "the processor stopped with {total:?} of {events} events committed"
            ));
        }
        if start.elapsed() > limit {
            return Err(format!(
                "only {total:?} of {events} events committed after {limit:?}"
            ));
        }
        thread::sleep(POLL_EVERY.saturating_sub(asked.elapsed()));
    }
}

// ------------------------------------------------------------------------------------------
// CPU accounting from /proc (best effort, Linux)

#[derive(Clone, Copy)]
struct Pids {
    vigil: Option<u32>,
    broker: Option<u32>,
}

#[derive(Clone, Copy, Default)]
struct CpuSample {
    at: Option<Instant>,
    this: Option<u64>,
    vigil: Option<u64>,
    broker: Option<u64>,
    /// (busy, total) jiffies of the whole machine.
    machine: Option<(u64, u64)>,
}

#[derive(Clone, Copy, Default)]
struct CpuWindow {
    seconds: f64,
    this: Option<f64>,
    vigil: Option<f64>,
    broker: Option<f64>,
    machine_busy: Option<f64>,
}

/// Jiffies per second (`getconf CLK_TCK`); 100 on every Linux build that matters here.
const CLK_TCK: f64 = 100.0;

fn proc_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the ")" closing the command name: state is field 3; utime, stime 14, 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

impl CpuSample {
    fn take(pids: Pids) -> CpuSample {
        CpuSample {
            at: Some(Instant::now()),
            this: proc_ticks("self"),
            vigil: pids.vigil.and_then(|p| proc_ticks(&p.to_string())),
            broker: pids.broker.and_then(|p| proc_ticks(&p.to_string())),
            machine: machine_ticks(),
        }
    }

    fn since(&self, before: &CpuSample) -> CpuWindow {
        let seconds = match (self.at, before.at) {
            (Some(b), Some(a)) => (b - a).as_secs_f64(),
            _ => 0.0,
        };
        let d = |b: Option<u64>, a: Option<u64>| {
            Some(b?.saturating_sub(a?) as f64 / CLK_TCK).filter(|_| seconds > 0.0)
        };
        CpuWindow {
            seconds,
            this: d(self.this, before.this),
            vigil: d(self.vigil, before.vigil),
            broker: d(self.broker, before.broker),
            machine_busy: match (self.machine, before.machine) {
                (Some((b1, t1)), Some((b0, t0))) if t1 > t0 => {
                    Some((b1 - b0) as f64 / (t1 - t0) as f64)
                }
                _ => None,
            },
        }
    }
}

impl CpuWindow {
    /// "vigil 0.93 cores, broker 0.61, this process 0.10; machine 97 % busy".
    fn describe(&self) -> String {
        let cores = |label: &str, v: Option<f64>| {
            v.map(|v| format!("{label} {:.2} cores", v / self.seconds))
        };
        let mut parts: Vec<String> = [
            cores("vigil", self.vigil),
            cores("broker", self.broker),
            cores("bench process", self.this),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(busy) = self.machine_busy {
            parts.push(format!(
                "whole machine {:.0} % busy (of {} cores)",
                busy * 100.0,
                cores_online()
            ));
        }
        parts.join(", ")
    }
}

fn cores_online() -> usize {
    thread::available_parallelism().map_or(0, usize::from)
}

/// The broker's pid, when it is the one `scripts/services up` started from this checkout.
fn broker_pid() -> Option<u32> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/services");
    let port: String = std::fs::read_to_string(dir.join("kafka.port")).ok()?;
    let brokers = std::env::var("VIGIL_KAFKA_BROKERS").ok()?;
    if !brokers.contains(&format!(":{}", port.trim())) {
        return None;
    }
    std::fs::read_to_string(dir.join("kafka.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

// ------------------------------------------------------------------------------------------
// The bare loop

#[derive(Debug, Default)]
struct BareStats {
    forwarded: u64,
    commits: u64,
    /// Time each commit took (offsets into the transaction, then commit), µs.
    commit_micros: Vec<u64>,
    errors: Vec<String>,
}

/// Forwards every record of `inputs` to `output` (same partition, key and bytes) with the
/// delivery guarantees of Vigil's run: read_committed, one transaction per 100 ms holding
/// the forwarded records and the consumed offsets. Stops (committing) when `stop` is set.
fn bare_loop(
    brokers: &str,
    group: &str,
    inputs: &[String],
    output: &str,
    stop: &AtomicBool,
) -> BareStats {
    let timeout = Duration::from_secs(15);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("transactional.id", format!("{group}-tx"))
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("message.max.bytes", "2000000")
        .create()
        .expect("bare producer");
    producer
        .init_transactions(timeout)
        .expect("bare init_transactions");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "range")
        // Vigil's consumer setting (see src/kafka/stream.rs): without it librdkafka fetches a
        // backlog in bursts about four times a second, and both loops idle in between.
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .expect("bare consumer");
    let topics: Vec<&str> = inputs.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).expect("subscribe");
    let mut stats = BareStats::default();
    let mut next: HashMap<(String, i32), i64> = HashMap::new();
    let mut in_transaction = false;
    let mut last_commit = Instant::now();
    let commit =
        |next: &HashMap<(String, i32), i64>, in_transaction: &mut bool, stats: &mut BareStats| {
            if !*in_transaction {
                return;
            }
            let mut offsets = TopicPartitionList::new();
            for ((topic, partition), offset) in next {
                offsets
                    .add_partition_offset(topic, *partition, Offset::Offset(*offset))
                    .expect("offset");
            }
            let group = consumer.group_metadata().expect("group metadata");
            let started = Instant::now();
            producer
                .send_offsets_to_transaction(&offsets, &group, timeout)
                .expect("send_offsets_to_transaction");
            producer
                .commit_transaction(timeout)
                .expect("commit_transaction");
            *in_transaction = false;
            stats.commits += 1;
            stats
                .commit_micros
                .push(started.elapsed().as_micros() as u64);
        };
    loop {
        if stop.load(Ordering::Relaxed) {
            commit(&next, &mut in_transaction, &mut stats);
            return stats;
        }
        // As Vigil's loop does: wait up to 5 ms for the first record, then take what is there
        // (at most 5 000) without waiting.
        let mut wait = Duration::from_millis(5);
        let mut received = 0;
        while received < 5_000 {
            match consumer.poll(wait) {
                None => break,
                Some(Ok(m)) => {
                    wait = Duration::ZERO;
                    received += 1;
                    if !in_transaction {
                        producer.begin_transaction().expect("begin_transaction");
                        in_transaction = true;
                    }
                    let mut record = BaseRecord::<[u8], [u8]>::to(output).partition(m.partition());
                    if let Some(key) = m.key() {
                        record = record.key(key);
                    }
                    if let Some(payload) = m.payload() {
                        record = record.payload(payload);
                    }
                    send(&producer, record);
                    next.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
                    stats.forwarded += 1;
                }
                Some(Err(e)) => {
                    if stats.errors.len() < 20 {
                        stats.errors.push(e.to_string());
                    }
                }
            }
        }
        producer.poll(Duration::ZERO);
        if last_commit.elapsed() >= commit_interval() {
            commit(&next, &mut in_transaction, &mut stats);
            last_commit = Instant::now();
        }
    }
}

impl BareStats {
    fn describe(&self) -> String {
        let mut m = self.commit_micros.clone();
        m.sort_unstable();
        let ms = |v: u64| v as f64 / 1000.0;
        let mut text = format!(
            "{} records forwarded in {} transactions",
            thousands(self.forwarded as i64),
            self.commits
        );
        if !m.is_empty() {
            write!(
                text,
                "; a commit (send_offsets_to_transaction + commit_transaction) took p50 {:.1} ms, \
                 p99 {:.1} ms, max {:.1} ms",
                ms(m[m.len() / 2]),
                ms(m[((m.len() - 1) as f64 * 0.99).round() as usize]),
                ms(m[m.len() - 1])
            )
            .expect("write");
        }
        if !self.errors.is_empty() {
            write!(text, "; consumer errors: {:?}", self.errors).expect("write");
        }
        text
    }
}

struct Bare {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<BareStats>,
}

impl Bare {
    fn start(brokers: &str, group: &str, prefix: &Prefix) -> Bare {
        let stop = Arc::new(AtomicBool::new(false));
        let (brokers, group, inputs, output) = (
            brokers.to_string(),
            group.to_string(),
            prefix.inputs(),
            prefix.topic(BARE_OUT),
        );
        let flag = Arc::clone(&stop);
        let handle = thread::Builder::new()
            .name("bare-loop".into())
            .spawn(move || bare_loop(&brokers, &group, &inputs, &output, &flag))
            .expect("spawn bare loop");
        Bare { stop, handle }
    }

    fn finish(self) -> BareStats {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the bare loop panicked")
    }
}

// ------------------------------------------------------------------------------------------
// Vigil as a subprocess

struct Vigil {
    child: Option<Child>,
    log: PathBuf,
    name: String,
}

impl Vigil {
    #[allow(clippy::too_many_arguments)]
    fn start(
        build: &Build,
        broker: &Broker,
        prefix: &Prefix,
        group: &str,
        name: &str,
        rules: &[PathBuf],
        exit_when_idle: Option<&str>,
    ) -> Vigil {
        let log = broker.log_path(name);
        let file = std::fs::File::create(&log).expect("log file");
        let mut c = Command::new(&build.binary);
        // Without the history sink: it is a consumer of the outputs beside the engine, and the
        // figures here are the engine's path from input to committed outputs.
        let config = if build.compared {
            &prefix.config_compared
        } else {
            &prefix.config
        };
        c.args(["run", "--kafka", "--no-history", "--config"])
            .arg(config)
            .args(["--instance-id", name]);
        for r in rules {
            c.arg("--rules").arg(r);
        }
        if let Some(idle) = exit_when_idle {
            c.args(["--exit-when-idle", idle]);
        }
        // Without Redis unless asked (VIGIL_BENCH_REDIS=1): the shared status is then kept in
        // the process, as the figures before it existed were measured.
        if std::env::var_os("VIGIL_BENCH_REDIS").is_none() {
            c.env_remove("VIGIL_REDIS_URL");
        }
        c.env("VIGIL_KAFKA_BROKERS", &broker.brokers)
            .env("VIGIL_KAFKA_TOPIC_PREFIX", &prefix.prefix)
            .env("VIGIL_KAFKA_GROUP", group)
            .stdout(Stdio::null())
            .stderr(file);
        Vigil {
            child: Some(c.spawn().expect("start vigil")),
            log,
            name: name.to_string(),
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM (unless it is exiting by itself), then waits up to `limit`; returns the log.
    fn finish(mut self, terminate: bool, limit: Duration) -> String {
        let mut child = self.child.take().expect("running");
        if terminate && matches!(child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + limit;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let log = self.log();
        match status {
            Some(s) if s.success() => {}
            Some(s) => println!("WARNING: vigil ({}) exited with {s}", self.name),
            None => println!(
                "WARNING: vigil ({}) did not exit within {limit:?}; killed",
                self.name
            ),
        }
        log
    }
}

impl Drop for Vigil {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn print_log(label: &str, log: &str) {
    println!("  {label} stderr:");
    for line in log.lines() {
        println!("    | {line}");
    }
    let suspicious = log
        .lines()
        .filter(|l| {
            let l = l.to_lowercase();
            [
                "error",
                "fail",
                "abort",
                "again",
                "warn",
                "fenced",
                "timed out",
            ]
            .iter()
            .any(|w| l.contains(w))
                && !l.contains("aborted: 0")
        })
        .count();
    // The first assignment is reported as a rebalance too.
    let rebalances = log.lines().filter(|l| l.contains("assigned anew")).count();
    if suspicious > 0 || rebalances > 1 {
        println!(
            "  NOTE: {label}'s log has {suspicious} line(s) about errors, aborts or retries and \
             {rebalances} rebalance(s) (1 is the first assignment)"
        );
    }
}

/// Records and bytes (keys + values) in `topic`, as a read_committed consumer sees it.
fn topic_volume(brokers: &str, group: &str, topic: &str, partitions: i32) -> Option<(u64, u64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .ok()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).ok()?;
    }
    consumer.assign(&tpl).ok()?;
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut at_end = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while at_end.len() < partitions as usize {
        if Instant::now() > deadline {
            return None;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                records += 1;
                bytes += (m.key_len() + m.payload_len()) as u64;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(_)) | None => {}
        }
    }
    Some((records, bytes))
}

/// What Vigil wrote besides its outputs: the state changelog, per input event and per
/// transaction.
fn describe_changelog(
    broker: &Broker,
    prefix: &Prefix,
    suffix: &str,
    partitions: i32,
    events: i64,
) -> String {
    let group = format!("{}-volume", broker.run_id);
    let volume = |t: &str| {
        let topic = prefix.topic(&format!("{t}{suffix}"));
        topic_volume(&broker.brokers, &group, &topic, partitions)
    };
    match (
        volume("vigil-state"),
        volume("alerts"),
        volume("milestones"),
    ) {
        (Some((records, bytes)), Some((alerts, _)), Some((milestones, _))) => format!(
            "written: {} alerts, {} milestones; state changelog {} records, {:.1} MB ({:.2} \
             records, {:.0} B per input event)",
            thousands(alerts as i64),
            thousands(milestones as i64),
            thousands(records as i64),
            bytes as f64 / 1e6,
            records as f64 / events as f64,
            bytes as f64 / events as f64
        ),
        _ => "written: could not read the output topics back".to_string(),
    }
}

// ------------------------------------------------------------------------------------------
// Latency at a fixed rate

/// Reads `topics` from the beginning (read_committed), noting when each record arrived.
struct Reader {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
    handle: JoinHandle<Vec<Seen>>,
}

impl Reader {
    fn start(
        brokers: &str,
        group: &str,
        topics: Vec<String>,
        partitions: i32,
        t0: Instant,
    ) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("reader");
        let mut tpl = TopicPartitionList::new();
        for t in &topics {
            for p in 0..partitions {
                tpl.add_partition_offset(t, p, Offset::Beginning)
                    .expect("partition");
            }
        }
        consumer.assign(&tpl).expect("assign");
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicUsize::new(0));
        let (flag, counter) = (Arc::clone(&stop), Arc::clone(&count));
        let handle = thread::Builder::new()
            .name("output-reader".into())
            .spawn(move || {
                let mut got = Vec::new();
                while !flag.load(Ordering::Relaxed) {
                    match consumer.poll(Duration::from_millis(20)) {
                        Some(Ok(m)) => {
                            let at = t0.elapsed().as_micros() as u64;
                            got.push(Seen {
                                at,
                                produced_ms: m.timestamp().to_millis(),
                                payload: m.payload().unwrap_or_default().to_vec(),
                            });
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Err(e)) => eprintln!("kafka_e2e: output reader: {e}"),
                        None => {}
                    }
                }
                got
            })
            .expect("spawn reader");
        Reader {
            stop,
            count,
            handle,
        }
    }

    /// Waits until nothing new has arrived for `quiet`, then stops.
    fn finish(self, quiet: Duration) -> Vec<Seen> {
        let mut seen = self.count.load(Ordering::Relaxed);
        let mut since = Instant::now();
        while since.elapsed() < quiet {
            thread::sleep(Duration::from_millis(50));
            let now = self.count.load(Ordering::Relaxed);
            if now != seen {
                seen = now;
                since = Instant::now();
            }
        }
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("reader panicked")
    }
}

/// An output as the reader saw it: when (µs after the phase's start), the record's Kafka
/// timestamp (ms since the epoch: when the processor produced it, as neither sets one) and
/// its bytes.
struct Seen {
    at: u64,
    produced_ms: Option<i64>,
    payload: Vec<u8>,
}

#[derive(Deserialize)]
struct OutputIds {
    data: OutputIdsData,
}

#[derive(Deserialize)]
struct OutputIdsData {
    input_event_ids: Vec<String>,
}

#[derive(Deserialize)]
struct EventId {
    id: String,
}

/// The input event id of an output record: Vigil's `data.input_event_ids[0]`, or the
/// forwarded event's own `id` (bare loop).
fn cause(payload: &[u8], bare: bool) -> Option<String> {
    if bare {
        serde_json::from_slice::<EventId>(payload)
            .ok()
            .map(|e| e.id)
    } else {
        serde_json::from_slice::<OutputIds>(payload)
            .ok()?
            .data
            .input_event_ids
            .into_iter()
            .next()
    }
}

struct Latency {
    /// Latencies of the outputs caused by events sent after the warm-up, µs.
    micros: Vec<u64>,
    /// The same outputs' latencies split at the output's Kafka timestamp (when the processor
    /// produced it, in ms): send → produced (input, processing, holding) and produced →
    /// visible to `read_committed` (acknowledgement, commit, markers, the reader's fetch).
    to_produced: Vec<u64>,
    to_visible: Vec<u64>,
    outputs: usize,
    warmup_outputs: usize,
    unmatched: usize,
    sent: usize,
    send_seconds: f64,
    /// Largest number of events sent but not yet committed, at any poll.
    max_behind: i64,
    /// The most events sent but not yet committed at a poll, per second.
    behind: Vec<i64>,
    cpu: CpuWindow,
}

impl Latency {
    /// "behind …: 1 204, 830, …": how far the processor was behind, second by second.
    fn describe_behind(&self) -> String {
        let seconds: Vec<String> = self.behind.iter().map(|&b| thousands(b)).collect();
        format!(
            "events sent but not yet committed, most per second of the phase: {}",
            seconds.join(", ")
        )
    }

    /// "send → produced p50 … p99 …; produced → visible p50 … p99 …".
    fn describe_split(&self) -> String {
        let quantiles = |micros: &[u64]| match quantiles_ms(micros) {
            Some(q) => format!("p50 {:.0} ms, p99 {:.0} ms", q(0.5), q(0.99)),
            None => "none".to_string(),
        };
        format!(
            "split at the output's Kafka timestamp (1 ms steps): send → produced {}; \
             produced → visible to read_committed {}",
            quantiles(&self.to_produced),
            quantiles(&self.to_visible)
        )
    }

    fn describe(&self, what: &str) -> String {
        let Some(q) = quantiles_ms(&self.micros) else {
            return format!("no {what} measured");
        };
        format!(
            "{} {what} measured: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            thousands(self.micros.len() as i64),
            q(0.50),
            q(0.90),
            q(0.99),
            q(1.0)
        )
    }
}

/// The quantiles of `micros`, in ms (`q(1.0)` is the largest); `None` when it is empty.
fn quantiles_ms(micros: &[u64]) -> Option<impl Fn(f64) -> f64> {
    if micros.is_empty() {
        return None;
    }
    let mut m = micros.to_vec();
    m.sort_unstable();
    Some(move |p: f64| m[((m.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0)
}

enum Processor {
    Vigil(Vigil),
    Bare(Bare),
}

/// Runs the fixed-rate phase against a processor already started on `prefix`.
#[allow(clippy::too_many_arguments)]
fn latency_phase(
    plan: &Plan,
    broker: &Broker,
    prefix: &Prefix,
    group: &str,
    processor: &mut Processor,
    stream: &Stream,
    outputs: Vec<String>,
    pids: Pids,
) -> Result<Latency, String> {
    let bare = matches!(processor, Processor::Bare(_));
    let mut alive = || match processor {
        Processor::Vigil(v) => v.alive(),
        Processor::Bare(b) => !b.handle.is_finished(),
    };
    let t0 = Instant::now();
    let t0_wall_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let reader = Reader::start(
        &broker.brokers,
        &format!("{group}-reader"),
        outputs,
        plan.partitions,
        t0,
    );
    let committed = Committed::new(&broker.brokers, group, &prefix.inputs(), plan.partitions);
    let topic = prefix.topic("biometric-updates");

    // Probe: one event per user, to wait for the group join and the tasks' set-up.
    let probe = stream.users.len();
    produce_all(&broker.brokers, &topic, stream, &stream.records[..probe]);
    let waited = Instant::now();
    loop {
        if committed.total().unwrap_or(0) >= probe as i64 {
            break;
        }
        if !alive() {
            return Err("the processor stopped before it committed the probe".into());
        }
        if waited.elapsed() > Duration::from_secs(90) {
            return Err("the probe was not committed within 90 s".into());
        }
        thread::sleep(POLL_EVERY);
    }
    let ready_after = waited.elapsed();

    // The fixed-rate producer.
    let n = plan.rate_events();
    let records = &stream.records[probe..probe + n];
    let sent_count = Arc::new(AtomicUsize::new(0));
    let rate = plan.rate;
    let cpu0 = CpuSample::take(pids);
    let (send_at, send_seconds, behind) = thread::scope(|s| {
        let counter = Arc::clone(&sent_count);
        let producer_thread = s.spawn(move || {
            let producer = input_producer(&broker.brokers, "5");
            let mut at = Vec::with_capacity(records.len());
            let start = Instant::now();
            let mut i = 0;
            while i < records.len() {
                let due = ((start.elapsed().as_secs_f64() * rate) as usize).min(records.len());
                while i < due {
                    at.push(t0.elapsed().as_micros() as u64);
                    send(&producer, stream.record(&topic, &records[i]));
                    i += 1;
                }
                counter.store(i, Ordering::Relaxed);
                for _ in 0..8 {
                    producer.poll(Duration::ZERO);
                }
                thread::sleep(Duration::from_micros(500));
            }
            let took = start.elapsed().as_secs_f64();
            flush(&producer, Duration::from_secs(120));
            (at, took)
        });
        // The most events sent but not committed yet, per second of the phase.
        let mut behind: Vec<i64> = Vec::new();
        let started = Instant::now();
        while !producer_thread.is_finished() {
            let asked = Instant::now();
            if let Some(total) = committed.total() {
                let sent = sent_count.load(Ordering::Relaxed) as i64;
                let second = started.elapsed().as_secs() as usize;
                if behind.len() <= second {
                    behind.resize(second + 1, 0);
                }
                behind[second] = behind[second].max(sent - (total - probe as i64));
            }
            thread::sleep(POLL_EVERY.saturating_sub(asked.elapsed()));
        }
        let (at, took) = producer_thread.join().expect("producer panicked");
        (at, took, behind)
    });
    // Everything sent is committed, then the reader has seen the last outputs.
    let end = (probe + n) as i64;
    let waited = Instant::now();
    while committed.total().unwrap_or(0) < end {
        if !alive() || waited.elapsed() > Duration::from_secs(120) {
            return Err(format!(
                "only {:?} of {end} events committed after the fixed-rate phase",
                committed.total()
            ));
        }
        thread::sleep(POLL_EVERY);
    }
    let cpu = CpuSample::take(pids).since(&cpu0);
    let got = reader.finish(Duration::from_millis(700));
    println!(
        "  ready {:.2} s after the probe was sent; {} events sent in {:.2} s",
        ready_after.as_secs_f64(),
        thousands(n as i64),
        send_seconds
    );

    let index: HashMap<&str, usize> = stream.ids[probe..probe + n]
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let warm = (plan.rate * plan.warmup.as_secs_f64()) as usize;
    let mut latency = Latency {
        micros: Vec::new(),
        to_produced: Vec::new(),
        to_visible: Vec::new(),
        outputs: got.len(),
        warmup_outputs: 0,
        unmatched: 0,
        sent: n,
        send_seconds,
        max_behind: behind.iter().copied().max().unwrap_or(0),
        behind,
        cpu,
    };
    // VIGIL_BENCH_LATENCY_DUMP=DIR writes each measured output's send time, latency and produce time (µs)
    // to DIR/{vigil,bare}-latency.tsv, to see when the slow ones happen.
    let mut dump = Vec::new();
    for seen in &got {
        let at = seen.at;
        match cause(&seen.payload, bare).and_then(|id| index.get(id.as_str()).copied()) {
            Some(i) if i >= warm => {
                let micros = at.saturating_sub(send_at[i]);
                latency.micros.push(micros);
                // Both clocks are this machine's: the Kafka timestamp is the processor's wall
                // clock at produce, placed on the phase's clock through `t0_wall_us`.
                let produced = seen
                    .produced_ms
                    .map(|ms| (ms * 1000 - t0_wall_us).clamp(0, at as i64) as u64);
                if let Some(produced) = produced {
                    latency
                        .to_produced
                        .push(produced.saturating_sub(send_at[i]));
                    latency.to_visible.push(at - produced);
                }
                dump.push((send_at[i], micros, produced.unwrap_or(0)));
            }
            Some(_) => latency.warmup_outputs += 1,
            None => latency.unmatched += 1,
        }
    }
    if let Some(dir) = std::env::var_os("VIGIL_BENCH_LATENCY_DUMP") {
        dump.sort_unstable();
        let name = if bare {
            "bare-latency.tsv"
        } else {
            "vigil-latency.tsv"
        };
        let text: String = dump
            .iter()
            .map(|(at, us, produced)| format!("{at}\t{us}\t{produced}\n"))
            .collect();
        if let Err(e) = std::fs::write(PathBuf::from(dir).join(name), text) {
            eprintln!("  cannot write the latency dump: {e}");
        }
    }
    Ok(latency)
}

// ------------------------------------------------------------------------------------------

fn thousands(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn rules_dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Rounds of the throughput phase: `VIGIL_BENCH_ROUNDS`, else 5 (1 in smoke mode).
fn rounds(smoke: bool) -> usize {
    std::env::var("VIGIL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(if smoke { 1 } else { 5 })
}

/// The bare loop over the backlog in `a`, in a group of its own.
fn bare_backlog(plan: &Plan, broker: &mut Broker, a: &Prefix, events: i64, pids: Pids) -> Watched {
    println!("bare loop over the backlog …");
    let limit = Duration::from_secs(if plan.smoke { 120 } else { 900 });
    let group = broker.group("backlog-bare");
    let committed = Committed::new(&broker.brokers, &group, &a.inputs(), plan.partitions);
    let bare = Bare::start(&broker.brokers, &group, a);
    let watched = watch(&committed, events, limit, pids, || {
        !bare.handle.is_finished()
    });
    let stats = bare.finish();
    let watched = watched.unwrap_or_else(|e| panic!("bare loop: {e}; {}", stats.describe()));
    println!("  {}", watched.describe());
    println!("  CPU: {}", watched.cpu.describe());
    println!("  {}", stats.describe());
    watched
}

/// Vigil over the backlog in `a` (`rules/`), in a group of its own. Each round has its own
/// prefix, so its state changelog starts empty.
fn vigil_backlog(
    plan: &Plan,
    broker: &mut Broker,
    a: &Prefix,
    events: i64,
    pids: Pids,
    round: usize,
    build: &Build,
) -> Watched {
    let other = build.compared;
    println!(
        "vigil{} over the backlog (rules/) …",
        if other { " (the build compared)" } else { "" }
    );
    let limit = Duration::from_secs(if plan.smoke { 120 } else { 900 });
    let group = broker.group(&format!(
        "backlog-vigil{round}{}",
        if other { "-compared" } else { "" }
    ));
    let committed = Committed::new(&broker.brokers, &group, &a.inputs(), plan.partitions);
    let mut vigil = Vigil::start(
        build,
        broker,
        a,
        &group,
        "vigil-backlog",
        &[rules_dir("rules")],
        Some("2s"),
    );
    let vigil_pids = Pids {
        vigil: vigil.pid(),
        ..pids
    };
    let watched = watch(&committed, events, limit, vigil_pids, || vigil.alive());
    let log = vigil.finish(false, Duration::from_secs(60));
    let watched = match watched {
        Ok(w) => w,
        Err(e) => {
            print_log("vigil", &log);
            panic!("vigil: {e}");
        }
    };
    println!("  {}", watched.describe());
    println!("  CPU: {}", watched.cpu.describe());
    println!(
        "  {}",
        describe_changelog(
            broker,
            a,
            if other { COMPARED } else { "" },
            plan.partitions,
            events
        )
    );
    print_log("vigil", &log);
    watched
}

/// A `vigil` binary to run, and whether it is the build compared (which gets topics, group
/// and config of its own). Told by this flag, not by its path: comparing a copy of this very
/// build (an A/A run, to see the noise) must still keep the two apart.
#[derive(Clone)]
struct Build {
    binary: PathBuf,
    compared: bool,
}

/// This build's `vigil`.
fn this_build() -> Build {
    Build {
        binary: PathBuf::from(env!("CARGO_BIN_EXE_vigil")),
        compared: false,
    }
}

/// The other build `VIGIL_BENCH_COMPARE` names, if any.
fn compared_build() -> Option<Build> {
    let path = PathBuf::from(std::env::var_os("VIGIL_BENCH_COMPARE")?);
    assert!(
        path.is_file(),
        "VIGIL_BENCH_COMPARE={} is not a file",
        path.display()
    );
    Some(Build {
        binary: path,
        compared: true,
    })
}

/// The median of some numbers (the lower middle one of an even count).
fn median_of(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values.get(values.len().saturating_sub(1) / 2).copied()
}

/// The median run by rate (the lower middle one of an even count).
fn median(runs: &[Watched]) -> Option<&Watched> {
    let mut rated: Vec<&Watched> = runs.iter().filter(|w| w.rate().is_some()).collect();
    rated.sort_by(|a, b| {
        a.rate()
            .partial_cmp(&b.rate())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    rated.get(rated.len().saturating_sub(1) / 2).copied()
}

/// The fixed-rate phase: Vigil, then the bare loop, on the same input.
fn latency_phases(plan: &Plan, broker: &mut Broker, pids: Pids) -> (Latency, Latency) {
    let seconds_per_user = (plan.rate_events() / plan.latency_users) as u32 + 10;
    let live = Stream::new(plan.latency_users, seconds_per_user, 7, true);
    assert!(live.records.len() >= plan.latency_users + plan.rate_events());
    let live_rules = [rules_dir("rules"), rules_dir("benches/fixtures/rules")];

    println!(
        "vigil at {} events/s for {:.0} s + {:.0} s warm-up (rules/ + benches/fixtures/rules/, \
         {} users at {:.0} Hz each) …",
        thousands(plan.rate as i64),
        plan.measure.as_secs_f64(),
        plan.warmup.as_secs_f64(),
        thousands(plan.latency_users as i64),
        plan.rate / plan.latency_users as f64
    );
    let b = broker.prefix("live", plan.partitions);
    let live_group = broker.group("live-vigil");
    let vigil = Vigil::start(
        &this_build(),
        broker,
        &b,
        &live_group,
        "vigil-live",
        &live_rules,
        None,
    );
    let live_pids = Pids {
        vigil: vigil.pid(),
        ..pids
    };
    let mut processor = Processor::Vigil(vigil);
    let vigil_latency = latency_phase(
        plan,
        broker,
        &b,
        &live_group,
        &mut processor,
        &live,
        vec![b.topic("alerts"), b.topic("milestones")],
        live_pids,
    );
    let Processor::Vigil(vigil) = processor else {
        unreachable!()
    };
    let log = vigil.finish(true, Duration::from_secs(30));
    let vigil_latency = match vigil_latency {
        Ok(l) => l,
        Err(e) => {
            print_log("vigil", &log);
            panic!("vigil at a fixed rate: {e}");
        }
    };
    println!("  {}", vigil_latency.describe("outputs"));
    println!("  {}", vigil_latency.describe_split());
    println!("  {}", vigil_latency.describe_behind());
    println!("  CPU: {}", vigil_latency.cpu.describe());
    println!(
        "  {}",
        describe_changelog(
            broker,
            &b,
            "",
            plan.partitions,
            (vigil_latency.sent + plan.latency_users) as i64
        )
    );
    print_log("vigil", &log);

    println!(
        "bare loop at {} events/s, same input …",
        thousands(plan.rate as i64)
    );
    let c = broker.prefix("live-bare", plan.partitions);
    let live_bare_group = broker.group("live-bare");
    let mut processor = Processor::Bare(Bare::start(&broker.brokers, &live_bare_group, &c));
    let bare_latency = latency_phase(
        plan,
        broker,
        &c,
        &live_bare_group,
        &mut processor,
        &live,
        vec![c.topic(BARE_OUT)],
        pids,
    );
    let Processor::Bare(bare) = processor else {
        unreachable!()
    };
    let stats = bare.finish();
    let bare_latency = bare_latency.unwrap_or_else(|e| panic!("bare loop at a fixed rate: {e}"));
    println!("  {}", bare_latency.describe("records"));
    println!("  {}", bare_latency.describe_split());
    println!("  {}", bare_latency.describe_behind());
    println!("  CPU: {}", bare_latency.cpu.describe());
    println!("  {}", stats.describe());

    (vigil_latency, bare_latency)
}

fn main() {
    let Some(brokers) = kafka_env::brokers() else {
        return;
    };
    let started = Instant::now();
    let plan = Plan::new(common::smoke());
    let mut broker = Broker::new(brokers);
    let pids = Pids {
        vigil: None,
        broker: broker_pid(),
    };
    println!(
        "kafka_e2e: broker {}, {} partitions per topic, commit interval {} ms, {} cores{}",
        broker.brokers,
        plan.partitions,
        commit_interval().as_millis(),
        cores_online(),
        if plan.smoke {
            " (SMOKE: small sizes, figures meaningless)"
        } else {
            ""
        }
    );

    // 1. Throughput from a backlog.
    let backlog = Stream::new(plan.backlog_users, plan.backlog_seconds, 2024, false);
    let events = backlog.records.len() as i64;
    println!(
        "backlog: {} events ({} users × {} s of 1 Hz heart rate + step counts), {:.1} MB of JSON \
         ({:.0} B/event)",
        thousands(events),
        plan.backlog_users,
        plan.backlog_seconds,
        backlog.bytes.len() as f64 / 1e6,
        backlog.bytes.len() as f64 / events as f64
    );
    let rounds = rounds(plan.smoke);
    let phase = std::env::var("VIGIL_BENCH_ONLY").unwrap_or_default();
    let mut bare_runs: Vec<Watched> = Vec::new();
    let mut vigil_runs: Vec<Watched> = Vec::new();
    let compared = compared_build();
    let mut compared_runs: Vec<Watched> = Vec::new();
    if phase != "latency" {
        // Rounds alternate which processor goes first: the broker's speed drifts within a
        // run (its JIT warming up, its page cache), and the ceiling with it.
        for round in 0..rounds {
            let a = broker.prefix(&format!("backlog{round}"), plan.partitions);
            let took = produce_all(
                &broker.brokers,
                &a.topic("biometric-updates"),
                &backlog,
                &backlog.records,
            );
            println!(
                "round {} of {rounds}: produced in {:.2} s ({} events/s into the broker)",
                round + 1,
                took.as_secs_f64(),
                thousands((events as f64 / took.as_secs_f64()) as i64)
            );
            // The bare loop (`None`), this build and the build compared, if any; the order
            // reverses every round, so each goes first and last in turn.
            let mut order = vec![None, Some(this_build())];
            order.extend(compared.clone().map(Some));
            if round % 2 == 1 {
                order.reverse();
            }
            for run in order {
                let Some(build) = run else {
                    bare_runs.push(bare_backlog(&plan, &mut broker, &a, events, pids));
                    continue;
                };
                let watched = vigil_backlog(&plan, &mut broker, &a, events, pids, round, &build);
                if build.compared {
                    compared_runs.push(watched);
                } else {
                    vigil_runs.push(watched);
                }
            }
            broker.retire(&a);
        }
    }
    drop(backlog);

    // 2. Latency at a fixed rate.
    let latencies = (phase != "throughput").then(|| latency_phases(&plan, &mut broker, pids));

    // 3. Results.
    println!();
    println!(
        "== kafka_e2e results ({} partitions, commit interval {} ms, Vigil's transactions {}{})",
        plan.partitions,
        commit_interval().as_millis(),
        if pipelined() {
            "pipelined"
        } else {
            "on one producer"
        },
        if plan.smoke { ", SMOKE" } else { "" }
    );
    println!(
        "throughput, backlog of {} heart-rate events, input topic → committed:",
        thousands(events)
    );
    for (i, (bare, vigil)) in bare_runs.iter().zip(&vigil_runs).enumerate() {
        let ratio = match (bare.rate(), vigil.rate()) {
            (Some(b), Some(v)) => format!("{:.1} %", v / b * 100.0),
            _ => "not measurable".to_string(),
        };
        println!(
            "  round {}: bare loop {}, vigil {} events/s: {ratio}",
            i + 1,
            bare.rate()
                .map_or("-".into(), |r| thousands(r.round() as i64)),
            vigil
                .rate()
                .map_or("-".into(), |r| thousands(r.round() as i64)),
        );
    }
    match (median(&bare_runs), median(&vigil_runs)) {
        (Some(bare), Some(vigil)) => {
            println!(
                "  RESULT bare loop (median of {}): {}",
                bare_runs.len(),
                bare.describe()
            );
            println!(
                "  RESULT vigil (median of {}):     {}",
                vigil_runs.len(),
                vigil.describe()
            );
            if let (Some(b), Some(v)) = (bare.rate(), vigil.rate()) {
                println!(
                    "  RESULT ratio of the medians, vigil / bare loop: {:.1} % (target ≥ 80 %)",
                    v / b * 100.0
                );
            }
        }
        _ => println!(
            "  RESULT throughput not measured (VIGIL_BENCH_ONLY=latency, or too few events)"
        ),
    }
    if let Some(other) = &compared {
        let mut paired = Vec::new();
        for (i, (this, that)) in vigil_runs.iter().zip(&compared_runs).enumerate() {
            if let (Some(a), Some(b)) = (this.rate(), that.rate()) {
                paired.push(a / b);
                println!(
                    "  round {}: this build {}, the build compared {} events/s: {:.1} %",
                    i + 1,
                    thousands(a.round() as i64),
                    thousands(b.round() as i64),
                    a / b * 100.0
                );
            }
        }
        if let (Some(that), Some(ratio)) = (median(&compared_runs), median_of(paired)) {
            println!(
                "  RESULT the build compared ({}, median of {}): {}",
                other.binary.display(),
                compared_runs.len(),
                that.describe()
            );
            println!(
                "  RESULT this build / the build compared, median of the rounds' ratios: {:.1} %",
                ratio * 100.0
            );
        }
    }
    if let Some((vigil_latency, bare_latency)) = &latencies {
        for (what, l, unit) in [
            ("vigil event → alert/milestone", vigil_latency, "outputs"),
            (
                "bare loop event → forwarded record",
                bare_latency,
                "records",
            ),
        ] {
            println!(
                "latency, {what}, at {} events/s ({} events sent in {:.2} s; first {:.0} s not \
                 counted):",
                thousands(plan.rate as i64),
                thousands(l.sent as i64),
                l.send_seconds,
                plan.warmup.as_secs_f64()
            );
            println!("  RESULT {}", l.describe(unit));
            println!(
                "  ({} {unit} in all, {} from warm-up events, {} caused by the probe or not \
                 matched; at most {} events sent but not yet committed at a poll)",
                thousands(l.outputs as i64),
                l.warmup_outputs,
                l.unmatched,
                thousands(l.max_behind)
            );
        }
    }
    println!("  (target: vigil p99 ≤ 50 ms at 20 000 events/s)");
    println!(
        "kafka_e2e: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
