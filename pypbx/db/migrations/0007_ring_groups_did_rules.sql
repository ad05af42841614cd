-- 7: ring groups (pypbx.groups); a DID's smart routing: known / new callers (pypbx.trunks)
CREATE TABLE ring_groups (
    name        TEXT PRIMARY KEY,
    members     TEXT NOT NULL DEFAULT '[]',
    strategy    TEXT NOT NULL DEFAULT 'all',
    ring_time   REAL NOT NULL DEFAULT 20,
    then_dest   TEXT NOT NULL DEFAULT '',
    created_at  REAL
);
ALTER TABLE dids ADD COLUMN known_dest TEXT;
ALTER TABLE dids ADD COLUMN new_dest TEXT;
