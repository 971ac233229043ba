-- pgcrond schema, step 14: dropping the "cron" schema (or its table cron.job) stops the SQL
-- jobs it held (docs/migrating.md "The way back").
--
-- A job made in SQL (cron.schedule) lives in pgcrond's own cron.job and is mirrored into
-- pgcrond.job by the row triggers of pgcrond--3.sql. DROP SCHEMA cron CASCADE fires no row
-- trigger, and a foreign key would only be dropped with the schema, not cascade to rows:
-- until this step the SQL jobs stayed in pgcrond.job and went on running, where
-- cron.unschedule could no longer reach them. Now an event trigger on sql_drop sees the
-- drop of pgcrond's cron.job (its trigger cron_job_sync goes with it) and removes the SQL
-- jobs as cron.unschedule does: disabled, removed_at set (their history keeps its jobid),
-- the daemon woken on pgcrond_jobs.
--
-- Event triggers can only be made by a superuser: an install by a role that is not one
-- leaves a warning and no trigger (then unschedule the jobs before dropping the schema, or
-- have a superuser run the CREATE EVENT TRIGGER below).
-- The function runs as the role that drops: only cron's owner (the installing role) or a
-- superuser can drop pgcrond's cron schema, and both may write pgcrond.job; for any other
-- role's drop it does nothing.

CREATE OR REPLACE FUNCTION pgcrond.cron_job_dropped()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	r record;
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() d
	                WHERE d.object_type OPERATOR(pg_catalog.=) 'trigger'
	                  AND d.object_identity OPERATOR(pg_catalog.=) 'cron_job_sync on cron.job')
	   OR pg_catalog.to_regclass('pgcrond.job') IS NULL
	   OR NOT pg_catalog.has_table_privilege('pgcrond.job', 'UPDATE') THEN
		RETURN;
	END IF;
	FOR r IN UPDATE pgcrond.job SET enabled = false, removed_at = pg_catalog.now(),
	                                updated_at = pg_catalog.now()
	          WHERE source OPERATOR(pg_catalog.=) 'sql' AND removed_at IS NULL
	          RETURNING jobid
	LOOP
		DELETE FROM pgcrond.job_options WHERE jobid OPERATOR(pg_catalog.=) r.jobid;
		PERFORM pg_catalog.pg_notify('pgcrond_jobs', r.jobid::pg_catalog.text);
	END LOOP;
END
$fn$;
COMMENT ON FUNCTION pgcrond.cron_job_dropped() IS
	'sql_drop event trigger: dropping pgcrond''s cron.job (DROP SCHEMA cron CASCADE) removes the jobs made in SQL, as cron.unschedule does';
REVOKE ALL ON FUNCTION pgcrond.cron_job_dropped() FROM PUBLIC;

DO $do$
BEGIN
	IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) THEN
		DROP EVENT TRIGGER IF EXISTS pgcrond_cron_job_dropped;
		CREATE EVENT TRIGGER pgcrond_cron_job_dropped ON sql_drop
			EXECUTE FUNCTION pgcrond.cron_job_dropped();
	ELSE
		RAISE WARNING 'role "%" is not a superuser: DROP SCHEMA cron CASCADE will not stop the jobs made in SQL', current_user
			USING HINT = 'unschedule them (cron.unschedule) before dropping the schema, or have a superuser run: CREATE EVENT TRIGGER pgcrond_cron_job_dropped ON sql_drop EXECUTE FUNCTION pgcrond.cron_job_dropped()';
	END IF;
END
$do$;

INSERT INTO pgcrond.schema_version (version) VALUES (14) ON CONFLICT DO NOTHING;
