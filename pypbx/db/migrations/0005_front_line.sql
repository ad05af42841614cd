-- 5: the front line (issue 5): opening hours, IVR menus, callers, voicemail, surveys
CREATE TABLE schedules (
    name        TEXT PRIMARY KEY,
    tz          TEXT NOT NULL,
    week        TEXT NOT NULL DEFAULT '{}',
    holidays    TEXT NOT NULL DEFAULT '[]',
    updated_at  REAL
);
CREATE TABLE ivr_menus (
    name        TEXT PRIMARY KEY,
    number      TEXT,
    config      TEXT NOT NULL,
    updated_at  REAL
);
CREATE UNIQUE INDEX ivr_menus_number ON ivr_menus(number) WHERE number IS NOT NULL;
CREATE TABLE callers (
    number        TEXT PRIMARY KEY,
    name          TEXT,
    patient_id    TEXT,
    first_seen    REAL,
    last_seen     REAL,
    calls         INTEGER NOT NULL DEFAULT 0,
    last_outcome  TEXT,
    last_agent    TEXT,
    last_call_id  TEXT,
    imported_at   REAL
);
CREATE TABLE voicemail_boxes (
    box           TEXT PRIMARY KEY,
    number        TEXT,
    on_no_answer  INTEGER NOT NULL DEFAULT 0,
    max_seconds   REAL NOT NULL DEFAULT 120,
    created_at    REAL
);
CREATE UNIQUE INDEX voicemail_boxes_number ON voicemail_boxes(number) WHERE number IS NOT NULL;
CREATE TABLE voicemail (
    id           TEXT PRIMARY KEY,
    box          TEXT NOT NULL,
    caller       TEXT,
    did          TEXT,
    call_id      TEXT,
    received_at  REAL NOT NULL,
    seconds      REAL,
    path         TEXT NOT NULL,
    heard        INTEGER NOT NULL DEFAULT 0,
    deleted_at   REAL
);
CREATE INDEX voicemail_box ON voicemail(box, received_at);
CREATE TABLE surveys (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id  TEXT NOT NULL,
    agent    TEXT,
    queue    TEXT,
    score    INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    ts       REAL NOT NULL
);
CREATE INDEX surveys_agent ON surveys(agent, ts);
