//! WHOOP import: a "physiological_cycles" CSV export into Vigil nightly events.
//!
//! A WHOOP export has one row per physiological cycle (roughly one day, from falling asleep to
//! falling asleep), newest first. The first row is usually the still-open current cycle (empty
//! "Cycle end time"); its sleep has already ended, so it is a normal night.
//!
//! # Nights and times
//!
//! Every row with a "Wake onset" is one night. The CSV times are local wall-clock times in the
//! row's "Cycle timezone" (`UTC+03:00`, `UTC-05:00`, `UTCZ` for UTC), so each time is built as
//! that local time with that fixed offset. The offset is kept in [`EventTime`], which makes the
//! event's local date the night: a wake onset of `00:30` at `UTC+03:00` belongs to that local
//! date, not to the previous UTC date. Rows carry their own offset, so a DST change or a trip
//! between rows needs no time-zone database.
//!
//! # Events
//!
//! Each night emits, at the wake onset, one event per metric present in the row (an empty cell
//! emits nothing of that type):
//!
//! | event type               | from                                                        |
//! |--------------------------|-------------------------------------------------------------|
//! | `heart_rate_variability` | `rmssd` = "Heart rate variability (ms)"                     |
//! | `resting_heart_rate`     | `heart_rate` = "Resting heart rate (bpm)"                   |
//! | `sleep_episode`          | `total_sleep_time` = "Asleep duration (min)" (required), `sleep_onset` = "Sleep onset", `time_in_bed` = "In bed duration (min)", `sleep_maintenance_efficiency_percentage` = "Sleep efficiency %", `wake_after_sleep_onset` = "Awake duration (min)" |
//! | `oxygen_saturation`      | "Blood oxygen %"                                            |
//! | `body_temperature`       | "Skin temp (celsius)", `measurement_location` = `"skin"`    |
//! | `respiratory_rate`       | "Respiratory rate (rpm)"                                    |
//!
//! Events have `source = "whoop"`, the given user id, and the deterministic id
//! `whoop:{user}:{type}:{wake onset in RFC 3339}`, so re-importing an export yields the same ids.
//! They are returned sorted by time (stable).
//!
//! # What is skipped, and reported
//!
//! [`WhoopImport::skipped_rows`] lists `(CSV line, reason)` for everything that was in the file
//! but not imported; one row may have several entries.
//!
//! - A row without a wake onset that still has metric values is reported; a placeholder row
//!   with no metric values (a cycle without a recorded sleep) is skipped silently, since there
//!   is nothing to lose.
//! - A row whose timezone or wake onset cannot be parsed, or whose wake onset is before 2000
//!   (the decoder refuses such times), is reported and skipped whole.
//! - A value that is not a number, or lies outside the range the event schema allows (read from
//!   the schemas themselves, so the two cannot drift), is reported and left out: the whole event
//!   for a required field, just that field for an optional field of the sleep episode. So is
//!   a sleep onset after the wake onset (or before 2000), and an in-bed duration shorter than
//!   the asleep duration: the decoder refuses such episodes.
//! - A row with the same wake onset as an earlier row is reported as a duplicate (concatenated
//!   exports overlap); the first one wins.
//! - A row marked as a nap (a "Nap" column, as in `sleeps.csv`) is reported and skipped: a nap
//!   is not the night.
//!
//! # Header variants
//!
//! Headers are matched after normalising them (lowercase, `%` read as `pct`, punctuation to
//! `_`, trailing unit words such as `ms`, `bpm`, `min`, `pct`, `celsius`, `rpm` dropped), so the
//! export's "Heart rate variability (ms)" and a snake_case `heart_rate_variability_ms` are the
//! same column. A UTF-8 BOM, CRLF line ends, quoted fields, surrounding spaces, times with or
//! without seconds and with a `T` or a space between date and time are all accepted.
//!
//! # Layout
//!
//! - `columns`: which header is which column, whatever its spelling;
//! - `night`: one row into one night's events, with what was left out and why;
//! - `cells`: the text of a cell as an offset, a local time or a number.

mod cells;
mod columns;
mod night;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::{check_user_id, UserIdError, MAX_USER_ID_CHARS};
use crate::event::{Event, EventTime, EventType};
use columns::Columns;
use night::{Ranges, RowConverter};

/// The `source` of every imported event.
pub const SOURCE: &str = "whoop";

/// The events of one export, and what was left out of them.
#[derive(Clone, Debug, Default)]
pub struct WhoopImport {
    /// Sorted by time (stable).
    pub events: Vec<Event>,
    /// Data rows read (the header not counted).
    pub rows: usize,
    /// `(1-based CSV line, reason)` for each row or value not imported; see the module docs.
    pub skipped_rows: Vec<(usize, String)>,
}

/// Why an export could not be imported at all. Problems confined to a row are not errors; they
/// end up in [`WhoopImport::skipped_rows`].
#[derive(Debug, Error)]
pub enum WhoopError {
    #[error("cannot open {}: {error}", path.display())]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot read the WHOOP export at line {line}: {error}")]
    Read { line: u64, error: std::io::Error },
    #[error("CSV syntax error at line {line}: {message}")]
    Csv { line: u64, message: String },
    #[error(
        "not a WHOOP physiological_cycles export: missing column(s) {}; headers found: {}",
        quoted_list(.missing),
        if .found.is_empty() { "(none)".to_string() } else { quoted_list(.found) }
    )]
    MissingColumns {
        /// The required columns not found, by their names in WHOOP's own export.
        missing: Vec<String>,
        /// The header row as found (trimmed).
        found: Vec<String>,
    },
    /// The user id cannot be used (see [`check_user`]).
    #[error(transparent)]
    User(#[from] UserIdError),
    /// An error of [`import_whoop`] while importing the file at `path`.
    #[error("{}: {error}", path.display())]
    File {
        path: PathBuf,
        error: Box<WhoopError>,
    },
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The longest a time is in an event id: RFC 3339 with nanoseconds and an offset,
/// `2024-05-01T07:12:00.123456789+02:00`.
const LONGEST_ID_TIME: usize = 35;

/// Checks the user id an import gives its events: what [`check_user_id`] refuses, and ids so
/// long that the events' ids (`whoop:{user}:{type}:{time}`) would exceed the 256 characters
/// the event schema allows, which `vigil run` would dead-letter.
pub fn check_user(user_id: &str) -> Result<(), UserIdError> {
    let longest_type = EventType::ALL
        .iter()
        .map(|t| t.name().len())
        .max()
        .unwrap_or(0);
    let rest_of_id = SOURCE.len() + ":".len() * 3 + longest_type + LONGEST_ID_TIME;
    check_user_id(user_id, MAX_USER_ID_CHARS.saturating_sub(rest_of_id))
}

/// Imports a WHOOP physiological_cycles CSV export for `user_id`.
pub fn import_whoop(reader: impl Read, user_id: &str) -> Result<WhoopImport, WhoopError> {
    check_user(user_id)?;
    let mut csv = csv::ReaderBuilder::new()
        // Rows that lost trailing empty cells (some tools drop them) are still good rows.
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let found: Vec<String> = csv
        .byte_headers()
        .map_err(|e| csv_error(e, 1))?
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim_start_matches('\u{feff}')
                .trim()
                .to_string()
        })
        .collect();
    let columns = Columns::locate(&found)?;
    let converter = RowConverter {
        columns: &columns,
        ranges: Ranges::from_schemas(),
        user_id,
    };

    let mut import = WhoopImport::default();
    let mut wake_onsets: HashMap<EventTime, usize> = HashMap::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let line_before = csv.position().line();
        match csv.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(e, line_before)),
        }
        import.rows += 1;
        let line = record
            .position()
            .map_or(line_before, |p| p.line())
            .try_into()
            .unwrap_or(usize::MAX);
        let mut notes = Vec::new();
        match converter.convert(&record, &mut notes) {
            Ok(Some(night)) => match wake_onsets.get(&night.wake_onset) {
                Some(&first) => {
                    // Its values are not imported either way; one reason is enough.
                    notes.clear();
                    notes.push(format!(
                        "duplicate of line {first} (same wake onset {}); not imported",
                        night.wake_onset
                    ));
                }
                None => {
                    wake_onsets.insert(night.wake_onset, line);
                    import.events.extend(night.events);
                }
            },
            Ok(None) => {}
            Err(reason) => notes.push(reason),
        }
        import
            .skipped_rows
            .extend(notes.into_iter().map(|note| (line, note)));
    }
    import.events.sort_by_key(|e| e.time);
    Ok(import)
}

/// Imports the WHOOP physiological_cycles CSV export at `path` for `user_id`.
pub fn import_whoop_file(path: &Path, user_id: &str) -> Result<WhoopImport, WhoopError> {
    // Before the file: a user id is no problem of the file's.
    check_user(user_id)?;
    let file = std::fs::File::open(path).map_err(|error| WhoopError::Open {
        path: path.to_path_buf(),
        error,
    })?;
    import_whoop(std::io::BufReader::new(file), user_id).map_err(|error| WhoopError::File {
        path: path.to_path_buf(),
        error: Box::new(error),
    })
}

fn csv_error(error: csv::Error, fallback_line: u64) -> WhoopError {
    let line = error.position().map_or(fallback_line, |p| p.line());
    if error.is_io_error() {
        if let csv::ErrorKind::Io(error) = error.into_kind() {
            return WhoopError::Read { line, error };
        }
        return WhoopError::Csv {
            line,
            message: "I/O error".to_string(),
        };
    }
    WhoopError::Csv {
        line,
        message: error.to_string(),
    }
}
