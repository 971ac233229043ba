-- pgcrond schema, step 23: an instance alone claims nothing.
--
-- An instance that finds no other instance that is not stopped runs its fires without a claim
-- each ("lone"): no statement per fire, only its heartbeat. Its row says so (lone_boot is its
-- boot id), and while a live instance's row says so no other instance gets a claim: a claim
-- statement asks pgcrond.claim_gate() first, which fails with SQLSTATE PGCL1, naming the lone
-- instance, until that one has answered the newcomer's hello by claiming again (it claims the
-- fires it ran alone and clears lone_boot, in one transaction). Going lone and claiming are
-- ordered by one row, pgcrond.cluster_gate: a claim holds it FOR SHARE while it looks for a
-- lone instance, going lone holds it FOR UPDATE while it looks for any other instance, each
-- look a statement of its own (a fresh snapshot under READ COMMITTED), so a claim either
-- sees the lone row or is seen by the instance going lone. Only pgcrond's roles can lock that
-- row (a row lock needs UPDATE on the table), as only they can write pgcrond.instance; no
-- advisory lock, which any role could take. Applied by `pgcrond install` (see
-- pgcrond--1.sql). docs/several-instances.md, "An instance alone".

ALTER TABLE pgcrond.instance ADD COLUMN IF NOT EXISTS lone_boot text;
COMMENT ON COLUMN pgcrond.instance.lone_boot IS
	'the boot id of the process that runs its fires unclaimed (alone): while it is this row''s boot_id and the instance is not stopped, no other instance gets a claim';

CREATE TABLE IF NOT EXISTS pgcrond.cluster_gate (
	one boolean PRIMARY KEY DEFAULT true CHECK (one)
);
COMMENT ON TABLE pgcrond.cluster_gate IS
	'one row: claims hold it FOR SHARE, an instance going lone FOR UPDATE; only pgcrond writes it';
INSERT INTO pgcrond.cluster_gate (one) VALUES (true) ON CONFLICT DO NOTHING;
REVOKE ALL ON pgcrond.cluster_gate FROM PUBLIC;

-- In a claim statement of instance ME, before anything is claimed: true, or an error (SQLSTATE
-- PGCL1) while another instance runs its fires unclaimed. VOLATILE: its look is a statement of
-- its own, with a snapshot taken once the gate's row is held, so an instance that went lone
-- while this claim waited for the row is seen. SECURITY INVOKER: a role that may not lock the
-- gate's row gets an error, never a verdict.
CREATE OR REPLACE FUNCTION pgcrond.claim_gate(me text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	lone text;
BEGIN
	PERFORM FROM pgcrond.cluster_gate g FOR SHARE;
	SELECT i.name INTO lone FROM pgcrond.instance i
	 WHERE i.name OPERATOR(pg_catalog.<>) me AND i.stopped_at IS NULL
	   AND i.lone_boot OPERATOR(pg_catalog.=) i.boot_id
	 LIMIT 1;
	IF lone IS NOT NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'PGCL1',
			MESSAGE = pg_catalog.format('instance %s runs unclaimed and has not yet answered this instance''s hello', lone);
	END IF;
	RETURN true;
END
$fn$;

-- Instance ME (process BOOT) goes lone: true if no other instance is live (not stopped) and
-- no other instance holds a claim of a fire not yet passed (a stopped one's claims of its last
-- instants are served as it left them, not run here unclaimed as well). The gate's row is held
-- first and the look comes after, in a statement of its own: every claim statement that held
-- the row has ended, and one that comes later sees this instance lone.
CREATE OR REPLACE FUNCTION pgcrond.go_lone(me text, boot text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	-- the looks below need a snapshot of their own each: under REPEATABLE READ or
	-- SERIALIZABLE (a default_transaction_isolation of the role or database) the look would
	-- use one taken before the gate's row was held, so such a session never goes lone
	IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' THEN
		RETURN false;
	END IF;
	PERFORM FROM pgcrond.cluster_gate g FOR UPDATE;
	IF EXISTS (SELECT FROM pgcrond.instance i
	            WHERE i.name OPERATOR(pg_catalog.<>) me AND i.stopped_at IS NULL)
	   OR EXISTS (SELECT FROM pgcrond.fire_claim c
	               WHERE c.claimed_at OPERATOR(pg_catalog.>) (pg_catalog.now()
	                      OPERATOR(pg_catalog.-) interval '1 minute')
	                 AND c.instance OPERATOR(pg_catalog.<>) me
	                 AND c.fire_key OPERATOR(pg_catalog.~) '^s:[0-9]{1,12}'
	                 AND pg_catalog.substr(pg_catalog.split_part(c.fire_key, '/', 1), 3)::pg_catalog.int8
	                     OPERATOR(pg_catalog.>=) (pg_catalog.floor(pg_catalog.date_part('epoch',
	                      pg_catalog.clock_timestamp()))::pg_catalog.int8 OPERATOR(pg_catalog.-) 2)) THEN
		RETURN false;
	END IF;
	UPDATE pgcrond.instance i SET lone_boot = boot
	 WHERE i.name OPERATOR(pg_catalog.=) me AND i.boot_id OPERATOR(pg_catalog.=) boot
	   AND i.stopped_at IS NULL;
	RETURN FOUND;
END
$fn$;

INSERT INTO pgcrond.schema_version (version) VALUES (23) ON CONFLICT DO NOTHING;
