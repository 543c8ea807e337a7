//! One row of the export into the events of one night: each value checked against the range
//! its event schema allows, and every value left out noted with why.

use std::collections::HashMap;

use chrono::FixedOffset;

use super::cells::{parse_local_time, parse_number, parse_offset};
use super::columns::{Col, Columns, METRICS};
use super::SOURCE;
use crate::event::plausible::check_time;
use crate::event::{
    BodyTemperatureData, Event, EventData, EventTime, EventType, HeartRateVariabilityData,
    OxygenSaturationData, RespiratoryRateData, RestingHeartRateData, SleepEpisodeData,
};

/// `(minimum, maximum)` of a numeric field, each when the schema sets one.
type Bounds = (Option<f64>, Option<f64>);

/// The numeric ranges of the event schemas, so values the decoder would reject are never
/// emitted.
pub(super) struct Ranges(HashMap<(EventType, &'static str), Bounds>);

impl Ranges {
    pub(super) fn from_schemas() -> Ranges {
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

    pub(super) fn get(&self, ty: EventType, field: &str) -> Bounds {
        self.0.get(&(ty, field)).copied().unwrap_or((None, None))
    }

    pub(super) fn check(&self, ty: EventType, field: &str, value: f64) -> Result<f64, String> {
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
pub(super) struct Night {
    pub wake_onset: EventTime,
    pub events: Vec<Event>,
}

pub(super) struct RowConverter<'a> {
    pub columns: &'a Columns,
    pub ranges: Ranges,
    pub user_id: &'a str,
}

impl RowConverter<'_> {
    /// `Ok(None)`: nothing to import (a placeholder row); `Err`: the row is skipped, with why.
    /// Values left out of an imported row are noted in `notes`.
    pub(super) fn convert(
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
