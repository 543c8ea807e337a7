//! The history of alerts and milestones in a database: PostgreSQL in production, a SQLite file
//! in the embedded mode, both through sqlx with runtime queries (no database needed to
//! compile).
//!
//! - [`backend`]: which database a URL names (PostgreSQL or SQLite);
//! - [`row`]: one output as a row — its CloudEvent as emitted, plus the columns people filter
//!   by;
//! - [`filter`]: what `vigil alerts list` asks for, and the SQL it becomes;
//! - [`store`]: connecting by URL scheme, migrations (`migrations/postgres`,
//!   `migrations/sqlite`, embedded), idempotent batch inserts, listing, lookup by id;
//! - [`writer`]: the streaming path's writer — its own thread, batches, retries with backoff
//!   while the database is away, a cheap status, a bounded drain on close.
//!
//! Writes are idempotent on the CloudEvent id (deterministic per rule, version, user, state
//! and occasion), so a retry, a replay or an overlapping batch never makes a second row.

pub mod backend;
pub mod filter;
pub mod row;
pub mod store;
pub mod writer;

pub use backend::Backend;
pub use filter::{parse_since, ListFilter, RowState};
pub use row::HistoryRow;
pub use store::HistoryStore;
pub use writer::{CloseReport, HistoryWriter, WriterOptions, WriterState, WriterStatus};

/// The embedded default: a SQLite file in the working directory, created when missing.
pub const DEFAULT_URL: &str = "sqlite:vigil-history.db";

/// What can go wrong with the history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The URL names no backend Vigil has.
    #[error(
        "history URL `{0}`: unknown scheme; use postgres://… (or postgresql://…) or sqlite:PATH"
    )]
    UnknownScheme(String),
    /// The URL has a known scheme but cannot be used.
    #[error("history URL: {0}")]
    BadUrl(String),
    // The sqlx errors are shown, not chained as sources: sqlx repeats its source in its own
    // message, and `{:#}` would print everything twice.
    /// A command that only reads found no SQLite file at the path (it creates none).
    #[error(
        "history database {} does not exist (check the path; `vigil run` or `vigil migrate` \
         creates it)",
        .0.display()
    )]
    Missing(std::path::PathBuf),
    /// The database refused or could not be reached.
    #[error("history database: {0}")]
    Database(sqlx::Error),
    /// Applying the migrations failed.
    #[error("history migrations: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    /// One output or stored row could not be mapped.
    #[error("history row {id}: {message}")]
    Row { id: String, message: String },
    /// A database operation took longer than allowed.
    #[error("history database: no answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The writer has stopped and takes no more rows.
    #[error("the history writer is closed")]
    Closed,
    /// The writer's thread or runtime could not start.
    #[error("cannot start the history writer: {0}")]
    Start(std::io::Error),
}

impl From<sqlx::Error> for HistoryError {
    fn from(e: sqlx::Error) -> Self {
        HistoryError::Database(e)
    }
}

impl From<sqlx::migrate::MigrateError> for HistoryError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        HistoryError::Migrate(e)
    }
}

/// Hides the password of a database URL, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://vigil:secret@db:5432/vigil?sslmode=require"),
            "postgres://vigil:***@db:5432/vigil?sslmode=require"
        );
        assert_eq!(redact_url("postgres://db/vigil"), "postgres://db/vigil");
        assert_eq!(
            redact_url("sqlite:vigil-history.db"),
            "sqlite:vigil-history.db"
        );
    }
}
