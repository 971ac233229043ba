/* pgcrond run against a real PostgreSQL: jobs fire on time and are recorded, timeouts stop
 * the backend, the overlap policies, reload, crash and restart, connection errors, root
 * refusal, and a graceful shutdown. Each test writes its own config into a temp dir and
 * runs the daemon as the unprivileged sandbox user. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

#define DB "it_daemon"

/* The daemon environment with a "ticks" table for the jobs to write to and the schema put in
 * by `pgcrond install`; EXTRA_MAIN is appended to pgcrond.conf (shutdown_grace ...). */
static void env_setup(struct itest_env *e, const char *tag, const char *extra_main)
{
	itest_env_init(e, tag, DB);
	if (extra_main)
		itest_env_main(e, "%s", extra_main);
	itest_exec(e->db,
	           "CREATE TABLE ticks (job text, at timestamptz DEFAULT clock_timestamp())");
	itest_exec(e->db, "GRANT ALL ON ticks TO PUBLIC");

	int status;
	char *out = itest_cli(&status, "install", "-c", e->conf, NULL);
	if (status != 0) {
		/* until `pgcrond install` exists: the schema straight from the source tree */
		char *sql = itest_read_file(TEST_SOURCE_DIR "/../sql/pgcrond--1.sql");
		ck_assert_msg(sql[0], "pgcrond install failed (%d: %s) and no sql/pgcrond--1.sql",
		              status, out);
		itest_exec(e->db, sql);
		free(sql);
	}
	free(out);
}

/* The pg_sleep backends of cancelled or timed-out runs really stopped (within 5 s). */
static void expect_backends_stopped(struct itest_env *e)
{
	ck_assert_msg(
	    itest_env_wait(
	        e, 5,
	        "SELECT count(*) = 0 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(%%' "
	        "AND state = 'active' AND pid <> pg_backend_pid()"),
	    "a pg_sleep backend is still running");
}

START_TEST(every_second_runs_and_is_recorded)
{
	struct itest_env e;
	env_setup(&e, "tick", NULL);
	itest_env_job(&e, "10-tick.conf",
	              "job = { name = \"tick\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	              "  command = \"INSERT INTO ticks (job) VALUES ('tick')\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(
	    itest_env_wait(
	        &e, 15,
	        "SELECT count(*) >= 4 FROM pgcrond.job_run_details WHERE job_name = 'tick' "
	        "AND status = 'succeeded'"),
	    "no runs recorded:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);

	/* every recorded run has pg_cron's columns right */
	ck_assert_int_eq(
	    itest_env_count(
	        &e, "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 'tick' "
	            "AND status = 'succeeded' AND (return_message IS DISTINCT FROM 'INSERT 0 1' "
	            "OR job_pid IS NULL OR job_pid <= 0 OR trigger <> 'schedule' OR attempt <> 1 "
	            "OR scheduled_time <> date_trunc('second', scheduled_time) "
	            "OR start_time < scheduled_time OR end_time < start_time "
	            "OR database <> 'app' OR command NOT LIKE 'INSERT INTO ticks%%')"),
	    0);
	/* each fire once, each on time, and each really ran: on time is judged from the second
	 * fire on, the first may come while the daemon is still starting (its connections, the
	 * history's read-back; a loaded machine can start it more than 900 ms late) */
	ck_assert_int_eq(itest_env_count(&e,
	                                 "SELECT count(*) - count(DISTINCT scheduled_time) FROM "
	                                 "pgcrond.job_run_details WHERE job_name = 'tick'"),
	                 0);
	ck_assert_int_eq(
	    itest_env_count(&e,
	                    "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 'tick' "
	                    "AND start_time - scheduled_time > interval '900 ms'"
	                    " AND return_message IS DISTINCT FROM 'pgcrond was shutting down'"
	                    " AND scheduled_time > (SELECT min(scheduled_time) FROM "
	                    "pgcrond.job_run_details WHERE job_name = 'tick')"),
	    0);
	ck_assert_int_ge(
	    itest_env_count(&e, "SELECT count(*) FROM ticks WHERE job = 'tick'"),
	    itest_env_count(&e,
	                    "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 'tick' "
	                    "AND status = 'succeeded'"));
	char *log = itest_read_file(e.log);
	ck_assert_msg(strstr(log, "succeeded in") != NULL, "%s", log);
	free(log);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(timeout_stops_the_backend)
{
	struct itest_env e;
	char when[32];
	env_setup(&e, "timeout", NULL);
	itest_env_start(&e);
	/* the job comes with a reload once the daemon runs (itest_env_reload) */
	for (int ahead = 2; ahead;) {
		time_t at = itest_schedule_soon_at(when, sizeof(when), ahead);
		/* one statement: the server's statement_timeout stops it */
		itest_env_job(&e, "10-sleep.conf",
		              "job = { name = \"sleepy\"; database = \"app\"; schedule = \"%s\"; "
		              "timeout = \"2s\";\n"
		              "  command = \"SELECT pg_sleep(60)\"; };\n",
		              when);
		/* two statements, each shorter than the timeout: the client-side timer cancels */
		itest_env_job(&e, "20-sleep2.conf",
		              "job = { name = \"sleepy2\"; database = \"app\"; schedule = \"%s\"; "
		              "timeout = \"2s\";\n"
		              "  command = \"SELECT pg_sleep(1.6); SELECT pg_sleep(1.7)\"; };\n",
		              when);
		itest_env_reload(&e);
		ahead = itest_soon_again(e.log, at, ahead);
	}
	ck_assert_msg(
	    itest_env_wait(&e, 15,
	                   "SELECT count(*) = 2 FROM pgcrond.job_run_details WHERE job_name LIKE "
	                   "'sleepy%%' AND status <> 'running'"),
	    "no timeout recorded:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(
	    itest_env_count(&e,
	                    "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name LIKE "
	                    "'sleepy%%' AND status = 'failed' AND sqlstate = '57014' AND "
	                    "return_message = 'timed out after 2s; the statement was cancelled' "
	                    "AND end_time - start_time < interval '6 s'"),
	    2);
	/* the backends really stopped */
	expect_backends_stopped(&e);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(overlap_policies)
{
	struct itest_env e;
	env_setup(&e, "overlap", "max_running = 8;\nshutdown_grace = \"2s\";\n");
	itest_env_job(
	    &e, "10-skip.conf",
	    "job = { name = \"skipper\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	    "  overlap = \"skip\"; command = \"SELECT pg_sleep(2.5)\"; };\n");
	itest_env_job(&e, "20-queue.conf",
	              "job = { name = \"queuer\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	              "  overlap = \"queue\"; command = \"SELECT pg_sleep(1.5)\"; };\n");
	itest_env_job(
	    &e, "30-replace.conf",
	    "job = { name = \"replacer\"; database = \"app\"; schedule = \"*/2 * * * * *\";\n"
	    "  overlap = \"replace\"; command = \"SELECT pg_sleep(30)\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(
	    itest_env_wait(
	        &e, 20,
	        "SELECT bool_and(ok) FROM (VALUES "
	        "((SELECT count(*) >= 2 FROM pgcrond.job_run_details WHERE job_name = 'skipper' "
	        "  AND status = 'skipped')), "
	        "((SELECT count(*) >= 2 FROM pgcrond.job_run_details WHERE job_name = 'queuer' "
	        "  AND status = 'succeeded')), "
	        "((SELECT count(*) >= 1 FROM pgcrond.job_run_details WHERE job_name = 'queuer' "
	        "  AND status = 'skipped')), "
	        "((SELECT count(*) >= 2 FROM pgcrond.job_run_details WHERE job_name = 'replacer' "
	        "  AND status = 'failed'))) v(ok)"),
	    "overlap rows missing:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);

	/* skip: the skipped fires say why */
	ck_assert_int_eq(
	    itest_env_count(
	        &e,
	        "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = "
	        "'skipper' AND status = 'skipped' AND return_message !~ "
	        "'^previous run still running \\(started [0-9:]{8}Z\\); overlap = skip$'"
	        /* skips by policy under load: a claim slower than a second, the stop */
	        " AND return_message NOT IN ('previous fire still being claimed; overlap = skip',"
	        " 'pgcrond was shutting down')"),
	    0);
	/* skip and queue: runs of one job never overlap */
	ck_assert_int_eq(
	    itest_env_count(
	        &e, "SELECT count(*) FROM pgcrond.job_run_details a JOIN "
	            "pgcrond.job_run_details b USING (job_name) WHERE job_name IN "
	            "('skipper', 'queuer') AND a.runid < b.runid AND a.status = 'succeeded' "
	            "AND b.status = 'succeeded' AND tstzrange(a.start_time, a.end_time) && "
	            "tstzrange(b.start_time, b.end_time)"),
	    0);
	/* queue: the queued run starts as soon as the previous one ends, late for its instant */
	ck_assert_int_ge(
	    itest_env_count(&e,
	                    "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = "
	                    "'queuer' AND status = 'succeeded' AND start_time - scheduled_time > "
	                    "interval '300 ms'"),
	    1);
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = "
	                        "'queuer' AND status = 'skipped' AND return_message NOT LIKE "
	                        "'%%already queued; overlap = queue' AND return_message <> "
	                        "'pgcrond was shutting down'"),
	    0);
	/* replace: each newer fire cancelled the running one */
	ck_assert_int_ge(
	    itest_env_count(
	        &e, "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = "
	            "'replacer' AND status = 'failed' AND sqlstate = '57014' AND "
	            "return_message = 'cancelled: replaced by a newer run (overlap = replace)'"),
	    1);
	expect_backends_stopped(&e);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(reload_valid_and_invalid)
{
	struct itest_env e;
	env_setup(&e, "reload", NULL);
	itest_env_job(&e, "10-a.conf",
	              "job = { name = \"a\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	              "  command = \"INSERT INTO ticks (job) VALUES ('a')\"; };\n");
	itest_env_start(&e);
	ck_assert(itest_env_wait(&e, 10, "SELECT count(*) >= 1 FROM ticks WHERE job = 'a'"));

	/* a valid change: a new job starts */
	itest_env_job(&e, "20-b.conf",
	              "job = { name = \"b\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	              "  command = \"INSERT INTO ticks (job) VALUES ('b')\"; };\n");
	kill(e.pid, SIGHUP);
	ck_assert_msg(itest_env_wait(&e, 10, "SELECT count(*) >= 2 FROM ticks WHERE job = 'b'"),
	              "new job did not run:\n%s", itest_read_file(e.log));
	/* the log says what changed, not only how many jobs there are */
	ck_assert_msg(itest_wait_log(e.log, "reload: added job \"b\"", 10), "%s",
	              itest_read_file(e.log));
	ck_assert(itest_wait_log(e.log,
	                         "configuration reloaded: 2 job(s); 1 added, 0 changed, "
	                         "0 removed",
	                         2));

	/* an invalid one: refused, with file and line, and the old jobs keep running */
	itest_env_job(
	    &e, "30-bad.conf",
	    "job = {\n  name = \"c\";\n  database = \"app\";\n  schedul = \"* * * * *\";\n"
	    "  command = \"SELECT 1\";\n};\n");
	kill(e.pid, SIGHUP);
	ck_assert_msg(
	    itest_wait_log(e.log, "reload failed; keeping the previous configuration", 10), "%s",
	    itest_read_file(e.log));
	ck_assert_msg(itest_wait_log(e.log, "conf.d/30-bad.conf:4:", 10), "%s",
	              itest_read_file(e.log));
	long long before = itest_env_count(&e, "SELECT count(*) FROM ticks WHERE job = 'b'");
	ck_assert_msg(itest_env_wait(&e, 10, "SELECT count(*) >= %lld FROM ticks WHERE job = 'b'",
	                             before + 2),
	              "old configuration stopped running:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A run is busy in its statement when its daemon is killed (SIGKILL): its backend does not
 * notice the closed connection until the statement ends, and would then commit the work of a
 * run whose row the restarted daemon closes as failed. The restart ends that backend before
 * it closes the row: the run's transaction rolls back, its row says failed, and the fire is
 * not run again. */
/* A name of 63 characters: the server keeps the first 63 bytes of "pgcrond: NAME" as the
 * backend's application name, which the fence matches (matched against the whole name, it
 * would find no backend of such a job, and let it commit). */
#define CRASH_JOB "a-long-job-name-whose-application-name-the-server-cuts-to-63-by"
START_TEST(crash_then_restart_closes_orphan_once)
{
	struct itest_env e;
	char when[32];
	env_setup(&e, "crash", NULL);
	itest_exec(e.db, "CREATE TABLE public.execs (pid integer, at timestamptz DEFAULT now());"
	                 "GRANT ALL ON public.execs TO PUBLIC");
	itest_env_start(&e);
	/* the job comes with a reload once the daemon runs (itest_env_reload) */
	for (int ahead = 2; ahead;) {
		time_t at = itest_schedule_soon_at(when, sizeof(when), ahead);
		itest_env_job(&e, "10-long.conf",
		              "job = { name = \"" CRASH_JOB
		              "\"; database = \"app\"; schedule = \"%s\";\n"
		              "  command = \"INSERT INTO public.execs (pid) SELECT pg_backend_pid()"
		              " FROM pg_sleep(10)\"; };\n",
		              when);
		itest_env_reload(&e);
		ahead = itest_soon_again(e.log, at, ahead);
	}
	ck_assert_msg(
	    itest_env_wait(
	        &e, 10,
	        "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE job_name = '" CRASH_JOB "' "
	        "AND status = 'running' AND job_pid IS NOT NULL"),
	    "run not recorded as running:\n%s", itest_read_file(e.log));
	char *sched = itest_scalar(e.db, "SELECT scheduled_time FROM pgcrond.job_run_details WHERE "
	                                 "job_name = '" CRASH_JOB "'");
	long long pid = itest_env_count(&e, "SELECT job_pid FROM pgcrond.job_run_details WHERE "
	                                    "job_name = '" CRASH_JOB "'");
	itest_env_stop(&e, SIGKILL, 5);
	/* the killed process's run is still busy on the server */
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(*) FROM pg_stat_activity WHERE pid = %lld", pid), 1);

	itest_env_start(&e);
	ck_assert_msg(
	    itest_env_wait(
	        &e, 10,
	        "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE job_name = '" CRASH_JOB "' "
	        "AND status = 'failed' AND return_message LIKE 'pgcrond process ended while "
	        "this run was in progress%%'"),
	    "orphan row not closed:\n%s", itest_read_file(e.log));
	/* its backend is gone long before its statement would have ended (10 s after it began):
	 * its transaction rolled back, and no work of a run recorded failed can commit later */
	ck_assert_msg(
	    itest_env_wait(&e, 10, "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = %lld",
	                   pid),
	    "the killed run's backend %lld is still there:\n%s", pid, itest_read_file(e.log));
	itest_sleep(2); /* a window: the closed orphan is not run again, its work not committed */
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	ck_assert_int_eq(
	    itest_env_count(&e,
	                    "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = "
	                    "'" CRASH_JOB "' AND scheduled_time = '%s'",
	                    sched),
	    1);
	ck_assert_msg(itest_env_count(&e, "SELECT count(*) FROM public.execs") == 0,
	              "the run recorded as failed committed its work:\n%s", itest_read_file(e.log));
	/* said once: as the name is taken, before anything is claimed (or, for a row the spill
	 * file still held, as the history closes it) */
	ck_assert_msg(
	    itest_count_in_file(e.log, "cluster: ended 1 backend(s) of runs an earlier "
	                               "process") +
	            itest_count_in_file(e.log, "1 of them were still busy in their statement") ==
	        1,
	    "%s", itest_read_file(e.log));
	free(sched);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(refused_connection_records_libpq_error)
{
	struct itest_env e;
	char extra[1024];
	env_setup(&e, "refused", NULL);
	/* a socket directory where nothing listens */
	snprintf(extra, sizeof(extra),
	         "databases = { app = { conninfo = \"%s\"; }; nowhere = { conninfo = \"host=%s "
	         "port=9 dbname=x password=hunter2\"; }; };\n",
	         e.ci, e.dir);
	itest_write_file(e.conf,
	                 "timezone = \"UTC\";\nplugin_dir = \"%s\";\nconf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n%shistory = { database = \"app\"; };\n",
	                 e.dir, e.dir, extra);
	itest_env_job(
	    &e, "10-nowhere.conf",
	    "job = { name = \"nowhere\"; database = \"nowhere\"; schedule = \"* * * * * *\";\n"
	    "  command = \"SELECT 1\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(
	    itest_env_wait(&e, 10,
	                   "SELECT count(*) >= 1 FROM pgcrond.job_run_details WHERE job_name = "
	                   "'nowhere' AND status = 'failed'"),
	    "no failure recorded:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	char *msg =
	    itest_scalar(e.db, "SELECT return_message || ' / ' || coalesce(sqlstate, '') FROM "
	                       "pgcrond.job_run_details WHERE job_name = 'nowhere' AND status = "
	                       "'failed' ORDER BY runid LIMIT 1");
	ck_assert_msg(strstr(msg, ".s.PGSQL.9") && strstr(msg, "No such file or directory") &&
	                  strstr(msg, "08001"),
	              "got: %s", msg);
	free(msg);
	char *log = itest_read_file(e.log);
	ck_assert_msg(strstr(log, "hunter2") == NULL, "password in the log:\n%s", log);
	ck_assert_msg(strstr(log, "cannot connect") != NULL, "%s", log);
	free(log);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(root_is_refused)
{
	if (geteuid() != 0)
		return; /* only meaningful as root (CI runs tests as root) */
	int pipefd[2];
	ck_assert(pipe(pipefd) == 0);
	pid_t pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		dup2(pipefd[1], 2);
		dup2(pipefd[1], 1);
		close(pipefd[0]);
		execl(PGCROND_BIN, "pgcrond", "run", "-c", "/nonexistent.conf", (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	char buf[1024];
	ssize_t n = read(pipefd[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(pipefd[0]);
	int st;
	waitpid(pid, &st, 0);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 77);
	ck_assert_msg(strstr(buf, "must not run as root") != NULL, "got: %s", buf);
}
END_TEST

START_TEST(sigterm_lets_runs_finish_then_cancels)
{
	struct itest_env e;
	char when[32];
	env_setup(&e, "term", "shutdown_grace = \"3s\";\n");
	itest_env_start(&e);
	/* the job comes with a reload once the daemon runs (itest_env_reload) */
	for (int ahead = 2; ahead;) {
		time_t at = itest_schedule_soon_at(when, sizeof(when), ahead);
		/* 3 s: both rows show running (a second after the runs' start) well before
		 * short's end, which still comes within the grace */
		itest_env_job(&e, "10-short.conf",
		              "job = { name = \"short\"; database = \"app\"; schedule = \"%s\";\n"
		              "  command = \"SELECT pg_sleep(3)\"; };\n",
		              when);
		itest_env_job(&e, "20-long.conf",
		              "job = { name = \"endless\"; database = \"app\"; schedule = \"%s\";\n"
		              "  command = \"SELECT pg_sleep(60)\"; };\n",
		              when);
		itest_env_reload(&e);
		ahead = itest_soon_again(e.log, at, ahead);
	}
	ck_assert_msg(
	    itest_env_wait(
	        &e, 10,
	        "SELECT count(*) = 2 FROM pgcrond.job_run_details WHERE status = 'running' "
	        "AND job_pid IS NOT NULL"),
	    "runs did not start:\n%s", itest_read_file(e.log));
	double t0 = itest_now();
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	double took = itest_now() - t0;
	ck_assert_msg(took >= 2.5 && took < 10, "shutdown took %.1f s", took);
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = "
	                        "'short' AND status = 'succeeded'"),
	    1);
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = "
	                        "'endless' AND status = 'failed' AND sqlstate = '57014' AND "
	                        "return_message LIKE 'cancelled: pgcrond was shutting down%%'"),
	    1);
	expect_backends_stopped(&e);
	itest_env_teardown(&e);
}
END_TEST

/* `pgcrond trigger JOB` on the daemon's host runs the job (over the control socket, ctl.h;
 * the path through pgcrond.trigger() is it_ctl's and it_trigger's). */
START_TEST(cli_trigger_runs_the_job)
{
	struct itest_env e;
	env_setup(&e, "trigger", NULL);
	itest_env_job(&e, "10-manual.conf",
	              "job = { name = \"yearly\"; database = \"app\"; schedule = \"0 0 1 1 *\";\n"
	              "  command = \"INSERT INTO ticks (job) VALUES ('yearly')\"; };\n");
	itest_env_start(&e);
	int status;
	char *out = itest_cli(&status, "trigger", "-c", e.conf, "yearly", NULL);
	ck_assert_msg(status == 0 && strstr(out, "the daemon started yearly"), "%d %s", status,
	              out);
	free(out);
	ck_assert_msg(itest_env_wait(&e, 10, "SELECT count(*) = 1 FROM ticks WHERE job = 'yearly'"),
	              "trigger did not run the job:\n%s", itest_read_file(e.log));
	ck_assert(itest_env_wait(
	    &e, 5,
	    "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE job_name = 'yearly' "
	    "AND trigger = 'manual' AND status = 'succeeded'"));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A command longer than the history keeps, cut in the middle of a two-byte character: the
 * kept text is cut back to a whole character, so the row is still written; a skipped
 * fire's row keeps the same, not the whole command. */
START_TEST(long_multibyte_command_is_recorded)
{
	struct itest_env e;
	env_setup(&e, "long-command", NULL);
	/* "INSERT INTO ticks (job)  VALUES ('" is 34 bytes, then 700 two-byte characters: the
	 * 1,023 bytes history keeps end in the middle of one */
	char cmd[2048];
	int o = snprintf(cmd, sizeof(cmd), "INSERT INTO ticks (job)  VALUES ('");
	for (int k = 0; k < 700; k++)
		o += snprintf(cmd + o, sizeof(cmd) - (size_t)o, "\xc3\xa9");
	/* a run lasts over a second: every other fire is skipped (overlap = skip), and a
	 * skip's row keeps the command as a run's does */
	snprintf(cmd + o, sizeof(cmd) - (size_t)o, "'); SELECT pg_sleep(1.2)");
	itest_env_job(&e, "10-long.conf",
	              "job = { name = \"long\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	              "  command = \"%s\"; };\n",
	              cmd);
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) >= 1 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'long' AND status = 'succeeded'"),
	              "no history row for the long command:\n%s", itest_read_file(e.log));
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) >= 1 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'long' AND status = 'skipped'"),
	              "no skipped row for the long command:\n%s", itest_read_file(e.log));
	ck_assert_int_ge(itest_env_count(&e, "SELECT count(*) FROM ticks WHERE length(job) = 700"),
	                 1);
	/* what history keeps is the start of the command, whole characters only */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                                     "job_name = 'long' AND octet_length(command) >= 1023"),
	                 0);
	ck_assert_int_eq(itest_env_count(&e, "SELECT min(octet_length(command)) FROM "
	                                     "pgcrond.job_run_details WHERE job_name = 'long'"),
	                 1022);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A second SIGTERM does not wait out the grace period: running runs are cancelled now. */
START_TEST(second_sigterm_cancels_at_once)
{
	struct itest_env e;
	char when[32];
	env_setup(&e, "term2", "shutdown_grace = \"60s\";\n");
	itest_env_start(&e);
	/* the job comes with a reload once the daemon runs (itest_env_reload) */
	for (int ahead = 2; ahead;) {
		time_t at = itest_schedule_soon_at(when, sizeof(when), ahead);
		itest_env_job(&e, "10-long.conf",
		              "job = { name = \"endless\"; database = \"app\"; schedule = \"%s\";\n"
		              "  command = \"SELECT pg_sleep(60)\"; };\n",
		              when);
		itest_env_reload(&e);
		ahead = itest_soon_again(e.log, at, ahead);
	}
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details "
	                             "WHERE status = 'running' AND job_pid IS NOT NULL"),
	              "the run did not start:\n%s", itest_read_file(e.log));
	kill(e.pid, SIGTERM);
	ck_assert(itest_wait_log(e.log, "shutting down", 5));
	itest_sleep(0.5);
	double t0 = itest_now();
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 20), 0);
	double took = itest_now() - t0;
	ck_assert_msg(took < 10, "the second SIGTERM took %.1f s to stop a 60 s grace", took);
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = "
	                        "'endless' AND status = 'failed' AND sqlstate = '57014'"),
	    1);
	/* the row says why: the second signal, not a grace period that ran out */
	itest_assert_scalar(e.db,
	                    "SELECT return_message FROM pgcrond.job_run_details"
	                    " WHERE job_name = 'endless'",
	                    "cancelled: pgcrond was told to stop again (a second SIGTERM or SIGINT)"
	                    " before the run finished");
	expect_backends_stopped(&e);
	itest_env_teardown(&e);
}
END_TEST

/* A second database, DB_NAME, with its own "ticks" table, named NAME in E's main file beside
 * "app"; *CI its conninfo (malloc'd). Returns the test's connection to it. */
static PGconn *second_db(struct itest_env *e, const char *name, char **ci)
{
	char db[64];
	snprintf(db, sizeof(db), DB "_%s", name);
	*ci = itest_fresh_db(db);
	PGconn *c = itest_connect(*ci);
	itest_exec(c, "CREATE TABLE ticks (job text, at timestamptz DEFAULT clock_timestamp())");
	itest_exec(c, "GRANT ALL ON ticks TO PUBLIC");
	itest_env_main_with_db(e, name, *ci);
	return c;
}

/* A reload that moves a job to another database, and back, with the other database dropped
 * from the configuration: each run goes to the database its job names at its fire (a job
 * keeps its database's pool, found again when the database changes). */
#define MOVER_JOB                                                                                  \
	"job = { name = \"mover\"; database = \"%s\"; schedule = \"* * * * * *\";\n"               \
	"  command = \"INSERT INTO ticks (job) VALUES ('mover')\"; };\n"
START_TEST(reload_moves_a_job_between_databases)
{
	struct itest_env e;
	env_setup(&e, "movedb", NULL);
	char *ci;
	PGconn *other = second_db(&e, "other", &ci);
	itest_env_job(&e, "10-mover.conf", MOVER_JOB, "app");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 15, "SELECT count(*) >= 2 FROM ticks"),
	              "no runs on app:\n%s", itest_read_file(e.log));

	itest_env_job(&e, "10-mover.conf", MOVER_JOB, "other");
	itest_env_reload(&e);
	ck_assert_msg(itest_wait_sql(other, "SELECT count(*) >= 2 FROM ticks", 15),
	              "no runs on the other database:\n%s", itest_read_file(e.log));
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) >= 2 FROM pgcrond.job_run_details WHERE "
	                             "job_name = 'mover' AND database = 'other' AND "
	                             "status = 'succeeded'"),
	              "no rows of the runs on the other database:\n%s", itest_read_file(e.log));

	/* back, and the other database gone from the configuration */
	itest_env_main(&e, NULL);
	itest_env_job(&e, "10-mover.conf", MOVER_JOB, "app");
	itest_env_reload(&e);
	long long on_app = itest_env_count(&e, "SELECT count(*) FROM ticks");
	ck_assert_msg(itest_env_wait(&e, 15, "SELECT count(*) >= %lld FROM ticks", on_app + 2),
	              "no runs on app again:\n%s", itest_read_file(e.log));
	long long on_other = itest_scalar_ll(other, "SELECT count(*) FROM ticks");
	itest_sleep(2);
	ck_assert_int_eq(itest_scalar_ll(other, "SELECT count(*) FROM ticks"), on_other);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                        "job_name = 'mover' AND status <> 'succeeded' AND "
	                        "return_message IS DISTINCT FROM 'pgcrond was shutting down'"),
	    0);
	PQfinish(other);
	free(ci);
	itest_env_teardown(&e);
}
END_TEST

/* The same move with a run under way in the database the reload removes: the run goes on
 * there to its end (its pool is kept for it, no new run can come) and its row says so, once;
 * the next run goes to the new database; the old one keeps no connection of the daemon. */
#define SLEEPER_JOB                                                                                \
	"job = { name = \"sleeper\"; database = \"%s\"; schedule = \"* * * * * *\";\n"             \
	"  command = \"INSERT INTO ticks (job) VALUES ('sleeper'); SELECT pg_sleep(4)\"; };\n"
START_TEST(reload_moves_a_job_with_a_run_under_way)
{
	struct itest_env e;
	env_setup(&e, "movedbrun", NULL);
	char *ci;
	PGconn *gone = second_db(&e, "gone", &ci);
	itest_env_job(&e, "10-sleeper.conf", SLEEPER_JOB, "gone");
	itest_env_start(&e);
	const char *sleeping = "SELECT count(*) = 1 FROM pg_stat_activity WHERE state = 'active'"
	                       " AND query LIKE '%pg_sleep(4)%' AND pid <> pg_backend_pid()";
	ck_assert_msg(itest_wait_sql(gone, sleeping, 15), "no run under way on gone:\n%s",
	              itest_read_file(e.log));

	/* the job moves to app and gone leaves the configuration, while the run sleeps there */
	char *before = itest_scalar(e.db, "SELECT clock_timestamp()");
	itest_env_main(&e, NULL);
	itest_env_job(&e, "10-sleeper.conf", SLEEPER_JOB, "app");
	itest_env_reload(&e);
	char *after = itest_scalar(e.db, "SELECT clock_timestamp()");
	ck_assert_msg(itest_wait_sql(gone, sleeping, 0.1), "the run ended before the reload");
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) >= 1 FROM pgcrond.job_run_details WHERE "
	                             "database = 'app' AND status = 'succeeded'"),
	              "no run on app after the reload:\n%s", itest_read_file(e.log));
	/* the removed database's connection went with its run, before the daemon stops */
	ck_assert_msg(itest_wait_sql(gone,
	                             "SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = "
	                             "current_database() AND pid <> pg_backend_pid()",
	                             5),
	              "a connection to the removed database stayed");
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);

	/* the run under way: one row, succeeded on gone, started before the reload and ended
	 * after it; none started on gone since */
	ck_assert_int_eq(itest_env_count(&e,
	                                 "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                                 "database = 'gone' AND status = 'succeeded' AND "
	                                 "start_time < '%s' AND end_time > '%s'",
	                                 before, after),
	                 1);
	ck_assert_int_eq(itest_env_count(&e,
	                                 "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                                 "database = 'gone' AND start_time > '%s'",
	                                 before),
	                 0);
	/* each database's work is its rows', each fire has one row, and nothing failed */
	ck_assert_int_eq(itest_scalar_ll(gone, "SELECT count(*) FROM ticks"),
	                 itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                                     "database = 'gone' AND status = 'succeeded'"));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM ticks"),
	                 itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                                     "database = 'app' AND status = 'succeeded'"));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) - count(DISTINCT scheduled_time) "
	                                     "FROM pgcrond.job_run_details"),
	                 0);
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                        "status NOT IN ('succeeded', 'skipped') AND "
	                        "return_message IS DISTINCT FROM 'pgcrond was shutting down'"),
	    0);
	char *log = itest_read_file(e.log);
	ck_assert_msg(!strstr(log, "internal error"), "%s", log);
	free(log);
	free(before);
	free(after);
	PQfinish(gone);
	free(ci);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("daemon");
	TCase *tc = tcase_create("daemon");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, root_is_refused);
	tcase_add_test(tc, every_second_runs_and_is_recorded);
	tcase_add_test(tc, timeout_stops_the_backend);
	tcase_add_test(tc, overlap_policies);
	tcase_add_test(tc, reload_valid_and_invalid);
	tcase_add_test(tc, reload_moves_a_job_between_databases);
	tcase_add_test(tc, reload_moves_a_job_with_a_run_under_way);
	tcase_add_test(tc, crash_then_restart_closes_orphan_once);
	tcase_add_test(tc, refused_connection_records_libpq_error);
	tcase_add_test(tc, sigterm_lets_runs_finish_then_cancels);
	tcase_add_test(tc, cli_trigger_runs_the_job);
	tcase_add_test(tc, long_multibyte_command_is_recorded);
	tcase_add_test(tc, second_sigterm_cancels_at_once);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
