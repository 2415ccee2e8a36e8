-- The sweeper deletes ended challenges, ended enrollments and audit events
-- once they are older than the configured retention: indexes for finding them.
CREATE INDEX challenges_by_end ON challenges (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX enrollments_by_expiry ON enrollments (expires_at);
CREATE INDEX audit_events_by_time ON audit_events (at);
