/* Exactly once for a command of several statements (docs/faults.md, command
 * classes): with another instance live, pgcrond opens the run's transaction itself, writes its
 * id where a takeover looks (pgcrond.run_start) and sends COMMIT only once the id is there. An
 * instance frozen before its COMMIT leaves an open transaction that the survivor ends before it
 * retries; one frozen during its COMMIT leaves a transaction the server says committed. Every
 * execution is counted in a table (the command INSERTs pg_backend_pid()) and matched to the
 * history. Run one case with CK_RUN_CASE=<name>. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "itest.h"

#define DB "pgcrond_it_once"

/* Job "long" on a schedule WHEN, running COMMAND, retried once at once on any error. */
static void long_job(char *out, size_t len, const char *when, const char *command)
{
	snprintf(out, len,
	         "job = { name = \"long\"; database = \"app\"; schedule = \"%s\";"
	         " command = \"%s\"; retries = 1; retry_on = \"any\"; retry_delay = \"1s\"; };\n",
	         when, command);
}

/* Instances "oa" and "ob" on E, each found dead after 5 s of silence, both up before job
 * "long" (COMMAND) is given a fire a few seconds ahead. */
static void two_up_then_fire(struct itest_env *e, struct itest_inst *a, struct itest_inst *b,
                             const char *command)
{
	char jobs[1024], when[64];
	long_job(jobs, sizeof(jobs), "0 0 1 1 *", command);
	itest_inst_init(a, e, "oa", jobs);
	itest_inst_init(b, e, "ob", jobs);
	struct itest_inst *both[] = {a, b};
	for (int i = 0; i < 2; i++) {
		char *conf = itest_read_file(both[i]->conf);
		itest_write_file(both[i]->conf, "cluster_dead_after = \"5s\";\n%s", conf);
		free(conf);
		itest_inst_up(e, both[i]);
	}
	for (int ahead = 3; ahead;) {
		time_t at = itest_schedule_soon_at(when, sizeof(when), ahead);
		long_job(jobs, sizeof(jobs), when, command);
		itest_inst_reload(a, jobs);
		itest_inst_reload(b, jobs);
		ahead = itest_insts_soon_again(both, 2, at, ahead);
	}
}

/* The instance of A and B that SQL (its instance's name) names, once WAITED (a condition on
 * E) holds within 30 s; *OTHER the other. */
static struct itest_inst *runner(struct itest_env *e, struct itest_inst *a, struct itest_inst *b,
                                 const char *waited, const char *sql, struct itest_inst **other)
{
	ck_assert_msg(itest_env_wait(e, 30, "%s", waited), "no run of 'long' (%s):\n%s\n%s", waited,
	              itest_read_file(a->log), itest_read_file(b->log));
	char *name = itest_scalar(e->db, sql);
	struct itest_inst *x = name && strcmp(name, a->name) == 0 ? a : b;
	free(name);
	*other = x == a ? b : a;
	return x;
}

/* two_up_then_fire, and returns the instance whose run of "long" is in flight with its
 * transaction id written, *OTHER the other. */
static struct itest_inst *run_in_flight(struct itest_env *e, struct itest_inst *a,
                                        struct itest_inst *b, const char *command,
                                        struct itest_inst **other)
{
	two_up_then_fire(e, a, b, command);
	return runner(e, a, b,
	              "SELECT count(*) = 1 FROM pgcrond.run_start r"
	              " JOIN pgcrond.job_run_details d USING (instance, run_key)"
	              " WHERE d.job_name = 'long' AND r.xid > 0",
	              "SELECT instance FROM pgcrond.run_start WHERE xid > 0", other);
}

/* two_up_then_fire, and returns the instance whose run of "long" is running with its
 * backend (a fenced command: no transaction id), *OTHER the other. */
static struct itest_inst *run_in_flight_fenced(struct itest_env *e, struct itest_inst *a,
                                               struct itest_inst *b, const char *command,
                                               struct itest_inst **other)
{
	two_up_then_fire(e, a, b, command);
	return runner(e, a, b,
	              "SELECT count(*) = 1 FROM pgcrond.job_run_details d"
	              " JOIN pg_stat_activity a ON a.pid = d.job_pid"
	              " WHERE d.job_name = 'long' AND d.status = 'running' AND a.state = 'active'",
	              "SELECT instance FROM pgcrond.job_run_details"
	              " WHERE job_name = 'long' AND status = 'running'",
	              other);
}

/* The history of job "long", one line per run, for a failure message (malloc'd). */
static char *long_runs(struct itest_env *e)
{
	return itest_scalar(e->db,
	                    "SELECT string_agg(format('attempt %s on %s: %s %s', attempt, instance,"
	                    " status, return_message), E'\\n' ORDER BY runid)"
	                    " FROM pgcrond.job_run_details WHERE job_name = 'long'");
}

static void setup(struct itest_env *e, const char *tag)
{
	itest_env_setup(e, tag, DB);
	itest_exec(e->db, "CREATE TABLE public.execs (pid integer, at timestamptz DEFAULT now());"
	                  "GRANT ALL ON public.execs TO PUBLIC");
}

/* Whether the backend of X's run of "long" is busy with a statement like PATTERN within 20 s. */
static bool backend_busy_with(struct itest_env *e, const char *pattern)
{
	return itest_env_wait(e, 20,
	                      "SELECT count(*) = 1 FROM pg_stat_activity"
	                      " WHERE application_name = 'pgcrond: long' AND state = 'active'"
	                      " AND query LIKE '%s'",
	                      pattern);
}

/* Frozen before its COMMIT: X's run has run both its statements (the INSERT, then a sleep of
 * 4 s) when X is stopped. Under pg_cron, or before pgcrond opened the transaction itself, the
 * string's implicit transaction committed at its end, and the retry did the work a second
 * time. Now the transaction waits for a COMMIT that never comes: the survivor ends the backend
 * (rolled back) and retries, and the work is done once, by the retry. */
START_TEST(frozen_before_commit_runs_once)
{
	struct itest_env e;
	struct itest_inst a, b, *y;
	setup(&e, "once-frozen");
	struct itest_inst *x = run_in_flight(
	    &e, &a, &b, "INSERT INTO execs (pid) VALUES (pg_backend_pid()); SELECT pg_sleep(4)",
	    &y);
	ck_assert_msg(backend_busy_with(&e, "INSERT INTO execs%pg_sleep(4)"),
	              "the run's statements were not seen running:\n%s", itest_read_file(x->log));
	ck_assert_int_eq(kill(x->pid, SIGSTOP), 0);
	/* found dead after 5 s; its run closed, retried on the survivor */
	bool retried = itest_env_wait(&e, 60,
	                              "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                              " WHERE job_name = 'long' AND attempt = 2"
	                              " AND status = 'succeeded'");
	char *runs = long_runs(&e);
	long long execs = itest_env_count(&e, "SELECT count(*) FROM execs");
	long long unrecorded = itest_env_count(
	    &e, "SELECT count(*) FROM execs x WHERE NOT EXISTS (SELECT FROM"
	        " pgcrond.job_run_details d WHERE d.job_pid = x.pid AND d.status = 'succeeded')");
	ck_assert_int_eq(kill(x->pid, SIGCONT), 0);
	ck_assert_msg(retried && execs == 1 && unrecorded == 0,
	              "the work was committed %lld times, %lld of them not recorded as a success:"
	              "\n%s\n%s",
	              execs, unrecorded, runs ? runs : "", itest_read_file(y->log));
	free(runs);
	itest_assert_scalar(e.db,
	                    "SELECT return_message LIKE 'instance oa died%' OR return_message LIKE"
	                    " 'instance ob died%' FROM pgcrond.job_run_details"
	                    " WHERE job_name = 'long' AND attempt = 1",
	                    "t");
	/* X, woken, commits nothing: its backend is gone */
	itest_inst_stop(x, SIGTERM);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM execs"), 1);
	itest_inst_stop(y, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* Frozen during its COMMIT: a deferred trigger makes the COMMIT take 3 s, and X is stopped
 * while the server works on it. The transaction commits; the survivor asks the server, records
 * the run as succeeded and does not retry it. */
START_TEST(frozen_during_commit_is_not_retried)
{
	struct itest_env e;
	struct itest_inst a, b, *y;
	setup(&e, "once-commit");
	itest_exec(e.db, "CREATE FUNCTION public.slow_commit() RETURNS trigger LANGUAGE plpgsql"
	                 " AS $$BEGIN PERFORM pg_sleep(3); RETURN NULL; END$$;"
	                 "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON public.execs"
	                 " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
	                 " EXECUTE FUNCTION public.slow_commit()");
	struct itest_inst *x = run_in_flight(
	    &e, &a, &b, "INSERT INTO execs (pid) VALUES (pg_backend_pid()); SELECT 1", &y);
	ck_assert_msg(backend_busy_with(&e, "COMMIT"), "no COMMIT of the run's own was seen:\n%s",
	              itest_read_file(x->log));
	ck_assert_int_eq(kill(x->pid, SIGSTOP), 0);
	bool closed = itest_env_wait(&e, 40,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'long' AND attempt = 1"
	                             " AND status = 'succeeded'"
	                             " AND return_message LIKE 'committed; instance %s died%%'",
	                             x->name);
	/* a retry would start 1 s after the close (retry_delay) */
	itest_env_wait(&e, 15,
	               "SELECT now() - end_time > interval '4 seconds' FROM pgcrond.job_run_details"
	               " WHERE job_name = 'long' AND attempt = 1");
	char *runs = long_runs(&e);
	long long execs = itest_env_count(&e, "SELECT count(*) FROM execs");
	long long rows = itest_env_count(
	    &e, "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 'long'");
	ck_assert_int_eq(kill(x->pid, SIGCONT), 0);
	ck_assert_msg(closed && execs == 1 && rows == 1,
	              "committed %lld times, %lld history rows:\n%s\n%s", execs, rows,
	              runs ? runs : "", itest_read_file(y->log));
	free(runs);
	itest_inst_stop(x, SIGTERM);
	itest_inst_stop(y, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* A statement the scanner takes for one that a transaction block holds, but which refuses
 * one (CLUSTER without a table): the run goes again as written, on its own, and succeeds as
 * under pg_cron. */
START_TEST(statement_refusing_a_block_runs_as_written)
{
	struct itest_env e;
	struct itest_inst a, b;
	setup(&e, "once-block");
	two_up_then_fire(&e, &a, &b, "CLUSTER");
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'long' AND status <> 'starting'"
	                             " AND status <> 'running'"),
	              "no end:\n%s\n%s", itest_read_file(a.log), itest_read_file(b.log));
	char *runs = long_runs(&e);
	ck_assert_msg(strstr(runs, ": succeeded CLUSTER"), "not run as written:\n%s", runs);
	free(runs);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"), 1);
	itest_inst_stop(&a, SIGTERM);
	itest_inst_stop(&b, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* A fenced command (its transaction cannot be asked about) in flight when its instance X is
 * stopped: the survivor ends its backend before it retries, and the history row of the first
 * attempt says what the command was ("may have committed: CLASS"). The first attempt sleeps
 * 20 s (its sequence value is 1); the retry does not. Returns X's run's backend pid. */
static int fenced_in_flight(struct itest_env *e, struct itest_inst *a, struct itest_inst *b,
                            const char *command, const char *class, struct itest_inst **x,
                            struct itest_inst **y)
{
	*x = run_in_flight_fenced(e, a, b, command, y);
	int pid = (int)itest_env_count(e, "SELECT job_pid FROM pgcrond.job_run_details"
	                                  " WHERE job_name = 'long' AND attempt = 1");
	ck_assert_int_eq(kill((*x)->pid, SIGSTOP), 0);
	bool closed = itest_env_wait(e, 60,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'long' AND attempt = 2"
	                             " AND status = 'succeeded'");
	char *runs = long_runs(e);
	ck_assert_int_eq(kill((*x)->pid, SIGCONT), 0);
	char want[128];
	snprintf(want, sizeof(want), "may have committed: %s", class);
	ck_assert_msg(closed && strstr(runs, want) && strstr(runs, "attempt 1 on"),
	              "no retry, or attempt 1 does not say '%s':\n%s\n%s", want, runs,
	              itest_read_file((*y)->log));
	free(runs);
	/* the backend was gone before the retry began */
	ck_assert_int_eq(
	    itest_env_count(e, "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid), 0);
	return pid;
}

static void fenced_setup(struct itest_env *e, const char *tag)
{
	setup(e, tag);
	itest_exec(e->db,
	           "CREATE SEQUENCE public.attempt_seq; GRANT ALL ON public.attempt_seq TO PUBLIC");
}

static void fenced_down(struct itest_env *e, struct itest_inst *a, struct itest_inst *b)
{
	itest_inst_stop(a, SIGTERM);
	itest_inst_stop(b, SIGTERM);
	itest_inst_free(a);
	itest_inst_free(b);
	itest_env_teardown(e);
}

/* A DO block (it may COMMIT inside, so pgcrond cannot open its transaction): its first attempt
 * is rolled back when the survivor ends it, and the retry does the work once. */
START_TEST(do_block_is_fenced)
{
	struct itest_env e;
	struct itest_inst a, b, *x, *y;
	fenced_setup(&e, "once-do");
	fenced_in_flight(&e, &a, &b,
	                 "DO $$BEGIN INSERT INTO execs (pid) VALUES (pg_backend_pid());"
	                 " PERFORM pg_sleep(CASE WHEN nextval('attempt_seq') = 1 THEN 20 ELSE 0"
	                 " END); END$$",
	                 "procedure", &x, &y);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM execs"), 1);
	fenced_down(&e, &a, &b);
}
END_TEST

/* A procedure that commits twice: its first part committed before the fault, the survivor
 * ends its backend (the second part never runs there) and the retry runs the whole procedure
 * again, as the history row warned ("may have committed"). */
START_TEST(procedure_committing_inside_is_fenced)
{
	struct itest_env e;
	struct itest_inst a, b, *x, *y;
	fenced_setup(&e, "once-call");
	itest_exec(e.db, "CREATE PROCEDURE public.twice() LANGUAGE plpgsql AS $$BEGIN"
	                 " INSERT INTO execs (pid) VALUES (pg_backend_pid()); COMMIT;"
	                 " PERFORM pg_sleep(CASE WHEN nextval('attempt_seq') = 1 THEN 20 ELSE 0"
	                 " END);"
	                 " INSERT INTO execs (pid) VALUES (pg_backend_pid()); COMMIT; END$$;"
	                 "GRANT ALL ON PROCEDURE public.twice() TO PUBLIC");
	int first = fenced_in_flight(&e, &a, &b, "CALL twice()", "procedure", &x, &y);
	/* the first backend did its first part only; the retry did both */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM execs WHERE pid = %d", first),
	                 1);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM execs"), 3);
	fenced_down(&e, &a, &b);
}
END_TEST

/* A VACUUM (it cannot run in a transaction block) waiting for a lock the test holds when its
 * instance is stopped: ended before the retry, which runs it once the lock is free. */
START_TEST(vacuum_is_fenced)
{
	struct itest_env e;
	struct itest_inst a, b, *y;
	fenced_setup(&e, "once-vacuum");
	PGconn *holder = itest_connect(e.ci);
	itest_exec(holder, "BEGIN; LOCK TABLE public.execs IN SHARE UPDATE EXCLUSIVE MODE");
	struct itest_inst *xi = run_in_flight_fenced(&e, &a, &b, "VACUUM public.execs", &y);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 1 FROM pg_stat_activity"
	                             " WHERE application_name = 'pgcrond: long'"
	                             " AND wait_event_type = 'Lock'"),
	              "the VACUUM does not wait for the lock:\n%s", itest_read_file(xi->log));
	ck_assert_int_eq(kill(xi->pid, SIGSTOP), 0);
	bool closed =
	    itest_env_wait(&e, 60,
	                   "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                   " WHERE job_name = 'long' AND attempt = 1 AND status = 'failed'"
	                   " AND return_message LIKE '%%may have committed: no transaction"
	                   " block'");
	itest_exec(holder, "COMMIT");
	PQfinish(holder);
	bool retried = itest_env_wait(&e, 30,
	                              "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                              " WHERE job_name = 'long' AND attempt = 2"
	                              " AND status = 'succeeded'");
	char *runs = long_runs(&e);
	ck_assert_int_eq(kill(xi->pid, SIGCONT), 0);
	ck_assert_msg(closed && retried, "%s\n%s", runs, itest_read_file(y->log));
	free(runs);
	fenced_down(&e, &a, &b);
}
END_TEST

/* Job "j" (every second) on instance X, with instance "fk" live beside it (its heartbeat is
 * fresh and counts for 10 min; no process: it answers nothing, as a frozen one), which holds
 * j's lock as it would just after its run of j ended, before it gave the lock back: taken
 * 0.3 s into a second T, a mark of that run whose transaction committed, and a claim of a
 * fire of j, STARTED (its run marked) or not. Returns the status of j's fire at T + 1, whose
 * claim X asks for 100 ms before it (NULL: that claim may have come first). */
static char *fire_after_idle_lock(struct itest_env *e, struct itest_inst *x, bool started)
{
	itest_exec(e->db, "DELETE FROM pgcrond.run_start WHERE instance = 'fk';"
	                  "DELETE FROM pgcrond.fire_claim WHERE instance = 'fk';"
	                  "DELETE FROM pgcrond.job_lock WHERE instance = 'fk'");
	char *xid = itest_scalar(e->db, "SELECT txid_current()::text"); /* committed */
	/* (after a sleep to 0.3 s into the second) */
	char *t = itest_scalar(
	    e->db, "SELECT floor(extract(epoch FROM clock_timestamp()))::bigint::text FROM"
	           " pg_sleep((1.3 - extract(epoch FROM clock_timestamp())::numeric % 1) % 1)");
	ck_assert_ptr_nonnull(t);
	char sql[1500];
	snprintf(
	    sql, sizeof(sql),
	    "INSERT INTO pgcrond.job_lock AS l (job_name, instance, boot_id, holds, marked,"
	    "  locked_at) VALUES ('j', 'fk', 'fkboot', 1, true, clock_timestamp())"
	    " ON CONFLICT (job_name) DO UPDATE SET instance = 'fk', boot_id = 'fkboot',"
	    "  holds = 1, marked = true, locked_at = clock_timestamp();"
	    "INSERT INTO pgcrond.run_start (instance, run_key, job_name, scheduled_s, xid,"
	    "  server) VALUES ('fk', 'fk1', 'j', %s, %s,"
	    "  extract(epoch FROM pg_postmaster_start_time())::text);"
	    "INSERT INTO pgcrond.fire_claim (job_name, fire_key, instance, boot_id, started,"
	    "  claimed_at) VALUES ('j', 's:' || (%s - 100), 'fk', 'fkboot', %s, clock_timestamp())",
	    t, xid, t, started ? "true" : "false");
	itest_exec(e->db, sql);
	char *status = NULL;
	if (itest_env_count(e,
	                    "SELECT count(*) FROM pgcrond.job_lock WHERE instance = 'fk'"
	                    " AND clock_timestamp() < to_timestamp(%s + 0.85)",
	                    t) != 1) {
		free(xid); /* set up too late for the next second's claim (a loaded machine) */
		free(t);
		return NULL;
	}
	if (itest_env_wait(e, 10,
	                   "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE job_name = 'j'"
	                   " AND scheduled_time = to_timestamp(%s + 1) AND status IN ('succeeded',"
	                   " 'skipped')",
	                   t)) {
		snprintf(sql, sizeof(sql),
		         "SELECT status || ': ' || return_message FROM pgcrond.job_run_details"
		         " WHERE job_name = 'j' AND scheduled_time = to_timestamp(%s + 1)",
		         t);
		status = itest_scalar(e->db, sql);
	}
	ck_assert_msg(status, "no row of the fire at %s + 1:\n%s", t, itest_tail(x->log));
	free(xid);
	free(t);
	return status;
}

/* The lock of an instance that froze just after its run of a job ended (its transaction
 * committed) and before it gave the lock back is taken at once by the next fire's claim, not
 * after the 1.5 s lease (which would make the others skip that fire, as in the "kill_freeze" case
 * below, stopped right after a second's runs); one whose holder has claimed a fire whose run
 * has not begun (it may only be slow) still holds the job for the lease. */
START_TEST(ended_runs_do_not_hold_the_job)
{
	struct itest_env e;
	struct itest_inst x;
	setup(&e, "once-idle");
	itest_exec(e.db, "INSERT INTO pgcrond.instance (name, boot_id, last_seen, dead_after_ms)"
	                 " VALUES ('fk', 'fkboot', now(), 600000)");
	itest_inst_init(&x, &e, "ox",
	                "job = { name = \"j\"; database = \"app\"; schedule = \"* * * * * *\";"
	                " command = \"INSERT INTO execs (pid) VALUES (pg_backend_pid())\"; };\n");
	itest_inst_up(&e, &x);
	ck_assert_msg(itest_wait_log(x.log, "other live instances: fk", 15),
	              "ox never saw fk live:\n%s", itest_tail(x.log));
	itest_sleep(2); /* its runs are marked from then on */
	char *ended = NULL, *waiting = NULL;
	for (int i = 0; i < 5 && !ended; i++)
		ended = fire_after_idle_lock(&e, &x, true);
	for (int i = 0; i < 5 && !waiting; i++)
		waiting = fire_after_idle_lock(&e, &x, false);
	ck_assert_msg(ended && waiting, "the lock could not be set up before a second's claim");
	ck_assert_msg(strncmp(ended, "succeeded", 9) == 0,
	              "the next fire after runs that ended: %s\n%s", ended, itest_tail(x.log));
	ck_assert_msg(strstr(waiting, "skipped: a run of the job is still running on another"),
	              "the next fire after a claim not started: %s\n%s", waiting,
	              itest_tail(x.log));
	free(ended);
	free(waiting);
	itest_inst_stop(&x, SIGTERM);
	itest_inst_free(&x);
	itest_env_teardown(&e);
}
END_TEST

/* Exactly once under faults, as a fault injector tries it: three instances, six jobs every
 * second and four every 5 s whose command is several statements (an INSERT, then 3 s of
 * sleep), retried twice on transient errors; the instance running a long job is stopped for
 * 30 s mid-run, then later another (or the same) is killed mid-run. Every committed execution
 * is matched to its history row by backend pid, job and time: no fire of a long job executed
 * twice, none recorded failed although it committed, none unrecorded, none lost (the kill's
 * too: the survivors find the killed instance dead and retry its run); and the every-second
 * fires while the instance was stopped each have their row, at most 5 % of them skipped. */
static void wait_long_in_flight(struct itest_env *e, struct itest_inst *in, struct itest_inst **x)
{
	/* its instance by its transaction id (pgcrond.run_start), which it wrote before it sent
	 * the statement */
#define LONG_RUNNER                                                                                \
	"SELECT r.instance FROM pgcrond.run_start r JOIN pg_stat_activity a"                       \
	" ON a.backend_xid::text::bigint = r.xid %% 4294967296"                                    \
	" WHERE r.job_name LIKE 'l_' AND r.xid > 0 AND a.state = 'active'"                         \
	" AND a.query LIKE '%%pg_sleep(3)%%' LIMIT 1"
	char q[512];
	snprintf(q, sizeof(q), LONG_RUNNER);
	char *runner = itest_wait_value(e->db, q, 30);
	ck_assert_msg(runner != NULL, "no long run in flight");
	*x = NULL;
	for (int i = 0; i < 3; i++)
		if (strcmp(runner, in[i].name) == 0)
			*x = &in[i];
	free(runner);
}

START_TEST(freeze_then_kill_runs_each_fire_once)
{
	struct itest_env e;
	struct itest_inst in[3];
	setup(&e, "once-kill-freeze");
	itest_exec(e.db, "ALTER TABLE public.execs ADD COLUMN job text");
	char jobs[4096];
	int n = snprintf(jobs, sizeof(jobs), "jobs = (\n");
	for (int i = 0; i < 6; i++)
		n += snprintf(jobs + n, sizeof(jobs) - (size_t)n,
		              "{ name = \"s%d\"; database = \"app\"; schedule = \"* * * * * *\";"
		              " command = \"INSERT INTO execs (job, pid) VALUES ('s%d',"
		              " pg_backend_pid())\"; },\n",
		              i, i);
	for (int i = 0; i < 4; i++)
		n += snprintf(jobs + n, sizeof(jobs) - (size_t)n,
		              "{ name = \"l%d\"; database = \"app\"; schedule = \"*/5 * * * * *\";"
		              " retries = 2; retry_on = \"transient\"; retry_delay = \"1s\";"
		              " command = \"INSERT INTO execs (job, pid) VALUES ('l%d',"
		              " pg_backend_pid()); SELECT pg_sleep(3)\"; }%s\n",
		              i, i, i < 3 ? "," : "");
	snprintf(jobs + n, sizeof(jobs) - (size_t)n, ");\n");
	const char *names[] = {"ta", "tb", "tc"};
	for (int i = 0; i < 3; i++) {
		itest_inst_init(&in[i], &e, names[i], jobs);
		/* a connection for each of the ten fires due at the same instant every 5 s: with 4,
		 * an instance that won them all made its every-second runs wait up to 3 s for one
		 * (the long jobs held them), and the others skipped those jobs' next fires by their
		 * overlap policy, frozen instance or not (4 to 12 of 180 fires in the window) */
		char *conf = itest_read_file(in[i].conf);
		char *pool = strstr(conf, "pool = 4;");
		ck_assert_ptr_nonnull(pool);
		*pool = '\0';
		itest_write_file(in[i].conf, "%spool = 10;%s", conf, pool + strlen("pool = 4;"));
		free(conf);
		itest_inst_up(&e, &in[i]);
	}
	for (int i = 0; i < 3; i++)
		ck_assert_msg(itest_wait_log(in[i].log, "other live instances", 15),
		              "%s never saw the others live", names[i]);
	/* from now on every run is marked: the executions counted start here */
	itest_sleep(2);
	itest_exec(e.db, "TRUNCATE execs");
	char *since = itest_scalar(e.db, "SELECT now()::text");
	struct itest_inst *x;
	wait_long_in_flight(&e, in, &x);
	ck_assert_msg(x, "no instance runs a long job");
	char *from = itest_scalar(e.db, "SELECT (date_trunc('second', now()) + '1 s')::text");
	ck_assert_int_eq(kill(x->pid, SIGSTOP), 0);
	itest_sleep(30); /* the fault's length, by design */
	char *to = itest_scalar(e.db, "SELECT date_trunc('second', now())::text");
	ck_assert_int_eq(kill(x->pid, SIGCONT), 0);
	itest_sleep(5);
	struct itest_inst *k;
	wait_long_in_flight(&e, in, &k);
	ck_assert_msg(k, "no instance runs a long job for the kill");
	char *killed = itest_scalar(e.db, "SELECT date_trunc('second', now())::text");
	ck_assert_int_eq(kill(k->pid, SIGKILL), 0);
	/* the survivors find it dead (its session is gone: at their next heartbeat), close its
	 * runs and retry them: wait until no run is open and the last retries had their time */
	ck_assert_msg(itest_env_wait(&e, 60,
	                             "SELECT stopped_at IS NOT NULL FROM pgcrond.instance"
	                             " WHERE name = '%s'",
	                             k->name),
	              "the killed instance %s was not found dead", k->name);
	ck_assert_msg(itest_env_wait(&e, 60,
	                             "SELECT count(*) = 0 FROM pgcrond.job_run_details"
	                             " WHERE status IN ('starting', 'running')"
	                             " AND start_time < now() - interval '8 seconds'"),
	              "runs left open");
	for (int i = 0; i < 3; i++)
		if (&in[i] != k)
			itest_inst_stop(&in[i], SIGTERM);
	itest_inst_stop(k, SIGKILL);
	/* each execution of a long job, matched to the run it belongs to (its backend, its job, a
	 * start before it and an end after it) */
	char q[2048];
	snprintf(
	    q, sizeof(q),
	    "WITH x AS (SELECT x.job, x.pid, x.at, (SELECT d.runid"
	    "   FROM pgcrond.job_run_details d WHERE d.job_pid = x.pid AND d.job_name = x.job"
	    "   AND d.start_time <= x.at + interval '1 second'"
	    "   AND (d.end_time IS NULL OR d.end_time >= x.at - interval '1 second')"
	    "   ORDER BY d.start_time DESC LIMIT 1) AS runid FROM execs x WHERE x.job LIKE 'l_'"
	    "   AND x.at >= '%s')"
	    " SELECT x.job, x.at, d.status, d.scheduled_time FROM x"
	    " LEFT JOIN pgcrond.job_run_details d USING (runid)",
	    since);
	long long execs = itest_env_count(&e,
	                                  "SELECT count(*) FROM execs WHERE job LIKE 'l_'"
	                                  " AND at >= '%s'",
	                                  since);
	long long twice =
	    itest_env_count(&e,
	                    "SELECT count(*) FROM (SELECT job, scheduled_time FROM (%s) m"
	                    " WHERE scheduled_time IS NOT NULL"
	                    " GROUP BY 1, 2 HAVING count(*) > 1) t",
	                    q);
	long long failed = itest_env_count(
	    &e, "SELECT count(*) FROM (%s) m WHERE status IS DISTINCT FROM 'succeeded'", q);
	/* fires of the long jobs in the window, the freeze's and the kill's, without a run that
	 * succeeded (or a skip); the killed run's retry may still be under way */
	char lost_sql[1024];
	snprintf(
	    lost_sql, sizeof(lost_sql),
	    "SELECT count(*) FROM generate_series(date_trunc('minute', '%s'::timestamptz),"
	    " '%s'::timestamptz, interval '5 seconds') AS f(at), generate_series(0, 3) j"
	    " WHERE f.at > '%s'::timestamptz + interval '5 seconds'"
	    " AND NOT EXISTS (SELECT FROM pgcrond.job_run_details d WHERE d.job_name = 'l' || j"
	    "  AND d.scheduled_time = f.at AND d.status IN ('succeeded', 'skipped'))",
	    since, killed, since);
	itest_env_wait(&e, 20, "SELECT (%s) = 0", lost_sql);
	long long lost = itest_env_count(&e, "%s", lost_sql);
	long long secs = itest_env_count(&e,
	                                 "SELECT count(*) FROM generate_series('%s'::timestamptz,"
	                                 " '%s'::timestamptz, interval '1 second')",
	                                 from, to);
	long long skipped = itest_env_count(&e,
	                                    "SELECT count(*) FROM pgcrond.job_run_details"
	                                    " WHERE job_name LIKE 's_' AND status = 'skipped'"
	                                    " AND scheduled_time BETWEEN '%s' AND '%s'",
	                                    from, to);
	long long rows = itest_env_count(&e,
	                                 "SELECT count(DISTINCT (job_name, scheduled_time))"
	                                 " FROM pgcrond.job_run_details WHERE job_name LIKE 's_'"
	                                 " AND scheduled_time BETWEEN '%s' AND '%s'",
	                                 from, to);
	char *runs =
	    itest_scalar(e.db, "SELECT string_agg(format('%s %s a%s on %s: %s %s', job_name,"
	                       " scheduled_time::time, attempt, instance, status,"
	                       " left(return_message, 60)), E'\\n' ORDER BY job_name, runid)"
	                       " FROM pgcrond.job_run_details WHERE job_name LIKE 'l_'");
	char *why =
	    itest_scalar(e.db, "SELECT string_agg(DISTINCT left(return_message, 120), E'\\n')"
	                       " FROM pgcrond.job_run_details WHERE status = 'skipped'");
	fprintf(stderr, "once-kill-freeze: skipped because:\n%s\n", why ? why : "");
	free(why);
	fprintf(
	    stderr,
	    "once-kill-freeze: %lld long executions, %lld fires twice, %lld not recorded succeeded,"
	    " %lld fires lost; every-second fires while stopped: %lld of %lld skipped, %lld"
	    " with a row\n",
	    execs, twice, failed, lost, skipped, secs * 6, rows);
	ck_assert_msg(
	    execs > 0 && twice == 0 && failed == 0 && lost == 0 && rows == secs * 6 &&
	        skipped * 20 <= secs * 6,
	    "%lld executions, %lld fires twice, %lld not recorded succeeded, %lld lost,"
	    " %lld of %lld every-second fires with a row, %lld skipped (at most 5 %%):\n%s",
	    execs, twice, failed, lost, rows, secs * 6, skipped, runs ? runs : "");
	free(runs);
	free(since);
	free(killed);
	free(from);
	free(to);
	for (int i = 0; i < 3; i++)
		itest_inst_free(&in[i]);
	itest_env_teardown(&e);
}
END_TEST

/* Jobs "up" at second UP (COMMAND_UP) and "down", after it, at the next second, in JOBS. */
static void up_down_jobs(char *jobs, size_t len, const char *up, const char *down)
{
	snprintf(
	    jobs, len,
	    "jobs = ({ name = \"up\"; database = \"app\"; schedule = \"%s\";"
	    " command = \"INSERT INTO execs (job, pid) VALUES ('up', pg_backend_pid());"
	    " SELECT pg_sleep(4)\"; },\n"
	    "{ name = \"down\"; database = \"app\"; schedule = \"%s\"; after = [\"up\"];"
	    " command = \"INSERT INTO execs (job, pid) VALUES ('down', pg_backend_pid())\"; });\n",
	    up, down);
}

/* A fire claimed before its instant (admit_early) whose claim is unanswered at the instant,
 * and which then waits for something else (here its upstream, running on the same instance),
 * takes that claim's answer once admitted (asked again then if it does not grant it). The
 * test holds every claim of the fire of "down" (a row of its key inserted, not committed)
 * until X, the instance that runs "up", has parked "down" at its instant with its pre-claim
 * still waiting; the others' claims of the same fire wait too. Whichever claim the server
 * answers first, the fire runs exactly once across the three instances, with one history row:
 * X's claim, if granted, is X's when it asks once "up" ends, and the others then find it
 * taken. */
START_TEST(preclaim_given_up_runs_once)
{
	struct itest_env e;
	struct itest_inst in[3];
	setup(&e, "once-giveup");
	itest_exec(e.db, "ALTER TABLE public.execs ADD COLUMN job text");
	char jobs[1024], up[32], down[32];
	up_down_jobs(jobs, sizeof(jobs), "0 0 1 1 *", "0 0 1 1 *");
	const char *names[] = {"ga", "gb", "gc"};
	struct itest_inst *all[] = {&in[0], &in[1], &in[2]};
	for (int i = 0; i < 3; i++) {
		itest_inst_init(&in[i], &e, names[i], jobs);
		itest_inst_up(&e, &in[i]);
	}
	for (int i = 0; i < 3; i++)
		ck_assert_msg(itest_wait_log(in[i].log, "other live instances", 15),
		              "%s never saw the others live", names[i]);
	time_t at = 0;
	for (int ahead = 3; ahead;) {
		at = itest_schedule_soon_at(up, sizeof(up), ahead);
		snprintf(down, sizeof(down), "%d * * * * *", (int)((at + 1) % 60));
		up_down_jobs(jobs, sizeof(jobs), up, down);
		for (int i = 0; i < 3; i++)
			itest_inst_reload(&in[i], jobs);
		ahead = itest_insts_soon_again(all, 3, at, ahead);
	}
	/* every claim of the fire of "down" waits: a row of its key is being inserted */
	PGconn *holder = itest_connect(e.ci);
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "BEGIN; INSERT INTO pgcrond.fire_claim (job_name, fire_key, instance, boot_id)"
	         " VALUES ('down', 's:%lld', 'test', 'test')",
	         (long long)at + 1);
	itest_exec(holder, sql);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 1 FROM pgcrond.fire_claim"
	                             " WHERE job_name = 'up' AND fire_key = 's:%lld' AND started",
	                             (long long)at),
	              "no run of 'up' started");
	char *xname = itest_scalar(e.db, "SELECT instance FROM pgcrond.fire_claim"
	                                 " WHERE job_name = 'up' AND started");
	struct itest_inst *x = NULL;
	for (int i = 0; xname && i < 3; i++)
		if (strcmp(xname, names[i]) == 0)
			x = &in[i];
	ck_assert_msg(x, "no instance claimed 'up'");
	/* X's claim of "down" goes out before its instant and waits; at the instant "down" waits
	 * for "up" instead */
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pg_stat_activity a"
	                             " JOIN pgcrond.instance i ON a.pid = i.backend_pid"
	                             " WHERE i.name = '%s' AND a.wait_event_type = 'Lock'"
	                             " AND a.query LIKE '%%INSERT INTO pgcrond.fire_claim%%'",
	                             xname),
	              "%s sent no claim that waits:\n%s\n%s", xname, itest_tail(x->log),
	              itest_scalar(e.db, "SELECT string_agg(format('%s %s %s %s: %s', a.pid,"
	                                 " i.name, a.state, a.wait_event_type, left(a.query, 50)),"
	                                 " E'\n') FROM pg_stat_activity a LEFT JOIN"
	                                 " pgcrond.instance i ON a.pid = i.backend_pid"
	                                 " WHERE a.backend_type = 'client backend'"));
	ck_assert_msg(itest_wait_log(x->log, "waiting for upstream job up to finish", 10),
	              "%s did not park 'down':\n%s", xname, itest_tail(x->log));
	ck_assert_msg(itest_env_count(&e,
	                              "SELECT count(*) FROM pg_stat_activity a"
	                              " JOIN pgcrond.instance i ON a.pid = i.backend_pid"
	                              " WHERE i.name = '%s' AND a.wait_event_type = 'Lock'",
	                              xname) == 1,
	              "the claim of %s was answered before 'down' waited for 'up'", xname);
	itest_exec(holder, "ROLLBACK"); /* the claims go on as if nothing had been there */
	PQfinish(holder);
	/* "up" ends about 4 s later: X asks again for "down" then, at once */
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'up' AND status = 'succeeded'"),
	              "'up' did not succeed:\n%s", itest_tail(x->log));
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) >= 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'down' AND status = 'succeeded'"),
	              "the fire of 'down' was lost:\n%s", itest_tail(x->log));
	itest_sleep(2); /* a second run, if any, would follow within this */
	for (int i = 0; i < 3; i++)
		itest_inst_stop(&in[i], SIGTERM);
	char *runs = itest_scalar(e.db, "SELECT string_agg(format('%s %s on %s: %s %s', job_name,"
	                                " scheduled_time::time, instance, status, return_message),"
	                                " E'\\n' ORDER BY runid) FROM pgcrond.job_run_details");
	fprintf(stderr, "once-giveup: 'up' on %s; runs:\n%s\n", xname, runs ? runs : "");
	long long rows = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE job_name = 'down'");
	long long ok = itest_env_count(&e,
	                               "SELECT count(*) FROM pgcrond.job_run_details"
	                               " WHERE job_name = 'down' AND status = 'succeeded'"
	                               " AND scheduled_time = to_timestamp(%lld)",
	                               (long long)at + 1);
	long long execs = itest_env_count(&e, "SELECT count(*) FROM execs WHERE job = 'down'");
	ck_assert_msg(rows == 1 && ok == 1 && execs == 1,
	              "'down' ran %lld time(s), %lld row(s), %lld succeeded at its instant:\n%s",
	              execs, rows, ok, runs ? runs : "");
	free(runs);
	free(xname);
	for (int i = 0; i < 3; i++)
		itest_inst_free(&in[i]);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("once");
	const struct {
		const char *name;
		const TTest *test;
	} cases[] = {
	    {"frozen", frozen_before_commit_runs_once},
	    {"commit", frozen_during_commit_is_not_retried},
	    {"block", statement_refusing_a_block_runs_as_written},
	    {"do", do_block_is_fenced},
	    {"call", procedure_committing_inside_is_fenced},
	    {"vacuum", vacuum_is_fenced},
	    {"idle", ended_runs_do_not_hold_the_job},
	    {"kill_freeze", freeze_then_kill_runs_each_fire_once},
	    {"giveup", preclaim_given_up_runs_once},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_set_timeout(tc, 240);
		tcase_add_test(tc, cases[i].test);
		itest_add_tcase(s, tc);
	}
	SRunner *sr = srunner_create(s);
	int failed = itest_run_share(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
