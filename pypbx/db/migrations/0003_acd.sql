-- 3: the ACD's configuration and history: queues, agents, agent events, queue events
-- (queue_log style), callbacks (one open request per number and queue), engine state
CREATE TABLE queues (
    name        TEXT PRIMARY KEY,
    config      TEXT NOT NULL,
    created_at  REAL,
    updated_at  REAL
);
CREATE TABLE agents (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL DEFAULT '',
    skills        TEXT NOT NULL DEFAULT '{}',
    wrap_up       REAL,
    extension     TEXT,
    state         TEXT NOT NULL DEFAULT 'logged_out',
    pause_reason  TEXT,
    state_since   REAL,
    created_at    REAL,
    updated_at    REAL
);
CREATE UNIQUE INDEX agents_extension ON agents(extension) WHERE extension IS NOT NULL;
CREATE TABLE agent_events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      REAL NOT NULL,
    agent   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX agent_events_agent ON agent_events(agent, seq);
CREATE INDEX agent_events_ts ON agent_events(ts);
CREATE TRIGGER agent_events_append_only_u BEFORE UPDATE ON agent_events
    BEGIN SELECT RAISE(ABORT, 'agent_events is append-only'); END;
CREATE TRIGGER agent_events_append_only_d BEFORE DELETE ON agent_events
    BEGIN SELECT RAISE(ABORT, 'agent_events is append-only'); END;
CREATE TABLE queue_events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts       REAL NOT NULL,
    queue    TEXT,
    call_id  TEXT,
    agent    TEXT,
    kind     TEXT NOT NULL,
    data     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX queue_events_ts ON queue_events(ts);
CREATE INDEX queue_events_queue ON queue_events(queue, ts);
CREATE INDEX queue_events_call ON queue_events(call_id, seq);
CREATE TRIGGER queue_events_append_only_u BEFORE UPDATE ON queue_events
    BEGIN SELECT RAISE(ABORT, 'queue_events is append-only'); END;
CREATE TRIGGER queue_events_append_only_d BEFORE DELETE ON queue_events
    BEGIN SELECT RAISE(ABORT, 'queue_events is append-only'); END;
CREATE TABLE callbacks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    number           TEXT NOT NULL,
    queue            TEXT NOT NULL,
    requested_at     REAL NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'dialing', 'done', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_attempt_at  REAL,
    call_id          TEXT,
    agent            TEXT,
    result           TEXT,
    merged_count     INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX callbacks_open ON callbacks(number, queue) WHERE status IN ('pending', 'dialing');
CREATE INDEX callbacks_status ON callbacks(status, requested_at);
CREATE TABLE acd_state (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  REAL
);
