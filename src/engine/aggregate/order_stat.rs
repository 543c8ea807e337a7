//! Exact order statistics for Median and Percentile: the window's values kept sorted.
//!
//! A sorted `Vec<f64>` with binary-search insert and remove is exact (no sketch error, so alerts
//! on p95 fire on the true p95) and, at the window sizes of health rules (up to a few thousand
//! samples), its O(n) memmove of contiguous floats beats the pointer chasing of a balanced tree or
//! skip list; the rank lookup itself is O(1). Were windows to reach 10^5 samples, an
//! order-statistic tree would be the next step. Values are ordered by `f64::total_cmp`, which is
//! total even for NaN, so removal always finds the exact value that was inserted.

use std::collections::VecDeque;

#[derive(Clone, Debug, Default)]
pub struct OrderStat {
    sorted: Vec<f64>,
    /// Values in arrival order: `pop_front` must know which value leaves the window.
    arrival: VecDeque<f64>,
}

impl OrderStat {
    pub fn push(&mut self, v: f64) {
        let at = self.sorted.partition_point(|x| x.total_cmp(&v).is_lt());
        self.sorted.insert(at, v);
        self.arrival.push_back(v);
    }

    /// Removes the oldest value; a no-op when empty.
    pub fn pop_front(&mut self) {
        if let Some(v) = self.arrival.pop_front() {
            match self.sorted.binary_search_by(|x| x.total_cmp(&v)) {
                Ok(at) => {
                    self.sorted.remove(at);
                }
                Err(_) => debug_assert!(false, "value {v} missing from the sorted window"),
            }
        }
    }

    pub fn percentile(&self, p: f64) -> Option<f64> {
        percentile_of_sorted(&self.sorted, p)
    }

    pub fn len(&self) -> usize {
        self.arrival.len()
    }

    pub fn clear(&mut self) {
        self.sorted.clear();
        self.arrival.clear();
    }

    pub fn heap_bytes(&self) -> usize {
        (self.sorted.capacity() + self.arrival.capacity()) * std::mem::size_of::<f64>()
    }
}

/// Percentile `p` (0..=100) of ascending values by linear interpolation between closest ranks
/// (Hyndman-Fan type 7, numpy's default). `p` outside 0..=100 is clamped; `None` when empty.
pub fn percentile_of_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = (p / 100.0).clamp(0.0, 1.0) * last as f64;
    // A NaN `p` survives the clamp; the saturating cast then picks rank 0 and the lerp yields
    // NaN, which is the honest answer and does not panic.
    let lo = (rank.floor() as usize).min(last);
    let hi = (lo + 1).min(last);
    let (a, b, t) = (sorted[lo], sorted[hi], rank - lo as f64);
    Some(lerp(a, b, t))
}

/// numpy's `_lerp`: interpolating from the nearer end keeps the result exactly `b` at t = 1 and
/// monotone in t, which `a + (b - a) * t` alone does not guarantee.
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    if t == 0.0 {
        return a;
    }
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_7_interpolation() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile_of_sorted(&v, 50.0), Some(2.5));
        assert_eq!(percentile_of_sorted(&v, 25.0), Some(1.75));
        assert_eq!(percentile_of_sorted(&v, 75.0), Some(3.25));
        assert_eq!(percentile_of_sorted(&v, 0.0), Some(1.0));
        assert_eq!(percentile_of_sorted(&v, 100.0), Some(4.0));
        assert_eq!(percentile_of_sorted(&[], 50.0), None);
        assert_eq!(percentile_of_sorted(&[7.0], 95.0), Some(7.0));
    }

    #[test]
    fn out_of_range_p_is_clamped() {
        let v = [1.0, 2.0];
        assert_eq!(percentile_of_sorted(&v, -5.0), Some(1.0));
        assert_eq!(percentile_of_sorted(&v, 250.0), Some(2.0));
    }

    #[test]
    fn duplicates_leave_in_arrival_order() {
        let mut os = OrderStat::default();
        for v in [3.0, 1.0, 3.0, 2.0] {
            os.push(v);
        }
        os.pop_front();
        os.pop_front();
        assert_eq!(os.sorted, vec![2.0, 3.0]);
        assert_eq!(os.len(), 2);
        os.pop_front();
        os.pop_front();
        os.pop_front();
        assert_eq!(os.percentile(50.0), None);
    }

    #[test]
    fn nan_leaves_cleanly() {
        // Callers filter NaN; if one slips through it must still leave with its sample.
        let mut os = OrderStat::default();
        os.push(f64::NAN);
        os.push(5.0);
        os.pop_front();
        assert_eq!(os.percentile(50.0), Some(5.0));
    }
}
