//! Silences: "do not publish this user's alerts (of this rule) until then", as `vigil silence
//! add` creates them and every instance honours them.
//!
//! Semantics (chosen to match Alertmanager's where the issue is silent):
//! - a silence covers a user, and either one rule or all of them, from its creation until it
//!   expires, in wall-clock time (a silence is an operator's decision about now, not about
//!   the events' time);
//! - it covers **firing** alerts only. A covered firing is still computed and stored in the
//!   history, marked silenced, but kept off the alerts topic. Resolutions always go out, so a
//!   consumer that saw a firing before the silence began is never left with an alert that
//!   never resolves; a resolution whose firing it never saw is one it can ignore;
//! - milestones are good news and are never silenced.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// One silence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub user_id: String,
    /// The rule it covers; `None`: every rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Why a silence cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    /// Its length is not positive.
    #[error("a silence must last longer than zero")]
    NotPositive,
    /// It would end after the last time the stores keep (year 9999).
    #[error("a silence of {for_ms} ms from {} would end after {}", show_time(*.now), show_time(last_expiry()))]
    TooLong { for_ms: i64, now: DateTime<Utc> },
}

/// The latest a silence may end: times are stored with four-digit years (as text in SQLite,
/// where they compare as text).
pub fn last_expiry() -> DateTime<Utc> {
    chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map_or(DateTime::<Utc>::MAX_UTC, |t| t.and_utc())
}

impl Silence {
    /// A new silence from `now` for `for_ms` milliseconds, with a fresh random id.
    pub fn new(
        user_id: &str,
        rule_id: Option<&str>,
        reason: Option<&str>,
        for_ms: i64,
        now: DateTime<Utc>,
    ) -> Result<Silence, SilenceError> {
        if for_ms <= 0 {
            return Err(SilenceError::NotPositive);
        }
        let expires_at = chrono::Duration::try_milliseconds(for_ms)
            .and_then(|length| now.checked_add_signed(length))
            .filter(|&end| end <= last_expiry())
            .ok_or(SilenceError::TooLong { for_ms, now })?;
        Ok(Silence {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user_id.to_string(),
            rule_id: rule_id.map(str::to_string),
            reason: reason.map(str::to_string),
            created_at: now,
            expires_at,
        })
    }

    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.created_at <= now && now < self.expires_at
    }

    /// Whether it covers a firing of `rule_id` for `user_id` at `now`.
    pub fn covers(&self, user_id: &str, rule_id: &str, now: DateTime<Utc>) -> bool {
        self.user_id == user_id
            && self.rule_id.as_deref().is_none_or(|r| r == rule_id)
            && self.is_active(now)
    }

    /// Seconds until it expires (at least 1, as Redis TTLs must be positive).
    pub fn ttl_seconds(&self, now: DateTime<Utc>) -> u64 {
        let ms = (self.expires_at - now).num_milliseconds();
        u64::try_from((ms + 999) / 1000).unwrap_or(0).max(1)
    }

    pub fn rule_label(&self) -> &str {
        self.rule_id.as_deref().unwrap_or("*")
    }
}

/// RFC 3339 in UTC with seconds, as silences are shown.
pub fn show_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The silences in force, indexed by user for the check made at every firing.
#[derive(Clone, Debug, Default)]
pub struct SilenceSet {
    by_user: HashMap<String, Vec<Silence>>,
}

impl SilenceSet {
    pub fn new(silences: impl IntoIterator<Item = Silence>) -> SilenceSet {
        let mut by_user: HashMap<String, Vec<Silence>> = HashMap::new();
        for s in silences {
            by_user.entry(s.user_id.clone()).or_default().push(s);
        }
        SilenceSet { by_user }
    }

    /// The silence covering a firing of `rule_id` for `user_id` at `now`, if any (the one
    /// that lasts longest, so the answer does not depend on storage order).
    pub fn covering(&self, user_id: &str, rule_id: &str, now: DateTime<Utc>) -> Option<&Silence> {
        self.by_user
            .get(user_id)?
            .iter()
            .filter(|s| s.covers(user_id, rule_id, now))
            .max_by(|a, b| (a.expires_at, &a.id).cmp(&(b.expires_at, &b.id)))
    }

    pub fn len(&self) -> usize {
        self.by_user.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_silence_covers_its_user_its_rule_and_its_time_only() {
        let now = at("2026-11-24T10:00:00Z");
        let s = Silence::new("u1", Some("hrv_drop"), None, 3_600_000, now).expect("valid");
        assert!(s.covers("u1", "hrv_drop", now));
        assert!(s.covers("u1", "hrv_drop", at("2026-11-24T10:59:59Z")));
        assert!(!s.covers("u1", "hrv_drop", at("2026-11-24T11:00:00Z")));
        assert!(!s.covers("u1", "hrv_drop", at("2026-11-24T09:59:59Z")));
        assert!(!s.covers("u2", "hrv_drop", now));
        assert!(!s.covers("u1", "rhr_elevated", now));
        let all = Silence::new("u1", None, None, 1000, now).expect("valid");
        assert!(all.covers("u1", "rhr_elevated", now));
        assert_eq!(all.rule_label(), "*");
    }

    #[test]
    fn the_set_finds_the_longest_covering_silence() {
        let now = at("2026-11-24T10:00:00Z");
        let short = Silence::new("u1", None, None, 60_000, now).expect("valid");
        let long = Silence::new("u1", Some("hrv_drop"), None, 120_000, now).expect("valid");
        let other = Silence::new("u2", None, None, 600_000, now).expect("valid");
        let set = SilenceSet::new([short.clone(), long.clone(), other]);
        assert_eq!(set.len(), 3);
        assert_eq!(set.covering("u1", "hrv_drop", now), Some(&long));
        assert_eq!(set.covering("u1", "sleep_poor", now), Some(&short));
        assert_eq!(set.covering("u3", "hrv_drop", now), None);
        assert_eq!(
            set.covering("u1", "sleep_poor", now + chrono::Duration::seconds(61)),
            None
        );
    }

    #[test]
    fn ttls_round_up_and_stay_positive() {
        let now = at("2026-11-24T10:00:00Z");
        let s = Silence::new("u1", None, None, 1_500, now).expect("valid");
        assert_eq!(s.ttl_seconds(now), 2);
        assert_eq!(s.ttl_seconds(now + chrono::Duration::seconds(5)), 1);
    }

    #[test]
    fn a_silence_ends_within_four_digit_years_or_is_refused() {
        let now = at("2026-11-24T10:00:00Z");
        let far = 100_000_000 * 86_400_000;
        assert_eq!(
            Silence::new("u1", None, None, far, now),
            Err(SilenceError::TooLong { for_ms: far, now })
        );
        assert!(Silence::new("u1", None, None, i64::MAX, now).is_err());
        assert_eq!(
            Silence::new("u1", None, None, 0, now),
            Err(SilenceError::NotPositive)
        );
        let to_the_end = (last_expiry() - now).num_milliseconds();
        let last = Silence::new("u1", None, None, to_the_end, now).expect("ends in 9999");
        assert_eq!(show_time(last.expires_at), "9999-12-31T23:59:59Z");
        let e = Silence::new("u1", None, None, to_the_end + 1000, now).expect_err("10000");
        assert!(
            e.to_string()
                .ends_with("would end after 9999-12-31T23:59:59Z"),
            "{e}"
        );
    }
}
