/* The backlog against a real PostgreSQL: with max_running = 2 held by two
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
#include <unistd.h>

#include "itest.h"

#define DB "it_backlog"

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
	json_t *st = itest_env_status(arg, NULL);
	bool all = waits(st, "queued", "slot") && waits(st, "long", "own_run") &&
	           waits(st, "down", "upstream") && waits(st, "flaky", "retry");
	json_decref(st);
	return all;
}

static bool flaky_fires(void *arg)
{
	json_t *st = itest_env_status(arg, NULL);
	bool yes = waits(st, "flaky", "slot");
	json_decref(st);
	return yes;
}

/* `pgcrond drop JOB` drops one run, whose one row is skipped "dropped by ..." without a
 * SQLSTATE. */
static void drop_one(struct itest_env *e, const char *job)
{
	int status;
	char *out = itest_cli(&status, "drop", "-c", e->conf, job, NULL), want[128];
	snprintf(want, sizeof(want), "%s: 1 waiting run(s) dropped (dropped by ", job);
	ck_assert_msg(status == 0 && strncmp(out, want, strlen(want)) == 0, "drop %s: %d %s", job,
	              status, out);
	free(out);
	ck_assert_msg(itest_env_wait(e, 10,
	                             "SELECT count(*) = 1 AND bool_and(status = 'skipped'"
	                             " AND return_message LIKE 'dropped by %%, uid %%'"
	                             " AND sqlstate IS NULL) FROM pgcrond.job_run_details"
	                             " WHERE job_name = '%s' AND return_message LIKE 'dropped%%'",
	                             job),
	              "%s's rows: %s\n%s", job,
	              itest_scalar(e->db, "SELECT json_agg(r) FROM pgcrond.job_run_details r"
	                                  " WHERE return_message LIKE 'dropped%'"),
	              itest_tail(e->log));
}

/* pgcrond.view_backlog comes to hold COUNT (job, reason) pairs WHERE ... within 10 s. */
static void view_shows(struct itest_env *e, int count, const char *where)
{
	ck_assert_msg(itest_env_wait(e, 10,
	                             "SELECT count(DISTINCT (job_name, waiting_for)) = %d FROM "
	                             "pgcrond.view_backlog WHERE %s",
	                             count, where),
	              "view_backlog, not %d WHERE %s: %s", count, where,
	              itest_scalar(e->db, "SELECT json_agg(b) FROM pgcrond.view_backlog b"));
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
	                  strstr(out, "[own_run]") &&
	                  strstr(out, "down: for its upstream jobs long [upstream]") &&
	                  strstr(out, "flaky: for its retry delay [retry]"),
	              "status: %d %s", status, out);
	free(out);
	out = itest_cli(&status, "status", "-c", e.conf, "long", NULL);
	ck_assert_msg(status == 0 &&
	                  strstr(out, "waiting:\n  for the job's run under way [own_run]"),
	              "status long: %d %s", status, out);
	free(out);
	/* ... and so does the view, within a second or so */
	view_shows(&e, 4,
	           "(job_name, waiting_for) IN (('queued', 'slot'), ('long', 'own_run'), "
	           "('down', 'upstream'), ('flaky', 'retry'))");

	long long long_pid = itest_scalar_ll(
	    e.db, "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgcrond: long'");
	ck_assert(long_pid > 0);

	/* pgcrond drop: the long job's waiting run, not its run in flight, not the others' */
	drop_one(&e, "long");
	ck_assert_int_eq(itest_scalar_ll(e.db, "SELECT pid FROM pg_stat_activity WHERE "
	                                       "application_name = 'pgcrond: long'"),
	                 long_pid);
	json_t *st = itest_env_status(&e, NULL);
	ck_assert(waits(st, "queued", "slot") && waits(st, "down", "upstream") &&
	          waits(st, "flaky", "retry"));
	json_decref(st);

	/* a job with nothing waiting (hog runs, overlap skip): drop says so */
	out = itest_cli(&status, "drop", "-c", e.conf, "hog", NULL);
	ck_assert_msg(status == 0 && strcmp(out, "hog: no run was waiting; nothing dropped\n") == 0,
	              "drop hog: %d %s", status, out);
	free(out);

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
	st = itest_env_status(&e, NULL);
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

static bool stuck_waits(void *arg)
{
	json_t *st = itest_env_status(arg, NULL);
	bool yes = waits(st, "stuck", "connection");
	json_decref(st);
	return yes;
}

/* The number of runs under way, as status says. */
static long long running(struct itest_env *e)
{
	json_t *st = itest_env_status(e, NULL);
	long long n = json_integer_value(json_object_get(st, "running"));
	json_decref(st);
	return n;
}

/* A run that started and waits for a connection that never comes (its database behind a relay
 * that leaves new connections unanswered), beside a run in flight on another job: pgcrond
 * drop ends it skipped, its one row the start row, and its slot goes; the run in flight goes
 * on. Then the daemon stops with a run waiting: pgcrond.view_backlog shows no stopped
 * instance's rows. */
START_TEST(connection_wait_dropped_and_stop)
{
	struct itest_env e;
	itest_env_init(&e, "backlog-conn", DB "_conn");
	int port = 0;
	pid_t relay = itest_relay_start(e.ci, &port);
	itest_write_file(e.conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = { app = { conninfo = \"%s\"; };\n"
	                 "  gone = { conninfo = \"host=127.0.0.1 port=%d dbname=" DB
	                 "_conn\"; }; };\n"
	                 "history = { database = \"app\"; };\n"
	                 "shutdown_grace = \"1s\";\n",
	                 e.dir, e.dir, e.ci, port);
	itest_env_job(
	    &e, "10-jobs.conf",
	    "jobs = ( { name = \"inflight\"; database = \"app\"; schedule = \"0 0 1 1 *\";\n"
	    "           command = \"SELECT pg_sleep(60)\"; },\n"
	    "  { name = \"stuck\"; database = \"gone\"; schedule = \"0 0 1 1 *\";\n"
	    "    command = \"SELECT 1\"; } );\n");
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	free(out);
	kill(relay, SIGUSR2); /* new connections through it: never answered */
	itest_env_start(&e);
	free(itest_cli(&status, "trigger", "-c", e.conf, "inflight", NULL));
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pg_stat_activity"
	                             " WHERE application_name = 'pgcrond: inflight'"),
	              "inflight is not in flight:\n%s", itest_tail(e.log));
	free(itest_cli(&status, "trigger", "-c", e.conf, "stuck", NULL));
	ck_assert_msg(itest_wait_until(stuck_waits, &e, 10),
	              "stuck does not wait for its connection:\n%s", itest_tail(e.log));
	ck_assert_int_eq(running(&e), 2);
	view_shows(&e, 1, "job_name = 'stuck' AND waiting_for = 'connection'");

	/* its start row becomes its one row, skipped, without a SQLSTATE: nothing was sent */
	drop_one(&e, "stuck");
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE job_name = 'stuck'"),
	                 1);
	ck_assert_int_eq(running(&e), 1);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pg_stat_activity"
	                                     " WHERE application_name = 'pgcrond: inflight'"),
	                 1);

	/* stopped with a run waiting: the view shows none of the stopped instance's rows */
	free(itest_cli(&status, "trigger", "-c", e.conf, "stuck", NULL));
	view_shows(&e, 1, "job_name = 'stuck'");
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 20), 0);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.view_backlog"), 0);
	itest_relay_stop(relay);
	itest_env_teardown(&e);
}
END_TEST

/* A burst of more fires than max_running (three jobs a second, max_running = 1, a run of
 * 0.1 s): every second two runs wait for the slot a fraction of a second. That is no
 * backlog: pgcrond.view_backlog stays empty (a run is shown once it has waited a second), and
 * every run is recorded. */
START_TEST(a_burst_publishes_nothing)
{
	struct itest_env e;
	int status;
	itest_env_init(&e, "backlog-burst", DB "_burst");
	itest_env_main(&e, "max_running = 1;\n");
	itest_env_job(&e, "10-burst.conf",
	              "jobs = ( { name = \"b1\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	              "           command = \"SELECT pg_sleep(0.1)\"; },\n"
	              "  { name = \"b2\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	              "    command = \"SELECT pg_sleep(0.1)\"; },\n"
	              "  { name = \"b3\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	              "    command = \"SELECT pg_sleep(0.1)\"; } );\n");
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	free(out);
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) >= 9 FROM pgcrond.job_run_details"
	                             " WHERE status = 'succeeded'"),
	              "the bursts did not run:\n%s", itest_tail(e.log));
	/* 6 s, each a burst: the view looked at every 50 ms */
	int shown = 0;
	for (int i = 0; i < 120; i++) {
		shown += itest_scalar_ll(e.db, "SELECT count(*) FROM pgcrond.view_backlog") > 0;
		usleep(50 * 1000);
	}
	ck_assert_msg(shown == 0, "view_backlog showed the burst's short waits %d time(s) of 120",
	              shown);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 20), 0);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE status IS DISTINCT FROM 'succeeded'"),
	                 0);
	itest_env_teardown(&e);
}
END_TEST

/* The owner of a job made in SQL may drop its waiting runs (pgcrond.drop_waiting, the rights
 * of cron.unschedule) and read the outcome of her request (pgcrond.trigger_outcome); another
 * role reads nothing of it. Two login roles, as they would connect. */
START_TEST(owner_reads_the_outcome_of_her_drop)
{
	struct itest_env e;
	int status;
	char *out, ci[1024];

	itest_env_init(&e, "backlog-owner", DB);
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	free(out);
	PGconn *c[2];
	const char *roles[] = {"backlog_alice", "backlog_bob"};
	for (int i = 0; i < 2; i++) {
		char sql[256];
		snprintf(sql, sizeof(sql), "DROP OWNED BY %s; DROP ROLE %s", roles[i], roles[i]);
		PQclear(PQexec(e.db, sql));
		snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN; GRANT USAGE ON SCHEMA cron TO %s",
		         roles[i], roles[i]);
		itest_exec(e.db, sql);
		snprintf(ci, sizeof(ci), "%s user=%s", e.ci, roles[i]);
		c[i] = itest_connect(ci);
	}
	itest_exec(c[0], "SELECT cron.schedule('nightly', '0 3 * * *', 'SELECT 1')");
	itest_exec(c[1], "SELECT cron.schedule('nightly', '0 4 * * *', 'SELECT 1')");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 2 FROM pgcrond.job WHERE source = 'sql'"
	                             " AND removed_at IS NULL"),
	              "the SQL jobs are not registered:\n%s", itest_tail(e.log));
	ck_assert_msg(itest_wait_log(e.log, "jobs made in SQL applied", 15), "%s",
	              itest_tail(e.log));

	long long id = itest_scalar_ll(c[0], "SELECT pgcrond.drop_waiting('nightly')");
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT pgcrond.trigger_outcome(%lld)", id);
	/* alice: her answer, once the daemon gave it (NULL until then) */
	bool answered = false;
	for (int i = 0; i < 200 && !answered; i++) {
		PGresult *r = PQexec(c[0], sql);
		ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "alice: %s: %s", sql,
		              PQresultErrorMessage(r));
		answered = !PQgetisnull(r, 0, 0);
		if (answered)
			ck_assert_str_eq(PQgetvalue(r, 0, 0), "dropped 0 waiting run(s)");
		PQclear(r);
		if (!answered)
			itest_sleep(0.05);
	}
	ck_assert_msg(answered, "alice's drop was not answered:\n%s", itest_tail(e.log));
	/* bob: nothing of alice's request, and no right to drop her job's runs */
	itest_assert_scalar(c[1], sql, "NULL");
	long long alices =
	    itest_scalar_ll(e.db, "SELECT jobid FROM pgcrond.job WHERE username = 'backlog_alice'");
	snprintf(sql, sizeof(sql), "SELECT pgcrond.drop_waiting(%lld::bigint)", alices);
	PGresult *r = PQexec(c[1], sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR &&
	                  strcmp(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42501") == 0,
	              "bob drops alice's job: %s", PQresultErrorMessage(r));
	PQclear(r);
	for (int i = 0; i < 2; i++)
		PQfinish(c[i]);
	itest_env_stop(&e, SIGTERM, 20);
	itest_env_teardown(&e);
}
END_TEST

/* 1,200 runs wait for the one max_running slot, which a long run holds:
 * pgcrond.view_backlog shows 1,000 of them (a restart's catch-up of 15,000 jobs would
 * otherwise be a statement of a second, every second), `pgcrond status` all of them. */
START_TEST(a_large_backlog_shows_a_thousand)
{
	struct itest_env e;
	int status;
	itest_env_init(&e, "backlog-large", DB);
	itest_env_main(&e, "max_running = 1;\n");
	size_t cap = 1300 * 120, len = 0;
	char *jobs = malloc(cap);
	ck_assert_ptr_nonnull(jobs);
	len += (size_t)snprintf(jobs + len, cap - len,
	                        "jobs = ( { name = \"hog\"; database = \"app\"; schedule = "
	                        "\"* * * * * *\"; command = \"SELECT pg_sleep(120)\"; }");
	for (int i = 0; i < 1200; i++)
		len += (size_t)snprintf(jobs + len, cap - len,
		                        ",\n  { name = \"w%04d\"; database = \"app\"; schedule = "
		                        "\"* * * * * *\"; command = \"SELECT 1\"; }",
		                        i);
	snprintf(jobs + len, cap - len, " );\n");
	char *path = itest_env_path(&e, "conf.d/10-many.conf");
	itest_write_file(path, "%s", jobs);
	free(path);
	free(jobs);
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	free(out);
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 20, "SELECT count(*) = 1000 FROM pgcrond.view_backlog"),
	              "view_backlog holds %lld runs:\n%s",
	              itest_scalar_ll(e.db, "SELECT count(*) FROM pgcrond.view_backlog"),
	              itest_tail(e.log));
	out = itest_cli(&status, "status", "-c", e.conf, "--json", NULL);
	ck_assert_msg(status == 0 && out, "pgcrond status --json: %d", status);
	json_t *st = json_loads(out, 0, NULL);
	long long queued = json_integer_value(json_object_get(st, "queued"));
	ck_assert_msg(queued >= 1200, "pgcrond status counts %lld runs waiting for a slot: %.300s",
	              queued, out);
	json_decref(st);
	free(out);
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
	tcase_add_test(tc, connection_wait_dropped_and_stop);
	tcase_add_test(tc, a_burst_publishes_nothing);
	tcase_add_test(tc, owner_reads_the_outcome_of_her_drop);
	tcase_add_test(tc, a_large_backlog_shows_a_thousand);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
