//! `vigil health`: is everything ready? One line per check, exit 0 healthy, 1 degraded,
//! 2 failing. The checks live in [`crate::health`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::duration;
use crate::health::{self, Mode, Options};

#[derive(Args, Debug)]
pub struct HealthArgs {
    /// Check the production mode: Kafka brokers, topics, a produce → consume probe and the
    /// consumer groups' lag, besides the history database and Redis.
    #[arg(long)]
    kafka: bool,
    /// Check the configuration and the rules only; no server is contacted.
    #[arg(long, conflicts_with_all = ["kafka", "history"])]
    no_environment: bool,
    /// The configuration file (default: ./vigil.toml when it exists; then VIGIL_… variables).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Rule files or directories (default: rules/).
    #[arg(long)]
    rules: Vec<PathBuf>,
    /// The history database to check (default: VIGIL_DATABASE_URL, else history.url of
    /// vigil.toml, else sqlite:vigil-history.db).
    #[arg(long, value_name = "URL")]
    history: Option<String>,
    /// The longest any one check may take, e.g. "5s" (at least 1s; Kafka's checks also stay
    /// within kafka.request-timeout).
    #[arg(long, default_value = "5s", value_parser = at_least_a_second)]
    timeout: Duration,
    /// Consumer lag (records per group and topic) above which the check is degraded.
    #[arg(long, default_value_t = health::DEFAULT_MAX_LAG)]
    max_lag: u64,
    /// Probe round trip above which the probe is degraded, e.g. "1s".
    #[arg(long, default_value = "1s", value_parser = duration)]
    max_probe_latency: Duration,
    /// Redis PING round trip above which Redis is degraded, e.g. "100ms".
    #[arg(long, default_value = "100ms", value_parser = duration)]
    max_redis_latency: Duration,
    /// The running `vigil run` to ask how its rules stand, e.g. "127.0.0.1:9464" (default:
    /// http.listen of vigil.toml or VIGIL_HTTP_LISTEN; none: not asked).
    #[arg(long, value_name = "ADDR", conflicts_with = "no_environment")]
    instance: Option<std::net::SocketAddr>,
    /// One JSON document (the checks, the status and the exit code) instead of lines.
    #[arg(long)]
    json: bool,
}

fn at_least_a_second(text: &str) -> Result<Duration, String> {
    let d = duration(text)?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s (librdkafka's shortest connection timeout)".to_string());
    }
    Ok(d)
}

pub fn run(args: HealthArgs) -> anyhow::Result<u8> {
    let mode = if args.no_environment {
        Mode::NoEnvironment
    } else if args.kafka {
        Mode::Kafka
    } else {
        Mode::Embedded
    };
    let options = Options {
        mode,
        config: args.config,
        rules: super::rule_paths(args.rules),
        history: args.history,
        timeout: args.timeout,
        max_lag: args.max_lag,
        max_probe_latency: args.max_probe_latency,
        max_redis_latency: args.max_redis_latency,
        instance: args.instance,
    };
    let report = health::run(&options);
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        out!("{}", report.render(stdout_color()))?;
    }
    Ok(report.exit_code)
}

fn stdout_color() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
