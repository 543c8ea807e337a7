//! The engine: per-key event time, series, rule evaluation, timers and outputs.
//!
//! Deterministic and free of I/O: the same events in the same order give the same outputs,
//! whatever edge feeds them (file, Kafka, rule tests, backtests). Time comes only from
//! events: each key (user) has its own event time, and timers run on the global clock (the
//! latest event time seen from anyone), so a replay behaves like live operation.

pub mod aggregate;
mod evaluate;
mod nights;
pub mod output;
mod series;
pub mod snapshot;
mod state;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;
use std::sync::Arc;

use crate::event::{Event, EventType};
use crate::rules::{KeySpec, Mode, RuleSet, Storage};
pub use output::{AlertState, OutputData, OutputEvent};
pub use snapshot::{RestoreError, StateRecord};
use state::KeyState;

/// Engine settings that are not part of any rule.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How far behind its key's event time an event may arrive and still be processed (ms).
    /// Later events go to the late output.
    pub allowed_lateness_ms: i64,
    /// Drop a key's state once the global clock is this far past the key's own event time
    /// (ms), unless an alert of it is firing or a timer of it is pending. `None` keeps state
    /// for as long as the key might come back: with per-user event time, a user who syncs
    /// late may still need windows that are old by the global clock, so dropping is a choice
    /// for the operator (Flink's state TTL, Kafka Streams' retention), not a default.
    pub state_ttl_ms: Option<i64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            allowed_lateness_ms: 3_600_000,
            state_ttl_ms: None,
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
    global_clock: i64,
    /// Global clock at the last idle-key sweep.
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
}

/// Keys touched since the last changelog drain, with the sample chunks written per series,
/// and keys whose state was dropped (with the chunks they had logged).
#[derive(Default)]
struct Changes {
    touched: FxHashMap<Box<str>, Vec<(usize, i64)>>,
    dropped: Vec<(Box<str>, LoggedChunks)>,
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
            config,
            keys: FxHashMap::default(),
            global_clock: i64::MIN,
            last_sweep: i64::MIN,
            timers: BinaryHeap::new(),
            counters: Counters::default(),
            series_by_type,
            evaluated_by_type,
            attribute_keys,
            dependents,
            changes: None,
        }
    }

    /// An engine that keeps a changelog ([`Engine::drain_changelog`]), starting from the state
    /// in `records` (a changelog read back in log order; empty for a fresh start).
    pub fn restored(
        rules: Arc<RuleSet>,
        config: EngineConfig,
        records: impl IntoIterator<Item = StateRecord>,
    ) -> Result<Self, RestoreError> {
        let restored = snapshot::restore(&rules, config.allowed_lateness_ms, records)?;
        let mut engine = Engine::new(rules, config);
        if let Some(task) = restored.task {
            engine.global_clock = task.global_clock;
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
        engine.changes = Some(Changes::default());
        Ok(engine)
    }

    /// Appends to `out` the changelog records for everything that changed since the last call
    /// (see [`snapshot`]). Only an engine made by [`Engine::restored`] keeps a changelog.
    pub fn drain_changelog(&mut self, out: &mut Vec<StateRecord>) {
        let Some(changes) = self.changes.as_mut() else {
            return;
        };
        if changes.touched.is_empty() && changes.dropped.is_empty() {
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
                global_clock: self.global_clock,
                last_sweep: self.last_sweep,
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

    /// The latest event time seen from any key (ms), which drives timers.
    pub fn global_clock(&self) -> i64 {
        self.global_clock
    }

    /// The event time of a user (ms), if the engine has seen them.
    pub fn user_clock(&self, user: &str) -> Option<i64> {
        self.keys.get(user).map(|k| k.clock)
    }

    /// Keys whose state [`Engine::drain_changelog`] would write (0: nothing to write).
    pub fn keys_changed(&self) -> usize {
        self.changes
            .as_ref()
            .map_or(0, |c| c.touched.len() + c.dropped.len())
    }

    /// Number of keys with state.
    pub fn keys_in_state(&self) -> usize {
        self.keys.len()
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
    }

    /// Processes one event: outputs are appended to `out`, in a deterministic order.
    pub fn process(&mut self, event: &Event, out: &mut Vec<OutputEvent>) -> Disposition {
        let t = event.time.millis();
        if let Some(user) = self.keys.get(event.user_id.as_str()) {
            if t < user.clock.saturating_sub(self.config.allowed_lateness_ms) {
                self.counters.late += 1;
                return Disposition::Late;
            }
        }
        self.counters.events += 1;
        if t > self.global_clock {
            self.global_clock = t;
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
            slot,
            event,
            &mut timers,
            out,
        );
        // Rules keyed by another attribute keep state under that attribute's value.
        for i in 0..self.attribute_keys.len() {
            let spec = self.attribute_keys[i].clone();
            let KeySpec::Attribute(attr) = &spec else {
                continue;
            };
            if let Some(value) = event.attribute(attr) {
                let key = format!("{attr}\u{1f}{value}");
                self.process_key(&rules, &spec, &key, slot, event, &mut timers, out);
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
        slot: usize,
        event: &Event,
        timers: &mut Vec<(i64, Box<str>, usize)>,
        out: &mut Vec<OutputEvent>,
    ) {
        let t = event.time.millis();
        let lateness = self.config.allowed_lateness_ms;
        let state = match self.keys.get_mut(key) {
            Some(state) => state,
            None => self
                .keys
                .entry(key.into())
                .or_insert_with(|| KeyState::new(rules.series.len(), rules.rules.len())),
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
        if self.global_clock < self.last_sweep.saturating_add(TTL_SWEEP_EVERY_MS) {
            return;
        }
        self.last_sweep = self.global_clock;
        let horizon = self.global_clock.saturating_sub(ttl);
        let before = self.keys.len();
        let rules = &self.rules;
        let changes = &mut self.changes;
        self.keys.retain(|key, state| {
            let keep = state.clock >= horizon || state.holds_open_work();
            if let (false, Some(changes)) = (keep, changes.as_mut()) {
                changes
                    .dropped
                    .push((key.clone(), logged_chunks(rules, state)));
            }
            keep
        });
        self.counters.keys_expired += (before - self.keys.len()) as u64;
    }

    /// Fires absence timers whose deadline the global clock has reached.
    fn fire_timers(&mut self, out: &mut Vec<OutputEvent>) {
        let rules = Arc::clone(&self.rules);
        while let Some(Reverse(timer)) = self.timers.peek() {
            if timer.deadline > self.global_clock {
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
