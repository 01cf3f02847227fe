-- Rampart control-plane schema, version 9: a ban applies to one host (the
-- app where the client misbehaved) or, with an empty host, to every host
-- and the platform's API.
CREATE TABLE bans_scoped (
    net        TEXT NOT NULL,
    host       TEXT NOT NULL DEFAULT '',
    scenario   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (net, host)
) STRICT;
INSERT INTO bans_scoped (net, host, scenario, reason, created_by, created_at, expires_at)
    SELECT net, '', scenario, reason, created_by, created_at, expires_at FROM bans;
DROP TABLE bans;
ALTER TABLE bans_scoped RENAME TO bans;
