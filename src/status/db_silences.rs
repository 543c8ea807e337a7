//! Silences in the history database, for deployments without Redis (the embedded default).

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::Row;

use super::silence::Silence;
use crate::history::{HistoryError, HistoryStore};

fn text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub async fn add(store: &HistoryStore, s: &Silence) -> Result<(), HistoryError> {
    match store {
        HistoryStore::Postgres(pool) => {
            sqlx::query(
                "INSERT INTO silences (id, user_id, rule_id, reason, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&s.id)
            .bind(&s.user_id)
            .bind(&s.rule_id)
            .bind(&s.reason)
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(pool)
            .await?;
        }
        HistoryStore::Sqlite(pool) => {
            sqlx::query(
                "INSERT INTO silences (id, user_id, rule_id, reason, created_at, expires_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&s.id)
            .bind(&s.user_id)
            .bind(&s.rule_id)
            .bind(&s.reason)
            .bind(text(s.created_at))
            .bind(text(s.expires_at))
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// Removes a silence; `false` when there was none with this id. Expired silences are deleted
/// on the way.
pub async fn remove(
    store: &HistoryStore,
    id: &str,
    now: DateTime<Utc>,
) -> Result<bool, HistoryError> {
    let deleted = match store {
        HistoryStore::Postgres(pool) => {
            let n = sqlx::query("DELETE FROM silences WHERE id = $1 AND expires_at > $2")
                .bind(id)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM silences WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?;
            n
        }
        HistoryStore::Sqlite(pool) => {
            let n = sqlx::query("DELETE FROM silences WHERE id = ? AND expires_at > ?")
                .bind(id)
                .bind(text(now))
                .execute(pool)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM silences WHERE expires_at <= ?")
                .bind(text(now))
                .execute(pool)
                .await?;
            n
        }
    };
    Ok(deleted > 0)
}

/// The silences that have not expired at `now`, soonest to expire first.
pub async fn active(
    store: &HistoryStore,
    now: DateTime<Utc>,
) -> Result<Vec<Silence>, HistoryError> {
    const COLUMNS: &str =
        "SELECT id, user_id, rule_id, reason, created_at, expires_at FROM silences";
    let mut silences = Vec::new();
    match store {
        HistoryStore::Postgres(pool) => {
            let rows = sqlx::query(&format!(
                "{COLUMNS} WHERE expires_at > $1 ORDER BY expires_at, id"
            ))
            .bind(now)
            .fetch_all(pool)
            .await?;
            for row in rows {
                silences.push(Silence {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    rule_id: row.try_get("rule_id")?,
                    reason: row.try_get("reason")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                });
            }
        }
        HistoryStore::Sqlite(pool) => {
            let rows = sqlx::query(&format!(
                "{COLUMNS} WHERE expires_at > ? ORDER BY expires_at, id"
            ))
            .bind(text(now))
            .fetch_all(pool)
            .await?;
            for row in rows {
                let time = |column: &str| -> Result<DateTime<Utc>, HistoryError> {
                    let value: String = row.try_get(column)?;
                    value.parse().map_err(|e| HistoryError::Row {
                        id: value.clone(),
                        message: format!("silences.{column} is not RFC 3339: {e}"),
                    })
                };
                silences.push(Silence {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    rule_id: row.try_get("rule_id")?,
                    reason: row.try_get("reason")?,
                    created_at: time("created_at")?,
                    expires_at: time("expires_at")?,
                });
            }
        }
    }
    Ok(silences)
}
