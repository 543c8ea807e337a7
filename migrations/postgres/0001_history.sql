-- The history of alerts (firing and resolved) and milestones, one row per CloudEvent.
--
-- `id` is the CloudEvent id, deterministic (UUIDv5 of rule, version, user, state, occasion):
-- writers insert with ON CONFLICT (id) DO NOTHING, so a retried or replayed output is the same
-- row, never a second one.
CREATE TABLE history (
    id           TEXT PRIMARY KEY,
    -- io.vigil.alert.firing, io.vigil.alert.resolved or io.vigil.milestone
    event_type   TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('alert', 'milestone')),
    rule_id      TEXT NOT NULL,
    rule_version INTEGER NOT NULL,
    user_id      TEXT NOT NULL,
    -- the CloudEvent's time; its UTC offset stays in `event`
    time         TIMESTAMPTZ NOT NULL,
    -- the user's local night, for nightly rules
    night        DATE,
    -- alerts only
    state        TEXT CHECK (state IN ('firing', 'resolved')),
    severity     TEXT NOT NULL,
    -- stored, but not published: a silence covered it
    silenced     BOOLEAN NOT NULL DEFAULT FALSE,
    -- json, not jsonb: the CloudEvent byte for byte as it was emitted (jsonb reorders keys)
    event        JSON NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- What `vigil alerts list` filters by, newest first.
CREATE INDEX history_time ON history (time DESC);
CREATE INDEX history_user_time ON history (user_id, time DESC);
CREATE INDEX history_rule_time ON history (rule_id, time DESC);
