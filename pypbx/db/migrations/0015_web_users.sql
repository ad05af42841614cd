-- 15: the web desk (issue 11, pypbx.web): its users (argon2 password hashes, a role, the agent
-- they are, a locale, the lockout counters), API tokens (only a SHA-256 of the token is kept)
-- and the audit log of every action taken through the web desk or the user/token commands.
CREATE TABLE web_users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent', 'wallboard')),
    agent_id TEXT,
    password_hash TEXT NOT NULL,
    locale TEXT NOT NULL DEFAULT 'en',
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until REAL,
    created_at REAL NOT NULL,
    password_changed_at REAL NOT NULL
);

CREATE TABLE web_tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent', 'wallboard')),
    agent_id TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    last_used_at REAL
);

CREATE TABLE web_audit (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT,
    ip TEXT,
    ok INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX web_audit_at ON web_audit(at);
