//! Alerts and milestones as CloudEvents 1.0 structured JSON, with deterministic ids.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::EventTime;
use crate::rules::{RuleKind, Severity};

/// Namespace of Vigil's output ids (UUIDv5): the same rule, version, key and occasion always
/// give the same id, across runs, restarts and replays.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a4e_9b1d_4c55_8a0e_7d3b_21f4_c9a7);

pub const ALERT_FIRING_TYPE: &str = "io.vigil.alert.firing";
pub const ALERT_RESOLVED_TYPE: &str = "io.vigil.alert.resolved";
pub const MILESTONE_TYPE: &str = "io.vigil.milestone";

/// The lifecycle state of an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Resolved,
}

impl AlertState {
    pub fn name(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// An alert or milestone (CloudEvents 1.0, structured mode).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputEvent {
    /// Always "1.0".
    pub specversion: String,
    /// Deterministic UUIDv5 of rule id, version, key, state and occasion (night or time).
    pub id: String,
    /// "vigil/rules/<rule id>".
    pub source: String,
    /// "io.vigil.alert.firing", "io.vigil.alert.resolved" or "io.vigil.milestone".
    #[serde(rename = "type")]
    pub event_type: String,
    /// The key the rule is partitioned by: the user id.
    pub subject: String,
    /// Event time of the input event that caused it, with that event's offset (for absence
    /// alerts: the moment the timeout expired, in the user's last offset).
    pub time: EventTime,
    /// Always "application/json".
    pub datacontenttype: String,
    pub data: OutputData,
}

/// What the rule decided, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputData {
    pub rule_id: String,
    pub rule_version: u32,
    pub kind: RuleKind,
    /// Alerts only: "firing" or "resolved".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<AlertState>,
    pub severity: Severity,
    /// The local night (YYYY-MM-DD) the decision concerns, for nightly rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub night: Option<String>,
    /// The rule's message, with values filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Statistics and bindings at the decision (null: guard not met).
    pub stats: IndexMap<String, Option<f64>>,
    /// Number of samples in each statistic's window.
    pub samples: IndexMap<String, u64>,
    /// Ids of the input events that decided it: the triggering event (for a streak, the night
    /// that completed the run); for a sequence, the matched events, triggering one first; for
    /// an absence, the `after` step's event, or none.
    pub input_event_ids: Vec<String>,
    /// Resolved alerts: the id of the firing they resolve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firing_id: Option<String>,
}

impl OutputEvent {
    pub fn kind(&self) -> RuleKind {
        self.data.kind
    }
}

/// The deterministic id of an output.
pub fn output_id(rule_id: &str, version: u32, key: &str, state: &str, occasion: &str) -> Uuid {
    let name = format!("{rule_id}\u{1f}{version}\u{1f}{key}\u{1f}{state}\u{1f}{occasion}");
    Uuid::new_v5(&ID_NAMESPACE, name.as_bytes())
}

/// The JSON Schema of alerts or milestones.
pub fn output_schema(kind: RuleKind) -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(OutputEvent)).unwrap_or_default();
    let (title, types): (&str, &[&str]) = match kind {
        RuleKind::Alert => ("Vigil alert", &[ALERT_FIRING_TYPE, ALERT_RESOLVED_TYPE]),
        RuleKind::Milestone => ("Vigil milestone", &[MILESTONE_TYPE]),
    };
    schema["title"] = title.into();
    schema["$id"] = format!("https://vigil.dev/schemas/{}.schema.json", kind.name()).into();
    schema["properties"]["type"]["enum"] = serde_json::json!(types);
    schema["properties"]["specversion"]["const"] = "1.0".into();
    schema["properties"]["datacontenttype"]["const"] = "application/json".into();
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = output_id("hrv_drop", 1, "u1", "firing", "2024-05-01");
        assert_eq!(a, output_id("hrv_drop", 1, "u1", "firing", "2024-05-01"));
        assert_ne!(a, output_id("hrv_drop", 2, "u1", "firing", "2024-05-01"));
        assert_ne!(a, output_id("hrv_drop", 1, "u2", "firing", "2024-05-01"));
        assert_ne!(a, output_id("hrv_drop", 1, "u1", "resolved", "2024-05-01"));
    }
}
