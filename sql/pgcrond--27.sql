-- pgcrond schema, step 27: history by outcome.
--
-- A job with history = "failures" writes a row for every run that does not succeed, as
-- every job does, and counts its successes instead of writing them one by one: per job and
-- hour (UTC: the hour of the instant the run served, or of its start) the runs, their total duration and a histogram of their
-- durations, from which pgcrond.run_counts gives p50, p95 and p99 (docs/operations.md,
-- "History by outcome"). A run's row is still written as it starts (a crash leaves
-- evidence); its success takes it away again, or, when the start and the end reach the
-- database in one batch, the row is never written. pg_cron's columns are untouched. Applied
-- by `pgcrond install` (see pgcrond--1.sql).

-- The durations' histogram: NBUCKETS (98) counts; bucket 0 holds runs under 1 ms, bucket k
-- (1..96) runs from 2^((k-1)/4) ms to under 2^(k/4) ms (each bucket 19% wider than the one
-- before), bucket 97 every run from 2^24 ms (4.7 hours) on.
CREATE TABLE IF NOT EXISTS pgcrond.job_run_counts (
	job_name    text NOT NULL,
	hour        timestamptz NOT NULL,
	runs        bigint NOT NULL,
	duration_ms double precision NOT NULL,
	buckets     integer[] NOT NULL,
	last_fire   timestamptz,
	last_end    timestamptz NOT NULL,
	fired       bit(3600) NOT NULL,
	PRIMARY KEY (job_name, hour)
);
CREATE INDEX IF NOT EXISTS job_run_counts_hour_idx ON pgcrond.job_run_counts (hour);
COMMENT ON TABLE pgcrond.job_run_counts IS 'successes of jobs with history = "failures", counted per job and hour instead of written to job_run_details';
COMMENT ON COLUMN pgcrond.job_run_counts.hour IS 'the UTC hour of the instants the runs served (of their start, for a run without one)';
COMMENT ON COLUMN pgcrond.job_run_counts.fired IS 'the instants of the hour a counted run served: bit N, the hour''s second N';
COMMENT ON COLUMN pgcrond.job_run_counts.duration_ms IS 'the runs'' durations added up';
COMMENT ON COLUMN pgcrond.job_run_counts.buckets IS 'runs by duration: [1] under 1 ms, [k+1] from 2^((k-1)/4) to under 2^(k/4) ms, [98] 2^24 ms and more';
COMMENT ON COLUMN pgcrond.job_run_counts.last_fire IS 'the latest scheduled instant a counted run served (trigger schedule or catchup): what catch-up compares with';
COMMENT ON COLUMN pgcrond.job_run_counts.last_end IS 'the end of the latest counted run: where staleness counts from';

-- How far each process's counted successes are in the table: a batch sent again after its
-- answer was lost (it may have committed) adds only what it did not add before.
CREATE TABLE IF NOT EXISTS pgcrond.job_run_counted (
	boot_id    text PRIMARY KEY,
	seq        bigint NOT NULL,
	counted_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pgcrond.job_run_counted IS 'per pgcrond process, the last of its counted successes in job_run_counts';
REVOKE ALL ON pgcrond.job_run_counts, pgcrond.job_run_counted FROM PUBLIC;

-- The histogram's quantile Q (0..1): the upper bound, in ms, of the bucket the Q-th run falls
-- in (at most 19% above the true value; the last bucket's runs read 2^(97/4) ms).
CREATE OR REPLACE FUNCTION pgcrond.run_quantile(buckets integer[], q double precision)
RETURNS double precision
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT power(2, (z.i - 1) / 4.0)::double precision
	  FROM (SELECT b.i, sum(b.n) OVER (ORDER BY b.i) AS below, sum(b.n) OVER () AS total
	          FROM unnest($1) WITH ORDINALITY AS b(n, i)) z
	 WHERE z.below >= $2 * z.total AND z.below > 0
	 ORDER BY z.i LIMIT 1
$fn$;
COMMENT ON FUNCTION pgcrond.run_quantile(integer[], double precision) IS 'a duration quantile (ms) of a job_run_counts histogram';

-- The counted successes per job and hour.
CREATE OR REPLACE VIEW pgcrond.run_counts AS
SELECT job_name, hour, runs,
       duration_ms / runs AS mean_ms,
       pgcrond.run_quantile(buckets, 0.5) AS p50_ms,
       pgcrond.run_quantile(buckets, 0.95) AS p95_ms,
       pgcrond.run_quantile(buckets, 0.99) AS p99_ms,
       last_end
  FROM pgcrond.job_run_counts;
COMMENT ON VIEW pgcrond.run_counts IS 'successes of jobs with history = "failures" per job and hour: runs, mean and p50/p95/p99 duration (ms, within 19%)';
REVOKE ALL ON pgcrond.run_counts FROM PUBLIC;

-- Whoever may read the run history may read the counts (grants given on
-- pgcrond.job_run_details before this step; a later GRANT on it wants one on these too).
DO $do$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT DISTINCT a.grantee
	           FROM pg_class c, aclexplode(c.relacl) a
	          WHERE c.oid = 'pgcrond.job_run_details'::regclass AND a.grantee <> c.relowner
	            AND a.privilege_type = 'SELECT' LOOP
		EXECUTE format('GRANT SELECT ON pgcrond.job_run_counts, pgcrond.run_counts TO %s',
		               CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE r.grantee::regrole::text END);
	END LOOP;
END
$do$;

-- The daemon's write of a batch's counted successes, one element per run: each run's row
-- goes if an earlier batch wrote it still running (a row another instance closed keeps that
-- instance's verdict), and the runs not counted before (SEQ past the process's mark) are
-- added to their job's hour. Rows are taken in key order: instances that count the same
-- job's hour at once wait for each other instead of deadlocking. RETAIN_MS > 0: the hours
-- older than that go. Returns the runs added.
CREATE OR REPLACE FUNCTION pgcrond.count_runs(instance text[], run_key text[],
	start_us bigint[], end_us bigint[], job_name text[], trigger text[], sched_us bigint[],
	seq bigint[], retain_ms bigint DEFAULT 0)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $fn$
	WITH v AS (
		SELECT u.*, regexp_replace(u.run_key, '\.[0-9]+$', '') AS boot,
		       timestamptz 'epoch' + u.start_us * interval '1 microsecond' AS start_time
		  FROM ROWS FROM (unnest($1), unnest($2), unnest($3), unnest($4), unnest($5),
		                  unnest($6), unnest($7), unnest($8))
		       AS u(instance, run_key, start_us, end_us, job_name, trigger, sched_us, seq)
	), gone AS (
		DELETE FROM pgcrond.job_run_details d USING v
		 WHERE d.instance = v.instance AND d.run_key = v.run_key
		   AND d.start_time = v.start_time AND d.status IN ('starting', 'running')
	), fresh AS (
		SELECT v.job_name,
		       to_timestamp((coalesce(v.sched_us, v.start_us) / 3600000000) * 3600) AS hour,
		       (v.sched_us / 1000000) % 3600 AS second,
		       greatest(v.end_us - v.start_us, 0) / 1000.0 AS ms,
		       CASE WHEN v.trigger IN ('schedule', 'catchup')
		            THEN timestamptz 'epoch' + v.sched_us * interval '1 microsecond' END AS fire,
		       timestamptz 'epoch' + v.end_us * interval '1 microsecond' AS end_time
		  FROM v LEFT JOIN pgcrond.job_run_counted c ON c.boot_id = v.boot
		 WHERE v.seq > coalesce(c.seq, 0)
	), mark AS (
		INSERT INTO pgcrond.job_run_counted AS c (boot_id, seq)
		SELECT v.boot, max(v.seq) FROM v GROUP BY v.boot ORDER BY v.boot
		ON CONFLICT (boot_id) DO UPDATE SET seq = greatest(c.seq, EXCLUDED.seq),
		                                    counted_at = now()
	), cells AS (
		SELECT f.job_name, f.hour,
		       CASE WHEN f.ms < 1 THEN 0
		            ELSE least(floor(4 * ln(f.ms) / ln(2))::integer + 1, 97) END AS bucket,
		       count(*) AS n
		  FROM fresh f GROUP BY 1, 2, 3
	), hours AS (
		SELECT f.job_name, f.hour, count(*) AS runs, sum(f.ms) AS ms, max(f.fire) AS fire,
		       max(f.end_time) AS last_end,
		       bit_or(CASE WHEN f.second IS NULL THEN repeat('0', 3600)::bit(3600)
		                   ELSE set_bit(repeat('0', 3600)::bit(3600), f.second::integer, 1)
		              END) AS fired,
		       (SELECT array_agg(coalesce(c.n, 0)::integer ORDER BY g.i)
		          FROM generate_series(0, 97) g(i)
		          LEFT JOIN cells c ON c.job_name = f.job_name AND c.hour = f.hour
		                           AND c.bucket = g.i) AS buckets
		  FROM fresh f GROUP BY f.job_name, f.hour
	), added AS (
		INSERT INTO pgcrond.job_run_counts AS c (job_name, hour, runs, duration_ms, buckets,
		                                        last_fire, last_end, fired)
		SELECT h.job_name, h.hour, h.runs, h.ms, h.buckets, h.fire, h.last_end, h.fired
		  FROM hours h ORDER BY h.job_name, h.hour
		ON CONFLICT (job_name, hour) DO UPDATE
		   SET runs = c.runs + EXCLUDED.runs,
		       duration_ms = c.duration_ms + EXCLUDED.duration_ms,
		       buckets = ARRAY(SELECT coalesce(z.a, 0) + coalesce(z.b, 0)
		                         FROM unnest(c.buckets, EXCLUDED.buckets)
		                              WITH ORDINALITY AS z(a, b, i) ORDER BY z.i),
		       last_fire = greatest(c.last_fire, EXCLUDED.last_fire),
		       last_end = greatest(c.last_end, EXCLUDED.last_end),
		       fired = c.fired | EXCLUDED.fired
	), started AS (
		-- the run began: its fire's claim says so, which a takeover reads (a claim of a
		-- fire run alone, made as another instance came, has started NULL)
		UPDATE pgcrond.fire_claim c SET started = true
		  FROM v
		 WHERE c.job_name = v.job_name AND c.instance = v.instance
		   AND c.fire_key = 's:' || (v.sched_us / 1000000) AND c.started IS NULL
	), old AS (
		DELETE FROM pgcrond.job_run_counts c
		 WHERE $9 > 0 AND c.hour < now() - $9 * interval '1 millisecond'
		   AND NOT EXISTS (SELECT FROM hours h
		                    WHERE h.job_name = c.job_name AND h.hour = c.hour)
	), old_marks AS (
		DELETE FROM pgcrond.job_run_counted c
		 WHERE c.counted_at < now() - interval '7 days'
		   AND NOT EXISTS (SELECT FROM v WHERE v.boot = c.boot_id)
	)
	SELECT coalesce((SELECT sum(runs) FROM hours), 0)::bigint
$fn$;
-- A claim made with started NULL of a scheduled fire that a counted run served (an instance
-- that ran alone claims the fires it ran as another instance comes; a fire it was refused is
-- claimed by the others to be recorded as skipped): started, as a row of the fire would have
-- shown it, so that no process serves the fire again.
CREATE OR REPLACE FUNCTION pgcrond.fire_claim_counted()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	s constant bigint := substr(NEW.fire_key, 3)::bigint;
BEGIN
	IF EXISTS (SELECT FROM pgcrond.job_run_counts k
	            WHERE k.job_name = NEW.job_name AND k.hour = to_timestamp(s - s % 3600)
	              AND get_bit(k.fired, (s % 3600)::integer) = 1) THEN
		NEW.started := true;
	END IF;
	RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION pgcrond.fire_claim_counted() FROM PUBLIC;
DROP TRIGGER IF EXISTS fire_claim_counted ON pgcrond.fire_claim;
CREATE TRIGGER fire_claim_counted BEFORE INSERT ON pgcrond.fire_claim
	FOR EACH ROW WHEN (NEW.started IS NULL AND NEW.fire_key ~ '^s:[0-9]{1,12}$')
	EXECUTE FUNCTION pgcrond.fire_claim_counted();

REVOKE ALL ON FUNCTION pgcrond.count_runs(text[], text[], bigint[], bigint[], text[], text[],
	bigint[], bigint[], bigint) FROM PUBLIC;

INSERT INTO pgcrond.schema_version (version) VALUES (27) ON CONFLICT DO NOTHING;
