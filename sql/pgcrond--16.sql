-- pgcrond schema, step 16: cluster_dead_after.
--
-- An instance was found dead when its heartbeat was 20 s old, a fixed time. pgcrond.conf's
-- cluster_dead_after now sets it (at least 5 s; the instance beats every quarter of it, at
-- most every 5 s), and each instance writes its own value into its row: a survivor judges
-- an instance by the value that instance beats for, so instances with different settings
-- never find a live one dead. A row without a value (written by an older pgcrond) is judged
-- by the old 20 s. Applied by `pgcrond install` (see pgcrond--1.sql).

ALTER TABLE pgcrond.instance ADD COLUMN IF NOT EXISTS dead_after_ms integer;
COMMENT ON COLUMN pgcrond.instance.dead_after_ms IS
	'cluster_dead_after of the instance (ms): found dead when its heartbeat is older; NULL: 20 s';

INSERT INTO pgcrond.schema_version (version) VALUES (16) ON CONFLICT DO NOTHING;
