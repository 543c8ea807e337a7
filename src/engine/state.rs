//! What the engine remembers per key and rule between events.

use serde::{Deserialize, Serialize};

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
    pub series: Box<[Option<Box<SeriesState>>]>,
    /// Per rule (None until the rule has state for the key).
    pub rules: Box<[Option<Box<RuleState>>]>,
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

    /// True while an absence timer of this key is pending: dropping the state would lose a
    /// firing. (A firing alert does not hold the state: it outlives it as a
    /// [`DormantFirings`].)
    pub fn holds_pending_timer(&self) -> bool {
        self.rules
            .iter()
            .flatten()
            .any(|r| matches!(r.extra.as_deref(), Some(Extra::Absence(a)) if a.deadline.is_some()))
    }

    /// The alerts of this key that are firing, by rule position (empty when none).
    pub fn firings(&self) -> DormantFirings {
        self.rules
            .iter()
            .enumerate()
            .filter_map(|(rule, r)| {
                let firing = r.as_deref()?.firing?;
                Some((u32::try_from(rule).ok()?, firing))
            })
            .collect()
    }

    /// Takes back the firings of a key whose state was dropped while they were open, so the
    /// key's next events can resolve them.
    pub fn revive(&mut self, firings: &[(u32, Firing)]) {
        for (rule, firing) in firings {
            if let Some(slot) = self.rules.get_mut(*rule as usize) {
                let rs = slot.get_or_insert_with(Default::default);
                rs.firing = Some(*firing);
                rs.last_fire = rs.last_fire.max(firing.occasion);
            }
        }
    }

    /// Approximate heap bytes held (the struct itself is counted by its container).
    pub fn heap_bytes(&self) -> usize {
        self.series.len() * std::mem::size_of::<Option<Box<SeriesState>>>()
            + self
                .series
                .iter()
                .flatten()
                .map(|s| s.bytes())
                .sum::<usize>()
            + self.rules.len() * std::mem::size_of::<Option<Box<RuleState>>>()
            + self
                .rules
                .iter()
                .flatten()
                .map(|r| r.bytes())
                .sum::<usize>()
    }
}

/// The open firings of a key whose state the state TTL dropped, by rule position: all that
/// is needed to resolve them if the key comes back (16 bytes a firing).
pub type DormantFirings = Box<[(u32, Firing)]>;

/// An alert that has fired and not yet resolved.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Firing {
    /// Night (nightly rules) or time in ms of the firing; its id is rebuilt from it.
    pub occasion: i64,
    pub severity: Severity,
    /// The rule version that fired it, when a rule reload carried it over to a newer version
    /// (`None`: the rule's current version). Its resolution must name the id it was emitted
    /// with. Not written to the changelog: Kafka mode does not reload rules (yet).
    #[serde(skip)]
    pub version: Option<u32>,
}

/// Streak bookkeeping as bitmaps over the last 64 positions (nights, or evaluations for
/// streaks counted in events): bit k of `held` says whether the condition held at `pos - k`,
/// bit k of `fired` whether that position belongs to a run that already fired. A date without
/// data has its bit clear, so it ends a run; a correction or a late night just rewrites its
/// bit. 24 bytes whatever the streak length (up to 64).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Streak {
    pub pos: i64,
    pub held: u64,
    pub fired: u64,
}

/// `[after]`: armed at `at` (night or ms), valid through `until`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Armed {
    pub at: i64,
    pub until: i64,
}

/// A partial match of a sequence.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartialMatch {
    pub next_step: usize,
    pub started: i64,
    pub ids: Vec<String>,
}

/// Absence bookkeeping.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Absence {
    /// When the timeout expires (ms), and the event that started it.
    pub deadline: Option<i64>,
    pub cause: Option<Box<str>>,
    /// Whether a timer for this key and rule is in the queue: there is at most one, and a
    /// timer that comes due before a moved deadline re-queues itself.
    pub queued: bool,
}

/// State only some kinds of rules need, kept out of line so the common case stays small.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Extra {
    Armed(Armed),
    Absence(Absence),
    Sequence(Vec<PartialMatch>),
}

/// Per rule and key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuleState {
    pub firing: Option<Firing>,
    /// Occasion of the latest firing — its night for nightly rules, else its time in ms —
    /// for cooldowns, and so a re-evaluation never emits the same output twice.
    pub last_fire: i64,
    pub streak: Streak,
    pub extra: Option<Box<Extra>>,
}

impl Default for RuleState {
    fn default() -> Self {
        RuleState {
            firing: None,
            last_fire: i64::MIN,
            streak: Streak::default(),
            extra: None,
        }
    }
}

impl RuleState {
    pub fn armed(&self) -> Option<Armed> {
        match self.extra.as_deref() {
            Some(Extra::Armed(armed)) => Some(*armed),
            _ => None,
        }
    }

    pub fn set_armed(&mut self, armed: Option<Armed>) {
        self.extra = armed.map(|a| Box::new(Extra::Armed(a)));
    }

    pub fn absence(&mut self) -> &mut Absence {
        if !matches!(self.extra.as_deref(), Some(Extra::Absence(_))) {
            self.extra = Some(Box::new(Extra::Absence(Absence::default())));
        }
        match self.extra.as_deref_mut() {
            Some(Extra::Absence(absence)) => absence,
            _ => unreachable!("set just above"),
        }
    }

    pub fn partials(&mut self) -> &mut Vec<PartialMatch> {
        if !matches!(self.extra.as_deref(), Some(Extra::Sequence(_))) {
            self.extra = Some(Box::new(Extra::Sequence(Vec::new())));
        }
        match self.extra.as_deref_mut() {
            Some(Extra::Sequence(partials)) => partials,
            _ => unreachable!("set just above"),
        }
    }

    /// Bytes held, the struct included (it lives in a box of its own).
    pub fn bytes(&self) -> usize {
        let ids = |v: &Vec<String>| {
            v.capacity() * std::mem::size_of::<String>()
                + v.iter().map(String::capacity).sum::<usize>()
        };
        std::mem::size_of::<Self>()
            + self.extra.as_deref().map_or(0, |e| {
                std::mem::size_of::<Extra>()
                    + match e {
                        Extra::Armed(_) => 0,
                        Extra::Absence(a) => a.cause.as_ref().map_or(0, |c| c.len()),
                        Extra::Sequence(partials) => partials
                            .iter()
                            .map(|p| std::mem::size_of::<PartialMatch>() + ids(&p.ids))
                            .sum::<usize>(),
                    }
            })
    }
}

#[cfg(test)]
mod size_probe {
    #[test]
    fn print_sizes() {
        eprintln!(
            "RuleState {} KeyState {} SeriesState {} Streak {} Firing {}",
            std::mem::size_of::<super::RuleState>(),
            std::mem::size_of::<super::KeyState>(),
            std::mem::size_of::<crate::engine::series::SeriesState>(),
            std::mem::size_of::<super::Streak>(),
            std::mem::size_of::<Option<super::Firing>>(),
        );
    }
}
