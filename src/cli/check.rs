//! `vigil check`: every problem in every rule file, at once.

use std::path::PathBuf;

use clap::Args;

use crate::rules::load_rules;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Rule files or directories (default: rules/).
    paths: Vec<PathBuf>,
}

pub fn run(args: CheckArgs) -> anyhow::Result<u8> {
    match load_rules(&super::rule_paths(args.paths)) {
        Ok(set) => {
            for rule in &set.rules {
                outln!(
                    "✓ {} v{} ({}) — {}",
                    rule.id,
                    rule.version,
                    rule.kind.name(),
                    rule.file.display()
                )?;
            }
            outln!("{} rules valid", set.rules.len())?;
            Ok(0)
        }
        Err(failure) => {
            eprint!("{}", failure.render(super::color()));
            eprintln!("{} problem(s) found", failure.diagnostics.len());
            Ok(super::EXIT_INVALID_RULES)
        }
    }
}
