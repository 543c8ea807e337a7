//! The engine: per-key event time, series, rule evaluation, timers and outputs.
//!
//! Deterministic and free of I/O: the same events in the same order give the same outputs,
//! whatever edge feeds them (file, Kafka, rule tests, backtests). Time comes only from
//! events: each key (user) has its own event time, and timers run on the stream clock (the
//! time two users have reached, see [`clock`]), so a replay behaves like live operation and no
//! single user's wrong clock moves anyone else's timers.

pub mod aggregate;
pub mod clock;
mod evaluate;
pub mod lateness;
mod nights;
pub mod observe;
pub mod output;
mod reload;
mod series;
pub mod snapshot;
mod state;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;
use std::sync::Arc;

use crate::event::{Event, EventType};
use crate::rules::{KeySpec, Mode, RuleSet, Storage};
use clock::StreamClock;
pub use lateness::Lateness;
pub use observe::Observer;
pub use output::{AlertState, OutputData, OutputEvent};
pub use reload::{ReloadReport, Reuse, RuleOutcome, RuleReload};
pub use snapshot::{RestoreError, StateRecord};
use state::KeyState;

/// Engine settings that are not part of any rule.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How far behind its key's event time an event of each type may arrive and still be
    /// processed. Later events go to the late output.
    pub lateness: Lateness,
    /// Drop a key's state once the stream clock is this far past the key's own event time
    /// (ms), unless an absence timer of it is pending. Its firing alerts outlive it in a few
    /// bytes each, so that the key's return resolves them; its windows, clock and other rule
    /// state are gone (a returning key starts afresh). `None` keeps state
    /// for as long as the key might come back: with per-user event time, a user who syncs
    /// late may still need windows that are old by the stream clock, so dropping is a choice
    /// for the operator (Flink's state TTL, Kafka Streams' retention), not a default.
    pub state_ttl_ms: Option<i64>,
    /// How far ahead a clock may plausibly be (ms). A user whose event time is more than this
    /// ahead of every other user's does not count toward the stream clock (see [`clock`]);
    /// the edges also dead-letter events this far ahead of the wall clock.
    pub max_future_skew_ms: i64,
}

/// The default of [`EngineConfig::max_future_skew_ms`]: one day.
pub const DEFAULT_MAX_FUTURE_SKEW_MS: i64 = 86_400_000;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            lateness: Lateness::default(),
            state_ttl_ms: None,
            max_future_skew_ms: DEFAULT_MAX_FUTURE_SKEW_MS,
        }
    }
}

/// How often (in global event time) idle keys are looked for, when a state TTL is set.
const TTL_SWEEP_EVERY_MS: i64 = 3_600_000;

/// What happened to an input event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    Processed,
    /// Older than its key's event time minus the allowed lateness; not processed.
    Late,
}

/// Running totals, for the end-of-run summary and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub events: u64,
    pub late: u64,
    pub alerts_firing: u64,
    pub alerts_resolved: u64,
    pub milestones: u64,
    /// Keys whose state was dropped by the state TTL.
    pub keys_expired: u64,
}

/// A queued absence timer: at `deadline`, check rule `rule` for `key`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    deadline: i64,
    key: Box<str>,
    rule: usize,
}

/// The CEP engine.
pub struct Engine {
    rules: Arc<RuleSet>,
    config: EngineConfig,
    keys: FxHashMap<Box<str>, KeyState>,
    clock: StreamClock,
    /// Stream clock at the last idle-key sweep.
    last_sweep: i64,
    timers: BinaryHeap<Reverse<Timer>>,
    counters: Counters,
    /// For each event type (by position in `EventType::ALL`): series it feeds, rules it triggers.
    series_by_type: Vec<Vec<usize>>,
    /// For each event type, the rules it evaluates, in rule order (absence rules watch every
    /// type).
    evaluated_by_type: Vec<Vec<usize>>,
    /// Key attributes other than the user id that some rule is partitioned by.
    attribute_keys: Vec<KeySpec>,
    /// For each rule, the rules with an `[after]` on it.
    dependents: Vec<Vec<usize>>,
    /// What changed since the last [`Engine::drain_changelog`], when a changelog is kept.
    changes: Option<Changes>,
    /// The open firings of keys the state TTL dropped (see [`EngineConfig::state_ttl_ms`]).
    dormant: FxHashMap<Box<str>, state::DormantFirings>,
}

/// Keys touched since the last changelog drain, with the sample chunks written per series,
/// and keys whose state was dropped (with the chunks they had logged).
#[derive(Default)]
struct Changes {
    touched: FxHashMap<Box<str>, Vec<(usize, i64)>>,
    dropped: Vec<(Box<str>, LoggedChunks)>,
    /// Keys whose dormant firings were set or taken back.
    dormant: Vec<Box<str>>,
}

/// The changelog chunks of a key's state, per series id.
type LoggedChunks = Vec<(u64, Vec<i64>)>;

fn type_slot(ty: EventType) -> usize {
    EventType::ALL.iter().position(|t| *t == ty).unwrap_or(0)
}

impl Engine {
    pub fn new(rules: Arc<RuleSet>, config: EngineConfig) -> Self {
        let mut series_by_type = vec![Vec::new(); EventType::ALL.len()];
        for (i, s) in rules.series.iter().enumerate() {
            series_by_type[type_slot(s.from)].push(i);
        }
        let mut evaluated_by_type = vec![Vec::new(); EventType::ALL.len()];
        let mut dependents = vec![Vec::new(); rules.rules.len()];
        let mut attribute_keys = Vec::new();
        for (i, r) in rules.rules.iter().enumerate() {
            for ty in r.trigger_types() {
                evaluated_by_type[type_slot(ty)].push(i);
            }
            if matches!(r.key, KeySpec::Attribute(_)) && !attribute_keys.contains(&r.key) {
                attribute_keys.push(r.key.clone());
            }
            if let Mode::Condition {
                after: Some(after), ..
            } = &r.mode
            {
                dependents[after.rule].push(i);
            }
        }
        Engine {
            rules,
            clock: StreamClock::new(config.max_future_skew_ms),
            config,
            keys: FxHashMap::default(),
            last_sweep: i64::MIN,
            timers: BinaryHeap::new(),
            counters: Counters::default(),
            series_by_type,
            evaluated_by_type,
            attribute_keys,
            dependents,
            changes: None,
            dormant: FxHashMap::default(),
        }
    }

    /// An engine that keeps a changelog ([`Engine::drain_changelog`]), starting from the state
    /// in `records` (a changelog read back in log order; empty for a fresh start).
    pub fn restored(
        rules: Arc<RuleSet>,
        config: EngineConfig,
        records: impl IntoIterator<Item = StateRecord>,
    ) -> Result<Self, RestoreError> {
        let restored = snapshot::restore(&rules, &config.lateness, records)?;
        let mut engine = Engine::new(rules, config);
        if let Some(task) = restored.task {
            engine.clock = StreamClock::restored(
                task.global_clock,
                task.leaders,
                engine.config.max_future_skew_ms,
            );
            engine.last_sweep = task.last_sweep;
        }
        for (key, state) in restored.keys {
            for (rule, rule_state) in state.rules.iter().enumerate() {
                if let Some(state::Extra::Absence(absence)) =
                    rule_state.as_deref().and_then(|r| r.extra.as_deref())
                {
                    if let (Some(deadline), true) = (absence.deadline, absence.queued) {
                        engine.timers.push(Reverse(Timer {
                            deadline,
                            key: key.clone(),
                            rule,
                        }));
                    }
                }
            }
            engine.keys.insert(key, state);
        }
        engine.dormant = restored.dormant.into_iter().collect();
        engine.changes = Some(Changes::default());
        Ok(engine)
    }

    /// Appends to `out` the changelog records for everything that changed since the last call
    /// (see [`snapshot`]). Only an engine made by [`Engine::restored`] keeps a changelog.
    pub fn drain_changelog(&mut self, out: &mut Vec<StateRecord>) {
        let Some(changes) = self.changes.as_mut() else {
            return;
        };
        if changes.touched.is_empty() && changes.dropped.is_empty() && changes.dormant.is_empty() {
            return;
        }
        let changes = std::mem::take(changes);
        for (key, series) in changes.dropped {
            out.push(StateRecord {
                key: snapshot::key_record_key(&key),
                value: None,
            });
            for (id, chunks) in series {
                out.extend(chunks.into_iter().map(|c| StateRecord {
                    key: snapshot::chunk_record_key(id, c, &key),
                    value: None,
                }));
            }
        }
        let rules = Arc::clone(&self.rules);
        let mut dormant = changes.dormant;
        dormant.sort_unstable();
        dormant.dedup();
        for key in dormant {
            out.push(StateRecord {
                key: snapshot::dormant_record_key(&key),
                value: self
                    .dormant
                    .get(&key)
                    .map(|firings| snapshot::encode_dormant(&rules, firings)),
            });
        }
        for (key, mut dirty) in changes.touched {
            let Some(state) = self.keys.get_mut(&key) else {
                continue; // touched, then dropped: its tombstones are written above
            };
            dirty.sort_unstable();
            dirty.dedup();
            // Chunks first: they decide which chunk is open and travels in the key record.
            for (index, series) in state.series.iter_mut().enumerate() {
                let Some(series::SeriesState::Events(store)) = series.as_deref_mut() else {
                    continue;
                };
                let id = snapshot::series_id(&rules.series[index].signature);
                let from = dirty.partition_point(|(s, _)| *s < index);
                let to = dirty.partition_point(|(s, _)| *s <= index);
                let chunks = dirty[from..to].iter().map(|(_, c)| *c);
                store.log_chunks(chunks, snapshot::CHUNK_MS, |chunk, samples| {
                    out.push(StateRecord {
                        key: snapshot::chunk_record_key(id, chunk, &key),
                        value: samples.map(|s| snapshot::encode_chunk(chunk, s)),
                    })
                });
            }
            out.push(StateRecord {
                key: snapshot::key_record_key(&key),
                value: Some(snapshot::encode_key(&rules, state)),
            });
        }
        out.push(StateRecord {
            key: snapshot::task_record_key(),
            value: Some(snapshot::encode_task(&snapshot::TaskSnapshot {
                global_clock: self.clock.time(),
                last_sweep: self.last_sweep,
                leaders: self.clock.leaders().to_vec(),
            })),
        });
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    pub fn rules_arc(&self) -> Arc<RuleSet> {
        Arc::clone(&self.rules)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The stream clock (ms), which drives timers and the state TTL: the time two users have
    /// reached (see [`clock`]).
    pub fn global_clock(&self) -> i64 {
        self.clock.time()
    }

    /// The event time of a user (ms), if the engine has seen them.
    pub fn user_clock(&self, user: &str) -> Option<i64> {
        self.keys.get(user).map(|k| k.clock)
    }

    /// Keys whose state [`Engine::drain_changelog`] would write (0: nothing to write).
    pub fn keys_changed(&self) -> usize {
        self.changes
            .as_ref()
            .map_or(0, |c| c.touched.len() + c.dropped.len() + c.dormant.len())
    }

    /// Number of keys with state.
    pub fn keys_in_state(&self) -> usize {
        self.keys.len()
    }

    /// Number of keys the state TTL dropped while an alert of theirs was firing: only those
    /// firings are kept, until the key returns.
    pub fn keys_dormant(&self) -> usize {
        self.dormant.len()
    }

    /// Approximate bytes of state held for all keys, timers included.
    pub fn state_bytes(&self) -> usize {
        // The table's slots (with hashbrown's control byte), occupied or not, plus what each
        // key and its state hold on the heap.
        self.keys.capacity() * (std::mem::size_of::<(Box<str>, KeyState)>() + 1)
            + self
                .keys
                .iter()
                .map(|(k, s)| k.len() + s.heap_bytes())
                .sum::<usize>()
            + self.timers.len() * std::mem::size_of::<Timer>()
            + self.dormant.capacity()
                * (std::mem::size_of::<(Box<str>, state::DormantFirings)>() + 1)
            + self
                .dormant
                .iter()
                .map(|(k, f)| k.len() + std::mem::size_of_val(&**f))
                .sum::<usize>()
    }

    /// Processes one event: outputs are appended to `out`, in a deterministic order.
    pub fn process(&mut self, event: &Event, out: &mut Vec<OutputEvent>) -> Disposition {
        self.process_observed(event, out, None)
    }

    /// [`Engine::process`], telling `observer` of every evaluation of a `[fire]` rule's
    /// statistics (see [`observe`]). The outputs are the same with or without one.
    pub fn process_observed(
        &mut self,
        event: &Event,
        out: &mut Vec<OutputEvent>,
        mut observer: Option<&mut dyn Observer>,
    ) -> Disposition {
        let t = event.time.millis();
        if let Some(user) = self.keys.get(event.user_id.as_str()) {
            let lateness = self.config.lateness.of(event.event_type());
            if t < user.clock.saturating_sub(lateness) {
                self.counters.late += 1;
                return Disposition::Late;
            }
        }
        self.counters.events += 1;
        if self.clock.observe(&event.user_id, t) {
            self.fire_timers(out);
            self.expire_idle_keys();
        }
        let rules = Arc::clone(&self.rules);
        let slot = type_slot(event.event_type());
        let mut timers = Vec::new();
        self.process_key(
            &rules,
            &KeySpec::UserId,
            &event.user_id,
            (slot, event),
            &mut timers,
            out,
            reborrow(&mut observer),
        );
        // Rules keyed by another attribute keep state under that attribute's value.
        for i in 0..self.attribute_keys.len() {
            let spec = self.attribute_keys[i].clone();
            let KeySpec::Attribute(attr) = &spec else {
                continue;
            };
            if let Some(value) = event.attribute(attr) {
                let key = format!("{attr}\u{1f}{value}");
                self.process_key(
                    &rules,
                    &spec,
                    &key,
                    (slot, event),
                    &mut timers,
                    out,
                    reborrow(&mut observer),
                );
            }
        }
        for (deadline, key, rule) in timers {
            self.timers.push(Reverse(Timer {
                deadline,
                key,
                rule,
            }));
        }
        Disposition::Processed
    }

    /// Feeds the event to one key's series and evaluates that key's rules.
    #[allow(clippy::too_many_arguments)]
    fn process_key(
        &mut self,
        rules: &RuleSet,
        spec: &KeySpec,
        key: &str,
        (slot, event): (usize, &Event),
        timers: &mut Vec<(i64, Box<str>, usize)>,
        out: &mut Vec<OutputEvent>,
        mut observer: Option<&mut dyn Observer>,
    ) {
        let t = event.time.millis();
        let state = match self.keys.get_mut(key) {
            Some(state) => state,
            None => {
                let mut state = KeyState::new(rules.series.len(), rules.rules.len());
                if let Some(firings) = self.dormant.remove(key) {
                    state.revive(&firings);
                    if let Some(changes) = self.changes.as_mut() {
                        changes.dormant.push(key.into());
                    }
                }
                self.keys.entry(key.into()).or_insert(state)
            }
        };
        if t >= state.clock {
            state.clock = t;
            state.offset_seconds = event.time.offset_seconds();
        }
        if let Some(changes) = self.changes.as_mut() {
            let dirty = match changes.touched.get_mut(key) {
                Some(dirty) => dirty,
                None => changes.touched.entry(key.into()).or_default(),
            };
            for &s in &self.series_by_type[slot] {
                let def = &rules.series[s];
                if def.key == *spec && def.storage == Storage::AllEvents {
                    dirty.push((s, snapshot::chunk_of(t)));
                }
            }
        }
        for &s in &self.series_by_type[slot] {
            let def = &rules.series[s];
            if def.key == *spec {
                let lateness = self.config.lateness.of(def.from);
                let series = state.series[s]
                    .get_or_insert_with(|| Box::new(series::SeriesState::new(def, lateness)));
                evaluate::feed_series(def, series, event, state.clock, lateness);
            }
        }
        let mut ctx = evaluate::Context {
            rules,
            dependents: &self.dependents,
            counters: &mut self.counters,
            timers: std::mem::take(timers),
            observer: reborrow(&mut observer),
        };
        for &r in &self.evaluated_by_type[slot] {
            if rules.rules[r].key == *spec {
                ctx.evaluate_rule(r, key, state, event, out);
            }
        }
        *timers = ctx.timers;
    }

    /// With a state TTL, drops keys idle for longer than it (see [`EngineConfig`]).
    fn expire_idle_keys(&mut self) {
        let Some(ttl) = self.config.state_ttl_ms else {
            return;
        };
        let now = self.clock.time();
        if now < self.last_sweep.saturating_add(TTL_SWEEP_EVERY_MS) {
            return;
        }
        self.last_sweep = now;
        let horizon = now.saturating_sub(ttl);
        let before = self.keys.len();
        let rules = &self.rules;
        let changes = &mut self.changes;
        let dormant = &mut self.dormant;
        self.keys.retain(|key, state| {
            let keep = state.clock >= horizon || state.holds_pending_timer();
            if keep {
                return true;
            }
            let firings = state.firings();
            let firing = !firings.is_empty();
            if firing {
                dormant.insert(key.clone(), firings);
            }
            if let Some(changes) = changes.as_mut() {
                changes
                    .dropped
                    .push((key.clone(), logged_chunks(rules, state)));
                if firing {
                    changes.dormant.push(key.clone());
                }
            }
            false
        });
        self.counters.keys_expired += (before - self.keys.len()) as u64;
    }

    /// Fires absence timers whose deadline the stream clock has reached.
    fn fire_timers(&mut self, out: &mut Vec<OutputEvent>) {
        let rules = Arc::clone(&self.rules);
        while let Some(Reverse(timer)) = self.timers.peek() {
            if timer.deadline > self.clock.time() {
                break;
            }
            let Some(Reverse(timer)) = self.timers.pop() else {
                break;
            };
            let Some(state) = self.keys.get_mut(&timer.key) else {
                continue;
            };
            if let Some(changes) = self.changes.as_mut() {
                if !changes.touched.contains_key(&timer.key) {
                    changes.touched.insert(timer.key.clone(), Vec::new());
                }
            }
            let mut ctx = evaluate::Context {
                rules: &rules,
                dependents: &self.dependents,
                counters: &mut self.counters,
                timers: Vec::new(),
                observer: None,
            };
            ctx.expire_absence(timer.rule, &timer.key, state, timer.deadline, out);
            for (deadline, key, rule) in ctx.timers {
                self.timers.push(Reverse(Timer {
                    deadline,
                    key,
                    rule,
                }));
            }
        }
    }
}

/// The observer again, for one more call: a plain `as_deref_mut` would keep the trait
/// object's own lifetime, which a `&mut` cannot shorten.
fn reborrow<'s>(observer: &'s mut Option<&mut dyn Observer>) -> Option<&'s mut dyn Observer> {
    match observer {
        Some(observer) => Some(&mut **observer),
        None => None,
    }
}

/// The changelog chunks a key's state has written, per series id.
fn logged_chunks(rules: &RuleSet, state: &KeyState) -> LoggedChunks {
    rules
        .series
        .iter()
        .zip(state.series.iter())
        .filter_map(|(def, series)| match series.as_deref() {
            Some(series::SeriesState::Events(store)) if !store.logged_chunks().is_empty() => {
                Some((
                    snapshot::series_id(&def.signature),
                    store.logged_chunks().to_vec(),
                ))
            }
            _ => None,
        })
        .collect()
}
