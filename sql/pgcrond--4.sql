-- pgcrond schema, version 4: several instances, every fire exactly once.
--
-- Instances that share a history database coordinate through it (DESIGN.md "Scaling past one
-- machine"): each holds a session advisory lock on its name while it lives and heartbeats in
-- pgcrond.instance; before a run starts it claims the run's fire in pgcrond.fire_claim, and
-- only the instance whose INSERT ... ON CONFLICT DO NOTHING inserted the row runs it.
-- Applied by `pgcrond install` after pgcrond--3.sql (see pgcrond--1.sql).

-- One row per instance name ever seen. last_seen is the heartbeat (every 5 s); stopped_at
-- is set by a clean stop, or by the survivor that found it dead and closed its runs.
CREATE TABLE IF NOT EXISTS pgcrond.instance (
	name       text PRIMARY KEY,
	boot_id    text NOT NULL,
	host       text,
	pid        integer,
	version    text,
	started_at timestamptz NOT NULL DEFAULT now(),
	last_seen  timestamptz NOT NULL DEFAULT now(),
	stopped_at timestamptz,
	stop_note  text
);
COMMENT ON TABLE pgcrond.instance IS 'pgcrond instances sharing this history database, with their heartbeats';
COMMENT ON COLUMN pgcrond.instance.stop_note IS 'how it stopped: a clean stop, or which survivor found it dead';

-- The claim of one fire. fire_key names what is served:
--   s:<unix s>            a scheduled fire (trigger schedule or catchup: the same fire)
--   g:<graph run>         a downstream run in a graph run
--   n                     the job's notification turn (claimed_at moves on; see below)
--   b:<boot id>           an @reboot run (every instance start has its own)
-- and a retry appends /a<attempt>. A fire already claimed by the same instance (an earlier
-- process of it, or a run that failed because its database was down) may be claimed
-- again by it, for the catch-up of that instant. For "n" a claim succeeds when no other instance took
-- the turn within the job's window (ON CONFLICT DO UPDATE ... WHERE), so one burst of
-- notifications, seen by every instance, is one run in the whole cluster.
CREATE TABLE IF NOT EXISTS pgcrond.fire_claim (
	job_name   text NOT NULL,
	fire_key   text NOT NULL,
	instance   text NOT NULL,
	boot_id    text NOT NULL,
	claimed_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT fire_claim_pkey PRIMARY KEY (job_name, fire_key)
);
COMMENT ON TABLE pgcrond.fire_claim IS 'which instance runs which fire: one row per (job, fire), taken before the run starts';
-- the purge of old claims
CREATE INDEX IF NOT EXISTS fire_claim_claimed_at_idx ON pgcrond.fire_claim (claimed_at);

-- Which jobs each instance defines, with a hash of the definition: instances whose
-- definitions of a job differ (a rolling config change) say so in their logs.
CREATE TABLE IF NOT EXISTS pgcrond.instance_job (
	instance text NOT NULL,
	job_name text NOT NULL,
	def_hash text NOT NULL,
	CONSTRAINT instance_job_pkey PRIMARY KEY (instance, job_name)
);
COMMENT ON TABLE pgcrond.instance_job IS 'the jobs each pgcrond instance defines, as a hash of each definition';

INSERT INTO pgcrond.schema_version (version) VALUES (4) ON CONFLICT DO NOTHING;
