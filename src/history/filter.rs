//! What `vigil alerts list` asks for, and the one SQL text it becomes on both backends
//! (`$N` placeholders: PostgreSQL's, and SQLite reads them too).

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use super::backend::Backend;
use crate::engine::AlertState;
use crate::rules::duration::parse_duration;

/// Which rows to list. Empty: every row, newest first, up to `limit`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this user's outputs.
    pub user: Option<String>,
    /// Only this rule's outputs.
    pub rule: Option<String>,
    /// Only outputs at or after this time (the CloudEvent's time).
    pub since: Option<DateTime<Utc>>,
    /// Only rows in this state, as the list shows it: an alert's state, or milestones.
    pub state: Option<RowState>,
    /// At most this many rows; `None`: all.
    pub limit: Option<u64>,
}

/// The state of a row as `vigil alerts list` shows it: an alert firing or resolved, or a
/// milestone (which has no state of its own; its kind stands in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowState {
    Alert(AlertState),
    Milestone,
}

impl RowState {
    /// As shown in the list's STATE column: "firing", "resolved", "milestone".
    pub fn name(self) -> &'static str {
        match self {
            RowState::Alert(state) => state.name(),
            RowState::Milestone => "milestone",
        }
    }
}

impl From<AlertState> for RowState {
    fn from(state: AlertState) -> Self {
        RowState::Alert(state)
    }
}

/// A value bound to a placeholder; times are bound in each backend's own column type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Bind {
    Text(String),
    Time(DateTime<Utc>),
    Int(i64),
}

/// The columns every read selects, in the order the store maps them.
pub(crate) fn columns(backend: Backend) -> &'static str {
    match backend {
        // `event` is `json` there; as text it comes back byte for byte.
        Backend::Postgres => {
            "id, event_type, kind, rule_id, rule_version, user_id, time, night, state, \
             severity, silenced, event::text AS event"
        }
        Backend::Sqlite => {
            "id, event_type, kind, rule_id, rule_version, user_id, time, night, state, \
             severity, silenced, event"
        }
    }
}

impl ListFilter {
    /// The query and its values. Newest first; `id` breaks ties so pages are stable.
    pub(crate) fn to_sql(&self, backend: Backend) -> (String, Vec<Bind>) {
        let mut conditions: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        let mut push = |column_test: &str, bind: Bind| {
            binds.push(bind);
            conditions.push(format!("{column_test} ${}", binds.len()));
        };
        if let Some(user) = &self.user {
            push("user_id =", Bind::Text(user.clone()));
        }
        if let Some(rule) = &self.rule {
            push("rule_id =", Bind::Text(rule.clone()));
        }
        if let Some(since) = self.since {
            push("time >=", Bind::Time(since));
        }
        match self.state {
            Some(RowState::Alert(state)) => {
                push("state =", Bind::Text(state.name().to_string()));
            }
            Some(RowState::Milestone) => {
                push("kind =", Bind::Text(RowState::Milestone.name().to_string()));
            }
            None => {}
        }
        let mut sql = format!("SELECT {} FROM history", columns(backend));
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(" ORDER BY time DESC, id");
        if let Some(limit) = self.limit {
            binds.push(Bind::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
            sql.push_str(&format!(" LIMIT ${}", binds.len()));
        }
        (sql, binds)
    }
}

/// `--since`: a duration back from `now` ("7d", "36h"), an RFC 3339 time, or a date (midnight
/// UTC). Absolute forms are there for history that is not recent, such as a backtest's.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    let since = parse_since_unchecked(text, now)?;
    // Times are compared as text in SQLite: a year of five digits, or before year 1, would
    // compare wrongly there, and is no history anyway.
    if !(1..=9999).contains(&since.year()) {
        return Err(format!(
            "`{text}` is outside the years 0001 to 9999 (it is {})",
            since.format("%Y-%m-%d")
        ));
    }
    Ok(since)
}

fn parse_since_unchecked(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if text.starts_with(|c: char| c.is_ascii_digit()) && !text.contains(['-', ':']) {
        let ms = parse_duration(text)?;
        return chrono::Duration::try_milliseconds(ms)
            .and_then(|back| now.checked_sub_signed(back))
            .ok_or_else(|| format!("`{text}` reaches back before the calendar's start"));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(format!(
        "`{text}` is neither a duration (\"7d\", \"36h\"), an RFC 3339 time \
         (\"2024-05-01T00:00:00Z\") nor a date (\"2024-05-01\")"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-10T12:00:00Z")
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn no_filter_lists_everything_newest_first() {
        let (sql, binds) = ListFilter::default().to_sql(Backend::Sqlite);
        assert!(sql.starts_with("SELECT id, event_type"), "{sql}");
        assert!(
            sql.ends_with("FROM history ORDER BY time DESC, id"),
            "{sql}"
        );
        assert!(binds.is_empty());
    }

    #[test]
    fn every_filter_gets_its_own_numbered_placeholder() {
        let since = now();
        let filter = ListFilter {
            user: Some("u1".into()),
            rule: Some("hrv_drop".into()),
            since: Some(since),
            state: Some(AlertState::Firing.into()),
            limit: Some(20),
        };
        let (sql, binds) = filter.to_sql(Backend::Postgres);
        assert!(
            sql.ends_with(
                "FROM history WHERE user_id = $1 AND rule_id = $2 AND time >= $3 \
                 AND state = $4 ORDER BY time DESC, id LIMIT $5"
            ),
            "{sql}"
        );
        assert!(sql.contains("event::text AS event"), "{sql}");
        assert_eq!(
            binds,
            [
                Bind::Text("u1".into()),
                Bind::Text("hrv_drop".into()),
                Bind::Time(since),
                Bind::Text("firing".into()),
                Bind::Int(20),
            ]
        );
    }

    #[test]
    fn some_filters_number_from_one() {
        let filter = ListFilter {
            rule: Some("r".into()),
            state: Some(AlertState::Resolved.into()),
            ..Default::default()
        };
        let (sql, binds) = filter.to_sql(Backend::Sqlite);
        assert!(
            sql.contains("WHERE rule_id = $1 AND state = $2 ORDER"),
            "{sql}"
        );
        assert_eq!(binds.len(), 2);
    }

    #[test]
    fn milestones_are_filtered_by_their_kind() {
        let filter = ListFilter {
            state: Some(RowState::Milestone),
            ..Default::default()
        };
        let (sql, binds) = filter.to_sql(Backend::Sqlite);
        assert!(sql.contains("WHERE kind = $1 ORDER"), "{sql}");
        assert_eq!(binds, [Bind::Text("milestone".into())]);
    }

    #[test]
    fn since_takes_durations_times_and_dates() {
        let week = parse_since("7d", now()).expect("duration");
        assert_eq!(week.to_rfc3339(), "2024-05-03T12:00:00+00:00");
        assert_eq!(
            parse_since("1h30m", now()).expect("compound").to_rfc3339(),
            "2024-05-10T10:30:00+00:00"
        );
        let t = parse_since("2024-05-01T07:00:00+02:00", now()).expect("time");
        assert_eq!(t.to_rfc3339(), "2024-05-01T05:00:00+00:00");
        let d = parse_since("2024-05-01", now()).expect("date");
        assert_eq!(d.to_rfc3339(), "2024-05-01T00:00:00+00:00");
    }

    #[test]
    fn since_explains_what_it_accepts() {
        let e = parse_since("7M", now()).expect_err("months are not a unit");
        assert!(e.contains("`M`"), "{e}");
        let e = parse_since("last week", now()).expect_err("words");
        assert!(e.contains("RFC 3339"), "{e}");
        assert!(parse_since("2024-02-30", now()).is_err());
        assert!(parse_since("0d", now()).is_err());
    }

    #[test]
    fn since_stays_within_four_digit_years() {
        assert!(
            parse_since("12345-01-01", now()).is_err(),
            "five-digit year"
        );
        let e = parse_since("1000000d", now()).expect_err("before year 1");
        assert!(e.contains("years 0001 to 9999"), "{e}");
        let e = parse_since("9999999999999d", now()).expect_err("past i64 ms");
        assert!(e.contains("too long"), "{e}");
        assert!(parse_since("0001-01-01", now()).is_ok());
    }
}
