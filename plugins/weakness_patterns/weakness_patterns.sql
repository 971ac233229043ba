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
-- Guards against malformed rows, single-point slopes and small samples:
--   * only JSON-object final_lane_scores are expanded and only numeric lane values counted;
--   * REGR_SLOPE is computed only for groups of two or more points (HAVING count(*) >= 2);
--     it is still NULL when all of them have the same created_at;
--   * lanes whose challenge distribution has fewer than 5 scores have no row (the join with
--     mv_lane_score_distribution, which holds only those with at least 5).
--
-- A table the plugin fills, not a materialized view (the mv_ name is kept for readers), so a
-- run triggered by submission_scored notifications recomputes only the challenges they name
-- (a challenge's percentiles move every agent's category in it, so the challenge is the
-- partition): it deletes their rows and inserts them recomputed, in one transaction
-- (pgc_api.run_replace); a scheduled run replaces every row the same way. Readers never wait
-- and never see a challenge half updated. The rows come from
-- public.mv_weakness_patterns_rows(challenge_ids), every row for NULL.
--
-- Installed by `pgcrond install`, in one DO block, creating only what is missing (the
-- function is replaced as it is; no NOTICE). Needs mv_lane_score_distribution, so plugin
-- lane_distribution installs first; its install drops an earlier install's materialized
-- view of ours, which this one then recreates as a table, filled at once.
DO $install$
DECLARE
	created boolean := false;
BEGIN
	IF (SELECT relkind = 'm' FROM pg_class WHERE oid = to_regclass('public.mv_weakness_patterns'))
	THEN
		BEGIN
			DROP MATERIALIZED VIEW public.mv_weakness_patterns;
		EXCEPTION WHEN dependent_objects_still_exist THEN
			RAISE EXCEPTION 'cannot turn materialized view public.mv_weakness_patterns into a '
			                'table: other objects depend on it'
			      USING HINT = 'drop them (DROP MATERIALIZED VIEW ... CASCADE lists them), run '
			                   'pgcrond install again, then create them again';
		END;
	END IF;

	IF to_regclass('public.mv_weakness_patterns') IS NULL THEN
		CREATE TABLE public.mv_weakness_patterns (
			agent_id             uuid NOT NULL,
			challenge_id         uuid NOT NULL,
			lane_key             text NOT NULL,
			attempt_count        bigint,
			avg_score            numeric,
			min_score            numeric,
			max_score            numeric,
			score_trend_slope    numeric,
			performance_category text,
			challenge_p25        numeric,
			challenge_p50        numeric,
			challenge_p75        numeric
		);
		created := true;
		COMMENT ON TABLE public.mv_weakness_patterns IS
			'Per agent, challenge and lane (2+ scores): mean, range, trend and category against '
			'the challenge distribution; kept by pgcrond plugin weakness_patterns (a table it '
			'fills, per challenge)';
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

	-- The rows of the given challenges (all for NULL); inlined by the planner, so a partial
	-- run reads only those challenges' submissions and distribution rows. No SET search_path
	-- (it would stop the inlining): every name in the body is qualified, so nothing resolves
	-- through the job session's path (docs/writing-a-plugin.md).
	CREATE OR REPLACE FUNCTION public.mv_weakness_patterns_rows(challenge_ids pg_catalog.uuid[])
	RETURNS SETOF public.mv_weakness_patterns
	LANGUAGE sql STABLE PARALLEL SAFE AS $rows$
		WITH agent_lane_history AS (
			SELECT s.agent_id,
			       s.challenge_id,
			       e.key AS lane_key,
			       e.value::pg_catalog.numeric AS lane_score,
			       s.created_at
			FROM public.submissions s
			CROSS JOIN LATERAL pg_catalog.jsonb_each(s.final_lane_scores) e
			WHERE s.status OPERATOR(pg_catalog.=) 'scored'
			  AND pg_catalog.jsonb_typeof(s.final_lane_scores) OPERATOR(pg_catalog.=) 'object'
			  AND pg_catalog.jsonb_typeof(e.value) OPERATOR(pg_catalog.=) 'number'
			  AND (challenge_ids IS NULL
			       OR s.challenge_id OPERATOR(pg_catalog.=) ANY (challenge_ids))
		),
		agent_lane_stats AS (
			SELECT agent_id,
			       challenge_id,
			       lane_key,
			       pg_catalog.count(*) AS attempt_count,
			       pg_catalog.round(pg_catalog.avg(lane_score), 3) AS avg_score,
			       pg_catalog.round(pg_catalog.min(lane_score), 3) AS min_score,
			       pg_catalog.round(pg_catalog.max(lane_score), 3) AS max_score,
			       pg_catalog.round(
			           pg_catalog.regr_slope(lane_score::pg_catalog.float8,
			                                 extract(epoch FROM created_at)::pg_catalog.float8)
			               ::pg_catalog.numeric,
			           8) AS score_trend_slope
			FROM agent_lane_history
			GROUP BY agent_id, challenge_id, lane_key
			HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>=) 2
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
		           WHEN als.avg_score OPERATOR(pg_catalog.<) dist.p25 THEN 'persistent_weakness'
		           WHEN als.avg_score OPERATOR(pg_catalog.<) dist.p50 THEN 'below_median'
		           WHEN als.avg_score OPERATOR(pg_catalog.>) dist.p75 THEN 'consistent_strength'
		           ELSE 'average'
		       END AS performance_category,
		       dist.p25 AS challenge_p25,
		       dist.p50 AS challenge_p50,
		       dist.p75 AS challenge_p75
		FROM agent_lane_stats als
		JOIN public.mv_lane_score_distribution dist
		  ON dist.challenge_id OPERATOR(pg_catalog.=) als.challenge_id
		 AND dist.lane_key OPERATOR(pg_catalog.=) als.lane_key
		WHERE challenge_ids IS NULL
		   OR dist.challenge_id OPERATOR(pg_catalog.=) ANY (challenge_ids)
	$rows$;

	IF to_regclass('public.idx_mv_weakness_pk') IS NULL THEN
		CREATE UNIQUE INDEX idx_mv_weakness_pk
			ON public.mv_weakness_patterns (agent_id, challenge_id, lane_key);
	END IF;
	-- The coach view's "weak lanes of this challenge" query.
	IF to_regclass('public.idx_mv_weakness_category') IS NULL THEN
		CREATE INDEX idx_mv_weakness_category
			ON public.mv_weakness_patterns (performance_category, challenge_id);
	END IF;
	-- Partial runs delete by challenge.
	IF to_regclass('public.idx_mv_weakness_challenge') IS NULL THEN
		CREATE INDEX idx_mv_weakness_challenge ON public.mv_weakness_patterns (challenge_id);
	END IF;
	IF created THEN
		INSERT INTO public.mv_weakness_patterns SELECT * FROM public.mv_weakness_patterns_rows(NULL::pg_catalog.uuid[]);
	END IF;
END
$install$;
