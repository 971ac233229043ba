-- weakness_patterns: public.mv_weakness_patterns, each agent's lanes against its challenge.
--
-- One row per (agent, challenge, lane) with at least two numeric scores: the agent's mean,
-- range and trend in that lane, and where its mean falls in the challenge's distribution
-- (public.mv_lane_score_distribution, kept by plugin lane_distribution, which must be
-- refreshed first). performance_category is 'persistent_weakness' (mean below the challenge's
-- p25), 'below_median' (below p50), 'consistent_strength' (above p75) or 'average'.
-- score_trend_slope is the least-squares slope of the lane score against time, in score
-- points per second: positive means improving.
--
-- Guards against the failures of seed 002:
--   * only JSON-object final_lane_scores are expanded and only numeric lane values counted;
--   * REGR_SLOPE is computed only for groups of two or more points (HAVING count(*) >= 2);
--     it is still NULL when all of them have the same created_at;
--   * lanes whose challenge distribution has fewer than 5 scores have no row (the join with
--     mv_lane_score_distribution, which holds only those with at least 5).
--
-- Installed by `pgcrond install`: one DO block, creating only what is missing (no NOTICE on
-- a second run, no change to an existing view). Needs mv_lane_score_distribution to exist,
-- so plugin lane_distribution installs first. Refreshed CONCURRENTLY using the unique index
-- on (agent_id, challenge_id, lane_key).
DO $install$
BEGIN
	IF to_regclass('public.mv_weakness_patterns') IS NULL THEN
		CREATE MATERIALIZED VIEW public.mv_weakness_patterns AS
		WITH agent_lane_history AS (
			SELECT s.agent_id,
			       s.challenge_id,
			       e.key AS lane_key,
			       e.value::numeric AS lane_score,
			       s.created_at
			FROM public.submissions s
			CROSS JOIN LATERAL jsonb_each(s.final_lane_scores) e
			WHERE s.status = 'scored'
			  AND jsonb_typeof(s.final_lane_scores) = 'object'
			  AND jsonb_typeof(e.value) = 'number'
		),
		agent_lane_stats AS (
			SELECT agent_id,
			       challenge_id,
			       lane_key,
			       count(*) AS attempt_count,
			       round(avg(lane_score), 3) AS avg_score,
			       round(min(lane_score), 3) AS min_score,
			       round(max(lane_score), 3) AS max_score,
			       round(regr_slope(lane_score::float8,
			                        extract(epoch FROM created_at)::float8)::numeric, 8)
			           AS score_trend_slope
			FROM agent_lane_history
			GROUP BY agent_id, challenge_id, lane_key
			HAVING count(*) >= 2
		)
		SELECT als.agent_id,
		       als.challenge_id,
		       als.lane_key,
		       als.attempt_count,
		       als.avg_score,
		       als.min_score,
		       als.max_score,
		       als.score_trend_slope,
		       CASE
		           WHEN als.avg_score < dist.p25 THEN 'persistent_weakness'
		           WHEN als.avg_score < dist.p50 THEN 'below_median'
		           WHEN als.avg_score > dist.p75 THEN 'consistent_strength'
		           ELSE 'average'
		       END AS performance_category,
		       dist.p25 AS challenge_p25,
		       dist.p50 AS challenge_p50,
		       dist.p75 AS challenge_p75
		FROM agent_lane_stats als
		JOIN public.mv_lane_score_distribution dist
		  ON dist.challenge_id = als.challenge_id AND dist.lane_key = als.lane_key
		WITH NO DATA;

		COMMENT ON MATERIALIZED VIEW public.mv_weakness_patterns IS
			'Per agent, challenge and lane (2+ scores): mean, range, trend and category against '
			'the challenge distribution; kept by pgcrond plugin weakness_patterns';
		COMMENT ON COLUMN public.mv_weakness_patterns.attempt_count IS
			'Numeric scores of this lane in the agent''s scored submissions to this challenge (>= '
			'2)';
		COMMENT ON COLUMN public.mv_weakness_patterns.score_trend_slope IS
			'Least-squares slope of the lane score over created_at, points per second (positive: '
			'improving); NULL if all at one instant';
		COMMENT ON COLUMN public.mv_weakness_patterns.performance_category IS
			'persistent_weakness (< challenge p25), below_median (< p50), consistent_strength (> '
			'p75), else average';
	END IF;

	IF to_regclass('public.idx_mv_weakness_pk') IS NULL THEN
		CREATE UNIQUE INDEX idx_mv_weakness_pk
			ON public.mv_weakness_patterns (agent_id, challenge_id, lane_key);
	END IF;
	-- The coach view's "weak lanes of this challenge" query.
	IF to_regclass('public.idx_mv_weakness_category') IS NULL THEN
		CREATE INDEX idx_mv_weakness_category
			ON public.mv_weakness_patterns (performance_category, challenge_id);
	END IF;
END
$install$;
