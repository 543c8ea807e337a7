//! `vigil simulate`: synthetic users.

use std::io::{self, BufWriter, Write};

use clap::Args;

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Number of users.
    #[arg(long, default_value_t = 10)]
    users: usize,
    /// Number of days.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Random seed; the same seed gives the same events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<u8> {
    let mut out = BufWriter::new(io::stdout().lock());
    let _ = (args.users, args.days, args.seed);
    out.flush()?;
    anyhow::bail!("simulate is not written yet")
}
