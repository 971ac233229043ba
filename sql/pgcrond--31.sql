-- pgcrond schema, step 31: a job made in SQL that the daemon cannot run is refused at the call
-- where its schedule shows it, and otherwise says why where people look.
--
-- A recurrence rule's values are checked at the call (cron.schedule, cron.schedule_in_database,
-- cron.alter_job, pgcrond.schedule), each item of each part against RFC 5545's ranges, in the
-- words of the daemon's parser: 'RRULE:FREQ=DAILY;BYHOUR=25' is refused with "BYHOUR=25: BYHOUR
-- takes hours 0-23, separated by commas", as pg_cron refuses a bad cron schedule. What needs the
-- whole rule or the daemon's configuration (a part its FREQ does not take, a schedule that never
-- fires, an unknown calendar, a spread longer than the schedule's gaps, an owner who cannot log
-- in) stays the daemon's to say: it leaves the job out and records why in pgcrond.job.refused
-- (pgcrond.record_refused, on its own session), which `pgcrond list`, `next --job`, `status` and
-- `history` show. Applied by `pgcrond install` (see pgcrond--1.sql).

-- What is wrong with recurrence rule RULE ("RRULE:..."), its shape or its values, or NULL.
CREATE OR REPLACE FUNCTION pgcrond.rrule_problem(rule text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	body constant text := upper(substr(btrim($1, E' \t\n\r\v\f'), 7));
	names constant text[] := ARRAY['FREQ', 'INTERVAL', 'UNTIL', 'WKST', 'BYSECOND', 'BYMINUTE',
		'BYHOUR', 'BYDAY', 'BYMONTHDAY', 'BYYEARDAY', 'BYWEEKNO', 'BYMONTH', 'BYSETPOS'];
	-- per part: what an item of its value looks like, the range of the item's number (a
	-- negative low: counted from the end too, and never 0 but in BYDAY), what the part takes
	forms constant text[] := ARRAY['^(SECONDLY|MINUTELY|HOURLY|DAILY|WEEKLY|MONTHLY|YEARLY)$',
		'^\+?[0-9]+$', '^[0-9]{8}T[0-9]{6}$', '^(MO|TU|WE|TH|FR|SA|SU)$', '^\+?[0-9]+$',
		'^\+?[0-9]+$', '^\+?[0-9]+$', '^[+-]?[0-9]{0,2}(MO|TU|WE|TH|FR|SA|SU)$', '^[+-]?[0-9]+$',
		'^[+-]?[0-9]+$', '^[+-]?[0-9]+$', '^\+?[0-9]+$', '^[+-]?[0-9]+$'];
	lows constant numeric[] := ARRAY[NULL, 1, NULL, NULL, 0, 0, 0, -53, -31, -366, -53, 1, -366];
	-- (BYSECOND=60 is RFC 5545's leap second, which the daemon takes)
	highs constant numeric[] := ARRAY[NULL, 2147483647, NULL, NULL, 60, 59, 23, 53, 31, 366, 53,
		12, 366];
	takes constant text[] := ARRAY['SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY',
		'a whole number from 1', 'a local date and time like 20261231T235959',
		'a weekday: MO, TU, WE, TH, FR, SA or SU', 'seconds 0-59, separated by commas',
		'minutes 0-59, separated by commas', 'hours 0-23, separated by commas',
		'weekdays like MO,TU or, in a MONTHLY or YEARLY rule, 1MO or -1FR',
		'days 1-31 or -31 to -1 (from the month''s end)', 'days 1-366 or -366 to -1',
		'ISO weeks 1-53 or -53 to -1', 'months 1-12',
		'positions 1-366 or -366 to -1 within each FREQ period'];
	part text;
	item text;
	m text[];
	k integer;
	n numeric;
	bad boolean;
	seen text[] := '{}';
BEGIN
	IF length(body) > 1000 THEN
		RETURN 'the rule is longer than 1000 characters';
	END IF;
	FOREACH part IN ARRAY string_to_array(body, ';') LOOP
		m := regexp_match(part, '^([A-Z]+)(=(.*))?$');
		IF m IS NULL THEN
			RETURN format('"%s" is not a part like FREQ=DAILY; parts are NAME=VALUE separated by ";", without blanks', part);
		ELSIF m[1] = 'COUNT' THEN
			RETURN 'COUNT counts fires from the rule''s start, 1970-01-01 for pgcrond; end the rule with UNTIL instead';
		ELSIF NOT m[1] = ANY (names) THEN
			RETURN format('unknown part "%s"; a rule has FREQ and may have %s', m[1],
			              array_to_string(names[2:], ', '));
		ELSIF m[1] = ANY (seen) THEN
			RETURN format('%s is given twice; give it once', m[1]);
		END IF;
		seen := seen || m[1];
		k := array_position(names, m[1]);
		bad := coalesce(m[3], '') = '';
		FOREACH item IN ARRAY string_to_array(coalesce(m[3], ''), ',') LOOP
			n := substring(item FROM '^[+-]?[0-9]+')::numeric;
			bad := bad OR item !~ forms[k] OR coalesce(n < lows[k] OR n > highs[k]
				OR (n = 0 AND lows[k] < 0 AND m[1] <> 'BYDAY'), false);
		END LOOP;
		IF bad THEN
			RETURN format('%s: %s takes %s', left(part, 60), m[1], takes[k]);
		END IF;
	END LOOP;
	IF NOT 'FREQ' = ANY (seen) THEN
		RETURN 'the rule has no FREQ; start it with FREQ=DAILY or the like';
	END IF;
	RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION pgcrond.rrule_problem(text) IS 'what is wrong with a recurrence rule (RRULE:...), its shape or the range of its values, or NULL; what needs the whole rule is the daemon''s to check';

ALTER TABLE pgcrond.job ADD COLUMN IF NOT EXISTS refused text;
COMMENT ON COLUMN pgcrond.job.refused IS 'why the daemon does not run this job made in SQL, as it last recorded it (NULL: it runs it)';

-- The daemon's record: REFUSED is a JSON object {"JOBID": {"why": "...", ...}, ...} of the jobs
-- made in SQL it leaves out; every other job's refused is cleared.
CREATE OR REPLACE FUNCTION pgcrond.record_refused(refused jsonb)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '2s'
AS $fn$
	UPDATE pgcrond.job j SET refused = $1 -> j.jobid::text ->> 'why'
	 WHERE j.source = 'sql' AND j.refused IS DISTINCT FROM $1 -> j.jobid::text ->> 'why';
$fn$;
REVOKE ALL ON FUNCTION pgcrond.record_refused(jsonb) FROM PUBLIC;

INSERT INTO pgcrond.schema_version (version) VALUES (31) ON CONFLICT DO NOTHING;
