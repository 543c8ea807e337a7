//! One value per local night, for the last few nights, in as few bytes as exactness allows.
//!
//! Nightly state is most of what a user costs (a 60-night baseline per metric), so the store
//! is a ring of slots indexed by day number with a presence bitmap, and values are kept in the
//! narrowest type that holds every value stored so far exactly: `u16` for whole numbers up to
//! 65 535 (bpm and ms as devices report them), then `f32`, then `f64` — widening for good the
//! first time a value does not fit. No value is ever rounded.

/// Values of the ring, narrow while exact.
#[derive(Debug, Clone)]
enum Slots {
    Whole(Box<[u16]>),
    Narrow(Box<[f32]>),
    Wide(Box<[f64]>),
}

fn as_whole(v: f64) -> Option<u16> {
    let w = v as u16;
    (f64::from(w) == v && v.is_sign_positive()).then_some(w)
}

fn as_narrow(v: f64) -> Option<f32> {
    let n = v as f32;
    (f64::from(n) == v).then_some(n)
}

/// A ring of `capacity` consecutive nights ending at the newest night seen.
#[derive(Debug, Clone)]
pub struct NightStore {
    newest: i32,
    present: Box<[u64]>,
    slots: Slots,
}

impl NightStore {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        NightStore {
            newest: i32::MIN,
            present: vec![0; capacity.div_ceil(64)].into_boxed_slice(),
            slots: Slots::Whole(vec![0; capacity].into_boxed_slice()),
        }
    }

    fn capacity(&self) -> usize {
        match &self.slots {
            Slots::Whole(s) => s.len(),
            Slots::Narrow(s) => s.len(),
            Slots::Wide(s) => s.len(),
        }
    }

    fn slot(&self, day: i32) -> usize {
        let capacity = i64::try_from(self.capacity()).unwrap_or(i64::MAX);
        // rem_euclid of a positive modulus is in 0..capacity.
        usize::try_from(i64::from(day).rem_euclid(capacity)).unwrap_or(0)
    }

    fn is_present(&self, slot: usize) -> bool {
        self.present[slot / 64] & (1 << (slot % 64)) != 0
    }

    fn set_present(&mut self, slot: usize, on: bool) {
        let bit = 1u64 << (slot % 64);
        if on {
            self.present[slot / 64] |= bit;
        } else {
            self.present[slot / 64] &= !bit;
        }
    }

    /// The oldest night the ring can still hold.
    fn oldest(&self) -> i64 {
        i64::from(self.newest) - i64::try_from(self.capacity()).unwrap_or(i64::MAX) + 1
    }

    /// Stores `v` for `day` (replacing an earlier value for that night). A night older than
    /// the ring reaches is ignored: the engine's lateness bound keeps that from happening.
    pub fn insert(&mut self, day: i32, v: f64) {
        if self.newest == i32::MIN {
            self.newest = day;
        } else if day > self.newest {
            let gap = i64::from(day) - i64::from(self.newest);
            if gap >= i64::try_from(self.capacity()).unwrap_or(i64::MAX) {
                self.present.iter_mut().for_each(|w| *w = 0);
            } else {
                for d in self.newest + 1..=day {
                    let slot = self.slot(d);
                    self.set_present(slot, false);
                }
            }
            self.newest = day;
        } else if i64::from(day) < self.oldest() {
            return;
        }
        let slot = self.slot(day);
        self.set_present(slot, true);
        match &mut self.slots {
            Slots::Whole(values) => match as_whole(v) {
                Some(w) => values[slot] = w,
                None => {
                    self.slots = match as_narrow(v) {
                        Some(_) => Slots::Narrow(values.iter().map(|x| f32::from(*x)).collect()),
                        None => Slots::Wide(values.iter().map(|x| f64::from(*x)).collect()),
                    };
                    self.insert_value(slot, v);
                }
            },
            Slots::Narrow(values) => match as_narrow(v) {
                Some(n) => values[slot] = n,
                None => {
                    self.slots = Slots::Wide(values.iter().map(|x| f64::from(*x)).collect());
                    self.insert_value(slot, v);
                }
            },
            Slots::Wide(values) => values[slot] = v,
        }
    }

    /// Stores into a slot of a ring already wide enough for `v`.
    fn insert_value(&mut self, slot: usize, v: f64) {
        match &mut self.slots {
            Slots::Whole(values) => values[slot] = as_whole(v).unwrap_or_default(),
            Slots::Narrow(values) => values[slot] = v as f32,
            Slots::Wide(values) => values[slot] = v,
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
            let slot = self.slot(day);
            if self.is_present(slot) {
                let v = match &self.slots {
                    Slots::Whole(values) => f64::from(values[slot]),
                    Slots::Narrow(values) => f64::from(values[slot]),
                    Slots::Wide(values) => values[slot],
                };
                f(day, v);
            }
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.present.len() * 8
            + match &self.slots {
                Slots::Whole(s) => s.len() * 2,
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
    fn widens_without_rounding() {
        let mut s = NightStore::new(70);
        s.insert(1, 52.0);
        assert_eq!(s.heap_bytes(), 70 * 2 + 16);
        s.insert(2, 36.5);
        assert_eq!(s.heap_bytes(), 70 * 4 + 16);
        let x = 55f64.ln();
        s.insert(3, x);
        assert_eq!(collect(&s, 0, 5), vec![(1, 52.0), (2, 36.5), (3, x)]);
        assert_eq!(s.heap_bytes(), 70 * 8 + 16);
        let mut s = NightStore::new(4);
        s.insert(1, -3.0);
        s.insert(2, 70_000.0);
        assert_eq!(collect(&s, 0, 5), vec![(1, -3.0), (2, 70_000.0)]);
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
}
