//! Rules after checking: names resolved, windows parsed, series shared. What the engine runs.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::agg_kind::AggKind;
use super::duration::{Extent, Window};
use super::expr::Expr;
use crate::event::EventType;

/// Alert (with a lifecycle) or milestone (a single event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    Alert,
    Milestone,
}

impl RuleKind {
    pub fn name(self) -> &'static str {
        match self {
            RuleKind::Alert => "alert",
            RuleKind::Milestone => "milestone",
        }
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Which output of another rule arms an `[after]` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputState {
    Firing,
    Resolved,
    Milestone,
}

impl OutputState {
    pub fn name(self) -> &'static str {
        match self {
            OutputState::Firing => "firing",
            OutputState::Resolved => "resolved",
            OutputState::Milestone => "milestone",
        }
    }
}

/// The event attribute that partitions a rule's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeySpec {
    UserId,
    Attribute(String),
}

/// How a series stores its samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Storage {
    /// One value per local date; a later value for the date replaces the earlier one.
    PerNight,
    /// Every event, in time order.
    AllEvents,
}

/// A stream of per-event values that one or more statistics aggregate. Identical series of
/// different rules are stored once per key.
#[derive(Clone, Debug)]
pub struct SeriesDef {
    pub from: EventType,
    /// The value per event; `None` means 1 (for counts).
    pub of: Option<Expr>,
    pub filter: Option<Expr>,
    pub storage: Storage,
    /// For night storage of an `of` that reads a single field: store that field's raw value
    /// and apply `of` when reading. Raw device values (integer bpm, ms) stay exact in 4 bytes
    /// where a transformed value (e.g. `ln(rmssd)`) would need 8.
    pub stored_field: Option<usize>,
    pub key: KeySpec,
    /// Local dates the calendar windows span, the current one included (0: none).
    pub keep_days: i64,
    /// Time to keep behind the newest, ms (sliding and tumbling windows).
    pub keep_ms: i64,
    /// Samples to keep at least (event-count windows).
    pub keep_count: usize,
    /// Incremental aggregates maintained over sliding windows of this series.
    pub sliding: Vec<SlidingAgg>,
    /// Canonical text of the definition, for sharing.
    pub signature: String,
}

/// An incremental aggregate kept up to date as samples arrive.
#[derive(Clone, Debug, PartialEq)]
pub struct SlidingAgg {
    pub agg: AggKind,
    pub span_ms: i64,
}

/// A named statistic of a rule.
#[derive(Clone, Debug)]
pub struct Stat {
    pub name: String,
    pub series: usize,
    pub agg: AggKind,
    pub window: Window,
    pub min_samples: usize,
    /// Index into the series' `sliding` list when the window is sliding.
    pub sliding_slot: Option<usize>,
}

/// A step of a sequence or the start of an absence.
#[derive(Clone, Debug)]
pub struct Step {
    pub on: EventType,
    pub filter: Option<Expr>,
}

/// `[after]`: armed by another rule's output.
#[derive(Clone, Debug)]
pub struct After {
    pub rule: usize,
    pub rule_id: String,
    pub state: OutputState,
    pub within: Extent,
}

/// How a rule decides to fire.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Evaluated at each event of type `on`.
    Condition {
        on: EventType,
        filter: Option<Expr>,
        fire: Expr,
        streak: Option<Extent>,
        cooldown: Option<Extent>,
        resolve: Option<Expr>,
        after: Option<After>,
    },
    /// Fires when no watched event arrives for `timeout_ms` (on the stream clock, see `engine::clock`).
    Absence {
        of: Option<EventType>,
        timeout_ms: i64,
        start: Option<Step>,
        resolves: bool,
    },
    /// Fires when the steps occur in order within `within_ms`.
    Sequence {
        steps: Vec<Step>,
        within_ms: i64,
        strict: bool,
    },
}

/// A message template: literal text and placeholders.
#[derive(Clone, Debug)]
pub enum TemplatePart {
    Text(String),
    Value { expr: Expr, decimals: Option<usize> },
    Night,
}

/// A checked rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: String,
    pub version: u32,
    pub kind: RuleKind,
    pub severity: Severity,
    pub description: Option<String>,
    pub source: Option<String>,
    pub file: PathBuf,
    pub key: KeySpec,
    pub mode: Mode,
    pub stats: Vec<Stat>,
    pub lets: Vec<(String, Expr)>,
    pub tiers: Vec<(Severity, Expr)>,
    pub message: Vec<TemplatePart>,
    /// True when the rule reasons in local nights (its outputs name the night).
    pub nightly: bool,
}

impl Rule {
    /// Event types whose arrival can change this rule's state.
    pub fn trigger_types(&self) -> Vec<EventType> {
        match &self.mode {
            Mode::Condition { on, .. } => vec![*on],
            Mode::Absence { .. } => EventType::ALL.to_vec(),
            Mode::Sequence { steps, .. } => {
                let mut types: Vec<EventType> = steps.iter().map(|s| s.on).collect();
                types.sort();
                types.dedup();
                types
            }
        }
    }
}

/// All rules, checked together, in evaluation order (a rule after the rules it follows).
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub series: Vec<SeriesDef>,
}

impl RuleSet {
    pub fn rule_index(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.id == id)
    }
}
