//! What a run loop gathers for the shared state between two hand-overs, and the silence check
//! it makes at each firing: the same for the embedded and the Kafka edges.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use super::silence::Silence;
use super::user::{cooldowns, StatusOutput};
use super::StatusStore;
use crate::engine::{AlertState, OutputEvent};
use crate::rules::{RuleKind, RuleSet};

/// The silence keeping `output` off the alerts output at `now`, from the latest silences
/// `shared` has read: only firings are looked up, and they are rare next to events.
pub fn silence_for(
    shared: &StatusStore,
    output: &OutputEvent,
    now: DateTime<Utc>,
) -> Option<Silence> {
    if output.data.kind != RuleKind::Alert || output.data.state != Some(AlertState::Firing) {
        return None;
    }
    shared
        .silences()
        .covering(&output.subject, &output.data.rule_id, now)
        .cloned()
}

/// Last event times (coalesced per user) and outputs since the last hand-over.
#[derive(Debug, Default)]
pub struct StatusBuffer {
    touched: FxHashMap<String, i64>,
    outputs: Vec<StatusOutput>,
    cooldowns: HashMap<String, u64>,
}

impl StatusBuffer {
    pub fn new(rules: &RuleSet) -> StatusBuffer {
        StatusBuffer {
            cooldowns: cooldowns(rules),
            ..StatusBuffer::default()
        }
    }

    /// The rules whose outputs come from now on (after a rule reload): their cooldowns.
    pub fn set_rules(&mut self, rules: &RuleSet) {
        self.cooldowns = cooldowns(rules);
    }

    /// An accepted event of `user` at `ms`.
    pub fn event(&mut self, user: &str, ms: i64) {
        // A lookup by &str first: allocating the key only for a user new since the last
        // hand-over keeps this off the per-event cost.
        match self.touched.get_mut(user) {
            Some(have) => *have = (*have).max(ms),
            None => {
                self.touched.insert(user.to_string(), ms);
            }
        }
    }

    pub fn output(&mut self, output: &OutputEvent, silenced: bool) {
        let cooldown = self
            .cooldowns
            .get(&output.data.rule_id)
            .copied()
            .unwrap_or(0);
        self.outputs
            .push(StatusOutput::new(output, silenced, cooldown));
    }

    /// Moves what `other` gathered into this buffer (each processing thread has its own).
    pub fn absorb(&mut self, other: &mut StatusBuffer) {
        for (user, ms) in other.touched.drain() {
            let have = self.touched.entry(user).or_insert(ms);
            *have = (*have).max(ms);
        }
        self.outputs.append(&mut other.outputs);
    }

    pub fn hand_to(&mut self, shared: &StatusStore) {
        let touched = self.touched.drain().collect();
        shared.send(touched, std::mem::take(&mut self.outputs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorbing_keeps_each_users_latest_time_and_empties_the_other() {
        let mut mine = StatusBuffer::default();
        mine.event("alice", 5_000);
        mine.event("bob", 1_000);
        let mut theirs = StatusBuffer::default();
        theirs.event("alice", 3_000);
        theirs.event("bob", 2_000);
        theirs.event("carol", 7_000);
        mine.absorb(&mut theirs);
        let mut touched: Vec<(&str, i64)> =
            mine.touched.iter().map(|(u, t)| (u.as_str(), *t)).collect();
        touched.sort_unstable();
        assert_eq!(
            touched,
            [("alice", 5_000), ("bob", 2_000), ("carol", 7_000)]
        );
        assert!(theirs.touched.is_empty() && theirs.outputs.is_empty());
    }
}
