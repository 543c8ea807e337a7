//! The `vigil` command: one file per subcommand, dispatched from a closed enum.
//!
//! Exit codes: 0 success (a reader that closed stdout early included); 1 an operational error
//! (unreadable input, I/O, an invalid `vigil.toml`, an unreachable broker or database, a
//! missing history database for a command that only reads it); 2 bad usage (an argument out of
//! range among them, see [`args`]); 3 invalid rules (`check`, and any command that loads
//! rules); 4 failing rule tests, or none found; 5 Kafka topics that differ from the
//! configuration (`topics show`); 6 no such alert or milestone (`alerts show`), or no such
//! silence (`silence remove`); 7 history migrations not current (`migrate --check`); 8 a
//! changed rule whose version was not bumped (`rules diff`).
//!
//! `health` has codes of its own, for scripts and orchestrators: 0 healthy, 1 degraded (the
//! engine runs, something needs attention: the history database or Redis unreachable,
//! migrations not current, topics unlike their configuration, lag or latency above its
//! threshold), 2 failing (an invalid configuration or rule file, no Kafka broker answering, a
//! topic missing, the probe failing). There, 2 means failing, not bad usage (clap's usage
//! errors also exit 2).
//!
//! Commands write their output with [`outln!`] and [`out!`], never `println!`: a reader that
//! stops early (`vigil schema | head -1`) closes stdout, `println!` would panic, and these
//! return the broken pipe as an error that [`main`] turns into a quiet exit 0.

/// `println!` that returns the write's `io::Result` instead of panicking (see the module doc).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` that returns the write's `io::Result` instead of panicking (see the module doc).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod alerts;
mod args;
mod backtest;
mod check;
mod health;
mod import;
mod migrate;
mod rules;
mod run;
mod schema;
mod shadow;
mod silence;
mod simulate;
mod test;
mod topics;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub const EXIT_ERROR: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_INVALID_RULES: u8 = 3;
pub const EXIT_TESTS_FAILED: u8 = 4;
pub const EXIT_TOPICS_DIFFER: u8 = 5;
pub const EXIT_NOT_FOUND: u8 = 6;
// Not 5, which `topics show` uses: a deployment script that runs both must be able to tell
// the topics from the schema.
pub const EXIT_NOT_CURRENT: u8 = 7;
pub const EXIT_VERSION_NOT_BUMPED: u8 = 8;

#[derive(Parser, Debug)]
#[command(
    name = "vigil",
    version,
    about = "Complex-event processing for biometric and health events"
)]
struct Cli {
    /// How log lines are written on stderr: text or json (also VIGIL_LOG_FORMAT). The filter
    /// is VIGIL_LOG (or RUST_LOG), e.g. "debug", default "info".
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<crate::telemetry::logging::LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the rules over events (embedded mode: JSON lines in, alerts and milestones out).
    Run(run::RunArgs),
    /// Replay history through one rule set, or two to compare: a table per rule (firings,
    /// resolutions, milestones, users affected, rate per user-month, agreement), --json, and
    /// an HTML report with plots. Writes no history, state or output topic.
    Backtest(backtest::BacktestArgs),
    /// Check rule files and report every problem with file:line:column.
    Check(check::CheckArgs),
    /// Compare rule sets: `vigil rules diff OLD NEW` (exit 8 when a changed rule keeps its
    /// version).
    Rules(rules::RulesArgs),
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
    /// List the stored alerts and milestones, or show one (the history database).
    Alerts(alerts::AlertsArgs),
    /// Apply the history database's migrations (`vigil run` also does, at start).
    Migrate(migrate::MigrateArgs),
    /// Silence a user's alerts for a while (`add`), list the silences, or end one (`remove`).
    Silence(silence::SilenceArgs),
    /// Check that everything is ready: configuration, rules, history database, Redis, and with
    /// --kafka the brokers, topics, a probe round trip and lag (exit 0 healthy, 1 degraded,
    /// 2 failing).
    Health(health::HealthArgs),
    /// Compare a shadow run's outputs (`vigil run --shadow`) with the live ones:
    /// `vigil shadow report --live FILE --shadow FILE`.
    Shadow(shadow::ShadowArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli
        .log_format
        .map(Ok)
        .or_else(|| crate::telemetry::logging::format_from_env().transpose())
    {
        Some(Ok(format)) => format,
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
        None => Default::default(),
    };
    if let Some(warning) = crate::telemetry::logging::init(format, color()) {
        eprintln!("warning: {warning}");
    }
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Backtest(args) => backtest::run(args),
        Command::Check(args) => check::run(args),
        Command::Rules(args) => rules::run(args),
        Command::Test(args) => test::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Import(args) => import::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Topics(args) => topics::run(args),
        Command::Alerts(args) => alerts::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Silence(args) => silence::run(args),
        Command::Health(args) => health::run(args),
        Command::Shadow(args) => shadow::run(args),
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

/// `vigil.toml` with its layers, or the exit code after its problems were printed.
fn load_config(path: Option<&Path>) -> Result<crate::config::Config, u8> {
    crate::config::Config::load(path)
        .map(|(config, _)| config)
        .map_err(|e| {
            eprint!("{}", e.render(color()));
            EXIT_ERROR
        })
}

/// Where the history is: `--history URL`, else the configuration's `history.url` (file, then
/// `VIGIL_DATABASE_URL`, then the SQLite default).
fn history_url(flag: Option<String>, config: Option<&Path>) -> Result<String, u8> {
    match flag {
        Some(url) => Ok(url),
        None => load_config(config).map(|c| c.history.url),
    }
}

/// A runtime for the commands that talk to the database (sqlx is async; the commands are not).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// How long a command waits for the history database before reporting it unreachable.
const DB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a command may create the history database it opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    /// Writing commands (`run`, `migrate`, `silence add`): a missing SQLite file is created.
    Create,
    /// Reading commands: a missing SQLite file is an error naming it.
    Existing,
}

/// Connects to the history database at `url` for a command, waiting at most `timeout`. A
/// PostgreSQL server that refuses, or a host that does not resolve, fails at once with that
/// reason, through `vigil health`'s check, rather than after the whole timeout as sqlx's "pool
/// timed out".
fn connect_history(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    timeout: std::time::Duration,
    open: Open,
) -> anyhow::Result<crate::history::HistoryStore> {
    use crate::history::HistoryStore;
    if let Err(why) = crate::health::history::reachable(url, timeout) {
        anyhow::bail!(
            "history database {}: unreachable: {why}",
            crate::history::redact_url(url)
        );
    }
    let store = runtime.block_on(async {
        match open {
            Open::Create => HistoryStore::connect(url, timeout).await,
            Open::Existing => HistoryStore::connect_existing(url, timeout).await,
        }
    })?;
    Ok(store)
}
