-- Every commit writes each page it changed to the WAL, and a row changes a
-- page of every index it is in: a sign-in wrote about 22 pages. Two of them
-- earned less than they cost:
-- * audit_events_by_time: the purge now finds old audit events by id, which
--   grows with time, reading only the rows it deletes (store/mod.rs,
--   PURGE_AUDIT); nothing else reads by time.
-- * device_nonces had a rowid, a second B-tree for its primary key and a
--   third for the expiry; WITHOUT ROWID makes the primary key the table.
DROP INDEX audit_events_by_time;

CREATE TABLE device_nonces_by_key (
    device_id  TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, nonce)
) WITHOUT ROWID;
INSERT INTO device_nonces_by_key (device_id, nonce, expires_at)
    SELECT device_id, nonce, expires_at FROM device_nonces;
DROP TABLE device_nonces;
ALTER TABLE device_nonces_by_key RENAME TO device_nonces;
CREATE INDEX device_nonces_by_expiry ON device_nonces (expires_at);
