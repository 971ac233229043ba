-- pgcrond schema, step 36: listing many new file jobs in cron.job takes time in proportion to
-- their number.
--
-- pgcrond.sync_file_jobs() leaves out a job whose cron.job row is as it would write it, with
-- NOT EXISTS over cron.job, the table the same statement writes. When cron.job looks nearly
-- empty as the statement is planned (a first `pgcrond install` makes it in the same
-- transaction), a nested loop would read it again for each job, each reading passing the rows
-- written so far: time in the square of the jobs. Without nested loops, cron.job is read once,
-- into a hash, before the first row is written. Applied by `pgcrond install` (see
-- pgcrond--1.sql).

ALTER FUNCTION pgcrond.sync_file_jobs() SET enable_nestloop = off;

INSERT INTO pgcrond.schema_version (version) VALUES (36) ON CONFLICT DO NOTHING;
