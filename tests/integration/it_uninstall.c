/* pgcrond uninstall (issue 26, item 5): refused while the daemon runs; afterwards it removes
 * the pgcrond and cron schemas and a second install works; --keep-history keeps the runs;
 * DROP SCHEMA cron CASCADE stops the jobs made in SQL. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define DB "it_uninstall"

START_TEST(uninstall_refuses_then_removes)
{
	struct itest_env e;
	itest_env_init(&e, "uninstall", DB);
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install: %d %s", status, out);
	free(out);
	itest_exec(e.db, "CREATE TABLE ticks (at timestamptz DEFAULT now());"
	                 "GRANT INSERT ON ticks TO PUBLIC");
	itest_exec(e.db, "SELECT cron.schedule('tick', '* * * * * *', 'INSERT INTO ticks DEFAULT "
	                 "VALUES')");

	/* DROP SCHEMA cron CASCADE stops the job made in SQL */
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 15, "SELECT count(*) > 0 FROM ticks"), "%s",
	              itest_read_file(e.log));

	out = itest_cli(&status, "uninstall", "-c", e.conf, NULL);
	ck_assert_msg(status == 75, "uninstall while running: %d %s", status, out);
	ck_assert_msg(strstr(out, "stop it first"), "%s", out);
	free(out);
	itest_assert_scalar(e.db, "SELECT to_regnamespace('pgcrond') IS NOT NULL", "t");

	itest_exec(e.db, "SET client_min_messages = warning; DROP SCHEMA cron CASCADE");
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.job WHERE source = 'sql'"
	                    " AND removed_at IS NULL",
	                    "0");
	itest_sleep(2.5);
	long long before = itest_env_count(&e, "SELECT count(*) FROM ticks");
	itest_sleep(3);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM ticks"), before);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);

	/* the cron schema again, for uninstall to remove */
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install: %d %s", status, out);
	free(out);
	long long runs = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details");
	ck_assert(runs > 0);

	out = itest_cli(&status, "uninstall", "-c", e.conf, "--dry-run", NULL);
	ck_assert_msg(status == 0, "dry run: %d %s", status, out);
	ck_assert_msg(strstr(out, "would drop schema pgcrond"), "%s", out);
	free(out);
	itest_assert_scalar(e.db, "SELECT to_regnamespace('pgcrond') IS NOT NULL", "t");

	out = itest_cli(&status, "uninstall", "-c", e.conf, "--keep-history", NULL);
	ck_assert_msg(status == 0, "uninstall: %d %s", status, out);
	ck_assert_msg(strstr(out, "dropped schema cron"), "%s", out);
	ck_assert_msg(strstr(out, "dropped schema pgcrond"), "%s", out);
	ck_assert_msg(strstr(out, "moved pgcrond.job_run_details"), "%s", out);
	free(out);
	itest_assert_scalar(e.db,
	                    "SELECT to_regnamespace('pgcrond') IS NULL"
	                    " AND to_regnamespace('cron') IS NULL",
	                    "t");
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond_history.job_run_details"), runs);

	/* a second install works again, and a second uninstall without --keep-history */
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install again: %d %s", status, out);
	free(out);
	itest_assert_scalar(e.db, "SELECT count(*) FROM pgcrond.job_run_details", "0");
	out = itest_cli(&status, "uninstall", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "uninstall again: %d %s", status, out);
	free(out);
	itest_assert_scalar(e.db, "SELECT to_regnamespace('pgcrond') IS NULL", "t");
	out = itest_cli(&status, "uninstall", "-c", e.conf, NULL);
	ck_assert_msg(status == 0 && strstr(out, "nothing to uninstall"), "%d %s", status, out);
	free(out);
	out = itest_cli(&status, "uninstall", "-c", e.conf, "--restore-pg-cron", NULL);
	ck_assert_msg(status == 64 && strstr(out, "needs --to"), "%d %s", status, out);
	free(out);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("uninstall");
	TCase *tc = tcase_create("uninstall");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, uninstall_refuses_then_removes);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
