-- pgcrond schema, step 26: recurrence rules through pg_cron's API.
--
-- A job file's schedule may be an RFC 5545 recurrence rule, "RRULE:FREQ=...;..."
-- (docs/calendars.md); cron.schedule, cron.schedule_in_database, cron.alter_job and
-- pgcrond.schedule refused every one of them (schedule_problem knew the cron grammar only).
-- Now a rule whose shape is right passes at the call: "RRULE:" (any case), then parts
-- NAME=VALUE separated by ";", each a part RFC 5545 names, given once, FREQ among them. What
-- its values mean (BYHOUR=25, a part its FREQ does not take, a rule that never fires) is the
-- daemon's to say, with the same parser as for a job file: it leaves the job out and logs
-- why, as for a cron schedule whose day no month has (0 0 30 2 *). The cron grammar's checks
-- are step 3's, kept under the name cron_text_problem. Applied by `pgcrond install` (see
-- pgcrond--1.sql).

DO $do$
BEGIN
	IF to_regprocedure('pgcrond.cron_text_problem(text)') IS NULL THEN
		ALTER FUNCTION pgcrond.schedule_problem(text) RENAME TO cron_text_problem;
	END IF;
END
$do$;
COMMENT ON FUNCTION pgcrond.cron_text_problem(text) IS 'what is wrong with a cron expression, a macro or "N seconds", or NULL when pgcrond accepts it';

-- What is wrong with the shape of recurrence rule RULE ("RRULE:..."), or NULL.
CREATE OR REPLACE FUNCTION pgcrond.rrule_problem(rule text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	body constant text := substr(btrim($1, E' \t\n\r\v\f'), 7);
	names constant text[] := ARRAY['FREQ', 'INTERVAL', 'UNTIL', 'WKST', 'BYSECOND', 'BYMINUTE',
		'BYHOUR', 'BYDAY', 'BYMONTHDAY', 'BYYEARDAY', 'BYWEEKNO', 'BYMONTH', 'BYSETPOS'];
	part text;
	m text[];
	seen text[] := '{}';
BEGIN
	IF length(body) > 1000 THEN
		RETURN 'the rule is longer than 1000 characters';
	END IF;
	FOREACH part IN ARRAY string_to_array(body, ';') LOOP
		m := regexp_match(part, '^([A-Za-z]+)=([A-Za-z0-9,+-]+)$');
		IF m IS NULL THEN
			RETURN format('"%s" is not a part like FREQ=DAILY; parts are NAME=VALUE separated by ";", without blanks', part);
		ELSIF upper(m[1]) = 'COUNT' THEN
			RETURN 'COUNT counts fires from the rule''s start, 1970-01-01 for pgcrond; end the rule with UNTIL instead';
		ELSIF NOT upper(m[1]) = ANY (names) THEN
			RETURN format('unknown part "%s"; a rule has FREQ and may have %s', m[1],
			              array_to_string(names[2:], ', '));
		ELSIF upper(m[1]) = ANY (seen) THEN
			RETURN format('%s is given twice; give it once', upper(m[1]));
		END IF;
		seen := seen || upper(m[1]);
	END LOOP;
	IF NOT 'FREQ' = ANY (seen) THEN
		RETURN 'the rule has no FREQ; start it with FREQ=DAILY or the like';
	END IF;
	RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION pgcrond.rrule_problem(text) IS 'what is wrong with the shape of a recurrence rule (RRULE:...), or NULL; its values are the daemon''s to check';

-- What is wrong with a schedule, or NULL: a recurrence rule's shape, or the cron grammar.
CREATE OR REPLACE FUNCTION pgcrond.schedule_problem(schedule text)
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT CASE WHEN lower(left(btrim($1, E' \t\n\r\v\f'), 6)) = 'rrule:'
	            THEN pgcrond.rrule_problem($1) ELSE pgcrond.cron_text_problem($1) END
$fn$;
COMMENT ON FUNCTION pgcrond.schedule_problem(text) IS 'what is wrong with a schedule (a cron expression or the shape of a recurrence rule), or NULL when pgcrond accepts it';

INSERT INTO pgcrond.schema_version (version) VALUES (26) ON CONFLICT DO NOTHING;
