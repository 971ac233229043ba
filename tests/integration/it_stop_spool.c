/* A stop does not wait for the history database to catch up (issue 28, item 3: at 15,000
 * runs a second a stop took 30 s, most of it writing the records still pending). Forty jobs
 * run every second while another session holds a lock on the history table, so every record
 * stays pending; SIGTERM must end the daemon within a few seconds, the records not written
 * wait in the spill file (the daemon says how many), and the next start writes them all:
 * one succeeded row per statement the jobs ran, none left running. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define JOBS 40

/* The end of a log, for a failure message (Check cuts long ones off). */
static const char *tail(const char *log)
{
	size_t n = strlen(log);
	return n > 2000 ? log + n - 2000 : log;
}

/* The job file: JOBS jobs on SCHEDULE, each recording its run in public.ticks. */
static void write_jobs(const struct itest_env *e, const char *schedule)
{
	char jobs[8192] = "jobs = (\n";
	for (int i = 0; i < JOBS; i++) {
		size_t used = strlen(jobs);
		snprintf(
		    jobs + used, sizeof(jobs) - used,
		    "{ name = \"j%d\"; database = \"app\"; schedule = \"%s\"; catchup = \"skip\";"
		    "  command = \"INSERT INTO public.ticks VALUES ('j%d', clock_timestamp())\"; "
		    "}%s\n",
		    i, schedule, i, i + 1 < JOBS ? "," : "");
	}
	itest_env_job(e, "10-jobs.conf", "%s);\n", jobs);
}

START_TEST(stop_spools_pending_history_fast)
{
	struct itest_env e;

	itest_env_setup(&e, "stop-spool", "it_stop_spool");
	itest_env_main(&e, "shutdown_grace = \"5s\";\n");
	itest_exec(e.db, "CREATE TABLE public.ticks (job text, at timestamptz);"
	                 "GRANT ALL ON public.ticks TO PUBLIC");
	write_jobs(&e, "* * * * * *");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) >= %d FROM pgcrond.job_run_details"
	                             " WHERE status = 'succeeded'",
	                             JOBS),
	              "the runs were not recorded:\n%s", tail(itest_read_file(e.log)));

	/* the history writer now waits for the lock: every record stays pending */
	PGconn *locker = itest_connect(e.ci);
	itest_exec(locker, "BEGIN; LOCK TABLE pgcrond.job_run_details IN SHARE MODE");
	long long before = itest_env_count(&e, "SELECT count(*) FROM public.ticks");
	ck_assert_msg(
	    itest_env_wait(&e, 20, "SELECT count(*) >= %lld FROM public.ticks", before + 3 * JOBS),
	    "the jobs stopped running while the history was locked:\n%s",
	    tail(itest_read_file(e.log)));

	double t0 = itest_now();
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	double took = itest_now() - t0;
	char *log = itest_read_file(e.log);
	ck_assert_msg(took < 4.0,
	              "the stop took %.1f s with the history behind (at most 4 s: what is not "
	              "written goes to the spill file):\n%s",
	              took, tail(log));
	ck_assert_msg(strstr(log, "run records not yet written wait in"),
	              "the stop did not say how many records wait in the spill file:\n%s",
	              tail(log));
	free(log);
	PQfinish(locker); /* the lock goes with its session */

	/* the next start writes every record the stop left: a succeeded row per statement the
	 * jobs ran (no job fires any more), none left running */
	long long ticks = itest_env_count(&e, "SELECT count(*) FROM public.ticks");
	write_jobs(&e, "0 0 1 1 *");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) = %lld FROM pgcrond.job_run_details"
	                             " WHERE status = 'succeeded'",
	                             ticks),
	              "%lld statements ran but %lld succeeded rows were written after the "
	              "restart:\n%s",
	              ticks,
	              itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                  " WHERE status = 'succeeded'"),
	              tail(itest_read_file(e.log)));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE status IN ('starting', 'running')"),
	                 0);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stop_spool");
	TCase *tc = tcase_create("stop_spool");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, stop_spools_pending_history_fast);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
