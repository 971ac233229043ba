-- pgcrond schema, version 8: the rows left running are found without reading the history.
--
-- At start the daemon closes the rows an earlier process of its instance left 'running' (or
-- 'starting'), and the cluster does the same for an instance that died. With hundreds of
-- millions of rows, finding those few rows read every row of every partition. A partial
-- index holds only the rows still in progress: a run's row enters it when it starts and
-- leaves it when it ends (a short run, written once as a complete row, never enters it), so
-- each partition's index stays a few pages and the lookup is one index probe per partition.
-- The start-up reads also name a lower bound on start_time (the oldest day `retain` keeps),
-- so the partitions the retention is about to drop are pruned (core/src/hist_startup.c).
--
-- On a partitioned table the index is made on every partition, and on each partition made
-- later. Applied by `pgcrond install` (see pgcrond--1.sql).

CREATE INDEX IF NOT EXISTS job_run_details_open_idx
	ON pgcrond.job_run_details (instance) WHERE status IN ('starting', 'running');

INSERT INTO pgcrond.schema_version (version) VALUES (8) ON CONFLICT DO NOTHING;
