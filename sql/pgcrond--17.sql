-- pgcrond schema, step 17: a run's transaction id, so a takeover never retries a run that
-- committed (issue 24, "fenced takeover").
--
-- With several instances, a run whose instance is found dead (or whose process was killed
-- and restarted) was closed as failed and retried, although its transaction may have
-- committed after the last word its instance wrote: its work was then done twice. A run
-- whose command may share a pipeline (one statement: SELECT, INSERT, UPDATE, DELETE, MERGE,
-- WITH, VALUES, TABLE, REFRESH) now asks for its transaction id in the same transaction,
-- before the command runs, and its instance writes it here. The instance that closes the run
-- first ends its backend (so the transaction can no longer commit), then asks the server
-- whether that transaction committed: if it did, the run is recorded as succeeded and is not
-- retried. Applied by `pgcrond install` (see pgcrond--1.sql).

-- One row per run whose id its instance wrote; deleted with the claims' purge (two days).
CREATE TABLE IF NOT EXISTS pgcrond.run_xact (
	instance text NOT NULL,
	run_key  text NOT NULL,
	xid      bigint NOT NULL,
	server   text NOT NULL,
	noted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CONSTRAINT run_xact_pkey PRIMARY KEY (instance, run_key)
);
COMMENT ON TABLE pgcrond.run_xact IS
	'the transaction id of a running run (job_run_details by instance and run_key), and the start time of the server that gave it';
CREATE INDEX IF NOT EXISTS run_xact_noted_at_idx ON pgcrond.run_xact (noted_at);
-- pgcrond's alone, as the other coordination tables (a row here decides whether a run is
-- retried)
REVOKE ALL ON pgcrond.run_xact FROM PUBLIC;

-- Whether transaction XID of the server that started at SERVER committed: true or false,
-- NULL when that cannot be told (another server or a restart since, an id too old or not
-- known here). Never an error, so it cannot break the statement that closes a dead
-- instance's runs.
CREATE OR REPLACE FUNCTION pgcrond.xact_committed(xid bigint, server text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	st text;
BEGIN
	IF server IS DISTINCT FROM pg_catalog.pg_postmaster_start_time()::pg_catalog.text THEN
		RETURN NULL;
	END IF;
	st := pg_catalog.pg_xact_status(xid::pg_catalog.text::pg_catalog.xid8);
	IF st IS NULL OR st OPERATOR(pg_catalog.=) 'in progress' THEN
		RETURN NULL;
	END IF;
	RETURN st OPERATOR(pg_catalog.=) 'committed';
EXCEPTION WHEN OTHERS THEN
	RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION pgcrond.xact_committed(bigint, text) IS
	'whether a run''s transaction committed (pgcrond.run_xact); NULL when it cannot be told';

INSERT INTO pgcrond.schema_version (version) VALUES (17) ON CONFLICT DO NOTHING;
