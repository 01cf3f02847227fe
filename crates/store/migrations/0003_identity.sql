-- Rampart control-plane schema, version 3: passwords, invitations, MFA,
-- sessions, token roles and scopes, and per-app grants.

-- Argon2id PHC string; NULL until the user accepts their invitation.
ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT 'active'
    CHECK (status IN ('invited', 'active', 'removed'));
-- The TOTP seed, sealed with the master key; NULL when not enrolled.
ALTER TABLE users ADD COLUMN mfa_seed BLOB;
ALTER TABLE users ADD COLUMN mfa_enabled INTEGER NOT NULL DEFAULT 0;
-- The last TOTP time step accepted, so no code is accepted twice.
ALTER TABLE users ADD COLUMN mfa_last_step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN erased_at TEXT;

-- 'api' tokens are made by `tokens create`; 'session' tokens by a login.
ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'api'
    CHECK (kind IN ('api', 'session'));
-- A role below the user's, or NULL for the user's own.
ALTER TABLE api_tokens ADD COLUMN role TEXT
    CHECK (role IS NULL OR role IN ('owner', 'admin', 'developer', 'viewer'));
-- The one app a token may act on, or NULL for all the user may reach.
ALTER TABLE api_tokens ADD COLUMN app_id TEXT REFERENCES apps (id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;

-- Only the SHA-256 of an invitation token is kept.
CREATE TABLE invitations (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
) STRICT;

-- Single-use MFA recovery codes, hashed.
CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash    TEXT NOT NULL,
    used_at TEXT,
    PRIMARY KEY (user_id, hash)
) STRICT;

-- Apps a developer may act on.
CREATE TABLE app_grants (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    app_id  TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, app_id)
) STRICT;
