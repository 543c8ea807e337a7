-- Silences of the embedded default (no Redis): `vigil silence add` writes them here and
-- `vigil run` honours them. With redis.url set they live in Redis instead (docs/redis.md).
CREATE TABLE silences (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL,
    -- NULL: every rule
    rule_id    TEXT,
    reason     TEXT,
    -- RFC 3339 in UTC with milliseconds, fixed width, so text order is time order
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE INDEX silences_expires ON silences (expires_at);
