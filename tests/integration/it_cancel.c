/* A statement over its timeout is cancelled through its own connection's cancel key,
 * never by pid from another connection: behind a pooler or after a failover
 * that pid may be another session, and at a connection limit no other connection can be had
 * at all. The job's role here has CONNECTION LIMIT 1, so the only way to stop its statement
 * is the cancel key: a cancel request is not a connection the limit counts. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

START_TEST(timeout_cancels_through_the_key)
{
	struct itest_env e;
	char when[32];

	itest_env_setup(&e, "cancel", "it_cancel");
	itest_exec(e.db, "DROP ROLE IF EXISTS it_cancel_one;"
	                 "CREATE ROLE it_cancel_one LOGIN CONNECTION LIMIT 1");
	/* the history on the test's own role; the job on the limited one, one connection */
	itest_write_file(e.conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = { app = { conninfo = \"%s\"; pool = 2; };\n"
	                 "  lim = { conninfo = \"%s user=it_cancel_one\"; pool = 1; }; };\n"
	                 "history = { database = \"app\"; };\n",
	                 e.dir, e.dir, e.ci, e.ci);
	itest_env_start(&e);
	/* The job comes with a reload once the daemon runs (itest_env_reload). It turns the
	 * server's statement_timeout off, so only the daemon's own timer stops it; the comment
	 * marks its backend in pg_stat_activity. */
	for (int ahead = 2; ahead;) {
		time_t at = itest_schedule_soon_at(when, sizeof(when), ahead);
		itest_env_job(&e, "10-jobs.conf",
		              "job = { name = \"sleeper\"; database = \"lim\"; schedule = \"%s\";"
		              "  timeout = \"1s\";"
		              "  command = \"SET statement_timeout = 0; SELECT pg_sleep(60) /* "
		              "it_cancel */\"; };\n",
		              when);
		itest_env_reload(&e);
		ahead = itest_soon_again(e.log, at, ahead);
	}
	/* another session of the same database, busy with its own statement */
	PGconn *other = itest_connect(e.ci);
	ck_assert(PQsendQuery(other, "SELECT pg_sleep(8) /* it_cancel_other */"));
	long long other_pid = PQbackendPID(other);
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) > 0 FROM pg_stat_activity"
	                             " WHERE query LIKE '%%pg_sleep(60) /* it_cancel */%%'"
	                             " AND state = 'active' AND pid <> pg_backend_pid()"),
	              "the job never started:\n%s", itest_read_file(e.log));
	double started = itest_now();
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'sleeper' AND status <> 'running'"),
	              "the run did not end:\n%s", itest_read_file(e.log));
	double ended = itest_now();
	/* the backend's statement ended with the run, well before its 60 s */
	ck_assert_msg(itest_env_wait(&e, 5,
	                             "SELECT count(*) = 0 FROM pg_stat_activity"
	                             " WHERE query LIKE '%%pg_sleep(60) /* it_cancel */%%'"
	                             " AND state = 'active' AND pid <> pg_backend_pid()"),
	              "the job's statement still runs on the server after its run ended:\n%s",
	              itest_read_file(e.log));
	ck_assert_msg(ended - started < 5, "the run took %.1f s to stop after its 1 s timeout",
	              ended - started);
	char *status = itest_scalar(e.db, "SELECT status || ': ' || return_message FROM"
	                                  " pgcrond.job_run_details WHERE job_name = 'sleeper'");
	ck_assert_msg(status && strstr(status, "failed: timed out after 1s"), "recorded %s",
	              status ? status : "NULL");
	free(status);

	/* the other session was not touched: its statement ends on its own, successfully */
	PGresult *res;
	ExecStatusType st = PGRES_FATAL_ERROR;
	while ((res = PQgetResult(other))) {
		st = PQresultStatus(res);
		PQclear(res);
	}
	ck_assert_msg(st == PGRES_TUPLES_OK, "the other session's statement failed: %s",
	              PQerrorMessage(other));
	ck_assert_int_eq(PQbackendPID(other), other_pid);
	itest_assert_scalar(other, "SELECT 1", "1");
	PQfinish(other);

	char *log = itest_read_file(e.log);
	ck_assert_msg(!strstr(log, "pg_cancel_backend") && !strstr(log, "could not"),
	              "the cancel went wrong:\n%s", log);
	free(log);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_exec(e.db, "DROP ROLE IF EXISTS it_cancel_one");
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cancel");
	TCase *tc = tcase_create("cancel");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, timeout_cancels_through_the_key);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
