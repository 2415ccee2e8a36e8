-- Device keys may be ECDSA P-256 as well as Ed25519 (the only algorithm
-- before, hence the default for existing devices); public_key holds the key
-- in its algorithm's wire encoding (32 or 65 bytes).
ALTER TABLE devices ADD COLUMN key_algorithm TEXT NOT NULL DEFAULT 'ed25519';
-- A tenant's device policy (`mfa-server tenant update`, AdminService
-- UpdateDevicePolicy): the key algorithms a device may enroll with,
-- comma-separated (NULL: every one), and the user verification methods of
-- which an approval needs one, comma-separated (NULL: none required).
ALTER TABLE tenants ADD COLUMN allowed_key_algorithms TEXT;
ALTER TABLE tenants ADD COLUMN user_verification TEXT;
