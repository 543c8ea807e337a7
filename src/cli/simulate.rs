//! `vigil simulate`: synthetic users' events as JSON lines on stdout.

use std::io::{self, BufWriter};

use chrono::{Datelike, NaiveDate};
use clap::Args;

use crate::simulate::{write_json_lines, SimConfig, MAX_HR_HOURS_PER_DAY};

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Number of users ("sim-0001", "sim-0002", …).
    #[arg(long, default_value_t = 10)]
    users: usize,
    /// Number of days (nights) per user (at most 36500; the last one by 9999-12-31).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(..=MAX_DAYS))]
    days: u32,
    /// Random seed; the same seed gives the same events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Local date of the first night (the morning the first sleep ends), YYYY-MM-DD.
    #[arg(long, default_value = "2024-01-01", value_parser = super::args::date)]
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

/// As many days as the longest duration an argument takes (100 years).
const MAX_DAYS: i64 = super::args::MAX_DURATION_MS / 86_400_000;

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
    let last = last_day(args.start, args.days);
    if args.days > 0 && !last.is_some_and(|d| super::args::YEARS.contains(&d.year())) {
        eprintln!(
            "error: --start {} and --days {} end after the year {}",
            args.start,
            args.days,
            super::args::YEARS.end()
        );
        return Ok(super::EXIT_USAGE);
    }
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

/// The date of the last night simulated (of the first, for no days); `None` past chrono's
/// range.
fn last_day(start: NaiveDate, days: u32) -> Option<NaiveDate> {
    start.checked_add_days(chrono::Days::new(u64::from(days.saturating_sub(1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_day_stays_in_four_digit_years() {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("valid");
        assert_eq!(last_day(date(2024, 1, 1), 0), Some(date(2024, 1, 1)));
        assert_eq!(last_day(date(2024, 1, 1), 1), Some(date(2024, 1, 1)));
        assert_eq!(last_day(date(2024, 1, 1), 31), Some(date(2024, 1, 31)));
        let last = last_day(date(9999, 12, 1), 36_500).expect("in chrono's range");
        assert!(!super::super::args::YEARS.contains(&last.year()));
    }
}
