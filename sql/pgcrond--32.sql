-- pgcrond schema, step 32: the owner of a job reads the outcome of what she asked of it, and a
-- refused recurrence rule gets a hint about recurrence rules.
--
-- pgcrond.drop_waiting(job) has the rights of cron.unschedule: a job made in SQL may be asked
-- of by its owner. Its outcome is read with pgcrond.trigger_outcome(id), which only pgcrond's
-- roles could execute: the owner got "permission denied" for the outcome of her own request.
-- Any role may now call it; it answers for a request that role made, and NULL for every other
-- (as for a request not answered yet): a job's name in a request is the daemon's, which a role
-- can give to a job of its own, so ownership by name would answer another role's request.
--
-- pgcrond.check_schedule, which cron.schedule, cron.schedule_in_database, cron.alter_job and
-- pgcrond.schedule call, raised pg_cron's hint about cron format and seconds for every
-- schedule; a recurrence rule ("RRULE:...") now gets one about recurrence rules. Applied by
-- `pgcrond install` (see pgcrond--1.sql).

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
	'the outcome of request id (pgcrond.trigger, pgcrond.drop_waiting: started, dropped ..., refused ...) for the role that asked; NULL while none, and for anyone else';
GRANT EXECUTE ON FUNCTION pgcrond.trigger_outcome(bigint) TO PUBLIC;

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
			      HINT = CASE WHEN lower(left(btrim($1, E' \t\n\r\v\f'), 6)) = 'rrule:'
			                  THEN 'A recurrence rule is RRULE: then NAME=VALUE parts separated by ";", FREQ among them (RFC 5545), e.g. RRULE:FREQ=WEEKLY;BYDAY=MO;BYHOUR=6'
			                  ELSE 'Use cron format (e.g. 5 4 * * *), or interval format ''[1-59] seconds''' END;
	END IF;
END
$fn$;

INSERT INTO pgcrond.schema_version (version) VALUES (32) ON CONFLICT DO NOTHING;
