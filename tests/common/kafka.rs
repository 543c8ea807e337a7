//! The broker the Kafka tests and the `kafka_e2e` bench talk to.

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
