/* Runs due at the same instant go first, their history after (the history's `running`
 * rows would compete with the runs' own statements at the due instant). Ten jobs fire
 * in the same second on a pool of one connection, each running 80 ms, so the last waits
 * about 0.7 s for the connection; the history rows of that second are inserted only once the
 * runs are over, not while they queue. A trigger on the history table records when
 * each row arrived. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define JOBS 10

START_TEST(history_waits_for_the_runs_due_with_it)
{
	struct itest_env e;
	char when[32];

	itest_env_setup(&e, "hist-defer", "it_hist_defer");
	itest_write_file(e.conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = { app = { conninfo = \"%s\"; pool = 1; };\n"
	                 "  hist = { conninfo = \"%s\"; pool = 1; }; };\n"
	                 "history = { database = \"hist\"; };\n",
	                 e.dir, e.dir, e.ci, e.ci);
	itest_exec(
	    e.db,
	    "CREATE TABLE public.starts (job text, at timestamptz);"
	    "CREATE TABLE public.arrivals (at timestamptz);"
	    "CREATE FUNCTION public.arrived() RETURNS trigger LANGUAGE plpgsql AS"
	    " $$BEGIN INSERT INTO public.arrivals VALUES (clock_timestamp()); RETURN NEW; END$$;"
	    "CREATE TRIGGER arrived BEFORE INSERT ON pgcrond.job_run_details"
	    " FOR EACH ROW EXECUTE FUNCTION public.arrived()");
	itest_env_start(&e);
	/* the job comes with a reload once the daemon runs (itest_env_reload) */
	itest_schedule_soon(when, sizeof(when), 2);
	char jobs[4096] = "jobs = (\n";
	for (int i = 0; i < JOBS; i++) {
		size_t used = strlen(jobs);
		snprintf(
		    jobs + used, sizeof(jobs) - used,
		    "{ name = \"j%d\"; database = \"app\"; schedule = \"%s\";"
		    "  command = \"INSERT INTO public.starts VALUES ('j%d', statement_timestamp());"
		    " SELECT pg_sleep(0.08)\"; }%s\n",
		    i, when, i, i + 1 < JOBS ? "," : "");
	}
	itest_env_job(&e, "10-jobs.conf", "%s);\n", jobs);
	itest_env_reload(&e);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = %d FROM pgcrond.job_run_details"
	                             " WHERE status = 'succeeded'",
	                             JOBS),
	              "the runs were not recorded:\n%s", itest_read_file(e.log));
	/* the first history row arrived after the last run of the second had started (10 ms of
	 * slack: the last run's statement and the history's batch leave the daemon together),
	 * or, when the runs took longer than that, once the records had been held a second
	 * (DEFER_MAX_MS, history_priv.h: a history never waits longer; 200 ms of slack for
	 * the hold beginning before the first run's statement, its reset and settings). A loaded
	 * ASan machine took 1.3 s for the ten. */
	static const char bound[] = "LEAST((SELECT max(at) FROM public.starts) - interval '10 ms',"
	                            " (SELECT min(at) FROM public.starts) + interval '800 ms')";
	char *order = itest_scalar(
	    e.db, "SELECT round(extract(epoch FROM (SELECT min(at) FROM public.arrivals)"
	          " - (SELECT max(at) FROM public.starts)) * 1000)::text");
	char *spread = itest_scalar(
	    e.db, "SELECT round(extract(epoch FROM (SELECT max(at) - min(at) FROM public.starts))"
	          " * 1000)::text");
	ck_assert_msg(
	    itest_env_count(&e, "SELECT count(*) FROM public.arrivals WHERE at < %s", bound) == 0,
	    "history rows were inserted while runs due with them still waited (the first "
	    "%s ms after the last run's start; the runs' starts spread over %s ms)",
	    order ? order : "?", spread ? spread : "?");
	free(spread);
	free(order);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* Records waiting in the status's history line (-1: no such line); *HELD: it says new runs
 * are held back. */
static long long status_pending(struct itest_env *e, bool *held)
{
	int st;
	char *out = itest_cli(&st, "status", "-c", e->conf, NULL);
	const char *w = strstr(out, " record(s) waiting");
	long long n = -1;
	if (w) {
		while (w > out && w[-1] >= '0' && w[-1] <= '9')
			w--;
		n = atoll(w);
	}
	*held = strstr(out, "(new runs held back until it catches up)") != NULL;
	free(out);
	return n;
}

#define BACKLOG 30
#define SLOW_JOBS 20

/* A history that cannot keep up holds new runs back instead of letting its backlog grow:
 * twenty jobs every second, and, with runs in flight, a history database on which
 * each run's row costs 50 ms (skips are free, so what holds back is the runs). While it is
 * slow, the records waiting stay near history.backlog (rather than growing by about twenty
 * a second for as long as the load lasts); the log and /metrics say runs were held; once the
 * database is quick again, every run that ran has its row and nothing was dropped. */
START_TEST(runs_wait_for_a_history_that_cannot_keep_up)
{
	struct itest_env e;

	itest_env_setup(&e, "hist-backlog", "it_hist_backlog");
	itest_write_file(e.conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "max_running = 4;\n"
	                 "databases = { app = { conninfo = \"%s\"; pool = 4; }; };\n"
	                 "history = { database = \"app\"; backlog = %d; };\n"
	                 "http = { listen = \"127.0.0.1:0\"; };\n",
	                 e.dir, e.dir, e.ci, BACKLOG);
	itest_exec(e.db, "CREATE TABLE public.ran (job text, at timestamptz)");
	itest_env_start(&e);
	itest_env_each_second(&e, "10-jobs.conf", SLOW_JOBS, "b",
	                      "INSERT INTO public.ran VALUES ('%s', now())");
	itest_env_reload(&e);
	ck_assert_msg(itest_env_wait(&e, 20, "SELECT count(*) >= %d FROM public.ran", SLOW_JOBS),
	              "the jobs do not run:\n%s", itest_tail(e.log));
	/* the fault lands with runs in flight: a run's row (not a skip's) costs 50 ms */
	itest_exec(e.db, "CREATE FUNCTION public.slow_row() RETURNS trigger LANGUAGE plpgsql AS"
	                 " $$BEGIN IF NEW.status <> 'skipped' THEN PERFORM pg_sleep(0.05); END IF;"
	                 " RETURN NEW; END$$;"
	                 "CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON pgcrond.job_run_details"
	                 " FOR EACH ROW EXECUTE FUNCTION public.slow_row()");
	long long most = 0;
	bool held = false;
	for (double t0 = itest_now(); itest_now() - t0 < 8;) {
		long long n = status_pending(&e, &held);
		most = n > most ? n : most;
		itest_sleep(0.25);
	}
	ck_assert_msg(itest_wait_log(e.log, "new runs are held back", 1),
	              "the daemon did not say it held runs back:\n%s", itest_tail(e.log));
	char *page = itest_env_metrics(&e);
	ck_assert_msg(strstr(page, "pgcrond_history_backlogged ") &&
	                  !strstr(page, "pgcrond_history_backlog_holds_total 0\n"),
	              "/metrics does not count the holds:\n%s", page);
	free(page);
	/* at most the bound behind the batch being written, that batch (at most as many, when it
	 * went), the records of the runs started before the bound was reached (max_running, three
	 * records each) and the skips of a few seconds: far below the twenty runs a second it
	 * would grow by */
	ck_assert_msg(most <= 2 * (BACKLOG + 4 * 3) + 3 * SLOW_JOBS,
	              "%lld records waited with history.backlog = %d: the backlog grew", most,
	              BACKLOG);
	itest_exec(e.db, "DROP TRIGGER slow ON pgcrond.job_run_details");
	double t0 = itest_now();
	while ((status_pending(&e, &held), held) && itest_now() - t0 < 15)
		itest_sleep(0.25);
	ck_assert_msg(!held && itest_wait_log(e.log, "new runs start again", 1),
	              "runs were not let go again:\n%s", itest_tail(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	/* what ran is what is recorded */
	long long ran = itest_env_count(&e, "SELECT count(*) FROM public.ran");
	long long rows = itest_env_count(
	    &e, "SELECT count(*) FROM pgcrond.job_run_details WHERE status = 'succeeded'");
	ck_assert_msg(ran == rows, "%lld runs ran, %lld have a succeeded row:\n%s", ran, rows,
	              itest_tail(e.log));
	ck_assert_int_eq(itest_count_in_file(e.log, "dropping"), 0);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("history_defer");
	TCase *tc = tcase_create("history_defer");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, history_waits_for_the_runs_due_with_it);
	tcase_add_test(tc, runs_wait_for_a_history_that_cannot_keep_up);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
