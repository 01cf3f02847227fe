-- Rampart control-plane schema, version 5: scheduled jobs and their runs.

-- A command an app runs on a schedule, in a one-off container of its live
-- release. `command` is the JSON array of its arguments.
CREATE TABLE cron_jobs (
    id           TEXT PRIMARY KEY,
    app_id       TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    schedule     TEXT NOT NULL,
    command      TEXT NOT NULL,
    timeout_secs INTEGER NOT NULL CHECK (timeout_secs > 0),
    next_run_at  TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL
) STRICT;
CREATE INDEX cron_jobs_by_app ON cron_jobs (app_id);

-- What each run did. `skipped` runs were due while the previous one still
-- ran (or the app had no live release).
CREATE TABLE cron_runs (
    id          INTEGER PRIMARY KEY,
    job_id      TEXT NOT NULL,
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'failed', 'timed_out', 'skipped')),
    status      INTEGER,
    duration_ms INTEGER NOT NULL CHECK (duration_ms >= 0),
    detail      TEXT NOT NULL
) STRICT;
CREATE INDEX cron_runs_by_app ON cron_runs (app_id, id);
