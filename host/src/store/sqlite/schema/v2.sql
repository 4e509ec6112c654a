-- Schema version 2: the store's own encoding, apart from the API's.
--
-- Limits and retry policies become columns instead of the API's JSON; the
-- module's name is kept with the job; the time a job was claimed
-- (`claimed_at`) is kept apart from when its latest attempt started
-- running (`started_at`, written with the attempt's result); inputs and
-- outputs are JSON text (an output that was not JSON becomes a JSON
-- string, as the API always showed it); attempt reports move to the
-- store's tagged encoding (see store/encoding.rs), without the output,
-- which is kept once, on the job.
--
-- `jobs` is rebuilt, so this runs with foreign keys off (dropping the old
-- table must not cascade to the attempts); schema.rs checks them before
-- committing.

CREATE TABLE jobs_v2 (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    module             TEXT NOT NULL,
    module_name        TEXT,
    input              TEXT NOT NULL,
    priority           INTEGER NOT NULL,
    effective_priority INTEGER NOT NULL,
    state              TEXT NOT NULL CHECK (state IN (
        'pending', 'running', 'retrying', 'completed', 'failed', 'cancelled'
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
    last_error         TEXT
);

INSERT INTO jobs_v2 (
    id, module, module_name, input, priority, effective_priority, state,
    attempt, max_attempts, attempts_total,
    fuel, memory_bytes, timeout_ms, output_bytes, log_records, log_bytes, stdio_tail_bytes,
    backoff, retry_base_ms, retry_max_delay_ms, retry_jitter,
    run_at, aged_at, lease_owner, lease_token, lease_expires_at,
    created_at, claimed_at, started_at, finished_at, output, last_error
)
SELECT
    id, module,
    (SELECT n.name FROM module_names n WHERE n.hash = j.module ORDER BY n.id DESC LIMIT 1),
    CASE WHEN json_valid(CAST(input AS TEXT)) THEN json(CAST(input AS TEXT))
         ELSE json_quote(CAST(input AS TEXT)) END,
    priority, effective_priority, state,
    attempt, max_attempts, attempts_total,
    coalesce(json_extract(limits, '$.fuel'), 5000000000),
    coalesce(json_extract(limits, '$.memory_bytes'), 67108864),
    coalesce(json_extract(limits, '$.timeout_ms'), 30000),
    coalesce(json_extract(limits, '$.output_bytes'), 1048576),
    coalesce(json_extract(limits, '$.log_records'), 1000),
    coalesce(json_extract(limits, '$.log_bytes'), 262144),
    coalesce(json_extract(limits, '$.stdio_tail_bytes'), 16384),
    CASE json_extract(retry, '$.backoff')
        WHEN 'linear' THEN 1 WHEN 'fixed' THEN 2 WHEN 'none' THEN 3 ELSE 0 END,
    coalesce(json_extract(retry, '$.base_ms'), 1000),
    coalesce(json_extract(retry, '$.max_delay_ms'), 3600000),
    coalesce(json_extract(retry, '$.jitter'), 0),
    run_at, aged_at, lease_owner, lease_token, lease_expires_at,
    created_at,
    CASE WHEN state = 'running' OR lease_token IS NOT NULL THEN started_at END,
    started_at, finished_at,
    CASE WHEN output IS NULL THEN NULL
         WHEN json_valid(CAST(output AS TEXT)) THEN json(CAST(output AS TEXT))
         ELSE json_quote(CAST(output AS TEXT)) END,
    last_error
FROM jobs j;

-- Ids keep increasing past every id ever used, purged ones included.
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'jobs_v2', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'jobs_v2');
UPDATE sqlite_sequence
    SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0))
    WHERE name = 'jobs_v2';

DROP TABLE jobs;
ALTER TABLE jobs_v2 RENAME TO jobs;

CREATE INDEX jobs_claim ON jobs (effective_priority, run_at, id)
    WHERE state IN ('pending', 'retrying');
CREATE INDEX jobs_waiting ON jobs (run_at)
    WHERE state IN ('pending', 'retrying');
CREATE INDEX jobs_leases ON jobs (lease_expires_at)
    WHERE state = 'running';
CREATE INDEX jobs_by_state ON jobs (state, id);
CREATE INDEX jobs_by_module ON jobs (module, id);
CREATE INDEX jobs_by_priority ON jobs (priority, id);

UPDATE attempts SET report = CASE
    WHEN json_extract(report, '$.status') = 'lost' THEN json_object('lost', json_object(
        'owner', json_extract(report, '$.owner'),
        'message', json_extract(report, '$.message')))
    ELSE json_object('ran', json_remove(report, '$.output'))
END;
