-- time_to_first_win: public.mv_time_to_first_win, how long agents take to win on a challenge.
--
-- One row per challenge: among the agents that have won a bout on it, how many
-- (agents_with_win) and the mean time in days, to one decimal, from an agent's first scored
-- submission to the challenge to its first scored submission that won a bout
-- (avg_days_to_first_win). A win is a bout_results row whose winner_agent_id is the
-- submission's agent; draws (winner NULL) are not wins.
--
-- Guards against the failures of seed 002: a challenge needs at least 5 agents with a win to
-- get a row (sample-count guard, as in the seed).
--
-- Installed by `pgcrond install`: one DO block, creating only what is missing (no NOTICE on
-- a second run, no change to an existing view). Refreshed CONCURRENTLY using the unique
-- index on (challenge_id).
DO $install$
BEGIN
	IF to_regclass('public.mv_time_to_first_win') IS NULL THEN
		CREATE MATERIALIZED VIEW public.mv_time_to_first_win AS
		WITH first_submissions AS (
			SELECT agent_id, challenge_id, min(created_at) AS first_at
			FROM public.submissions
			WHERE status = 'scored'
			GROUP BY agent_id, challenge_id
		),
		first_wins AS (
			SELECT s.agent_id, s.challenge_id, min(s.created_at) AS first_win_at
			FROM public.submissions s
			JOIN public.bout_results br
			  ON br.bout_id = s.bout_id AND br.winner_agent_id = s.agent_id
			WHERE s.status = 'scored'
			GROUP BY s.agent_id, s.challenge_id
		)
		SELECT fs.challenge_id,
		       count(*) AS agents_with_win,
		       round(avg(extract(epoch FROM fw.first_win_at - fs.first_at) / 86400), 1)
		           AS avg_days_to_first_win
		FROM first_submissions fs
		JOIN first_wins fw ON fw.agent_id = fs.agent_id AND fw.challenge_id = fs.challenge_id
		GROUP BY fs.challenge_id
		HAVING count(*) >= 5
		WITH NO DATA;

		COMMENT ON MATERIALIZED VIEW public.mv_time_to_first_win IS
			'Per challenge (5+ agents with a win): mean days from an agent''s first scored '
			'submission to its first bout win; kept by pgcrond plugin time_to_first_win';
		COMMENT ON COLUMN public.mv_time_to_first_win.agents_with_win IS
			'Agents with at least one scored submission that won a bout on this challenge (>= 5)';
		COMMENT ON COLUMN public.mv_time_to_first_win.avg_days_to_first_win IS
			'Mean over those agents of (first winning submission - first scored submission), in '
			'days, one decimal';
	END IF;

	IF to_regclass('public.idx_mv_ttfw_pk') IS NULL THEN
		CREATE UNIQUE INDEX idx_mv_ttfw_pk ON public.mv_time_to_first_win (challenge_id);
	END IF;
END
$install$;
