//! The text of a cell as an offset, a local wall-clock time, or a number.

use chrono::{FixedOffset, NaiveDateTime, Timelike};

use crate::event::EventTime;

/// `UTC+03:00`, `UTC-05:00`, `UTC-0430`, `UTC+3`, `UTCZ`, `UTC`, `Z`, `+02:00`.
pub(super) fn parse_offset(text: &str) -> Option<FixedOffset> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let rest = ["UTC", "GMT"]
        .iter()
        .find_map(|p| {
            text.get(..p.len())
                .filter(|head| head.eq_ignore_ascii_case(p))
                .map(|_| &text[p.len()..])
        })
        .unwrap_or(text)
        .trim();
    if rest.is_empty() || rest.eq_ignore_ascii_case("z") {
        return FixedOffset::east_opt(0);
    }
    let sign = match rest.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = &rest[1..];
    let (hours, minutes) = match digits.split_once(':') {
        Some((h, m)) => (h, m),
        // Checked before splitting: a byte index into non-ASCII text could panic.
        None if digits.len() == 4 && digits.is_ascii() => digits.split_at(2),
        None => (digits, "0"),
    };
    let all_digits =
        |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(hours) || !all_digits(minutes) {
        return None;
    }
    let hours: i32 = hours.parse().ok()?;
    let minutes: i32 = minutes.parse().ok()?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// A local wall-clock time (`2022-11-10 06:55:10`, `2022-11-10T06:55`) in `offset`.
pub(super) fn parse_local_time(text: &str, offset: FixedOffset) -> Option<EventTime> {
    let text = text.trim().replacen('T', " ", 1);
    let naive = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(&text, format).ok())
        // chrono reads second 60 as a leap second in any minute; RFC 3339 allows one only at
        // 23:59:60 UTC, so the decoder refuses the event time it would give. WHOOP writes none.
        .filter(|naive| naive.nanosecond() < 1_000_000_000)?;
    naive.and_local_timezone(offset).single().map(EventTime)
}

/// A finite number; a decimal comma and a trailing `%` are tolerated.
pub(super) fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim().trim_end_matches('%').trim_end();
    text.parse::<f64>()
        .ok()
        .or_else(|| text.replace(',', ".").parse::<f64>().ok())
        .filter(|v| v.is_finite())
}
