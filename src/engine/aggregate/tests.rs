//! Hand-computed values for every aggregate, checked on both `naive` and `Incremental`.

use super::*;

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

fn samples(points: &[(i64, f64)]) -> Vec<Sample> {
    points.iter().map(|&(t, v)| Sample { t, v }).collect()
}

/// Asserts that both implementations give `expected` (to 1e-12 relative) over `points`.
#[track_caller]
fn check(kind: &AggKind, points: &[(i64, f64)], window_start: i64, expected: Option<f64>) {
    let window = samples(points);
    let mut inc = Incremental::new(kind);
    for &s in &window {
        inc.push(s);
    }
    let got = [
        ("naive", naive(kind, &window, window_start)),
        ("incremental", inc.value(window_start)),
    ];
    for (which, value) in got {
        let ok = match (value, expected) {
            (Some(v), Some(e)) => (v - e).abs() <= 1e-12 * e.abs().max(1.0),
            (None, None) => true,
            _ => false,
        };
        assert!(
            ok,
            "{which} {kind:?} over {points:?}: {value:?}, expected {expected:?}"
        );
    }
}

/// Values at one-minute spacing from t = 0.
fn at_minutes(values: &[f64]) -> Vec<(i64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as i64 * MIN, v))
        .collect()
}

#[test]
fn count_and_sum() {
    check(&AggKind::Count, &[], 0, Some(0.0));
    check(&AggKind::Count, &at_minutes(&[5.0]), 0, Some(1.0));
    check(&AggKind::Count, &at_minutes(&[1.0, 2.0, 3.0]), 0, Some(3.0));
    check(&AggKind::Sum, &[], 0, Some(0.0));
    check(&AggKind::Sum, &at_minutes(&[4.5]), 0, Some(4.5));
    check(&AggKind::Sum, &at_minutes(&[1.5, 2.5, -1.0]), 0, Some(3.0));
}

#[test]
fn mean_min_max() {
    for kind in [AggKind::Mean, AggKind::Min, AggKind::Max] {
        check(&kind, &[], 0, None);
        check(&kind, &at_minutes(&[72.0]), 0, Some(72.0));
    }
    let v = at_minutes(&[3.0, 1.0, 4.0, 2.0]);
    check(&AggKind::Mean, &v, 0, Some(2.5));
    check(&AggKind::Min, &v, 0, Some(1.0));
    check(&AggKind::Max, &v, 0, Some(4.0));
}

#[test]
fn stddev() {
    check(&AggKind::StdDev, &[], 0, None);
    check(&AggKind::StdDev, &at_minutes(&[5.0]), 0, None);
    check(
        &AggKind::StdDev,
        &at_minutes(&[2.0, 4.0]),
        0,
        Some(2f64.sqrt()),
    );
    // Mean 5, squared deviations sum to 32, n - 1 = 7.
    let v = at_minutes(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
    check(&AggKind::StdDev, &v, 0, Some((32.0f64 / 7.0).sqrt()));
    check(&AggKind::StdDev, &at_minutes(&[60.0; 5]), 0, Some(0.0));
}

#[test]
fn median_and_percentiles() {
    check(&AggKind::Median, &[], 0, None);
    check(&AggKind::Median, &at_minutes(&[8.0]), 0, Some(8.0));
    check(
        &AggKind::Median,
        &at_minutes(&[3.0, 1.0, 2.0]),
        0,
        Some(2.0),
    );
    let v = at_minutes(&[4.0, 1.0, 3.0, 2.0]);
    check(&AggKind::Median, &v, 0, Some(2.5));
    check(&AggKind::Percentile(50.0), &v, 0, Some(2.5));
    check(&AggKind::Percentile(25.0), &v, 0, Some(1.75));
    check(&AggKind::Percentile(75.0), &v, 0, Some(3.25));
    check(&AggKind::Percentile(0.0), &v, 0, Some(1.0));
    check(&AggKind::Percentile(100.0), &v, 0, Some(4.0));
    // numpy.percentile([10, 20], 99.9) == 19.99
    check(
        &AggKind::Percentile(99.9),
        &at_minutes(&[20.0, 10.0]),
        0,
        Some(19.99),
    );
    check(&AggKind::Percentile(95.0), &[], 0, None);
}

#[test]
fn slope() {
    check(&AggKind::Slope, &[], 0, None);
    check(&AggKind::Slope, &[(0, 1.0)], 0, None);
    check(&AggKind::Slope, &[(5, 1.0), (5, 9.0)], 0, None);
    check(
        &AggKind::Slope,
        &[(0, 10.0), (12 * HOUR, 11.0)],
        0,
        Some(2.0),
    );
    check(
        &AggKind::Slope,
        &[(0, 1.0), (DAY, 3.0), (2 * DAY, 5.0)],
        0,
        Some(2.0),
    );
    // x in days 0, .25, .5, .75: Sxx = 0.3125, Sxy = 1.5.
    let v = [
        (0, 1.0),
        (6 * HOUR, 2.0),
        (12 * HOUR, 2.0),
        (18 * HOUR, 5.0),
    ];
    check(&AggKind::Slope, &v, 0, Some(4.8));
    // Falling by 0.5 per minute at epoch-sized times is -720 per day.
    let t0 = 1_717_000_000_000;
    let falling = [(t0, 100.0), (t0 + MIN, 99.5), (t0 + 2 * MIN, 99.0)];
    check(&AggKind::Slope, &falling, t0, Some(-720.0));
}

#[test]
fn first_and_last() {
    check(&AggKind::First, &[], 0, None);
    check(&AggKind::Last, &[], 0, None);
    let v = [(0, 1.0), (MIN, 2.0), (MIN, 3.0)];
    check(&AggKind::First, &v, 0, Some(1.0));
    check(&AggKind::Last, &v, 0, Some(3.0));
}

#[test]
fn ewma() {
    let half = AggKind::Ewma { alpha: 0.5 };
    check(&half, &[], 0, None);
    check(&half, &at_minutes(&[42.0]), 0, Some(42.0));
    // pandas: pd.Series([1, 2, 3]).ewm(alpha=0.5).mean().iloc[-1] == 2.4285714285714284
    check(&half, &at_minutes(&[1.0, 2.0, 3.0]), 0, Some(17.0 / 7.0));
    // Weights 0.81, 0.9, 1 over 10, 20, 30.
    let tenth = AggKind::Ewma { alpha: 0.1 };
    let expected = (8.1 + 18.0 + 30.0) / 2.71;
    check(&tenth, &at_minutes(&[10.0, 20.0, 30.0]), 0, Some(expected));
    check(
        &AggKind::Ewma { alpha: 1.0 },
        &at_minutes(&[5.0, 9.0]),
        0,
        Some(9.0),
    );
}

#[test]
fn max_gap() {
    check(&AggKind::MaxGap, &[], 0, None);
    check(&AggKind::MaxGap, &[(5_000, 1.0)], 0, Some(5.0));
    let v = [(10_000, 1.0), (15_000, 1.0), (45_000, 1.0), (45_000, 1.0)];
    check(&AggKind::MaxGap, &v, 0, Some(30.0));
    check(&AggKind::MaxGap, &v, -60_000, Some(70.0));
    // First sample before the window start: no lead-in, not a negative one.
    check(&AggKind::MaxGap, &[(5_000, 1.0)], 9_000, Some(0.0));
}

#[test]
fn pops_slide_the_window() {
    let window = samples(&[(0, 5.0), (MIN, 1.0), (2 * MIN, 4.0), (10 * MIN, 2.0)]);
    let expectations = [
        (AggKind::Count, Some(2.0)),
        (AggKind::Sum, Some(6.0)),
        (AggKind::Min, Some(2.0)),
        (AggKind::Max, Some(4.0)),
        (AggKind::First, Some(4.0)),
        (AggKind::Median, Some(3.0)),
        (AggKind::MaxGap, Some(480.0)),
        (AggKind::Slope, Some(-0.25 * 1440.0)),
    ];
    for (kind, expected) in expectations {
        let mut inc = Incremental::new(&kind);
        for &s in &window {
            inc.push(s);
        }
        inc.pop_front();
        inc.pop_front();
        assert_eq!(inc.len(), 2);
        assert_eq!(inc.value(2 * MIN), expected, "{kind:?}");
        inc.pop_front();
        inc.pop_front();
        inc.pop_front(); // popping an empty window is a no-op
        assert!(inc.is_empty());
        assert_eq!(inc.value(0), naive(&kind, &[], 0), "{kind:?} empty");
    }
}

#[test]
fn clear_resets_and_heap_bytes_tracks_capacity() {
    let kinds = [
        AggKind::Sum,
        AggKind::Slope,
        AggKind::Percentile(90.0),
        AggKind::MaxGap,
    ];
    for kind in kinds {
        let mut inc = Incremental::new(&kind);
        assert_eq!(inc.heap_bytes(), 0, "{kind:?}");
        for i in 0..100 {
            inc.push(Sample {
                t: i * MIN,
                v: 60.0 + i as f64,
            });
        }
        let held = inc.heap_bytes();
        assert!(held >= 100 * std::mem::size_of::<f64>(), "{kind:?}: {held}");
        inc.clear();
        assert!(inc.is_empty());
        // Time may restart after clear (a new key reusing the state).
        let t0 = 1_717_000_000_000;
        inc.push(Sample { t: t0, v: 1.0 });
        inc.push(Sample {
            t: t0 + DAY,
            v: 3.0,
        });
        let window = samples(&[(t0, 1.0), (t0 + DAY, 3.0)]);
        assert_eq!(inc.value(t0), naive(&kind, &window, t0), "{kind:?}");
    }
}

#[test]
fn slope_keeps_precision_in_a_window_that_never_empties() {
    // Bursts of three readings 100 ms apart, an hour between bursts, for four days: the window
    // never empties, so any fixed time origin would end up days from a 200 ms span.
    let mut inc = Incremental::new(&AggKind::Slope);
    let mut window = std::collections::VecDeque::new();
    let t0 = 1_717_000_000_000;
    for burst in 0..96 {
        for (k, v) in [(0, 61.0), (1, 64.0), (2, 62.0)] {
            let s = Sample {
                t: t0 + burst * HOUR + k * 100,
                v: v + burst as f64,
            };
            inc.push(s);
            window.push_back(s);
            if window.len() > 3 {
                inc.pop_front();
                window.pop_front();
            }
        }
    }
    let want = naive(&AggKind::Slope, window.make_contiguous(), 0).unwrap_or(f64::NAN);
    let got = inc.value(0).unwrap_or(f64::NAN);
    // Per 100 ms, +1.5 over two steps: 0.5 per 100 ms * 864000 = 432000 per day.
    assert!((want - 432_000.0).abs() < 1e-6, "naive {want}");
    assert!((got - want).abs() <= 1e-12 * want.abs(), "{got} vs {want}");
}
