-- Schema version 3: named queues and unique jobs.
--
-- Every job belongs to a queue (`default` unless named). `queues` lists
-- the queues in use, with whether each is paused (a paused queue accepts
-- jobs and starts none). The claim seeks each queue's due jobs in its own
-- index range, so a paused or full queue with a large backlog costs the
-- others nothing.

ALTER TABLE jobs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';

CREATE TABLE queues (
    name       TEXT PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO queues (name, created_at)
    SELECT queue, min(created_at) FROM jobs GROUP BY queue;

DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (queue, effective_priority, run_at, id)
    WHERE state IN ('pending', 'retrying');
CREATE INDEX jobs_by_queue ON jobs (queue, id);

-- A unique job's key: at most one job with it in the queue at a time.
ALTER TABLE jobs ADD COLUMN unique_key TEXT;
CREATE INDEX jobs_unique ON jobs (queue, unique_key) WHERE unique_key IS NOT NULL;
