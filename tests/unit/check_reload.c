/* reload: a new configuration is built on a background job and delivered through the loop, with
 * the diff against the configuration in force; a build that fails says why; a build under way
 * when the reloader is freed is dropped without a word. */
#include <check.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "reload.h"

static char tree[64];

static const char *at(const char *rel)
{
	static char buf[4][256];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s%s", tree, rel);
	return buf[i];
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, 0644), 0);
}

static void make_tree(void)
{
	snprintf(tree, sizeof(tree), "/tmp/pgcrond-reload-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tree));
	ck_assert_int_eq(chmod(tree, 0755), 0);
	ck_assert_int_eq(mkdir(at("/conf.d"), 0755), 0);
	ck_assert_int_eq(mkdir(at("/state"), 0700), 0);
	write_text(at("/pgcrond.conf"),
	           "databases = { analytics = { conninfo = \"dbname=analytics\"; }; };\n"
	           "state_dir = \"state\";\nconf_dir = \"conf.d\";\ntimezone = \"UTC\";\n");
	write_text(at("/conf.d/10-a.conf"),
	           "job = { name = \"a\"; database = \"analytics\"; command = \"SELECT 1\";\n"
	           "        schedule = \"@daily\"; };\n");
}

static void remove_tree(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tree);
	ck_assert_int_eq(system(cmd), 0);
}

/* What the reloader delivered, kept for the test. */
struct got {
	struct event_base *base;
	int calls;
	struct reload_result res;
};

static void got_it(void *arg, struct reload_result *res)
{
	struct got *g = arg;
	g->calls++;
	g->res = *res; /* all of it taken */
	memset(res, 0, sizeof(*res));
	event_base_loopexit(g->base, NULL);
}

/* The configuration the daemon starts with. */
static struct pgc_config *first_config(void)
{
	struct reload_result r;
	ck_assert_int_eq(reload_build(at("/pgcrond.conf"), NULL, NULL, NULL, NULL, &r), 0);
	struct pgc_config *cfg = r.cfg;
	r.cfg = NULL;
	reload_result_clear(&r);
	return cfg;
}

START_TEST(built_off_the_loop_with_its_diff)
{
	make_tree();
	struct pgc_config *old = first_config();
	ck_assert_uint_eq(old->n_jobs, 1);
	/* the operator edits a and adds b, then sends SIGHUP */
	write_text(at("/conf.d/10-a.conf"),
	           "job = { name = \"a\"; database = \"analytics\"; command = \"SELECT 1\";\n"
	           "        schedule = \"@hourly\"; };\n");
	write_text(at("/conf.d/20-b.conf"),
	           "job = { name = \"b\"; database = \"analytics\"; command = \"SELECT 2\";\n"
	           "        schedule = \"@daily\"; after = [\"a\"]; };\n");

	struct got g = {.base = event_base_new()};
	struct reloader *l;
	ck_assert_int_eq(reloader_new(g.base, got_it, &g, &l), 0);
	ck_assert_int_eq(reloader_start(l, at("/pgcrond.conf"), NULL, NULL, NULL, old), 0);
	ck_assert_int_eq(g.calls, 0); /* delivered through the loop, never from start */
	ck_assert(reloader_busy(l));
	ck_assert_int_eq(reloader_start(l, at("/pgcrond.conf"), NULL, NULL, NULL, old), -EBUSY);
	event_base_dispatch(g.base);

	ck_assert_int_eq(g.calls, 1);
	ck_assert(!reloader_busy(l));
	ck_assert_int_eq(g.res.rc, 0);
	ck_assert_uint_eq(g.res.dl.n, 0);
	ck_assert_ptr_nonnull(g.res.files);
	ck_assert_ptr_nonnull(g.res.plugins);
	ck_assert_ptr_nonnull(g.res.tz);
	ck_assert_uint_eq(g.res.cfg->n_jobs, 2);
	ck_assert_int_eq(g.res.diff_rc, 0);
	ck_assert_uint_eq(g.res.diff.added, 1);
	ck_assert_uint_eq(g.res.diff.changed, 1);
	ck_assert_uint_eq(g.res.diff.removed, 0);
	ck_assert_str_eq(g.res.diff.lines[0],
	                 "changed job \"a\": schedule \"@daily\" -> \"@hourly\"");
	ck_assert_str_eq(g.res.diff.lines[1], "added job \"b\"");

	/* the jobs made in SQL changed: the files in force merged again, nothing read */
	struct pgc_config *files = g.res.files, *now = g.res.cfg;
	g.res.files = g.res.cfg = NULL;
	reload_result_clear(&g.res);
	ck_assert_int_eq(reloader_start(l, NULL, files, NULL, NULL, now), 0);
	event_base_dispatch(g.base);
	ck_assert_int_eq(g.calls, 2);
	ck_assert_int_eq(g.res.rc, 0);
	ck_assert_ptr_null(g.res.files);
	ck_assert_uint_eq(g.res.cfg->n_jobs, 2);
	ck_assert_uint_eq(g.res.diff.n, 0);
	reload_result_clear(&g.res);

	reloader_free(&l);
	ck_assert_ptr_null(l);
	config_free(&now);
	config_free(&files);
	config_free(&old);
	event_base_free(g.base);
	remove_tree();
}
END_TEST

/* Each background step's failure comes back with the file's problem; nothing is kept. */
START_TEST(a_failed_build_says_why)
{
	make_tree();
	struct pgc_config *old = first_config();
	struct got g = {.base = event_base_new()};
	struct reloader *l;
	ck_assert_int_eq(reloader_new(g.base, got_it, &g, &l), 0);

	/* the parse (the first step) */
	write_text(at("/conf.d/20-b.conf"), "job = { name = \"b\"; schedule = ; };\n");
	ck_assert_int_eq(reloader_start(l, at("/pgcrond.conf"), NULL, NULL, NULL, old), 0);
	event_base_dispatch(g.base);
	ck_assert_int_eq(g.calls, 1);
	ck_assert_int_lt(g.res.rc, 0);
	ck_assert_uint_ge(g.res.dl.n, 1);
	ck_assert_ptr_nonnull(strstr(g.res.dl.items[0].file, "20-b.conf"));
	ck_assert_ptr_null(g.res.cfg);
	reload_result_clear(&g.res);

	/* the job graph (the last step) */
	write_text(at("/conf.d/20-b.conf"),
	           "jobs = ( { name = \"b\"; database = \"analytics\"; command = \"SELECT 2\";\n"
	           "           schedule = \"@daily\"; after = [\"c\"]; },\n"
	           "         { name = \"c\"; database = \"analytics\"; command = \"SELECT 3\";\n"
	           "           schedule = \"@daily\"; after = [\"b\"]; } );\n");
	ck_assert_int_eq(reloader_start(l, at("/pgcrond.conf"), NULL, NULL, NULL, old), 0);
	event_base_dispatch(g.base);
	ck_assert_int_eq(g.calls, 2);
	ck_assert_int_lt(g.res.rc, 0);
	ck_assert_uint_ge(g.res.dl.n, 1);
	ck_assert_ptr_nonnull(strstr(g.res.dl.items[0].message, "cycle"));
	ck_assert_ptr_null(g.res.cfg);
	ck_assert_ptr_null(g.res.plugins);
	ck_assert_ptr_null(g.res.tz);
	ck_assert_uint_eq(g.res.diff.n, 0);
	reload_result_clear(&g.res);

	reloader_free(&l);
	config_free(&old);
	event_base_free(g.base);
	remove_tree();
}
END_TEST

START_TEST(free_drops_a_build_under_way)
{
	make_tree();
	struct pgc_config *old = first_config();
	struct got g = {.base = event_base_new()};
	struct reloader *l;
	ck_assert_int_eq(reloader_new(g.base, got_it, &g, &l), 0);
	ck_assert_int_eq(reloader_start(l, at("/pgcrond.conf"), NULL, NULL, NULL, old), 0);
	reloader_free(&l); /* waits for the step under way; its result goes (ASan: no leak) */
	ck_assert_int_eq(g.calls, 0);
	config_free(&old);
	event_base_free(g.base);
	remove_tree();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("reload");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, built_off_the_loop_with_its_diff);
	tcase_add_test(tc, a_failed_build_says_why);
	tcase_add_test(tc, free_drops_a_build_under_way);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
