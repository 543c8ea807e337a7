//! Property tests: after every push, pop or clear, `Incremental::value` equals `naive` over the
//! same window, exactly for the order-based aggregates and to within rounding for the
//! arithmetic ones; and a 100k-operation run does not drift.

use std::collections::VecDeque;

use proptest::prelude::*;

use super::slope::MS_PER_DAY;
use super::*;

const DAY: i64 = 86_400_000;
/// 2024-06-01T00:00:00Z, so times have the magnitude they have in production.
const T0: i64 = 1_717_200_000_000;

#[derive(Clone, Debug)]
enum Op {
    /// Advance time by `gap` ms (0 gives equal times) and push `v`.
    Push {
        gap: i64,
        v: f64,
    },
    Pop,
    Clear,
}

fn gaps() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => Just(0i64),
        3 => 1..1_000i64,
        3 => 1_000..3_600_000i64,
        1 => 3_600_000..3 * DAY,
    ]
}

/// Heart-rate-like readings.
fn realistic() -> BoxedStrategy<f64> {
    (20.0..200.0f64).boxed()
}

/// Few distinct values, so ties and equal percentile neighbours are common.
fn ties() -> BoxedStrategy<f64> {
    (0..8i32).prop_map(|i| 60.0 + f64::from(i) * 0.5).boxed()
}

/// Both signs, and magnitudes from 1e-3 to 1e9 mixed in one window.
fn wide() -> BoxedStrategy<f64> {
    prop_oneof![
        -1e6..1e6f64,
        (any::<bool>(), -3.0..9.0f64)
            .prop_map(|(neg, e)| if neg { -1.0 } else { 1.0 } * 10f64.powf(e)),
    ]
    .boxed()
}

fn ops(values: BoxedStrategy<f64>) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        30 => (gaps(), values).prop_map(|(gap, v)| Op::Push { gap, v }),
        20 => Just(Op::Pop),
        1 => Just(Op::Clear),
    ];
    prop::collection::vec(op, 0..300)
}

fn any_values() -> BoxedStrategy<f64> {
    prop_oneof![realistic(), ties(), wide()].boxed()
}

/// How two results may differ.
#[derive(Clone, Copy)]
enum Agree {
    Exact,
    /// |a - b| <= 1e-9 * max(|a|, |b|) + 1e-9: the tolerance for inputs that do not cancel.
    Relative,
    /// As `Relative`, but relative to the size of the terms the result is made of when that is
    /// larger. A result that cancels to near zero from large terms is only as accurate as the
    /// terms' rounding, whatever the algorithm; that is the backward-error yardstick.
    Scaled,
}

/// Magnitude of the terms behind `kind`'s result over `window`.
fn term_scale(kind: &AggKind, window: &[Sample]) -> f64 {
    let max_abs = window.iter().map(|s| s.v.abs()).fold(0.0, f64::max);
    match kind {
        AggKind::Sum => window.iter().map(|s| s.v.abs()).sum(),
        AggKind::Mean | AggKind::Ewma { .. } | AggKind::StdDev => max_abs,
        AggKind::Slope => {
            let n = window.len() as f64;
            let mx = window.iter().map(|s| (s.t - T0) as f64).sum::<f64>() / n;
            let my = window.iter().map(|s| s.v).sum::<f64>() / n;
            let dx = |s: &Sample| (s.t - T0) as f64 - mx;
            let sxx: f64 = window.iter().map(|s| dx(s) * dx(s)).sum();
            let sxy_abs: f64 = window.iter().map(|s| (dx(s) * (s.v - my)).abs()).sum();
            if sxx > 0.0 {
                sxy_abs / sxx * MS_PER_DAY
            } else {
                0.0
            }
        }
        _ => 0.0,
    }
}

fn agree(kind: &AggKind, how: Agree, got: Option<f64>, want: Option<f64>, w: &[Sample]) -> bool {
    match (got, want, how) {
        (_, _, Agree::Exact) => got == want,
        (Some(a), Some(b), _) => {
            let mut scale = a.abs().max(b.abs());
            if let Agree::Scaled = how {
                scale = scale.max(term_scale(kind, w));
            }
            (a - b).abs() <= 1e-9 * scale + 1e-9
        }
        (None, None, _) => true,
        _ => false,
    }
}

/// Replays `ops` on an `Incremental` and on a plain deque, comparing after every operation.
/// The window start trails the oldest sample by `lead` ms (negative: the oldest sample
/// precedes the start).
fn replay(kind: &AggKind, how: Agree, lead: i64, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut inc = Incremental::new(kind);
    let mut window: VecDeque<Sample> = VecDeque::new();
    let mut t = T0;
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Push { gap, v } => {
                t += gap;
                inc.push(Sample { t, v });
                window.push_back(Sample { t, v });
            }
            Op::Pop => {
                inc.pop_front();
                window.pop_front();
            }
            Op::Clear => {
                inc.clear();
                window.clear();
            }
        }
        let window_start = window.front().map_or(t, |s| s.t - lead);
        let content = window.make_contiguous();
        let want = naive(kind, content, window_start);
        let got = inc.value(window_start);
        prop_assert_eq!(inc.len(), content.len());
        prop_assert!(
            agree(kind, how, got, want, content),
            "{:?} at step {}: incremental {:?}, naive {:?}, window {:?}",
            kind,
            step,
            got,
            want,
            content
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn order_based_aggregates_are_exact(
        ops in ops(any_values()),
        p in prop_oneof![0.0..=100.0f64, (0..=100u32).prop_map(f64::from)],
        lead in -5_000..100_000i64,
    ) {
        let kinds = [
            AggKind::Count,
            AggKind::Min,
            AggKind::Max,
            AggKind::First,
            AggKind::Last,
            AggKind::Median,
            AggKind::Percentile(p),
            AggKind::MaxGap,
        ];
        for kind in &kinds {
            replay(kind, Agree::Exact, lead, &ops)?;
        }
    }

    #[test]
    fn arithmetic_aggregates_match_on_realistic_values(
        ops in ops(prop_oneof![realistic(), ties()].boxed()),
        alpha in 0.01..=1.0f64,
    ) {
        let kinds = [
            AggKind::Sum,
            AggKind::Mean,
            AggKind::StdDev,
            AggKind::Ewma { alpha },
            AggKind::Slope,
        ];
        for kind in &kinds {
            // A slope is a difference quotient: even positive values cancel in Cxy when the
            // trend is flat, so it is held to the scale of its terms (see `Agree::Scaled`).
            let how = if *kind == AggKind::Slope { Agree::Scaled } else { Agree::Relative };
            replay(kind, how, 0, &ops)?;
        }
    }

    #[test]
    fn arithmetic_aggregates_match_on_wide_values(
        ops in ops(wide()),
        alpha in 0.01..=1.0f64,
    ) {
        let kinds = [
            AggKind::Sum,
            AggKind::Mean,
            AggKind::StdDev,
            AggKind::Ewma { alpha },
            AggKind::Slope,
        ];
        for kind in &kinds {
            replay(kind, Agree::Scaled, 0, &ops)?;
        }
    }
}

/// splitmix64: a fixed, dependency-free stream for the long run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn long_runs_do_not_drift() {
    // A high level with small spread is where running add/subtract schemes drift most.
    let kinds = [
        AggKind::Count,
        AggKind::Sum,
        AggKind::Mean,
        AggKind::Min,
        AggKind::Max,
        AggKind::StdDev,
        AggKind::Median,
        AggKind::Percentile(95.0),
        AggKind::Slope,
        AggKind::Last,
        AggKind::First,
        AggKind::Ewma { alpha: 0.05 },
        AggKind::MaxGap,
    ];
    for kind in &kinds {
        let mut rng = Rng(7);
        let mut inc = Incremental::new(kind);
        let mut window: VecDeque<Sample> = VecDeque::new();
        let mut t = T0;
        for step in 0..100_000 {
            let push_bias = if window.len() < 1_000 { 0.6 } else { 0.4 };
            if rng.unit() < push_bias {
                t += if rng.unit() < 0.1 {
                    0
                } else {
                    (rng.next() % 120_000) as i64
                };
                let s = Sample {
                    t,
                    v: 1e6 + 20.0 + 180.0 * rng.unit(),
                };
                inc.push(s);
                window.push_back(s);
            } else {
                inc.pop_front();
                window.pop_front();
            }
            if step % 1_000 == 999 {
                let content = window.make_contiguous();
                let window_start = content.first().map_or(t, |s| s.t - 30_000);
                let want = naive(kind, content, window_start);
                let got = inc.value(window_start);
                let how = match kind {
                    AggKind::Sum | AggKind::Mean | AggKind::StdDev | AggKind::Ewma { .. } => {
                        Agree::Relative
                    }
                    AggKind::Slope => Agree::Scaled,
                    _ => Agree::Exact,
                };
                assert!(
                    agree(kind, how, got, want, content),
                    "{kind:?} drifted at step {step}: incremental {got:?}, naive {want:?}"
                );
            }
        }
    }
}
