/* The server comes back: the cluster that holds both the history and a
 * job's database is stopped long enough for the job's pool to back off for many seconds, then
 * started again. The history connection, whose backoff is short, is back first; once it is,
 * every pool of that server tries again at once, so a run started then succeeds within 3 s
 * (rather than waiting out its pool's backoff). While the server is down,
 * `pgcrond status` calls a pool that never connected unreachable, not "reachable". The server
 * is a second sandbox of this test's own. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

/* `pgcrond status`'s line for database NAME (malloc'd, "" if none). */
static char *status_line(const struct itest_env *e, const char *name)
{
	int status;
	char *out = itest_cli(&status, "status", "-c", e->conf, NULL);
	ck_assert_msg(status == 0, "status: %s", out);
	char needle[64];
	snprintf(needle, sizeof(needle), "database %s:", name);
	char *line = strstr(out, needle);
	char *copy = strdup(line ? line : "");
	ck_assert(copy);
	copy[strcspn(copy, "\n")] = '\0';
	free(out);
	return copy;
}

START_TEST(runs_go_at_once_when_the_server_is_back)
{
	struct itest_env e;
	itest_env_init(&e, "server-back", "it_server_back");
	char *ci = itest_sandbox2_start(e.dir);
	PGconn *db = itest_connect(ci);
	itest_exec(db, "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp())");
	PQfinish(db);

	/* "main" holds the history and runs the job; "other" is the same server under another
	 * name (another pool, as another role's SQL jobs have), which never connects */
	itest_write_file(e.conf,
	                 "plugin_dir = \"%s\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = {\n"
	                 "  main = { conninfo = \"%s\"; };\n"
	                 "  other = { conninfo = \"%s\"; };\n"
	                 "};\n"
	                 "history = { database = \"main\"; };\n",
	                 e.dir, e.dir, ci, ci);
	itest_env_job(
	    &e, "10-tick.conf",
	    "job = { name = \"tick\"; database = \"main\"; schedule = \"@yearly\";\n"
	    "        catchup = \"skip\"; command = \"INSERT INTO ticks DEFAULT VALUES\"; };\n");
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install: %s", out);
	free(out);
	itest_env_start(&e);
	out = itest_cli(&status, "trigger", "-c", e.conf, "--wait", "tick", NULL);
	ck_assert_msg(status == 0, "the first run: %s\n%s", out, itest_read_file(e.log));
	free(out);
	char *line = status_line(&e, "other");
	ck_assert_msg(strstr(line, "reachable") && !strstr(line, "UNREACHABLE"),
	              "the server is up: %s", line);
	free(line);

	/* Down for 20 s, with runs asked for all along: each fails when its pool's next
	 * connect fails, and the pool's backoff grows (0.5 s doubling, jittered) to 8-30 s. */
	itest_sandbox2("pause");
	double down = itest_now();
	int failed = 0;
	while (itest_now() - down < 20) {
		out = itest_cli(&status, "trigger", "-c", e.conf, "--wait", "tick", NULL);
		ck_assert_msg(status == 1, "a run while the server is down: exit %d: %s", status,
		              out);
		free(out);
		failed++;
	}
	/* one more, so that the pool has just failed a connect and backs off now */
	out = itest_cli(&status, "trigger", "-c", e.conf, "--wait", "tick", NULL);
	ck_assert_msg(status == 1, "a run while the server is down: exit %d: %s", status, out);
	free(out);
	ck_assert_msg(failed >= 5, "only %d runs failed in 20 s", failed);

	/* the pool that never connected is not "reachable" while its server is down */
	line = status_line(&e, "other");
	ck_assert_msg(strstr(line, "UNREACHABLE"),
	              "status calls a pool of a stopped server reachable: %s", line);
	free(line);

	itest_sandbox2("resume");
	/* the history's backoff is at most 4 s: it is the first connection back */
	ck_assert_msg(itest_wait_log(e.log, "is reachable again", 10),
	              "the history did not come back:\n%s", itest_read_file(e.log));
	double back = itest_now();
	out =
	    itest_cli(&status, "trigger", "-c", e.conf, "--wait", "--timeout", "3s", "tick", NULL);
	double took = itest_now() - back;
	ck_assert_msg(status == 0,
	              "a run started once the history was back did not succeed within 3 s "
	              "(exit %d after %.1f s: %s); the job's pool waits out its backoff (%s)",
	              status, took, out, e.log);
	free(out);
	line = status_line(&e, "other");
	ck_assert_msg(strstr(line, "reachable") && !strstr(line, "UNREACHABLE"),
	              "the server is back: %s", line);
	free(line);

	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	free(ci);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("server_back");
	TCase *tc = tcase_create("server_back");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, runs_go_at_once_when_the_server_is_back);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
