-- Incidents: what went wrong, who is on it, what was done, and what the
-- team will change so it does not happen again.

-- One per incident. `escalation` counts the steps taken along the
-- notification channels; `notified_at` is when the last step was told.
CREATE TABLE incidents (
    id           TEXT PRIMARY KEY,
    title        TEXT NOT NULL,
    severity     TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    state        TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'mitigated', 'resolved', 'reviewed')),
    app          TEXT,
    owner        TEXT,
    opened_by    TEXT NOT NULL,
    opened_at    TEXT NOT NULL,
    acked_at     TEXT,
    mitigated_at TEXT,
    resolved_at  TEXT,
    reviewed_at  TEXT,
    escalation   INTEGER NOT NULL DEFAULT 0,
    notified_at  TEXT NOT NULL,
    cause        TEXT,
    impact       TEXT
) STRICT;
CREATE INDEX incidents_by_time ON incidents (opened_at);

-- The timeline: every step, note, linked alert and escalation, in order.
CREATE TABLE incident_events (
    id          INTEGER PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    text        TEXT NOT NULL,
    link        TEXT
) STRICT;
CREATE INDEX incident_events_by_incident ON incident_events (incident_id, id);

-- The post-mortem's follow-up actions, tracked until done.
CREATE TABLE incident_actions (
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    number      INTEGER NOT NULL,
    text        TEXT NOT NULL,
    owner       TEXT NOT NULL,
    due         TEXT NOT NULL,
    done_at     TEXT,
    done_by     TEXT,
    PRIMARY KEY (incident_id, number)
) STRICT;

-- The audit log read by time range (incident timelines, evidence export).
CREATE INDEX audit_log_by_time ON audit_log (time);
