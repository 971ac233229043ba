/* Text a job or a server chose reaches terminals escaped: an error raised
 * with ESC ]52 (OSC 52, which sets the clipboard on terminals that honour it), BEL, a C1 CSI
 * and other control characters is shown by `pgcrond history`, `history --run`, `status JOB`,
 * the daemon's "failed" line and its ALERT line with the controls written as \xNN or \uNNNN,
 * and none of them raw. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define DB "it_hostile_text"

/* The first raw control byte in TEXT (C0 but newline, DEL, or a C1 in UTF-8), or -1. */
static long raw_control_at(const char *text)
{
	const unsigned char *p = (const unsigned char *)text;
	for (long i = 0; p[i]; i++) {
		if ((p[i] < 0x20 && p[i] != '\n') || p[i] == 0x7f)
			return i;
		if (p[i] == 0xc2 && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
			return i;
	}
	return -1;
}

#define assert_escaped(what, text)                                                                 \
	do {                                                                                       \
		long at_ = raw_control_at(text);                                                   \
		ck_assert_msg(at_ < 0, "%s: a raw control byte 0x%02x at %ld", what,               \
		              at_ < 0 ? 0 : (unsigned char)(text)[at_], at_);                      \
		ck_assert_msg(strstr(text, "clip \\x1b]52;c;cHduZWQ=\\x07 csi \\u009b31m red"),    \
		              "%s: no escaped form in:\n%s", what, text);                          \
	} while (0)

START_TEST(server_text_reaches_terminals_escaped)
{
	struct itest_env e;
	int status;

	itest_env_setup(&e, "hostile-text", DB);
	itest_env_main(&e, "alerts = ( { sink = \"log\"; } );\n");
	/* libconfig turns \\ into \, PostgreSQL's E'' turns \x1b and \u009b into the bytes */
	itest_env_job(
	    &e, "10-evil.conf",
	    "job = { name = \"evil\"; schedule = \"@reboot\";\n"
	    "  command = \"DO $$ BEGIN RAISE EXCEPTION E'clip \\\\x1b]52;c;cHduZWQ=\\\\x07 "
	    "csi \\\\u009b31m red\\\\x01' USING DETAIL = E'wipe \\\\x1b[2J'; END $$\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE "
	                             "job_name = 'evil' AND status = 'failed'"),
	              "%s", itest_read_file(e.log));
	/* the history keeps the exact text: escaping is for showing it */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                                     "return_message LIKE E'%%\\x1b]52;%%'"),
	                 1);
	char *id = itest_scalar(e.db, "SELECT runid FROM pgcrond.job_run_details WHERE job_name "
	                              "= 'evil'");

	char *out = itest_cli(&status, "history", "-c", e.conf, "--run", id, NULL);
	ck_assert_msg(status == 0, "%d %s", status, out);
	assert_escaped("history --run", out);
	ck_assert_msg(strstr(out, "wipe \\x1b[2J"), "DETAIL: %s", out);
	free(out);

	out = itest_cli(&status, "history", "-c", e.conf, "evil", NULL);
	ck_assert_msg(status == 0 && raw_control_at(out) < 0 && strstr(out, "clip \\x1b]52"),
	              "history: %d %s", status, out);
	free(out);

	ck_assert(itest_wait_log(e.log, "ALERT failed", 10));
	out = itest_cli(&status, "status", "-c", e.conf, "evil", NULL);
	ck_assert_msg(status == 0, "%d %s", status, out);
	assert_escaped("status evil", out);
	free(out);

	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	char *log = itest_read_file(e.log);
	assert_escaped("the daemon's log", log);
	char *failed = strstr(log, "failed after"), *alert = strstr(log, "ALERT failed");
	ck_assert_msg(failed && alert, "%s", log);
	*strchrnul(failed, '\n') = '\0';
	assert_escaped("the \"failed\" line", failed);
	*strchrnul(alert, '\n') = '\0';
	assert_escaped("the ALERT line", alert);
	free(log);
	free(id);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hostile_text");
	TCase *tc = tcase_create("hostile_text");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, server_text_reaches_terminals_escaped);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
