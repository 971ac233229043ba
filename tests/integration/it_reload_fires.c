/* A reload loses no fire. A reload that rescheduled every job from "now" would drop without
 * a trace the fires due while parsing held the loop across a second boundary (a whole second
 * of runs per reload). Here a job fires every second next to 1,000
 * job files that are never due, and the daemon is told to reload just before six second
 * boundaries: every second still has its one history row. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "itest.h"

#define FILES 1000
#define RELOADS 6

/* Sleep until MS milliseconds before the next whole second of the wall clock. */
static void sleep_until_before_second(int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double into = (double)ts.tv_nsec / 1e9;
	double wait = 1.0 - into - ms / 1000.0;
	if (wait < 0.05)
		wait += 1.0;
	itest_sleep(wait);
}

static int count_in(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* Until every reload LOG says was started has ended (a SIGHUP during a reload queues one
 * more, logged just after the first one's end: so twice in a row, 0.5 s apart), TIMEOUT_S
 * at most. */
static bool wait_reloads_done(const char *log, double timeout_s)
{
	double t0 = itest_now();
	int settled = 0;
	do {
		char *text = itest_read_file(log);
		int started = count_in(text, "SIGHUP: reloading ");
		int ended = count_in(text, "configuration reloaded");
		free(text);
		settled = started > 0 && ended >= started ? settled + 1 : 0;
		if (settled == 2)
			return true;
		itest_sleep(0.5);
	} while (itest_now() - t0 < timeout_s);
	return false;
}

START_TEST(reload_loses_no_fire)
{
	struct itest_env e;

	itest_env_setup(&e, "reload-fires", "it_reload_fires");
	itest_exec(e.db, "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp())");
	itest_env_job(&e, "00-tick.conf",
	              "job = { name = \"tick\"; schedule = \"* * * * * *\";\n"
	              "        command = \"INSERT INTO ticks DEFAULT VALUES\"; };\n");
	for (int i = 0; i < FILES; i++) {
		char name[32];
		snprintf(name, sizeof(name), "50-idle-%04d.conf", i);
		itest_env_job(
		    &e, name,
		    "job = { name = \"idle%d\"; schedule = \"0 0 1 1 *\"; command = \"SELECT "
		    "%d\"; };\n",
		    i, i);
	}
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) >= 2 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'tick' AND status = 'succeeded'"),
	              "the job does not run:\n%s", itest_read_file(e.log));
	for (int i = 0; i < RELOADS; i++) {
		sleep_until_before_second(20);
		kill(e.pid, SIGHUP);
		itest_sleep(0.6);
	}
	/* a reload of 1,000 files took 22 s under ASan on a busy machine: wait for the reloads
	 * to end (the signals sent during one make one more; a stop waits for a reload's parse
	 * under way), then a fire or two after them */
	ck_assert_msg(wait_reloads_done(e.log, 90), "the reloads did not end:\n%.3000s",
	              itest_read_file(e.log));
	itest_sleep(2.5);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	/* one row for every second from the first fire to the last: none lost, none doubled */
	long long span = itest_env_count(&e, "SELECT extract(epoch FROM max(scheduled_time) - "
	                                     "min(scheduled_time))::bigint + 1 FROM "
	                                     "pgcrond.job_run_details WHERE job_name = 'tick'");
	long long rows = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE job_name = 'tick'");
	long long seconds = itest_env_count(&e, "SELECT count(DISTINCT scheduled_time) FROM "
	                                        "pgcrond.job_run_details WHERE job_name = 'tick'");
	ck_assert_msg(seconds == span && rows == span,
	              "%lld seconds from the first fire to the last, %lld of them with a row, %lld "
	              "rows",
	              span, seconds, rows);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("reload_fires");
	TCase *tc = tcase_create("reload_fires");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, reload_loses_no_fire);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
