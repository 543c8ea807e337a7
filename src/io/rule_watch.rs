//! Rule reloads while `vigil run` runs: the rule paths are watched (`notify`, debounced) and
//! SIGHUP asks for a reload; a thread of its own loads and checks the whole new set, off the
//! processing loop, and hands a valid one over ([`RuleWatcher::take`]) for the loop to apply
//! between two events.
//!
//! A set is refused — logged with `vigil check`'s diagnostics, counted, shown by `/readyz` —
//! when it does not check, or when a rule changed without a new version (its outputs would
//! take the ids of another definition's). A set that means what the running one means
//! (comments, layout) is no reload.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use notify::{RecursiveMode, Watcher as _};

use super::reload_status::{short_fingerprint, ReloadStatus};
use crate::engine::ReloadReport;
use crate::rules::diff::{diff, fingerprint};
use crate::rules::{load_rules, RuleSet};

/// How long the files must stay quiet before they are read: an editor's save is several
/// events (write, rename, chmod), and a `cp -r` of a folder many.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// How often the loader looks at SIGHUP and at the stop flag while nothing happens.
const POLL: Duration = Duration::from_millis(200);

/// Where a run takes a new rule set from, between two events.
pub trait RuleSource {
    /// A checked set waiting to be applied, if any (taken: the next call says `None`).
    fn take(&self) -> Option<Arc<RuleSet>>;
    /// The set taken was applied, with this report.
    fn applied(&self, rules: &RuleSet, report: &ReloadReport);
}

/// Watches the rule paths and loads what changes on a thread of its own.
pub struct RuleWatcher {
    pending: Arc<Pending>,
    status: Arc<ReloadStatus>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    // Kept for as long as the watch lasts; dropping it ends the watch.
    _watcher: notify::RecommendedWatcher,
}

/// The set handed over and not taken yet. The loop asks at every line: the flag answers it
/// without taking the lock.
#[derive(Default)]
struct Pending {
    set: Mutex<Option<Arc<RuleSet>>>,
    ready: AtomicBool,
}

impl Pending {
    fn put(&self, set: Arc<RuleSet>) {
        if let Ok(mut slot) = self.set.lock() {
            *slot = Some(set);
        }
        self.ready.store(true, Ordering::Release);
    }

    fn take(&self) -> Option<Arc<RuleSet>> {
        if !self.ready.load(Ordering::Acquire) {
            return None;
        }
        // Cleared before the take: a set put meanwhile raises the flag again (or is taken
        // now, and the next look finds the slot empty).
        self.ready.store(false, Ordering::Release);
        self.set.lock().ok()?.take()
    }
}

impl RuleWatcher {
    /// Starts watching `paths` (files or folders, as given to `--rules`), `running` being
    /// the set the engine starts with.
    pub fn start(
        paths: Vec<PathBuf>,
        running: Arc<RuleSet>,
        status: Arc<ReloadStatus>,
    ) -> anyhow::Result<RuleWatcher> {
        let (tx, rx) = mpsc::channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let relevant = match &event {
                    Ok(event) => {
                        !event.kind.is_access() && event.paths.iter().any(|p| is_rule_path(p))
                    }
                    // A failed watch may have missed a change: look again.
                    Err(_) => true,
                };
                if relevant {
                    let _ = tx.send(());
                }
            })
            .context("cannot watch the rule files")?;
        for path in &paths {
            // A file is watched through its folder: editors save by writing a new file and
            // renaming it over the old one, which would end a watch on the old file.
            let (target, mode) = if path.is_dir() {
                (path.clone(), RecursiveMode::Recursive)
            } else {
                let parent = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
                (parent, RecursiveMode::NonRecursive)
            };
            watcher
                .watch(&target, mode)
                .with_context(|| format!("cannot watch {}", target.display()))?;
        }
        let hangup = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hangup))
            .context("cannot install the SIGHUP handler")?;
        let pending = Arc::new(Pending::default());
        let stop = Arc::new(AtomicBool::new(false));
        let loader = Loader {
            paths,
            current: running,
            pending: Arc::clone(&pending),
            status: Arc::clone(&status),
        };
        let thread = std::thread::Builder::new()
            .name("vigil-rule-watch".into())
            .spawn({
                let stop = Arc::clone(&stop);
                move || loader.run(&rx, &hangup, &stop)
            })
            .context("cannot start the rule watcher")?;
        Ok(RuleWatcher {
            pending,
            status,
            stop,
            thread: Some(thread),
            _watcher: watcher,
        })
    }
}

impl RuleSource for RuleWatcher {
    fn take(&self) -> Option<Arc<RuleSet>> {
        self.pending.take()
    }

    fn applied(&self, rules: &RuleSet, report: &ReloadReport) {
        self.status.applied(rules);
        crate::telemetry::metrics().rules_reload(true);
        crate::telemetry::metrics().set_rule_versions(rules);
        log_report(rules, report);
    }
}

impl Drop for RuleWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A `*.toml` rule file (rule tests excluded), or a folder (a folder renamed or removed).
fn is_rule_path(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    (name.ends_with(".toml") && !name.ends_with(crate::rules::load::TEST_SUFFIX))
        || path.extension().is_none()
}

struct Loader {
    paths: Vec<PathBuf>,
    /// The latest set handed over (or the one the run started with).
    current: Arc<RuleSet>,
    pending: Arc<Pending>,
    status: Arc<ReloadStatus>,
}

impl Loader {
    fn run(mut self, changes: &Receiver<()>, hangup: &AtomicBool, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let changed = match changes.recv_timeout(POLL) {
                Ok(()) => {
                    while changes.recv_timeout(DEBOUNCE).is_ok() {}
                    true
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => false,
            };
            let asked = hangup.swap(false, Ordering::Relaxed);
            if changed || asked {
                self.load(asked);
            }
        }
    }

    /// Loads and checks the rule files; a valid set that means something new is handed over.
    fn load(&mut self, asked: bool) {
        let shown = self
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let set = match load_rules(&self.paths) {
            Ok(set) => set,
            Err(failure) => {
                let first = failure
                    .diagnostics
                    .first()
                    .map(|d| d.to_string())
                    .unwrap_or_default();
                self.refuse(
                    &shown,
                    format!("{} problem(s), first: {first}", failure.diagnostics.len()),
                    &failure.render(false),
                );
                return;
            }
        };
        if fingerprint(&set) == fingerprint(&self.current) {
            self.status.clear_refusal();
            if asked {
                tracing::info!(rules = %shown, "Rule reload asked: the rules are unchanged.");
            }
            return;
        }
        let not_bumped: Vec<String> = diff(&self.current, &set)
            .not_bumped()
            .map(|r| {
                format!(
                    "rule {} changed but kept version {}",
                    r.id,
                    r.new_version.unwrap_or_default()
                )
            })
            .collect();
        if !not_bumped.is_empty() {
            let why = format!(
                "{}: a changed rule needs a higher `version`",
                not_bumped.join("; ")
            );
            self.refuse(&shown, why.clone(), &format!("{why}\n"));
            return;
        }
        let set = Arc::new(set);
        let fingerprint = short_fingerprint(&set);
        self.current = Arc::clone(&set);
        self.pending.put(set);
        self.status.clear_refusal();
        // Said once the set is handed over: an event sent after this line is decided by it.
        tracing::info!(
            rules = %shown,
            %fingerprint,
            "Rule set checked; it applies from the next event."
        );
    }

    fn refuse(&self, shown: &str, why: String, rendered: &str) {
        crate::telemetry::metrics().rules_reload(false);
        // Visible in `/readyz` before the log says so.
        self.status.refused(why.clone());
        tracing::error!(
            rules = %shown,
            reason = %why,
            "Rule reload refused; the running rules go on."
        );
        // The diagnostics as `vigil check` prints them, for the operator reading the log.
        eprint!("{rendered}");
    }
}

/// One line for the reload, and one per rule that did not simply keep its state.
fn log_report(rules: &RuleSet, report: &ReloadReport) {
    tracing::info!(
        fingerprint = %short_fingerprint(rules),
        rules = rules.rules.len(),
        keys = report.keys,
        series_kept = report.series_kept,
        series_rebuilt = report.series_rebuilt,
        series_fresh = report.series_fresh,
        series_dropped = report.series_dropped,
        alerts_closed = report.alerts_closed,
        "Rules reloaded."
    );
    for r in &report.rules {
        let version = |v: Option<u32>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        tracing::info!(
            rule = %r.id,
            from = %version(r.old_version),
            to = %version(r.new_version),
            state = %r.outcome.name(),
            statistics = %r.statistics_text(),
            reason = %r.reason,
            "Rule reloaded."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_put_is_taken_once_and_the_latest_wins() {
        let pending = Pending::default();
        assert!(pending.take().is_none());
        let (a, b) = (Arc::new(RuleSet::default()), Arc::new(RuleSet::default()));
        pending.put(Arc::clone(&a));
        pending.put(Arc::clone(&b));
        let taken = pending.take().expect("put");
        assert!(Arc::ptr_eq(&taken, &b));
        assert!(pending.take().is_none());
    }

    #[test]
    fn rule_files_and_folders_are_watched_not_tests_or_editor_files() {
        assert!(is_rule_path(Path::new("rules/hrv_drop.toml")));
        assert!(is_rule_path(Path::new("rules/nightly")));
        assert!(!is_rule_path(Path::new("rules/hrv_drop.test.toml")));
        assert!(!is_rule_path(Path::new("rules/hrv_drop.toml.swp")));
        assert!(!is_rule_path(Path::new("rules/.hrv_drop.toml~")));
    }
}
