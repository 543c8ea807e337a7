//! Count, mean and sum of squared deviations (M2) as a monoid, for the sample standard deviation.
//!
//! Each sample lifts to its own one-element Welford state (n=1, mean=v, M2=0); states merge with
//! Chan, Golub and LeVeque's parallel formula. M2 is only ever a sum of non-negative terms built
//! from differences of means, never the `sum(v^2) - n*mean^2` that cancels catastrophically when
//! the spread is small against the level (a heart rate of 60 ± 0.1, say).

use super::two_stacks::Monoid;
use super::Sample;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MomentsAgg {
    pub n: u64,
    mean: f64,
    m2: f64,
}

impl MomentsAgg {
    /// Sample standard deviation (n - 1 denominator); undefined below two samples.
    pub fn sample_sd(&self) -> Option<f64> {
        (self.n >= 2).then(|| (self.m2 / (self.n - 1) as f64).sqrt())
    }
}

#[derive(Clone, Copy, Debug)]
pub struct MomentsM;

impl Monoid for MomentsM {
    type Agg = MomentsAgg;
    fn identity(&self) -> MomentsAgg {
        MomentsAgg::default()
    }
    fn lift(&self, s: Sample) -> MomentsAgg {
        MomentsAgg {
            n: 1,
            mean: s.v,
            m2: 0.0,
        }
    }
    fn combine(&self, a: MomentsAgg, b: MomentsAgg) -> MomentsAgg {
        // The identity has no mean; merging it through the formula would divide 0 by 0.
        if a.n == 0 {
            return b;
        }
        if b.n == 0 {
            return a;
        }
        let n = a.n + b.n;
        let delta = b.mean - a.mean;
        let b_share = b.n as f64 / n as f64;
        MomentsAgg {
            n,
            mean: a.mean + delta * b_share,
            m2: a.m2 + b.m2 + delta * delta * a.n as f64 * b_share,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(values: &[f64]) -> MomentsAgg {
        values.iter().fold(MomentsM.identity(), |acc, &v| {
            MomentsM.combine(acc, MomentsM.lift(Sample { t: 0, v }))
        })
    }

    #[test]
    fn two_samples() {
        let sd = fold(&[2.0, 4.0]).sample_sd();
        assert_eq!(sd, Some(2f64.sqrt()));
    }

    #[test]
    fn fewer_than_two_is_undefined() {
        assert_eq!(fold(&[]).sample_sd(), None);
        assert_eq!(fold(&[7.0]).sample_sd(), None);
    }

    #[test]
    fn equal_values_give_exactly_zero() {
        assert_eq!(fold(&[0.1; 9]).sample_sd(), Some(0.0));
    }

    #[test]
    fn small_spread_on_a_large_level_is_kept() {
        // sum(v^2) - n*mean^2 loses every digit here; the merge keeps them.
        let level = 1e9;
        let values: Vec<f64> = [-1.0, 0.0, 1.0].iter().map(|d| level + d).collect();
        let halves = MomentsM.combine(fold(&values[..1]), fold(&values[1..]));
        assert_eq!(halves.sample_sd(), Some(1.0));
    }
}
