//! The typed payloads of every input event, defined once.
//!
//! Each type is a Rust struct (serde + schemars), so the JSON Schemas in `schemas/` and the
//! expression field catalogue come from the same definition. Field names and units follow Open
//! mHealth / IEEE 1752.1 where a convention exists; the unit is fixed by the schema, not carried
//! in the value, so rule expressions stay short (`heart_rate >= 120`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::json::{struct_from_str, ObjectOnly};
use super::value::{FieldValue, Value, ValueType};
use super::EventTime;

/// The Kafka topic an event type belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    BiometricUpdates,
    HealthEvents,
}

/// One field of an event type, as expressions see it.
#[derive(Clone, Copy, Debug)]
pub struct FieldDef {
    pub name: &'static str,
    pub value_type: ValueType,
}

macro_rules! event_types {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident = $name:literal, $topic:ident, $data:ident {
            $( $(#[$fattr:meta])* $field:ident : $fty:ty ),* $(,)?
        }
    )*) => {
        /// Every event type Vigil understands (a closed registry).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType { $($variant),* }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            /// The name used in events (`type`) and rules (`on = "…"`).
            pub fn name(self) -> &'static str {
                match self { $(EventType::$variant => $name),* }
            }

            pub fn from_name(name: &str) -> Option<EventType> {
                match name { $($name => Some(EventType::$variant),)* _ => None }
            }

            pub fn topic(self) -> Topic {
                match self { $(EventType::$variant => Topic::$topic),* }
            }

            /// The payload fields, in declaration order; expressions address them by index.
            pub fn fields(self) -> &'static [FieldDef] {
                match self {
                    $(EventType::$variant => &[
                        $(FieldDef { name: stringify!($field), value_type: <$fty as FieldValue>::TYPE }),*
                    ]),*
                }
            }

            pub fn field_index(self, name: &str) -> Option<usize> {
                self.fields().iter().position(|f| f.name == name)
            }

            /// The JSON Schema of this type's `data` payload.
            pub fn data_schema(self) -> schemars::Schema {
                match self { $(EventType::$variant => schemars::schema_for!($data)),* }
            }

            pub fn doc(self) -> &'static str {
                match self { $(EventType::$variant => concat!($($doc, "\n"),*)),* }
            }
        }

        $(
            $(#[doc = $doc])*
            #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
            #[serde(deny_unknown_fields)]
            pub struct $data { $( $(#[$fattr])* pub $field: $fty ),* }
        )*

        /// A typed payload.
        #[derive(Clone, Debug, PartialEq)]
        pub enum EventData { $($variant($data)),* }

        impl EventData {
            pub fn event_type(&self) -> EventType {
                match self { $(EventData::$variant(_) => EventType::$variant),* }
            }

            /// The value of field number `index` of [`EventType::fields`].
            #[allow(unused_variables)]
            pub fn field(&self, index: usize) -> Value<'_> {
                match self {
                    $(EventData::$variant(d) => {
                        let getters: &[fn(&$data) -> Value<'_>] = &[$(|d| d.$field.value()),*];
                        getters.get(index).map_or(Value::Null, |get| get(d))
                    })*
                }
            }

            /// Decodes a payload of the given type (from a JSON object only, never an array).
            pub fn from_json(ty: EventType, data: serde_json::Value) -> serde_json::Result<EventData> {
                Ok(match ty { $(EventType::$variant => EventData::$variant($data::deserialize(ObjectOnly(data))?)),* })
            }

            /// Decodes a payload of the given type from a borrowed JSON value (an object).
            pub fn from_json_ref(ty: EventType, data: &serde_json::Value) -> serde_json::Result<EventData> {
                Ok(match ty { $(EventType::$variant => EventData::$variant($data::deserialize(ObjectOnly(data))?)),* })
            }

            /// Decodes a payload of the given type from its JSON text (an object).
            pub fn from_json_str(ty: EventType, text: &str) -> serde_json::Result<EventData> {
                Ok(match ty { $(EventType::$variant => EventData::$variant(struct_from_str(text)?)),* })
            }

            pub fn to_json(&self) -> serde_json::Value {
                let value = match self { $(EventData::$variant(d) => serde_json::to_value(d)),* };
                value.unwrap_or(serde_json::Value::Null)
            }
        }
    };
}

event_types! {
    /// One heart-rate sample (Open mHealth heart-rate), e.g. 1 Hz from a watch.
    HeartRate = "heart_rate", BiometricUpdates, HeartRateData {
        /// Heart rate, beats/min.
        #[schemars(range(min = 1, max = 400))]
        heart_rate: f64,
    }
    /// Nightly heart-rate variability; `time` is when that sleep ended.
    HeartRateVariability = "heart_rate_variability", BiometricUpdates, HeartRateVariabilityData {
        /// Root mean square of successive RR differences, ms.
        #[schemars(range(min = 0.1, max = 1000))]
        rmssd: f64,
        /// Standard deviation of NN intervals, ms, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 0, max = 1000))]
        sdnn: Option<f64>,
    }
    /// Nightly resting heart rate; `time` is when that sleep ended.
    RestingHeartRate = "resting_heart_rate", BiometricUpdates, RestingHeartRateData {
        /// Resting heart rate, beats/min.
        #[schemars(range(min = 1, max = 300))]
        heart_rate: f64,
    }
    /// One sleep episode (Open mHealth / IEEE 1752.1 sleep-episode); `time` is when it ended.
    SleepEpisode = "sleep_episode", BiometricUpdates, SleepEpisodeData {
        /// When the episode began (sleep onset), with its offset: not after `time`, nor before 2000.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sleep_onset: Option<EventTime>,
        /// Total sleep time, min.
        #[schemars(range(min = 0, max = 1440))]
        total_sleep_time: f64,
        /// Time in bed, min, when known: at least `total_sleep_time`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 0, max = 1440))]
        time_in_bed: Option<f64>,
        /// Sleep efficiency (total sleep time / time in bed), %, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 0, max = 100))]
        sleep_maintenance_efficiency_percentage: Option<f64>,
        /// Sleep onset latency, min, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 0, max = 1440))]
        latency_to_sleep_onset: Option<f64>,
        /// Wake after sleep onset, min, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 0, max = 1440))]
        wake_after_sleep_onset: Option<f64>,
        /// Number of awakenings, when known: a whole number (`3`, `3.0` and `3e0` alike).
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "whole_number")]
        #[schemars(schema_with = "awakenings_schema")]
        number_of_awakenings: Option<u32>,
        /// Whether this is the main sleep of the night, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_main_sleep: Option<bool>,
    }
    /// Steps counted over the interval of `duration` seconds ending at `time`.
    StepCount = "step_count", BiometricUpdates, StepCountData {
        /// Steps in the interval.
        #[schemars(range(min = 0, max = 100000))]
        step_count: f64,
        /// Length of the interval, s (default: 60).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 0, max = 86400))]
        duration: Option<f64>,
    }
    /// Blood oxygen saturation (SpO2).
    OxygenSaturation = "oxygen_saturation", BiometricUpdates, OxygenSaturationData {
        /// SpO2, %.
        #[schemars(range(min = 0, max = 100))]
        oxygen_saturation: f64,
    }
    /// Body temperature; `measurement_location` says where (e.g. "skin").
    BodyTemperature = "body_temperature", BiometricUpdates, BodyTemperatureData {
        /// Temperature, °C.
        #[schemars(range(min = 20, max = 45))]
        body_temperature: f64,
        /// Where it was measured: "skin", "wrist", "oral", "forehead", "axillary", "rectal", …
        #[serde(default, skip_serializing_if = "Option::is_none")]
        measurement_location: Option<String>,
    }
    /// Respiratory rate.
    RespiratoryRate = "respiratory_rate", BiometricUpdates, RespiratoryRateData {
        /// Breaths/min.
        #[schemars(range(min = 0, max = 100))]
        respiratory_rate: f64,
    }
    /// A workout or other bout of physical activity (Open mHealth physical-activity).
    PhysicalActivity = "physical_activity", HealthEvents, PhysicalActivityData {
        /// What was done, e.g. "running".
        #[schemars(length(min = 1, max = 200))]
        activity_name: String,
        /// Duration, min.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 0, max = 1440))]
        duration: Option<f64>,
        /// Energy, kcal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 0, max = 20000))]
        kcal_burned: Option<f64>,
        /// Vendor's effort score (e.g. WHOOP strain 0–21).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 0, max = 100))]
        strain: Option<f64>,
    }
    /// A symptom the user reported.
    Symptom = "symptom", HealthEvents, SymptomData {
        /// Symptom name, e.g. "fever", "headache".
        #[schemars(length(min = 1, max = 200))]
        symptom: String,
        /// Severity on a 0–10 scale, when given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 0, max = 10))]
        severity: Option<f64>,
    }
    /// An illness report (onset or recovery).
    Illness = "illness", HealthEvents, IllnessData {
        /// What the illness is, e.g. "influenza".
        #[schemars(length(min = 1, max = 200))]
        condition: String,
        /// "onset" or "recovered".
        #[schemars(regex(pattern = r"^(onset|recovered)$"))]
        status: String,
    }
    /// A device's sync status.
    DeviceSync = "device_sync", HealthEvents, DeviceSyncData {
        /// Device name or model.
        #[schemars(length(min = 1, max = 200))]
        device: String,
        /// "ok", "failed" or "partial".
        #[schemars(regex(pattern = r"^(ok|failed|partial)$"))]
        status: String,
        /// Battery level, %, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(range(min = 0, max = 100))]
        battery: Option<f64>,
    }
}

/// The most awakenings a sleep episode may report: one a minute for a whole day.
const MAX_AWAKENINGS: u32 = 1440;

/// `number_of_awakenings`'s schema. `anyOf` rather than `"type": ["integer", "null"]`: the
/// validator counts `3.0` as an integer only under a single `type`, and JSON Schema says `3.0`
/// is one. The maximum keeps every valid value within `u32`.
fn awakenings_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": MAX_AWAKENINGS},
            {"type": "null"},
        ]
    })
}

/// A count as JSON Schema reads an integer: any number with no fractional part, however it is
/// written (`3`, `3.0`, `3e0`, `-0`), within `0..=MAX_AWAKENINGS`; `null` is unknown.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::{Error, Unexpected, Visitor};
    use std::fmt;

    struct Whole;

    impl Whole {
        fn check<E: Error>(n: f64, unexpected: Unexpected<'_>) -> Result<Option<u32>, E> {
            if n.fract() == 0.0 && (0.0..=f64::from(MAX_AWAKENINGS)).contains(&n) {
                // Exact: a whole number within 0..=1440.
                Ok(Some(n as u32))
            } else {
                Err(E::invalid_value(unexpected, &Whole))
            }
        }
    }

    impl<'de> Visitor<'de> for Whole {
        type Value = Option<u32>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a whole number from 0 to {MAX_AWAKENINGS}, or null")
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<Self::Value, E> {
            match u32::try_from(v) {
                Ok(n) if n <= MAX_AWAKENINGS => Ok(Some(n)),
                _ => Err(E::invalid_value(Unexpected::Unsigned(v), &self)),
            }
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<Self::Value, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &self)),
            }
        }

        fn visit_f64<E: Error>(self, v: f64) -> Result<Self::Value, E> {
            Whole::check(v, Unexpected::Float(v))
        }

        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }
    }

    d.deserialize_option(Whole)
}
