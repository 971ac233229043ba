-- pgcrond schema, version 7: several instances hand work over to each other.
--
-- Step 4 made every fire run once across instances. This step adds what an instance owes
-- beyond its running rows, so that a survivor takes it over when the instance dies; the
-- cancel requests of overlap = replace across instances; and the pause set shared by every
-- instance (docs/several-instances.md). Applied by `pgcrond install` after
-- pgcrond--6.sql (see pgcrond--1.sql).

-- Work an instance owes and has not started: a retry waiting for its delay, a downstream run
-- of the graph whose upstream ran there, notifications gathered while the job ran. The
-- owner writes the row when the work becomes due and deletes it when the work starts; the
-- survivor that finds the owner dead (or the owner's next process, boot_id changed) deletes
-- the rows and runs them, so each is taken over once.
CREATE TABLE IF NOT EXISTS pgcrond.pending_work (
	instance       text NOT NULL,
	boot_id        text NOT NULL,
	job_name       text NOT NULL,
	kind           text NOT NULL CHECK (kind IN ('retry', 'upstream', 'notify')),
	graph_run      text,
	scheduled_time timestamptz,
	attempt        integer NOT NULL DEFAULT 1,
	due_at         timestamptz NOT NULL DEFAULT now(),
	payloads       text[],
	noted_at       timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT pending_work_pkey PRIMARY KEY (instance, job_name, kind)
);
COMMENT ON TABLE pgcrond.pending_work IS
	'work a pgcrond instance owes and has not started; a survivor takes it over when the instance dies';

-- overlap = replace across instances: the instance whose run is to be replaced finds its
-- request here (a NOTIFY on pgcrond_cluster only wakes it) and cancels the run itself.
CREATE TABLE IF NOT EXISTS pgcrond.cancel_request (
	instance     text NOT NULL,
	job_name     text NOT NULL,
	requested_by text NOT NULL,
	requested_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT cancel_request_pkey PRIMARY KEY (instance, job_name)
);
COMMENT ON TABLE pgcrond.cancel_request IS
	'a run another pgcrond instance asked to cancel (overlap = replace across instances)';

-- The paused jobs of the whole cluster: pgcrond pause and resume on any instance change
-- them; every instance follows (each also keeps its own copy in state_dir, for a start
-- while the history database is down).
CREATE TABLE IF NOT EXISTS pgcrond.job_pause (
	job_name  text PRIMARY KEY,
	paused_by text NOT NULL,
	paused_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pgcrond.job_pause IS 'jobs paused on every pgcrond instance (pgcrond pause / resume)';
-- the jobs paused before this step, as the daemons recorded them in the registry (step 5)
INSERT INTO pgcrond.job_pause (job_name, paused_by)
SELECT jobname, 'pgcrond install' FROM pgcrond.job WHERE paused
ON CONFLICT (job_name) DO NOTHING;

INSERT INTO pgcrond.schema_version (version) VALUES (7) ON CONFLICT DO NOTHING;
