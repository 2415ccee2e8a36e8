-- The OpenID Connect provider: its signing keys (shared by every replica, so
-- that each publishes and signs with the same ones), the relying parties
-- registered per tenant, and the authorizations in progress (stored so that
-- any replica serves the next step, and redeems a code exactly once).

-- RS256 keys, PKCS#1 DER, each with a self-signed X.509 certificate (DER)
-- that the JWKS carries as `x5c`, as Entra ID requires. A key is published
-- from `created_at` and signs from `signs_from`, so that relying parties
-- have seen it before it is used.
CREATE TABLE oidc_signing_keys (
    kid         TEXT PRIMARY KEY,
    private_key BYTEA NOT NULL,
    certificate BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    signs_from  BIGINT NOT NULL
);

-- `redirect_uris`: a JSON array, matched exactly. No `secret_hash`: a public
-- client, which must use PKCE. `entra`: for Entra ID's external
-- authentication method, the Entra tenant's settings (JSON: tenant id, app
-- id, issuer, JWKS URL or file) that its id_token_hint is checked against.
CREATE TABLE oidc_clients (
    client_id     TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    display_name  TEXT NOT NULL,
    secret_hash   BYTEA,
    redirect_uris TEXT NOT NULL,
    entra         TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX oidc_clients_by_tenant ON oidc_clients (tenant_id, created_at);

-- One sign-in through the provider, from the authorization request to the
-- code's redemption. `finished_at` is set once, when a code is issued or an
-- error returned, so that an authorization ends one way only.
-- `response_type` `id_token` is Entra ID's external authentication method:
-- `subject` holds the id_token_hint's subject (JSON: sub, oid, tid),
-- `acr` the class granted from those Entra ID asked for, and `hint_hash`
-- the hint's SHA-256, unique, so that a hint is used once.
CREATE TABLE oidc_authorizations (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    client_id       TEXT NOT NULL REFERENCES oidc_clients(client_id),
    user_id         TEXT NOT NULL,
    email           TEXT NOT NULL,
    pushed          BIGINT NOT NULL,
    response_type   TEXT NOT NULL,
    subject         TEXT,
    acr             TEXT,
    hint_hash       BYTEA UNIQUE,
    redirect_uri    TEXT NOT NULL,
    state           TEXT,
    nonce           TEXT,
    code_challenge  TEXT,
    challenge_id    TEXT,
    enrollment_id   TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    finished_at     BIGINT,
    auth_time       BIGINT,
    code_hash       BYTEA UNIQUE,
    code_expires_at BIGINT,
    code_used_at    BIGINT
);
CREATE INDEX oidc_authorizations_by_expiry ON oidc_authorizations (expires_at);
CREATE INDEX oidc_authorizations_by_user ON oidc_authorizations (tenant_id, user_id);
