//! The history database: reachable (or, for SQLite, the file present), migrations current.
//!
//! Both are degraded, never failing, when wrong: the engine runs without its history (the
//! writer keeps outputs queued and catches up), and `vigil run` applies migrations at start.
//! The check changes nothing: it neither creates a missing SQLite file nor migrates.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use super::{sentence, show_duration, Check, CheckBuilder, Figure};
use crate::history::store::MigrationStatus;
use crate::history::{redact_url, Backend, HistoryStore};

/// The database check, then the migrations check (skipped when the first did not pass).
pub fn checks(url: &str, timeout: Duration) -> Vec<Check> {
    let shown = redact_url(url);
    let check = Check::start("history", shown.clone());
    let backend = match Backend::from_url(url) {
        Ok(b) => b,
        Err(e) => return vec![check.degraded(sentence(&e)), skip_migrations("no database")],
    };
    match backend {
        Backend::Sqlite => {
            if let Err(why) = sqlite_file_present(url) {
                return vec![check.degraded(why), skip_migrations("no database file")];
            }
        }
        Backend::Postgres => {
            if let Err(why) = reachable(url, timeout) {
                return vec![
                    unreachable(check, &why),
                    skip_migrations("the database is unreachable"),
                ];
            }
        }
    }
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            return vec![
                check.degraded(format!("cannot start the async runtime: {e}")),
                skip_migrations("no connection"),
            ]
        }
    };
    runtime.block_on(async {
        let store = match tokio::time::timeout(timeout, HistoryStore::connect(url, timeout)).await {
            Ok(Ok(store)) => store,
            Ok(Err(e)) => {
                return vec![
                    unreachable(check, &sentence(&e)),
                    skip_migrations("the database is unreachable"),
                ]
            }
            Err(_) => {
                return vec![
                    unreachable(
                        check,
                        &format!("no answer within {}", show_duration(timeout)),
                    ),
                    skip_migrations("the database is unreachable"),
                ]
            }
        };
        let latency = check.elapsed();
        let name = backend.name();
        let reached = check
            .ok(format!("{name} reachable ({})", show_duration(latency)))
            .with_figure(Figure::latency(latency));
        let migrations = Check::start("history.migrations", "");
        let status = tokio::time::timeout(timeout, store.migrations_current()).await;
        let migrations = match status {
            Ok(Ok(status)) => migrations_check(migrations, &status),
            Ok(Err(e)) => migrations.degraded(format!("cannot be read: {}", sentence(&e))),
            Err(_) => migrations.degraded(format!(
                "cannot be read: no answer within {}",
                show_duration(timeout)
            )),
        };
        store.close().await;
        vec![reached, migrations]
    })
}

fn unreachable(check: CheckBuilder, why: &str) -> Check {
    let after = show_duration(check.elapsed());
    check.degraded(format!(
        "unreachable: {why} (after {after}); the engine keeps its outputs queued meanwhile"
    ))
}

fn skip_migrations(reason: &str) -> Check {
    Check::start("history.migrations", "").skipped(format!("skipped: {reason}"))
}

/// Whether the server of a PostgreSQL `url` accepts a TCP connection within `timeout`, or why
/// not ("connection refused", "cannot resolve …"), at once: sqlx's pool retries until its
/// timeout and then says only "pool timed out". `Ok` for other backends and Unix sockets,
/// which the client reaches (or not) with a clear error of its own. The commands that open
/// the history call this too, so they fail as fast and as clearly as this check.
pub fn reachable(url: &str, timeout: Duration) -> Result<(), String> {
    if !matches!(Backend::from_url(url), Ok(Backend::Postgres)) {
        return Ok(());
    }
    match postgres_address(url) {
        Some(address) => super::connect(&address, Instant::now() + timeout),
        None => Ok(()),
    }
}

/// `host:port` of a PostgreSQL URL, for the TCP check; `None` for a Unix socket (or a URL that
/// sqlx will reject with its own message).
fn postgres_address(url: &str) -> Option<String> {
    let options = PgConnectOptions::from_str(url).ok()?;
    let host = options.get_host();
    if options.get_socket().is_some() || host.starts_with('/') {
        return None;
    }
    // An IPv6 literal needs its brackets back to be parsed with its port.
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    Some(format!("{host}:{}", options.get_port()))
}

/// The SQLite file exists, or why not: `vigil run` would create it, so a missing file is
/// degraded, not failing; a health check must not create it.
fn sqlite_file_present(url: &str) -> Result<(), String> {
    let options =
        SqliteConnectOptions::from_str(url).map_err(|e| format!("bad SQLite URL: {e}"))?;
    let file: PathBuf = options.get_filename().to_path_buf();
    if file.as_os_str() == ":memory:" || file.is_file() {
        return Ok(());
    }
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    if dir.is_dir() {
        Err(format!(
            "{} does not exist yet (`vigil migrate` or `vigil run` creates it)",
            file.display()
        ))
    } else {
        Err(format!(
            "{} cannot be created: its directory {} does not exist",
            file.display(),
            dir.display()
        ))
    }
}

fn migrations_check(check: CheckBuilder, status: &MigrationStatus) -> Check {
    if status.is_current() {
        return check.ok("current");
    }
    let list = |v: &[i64]| v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let mut problems = Vec::new();
    if !status.pending.is_empty() {
        problems.push(format!("pending {}", list(&status.pending)));
    }
    if !status.modified.is_empty() {
        problems.push(format!("changed since applied {}", list(&status.modified)));
    }
    if !status.unknown.is_empty() {
        problems.push(format!(
            "unknown to this build {} (the database is newer)",
            list(&status.unknown)
        ));
    }
    if let Some(v) = status.dirty {
        problems.push(format!("{v} started and did not finish"));
    }
    let pending = status.pending.len() as u64;
    check
        .degraded(format!(
            "not current: {} (`vigil migrate` applies them; `vigil run` does at start)",
            problems.join("; ")
        ))
        .with_figure(Figure::count("pending", pending, "migrations"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Status;

    #[test]
    fn a_missing_sqlite_file_is_degraded_and_not_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("h.db");
        let url = format!("sqlite:{}", file.display());
        let checks = checks(&url, Duration::from_secs(5));
        assert_eq!(checks[0].status, Status::Degraded, "{checks:?}");
        assert!(
            checks[0].detail.contains("does not exist yet"),
            "{checks:?}"
        );
        assert_eq!(checks[1].status, Status::Skipped);
        assert!(!file.exists());
    }

    #[test]
    fn a_migrated_sqlite_file_is_healthy_and_a_fresh_one_is_not_current() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite:{}", dir.path().join("h.db").display());
        let rt = super::super::runtime().expect("runtime");
        let store = rt
            .block_on(HistoryStore::connect(&url, Duration::from_secs(5)))
            .expect("creates");
        rt.block_on(store.close());

        let fresh = checks(&url, Duration::from_secs(5));
        assert_eq!(fresh[0].status, Status::Ok, "{fresh:?}");
        assert_eq!(fresh[1].status, Status::Degraded, "{fresh:?}");
        assert!(
            fresh[1].detail.starts_with("not current: pending"),
            "{fresh:?}"
        );

        let store = rt
            .block_on(HistoryStore::connect(&url, Duration::from_secs(5)))
            .expect("opens");
        rt.block_on(store.migrate()).expect("migrates");
        rt.block_on(store.close());
        let migrated = checks(&url, Duration::from_secs(5));
        assert_eq!(migrated[1].status, Status::Ok, "{migrated:?}");
        assert_eq!(migrated[0].detail.split(' ').next(), Some("SQLite"));
    }

    #[test]
    fn postgres_urls_give_the_address_to_try() {
        let address = |url| postgres_address(url);
        assert_eq!(
            address("postgres://u:p@db.example:6543/v").as_deref(),
            Some("db.example:6543")
        );
        assert_eq!(
            address("postgres://u@127.0.0.1/v").as_deref(),
            Some("127.0.0.1:5432")
        );
        assert_eq!(address("postgres:///v?host=/run/postgresql"), None);
    }

    #[test]
    fn a_missing_directory_is_named() {
        let url = "sqlite:/nonexistent-vigil-dir/h.db";
        let checks = checks(url, Duration::from_secs(5));
        assert_eq!(checks[0].status, Status::Degraded);
        assert!(
            checks[0].detail.contains("/nonexistent-vigil-dir"),
            "{checks:?}"
        );
    }
}
