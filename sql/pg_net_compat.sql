-- pg_net's user-facing API for hosts without pg_net: net.http_get, net.http_post and
-- net.http_delete with pg_net's signatures and defaults, returning the request id at once;
-- the queue net.http_request_queue and the responses net._http_response with pg_net's
-- columns. The daemon sends a request after the caller's transaction commits (never one
-- rolled back: it reads committed rows only) and writes its response (pgcrond--22.sql, and
-- docs/sql-api.md, "pg_net's API").
--
-- Applied by every `pgcrond install` after the schema steps. It does nothing when a "net"
-- schema exists that pgcrond did not create (pg_net is installed, or someone else owns the
-- name): then it says so, and the daemon leaves that schema alone. Everything else is
-- idempotent.
--
-- Who may call: nobody until an admin grants it, as for "cron": GRANT USAGE ON SCHEMA net TO
-- app. (pg_net grants it to PUBLIC; here a request comes from pgcrond's host, which may
-- reach what the database cannot, so it is the admin's choice.) A role sees its own queued
-- requests and its own responses only (row-level security; superusers and the owner of the
-- schema: all), may delete its own responses, and cannot name the id or the role of a
-- request it queues (column privileges), so it can neither pass for another role nor take
-- another's id. The functions are SECURITY INVOKER: the row they write is the caller's.
DO $compat$
DECLARE
	ours constant text := 'pgcrond: pg_net compatibility';
BEGIN
	IF EXISTS (SELECT FROM pg_namespace WHERE nspname = 'net') THEN
		-- pgcrond's comment on a schema another role owns is that role's word, not pgcrond's
		IF EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_net')
		   OR obj_description('net'::regnamespace, 'pg_namespace') IS DISTINCT FROM ours
		   OR (SELECT nspowner FROM pg_namespace WHERE nspname = 'net')
		      IS DISTINCT FROM (SELECT nspowner FROM pg_namespace WHERE nspname = 'pgcrond') THEN
			RAISE WARNING 'schema "net" exists and is not pgcrond''s (%): pgcrond leaves it alone and does not serve net.http_get/http_post/http_delete in database %',
				CASE WHEN EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_net')
				     THEN 'pg_net is installed' ELSE 'someone else made it' END,
				current_database();
			RETURN;
		END IF;
	ELSE
		CREATE SCHEMA net;
		EXECUTE format('COMMENT ON SCHEMA net IS %L', ours);
	END IF;

	IF to_regclass('net.http_request_queue') IS NULL THEN
		CREATE TABLE net.http_request_queue (
			id bigserial PRIMARY KEY,
			method text NOT NULL
				CHECK (method OPERATOR(pg_catalog.~~*) 'get' OR method OPERATOR(pg_catalog.~~*) 'post'
				       OR method OPERATOR(pg_catalog.~~*) 'delete'),
			-- bounded: the daemon reads a claimed row whole, and any role may queue
			url text NOT NULL CONSTRAINT url_at_most_8kb CHECK (octet_length(url) <= 8192),
			headers jsonb CONSTRAINT headers_at_most_64kb CHECK (pg_column_size(headers) <= 65536),
			body bytea CONSTRAINT body_at_most_16mb CHECK (octet_length(body) <= 16777216),
			timeout_milliseconds integer NOT NULL
				CONSTRAINT timeout_1ms_to_5min CHECK (timeout_milliseconds BETWEEN 1 AND 300000),
			username name NOT NULL DEFAULT current_user
		);
		COMMENT ON TABLE net.http_request_queue IS 'pg_net''s request queue, served by pgcrond: requests committed and not yet sent (a role sees its own)';
		ALTER TABLE net.http_request_queue ENABLE ROW LEVEL SECURITY;
		CREATE POLICY own_requests ON net.http_request_queue FOR SELECT
			USING (username OPERATOR(pg_catalog.=) current_user);
		CREATE POLICY queue_own_requests ON net.http_request_queue FOR INSERT
			WITH CHECK (username OPERATOR(pg_catalog.=) current_user);
		-- id and username take their defaults: a role cannot choose them
		GRANT SELECT ON net.http_request_queue TO PUBLIC;
		GRANT INSERT (method, url, headers, body, timeout_milliseconds)
			ON net.http_request_queue TO PUBLIC;
		GRANT USAGE ON SEQUENCE net.http_request_queue_id_seq TO PUBLIC;
		CREATE TRIGGER pgcrond_wake AFTER INSERT ON net.http_request_queue
			FOR EACH STATEMENT EXECUTE FUNCTION pgcrond.net_wake();
	END IF;

	IF to_regclass('net._http_response') IS NULL THEN
		CREATE TABLE net._http_response (
			id bigint,
			status_code integer,
			content_type text,
			headers jsonb,
			content text,
			timed_out boolean,
			error_msg text,
			created timestamptz NOT NULL DEFAULT pg_catalog.now(),
			username name NOT NULL DEFAULT current_user
		);
		CREATE INDEX ON net._http_response (created);
		CREATE INDEX ON net._http_response (id);
		COMMENT ON TABLE net._http_response IS 'pg_net''s responses, written by pgcrond and kept for pg_net.ttl (6 hours unless set); a role sees the responses to its own requests';
		ALTER TABLE net._http_response ENABLE ROW LEVEL SECURITY;
		CREATE POLICY own_responses ON net._http_response
			USING (username OPERATOR(pg_catalog.=) current_user);
		GRANT SELECT, DELETE ON net._http_response TO PUBLIC;
	END IF;

CREATE OR REPLACE FUNCTION net._urlencode_string(string varchar)
RETURNS text
LANGUAGE sql
IMMUTABLE
STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$
	-- every byte but the unreserved ones as %XX, as curl_easy_escape (pg_net)
	SELECT coalesce(pg_catalog.string_agg(
	           CASE WHEN (b OPERATOR(pg_catalog.>=) 48 AND b OPERATOR(pg_catalog.<=) 57)
	                  OR (b OPERATOR(pg_catalog.>=) 65 AND b OPERATOR(pg_catalog.<=) 90)
	                  OR (b OPERATOR(pg_catalog.>=) 97 AND b OPERATOR(pg_catalog.<=) 122)
	                  OR b OPERATOR(pg_catalog.=) ANY ('{45,46,95,126}'::integer[])
	                THEN pg_catalog.chr(b)
	                ELSE '%' OPERATOR(pg_catalog.||)
	                     pg_catalog.upper(pg_catalog.lpad(pg_catalog.to_hex(b), 2, '0')) END,
	           '' ORDER BY i), '')
	  FROM (SELECT i, pg_catalog.get_byte(x, i) AS b
	          FROM (SELECT pg_catalog.convert_to($1, 'UTF8') AS x) s,
	               pg_catalog.generate_series(0, pg_catalog.length(x) OPERATOR(pg_catalog.-) 1) i) t
$fn$;

-- URL with the query parameters appended; a URL that is not http:// or https:// with a host
-- is refused with pg_net's message (its curl's words after the URL), the URL shown without
-- its user info and query (a password, a token: an error reaches logs and a job's history).
-- An '@' in the user name or password (written %40 by RFC 3986) is refused with pgcrond's
-- words, where curl's would be wrong ("us@er:pw@host": a bad port): curl ends the user info
-- at the first '@', browsers at the last. The daemon checks every URL again before it sends
-- (the check of pgcrond's configuration, httpc_url_ok, which words an '@' the same): one it
-- refuses gets a response row saying why.
CREATE OR REPLACE FUNCTION net._encode_url_with_params_array(url text, params_array text[])
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	u text := $1;
	frag text := '';
	p text;
	shown constant text := pg_catalog.regexp_replace(
		pg_catalog.regexp_replace($1, '^([^@]*//)?[^?#]*@', '\1...@'),
		'[?#].*$', '?...');
	-- the user info as a browser reads it (up to the last '@' before the path), its user
	-- name up to the first ':'; set only when it holds an '@'
	userinfo constant text := pg_catalog.substring($1, '^[A-Za-z]+://([^/?#]*@[^/?#]*)@');
	at_user constant boolean := pg_catalog.split_part(userinfo, ':', 1) OPERATOR(pg_catalog.~) '@';
	at_password constant boolean := pg_catalog.strpos(userinfo, ':') OPERATOR(pg_catalog.>) 0
		AND pg_catalog.substr(userinfo, pg_catalog.strpos(userinfo, ':')) OPERATOR(pg_catalog.~) '@';
BEGIN
	IF u !~ '^[A-Za-z][A-Za-z0-9+.-]*:' THEN
		RAISE EXCEPTION 'invalid URL "%": Bad scheme', shown;
	ELSIF u !~* '^https?:' THEN
		RAISE EXCEPTION 'invalid URL "%": Unsupported URL scheme', shown
			USING HINT = 'pgcrond sends http:// and https:// URLs only';
	ELSIF u !~* '^https?://[^/?#[:space:]]' THEN
		RAISE EXCEPTION 'invalid URL "%": No host part in the URL', shown;
	ELSIF u ~ '[[:space:][:cntrl:]]' THEN
		RAISE EXCEPTION 'invalid URL "%": Bad hostname', shown;
	ELSIF at_user AND at_password THEN
		RAISE EXCEPTION 'invalid URL "%": has an ''@'' in its user name and in its password; write each as %%40 (an ''@'' ends the user name and password)', shown;
	ELSIF at_user THEN
		RAISE EXCEPTION 'invalid URL "%": has an ''@'' in its user name; write it as %%40 (an ''@'' ends the user name and password)', shown;
	ELSIF at_password THEN
		RAISE EXCEPTION 'invalid URL "%": has an ''@'' in its password; write it as %%40 (an ''@'' ends the user name and password)', shown;
	END IF;
	IF pg_catalog.strpos(u, '#') OPERATOR(pg_catalog.>) 0 THEN
		frag := pg_catalog.substr(u, pg_catalog.strpos(u, '#'));
		u := pg_catalog.substr(u, 1, pg_catalog.strpos(u, '#') OPERATOR(pg_catalog.-) 1);
	END IF;
	FOREACH p IN ARRAY $2 LOOP
		CONTINUE WHEN p IS NULL;
		u := u OPERATOR(pg_catalog.||)
		     CASE WHEN pg_catalog.strpos(u, '?') OPERATOR(pg_catalog.>) 0 THEN '&' ELSE '?' END
		     OPERATOR(pg_catalog.||) p;
	END LOOP;
	RETURN u OPERATOR(pg_catalog.||) frag;
END
$fn$;

CREATE OR REPLACE FUNCTION net.http_get(
	url text,
	params jsonb DEFAULT '{}'::jsonb,
	headers jsonb DEFAULT '{}'::jsonb,
	timeout_milliseconds integer DEFAULT 5000)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	request_id bigint;
	params_array text[];
BEGIN
	SELECT coalesce(pg_catalog.array_agg(net._urlencode_string(key) OPERATOR(pg_catalog.||) '='
	                                     OPERATOR(pg_catalog.||) net._urlencode_string(value)), '{}')
	  INTO params_array
	  FROM pg_catalog.jsonb_each_text($2);
	INSERT INTO net.http_request_queue (method, url, headers, timeout_milliseconds)
	VALUES ('GET', net._encode_url_with_params_array($1, params_array), $3, $4)
	RETURNING id INTO request_id;
	RETURN request_id;
END
$fn$;
COMMENT ON FUNCTION net.http_get(text, jsonb, jsonb, integer) IS 'queue an HTTP GET, sent by pgcrond once the transaction commits; returns the request id (net._http_response.id)';

CREATE OR REPLACE FUNCTION net.http_post(
	url text,
	body jsonb DEFAULT '{}'::jsonb,
	params jsonb DEFAULT '{}'::jsonb,
	headers jsonb DEFAULT '{"Content-Type": "application/json"}'::jsonb,
	timeout_milliseconds integer DEFAULT 5000)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	request_id bigint;
	params_array text[];
	content_type text;
	hdrs jsonb := $4;
BEGIN
	SELECT h.value INTO content_type
	  FROM pg_catalog.jsonb_each_text(coalesce(hdrs, '{}'::jsonb)) h
	 WHERE pg_catalog.lower(h.key) OPERATOR(pg_catalog.=) 'content-type'
	 LIMIT 1;
	IF content_type IS NULL THEN
		hdrs := hdrs OPERATOR(pg_catalog.||) '{"Content-Type": "application/json"}'::jsonb;
	END IF;
	IF content_type OPERATOR(pg_catalog.<>) 'application/json' THEN
		RAISE EXCEPTION 'Content-Type header must be "application/json"';
	END IF;
	SELECT coalesce(pg_catalog.array_agg(net._urlencode_string(key) OPERATOR(pg_catalog.||) '='
	                                     OPERATOR(pg_catalog.||) net._urlencode_string(value)), '{}')
	  INTO params_array
	  FROM pg_catalog.jsonb_each_text($3);
	INSERT INTO net.http_request_queue (method, url, headers, body, timeout_milliseconds)
	VALUES ('POST', net._encode_url_with_params_array($1, params_array), hdrs,
	        pg_catalog.convert_to($2::text, 'UTF8'), $5)
	RETURNING id INTO request_id;
	RETURN request_id;
END
$fn$;
COMMENT ON FUNCTION net.http_post(text, jsonb, jsonb, jsonb, integer) IS 'queue an HTTP POST of a JSON body, sent by pgcrond once the transaction commits; returns the request id (net._http_response.id)';

CREATE OR REPLACE FUNCTION net.http_delete(
	url text,
	params jsonb DEFAULT '{}'::jsonb,
	headers jsonb DEFAULT '{}'::jsonb,
	timeout_milliseconds integer DEFAULT 5000,
	body jsonb DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	request_id bigint;
	params_array text[];
BEGIN
	SELECT coalesce(pg_catalog.array_agg(net._urlencode_string(key) OPERATOR(pg_catalog.||) '='
	                                     OPERATOR(pg_catalog.||) net._urlencode_string(value)), '{}')
	  INTO params_array
	  FROM pg_catalog.jsonb_each_text($2);
	INSERT INTO net.http_request_queue (method, url, headers, body, timeout_milliseconds)
	VALUES ('DELETE', net._encode_url_with_params_array($1, params_array), $3,
	        pg_catalog.convert_to($5::text, 'UTF8'), $4)
	RETURNING id INTO request_id;
	RETURN request_id;
END
$fn$;
COMMENT ON FUNCTION net.http_delete(text, jsonb, jsonb, integer, jsonb) IS 'queue an HTTP DELETE, sent by pgcrond once the transaction commits; returns the request id (net._http_response.id)';
END
$compat$;
