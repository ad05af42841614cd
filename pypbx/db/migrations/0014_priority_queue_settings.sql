-- 14: the urgent line (issue 10): a DID gives its callers a queue priority (pypbx did add/edit
-- --priority N; 0 = normal, higher is answered first). The queue settings of issue 10 (entry
-- priority, urgent prompt, ring-no-answer misses, overflow when busy) are in queues.config (JSON).
ALTER TABLE dids ADD COLUMN priority INTEGER NOT NULL DEFAULT 0 CHECK (priority >= 0);
