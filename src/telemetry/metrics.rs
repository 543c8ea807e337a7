//! Every metric Vigil exposes, declared in one struct: names, HELP texts, label sets.
//!
//! The engine processes hundreds of thousands of events a second on one core, so the hot path
//! never touches a labelled family (a hash of the labels and a lock per increment). Instead:
//!
//! - input counters are resolved once per run ([`InputCounters`]: by input position and event
//!   type, no lookup). In Kafka mode counts go first into a [`Tally`] — plain `u64`s — that
//!   travels with the transaction and is added when it commits, so an aborted and replayed
//!   batch is not counted twice and the counters agree with the output topics; in the file
//!   mode each event adds to its counter at once (one uncontended atomic add);
//! - the processing-latency histogram is fed one event in [`LATENCY_SAMPLE_EVERY`]: that
//!   event's decode-to-outputs time is measured alone (two clock reads), so the histogram
//!   holds a sample of true per-event latencies rather than batch averages, for well under a
//!   nanosecond per event amortised;
//! - gauges (lag, state size) are set by the loop about once a second, not per event.

use std::fmt::Write as _;
use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use rustc_hash::FxHashMap;

use crate::engine::OutputEvent;
use crate::event::EventType;
use crate::rules::RuleKind;

/// One event in this many has its processing time measured (see the module documentation).
pub const LATENCY_SAMPLE_EVERY: u32 = 64;

/// A dependency that Vigil retries toward.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Dependency {
    /// The history database, in production.
    Postgres,
    /// The history database, embedded.
    Sqlite,
    Redis,
}

impl Dependency {
    /// The `dependency` label's value.
    pub fn name(self) -> &'static str {
        match self {
            Dependency::Postgres => "postgres",
            Dependency::Sqlite => "sqlite",
            Dependency::Redis => "redis",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    topic: String,
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    rule: String,
    severity: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MilestoneLabels {
    rule: String,
    severity: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabels {
    dependency: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    rule: String,
    agreement: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Vigil's metrics and the registry that exposes them. One per process ([`super::metrics`]);
/// tests make their own.
pub struct Metrics {
    registry: Registry,
    events_in: Family<EventLabels, Counter>,
    events_invalid: Family<TopicLabels, Counter>,
    events_late: Family<TopicLabels, Counter>,
    events_future: Family<TopicLabels, Counter>,
    alerts: Family<AlertLabels, Counter>,
    milestones: Family<MilestoneLabels, Counter>,
    processing: Histogram,
    consumer_lag: Family<TopicLabels, Gauge>,
    assigned_partitions: Gauge,
    state_users: Gauge,
    state_bytes: Gauge,
    transactions: Family<OutcomeLabels, Counter>,
    transaction_seconds: Histogram,
    dependency_retries: Family<DependencyLabels, Counter>,
    history_queued: Gauge,
    rules_reloads: Family<OutcomeLabels, Counter>,
    rule_version: Family<RuleLabels, Gauge>,
    shadow_outputs: Family<ShadowLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Declares and registers every metric. The names are the public interface (dashboards
    /// and alerting rules use them): change them only with the dashboard in `deploy/`.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            events_in: Family::default(),
            events_invalid: Family::default(),
            events_late: Family::default(),
            events_future: Family::default(),
            alerts: Family::default(),
            milestones: Family::default(),
            // 1 µs to about 0.5 s: a plain event takes a few µs, one that raises outputs tens.
            processing: Histogram::new(exponential_buckets(1e-6, 2.0, 20)),
            consumer_lag: Family::default(),
            assigned_partitions: Gauge::default(),
            state_users: Gauge::default(),
            state_bytes: Gauge::default(),
            transactions: Family::default(),
            // 1 ms to about 16 s: loopback commits take a few ms; the timeout bounds the top.
            transaction_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            dependency_retries: Family::default(),
            history_queued: Gauge::default(),
            rules_reloads: Family::default(),
            rule_version: Family::default(),
            shadow_outputs: Family::default(),
            registry: Registry::default(),
        };
        let registry = &mut m.registry;
        registry.register(
            "vigil_events_in",
            "Input events decoded and handed to the engine, by input topic and event type",
            m.events_in.clone(),
        );
        registry.register(
            "vigil_events_invalid",
            "Input records rejected (undecodable, invalid or too large) and dead-lettered, by \
             input topic",
            m.events_invalid.clone(),
        );
        registry.register(
            "vigil_events_late",
            "Input events later than the allowed lateness behind their user's event time, sent \
             to the late-events output, by input topic",
            m.events_late.clone(),
        );
        registry.register(
            "vigil_events_future",
            "Input events dated more than the allowed future skew ahead of this machine's \
             clock, dead-lettered (counted in vigil_events_invalid too), by input topic",
            m.events_future.clone(),
        );
        registry.register(
            "vigil_alerts",
            "Alerts emitted, by rule, severity and state (firing or resolved)",
            m.alerts.clone(),
        );
        registry.register(
            "vigil_milestones",
            "Milestones emitted, by rule and severity",
            m.milestones.clone(),
        );
        registry.register_with_unit(
            "vigil_event_processing",
            "Time to process one input event (engine and output encoding), measured on one \
             event in 64",
            Unit::Seconds,
            m.processing.clone(),
        );
        registry.register(
            "vigil_consumer_lag_records",
            "Records in the assigned input partitions not yet processed (high watermark minus \
             the processed offset), by input topic",
            m.consumer_lag.clone(),
        );
        registry.register(
            "vigil_assigned_partitions",
            "Input partitions assigned to this instance",
            m.assigned_partitions.clone(),
        );
        registry.register(
            "vigil_state_users",
            "Keys (users) with state in this instance's engines",
            m.state_users.clone(),
        );
        registry.register_with_unit(
            "vigil_state",
            "Approximate memory held by the engines' state (refreshed every 10 s)",
            Unit::Bytes,
            m.state_bytes.clone(),
        );
        registry.register(
            "vigil_transactions",
            "Kafka transactions ended, by outcome (commit or abort)",
            m.transactions.clone(),
        );
        registry.register_with_unit(
            "vigil_transaction_duration",
            "Time from the start of a Kafka transaction to its commit",
            Unit::Seconds,
            m.transaction_seconds.clone(),
        );
        registry.register(
            "vigil_dependency_retries",
            "Failed attempts toward a dependency that will be retried, by dependency",
            m.dependency_retries.clone(),
        );
        registry.register(
            "vigil_history_queued_rows",
            "Alerts and milestones waiting to be stored in the history database",
            m.history_queued.clone(),
        );
        registry.register(
            "vigil_rules_reloads",
            "Rule reloads, by outcome: applied, or refused (an invalid set, or a changed rule \
             that kept its version; the running rules go on)",
            m.rules_reloads.clone(),
        );
        registry.register(
            "vigil_rule_version",
            "The version of each rule of the running set, by rule id",
            m.rule_version.clone(),
        );
        registry.register(
            "vigil_shadow_outputs",
            "Outputs of a shadow run (vigil run --shadow) matched against the live rules' \
             outputs of the same event, by rule id and agreement: both, live_only, shadow_only",
            m.shadow_outputs.clone(),
        );
        registry.register(
            "vigil_build",
            "Vigil's version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        // Series that exist before anything happens, so dashboards and `rate()` see zeros
        // instead of no data.
        for outcome in ["commit", "abort"] {
            m.transactions
                .get_or_create_owned(&OutcomeLabels { outcome });
        }
        for outcome in ["applied", "refused"] {
            m.rules_reloads
                .get_or_create_owned(&OutcomeLabels { outcome });
        }
        for dependency in [Dependency::Postgres, Dependency::Redis] {
            m.dependency_retries.get_or_create_owned(&DependencyLabels {
                dependency: dependency.name(),
            });
        }
        m
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a label set.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            let _ = writeln!(out, "# encoding error: {e}");
        }
        out
    }

    /// Counters for `topics` (the inputs, by position), resolved once so the loop can add to
    /// them without a lookup. `topics` are names as configured, or a file mode's source.
    pub fn input_counters(&self, topics: &[&str]) -> InputCounters {
        let by_type = topics
            .iter()
            .flat_map(|topic| {
                EventType::ALL.iter().map(move |ty| {
                    self.events_in.get_or_create_owned(&EventLabels {
                        topic: topic.to_string(),
                        r#type: ty.name(),
                    })
                })
            })
            .collect();
        let per_topic = |family: &Family<TopicLabels, Counter>| {
            topics
                .iter()
                .map(|topic| {
                    family.get_or_create_owned(&TopicLabels {
                        topic: topic.to_string(),
                    })
                })
                .collect()
        };
        let lag = topics
            .iter()
            .map(|topic| {
                self.consumer_lag.get_or_create_owned(&TopicLabels {
                    topic: topic.to_string(),
                })
            })
            .collect();
        InputCounters {
            events: by_type,
            invalid: per_topic(&self.events_invalid),
            late: per_topic(&self.events_late),
            future: per_topic(&self.events_future),
            lag,
            alerts: self.alerts.clone(),
            milestones: self.milestones.clone(),
            processing: self.processing.clone(),
        }
    }

    /// Counts one failed attempt toward `dependency` that will be retried.
    pub fn dependency_retry(&self, dependency: Dependency) {
        self.dependency_retries
            .get_or_create(&DependencyLabels {
                dependency: dependency.name(),
            })
            .inc();
    }

    /// Counts a Kafka transaction that committed, and how long it took.
    pub fn transaction_committed(&self, seconds: f64) {
        self.transactions
            .get_or_create(&OutcomeLabels { outcome: "commit" })
            .inc();
        self.transaction_seconds.observe(seconds);
    }

    pub fn transaction_aborted(&self) {
        self.transactions
            .get_or_create(&OutcomeLabels { outcome: "abort" })
            .inc();
    }

    pub fn set_assigned_partitions(&self, n: usize) {
        self.assigned_partitions.set(saturating_i64(n));
    }

    /// Keys in state, and (when measured) the bytes they hold.
    pub fn set_state(&self, users: usize, bytes: Option<usize>) {
        self.state_users.set(saturating_i64(users));
        if let Some(bytes) = bytes {
            self.state_bytes.set(saturating_i64(bytes));
        }
    }

    /// Counts a rule reload that was applied (`true`) or refused.
    pub fn rules_reload(&self, applied: bool) {
        let outcome = if applied { "applied" } else { "refused" };
        self.rules_reloads
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The running set's rules and versions: rules no longer in it leave the gauge.
    pub fn set_rule_versions(&self, rules: &crate::rules::RuleSet) {
        self.rule_version.clear();
        for rule in &rules.rules {
            self.rule_version
                .get_or_create(&RuleLabels {
                    rule: rule.id.clone(),
                })
                .set(i64::from(rule.version));
        }
    }

    /// Adds `n` to the shadow run's count of `rule`'s outputs with this `agreement` ("both",
    /// "live_only" or "shadow_only").
    pub fn shadow_outputs(&self, rule: &str, agreement: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        self.shadow_outputs
            .get_or_create(&ShadowLabels {
                rule: rule.to_string(),
                agreement,
            })
            .inc_by(n);
    }

    /// Rows handed to a history writer (`+n`) or stored by it (`-n`).
    pub fn history_queued_add(&self, delta: i64) {
        self.history_queued.inc_by(delta);
    }
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Counters of one run's inputs, resolved once (see [`Metrics::input_counters`]). Cloning is
/// cheap (the counters are shared).
#[derive(Clone)]
pub struct InputCounters {
    /// By input, then event type (position in [`EventType::ALL`]).
    events: Vec<Counter>,
    invalid: Vec<Counter>,
    late: Vec<Counter>,
    future: Vec<Counter>,
    lag: Vec<Gauge>,
    alerts: Family<AlertLabels, Counter>,
    milestones: Family<MilestoneLabels, Counter>,
    processing: Histogram,
}

impl std::fmt::Debug for InputCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputCounters")
            .field("inputs", &self.invalid.len())
            .finish_non_exhaustive()
    }
}

impl InputCounters {
    /// Adds `tally` to the counters and empties it.
    pub fn record(&self, tally: &mut Tally) {
        add_all(&self.events, &tally.events);
        add_all(&self.invalid, &tally.invalid);
        add_all(&self.late, &tally.late);
        add_all(&self.future, &tally.future);
        for ((rule, alert, severity, state), n) in tally.outputs.drain() {
            if alert {
                self.alerts
                    .get_or_create(&AlertLabels {
                        rule,
                        severity,
                        state,
                    })
                    .inc_by(n);
            } else {
                self.milestones
                    .get_or_create(&MilestoneLabels { rule, severity })
                    .inc_by(n);
            }
        }
        tally.events.iter_mut().for_each(|n| *n = 0);
        tally.invalid.iter_mut().for_each(|n| *n = 0);
        tally.late.iter_mut().for_each(|n| *n = 0);
        tally.future.iter_mut().for_each(|n| *n = 0);
    }

    /// Counts one event of type `ty` from input `input` at once. For a loop that is the only
    /// writer of these counters and whose counts need no transaction (the file mode): one
    /// uncontended atomic add, no lookup.
    #[inline]
    pub fn event(&self, input: usize, ty: EventType) {
        if let Some(c) = self.events.get(input * EventType::ALL.len() + ty as usize) {
            c.inc();
        }
    }

    /// Counts one dead-lettered record from input `input` at once.
    pub fn invalid(&self, input: usize) {
        if let Some(c) = self.invalid.get(input) {
            c.inc();
        }
    }

    /// Counts one late event from input `input` at once.
    pub fn late(&self, input: usize) {
        if let Some(c) = self.late.get(input) {
            c.inc();
        }
    }

    /// Counts one event from input `input` dead-lettered for being in the future, at once
    /// (as invalid too).
    pub fn future(&self, input: usize) {
        self.invalid(input);
        if let Some(c) = self.future.get(input) {
            c.inc();
        }
    }

    /// Counts one output at once (outputs are rare: a labelled lookup is fine).
    pub fn output(&self, output: &OutputEvent) {
        let mut tally = Tally::default();
        tally.output(output);
        self.record(&mut tally);
    }

    /// Records the processing time of one sampled event.
    pub fn observe_processing(&self, seconds: f64) {
        self.processing.observe(seconds);
    }

    /// Sets the consumer lag of input `input` (by position).
    pub fn set_lag(&self, input: usize, records: i64) {
        if let Some(gauge) = self.lag.get(input) {
            gauge.set(records);
        }
    }
}

fn add_all(counters: &[Counter], counts: &[u64]) {
    for (counter, &n) in counters.iter().zip(counts) {
        if n > 0 {
            counter.inc_by(n);
        }
    }
}

/// Labels of one kind of output: rule, whether it is an alert (else a milestone), severity,
/// state ("" for milestones).
type OutputKey = (String, bool, &'static str, &'static str);

/// Counts kept on the processing thread between two [`InputCounters::record`]s: plain
/// integers, indexed by input position and event type.
#[derive(Default, Debug, Clone)]
pub struct Tally {
    events: Vec<u64>,
    invalid: Vec<u64>,
    late: Vec<u64>,
    future: Vec<u64>,
    outputs: FxHashMap<OutputKey, u64>,
}

impl Tally {
    /// An event of type `ty` from input `input`, handed to the engine.
    #[inline]
    pub fn event(&mut self, input: usize, ty: EventType) {
        let i = input * EventType::ALL.len() + ty as usize;
        bump(&mut self.events, i);
    }

    /// A record from input `input` that was dead-lettered.
    pub fn invalid(&mut self, input: usize) {
        bump(&mut self.invalid, input);
    }

    /// An event from input `input` that was late.
    pub fn late(&mut self, input: usize) {
        bump(&mut self.late, input);
    }

    /// An event from input `input` dead-lettered for being in the future (invalid too).
    pub fn future(&mut self, input: usize) {
        self.invalid(input);
        bump(&mut self.future, input);
    }

    /// An output, by rule, severity and state. Outputs are rare next to events: a map is fine.
    pub fn output(&mut self, output: &OutputEvent) {
        let data = &output.data;
        let state = data.state.map_or("", |s| s.name());
        let key = (
            data.rule_id.clone(),
            data.kind == RuleKind::Alert,
            data.severity.name(),
            state,
        );
        *self.outputs.entry(key).or_insert(0) += 1;
    }

    /// Adds `other` to this tally and empties it (each processing thread keeps a tally of its
    /// own; the loop gathers them into the transaction's).
    pub fn absorb(&mut self, other: &mut Tally) {
        for (mine, theirs) in [
            (&mut self.events, &mut other.events),
            (&mut self.invalid, &mut other.invalid),
            (&mut self.late, &mut other.late),
            (&mut self.future, &mut other.future),
        ] {
            if mine.len() < theirs.len() {
                mine.resize(theirs.len(), 0);
            }
            for (m, t) in mine.iter_mut().zip(theirs.iter_mut()) {
                *m += std::mem::take(t);
            }
        }
        for (key, n) in other.outputs.drain() {
            *self.outputs.entry(key).or_insert(0) += n;
        }
    }

    /// Events counted (all inputs and types), for tests and summaries.
    pub fn events(&self) -> u64 {
        self.events.iter().sum()
    }
}

#[inline]
fn bump(counts: &mut Vec<u64>, i: usize) {
    if i >= counts.len() {
        counts.resize(i + 1, 0);
    }
    counts[i] += 1;
}

/// The process's metrics.
pub(super) static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::new);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family with the name it is exposed under (counters get `_total`), as the
    /// dashboard in `deploy/grafana` queries them.
    const EXPOSED: &[(&str, &str)] = &[
        ("vigil_events_in", "counter"),
        ("vigil_events_invalid", "counter"),
        ("vigil_events_late", "counter"),
        ("vigil_events_future", "counter"),
        ("vigil_alerts", "counter"),
        ("vigil_milestones", "counter"),
        ("vigil_event_processing_seconds", "histogram"),
        ("vigil_consumer_lag_records", "gauge"),
        ("vigil_assigned_partitions", "gauge"),
        ("vigil_state_users", "gauge"),
        ("vigil_state_bytes", "gauge"),
        ("vigil_transactions", "counter"),
        ("vigil_transaction_duration_seconds", "histogram"),
        ("vigil_dependency_retries", "counter"),
        ("vigil_history_queued_rows", "gauge"),
        ("vigil_rules_reloads", "counter"),
        ("vigil_rule_version", "gauge"),
        ("vigil_shadow_outputs", "counter"),
        ("vigil_build", "info"),
    ];

    #[test]
    fn absorbing_a_tally_adds_it_and_empties_it() {
        let mut mine = Tally::default();
        mine.event(0, EventType::HeartRate);
        mine.late(0);
        let mut theirs = Tally::default();
        theirs.event(0, EventType::HeartRate);
        theirs.event(1, EventType::StepCount);
        theirs.invalid(1);
        mine.absorb(&mut theirs);
        assert_eq!(mine.events(), 3);
        assert_eq!(mine.invalid, vec![0, 1]);
        assert_eq!(mine.late, vec![1]);
        assert_eq!(theirs.events(), 0);
        assert!(theirs.invalid.iter().chain(&theirs.late).all(|&n| n == 0));
    }

    #[test]
    fn every_metric_is_encoded_with_its_help_and_type() {
        let metrics = Metrics::new();
        // A family is encoded once it has a series: the inputs' series exist from the start
        // of a run, the outputs' from the first output of each rule.
        let _inputs = metrics.input_counters(&["health-events"]);
        let rule = || "hrv_drop".to_string();
        metrics
            .alerts
            .get_or_create(&AlertLabels {
                rule: rule(),
                severity: "warning",
                state: "firing",
            })
            .inc();
        metrics
            .milestones
            .get_or_create(&MilestoneLabels {
                rule: rule(),
                severity: "info",
            })
            .inc();
        metrics.set_rule_versions(&crate::rules::RuleSet::default());
        metrics
            .rule_version
            .get_or_create(&RuleLabels { rule: rule() })
            .set(1);
        metrics.shadow_outputs(&rule(), "both", 1);
        let text = metrics.encode();
        for (name, kind) in EXPOSED {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# HELP {name} ")) && l.len() > 20),
                "no HELP for {name}:\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "no TYPE {kind} for {name}:\n{text}"
            );
        }
        assert_eq!(
            text.matches("# TYPE ").count(),
            EXPOSED.len(),
            "a metric is declared but not listed here (and maybe not on the dashboard):\n{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("vigil_transactions_total{outcome=\"abort\"} 0\n"));
        assert!(text.contains("vigil_dependency_retries_total{dependency=\"postgres\"} 0\n"));
    }

    #[test]
    fn the_dashboard_shows_every_metric() {
        let dashboard = include_str!("../../deploy/grafana/vigil.json");
        for (name, kind) in EXPOSED {
            let queried = match *kind {
                "counter" => format!("{name}_total"),
                "histogram" => format!("{name}_bucket"),
                "info" => format!("{name}_info"),
                _ => name.to_string(),
            };
            assert!(
                dashboard.contains(&queried),
                "deploy/grafana/vigil.json has no panel for {queried}"
            );
        }
    }

    #[test]
    fn a_tally_reaches_the_resolved_counters_once() {
        let metrics = Metrics::new();
        let counters = metrics.input_counters(&["health", "bio"]);
        let mut tally = Tally::default();
        for _ in 0..3 {
            tally.event(1, EventType::ALL[2]);
        }
        tally.event(0, EventType::ALL[0]);
        tally.invalid(1);
        tally.late(0);
        assert_eq!(tally.events(), 4);
        counters.record(&mut tally);
        // Recorded and emptied: a second record adds nothing.
        counters.record(&mut tally);
        assert_eq!(tally.events(), 0);
        let text = metrics.encode();
        let ty = EventType::ALL[2].name();
        assert!(
            text.contains(&format!(
                "vigil_events_in_total{{topic=\"bio\",type=\"{ty}\"}} 3\n"
            )),
            "{text}"
        );
        assert!(text.contains("vigil_events_invalid_total{topic=\"bio\"} 1\n"));
        assert!(text.contains("vigil_events_late_total{topic=\"health\"} 1\n"));
        assert!(text.contains("vigil_events_late_total{topic=\"bio\"} 0\n"));
    }

    #[test]
    fn retries_are_counted_per_dependency() {
        let metrics = Metrics::new();
        metrics.dependency_retry(Dependency::Postgres);
        metrics.dependency_retry(Dependency::Postgres);
        metrics.dependency_retry(Dependency::Redis);
        let text = metrics.encode();
        assert!(text.contains("vigil_dependency_retries_total{dependency=\"postgres\"} 2\n"));
        assert!(text.contains("vigil_dependency_retries_total{dependency=\"redis\"} 1\n"));
    }
}
