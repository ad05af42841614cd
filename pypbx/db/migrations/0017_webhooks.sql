-- 17: call-event webhooks (issue 14, pypbx.webhooks): the endpoints the clinic's other systems
-- registered, which events each wants, its signing secret, and whether it is failing now.
-- Deliveries go through the notifications outbox (channel 'hook', target = the webhook's id).
CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    events TEXT NOT NULL,            -- comma-separated webhook event names
    secret TEXT NOT NULL DEFAULT '', -- HMAC-SHA256 key ('' = unsigned)
    created_at REAL NOT NULL,
    failing_since REAL,              -- the first failed attempt of the current failing episode
    last_error TEXT,
    last_ok_at REAL
);

-- the outbox gets the 'hook' channel (SQLite cannot change a CHECK in place: rebuild it)
CREATE TABLE notifications_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT NOT NULL,
    channel          TEXT NOT NULL CHECK (channel IN ('webhook', 'email', 'hook')),
    target           TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    created_at       REAL NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL,
    sent_at          REAL,
    last_error       TEXT
);
INSERT INTO notifications_new SELECT id, kind, channel, target, payload, status, created_at, attempts,
    next_attempt_at, sent_at, last_error FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_due ON notifications(status, next_attempt_at);
-- a webhook's next delivery (its oldest pending one) without scanning the outbox
CREATE INDEX notifications_by_target ON notifications(channel, target, status, id);
