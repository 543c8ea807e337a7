//! The Redis the tests talk to, and stopping and starting it for the outage tests. Include it
//! beside `database.rs` (as `mod database`), whose `scripts/services` helpers it uses.

#![allow(dead_code)] // each test binary uses part of it

use std::process::Command;

/// `VIGIL_REDIS_URL`, or `None` (after saying so) when the caller must skip. With `CI=true` a
/// missing Redis is a failure, never a skip.
pub fn redis_url() -> Option<String> {
    match std::env::var("VIGIL_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but VIGIL_REDIS_URL is not set: start Redis with \
                 `scripts/services up` and `source .services.env` (scripts/test does both)"
            );
            println!(
                "skipped (Redis): VIGIL_REDIS_URL is not set (run `scripts/services up` and \
                 `set -a; source .services.env; set +a`)"
            );
            None
        }
    }
}

/// The port of the Redis an outage test may stop (the one `url` points at, started by
/// `scripts/services` from this checkout), or `None` (after saying so) when the test must skip.
/// With `CI=true` a Redis this checkout cannot stop is a failure.
pub fn outage_port(url: &str) -> Option<u16> {
    let port = crate::database::managed_port("redis").filter(|port| {
        let tail = format!(":{port}");
        url.trim_end_matches('/').ends_with(&tail) || url.contains(&format!("{tail}/"))
    });
    if port.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but the Redis of VIGIL_REDIS_URL was not started by scripts/services \
             from this checkout: the outage test cannot stop it"
        );
        println!("skipped (outage): Redis is not managed by scripts/services here");
    }
    port
}

/// Starts Redis again however the test ends, so the other tests find it running.
pub struct Restart(pub u16);

impl Restart {
    pub fn now(&self) {
        crate::database::services(&["up", "redis", "--redis-port", &self.0.to_string()]);
    }
}

impl Drop for Restart {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new(
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/services"),
            )
            .args(["up", "redis", "--redis-port", &self.0.to_string()])
            .output();
        }
    }
}

/// Every field of a hash.
pub fn hgetall(url: &str, key: &str) -> std::collections::BTreeMap<String, String> {
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
