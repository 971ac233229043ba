/* The job graph, retries and catch-up through the daemon against a real PostgreSQL: a
 * diamond runs in order with one graph-run id; a final upstream failure gives the
 * downstreams upstream_failed rows and an alert; a deadlock is retried with growing delays,
 * a missing table is not; a daemon stopped across fires catches up once. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "itest.h"

#define DB "it_flow"

START_TEST(diamond_runs_in_order_with_one_graph_run)
{
	struct itest_env e;
	char when[32];
	itest_env_setup(&e, "diamond", DB);
	itest_exec(e.db, "CREATE TABLE steps (job text, started timestamptz, ended timestamptz)");
	itest_env_start(&e);
	/* the jobs come with a reload once the daemon runs (itest_env_reload) */
	/* each step records its own start and end, so the order is checked from the inside */
#define STEP(name, secs)                                                                           \
	"INSERT INTO steps VALUES ('" name "', clock_timestamp()); SELECT pg_sleep(" secs "); "    \
	"UPDATE steps SET ended = clock_timestamp() WHERE job = '" name "'"
	for (int ahead = 3; ahead;) {
		time_t at = itest_schedule_soon_at(when, sizeof(when), ahead);
		itest_env_job(
		    &e, "10-diamond.conf",
		    "jobs = (\n{ name = \"a\"; database = \"app\"; schedule = \"%s\"; command = "
		    "\"%s\"; "
		    "},\n"
		    "{ name = \"b\"; database = \"app\"; after = [\"a\"]; command = \"%s\"; },\n"
		    "{ name = \"c\"; database = \"app\"; after = [\"a\"]; command = \"%s\"; },\n"
		    "{ name = \"d\"; database = \"app\"; after = [\"b\", \"c\"]; command = \"%s\"; "
		    "}\n);\n",
		    when, STEP("a", "0.3"), STEP("b", "1.5"), STEP("c", "1.5"), STEP("d", "0.3"));
		itest_env_reload(&e);
		ahead = itest_soon_again(e.log, at, ahead);
	}
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'd' AND status = 'succeeded'"),
	              "d did not run:\n%s", itest_read_file(e.log));
	itest_sleep(1.5); /* nothing more may come */
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);

	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"), 4);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE status = 'succeeded'"),
	                 4);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(DISTINCT graph_run) FROM "
	                                     "pgcrond.job_run_details WHERE graph_run IS NOT NULL"),
	                 1);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE graph_run IS NULL"),
	                 0);
	ck_assert_int_eq(
	    itest_env_count(&e,
	                    "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                    "trigger = CASE job_name WHEN 'a' THEN 'schedule' ELSE 'upstream' END"),
	    4);
	/* b and c after a; d after both b and c; b and c overlap (fan-out starts them together;
	 * their 1.5 s steps leave room for one session to start slower on a loaded machine, which
	 * can begin c's statement more than 0.3 s after b's) */
	ck_assert_int_eq(itest_env_count(&e,
	                                 "SELECT count(*) FROM steps x JOIN steps a ON a.job = 'a' "
	                                 "WHERE x.job IN ('b', 'c') AND x.started >= a.ended"),
	                 2);
	ck_assert_int_eq(
	    itest_env_count(
	        &e,
	        "SELECT count(*) FROM steps d, steps x WHERE d.job = 'd' AND x.job IN ('b', 'c') "
	        "AND d.started >= x.ended"),
	    2);
	ck_assert_int_eq(
	    itest_env_count(
	        &e, "SELECT count(*) FROM steps b, steps c WHERE b.job = 'b' AND c.job = 'c' "
	            "AND b.started < c.ended AND c.started < b.ended"),
	    1);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(upstream_failure_marks_downstreams_and_alerts)
{
	struct itest_env e;
	char when[32];
	itest_env_setup(&e, "upfail", DB);
	itest_env_main(
	    &e,
	    "alerts = ( { sink = \"log\"; }, { sink = \"exec\"; command = "
	    "\"echo \\\"$PGCROND_ALERT_EVENT $PGCROND_ALERT_KIND $PGCROND_ALERT_JOB\\\" >> "
	    "%s/state/alerts.txt\"; } );\n",
	    e.dir);
	itest_env_start(&e);
	/* the jobs come with a reload once the daemon runs (itest_env_reload) */
	for (int ahead = 3; ahead;) {
		time_t at = itest_schedule_soon_at(when, sizeof(when), ahead);
		itest_env_job(&e, "10-chain.conf",
		              "jobs = (\n{ name = \"x\"; database = \"app\"; schedule = \"%s\"; "
		              "command = \"SELECT "
		              "1/0\";"
		              " retries = 2; retry_delay = \"100ms\"; },\n"
		              "{ name = \"y\"; database = \"app\"; after = [\"x\"]; command = "
		              "\"SELECT 1\"; },\n"
		              "{ name = \"z\"; database = \"app\"; after = [\"y\"]; command = "
		              "\"SELECT 1\"; }\n);\n",
		              when);
		itest_env_reload(&e);
		ahead = itest_soon_again(e.log, at, ahead);
	}
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 2 FROM pgcrond.job_run_details "
	                             "WHERE status = 'upstream_failed'"),
	              "no upstream_failed rows:\n%s", itest_read_file(e.log));
	char *alerts_path = itest_env_path(&e, "state/alerts.txt");
	double t0 = itest_now();
	char *a = NULL;
	for (;;) {
		free(a);
		a = itest_read_file(alerts_path);
		/* each alert is its own exec'd command: they land in any order */
		if ((strstr(a, "alert upstream_failed z") && strstr(a, "alert upstream_failed y") &&
		     strstr(a, "alert failed x")) ||
		    itest_now() - t0 > 10)
			break;
		itest_sleep(0.1);
	}
	ck_assert_msg(strstr(a, "alert failed x"), "alerts:\n%s", a);
	ck_assert_msg(strstr(a, "alert upstream_failed y"), "alerts:\n%s", a);
	ck_assert_msg(strstr(a, "alert upstream_failed z"), "alerts:\n%s", a);
	free(a);
	free(alerts_path);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	/* 22012 is not transient: one attempt, no retry */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE job_name = 'x'"),
	                 1);
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                        "WHERE job_name IN ('y', 'z') AND status = 'upstream_failed' "
	                        "AND return_message LIKE '%%upstream job x failed%%'"),
	    2);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(DISTINCT graph_run) FROM "
	                                     "pgcrond.job_run_details"),
	                 1);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE graph_run IS NULL"),
	                 0);
	itest_env_teardown(&e);
}
END_TEST

/* The delay (ms) JOB's log line "retrying in 412ms (attempt N of M)" in LOG chose for its
 * attempt N ("1s20ms" is 1020), or -1 if there is none. The delay the daemon chose, not the
 * one it took on a loaded machine. */
static long long logged_retry_ms(const char *log, const char *job, int attempt)
{
	char *text = itest_read_file(log), needle[96], tail[32];
	snprintf(needle, sizeof(needle), "%s: retrying in ", job);
	snprintf(tail, sizeof(tail), " (attempt %d of", attempt);
	long long ms = -1;
	for (const char *p = text; ms < 0 && (p = strstr(p, needle)) != NULL; p++) {
		const char *q = p + strlen(needle), *end = strchr(q, ' ');
		if (!end || strncmp(end, tail, strlen(tail)) != 0)
			continue;
		long long sum = 0;
		while (q < end) {
			char *unit;
			long long v = strtoll(q, &unit, 10);
			if (unit == q)
				break;
			if (strncmp(unit, "ms", 2) == 0) {
				sum += v;
				q = unit + 2;
			} else if (*unit == 's') {
				sum += v * 1000;
				q = unit + 1;
			} else {
				break;
			}
		}
		if (q == end)
			ms = sum;
	}
	free(text);
	return ms;
}

START_TEST(deadlock_is_retried_with_growing_delays)
{
	struct itest_env e;
	char when[32];
	itest_env_setup(&e, "retry", DB);
	/* a sequence is not rolled back by the error: it counts the attempts */
	itest_exec(e.db, "CREATE SEQUENCE tries;"
	                 "CREATE FUNCTION flaky() RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
	                 "IF nextval('tries') <= 2 THEN RAISE EXCEPTION 'simulated deadlock' "
	                 "USING ERRCODE = '40P01'; END IF; RETURN 1; END $$");
	itest_env_start(&e);
	/* the jobs come with a reload once the daemon runs (itest_env_reload) */
	for (int ahead = 3; ahead;) {
		time_t at = itest_schedule_soon_at(when, sizeof(when), ahead);
		itest_env_job(
		    &e, "10-retry.conf",
		    "jobs = (\n{ name = \"flaky\"; database = \"app\"; schedule = \"%s\"; "
		    "command = \"SELECT flaky()\";"
		    " retries = 3; retry_delay = \"400ms\"; retry_backoff = 2.0; },\n"
		    "{ name = \"missing\"; database = \"app\"; schedule = \"%s\";"
		    " command = \"SELECT * FROM no_such_table\"; retries = 3; retry_delay = "
		    "\"200ms\"; }\n);\n",
		    when, when);
		itest_env_reload(&e);
		ahead = itest_soon_again(e.log, at, ahead);
	}
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'flaky' AND status = 'succeeded'"),
	              "flaky never succeeded:\n%s", itest_read_file(e.log));
	itest_sleep(1.5); /* time for a wrong retry of "missing" to show */
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);

	ck_assert_int_eq(
	    itest_env_count(
	        &e, "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 'flaky'"),
	    3);
	ck_assert_int_eq(
	    itest_env_count(
	        &e, "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 'flaky' AND "
	            "((attempt IN (1, 2) AND status = 'failed' AND sqlstate = '40P01') OR "
	            " (attempt = 3 AND status = 'succeeded')) AND "
	            "trigger = CASE attempt WHEN 1 THEN 'schedule' ELSE 'retry' END"),
	    3);
	/* all attempts serve the same fire */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(DISTINCT scheduled_time) FROM "
	                                     "pgcrond.job_run_details WHERE job_name = 'flaky'"),
	                 1);
	/* delays: ~400 ms then ~800 ms (±10% jitter), as the daemon chose them (its log) */
	long long p1 = logged_retry_ms(e.log, "flaky", 2), p2 = logged_retry_ms(e.log, "flaky", 3);
	ck_assert_msg(p1 >= 360 && p1 <= 440 && p2 >= 720 && p2 <= 880,
	              "delays chosen: %lld then %lld ms:\n%s", p1, p2, itest_read_file(e.log));
	/* and as they were kept: never shorter; longer by a loaded machine's slack at most (the
	 * bounds were 1.5 s and 2.5 s; 3 s and 3.5 s now) */
	long long d1 = itest_env_count(
	    &e,
	    "SELECT extract(epoch FROM n.start_time - p.end_time) * 1000 FROM "
	    "pgcrond.job_run_details p JOIN pgcrond.job_run_details n ON n.job_name = p.job_name "
	    "AND n.attempt = 2 WHERE p.job_name = 'flaky' AND p.attempt = 1");
	long long d2 = itest_env_count(
	    &e,
	    "SELECT extract(epoch FROM n.start_time - p.end_time) * 1000 FROM "
	    "pgcrond.job_run_details p JOIN pgcrond.job_run_details n ON n.job_name = p.job_name "
	    "AND n.attempt = 3 WHERE p.job_name = 'flaky' AND p.attempt = 2");
	ck_assert_msg(d1 >= 340 && d1 < 3000, "first delay %lld ms", d1);
	ck_assert_msg(d2 >= 700 && d2 < 3500, "second delay %lld ms", d2);
	/* they grow: the chosen ones, which a loaded machine's lateness does not blur */
	ck_assert_msg(p2 > p1, "delays do not grow: %lld then %lld ms", p1, p2);
	/* 42P01 is not transient: failed once, not retried */
	ck_assert_int_eq(
	    itest_env_count(
	        &e, "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 'missing'"),
	    1);
	ck_assert_int_eq(
	    itest_env_count(&e,
	                    "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                    "job_name = 'missing' AND status = 'failed' AND sqlstate = '42P01'"),
	    1);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(stopped_across_fires_catches_up_once)
{
	struct itest_env e;
	itest_env_setup(&e, "catchup", DB);
	/* every 6 s: stopped across at least two fires that nobody runs */
	itest_env_job(
	    &e, "10-tick.conf",
	    "jobs = (\n{ name = \"tick\"; database = \"app\"; schedule = \"*/6 * * * * *\";"
	    " command = \"SELECT 1\"; },\n"
	    "{ name = \"lazy\"; database = \"app\"; schedule = \"*/6 * * * * *\";"
	    " command = \"SELECT 1\"; catchup = \"skip\"; }\n);\n");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) >= 1 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND status = 'succeeded'"),
	              "tick never ran:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_exec(e.db, "CREATE TABLE stopped AS SELECT clock_timestamp() AS at");
	/* restart a second after the second fire (at multiples of 6 s) since the stop, so the
	 * catch-up is decided before the next regular fire, which would otherwise stand for it
	 * (a wait for the wall clock: the schedule's instants). 6 s, not 3: a loaded machine once
	 * took 2 s to start the ASan build, and the regular fire came first */
	time_t second_fire = (time(NULL) / 6 + 2) * 6;
	while (time(NULL) < second_fire + 1)
		itest_sleep(0.05);
	itest_exec(e.db, "CREATE TABLE restarted AS SELECT clock_timestamp() AS at");
	itest_env_start(&e);
	ck_assert_msg(
	    itest_env_wait(
	        &e, 10,
	        "SELECT count(*) = 1 FROM pgcrond.job_run_details "
	        "WHERE job_name = 'tick' AND trigger = 'catchup' AND status = 'succeeded'"),
	    "no catch-up run:\n%s", itest_read_file(e.log));
	itest_sleep(4);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	/* once, not a burst; for the latest missed fire; catchup = skip never catches up (the
	 * catch-ups are counted in the stop's window: a timer late by over a second on a loaded
	 * machine after the restart is another's) */
	ck_assert_int_eq(
	    itest_env_count(
	        &e, "SELECT count(*) FROM pgcrond.job_run_details, stopped, restarted WHERE "
	            "trigger = 'catchup' AND scheduled_time > stopped.at AND scheduled_time <= "
	            "restarted.at "
	            "AND start_time >= restarted.at"),
	    1);
	ck_assert_int_eq(
	    itest_env_count(
	        &e, "SELECT count(*) FROM pgcrond.job_run_details, stopped, restarted WHERE "
	            "scheduled_time > stopped.at AND scheduled_time < restarted.at - interval '1 "
	            "second' "
	            "AND trigger <> 'catchup'"),
	    0);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("flow");
	TCase *tc = tcase_create("flow");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, diamond_runs_in_order_with_one_graph_run);
	tcase_add_test(tc, upstream_failure_marks_downstreams_and_alerts);
	tcase_add_test(tc, deadlock_is_retried_with_growing_delays);
	tcase_add_test(tc, stopped_across_fires_catches_up_once);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
