//! Least-squares slope of value against time, as a monoid of centred co-moments.
//!
//! Runs merge like Chan's variance: the means of x and y and the centred sums
//! Cxx = sum((x - mean_x)^2) and Cxy = sum((x - mean_x)(y - mean_y)) combine through the
//! difference of means, so nothing like `n*sum(xy) - sum(x)*sum(y)` ever cancels.
//!
//! Each run measures its x in milliseconds from its own first sample, not from one fixed anchor:
//! the offset between two runs is an exact i64 difference, so every rounded quantity is as small
//! as the window's span. With a fixed anchor, a window that never empties drifts away from it,
//! and the means then round at the scale of that distance (an anchor 1.5 days back and a 200 ms
//! span already cost 1e-9 relative). Only the final quotient is converted to value units per day.

use super::two_stacks::Monoid;
use super::Sample;

pub const MS_PER_DAY: f64 = 86_400_000.0;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SlopeAgg {
    pub n: u64,
    /// Mean of t - t_first, in ms.
    mean_x: f64,
    mean_y: f64,
    cxx: f64,
    cxy: f64,
    /// Times of the oldest and newest sample: the origin of x, and "all t equal" decided on
    /// integers rather than on a rounded Cxx.
    t_first: i64,
    t_last: i64,
}

impl SlopeAgg {
    /// Slope in value units per day; undefined below two samples or when all times are equal.
    pub fn per_day(&self) -> Option<f64> {
        if self.n < 2 || self.t_first == self.t_last || self.cxx <= 0.0 {
            return None;
        }
        Some(self.cxy / self.cxx * MS_PER_DAY)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct SlopeM;

impl Monoid for SlopeM {
    type Agg = SlopeAgg;
    fn identity(&self) -> SlopeAgg {
        SlopeAgg::default()
    }
    fn lift(&self, s: Sample) -> SlopeAgg {
        SlopeAgg {
            n: 1,
            mean_x: 0.0,
            mean_y: s.v,
            cxx: 0.0,
            cxy: 0.0,
            t_first: s.t,
            t_last: s.t,
        }
    }
    fn combine(&self, a: SlopeAgg, b: SlopeAgg) -> SlopeAgg {
        // The identity has no means; merging it through the formula would divide 0 by 0.
        if a.n == 0 {
            return b;
        }
        if b.n == 0 {
            return a;
        }
        let n = a.n + b.n;
        let b_share = b.n as f64 / n as f64;
        // b's origin moved onto a's; exact while runs span less than 2^53 ms.
        let origin_shift = b.t_first.saturating_sub(a.t_first) as f64;
        let dx = (origin_shift + b.mean_x) - a.mean_x;
        let dy = b.mean_y - a.mean_y;
        let weight = a.n as f64 * b_share;
        SlopeAgg {
            n,
            mean_x: a.mean_x + dx * b_share,
            mean_y: a.mean_y + dy * b_share,
            cxx: a.cxx + b.cxx + dx * dx * weight,
            cxy: a.cxy + b.cxy + dx * dy * weight,
            t_first: a.t_first,
            t_last: b.t_last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(samples: &[(i64, f64)]) -> SlopeAgg {
        samples.iter().fold(SlopeM.identity(), |acc, &(t, v)| {
            SlopeM.combine(acc, SlopeM.lift(Sample { t, v }))
        })
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn hand_computed() {
        // x in days 0, .25, .5, .75; Sxx = 0.3125, Sxy = 1.5, slope 4.8 per day.
        let agg = fold(&[
            (0, 1.0),
            (6 * HOUR, 2.0),
            (12 * HOUR, 2.0),
            (18 * HOUR, 5.0),
        ]);
        let slope = agg.per_day().unwrap_or(f64::NAN);
        assert!((slope - 4.8).abs() < 1e-12, "{slope}");
    }

    #[test]
    fn undefined_cases() {
        assert_eq!(fold(&[]).per_day(), None);
        assert_eq!(fold(&[(5, 1.0)]).per_day(), None);
        assert_eq!(fold(&[(5, 1.0), (5, 3.0), (5, 2.0)]).per_day(), None);
    }

    #[test]
    fn epoch_times_keep_precision() {
        // Samples from 2024-01-01 one minute apart: slope of 1 per minute.
        let t0 = 1_704_067_200_000;
        let samples: Vec<(i64, f64)> = (0..10)
            .map(|i| (t0 + i * 60_000, 70.0 + i as f64))
            .collect();
        let slope = fold(&samples).per_day().unwrap_or(f64::NAN);
        assert!((slope - 1440.0).abs() < 1e-9, "{slope}");
    }
}
