-- pgcrond schema, step 19: the freshness lag in pgcrond.view_status
-- (docs/freshness.md). The lag (the age of the oldest change to a job's sources that its
-- relation does not reflect yet) is known to the daemon, which reads the sources' change
-- counters in each job's database; it publishes it here: a row per job with freshness and
-- instance (every instance checks), rewritten when the oldest change not reflected, the SLA
-- or the reason the sources cannot be read changes, and every 30 s while the daemon reads
-- them. The view takes the row read last; one not rewritten within two check intervals and
-- a minute is not trusted: the view says NULL (not known) rather than a lag the daemon no
-- longer measures. Applied by `pgcrond install` (see pgcrond--1.sql).

CREATE TABLE IF NOT EXISTS pgcrond.job_freshness (
	job_name      text NOT NULL,
	instance      text NOT NULL,
	sla           interval NOT NULL,
	changed_since timestamptz,
	checked_at    timestamptz NOT NULL,
	fallback      text,
	PRIMARY KEY (job_name, instance)
);
COMMENT ON TABLE pgcrond.job_freshness IS
	'per job with freshness and instance, written by the daemon: the SLA, the oldest change not reflected (NULL: none), when the sources were last read, why they cannot be';
REVOKE ALL ON pgcrond.job_freshness FROM PUBLIC;

-- The daemon's publication: STATES is a JSON array of {"job", "sla_ms" (the SLA in force),
-- "changed_since" (Unix µs or null), "checked_at" (Unix µs), "fallback" (text or null)};
-- the instance's rows of jobs it no longer has with freshness are removed. Rows are locked
-- in name order, and a lock not had within 2 s fails the statement rather than hold the run
-- records queued behind it.
CREATE OR REPLACE FUNCTION pgcrond.freshness_publish(instance text, states jsonb)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '2s'
AS $fn$
	WITH s AS (SELECT DISTINCT ON (e ->> 'job') e ->> 'job' AS job_name,
	                  ((e ->> 'sla_ms')::bigint * interval '1 millisecond') AS sla,
	                  to_timestamp((e ->> 'changed_since')::numeric / 1000000) AS changed_since,
	                  to_timestamp((e ->> 'checked_at')::numeric / 1000000) AS checked_at,
	                  e ->> 'fallback' AS fallback
	             FROM jsonb_array_elements($2) e
	            WHERE e ->> 'job' IS NOT NULL
	            ORDER BY e ->> 'job'),
	gone AS (DELETE FROM pgcrond.job_freshness f
	          WHERE f.instance = $1
	            AND NOT EXISTS (SELECT FROM s WHERE s.job_name = f.job_name))
	INSERT INTO pgcrond.job_freshness AS f
	       (job_name, instance, sla, changed_since, checked_at, fallback)
	SELECT job_name, $1, sla, changed_since, checked_at, fallback FROM s ORDER BY job_name
	ON CONFLICT (job_name, instance) DO UPDATE
	   SET sla = EXCLUDED.sla, changed_since = EXCLUDED.changed_since,
	       checked_at = EXCLUDED.checked_at, fallback = EXCLUDED.fallback
$fn$;
REVOKE ALL ON FUNCTION pgcrond.freshness_publish(text, jsonb) FROM PUBLIC;

-- step 13's view, and four columns: freshness_lag as `pgcrond status` shows it (NULL: no
-- freshness, or not measured within two check intervals and a minute: the daemon is
-- stopped or cannot reach the history), freshness_over ('OK', 'WARNING' past the SLA,
-- 'ALERT' past twice it; NULL for a disabled job, as for its alerts),
-- freshness_checked_at and freshness_fallback (why the sources cannot be read: the job runs
-- every period, and the lag counts from the start of its last success)
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
  LEFT JOIN LATERAL (SELECT d.start_time, d.end_time
		       FROM pgcrond.job_run_details d
		      WHERE d.job_name = j.jobname AND d.status = 'succeeded'
		      ORDER BY d.start_time DESC
		      LIMIT 1) s ON true
  LEFT JOIN LATERAL (SELECT d.status, d.start_time, d.return_message
		       FROM pgcrond.job_run_details d
		      WHERE d.job_name = j.jobname
		      ORDER BY d.start_time DESC
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
	'per job: last success, age, staleness against max_staleness (sources seen unchanged '
	'count as fresh), freshness SLA and lag (pgcrond.job_freshness, published by the daemon)';

INSERT INTO pgcrond.schema_version (version) VALUES (19) ON CONFLICT DO NOTHING;
