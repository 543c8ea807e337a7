//! Event time: an instant with the UTC offset it was recorded in.
//!
//! The offset is part of the data, not a presentation detail: it decides the user's local
//! calendar day ("night"), so it is kept from parse to output.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, SecondsFormat};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds in a day, for calendar arithmetic on local dates.
pub const DAY_MS: i64 = 86_400_000;

/// An RFC 3339 timestamp whose UTC offset is preserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTime(pub DateTime<FixedOffset>);

impl EventTime {
    /// Parses RFC 3339 (`2024-05-01T07:12:00+02:00`, `…Z`).
    pub fn parse(text: &str) -> Result<Self, chrono::ParseError> {
        DateTime::parse_from_rfc3339(text).map(EventTime)
    }

    /// Milliseconds since the Unix epoch (UTC).
    pub fn millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    /// The local calendar date in the event's own offset.
    pub fn local_date(&self) -> NaiveDate {
        self.0.date_naive()
    }

    /// The local calendar date as a day number (days since 0001-01-01), for window arithmetic.
    pub fn local_day(&self) -> i32 {
        self.local_date().num_days_from_ce()
    }

    /// The offset east of UTC, in seconds.
    pub fn offset_seconds(&self) -> i32 {
        self.0.offset().local_minus_utc()
    }

    /// The same instant shifted by `millis`, keeping the offset.
    pub fn plus_millis(&self, millis: i64) -> EventTime {
        EventTime(self.0 + chrono::Duration::milliseconds(millis))
    }

    /// RFC 3339 text with the original offset (`Z` only when the offset is zero).
    pub fn to_rfc3339(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }
}

/// Formats a day number from [`EventTime::local_day`] as `YYYY-MM-DD`.
pub fn day_to_string(day: i32) -> String {
    NaiveDate::from_num_days_from_ce_opt(day)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("day{day}"))
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for EventTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for EventTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        EventTime::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for EventTime {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EventTime".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 time with its UTC offset, e.g. 2024-05-01T07:12:00+02:00. \
                The offset decides the local calendar day."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_offset_and_local_date() {
        let t = EventTime::parse("2024-03-31T01:30:00+03:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-03-31T01:30:00+03:00");
        assert_eq!(t.local_date().to_string(), "2024-03-31");
        // The same instant in UTC is still the previous day.
        let utc = EventTime::parse("2024-03-30T22:30:00Z").unwrap();
        assert_eq!(utc.millis(), t.millis());
        assert_eq!(utc.local_date().to_string(), "2024-03-30");
        assert_eq!(day_to_string(t.local_day()), "2024-03-31");
    }
}
