-- lane_distribution: public.mv_lane_score_distribution, lane score percentiles per challenge.
--
-- One row per (challenge, lane) over the scored submissions: how many lane scores there are,
-- their mean, spread and percentiles. Percentiles are computed per challenge (seed 002: mixing
-- challenges mixes incomparable distributions). Read by mv_weakness_patterns.
--
-- Guards against the failures of seed 002:
--   * final_lane_scores may be SQL NULL, a JSON null, an array, or hold non-numeric lane
--     values ("n/a", null): only JSON objects are expanded and only numeric values counted,
--     so a bad row never fails the refresh;
--   * a (challenge, lane) needs at least 5 scores to get a row: no percentiles from one
--     submission (the seed filtered sample_count >= 5 in every reader; here no reader can
--     forget it).
-- Scores are read as numeric, so means and spreads are exact and do not depend on row order.
--
-- Installed by `pgcrond install`: one DO block, so it runs as one statement, and it creates
-- only what is missing after checking the catalog, so a second run changes nothing and raises
-- no NOTICE. It does not alter an existing view: a changed definition needs the old view
-- dropped first. The view starts unpopulated; pgcrond gives it one plain refresh, then
-- refreshes it CONCURRENTLY using the unique index on (challenge_id, lane_key).
DO $install$
BEGIN
	IF to_regclass('public.mv_lane_score_distribution') IS NULL THEN
		CREATE MATERIALIZED VIEW public.mv_lane_score_distribution AS
		SELECT s.challenge_id,
		       ls.lane_key,
		       count(*) AS sample_count,
		       round(avg(ls.lane_score), 3) AS mean_score,
		       round(stddev_samp(ls.lane_score), 3) AS stddev_score,
		       round(min(ls.lane_score), 3) AS min_score,
		       round(max(ls.lane_score), 3) AS max_score,
		       round((percentile_cont(0.10) WITHIN GROUP (ORDER BY ls.lane_score::float8))::numeric,
		             3) AS p10,
		       round((percentile_cont(0.25) WITHIN GROUP (ORDER BY ls.lane_score::float8))::numeric,
		             3) AS p25,
		       round((percentile_cont(0.50) WITHIN GROUP (ORDER BY ls.lane_score::float8))::numeric,
		             3) AS p50,
		       round((percentile_cont(0.75) WITHIN GROUP (ORDER BY ls.lane_score::float8))::numeric,
		             3) AS p75,
		       round((percentile_cont(0.90) WITHIN GROUP (ORDER BY ls.lane_score::float8))::numeric,
		             3) AS p90,
		       max(s.created_at) AS last_submission_at
		FROM public.submissions s
		CROSS JOIN LATERAL (
			SELECT e.key AS lane_key, e.value::numeric AS lane_score
			FROM jsonb_each(s.final_lane_scores) e
			WHERE jsonb_typeof(e.value) = 'number'
		) ls
		WHERE s.status = 'scored'
		  AND jsonb_typeof(s.final_lane_scores) = 'object'
		GROUP BY s.challenge_id, ls.lane_key
		HAVING count(*) >= 5
		WITH NO DATA;

		COMMENT ON MATERIALIZED VIEW public.mv_lane_score_distribution IS
			'Lane score distribution per challenge and lane over scored submissions (at least 5 '
			'scores); kept by pgcrond plugin lane_distribution';
		COMMENT ON COLUMN public.mv_lane_score_distribution.lane_key IS
			'A key of submissions.final_lane_scores';
		COMMENT ON COLUMN public.mv_lane_score_distribution.sample_count IS
			'Numeric scores of this lane in scored submissions of this challenge (>= 5)';
		COMMENT ON COLUMN public.mv_lane_score_distribution.stddev_score IS
			'Sample standard deviation';
		COMMENT ON COLUMN public.mv_lane_score_distribution.p10 IS
			'Percentiles p10..p90: continuous (interpolated), within this challenge only';
		COMMENT ON COLUMN public.mv_lane_score_distribution.last_submission_at IS
			'created_at of the newest submission counted';
	END IF;

	-- What REFRESH ... CONCURRENTLY matches rows on: unique, no WHERE, plain columns that
	-- are never NULL (challenge_id is NOT NULL, jsonb_each never yields a NULL key).
	IF to_regclass('public.idx_mv_lane_dist_pk') IS NULL THEN
		CREATE UNIQUE INDEX idx_mv_lane_dist_pk
			ON public.mv_lane_score_distribution (challenge_id, lane_key);
	END IF;
END
$install$;
