/* The pool is ready before a known burst, so that the first minute's runs do not open
 * their connections at their instant. Three per-minute jobs on a database of
 * their own (pool 4): within seconds of the start, long before any of them is due, the
 * daemon holds three connections to it. At log level debug every scheduled run logs its
 * stages (sched_warm.c), which bench/side reads. */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "itest.h"

/* The end of a log, for a failure message (Check cuts long ones off). */
static const char *tail(const char *log)
{
	size_t n = strlen(log);
	return n > 2000 ? log + n - 2000 : log;
}

/* How many threads process PID has. */
static int task_count(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	int n = 0;
	DIR *d = opendir(path);
	ck_assert_ptr_nonnull(d);
	for (struct dirent *t; (t = readdir(d));)
		n += t->d_name[0] != '.';
	closedir(d);
	return n;
}

/* E's configuration: the history on "app", the jobs' database "jobs" at JOBS_CI (pool 4, and
 * JOBS_KEYS), MAIN_KEYS among the daemon's settings. */
static void warm_conf(const struct itest_env *e, const char *jobs_ci, const char *main_keys,
                      const char *jobs_keys)
{
	itest_write_file(e->conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "%s"
	                 "databases = { app = { conninfo = \"%s\"; pool = 4; };\n"
	                 "  jobs = { conninfo = \"%s\"; pool = 4;%s }; };\n"
	                 "history = { database = \"app\"; };\n",
	                 e->dir, e->dir, main_keys, e->ci, jobs_ci, jobs_keys);
}

START_TEST(connections_open_at_start_up)
{
	struct itest_env e;

	itest_env_setup(&e, "warm", "it_warm");
	/* the minute jobs have a database of their own, which nothing else of the daemon uses */
	char *jobs_ci = itest_fresh_db("it_warm_jobs");
	warm_conf(&e, jobs_ci, "log_level = \"debug\";\n", "");
	itest_env_job(&e, "10-jobs.conf",
	              "jobs = (\n"
	              "{ name = \"m1\"; database = \"jobs\"; schedule = \"* * * * *\";"
	              "  command = \"SELECT 1\"; },\n"
	              "{ name = \"m2\"; database = \"jobs\"; schedule = \"* * * * *\";"
	              "  command = \"SELECT 2\"; },\n"
	              "{ name = \"m3\"; database = \"jobs\"; schedule = \"* * * * *\";"
	              "  command = \"SELECT 3\"; },\n"
	              "{ name = \"s1\"; database = \"app\"; schedule = \"* * * * * *\";"
	              "  command = \"SELECT 1\"; });\n");
	/* away from a minute's start, so that the connections counted are the start-up's */
	double sec = (double)(time(NULL) % 60);
	if (sec > 45)
		itest_sleep(62 - sec);
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 3 FROM pg_stat_activity"
	                             " WHERE datname = 'it_warm_jobs'"),
	              "the daemon did not open the connections of the first minute's runs at "
	              "start-up:\n%s",
	              tail(itest_read_file(e.log)));
	char *early = itest_read_file(e.log);
	ck_assert_msg(!strstr(early, "m1: started"),
	              "the minute's runs started before the connections were counted");
	free(early);
	free(jobs_ci);
	/* the every-second job's runs log their stages */
	ck_assert_msg(itest_wait_log(e.log, "stages: fired=", 10),
	              "no run logged its stages at log level debug:\n%s", itest_read_file(e.log));
	char *log = itest_read_file(e.log);
	const char *line = strstr(log, "stages: fired=");
	double fired, started, connected, done, connect;
	int carried;
	ck_assert_msg(sscanf(line,
	                     "stages: fired=%lf started=%lf connected=%lf done=%lf connect=%lf "
	                     "carried=%d",
	                     &fired, &started, &connected, &done, &connect, &carried) == 6,
	              "unreadable stages line: %.200s", line);
	ck_assert(fired <= started && started <= connected && connected <= done);
	free(log);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A database whose next fire is further away than its idle_timeout keeps no connection
 * (a database per tenant must not hold one warm connection each for good): with
 * idle_timeout 2 s and a job every 20 s, pgcrond holds no session of the job's database between
 * its fires, and each fire's run finds a connection opened ahead of its instant, not at it. */
START_TEST(far_fires_keep_no_connection)
{
	struct itest_env e;

	itest_env_setup(&e, "warm_far", "it_warm_far");
	char *jobs_ci = itest_fresh_db("it_warm_far_jobs");
	PGconn *jobs = itest_connect(jobs_ci);
	itest_exec(jobs, "CREATE TABLE far (backend_start timestamptz, at timestamptz);"
	                 " GRANT ALL ON far TO PUBLIC");
	/* idle connections are looked at every 2 s (half the connection check) */
	warm_conf(&e, jobs_ci, "connection_check = \"4s\";\n", " idle_timeout = \"2s\";");
	/* each run records when its backend started */
	itest_env_job(
	    &e, "10-far.conf",
	    "job = { name = \"far\"; database = \"jobs\"; schedule = \"*/20 * * * * *\";\n"
	    "  command = \"INSERT INTO far SELECT backend_start, statement_timestamp()"
	    " FROM pg_stat_activity WHERE pid = pg_backend_pid()\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(itest_wait_sql(jobs, "SELECT count(*) >= 1 FROM far", 40),
	              "the job did not run:\n%s", tail(itest_read_file(e.log)));
	/* its connection, unused for 2 s, is closed: the next fire is 20 s away */
	ck_assert_msg(itest_wait_sql(e.db,
	                             "SELECT count(*) = 0 FROM pg_stat_activity"
	                             " WHERE datname = 'it_warm_far_jobs'"
	                             " AND application_name LIKE 'pgcrond%'",
	                             12),
	              "pgcrond kept a connection of a database whose next fire is further away "
	              "than its idle_timeout:\n%s",
	              tail(itest_read_file(e.log)));
	long long ran = itest_scalar_ll(jobs, "SELECT count(*) FROM far");
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) > %lld FROM far", ran);
	ck_assert_msg(itest_wait_sql(jobs, sql, 25), "the job did not run again:\n%s",
	              tail(itest_read_file(e.log)));
	/* the next run's connection is a new one, opened before its instant (the warm-up's) */
	itest_assert_scalar(
	    jobs,
	    "SELECT backend_start > lag(at) OVER w"
	    " AND backend_start < to_timestamp(floor(extract(epoch FROM at) / 20) * 20)"
	    " FROM far WINDOW w AS (ORDER BY at) ORDER BY at DESC LIMIT 1",
	    "t");
	PQfinish(jobs);
	free(jobs_ci);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

/* The first burst after a start costs what a later one costs: six jobs
 * of a database with a pool of 2 fire together 7 s after the start, none run before.
 *  - The burst starts no thread: the spill file's writer starts with the daemon (a thread
 *    started at the first run's record would compete with the burst).
 *  - Half a second before it, the warm-up resets the two connections the start-up opened,
 *    although their idle check (connection_check 10 s: every 5 s) reset them 1.5 s before:
 *    that check leaves the backends as cold, so it must not make the warm-up skip them.
 *  - At it, the two runs that find a connection free are named ('pgcrond: JOB', a job not run
 *    since the start), and the four that wait behind them are not: their resets carry no
 *    set_config() of a name, as in every later burst. Each run lasts 0.2 s, so none ends
 *    (and gives its connection back) before the last of the six is fired. */
START_TEST(first_burst_like_the_next)
{
	struct itest_env e;

	itest_env_setup(&e, "warm_first", "it_warm_first");
	char *jobs_ci = itest_fresh_db("it_warm_first_jobs");
	PGconn *jobs = itest_connect(jobs_ci);
	itest_exec(jobs, "CREATE TABLE named (job text, app text); GRANT ALL ON named TO PUBLIC");
	warm_conf(&e, jobs_ci, "connection_check = \"10s\";\n", "");
	/* pool 2 of the jobs' database, not warm_conf's 4 */
	char *conf = itest_read_file(e.conf);
	char *pool = strstr(conf, "pool = 4; }; };");
	ck_assert_ptr_nonnull(pool);
	pool[7] = '2';
	itest_write_file(e.conf, "%s", conf);
	free(conf);
	/* started at a whole second and a tenth: the instant T is 7 s later */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	itest_sleep(1.1 - (double)now.tv_nsec / 1e9);
	long long at = (long long)now.tv_sec + 1 + 7;
	char jobsconf[2048] = "jobs = (\n";
	for (int i = 1; i <= 6; i++) {
		char job[300];
		snprintf(job, sizeof(job),
		         "{ name = \"b%d\"; database = \"jobs\"; schedule = \"%lld * * * * *\";"
		         "  command = \"INSERT INTO named SELECT 'b%d',"
		         " current_setting('application_name') FROM pg_sleep(0.2)\"; }%s\n",
		         i, at % 60, i, i < 6 ? "," : ");");
		strcat(jobsconf, job);
	}
	itest_env_job(&e, "10-burst.conf", "%s", jobsconf);
	itest_env_start(&e);
	ck_assert_msg(itest_wait_sql(jobs,
	                             "SELECT count(*) = 2 FROM pg_stat_activity"
	                             " WHERE datname = 'it_warm_first_jobs'"
	                             " AND application_name = 'pgcrond'",
	                             3),
	              "the daemon did not open the burst's connections at start-up:\n%s",
	              tail(itest_read_file(e.log)));
	ck_assert_int_eq(itest_scalar_ll(jobs, "SELECT count(*) FROM named"), 0);
	/* a quarter of a second before T: the last statement on each connection is the
	 * warm-up's reset, sent at T - 0.5 s, not the idle check's of T - 1.5 s or so */
	clock_gettime(CLOCK_REALTIME, &now);
	itest_sleep((double)(at - now.tv_sec) - 0.25 - (double)now.tv_nsec / 1e9);
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT string_agg(format('%%s at T%%s s', query,"
	         "  round(extract(epoch FROM query_start - to_timestamp(%lld))::numeric, 2)), '; ')"
	         " FILTER (WHERE query_start < to_timestamp(%lld) - interval '0.8 s'"
	         "  OR query <> 'SHOW statement_timeout')"
	         " FROM pg_stat_activity WHERE datname = 'it_warm_first_jobs'"
	         " AND application_name = 'pgcrond'",
	         at, at);
	char *cold = itest_scalar(jobs, sql);
	int threads = task_count(e.pid); /* (the start-up's are all there by now) */
	ck_assert_msg(itest_wait_sql(jobs, "SELECT count(*) = 6 FROM named", 10),
	              "the burst did not run:\n%s", tail(itest_read_file(e.log)));
	char *names = itest_scalar(
	    jobs, "SELECT count(*) FILTER (WHERE app = 'pgcrond: ' || job) || ' named, '"
	          " || count(*) FILTER (WHERE app = 'pgcrond') || ' not'"
	          " FROM named");
	int threads_after = task_count(e.pid);
	/* all three said at once */
	ck_assert_msg((!cold || !*cold) && strcmp(names, "2 named, 4 not") == 0 &&
	                  threads_after == threads,
	              "the warm-up left cold (last statement before T - 0.8 s): %s; runs named: %s "
	              "(want 2 named, 4 not); threads before the burst %d, after it %d",
	              cold && *cold ? cold : "none", names, threads, threads_after);
	free(cold);
	free(names);
	PQfinish(jobs);
	free(jobs_ci);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("warm");
	TCase *tc = tcase_create("warm");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, connections_open_at_start_up);
	tcase_add_test(tc, far_fires_keep_no_connection);
	tcase_add_test(tc, first_burst_like_the_next);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
