//! One value per local night, for the last few nights, in as few bytes as exactness allows.
//!
//! Nightly state is most of what a user costs (a 60-night baseline per metric), so the store
//! is a ring of slots indexed by day number, and values are kept in the narrowest encoding that
//! holds every value stored so far exactly: a `u16` fixed-point number with 0, 1 or 2 decimals
//! (bpm and ms as devices report them: `52`, `43.1`), then `f32`, then `f64` — widening the
//! first time a value does not fit. Decoding is `raw / 10^decimals`, a correctly rounded
//! division, so a value is exact when it is the double nearest to that decimal; nothing is
//! ever rounded. An empty slot is `u16::MAX` or NaN (stored values are finite), so presence
//! costs no extra bytes.
//!
//! The ring starts with one slot and doubles (up to its reach) when the nights it holds span
//! more: a user who sent one night costs one slot, not sixty — a million such users are the
//! difference between 0.4 and 1 GB.

/// Values of the ring, narrow while exact.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Slots {
    Fixed { values: Box<[u16]>, decimals: u8 },
    Narrow(Box<[f32]>),
    Wide(Box<[f64]>),
}

const EMPTY_FIXED: u16 = u16::MAX;
const MAX_DECIMALS: u8 = 2;

fn scale(decimals: u8) -> f64 {
    10f64.powi(i32::from(decimals))
}

/// `v` as a fixed-point number with `decimals` decimals, if that is exact and fits.
fn as_fixed(v: f64, decimals: u8) -> Option<u16> {
    let p = scale(decimals);
    let raw = (v * p).round();
    (raw >= 0.0 && raw < f64::from(EMPTY_FIXED) && raw / p == v && v.is_sign_positive())
        .then_some(raw as u16)
}

fn as_narrow(v: f64) -> Option<f32> {
    let n = v as f32;
    (f64::from(n) == v).then_some(n)
}

/// The narrowest encoding holding all `values` exactly, filled from them (`None`: empty).
fn encode(values: &[Option<f64>]) -> Slots {
    let present = || values.iter().flatten();
    for decimals in 0..=MAX_DECIMALS {
        if present().all(|v| as_fixed(*v, decimals).is_some()) {
            let values = values
                .iter()
                .map(|v| v.and_then(|v| as_fixed(v, decimals)).unwrap_or(EMPTY_FIXED))
                .collect();
            return Slots::Fixed { values, decimals };
        }
    }
    if present().all(|v| as_narrow(*v).is_some()) {
        return Slots::Narrow(
            values
                .iter()
                .map(|v| v.map_or(f32::NAN, |v| v as f32))
                .collect(),
        );
    }
    Slots::Wide(values.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

/// The last `reach` consecutive nights ending at the newest night seen, in a ring of as many
/// slots as the nights stored span (a power of two, at most `reach`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NightStore {
    newest: i32,
    /// How many nights back from the newest are kept. Not written to the changelog (a store
    /// read back is only iterated, then re-inserted into a store of today's reach): 0 there,
    /// meaning the ring's own length.
    #[serde(skip)]
    reach: u32,
    slots: Slots,
}

impl NightStore {
    pub fn new(reach: usize) -> Self {
        NightStore {
            newest: i32::MIN,
            reach: u32::try_from(reach.max(1)).unwrap_or(u32::MAX),
            slots: Slots::Fixed {
                values: vec![EMPTY_FIXED; 1].into_boxed_slice(),
                decimals: 0,
            },
        }
    }

    fn reach(&self) -> usize {
        match self.reach {
            0 => self.capacity(),
            r => r as usize,
        }
    }

    /// Re-lays the ring out over `len` slots (≥ the span of the nights it holds).
    fn grow_to(&mut self, len: usize) {
        let mut kept = Vec::new();
        self.for_each(|day, v| kept.push((day, v)));
        self.slots = match &self.slots {
            Slots::Fixed { decimals, .. } => Slots::Fixed {
                values: vec![EMPTY_FIXED; len].into_boxed_slice(),
                decimals: *decimals,
            },
            Slots::Narrow(_) => Slots::Narrow(vec![f32::NAN; len].into_boxed_slice()),
            Slots::Wide(_) => Slots::Wide(vec![f64::NAN; len].into_boxed_slice()),
        };
        for (day, v) in kept {
            let slot = self.slot(day);
            // The encoding is unchanged, so every value fits as it did.
            match &mut self.slots {
                Slots::Fixed { values, decimals } => {
                    values[slot] = as_fixed(v, *decimals).unwrap_or(EMPTY_FIXED)
                }
                Slots::Narrow(values) => values[slot] = v as f32,
                Slots::Wide(values) => values[slot] = v,
            }
        }
    }

    /// Makes the ring long enough to hold `oldest..=newest` (both within the reach).
    fn cover(&mut self, oldest: i64, newest: i64) {
        let span = usize::try_from(newest - oldest + 1).unwrap_or(usize::MAX);
        if span > self.capacity() {
            let len = span.next_power_of_two().min(self.reach());
            self.grow_to(len);
        }
    }

    /// The oldest stored night that is still within the reach once `day` is the newest.
    fn oldest_kept_when_newest_is(&self, day: i32) -> Option<i32> {
        let from = (i64::from(day) - self.reach() as i64 + 1)
            .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        let mut oldest = None;
        self.for_each_in(from, self.newest, |d, _| {
            oldest.get_or_insert(d);
        });
        oldest
    }

    fn capacity(&self) -> usize {
        match &self.slots {
            Slots::Fixed { values, .. } => values.len(),
            Slots::Narrow(s) => s.len(),
            Slots::Wide(s) => s.len(),
        }
    }

    fn slot(&self, day: i32) -> usize {
        let capacity = i64::try_from(self.capacity()).unwrap_or(i64::MAX);
        // rem_euclid of a positive modulus is in 0..capacity.
        usize::try_from(i64::from(day).rem_euclid(capacity)).unwrap_or(0)
    }

    fn get(&self, slot: usize) -> Option<f64> {
        match &self.slots {
            Slots::Fixed { values, decimals } => Some(values[slot])
                .filter(|v| *v != EMPTY_FIXED)
                .map(|v| f64::from(v) / scale(*decimals)),
            Slots::Narrow(values) => Some(f64::from(values[slot])).filter(|v| !v.is_nan()),
            Slots::Wide(values) => Some(values[slot]).filter(|v| !v.is_nan()),
        }
    }

    fn clear(&mut self, slot: usize) {
        match &mut self.slots {
            Slots::Fixed { values, .. } => values[slot] = EMPTY_FIXED,
            Slots::Narrow(values) => values[slot] = f32::NAN,
            Slots::Wide(values) => values[slot] = f64::NAN,
        }
    }

    /// The oldest night the ring's slots hold now.
    fn oldest(&self) -> i64 {
        i64::from(self.newest) - i64::try_from(self.capacity()).unwrap_or(i64::MAX) + 1
    }

    /// The oldest night the store keeps.
    fn oldest_reached(&self) -> i64 {
        i64::from(self.newest) - i64::try_from(self.reach()).unwrap_or(i64::MAX) + 1
    }

    /// Stores `v` (finite) for `day`, replacing an earlier value for that night. A night older
    /// than the ring reaches is ignored: the engine's lateness bound keeps that from happening.
    pub fn insert(&mut self, day: i32, v: f64) {
        if !v.is_finite() {
            return;
        }
        if self.newest == i32::MIN {
            self.newest = day;
        } else if day > self.newest {
            if self.capacity() < self.reach() {
                if let Some(oldest) = self.oldest_kept_when_newest_is(day) {
                    self.cover(i64::from(oldest), i64::from(day));
                }
            }
            let gap = i64::from(day) - i64::from(self.newest);
            let capacity = self.capacity();
            if gap >= i64::try_from(capacity).unwrap_or(i64::MAX) {
                (0..capacity).for_each(|slot| self.clear(slot));
            } else {
                for d in self.newest + 1..=day {
                    let slot = self.slot(d);
                    self.clear(slot);
                }
            }
            self.newest = day;
        } else if i64::from(day) < self.oldest_reached() {
            return;
        } else if i64::from(day) < self.oldest() {
            self.cover(i64::from(day), i64::from(self.newest));
        }
        let slot = self.slot(day);
        let fits = match &mut self.slots {
            Slots::Fixed { values, decimals } => {
                as_fixed(v, *decimals).map(|raw| values[slot] = raw)
            }
            Slots::Narrow(values) => as_narrow(v).map(|n| values[slot] = n),
            Slots::Wide(values) => {
                values[slot] = v;
                Some(())
            }
        };
        if fits.is_none() {
            // Re-encode everything in the narrowest encoding that also holds `v`.
            let mut all: Vec<Option<f64>> = (0..self.capacity()).map(|s| self.get(s)).collect();
            all[slot] = Some(v);
            self.slots = encode(&all);
        }
    }

    /// Calls `f(day, value)` for each stored night in `from..=to`, oldest first.
    pub fn for_each_in(&self, from: i32, to: i32, mut f: impl FnMut(i32, f64)) {
        if self.newest == i32::MIN {
            return;
        }
        let from = i64::from(from).max(self.oldest());
        let to = i64::from(to).min(i64::from(self.newest));
        for day in from..=to {
            let Ok(day) = i32::try_from(day) else {
                continue;
            };
            if let Some(v) = self.get(self.slot(day)) {
                f(day, v);
            }
        }
    }

    /// Every stored night with its value, oldest first.
    pub fn for_each(&self, f: impl FnMut(i32, f64)) {
        self.for_each_in(i32::MIN, i32::MAX, f);
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        match &self.slots {
            Slots::Fixed { values, .. } => values.len() * 2,
            Slots::Narrow(s) => s.len() * 4,
            Slots::Wide(s) => s.len() * 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(store: &NightStore, from: i32, to: i32) -> Vec<(i32, f64)> {
        let mut out = Vec::new();
        store.for_each_in(from, to, |d, v| out.push((d, v)));
        out
    }

    #[test]
    fn keeps_the_last_nights_and_replaces_corrections() {
        let mut s = NightStore::new(5);
        for day in 10..20 {
            if day != 16 {
                s.insert(day, f64::from(day));
            }
        }
        assert_eq!(
            collect(&s, 0, 100),
            vec![(15, 15.0), (17, 17.0), (18, 18.0), (19, 19.0)]
        );
        s.insert(18, 99.0);
        assert_eq!(collect(&s, 18, 18), vec![(18, 99.0)]);
        // Too old for the ring: ignored.
        s.insert(10, 1.0);
        assert_eq!(collect(&s, 0, 14), vec![]);
        // A jump past the whole ring clears it.
        s.insert(40, 4.0);
        assert_eq!(collect(&s, 0, 100), vec![(40, 4.0)]);
    }

    #[test]
    fn widens_without_rounding_and_keeps_gaps() {
        let mut s = NightStore::new(70);
        s.insert(1, 52.0);
        assert_eq!(s.heap_bytes(), 2, "one night, one slot");
        s.insert(3, 36.5);
        s.insert(5, 43.12);
        assert_eq!(s.heap_bytes(), 8 * 2, "two decimals still fit");
        s.insert(70, 43.0);
        assert_eq!(s.heap_bytes(), 70 * 2, "nights 1 to 70: the whole reach");
        assert_eq!(collect(&s, 0, 5), vec![(1, 52.0), (3, 36.5), (5, 43.12)]);
        s.insert(6, 1000.25);
        assert_eq!(
            s.heap_bytes(),
            70 * 8,
            "100025 overflows a u16, and 43.12 is no f32: f64"
        );
        let x = 55f64.ln();
        s.insert(4, x);
        assert_eq!(
            collect(&s, 0, 6),
            vec![(1, 52.0), (3, 36.5), (4, x), (5, 43.12), (6, 1000.25)]
        );
        assert_eq!(s.heap_bytes(), 70 * 8);
        let mut s = NightStore::new(4);
        s.insert(1, 0.5);
        s.insert(2, 1000.25);
        assert_eq!(s.heap_bytes(), 2 * 4, "f32 holds both exactly");
        let mut s = NightStore::new(4);
        s.insert(1, -3.0);
        s.insert(2, 65_535.0);
        s.insert(3, 70_000.0);
        assert_eq!(
            collect(&s, 0, 5),
            vec![(1, -3.0), (2, 65_535.0), (3, 70_000.0)]
        );
    }

    #[test]
    fn negative_day_numbers_work() {
        let mut s = NightStore::new(3);
        s.insert(-2, 1.0);
        s.insert(-1, 2.0);
        s.insert(0, 3.0);
        s.insert(1, 4.0);
        assert_eq!(collect(&s, -5, 5), vec![(-1, 2.0), (0, 3.0), (1, 4.0)]);
    }

    mod growth {
        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        proptest! {
            /// A growing ring keeps exactly what a map of the last `reach` nights keeps, in
            /// any order of inserts (corrections, late nights, jumps), whatever the values.
            #[test]
            fn keeps_what_a_map_of_the_last_nights_keeps(
                reach in 1usize..80,
                inserts in proptest::collection::vec(
                    (-5i32..200, prop_oneof![
                        (0u16..500).prop_map(f64::from),
                        (0u32..50_000).prop_map(|v| f64::from(v) / 100.0),
                        (1.0f64..200.0).prop_map(f64::ln),
                    ]),
                    1..120,
                ),
            ) {
                let mut store = NightStore::new(reach);
                let mut model: BTreeMap<i32, f64> = BTreeMap::new();
                let mut newest = i32::MIN;
                for (day, v) in inserts {
                    if newest != i32::MIN && i64::from(day) <= i64::from(newest) - reach as i64 {
                        // Older than the reach: ignored.
                    } else {
                        newest = newest.max(day);
                        model.insert(day, v);
                        model.retain(|d, _| i64::from(*d) > i64::from(newest) - reach as i64);
                    }
                    store.insert(day, v);
                    let held: Vec<(i32, f64)> = collect(&store, i32::MIN, i32::MAX);
                    let expected: Vec<(i32, f64)> = model.iter().map(|(d, v)| (*d, *v)).collect();
                    prop_assert_eq!(held, expected);
                    prop_assert!(store.capacity() <= reach);
                }
            }
        }
    }
}
