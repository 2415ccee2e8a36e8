-- Indexes that the hot path and the sweeper were missing (PostgreSQL has had
-- the first since its 0001): completing an enrollment finds it by its
-- verification challenge, and the sweeper deletes spent nonces and old failed
-- attempts by time. Without them each of these scanned its whole table.
CREATE INDEX enrollments_by_challenge ON enrollments (challenge_id);
CREATE INDEX device_nonces_by_expiry ON device_nonces (expires_at);
CREATE INDEX failed_attempts_by_time ON failed_attempts (at);
