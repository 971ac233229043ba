/* Alerts through the daemon against a real PostgreSQL: a webhook receiver in this process
 * gets the alert JSON, a webhook that is down does not disturb scheduling, and a stale job
 * raises its alert once and its recovery once. */
#include <arpa/inet.h>
#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

#define DB "it_alerts"

/* ---- a webhook receiver: a child process with an evhttp server, appending each request's
 * body (and a newline) to a file ---------------------------------------------------------- */

static const char *hook_file;

static void hook_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	FILE *f = fopen(hook_file, "a");
	if (f) {
		size_t n = evbuffer_get_length(in);
		char *body = malloc(n + 1);
		if (body) {
			evbuffer_copyout(in, body, n);
			fwrite(body, 1, n, f);
			fputc('\n', f);
			free(body);
		}
		fclose(f);
	}
	evhttp_send_reply(req, 200, "OK", NULL);
}

/* Start the receiver writing to FILE; returns its pid and sets *PORT. */
static pid_t hook_start(const char *file, int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert(fd >= 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	ck_assert(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	ck_assert(listen(fd, 16) == 0);
	ck_assert(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	*port = ntohs(sin.sin_port);
	hook_file = file;
	pid_t pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		struct event_base *base = event_base_new();
		struct evhttp *http = base ? evhttp_new(base) : NULL;
		if (!http || evutil_make_socket_nonblocking(fd) != 0 ||
		    evhttp_accept_socket(http, fd) != 0)
			_exit(1);
		evhttp_set_gencb(http, hook_cb, NULL);
		event_base_dispatch(base);
		_exit(0);
	}
	close(fd);
	return pid;
}

static int lines_with(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

START_TEST(webhook_gets_the_alert_and_a_dead_one_does_no_harm)
{
	struct itest_env e;
	char when[32];
	int port;
	itest_env_setup(&e, "webhook", DB);
	char *hook_path = itest_env_path(&e, "hook.txt");
	pid_t hook = hook_start(hook_path, &port);
	/* the first webhook refuses connections (port 1), the second is ours */
	itest_env_main(
	    &e,
	    "alerts = ( { sink = \"webhook\"; url = \"http://127.0.0.1:1/down\"; timeout = \"1s\"; "
	    "},"
	    " { sink = \"webhook\"; url = \"http://127.0.0.1:%d/hook\"; timeout = \"2s\"; } );\n",
	    port);
	itest_env_start(&e);
	/* the job comes with a reload once the daemon runs (itest_env_reload) */
	for (int ahead = 2; ahead;) {
		time_t at = itest_schedule_soon_at(when, sizeof(when), ahead);
		itest_env_job(
		    &e, "10-jobs.conf",
		    "jobs = (\n{ name = \"broken\"; database = \"app\"; schedule = \"%s\"; "
		    "command = \"SELECT 1/0\"; },\n"
		    "{ name = \"tick\"; database = \"app\"; schedule = \"* * * * * *\"; "
		    "command = \"SELECT 1\"; }\n);\n",
		    when);
		itest_env_reload(&e);
		ahead = itest_soon_again(e.log, at, ahead);
	}
	ck_assert_msg(itest_wait_log(hook_path, "\"job\":\"broken\"", 15), "no alert:\n%s",
	              itest_read_file(e.log));
	char *got = itest_read_file(hook_path);
	ck_assert_msg(strstr(got, "\"event\":\"alert\""), "%s", got);
	ck_assert_msg(strstr(got, "\"kind\":\"failed\""), "%s", got);
	ck_assert_msg(strstr(got, "division by zero"), "%s", got);
	free(got);
	/* three fires of the tick after the failure have run (the dead sink's 1 s timeout
	 * within them) */
	itest_env_wait(&e, 15,
	               "SELECT count(*) >= 3 FROM pgcrond.job_run_details WHERE job_name = 'tick'"
	               " AND end_time IS NOT NULL AND scheduled_time > (SELECT start_time"
	               " FROM pgcrond.job_run_details WHERE job_name = 'broken')");
	itest_wait_log(e.log, "http://127.0.0.1:1/...", 15); /* and the dead sink is reported */
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	/* the dead webhook did not hold up the every-second job (a fire due while the daemon
	 * stopped is skipped by policy, and says so): each tick succeeded and started within 3 s
	 * of its instant. The webhooks go out on the loop without blocking it (alert.c); the
	 * slack is a loaded machine's (it was 900 ms); a fire held up longer or missed still
	 * shows */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                                     "job_name = 'tick' AND (status <> 'succeeded' OR "
	                                     "start_time - scheduled_time > interval '3 s')"
	                                     " AND return_message IS DISTINCT FROM"
	                                     " 'pgcrond was shutting down'"),
	                 0);
	ck_assert_int_ge(
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                        "job_name = 'tick' AND scheduled_time > (SELECT start_time "
	                        "FROM pgcrond.job_run_details WHERE job_name = 'broken')"),
	    3);
	char *log = itest_read_file(e.log);
	ck_assert_msg(strstr(log, "http://127.0.0.1:1/..."), "the dead sink is not reported:\n%s",
	              log);
	/* a hook's path and query may hold its secret: never logged */
	ck_assert_msg(!strstr(log, "/down"), "the webhook's path is in the log:\n%s", log);
	free(log);
	got = itest_read_file(hook_path);
	/* alert once, no repeat within alert_repeat */
	ck_assert_msg(lines_with(got, "\"event\":") == 1, "%s", got);
	free(got);
	kill(hook, SIGKILL);
	waitpid(hook, NULL, 0);
	free(hook_path);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(stale_alerts_once_and_recovers_once)
{
	struct itest_env e;
	itest_env_setup(&e, "stale", DB);
	itest_env_main(
	    &e,
	    "alerts = ( { sink = \"log\"; }, { sink = \"exec\"; command = "
	    "\"echo \\\"$PGCROND_ALERT_EVENT $PGCROND_ALERT_KIND $PGCROND_ALERT_JOB\\\" >> "
	    "%s/state/alerts.txt\"; } );\n",
	    e.dir);
	itest_exec(e.db, "CREATE TABLE flag (ok boolean); INSERT INTO flag VALUES (false)");
	/* fails while flag.ok is false: the view it maintains goes stale after 2 s */
	itest_env_job(&e, "10-stale.conf",
	              "job = { name = \"view\"; database = \"app\"; schedule = \"* * * * * *\";"
	              " command = \"SELECT 1 / ok::int FROM flag\";"
	              " max_staleness = \"2s\"; alert_after = 100; };\n");
	itest_env_start(&e);
	char *path = itest_env_path(&e, "state/alerts.txt");
	itest_wait_log(path, "alert stale view", 10);
	char *a = itest_read_file(path);
	ck_assert_msg(strstr(a, "alert stale view"), "no stale alert:\n%s\n%s", a,
	              itest_read_file(e.log));
	free(a);
	itest_sleep(2.5); /* still stale: no second alert */
	itest_exec(e.db, "UPDATE flag SET ok = true");
	ck_assert(itest_env_wait(&e, 15,
	                         "SELECT count(*) > 0 FROM pgcrond.job_run_details WHERE "
	                         "job_name = 'view' AND status = 'succeeded'"));
	/* the exec sink writes the recovery (a process of its own, a moment after the run) */
	ck_assert_msg(itest_wait_log(path, "recovered stale view", 10), "no recovery:\n%s",
	              itest_read_file(path));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	a = itest_read_file(path);
	ck_assert_msg(lines_with(a, "alert stale view") == 1, "alerts:\n%s", a);
	ck_assert_msg(lines_with(a, "recovered stale view") == 1, "alerts:\n%s", a);
	/* alert_after = 100: single failures are not alerted */
	ck_assert_msg(lines_with(a, "failed view") == 0, "alerts:\n%s", a);
	free(a);
	free(path);
	itest_env_teardown(&e);
}
END_TEST

/* A run longer than warn_duration alerts while it runs (the run is not stopped), and says
 * so once; its end is the recovery. */
START_TEST(slow_run_alerts_while_running)
{
	struct itest_env e;
	itest_env_setup(&e, "slow", DB);
	itest_env_main(
	    &e,
	    "alerts = ( { sink = \"exec\"; command = "
	    "\"echo \\\"$PGCROND_ALERT_EVENT $PGCROND_ALERT_KIND $PGCROND_ALERT_JOB\\\" >> "
	    "%s/state/alerts.txt\"; } );\n",
	    e.dir);
	/* run once the daemon is up (a fire 2 s ahead passed before a loaded machine's start) */
	/* its statement waits for a lock the test holds: the run is provably under way when the
	 * alert comes, and it ends when the test lets it */
	itest_env_job(&e, "10-slow.conf",
	              "job = { name = \"slowpoke\"; database = \"app\"; schedule = \"0 0 1 1 *\";"
	              " command = \"SELECT pg_advisory_xact_lock(4921)\"; warn_duration = \"1s\";"
	              " };\n");
	PGconn *holder = itest_connect(e.ci);
	itest_exec(holder, "SELECT pg_advisory_lock(4921)");
	itest_env_start(&e);
	int status = -1;
	char *out = itest_cli(&status, "trigger", "-c", e.conf, "slowpoke", NULL);
	ck_assert_msg(status == 0, "trigger: %d %s", status, out);
	free(out);
	char *path = itest_env_path(&e, "state/alerts.txt");
	/* the alert comes while the statement still runs */
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 1 FROM pg_stat_activity WHERE query ="
	                             " 'SELECT pg_advisory_xact_lock(4921)' AND state = 'active'"),
	              "the slow run never started:\n%s", itest_read_file(e.log));
	itest_wait_log(path, "alert slow slowpoke", 20);
	char *a = itest_read_file(path);
	ck_assert_msg(strstr(a, "alert slow slowpoke"), "no slow alert:\n%s\n%s", a,
	              itest_read_file(e.log));
	free(a);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pg_stat_activity WHERE query ="
	                                     " 'SELECT pg_advisory_xact_lock(4921)'"
	                                     " AND state = 'active'"),
	                 1);
	PQfinish(holder);
	/* the run is not cut short: it succeeds */
	ck_assert(itest_env_wait(&e, 20,
	                         "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE "
	                         "job_name = 'slowpoke' AND status = 'succeeded'"));
	itest_sleep(0.5);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	a = itest_read_file(path);
	ck_assert_msg(lines_with(a, "alert slow slowpoke") == 1, "alerts:\n%s", a);
	free(a);
	free(path);
	itest_env_teardown(&e);
}
END_TEST

/* Staleness counts from the last success in the history, not from the daemon's start: a
 * view last refreshed an hour ago is stale as soon as pgcrond starts. */
START_TEST(stale_after_restart_counts_from_history)
{
	struct itest_env e;
	itest_env_setup(&e, "stale-restart", DB);
	itest_env_main(&e,
	               "alerts = ( { sink = \"exec\"; command = "
	               "\"echo \\\"$PGCROND_ALERT_EVENT $PGCROND_ALERT_KIND $PGCROND_ALERT_JOB "
	               "$PGCROND_ALERT_MESSAGE\\\" >> %s/state/alerts.txt\"; } );\n",
	               e.dir);
	itest_exec(e.db,
	           "INSERT INTO pgcrond.job_run_details (job_name, status, trigger, "
	           "start_time, end_time, instance, run_key) VALUES ('old-view', 'succeeded', "
	           "'schedule', now() - interval '61 minutes', now() - interval '60 minutes', "
	           "'an-earlier-host', 'k1')");
	itest_env_job(&e, "10-old.conf",
	              "job = { name = \"old-view\"; database = \"app\"; schedule = \"0 0 1 1 *\";"
	              " command = \"SELECT 1\"; max_staleness = \"30s\"; catchup = \"skip\"; };\n");
	itest_env_start(&e);
	char *path = itest_env_path(&e, "state/alerts.txt");
	itest_wait_log(path, "alert stale old-view", 10);
	char *a = itest_read_file(path);
	ck_assert_msg(strstr(a, "alert stale old-view last success 1h"),
	              "no stale alert within 10 s of the start (max_staleness 30s):\n%s\n%s", a,
	              itest_read_file(e.log));
	free(a);
	free(path);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* What an operator reads: the exec sink gets the JSON on its standard input (and in
 * PGCROND_ALERT_JSON), a log line says "failed" once, a disabled job raises no stale alert, and
 * a job removed while it runs raises no slow alert ("more than 0s"). */
START_TEST(alerts_say_things_once)
{
	struct itest_env e;
	itest_env_setup(&e, "once", DB);
	itest_env_main(&e,
	               "alerts = ( { sink = \"log\"; }, { sink = \"exec\"; command = "
	               "\"cat >> %s/state/stdin.txt; echo \\\"$PGCROND_ALERT_EVENT "
	               "$PGCROND_ALERT_KIND $PGCROND_ALERT_JOB $PGCROND_ALERT_MESSAGE\\\" >> "
	               "%s/state/alerts.txt\"; } );\n",
	               e.dir, e.dir);
	itest_env_job(&e, "10-broken.conf",
	              "job = { name = \"broken\"; database = \"app\"; schedule = \"* * * * * *\";"
	              " command = \"SELECT 1 / 0\"; };\n");
	itest_env_job(&e, "20-off.conf",
	              "job = { name = \"off\"; database = \"app\"; schedule = \"* * * * * *\";"
	              " command = \"SELECT 1\"; enabled = false; max_staleness = \"1s\"; };\n");
	char sched[64];
	itest_env_start(&e);
	/* the job comes with a reload once the daemon runs (itest_env_reload), written again
	 * if the reload began after the fire (itest_soon_again) */
	for (int ahead = 2; ahead;) {
		time_t at = itest_schedule_soon_at(sched, sizeof(sched), ahead);
		itest_env_job(&e, "30-leaving.conf",
		              "job = { name = \"leaving\"; database = \"app\"; schedule = \"%s\";"
		              " command = \"SELECT pg_sleep(6)\"; warn_duration = \"4s\"; };\n",
		              sched);
		itest_env_reload(&e);
		ahead = itest_soon_again(e.log, at, ahead);
	}
	char *stdin_path = itest_env_path(&e, "state/stdin.txt");
	char *path = itest_env_path(&e, "state/alerts.txt");

	/* remove "leaving" while its run is in flight */
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pg_stat_activity WHERE "
	                             "query = 'SELECT pg_sleep(6)' AND state = 'active'"),
	              "the long run never started:\n%s", itest_read_file(e.log));
	char *job_file = itest_env_path(&e, "conf.d/30-leaving.conf");
	ck_assert_int_eq(unlink(job_file), 0);
	free(job_file);
	kill(e.pid, SIGHUP);
	ck_assert(itest_wait_log(e.log, "reload: removed job \"leaving\"", 20));
	/* its run ends (6 s) well after its old warn_duration (4 s) */
	ck_assert(itest_env_wait(&e, 15,
	                         "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE "
	                         "job_name = 'leaving' AND end_time IS NOT NULL"));
	itest_sleep(0.5);
	ck_assert_msg(itest_wait_log(stdin_path, "\"kind\":\"failed\",\"job\":\"broken\"", 15),
	              "no JSON on stdin:\n%s\n%s", itest_read_file(stdin_path),
	              itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);

	char *a = itest_read_file(path), *log = itest_read_file(e.log),
	     *in = itest_read_file(stdin_path);
	/* stdin and the environment carry the same alert */
	ck_assert_msg(strstr(a, "alert failed broken division by zero (SQLSTATE 22012)"), "%s", a);
	ck_assert_msg(strncmp(in, "{\"event\":\"alert\",", 17) == 0, "stdin: %s", in);
	/* each thing once */
	ck_assert_msg(strstr(log, "ALERT failed: division by zero (SQLSTATE 22012)"), "%s", log);
	ck_assert_msg(!strstr(log, "failed: failed"), "%s", log);
	ck_assert_msg(lines_with(a, " off") == 0, "a disabled job alerted:\n%s", a);
	ck_assert_msg(lines_with(a, "leaving") == 0, "a removed job alerted:\n%s", a);
	free(a);
	free(log);
	free(in);
	free(path);
	free(stdin_path);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("alerts");
	TCase *tc = tcase_create("alerts");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, webhook_gets_the_alert_and_a_dead_one_does_no_harm);
	tcase_add_test(tc, stale_alerts_once_and_recovers_once);
	tcase_add_test(tc, slow_run_alerts_while_running);
	tcase_add_test(tc, stale_after_restart_counts_from_history);
	tcase_add_test(tc, alerts_say_things_once);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
