//! Adjusted EWMA (pandas `adjust=True`) as a segment monoid.
//!
//! A run of samples v_1..v_k is summarised by S = sum(v_i d^(k-i)), W = sum(d^(k-i)) and
//! D = d^k, where d = 1 - alpha. Appending a newer run R to an older run L ages every weight of
//! L by D_R, hence S = S_L*D_R + S_R, W = W_L*D_R + W_R, D = D_L*D_R. The EWMA is S / W.

use super::two_stacks::Monoid;
use super::Sample;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EwmaAgg {
    s: f64,
    w: f64,
    d: f64,
}

impl EwmaAgg {
    pub fn value(&self) -> Option<f64> {
        // The newest sample always has weight 1, so W >= 1 whenever the window is non-empty.
        (self.w > 0.0).then(|| self.s / self.w)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct EwmaM {
    /// 1 - alpha: how much one newer sample ages the weights of everything before it.
    decay: f64,
}

impl EwmaM {
    pub fn new(alpha: f64) -> Self {
        Self { decay: 1.0 - alpha }
    }
}

impl Monoid for EwmaM {
    type Agg = EwmaAgg;
    fn identity(&self) -> EwmaAgg {
        EwmaAgg {
            s: 0.0,
            w: 0.0,
            d: 1.0,
        }
    }
    fn lift(&self, s: Sample) -> EwmaAgg {
        EwmaAgg {
            s: s.v,
            w: 1.0,
            d: self.decay,
        }
    }
    fn combine(&self, l: EwmaAgg, r: EwmaAgg) -> EwmaAgg {
        EwmaAgg {
            s: l.s * r.d + r.s,
            w: l.w * r.d + r.w,
            d: l.d * r.d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(m: &EwmaM, values: &[f64]) -> EwmaAgg {
        values.iter().fold(m.identity(), |acc, &v| {
            m.combine(acc, m.lift(Sample { t: 0, v }))
        })
    }

    #[test]
    fn matches_pandas_adjusted() {
        // pd.Series([1, 2, 3]).ewm(alpha=0.5).mean().iloc[-1] == 2.428571...: (0.25+1+3)/1.75
        let m = EwmaM::new(0.5);
        assert_eq!(fold(&m, &[1.0, 2.0, 3.0]).value(), Some(4.25 / 1.75));
    }

    #[test]
    fn alpha_one_is_the_last_value() {
        let m = EwmaM::new(1.0);
        assert_eq!(fold(&m, &[5.0, 9.0, 4.0]).value(), Some(4.0));
    }

    #[test]
    fn empty_is_undefined_and_split_is_associative() {
        let m = EwmaM::new(0.3);
        assert_eq!(fold(&m, &[]).value(), None);
        let values = [10.0, 20.0, 15.0, 30.0];
        let split = m.combine(fold(&m, &values[..1]), fold(&m, &values[1..]));
        let whole = fold(&m, &values);
        let (a, b) = (split.value().unwrap_or(0.0), whole.value().unwrap_or(1.0));
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}
