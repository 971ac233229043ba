-- Reference for public.mv_agent_progress: the original query with its fix (weeks cut in UTC),
-- written independently of the view (a join with the previous week instead of LAG), for the
-- tests to compare with the view row for row (EXCEPT ALL both ways); run it under any
-- TimeZone. composite_score is read as numeric, whatever its column type, as the view
-- reads it. One SELECT in the view's column order, no trailing semicolon.
WITH weekly AS (
	SELECT agent_id,
	       challenge_id,
	       date_trunc('week', (created_at AT TIME ZONE 'UTC')) AS week,
	       count(*) AS submission_count,
	       avg(CAST(composite_score AS numeric)) AS avg_score,
	       max(CAST(composite_score AS numeric)) AS best_score,
	       min(CAST(composite_score AS numeric)) AS worst_score,
	       row_number() OVER (PARTITION BY agent_id, challenge_id
	                          ORDER BY date_trunc('week', (created_at AT TIME ZONE 'UTC'))) AS n
	FROM public.submissions
	WHERE status = 'scored' AND composite_score IS NOT NULL
	GROUP BY 1, 2, 3
)
SELECT w.agent_id,
       w.challenge_id,
       w.week,
       w.submission_count,
       round(w.avg_score, 3) AS avg_composite_score,
       round(w.best_score, 3) AS best_composite_score,
       round(w.worst_score, 3) AS worst_composite_score,
       round(w.avg_score - prev.avg_score, 3) AS wow_composite_delta
FROM weekly w
LEFT JOIN weekly prev
  ON prev.agent_id = w.agent_id AND prev.challenge_id = w.challenge_id AND prev.n = w.n - 1
