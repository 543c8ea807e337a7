//! The rule file as written: TOML deserialised with spans, before any checking.
//!
//! Every struct rejects unknown fields, and its doc comments are the reference that
//! `vigil schema` publishes as `schemas/rule.schema.json` for editors.

use std::ops::Range;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

/// A value with its byte span in the rule file, so errors can point at it.
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
pub struct Sp<T>(pub toml::Spanned<T>);

impl<T> Sp<T> {
    pub fn get(&self) -> &T {
        self.0.get_ref()
    }

    pub fn span(&self) -> Range<usize> {
        self.0.span()
    }
}

impl<T: JsonSchema> JsonSchema for Sp<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }

    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

/// One rule: what it watches, the statistics it keeps, and when it fires.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Unique id, lower snake_case (e.g. "hrv_drop"). Part of every output's id.
    pub id: Sp<String>,
    /// Version of the rule's logic; bump it when the logic changes. Outputs carry it as
    /// provenance, and it is part of their ids.
    pub version: Sp<u32>,
    /// "alert" (firing, and resolved when `[resolve]` is given) or "milestone" (one event).
    pub kind: Sp<String>,
    /// One sentence for people reading alerts.
    #[serde(default)]
    pub description: Option<String>,
    /// Where the definition comes from (clinical source or "product rule").
    #[serde(default)]
    pub source: Option<String>,
    /// The event type whose arrival evaluates the rule, e.g. "heart_rate_variability".
    /// Not used by `[absence]` rules.
    #[serde(default)]
    pub on: Option<Sp<String>>,
    /// Condition on the triggering event; other events do not evaluate the rule.
    #[serde(default, rename = "where")]
    pub filter: Option<Sp<String>>,
    /// Event attribute that partitions state (default "user_id").
    #[serde(default)]
    pub key: Option<Sp<String>>,
    /// Severity of outputs: "info", "warning" or "critical" (default: "warning" for alerts,
    /// "info" for milestones). `[[tiers]]` can raise it.
    #[serde(default)]
    pub severity: Option<Sp<String>>,
    /// Message template; `{name}` inserts a statistic, binding or field, `{name:.2}` with two
    /// decimals; `{night}` the local night.
    #[serde(default)]
    pub message: Option<Sp<String>>,
    /// Named statistics over windows, evaluated at the triggering event.
    #[serde(default)]
    pub stats: IndexMap<String, Sp<StatDef>>,
    /// Named expressions, evaluated in order after the statistics.
    #[serde(default, rename = "let")]
    pub bindings: IndexMap<String, Sp<String>>,
    /// When the rule fires.
    #[serde(default)]
    pub fire: Option<Sp<FireDef>>,
    /// When a firing alert resolves. Without it an alert only fires (once per streak run, or
    /// each time its condition holds, subject to cooldown).
    #[serde(default)]
    pub resolve: Option<Sp<ResolveDef>>,
    /// Severity tiers, first match wins, decided when the alert fires.
    #[serde(default)]
    pub tiers: Vec<Sp<TierDef>>,
    /// Only evaluate after another rule's output for the same key ("B follows A within T").
    #[serde(default)]
    pub after: Option<Sp<AfterDef>>,
    /// Fire when an expected event does not arrive in time.
    #[serde(default)]
    pub absence: Option<Sp<AbsenceDef>>,
    /// Fire on an ordered pattern of events.
    #[serde(default)]
    pub sequence: Option<Sp<SequenceDef>>,
}

/// A statistic: an aggregate of a per-event value over a window.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatDef {
    /// Aggregate: count, sum, mean, min, max, stddev (sample, n−1), median, p<N> (e.g. p95,
    /// linear interpolation), slope (per day), first, last, ewma (needs `alpha`), max_gap (s).
    pub agg: Sp<String>,
    /// Expression giving each event's value, e.g. "ln(rmssd)". Optional for `count`.
    #[serde(default)]
    pub of: Option<Sp<String>>,
    /// Event type feeding the statistic (default: the rule's `on`).
    #[serde(default)]
    pub from: Option<Sp<String>>,
    /// Only events for which this holds are counted.
    #[serde(default, rename = "where")]
    pub filter: Option<Sp<String>>,
    /// "last 7 nights", "previous 60 nights", "last 3 days", "10m", "tumbling 1h",
    /// "last 20 events".
    pub window: Sp<String>,
    /// Guard: fewer samples than this makes the statistic null, so conditions using it do not
    /// hold (the rule does not evaluate).
    #[serde(default)]
    pub min_samples: Option<Sp<u32>>,
    /// Smoothing factor of `ewma`, in (0, 1].
    #[serde(default)]
    pub alpha: Option<Sp<f64>>,
}

/// When the rule fires.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FireDef {
    /// Condition; fires when it is true (null — e.g. a guard not met — does not fire).
    pub when: Sp<String>,
    /// Require the condition on consecutive nights ("3 nights": consecutive local dates, each
    /// with data; a date without data ends the run) or evaluations ("3 events"). Fires once per
    /// run, when the run reaches the length.
    #[serde(default)]
    pub streak: Option<Sp<String>>,
    /// After firing, stay silent for this long: "7 nights" (fired on night f: silent through
    /// f+6) or a duration such as "6h".
    #[serde(default)]
    pub cooldown: Option<Sp<String>>,
}

/// When a firing alert resolves.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveDef {
    /// Condition evaluated while firing; resolves when it is true. For `[absence]` rules,
    /// omit it: they resolve when data resumes.
    #[serde(default)]
    pub when: Option<Sp<String>>,
}

/// A severity tier.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TierDef {
    /// "info", "warning" or "critical".
    pub severity: Sp<String>,
    /// Condition, evaluated when the alert fires.
    pub when: Sp<String>,
}

/// Arms this rule when another rule emits an output for the same key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AfterDef {
    /// The other rule's id.
    pub rule: Sp<String>,
    /// Which of its outputs arms this rule: "firing" (default for alerts), "resolved", or
    /// "milestone".
    #[serde(default)]
    pub state: Option<Sp<String>>,
    /// How long the arming lasts: "30 nights" (through night f+30) or a duration.
    pub within: Sp<String>,
}

/// An absence: no matching event for a while.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AbsenceDef {
    /// Event type whose absence is watched; "*" (default) for any event.
    #[serde(default)]
    pub of: Option<Sp<String>>,
    /// How long without one before firing, e.g. "48h". Timers run on the stream's global
    /// clock (the latest event time seen from any user), so replays give the same result.
    #[serde(rename = "for")]
    pub timeout: Sp<String>,
    /// Optional starting event ("A not followed by B within T"): the timer starts at each
    /// event matching this step, instead of at each watched event.
    #[serde(default)]
    pub after: Option<Sp<StepDef>>,
}

/// An ordered pattern: each step must follow the previous one.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SequenceDef {
    /// The steps, in order.
    pub steps: Vec<Sp<StepDef>>,
    /// The whole pattern must complete within this duration of its first step.
    pub within: Sp<String>,
    /// "relaxed" (default: other events may come between steps) or "strict" (each step must
    /// be the key's very next event).
    #[serde(default)]
    pub contiguity: Option<Sp<String>>,
}

/// One step of a sequence or the start of an absence.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// Event type of this step.
    pub on: Sp<String>,
    /// Condition on the event's fields.
    #[serde(default, rename = "where")]
    pub filter: Option<Sp<String>>,
}
