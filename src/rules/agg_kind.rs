//! The registry of aggregate functions of the rule language: names, parsing, definedness.
//!
//! Part of the language rather than of the engine's `aggregate` module, which computes them:
//! checking a rule parses these names, and the rules do not depend on the engine that runs
//! them.

/// The aggregate functions of the rule language (explicit registry).
#[derive(Clone, Debug, PartialEq)]
pub enum AggKind {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    /// Sample standard deviation (n - 1); `None` when n < 2.
    StdDev,
    /// Same as `Percentile(50.0)`.
    Median,
    /// p in 0..=100, linear interpolation between closest ranks (numpy's default, type 7).
    Percentile(f64),
    /// Least-squares slope of v against t, in value units per day; `None` when n < 2 or all t
    /// are equal.
    Slope,
    Last,
    First,
    /// Adjusted EWMA over the window's samples in time order:
    /// sum(w_i v_i) / sum(w_i), w_i = (1 - alpha)^(k - i), i = 1..k (pandas `adjust=True`).
    Ewma {
        alpha: f64,
    },
    /// Largest hole in coverage, in seconds: max(first.t - window_start, max over consecutive
    /// samples of t_i - t_{i-1}), the lead-in counting as 0 if the first sample precedes
    /// window_start; `None` when empty.
    MaxGap,
}

const VALID_NAMES: &str = "count, sum, mean, min, max, stddev, median, p<N> (percentile, N in \
    0..=100, e.g. p5, p95, p99.9), slope, last, first, ewma (with alpha), max_gap";

impl AggKind {
    /// Parses a rule-file name; `alpha` is required by "ewma" (0 < alpha <= 1) and refused by
    /// every other aggregate, so a misplaced alpha is reported rather than ignored.
    pub fn parse(name: &str, alpha: Option<f64>) -> Result<AggKind, String> {
        let kind = match name {
            "count" => AggKind::Count,
            "sum" => AggKind::Sum,
            "mean" => AggKind::Mean,
            "min" => AggKind::Min,
            "max" => AggKind::Max,
            "stddev" => AggKind::StdDev,
            "median" => AggKind::Median,
            "slope" => AggKind::Slope,
            "last" => AggKind::Last,
            "first" => AggKind::First,
            "max_gap" => AggKind::MaxGap,
            "ewma" => {
                return match alpha {
                    Some(alpha) if alpha > 0.0 && alpha <= 1.0 => Ok(AggKind::Ewma { alpha }),
                    Some(alpha) => Err(format!(
                        "ewma alpha must satisfy 0 < alpha <= 1, got {alpha}"
                    )),
                    None => Err("ewma needs an alpha (0 < alpha <= 1)".to_string()),
                };
            }
            _ => match name.strip_prefix('p') {
                Some(number) if looks_like_percentile(number) => parse_percentile(name, number)?,
                _ => {
                    return Err(format!(
                        "unknown aggregate \"{name}\"; valid names are: {VALID_NAMES}"
                    ))
                }
            },
        };
        match alpha {
            Some(_) => Err(format!("alpha is only used by ewma, not by \"{name}\"")),
            None => Ok(kind),
        }
    }

    /// The rule-file name; `parse(&kind.name(), alpha)` gives `kind` back (ewma's alpha is not
    /// part of its name).
    pub fn name(&self) -> String {
        match self {
            AggKind::Count => "count".to_string(),
            AggKind::Sum => "sum".to_string(),
            AggKind::Mean => "mean".to_string(),
            AggKind::Min => "min".to_string(),
            AggKind::Max => "max".to_string(),
            AggKind::StdDev => "stddev".to_string(),
            AggKind::Median => "median".to_string(),
            AggKind::Percentile(p) => format!("p{p}"),
            AggKind::Slope => "slope".to_string(),
            AggKind::Last => "last".to_string(),
            AggKind::First => "first".to_string(),
            AggKind::Ewma { .. } => "ewma".to_string(),
            AggKind::MaxGap => "max_gap".to_string(),
        }
    }

    /// Smallest number of samples for which the aggregate is defined.
    pub fn min_defined(&self) -> usize {
        match self {
            AggKind::Count | AggKind::Sum => 0,
            AggKind::StdDev | AggKind::Slope => 2,
            AggKind::Mean
            | AggKind::Min
            | AggKind::Max
            | AggKind::Median
            | AggKind::Percentile(_)
            | AggKind::Last
            | AggKind::First
            | AggKind::Ewma { .. }
            | AggKind::MaxGap => 1,
        }
    }
}

/// Digits with at most one inner decimal point: `f64::from_str` alone would also take "inf",
/// "nan", "1e2" and "+5", none of which belong in a rule name.
fn looks_like_percentile(number: &str) -> bool {
    let mut parts = number.splitn(2, '.');
    let int_ok = parts
        .next()
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    let frac_ok = parts
        .next()
        .is_none_or(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    int_ok && frac_ok
}

fn parse_percentile(name: &str, number: &str) -> Result<AggKind, String> {
    match number.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(AggKind::Percentile(p)),
        _ => Err(format!(
            "percentile \"{name}\" is out of range: the number after \"p\" must be 0..=100"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_and_round_trips() {
        let names = [
            "count", "sum", "mean", "min", "max", "stddev", "median", "slope", "last", "first",
            "max_gap", "p5", "p95", "p99", "p99.9", "p0", "p100", "p50",
        ];
        for name in names {
            let kind = AggKind::parse(name, None).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(kind.name(), name);
        }
        assert_eq!(AggKind::parse("p99.9", None), Ok(AggKind::Percentile(99.9)));
        assert_eq!(
            AggKind::parse("ewma", Some(0.25)),
            Ok(AggKind::Ewma { alpha: 0.25 })
        );
        assert_eq!(AggKind::Ewma { alpha: 0.25 }.name(), "ewma");
    }

    #[test]
    fn rejects_with_helpful_messages() {
        let err = AggKind::parse("average", None).unwrap_err();
        assert!(err.contains("unknown aggregate \"average\""), "{err}");
        assert!(err.contains("stddev") && err.contains("p99.9") && err.contains("max_gap"));
        for bad in [
            "p", "p-5", "pinf", "pnan", "p1e2", "p+5", "p.5", "p5.", "p9.9.9", "P95",
        ] {
            assert!(AggKind::parse(bad, None).is_err(), "{bad} accepted");
        }
        let err = AggKind::parse("p101", None).unwrap_err();
        assert!(err.contains("0..=100"), "{err}");
        assert!(AggKind::parse("ewma", None)
            .unwrap_err()
            .contains("needs an alpha"));
        for alpha in [0.0, -0.1, 1.5, f64::NAN] {
            assert!(
                AggKind::parse("ewma", Some(alpha)).is_err(),
                "alpha {alpha}"
            );
        }
        assert!(AggKind::parse("ewma", Some(1.0)).is_ok());
        let err = AggKind::parse("mean", Some(0.5)).unwrap_err();
        assert!(err.contains("only used by ewma"), "{err}");
    }

    #[test]
    fn min_defined() {
        assert_eq!(AggKind::Count.min_defined(), 0);
        assert_eq!(AggKind::Sum.min_defined(), 0);
        assert_eq!(AggKind::StdDev.min_defined(), 2);
        assert_eq!(AggKind::Slope.min_defined(), 2);
        assert_eq!(AggKind::Percentile(95.0).min_defined(), 1);
        assert_eq!(AggKind::MaxGap.min_defined(), 1);
    }
}
