-- When a key last authenticated (`mfa-server api-key list`): written when a
-- server looks the key up in the database (not on calls it answers from its
-- key cache) and at most once a minute, so that a busy key costs a write a
-- minute, not one a call.
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
