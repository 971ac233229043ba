/* The harness itself: the sandbox is a real PostgreSQL we can create databases in, and
 * the pgcrond binary runs as the unprivileged sandbox user. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

/* The server is the one asked for: Debian's 15, or scripts/test --servers' version. */
START_TEST(sandbox_is_the_server_asked_for)
{
	PGconn *c = itest_connect(itest_conninfo());
	long long v =
	    itest_scalar_ll(c, "SELECT current_setting('server_version_num')::int / 10000");
	ck_assert_int_eq(v, itest_server_major());
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

/* pgcrond --help names the options it takes, its own among them (it listed -V alone), and
 * -h and help print the same. */
START_TEST(help_names_its_own_options)
{
	int status;
	char *out = itest_cli(&status, "--help", NULL);
	ck_assert_msg(status == 0 &&
	                  strstr(out, "\n  -h        print this help (also --help, help)\n") &&
	                  strstr(out, "\n  -V        print the version (also --version)\n"),
	              "%d %s", status, out);
	const char *same[] = {"-h", "help"};
	for (size_t i = 0; i < 2; i++) {
		char *o = itest_cli(&status, same[i], NULL);
		ck_assert_msg(status == 0 && strcmp(o, out) == 0, "%s: %d %s", same[i], status, o);
		free(o);
	}
	free(out);
}
END_TEST

/* A failure whose message is longer than Check takes (a daemon's whole log, say) still says
 * why: the message keeps its start and its end and names the file holding it whole (Check
 * alone would print only "check_pack.c:372: Message string too long"). */
static char long_log[20000];

START_TEST(fails_with_a_long_message)
{
	ck_assert_msg(0, "the daemon said:\n%s", long_log);
}
END_TEST

START_TEST(long_failure_names_its_file)
{
	memset(long_log, 'x', sizeof(long_log) - 1);
	memcpy(long_log, "FIRST LINE\n", 11);
	memcpy(long_log + sizeof(long_log) - 11, "\nLAST LINE", 10);
	/* the inner runner's own report would overwrite this suite's, half written */
	unsetenv("CK_XML_LOG_FILE_NAME");
	unsetenv("CK_LOG_FILE_NAME");
	unsetenv("CK_TAP_LOG_FILE_NAME");
	Suite *s = suite_create("inner");
	TCase *tc = tcase_create("inner");
	tcase_add_test(tc, fails_with_a_long_message);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_SILENT);
	ck_assert_int_eq(srunner_ntests_failed(sr), 1);
	TestResult **failed = srunner_failures(sr);
	const char *msg = tr_msg(failed[0]);
	ck_assert_msg(strlen(msg) < 4096, "%zu bytes", strlen(msg));
	ck_assert_msg(strncmp(msg, "the daemon said:\nFIRST LINE\n", 28) == 0, "%.200s", msg);
	ck_assert_msg(strstr(msg, "\nLAST LINE") != NULL, "no end: %.200s", msg);
	const char *at = strstr(msg, "the whole message is in ");
	ck_assert_msg(at != NULL, "no file named: %.200s", msg);
	at += strlen("the whole message is in ");
	char path[400];
	snprintf(path, sizeof(path), "%.*s", (int)strcspn(at, " "), at);
	char *whole = itest_read_file(path);
	ck_assert_msg(strstr(whole, long_log) != NULL, "%s does not hold the whole message", path);
	ck_assert_msg(strstr(whole, "fails_with_a_long_message") == NULL &&
	                  strstr(whole, "it_sandbox.c:") != NULL,
	              "%s does not say where it failed", path);
	free(whole);
	free(failed);
	srunner_free(sr);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sandbox");
	TCase *tc = tcase_create("sandbox");
	tcase_add_test(tc, sandbox_is_the_server_asked_for);
	tcase_add_test(tc, fresh_database_is_empty);
	tcase_add_test(tc, binary_runs_as_sandbox_user);
	tcase_add_test(tc, help_names_its_own_options);
	tcase_add_test(tc, long_failure_names_its_file);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
