-- Schema version 9: a job names its module by a small integer.
--
-- The module's hash, 64 hex digits, was a third of a pending job's bytes:
-- once in the row and once in `jobs_by_module`. Jobs now hold the id of
-- the hash in `module_ids`, which interns every hash a module or a job
-- ever had and is never deleted from (a deleted module's final jobs keep
-- naming it, as before).

CREATE TABLE module_ids (
    id   INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE
);
INSERT INTO module_ids (hash) SELECT hash FROM modules UNION SELECT module FROM jobs;

-- ADD COLUMN ... NOT NULL needs a default; every insert names the id, and
-- the UPDATE below gives every existing row its own.
ALTER TABLE jobs ADD COLUMN module_id INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET module_id = (SELECT i.id FROM module_ids i WHERE i.hash = jobs.module);

DROP INDEX jobs_by_module;
ALTER TABLE jobs DROP COLUMN module;
CREATE INDEX jobs_by_module ON jobs (module_id, id);
