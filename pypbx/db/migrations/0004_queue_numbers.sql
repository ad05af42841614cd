-- 4: a queue can be dialled by a number from any extension (pypbx.acdlive)
ALTER TABLE queues ADD COLUMN number TEXT;
CREATE UNIQUE INDEX queues_number ON queues(number) WHERE number IS NOT NULL;
