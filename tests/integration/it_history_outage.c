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

/* 15 ticks since BEFORE on APP and a spill file that is not empty. */
struct outage_wait {
	PGconn *app;
	long long before;
	const char *spool;
};

static bool outage_seen(void *arg)
{
	struct outage_wait *w = arg;
	struct stat st;
	return itest_scalar_ll(w->app, "SELECT count(*) FROM ticks") - w->before >= 15 &&
	       stat(w->spool, &st) == 0 && st.st_size > 0;
}

START_TEST(history_outage_loses_nothing)
{
	struct itest_env e;
	char path[1024];
	itest_env_init(&e, "hist-outage", "it_hist_outage");

	/* the second server: the history database */
	char *hist_ci = itest_sandbox2_start(e.dir);

	PGconn *app = e.db;
	itest_exec(app, "CREATE TABLE ticks (id serial PRIMARY KEY, at timestamptz NOT NULL "
	                "DEFAULT clock_timestamp())");

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
	itest_sandbox2("pause");
	/* until 15 ticks and a spill, within the 20 s the test gives them */
	snprintf(path, sizeof(path), "%s/state/history.spool", e.dir);
	struct outage_wait w = {app, ticks_before, path};
	itest_wait_until(outage_seen, &w, 20);
	long long during = itest_scalar_ll(app, "SELECT count(*) FROM ticks") - ticks_before;
	ck_assert_msg(during >= 15, "the job should keep running: %lld ticks in 20 s", during);
	snprintf(path, sizeof(path), "%s/state/history.spool", e.dir);
	struct stat st;
	ck_assert_msg(stat(path, &st) == 0 && st.st_size > 0, "nothing spilled to %s", path);
	itest_sandbox2("resume");
	/* the writer tries again at least every 4 s: it is back within 5 s (1 s of slack for a
	 * loaded machine) */
	ck_assert_msg(itest_wait_log(e.log, "is reachable again", 6),
	              "the history did not reconnect within 5 s of its database's return:\n%s",
	              itest_read_file(e.log));

	/* then the backlog is written */
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
