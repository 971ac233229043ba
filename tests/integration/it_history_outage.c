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

static pid_t daemon_pid;
static char second_dir[1024];

static void cleanup(void)
{
	if (daemon_pid > 0)
		kill(daemon_pid, SIGKILL);
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
	atexit(cleanup);
	char *dir = itest_tmpdir("hist-outage");
	char conf[1024], log[1024], path[1024], cmd[1400];

	/* the second server: the history database */
	snprintf(second_dir, sizeof(second_dir), "%s/pg2", dir);
	snprintf(cmd, sizeof(cmd), "%s start --dir %s --owner %d > %s/pg2.conninfo", SANDBOX,
		 second_dir, (int)getpid(), dir);
	ck_assert_msg(system(cmd) == 0, "cannot start a second sandbox");
	snprintf(path, sizeof(path), "%s/pg2.conninfo", dir);
	char *hist_ci = itest_read_file(path);
	hist_ci[strcspn(hist_ci, "\n")] = '\0';

	char *app_ci = itest_fresh_db("it_hist_outage");
	PGconn *app = itest_connect(app_ci);
	itest_exec(app, "CREATE TABLE ticks (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())");

	snprintf(path, sizeof(path), "%s/conf.d", dir);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	snprintf(conf, sizeof(conf), "%s/pgcrond.conf", dir);
	snprintf(log, sizeof(log), "%s/daemon.log", dir);
	itest_write_file(conf,
			 "plugin_dir = \"%s\";\n"
			 "state_dir = \"%s/state\";\n"
			 "databases = {\n"
			 "  app = { conninfo = \"%s\"; };\n"
			 "  hist = { conninfo = \"%s\"; };\n"
			 "};\n"
			 "history = { database = \"hist\"; };\n",
			 dir, dir, app_ci, hist_ci);
	snprintf(path, sizeof(path), "%s/conf.d/10-tick.conf", dir);
	itest_write_file(path, "job = { name = \"tick\"; database = \"app\"; schedule = \"* * * * * *\";\n"
			       "        command = \"INSERT INTO ticks DEFAULT VALUES\"; };\n");
	int status;
	char *out = itest_cli(&status, "install", "-c", conf, NULL);
	ck_assert_msg(status == 0, "install: %s", out);
	free(out);

	PGconn *hist = itest_connect(hist_ci);
	daemon_pid = itest_daemon_start(conf, log);
	ck_assert_msg(itest_wait_sql(hist, "SELECT count(*) >= 3 FROM pgcrond.job_run_details "
					   "WHERE job_name = 'tick' AND status = 'succeeded'", 15),
		      "no runs recorded:\n%s", itest_read_file(log));
	PQfinish(hist);

	/* 20 s without the history database; the job keeps running on app */
	long long ticks_before = itest_scalar_ll(app, "SELECT count(*) FROM ticks");
	sandbox_cmd("pause");
	itest_sleep(20);
	long long during = itest_scalar_ll(app, "SELECT count(*) FROM ticks") - ticks_before;
	ck_assert_msg(during >= 15, "the job should keep running: %lld ticks in 20 s", during);
	snprintf(path, sizeof(path), "%s/state/history.spool", dir);
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
	ck_assert_msg(itest_wait_sql(hist, sql, 60), "backlog not written:\n%s", itest_read_file(log));
	ck_assert_int_eq(itest_daemon_stop(daemon_pid, SIGTERM, 30), 0);
	daemon_pid = 0;

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
	PQfinish(app);
	free(app_ci);
	free(hist_ci);
	free(dir);
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
