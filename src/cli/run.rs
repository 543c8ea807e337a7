//! `vigil run`: the main job in the embedded mode.

use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::engine::OutputEvent;
use crate::engine::{Engine, EngineConfig};
use crate::event::{Decoder, DEFAULT_MAX_LINE_BYTES};
use crate::history::{redact_url, HistoryRow, HistoryWriter, WriterOptions};
use crate::io::lazy_file::LazyFile;
use crate::io::live::{FlushingInput, SharedOutput};
use crate::io::pipeline::{self, RunHooks, Sinks};
use crate::io::reload_status::ReloadStatus;
use crate::io::rule_watch::{RuleSource, RuleWatcher};
use crate::kafka::history_sink::HistorySink;
use crate::kafka::{self, StreamOptions, StreamStatus};
use crate::rules::{load_rules, RuleSet};
use crate::shadow::Shadow;
use crate::status::buffer::StatusBuffer;
use crate::status::{StatusOptions, StatusStore};
use crate::telemetry::http::{Endpoints, HttpServer};
use crate::telemetry::{self, Check};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Rule files or directories.
    #[arg(long, default_value = "rules")]
    rules: Vec<PathBuf>,
    /// Events as JSON lines; `-` for stdin.
    #[arg(long, default_value = "-")]
    input: String,
    /// Where alerts and milestones go, as JSON lines; `-` for stdout.
    #[arg(long, default_value = "-")]
    output: String,
    /// Where rejected input lines go, with their reason (created when there is one).
    #[arg(long, default_value = "dead-letter.jsonl")]
    dead_letter: PathBuf,
    /// Where events too late for their user's event time go (created when there is one).
    #[arg(long, default_value = "late-events.jsonl")]
    late: PathBuf,
    /// How far behind its user's event time an event may be and still count: `DURATION` for
    /// every event type (e.g. "1h"), or `TYPE=DURATION` for one (e.g.
    /// "sleep_episode=3d"); repeatable. Default: `[lateness]` of vigil.toml, else 1h, and 2d
    /// for heart_rate_variability, resting_heart_rate and sleep_episode.
    #[arg(long, value_name = "[TYPE=]DURATION", value_parser = super::args::lateness_setting)]
    allowed_lateness: Vec<super::args::LatenessSetting>,
    /// Drop a user's state once the stream's clock is this far past the user's latest event,
    /// e.g. "90d" (default: keep it; a firing alert or pending timer always keeps it).
    #[arg(long, value_parser = super::args::duration_ms)]
    state_ttl: Option<i64>,
    /// How far ahead a clock may plausibly be, e.g. "1d": an event dated further ahead of
    /// this machine's clock goes to the dead letters ("in the future"), and a user this far
    /// ahead of every other user does not move the clock that drives absence timers.
    #[arg(long, default_value = "1d", value_parser = super::args::duration_ms)]
    max_future_skew: i64,
    /// Longest accepted input line (or Kafka message), in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_LINE_BYTES)]
    max_line_bytes: usize,
    /// Production mode: consume the input topics of `vigil.toml` and produce to its output
    /// topics, exactly once (instead of --input/--output files).
    #[arg(long, conflicts_with_all = ["input", "output"])]
    kafka: bool,
    /// The configuration file (default: ./vigil.toml when it exists): Kafka with --kafka, and
    /// the history database.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Store alerts and milestones in this history database (default: VIGIL_DATABASE_URL,
    /// else history.url of vigil.toml, else sqlite:vigil-history.db).
    #[arg(long, value_name = "URL", conflicts_with = "no_history")]
    history: Option<String>,
    /// Do not store alerts and milestones in the history database.
    #[arg(long)]
    no_history: bool,
    /// This instance's id in the consumer group (overrides kafka.streaming.instance-id).
    #[arg(long, requires = "kafka")]
    instance_id: Option<String>,
    /// With --kafka: stop (after committing) once every assigned partition is processed and
    /// nothing has arrived for this long, e.g. "5s"; never while no partition is assigned. For
    /// backtests and tests.
    #[arg(long, requires = "kafka", value_parser = super::args::duration)]
    exit_when_idle: Option<Duration>,
    /// Serve /metrics, /healthz and /readyz on this address, e.g. "127.0.0.1:9464" (overrides
    /// http.listen of vigil.toml and VIGIL_HTTP_LISTEN).
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    /// A candidate rule set (files or directories; repeatable) run beside the live one on the
    /// same events: its outputs go to --shadow-out only, never to --output, the history or
    /// the shared status. A set that does not load stops the run at start (exit 3). Not yet
    /// in Kafka mode.
    #[arg(long, value_name = "DIR")]
    shadow: Vec<PathBuf>,
    /// Where the shadow rule set's outputs go, as JSON lines (created when there is one).
    #[arg(long, default_value = "shadow.jsonl", requires = "shadow")]
    shadow_out: PathBuf,
}

fn create(path: &PathBuf) -> anyhow::Result<BufWriter<File>> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(BufWriter::new(file))
}

pub fn run(args: RunArgs) -> anyhow::Result<u8> {
    if args.kafka && !args.shadow.is_empty() {
        eprintln!(
            "error: --shadow is not yet supported in Kafka mode; run it in the embedded mode \
             (--input, --output)"
        );
        return Ok(super::EXIT_USAGE);
    }
    let rules = match load_rules(&args.rules) {
        Ok(set) => Arc::new(set),
        Err(failure) => {
            eprint!("{}", failure.render(super::color()));
            return Ok(super::EXIT_INVALID_RULES);
        }
    };
    let lateness = match super::load_config(args.config.as_deref()) {
        Ok(config) => {
            super::args::apply_lateness(config.lateness.lateness(), &args.allowed_lateness)
        }
        Err(code) => return Ok(code),
    };
    let mut engine = Engine::new(
        rules,
        EngineConfig {
            lateness,
            state_ttl_ms: args.state_ttl,
            max_future_skew_ms: args.max_future_skew,
        },
    );
    if args.kafka {
        return run_kafka(args, engine.rules_arc(), engine.config().clone());
    }
    // Loaded before anything starts: a candidate that does not load is refused with the
    // diagnostics `vigil check` gives, not discovered halfway through the input.
    let mut shadow = if args.shadow.is_empty() {
        None
    } else {
        match load_rules(&args.shadow) {
            Ok(set) => Some(Shadow::new(
                Arc::new(set),
                engine.config().clone(),
                LazyFile::new(&args.shadow_out)?,
            )),
            Err(failure) => {
                eprint!("{}", failure.render(super::color()));
                eprintln!("error: the shadow rule set (--shadow) does not load");
                return Ok(super::EXIT_INVALID_RULES);
            }
        }
    };
    let history_url = match history_url(&args) {
        Ok(url) => url,
        Err(code) => return Ok(code),
    };
    let history = history_url.as_deref().map(start_history).transpose()?;
    let listen = match http_listen(&args, None) {
        Ok(listen) => listen,
        Err(code) => return Ok(code),
    };
    // Rules edited while the run goes on are loaded, checked and applied between two events
    // (see `io::rule_watch`).
    let reload_status = Arc::new(ReloadStatus::new(engine.rules()));
    telemetry::metrics().set_rule_versions(engine.rules());
    let watcher = match RuleWatcher::start(
        args.rules.clone(),
        engine.rules_arc(),
        Arc::clone(&reload_status),
    ) {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!(
                error = %format!("{e:#}"),
                "Rule files are not watched; this run keeps the rules it started with."
            );
            None
        }
    };
    let _server = match listen {
        Some(addr) => {
            let status = Arc::clone(&reload_status);
            telemetry::register_readiness("rules", move || status.readiness());
            let source = if args.input == "-" { "stdin" } else { "a file" };
            telemetry::register_readiness("input", move || {
                Check::ready(format!("reading {source}"))
            });
            if let Some((writer, _)) = &history {
                telemetry::register_readiness("history database", writer.readiness_probe());
            }
            Some(HttpServer::start(addr, Endpoints::global())?)
        }
        None => None,
    };
    let source = if args.input == "-" {
        "stdin"
    } else {
        args.input.as_str()
    };
    let counters = telemetry::metrics().input_counters(&[source]);
    let decoder = Decoder::with_max_line_bytes(args.max_line_bytes);
    let mut dead = LazyFile::new(&args.dead_letter)?;
    let mut late = LazyFile::new(&args.late)?;
    let stdout = io::stdout();
    let mut outputs = SharedOutput::new(if args.output == "-" {
        Box::new(BufWriter::new(stdout.lock()))
    } else {
        Box::new(create(&PathBuf::from(&args.output))?)
    });
    let flushed_before_waits = outputs.clone();
    let mut sinks = Sinks {
        outputs: &mut outputs,
        dead_letters: &mut dead,
        late: &mut late,
    };
    let shared = start_shared(&args, history_url.as_deref(), engine.config())?;
    let mut hooks = EmbeddedHooks {
        history: history.as_ref().map(|(writer, _)| writer),
        unstored: 0,
        buffer: StatusBuffer::new(engine.rules()),
        shared: &shared,
        events_since_hand_over: 0,
        shadow: shadow.as_mut(),
    };
    let mut around = pipeline::Around {
        hooks: Some(&mut hooks),
        silences: Some(&shared),
        counters: Some(&counters),
        clock: &crate::io::admit::SystemClock,
        rules: watcher.as_ref().map(|w| w as &dyn RuleSource),
    };
    let summary = if args.input == "-" {
        pipeline::run_with(
            &mut engine,
            &decoder,
            // Fed live, perhaps: each output reaches the reader before the next wait.
            FlushingInput::new(io::stdin(), flushed_before_waits),
            "stdin",
            &mut sinks,
            &mut around,
        )
    } else {
        let file =
            File::open(&args.input).with_context(|| format!("cannot open {}", args.input))?;
        pipeline::run_with(
            &mut engine,
            &decoder,
            BufReader::new(file),
            &args.input,
            &mut sinks,
            &mut around,
        )
    }
    .context("while running")?;
    eprintln!("{summary}{}", written_to(&summary, &dead, &late));
    hooks.hand_over();
    let unstored = hooks.unstored;
    drop(hooks);
    // A shadow that could not write fails the run, but only after the live side is closed:
    // the candidate must never cost the live history.
    let shadow_failed = shadow.as_mut().is_some_and(report_shadow);
    warn_unwritten(&shared.close(SHARED_DRAIN));
    let Some((writer, url)) = history else {
        return Ok(if shadow_failed { super::EXIT_ERROR } else { 0 });
    };
    let report = writer.close(HISTORY_DRAIN);
    let unstored = unstored + report.unwritten;
    if unstored > 0 {
        eprintln!(
            "error: history: {unstored} alerts and milestones were not stored in {url}{}",
            report
                .last_error
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        );
        return Ok(super::EXIT_ERROR);
    }
    eprintln!("history: {} new in {url}", report.written);
    Ok(if shadow_failed { super::EXIT_ERROR } else { 0 })
}

/// Matches what the shadow has left, flushes its file and says how it went; `true` when its
/// outputs could not all be written (said on stderr).
fn report_shadow(shadow: &mut Shadow) -> bool {
    let path = shadow.path().display().to_string();
    match shadow.finish() {
        Ok(agreement) => {
            let (both, live_only, shadow_only) = agreement.iter().fold((0, 0, 0), |t, (_, a)| {
                (t.0 + a.both, t.1 + a.only_a, t.2 + a.only_b)
            });
            eprintln!(
                "shadow: {} outputs in {path}; matched per event: both {both}, live only \
                 {live_only}, shadow only {shadow_only}",
                shadow.written
            );
            false
        }
        Err(e) => {
            eprintln!("error: shadow: cannot write the outputs to {path}: {e}");
            true
        }
    }
}

/// The end of the summary line naming the files this run wrote rejected and late events to,
/// with their counts, as more `name: count` pairs of the line (nothing when it wrote none,
/// and then created none).
fn written_to(summary: &pipeline::Summary, dead: &LazyFile, late: &LazyFile) -> String {
    [
        (summary.dead_lettered, "dead letters", dead),
        (summary.late, "late events", late),
    ]
    .into_iter()
    .filter(|(count, _, _)| *count > 0)
    .map(|(count, what, file)| format!(", {what} in {}: {count}", file.path().display()))
    .collect()
}

/// Where the HTTP listener goes: `--http`, else `http.listen` of the configuration (file, then
/// `VIGIL_HTTP_LISTEN`); `None` without either. `config` is the configuration when already
/// loaded; `Err` is the exit code of an invalid `vigil.toml` (already reported).
fn http_listen(
    args: &RunArgs,
    config: Option<&Config>,
) -> Result<Option<std::net::SocketAddr>, u8> {
    if let Some(addr) = args.http {
        return Ok(Some(addr));
    }
    match config {
        Some(config) => Ok(config.http.listen),
        None => super::load_config(args.config.as_deref()).map(|c| c.http.listen),
    }
}

/// The history database this run writes to, `None` with `--no-history`; `Err` is the exit
/// code of an invalid `vigil.toml` (already reported).
fn history_url(args: &RunArgs) -> Result<Option<String>, u8> {
    if args.no_history {
        return Ok(None);
    }
    super::history_url(args.history.clone(), args.config.as_deref()).map(Some)
}

/// The embedded run's hooks: history rows (marked when silenced), silences, shared status.
struct EmbeddedHooks<'a> {
    history: Option<&'a HistoryWriter>,
    unstored: u64,
    buffer: StatusBuffer,
    shared: &'a StatusStore,
    events_since_hand_over: usize,
    /// The shadow rule set (`--shadow`): fed the accepted events, told the live outputs.
    shadow: Option<&'a mut Shadow>,
}

/// Events between two hand-overs to the shared state (and silence refreshes).
const HAND_OVER_EVERY: usize = 10_000;

impl EmbeddedHooks<'_> {
    fn hand_over(&mut self) {
        self.buffer.hand_to(self.shared);
        self.events_since_hand_over = 0;
    }
}

impl RunHooks for EmbeddedHooks<'_> {
    fn event(&mut self, event: &crate::event::Event) {
        if let Some(shadow) = self.shadow.as_deref_mut() {
            shadow.event(event);
        }
        self.buffer.event(&event.user_id, event.time.millis());
        self.events_since_hand_over += 1;
        if self.events_since_hand_over >= HAND_OVER_EVERY {
            self.hand_over();
        }
    }

    fn rules_replaced(&mut self, rules: &RuleSet) {
        self.buffer.set_rules(rules);
    }

    fn output(&mut self, output: &OutputEvent, silenced: bool) {
        if let Some(shadow) = self.shadow.as_deref_mut() {
            shadow.live(output);
        }
        self.buffer.output(output, silenced);
        let Some(writer) = self.history else {
            return;
        };
        let sent = HistoryRow::from_output(output).and_then(|mut row| {
            row.silenced = silenced;
            writer.send_row(row)
        });
        if let Err(e) = sent {
            if self.unstored == 0 {
                eprintln!("warning: history: {e}");
            }
            self.unstored += 1;
        }
    }
}

/// The shared state of this run: Redis when configured, else in process with the silences
/// of the history database at `history` (none with `--no-history`).
fn start_shared(
    args: &RunArgs,
    history: Option<&str>,
    engine: &EngineConfig,
) -> anyhow::Result<StatusStore> {
    let config = match super::load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(_) => anyhow::bail!("invalid configuration"),
    };
    let shared = StatusStore::start(StatusOptions {
        redis_url: config.redis.url,
        key_prefix: config.redis.key_prefix,
        silence_database: history.map(str::to_string),
        timeout: SHARED_TIMEOUT,
        state_ttl_ms: engine.state_ttl_ms,
        max_future_skew_ms: engine.max_future_skew_ms,
    })?;
    telemetry::register_readiness("shared state", shared.readiness_probe());
    Ok(shared)
}

/// Says what the shared state could not write before the run ended.
fn warn_unwritten(status: &crate::status::StoreStatus) {
    if status.queued_outputs + status.queued_users > 0 {
        eprintln!(
            "warning: shared state ({}): {} outputs and {} users' last event times not written{}",
            status.backend,
            status.queued_outputs,
            status.queued_users,
            status
                .last_error
                .as_deref()
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        );
    }
}

/// How long one call to Redis (or the silences' database) may take.
const SHARED_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the end of a run waits for the shared state to be written.
const SHARED_DRAIN: Duration = Duration::from_secs(10);

/// How long the end of a run waits for the history to be written.
const HISTORY_DRAIN: Duration = Duration::from_secs(30);

/// Rows a file run lets wait for the history database before it waits itself.
const FILE_RUN_MAX_QUEUED_ROWS: u64 = 20_000;

/// Connects and migrates once before the run, so that a wrong URL or an unwritable file stops
/// the run at once with a clear message instead of after all the input; then starts the
/// writer. Returns the writer and the URL as it may be shown.
fn start_history(url: &str) -> anyhow::Result<(HistoryWriter, String)> {
    let shown = redact_url(url);
    let runtime = super::runtime()?;
    super::connect_history(&runtime, url, super::DB_TIMEOUT, super::Open::Create)
        .and_then(|store| {
            runtime.block_on(async {
                let migrated = store.migrate().await;
                store.close().await;
                Ok(migrated?)
            })
        })
        .with_context(|| format!("history {shown} (--no-history runs without it)"))?;
    // A file is read as fast as the engine goes; the history keeps up by back-pressure rather
    // than by queuing every output in memory.
    let writer = HistoryWriter::start(
        url,
        WriterOptions {
            max_queued: Some(FILE_RUN_MAX_QUEUED_ROWS),
            ..WriterOptions::default()
        },
    )?;
    Ok((writer, shown))
}

fn run_kafka(args: RunArgs, rules: Arc<RuleSet>, engine: EngineConfig) -> anyhow::Result<u8> {
    let mut config = match Config::load(args.config.as_deref()) {
        Ok((config, _)) => config,
        Err(e) => {
            eprint!("{}", e.render(super::color()));
            return Ok(super::EXIT_ERROR);
        }
    };
    if let Some(id) = args.instance_id.clone() {
        config.kafka.streaming.instance_id = Some(id);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the signal handlers")?;
    }
    // SIGHUP reloads the rules of the embedded mode; here it must not end the process (its
    // default), but say that it does nothing.
    let mut hangups = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .context("cannot install the SIGHUP handler")?;
    std::thread::Builder::new()
        .name("vigil-sighup".into())
        .spawn(move || {
            for _ in hangups.forever() {
                tracing::warn!(
                    "SIGHUP: Kafka mode does not reload rules; restart the instances with the \
                     new rules."
                );
            }
        })
        .context("cannot start the SIGHUP handler")?;
    telemetry::metrics().set_rule_versions(&rules);
    let running = ReloadStatus::new(&rules);
    telemetry::register_readiness("rules", move || running.readiness());
    let status = Arc::new(StreamStatus::default());
    status.register(telemetry::readiness());
    let options = StreamOptions {
        rules,
        engine,
        max_message_bytes: args.max_line_bytes,
        exit_when_idle: args.exit_when_idle,
        stop,
        shared: None,
        status,
    };
    // The history reads what the transactions committed to the output topics; a database
    // that is away only delays it (see `kafka::history_sink`).
    let history_url = match history_url(&args) {
        Ok(url) => url,
        Err(code) => return Ok(code),
    };
    let shared = Arc::new(start_shared(
        &args,
        history_url.as_deref(),
        &options.engine,
    )?);
    let options = StreamOptions {
        shared: Some(Arc::clone(&shared)),
        ..options
    };
    let history = match history_url {
        Some(url) => {
            let shown = redact_url(&url);
            let sink = HistorySink::start(&config.kafka, &url)
                .with_context(|| format!("history {shown}"))?;
            Some((sink, shown))
        }
        None => None,
    };
    if let Some((sink, _)) = &history {
        telemetry::register_readiness("history database", sink.readiness_probe());
    }
    let _server = match http_listen(&args, Some(&config)) {
        Ok(Some(addr)) => Some(HttpServer::start(addr, Endpoints::global())?),
        Ok(None) => None,
        Err(code) => return Ok(code),
    };
    let summary = kafka::run(&config.kafka, &options);
    // The loop has ended on purpose: what follows (the history's drain) is no stall.
    telemetry::heartbeat().disarm();
    let signalled = options.stop.load(std::sync::atomic::Ordering::Relaxed);
    drop(options);
    if let Ok(shared) = Arc::try_unwrap(shared) {
        warn_unwritten(&shared.close(SHARED_DRAIN));
    }
    if let Some((sink, url)) = history {
        // A run that ended because its input did (--exit-when-idle) leaves a complete history;
        // a signalled one stops promptly, and the next run stores the rest.
        let read_to_end = !signalled;
        match sink.stop(HISTORY_DRAIN, read_to_end) {
            Ok(report) if report.unstored == 0 => {
                eprintln!("history: {} new in {url}", report.written);
            }
            Ok(report) => tracing::warn!(
                unstored = report.unstored,
                database = %url,
                last_error = report.last_error.as_deref().unwrap_or("none"),
                "history: alerts and milestones not stored yet; the next run stores them"
            ),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "history: the sink failed"),
        }
    }
    eprintln!("{}", summary?);
    Ok(0)
}
