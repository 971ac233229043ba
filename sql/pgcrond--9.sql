-- pgcrond schema, version 9: pgcrond.schedule() refuses the options the daemon would refuse.
--
-- The options of a SQL job were checked by a looser rule than the daemon's: a duration with
-- spaces ("5 m") or with its units in any order ("30m1h"), a retry_backoff over 1000 and a
-- duration over 100 years passed the call, and the daemon then left the job out with a line
-- in its log that the caller never saw. The rules are now the daemon's (core/src/duration.c,
-- core/src/config_keys.c): a duration is whole numbers with units, the larger unit first and
-- each once, no spaces, at most 36,500 days; retry_backoff is from 1 to 1000. Applied by
-- `pgcrond install` (see pgcrond--1.sql).

-- What is wrong with V as a duration, or NULL.
CREATE OR REPLACE FUNCTION pgcrond.duration_problem(v jsonb)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	t text;
	m text[];
	units constant text[] := ARRAY['d', 'h', 'm', 's', 'ms'];
	unit_ms constant numeric[] := ARRAY[86400000, 3600000, 60000, 1000, 1];
	last int := 0;
	u int;
	total numeric := 0;
BEGIN
	IF v IS NULL OR jsonb_typeof(v) <> 'string' THEN
		RETURN 'a duration is a string';
	END IF;
	t := v #>> '{}';
	IF t !~ '^\+?([0-9]+(ms|s|m|h|d))+$' THEN
		RETURN 'write whole numbers with a unit (ms, s, m, h or d) and no spaces';
	END IF;
	FOR m IN SELECT regexp_matches(t, '([0-9]+)(ms|s|m|h|d)', 'g') LOOP
		u := array_position(units, m[2]);
		IF u <= last THEN
			RETURN 'write the larger unit first, each once, like "1h30m"';
		END IF;
		last := u;
		total := total + m[1]::numeric * unit_ms[u];
	END LOOP;
	IF total > 36500 * 86400000::numeric THEN
		RETURN 'at most 100 years ("36500d")';
	END IF;
	RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION pgcrond.options_problem(options jsonb)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	kv record;
	kinds constant jsonb := '{"timeout": "duration", "overlap": ["skip", "queue", "replace"],
		"retries": "count", "retry_delay": "duration", "retry_backoff": "factor",
		"retry_max_delay": "duration", "retry_on_timeout": "boolean",
		"retry_on": ["transient", "any"], "catchup": ["skip", "once"], "after": "names",
		"listen": "channel", "debounce": "duration", "max_delay": "duration",
		"alert_after": "positive", "max_staleness": "duration", "warn_duration": "duration",
		"timezone": "zone"}';
	kind jsonb;
	problem text;
BEGIN
	IF $1 IS NULL OR jsonb_typeof($1) <> 'object' THEN
		RETURN 'options must be a JSON object like {"retries": 3, "timeout": "10m"}';
	END IF;
	FOR kv IN SELECT * FROM jsonb_each($1) LOOP
		kind := kinds -> kv.key;
		IF kind IS NULL THEN
			RETURN format('unknown option "%s"%s', kv.key,
			              CASE WHEN kv.key IN ('name', 'command', 'schedule', 'database', 'enabled', 'plugin')
			                   THEN '; it is an argument of the function, not an option'
			                   ELSE '; the options are ' || (SELECT string_agg(k, ', ' ORDER BY k) FROM jsonb_object_keys(kinds) k) END);
		ELSIF jsonb_typeof(kind) = 'array' THEN
			IF jsonb_typeof(kv.value) <> 'string' OR NOT kind ? (kv.value #>> '{}') THEN
				RETURN format('%s must be one of %s, not %s', kv.key,
				              (SELECT string_agg(v, ', ') FROM jsonb_array_elements_text(kind) v), kv.value);
			END IF;
		ELSIF kind #>> '{}' = 'duration' THEN
			problem := pgcrond.duration_problem(kv.value);
			IF problem IS NOT NULL THEN
				RETURN format('%s must be a duration like "30s", "5m", "2h" or "7d", not %s: %s', kv.key, kv.value, problem);
			END IF;
		ELSIF kind #>> '{}' IN ('count', 'positive') THEN
			IF jsonb_typeof(kv.value) <> 'number' OR (kv.value #>> '{}') !~ '^[0-9]+$'
			   OR (kv.value #>> '{}')::numeric > 1000000000
			   OR (kind #>> '{}' = 'positive' AND (kv.value #>> '{}')::numeric < 1) THEN
				RETURN format('%s must be a whole number from %s to 1000000000, not %s', kv.key,
				              CASE WHEN kind #>> '{}' = 'positive' THEN 1 ELSE 0 END, kv.value);
			END IF;
		ELSIF kind #>> '{}' = 'factor' THEN
			IF jsonb_typeof(kv.value) <> 'number' OR (kv.value #>> '{}')::numeric NOT BETWEEN 1 AND 1000 THEN
				RETURN format('%s must be a number from 1 to 1000, not %s', kv.key, kv.value);
			END IF;
		ELSIF kind #>> '{}' = 'boolean' THEN
			IF jsonb_typeof(kv.value) <> 'boolean' THEN
				RETURN format('%s must be true or false, not %s', kv.key, kv.value);
			END IF;
		ELSIF kind #>> '{}' = 'names' THEN
			IF jsonb_typeof(kv.value) <> 'array' OR EXISTS (
				SELECT FROM jsonb_array_elements(kv.value) e
				 WHERE jsonb_typeof(e) <> 'string' OR NOT pgcrond.valid_job_name(e #>> '{}')) THEN
				RETURN format('%s must be an array of job names like ["refresh-a"], not %s', kv.key, kv.value);
			END IF;
		ELSIF kind #>> '{}' = 'channel' THEN
			IF jsonb_typeof(kv.value) <> 'string' OR octet_length(kv.value #>> '{}') NOT BETWEEN 1 AND 63 THEN
				RETURN format('%s must be a channel name of 1 to 63 bytes, not %s', kv.key, kv.value);
			END IF;
		ELSIF kind #>> '{}' = 'zone' THEN
			IF jsonb_typeof(kv.value) <> 'string'
			   OR NOT EXISTS (SELECT FROM pg_timezone_names WHERE name = kv.value #>> '{}') THEN
				RETURN format('unknown timezone %s; use a name from the tz database like "UTC" or "Europe/Berlin"', kv.value);
			END IF;
		END IF;
	END LOOP;
	IF ($1 ? 'debounce' OR $1 ? 'max_delay') AND NOT $1 ? 'listen' THEN
		RETURN 'debounce and max_delay only apply to notifications; add "listen" or remove them';
	END IF;
	RETURN NULL;
END
$fn$;

INSERT INTO pgcrond.schema_version (version) VALUES (9) ON CONFLICT DO NOTHING;
