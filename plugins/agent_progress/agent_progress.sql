-- agent_progress: public.mv_agent_progress, each agent's composite score week by week.
--
-- One row per (agent, challenge, week) with at least one scored submission that has a
-- composite score: how many, their mean, best and worst, and the change of the mean since
-- the agent's previous week with submissions on that challenge (wow_composite_delta; NULL
-- for its first week).
--
-- Guards against the failures of seed 002: weeks are cut in UTC explicitly,
-- date_trunc('week', created_at AT TIME ZONE 'UTC'), so they do not move with the server's
-- or the session's TimeZone. `week` is the Monday 00:00 UTC that starts the week, as a
-- timestamp without time zone (it is a UTC calendar label, not an instant).
--
-- composite_score may be numeric, double precision, real or integer in production schemas:
-- each value is read as numeric (a double as its 15 significant digits, a real as 6), so
-- the means are exact and do not depend on row order, and the view's columns are numeric
-- whatever the table's type.
--
-- Installed by `pgcrond install`: one DO block, creating only what is missing (no NOTICE on
-- a second run, no change to an existing view). Refreshed CONCURRENTLY using the unique
-- index on (agent_id, challenge_id, week).
DO $install$
BEGIN
	IF to_regclass('public.mv_agent_progress') IS NULL THEN
		CREATE MATERIALIZED VIEW public.mv_agent_progress AS
		SELECT s.agent_id,
		       s.challenge_id,
		       date_trunc('week', s.created_at AT TIME ZONE 'UTC') AS week,
		       count(*) AS submission_count,
		       round(avg(s.composite_score::numeric), 3) AS avg_composite_score,
		       round(max(s.composite_score::numeric), 3) AS best_composite_score,
		       round(min(s.composite_score::numeric), 3) AS worst_composite_score,
		       round(avg(s.composite_score::numeric)
		             - lag(avg(s.composite_score::numeric)) OVER (
		                   PARTITION BY s.agent_id, s.challenge_id
		                   ORDER BY date_trunc('week', s.created_at AT TIME ZONE 'UTC')), 3)
		           AS wow_composite_delta
		FROM public.submissions s
		WHERE s.status = 'scored'
		  AND s.composite_score IS NOT NULL
		GROUP BY s.agent_id, s.challenge_id, date_trunc('week', s.created_at AT TIME ZONE 'UTC')
		WITH NO DATA;

		COMMENT ON MATERIALIZED VIEW public.mv_agent_progress IS
			'Per agent, challenge and UTC week: scored submissions with a composite score and '
			'their mean, best, worst; kept by pgcrond plugin agent_progress';
		COMMENT ON COLUMN public.mv_agent_progress.week IS
			'Monday 00:00 UTC starting the week (timestamp without time zone)';
		COMMENT ON COLUMN public.mv_agent_progress.wow_composite_delta IS
			'avg_composite_score minus that of the agent''s previous week with submissions on '
			'this challenge; NULL for the first';
	END IF;

	IF to_regclass('public.idx_mv_progress_pk') IS NULL THEN
		CREATE UNIQUE INDEX idx_mv_progress_pk
			ON public.mv_agent_progress (agent_id, challenge_id, week);
	END IF;
END
$install$;
