-- pgcrond schema, step 13: freshness (docs/freshness.md). pgcrond.job records each job's
-- freshness SLA (written by `pgcrond install` from the job files), and pgcrond.view_status
-- shows it beside the staleness: a job whose sources were seen unchanged ("skipped" rows
-- "sources unchanged since ...", written at most once a freshness period) is as fresh as
-- that check, not as old as its last refresh.
--
-- The freshness lag itself (the age of the oldest change not reflected) lives in the daemon,
-- which reads the sources' change counters in each job's database: `pgcrond status`,
-- status.json and /metrics show it. Here, fresh_as_of is what the history proves: the later
-- of the last successful run's start and the last "sources unchanged" check.

ALTER TABLE pgcrond.job ADD COLUMN IF NOT EXISTS freshness interval;
COMMENT ON COLUMN pgcrond.job.freshness IS
	'the freshness SLA: the relation reflects every change to its sources older than this';

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
       greatest(s.start_time, q.start_time) AS fresh_as_of
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
 WHERE j.removed_at IS NULL;
COMMENT ON VIEW pgcrond.view_status IS
	'per job: last success, age, staleness against max_staleness (sources seen unchanged '
	'count as fresh), freshness SLA';

INSERT INTO pgcrond.schema_version (version) VALUES (13) ON CONFLICT DO NOTHING;
