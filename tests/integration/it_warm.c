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

/* E's configuration: the history on "app", the jobs' database "jobs" at JOBS_CI (pool 4, and
 * JOBS_KEYS), MAIN_KEYS among the daemon's settings. */
static void warm_conf(const struct itest_env *e, const char *jobs_ci, const char *main_keys,
                      const char *jobs_keys)
{
	itest_write_file(e->conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "%s"
	                 "databases = { app = { conninfo = \"%s\"; pool = 4; };\n"
	                 "  jobs = { conninfo = \"%s\"; pool = 4;%s }; };\n"
	                 "history = { database = \"app\"; };\n",
	                 e->dir, e->dir, main_keys, e->ci, jobs_ci, jobs_keys);
}

START_TEST(connections_open_at_start_up)
{
	struct itest_env e;

	itest_env_setup(&e, "warm", "it_warm");
	/* the minute jobs have a database of their own, which nothing else of the daemon uses */
	char *jobs_ci = itest_fresh_db("it_warm_jobs");
	warm_conf(&e, jobs_ci, "log_level = \"debug\";\n", "");
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

/* A database whose next fire is further away than its idle_timeout keeps no connection
 * (issue 64, item 3: a database per tenant held one warm connection each for good): with
 * idle_timeout 2 s and a job every 20 s, pgcrond holds no session of the job's database between
 * its fires, and each fire's run finds a connection opened ahead of its instant, not at it. */
START_TEST(far_fires_keep_no_connection)
{
	struct itest_env e;

	itest_env_setup(&e, "warm_far", "it_warm_far");
	char *jobs_ci = itest_fresh_db("it_warm_far_jobs");
	PGconn *jobs = itest_connect(jobs_ci);
	itest_exec(jobs, "CREATE TABLE far (backend_start timestamptz, at timestamptz);"
	                 " GRANT ALL ON far TO PUBLIC");
	/* idle connections are looked at every 2 s (half the connection check) */
	warm_conf(&e, jobs_ci, "connection_check = \"4s\";\n", " idle_timeout = \"2s\";");
	/* each run records when its backend started */
	itest_env_job(
	    &e, "10-far.conf",
	    "job = { name = \"far\"; database = \"jobs\"; schedule = \"*/20 * * * * *\";\n"
	    "  command = \"INSERT INTO far SELECT backend_start, statement_timestamp()"
	    " FROM pg_stat_activity WHERE pid = pg_backend_pid()\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(itest_wait_sql(jobs, "SELECT count(*) >= 1 FROM far", 40),
	              "the job did not run:\n%s", tail(itest_read_file(e.log)));
	/* its connection, unused for 2 s, is closed: the next fire is 20 s away */
	ck_assert_msg(itest_wait_sql(e.db,
	                             "SELECT count(*) = 0 FROM pg_stat_activity"
	                             " WHERE datname = 'it_warm_far_jobs'"
	                             " AND application_name LIKE 'pgcrond%'",
	                             12),
	              "pgcrond kept a connection of a database whose next fire is further away "
	              "than its idle_timeout:\n%s",
	              tail(itest_read_file(e.log)));
	long long ran = itest_scalar_ll(jobs, "SELECT count(*) FROM far");
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) > %lld FROM far", ran);
	ck_assert_msg(itest_wait_sql(jobs, sql, 25), "the job did not run again:\n%s",
	              tail(itest_read_file(e.log)));
	/* the next run's connection is a new one, opened before its instant (the warm-up's) */
	itest_assert_scalar(
	    jobs,
	    "SELECT backend_start > lag(at) OVER w"
	    " AND backend_start < to_timestamp(floor(extract(epoch FROM at) / 20) * 20)"
	    " FROM far WINDOW w AS (ORDER BY at) ORDER BY at DESC LIMIT 1",
	    "t");
	PQfinish(jobs);
	free(jobs_ci);
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
	tcase_add_test(tc, far_fires_keep_no_connection);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
