//! Driving the rule sets through the merged inputs: every event goes to each set's engine
//! through the routing step every edge shares ([`crate::io::route`]), and what comes out is
//! kept as [`Decision`]s (and written, when asked for).

use std::io::{self, Write};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::source::{Merge, Next, Rejected};
use crate::engine::{Engine, EngineConfig, OutputEvent};
use crate::event::{Decoder, Event};
use crate::io::admit::FixedClock;
use crate::io::lazy_file::LazyFile;
use crate::io::records::{DeadLetter, LateEvent};
use crate::io::route::{Context, Deliver, Rejection, Router, Summary, LATE_REASON};
use crate::rules::{OutputState, RuleSet};
use crate::status::silence::Silence;
use crate::telemetry::InputCounters;

/// One output, as the comparison and the table need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The output's subject (the user), in [`Names`].
    pub subject: u32,
    /// The rule, in [`RuleIds`].
    pub rule: u32,
    pub state: OutputState,
    /// The night (days since 1970-01-01) for nightly rules, else the output's time (ms).
    pub occasion: i64,
    /// The output's time (ms).
    pub time_ms: i64,
}

/// Interned subjects (user ids), with each user's span of event times in the input.
#[derive(Default)]
pub struct Names {
    index: FxHashMap<Box<str>, u32>,
    pub names: Vec<Box<str>>,
    /// (earliest, latest) event time (ms) of each name, `None` for a subject with no event
    /// of its own (a rule keyed by another attribute).
    pub spans: Vec<Option<(i64, i64)>>,
}

impl Names {
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.index.insert(name.into(), i);
        self.names.push(name.into());
        self.spans.push(None);
        i
    }

    pub fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    fn event(&mut self, user: &str, t: i64) {
        let i = self.intern(user) as usize;
        if let Some(span) = self.spans.get_mut(i) {
            *span = Some(match *span {
                Some((first, last)) => (first.min(t), last.max(t)),
                None => (t, t),
            });
        }
    }
}

/// The rule ids of every set, in one numbering: set A's rules in order, then those only set B
/// has. Outputs are matched across sets by rule id, not by the rule's position or version.
#[derive(Default)]
pub struct RuleIds {
    index: FxHashMap<String, u32>,
    pub ids: Vec<String>,
}

impl RuleIds {
    pub fn new(sets: &[Arc<RuleSet>]) -> Self {
        let mut ids = RuleIds::default();
        for set in sets {
            for rule in &set.rules {
                if !ids.index.contains_key(&rule.id) {
                    let i = u32::try_from(ids.ids.len()).unwrap_or(u32::MAX);
                    ids.index.insert(rule.id.clone(), i);
                    ids.ids.push(rule.id.clone());
                }
            }
        }
        ids
    }

    pub fn get(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The number of `id`, given the next one when new (for ids read from outputs rather
    /// than from rule sets).
    pub fn intern(&mut self, id: &str) -> u32 {
        if let Some(i) = self.get(id) {
            return i;
        }
        let i = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        self.index.insert(id.to_string(), i);
        self.ids.push(id.to_string());
        i
    }
}

/// One rule set in the replay.
pub struct SetRun {
    pub rules: Arc<RuleSet>,
    pub engine: Engine,
    router: Router,
    pub decisions: Vec<Decision>,
    /// Where this set's outputs are written as JSON lines, when asked for.
    pub outputs: Option<Box<dyn Write>>,
}

impl SetRun {
    pub fn new(rules: Arc<RuleSet>, config: EngineConfig, outputs: Option<Box<dyn Write>>) -> Self {
        SetRun {
            engine: Engine::new(Arc::clone(&rules), config),
            rules,
            router: Router::default(),
            decisions: Vec::new(),
            outputs,
        }
    }

    /// Events, outputs and late events of this set (`dead_lettered` is the input's, counted
    /// in the first set only).
    pub fn summary(&self) -> Summary {
        self.router.summary
    }
}

/// Where rejected and late events are written, when asked for (a backtest writes no file it
/// was not asked for).
#[derive(Default)]
pub struct Sinks {
    pub dead_letters: Option<LazyFile>,
    pub late: Option<LazyFile>,
}

/// What a replay read, apart from the sets' own totals.
pub struct Replayed {
    pub names: Names,
    pub rule_ids: RuleIds,
}

/// Replays `merge` through every set of `sets` (set A first). `progress` is called now and
/// then with the bytes read so far.
pub fn replay(
    merge: &mut Merge,
    decoder: &Decoder,
    sets: &mut [SetRun],
    sinks: &mut Sinks,
    progress: &mut dyn FnMut(u64),
) -> io::Result<Replayed> {
    let rules: Vec<Arc<RuleSet>> = sets.iter().map(|s| Arc::clone(&s.rules)).collect();
    let rule_ids = RuleIds::new(&rules);
    let mut names = Names::default();
    let mut since_progress = 0u32;
    loop {
        let next = {
            let mut first = sets.first_mut();
            let dead_letters = &mut sinks.dead_letters;
            let mut rejected = |r: Rejected<'_>| -> io::Result<()> {
                match first.as_deref_mut() {
                    Some(set) => reject(set, dead_letters.as_mut(), r),
                    None => Ok(()),
                }
            };
            merge.next(decoder, &mut rejected)?
        };
        let Some(Next { input, line, event }) = next else {
            break;
        };
        names.event(&event.user_id, event.time.millis());
        let at = At {
            source: merge.name(input),
            line,
        };
        route_to_sets(sets, sinks, &mut names, &rule_ids, at, event)?;
        since_progress += 1;
        if since_progress >= PROGRESS_EVERY {
            since_progress = 0;
            progress(merge.bytes_read);
        }
    }
    progress(merge.bytes_read);
    for set in sets.iter_mut() {
        if let Some(out) = set.outputs.as_mut() {
            out.flush()?;
        }
    }
    for file in [&mut sinks.dead_letters, &mut sinks.late]
        .into_iter()
        .flatten()
    {
        file.flush()?;
    }
    Ok(Replayed { names, rule_ids })
}

/// Records between two calls of the progress callback.
const PROGRESS_EVERY: u32 = 16_384;

/// Where an event was read.
#[derive(Clone, Copy)]
struct At<'a> {
    source: &'a str,
    line: u64,
}

/// The backtest never silences, reads no clock and counts into no metric: the routing step's
/// context says so.
fn context() -> Context<'static> {
    Context {
        input: 0,
        silences: None,
        // Read only for silences, and there are none.
        clock: &FixedClock(0),
        latency: None,
    }
}

/// A line that did not decode: counted (and written, when asked for) once, through set A.
fn reject(
    set: &mut SetRun,
    dead_letters: Option<&mut LazyFile>,
    r: Rejected<'_>,
) -> io::Result<()> {
    let mut deliver = Delivery {
        at: At {
            source: r.source,
            line: r.line,
        },
        line: Some((r.bytes, r.full_len)),
        dead_letters,
        late: None,
        outputs: None,
        kept: None,
    };
    set.router.route(
        &mut set.engine,
        Err(r.rejection),
        &context(),
        &mut None::<&InputCounters>,
        &mut deliver,
    )
}

/// An event to every set's engine. Late events are written (when asked for) from set A's:
/// lateness can differ between sets only through the state TTL.
fn route_to_sets(
    sets: &mut [SetRun],
    sinks: &mut Sinks,
    names: &mut Names,
    rule_ids: &RuleIds,
    at: At<'_>,
    event: Event,
) -> io::Result<()> {
    let count = sets.len();
    let mut event = Some(event);
    for (i, set) in sets.iter_mut().enumerate() {
        let this = if i + 1 == count {
            event.take()
        } else {
            event.clone()
        };
        let Some(this) = this else {
            break;
        };
        let mut deliver = Delivery {
            at,
            line: None,
            dead_letters: None,
            late: if i == 0 { sinks.late.as_mut() } else { None },
            outputs: set.outputs.as_deref_mut(),
            kept: Some(Kept {
                decisions: &mut set.decisions,
                names: &mut *names,
                rule_ids,
            }),
        };
        set.router.route(
            &mut set.engine,
            Ok(this),
            &context(),
            &mut None::<&InputCounters>,
            &mut deliver,
        )?;
    }
    Ok(())
}

/// Where a set's decisions are kept.
struct Kept<'a> {
    decisions: &'a mut Vec<Decision>,
    names: &'a mut Names,
    rule_ids: &'a RuleIds,
}

/// The results of one record for one set.
struct Delivery<'a, 'o> {
    at: At<'a>,
    /// The line's bytes and full length, for a dead letter.
    line: Option<(&'a [u8], usize)>,
    dead_letters: Option<&'a mut LazyFile>,
    late: Option<&'a mut LazyFile>,
    outputs: Option<&'a mut (dyn Write + 'o)>,
    kept: Option<Kept<'a>>,
}

impl Deliver for Delivery<'_, '_> {
    type Error = io::Error;

    fn dead_letter(&mut self, rejection: Rejection) -> io::Result<()> {
        let (Some(file), Some((bytes, full_len))) = (self.dead_letters.as_mut(), self.line) else {
            return Ok(());
        };
        let record = DeadLetter::new(
            rejection.reason,
            self.at.source,
            self.at.line,
            bytes,
            full_len,
        );
        write_line(&mut **file, &record)
    }

    fn late(&mut self, event: Event, behind_ms: i64) -> io::Result<()> {
        let Some(file) = self.late.as_mut() else {
            return Ok(());
        };
        let record = LateEvent {
            reason: LATE_REASON,
            source: self.at.source,
            line: self.at.line,
            behind_ms,
            event: event.to_json(),
        };
        write_line(&mut **file, &record)
    }

    fn output(&mut self, output: &OutputEvent, _silence: Option<&Silence>) -> io::Result<()> {
        if let Some(out) = self.outputs.as_mut() {
            write_line(&mut **out, output)?;
        }
        if let Some(kept) = self.kept.as_mut() {
            if let Some(decision) = decision(output, kept.names, kept.rule_ids) {
                kept.decisions.push(decision);
            }
        }
        Ok(())
    }
}

/// The decision an output records. `None` only for a rule id not in `rule_ids` (in a replay,
/// no set has it, which cannot be).
pub fn decision(output: &OutputEvent, names: &mut Names, rule_ids: &RuleIds) -> Option<Decision> {
    let rule = rule_ids.get(&output.data.rule_id)?;
    let state = match (output.data.kind, output.data.state) {
        (crate::rules::RuleKind::Milestone, _) => OutputState::Milestone,
        (_, Some(crate::engine::AlertState::Resolved)) => OutputState::Resolved,
        _ => OutputState::Firing,
    };
    let time_ms = output.time.millis();
    let occasion = output
        .data
        .night
        .as_deref()
        .and_then(night_number)
        .unwrap_or(time_ms);
    Some(Decision {
        subject: names.intern(&output.subject),
        rule,
        state,
        occasion,
        time_ms,
    })
}

/// A night written YYYY-MM-DD as days since 1970-01-01.
fn night_number(night: &str) -> Option<i64> {
    let date = chrono::NaiveDate::parse_from_str(night, "%Y-%m-%d").ok()?;
    Some(
        date.signed_duration_since(chrono::NaiveDate::default())
            .num_days(),
    )
}

fn write_line(out: &mut dyn Write, value: &impl serde::Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}
