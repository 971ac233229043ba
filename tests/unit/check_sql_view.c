/* The sql_view plugin: a materialized view defined in a job file. Its settings checks (the
 * exact FILE:LINE messages `pgcrond check` prints), the one-query rule, the relation it
 * names per job, and the statements of `pgcrond install` and of a run, identifiers quoted.
 * The plugin is copied into a fresh directory with safe modes, as the loader demands. */
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
#include "plugin.h"

static char dir[256];
static const struct plugin *p;

static void setup(void)
{
	char src[512], dst[512], buf[65536], err[1024];
	ssize_t n;

	snprintf(dir, sizeof(dir), "/tmp/pgcrond-check-sql-view-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chmod(dir, 0755), 0);
	snprintf(src, sizeof(src), "%s/sql_view.so", PLUGIN_BUILD_DIR);
	snprintf(dst, sizeof(dst), "%s/sql_view.so", dir);
	int in = open(src, O_RDONLY);
	ck_assert_msg(in >= 0, "cannot open %s (is it built?)", src);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(out, 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(write(out, buf, (size_t)n), n);
	ck_assert_int_eq(n, 0);
	close(in);
	close(out);
	ck_assert_int_eq(chmod(dst, 0755), 0);
	ck_assert_msg(plugin_load(dir, "sql_view", &p, err, sizeof(err)) == 0, "%s", err);
}

static void teardown(void)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/sql_view.so", dir);
	unlink(path);
	rmdir(dir);
}

/* A job of sql_view in conf.d/30-x.conf at line 10, settings on the lines after it. */
struct job_def {
	struct conf_setting settings[8];
	struct conf_job_more more;
	struct conf_job job;
};

static void job_init(struct job_def *d, const char *view, const char *query, const char *key)
{
	size_t n = 0;

	memset(d, 0, sizeof(*d));
	if (view)
		d->settings[n++] =
		    (struct conf_setting){.key = "view", .value = (char *)view, .line = 14};
	if (query)
		d->settings[n++] =
		    (struct conf_setting){.key = "query", .value = (char *)query, .line = 15};
	if (key)
		d->settings[n++] =
		    (struct conf_setting){.key = "unique_key", .value = (char *)key, .line = 16};
	d->more = config_job_more_defaults;
	d->more.settings = d->settings;
	d->more.n_settings = n;
	d->job = (struct conf_job){.name = "refresh-x",
	                           .plugin = "sql_view",
	                           .database = "analytics",
	                           .more = &d->more,
	                           .file = "conf.d/30-x.conf",
	                           .line = 10};
}

static void job_set(struct job_def *d, const char *key, const char *value, int line)
{
	d->settings[d->more.n_settings++] =
	    (struct conf_setting){.key = (char *)key, .value = (char *)value, .line = line};
}

/* The problems `pgcrond check` would print for the job, "FILE:LINE: message" each, joined
 * with newlines; "" if it passes. */
static char *check_text(struct job_def *d)
{
	static char text[4096];
	struct diag_list dl = {0};
	size_t o = 0;

	int rc = plugin_check_job(p, &d->job, &dl);
	ck_assert_int_eq(rc, dl.n ? -EINVAL : 0);
	text[0] = '\0';
	for (size_t i = 0; i < dl.n; i++) {
		int n = snprintf(text + o, sizeof(text) - o, "%s%s:%d: %s", i ? "\n" : "",
		                 dl.items[i].file, dl.items[i].line, dl.items[i].message);
		ck_assert(n > 0 && (size_t)n < sizeof(text) - o);
		o += (size_t)n;
	}
	diag_clear(&dl);
	return text;
}

static void expect_query_error(const char *query, const char *message)
{
	struct job_def d;
	char want[1024];

	job_init(&d, "public.mv_x", query, "a");
	snprintf(want, sizeof(want),
	         "conf.d/30-x.conf:15: job \"refresh-x\": setting \"query\": %s", message);
	ck_assert_str_eq(check_text(&d), want);
}

static void expect_query_ok(const char *query)
{
	struct job_def d;

	job_init(&d, "public.mv_x", query, "a");
	ck_assert_msg(strcmp(check_text(&d), "") == 0, "query <%s> refused: %s", query,
	              check_text(&d));
}

/* ---- the declaration ------------------------------------------------------------------ */

START_TEST(test_declaration)
{
	ck_assert_str_eq(p->name, "sql_view");
	ck_assert_uint_eq(p->abi_minor, PGC_PLUGIN_ABI_MINOR); /* built against this header */
	ck_assert_uint_eq(p->n_relations, 0);                  /* each job names its own */
	ck_assert_ptr_nonnull(p->decl.job_relation);
	ck_assert_ptr_nonnull(p->decl.job_install);
	ck_assert_ptr_null(p->decl.install_sql);
	ck_assert_uint_eq(p->n_settings, 4);
}
END_TEST

/* ---- a good job ----------------------------------------------------------------------- */

START_TEST(test_good_job)
{
	struct job_def d;
	struct pgc_relation_decl *rels;
	struct pgc_run *run;
	size_t n;
	char err[1024];

	job_init(&d, "public.mv_queue",
	         "SELECT agent, count(*) AS queries FROM public.agent_queries GROUP BY agent",
	         " agent , day ");
	ck_assert_str_eq(check_text(&d), "");

	ck_assert_int_eq(plugin_job_relations(p, &d.job, &rels, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(rels[0].name, "public.mv_queue");
	ck_assert_int_eq(rels[0].kind, PGC_RELATION_MATVIEW);
	ck_assert_uint_eq(rels[0].flags, PGC_RELATION_CONCURRENT);
	ck_assert_ptr_null(rels[1].name);
	plugin_relations_free(&rels);

	ck_assert_int_eq(plugin_build_install(p, &d.job, &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 2);
	ck_assert_str_eq(
	    run->stmts[0].sql,
	    "CREATE MATERIALIZED VIEW IF NOT EXISTS \"public\".\"mv_queue\" AS\n"
	    "SELECT agent, count(*) AS queries FROM public.agent_queries GROUP BY agent\n"
	    "WITH NO DATA");
	ck_assert_int_eq(run->stmts[0].n_params, 0);
	ck_assert_str_eq(run->stmts[1].sql,
	                 "CREATE UNIQUE INDEX IF NOT EXISTS \"mv_queue_pgcrond_key\" ON "
	                 "\"public\".\"mv_queue\" (\"agent\", \"day\")");
	plugin_run_free(&run);

	/* notification payloads change nothing: never pasted, the whole view is recomputed */
	const char *payloads[] = {"'); DROP TABLE x; --"};
	ck_assert_int_eq(plugin_build_run(p, &d.job, payloads, 1, &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 1);
	ck_assert_str_eq(run->stmts[0].sql,
	                 "REFRESH MATERIALIZED VIEW CONCURRENTLY \"public\".\"mv_queue\"");
	plugin_run_free(&run);

	job_set(&d, "analyze", "true", 17);
	ck_assert_str_eq(check_text(&d), "");
	ck_assert_int_eq(plugin_build_run(p, &d.job, NULL, 0, &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 2);
	ck_assert_str_eq(run->stmts[1].sql, "ANALYZE \"public\".\"mv_queue\"");
	plugin_run_free(&run);
}
END_TEST

START_TEST(test_quoting)
{
	struct job_def d;
	struct pgc_run *run;
	char err[1024];

	/* names are taken literally (quoted, case kept), as in the catalog */
	job_init(&d, "Sales.MV_Top$1", "TABLE sales.totals", "Region,year$");
	ck_assert_str_eq(check_text(&d), "");
	ck_assert_int_eq(plugin_build_install(p, &d.job, &run, err, sizeof(err)), 0);
	ck_assert_str_eq(run->stmts[0].sql, "CREATE MATERIALIZED VIEW IF NOT EXISTS "
	                                    "\"Sales\".\"MV_Top$1\" AS\nTABLE sales.totals\n"
	                                    "WITH NO DATA");
	ck_assert_str_eq(run->stmts[1].sql, "CREATE UNIQUE INDEX IF NOT EXISTS "
	                                    "\"MV_Top$1_pgcrond_key\" ON \"Sales\".\"MV_Top$1\" "
	                                    "(\"Region\", \"year$\")");
	plugin_run_free(&run);

	/* a plain name: left to the search_path */
	job_init(&d, "mv_plain", "SELECT 1 AS one", "one");
	ck_assert_str_eq(check_text(&d), "");
	ck_assert_int_eq(plugin_build_run(p, &d.job, NULL, 0, &run, err, sizeof(err)), 0);
	ck_assert_str_eq(run->stmts[0].sql, "REFRESH MATERIALIZED VIEW CONCURRENTLY \"mv_plain\"");
	plugin_run_free(&run);

	/* a trailing -- comment cannot swallow WITH NO DATA */
	job_init(&d, "public.mv_c", "SELECT 1 AS one -- the only row", "one");
	ck_assert_str_eq(check_text(&d), "");
	ck_assert_int_eq(plugin_build_install(p, &d.job, &run, err, sizeof(err)), 0);
	ck_assert_str_eq(run->stmts[0].sql, "CREATE MATERIALIZED VIEW IF NOT EXISTS "
	                                    "\"public\".\"mv_c\" AS\nSELECT 1 AS one -- the only "
	                                    "row\nWITH NO DATA");
	plugin_run_free(&run);
}
END_TEST

START_TEST(test_long_index_name)
{
	/* 63 bytes, the longest name PostgreSQL keeps: the index name is cut to fit too */
	static const char view[] =
	    "public.v23456789012345678901234567890123456789012345678901234567890123";
	struct job_def d;
	struct pgc_run *run;
	char err[1024];

	job_init(&d, view, "SELECT 1 AS k", "k");
	ck_assert_str_eq(check_text(&d), "");
	ck_assert_int_eq(plugin_build_install(p, &d.job, &run, err, sizeof(err)), 0);
	ck_assert_str_eq(run->stmts[1].sql,
	                 "CREATE UNIQUE INDEX IF NOT EXISTS "
	                 "\"v23456789012345678901234567890123456789012345678901_pgcrond_key\" ON "
	                 "\"public\".\"v23456789012345678901234567890123456789012345678901234567890"
	                 "123\" (\"k\")");
	plugin_run_free(&run);
}
END_TEST

/* ---- settings errors ------------------------------------------------------------------ */

START_TEST(test_required)
{
	struct job_def d;

	/* all three at once, at the job's line, so one `pgcrond check` shows everything */
	job_init(&d, NULL, NULL, NULL);
	ck_assert_str_eq(
	    check_text(&d),
	    "conf.d/30-x.conf:10: job \"refresh-x\": setting \"view\": is required: name the "
	    "materialized view this job maintains, such as \"public.mv_queue_metrics\"\n"
	    "conf.d/30-x.conf:10: job \"refresh-x\": setting \"query\": is required: give the "
	    "SELECT that defines the view\n"
	    "conf.d/30-x.conf:10: job \"refresh-x\": setting \"unique_key\": is required: list "
	    "the view's columns that identify a row, such as \"agent, hour\" (REFRESH ... "
	    "CONCURRENTLY needs a unique index)");

	/* an unknown key is the core's message, listing the plugin's settings */
	job_init(&d, "public.mv_x", "SELECT 1 AS a", "a");
	job_set(&d, "indexes", "a", 18);
	ck_assert_str_eq(check_text(&d), "conf.d/30-x.conf:18: job \"refresh-x\": plugin "
	                                 "\"sql_view\" has no setting \"indexes\"; its settings "
	                                 "are: view, query, unique_key, analyze");

	/* a typo of one of the plugin's settings, or of a standard job key, gets "did you
	 * mean" from both lists alike */
	job_init(&d, "public.mv_x", "SELECT 1 AS a", NULL);
	job_set(&d, "unique_keys", "a", 17);
	ck_assert_str_eq(check_text(&d),
	                 "conf.d/30-x.conf:17: job \"refresh-x\": plugin \"sql_view\" has no "
	                 "setting \"unique_keys\"; did you mean \"unique_key\"?");
	job_init(&d, "public.mv_x", "SELECT 1 AS a", "a");
	job_set(&d, "schedul", "* * * * *", 11);
	ck_assert_str_eq(check_text(&d),
	                 "conf.d/30-x.conf:11: unknown key \"schedul\" in job \"refresh-x\"; did "
	                 "you mean \"schedule\"?");
}
END_TEST

START_TEST(test_bad_view)
{
	static const struct {
		const char *view, *message;
	} cases[] = {
	    {"public.mv.x", "\"public.mv.x\" has more than one '.'; write schema.view or view"},
	    {"public.mv-x", "the view name in \"public.mv-x\" holds a character other than "
	                    "letters, digits, '_' and '$'"},
	    {"my schema.mv", "the schema in \"my schema.mv\" holds a character other than "
	                     "letters, digits, '_' and '$'"},
	    {".mv", "the schema in \".mv\" is empty"},
	    {"public.", "the view name in \"public.\" is empty"},
	    {"", "the view name in \"\" is empty"},
	    {"1mv", "the view name in \"1mv\" starts with a digit or '$'"},
	    {"\"mv\"", "the view name in \"\"mv\"\" holds a character other than letters, digits, "
	               "'_' and '$'"},
	    {"v234567890123456789012345678901234567890123456789012345678901234",
	     "the view name in \"v234567890123456789012345678901234567890123456789012345678901234"
	     "\" is longer than 63 bytes (PostgreSQL would truncate it)"},
	};
	char want[1024];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct job_def d;
		job_init(&d, cases[i].view, "SELECT 1 AS a", "a");
		snprintf(want, sizeof(want),
		         "conf.d/30-x.conf:14: job \"refresh-x\": setting \"view\": %s",
		         cases[i].message);
		ck_assert_str_eq(check_text(&d), want);
	}
}
END_TEST

START_TEST(test_bad_unique_key)
{
	static const struct {
		const char *key, *message;
	} cases[] = {
	    {"a,,b", "column 2 (\"\") is empty; write column names separated by commas"},
	    {"a b", "column 1 (\"a b\") holds a character other than letters, digits, '_' and "
	            "'$'; write column names separated by commas"},
	    {"a;b", "column 1 (\"a;b\") holds a character other than letters, digits, '_' and "
	            "'$'; write column names separated by commas"},
	    {"lower(a)", "column 1 (\"lower(a)\") holds a character other than letters, digits, "
	                 "'_' and '$'; write column names separated by commas"},
	    {"a, b, a", "names column \"a\" twice"},
	    {"a, b,", "ends with ','; remove it"},
	    {"  ", "column 1 (\"\") is empty; write column names separated by commas"},
	    {"", "is empty: list the view's columns that identify a row, such as \"agent, hour\""},
	    {"c1,c2,c3,c4,c5,c6,c7,c8,c9,c10,c11,c12,c13,c14,c15,c16,c17,c18,c19,c20,c21,c22,"
	     "c23,c24,c25,c26,c27,c28,c29,c30,c31,c32,c33",
	     "has more than 32 columns, the most an index can have"},
	};
	char want[1024];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct job_def d;
		job_init(&d, "public.mv_x", "SELECT 1 AS a", cases[i].key);
		snprintf(want, sizeof(want),
		         "conf.d/30-x.conf:16: job \"refresh-x\": setting \"unique_key\": %s",
		         cases[i].message);
		ck_assert_str_eq(check_text(&d), want);
	}
}
END_TEST

/* ---- one query only ------------------------------------------------------------------- */

START_TEST(test_one_statement)
{
	expect_query_error("SELECT 1 AS a; DROP TABLE agents",
	                   "has a ';' at character 14: it must be exactly one query, without a "
	                   "';' (put other statements in a job of their own)");
	expect_query_error("SELECT 1 AS a;",
	                   "has a ';' at character 14: it must be exactly one query, without a "
	                   "';' (put other statements in a job of their own)");
	expect_query_error("SELECT 'a;b' AS a, \"c;d\" AS x; DELETE FROM t",
	                   "has a ';' at character 30: it must be exactly one query, without a "
	                   "';' (put other statements in a job of their own)");

	/* semicolons inside literals, quoted names, dollar quotes and comments are fine */
	expect_query_ok("SELECT ';' AS a");
	expect_query_ok("SELECT 'it''s; fine' AS a");
	expect_query_ok("SELECT E'\\'; still inside' AS a");
	expect_query_ok("SELECT \"we;ird\" AS a FROM t");
	expect_query_ok("SELECT \"x\"\";\" AS a FROM t");
	expect_query_ok("SELECT $$;$$ AS a");
	expect_query_ok("SELECT $body$ ; $not$ ; $body$ AS a");
	expect_query_ok("SELECT 1 AS a -- no; really\n");
	expect_query_ok("SELECT /* a; /* nested; */ still; */ 1 AS a");
	expect_query_ok("SELECT a$b$ AS a FROM t WHERE x = $1"); /* not dollar quotes */
	expect_query_ok("  \n(SELECT 1 AS a) UNION (SELECT 2)");
	expect_query_ok("WITH t AS (SELECT 1 AS a) SELECT a FROM t");
	expect_query_ok("values (1)");

	expect_query_error("SELECT 'abc AS a", "ends inside a string literal ('...'); close it");
	expect_query_error("SELECT \"abc AS a", "ends inside a quoted identifier (\"...\"); close "
	                                        "it");
	expect_query_error("SELECT $x$ abc AS a", "ends inside a dollar-quoted string ($$...$$); "
	                                          "close it");
	expect_query_error("SELECT 1 /* abc", "ends inside a comment (/* ... */); close it");
	expect_query_error("DELETE FROM agents",
	                   "starts with \"DELETE\"; it must be a query "
	                   "(SELECT, WITH, VALUES or TABLE) defining the view");
	expect_query_error("REFRESH MATERIALIZED VIEW x",
	                   "starts with \"REFRESH\"; it must be a query (SELECT, WITH, VALUES or "
	                   "TABLE) defining the view");
	expect_query_error("   -- nothing\n", "is empty: give the SELECT that defines the view");
	expect_query_error("", "is empty: give the SELECT that defines the view");
}
END_TEST

static Suite *sql_view_suite(void)
{
	Suite *s = suite_create("sql_view");
	TCase *tc = tcase_create("sql_view");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_declaration);
	tcase_add_test(tc, test_good_job);
	tcase_add_test(tc, test_quoting);
	tcase_add_test(tc, test_long_index_name);
	tcase_add_test(tc, test_required);
	tcase_add_test(tc, test_bad_view);
	tcase_add_test(tc, test_bad_unique_key);
	tcase_add_test(tc, test_one_statement);
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
