//! The PostgreSQL the history tests talk to.

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
