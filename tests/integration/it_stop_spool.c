/* A stop writes what waits while the history database takes it, and does not wait for one
 * that does not. Forty jobs run every second while another session holds a lock on the
 * history table, so every record stays pending; SIGTERM must end the daemon within a few
 * seconds, the records not written wait in the spill file (the daemon says how many), and
 * the next start writes them all: one succeeded row per statement the jobs ran, none left
 * running. With thousands of records waiting and the lock gone as SIGTERM lands, the stop
 * writes them all: every run is in the history once the process has ended. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "itest.h"

#define JOBS 40
#define MANY 500 /* jobs a second of the large backlog */

/* The end of a log, for a failure message (Check cuts long ones off). */
static const char *tail(const char *log)
{
	size_t n = strlen(log);
	return n > 2000 ? log + n - 2000 : log;
}

/* The job file: N jobs on SCHEDULE, each recording its run in public.ticks. */
static void write_jobs(const struct itest_env *e, const char *schedule, int n)
{
	static char jobs[MANY * 200];
	snprintf(jobs, sizeof(jobs), "jobs = (\n");
	for (int i = 0; i < n; i++) {
		size_t used = strlen(jobs);
		snprintf(
		    jobs + used, sizeof(jobs) - used,
		    "{ name = \"j%d\"; database = \"app\"; schedule = \"%s\"; catchup = \"skip\";"
		    "  command = \"INSERT INTO public.ticks VALUES ('j%d', clock_timestamp())\"; "
		    "}%s\n",
		    i, schedule, i, i + 1 < n ? "," : "");
	}
	char *path = itest_env_path(e, "conf.d/10-jobs.conf");
	itest_write_file(path, "%s);\n", jobs);
	free(path);
}

/* A daemon in E (NAME) with N jobs every second, once their first N runs are recorded. */
static void start_ticking(struct itest_env *e, const char *name, int n)
{
	itest_env_setup(e, name, "it_stop_spool");
	itest_env_main(e, "shutdown_grace = \"5s\";\n");
	itest_exec(e->db, "CREATE TABLE public.ticks (job text, at timestamptz);"
	                  "GRANT ALL ON public.ticks TO PUBLIC");
	write_jobs(e, "* * * * * *", n);
	itest_env_start(e);
	ck_assert_msg(itest_env_wait(e, 30,
	                             "SELECT count(*) >= %d FROM pgcrond.job_run_details"
	                             " WHERE status = 'succeeded'",
	                             n),
	              "the runs were not recorded:\n%s", tail(itest_read_file(e->log)));
}

START_TEST(stop_spools_pending_history_fast)
{
	struct itest_env e;

	start_ticking(&e, "stop-spool", JOBS);

	/* the history writer now waits for the lock: every record stays pending */
	PGconn *locker = itest_connect(e.ci);
	itest_exec(locker, "BEGIN; LOCK TABLE pgcrond.job_run_details IN SHARE MODE");
	long long before = itest_env_count(&e, "SELECT count(*) FROM public.ticks");
	ck_assert_msg(
	    itest_env_wait(&e, 20, "SELECT count(*) >= %lld FROM public.ticks", before + 3 * JOBS),
	    "the jobs stopped running while the history was locked:\n%s",
	    tail(itest_read_file(e.log)));

	double t0 = itest_now();
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	double took = itest_now() - t0;
	char *log = itest_read_file(e.log);
	ck_assert_msg(took < 4.0,
	              "the stop took %.1f s with the history behind (at most 4 s: what is not "
	              "written goes to the spill file):\n%s",
	              took, tail(log));
	ck_assert_msg(strstr(log, "run records not yet written wait in"),
	              "the stop did not say how many records wait in the spill file:\n%s",
	              tail(log));
	free(log);
	PQfinish(locker); /* the lock goes with its session */

	/* the next start writes every record the stop left: a succeeded row per statement the
	 * jobs ran (no job fires any more), none left running */
	long long ticks = itest_env_count(&e, "SELECT count(*) FROM public.ticks");
	write_jobs(&e, "0 0 1 1 *", JOBS);
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) = %lld FROM pgcrond.job_run_details"
	                             " WHERE status = 'succeeded'",
	                             ticks),
	              "%lld statements ran but %lld succeeded rows were written after the "
	              "restart:\n%s",
	              ticks,
	              itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                  " WHERE status = 'succeeded'"),
	              tail(itest_read_file(e.log)));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE status IN ('starting', 'running')"),
	                 0);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

/* MANY jobs run every second with the history table locked until thousands of records wait;
 * the lock goes and SIGTERM follows at once: the stop writes them all (the database takes
 * them), so that once the process has ended every statement the jobs ran has its succeeded
 * row, none is left running, and the spill file is empty. */
START_TEST(stop_writes_a_large_backlog)
{
	struct itest_env e;

	start_ticking(&e, "stop-backlog", MANY);
	/* a server that takes a while for a row (1 ms for one in ten), as a busy one does: the
	 * backlog takes more than a second to write */
	itest_exec(e.db, "CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS"
	                 " 'BEGIN IF hashtext(NEW.run_key) % 10 = 0 THEN"
	                 "  PERFORM pg_sleep(0.001); END IF; RETURN NEW; END';"
	                 "CREATE TRIGGER slow BEFORE INSERT ON pgcrond.job_run_details"
	                 " FOR EACH ROW EXECUTE FUNCTION public.slow()");
	PGconn *locker = itest_connect(e.ci);
	itest_exec(locker, "BEGIN; LOCK TABLE pgcrond.job_run_details IN SHARE MODE");
	long long before = itest_env_count(&e, "SELECT count(*) FROM public.ticks");
	/* two records a run (its start, its end) */
	ck_assert_msg(
	    itest_env_wait(&e, 60, "SELECT count(*) >= %lld FROM public.ticks", before + 5000),
	    "the jobs stopped running while the history was locked:\n%s",
	    tail(itest_read_file(e.log)));
	PQfinish(locker); /* the lock goes with its session */
	double t0 = itest_now();
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	double took = itest_now() - t0;
	char *log = itest_read_file(e.log);
	ck_assert_msg(!strstr(log, "run records not yet written wait in"),
	              "the stop left records in the spill file:\n%s", tail(log));
	free(log);
	char *spool = itest_env_path(&e, "state/history.spool");
	ck_assert_int_eq(itest_file_size(spool), 0);
	free(spool);
	long long ticks = itest_env_count(&e, "SELECT count(*) FROM public.ticks");
	long long rows = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE status = 'succeeded'");
	ck_assert_msg(rows == ticks,
	              "%lld statements ran but %lld succeeded rows were written by "
	              "the stop (%.1f s)",
	              ticks, rows, took);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE status IN ('starting', 'running')"),
	                 0);
	ck_assert_msg(took < 8.0, "the stop took %.1f s (shutdown_grace and the history's 5 s)",
	              took);
	itest_env_teardown(&e);
}
END_TEST

/* The scheduled instant (Unix s) of job JOB's first record in the spill file SPOOL whose
 * message starts with MESSAGE, or -1: a record line is "R1", then instance, run key, boot id,
 * job, database, user, command, trigger, graph run, scheduled µs, ..., status, message, tab
 * separated (history_priv.h). */
static long long spilled_instant(const char *spool, const char *job, const char *message)
{
	char *text = itest_read_file(spool);
	long long at = -1;
	for (char *line = strtok(text, "\n"); line && at < 0; line = strtok(NULL, "\n")) {
		char *f[20];
		int n = 0;
		for (char *p = line; n < 20 && p; n++) {
			f[n] = p;
			p = strchr(p, '\t');
			if (p)
				*p++ = '\0';
		}
		if (n >= 16 && strcmp(f[0], "R1") == 0 && strcmp(f[4], job) == 0 &&
		    strncmp(f[14], message, strlen(message)) == 0)
			at = atoll(f[10]) / 1000000;
	}
	free(text);
	return at;
}

/* A stop's "pgcrond was shutting down" row that waited in the spill file (the history table
 * locked, the stop's statement then ended with its session) is not written at the next start
 * if another instance's row already records that fire: it served it meanwhile, having found
 * this one dead or stopped. Job w fires every second and waits for a run slot (max_running
 * 2, both taken by b1 and b2) when the stop lands; then a row of instance "sb" for that fire
 * is put in the history, and the daemon starts again: the start writes no skip beside sb's
 * run. */
START_TEST(spooled_skip_of_a_fire_served_elsewhere_is_dropped)
{
	struct itest_env e;
	itest_env_setup(&e, "stop-served", "it_stop_spool");
	itest_env_main(&e, "max_running = 2;\nshutdown_grace = \"1s\";\n");
	itest_exec(e.db, "CREATE TABLE public.ran (job text); GRANT ALL ON public.ran TO PUBLIC");
	static const char jobs[] = "jobs = ("
	                           "{ name = \"b1\"; database = \"app\"; schedule = \"%s\"; "
	                           "command = \"SELECT pg_sleep(30)\"; },"
	                           "{ name = \"b2\"; database = \"app\"; schedule = \"%s\"; "
	                           "command = \"SELECT pg_sleep(30)\"; },"
	                           "{ name = \"w\"; database = \"app\"; schedule = \"%s\";"
	                           "  command = \"INSERT INTO public.ran VALUES ('w')\"; });\n";
	itest_env_job(&e, "10-jobs.conf", jobs, "* * * * * *", "* * * * * *", "* * * * * *");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 2 FROM pg_stat_activity"
	                             " WHERE query = 'SELECT pg_sleep(30)'"),
	              "b1 and b2 do not run:\n%s", tail(itest_read_file(e.log)));
	/* w fired since, and waits for a slot: its status says queued */
	char *st_out = NULL;
	double t0 = itest_now();
	do {
		free(st_out);
		int st;
		st_out = itest_cli(&st, "status", "-c", e.conf, "w", NULL);
	} while (!strstr(st_out, "state:        queued") && itest_now() - t0 < 20 &&
	         (itest_sleep(0.1), 1));
	ck_assert_msg(strstr(st_out, "state:        queued"), "w does not wait for a slot:\n%s",
	              st_out);
	free(st_out);
	PGconn *locker = itest_connect(e.ci);
	itest_exec(locker, "BEGIN; LOCK TABLE pgcrond.job_run_details IN SHARE MODE");
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	char *log = itest_read_file(e.log);
	ck_assert_msg(strstr(log, "w: skipped: pgcrond was shutting down") &&
	                  strstr(log, "run records not yet written wait in"),
	              "the stop did not spill w's skip:\n%s", tail(log));
	free(log);
	/* the history statement the stop left waiting for the lock would still commit once the
	 * lock goes (its backend does not see that the client is gone): the database is as
	 * unreachable as a cut one when it ends with its session */
	itest_exec(e.db, "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
	                 " WHERE application_name = 'pgcrond'");
	PQfinish(locker);
	char *spool = itest_env_path(&e, "state/history.spool");
	long long t = spilled_instant(spool, "w", "pgcrond was shutting down");
	ck_assert_msg(t > 0, "no skip of w in the spill file:\n%s", itest_read_file(spool));
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "INSERT INTO pgcrond.job_run_details (job_name, status, start_time, end_time,"
	         "  scheduled_time, instance, run_key, trigger)"
	         " SELECT 'w', 'succeeded', x + '3 s', x + '3 s', x, 'sb', 'sb1', 'catchup'"
	         " FROM (SELECT to_timestamp(%lld) x) t",
	         t);
	itest_exec(e.db, sql);
	itest_env_job(&e, "10-jobs.conf", jobs, "0 0 1 1 *", "0 0 1 1 *", "0 0 1 1 *");
	itest_env_start(&e);
	/* the spill file is written: b1's and b2's first runs are closed */
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 2 FROM pgcrond.job_run_details"
	                             " WHERE job_name IN ('b1', 'b2') AND status = 'failed'"),
	              "the spilled records were not written:\n%s", tail(itest_read_file(e.log)));
	itest_sleep(1);
	char *twice = itest_fires_twice(e.db, "w", NULL);
	ck_assert_msg(!twice, "fires with two rows: %s\n%s", twice, tail(itest_read_file(e.log)));
	char q[256];
	snprintf(q, sizeof(q),
	         "SELECT string_agg(instance || ' ' || status, ',') FROM pgcrond.job_run_details"
	         " WHERE job_name = 'w' AND scheduled_time = to_timestamp(%lld)",
	         t);
	itest_assert_scalar(e.db, q, "sb succeeded");
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	free(spool);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stop_spool");
	TCase *tc = tcase_create("stop_spool");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, stop_spools_pending_history_fast);
	tcase_add_test(tc, stop_writes_a_large_backlog);
	suite_add_tcase(s, tc);
	tc = tcase_create("served");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, spooled_skip_of_a_fire_served_elsewhere_is_dropped);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
