-- 1: extensions, registrations, security events, meta
CREATE TABLE extensions (
    number      TEXT PRIMARY KEY,
    name        TEXT NOT NULL DEFAULT '',
    realm       TEXT NOT NULL,
    ha1_md5     TEXT NOT NULL,
    ha1_sha256  TEXT NOT NULL,
    enabled     INTEGER NOT NULL DEFAULT 1,
    created_at  REAL,
    updated_at  REAL
);
CREATE TABLE registrations (
    aor              TEXT,
    contact          TEXT,
    instance         TEXT,
    reg_id           INTEGER,
    call_id          TEXT,
    cseq             INTEGER,
    expires_at       REAL,
    q                REAL,
    source_transport TEXT,
    source_host      TEXT,
    source_port      INTEGER,
    local            TEXT,
    user_agent       TEXT,
    registered_at    REAL,
    PRIMARY KEY (aor, contact)
);
CREATE INDEX registrations_expires_at ON registrations(expires_at);
CREATE TABLE security_events (
    ts     REAL,
    kind   TEXT,
    ip     TEXT,
    detail TEXT
);
CREATE INDEX security_events_ts ON security_events(ts);
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT
);
