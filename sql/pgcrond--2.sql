-- pgcrond schema, version 2: manual triggers that PostgreSQL authorizes.
--
-- `NOTIFY pgcrond_trigger, 'job'` needs no privilege, so the daemon no longer takes a job
-- name from a notification. A manual run is asked for with pgcrond.trigger(job), which
-- only the daemon's role (the owner) and members of pgcrond_operator may execute; it
-- records who asked and wakes the daemon with the request's id. The daemon claims the
-- request by id (claimed_at IS NULL), so a notification without a request behind it starts
-- nothing. Applied by `pgcrond install` after pgcrond--1.sql (see there).

-- The role operators are granted: GRANT pgcrond_operator TO alice;
DO $do$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgcrond_operator') THEN
		BEGIN
			CREATE ROLE pgcrond_operator NOLOGIN;
		EXCEPTION WHEN insufficient_privilege THEN
			RAISE EXCEPTION 'role "pgcrond_operator" does not exist and role "%" may not create it', current_user
				USING ERRCODE = 'insufficient_privilege',
				      HINT = 'as a superuser: CREATE ROLE pgcrond_operator NOLOGIN; then run pgcrond install again';
		END;
		-- only on the role made here: commenting on a role needs CREATEROLE, which an
		-- installer need not have once a superuser made the role (docs/security.md)
		COMMENT ON ROLE pgcrond_operator IS 'may ask pgcrond for manual runs: SELECT pgcrond.trigger(job)';
	END IF;
END
$do$;

CREATE TABLE IF NOT EXISTS pgcrond.trigger_request (
	id           bigserial PRIMARY KEY,
	job_name     text NOT NULL,
	force        boolean NOT NULL DEFAULT false,
	requested_by name NOT NULL DEFAULT session_user,
	requested_at timestamptz NOT NULL DEFAULT now(),
	claimed_by   text,
	claimed_at   timestamptz,
	outcome      text
);
COMMENT ON TABLE pgcrond.trigger_request IS 'manual runs asked for with pgcrond.trigger(), and what the daemon did with each';
COMMENT ON COLUMN pgcrond.trigger_request.claimed_by IS 'the pgcrond instance that took the request';
COMMENT ON COLUMN pgcrond.trigger_request.outcome IS 'started, or refused: why';
-- the daemon's pick-up of unclaimed requests after it (re)connects
CREATE INDEX IF NOT EXISTS trigger_request_unclaimed_idx
	ON pgcrond.trigger_request (id) WHERE claimed_at IS NULL;
REVOKE ALL ON pgcrond.trigger_request FROM PUBLIC;
REVOKE ALL ON SEQUENCE pgcrond.trigger_request_id_seq FROM PUBLIC;

-- SECURITY DEFINER: the caller needs no right on the table; the search_path is fixed so a
-- caller's objects cannot stand in for the ones used here. session_user is the role that
-- logged in (SET ROLE does not change it), which is who asked.
CREATE OR REPLACE FUNCTION pgcrond.trigger(job_name text, force boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	request bigint;
BEGIN
	IF $1 IS NULL OR octet_length($1) NOT BETWEEN 1 AND 200 OR $1 ~ '[[:cntrl:]]' THEN
		RAISE EXCEPTION 'pgcrond.trigger: a job name is 1 to 200 bytes without control characters'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	INSERT INTO pgcrond.trigger_request (job_name, force, requested_by)
	VALUES ($1, coalesce($2, false), session_user)
	RETURNING id INTO request;
	PERFORM pg_catalog.pg_notify('pgcrond_trigger', request::text);
	RETURN request;
END
$fn$;
COMMENT ON FUNCTION pgcrond.trigger(text, boolean) IS 'ask pgcrond to run a job now (force: also a disabled one); returns the request id';
REVOKE ALL ON FUNCTION pgcrond.trigger(text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgcrond.trigger(text, boolean) TO pgcrond_operator;
GRANT USAGE ON SCHEMA pgcrond TO pgcrond_operator;

INSERT INTO pgcrond.schema_version (version) VALUES (2) ON CONFLICT DO NOTHING;
