/* Files are trusted like plugins (issue 9, item 6), through the real binary run as the
 * daemon's user: `pgcrond check` and `pgcrond run` refuse a job file others can write, with
 * the command that fixes it; a reload that would read such a file keeps the previous
 * configuration. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "itest.h"

#define DB "it_trust"

START_TEST(check_and_run_refuse_a_job_file_others_can_write)
{
	struct itest_env e;
	int status;

	itest_env_setup(&e, "trust", DB);
	itest_env_job(&e, "10-a.conf",
	              "job = { name = \"a\"; schedule = \"@daily\"; command = \"SELECT 1\"; };\n");
	char *job = itest_env_path(&e, "conf.d/10-a.conf");
	char *out = itest_cli(&status, "check", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "%s", out);
	free(out);

	ck_assert_int_eq(chmod(job, 0666), 0);
	char expect[1024];
	snprintf(expect, sizeof(expect),
	         "%s: refusing this file: %s is writable by others (mode 0666); run chmod go-w %s",
	         job, job, job);
	out = itest_cli(&status, "check", "-c", e.conf, NULL);
	ck_assert_msg(status == 78 && strstr(out, expect), "%d %s", status, out);
	free(out);

	/* run: refused before anything starts; it exits by itself */
	pid_t pid = itest_daemon_start(e.conf, e.log);
	ck_assert_msg(itest_wait_log(e.log, "refusing this file", 20), "%s",
	              itest_read_file(e.log));
	ck_assert_int_eq(itest_daemon_stop(pid, 0, 20), 78);
	char *log = itest_read_file(e.log);
	ck_assert_msg(strstr(log, expect), "%s", log);
	free(log);
	free(job);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(reload_refuses_an_untrusted_conf_dir)
{
	struct itest_env e;

	itest_env_setup(&e, "trust-reload", DB);
	itest_env_job(&e, "10-a.conf",
	              "job = { name = \"a\"; schedule = \"@daily\"; command = \"SELECT 1\"; };\n");
	itest_env_start(&e);
	char *confd = itest_env_path(&e, "conf.d");
	ck_assert_int_eq(chmod(confd, 0777), 0);
	kill(e.pid, SIGHUP);
	ck_assert_msg(
	    itest_wait_log(e.log, "reload failed; keeping the previous configuration", 20), "%s",
	    itest_read_file(e.log));
	ck_assert_msg(itest_wait_log(e.log, "refusing conf_dir: directory", 2), "%s",
	              itest_read_file(e.log));
	ck_assert_int_eq(chmod(confd, 0755), 0);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	free(confd);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("trust");
	TCase *tc = tcase_create("trust");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, check_and_run_refuse_a_job_file_others_can_write);
	tcase_add_test(tc, reload_refuses_an_untrusted_conf_dir);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
