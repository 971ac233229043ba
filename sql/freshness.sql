-- pgcrond freshness (docs/freshness.md): change counters of the tables jobs with
-- `freshness` read. `pgcrond install` runs this in every database such jobs use, then
-- SELECT pgcrond.watch_source('schema.table') for each of their sources; and in the history
-- database, where pgcrond.schedule() watches the sources of jobs made in SQL as their
-- owners. Idempotent.
--
-- A statement-level trigger on each source counts its writes in the writer's own
-- transaction: a change is counted exactly when it commits, never before (TRUNCATE and COPY
-- included). What it does not see (logical replication's apply fires row triggers only,
-- writes through a partition's parent, inheritance children, rewrites) is listed in
-- docs/freshness.md, "Limits of this version".
-- The daemon reads the sums; a sum that differs from the one its last successful run
-- started from is a change not yet reflected. Writers spread over 16 rows (by backend pid)
-- so that concurrent writers of a source seldom wait for one another.
CREATE SCHEMA IF NOT EXISTS pgcrond;

CREATE TABLE IF NOT EXISTS pgcrond.source_change (
    relid      oid         NOT NULL,
    slot       int         NOT NULL,
    n          bigint      NOT NULL,
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (relid, slot)
);
COMMENT ON TABLE pgcrond.source_change IS
    'pgcrond freshness: statements that wrote each watched table (sum n over slots); '
    'written only by pgcrond.source_changed()';
REVOKE ALL ON pgcrond.source_change FROM PUBLIC;
-- Read by the daemon as each SQL job's owner (its connections log in as the owner). Counts
-- of writes per table are no secret pg_stat_user_tables does not already tell every role.
GRANT SELECT ON pgcrond.source_change TO PUBLIC;

-- Runs as its owner (pgcrond's role), so writers need no right on the counters; a trigger
-- function cannot be called directly, so the only way to bump a counter is to write a
-- watched table. Any role may put it on a table it may put triggers on (the owner of a
-- SQL job's sources, through pgcrond.schedule): that counts that table's own writes, and
-- a count can only go up, so at worst it causes a refresh, never hides a change.
CREATE OR REPLACE FUNCTION pgcrond.source_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO pgcrond.source_change AS c (relid, slot, n, changed_at)
    VALUES (TG_RELID, pg_catalog.pg_backend_pid() OPERATOR(pg_catalog.%) 16, 1,
            pg_catalog.clock_timestamp())
    ON CONFLICT (relid, slot) DO UPDATE
        SET n = c.n OPERATOR(pg_catalog.+) 1, changed_at = EXCLUDED.changed_at;
    RETURN NULL;
END
$$;
GRANT EXECUTE ON FUNCTION pgcrond.source_changed() TO PUBLIC;

-- Put the trigger on REL and on every partition it has now (not inheritance children); returns
-- how many triggers were made. The daemon checks at each read that all are there and
-- enabled, so a partition added later without one makes the job fall back, with a
-- message, until install runs again.
CREATE OR REPLACE FUNCTION pgcrond.watch_source(rel regclass) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r regclass;
    made int := 0;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) rel
                      AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])) THEN
        RAISE EXCEPTION '% is not a table', rel
            USING HINT = 'A view has no change trigger: name the tables it reads in sources, '
                         'or the job that maintains it in after.';
    END IF;
    FOR r IN SELECT rel UNION SELECT p.relid FROM pg_catalog.pg_partition_tree(rel) p LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger g
                        WHERE g.tgrelid OPERATOR(pg_catalog.=) r
                          AND g.tgname OPERATOR(pg_catalog.=) 'pgcrond_source_changed'
                          AND g.tgenabled OPERATOR(pg_catalog.=) 'A') THEN
            EXECUTE pg_catalog.format(
                'CREATE OR REPLACE TRIGGER pgcrond_source_changed'
                ' AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s'
                ' FOR EACH STATEMENT EXECUTE FUNCTION pgcrond.source_changed()', r);
            EXECUTE pg_catalog.format(
                'ALTER TABLE %s ENABLE ALWAYS TRIGGER pgcrond_source_changed', r);
            made := made OPERATOR(pg_catalog.+) 1;
        END IF;
    END LOOP;
    RETURN made;
END
$$;
-- runs as the caller: it makes a trigger only where the caller may make one
GRANT EXECUTE ON FUNCTION pgcrond.watch_source(regclass) TO PUBLIC;
