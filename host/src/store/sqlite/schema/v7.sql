-- Schema version 7: per-minute history, and an index for retention.
--
-- One row per minute and queue: counts of what ended in that minute, and
-- the wait and run durations as log-scale bucket counts (the encoding is
-- `store/sqlite/history.rs`'s: `bucket:count` pairs, space-separated; the
-- failures by kind as `kind:count`). Every figure is a count, so a flush
-- adds to the row (several flushes, several hosts) and percentiles are
-- derived when read. Rows older than the history's keep age are pruned.

CREATE TABLE history (
    minute        INTEGER NOT NULL,
    queue         TEXT NOT NULL,
    completed     INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    retried       INTEGER NOT NULL DEFAULT 0,
    dead_lettered INTEGER NOT NULL DEFAULT 0,
    cancelled     INTEGER NOT NULL DEFAULT 0,
    failures      TEXT NOT NULL DEFAULT '',
    wait          TEXT NOT NULL DEFAULT '',
    run           TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (minute, queue)
) WITHOUT ROWID;

-- Retention finds finished jobs by state and age without a scan.
CREATE INDEX jobs_finished ON jobs (state, finished_at) WHERE finished_at IS NOT NULL;
