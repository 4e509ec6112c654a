-- Schema version 4: dependencies and workflows.
--
-- A job may wait for others (`job_deps`: one row per edge, the name the
-- dependent knows the prerequisite's output by, and what happens when the
-- prerequisite fails). Until every prerequisite is resolved the job is
-- `blocked`; `waiting_on` counts those not resolved yet, so resolving one
-- costs one update, not a scan of the others. A workflow groups jobs
-- submitted together as a graph (`workflow_id`, the node's name); a job
-- submitted by another job's attempt keeps its parent (`parent_id`).
--
-- `jobs` is rebuilt for the new state in its CHECK, so this runs with
-- foreign keys off (schema.rs checks them before committing).

CREATE TABLE workflows (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT,
    created_at INTEGER NOT NULL
);

CREATE TABLE jobs_v4 (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    queue              TEXT NOT NULL DEFAULT 'default',
    module             TEXT NOT NULL,
    module_name        TEXT,
    input              TEXT NOT NULL,
    priority           INTEGER NOT NULL,
    effective_priority INTEGER NOT NULL,
    state              TEXT NOT NULL CHECK (state IN (
        'blocked', 'pending', 'running', 'retrying', 'completed', 'failed', 'cancelled'
    )),
    attempt            INTEGER NOT NULL DEFAULT 0,
    max_attempts       INTEGER NOT NULL,
    attempts_total     INTEGER NOT NULL DEFAULT 0,
    fuel               INTEGER NOT NULL,
    memory_bytes       INTEGER NOT NULL,
    timeout_ms         INTEGER NOT NULL,
    output_bytes       INTEGER NOT NULL,
    log_records        INTEGER NOT NULL,
    log_bytes          INTEGER NOT NULL,
    stdio_tail_bytes   INTEGER NOT NULL,
    -- 0 exponential, 1 linear, 2 fixed, 3 none.
    backoff            INTEGER NOT NULL CHECK (backoff BETWEEN 0 AND 3),
    retry_base_ms      INTEGER NOT NULL,
    retry_max_delay_ms INTEGER NOT NULL,
    retry_jitter       INTEGER NOT NULL,
    run_at             INTEGER NOT NULL,
    aged_at            INTEGER,
    lease_owner        TEXT,
    lease_token        TEXT,
    lease_expires_at   INTEGER,
    created_at         INTEGER NOT NULL,
    claimed_at         INTEGER,
    started_at         INTEGER,
    finished_at        INTEGER,
    output             TEXT,
    last_error         TEXT,
    unique_key         TEXT,
    -- Prerequisites in all, and those not resolved yet.
    prereqs            INTEGER NOT NULL DEFAULT 0,
    waiting_on         INTEGER NOT NULL DEFAULT 0,
    workflow_id        INTEGER REFERENCES workflows (id),
    node               TEXT,
    parent_id          INTEGER
);

INSERT INTO jobs_v4 (
    id, queue, module, module_name, input, priority, effective_priority, state,
    attempt, max_attempts, attempts_total,
    fuel, memory_bytes, timeout_ms, output_bytes, log_records, log_bytes, stdio_tail_bytes,
    backoff, retry_base_ms, retry_max_delay_ms, retry_jitter,
    run_at, aged_at, lease_owner, lease_token, lease_expires_at,
    created_at, claimed_at, started_at, finished_at, output, last_error, unique_key
)
SELECT
    id, queue, module, module_name, input, priority, effective_priority, state,
    attempt, max_attempts, attempts_total,
    fuel, memory_bytes, timeout_ms, output_bytes, log_records, log_bytes, stdio_tail_bytes,
    backoff, retry_base_ms, retry_max_delay_ms, retry_jitter,
    run_at, aged_at, lease_owner, lease_token, lease_expires_at,
    created_at, claimed_at, started_at, finished_at, output, last_error, unique_key
FROM jobs;

-- Ids keep increasing past every id ever used, purged ones included.
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'jobs_v4', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'jobs_v4');
UPDATE sqlite_sequence
    SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0))
    WHERE name = 'jobs_v4';

DROP TABLE jobs;
ALTER TABLE jobs_v4 RENAME TO jobs;

CREATE INDEX jobs_claim ON jobs (queue, effective_priority, run_at, id)
    WHERE state IN ('pending', 'retrying');
CREATE INDEX jobs_waiting ON jobs (run_at)
    WHERE state IN ('pending', 'retrying');
CREATE INDEX jobs_leases ON jobs (lease_expires_at)
    WHERE state = 'running';
CREATE INDEX jobs_by_state ON jobs (state, id);
CREATE INDEX jobs_by_module ON jobs (module, id);
CREATE INDEX jobs_by_priority ON jobs (priority, id);
CREATE INDEX jobs_by_queue ON jobs (queue, id);
CREATE INDEX jobs_unique ON jobs (queue, unique_key) WHERE unique_key IS NOT NULL;
CREATE INDEX jobs_by_workflow ON jobs (workflow_id, id) WHERE workflow_id IS NOT NULL;
CREATE INDEX jobs_by_parent ON jobs (parent_id, id) WHERE parent_id IS NOT NULL;

-- Job `job_id` waits for `prereq_id`. Deleting either job (a purge)
-- deletes the edge.
CREATE TABLE job_deps (
    job_id     INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    prereq_id  INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    on_failure TEXT NOT NULL CHECK (on_failure IN ('cancel', 'continue')),
    PRIMARY KEY (job_id, prereq_id)
) WITHOUT ROWID;
CREATE INDEX job_deps_by_prereq ON job_deps (prereq_id, job_id);
