-- pgcrond schema, step 11: no lock or notification an ordinary role can take or send decides
-- whether a job runs (docs/security.md "Locks and notifications").
--
-- Until this step instances held session advisory locks on predictable keys (the instance's
-- name, each running job's name): any role may take or queue for an advisory lock, and a
-- role holding one stopped every fire. Now every such fact is a row in a table of the
-- pgcrond schema that only pgcrond's roles may write (no grant to PUBLIC):
--
-- - an instance is live while the session it recorded in its pgcrond.instance row (backend
--   pid and backend start, which pg_stat_activity shows) exists;
-- - a job's run on another instance holds the job's row in pgcrond.job_lock;
-- - a fan-in graph event (an upstream started or succeeded elsewhere) is a row in
--   pgcrond.graph_event addressed to each live instance;
-- - a manual trigger's outcome is read from pgcrond.trigger_request with
--   pgcrond.trigger_outcome(id), never from the notification.
--
-- A NOTIFY on pgcrond_cluster or pgcrond_trigger_outcome only wakes the reader. Applied by
-- `pgcrond install` after the steps before it (see pgcrond--1.sql).

-- The session that holds the instance's name: while it exists the instance is live.
ALTER TABLE pgcrond.instance ADD COLUMN IF NOT EXISTS backend_pid integer;
ALTER TABLE pgcrond.instance ADD COLUMN IF NOT EXISTS backend_start timestamptz;
COMMENT ON COLUMN pgcrond.instance.backend_pid IS
	'the coordination session of the instance (with backend_start): while it exists in pg_stat_activity the instance is live';

-- overlap across instances: the row of a job is held from its claim to the end of its run
-- by the instance running it (holds counts the grants of that instance). A row whose
-- instance is dead or restarted (boot_id changed) holds nothing.
CREATE TABLE IF NOT EXISTS pgcrond.job_lock (
	job_name  text PRIMARY KEY,
	instance  text NOT NULL,
	boot_id   text NOT NULL,
	holds     integer NOT NULL DEFAULT 1,
	locked_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE pgcrond.job_lock IS
	'which pgcrond instance runs a job now (overlap across instances); only pgcrond writes it';

-- A graph job's run started or succeeded on instance sender: one row per live instance
-- (recipient, at its boot), which deletes its rows when a NOTIFY wakes it.
CREATE TABLE IF NOT EXISTS pgcrond.graph_event (
	id             bigserial PRIMARY KEY,
	recipient      text NOT NULL,
	recipient_boot text NOT NULL,
	sender         text NOT NULL,
	job_name       text NOT NULL,
	started        boolean NOT NULL,
	noted_at       timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX IF NOT EXISTS graph_event_recipient_idx ON pgcrond.graph_event (recipient);
COMMENT ON TABLE pgcrond.graph_event IS
	'a graph job''s run started or succeeded on another pgcrond instance (fan-in), for each live instance';

-- The coordination tables are pgcrond's alone (they never had a grant to PUBLIC; said
-- again here, since a row in them decides whether a job runs).
REVOKE ALL ON pgcrond.instance, pgcrond.fire_claim, pgcrond.instance_job, pgcrond.pending_work,
	pgcrond.cancel_request, pgcrond.job_pause, pgcrond.job_lock, pgcrond.graph_event FROM PUBLIC;
REVOKE ALL ON SEQUENCE pgcrond.graph_event_id_seq FROM PUBLIC;

-- The outcome of a manual trigger request, for the role that asked (pgcrond trigger --wait
-- reads it when a NOTIFY wakes it: the notification's text is never trusted).
CREATE OR REPLACE FUNCTION pgcrond.trigger_outcome(request bigint)
RETURNS text
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT t.outcome FROM pgcrond.trigger_request t
	 WHERE t.id OPERATOR(pg_catalog.=) $1
	   AND t.requested_by OPERATOR(pg_catalog.=) session_user
$fn$;
COMMENT ON FUNCTION pgcrond.trigger_outcome(bigint) IS
	'the outcome of manual trigger request id (started, finished ..., refused ...), for the role that asked; NULL while none';
REVOKE ALL ON FUNCTION pgcrond.trigger_outcome(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgcrond.trigger_outcome(bigint) TO pgcrond_operator;

INSERT INTO pgcrond.schema_version (version) VALUES (11) ON CONFLICT DO NOTHING;
