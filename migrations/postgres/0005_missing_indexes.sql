-- The sweeper deletes old failed attempts by time: without this index each
-- sweep scanned the table (device_nonces has had its index since 0001).
CREATE INDEX failed_attempts_by_time ON failed_attempts (at);
