-- The purge now finds old audit events by id, which grows with time, reading
-- only the rows it deletes (store/mod.rs, PURGE_AUDIT); nothing else reads
-- audit events by time, so the index no longer earns the page every entry
-- writes to it.
DROP INDEX audit_events_by_time;
