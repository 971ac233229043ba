/* The worked example of docs/writing-a-plugin.md, built the way a plugin author builds it:
 * out of tree, with its own Makefile and only the public header (the -I that
 * `pkg-config --cflags pgcrond-plugin` gives), installed into a plugin directory with the
 * modes the loader demands, then loaded and asked for a run. Also checks that the guide
 * shows the example's source exactly, so the two cannot drift apart. */
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
#include "plugin.h"

#define REPO_DIR TEST_SOURCE_DIR "/.."
#define EXAMPLE_DIR REPO_DIR "/docs/examples/top_agents"

static char build_dir[128], plugin_dir[128];

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void copy_file(const char *src, const char *dst, mode_t mode)
{
	char *text = slurp(src);
	FILE *f = fopen(dst, "w");

	ck_assert_msg(f != NULL, "cannot write %s", dst);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(dst, mode), 0);
	free(text);
}

static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char child[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
		unlink(child);
	}
	closedir(d);
	rmdir(path);
}

static void setup(void)
{
	snprintf(build_dir, sizeof(build_dir), "/tmp/pgcrond-outoftree-build-XXXXXX");
	snprintf(plugin_dir, sizeof(plugin_dir), "/tmp/pgcrond-outoftree-plugins-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(build_dir));
	ck_assert_ptr_nonnull(mkdtemp(plugin_dir));
	ck_assert_int_eq(chmod(plugin_dir, 0755), 0);
}

static void teardown(void)
{
	remove_tree(build_dir);
	remove_tree(plugin_dir);
}

/* Build with the example's own Makefile. PLUGIN_CFLAGS stands in for what pkg-config
 * would say once pgcrond-dev is installed: the -I of the public header, nothing of the
 * core's sources. -Werror: the example must build cleanly for its readers. */
START_TEST(test_build_and_load)
{
	const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
	char cmd[2048], src[512], dst[512], err[1024];
	const struct plugin *p;
	struct pgc_run *run;

	snprintf(dst, sizeof(dst), "%s/top_agents.c", build_dir);
	copy_file(EXAMPLE_DIR "/top_agents.c", dst, 0644);
	snprintf(dst, sizeof(dst), "%s/Makefile", build_dir);
	copy_file(EXAMPLE_DIR "/Makefile", dst, 0644);
	int n = snprintf(cmd, sizeof(cmd),
	                 "make -s -C '%s' CC='%s' PKG_CONFIG=true "
	                 "CFLAGS='-O2 -Wall -Wextra -Werror' "
	                 "PLUGIN_CFLAGS='-I%s/core/include -fPIC -fvisibility=hidden' "
	                 "top_agents.so",
	                 build_dir, cc, REPO_DIR);
	ck_assert(n > 0 && (size_t)n < sizeof(cmd));
	ck_assert_msg(system(cmd) == 0, "the example did not build: %s", cmd);

	/* what `make install` does: a plain file, writable only by its owner */
	snprintf(src, sizeof(src), "%s/top_agents.so", build_dir);
	snprintf(dst, sizeof(dst), "%s/top_agents.so", plugin_dir);
	FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
	ck_assert(in && out);
	char buf[65536];
	size_t got;
	while ((got = fread(buf, 1, sizeof(buf), in)) > 0)
		ck_assert_uint_eq(fwrite(buf, 1, got, out), got);
	fclose(in);
	ck_assert_int_eq(fclose(out), 0);
	ck_assert_int_eq(chmod(dst, 0644), 0);

	ck_assert_msg(plugin_load(plugin_dir, "top_agents", &p, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(p->version, "1.1.0");
	ck_assert_uint_eq(p->abi_minor, PGC_PLUGIN_ABI_MINOR);
	ck_assert_uint_eq(p->n_relations, 2);
	ck_assert_str_eq(p->decl.relations[0].name, "public.mv_top_agents");
	ck_assert_str_eq(p->decl.relations[1].name, "public.top_agents_by_challenge");
	ck_assert_uint_eq(p->decl.relations[0].flags, PGC_RELATION_CONCURRENT);
	ck_assert_ptr_nonnull(strstr(p->decl.install_sql, "CREATE UNIQUE INDEX IF NOT EXISTS "
	                                                  "mv_top_agents_agent_id"));
	/* the row function's body resolves nothing through the job's search_path, and install
	 * passes it a typed NULL (docs/writing-a-plugin.md, "Names in a row function") */
	ck_assert_ptr_nonnull(
	    strstr(p->decl.install_sql, "_rows(challenge_ids pg_catalog.uuid[])"));
	ck_assert_ptr_nonnull(strstr(p->decl.install_sql, "pg_catalog.count(*)"));
	ck_assert_ptr_nonnull(strstr(p->decl.install_sql, "b.id OPERATOR(pg_catalog.=) r.bout_id"));
	ck_assert_ptr_nonnull(strstr(p->decl.install_sql,
	                             "b.challenge_id OPERATOR(pg_catalog.=) ANY (challenge_ids)"));
	ck_assert_ptr_nonnull(strstr(p->decl.install_sql, "_rows(NULL::pg_catalog.uuid[])"));
	/* hidden visibility: nothing but the two entry points is exported */
	ck_assert_ptr_nonnull(dlsym(p->handle, PGC_PLUGIN_INIT_SYMBOL));
	ck_assert_ptr_null(dlsym(p->handle, "build_run"));
	ck_assert_ptr_null(dlsym(p->handle, "api"));

	struct conf_setting settings[] = {{.key = "notify_channel", .value = "", .line = 7}};
	struct conf_job job = {.name = "refresh-top-agents",
	                       .more = &config_job_more_defaults,
	                       .plugin = "top_agents",
	                       .file = "conf.d/50-top-agents.conf",
	                       .line = 2};
	ck_assert_int_eq(plugin_build_run(p, &job, NULL, 0, &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 5);
	ck_assert_str_eq(run->stmts[0].sql,
	                 "REFRESH MATERIALIZED VIEW CONCURRENTLY \"public\".\"mv_top_agents\"");
	/* a scheduled run: every challenge's rows */
	ck_assert_str_eq(run->stmts[1].sql, "BEGIN");
	ck_assert_str_eq(run->stmts[2].sql, "DELETE FROM \"public\".\"top_agents_by_challenge\"");
	ck_assert_str_eq(
	    run->stmts[3].sql,
	    "INSERT INTO \"public\".\"top_agents_by_challenge\" "
	    "SELECT * FROM public.top_agents_by_challenge_rows($1::pg_catalog.uuid[])");
	ck_assert_ptr_null(run->stmts[3].params[0]);
	ck_assert_str_eq(run->stmts[4].sql, "COMMIT");
	plugin_run_free(&run);

	/* a notified run: the challenges the payloads name */
	const char *const payloads[] = {
	    "{\"bout_id\": 7, \"challenge_id\": \"99999999-0000-0000-0000-000000000000\"}",
	    "{\"bout_id\": 8, \"challenge_id\": \"11111111-0000-0000-0000-000000000000\"}"};
	ck_assert_int_eq(plugin_build_run(p, &job, payloads, 2, &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 5);
	ck_assert_str_eq(run->stmts[2].sql,
	                 "DELETE FROM \"public\".\"top_agents_by_challenge\" "
	                 "WHERE \"challenge_id\" OPERATOR(pg_catalog.=) ANY ($1)");
	const char *both = "{\"11111111-0000-0000-0000-000000000000\","
	                   "\"99999999-0000-0000-0000-000000000000\"}";
	ck_assert_str_eq(run->stmts[2].params[0], both);
	ck_assert_str_eq(run->stmts[3].params[0], both);
	plugin_run_free(&run);

	/* its check_settings() speaks through `pgcrond check` with FILE:LINE */
	struct diag_list dl = {0};
	job.more = &(struct conf_job_more){.settings = settings, .n_settings = 1};
	ck_assert_int_eq(plugin_check_job(p, &job, &dl), -EINVAL);
	ck_assert_uint_eq(dl.n, 1);
	ck_assert_str_eq(dl.items[0].file, "conf.d/50-top-agents.conf");
	ck_assert_int_eq(dl.items[0].line, 7);
	ck_assert_str_eq(dl.items[0].message, "job \"refresh-top-agents\": setting "
	                                      "\"notify_channel\": must be 1 to 63 bytes long");
	diag_clear(&dl);

	settings[0].value = "top_agents_changed";
	ck_assert_int_eq(plugin_check_job(p, &job, &dl), 0);
	ck_assert_int_eq(plugin_build_run(p, &job, NULL, 0, &run, err, sizeof(err)), 0);
	ck_assert_uint_eq(run->n_stmts, 6);
	ck_assert_str_eq(run->stmts[5].sql, "SELECT pg_catalog.pg_notify($1, $2)");
	ck_assert_int_eq(run->stmts[5].n_params, 2);
	ck_assert_str_eq(run->stmts[5].params[0], "top_agents_changed");
	ck_assert_str_eq(run->stmts[5].params[1], "public.mv_top_agents");
	plugin_run_free(&run);
}
END_TEST

/* The guide shows the example's full source; the test above builds the file. */
START_TEST(test_guide_shows_the_source)
{
	char *guide = slurp(REPO_DIR "/docs/writing-a-plugin.md");
	char *source = slurp(EXAMPLE_DIR "/top_agents.c");
	char *makefile = slurp(EXAMPLE_DIR "/Makefile");

	ck_assert_msg(
	    strstr(guide, source) != NULL,
	    "docs/writing-a-plugin.md does not show docs/examples/top_agents/top_agents.c "
	    "verbatim: paste the file into the guide again");
	ck_assert_msg(strstr(guide, makefile) != NULL,
	              "docs/writing-a-plugin.md does not show docs/examples/top_agents/Makefile "
	              "verbatim: paste the file into the guide again");
	free(guide);
	free(source);
	free(makefile);
}
END_TEST

static Suite *outoftree_suite(void)
{
	Suite *s = suite_create("outoftree");
	TCase *tc = tcase_create("top_agents");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_build_and_load);
	tcase_add_test(tc, test_guide_shows_the_source);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(outoftree_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
