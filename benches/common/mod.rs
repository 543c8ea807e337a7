//! Shared by the benches: smoke mode, the rule pack, criterion settings, latency summaries.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use vigil::rules::{load_rules, RuleSet};

/// `VIGIL_BENCH_SMOKE=1`: small sizes and few iterations, for CI (figures meaningless).
pub fn smoke() -> bool {
    std::env::var("VIGIL_BENCH_SMOKE").is_ok_and(|v| v == "1")
}

/// The full rule pack shipped in `rules/`.
pub fn rule_pack() -> Arc<RuleSet> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
    match load_rules(&[dir]) {
        Ok(set) => Arc::new(set),
        Err(failure) => panic!("rules/ does not load:\n{}", failure.render(false)),
    }
}

/// Criterion with settings for multi-second iterations; command-line flags still win.
pub fn criterion() -> Criterion {
    let c = Criterion::default().sample_size(10);
    if smoke() {
        c.warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(200))
            .without_plots()
            .configure_from_args()
            // After the flags (whose default baseline is "base"): keep smoke figures out of
            // the baseline that full runs are compared with.
            .save_baseline("smoke".to_string())
    } else {
        c.warm_up_time(Duration::from_secs(3))
            .measurement_time(Duration::from_secs(20))
            .configure_from_args()
    }
}

/// Prints p50/p90/p99/p99.9/max of per-call latencies given in nanoseconds.
pub fn print_latency(label: &str, mut nanos: Vec<u64>) {
    if nanos.is_empty() {
        println!("{label}: no samples");
        return;
    }
    nanos.sort_unstable();
    let q = |p: f64| nanos[((nanos.len() - 1) as f64 * p).round() as usize];
    let mean = nanos.iter().sum::<u64>() as f64 / nanos.len() as f64;
    println!(
        "{label}: {} calls timed; mean {:.0} ns, p50 {} ns, p90 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
        nanos.len(),
        mean,
        q(0.50),
        q(0.90),
        q(0.99),
        q(0.999),
        nanos[nanos.len() - 1]
    );
}

/// Resident and peak resident memory of this process, from /proc (Linux), in MiB.
pub fn rss_mib() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// A rough cost of one `Instant::now()` pair, to read the latency figures against.
pub fn timer_overhead_ns() -> u64 {
    let n = 100_000;
    let start = std::time::Instant::now();
    let mut sink = 0u128;
    for _ in 0..n {
        let t = std::time::Instant::now();
        sink += t.elapsed().as_nanos();
    }
    std::hint::black_box(sink);
    (start.elapsed().as_nanos() / n as u128) as u64
}

/// Time this thread has spent on a CPU, in ns (`CLOCK_THREAD_CPUTIME_ID`, 64-bit Linux):
/// unlike wall time, it does not count the time other processes held the core, so figures stay
/// comparable on a busy machine. None elsewhere.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub fn thread_cpu_ns() -> Option<u64> {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call; libc is linked
    // by std on Linux.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
pub fn thread_cpu_ns() -> Option<u64> {
    None
}

/// Runs `f` and returns (wall ns, on-CPU ns if known).
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, u64, Option<u64>) {
    let cpu0 = thread_cpu_ns();
    let start = std::time::Instant::now();
    let out = f();
    let wall = start.elapsed().as_nanos() as u64;
    let cpu = thread_cpu_ns().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    (out, wall, cpu)
}

/// "N events/s (wall) / M events/s (on-CPU)" for `events` processed in the given times.
pub fn rates(events: usize, wall_ns: u64, cpu_ns: Option<u64>) -> String {
    let per_s = |ns: u64| events as f64 / (ns as f64 / 1e9);
    match cpu_ns {
        Some(cpu) => format!(
            "{:.0} events/s wall, {:.0} events/s on-CPU ({:.0} ns/event on-CPU)",
            per_s(wall_ns),
            per_s(cpu),
            cpu as f64 / events as f64
        ),
        None => format!("{:.0} events/s wall", per_s(wall_ns)),
    }
}
