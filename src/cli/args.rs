//! Value parsers shared by the commands' arguments: durations and dates, range-checked when
//! they are parsed, so that an absurd value is a usage error naming the argument (exit 2)
//! instead of an overflow deep in the engine, the clock arithmetic or a store.

use std::time::Duration;

use chrono::{Datelike, NaiveDate};

use crate::engine::Lateness;
use crate::event::EventType;
use crate::rules::duration::{format_duration, parse_duration, parse_duration_or_zero};

/// The longest duration any argument takes: 100 years. Longer is no real setting, and the
/// cap keeps every sum of a duration and an event time or `now` far from the ends of `i64`
/// milliseconds and of four-digit years.
pub const MAX_DURATION_MS: i64 = 36_500 * 86_400_000;

/// The years an argument's dates may reach: times are written with four-digit years (RFC
/// 3339, and the SQLite history's text columns, which compare as text).
pub const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// A positive duration ("90s", "10m", "1h30m") of at most [`MAX_DURATION_MS`], in ms.
pub fn duration_ms(text: &str) -> Result<i64, String> {
    let ms = parse_duration(text)?;
    if ms > MAX_DURATION_MS {
        return Err(format!(
            "`{}` is longer than the longest accepted, {} (100 years)",
            text.trim(),
            format_duration(MAX_DURATION_MS)
        ));
    }
    Ok(ms)
}

/// One `--allowed-lateness` value: `DURATION` for every event type, or `TYPE=DURATION` for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatenessSetting {
    pub ty: Option<EventType>,
    pub ms: i64,
}

/// Parses a [`LatenessSetting`]; zero is allowed (no event may follow a later one).
pub fn lateness_setting(text: &str) -> Result<LatenessSetting, String> {
    let (ty, duration) = match text.split_once('=') {
        Some((name, duration)) => {
            let ty = EventType::from_name(name.trim()).ok_or_else(|| {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
                format!(
                    "`{}` is not an event type (known: {})",
                    name.trim(),
                    known.join(", ")
                )
            })?;
            (Some(ty), duration)
        }
        None => (None, text),
    };
    let ms = parse_duration_or_zero(duration)?;
    if ms > MAX_DURATION_MS {
        return Err(format!(
            "`{}` is longer than the longest accepted, {} (100 years)",
            duration.trim(),
            format_duration(MAX_DURATION_MS)
        ));
    }
    Ok(LatenessSetting { ty, ms })
}

/// `base` (the configuration's) changed by the `--allowed-lateness` settings: a bare duration
/// replaces every type's lateness, then each `TYPE=DURATION` sets its type's, whatever their
/// order on the command line.
pub fn apply_lateness(base: Lateness, settings: &[LatenessSetting]) -> Lateness {
    let uniform = settings.iter().rev().find(|s| s.ty.is_none());
    let start = uniform.map_or(base, |s| Lateness::uniform(s.ms));
    settings
        .iter()
        .filter_map(|s| Some((s.ty?, s.ms)))
        .fold(start, |l, (ty, ms)| l.with(ty, ms))
}

/// [`duration_ms`] as a [`Duration`].
pub fn duration(text: &str) -> Result<Duration, String> {
    let ms = duration_ms(text)?;
    // Positive and capped: the conversion cannot fail.
    Ok(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// A date written YYYY-MM-DD, four-digit years only.
pub fn date(text: &str) -> Result<NaiveDate, String> {
    let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|e| format!("expected YYYY-MM-DD: {e}"))?;
    if !YEARS.contains(&date.year()) {
        return Err(format!(
            "`{}` is outside the years 0001 to 9999",
            text.trim()
        ));
    }
    Ok(date)
}

/// A user id for `silence add` (see [`crate::import::check_user_id`]).
pub fn user(text: &str) -> Result<String, String> {
    crate::import::check_user_id(text, crate::import::MAX_USER_ID_CHARS)
        .map(|()| text.to_string())
        .map_err(|e| e.to_string())
}

/// A user id for `import whoop`, short enough for the events' ids too.
pub fn whoop_user(text: &str) -> Result<String, String> {
    crate::import::whoop::check_user(text)
        .map(|()| text.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_capped_at_a_hundred_years() {
        assert_eq!(duration_ms("24h"), Ok(86_400_000));
        assert_eq!(duration_ms("36500d"), Ok(MAX_DURATION_MS));
        let e = duration_ms("36501d").expect_err("too long");
        assert!(e.contains("longest accepted, 36500d (100 years)"), "{e}");
        let e = duration_ms("100000000d").expect_err("far too long");
        assert!(e.contains("`100000000d`"), "{e}");
        assert!(duration_ms("0s").is_err(), "zero is no duration");
        assert_eq!(duration("1500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn dates_have_four_digit_years() {
        assert_eq!(
            date("2024-05-01"),
            Ok(NaiveDate::from_ymd_opt(2024, 5, 1).expect("valid"))
        );
        assert!(date("2024-02-30").is_err());
        assert!(date("+10000-01-01").is_err());
        assert!(date("0000-12-31").is_err());
    }

    #[test]
    fn lateness_settings_replace_every_type_then_set_theirs() {
        use crate::engine::lateness::NIGHTLY_LATENESS_MS;
        let parse = |t: &str| lateness_setting(t).unwrap_or_else(|e| panic!("{t}: {e}"));
        let hr = EventType::HeartRate;
        let sleep = EventType::SleepEpisode;
        assert_eq!(parse("0ms"), LatenessSetting { ty: None, ms: 0 });
        assert_eq!(
            parse(" sleep_episode =3d"),
            LatenessSetting {
                ty: Some(sleep),
                ms: 3 * 86_400_000
            }
        );
        assert!(lateness_setting("sleep=1h")
            .unwrap_err()
            .contains("not an event type"));
        assert!(lateness_setting("heart_rate=1 h").is_err());
        assert!(lateness_setting("36501d").unwrap_err().contains("longer"));
        // Nothing given: the configuration's.
        assert_eq!(
            apply_lateness(Lateness::default(), &[]),
            Lateness::default()
        );
        // A type alone keeps the others as configured.
        let l = apply_lateness(Lateness::default(), &[parse("heart_rate=5m")]);
        assert_eq!((l.of(hr), l.of(sleep)), (300_000, NIGHTLY_LATENESS_MS));
        // A bare duration is every type's, whichever side of a typed one it is on.
        for settings in [
            [parse("sleep_episode=3d"), parse("2h")],
            [parse("2h"), parse("sleep_episode=3d")],
        ] {
            let l = apply_lateness(Lateness::default(), &settings);
            assert_eq!((l.of(hr), l.of(sleep)), (7_200_000, 3 * 86_400_000));
            // The nightly default is replaced too.
            assert_eq!(l.of(EventType::RestingHeartRate), 7_200_000);
        }
    }
}
