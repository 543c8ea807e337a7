//! `vigil migrate`: apply (or, with `--check`, compare) the history database's migrations.

use std::path::PathBuf;

use clap::Args;

use crate::history::redact_url;

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The history database (default: VIGIL_DATABASE_URL, else history.url of vigil.toml,
    /// else sqlite:vigil-history.db).
    #[arg(long, value_name = "URL")]
    history: Option<String>,
    /// The configuration file (default: ./vigil.toml when it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Change nothing: report whether the migrations are current; exit 7 when they are not.
    #[arg(long)]
    check: bool,
}

pub fn run(args: MigrateArgs) -> anyhow::Result<u8> {
    let url = match super::history_url(args.history, args.config.as_deref()) {
        Ok(url) => url,
        Err(code) => return Ok(code),
    };
    let shown = redact_url(&url);
    // `--check` changes nothing, so it does not create a missing SQLite file either.
    let open = if args.check {
        super::Open::Existing
    } else {
        super::Open::Create
    };
    let runtime = super::runtime()?;
    let store = super::connect_history(&runtime, &url, super::DB_TIMEOUT, open)?;
    runtime.block_on(async {
        let backend = store.backend().name();
        if !args.check {
            store.migrate().await?;
        }
        let status = store.migrations_current().await?;
        store.close().await;
        if status.is_current() {
            outln!("{backend} {shown}: migrations current")?;
            return Ok(0);
        }
        outln!("{backend} {shown}: migrations not current")?;
        for (what, versions) in [
            ("pending", &status.pending),
            ("changed since applied", &status.modified),
            (
                "unknown to this build (the database is newer)",
                &status.unknown,
            ),
        ] {
            if !versions.is_empty() {
                let list: Vec<String> = versions.iter().map(i64::to_string).collect();
                outln!("  {what}: {}", list.join(", "))?;
            }
        }
        if let Some(v) = status.dirty {
            outln!("  {v} started and did not finish: repair it by hand, then run again")?;
        }
        Ok(super::EXIT_NOT_CURRENT)
    })
}
