//! `vigil import`: vendor exports to Vigil events.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(subcommand)]
    source: ImportSource,
}

#[derive(Subcommand, Debug)]
enum ImportSource {
    /// A WHOOP "physiological_cycles" CSV export.
    Whoop {
        /// The CSV file.
        file: PathBuf,
        /// The user id to give the events (not blank, no control characters or surrounding
        /// whitespace).
        #[arg(long, value_parser = super::args::whoop_user)]
        user: String,
        /// Where to write the events (JSON lines); `-` for stdout.
        #[arg(long, default_value = "-")]
        output: String,
    },
}

pub fn run(args: ImportArgs) -> anyhow::Result<u8> {
    match args.source {
        ImportSource::Whoop { file, user, output } => {
            let import = crate::import::whoop::import_whoop_file(&file, &user)
                .with_context(|| format!("importing {}", file.display()))?;
            let mut out: Box<dyn Write> = if output == "-" {
                Box::new(BufWriter::new(io::stdout().lock()))
            } else {
                Box::new(BufWriter::new(
                    std::fs::File::create(&output)
                        .with_context(|| format!("cannot create {output}"))?,
                ))
            };
            for event in &import.events {
                serde_json::to_writer(&mut out, &event.to_json())?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            for (line, reason) in &import.skipped_rows {
                eprintln!("{}:{line}: skipped: {reason}", file.display());
            }
            eprintln!("{} rows, {} events", import.rows, import.events.len());
            Ok(0)
        }
    }
}
