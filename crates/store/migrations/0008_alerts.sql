-- Rampart control-plane schema, version 8: alerts, the channels that carry
-- them to people, and the outbox of deliveries still to make.

-- One per condition while it fires (`key`: the rule and what it is about);
-- sightings while it fires add to `count`.
CREATE TABLE alerts (
    id          TEXT PRIMARY KEY,
    key         TEXT NOT NULL,
    rule        TEXT NOT NULL,
    severity    TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    app         TEXT,
    summary     TEXT NOT NULL,
    count       INTEGER NOT NULL CHECK (count > 0),
    first_at    TEXT NOT NULL,
    last_at     TEXT NOT NULL,
    notified_at TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
    resolved_at TEXT,
    acked_by    TEXT,
    acked_at    TEXT
) STRICT;
CREATE UNIQUE INDEX alerts_firing_by_key ON alerts (key) WHERE state = 'firing';
CREATE INDEX alerts_by_time ON alerts (first_at);

-- Where alerts go. `secret` is sealed under the master key.
CREATE TABLE notify_channels (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('webhook')),
    target     TEXT NOT NULL,
    secret     BLOB NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

-- Each message to each channel, kept until delivered (or given up on after
-- its deadline). `body` is fixed when the delivery is made.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    channel_id      TEXT NOT NULL REFERENCES notify_channels (id) ON DELETE CASCADE,
    alert_id        TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    done_at         TEXT
) STRICT;
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
