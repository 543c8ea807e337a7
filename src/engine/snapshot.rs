//! The engine's state as changelog records, and its restoration from them.
//!
//! In Kafka mode the state of each task (input partition) is written, in the same transaction
//! as the outputs and consumed offsets, to a compacted changelog topic, as Kafka Streams does:
//! a restarted or rebalanced instance reads the changelog back instead of replaying history.
//! Only what changed since the previous commit is written:
//!
//! - `K` + key: the key's clock, its per-night rings, its per-rule state (small: ~1 KiB for a
//!   user of the nightly rules) and, per all-events series, the open chunk (below), written
//!   whole when the key was touched;
//! - `C` + series + chunk + key: the raw samples of an all-events series (e.g. 1 Hz heart rate
//!   kept for a sliding window plus the allowed lateness) in chunks of ten seconds, so a
//!   commit rewrites the few samples that changed, not the hour kept; evicted chunks are deleted
//!   (tombstones), so compaction keeps the topic as large as the state. The chunk of the newest
//!   sample (the open chunk) changes at every sample: it travels inside the `K` record, which
//!   is written anyway, and gets a record of its own once a newer chunk opens — so live
//!   traffic writes about one record per touched key and commit, not two;
//! - `D` + key: the open firings of a key the state TTL dropped (rule id, version, firing),
//!   deleted when the key returns;
//! - `T`: the task's stream clock, which drives timers, with the latest user clocks it is
//!   derived from (see [`super::clock`]).
//!
//! Series and rules are matched by their signature and by rule id and version on restore, not
//! by position: a rule that was added, removed or changed starts empty instead of reading
//! another rule's state. Incremental aggregates are not written; they are rebuilt from the
//! samples.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::aggregate::Sample;
use super::nights::NightStore;
use super::series::SeriesState;
use super::state::{DormantFirings, Firing, KeyState, RuleState};
use super::Lateness;
use crate::rules::RuleSet;

/// Width of a sample chunk in the changelog.
pub const CHUNK_MS: i64 = 10_000;

/// Version of the value encoding, first byte of every value (2: the open chunk travels in the
/// key record).
const FORMAT: u8 = 2;

const TAG_TASK: u8 = b'T';
const TAG_KEY: u8 = b'K';
const TAG_CHUNK: u8 = b'C';
const TAG_DORMANT: u8 = b'D';

/// One changelog record: `value: None` deletes the key (a tombstone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateRecord {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// Why a changelog could not be read back.
#[derive(Debug, Error)]
pub enum RestoreError {
    #[error("changelog record {key:?} is not Vigil state: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("changelog record {key:?} has format {found}; this Vigil reads format {FORMAT}")]
    Format { key: String, found: u8 },
}

pub fn chunk_of(t: i64) -> i64 {
    t.div_euclid(CHUNK_MS)
}

/// A stable 64-bit hash of a series signature (FNV-1a). Written by hand because the hashers
/// in std and rustc-hash promise no stability across releases, and changelog keys must
/// outlive the binary that wrote them.
pub fn series_id(signature: &str) -> u64 {
    signature.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub fn task_record_key() -> Vec<u8> {
    vec![TAG_TASK]
}

pub fn key_record_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(TAG_KEY);
    k.extend_from_slice(key.as_bytes());
    k
}

pub fn dormant_record_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(TAG_DORMANT);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The `D` record of a dropped key's open firings.
pub(super) fn encode_dormant(rules: &RuleSet, firings: &[(u32, Firing)]) -> Vec<u8> {
    let by_id: Vec<(&str, u32, Firing)> = firings
        .iter()
        .filter_map(|(rule, firing)| {
            let rule = rules.rules.get(*rule as usize)?;
            Some((rule.id.as_str(), rule.version, *firing))
        })
        .collect();
    encode(&by_id)
}

pub fn chunk_record_key(series: u64, chunk: i64, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(17 + key.len());
    k.push(TAG_CHUNK);
    k.extend_from_slice(&series.to_be_bytes());
    k.extend_from_slice(&chunk.to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

#[derive(Serialize, Deserialize)]
pub(super) struct TaskSnapshot {
    pub global_clock: i64,
    pub last_sweep: i64,
    /// The stream clock's latest user clocks, newest first.
    pub leaders: Vec<(Box<str>, i64)>,
}

/// The task record as written before the stream clock kept its leaders; read so that a
/// changelog written by an older Vigil still restores.
#[derive(Deserialize)]
struct TaskSnapshotWithoutLeaders {
    global_clock: i64,
    last_sweep: i64,
}

fn decode_task(key: &[u8], value: &[u8]) -> Result<TaskSnapshot, RestoreError> {
    decode(key, value).or_else(|error| {
        let old: TaskSnapshotWithoutLeaders = decode(key, value).map_err(|_| error)?;
        Ok(TaskSnapshot {
            global_clock: old.global_clock,
            last_sweep: old.last_sweep,
            leaders: Vec::new(),
        })
    })
}

#[derive(Serialize)]
struct KeySnapshotRef<'a> {
    clock: i64,
    offset_seconds: i32,
    nights: Vec<(u64, &'a NightStore)>,
    events: Vec<u64>,
    rules: Vec<(&'a str, u32, &'a RuleState)>,
    /// (series id, chunk, samples) of each all-events series' open chunk.
    open: Vec<(u64, i64, ChunkSnapshot)>,
}

#[derive(Deserialize)]
struct KeySnapshot {
    clock: i64,
    offset_seconds: i32,
    nights: Vec<(u64, NightStore)>,
    events: Vec<u64>,
    rules: Vec<(String, u32, RuleState)>,
    open: Vec<(u64, i64, ChunkSnapshot)>,
}

/// Samples of one chunk, column by column so that postcard's variable-length integers keep it
/// small (about 4 bytes a sample for integer device values): time from the chunk's start
/// (ms), local date as an offset from the first sample's, and the values.
#[derive(Serialize, Deserialize)]
struct ChunkSnapshot {
    first_day: i32,
    times: Vec<u32>,
    day_offsets: Vec<i32>,
    values: ChunkValues,
}

/// Whole-number values (bpm, steps) as integers, anything else as it is.
#[derive(Serialize, Deserialize)]
enum ChunkValues {
    Whole(Vec<i64>),
    Exact(Vec<f64>),
}

impl ChunkSnapshot {
    fn rows(self) -> impl Iterator<Item = (u32, f64, i32)> {
        let values: Vec<f64> = match self.values {
            // Whole values were checked to convert back exactly when written.
            ChunkValues::Whole(v) => v.into_iter().map(|x| x as f64).collect(),
            ChunkValues::Exact(v) => v,
        };
        let first_day = self.first_day;
        self.times
            .into_iter()
            .zip(self.day_offsets)
            .zip(values)
            .map(move |((dt, dd), v)| (dt, v, first_day.saturating_add(dd)))
    }
}

/// The chunks read back for one key and series, by chunk number.
type ChunksOfSeries = Vec<(i64, ChunkSnapshot)>;

fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut bytes = vec![FORMAT];
    // Serialising plain data into a Vec cannot fail.
    bytes.extend(postcard::to_stdvec(value).unwrap_or_default());
    bytes
}

fn decode<'a, T: Deserialize<'a>>(key: &[u8], bytes: &'a [u8]) -> Result<T, RestoreError> {
    let shown = || String::from_utf8_lossy(key).into_owned();
    match bytes.split_first() {
        Some((&FORMAT, rest)) => postcard::from_bytes(rest).map_err(|e| RestoreError::Corrupt {
            key: shown(),
            reason: e.to_string(),
        }),
        Some((&found, _)) => Err(RestoreError::Format {
            key: shown(),
            found,
        }),
        None => Err(RestoreError::Corrupt {
            key: shown(),
            reason: "empty value".into(),
        }),
    }
}

pub(super) fn encode_task(task: &TaskSnapshot) -> Vec<u8> {
    encode(task)
}

/// The `K` record of a key's state; its stores' open chunks are those of their last
/// `log_chunks`.
pub(super) fn encode_key(rules: &RuleSet, state: &KeyState) -> Vec<u8> {
    let mut nights = Vec::new();
    let mut events = Vec::new();
    let mut open = Vec::new();
    for (def, series) in rules.series.iter().zip(state.series.iter()) {
        let id = series_id(&def.signature);
        match series.as_deref() {
            Some(SeriesState::Nights(store)) => nights.push((id, store)),
            Some(SeriesState::Events(store)) => {
                events.push(id);
                if let Some((chunk, mut samples)) = store.open_chunk(CHUNK_MS) {
                    open.push((id, chunk, chunk_snapshot(chunk, &mut samples)));
                }
            }
            None => {}
        }
    }
    let rule_states = rules
        .rules
        .iter()
        .zip(state.rules.iter())
        .filter_map(|(rule, s)| Some((rule.id.as_str(), rule.version, s.as_deref()?)))
        .collect();
    encode(&KeySnapshotRef {
        clock: state.clock,
        offset_seconds: state.offset_seconds,
        nights,
        events,
        rules: rule_states,
        open,
    })
}

pub(super) fn encode_chunk(
    chunk: i64,
    samples: &mut dyn Iterator<Item = (Sample, i32)>,
) -> Vec<u8> {
    encode(&chunk_snapshot(chunk, samples))
}

fn chunk_snapshot(chunk: i64, samples: &mut dyn Iterator<Item = (Sample, i32)>) -> ChunkSnapshot {
    let start = chunk.saturating_mul(CHUNK_MS);
    let rows: Vec<(Sample, i32)> = samples.collect();
    let first_day = rows.first().map_or(0, |(_, d)| *d);
    // Bit for bit, so -0.0 and fractions stay floats.
    let whole = |v: f64| {
        let i = v as i64;
        (v.abs() < 9.0e15 && (i as f64).to_bits() == v.to_bits()).then_some(i)
    };
    let values = match rows
        .iter()
        .map(|(s, _)| whole(s.v))
        .collect::<Option<Vec<i64>>>()
    {
        Some(ints) => ChunkValues::Whole(ints),
        None => ChunkValues::Exact(rows.iter().map(|(s, _)| s.v).collect()),
    };
    ChunkSnapshot {
        first_day,
        times: rows
            .iter()
            .map(|(s, _)| u32::try_from(s.t - start).unwrap_or(0))
            .collect(),
        day_offsets: rows
            .iter()
            .map(|(_, d)| d.saturating_sub(first_day))
            .collect(),
        values,
    }
}

/// What a changelog holds, read back: the latest value of every live key.
#[derive(Default)]
pub(super) struct Restored {
    pub task: Option<TaskSnapshot>,
    pub keys: Vec<(Box<str>, KeyState)>,
    pub dormant: Vec<(Box<str>, DormantFirings)>,
}

/// Rebuilds key states from the latest value of each changelog key (`records` in log order;
/// later values win, tombstones delete). `lateness` sizes the series as the engine does.
pub(super) fn restore(
    rules: &RuleSet,
    lateness: &Lateness,
    records: impl IntoIterator<Item = StateRecord>,
) -> Result<Restored, RestoreError> {
    let mut latest: rustc_hash::FxHashMap<Vec<u8>, Vec<u8>> = Default::default();
    for record in records {
        match record.value {
            Some(value) => latest.insert(record.key, value),
            None => latest.remove(&record.key),
        };
    }
    let mut restored = Restored::default();
    let mut keys: rustc_hash::FxHashMap<Box<str>, KeyState> = Default::default();
    // Chunks per (key, series id), to attach once every key is known.
    let mut chunks: rustc_hash::FxHashMap<(Box<str>, u64), ChunksOfSeries> = Default::default();
    // The open chunk per (key, series id), from the key records.
    let mut open: rustc_hash::FxHashMap<(Box<str>, u64), (i64, ChunkSnapshot)> = Default::default();
    let series_index = |id: u64| {
        rules
            .series
            .iter()
            .position(|def| series_id(&def.signature) == id)
    };
    for (key, value) in &latest {
        match key.split_first() {
            Some((&TAG_TASK, [])) => restored.task = Some(decode_task(key, value)?),
            Some((&TAG_KEY, name)) => {
                let name = std::str::from_utf8(name).map_err(|e| RestoreError::Corrupt {
                    key: String::from_utf8_lossy(key).into_owned(),
                    reason: e.to_string(),
                })?;
                let mut snapshot: KeySnapshot = decode(key, value)?;
                for (series, chunk, rows) in std::mem::take(&mut snapshot.open) {
                    open.insert((name.into(), series), (chunk, rows));
                }
                keys.insert(
                    name.into(),
                    key_state(rules, lateness, snapshot, series_index),
                );
            }
            Some((&TAG_DORMANT, name)) => {
                let name = std::str::from_utf8(name).map_err(|e| RestoreError::Corrupt {
                    key: String::from_utf8_lossy(key).into_owned(),
                    reason: e.to_string(),
                })?;
                let stored: Vec<(String, u32, Firing)> = decode(key, value)?;
                // A rule that was removed or changed since has no firing to resolve.
                let firings: DormantFirings = stored
                    .into_iter()
                    .filter_map(|(id, version, firing)| {
                        let index = rules
                            .rules
                            .iter()
                            .position(|r| r.id == id && r.version == version)?;
                        Some((u32::try_from(index).ok()?, firing))
                    })
                    .collect();
                if !firings.is_empty() {
                    restored.dormant.push((name.into(), firings));
                }
            }
            Some((&TAG_CHUNK, rest)) if rest.len() >= 16 => {
                let (series, rest) = rest.split_at(8);
                let (chunk, name) = rest.split_at(8);
                let series = u64::from_be_bytes(series.try_into().unwrap_or_default());
                let chunk = i64::from_be_bytes(chunk.try_into().unwrap_or_default());
                let Ok(name) = std::str::from_utf8(name) else {
                    continue;
                };
                let rows: ChunkSnapshot = decode(key, value)?;
                chunks
                    .entry((name.into(), series))
                    .or_default()
                    .push((chunk, rows));
            }
            _ => {
                return Err(RestoreError::Corrupt {
                    key: String::from_utf8_lossy(key).into_owned(),
                    reason: "unknown record kind".into(),
                })
            }
        }
    }
    // A series may have only its open chunk.
    for key in open.keys() {
        chunks.entry(key.clone()).or_default();
    }
    for ((name, series), mut found) in chunks {
        let open_chunk = open.remove(&(name.clone(), series));
        // Chunks of a key whose `K` record is gone, or of a series no rule uses any more,
        // belong to nothing.
        let (Some(state), Some(index)) = (keys.get_mut(&name), series_index(series)) else {
            continue;
        };
        let Some(SeriesState::Events(store)) = state.series[index].as_deref_mut() else {
            continue;
        };
        let open_id = open_chunk.as_ref().map(|(chunk, _)| *chunk);
        // The key record's copy of the open chunk is the one written last.
        found.retain(|(chunk, _)| Some(*chunk) != open_id);
        found.sort_unstable_by_key(|(chunk, _)| *chunk);
        let ids = found.iter().map(|(chunk, _)| *chunk).collect();
        found.extend(open_chunk);
        found.sort_unstable_by_key(|(chunk, _)| *chunk);
        let samples = found.into_iter().flat_map(|(chunk, rows)| {
            let start = chunk.saturating_mul(CHUNK_MS);
            rows.rows().map(move |(dt, v, day)| {
                (
                    Sample {
                        t: start + i64::from(dt),
                        v,
                    },
                    day,
                )
            })
        });
        store.restore(samples, ids, open_id);
    }
    restored.keys = keys.into_iter().collect();
    Ok(restored)
}

fn key_state(
    rules: &RuleSet,
    lateness: &Lateness,
    snapshot: KeySnapshot,
    series_index: impl Fn(u64) -> Option<usize>,
) -> KeyState {
    let mut state = KeyState::new(rules.series.len(), rules.rules.len());
    state.clock = snapshot.clock;
    state.offset_seconds = snapshot.offset_seconds;
    for (id, stored) in snapshot.nights {
        let Some(index) = series_index(id) else {
            continue;
        };
        // Re-inserted into a ring sized by today's rules, which may keep more or fewer
        // nights than the rules that wrote it.
        let def = &rules.series[index];
        let mut series = SeriesState::new(def, lateness.of(def.from));
        if let SeriesState::Nights(store) = &mut series {
            stored.for_each(|day, v| store.insert(day, v));
            state.series[index] = Some(Box::new(series));
        }
    }
    for id in snapshot.events {
        if let Some(index) = series_index(id) {
            let def = &rules.series[index];
            let series = SeriesState::new(def, lateness.of(def.from));
            if matches!(series, SeriesState::Events(_)) {
                state.series[index] = Some(Box::new(series));
            }
        }
    }
    for (id, version, rule_state) in snapshot.rules {
        if let Some(index) = rules
            .rules
            .iter()
            .position(|r| r.id == id && r.version == version)
        {
            state.rules[index] = Some(Box::new(rule_state));
        }
    }
    state
}
