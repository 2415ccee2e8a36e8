-- The sweeper deletes spent nonces and old failed attempts by time: without
-- these indexes each sweep scanned both tables.
CREATE INDEX device_nonces_by_expiry ON device_nonces (expires_at);
CREATE INDEX failed_attempts_by_time ON failed_attempts (at);
