-- pgcrond schema, step 33: the owner of a job may run it now, and the status page asks the
-- database what the role logged in to it may see and do.
--
-- pgcrond.trigger(job) was pgcrond_operator's alone. A member of pgcrond_operator (or a
-- superuser) may still ask for any job; any other role for a job made in SQL that it owns
-- (pgcrond's name of the job, or the name it gave to cron.schedule), as pgcrond.drop_waiting
-- has the rights of cron.unschedule. Its outcome is pgcrond.trigger_outcome(id), which
-- answers the role that asked.
--
-- pgcrond.page_jobid(job) is the jobid of a job made in SQL, for cron.alter_job and
-- cron.unschedule, which then decide as they do for any caller. pgcrond.page_state() is what
-- the page shows a role logged in: its jobs (an operator's or superuser's: all), what it may
-- do with each, and its recent requests with their outcomes. Applied by `pgcrond install`
-- (see pgcrond--1.sql).

CREATE OR REPLACE FUNCTION pgcrond.trigger(job_name text, force boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	request bigint;
	nm text := $1;
BEGIN
	IF $1 IS NULL OR octet_length($1) NOT BETWEEN 1 AND 200 OR $1 ~ '[[:cntrl:]]' THEN
		RAISE EXCEPTION 'pgcrond.trigger: a job name is 1 to 200 bytes without control characters'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT ((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = session_user)
	        OR pg_has_role(session_user, 'pgcrond_operator', 'MEMBER')) THEN
		SELECT pj.jobname INTO nm
		  FROM pgcrond.job pj
		 WHERE pj.removed_at IS NULL AND pj.source = 'sql' AND pj.username = session_user
		   AND (pj.jobname = $1 OR pj.cron_jobname = $1)
		 ORDER BY pj.jobname = $1 DESC
		 LIMIT 1;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'permission denied to run job "%" now', $1
				USING ERRCODE = 'insufficient_privilege',
				      HINT = 'a job made in SQL: its owner; any job: a superuser or a member of pgcrond_operator';
		END IF;
		IF coalesce($2, false) THEN
			RAISE EXCEPTION 'permission denied to force job "%" to run', $1
				USING ERRCODE = 'insufficient_privilege',
				      HINT = 'a disabled job is forced to run by a superuser or a member of pgcrond_operator';
		END IF;
	END IF;
	INSERT INTO pgcrond.trigger_request (job_name, force, requested_by)
	VALUES (nm, coalesce($2, false), session_user)
	RETURNING id INTO request;
	PERFORM pg_catalog.pg_notify('pgcrond_trigger', request::text);
	RETURN request;
END
$fn$;
COMMENT ON FUNCTION pgcrond.trigger(text, boolean) IS
	'ask pgcrond to run a job now (force: also a disabled one); a member of pgcrond_operator: any job, another role: its own jobs made in SQL, not forced; returns the request id';
GRANT EXECUTE ON FUNCTION pgcrond.trigger(text, boolean) TO PUBLIC;

-- The jobid of the job made in SQL that pgcrond names JOB, or that the caller named JOB in
-- cron.schedule; an error when there is none.
CREATE OR REPLACE FUNCTION pgcrond.page_jobid(job text)
RETURNS bigint
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	id bigint;
BEGIN
	SELECT pj.jobid INTO id
	  FROM pgcrond.job pj
	 WHERE pj.removed_at IS NULL AND pj.source = 'sql'
	   AND (pj.jobname = $1 OR (pj.cron_jobname = $1 AND pj.username = session_user))
	 ORDER BY pj.jobname = $1 DESC
	 LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no job "%" made in SQL', $1
			USING ERRCODE = 'undefined_object',
			      HINT = 'jobs of the job files are changed in their files';
	END IF;
	RETURN id;
END
$fn$;
COMMENT ON FUNCTION pgcrond.page_jobid(text) IS
	'the jobid of a job made in SQL, by pgcrond''s name or the caller''s cron.schedule name';
GRANT EXECUTE ON FUNCTION pgcrond.page_jobid(text) TO PUBLIC;

-- What the page shows the role logged in (session_user), its own jobs made in SQL, and for
-- a superuser or a member of pgcrond_operator every job (the command only of its own, or to a
-- superuser): {"role", "operator", "may_create",
-- "jobs": [{"name", "cron_name", "jobid", "schedule", "command", "active", "database",
-- "source", "actions": [...]}], "requests": [{"id", "job", "action", "outcome"}]}.
CREATE OR REPLACE FUNCTION pgcrond.page_state()
RETURNS jsonb
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
	WITH me AS (
		SELECT coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = session_user), false) AS su,
		       pg_has_role(session_user, 'pgcrond_operator', 'MEMBER') AS op,
		       -- (false, not an error, where "cron" is not pgcrond's)
		       coalesce(has_function_privilege(session_user,
		                    to_regprocedure('cron.alter_job(bigint,text,text,text,text,boolean)'),
		                    'EXECUTE'), false) AS may_alter,
		       coalesce(has_schema_privilege(session_user, to_regnamespace('cron'), 'USAGE')
		                AND has_function_privilege(session_user,
		                        to_regprocedure('cron.schedule(text,text,text)'), 'EXECUTE')
		                AND has_table_privilege(session_user, to_regclass('cron.job'), 'INSERT'),
		                false) AS may_create
	), jobs AS (
		SELECT pj.*, pj.source = 'sql' AND (me.su OR pj.username = session_user) AS mine, me.*
		  FROM pgcrond.job pj, me
		 WHERE pj.removed_at IS NULL
		   AND (me.su OR me.op OR (pj.source = 'sql' AND pj.username = session_user))
	)
	SELECT jsonb_build_object(
		'role', session_user, 'operator', me.su OR me.op, 'may_create', me.may_create,
		'jobs', coalesce((SELECT jsonb_agg(jsonb_build_object(
			'name', j.jobname, 'cron_name', j.cron_jobname, 'jobid', j.jobid,
			-- the command only to its owner (and superusers), as cron.job shows it
			'schedule', j.schedule, 'command', CASE WHEN j.mine THEN j.command END,
			'active', j.enabled, 'paused', j.paused,
			'database', j.database, 'source', j.source, 'owner', j.username,
			'actions', to_jsonb(array_remove(ARRAY[
				CASE WHEN j.mine AND j.may_alter AND j.enabled THEN 'pause' END,
				CASE WHEN j.mine AND j.may_alter AND NOT j.enabled THEN 'resume' END,
				CASE WHEN j.mine AND j.may_alter THEN 'edit' END,
				CASE WHEN j.mine OR j.su OR j.op THEN 'trigger' END,
				CASE WHEN j.mine OR (j.source = 'file' AND (j.su OR j.op)) THEN 'drop' END,
				CASE WHEN j.mine THEN 'unschedule' END], NULL)))
			ORDER BY j.jobname) FROM jobs j), '[]'::jsonb),
		'requests', coalesce((SELECT jsonb_agg(jsonb_build_object(
			'id', t.id, 'job', t.job_name, 'action', t.action, 'outcome', t.outcome) ORDER BY t.id DESC)
			FROM (SELECT * FROM pgcrond.trigger_request t
			       WHERE t.requested_by = session_user ORDER BY t.id DESC LIMIT 10) t), '[]'::jsonb))
	  FROM me
$fn$;
COMMENT ON FUNCTION pgcrond.page_state() IS
	'what the status page shows the role logged in: its jobs, what it may do with each, its recent requests';
GRANT EXECUTE ON FUNCTION pgcrond.page_state() TO PUBLIC;

INSERT INTO pgcrond.schema_version (version) VALUES (33) ON CONFLICT DO NOTHING;
