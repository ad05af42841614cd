-- 8: voicemail notifications (pypbx.notify): a mailbox's e-mail addresses; the durable outbox
ALTER TABLE voicemail_boxes ADD COLUMN email TEXT NOT NULL DEFAULT '';
CREATE TABLE notifications (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT NOT NULL,
    channel          TEXT NOT NULL CHECK (channel IN ('webhook', 'email')),
    target           TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    created_at       REAL NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL,
    sent_at          REAL,
    last_error       TEXT
);
CREATE INDEX notifications_due ON notifications(status, next_attempt_at);
