//! What an event must satisfy beyond the shape its JSON Schema gives it.
//!
//! - Identifiers (`id`, `user_id`, `source`) and the free text of payloads (a symptom, a
//!   device's name…) are not blank and hold no control character: they key state, name Redis
//!   keys and are stored as PostgreSQL text, which cannot hold a NUL. The schema says so with
//!   [`IDENTIFIER_PATTERN`]; [`identifier_problem`] is the same rule in Rust, for the fast
//!   path and for the reason given (a test holds the two equal).
//! - Checks a schema cannot express, across fields or against the calendar ([`check`]): both
//!   decoding paths run them on the decoded event, so they agree by construction.

use super::{Event, EventData, EventTime};

/// The JSON Schema `pattern` of an identifier: at least one character that is neither
/// whitespace nor a control character, and no control character anywhere. Control characters
/// are Unicode's `Cc` (what `char::is_control` tests); whitespace is Unicode's `White_Space`
/// (what `str::trim` removes) less the controls among it. Spelled as explicit ranges, not
/// `\s`, because `\s` differs between regex dialects (ECMA-262 counts U+FEFF, Rust does not).
pub const IDENTIFIER_PATTERN: &str = concat!(
    r"^[^\x00-\x1F\x7F-\x9F]*",
    r"[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
    r"[^\x00-\x1F\x7F-\x9F]*$"
);

/// Why `text` is not a valid identifier, or `None` when it is.
pub fn identifier_problem(text: &str) -> Option<String> {
    // Nearly every identifier is printable ASCII with something besides spaces: decided on the
    // bytes, without decoding characters (this runs three times on every event).
    // The fold has no early exit, so it is vectorised: faster than `all` on ids this short.
    let bytes = text.as_bytes();
    let printable = bytes
        .iter()
        .fold(true, |ok, &b| ok & (b.wrapping_sub(b' ') <= b'~' - b' '));
    if printable && bytes.iter().any(|&b| b != b' ') {
        return None;
    }
    if let Some((at, c)) = text.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Some(format!(
            "contains the control character U+{:04X} (character {})",
            u32::from(c),
            at + 1
        ));
    }
    if text.trim().is_empty() {
        return Some(if text.is_empty() {
            "is empty".to_string()
        } else {
            "is blank (only whitespace)".to_string()
        });
    }
    None
}

/// No wearable data predates this: an earlier time is a clock or encoding error (an epoch of
/// zero, a year typed as two digits), and accepting it would open windows decades wide.
pub const EARLIEST_TIME: &str = "2000-01-01T00:00:00Z";

/// [`EARLIEST_TIME`] in seconds since the Unix epoch.
pub const EARLIEST_SECONDS: i64 = 946_684_800;

/// `Err` with why when `time` is earlier than [`EARLIEST_TIME`].
pub fn check_time(what: &str, time: &EventTime) -> Result<(), String> {
    if time.0.timestamp() < EARLIEST_SECONDS {
        Err(format!("{what} {time} is before 2000-01-01"))
    } else {
        Ok(())
    }
}

/// The checks beyond the schema, on a decoded event: `Err` says what is wrong, and where.
pub fn check(event: &Event) -> Result<(), String> {
    check_time("event time", &event.time).map_err(|why| format!("/time: {why}"))?;
    if let EventData::SleepEpisode(sleep) = &event.data {
        if let Some(in_bed) = sleep.time_in_bed {
            if sleep.total_sleep_time > in_bed {
                return Err(format!(
                    "/data: asleep longer than in bed: total_sleep_time {} min is more than \
                     time_in_bed {in_bed} min",
                    sleep.total_sleep_time
                ));
            }
        }
        if let Some(onset) = &sleep.sleep_onset {
            check_time("sleep onset", onset).map_err(|why| format!("/data/sleep_onset: {why}"))?;
            if onset.0 > event.time.0 {
                return Err(format!(
                    "/data/sleep_onset: the episode ends before it starts: sleep onset {onset} \
                     is after its end, the event time {}",
                    event.time
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_and_the_rust_rule_agree_on_every_character() {
        let schema = serde_json::json!({"type": "string", "pattern": IDENTIFIER_PATTERN});
        let validator = match jsonschema::validator_for(&schema) {
            Ok(v) => v,
            Err(e) => panic!("{IDENTIFIER_PATTERN}: {e}"),
        };
        let astral = ['\u{10000}', '\u{1F600}', '\u{E0001}', '\u{10FFFF}'];
        for c in (0..=0xFFFF).filter_map(char::from_u32).chain(astral) {
            for text in [
                c.to_string(),
                format!("a{c}"),
                format!("{c}a"),
                format!("{c}{c}"),
            ] {
                let json = serde_json::Value::String(text.clone());
                assert_eq!(
                    validator.is_valid(&json),
                    identifier_problem(&text).is_none(),
                    "U+{:04X} in {text:?}",
                    u32::from(c)
                );
            }
        }
        assert!(!validator.is_valid(&serde_json::json!("")));
        assert!(identifier_problem("").is_some());
    }

    #[test]
    fn problems_are_worded() {
        assert_eq!(
            identifier_problem("u\u{0}1").as_deref(),
            Some("contains the control character U+0000 (character 2)")
        );
        assert_eq!(
            identifier_problem(" \u{3000} ").as_deref(),
            Some("is blank (only whitespace)")
        );
        assert_eq!(identifier_problem("").as_deref(), Some("is empty"));
        assert_eq!(identifier_problem(" u 1 "), None);
    }

    #[test]
    fn times_before_2000_are_refused() {
        let at = |text| EventTime::parse(text).unwrap();
        assert_eq!(at(EARLIEST_TIME).0.timestamp(), EARLIEST_SECONDS);
        assert!(check_time("t", &at(EARLIEST_TIME)).is_ok());
        assert!(check_time("t", &at("2000-01-01T01:00:00+01:00")).is_ok());
        assert_eq!(
            check_time("event time", &at("1999-12-31T23:59:59.999Z")),
            Err("event time 1999-12-31T23:59:59.999Z is before 2000-01-01".to_string())
        );
        // The instant decides, not the local date.
        assert!(check_time("t", &at("2000-01-01T00:30:00+01:00")).is_err());
    }
}
