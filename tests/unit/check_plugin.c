/* The plugin loader: the example plugin, plugins broken on purpose (tests/unit/plugins/),
 * unsafe files and directories, settings validation, runs, identifier quoting. Each test
 * copies the plugins it needs into a fresh directory of its own with safe modes, so the
 * outcome does not depend on the build tree's umask. */
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "duration.h"
#include "plugin.h"

#ifndef TEST_PLUGIN_DIR
#define TEST_PLUGIN_DIR TEST_BINARY_DIR "/unit/badplugins"
#endif

static char dir[256];

static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/pgcrond-check-plugin-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chmod(dir, 0755), 0);
}

static void remove_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (unlink(path) < 0)
			rmdir(path);
	}
	closedir(d);
	rmdir(dir);
}

/* Copy SRC into the test directory as NAME.so with MODE. */
static void install_as(const char *src, const char *name, mode_t mode)
{
	char dst[512], buf[65536];
	ssize_t n;

	snprintf(dst, sizeof(dst), "%s/%s.so", dir, name);
	int in = open(src, O_RDONLY);
	ck_assert_msg(in >= 0, "cannot open %s (is it built?)", src);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(out, 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(write(out, buf, (size_t)n), n);
	ck_assert_int_eq(n, 0);
	close(in);
	close(out);
	ck_assert_int_eq(chmod(dst, mode), 0);
}

static void install_test_plugin(const char *name)
{
	char src[512];
	snprintf(src, sizeof(src), "%s/%s.so", TEST_PLUGIN_DIR, name);
	install_as(src, name, 0755);
}

static void install_example(void)
{
	install_as(PLUGIN_BUILD_DIR "/example.so", "example", 0755);
}

/* Load NAME from the test directory and expect a refusal whose message is exactly EXPECT,
 * with "@" standing for the test directory. */
static void expect_refusal(const char *name, int want_rc, const char *expect)
{
	const struct plugin *p = (const struct plugin *)1;
	char err[1024], want[1024];
	size_t o = 0;

	for (const char *c = expect; *c && o + 1 < sizeof(want); c++) {
		if (*c == '@') {
			int n = snprintf(want + o, sizeof(want) - o, "%s", dir);
			ck_assert(n > 0 && (size_t)n < sizeof(want) - o);
			o += (size_t)n;
		} else {
			want[o++] = *c;
		}
	}
	want[o] = '\0';
	int rc = plugin_load(dir, name, &p, err, sizeof(err));
	ck_assert_int_eq(rc, want_rc);
	ck_assert_ptr_null(p);
	ck_assert_str_eq(err, want);
}

static void setup(void)
{
	make_dir();
}

static void teardown(void)
{
	remove_dir();
}

/* ---- identifier quoting ------------------------------------------------------------- */

START_TEST(test_quote_ident)
{
	char out[64];

	ck_assert_int_eq(plugin_quote_ident("mv_x", out, sizeof(out)), 6);
	ck_assert_str_eq(out, "\"mv_x\"");
	ck_assert_int_ge(plugin_quote_ident("MyView", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "\"MyView\""); /* case kept, not folded */
	ck_assert_int_ge(plugin_quote_ident("a\"b", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "\"a\"\"b\"");
	ck_assert_int_ge(plugin_quote_ident("\"", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "\"\"\"\"");
	ck_assert_int_ge(plugin_quote_ident("select; drop table x", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "\"select; drop table x\"");
	ck_assert_int_ge(plugin_quote_ident("a.b", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "\"a.b\""); /* one identifier: the dot is part of it */
	ck_assert_int_ge(plugin_quote_ident("vue_été", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "\"vue_été\"");
	ck_assert_int_eq(plugin_quote_ident("", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(plugin_quote_ident(NULL, out, sizeof(out)), -EINVAL);
	/* "ab" needs 2 quotes + 2 + NUL = 5 bytes */
	ck_assert_int_eq(plugin_quote_ident("ab", out, 4), -ENOSPC);
	ck_assert_int_eq(plugin_quote_ident("ab", out, 5), 4);
	ck_assert_int_eq(plugin_quote_ident("a\"", out, 5), -ENOSPC);
}
END_TEST

START_TEST(test_quote_qualified)
{
	char out[64];

	ck_assert_int_eq(plugin_quote_qualified("public.mv_x", out, sizeof(out)), 15);
	ck_assert_str_eq(out, "\"public\".\"mv_x\"");
	ck_assert_int_ge(plugin_quote_qualified("Analytics.MyView", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "\"Analytics\".\"MyView\"");
	ck_assert_int_ge(plugin_quote_qualified("we\"ird.t\"x", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "\"we\"\"ird\".\"t\"\"x\"");
	ck_assert_int_ge(plugin_quote_qualified("mv_x", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "\"mv_x\"");
	ck_assert_int_eq(plugin_quote_qualified("a.b.c", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(plugin_quote_qualified(".a", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(plugin_quote_qualified("a.", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(plugin_quote_qualified("", out, sizeof(out)), -EINVAL);
	/* "a"."b" is 7 bytes + NUL */
	ck_assert_int_eq(plugin_quote_qualified("a.b", out, 7), -ENOSPC);
	ck_assert_int_eq(plugin_quote_qualified("a.b", out, 8), 7);
	ck_assert_int_eq(plugin_quote_qualified("a.b", out, 4), -ENOSPC);
}
END_TEST

START_TEST(test_api_table)
{
	const struct pgc_api *api = plugin_api();

	ck_assert_uint_eq(api->size, sizeof(struct pgc_api));
	ck_assert_uint_eq(api->abi_major, PGC_PLUGIN_ABI_MAJOR);
	ck_assert_uint_eq(api->abi_minor, PGC_PLUGIN_ABI_MINOR);
	ck_assert_str_eq(api->core_version, PGCROND_VERSION);
	/* every entry filled in */
	ck_assert_ptr_nonnull(api->log);
	ck_assert_ptr_nonnull(api->setting_str);
	ck_assert_ptr_nonnull(api->setting_int);
	ck_assert_ptr_nonnull(api->setting_bool);
	ck_assert_ptr_nonnull(api->setting_duration_ms);
	ck_assert_ptr_nonnull(api->setting_is_set);
	ck_assert_ptr_nonnull(api->setting_error);
	ck_assert_ptr_nonnull(api->quote_ident);
	ck_assert_ptr_nonnull(api->quote_qualified);
	ck_assert_ptr_nonnull(api->run_add);
	ck_assert_ptr_nonnull(api->run_add_param);
	ck_assert_ptr_nonnull(api->run_error);
	ck_assert_ptr_nonnull(api->job_name);
	ck_assert_ptr_nonnull(api->run_refresh);
}
END_TEST

/* ---- the example plugin ------------------------------------------------------------- */

START_TEST(test_example_loads)
{
	const struct plugin *p, *again;
	char err[1024];

	install_example();
	ck_assert_msg(plugin_load(dir, "example", &p, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(p->name, "example");
	ck_assert_str_eq(p->version, "1.0.0");
	ck_assert_uint_eq(p->n_relations, 1);
	ck_assert_str_eq(p->decl.relations[0].name, "public.pgcrond_example_mv");
	ck_assert_int_eq(p->decl.relations[0].kind, PGC_RELATION_MATVIEW);
	ck_assert_uint_eq(p->decl.relations[0].flags, PGC_RELATION_CONCURRENT);
	ck_assert_uint_eq(p->n_reads, 0);
	ck_assert_uint_eq(p->n_settings, 2);
	ck_assert_ptr_nonnull(strstr(p->decl.install_sql, "CREATE MATERIALIZED VIEW IF NOT EXISTS "
	                                                  "public.pgcrond_example_mv"));
	ck_assert_ptr_nonnull(strstr(p->decl.install_sql, "CREATE UNIQUE INDEX IF NOT EXISTS"));
	/* hidden visibility: only the two entry points are exported */
	ck_assert_ptr_nonnull(dlsym(p->handle, PGC_PLUGIN_MAGIC_SYMBOL));
	ck_assert_ptr_nonnull(dlsym(p->handle, PGC_PLUGIN_INIT_SYMBOL));
	ck_assert_ptr_null(dlsym(p->handle, "build_run"));
	ck_assert_ptr_null(dlsym(p->handle, "api"));
	/* loaded once: the second load is the same plugin */
	ck_assert_int_eq(plugin_load(dir, "example", &again, err, sizeof(err)), 0);
	ck_assert_ptr_eq(again, p);
}
END_TEST

START_TEST(test_example_build_run)
{
	const struct plugin *p;
	struct pgc_run *run;
	char err[1024];
	struct conf_job job = {.name = "refresh-example",
	                       .more = &config_job_more_defaults,
	                       .plugin = "example",
	                       .file = "conf.d/10-example.conf",
	                       .line = 1};

	install_example();
	ck_assert_msg(plugin_load(dir, "example", &p, err, sizeof(err)) == 0, "%s", err);

	ck_assert_int_eq(plugin_build_run(p, &job, NULL, 0, &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 1);
	ck_assert_str_eq(
	    run->stmts[0].sql,
	    "REFRESH MATERIALIZED VIEW CONCURRENTLY \"public\".\"pgcrond_example_mv\"");
	ck_assert_int_eq(run->stmts[0].n_params, 0);
	plugin_run_free(&run);
	ck_assert_ptr_null(run);

	struct conf_setting settings[] = {
	    {.key = "analyze", .value = "true", .line = 5},
	    {.key = "notify_channel", .value = "views_changed", .line = 6},
	};
	job.more = &(struct conf_job_more){.settings = settings, .n_settings = 2};
	const char *payloads[] = {"42", "43"};
	ck_assert_int_eq(plugin_build_run(p, &job, payloads, 2, &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 3);
	ck_assert_str_eq(run->stmts[1].sql, "ANALYZE \"public\".\"pgcrond_example_mv\"");
	ck_assert_str_eq(run->stmts[2].sql, "SELECT pg_catalog.pg_notify($1, $2)");
	ck_assert_int_eq(run->stmts[2].n_params, 2);
	ck_assert_str_eq(run->stmts[2].params[0], "views_changed");
	ck_assert_str_eq(run->stmts[2].params[1], "public.pgcrond_example_mv");
	plugin_run_free(&run);
}
END_TEST

/* ---- run_refresh() ---------------------------------------------------------------- */

/* Build a run of the refresher test plugin with MODE; returns the build's rc, the run in
 * *RUN (NULL on failure) and the message in ERR. */
static int refresher_run(const struct plugin *p, const char *mode, struct pgc_run **run, char *err,
                         size_t errlen)
{
	struct conf_setting settings[] = {{.key = "mode", .value = (char *)mode, .line = 4}};
	struct conf_job job = {.name = "refresh-all",
	                       .plugin = "refresher",
	                       .file = "conf.d/10-r.conf",
	                       .line = 2,
	                       .more =
	                           &(struct conf_job_more){.settings = settings, .n_settings = 1}};

	return plugin_build_run(p, &job, NULL, 0, run, err, errlen);
}

START_TEST(test_run_refresh)
{
	const struct plugin *p;
	struct pgc_run *run;
	char err[1024];

	install_test_plugin("refresher");
	ck_assert_msg(plugin_load(dir, "refresher", &p, err, sizeof(err)) == 0, "%s", err);

	/* NULL: every declared view in order, the table skipped, CONCURRENTLY as declared,
	 * names quoted with their case kept */
	ck_assert_int_eq(refresher_run(p, "all", &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 2);
	ck_assert_str_eq(run->stmts[0].sql,
	                 "REFRESH MATERIALIZED VIEW CONCURRENTLY \"public\".\"mv_a\"");
	ck_assert_str_eq(run->stmts[1].sql, "REFRESH MATERIALIZED VIEW \"public\".\"MV_b\"");
	ck_assert_int_eq(run->stmts[0].n_params, 0);
	plugin_run_free(&run);

	/* ANALYZE right after each view's refresh */
	ck_assert_int_eq(refresher_run(p, "all_analyze", &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 4);
	ck_assert_str_eq(run->stmts[0].sql,
	                 "REFRESH MATERIALIZED VIEW CONCURRENTLY \"public\".\"mv_a\"");
	ck_assert_str_eq(run->stmts[1].sql, "ANALYZE \"public\".\"mv_a\"");
	ck_assert_str_eq(run->stmts[2].sql, "REFRESH MATERIALIZED VIEW \"public\".\"MV_b\"");
	ck_assert_str_eq(run->stmts[3].sql, "ANALYZE \"public\".\"MV_b\"");
	plugin_run_free(&run);

	ck_assert_int_eq(refresher_run(p, "all_concurrently", &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 2);
	ck_assert_str_eq(run->stmts[1].sql,
	                 "REFRESH MATERIALIZED VIEW CONCURRENTLY \"public\".\"MV_b\"");
	plugin_run_free(&run);

	/* a view the core guards is never refreshed blocking, whatever the flags say */
	ck_assert_int_eq(refresher_run(p, "declared_blocking", &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 1);
	ck_assert_str_eq(run->stmts[0].sql,
	                 "REFRESH MATERIALIZED VIEW CONCURRENTLY \"public\".\"mv_a\"");
	plugin_run_free(&run);

	/* an undeclared view: as the flags say, quoted part by part */
	ck_assert_int_eq(refresher_run(p, "other", &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 2);
	ck_assert_str_eq(run->stmts[0].sql, "REFRESH MATERIALIZED VIEW \"other\".\"we\"\"ird\"");
	ck_assert_str_eq(run->stmts[1].sql, "ANALYZE \"other\".\"we\"\"ird\"");
	plugin_run_free(&run);

	/* mistakes fail the build with a message, even when the plugin ignores the result */
	ck_assert_int_eq(refresher_run(p, "bad_name_ignored", &run, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(run);
	ck_assert_str_eq(err, "plugin \"refresher\" could not build the run: cannot refresh "
	                      "\"a.b.c\": not a relation name; write \"schema.view\" or \"view\"");
	ck_assert_int_eq(refresher_run(p, "bad_flags", &run, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "plugin \"refresher\" could not build the run: run_refresh() was "
	                      "given unknown flags 0x80 (a plugin bug)");
}
END_TEST

/* The entry on its own, as a plugin built against 1.1 calls it: a run that belongs to no
 * job has no views to refresh, but can refresh a named one. */
START_TEST(test_run_refresh_direct)
{
	const struct pgc_api *api = plugin_api();
	struct pgc_run *run = calloc(1, sizeof(*run));
	char long_name[1200];

	ck_assert_ptr_nonnull(run);
	ck_assert_int_eq(api->run_refresh(run, NULL, 0), -ENOENT);
	ck_assert_ptr_nonnull(run->error);
	ck_assert_ptr_nonnull(strstr(run->error, "no materialized view"));
	ck_assert_uint_eq(run->n_stmts, 0);
	ck_assert_int_eq(api->run_refresh(run, "mv_plain", PGC_REFRESH_CONCURRENTLY), 0);
	ck_assert_uint_eq(run->n_stmts, 1);
	ck_assert_str_eq(run->stmts[0].sql, "REFRESH MATERIALIZED VIEW CONCURRENTLY \"mv_plain\"");
	ck_assert_int_eq(api->run_refresh(run, "", 0), -EINVAL);
	ck_assert_int_eq(api->run_refresh(run, "s.", 0), -EINVAL);
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	ck_assert_int_eq(api->run_refresh(run, long_name, 0), -ENAMETOOLONG);
	ck_assert_uint_eq(run->n_stmts, 1);
	plugin_run_free(&run);
}
END_TEST

/* A view plugin is declarations plus run_refresh(NULL): chat_telemetry's two views come out
 * in declaration order, CONCURRENTLY. */
START_TEST(test_chat_telemetry_run)
{
	const struct plugin *p;
	struct pgc_run *run;
	char err[1024];
	struct conf_job job = {.name = "refresh-chat",
	                       .more = &config_job_more_defaults,
	                       .plugin = "chat_telemetry",
	                       .line = 1};

	install_as(PLUGIN_BUILD_DIR "/chat_telemetry.so", "chat_telemetry", 0755);
	ck_assert_msg(plugin_load(dir, "chat_telemetry", &p, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(plugin_build_run(p, &job, NULL, 0, &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 2);
	ck_assert_str_eq(run->stmts[0].sql, "REFRESH MATERIALIZED VIEW CONCURRENTLY "
	                                    "\"public\".\"chat_telemetry_domain_summary\"");
	ck_assert_str_eq(run->stmts[1].sql, "REFRESH MATERIALIZED VIEW CONCURRENTLY "
	                                    "\"public\".\"chat_telemetry_model_summary\"");
	plugin_run_free(&run);
}
END_TEST

/* ---- payload_keys() and run_replace() (ABI 1.2), through lane_distribution ------------ */

/* A run of lane_distribution with PAYLOADS and max_partitions MAX ("" = default). */
static struct pgc_run *lane_run(const struct plugin *p, const char *const *payloads, size_t n,
                                const char *max)
{
	struct conf_setting settings[] = {
	    {.key = "max_partitions", .value = (char *)max, .line = 3}};
	struct conf_job job = {
	    .name = "lanes",
	    .plugin = "lane_distribution",
	    .file = "conf.d/10-l.conf",
	    .line = 1,
	    .more = &(struct conf_job_more){.settings = settings, .n_settings = *max ? 1 : 0}};
	struct pgc_run *run;
	char err[1024];

	ck_assert_msg(plugin_build_run(p, &job, payloads, n, &run, err, sizeof(err)) == 0, "%s",
	              err);
	return run;
}

/* The statements of a full run (every row replaced) and the reason it is one. */
static void expect_full(struct pgc_run *run, const char *reason)
{
	ck_assert_uint_eq(run->n_stmts, 4);
	ck_assert_str_eq(run->stmts[0].sql, "BEGIN");
	ck_assert_str_eq(run->stmts[1].sql,
	                 "DELETE FROM \"public\".\"mv_lane_score_distribution\"");
	ck_assert_int_eq(run->stmts[1].n_params, 0);
	ck_assert_int_eq(run->stmts[2].n_params, 1);
	ck_assert_ptr_null(run->stmts[2].params[0]); /* $1 NULL: every challenge */
	ck_assert_str_eq(run->stmts[3].sql, "COMMIT");
	if (reason)
		ck_assert_str_eq(run->full_reason, reason);
	else
		ck_assert_ptr_null(run->full_reason);
}

START_TEST(test_partial_runs)
{
	const struct plugin *p;
	struct pgc_run *run;
	char err[1024];

	install_as(PLUGIN_BUILD_DIR "/lane_distribution.so", "lane_distribution", 0755);
	ck_assert_msg(plugin_load(dir, "lane_distribution", &p, err, sizeof(err)) == 0, "%s", err);

	/* scheduled: everything, silently */
	run = lane_run(p, NULL, 0, "");
	expect_full(run, NULL);
	plugin_run_free(&run);

	/* the trigger's payloads: their distinct challenges, sorted, as one array parameter */
	const char *const scored[] = {
	    "{\"submission_id\" : 7, \"challenge_id\" : \"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\", "
	    "\"agent_id\" : "
	    "\"a1\"}",
	    "{\"submission_id\":8,\"challenge_id\":\"11111111-2222-3333-4444-555555555555\","
	    "\"agent_id\":\"a1\"}",
	    "{\"submission_id\":9,\"challenge_id\":\"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\","
	    "\"agent_id\":\"a2\"}",
	    "{\"challenge_id\":\"0123456789ABCDEF0123456789abcdef\"}",
	};
	run = lane_run(p, scored, 4, "");
	ck_assert_uint_eq(run->n_stmts, 4);
	ck_assert_str_eq(run->stmts[1].sql,
	                 "DELETE FROM \"public\".\"mv_lane_score_distribution\" "
	                 "WHERE \"challenge_id\" OPERATOR(pg_catalog.=) ANY ($1)");
	ck_assert_int_eq(run->stmts[1].n_params, 1);
	ck_assert_str_eq(run->stmts[1].params[0],
	                 "{\"0123456789ABCDEF0123456789abcdef\",\"11111111-2222-3333-4444-"
	                 "555555555555\",\"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\"}");
	ck_assert_str_eq(run->stmts[2].sql,
	                 "INSERT INTO \"public\".\"mv_lane_score_distribution\" SELECT * FROM "
	                 "public.mv_lane_score_distribution_rows($1::pg_catalog.uuid[])");
	ck_assert_str_eq(run->stmts[2].params[0], run->stmts[1].params[0]);
	ck_assert_ptr_null(run->full_reason);
	plugin_run_free(&run);

	/* the fallbacks, each with its reason */
	const char *const not_json[] = {scored[0], "not json"};
	run = lane_run(p, not_json, 2, "");
	ck_assert_uint_eq(run->n_stmts, 4);
	ck_assert_int_eq(run->stmts[1].n_params, 0);
	ck_assert_ptr_nonnull(run->full_reason);
	ck_assert_msg(strncmp(run->full_reason, "payload 2 of 2 is not JSON (", 28) == 0 &&
	                  strstr(run->full_reason, "): 'not json'"),
	              "%s", run->full_reason);
	plugin_run_free(&run);

	const char *const array[] = {"[1, 2]"};
	run = lane_run(p, array, 1, "");
	expect_full(run, "payload 1 of 1 is not a JSON object: '[1, 2]'");
	plugin_run_free(&run);

	const char *const bulk[] = {scored[0], "{\"bulk_load\": true, \"submissions\": 1000000}"};
	run = lane_run(p, bulk, 2, "");
	expect_full(run, "payload 2 of 2 has no \"challenge_id\": '{\"bulk_load\": true, "
	                 "\"submissions\": 1000000}'");
	plugin_run_free(&run);

	/* the key column is a uuid: anything else would fail the run, so it makes a full one */
	const char *const typed[] = {"{\"challenge_id\": 1.5}", "{\"challenge_id\": 42}",
	                             "{\"challenge_id\": \"11111111-2222-3333-4444-55555555555\"}"};
	for (size_t i = 0; i < 3; i++) {
		char expect[256];
		snprintf(expect, sizeof(expect),
		         "payload 1 of 1 has a \"challenge_id\" that is not a uuid: '%s'",
		         typed[i]);
		run = lane_run(p, typed + i, 1, "");
		expect_full(run, expect);
		plugin_run_free(&run);
	}

	run = lane_run(p, scored, 4, "2");
	expect_full(run, "the 4 payloads name 3 distinct \"challenge_id\" values, more than "
	                 "max_partitions = 2");
	plugin_run_free(&run);
	run = lane_run(p, scored, 4, "3");
	ck_assert_int_eq(run->stmts[1].n_params, 1);
	plugin_run_free(&run);
	run = lane_run(p, scored, 1, "0");
	expect_full(run, "the job allows no partial refresh (max_partitions = 0)");
	plugin_run_free(&run);

	/* a long payload is quoted cut short, and control characters escaped */
	char long_payload[300];
	snprintf(long_payload, sizeof(long_payload), "{\"x\":\n\"%0200d\"}", 0);
	const char *const longp[] = {long_payload};
	run = lane_run(p, longp, 1, "");
	ck_assert_ptr_nonnull(run->full_reason);
	ck_assert_msg(strstr(run->full_reason, "has no \"challenge_id\": '{\"x\":\\n\"000") &&
	                  strstr(run->full_reason, "000...'") && strlen(run->full_reason) < 160,
	              "%s", run->full_reason);
	plugin_run_free(&run);
}
END_TEST

/* The entries on their own: keys of any text, escaped in the array literal; integers. */
START_TEST(test_partial_api)
{
	const struct pgc_api *api = plugin_api();
	struct pgc_run *run = calloc(1, sizeof(*run));
	const char *const payloads[] = {"{\"k\":\"we\\\"ird\\\\\"}", "{\"k\":42}", "{\"k\":\"-7\"}",
	                                "{\"k\":\"c1\"}"};
	const char *const *keys;
	size_t n_keys;

	ck_assert_ptr_nonnull(run);
	ck_assert_int_eq(api->payload_keys(run, payloads, 4, "k", 0, 10, &keys, &n_keys), 1);
	ck_assert_uint_eq(n_keys, 4);
	ck_assert_int_eq(api->run_replace(run, "s.t", "k", "SELECT * FROM s.f($1)", keys, n_keys),
	                 0);
	ck_assert_uint_eq(run->n_stmts, 4);
	ck_assert_str_eq(run->stmts[1].sql,
	                 "DELETE FROM \"s\".\"t\" WHERE \"k\" OPERATOR(pg_catalog.=) ANY ($1)");
	ck_assert_str_eq(run->stmts[1].params[0], "{\"-7\",\"42\",\"c1\",\"we\\\"ird\\\\\"}");
	ck_assert_str_eq(run->stmts[2].sql, "INSERT INTO \"s\".\"t\" SELECT * FROM s.f($1)");
	/* integers: a JSON number or a string of digits */
	ck_assert_int_eq(
	    api->payload_keys(run, payloads + 1, 2, "k", PGC_KEY_INT, 10, &keys, &n_keys), 1);
	ck_assert_uint_eq(n_keys, 2);
	ck_assert_int_eq(
	    api->payload_keys(run, payloads + 3, 1, "k", PGC_KEY_INT, 10, &keys, &n_keys), 0);
	ck_assert_str_eq(run->full_reason, "payload 1 of 1 has a \"k\" that is not an integer: "
	                                   "'{\"k\":\"c1\"}'");
	/* mistakes of the plugin's */
	ck_assert_int_eq(api->payload_keys(run, payloads, 1, "k", 0x10, 10, &keys, &n_keys),
	                 -EINVAL);
	ck_assert_int_eq(api->run_replace(run, "a.b.c", "k", "SELECT 1", NULL, 0), -EINVAL);
	ck_assert_int_eq(api->run_replace(run, "t", "", "SELECT 1", NULL, 0), -EINVAL);
	ck_assert_int_eq(api->run_replace(run, "t", "k", "", NULL, 0), -EINVAL);
	ck_assert_str_eq(run->error, "payload_keys() was given flags 0x10 (a plugin bug)");
	plugin_run_free(&run);
}
END_TEST

/* The reason is logged once per run, however often the plugin asks. */
START_TEST(test_partial_fallback_logged_once)
{
	const struct pgc_api *api = plugin_api();
	struct pgc_run *run = calloc(1, sizeof(*run));
	const char *const bad[] = {"{\"agent_id\":\"a\"}"};
	const char *const *keys;
	size_t n_keys;
	char path[512];

	ck_assert_ptr_nonnull(run);
	snprintf(path, sizeof(path), "%s/log.txt", dir);
	fflush(stderr);
	int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
	ck_assert_int_eq(api->payload_keys(run, bad, 1, "challenge_id", 0, 10, &keys, &n_keys), 0);
	ck_assert_int_eq(api->payload_keys(run, bad, 1, "challenge_id", 0, 10, &keys, &n_keys), 0);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	plugin_run_free(&run);

	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	char line[1024];
	int lines = 0;
	while (fgets(line, sizeof(line), f)) {
		lines++;
		ck_assert_msg(strstr(line,
		                     "refreshing everything, not only the notified partitions: "
		                     "payload 1 of 1 has no \"challenge_id\": "
		                     "'{\"agent_id\":\"a\"}'"),
		              "%s", line);
	}
	fclose(f);
	ck_assert_int_eq(lines, 1);
}
END_TEST

/* ---- plugins broken on purpose ------------------------------------------------------ */

START_TEST(test_no_magic)
{
	install_test_plugin("no_magic");
	expect_refusal(
	    "no_magic", -ENOEXEC,
	    "plugin \"no_magic\" (@/no_magic.so): no pgcrond_plugin_magic() found; it is "
	    "not a pgcrond plugin, or it lacks PGCROND_PLUGIN_MAGIC() from "
	    "pgcrond/plugin.h");
}
END_TEST

START_TEST(test_abi_major)
{
	install_test_plugin("abi_major");
	expect_refusal("abi_major", -ENOEXEC,
	               "plugin \"abi_major\" (@/abi_major.so): ABI major version is 2 but this "
	               "pgcrond speaks 1; rebuild the plugin against this pgcrond's plugin.h");
}
END_TEST

START_TEST(test_abi_minor)
{
	char expect[512];

	/* the numbers follow the header, so an ABI minor bump does not need this test edited */
	snprintf(expect, sizeof(expect),
	         "plugin \"abi_minor\" (@/abi_minor.so): ABI minor version is %d but this "
	         "pgcrond speaks %d.%d at most; upgrade pgcrond, or rebuild the plugin against "
	         "this pgcrond's plugin.h",
	         PGC_PLUGIN_ABI_MINOR + 1, PGC_PLUGIN_ABI_MAJOR, PGC_PLUGIN_ABI_MINOR);
	install_test_plugin("abi_minor");
	expect_refusal("abi_minor", -ENOEXEC, expect);
}
END_TEST

START_TEST(test_magic_size)
{
	char expect[512];

	install_test_plugin("magic_size");
	snprintf(expect, sizeof(expect),
	         "plugin \"magic_size\" (@/magic_size.so): magic block size is %zu bytes but this "
	         "pgcrond expects %zu; rebuild the plugin against this pgcrond's plugin.h",
	         sizeof(struct pgc_plugin_magic) + 8, sizeof(struct pgc_plugin_magic));
	expect_refusal("magic_size", -ENOEXEC, expect);
}
END_TEST

START_TEST(test_name_mismatch)
{
	install_test_plugin("name_mismatch");
	expect_refusal(
	    "name_mismatch", -ENOEXEC,
	    "plugin \"name_mismatch\" (@/name_mismatch.so): magic block name is \"other\" "
	    "but the file is named name_mismatch.so; name the file after the plugin, or "
	    "fix PGCROND_PLUGIN_MAGIC()");
}
END_TEST

/* Every job key counts, the newest included (it was a list of its own, and missed it). */
START_TEST(test_core_key_setting)
{
	install_test_plugin("core_key");
	expect_refusal("core_key", -ENOEXEC,
	               "plugin \"core_key\" (@/core_key.so): setting \"timezone\" has the name of "
	               "a job key pgcrond keeps for itself; rename the setting");
}
END_TEST

START_TEST(test_init_fails)
{
	install_test_plugin("init_fails");
	expect_refusal("init_fails", -ENOEXEC,
	               "plugin \"init_fails\" (@/init_fails.so): pgcrond_plugin_init() failed: "
	               "Input/output error");
}
END_TEST

START_TEST(test_no_build_run)
{
	install_test_plugin("no_build_run");
	expect_refusal("no_build_run", -ENOEXEC,
	               "plugin \"no_build_run\" (@/no_build_run.so): declaration has no build_run "
	               "callback and no materialized view for the default run (run_refresh) to "
	               "refresh; every plugin must say what a run executes");
}
END_TEST

START_TEST(test_bad_source)
{
	install_test_plugin("bad_source");
	expect_refusal(
	    "bad_source", -ENOEXEC,
	    "plugin \"bad_source\" (@/bad_source.so): .sources names \"submissions\", "
	    "which is not a schema-qualified table name; declare it as \"schema.table\"");
}
END_TEST

START_TEST(test_not_a_shared_object)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/garbage.so", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("not an ELF file\n", f);
	fclose(f);
	ck_assert_int_eq(chmod(path, 0644), 0);

	const struct plugin *p;
	char err[1024], prefix[1024];
	ck_assert_int_eq(plugin_load(dir, "garbage", &p, err, sizeof(err)), -ENOEXEC);
	snprintf(prefix, sizeof(prefix), "plugin \"garbage\": cannot load %s: ", path);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "%s", err);
	ck_assert_ptr_nonnull(strstr(err, path + strlen(dir))); /* dlerror names the file */
}
END_TEST

/* ---- unsafe files and names --------------------------------------------------------- */

START_TEST(test_world_writable_file)
{
	install_as(PLUGIN_BUILD_DIR "/example.so", "example", 0666);
	expect_refusal("example", -EPERM,
	               "refusing plugin \"example\": @/example.so is writable by others (mode "
	               "0666); run chmod go-w @/example.so");
}
END_TEST

START_TEST(test_group_writable_file)
{
	install_as(PLUGIN_BUILD_DIR "/example.so", "example", 0775);
	expect_refusal("example", -EPERM,
	               "refusing plugin \"example\": @/example.so is writable by its group (mode "
	               "0775); run chmod go-w @/example.so");
}
END_TEST

START_TEST(test_writable_dir)
{
	install_example();
	ck_assert_int_eq(chmod(dir, 0777), 0);
	expect_refusal(
	    "example", -EPERM,
	    "refusing plugin \"example\": directory @ is writable by others (mode 0777); "
	    "run chmod go-w @");
	ck_assert_int_eq(chmod(dir, 0770), 0);
	expect_refusal("example", -EPERM,
	               "refusing plugin \"example\": directory @ is writable by its group (mode "
	               "0770); run chmod go-w @");
}
END_TEST

START_TEST(test_bad_names)
{
	expect_refusal("../example", -EINVAL,
	               "refusing plugin \"../example\": a plugin name may hold only letters, "
	               "digits, '_' and '-'; use the name of the plugin's file without \".so\"");
	expect_refusal("sub/example", -EINVAL,
	               "refusing plugin \"sub/example\": a plugin name may hold only letters, "
	               "digits, '_' and '-'; use the name of the plugin's file without \".so\"");
	expect_refusal("example.so", -EINVAL,
	               "refusing plugin \"example.so\": a plugin name may hold only letters, "
	               "digits, '_' and '-'; use the name of the plugin's file without \".so\"");
	expect_refusal("", -EINVAL,
	               "refusing plugin \"\": a plugin name may hold only letters, digits, '_' and "
	               "'-'; use the name of the plugin's file without \".so\"");
}
END_TEST

START_TEST(test_missing)
{
	expect_refusal(
	    "nothere", -ENOENT,
	    "plugin \"nothere\": @/nothere.so does not exist; plugin_dir holds no "
	    "plugins; install the plugin there, or check the plugin name and plugin_dir");
	/* the plugins that do exist are listed, sorted, with the closest name suggested */
	install_test_plugin("probe");
	install_test_plugin("no_settings");
	expect_refusal("prob", -ENOENT,
	               "plugin \"prob\": @/prob.so does not exist; did you mean \"probe\"? "
	               "plugin_dir holds: no_settings, probe; install the plugin there, or check "
	               "the plugin name and plugin_dir");

	const struct plugin *p;
	char err[1024];
	ck_assert_int_eq(plugin_load("/nonexistent/pgcrond", "x", &p, err, sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, "plugin \"x\": plugin_dir /nonexistent/pgcrond does not exist; "
	                      "create it or set plugin_dir in pgcrond.conf");
}
END_TEST

START_TEST(test_symlink)
{
	char target[512], link[512];

	install_as(PLUGIN_BUILD_DIR "/example.so", "real", 0755);
	snprintf(target, sizeof(target), "%s/real.so", dir);
	snprintf(link, sizeof(link), "%s/example.so", dir);
	ck_assert_int_eq(symlink(target, link), 0);
	expect_refusal("example", -EPERM,
	               "refusing plugin \"example\": @/example.so is a symbolic link; install the "
	               "plugin file itself in @ (a link could lead outside the checked directory)");
}
END_TEST

START_TEST(test_not_regular)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/example.so", dir);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	expect_refusal("example", -EPERM,
	               "refusing plugin \"example\": @/example.so is not a regular file; install "
	               "the plugin's .so file there");
}
END_TEST

START_TEST(test_foreign_owner)
{
	char path[512], expect[1024];

	/* Only root can give a file away; as anyone else there is nothing to test. */
	if (geteuid() != 0)
		return;
	install_example();
	snprintf(path, sizeof(path), "%s/example.so", dir);
	ck_assert_int_eq(chown(path, 12345, 12345), 0);
	snprintf(expect, sizeof(expect),
	         "refusing plugin \"example\": @/example.so is owned by uid 12345, neither root "
	         "nor the user pgcrond runs as (uid 0); run pgcrond as its owner (sudo -u "
	         "#12345 pgcrond ...), or, if only root should change it, chown root "
	         "@/example.so");
	expect_refusal("example", -EPERM, expect);
	ck_assert_int_eq(chown(path, 0, 0), 0);
	ck_assert_int_eq(chown(dir, 12345, 12345), 0);
	expect_refusal("example", -EPERM,
	               "refusing plugin \"example\": directory @ is owned by uid 12345, neither "
	               "root nor the user pgcrond runs as (uid 0); run pgcrond as its owner "
	               "(sudo -u #12345 pgcrond ...), or, if only root should change it, "
	               "chown root @");
}
END_TEST

/* ---- registry, settings, runs ------------------------------------------------------- */

START_TEST(test_registry)
{
	struct plugin_registry *reg;
	const struct plugin *a, *b;
	char err[1024], first[1024];

	install_example();
	ck_assert_int_eq(plugin_registry_new(dir, &reg), 0);
	ck_assert_int_eq(plugin_registry_get(reg, "example", &a, err, sizeof(err)), 0);
	ck_assert_int_eq(plugin_registry_get(reg, "example", &b, err, sizeof(err)), 0);
	ck_assert_ptr_eq(a, b);
	ck_assert_ptr_eq(plugin_registry_find(reg, "example"), a);
	ck_assert_uint_eq(reg->n_plugins, 1);

	ck_assert_int_lt(plugin_registry_get(reg, "nothere", &a, first, sizeof(first)), 0);
	ck_assert_ptr_null(a);
	/* a failure is tried once and remembered, even if the file appears meanwhile */
	install_as(PLUGIN_BUILD_DIR "/example.so", "nothere", 0755);
	ck_assert_int_eq(plugin_registry_get(reg, "nothere", &a, err, sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, first);
	ck_assert_ptr_null(plugin_registry_find(reg, "nothere"));
	plugin_registry_free(&reg);
	ck_assert_ptr_null(reg);
}
END_TEST

START_TEST(test_probe_declaration)
{
	const struct plugin *p;
	char err[1024];

	install_test_plugin("probe");
	ck_assert_msg(plugin_load(dir, "probe", &p, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(p->version, "2.3.4");
	ck_assert_uint_eq(p->n_relations, 2);
	ck_assert_str_eq(p->decl.relations[1].name, "analytics.probe_log");
	ck_assert_int_eq(p->decl.relations[1].kind, PGC_RELATION_TABLE);
	ck_assert_uint_eq(p->n_reads, 1);
	ck_assert_str_eq(p->decl.reads[0], "example");
	ck_assert_uint_eq(p->n_settings, 4);
}
END_TEST

START_TEST(test_probe_runs)
{
	const struct plugin *p;
	struct pgc_run *run;
	char err[1024];
	struct conf_job job = {.name = "j",
	                       .more = &config_job_more_defaults,
	                       .plugin = "probe",
	                       .file = "f.conf",
	                       .line = 3};

	install_test_plugin("probe");
	ck_assert_msg(plugin_load(dir, "probe", &p, err, sizeof(err)) == 0, "%s", err);

	/* defaults: declared ones, and the getter's DEF for "label" (declared without one) */
	ck_assert_int_eq(plugin_build_run(p, &job, NULL, 0, &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 1);
	ck_assert_str_eq(run->stmts[0].sql, "SELECT $1, $2, $3, $4");
	ck_assert_int_eq(run->stmts[0].n_params, 4);
	ck_assert_str_eq(run->stmts[0].params[0], "fallback");
	ck_assert_str_eq(run->stmts[0].params[1], "100");
	ck_assert_str_eq(run->stmts[0].params[2], "5000");
	ck_assert_ptr_null(run->stmts[0].params[3]);
	plugin_run_free(&run);

	struct conf_setting settings[] = {
	    {.key = "label", .value = "it's \"x\"", .line = 4},
	    {.key = "batch", .value = "-7", .line = 5},
	    {.key = "lock_timeout", .value = "2m", .line = 6},
	    {.key = "fail", .value = "OFF", .line = 7},
	};
	job.more = &(struct conf_job_more){.settings = settings, .n_settings = 4};
	const char *payloads[] = {"a", "'; DROP TABLE x; --"};
	ck_assert_int_eq(plugin_build_run(p, &job, payloads, 2, &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 3);
	ck_assert_str_eq(run->stmts[0].params[0], "it's \"x\"");
	ck_assert_str_eq(run->stmts[0].params[1], "-7");
	ck_assert_str_eq(run->stmts[0].params[2], "120000");
	ck_assert_str_eq(run->stmts[0].params[3], "set");
	ck_assert_str_eq(run->stmts[2].sql, "SELECT pg_catalog.length($1)");
	ck_assert_int_eq(run->stmts[2].n_params, 1);
	ck_assert_str_eq(run->stmts[2].params[0], "'; DROP TABLE x; --");
	plugin_run_free(&run);

	settings[3].value = "yes";
	ck_assert_int_eq(plugin_build_run(p, &job, NULL, 0, &run, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(run);
	ck_assert_str_eq(err, "plugin \"probe\" could not build the run: asked to fail by job j");
}
END_TEST

static bool has_diag(const struct diag_list *dl, const char *file, int line, const char *message)
{
	for (size_t i = 0; i < dl->n; i++)
		if (dl->items[i].line == line && strcmp(dl->items[i].message, message) == 0 &&
		    dl->items[i].file && strcmp(dl->items[i].file, file) == 0)
			return true;
	return false;
}

static void dump_diags(const struct diag_list *dl)
{
	diag_print(dl, stderr);
}

START_TEST(test_check_config)
{
	struct conf_setting s_unknown[] = {{.key = "analyse", .value = "true", .line = 5}};
	struct conf_setting s_bool[] = {{.key = "analyze", .value = "maybe", .line = 12}};
	struct conf_setting s_int[] = {{.key = "batch", .value = "ten", .line = 22}};
	struct conf_setting s_range[] = {
	    {.key = "batch", .value = "99999999999999999999", .line = 23}};
	struct conf_setting s_dur[] = {{.key = "lock_timeout", .value = "5 parsecs", .line = 32}};
	struct conf_setting s_check[] = {{.key = "batch", .value = "0", .line = 42}};
	struct conf_setting s_ok[] = {{.key = "batch", .value = "10", .line = 52},
	                              {.key = "lock_timeout", .value = "250ms", .line = 53}};
	struct conf_setting s_chan[] = {{.key = "notify_channel", .value = "", .line = 62}};
	struct conf_setting s_other[] = {{.key = "anything", .value = "1", .line = 72}};
	struct conf_setting s_core_typo[] = {{.key = "retrys", .value = "3", .line = 122}};
	struct conf_job jobs[] = {
	    {.name = "j1",
	     .plugin = "example",
	     .more = &(struct conf_job_more){.settings = s_unknown, .n_settings = 1},
	     .file = "conf.d/10.conf",
	     .line = 1},
	    {.name = "j2",
	     .plugin = "example",
	     .more = &(struct conf_job_more){.settings = s_bool, .n_settings = 1},
	     .file = "conf.d/10.conf",
	     .line = 10},
	    {.name = "j3",
	     .plugin = "probe",
	     .more = &(struct conf_job_more){.settings = s_int, .n_settings = 1},
	     .file = "conf.d/20.conf",
	     .line = 20},
	    {.name = "j3b",
	     .plugin = "probe",
	     .more = &(struct conf_job_more){.settings = s_range, .n_settings = 1},
	     .file = "conf.d/20.conf",
	     .line = 21},
	    {.name = "j4",
	     .plugin = "probe",
	     .more = &(struct conf_job_more){.settings = s_dur, .n_settings = 1},
	     .file = "conf.d/20.conf",
	     .line = 30},
	    {.name = "j5",
	     .plugin = "probe",
	     .more = &(struct conf_job_more){.settings = s_check, .n_settings = 1},
	     .file = "conf.d/20.conf",
	     .line = 40},
	    {.name = "j6",
	     .plugin = "probe",
	     .more = &(struct conf_job_more){.settings = s_ok, .n_settings = 2},
	     .file = "conf.d/20.conf",
	     .line = 50},
	    {.name = "j7",
	     .plugin = "example",
	     .more = &(struct conf_job_more){.settings = s_chan, .n_settings = 1},
	     .file = "conf.d/10.conf",
	     .line = 60},
	    /* reported at its plugin = line */
	    {.name = "j8",
	     .more = &config_job_more_defaults,
	     .plugin = "nothere",
	     .file = "conf.d/30.conf",
	     .line = 80,
	     .plugin_line = 82},
	    {.name = "j9",
	     .more = &config_job_more_defaults,
	     .plugin = "nothere",
	     .file = "conf.d/30.conf",
	     .line = 90},
	    {.name = "j10",
	     .more = &config_job_more_defaults,
	     .command = "SELECT 1",
	     .file = "conf.d/40.conf",
	     .line = 100},
	    {.name = "j11",
	     .more = &config_job_more_defaults,
	     .plugin = "name_mismatch",
	     .file = "conf.d/40.conf",
	     .line = 110},
	    {.name = "j12",
	     .plugin = "no_settings",
	     .more = &(struct conf_job_more){.settings = s_other, .n_settings = 1},
	     .file = "conf.d/40.conf",
	     .line = 70},
	    {.name = "j13",
	     .plugin = "no_settings",
	     .more = &(struct conf_job_more){.settings = s_core_typo, .n_settings = 1},
	     .file = "conf.d/40.conf",
	     .line = 120},
	};
	struct pgc_config cfg = {.file = "pgcrond.conf",
	                         .plugin_dir = dir,
	                         .jobs = jobs,
	                         .n_jobs = sizeof(jobs) / sizeof(jobs[0])};
	struct diag_list dl = {0};
	struct plugin_registry *reg;
	char msg[1024];

	install_example();
	install_test_plugin("probe");
	install_test_plugin("name_mismatch");
	install_test_plugin("no_settings");

	ck_assert_int_eq(plugin_check_config(&cfg, &reg, &dl), -EINVAL);
	ck_assert_ptr_nonnull(reg);
	dump_diags(&dl);
	ck_assert(
	    has_diag(&dl, "conf.d/10.conf", 5,
	             "job \"j1\": plugin \"example\" has no setting \"analyse\"; did you mean "
	             "\"analyze\"?"));
	ck_assert(
	    has_diag(&dl, "conf.d/10.conf", 12,
	             "job \"j2\": setting \"analyze\": \"maybe\" is not a boolean; write true "
	             "or false"));
	ck_assert(
	    has_diag(&dl, "conf.d/20.conf", 22,
	             "job \"j3\": setting \"batch\": \"ten\" is not an integer; write a whole "
	             "number such as 10"));
	ck_assert(
	    has_diag(&dl, "conf.d/20.conf", 23,
	             "job \"j3b\": setting \"batch\": \"99999999999999999999\" is out of range "
	             "for a 64-bit integer"));
	/* the duration's own wording belongs to duration_parse() */
	static const char dur[] = "job \"j4\": setting \"lock_timeout\": ";
	bool found_duration = false;
	for (size_t i = 0; i < dl.n; i++)
		if (dl.items[i].line == 32 &&
		    strncmp(dl.items[i].message, dur, sizeof(dur) - 1) == 0 &&
		    strstr(dl.items[i].message, "5 parsecs"))
			found_duration = true;
	ck_assert(found_duration);
	ck_assert(has_diag(&dl, "conf.d/20.conf", 42,
	                   "job \"j5\": setting \"batch\": must be at least 1"));
	ck_assert(has_diag(&dl, "conf.d/10.conf", 62,
	                   "job \"j7\": setting \"notify_channel\": must be 1 to 63 bytes long"));
	snprintf(msg, sizeof(msg),
	         "job \"j8\": plugin \"nothere\": %s/nothere.so does not exist; plugin_dir holds: "
	         "example, name_mismatch, no_settings, probe; install the plugin there, or check "
	         "the plugin name and plugin_dir",
	         dir);
	ck_assert(has_diag(&dl, "conf.d/30.conf", 82, msg));
	msg[6] = '9'; /* the same failure, reported again for the other job naming it */
	ck_assert(has_diag(&dl, "conf.d/30.conf", 90, msg));
	snprintf(
	    msg, sizeof(msg),
	    "job \"j11\": plugin \"name_mismatch\" (%s/name_mismatch.so): magic block name is "
	    "\"other\" but the file is named name_mismatch.so; name the file after the plugin, "
	    "or fix PGCROND_PLUGIN_MAGIC()",
	    dir);
	ck_assert(has_diag(&dl, "conf.d/40.conf", 110, msg));
	ck_assert(
	    has_diag(&dl, "conf.d/40.conf", 72,
	             "job \"j12\": plugin \"no_settings\" has no setting \"anything\"; it takes "
	             "no settings"));
	/* a standard key's typo in a plugin job gets the message it gets in a command job */
	ck_assert(has_diag(&dl, "conf.d/40.conf", 122,
	                   "unknown key \"retrys\" in job \"j13\"; did you mean \"retries\"?"));
	ck_assert_uint_eq(dl.n, 12); /* j6 and j10 are fine */

	ck_assert_ptr_nonnull(plugin_registry_find(reg, "example"));
	ck_assert_ptr_nonnull(plugin_registry_find(reg, "probe"));
	ck_assert_ptr_null(plugin_registry_find(reg, "nothere"));
	ck_assert_uint_eq(reg->n_plugins, 3);
	plugin_registry_free(&reg);
	diag_clear(&dl);
}
END_TEST

START_TEST(test_check_config_clean)
{
	struct conf_setting s[] = {{.key = "analyze", .value = "false", .line = 3}};
	struct conf_job jobs[] = {
	    {.name = "a",
	     .plugin = "example",
	     .more = &(struct conf_job_more){.settings = s, .n_settings = 1},
	     .file = "x.conf",
	     .line = 1},
	    {.name = "b",
	     .more = &config_job_more_defaults,
	     .plugin = "example",
	     .file = "x.conf",
	     .line = 9},
	};
	struct pgc_config cfg = {.plugin_dir = dir, .jobs = jobs, .n_jobs = 2};
	struct diag_list dl = {0};
	struct plugin_registry *reg;

	install_example();
	ck_assert_int_eq(plugin_check_config(&cfg, &reg, &dl), 0);
	dump_diags(&dl);
	ck_assert_uint_eq(dl.n, 0);
	ck_assert_uint_eq(reg->n_plugins, 1);
	plugin_registry_free(&reg);
}
END_TEST

/* ABI 1.1 appended job_relation and job_install: a plugin built against 1.0 still loads,
 * and the fields its declaration does not have read as NULL (whatever lies past its size). */
START_TEST(test_abi_1_0_plugin)
{
	const struct plugin *p;
	struct pgc_relation_decl *rels;
	struct pgc_run *run;
	size_t n;
	char err[1024];
	struct conf_job job = {.name = "j",
	                       .more = &config_job_more_defaults,
	                       .plugin = "abi_1_0",
	                       .file = "f.conf",
	                       .line = 1};

	install_test_plugin("abi_1_0");
	ck_assert_msg(plugin_load(dir, "abi_1_0", &p, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(p->abi_minor, 0);
	ck_assert_ptr_null(p->decl.job_relation);
	ck_assert_ptr_null(p->decl.job_install);
	ck_assert_int_eq(plugin_job_relations(p, &job, &rels, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(rels[0].name, "public.t10");
	ck_assert_uint_eq(rels[0].flags, PGC_RELATION_CONCURRENT);
	ck_assert_ptr_null(rels[1].name);
	plugin_relations_free(&rels);
	ck_assert_ptr_null(rels);
	ck_assert_int_eq(plugin_build_install(p, &job, &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 0);
	plugin_run_free(&run);
}
END_TEST

static Suite *plugin_suite(void)
{
	Suite *s = suite_create("plugin");
	TCase *tc;

	tc = tcase_create("quote");
	tcase_add_test(tc, test_quote_ident);
	tcase_add_test(tc, test_quote_qualified);
	tcase_add_test(tc, test_api_table);
	suite_add_tcase(s, tc);

	tc = tcase_create("load");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_example_loads);
	tcase_add_test(tc, test_example_build_run);
	tcase_add_test(tc, test_run_refresh);
	tcase_add_test(tc, test_run_refresh_direct);
	tcase_add_test(tc, test_chat_telemetry_run);
	tcase_add_test(tc, test_partial_runs);
	tcase_add_test(tc, test_partial_fallback_logged_once);
	tcase_add_test(tc, test_partial_api);
	tcase_add_test(tc, test_no_magic);
	tcase_add_test(tc, test_abi_major);
	tcase_add_test(tc, test_abi_minor);
	tcase_add_test(tc, test_abi_1_0_plugin);
	tcase_add_test(tc, test_magic_size);
	tcase_add_test(tc, test_name_mismatch);
	tcase_add_test(tc, test_core_key_setting);
	tcase_add_test(tc, test_init_fails);
	tcase_add_test(tc, test_no_build_run);
	tcase_add_test(tc, test_bad_source);
	tcase_add_test(tc, test_not_a_shared_object);
	suite_add_tcase(s, tc);

	tc = tcase_create("safety");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_world_writable_file);
	tcase_add_test(tc, test_group_writable_file);
	tcase_add_test(tc, test_writable_dir);
	tcase_add_test(tc, test_bad_names);
	tcase_add_test(tc, test_missing);
	tcase_add_test(tc, test_symlink);
	tcase_add_test(tc, test_not_regular);
	tcase_add_test(tc, test_foreign_owner);
	suite_add_tcase(s, tc);

	tc = tcase_create("config");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_registry);
	tcase_add_test(tc, test_probe_declaration);
	tcase_add_test(tc, test_probe_runs);
	tcase_add_test(tc, test_check_config);
	tcase_add_test(tc, test_check_config_clean);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(plugin_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
