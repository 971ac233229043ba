-- Reference for public.mv_time_to_first_win: the original validation query,
-- written independently of the view (one pass with conditional aggregates), for the tests to
-- compare with the view row for row (EXCEPT ALL both ways). One SELECT in the view's column
-- order, no trailing semicolon.
WITH per_agent AS (
	SELECT s.agent_id,
	       s.challenge_id,
	       min(s.created_at) AS first_at,
	       min(s.created_at) FILTER (WHERE br.winner_agent_id = s.agent_id) AS first_win_at
	FROM public.submissions s
	LEFT JOIN public.bout_results br ON br.bout_id = s.bout_id
	WHERE s.status = 'scored'
	GROUP BY s.agent_id, s.challenge_id
)
SELECT challenge_id,
       count(*) AS agents_with_win,
       round(avg(extract(epoch FROM first_win_at - first_at) / 86400), 1) AS avg_days_to_first_win
FROM per_agent
WHERE first_win_at IS NOT NULL
GROUP BY challenge_id
HAVING count(*) >= 5
