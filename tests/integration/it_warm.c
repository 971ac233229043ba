/* The pool is ready before a known burst (issue 28, item 1): the first minute's runs found
 * no connection and opened them at their instant. Three per-minute jobs on a database of
 * their own (pool 4): within seconds of the start, long before any of them is due, the
 * daemon holds three connections to it. At log level debug every scheduled run logs its
 * stages (docs/benchmarks.md, "Per-minute bursts"), which bench/side reads. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "itest.h"

/* The end of a log, for a failure message (Check cuts long ones off). */
static const char *tail(const char *log)
{
	size_t n = strlen(log);
	return n > 2000 ? log + n - 2000 : log;
}

START_TEST(connections_open_at_start_up)
{
	struct itest_env e;

	itest_env_setup(&e, "warm", "it_warm");
	/* the minute jobs have a database of their own, which nothing else of the daemon uses */
	char *jobs_ci = itest_fresh_db("it_warm_jobs");
	itest_write_file(e.conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "log_level = \"debug\";\n"
	                 "databases = { app = { conninfo = \"%s\"; pool = 4; };\n"
	                 "  jobs = { conninfo = \"%s\"; pool = 4; }; };\n"
	                 "history = { database = \"app\"; };\n",
	                 e.dir, e.dir, e.ci, jobs_ci);
	itest_env_job(&e, "10-jobs.conf",
	              "jobs = (\n"
	              "{ name = \"m1\"; database = \"jobs\"; schedule = \"* * * * *\";"
	              "  command = \"SELECT 1\"; },\n"
	              "{ name = \"m2\"; database = \"jobs\"; schedule = \"* * * * *\";"
	              "  command = \"SELECT 2\"; },\n"
	              "{ name = \"m3\"; database = \"jobs\"; schedule = \"* * * * *\";"
	              "  command = \"SELECT 3\"; },\n"
	              "{ name = \"s1\"; database = \"app\"; schedule = \"* * * * * *\";"
	              "  command = \"SELECT 1\"; });\n");
	/* away from a minute's start, so that the connections counted are the start-up's */
	double sec = (double)(time(NULL) % 60);
	if (sec > 45)
		itest_sleep(62 - sec);
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 3 FROM pg_stat_activity"
	                             " WHERE datname = 'it_warm_jobs'"),
	              "the daemon did not open the connections of the first minute's runs at "
	              "start-up:\n%s",
	              tail(itest_read_file(e.log)));
	char *early = itest_read_file(e.log);
	ck_assert_msg(!strstr(early, "m1: started"),
	              "the minute's runs started before the connections were counted");
	free(early);
	free(jobs_ci);
	/* the every-second job's runs log their stages */
	ck_assert_msg(itest_wait_log(e.log, "stages: fired=", 10),
	              "no run logged its stages at log level debug:\n%s", itest_read_file(e.log));
	char *log = itest_read_file(e.log);
	const char *line = strstr(log, "stages: fired=");
	double fired, started, connected, done, connect;
	int carried;
	ck_assert_msg(sscanf(line,
	                     "stages: fired=%lf started=%lf connected=%lf done=%lf connect=%lf "
	                     "carried=%d",
	                     &fired, &started, &connected, &done, &connect, &carried) == 6,
	              "unreadable stages line: %.200s", line);
	ck_assert(fired <= started && started <= connected && connected <= done);
	free(log);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("warm");
	TCase *tc = tcase_create("warm");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, connections_open_at_start_up);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
