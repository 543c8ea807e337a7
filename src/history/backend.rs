//! Which database a history URL names. Both the store and the SQL of `vigil alerts list`
//! differ by backend, so this is a module of its own that both use.

use super::{redact_url, HistoryError};

/// The database behind a history URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// `postgres://…` / `postgresql://…` or `sqlite:…`.
    pub fn from_url(url: &str) -> Result<Backend, HistoryError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "sqlite" => Ok(Backend::Sqlite),
            _ => Err(HistoryError::UnknownScheme(redact_url(url))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        }
    }
}
