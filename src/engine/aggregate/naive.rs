//! The reference: every aggregate recomputed from scratch over samples in time order.
//!
//! Calendar windows use it directly and the incremental structures are tested against it, so it
//! favours accuracy over speed and shares no arithmetic with them beyond the percentile
//! interpolation rule (which is a definition, not an algorithm): Neumaier summation, two-pass
//! centred moments, and times centred on exact integers.

use super::order_stat::percentile_of_sorted;
use super::slope::MS_PER_DAY;
use super::Sample;
use crate::rules::AggKind;

/// Recompute `kind` over `samples` (time order). Count and Sum of nothing are 0; every other
/// aggregate is `None` below [`AggKind::min_defined`] samples. `window_start` matters only to
/// MaxGap.
pub fn naive(kind: &AggKind, samples: &[Sample], window_start: i64) -> Option<f64> {
    let values = || samples.iter().map(|s| s.v);
    let n = samples.len();
    match kind {
        AggKind::Count => Some(n as f64),
        AggKind::Sum => Some(neumaier(values())),
        AggKind::Mean => mean(samples),
        AggKind::Min => values().reduce(f64::min),
        AggKind::Max => values().reduce(f64::max),
        AggKind::StdDev => {
            let m = mean(samples).filter(|_| n >= 2)?;
            // Corrected two-pass: the second sum removes the rounding left in `m`.
            let ss = neumaier(values().map(|v| (v - m) * (v - m)));
            let s = neumaier(values().map(|v| v - m));
            Some(((ss - s * s / n as f64) / (n - 1) as f64).max(0.0).sqrt())
        }
        AggKind::Median => percentile(samples, 50.0),
        AggKind::Percentile(p) => percentile(samples, *p),
        AggKind::Slope => slope(samples),
        AggKind::First => samples.first().map(|s| s.v),
        AggKind::Last => samples.last().map(|s| s.v),
        AggKind::Ewma { alpha } => {
            let decay = 1.0 - alpha;
            let (mut s, mut w, mut weight) = (0.0, 0.0, 1.0);
            for v in values().rev() {
                s += weight * v;
                w += weight;
                weight *= decay;
            }
            (n > 0).then(|| s / w)
        }
        AggKind::MaxGap => {
            let first = samples.first()?;
            let lead_in = first.t.saturating_sub(window_start).max(0);
            let inner = samples.windows(2).map(|p| p[1].t.saturating_sub(p[0].t));
            Some(inner.fold(lead_in, i64::max) as f64 / 1000.0)
        }
    }
}

fn mean(samples: &[Sample]) -> Option<f64> {
    let n = samples.len();
    (n > 0).then(|| neumaier(samples.iter().map(|s| s.v)) / n as f64)
}

fn percentile(samples: &[Sample], p: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.iter().map(|s| s.v).collect();
    sorted.sort_by(f64::total_cmp);
    percentile_of_sorted(&sorted, p)
}

fn slope(samples: &[Sample]) -> Option<f64> {
    let (first, last) = (samples.first()?, samples.last()?);
    if samples.len() < 2 || first.t == last.t {
        return None;
    }
    // Milliseconds from the first sample: exact integers in f64.
    let x = |s: &Sample| s.t.saturating_sub(first.t) as f64;
    let n = samples.len() as f64;
    let mean_x = neumaier(samples.iter().map(x)) / n;
    let mean_y = neumaier(samples.iter().map(|s| s.v)) / n;
    let sxx = neumaier(samples.iter().map(|s| (x(s) - mean_x) * (x(s) - mean_x)));
    let sxy = neumaier(samples.iter().map(|s| (x(s) - mean_x) * (s.v - mean_y)));
    Some(sxy / sxx * MS_PER_DAY)
}

/// Neumaier's compensated sum: error about one rounding of the result, even under cancellation.
fn neumaier(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut comp) = (0.0f64, 0.0f64);
    for v in values {
        let t = sum + v;
        comp += if sum.abs() >= v.abs() {
            (sum - t) + v
        } else {
            (v - t) + sum
        };
        sum = t;
    }
    sum + comp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neumaier_survives_cancellation() {
        assert_eq!(neumaier([1e16, 1.0, -1e16, 1.0].into_iter()), 2.0);
        assert_eq!(neumaier(std::iter::empty()), 0.0);
    }

    #[test]
    fn matches_statrs_on_mean_and_sd() {
        use statrs::statistics::Statistics;
        let values = [61.5, 72.0, 58.25, 90.0, 64.0, 64.0, 101.75, 55.5];
        let samples: Vec<Sample> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| Sample { t: i as i64, v })
            .collect();
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-12 * b.abs());
        assert!(close(naive(&AggKind::Mean, &samples, 0), values.mean()));
        assert!(close(
            naive(&AggKind::StdDev, &samples, 0),
            values.std_dev()
        ));
    }
}
