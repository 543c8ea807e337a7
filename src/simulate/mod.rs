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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::f64::consts::PI;
use std::io::{self, Write};

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, Weekday};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::event::{
    Event, EventData, EventTime, HeartRateData, HeartRateVariabilityData, RestingHeartRateData,
    SleepEpisodeData, StepCountData,
};

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

// ---------------------------------------------------------------------------------------------
// Random helpers (rand 0.8 without rand_distr).

fn normal(rng: &mut ChaCha8Rng, mean: f64, sd: f64) -> f64 {
    // Box–Muller; one value per call keeps the stream simple and deterministic.
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    rng.gen_range(lo..hi)
}

fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    rng.gen::<f64>() < p
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

// ---------------------------------------------------------------------------------------------
// Time zones, with the daylight-saving rules of a few regions (no tz database needed).

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dst {
    None,
    /// EU: last Sunday of March to last Sunday of October.
    Europe,
    /// US: second Sunday of March to first Sunday of November.
    UnitedStates,
    /// South-eastern Australia: first Sunday of October to first Sunday of April.
    Australia,
}

#[derive(Clone, Copy, Debug)]
struct Zone {
    standard_minutes: i32,
    dst: Dst,
}

/// Zones users live in, with relative weights.
const ZONES: &[(Zone, u32)] = &[
    (zone(0, Dst::Europe), 3),          // London
    (zone(60, Dst::Europe), 5),         // Berlin, Paris
    (zone(120, Dst::Europe), 1),        // Helsinki
    (zone(-300, Dst::UnitedStates), 4), // New York
    (zone(-360, Dst::UnitedStates), 2), // Chicago
    (zone(-480, Dst::UnitedStates), 3), // Los Angeles
    (zone(-180, Dst::None), 1),         // São Paulo
    (zone(330, Dst::None), 1),          // India
    (zone(540, Dst::None), 2),          // Tokyo
    (zone(600, Dst::Australia), 1),     // Sydney
    (zone(0, Dst::None), 1),            // UTC all year
];

const fn zone(standard_minutes: i32, dst: Dst) -> Zone {
    Zone {
        standard_minutes,
        dst,
    }
}

fn nth_sunday(year: i32, month: u32, n: u8) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Sun, n).expect("valid date")
}

fn last_sunday(year: i32, month: u32) -> NaiveDate {
    let next_month = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    let last = next_month.and_then(|d| d.pred_opt()).expect("valid date");
    last - Duration::days(i64::from(last.weekday().num_days_from_sunday()))
}

fn at(date: NaiveDate, hour: u32) -> NaiveDateTime {
    date.and_hms_opt(hour, 0, 0).expect("valid time")
}

impl Zone {
    /// The offset in force at a local (wall-clock) time.
    fn offset_at(&self, local: NaiveDateTime) -> FixedOffset {
        let y = local.year();
        let summer = match self.dst {
            Dst::None => false,
            Dst::Europe => local >= at(last_sunday(y, 3), 2) && local < at(last_sunday(y, 10), 3),
            Dst::UnitedStates => {
                local >= at(nth_sunday(y, 3, 2), 2) && local < at(nth_sunday(y, 11, 1), 2)
            }
            Dst::Australia => {
                !(local >= at(nth_sunday(y, 4, 1), 3) && local < at(nth_sunday(y, 10, 1), 2))
            }
        };
        let minutes = self.standard_minutes + if summer { 60 } else { 0 };
        FixedOffset::east_opt(minutes * 60).expect("valid offset")
    }
}

/// The instant of a local time in an offset, as an [`EventTime`] keeping that offset.
fn event_time(local: NaiveDateTime, offset: FixedOffset) -> EventTime {
    let utc = local - Duration::seconds(i64::from(offset.local_minus_utc()));
    EventTime(DateTime::from_naive_utc_and_offset(utc, offset))
}

fn event_time_at(millis: i64, offset: FixedOffset) -> EventTime {
    let utc = DateTime::from_timestamp_millis(millis).expect("time in range");
    EventTime(utc.with_timezone(&offset))
}

// ---------------------------------------------------------------------------------------------
// One user.

/// What is drawn once per user.
#[derive(Clone, Debug)]
struct Physiology {
    /// Personal mean of ln RMSSD, and its night-to-night SD.
    ln_rmssd: f64,
    ln_rmssd_sd: f64,
    /// Personal mean resting HR, bpm.
    resting_hr: f64,
    /// Usual total sleep, min, and efficiency, %.
    sleep_minutes: f64,
    efficiency: f64,
    /// Usual wake time on weekdays, minutes after local midnight.
    wake_minutes: f64,
    zone: Zone,
    /// Daytime heart rate at rest, while walking, while running (bpm).
    day_rest_hr: f64,
    walk_hr: f64,
    run_hr: f64,
}

/// A multi-night HRV drop (illness, overreaching).
#[derive(Clone, Debug)]
struct Dip {
    night: u32,
    length: u32,
    ln_drop: f64,
    hr_rise: f64,
}

impl Dip {
    /// Fraction of the full effect on the current night: partial on the first and last.
    fn factor(&self) -> f64 {
        if self.length >= 3 && (self.night == 0 || self.night + 1 == self.length) {
            0.6
        } else {
            1.0
        }
    }
}

/// A run of poor nights (stress, travel).
#[derive(Clone, Debug)]
struct PoorRun {
    left: u32,
    minutes_lost: f64,
    efficiency_lost: f64,
}

struct UserSim {
    id: String,
    start: NaiveDate,
    days: u32,
    /// Nightly life and heart rate draw from separate streams, so turning heart rate on does
    /// not change the nights.
    rng: ChaCha8Rng,
    hr_rng: ChaCha8Rng,
    body: Physiology,
    hr_from_day: Option<u32>,
    hr_seconds: u32,
    hr_episode_probability: f64,
    day: u32,
    drift: f64,
    dip: Option<Dip>,
    poor: Option<PoorRun>,
    gap_left: u32,
    nightly: VecDeque<Event>,
    block: Option<HrBlock>,
    head: Option<Event>,
}

impl UserSim {
    fn new(config: &SimConfig, index: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(2 * index as u64);
        let mut hr_rng = ChaCha8Rng::seed_from_u64(config.seed);
        hr_rng.set_stream(2 * index as u64 + 1);

        let z = normal(&mut rng, 0.0, 1.0);
        let ln_rmssd = 55f64.ln() + 0.35 * z;
        let ln_rmssd_sd = 0.15 * uniform(&mut rng, 0.85, 1.15);
        // Fitter people tend to have both higher HRV and lower resting HR.
        let resting_hr = (57.5 - 4.0 * z + normal(&mut rng, 0.0, 4.0)).clamp(45.0, 70.0);
        let sleep_minutes = uniform(&mut rng, 400.0, 460.0);
        let efficiency = uniform(&mut rng, 85.0, 94.0);
        let wake_minutes = uniform(&mut rng, 360.0, 480.0);
        let total: u32 = ZONES.iter().map(|(_, w)| w).sum();
        let mut pick = rng.gen_range(0..total);
        let mut zone = ZONES[0].0;
        for (z, w) in ZONES {
            if pick < *w {
                zone = *z;
                break;
            }
            pick -= w;
        }
        let day_rest_hr = (resting_hr + uniform(&mut rng, 8.0, 15.0)).clamp(55.0, 78.0);
        let walk_hr = (day_rest_hr + uniform(&mut rng, 25.0, 35.0)).min(110.0);
        let run_hr = uniform(&mut rng, 135.0, 160.0);

        let hr_user = config.heart_rate && config.hr_users.is_none_or(|n| index < n);
        let hr_from_day =
            hr_user.then(|| config.hr_days.map_or(0, |n| config.days.saturating_sub(n)));
        let hours = config.hr_hours_per_day.clamp(0.0, MAX_HR_HOURS_PER_DAY);
        UserSim {
            id: user_id(index),
            start: config.start,
            days: config.days,
            rng,
            hr_rng,
            body: Physiology {
                ln_rmssd,
                ln_rmssd_sd,
                resting_hr,
                sleep_minutes,
                efficiency,
                wake_minutes,
                zone,
                day_rest_hr,
                walk_hr,
                run_hr,
            },
            hr_from_day,
            hr_seconds: (hours * 3600.0).round() as u32,
            hr_episode_probability: config.hr_episode_probability,
            day: 0,
            drift: 0.0,
            dip: None,
            poor: None,
            gap_left: 0,
            nightly: VecDeque::new(),
            block: None,
            head: None,
        }
    }

    /// Moves the user's next event into `head` (None when the user is done).
    fn advance(&mut self) {
        self.head = loop {
            if let Some(e) = self.nightly.pop_front() {
                break Some(e);
            }
            if let Some(block) = &mut self.block {
                if let Some(e) = block.next(&self.id, &mut self.hr_rng) {
                    break Some(e);
                }
                self.block = None;
            }
            if self.day >= self.days {
                break None;
            }
            let day = self.day;
            self.day += 1;
            self.live_day(day);
        };
    }

    fn event(&self, time: EventTime, data: EventData) -> Event {
        Event {
            id: format!(
                "sim:{}:{}:{}",
                self.id,
                data.event_type().name(),
                time.millis()
            ),
            user_id: self.id.clone(),
            source: SOURCE.to_string(),
            time,
            data,
        }
    }

    /// Simulates night and day number `day`: queues its nightly events and heart-rate block.
    fn live_day(&mut self, day: u32) {
        let rng = &mut self.rng;
        let body = &self.body;
        let date = self.start + Duration::days(i64::from(day));

        // The slow processes move on whether or not the night is recorded.
        self.drift = 0.97 * self.drift + normal(rng, 0.0, 0.015);
        match &mut self.dip {
            Some(d) if d.night + 1 < d.length => d.night += 1,
            _ => {
                self.dip = None;
                if chance(rng, 1.0 / 45.0) {
                    let ln_drop = uniform(rng, 0.3, 0.6);
                    let hr_rise =
                        (3.0 + 5.0 * (ln_drop - 0.3) / 0.3 + normal(rng, 0.0, 0.8)).clamp(3.0, 8.0);
                    self.dip = Some(Dip {
                        night: 0,
                        length: rng.gen_range(3..=10),
                        ln_drop,
                        hr_rise,
                    });
                }
            }
        }
        match &mut self.poor {
            Some(p) if p.left > 1 => p.left -= 1,
            _ => {
                self.poor = None;
                if chance(rng, 1.0 / 35.0) {
                    self.poor = Some(PoorRun {
                        left: rng.gen_range(3..=7),
                        minutes_lost: uniform(rng, 50.0, 120.0),
                        efficiency_lost: uniform(rng, 4.0, 10.0),
                    });
                }
            }
        }
        if self.gap_left > 0 {
            self.gap_left -= 1;
        } else if chance(rng, 0.02) {
            // A sync gap: this night and, sometimes, a few more.
            self.gap_left = 0;
            while chance(rng, 0.35) {
                self.gap_left += 1;
            }
            return;
        }
        if self.gap_left > 0 {
            return;
        }

        // Weekend mornings: later and longer.
        let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        let wake_minutes =
            (body.wake_minutes + if weekend { 50.0 } else { 0.0 } + normal(rng, 0.0, 20.0))
                .clamp(300.0, 630.0);
        let wake_local =
            at(date, 0) + Duration::seconds((wake_minutes * 60.0) as i64 + rng.gen_range(0..60));
        let wake = event_time(wake_local, body.zone.offset_at(wake_local));

        let (dip_ln, dip_hr, dip_sleep, dip_eff) = match &self.dip {
            Some(d) => {
                let f = d.factor();
                (d.ln_drop * f, d.hr_rise * f, 20.0 * f, 3.0 * f)
            }
            None => (0.0, 0.0, 0.0, 0.0),
        };
        let (poor_min, poor_eff) = self
            .poor
            .as_ref()
            .map_or((0.0, 0.0), |p| (p.minutes_lost, p.efficiency_lost));

        // HRV.
        let x = body.ln_rmssd + self.drift - dip_ln + normal(rng, 0.0, body.ln_rmssd_sd);
        let rmssd = round1(x.exp()).clamp(3.0, 300.0);
        let sdnn = round1(rmssd * uniform(rng, 1.1, 1.6)).min(1000.0);
        // Resting heart rate, whole bpm as wearables report it.
        let rhr = (body.resting_hr + dip_hr + normal(rng, 0.0, 2.0))
            .round()
            .clamp(35.0, 110.0);
        // Sleep.
        let tst = (normal(
            rng,
            body.sleep_minutes + if weekend { 35.0 } else { 0.0 },
            45.0,
        ) - poor_min
            - dip_sleep)
            .clamp(120.0, 720.0)
            .round();
        let eff = (normal(rng, body.efficiency, 2.5) - poor_eff - dip_eff).clamp(55.0, 99.0);
        let tib = (tst / (eff / 100.0)).round().max(tst);
        let awake = tib - tst;
        let latency = (normal(rng, 10f64.ln(), 0.5).exp())
            .round()
            .min((awake * 0.6).floor());
        let waso = awake - latency;
        let awakenings = ((waso / 12.0 + normal(rng, 0.0, 1.0)).round().max(0.0) as u32)
            .max(u32::from(waso >= 5.0));
        let onset_local = wake_local - Duration::minutes(tib as i64);
        let onset = event_time_at(
            wake.millis() - (tib as i64) * 60_000,
            body.zone.offset_at(onset_local),
        );

        let nightly = [
            EventData::HeartRateVariability(HeartRateVariabilityData {
                rmssd,
                sdnn: Some(sdnn),
            }),
            EventData::RestingHeartRate(RestingHeartRateData { heart_rate: rhr }),
            EventData::SleepEpisode(SleepEpisodeData {
                sleep_onset: Some(onset),
                total_sleep_time: tst,
                time_in_bed: Some(tib),
                sleep_maintenance_efficiency_percentage: Some(round1(tst / tib * 100.0)),
                latency_to_sleep_onset: Some(latency),
                wake_after_sleep_onset: Some(waso),
                number_of_awakenings: Some(awakenings),
                is_main_sleep: Some(true),
            }),
        ];
        for data in nightly {
            let e = self.event(wake, data);
            self.nightly.push_back(e);
        }

        // Heart rate for part of the day, from an hour after waking.
        if self.hr_from_day.is_some_and(|from| day >= from) && self.hr_seconds > 0 {
            let rng = &mut self.hr_rng;
            let spare_hours = MAX_HR_HOURS_PER_DAY + 1.0 - f64::from(self.hr_seconds) / 3600.0;
            let start_local = wake_local
                + Duration::seconds(3600 + (uniform(rng, 0.0, spare_hours) * 3600.0) as i64);
            let offset = body.zone.offset_at(start_local);
            let start_ms = event_time(start_local, offset).millis();
            let minutes = self.hr_seconds / 60;
            let episode_start = (minutes > REST_EPISODE_MINUTES + 1
                && chance(rng, self.hr_episode_probability))
            .then(|| rng.gen_range(0..=minutes - REST_EPISODE_MINUTES - 1));
            self.block = Some(HrBlock {
                start_ms,
                offset,
                seconds: self.hr_seconds,
                next_second: 1,
                activity: Activity::Walk,
                run_left: 0,
                episode_start,
                high_hr: uniform(rng, 125.0, 140.0),
                hr: body.walk_hr,
                steps: 0.0,
                step_due: false,
                rest_hr: body.day_rest_hr,
                walk_hr: body.walk_hr,
                run_hr: body.run_hr,
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A block of 1 Hz heart rate with per-minute step counts.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Activity {
    Rest,
    Walk,
    Run,
    /// High heart rate without moving: what `high_hr_at_rest` is for.
    HighAtRest,
}

struct HrBlock {
    start_ms: i64,
    offset: FixedOffset,
    seconds: u32,
    /// The next sample is at `start_ms + next_second` seconds.
    next_second: u32,
    activity: Activity,
    run_left: u32,
    episode_start: Option<u32>,
    high_hr: f64,
    hr: f64,
    steps: f64,
    /// The step count of the minute that just ended is still to be emitted.
    step_due: bool,
    rest_hr: f64,
    walk_hr: f64,
    run_hr: f64,
}

impl HrBlock {
    fn next(&mut self, user: &str, rng: &mut ChaCha8Rng) -> Option<Event> {
        let event = |millis: i64, data: EventData, offset: FixedOffset| Event {
            id: format!("sim:{user}:{}:{millis}", data.event_type().name()),
            user_id: user.to_string(),
            source: SOURCE.to_string(),
            time: event_time_at(millis, offset),
            data,
        };
        if self.step_due {
            // At the same instant as the minute's last sample: the steps of that minute.
            self.step_due = false;
            let millis = self.start_ms + i64::from(self.next_second - 1) * 1000;
            let data = EventData::StepCount(StepCountData {
                step_count: self.steps,
                duration: Some(60.0),
            });
            return Some(event(millis, data, self.offset));
        }
        if self.next_second > self.seconds {
            return None;
        }
        let s = self.next_second;
        self.next_second += 1;
        if (s - 1).is_multiple_of(60) {
            self.start_minute((s - 1) / 60, rng);
        }
        let (target, pull) = match self.activity {
            Activity::Rest => (self.rest_hr, 0.06),
            Activity::Walk => (self.walk_hr, 0.08),
            Activity::Run => (self.run_hr, 0.05),
            Activity::HighAtRest => (self.high_hr, 0.2),
        };
        self.hr += pull * (target - self.hr) + normal(rng, 0.0, 1.2);
        let mut bpm = self.hr.round().clamp(40.0, 200.0);
        if self.activity == Activity::HighAtRest {
            bpm = bpm.max(121.0);
        }
        if s.is_multiple_of(60) {
            self.step_due = true;
        }
        let data = EventData::HeartRate(HeartRateData { heart_rate: bpm });
        Some(event(
            self.start_ms + i64::from(s) * 1000,
            data,
            self.offset,
        ))
    }

    fn start_minute(&mut self, minute: u32, rng: &mut ChaCha8Rng) {
        let in_episode = self
            .episode_start
            .is_some_and(|e| minute >= e && minute < e + REST_EPISODE_MINUTES);
        self.activity = if in_episode {
            self.run_left = 0;
            Activity::HighAtRest
        } else if self.activity == Activity::HighAtRest {
            // The episode ends at rest: the heart rate comes down without moving.
            Activity::Rest
        } else if self.run_left > 0 {
            self.run_left -= 1;
            Activity::Run
        } else if chance(rng, 0.003) {
            self.run_left = rng.gen_range(10..=40) - 1;
            Activity::Run
        } else {
            match self.activity {
                Activity::Walk if chance(rng, 0.10) => Activity::Rest,
                Activity::Walk => Activity::Walk,
                Activity::Rest if chance(rng, 0.15) => Activity::Walk,
                Activity::Rest | Activity::HighAtRest => Activity::Rest,
                Activity::Run => Activity::Walk,
            }
        };
        self.steps = match self.activity {
            Activity::Walk => normal(rng, 105.0, 12.0).clamp(40.0, 140.0).round(),
            Activity::Run => normal(rng, 160.0, 8.0).clamp(130.0, 190.0).round(),
            Activity::Rest | Activity::HighAtRest => 0.0,
        };
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::engine::{Engine, EngineConfig};
    use crate::event::{Decoder, EventType};
    use crate::rules::load_rules;

    fn config(users: usize, days: u32) -> SimConfig {
        SimConfig {
            users,
            days,
            seed: 7,
            ..SimConfig::default()
        }
    }

    fn with_hr(mut c: SimConfig) -> SimConfig {
        c.heart_rate = true;
        c.hr_hours_per_day = 0.5;
        c.hr_days = Some(2);
        c.hr_episode_probability = 0.5;
        c
    }

    #[test]
    fn deterministic_for_a_seed() {
        let c = with_hr(config(4, 20));
        let a: Vec<Event> = simulate(&c).collect();
        let b: Vec<Event> = simulate(&c).collect();
        assert!(!a.is_empty());
        assert_eq!(a, b);
        let other: Vec<Event> = simulate(&SimConfig {
            seed: 8,
            ..c.clone()
        })
        .collect();
        assert_ne!(a, other);
        // A user's nights do not depend on how many users there are, nor on heart rate.
        let nights = |events: &[Event], user: &str| -> Vec<Event> {
            events
                .iter()
                .filter(|e| e.user_id == user && e.event_type() != EventType::HeartRate)
                .filter(|e| e.event_type() != EventType::StepCount)
                .cloned()
                .collect()
        };
        let fewer: Vec<Event> = simulate(&config(2, 20)).collect();
        assert_eq!(nights(&a, "sim-0002"), nights(&fewer, "sim-0002"));
    }

    #[test]
    fn events_are_sorted_with_unique_ids() {
        let events: Vec<Event> = simulate(&with_hr(config(6, 30))).collect();
        assert!(events
            .windows(2)
            .all(|w| w[0].time.millis() <= w[1].time.millis()));
        let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "event ids are unique");
        assert!(events.iter().all(|e| e.source == SOURCE));
        assert!(events
            .iter()
            .any(|e| e.event_type() == EventType::HeartRate));
        assert!(events
            .iter()
            .any(|e| e.event_type() == EventType::StepCount));
    }

    #[test]
    fn every_event_validates_and_round_trips() {
        let decoder = Decoder::new();
        let mut offsets = std::collections::BTreeSet::new();
        for event in simulate(&with_hr(config(20, 100))) {
            let line = serde_json::to_string(&event.to_json()).unwrap();
            let decoded = decoder
                .decode(line.as_bytes())
                .unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(decoded, event);
            offsets.insert((event.user_id.clone(), event.time.offset_seconds()));
        }
        // Some users change offset (daylight saving) within the 100 days from 1 January.
        let mut per_user = BTreeMap::<String, usize>::new();
        for (user, _) in &offsets {
            *per_user.entry(user.clone()).or_default() += 1;
        }
        assert!(
            per_user.values().any(|&n| n > 1),
            "no DST change: {offsets:?}"
        );
    }

    #[test]
    fn nightly_values_are_plausible() {
        let events: Vec<Event> = simulate(&config(50, 60)).collect();
        let nights = events
            .iter()
            .filter(|e| e.event_type() == EventType::SleepEpisode)
            .count();
        let missing = 1.0 - nights as f64 / (50.0 * 60.0);
        assert!((0.01..0.07).contains(&missing), "missing nights {missing}");
        for e in &events {
            // Nightly events are at the wake time, between 05:00 and 10:30 local.
            let hour = chrono::Timelike::hour(&e.time.0);
            assert!((5..=10).contains(&hour), "{e:?}");
        }
    }

    #[test]
    fn rule_pack_finds_alerts_and_milestones() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let rules = load_rules(&[root.join("rules")]).expect("rules load");
        let mut engine = Engine::new(Arc::new(rules), EngineConfig::default());
        let mut out = Vec::new();
        for event in simulate(&config(50, 120)) {
            engine.process(&event, &mut out);
        }
        let mut by_rule = BTreeMap::<String, usize>::new();
        for o in &out {
            *by_rule.entry(o.data.rule_id.clone()).or_default() += 1;
        }
        for rule in [
            "hrv_drop",
            "rhr_elevated",
            "sleep_poor_streak",
            "sleep_streak_7",
        ] {
            assert!(
                by_rule.get(rule).copied().unwrap_or(0) > 0,
                "{rule}: {by_rule:?}"
            );
        }
    }

    #[test]
    fn heart_rate_episodes_fire_high_hr_at_rest() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let rules = load_rules(&[root.join("rules")]).expect("rules load");
        let mut engine = Engine::new(Arc::new(rules), EngineConfig::default());
        let mut out = Vec::new();
        let c = SimConfig {
            hr_episode_probability: 1.0,
            ..with_hr(config(3, 3))
        };
        for event in simulate(&c) {
            engine.process(&event, &mut out);
        }
        let fired: Vec<String> = out
            .iter()
            .filter(|o| o.data.rule_id == "high_hr_at_rest")
            .map(|o| format!("{} {} {:?}", o.subject, o.time, o.data.state))
            .collect();
        // One episode per user and HR day (3 users x 2 days), firing and resolving.
        assert_eq!(fired.len(), 12, "{fired:#?}");
    }
}
