-- Schema version 1: modules, their names, jobs and their attempts.
--
-- Times are milliseconds since the Unix epoch. Retry policies, limits and
-- reports are JSON text in the shape the API shows them.

-- Module metadata; the bytes live in <data_dir>/modules/<hash>.wasm.
CREATE TABLE modules (
    hash       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('component', 'command')),
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

-- Names given to modules at upload. A name may move to newer modules; it
-- resolves to the row with the highest id.
CREATE TABLE module_names (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL REFERENCES modules (hash) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    UNIQUE (name, hash)
);
CREATE INDEX module_names_by_name ON module_names (name, id);
CREATE INDEX module_names_by_hash ON module_names (hash, id);

-- AUTOINCREMENT: ids keep increasing even after the newest jobs are purged.
-- `module` is deliberately not a foreign key: final jobs keep the hash of a
-- module that was deleted since.
CREATE TABLE jobs (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    module             TEXT NOT NULL,
    input              BLOB NOT NULL,
    priority           INTEGER NOT NULL,
    effective_priority INTEGER NOT NULL,
    state              TEXT NOT NULL CHECK (state IN (
        'pending', 'running', 'retrying', 'completed', 'failed', 'cancelled'
    )),
    attempt            INTEGER NOT NULL DEFAULT 0,
    max_attempts       INTEGER NOT NULL,
    attempts_total     INTEGER NOT NULL DEFAULT 0,
    retry              TEXT NOT NULL,
    limits             TEXT NOT NULL,
    run_at             INTEGER NOT NULL,
    aged_at            INTEGER,
    lease_owner        TEXT,
    lease_token        TEXT,
    lease_expires_at   INTEGER,
    created_at         INTEGER NOT NULL,
    started_at         INTEGER,
    finished_at        INTEGER,
    output             BLOB,
    last_error         TEXT
);

-- The claim: due waiting jobs in (effective_priority, run_at, id) order.
CREATE INDEX jobs_claim ON jobs (effective_priority, run_at, id)
    WHERE state IN ('pending', 'retrying');
-- next_due and aging: waiting jobs by run_at.
CREATE INDEX jobs_waiting ON jobs (run_at)
    WHERE state IN ('pending', 'retrying');
-- The rescuer: running jobs by lease expiry.
CREATE INDEX jobs_leases ON jobs (lease_expires_at)
    WHERE state = 'running';
-- Listing filters (newest first within each) and counts by state.
CREATE INDEX jobs_by_state ON jobs (state, id);
CREATE INDEX jobs_by_module ON jobs (module, id);
CREATE INDEX jobs_by_priority ON jobs (priority, id);

-- One row per finished attempt. `attempt` numbers every attempt of the job
-- from 1 and never restarts, even when a requeue resets the job's budget.
CREATE TABLE attempts (
    job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    report      TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;
