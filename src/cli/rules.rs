//! `vigil rules diff OLD NEW`: what changed between two rule sets, rule by rule, refusing a
//! changed rule whose version was not bumped.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::rules::diff::{diff, AspectChange, ChangeKind, RuleSetDiff};
use crate::rules::{load_rules, RuleSet};

#[derive(Args, Debug)]
pub struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Subcommand, Debug)]
enum RulesCommand {
    /// What changed from OLD to NEW (rule files or directories), rule by rule: added,
    /// removed, version bumps, and each changed condition, window, statistic, tier or
    /// message. Exit 8 when a changed rule kept its version, 3 when either set is invalid.
    Diff(DiffArgs),
}

#[derive(Args, Debug)]
struct DiffArgs {
    /// The rules before: a rule file or a directory.
    old: PathBuf,
    /// The rules after: a rule file or a directory.
    new: PathBuf,
    /// One JSON document instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: RulesArgs) -> anyhow::Result<u8> {
    match args.command {
        RulesCommand::Diff(args) => run_diff(args),
    }
}

fn run_diff(args: DiffArgs) -> anyhow::Result<u8> {
    let (old, new) = match (load(&args.old), load(&args.new)) {
        (Some(old), Some(new)) => (old, new),
        _ => return Ok(super::EXIT_INVALID_RULES),
    };
    let d = diff(&old, &new);
    if args.json {
        print_json(&d)?;
    } else {
        print_text(&d, &new)?;
    }
    let not_bumped: Vec<String> = d
        .not_bumped()
        .map(|r| {
            format!(
                "{} (version {}; bump it to {})",
                r.id,
                r.new_version.unwrap_or_default(),
                r.old_version.unwrap_or_default().saturating_add(1)
            )
        })
        .collect();
    if not_bumped.is_empty() {
        return Ok(0);
    }
    eprintln!(
        "error: {} changed rule(s) kept their version: {}. Outputs carry the rule's version \
         and their ids are made from it: a changed rule needs a higher `version`.",
        not_bumped.len(),
        not_bumped.join(", ")
    );
    Ok(super::EXIT_VERSION_NOT_BUMPED)
}

/// The rule set, or `None` after its diagnostics were printed as `vigil check` prints them.
fn load(path: &PathBuf) -> Option<RuleSet> {
    match load_rules(std::slice::from_ref(path)) {
        Ok(set) => Some(set),
        Err(failure) => {
            eprint!("{}", failure.render(super::color()));
            eprintln!(
                "{} problem(s) found in {}",
                failure.diagnostics.len(),
                path.display()
            );
            None
        }
    }
}

fn print_text(d: &RuleSetDiff, new: &RuleSet) -> anyhow::Result<()> {
    let version = |v: Option<u32>| v.map_or_else(String::new, |v| format!("v{v}"));
    let mut unchanged = Vec::new();
    for r in &d.rules {
        match r.change {
            ChangeKind::Added => {
                let (kind, file) = new
                    .rules
                    .iter()
                    .find(|rule| rule.id == r.id)
                    .map(|rule| (rule.kind.name(), rule.file.display().to_string()))
                    .unwrap_or_default();
                outln!(
                    "+ {} {} added ({kind}) — {file}",
                    r.id,
                    version(r.new_version)
                )?;
            }
            ChangeKind::Removed => outln!("- {} {} removed", r.id, version(r.old_version))?,
            ChangeKind::Changed => {
                let (mark, note) = if r.version_not_bumped() {
                    ("✗", ": changed without a version bump")
                } else if r.changes.is_empty() {
                    ("~", " (version bump only)")
                } else {
                    ("~", "")
                };
                outln!(
                    "{mark} {} {} → {}{note}",
                    r.id,
                    version(r.old_version),
                    version(r.new_version)
                )?;
                for c in &r.changes {
                    outln!("    {}", aspect_line(c))?;
                }
            }
            ChangeKind::Unchanged => unchanged.push(r.id.as_str()),
        }
    }
    if !unchanged.is_empty() {
        outln!("= unchanged: {}", unchanged.join(", "))?;
    }
    outln!(
        "{} added, {} removed, {} changed, {} unchanged",
        d.count(ChangeKind::Added),
        d.count(ChangeKind::Removed),
        d.count(ChangeKind::Changed),
        d.count(ChangeKind::Unchanged)
    )?;
    Ok(())
}

fn aspect_line(c: &AspectChange) -> String {
    let note = if c.needs_bump {
        ""
    } else {
        " (needs no new version)"
    };
    match (&c.old, &c.new) {
        (Some(old), Some(new)) => format!("{}: {old} → {new}{note}", c.aspect),
        (None, Some(new)) => format!("+ {}: {new}{note}", c.aspect),
        (Some(old), None) => format!("- {}: {old}{note}", c.aspect),
        (None, None) => c.aspect.clone(),
    }
}

fn print_json(d: &RuleSetDiff) -> anyhow::Result<()> {
    let not_bumped: Vec<&str> = d.not_bumped().map(|r| r.id.as_str()).collect();
    let doc = serde_json::json!({
        "rules": d.rules,
        "summary": {
            "added": d.count(ChangeKind::Added),
            "removed": d.count(ChangeKind::Removed),
            "changed": d.count(ChangeKind::Changed),
            "unchanged": d.count(ChangeKind::Unchanged),
            "version_not_bumped": not_bumped,
        },
    });
    outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}
