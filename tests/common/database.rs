//! The PostgreSQL the history tests talk to, and stopping and starting it for the outage
//! tests.

#![allow(dead_code)] // each test binary uses part of it

use std::process::Command;

fn services_script() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/services")
}

/// `VIGIL_DATABASE_URL`, or `None` (after saying so) when the caller must skip. With `CI=true`
/// a missing database is a failure, never a skip.
pub fn database_url() -> Option<String> {
    match std::env::var("VIGIL_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but VIGIL_DATABASE_URL is not set: start PostgreSQL with \
                 `scripts/services up` and `source .services.env` (scripts/test does both)"
            );
            println!(
                "skipped (PostgreSQL): VIGIL_DATABASE_URL is not set (run `scripts/services up` \
                 and `set -a; source .services.env; set +a`)"
            );
            None
        }
    }
}

/// The PostgreSQL that `scripts/services` started from this checkout, which the test may stop
/// and start: its port, when it runs and is the one `url` points at.
pub fn managed_postgres_port(url: &str) -> Option<u16> {
    let port = managed_port("postgres")?;
    url.contains(&format!(":{port}/")).then_some(port)
}

/// The port `scripts/services` started `service` on from this checkout, when it runs.
pub fn managed_port(service: &str) -> Option<u16> {
    let out = Command::new(services_script())
        .arg("status")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(service))?;
    if !line.contains(" running ") {
        return None;
    }
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("127.0.0.1:"))?
        .parse()
        .ok()
}

pub fn services(args: &[&str]) {
    let out = Command::new(services_script())
        .args(args)
        .output()
        .expect("scripts/services runs");
    assert!(
        out.status.success(),
        "scripts/services {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts PostgreSQL again however the test ends, so the other tests find it running.
pub struct Restart(pub u16);

impl Restart {
    pub fn now(&self) {
        services(&["up", "postgres", "--pg-port", &self.0.to_string()]);
    }
}

impl Drop for Restart {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new(services_script())
                .args(["up", "postgres", "--pg-port", &self.0.to_string()])
                .output();
        }
    }
}

/// Creates `schema` in `base`'s database and returns `base` with it as the search path, so
/// that a test (and its migrations table) meets no other.
pub async fn create_schema(base: &str, schema: &str) -> String {
    let admin = sqlx::PgPool::connect(base)
        .await
        .expect("PostgreSQL answers");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .expect("create schema");
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// The port of the PostgreSQL an outage test may stop, or `None` (after saying so) when the
/// test must skip. With `CI=true` a PostgreSQL this checkout cannot stop is a failure.
pub fn outage_port(base: &str) -> Option<u16> {
    let port = managed_postgres_port(base);
    if port.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but the PostgreSQL of VIGIL_DATABASE_URL was not started by \
             scripts/services from this checkout: the outage test cannot stop it"
        );
        println!("skipped (outage): PostgreSQL is not managed by scripts/services here");
    }
    port
}
