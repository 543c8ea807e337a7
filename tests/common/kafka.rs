//! The broker the Kafka tests and the `kafka_e2e` bench talk to. The library's own Kafka
//! tests include this file too: what it holds must build without the `vigil` binary
//! (`kafka_sandbox.rs` holds what needs it).

/// `VIGIL_KAFKA_BROKERS`, or `None` (after saying so) when the caller must skip. With
/// `CI=true` a missing broker is a failure, never a skip.
pub fn brokers() -> Option<String> {
    match std::env::var("VIGIL_KAFKA_BROKERS") {
        Ok(b) if !b.trim().is_empty() => Some(b),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but VIGIL_KAFKA_BROKERS is not set: start the broker with \
                 `scripts/services up` and `source .services.env` (scripts/test does both)"
            );
            println!(
                "skipped: VIGIL_KAFKA_BROKERS is not set (run `scripts/services up` and \
                 `set -a; source .services.env; set +a`)"
            );
            None
        }
    }
}

/// Vigil's topics: their table in `vigil.toml`, and their default name.
#[allow(dead_code)] // not every user of this file provisions topics
pub const TOPICS: [(&str, &str); 8] = [
    ("health-events", "health-events"),
    ("biometric-updates", "biometric-updates"),
    ("alerts", "alerts"),
    ("milestones", "milestones"),
    ("dead-letter", "dead-letter"),
    ("late-events", "late-events"),
    ("silenced", "alerts-silenced"),
    ("state", "vigil-state"),
];
