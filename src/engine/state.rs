//! What the engine remembers per key and rule between events.

use super::series::SeriesState;
use crate::rules::Severity;

/// Everything kept for one key (user).
#[derive(Debug, Default)]
pub struct KeyState {
    /// The key's event time: the latest event time seen for it (ms).
    pub clock: i64,
    /// UTC offset of the key's latest event, for outputs caused by timers.
    pub offset_seconds: i32,
    /// Per series of the rule set (None until the key has a sample in it).
    pub series: Vec<Option<SeriesState>>,
    /// Per rule (None until the rule has state for the key).
    pub rules: Vec<Option<Box<RuleState>>>,
}

impl KeyState {
    pub fn new(series: usize, rules: usize) -> Self {
        KeyState {
            clock: i64::MIN,
            offset_seconds: 0,
            series: (0..series).map(|_| None).collect(),
            rules: (0..rules).map(|_| None).collect(),
        }
    }

    /// Approximate bytes held, for the state-size report.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.series.capacity() * std::mem::size_of::<Option<SeriesState>>()
            + self
                .series
                .iter()
                .flatten()
                .map(|s| s.bytes().saturating_sub(std::mem::size_of::<SeriesState>()))
                .sum::<usize>()
            + self.rules.capacity() * std::mem::size_of::<Option<Box<RuleState>>>()
            + self
                .rules
                .iter()
                .flatten()
                .map(|r| r.bytes())
                .sum::<usize>()
    }
}

/// An alert that has fired and not yet resolved.
#[derive(Clone, Debug)]
pub struct Firing {
    pub id: String,
    pub severity: Severity,
}

/// A run of consecutive nights (or evaluations) on which a streak condition held.
#[derive(Clone, Debug)]
pub struct Run {
    pub start: i64,
    pub last: i64,
    pub fired: bool,
    /// Ids of the events in the run, up to the streak length.
    pub ids: Vec<String>,
}

/// Streak bookkeeping: the current run, and the run as it was before the latest night so a
/// correction of that night can be re-applied.
#[derive(Clone, Debug, Default)]
pub struct Streak {
    pub run: Option<Run>,
    pub before_last: Option<Run>,
    pub last_pos: Option<i64>,
}

/// `[after]`: armed at `at` (night or ms), valid through `until`.
#[derive(Clone, Copy, Debug)]
pub struct Armed {
    pub at: i64,
    pub until: i64,
}

/// A partial match of a sequence.
#[derive(Clone, Debug)]
pub struct PartialMatch {
    pub next_step: usize,
    pub started: i64,
    pub ids: Vec<String>,
}

/// Per rule and key.
#[derive(Clone, Debug, Default)]
pub struct RuleState {
    pub firing: Option<Firing>,
    /// Night (day number) or time (ms) of the latest firing, for cooldowns.
    pub last_fire: Option<i64>,
    /// Id of the latest output, so a re-evaluation never emits the same output twice.
    pub last_output_id: Option<String>,
    pub streak: Streak,
    /// Evaluation counter for streaks counted in events.
    pub evaluations: i64,
    pub armed: Option<Armed>,
    /// Absence: when the timeout expires (ms), and the event that started it.
    pub deadline: Option<i64>,
    pub deadline_cause: Option<String>,
    /// Absence: the deadline a timer is queued for, so each key and rule has one queued timer.
    pub queued: Option<i64>,
    pub partials: Vec<PartialMatch>,
}

impl RuleState {
    pub fn bytes(&self) -> usize {
        let ids = |v: &Vec<String>| {
            v.capacity() * std::mem::size_of::<String>()
                + v.iter().map(|s| s.capacity()).sum::<usize>()
        };
        let run = |r: &Option<Run>| r.as_ref().map_or(0, |r| ids(&r.ids));
        std::mem::size_of::<Self>()
            + self.firing.as_ref().map_or(0, |f| f.id.capacity())
            + self.last_output_id.as_ref().map_or(0, String::capacity)
            + self.deadline_cause.as_ref().map_or(0, String::capacity)
            + run(&self.streak.run)
            + run(&self.streak.before_last)
            + self
                .partials
                .iter()
                .map(|p| std::mem::size_of::<PartialMatch>() + ids(&p.ids))
                .sum::<usize>()
    }
}
