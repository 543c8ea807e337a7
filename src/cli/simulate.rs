//! `vigil simulate`: synthetic users' events as JSON lines on stdout.

use std::io::{self, BufWriter};

use chrono::NaiveDate;
use clap::Args;

use crate::simulate::{write_json_lines, SimConfig, MAX_HR_HOURS_PER_DAY};

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Number of users ("sim-0001", "sim-0002", …).
    #[arg(long, default_value_t = 10)]
    users: usize,
    /// Number of days (nights) per user.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Random seed; the same seed gives the same events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Local date of the first night (the morning the first sleep ends), YYYY-MM-DD.
    #[arg(long, default_value = "2024-01-01", value_parser = parse_date)]
    start: NaiveDate,
    /// Also write 1 Hz heart-rate samples and per-minute step counts.
    #[arg(long)]
    heart_rate: bool,
    /// Hours of heart-rate recording per day (with --heart-rate; at most 14).
    #[arg(long, default_value_t = 1.0, value_parser = parse_hours)]
    hr_hours: f64,
    /// Only the first N users record heart rate (with --heart-rate).
    #[arg(long)]
    hr_users: Option<usize>,
    /// Heart rate only on the last N days (with --heart-rate).
    #[arg(long)]
    hr_days: Option<u32>,
    /// Probability, per day of heart-rate recording, of a 15-minute episode at >= 120 bpm
    /// without steps.
    #[arg(long, default_value_t = 0.05, value_parser = parse_probability)]
    hr_episode_probability: f64,
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|e| format!("expected YYYY-MM-DD: {e}"))
}

fn parse_hours(text: &str) -> Result<f64, String> {
    let h: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=MAX_HR_HOURS_PER_DAY).contains(&h) {
        Ok(h)
    } else {
        Err(format!("expected 0 to {MAX_HR_HOURS_PER_DAY} hours"))
    }
}

fn parse_probability(text: &str) -> Result<f64, String> {
    let p: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err("expected a probability from 0 to 1".into())
    }
}

pub fn run(args: SimulateArgs) -> anyhow::Result<u8> {
    let config = SimConfig {
        users: args.users,
        days: args.days,
        seed: args.seed,
        start: args.start,
        heart_rate: args.heart_rate,
        hr_hours_per_day: args.hr_hours,
        hr_users: args.hr_users,
        hr_days: args.hr_days,
        hr_episode_probability: args.hr_episode_probability,
    };
    let out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    match write_json_lines(&config, out) {
        Ok(_) => Ok(0),
        // `vigil simulate | head` is normal use, not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(e.into()),
    }
}
