-- Schema version 5: cron schedules.
--
-- A schedule keeps its next fire time (`next_at`). Firing it is one
-- transaction: the update of `next_at` from the value the scheduler read
-- (compare-and-set, so two schedulers reading the same due schedule
-- create one job) and the insert of the job. A job a schedule created
-- names it.

CREATE TABLE schedules (
    name          TEXT PRIMARY KEY,
    cron          TEXT NOT NULL,
    timezone      TEXT NOT NULL,
    template      TEXT NOT NULL,
    missed        TEXT NOT NULL CHECK (missed IN ('skip', 'run_once')),
    paused        INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL,
    last_fired_at INTEGER,
    last_job      INTEGER,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX schedules_due ON schedules (next_at) WHERE NOT paused;

ALTER TABLE jobs ADD COLUMN schedule TEXT;
CREATE INDEX jobs_by_schedule ON jobs (schedule, id) WHERE schedule IS NOT NULL;
