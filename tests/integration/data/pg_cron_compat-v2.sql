-- pg_cron_compat.sql as pgcrond 0.1 shipped it with schema version 2 (read-only views),
-- for it_history_part's migration of a version-2 installation.
-- pg_cron compatibility for hosts without pg_cron: cron.job and cron.job_run_details as
-- views over pgcrond's tables, so dashboards and runbooks that query pg_cron's catalog
-- (SELECT * FROM cron.job_run_details ORDER BY start_time DESC) keep working.
--
-- Applied by every `pgcrond install` after the schema. It does nothing when a "cron"
-- schema exists that pgcrond did not create (pg_cron is installed, or someone else owns
-- the name), and nothing when the views are already there, so a second install changes
-- nothing. To move to pg_cron later: DROP SCHEMA cron CASCADE; CREATE EXTENSION pg_cron.
DO $compat$
DECLARE
	ours constant text := 'pgcrond: pg_cron compatibility views';
BEGIN
	IF EXISTS (SELECT FROM pg_namespace WHERE nspname = 'cron') THEN
		IF EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron')
		   OR obj_description('cron'::regnamespace, 'pg_namespace') IS DISTINCT FROM ours THEN
			RETURN;
		END IF;
	ELSE
		CREATE SCHEMA cron;
		EXECUTE format('COMMENT ON SCHEMA cron IS %L', ours);
	END IF;

	IF to_regclass('cron.job_run_details') IS NULL THEN
		CREATE VIEW cron.job_run_details AS
		SELECT jobid, runid, job_pid, database, username, command, status,
		       return_message, start_time, end_time
		  FROM pgcrond.job_run_details;
	END IF;
	IF to_regclass('cron.job') IS NULL THEN
		CREATE VIEW cron.job AS
		SELECT jobid, schedule,
		       coalesce(command, 'plugin ' || plugin) AS command,
		       NULL::text AS nodename, NULL::integer AS nodeport,
		       database, NULL::text AS username, enabled AS active, jobname
		  FROM pgcrond.job
		 WHERE removed_at IS NULL;
	END IF;
END
$compat$;
