-- Rampart control-plane schema, version 4: managed data. Each app's
-- database and media bucket, backup schedules and the results of backups, retention runs,
-- test restores and restores.

-- An app's database on the platform's PostgreSQL: the database and its
-- role share `name`; the role's password is sealed with the master key
-- (associated data binds it to the app id).
CREATE TABLE app_databases (
    app_id     TEXT PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    name       TEXT NOT NULL UNIQUE,
    password   BLOB NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

-- An app's media bucket on the S3 server, with the app's own key (the
-- secret sealed with the master key, bound to the app id).
CREATE TABLE app_media (
    app_id        TEXT PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    bucket        TEXT NOT NULL UNIQUE,
    iam_user      TEXT NOT NULL,
    access_key_id TEXT NOT NULL,
    secret        BLOB NOT NULL,
    created_at    TEXT NOT NULL
) STRICT;

CREATE TABLE backup_schedules (
    app_id            TEXT PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    every_secs        INTEGER NOT NULL CHECK (every_secs > 0),
    keep_last         INTEGER NOT NULL CHECK (keep_last >= 0),
    keep_daily        INTEGER NOT NULL CHECK (keep_daily >= 0),
    keep_weekly       INTEGER NOT NULL CHECK (keep_weekly >= 0),
    keep_monthly      INTEGER NOT NULL CHECK (keep_monthly >= 0),
    -- NULL: no scheduled test restore.
    verify_every_secs INTEGER CHECK (verify_every_secs > 0),
    next_backup_at    TEXT NOT NULL,
    next_verify_at    TEXT
) STRICT;

-- What backups did. `app` is the name at the time, so results outlive the
-- app they were about.
CREATE TABLE backup_results (
    id          INTEGER PRIMARY KEY,
    app         TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('backup', 'retention', 'verify', 'restore')),
    snapshot    TEXT,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    bytes       INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'failed')),
    detail      TEXT NOT NULL
) STRICT;
CREATE INDEX backup_results_by_app ON backup_results (app, id);
