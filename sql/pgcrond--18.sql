-- pgcrond schema, step 18: a claimed fire's run sends its statement only once its start is
-- written, and only while its instance still holds the fire's claim and its job's lock; a job
-- lock whose holder's runs ended can be taken over.
--
-- Step 17 wrote a run's start mark (pgcrond.run_start) as the run got its backend, beside
-- the statement: an instance stopped in the milliseconds after it sent its statements and
-- before its marks reached the database left claims that looked never run, and the instance
-- that found it dead ran those fires a second time. Now the run waits for its mark, and the
-- mark of a scheduled fire's run sets `started` on the fire's claim, in the same statement;
-- the instance that finds another dead serves only claims not started. Either the mark
-- comes first (the claim is started: it is never served again) or the takeover does (the
-- claim is gone: the mark finds nothing and the run sends nothing). The row lock on the claim
-- decides which. Applied by `pgcrond install` (see pgcrond--1.sql).

-- NULL: claimed by a process that marked nothing then (no other instance was live), so
-- whether its run began is not known here: another instance never serves it; the claiming
-- instance's next process does, as its history (spill file written first) tells.
ALTER TABLE pgcrond.fire_claim ADD COLUMN IF NOT EXISTS started boolean DEFAULT false;
ALTER TABLE pgcrond.fire_claim ALTER COLUMN started DROP NOT NULL;
COMMENT ON COLUMN pgcrond.fire_claim.started IS
	'true: the claiming instance marked its run''s start (pgcrond.run_start), it may have run; NULL: it marked nothing then';

-- A job's lock (pgcrond.job_lock) is held by an instance from a fire's claim to its run's end.
-- An instance stopped or frozen right after it claimed or ran a fire kept the lock until it
-- was found dead (20 s by default), and the other instances skipped the job's fires meanwhile.
-- `marked` says every hold of the lock was taken by an instance that marks its runs (and its
-- runs check the lock as they are marked): such a lock whose holder has no run of the job that
-- may still be under way (every mark of it in pgcrond.run_start has a transaction the server
-- says ended) may be taken over once it has been neither claimed nor marked for a while.
ALTER TABLE pgcrond.job_lock ADD COLUMN IF NOT EXISTS marked boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN pgcrond.job_lock.marked IS
	'every hold was taken by an instance that marks its runs: the lock may be taken over once they ended';

INSERT INTO pgcrond.schema_version (version) VALUES (18) ON CONFLICT DO NOTHING;
