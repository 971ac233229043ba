-- pgcrond schema, version 6: the run history partitioned by day.
--
-- At 10,000 runs a second the history grows by hundreds of millions of rows a day; deleting
-- old rows in batches cannot keep up and bloats the table. pgcrond.job_run_details becomes a
-- table partitioned by start_time, one partition per UTC day (job_run_details_pYYYYMMDD).
-- The daemon creates partitions days ahead (pgcrond.history_partitions_ensure) and applies
-- the retention by detaching whole days CONCURRENTLY and dropping them, which takes no lock
-- that blocks a writer and leaves nothing to vacuum.
--
-- The migration keeps every row, the runid sequence, the grants and every view over the
-- table (pgcrond.view_status, cron.job_run_details, and any other): their definitions are
-- read first and re-created over the new table. Columns added by other steps come along
-- (CREATE TABLE ... LIKE). A row without start_time (never written by pgcrond) gets its
-- end_time, else the time of the migration: the partition key cannot be NULL.
--
-- Keys: a unique key of a partitioned table must hold the partition key, so the primary key
-- is (runid, start_time) and the writer's key (instance, run_key, start_time). A replayed
-- record carries the start time it was first sent with, so a replay still conflicts with
-- the row it wrote and adds nothing.

-- Create the partition of one UTC day unless it exists. CREATE TABLE ... PARTITION OF would
-- lock the parent ACCESS EXCLUSIVE (blocking every writer); creating the table alone and
-- attaching it takes only SHARE UPDATE EXCLUSIVE on the parent.
CREATE OR REPLACE FUNCTION pgcrond.history_partition_create(day date)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	part constant text := 'job_run_details_p' || to_char(day, 'YYYYMMDD');
	lo constant timestamptz := day::timestamp AT TIME ZONE 'UTC';
	hi constant timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
	IF to_regclass(format('pgcrond.%I', part)) IS NOT NULL THEN
		RETURN false;
	END IF;
	EXECUTE format('CREATE TABLE pgcrond.%I (LIKE pgcrond.job_run_details'
	               ' INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)', part);
	EXECUTE format('ALTER TABLE pgcrond.job_run_details ATTACH PARTITION pgcrond.%I'
	               ' FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
	RETURN true;
END
$fn$;
COMMENT ON FUNCTION pgcrond.history_partition_create(date) IS
	'pgcrond: create the history partition of one UTC day (false if it exists)';

-- The partitions with their bounds, oldest first. detach_pending: a DETACH CONCURRENTLY was
-- interrupted; the next retention finishes it.
CREATE OR REPLACE FUNCTION pgcrond.history_partition_list()
RETURNS TABLE (schema_name name, partition_name name, from_time timestamptz,
               to_time timestamptz, detach_pending boolean, est_rows bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT n.nspname, c.relname,
	       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']*)''\)'))[1]::timestamptz,
	       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']*)''\)'))[1]::timestamptz,
	       i.inhdetachpending,
	       greatest(c.reltuples, 0)::bigint
	  FROM pg_inherits i
	  JOIN pg_class c ON c.oid = i.inhrelid
	  JOIN pg_namespace n ON n.oid = c.relnamespace
	 WHERE i.inhparent = 'pgcrond.job_run_details'::regclass
	 ORDER BY 3
$fn$;
COMMENT ON FUNCTION pgcrond.history_partition_list() IS
	'pgcrond: the history partitions, their bounds and estimated rows';

-- Partitions from yesterday (or from the newest one, if older: a daemon that was away for
-- days fills the gap, so the records it kept meanwhile find their day) to AHEAD days ahead.
-- Cheap when they exist: two catalog lookups, no lock.
CREATE OR REPLACE FUNCTION pgcrond.history_partitions_ensure(ahead integer DEFAULT 3)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	today constant date := (now() AT TIME ZONE 'UTC')::date;
	from_day date;
	made integer := 0;
BEGIN
	IF to_regclass(format('pgcrond.%I', 'job_run_details_p' || to_char(today - 1, 'YYYYMMDD'))) IS NOT NULL
	   AND to_regclass(format('pgcrond.%I', 'job_run_details_p' || to_char(today + ahead, 'YYYYMMDD'))) IS NOT NULL THEN
		RETURN 0;
	END IF;
	-- two daemons (or a daemon and an installer) must not both create the same day
	PERFORM pg_advisory_xact_lock(31638874210922085);
	SELECT (max(to_time) AT TIME ZONE 'UTC')::date INTO from_day
	  FROM pgcrond.history_partition_list() WHERE NOT detach_pending;
	from_day := least(coalesce(from_day, today - 1), today - 1);
	FOR d IN 0 .. (today + ahead) - from_day LOOP
		IF pgcrond.history_partition_create(from_day + d) THEN
			made := made + 1;
		END IF;
	END LOOP;
	RETURN made;
END
$fn$;
COMMENT ON FUNCTION pgcrond.history_partitions_ensure(integer) IS
	'pgcrond: create the history partitions up to AHEAD days ahead; returns how many were made';

-- The migration from the unpartitioned table of versions 1 to 5.
DO $mig$
DECLARE
	old_path constant text := current_setting('search_path');
	seq text;
	view_names text[] := '{}';
	view_defs text[] := '{}';
	index_defs text[] := '{}';
	r record;
BEGIN
	IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('pgcrond.job_run_details')) = 'p' THEN
		RETURN;
	END IF;
	-- definitions read with only pg_catalog on the path come out schema-qualified
	PERFORM set_config('search_path', 'pg_catalog, pg_temp', true);

	FOR r IN SELECT DISTINCT v.oid::regclass::text AS name, pg_get_viewdef(v.oid) AS def, v.oid
	           FROM pg_depend d
	           JOIN pg_rewrite w ON w.oid = d.objid
	           JOIN pg_class v ON v.oid = w.ev_class
	          WHERE d.classid = 'pg_rewrite'::regclass
	            AND d.refclassid = 'pg_class'::regclass
	            AND d.refobjid = 'pgcrond.job_run_details'::regclass
	            AND v.relkind = 'v' AND v.oid <> d.refobjid
	          ORDER BY v.oid LOOP
		view_names := view_names || r.name;
		view_defs := view_defs || r.def;
	END LOOP;
	-- indexes other steps added (ours are made again below)
	FOR r IN SELECT c.relname, pg_get_indexdef(i.indexrelid) AS def
	           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	          WHERE i.indrelid = 'pgcrond.job_run_details'::regclass
	            AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid)
	          ORDER BY c.oid LOOP
		IF r.relname NOT IN ('job_run_details_job_start_idx', 'job_run_details_failures_idx',
		                     'job_run_details_success_idx', 'job_run_details_start_idx') THEN
			index_defs := index_defs || r.def;
		END IF;
		EXECUTE format('DROP INDEX pgcrond.%I', r.relname);
	END LOOP;
	seq := pg_get_serial_sequence('pgcrond.job_run_details', 'runid');
	FOR r IN SELECT conname FROM pg_constraint
	          WHERE conrelid = 'pgcrond.job_run_details'::regclass AND contype IN ('p', 'u') LOOP
		EXECUTE format('ALTER TABLE pgcrond.job_run_details DROP CONSTRAINT %I', r.conname);
	END LOOP;

	ALTER TABLE pgcrond.job_run_details RENAME TO job_run_details_v1;
	UPDATE pgcrond.job_run_details_v1 SET start_time = coalesce(end_time, now())
	 WHERE start_time IS NULL;
	CREATE TABLE pgcrond.job_run_details (
		LIKE pgcrond.job_run_details_v1 INCLUDING DEFAULTS INCLUDING CONSTRAINTS
		INCLUDING COMMENTS INCLUDING GENERATED INCLUDING IDENTITY INCLUDING STORAGE
	) PARTITION BY RANGE (start_time);
	ALTER TABLE pgcrond.job_run_details ALTER COLUMN start_time SET NOT NULL;
	COMMENT ON TABLE pgcrond.job_run_details IS
		'pgcrond run history (pg_cron''s cron.job_run_details columns first), one partition per UTC day';
	IF seq IS NOT NULL THEN
		EXECUTE format('ALTER SEQUENCE %s OWNED BY pgcrond.job_run_details.runid', seq);
	END IF;

	FOR r IN SELECT DISTINCT (start_time AT TIME ZONE 'UTC')::date AS day
	           FROM pgcrond.job_run_details_v1 LOOP
		PERFORM pgcrond.history_partition_create(r.day);
	END LOOP;
	PERFORM pgcrond.history_partitions_ensure();
	INSERT INTO pgcrond.job_run_details SELECT * FROM pgcrond.job_run_details_v1;

	ALTER TABLE pgcrond.job_run_details ADD PRIMARY KEY (runid, start_time);
	ALTER TABLE pgcrond.job_run_details ADD CONSTRAINT job_run_details_client_key
		UNIQUE (instance, run_key, start_time);
	CREATE INDEX job_run_details_job_start_idx
		ON pgcrond.job_run_details (job_name, start_time DESC);
	CREATE INDEX job_run_details_failures_idx
		ON pgcrond.job_run_details (start_time DESC) WHERE status <> 'succeeded';
	CREATE INDEX job_run_details_success_idx
		ON pgcrond.job_run_details (job_name, start_time DESC) WHERE status = 'succeeded';
	CREATE INDEX job_run_details_start_idx ON pgcrond.job_run_details (start_time);
	FOR i IN 1 .. coalesce(array_length(index_defs, 1), 0) LOOP
		EXECUTE index_defs[i];
	END LOOP;

	FOR r IN SELECT a.privilege_type, a.grantee
	           FROM pg_class c, aclexplode(c.relacl) a
	          WHERE c.oid = 'pgcrond.job_run_details_v1'::regclass AND a.grantee <> c.relowner LOOP
		EXECUTE format('GRANT %s ON pgcrond.job_run_details TO %s', r.privilege_type,
		               CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE r.grantee::regrole::text END);
	END LOOP;
	FOR i IN 1 .. coalesce(array_length(view_names, 1), 0) LOOP
		EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', view_names[i], view_defs[i]);
	END LOOP;
	DROP TABLE pgcrond.job_run_details_v1;
	PERFORM set_config('search_path', old_path, true);
END
$mig$;

INSERT INTO pgcrond.schema_version (version) VALUES (6) ON CONFLICT DO NOTHING;
