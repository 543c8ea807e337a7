//! Window aggregates: the from-scratch reference [`naive`], and [`Incremental`], which keeps
//! one aggregate current over a FIFO window in amortised O(1) (O(n) memmove for percentiles).
//! Which aggregate is which is the rule language's registry, [`AggKind`].
//!
//! # Layout
//! - `naive`: recomputation from scratch, used by calendar windows and as the test oracle.
//! - `two_stacks`: generic Two-Stacks sliding aggregation over a `Monoid`, which runs
//!   `sum` (Count, Sum, Mean), `moments` (StdDev), `extrema` (Min, Max), `ends` (First, Last),
//!   `slope` and `ewma`.
//! - `order_stat`: exact sorted multiset for Median and Percentile.
//! - `max_gap`: monotonic deque of inter-sample gaps.
//!
//! # Inputs
//! Samples are pushed with non-decreasing `t`, and values must be finite: the caller filters
//! NaN and infinities (a missing reading is a missing sample, not a NaN). Debug builds assert
//! both. In release builds a non-finite value does not panic and does not corrupt the
//! structures: the aggregates that see it give NaN, infinity, or ignore it (Min and Max skip
//! NaN; percentiles order it by `f64::total_cmp`) until it is popped, and since no structure
//! subtracts anything out, the aggregate is correct again from then on.

mod ends;
mod ewma;
mod extrema;
mod max_gap;
mod moments;
mod naive;
mod order_stat;
mod slope;
mod sum;
mod two_stacks;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use naive::naive;

use crate::rules::AggKind;

use ends::{FirstM, LastM};
use ewma::EwmaM;
use extrema::{MaxM, MinM};
use max_gap::GapDeque;
use moments::MomentsM;
use order_stat::OrderStat;
use slope::SlopeM;
use sum::{CountM, SumM};
use two_stacks::TwoStacks;

/// One observation in a window: event time in milliseconds since the Unix epoch, and its value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub t: i64,
    pub v: f64,
}

/// Incremental aggregate over a FIFO window: push at the back (t non-decreasing), pop at the
/// front. Its value always equals [`naive`] over the same samples (exactly for Count, Min, Max,
/// First, Last, Median, Percentile and MaxGap; to within rounding for the others).
#[derive(Clone, Debug)]
pub struct Incremental {
    state: State,
    /// Newest time pushed since `clear`, to check the ordering contract in debug builds.
    last_t: Option<i64>,
}

/// One structure per aggregate: enum dispatch keeps it a closed, inlinable set.
#[derive(Clone, Debug)]
enum State {
    Count(TwoStacks<CountM>),
    Sum(TwoStacks<SumM>),
    Mean(TwoStacks<SumM>),
    StdDev(TwoStacks<MomentsM>),
    Min(TwoStacks<MinM>),
    Max(TwoStacks<MaxM>),
    Slope(TwoStacks<SlopeM>),
    First(TwoStacks<FirstM>),
    Last(TwoStacks<LastM>),
    Ewma(TwoStacks<EwmaM>),
    Percentile { set: OrderStat, p: f64 },
    MaxGap(GapDeque),
}

/// Runs `$body` with `$s` bound to whichever structure `$state` holds; every structure has the
/// same `pop_front`, `len`, `clear` and `heap_bytes`.
macro_rules! on_structure {
    ($state:expr, $s:ident => $body:expr) => {
        match $state {
            State::Count($s) => $body,
            State::Sum($s) | State::Mean($s) => $body,
            State::StdDev($s) => $body,
            State::Min($s) => $body,
            State::Max($s) => $body,
            State::Slope($s) => $body,
            State::First($s) => $body,
            State::Last($s) => $body,
            State::Ewma($s) => $body,
            State::Percentile { set: $s, .. } => $body,
            State::MaxGap($s) => $body,
        }
    };
}

impl Incremental {
    pub fn new(kind: &AggKind) -> Self {
        let state = match kind {
            AggKind::Count => State::Count(TwoStacks::new(CountM)),
            AggKind::Sum => State::Sum(TwoStacks::new(SumM)),
            AggKind::Mean => State::Mean(TwoStacks::new(SumM)),
            AggKind::StdDev => State::StdDev(TwoStacks::new(MomentsM)),
            AggKind::Min => State::Min(TwoStacks::new(MinM)),
            AggKind::Max => State::Max(TwoStacks::new(MaxM)),
            AggKind::Slope => State::Slope(TwoStacks::new(SlopeM)),
            AggKind::First => State::First(TwoStacks::new(FirstM)),
            AggKind::Last => State::Last(TwoStacks::new(LastM)),
            AggKind::Ewma { alpha } => State::Ewma(TwoStacks::new(EwmaM::new(*alpha))),
            AggKind::Median => State::Percentile {
                set: OrderStat::default(),
                p: 50.0,
            },
            AggKind::Percentile(p) => State::Percentile {
                set: OrderStat::default(),
                p: *p,
            },
            AggKind::MaxGap => State::MaxGap(GapDeque::default()),
        };
        Self {
            state,
            last_t: None,
        }
    }

    pub fn push(&mut self, s: Sample) {
        debug_assert!(s.v.is_finite(), "non-finite value {} at t={}", s.v, s.t);
        debug_assert!(
            self.last_t.is_none_or(|last| s.t >= last),
            "sample at t={} pushed after t={:?}",
            s.t,
            self.last_t
        );
        self.last_t = Some(s.t);
        match &mut self.state {
            State::Count(x) => x.push(s),
            State::Sum(x) | State::Mean(x) => x.push(s),
            State::StdDev(x) => x.push(s),
            State::Min(x) => x.push(s),
            State::Max(x) => x.push(s),
            State::Slope(x) => x.push(s),
            State::First(x) => x.push(s),
            State::Last(x) => x.push(s),
            State::Ewma(x) => x.push(s),
            State::Percentile { set, .. } => set.push(s.v),
            State::MaxGap(x) => x.push(s.t),
        }
    }

    /// Removes the oldest sample; a no-op when empty.
    pub fn pop_front(&mut self) {
        on_structure!(&mut self.state, x => x.pop_front())
    }

    /// The aggregate over the current window; see [`naive`] for when it is `None`.
    /// `window_start` (ms) matters only to MaxGap.
    pub fn value(&self, window_start: i64) -> Option<f64> {
        match &self.state {
            State::Count(x) => Some(x.query() as f64),
            State::Sum(x) => Some(x.query().sum()),
            State::Mean(x) => x.query().mean(),
            State::StdDev(x) => x.query().sample_sd(),
            State::Min(x) => (!x.is_empty()).then(|| x.query()),
            State::Max(x) => (!x.is_empty()).then(|| x.query()),
            State::Slope(x) => x.query().per_day(),
            State::First(x) => x.query(),
            State::Last(x) => x.query(),
            State::Ewma(x) => x.query().value(),
            State::Percentile { set, p } => set.percentile(*p),
            State::MaxGap(x) => x.max_gap_secs(window_start),
        }
    }

    pub fn len(&self) -> usize {
        on_structure!(&self.state, x => x.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the window, keeping allocations for reuse.
    pub fn clear(&mut self) {
        self.last_t = None;
        on_structure!(&mut self.state, x => x.clear())
    }

    /// Approximate heap bytes held (for the state-size report): allocated capacity, since that
    /// is what the process pays for.
    pub fn heap_bytes(&self) -> usize {
        on_structure!(&self.state, x => x.heap_bytes())
    }
}
