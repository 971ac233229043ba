-- pgcrond schema, step 34: a history row goes into three B-trees instead of four.
--
-- Every run and every skip is a row of pgcrond.job_run_details. A successful row went into
-- four indexes: the key (runid, start_time), the writer's key (instance, run_key, start_time),
-- (job_name, start_time DESC) and (start_time). The writer's key led with the instance, the
-- same for all of an instance's rows, then the run key, a text: each row went down the tree to
-- the middle of it. Led by start_time, the same key is appended at the tree's right edge (rows
-- come in the order their runs started), and it serves every query (start_time) served, which
-- goes: the B-tree insertions are most of what a row costs the server.
--
-- The indexes after this step, each with the queries that read through it:
--
--   job_run_details_pkey (runid, start_time): `pgcrond history --run ID`
--     (core/src/cli/cli_history_run.c), the run ids the status and the alerts show; runid is
--     pg_cron's key of cron.job_run_details.
--   job_run_details_client_key (start_time, instance, run_key), unique: the writer's key
--     (core/src/history/hist_batch.c): a replayed record's ON CONFLICT (instance, run_key,
--     start_time) (a unique index on the three columns in any order), and the pid and end of a
--     run an earlier batch wrote (an UPDATE naming all three). Newest first, and from a time
--     on: `pgcrond history` without a job and with --since (cli_history.c), the README's and
--     docs/sql-api.md's SELECT * FROM cron.job_run_details ORDER BY start_time DESC.
--   job_run_details_job_start_idx (job_name, start_time DESC): `pgcrond history JOB`,
--     pgcrond.view_status (last run, last success, failures since), the status's memory at
--     start (core/src/history/hist_startup.c: a skip scan over the job names), whether a fire
--     has a row (several instances: cluster_priv.h SQL_FIRE_HAS_ROW, hist_batch.h
--     HIST_UNLESS_SERVED). A row of a job goes where that job's rows are: the dearest of the
--     three, and the one every per-job read needs.
--   job_run_details_failed_idx (start_time DESC) WHERE failed or upstream_failed (step 25):
--     `pgcrond history --failed`, the status's last failures at start. A success never enters.
--   job_run_details_open_idx (instance) WHERE starting or running (step 8): the rows a
--     previous process (hist_startup.c) or a dead instance (core/src/cluster/cluster_lock.c)
--     left running. A run written once, complete, never enters.
--
-- A pid or an end written by a version before step 6 names no start (a spill file's P1 and
-- F1 lines): its update now reads each partition's heap, once per batch; no version since
-- writes them. The retention needs no index: it drops whole day partitions (step 6).
--
-- The writer's key is made again on every partition, under the install's lock on the table:
-- the daemon's history writes wait for it (their records wait in its spill file meanwhile).
-- Applied by `pgcrond install` (see pgcrond--1.sql).

ALTER TABLE pgcrond.job_run_details DROP CONSTRAINT IF EXISTS job_run_details_client_key;
ALTER TABLE pgcrond.job_run_details
	ADD CONSTRAINT job_run_details_client_key UNIQUE (start_time, instance, run_key);
DROP INDEX IF EXISTS pgcrond.job_run_details_start_idx;

INSERT INTO pgcrond.schema_version (version) VALUES (34) ON CONFLICT DO NOTHING;
