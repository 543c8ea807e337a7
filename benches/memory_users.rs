//! Whole-process peak memory of `vigil run` (the embedded default: file in, outputs, SQLite
//! history, in-process status) with the shipped rule pack, for many users:
//!
//! - `burst`: 1 000 000 users × 3 nightly events (HRV, resting HR, sleep) within one day
//!   (target: peak RSS ≤ 1.2 GiB);
//! - `arrivals`: 1 000 000 users × 3 nightly events, users arriving evenly over 100 days, with
//!   `--state-ttl 7d` (target: peak RSS ≤ 400 MiB). Almost every user stops after one night,
//!   so `no_data_48h` fires for them: the TTL must let go of them all the same.
//!
//! The input is generated once into `target/bench-memory/` (about 0.5 GB a scenario); the peak
//! resident set size is the child's `ru_maxrss` from `wait4`, the figure `/usr/bin/time -v`
//! prints as "Maximum resident set size".
//!
//! `VIGIL_BENCH_SMOKE=1`: 10 000 users (figures meaningless). `VIGIL_BENCH_MEMORY_USERS=N`
//! overrides the number of users.

mod common;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::{DateTime, SecondsFormat};

const MIB: f64 = 1024.0 * 1024.0;
const DAY_MS: i64 = 86_400_000;
/// 2024-03-01T00:00:00Z.
const START_MS: i64 = 1_709_251_200_000;

struct Scenario {
    name: &'static str,
    /// Users' arrivals spread over this many days.
    days: i64,
    state_ttl: Option<&'static str>,
    target_mib: f64,
}

const SCENARIOS: [Scenario; 2] = [
    Scenario {
        name: "burst",
        days: 1,
        state_ttl: None,
        target_mib: 1.2 * 1024.0,
    },
    Scenario {
        name: "arrivals",
        days: 100,
        state_ttl: Some("7d"),
        target_mib: 400.0,
    },
];

fn time(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Writes the scenario's events (time-sorted) unless a file of that many users is there.
fn input(dir: &Path, scenario: &Scenario, users: u64) -> std::io::Result<PathBuf> {
    let path = dir.join(format!("{}-{users}.jsonl", scenario.name));
    if path.exists() {
        return Ok(path);
    }
    let partial = path.with_extension("partial");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&partial)?);
    let span = scenario.days * DAY_MS;
    for i in 0..users {
        let t = START_MS + (i as i64 * span) / users as i64;
        let user = format!("user-{i:07}");
        // Plausible values that vary a little from user to user.
        let rmssd = 35.0 + (i % 40) as f64 + 0.5;
        let rhr = 50 + i % 15;
        let sleep = 330 + i % 150;
        writeln!(
            out,
            r#"{{"id":"{user}:hrv","user_id":"{user}","type":"heart_rate_variability","source":"bench","time":"{}","data":{{"rmssd":{rmssd}}}}}"#,
            time(t)
        )?;
        writeln!(
            out,
            r#"{{"id":"{user}:rhr","user_id":"{user}","type":"resting_heart_rate","source":"bench","time":"{}","data":{{"heart_rate":{rhr}}}}}"#,
            time(t + 1)
        )?;
        writeln!(
            out,
            r#"{{"id":"{user}:sleep","user_id":"{user}","type":"sleep_episode","source":"bench","time":"{}","data":{{"total_sleep_time":{sleep},"time_in_bed":{}}}}}"#,
            time(t + 2),
            sleep + 30
        )?;
    }
    out.flush()?;
    drop(out);
    fs::rename(&partial, &path)?;
    Ok(path)
}

/// Runs `command` to its end; its exit status and peak resident set size in bytes.
fn run_measured(command: &mut Command) -> std::io::Result<(i32, u64)> {
    let child = command.spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in; `pid` is our own child,
    // not waited for by anyone else (the `Child` handle is dropped without `wait`).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        return Err(std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    // Linux reports ru_maxrss in KiB.
    Ok((code, usage.ru_maxrss as u64 * 1024))
}

fn main() {
    let users: u64 = std::env::var("VIGIL_BENCH_MEMORY_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if common::smoke() { 10_000 } else { 1_000_000 });
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/bench-memory");
    fs::create_dir_all(&dir).expect("cannot create target/bench-memory");
    let vigil = env!("CARGO_BIN_EXE_vigil");
    for scenario in &SCENARIOS {
        let generated = Instant::now();
        let input = input(&dir, scenario, users).expect("cannot write the input");
        let generated = generated.elapsed();
        let history = dir.join(format!("{}-history.db", scenario.name));
        for stale in ["", "-wal", "-shm"] {
            let _ = fs::remove_file(format!("{}{stale}", history.display()));
        }
        let mut command = Command::new(vigil);
        command
            .current_dir(&dir)
            .args(["run", "--rules"])
            .arg(root.join("rules"))
            .arg("--input")
            .arg(&input)
            .args(["--output", "/dev/null"])
            .arg("--dead-letter")
            .arg(dir.join("dead-letter.jsonl"))
            .arg("--late")
            .arg(dir.join("late-events.jsonl"))
            .arg("--history")
            .arg(format!("sqlite:{}", history.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(ttl) = scenario.state_ttl {
            command.args(["--state-ttl", ttl]);
        }
        let started = Instant::now();
        let (code, peak) = run_measured(&mut command).expect("cannot run vigil");
        let elapsed = started.elapsed();
        assert_eq!(code, 0, "vigil run failed on {}", input.display());
        let events = users * 3;
        let peak_mib = peak as f64 / MIB;
        println!(
            "memory_users/{}: {users} users x 3 events over {} day(s){}: peak RSS {:.1} MiB \
             ({:.0} bytes per user), target {:.0} MiB: {}; {:.2} s ({:.0} events/s; input \
             generated in {:.1} s)",
            scenario.name,
            scenario.days,
            scenario
                .state_ttl
                .map_or(String::new(), |t| format!(", --state-ttl {t}")),
            peak_mib,
            peak as f64 / users as f64,
            scenario.target_mib,
            if users < 1_000_000 {
                "no verdict below 1 M users"
            } else if peak_mib <= scenario.target_mib {
                "met"
            } else {
                "NOT met"
            },
            elapsed.as_secs_f64(),
            events as f64 / elapsed.as_secs_f64(),
            generated.as_secs_f64(),
        );
    }
}
