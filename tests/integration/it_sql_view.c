/* sql_view against a real PostgreSQL. The test plays the core's part the way the daemon and
 * `pgcrond install` do it: the job's install statements (job_install), then for each
 * CONCURRENT relation the job maintains (job_relation) the guard of sql/refresh.sql, then
 * the run's statements, each sent with its parameters. Asserts what an operator would look
 * at: the view exists with its unique index, it is populated, a later run refreshes it
 * concurrently with new data, a second install changes nothing, and mistakes in the query
 * or the key end in clear errors rather than a blocking refresh. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "itest.h"
#include "plugin.h"

static char plugin_dir[128];
static const struct plugin *sql_view;
static PGconn *conn;

static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* Copy the built plugin into a directory with the modes the loader demands. */
static void setup(void)
{
	char dst[256], buf[65536], err[1024];
	ssize_t n;

	snprintf(plugin_dir, sizeof(plugin_dir), "/tmp/pgcrond-it-sql-view-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(plugin_dir));
	ck_assert_int_eq(chmod(plugin_dir, 0755), 0);
	snprintf(dst, sizeof(dst), "%s/sql_view.so", plugin_dir);
	int in = open(PLUGIN_BUILD_DIR "/sql_view.so", O_RDONLY);
	ck_assert_msg(in >= 0, "cannot open " PLUGIN_BUILD_DIR "/sql_view.so (is it built?)");
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(out, 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
	ck_assert_int_eq(chmod(dst, 0644), 0);
	ck_assert_msg(plugin_load(plugin_dir, "sql_view", &sql_view, err, sizeof(err)) == 0, "%s",
	              err);

	char *ci = itest_fresh_db("pgcrond_it_sql_view");
	conn = itest_connect(ci);
	free(ci);
	PQsetNoticeProcessor(conn, quiet, NULL);
	/* the guard `pgcrond install` puts in every job database */
	char *guard = itest_read_file(TEST_SOURCE_DIR "/../sql/refresh.sql");
	ck_assert_msg(*guard, "sql/refresh.sql is missing");
	itest_exec(conn, guard);
	free(guard);
	itest_exec(conn, "CREATE TABLE public.agent_queries ("
	                 " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	                 " agent text NOT NULL, latency_ms integer NOT NULL,"
	                 " created_at timestamptz NOT NULL DEFAULT now())");
	itest_exec(conn, "INSERT INTO public.agent_queries (agent, latency_ms)"
	                 " VALUES ('data', 120), ('data', 80), ('support', 300)");
}

static void teardown(void)
{
	char path[256];

	PQfinish(conn);
	conn = NULL;
	snprintf(path, sizeof(path), "%s/sql_view.so", plugin_dir);
	unlink(path);
	rmdir(plugin_dir);
}

struct job_def {
	struct conf_setting settings[4];
	struct conf_job_more more;
	struct conf_job job;
};

static void job_init(struct job_def *d, const char *view, const char *query, const char *key)
{
	memset(d, 0, sizeof(*d));
	d->settings[0] = (struct conf_setting){.key = "view", .value = (char *)view, .line = 3};
	d->settings[1] = (struct conf_setting){.key = "query", .value = (char *)query, .line = 4};
	d->settings[2] =
	    (struct conf_setting){.key = "unique_key", .value = (char *)key, .line = 5};
	d->more = config_job_more_defaults;
	d->more.settings = d->settings;
	d->more.n_settings = 3;
	d->job = (struct conf_job){.name = "refresh-agent-load",
	                           .plugin = "sql_view",
	                           .database = "analytics",
	                           .more = &d->more,
	                           .file = "conf.d/examples/x.conf",
	                           .line = 1};
	struct diag_list dl = {0};
	ck_assert_int_eq(plugin_check_job(sql_view, &d->job, &dl), 0);
	diag_clear(&dl);
}

/* Execute RUN's statements in order, as the executor does; stop at the first error and
 * return its message (malloc'd, with the SQLSTATE in front), or NULL if all succeeded. */
static char *execute(struct pgc_run *run)
{
	char *fail = NULL;

	for (size_t i = 0; i < run->n_stmts && !fail; i++) {
		const struct plugin_stmt *st = &run->stmts[i];
		PGresult *r = PQexecParams(conn, st->sql, st->n_params, NULL,
		                           (const char *const *)st->params, NULL, NULL, 0);
		ExecStatusType s = PQresultStatus(r);
		if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
			const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
			size_t len = 16 + strlen(msg ? msg : "");
			fail = malloc(len);
			ck_assert_ptr_nonnull(fail);
			snprintf(fail, len, "%s %s", state ? state : "?????", msg ? msg : "");
		}
		PQclear(r);
	}
	return fail;
}

static char *install(const struct job_def *d)
{
	struct pgc_run *run;
	char err[1024];

	ck_assert_msg(plugin_build_install(sql_view, &d->job, &run, err, sizeof(err)) == 0, "%s",
	              err);
	char *fail = execute(run);
	plugin_run_free(&run);
	return fail;
}

/* The core's CONCURRENTLY guard for the job's relations: returns what the guard said
 * ("populated" / "ready") or its error, malloc'd. */
static char *guard(const struct job_def *d)
{
	struct pgc_relation_decl *rels;
	size_t n;
	char err[1024], *said = NULL;

	ck_assert_msg(plugin_job_relations(sql_view, &d->job, &rels, &n, err, sizeof(err)) == 0,
	              "%s", err);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(rels[0].flags, PGC_RELATION_CONCURRENT);
	/* As the catalog spells it, so quoted before the cast: regclass input folds case. */
	char quoted[300];
	ck_assert_int_gt(plugin_quote_qualified(rels[0].name, quoted, sizeof(quoted)), 0);
	const char *params[] = {quoted};
	PGresult *r = PQexecParams(conn, "SELECT pgcrond.prepare_concurrent_refresh($1::regclass)",
	                           1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		said = strdup(PQgetvalue(r, 0, 0));
	else
		said = strdup(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
	ck_assert_ptr_nonnull(said);
	PQclear(r);
	plugin_relations_free(&rels);
	return said;
}

static char *run_once(const struct job_def *d)
{
	struct pgc_run *run;
	char err[1024];

	ck_assert_msg(plugin_build_run(sql_view, &d->job, NULL, 0, &run, err, sizeof(err)) == 0,
	              "%s", err);
	char *fail = execute(run);
	plugin_run_free(&run);
	return fail;
}

static void expect_ok(char *fail)
{
	ck_assert_msg(fail == NULL, "%s", fail ? fail : "");
}

static void expect_said(char *said, const char *want)
{
	ck_assert_str_eq(said, want);
	free(said);
}

START_TEST(test_lifecycle)
{
	struct job_def d;

	job_init(&d, "public.mv_agent_load",
	         "SELECT agent, count(*) AS queries, max(latency_ms) AS max_latency_ms\n"
	         "FROM public.agent_queries\n"
	         "GROUP BY agent -- one row per agent",
	         "agent");

	/* pgcrond install */
	expect_ok(install(&d));
	ck_assert_int_eq(itest_scalar_ll(conn,
	                                 "SELECT count(*) FROM pg_class WHERE oid = "
	                                 "'public.mv_agent_load'::regclass AND relkind = 'm'"),
	                 1);
	ck_assert_int_eq(itest_scalar_ll(conn, "SELECT count(*) FROM pg_index i JOIN pg_class c ON "
	                                       "c.oid = i.indexrelid WHERE i.indrelid = "
	                                       "'public.mv_agent_load'::regclass AND i.indisunique "
	                                       "AND c.relname = 'mv_agent_load_pgcrond_key'"),
	                 1);
	char *pop = itest_scalar(conn, "SELECT relispopulated FROM pg_class WHERE oid = "
	                               "'public.mv_agent_load'::regclass");
	ck_assert_str_eq(pop, "f"); /* WITH NO DATA: the core populates it */
	free(pop);

	/* first run: the guard populates it with one plain refresh, then the concurrent one */
	expect_said(guard(&d), "populated");
	expect_ok(run_once(&d));
	pop = itest_scalar(conn, "SELECT relispopulated FROM pg_class WHERE oid = "
	                         "'public.mv_agent_load'::regclass");
	ck_assert_str_eq(pop, "t");
	free(pop);
	ck_assert_int_eq(itest_scalar_ll(conn, "SELECT queries FROM public.mv_agent_load "
	                                       "WHERE agent = 'data'"),
	                 2);
	ck_assert_int_eq(itest_scalar_ll(conn, "SELECT count(*) FROM public.mv_agent_load"), 2);

	/* a second install changes nothing and fails nothing */
	expect_ok(install(&d));
	ck_assert_int_eq(itest_scalar_ll(conn, "SELECT count(*) FROM pg_index WHERE indrelid = "
	                                       "'public.mv_agent_load'::regclass"),
	                 1);

	/* new data, a later run: refreshed concurrently, readers kept their rows meanwhile */
	itest_exec(conn, "INSERT INTO public.agent_queries (agent, latency_ms)"
	                 " VALUES ('data', 500), ('billing', 40)");
	ck_assert_int_eq(itest_scalar_ll(conn, "SELECT count(*) FROM public.mv_agent_load"), 2);
	expect_said(guard(&d), "ready");
	expect_ok(run_once(&d));
	ck_assert_int_eq(itest_scalar_ll(conn, "SELECT count(*) FROM public.mv_agent_load"), 3);
	ck_assert_int_eq(itest_scalar_ll(conn, "SELECT queries FROM public.mv_agent_load "
	                                       "WHERE agent = 'data'"),
	                 3);
	ck_assert_int_eq(itest_scalar_ll(conn, "SELECT max_latency_ms FROM public.mv_agent_load "
	                                       "WHERE agent = 'data'"),
	                 500);

	/* the refresh really is the concurrent one: it works only with the unique index */
	itest_exec(conn, "DROP INDEX public.mv_agent_load_pgcrond_key");
	expect_said(guard(&d),
	            "materialized view public.mv_agent_load has no usable unique index, so "
	            "it cannot be refreshed CONCURRENTLY");
	char *fail = run_once(&d);
	ck_assert_ptr_nonnull(fail);
	ck_assert_msg(strncmp(fail, "55000 cannot refresh materialized view", 38) == 0, "%s", fail);
	free(fail);
	/* and install puts the index back */
	expect_ok(install(&d));
	expect_said(guard(&d), "ready");
	expect_ok(run_once(&d));
}
END_TEST

START_TEST(test_quoted_names)
{
	struct job_def d;

	/* case is kept: the names are used exactly as written, quoted */
	itest_exec(conn, "CREATE SCHEMA \"Reports\"");
	job_init(&d, "Reports.AgentLoad",
	         "SELECT agent AS \"Agent\", count(*) AS n FROM public.agent_queries GROUP BY 1",
	         "Agent");
	expect_ok(install(&d));
	expect_said(guard(&d), "populated");
	expect_ok(run_once(&d));
	ck_assert_int_eq(itest_scalar_ll(conn, "SELECT count(*) FROM \"Reports\".\"AgentLoad\""),
	                 2);
}
END_TEST

START_TEST(test_bad_column)
{
	struct job_def d;

	/* a query naming a column that does not exist: install says so, creates nothing */
	job_init(&d, "public.mv_bad", "SELECT agent, latency FROM public.agent_queries", "agent");
	char *fail = install(&d);
	ck_assert_ptr_nonnull(fail);
	ck_assert_str_eq(fail, "42703 column \"latency\" does not exist");
	free(fail);
	ck_assert_ptr_null(itest_scalar(conn, "SELECT to_regclass('public.mv_bad')::text"));

	/* a run before a successful install: a clear error, no blocking fallback */
	fail = run_once(&d);
	ck_assert_ptr_nonnull(fail);
	ck_assert_str_eq(fail, "42P01 relation \"public.mv_bad\" does not exist");
	free(fail);

	/* a unique_key naming a column the query does not produce */
	job_init(&d, "public.mv_badkey",
	         "SELECT agent, count(*) AS n FROM public.agent_queries "
	         "GROUP BY agent",
	         "agent_id");
	fail = install(&d);
	ck_assert_ptr_nonnull(fail);
	ck_assert_str_eq(fail, "42703 column \"agent_id\" does not exist");
	free(fail);
	/* the view exists without its index: the guard refuses it before any refresh */
	expect_said(guard(&d), "materialized view public.mv_badkey has no usable unique index, so "
	                       "it cannot be refreshed CONCURRENTLY");
	char *pop = itest_scalar(conn, "SELECT relispopulated FROM pg_class WHERE oid = "
	                               "'public.mv_badkey'::regclass");
	ck_assert_str_eq(pop, "f");
	free(pop);
}
END_TEST

/* The shipped examples (conf.d/examples/: action analytics, near-real-time tier, queue
 * metrics) against the tables of sql/demo/examples.sql with sample data: every job installs,
 * populates, refreshes concurrently, and its view has rows. */
START_TEST(test_shipped_examples)
{
	struct pgc_config *cfg = NULL;
	struct diag_list dl = {0};
	char main_conf[256];

	char *sql = itest_read_file(TEST_SOURCE_DIR "/../sql/demo/examples.sql");
	ck_assert_msg(*sql, "sql/demo/examples.sql is missing");
	itest_exec(conn, "DROP TABLE public.agent_queries"); /* setup's own, a different shape */
	itest_exec(conn, sql);
	itest_exec(conn, sql); /* idempotent */
	free(sql);
	ck_assert_int_eq(itest_scalar_ll(conn, "SELECT pgcrond_demo.generate_examples(2000)"),
	                 2000 + 2000 + 200);

	snprintf(main_conf, sizeof(main_conf), "%s/pgcrond.conf", plugin_dir);
	itest_write_file(main_conf,
	                 "plugin_dir = \"%s\";\n"
	                 "conf_dir = \"%s/../conf.d/examples\";\n"
	                 "state_dir = \"%s\";\n"
	                 "databases = { analytics = { conninfo = \"dbname=unused\"; }; };\n",
	                 plugin_dir, TEST_SOURCE_DIR, plugin_dir);
	int rc = config_load(main_conf, &cfg, &dl);
	if (rc < 0)
		diag_print(&dl, stderr);
	ck_assert_int_eq(rc, 0);
	unlink(main_conf);
	ck_assert_uint_eq(cfg->n_jobs, 7);
	for (size_t i = 0; i < cfg->n_jobs; i++) {
		struct job_def d = {.job = cfg->jobs[i]};
		char q[512];
		/* action analytics: WARNING past 5 minutes, STALE past 10, so view_status.staleness
		 * is never NULL for these jobs */
		if (strstr(d.job.file, "30-action-analytics.conf"))
			ck_assert_msg(d.job.more->alerts.max_staleness_ms == 600000,
			              "%s: max_staleness is %lld ms, not the 10m of STALE",
			              d.job.name, (long long)d.job.more->alerts.max_staleness_ms);
		ck_assert_int_eq(plugin_check_job(sql_view, &d.job, &dl), 0);
		expect_ok(install(&d));
		expect_said(guard(&d), "populated");
		expect_ok(run_once(&d));
		expect_said(guard(&d), "ready");
		expect_ok(run_once(&d));
		const char *view = NULL;
		for (size_t k = 0; k < d.job.more->n_settings; k++)
			if (strcmp(d.job.more->settings[k].key, "view") == 0)
				view = d.job.more->settings[k].value;
		ck_assert_ptr_nonnull(view);
		snprintf(q, sizeof(q), "SELECT count(*) FROM %s", view);
		ck_assert_msg(itest_scalar_ll(conn, q) > 0, "%s (job %s) is empty", view,
		              d.job.name);
	}
	diag_clear(&dl);
	config_free(&cfg);
}
END_TEST

static Suite *sql_view_suite(void)
{
	Suite *s = suite_create("it_sql_view");
	TCase *tc = tcase_create("sql_view");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_lifecycle);
	tcase_add_test(tc, test_quoted_names);
	tcase_add_test(tc, test_bad_column);
	tcase_add_test(tc, test_shipped_examples);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sql_view_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
