-- agent_progress: public.mv_agent_progress, each agent's composite score week by week.
--
-- One row per (agent, challenge, week) with at least one scored submission that has a
-- composite score: how many, their mean, best and worst, and the change of the mean since
-- the agent's previous week with submissions on that challenge (wow_composite_delta; NULL
-- for its first week).
--
-- Guards against weeks that move with the clock's zone: weeks are cut in UTC explicitly,
-- date_trunc('week', created_at AT TIME ZONE 'UTC'), so they do not move with the server's
-- or the session's TimeZone. `week` is the Monday 00:00 UTC that starts the week, as a
-- timestamp without time zone (it is a UTC calendar label, not an instant).
--
-- composite_score may be numeric, double precision, real or integer in production schemas:
-- each value is read as numeric (a double as its 15 significant digits, a real as 6), so
-- the means are exact and do not depend on row order, and the columns are numeric whatever
-- the table's type.
--
-- A table the plugin fills, not a materialized view (the mv_ name is kept for readers): an
-- agent's rows depend on that agent's submissions only, so a run triggered by
-- submission_scored notifications replaces only the rows of the agents they name (their
-- "agent_id"), in one transaction (pgc_api.run_replace); any other run replaces every row
-- the same way. Readers never wait and never see an agent half updated. The rows come from
-- public.mv_agent_progress_rows(agent_ids), every row for NULL.
--
-- Installed by `pgcrond install`, in one DO block, creating only what is missing (the
-- function is replaced as it is; no NOTICE). An earlier install's materialized view is
-- replaced by the table, filled at once, so it is complete before the first (partial) run.
DO $install$
DECLARE
	created boolean := false;
BEGIN
	IF (SELECT relkind = 'm' FROM pg_class WHERE oid = to_regclass('public.mv_agent_progress'))
	THEN
		BEGIN
			DROP MATERIALIZED VIEW public.mv_agent_progress;
		EXCEPTION WHEN dependent_objects_still_exist THEN
			RAISE EXCEPTION 'cannot turn materialized view public.mv_agent_progress into a '
			                'table: other objects depend on it'
			      USING HINT = 'drop them (DROP MATERIALIZED VIEW ... CASCADE lists them), run '
			                   'pgcrond install again, then create them again';
		END;
	END IF;

	IF to_regclass('public.mv_agent_progress') IS NULL THEN
		CREATE TABLE public.mv_agent_progress (
			agent_id              uuid NOT NULL,
			challenge_id          uuid NOT NULL,
			week                  timestamp NOT NULL,
			submission_count      bigint,
			avg_composite_score   numeric,
			best_composite_score  numeric,
			worst_composite_score numeric,
			wow_composite_delta   numeric
		);
		created := true;
		COMMENT ON TABLE public.mv_agent_progress IS
			'Per agent, challenge and UTC week: scored submissions with a composite score and '
			'their mean, best, worst; kept by pgcrond plugin agent_progress (a table it fills, '
			'per agent)';
		COMMENT ON COLUMN public.mv_agent_progress.week IS
			'Monday 00:00 UTC starting the week (timestamp without time zone)';
		COMMENT ON COLUMN public.mv_agent_progress.wow_composite_delta IS
			'avg_composite_score minus that of the agent''s previous week with submissions on '
			'this challenge; NULL for the first';
	END IF;

	-- The rows of the given agents (all for NULL); inlined by the planner, so a partial run
	-- reads only those agents' submissions (index submissions_agent_challenge_created_idx).
	-- No SET search_path (it would stop the inlining): every name in the body is qualified,
	-- so nothing resolves through the job session's path (docs/writing-a-plugin.md).
	CREATE OR REPLACE FUNCTION public.mv_agent_progress_rows(agent_ids pg_catalog.uuid[])
	RETURNS SETOF public.mv_agent_progress
	LANGUAGE sql STABLE PARALLEL SAFE AS $rows$
		SELECT s.agent_id,
		       s.challenge_id,
		       pg_catalog.date_trunc('week', s.created_at AT TIME ZONE 'UTC') AS week,
		       pg_catalog.count(*) AS submission_count,
		       pg_catalog.round(pg_catalog.avg(s.composite_score::pg_catalog.numeric), 3)
		           AS avg_composite_score,
		       pg_catalog.round(pg_catalog.max(s.composite_score::pg_catalog.numeric), 3)
		           AS best_composite_score,
		       pg_catalog.round(pg_catalog.min(s.composite_score::pg_catalog.numeric), 3)
		           AS worst_composite_score,
		       pg_catalog.round(pg_catalog.avg(s.composite_score::pg_catalog.numeric)
		                        OPERATOR(pg_catalog.-)
		                        pg_catalog.lag(pg_catalog.avg(s.composite_score::pg_catalog.numeric))
		                            OVER (PARTITION BY s.agent_id, s.challenge_id
		                                  ORDER BY pg_catalog.date_trunc('week', s.created_at
		                                                                 AT TIME ZONE 'UTC')),
		                        3) AS wow_composite_delta
		FROM public.submissions s
		WHERE s.status OPERATOR(pg_catalog.=) 'scored'
		  AND s.composite_score IS NOT NULL
		  AND (agent_ids IS NULL OR s.agent_id OPERATOR(pg_catalog.=) ANY (agent_ids))
		GROUP BY s.agent_id, s.challenge_id,
		         pg_catalog.date_trunc('week', s.created_at AT TIME ZONE 'UTC')
	$rows$;

	-- The view's unique index, under its name; it also serves the partial runs' DELETE.
	IF to_regclass('public.idx_mv_progress_pk') IS NULL THEN
		CREATE UNIQUE INDEX idx_mv_progress_pk
			ON public.mv_agent_progress (agent_id, challenge_id, week);
	END IF;
	IF created THEN
		INSERT INTO public.mv_agent_progress SELECT * FROM public.mv_agent_progress_rows(NULL::pg_catalog.uuid[]);
	END IF;
END
$install$;
