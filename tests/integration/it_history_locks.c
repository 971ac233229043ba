/* The history's own partitions on pgcrond's own session of the history database (history.c:
 * the ensure at connect, and the partition made for a record whose day has none), while
 * another transaction holds a lock their ATTACH needs on the history (a manual VACUUM or
 * ANALYZE takes the same): each waits for it a moment at most, as the retention's steps do
 * (it_retention), and tries again later. Nothing else on that session waits behind them, the
 * runs go on, their records wait in the spool, and the history catches up once the lock is
 * gone: no run lost or written twice. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define TICKS "FROM pgcrond.job_run_details WHERE job_name = 'tick'"

START_TEST(a_lock_on_the_history_at_start_and_a_day_without_partition)
{
	struct itest_env e;
	itest_env_setup(&e, "hist-locks", "it_history_locks");
	itest_exec(e.db, "CREATE TABLE public.ticks (at timestamptz DEFAULT clock_timestamp());"
	                 "GRANT ALL ON public.ticks TO PUBLIC");
	/* today's partition and the last one ahead are gone: the ensure at connect has to make
	 * them, and so has the first batch, whose rows have no day to go to */
	itest_exec(e.db, "DO $$ DECLARE r record; BEGIN FOR r IN SELECT partition_name"
	                 " FROM pgcrond.history_partition_list() WHERE from_time >="
	                 " (now() AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC' LOOP"
	                 " EXECUTE format('DROP TABLE pgcrond.%I', r.partition_name);"
	                 " END LOOP; END $$");
	ck_assert_int_eq(itest_scalar_ll(e.db,
	                                 "SELECT count(*) FROM pgcrond.history_partition_list()"
	                                 " WHERE to_time > now()"),
	                 0);

	/* a lock as a manual VACUUM takes, held from before the start */
	PGconn *vacuum = itest_connect(e.ci);
	itest_exec(vacuum, "BEGIN; LOCK TABLE pgcrond.job_run_details IN SHARE UPDATE EXCLUSIVE"
	                   " MODE");

	itest_env_job(&e, "10-jobs.conf",
	              "jobs = ({ name = \"tick\"; database = \"app\"; schedule = \"* * * * * *\";"
	              " command = \"INSERT INTO public.ticks DEFAULT VALUES\"; });\n");
	itest_env_start(&e);

	/* the runs go on behind the lock (a statement on the session waiting for it would hold
	 * up what the scheduler waits for at start: the catch-up's read of the last fires), for
	 * long enough that the history gives way to it more than once */
	double t0 = itest_now();
	ck_assert_msg(itest_env_wait(&e, 20, "SELECT count(*) >= 8 FROM public.ticks"),
	              "the runs waited for the lock: %lld in %.0f s:\n%s",
	              itest_env_count(&e, "SELECT count(*) FROM public.ticks"), itest_now() - t0,
	              itest_tail(e.log));
	ck_assert_msg(itest_wait_log(e.log, "a new partition waits for a lock", 10),
	              "the history never met the lock:\n%s", itest_tail(e.log));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) " TICKS), 0);
	/* no statement waits for it long: the retention gave way as well, and the history's
	 * records wait in the spill file, not behind a statement */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pg_stat_activity"
	                                     " WHERE wait_event_type = 'Lock' AND"
	                                     " clock_timestamp() - query_start > interval '1 s'"),
	                 0);

	/* the lock goes: the day's partition is made and the history catches up */
	itest_exec(vacuum, "COMMIT");
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) > 0 FROM pgcrond.history_partition_list()"
	                             " WHERE from_time <= now() AND to_time > now()"),
	              "today's partition was not made:\n%s", itest_tail(e.log));
	ck_assert_msg(itest_wait_log(e.log, "run records are written again", 15),
	              "the history did not catch up:\n%s", itest_tail(e.log));
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) > 0 FROM pgcrond.history_partition_list()"
	                             " WHERE from_time >= now() + interval '2 days'"),
	              "the partitions ahead were not made:\n%s", itest_tail(e.log));
	itest_sleep(2);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);

	/* every run has one row, succeeded: none lost, none written twice */
	long long runs = itest_env_count(&e, "SELECT count(*) FROM public.ticks");
	long long rows = itest_env_count(&e, "SELECT count(*) " TICKS " AND status = 'succeeded'");
	long long twice = itest_env_count(&e, "SELECT count(*) FROM (SELECT scheduled_time " TICKS
	                                      " GROUP BY 1 HAVING count(*) > 1) d");
	fprintf(stderr, "it_history_locks: %lld runs, %lld rows, %lld fires written twice\n", runs,
	        rows, twice);
	ck_assert_msg(runs >= 8 && rows == runs && twice == 0,
	              "%lld runs, %lld succeeded rows, %lld fires twice:\n%s", runs, rows, twice,
	              itest_tail(e.log));
	PQfinish(vacuum);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("history_locks");
	TCase *tc = tcase_create("history_locks");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, a_lock_on_the_history_at_start_and_a_day_without_partition);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
