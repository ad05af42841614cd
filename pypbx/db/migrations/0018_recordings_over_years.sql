-- 18: recordings over years, alerts (issue 13, pypbx.retention, pypbx.alerts): the stored
-- format of a recording (wav, flac, opus), its legal hold, and its deletion kept in the books
-- (when, why); one row per alert episode (raised, reminded, resolved).
ALTER TABLE recordings ADD COLUMN format TEXT NOT NULL DEFAULT 'wav';
ALTER TABLE recordings ADD COLUMN held_at REAL;
ALTER TABLE recordings ADD COLUMN hold_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE recordings ADD COLUMN deleted_at REAL;
ALTER TABLE recordings ADD COLUMN deleted_reason TEXT NOT NULL DEFAULT '';
CREATE INDEX recordings_created ON recordings(created_at);

CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL DEFAULT '',
    message     TEXT NOT NULL,
    raised_at   REAL NOT NULL,
    notified_at REAL,
    resolved_at REAL
);
CREATE UNIQUE INDEX alerts_open ON alerts(kind, subject) WHERE resolved_at IS NULL;
