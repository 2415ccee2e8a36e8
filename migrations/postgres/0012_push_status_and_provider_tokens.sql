-- Why and since when a device has had no working push token (the provider
-- called it dead), so that operators and `ListDevices` can see it; cleared
-- when the app registers a new token.
ALTER TABLE devices ADD COLUMN push_token_invalid_at BIGINT;
ALTER TABLE devices ADD COLUMN push_token_invalid_reason TEXT NOT NULL DEFAULT '';
-- The devices without working push, counted on every metrics scrape.
CREATE INDEX devices_without_push ON devices (tenant_id, push_platform)
    WHERE state = 'active' AND push_token = '';

-- Provider tokens shared by every replica and kept across restarts (one row
-- per APNs signing key): Apple refuses a key whose tokens change more often
-- than every 20 minutes, so replicas take turns to sign instead of each
-- signing its own.
CREATE TABLE push_provider_tokens (
    name TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    issued_at BIGINT NOT NULL
);
