-- pgcrond schema, step 12: bounded inputs.
--
-- A role could schedule a command of any size (one of 256 MB would hold the daemon's loop
-- for seconds and take gigabytes) and any number of jobs. A job made in SQL (cron.schedule,
-- pgcrond.schedule, cron.alter_job, or a row written into cron.job: each is mirrored into
-- pgcrond.job by cron_job_sync) is now refused when its command is longer than
-- max_command_size bytes, or when its role already has max_jobs_per_role jobs. The values
-- are pgcrond.conf's, written into pgcrond.setting by `pgcrond install`; the defaults are
-- 1 MiB and 1000. Applied by `pgcrond install` (see pgcrond--1.sql).

CREATE TABLE IF NOT EXISTS pgcrond.setting (
	name  text PRIMARY KEY,
	value bigint NOT NULL
);
COMMENT ON TABLE pgcrond.setting IS 'pgcrond.conf values the schema enforces (written by pgcrond install)';
INSERT INTO pgcrond.setting (name, value)
	VALUES ('max_command_size', 1048576), ('max_jobs_per_role', 1000)
	ON CONFLICT (name) DO NOTHING;
GRANT SELECT ON pgcrond.setting TO PUBLIC;

-- BEFORE INSERT OR UPDATE on pgcrond.job, for jobs made in SQL. SECURITY DEFINER, to count a
-- role's jobs whatever it may see.
CREATE OR REPLACE FUNCTION pgcrond.job_limits()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	max_size bigint := coalesce((SELECT s.value FROM pgcrond.setting s
	                              WHERE s.name OPERATOR(pg_catalog.=) 'max_command_size'), 1048576);
	max_jobs bigint := coalesce((SELECT s.value FROM pgcrond.setting s
	                              WHERE s.name OPERATOR(pg_catalog.=) 'max_jobs_per_role'), 1000);
	size bigint;
	n bigint;
BEGIN
	IF NEW.source IS DISTINCT FROM 'sql' OR NEW.removed_at IS NOT NULL THEN
		RETURN NEW;
	END IF;
	size := pg_catalog.octet_length(NEW.command);
	IF size OPERATOR(pg_catalog.>) max_size
	   AND (TG_OP = 'INSERT' OR NEW.command IS DISTINCT FROM OLD.command) THEN
		RAISE EXCEPTION 'the command of job "%" is % bytes, more than the % bytes a job''s command may have',
			NEW.jobname, size, max_size
			USING ERRCODE = 'program_limit_exceeded',
			      HINT = 'keep the SQL in a function or procedure and schedule a call of it; the limit is max_command_size in pgcrond.conf';
	END IF;
	IF TG_OP = 'INSERT' OR OLD.removed_at IS NOT NULL
	   OR NEW.username IS DISTINCT FROM OLD.username OR OLD.source IS DISTINCT FROM 'sql' THEN
		SELECT pg_catalog.count(*) INTO n FROM pgcrond.job j
		 WHERE j.source OPERATOR(pg_catalog.=) 'sql' AND j.removed_at IS NULL
		   AND j.username OPERATOR(pg_catalog.=) NEW.username
		   AND j.jobid OPERATOR(pg_catalog.<>) NEW.jobid;
		IF n OPERATOR(pg_catalog.>=) max_jobs THEN
			RAISE EXCEPTION 'role "%" has % jobs, the most one role may have', NEW.username, n
				USING ERRCODE = 'program_limit_exceeded',
				      HINT = 'unschedule jobs it no longer needs; the limit is max_jobs_per_role in pgcrond.conf';
		END IF;
	END IF;
	RETURN NEW;
END
$fn$;

DROP TRIGGER IF EXISTS job_limits ON pgcrond.job;
CREATE TRIGGER job_limits BEFORE INSERT OR UPDATE ON pgcrond.job
	FOR EACH ROW EXECUTE FUNCTION pgcrond.job_limits();

INSERT INTO pgcrond.schema_version (version) VALUES (12) ON CONFLICT DO NOTHING;
