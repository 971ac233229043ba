-- pgcrond schema, step 36: listing many new file jobs in cron.job takes time in proportion to
-- their number.
--
-- pgcrond.sync_file_jobs() (step 35) leaves out a job whose cron.job row is as it would write
-- it, with NOT EXISTS over cron.job, the table the same statement writes. When cron.job is
-- nearly empty as the statement is planned (the first `pgcrond install`, or a first start
-- with new jobs), the planner reads it again for each job, and each reading also passes the
-- rows the statement has written so far: 60,000 new jobs took 22 s, 135,000 several minutes.
-- Without nested loops, cron.job is read once, into a hash, before the first row is written.
-- Applied by `pgcrond install` (see pgcrond--1.sql).

ALTER FUNCTION pgcrond.sync_file_jobs() SET enable_nestloop = off;

INSERT INTO pgcrond.schema_version (version) VALUES (36) ON CONFLICT DO NOTHING;
