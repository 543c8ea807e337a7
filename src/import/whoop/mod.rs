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

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{FixedOffset, NaiveDateTime, Timelike};
use thiserror::Error;

use super::{check_user_id, UserIdError, MAX_USER_ID_CHARS};
use crate::event::plausible::check_time;
use crate::event::{
    BodyTemperatureData, Event, EventData, EventTime, EventType, HeartRateVariabilityData,
    OxygenSaturationData, RespiratoryRateData, RestingHeartRateData, SleepEpisodeData,
};

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

/// The columns the importer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Col {
    WakeOnset,
    Timezone,
    SleepOnset,
    Hrv,
    RestingHr,
    Asleep,
    InBed,
    Efficiency,
    Awake,
    BloodOxygen,
    SkinTemp,
    RespiratoryRate,
    Nap,
}

struct ColumnSpec {
    col: Col,
    /// The header in WHOOP's own export, for messages.
    whoop_name: &'static str,
    /// Accepted headers after [`normalise_header`].
    names: &'static [&'static str],
}

const COLUMNS: &[ColumnSpec] = &[
    ColumnSpec {
        col: Col::WakeOnset,
        whoop_name: "Wake onset",
        names: &["wake_onset"],
    },
    ColumnSpec {
        col: Col::Timezone,
        whoop_name: "Cycle timezone",
        names: &["cycle_timezone", "timezone", "time_zone"],
    },
    ColumnSpec {
        col: Col::SleepOnset,
        whoop_name: "Sleep onset",
        names: &["sleep_onset"],
    },
    ColumnSpec {
        col: Col::Hrv,
        whoop_name: "Heart rate variability (ms)",
        names: &["heart_rate_variability", "hrv"],
    },
    ColumnSpec {
        col: Col::RestingHr,
        whoop_name: "Resting heart rate (bpm)",
        names: &["resting_heart_rate", "rhr"],
    },
    ColumnSpec {
        col: Col::Asleep,
        whoop_name: "Asleep duration (min)",
        names: &["asleep_duration"],
    },
    ColumnSpec {
        col: Col::InBed,
        whoop_name: "In bed duration (min)",
        names: &["in_bed_duration"],
    },
    ColumnSpec {
        col: Col::Efficiency,
        whoop_name: "Sleep efficiency %",
        names: &["sleep_efficiency"],
    },
    ColumnSpec {
        col: Col::Awake,
        whoop_name: "Awake duration (min)",
        names: &["awake_duration"],
    },
    ColumnSpec {
        col: Col::BloodOxygen,
        whoop_name: "Blood oxygen %",
        names: &["blood_oxygen", "spo2"],
    },
    ColumnSpec {
        col: Col::SkinTemp,
        whoop_name: "Skin temp (celsius)",
        names: &["skin_temp", "skin_temperature"],
    },
    ColumnSpec {
        col: Col::RespiratoryRate,
        whoop_name: "Respiratory rate (rpm)",
        names: &["respiratory_rate"],
    },
    ColumnSpec {
        col: Col::Nap,
        whoop_name: "Nap",
        names: &["nap"],
    },
];

const REQUIRED: &[Col] = &[Col::WakeOnset, Col::Timezone];

/// The columns that produce events; an export needs at least one of them.
const METRICS: &[Col] = &[
    Col::Hrv,
    Col::RestingHr,
    Col::Asleep,
    Col::InBed,
    Col::Efficiency,
    Col::Awake,
    Col::BloodOxygen,
    Col::SkinTemp,
    Col::RespiratoryRate,
];

/// Words that name a unit rather than the quantity, dropped from the end of a header.
const UNIT_WORDS: &[&str] = &[
    "ms", "bpm", "min", "mins", "minutes", "pct", "percent", "celsius", "c", "degc", "rpm", "cal",
    "kcal",
];

/// `"Heart rate variability (ms)"` and `"heart_rate_variability_ms"` both become
/// `"heart_rate_variability"`.
fn normalise_header(header: &str) -> String {
    let lower = header
        .trim_start_matches('\u{feff}')
        .to_lowercase()
        .replace('%', " pct ");
    let mut words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    while words.len() > 1 && words.last().is_some_and(|w| UNIT_WORDS.contains(w)) {
        words.pop();
    }
    words.join("_")
}

/// Where each [`Col`] is in the header row.
struct Columns {
    index: HashMap<Col, usize>,
    headers: Vec<String>,
}

impl Columns {
    fn locate(headers: &[String]) -> Result<Columns, WhoopError> {
        let mut index = HashMap::new();
        for (i, header) in headers.iter().enumerate() {
            let name = normalise_header(header);
            if let Some(spec) = COLUMNS.iter().find(|s| s.names.contains(&name.as_str())) {
                // A repeated column keeps its first occurrence, like the rest of the import.
                index.entry(spec.col).or_insert(i);
            }
        }
        let mut missing: Vec<String> = REQUIRED
            .iter()
            .filter(|col| !index.contains_key(col))
            .map(|&col| whoop_name(col).to_string())
            .collect();
        if !METRICS.iter().any(|col| index.contains_key(col)) {
            let names: Vec<&str> = METRICS.iter().map(|&col| whoop_name(col)).collect();
            missing.push(format!("at least one of: {}", names.join(", ")));
        }
        if !missing.is_empty() {
            return Err(WhoopError::MissingColumns {
                missing,
                found: headers.to_vec(),
            });
        }
        Ok(Columns {
            index,
            headers: headers.to_vec(),
        })
    }

    /// The header of `col` as written in this file, for messages.
    fn header(&self, col: Col) -> &str {
        self.index
            .get(&col)
            .and_then(|&i| self.headers.get(i))
            .map_or_else(|| whoop_name(col), String::as_str)
    }
}

fn whoop_name(col: Col) -> &'static str {
    COLUMNS
        .iter()
        .find(|s| s.col == col)
        .map_or("?", |s| s.whoop_name)
}

/// `(minimum, maximum)` of a numeric field, each when the schema sets one.
type Bounds = (Option<f64>, Option<f64>);

/// The numeric ranges of the event schemas, so values the decoder would reject are never
/// emitted.
struct Ranges(HashMap<(EventType, &'static str), Bounds>);

impl Ranges {
    fn from_schemas() -> Ranges {
        let mut ranges = HashMap::new();
        for &ty in EMITTED {
            let schema = ty.data_schema();
            let properties = schema.as_value().get("properties");
            for field in ty.fields() {
                let Some(property) = properties.and_then(|p| p.get(field.name)) else {
                    continue;
                };
                let bound = |key| property.get(key).and_then(serde_json::Value::as_f64);
                ranges.insert((ty, field.name), (bound("minimum"), bound("maximum")));
            }
        }
        Ranges(ranges)
    }

    fn get(&self, ty: EventType, field: &str) -> Bounds {
        self.0.get(&(ty, field)).copied().unwrap_or((None, None))
    }

    fn check(&self, ty: EventType, field: &str, value: f64) -> Result<f64, String> {
        let (min, max) = self.get(ty, field);
        if min.is_some_and(|m| value < m) || max.is_some_and(|m| value > m) {
            let show = |b: Option<f64>| b.map_or(String::new(), |b| b.to_string());
            return Err(format!(
                "outside the range {}..={} of {}.{field}",
                show(min),
                show(max),
                ty.name()
            ));
        }
        Ok(value)
    }
}

const EMITTED: &[EventType] = &[
    EventType::HeartRateVariability,
    EventType::RestingHeartRate,
    EventType::SleepEpisode,
    EventType::OxygenSaturation,
    EventType::BodyTemperature,
    EventType::RespiratoryRate,
];

/// The events of one row, and the wake onset they share.
struct Night {
    wake_onset: EventTime,
    events: Vec<Event>,
}

struct RowConverter<'a> {
    columns: &'a Columns,
    ranges: Ranges,
    user_id: &'a str,
}

impl RowConverter<'_> {
    /// `Ok(None)`: nothing to import (a placeholder row); `Err`: the row is skipped, with why.
    /// Values left out of an imported row are noted in `notes`.
    fn convert(
        &self,
        record: &csv::ByteRecord,
        notes: &mut Vec<String>,
    ) -> Result<Option<Night>, String> {
        let headers = self.columns.headers.len();
        if record.len() > headers && record.iter().skip(headers).any(|f| !f.is_empty()) {
            return Err(format!(
                "{} fields but the header has {headers}; row not imported",
                record.len()
            ));
        }
        let row = Row {
            record,
            columns: self.columns,
        };
        if row.text(Col::Nap)?.eq_ignore_ascii_case("true") {
            return Err("a nap, not a night's sleep; not imported".to_string());
        }

        let wake_text = row.text(Col::WakeOnset)?;
        if wake_text.is_empty() {
            let values = METRICS
                .iter()
                .filter(|&&col| row.text(col).map_or(true, |t| !t.is_empty()))
                .count();
            return match values {
                0 => Ok(None),
                n => Err(format!(
                    "no {:?}, so no night for its {n} metric value(s); not imported",
                    self.columns.header(Col::WakeOnset)
                )),
            };
        }
        let tz_text = row.text(Col::Timezone)?;
        let offset = parse_offset(tz_text).ok_or_else(|| {
            format!(
                "{} {tz_text:?} is not UTC±HH:MM or UTCZ; row not imported",
                self.columns.header(Col::Timezone)
            )
        })?;
        let wake_onset = parse_local_time(wake_text, offset).ok_or_else(|| {
            format!(
                "{} {wake_text:?} is not a date and time (YYYY-MM-DD HH:MM[:SS]); \
                 row not imported",
                self.columns.header(Col::WakeOnset)
            )
        })?;
        // The decoder refuses such times; a row dated before 2000 is a corrupt export.
        check_time("wake onset", &wake_onset).map_err(|_| {
            format!(
                "{} {wake_text:?} is before 2000-01-01; row not imported",
                self.columns.header(Col::WakeOnset)
            )
        })?;

        let mut night = Night {
            wake_onset,
            events: Vec::new(),
        };
        let mut emit = |data: EventData| {
            night.events.push(Event {
                id: format!(
                    "whoop:{}:{}:{}",
                    self.user_id,
                    data.event_type().name(),
                    wake_onset.to_rfc3339()
                ),
                user_id: self.user_id.to_string(),
                source: SOURCE.to_string(),
                time: wake_onset,
                data,
            })
        };
        let value = |col, ty, field| self.value(&row, col, ty, field);
        const NO_EVENT: &str = "no event of that type for this night";

        if let Some(rmssd) = noted(
            notes,
            NO_EVENT,
            value(Col::Hrv, EventType::HeartRateVariability, "rmssd"),
        ) {
            emit(EventData::HeartRateVariability(HeartRateVariabilityData {
                rmssd,
                sdnn: None,
            }));
        }
        if let Some(heart_rate) = noted(
            notes,
            NO_EVENT,
            value(Col::RestingHr, EventType::RestingHeartRate, "heart_rate"),
        ) {
            emit(EventData::RestingHeartRate(RestingHeartRateData {
                heart_rate,
            }));
        }
        let sleep = EventType::SleepEpisode;
        if let Some(total_sleep_time) = noted(
            notes,
            NO_EVENT,
            value(Col::Asleep, sleep, "total_sleep_time"),
        ) {
            const LEFT_OUT: &str = "left out of the sleep episode";
            // What the decoder checks across fields: the episode starts before it ends, and no
            // one sleeps longer than they are in bed.
            let onset = self.time(&row, Col::SleepOnset, offset).and_then(|onset| {
                let header = self.columns.header(Col::SleepOnset);
                match onset {
                    Some(t) if t.0 > wake_onset.0 => {
                        Err(format!("{header} {t} is after the wake onset {wake_onset}"))
                    }
                    Some(t) if check_time("sleep onset", &t).is_err() => {
                        Err(format!("{header} {t} is before 2000-01-01"))
                    }
                    other => Ok(other),
                }
            });
            let sleep_onset = noted(notes, LEFT_OUT, onset);
            let in_bed = value(Col::InBed, sleep, "time_in_bed").and_then(|in_bed| match in_bed {
                Some(minutes) if minutes < total_sleep_time => Err(format!(
                    "{} {minutes} is less than the {} {total_sleep_time}",
                    self.columns.header(Col::InBed),
                    self.columns.header(Col::Asleep)
                )),
                other => Ok(other),
            });
            let time_in_bed = noted(notes, LEFT_OUT, in_bed);
            let efficiency = noted(
                notes,
                LEFT_OUT,
                value(
                    Col::Efficiency,
                    sleep,
                    "sleep_maintenance_efficiency_percentage",
                ),
            );
            let wake_after_sleep_onset = noted(
                notes,
                LEFT_OUT,
                value(Col::Awake, sleep, "wake_after_sleep_onset"),
            );
            emit(EventData::SleepEpisode(SleepEpisodeData {
                sleep_onset,
                total_sleep_time,
                time_in_bed,
                sleep_maintenance_efficiency_percentage: efficiency,
                latency_to_sleep_onset: None,
                wake_after_sleep_onset,
                number_of_awakenings: None,
                is_main_sleep: None,
            }));
        }
        if let Some(oxygen_saturation) = noted(
            notes,
            NO_EVENT,
            value(
                Col::BloodOxygen,
                EventType::OxygenSaturation,
                "oxygen_saturation",
            ),
        ) {
            emit(EventData::OxygenSaturation(OxygenSaturationData {
                oxygen_saturation,
            }));
        }
        if let Some(body_temperature) = noted(
            notes,
            NO_EVENT,
            value(
                Col::SkinTemp,
                EventType::BodyTemperature,
                "body_temperature",
            ),
        ) {
            emit(EventData::BodyTemperature(BodyTemperatureData {
                body_temperature,
                measurement_location: Some("skin".to_string()),
            }));
        }
        if let Some(respiratory_rate) = noted(
            notes,
            NO_EVENT,
            value(
                Col::RespiratoryRate,
                EventType::RespiratoryRate,
                "respiratory_rate",
            ),
        ) {
            emit(EventData::RespiratoryRate(RespiratoryRateData {
                respiratory_rate,
            }));
        }
        Ok(Some(night))
    }

    /// The local time in `col`, in the row's `offset`: `Ok(None)` when the cell is empty.
    fn time(
        &self,
        row: &Row<'_>,
        col: Col,
        offset: FixedOffset,
    ) -> Result<Option<EventTime>, String> {
        let text = row.text(col)?;
        if text.is_empty() {
            return Ok(None);
        }
        parse_local_time(text, offset).map(Some).ok_or_else(|| {
            format!(
                "{} {text:?} is not a date and time",
                self.columns.header(col)
            )
        })
    }

    /// The number in `col`: `Ok(None)` when the cell is empty (or the column absent), `Err`
    /// when it is not a number the schema of `ty.field` accepts.
    fn value(
        &self,
        row: &Row<'_>,
        col: Col,
        ty: EventType,
        field: &str,
    ) -> Result<Option<f64>, String> {
        let text = row.text(col)?;
        if text.is_empty() {
            return Ok(None);
        }
        let header = self.columns.header(col);
        let number =
            parse_number(text).ok_or_else(|| format!("{header} {text:?} is not a number"))?;
        self.ranges
            .check(ty, field, number)
            .map(Some)
            .map_err(|why| format!("{header} {text} is {why}"))
    }
}

/// The value of `result`, or `None` with why noted, saying what `leaving_out` it means.
fn noted<T>(
    notes: &mut Vec<String>,
    leaving_out: &str,
    result: Result<Option<T>, String>,
) -> Option<T> {
    result.unwrap_or_else(|reason| {
        notes.push(format!("{reason}; {leaving_out}"));
        None
    })
}

/// One data row, read by column.
struct Row<'a> {
    record: &'a csv::ByteRecord,
    columns: &'a Columns,
}

impl Row<'_> {
    /// The trimmed cell of `col`; empty when the column is absent or the row is short.
    fn text(&self, col: Col) -> Result<&str, String> {
        let Some(bytes) = self
            .columns
            .index
            .get(&col)
            .and_then(|&i| self.record.get(i))
        else {
            return Ok("");
        };
        std::str::from_utf8(bytes)
            .map(str::trim)
            .map_err(|_| format!("{} is not valid UTF-8", self.columns.header(col)))
    }
}

/// `UTC+03:00`, `UTC-05:00`, `UTC-0430`, `UTC+3`, `UTCZ`, `UTC`, `Z`, `+02:00`.
fn parse_offset(text: &str) -> Option<FixedOffset> {
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
fn parse_local_time(text: &str, offset: FixedOffset) -> Option<EventTime> {
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
fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim().trim_end_matches('%').trim_end();
    text.parse::<f64>()
        .ok()
        .or_else(|| text.replace(',', ".").parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Decoder;

    /// The columns the importer reads, in the order of a real export (others are ignored).
    const HEADER: &str = "Cycle start time,Cycle end time,Cycle timezone,\
        Resting heart rate (bpm),Heart rate variability (ms),Skin temp (celsius),Blood oxygen %,\
        Sleep onset,Wake onset,Respiratory rate (rpm),Asleep duration (min),\
        In bed duration (min),Awake duration (min),Sleep efficiency %";

    fn import(csv: &str) -> WhoopImport {
        match import_whoop(csv.as_bytes(), "u1") {
            Ok(import) => import,
            Err(e) => panic!("import failed: {e}"),
        }
    }

    fn csv(rows: &[&str]) -> String {
        let mut text = format!("{HEADER}\n");
        for row in rows {
            text.push_str(row);
            text.push('\n');
        }
        text
    }

    fn of_type(import: &WhoopImport, ty: EventType) -> Vec<&Event> {
        import
            .events
            .iter()
            .filter(|e| e.event_type() == ty)
            .collect()
    }

    fn assert_sorted(events: &[Event]) {
        assert!(
            events.windows(2).all(|w| w[0].time <= w[1].time),
            "events not sorted by time"
        );
    }

    #[test]
    fn newest_first_export_with_open_cycle_comes_out_sorted() {
        let import = import(&csv(&[
            // The open current cycle: no end time, but its night is complete.
            "2022-11-10 00:00:50,,UTC-05:00,42,127,34.21,95.70,2022-11-10 00:00:50,2022-11-10 06:55:10,14.4,372,414,42,90",
            "2022-11-08 23:29:29,2022-11-10 01:00:50,UTC-04:00,46,137,33.24,95.83,2022-11-08 23:29:29,2022-11-09 06:30:03,15.1,400,420,20,96",
            "2022-11-07 22:10:00,2022-11-08 23:29:29,UTC-04:00,48,120,33.50,96.00,2022-11-07 22:10:00,2022-11-08 06:00:00,15.0,410,430,20,95",
        ]));
        assert_eq!(import.rows, 3);
        assert!(import.skipped_rows.is_empty(), "{:?}", import.skipped_rows);
        assert_eq!(import.events.len(), 18);
        assert_sorted(&import.events);
        let nights: Vec<String> = of_type(&import, EventType::HeartRateVariability)
            .iter()
            .map(|e| e.time.local_date().to_string())
            .collect();
        assert_eq!(nights, ["2022-11-08", "2022-11-09", "2022-11-10"]);
        let last = &import.events[import.events.len() - 1];
        assert_eq!(last.time.to_rfc3339(), "2022-11-10T06:55:10-05:00");
        // Within a night the types keep one fixed order.
        let types: Vec<&str> = import.events[..6]
            .iter()
            .map(|e| e.event_type().name())
            .collect();
        assert_eq!(
            types,
            [
                "heart_rate_variability",
                "resting_heart_rate",
                "sleep_episode",
                "oxygen_saturation",
                "body_temperature",
                "respiratory_rate"
            ]
        );
    }

    #[test]
    fn payloads_ids_and_source() {
        let import = import(&csv(&[
            "2024-03-09 23:40:00,,UTC+03:00,55,61.5,33.2,96.5,2024-03-09 23:40:00,2024-03-10 07:10:00,15.2,420,450,30,93",
        ]));
        let by_type = |ty| of_type(&import, ty)[0].data.clone();
        assert_eq!(
            by_type(EventType::HeartRateVariability),
            EventData::HeartRateVariability(HeartRateVariabilityData {
                rmssd: 61.5,
                sdnn: None
            })
        );
        assert_eq!(
            by_type(EventType::RestingHeartRate),
            EventData::RestingHeartRate(RestingHeartRateData { heart_rate: 55.0 })
        );
        let onset = EventTime::parse("2024-03-09T23:40:00+03:00").ok();
        assert_eq!(
            by_type(EventType::SleepEpisode),
            EventData::SleepEpisode(SleepEpisodeData {
                sleep_onset: onset,
                total_sleep_time: 420.0,
                time_in_bed: Some(450.0),
                sleep_maintenance_efficiency_percentage: Some(93.0),
                latency_to_sleep_onset: None,
                wake_after_sleep_onset: Some(30.0),
                number_of_awakenings: None,
                is_main_sleep: None,
            })
        );
        assert_eq!(
            by_type(EventType::OxygenSaturation),
            EventData::OxygenSaturation(OxygenSaturationData {
                oxygen_saturation: 96.5
            })
        );
        assert_eq!(
            by_type(EventType::BodyTemperature),
            EventData::BodyTemperature(BodyTemperatureData {
                body_temperature: 33.2,
                measurement_location: Some("skin".into())
            })
        );
        assert_eq!(
            by_type(EventType::RespiratoryRate),
            EventData::RespiratoryRate(RespiratoryRateData {
                respiratory_rate: 15.2
            })
        );
        for event in &import.events {
            assert_eq!(event.source, "whoop");
            assert_eq!(event.user_id, "u1");
            assert_eq!(
                event.id,
                format!(
                    "whoop:u1:{}:2024-03-10T07:10:00+03:00",
                    event.event_type().name()
                )
            );
        }
    }

    #[test]
    fn events_pass_the_event_schemas() {
        let import = import(&csv(&[
            "2024-03-09 23:40:00,,UTC+03:00,55,61.5,33.2,96.5,2024-03-09 23:40:00,2024-03-10 07:10:00,15.2,420,450,30,93",
            "2024-03-08 23:40:00,,UTCZ,55,61.5,33.2,96.5,2024-03-08 23:40:00,2024-03-09 07:10:00,15.2,420,,,",
        ]));
        let decoder = Decoder::new();
        assert_eq!(import.events.len(), 12);
        for event in &import.events {
            let line = event.to_json().to_string();
            match decoder.decode(line.as_bytes()) {
                Ok(decoded) => assert_eq!(&decoded, event),
                Err(e) => panic!("{line}: {e}"),
            }
        }
    }

    #[test]
    fn user_ids_that_run_would_dead_letter_are_refused() {
        let rows = csv(&[
            "2024-03-09 23:40:00,,UTC+03:00,55,61.5,33.2,96.5,2024-03-09 23:40:00.123456789,2024-03-10 07:10:00.123456789,15.2,420,450,30,93",
        ]);
        for user in ["", "   ", "\t", "alice\n", "bo\u{1b}b"] {
            match import_whoop(rows.as_bytes(), user) {
                Err(WhoopError::User(_)) => {}
                other => panic!("{user:?}: expected a refusal, got {other:?}"),
            }
        }
        // The longest accepted id still gives events the decoder takes whole; one more
        // character is refused instead of being dead-lettered later.
        let longest = (1..=MAX_USER_ID_CHARS)
            .rev()
            .find(|&n| check_user(&"u".repeat(n)).is_ok())
            .expect("some length is accepted");
        assert!(longest >= 150, "{longest}");
        let import = import_whoop(rows.as_bytes(), &"u".repeat(longest)).expect("imports");
        assert_eq!(import.events.len(), 6);
        let decoder = Decoder::new();
        for event in &import.events {
            let line = event.to_json().to_string();
            if let Err(e) = decoder.decode(line.as_bytes()) {
                panic!("{line}: {e}");
            }
        }
        let e = import_whoop(rows.as_bytes(), &"u".repeat(longest + 1)).expect_err("too long");
        assert!(e.to_string().contains("at most"), "{e}");
    }

    #[test]
    fn offsets_decide_the_local_date() {
        let import = import(&csv(&[
            // 00:30 at UTC+03:00 is 21:30 UTC the day before; the night is the local date.
            "2024-03-09 22:00:00,,UTC+03:00,55,60,,,2024-03-09 22:00:00,2024-03-10 00:30:00,,,,,",
            // 21:30 at UTC-04:00 is 01:30 UTC the day after.
            "2024-03-07 14:00:00,,UTC-04:00,55,60,,,2024-03-07 14:00:00,2024-03-07 21:30:00,,,,,",
            "2024-03-04 23:00:00,,UTCZ,55,60,,,2024-03-04 23:00:00,2024-03-05 07:00:00,,,,,",
        ]));
        let hrv = of_type(&import, EventType::HeartRateVariability);
        let seen: Vec<(String, i32, String)> = hrv
            .iter()
            .map(|e| {
                (
                    e.time.local_date().to_string(),
                    e.time.offset_seconds(),
                    e.time.to_rfc3339(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("2024-03-05".into(), 0, "2024-03-05T07:00:00Z".into()),
                (
                    "2024-03-07".into(),
                    -4 * 3600,
                    "2024-03-07T21:30:00-04:00".into()
                ),
                (
                    "2024-03-10".into(),
                    3 * 3600,
                    "2024-03-10T00:30:00+03:00".into()
                ),
            ]
        );
        assert_eq!(
            hrv[2].id,
            "whoop:u1:heart_rate_variability:2024-03-10T00:30:00+03:00"
        );
        assert_eq!(
            hrv[0].id,
            "whoop:u1:heart_rate_variability:2024-03-05T07:00:00Z"
        );
        // The UTC dates differ from the nights, which is the point.
        assert_eq!(hrv[1].time.0.naive_utc().date().to_string(), "2024-03-08");
        assert_eq!(hrv[2].time.0.naive_utc().date().to_string(), "2024-03-09");
    }

    #[test]
    fn dst_change_between_rows_keeps_each_rows_offset() {
        // Europe/Berlin moved to summer time on 2024-03-31 at 02:00.
        let import = import(&csv(&[
            "2024-03-31 23:00:00,,UTC+02:00,50,70,,,2024-03-31 23:00:00,2024-04-01 07:00:00,,,,,",
            "2024-03-30 23:00:00,2024-03-31 23:00:00,UTC+02:00,50,70,,,2024-03-30 23:00:00,2024-03-31 07:00:00,,,,,",
            "2024-03-29 23:00:00,2024-03-30 23:00:00,UTC+01:00,50,70,,,2024-03-29 23:00:00,2024-03-30 07:00:00,,,,,",
        ]));
        let hrv = of_type(&import, EventType::HeartRateVariability);
        let nights: Vec<(String, i32)> = hrv
            .iter()
            .map(|e| (e.time.local_date().to_string(), e.time.offset_seconds()))
            .collect();
        assert_eq!(
            nights,
            [
                ("2024-03-30".into(), 3600),
                ("2024-03-31".into(), 7200),
                ("2024-04-01".into(), 7200)
            ]
        );
        // 07:00 local on both sides of the change is 23 hours apart in absolute time.
        assert_eq!(hrv[1].time.millis() - hrv[0].time.millis(), 23 * 3_600_000);
        assert_eq!(hrv[2].time.millis() - hrv[1].time.millis(), 24 * 3_600_000);
    }

    #[test]
    fn empty_cells_emit_nothing_of_that_type() {
        let import = import(&csv(&[
            // No HRV, no SpO2, no asleep duration (so no sleep episode despite time in bed).
            "2024-05-01 23:00:00,,UTC+02:00,52,,33.1,,2024-05-01 23:00:00,2024-05-02 07:00:00,14.0,,480,,",
            // Only the asleep duration among the sleep fields.
            "2024-04-30 23:00:00,,UTC+02:00,,,,,,2024-05-01 07:00:00,,400,,,",
        ]));
        assert!(import.skipped_rows.is_empty(), "{:?}", import.skipped_rows);
        let types: Vec<&str> = import
            .events
            .iter()
            .map(|e| e.event_type().name())
            .collect();
        assert_eq!(
            types,
            [
                "sleep_episode",
                "resting_heart_rate",
                "body_temperature",
                "respiratory_rate"
            ]
        );
        assert_eq!(
            import.events[0].data,
            EventData::SleepEpisode(SleepEpisodeData {
                sleep_onset: None,
                total_sleep_time: 400.0,
                time_in_bed: None,
                sleep_maintenance_efficiency_percentage: None,
                latency_to_sleep_onset: None,
                wake_after_sleep_onset: None,
                number_of_awakenings: None,
                is_main_sleep: None,
            })
        );
    }

    #[test]
    fn rows_without_wake_onset() {
        let import = import(&csv(&[
            "2024-05-02 23:00:00,,UTC+02:00,52,60,,,2024-05-02 23:00:00,2024-05-03 07:00:00,,,,,",
            // A placeholder cycle without a sleep: nothing lost, nothing reported.
            "2024-05-02 00:00:00,2024-05-02 23:00:00,UTC+02:00,,,,,,,,,,,",
            // Metric values but no wake onset: reported.
            "2024-05-01 00:00:00,2024-05-02 00:00:00,UTC+02:00,52,60,,,,,,,,,",
        ]));
        assert_eq!(import.rows, 3);
        assert_eq!(import.events.len(), 2);
        assert_eq!(import.skipped_rows.len(), 1, "{:?}", import.skipped_rows);
        let (line, reason) = &import.skipped_rows[0];
        assert_eq!(*line, 4);
        assert!(
            reason.contains("Wake onset") && reason.contains("2 metric value"),
            "{reason}"
        );
    }

    #[test]
    fn snake_case_headers_read_the_same_columns() {
        let display = import(&csv(&[
            "2024-03-09 23:40:00,,UTC+03:00,55,61.5,33.2,96.5,2024-03-09 23:40:00,2024-03-10 07:10:00,15.2,420,450,30,93",
        ]));
        let snake = "cycle_start_time,cycle_end_time,cycle_timezone,resting_heart_rate_bpm,\
            heart_rate_variability_ms,skin_temp_celsius,blood_oxygen_pct,sleep_onset,wake_onset,\
            respiratory_rate_rpm,asleep_duration_min,in_bed_duration_min,awake_duration_min,\
            sleep_efficiency_pct\n\
            2024-03-09 23:40:00,,UTC+03:00,55,61.5,33.2,96.5,2024-03-09 23:40:00,2024-03-10 07:10:00,15.2,420,450,30,93\n";
        let snake = import(snake);
        assert_eq!(display.events.len(), 6);
        assert_eq!(snake.events, display.events);
        // `sleep_efficiency` without a unit, in a different column order.
        let reordered = "wake_onset,sleep_efficiency,cycle_timezone,asleep_duration_min\n\
            2024-03-10 07:10:00,93,UTC+03:00,420\n";
        let reordered = import(reordered);
        assert_eq!(
            reordered.events[0].data,
            EventData::SleepEpisode(SleepEpisodeData {
                sleep_onset: None,
                total_sleep_time: 420.0,
                time_in_bed: None,
                sleep_maintenance_efficiency_percentage: Some(93.0),
                latency_to_sleep_onset: None,
                wake_after_sleep_onset: None,
                number_of_awakenings: None,
                is_main_sleep: None,
            })
        );
    }

    #[test]
    fn header_normalisation() {
        assert_eq!(
            normalise_header("Heart rate variability (ms)"),
            "heart_rate_variability"
        );
        assert_eq!(
            normalise_header("heart_rate_variability_ms"),
            "heart_rate_variability"
        );
        assert_eq!(normalise_header("Sleep efficiency %"), "sleep_efficiency");
        assert_eq!(normalise_header("sleep_efficiency_pct"), "sleep_efficiency");
        assert_eq!(
            normalise_header("\u{feff}Cycle start time"),
            "cycle_start_time"
        );
        assert_eq!(normalise_header("Skin temp (celsius)"), "skin_temp");
        assert_eq!(
            normalise_header("Deep (SWS) duration (min)"),
            "deep_sws_duration"
        );
    }

    #[test]
    fn missing_required_column_names_it_and_lists_headers() {
        let err = import_whoop(
            "Cycle start time,Cycle timezone,Heart rate variability (ms)\n2024-01-01 00:00:00,UTCZ,50\n"
                .as_bytes(),
            "u1",
        )
        .err();
        let Some(err @ WhoopError::MissingColumns { .. }) = err else {
            panic!("expected MissingColumns, got {err:?}");
        };
        let message = err.to_string();
        assert!(
            message.contains("missing column(s) \"Wake onset\";"),
            "{message}"
        );
        assert!(
            message.contains(
                "headers found: \"Cycle start time\", \"Cycle timezone\", \"Heart rate variability (ms)\""
            ),
            "{message}"
        );

        let no_metrics = import_whoop("Wake onset,Cycle timezone\n".as_bytes(), "u1").err();
        let message = no_metrics.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("at least one of: Heart rate variability (ms)"),
            "{message}"
        );

        let empty = import_whoop("".as_bytes(), "u1").err();
        let message = empty.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("\"Wake onset\", \"Cycle timezone\""),
            "{message}"
        );
        assert!(message.contains("headers found: (none)"), "{message}");
    }

    #[test]
    fn bom_crlf_quotes_spaces_and_time_formats() {
        let text = "\u{feff}Cycle start time , \"Cycle timezone\",Heart rate variability (ms),\
            Sleep onset,Wake onset,Asleep duration (min)\r\n\
            \"2024-06-01 23:00:00\", UTC+02:00 ,\" 70 \",2024-06-01T23:00,\"2024-06-02T07:05\",400 \r\n\
            2024-05-31 23:00:00,UTC+02:00,65,2024-05-31 23:00:00.5,2024-06-01 06:59:59,380\r\n";
        let import = import(text);
        assert!(import.skipped_rows.is_empty(), "{:?}", import.skipped_rows);
        assert_eq!(import.rows, 2);
        let times: Vec<String> = import.events.iter().map(|e| e.time.to_rfc3339()).collect();
        assert_eq!(
            times,
            [
                "2024-06-01T06:59:59+02:00",
                "2024-06-01T06:59:59+02:00",
                "2024-06-02T07:05:00+02:00",
                "2024-06-02T07:05:00+02:00"
            ]
        );
        assert_eq!(
            import.events[2].data,
            EventData::HeartRateVariability(HeartRateVariabilityData {
                rmssd: 70.0,
                sdnn: None
            })
        );
        let EventData::SleepEpisode(sleep) = &import.events[3].data else {
            panic!("expected a sleep episode, got {:?}", import.events[3].data);
        };
        assert_eq!(
            sleep.sleep_onset.map(|t| t.to_rfc3339()).as_deref(),
            Some("2024-06-01T23:00:00+02:00")
        );
    }

    #[test]
    fn imported_values_survive_their_own_json() {
        // Found by the whoop_import fuzz target: this SpO2 parses (correctly rounded) to
        // 95.76666666666667, whose JSON the decoder read back as 95.76666666666668.
        let import = import(&csv(&[
            "2022-11-10 00:00:50,,UTC-05:00,42,127,34.21,95.766666666666666666666666666666666666666666666666666666666666666666660,2022-11-10 00:00:50,2022-11-10 06:55:10,14.4,372,414,42,90",
        ]));
        assert_eq!(import.events.len(), 6);
        let decoder = Decoder::new();
        for event in &import.events {
            match decoder.decode(event.to_json().to_string().as_bytes()) {
                Ok(decoded) => assert_eq!(&decoded, event),
                Err(e) => panic!("{}: {e}", event.id),
            }
        }
    }

    #[test]
    fn second_60_is_not_a_time() {
        // Found by the whoop_import fuzz target: the event time 06:00:60-04:00 was refused by
        // the decoder ("is not a date-time").
        let import = import(&csv(&[
            "2022-11-07 22:10:00,,UTC-04:00,48,120,33.50,96.00,2022-11-07 22:10:00,2022-11-08 06:00:60,15.0,410,430,20,95",
            "2022-11-08 22:10:00,,UTC-04:00,48,120,33.50,96.00,2022-11-08 22:10:60,2022-11-09 06:00:00,15.0,410,430,20,95",
        ]));
        let reasons: Vec<&str> = import
            .skipped_rows
            .iter()
            .map(|(_, r)| r.as_str())
            .collect();
        assert_eq!(
            reasons,
            [
                "Wake onset \"2022-11-08 06:00:60\" is not a date and time \
                 (YYYY-MM-DD HH:MM[:SS]); row not imported",
                "Sleep onset \"2022-11-08 22:10:60\" is not a date and time; left out of the \
                 sleep episode",
            ]
        );
        assert_eq!(import.events.len(), 6);
        let decoder = Decoder::new();
        for event in &import.events {
            if let Err(e) = decoder.decode(event.to_json().to_string().as_bytes()) {
                panic!("{}: {e}", event.id);
            }
        }
    }

    #[test]
    fn only_episodes_the_decoder_accepts_are_imported() {
        let import = import(&csv(&[
            // Asleep 400 min but in bed 380: the in-bed duration is left out.
            "2024-05-01 23:00:00,,UTC+02:00,52,70,,,2024-05-01 23:00:00,2024-05-02 07:00:00,,400,380,,",
            // Sleep onset after the wake onset: the onset is left out.
            "2024-05-02 23:00:00,,UTC+02:00,52,70,,,2024-05-03 08:00:00,2024-05-03 07:00:00,,400,420,,",
            // Woke in 1999: the row is not imported.
            "1999-05-02 23:00:00,,UTC+02:00,52,70,,,1999-05-02 23:00:00,1999-05-03 07:00:00,,400,420,,",
        ]));
        let sleeps = of_type(&import, EventType::SleepEpisode);
        assert_eq!(sleeps.len(), 2);
        let (EventData::SleepEpisode(first), EventData::SleepEpisode(second)) =
            (&sleeps[0].data, &sleeps[1].data)
        else {
            panic!("expected sleep episodes: {sleeps:?}");
        };
        assert_eq!((first.time_in_bed, first.total_sleep_time), (None, 400.0));
        assert!(first.sleep_onset.is_some());
        assert_eq!(
            (second.sleep_onset, second.time_in_bed),
            (None, Some(420.0))
        );
        let reasons: Vec<&str> = import
            .skipped_rows
            .iter()
            .map(|(_, r)| r.as_str())
            .collect();
        assert_eq!(
            reasons,
            [
                "In bed duration (min) 380 is less than the Asleep duration (min) 400; left out \
                 of the sleep episode",
                "Sleep onset 2024-05-03T08:00:00+02:00 is after the wake onset \
                 2024-05-03T07:00:00+02:00; left out of the sleep episode",
                "Wake onset \"1999-05-03 07:00:00\" is before 2000-01-01; row not imported",
            ],
            "{:?}",
            import.skipped_rows
        );
        let decoder = Decoder::new();
        for event in &import.events {
            if let Err(e) = decoder.decode_value(event.to_json()) {
                panic!("{}: {e}", event.id);
            }
        }
    }

    #[test]
    fn out_of_range_and_malformed_values_are_skipped_and_reported() {
        let import = import(&csv(&[
            // HRV 0 is below the schema minimum 0.1; skin temp 50 above 45; in bed 2000 above 1440.
            "2024-05-01 23:00:00,,UTC+02:00,52,0,50,abc,2024-05-01 23:00:00,2024-05-02 07:00:00,14.0,400,2000,,",
        ]));
        let types: Vec<&str> = import
            .events
            .iter()
            .map(|e| e.event_type().name())
            .collect();
        assert_eq!(
            types,
            ["resting_heart_rate", "sleep_episode", "respiratory_rate"]
        );
        let EventData::SleepEpisode(sleep) = &import.events[1].data else {
            panic!("expected a sleep episode");
        };
        assert_eq!(sleep.total_sleep_time, 400.0);
        assert_eq!(sleep.time_in_bed, None);
        let reasons: Vec<&str> = import
            .skipped_rows
            .iter()
            .map(|(_, r)| r.as_str())
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(import.skipped_rows.iter().all(|(line, _)| *line == 2));
        assert!(
            reasons[0].starts_with("Heart rate variability (ms) 0 is outside the range 0.1..=1000"),
            "{}",
            reasons[0]
        );
        assert!(
            reasons[1].contains("In bed duration (min) 2000")
                && reasons[1].ends_with("left out of the sleep episode"),
            "{}",
            reasons[1]
        );
        assert!(
            reasons[2].contains("Blood oxygen % \"abc\" is not a number"),
            "{}",
            reasons[2]
        );
        assert!(
            reasons[3].contains("Skin temp (celsius) 50 is outside the range 20..=45"),
            "{}",
            reasons[3]
        );
    }

    #[test]
    fn ranges_come_from_the_schemas() {
        let ranges = Ranges::from_schemas();
        assert_eq!(
            ranges.get(EventType::HeartRateVariability, "rmssd"),
            (Some(0.1), Some(1000.0))
        );
        assert_eq!(
            ranges.get(EventType::SleepEpisode, "time_in_bed"),
            (Some(0.0), Some(1440.0))
        );
        assert_eq!(
            ranges.get(EventType::BodyTemperature, "body_temperature"),
            (Some(20.0), Some(45.0))
        );
        for (ty, field) in [
            (EventType::RestingHeartRate, "heart_rate"),
            (EventType::SleepEpisode, "total_sleep_time"),
            (
                EventType::SleepEpisode,
                "sleep_maintenance_efficiency_percentage",
            ),
            (EventType::SleepEpisode, "wake_after_sleep_onset"),
            (EventType::OxygenSaturation, "oxygen_saturation"),
            (EventType::RespiratoryRate, "respiratory_rate"),
        ] {
            let (min, max) = ranges.get(ty, field);
            assert!(
                min.is_some() && max.is_some(),
                "no range for {}.{field}",
                ty.name()
            );
        }
    }

    #[test]
    fn bad_rows_are_skipped_whole() {
        let import = import(&csv(&[
            "2024-05-03 23:00:00,,UTC+25:00,52,60,,,,2024-05-04 07:00:00,,,,,",
            "2024-05-02 23:00:00,,Europe/Berlin,52,60,,,,2024-05-03 07:00:00,,,,,",
            "2024-05-01 23:00:00,,UTC+02:00,52,60,,,,02/05/2024 07:00,,,,,",
            "2024-04-30 23:00:00,,UTC+02:00,52,60,,,,2024-05-01 07:00:00,,,,,,,",
            "2024-04-30 23:00:00,,UTC+02:00,52,60,,,,2024-05-01 07:00:00,,,,,,,x",
        ]));
        assert_eq!(import.rows, 5);
        // Only the row with empty extra cells is good.
        assert_eq!(import.events.len(), 2);
        let lines: Vec<usize> = import.skipped_rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 3, 4, 6]);
        assert!(import.skipped_rows[0].1.contains("\"UTC+25:00\""));
        assert!(import.skipped_rows[1]
            .1
            .contains("Cycle timezone \"Europe/Berlin\""));
        assert!(import.skipped_rows[2]
            .1
            .contains("Wake onset \"02/05/2024 07:00\""));
        assert!(import.skipped_rows[3]
            .1
            .contains("16 fields but the header has 14"));
    }

    #[test]
    fn duplicate_nights_keep_the_first_row() {
        let import = import(&csv(&[
            "2024-05-01 23:00:00,,UTC+02:00,52,60,,,,2024-05-02 07:00:00,,,,,",
            "2024-05-01 23:00:00,,UTC+02:00,53,61,,,,2024-05-02 07:00:00,,,,,",
        ]));
        assert_eq!(import.events.len(), 2);
        assert_eq!(
            import.events[0].data,
            EventData::HeartRateVariability(HeartRateVariabilityData {
                rmssd: 60.0,
                sdnn: None
            })
        );
        assert_eq!(import.skipped_rows.len(), 1);
        assert_eq!(import.skipped_rows[0].0, 3);
        assert!(import.skipped_rows[0].1.starts_with("duplicate of line 2"));
    }

    #[test]
    fn naps_are_not_nights() {
        let text = "Cycle timezone,Sleep onset,Wake onset,Asleep duration (min),Nap\n\
            UTC-04:00,2024-06-23 20:24:26,2024-06-24 05:44:09,504,false\n\
            UTC-04:00,2024-06-23 14:00:00,2024-06-23 14:40:00,38,true\n";
        let import = import(text);
        assert_eq!(import.events.len(), 1);
        assert_eq!(import.skipped_rows.len(), 1);
        assert_eq!(import.skipped_rows[0].0, 3);
    }

    #[test]
    fn offsets_and_times_parse() {
        let secs = |t| parse_offset(t).map(|o| o.local_minus_utc());
        assert_eq!(secs("UTC+03:00"), Some(10800));
        assert_eq!(secs("UTC-05:00"), Some(-18000));
        assert_eq!(secs("UTCZ"), Some(0));
        assert_eq!(secs("utc"), Some(0));
        assert_eq!(secs("UTC+0530"), Some(19800));
        assert_eq!(secs("UTC-3"), Some(-10800));
        assert_eq!(secs("+02:00"), Some(7200));
        assert_eq!(secs("UTC+3:7:0"), None);
        assert_eq!(secs("UTC 3"), None);
        assert_eq!(secs("UTC+é12"), None);
        // An empty cell is no timezone, not UTC.
        assert_eq!(secs(""), None);
        let utc = FixedOffset::east_opt(0);
        let parse = |t| {
            utc.and_then(|o| parse_local_time(t, o))
                .map(|t| t.to_rfc3339())
        };
        assert_eq!(
            parse("2024-01-02 03:04"),
            Some("2024-01-02T03:04:00Z".into())
        );
        assert_eq!(
            parse("2024-01-02T03:04:05"),
            Some("2024-01-02T03:04:05Z".into())
        );
        assert_eq!(parse("2024-01-02"), None);
        assert_eq!(parse_number("95,5"), Some(95.5));
        assert_eq!(parse_number("NaN"), None);
    }

    const SMALL_EXPORT: &str = "\
Cycle start time,Cycle end time,Cycle timezone,Recovery score %,Resting heart rate (bpm),Heart rate variability (ms),Skin temp (celsius),Blood oxygen %,Day Strain,Energy burned (cal),Max HR (bpm),Average HR (bpm),Sleep onset,Wake onset,Sleep performance %,Respiratory rate (rpm),Asleep duration (min),In bed duration (min),Light sleep duration (min),Deep (SWS) duration (min),REM duration (min),Awake duration (min),Sleep need (min),Sleep debt (min),Sleep efficiency %,Sleep consistency %\n\
2023-01-04 23:10:00,,UTC+01:00,70,50,80,33.50,96.10,,,,,2023-01-04 23:10:00,2023-01-05 07:00:00,85,15.0,430,470,200,100,130,40,520,30,91,70\n\
2023-01-03 22:45:00,2023-01-04 23:10:00,UTC+01:00,55,54,66,33.90,95.40,9.2,2100,160,70,2023-01-03 22:45:00,2023-01-04 06:30:00,75,15.4,410,465,190,95,125,55,530,40,88,65\n\
2023-01-03 00:00:00,2023-01-03 22:45:00,UTC+01:00,,,,,,0.2,150,100,70,,,,,,,,,,,,,,\n\
2023-01-01 23:30:00,2023-01-03 00:00:00,UTCZ,62,52,72,33.70,,8.1,1900,150,68,2023-01-01 23:30:00,2023-01-02 07:15:00,80,15.2,420,465,195,98,127,45,525,35,90,68\n";

    #[test]
    fn import_from_file_and_file_errors() {
        // A hand-written export with the full 26-column header, written to a temporary file
        // so the file-reading path is exercised without committing export-shaped data.
        let scratch = tempfile::tempdir().expect("temporary directory");
        let path = scratch.path().join("export.csv");
        std::fs::write(&path, SMALL_EXPORT).expect("write the export");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/whoop");
        let import = match import_whoop_file(&path, "fixture") {
            Ok(import) => import,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(import.rows, 4);
        assert_eq!(import.events.len(), 17);
        assert_sorted(&import.events);
        assert!(import.skipped_rows.is_empty(), "{:?}", import.skipped_rows);

        let missing = dir.join("no-such-export.csv");
        let message = import_whoop_file(&missing, "u")
            .err()
            .map(|e| e.to_string());
        let message = message.unwrap_or_default();
        assert!(
            message.starts_with("cannot open ") && message.contains("no-such-export.csv"),
            "{message}"
        );

        let bad = dir.join("missing_wake_onset.csv");
        let message = import_whoop_file(&bad, "u").err().map(|e| e.to_string());
        let message = message.unwrap_or_default();
        assert!(
            message.contains("missing_wake_onset.csv: not a WHOOP physiological_cycles export"),
            "{message}"
        );
    }

    fn cell() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::prop_oneof![
            "2024-0[1-9]-1[0-9][ T][0-2][0-9]:[0-5][0-9](:[0-5][0-9])?",
            "UTC[+-][0-2][0-9]:[0-5]0|UTCZ|UTC[+-]é[0-9]",
            "-?[0-9]{1,4}(\\.[0-9]{1,2})?",
            "",
            "[a-z\"é %]{0,4}",
        ]
    }

    proptest::proptest! {
        /// Whatever rows follow a valid header, the import reports rather than panics, and
        /// what it emits is within the schemas' ranges and sorted.
        #[test]
        fn arbitrary_rows_never_panic(
            rows in proptest::collection::vec(proptest::collection::vec(cell(), 0..16), 0..8)
        ) {
            let body: Vec<String> = rows.iter().map(|r| r.join(",")).collect();
            let text = format!("{HEADER}\n{}", body.join("\r\n"));
            if let Ok(import) = import_whoop(text.as_bytes(), "p") {
                let ranges = Ranges::from_schemas();
                proptest::prop_assert!(import.events.windows(2).all(|w| w[0].time <= w[1].time));
                for event in &import.events {
                    let ty = event.event_type();
                    for (i, field) in ty.fields().iter().enumerate() {
                        if let crate::event::Value::Num(n) = event.data.field(i) {
                            proptest::prop_assert!(ranges.check(ty, field.name, n).is_ok());
                        }
                    }
                }
            }
        }
    }

    /// Imports every real export under `$VIGIL_REAL_DATA/whoop` (skipped when it is unset) and
    /// checks each night against the CSV's own wake-onset text.
    #[test]
    fn real_exports() {
        let Some(root) = std::env::var_os("VIGIL_REAL_DATA") else {
            eprintln!("VIGIL_REAL_DATA unset; real WHOOP exports not checked");
            return;
        };
        let mut files = Vec::new();
        let whoop = Path::new(&root).join("whoop");
        let Ok(dirs) = std::fs::read_dir(&whoop) else {
            panic!("cannot read {}", whoop.display());
        };
        for dir in dirs.flatten() {
            for file in std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = file.file_name().to_string_lossy().to_lowercase();
                let is_cycles =
                    name.contains("physiological_cycles") || name.contains("physiologische_zyklen");
                if is_cycles && name.ends_with(".csv") {
                    files.push(file.path());
                }
            }
        }
        files.sort();
        assert!(!files.is_empty(), "no exports under {}", whoop.display());
        let decoder = Decoder::new();
        for path in &files {
            let import = match import_whoop_file(path, "real") {
                Ok(import) => import,
                Err(e) => panic!("{e}"),
            };
            assert_sorted(&import.events);
            // The wake onsets as written, each with its events' local time and date.
            let mut expected: Vec<String> = Vec::new();
            let mut reader = match csv::Reader::from_path(path) {
                Ok(reader) => reader,
                Err(e) => panic!("{}: {e}", path.display()),
            };
            let wake = reader
                .headers()
                .ok()
                .and_then(|h| h.iter().position(|h| h == "Wake onset"));
            let Some(wake) = wake else {
                panic!("{}: no Wake onset column", path.display());
            };
            for record in reader.records().flatten() {
                if let Some(text) = record.get(wake).filter(|t| !t.is_empty()) {
                    expected.push(text.to_string());
                }
            }
            expected.sort();
            expected.dedup();
            let mut nights: Vec<String> = import
                .events
                .iter()
                .map(|e| {
                    let local = e.time.0.format("%Y-%m-%d %H:%M:%S").to_string();
                    assert_eq!(e.time.local_date().to_string(), local[..10]);
                    local
                })
                .collect();
            nights.sort();
            nights.dedup();
            assert_eq!(nights, expected, "{}", path.display());
            for event in &import.events {
                if let Err(e) = decoder.decode_value(event.to_json()) {
                    panic!("{}: {}: {e}", path.display(), event.id);
                }
            }
            let count = |ty| of_type(&import, ty).len();
            eprintln!(
                "{}: rows {}, nights {}, events {} (hrv {}, rhr {}, sleep {}, spo2 {}, \
                 temp {}, resp {}), skipped {}",
                path.strip_prefix(&whoop).unwrap_or(path).display(),
                import.rows,
                nights.len(),
                import.events.len(),
                count(EventType::HeartRateVariability),
                count(EventType::RestingHeartRate),
                count(EventType::SleepEpisode),
                count(EventType::OxygenSaturation),
                count(EventType::BodyTemperature),
                count(EventType::RespiratoryRate),
                import.skipped_rows.len()
            );
            for (line, reason) in &import.skipped_rows {
                eprintln!("  line {line}: {reason}");
            }
        }
    }
}
