//! The `vigil` command: one file per subcommand, dispatched from a closed enum.
//!
//! Exit codes: 0 success; 1 an operational error (unreadable input, I/O, an invalid
//! `vigil.toml`, an unreachable broker); 2 bad usage; 3 invalid rules (`check`, and any command
//! that loads rules); 4 failing rule tests; 5 Kafka topics that differ from the configuration
//! (`topics show`).

mod check;
mod import;
mod run;
mod schema;
mod simulate;
mod test;
mod topics;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub const EXIT_ERROR: u8 = 1;
pub const EXIT_INVALID_RULES: u8 = 3;
pub const EXIT_TESTS_FAILED: u8 = 4;
pub const EXIT_TOPICS_DIFFER: u8 = 5;

#[derive(Parser, Debug)]
#[command(
    name = "vigil",
    version,
    about = "Complex-event processing for biometric and health events"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the rules over events (embedded mode: JSON lines in, alerts and milestones out).
    Run(run::RunArgs),
    /// Check rule files and report every problem with file:line:column.
    Check(check::CheckArgs),
    /// Run the rule tests (`*.test.toml`) beside the rules.
    Test(test::TestArgs),
    /// Write the JSON Schemas of events, outputs and rule files.
    Schema(schema::SchemaArgs),
    /// Convert a vendor export into Vigil events (JSON lines).
    Import(import::ImportArgs),
    /// Generate realistic synthetic users' events (JSON lines).
    Simulate(simulate::SimulateArgs),
    /// Provision the Kafka topics (`apply`) or compare them with the configuration (`show`).
    Topics(topics::TopicsArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::run(args),
        Command::Test(args) => test::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Import(args) => import::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Topics(args) => topics::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // A reader that stops early (`vigil run … | head`) is not an error of ours.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            == broken
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == broken
    })
}

/// Rule paths given on the command line, or `rules/` by default.
fn rule_paths(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![PathBuf::from("rules")]
    } else {
        paths
    }
}

/// True when stderr is a terminal, for coloured diagnostics.
fn color() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
