//! `--report`: one self-contained HTML file (inline CSS and SVG, no URL, no script) with the
//! table, then for the users chosen ([`choose_users`]) one plot per plotted rule: the rule's
//! metric over time, its threshold and the band it is built on ([`trace`]), and each set's
//! firings as a strip above.
//!
//! The statistics behind a plot are those the rule evaluated, which outputs only carry when
//! they fire. They are gathered by replaying the chosen users' events once more through a
//! fresh engine per set with an observer ([`crate::engine::Engine::process_observed`]); the
//! firings drawn are those of the full replay. A user's statistics depend on that user's
//! events only (the state TTL aside, which follows the stream clock of everyone's events).

pub mod plot;
pub mod trace;

use std::fmt::Write as _;
use std::io;

use rustc_hash::{FxHashMap, FxHashSet};

use super::replay::{Names, RuleIds, SetRun};
use super::source::Merge;
use super::table::{match_key, MatchKey, Table, SET_NAMES};
use crate::engine::{Engine, EngineConfig, Observer};
use crate::event::Decoder;
use crate::rules::{Mode, OutputState};
use plot::{SetSeries, Span};
use trace::Trace;

/// The users a report plots, most affected first, with how many outputs decided it: with two
/// sets, the outputs in one set and not the other; with one, the firings and milestones.
/// Ties go to the user with more outputs, then by name. Only users with events of their own.
pub fn choose_users(sets: &[SetRun], names: &Names, n: usize) -> Vec<(u32, u64)> {
    let mut score: FxHashMap<u32, (u64, u64)> = FxHashMap::default();
    if let [a, b] = sets {
        let mut counts: FxHashMap<(u32, MatchKey), (i64, i64)> = FxHashMap::default();
        for d in &a.decisions {
            counts.entry((d.rule, match_key(d))).or_default().0 += 1;
        }
        for d in &b.decisions {
            counts.entry((d.rule, match_key(d))).or_default().1 += 1;
        }
        for ((_, (subject, _, _)), (x, y)) in counts {
            let s = score.entry(subject).or_default();
            s.0 += x.abs_diff(y);
            s.1 += u64::try_from(x + y).unwrap_or(0);
        }
    } else {
        for d in sets.iter().flat_map(|s| &s.decisions) {
            let s = score.entry(d.subject).or_default();
            if d.state != OutputState::Resolved {
                s.0 += 1;
            }
            s.1 += 1;
        }
    }
    let mut ranked: Vec<(u32, (u64, u64))> = score
        .into_iter()
        .filter(|(u, _)| names.spans.get(*u as usize).is_some_and(Option::is_some))
        .collect();
    let name = |u: u32| names.names.get(u as usize).map_or("", |n| &**n);
    ranked.sort_by(|(u, (d, t)), (v, (e, s))| {
        e.cmp(d).then(s.cmp(t)).then_with(|| name(*u).cmp(name(*v)))
    });
    ranked.truncate(n);
    ranked.into_iter().map(|(u, (d, _))| (u, d)).collect()
}

/// Replays the events of `users` from `merge` through a fresh engine per rule set, with a
/// [`Trace`] observing each.
pub fn traces(
    merge: &mut Merge,
    decoder: &Decoder,
    sets: &[SetRun],
    config: &EngineConfig,
    users: &FxHashSet<Box<str>>,
) -> io::Result<Vec<Trace>> {
    let mut engines: Vec<(Engine, Trace)> = sets
        .iter()
        .map(|s| {
            (
                Engine::new(std::sync::Arc::clone(&s.rules), config.clone()),
                Trace::new(&s.rules),
            )
        })
        .collect();
    let mut out = Vec::new();
    // Lines that do not decode were counted by the replay.
    let mut ignore = |_: super::source::Rejected<'_>| Ok(());
    while let Some(next) = merge.next(decoder, &mut ignore)? {
        if !users.contains(next.event.user_id.as_str()) {
            continue;
        }
        for (engine, trace) in engines.iter_mut() {
            out.clear();
            engine.process_observed(&next.event, &mut out, Some(trace as &mut dyn Observer));
        }
    }
    Ok(engines.into_iter().map(|(_, t)| t).collect())
}

/// Whether a rule's firings end with a resolution.
fn resolves(rule: &crate::rules::Rule) -> bool {
    match &rule.mode {
        Mode::Condition { resolve, .. } => resolve.is_some(),
        Mode::Absence { resolves, .. } => *resolves,
        Mode::Sequence { .. } => false,
    }
}

/// The spans of the outputs of rule `rule` (in [`RuleIds`]) for `subject` among `decisions`:
/// firing to resolution for a rule that resolves (a firing still open lasts to `end_ms`), one
/// instant for anything else.
fn spans(
    decisions: &[super::Decision],
    rule: u32,
    subject: u32,
    resolves: bool,
    end_ms: i64,
) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut open: Option<i64> = None;
    let instant = |t| Span {
        from_ms: t,
        to_ms: t,
    };
    for d in decisions
        .iter()
        .filter(|d| d.rule == rule && d.subject == subject)
    {
        match d.state {
            OutputState::Firing if resolves => {
                if let Some(from) = open.replace(d.time_ms) {
                    spans.push(Span {
                        from_ms: from,
                        to_ms: d.time_ms,
                    });
                }
            }
            OutputState::Resolved => {
                if let Some(from) = open.take() {
                    spans.push(Span {
                        from_ms: from,
                        to_ms: d.time_ms,
                    });
                }
            }
            OutputState::Firing | OutputState::Milestone => spans.push(instant(d.time_ms)),
        }
    }
    if let Some(from) = open {
        spans.push(Span {
            from_ms: from,
            to_ms: end_ms,
        });
    }
    spans
}

/// What the report is made of.
pub struct Report<'a> {
    pub table: &'a Table,
    pub sets: &'a [SetRun],
    pub names: &'a Names,
    pub rule_ids: &'a RuleIds,
    pub users: &'a [(u32, u64)],
    /// One per set, from [`traces`].
    pub traces: &'a [Trace],
}

impl Report<'_> {
    /// The whole HTML document.
    pub fn html(&self) -> String {
        let mut html = String::new();
        html.push_str(HEAD);
        let two = self.sets.len() > 1;
        let _ = writeln!(html, "<h1>Vigil backtest</h1>");
        let i = &self.table.input;
        let _ = writeln!(
            html,
            "<p>{} events from {} ({} users, {:.1} user-months); invalid lines: {}; late events: {}.</p>",
            i.events,
            escape(&i.files.join(", ")),
            i.users,
            i.user_months,
            i.invalid,
            self.table
                .sets
                .iter()
                .map(|s| format!("{} {}", s.set, s.late))
                .collect::<Vec<_>>()
                .join(", ")
        );
        html.push_str("<ul class=\"sets\">\n");
        for s in &self.table.sets {
            let _ = writeln!(
                html,
                "<li><b>{}</b>: {}</li>",
                s.set,
                escape(&s.rules.join(", "))
            );
        }
        html.push_str("</ul>\n");
        html.push_str(&self.table_html());
        let _ = writeln!(
            html,
            "<h2>Users</h2>\n<p>{}</p>",
            if two {
                "The users whose outputs differ most between the sets (outputs in one set and not \
                 the other)."
            } else {
                "The users with the most firings and milestones."
            }
        );
        for &(user, score) in self.users {
            html.push_str(&self.user_html(user, score, two));
        }
        html.push_str("</body>\n</html>\n");
        html
    }

    fn table_html(&self) -> String {
        let two = self.sets.len() > 1;
        let mut html = String::from("<table>\n<thead><tr><th>rule</th><th>set</th><th>version</th><th>firings</th><th>resolutions</th><th>milestones</th><th>users</th><th>per user-month</th>");
        if two {
            html.push_str("<th>both</th><th>only A</th><th>only B</th>");
        }
        html.push_str("</tr></thead>\n<tbody>\n");
        for rule in &self.table.rules {
            for (k, c) in rule.sets.iter().enumerate() {
                html.push_str("<tr>");
                if k == 0 {
                    let _ = write!(
                        html,
                        "<td rowspan=\"{}\">{}</td>",
                        rule.sets.len(),
                        escape(&rule.id)
                    );
                }
                let _ = write!(
                    html,
                    "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                    c.set,
                    c.version,
                    c.firings,
                    c.resolutions,
                    c.milestones,
                    c.users_affected,
                    c.per_user_month.map_or("–".into(), |r| format!("{r:.3}"))
                );
                if let (0, Some(a)) = (k, rule.agreement) {
                    let _ = write!(
                        html,
                        "<td rowspan=\"{n}\">{}</td><td rowspan=\"{n}\">{}</td><td rowspan=\"{n}\">{}</td>",
                        a.both,
                        a.only_a,
                        a.only_b,
                        n = rule.sets.len()
                    );
                } else if k == 0 && two {
                    html.push_str("<td></td><td></td><td></td>");
                }
                html.push_str("</tr>\n");
            }
        }
        html.push_str("</tbody>\n</table>\n");
        html
    }

    fn user_html(&self, user: u32, score: u64, two: bool) -> String {
        let name = self.names.names.get(user as usize).map_or("", |n| &**n);
        let Some(Some((first, last))) = self.names.spans.get(user as usize).copied() else {
            return String::new();
        };
        let mut html = String::new();
        let _ = writeln!(
            html,
            "<section>\n<h3>{}</h3>\n<p>{score} {}.</p>",
            escape(name),
            if two {
                "outputs in one set and not the other"
            } else {
                "firings and milestones"
            }
        );
        for (r, id) in self.rule_ids.ids.iter().enumerate() {
            let r = r as u32;
            let mut series_points = Vec::new();
            let mut labels = None;
            let mut spans_per_set = Vec::new();
            let mut thresholds = Vec::new();
            for (i, set) in self.sets.iter().enumerate() {
                let Some(index) = set.rules.rules.iter().position(|x| x.id == *id) else {
                    continue;
                };
                let plan = trace::plan(&set.rules.rules[index]);
                let points = self
                    .traces
                    .get(i)
                    .and_then(|t| t.points.get(&(Box::from(name), index)))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                if labels.is_none() {
                    labels = plan.as_ref().map(|p| (p.metric_label.clone(), p.op));
                }
                thresholds.push(
                    plan.as_ref()
                        .map(|p| p.threshold_label.clone())
                        .unwrap_or_default(),
                );
                let resolving = resolves(&set.rules.rules[index]);
                let spans = spans(&set.decisions, r, user, resolving, last);
                spans_per_set.push((i, spans, plan.is_some()));
                series_points.push((i, points));
            }
            let counts: Vec<String> = spans_per_set
                .iter()
                .map(|(i, spans, _)| format!("{} {}", SET_NAMES[*i], spans.len()))
                .collect();
            let Some((metric, op)) = labels else {
                let _ = writeln!(
                    html,
                    "<p class=\"noplot\"><b>{}</b>: no metric to plot (not a comparison); spans of outputs: {}.</p>",
                    escape(id),
                    counts.join(", ")
                );
                continue;
            };
            if series_points.iter().all(|(_, p)| p.is_empty())
                && spans_per_set.iter().all(|(_, s, _)| s.is_empty())
            {
                continue;
            }
            let sets: Vec<SetSeries<'_>> = series_points
                .iter()
                .zip(&spans_per_set)
                .map(|((i, points), (_, spans, _))| SetSeries {
                    name: SET_NAMES[*i],
                    points,
                    spans,
                })
                .collect();
            let title = format!("{id}: {metric} {op} threshold");
            match plot::svg(&title, (first, last), &sets) {
                Ok(svg) => {
                    let _ = writeln!(
                        html,
                        "<figure>\n{svg}\n<figcaption>{}<br><b>{}</b>: outputs drawn: {}.</figcaption>\n</figure>",
                        legend(&metric, &thresholds, &sets),
                        escape(id),
                        counts.join(", ")
                    );
                }
                Err(e) => {
                    let _ = writeln!(html, "<p>{}: cannot draw: {}</p>", escape(id), escape(&e));
                }
            }
        }
        html.push_str("</section>\n");
        html
    }
}

/// The plot's legend, in the colours the plot uses.
fn legend(metric: &str, thresholds: &[String], sets: &[SetSeries<'_>]) -> String {
    let mut items = vec![format!(
        "<span class=\"key\"><i style=\"background:#282828;height:3px\"></i>{}</span>",
        escape(metric)
    )];
    let two = sets.len() > 1;
    for (i, set) in sets.iter().enumerate() {
        let (r, g, b) = plot::rgb(i);
        let who = if two {
            format!("{} ", set.name)
        } else {
            String::new()
        };
        let threshold = thresholds.get(i).map_or("", String::as_str);
        if i > 0 && sets.first().is_some_and(|a| plot::same_threshold(a, set)) {
            items.push(format!(
                "<span class=\"key\">{who}threshold and band: as A's</span>"
            ));
        } else {
            items.push(format!(
                "<span class=\"key\"><i style=\"background:rgb({r},{g},{b});height:2px\"></i>{who}threshold {}</span>\
                 <span class=\"key\"><i style=\"background:rgba({r},{g},{b},0.15)\"></i>{who}band</span>",
                escape(threshold)
            ));
        }
        items.push(format!(
            "<span class=\"key\"><i style=\"background:rgb({r},{g},{b})\"></i>{who}firings (strip above)</span>"
        ));
    }
    items.join(" ")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Vigil backtest</title>
<style>
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1000px; }
table { border-collapse: collapse; margin: 12px 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f2f2f2; }
td:first-child { text-align: left; }
figure { margin: 12px 0 24px 0; }
figcaption { font-size: 13px; color: #444; }
section { border-top: 2px solid #ddd; margin-top: 20px; }
.noplot { font-size: 13px; color: #444; }
.key { white-space: nowrap; margin-right: 14px; }
.key i { display: inline-block; width: 18px; height: 10px; margin-right: 4px; vertical-align: middle; }
</style>
</head>
<body>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn spans_run_from_firing_to_resolution_or_are_instants() {
        let d = |state, time_ms| super::super::Decision {
            subject: 1,
            rule: 0,
            state,
            occasion: time_ms,
            time_ms,
        };
        let decisions = [
            d(OutputState::Firing, 10),
            d(OutputState::Resolved, 20),
            d(OutputState::Firing, 30),
            d(OutputState::Milestone, 35),
        ];
        let span = |from_ms, to_ms| Span { from_ms, to_ms };
        assert_eq!(
            spans(&decisions, 0, 1, true, 50),
            [span(10, 20), span(35, 35), span(30, 50)]
        );
        assert_eq!(
            spans(&decisions, 0, 1, false, 50),
            [span(10, 10), span(30, 30), span(35, 35)]
        );
        assert!(spans(&decisions, 0, 2, true, 50).is_empty());
    }
}
