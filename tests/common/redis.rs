//! The Redis the shared-state tests talk to, and stopping and starting it for the outage test.

#![allow(dead_code)] // each test binary uses part of it

use std::collections::BTreeMap;
use std::process::Command;

fn services_script() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/services")
}

/// `VIGIL_REDIS_URL`, or `None` (after saying so) when the caller must skip. With `CI=true` a
/// missing Redis is a failure, never a skip.
pub fn redis_url() -> Option<String> {
    match std::env::var("VIGIL_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but VIGIL_REDIS_URL is not set: start Redis with `scripts/services up` \
                 and `source .services.env` (scripts/test does both)"
            );
            println!("skipped (Redis): VIGIL_REDIS_URL is not set");
            None
        }
    }
}

/// The port of the Redis that `scripts/services` started from this checkout, when `url`
/// points at it: only that one may be stopped by a test.
pub fn outage_port(url: &str) -> Option<u16> {
    let port = Command::new(services_script())
        .arg("status")
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let line = text.lines().find(|l| l.starts_with("redis"))?.to_string();
            line.split_whitespace()
                .find_map(|w| w.strip_prefix("127.0.0.1:"))?
                .parse::<u16>()
                .ok()
        })
        .filter(|port| url.trim_end_matches('/').ends_with(&format!(":{port}")));
    if port.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but the Redis of VIGIL_REDIS_URL was not started by scripts/services from \
             this checkout: the outage test cannot stop it"
        );
        println!("skipped (outage): Redis is not managed by scripts/services here");
    }
    port
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

/// Starts the stopped Redis again: when told to, or when the test panics first.
pub struct Restart(pub u16);

impl Restart {
    pub fn now(&self) {
        services(&["up", "redis", "--redis-port", &self.0.to_string()]);
    }
}

impl Drop for Restart {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new(services_script())
                .args(["up", "redis", "--redis-port", &self.0.to_string()])
                .output();
        }
    }
}

/// Every field of a hash.
pub fn hgetall(url: &str, key: &str) -> BTreeMap<String, String> {
    let client = redis::Client::open(url).expect("redis URL");
    let mut c = client.get_connection().expect("Redis answers");
    redis::cmd("HGETALL")
        .arg(key)
        .query(&mut c)
        .expect("HGETALL")
}

/// The remaining time to live of a key, in seconds (-2: no such key, -1: no expiry).
pub fn ttl(url: &str, key: &str) -> i64 {
    let client = redis::Client::open(url).expect("redis URL");
    let mut c = client.get_connection().expect("Redis answers");
    redis::cmd("TTL").arg(key).query(&mut c).expect("TTL")
}
