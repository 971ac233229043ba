-- lane_distribution: public.mv_lane_score_distribution, lane score percentiles per challenge.
--
-- One row per (challenge, lane) over the scored submissions: how many lane scores there are,
-- their mean, spread and percentiles. Percentiles are computed per challenge (mixing
-- challenges mixes incomparable distributions). Read by mv_weakness_patterns.
--
-- Guards against malformed rows and small samples:
--   * final_lane_scores may be SQL NULL, a JSON null, an array, or hold non-numeric lane
--     values ("n/a", null): only JSON objects are expanded and only numeric values counted,
--     so a bad row never fails the refresh;
--   * a (challenge, lane) needs at least 5 scores to get a row: no percentiles from one
--     submission (the original query left sample_count >= 5 to every reader; here no reader
--     can forget it).
-- Scores are read as numeric, so means and spreads are exact and do not depend on row order.
--
-- A table the plugin fills, not a materialized view (despite the mv_ name readers know), so
-- that a run triggered by submission_scored notifications recomputes only the challenges
-- they name: the plugin deletes those challenges' rows and inserts them recomputed, in one
-- transaction (pgc_api.run_replace), and a scheduled run replaces every row the same way.
-- Readers never wait and never see a challenge half updated. The rows come from
-- public.mv_lane_score_distribution_rows(challenge_ids): those challenges' rows, or every
-- row for NULL. The unique index on (challenge_id, lane_key) is kept from the view.
--
-- Installed by `pgcrond install`, in one DO block (one statement, one transaction), creating
-- only what is missing (a second run changes nothing but the function, replaced as it is,
-- and raises no NOTICE). Migration: an earlier install's materialized view is replaced by
-- the table holding the same rows (plugin weakness_patterns' materialized view, which reads
-- it, is dropped first; that plugin's install, run next, recreates it as a table). A new
-- table is filled at once, so it is complete before the first (partial) run.
DO $install$
DECLARE
	was_view boolean := (SELECT relkind = 'm' FROM pg_class
	                     WHERE oid = to_regclass('public.mv_lane_score_distribution'));
	created boolean := false;
BEGIN
	IF was_view THEN
		IF (SELECT relkind = 'm' FROM pg_class
		    WHERE oid = to_regclass('public.mv_weakness_patterns')) THEN
			DROP MATERIALIZED VIEW public.mv_weakness_patterns;
		END IF;
		BEGIN
			DROP MATERIALIZED VIEW public.mv_lane_score_distribution;
		EXCEPTION WHEN dependent_objects_still_exist THEN
			RAISE EXCEPTION 'cannot turn materialized view public.mv_lane_score_distribution '
			                'into a table: other objects depend on it'
			      USING HINT = 'drop them (DROP MATERIALIZED VIEW ... CASCADE lists them), run '
			                   'pgcrond install again, then create them again';
		END;
	END IF;

	IF to_regclass('public.mv_lane_score_distribution') IS NULL THEN
		CREATE TABLE public.mv_lane_score_distribution (
			challenge_id       uuid NOT NULL,
			lane_key           text NOT NULL,
			sample_count       bigint,
			mean_score         numeric,
			stddev_score       numeric,
			min_score          numeric,
			max_score          numeric,
			p10                numeric,
			p25                numeric,
			p50                numeric,
			p75                numeric,
			p90                numeric,
			last_submission_at timestamptz
		);
		created := true;
		COMMENT ON TABLE public.mv_lane_score_distribution IS
			'Lane score distribution per challenge and lane over scored submissions (at least 5 '
			'scores); kept by pgcrond plugin lane_distribution (a table it fills, per challenge)';
		COMMENT ON COLUMN public.mv_lane_score_distribution.lane_key IS
			'A key of submissions.final_lane_scores';
		COMMENT ON COLUMN public.mv_lane_score_distribution.sample_count IS
			'Numeric scores of this lane in scored submissions of this challenge (>= 5)';
		COMMENT ON COLUMN public.mv_lane_score_distribution.stddev_score IS
			'Sample standard deviation';
		COMMENT ON COLUMN public.mv_lane_score_distribution.p10 IS
			'Percentiles p10..p90: continuous (interpolated), within this challenge only';
		COMMENT ON COLUMN public.mv_lane_score_distribution.last_submission_at IS
			'created_at of the newest submission counted';
	END IF;

	-- The rows of the given challenges (all of them for NULL). A set-returning SQL function
	-- the planner inlines, so a partial run reads only those challenges' submissions
	-- (index submissions_challenge_created_idx). Inlining rules out a SET search_path clause,
	-- so the body resolves its names through the path of the job's session, which a
	-- database's owner may set to put public first and where other roles may plant objects:
	-- every function, operator, type and relation in it is qualified (see
	-- docs/writing-a-plugin.md, "Names in a row function").
	CREATE OR REPLACE FUNCTION public.mv_lane_score_distribution_rows(
		challenge_ids pg_catalog.uuid[])
	RETURNS SETOF public.mv_lane_score_distribution
	LANGUAGE sql STABLE PARALLEL SAFE AS $rows$
		SELECT s.challenge_id,
		       ls.lane_key,
		       pg_catalog.count(*) AS sample_count,
		       pg_catalog.round(pg_catalog.avg(ls.lane_score), 3) AS mean_score,
		       pg_catalog.round(pg_catalog.stddev_samp(ls.lane_score), 3) AS stddev_score,
		       pg_catalog.round(pg_catalog.min(ls.lane_score), 3) AS min_score,
		       pg_catalog.round(pg_catalog.max(ls.lane_score), 3) AS max_score,
		       pg_catalog.round((pg_catalog.percentile_cont(0.10) WITHIN GROUP (
		                            ORDER BY ls.lane_score::pg_catalog.float8))::pg_catalog.numeric,
		                        3) AS p10,
		       pg_catalog.round((pg_catalog.percentile_cont(0.25) WITHIN GROUP (
		                            ORDER BY ls.lane_score::pg_catalog.float8))::pg_catalog.numeric,
		                        3) AS p25,
		       pg_catalog.round((pg_catalog.percentile_cont(0.50) WITHIN GROUP (
		                            ORDER BY ls.lane_score::pg_catalog.float8))::pg_catalog.numeric,
		                        3) AS p50,
		       pg_catalog.round((pg_catalog.percentile_cont(0.75) WITHIN GROUP (
		                            ORDER BY ls.lane_score::pg_catalog.float8))::pg_catalog.numeric,
		                        3) AS p75,
		       pg_catalog.round((pg_catalog.percentile_cont(0.90) WITHIN GROUP (
		                            ORDER BY ls.lane_score::pg_catalog.float8))::pg_catalog.numeric,
		                        3) AS p90,
		       pg_catalog.max(s.created_at) AS last_submission_at
		FROM public.submissions s
		CROSS JOIN LATERAL (
			SELECT e.key AS lane_key, e.value::pg_catalog.numeric AS lane_score
			FROM pg_catalog.jsonb_each(s.final_lane_scores) e
			WHERE pg_catalog.jsonb_typeof(e.value) OPERATOR(pg_catalog.=) 'number'
		) ls
		WHERE s.status OPERATOR(pg_catalog.=) 'scored'
		  AND pg_catalog.jsonb_typeof(s.final_lane_scores) OPERATOR(pg_catalog.=) 'object'
		  AND (challenge_ids IS NULL
		       OR s.challenge_id OPERATOR(pg_catalog.=) ANY (challenge_ids))
		GROUP BY s.challenge_id, ls.lane_key
		HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>=) 5
	$rows$;

	-- The view's unique index, under its name: readers' plans and the key of a partition.
	IF to_regclass('public.idx_mv_lane_dist_pk') IS NULL THEN
		CREATE UNIQUE INDEX idx_mv_lane_dist_pk
			ON public.mv_lane_score_distribution (challenge_id, lane_key);
	END IF;
	IF created THEN
		INSERT INTO public.mv_lane_score_distribution
			SELECT * FROM public.mv_lane_score_distribution_rows(NULL::pg_catalog.uuid[]);
	END IF;
END
$install$;
