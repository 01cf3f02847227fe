-- What each release contains, the advisories imported, and the findings
-- people have accepted for a while.

-- One row per scanned release: its packages as JSON (a list of
-- rampart_vulns::inventory::Package).
CREATE TABLE release_inventories (
    app_id     TEXT NOT NULL,
    number     INTEGER NOT NULL,
    scanned_at TEXT NOT NULL,
    packages   TEXT NOT NULL,
    PRIMARY KEY (app_id, number),
    FOREIGN KEY (app_id, number) REFERENCES releases (app_id, number) ON DELETE CASCADE
) STRICT;

-- OSV records, one per id, as imported; `modified` decides whether a
-- re-import replaces one.
CREATE TABLE advisories (
    id       TEXT PRIMARY KEY,
    modified TEXT NOT NULL,
    record   TEXT NOT NULL
) STRICT;

-- Each import: when, what it changed, and the newest record it held (the
-- data's age is measured from the newest record of all imports).
CREATE TABLE advisory_imports (
    id            INTEGER PRIMARY KEY,
    imported_at   TEXT NOT NULL,
    imported_by   TEXT NOT NULL,
    new           INTEGER NOT NULL,
    updated       INTEGER NOT NULL,
    unchanged     INTEGER NOT NULL,
    refused       INTEGER NOT NULL,
    newest_record TEXT
) STRICT;

-- A finding an admin accepted, until it expires.
CREATE TABLE accepted_risks (
    app_id     TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    advisory   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (app_id, advisory)
) STRICT;
