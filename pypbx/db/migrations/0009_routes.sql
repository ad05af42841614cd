-- 9: routing rules (pypbx.routing): named routes, each an ordered list of rules
CREATE TABLE routes (
    name        TEXT PRIMARY KEY,
    tz          TEXT NOT NULL DEFAULT 'UTC',
    created_at  REAL
);
CREATE TABLE route_rules (
    route        TEXT NOT NULL REFERENCES routes(name) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    conditions   TEXT NOT NULL DEFAULT '[]',
    destination  TEXT NOT NULL,
    options      TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (route, position)
);
