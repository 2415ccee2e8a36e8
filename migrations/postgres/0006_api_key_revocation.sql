-- Revoked API keys keep their row, so that the audit trail still names the
-- key's id; a key with revoked_at set no longer authenticates.
ALTER TABLE api_keys ADD COLUMN revoked_at BIGINT;
