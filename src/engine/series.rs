//! Per-key storage of a series' samples, and statistics computed over it.
//!
//! Calendar windows (nights, days) are recomputed from their few stored values at each
//! evaluation: that is exact under corrections and out-of-order arrivals, and cheap at one
//! value per night. Sliding windows over high-rate streams use incremental aggregates, with a
//! recomputation fallback whenever an out-of-order sample or an evaluation at an earlier time
//! makes the incremental state unusable.

use std::collections::VecDeque;

use super::aggregate::{naive, Incremental, Sample};
use super::nights::NightStore;
use crate::event::{Value, DAY_MS};
use crate::rules::duration::Window;
use crate::rules::expr::{Env, Slot};
use crate::rules::{AggKind, SeriesDef, Stat, Storage};

/// The samples of one series for one key.
#[derive(Debug)]
pub enum SeriesState {
    Nights(NightStore),
    Events(EventStore),
}

/// Every sample with its local date, sorted by time, plus incremental sliding aggregates.
#[derive(Debug)]
pub struct EventStore {
    samples: VecDeque<(Sample, i32)>,
    sliding: Vec<SlidingState>,
    /// Chunks of samples written to the changelog as records of their own and not yet
    /// deleted from it, ascending (empty unless the engine keeps a changelog; see
    /// `engine::snapshot`).
    logged_chunks: Vec<i64>,
    /// The chunk of the newest sample when the changelog was last written: it travels in the
    /// key's own record rather than in a chunk record.
    open_chunk: Option<i64>,
}

#[derive(Debug)]
struct SlidingState {
    agg: Incremental,
    span_ms: i64,
    /// The aggregate holds `samples[front..]`.
    front: usize,
    /// Set when the aggregate no longer matches a suffix of the samples.
    dirty: bool,
}

impl SeriesState {
    pub fn new(def: &SeriesDef, lateness_ms: i64) -> Self {
        match def.storage {
            Storage::PerNight => {
                // The window's nights, plus the nights an event may lag behind by.
                let lateness_days = (lateness_ms + DAY_MS - 1) / DAY_MS;
                let capacity = def.keep_days + lateness_days;
                SeriesState::Nights(NightStore::new(usize::try_from(capacity).unwrap_or(1)))
            }
            Storage::AllEvents => SeriesState::Events(EventStore {
                samples: VecDeque::new(),
                sliding: def
                    .sliding
                    .iter()
                    .map(|s| SlidingState {
                        agg: Incremental::new(&s.agg),
                        span_ms: s.span_ms,
                        front: 0,
                        dirty: false,
                    })
                    .collect(),
                logged_chunks: Vec::new(),
                open_chunk: None,
            }),
        }
    }

    /// The same samples kept under a changed definition of the series (its windows reach
    /// further or less far, or its sliding aggregates changed): stores resized, incremental
    /// aggregates rebuilt from the samples, what no window needs any more dropped. For a rule
    /// reload (see `engine::reload`).
    pub fn rebuilt(self, def: &SeriesDef, clock: i64, lateness_ms: i64) -> SeriesState {
        let mut new = SeriesState::new(def, lateness_ms);
        match (self, &mut new) {
            (SeriesState::Nights(old), SeriesState::Nights(store)) => {
                old.for_each(|day, v| store.insert(day, v));
            }
            (SeriesState::Events(old), SeriesState::Events(store)) => {
                store.restore(old.samples, old.logged_chunks, old.open_chunk);
                store.evict(def, clock, lateness_ms);
            }
            // The storage is part of the signature: a series never changes kind.
            _ => {}
        }
        new
    }

    /// Adds a sample at time `t` (ms) on local date `day`, then drops what no future
    /// evaluation can need, given the key's clock and the allowed lateness.
    pub fn insert(
        &mut self,
        def: &SeriesDef,
        t: i64,
        day: i32,
        v: f64,
        clock: i64,
        lateness_ms: i64,
    ) {
        match self {
            SeriesState::Nights(store) => store.insert(day, v),
            SeriesState::Events(store) => {
                store.insert(Sample { t, v }, day);
                store.evict(def, clock, lateness_ms);
            }
        }
    }

    /// Approximate bytes of memory held.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + match self {
                SeriesState::Nights(s) => s.heap_bytes(),
                SeriesState::Events(s) => {
                    s.samples.capacity() * std::mem::size_of::<(Sample, i32)>()
                        + s.logged_chunks.capacity() * std::mem::size_of::<i64>()
                        + s.sliding
                            .iter()
                            .map(|a| std::mem::size_of::<SlidingState>() + a.agg.heap_bytes())
                            .sum::<usize>()
                }
            }
    }

    /// The statistic at evaluation time `t` on night `night`; `Value::Null` when its guard
    /// is not met or the aggregate is undefined. Also returns the number of samples.
    pub fn stat(
        &mut self,
        def: &SeriesDef,
        stat: &Stat,
        t: i64,
        night: i32,
        scratch: &mut Vec<Sample>,
    ) -> (Value<'static>, usize) {
        scratch.clear();
        match (self, stat.window) {
            (
                SeriesState::Nights(store),
                Window::Nights {
                    count,
                    include_current,
                },
            ) => {
                let (from, to) = day_range(night, count, include_current);
                store.for_each_in(from, to, |d, raw| {
                    if let Some(v) = read_value(def, raw) {
                        scratch.push(Sample {
                            t: i64::from(d) * DAY_MS,
                            v,
                        });
                    }
                });
                finish(
                    &stat.agg,
                    scratch,
                    i64::from(from) * DAY_MS,
                    stat.min_samples,
                )
            }
            (
                SeriesState::Events(store),
                Window::Days {
                    count,
                    include_current,
                },
            ) => {
                let (from, to) = day_range(night, count, include_current);
                scratch.extend(
                    store
                        .samples
                        .iter()
                        .filter(|(_, d)| *d >= from && *d <= to)
                        .map(|(s, _)| *s),
                );
                let start = scratch.first().map_or(t, |s| s.t);
                finish(&stat.agg, scratch, start, stat.min_samples)
            }
            (SeriesState::Events(store), Window::Sliding { span_ms }) => {
                if let Some(slot) = stat.sliding_slot {
                    if let Some(result) = store.incremental(slot, t, stat.min_samples) {
                        return result;
                    }
                }
                let start = t - span_ms;
                scratch.extend(
                    store
                        .samples
                        .iter()
                        .map(|(s, _)| *s)
                        .filter(|s| s.t > start && s.t <= t),
                );
                finish(&stat.agg, scratch, start, stat.min_samples)
            }
            (SeriesState::Events(store), Window::Tumbling { span_ms }) => {
                let start = t.div_euclid(span_ms) * span_ms;
                scratch.extend(
                    store
                        .samples
                        .iter()
                        .map(|(s, _)| *s)
                        .filter(|s| s.t >= start && s.t <= t),
                );
                finish(&stat.agg, scratch, start, stat.min_samples)
            }
            (SeriesState::Events(store), Window::Events { count }) => {
                let upto = store.samples.partition_point(|(s, _)| s.t <= t);
                let from = upto.saturating_sub(count as usize);
                scratch.extend(store.samples.range(from..upto).map(|(s, _)| *s));
                let start = scratch.first().map_or(t, |s| s.t);
                finish(&stat.agg, scratch, start, stat.min_samples)
            }
            // The compiler pairs night windows with night storage; anything else is unreachable
            // by construction, and null is the safe answer.
            _ => (Value::Null, 0),
        }
    }
}

/// The value a statistic sees for a stored night: stored raw field values go through the
/// series' `of` expression on the way out (see `SeriesDef::stored_field`).
fn read_value(def: &SeriesDef, raw: f64) -> Option<f64> {
    match (def.stored_field, &def.of) {
        (Some(field), Some(of)) => match of.eval(&RawField { field, value: raw }) {
            Value::Num(v) if v.is_finite() => Some(v),
            _ => None,
        },
        _ => Some(raw),
    }
}

/// Expression environment holding one raw field value.
struct RawField {
    field: usize,
    value: f64,
}

impl Env for RawField {
    fn load(&self, slot: Slot) -> Value<'_> {
        match slot {
            Slot::Field(i) if i == self.field => Value::Num(self.value),
            _ => Value::Null,
        }
    }
}

fn day_range(night: i32, count: u32, include_current: bool) -> (i32, i32) {
    let count = i32::try_from(count).unwrap_or(i32::MAX);
    if include_current {
        (night.saturating_sub(count - 1), night)
    } else {
        (night.saturating_sub(count), night - 1)
    }
}

fn finish(
    agg: &AggKind,
    samples: &[Sample],
    window_start: i64,
    min_samples: usize,
) -> (Value<'static>, usize) {
    let n = samples.len();
    if n < min_samples {
        return (Value::Null, n);
    }
    (
        naive(agg, samples, window_start).map_or(Value::Null, Value::Num),
        n,
    )
}

impl EventStore {
    /// Changelog records for this store since the last call, in chunks of `chunk_ms` of
    /// event time. The chunk of the newest sample is the open one: it changes at every sample
    /// and is written inside the key's record (see [`EventStore::open_chunk`]), so live
    /// traffic writes one record per key and commit rather than two. Every other chunk in
    /// `dirty`, and the previously open chunk once a newer one opens, is written whole
    /// (`emit(chunk, Some(samples))`); chunks evicted since are deleted (`emit(chunk, None)`).
    /// Samples leave only from the front, so the evicted chunks are exactly the logged ones
    /// before the first sample's chunk.
    pub fn log_chunks(
        &mut self,
        dirty: impl Iterator<Item = i64>,
        chunk_ms: i64,
        mut emit: impl FnMut(i64, Option<&mut dyn Iterator<Item = (Sample, i32)>>),
    ) {
        let first_live = self
            .samples
            .front()
            .map_or(i64::MAX, |(s, _)| s.t.div_euclid(chunk_ms));
        let evicted = self.logged_chunks.partition_point(|c| *c < first_live);
        for chunk in self.logged_chunks.drain(..evicted) {
            emit(chunk, None);
        }
        let open = self.samples.back().map(|(s, _)| s.t.div_euclid(chunk_ms));
        let closed = self.open_chunk.filter(|&previous| Some(previous) != open);
        self.open_chunk = open;
        for chunk in dirty.chain(closed) {
            if chunk < first_live || Some(chunk) == open {
                continue; // evicted again before this call, or travelling in the key record
            }
            let (from, to) = self.chunk_range(chunk, chunk_ms);
            if from == to {
                continue;
            }
            emit(chunk, Some(&mut self.samples.range(from..to).copied()));
            if let Err(at) = self.logged_chunks.binary_search(&chunk) {
                self.logged_chunks.insert(at, chunk);
            }
        }
    }

    /// The open chunk as of the last [`EventStore::log_chunks`], with its samples.
    pub fn open_chunk(
        &self,
        chunk_ms: i64,
    ) -> Option<(i64, impl Iterator<Item = (Sample, i32)> + '_)> {
        let chunk = self.open_chunk?;
        let (from, to) = self.chunk_range(chunk, chunk_ms);
        Some((chunk, self.samples.range(from..to).copied()))
    }

    /// The positions of the samples in `chunk`. It searches by the chunk's bounds in time,
    /// not by each sample's chunk (a division per comparison), and from the newest sample
    /// back (see [`EventStore::partition_from_back`]). The bounds are compared in i128: the
    /// chunks at either end of i64 reach past it.
    fn chunk_range(&self, chunk: i64, chunk_ms: i64) -> (usize, usize) {
        let start = i128::from(chunk) * i128::from(chunk_ms);
        let end = start + i128::from(chunk_ms);
        let to = self.partition_from_back(|t| i128::from(t) < end);
        let from = self.partition_from_back(|t| i128::from(t) < start);
        (from, to)
    }

    /// `VecDeque::partition_point` over the samples' times, galloping back from the newest
    /// sample before the binary search. The chunks the changelog asks for are nearly always
    /// the newest ones, whose samples were just written and are in cache: a plain binary
    /// search over an hour of samples touches a dozen cold cache lines instead, and profiles
    /// showed it as a third of the changelog's cost.
    fn partition_from_back(&self, holds: impl Fn(i64) -> bool) -> usize {
        let n = self.samples.len();
        // Invariants: `holds` is false from `hi` on, true before `lo`.
        let mut hi = n;
        let mut step = 1;
        let mut lo = loop {
            let Some(probe) = n.checked_sub(step) else {
                break 0;
            };
            if holds(self.samples[probe].0.t) {
                break probe + 1;
            }
            hi = probe;
            step *= 2;
        };
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if holds(self.samples[mid].0.t) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Every logged chunk, for deleting them all when the key's state goes.
    pub fn logged_chunks(&self) -> &[i64] {
        &self.logged_chunks
    }

    /// Restores samples read back from the changelog (in time order), the chunks that had
    /// records of their own and the open chunk that travelled in the key's record; the
    /// incremental aggregates are rebuilt from the samples as they are pushed.
    pub fn restore(
        &mut self,
        samples: impl IntoIterator<Item = (Sample, i32)>,
        chunks: Vec<i64>,
        open_chunk: Option<i64>,
    ) {
        for (sample, day) in samples {
            self.insert(sample, day);
        }
        self.logged_chunks = chunks;
        self.open_chunk = open_chunk;
    }

    fn insert(&mut self, sample: Sample, day: i32) {
        let in_order = self
            .samples
            .back()
            .is_none_or(|(last, _)| last.t <= sample.t);
        if in_order {
            self.samples.push_back((sample, day));
            for s in &mut self.sliding {
                if !s.dirty {
                    s.agg.push(sample);
                }
            }
        } else {
            let at = self.samples.partition_point(|(s, _)| s.t <= sample.t);
            self.samples.insert(at, (sample, day));
            for s in &mut self.sliding {
                s.dirty = true;
            }
        }
    }

    fn evict(&mut self, def: &SeriesDef, clock: i64, lateness_ms: i64) {
        let time_floor = clock - def.keep_ms - lateness_ms;
        let lateness_days = (lateness_ms + DAY_MS - 1) / DAY_MS;
        let newest_day = self.samples.back().map_or(i32::MIN, |(_, d)| *d);
        let day_floor = newest_day
            .saturating_sub(i32::try_from(def.keep_days + lateness_days).unwrap_or(i32::MAX));
        let mut removed = 0;
        while self.samples.len() > def.keep_count {
            let Some((front, day)) = self.samples.front() else {
                break;
            };
            let needed_by_time = def.keep_ms > 0 && front.t > time_floor;
            let needed_by_day = def.keep_days > 0 && *day >= day_floor;
            if needed_by_time || needed_by_day {
                break;
            }
            self.samples.pop_front();
            removed += 1;
        }
        if removed > 0 {
            for s in &mut self.sliding {
                if s.front >= removed {
                    s.front -= removed;
                } else {
                    s.dirty = true;
                    s.front = 0;
                }
            }
        }
    }

    /// The sliding aggregate `slot` at time `t`, if the incremental state can answer it.
    fn incremental(
        &mut self,
        slot: usize,
        t: i64,
        min_samples: usize,
    ) -> Option<(Value<'static>, usize)> {
        if self.samples.back().is_some_and(|(s, _)| s.t > t) {
            return None; // evaluating in the past: samples after `t` are in the aggregate
        }
        let samples = &self.samples;
        let state = self.sliding.get_mut(slot)?;
        let start = t - state.span_ms;
        let evicted_too_far =
            state.front > 0 && state.front <= samples.len() && samples[state.front - 1].0.t > start;
        if state.dirty || evicted_too_far || state.front > samples.len() {
            state.agg.clear();
            state.front = samples.partition_point(|(s, _)| s.t <= start);
            for (s, _) in samples.range(state.front..) {
                state.agg.push(*s);
            }
            state.dirty = false;
        }
        while state.front < samples.len() && samples[state.front].0.t <= start {
            state.agg.pop_front();
            state.front += 1;
        }
        let n = state.agg.len();
        if n < min_samples {
            return Some((Value::Null, n));
        }
        Some((state.agg.value(start).map_or(Value::Null, Value::Num), n))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::EventType;
    use crate::rules::{KeySpec, SlidingAgg};

    fn sliding_series(aggs: &[AggKind], span_ms: i64) -> SeriesDef {
        SeriesDef {
            from: EventType::HeartRate,
            of: None,
            filter: None,
            storage: Storage::AllEvents,
            stored_field: None,
            key: KeySpec::UserId,
            keep_days: 0,
            keep_ms: span_ms,
            keep_count: 0,
            sliding: aggs
                .iter()
                .map(|a| SlidingAgg {
                    agg: a.clone(),
                    span_ms,
                })
                .collect(),
            signature: String::new(),
        }
    }

    fn close(a: Value<'_>, b: Value<'_>) -> bool {
        match (a, b) {
            (Value::Num(x), Value::Num(y)) => (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs())),
            (a, b) => a == b,
        }
    }

    proptest! {
        /// Whatever the arrival order (within the lateness) and evaluation times, a sliding
        /// statistic equals the aggregate recomputed from the samples in its window.
        #[test]
        fn sliding_stats_equal_recomputation(
            steps in proptest::collection::vec((0i64..90_000, -20_000i64..2_000, 40.0f64..200.0, any::<bool>()), 1..300),
        ) {
            let span = 60_000;
            let lateness = 30_000;
            let kinds = [AggKind::Min, AggKind::Mean, AggKind::MaxGap, AggKind::Count, AggKind::Percentile(90.0)];
            let def = sliding_series(&kinds, span);
            let mut state = SeriesState::new(&def, lateness);
            let mut clock = 0i64;
            let mut kept: Vec<Sample> = Vec::new();
            let mut scratch = Vec::new();
            for (advance, jitter, v, evaluate_now) in steps {
                clock += advance % 5_000;
                // Some samples arrive out of order, but never later than the lateness allows.
                let t = (clock + jitter).max(clock - lateness);
                state.insert(&def, t, 0, v, clock, lateness);
                kept.push(Sample { t, v });
                kept.sort_by_key(|s| s.t);
                let eval_at = if evaluate_now { clock } else { t };
                for (slot, kind) in kinds.iter().enumerate() {
                    let stat = Stat {
                        name: kind.name(),
                        series: 0,
                        agg: kind.clone(),
                        window: Window::Sliding { span_ms: span },
                        min_samples: 0,
                        sliding_slot: Some(slot),
                    };
                    let (got, n) = state.stat(&def, &stat, eval_at, 0, &mut scratch);
                    let window: Vec<Sample> = kept.iter().copied().filter(|s| s.t > eval_at - span && s.t <= eval_at).collect();
                    let want = naive(kind, &window, eval_at - span).map_or(Value::Null, Value::Num);
                    prop_assert_eq!(n, window.len(), "{:?} at {}", kind, eval_at);
                    prop_assert!(close(got, want), "{:?} at {}: {:?} != {:?}", kind, eval_at, got, want);
                }
            }
        }
    }

    proptest! {
        /// The galloping search finds what a plain partition point finds, and a chunk's range
        /// holds exactly the samples whose chunk it is, at either end of i64 too.
        #[test]
        fn chunk_ranges_equal_a_scan(
            mut times in proptest::collection::vec(prop_oneof![
                8 => -50_000i64..50_000,
                1 => Just(i64::MIN),
                1 => Just(i64::MAX),
                1 => (i64::MAX - 30_000)..i64::MAX,
                1 => i64::MIN..(i64::MIN + 30_000),
            ], 0..200),
            probes in proptest::collection::vec(any::<prop::sample::Index>(), 1..20),
        ) {
            const WIDTH: i64 = 10_000;
            times.sort_unstable();
            let store = EventStore {
                samples: times.iter().map(|&t| (Sample { t, v: 0.0 }, 0)).collect(),
                sliding: Vec::new(),
                logged_chunks: Vec::new(),
                open_chunk: None,
            };
            let mut chunks: Vec<i64> = times.iter().map(|t| t.div_euclid(WIDTH)).collect();
            chunks.extend([i64::MIN / WIDTH - 2, i64::MIN / WIDTH - 1, i64::MAX / WIDTH, i64::MAX / WIDTH + 1, 0, -1, 7]);
            for probe in probes {
                let chunk = *probe.get(&chunks);
                let (from, to) = store.chunk_range(chunk, WIDTH);
                let want_from = times.iter().filter(|t| t.div_euclid(WIDTH) < chunk).count();
                let want_to = times.iter().filter(|t| t.div_euclid(WIDTH) <= chunk).count();
                prop_assert_eq!((from, to), (want_from, want_to), "chunk {}", chunk);
                let threshold = chunk.wrapping_mul(977);
                prop_assert_eq!(
                    store.partition_from_back(|t| t < threshold),
                    store.samples.partition_point(|(s, _)| s.t < threshold)
                );
            }
        }
    }

    #[test]
    fn night_windows_take_one_value_per_date_and_respect_bounds() {
        let def = SeriesDef {
            from: EventType::RestingHeartRate,
            of: None,
            filter: None,
            storage: Storage::PerNight,
            stored_field: None,
            key: KeySpec::UserId,
            keep_days: 61,
            keep_ms: 0,
            keep_count: 0,
            sliding: Vec::new(),
            signature: String::new(),
        };
        let mut state = SeriesState::new(&def, 0);
        for day in 0..100 {
            state.insert(
                &def,
                i64::from(day) * DAY_MS,
                day,
                f64::from(day),
                i64::from(day) * DAY_MS,
                0,
            );
        }
        // A correction of night 99 replaces its value.
        state.insert(&def, 99 * DAY_MS + 1, 99, 1000.0, 99 * DAY_MS + 1, 0);
        let stat = |window, agg| Stat {
            name: "s".into(),
            series: 0,
            agg,
            window,
            min_samples: 1,
            sliding_slot: None,
        };
        let mut scratch = Vec::new();
        let last7 = stat(
            Window::Nights {
                count: 7,
                include_current: true,
            },
            AggKind::Count,
        );
        assert_eq!(
            state.stat(&def, &last7, 0, 99, &mut scratch).0,
            Value::Num(7.0)
        );
        let prev60 = stat(
            Window::Nights {
                count: 60,
                include_current: false,
            },
            AggKind::Min,
        );
        assert_eq!(
            state.stat(&def, &prev60, 0, 99, &mut scratch).0,
            Value::Num(39.0)
        );
        let max7 = stat(
            Window::Nights {
                count: 7,
                include_current: true,
            },
            AggKind::Max,
        );
        assert_eq!(
            state.stat(&def, &max7, 0, 99, &mut scratch).0,
            Value::Num(1000.0)
        );
        // Nights older than the longest window (plus a margin) are gone.
        assert!(state.bytes() < 100 * 16);
    }
}
