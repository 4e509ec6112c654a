-- Schema version 6: grants.
--
-- A module keeps the names of the operator's grants it was given (what its
-- jobs may reach beyond the sandbox: HTTP origins, secrets, configuration),
-- space-separated; the grants themselves live in the host's config.

ALTER TABLE modules ADD COLUMN grants TEXT NOT NULL DEFAULT '';

-- A job may narrow its module's grants to some of them (NULL: all).
ALTER TABLE jobs ADD COLUMN grants TEXT;
