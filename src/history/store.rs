//! The history database: connecting by URL scheme, migrations, idempotent inserts, reads.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migrate, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Postgres, QueryBuilder, Row, Sqlite};

use super::backend::Backend;
use super::filter::{columns, Bind, ListFilter};
use super::row::{parse_night, parse_sqlite_time, sqlite_time, HistoryRow};
use super::HistoryError;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// Rows per INSERT: 12 values each stays far below both backends' limit on bound values
/// (SQLite 32 766, PostgreSQL 65 535).
const INSERT_CHUNK: usize = 1_000;

const INSERT_COLUMNS: &str = "INSERT INTO history (id, event_type, kind, rule_id, rule_version, \
     user_id, time, night, state, severity, silenced, event) ";

/// The migrations this build carries for `backend`.
fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Postgres => &POSTGRES_MIGRATIONS,
        Backend::Sqlite => &SQLITE_MIGRATIONS,
    }
}

/// How the applied migrations compare with the ones this build carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Versions this build has and the database has not applied yet.
    pub pending: Vec<i64>,
    /// Applied versions whose file changed since (checksum differs).
    pub modified: Vec<i64>,
    /// Applied versions this build does not know: the database is newer than the binary.
    pub unknown: Vec<i64>,
    /// A migration that started and did not finish.
    pub dirty: Option<i64>,
}

impl MigrationStatus {
    /// True when the schema is exactly what this build expects.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty()
            && self.modified.is_empty()
            && self.unknown.is_empty()
            && self.dirty.is_none()
    }
}

/// A connection pool to the history database.
#[derive(Clone, Debug)]
pub enum HistoryStore {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl HistoryStore {
    /// Connects to `url` (a SQLite file is created when missing), waiting at most `timeout`
    /// for a connection. Does not migrate: see [`HistoryStore::migrate`].
    pub async fn connect(url: &str, timeout: Duration) -> Result<HistoryStore, HistoryError> {
        Self::open(url, timeout, true).await
    }

    /// [`HistoryStore::connect`] for commands that read what is stored: a SQLite file that
    /// does not exist is [`HistoryError::Missing`], never created, so a mistyped path is named
    /// instead of answered with an empty history (and an empty file left behind).
    pub async fn connect_existing(
        url: &str,
        timeout: Duration,
    ) -> Result<HistoryStore, HistoryError> {
        Self::open(url, timeout, false).await
    }

    async fn open(
        url: &str,
        timeout: Duration,
        create: bool,
    ) -> Result<HistoryStore, HistoryError> {
        match Backend::from_url(url)? {
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(|e| HistoryError::BadUrl(e.to_string()))?;
                let pool = PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(timeout)
                    .connect_with(options)
                    .await?;
                Ok(HistoryStore::Postgres(pool))
            }
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|e| HistoryError::BadUrl(e.to_string()))?;
                // An in-memory database (`sqlite::memory:`, `?mode=memory`) has no file to
                // find, and is new whatever `create` says.
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                let file = options.get_filename();
                if !create && !in_memory && !file.is_file() {
                    return Err(HistoryError::Missing(file.to_path_buf()));
                }
                let options = options
                    .create_if_missing(create)
                    // WAL: `vigil alerts list` can read while a run writes.
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(timeout);
                // One connection: one writer per process anyway, and `sqlite::memory:` is one
                // database per connection.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(timeout)
                    .connect_with(options)
                    .await?;
                Ok(HistoryStore::Sqlite(pool))
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            HistoryStore::Postgres(_) => Backend::Postgres,
            HistoryStore::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Applies the migrations this build carries that the database lacks; a no-op on an
    /// up-to-date database.
    pub async fn migrate(&self) -> Result<(), HistoryError> {
        match self {
            HistoryStore::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
            HistoryStore::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Compares the applied migrations with this build's, without changing anything (for
    /// `vigil health`).
    pub async fn migrations_current(&self) -> Result<MigrationStatus, HistoryError> {
        let migrator = migrator(self.backend());
        let applied = match self {
            HistoryStore::Postgres(pool) => {
                let exists: bool =
                    sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                        .fetch_one(pool)
                        .await?;
                if exists {
                    let mut conn = pool.acquire().await?;
                    Some((
                        conn.list_applied_migrations().await?,
                        conn.dirty_version().await?,
                    ))
                } else {
                    None
                }
            }
            HistoryStore::Sqlite(pool) => {
                let exists: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM sqlite_master \
                     WHERE type = 'table' AND name = '_sqlx_migrations'",
                )
                .fetch_one(pool)
                .await?;
                if exists > 0 {
                    let mut conn = pool.acquire().await?;
                    Some((
                        conn.list_applied_migrations().await?,
                        conn.dirty_version().await?,
                    ))
                } else {
                    None
                }
            }
        };
        let (applied, dirty) = applied.unwrap_or_default();
        let mut status = MigrationStatus {
            dirty,
            ..Default::default()
        };
        let known: Vec<_> = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .collect();
        for m in &known {
            match applied.iter().find(|a| a.version == m.version) {
                None => status.pending.push(m.version),
                Some(a) if a.checksum != m.checksum => status.modified.push(m.version),
                Some(_) => {}
            }
        }
        for a in &applied {
            if !known.iter().any(|m| m.version == a.version) {
                status.unknown.push(a.version);
            }
        }
        Ok(status)
    }

    /// Stores `rows`, skipping any whose id is already there (also within `rows`). Returns how
    /// many rows are new.
    pub async fn insert(&self, rows: &[HistoryRow]) -> Result<u64, HistoryError> {
        let mut inserted = 0;
        for chunk in rows.chunks(INSERT_CHUNK) {
            inserted += match self {
                HistoryStore::Postgres(pool) => {
                    let mut q = QueryBuilder::<Postgres>::new(INSERT_COLUMNS);
                    q.push_values(chunk, |mut b, row| {
                        b.push_bind(&row.id)
                            .push_bind(&row.event_type)
                            .push_bind(&row.kind)
                            .push_bind(&row.rule_id)
                            .push_bind(row.rule_version)
                            .push_bind(&row.user_id)
                            .push_bind(row.time)
                            .push_bind(row.night)
                            .push_bind(row.state.as_deref())
                            .push_bind(&row.severity)
                            .push_bind(row.silenced)
                            .push_bind(&row.event)
                            .push_unseparated("::json");
                    });
                    q.push(" ON CONFLICT (id) DO NOTHING");
                    q.build().execute(pool).await?.rows_affected()
                }
                HistoryStore::Sqlite(pool) => {
                    let mut q = QueryBuilder::<Sqlite>::new(INSERT_COLUMNS);
                    q.push_values(chunk, |mut b, row| {
                        b.push_bind(&row.id)
                            .push_bind(&row.event_type)
                            .push_bind(&row.kind)
                            .push_bind(&row.rule_id)
                            .push_bind(row.rule_version)
                            .push_bind(&row.user_id)
                            .push_bind(sqlite_time(&row.time))
                            .push_bind(row.night.map(|n| n.format("%Y-%m-%d").to_string()))
                            .push_bind(row.state.as_deref())
                            .push_bind(&row.severity)
                            .push_bind(row.silenced)
                            .push_bind(&row.event);
                    });
                    q.push(" ON CONFLICT (id) DO NOTHING");
                    q.build().execute(pool).await?.rows_affected()
                }
            };
        }
        Ok(inserted)
    }

    /// The rows `filter` selects, newest first.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<HistoryRow>, HistoryError> {
        let (sql, binds) = filter.to_sql(self.backend());
        match self {
            HistoryStore::Postgres(pool) => {
                let mut q = sqlx::query(&sql);
                for bind in binds {
                    q = match bind {
                        Bind::Text(t) => q.bind(t),
                        Bind::Time(t) => q.bind(t),
                        Bind::Int(i) => q.bind(i),
                    };
                }
                q.fetch_all(pool).await?.iter().map(pg_row).collect()
            }
            HistoryStore::Sqlite(pool) => {
                let mut q = sqlx::query(&sql);
                for bind in binds {
                    q = match bind {
                        Bind::Text(t) => q.bind(t),
                        Bind::Time(t) => q.bind(sqlite_time(&t)),
                        Bind::Int(i) => q.bind(i),
                    };
                }
                q.fetch_all(pool).await?.iter().map(sqlite_row).collect()
            }
        }
    }

    /// The row with this CloudEvent id.
    pub async fn show(&self, id: &str) -> Result<Option<HistoryRow>, HistoryError> {
        let sql = format!(
            "SELECT {} FROM history WHERE id = $1",
            columns(self.backend())
        );
        match self {
            HistoryStore::Postgres(pool) => sqlx::query(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(pg_row)
                .transpose(),
            HistoryStore::Sqlite(pool) => sqlx::query(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(sqlite_row)
                .transpose(),
        }
    }

    /// How many rows the history holds.
    pub async fn count(&self) -> Result<u64, HistoryError> {
        let n: i64 = match self {
            HistoryStore::Postgres(pool) => {
                sqlx::query_scalar("SELECT count(*) FROM history")
                    .fetch_one(pool)
                    .await?
            }
            HistoryStore::Sqlite(pool) => {
                sqlx::query_scalar("SELECT count(*) FROM history")
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Closes every connection, waiting for queries in flight.
    pub async fn close(&self) {
        match self {
            HistoryStore::Postgres(pool) => pool.close().await,
            HistoryStore::Sqlite(pool) => pool.close().await,
        }
    }
}

fn pg_row(row: &PgRow) -> Result<HistoryRow, HistoryError> {
    Ok(HistoryRow {
        id: row.try_get("id")?,
        event_type: row.try_get("event_type")?,
        kind: row.try_get("kind")?,
        rule_id: row.try_get("rule_id")?,
        rule_version: i64::from(row.try_get::<i32, _>("rule_version")?),
        user_id: row.try_get("user_id")?,
        time: row.try_get("time")?,
        night: row.try_get("night")?,
        state: row.try_get("state")?,
        severity: row.try_get("severity")?,
        silenced: row.try_get("silenced")?,
        event: row.try_get("event")?,
    })
}

fn sqlite_row(row: &SqliteRow) -> Result<HistoryRow, HistoryError> {
    let id: String = row.try_get("id")?;
    let time: String = row.try_get("time")?;
    let night: Option<String> = row.try_get("night")?;
    Ok(HistoryRow {
        time: parse_sqlite_time(&id, &time)?,
        night: night.map(|n| parse_night(&id, &n)).transpose()?,
        event_type: row.try_get("event_type")?,
        kind: row.try_get("kind")?,
        rule_id: row.try_get("rule_id")?,
        rule_version: row.try_get("rule_version")?,
        user_id: row.try_get("user_id")?,
        state: row.try_get("state")?,
        severity: row.try_get("severity")?,
        silenced: row.try_get("silenced")?,
        event: row.try_get("event")?,
        id,
    })
}
