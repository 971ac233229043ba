-- pgcrond schema, step 24: a job's kind is recorded as the daemon knows it.
--
-- A job is of one kind: sql, plugin or http (docs/jobs.md, "Kinds of job"). pgcrond.job.kind
-- allowed sql and plugin only, and the file jobs' rows guessed the kind from which fields
-- were set, so an HTTP job (no plugin, no command) was recorded as a SQL job without a
-- command, which cron.job refuses (its command is NOT NULL): `pgcrond install` failed and
-- every reload logged that the file jobs could not be recorded. Now the daemon and install
-- send each job's kind and the command to record for it (an HTTP job: its method and URL as
-- it may be shown, without user info, path or query; a plugin job: "plugin NAME"), and the
-- functions keep what they are sent. A daemon of an earlier version sends no kind: the old
-- guess stands for it. Applied by `pgcrond install` (see pgcrond--1.sql).

ALTER TABLE pgcrond.job DROP CONSTRAINT IF EXISTS job_kind_check;
ALTER TABLE pgcrond.job ADD CONSTRAINT job_kind_check CHECK (kind IN ('sql', 'plugin', 'http'));

-- The file jobs as the daemon loads them, in parts (step 8), as a JSON array of {name, kind,
-- plugin, command, schedule, database, after, listen, enabled, max_staleness_ms, defined_at}:
-- the kind and the command are taken as sent.
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
	SELECT x.name, coalesce(x.kind, CASE WHEN x.plugin IS NULL THEN 'sql' ELSE 'plugin' END), x.plugin,
	       x.command, x.schedule, x.database,
	       ARRAY(SELECT jsonb_array_elements_text(coalesce(x.after, '[]'))), x.listen,
	       x.enabled, nullif(x.max_staleness_ms, 0) * interval '1 millisecond', x.defined_at
	  FROM jsonb_to_recordset($1) AS x(name text, kind text, plugin text, command text, schedule text,
	                                   database text, after jsonb, listen text, enabled boolean,
	                                   max_staleness_ms bigint, defined_at text)
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

-- All of them at once, as step 3 took them: one part, the first and the last.
CREATE OR REPLACE FUNCTION pgcrond.record_file_jobs(jobs jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	PERFORM pgcrond.record_file_jobs_part($1, true, true, jsonb_array_length($1));
END
$fn$;
REVOKE ALL ON FUNCTION pgcrond.record_file_jobs(jsonb) FROM PUBLIC;

INSERT INTO pgcrond.schema_version (version) VALUES (24) ON CONFLICT DO NOTHING;
