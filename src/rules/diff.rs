//! What changed between two rule sets, rule by rule (by id): added, removed, version bumps,
//! and which aspects of a changed rule differ (see [`describe`](super::describe)).

use serde::Serialize;

use super::compiled::RuleSet;
use super::describe::{describe, Aspect};

/// The difference between two rule sets, rules sorted by id.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RuleSetDiff {
    pub rules: Vec<RuleDiff>,
}

/// One rule id and what happened to it.
#[derive(Clone, Debug, Serialize)]
pub struct RuleDiff {
    pub id: String,
    pub change: ChangeKind,
    /// `None` for an added rule.
    pub old_version: Option<u32>,
    /// `None` for a removed rule.
    pub new_version: Option<u32>,
    /// The aspects that differ (empty unless `change` is `changed`).
    pub changes: Vec<AspectChange>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    /// The definition or the version differs.
    Changed,
    Unchanged,
}

/// One aspect of a rule (`fire.when`, `stats.signal.window`, …) before and after; `None` where
/// the rule did not have it.
#[derive(Clone, Debug, Serialize)]
pub struct AspectChange {
    pub aspect: String,
    pub old: Option<String>,
    pub new: Option<String>,
    /// False for changes that need no new version (`source`).
    pub needs_bump: bool,
}

impl RuleDiff {
    /// True when the rule's definition changed in a way that needs a new version and its
    /// version did not go up: outputs of two different definitions would share ids.
    pub fn version_not_bumped(&self) -> bool {
        match (self.old_version, self.new_version) {
            (Some(old), Some(new)) => new <= old && self.changes.iter().any(|c| c.needs_bump),
            _ => false,
        }
    }
}

impl RuleSetDiff {
    pub fn count(&self, kind: ChangeKind) -> usize {
        self.rules.iter().filter(|r| r.change == kind).count()
    }

    /// The changed rules whose version was not bumped.
    pub fn not_bumped(&self) -> impl Iterator<Item = &RuleDiff> {
        self.rules.iter().filter(|r| r.version_not_bumped())
    }
}

/// Compares `old` and `new` rule by rule.
pub fn diff(old: &RuleSet, new: &RuleSet) -> RuleSetDiff {
    let mut ids: Vec<&str> = old
        .rules
        .iter()
        .chain(&new.rules)
        .map(|r| r.id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let rules = ids
        .into_iter()
        .map(|id| {
            let before = old.rules.iter().find(|r| r.id == id);
            let after = new.rules.iter().find(|r| r.id == id);
            let changes = match (before, after) {
                (Some(b), Some(a)) => aspect_changes(&describe(b, old), &describe(a, new)),
                _ => Vec::new(),
            };
            let change = match (before, after) {
                (None, _) => ChangeKind::Added,
                (_, None) => ChangeKind::Removed,
                (Some(b), Some(a)) if b.version != a.version || !changes.is_empty() => {
                    ChangeKind::Changed
                }
                _ => ChangeKind::Unchanged,
            };
            RuleDiff {
                id: id.to_string(),
                change,
                old_version: before.map(|r| r.version),
                new_version: after.map(|r| r.version),
                changes,
            }
        })
        .collect();
    RuleSetDiff { rules }
}

fn aspect_changes(
    old: &indexmap::IndexMap<String, Aspect>,
    new: &indexmap::IndexMap<String, Aspect>,
) -> Vec<AspectChange> {
    let mut changes = Vec::new();
    for (name, before) in old {
        match new.get(name) {
            Some(after) if after == before => {}
            after => changes.push(AspectChange {
                aspect: name.clone(),
                old: Some(before.text.clone()),
                new: after.map(|a| a.text.clone()),
                needs_bump: before.needs_bump,
            }),
        }
    }
    for (name, after) in new {
        if !old.contains_key(name) {
            changes.push(AspectChange {
                aspect: name.clone(),
                old: None,
                new: Some(after.text.clone()),
                needs_bump: after.needs_bump,
            });
        }
    }
    changes
}

/// A stable 64-bit fingerprint of what a rule set means (every rule's id, version and
/// aspects, FNV-1a): equal for two sets that differ only in comments, layout or file names.
/// Shown by `/readyz` and the reload logs so an operator can tell which set runs.
pub fn fingerprint(set: &RuleSet) -> u64 {
    let mut rules: Vec<_> = set.rules.iter().collect();
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |text: &str| {
        for b in text.bytes().chain([0x1f]) {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for rule in rules {
        feed(&rule.id);
        feed(&rule.version.to_string());
        for (name, aspect) in describe(rule, set) {
            feed(&name);
            feed(&aspect.text);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{compile_files, SourceFile};

    fn set(files: &[&str]) -> RuleSet {
        let sources: Vec<SourceFile> = files
            .iter()
            .enumerate()
            .map(|(i, text)| SourceFile {
                path: format!("r{i}.toml").into(),
                text: text.to_string(),
            })
            .collect();
        compile_files(&sources).unwrap_or_else(|d| panic!("{d:?}"))
    }

    fn rule(id: &str, version: u32, threshold: u32) -> String {
        format!(
            "id = \"{id}\"\nversion = {version}\nkind = \"alert\"\non = \"sleep_episode\"\n\
             source = \"product rule\"\n[fire]\nwhen = \"total_sleep_time < {threshold}\"\n"
        )
    }

    #[test]
    fn added_removed_bumped_and_unchanged_rules() {
        let old = set(&[&rule("a", 1, 360), &rule("b", 1, 360), &rule("c", 1, 360)]);
        let new = set(&[&rule("b", 2, 420), &rule("c", 1, 360), &rule("d", 1, 360)]);
        let d = diff(&old, &new);
        let kinds: Vec<(&str, ChangeKind)> =
            d.rules.iter().map(|r| (r.id.as_str(), r.change)).collect();
        assert_eq!(
            kinds,
            [
                ("a", ChangeKind::Removed),
                ("b", ChangeKind::Changed),
                ("c", ChangeKind::Unchanged),
                ("d", ChangeKind::Added)
            ]
        );
        let b = &d.rules[1];
        assert_eq!(b.changes.len(), 1);
        assert_eq!(b.changes[0].aspect, "fire.when");
        assert_eq!(b.changes[0].old.as_deref(), Some("total_sleep_time < 360"));
        assert_eq!(b.changes[0].new.as_deref(), Some("total_sleep_time < 420"));
        assert_eq!(d.not_bumped().count(), 0);
    }

    #[test]
    fn a_changed_rule_with_the_same_or_a_lower_version_is_not_bumped() {
        let old = set(&[&rule("a", 2, 360)]);
        for version in [1, 2] {
            let new = set(&[&rule("a", version, 420)]);
            let d = diff(&old, &new);
            assert_eq!(d.not_bumped().count(), 1, "version {version}");
        }
    }

    #[test]
    fn the_fingerprint_follows_the_meaning_not_the_layout() {
        let a = set(&[&rule("a", 1, 360), &rule("b", 1, 360)]);
        let b = set(&[
            &format!("# comment\n{}", rule("b", 1, 360)),
            &rule("a", 1, 360),
        ]);
        let c = set(&[&rule("a", 1, 361), &rule("b", 1, 360)]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }

    #[test]
    fn a_new_source_needs_no_new_version() {
        let old = set(&[&rule("a", 1, 360)]);
        let new = set(&[&rule("a", 1, 360).replace("product rule", "NSF 2017")]);
        let d = diff(&old, &new);
        assert_eq!(d.rules[0].change, ChangeKind::Changed);
        assert_eq!(d.not_bumped().count(), 0);
    }
}
