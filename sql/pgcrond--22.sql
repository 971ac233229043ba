-- pgcrond schema, step 22: what the daemon calls to serve pg_net's queue.
--
-- pg_net_compat.sql creates pg_net's API (schema "net": net.http_get, net.http_post,
-- net.http_delete, net.http_request_queue, net._http_response) where the history database
-- has no "net" schema of its own. The daemon serves that queue through the functions below,
-- on its own connection, as the role that owns pgcrond: it claims committed requests
-- (deleting them: a request is sent once, whatever the number of instances), sends them, and
-- writes each response with the role that asked for it, so row-level security shows it to
-- that role only. Nothing here runs where "net" is not pgcrond's (pg_net is installed, or
-- another role made the schema): pgcrond.net_served() says so, and the daemon's statements
-- never touch such a schema's objects (a trigger there would run as the daemon's role).
-- Applied by `pgcrond install` (see pgcrond--1.sql).

-- Whether "net" is pgcrond's: made by pg_net_compat.sql (its comment), owned by the owner of
-- schema pgcrond (who ran `pgcrond install`; hist_install.c checks that), not an extension's.
CREATE OR REPLACE FUNCTION pgcrond.net_served()
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT EXISTS (
		SELECT FROM pg_catalog.pg_namespace n, pg_catalog.pg_namespace p
		 WHERE n.nspname = 'net' AND p.nspname = 'pgcrond' AND n.nspowner = p.nspowner
		   AND pg_catalog.obj_description(n.oid, 'pg_namespace') = 'pgcrond: pg_net compatibility'
		   AND NOT EXISTS (SELECT FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_net'))
$fn$;
REVOKE ALL ON FUNCTION pgcrond.net_served() FROM PUBLIC;

-- Claim up to N committed requests, oldest first: they are deleted as they are returned, in
-- the caller's one statement, and rows another instance is claiming are skipped, so each
-- request is sent once. (A request claimed by an instance that dies before its response is
-- written gets none, as under pg_net, whose worker deletes its batch the same way.)
CREATE OR REPLACE FUNCTION pgcrond.net_claim(n integer)
RETURNS TABLE (id bigint, method text, url text, headers text, body bytea,
               timeout_milliseconds integer, username text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF NOT pgcrond.net_served() THEN
		RETURN;
	END IF;
	RETURN QUERY
	DELETE FROM net.http_request_queue q
	 WHERE q.id IN (SELECT s.id FROM net.http_request_queue s
	                 ORDER BY s.id LIMIT $1 FOR UPDATE SKIP LOCKED)
	RETURNING q.id, q.method::text, q.url, q.headers::text, q.body, q.timeout_milliseconds,
	          q.username::text;
END
$fn$;
REVOKE ALL ON FUNCTION pgcrond.net_claim(integer) FROM PUBLIC;

-- The responses, as a JSON array of objects with net._http_response's columns and the role
-- that asked (username).
CREATE OR REPLACE FUNCTION pgcrond.net_respond(responses jsonb)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- a role that locks net._http_response (it may delete its own rows) makes this fail in 2 s,
-- and the daemon tries again later, instead of waiting for it
SET lock_timeout = '2s'
AS $fn$
DECLARE
	k integer;
BEGIN
	IF NOT pgcrond.net_served() THEN
		RETURN 0;
	END IF;
	INSERT INTO net._http_response (id, status_code, content_type, headers, content, timed_out,
	                                error_msg, username)
	SELECT r.id, r.status_code, r.content_type, r.headers, r.content, r.timed_out, r.error_msg,
	       r.username
	  FROM pg_catalog.jsonb_to_recordset($1) AS r(id bigint, status_code integer,
	       content_type text, headers jsonb, content text, timed_out boolean, error_msg text,
	       username name);
	GET DIAGNOSTICS k = ROW_COUNT;
	RETURN k;
END
$fn$;
REVOKE ALL ON FUNCTION pgcrond.net_respond(jsonb) FROM PUBLIC;

-- How long responses are kept: the setting pg_net.ttl, as pg_net names it (an interval;
-- '6 hours' when unset or not an interval), set for the daemon's sessions by an admin:
-- ALTER DATABASE app SET pg_net.ttl = '1 day' (or ALTER ROLE pgcrond, or ALTER SYSTEM).
CREATE OR REPLACE FUNCTION pgcrond.net_ttl()
RETURNS interval
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	s text := pg_catalog.current_setting('pg_net.ttl', true);
BEGIN
	IF s IS NULL OR s = '' THEN
		RETURN interval '6 hours';
	END IF;
	RETURN s::interval;
EXCEPTION WHEN others THEN
	RAISE WARNING 'pg_net.ttl "%" is not an interval; responses are kept 6 hours', s;
	RETURN interval '6 hours';
END
$fn$;
REVOKE ALL ON FUNCTION pgcrond.net_ttl() FROM PUBLIC;

-- Delete responses older than pgcrond.net_ttl(), at most N of them (the oldest).
CREATE OR REPLACE FUNCTION pgcrond.net_expire(n integer)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
-- a role that locks net._http_response (it may delete its own rows) makes this fail in 2 s,
-- and the daemon tries again later, instead of waiting for it
SET lock_timeout = '2s'
AS $fn$
DECLARE
	k integer;
BEGIN
	IF NOT pgcrond.net_served() THEN
		RETURN 0;
	END IF;
	DELETE FROM net._http_response r
	 WHERE r.ctid = ANY (ARRAY(SELECT s.ctid FROM net._http_response s
	                            WHERE s.created < pg_catalog.now() - pgcrond.net_ttl()
	                            ORDER BY s.created LIMIT $1 FOR UPDATE SKIP LOCKED));
	GET DIAGNOSTICS k = ROW_COUNT;
	RETURN k;
END
$fn$;
REVOKE ALL ON FUNCTION pgcrond.net_expire(integer) FROM PUBLIC;

-- net.http_request_queue's trigger: wakes the daemon at the inserting transaction's commit
-- (a rolled back one sends nothing). A wake-up only: the daemon then reads the queue, so a
-- NOTIFY on this channel from any role decides nothing.
CREATE OR REPLACE FUNCTION pgcrond.net_wake()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	PERFORM pg_catalog.pg_notify('pgcrond_net', '');
	RETURN NULL;
END
$fn$;
REVOKE ALL ON FUNCTION pgcrond.net_wake() FROM PUBLIC;

INSERT INTO pgcrond.schema_version (version) VALUES (22) ON CONFLICT DO NOTHING;
