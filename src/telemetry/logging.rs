//! Structured operational logs (`tracing`) on stderr.
//!
//! What the CLI tells its user (diagnostics, `error: …`, tables, the run summary) is printed
//! directly and is not a log. Logs are the running process's account of itself: sessions,
//! restores, outages, retries.
//!
//! Health data is sensitive: at `info` and above, logs carry no user id and no biometric value
//! (counts, partitions, topics, durations and errors only). `debug` and `trace` may, for
//! diagnosis on a machine that is allowed to see them.
//!
//! The filter comes from `VIGIL_LOG`, else `RUST_LOG` (e.g. `info`, `vigil=debug`), default
//! `info`, with librdkafka's own messages from `warn` and the rdkafka wrapper's from `error`
//! (it warns about every client event it does not handle, which Vigil reports itself). The format is `text` (one line per event,
//! message then fields) or `json` (one object per line, for log shippers), from
//! `--log-format` or `VIGIL_LOG_FORMAT`.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines: time, level, message, fields.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (text or json)")),
        }
    }
}

/// The filter used when neither `VIGIL_LOG` nor `RUST_LOG` is set.
pub const DEFAULT_FILTER: &str = "info,librdkafka=warn,rdkafka=error";

/// The format from `VIGIL_LOG_FORMAT`, when set and valid.
pub fn format_from_env() -> Result<Option<LogFormat>, String> {
    match std::env::var("VIGIL_LOG_FORMAT") {
        Ok(v) if !v.trim().is_empty() => v
            .parse()
            .map(Some)
            .map_err(|e| format!("VIGIL_LOG_FORMAT: {e}")),
        _ => Ok(None),
    }
}

/// Installs the subscriber (once; later calls do nothing) and routes the `log` crate's records
/// (librdkafka's, through rdkafka) into it. Returns a warning to show when the filter in the
/// environment could not be parsed (the default is used then).
pub fn init(format: LogFormat, color: bool) -> Option<String> {
    let (filter, warning) = filter_from_env();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` fails only when a subscriber is already installed: keep that one.
    let _ = match format {
        // The module path adds little to a sentence on a terminal; JSON keeps it for search.
        LogFormat::Text => builder.with_target(false).with_ansi(color).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    warning
}

fn filter_from_env() -> (EnvFilter, Option<String>) {
    let (var, spec) = ["VIGIL_LOG", "RUST_LOG"]
        .into_iter()
        .find_map(|var| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| (var, v))
        })
        .unwrap_or(("", DEFAULT_FILTER.to_string()));
    match EnvFilter::try_new(&spec) {
        Ok(filter) => (filter, None),
        Err(e) => (
            EnvFilter::new(DEFAULT_FILTER),
            Some(format!(
                "{var}={spec:?} is not a valid log filter ({e}); using {DEFAULT_FILTER:?}"
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_case_insensitively() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!(" text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn the_default_filter_parses() {
        assert!(EnvFilter::try_new(DEFAULT_FILTER).is_ok());
    }
}
