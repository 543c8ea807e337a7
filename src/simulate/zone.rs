//! Time zones, with the daylight-saving rules of a few regions (no tz database needed).

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, Weekday};

use crate::event::EventTime;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dst {
    None,
    /// EU: last Sunday of March to last Sunday of October.
    Europe,
    /// US: second Sunday of March to first Sunday of November.
    UnitedStates,
    /// South-eastern Australia: first Sunday of October to first Sunday of April.
    Australia,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Zone {
    standard_minutes: i32,
    dst: Dst,
}

/// Zones users live in, with relative weights.
pub(super) const ZONES: &[(Zone, u32)] = &[
    (zone(0, Dst::Europe), 3),          // London
    (zone(60, Dst::Europe), 5),         // Berlin, Paris
    (zone(120, Dst::Europe), 1),        // Helsinki
    (zone(-300, Dst::UnitedStates), 4), // New York
    (zone(-360, Dst::UnitedStates), 2), // Chicago
    (zone(-480, Dst::UnitedStates), 3), // Los Angeles
    (zone(-180, Dst::None), 1),         // São Paulo
    (zone(330, Dst::None), 1),          // India
    (zone(540, Dst::None), 2),          // Tokyo
    (zone(600, Dst::Australia), 1),     // Sydney
    (zone(0, Dst::None), 1),            // UTC all year
];

const fn zone(standard_minutes: i32, dst: Dst) -> Zone {
    Zone {
        standard_minutes,
        dst,
    }
}

fn nth_sunday(year: i32, month: u32, n: u8) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Sun, n).expect("valid date")
}

fn last_sunday(year: i32, month: u32) -> NaiveDate {
    let next_month = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    let last = next_month.and_then(|d| d.pred_opt()).expect("valid date");
    last - Duration::days(i64::from(last.weekday().num_days_from_sunday()))
}

pub(super) fn at(date: NaiveDate, hour: u32) -> NaiveDateTime {
    date.and_hms_opt(hour, 0, 0).expect("valid time")
}

impl Zone {
    /// The offset in force at a local (wall-clock) time.
    pub(super) fn offset_at(&self, local: NaiveDateTime) -> FixedOffset {
        let y = local.year();
        let summer = match self.dst {
            Dst::None => false,
            Dst::Europe => local >= at(last_sunday(y, 3), 2) && local < at(last_sunday(y, 10), 3),
            Dst::UnitedStates => {
                local >= at(nth_sunday(y, 3, 2), 2) && local < at(nth_sunday(y, 11, 1), 2)
            }
            Dst::Australia => {
                !(local >= at(nth_sunday(y, 4, 1), 3) && local < at(nth_sunday(y, 10, 1), 2))
            }
        };
        let minutes = self.standard_minutes + if summer { 60 } else { 0 };
        FixedOffset::east_opt(minutes * 60).expect("valid offset")
    }
}

/// The instant of a local time in an offset, as an [`EventTime`] keeping that offset.
pub(super) fn event_time(local: NaiveDateTime, offset: FixedOffset) -> EventTime {
    let utc = local - Duration::seconds(i64::from(offset.local_minus_utc()));
    EventTime(DateTime::from_naive_utc_and_offset(utc, offset))
}

pub(super) fn event_time_at(millis: i64, offset: FixedOffset) -> EventTime {
    let utc = DateTime::from_timestamp_millis(millis).expect("time in range");
    EventTime(utc.with_timezone(&offset))
}
