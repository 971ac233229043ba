-- pgcrond schema, step 21: what a run's command is, for a takeover's record.
--
-- A run whose transaction a takeover cannot ask about (its command is a procedure or a DO
-- block, a statement that cannot run in a transaction block, transaction control, or a
-- plugin's statements: docs/faults.md, "Once under faults, or fenced") is fenced: the instance that
-- closes it after its own instance died ends its backend before it retries it, but cannot
-- tell whether its work committed. pgcrond.run_start.fenced names that class, written with
-- the run's start mark, so that the history row of such a run says "may have committed:
-- procedure" instead of leaving the reader to guess. NULL for a run whose transaction id is
-- asked (one transaction). Applied by `pgcrond install` (see pgcrond--1.sql).

ALTER TABLE pgcrond.run_start ADD COLUMN IF NOT EXISTS fenced text;
COMMENT ON COLUMN pgcrond.run_start.fenced IS
	'the class of a command whose commit a takeover cannot ask about (procedure, no transaction block, transaction control, plugin); NULL: one transaction';

-- The server a run's transaction id belongs to is now written as the Unix time of its start
-- (EXTRACT(epoch FROM pg_postmaster_start_time())::text, a numeric), not as the timestamp's
-- text, which follows the writing session's TimeZone and DateStyle: a run as a role with its
-- own time zone wrote a server that the takeover's session never matched, so a committed run
-- was retried. A mark an older pgcrond wrote matches no server any more: its run is treated
-- as one whose commit cannot be told (closed and retried), as before its id was known.
CREATE OR REPLACE FUNCTION pgcrond.xact_committed(xid bigint, server text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	st text;
BEGIN
	IF server IS DISTINCT FROM
	   (EXTRACT(epoch FROM pg_catalog.pg_postmaster_start_time()))::pg_catalog.text THEN
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
COMMENT ON COLUMN pgcrond.run_start.server IS
	'the start of the server that gave xid, as EXTRACT(epoch FROM pg_postmaster_start_time())::text';

INSERT INTO pgcrond.schema_version (version) VALUES (21) ON CONFLICT DO NOTHING;
