/* The harness itself: the sandbox is a real PostgreSQL 15 we can create databases in, and
 * the pgcrond binary runs as the unprivileged sandbox user. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

START_TEST(sandbox_is_postgresql_15)
{
	PGconn *c = itest_connect(itest_conninfo());
	long long v =
	    itest_scalar_ll(c, "SELECT current_setting('server_version_num')::int / 10000");
	ck_assert_int_eq(v, 15);
	PQfinish(c);
}
END_TEST

START_TEST(fresh_database_is_empty)
{
	char *ci = itest_fresh_db("it_sandbox");
	PGconn *c = itest_connect(ci);
	itest_exec(c, "CREATE TABLE t(x int)");
	PQfinish(c);
	free(ci);
	ci = itest_fresh_db("it_sandbox");
	c = itest_connect(ci);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pg_class WHERE relname = 't'"),
	                 0);
	PQfinish(c);
	free(ci);
}
END_TEST

START_TEST(binary_runs_as_sandbox_user)
{
	int status;
	char *out = itest_cli(&status, "--version", NULL);
	ck_assert_int_eq(status, 0);
	ck_assert_msg(strncmp(out, "pgcrond ", 8) == 0, "got: %s", out);
	free(out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sandbox");
	TCase *tc = tcase_create("sandbox");
	tcase_add_test(tc, sandbox_is_postgresql_15);
	tcase_add_test(tc, fresh_database_is_empty);
	tcase_add_test(tc, binary_runs_as_sandbox_user);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
