-- pgcrond schema, version 10: job names nobody can squat.
--
-- A role could block others by taking names: a SQL job named cron-job-N made the unnamed job
-- that later drew jobid N fail ("already used by another role's job"), and a SQL job holding
-- the name of a job file's future job made `pgcrond install` fail. Now the names cron-job-N
-- belong to the unnamed jobs (a named job may not take one but its own), an unnamed job whose
-- name is held anyway (by a job file, or since before this step) is named cron-job-N.1, and
-- job files own their names: `pgcrond install` moves a SQL job that holds a job file's name
-- aside (NAME.sql-JOBID, see cli_install.c) and says whose it is; this trigger lets that job's
-- owner change it afterwards without taking the name back. Applied by `pgcrond install` (see
-- pgcrond--1.sql), with search_path pinned to pg_catalog, pg_temp.

CREATE OR REPLACE FUNCTION pgcrond.cron_job_sync()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	problem text;
	nm text;
	other record;
	k integer;
	cur text;
BEGIN
	-- pgcrond.sync_file_jobs() writing the file jobs' rows: nothing to mirror
	IF current_setting('pgcrond.file_sync', true) = 'on' THEN
		RETURN NULL;
	END IF;
	IF TG_OP = 'DELETE' THEN
		SELECT j.defined_at INTO problem FROM pgcrond.job j
		 WHERE j.jobid = OLD.jobid AND j.source = 'file';
		IF FOUND THEN
			RAISE EXCEPTION 'job "%" is defined in %; edit it there', OLD.jobname, problem
				USING ERRCODE = 'insufficient_privilege',
				      HINT = 'jobs from job files cannot be changed from SQL';
		END IF;
		UPDATE pgcrond.job SET enabled = false, removed_at = now(), updated_at = now()
		 WHERE jobid = OLD.jobid AND source = 'sql';
		DELETE FROM pgcrond.job_options WHERE jobid = OLD.jobid;
		PERFORM pg_notify('pgcrond_jobs', OLD.jobid::text);
		RETURN OLD;
	END IF;
	IF TG_OP = 'INSERT' OR NEW.schedule IS DISTINCT FROM OLD.schedule THEN
		PERFORM pgcrond.check_schedule(NEW.schedule); -- a row written without the functions
	END IF;
	IF NEW.jobname IS NOT NULL AND NOT pgcrond.valid_job_name(NEW.jobname) THEN
		RAISE EXCEPTION 'job name "%" may only contain letters, digits, "_", "." and "-", at most 63 of them', NEW.jobname
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'pgcrond names jobs as its job files do; rename the job';
	END IF;
	nm := pgcrond.sql_job_name(NEW.jobname, NEW.jobid);
	IF NEW.jobname ~ '^cron-job-[0-9]+$' AND NEW.jobname <> 'cron-job-' || NEW.jobid THEN
		-- the names of unnamed jobs: taken by another job, they would make the unnamed job
		-- with that jobid fail when it is scheduled
		RAISE EXCEPTION 'job name "%" is reserved for the unnamed job with jobid %', NEW.jobname, substr(NEW.jobname, 10)
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'names cron-job-N belong to jobs scheduled without a name; give this job another name';
	ELSIF NEW.jobname IS NULL THEN
		-- an unnamed job never collides: a name held before this rule (or by a job file)
		-- makes it cron-job-JOBID.N
		k := 0;
		WHILE EXISTS (SELECT FROM pgcrond.job j
		              WHERE j.jobname = nm AND j.jobid <> NEW.jobid AND j.removed_at IS NULL) LOOP
			k := k + 1;
			nm := 'cron-job-' || NEW.jobid || '.' || k;
		END LOOP;
	ELSIF TG_OP = 'UPDATE' AND NEW.jobname IS NOT DISTINCT FROM OLD.jobname THEN
		-- a job that `pgcrond install` moved aside for a job file of the same name keeps
		-- the name it runs under (job files own their names)
		SELECT j.jobname INTO cur FROM pgcrond.job j
		 WHERE j.jobid = NEW.jobid AND j.source = 'sql' AND j.removed_at IS NULL;
		IF cur IS NOT NULL AND cur <> nm
		   AND EXISTS (SELECT FROM pgcrond.job f
		               WHERE f.jobname = nm AND f.source = 'file' AND f.removed_at IS NULL) THEN
			nm := cur;
		END IF;
	END IF;
	SELECT j.source, j.defined_at, j.jobid INTO other
	  FROM pgcrond.job j
	 WHERE j.jobname = nm AND j.jobid <> NEW.jobid AND j.removed_at IS NULL;
	IF FOUND AND other.source = 'file' THEN
		RAISE EXCEPTION 'job "%" is defined in %; edit it there', nm, coalesce(other.defined_at, 'a job file')
			USING ERRCODE = 'unique_violation',
			      HINT = 'jobs from job files cannot be changed from SQL; give this job another name';
	ELSIF FOUND THEN
		RAISE EXCEPTION 'job name "%" is already used by another role''s job', nm
			USING ERRCODE = 'unique_violation',
			      HINT = 'pgcrond job names are unique across all roles; give this job another name';
	END IF;
	-- a removed job that held the name keeps its history under a name of its own
	UPDATE pgcrond.job SET jobname = left(jobname, 40) || '.removed-' || jobid
	 WHERE jobname = nm AND jobid <> NEW.jobid AND removed_at IS NOT NULL;
	INSERT INTO pgcrond.job AS j (jobid, jobname, kind, command, schedule, database, enabled,
	                              source, username, cron_jobname)
	VALUES (NEW.jobid, nm, 'sql', NEW.command, NEW.schedule, NEW.database, NEW.active,
	        'sql', NEW.username, NEW.jobname)
	ON CONFLICT (jobid) DO UPDATE
	   SET jobname = EXCLUDED.jobname, command = EXCLUDED.command, schedule = EXCLUDED.schedule,
	       database = EXCLUDED.database, enabled = EXCLUDED.enabled, username = EXCLUDED.username,
	       cron_jobname = EXCLUDED.cron_jobname, updated_at = now(), removed_at = NULL
	 WHERE j.source = 'sql';
	IF NOT FOUND THEN
		SELECT j.defined_at INTO problem FROM pgcrond.job j WHERE j.jobid = NEW.jobid;
		RAISE EXCEPTION 'job % is defined in %; edit it there', NEW.jobid, coalesce(problem, 'a job file')
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	PERFORM pg_notify('pgcrond_jobs', NEW.jobid::text);
	RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION pgcrond.cron_job_sync() FROM PUBLIC;

INSERT INTO pgcrond.schema_version (version) VALUES (10) ON CONFLICT DO NOTHING;
