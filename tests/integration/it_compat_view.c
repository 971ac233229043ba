/* cron.job_run_details answers as pg_cron's, checked against what
 * Debian's pg_cron 1.4 writes in its default (libpq) mode: a failed run's return_message is
 * libpq's whole error text, "ERROR:  division by zero" and a newline, with the server's DETAIL
 * and HINT on lines of their own; and a role with BYPASSRLS sees every run, as pg_cron's
 * row-level security lets it. pgcrond's own table keeps the bare message. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define DB "it_compat_view"

START_TEST(failed_runs_and_bypassrls_as_pg_cron)
{
	struct itest_env e;
	int status;
	char *out;

	itest_env_init(&e, "compat-view", DB);
	itest_env_job(
	    &e, "10-jobs.conf",
	    "jobs = ( { name = \"dz\"; command = \"SELECT 1/0\"; enabled = false; },\n"
	    "{ name = \"raise\"; command = \"DO $$BEGIN RAISE EXCEPTION USING "
	    "MESSAGE = 'boom', DETAIL = 'det', HINT = 'hi'; END$$\"; enabled = false; },\n"
	    "{ name = \"ok\"; command = \"SELECT 1\"; enabled = false; } );\n");
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	free(out);
	itest_env_start(&e);
	const char *jobs[] = {"dz", "raise", "ok"};
	for (int i = 0; i < 3; i++) {
		out =
		    itest_cli(&status, "trigger", "-c", e.conf, "--force", "--wait", jobs[i], NULL);
		ck_assert_msg(status == (i < 2 ? 1 : 0), "trigger %s: %d %s", jobs[i], status, out);
		free(out);
	}
	ck_assert(itest_env_wait(&e, 30,
	                         "SELECT count(DISTINCT command) = 3 FROM pgcrond.job_run_details"
	                         " WHERE end_time IS NOT NULL"));

	itest_assert_scalar(e.db,
	                    "SELECT return_message FROM cron.job_run_details"
	                    " WHERE command = 'SELECT 1/0'",
	                    "ERROR:  division by zero\n");
	itest_assert_scalar(e.db,
	                    "SELECT return_message FROM cron.job_run_details"
	                    " WHERE command LIKE 'DO %'",
	                    "ERROR:  boom\nDETAIL:  det\nHINT:  hi\n");
	itest_assert_scalar(e.db,
	                    "SELECT return_message FROM cron.job_run_details"
	                    " WHERE command = 'SELECT 1'",
	                    "1 row");
	/* pgcrond's own history as it was */
	itest_assert_scalar(e.db,
	                    "SELECT return_message FROM pgcrond.job_run_details"
	                    " WHERE command = 'SELECT 1/0'",
	                    "division by zero");

	/* a BYPASSRLS role sees them all; a plain role none (they are not its runs) */
	PQclear(PQexec(e.db, "DROP ROLE IF EXISTS it_cv_bypass; DROP ROLE IF EXISTS it_cv_plain"));
	itest_exec(e.db, "CREATE ROLE it_cv_bypass BYPASSRLS; CREATE ROLE it_cv_plain;"
	                 "GRANT USAGE ON SCHEMA cron TO it_cv_bypass, it_cv_plain");
	itest_exec(e.db, "SET ROLE it_cv_bypass");
	itest_assert_scalar(e.db, "SELECT count(*) FROM cron.job_run_details", "3");
	itest_exec(e.db, "RESET ROLE; SET ROLE it_cv_plain");
	itest_assert_scalar(e.db, "SELECT count(*) FROM cron.job_run_details", "0");
	itest_exec(e.db, "RESET ROLE");

	ck_assert_int_eq(itest_env_stop(&e, 15, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("compat_view");
	TCase *tc = tcase_create("compat_view");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, failed_runs_and_bypassrls_as_pg_cron);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
