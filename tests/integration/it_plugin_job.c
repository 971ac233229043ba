/* A plugin job end to end: `pgcrond install` creates the plugin's view (unpopulated) and the
 * refresh guard, the daemon gives the view its first plain refresh and then refreshes it
 * CONCURRENTLY every second, and a view whose unique index is gone is refused with a clear
 * message instead of ever being refreshed in a blocking way. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

/* The daemon environment with the built plugin PLUGIN, the job file 10-JOB.conf holding
 * JOB_CONF, and the database set up by `pgcrond install` (run by the caller). */
static void plugin_env(struct itest_env *e, const char *tag, const char *dbname, const char *plugin,
                       const char *job, const char *job_conf)
{
	char path[512], file[128];

	itest_env_init(e, tag, dbname);
	snprintf(path, sizeof(path), "%s/%s.so", PLUGIN_BUILD_DIR, plugin);
	itest_env_plugin(e, path, plugin);
	snprintf(file, sizeof(file), "10-%s.conf", job);
	itest_env_job(e, file, "%s", job_conf);
}

static void install(const struct itest_env *e)
{
	int status;
	char *out = itest_cli(&status, "install", "-c", e->conf, NULL);
	ck_assert_msg(status == 0, "install: %s", out);
	free(out);
}

START_TEST(example_plugin_refreshes_concurrently_and_guards)
{
	struct itest_env e;
	plugin_env(&e, "plugin-job", "it_plugin_job", "example", "example",
	           "job = {\n"
	           "\tname = \"refresh-example\";\n"
	           "\tplugin = \"example\";\n"
	           "\tschedule = \"* * * * * *\";\n"
	           "\tanalyze = true;\n"
	           "};\n");
	install(&e);

	PGconn *c = e.db;
	itest_assert_scalar(c,
	                    "SELECT relispopulated::text FROM pg_class "
	                    "WHERE oid = 'public.pgcrond_example_mv'::regclass",
	                    "false");
	itest_exec(c, "INSERT INTO pgcrond_example_events(kind) SELECT 'k' || (g % 5) "
	              "FROM generate_series(1, 100) g");

	itest_env_start(&e);
	ck_assert_msg(itest_wait_sql(c,
	                             "SELECT count(*) >= 3 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'refresh-example' AND status = 'succeeded'",
	                             15),
	              "no successful runs:\n%s", itest_read_file(e.log));
	/* populated by the guard's first plain refresh, then kept fresh concurrently */
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT sum(events) FROM pgcrond_example_mv"), 100);
	itest_exec(c, "INSERT INTO pgcrond_example_events(kind) VALUES ('new')");
	ck_assert(itest_wait_sql(
	    c, "SELECT EXISTS (SELECT 1 FROM pgcrond_example_mv WHERE kind = 'new')", 10));
	itest_assert_scalar(c,
	                    "SELECT command FROM pgcrond.job_run_details "
	                    "WHERE job_name = 'refresh-example' AND status <> 'skipped'"
	                    " ORDER BY runid DESC LIMIT 1",
	                    "plugin example: REFRESH MATERIALIZED VIEW CONCURRENTLY "
	                    "\"public\".\"pgcrond_example_mv\"");

	/* without its unique index the view is refused, never refreshed blocking */
	itest_exec(c, "DROP INDEX pgcrond_example_mv_kind");
	long long before =
	    itest_scalar_ll(c, "SELECT coalesce(max(runid), 0) FROM pgcrond.job_run_details");
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) >= 1 FROM pgcrond.job_run_details WHERE runid > %lld "
	         "AND status = 'failed' AND end_time IS NOT NULL",
	         before);
	ck_assert_msg(itest_wait_sql(c, sql, 10), "no failed run:\n%s", itest_read_file(e.log));
	snprintf(sql, sizeof(sql),
	         "SELECT return_message || ' / ' || sqlstate FROM pgcrond.job_run_details "
	         "WHERE runid > %lld AND status = 'failed' ORDER BY runid LIMIT 1",
	         before);
	itest_assert_scalar(
	    c, sql,
	    "materialized view public.pgcrond_example_mv has no usable unique index, so it "
	    "cannot be refreshed CONCURRENTLY HINT: create a unique index on plain columns "
	    "without a WHERE clause (pgcrond install creates the plugin's own); pgcrond "
	    "never falls back to a blocking refresh / 55000");

	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A view defined in a job file (sql_view): `pgcrond install` creates it and its unique
 * index from the job's settings, the daemon's guard gives it its first plain refresh, and it
 * is then refreshed CONCURRENTLY on schedule. */
START_TEST(sql_view_job_through_the_daemon)
{
	struct itest_env e;
	plugin_env(
	    &e, "sql-view-job", "it_sql_view_job", "sql_view", "orders",
	    "job = {\n"
	    "\tname = \"refresh-order-totals\";\n"
	    "\tplugin = \"sql_view\";\n"
	    "\tschedule = \"* * * * * *\";\n"
	    "\tview = \"public.mv_order_totals\";\n"
	    "\tquery = \"SELECT customer, count(*) AS orders FROM orders GROUP BY customer\";\n"
	    "\tunique_key = \"customer\";\n"
	    "};\n");
	PGconn *c = e.db;
	itest_exec(
	    c, "CREATE TABLE orders (id serial, customer text NOT NULL);"
	       "INSERT INTO orders (customer) SELECT 'c' || (g % 3) FROM generate_series(1, 30) g");
	install(&e);
	itest_assert_scalar(c,
	                    "SELECT relispopulated::text FROM pg_class "
	                    "WHERE oid = 'public.mv_order_totals'::regclass",
	                    "false");

	itest_env_start(&e);
	ck_assert_msg(
	    itest_wait_sql(c,
	                   "SELECT count(*) >= 2 FROM pgcrond.job_run_details "
	                   "WHERE job_name = 'refresh-order-totals' AND status = 'succeeded'",
	                   15),
	    "no successful runs:\n%s", itest_read_file(e.log));
	itest_assert_scalar(c, "SELECT sum(orders)::text FROM mv_order_totals", "30");
	itest_exec(c, "INSERT INTO orders (customer) VALUES ('new')");
	ck_assert(itest_wait_sql(
	    c, "SELECT EXISTS (SELECT 1 FROM mv_order_totals WHERE customer = 'new')", 10));
	/* the guard protects it too: no unique index, no refresh */
	itest_exec(c, "DROP INDEX mv_order_totals_pgcrond_key");
	ck_assert_msg(itest_wait_sql(c,
	                             "SELECT count(*) >= 1 FROM pgcrond.job_run_details WHERE "
	                             "job_name = 'refresh-order-totals' AND sqlstate = '55000'",
	                             10),
	              "the guard did not refuse:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

/* What a new user reads when a view job fails: a view that was never installed says to run
 * `pgcrond install`, and a unique_key that is not unique shows the server's DETAIL (which
 * key is duplicated), in the history row and in the log. */
START_TEST(view_failures_say_why)
{
	struct itest_env e;
	plugin_env(&e, "view-failures", "it_view_failures", "sql_view", "views",
	           "jobs = ( {\n"
	           "\tname = \"refresh-gone\";\n"
	           "\tplugin = \"sql_view\";\n"
	           "\tschedule = \"* * * * * *\";\n"
	           "\tview = \"public.mv_gone\";\n"
	           "\tquery = \"SELECT customer FROM orders GROUP BY customer\";\n"
	           "\tunique_key = \"customer\";\n"
	           "}, {\n"
	           "\tname = \"refresh-dup\";\n"
	           "\tplugin = \"sql_view\";\n"
	           "\tschedule = \"* * * * * *\";\n"
	           "\tview = \"public.mv_dup\";\n"
	           "\tquery = \"SELECT 1 AS parity, customer FROM orders\";\n"
	           "\tunique_key = \"parity\";\n"
	           "} );\n");
	PGconn *c = e.db;
	itest_exec(c, "CREATE TABLE orders (id serial, customer text NOT NULL);"
	              "INSERT INTO orders (customer) SELECT 'c' || g FROM generate_series(1, 4) g");
	install(&e);
	/* as if the job had been added after the last install */
	itest_exec(c, "DROP MATERIALIZED VIEW public.mv_gone");

	itest_env_start(&e);
	ck_assert_msg(itest_wait_sql(c,
	                             "SELECT count(*) >= 1 FROM pgcrond.job_run_details WHERE "
	                             "job_name = 'refresh-gone' AND status = 'failed'",
	                             15),
	              "no failed run:\n%s", itest_read_file(e.log));
	itest_assert_scalar(
	    c,
	    "SELECT sqlstate || ' ' || return_message FROM pgcrond.job_run_details "
	    "WHERE job_name = 'refresh-gone' AND status = 'failed' LIMIT 1",
	    "42P01 relation \"public.mv_gone\" does not exist HINT: pgcrond install "
	    "creates the job's objects; run pgcrond install with this configuration");
	ck_assert_msg(itest_wait_sql(c,
	                             "SELECT count(*) >= 1 FROM pgcrond.job_run_details WHERE "
	                             "job_name = 'refresh-dup' AND status = 'failed'",
	                             15),
	              "no failed run:\n%s", itest_read_file(e.log));
	itest_assert_scalar(c,
	                    "SELECT sqlstate || ' ' || return_message FROM pgcrond.job_run_details "
	                    "WHERE job_name = 'refresh-dup' AND status = 'failed' LIMIT 1",
	                    "23505 could not create unique index \"mv_dup_pgcrond_key\" DETAIL: "
	                    "Key (parity)=(1) is duplicated.");
	ck_assert_msg(itest_wait_log(e.log, "DETAIL: Key (parity)=(1) is duplicated.", 5), "%s",
	              itest_read_file(e.log));
	ck_assert_msg(itest_wait_log(e.log, "HINT: pgcrond install creates the job's objects", 5),
	              "%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

/* e->ci with its port replaced by 1, where no server listens. */
static char *dead_conninfo(const struct itest_env *e)
{
	size_t len = strlen(e->ci) + 16;
	char *out = malloc(len);
	const char *p = strstr(e->ci, "port=");
	ck_assert_ptr_nonnull(out);
	ck_assert_ptr_nonnull(p);
	const char *end = p + 5;
	while (*end >= '0' && *end <= '9')
		end++;
	snprintf(out, len, "%.*sport=1%s", (int)(p - e->ci), e->ci, end);
	return out;
}

/* `pgcrond install` goes on past a job whose DDL fails, names every failed job at its
 * FILE:LINE, and its exit status says what failed: 73 when the server refused a job's DDL,
 * 69 only when a database cannot be reached. A second install that changes nothing says so
 * in one line. */
START_TEST(install_goes_on_and_says_where)
{
	struct itest_env e;
	int status;
	plugin_env(&e, "install-failures", "it_install_failures", "sql_view", "views",
	           "jobs = ( {\n" /* line 1 */
	           "\tname = \"bad-col\"; plugin = \"sql_view\"; schedule = \"@daily\";\n"
	           "\tview = \"public.mv_bad\"; unique_key = \"customer\";\n"
	           "\tquery = \"SELECT customer, nope FROM orders\";\n"
	           "}, {\n" /* line 5 */
	           "\tname = \"good\"; plugin = \"sql_view\"; schedule = \"@daily\";\n"
	           "\tview = \"public.mv_good\"; unique_key = \"customer\";\n"
	           "\tquery = \"SELECT customer, count(*) AS n FROM orders GROUP BY 1\";\n"
	           "} );\n");
	PGconn *c = e.db;
	itest_exec(c, "CREATE TABLE orders (id serial, customer text NOT NULL)");

	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 73, "status %d: %s", status, out);
	ck_assert_msg(strstr(out, "conf.d/10-views.conf:1: job \"bad-col\": cannot create its "
	                          "objects in database \"app\": column \"nope\" does not exist "
	                          "(SQLSTATE 42703)"),
	              "%s", out);
	free(out);
	/* the job after it was installed all the same */
	itest_assert_scalar(c,
	                    "SELECT count(*)::text FROM pg_class WHERE oid = "
	                    "to_regclass('public.mv_good')",
	                    "1");

	/* a job in a database that cannot be reached: 69, and the others still install */
	char *dead = dead_conninfo(&e);
	itest_write_file(e.conf,
	                 "timezone = \"UTC\";\nplugin_dir = \"%s/plugins\";\nconf_dir = "
	                 "\"conf.d\";\nstate_dir = \"%s/state\";\n"
	                 "databases = { app = { conninfo = \"%s\"; }; down = { conninfo = \"%s\"; "
	                 "}; };\nhistory = { database = \"app\"; };\n",
	                 e.dir, e.dir, e.ci, dead);
	free(dead);
	itest_env_job(&e, "20-far.conf",
	              "job = { name = \"far\"; plugin = \"sql_view\"; database = \"down\"; "
	              "schedule = \"@daily\";\n"
	              "\tview = \"public.mv_far\"; unique_key = \"a\"; query = \"SELECT 1 AS a\"; "
	              "};\n");
	itest_exec(c, "DROP MATERIALIZED VIEW public.mv_good");
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 69, "status %d: %s", status, out);
	ck_assert_msg(strstr(out, "conf.d/20-far.conf:1: job \"far\": not installed: database "
	                          "\"down\" cannot be reached"),
	              "%s", out);
	ck_assert_msg(strstr(out, "conf.d/10-views.conf:1: job \"bad-col\""), "%s", out);
	free(out);
	itest_assert_scalar(c,
	                    "SELECT count(*)::text FROM pg_class WHERE oid = "
	                    "to_regclass('public.mv_good')",
	                    "1");

	/* fixed: installs, then a second install is one line */
	itest_env_main(&e, NULL);
	itest_env_job(&e, "20-far.conf", "# moved away\n");
	itest_env_job(&e, "10-views.conf",
	              "job = { name = \"good\"; plugin = \"sql_view\"; schedule = \"@daily\";\n"
	              "\tview = \"public.mv_good\"; unique_key = \"customer\";\n"
	              "\tquery = \"SELECT customer, count(*) AS n FROM orders GROUP BY 1\"; };\n");
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "status %d: %s", status, out);
	free(out);
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "status %d: %s", status, out);
	ck_assert_msg(strncmp(out,
	                      "pgcrond install: nothing to change: schema pgcrond is up to "
	                      "date (version ",
	                      70) == 0 &&
	                  strstr(out, "; jobs: 0 added, 0 changed, 0 removed, 1 unchanged\n") &&
	                  strchr(out, '\n') == out + strlen(out) - 1,
	              "not one line: %s", out);
	free(out);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("plugin_job");
	TCase *tc = tcase_create("plugin_job");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, example_plugin_refreshes_concurrently_and_guards);
	tcase_add_test(tc, sql_view_job_through_the_daemon);
	tcase_add_test(tc, view_failures_say_why);
	tcase_add_test(tc, install_goes_on_and_says_where);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
