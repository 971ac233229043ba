/* The backlog (issue 65, item 5) against a real PostgreSQL: with max_running = 2 held by two
 * long runs, runs pile up: a job's fire waits for a slot, the long job's next fire for its
 * own run (overlap queue), a downstream for its upstream, a failed run for its retry.
 * `pgcrond status` (text and JSON) and pgcrond.view_backlog list each with its reason;
 * `pgcrond drop JOB` and pgcrond.drop_waiting(job) drop them, each with exactly one skipped
 * row "dropped by ...", leaving the runs in flight and the other jobs' waiting runs alone,
 * and later fires run; an unknown job is refused, and so is a role without the right. */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define DB "it_backlog"

static json_t *status_json(struct itest_env *e)
{
	int status;
	char *out = itest_cli(&status, "status", "-c", e->conf, "--json", NULL);
	ck_assert_msg(status == 0, "pgcrond status: %d %s", status, out);
	json_t *st = json_loads(out, 0, NULL);
	ck_assert_msg(st != NULL, "status --json is not JSON: %s", out);
	free(out);
	return st;
}

/* Whether job NAME of ST has a run waiting for FOR. */
static bool waits(const json_t *st, const char *name, const char *why)
{
	size_t i, k;
	json_t *j, *w;
	json_array_foreach(json_object_get(st, "jobs"), i, j)
	{
		if (strcmp(json_string_value(json_object_get(j, "name")), name) != 0)
			continue;
		json_array_foreach(json_object_get(j, "waiting"), k, w)
		{
			if (strcmp(json_string_value(json_object_get(w, "for")), why) == 0)
				return true;
		}
	}
	return false;
}

static bool piled_up(void *arg)
{
	json_t *st = status_json(arg);
	bool all = waits(st, "queued", "slot") && waits(st, "long", "own_run") &&
	           waits(st, "down", "upstream") && waits(st, "flaky", "retry");
	json_decref(st);
	return all;
}

static bool flaky_fires(void *arg)
{
	json_t *st = status_json(arg);
	bool yes = waits(st, "flaky", "slot");
	json_decref(st);
	return yes;
}

START_TEST(backlog_listed_and_dropped)
{
	struct itest_env e;
	int status;
	char *out;

	itest_env_init(&e, "backlog", DB);
	itest_env_main(&e, "max_running = 2;\n");
	/* first a run that fails and waits 10 minutes for its retry */
	itest_env_job(&e, "10-flaky.conf",
	              "job = { name = \"flaky\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	              "        command = \"SELECT 1/0\"; retries = 3; retry_delay = \"10m\";\n"
	              "        retry_on = \"any\"; };\n");
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	free(out);
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) >= 1 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'flaky' AND status = 'failed'"),
	              "flaky did not fail:\n%s", itest_tail(e.log));
	/* then two long runs hold both slots, and the rest waits */
	itest_env_job(
	    &e, "20-pile.conf",
	    "jobs = ( { name = \"long\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	    "        command = \"SELECT pg_sleep(120)\"; overlap = \"queue\"; },\n"
	    "  { name = \"hog\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	    "        command = \"SELECT pg_sleep(120)\"; },\n"
	    "  { name = \"down\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	    "        command = \"SELECT 1\"; after = [\"long\"]; },\n"
	    "  { name = \"queued\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	    "        command = \"SELECT 1\"; } );\n");
	itest_env_reload(&e);
	ck_assert_msg(itest_wait_until(piled_up, &e, 40), "the runs did not pile up:\n%s",
	              itest_tail(e.log));

	/* the text form lists each with its reason */
	out = itest_cli(&status, "status", "-c", e.conf, NULL);
	ck_assert_msg(status == 0 && strstr(out, "waiting runs") &&
	                  strstr(out, "queued: for a max_running slot [slot]") &&
	                  strstr(out, "[own_run]") && strstr(out, "down: for its upstream jobs") &&
	                  strstr(out, "flaky: for its retry delay [retry]"),
	              "status: %d %s", status, out);
	free(out);
	out = itest_cli(&status, "status", "-c", e.conf, "long", NULL);
	ck_assert_msg(status == 0 &&
	                  strstr(out, "waiting:\n  for the job's run under way [own_run]"),
	              "status long: %d %s", status, out);
	free(out);
	/* ... and so does the view, within a second or so */
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(DISTINCT (job_name, waiting_for)) = 4 "
	                             "FROM pgcrond.view_backlog WHERE (job_name, waiting_for) IN "
	                             "(('queued', 'slot'), ('long', 'own_run'), "
	                             "('down', 'upstream'), ('flaky', 'retry'))"),
	              "view_backlog: %s",
	              itest_scalar(e.db, "SELECT json_agg(b) FROM pgcrond.view_backlog b"));

	long long long_pid = itest_scalar_ll(
	    e.db, "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgcrond: long'");
	ck_assert(long_pid > 0);

	/* pgcrond drop: the long job's waiting run, not its run in flight, not the others' */
	out = itest_cli(&status, "drop", "-c", e.conf, "long", NULL);
	ck_assert_msg(status == 0 && strstr(out, "long: 1 waiting run(s) dropped (dropped by "),
	              "drop: %d %s", status, out);
	free(out);
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'long' AND status = 'skipped' AND "
	                             "return_message LIKE 'dropped by %%, uid %%'"),
	              "no skipped row for the dropped run:\n%s", itest_tail(e.log));
	ck_assert_int_eq(itest_scalar_ll(e.db, "SELECT pid FROM pg_stat_activity WHERE "
	                                       "application_name = 'pgcrond: long'"),
	                 long_pid);
	json_t *st = status_json(&e);
	ck_assert(waits(st, "queued", "slot") && waits(st, "down", "upstream") &&
	          waits(st, "flaky", "retry"));
	json_decref(st);

	/* pgcrond.drop_waiting: the retry of flaky; its later fires run (and fail again) */
	long long failed = itest_scalar_ll(e.db, "SELECT count(*) FROM pgcrond.job_run_details "
	                                         "WHERE job_name = 'flaky' AND status = 'failed'");
	itest_exec(e.db, "SELECT pgcrond.drop_waiting('flaky')");
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'flaky' AND status = 'skipped' AND "
	                             "return_message = 'dropped by ' || session_user"),
	              "no skipped row for the dropped retry:\n%s", itest_tail(e.log));
	/* its next fire waits for a slot as any fire would */
	ck_assert_msg(itest_wait_until(flaky_fires, &e, 10), "flaky did not fire again:\n%s",
	              itest_tail(e.log));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                                     "return_message LIKE 'dropped by%%' AND job_name "
	                                     "NOT IN ('long', 'flaky')"),
	                 0);

	/* bad input: no such job (CLI and SQL), and a role that may not */
	out = itest_cli(&status, "drop", "-c", e.conf, "nosuch", NULL);
	ck_assert_msg(status == 64 && strstr(out, "no job \"nosuch\" is configured"),
	              "drop nosuch: %d %s", status, out);
	free(out);
	PGresult *r = PQexec(e.db, "SELECT pgcrond.drop_waiting('nosuch')");
	ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR &&
	                  strstr(PQresultErrorMessage(r), "no job \"nosuch\""),
	              "drop_waiting(nosuch): %s", PQresultErrorMessage(r));
	PQclear(r);
	itest_exec(e.db, "DROP ROLE IF EXISTS backlog_intruder; CREATE ROLE backlog_intruder");
	itest_exec(e.db, "SET SESSION AUTHORIZATION backlog_intruder");
	r = PQexec(e.db, "SELECT pgcrond.drop_waiting('queued')");
	ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR &&
	                  strcmp(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42501") == 0,
	              "drop_waiting by another role: %s", PQresultErrorMessage(r));
	PQclear(r);
	itest_exec(e.db, "RESET SESSION AUTHORIZATION");
	/* the view is not for PUBLIC */
	itest_exec(e.db, "SET SESSION AUTHORIZATION backlog_intruder");
	r = PQexec(e.db, "SELECT * FROM pgcrond.view_backlog");
	ck_assert(PQresultStatus(r) == PGRES_FATAL_ERROR);
	PQclear(r);
	itest_exec(e.db, "RESET SESSION AUTHORIZATION");
	st = status_json(&e);
	ck_assert(waits(st, "queued", "slot"));
	json_decref(st);

	/* the slots free: the runs that were not dropped run, and flaky's later fires */
	itest_exec(e.db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
	                 "WHERE application_name IN ('pgcrond: long', 'pgcrond: hog')");
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) > %lld FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'flaky' AND status = 'failed'",
	                             failed),
	              "flaky did not run again:\n%s", itest_tail(e.log));
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) > 0 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'queued' AND status = 'succeeded'"),
	              "queued did not run:\n%s", itest_tail(e.log));
	itest_exec(e.db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
	                 "WHERE application_name IN ('pgcrond: long', 'pgcrond: hog')");
	itest_env_stop(&e, SIGTERM, 20);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("backlog");
	TCase *tc = tcase_create("backlog");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, backlog_listed_and_dropped);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
