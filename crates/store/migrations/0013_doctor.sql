-- What the self-audit and the access reviews need: when each API token was
-- last used, each doctor run's results, and each recorded access review.

-- Kept to the hour: an authenticated request writes it at most hourly.
ALTER TABLE api_tokens ADD COLUMN last_used_at TEXT;

-- One per `rampart doctor` (by hand or daily): the checks as JSON, a list
-- of wire::DoctorCheck.
CREATE TABLE doctor_runs (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    passed  INTEGER NOT NULL,
    warned  INTEGER NOT NULL,
    failed  INTEGER NOT NULL,
    checks  TEXT NOT NULL
) STRICT;
CREATE INDEX doctor_runs_by_time ON doctor_runs (at);

-- A quarterly access review: who looked, what they concluded, and the
-- users, roles, MFA state, grants and tokens they looked at (JSON).
CREATE TABLE access_reviews (
    id          TEXT PRIMARY KEY,
    at          TEXT NOT NULL,
    reviewer    TEXT NOT NULL,
    note        TEXT NOT NULL,
    snapshot    TEXT NOT NULL
) STRICT;
CREATE INDEX access_reviews_by_time ON access_reviews (at);
