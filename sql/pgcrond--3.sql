-- pgcrond schema, version 3: jobs made in SQL.
--
-- pgcrond.job becomes the registry of both kinds of job: file jobs (source 'file', written by
-- `pgcrond install` from the config files) and SQL jobs (source 'sql', mirrored from
-- cron.job, pg_cron's table, which pg_cron_compat.sql creates where no foreign "cron" schema
-- exists). A SQL job belongs to the role in its username column and runs as that role.
-- The daemon LISTENs on pgcrond_jobs; every change to a SQL job notifies it at commit.
-- Applied by `pgcrond install` after pgcrond--2.sql (see pgcrond--1.sql).

ALTER TABLE pgcrond.job ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'file';
ALTER TABLE pgcrond.job ADD COLUMN IF NOT EXISTS username text;
ALTER TABLE pgcrond.job ADD COLUMN IF NOT EXISTS cron_jobname text;
ALTER TABLE pgcrond.job ADD COLUMN IF NOT EXISTS defined_at text;
ALTER TABLE pgcrond.job ADD COLUMN IF NOT EXISTS options jsonb NOT NULL DEFAULT '{}';
DO $do$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_constraint
	               WHERE conrelid = 'pgcrond.job'::regclass AND conname = 'job_source_check') THEN
		ALTER TABLE pgcrond.job ADD CONSTRAINT job_source_check CHECK (source IN ('file', 'sql'));
	END IF;
END
$do$;
COMMENT ON TABLE pgcrond.job IS 'every job: from the config files (source file, as of the last pgcrond install) and from SQL (source sql, mirrored from cron.job at commit)';
COMMENT ON COLUMN pgcrond.job.username IS 'SQL jobs: the role the job belongs to and runs as';
COMMENT ON COLUMN pgcrond.job.cron_jobname IS 'SQL jobs: the name given to cron.schedule (NULL for an unnamed job, whose jobname is cron-job-JOBID)';
COMMENT ON COLUMN pgcrond.job.defined_at IS 'file jobs: FILE:LINE of the job = { } group';
COMMENT ON COLUMN pgcrond.job.options IS 'SQL jobs: the job-file settings given to pgcrond.schedule(), as a JSON object';

-- What is wrong with a schedule, or NULL: the grammar pgcrond accepts (cron.c), so a bad
-- schedule is refused when it is written, as pg_cron does, not later by the daemon. Five or six
-- fields (lists, ranges, */n, a-b/n, month and day names, $ as the whole day-of-month), the
-- macros, and "N seconds" (1-59). A day that no month has (0 0 30 2 *) passes here; the daemon
-- refuses such a job and logs why.
CREATE OR REPLACE FUNCTION pgcrond.schedule_problem(schedule text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	s text := btrim($1, E' \t\n\r\v\f');
	tok text[];
	n integer;
	names constant text[] := ARRAY['second', 'minute', 'hour', 'day-of-month', 'month', 'day-of-week'];
	lo constant integer[] := ARRAY[0, 0, 0, 1, 1, 0];
	hi constant integer[] := ARRAY[59, 59, 23, 31, 12, 7];
	months constant text[] := ARRAY['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
	days constant text[] := ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
	first integer;
	f integer;
	elem text;
	m text[];
	a numeric;
	b numeric;
	v text;
	k integer;
BEGIN
	IF s IS NULL OR s = '' THEN
		RETURN 'the schedule is empty';
	END IF;
	tok := regexp_split_to_array(s, E'[ \t\n\r\v\f]+');
	n := array_length(tok, 1);
	IF left(s, 1) = '@' THEN
		IF lower(tok[1]) NOT IN ('@yearly', '@annually', '@monthly', '@weekly', '@daily',
		                         '@midnight', '@hourly', '@reboot', '@restart') THEN
			RETURN format('unknown macro "%s"', tok[1]);
		ELSIF n > 1 THEN
			RETURN format('unexpected text after %s; a macro stands alone', tok[1]);
		END IF;
		RETURN NULL;
	END IF;
	-- "N seconds", also "Nseconds" and the singular
	IF n = 2 AND lower(tok[2]) IN ('seconds', 'second') THEN
		IF tok[1] !~ '^[0-9]+$' OR tok[1]::numeric NOT BETWEEN 1 AND 59 THEN
			RETURN 'an interval must be 1 to 59 seconds';
		END IF;
		RETURN NULL;
	ELSIF n = 1 AND tok[1] ~* '^[0-9]+seconds?$' THEN
		IF substring(tok[1] FROM '^[0-9]+')::numeric NOT BETWEEN 1 AND 59 THEN
			RETURN 'an interval must be 1 to 59 seconds';
		END IF;
		RETURN NULL;
	END IF;
	IF n NOT IN (5, 6) THEN
		RETURN format('expected 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; found %s', n);
	END IF;
	first := CASE WHEN n = 6 THEN 1 ELSE 2 END;
	FOR f IN first .. 6 LOOP
		v := tok[f - first + 1];
		CONTINUE WHEN f = 4 AND v = '$';
		FOREACH elem IN ARRAY string_to_array(v, ',') LOOP
			m := regexp_match(elem, '^(?:(\*)|([0-9]+|[A-Za-z]+)(?:-([0-9]+|[A-Za-z]+))?)(?:/([0-9]+))?$');
			IF m IS NULL THEN
				RETURN format('"%s" is not a valid element of the %s field', elem, names[f]);
			END IF;
			IF m[1] IS NULL AND m[3] IS NULL AND m[4] IS NOT NULL THEN
				RETURN format('a step needs * or a range before it (%s field)', names[f]);
			END IF;
			IF m[4] IS NOT NULL AND (m[4]::numeric < 1 OR m[4]::numeric > 2147483647) THEN
				RETURN format('step %s is out of range 1-2147483647 (%s field)', m[4], names[f]);
			END IF;
			CONTINUE WHEN m[1] IS NOT NULL;
			a := NULL;
			b := NULL;
			FOR k IN 2 .. 3 LOOP
				v := m[k];
				CONTINUE WHEN v IS NULL;
				IF v ~ '^[0-9]+$' THEN
					IF v::numeric NOT BETWEEN lo[f] AND hi[f] THEN
						RETURN format('%s %s is out of range %s-%s', names[f], v, lo[f], hi[f]);
					END IF;
				ELSIF f = 5 AND lower(v) = ANY (months) THEN
					v := array_position(months, lower(v))::text;
				ELSIF f = 6 AND lower(v) = ANY (days) THEN
					v := (array_position(days, lower(v)) - 1)::text;
				ELSE
					RETURN format('"%s" is not a value of the %s field', v, names[f]);
				END IF;
				IF k = 2 THEN a := v::numeric; ELSE b := v::numeric; END IF;
			END LOOP;
			IF b IS NOT NULL AND b < a THEN
				RETURN format('range %s runs backwards', elem);
			END IF;
		END LOOP;
	END LOOP;
	RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION pgcrond.schedule_problem(text) IS 'what is wrong with a cron schedule, or NULL when pgcrond accepts it';

-- pg_cron's error for a schedule it cannot use, raised when the schedule is written.
CREATE OR REPLACE FUNCTION pgcrond.check_schedule(schedule text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	problem text := pgcrond.schedule_problem($1);
BEGIN
	IF problem IS NOT NULL THEN
		RAISE EXCEPTION 'invalid schedule: %', $1
			USING ERRCODE = 'invalid_parameter_value', DETAIL = problem,
			      HINT = 'Use cron format (e.g. 5 4 * * *), or interval format ''[1-59] seconds''';
	END IF;
END
$fn$;

-- The cron.* functions run as their caller and check schedules with the functions above, so
-- every role may reach them; the tables of this schema stay closed (no grants on them).
GRANT USAGE ON SCHEMA pgcrond TO PUBLIC;

-- Whether cron.job holds JOBID at all, whoever owns it: pg_cron's unschedule tells "not
-- yours" (permission denied) from "no such job", and so does pgcrond's.
CREATE OR REPLACE FUNCTION pgcrond.cron_job_exists(jobid bigint)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN RETURN EXISTS (SELECT FROM cron.job j WHERE j.jobid = $1); END $fn$;

-- A job name the daemon can carry: 1-63 of letters, digits, "_", "." and "-" (as in job files).
CREATE OR REPLACE FUNCTION pgcrond.valid_job_name(name text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT $1 ~ '^[A-Za-z0-9_.-]{1,63}$' $fn$;

-- The daemon's name for a cron.job row: its jobname, or cron-job-JOBID when it has none.
CREATE OR REPLACE FUNCTION pgcrond.sql_job_name(jobname text, jobid bigint)
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT coalesce($1, 'cron-job-' || $2) $fn$;

-- BEFORE INSERT OR UPDATE on cron.job, as the caller (SECURITY INVOKER: current_user is the
-- role writing the row). pg_cron revokes schedule_in_database and alter_job from PUBLIC so
-- that an admin decides who may run jobs in other databases or switch them off; a role that
-- writes cron.job directly must have the same grant. Row-level security keeps username at
-- current_user for everyone but superusers and the table's owner.
CREATE OR REPLACE FUNCTION pgcrond.cron_job_guard()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	may boolean := has_function_privilege('cron.schedule_in_database(text,text,text,text,text,boolean)', 'EXECUTE')
	               OR has_function_privilege('cron.alter_job(bigint,text,text,text,text,boolean)', 'EXECUTE');
	seq text;
	drawn bigint;
BEGIN
	IF current_setting('pgcrond.file_sync', true) = 'on' THEN
		RETURN NEW;
	END IF;
	IF TG_OP = 'UPDATE' AND NEW.jobid IS DISTINCT FROM OLD.jobid THEN
		RAISE EXCEPTION 'the jobid of a job cannot change' USING ERRCODE = 'insufficient_privilege';
	END IF;
	-- jobids come from the sequence: a role that writes its own (a future one, or one of an
	-- old job's history) gets the next one instead; the table's owner may (pgcrond import)
	IF TG_OP = 'INSERT' AND NOT pg_has_role((SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER')
	   AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
		seq := pg_get_serial_sequence('pgcrond.job', 'jobid');
		BEGIN
			drawn := currval(seq);
		EXCEPTION WHEN object_not_in_prerequisite_state THEN
			drawn := NULL;
		END;
		IF NEW.jobid IS DISTINCT FROM drawn THEN
			NEW.jobid := nextval(seq);
		END IF;
	END IF;
	IF NOT may AND NEW.database IS DISTINCT FROM current_database()
	   AND (TG_OP = 'INSERT' OR NEW.database IS DISTINCT FROM OLD.database) THEN
		RAISE EXCEPTION 'permission denied for function schedule_in_database'
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'a job in another database needs EXECUTE on cron.schedule_in_database or cron.alter_job, which an admin grants';
	END IF;
	IF NOT may AND ((TG_OP = 'INSERT' AND NOT NEW.active)
	                OR (TG_OP = 'UPDATE' AND NEW.active IS DISTINCT FROM OLD.active)) THEN
		RAISE EXCEPTION 'permission denied for function alter_job'
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'switching a job on or off needs EXECUTE on cron.alter_job, which an admin grants';
	END IF;
	RETURN NEW;
END
$fn$;

-- AFTER INSERT OR UPDATE OR DELETE on cron.job: check the row and mirror it into pgcrond.job,
-- then wake the daemon (pg_notify is delivered at commit, so it reads committed rows only).
-- SECURITY DEFINER, to see every job's name; it trusts NEW.username because row-level
-- security has already held it to the writing role.
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

-- The file jobs' rows in cron.job (pgcrond's own, where pg_cron is not installed), so
-- cron.job lists every job as pg_cron's does; they belong to the role that installs (the
-- daemon's), which row-level security shows them to. Called by `pgcrond install` after it
-- recorded the file jobs in pgcrond.job. The setting pgcrond.file_sync tells the triggers
-- these rows are not SQL jobs; a role that sets it itself only writes rows nobody runs.
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
	SELECT j.jobid, coalesce(j.schedule, ''), coalesce(j.command, 'plugin ' || j.plugin),
	       j.database, current_user, j.enabled, j.jobname
	  FROM pgcrond.job j
	 WHERE j.source = 'file' AND j.removed_at IS NULL
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

-- The file jobs as the daemon loaded them (after a start or a reload), as a JSON array of
-- {name, plugin, command, schedule, database, after, listen, enabled, max_staleness_ms,
-- defined_at}: recorded in pgcrond.job and cron.job as `pgcrond install` records them, so the
-- registry follows every reload. A name a SQL job holds stays the SQL job's (the daemon leaves
-- the file job out of nothing; `pgcrond install` reports the clash).
CREATE OR REPLACE FUNCTION pgcrond.record_file_jobs(jobs jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
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
	UPDATE pgcrond.job SET enabled = false, removed_at = now(), updated_at = now()
	 WHERE removed_at IS NULL AND source = 'file'
	   AND jobname NOT IN (SELECT e ->> 'name' FROM jsonb_array_elements($1) e);
	PERFORM pgcrond.sync_file_jobs();
END
$fn$;
REVOKE ALL ON FUNCTION pgcrond.record_file_jobs(jsonb) FROM PUBLIC;

-- ---- pgcrond.schedule(): everything a job file can say, from SQL --------------------------

-- What is wrong with OPTIONS (the job-file settings of a SQL job, as a JSON object), or NULL.
-- The daemon checks the job again as `pgcrond check` checks a job file, and logs a refusal
-- with check's message; this catches what can be caught while the caller waits.
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
		"timezone": "zone"}';
	kind jsonb;
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
		ELSIF kind #>> '{}' = 'duration' THEN
			IF jsonb_typeof(kv.value) <> 'string' OR (kv.value #>> '{}') !~ '^\s*([0-9]+\s*(ms|s|m|h|d)\s*)+$' THEN
				RETURN format('%s must be a duration like "30s", "5m", "2h" or "7d", not %s', kv.key, kv.value);
			END IF;
		ELSIF kind #>> '{}' IN ('count', 'positive') THEN
			IF jsonb_typeof(kv.value) <> 'number' OR (kv.value #>> '{}') !~ '^[0-9]+$'
			   OR (kv.value #>> '{}')::numeric > 1000000000
			   OR (kind #>> '{}' = 'positive' AND (kv.value #>> '{}')::numeric < 1) THEN
				RETURN format('%s must be a whole number%s, not %s', kv.key,
				              CASE WHEN kind #>> '{}' = 'positive' THEN ' of at least 1' ELSE '' END, kv.value);
			END IF;
		ELSIF kind #>> '{}' = 'factor' THEN
			IF jsonb_typeof(kv.value) <> 'number' OR (kv.value #>> '{}')::numeric < 1 THEN
				RETURN format('%s must be a number of at least 1, not %s', kv.key, kv.value);
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
	RETURN NULL;
END
$fn$;

-- A SQL job's options, written by pgcrond.schedule() as the caller: row-level security keeps a
-- role to its own rows, and the trigger takes options only for a job of the same role.
CREATE TABLE IF NOT EXISTS pgcrond.job_options (
	jobid    bigint PRIMARY KEY,
	username text NOT NULL DEFAULT current_user,
	options  jsonb NOT NULL
);
COMMENT ON TABLE pgcrond.job_options IS 'the job-file settings of SQL jobs, as given to pgcrond.schedule()';
ALTER TABLE pgcrond.job_options ENABLE ROW LEVEL SECURITY;
DO $do$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_policies WHERE schemaname = 'pgcrond' AND tablename = 'job_options') THEN
		CREATE POLICY job_options_policy ON pgcrond.job_options USING (username = current_user);
	END IF;
END
$do$;
GRANT SELECT, INSERT, UPDATE, DELETE ON pgcrond.job_options TO PUBLIC;

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
		UPDATE pgcrond.job SET options = '{}', updated_at = now() WHERE jobid = OLD.jobid AND source = 'sql';
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
	UPDATE pgcrond.job SET options = NEW.options, updated_at = now() WHERE jobid = NEW.jobid;
	PERFORM pg_notify('pgcrond_jobs', NEW.jobid::text);
	RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION pgcrond.job_options_sync() FROM PUBLIC;
DO $do$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgname = 'job_options_sync'
	                                        AND tgrelid = 'pgcrond.job_options'::regclass) THEN
		CREATE TRIGGER job_options_sync AFTER INSERT OR UPDATE OR DELETE ON pgcrond.job_options
			FOR EACH ROW EXECUTE FUNCTION pgcrond.job_options_sync();
	END IF;
END
$do$;

-- pgcrond's own cron.schedule: a SQL job with everything a job file can say about it, e.g.
--   SELECT pgcrond.schedule('rollup', '*/5 * * * *', 'CALL rollup()',
--                           '{"retries": 3, "retry_delay": "30s", "timeout": "2m",
--                             "timezone": "Europe/Berlin"}');
-- Same name and role: updated in place (same jobid), options replaced. DATABASE: as
-- cron.schedule_in_database (an admin grants it). Runs as the caller.
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
	IF problem IS NOT NULL THEN
		RAISE EXCEPTION 'invalid options: %', problem
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'options are the settings of a job file (pgcrond.conf(5)), as a JSON object';
	END IF;
	IF $5 IS NULL THEN
		id := cron.schedule($1, $2, $3);
	ELSE
		id := cron.schedule_in_database($1, $2, $3, $5);
	END IF;
	INSERT INTO pgcrond.job_options AS o (jobid, options) VALUES (id, coalesce($4, '{}'))
	ON CONFLICT (jobid) DO UPDATE SET options = EXCLUDED.options;
	RETURN id;
END
$fn$;
COMMENT ON FUNCTION pgcrond.schedule(text, text, text, jsonb, text) IS 'schedule a job with pgcrond''s settings (retries, timeout, overlap, timezone ...); returns its jobid';

INSERT INTO pgcrond.schema_version (version) VALUES (3) ON CONFLICT DO NOTHING;
