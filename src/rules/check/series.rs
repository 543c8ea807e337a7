//! Statistics that read the same events the same way share one stored series, however many
//! rules they belong to: the series keeps what its longest window needs, and each sliding
//! aggregate once.

use super::stats::StatInput;
use crate::rules::compiled::{Rule, RuleSet, SeriesDef, SlidingAgg, Storage};
use crate::rules::duration::Window;
use crate::rules::expr::Expr;

/// Points each statistic of `rule` (read as `inputs` says) at its series in `set`, adding the
/// series that do not exist yet.
pub(super) fn share_series(set: &mut RuleSet, rule: &mut Rule, inputs: Vec<StatInput>) {
    for (stat, StatInput { from, of, filter }) in rule.stats.iter_mut().zip(inputs) {
        let storage = if matches!(stat.window, Window::Nights { .. }) {
            Storage::PerNight
        } else {
            Storage::AllEvents
        };
        let signature = format!(
            "{}|{}|{}|{:?}|{:?}",
            from.name(),
            of.as_ref().map_or("1".to_string(), |e| e.to_string()),
            filter.as_ref().map_or(String::new(), |e| e.to_string()),
            storage,
            rule.key
        );
        let index = match set.series.iter().position(|s| s.signature == signature) {
            Some(i) => i,
            None => {
                let stored_field = match storage {
                    Storage::PerNight => of.as_ref().and_then(Expr::single_field),
                    Storage::AllEvents => None,
                };
                set.series.push(SeriesDef {
                    stored_field,
                    from,
                    of,
                    filter,
                    storage,
                    key: rule.key.clone(),
                    keep_days: 0,
                    keep_ms: 0,
                    keep_count: 0,
                    sliding: Vec::new(),
                    signature,
                });
                set.series.len() - 1
            }
        };
        let series = &mut set.series[index];
        match stat.window {
            Window::Nights { .. } | Window::Days { .. } => {
                series.keep_days = series.keep_days.max(stat.window.days_back() + 1)
            }
            Window::Sliding { span_ms } => {
                series.keep_ms = series.keep_ms.max(span_ms);
                let agg = SlidingAgg {
                    agg: stat.agg.clone(),
                    span_ms,
                };
                let slot = series
                    .sliding
                    .iter()
                    .position(|s| *s == agg)
                    .unwrap_or_else(|| {
                        series.sliding.push(agg);
                        series.sliding.len() - 1
                    });
                stat.sliding_slot = Some(slot);
            }
            Window::Tumbling { span_ms } => series.keep_ms = series.keep_ms.max(span_ms),
            Window::Events { count } => series.keep_count = series.keep_count.max(count as usize),
        }
        stat.series = index;
    }
}
