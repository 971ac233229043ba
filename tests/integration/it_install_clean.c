/* A fresh install with the shipped configuration is clean: against a bare
 * database (no analytics tables), `pgcrond install` with the shipped conf.d exits 0 and
 * prints only its own lines, no server NOTICE and no error; the analytics view jobs are
 * shipped under conf.d/examples/ and not loaded. When a job's objects cannot be created,
 * install never says they were. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define DB "it_install_clean"

START_TEST(fresh_install_with_the_shipped_conf)
{
	struct itest_env e;
	int status;
	char *out;

	itest_env_init(&e, "install-clean", DB);
	/* the shipped job files (every .conf of conf.d but the main file, as the package installs
	 * them; not the subdirectories) with the env's main file and the built plugins */
	DIR *d = opendir(TEST_SOURCE_DIR "/../conf.d");
	struct dirent *de;
	ck_assert(d);
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 6 || strcmp(de->d_name + n - 5, ".conf") != 0 ||
		    strcmp(de->d_name, "pgcrond.conf") == 0)
			continue;
		char from[1024], *to = itest_env_path(&e, "conf.d/");
		char dest[1024];
		snprintf(from, sizeof(from), "%s/../conf.d/%s", TEST_SOURCE_DIR, de->d_name);
		snprintf(dest, sizeof(dest), "%s%s", to, de->d_name);
		itest_copy_file(from, dest, 0644);
		free(to);
	}
	closedir(d);
	const char *plugins[] = {"lane_distribution", "weakness_patterns", "agent_progress",
	                         "time_to_first_win", "chat_telemetry",    "sql_view"};
	for (size_t i = 0; i < sizeof(plugins) / sizeof(plugins[0]); i++) {
		char so[512];
		snprintf(so, sizeof(so), "%s/%s.so", PLUGIN_BUILD_DIR, plugins[i]);
		itest_env_plugin(&e, so, plugins[i]);
	}
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install with the shipped conf.d: exit %d:\n%s", status, out);
	ck_assert_msg(!strstr(out, "NOTICE") && !strstr(out, "ERROR") &&
	                  !strstr(out, "does not exist") && !strstr(out, "objects created"),
	              "install's output is not clean:\n%s", out);
	ck_assert_msg(strstr(out, "schema pgcrond created"), "%s", out);
	free(out);
	/* a second install: nothing to say but that it is up to date, still no NOTICE */
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0 && !strstr(out, "NOTICE"), "second install: %d\n%s", status, out);
	free(out);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(never_created_what_was_not)
{
	struct itest_env e;
	int status;
	char *out;

	/* an analytics view job turned on in a database without the tables it reads */
	itest_env_init(&e, "install-refused", DB);
	itest_env_plugin(&e, PLUGIN_BUILD_DIR "/lane_distribution.so", "lane_distribution");
	itest_env_job(&e, "10-lanes.conf",
	              "job = { name = \"lanes\"; plugin = \"lane_distribution\"; database = "
	              "\"app\"; schedule = \"*/10 * * * *\"; };\n");
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 73, "install: exit %d:\n%s", status, out);
	ck_assert_msg(!strstr(out, "objects created"), "install says created:\n%s", out);
	ck_assert_msg(!strstr(out, "NOTICE"), "a server NOTICE leaks:\n%s", out);
	free(out);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("install_clean");
	TCase *tc = tcase_create("install_clean");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, fresh_install_with_the_shipped_conf);
	tcase_add_test(tc, never_created_what_was_not);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
