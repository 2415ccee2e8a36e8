-- How each push notification fared: one row per challenge and device,
-- updated as the dispatcher retries, sends or gives up.
CREATE TABLE push_deliveries (
    challenge_id        TEXT NOT NULL REFERENCES challenges (id) ON DELETE CASCADE,
    device_id           TEXT NOT NULL,
    push_platform       TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('retrying', 'sent', 'failed', 'token_invalid')),
    attempts            BIGINT NOT NULL,
    provider_message_id TEXT NOT NULL,
    reason              TEXT NOT NULL,
    updated_at          BIGINT NOT NULL,
    PRIMARY KEY (challenge_id, device_id)
);
