-- pgcrond schema, step 25: a history row pays for the indexes a query uses, no more.
--
-- Every run and every skip is a row of pgcrond.job_run_details, and at 15,000 runs a second
-- the B-tree insertions were a third of the history backend's time. A row went into six
-- indexes. Two of them were paid by rows no query reads through them:
--
-- - job_run_details_failures_idx, (start_time DESC) WHERE status <> 'succeeded': every skip
--   and every row written 'running' went in, where its readers ask only for failures
--   (`pgcrond history --failed`: failed and upstream_failed; the status's last failures at
--   start: failed). It becomes job_run_details_failed_idx on the failures alone.
-- - job_run_details_success_idx, (job_name, start_time DESC) WHERE status = 'succeeded': the
--   same key as job_run_details_job_start_idx for the successes, read by pgcrond.view_status
--   for a job's last success. That index serves it (the job's rows newest first, down to its
--   last success), and the common row, a success, now goes into four indexes instead of five.
--
-- The indexes of the table after this step, each with the queries that read through it:
--
--   job_run_details_pkey (runid, start_time): `pgcrond history --run ID`, the run ids the
--     status and the alerts show; runid is pg_cron's key of cron.job_run_details.
--   job_run_details_client_key (instance, run_key, start_time), unique: the writer's own key:
--     a replayed record's ON CONFLICT, the pid and end of a run an earlier batch wrote
--     (core/src/history/hist_batch.h), the cluster closing a dead instance's rows.
--   job_run_details_job_start_idx (job_name, start_time DESC): `pgcrond history JOB`,
--     pgcrond.view_status (last run, last success, failures since), the status's memory at
--     start (hist_startup.c: a skip scan over the job names), whether a fire has a row
--     (several instances: cluster_priv.h SQL_FIRE_HAS_ROW, hist_batch.h HIST_UNLESS_SERVED).
--   job_run_details_start_idx (start_time): `pgcrond history` without a job, and --since;
--     cron.job_run_details' readers ordering by start_time.
--   job_run_details_failed_idx (start_time DESC) WHERE failed or upstream_failed: `pgcrond
--     history --failed`, the status's last failures at start.
--   job_run_details_open_idx (instance) WHERE starting or running (step 8): the rows a
--     previous process or a dead instance left running; a short run never enters it.
--
-- The retention needs none: it drops whole day partitions (step 6). On a partitioned table
-- the index is made on every partition (this step reads each existing one once) and on each
-- partition made later. Applied by `pgcrond install` (see pgcrond--1.sql).

DROP INDEX IF EXISTS pgcrond.job_run_details_success_idx;
DROP INDEX IF EXISTS pgcrond.job_run_details_failures_idx;
CREATE INDEX IF NOT EXISTS job_run_details_failed_idx
	ON pgcrond.job_run_details (start_time DESC) WHERE status IN ('failed', 'upstream_failed');

INSERT INTO pgcrond.schema_version (version) VALUES (25) ON CONFLICT DO NOTHING;
