-- A user's challenge history grows with every sign-in until retention purges
-- it. The device's pending list, the supersede on creation and a reset look
-- for the user's pending challenges, and the rate limit counts the user's
-- recent sign-ins; with only (tenant_id, user_id, created_at) to go on, each
-- of them read every row of the user's history. Now the first three read the
-- pending rows alone, and the count reads the index alone.
DROP INDEX challenges_by_user;
CREATE INDEX challenges_pending_by_user ON challenges (tenant_id, user_id, created_at) WHERE state = 'pending';
CREATE INDEX challenges_by_user_kind ON challenges (tenant_id, user_id, kind, created_at);
