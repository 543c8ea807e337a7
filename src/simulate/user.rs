//! One user: the physiology drawn once, then life night after night — HRV, resting heart rate
//! and sleep, with dips, runs of poor nights and sync gaps — and, some days, a block of heart
//! rate.

use std::collections::VecDeque;

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::heart_rate::{Activity, HrBlock};
use super::random::{chance, normal, round1, uniform};
use super::zone::{at, event_time, event_time_at, Zone, ZONES};
use super::{user_id, SimConfig, MAX_HR_HOURS_PER_DAY, REST_EPISODE_MINUTES, SOURCE};
use crate::event::{
    Event, EventData, EventTime, HeartRateVariabilityData, RestingHeartRateData, SleepEpisodeData,
};

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

pub(super) struct UserSim {
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
    pub head: Option<Event>,
}

impl UserSim {
    pub(super) fn new(config: &SimConfig, index: usize) -> Self {
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
    pub(super) fn advance(&mut self) {
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
