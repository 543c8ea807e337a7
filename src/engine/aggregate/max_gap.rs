//! Largest hole in coverage: a monotonic deque of inter-sample gaps.
//!
//! Sample i's gap is its distance to sample i-1, and it counts only while sample i is not the
//! front (the front's predecessor has left the window). The deque keeps gaps in decreasing order:
//! a gap that is no larger than a newer one can never be the maximum again, because the newer one
//! leaves the window later. The maximum is then the deque's head, and the front's lead-in from
//! the window start is checked separately at query time.

use std::collections::VecDeque;

#[derive(Clone, Debug, Default)]
pub struct GapDeque {
    /// Times of every sample in the window: the front's time after a pop is needed for the
    /// lead-in, and is not recoverable from the gaps alone.
    times: VecDeque<i64>,
    /// Sequence number of `times[0]`; sequence numbers never repeat until `clear`.
    front_seq: u64,
    /// (sequence number of the later sample, gap in ms), gaps strictly decreasing.
    gaps: VecDeque<(u64, i64)>,
}

impl GapDeque {
    pub fn push(&mut self, t: i64) {
        if let Some(&prev) = self.times.back() {
            let gap = t.saturating_sub(prev);
            let seq = self.front_seq + self.times.len() as u64;
            while self.gaps.back().is_some_and(|&(_, g)| g <= gap) {
                self.gaps.pop_back();
            }
            self.gaps.push_back((seq, gap));
        }
        self.times.push_back(t);
    }

    /// Removes the oldest sample; a no-op when empty.
    pub fn pop_front(&mut self) {
        if self.times.pop_front().is_some() {
            self.front_seq += 1;
            while self
                .gaps
                .front()
                .is_some_and(|&(seq, _)| seq <= self.front_seq)
            {
                self.gaps.pop_front();
            }
        }
    }

    /// Largest gap in seconds, counting the lead-in from `window_start` to the first sample
    /// (a first sample before `window_start` has no lead-in); `None` when empty.
    pub fn max_gap_secs(&self, window_start: i64) -> Option<f64> {
        let &first = self.times.front()?;
        let lead_in = first.saturating_sub(window_start).max(0);
        let inner = self.gaps.front().map_or(0, |&(_, g)| g);
        Some(lead_in.max(inner) as f64 / 1000.0)
    }

    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn clear(&mut self) {
        self.times.clear();
        self.gaps.clear();
        self.front_seq = 0;
    }

    pub fn heap_bytes(&self) -> usize {
        self.times.capacity() * std::mem::size_of::<i64>()
            + self.gaps.capacity() * std::mem::size_of::<(u64, i64)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_leaves_with_its_earlier_sample() {
        let mut g = GapDeque::default();
        for t in [10_000, 15_000, 45_000, 46_000] {
            g.push(t);
        }
        assert_eq!(g.max_gap_secs(0), Some(30.0));
        g.pop_front(); // front 15 s: the 5 s gap and the 10 s lead-in are gone
        assert_eq!(g.max_gap_secs(15_000), Some(30.0));
        g.pop_front(); // front 45 s: the 30 s gap is gone, only 1 s remains
        assert_eq!(g.max_gap_secs(45_000), Some(1.0));
        assert_eq!(g.max_gap_secs(40_000), Some(5.0));
        g.pop_front();
        g.pop_front();
        assert_eq!(g.max_gap_secs(0), None);
        g.pop_front();
        assert_eq!(g.len(), 0);
    }

    #[test]
    fn front_before_window_start_has_no_lead_in() {
        let mut g = GapDeque::default();
        g.push(5_000);
        assert_eq!(g.max_gap_secs(9_000), Some(0.0));
        assert_eq!(g.max_gap_secs(0), Some(5.0));
    }
}
