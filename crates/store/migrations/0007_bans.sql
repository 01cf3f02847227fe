-- Rampart control-plane schema, version 7: clients banned at the edge, by
-- the watch's detectors or by hand. A ban lasts until `expires_at`; rows
-- past it are purged.
CREATE TABLE bans (
    net        TEXT PRIMARY KEY,
    scenario   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;
