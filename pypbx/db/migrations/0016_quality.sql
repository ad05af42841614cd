-- 16: call quality review (issue 11, pypbx.quality): the clinic's checklist (an item changed
-- or removed is retired, so old reviews keep their labels), one review per recorded call
-- (the latest replaces the earlier; who scored it, when, the overall comment) and its answers
-- (yes/no per checklist item, the item's label kept as it was asked).
CREATE TABLE quality_items (
    id INTEGER PRIMARY KEY,
    position INTEGER NOT NULL,
    label TEXT NOT NULL,
    created_at REAL NOT NULL,
    retired_at REAL
);
CREATE UNIQUE INDEX quality_items_active ON quality_items(label) WHERE retired_at IS NULL;

CREATE TABLE quality_reviews (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL UNIQUE,
    agent TEXT,
    reviewer TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    yes INTEGER NOT NULL,
    items INTEGER NOT NULL,
    reviewed_at REAL NOT NULL
);
CREATE INDEX quality_reviews_agent ON quality_reviews(agent, reviewed_at);

CREATE TABLE quality_answers (
    review_id INTEGER NOT NULL REFERENCES quality_reviews(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    item TEXT NOT NULL,
    ok INTEGER NOT NULL CHECK (ok IN (0, 1)),
    PRIMARY KEY (review_id, position)
);
