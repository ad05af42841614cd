-- 13: knowing who calls and why (issue 10)
-- the kind of caller of an inbound call, looked up once at arrival (pypbx.callers.CallerKind:
-- patient | known | new; NULL for internal and outbound calls)
ALTER TABLE calls ADD COLUMN caller_kind TEXT;
CREATE INDEX calls_caller_kind ON calls(caller_kind, offered_at);
-- reason codes the admin defines (pypbx.reasons); a removed code that calls used is
-- retired (retired_at set, digit freed) so the history keeps its label
CREATE TABLE reasons (
    code        TEXT PRIMARY KEY,
    label       TEXT NOT NULL,
    digit       TEXT,
    notify      TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL,
    updated_at  REAL,
    retired_at  REAL
);
CREATE UNIQUE INDEX reasons_digit ON reasons(digit) WHERE digit IS NOT NULL;
-- every reason set for a call (the last one counts); append-only
CREATE TABLE call_reasons (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id    TEXT NOT NULL,
    code       TEXT NOT NULL,
    agent      TEXT,
    extension  TEXT,
    via        TEXT NOT NULL,
    set_at     REAL NOT NULL
);
CREATE INDEX call_reasons_call ON call_reasons(call_id, seq);
CREATE INDEX call_reasons_code ON call_reasons(code);
-- the wrap-up code's "this extension's (agent's) last answered call"
CREATE INDEX calls_extension ON calls(extension, answered_at);
CREATE INDEX calls_agent ON calls(agent, answered_at);
CREATE TRIGGER call_reasons_append_only_u BEFORE UPDATE ON call_reasons
    BEGIN SELECT RAISE(ABORT, 'call_reasons is append-only'); END;
-- an unhappy survey score's recorded comment (pypbx.survey)
ALTER TABLE surveys ADD COLUMN comment_path TEXT;
ALTER TABLE surveys ADD COLUMN comment_seconds REAL;
