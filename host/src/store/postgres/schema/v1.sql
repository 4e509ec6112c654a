-- PostgreSQL schema version 1: the same tables as SQLite's version 7,
-- written for PostgreSQL.
--
-- Times are milliseconds since the Unix epoch, as on SQLite. Every integer
-- is a bigint (the client maps them to i64 without casts). Module bytes
-- live in the database (`module_blobs`), so every host sharing the
-- database reads the same ones.

CREATE TABLE modules (
    hash       text PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('component', 'command')),
    size       bigint NOT NULL,
    created_at bigint NOT NULL,
    -- The names of the operator's grants it has, space-separated.
    grants     text NOT NULL DEFAULT '',
    -- Insertion order: modules created in the same millisecond list newest
    -- first by it.
    seq        bigserial NOT NULL
);

-- The bytes, content-addressed; deleted with the module.
CREATE TABLE module_blobs (
    hash  text PRIMARY KEY REFERENCES modules (hash) ON DELETE CASCADE,
    bytes bytea NOT NULL
);

-- Names given to modules at upload; a name resolves to the row with the
-- highest id.
CREATE TABLE module_names (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL,
    hash       text NOT NULL REFERENCES modules (hash) ON DELETE CASCADE,
    created_at bigint NOT NULL,
    UNIQUE (name, hash)
);
CREATE INDEX module_names_by_name ON module_names (name, id);
CREATE INDEX module_names_by_hash ON module_names (hash, id);

CREATE TABLE queues (
    name       text PRIMARY KEY,
    paused     boolean NOT NULL DEFAULT false,
    created_at bigint NOT NULL
);

CREATE TABLE workflows (
    id         bigserial PRIMARY KEY,
    name       text,
    created_at bigint NOT NULL
);

-- Ids come from a sequence: they keep increasing after the newest jobs
-- are purged. `module` is deliberately not a foreign key: final jobs keep
-- the hash of a module that was deleted since.
CREATE TABLE jobs (
    id                 bigserial PRIMARY KEY,
    queue              text NOT NULL DEFAULT 'default',
    module             text NOT NULL,
    module_name        text,
    input              text NOT NULL,
    priority           bigint NOT NULL,
    effective_priority bigint NOT NULL,
    state              text NOT NULL CHECK (state IN (
        'blocked', 'pending', 'running', 'retrying', 'completed', 'failed', 'cancelled'
    )),
    attempt            bigint NOT NULL DEFAULT 0,
    max_attempts       bigint NOT NULL,
    attempts_total     bigint NOT NULL DEFAULT 0,
    fuel               bigint NOT NULL,
    memory_bytes       bigint NOT NULL,
    timeout_ms         bigint NOT NULL,
    output_bytes       bigint NOT NULL,
    log_records        bigint NOT NULL,
    log_bytes          bigint NOT NULL,
    stdio_tail_bytes   bigint NOT NULL,
    -- 0 exponential, 1 linear, 2 fixed, 3 none.
    backoff            bigint NOT NULL CHECK (backoff BETWEEN 0 AND 3),
    retry_base_ms      bigint NOT NULL,
    retry_max_delay_ms bigint NOT NULL,
    retry_jitter       boolean NOT NULL,
    run_at             bigint NOT NULL,
    aged_at            bigint,
    lease_owner        text,
    lease_token        text,
    lease_expires_at   bigint,
    created_at         bigint NOT NULL,
    claimed_at         bigint,
    started_at         bigint,
    finished_at        bigint,
    output             text,
    last_error         text,
    unique_key         text,
    -- Prerequisites in all, and those not resolved yet.
    prereqs            bigint NOT NULL DEFAULT 0,
    waiting_on         bigint NOT NULL DEFAULT 0,
    workflow_id        bigint REFERENCES workflows (id),
    node               text,
    parent_id          bigint,
    schedule           text,
    -- Narrows the module's grants (space-separated); NULL: all of them.
    grants             text,
    -- The W3C traceparent its attempts' spans descend from; NULL: none.
    trace_parent       text
);

-- The claim: each queue's due waiting jobs in claim order (effective
-- priority with aging, run_at, id), read by `FOR UPDATE SKIP LOCKED`.
CREATE INDEX jobs_claim ON jobs (queue, effective_priority, run_at, id)
    WHERE state IN ('pending', 'retrying');
-- next_due and aging: waiting jobs by run_at.
CREATE INDEX jobs_waiting ON jobs (run_at) WHERE state IN ('pending', 'retrying');
-- The rescuer and the caps: running jobs by lease expiry, per queue.
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_running ON jobs (queue) WHERE state = 'running';
-- Listing filters (newest first within each) and counts by state.
CREATE INDEX jobs_by_state ON jobs (state, id);
CREATE INDEX jobs_by_module ON jobs (module, id);
CREATE INDEX jobs_by_priority ON jobs (priority, id);
CREATE INDEX jobs_by_queue ON jobs (queue, id);
CREATE INDEX jobs_unique ON jobs (queue, unique_key) WHERE unique_key IS NOT NULL;
CREATE INDEX jobs_by_workflow ON jobs (workflow_id, id) WHERE workflow_id IS NOT NULL;
CREATE INDEX jobs_by_parent ON jobs (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_by_schedule ON jobs (schedule, id) WHERE schedule IS NOT NULL;
-- Retention finds finished jobs by state and age without a scan.
CREATE INDEX jobs_finished ON jobs (state, finished_at) WHERE finished_at IS NOT NULL;

-- One row per finished attempt, numbered from 1 by the job's
-- attempts_total (never restarting, even after a requeue).
CREATE TABLE attempts (
    job_id      bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt     bigint NOT NULL,
    started_at  bigint NOT NULL,
    finished_at bigint NOT NULL,
    report      text NOT NULL,
    PRIMARY KEY (job_id, attempt)
);

-- Job `job_id` waits for `prereq_id`.
CREATE TABLE job_deps (
    job_id     bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    prereq_id  bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name       text NOT NULL,
    on_failure text NOT NULL CHECK (on_failure IN ('cancel', 'continue')),
    PRIMARY KEY (job_id, prereq_id)
);
CREATE INDEX job_deps_by_prereq ON job_deps (prereq_id, job_id);

CREATE TABLE schedules (
    name          text PRIMARY KEY,
    cron          text NOT NULL,
    timezone      text NOT NULL,
    template      text NOT NULL,
    missed        text NOT NULL CHECK (missed IN ('skip', 'run_once')),
    paused        boolean NOT NULL DEFAULT false,
    next_at       bigint NOT NULL,
    last_fired_at bigint,
    last_job      bigint,
    last_error    text,
    created_at    bigint NOT NULL,
    updated_at    bigint NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_at) WHERE NOT paused;

-- One row per minute and queue (see store/sqlite/schema/v7.sql; the same
-- `bucket:count` text encoding).
CREATE TABLE history (
    minute        bigint NOT NULL,
    queue         text NOT NULL,
    completed     bigint NOT NULL DEFAULT 0,
    failed        bigint NOT NULL DEFAULT 0,
    retried       bigint NOT NULL DEFAULT 0,
    dead_lettered bigint NOT NULL DEFAULT 0,
    cancelled     bigint NOT NULL DEFAULT 0,
    failures      text NOT NULL DEFAULT '',
    wait          text NOT NULL DEFAULT '',
    run           text NOT NULL DEFAULT '',
    PRIMARY KEY (minute, queue)
);
