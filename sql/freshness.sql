-- pgcrond freshness (docs/freshness.md): change counters of the tables jobs with
-- `freshness` read. `pgcrond install` runs this in every database such jobs use, then
-- SELECT pgcrond.watch_source('schema.table') for each of their sources; and in the history
-- database, where pgcrond.schedule() watches the sources of jobs made in SQL as their
-- owners. Idempotent.
--
-- A statement-level trigger on each source, its partitions and inheritance children and the
-- tables it inherits from counts their writes in the writer's own transaction: a change is
-- counted exactly when it commits, never before (TRUNCATE and COPY included). Logical
-- replication's apply fires row triggers only: a row trigger enabled for replication only
-- counts what it applies. The daemon reads, per source, a print of those counters and of
-- each relation's file, catalog row and triggers' rows (which catch what fires no DML
-- trigger: a rewrite, a partition dropped or detached, a trigger disabled around a write);
-- a print that differs from the one its last successful run started from is a change not
-- yet reflected (docs/freshness.md). Writers spread over 16 rows (by backend pid) so that
-- concurrent writers of a source seldom wait for one another.
CREATE SCHEMA IF NOT EXISTS pgcrond;
-- The daemon reads the counters as the role its conninfo names (or a SQL job's owner), which
-- need not be the role that ran install: without USAGE on the schema, that role's every check
-- was refused ("permission denied for schema pgcrond") and the job ran every period. Every
-- role may reach the schema, as in the history database (step 3); what each object allows is
-- granted on it below, and the history's tables stay closed.
GRANT USAGE ON SCHEMA pgcrond TO PUBLIC;

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

-- The relations whose writes can change what REL holds: REL, the tables that inherit from it
-- (partitions and inheritance children, at any depth) and every table any of those inherits
-- from (a write through a parent fires the parent's statement trigger, not the child's; a
-- child with two parents is written through either).
CREATE OR REPLACE FUNCTION pgcrond.source_members(rel regclass) RETURNS SETOF oid
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE down(relid) AS (
        SELECT rel::oid
        UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i
               JOIN down ON i.inhparent OPERATOR(pg_catalog.=) down.relid),
    up(relid) AS (
        SELECT relid FROM down
        UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i
               JOIN up ON i.inhrelid OPERATOR(pg_catalog.=) up.relid)
    SELECT relid FROM up
$$;
GRANT EXECUTE ON FUNCTION pgcrond.source_members(regclass) TO PUBLIC;

-- Whether relation R has pgcrond's trigger of kind ROW (false: the statement trigger) as
-- watch_source makes it: its function, events, no condition or column list, and enabled
-- ALWAYS (the statement trigger) or for replication only (the row trigger). The daemon's
-- check asks the same (core/src/sched/sched_fresh.c).
CREATE OR REPLACE FUNCTION pgcrond.source_trigger_ok(r regclass, row_level boolean)
RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger g
                    WHERE g.tgrelid OPERATOR(pg_catalog.=) r
                      AND g.tgname OPERATOR(pg_catalog.=) CASE WHEN row_level
                          THEN 'pgcrond_source_replicated' ELSE 'pgcrond_source_changed' END
                      AND g.tgfoid OPERATOR(pg_catalog.=)
                          'pgcrond.source_changed()'::pg_catalog.regprocedure
                      AND g.tgtype OPERATOR(pg_catalog.=) CASE WHEN row_level THEN 29 ELSE 60 END
                      AND g.tgenabled OPERATOR(pg_catalog.=) CASE WHEN row_level
                          THEN 'R'::pg_catalog."char" ELSE 'A'::pg_catalog."char" END
                      AND g.tgqual IS NULL AND g.tgnargs OPERATOR(pg_catalog.=) 0
                      AND pg_catalog.cardinality(g.tgattr::pg_catalog.int2[])
                          OPERATOR(pg_catalog.=) 0)
$$;
GRANT EXECUTE ON FUNCTION pgcrond.source_trigger_ok(regclass, boolean) TO PUBLIC;

-- Put the triggers on REL and on every relation pgcrond.source_members() names now: the
-- statement trigger (ENABLE ALWAYS) on each, and on each plain table a row trigger enabled
-- for replication only, which logical replication's apply fires (it fires no statement
-- trigger) and no other write does. A trigger of that name made otherwise is replaced.
-- Foreign tables are left out (writes on their server fire nothing here: the daemon makes
-- such a job run every period, saying why). Returns how many triggers were made. The daemon
-- checks at each read that all are there as made, so a partition or child added later
-- without them makes the job fall back, with a message, until install runs again.
-- ENABLE ALWAYS / REPLICA needs the table's owner: a relation the caller does not own fails
-- the call, naming it.
CREATE OR REPLACE FUNCTION pgcrond.watch_source(rel regclass) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r regclass;
    kind pg_catalog."char";
    made int := 0;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) rel
                      AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog."char"[])) THEN
        RAISE EXCEPTION '% is not a table', rel
            USING HINT = 'A view has no change trigger: name the tables it reads in sources, '
                         'or the job that maintains it in after.';
    END IF;
    FOR r, kind IN SELECT c.oid, c.relkind FROM pgcrond.source_members(rel) m
                     JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) m
                    ORDER BY m LOOP
        CONTINUE WHEN kind OPERATOR(pg_catalog.<>) ALL ('{r,p}'::pg_catalog."char"[]);
        BEGIN
            IF NOT pgcrond.source_trigger_ok(r, false) THEN
                EXECUTE pg_catalog.format(
                    'CREATE OR REPLACE TRIGGER pgcrond_source_changed'
                    ' AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s'
                    ' FOR EACH STATEMENT EXECUTE FUNCTION pgcrond.source_changed()', r);
                EXECUTE pg_catalog.format(
                    'ALTER TABLE %s ENABLE ALWAYS TRIGGER pgcrond_source_changed', r);
                made := made OPERATOR(pg_catalog.+) 1;
            END IF;
            IF kind OPERATOR(pg_catalog.=) 'r' AND NOT pgcrond.source_trigger_ok(r, true) THEN
                EXECUTE pg_catalog.format(
                    'CREATE OR REPLACE TRIGGER pgcrond_source_replicated'
                    ' AFTER INSERT OR UPDATE OR DELETE ON %s'
                    ' FOR EACH ROW EXECUTE FUNCTION pgcrond.source_changed()', r);
                EXECUTE pg_catalog.format(
                    'ALTER TABLE %s ENABLE REPLICA TRIGGER pgcrond_source_replicated', r);
                made := made OPERATOR(pg_catalog.+) 1;
            END IF;
        EXCEPTION WHEN insufficient_privilege THEN
            IF r OPERATOR(pg_catalog.=) rel THEN
                RAISE; -- the source itself: the server's own message says it
            END IF;
            RAISE EXCEPTION 'cannot put pgcrond''s change triggers on %, which source % reads: %',
                r, rel, SQLERRM
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Watching a source puts triggers on its partitions, inheritance '
                             'children and parents too: run it as a role that owns them all.';
        END;
    END LOOP;
    RETURN made;
END
$$;
-- runs as the caller: it makes a trigger only where the caller may make one
GRANT EXECUTE ON FUNCTION pgcrond.watch_source(regclass) TO PUBLIC;
