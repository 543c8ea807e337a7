//! `vigil run --kafka` against the real broker that `scripts/services up` starts: the same
//! outputs as the engine run per task in file order, exactly once through crashes, with two
//! instances in one group, and with poison input dead-lettered.
//!
//! Without `VIGIL_KAFKA_BROKERS` the tests are skipped with a message, except with `CI=true`,
//! where that is a failure. Each test has a topic prefix and consumer group of its own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use vigil::event::{Event, EventType};
use vigil::simulate::{simulate, SimConfig};

#[path = "common/database.rs"]
mod database;
#[path = "common/kafka.rs"]
mod kafka_env;
#[path = "common/kafka_sandbox.rs"]
mod kafka_sandbox;
use kafka_sandbox::Sandbox;
#[path = "common/redis.rs"]
mod redis_env;

const PARTITIONS: i32 = 3;

/// The input topic an event type travels on: what people report, and what devices measure.
fn topic_index(ty: EventType) -> usize {
    match ty {
        EventType::Symptom
        | EventType::Illness
        | EventType::PhysicalActivity
        | EventType::SleepEpisode
        | EventType::DeviceSync => 0,
        _ => 1,
    }
}

/// The partition of a user, as the producers of these tests key it.
fn partition_of(user: &str) -> i32 {
    let h = user
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    (h % PARTITIONS as u32) as i32
}

fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules")
}

/// The tests run one at a time: each starts several processes, and on two cores three tests
/// at once starve one another's timing (the broker's session timeouts among them).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

thread_local! {
    /// The message of the panic this thread is unwinding from, for [`Fixture`]'s drop to
    /// repeat after the instances' logs: CI shows the start and the end of a failing test's
    /// output, and the logs in between would push the assertion out of both.
    static PANIC_MESSAGE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Installs (once) a panic hook that keeps each panic's message in [`PANIC_MESSAGE`].
fn keep_panic_messages() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANIC_MESSAGE.with(|m| *m.borrow_mut() = Some(info.to_string()));
            previous(info);
        }));
    });
}

/// A [`Sandbox`] with Vigil's topics, of [`PARTITIONS`] partitions each, for `vigil run
/// --kafka` instances; held by one test at a time ([`SERIAL`]).
struct Fixture {
    // Declared first, so that the topics are deleted before the next test may start.
    kafka: Sandbox,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Fixture {
    fn new(brokers: String) -> Fixture {
        keep_panic_messages();
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let kafka = Sandbox::with_topics(brokers, "vigil-stream", PARTITIONS);
        kafka.set(&["kafka", "streaming", "transaction-timeout"], "20s");
        // Redis keys of their own too (silences, status), when a test gives VIGIL_REDIS_URL.
        kafka.set(&["redis", "key-prefix"], kafka.prefix.as_str());
        Fixture {
            kafka,
            _serial: serial,
        }
    }

    /// `vigil run --kafka` as instance `instance`, its log in the fixture's folder.
    fn start(&self, instance: &str, exit_when_idle: &str, extra: &[&str]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.kafka.dir.path().join(format!("{instance}.log")))
            .expect("log file");
        let rules = rules_dir();
        let mut args = vec![
            "run",
            "--kafka",
            "--rules",
            rules.to_str().unwrap(),
            "--instance-id",
            instance,
            "--exit-when-idle",
            exit_when_idle,
        ];
        args.extend_from_slice(extra);
        let mut c = self.kafka.vigil(&args);
        c.stdout(Stdio::null()).stderr(log);
        c.spawn().expect("start vigil")
    }

    fn log(&self, instance: &str) -> String {
        std::fs::read_to_string(self.kafka.dir.path().join(format!("{instance}.log")))
            .unwrap_or_default()
    }

    fn wait(&self, mut child: Child, instance: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(
                    status.success(),
                    "{instance} failed: {status}\n{}",
                    self.log(instance)
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "{instance} did not finish in {limit:?}\n{}",
                    self.log(instance)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn producer(&self) -> BaseProducer {
        self.producer_config().create().expect("producer")
    }

    fn producer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.kafka.brokers)
            .set("linger.ms", "5")
            .set("message.max.bytes", "2000000");
        config
    }

    /// Produces events, keyed by user and partitioned by [`partition_of`], stamped with
    /// their event time, each on its type's topic.
    fn produce(&self, events: &[Event]) {
        self.produce_with(&self.producer(), events);
    }

    /// [`Fixture::produce`] in record batches of at most 16 KiB, which the brokers then serve
    /// in as many fetches.
    fn produce_in_small_batches(&self, events: &[Event]) {
        let mut config = self.producer_config();
        config.set("batch.size", "16384");
        self.produce_with(&config.create().expect("producer"), events);
    }

    fn produce_with(&self, producer: &BaseProducer, events: &[Event]) {
        self.produce_sent_at(producer, events.iter().map(|e| (e, e.time.millis())));
    }

    /// Produces each event stamped with the time it was sent (ms), in the order given.
    fn produce_sent_at<'e>(
        &self,
        producer: &BaseProducer,
        events: impl IntoIterator<Item = (&'e Event, i64)>,
    ) {
        let topics = [
            self.kafka.topic("health-events"),
            self.kafka.topic("biometric-updates"),
        ];
        for (event, sent_ms) in events {
            let body = serde_json::to_vec(&event.to_json()).unwrap();
            let topic = &topics[topic_index(event.event_type())];
            send(
                producer,
                BaseRecord::to(topic)
                    .partition(partition_of(&event.user_id))
                    .key(event.user_id.as_bytes())
                    .payload(&body[..])
                    .timestamp(sent_ms),
            );
        }
        flush(producer);
    }

    /// The input offsets the group has committed, summed over every input partition.
    fn committed_offsets(&self) -> i64 {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.kafka.brokers)
            .set("group.id", &self.kafka.group)
            .set("isolation.level", "read_committed")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for topic in ["health-events", "biometric-updates"] {
            for p in 0..PARTITIONS {
                tpl.add_partition(&self.kafka.topic(topic), p);
            }
        }
        consumer
            .committed_offsets(tpl, Duration::from_secs(15))
            .map(|c| {
                c.elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Alerts and milestones, sorted by id, as JSON.
    fn outputs(&self) -> Vec<Value> {
        self.cloud_events(&["alerts", "milestones"])
    }

    /// The CloudEvents of `topics`, sorted by id.
    fn cloud_events(&self, topics: &[&str]) -> Vec<Value> {
        by_id(
            topics
                .iter()
                .flat_map(|t| self.cloud_events_in_log_order(t))
                .collect(),
        )
    }

    /// The CloudEvents of `topic`, each partition's in offset order.
    fn cloud_events_in_log_order(&self, topic: &str) -> Vec<Value> {
        self.kafka
            .read(topic)
            .into_iter()
            .map(|r| serde_json::from_slice(&r.payload.unwrap()).unwrap())
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // A failed assertion shows what each instance logged: the failures these tests look
        // for (a lost or doubled output) are timing-dependent, and the logs are all there is.
        if std::thread::panicking() {
            if let Ok(entries) = std::fs::read_dir(self.kafka.dir.path()) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.extension().is_some_and(|e| e == "log") {
                        let text = std::fs::read_to_string(&path).unwrap_or_default();
                        eprintln!("--- {}\n{text}", path.display());
                    }
                }
            }
            if let Some(message) = PANIC_MESSAGE.with(|m| m.borrow_mut().take()) {
                let short: String = message.chars().take(4000).collect();
                eprintln!("--- the failure, again after the logs:\n{short}");
            }
        }
    }
}

/// Waits until every record sent is acknowledged. rdkafka's `flush` charges each delivery
/// report it serves 100 ms of its timeout, so many small batches exhaust it in seconds.
fn flush(producer: &BaseProducer) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while producer.in_flight_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} records still unacknowledged",
            producer.in_flight_count()
        );
        producer.poll(Duration::from_millis(100));
    }
}

fn send(producer: &BaseProducer, mut record: BaseRecord<'_, [u8], [u8]>) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(_), r)) => {
                record = r;
                producer.poll(Duration::from_millis(50));
            }
            Err((e, _)) => panic!("produce: {e}"),
        }
    }
}

/// The events count of the last summary line in a log.
fn summary_events(log: &str) -> u64 {
    log.lines()
        .rev()
        .find_map(|l| l.strip_prefix("events in: "))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no summary line:\n{log}"))
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
}

fn events(users: usize, hr_days: u32) -> Vec<Event> {
    simulate(&SimConfig {
        users,
        days: 45,
        seed: 11,
        start: NaiveDate::from_ymd_opt(2024, 5, 1).unwrap(),
        heart_rate: true,
        hr_hours_per_day: 0.5,
        hr_users: None,
        hr_days: Some(hr_days),
        hr_episode_probability: 0.5,
    })
    .collect()
}

/// What the file mode gives for the same input, sorted by id (see [`expected_in_order`]).
fn expected(events: &[Event]) -> Vec<Value> {
    by_id(expected_in_order(events))
}

/// `outputs` sorted by id.
fn by_id(mut outputs: Vec<Value>) -> Vec<Value> {
    outputs.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    outputs
}

/// What the file mode gives for the same input, in the order it emits it: `vigil run --input`
/// once per partition (task), its events in the order the task merges them — by event time,
/// then topic, then offset.
fn expected_in_order(events: &[Event]) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all = Vec::new();
    for p in 0..PARTITIONS {
        let mut mine: Vec<(usize, &Event)> = events
            .iter()
            .filter(|e| partition_of(&e.user_id) == p)
            .enumerate()
            .collect();
        mine.sort_by_key(|(i, e)| (e.time.millis(), topic_index(e.event_type()), *i));
        let input = dir.path().join(format!("p{p}.jsonl"));
        let mut text = String::new();
        for (_, event) in mine {
            text.push_str(&serde_json::to_string(&event.to_json()).unwrap());
            text.push('\n');
        }
        std::fs::write(&input, text).expect("write input");
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["run", "--rules", rules_dir().to_str().unwrap(), "--input"])
            .arg(&input)
            .arg("--dead-letter")
            .arg(dir.path().join("dead.jsonl"))
            .arg("--late")
            .arg(dir.path().join("late.jsonl"))
            .output()
            .expect("vigil run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        all.extend(
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    all
}

/// Each user's outputs reach a `read_committed` consumer of each output topic in the order
/// the engine emitted them (`want` in the file mode's order): a firing before its resolution,
/// across transactions and their commits.
fn assert_each_users_order(f: &Fixture, want: &[Value]) {
    let id = |o: &Value| o["id"].as_str().unwrap().to_string();
    for topic in ["alerts", "milestones"] {
        let got = f.cloud_events_in_log_order(topic);
        let here: std::collections::HashSet<String> = got.iter().map(id).collect();
        let by_user = |outputs: &[Value]| -> BTreeMap<String, Vec<String>> {
            let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for o in outputs.iter().filter(|o| here.contains(&id(o))) {
                let user = o["subject"].as_str().unwrap().to_string();
                users.entry(user).or_default().push(id(o));
            }
            users
        };
        assert_eq!(
            by_user(&got),
            by_user(want),
            "{topic}: a user's outputs in another order than the engine's"
        );
    }
}

fn assert_same(got: &[Value], want: &[Value]) {
    let ids = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut unique = ids(got);
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "an output was committed twice");
    let (g, w) = (ids(got), ids(want));
    let missing: Vec<&Value> = want
        .iter()
        .filter(|o| !g.contains(&o["id"].as_str().unwrap().to_string()))
        .collect();
    let extra: Vec<&Value> = got
        .iter()
        .filter(|o| !w.contains(&o["id"].as_str().unwrap().to_string()))
        .collect();
    let short = |o: &&Value| {
        format!(
            "{} {} {} {}",
            o["data"]["rule_id"], o["subject"], o["time"], o["data"]["state"]
        )
    };
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} outputs missing: {:?}\n{} unexpected: {:?}",
        missing.len(),
        missing.iter().map(short).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().map(short).collect::<Vec<_>>()
    );
    for (a, b) in got.iter().zip(want) {
        assert_eq!(a, b, "same id, different contents");
    }
}

#[test]
fn kafka_gives_the_engines_outputs_exactly_once_through_crashes() {
    let Some(brokers) = kafka_env::brokers() else {
        return;
    };
    let f = Fixture::new(brokers);
    // Large enough that the processing outlasts a graceful stop and four kills.
    let events = events(12, 24);
    let in_order = expected_in_order(&events);
    let want = by_id(in_order.clone());
    assert!(
        want.len() > 20,
        "the input should raise outputs: {}",
        want.len()
    );
    f.produce(&events);

    // Runs are stopped a moment after they start processing (a task restored), so the stops
    // fall in the middle of the work, not after it.
    let restores = || f.log("crashy").matches("state restored").count();
    let started = |before: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while restores() <= before {
            if Instant::now() > deadline {
                return false; // nothing left to process
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    };

    // Stopped gracefully first: SIGTERM commits the open transaction and exits 0.
    let child = f.start("crashy", "60s", &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while f.committed_offsets() == 0 {
        assert!(
            Instant::now() < deadline,
            "nothing committed:\n{}",
            f.log("crashy")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    terminate(&child);
    f.wait(child, "crashy", Duration::from_secs(60));
    let log = f.log("crashy");
    assert!(log.contains("stopped"), "{log}");
    assert!(
        summary_events(&log) > 0,
        "the stopped run committed nothing:\n{log}"
    );

    // Then killed with SIGKILL at random moments of the processing and restarted, until a
    // run finds nothing left to do or four kills are done; the last run goes to the end.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut kills = 0;
    loop {
        let before = restores();
        let mut child = f.start("crashy", "3s", &[]);
        if !started(before) || kills == 4 {
            f.wait(child, "crashy", Duration::from_secs(240));
            break;
        }
        // Short: a backlog of this size takes well under a second since the engine got faster.
        let after = Duration::from_millis(rng.gen_range(20..150));
        std::thread::sleep(after);
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        kills += 1;
        eprintln!("kill {kills}: {after:?} into processing");
    }
    let log = f.log("crashy");
    assert!(
        kills >= 2,
        "only {kills} kills landed during the processing:\n{log}"
    );
    // Restarts restored state that earlier runs committed.
    assert!(
        log.lines()
            .filter(|l| l.contains("state restored"))
            .skip(3)
            .any(|l| !l.contains(" keys=0")),
        "no restart found committed state:\n{log}"
    );

    let got = f.outputs();
    assert_same(&got, &want);
    assert_each_users_order(&f, &in_order);
    // Nothing was dead-lettered or late in this input.
    assert!(f.kafka.read("dead-letter").is_empty());
}

#[test]
fn two_instances_share_the_work_and_survive_losing_one() {
    let Some(brokers) = kafka_env::brokers() else {
        return;
    };
    let f = Fixture::new(brokers);
    let events = events(9, 4);
    let in_order = expected_in_order(&events);
    let want = by_id(in_order.clone());
    f.produce(&events);

    let a = f.start("a", "12s", &[]);
    let mut b = f.start("b", "12s", &[]);
    std::thread::sleep(Duration::from_millis(2_500));
    b.kill().expect("SIGKILL b");
    let _ = b.wait();
    f.wait(a, "a", Duration::from_secs(240));
    let log = f.log("a");
    assert!(
        log.matches("assigned anew").count() >= 2,
        "a never saw b come or go:\n{log}"
    );

    assert_same(&f.outputs(), &want);
    assert_each_users_order(&f, &in_order);
}

#[test]
fn poison_input_is_dead_lettered_and_processing_goes_on() {
    let Some(brokers) = kafka_env::brokers() else {
        return;
    };
    let f = Fixture::new(brokers);
    let events = events(3, 1);
    let want = expected(&events);
    let producer = f.producer();
    let topic = f.kafka.topic("biometric-updates");
    let huge = format!(
        "{{\"type\":\"heart_rate\",\"pad\":\"{}\"}}",
        "x".repeat(200_000)
    );
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("not json", b"{\"type\": \"heart_rate\", ".to_vec()),
        (
            "schema",
            br#"{"id":"p1","type":"heart_rate","user_id":"sim-0001","time":"2024-05-02T08:00:00Z","source":"t","data":{"heart_rate":"fast"}}"#.to_vec(),
        ),
        ("binary", vec![0xff, 0x00, 0xfe, 0x9c, 0x80, 0x01]),
        ("huge", huge.into_bytes()),
        (
            "in the future",
            br#"{"id":"p2","type":"heart_rate","user_id":"wrong-clock","time":"9999-05-02T08:00:00Z","source":"t","data":{"heart_rate":60}}"#.to_vec(),
        ),
    ];
    for (i, (_, body)) in poison.iter().enumerate() {
        send(
            &producer,
            BaseRecord::to(&topic)
                .partition(i as i32 % PARTITIONS)
                .key(&b"poison"[..])
                .payload(&body[..])
                .timestamp(0),
        );
    }
    flush(&producer);
    f.produce(&events);
    let child = f.start("p", "3s", &["--max-line-bytes", "65536"]);
    f.wait(child, "p", Duration::from_secs(180));

    let dead = f.kafka.read("dead-letter");
    assert_eq!(dead.len(), poison.len(), "{dead:?}");
    let mut by_body: BTreeMap<Vec<u8>, Vec<(String, String)>> = BTreeMap::new();
    for r in dead {
        assert_eq!(r.key, b"poison");
        by_body.insert(r.payload.expect("the original bytes"), r.headers);
    }
    for (i, (what, body)) in poison.iter().enumerate() {
        let headers = by_body
            .get(body)
            .unwrap_or_else(|| panic!("{what} is not in the dead-letter topic byte for byte"));
        let get = |k: &str| {
            headers
                .iter()
                .find(|(hk, _)| hk == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{what}: no header {k}"))
        };
        assert!(!get("vigil.reason").is_empty());
        assert_eq!(get("vigil.source.topic"), topic);
        assert_eq!(
            get("vigil.source.partition"),
            (i as i32 % PARTITIONS).to_string()
        );
        assert_eq!(
            get("vigil.source.offset"),
            (i as i32 / PARTITIONS).to_string()
        );
        eprintln!("{what}: {}", get("vigil.reason"));
    }
    assert!(get_reason(&by_body, &poison[3].1).contains("65536"));
    assert!(get_reason(&by_body, &poison[4].1).contains("is in the future"));
    // The good events after the poison were all processed, none of them late.
    assert!(f.kafka.read("late-events").is_empty(), "{}", f.log("p"));
    assert_same(&f.outputs(), &want);
}

/// A phone whose clock is ten days ahead, in a partition it shares with other users, its
/// records stamped by a live producer when sent (at the true time): its events sort in the
/// merge by when they were sent, so they do not hold the other users' records behind them
/// until the other input reaches their date (which made those records late). The other users'
/// outputs are those of a run without that phone, and none of their events is late.
#[test]
fn a_device_clock_ahead_does_not_hold_other_users_records() {
    let Some(brokers) = kafka_env::brokers() else {
        return;
    };
    let f = Fixture::new(brokers);
    let others = events(9, 1);
    let want = expected(&others);
    let mut users: Vec<&str> = others.iter().map(|e| e.user_id.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    let busiest = (0..PARTITIONS)
        .max_by_key(|&p| users.iter().filter(|u| partition_of(u) == p).count())
        .expect("partitions");
    assert!(
        users.iter().filter(|u| partition_of(u) == busiest).count() >= 2,
        "the phone must share its task with two users or more, for the stream clock to out-vote it"
    );
    let wrong = (0..)
        .map(|i| format!("wrong-clock-{i}"))
        .find(|u| partition_of(u) == busiest)
        .expect("a name in that partition");
    let twin = users
        .iter()
        .find(|u| partition_of(u) == busiest)
        .expect("a user there");
    // The twin's reports (health-events), as the phone's, dated ten days late, from the
    // fourth day on: by then the task has seen its other users, and with three users or more
    // the stream clock follows the second latest, which one wrong clock cannot move (with
    // fewer there is no majority to out-vote it: docs/rules.md).
    let ahead = 10 * 86_400_000;
    let from = others
        .iter()
        .map(|e| e.time.millis())
        .min()
        .expect("events")
        + 3 * 86_400_000;
    let phone: Vec<(Event, i64)> = others
        .iter()
        .filter(|e| e.user_id == *twin && topic_index(e.event_type()) == 0)
        .filter(|e| e.time.millis() >= from)
        .map(|e| {
            let mut w = e.clone();
            w.user_id = wrong.clone();
            w.id = format!("{wrong}-{}", e.id);
            w.time = e.time.plus_millis(ahead);
            (w, e.time.millis())
        })
        .collect();
    assert!(phone.len() >= 30, "{} reports", phone.len());
    // Everything in the order it was sent.
    let mut sent: Vec<(&Event, i64)> = others
        .iter()
        .map(|e| (e, e.time.millis()))
        .chain(phone.iter().map(|(e, at)| (e, *at)))
        .collect();
    sent.sort_by_key(|(_, at)| *at);
    f.produce_sent_at(&f.producer(), sent);
    let child = f.start("w", "3s", &[]);
    f.wait(child, "w", Duration::from_secs(180));

    let late: Vec<String> = f
        .kafka
        .read("late-events")
        .into_iter()
        .map(|r| String::from_utf8_lossy(&r.key).into_owned())
        .filter(|user| *user != wrong)
        .collect();
    assert!(late.is_empty(), "late events of other users: {late:?}");
    let got: Vec<Value> = f
        .outputs()
        .into_iter()
        .filter(|o| o["subject"] != wrong.as_str())
        .collect();
    assert_same(&got, &want);
}

fn get_reason(by_body: &BTreeMap<Vec<u8>, Vec<(String, String)>>, body: &[u8]) -> String {
    by_body[body]
        .iter()
        .find(|(k, _)| k == "vigil.reason")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[test]
fn an_unreachable_broker_is_retried_with_backoff_and_sigterm_still_stops() {
    let Some(brokers) = kafka_env::brokers() else {
        return;
    };
    let f = Fixture::new(brokers);
    let config = f.kafka.dir.path().join("unreachable.toml");
    std::fs::write(&config, "[kafka]\nrequest-timeout = \"1s\"\n").expect("config");
    let rules = rules_dir();
    let log = std::fs::File::create(f.kafka.dir.path().join("down.log")).expect("log");
    // Port 1 on loopback: nothing listens there.
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "run",
            "--kafka",
            "--rules",
            rules.to_str().unwrap(),
            "--config",
        ])
        .arg(&config)
        .env("VIGIL_KAFKA_BROKERS", "127.0.0.1:1")
        .env("VIGIL_KAFKA_TOPIC_PREFIX", &f.kafka.prefix)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start vigil");
    let deadline = Instant::now() + Duration::from_secs(30);
    while f.log("down").matches("starting again in").count() < 2 {
        assert!(Instant::now() < deadline, "no retries:\n{}", f.log("down"));
        std::thread::sleep(Duration::from_millis(200));
    }
    terminate(&child);
    f.wait(child, "down", Duration::from_secs(30));
    let log = f.log("down");
    assert!(
        log.contains("127.0.0.1:1") || log.contains("broker"),
        "{log}"
    );
}

#[test]
fn a_broker_that_stops_answering_mid_run_loses_and_doubles_nothing() {
    let Some(brokers) = kafka_env::brokers() else {
        return;
    };
    // The broker that scripts/services started (its pid file); pausing it with SIGSTOP is what
    // a hung broker or a network partition looks like to the clients.
    let pid_file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/services/kafka.pid");
    let Ok(pid) = std::fs::read_to_string(&pid_file) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {} is missing: the broker must be the one scripts/services starts",
            pid_file.display()
        );
        eprintln!("skipped: the broker was not started by scripts/services");
        return;
    };
    let pid = pid.trim().to_string();
    let f = Fixture::new(brokers);
    // Small fetches, so that the broker stops while most of the input is still on it, one
    // input topic fetched further than the other: the task must wait for the records already
    // on the broker, however long it is away, or the other topic's events make them late.
    f.kafka.set(
        &["kafka", "librdkafka", "max.partition.fetch.bytes"],
        "16384",
    );
    let events = events(12, 8);
    let want = expected(&events);
    f.produce_in_small_batches(&events);
    let child = f.start("paused", "8s", &[]);
    // Paused as soon as the processing has started, so that the outage falls mid-run.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f.log("paused").contains("state restored") {
        assert!(
            Instant::now() < deadline,
            "never started:\n{}",
            f.log("paused")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    // The outage must fall mid-run: most of the input not yet committed.
    let committed = f.committed_offsets();
    assert!(
        committed < i64::try_from(events.len()).unwrap() / 2,
        "{committed} of {} records were committed before the outage",
        events.len()
    );
    /// Resumes the broker whatever happens, so a failing test does not leave it paused.
    struct Paused(String);
    impl Drop for Paused {
        fn drop(&mut self) {
            let _ = Command::new("kill").args(["-CONT", &self.0]).status();
        }
    }
    let ok = Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill -STOP {pid}");
    let paused = Paused(pid);
    std::thread::sleep(Duration::from_secs(20));
    drop(paused);
    f.wait(child, "paused", Duration::from_secs(240));
    let log = f.log("paused");
    // Noticed: requests timed out, and the session started again or the group rebalanced
    // (which of them depends on what was under way when the broker stopped).
    assert!(
        log.contains("REQTMOUT")
            && (log.contains("starting again")
                || log.matches("partitions assigned anew").count() > 1),
        "the outage went unnoticed:\n{log}"
    );
    assert!(
        f.kafka.read("late-events").is_empty(),
        "the outage made events late"
    );
    assert_same(&f.outputs(), &want);
}

/// A fresh schema in `base`'s database, as the search path of the URL returned.
fn fresh_schema(base: &str) -> String {
    let schema = kafka_sandbox::unique("kafka_history").replace('-', "_");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(database::create_schema(base, &schema))
}

/// Every stored CloudEvent, parsed, sorted by id.
fn stored_history(url: &str) -> Vec<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = vigil::history::HistoryStore::connect(url, Duration::from_secs(10))
            .await
            .expect("the history database answers");
        let rows = store
            .list(&vigil::history::ListFilter::default())
            .await
            .expect("list");
        store.close().await;
        let mut events: Vec<Value> = rows
            .iter()
            .map(|r| serde_json::from_str(&r.event).expect("a stored CloudEvent"))
            .collect();
        events.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        events
    })
}

#[test]
fn the_history_holds_exactly_the_committed_outputs_through_a_postgres_outage() {
    let Some(brokers) = kafka_env::brokers() else {
        return;
    };
    let Some(base) = database::database_url() else {
        return;
    };
    let Some(port) = database::outage_port(&base) else {
        return;
    };
    let f = Fixture::new(brokers);
    let url = fresh_schema(&base);
    let events = events(6, 2);
    let want = expected(&events);
    assert!(
        want.len() > 20,
        "the input should raise outputs: {}",
        want.len()
    );
    f.produce(&events);

    // PostgreSQL is away when the run starts. The engine goes on: every output reaches the
    // topics while the history cannot be written. Then PostgreSQL returns, and the history
    // catches up before the run ends.
    let restart = database::Restart(port);
    database::services(&["down", "postgres"]);
    let child = f.start("h", "3s", &["--history", &url]);
    let give_up = Instant::now() + Duration::from_secs(120);
    while !(f.log("h").contains("history: the database is unreachable")
        && f.outputs().len() == want.len())
    {
        assert!(
            Instant::now() < give_up,
            "the outputs should reach the topics, and the history notice the outage, while \
             PostgreSQL is down:\n{}",
            f.log("h")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    restart.now();
    f.wait(child, "h", Duration::from_secs(240));

    let log = f.log("h");
    let outputs = f.outputs();
    assert_same(&outputs, &want);
    assert!(
        log.contains("history: the database is unreachable")
            && log.contains("history: the database is back"),
        "the run should have seen the outage and the recovery:\n{log}"
    );
    assert!(
        log.contains(" new in ") && !log.contains("not stored"),
        "the run should end with the history complete:\n{log}"
    );
    let stored = stored_history(&url);
    assert_eq!(
        stored.len(),
        outputs.len(),
        "one row per output in the topics\n{log}"
    );
    assert_eq!(stored, outputs, "the history holds the topics' CloudEvents");
}

/// Waits until `done` holds, failing with `what` and the log of `instance` after `limit`.
fn wait_for(f: &Fixture, instance: &str, what: &str, limit: Duration, done: impl Fn() -> bool) {
    let give_up = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < give_up,
            "{what} within {limit:?}:\n{}",
            f.log(instance)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn is_firing(output: &Value) -> bool {
    output["type"] == "io.vigil.alert.firing"
}

#[test]
fn silences_are_honoured_by_two_instances() {
    let Some(brokers) = kafka_env::brokers() else {
        return;
    };
    let Some(redis) = redis_env::redis_url() else {
        return;
    };
    let f = Fixture::new(brokers);
    // The input arrives while both instances run (they must be in the group first, see
    // below), and a task that finds one input topic at its end goes on with the other: which
    // events are late would then depend on which topic the broker delivers first (the Redis
    // outage test has the same race). With one input topic, a partition's order is the
    // producer's, and the outputs can be compared with the file mode's exactly.
    let events: Vec<Event> = events(9, 4)
        .into_iter()
        .filter(|e| topic_index(e.event_type()) == 1)
        .collect();
    let want = expected(&events);
    let silenced_users: std::collections::BTreeSet<String> = want
        .iter()
        .filter(|o| is_firing(o))
        .map(|o| o["subject"].as_str().unwrap().to_string())
        .collect();
    assert!(silenced_users.len() >= 3, "{silenced_users:?}");

    // Both instances are in the group (and the group settled) before anything is silenced
    // or produced, so each gets partitions of its own.
    let a = f.start("a", "25s", &["--no-history"]);
    let b = f.start("b", "25s", &["--no-history"]);
    let give_up = Instant::now() + Duration::from_secs(90);
    while !(f.log("a").contains("assigned anew") && f.log("b").contains("assigned anew")) {
        assert!(
            Instant::now() < give_up,
            "each instance should join the group:\n--- a\n{}\n--- b\n{}",
            f.log("a"),
            f.log("b")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(5));
    for user in &silenced_users {
        let out = f
            .kafka
            .vigil(&[
                "silence", "add", "--user", user, "--for", "1h", "--reason", "test",
            ])
            .env("VIGIL_REDIS_URL", &redis)
            .output()
            .expect("vigil silence add");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let listed = f
        .kafka
        .vigil(&["silence", "list", "--json"])
        .env("VIGIL_REDIS_URL", &redis)
        .output()
        .expect("vigil silence list");
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).lines().count(),
        silenced_users.len()
    );
    // Every instance reads the silences again each second.
    std::thread::sleep(Duration::from_millis(2_500));
    f.produce(&events);
    f.wait(a, "a", Duration::from_secs(240));
    f.wait(b, "b", Duration::from_secs(240));
    for instance in ["a", "b"] {
        let log = f.log(instance);
        assert!(
            log.contains(", late: 0,"),
            "with one input topic no event is late:\n{log}"
        );
    }

    let (kept_off, published): (Vec<Value>, Vec<Value>) = want.iter().cloned().partition(is_firing);
    assert_same(&f.outputs(), &published);
    let silenced = f.kafka.read("alerts-silenced");
    assert!(silenced.iter().all(|r| r
        .headers
        .iter()
        .any(|(k, v)| k == "vigil_silence_id" && !v.is_empty())));
    assert_same(&f.cloud_events(&["alerts-silenced"]), &kept_off);
    assert!(
        f.log("a").contains(", silenced: ") && f.log("b").contains(", silenced: "),
        "each instance should have silenced firings of its own partitions:\n--- a\n{}\n--- b\n{}",
        f.log("a"),
        f.log("b")
    );
}

#[test]
fn the_status_in_redis_matches_the_topics_through_a_redis_outage() {
    let Some(brokers) = kafka_env::brokers() else {
        return;
    };
    let Some(redis) = redis_env::redis_url() else {
        return;
    };
    let Some(port) = redis_env::outage_port(&redis) else {
        return;
    };
    let f = Fixture::new(brokers);
    let events = events(6, 2);
    // The first half of the input (by event time) is processed, and its status written, with
    // Redis up; Redis stops; the second half is processed while it is away: its outputs still
    // reach the topics. Redis returns, and the status catches up. (The second half arrives
    // live, so which of its events are late depends on which input topic the broker delivers
    // first: the status is compared with what the topics hold, not with a file-mode run.)
    let mut times: Vec<i64> = events.iter().map(|e| e.time.millis()).collect();
    times.sort_unstable();
    let cut = times[times.len() / 2];
    let (before, after): (Vec<Event>, Vec<Event>) =
        events.iter().cloned().partition(|e| e.time.millis() < cut);
    f.produce(&before);
    let child = f.start("r", "15s", &["--no-history"]);
    wait_for(
        &f,
        "r",
        "the first half should be processed and committed",
        Duration::from_secs(120),
        || f.committed_offsets() == before.len() as i64,
    );
    let first_user = format!("{}user:{{{}}}", f.kafka.prefix, before[0].user_id);
    wait_for(
        &f,
        "r",
        "the status of the first half should be in Redis",
        Duration::from_secs(30),
        || !redis_env::hgetall(&redis, &first_user).is_empty(),
    );
    let restart = redis_env::Restart(port);
    database::services(&["down", "redis"]);
    f.produce(&after);
    wait_for(
        &f,
        "r",
        "the outputs should reach the topics, and the run notice the outage, while Redis is down",
        Duration::from_secs(120),
        || {
            f.log("r").contains("Redis is unreachable")
                && f.committed_offsets() == events.len() as i64
        },
    );
    restart.now();
    f.wait(child, "r", Duration::from_secs(240));
    let log = f.log("r");
    assert!(log.contains("Redis is back"), "{log}");
    assert!(!log.contains("not written"), "{log}");
    let want = f.cloud_events(&["alerts", "milestones", "alerts-silenced"]);
    assert!(
        want.len() > 20,
        "the input should raise outputs: {}",
        want.len()
    );

    // Per user: the open firings, the counts, the last event time, as the topics say.
    let mut users: BTreeMap<String, (u64, u64, u64, BTreeMap<String, i64>)> = BTreeMap::new();
    for o in &want {
        let user = o["subject"].as_str().unwrap().to_string();
        let rule = o["data"]["rule_id"].as_str().unwrap().to_string();
        let entry = users.entry(user).or_default();
        match o["type"].as_str().unwrap() {
            "io.vigil.alert.firing" => {
                entry.0 += 1;
                *entry.3.entry(rule).or_default() += 1;
            }
            "io.vigil.alert.resolved" => {
                entry.1 += 1;
                *entry.3.entry(rule).or_default() -= 1;
            }
            _ => entry.2 += 1,
        }
    }
    let mut last_event: BTreeMap<&str, i64> = BTreeMap::new();
    for e in &events {
        let t = last_event.entry(e.user_id.as_str()).or_insert(i64::MIN);
        *t = (*t).max(e.time.millis());
    }
    for (user, last) in &last_event {
        let key = format!("{}user:{{{user}}}", f.kafka.prefix);
        let status = redis_env::hgetall(&redis, &key);
        assert_eq!(
            status.get("last_event_ms").map(String::as_str),
            Some(last.to_string().as_str()),
            "{user}: {status:?}"
        );
        assert!(redis_env::ttl(&redis, &key) > 0, "the status expires");
        let (fired, resolved, milestones, open) = users.remove(*user).unwrap_or_default();
        let count = |field: &str| status.get(field).map_or(0, |v| v.parse::<u64>().unwrap());
        assert_eq!(count("alerts_fired"), fired, "{user}");
        assert_eq!(count("alerts_resolved"), resolved, "{user}");
        assert_eq!(count("milestones"), milestones, "{user}");
        let firing: Vec<&str> = status
            .keys()
            .filter_map(|k| k.strip_prefix("firing:"))
            .collect();
        let want_open: Vec<&str> = open
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(r, _)| r.as_str())
            .collect();
        assert_eq!(firing, want_open, "{user}");
    }
    assert!(
        users.is_empty(),
        "outputs of users without events: {users:?}"
    );
}
