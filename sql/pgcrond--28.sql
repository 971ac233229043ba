-- pgcrond schema, step 28: the backlog: the runs that wait, and for what, shown in
-- pgcrond.view_backlog; a job's waiting runs dropped with pgcrond.drop_waiting(job).
--
-- Each instance publishes its waiting runs (pgcrond.run_waiting): a run waits for a
-- max_running slot, a connection of its database (it started), its upstream jobs, its retry
-- delay, the job's run under way (overlap queue or replace, notifications), the job's run on
-- another instance, or its claim. The rows are the daemon's alone; the view is readable by
-- pgcrond_operator.
--
-- pgcrond.drop_waiting(job) asks the daemon to drop a job's waiting runs, with the rights of
-- cron.unschedule: a SQL job's owner or a superuser (a file job: a superuser or a member of
-- pgcrond_operator). The request is a row of pgcrond.trigger_request whose action is 'drop',
-- which only this function writes; the notification on pgcrond_trigger only wakes the
-- daemon, which claims the row as it claims a manual trigger's and records each dropped run
-- skipped, "dropped by ROLE" (the role that logged in, session_user, as pgcrond.trigger
-- records). Applied by `pgcrond install` (see pgcrond--1.sql).

CREATE TABLE IF NOT EXISTS pgcrond.run_waiting (
	instance      text NOT NULL,
	job_name      text NOT NULL,
	waiting_for   text NOT NULL,
	trigger       text NOT NULL,
	scheduled_for timestamptz,
	since         timestamptz NOT NULL,
	attempt       integer NOT NULL,
	published_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS run_waiting_instance_idx ON pgcrond.run_waiting (instance);
COMMENT ON TABLE pgcrond.run_waiting IS
	'the runs that wait, per instance, written by the daemon (pgcrond.view_backlog reads it)';
REVOKE ALL ON pgcrond.run_waiting FROM PUBLIC;

-- The daemon's publication: RUNS is a JSON array of {"job", "for", "trigger",
-- "scheduled_for" (Unix µs, 0: not a scheduled fire), "since" (Unix µs), "attempt"}; it
-- replaces the instance's rows.
CREATE OR REPLACE FUNCTION pgcrond.backlog_publish(instance text, runs jsonb)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '2s'
AS $fn$
	DELETE FROM pgcrond.run_waiting w WHERE w.instance = $1;
	INSERT INTO pgcrond.run_waiting
	       (instance, job_name, waiting_for, trigger, scheduled_for, since, attempt, published_at)
	SELECT $1, e ->> 'job', e ->> 'for', e ->> 'trigger',
	       CASE WHEN (e ->> 'scheduled_for')::bigint > 0
	            THEN to_timestamp((e ->> 'scheduled_for')::numeric / 1000000) END,
	       to_timestamp((e ->> 'since')::numeric / 1000000), (e ->> 'attempt')::integer, now()
	  FROM jsonb_array_elements($2) e
	 WHERE e ->> 'job' IS NOT NULL;
$fn$;
REVOKE ALL ON FUNCTION pgcrond.backlog_publish(text, jsonb) FROM PUBLIC;

-- Only the rows of a live instance, published by its running process: not stopped, its
-- heartbeat younger than its cluster_dead_after (the rule by which the others find it dead),
-- published since that process started (a stopped instance's rows stay until it publishes
-- again; the view never shows them).
CREATE OR REPLACE VIEW pgcrond.view_backlog AS
SELECT w.job_name, w.waiting_for, w.trigger, w.scheduled_for, w.since, w.attempt, w.instance,
       w.published_at
  FROM pgcrond.run_waiting w
  JOIN pgcrond.instance i ON i.name = w.instance
 WHERE i.stopped_at IS NULL AND w.published_at >= i.started_at
   AND i.last_seen > now() - coalesce(i.dead_after_ms, 20000) * interval '1 millisecond'
 ORDER BY w.since, w.job_name;
COMMENT ON VIEW pgcrond.view_backlog IS
	'the runs that wait, and for what: slot (max_running), connection, upstream, retry, own_run (the job''s run under way), notifications, instance (another instance''s run), claim; published by each instance within a second of a change';
REVOKE ALL ON pgcrond.view_backlog FROM PUBLIC;
GRANT SELECT ON pgcrond.view_backlog TO pgcrond_operator;

-- The requests: a manual run ('run') or a drop of the job's waiting runs ('drop').
ALTER TABLE pgcrond.trigger_request ADD COLUMN IF NOT EXISTS action text NOT NULL DEFAULT 'run';
DO $do$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_constraint
	               WHERE conrelid = 'pgcrond.trigger_request'::regclass
	                 AND conname = 'trigger_request_action_check') THEN
		ALTER TABLE pgcrond.trigger_request ADD CONSTRAINT trigger_request_action_check
			CHECK (action IN ('run', 'drop'));
	END IF;
END
$do$;
COMMENT ON COLUMN pgcrond.trigger_request.action IS
	'run: a manual run (pgcrond.trigger); drop: the job''s waiting runs dropped (pgcrond.drop_waiting)';

-- Drop the waiting runs of job JOB_ID (pgcrond.job.jobid, cron.job's jobid for a SQL job).
-- SECURITY DEFINER: the caller needs no right on the tables; the check is the function's.
-- Returns the request id (its outcome: pgcrond.trigger_outcome(id)).
CREATE OR REPLACE FUNCTION pgcrond.drop_waiting(job_id bigint)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	j record;
	request bigint;
BEGIN
	SELECT pj.jobname, pj.source, pj.username INTO j
	  FROM pgcrond.job pj WHERE pj.jobid = $1 AND pj.removed_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'pgcrond.drop_waiting: no job with jobid %', $1
			USING ERRCODE = 'undefined_object';
	END IF;
	IF NOT ((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = session_user)
	        OR (j.source = 'sql' AND j.username = session_user)
	        OR (j.source = 'file' AND pg_has_role(session_user, 'pgcrond_operator', 'MEMBER'))) THEN
		RAISE EXCEPTION 'permission denied to drop the waiting runs of job "%"', j.jobname
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'a job made in SQL: its owner or a superuser; a job of the files: a superuser or a member of pgcrond_operator';
	END IF;
	-- the daemon's name of the job (a SQL job's too: pgcrond.job.jobname)
	INSERT INTO pgcrond.trigger_request (job_name, requested_by, action)
	VALUES (j.jobname, session_user, 'drop')
	RETURNING id INTO request;
	PERFORM pg_notify('pgcrond_trigger', request::text);
	RETURN request;
END
$fn$;

-- ... of the job JOB_NAME: pgcrond's name of the job, or the name its owner gave to
-- cron.schedule (the caller's job of that name, as cron.unschedule(name) finds it).
CREATE OR REPLACE FUNCTION pgcrond.drop_waiting(job_name text)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	id bigint;
BEGIN
	IF $1 IS NULL OR octet_length($1) NOT BETWEEN 1 AND 200 OR $1 ~ '[[:cntrl:]]' THEN
		RAISE EXCEPTION 'pgcrond.drop_waiting: a job name is 1 to 200 bytes without control characters'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT pj.jobid INTO id
	  FROM pgcrond.job pj
	 WHERE pj.removed_at IS NULL
	   AND (pj.jobname = $1 OR (pj.source = 'sql' AND pj.cron_jobname = $1
	                            AND pj.username = session_user))
	 ORDER BY pj.jobname = $1 DESC
	 LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'pgcrond.drop_waiting: no job "%"', $1
			USING ERRCODE = 'undefined_object',
			      HINT = 'give pgcrond''s name of the job (pgcrond.job.jobname) or the name you gave to cron.schedule';
	END IF;
	RETURN pgcrond.drop_waiting(id);
END
$fn$;
COMMENT ON FUNCTION pgcrond.drop_waiting(bigint) IS
	'drop a job''s waiting runs (each recorded skipped, "dropped by ROLE"); its owner or a superuser; returns the request id';
COMMENT ON FUNCTION pgcrond.drop_waiting(text) IS
	'drop a job''s waiting runs (each recorded skipped, "dropped by ROLE"); its owner or a superuser; returns the request id';
GRANT EXECUTE ON FUNCTION pgcrond.drop_waiting(text), pgcrond.drop_waiting(bigint) TO PUBLIC;

INSERT INTO pgcrond.schema_version (version) VALUES (28) ON CONFLICT DO NOTHING;
