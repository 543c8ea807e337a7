//! `vigil silence add|list|remove`: silences that every `vigil run` instance honours (see
//! [`crate::status::silence`] for what a silence covers).
//!
//! Silences live in Redis when `redis.url` is set (or `--redis URL`), so every instance sees
//! them; otherwise in the history database, which is what the embedded `vigil run` reads.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use clap::{Args, Subcommand};

use super::Open;
use crate::history::{redact_url, HistoryStore};
use crate::rules::expr::closest;
use crate::rules::load_rules;
use crate::status::db_silences;
use crate::status::redis_store::RedisStore;
use crate::status::silence::{show_time, Silence};

#[derive(Args, Debug)]
pub struct SilenceArgs {
    #[command(subcommand)]
    command: SilenceCommand,
    /// Keep silences in this Redis (default: VIGIL_REDIS_URL, else redis.url of vigil.toml;
    /// without either, in the history database).
    #[arg(long, global = true, value_name = "URL")]
    redis: Option<String>,
    /// The history database, when there is no Redis (default: VIGIL_DATABASE_URL, else
    /// history.url of vigil.toml, else sqlite:vigil-history.db).
    #[arg(long, global = true, value_name = "URL")]
    history: Option<String>,
    /// The configuration file (default: ./vigil.toml when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum SilenceCommand {
    /// Silence a user's alerts (of one rule, or all) for a while.
    Add(AddArgs),
    /// The silences in force, soonest to expire first.
    List(ListArgs),
    /// End a silence before it expires.
    Remove(RemoveArgs),
}

#[derive(Args, Debug)]
struct AddArgs {
    /// The user whose alerts are silenced.
    #[arg(long, value_parser = super::args::user)]
    user: String,
    /// Only this rule's alerts (default: every rule's); one of the rules in --rules.
    #[arg(long)]
    rule: Option<String>,
    /// The rule files or directories --rule is checked against (default: rules/).
    #[arg(long, default_value = "rules")]
    rules: Vec<PathBuf>,
    /// How long, from now: "24h", "7d", "1h30m" (at most 36500d).
    #[arg(long = "for", value_name = "DURATION", value_parser = super::args::duration_ms)]
    for_ms: i64,
    /// Why, for whoever reads the list.
    #[arg(long)]
    reason: Option<String>,
    /// Print the silence as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ListArgs {
    /// Only this user's.
    #[arg(long)]
    user: Option<String>,
    /// JSON lines: id, user_id, rule_id, reason, created_at, expires_at.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct RemoveArgs {
    /// The silence's id (from `add` or `list`).
    id: String,
}

/// How long a silence command waits for Redis or the database.
const TIMEOUT: Duration = Duration::from_secs(5);

enum Place {
    Redis(Box<RedisStore>, String),
    Database(String),
}

pub fn run(args: SilenceArgs) -> anyhow::Result<u8> {
    let config = match super::load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let place = match args.redis.or(config.redis.url) {
        Some(url) => {
            let store = RedisStore::new(&url, &config.redis.key_prefix, TIMEOUT)
                .with_context(|| format!("redis URL {}", redact_url(&url)))?;
            Place::Redis(Box::new(store), redact_url(&url))
        }
        None => Place::Database(args.history.unwrap_or(config.history.url)),
    };
    let now = Utc::now();
    match args.command {
        SilenceCommand::Add(add) => {
            if let Some(rule) = &add.rule {
                if let Err(code) = check_rule(rule, &add.rules) {
                    return Ok(code);
                }
            }
            let silence = Silence::new(
                &add.user,
                add.rule.as_deref(),
                add.reason.as_deref(),
                add.for_ms,
                now,
            )
            .map_err(|e| anyhow::anyhow!("--for: {e}"))?;
            let shown = match place {
                Place::Redis(mut store, shown) => {
                    store
                        .add_silence(&silence, now)
                        .with_context(|| format!("redis {shown}"))?;
                    shown
                }
                Place::Database(url) => {
                    let stored = silence.clone();
                    with_database(&url, Open::Create, |store| async move {
                        db_silences::add(&store, &stored).await
                    })?;
                    redact_url(&url)
                }
            };
            if add.json {
                outln!("{}", serde_json::to_string(&silence)?)?;
            } else {
                outln!(
                    "silenced {} ({}) until {} in {shown}: {}",
                    silence.user_id,
                    if silence.rule_id.is_some() {
                        format!("rule {}", silence.rule_label())
                    } else {
                        "every rule".to_string()
                    },
                    show_time(silence.expires_at),
                    silence.id
                )?;
            }
            Ok(0)
        }
        SilenceCommand::List(list) => {
            let mut silences = match place {
                Place::Redis(mut store, shown) => {
                    store.silences().with_context(|| format!("redis {shown}"))?
                }
                Place::Database(url) => with_database(&url, Open::Existing, |store| async move {
                    db_silences::active(&store, now).await
                })?,
            };
            silences.retain(|s| s.is_active(now));
            if let Some(user) = &list.user {
                silences.retain(|s| &s.user_id == user);
            }
            if list.json {
                for s in &silences {
                    outln!("{}", serde_json::to_string(s)?)?;
                }
            } else {
                print_table(&silences)?;
            }
            Ok(0)
        }
        SilenceCommand::Remove(remove) => {
            let removed = match place {
                Place::Redis(mut store, shown) => store
                    .remove_silence(&remove.id)
                    .with_context(|| format!("redis {shown}"))?,
                Place::Database(url) => {
                    let id = remove.id.clone();
                    with_database(&url, Open::Existing, |store| async move {
                        db_silences::remove(&store, &id, now).await
                    })?
                }
            };
            if removed {
                outln!("removed silence {}", remove.id)?;
                Ok(0)
            } else {
                eprintln!("no silence in force has the id {}", remove.id);
                Ok(super::EXIT_NOT_FOUND)
            }
        }
    }
}

/// The rules under `paths` have a rule `rule`, or the exit code after saying why not (the
/// known ids, or the problems of rules that do not load). A silence for a rule that does not
/// exist would silence nothing, and say so to no one.
fn check_rule(rule: &str, paths: &[PathBuf]) -> Result<(), u8> {
    let shown = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let rules = match load_rules(paths) {
        Ok(set) => set,
        Err(failure) => {
            eprint!("{}", failure.render(super::color()));
            eprintln!(
                "error: --rule {rule} cannot be checked: the rules in {shown} do not load \
                 (--rules PATH names the rules the engine runs)"
            );
            return Err(super::EXIT_INVALID_RULES);
        }
    };
    if rules.rules.iter().any(|r| r.id == rule) {
        return Ok(());
    }
    let known: Vec<String> = rules.rules.iter().map(|r| r.id.clone()).collect();
    let hint = closest(rule, &known)
        .map(|best| format!("did you mean {best}? "))
        .unwrap_or_default();
    eprintln!(
        "error: --rule {rule}: no such rule in {shown}; {hint}known rules: {}",
        known.join(", ")
    );
    Err(super::EXIT_USAGE)
}

/// Connects to the history database (migrating it, as the silences table may be new) and
/// runs `f`.
fn with_database<T, F, Fut>(url: &str, open: Open, f: F) -> anyhow::Result<T>
where
    F: FnOnce(HistoryStore) -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::history::HistoryError>>,
{
    let runtime = super::runtime()?;
    let store = super::connect_history(&runtime, url, TIMEOUT, open)?;
    runtime.block_on(async {
        store.migrate().await?;
        let result = f(store.clone()).await;
        store.close().await;
        Ok(result?)
    })
}

fn print_table(silences: &[Silence]) -> std::io::Result<()> {
    if silences.is_empty() {
        return outln!("no silences in force");
    }
    let rows: Vec<[String; 5]> = silences
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.user_id.clone(),
                s.rule_label().to_string(),
                show_time(s.expires_at),
                s.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["ID", "USER", "RULE", "UNTIL", "REASON"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        outln!("{}", parts.join("  ").trim_end())
    };
    line(&header.map(String::from))?;
    for row in &rows {
        line(row)?;
    }
    Ok(())
}
