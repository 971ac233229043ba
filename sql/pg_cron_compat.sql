-- pg_cron's user-facing API for hosts without pg_cron: the table cron.job, the view
-- cron.job_run_details, and cron.schedule, cron.schedule_in_database, cron.unschedule and
-- cron.alter_job with pg_cron's signatures, defaults, grants, row-level security and error
-- texts, so `SELECT cron.schedule(...)` from migrations and applications works unchanged.
-- A job written here is mirrored into pgcrond.job and picked up by the daemon at commit
-- (pgcrond--3.sql holds the triggers that do it), and runs as the role that owns it.
--
-- Applied by every `pgcrond install` after the schema steps. It does nothing when a "cron"
-- schema exists that pgcrond did not create (pg_cron is installed, or someone else owns the
-- name); everything else is idempotent, so a second install changes nothing. To move to
-- pg_cron later: pgcrond uninstall --restore-pg-cron (docs/migrating.md). Or by hand: save the jobs of cron.job, DROP
-- SCHEMA cron CASCADE; CREATE EXTENSION pg_cron; and schedule them there.
--
-- The functions are SECURITY INVOKER: like pg_cron's C functions they check the caller
-- (current_user) themselves, and the rows they write pass cron.job's row-level security, so
-- a role can only ever write jobs of its own (superusers and the table's owner: any). A
-- SECURITY DEFINER function could not tell who called it (current_user is its owner there).
DO $compat$
DECLARE
	ours constant text := 'pgcrond: pg_cron compatibility views';
	seq text;
BEGIN
	IF EXISTS (SELECT FROM pg_namespace WHERE nspname = 'cron') THEN
		IF EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') THEN
			RETURN;
		END IF;
		-- pgcrond's comment on a schema another role owns is that role's word, not pgcrond's
		IF obj_description('cron'::regnamespace, 'pg_namespace') IS DISTINCT FROM ours
		   OR (SELECT nspowner FROM pg_namespace WHERE nspname = 'cron')
		      IS DISTINCT FROM (SELECT nspowner FROM pg_namespace WHERE nspname = 'pgcrond') THEN
			RAISE WARNING 'schema "cron" exists and is not pgcrond''s (someone else made it): pgcrond leaves it alone and does not serve cron.schedule in database %',
				current_database();
			RETURN;
		END IF;
	ELSE
		CREATE SCHEMA cron;
		EXECUTE format('COMMENT ON SCHEMA cron IS %L', ours);
	END IF;

	-- versions 1 and 2 made cron.job a read-only view: it becomes pg_cron's table
	IF EXISTS (SELECT FROM pg_class WHERE oid = to_regclass('cron.job') AND relkind = 'v') THEN
		DROP VIEW cron.job;
	END IF;
	-- jobids come from pgcrond.job's own sequence, so a SQL job and a file job never share one
	seq := pg_get_serial_sequence('pgcrond.job', 'jobid');
	IF to_regclass('cron.job') IS NULL THEN
		EXECUTE format($t$
			CREATE TABLE cron.job (
				jobid bigint PRIMARY KEY DEFAULT pg_catalog.nextval(%L::regclass),
				schedule text NOT NULL,
				command text NOT NULL,
				nodename text NOT NULL DEFAULT 'localhost',
				nodeport integer NOT NULL DEFAULT pg_catalog.current_setting('port')::integer,
				database text NOT NULL DEFAULT pg_catalog.current_database(),
				username text NOT NULL DEFAULT current_user,
				active boolean NOT NULL DEFAULT true,
				jobname name,
				CONSTRAINT jobname_username_uniq UNIQUE (jobname, username)
			)$t$, seq);
		COMMENT ON TABLE cron.job IS 'pg_cron''s job table, kept by pgcrond: jobs scheduled in SQL (a role sees and changes only its own)';
		ALTER TABLE cron.job ENABLE ROW LEVEL SECURITY;
		CREATE POLICY cron_job_policy ON cron.job USING (username OPERATOR(pg_catalog.=) current_user);
		-- pg_cron grants SELECT only and writes through its C functions as the extension's
		-- owner; here the functions run as the caller, so the caller writes its own rows
		-- (row-level security and the triggers check each one)
		GRANT SELECT, INSERT, UPDATE, DELETE ON cron.job TO PUBLIC;
		EXECUTE format('GRANT USAGE ON SEQUENCE %s TO PUBLIC', seq);
		CREATE TRIGGER cron_job_sync AFTER INSERT OR UPDATE OR DELETE ON cron.job
			FOR EACH ROW EXECUTE FUNCTION pgcrond.cron_job_sync();
	END IF;
	-- made again each time: the guard also sees deletes (it once saw inserts and updates only)
	DROP TRIGGER IF EXISTS cron_job_guard ON cron.job;
	CREATE TRIGGER cron_job_guard BEFORE INSERT OR UPDATE OR DELETE ON cron.job
		FOR EACH ROW EXECUTE FUNCTION pgcrond.cron_job_guard();

	-- pg_cron's columns; a role sees the runs of its own jobs (superusers, roles with
	-- BYPASSRLS and the owner of the history: all, as pg_cron's row-level security lets
	-- them), and may delete them, as pg_cron allows. A failed run's message reads as
	-- pg_cron writes it, libpq's whole error text: "ERROR:  division by zero" and a newline,
	-- the server's DETAIL and HINT each on a line of its own (pgcrond.job_run_details keeps
	-- the bare message and its SQLSTATE). pg_cron's CONTEXT lines are not kept. A run that
	-- never had a backend (no job_pid: it could not connect) keeps pgcrond's message, where
	-- pg_cron writes "connection failed".
	CREATE OR REPLACE VIEW cron.job_run_details WITH (security_barrier) AS
	SELECT jobid, runid, job_pid, database, username, command, status,
	       CASE WHEN status OPERATOR(pg_catalog.=) 'failed' AND sqlstate IS NOT NULL
	                 AND job_pid IS NOT NULL AND return_message IS NOT NULL
	            THEN (CASE WHEN sqlstate OPERATOR(pg_catalog.~~) '57P0_' THEN 'FATAL:  '
	                       ELSE 'ERROR:  ' END)
	                 OPERATOR(pg_catalog.||)
	                 pg_catalog.replace(pg_catalog.replace(return_message,
	                                                       ' DETAIL: ', E'\nDETAIL:  '),
	                                    ' HINT: ', E'\nHINT:  ')
	                 OPERATOR(pg_catalog.||) E'\n'
	            ELSE return_message END AS return_message,
	       start_time, end_time
	  FROM pgcrond.job_run_details
	 WHERE username OPERATOR(pg_catalog.=) current_user
	    OR (SELECT rolsuper OR rolbypassrls FROM pg_catalog.pg_roles
	         WHERE rolname OPERATOR(pg_catalog.=) current_user)
	    OR pg_catalog.pg_has_role(current_user,
	                              (SELECT relowner FROM pg_catalog.pg_class
	                                WHERE oid OPERATOR(pg_catalog.=) 'pgcrond.job_run_details'::pg_catalog.regclass),
	                              'MEMBER');
	GRANT SELECT, DELETE ON cron.job_run_details TO PUBLIC;

	-- The functions: static statements of this block, so they too are made only where the
	-- "cron" schema is ours.

-- A six-field schedule means two things: pgcrond reads the first field as seconds, pg_cron
-- ignores a sixth field and reads the first five as minute to day-of-week ("*/30 * * * * *":
-- every 30 seconds here, every 30 minutes there). For a schedule pgcrond reads with six fields:
-- the message naming both readings and a hint saying what to write so that both read it
-- alike; NULL for any other schedule. Worded as pgcrond import words it (cron_six_fields,
-- core/src/cron/cron_six.c).
CREATE OR REPLACE FUNCTION pgcrond.six_fields_note(schedule text)
RETURNS text[]
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	s constant text := btrim($1, E' \t\n\r\v\f');
	f text[];
	step integer;
	five text;
	rest text;
	five_ok boolean;
	ours text;
	theirs text;
	alike text;
	hint text;
BEGIN
	IF s IS NULL OR s = '' OR left(s, 1) = '@' THEN
		RETURN NULL;
	END IF;
	f := regexp_split_to_array(s, E'[ \t\n\r\v\f]+');
	IF array_length(f, 1) <> 6 OR pgcrond.schedule_problem(s) IS NOT NULL THEN
		RETURN NULL;
	END IF;
	-- "every N" only where N steps evenly through a minute or an hour ("*/45" is 0 and 45)
	step := CASE WHEN f[1] = '*' THEN 1
	             WHEN f[1] ~ '^\*/[0-9]{1,2}$' THEN substr(f[1], 3)::integer END;
	IF step < 1 OR step >= 60 OR 60 % step <> 0 THEN
		step := NULL;
	END IF;
	five := array_to_string(f[1:5], ' ');
	rest := array_to_string(f[2:6], ' ');
	five_ok := pgcrond.schedule_problem(five) IS NULL;
	IF step IS NOT NULL AND f[2:6] = ARRAY['*', '*', '*', '*', '*'] THEN
		ours := CASE WHEN step = 1 THEN 'every second' ELSE format('every %s seconds', step) END;
		alike := CASE WHEN step = 1 THEN '1 second' ELSE format('%s seconds', step) END;
	ELSE
		ours := format('second %s of "%s"', f[1], rest);
		alike := CASE WHEN f[1] = '0' THEN rest END;
	END IF;
	IF step IS NOT NULL AND f[2:5] = ARRAY['*', '*', '*', '*'] THEN
		theirs := CASE WHEN step = 1 THEN 'every minute' ELSE format('every %s minutes', step) END;
	ELSE
		theirs := format('as "%s"%s', five, CASE WHEN five_ok THEN '' ELSE ', which is no valid schedule' END);
	END IF;
	IF five_ok AND alike IS NOT NULL THEN
		hint := format('So that both read it alike, write "%s" for pg_cron''s reading or "%s" for pgcrond''s.', five, alike);
	ELSIF five_ok THEN
		hint := format('So that both read it alike, write "%s" for pg_cron''s reading; pgcrond''s has no form pg_cron reads (pg_cron has no seconds field).', five);
	ELSIF alike IS NOT NULL THEN
		hint := format('So that both read it alike, write "%s" for pgcrond''s reading.', alike);
	ELSE
		hint := 'pgcrond''s reading has no form pg_cron reads (pg_cron has no seconds field).';
	END IF;
	RETURN ARRAY[format('schedule "%s" has six fields: pgcrond reads the first as seconds (%s); pg_cron ignores a sixth field (%s)', s, ours, theirs), hint];
END
$fn$;

-- cron.schedule and cron.alter_job: pgcrond keeps its own reading of a six-field schedule
-- (seconds first) and says so, since the caller may have written it for pg_cron.
CREATE OR REPLACE FUNCTION pgcrond.notice_six_fields(schedule text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	note constant text[] := pgcrond.six_fields_note($1);
BEGIN
	IF note IS NOT NULL THEN
		RAISE NOTICE '%', note[1] USING HINT = note[2];
	END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION cron.schedule(schedule text, command text)
RETURNS bigint
LANGUAGE plpgsql
STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	id bigint;
BEGIN
	PERFORM pgcrond.check_schedule($1); -- before a jobid is drawn, as pg_cron
	INSERT INTO cron.job (schedule, command) VALUES ($1, $2) RETURNING jobid INTO id;
	PERFORM pgcrond.notice_six_fields($1);
	RETURN id;
END
$fn$;
COMMENT ON FUNCTION cron.schedule(text, text) IS 'schedule a pg_cron job';

CREATE OR REPLACE FUNCTION cron.schedule(job_name text, schedule text, command text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	id bigint;
BEGIN
	IF $1 IS NULL THEN RAISE EXCEPTION 'job_name can not be NULL' USING ERRCODE = 'internal_error'; END IF;
	IF $2 IS NULL THEN RAISE EXCEPTION 'schedule can not be NULL' USING ERRCODE = 'internal_error'; END IF;
	IF $3 IS NULL THEN RAISE EXCEPTION 'command can not be NULL' USING ERRCODE = 'internal_error'; END IF;
	PERFORM pgcrond.check_schedule($2);
	INSERT INTO cron.job AS j (schedule, command, jobname) VALUES ($2, $3, $1)
	ON CONFLICT ON CONSTRAINT jobname_username_uniq DO UPDATE
	   SET schedule = EXCLUDED.schedule, command = EXCLUDED.command, database = EXCLUDED.database
	RETURNING jobid INTO id;
	PERFORM pgcrond.notice_six_fields($2);
	RETURN id;
END
$fn$;
COMMENT ON FUNCTION cron.schedule(text, text, text) IS 'schedule a pg_cron job';

-- pg_cron's checks of a job's role and database, with its messages: ROLE (NULL: the caller)
-- exists and may log in; with CHECK_DB, DATABASE exists and the role may connect to it.
CREATE OR REPLACE FUNCTION pgcrond.check_job_target(role text, database text, check_db boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	login boolean;
BEGIN
	IF role IS NOT NULL THEN
		SELECT rolcanlogin INTO login FROM pg_roles WHERE rolname = role;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'role "%" does not exist', role USING ERRCODE = 'internal_error';
		ELSIF NOT login THEN
			RAISE EXCEPTION 'role "%" can not log in', role
				USING ERRCODE = 'internal_error', DETAIL = 'Jobs may only be run by roles that have the LOGIN attribute.';
		END IF;
	END IF;
	IF check_db THEN
		IF NOT EXISTS (SELECT FROM pg_database WHERE datname = database) THEN
			RAISE EXCEPTION 'database "%" does not exist', database USING ERRCODE = '3D000';
		END IF;
		IF NOT has_database_privilege(coalesce(role, current_user::text), database, 'CONNECT') THEN
			RAISE EXCEPTION 'User % does not have CONNECT privilege on %', coalesce(role, current_user::text), database USING ERRCODE = 'internal_error';
		END IF;
	END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION cron.schedule_in_database(job_name text, schedule text, command text,
                                                     database text, username text DEFAULT NULL,
                                                     active boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	id bigint;
BEGIN
	IF $1 IS NULL THEN RAISE EXCEPTION 'job_name can not be NULL' USING ERRCODE = 'internal_error'; END IF;
	IF $2 IS NULL THEN RAISE EXCEPTION 'schedule can not be NULL' USING ERRCODE = 'internal_error'; END IF;
	IF $3 IS NULL THEN RAISE EXCEPTION 'command can not be NULL' USING ERRCODE = 'internal_error'; END IF;
	PERFORM pgcrond.check_schedule($2);
	IF $5 IS NOT NULL AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
		RAISE EXCEPTION 'must be superuser to create a job for another role' USING ERRCODE = 'internal_error';
	END IF;
	PERFORM pgcrond.check_job_target($5, $4, true);
	INSERT INTO cron.job AS j (schedule, command, database, username, active, jobname)
	VALUES ($2, $3, coalesce($4, current_database()), coalesce($5, current_user::text),
	        coalesce($6, true), $1)
	ON CONFLICT ON CONSTRAINT jobname_username_uniq DO UPDATE
	   SET schedule = EXCLUDED.schedule, command = EXCLUDED.command, database = EXCLUDED.database
	RETURNING jobid INTO id;
	PERFORM pgcrond.notice_six_fields($2);
	RETURN id;
END
$fn$;
COMMENT ON FUNCTION cron.schedule_in_database(text, text, text, text, text, boolean) IS 'schedule a pg_cron job';
-- an admin decides whether a role may run jobs in other databases, as with pg_cron
REVOKE ALL ON FUNCTION cron.schedule_in_database(text, text, text, text, text, boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION cron.unschedule(job_id bigint)
RETURNS boolean
LANGUAGE plpgsql
STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	DELETE FROM cron.job WHERE jobid = $1;
	IF NOT FOUND AND pgcrond.cron_job_exists($1) THEN
		RAISE EXCEPTION 'permission denied for table job' USING ERRCODE = 'insufficient_privilege';
	ELSIF NOT FOUND THEN
		RAISE EXCEPTION 'could not find valid entry for job %', $1 USING ERRCODE = 'internal_error';
	END IF;
	RETURN true;
END
$fn$;
COMMENT ON FUNCTION cron.unschedule(bigint) IS 'unschedule a pg_cron job';

CREATE OR REPLACE FUNCTION cron.unschedule(job_name name)
RETURNS boolean
LANGUAGE plpgsql
STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	DELETE FROM cron.job WHERE jobname = $1 AND username = current_user;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'could not find valid entry for job ''%''', $1 USING ERRCODE = 'internal_error';
	END IF;
	RETURN true;
END
$fn$;
COMMENT ON FUNCTION cron.unschedule(name) IS 'unschedule a pg_cron job';

CREATE OR REPLACE FUNCTION cron.alter_job(job_id bigint, schedule text DEFAULT NULL,
                                          command text DEFAULT NULL, database text DEFAULT NULL,
                                          username text DEFAULT NULL, active boolean DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	su boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
BEGIN
	IF $1 IS NULL THEN RAISE EXCEPTION 'job_id can not be NULL' USING ERRCODE = 'internal_error'; END IF;
	IF $5 IS NOT NULL AND NOT su THEN
		RAISE EXCEPTION 'must be superuser to alter username' USING ERRCODE = 'internal_error';
	END IF;
	PERFORM pgcrond.check_job_target($5, $4, $4 IS NOT NULL);
	IF $2 IS NOT NULL THEN
		PERFORM pgcrond.check_schedule($2);
	END IF;
	IF num_nonnulls($2, $3, $4, $5, $6) = 0 THEN
		RAISE EXCEPTION 'no updates specified'
			USING ERRCODE = 'internal_error', HINT = 'You must specify at least one job attribute to change when calling alter_job';
	END IF;
	UPDATE cron.job j
	   SET schedule = coalesce($2, j.schedule), command = coalesce($3, j.command),
	       database = coalesce($4, j.database), username = coalesce($5, j.username),
	       active = coalesce($6, j.active)
	 WHERE j.jobid = $1 AND (su OR j.username = current_user);
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Job % does not exist or you don''t own it', $1 USING ERRCODE = 'internal_error';
	END IF;
	IF $2 IS NOT NULL THEN
		PERFORM pgcrond.notice_six_fields($2);
	END IF;
END
$fn$;
COMMENT ON FUNCTION cron.alter_job(bigint, text, text, text, text, boolean) IS 'Alter the job identified by job_id. Any option left as NULL will not be modified.';
-- an admin decides whether alter_job is safe by granting it, as with pg_cron
REVOKE ALL ON FUNCTION cron.alter_job(bigint, text, text, text, text, boolean) FROM PUBLIC;
END
$compat$;
