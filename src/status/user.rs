//! A user's status as downstream services read it, and the changes the engine's outputs make
//! to it. The same field semantics hold in Redis (a Lua script, [`super::redis_store`]) and in
//! process ([`LocalStatus`], the embedded default), so both modes behave alike.
//!
//! Fields of the status hash:
//! - `last_event_time` (RFC 3339, UTC) and `last_event_ms`: the user's latest event time;
//! - `firing:<rule>`: the open firing of that rule, as JSON (`id`, `time`, `severity`,
//!   `night`, `silenced`); removed when it resolves;
//! - `baseline:<rule>`: the statistics at that rule's latest decision, as JSON (`time`,
//!   `stats`, `samples`);
//! - `milestone:<rule>`: the latest milestone of that rule, as JSON;
//! - `alerts_fired`, `alerts_resolved`, `milestones`: counts, each output counted once (dedup
//!   keys).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use serde_json::json;

use crate::engine::clock::StreamClock;
use crate::engine::{AlertState, OutputEvent};
use crate::rules::duration::Extent;
use crate::rules::{Mode, RuleKind, RuleSet};

/// How long a dedup key lives: longer than any replay (a restart re-reads at most what was not
/// committed, seconds to minutes).
pub const DEDUP_TTL: Duration = Duration::from_secs(7 * 86_400);
/// How long a user's status is kept after their last change.
pub const STATUS_TTL: Duration = Duration::from_secs(30 * 86_400);

/// What an output does to its user's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Firing,
    Resolved,
    Milestone,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Firing => "firing",
            Change::Resolved => "resolved",
            Change::Milestone => "milestone",
        }
    }
}

/// One output, as the status needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusOutput {
    pub id: String,
    pub user: String,
    pub rule: String,
    pub change: Change,
    /// The value of `firing:<rule>` or `milestone:<rule>` (JSON).
    pub summary: String,
    /// The value of `baseline:<rule>` (JSON).
    pub baseline: String,
    /// Seconds the rule's cooldown lasts after a firing (0: none).
    pub cooldown_secs: u64,
    /// The output's time (ms): the in-process status forgets it with its user (state TTL).
    pub time_ms: i64,
}

impl StatusOutput {
    pub fn new(output: &OutputEvent, silenced: bool, cooldown_secs: u64) -> StatusOutput {
        let change = match (output.data.kind, output.data.state) {
            (RuleKind::Milestone, _) => Change::Milestone,
            (_, Some(AlertState::Resolved)) => Change::Resolved,
            _ => Change::Firing,
        };
        let time = output.time.to_string();
        let summary = json!({
            "id": output.id,
            "time": time,
            "severity": output.data.severity.name(),
            "night": output.data.night,
            "silenced": silenced,
        });
        let baseline = json!({
            "time": time,
            "stats": output.data.stats,
            "samples": output.data.samples,
        });
        StatusOutput {
            id: output.id.clone(),
            user: output.subject.clone(),
            rule: output.data.rule_id.clone(),
            change,
            summary: summary.to_string(),
            baseline: baseline.to_string(),
            cooldown_secs: if change == Change::Firing {
                cooldown_secs
            } else {
                0
            },
            time_ms: output.time.millis(),
        }
    }
}

/// Each rule's cooldown in seconds (nights count as 24 h; a cooldown counted in events has no
/// time to live and is left out).
pub fn cooldowns(rules: &RuleSet) -> HashMap<String, u64> {
    rules
        .rules
        .iter()
        .filter_map(|r| match &r.mode {
            Mode::Condition {
                cooldown: Some(extent),
                ..
            } => {
                let secs = match *extent {
                    Extent::Nights(n) => u64::from(n) * 86_400,
                    Extent::Time(ms) => u64::try_from(ms / 1000).ok()?,
                    Extent::Events(_) => return None,
                };
                (secs > 0).then(|| (r.id.clone(), secs))
            }
            _ => None,
        })
        .collect()
}

/// The fields of one user's status, from Redis's `HGETALL` or from [`LocalStatus`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserStatus {
    pub fields: BTreeMap<String, String>,
}

impl UserStatus {
    pub fn last_event_ms(&self) -> Option<i64> {
        self.fields.get("last_event_ms")?.parse().ok()
    }

    /// Rules with an open firing, and the firing's JSON.
    pub fn firing(&self) -> BTreeMap<&str, serde_json::Value> {
        self.prefixed("firing:")
    }

    pub fn baselines(&self) -> BTreeMap<&str, serde_json::Value> {
        self.prefixed("baseline:")
    }

    pub fn count(&self, field: &str) -> u64 {
        self.fields
            .get(field)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn prefixed(&self, prefix: &str) -> BTreeMap<&str, serde_json::Value> {
        self.fields
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?, serde_json::from_str(v).ok()?)))
            .collect()
    }
}

/// The in-process status of the embedded default: what the Redis script does, in a map.
///
/// A million users that each sent one night must not cost a gigabyte: a user who only sent
/// events is a time (16 bytes besides the key); the fields outputs set are kept only for users
/// who have some, and the view [`LocalStatus::user`] gives is built when asked for. With a state
/// TTL, a user whose latest event is older than the TTL (on a [`StreamClock`] of the users'
/// times, so one wrong device clock cannot age everyone) is forgotten with everything kept for
/// them: status, cooldowns and dedup keys, as Redis forgets a hash that is not written to.
#[derive(Debug, Default)]
pub struct LocalStatus {
    users: FxHashMap<Box<str>, LocalUser>,
    /// Output id → (expiry, user): applied outputs, so a replayed one is not applied twice.
    dedup: FxHashMap<Box<str>, (Instant, Box<str>)>,
    cooldowns: HashMap<(String, String), (String, Instant)>,
    expiry: Option<Expiry>,
}

#[derive(Debug, Default)]
struct LocalUser {
    last_event_ms: Option<i64>,
    /// Fields that outputs set (firings, baselines, milestones, counts); `None` until one does.
    /// Boxed: 8 bytes for the many users without outputs instead of a map's 24.
    #[allow(clippy::box_collection)]
    fields: Option<Box<BTreeMap<String, String>>>,
}

/// The state TTL of the in-process status.
#[derive(Debug)]
struct Expiry {
    ttl_ms: i64,
    clock: StreamClock,
    /// Stream clock at the last sweep.
    last_sweep: i64,
}

/// How often (in the users' event time) the in-process status looks for users past the TTL.
const SWEEP_EVERY_MS: i64 = 3_600_000;

impl LocalStatus {
    /// A status that forgets a user `ttl_ms` after their latest event (by the users' stream
    /// clock, with `max_lead_ms` as in [`StreamClock`]).
    pub fn with_ttl(ttl_ms: i64, max_lead_ms: i64) -> LocalStatus {
        LocalStatus {
            expiry: Some(Expiry {
                ttl_ms,
                clock: StreamClock::new(max_lead_ms),
                last_sweep: i64::MIN,
            }),
            ..LocalStatus::default()
        }
    }

    /// Records `ms` as the user's last event time unless a later one is there.
    pub fn touch(&mut self, user: &str, ms: i64) {
        let status = match self.users.get_mut(user) {
            Some(status) => status,
            None => self.users.entry(user.into()).or_default(),
        };
        if status.last_event_ms.is_none_or(|have| ms > have) {
            status.last_event_ms = Some(ms);
        }
        if let Some(expiry) = self.expiry.as_mut() {
            expiry.clock.observe(user, ms);
        }
    }

    /// Forgets dedup and cooldown entries that have expired (once per write, not per output:
    /// the walk is over every entry), and with a TTL the users past it.
    pub fn prune(&mut self, now: Instant) {
        self.dedup.retain(|_, (expiry, _)| *expiry > now);
        self.cooldowns.retain(|_, (_, until)| *until > now);
        self.expire_idle_users();
    }

    fn expire_idle_users(&mut self) {
        let Some(expiry) = self.expiry.as_mut() else {
            return;
        };
        let clock = expiry.clock.time();
        if clock < expiry.last_sweep.saturating_add(SWEEP_EVERY_MS) {
            return;
        }
        expiry.last_sweep = clock;
        let horizon = clock.saturating_sub(expiry.ttl_ms);
        // A user with outputs but no event yet (its events are in a later batch) stays.
        self.users
            .retain(|_, user| user.last_event_ms.is_none_or(|ms| ms >= horizon));
        let users = &self.users;
        self.dedup
            .retain(|_, (_, user)| users.contains_key(user.as_ref()));
        self.cooldowns
            .retain(|(user, _), _| users.contains_key(user.as_str()));
    }

    /// Applies an output once; `false` when its id was applied before.
    pub fn apply(&mut self, output: &StatusOutput, now: Instant) -> bool {
        if self
            .dedup
            .get(output.id.as_str())
            .is_some_and(|(expiry, _)| *expiry > now)
        {
            return false;
        }
        self.dedup.insert(
            output.id.as_str().into(),
            (now + DEDUP_TTL, output.user.as_str().into()),
        );
        let user = match self.users.get_mut(output.user.as_str()) {
            Some(user) => user,
            None => self.users.entry(output.user.as_str().into()).or_default(),
        };
        let fields = user.fields.get_or_insert_with(Default::default);
        let rule = &output.rule;
        let counter = match output.change {
            Change::Firing => {
                fields.insert(format!("firing:{rule}"), output.summary.clone());
                if output.cooldown_secs > 0 {
                    self.cooldowns.insert(
                        (output.user.clone(), rule.clone()),
                        (
                            output.id.clone(),
                            now + Duration::from_secs(output.cooldown_secs),
                        ),
                    );
                }
                "alerts_fired"
            }
            Change::Resolved => {
                fields.remove(&format!("firing:{rule}"));
                "alerts_resolved"
            }
            Change::Milestone => {
                fields.insert(format!("milestone:{rule}"), output.summary.clone());
                "milestones"
            }
        };
        let n = fields
            .get(counter)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        fields.insert(counter.to_string(), (n + 1).to_string());
        fields.insert(format!("baseline:{rule}"), output.baseline.clone());
        true
    }

    /// The user's status fields, as Redis would return them.
    pub fn user(&self, user: &str) -> Option<UserStatus> {
        let local = self.users.get(user)?;
        let mut fields = local.fields.as_deref().cloned().unwrap_or_default();
        if let Some(ms) = local.last_event_ms {
            fields.insert("last_event_ms".into(), ms.to_string());
            fields.insert("last_event_time".into(), rfc3339_of_ms(ms));
        }
        Some(UserStatus { fields })
    }

    /// The firing id holding the user's cooldown for `rule`, while it lasts.
    pub fn cooldown(&self, user: &str, rule: &str, now: Instant) -> Option<&str> {
        self.cooldowns
            .get(&(user.to_string(), rule.to_string()))
            .filter(|(_, until)| *until > now)
            .map(|(id, _)| id.as_str())
    }

    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Output ids remembered for dedup.
    pub fn dedup_keys(&self) -> usize {
        self.dedup.len()
    }
}

pub fn rfc3339_of_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(id: &str, change: Change, cooldown: u64) -> StatusOutput {
        StatusOutput {
            id: id.into(),
            user: "u1".into(),
            rule: "hrv_drop".into(),
            change,
            summary: format!("{{\"id\":\"{id}\"}}"),
            baseline: "{\"stats\":{}}".into(),
            cooldown_secs: cooldown,
            time_ms: 0,
        }
    }

    #[test]
    fn outputs_apply_once_and_resolutions_close_firings() {
        let mut s = LocalStatus::default();
        let now = Instant::now();
        assert!(s.apply(&output("f1", Change::Firing, 3600), now));
        assert!(!s.apply(&output("f1", Change::Firing, 3600), now));
        let u = s.user("u1").unwrap();
        assert_eq!(u.count("alerts_fired"), 1);
        assert_eq!(u.firing().len(), 1);
        assert_eq!(s.cooldown("u1", "hrv_drop", now), Some("f1"));
        assert_eq!(
            s.cooldown("u1", "hrv_drop", now + Duration::from_secs(3601)),
            None
        );
        assert!(s.apply(&output("r1", Change::Resolved, 0), now));
        let u = s.user("u1").unwrap();
        assert!(u.firing().is_empty());
        assert_eq!(u.count("alerts_resolved"), 1);
        assert_eq!(u.baselines().len(), 1);
    }

    #[test]
    fn the_last_event_time_only_moves_forward() {
        let mut s = LocalStatus::default();
        s.touch("u1", 2_000);
        s.touch("u1", 1_000);
        let u = s.user("u1").unwrap();
        assert_eq!(u.last_event_ms(), Some(2_000));
        assert_eq!(u.fields["last_event_time"], "1970-01-01T00:00:02.000Z");
    }

    #[test]
    fn with_a_ttl_users_past_it_are_forgotten_with_their_dedup_and_cooldown_keys() {
        const HOUR: i64 = 3_600_000;
        let mut s = LocalStatus::with_ttl(24 * HOUR, 24 * HOUR);
        let now = Instant::now();
        s.touch("u1", 0);
        assert!(s.apply(&output("f1", Change::Firing, 3600), now));
        // Three other users move the stream clock two days on.
        for user in ["a", "b", "c"] {
            s.touch(user, 48 * HOUR);
        }
        s.prune(now);
        assert_eq!(s.user("u1"), None);
        assert_eq!(s.cooldown("u1", "hrv_drop", now), None);
        assert_eq!(s.dedup_keys(), 0);
        assert_eq!(s.users(), 3);
    }

    #[test]
    fn one_user_far_ahead_ages_no_one() {
        const HOUR: i64 = 3_600_000;
        let mut s = LocalStatus::with_ttl(24 * HOUR, 24 * HOUR);
        for user in ["a", "b", "c"] {
            s.touch(user, 0);
        }
        s.touch("wrong-clock", 1_000 * 24 * HOUR);
        s.prune(Instant::now());
        assert_eq!(s.users(), 4);
    }

    #[test]
    fn a_user_who_only_sent_events_has_no_fields_but_the_time() {
        let mut s = LocalStatus::default();
        s.touch("u1", 2_000);
        let fields = s.user("u1").expect("known").fields;
        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            ["last_event_ms", "last_event_time"]
        );
    }
}
