-- Offline codes (RFC 6238). A tenant may turn them off.
ALTER TABLE tenants ADD COLUMN offline_codes_enabled BOOLEAN NOT NULL DEFAULT TRUE;

-- Each device's offline-code secret, sealed with the server's offline-code
-- key (AES-256-GCM: a 12-byte nonce, then the ciphertext and tag, with the
-- device id as associated data), and the last time step accepted for it:
-- a code is accepted only for a later step, in one statement, so that no
-- step signs in twice, whichever replica checks it. Deleting the device
-- deletes its secret.
CREATE TABLE offline_code_secrets (
    device_id  TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    sealed     BYTEA NOT NULL,
    last_step  BIGINT
);
