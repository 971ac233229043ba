-- time_to_first_win: public.mv_time_to_first_win, how long agents take to win on a challenge.
--
-- One row per challenge: among the agents that have won a bout on it, how many
-- (agents_with_win) and the mean time in days, to one decimal, from an agent's first scored
-- submission to the challenge to its first scored submission that won a bout
-- (avg_days_to_first_win). A win is a bout_results row whose winner_agent_id is the
-- submission's agent; draws (winner NULL) are not wins.
--
-- Sample-count guard: a challenge needs at least 5 agents with a win to get a row, so no mean
-- comes from one or two agents.
--
-- A table the plugin fills, not a materialized view (the mv_ name is kept for readers): a
-- challenge's row depends on that challenge's submissions (and their bouts' results) only,
-- so a run triggered by submission_scored notifications replaces only the rows of the
-- challenges they name, in one transaction (pgc_api.run_replace); any other run replaces
-- every row. A bout result decided without a submission being announced reaches the table
-- on the next scheduled run. The rows come from public.mv_time_to_first_win_rows(
-- challenge_ids), every row for NULL.
--
-- Installed by `pgcrond install`, in one DO block, creating only what is missing (the
-- function is replaced as it is; no NOTICE). An earlier install's materialized view is
-- replaced by the table, filled at once, so it is complete before the first (partial) run.
DO $install$
DECLARE
	created boolean := false;
BEGIN
	IF (SELECT relkind = 'm' FROM pg_class WHERE oid = to_regclass('public.mv_time_to_first_win'))
	THEN
		BEGIN
			DROP MATERIALIZED VIEW public.mv_time_to_first_win;
		EXCEPTION WHEN dependent_objects_still_exist THEN
			RAISE EXCEPTION 'cannot turn materialized view public.mv_time_to_first_win into a '
			                'table: other objects depend on it'
			      USING HINT = 'drop them (DROP MATERIALIZED VIEW ... CASCADE lists them), run '
			                   'pgcrond install again, then create them again';
		END;
	END IF;

	IF to_regclass('public.mv_time_to_first_win') IS NULL THEN
		CREATE TABLE public.mv_time_to_first_win (
			challenge_id          uuid NOT NULL,
			agents_with_win       bigint,
			avg_days_to_first_win numeric
		);
		created := true;
		COMMENT ON TABLE public.mv_time_to_first_win IS
			'Per challenge (5+ agents with a win): mean days from an agent''s first scored '
			'submission to its first bout win; kept by pgcrond plugin time_to_first_win (a table '
			'it fills, per challenge)';
		COMMENT ON COLUMN public.mv_time_to_first_win.agents_with_win IS
			'Agents with at least one scored submission that won a bout on this challenge (>= 5)';
		COMMENT ON COLUMN public.mv_time_to_first_win.avg_days_to_first_win IS
			'Mean over those agents of (first winning submission - first scored submission), in '
			'days, one decimal';
	END IF;

	-- The rows of the given challenges (all for NULL); inlined by the planner. No SET
	-- search_path (it would stop the inlining): every name in the body is qualified, so
	-- nothing resolves through the job session's path (docs/writing-a-plugin.md).
	CREATE OR REPLACE FUNCTION public.mv_time_to_first_win_rows(challenge_ids pg_catalog.uuid[])
	RETURNS SETOF public.mv_time_to_first_win
	LANGUAGE sql STABLE PARALLEL SAFE AS $rows$
		WITH first_submissions AS (
			SELECT agent_id, challenge_id, pg_catalog.min(created_at) AS first_at
			FROM public.submissions
			WHERE status OPERATOR(pg_catalog.=) 'scored'
			  AND (challenge_ids IS NULL
			       OR challenge_id OPERATOR(pg_catalog.=) ANY (challenge_ids))
			GROUP BY agent_id, challenge_id
		),
		first_wins AS (
			SELECT s.agent_id, s.challenge_id, pg_catalog.min(s.created_at) AS first_win_at
			FROM public.submissions s
			JOIN public.bout_results br
			  ON br.bout_id OPERATOR(pg_catalog.=) s.bout_id
			 AND br.winner_agent_id OPERATOR(pg_catalog.=) s.agent_id
			WHERE s.status OPERATOR(pg_catalog.=) 'scored'
			  AND (challenge_ids IS NULL
			       OR s.challenge_id OPERATOR(pg_catalog.=) ANY (challenge_ids))
			GROUP BY s.agent_id, s.challenge_id
		)
		SELECT fs.challenge_id,
		       pg_catalog.count(*) AS agents_with_win,
		       pg_catalog.round(pg_catalog.avg(
		                            extract(epoch FROM (fw.first_win_at
		                                                OPERATOR(pg_catalog.-) fs.first_at))
		                            OPERATOR(pg_catalog./) 86400),
		                        1) AS avg_days_to_first_win
		FROM first_submissions fs
		JOIN first_wins fw
		  ON fw.agent_id OPERATOR(pg_catalog.=) fs.agent_id
		 AND fw.challenge_id OPERATOR(pg_catalog.=) fs.challenge_id
		GROUP BY fs.challenge_id
		HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>=) 5
	$rows$;

	IF to_regclass('public.idx_mv_ttfw_pk') IS NULL THEN
		CREATE UNIQUE INDEX idx_mv_ttfw_pk ON public.mv_time_to_first_win (challenge_id);
	END IF;
	IF created THEN
		INSERT INTO public.mv_time_to_first_win
			SELECT * FROM public.mv_time_to_first_win_rows(NULL::pg_catalog.uuid[]);
	END IF;
END
$install$;
