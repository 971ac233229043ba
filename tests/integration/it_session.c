/* Each run starts from a clean session, and a job cannot flood or forge the daemon's log.
 * With pool = 1 every run of the database shares one connection,
 * so whatever a run leaves in its session would be seen by the next one: the tests record
 * pg_backend_pid() to show that the runs really did share it. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

/* pgcrond.conf as itest_env_main writes it, with pool = 1. */
static void main_conf_pool1(const struct itest_env *e)
{
	itest_write_file(e->conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = { app = { conninfo = \"%s\"; pool = 1; }; };\n"
	                 "history = { database = \"app\"; };\n",
	                 e->dir, e->dir, e->ci);
}

static char *history(struct itest_env *e, const char *job, const char *column)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT %s FROM pgcrond.job_run_details WHERE job_name = '%s' ORDER BY runid "
	         "LIMIT 1",
	         column, job);
	return itest_scalar(e->db, sql);
}

#define assert_history(e, job, column, expected)                                                   \
	do {                                                                                       \
		char *v_ = history((e), (job), (column));                                          \
		char *m_ = history((e), (job), "return_message");                                  \
		ck_assert_msg(v_ &&strcmp(v_, (expected)) == 0, "%s %s: %s, expected %s (%s)",     \
		              (job), (column), v_ ? v_ : "NULL", (expected), m_ ? m_ : "");        \
		free(v_);                                                                          \
		free(m_);                                                                          \
	} while (0)

/* A run that changes everything a session can hold; the next run on the same connection
 * sees none of it. */
START_TEST(leaks_are_reset)
{
	struct itest_env e;
	char when[32];

	itest_env_setup(&e, "session-leaks", "it_session_leaks");
	main_conf_pool1(&e);
	itest_exec(e.db, "CREATE TABLE public.pids (job text, pid int);"
	                 "CREATE TABLE public.seen (who text, search_path text, timeout text,"
	                 " prepared bigint, temp_tables bigint, advisory bigint, listening bigint,"
	                 " pid int)");
	/* statement_timeout comes last: from PostgreSQL 13 on it applies to each statement of
	 * the string. 100 ms, tiny beside a run's but not 1 ms: the reset's first statement
	 * (SET statement_timeout = 0) runs under the timeout the run left, and on a loaded
	 * machine 1 ms could cancel it, which rightly replaces the connection and leaves this
	 * test nothing to look at (it failed so once in a loaded sanitizer run) */
	itest_env_start(&e);
	/* the jobs come with a reload once the daemon runs (itest_env_reload) */
	itest_schedule_soon(when, sizeof(when), 2);
	itest_env_job(
	    &e, "10-jobs.conf",
	    "jobs = (\n"
	    "{ name = \"dirty\"; database = \"app\"; schedule = \"%s\";"
	    "  command = \"INSERT INTO public.pids VALUES ('dirty', pg_backend_pid());"
	    " CREATE TEMP TABLE leak_tmp (x int); PREPARE leak_stmt AS SELECT 1;"
	    " SELECT pg_advisory_lock(4242); LISTEN leak_channel; SET search_path = nowhere;"
	    " SET ROLE pg_monitor; SET statement_timeout = '100ms'\"; },\n"
	    "{ name = \"check\"; database = \"app\"; after = [ \"dirty\" ];"
	    "  command = \"INSERT INTO public.seen SELECT current_user,"
	    " current_setting('search_path'), current_setting('statement_timeout'),"
	    " (SELECT count(*) FROM pg_prepared_statements),"
	    " (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()),"
	    " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
	    "   AND pid = pg_backend_pid()),"
	    " (SELECT count(*) FROM pg_listening_channels()), pg_backend_pid()\"; }\n"
	    ");\n",
	    when);
	char *user = itest_scalar(e.db, "SELECT current_user");
	char *path = itest_scalar(e.db, "SELECT current_setting('search_path')");
	itest_env_reload(&e);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'check' AND status <> 'running'"),
	              "check did not run:\n%s", itest_read_file(e.log));
	assert_history(&e, "dirty", "status", "succeeded");
	assert_history(&e, "check", "status", "succeeded");
	/* the same connection served both runs */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM public.pids p JOIN public.seen"
	                                     " s USING (pid)"),
	                 1);
	char *who = itest_scalar(e.db, "SELECT who FROM public.seen");
	ck_assert_str_eq(who, user);
	char *sp = itest_scalar(e.db, "SELECT search_path FROM public.seen");
	ck_assert_str_eq(sp, path);
	itest_assert_scalar(e.db, "SELECT timeout FROM public.seen", "0");
	itest_assert_scalar(e.db, "SELECT prepared FROM public.seen", "0");
	itest_assert_scalar(e.db, "SELECT temp_tables FROM public.seen", "0");
	itest_assert_scalar(e.db, "SELECT advisory FROM public.seen", "0");
	itest_assert_scalar(e.db, "SELECT listening FROM public.seen", "0");
	/* and from another session: the lock is free, the daemon's backend is back to the
	 * connection's role */
	itest_assert_scalar(e.db, "SELECT pg_try_advisory_lock(4242)", "t");
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "SELECT usename = current_user FROM pg_stat_activity WHERE pid = (SELECT pid FROM "
	         "public.seen)");
	itest_assert_scalar(e.db, sql, "t");
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	free(who);
	free(sp);
	free(user);
	free(path);
	itest_env_teardown(&e);
}
END_TEST

/* A connection given back with no run waiting is reset soon all the same (it keeps its run's
 * session for a moment, for the next run to carry its statement in the reset): a session
 * advisory lock the run left is free within a second of its end, on the same backend, still
 * open. */
START_TEST(a_session_nobody_waits_for_is_reset_soon)
{
	struct itest_env e;
	char when[32];

	itest_env_setup(&e, "session-later", "it_session_later");
	main_conf_pool1(&e);
	itest_env_start(&e);
	itest_schedule_soon(when, sizeof(when), 2);
	itest_env_job(&e, "10-jobs.conf",
	              "jobs = ( { name = \"locker\"; database = \"app\"; schedule = \"%s\";"
	              "  command = \"SELECT pg_advisory_lock(4343)\"; } );\n",
	              when);
	itest_env_reload(&e);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'locker' AND status = 'succeeded'"),
	              "locker did not run:\n%s", itest_read_file(e.log));
	ck_assert_msg(itest_env_wait(&e, 1,
	                             "SELECT NOT EXISTS (SELECT FROM pg_locks"
	                             " WHERE locktype = 'advisory' AND objid = 4343)"),
	              "the run's lock outlived it by a second:\n%s", itest_read_file(e.log));
	/* reset, not closed: its backend is there, and the lock is anyone's */
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pg_stat_activity a JOIN pgcrond.job_run_details"
	                    " d ON d.job_pid = a.pid WHERE d.job_name = 'locker'",
	                    "1");
	itest_assert_scalar(e.db, "SELECT pg_try_advisory_lock(4343)", "t");
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A run that leaves its transaction open (or aborted) failed: its work is rolled back, and
 * the connection serves the next run. */
START_TEST(open_transaction_fails)
{
	struct itest_env e;
	char t1[32], t2[32], t3[32];

	itest_env_setup(&e, "session-txn", "it_session_txn");
	main_conf_pool1(&e);
	itest_exec(e.db,
	           "CREATE TABLE public.t (x int); CREATE TABLE public.pids (job text, pid int)");
	itest_env_start(&e);
	/* the jobs come with a reload once the daemon runs (itest_env_reload) */
	itest_schedule_soon(t1, sizeof(t1), 2);
	itest_schedule_soon(t2, sizeof(t2), 3);
	itest_schedule_soon(t3, sizeof(t3), 4);
	itest_env_job(&e, "10-jobs.conf",
	              "jobs = (\n"
	              "{ name = \"open\"; database = \"app\"; schedule = \"%s\";"
	              "  command = \"BEGIN; INSERT INTO public.t VALUES (1)\"; },\n"
	              "{ name = \"aborted\"; database = \"app\"; schedule = \"%s\";"
	              "  command = \"BEGIN; INSERT INTO public.t VALUES (2); SELECT 1/0\"; },\n"
	              "{ name = \"next\"; database = \"app\"; schedule = \"%s\";"
	              "  command = \"INSERT INTO public.pids VALUES ('next', pg_backend_pid());"
	              " INSERT INTO public.t VALUES (3)\"; }\n"
	              ");\n",
	              t1, t2, t3);
	itest_env_reload(&e);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 3 FROM pgcrond.job_run_details"
	                             " WHERE status <> 'running'"),
	              "the runs did not end:\n%s", itest_read_file(e.log));
	assert_history(&e, "open", "status", "failed");
	assert_history(&e, "aborted", "status", "failed");
	assert_history(&e, "next", "status", "succeeded");
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE"
	                                     " job_name = 'open' AND return_message LIKE"
	                                     " '%%transaction open%%rolled back%%'"),
	                 1);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE"
	                                     " job_name = 'aborted' AND return_message LIKE"
	                                     " 'division by zero%%rolled back%%'"),
	                 1);
	/* only the last run's row is there */
	itest_assert_scalar(e.db, "SELECT string_agg(x::text, ',') FROM public.t", "3");
	/* on the same connection as the failed ones */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(DISTINCT job_pid) FROM"
	                                     " pgcrond.job_run_details"),
	                 1);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM public.pids p JOIN"
	                                     " pgcrond.job_run_details d ON d.job_pid = p.pid"
	                                     " WHERE d.job_name = 'open'"),
	                 1);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A run's statement travels with the reset (or the set_config) before it when it may follow
 * other statements, and goes alone when it may not: VACUUM, several statements, and a
 * command the scan misreads (here, because the database reads backslashes in plain strings
 * as escapes, so the server sees two statements where the scan saw one: it is sent again as
 * written). Each succeeds, on one connection, and its rows are counted. */
START_TEST(statements_with_the_reset)
{
	struct itest_env e;
	char t1[32], t2[32], t3[32], t4[32];

	itest_env_setup(&e, "session-carry", "it_session_carry");
	main_conf_pool1(&e);
	itest_exec(e.db, "CREATE TABLE public.t (x int); CREATE TABLE public.pids (pid int);"
	                 "DO $$BEGIN EXECUTE format('ALTER DATABASE %I SET"
	                 " standard_conforming_strings = off', current_database()); END$$");
	itest_env_start(&e);
	/* the jobs come with a reload once the daemon runs (itest_env_reload) */
	itest_schedule_soon(t1, sizeof(t1), 2);
	itest_schedule_soon(t2, sizeof(t2), 3);
	itest_schedule_soon(t3, sizeof(t3), 4);
	itest_schedule_soon(t4, sizeof(t4), 5);
	itest_env_job(&e, "10-jobs.conf",
	              "jobs = (\n"
	              "{ name = \"rows\"; database = \"app\"; schedule = \"%s\";"
	              "  command = \"SELECT g FROM generate_series(1, 5) AS g\"; },\n"
	              "{ name = \"legacy\"; database = \"app\"; schedule = \"%s\";"
	              "  command = \"INSERT INTO public.t VALUES (length('a\\\\'b'));"
	              " INSERT INTO public.t VALUES (2) --'\"; },\n"
	              "{ name = \"vacuum\"; database = \"app\"; schedule = \"%s\";"
	              "  command = \"VACUUM public.t\"; },\n"
	              "{ name = \"pid\"; database = \"app\"; schedule = \"%s\";"
	              "  command = \"INSERT INTO public.pids VALUES (pg_backend_pid())\"; }\n"
	              ");\n",
	              t1, t2, t3, t4);
	itest_env_reload(&e);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 4 FROM pgcrond.job_run_details"
	                             " WHERE status <> 'running'"),
	              "the runs did not end:\n%s", itest_read_file(e.log));
	assert_history(&e, "rows", "status", "succeeded");
	assert_history(&e, "rows", "return_message", "5 rows");
	assert_history(&e, "legacy", "status", "succeeded");
	assert_history(&e, "vacuum", "status", "succeeded");
	assert_history(&e, "pid", "status", "succeeded");
	/* both statements of "legacy" ran, once each */
	itest_assert_scalar(e.db, "SELECT string_agg(x::text, ',' ORDER BY x) FROM public.t",
	                    "2,3");
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(DISTINCT job_pid) FROM"
	                                     " pgcrond.job_run_details"),
	                 1);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM public.pids p JOIN"
	                                     " pgcrond.job_run_details d ON d.job_pid = p.pid"
	                                     " WHERE d.job_name = 'rows'"),
	                 1);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A run's statement_timeout and application_name are set only when they differ from what
 * DISCARD ALL restores (the database's default here is 7 s): a job without a timeout still
 * gets none, one of 5 s its 5 s, one of 7 s the default. A job's first run is named
 * 'pgcrond: JOB' in pg_stat_activity unless it comes in a burst (here the pool's one
 * connection serves the first run, and those due with it wait: not named); later runs only
 * if the last took a second or more. */
START_TEST(settings_only_when_needed)
{
	struct itest_env e;

	itest_env_setup(&e, "session-settings", "it_session_settings");
	main_conf_pool1(&e);
	itest_exec(e.db, "CREATE TABLE public.seen (job text, timeout text, app text,"
	                 " at timestamptz DEFAULT clock_timestamp());"
	                 "DO $$BEGIN EXECUTE format('ALTER DATABASE %I SET"
	                 " statement_timeout = ''7s''', current_database()); END$$");
#define SEEN(job)                                                                                  \
	"INSERT INTO public.seen VALUES ('" job "', current_setting('statement_timeout'),"         \
	" current_setting('application_name'))"
	itest_env_job(
	    &e, "10-jobs.conf",
	    "jobs = (\n"
	    "{ name = \"none\"; database = \"app\"; schedule = \"* * * * * *\";"
	    "  command = \"" SEEN(
	        "none") "\"; },\n"
	                "{ name = \"five\"; database = \"app\"; schedule = \"* * * * * *\";"
	                "  timeout = \"5s\"; command = \"" SEEN(
	                    "five") "\"; },\n"
	                            "{ name = \"seven\"; database = \"app\"; schedule = \"* * * * "
	                            "* *\";"
	                            "  timeout = \"7s\"; command = \"" SEEN(
	                                "seven") "\"; },\n"
	                                         "{ name = \"slow\"; database = \"app\"; schedule "
	                                         "= \"*/2 * * * * *\";"
	                                         "  command = \"SELECT pg_sleep(1.1); " SEEN(
	                                             "slow") "\"; }\n"
	                                                     ");\n");
#undef SEEN
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) >= 4 FROM (SELECT job FROM public.seen"
	                             " GROUP BY job HAVING count(*) >= 3) j"),
	              "the jobs did not run three times each:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	/* every run had its own timeout, whatever the run before it on the connection set */
	itest_assert_scalar(e.db,
	                    "SELECT string_agg(DISTINCT job || '=' || timeout, ',') FROM"
	                    " public.seen",
	                    "five=5s,none=0,seven=7s,slow=0");
	/* the first run of all is named, a first run due with it is not (it waited for the
	 * pool's one connection); the later runs of the quick ones are not named, those of the
	 * job that takes over a second are */
	itest_assert_scalar(
	    e.db, "SELECT app = 'pgcrond: ' || job FROM public.seen ORDER BY at LIMIT 1", "t");
	itest_assert_scalar(
	    e.db,
	    "SELECT count(*) FROM (SELECT DISTINCT ON (job) job, app FROM public.seen"
	    "  ORDER BY job, at) f WHERE app NOT IN ('pgcrond', 'pgcrond: ' || job)",
	    "0");
	itest_assert_scalar(e.db,
	                    "SELECT string_agg(DISTINCT job || ':' || app, ',') FROM"
	                    " (SELECT job, app, row_number() OVER (PARTITION BY job ORDER BY at)"
	                    "  AS n FROM public.seen) r WHERE n > 1",
	                    "five:pgcrond,none:pgcrond,seven:pgcrond,slow:pgcrond: slow");
	itest_env_teardown(&e);
}
END_TEST

/* Lines of TEXT that contain NEEDLE. */
static int lines_with(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* 20,000 notices from one run give a bounded number of log lines and a count of the rest;
 * a notice holding a newline and a fake log prefix stays on its own line, escaped. */
START_TEST(notices_are_logged_safely)
{
	struct itest_env e;
	char t1[32], t2[32];

	itest_env_setup(&e, "session-notices", "it_session_notices");
	itest_env_main(&e, NULL);
	itest_env_start(&e);
	/* the jobs come with a reload once the daemon runs (itest_env_reload) */
	itest_schedule_soon(t1, sizeof(t1), 2);
	itest_schedule_soon(t2, sizeof(t2), 3);
	itest_env_job(
	    &e, "10-jobs.conf",
	    "jobs = (\n"
	    "{ name = \"noisy\"; database = \"app\"; schedule = \"%s\";"
	    "  command = \"DO $$BEGIN FOR i IN 1..20000 LOOP RAISE NOTICE 'noise %%', i; END LOOP;"
	    " END$$\"; },\n"
	    "{ name = \"forger\"; database = \"app\"; schedule = \"%s\";"
	    "  command = \"DO $$BEGIN RAISE WARNING '%%', 'hello' || chr(10) ||"
	    " '2026-01-01T00:00:00.000Z error: FORGED' || chr(13) || chr(27) || '[2J'; END$$\"; "
	    "},\n"
	    "{ name = \"tick\"; database = \"app\"; schedule = \"* * * * * *\";"
	    "  command = \"SELECT 1\"; }\n"
	    ");\n",
	    t1, t2);
	itest_env_reload(&e);
	ck_assert_msg(
	    itest_env_wait(&e, 30,
	                   "SELECT count(*) = 2 FROM pgcrond.job_run_details"
	                   " WHERE job_name IN ('noisy', 'forger') AND status <> 'running'"),
	    "the runs did not end:\n%.3000s", itest_read_file(e.log));
	/* the daemon goes on serving */
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) >= 2 FROM pgcrond.job_run_details t"
	                             " WHERE job_name = 'tick' AND status = 'succeeded' AND"
	                             " start_time > (SELECT end_time FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'noisy')"),
	              "tick stopped running");
	ck_assert_msg(itest_wait_log(e.log, "further server notices suppressed", 5),
	              "no suppression count:\n%.3000s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	assert_history(&e, "noisy", "status", "succeeded");

	char *log = itest_read_file(e.log);
	int noise = lines_with(log, "server NOTICE: noise ");
	ck_assert_msg(noise >= 1 && noise <= 50, "%d notice lines logged", noise);
	ck_assert_msg(strstr(log, "noisy: server NOTICE: noise 1\n"),
	              "no job name or level:\n%.2000s", log);
	ck_assert_msg(strstr(log, "noisy: 19980 further server notices suppressed"),
	              "no suppression count:\n%.3000s", log);
	/* no line starts with the forged prefix; the notice is one line, escaped */
	ck_assert_msg(!strstr(log, "\n2026-01-01T00:00:00.000Z"), "forged line:\n%.3000s", log);
	ck_assert_msg(strstr(log,
	                     "warning: forger: server WARNING: hello\\n2026-01-01T00:00:00.000Z "
	                     "error: FORGED\\r\\x1b[2J\n"),
	              "forger's notice not found as one escaped line:\n%.3000s", log);
	ck_assert_msg(!strchr(log, '\x1b'), "an escape character reached the log");
	free(log);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("session");
	TCase *tc = tcase_create("session");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, leaks_are_reset);
	tcase_add_test(tc, a_session_nobody_waits_for_is_reset_soon);
	tcase_add_test(tc, open_transaction_fails);
	tcase_add_test(tc, statements_with_the_reset);
	tcase_add_test(tc, settings_only_when_needed);
	tcase_add_test(tc, notices_are_logged_safely);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
