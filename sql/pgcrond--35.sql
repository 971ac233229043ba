-- pgcrond schema, step 35: a start or reload that changes no job writes no row.
--
-- Every start and every reload sends the file jobs (step 8: in parts of a few thousand) and
-- this instance's definitions (pgcrond.instance_job, in parts of 500). Each went into an
-- INSERT ... ON CONFLICT DO UPDATE, which for a job that had not changed still locked the row
-- it left as it was (a write of the row's page, and WAL), and for pgcrond.job and cron.job
-- ran the rows' BEFORE triggers first (job_limits read pgcrond.setting twice for a row it
-- then let through: its limits are for jobs made in SQL). At 100,000 jobs that was 300,000
-- row locks and 200,000 trigger calls on the user's database at every start. Now a job equal
-- to its row is left out before the insert, and job_limits is called only for rows it checks
-- (WHEN: jobs made in SQL, not removed). Each part also looked for this instance's rows that
-- it no longer defines among all of the instance's rows, its range of names (in byte order,
-- COLLATE "C") matching no index: instance_job_name_idx is that index. What is recorded is
-- the same. Applied by `pgcrond install` (see pgcrond--1.sql).

CREATE INDEX IF NOT EXISTS instance_job_name_idx
	ON pgcrond.instance_job (instance, job_name COLLATE "C");

DROP TRIGGER IF EXISTS job_limits ON pgcrond.job;
CREATE TRIGGER job_limits BEFORE INSERT OR UPDATE ON pgcrond.job
	FOR EACH ROW WHEN (NEW.source = 'sql' AND NEW.removed_at IS NULL)
	EXECUTE FUNCTION pgcrond.job_limits();

CREATE OR REPLACE FUNCTION pgcrond.record_file_jobs_part(jobs jsonb, first boolean,
                                                         last boolean, total integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF to_regclass('pg_temp.pgcrond_file_job_names') IS NULL THEN
		CREATE TEMP TABLE pgcrond_file_job_names (name text PRIMARY KEY);
	END IF;
	IF first THEN
		TRUNCATE pg_temp.pgcrond_file_job_names;
	END IF;
	INSERT INTO pg_temp.pgcrond_file_job_names
	SELECT e ->> 'name' FROM jsonb_array_elements($1) e ON CONFLICT DO NOTHING;
	INSERT INTO pgcrond.job AS j (jobname, kind, plugin, command, schedule, database, after,
	                              listen, enabled, max_staleness, defined_at)
	SELECT n.name, n.kind, n.plugin, n.command, n.schedule, n.database, n.after, n.listen,
	       n.enabled, n.max_staleness, n.defined_at
	  FROM (SELECT x.name,
	               coalesce(x.kind, CASE WHEN x.plugin IS NULL THEN 'sql' ELSE 'plugin' END) AS kind,
	               x.plugin, x.command, x.schedule, x.database,
	               ARRAY(SELECT jsonb_array_elements_text(coalesce(x.after, '[]'))) AS after,
	               x.listen, x.enabled,
	               nullif(x.max_staleness_ms, 0) * interval '1 millisecond' AS max_staleness,
	               x.defined_at
	          FROM jsonb_to_recordset($1) AS x(name text, kind text, plugin text, command text,
	                                           schedule text, database text, after jsonb,
	                                           listen text, enabled boolean,
	                                           max_staleness_ms bigint, defined_at text)) n
	 -- a job as its row has it already: nothing to write, nor to lock
	 WHERE NOT EXISTS (
	       SELECT FROM pgcrond.job o
	        WHERE o.jobname = n.name AND o.source = 'file' AND o.removed_at IS NULL
	          AND (o.kind, o.plugin, o.command, o.schedule, o.database, o.after, o.listen,
	               o.enabled, o.max_staleness, o.defined_at)
	              IS NOT DISTINCT FROM
	              (n.kind, n.plugin, n.command, n.schedule, n.database, n.after, n.listen,
	               n.enabled, n.max_staleness, n.defined_at))
	ON CONFLICT (jobname) DO UPDATE
	   SET kind = EXCLUDED.kind, plugin = EXCLUDED.plugin, command = EXCLUDED.command,
	       schedule = EXCLUDED.schedule, database = EXCLUDED.database, after = EXCLUDED.after,
	       listen = EXCLUDED.listen, enabled = EXCLUDED.enabled,
	       max_staleness = EXCLUDED.max_staleness, defined_at = EXCLUDED.defined_at,
	       updated_at = now(), removed_at = NULL
	 WHERE j.source = 'file'
	   AND (j.kind, j.plugin, j.command, j.schedule, j.database, j.after, j.listen, j.enabled,
	        j.max_staleness, j.defined_at, j.removed_at)
	       IS DISTINCT FROM
	       (EXCLUDED.kind, EXCLUDED.plugin, EXCLUDED.command, EXCLUDED.schedule,
	        EXCLUDED.database, EXCLUDED.after, EXCLUDED.listen, EXCLUDED.enabled,
	        EXCLUDED.max_staleness, EXCLUDED.defined_at, EXCLUDED.removed_at);
	IF last THEN
		IF (SELECT count(*) FROM pg_temp.pgcrond_file_job_names) = total THEN
			UPDATE pgcrond.job SET enabled = false, removed_at = now(), updated_at = now()
			 WHERE removed_at IS NULL AND source = 'file'
			   AND jobname NOT IN (SELECT name FROM pg_temp.pgcrond_file_job_names);
		END IF;
		TRUNCATE pg_temp.pgcrond_file_job_names;
		PERFORM pgcrond.sync_file_jobs();
	END IF;
END
$fn$;
REVOKE ALL ON FUNCTION pgcrond.record_file_jobs_part(jsonb, boolean, boolean, integer) FROM PUBLIC;

-- The file jobs' rows in cron.job (step 3), writing only those that differ.
CREATE OR REPLACE FUNCTION pgcrond.sync_file_jobs()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_trigger
	                WHERE tgrelid = to_regclass('cron.job') AND tgname = 'cron_job_sync') THEN
		RETURN;
	END IF;
	PERFORM set_config('pgcrond.file_sync', 'on', true);
	DELETE FROM cron.job c USING pgcrond.job j
	 WHERE c.jobid = j.jobid AND j.source = 'file' AND j.removed_at IS NOT NULL;
	INSERT INTO cron.job AS c (jobid, schedule, command, database, username, active, jobname)
	SELECT n.jobid, n.schedule, n.command, n.database, n.username, n.active, n.jobname
	  FROM (SELECT j.jobid, coalesce(j.schedule, '') AS schedule,
	               coalesce(j.command, 'plugin ' || j.plugin) AS command, j.database,
	               current_user::text AS username, j.enabled AS active, j.jobname
	          FROM pgcrond.job j
	         WHERE j.source = 'file' AND j.removed_at IS NULL) n
	 WHERE NOT EXISTS (
	       SELECT FROM cron.job o
	        WHERE o.jobid = n.jobid
	          AND (o.schedule, o.command, o.database, o.username, o.active, o.jobname)
	              IS NOT DISTINCT FROM
	              (n.schedule, n.command, n.database, n.username, n.active, n.jobname))
	ON CONFLICT (jobid) DO UPDATE
	   SET schedule = EXCLUDED.schedule, command = EXCLUDED.command, database = EXCLUDED.database,
	       username = EXCLUDED.username, active = EXCLUDED.active, jobname = EXCLUDED.jobname
	 WHERE (c.schedule, c.command, c.database, c.username, c.active, c.jobname)
	       IS DISTINCT FROM (EXCLUDED.schedule, EXCLUDED.command, EXCLUDED.database,
	                         EXCLUDED.username, EXCLUDED.active, EXCLUDED.jobname);
	PERFORM set_config('pgcrond.file_sync', 'off', true);
END
$fn$;
REVOKE ALL ON FUNCTION pgcrond.sync_file_jobs() FROM PUBLIC;

INSERT INTO pgcrond.schema_version (version) VALUES (35) ON CONFLICT DO NOTHING;
