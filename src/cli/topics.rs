//! `vigil topics`: provision the Kafka topics (`apply`) and compare them with the configuration
//! (`show`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::config::{describe_retention, Config};
use crate::kafka::topics::{self, TopicStatus};
use crate::kafka::{runtime, Admin};

#[derive(Args, Debug)]
pub struct TopicsArgs {
    /// The configuration file (default: `vigil.toml` when it exists; then VIGIL_… variables).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Subcommand, Debug)]
enum TopicsCommand {
    /// Create missing topics and bring partitions, retention and cleanup policy in line,
    /// printing one line per change.
    Apply,
    /// Print the topics as the broker reports them, marking every difference from the
    /// configuration (exit 5 when there is one).
    Show {
        /// JSON for scripts instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: TopicsArgs) -> anyhow::Result<u8> {
    let config = match Config::load(args.config.as_deref()) {
        Ok((config, _)) => config,
        Err(e) => {
            eprint!("{}", e.render(super::color()));
            return Ok(super::EXIT_ERROR);
        }
    };
    let rt = runtime()?;
    let admin = Admin::new(&config.kafka)?;
    match args.command {
        TopicsCommand::Apply => {
            let report = rt.block_on(topics::apply(&admin, &config.kafka))?;
            for warning in &report.warnings {
                eprintln!("warning: {warning}");
            }
            if report.changes.is_empty() {
                outln!("no changes")?;
            }
            for change in &report.changes {
                outln!("{change}")?;
            }
            Ok(0)
        }
        TopicsCommand::Show { json } => {
            let statuses = rt.block_on(topics::show(&admin, &config.kafka))?;
            let in_line = statuses.iter().all(|s| s.differences.is_empty());
            if json {
                let doc = serde_json::json!({
                    "brokers": config.kafka.bootstrap_servers(),
                    "in_line": in_line,
                    "topics": statuses,
                });
                outln!("{}", serde_json::to_string_pretty(&doc)?)?;
            } else {
                out!("{}", table(&statuses))?;
            }
            Ok(if in_line {
                0
            } else {
                super::EXIT_TOPICS_DIFFER
            })
        }
    }
}

/// A table for people: one row per topic, `*` after every value that differs from the
/// configuration, then one line per difference.
fn table(statuses: &[TopicStatus]) -> String {
    let header = [
        "TOPIC",
        "NAME",
        "PARTITIONS",
        "REPLICATION",
        "RETENTION",
        "CLEANUP",
    ];
    let mut rows: Vec<[String; 6]> = vec![header.map(String::from)];
    for s in statuses {
        let mark = |field: &str, value: String| {
            if s.differences.iter().any(|d| d.field == field) {
                format!("{value}*")
            } else {
                value
            }
        };
        let row = match &s.actual {
            None => [
                s.key.to_string(),
                format!("{}*", s.name),
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
            ],
            Some(o) => [
                s.key.to_string(),
                s.name.clone(),
                mark("partitions", o.partitions.to_string()),
                mark("replication-factor", o.replication_factor.to_string()),
                mark(
                    "retention.ms",
                    o.retention_ms
                        .map_or_else(|| "?".to_string(), describe_retention),
                ),
                mark(
                    "cleanup.policy",
                    o.cleanup_policy.clone().unwrap_or_else(|| "?".to_string()),
                ),
            ],
        };
        rows.push(row);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let differences: Vec<String> = statuses
        .iter()
        .flat_map(|s| {
            s.differences.iter().map(move |d| {
                if d.field == "exists" {
                    format!("* {}: missing (run `vigil topics apply`)", s.name)
                } else {
                    let shown = |v: &str| match (d.field, v.parse::<i64>()) {
                        ("retention.ms", Ok(ms)) => format!("{v} ({})", describe_retention(ms)),
                        _ => v.to_string(),
                    };
                    format!(
                        "* {}: {} is {}, configured {}",
                        s.name,
                        d.field,
                        shown(&d.actual),
                        shown(&d.configured)
                    )
                }
            })
        })
        .collect();
    if differences.is_empty() {
        out.push_str(&format!(
            "all {} topics are in line with the configuration\n",
            statuses.len()
        ));
    } else {
        out.push('\n');
        for d in differences {
            out.push_str(&d);
            out.push('\n');
        }
    }
    out
}
