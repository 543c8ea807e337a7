//! `vigil backtest`: history replayed through one or two rule sets (see [`crate::backtest`]).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use rustc_hash::FxHashSet;

use crate::backtest::{self, report, Input, Merge, SetRun, Sinks};
use crate::engine::EngineConfig;
use crate::event::{Decoder, DEFAULT_MAX_LINE_BYTES};
use crate::io::lazy_file::LazyFile;
use crate::rules::{load_rules, RuleSet};

#[derive(Args, Debug)]
pub struct BacktestArgs {
    /// Rule files or folders of set A.
    #[arg(long, default_value = "rules", num_args = 1.., value_name = "PATH")]
    rules: Vec<PathBuf>,
    /// Rule files or folders of a set B to compare with A: the table then shows both, and how
    /// many outputs of each rule are in both sets, only in A, only in B.
    #[arg(long, num_args = 1.., value_name = "PATH")]
    against: Vec<PathBuf>,
    /// Events as JSON lines, one or more files (`-` for stdin). Each is read in its own order
    /// and they are merged by event time.
    #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
    input: Vec<String>,
    /// Print the table as one JSON document (schemas/backtest.schema.json) instead of text.
    #[arg(long)]
    json: bool,
    /// Write each set's alerts and milestones, as `vigil run` writes them, to DIR/a.jsonl
    /// (and DIR/b.jsonl); DIR is created if missing.
    #[arg(long, value_name = "DIR")]
    outputs: Option<PathBuf>,
    /// Write the lines that do not decode here, with their reason (default: counted only).
    #[arg(long, value_name = "PATH")]
    dead_letter: Option<PathBuf>,
    /// Write the events too late for their user's event time here (default: counted only).
    #[arg(long, value_name = "PATH")]
    late: Option<PathBuf>,
    /// Write an HTML report here: the table, then per user a plot of each rule's input over
    /// time with its threshold and the firings of each set. Needs files as input (they are
    /// read a second time for the chosen users).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// How many users the report plots: those most affected by the difference between the
    /// sets, or without --against those with the most firings and milestones.
    #[arg(long, default_value_t = 5, value_name = "N")]
    report_users: usize,
    /// How far behind its user's event time an event may be and still count, as `vigil run
    /// --allowed-lateness`: `DURATION` for every event type, or `TYPE=DURATION` for one;
    /// repeatable. Default: 1h, and 2d for the nightly types.
    #[arg(long, value_name = "[TYPE=]DURATION", value_parser = super::args::lateness_setting)]
    allowed_lateness: Vec<super::args::LatenessSetting>,
    /// Drop a user's state once the stream's clock is this far past the user's latest event,
    /// e.g. "90d" (default: keep it), as `vigil run --state-ttl`.
    #[arg(long, value_parser = super::args::duration_ms)]
    state_ttl: Option<i64>,
    /// A user this far ahead of every other user does not move the clock that drives absence
    /// timers, as in `vigil run`. (No event is judged against this machine's clock: a
    /// backtest replays the past.)
    #[arg(long, default_value = "1d", value_parser = super::args::duration_ms)]
    max_future_skew: i64,
    /// Longest accepted input line, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_LINE_BYTES)]
    max_line_bytes: usize,
    /// Replay the Kafka input topics: not implemented yet (export the topics to files and use
    /// --input).
    #[arg(long)]
    topics: bool,
}

/// Input below which no progress bar is drawn: it would only flash.
const PROGRESS_MIN_BYTES: u64 = 16 << 20;

pub fn run(args: BacktestArgs) -> anyhow::Result<u8> {
    if args.topics {
        eprintln!(
            "error: backtests from the Kafka topics (--topics) are not implemented yet; export \
             the topics to JSON-lines files and give them with --input"
        );
        return Ok(super::EXIT_USAGE);
    }
    if args.input.iter().filter(|i| *i == "-").count() > 1 {
        eprintln!("error: --input names stdin (`-`) more than once");
        return Ok(super::EXIT_USAGE);
    }
    if args.report.is_some() && args.input.iter().any(|i| i == "-") {
        eprintln!(
            "error: --report reads the input a second time for the users it plots, and stdin \
             (`-`) cannot be read twice: give the events as files"
        );
        return Ok(super::EXIT_USAGE);
    }
    let mut rule_sets = vec![args.rules.clone()];
    if !args.against.is_empty() {
        rule_sets.push(args.against.clone());
    }
    let mut loaded: Vec<Arc<RuleSet>> = Vec::new();
    for paths in &rule_sets {
        match load_rules(paths) {
            Ok(set) => loaded.push(Arc::new(set)),
            Err(failure) => {
                eprint!("{}", failure.render(super::color()));
                return Ok(super::EXIT_INVALID_RULES);
            }
        }
    }
    let config = EngineConfig {
        lateness: super::args::apply_lateness(
            crate::engine::Lateness::default(),
            &args.allowed_lateness,
        ),
        state_ttl_ms: args.state_ttl,
        max_future_skew_ms: args.max_future_skew,
    };
    let decoder = Decoder::with_max_line_bytes(args.max_line_bytes);
    let inputs = open_inputs(&args.input)?;
    let total_bytes = input_bytes(&args.input);
    let mut sets = Vec::new();
    for (i, rules) in loaded.iter().enumerate() {
        let outputs = match &args.outputs {
            Some(dir) => Some(output_file(dir, i)?),
            None => None,
        };
        sets.push(SetRun::new(Arc::clone(rules), config.clone(), outputs));
    }
    let mut sinks = Sinks {
        dead_letters: args.dead_letter.as_ref().map(LazyFile::new).transpose()?,
        late: args.late.as_ref().map(LazyFile::new).transpose()?,
    };
    let bar = progress_bar(total_bytes);
    let mut progress = |bytes: u64| {
        if let Some(bar) = &bar {
            bar.set_position(bytes);
        }
    };
    let mut merge = Merge::new(inputs, &decoder);
    let replayed = backtest::replay(&mut merge, &decoder, &mut sets, &mut sinks, &mut progress)
        .context("while replaying")?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let paths: Vec<Vec<String>> = rule_sets
        .iter()
        .map(|p| p.iter().map(|p| p.display().to_string()).collect())
        .collect();
    let table = backtest::table(
        &args.input,
        &paths,
        &sets,
        &replayed.names,
        &replayed.rule_ids,
    );
    if args.json {
        serde_json::to_writer_pretty(io::stdout().lock(), &table)?;
        outln!()?;
    } else {
        out!("{}", table.render())?;
    }
    if let Some(path) = &args.report {
        let users = report::choose_users(&sets, &replayed.names, args.report_users);
        let chosen: FxHashSet<Box<str>> = users
            .iter()
            .filter_map(|(u, _)| replayed.names.names.get(*u as usize).cloned())
            .collect();
        let mut again = Merge::new(open_inputs(&args.input)?, &decoder);
        let traces = report::traces(&mut again, &decoder, &sets, &config, &chosen)
            .context("while replaying the report's users")?;
        let html = report::Report {
            table: &table,
            sets: &sets,
            names: &replayed.names,
            rule_ids: &replayed.rule_ids,
            users: &users,
            traces: &traces,
        }
        .html();
        std::fs::write(path, html).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("report in {}: {} users", path.display(), users.len());
    }
    let summary = sets.first().map(SetRun::summary).unwrap_or_default();
    for (file, count, what) in [
        (&sinks.dead_letters, summary.dead_lettered, "dead letters"),
        (&sinks.late, summary.late, "late events"),
    ] {
        if let (Some(file), true) = (file, count > 0) {
            eprintln!("{what} in {}: {count}", file.path().display());
        }
    }
    Ok(0)
}

fn open_inputs(names: &[String]) -> anyhow::Result<Vec<Input>> {
    names
        .iter()
        .map(|name| {
            let reader: Box<dyn BufRead> = if name == "-" {
                Box::new(BufReader::new(io::stdin()))
            } else {
                let file = File::open(name).with_context(|| format!("cannot open {name}"))?;
                Box::new(BufReader::with_capacity(1 << 16, file))
            };
            let shown = if name == "-" { "stdin" } else { name.as_str() };
            Ok(Input {
                name: shown.to_string(),
                reader,
            })
        })
        .collect()
}

/// The inputs' total size, when every one is a file.
fn input_bytes(names: &[String]) -> Option<u64> {
    names
        .iter()
        .map(|name| {
            (name != "-")
                .then(|| std::fs::metadata(name).ok().map(|m| m.len()))
                .flatten()
        })
        .sum()
}

/// A bar on stderr for a large input read from files, when stderr is a terminal.
fn progress_bar(total: Option<u64>) -> Option<indicatif::ProgressBar> {
    let total = total.filter(|t| *t >= PROGRESS_MIN_BYTES)?;
    if !io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// DIR/a.jsonl for set A, DIR/b.jsonl for set B.
fn output_file(dir: &Path, set: usize) -> anyhow::Result<Box<dyn Write>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = if set == 0 { "a.jsonl" } else { "b.jsonl" };
    let path = dir.join(name);
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(Box::new(BufWriter::new(file)))
}
