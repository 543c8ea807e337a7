//! Prints bytes of engine state per user after 90 nights of nightly metrics for N users.
//! `cargo run --release --example state_size -- 10000`

use std::sync::Arc;

use vigil::engine::{Engine, EngineConfig};
use vigil::event::{Event, EventData, EventTime};

fn main() {
    let users: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let rules = Arc::new(vigil::rules::load_rules(&["rules".into()]).expect("rules"));
    let mut engine = Engine::new(rules, EngineConfig::default());
    let mut out = Vec::new();
    let start = EventTime::parse("2024-01-01T07:00:00+01:00").unwrap();
    let started = std::time::Instant::now();
    let mut events = 0u64;
    for night in 0..90i64 {
        for u in 0..users {
            let time = start.plus_millis(night * 86_400_000 + (u as i64 % 3600) * 1000);
            let user = format!("user-{u:06}");
            let x = 50.0 + ((u as i64 * 7 + night * 13) % 20) as f64;
            for data in [
                EventData::HeartRateVariability(vigil::event::HeartRateVariabilityData {
                    rmssd: x,
                    sdnn: None,
                }),
                EventData::RestingHeartRate(vigil::event::RestingHeartRateData {
                    heart_rate: 50.0 + (x % 7.0),
                }),
                EventData::SleepEpisode(vigil::event::SleepEpisodeData {
                    sleep_onset: None,
                    total_sleep_time: 380.0 + x,
                    time_in_bed: None,
                    sleep_maintenance_efficiency_percentage: Some(90.0),
                    latency_to_sleep_onset: None,
                    wake_after_sleep_onset: None,
                    number_of_awakenings: None,
                    is_main_sleep: None,
                }),
            ] {
                let id = format!("{user}-{}-{night}", data.event_type().name());
                let e = Event {
                    id,
                    user_id: user.clone(),
                    source: "x".into(),
                    time,
                    data,
                };
                engine.process(&e, &mut out);
                events += 1;
                out.clear();
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{users} users, {events} events, {:.0} events/s, {} bytes of state per user",
        events as f64 / secs,
        engine.state_bytes() / engine.keys_in_state().max(1)
    );
}
