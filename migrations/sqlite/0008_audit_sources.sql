-- Audit entries name the client address a call came from (behind a trusted
-- load balancer, the one it forwarded). Failed authentications without
-- credentials are aggregated: one entry per kind, source and minute, whose
-- count grows, instead of an entry per call (`aggregate_key` names it). The
-- index is partial, so that the entries of their own (every sign-in writes
-- some) cost no index page.
ALTER TABLE audit_events ADD COLUMN client_address TEXT;
ALTER TABLE audit_events ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_events ADD COLUMN aggregate_key TEXT;
CREATE UNIQUE INDEX audit_events_aggregated ON audit_events (aggregate_key)
    WHERE aggregate_key IS NOT NULL;
