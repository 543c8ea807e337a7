//! Realistic synthetic users, for fixtures, demos and benchmarks.
//!
//! Every user has a personal physiology drawn once from the seed — a nightly HRV baseline
//! (ln RMSSD ~ N(ln 55, 0.35) between users), a resting heart rate of 45–70 bpm, a usual amount
//! and efficiency of sleep, a usual wake time between 06:00 and 08:00 local, a time zone (some
//! with daylight-saving changes) — and then lives night after night:
//!
//! - ln RMSSD varies around the baseline (night-to-night SD ≈ 0.15) with a slow drift, and
//!   now and then drops by 0.3–0.6 for 3–10 nights (an illness, overreaching), with a matching
//!   resting-HR rise of 3–8 bpm and slightly worse sleep;
//! - total sleep varies around 400–460 min (SD 45) with longer weekend nights, efficiency around
//!   85–94 %, and occasional runs of poor nights (stress, travel);
//! - about 3 % of nights are missing (sync gaps of one to a few nights);
//! - the nightly events (`heart_rate_variability`, `resting_heart_rate`, `sleep_episode`) carry
//!   the wake time, in the offset in force at that moment;
//! - optionally, for some hours a day, 1 Hz `heart_rate` samples with a `step_count` each
//!   minute: mostly walking (with steps), resting at 55–80 bpm (no steps), the odd run, and
//!   occasionally a 15-minute episode at ≥ 120 bpm without steps.
//!
//! The output is deterministic for a seed, and each user's data depends only on the seed and
//! the user's number (not on how many users are simulated, nor on whether heart rate is on).
//! Events are merged into one stream sorted by time (ties: by user, then in each user's order).
//!
//! # Layout
//!
//! - `user`: one user — the physiology drawn once, then night after night;
//! - `heart_rate`: a daytime block of 1 Hz heart rate with per-minute step counts;
//! - `zone`: the time zones users live in, with their daylight-saving rules;
//! - `random`: the distributions drawn from.

mod heart_rate;
mod random;
#[cfg(test)]
mod tests;
mod user;
mod zone;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};

use chrono::NaiveDate;

use crate::event::Event;
use user::UserSim;

/// The `source` of every simulated event.
pub const SOURCE: &str = "vigil-simulate";

/// Longest daily heart-rate recording, hours (a block must end before the next morning).
pub const MAX_HR_HOURS_PER_DAY: f64 = 14.0;

/// Length of a simulated high-heart-rate-at-rest episode, minutes.
pub const REST_EPISODE_MINUTES: u32 = 15;

/// What to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Number of users ("sim-0001", "sim-0002", …).
    pub users: usize,
    /// Number of days (nights) per user.
    pub days: u32,
    /// The same seed gives the same events.
    pub seed: u64,
    /// The local date of the first night (the morning the first sleep ends).
    pub start: NaiveDate,
    /// Also simulate 1 Hz heart-rate samples and per-minute step counts.
    pub heart_rate: bool,
    /// Hours of heart-rate recording per day (at most [`MAX_HR_HOURS_PER_DAY`]).
    pub hr_hours_per_day: f64,
    /// Only the first N users record heart rate (None: all).
    pub hr_users: Option<usize>,
    /// Heart rate only on the last N days (None: every day).
    pub hr_days: Option<u32>,
    /// Probability, per day of heart-rate recording, of a 15-minute episode at ≥ 120 bpm at
    /// rest (what `high_hr_at_rest` looks for).
    pub hr_episode_probability: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            users: 10,
            days: 30,
            seed: 1,
            start: NaiveDate::from_ymd_opt(2024, 1, 1).expect("valid date"),
            heart_rate: false,
            hr_hours_per_day: 1.0,
            hr_users: None,
            hr_days: None,
            hr_episode_probability: 0.05,
        }
    }
}

/// The id of user number `index` (0-based): "sim-0001", "sim-0002", …
pub fn user_id(index: usize) -> String {
    format!("sim-{:04}", index + 1)
}

/// The simulated events of every user, sorted by time.
pub fn simulate(config: &SimConfig) -> Simulation {
    Simulation::new(config)
}

/// Writes the simulated events as JSON lines (the bare form [`crate::event::Decoder`] reads);
/// returns the number of events written.
pub fn write_json_lines(config: &SimConfig, mut out: impl Write) -> io::Result<u64> {
    let mut n = 0;
    for event in simulate(config) {
        serde_json::to_writer(&mut out, &event.to_json())?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

/// The merged, time-sorted stream of all users' events (an iterator).
pub struct Simulation {
    users: Vec<UserSim>,
    /// (time of the user's next event, user number).
    heap: BinaryHeap<Reverse<(i64, usize)>>,
}

impl Simulation {
    pub fn new(config: &SimConfig) -> Self {
        let mut users: Vec<UserSim> = (0..config.users).map(|i| UserSim::new(config, i)).collect();
        let mut heap = BinaryHeap::with_capacity(users.len());
        for (i, user) in users.iter_mut().enumerate() {
            user.advance();
            if let Some(e) = &user.head {
                heap.push(Reverse((e.time.millis(), i)));
            }
        }
        Simulation { users, heap }
    }
}

impl Iterator for Simulation {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        let Reverse((_, i)) = self.heap.pop()?;
        let user = &mut self.users[i];
        let event = user.head.take();
        user.advance();
        if let Some(e) = &user.head {
            self.heap.push(Reverse((e.time.millis(), i)));
        }
        event
    }
}
