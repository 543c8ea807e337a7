//! Nightly metrics (HRV, resting HR, sleep) for many users through the full rule pack: events/s
//! on one core and bytes of engine state per user.
//!
//! 1. A one-shot run (printed to stdout): 100 000 simulated users × 90 nights (60-night windows
//!    fill), generated lazily in chunks; only `Engine::process` is timed (the generator is
//!    not). Prints events/s (wall, and on-CPU time of the thread, which leaves out time other
//!    processes held the core), `state_bytes() / keys_in_state()` at checkpoints, the process's
//!    resident memory, the outputs per rule, and the per-call latency percentiles of a uniform
//!    sample of the calls (every 8th chunk timed call by call).
//! 2. A criterion benchmark `nightly_state/steady/<users>`: an engine already holding 70 nights
//!    for 10 000 users processes the following events in batches of 30 000 (throughput at
//!    steady state, windows full).
//!
//! `VIGIL_BENCH_SMOKE=1`: 2 000 users × 65 nights, and 500 users for the criterion part.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, Criterion, Throughput};
use vigil::engine::{Engine, EngineConfig, OutputEvent};
use vigil::event::Event;
use vigil::rules::RuleSet;
use vigil::simulate::{simulate, SimConfig, Simulation};

const CHUNK: usize = 1 << 16;

fn nightly(users: usize, days: u32) -> Simulation {
    simulate(&SimConfig {
        users,
        days,
        seed: 2024,
        ..SimConfig::default()
    })
}

fn fill(chunk: &mut Vec<Event>, sim: &mut Simulation, n: usize) {
    chunk.clear();
    chunk.extend(sim.take(n));
}

fn one_shot(rules: &Arc<RuleSet>, users: usize, days: u32) {
    println!("nightly_state: {users} users x {days} nights, full rule pack, one core");
    let mut engine = Engine::new(Arc::clone(rules), EngineConfig::default());
    let mut sim = nightly(users, days);
    let expected = users * days as usize * 3;
    let mut chunk: Vec<Event> = Vec::with_capacity(CHUNK);
    let mut out: Vec<OutputEvent> = Vec::new();
    let mut fired: BTreeMap<String, u64> = BTreeMap::new();
    let mut latencies: Vec<u64> = Vec::new();
    let (mut events, mut engine_time, mut chunks) = (0usize, Duration::ZERO, 0usize);
    let mut engine_cpu: Option<u64> = Some(0);
    // Throughput counts only the chunks not timed call by call (the timer would inflate it).
    let mut rate_events = 0usize;
    let wall = Instant::now();
    let mut next_checkpoint = expected / 6;
    let mut rss_start: Option<(f64, f64)> = None;
    loop {
        fill(&mut chunk, &mut sim, CHUNK);
        if chunk.is_empty() {
            break;
        }
        if rss_start.is_none() {
            // The generator and the chunk buffer exist, the engine is still empty.
            rss_start = common::rss_mib();
        }
        let timed_per_call = chunks % 8 == 3;
        let cpu0 = common::thread_cpu_ns();
        let start = Instant::now();
        for e in &chunk {
            out.clear();
            if timed_per_call {
                let t = Instant::now();
                engine.process(e, &mut out);
                latencies.push(t.elapsed().as_nanos() as u64);
            } else {
                engine.process(e, &mut out);
            }
            for o in &out {
                *fired.entry(o.data.rule_id.clone()).or_insert(0) += 1;
            }
        }
        if !timed_per_call {
            engine_time += start.elapsed();
            engine_cpu = engine_cpu
                .zip(common::thread_cpu_ns().zip(cpu0))
                .map(|(sum, (b, a))| sum + b.saturating_sub(a));
            rate_events += chunk.len();
        }
        events += chunk.len();
        chunks += 1;
        if events >= next_checkpoint {
            next_checkpoint += expected / 6;
            let night = chunk.last().map(|e| e.time.local_date().to_string());
            println!(
                "  after {:>9} events (night {}): {:>7.0} bytes of state per user, {:.1} MB in all",
                events,
                night.unwrap_or_default(),
                engine.state_bytes() as f64 / engine.keys_in_state().max(1) as f64,
                engine.state_bytes() as f64 / 1e6
            );
        }
    }
    black_box(&out);
    let keys = engine.keys_in_state();
    let bytes = engine.state_bytes();
    println!(
        "  events: {events} ({:.1}% of user-nights x 3 present), engine time {:.2} s over the {rate_events} events not timed call by call, wall {:.2} s with generation",
        100.0 * events as f64 / expected as f64,
        engine_time.as_secs_f64(),
        wall.elapsed().as_secs_f64()
    );
    println!(
        "  RESULT nightly, one core, engine only: {}",
        common::rates(rate_events, engine_time.as_nanos() as u64, engine_cpu)
    );
    println!(
        "  RESULT state: {bytes} bytes for {keys} keys = {:.0} bytes per user (target <= 1024)",
        bytes as f64 / keys.max(1) as f64
    );
    if let (Some((rss, peak)), Some((start, _))) = (common::rss_mib(), rss_start) {
        println!(
            "  process resident memory: {start:.0} MiB with the generator and first chunk and an \
             empty engine, {rss:.0} MiB at the end (peak {peak:.0} MiB): the engine added \
             {:.0} bytes per user as the allocator sees it",
            (rss - start) * 1048576.0 / users as f64
        );
    }
    println!("  outputs per rule: {fired:?}");
    common::print_latency("  latency of Engine::process (nightly, sampled)", latencies);
}

fn steady(c: &mut Criterion, rules: &Arc<RuleSet>, users: usize, batch: usize) {
    let warm_days = 70;
    let mut engine = Engine::new(Arc::clone(rules), EngineConfig::default());
    // Enough days never to run out, however many iterations criterion asks for.
    let mut sim = nightly(users, 100_000);
    let mut out = Vec::new();
    for e in sim.by_ref().take(users * warm_days * 3 * 97 / 100) {
        out.clear();
        engine.process(&e, &mut out);
    }
    println!(
        "steady state: {users} users warmed with ~{warm_days} nights: {:.0} bytes of state per user",
        engine.state_bytes() as f64 / engine.keys_in_state().max(1) as f64
    );
    let state = RefCell::new((engine, sim, Vec::with_capacity(batch), out));
    let mut group = c.benchmark_group("nightly_state");
    group.sample_size(10);
    group.throughput(Throughput::Elements(batch as u64));
    group.bench_function(format!("steady/{users}_users"), |b| {
        b.iter_custom(|iters| {
            let (engine, sim, chunk, out) = &mut *state.borrow_mut();
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                fill(chunk, sim, batch);
                let start = Instant::now();
                for e in chunk.iter() {
                    out.clear();
                    engine.process(e, out);
                }
                total += start.elapsed();
                black_box(&*out);
            }
            total
        })
    });
    group.finish();
}

fn main() {
    let smoke = common::smoke();
    let rules = common::rule_pack();
    let mut c = common::criterion();
    let (steady_users, batch) = if smoke {
        (500, 3_000)
    } else {
        (10_000, 30_000)
    };
    steady(&mut c, &rules, steady_users, batch);
    println!();
    let (users, days) = if smoke { (2_000, 65) } else { (100_000, 90) };
    println!(
        "Instant::now() + elapsed() overhead: ~{} ns per timed call",
        common::timer_overhead_ns()
    );
    one_shot(&rules, users, days);
    c.final_summary();
}
