//! The file layer: `vigil.toml` read over the layers below it, every problem reported at its
//! file:line:column.
//!
//! The file is merged into a document of the configuration so far (the defaults, when
//! loading) and that document is deserialised into [`Config`]. The structs' own checks
//! (`deny_unknown_fields`, the types, their `deserialize_with`) are then the file's only
//! checks, and a key the file leaves out keeps the value below it, even inside a topic, whose
//! defaults differ from one topic to the next.
//!
//! Serde stops at the first problem; so, as `vigil check` does for rule files, each problem is
//! recorded, the key at fault taken out of the file, and the rest read again, until the file
//! reads or a problem cannot be pinned on a key.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{Config, ConfigError};
use crate::rules::diagnostic::Diagnostic;

const UNKNOWN_KEY_HELP: &str =
    "the keys are documented in schemas/config.schema.json and vigil.example.toml";

impl Config {
    /// Parses `text` (the contents of `file`) and applies what it says over `self`.
    pub fn apply_file(&mut self, file: &Path, text: &str) -> Result<(), ConfigError> {
        let invalid = |diagnostics| ConfigError::Invalid {
            source: text.to_string(),
            diagnostics,
        };
        let mut written =
            DeTable::parse(text).map_err(|e| invalid(vec![diagnostic(file, &e, None)]))?;
        let below_text = toml::to_string(self).map_err(|e| {
            ConfigError::Combined(vec![format!("cannot restate the configuration: {e}")])
        })?;
        let below = DeTable::parse(&below_text).map_err(|e| {
            ConfigError::Combined(vec![format!("cannot restate the configuration: {e}")])
        })?;
        let mut diagnostics = Vec::new();
        loop {
            let mut document: DeTable<'_> = written.get_ref().clone();
            fill(&mut document, below.get_ref().clone());
            let error = match Config::deserialize(toml::de::Deserializer::from(Spanned::new(
                0..text.len(),
                document,
            ))) {
                Ok(config) if diagnostics.is_empty() => {
                    *self = config;
                    return Ok(());
                }
                Ok(_) => break,
                Err(e) => e,
            };
            let path = error.span().and_then(|s| path_at(written.get_ref(), &s));
            diagnostics.push(diagnostic(file, &error, path.as_deref()));
            // Each pass takes a key out, so this ends.
            if !path.is_some_and(|p| remove(written.get_mut(), &p)) {
                break;
            }
        }
        diagnostics.sort_by_key(|d| d.span.start);
        Err(invalid(diagnostics))
    }
}

/// The problem at its place: the key's path before the message, except where the message
/// names the key itself (an unknown key).
fn diagnostic(file: &Path, error: &toml::de::Error, path: Option<&[String]>) -> Diagnostic {
    let message = error.message().trim();
    let span = error.span().unwrap_or(0..0);
    if message.starts_with("unknown field") {
        return Diagnostic::new(file, span, message).help(UNKNOWN_KEY_HELP);
    }
    let message = match path {
        Some(path) => format!("{}: {message}", dotted(path)),
        None => message.to_string(),
    };
    Diagnostic::new(file, span, message)
}

/// A key's path as TOML writes it: `kafka.librdkafka."client.id"`.
fn dotted(path: &[String]) -> String {
    let bare = |key: &str| {
        !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let keys: Vec<String> = path
        .iter()
        .map(|key| {
            if bare(key) {
                key.clone()
            } else {
                format!("{key:?}")
            }
        })
        .collect();
    keys.join(".")
}

/// Adds to `into` every key of `from` it lacks, key by key inside the tables both have.
fn fill<'a>(into: &mut DeTable<'a>, from: DeTable<'a>) {
    for (key, value) in from {
        match into.get_mut(key.get_ref().as_ref()) {
            None => {
                into.insert(key, value);
            }
            Some(mine) => {
                if let (DeValue::Table(mine), DeValue::Table(theirs)) =
                    (mine.get_mut(), value.into_inner())
                {
                    fill(mine, theirs);
                }
            }
        }
    }
}

/// The keys leading to the entry a problem's span belongs to: its key (an unknown key), its
/// value (a wrong type or value), or something inside a value that is no table (an element
/// of an array).
fn path_at(table: &DeTable<'_>, span: &Range<usize>) -> Option<Vec<String>> {
    for (key, value) in table {
        let inside = |outer: Range<usize>| outer.start <= span.start && span.end <= outer.end;
        let this = key.span() == *span
            || value.span() == *span
            || (!value.get_ref().is_table() && inside(value.span()));
        if this {
            return Some(vec![key.get_ref().to_string()]);
        }
        if let DeValue::Table(inner) = value.get_ref() {
            if let Some(mut path) = path_at(inner, span) {
                path.insert(0, key.get_ref().to_string());
                return Some(path);
            }
        }
    }
    None
}

/// Takes the entry at `path` out; false when there is none.
fn remove(table: &mut DeTable<'_>, path: &[String]) -> bool {
    match path {
        [] => false,
        [key] => table.remove(key.as_str()).is_some(),
        [key, rest @ ..] => match table.get_mut(key.as_str()).map(Spanned::get_mut) {
            Some(DeValue::Table(inner)) => remove(inner, rest),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CleanupPolicy, RedisConfig};

    fn from_file(text: &str) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        c.apply_file(Path::new("vigil.toml"), text)?;
        Ok(c)
    }

    fn problems(text: &str) -> Vec<String> {
        let e = from_file(text).expect_err("problems");
        e.to_string().lines().map(str::to_string).collect()
    }

    #[test]
    fn the_file_overrides_only_what_it_names() {
        let c = from_file(
            r#"
            [kafka]
            brokers = ["k1:9092", "k2:9092"]
            group = "vigil-prod"
            topic-prefix = "prod."
            request-timeout = "5s"

            [kafka.librdkafka]
            "security.protocol" = "SASL_SSL"
            "sasl.mechanism" = "SCRAM-SHA-512"

            [kafka.topics.alerts]
            retention = "1d"
            partitions = 12

            [kafka.topics.dead-letter]
            name = "vigil-dlq"
            cleanup-policy = "compact,delete"
            "#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let k = &c.kafka;
        let defaults = Config::default().kafka;
        assert_eq!(k.bootstrap_servers(), "k1:9092,k2:9092");
        assert_eq!(k.group, "vigil-prod");
        assert_eq!(k.client_id, "vigil");
        assert_eq!(k.request_timeout, std::time::Duration::from_secs(5));
        assert_eq!(k.librdkafka["security.protocol"], "SASL_SSL");
        assert_eq!(k.topics.alerts.retention.as_kafka(), 86_400_000);
        assert_eq!(k.topics.alerts.partitions, 12);
        assert_eq!(k.topics.alerts.replication_factor, 1);
        assert_eq!(k.topic_name(&k.topics.alerts), "prod.alerts");
        assert_eq!(k.topic_name(&k.topics.dead_letter), "prod.vigil-dlq");
        assert_eq!(
            k.topics.dead_letter.cleanup_policy,
            CleanupPolicy::CompactDelete
        );
        assert_eq!(
            k.topics.dead_letter.retention,
            defaults.topics.dead_letter.retention
        );
        assert_eq!(k.topics.health_events, defaults.topics.health_events);
        assert_eq!(k.streaming, defaults.streaming);
    }

    #[test]
    fn the_file_applies_over_what_is_below_it() {
        let mut c = Config::default();
        c.apply_file(
            Path::new("a.toml"),
            "[kafka.librdkafka]\n\"a\" = \"1\"\n[kafka.topics.alerts]\npartitions = 3\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        c.apply_file(
            Path::new("b.toml"),
            "[kafka.librdkafka]\n\"b\" = \"2\"\n[kafka.topics.alerts]\nretention = \"1d\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.kafka.librdkafka.len(), 2);
        assert_eq!(c.kafka.topics.alerts.partitions, 3);
        assert_eq!(c.kafka.topics.alerts.retention.as_kafka(), 86_400_000);
    }

    #[test]
    fn unknown_keys_are_rejected_with_line_and_column() {
        let text = "[kafka]\nbrokers = [\"a:1\"]\n\n[kafka.topics.alerts]\nretension = \"1d\"\n";
        let e = from_file(text).expect_err("unknown key");
        let shown = e.to_string();
        assert!(
            shown.starts_with("vigil.toml:5:1: unknown field `retension`"),
            "{shown}"
        );
        assert!(shown.contains("schemas/config.schema.json"), "{shown}");
        assert!(e.render(false).contains("retension = \"1d\""));

        let e = from_file("[kafak]\n").expect_err("unknown table");
        assert!(
            e.to_string()
                .starts_with("vigil.toml:1:2: unknown field `kafak`"),
            "{e}"
        );

        let e = from_file("[kafka.topics.alert]\n").expect_err("unknown topic");
        assert!(e.to_string().contains("unknown field `alert`"), "{e}");
        let e = from_file("[history]\nuri = \"sqlite:x\"\n").expect_err("unknown key");
        assert!(e.to_string().contains("unknown field `uri`"), "{e}");
    }

    /// Every table refuses a key it does not have; `[kafka.librdkafka]` is librdkafka's, so
    /// any key goes there, and `[lateness.by-type]` is keyed by event types (next test).
    #[test]
    fn an_unknown_key_in_any_table_is_refused_and_all_are_reported() {
        let below = toml::to_string(&Config {
            redis: RedisConfig {
                url: Some("redis://x:6379".to_string()),
                ..Default::default()
            },
            ..Config::default()
        })
        .expect("defaults as TOML");
        let document: toml::Table = below.parse().expect("defaults parse");
        let mut tables = vec![String::new()];
        fn walk(table: &toml::Table, at: &str, out: &mut Vec<String>) {
            for (key, value) in table {
                let map = key == "librdkafka" || key == "by-type";
                if let (Some(inner), false) = (value.as_table(), map) {
                    let here = if at.is_empty() {
                        key.clone()
                    } else {
                        format!("{at}.{key}")
                    };
                    out.push(here.clone());
                    walk(inner, &here, out);
                }
            }
        }
        walk(&document, "", &mut tables);
        assert_eq!(tables.len(), 1 + 5 + 2 + 8, "{tables:?}");

        let mut all = String::new();
        for table in &tables {
            let header = if table.is_empty() {
                String::new()
            } else {
                format!("[{table}]\n")
            };
            let text = format!("{header}no-such-key = 1\n");
            let found = problems(&text);
            assert_eq!(found.len(), 1, "{table}: {found:?}");
            assert!(
                found[0].contains("unknown field `no-such-key`"),
                "{table}: {found:?}"
            );
            if !table.is_empty() {
                all.push_str(&text);
            }
        }
        let found = problems(&all);
        assert_eq!(found.len(), tables.len() - 1, "{found:?}");
        let lines: Vec<usize> = found
            .iter()
            .map(|p| {
                p.split(':')
                    .nth(1)
                    .and_then(|l| l.parse().ok())
                    .expect("line")
            })
            .collect();
        assert!(
            lines.windows(2).all(|w| w[0] < w[1]),
            "in file order: {found:?}"
        );
    }

    #[test]
    fn lateness_is_set_per_event_type_by_name_over_the_defaults() {
        use crate::engine::Lateness;
        use crate::event::EventType;
        let mut c = Config::default();
        c.apply_file(
            Path::new("vigil.toml"),
            "[lateness]\ndefault = \"10m\"\n[lateness.by-type]\nheart_rate = \"0ms\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let expected = Lateness::default()
            .with(EventType::HeartRate, 0)
            .with(EventType::StepCount, 600_000)
            .with(EventType::Symptom, 600_000);
        assert_eq!(c.lateness.lateness().of(EventType::HeartRate), 0);
        assert_eq!(c.lateness.lateness().of(EventType::StepCount), 600_000);
        assert_eq!(
            c.lateness.lateness().of(EventType::HeartRateVariability),
            expected.of(EventType::HeartRateVariability),
            "the nightly defaults stay"
        );
        let found = problems("[lateness.by-type]\nheartrate = \"1h\"\nsleep_episode = \"3x\"\n");
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].contains("`heartrate` is not an event type (known: heart_rate,"),
            "{found:?}"
        );
        assert!(found[0].contains(":2:"), "{found:?}");
        assert!(found[1].contains("sleep_episode"), "{found:?}");
    }

    #[test]
    fn every_bad_value_is_reported_at_once_in_file_order() {
        let text = r#"[kafka]
request-timeout = "soon"
brokers = [" "]

[kafka.librdkafka]
"bootstrap.servers" = "x:1"

[kafka.topics.alerts]
retention = "3M"
partitions = 0
cleanup-policy = "forever"
biggest = 1

[kafka.topics.milestones]
name = "mile stones"
replication-factor = -1

[kafka.streaming]
threads = 0
max-task-idle = "soon"
pipelined-transactions = "no"

[history]
url = "mysql://x"

[redis]
url = "mysql://x"

[http]
listen = "nowhere"
"#;
        let found = problems(text);
        let expected = [
            "vigil.toml:2:19: kafka.request-timeout: `soon` is not a duration",
            "vigil.toml:3:11: kafka.brokers: no broker given",
            "vigil.toml:6:23: kafka.librdkafka.\"bootstrap.servers\": is set by Vigil itself",
            "vigil.toml:9:13: kafka.topics.alerts.retention: unit `M` is not accepted",
            "vigil.toml:10:14: kafka.topics.alerts.partitions: must be at least 1",
            "vigil.toml:11:18: kafka.topics.alerts.cleanup-policy: `forever` is not a policy",
            "vigil.toml:12:1: unknown field `biggest`",
            "vigil.toml:15:8: kafka.topics.milestones.name: `mile stones` may only have",
            "vigil.toml:16:22: kafka.topics.milestones.replication-factor: must be at least 1",
            "vigil.toml:19:11: kafka.streaming.threads: must be between 1 and 256",
            "vigil.toml:20:17: kafka.streaming.max-task-idle: `soon` is not a duration",
            "vigil.toml:21:26: kafka.streaming.pipelined-transactions: invalid type",
            "vigil.toml:24:7: history.url: has an unknown scheme",
            "vigil.toml:27:7: redis.url: has an unknown scheme",
            "vigil.toml:30:10: http.listen: is not host:port",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (found, expected) in found.iter().zip(expected) {
            assert!(found.starts_with(expected), "{found}\nexpected {expected}");
        }
    }

    #[test]
    fn numbers_are_checked_whatever_their_size() {
        for bad in ["0", "-1", "100000"] {
            let found = problems(&format!("[kafka.streaming]\nthreads = {bad}\n"));
            assert_eq!(
                found,
                ["vigil.toml:2:11: kafka.streaming.threads: must be between 1 and 256"]
            );
        }
        for bad in ["0", "-1", "3000000000"] {
            let found = problems(&format!("[kafka.topics.state]\npartitions = {bad}\n"));
            assert_eq!(found.len(), 1);
            assert!(
                found[0].contains("partitions: must be at least 1"),
                "{found:?}"
            );
        }
        let c = from_file("[kafka.streaming]\nthreads = 3\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.kafka.streaming.threads, Some(3));
    }

    #[test]
    fn wrong_types_are_reported_with_their_place() {
        let found = problems("[kafka.topics.alerts]\npartitions = \"six\"\n");
        assert!(
            found[0].starts_with("vigil.toml:2:14: kafka.topics.alerts.partitions: invalid type"),
            "{found:?}"
        );
        let found = problems("kafka = 5\n[http]\nlisten = 9464\n");
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("vigil.toml:1:9: kafka: invalid type"),
            "{found:?}"
        );
        assert!(found[1].starts_with("vigil.toml:3:10: http.listen: invalid type"));
        let found = problems("[kafka]\nbrokers = [\"a:1\", 2]\n");
        assert!(found[0].starts_with("vigil.toml:2:19: kafka.brokers: invalid type"));
    }

    #[test]
    fn a_syntax_error_is_one_problem() {
        let found = problems("[kafka\nbrokers = 1\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("vigil.toml:1:"), "{found:?}");
    }

    #[test]
    fn durations_read_as_before() {
        for (text, ms) in [
            ("0", 0),
            ("0ms", 0),
            ("00s", 0),
            ("250ms", 250),
            ("2s", 2000),
        ] {
            let c = from_file(&format!("[kafka.streaming]\nmax-task-idle = \"{text}\"\n"))
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(c.kafka.streaming.max_task_idle.as_millis(), ms, "{text}");
        }
        for text in ["0x", "-1s", "soon", ""] {
            let found = problems(&format!("[kafka.streaming]\nmax-task-idle = \"{text}\"\n"));
            assert!(
                found[0].starts_with("vigil.toml:2:17: kafka.streaming.max-task-idle:"),
                "{text}: {found:?}"
            );
        }
        let found = problems("[kafka.streaming]\ncommit-interval = \"0ms\"\n");
        assert!(
            found[0].contains("is zero"),
            "a commit interval of 0 stays refused"
        );
        let c = from_file(
            "[kafka.streaming]\ncommit-interval = \"1h30m\"\n\
             [kafka.topics.state]\nretention = \" forever \"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.kafka.streaming.commit_interval.as_secs(), 5_400);
        assert_eq!(c.kafka.topics.state.retention.as_kafka(), -1);
    }

    #[test]
    fn values_are_kept_as_written() {
        let c = from_file(
            "[kafka]\nclient-id = \" spaced \"\n[kafka.topics.alerts]\n\
             cleanup-policy = \"delete, compact\"\n[kafka.streaming]\npipelined-transactions = false\n\
             [redis]\nurl = \"redis://127.0.0.1:6380/2\"\nkey-prefix = \"staging:\"\n\
             [http]\nlisten = \"127.0.0.1:9464\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.kafka.client_id, " spaced ");
        assert_eq!(
            c.kafka.topics.alerts.cleanup_policy.as_kafka(),
            "compact,delete"
        );
        assert!(!c.kafka.streaming.pipelined_transactions);
        assert_eq!(c.redis.url.as_deref(), Some("redis://127.0.0.1:6380/2"));
        assert_eq!(c.redis.key_prefix, "staging:");
        assert_eq!(c.http.listen, Some("127.0.0.1:9464".parse().unwrap()));
    }

    #[test]
    fn paths_quote_keys_with_dots() {
        let path = [
            "kafka".to_string(),
            "librdkafka".to_string(),
            "a.b".to_string(),
        ];
        assert_eq!(dotted(&path), "kafka.librdkafka.\"a.b\"");
    }
}
