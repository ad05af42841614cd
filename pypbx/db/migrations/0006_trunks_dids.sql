-- 6: SIP trunks, DIDs (numbers patients dial), extensions' outbound permissions (pypbx.trunks)
CREATE TABLE trunks (
    name            TEXT PRIMARY KEY,
    host            TEXT NOT NULL,
    port            INTEGER NOT NULL DEFAULT 5060,
    transport       TEXT NOT NULL DEFAULT 'udp',
    username        TEXT,
    password        TEXT,
    auth_username   TEXT,
    domain          TEXT,
    register        INTEGER NOT NULL DEFAULT 0,
    expires         INTEGER NOT NULL DEFAULT 3600,
    priority        INTEGER NOT NULL DEFAULT 10,
    caller_id       TEXT,
    number_format   TEXT NOT NULL DEFAULT 'e164',
    strip_prefix    TEXT NOT NULL DEFAULT '',
    add_prefix      TEXT NOT NULL DEFAULT '',
    max_channels    INTEGER NOT NULL DEFAULT 0,
    inbound_ips     TEXT NOT NULL DEFAULT '[]',
    enabled         INTEGER NOT NULL DEFAULT 1,
    created_at      REAL,
    updated_at      REAL
);
CREATE TABLE dids (
    number        TEXT PRIMARY KEY,
    destination   TEXT NOT NULL,
    service_line  TEXT NOT NULL DEFAULT '',
    trunk         TEXT,
    created_at    REAL
);
CREATE TABLE extension_permissions (
    number        TEXT PRIMARY KEY,
    classes       TEXT NOT NULL,
    max_outbound  INTEGER,
    updated_at    REAL
);
