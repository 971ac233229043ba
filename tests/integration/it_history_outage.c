/* The history database goes away for 20 s while jobs keep running on another server: no run
 * is lost. The runs of those 20 s wait in memory and in the spill file under state_dir and
 * are written, once each, when the database is back. The history database lives in a second
 * sandbox server of this test's own, so the jobs' own database stays up. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"

#define SANDBOX TEST_SOURCE_DIR "/../scripts/pg-sandbox"

static char second_dir[1024];

static void stop_second_sandbox(void)
{
	if (second_dir[0]) {
		char cmd[1200];
		snprintf(cmd, sizeof(cmd), "%s stop --dir %s >/dev/null 2>&1", SANDBOX, second_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not stop the second sandbox at %s\n", second_dir);
	}
}

static void sandbox_cmd(const char *what)
{
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "%s %s --dir %s", SANDBOX, what, second_dir);
	ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
}

START_TEST(history_outage_loses_nothing)
{
	atexit(stop_second_sandbox);
	struct itest_env e;
	char path[1024], cmd[1400];
	itest_env_init(&e, "hist-outage", "it_hist_outage");

	/* the second server: the history database */
	snprintf(second_dir, sizeof(second_dir), "%s/pg2", e.dir);
	snprintf(cmd, sizeof(cmd), "%s start --dir %s --owner %d > %s/pg2.conninfo", SANDBOX,
	         second_dir, (int)getpid(), e.dir);
	ck_assert_msg(system(cmd) == 0, "cannot start a second sandbox");
	snprintf(path, sizeof(path), "%s/pg2.conninfo", e.dir);
	char *hist_ci = itest_read_file(path);
	hist_ci[strcspn(hist_ci, "\n")] = '\0';

	PGconn *app = e.db;
	itest_exec(app, "CREATE TABLE ticks (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())");

	itest_write_file(e.conf,
	                 "plugin_dir = \"%s\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = {\n"
	                 "  app = { conninfo = \"%s\"; };\n"
	                 "  hist = { conninfo = \"%s\"; };\n"
	                 "};\n"
	                 "history = { database = \"hist\"; };\n",
	                 e.dir, e.dir, e.ci, hist_ci);
	itest_env_job(&e, "10-tick.conf",
	              "job = { name = \"tick\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	              "        command = \"INSERT INTO ticks DEFAULT VALUES\"; };\n");
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install: %s", out);
	free(out);

	PGconn *hist = itest_connect(hist_ci);
	itest_env_start(&e);
	ck_assert_msg(itest_wait_sql(hist,
	                             "SELECT count(*) >= 3 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND status = 'succeeded'",
	                             15),
	              "no runs recorded:\n%s", itest_read_file(e.log));
	PQfinish(hist);

	/* 20 s without the history database; the job keeps running on app */
	long long ticks_before = itest_scalar_ll(app, "SELECT count(*) FROM ticks");
	sandbox_cmd("pause");
	itest_sleep(20);
	long long during = itest_scalar_ll(app, "SELECT count(*) FROM ticks") - ticks_before;
	ck_assert_msg(during >= 15, "the job should keep running: %lld ticks in 20 s", during);
	snprintf(path, sizeof(path), "%s/state/history.spool", e.dir);
	struct stat st;
	ck_assert_msg(stat(path, &st) == 0 && st.st_size > 0, "nothing spilled to %s", path);
	sandbox_cmd("resume");

	/* the reconnect backoff is at most 30 s; then the backlog is written */
	hist = itest_connect(hist_ci);
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) >= %lld FROM pgcrond.job_run_details WHERE job_name = 'tick' "
		 "AND status = 'succeeded'",
		 ticks_before + during);
	ck_assert_msg(itest_wait_sql(hist, sql, 60), "backlog not written:\n%s",
	              itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);

	/* every run is there exactly once: one succeeded row per tick, no duplicate fires */
	long long ticks = itest_scalar_ll(app, "SELECT count(*) FROM ticks");
	long long rows = itest_scalar_ll(hist, "SELECT count(*) FROM pgcrond.job_run_details "
					      "WHERE job_name = 'tick' AND status = 'succeeded'");
	long long fires = itest_scalar_ll(hist, "SELECT count(DISTINCT scheduled_time) FROM "
					       "pgcrond.job_run_details WHERE job_name = 'tick' "
					       "AND status = 'succeeded'");
	ck_assert_int_eq(rows, ticks);
	ck_assert_int_eq(fires, ticks);
	ck_assert_int_eq(itest_scalar_ll(hist, "SELECT count(*) FROM pgcrond.job_run_details "
					      "WHERE status = 'running'"),
			 0);
	PQfinish(hist);
	free(hist_ci);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("history_outage");
	TCase *tc = tcase_create("history_outage");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, history_outage_loses_nothing);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
