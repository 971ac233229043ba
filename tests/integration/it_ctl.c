/* Talking to the running daemon against a real PostgreSQL: `pgcrond
 * status` shows a run under way with its backend pid (the one pg_stat_activity lists as
 * application_name 'pgcrond: JOB'), `trigger --wait` exits with the run's outcome, `pause`
 * stops a job's runs at once and across a restart, `resume` serves what came due by the
 * catch-up policy, and every command exits 69 when no daemon answers. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "itest.h"
#include "text.h"

#define DB "it_ctl"

/* `pgcrond install` (the registry), plus step 5 (pgcrond.job.paused): applied by install
 * once steps 3 and 4 sit beside it; idempotent, so applying it here again is harmless. */
static void install(struct itest_env *e)
{
	int status;
	char *out = itest_cli(&status, "install", "-c", e->conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	free(out);
	char path[512];
	snprintf(path, sizeof(path), "%s/../sql/pgcrond--5.sql", TEST_SOURCE_DIR);
	char *sql = itest_read_file(path);
	ck_assert_msg(sql[0], "no sql/pgcrond--5.sql");
	itest_exec(e->db, sql);
	free(sql);
}

static json_t *job_of(json_t *st, const char *name)
{
	size_t i;
	json_t *j;
	json_array_foreach(json_object_get(st, "jobs"), i, j)
	{
		if (strcmp(json_string_value(json_object_get(j, "name")), name) == 0)
			return j;
	}
	ck_abort_msg("job %s is not in the status", name);
	return NULL;
}

/* One raw exchange on the daemon's socket as a tool like `nc -U -N` would do it: send LINE,
 * shut down the sending side, read until the daemon closes. Malloc'd. */
static char *raw_exchange(struct itest_env *e, const char *line)
{
	char *path = itest_env_path(e, "state/pgcrond.sock");
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	ck_assert(fd >= 0 && strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s", path);
	ck_assert(write(fd, line, strlen(line)) == (ssize_t)strlen(line));
	shutdown(fd, SHUT_WR);
	char *buf = calloc(1, 1 << 16);
	size_t len = 0;
	ssize_t r;
	while (len < (1 << 16) - 1) {
		r = read(fd, buf + len, (1 << 16) - 1 - len);
		if (r < 0 && errno == EINTR)
			continue; /* the test's own children exiting */
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	free(path);
	return buf;
}

START_TEST(status_trigger_wait_and_no_daemon)
{
	struct itest_env e;
	int status;
	char *out;

	itest_env_init(&e, "ctl-status", DB);
	itest_env_job(&e, "10-jobs.conf",
	              "jobs = (\n"
	              "  { name = \"slow\"; database = \"app\"; schedule = \"0 0 1 1 *\";\n"
	              "    command = \"SELECT pg_sleep(8)\"; },\n"
	              "  { name = \"broken\"; database = \"app\"; schedule = \"0 0 1 1 *\";\n"
	              "    command = \"SELECT 1/0\"; },\n"
	              "  { name = \"yearly\"; database = \"app\"; schedule = \"0 0 1 1 *\";\n"
	              "    command = \"SELECT 1\"; },\n"
	              "  { name = \"flaky\"; database = \"app\"; schedule = \"0 0 1 1 *\";\n"
	              "    command = \"SELECT 1/0\"; retries = 1; retry_delay = \"1s\";\n"
	              "    retry_on = \"any\"; },\n"
	              "  { name = \"heard\"; database = \"app\"; listen = \"it_ctl_ch\";\n"
	              "    debounce = \"30s\"; max_delay = \"60s\"; command = \"SELECT 1\"; }\n"
	              ");\n");
	install(&e);
	itest_env_start(&e);
	/* the socket: the daemon's user and group only */
	char *sock = itest_env_path(&e, "state/pgcrond.sock");
	struct stat sb;
	ck_assert_int_eq(stat(sock, &sb), 0);
	ck_assert(S_ISSOCK(sb.st_mode));
	ck_assert_int_eq(sb.st_mode & 0777, 0660);
	free(sock);

	/* the protocol as a plain tool speaks it: answers in order, errors that say why */
	out = raw_exchange(&e, "{\"cmd\":\"status\",\"job\":\"yearly\"}\n{\"cmd\":\"stop\"}\n"
	                       "{\"cmd\":\"pause\"}\n");
	ck_assert_msg(strncmp(out, "{\"ok\":true,\"status\":{", 21) == 0 &&
	                  strstr(out, "\n{\"ok\":false,\"code\":\"bad_request\",\"error\":\"bad "
	                              "request: unknown cmd \\\"stop\\\"") &&
	                  strstr(out, "needs \\\"job\\\"\"}\n"),
	              "raw exchange: %s", out);
	free(out);

	/* the daemon's part */
	json_t *st = itest_env_status(&e, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(st, "version")), PGCROND_VERSION);
	ck_assert_int_eq(json_array_size(json_object_get(st, "jobs")), 5);
	ck_assert_str_eq(json_string_value(json_object_get(
	                     json_array_get(json_object_get(st, "databases"), 0), "name")),
	                 "app");
	ck_assert(json_is_true(json_object_get(json_object_get(st, "history"), "connected")) ||
	          json_is_false(json_object_get(json_object_get(st, "history"), "connected")));
	json_t *y = job_of(st, "yearly");
	ck_assert_str_eq(json_string_value(json_object_get(y, "state")), "idle");
	ck_assert_msg(
	    strncmp(json_string_value(json_object_get(y, "next_fire")), "20", 2) == 0 &&
	        strstr(json_string_value(json_object_get(y, "next_fire")), "-01-01T00:00:00Z"),
	    "next_fire of yearly: %s", json_string_value(json_object_get(y, "next_fire")));
	json_decref(st);

	/* a run under way: status names its backend, which pg_stat_activity shows as the job */
	out = itest_cli(&status, "trigger", "-c", e.conf, "slow", NULL);
	ck_assert_msg(status == 0 && strstr(out, "the daemon started slow"), "trigger: %d %s",
	              status, out);
	free(out);
	ck_assert_msg(
	    itest_env_wait(&e, 15,
	                   "SELECT count(*) = 1 FROM pg_stat_activity WHERE "
	                   "application_name = 'pgcrond: slow' AND query LIKE '%%pg_sleep%%'"),
	    "no backend with application_name 'pgcrond: slow':\n%s", itest_read_file(e.log));
	long long pid = itest_env_count(
	    &e, "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgcrond: slow'");
	st = itest_env_status(&e, "slow");
	json_t *j = job_of(st, "slow");
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "running");
	json_t *run = json_object_get(j, "running");
	ck_assert_int_eq(json_integer_value(json_object_get(run, "backend_pid")), pid);
	ck_assert_str_eq(json_string_value(json_object_get(run, "database")), "app");
	ck_assert(json_number_value(json_object_get(run, "elapsed_s")) >= 0);
	json_decref(st);
	out = itest_cli(&status, "status", "-c", e.conf, NULL);
	ck_assert_msg(status == 0 && strstr(out, "running") && strstr(out, "slow"), "status: %s",
	              out);
	free(out);

	/* --wait while it runs: overlap = skip, so this fire is skipped, and says so (8 s: a
	 * loaded machine can take over 3 s to get here) */
	out = itest_cli(&status, "trigger", "-c", e.conf, "--wait", "slow", NULL);
	ck_assert_msg(status == 1 && strstr(out, "skipped") && strstr(out, "overlap = skip"),
	              "trigger --wait on a busy job: %d %s", status, out);
	free(out);
	ck_assert(
	    itest_env_wait(&e, 20,
	                   "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE job_name = "
	                   "'slow' AND status = 'succeeded'"));
	out = itest_cli(&status, "trigger", "-c", e.conf, "--wait", "slow", NULL);
	ck_assert_msg(status == 0 && strstr(out, "slow succeeded"), "trigger --wait: %d %s", status,
	              out);
	free(out);
	out = itest_cli(&status, "trigger", "-c", e.conf, "--wait", "broken", NULL);
	ck_assert_msg(status == 1 && strstr(out, "division by zero") && strstr(out, "22012"),
	              "trigger --wait on a failing job: %d %s", status, out);
	free(out);
	/* --wait hears the final attempt, after the retry */
	out = itest_cli(&status, "trigger", "-c", e.conf, "--wait", "flaky", NULL);
	ck_assert_msg(status == 1 && strstr(out, "flaky failed") && strstr(out, "(attempt 2)"),
	              "trigger --wait on a retried job: %d %s", status, out);
	free(out);
	ck_assert(
	    itest_env_wait(&e, 15,
	                   "SELECT count(*) = 2 FROM pgcrond.job_run_details WHERE job_name = "
	                   "'flaky' AND status = 'failed'"));

	/* notifications being debounced: their count and when the run is due */
	ck_assert(itest_env_listening(&e, 10));
	itest_exec(e.db, "SELECT pg_notify('it_ctl_ch', 'a'), pg_notify('it_ctl_ch', 'b')");
	json_t *deb = NULL;
	for (int i = 0; i < 50 && !deb; i++) {
		st = itest_env_status(&e, "heard");
		json_t *d = json_object_get(job_of(st, "heard"), "debounce");
		if (d && json_integer_value(json_object_get(d, "payloads")) == 2)
			deb = json_incref(job_of(st, "heard"));
		json_decref(st);
		if (!deb)
			itest_sleep(0.1);
	}
	ck_assert_msg(deb != NULL, "no debouncing state:\n%s", itest_read_file(e.log));
	ck_assert_str_eq(json_string_value(json_object_get(deb, "state")), "debouncing");
	ck_assert_str_eq(
	    json_string_value(json_object_get(deb, "next_fire")),
	    json_string_value(json_object_get(json_object_get(deb, "debounce"), "due")));
	json_decref(deb);

	out =
	    itest_cli(&status, "trigger", "-c", e.conf, "--wait", "--timeout", "1s", "slow", NULL);
	ck_assert_msg(status == 75 && strstr(out, "goes on"), "--timeout: %d %s", status, out);
	free(out);
	out = itest_cli(&status, "trigger", "-c", e.conf, "--wait", "nosuch", NULL);
	ck_assert_msg(status == 64 && strstr(out, "no job \"nosuch\""), "unknown job: %d %s",
	              status, out);
	free(out);

	/* the last result, whole */
	st = itest_env_status(&e, "broken");
	json_t *last = json_object_get(job_of(st, "broken"), "last_result");
	ck_assert_str_eq(json_string_value(json_object_get(last, "status")), "failed");
	ck_assert_str_eq(json_string_value(json_object_get(last, "sqlstate")), "22012");
	ck_assert(strstr(json_string_value(json_object_get(last, "message")), "division by zero"));
	json_decref(st);
	out = itest_cli(&status, "status", "-c", e.conf, "nosuch", NULL);
	ck_assert_msg(status == 64 && strstr(out, "no job \"nosuch\" is configured"),
	              "status of an unknown job: %d %s", status, out);
	free(out);

	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);

	/* nobody answers: 69, never a claimed success */
	out = itest_cli(&status, "status", "-c", e.conf, NULL);
	ck_assert_msg(status == 69 && strstr(out, "no pgcrond answers"), "status: %d %s", status,
	              out);
	free(out);
	out = itest_cli(&status, "pause", "-c", e.conf, "slow", NULL);
	ck_assert_int_eq(status, 69);
	free(out);
	out =
	    itest_cli(&status, "trigger", "-c", e.conf, "--wait", "--timeout", "1s", "slow", NULL);
	ck_assert_msg(status == 69 && strstr(out, "no daemon answered"),
	              "trigger --wait without a daemon: %d %s", status, out);
	free(out);
	out = itest_cli(&status, "trigger", "-c", e.conf, "--timeout", "1s", "slow", NULL);
	ck_assert_msg(status == 69 && strstr(out, "no daemon answered"),
	              "trigger without a daemon: %d %s", status, out);
	free(out);
	itest_env_teardown(&e);
}
END_TEST

/* Plain trigger from a host without the daemon's socket: the request goes through
 * pgcrond.trigger() and the command waits for the daemon's answer. */
START_TEST(trigger_through_the_database)
{
	struct itest_env e;
	int status;
	char *out;

	itest_env_init(&e, "ctl-remote", DB);
	itest_exec(e.db, "CREATE TABLE ticks (job text)");
	itest_env_job(&e, "10-jobs.conf",
	              "jobs = (\n"
	              "  { name = \"once\"; database = \"app\"; schedule = \"0 0 1 1 *\";\n"
	              "    command = \"INSERT INTO ticks VALUES ('once')\"; },\n"
	              "  { name = \"bad\"; database = \"app\"; schedule = \"0 0 1 1 *\";\n"
	              "    command = \"SELECT 1/0\"; }\n"
	              ");\n");
	install(&e);
	itest_env_start(&e);
	ck_assert(itest_env_listening(&e, 10));
	char *other = itest_env_other_host(&e);
	out = itest_cli(&status, "trigger", "-c", other, "once", NULL);
	ck_assert_msg(status == 0 && strstr(out, "the daemon started once") &&
	                  strstr(out, "pgcrond.trigger_request"),
	              "trigger through the database: %d %s", status, out);
	free(out);
	ck_assert(itest_env_wait(&e, 10, "SELECT count(*) = 1 FROM ticks"));
	/* --wait from there: the daemon announces the run's end */
	out = itest_cli(&status, "trigger", "-c", other, "--wait", "once", NULL);
	ck_assert_msg(status == 0 && strstr(out, "once succeeded: INSERT 0 1"),
	              "trigger --wait through the database: %d %s", status, out);
	free(out);
	out = itest_cli(&status, "trigger", "-c", other, "--wait", "--timeout", "20s", "bad", NULL);
	ck_assert_msg(status == 1 && strstr(out, "bad failed 22012: division by zero"),
	              "trigger --wait through the database, failing: %d %s", status, out);
	free(out);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM ticks"), 2);
	free(other);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(pause_resume_persist_and_catch_up)
{
	struct itest_env e;
	int status;
	char *out;

	itest_env_init(&e, "ctl-pause", DB);
	itest_exec(e.db, "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp())");
	itest_env_job(&e, "10-jobs.conf",
	              "job = { name = \"tick\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	              "        command = \"INSERT INTO ticks DEFAULT VALUES\"; };\n");
	install(&e);
	itest_env_start(&e);
	ck_assert(itest_env_wait(&e, 20, "SELECT count(*) >= 1 FROM ticks"));

	out = itest_cli(&status, "pause", "-c", e.conf, "tick", NULL);
	ck_assert_msg(status == 0 && strstr(out, "paused tick"), "pause: %d %s", status, out);
	free(out);
	/* a fire already at its instant when the pause came goes on as a run under way does
	 * (its claim may take a while on a loaded machine): the count settles first */
	long long n0 = -1;
	for (int i = 0; i < 10; i++) {
		long long n = itest_env_count(&e, "SELECT count(*) FROM ticks");
		if (n == n0)
			break;
		n0 = n;
		itest_sleep(1.2);
	}
	ck_assert_msg(
	    itest_env_wait(&e, 10, "SELECT paused FROM pgcrond.job WHERE jobname = 'tick'"),
	    "pgcrond.job.paused not recorded:\n%s", itest_read_file(e.log));
	json_t *st = itest_env_status(&e, "tick");
	ck_assert_str_eq(json_string_value(json_object_get(job_of(st, "tick"), "state")), "paused");
	ck_assert(json_is_true(json_object_get(job_of(st, "tick"), "paused")));
	json_decref(st);
	out = itest_cli(&status, "pause", "-c", e.conf, "tick", NULL);
	ck_assert_msg(status == 0 && strstr(out, "already paused"), "pause again: %d %s", status,
	              out);
	free(out);
	itest_sleep(2); /* a window: a paused job does not run */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM ticks"), n0);

	/* a restart keeps it paused, also after a crash (the socket file left behind is
	 * replaced) */
	ck_assert_int_eq(itest_env_stop(&e, SIGKILL, 10), 128 + SIGKILL);
	char *paused = itest_env_path(&e, "state/paused");
	char *text = itest_read_file(paused);
	ck_assert_str_eq(text, "tick\n");
	free(text);
	free(paused);
	itest_env_start(&e);
	ck_assert_msg(itest_wait_log(e.log, "job tick is paused", 30),
	              "no notice of the paused job:\n%s", itest_tail(e.log));
	itest_sleep(1.5); /* a window: nor after the restart */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM ticks"), n0);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE trigger = 'catchup'"),
	                 0);

	/* resume: the fires missed meanwhile are one catch-up run (catchup = once), then the
	 * schedule goes on */
	out = itest_cli(&status, "resume", "-c", e.conf, "tick", NULL);
	ck_assert_msg(status == 0 && strstr(out, "resumed tick"), "resume: %d %s", status, out);
	free(out);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE "
	                             "job_name = 'tick' AND trigger = 'catchup' AND status = "
	                             "'succeeded'"),
	              "no catch-up run after resume:\n%s", itest_read_file(e.log));
	ck_assert(itest_env_wait(&e, 20, "SELECT count(*) >= %lld FROM ticks", n0 + 3));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE trigger = 'catchup'"),
	                 1);
	ck_assert(
	    itest_env_wait(&e, 10, "SELECT NOT paused FROM pgcrond.job WHERE jobname = 'tick'"));
	out = itest_cli(&status, "resume", "-c", e.conf, "tick", NULL);
	ck_assert_msg(status == 0 && strstr(out, "was not paused"), "resume again: %d %s", status,
	              out);
	free(out);
	out = itest_cli(&status, "pause", "-c", e.conf, "nosuch", NULL);
	ck_assert_msg(status == 64 && strstr(out, "no job \"nosuch\""), "pause nosuch: %d %s",
	              status, out);
	free(out);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* `list`, the log and status name each plugin's version; a .so replaced on disk is logged
 * at reload; `history --run` shows a failed run whole (DETAIL, HINT, SQLSTATE ...). */
START_TEST(plugin_versions_and_history_run)
{
	struct itest_env e;
	int status;
	char *out, path[512];

	itest_env_init(&e, "ctl-plugins", DB);
	snprintf(path, sizeof(path), "%s/example.so", PLUGIN_BUILD_DIR);
	itest_env_plugin(&e, path, "example");
	itest_env_job(
	    &e, "10-jobs.conf",
	    "jobs = (\n"
	    "  { name = \"view\"; plugin = \"example\"; schedule = \"0 0 1 1 *\"; },\n"
	    "  { name = \"boom\"; database = \"app\"; schedule = \"0 0 1 1 *\";\n"
	    "    command = \"DO $$ BEGIN RAISE EXCEPTION 'boom at %%', 42 USING DETAIL = "
	    "'the whole detail', HINT = 'the hint to follow', ERRCODE = 'P0001'; END $$\"; }\n"
	    ");\n");
	install(&e);
	out = itest_cli(&status, "list", "-c", e.conf, NULL);
	ck_assert_msg(status == 0 && strstr(out, "plugin example 1.0.0"), "list: %d %s", status,
	              out);
	/* and what a fault may do to each (docs/faults.md): a DO block may COMMIT inside */
	char *boom = strstr(out, "\nboom "), *viewl = strstr(out, "\nview ");
	ck_assert_msg(boom && viewl && strstr(out, "ONCE (FAULTS)"), "list: %s", out);
	*strchr(boom + 1, '\n') = '\0';
	*strchr(viewl + 1, '\n') = '\0';
	ck_assert_msg(strstr(boom + 1, " fenced: procedure ") &&
	                  strstr(viewl + 1, " fenced: plugin "),
	              "list:\n%s\n%s", boom + 1, viewl + 1);
	free(out);
	itest_env_start(&e);
	ck_assert_msg(itest_wait_log(e.log, "plugin example 1.0.0", 10),
	              "no plugin version logged:\n%s", itest_read_file(e.log));
	json_t *st = itest_env_status(&e, NULL);
	json_t *p0 = json_array_get(json_object_get(st, "plugins"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(p0, "name")), "example");
	ck_assert_str_eq(json_string_value(json_object_get(p0, "version")), "1.0.0");
	json_decref(st);

	/* a failed run, whole */
	out = itest_cli(&status, "trigger", "-c", e.conf, "--wait", "boom", NULL);
	ck_assert_msg(status == 1 && strstr(out, "boom at 42"), "trigger --wait boom: %d %s",
	              status, out);
	free(out);
	ck_assert(
	    itest_env_wait(&e, 10,
	                   "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE job_name = "
	                   "'boom' AND status = 'failed'"));
	long long id = itest_env_count(
	    &e, "SELECT runid FROM pgcrond.job_run_details WHERE job_name = 'boom'");
	char ids[32];
	snprintf(ids, sizeof(ids), "%lld", id);
	out = itest_cli(&status, "history", "-c", e.conf, "--run", ids, NULL);
	ck_assert_msg(status == 0 && strstr(out, "message        boom at 42") &&
	                  strstr(out, "DETAIL         the whole detail") &&
	                  strstr(out, "HINT           the hint to follow") &&
	                  strstr(out, "SQLSTATE       P0001") && strstr(out, "instance ") &&
	                  strstr(out, "trigger        manual") && strstr(out, "attempt        1"),
	              "history --run: %d %s", status, out);
	free(out);
	out = itest_cli(&status, "history", "-c", e.conf, "--run", ids, "--json", NULL);
	json_t *run = json_loads(out, 0, NULL);
	ck_assert_msg(status == 0 && run, "history --run --json: %d %s", status, out);
	ck_assert_str_eq(json_string_value(json_object_get(run, "sqlstate")), "P0001");
	ck_assert_int_eq(json_integer_value(json_object_get(run, "attempt")), 1);
	ck_assert_msg(strlen(json_string_value(json_object_get(run, "start_time"))) == 27 &&
	                  json_string_value(json_object_get(run, "start_time"))[26] == 'Z',
	              "start_time: %s", json_string_value(json_object_get(run, "start_time")));
	ck_assert(
	    strstr(json_string_value(json_object_get(run, "return_message")), "HINT: the hint"));
	json_decref(run);
	free(out);
	/* a duration as the history rounds it (0.1 ms), not as a double's 17 digits */
	itest_exec(e.db, "UPDATE pgcrond.job_run_details SET duration_ms = 2.1");
	out = itest_cli(&status, "history", "-c", e.conf, "--run", ids, "--json", NULL);
	ck_assert_msg(status == 0 && strstr(out, "\"duration_ms\": 2.1,"), "--run --json: %s", out);
	free(out);
	out = itest_cli(&status, "history", "-c", e.conf, "--json", NULL);
	ck_assert_msg(status == 0 && strstr(out, "\"duration_ms\": 2.1,"), "--json: %s", out);
	free(out);
	out = itest_cli(&status, "history", "-c", e.conf, "--since", "1h", "--json", NULL);
	json_t *arr = json_loads(out, 0, NULL);
	ck_assert_msg(status == 0 && json_array_size(arr) == 1, "history --since 1h --json: %d %s",
	              status, out);
	json_decref(arr);
	free(out);
	out = itest_cli(&status, "history", "-c", e.conf, "--since", "2999-01-01", NULL);
	ck_assert_msg(status == 0 && strstr(out, "no runs recorded"),
	              "history --since future: %d %s", status, out);
	free(out);
	out = itest_cli(&status, "history", "-c", e.conf, "--since", "yesterdayish", NULL);
	ck_assert_msg(status == 64 && strstr(out, "neither a duration"), "--since bogus: %d %s",
	              status, out);
	free(out);
	out = itest_cli(&status, "history", "-c", e.conf, "--run", "999999", NULL);
	ck_assert_msg(status == 65 && strstr(out, "no run 999999"), "--run unknown: %d %s", status,
	              out);
	free(out);

	/* a package upgrade replaces the .so: the reload says it needs a restart */
	char *tmp = itest_env_path(&e, "plugins/example.so.new");
	char *dst = itest_env_path(&e, "plugins/example.so");
	itest_copy_file(path, tmp, 0755);
	ck_assert(rename(tmp, dst) == 0);
	kill(e.pid, SIGHUP);
	ck_assert_msg(itest_wait_log(e.log, "was replaced on disk", 5) &&
	                  itest_wait_log(e.log, "restart pgcrond to load it", 10),
	              "a replaced plugin was not logged:\n%s", itest_read_file(e.log));
	free(tmp);
	free(dst);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* The control channel needs no database: with the only database (and so the history)
 * unreachable, status answers and says so, and pause works. */
START_TEST(works_while_the_database_is_down)
{
	struct itest_env e;
	int status;
	char *out;

	itest_env_init(&e, "ctl-down", DB);
	char *text = itest_read_file(e.conf);
	char *ci = strstr(text, e.ci);
	ck_assert(ci != NULL);
	*ci = '\0';
	itest_write_file(e.conf, "%shost=/nonexistent port=1 dbname=gone%s", text,
	                 ci + strlen(e.ci));
	free(text);
	itest_env_job(&e, "10-jobs.conf",
	              "job = { name = \"nightly\"; database = \"app\"; schedule = \"0 3 * * *\";\n"
	              "        command = \"SELECT 1\"; };\n");
	itest_env_start(&e);
	json_t *st = NULL;
	for (int i = 0; i < 50; i++) { /* until the first connect attempt has failed */
		st = itest_env_status(&e, NULL);
		json_t *db = json_array_get(json_object_get(st, "databases"), 0);
		if (json_is_false(json_object_get(db, "reachable")))
			break;
		json_decref(st);
		st = NULL;
		itest_sleep(0.1);
	}
	ck_assert_msg(st != NULL, "the database never showed as unreachable:\n%s",
	              itest_read_file(e.log));
	json_t *db = json_array_get(json_object_get(st, "databases"), 0);
	ck_assert(strstr(json_string_value(json_object_get(db, "last_error")), "/nonexistent"));
	ck_assert(json_is_false(json_object_get(json_object_get(st, "history"), "connected")));
	ck_assert_str_eq(json_string_value(json_object_get(job_of(st, "nightly"), "state")),
	                 "idle");
	json_decref(st);
	out = itest_cli(&status, "status", "-c", e.conf, NULL);
	ck_assert_msg(status == 0 && strstr(out, "UNREACHABLE") && strstr(out, "NOT connected"),
	              "status: %d %s", status, out);
	free(out);
	out = itest_cli(&status, "pause", "-c", e.conf, "nightly", NULL);
	ck_assert_msg(status == 0 && strstr(out, "paused nightly"), "pause: %d %s", status, out);
	free(out);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* Line LINE_WITH's display column (text_width) where CELL starts in it: a table whose
 * columns line up gives every row's cell of a column the same. */
static size_t column_of(const char *text, const char *line_with, const char *cell)
{
	const char *at = strstr(text, line_with);
	ck_assert_msg(at != NULL, "no line with %s in:\n%s", line_with, text);
	at += *at == '\n';
	const char *line = at;
	while (line > text && line[-1] != '\n')
		line--;
	const char *c = strstr(at, cell);
	ck_assert_msg(c && !memchr(line, '\n', (size_t)(c - line)), "no %s after %s in:\n%s", cell,
	              line_with, text);
	char prefix[1024];
	snprintf(prefix, sizeof(prefix), "%.*s", (int)(c - line), line);
	return text_width(prefix);
}

/* What status and list say of each job, in the words of docs/calendars.md and
 * docs/operations.md: the overview's SCHEDULE column with a spread and a calendar; no
 * database for an HTTP job; columns that line up for names with accents and CJK letters; and
 * a bad recurrence rule refused by cron.schedule with a hint about recurrence rules. */
START_TEST(status_and_list_words)
{
	struct itest_env e;
	int status;
	char *out;

	itest_env_init(&e, "ctl-words", DB);
	char *ics = itest_env_path(&e, "hol.ics");
	itest_write_file(ics, "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//t//EN\nBEGIN:VEVENT\n"
	                      "UID:1\nDTSTART;VALUE=DATE:20300101\nEND:VEVENT\nEND:VCALENDAR\n");
	itest_env_main(&e, "calendars = { hol = { ics = \"%s\"; }; };\n", ics);
	free(ics);
	itest_env_job(&e, "10-jobs.conf",
	              "jobs = (\n"
	              "  { name = \"spready\"; database = \"app\"; schedule = \"*/5 * * * *\";"
	              " spread = \"30s\"; command = \"SELECT 1\"; },\n"
	              "  { name = \"holjob\"; database = \"app\"; schedule = \"0 3 * * *\";"
	              " skip_dates = \"hol\"; command = \"SELECT 1\"; },\n"
	              "  { name = \"hook\"; schedule = \"0 5 1 1 *\";"
	              " http = { url = \"http://127.0.0.1:9/x\"; }; } );\n");
	install(&e);
	static const char *const names[][2] = {
	    {"nettoyage \xc3\xa9tape 2", "1 1 1 1 *"},
	    {"\xc3\x84rger-B\xc3\xbcro", "2 2 2 2 *"},
	    {"\xe6\x97\xa5\xe6\xac\xa1\xe9\x9b\x86\xe8\xa8\x88", "3 3 3 3 *"},
	};
	for (size_t i = 0; i < 3; i++) {
		const char *p[] = {names[i][0], names[i][1]};
		PGresult *r = PQexecParams(e.db, "SELECT cron.schedule($1, $2, 'SELECT 1')", 2,
		                           NULL, p, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
		PQclear(r);
	}
	PGresult *r = PQexec(e.db, "SELECT cron.schedule('rule', 'RRULE:FREQ=DAILY;COUNT=3', "
	                           "'SELECT 1')");
	const char *hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
	ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR && hint &&
	                  strstr(hint, "A recurrence rule is RRULE:") && !strstr(hint, "seconds"),
	              "a bad rule: %s (hint: %s)", PQresultErrorMessage(r), hint ? hint : "none");
	PQclear(r);
	itest_env_start(&e);
	ck_assert_msg(itest_wait_log(e.log, "jobs made in SQL applied", 15), "%s",
	              itest_tail(e.log));

	out = itest_cli(&status, "status", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "status: %d %s", status, out);
	size_t col = column_of(out, "\nJOB ", "SCHEDULE");
	ck_assert_int_eq(column_of(out, "\nspready ", "*/5 * * * *, spread 30s (+"), col);
	ck_assert_int_eq(column_of(out, "\nholjob ", "0 3 * * *, skip_dates hol "), col);
	for (size_t i = 0; i < 3; i++)
		ck_assert_msg(column_of(out, names[i][0], names[i][1]) == col, "%s:\n%s",
		              names[i][0], out);
	free(out);
	out = itest_cli(&status, "list", "-c", e.conf, NULL);
	col = column_of(out, "NAME ", "SCHEDULE");
	for (size_t i = 0; i < 3; i++)
		ck_assert_msg(column_of(out, names[i][0], names[i][1]) == col, "%s:\n%s",
		              names[i][0], out);
	free(out);

	/* an HTTP job has no database: status says none, in text and JSON */
	out = itest_cli(&status, "status", "-c", e.conf, "hook", NULL);
	ck_assert_msg(status == 0 && strstr(out, "kind:         http") && !strstr(out, "database"),
	              "status hook: %d %s", status, out);
	free(out);
	json_t *st = itest_env_status(&e, "hook");
	ck_assert(json_object_get(job_of(st, "hook"), "database") == NULL);
	json_decref(st);
	st = itest_env_status(&e, "holjob");
	ck_assert_str_eq(json_string_value(json_object_get(job_of(st, "holjob"), "database")),
	                 "app");
	json_decref(st);

	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ctl");
	TCase *tc = tcase_create("ctl");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, status_trigger_wait_and_no_daemon);
	tcase_add_test(tc, trigger_through_the_database);
	tcase_add_test(tc, pause_resume_persist_and_catch_up);
	tcase_add_test(tc, plugin_versions_and_history_run);
	tcase_add_test(tc, works_while_the_database_is_down);
	tcase_add_test(tc, status_and_list_words);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
