-- Silences for deployments without Redis: `vigil silence add` writes them here and `vigil run`
-- honours them. With redis.url set they live in Redis instead (docs/redis.md).
CREATE TABLE silences (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    -- NULL: every rule
    rule_id    TEXT,
    reason     TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX silences_expires ON silences (expires_at);
