-- 12: the missed-caller worklist (pypbx.missed): one open callback task per number, the
-- missed calls merged into it, every callback attempt; per-queue automatic callback settings
CREATE TABLE missed_tasks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    number          TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'open',     -- open | closed
    reasons         TEXT NOT NULL DEFAULT '',         -- comma list, first seen first
    queue           TEXT,                             -- the latest missed call's queue
    service_line    TEXT,                             -- the latest missed call's service line
    opened_at       REAL NOT NULL,                    -- first missed call's end
    first_missed_at REAL NOT NULL,                    -- first missed call's start
    last_missed_at  REAL NOT NULL,
    missed_count    INTEGER NOT NULL DEFAULT 1,
    attempts        INTEGER NOT NULL DEFAULT 0,       -- the patient was dialled
    last_attempt_at REAL,
    claimed_by      TEXT,
    claimed_at      REAL,
    closed_at       REAL,
    outcome         TEXT,                             -- reached | no-answer | wrong-number | message-left | not-needed
    closed_by       TEXT,
    closing_call_id TEXT
);
CREATE UNIQUE INDEX missed_tasks_open ON missed_tasks(number) WHERE state = 'open';
CREATE INDEX missed_tasks_opened ON missed_tasks(opened_at);
CREATE TABLE missed_task_calls (
    task_id      INTEGER NOT NULL REFERENCES missed_tasks(id),
    call_id      TEXT NOT NULL,
    reason       TEXT NOT NULL,
    queue        TEXT,
    service_line TEXT,
    at           REAL NOT NULL,
    PRIMARY KEY (task_id, call_id)
);
CREATE INDEX missed_task_calls_call ON missed_task_calls(call_id);
CREATE TABLE missed_attempts (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id   INTEGER NOT NULL REFERENCES missed_tasks(id),
    started_at REAL NOT NULL,
    ended_at  REAL,
    by        TEXT NOT NULL,                           -- extension / agent, or 'acd'
    call_id   TEXT,                                    -- the callback's call record
    outcome   TEXT                                     -- reached | no-answer | busy | agent-no-answer | failed
);
CREATE INDEX missed_attempts_task ON missed_attempts(task_id, id);
ALTER TABLE queues ADD COLUMN auto_callback INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN callback_hours TEXT;
