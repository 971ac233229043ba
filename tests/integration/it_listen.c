/* LISTEN/NOTIFY triggers through the daemon against a real PostgreSQL: a burst of
 * notifications makes one run that receives every payload; a steady stream still runs the
 * job at least every max_delay; a killed listening backend reconnects and the job runs once.
 * The "payloads" test plugin records each run's payloads in payload_runs. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "itest.h"

#define DB "it_listen"
#define PAYLOADS_SO TEST_BINARY_DIR "/../unit/badplugins/payloads.so"

static void listen_setup(struct itest_env *e, const char *tag, const char *debounce,
                         const char *max_delay)
{
	itest_env_setup(e, tag, DB);
	itest_env_plugin(e, PAYLOADS_SO, "payloads");
	itest_exec(e->db, "CREATE TABLE payload_runs (id serial, n int, payloads text[], "
	                  "at timestamptz DEFAULT clock_timestamp())");
	itest_env_job(e, "10-listen.conf",
	              "job = { name = \"ev\"; plugin = \"payloads\"; database = \"app\";"
	              " listen = \"ev_channel\"; debounce = \"%s\"; max_delay = \"%s\"; };\n",
	              debounce, max_delay);
	itest_env_start(e);
	ck_assert_msg(itest_env_listening(e, 10), "the daemon does not listen:\n%s",
	              itest_read_file(e->log));
}

START_TEST(burst_makes_one_run_with_every_payload)
{
	struct itest_env e;
	listen_setup(&e, "burst", "1500ms", "30s");
	/* 1,000 notifications in 10 transactions over about a second. The premise of one run is
	 * that no pause between two of them reached the debounce (1.5 s): that is checked, not
	 * the whole burst's length (a loaded machine stretches it; it was "under 2 s") */
	double prev = itest_now(), longest = 0;
	for (int b = 0; b < 10; b++) {
		char sql[256];
		snprintf(sql, sizeof(sql),
		         "SELECT pg_notify('ev_channel', 'p' || i) FROM generate_series(%d, %d) i",
		         b * 100 + 1, b * 100 + 100);
		itest_exec(e.db, sql);
		double now = itest_now();
		if (b > 0 && now - prev > longest)
			longest = now - prev;
		prev = now;
		itest_sleep(0.1);
	}
	ck_assert_msg(longest < 1.2, "the test paused %.2f s between two of its transactions",
	              longest);
	ck_assert_msg(itest_env_wait(&e, 10, "SELECT count(*) = 1 FROM payload_runs"),
	              "no run:\n%s", itest_read_file(e.log));
	itest_sleep(2.5); /* nothing more may come */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM payload_runs"), 1);
	ck_assert_int_eq(itest_env_count(&e, "SELECT n FROM payload_runs"), 1000);
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(DISTINCT p) FROM payload_runs, unnest(payloads) p "
	                        "WHERE p ~ '^p[0-9]+$' AND substr(p, 2)::int BETWEEN 1 AND 1000"),
	    1000);
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                        "job_name = 'ev' AND trigger = 'notify' AND status = 'succeeded'"),
	    1);
	/* a malformed payload (a control character) is dropped and logged; the run happens */
	itest_exec(e.db, "SELECT pg_notify('ev_channel', 'bad' || chr(1))");
	itest_exec(e.db, "SELECT pg_notify('ev_channel', 'small')");
	ck_assert(itest_env_wait(&e, 10, "SELECT count(*) = 2 FROM payload_runs"));
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(*) FROM payload_runs WHERE id = "
	                        "(SELECT max(id) FROM payload_runs) AND payloads = '{small}'"),
	    1);
	ck_assert(itest_wait_log(e.log, "not UTF-8 text; dropped", 10));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(steady_stream_runs_every_max_delay)
{
	struct itest_env e;
	listen_setup(&e, "stream", "1s", "2s");
	/* a notification every 300 ms for 7 s: debounce alone would never fire */
	double t0 = itest_now();
	int i = 0;
	while (itest_now() - t0 < 7.0) {
		char sql[128];
		snprintf(sql, sizeof(sql), "SELECT pg_notify('ev_channel', 's%d')", ++i);
		itest_exec(e.db, sql);
		itest_sleep(0.3);
	}
	ck_assert(itest_env_wait(&e, 15, "SELECT sum(n) = %d FROM payload_runs", i));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	long long runs = itest_env_count(&e, "SELECT count(*) FROM payload_runs");
	ck_assert_msg(runs >= 3, "%lld runs in 7 s with max_delay 2s", runs);
	/* consecutive runs at most max_delay apart (plus the run's own time, and a loaded
	 * machine's slack: it was 600 ms; without max_delay the stream makes no run at all
	 * until it ends) */
	long long gap =
	    itest_env_count(&e, "SELECT coalesce(max(ms), 0) FROM (SELECT extract(epoch FROM "
	                        "at - lag(at) OVER (ORDER BY id)) * 1000 AS ms FROM payload_runs "
	                        "WHERE id < (SELECT max(id) FROM payload_runs)) g");
	ck_assert_msg(gap <= 3500, "runs %lld ms apart with max_delay 2s", gap);
	/* every payload reached a run exactly once */
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(DISTINCT p) FROM payload_runs, unnest(payloads) p"),
	    i);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(killed_listener_reconnects_and_runs_once)
{
	struct itest_env e;
	listen_setup(&e, "reconnect", "200ms", "5s");
	itest_sleep(1); /* a window: the first connect must start no run */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM payload_runs"), 0);
	itest_exec(e.db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
	                 "WHERE " ITEST_OWN_SESSIONS);
	ck_assert_msg(itest_env_wait(&e, 15, "SELECT count(*) = 1 FROM payload_runs WHERE n = 0"),
	              "no run after the reconnect:\n%s", itest_read_file(e.log));
	ck_assert(itest_wait_log(e.log, "may have been missed", 15));
	itest_sleep(1.5); /* a window: one run after the reconnect, not two */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM payload_runs"), 1);
	/* and it listens again */
	ck_assert(itest_env_listening(&e, 10));
	itest_exec(e.db, "SELECT pg_notify('ev_channel', 'after')");
	ck_assert(itest_env_wait(
	    &e, 10, "SELECT count(*) = 1 FROM payload_runs WHERE payloads = '{after}'"));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* The agent analytics case: the lane and weakness jobs both listen on submission_scored, and
 * weakness reads lane's view. One notification reaches both; the downstream must not start
 * on its upstream's stale data: it waits for the upstream's coming run to finish. */
START_TEST(shared_channel_downstream_waits_for_upstream)
{
	struct itest_env e;
	itest_env_setup(&e, "shared", "it_listen_shared");
	itest_exec(e.db,
	           "CREATE TABLE order_log (what text, at timestamptz DEFAULT clock_timestamp());"
	           "GRANT ALL ON order_log TO PUBLIC");
	/* the downstream comes first in the file, so its debounce timer is the first due */
	itest_env_job(
	    &e, "10-jobs.conf",
	    "jobs = (\n"
	    "  { name = \"down\"; command = \"INSERT INTO order_log(what) VALUES ('down')\";\n"
	    "    after = [ \"up\" ]; schedule = \"0 0 1 1 *\";\n"
	    "    listen = \"shared\"; debounce = \"200ms\"; max_delay = \"5s\"; },\n"
	    "  { name = \"up\"; command = \"SELECT pg_sleep(0.5); "
	    "INSERT INTO order_log(what) VALUES ('up done')\";\n"
	    "    schedule = \"0 0 1 1 *\";\n"
	    "    listen = \"shared\"; debounce = \"200ms\"; max_delay = \"5s\"; }\n"
	    ");\n");
	itest_env_start(&e);
	ck_assert(itest_env_listening(&e, 10));
	itest_exec(e.db, "SELECT pg_notify('shared', 'x')");
	ck_assert_msg(
	    itest_env_wait(&e, 10, "SELECT count(*) = 1 FROM order_log WHERE what = 'down'"),
	    "the downstream never ran:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(*) FROM order_log d JOIN order_log u "
	                        "ON u.what = 'up done' WHERE d.what = 'down' AND d.at > u.at"),
	    1);
	ck_assert(itest_wait_log(e.log, "waiting for upstream job up to finish", 10));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A SIGHUP with nothing changed keeps the listening session (same backend)
 * and starts no run; with a changed channel set the session is kept too (LISTEN in place). */
START_TEST(reload_keeps_listener_and_starts_no_run)
{
	struct itest_env e;
	listen_setup(&e, "reload", "200ms", "5s");
	const char *pid_sql = "SELECT pid FROM pg_stat_activity WHERE " ITEST_OWN_SESSIONS
	                      " AND datname = current_database()";
	long long pid = itest_env_count(&e, "%s", pid_sql);
	for (int i = 1; i <= 3; i++) {
		kill(e.pid, SIGHUP);
		ck_assert(itest_wait_log(e.log, "configuration reloaded", 10));
	}
	itest_sleep(2); /* a window: a reload must start no run */
	ck_assert_msg(itest_env_count(&e, "SELECT count(*) FROM payload_runs") == 0,
	              "a reload started a run:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"), 0);
	ck_assert_int_eq(itest_env_count(&e, "%s", pid_sql), pid);
	/* a second channel: listened on in place, on the same backend, and still no run */
	itest_env_job(&e, "20-other.conf",
	              "job = { name = \"other\"; plugin = \"payloads\"; database = \"app\";"
	              " listen = \"other_channel\"; debounce = \"200ms\"; };\n");
	kill(e.pid, SIGHUP);
	ck_assert(itest_log_listening(e.log, "other_channel", 10));
	ck_assert_int_eq(itest_env_count(&e, "%s", pid_sql), pid);
	itest_sleep(1); /* a window: nor listening on a new channel */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM payload_runs"), 0);
	/* both channels work */
	itest_exec(e.db, "SELECT pg_notify('ev_channel', 'a'), pg_notify('other_channel', 'b')");
	ck_assert_msg(itest_env_wait(&e, 10, "SELECT count(*) = 2 FROM payload_runs"),
	              "not listening after the reload:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* After a real listener reconnect, the catch-up runs of an upstream and its
 * downstream (both listening) keep the graph: the downstream starts after the upstream's run
 * ended, in the same graph run. */
START_TEST(reconnect_catchup_keeps_graph_order)
{
	struct itest_env e;
	itest_env_setup(&e, "reconnect-graph", "it_listen_graph");
	itest_env_job(
	    &e, "10-jobs.conf",
	    "jobs = (\n"
	    "  { name = \"down\"; command = \"SELECT 1\"; after = [ \"up\" ];\n"
	    "    listen = \"ch_down\"; debounce = \"200ms\"; },\n"
	    "  { name = \"down2\"; command = \"SELECT 2\"; after = [ \"up\" ];\n"
	    "    schedule = \"0 0 1 1 *\"; listen = \"ch_up\"; debounce = \"200ms\"; },\n"
	    "  { name = \"up\"; command = \"SELECT pg_sleep(0.5)\"; schedule = \"0 0 1 1 *\";\n"
	    "    listen = \"ch_up\"; debounce = \"200ms\"; }\n"
	    ");\n");
	itest_env_start(&e);
	ck_assert(itest_env_listening(&e, 10));
	itest_exec(e.db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
	                 "WHERE " ITEST_OWN_SESSIONS " AND datname = current_database()");
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 3 FROM pgcrond.job_run_details WHERE "
	                             "status = 'succeeded'"),
	              "no catch-up runs:\n%s", itest_read_file(e.log));
	itest_sleep(1.5); /* nothing more may come */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"), 3);
	ck_assert_msg(
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details d "
	                        "JOIN pgcrond.job_run_details u ON u.job_name = 'up' "
	                        "WHERE d.job_name IN ('down', 'down2') "
	                        "AND d.start_time >= u.end_time "
	                        "AND d.graph_run = u.graph_run") == 2,
	    "downstreams not after their upstream in its graph run:\n%s",
	    itest_scalar(e.db, "SELECT string_agg(job_name || ' ' || trigger || ' ' || start_time "
	                       "|| '..' || end_time || ' ' || graph_run, E'\\n') FROM "
	                       "pgcrond.job_run_details"));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("listen");
	TCase *tc = tcase_create("listen");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, burst_makes_one_run_with_every_payload);
	tcase_add_test(tc, steady_stream_runs_every_max_delay);
	tcase_add_test(tc, killed_listener_reconnects_and_runs_once);
	tcase_add_test(tc, shared_channel_downstream_waits_for_upstream);
	tcase_add_test(tc, reload_keeps_listener_and_starts_no_run);
	tcase_add_test(tc, reconnect_catchup_keeps_graph_order);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
