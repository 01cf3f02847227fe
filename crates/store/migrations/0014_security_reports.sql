-- Security reports received by the public intake, kept as received, and
-- what the team made of them.
CREATE TABLE security_reports (
    id           TEXT PRIMARY KEY,
    received_at  TEXT NOT NULL,
    host         TEXT NOT NULL,
    -- The sender's address; pseudonymised after [privacy] retention.
    client       TEXT NOT NULL,
    content_type TEXT NOT NULL,
    -- Exactly as received, whatever the bytes.
    body         BLOB NOT NULL,
    -- Read out of the body for listing; plain text.
    title        TEXT NOT NULL,
    contact      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('new', 'triaged', 'closed')),
    severity     TEXT,
    incident_id  TEXT,
    triaged_by   TEXT,
    triaged_at   TEXT,
    closed_by    TEXT,
    closed_at    TEXT,
    resolution   TEXT
) STRICT;
CREATE INDEX security_reports_by_time ON security_reports (received_at);
