-- pgcrond schema, step 30: a spread and a calendar for jobs made in SQL.
--
-- pgcrond.schedule() takes the job file's spread key as an option:
--   SELECT pgcrond.schedule('tenant-42', '0 * * * *', 'CALL tenant_rollup(42)',
--                           '{"spread": "10m"}');
-- Its shape is checked at the call (a duration of whole seconds, at least 1s); whether it
-- fits the schedule (no longer than the schedule's shortest gap, and a calendar schedule to
-- spread) is the daemon's to say, with the same check as for a job file: it leaves the job
-- out and logs why, as for any schedule it cannot use.
--
-- It takes the job file's skip_dates and only_dates too, a calendar's name:
--   SELECT pgcrond.schedule('daily-report', '0 6 * * 1-5', 'CALL reports.daily()',
--                           '{"skip_dates": "holidays"}');
-- The name's shape, and one of the two at most, are checked at the call; whether the daemon's
-- main file names that calendar is the daemon's to say, as for a job file (the job is left
-- out and the log says why).
--
-- And the job file's history key ("all" or "failures": a job's successes counted per hour in
-- pgcrond.job_run_counts instead of written as rows, step 27); pgcrond.view_status takes a
-- job's last success, and its last result, from those counts too (a counted success has its
-- end only, taken as its start as well). Applied by `pgcrond install` (see pgcrond--1.sql).

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
		"timezone": "zone", "freshness": "sla", "sources": "relations", "spread": "spread",
		"skip_dates": "calendar", "only_dates": "calendar", "history": ["all", "failures"]}';
	kind jsonb;
	problem text;
	bad text;
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
		ELSIF kind #>> '{}' IN ('duration', 'sla') THEN
			problem := pgcrond.duration_problem(kv.value);
			IF problem IS NOT NULL THEN
				RETURN format('%s must be a duration like "30s", "5m", "2h" or "7d", not %s: %s', kv.key, kv.value, problem);
			END IF;
			IF kind #>> '{}' = 'sla' AND pgcrond.duration_interval(kv.value) < interval '1 second' THEN
				RETURN format('%s must be at least "1s", not %s; the daemon cannot promise a relation fresher than that', kv.key, kv.value);
			END IF;
		ELSIF kind #>> '{}' = 'spread' THEN
			problem := pgcrond.duration_problem(kv.value);
			IF problem IS NULL AND (pgcrond.duration_interval(kv.value) < interval '1 second'
			   OR (extract(epoch FROM pgcrond.duration_interval(kv.value)) * 1000)::bigint % 1000 <> 0) THEN
				problem := 'a spread is whole seconds';
			END IF;
			IF problem IS NOT NULL THEN
				RETURN format('%s must be whole seconds like "30s" or "5m", not %s: %s', kv.key, kv.value, problem);
			END IF;
		ELSIF kind #>> '{}' = 'calendar' THEN
			IF jsonb_typeof(kv.value) <> 'string' OR (kv.value #>> '{}') !~ '^[A-Za-z][-A-Za-z0-9_]{0,62}$' THEN
				RETURN format('%s must be the name of a calendar of the daemon''s main file (calendars = { NAME = { ... }; }), like "holidays", not %s', kv.key, kv.value);
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
		ELSIF kind #>> '{}' = 'relations' THEN
			IF jsonb_typeof(kv.value) <> 'array' OR EXISTS (
				SELECT FROM jsonb_array_elements(kv.value) e WHERE jsonb_typeof(e) <> 'string') THEN
				RETURN format('%s must be an array of table names like ["public.submissions"], not %s', kv.key, kv.value);
			END IF;
			SELECT e INTO bad FROM jsonb_array_elements_text(kv.value) e
			 WHERE NOT pgcrond.valid_source(e) LIMIT 1;
			IF bad IS NOT NULL THEN
				RETURN format('source %s is not a schema-qualified table name; write it as "schema.table" in lower case (or a quoted part like "public.\"Orders\""), e.g. "public.submissions"',
				              to_jsonb(bad));
			END IF;
			SELECT e INTO bad FROM jsonb_array_elements_text(kv.value) e
			 GROUP BY e HAVING count(*) > 1 LIMIT 1;
			IF bad IS NOT NULL THEN
				RETURN format('%s lists %s twice; remove one', kv.key, to_jsonb(bad));
			END IF;
			IF jsonb_array_length(kv.value) > 64 THEN
				RETURN format('%s names %s tables; a job watches at most 64', kv.key, jsonb_array_length(kv.value));
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
	IF $1 ? 'skip_dates' AND $1 ? 'only_dates' THEN
		RETURN 'a job takes one calendar: skip_dates or only_dates, not both; keep the dates to skip out of the only_dates calendar';
	END IF;
	IF $1 ? 'sources' AND NOT $1 ? 'freshness' THEN
		RETURN 'sources are read only for freshness; add "freshness": "15m" (the longest the relation may lag its sources) or remove sources';
	END IF;
	IF $1 ? 'freshness' AND NOT $1 ? 'sources' AND NOT $1 ? 'after' THEN
		RETURN 'freshness needs to know what the job reads; add "sources": ["schema.table", ...] (the tables its command reads) or "after": [...] (the jobs whose relations it reads)';
	END IF;
	RETURN NULL;
END
$fn$;

CREATE OR REPLACE VIEW pgcrond.view_status AS
SELECT j.jobid,
       j.jobname AS job_name,
       j.plugin,
       j.relation,
       j.schedule,
       j.enabled,
       s.end_time AS last_success,
       now() - s.end_time AS age,
       j.max_staleness,
       CASE
	       WHEN s.end_time IS NULL THEN 'NEVER'
	       WHEN j.max_staleness IS NULL THEN NULL
	       WHEN now() - greatest(s.end_time, q.start_time) > j.max_staleness THEN 'STALE'
	       WHEN now() - greatest(s.end_time, q.start_time) > j.max_staleness / 2 THEN 'WARNING'
	       ELSE 'FRESH'
       END AS staleness,
       l.status AS last_status,
       l.start_time AS last_start,
       l.return_message AS last_message,
       (SELECT count(*)
	  FROM pgcrond.job_run_details f
	 WHERE f.job_name = j.jobname
	   AND f.status IN ('failed', 'upstream_failed')
	   AND f.start_time > coalesce(s.start_time, '-infinity')) AS failures_since_success,
       j.freshness,
       greatest(s.start_time, q.start_time) AS fresh_as_of,
       g.lag AS freshness_lag,
       CASE WHEN g.lag IS NULL OR NOT j.enabled THEN NULL
	    WHEN g.lag > fr.sla * 2 THEN 'ALERT'
	    WHEN g.lag > fr.sla THEN 'WARNING'
	    ELSE 'OK'
       END AS freshness_over,
       fr.checked_at AS freshness_checked_at,
       fr.fallback AS freshness_fallback
  FROM pgcrond.job j
  -- the last success: its row, or (history = "failures") the last counted one, which has
  -- its end only (taken as its start too)
  LEFT JOIN LATERAL (SELECT x.start_time, x.end_time, false AS counted
		       FROM (SELECT d.start_time, d.end_time
			       FROM pgcrond.job_run_details d
			      WHERE d.job_name = j.jobname AND d.status = 'succeeded'
			      ORDER BY d.start_time DESC
			      LIMIT 1) x
		     UNION ALL
		     SELECT c.last_end, c.last_end, true
		       FROM pgcrond.job_run_counts c
		      WHERE c.job_name = j.jobname
		      ORDER BY 1 DESC NULLS LAST
		      LIMIT 1) s ON true
  LEFT JOIN LATERAL (SELECT y.status, y.start_time, y.return_message
		       FROM (SELECT d.status, d.start_time, d.return_message
			       FROM pgcrond.job_run_details d
			      WHERE d.job_name = j.jobname
			      ORDER BY d.start_time DESC
			      LIMIT 1) y
		     UNION ALL
		     SELECT 'succeeded', s.start_time, NULL
		      WHERE s.counted
		      ORDER BY 2 DESC NULLS LAST
		      LIMIT 1) l ON true
  -- the last check that found the sources unchanged since a success (freshness)
  LEFT JOIN LATERAL (SELECT d.start_time
		       FROM pgcrond.job_run_details d
		      WHERE d.job_name = j.jobname AND d.status = 'skipped'
			AND d.return_message LIKE 'sources unchanged since %'
			AND d.start_time > s.start_time
		      ORDER BY d.start_time DESC
		      LIMIT 1) q ON j.freshness IS NOT NULL
  -- as the daemon has the job now (a file job's freshness column is `pgcrond install`'s)
  LEFT JOIN LATERAL (SELECT f.sla, f.changed_since, f.checked_at, f.fallback
		       FROM pgcrond.job_freshness f
		      WHERE f.job_name = j.jobname
		      ORDER BY f.checked_at DESC
		      LIMIT 1) fr ON true
  -- measured lately: within two check intervals (a quarter of the SLA, at most 5 minutes)
  -- and a minute
  LEFT JOIN LATERAL (SELECT CASE WHEN fr.checked_at IS NULL
				   OR now() - fr.checked_at
				      > least(fr.sla / 4, interval '5 minutes') * 2
				        + interval '1 minute' THEN NULL
			    WHEN fr.changed_since IS NULL THEN interval '0'
			    ELSE greatest(now() - fr.changed_since, interval '0')
		       END AS lag) g ON true
 WHERE j.removed_at IS NULL;
COMMENT ON VIEW pgcrond.view_status IS
	'per job: last success (a row, or a counted one for history = "failures"), age, staleness against max_staleness (sources seen unchanged '
	'count as fresh), freshness SLA and lag (pgcrond.job_freshness, published by the daemon)';

INSERT INTO pgcrond.schema_version (version) VALUES (30) ON CONFLICT DO NOTHING;
