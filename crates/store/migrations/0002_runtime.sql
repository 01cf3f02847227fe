-- Rampart control-plane schema, version 2: how apps run, their releases and
-- runtime events.

-- JSON of rampart_core::deploy::AppSettings; '{}' means all defaults.
ALTER TABLE apps ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
-- The release that serves the app (desired state), if any.
ALTER TABLE apps ADD COLUMN live_release INTEGER;

CREATE TABLE releases (
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    number      INTEGER NOT NULL CHECK (number > 0),
    -- The reference deployed (a tag Rampart built, or one the user named)
    -- and the image id it resolved to; replicas run the id.
    image       TEXT NOT NULL,
    image_id    TEXT NOT NULL,
    -- JSON of rampart_core::deploy::ReleaseConfig.
    config      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('deploying', 'live', 'failed', 'retired')),
    reason      TEXT,
    finished_at TEXT,
    PRIMARY KEY (app_id, number)
) STRICT;

-- Things that happened to an app's replicas: crash loops, repairs.
CREATE TABLE app_events (
    id      INTEGER PRIMARY KEY,
    app_id  TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    time    TEXT NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL
) STRICT;
CREATE INDEX app_events_by_app ON app_events (app_id, id);
