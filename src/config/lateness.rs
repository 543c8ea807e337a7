//! `[lateness]`: how far behind its user's event time an event may arrive and still be
//! processed, for every event type (see [`crate::engine::lateness`]).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{Error as _, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::duration;
use crate::engine::lateness::{Lateness, DEFAULT_LATENESS_MS, NIGHTLY_LATENESS_MS, NIGHTLY_TYPES};
use crate::event::EventType;

/// How far behind its user's event time (the latest time seen from that user) an event may
/// arrive and still be processed; a later one goes to the late-events output. `vigil run
/// --allowed-lateness` overrides this table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LatenessConfig {
    /// For every event type not named in `by-type`. A duration, zero allowed (then no event
    /// may come after a later one of its user). Default: `"1h"`.
    #[serde(
        serialize_with = "duration::or_zero::serialize",
        deserialize_with = "duration::or_zero::deserialize"
    )]
    #[schemars(schema_with = "duration::or_zero::schema")]
    pub default: Duration,
    /// Per event type, by its name (`heart_rate_variability = "3d"`); a table the file merges
    /// into the defaults. Default: two days for `heart_rate_variability`, `resting_heart_rate`
    /// and `sleep_episode`, measured once a night and often synced a day later.
    pub by_type: ByType,
}

impl Default for LatenessConfig {
    fn default() -> Self {
        LatenessConfig {
            default: Duration::from_millis(DEFAULT_LATENESS_MS.unsigned_abs()),
            by_type: ByType(
                NIGHTLY_TYPES
                    .iter()
                    .map(|&ty| {
                        (
                            ty,
                            Duration::from_millis(NIGHTLY_LATENESS_MS.unsigned_abs()),
                        )
                    })
                    .collect(),
            ),
        }
    }
}

impl LatenessConfig {
    /// The engine's lateness per type.
    pub fn lateness(&self) -> Lateness {
        self.by_type
            .0
            .iter()
            .fold(Lateness::uniform(millis(self.default)), |l, (&ty, &d)| {
                l.with(ty, millis(d))
            })
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Durations by event type, written with the types' names as keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ByType(pub BTreeMap<EventType, Duration>);

impl Serialize for ByType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (ty, d) in &self.0 {
            map.serialize_entry(ty.name(), &duration::format(*d))?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ByType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ByTypeVisitor;
        impl<'de> Visitor<'de> for ByTypeVisitor {
            type Value = ByType;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of event types and durations")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ByType, A::Error> {
                let mut by_type = BTreeMap::new();
                // Checked as the key and the value are read, so that a problem is reported
                // at the key or value at fault, not at the table.
                while let Some(TypeName(ty)) = map.next_key()? {
                    let OrZero(d) = map.next_value()?;
                    by_type.insert(ty, d);
                }
                Ok(ByType(by_type))
            }
        }
        deserializer.deserialize_map(ByTypeVisitor)
    }
}

/// An event type's name, as a key.
struct TypeName(EventType);

impl<'de> Deserialize<'de> for TypeName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        EventType::from_name(&name).map(TypeName).ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
            D::Error::custom(format!(
                "`{name}` is not an event type (known: {})",
                known.join(", ")
            ))
        })
    }
}

/// A duration, zero allowed, as a value.
struct OrZero(Duration);

impl<'de> Deserialize<'de> for OrZero {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        duration::or_zero::deserialize(deserializer).map(OrZero)
    }
}

impl JsonSchema for ByType {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LatenessByType".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
        let value = duration::or_zero::schema(generator);
        json_schema!({
            "type": "object",
            "propertyNames": { "enum": names },
            "additionalProperties": value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_engines() {
        assert_eq!(LatenessConfig::default().lateness(), Lateness::default());
    }
}
