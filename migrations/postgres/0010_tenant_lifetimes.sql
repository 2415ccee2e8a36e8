-- A tenant may set its own challenge and enrollment lifetimes (`mfa-server
-- tenant update --challenge-ttl 90s --enrollment-ttl 30m`), in milliseconds;
-- NULL keeps the server's `challenge_ttl` / `enrollment_ttl`. The domain
-- bounds them (server/src/domain/tenant.rs); the checks only keep nonsense out.
ALTER TABLE tenants ADD COLUMN challenge_ttl_ms BIGINT CHECK (challenge_ttl_ms > 0);
ALTER TABLE tenants ADD COLUMN enrollment_ttl_ms BIGINT CHECK (enrollment_ttl_ms > 0);
