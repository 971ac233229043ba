/* Missed fires are never silent. The daemon is stopped with SIGSTOP for
 * 6 s while an every-second job is scheduled; when it goes on, the fires it could not serve
 * are handled by the job's catch-up policy and leave a trace: with catchup = skip one
 * `skipped` history row counting them and a log line; with catchup = once one catch-up run
 * and never a second run for any fire. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define STOPPED_S 6

/* Start an every-second job with CATCHUP, let it run, stop the daemon STOPPED_S seconds. */
static void stall_daemon(struct itest_env *e, const char *tag, const char *catchup)
{
	itest_env_setup(e, tag, tag);
	itest_exec(e->db, "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp())");
	itest_env_job(e, "10-tick.conf",
	              "job = { name = \"tick\"; schedule = \"* * * * * *\"; catchup = \"%s\";\n"
	              "        command = \"INSERT INTO ticks DEFAULT VALUES\"; };\n",
	              catchup);
	itest_env_start(e);
	ck_assert_msg(itest_env_wait(e, 20,
	                             "SELECT count(*) >= 2 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND status = 'succeeded'"),
	              "the job does not run:\n%s", itest_read_file(e->log));
	ck_assert_int_eq(kill(e->pid, SIGSTOP), 0);
	itest_sleep(STOPPED_S);
	ck_assert_int_eq(kill(e->pid, SIGCONT), 0);
}

/* No fire was served twice, whatever the trigger. */
static void assert_no_doubles(struct itest_env *e)
{
	ck_assert_int_eq(itest_env_count(e, "SELECT count(*) FROM (SELECT scheduled_time "
	                                    "FROM pgcrond.job_run_details WHERE job_name = 'tick' "
	                                    "AND status <> 'skipped' AND attempt = 1 "
	                                    "GROUP BY scheduled_time HAVING count(*) > 1) d"),
	                 0);
}

START_TEST(stopped_daemon_skip_records_missed_fires)
{
	struct itest_env e;
	stall_daemon(&e, "it_missed_skip", "skip");
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) >= 1 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND status = 'skipped'"),
	              "no skipped row for the fires missed while stopped:\n%s",
	              itest_read_file(e.log));
	/* let it run on a little: the stall gives one row, not one per fire */
	ck_assert(itest_env_wait(&e, 15,
	                         "SELECT count(*) >= 2 FROM pgcrond.job_run_details "
	                         "WHERE job_name = 'tick' AND status = 'succeeded' "
	                         "AND start_time > (SELECT max(end_time) FROM "
	                         "pgcrond.job_run_details WHERE status = 'skipped')"));
	/* (stopped in the 100 ms before an instant, the fire it had claimed early keeps a row of
	 * its own, the same words without the policy: admit_early_drop) */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE job_name = 'tick' AND status = 'skipped'"
	                                     " AND return_message LIKE '%%catchup = skip'"),
	                 1);
	ck_assert_int_eq(itest_env_count(&e,
	                                 "SELECT count(*) FROM pgcrond.job_run_details "
	                                 "WHERE job_name = 'tick' AND status = 'skipped'"
	                                 " AND return_message NOT LIKE '%%catchup = skip'"
	                                 " AND return_message !~ '^[0-9]+ fires? .* missed \\('"),
	                 0);
	/* the row says how many and why, and stands for the latest of them */
	long long missed = itest_env_count(&e, "SELECT substring(return_message FROM '^([0-9]+) "
	                                       "fires? .* missed')::int FROM "
	                                       "pgcrond.job_run_details WHERE status = 'skipped'"
	                                       " AND return_message LIKE '%%catchup = skip'");
	ck_assert_msg(missed >= STOPPED_S - 2 && missed <= STOPPED_S + 3,
	              "missed count %lld for a stop of %d s", missed, STOPPED_S);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE status = 'skipped' AND trigger = 'schedule' "
	                                     "AND return_message LIKE '%%catchup = skip%%' "
	                                     "AND scheduled_time < start_time"),
	                 1);
	/* every served fire after the stall is later than the skipped one */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details r, "
	                                     "pgcrond.job_run_details s WHERE s.status = 'skipped' "
	                                     "AND r.status = 'succeeded' AND r.start_time > "
	                                     "s.end_time AND r.scheduled_time <= s.scheduled_time"),
	                 0);
	assert_no_doubles(&e);
	char *log = itest_read_file(e.log);
	ck_assert_msg(strstr(log, "missed") && strstr(log, "catchup = skip"),
	              "no log line for the missed fires:\n%s", log);
	free(log);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(stopped_daemon_once_runs_one_catchup)
{
	struct itest_env e;
	stall_daemon(&e, "it_missed_once", "once");
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND trigger = 'catchup' "
	                             "AND status = 'succeeded'"),
	              "no catch-up run after the stop:\n%s", itest_read_file(e.log));
	/* the job goes on on schedule afterwards, with no second catch-up */
	ck_assert(itest_env_wait(&e, 15,
	                         "SELECT count(*) >= 2 FROM pgcrond.job_run_details "
	                         "WHERE job_name = 'tick' AND trigger = 'schedule' "
	                         "AND scheduled_time > (SELECT scheduled_time FROM "
	                         "pgcrond.job_run_details WHERE trigger = 'catchup')"));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE job_name = 'tick' AND trigger = 'catchup'"),
	                 1);
	/* none, but for a fire claimed early in the 100 ms before the stop (admit_early_drop) */
	ck_assert_int_eq(itest_env_count(&e,
	                                 "SELECT count(*) FROM pgcrond.job_run_details "
	                                 "WHERE job_name = 'tick' AND status = 'skipped'"
	                                 " AND return_message !~ '^[0-9]+ fires? .* missed \\('"),
	                 0);
	assert_no_doubles(&e);
	char *log = itest_read_file(e.log);
	ck_assert_msg(strstr(log, "missed") && strstr(log, "running once"),
	              "no log line for the missed fires:\n%s", log);
	free(log);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A restart after downtime: fifteen every-second jobs missed fires while no pgcrond ran. Each
 * runs once; ten are logged one a line, and one line counts the other five, so that a restart
 * of thousands of jobs does not bury the log. */
START_TEST(restart_counts_the_catchups_past_ten)
{
	struct itest_env e;
	itest_env_setup(&e, "it_missed_many", "it_missed_many");
	itest_exec(e.db, "CREATE TABLE ticks (job int, at timestamptz DEFAULT clock_timestamp())");
	for (int i = 0; i < 15; i++) {
		char file[32];
		snprintf(file, sizeof(file), "10-tick%d.conf", i);
		itest_env_job(
		    &e, file,
		    "job = { name = \"tick%d\"; schedule = \"* * * * * *\";"
		    " catchup = \"once\"; command = \"INSERT INTO ticks (job) VALUES (%d)\"; };\n",
		    i, i);
	}
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(DISTINCT job_name) = 15 FROM "
	                             "pgcrond.job_run_details WHERE status = 'succeeded'"),
	              "the jobs do not run:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_sleep(3);
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(DISTINCT job_name) = 15 FROM "
	                             "pgcrond.job_run_details WHERE trigger = 'catchup'"
	                             " AND status = 'succeeded'"),
	              "not every job caught up once:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE trigger = 'catchup'"),
	                 15);
	ck_assert_int_eq(itest_count_in_file(e.log, "passed while pgcrond was not running; "
	                                            "running once (catchup = once)"),
	                 10);
	ck_assert_int_eq(itest_count_in_file(e.log, "5 more jobs missed scheduled fires while "
	                                            "pgcrond was not running; each runs once now"),
	                 1);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("missed");
	TCase *tc = tcase_create("missed");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, stopped_daemon_skip_records_missed_fires);
	tcase_add_test(tc, stopped_daemon_once_runs_one_catchup);
	tcase_add_test(tc, restart_counts_the_catchups_past_ten);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
