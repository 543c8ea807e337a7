//! A [`Sandbox`] for each Kafka test on the shared broker: topics under a prefix of its own,
//! a consumer group of its own, a folder for its `vigil.toml` and logs, the environment a
//! `vigil` child needs to work there, reading a topic back, and deleting it all at the end.
//!
//! Include it beside `kafka.rs` (as `mod kafka_env`), whose [`TOPICS`] it uses. It is a file of
//! its own because the library's unit tests include `kafka.rs` too, and they have no `vigil`
//! binary to run.

#![allow(dead_code)] // each test binary uses part of it

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::kafka_env::TOPICS;

/// `stem-PID-NANOS-N`: the process and the time keep test binaries and runs apart, the count
/// the calls within one binary. Letters, digits and `-` besides the stem: a Kafka topic prefix
/// or group (a PostgreSQL schema once `-` is replaced by `_`).
pub fn unique(stem: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{stem}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// What the tests that run `vigil run --kafka` configure alike: a 15 s request timeout, a
/// 50 ms commit interval, and a 6 s session (librdkafka's default is 45 s), so that the group
/// hands a killed instance's partitions to another within seconds.
pub const RUN_SETTINGS: &str = "[kafka]\nrequest-timeout = \"15s\"\n\n\
    [kafka.streaming]\ncommit-interval = \"50ms\"\n\n\
    [kafka.librdkafka]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n";

/// The `[kafka.topics.*]` tables of every Vigil topic, each with `partitions` partitions, kept
/// forever: the test inputs carry their 2024 event times as timestamps, which a time-based
/// retention deletes at the broker's next check (every 5 min), input not yet consumed
/// included (it failed a run in CI).
pub fn topic_tables(partitions: i32) -> String {
    TOPICS
        .iter()
        .map(|(table, _)| {
            format!(
                "\n[kafka.topics.{table}]\npartitions = {partitions}\nretention = \"forever\"\n"
            )
        })
        .collect()
}

/// Admin requests give up after 15 s: a broker that does not answer fails the test, not hangs it.
pub fn admin_options() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(Duration::from_secs(15)))
}

/// One record as a `read_committed` consumer received it.
#[derive(Debug)]
pub struct Record {
    pub key: Vec<u8>,
    /// `None` for a tombstone.
    pub payload: Option<Vec<u8>>,
    /// In the order they were sent; a header without a value reads as empty.
    pub headers: Vec<(String, String)>,
}

/// One test's part of the shared broker. Every name it hands out starts with its prefix, so
/// that tests running at once, and runs one after another, never see one another's records,
/// offsets or state; dropping it deletes every topic under the prefix, also when the test
/// fails.
pub struct Sandbox {
    pub brokers: String,
    /// `stem-PID-NANOS-N.`, for `VIGIL_KAFKA_TOPIC_PREFIX`.
    pub prefix: String,
    /// The prefix without its dot, for `VIGIL_KAFKA_GROUP`.
    pub group: String,
    /// The test's folder: its `vigil.toml`, logs and other files, removed on drop.
    pub dir: tempfile::TempDir,
    admin: AdminClient<DefaultClientContext>,
    /// rdkafka's admin calls are futures, and the tests are not async.
    rt: tokio::runtime::Runtime,
}

impl Sandbox {
    /// A prefix and group named after `stem`, with nothing on the broker yet.
    pub fn new(brokers: String, stem: &str) -> Sandbox {
        let group = unique(stem);
        let admin = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("admin client");
        // All drivers: some tests also run sqlx on it.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Sandbox {
            brokers,
            prefix: format!("{group}."),
            group,
            dir: tempfile::tempdir().expect("tempdir"),
            admin,
            rt,
        }
    }

    /// [`Sandbox::new`], then a `vigil.toml` of [`RUN_SETTINGS`] and [`topic_tables`], and
    /// Vigil's topics created from it: ready for `vigil run --kafka`.
    pub fn with_topics(brokers: String, stem: &str, partitions: i32) -> Sandbox {
        let sandbox = Sandbox::new(brokers, stem);
        sandbox.write_config(&format!("{RUN_SETTINGS}{}", topic_tables(partitions)));
        sandbox.apply_topics();
        sandbox
    }

    /// The full name of one of this test's topics.
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The test's `vigil.toml` (in its folder), which [`Sandbox::vigil`] passes.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("vigil.toml")
    }

    /// Writes `text` as the test's `vigil.toml`, and returns its path.
    pub fn write_config(&self, text: &str) -> PathBuf {
        let path = self.config();
        std::fs::write(&path, text).expect("write vigil.toml");
        path
    }

    /// Sets one key of the test's `vigil.toml`, creating the tables on its path: `path` is
    /// the tables' names, then the key's, each as it is (`["kafka", "librdkafka",
    /// "fetch.wait.max.ms"]`).
    pub fn set(&self, path: &[&str], value: impl Into<toml::Value>) {
        let text = std::fs::read_to_string(self.config()).unwrap_or_default();
        let mut doc: toml::Table = text.parse().expect("vigil.toml is TOML");
        let (key, tables) = path.split_last().expect("a key");
        let mut table = &mut doc;
        for name in tables {
            table = table
                .entry(name.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .unwrap_or_else(|| panic!("{name} in {path:?} is not a table"));
        }
        table.insert(key.to_string(), value.into());
        self.write_config(&doc.to_string());
    }

    /// What a `vigil` child needs to work in this sandbox and no other: the broker, the topic
    /// prefix and the consumer group, as environment variables.
    pub fn env(&self) -> [(&'static str, &str); 3] {
        [
            ("VIGIL_KAFKA_BROKERS", &self.brokers),
            ("VIGIL_KAFKA_TOPIC_PREFIX", &self.prefix),
            ("VIGIL_KAFKA_GROUP", &self.group),
        ]
    }

    /// `vigil ARGS --config vigil.toml`, with [`Sandbox::env`]; the rest of the environment is
    /// inherited.
    pub fn vigil(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
        c.args(args)
            .arg("--config")
            .arg(self.config())
            .envs(self.env());
        c
    }

    /// Creates (or brings in line) Vigil's topics as the test's `vigil.toml` configures them,
    /// the way operators do: `vigil topics apply`.
    pub fn apply_topics(&self) {
        let out = self
            .vigil(&["topics", "apply"])
            .output()
            .expect("vigil topics apply");
        assert!(
            out.status.success(),
            "topics apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The admin client, for what a test asks the broker beyond these helpers.
    pub fn admin(&self) -> &AdminClient<DefaultClientContext> {
        &self.admin
    }

    /// Runs an admin call (or any future) to its end.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    /// The partitions of one of this test's topics, as the broker's metadata says (0 while the
    /// topic does not exist).
    pub fn partitions(&self, name: &str) -> usize {
        let name = self.topic(name);
        let metadata = self
            .admin
            .inner()
            .fetch_metadata(Some(&name), Duration::from_secs(15))
            .expect("metadata");
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none())
            .map_or(0, |t| t.partitions().len())
    }

    /// Every record of one of this test's topics, from the beginning to the end of each
    /// partition, in offset order within a partition, as a `read_committed` consumer sees it:
    /// nothing of a transaction still open or aborted.
    pub fn read(&self, name: &str) -> Vec<Record> {
        let partitions = self.partitions(name);
        let name = self.topic(name);
        assert!(partitions > 0, "{name} does not exist");
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", format!("{}-reader", self.group))
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            let p = i32::try_from(p).expect("a partition number");
            tpl.add_partition_offset(&name, p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&tpl).expect("assign");
        // A partition's end is where it was when the consumer got there: a record that arrives
        // later reopens it.
        let mut at_end = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while at_end.len() < partitions {
            assert!(Instant::now() < deadline, "reading {name} timed out");
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    at_end.remove(&m.partition());
                    let headers = m.headers().map_or_else(Vec::new, |h| {
                        h.iter()
                            .map(|h| {
                                let value = h.value.unwrap_or_default();
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(value).into_owned(),
                                )
                            })
                            .collect()
                    });
                    out.push(Record {
                        key: m.key().unwrap_or_default().to_vec(),
                        payload: m.payload().map(<[u8]>::to_vec),
                        headers,
                    });
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Some(Err(e)) => panic!("reading {name}: {e}"),
                None => {}
            }
        }
        out
    }
}

impl Drop for Sandbox {
    /// Deletes Vigil's topics under the prefix, and any other topic there (a health probe's,
    /// one a test made itself): the broker lists what exists, and Vigil's names are added in
    /// case the list was incomplete. Errors are ignored: a topic never created cannot be
    /// deleted, and a clean-up that fails must not hide the test's own failure.
    fn drop(&mut self) {
        let mut names: Vec<String> = TOPICS.iter().map(|(_, name)| self.topic(name)).collect();
        if let Ok(metadata) = self
            .admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(15))
        {
            for t in metadata.topics() {
                if t.name().starts_with(&self.prefix) && !names.iter().any(|n| n == t.name()) {
                    names.push(t.name().to_string());
                }
            }
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let _ = self
            .rt
            .block_on(self.admin.delete_topics(&refs, &admin_options()));
    }
}
