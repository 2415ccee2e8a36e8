-- Initial schema, the PostgreSQL twin of migrations/sqlite/0001_init.sql.
-- Times are milliseconds since the Unix epoch; every integer is BIGINT so
-- that both backends decode rows the same way (server/src/store/rows.rs).
-- Ids are UUID strings; secrets (API keys, activation codes) are stored only
-- as SHA-256 hashes.

CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    display_name  TEXT NOT NULL,
    number_digits BIGINT NOT NULL CHECK (number_digits BETWEEN 2 AND 6),
    created_at    BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    role       TEXT NOT NULL CHECK (role IN ('portal', 'admin')),
    key_hash   BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    user_id           TEXT NOT NULL,
    email             TEXT NOT NULL,
    blocked_until     BIGINT,
    terms_version     TEXT,
    terms_accepted_at BIGINT,
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE devices (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    public_key    BYTEA NOT NULL,
    push_platform TEXT NOT NULL,
    push_token    TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending_verification', 'active', 'revoked')),
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, user_id)
);
CREATE INDEX devices_by_user ON devices (tenant_id, user_id);

CREATE TABLE enrollments (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    code_hash    BYTEA NOT NULL UNIQUE,
    state        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    device_id    TEXT,
    challenge_id TEXT,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, user_id)
);
CREATE INDEX enrollments_by_user ON enrollments (tenant_id, user_id);
CREATE INDEX enrollments_by_challenge ON enrollments (challenge_id);
CREATE INDEX enrollments_open_by_expiry ON enrollments (expires_at)
    WHERE state IN ('waiting_for_scan', 'device_registered');

CREATE TABLE challenges (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    target_device_id TEXT,
    number           TEXT NOT NULL,
    nonce            BYTEA NOT NULL,
    state            TEXT NOT NULL,
    deny_reason      TEXT,
    answered_by      TEXT,
    application_name TEXT NOT NULL,
    client_ip        TEXT NOT NULL,
    location         TEXT NOT NULL,
    message          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    ended_at         BIGINT,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, user_id)
);
CREATE INDEX challenges_by_user ON challenges (tenant_id, user_id, created_at);
CREATE INDEX challenges_pending_by_expiry ON challenges (expires_at) WHERE state = 'pending';

-- Nonces of signed device requests, kept until their timestamp falls out of
-- the accepted window, so that a replayed request is refused.
CREATE TABLE device_nonces (
    device_id  TEXT NOT NULL,
    nonce      BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, nonce)
);
CREATE INDEX device_nonces_by_expiry ON device_nonces (expires_at);

-- Failed attempts counted per scope and key (e.g. activation by address).
-- The id lets concurrent sweepers on several replicas purge disjoint rows.
CREATE TABLE failed_attempts (
    id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope TEXT NOT NULL,
    key   TEXT NOT NULL,
    at    BIGINT NOT NULL
);
CREATE INDEX failed_attempts_by_key ON failed_attempts (scope, key, at);

CREATE TABLE audit_events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     TEXT,
    at            BIGINT NOT NULL,
    event_type    TEXT NOT NULL,
    user_id       TEXT,
    device_id     TEXT,
    challenge_id  TEXT,
    enrollment_id TEXT,
    detail        TEXT NOT NULL
);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, id);
