-- Why and since when a device has had no working push token (the provider
-- called it dead), so that operators and `ListDevices` can see it; cleared
-- when the app registers a new token.
ALTER TABLE devices ADD COLUMN push_token_invalid_at INTEGER;
ALTER TABLE devices ADD COLUMN push_token_invalid_reason TEXT NOT NULL DEFAULT '';
-- The devices without working push, counted on every metrics scrape.
CREATE INDEX devices_without_push ON devices (tenant_id, push_platform)
    WHERE state = 'active' AND push_token = '';

-- Provider tokens shared by every server on this database and kept across
-- restarts (one row per APNs signing key): Apple refuses a key whose tokens
-- change more often than every 20 minutes.
CREATE TABLE push_provider_tokens (
    name TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    issued_at INTEGER NOT NULL
);
