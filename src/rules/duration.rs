//! Durations and windows as rule authors write them: `"10m"`, `"48h"`, `"last 7 nights"`.
//!
//! Parsed by hand rather than with humantime: humantime reads `M` as months and `m` as minutes,
//! a trap in health rules; here units are lower-case only and listed in every error.

use std::fmt;

/// Units accepted in durations, with their length in milliseconds.
pub const UNITS: &[(&str, i64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
];

const UNIT_HELP: &str =
    "write a whole number and a unit: ms, s, m (minutes), h, d, w — e.g. \"10m\", \"48h\", \"7d\"";

/// Parses `"90s"`, `"10m"`, `"1h30m"` into milliseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let total = parse_total(text)?;
    if total == 0 {
        return Err(format!(
            "`{}` is zero; a duration must be positive",
            text.trim()
        ));
    }
    Ok(total)
}

/// [`parse_duration`] for settings where not waiting is valid: zero (`"0"`, `"0ms"`) too.
pub fn parse_duration_or_zero(text: &str) -> Result<i64, String> {
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b == b'0') {
        return Ok(0);
    }
    parse_total(text)
}

/// The milliseconds `text` adds up to, zero included.
fn parse_total(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("empty duration; {UNIT_HELP}"));
    }
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!("`{text}` is not a duration; {UNIT_HELP}"));
        }
        let number: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{}` is too large", &rest[..digits]))?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        let Some(&(_, millis)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            let hint = if unit.is_empty() {
                "a unit is missing".to_string()
            } else if unit == "M" {
                "unit `M` is not accepted (units are lower-case, `m` is minutes, and months are \
                 not a unit)"
                    .to_string()
            } else if unit.chars().any(|c| c.is_ascii_uppercase()) {
                format!("unit `{unit}` is not accepted (units are lower-case)")
            } else {
                format!("unit `{unit}` is not known")
            };
            return Err(format!("{hint} in `{text}`; {UNIT_HELP}"));
        };
        total = number
            .checked_mul(millis)
            .and_then(|m| total.checked_add(m))
            .ok_or_else(|| format!("`{text}` is too long"))?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Formats milliseconds back into the shortest duration text.
pub fn format_duration(millis: i64) -> String {
    for &(unit, len) in UNITS.iter().rev() {
        if millis % len == 0 {
            return format!("{}{unit}", millis / len);
        }
    }
    format!("{millis}ms")
}

/// Which events a statistic aggregates, relative to the event being evaluated (time `t`,
/// local night `n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    /// `"last N nights"` / `"previous N nights"`: one value per local calendar date (a second
    /// value for a date replaces the first); the N dates ending with `n` (last) or before it
    /// (previous).
    Nights { count: u32, include_current: bool },
    /// `"last N days"` / `"previous N days"`: every event on those local calendar dates.
    Days { count: u32, include_current: bool },
    /// `"10m"` or `"last 10m"`: events with time in `(t − span, t]`.
    Sliding { span_ms: i64 },
    /// `"tumbling 1h"`: events of the aligned bucket (UTC) holding `t`, up to `t`.
    Tumbling { span_ms: i64 },
    /// `"last N events"`: the N most recent events up to `t`.
    Events { count: u32 },
}

impl Window {
    /// True when the window is measured in local calendar dates.
    pub fn is_calendar(&self) -> bool {
        matches!(self, Window::Nights { .. } | Window::Days { .. })
    }

    /// How many dates back from the current night a calendar window reaches (0 = only today).
    pub fn days_back(&self) -> i64 {
        match self {
            Window::Nights {
                count,
                include_current,
            }
            | Window::Days {
                count,
                include_current,
            } => i64::from(*count) - i64::from(*include_current),
            _ => 0,
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let which = |current: bool| if current { "last" } else { "previous" };
        match self {
            Window::Nights {
                count,
                include_current,
            } => {
                write!(f, "{} {count} nights", which(*include_current))
            }
            Window::Days {
                count,
                include_current,
            } => {
                write!(f, "{} {count} days", which(*include_current))
            }
            Window::Sliding { span_ms } => write!(f, "last {}", format_duration(*span_ms)),
            Window::Tumbling { span_ms } => write!(f, "tumbling {}", format_duration(*span_ms)),
            Window::Events { count } => write!(f, "last {count} events"),
        }
    }
}

const WINDOW_HELP: &str =
    "windows are \"last 7 nights\", \"previous 60 nights\", \"last 3 days\", \
    \"10m\" (sliding), \"tumbling 1h\" or \"last 20 events\"";

/// Parses a window specification.
pub fn parse_window(text: &str) -> Result<Window, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let count = |word: &str| -> Result<u32, String> {
        match word.parse::<u32>() {
            Ok(0) | Err(_) => Err(format!(
                "`{word}` is not a positive whole number; {WINDOW_HELP}"
            )),
            Ok(n) if n > 100_000 => Err(format!("{n} is too large for a window")),
            Ok(n) => Ok(n),
        }
    };
    match words.as_slice() {
        [which @ ("last" | "previous"), n, unit] => {
            let include_current = *which == "last";
            match *unit {
                "night" | "nights" => Ok(Window::Nights {
                    count: count(n)?,
                    include_current,
                }),
                "day" | "days" => Ok(Window::Days {
                    count: count(n)?,
                    include_current,
                }),
                "event" | "events" if include_current => Ok(Window::Events { count: count(n)? }),
                other => Err(format!("unknown window unit `{other}`; {WINDOW_HELP}")),
            }
        }
        ["last", span] | [span] => Ok(Window::Sliding {
            span_ms: parse_duration(span)?,
        }),
        ["tumbling", span] => Ok(Window::Tumbling {
            span_ms: parse_duration(span)?,
        }),
        _ => Err(format!("`{text}` is not a window; {WINDOW_HELP}")),
    }
}

/// A count of nights or a span of time, for streaks, cooldowns and `within`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    Nights(u32),
    Events(u32),
    Time(i64),
}

impl fmt::Display for Extent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Extent::Nights(n) => write!(f, "{n} nights"),
            Extent::Events(n) => write!(f, "{n} events"),
            Extent::Time(ms) => f.write_str(&format_duration(*ms)),
        }
    }
}

/// Parses `"3 nights"`, `"5 events"` or a duration such as `"6h"`.
pub fn parse_extent(text: &str) -> Result<Extent, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [n, unit @ ("night" | "nights" | "event" | "events")] => {
            let n: u32 = n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{n}` is not a positive whole number"))?;
            Ok(if unit.starts_with("night") { Extent::Nights(n) } else { Extent::Events(n) })
        }
        [span] => parse_duration(span).map(Extent::Time),
        _ => Err(format!(
            "`{text}` is not a length; write \"3 nights\", \"5 events\" or a duration such as \"6h\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(600_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("48h"), Ok(172_800_000));
        assert_eq!(parse_duration("7d"), Ok(604_800_000));
        assert!(parse_duration("10M").unwrap_err().contains("lower-case"));
        assert!(parse_duration("10")
            .unwrap_err()
            .contains("unit is missing"));
        assert!(parse_duration("0s").unwrap_err().contains("zero"));
        assert!(parse_duration("ten minutes").is_err());
        assert_eq!(format_duration(172_800_000), "2d");
        assert_eq!(format_duration(5_400_000), "90m");
    }

    #[test]
    fn windows() {
        assert_eq!(
            parse_window("last 7 nights"),
            Ok(Window::Nights {
                count: 7,
                include_current: true
            })
        );
        assert_eq!(
            parse_window("previous 60 nights"),
            Ok(Window::Nights {
                count: 60,
                include_current: false
            })
        );
        assert_eq!(
            parse_window("10m"),
            Ok(Window::Sliding { span_ms: 600_000 })
        );
        assert_eq!(
            parse_window("last 10m"),
            Ok(Window::Sliding { span_ms: 600_000 })
        );
        assert_eq!(
            parse_window("tumbling 1h"),
            Ok(Window::Tumbling { span_ms: 3_600_000 })
        );
        assert_eq!(
            parse_window("last 20 events"),
            Ok(Window::Events { count: 20 })
        );
        assert!(parse_window("previous 3 events").is_err());
        assert!(parse_window("last 0 nights").is_err());
        assert!(parse_window("last seven nights").is_err());
        assert_eq!(
            Window::Nights {
                count: 60,
                include_current: false
            }
            .days_back(),
            60
        );
        assert_eq!(
            Window::Nights {
                count: 7,
                include_current: true
            }
            .days_back(),
            6
        );
        for text in [
            "last 7 nights",
            "previous 60 days",
            "last 10m",
            "tumbling 1h",
            "last 5 events",
        ] {
            assert_eq!(parse_window(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn extents() {
        assert_eq!(parse_extent("3 nights"), Ok(Extent::Nights(3)));
        assert_eq!(parse_extent("2 events"), Ok(Extent::Events(2)));
        assert_eq!(parse_extent("6h"), Ok(Extent::Time(21_600_000)));
        assert!(parse_extent("0 nights").is_err());
        assert!(parse_extent("three nights").is_err());
    }
}
