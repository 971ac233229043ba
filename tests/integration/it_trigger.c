/* Manual triggers against a real PostgreSQL: only roles the database
 * authorizes start a run. A login role without a grant gets nothing from a raw NOTIFY on
 * pgcrond_trigger (a job name or a guessed request id) and may not execute
 * pgcrond.trigger(); once granted pgcrond_operator it can, and who asked is recorded. A
 * disabled job runs only when forced; the daemon's own role keeps `pgcrond trigger`; a
 * flood of requests for unknown jobs gives a bounded number of log lines. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

#define DB "it_trigger"
#define ALICE "it_trigger_alice"

/* The schema by `pgcrond install` (steps 1 and 2, the role pgcrond_operator), a ticks table
 * the jobs write to, a login role ALICE with no grant, and two jobs that never fire on
 * their own: "yearly" and the disabled "off". Returns ALICE's connection. */
static PGconn *trigger_setup(struct itest_env *e, const char *tag)
{
	itest_env_init(e, tag, DB);
	itest_exec(e->db,
	           "CREATE TABLE ticks (job text, at timestamptz DEFAULT clock_timestamp())");
	itest_env_job(
	    e, "10-jobs.conf",
	    "jobs = (\n"
	    "  { name = \"yearly\"; database = \"app\"; schedule = \"0 0 1 1 *\";\n"
	    "    command = \"INSERT INTO ticks (job) VALUES ('yearly')\"; },\n"
	    "  { name = \"off\"; database = \"app\"; schedule = \"0 0 1 1 *\";\n"
	    "    enabled = false; command = \"INSERT INTO ticks (job) VALUES ('off')\"; }\n"
	    ");\n");
	int status;
	char *out = itest_cli(&status, "install", "-c", e->conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	free(out);
	itest_exec(e->db, "DROP ROLE IF EXISTS " ALICE);
	itest_exec(e->db, "CREATE ROLE " ALICE " LOGIN");
	char ci[1024];
	snprintf(ci, sizeof(ci), "%s user=" ALICE, e->ci);
	return itest_connect(ci);
}

/* The SQLSTATE SQL fails with on C, or "" if it succeeds. */
static char *sqlstate_of(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	char *out = strdup(st ? st : "");
	PQclear(r);
	return out;
}

static void wait_listening(struct itest_env *e)
{
	ck_assert_msg(itest_env_listening(e, 10), "the daemon does not listen:\n%s",
	              itest_read_file(e->log));
}

START_TEST(unauthorized_role_starts_no_run)
{
	struct itest_env e;
	PGconn *alice = trigger_setup(&e, "trigger-unauth");
	itest_env_start(&e);
	wait_listening(&e);

	/* the old way: a job name on the channel; and guessed request ids */
	itest_exec(alice, "NOTIFY pgcrond_trigger, 'yearly'");
	itest_exec(alice, "NOTIFY pgcrond_trigger, 'off'");
	itest_exec(alice, "SELECT pg_notify('pgcrond_trigger', i::text) "
	                  "FROM generate_series(0, 20) i");
	/* and the function: not for a job of the files without the operator's grant */
	char *st = sqlstate_of(alice, "SELECT pgcrond.trigger('yearly')");
	ck_assert_str_eq(st, "42501");
	free(st);
	st = sqlstate_of(alice, "INSERT INTO pgcrond.trigger_request (job_name) VALUES ('yearly')");
	ck_assert_str_eq(st, "42501");
	free(st);
	itest_sleep(2); /* a window: a refused request starts no run */
	ck_assert_msg(itest_env_count(&e, "SELECT count(*) FROM ticks") == 0,
	              "an unauthorized role started a run:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"), 0);
	ck_assert(itest_wait_log(e.log, "is not a request id", 10));

	/* granted: the run happens and who asked is recorded */
	itest_exec(e.db, "GRANT pgcrond_operator TO " ALICE);
	ck_assert_int_eq(itest_scalar_ll(alice, "SELECT pgcrond.trigger('yearly')"), 1);
	ck_assert_msg(itest_env_wait(&e, 10, "SELECT count(*) = 1 FROM ticks WHERE job = 'yearly'"),
	              "the granted role's request did not run:\n%s", itest_read_file(e.log));
	ck_assert(itest_env_wait(&e, 5,
	                         "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE job_name "
	                         "= 'yearly' AND trigger = 'manual' AND status = 'succeeded'"));
	/* the request's row ends with the run's outcome, as `pgcrond trigger --wait` reads it */
	ck_assert_msg(
	    itest_env_wait(&e, 5,
	                   "SELECT requested_by = '" ALICE
	                   "' AND outcome LIKE 'finished succeeded%%' "
	                   "AND claimed_by IS NOT NULL FROM pgcrond.trigger_request WHERE id = 1"),
	    "request 1's outcome: %s",
	    itest_scalar(e.db, "SELECT outcome FROM pgcrond.trigger_request WHERE id = 1"));
	ck_assert(itest_wait_log(e.log, "manual run of yearly requested by " ALICE, 10));

	/* a disabled job: refused without force, run with it */
	ck_assert_int_eq(itest_scalar_ll(alice, "SELECT pgcrond.trigger('off')"), 2);
	ck_assert(itest_env_wait(&e, 10,
	                         "SELECT outcome LIKE 'refused: the job is disabled%%' FROM "
	                         "pgcrond.trigger_request WHERE id = 2"));
	ck_assert(itest_wait_log(e.log, "refused: the job is disabled", 10));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM ticks WHERE job = 'off'"), 0);
	ck_assert_int_eq(itest_scalar_ll(alice, "SELECT pgcrond.trigger('off', true)"), 3);
	ck_assert_msg(itest_env_wait(&e, 10, "SELECT count(*) = 1 FROM ticks WHERE job = 'off'"),
	              "a forced request for a disabled job did not run:\n%s",
	              itest_read_file(e.log));
	PQfinish(alice);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* `pgcrond trigger` on the daemon's host (over its control socket, which logs who asked), the
 * CLI's refusal of a disabled job, and requests made while no daemon ran. */
START_TEST(cli_trigger_and_requests_made_while_down)
{
	struct itest_env e;
	PGconn *alice = trigger_setup(&e, "trigger-cli");
	itest_exec(e.db, "GRANT pgcrond_operator TO " ALICE);
	/* before the daemon runs: served once it listens */
	ck_assert_int_eq(itest_scalar_ll(alice, "SELECT pgcrond.trigger('yearly')"), 1);
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 10, "SELECT count(*) = 1 FROM ticks WHERE job = 'yearly'"),
	              "a request made while no daemon ran was not served:\n%s",
	              itest_read_file(e.log));

	int status;
	char *out = itest_cli(&status, "trigger", "-c", e.conf, "yearly", NULL);
	ck_assert_msg(status == 0 && strstr(out, "the daemon started yearly"), "%d %s", status,
	              out);
	free(out);
	ck_assert_msg(itest_env_wait(&e, 10, "SELECT count(*) = 2 FROM ticks WHERE job = 'yearly'"),
	              "pgcrond trigger did not run the job:\n%s", itest_read_file(e.log));
	ck_assert(
	    itest_wait_log(e.log, "manual run of yearly requested on the control socket by ", 10));

	out = itest_cli(&status, "trigger", "-c", e.conf, "off", NULL);
	ck_assert_msg(status == 64 && strstr(out, "disabled") && strstr(out, "--force"), "%d %s",
	              status, out);
	free(out);
	out = itest_cli(&status, "trigger", "-c", e.conf, "--force", "off", NULL);
	ck_assert_msg(status == 0, "%d %s", status, out);
	free(out);
	ck_assert(itest_env_wait(&e, 10, "SELECT count(*) = 1 FROM ticks WHERE job = 'off'"));
	PQfinish(alice);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

static int count_lines(const char *text, const char *needle)
{
	int n = 0;
	for (const char *line = text; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char *copy = strndup(line, len);
		n += strstr(copy, needle) != NULL;
		free(copy);
		line = end ? end + 1 : NULL;
	}
	return n;
}

/* 2,000 requests for unknown jobs, and 2,000 raw NOTIFYs with names: a few log lines. */
START_TEST(flood_of_unknown_names_is_rate_limited)
{
	struct itest_env e;
	PGconn *alice = trigger_setup(&e, "trigger-flood");
	itest_exec(e.db, "GRANT pgcrond_operator TO " ALICE);
	itest_env_start(&e);
	wait_listening(&e);
	itest_exec(alice, "SELECT pgcrond.trigger('nope-' || i) FROM generate_series(1, 2000) i");
	itest_exec(alice, "SELECT pg_notify('pgcrond_trigger', 'nope-' || i) "
	                  "FROM generate_series(1, 2000) i");
	ck_assert_msg(itest_env_wait(&e, 60,
	                             "SELECT count(*) = 2000 FROM pgcrond.trigger_request WHERE "
	                             "outcome = 'refused: no such job is configured'"),
	              "the requests were not all answered:\n%s", itest_read_file(e.log));
	itest_sleep(1); /* a window for more log lines to show */
	char *log = itest_read_file(e.log);
	int lines = count_lines(log, "refused") + count_lines(log, "ignored");
	ck_assert_msg(lines >= 1 && lines <= 6, "%d log lines about refused requests:\n%.2000s",
	              lines, log);
	ck_assert(count_lines(log, "no such job") >= 1);
	free(log);
	/* one line with the count comes at the end of the window */
	ck_assert_msg(
	    itest_wait_log(e.log, "more manual trigger request(s) refused", 15) &&
	        itest_wait_log(e.log, "more notification(s) on pgcrond_trigger ignored", 15),
	    "no summary line:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"), 0);
	PQfinish(alice);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

static pid_t cli_child;
static int cli_status = -1;

static bool cli_exited(void *arg)
{
	(void)arg;
	int st;
	if (waitpid(cli_child, &st, WNOHANG) != cli_child)
		return false;
	cli_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
	return true;
}

/* Runs that end while the daemon's session cannot record their outcomes: the UPDATE that
 * writes them waits on the request rows, which another session holds; the session is
 * terminated there, and on the new one (lock_timeout 1s) the UPDATE fails while the rows
 * are still held. Once they are free every request's outcome is "finished succeeded", and a
 * `pgcrond trigger --wait` from another host, waiting all along, returns with it. */
START_TEST(outcomes_outlive_a_lost_session_and_a_failed_update)
{
	struct itest_env e;
	PQfinish(trigger_setup(&e, "trigger-lost"));
	itest_env_job(&e, "20-slow.conf",
	              "jobs = (\n"
	              "  { name = \"slow1\"; database = \"app\"; schedule = \"0 0 1 1 *\";\n"
	              "    command = \"SELECT pg_sleep(3)\"; },\n"
	              "  { name = \"slow2\"; database = \"app\"; schedule = \"0 0 1 1 *\";\n"
	              "    command = \"SELECT pg_sleep(3)\"; },\n"
	              "  { name = \"slow3\"; database = \"app\"; schedule = \"0 0 1 1 *\";\n"
	              "    command = \"SELECT pg_sleep(3)\"; },\n"
	              "  { name = \"long\"; database = \"app\"; schedule = \"0 0 1 1 *\";\n"
	              "    command = \"SELECT pg_sleep(12)\"; }\n"
	              ");\n");
	itest_env_start(&e);
	wait_listening(&e);
	char *other = itest_env_other_host(&e);
	cli_child = fork();
	ck_assert(cli_child >= 0);
	if (cli_child == 0) {
		int status;
		char *out = itest_cli(&status, "trigger", "-c", other, "--wait", "--timeout", "90s",
		                      "slow1", NULL);
		fprintf(stderr, "pgcrond trigger --wait: %d %s\n", status, out);
		_exit(status == 0 && strstr(out, "slow1 succeeded") ? 0 : 1);
	}
	ck_assert(itest_env_wait(&e, 20, "SELECT count(*) = 1 FROM pgcrond.trigger_request"));
	itest_exec(e.db, "SELECT pgcrond.trigger('slow2'), pgcrond.trigger('slow3'),"
	                 " pgcrond.trigger('long')");
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 4 FROM pgcrond.trigger_request "
	                             "WHERE outcome = 'started'"),
	              "the runs did not start:\n%s", itest_read_file(e.log));

	/* the rows held while the runs end: their outcomes' UPDATE waits */
	PGconn *holder = itest_connect(e.ci);
	itest_exec(holder, "BEGIN");
	itest_exec(holder, "SELECT id FROM pgcrond.trigger_request FOR UPDATE");
	ck_assert_msg(
	    itest_env_wait(&e, 20,
	                   "SELECT count(*) = 1 FROM pg_stat_activity WHERE " ITEST_OWN_SESSIONS
	                   " AND wait_event_type = 'Lock' "
	                   "AND query LIKE '%%trigger_request%%'"),
	    "no outcome waits for the rows:\n%s", itest_read_file(e.log));
	ck_assert(itest_env_wait(&e, 20,
	                         "SELECT count(*) = 0 FROM pg_stat_activity WHERE state = 'active' "
	                         "AND query LIKE '%%pg_sleep(3)%%' AND pid <> pg_backend_pid()"));
	/* the next session gives up on a lock after 1 s */
	itest_exec(e.db, "DO $$ BEGIN EXECUTE format('ALTER ROLE %I IN DATABASE %I SET "
	                 "lock_timeout = ''1s''', current_user, current_database()); END $$");
	itest_env_kill_own_waiting(&e, "trigger_request",
	                           "manual trigger: cannot record the requests' outcomes");
	/* a run still under way across the fault: its outcome comes after it */
	ck_assert_msg(itest_env_count(&e, "SELECT count(*) FROM pg_stat_activity WHERE state = "
	                                  "'active' AND query LIKE '%%pg_sleep(12)%%'"
	                                  " AND pid <> pg_backend_pid()") == 1,
	              "the long run was not under way when the session was lost");
	itest_exec(holder, "ROLLBACK");
	PQfinish(holder);

	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) = 4 FROM pgcrond.trigger_request "
	                             "WHERE outcome LIKE 'finished succeeded%%'"),
	              "outcomes lost: %s\n%s",
	              itest_scalar(e.db, "SELECT string_agg(id || ' ' || coalesce(outcome, '-'), "
	                                 "', ' ORDER BY id) FROM pgcrond.trigger_request"),
	              itest_read_file(e.log));
	ck_assert_msg(itest_wait_until(cli_exited, NULL, 30) && cli_status == 0,
	              "pgcrond trigger --wait: status %d", cli_status);
	free(other);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A database at schema version 1 gets step 2 (and the later ones) from `pgcrond install`. */
START_TEST(install_upgrades_version_1)
{
	struct itest_env e;
	itest_env_init(&e, "trigger-upgrade", DB);
	itest_env_job(&e, "10-jobs.conf",
	              "job = { name = \"yearly\"; database = \"app\"; schedule = \"0 0 1 1 *\";"
	              " command = \"SELECT 1\"; };\n");
	char *sql = itest_read_file(TEST_SOURCE_DIR "/../sql/pgcrond--1.sql");
	itest_exec(e.db, sql);
	free(sql);
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0 && strstr(out, "upgraded from version 1 to "), "%d %s", status,
	              out);
	free(out);
	itest_assert_scalar(e.db,
	                    /* any role may call it: it runs a job of the role's own, or any
	                     * for pgcrond_operator */
	                    "SELECT has_function_privilege('pgcrond_operator', "
	                    "'pgcrond.trigger(text, boolean)', 'EXECUTE') AND "
	                    "has_function_privilege('public', 'pgcrond.trigger(text, boolean)', "
	                    "'EXECUTE') AND NOT has_table_privilege('public', "
	                    "'pgcrond.trigger_request', 'SELECT')",
	                    "t");
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("trigger");
	TCase *tc = tcase_create("trigger");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, unauthorized_role_starts_no_run);
	tcase_add_test(tc, cli_trigger_and_requests_made_while_down);
	tcase_add_test(tc, flood_of_unknown_names_is_rate_limited);
	tcase_add_test(tc, install_upgrades_version_1);
	tcase_add_test(tc, outcomes_outlive_a_lost_session_and_a_failed_update);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
