/* The history's retention on pgcrond's own session of the history database (hist_part.c):
 * it opens no session of its own, and a reader that holds a lock on a
 * partition past the retention holds up neither the runs' history nor anything else on that
 * session; the partition goes once the lock is gone. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

/* The three jobs' rows, every second each. */
#define TICKS "FROM pgcrond.job_run_details WHERE job_name IN ('t1', 't2', 't3')"

START_TEST(a_reader_holds_the_partition_the_retention_drops)
{
	struct itest_env e;
	itest_env_setup(&e, "retention-lock", "it_retention_lock");
	/* a day 40 days back, past the default retain (30 days), with rows */
	itest_exec(e.db, "SELECT pgcrond.history_partition_create((now() AT TIME ZONE 'UTC')::date"
	                 " - 40)");
	itest_exec(e.db, "INSERT INTO pgcrond.job_run_details (job_name, status, start_time,"
	                 " instance, run_key) SELECT 'old', 'succeeded', ((now() AT TIME ZONE"
	                 " 'UTC')::date - 40)::timestamp AT TIME ZONE 'UTC' + i * interval"
	                 " '1 second', 'h', 'k' || i FROM generate_series(1, 100) i");
	char *old = itest_scalar(e.db, "SELECT 'pgcrond.job_run_details_p' || to_char((now() AT"
	                               " TIME ZONE 'UTC')::date - 40, 'YYYYMMDD')");
	char sql[512];
	snprintf(sql, sizeof(sql), "SELECT (to_regclass('%s') IS NOT NULL)::int", old);

	/* a reader of that day (any role the history is granted to) keeps its transaction
	 * open, from before the daemon starts: its lock stops the partition's detach */
	PGconn *reader = itest_connect(e.ci);
	itest_exec(reader, "BEGIN");
	char read[256];
	snprintf(read, sizeof(read), "SELECT count(*) FROM %s", old);
	itest_exec(reader, read);

	itest_env_job(&e, "10-jobs.conf",
	              "jobs = (\n"
	              "  { name = \"t1\"; command = \"SELECT 1\"; database = \"app\";"
	              " schedule = \"* * * * * *\"; },\n"
	              "  { name = \"t2\"; command = \"SELECT 2\"; database = \"app\";"
	              " schedule = \"* * * * * *\"; },\n"
	              "  { name = \"t3\"; command = \"SELECT 3\"; database = \"app\";"
	              " schedule = \"* * * * * *\"; }\n"
	              ");\n");
	itest_env_start(&e);

	/* 12 s from the start: the retention tries at start and every 5 s after it gave way */
	long long retention_sessions = 0;
	double lag = 0, most_lag = 0;
	for (int i = 0; i < 48; i++) {
		long long n = itest_env_count(&e, "SELECT count(*) FROM pg_stat_activity"
		                                  " WHERE application_name = 'pgcrond retention'");
		if (n > retention_sessions)
			retention_sessions = n;
		/* how far the history trails the runs, once they have begun */
		char *s = itest_scalar(e.db, "SELECT coalesce(extract(epoch FROM clock_timestamp()"
		                             " - max(end_time)), 0) " TICKS);
		lag = atof(s);
		free(s);
		if (i >= 12 && lag > most_lag)
			most_lag = lag;
		itest_sleep(0.25);
	}
	ck_assert_msg(retention_sessions == 0, "a session of the retention's own:\n%s",
	              itest_tail(e.log));
	ck_assert_msg(itest_scalar_ll(e.db, sql) == 1, "the partition went while it was read");
	ck_assert_msg(itest_wait_log(e.log, "history retention: partition", 5),
	              "the retention never met the reader's lock:\n%s", itest_tail(e.log));
	/* the runs' records kept coming behind the retention's tries, on the same session */
	ck_assert_msg(itest_env_count(&e, "SELECT count(*) " TICKS) >= 18,
	              "the runs' history was not written:\n%s", itest_tail(e.log));
	fprintf(stderr, "it_retention: the history trailed the runs by %.1f s at most\n", most_lag);
	ck_assert_msg(most_lag < 5, "the history trailed the runs by %.1f s", most_lag);

	/* the reader is done: the day goes at the retention's next try */
	itest_exec(reader, "COMMIT");
	snprintf(sql, sizeof(sql), "SELECT to_regclass('%s') IS NULL", old);
	ck_assert_msg(itest_env_wait(&e, 20, "%s", sql), "the partition is still there:\n%s",
	              itest_tail(e.log));
	ck_assert_msg(itest_wait_log(e.log, "dropped partition", 5), "not logged:\n%s",
	              itest_tail(e.log));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE job_name = 'old'"),
	                 0);
	char *to = itest_scalar(e.db, "SELECT date_trunc('second', clock_timestamp())::text");
	itest_sleep(2);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);

	/* every fire of every second from the first full one to TO has one row: none lost, none
	 * written twice */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM (SELECT job_name,"
	                                     " scheduled_time " TICKS
	                                     " GROUP BY 1, 2 HAVING count(*) > 1) d"),
	                 0);
	long long missing = itest_env_count(
	    &e,
	    "SELECT count(*) FROM unnest(ARRAY['t1', 't2', 't3']) j,"
	    " generate_series((SELECT min(scheduled_time) " TICKS ") + interval '1 second',"
	    " '%s'::timestamptz, interval '1 second') t"
	    " WHERE NOT EXISTS (SELECT FROM pgcrond.job_run_details r WHERE r.job_name = j"
	    " AND r.scheduled_time = t AND r.status = 'succeeded')",
	    to);
	ck_assert_msg(missing == 0, "%lld fires without a row:\n%s", missing, itest_tail(e.log));
	free(to);
	free(old);
	PQfinish(reader);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("retention");
	TCase *tc = tcase_create("retention");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, a_reader_holds_the_partition_the_retention_drops);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
