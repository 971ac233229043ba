/* A broken job file on disk does not lock the operator out: with the
 * daemon running and a typo written into one job file, status, pause, resume, trigger,
 * history, list and graph still work (exit 0) and say on one line that the file has errors;
 * list and graph show the jobs that load and leave the broken file's out. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define DB "it_broken_conf"

static void expect_ok_and_warned(struct itest_env *e, const char *what, int status, char *out)
{
	ck_assert_msg(status == 0, "pgcrond %s: exit %d: %s", what, status, out);
	ck_assert_msg(strstr(out, "warning: ") && strstr(out, "conf.d/20-b.conf has errors"),
	              "pgcrond %s does not warn about the broken file: %s", what, out);
	ck_assert_msg(!strstr(out, "unknown key"),
	              "pgcrond %s prints the file's errors (pgcrond check's business): %s", what,
	              out);
	(void)e;
	free(out);
}

START_TEST(commands_work_with_a_broken_job_file)
{
	struct itest_env e;
	int status;
	char *out;

	itest_env_init(&e, "broken-conf", DB);
	itest_env_job(
	    &e, "10-a.conf",
	    "job = { name = \"a\"; command = \"SELECT 1\"; schedule = \"0 0 1 1 *\"; };\n");
	itest_env_job(
	    &e, "20-b.conf",
	    "job = { name = \"b\"; command = \"SELECT 2\"; schedule = \"0 0 1 1 *\"; };\n");
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	free(out);
	itest_env_start(&e);

	/* the typo: the daemon would refuse a reload and keep what it runs */
	itest_env_job(
	    &e, "20-b.conf",
	    "job = { name = \"b\"; command = \"SELECT 2\"; schedul = \"0 0 1 1 *\"; };\n");
	out = itest_cli(&status, "check", "-c", e.conf, NULL);
	ck_assert_msg(status == 78 && strstr(out, "unknown key \"schedul\""), "check: %d %s",
	              status, out);
	free(out);

	out = itest_cli(&status, "status", "-c", e.conf, NULL);
	ck_assert_msg(strstr(out, "the running daemon keeps the configuration it last loaded"),
	              "status: %s", out);
	expect_ok_and_warned(&e, "status", status, out);
	out = itest_cli(&status, "pause", "-c", e.conf, "b", NULL);
	expect_ok_and_warned(&e, "pause", status, out);
	out = itest_cli(&status, "resume", "-c", e.conf, "b", NULL);
	expect_ok_and_warned(&e, "resume", status, out);
	/* the daemon still runs b, the job of the broken file, as it last loaded it */
	out = itest_cli(&status, "trigger", "-c", e.conf, "--wait", "b", NULL);
	expect_ok_and_warned(&e, "trigger", status, out);
	/* the run's row is written after the run ends (the history is not on its path) */
	ck_assert(itest_env_wait(&e, 10,
	                         "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                         " WHERE job_name = 'b' AND status = 'succeeded'"));
	out = itest_cli(&status, "history", "-c", e.conf, NULL);
	ck_assert_msg(strstr(out, " b ") && strstr(out, "succeeded"),
	              "history lacks the run of b: %s", out);
	expect_ok_and_warned(&e, "history", status, out);

	/* list and graph: what loads, and the broken file named */
	out = itest_cli(&status, "list", "-c", e.conf, NULL);
	ck_assert_msg(strstr(out, "\na ") || strstr(out, "\na\t"), "list lacks job a: %s", out);
	ck_assert_msg(strstr(out, "their jobs are not listed"), "list: %s", out);
	expect_ok_and_warned(&e, "list", status, out);
	out = itest_cli(&status, "graph", "-c", e.conf, NULL);
	ck_assert_msg(strstr(out, "digraph") && strstr(out, "\"a\""), "graph: %s", out);
	expect_ok_and_warned(&e, "graph", status, out);

	/* the main file broken: that is still an error (no socket, no database to go by) */
	itest_write_file(e.conf, "databases = {\n");
	out = itest_cli(&status, "status", "-c", e.conf, NULL);
	ck_assert_msg(status == 78, "status with a broken main file: %d %s", status, out);
	free(out);

	ck_assert_int_eq(itest_env_stop(&e, 15, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("broken_conf");
	TCase *tc = tcase_create("broken_conf");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, commands_work_with_a_broken_job_file);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
