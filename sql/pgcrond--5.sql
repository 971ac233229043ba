-- pgcrond schema, version 5: paused jobs in the registry.
--
-- `pgcrond pause JOB` stops a job's runs at once and `pgcrond resume JOB` restarts them
-- (the daemon keeps the paused set in its state_dir, so a restart keeps it). The daemon
-- mirrors that set here, so SQL sees which jobs are paused. `pgcrond install` leaves the
-- column alone. Applied by `pgcrond install` after pgcrond--4.sql (see pgcrond--1.sql).

ALTER TABLE pgcrond.job ADD COLUMN IF NOT EXISTS paused boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN pgcrond.job.paused IS 'paused with pgcrond pause (no new run starts), as the daemon last recorded it';

INSERT INTO pgcrond.schema_version (version) VALUES (5) ON CONFLICT DO NOTHING;
