//! Which header is which column: headers are normalised before they are matched, so WHOOP's
//! "Heart rate variability (ms)" and a snake_case `heart_rate_variability_ms` are one column.

use std::collections::HashMap;

use super::WhoopError;

/// The columns the importer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Col {
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
pub(super) const METRICS: &[Col] = &[
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
pub(super) fn normalise_header(header: &str) -> String {
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
pub(super) struct Columns {
    pub index: HashMap<Col, usize>,
    pub headers: Vec<String>,
}

impl Columns {
    pub(super) fn locate(headers: &[String]) -> Result<Columns, WhoopError> {
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
    pub(super) fn header(&self, col: Col) -> &str {
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
