/* Catch-up after the job's database was unreachable across its fires: when the daemon or
 * the database was down across one or more scheduled fires, the job runs once as soon as it
 * can, recorded with trigger catchup. The job's database is a second sandbox
 * server that this test stops across two fires and starts again; the history stays up. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

START_TEST(unreachable_database_catches_up_once)
{
	struct itest_env e;
	itest_env_setup(&e, "catchup-outage", "it_catchup_outage");
	char *remote_ci = itest_sandbox2_start(e.dir);
	PGconn *remote = itest_connect(remote_ci);
	itest_exec(remote, "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp())");

	PQfinish(remote);
	/* the job's database goes away before both fires and comes back after them: away before
	 * the daemon starts (a loaded machine can take over 4 s from here to the daemon's
	 * start, and the first fire would run before the database went) */
	itest_sandbox2("pause");
	itest_write_file(e.conf,
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = {\n"
	                 "  app = { conninfo = \"%s\"; };\n"
	                 "  remote = { conninfo = \"%s\"; };\n"
	                 "};\n"
	                 "history = { database = \"app\"; };\n",
	                 e.dir, e.dir, e.ci, remote_ci);
	itest_env_start(&e);
	/* two fires a minute, 4 s apart, starting soon; nothing else until the next minute. The
	 * job comes with a reload once the daemon runs, written again further ahead if the
	 * reload began after its first fire (itest_soon_again) */
	time_t at = 0;
	for (int ahead = 2; ahead;) {
		char when[32];
		at = itest_schedule_soon_at(when, sizeof(when), ahead);
		int a = (int)(at % 60), b = (int)((at + 4) % 60);
		itest_env_job(&e, "10-tick.conf",
		              "job = { name = \"tick\"; database = \"remote\"; schedule = \"%d,%d "
		              "* * * * *\";\n"
		              "        command = \"INSERT INTO ticks DEFAULT VALUES\"; };\n",
		              a < b ? a : b, a < b ? b : a);
		itest_env_reload(&e);
		ahead = itest_soon_again(e.log, at, ahead);
	}
	while (time(NULL) < at + 7) /* a wait for the wall clock: past the second fire */
		itest_sleep(0.1);
	/* its run fails as soon as it tries to connect, but a loaded machine may take a while */
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) >= 1 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND status = 'failed' "
	                             "AND sqlstate LIKE '08%%'"),
	              "no failed fire recorded while the database was down:\n%s",
	              itest_read_file(e.log));
	itest_sandbox2("resume");
	/* One run once the database is back: the catch-up (trigger catchup), or a fire's run
	 * that was still waiting for a connection when it came back, which stands for it
	 * ("the run in progress stands for the catch-up": on a slow build the second fire can
	 * wait out the outage in the pool's backoff) */
	ck_assert_msg(itest_env_wait(&e, 45,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND status = 'succeeded'"),
	              "no catch-up run:\n%s", itest_read_file(e.log));
	itest_sleep(3); /* a window for a replay to show */
	/* once, not a burst of replays */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE job_name = 'tick' AND (trigger = 'catchup'"
	                                     " OR status = 'succeeded')"),
	                 1);
	remote = itest_connect(remote_ci);
	ck_assert_int_eq(itest_scalar_ll(remote, "SELECT count(*) FROM ticks"), 1);
	PQfinish(remote);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	free(remote_ci);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("catchup_outage");
	TCase *tc = tcase_create("catchup_outage");
	tcase_set_timeout(tc, 150);
	tcase_add_test(tc, unreachable_database_catches_up_once);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
