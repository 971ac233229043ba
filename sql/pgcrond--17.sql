-- pgcrond schema, step 17: runs' starts and transaction ids, so a takeover never retries a
-- run that committed nor loses a fire claimed and never run.
--
-- With several instances, a run whose instance is found dead (or whose process was killed
-- and restarted) was closed as failed and retried, although its transaction may have
-- committed after the last word its instance wrote: its work was then done twice. A run
-- whose command may share a pipeline (one statement: SELECT, INSERT, UPDATE, DELETE, MERGE,
-- WITH, VALUES, TABLE, REFRESH) now asks for its transaction id in the same transaction,
-- before the command runs, and its instance writes it in pgcrond.run_start. The instance that closes the run
-- first ends its backend (so the transaction can no longer commit), then asks the server
-- whether that transaction committed: if it did, the run is recorded as succeeded and is not
-- retried. Applied by `pgcrond install` (see pgcrond--1.sql).

-- A run's start and its transaction id, written by its instance on the connection that
-- made the fire's claim, as the run gets its backend (the id follows when the server
-- answers): a claim with no history row and no start here was never run, and the instance
-- that finds its claimer dead serves it (docs/several-instances.md). The row goes once the
-- run's end is in the history, or with a dead instance; any left after two days too.
CREATE TABLE IF NOT EXISTS pgcrond.run_start (
	instance    text NOT NULL,
	run_key     text NOT NULL,
	job_name    text,
	scheduled_s bigint, -- the fire served (Unix seconds, the claim's "s:" key); NULL if none
	xid         bigint, -- NULL until known, and for a command that cannot report it
	server      text,   -- pg_postmaster_start_time() of the server that gave xid
	noted_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CONSTRAINT run_start_pkey PRIMARY KEY (instance, run_key)
);
COMMENT ON TABLE pgcrond.run_start IS
	'runs under way: the fire each serves and its transaction id (job_run_details by instance and run_key)';
-- No other index: the table holds only the runs under way, and every run writes and deletes
-- its row (a lookup by fire, done when an instance is found dead, reads it whole).
-- pgcrond's alone, as the other coordination tables (a row here decides whether a run is
-- retried or a claimed fire served)
REVOKE ALL ON pgcrond.run_start FROM PUBLIC;

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
	st := pg_catalog.txid_status(xid);
	IF st IS NULL OR st OPERATOR(pg_catalog.=) 'in progress' THEN
		RETURN NULL;
	END IF;
	RETURN st OPERATOR(pg_catalog.=) 'committed';
EXCEPTION WHEN OTHERS THEN
	RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION pgcrond.xact_committed(bigint, text) IS
	'whether a run''s transaction committed (pgcrond.run_start); NULL when it cannot be told';

INSERT INTO pgcrond.schema_version (version) VALUES (17) ON CONFLICT DO NOTHING;
