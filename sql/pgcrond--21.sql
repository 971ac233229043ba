-- pgcrond schema, step 21: what a run's command is, for a takeover's record (issue 48, item 2).
--
-- A run whose transaction a takeover cannot ask about (its command is a procedure or a DO
-- block, a statement that cannot run in a transaction block, transaction control, or a
-- plugin's statements: docs/faults.md, "Command classes") is fenced: the instance that
-- closes it after its own instance died ends its backend before it retries it, but cannot
-- tell whether its work committed. pgcrond.run_start.fenced names that class, written with
-- the run's start mark, so that the history row of such a run says "may have committed:
-- procedure" instead of leaving the reader to guess. NULL for a run whose transaction id is
-- asked (one transaction). Applied by `pgcrond install` (see pgcrond--1.sql).

ALTER TABLE pgcrond.run_start ADD COLUMN IF NOT EXISTS fenced text;
COMMENT ON COLUMN pgcrond.run_start.fenced IS
	'the class of a command whose commit a takeover cannot ask about (procedure, no transaction block, transaction control, plugin); NULL: one transaction';

INSERT INTO pgcrond.schema_version (version) VALUES (21) ON CONFLICT DO NOTHING;
