-- pgcrond's refresh guard, installed by `pgcrond install` into every database a job runs
-- in (CREATE OR REPLACE: re-running it changes nothing).
--
-- Before a plugin's REFRESH MATERIALIZED VIEW CONCURRENTLY, the core runs
--   SELECT pgcrond.prepare_concurrent_refresh($1::regclass)
-- which
--   * fails with a clear message if the view has no usable unique index (unique, valid,
--     ready, not partial, on plain columns): CONCURRENTLY needs one, and pgcrond never
--     falls back to a blocking refresh behind the operator's back;
--   * refreshes a view that was never populated once, plainly (CONCURRENTLY refuses an
--     unpopulated view, and a plain refresh of an empty view blocks no reader that could
--     have seen data), and returns 'populated', so the concurrent refresh after it finds a
--     populated view.
-- It returns 'ready' when the concurrent refresh can go ahead.

-- (a DO block rather than IF NOT EXISTS, so a second install raises not even a NOTICE)
DO $$ BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'pgcrond') THEN
		CREATE SCHEMA pgcrond;
	END IF;
END $$;

CREATE OR REPLACE FUNCTION pgcrond.prepare_concurrent_refresh(view regclass)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	rel record;
BEGIN
	SELECT c.relkind, c.relispopulated INTO rel FROM pg_class c WHERE c.oid = view;
	IF rel.relkind IS DISTINCT FROM 'm' THEN
		RAISE EXCEPTION '% is not a materialized view', view
			USING ERRCODE = 'wrong_object_type',
			      HINT = 'check the relation the plugin maintains, then run pgcrond install';
	END IF;
	IF NOT EXISTS (
		SELECT 1 FROM pg_index i
		WHERE i.indrelid = view
		  AND i.indisunique AND i.indisvalid AND i.indisready AND i.indislive
		  AND i.indpred IS NULL           -- not a partial index
		  AND i.indexprs IS NULL          -- only plain columns
	) THEN
		RAISE EXCEPTION 'materialized view % has no usable unique index, so it cannot be refreshed CONCURRENTLY', view
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'create a unique index on plain columns without a WHERE clause (pgcrond install creates the plugin''s own); pgcrond never falls back to a blocking refresh';
	END IF;
	IF NOT rel.relispopulated THEN
		EXECUTE format('REFRESH MATERIALIZED VIEW %s', view);
		RETURN 'populated';
	END IF;
	RETURN 'ready';
END
$fn$;

COMMENT ON FUNCTION pgcrond.prepare_concurrent_refresh(regclass) IS
	'pgcrond: check a materialized view can be refreshed CONCURRENTLY; populate it once if it never was';
