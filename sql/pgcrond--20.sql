-- pgcrond schema, step 20: job names as pg_cron takes them .
--
-- cron.job's jobname is pg_cron's: any text a `name` holds (63 bytes: spaces, "&", quotes,
-- non-ASCII; a longer one is cut to 63 bytes by the cast to name, as under pg_cron), unique
-- per role (cron.job's constraint jobname_username_uniq, as pg_cron's). The daemon, its
-- command line, its logs, its /metrics labels and job files' `after` lists go on using a
-- name of pgcrond's own, pgcrond.job.jobname; pgcrond.job.cron_jobname keeps the name as
-- written. The rule (docs/sql-api.md, "Job names"):
--
--   * a pg_cron name that a job file could carry ([A-Za-z0-9_.-], 1 to 63), that is not all
--     digits (it would read as a jobid) nor of the form cron-job-... (the names of unnamed
--     jobs), and that no other job holds, is its own pgcrond name;
--   * any other, and an unnamed job, is cron-job-JOBID (cron-job-JOBID.N where a row from
--     before step 10 holds that);
--   * a job keeps its pgcrond name for good: scheduling it again under the same name, or
--     changing it otherwise, does not rename it; only a new pg_cron name derives one again.
--
-- So two roles may each have a job "cleanup": the first keeps "cleanup", the second is
-- cron-job-JOBID; `pgcrond trigger cleanup` says the name is ambiguous and lists both
-- jobids. Applied by `pgcrond install` (see pgcrond--1.sql).

CREATE OR REPLACE FUNCTION pgcrond.own_job_name(jobname text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT pgcrond.valid_job_name($1) AND $1 !~ '^[0-9]+$' AND $1 !~ '^cron-job-[0-9]'
$fn$;
COMMENT ON FUNCTION pgcrond.own_job_name(text) IS
	'whether a pg_cron job name may serve as the job''s pgcrond name (if no other job holds it)';

-- cron.job to pgcrond.job (step 15's trigger), with the names above.
CREATE OR REPLACE FUNCTION pgcrond.cron_job_sync()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	problem text;
	nm text;
	cur text;
	k integer;
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
	-- '' is a job on freshness alone, written by pgcrond.schedule() with a NULL schedule
	IF (TG_OP = 'INSERT' OR NEW.schedule IS DISTINCT FROM OLD.schedule)
	   AND NOT (NEW.schedule = '' AND current_setting('pgcrond.freshness_only', true) = 'on') THEN
		PERFORM pgcrond.check_schedule(NEW.schedule); -- a row written without the functions
	END IF;
	-- a job file's row (cron.schedule by the role that ran `pgcrond install`, with a file
	-- job's name) is not changed from SQL
	SELECT j.defined_at, j.jobname INTO problem, cur FROM pgcrond.job j
	 WHERE j.jobid = NEW.jobid AND j.source = 'file';
	IF FOUND THEN
		RAISE EXCEPTION 'job "%" is defined in %; edit it there', cur, coalesce(problem, 'a job file')
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'jobs from job files cannot be changed from SQL';
	END IF;
	cur := NULL;
	SELECT j.jobname INTO cur FROM pgcrond.job j
	 WHERE j.jobid = NEW.jobid AND j.source = 'sql' AND j.removed_at IS NULL;
	IF cur IS NOT NULL AND TG_OP = 'UPDATE' AND NEW.jobname IS NOT DISTINCT FROM OLD.jobname THEN
		-- the name it runs under stays (also one `pgcrond install` moved aside for a job
		-- file of the same name: job files own their names)
		nm := cur;
	ELSIF NEW.jobname IS NOT NULL AND pgcrond.own_job_name(NEW.jobname)
	      AND NOT EXISTS (SELECT FROM pgcrond.job j
	                      WHERE j.jobname = NEW.jobname AND j.jobid <> NEW.jobid
	                        AND j.removed_at IS NULL) THEN
		nm := NEW.jobname;
	ELSE
		-- cron-job-JOBID, never taken but by a row from before step 10: then .1, .2 ...
		nm := 'cron-job-' || NEW.jobid;
		k := 0;
		WHILE EXISTS (SELECT FROM pgcrond.job j
		              WHERE j.jobname = nm AND j.jobid <> NEW.jobid AND j.removed_at IS NULL) LOOP
			k := k + 1;
			nm := 'cron-job-' || NEW.jobid || '.' || k;
		END LOOP;
	END IF;
	-- a removed job that held the name keeps its history under a name of its own
	UPDATE pgcrond.job SET jobname = left(jobname, 40) || '.removed-' || jobid
	 WHERE jobname = nm AND jobid <> NEW.jobid AND removed_at IS NOT NULL;
	BEGIN
		INSERT INTO pgcrond.job AS j (jobid, jobname, kind, command, schedule, database, enabled,
		                              source, username, cron_jobname)
		VALUES (NEW.jobid, nm, 'sql', NEW.command, nullif(NEW.schedule, ''), NEW.database,
		        NEW.active, 'sql', NEW.username, NEW.jobname)
		ON CONFLICT (jobid) DO UPDATE
		   SET jobname = EXCLUDED.jobname, command = EXCLUDED.command, schedule = EXCLUDED.schedule,
		       database = EXCLUDED.database, enabled = EXCLUDED.enabled, username = EXCLUDED.username,
		       cron_jobname = EXCLUDED.cron_jobname, updated_at = now(), removed_at = NULL
		 WHERE j.source = 'sql';
	EXCEPTION WHEN unique_violation THEN
		-- another transaction took the name since it was found free (two roles scheduling
		-- "cleanup" at once): this job is cron-job-JOBID, as pg_cron takes both
		nm := 'cron-job-' || NEW.jobid;
		INSERT INTO pgcrond.job AS j (jobid, jobname, kind, command, schedule, database, enabled,
		                              source, username, cron_jobname)
		VALUES (NEW.jobid, nm, 'sql', NEW.command, nullif(NEW.schedule, ''), NEW.database,
		        NEW.active, 'sql', NEW.username, NEW.jobname)
		ON CONFLICT (jobid) DO UPDATE
		   SET jobname = EXCLUDED.jobname, command = EXCLUDED.command, schedule = EXCLUDED.schedule,
		       database = EXCLUDED.database, enabled = EXCLUDED.enabled, username = EXCLUDED.username,
		       cron_jobname = EXCLUDED.cron_jobname, updated_at = now(), removed_at = NULL
		 WHERE j.source = 'sql';
	END;
	PERFORM pg_notify('pgcrond_jobs', NEW.jobid::text);
	RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION pgcrond.cron_job_sync() FROM PUBLIC;

COMMENT ON COLUMN pgcrond.job.cron_jobname IS
	'SQL jobs: the name given to cron.schedule, as written (NULL for an unnamed job); jobname is pgcrond''s name for it (docs/sql-api.md, "Job names")';

INSERT INTO pgcrond.schema_version (version) VALUES (20) ON CONFLICT DO NOTHING;
