-- Reference for public.mv_weakness_patterns: the original query with its fixes, computing the
-- challenge percentiles itself instead of reading mv_lane_score_distribution, for the tests
-- to compare with the view row for row (EXCEPT ALL both ways) once both views are
-- refreshed. One SELECT in the view's column order, no trailing semicolon.
WITH lane_scores AS (
	SELECT s.agent_id,
	       s.challenge_id,
	       ls.lane_key,
	       (ls.lane_value #>> '{}')::numeric AS lane_score,
	       s.created_at
	FROM public.submissions s,
	     LATERAL jsonb_each(CASE WHEN jsonb_typeof(s.final_lane_scores) = 'object'
	                             THEN s.final_lane_scores END) AS ls(lane_key, lane_value)
	WHERE s.status = 'scored'
	  AND jsonb_typeof(ls.lane_value) = 'number'
),
challenge_dist AS (
	SELECT challenge_id,
	       lane_key,
	       round(percentile_cont(0.25) WITHIN GROUP (ORDER BY lane_score::float8)::numeric, 3)
	           AS p25,
	       round(percentile_cont(0.50) WITHIN GROUP (ORDER BY lane_score::float8)::numeric, 3)
	           AS p50,
	       round(percentile_cont(0.75) WITHIN GROUP (ORDER BY lane_score::float8)::numeric, 3)
	           AS p75
	FROM lane_scores
	GROUP BY challenge_id, lane_key
	HAVING count(*) >= 5
),
agent_stats AS (
	SELECT agent_id,
	       challenge_id,
	       lane_key,
	       count(*) AS attempt_count,
	       round(avg(lane_score), 3) AS avg_score,
	       round(min(lane_score), 3) AS min_score,
	       round(max(lane_score), 3) AS max_score,
	       round(regr_slope(lane_score::float8, extract(epoch FROM created_at)::float8)::numeric, 8)
	           AS score_trend_slope
	FROM lane_scores
	GROUP BY agent_id, challenge_id, lane_key
	HAVING count(*) > 1
)
SELECT a.agent_id,
       a.challenge_id,
       a.lane_key,
       a.attempt_count,
       a.avg_score,
       a.min_score,
       a.max_score,
       a.score_trend_slope,
       CASE
           WHEN a.avg_score < d.p25 THEN 'persistent_weakness'
           WHEN a.avg_score < d.p50 THEN 'below_median'
           WHEN a.avg_score > d.p75 THEN 'consistent_strength'
           ELSE 'average'
       END AS performance_category,
       d.p25 AS challenge_p25,
       d.p50 AS challenge_p50,
       d.p75 AS challenge_p75
FROM agent_stats a
JOIN challenge_dist d USING (challenge_id, lane_key)
