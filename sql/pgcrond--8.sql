-- pgcrond schema, version 8: at 100,000 jobs, the start-up reads and the registry cost little.
--
-- 1. The rows left running are found without reading the history.
--
-- At start the daemon closes the rows an earlier process of its instance left 'running' (or
-- 'starting'), and the cluster does the same for an instance that died. With hundreds of
-- millions of rows, finding those few rows read every row of every partition. A partial
-- index holds only the rows still in progress: a run's row enters it when it starts and
-- leaves it when it ends (a short run, written once as a complete row, never enters it), so
-- each partition's index stays a few pages and the lookup is one index probe per partition.
-- The start-up reads also name a lower bound on start_time (the oldest day `retain` keeps),
-- so the partitions the retention is about to drop are pruned (core/src/hist_startup.c).
--
-- On a partitioned table the index is made on every partition, and on each partition made
-- later. Applied by `pgcrond install` (see pgcrond--1.sql).

CREATE INDEX IF NOT EXISTS job_run_details_open_idx
	ON pgcrond.job_run_details (instance) WHERE status IN ('starting', 'running');

-- 2. The daemon records its file jobs in the registry in parts. pgcrond.record_file_jobs
-- takes every job in one JSON value: at 100,000 jobs a 22 MB parameter, and the daemon's
-- connection keeps a send buffer that size for as long as it lives. In parts of a few
-- thousand jobs the buffer stays small. Each part is written as it comes (its own
-- transaction); the names are gathered in a temporary table of the session, and the last part
-- retires the file jobs no part named. A part of a sequence that was cut (the connection
-- dropped; the daemon starts again from the first part on the new session) finds fewer names
-- than TOTAL and retires nothing. `pgcrond install` still uses record_file_jobs.
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
	SELECT x.name, CASE WHEN x.plugin IS NULL THEN 'sql' ELSE 'plugin' END, x.plugin,
	       x.command, x.schedule, x.database,
	       ARRAY(SELECT jsonb_array_elements_text(coalesce(x.after, '[]'))), x.listen,
	       x.enabled, nullif(x.max_staleness_ms, 0) * interval '1 millisecond', x.defined_at
	  FROM jsonb_to_recordset($1) AS x(name text, plugin text, command text, schedule text,
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

INSERT INTO pgcrond.schema_version (version) VALUES (8) ON CONFLICT DO NOTHING;
