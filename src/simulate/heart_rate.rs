//! A block of 1 Hz heart rate with per-minute step counts: mostly walking, resting, the odd
//! run, and now and then an episode of high heart rate at rest.

use chrono::FixedOffset;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::random::{chance, normal};
use super::zone::event_time_at;
use super::{REST_EPISODE_MINUTES, SOURCE};
use crate::event::{Event, EventData, HeartRateData, StepCountData};

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Activity {
    Rest,
    Walk,
    Run,
    /// High heart rate without moving: what `high_hr_at_rest` is for.
    HighAtRest,
}

pub(super) struct HrBlock {
    pub start_ms: i64,
    pub offset: FixedOffset,
    pub seconds: u32,
    /// The next sample is at `start_ms + next_second` seconds.
    pub next_second: u32,
    pub activity: Activity,
    pub run_left: u32,
    pub episode_start: Option<u32>,
    pub high_hr: f64,
    pub hr: f64,
    pub steps: f64,
    /// The step count of the minute that just ended is still to be emitted.
    pub step_due: bool,
    pub rest_hr: f64,
    pub walk_hr: f64,
    pub run_hr: f64,
}

impl HrBlock {
    pub(super) fn next(&mut self, user: &str, rng: &mut ChaCha8Rng) -> Option<Event> {
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
