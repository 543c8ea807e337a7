//! Count and Sum monoids; Mean is their quotient.
//!
//! The sum is a double-double (`hi + lo`, with `lo` the rounding error of `hi`) combined by the
//! error-free TwoSum transformation. Partial sums then merge with ~2^-106 relative error, so the
//! result is the correctly rounded sum (to within an ulp) whatever tree shape Two-Stacks folds
//! in, even when large values cancel. Mean uses this rather than Welford's running mean for the
//! same reason: a sum divided once by n is as accurate as a mean can be.

use super::two_stacks::Monoid;
use super::Sample;

/// Counts samples; Count needs no more than this.
#[derive(Clone, Copy, Debug)]
pub struct CountM;

impl Monoid for CountM {
    type Agg = u64;
    fn identity(&self) -> u64 {
        0
    }
    fn lift(&self, _: Sample) -> u64 {
        1
    }
    fn combine(&self, older: u64, newer: u64) -> u64 {
        older + newer
    }
}

/// Sample count and double-double sum of the values.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SumAgg {
    pub n: u64,
    hi: f64,
    lo: f64,
}

impl SumAgg {
    pub fn sum(&self) -> f64 {
        self.hi + self.lo
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum() / self.n as f64)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct SumM;

impl Monoid for SumM {
    type Agg = SumAgg;
    fn identity(&self) -> SumAgg {
        SumAgg::default()
    }
    fn lift(&self, s: Sample) -> SumAgg {
        SumAgg {
            n: 1,
            hi: s.v,
            lo: 0.0,
        }
    }
    fn combine(&self, a: SumAgg, b: SumAgg) -> SumAgg {
        let (s, e) = two_sum(a.hi, b.hi);
        let (hi, lo) = fast_two_sum(s, e + (a.lo + b.lo));
        SumAgg {
            n: a.n + b.n,
            hi,
            lo,
        }
    }
}

/// Knuth's TwoSum: `s + e == a + b` exactly, with `s` the rounded sum.
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let b_virtual = s - a;
    let a_virtual = s - b_virtual;
    (s, (a - a_virtual) + (b - b_virtual))
}

/// Dekker's renormalisation; exact because |e| is far below |s| after `two_sum`.
fn fast_two_sum(s: f64, e: f64) -> (f64, f64) {
    let hi = s + e;
    (hi, e - (hi - s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(values: &[f64]) -> SumAgg {
        values.iter().fold(SumM.identity(), |acc, &v| {
            SumM.combine(acc, SumM.lift(Sample { t: 0, v }))
        })
    }

    #[test]
    fn cancellation_keeps_the_small_terms() {
        // Plain left-to-right f64 summation returns 0 here.
        let agg = fold(&[1e16, 1.0, -1e16, 1.0]);
        assert_eq!(agg.sum(), 2.0);
        assert_eq!(agg.n, 4);
    }

    #[test]
    fn merge_order_does_not_matter() {
        let values = [0.1, 0.2, 0.3, 1e9, -1e9, 7.25];
        let left = SumM.combine(fold(&values[..3]), fold(&values[3..]));
        assert_eq!(left.sum(), fold(&values).sum());
        assert_eq!(left.sum(), 7.85);
    }

    #[test]
    fn mean_of_empty_is_undefined() {
        assert_eq!(SumAgg::default().mean(), None);
        assert_eq!(fold(&[1.0, 2.0]).mean(), Some(1.5));
    }
}
