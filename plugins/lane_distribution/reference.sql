-- Reference for public.mv_lane_score_distribution: the original query with its fixes, written
-- independently of the view (lane values read through their text form), for the tests to
-- compare with the view row for row (EXCEPT ALL both ways). One SELECT with the view's
-- columns in the view's order and no trailing semicolon, so a test can wrap it in
-- parentheses; any comment ends at a newline.
WITH lane_scores AS (
	SELECT s.challenge_id,
	       ls.lane_key,
	       (ls.lane_value #>> '{}')::numeric AS lane_score,
	       s.created_at
	FROM public.submissions s,
	     LATERAL jsonb_each(CASE WHEN jsonb_typeof(s.final_lane_scores) = 'object'
	                             THEN s.final_lane_scores END) AS ls(lane_key, lane_value)
	WHERE s.status = 'scored'
	  AND s.final_lane_scores IS NOT NULL
	  AND jsonb_typeof(ls.lane_value) = 'number'
)
SELECT challenge_id,
       lane_key,
       count(*) AS sample_count,
       round(avg(lane_score), 3) AS mean_score,
       round(stddev(lane_score), 3) AS stddev_score,
       round(min(lane_score), 3) AS min_score,
       round(max(lane_score), 3) AS max_score,
       round(percentile_cont(0.10) WITHIN GROUP (ORDER BY lane_score::float8)::numeric, 3) AS p10,
       round(percentile_cont(0.25) WITHIN GROUP (ORDER BY lane_score::float8)::numeric, 3) AS p25,
       round(percentile_cont(0.50) WITHIN GROUP (ORDER BY lane_score::float8)::numeric, 3) AS p50,
       round(percentile_cont(0.75) WITHIN GROUP (ORDER BY lane_score::float8)::numeric, 3) AS p75,
       round(percentile_cont(0.90) WITHIN GROUP (ORDER BY lane_score::float8)::numeric, 3) AS p90,
       max(created_at) AS last_submission_at
FROM lane_scores
GROUP BY challenge_id, lane_key
HAVING count(*) >= 5
