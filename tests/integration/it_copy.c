/* COPY in a job's command, through the daemon against a real PostgreSQL. COPY ... TO STDOUT
 * streams rows that nobody wants: the executor reads and drops them without blocking the
 * loop, and the run records the command tag ("COPY 200000") as pg_cron does; other jobs run
 * on time meanwhile, a timeout still stops a long COPY, and SIGTERM is obeyed. COPY ... FROM
 * STDIN has no client to feed it: the run fails with a message that says so, and the daemon
 * carries on. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define DB "it_copy"

/* Every second: one row, so that a stalled loop shows as late or missing fires. */
#define TICK_JOB                                                                                   \
	"{ name = \"tick\"; database = \"app\"; schedule = \"* * * * * *\"; "                      \
	"command = \"INSERT INTO ticks DEFAULT VALUES\"; }"

/* The tick rows from two seconds after its first run on time on: the start-up (the instance's
 * first claims, on a loaded machine answered more than a second late) is not what these tests
 * are about: under AddressSanitizer, with slow claims, the second tick can start a second
 * late. */
#define TICKS                                                                                      \
	"(SELECT * FROM pgcrond.job_run_details WHERE job_name = 'tick' AND scheduled_time >="     \
	" (SELECT min(scheduled_time) + interval '2 s' FROM pgcrond.job_run_details"               \
	"  WHERE job_name = 'tick' AND status = 'succeeded'"                                       \
	"  AND start_time - scheduled_time < interval '1 s'))"

/* The tick job ran at every fire since it first ran on time, each within 3 s of its time
 * (a loaded machine's slack: it was 1 s; a loop that a COPY held would hold it for as long as
 * the COPY streams, and a fire missed shows below). */
static void assert_ticks_on_time(struct itest_env *e, long long at_least)
{
	long long n = itest_env_count(e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                 "WHERE job_name = 'tick' AND status = 'succeeded'");
	ck_assert_msg(n >= at_least, "only %lld tick runs:\n%s", n, itest_read_file(e->log));
	/* a fire due while the stop waits for a COPY to end is skipped, and says so: after it,
	 * nothing ran. So is one due while the tick before it was still running (a late, slow
	 * INSERT on a loaded machine): the overlap policy, the loop answering */
	char *bad =
	    itest_scalar(e->db, "SELECT string_agg(status || ' ' || to_char(scheduled_time,"
	                        " 'HH24:MI:SS') || ': ' || coalesce(return_message, '') ||"
	                        " ' ' || coalesce(to_char(start_time, 'HH24:MI:SS.MS'), ''),"
	                        " E'\\n') FROM " TICKS " t"
	                        " WHERE status <> 'succeeded'"
	                        " AND NOT (status = 'skipped'"
	                        "  AND return_message = 'pgcrond was shutting down'"
	                        "  AND NOT EXISTS (SELECT FROM pgcrond.job_run_details l"
	                        "   WHERE l.job_name = 'tick' AND l.status = 'succeeded'"
	                        "   AND l.scheduled_time > t.scheduled_time))"
	                        " AND NOT (status = 'skipped'"
	                        "  AND return_message LIKE 'previous run still running%'"
	                        "  AND EXISTS (SELECT FROM pgcrond.job_run_details l"
	                        "   WHERE l.job_name = 'tick' AND l.status = 'succeeded'"
	                        "   AND l.scheduled_time < t.scheduled_time"
	                        "   AND l.end_time >= t.scheduled_time))"
	                        " OR (status = 'succeeded'"
	                        "  AND start_time - scheduled_time >= interval '3 s')");
	ck_assert_msg(!bad || !*bad, "tick runs that did not succeed on time:\n%s\nlog:\n%s", bad,
	              itest_read_file(e->log));
	free(bad);
	/* no fire missed: consecutive scheduled times are a second apart (two at most) */
	ck_assert_int_eq(itest_env_count(e, "SELECT count(*) FROM (SELECT scheduled_time, "
	                                    "lead(scheduled_time) OVER (ORDER BY scheduled_time) "
	                                    "AS next FROM " TICKS " r) t "
	                                    "WHERE next - scheduled_time > interval '2 s'"),
	                 0);
	ck_assert_int_eq(itest_env_count(e, "SELECT count(*) FROM ticks"), n);
}

START_TEST(copy_to_stdout_is_drained_and_recorded)
{
	struct itest_env e;
	itest_env_setup(&e, "copyout", DB);
	itest_exec(e.db, "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp())");
	itest_env_job(&e, "10-copy.conf",
	              "jobs = (\n"
	              "{ name = \"dump\"; database = \"app\"; schedule = \"* * * * * *\"; "
	              "timeout = \"60s\"; command = \"COPY (SELECT g, repeat('x', 100) FROM "
	              "generate_series(1, 200000) g) TO STDOUT\"; },\n" TICK_JOB "\n);\n");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) >= 3 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'dump' AND status = 'succeeded'"),
	              "no COPY runs recorded:\n%s", itest_read_file(e.log));
	/* the loop answers while COPYs come and go */
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) >= 5 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick'"),
	              "the tick job stalled:\n%s", itest_read_file(e.log));

	double t0 = itest_now();
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 5), 0);
	ck_assert_msg(itest_now() - t0 < 5, "SIGTERM took %.1f s", itest_now() - t0);

	/* every run streamed all its rows; a fire that came while a COPY was still streaming
	 * (a slow build on a loaded machine), or while the fire before it was still being claimed
	 * (the start-up's first claims), is an overlap skip, which is the policy, not a loss; so
	 * is the last fire, when the stop came while its claim was asked (the run before it
	 * ended 54 ms before its instant, so it was claimed at the instant, and the answer came
	 * 58 ms after the SIGTERM: no new run starts then) */
	const char *odd = "FROM pgcrond.job_run_details d WHERE job_name = 'dump' "
	                  "AND NOT (status = 'succeeded' AND return_message = 'COPY 200000') "
	                  "AND NOT (status = 'skipped' "
	                  "AND (return_message LIKE 'previous run still running%' "
	                  "OR return_message LIKE 'previous fire still being claimed%')) "
	                  "AND NOT (status = 'skipped' "
	                  "AND return_message = 'pgcrond was shutting down' "
	                  "AND NOT EXISTS (SELECT FROM pgcrond.job_run_details l "
	                  "WHERE l.job_name = 'dump' AND l.status = 'succeeded' "
	                  "AND l.scheduled_time > d.scheduled_time))";
	if (itest_env_count(&e, "SELECT count(*) %s", odd) != 0) {
		char sql[1024];
		snprintf(sql, sizeof(sql),
		         "SELECT string_agg(status || ': ' || return_message, E'\\n') %s", odd);
		ck_abort_msg("dump runs that did not stream their rows:\n%s\nlog:\n%s",
		             itest_scalar(e.db, sql), itest_read_file(e.log));
	}
	assert_ticks_on_time(&e, 5);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(timeout_stops_a_long_copy_to_stdout)
{
	struct itest_env e;
	char when[32];
	itest_env_setup(&e, "copytimeout", DB);
	itest_exec(e.db, "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp())");
	itest_env_start(&e);
	/* the job comes with a reload once the daemon runs (itest_env_reload) */
	for (int ahead = 2; ahead;) {
		time_t at = itest_schedule_soon_at(when, sizeof(when), ahead);
		/* rows trickle out for minutes: the timeout must stop it while it streams */
		itest_env_job(
		    &e, "10-copy.conf",
		    "jobs = (\n"
		    "{ name = \"slow\"; database = \"app\"; schedule = \"%s\"; timeout = \"2s\"; "
		    "command = \"COPY (SELECT g, pg_sleep(0.001), repeat('x', 100) FROM "
		    "generate_series(1, 1000000) g) TO STDOUT\"; },\n" TICK_JOB "\n);\n",
		    when);
		itest_env_reload(&e);
		ahead = itest_soon_again(e.log, at, ahead);
	}
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'slow' AND status = 'failed'"),
	              "the COPY was not stopped:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                        "WHERE job_name = 'slow' AND sqlstate = '57014' AND return_message "
	                        "= 'timed out after 2s; the statement was cancelled' "
	                        "AND duration_ms < 6000"),
	    1);
	/* the loop goes on after the cancel: two ticks due after the COPY's end ran */
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) >= 2 FROM pgcrond.job_run_details WHERE "
	                             "job_name = 'tick' AND status = 'succeeded' AND "
	                             "scheduled_time > (SELECT end_time FROM "
	                             "pgcrond.job_run_details WHERE job_name = 'slow')"),
	              "no tick ran after the COPY was stopped:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 5), 0);
	assert_ticks_on_time(&e, 3);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(copy_from_stdin_fails_clearly)
{
	struct itest_env e;
	itest_env_setup(&e, "copyin", DB);
	itest_exec(e.db, "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp());"
	                 "CREATE TABLE sink (v text)");
	itest_env_job(&e, "10-copy.conf",
	              "jobs = (\n"
	              "{ name = \"load\"; database = \"app\"; schedule = \"* * * * * *\"; "
	              "command = \"COPY sink FROM STDIN\"; },\n" TICK_JOB "\n);\n");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) >= 3 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'load'"),
	              "no COPY FROM STDIN runs:\n%s", itest_read_file(e.log));
	/* still up: the ticks go on */
	long long ticks = itest_env_count(&e, "SELECT count(*) FROM ticks");
	ck_assert_msg(itest_env_wait(&e, 10, "SELECT count(*) >= %lld FROM ticks", ticks + 2),
	              "the daemon stopped working:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 5), 0);

	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                        "WHERE job_name = 'load' AND (status <> 'failed' OR return_message "
	                        "IS DISTINCT FROM 'COPY FROM STDIN needs a client to send data; "
	                        "pgcrond has none' OR sqlstate IS DISTINCT FROM '0A000')"),
	    0);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM sink"), 0);
	assert_ticks_on_time(&e, 3);
	itest_env_teardown(&e);
}
END_TEST

/* The daemon's peak resident memory, in kB (VmHWM). */
static long peak_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	ck_assert(f != NULL);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* A job whose statement returns 200 MB: the rows are counted as they come, never held, so
 * the daemon stays small, and the run records the count. */
START_TEST(large_results_are_counted_not_held)
{
	struct itest_env e;
	char when[32];

	itest_env_setup(&e, "big", DB "_big");
	itest_env_start(&e);
	/* the job comes with a reload once the daemon runs (itest_env_reload) */
	for (int ahead = 2; ahead;) {
		time_t at = itest_schedule_soon_at(when, sizeof(when), ahead);
		itest_env_job(
		    &e, "10-big.conf",
		    "job = { name = \"big\"; schedule = \"%s\"; timeout = \"120s\";\n"
		    "        command = \"SELECT repeat('x', 1000) FROM generate_series(1, "
		    "200000)\"; };\n",
		    when);
		itest_env_reload(&e);
		ahead = itest_soon_again(e.log, at, ahead);
	}
	ck_assert_msg(itest_env_wait(&e, 60,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE "
	                             "job_name = 'big' AND status = 'succeeded' AND "
	                             "return_message = '200000 rows'"),
	              "%s", itest_read_file(e.log));
	long kb = peak_rss_kb(e.pid);
	ck_assert(kb > 0);
#if !defined(__SANITIZE_ADDRESS__)
	/* (AddressSanitizer keeps freed memory in quarantine: no bound there) */
	ck_assert_msg(kb < 50 * 1024, "the daemon peaked at %ld kB", kb);
#endif
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("copy");
	TCase *tc = tcase_create("copy");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, copy_to_stdout_is_drained_and_recorded);
	tcase_add_test(tc, timeout_stops_a_long_copy_to_stdout);
	tcase_add_test(tc, copy_from_stdin_fails_clearly);
	tcase_add_test(tc, large_results_are_counted_not_held);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
