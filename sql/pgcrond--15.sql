-- pgcrond schema, step 15: freshness for jobs made in SQL (docs/freshness.md).
--
-- pgcrond.schedule() takes the job file's freshness keys as options:
--   SELECT pgcrond.schedule('rollup', '0 0 1 1 *', 'CALL rollup()',
--                           '{"freshness": "15m", "sources": ["public.orders"]}');
-- They are checked at the call by the rules `pgcrond check` applies to a job file
-- (config_jobs.c check_freshness): freshness is a duration of at least 1s, sources is an
-- array of schema-qualified table names without repeats, sources need freshness, and a job
-- with freshness says what it reads (sources or after). A source must also exist here and
-- be a table; the call puts the change-counting trigger on it (pgcrond.watch_source of
-- sql/freshness.sql, which `pgcrond install` now creates in the history database too), as
-- the caller, so the caller must own it (or its owner watches it first). A job in
-- another database (the database argument) cannot declare sources yet: nothing could watch
-- them there.
--
-- pgcrond.job.freshness and max_staleness are written from a SQL job's options, so
-- pgcrond.view_status shows SQL jobs as it shows file jobs.
-- Applied by `pgcrond install` (see pgcrond--1.sql).

-- V, a duration that pgcrond.duration_problem accepts, as an interval; NULL otherwise.
CREATE OR REPLACE FUNCTION pgcrond.duration_interval(v jsonb)
RETURNS interval
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT CASE WHEN pgcrond.duration_problem(v) IS NULL THEN
		(SELECT sum(m[1]::numeric * CASE m[2] WHEN 'd' THEN 86400000 WHEN 'h' THEN 3600000
		                                      WHEN 'm' THEN 60000 WHEN 's' THEN 1000 ELSE 1 END)
		   FROM regexp_matches(v #>> '{}', '([0-9]+)(ms|s|m|h|d)', 'g') AS m)::bigint
		* interval '1 millisecond'
	END
$fn$;

-- Whether NAME is a source as the daemon takes it (config_valid_source): "schema.table",
-- each part a lower-case identifier or a quoted one, at most 133 bytes.
CREATE OR REPLACE FUNCTION pgcrond.valid_source(name text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT $1 ~ '^("[^"]+"|[a-z_][a-z0-9_$]*)\.("[^"]+"|[a-z_][a-z0-9_$]*)$'
	       AND octet_length($1) <= 133
$fn$;

CREATE OR REPLACE FUNCTION pgcrond.options_problem(options jsonb)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	kv record;
	kinds constant jsonb := '{"timeout": "duration", "overlap": ["skip", "queue", "replace"],
		"retries": "count", "retry_delay": "duration", "retry_backoff": "factor",
		"retry_max_delay": "duration", "retry_on_timeout": "boolean",
		"retry_on": ["transient", "any"], "catchup": ["skip", "once"], "after": "names",
		"listen": "channel", "debounce": "duration", "max_delay": "duration",
		"alert_after": "positive", "max_staleness": "duration", "warn_duration": "duration",
		"timezone": "zone", "freshness": "sla", "sources": "relations"}';
	kind jsonb;
	problem text;
	bad text;
BEGIN
	IF $1 IS NULL OR jsonb_typeof($1) <> 'object' THEN
		RETURN 'options must be a JSON object like {"retries": 3, "timeout": "10m"}';
	END IF;
	FOR kv IN SELECT * FROM jsonb_each($1) LOOP
		kind := kinds -> kv.key;
		IF kind IS NULL THEN
			RETURN format('unknown option "%s"%s', kv.key,
			              CASE WHEN kv.key IN ('name', 'command', 'schedule', 'database', 'enabled', 'plugin')
			                   THEN '; it is an argument of the function, not an option'
			                   ELSE '; the options are ' || (SELECT string_agg(k, ', ' ORDER BY k) FROM jsonb_object_keys(kinds) k) END);
		ELSIF jsonb_typeof(kind) = 'array' THEN
			IF jsonb_typeof(kv.value) <> 'string' OR NOT kind ? (kv.value #>> '{}') THEN
				RETURN format('%s must be one of %s, not %s', kv.key,
				              (SELECT string_agg(v, ', ') FROM jsonb_array_elements_text(kind) v), kv.value);
			END IF;
		ELSIF kind #>> '{}' IN ('duration', 'sla') THEN
			problem := pgcrond.duration_problem(kv.value);
			IF problem IS NOT NULL THEN
				RETURN format('%s must be a duration like "30s", "5m", "2h" or "7d", not %s: %s', kv.key, kv.value, problem);
			END IF;
			IF kind #>> '{}' = 'sla' AND pgcrond.duration_interval(kv.value) < interval '1 second' THEN
				RETURN format('%s must be at least "1s", not %s; the daemon cannot promise a relation fresher than that', kv.key, kv.value);
			END IF;
		ELSIF kind #>> '{}' IN ('count', 'positive') THEN
			IF jsonb_typeof(kv.value) <> 'number' OR (kv.value #>> '{}') !~ '^[0-9]+$'
			   OR (kv.value #>> '{}')::numeric > 1000000000
			   OR (kind #>> '{}' = 'positive' AND (kv.value #>> '{}')::numeric < 1) THEN
				RETURN format('%s must be a whole number from %s to 1000000000, not %s', kv.key,
				              CASE WHEN kind #>> '{}' = 'positive' THEN 1 ELSE 0 END, kv.value);
			END IF;
		ELSIF kind #>> '{}' = 'factor' THEN
			IF jsonb_typeof(kv.value) <> 'number' OR (kv.value #>> '{}')::numeric NOT BETWEEN 1 AND 1000 THEN
				RETURN format('%s must be a number from 1 to 1000, not %s', kv.key, kv.value);
			END IF;
		ELSIF kind #>> '{}' = 'boolean' THEN
			IF jsonb_typeof(kv.value) <> 'boolean' THEN
				RETURN format('%s must be true or false, not %s', kv.key, kv.value);
			END IF;
		ELSIF kind #>> '{}' = 'names' THEN
			IF jsonb_typeof(kv.value) <> 'array' OR EXISTS (
				SELECT FROM jsonb_array_elements(kv.value) e
				 WHERE jsonb_typeof(e) <> 'string' OR NOT pgcrond.valid_job_name(e #>> '{}')) THEN
				RETURN format('%s must be an array of job names like ["refresh-a"], not %s', kv.key, kv.value);
			END IF;
		ELSIF kind #>> '{}' = 'relations' THEN
			IF jsonb_typeof(kv.value) <> 'array' OR EXISTS (
				SELECT FROM jsonb_array_elements(kv.value) e WHERE jsonb_typeof(e) <> 'string') THEN
				RETURN format('%s must be an array of table names like ["public.submissions"], not %s', kv.key, kv.value);
			END IF;
			SELECT e INTO bad FROM jsonb_array_elements_text(kv.value) e
			 WHERE NOT pgcrond.valid_source(e) LIMIT 1;
			IF bad IS NOT NULL THEN
				RETURN format('source %s is not a schema-qualified table name; write it as "schema.table" in lower case (or a quoted part like "public.\"Orders\""), e.g. "public.submissions"',
				              to_jsonb(bad));
			END IF;
			SELECT e INTO bad FROM jsonb_array_elements_text(kv.value) e
			 GROUP BY e HAVING count(*) > 1 LIMIT 1;
			IF bad IS NOT NULL THEN
				RETURN format('%s lists %s twice; remove one', kv.key, to_jsonb(bad));
			END IF;
			IF jsonb_array_length(kv.value) > 64 THEN
				RETURN format('%s names %s tables; a job watches at most 64', kv.key, jsonb_array_length(kv.value));
			END IF;
		ELSIF kind #>> '{}' = 'channel' THEN
			IF jsonb_typeof(kv.value) <> 'string' OR octet_length(kv.value #>> '{}') NOT BETWEEN 1 AND 63 THEN
				RETURN format('%s must be a channel name of 1 to 63 bytes, not %s', kv.key, kv.value);
			END IF;
		ELSIF kind #>> '{}' = 'zone' THEN
			IF jsonb_typeof(kv.value) <> 'string'
			   OR NOT EXISTS (SELECT FROM pg_timezone_names WHERE name = kv.value #>> '{}') THEN
				RETURN format('unknown timezone %s; use a name from the tz database like "UTC" or "Europe/Berlin"', kv.value);
			END IF;
		END IF;
	END LOOP;
	IF ($1 ? 'debounce' OR $1 ? 'max_delay') AND NOT $1 ? 'listen' THEN
		RETURN 'debounce and max_delay only apply to notifications; add "listen" or remove them';
	END IF;
	IF $1 ? 'sources' AND NOT $1 ? 'freshness' THEN
		RETURN 'sources are read only for freshness; add "freshness": "15m" (the longest the relation may lag its sources) or remove sources';
	END IF;
	IF $1 ? 'freshness' AND NOT $1 ? 'sources' AND NOT $1 ? 'after' THEN
		RETURN 'freshness needs to know what the job reads; add "sources": ["schema.table", ...] (the tables its command reads) or "after": [...] (the jobs whose relations it reads)';
	END IF;
	RETURN NULL;
END
$fn$;

-- The sources of OPTIONS (already checked by options_problem) watched for changes in this
-- database, for a job in DATABASE (NULL: this one); what is wrong, or NULL. Runs as the
-- caller: the trigger is put on a table only where the caller may put one.
CREATE OR REPLACE FUNCTION pgcrond.watch_sources(options jsonb, database text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	src text;
	rel regclass;
	kind "char";
BEGIN
	IF NOT coalesce($1 ? 'sources', false) OR jsonb_array_length($1 -> 'sources') = 0 THEN
		RETURN NULL;
	END IF;
	IF $2 IS NOT NULL AND $2 <> current_database() THEN
		RETURN format('sources can only be watched in this database ("%s"), not in "%s"; '
		              'give a job in another database a schedule instead of freshness',
		              current_database(), $2);
	END IF;
	IF to_regprocedure('pgcrond.watch_source(regclass)') IS NULL THEN
		RETURN 'the freshness counters are not installed in this database; run pgcrond install';
	END IF;
	FOR src IN SELECT jsonb_array_elements_text($1 -> 'sources') LOOP
		rel := to_regclass(src);
		IF rel IS NULL THEN
			RETURN format('source %s does not exist in database "%s" (or you cannot see it); '
			              'create the table first, or correct the name', to_jsonb(src), current_database());
		END IF;
		SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = rel;
		IF kind NOT IN ('r', 'p') THEN
			RETURN format('source %s is not a table (a view has no change trigger: name the tables '
			              'it reads, or the job that maintains it in "after")', to_jsonb(src));
		END IF;
		BEGIN
			PERFORM pgcrond.watch_source(rel);
		EXCEPTION WHEN insufficient_privilege THEN
			RETURN format('cannot watch source %s for changes: %s; its owner can watch it first: '
			              'SELECT pgcrond.watch_source(%L)', to_jsonb(src), SQLERRM, src);
		END;
	END LOOP;
	RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION pgcrond.watch_sources(jsonb, text) IS
	'pgcrond.schedule(): put the change-counting trigger on the sources of a job with freshness';

CREATE OR REPLACE FUNCTION pgcrond.job_options_sync()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	problem text;
BEGIN
	IF TG_OP = 'DELETE' THEN
		UPDATE pgcrond.job SET options = '{}', freshness = NULL, max_staleness = NULL, updated_at = now()
		 WHERE jobid = OLD.jobid AND source = 'sql';
		PERFORM pg_notify('pgcrond_jobs', OLD.jobid::text);
		RETURN OLD;
	END IF;
	-- row-level security held NEW.username to the writing role: the job must be that role's
	IF NOT EXISTS (SELECT FROM pgcrond.job j
	                WHERE j.jobid = NEW.jobid AND j.source = 'sql' AND j.removed_at IS NULL
	                  AND j.username = NEW.username) THEN
		RAISE EXCEPTION 'could not find valid entry for job %', NEW.jobid USING ERRCODE = 'internal_error';
	END IF;
	problem := pgcrond.options_problem(NEW.options);
	IF problem IS NOT NULL THEN
		RAISE EXCEPTION 'invalid options: %', problem USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- the columns pgcrond.view_status reads, as `pgcrond install` writes them for file jobs
	UPDATE pgcrond.job SET options = NEW.options,
	       freshness = pgcrond.duration_interval(NEW.options -> 'freshness'),
	       max_staleness = pgcrond.duration_interval(NEW.options -> 'max_staleness'),
	       updated_at = now()
	 WHERE jobid = NEW.jobid;
	PERFORM pg_notify('pgcrond_jobs', NEW.jobid::text);
	RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION pgcrond.job_options_sync() FROM PUBLIC;

-- cron.job to pgcrond.job, as in step 10, and a job on freshness alone: schedule '' in
-- cron.job (pg_cron's column is NOT NULL), NULL in pgcrond.job, accepted only from
-- pgcrond.schedule(). (A role that sets pgcrond.freshness_only itself only makes its own job
-- one without a schedule: the daemon leaves such a job out, logged, unless it has freshness.)
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
	-- '' is a job on freshness alone, written by pgcrond.schedule() with a NULL schedule
	-- (and shown in cron.job as a file job without a schedule is); any other row is checked
	IF (TG_OP = 'INSERT' OR NEW.schedule IS DISTINCT FROM OLD.schedule)
	   AND NOT (NEW.schedule = '' AND current_setting('pgcrond.freshness_only', true) = 'on') THEN
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
	VALUES (NEW.jobid, nm, 'sql', NEW.command, nullif(NEW.schedule, ''), NEW.database, NEW.active,
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

-- pgcrond's own cron.schedule: a SQL job with everything a job file can say about it, e.g.
--   SELECT pgcrond.schedule('rollup', '*/5 * * * *', 'CALL rollup()',
--                           '{"retries": 3, "retry_delay": "30s", "timeout": "2m",
--                             "timezone": "Europe/Berlin"}');
-- Same name and role: updated in place (same jobid), options replaced. DATABASE: as
-- cron.schedule_in_database (an admin grants it). SCHEDULE may be NULL when the options have
-- freshness (a job on freshness alone, as a job file may be). Runs as the caller.
CREATE OR REPLACE FUNCTION pgcrond.schedule(job_name text, schedule text, command text,
                                            options jsonb DEFAULT '{}', database text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	id bigint;
	problem text := pgcrond.options_problem(coalesce($4, '{}'));
BEGIN
	IF problem IS NULL THEN
		problem := pgcrond.watch_sources(coalesce($4, '{}'), $5);
	END IF;
	IF $2 IS NULL AND problem IS NULL AND NOT coalesce($4 ? 'freshness', false) THEN
		RAISE EXCEPTION 'schedule can not be NULL' USING ERRCODE = 'internal_error',
			HINT = 'a job runs on a schedule, or on freshness alone: add "freshness" and "sources" to its options';
	END IF;
	IF problem IS NOT NULL THEN
		RAISE EXCEPTION 'invalid options: %', problem
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'options are the settings of a job file (pgcrond.conf(5)), as a JSON object';
	END IF;
	-- a job on freshness alone goes through cron.schedule's checks with a stand-in schedule,
	-- replaced by '' before the transaction commits (the daemon reads jobs at commit)
	IF $5 IS NULL THEN
		id := cron.schedule($1, coalesce($2, '@yearly'), $3);
	ELSE
		id := cron.schedule_in_database($1, coalesce($2, '@yearly'), $3, $5);
	END IF;
	IF $2 IS NULL THEN
		PERFORM set_config('pgcrond.freshness_only', 'on', true);
		UPDATE cron.job SET schedule = '' WHERE jobid = id;
		PERFORM set_config('pgcrond.freshness_only', 'off', true);
	END IF;
	INSERT INTO pgcrond.job_options AS o (jobid, options) VALUES (id, coalesce($4, '{}'))
	ON CONFLICT (jobid) DO UPDATE SET options = EXCLUDED.options;
	RETURN id;
END
$fn$;
COMMENT ON FUNCTION pgcrond.schedule(text, text, text, jsonb, text) IS 'schedule a job with pgcrond''s settings (retries, timeout, overlap, timezone, freshness ...); returns its jobid';

INSERT INTO pgcrond.schema_version (version) VALUES (15) ON CONFLICT DO NOTHING;
