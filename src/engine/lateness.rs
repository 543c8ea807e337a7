//! How far behind its key's event time an event may arrive and still be processed, per event
//! type.
//!
//! One bound for every type fits no real source: a watch streams heart rate within seconds,
//! while a night's HRV, resting heart rate and sleep reach the phone when the user wakes and
//! syncs, often a day or more after the day's first heart-rate samples. So each type has its
//! own bound: by default one hour, and two days for the nightly types ([`NIGHTLY_TYPES`]).

use crate::event::{EventType, DAY_MS};

/// The lateness of the types without one of their own, by default.
pub const DEFAULT_LATENESS_MS: i64 = 3_600_000;

/// The lateness of the nightly types, by default: a night synced the next evening still counts.
pub const NIGHTLY_LATENESS_MS: i64 = 2 * DAY_MS;

/// The types measured once a night, whose events come when the user syncs after waking.
pub const NIGHTLY_TYPES: [EventType; 3] = [
    EventType::HeartRateVariability,
    EventType::RestingHeartRate,
    EventType::SleepEpisode,
];

/// The allowed lateness of every event type, in ms (≥ 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lateness {
    /// By position in [`EventType::ALL`].
    by_type: Box<[i64]>,
}

impl Lateness {
    /// The same lateness for every type.
    pub fn uniform(ms: i64) -> Self {
        Lateness {
            by_type: vec![ms.max(0); EventType::ALL.len()].into_boxed_slice(),
        }
    }

    /// Sets the lateness of `ty`.
    pub fn set(&mut self, ty: EventType, ms: i64) {
        if let Some(slot) = self.by_type.get_mut(ty as usize) {
            *slot = ms.max(0);
        }
    }

    /// `self` with the lateness of `ty` set.
    pub fn with(mut self, ty: EventType, ms: i64) -> Self {
        self.set(ty, ms);
        self
    }

    /// The allowed lateness of events of `ty`.
    pub fn of(&self, ty: EventType) -> i64 {
        self.by_type
            .get(ty as usize)
            .copied()
            .unwrap_or(DEFAULT_LATENESS_MS)
    }

    /// The longest lateness of any type.
    pub fn longest(&self) -> i64 {
        self.by_type.iter().copied().max().unwrap_or(0)
    }

    /// Every type with its lateness, in [`EventType::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (EventType, i64)> + '_ {
        EventType::ALL
            .iter()
            .copied()
            .zip(self.by_type.iter().copied())
    }
}

impl Default for Lateness {
    fn default() -> Self {
        NIGHTLY_TYPES
            .iter()
            .fold(Lateness::uniform(DEFAULT_LATENESS_MS), |l, &ty| {
                l.with(ty, NIGHTLY_LATENESS_MS)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nightly_types_wait_two_days_and_the_rest_an_hour_by_default() {
        let l = Lateness::default();
        for &ty in EventType::ALL {
            let expected = if NIGHTLY_TYPES.contains(&ty) {
                2 * DAY_MS
            } else {
                3_600_000
            };
            assert_eq!(l.of(ty), expected, "{ty:?}");
        }
        assert_eq!(l.longest(), 2 * DAY_MS);
        let uniform = Lateness::uniform(60_000).with(EventType::SleepEpisode, 5 * DAY_MS);
        assert_eq!(uniform.of(EventType::HeartRate), 60_000);
        assert_eq!(uniform.of(EventType::SleepEpisode), 5 * DAY_MS);
        assert_eq!(Lateness::uniform(-5).of(EventType::HeartRate), 0);
    }
}
