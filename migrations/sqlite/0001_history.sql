-- The history of alerts (firing and resolved) and milestones, one row per CloudEvent; the
-- same table as migrations/postgres, in SQLite's types.
--
-- `id` is the CloudEvent id, deterministic (UUIDv5 of rule, version, user, state, occasion):
-- writers insert with ON CONFLICT (id) DO NOTHING, so a retried or replayed output is the same
-- row, never a second one.
CREATE TABLE history (
    id           TEXT PRIMARY KEY NOT NULL,
    -- io.vigil.alert.firing, io.vigil.alert.resolved or io.vigil.milestone
    event_type   TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('alert', 'milestone')),
    rule_id      TEXT NOT NULL,
    rule_version INTEGER NOT NULL,
    user_id      TEXT NOT NULL,
    -- the CloudEvent's time in UTC, RFC 3339 with milliseconds ("2024-05-01T05:12:00.000Z"):
    -- fixed width, so text order is time order; its UTC offset stays in `event`
    time         TEXT NOT NULL,
    -- the user's local night (YYYY-MM-DD), for nightly rules
    night        TEXT,
    -- alerts only
    state        TEXT CHECK (state IN ('firing', 'resolved')),
    severity     TEXT NOT NULL,
    -- stored, but not published: a silence covered it
    silenced     INTEGER NOT NULL DEFAULT 0 CHECK (silenced IN (0, 1)),
    -- the CloudEvent byte for byte as it was emitted
    event        TEXT NOT NULL,
    recorded_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- What `vigil alerts list` filters by, newest first.
CREATE INDEX history_time ON history (time DESC);
CREATE INDEX history_user_time ON history (user_id, time DESC);
CREATE INDEX history_rule_time ON history (rule_id, time DESC);
