//! Throughput of 1 Hz heart-rate samples (+ per-minute step counts) through the full rule pack,
//! on one core, and the per-event latency of `Engine::process`.
//!
//! Workloads (built before timing, from `vigil::simulate`):
//! - `concurrent`: 1 000 users all streaming at 1 Hz for 20 minutes (so every user's 10-minute
//!   window fills, and some users have a high-heart-rate-at-rest episode): ~1.22 million
//!   events. The production shape: many users at once.
//! - `sparse`: 100 simulated users × one day × 1 h of heart rate, at random times of their day
//!   (few users at once, a small working set): ~366 000 events.
//!
//! Benchmarks, each with `Throughput::Elements` = events:
//! - `end_to_end/concurrent`: JSON lines → decode + schema validation → engine → outputs
//!   serialised as JSON lines to `io::sink()` (`vigil::io::pipeline::run`, as `vigil run` does);
//! - `engine_only/{concurrent,sparse}`: `Engine::process` on pre-decoded events;
//! - `decode_only/concurrent`: `Decoder::decode` (parse + validate + type) alone.
//!
//! Each iteration starts from a fresh engine (built outside the timing). After criterion, one
//! more run of each workload times every `process()` call and prints the latency percentiles;
//! then single passes (best of 3) print events/s both in wall time and in on-CPU time of the
//! benchmark thread (`/proc/thread-self/schedstat`), which stays meaningful when other
//! processes share the cores.
//!
//! `VIGIL_BENCH_SMOKE=1` shrinks everything for CI.

mod common;

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use criterion::{black_box, BatchSize, Criterion, SamplingMode, Throughput};
use vigil::engine::{Engine, EngineConfig, OutputEvent};
use vigil::event::{Decoder, Event, EventTime, EventType};
use vigil::io::pipeline::{self, Sinks};
use vigil::rules::RuleSet;
use vigil::simulate::{simulate, SimConfig, SOURCE};

struct Workload {
    name: &'static str,
    events: Vec<Event>,
    /// The same events as JSON lines.
    lines: Vec<u8>,
    /// (start, end) of each line in `lines`.
    spans: Vec<(usize, usize)>,
}

impl Workload {
    fn new(name: &'static str, events: Vec<Event>) -> Self {
        let mut lines = Vec::with_capacity(events.len() * 170);
        let mut spans = Vec::with_capacity(events.len());
        for e in &events {
            let start = lines.len();
            serde_json::to_writer(&mut lines, &e.to_json()).expect("serialise");
            spans.push((start, lines.len()));
            lines.push(b'\n');
        }
        Workload {
            name,
            events,
            lines,
            spans,
        }
    }

    fn describe(&self) {
        let users: std::collections::HashSet<&str> =
            self.events.iter().map(|e| e.user_id.as_str()).collect();
        let hr = self
            .events
            .iter()
            .filter(|e| e.event_type() == EventType::HeartRate)
            .count();
        println!(
            "workload {}: {} events ({} heart_rate, {} step_count), {} users, {:.1} MB of JSON lines ({:.0} B/line)",
            self.name,
            self.events.len(),
            hr,
            self.events.len() - hr,
            users.len(),
            self.lines.len() as f64 / 1e6,
            self.lines.len() as f64 / self.events.len() as f64
        );
    }
}

fn is_hr(e: &Event) -> bool {
    matches!(e.event_type(), EventType::HeartRate | EventType::StepCount)
}

/// `users` simulated users, one day each with `hours` of heart rate at random times of day.
fn sparse(users: usize, hours: f64) -> Vec<Event> {
    simulate(&SimConfig {
        users,
        days: 1,
        seed: 42,
        heart_rate: true,
        hr_hours_per_day: hours,
        hr_episode_probability: 0.3,
        ..SimConfig::default()
    })
    .filter(is_hr)
    .collect()
}

/// `users` users streaming at the same time for `seconds`: each replays the heart-rate block
/// of one of 16 simulated template users (relabelled), all aligned on the same start.
/// `seconds` must exceed 16 minutes for the templates to have episodes.
fn concurrent(users: usize, seconds: u32) -> Vec<Event> {
    let templates = 16;
    let mut blocks: Vec<Vec<Event>> = vec![Vec::new(); templates];
    for e in simulate(&SimConfig {
        users: templates,
        days: 1,
        seed: 42,
        heart_rate: true,
        hr_hours_per_day: f64::from(seconds) / 3600.0,
        hr_episode_probability: 0.5,
        ..SimConfig::default()
    })
    .filter(is_hr)
    {
        let i: usize = e.user_id["sim-".len()..].parse::<usize>().expect("sim id") - 1;
        blocks[i].push(e);
    }
    let base = EventTime::parse("2024-05-01T12:00:00Z")
        .expect("time")
        .millis();
    let mut cursors = vec![0usize; users];
    let mut events = Vec::new();
    for second in 1..=i64::from(seconds) {
        for (u, cursor) in cursors.iter_mut().enumerate() {
            let block = &blocks[u % templates];
            let Some(first) = block.first() else { continue };
            let t0 = first.time.millis() - 1000;
            while let Some(e) = block.get(*cursor) {
                let rel = e.time.millis() - t0;
                if rel > second * 1000 {
                    break;
                }
                *cursor += 1;
                let millis = base + rel;
                let offset = *e.time.0.offset();
                let time = EventTime(
                    chrono::DateTime::from_timestamp_millis(millis)
                        .expect("time")
                        .with_timezone(&offset),
                );
                let user = format!("hr-{:05}", u + 1);
                events.push(Event {
                    id: format!("bench:{user}:{}:{millis}", e.event_type().name()),
                    user_id: user,
                    source: SOURCE.to_string(),
                    time,
                    data: e.data.clone(),
                });
            }
        }
    }
    events
}

fn engine(rules: &Arc<RuleSet>) -> Engine {
    Engine::new(Arc::clone(rules), EngineConfig::default())
}

fn run_engine(engine: &mut Engine, events: &[Event]) -> BTreeMap<String, usize> {
    let mut out: Vec<OutputEvent> = Vec::new();
    let mut fired = BTreeMap::new();
    for e in events {
        out.clear();
        engine.process(e, &mut out);
        for o in &out {
            *fired.entry(o.data.rule_id.clone()).or_insert(0) += 1;
        }
    }
    fired
}

fn benches(c: &mut Criterion, rules: &Arc<RuleSet>, workloads: &[Workload]) {
    let decoder = Decoder::new();
    let mut group = c.benchmark_group("throughput_hr");
    group.sampling_mode(SamplingMode::Flat);
    for w in workloads {
        group.throughput(Throughput::Elements(w.events.len() as u64));
        if w.name == "concurrent" {
            group.bench_function(format!("end_to_end/{}", w.name), |b| {
                b.iter_batched(
                    || engine(rules),
                    |mut engine| {
                        black_box(run_pipeline(&mut engine, &decoder, &w.lines));
                        engine
                    },
                    BatchSize::PerIteration,
                )
            });
            group.bench_function(format!("decode_only/{}", w.name), |b| {
                b.iter(|| {
                    for &(s, e) in &w.spans {
                        black_box(decoder.decode(&w.lines[s..e]).expect("valid line"));
                    }
                })
            });
        }
        group.bench_function(format!("engine_only/{}", w.name), |b| {
            b.iter_batched(
                || engine(rules),
                |mut engine| {
                    let mut out: Vec<OutputEvent> = Vec::new();
                    for e in &w.events {
                        out.clear();
                        engine.process(e, &mut out);
                    }
                    black_box(&out);
                    engine
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// The `vigil run` loop over `lines`, with outputs, dead letters and late events discarded.
fn run_pipeline(engine: &mut Engine, decoder: &Decoder, lines: &[u8]) -> pipeline::Summary {
    let (mut outputs, mut dead, mut late) = (io::sink(), io::sink(), io::sink());
    let mut sinks = Sinks {
        outputs: &mut outputs,
        dead_letters: &mut dead,
        late: &mut late,
    };
    pipeline::run(engine, decoder, lines, "bench", &mut sinks).expect("pipeline")
}

/// Single timed passes (best of 3) reporting wall and on-CPU rates: the on-CPU figure leaves
/// out time the core spent on other processes, which criterion's wall clock cannot.
fn one_core(rules: &Arc<RuleSet>, w: &Workload) {
    let decoder = Decoder::new();
    let best = |f: &dyn Fn() -> (u64, Option<u64>)| {
        (0..3)
            .map(|_| f())
            .min_by_key(|&(wall, cpu)| cpu.unwrap_or(wall))
            .expect("three runs")
    };
    let end_to_end = best(&|| {
        let mut engine = engine(rules);
        let (_, wall, cpu) = common::timed(|| run_pipeline(&mut engine, &decoder, &w.lines));
        (wall, cpu)
    });
    let engine_only = best(&|| {
        let mut engine = engine(rules);
        let mut out: Vec<OutputEvent> = Vec::new();
        let (_, wall, cpu) = common::timed(|| {
            for e in &w.events {
                out.clear();
                engine.process(e, &mut out);
            }
        });
        black_box(&out);
        (wall, cpu)
    });
    let decode_only = best(&|| {
        let (_, wall, cpu) = common::timed(|| {
            for &(s, e) in &w.spans {
                black_box(decoder.decode(&w.lines[s..e]).expect("valid line"));
            }
        });
        (wall, cpu)
    });
    let n = w.events.len();
    println!("one core, {} ({n} events), best of 3:", w.name);
    println!(
        "  RESULT end_to_end:  {}",
        common::rates(n, end_to_end.0, end_to_end.1)
    );
    println!(
        "  RESULT engine_only: {}",
        common::rates(n, engine_only.0, engine_only.1)
    );
    println!(
        "  RESULT decode_only: {}",
        common::rates(n, decode_only.0, decode_only.1)
    );
}

/// One run with an `Instant` around every `process()` call.
fn latency(rules: &Arc<RuleSet>, w: &Workload) {
    let mut engine = engine(rules);
    let mut out: Vec<OutputEvent> = Vec::new();
    let mut nanos = Vec::with_capacity(w.events.len());
    for e in &w.events {
        out.clear();
        let t = Instant::now();
        engine.process(e, &mut out);
        nanos.push(t.elapsed().as_nanos() as u64);
        black_box(&out);
    }
    common::print_latency(
        &format!("latency of Engine::process, {} (fresh engine)", w.name),
        nanos,
    );
}

fn main() {
    let smoke = common::smoke();
    let rules = common::rule_pack();
    let (users, seconds, sparse_users, sparse_hours) = if smoke {
        (10, 1020, 5, 0.1)
    } else {
        (1000, 1200, 100, 1.0)
    };
    let workloads = vec![
        Workload::new("concurrent", concurrent(users, seconds)),
        Workload::new("sparse", sparse(sparse_users, sparse_hours)),
    ];
    for w in &workloads {
        w.describe();
        let fired = run_engine(&mut engine(&rules), &w.events);
        println!("  outputs of one run over {}: {fired:?}", w.name);
    }
    let mut c = common::criterion();
    benches(&mut c, &rules, &workloads);
    println!(
        "\nInstant::now() + elapsed() overhead: ~{} ns per timed call",
        common::timer_overhead_ns()
    );
    for w in &workloads {
        latency(&rules, w);
    }
    for w in &workloads {
        one_core(&rules, w);
    }
    c.final_summary();
}
