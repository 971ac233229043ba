/* Text in any encoding, cut only on character boundaries: a long failure
 * message of multibyte characters keeps its history row, gives valid log lines and reaches
 * the notify alert sink; a job in a LATIN1 database has its non-ASCII error recorded. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "text.h"

#define DB "it_encoding"
#define DB_LATIN1 "it_encoding_latin1"
#define EURO "\xe2\x82\xac" /* 3 bytes in UTF-8 */

/* The error "xy€€€...": "xy" puts the euro signs off the 3-byte grid of the cuts made today
 * (the alert message at 768 bytes after "failed: ", the log line at 2048 after "failed after
 * NNN ms: "), so a cut by bytes would split one. The run sleeps first so NNN has 3 digits. */
#define FAILING                                                                                    \
	"DO $$ BEGIN PERFORM pg_sleep(0.3); RAISE EXCEPTION 'xy%%', repeat('" EURO "', 3000); "    \
	"END $$"

START_TEST(long_multibyte_failure_is_recorded_logged_and_alerted)
{
	struct itest_env e;
	char when[32];

	itest_env_setup(&e, "enc", DB);
	itest_env_main(&e, "alerts = ( { sink = \"log\"; }, { sink = \"notify\"; channel = "
	                   "\"enc_alerts\"; } );\n");
	itest_env_start(&e);
	/* the job comes with a reload once the daemon runs (itest_env_reload) */
	itest_schedule_soon(when, sizeof(when), 2);
	itest_env_job(&e, "10-mb.conf",
	              "job = { name = \"mb\"; schedule = \"%s\"; command = \"" FAILING "\"; };\n",
	              when);
	PGconn *l = itest_connect(e.ci);
	itest_exec(l, "LISTEN enc_alerts");
	itest_env_reload(&e);

	/* the alert reaches the notify sink: PostgreSQL accepted its payload */
	PGnotify *n = NULL;
	for (int i = 0; i < 600 && !n; i++) {
		PQconsumeInput(l);
		n = PQnotifies(l);
		if (!n)
			itest_sleep(0.05);
	}
	ck_assert_msg(n != NULL, "no alert notification; log:\n%s", itest_read_file(e.log));
	ck_assert_msg(strstr(n->extra, "\"job\":\"mb\"") && strstr(n->extra, "xy" EURO EURO), "%s",
	              n->extra);
	ck_assert(text_utf8_valid(n->extra));
	PQfreemem(n);

	/* the history row holds the whole message */
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE "
	                             "job_name = 'mb' AND status = 'failed' AND return_message = "
	                             "'xy' || repeat('" EURO "', 3000)"),
	              "no history row; log:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);

	/* every log line is valid UTF-8, the cut ones included */
	char *log = itest_read_file(e.log);
	ck_assert_msg(strstr(log, "failed after"), "%s", log);
	ck_assert_msg(strstr(log, "ALERT failed"), "%s", log);
	ck_assert_msg(text_utf8_valid(log), "the log holds a broken character:\n%s", log);
	free(log);
	PQfinish(l);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(latin1_database_error_is_recorded)
{
	struct itest_env e;
	char when[32];

	itest_env_setup(&e, "latin1", DB);
	PGconn *admin = itest_connect(itest_conninfo());
	itest_exec(admin, "DROP DATABASE IF EXISTS " DB_LATIN1);
	itest_exec(admin, "CREATE DATABASE " DB_LATIN1 " TEMPLATE template0 ENCODING 'LATIN1' "
	                  "LC_COLLATE 'C' LC_CTYPE 'C'");
	PQfinish(admin);
	char *ci1 = itest_conninfo_db(DB_LATIN1);
	itest_env_main_with_db(&e, "legacy", ci1);
	itest_env_start(&e);
	/* the job comes with a reload once the daemon runs (itest_env_reload) */
	itest_schedule_soon(when, sizeof(when), 2);
	/* chr(233) is é in LATIN1: the server makes the message, in the database's encoding
	 * unless the client asked for UTF8 */
	itest_env_job(&e, "10-legacy.conf",
	              "job = { name = \"legacy\"; database = \"legacy\"; schedule = \"%s\"; "
	              "command = \"DO $$ BEGIN RAISE EXCEPTION 'caf%%', chr(233); END $$\"; };\n",
	              when);
	itest_env_reload(&e);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE "
	                             "job_name = 'legacy' AND status = 'failed' AND "
	                             "return_message = 'caf\xc3\xa9'"),
	              "no history row; log:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	char *log = itest_read_file(e.log);
	ck_assert_msg(strstr(log, "caf\xc3\xa9"), "%s", log);
	ck_assert_msg(text_utf8_valid(log), "%s", log);
	free(log);
	free(ci1);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("encoding");
	TCase *tc = tcase_create("encoding");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, long_multibyte_failure_is_recorded_logged_and_alerted);
	tcase_add_test(tc, latin1_database_error_is_recorded);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
