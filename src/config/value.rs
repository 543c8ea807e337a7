//! What a value must be beyond its type, checked as the file is read (`deserialize_with`), so
//! that a bad value is reported at its own file:line:column like a wrong type is.
//!
//! The messages follow the key's path (`kafka.group: is empty`), which the loader adds.

use std::ops::RangeInclusive;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// A string with something other than spaces in it; kept as written.
pub fn non_blank<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.trim().is_empty() {
        return Err(D::Error::custom("is empty"));
    }
    Ok(text)
}

/// [`non_blank`] for a key that may be left out.
pub fn non_blank_or_none<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    non_blank(deserializer).map(Some)
}

/// A whole number in `range`, else "must be {expected}". Read as `i64` first, so that `-1` and
/// `100000` get this message too rather than the narrower integer type's.
pub fn whole_number<'de, D: Deserializer<'de>>(
    deserializer: D,
    range: RangeInclusive<i64>,
    expected: &str,
) -> Result<i64, D::Error> {
    let n = i64::deserialize(deserializer)?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(D::Error::custom(format!("must be {expected}")))
    }
}
