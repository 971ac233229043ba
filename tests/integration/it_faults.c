/* Faults that land while a run is in flight (issue 24; docs/faults.md): every execution is
 * counted in a table (the job INSERTs pg_backend_pid() in the run's own transaction) and
 * matched to the history. Run one case with CK_RUN_CASE=<name>. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

#define DB "pgcrond_it_faults"

static void up(struct itest_env *e, struct itest_inst *in)
{
	itest_inst_start(in);
	ck_assert_msg(
	    itest_env_wait(e, 15,
	                   "SELECT count(*) = 1 FROM pgcrond.instance WHERE name = '%s'"
	                   " AND stopped_at IS NULL AND last_seen > now() - '10 s'::interval",
	                   in->name),
	    "instance %s did not come up:\n%s", in->name, itest_read_file(in->log));
	ck_assert_msg(itest_wait_log(in->log, "started:", 15), "no start:\n%s",
	              itest_read_file(in->log));
}

/* An instance's run of 40 s is in flight when SIG lands on it (SIGSTOP: found dead after 20 s
 * of silence; SIGKILL: its session is gone at once, but the run's backend, busy in its
 * statement, would commit at its end): the survivor ends the run's backend (its transaction
 * rolls back) before it retries, so the job's work is done once, by the retry, and the
 * history says so. */
static void in_flight_run_is_fenced_before_retry(int sig)
{
	struct itest_env e;
	struct itest_inst a, b;
	itest_env_setup(&e, sig == SIGSTOP ? "ft-stop" : "ft-kill", DB);
	itest_exec(e.db, "CREATE TABLE public.execs (pid integer, at timestamptz DEFAULT now());"
	                 "GRANT ALL ON public.execs TO PUBLIC");
	/* once an hour: at the minute and second 8 s from now */
	time_t at = time(NULL) + 8;
	struct tm tm;
	gmtime_r(&at, &tm);
	char jobs[512];
	snprintf(
	    jobs, sizeof(jobs),
	    "job = { name = \"long\"; database = \"app\"; schedule = \"%d %d * * * *\";"
	    " command = \"INSERT INTO execs (pid) VALUES (pg_backend_pid());"
	    " SELECT pg_sleep(40)\"; retries = 1; retry_on = \"any\"; retry_delay = \"1s\"; };\n",
	    tm.tm_sec, tm.tm_min);
	itest_inst_init(&a, &e, "fa", jobs);
	itest_inst_init(&b, &e, "fb", jobs);
	up(&e, &a);
	up(&e, &b);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'long' AND status = 'running'"
	                             " AND job_pid IS NOT NULL"),
	              "no running row with its backend:\n%s\n%s", itest_read_file(a.log),
	              itest_read_file(b.log));
	char *runner = itest_scalar(e.db, "SELECT instance FROM pgcrond.job_run_details"
	                                  " WHERE job_name = 'long' AND status = 'running'");
	struct itest_inst *x = strcmp(runner, "fa") == 0 ? &a : &b, *y = x == &a ? &b : &a;
	ck_assert_int_eq(kill(x->pid, sig), 0);
	/* found dead (after 20 s of silence for SIGSTOP), its run retried at once (40 s) */
	bool done = itest_env_wait(&e, 100,
	                           "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                           " WHERE job_name = 'long' AND attempt = 2"
	                           " AND status IN ('succeeded', 'failed')");
	/* and past the time the first attempt's transaction would have committed */
	itest_env_wait(&e, 30,
	               "SELECT now() > (SELECT start_time + interval '42 seconds'"
	               " FROM pgcrond.job_run_details WHERE job_name = 'long' AND attempt = 1)");
	char *runs = itest_scalar(
	    e.db, "SELECT string_agg(format('attempt %s on %s: %s %s (backend %s)', attempt,"
	          " instance, status, return_message, job_pid), E'\\n' ORDER BY attempt)"
	          " FROM pgcrond.job_run_details WHERE job_name = 'long'");
	long long execs = itest_env_count(&e, "SELECT count(*) FROM execs");
	long long unrecorded = itest_env_count(
	    &e, "SELECT count(*) FROM execs x WHERE NOT EXISTS (SELECT FROM"
	        " pgcrond.job_run_details d WHERE d.job_pid = x.pid AND d.status = 'succeeded')");
	ck_assert_msg(done && execs == 1 && unrecorded == 0,
	              "the job's work was committed %lld times, %lld of them not recorded as a "
	              "success:\n%s\n%s",
	              execs, unrecorded, runs ? runs : "", itest_read_file(y->log));
	itest_assert_scalar(e.db,
	                    "SELECT return_message LIKE 'instance % died%' FROM"
	                    " pgcrond.job_run_details WHERE job_name = 'long' AND attempt = 1",
	                    "t");
	free(runs);
	free(runner);
	itest_inst_stop(x, SIGKILL);
	itest_inst_stop(y, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}

START_TEST(sigstop_in_flight)
{
	in_flight_run_is_fenced_before_retry(SIGSTOP);
}
END_TEST

START_TEST(sigkill_in_flight)
{
	in_flight_run_is_fenced_before_retry(SIGKILL);
}
END_TEST

/* The database is the clock: `pgcrond status` shows this host's offset from the history
 * database's clock (measured at each heartbeat; claims stop beyond CLUSTER_MAX_OFFSET_MS). */
START_TEST(status_shows_the_clock_offset)
{
	struct itest_env e;
	struct itest_inst a;
	itest_env_setup(&e, "ft-clock", DB);
	itest_inst_init(&a, &e, "ca",
	                "job = { name = \"t\"; database = \"app\"; schedule = \"* * * * * *\";"
	                " command = \"SELECT 1\"; };\n");
	up(&e, &a);
	int status = -1;
	char *out = NULL;
	for (int i = 0; i < 40; i++) { /* the first heartbeat's answer */
		free(out);
		out = itest_cli(&status, "status", "-c", a.conf, NULL);
		if (strstr(out, "clock offset"))
			break;
		itest_sleep(0.25);
	}
	const char *line = strstr(out, "cluster: clock offset ");
	long long ms = line ? atoll(line + strlen("cluster: clock offset ")) : 99999;
	ck_assert_msg(status == 0 && line && strstr(line, " ms from the history database's") &&
	                  llabs(ms) < 1000,
	              "pgcrond status: %d\n%s", status, out);
	/* and the fires went on: a host in step claims */
	ck_assert(itest_env_wait(&e, 10,
	                         "SELECT count(*) >= 2 FROM pgcrond.job_run_details"
	                         " WHERE job_name = 't' AND status = 'succeeded'"));
	free(out);
	itest_inst_stop(&a, SIGTERM);
	itest_inst_free(&a);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("faults");
	const struct {
		const char *name;
		const TTest *test;
	} cases[] = {
	    {"sigstop", sigstop_in_flight},
	    {"sigkill", sigkill_in_flight},
	    {"clock", status_shows_the_clock_offset},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_set_timeout(tc, 240);
		tcase_add_test(tc, cases[i].test);
		suite_add_tcase(s, tc);
	}
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
