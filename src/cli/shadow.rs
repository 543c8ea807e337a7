//! `vigil shadow report`: how far a shadow run's outputs agree with the live ones.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct ShadowArgs {
    #[command(subcommand)]
    command: ShadowCommand,
}

#[derive(Subcommand, Debug)]
enum ShadowCommand {
    /// Per rule: outputs both sets made, only the live set, only the shadow set, with
    /// examples of each disagreement (files written by `vigil run --output` and
    /// `--shadow-out`).
    Report(ReportArgs),
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// The live outputs (`vigil run --output`), JSON lines.
    #[arg(long)]
    live: PathBuf,
    /// The shadow outputs (`vigil run --shadow-out`), JSON lines.
    #[arg(long)]
    shadow: PathBuf,
    /// One JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// Examples of each disagreement shown per rule.
    #[arg(long, default_value_t = 3)]
    examples: usize,
}

pub fn run(args: ShadowArgs) -> anyhow::Result<u8> {
    match args.command {
        ShadowCommand::Report(args) => {
            let report = crate::shadow::report(&args.live, &args.shadow, args.examples)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            Ok(0)
        }
    }
}
