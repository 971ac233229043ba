/* The shared database is hostile ground (docs/security.md "Locks and
 * notifications"): a role without any grant (mallory) takes every advisory lock the daemon
 * took and queues for them across a restart, and forges the notifications that carried facts
 * (a graph upstream's success, a manual trigger's outcome, a clean stop's hand-over). None of
 * it decides whether or how a job runs. Run one case with CK_RUN_CASE=<name>. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

#define DB "pgcrond_it_hostile"
#define MALLORY "it_mallory"

/* The schema as `pgcrond install` leaves it: the pgcrond tables granted to nobody (itest's
 * setup grants them to PUBLIC for the other suites), and a login role with no grant. */
static void hostile_db(struct itest_env *e, const char *tag)
{
	itest_env_setup(e, tag, DB);
	itest_exec(e->db, "REVOKE ALL ON ALL TABLES IN SCHEMA pgcrond FROM PUBLIC;"
	                  "REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgcrond FROM PUBLIC;"
	                  "CREATE TABLE IF NOT EXISTS public.ticks (job text, at timestamptz"
	                  " DEFAULT clock_timestamp());"
	                  "GRANT ALL ON public.ticks TO PUBLIC");
	itest_exec(e->db,
	           "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '" MALLORY
	           "') THEN CREATE ROLE " MALLORY " LOGIN; END IF; END $$");
}

static PGconn *mallory(const struct itest_env *e)
{
	char ci[1024];
	snprintf(ci, sizeof(ci), "%s user=" MALLORY, e->ci);
	PGconn *c = itest_connect(ci);
	/* she has no grant on the pgcrond tables */
	PGresult *r = PQexec(c, "SELECT count(*) FROM pgcrond.instance");
	ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR, "mallory may read pgcrond.instance");
	PQclear(r);
	return c;
}

/* NOTIFY CHANNEL, PAYLOAD from mallory, N times, every 100 ms. */
static void forge(PGconn *m, const char *channel, const char *payload, int n)
{
	const char *p[] = {channel, payload};
	for (int i = 0; i < n; i++) {
		PGresult *r =
		    PQexecParams(m, "SELECT pg_notify($1, $2)", 2, NULL, p, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "NOTIFY: %s",
		              PQerrorMessage(m));
		PQclear(r);
		itest_sleep(0.1);
	}
}

/* Locks: every advisory lock key the daemon held (seen in pg_locks), and the keys of its
 * instance name and its jobs as main computed them, taken or queued for by mallory, one
 * session per key, across a restart of the daemon. Its fires go on. */
START_TEST(held_locks_stop_no_fire)
{
	struct itest_env e;
	struct itest_inst a;
	hostile_db(&e, "hl-locks");
	const char *jobs =
	    "jobs = (\n"
	    "{ name = \"tick\"; database = \"app\"; schedule = \"* * * * * *\";"
	    "  command = \"INSERT INTO ticks (job) VALUES ('tick')\"; },\n"
	    "{ name = \"slow\"; database = \"app\"; schedule = \"* * * * * *\"; overlap = \"skip\";"
	    "  command = \"INSERT INTO ticks (job) VALUES ('slow'); SELECT pg_sleep(2.5)\"; }\n"
	    ");\n";
	itest_inst_init(&a, &e, "ha", jobs);
	itest_inst_up(&e, &a);
	ck_assert_msg(itest_env_wait(&e, 10, "SELECT count(*) >= 1 FROM ticks WHERE job = 'slow'"),
	              "slow did not run:\n%s", itest_read_file(a.log));

	/* the keys: what the daemon's sessions hold now, and the predictable ones of main */
	PGresult *keys = PQexec(
	    e.db, "SELECT DISTINCT k FROM ("
	          " SELECT (l.classid::bigint << 32) | l.objid::bigint AS k FROM pg_locks l"
	          "  JOIN pg_stat_activity s ON s.pid = l.pid"
	          "  WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
	          "   AND s.application_name LIKE 'pgcrond%'"
	          " UNION ALL SELECT hashtextextended(t, 0) FROM unnest(ARRAY["
	          "  'pgcrond instance ha', 'pgcrond job tick', 'pgcrond job slow']) AS t) x");
	ck_assert(PQresultStatus(keys) == PGRES_TUPLES_OK);
	int n = PQntuples(keys);
	ck_assert_int_ge(n, 3);
	PGconn **m = calloc((size_t)n, sizeof(*m));
	for (int i = 0; i < n; i++) {
		m[i] = mallory(&e);
		const char *p[] = {PQgetvalue(keys, i, 0)};
		/* granted at once if free, else queued: held when the daemon lets go */
		ck_assert(PQsendQueryParams(m[i], "SELECT pg_advisory_lock($1::bigint)", 1, NULL, p,
		                            NULL, NULL, 0));
	}
	PQclear(keys);

	ck_assert_int_eq(itest_inst_stop(&a, SIGTERM), 0);
	itest_sleep(0.5);
	long long before = itest_env_count(&e, "SELECT count(*) FROM ticks WHERE job = 'tick'");
	itest_assert_scalar(e.db,
	                    "SELECT count(*) >= 3 FROM pg_locks l JOIN pg_roles r ON true"
	                    " JOIN pg_stat_activity s ON s.pid = l.pid AND s.usesysid = r.oid"
	                    " WHERE l.locktype = 'advisory' AND l.granted"
	                    " AND r.rolname = '" MALLORY "'",
	                    "t");
	itest_inst_start(&a);
	ck_assert_msg(itest_inst_wait_started(&a, 15), "no start:\n%s", itest_read_file(a.log));
	itest_sleep(8);
	/* a loaded machine may have run fewer in those 8 s: the counts are waited for (a claim
	 * waiting on mallory's lock would keep them from ever coming) */
	itest_env_wait(&e, 20,
	               "SELECT (SELECT count(*) FROM ticks WHERE job = 'tick') >= %lld AND (SELECT"
	               " count(*) FROM pgcrond.job_run_details WHERE job_name = 'slow' AND"
	               " status = 'succeeded') >= 2",
	               before + 5);
	long long after = itest_env_count(&e, "SELECT count(*) FROM ticks WHERE job = 'tick'");
	long long busy = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE status = 'skipped'"
	                                     " AND return_message LIKE '%%another instance%%'");
	long long slow = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE job_name = 'slow' AND status = 'succeeded'");
	char *log = itest_read_file(a.log);
	/* the end of the log (Check's messages are bounded) */
	const char *tail = strlen(log) > 3000 ? log + strlen(log) - 3000 : log;
	/* what a user checks: the every-second job kept running, nothing was skipped for a
	 * run "on another instance" that does not exist */
	ck_assert_msg(after - before >= 5 && busy == 0 && slow >= 2,
	              "after mallory took the locks: %lld runs of tick in 8-28 s, %lld skipped as "
	              "running on another instance, %lld runs of slow:\n%s",
	              after - before, busy, slow, tail);
	/* a claim waiting on mallory's lock would skip every second's fire (16 or so in the
	 * 8 s, two jobs); one fire that comes while the start's catch-up run of its job is still
	 * being claimed (a few ms before the second), or a claim slower than a second on a
	 * loaded machine, is the overlap policy, not a wait: a few are allowed */
	int claiming = 0;
	for (const char *p = log; (p = strstr(p, "previous fire still being claimed")); p++)
		claiming++;
	ck_assert_msg(!strstr(log, "held by another session") && claiming <= 4,
	              "the daemon waited for mallory's lock (%d fire(s) skipped while a claim "
	              "was out):\n%s",
	              claiming, tail);
	free(log);
	itest_inst_stop(&a, SIGTERM);
	for (int i = 0; i < n; i++)
		PQfinish(m[i]);
	free(m);
	itest_inst_free(&a);
	itest_env_teardown(&e);
}
END_TEST

/* Notifications: "graph ok evil\nup-a" from mallory: a downstream of up-a and up-b runs only after
 * both ran (up-a never does). */
START_TEST(forged_graph_success_runs_nothing)
{
	struct itest_env e;
	struct itest_inst a;
	hostile_db(&e, "hl-graph");
	const char *jobs = "jobs = (\n"
	                   "{ name = \"up-a\"; database = \"app\"; schedule = \"0 0 1 1 *\"; "
	                   "command = \"SELECT 1\"; },\n"
	                   "{ name = \"up-b\"; database = \"app\"; schedule = \"*/2 * * * * *\";"
	                   "  command = \"SELECT 2\"; },\n"
	                   "{ name = \"down\"; database = \"app\"; after = [\"up-a\", \"up-b\"];"
	                   "  command = \"INSERT INTO ticks (job) VALUES ('down')\"; }\n"
	                   ");\n";
	itest_inst_init(&a, &e, "ga", jobs);
	itest_inst_up(&e, &a);
	PGconn *m = mallory(&e);
	forge(m, "pgcrond_cluster", "graph ok evil\nup-a", 10);
	forge(m, "pgcrond_cluster", "graph", 5);
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) >= 2 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'up-b' AND status = 'succeeded'"),
	              "up-b did not run:\n%s", itest_read_file(a.log));
	itest_sleep(1.5);
	long long down = itest_env_count(&e, "SELECT count(*) FROM ticks WHERE job = 'down'");
	ck_assert_msg(down == 0, "down ran %lld times, though up-a never ran:\n%s", down,
	              itest_read_file(a.log));
	PQfinish(m);
	itest_inst_stop(&a, SIGTERM);
	itest_inst_free(&a);
	itest_env_teardown(&e);
}
END_TEST

/* Notifications: 'ID finished succeeded: ok' from mallory while `pgcrond trigger --wait` waits
 * (from a host without the daemon's control socket): it reports the run's real outcome. */
START_TEST(forged_trigger_outcome_is_not_believed)
{
	struct itest_env e;
	struct itest_inst a, cli;
	hostile_db(&e, "hl-trigger");
	const char *jobs = "job = { name = \"boom\"; database = \"app\"; schedule = \"0 0 1 1 *\";"
	                   " command = \"DO $$ BEGIN PERFORM pg_sleep(2); RAISE EXCEPTION 'boom';"
	                   " END $$\"; };\n";
	itest_inst_init(&a, &e, "ta", jobs);
	itest_inst_init(&cli, &e, "tcli", jobs); /* its own state_dir: no control socket */
	itest_inst_up(&e, &a);
	long long next = itest_scalar_ll(e.db, "SELECT coalesce(max(id), 0) + 1"
	                                       " FROM pgcrond.trigger_request");
	pid_t child = fork();
	ck_assert(child >= 0);
	if (child == 0) {
		PGconn *m = mallory(&e);
		char payload[64];
		for (int i = 0; i < 40; i++) {
			for (long long id = next; id < next + 3; id++) {
				snprintf(payload, sizeof(payload), "%lld finished succeeded: ok",
				         id);
				PQclear(PQexecParams(
				    m, "SELECT pg_notify('pgcrond_trigger_outcome', $1)", 1, NULL,
				    (const char *const[]){payload}, NULL, NULL, 0));
			}
			itest_sleep(0.1);
		}
		PQfinish(m);
		_exit(0);
	}
	int status;
	char *out = itest_cli(&status, "trigger", "-c", cli.conf, "--wait", "--timeout", "30s",
	                      "boom", NULL);
	int cst;
	waitpid(child, &cst, 0);
	ck_assert_msg(status == 1 && strstr(out, "boom failed") && !strstr(out, "succeeded"),
	              "pgcrond trigger --wait believed mallory: exit %d:\n%s\n%s", status, out,
	              itest_read_file(a.log));
	free(out);
	itest_inst_stop(&a, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&cli);
	itest_env_teardown(&e);
}
END_TEST

/* Two instances NA and NB (database TAG) of a job that fails once, a few seconds after both
 * run, and retries after 60 s: returns once one of them has the retry pending
 * (pgcrond.pending_work). */
static void pair_with_pending_retry(struct itest_env *e, struct itest_inst *a, struct itest_inst *b,
                                    const char *tag, const char *na, const char *nb)
{
	hostile_db(e, tag);
	static const char job[] =
	    "job = { name = \"flaky\"; command = \"SELECT 1/0\"; database = \"app\";"
	    " schedule = \"%s\"; retries = 1; retry_on = \"any\"; retry_delay = \"60s\"; };\n";
	char s[32], jobs[512];
	snprintf(jobs, sizeof(jobs), job, "0 0 1 1 *");
	itest_inst_init(a, e, na, jobs);
	itest_inst_init(b, e, nb, jobs);
	itest_inst_up(e, a);
	itest_inst_up(e, b);
	/* the fire comes with a reload once both run (their starts on a loaded machine took
	 * longer than the seconds to a fire written before them) */
	struct itest_inst *both[] = {a, b};
	for (int ahead = 3; ahead;) {
		time_t at = itest_schedule_soon_at(s, sizeof(s), ahead);
		snprintf(jobs, sizeof(jobs), job, s);
		itest_inst_reload(a, jobs);
		itest_inst_reload(b, jobs);
		ahead = itest_insts_soon_again(both, 2, at, ahead);
	}
	ck_assert_msg(itest_env_wait(e, 20,
	                             "SELECT count(*) = 1 FROM pgcrond.pending_work"
	                             " WHERE job_name = 'flaky' AND kind = 'retry'"),
	              "no pending retry:\n%s\n%s", itest_read_file(a->log),
	              itest_read_file(b->log));
}

/* Notifications: 'stopped NAME BOOT' from mallory, naming a live instance with a retry pending: the
 * other instance takes nothing over (the retry runs where and when it is due). */
START_TEST(forged_stop_hands_nothing_over)
{
	struct itest_env e;
	struct itest_inst a, b;
	pair_with_pending_retry(&e, &a, &b, "hl-stop", "sa", "sb");
	/* the boot id mallory reads in pg_stat_activity.application_name */
	char *who = itest_scalar(e.db, "SELECT w.instance || ' ' || i.boot_id"
	                               " FROM pgcrond.pending_work w"
	                               " JOIN pgcrond.instance i ON i.name = w.instance");
	ck_assert(who);
	char payload[256];
	snprintf(payload, sizeof(payload), "stopped %s", who);
	PGconn *m = mallory(&e);
	forge(m, "pgcrond_cluster", payload, 5);
	forge(m, "pgcrond_cluster", "stopped", 5);
	itest_sleep(2);
	long long pending = itest_env_count(&e, "SELECT count(*) FROM pgcrond.pending_work"
	                                        " WHERE job_name = 'flaky' AND kind = 'retry'");
	long long retried = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                        " WHERE job_name = 'flaky' AND attempt = 2");
	ck_assert_msg(pending == 1 && retried == 0,
	              "after a forged stop of %s: %lld pending retries, %lld retry runs:\n%s\n%s",
	              who, pending, retried, itest_read_file(a.log), itest_read_file(b.log));
	free(who);
	PQfinish(m);
	itest_inst_stop(&a, SIGKILL);
	itest_inst_stop(&b, SIGKILL);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* Reads of the pgcrond tables (sequential and index scans) that the wake-ups of a NOTIFY
 * flood cause: pending_work (a stop's hand-over), job_pause (the paused set),
 * cancel_request (overlap = replace), graph_event (fan-in). */
#define FLOOD_TABLES 4
static const char *const flood_tables[FLOOD_TABLES] = {"pending_work", "job_pause",
                                                       "cancel_request", "graph_event"};

static void table_reads(struct itest_env *e, long long out[FLOOD_TABLES])
{
	for (int i = 0; i < FLOOD_TABLES; i++)
		out[i] = itest_env_count(e,
		                         "SELECT seq_scan + COALESCE(idx_scan, 0)"
		                         " FROM pg_stat_user_tables"
		                         " WHERE schemaname = 'pgcrond' AND relname = '%s'",
		                         flood_tables[i]);
}

/* A flood of wake-ups from mallory ('stopped', 'pause', 'graph' and 'cancel <name>', each in
 * its own transaction, thousands a second) costs each instance a read of each kind a second
 * (ten for 'graph'), not a read per notification; and a real clean stop right after it, in
 * the wake-ups' gap, is still handed over. */
START_TEST(notify_flood_costs_a_read_a_second)
{
	struct itest_env e;
	struct itest_inst a, b;
	pair_with_pending_retry(&e, &a, &b, "hl-flood", "fa", "fb");
	char *holder = itest_scalar(e.db, "SELECT instance FROM pgcrond.pending_work");
	ck_assert(holder);
	bool a_holds = strcmp(holder, a.name) == 0;
	struct itest_inst *h = a_holds ? &a : &b, *o = a_holds ? &b : &a;
	free(holder);
	long long before[FLOOD_TABLES], after[FLOOD_TABLES];
	table_reads(&e, before);

	PGconn *m = mallory(&e);
	char flood[512];
	const int n = 4000;
	snprintf(flood, sizeof(flood),
	         "DO $$ BEGIN FOR i IN 1..%d LOOP"
	         " PERFORM pg_notify('pgcrond_cluster', 'stopped'),"
	         "  pg_notify('pgcrond_cluster', 'pause'), pg_notify('pgcrond_cluster', 'graph'),"
	         "  pg_notify('pgcrond_cluster', 'cancel %s');"
	         " COMMIT; END LOOP; END $$",
	         n, o->name);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	PGresult *r = PQexec(m, flood);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "the flood: %s", PQerrorMessage(m));
	PQclear(r);
	PQfinish(m);
	double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

	/* a real stop, its NOTIFY in the gap the flood's last wake-ups left */
	ck_assert_int_eq(itest_inst_stop(h, SIGTERM), 0);
	ck_assert_msg(itest_wait_log(o->log, "taking over a retry run", 10),
	              "the stopped instance's retry was not taken over:\n%s", itest_tail(o->log));
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.pending_work WHERE instance IN"
	                    " ('fa', 'fb') AND job_name = 'flaky' AND kind = 'retry'"
	                    " AND instance <> (SELECT name FROM pgcrond.instance"
	                    "  WHERE stopped_at IS NULL AND name IN ('fa', 'fb'))",
	                    "0");
	/* a backend reports its counts at most every second, and within 10 s when idle */
	itest_sleep(11);
	table_reads(&e, after);
	fprintf(stderr,
	        "it_hostile_locks flood: %d notifications of each kind in %.1f s; reads by both"
	        " instances: pending_work %lld, job_pause %lld, cancel_request %lld,"
	        " graph_event %lld\n",
	        n, took, after[0] - before[0], after[1] - before[1], after[2] - before[2],
	        after[3] - before[3]);
	for (int i = 0; i < FLOOD_TABLES; i++)
		ck_assert_msg(after[i] - before[i] < n / 10,
		              "%d notifications of each kind made %lld reads of pgcrond.%s:\n%s", n,
		              after[i] - before[i], flood_tables[i], itest_tail(o->log));
	itest_inst_stop(o, SIGKILL);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hostile_locks");
	const struct {
		const char *name;
		const TTest *test;
	} cases[] = {
	    {"locks", held_locks_stop_no_fire},
	    {"graph", forged_graph_success_runs_nothing},
	    {"trigger", forged_trigger_outcome_is_not_believed},
	    {"stopped", forged_stop_hands_nothing_over},
	    {"flood", notify_flood_costs_a_read_a_second},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_set_timeout(tc, 120);
		tcase_add_test(tc, cases[i].test);
		suite_add_tcase(s, tc);
	}
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
