//! Which rule set a run is running, and how its last reload went: what `/readyz` shows under
//! `rules` (and `vigil health` reads from there).

use std::sync::Mutex;

use crate::rules::diff::fingerprint;
use crate::rules::RuleSet;
use crate::telemetry::Check;

/// Shared between the loader thread, the processing loop and the HTTP listener.
#[derive(Debug, Default)]
pub struct ReloadStatus {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// `8 rules, fingerprint 1a2b3c4d`.
    running: String,
    /// The last refusal, while the rule files are still what was refused: when and why.
    refused: Option<String>,
    applied: u64,
}

/// The 32 low bits of a set's fingerprint, as shown to people.
pub fn short_fingerprint(set: &RuleSet) -> String {
    format!("{:08x}", fingerprint(set) & 0xffff_ffff)
}

impl ReloadStatus {
    pub fn new(running: &RuleSet) -> ReloadStatus {
        let status = ReloadStatus::default();
        status.running(running);
        status
    }

    /// `set` runs from now on.
    pub fn running(&self, set: &RuleSet) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.running = format!(
                "{} rules, fingerprint {}",
                set.rules.len(),
                short_fingerprint(set)
            );
        }
    }

    /// A reload was applied.
    pub fn applied(&self, set: &RuleSet) {
        self.running(set);
        if let Ok(mut inner) = self.inner.lock() {
            inner.applied += 1;
        }
    }

    /// The rule files were refused, for `why` (one line).
    pub fn refused(&self, why: String) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.refused = Some(why);
        }
    }

    /// The rule files are acceptable again (applied, or back to the running set).
    pub fn clear_refusal(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.refused = None;
        }
    }

    /// The `rules` condition of `/readyz`: degraded while the files on disk are refused (the
    /// engine runs on with the previous set, which is not what the files say).
    pub fn readiness(&self) -> Check {
        let Ok(inner) = self.inner.lock() else {
            return Check::degraded("reload status unavailable");
        };
        let reloads = match inner.applied {
            0 => String::new(),
            n => format!("; {n} reload(s) applied"),
        };
        match &inner.refused {
            Some(why) => Check::degraded(format!(
                "running {}{reloads}; the rule files were refused: {why}",
                inner.running
            )),
            None => Check::ready(format!("running {}{reloads}", inner.running)),
        }
    }
}
