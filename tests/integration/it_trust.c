/* Files are trusted like plugins, through the real binary run as the
 * daemon's user: `pgcrond check` and `pgcrond run` refuse a job file others can write, with
 * the command that fixes it; a reload that would read such a file keeps the previous
 * configuration. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
	ck_assert_msg(itest_wait_log(e.log, "refusing conf_dir: directory", 10), "%s",
	              itest_read_file(e.log));
	ck_assert_int_eq(chmod(confd, 0755), 0);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	free(confd);
	itest_env_teardown(&e);
}
END_TEST

/* The side doors: an @include of a file in a directory anybody can write,
 * and a symbolic link chain whose middle link sits in such a directory; `pgcrond check` names
 * the file, the line and the chmod to run, and the daemon does not start on them. */
START_TEST(include_and_link_chain_are_checked)
{
	struct itest_env e;
	int status;

	itest_env_setup(&e, "trust-include", DB);
	char *open_dir = itest_env_path(&e, "x"), *inc = itest_env_path(&e, "x/inc.conf");
	ck_assert_int_eq(mkdir(open_dir, 0777), 0);
	ck_assert_int_eq(chmod(open_dir, 0777), 0);
	itest_write_file(inc,
	                 "job = { name = \"planted\"; schedule = \"@daily\"; command = \"SELECT "
	                 "1\"; };\n");
	itest_env_job(&e, "10-a.conf", "@include \"../x/inc.conf\"\n");
	char *job = itest_env_path(&e, "conf.d/10-a.conf");
	char expect[2048];
	snprintf(expect, sizeof(expect),
	         "%s:1: refusing @include \"../x/inc.conf\": directory %s above %s/conf.d/../x/"
	         "inc.conf is writable by others (mode 0777); run chmod go-w %s",
	         job, open_dir, e.dir, open_dir);
	char *out = itest_cli(&status, "check", "-c", e.conf, NULL);
	ck_assert_msg(status == 78 && strstr(out, expect), "%d %s\nwanted: %s", status, out,
	              expect);
	free(out);

	/* conf.d/10-a.conf -> x/mid -> real/a.conf: the middle link is in x */
	char *real = itest_env_path(&e, "real"), *target = itest_env_path(&e, "real/a.conf");
	char *mid = itest_env_path(&e, "x/mid");
	ck_assert_int_eq(mkdir(real, 0755), 0);
	itest_write_file(target, "job = { name = \"a\"; schedule = \"@daily\"; command = \"SELECT "
	                         "1\"; };\n");
	ck_assert_int_eq(unlink(job), 0);
	ck_assert_int_eq(symlink(target, mid), 0);
	ck_assert_int_eq(symlink(mid, job), 0);
	snprintf(expect, sizeof(expect),
	         "%s: refusing this file: directory %s above %s is writable by others (mode 0777); "
	         "run chmod go-w %s",
	         job, open_dir, job, open_dir);
	out = itest_cli(&status, "check", "-c", e.conf, NULL);
	ck_assert_msg(status == 78 && strstr(out, expect), "%d %s\nwanted: %s", status, out,
	              expect);
	free(out);
	pid_t pid = itest_daemon_start(e.conf, e.log);
	ck_assert_int_eq(itest_daemon_stop(pid, 0, 20), 78);
	char *log = itest_read_file(e.log);
	ck_assert_msg(strstr(log, expect), "%s", log);
	free(log);

	/* the same chain through trusted directories only loads */
	ck_assert_int_eq(chmod(open_dir, 0755), 0);
	out = itest_cli(&status, "check", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "%d %s", status, out);
	free(out);
	free(open_dir);
	free(inc);
	free(job);
	free(real);
	free(target);
	free(mid);
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
	tcase_add_test(tc, include_and_link_chain_are_checked);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
