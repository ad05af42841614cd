-- 2: call records (CDR), the append-only call-event log, recordings' metadata
CREATE TABLE calls (
    id              TEXT PRIMARY KEY,
    sip_call_id     TEXT,
    direction       TEXT NOT NULL,
    caller_number   TEXT,
    caller_name     TEXT,
    callee_number   TEXT,
    callee_name     TEXT,
    did             TEXT,
    service_line    TEXT,
    extension       TEXT,
    queue           TEXT,
    agent           TEXT,
    offered_at      REAL NOT NULL,
    answered_at     REAL,
    ended_at        REAL,
    ring_seconds    REAL,
    talk_seconds    REAL,
    hangup_side     TEXT,
    hangup_cause    TEXT,
    disposition     TEXT NOT NULL DEFAULT 'in_progress',
    flags           TEXT NOT NULL DEFAULT '',
    worker          TEXT
);
CREATE INDEX calls_offered_at ON calls(offered_at);
CREATE INDEX calls_caller ON calls(caller_number);
CREATE INDEX calls_callee ON calls(callee_number);
CREATE INDEX calls_disposition ON calls(disposition);
CREATE TABLE call_events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id  TEXT NOT NULL,
    ts       REAL NOT NULL,
    kind     TEXT NOT NULL,
    detail   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX call_events_call ON call_events(call_id, seq);
CREATE TRIGGER call_events_append_only_u BEFORE UPDATE ON call_events
    BEGIN SELECT RAISE(ABORT, 'call_events is append-only'); END;
CREATE TRIGGER call_events_append_only_d BEFORE DELETE ON call_events
    BEGIN SELECT RAISE(ABORT, 'call_events is append-only'); END;
CREATE TABLE recordings (
    call_id      TEXT PRIMARY KEY REFERENCES calls(id),
    path         TEXT NOT NULL,
    status       TEXT NOT NULL,
    seconds      REAL,
    sample_rate  INTEGER,
    channels     INTEGER,
    sha256       TEXT,
    bytes        INTEGER,
    created_at   REAL NOT NULL,
    detail       TEXT NOT NULL DEFAULT '{}'
);
