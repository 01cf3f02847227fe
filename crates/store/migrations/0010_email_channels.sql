-- Email channels beside webhooks. SQLite cannot change a CHECK in place,
-- so both tables are rebuilt: the deliveries first (the child), so that
-- dropping the old channels cascades to nothing.
CREATE TABLE notify_channels_next (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('webhook', 'email')),
    target     TEXT NOT NULL,
    secret     BLOB NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
INSERT INTO notify_channels_next SELECT * FROM notify_channels;

CREATE TABLE deliveries_next (
    id              TEXT PRIMARY KEY,
    channel_id      TEXT NOT NULL REFERENCES notify_channels_next (id) ON DELETE CASCADE,
    alert_id        TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    done_at         TEXT
) STRICT;
INSERT INTO deliveries_next SELECT * FROM deliveries;

DROP TABLE deliveries;
DROP TABLE notify_channels;
-- Renaming the parent rewrites the child's reference to the new name.
ALTER TABLE notify_channels_next RENAME TO notify_channels;
ALTER TABLE deliveries_next RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
