/* The status remembers across a restart: jobs run, one failing; the daemon
 * stops and starts again with the jobs disabled, so nothing runs any more; status.json,
 * `pgcrond status` and the page (headless chromium: DOM and screenshot) still show each
 * job's last result, the strip of its last runs coloured by outcome, and the recent
 * failures with their text, all with the run ids `pgcrond history --run` takes, as the
 * history table has them, read back a page of 1,000 jobs at a time. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"

#define TOKEN "page-memory-t0ken-8e1f2a3b4c5d6e7f"

/* GET PATH on 127.0.0.1:PORT with the bearer token; the body (malloc'd), the code in *CODE. */
static char *get(int port, const char *path, int *code)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr), 1);
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s",
	              strerror(errno));
	char req[512];
	int n = snprintf(
	    req, sizeof(req),
	    "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " TOKEN "\r\n\r\n", path);
	ck_assert_int_eq(write(fd, req, (size_t)n), n);
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	ssize_t got;
	while ((got = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)got;
		if (cap - len < 4096)
			buf = realloc(buf, cap *= 2);
	}
	close(fd);
	buf[len] = '\0';
	char *sep = strstr(buf, "\r\n\r\n");
	ck_assert_msg(sep, "no HTTP answer for %s: \"%s\"", path, buf);
	ck_assert_int_eq(sscanf(buf, "HTTP/1.%*d %d", code), 1);
	char *body = strdup(sep + 4);
	free(buf);
	return body;
}

/* The port of the listener the daemon's N-th start logged ("http: listening on
 * http://127.0.0.1:PORT/"); 0 while it has not. */
static int logged_port(const char *log, int n)
{
	static const char needle[] = "http: listening on http://";
	char *text = itest_read_file(log), *p = text;
	int port = 0;
	for (int i = 0; (p = strstr(p, needle)) != NULL; i++, p++) {
		if (i + 1 == n) {
			char *colon = strchr(p + sizeof(needle) - 1, ':');
			port = colon ? atoi(colon + 1) : 0;
		}
	}
	free(text);
	return port;
}

/* The end of a long text, for an assertion's message (Check's are bounded). */
static const char *tail(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	return n > 1500 ? s + n - 1500 : s ? s : "";
}

static json_t *status_json(int port)
{
	int code;
	char *body = get(port, "/status.json", &code);
	json_error_t err;
	json_t *j = json_loads(body, 0, &err);
	ck_assert_msg(code == 200 && j, "status.json %d (%s): %s", code, err.text, tail(body));
	free(body);
	return j;
}

static const json_t *job_of(const json_t *st, const char *name)
{
	size_t i;
	const json_t *j;
	json_array_foreach(json_object_get(st, "jobs"), i, j)
	{
		if (strcmp(json_string_value(json_object_get(j, "name")), name) == 0)
			return j;
	}
	ck_abort_msg("no job %s in the status", name);
	return NULL;
}

static void write_jobs(const struct itest_env *e, bool enabled)
{
	const char *en = enabled ? "true" : "false";
	itest_env_job(e, "10-jobs.conf",
	              "jobs = (\n"
	              " { name = \"good\"; schedule = \"* * * * * *\"; enabled = %s;\n"
	              "   command = \"SELECT 1\"; },\n"
	              " { name = \"bad\"; schedule = \"*/2 * * * * *\"; enabled = %s;\n"
	              "   command = \"SELECT 1/0\"; },\n"
	              " { name = \"slow\"; schedule = \"* * * * * *\"; enabled = %s;\n"
	              "   command = \"SELECT pg_sleep(1.3)\"; }\n"
	              ");\n",
	              en, en, en);
}

/* Every job's last result in the status has a run id (the daemon read the history), the
 * SQL job's too, which the daemon learns of after it starts. */
static bool restored(void *arg)
{
	int port = *(int *)arg;
	json_t *st = status_json(port);
	const json_t *j;
	size_t i, n = 0;
	bool yes = true;
	json_array_foreach(json_object_get(st, "jobs"), i, j)
	{
		const json_t *last = json_object_get(j, "last_result");
		yes &= json_integer_value(json_object_get(last, "runid")) > 0;
		n++;
	}
	json_decref(st);
	return yes && n == 4;
}

/* While the daemon runs: the last result of BAD, the newest failure and GOOD's newest run
 * have their run ids (their rows were written a moment after they ended); the document that
 * shows them is kept in LIVE->st (a later one may show a run that just ended, without its id
 * yet). */
struct live {
	int port;
	json_t *st;
};

static bool live_ids(void *arg)
{
	struct live *l = arg;
	json_t *st = status_json(l->port);
	const json_t *last = json_object_get(job_of(st, "bad"), "last_result");
	const json_t *f0 = json_array_get(json_object_get(st, "recent_failures"), 0);
	const json_t *r0 = json_array_get(json_object_get(job_of(st, "good"), "recent_runs"), 0);
	bool yes = json_integer_value(json_object_get(last, "runid")) > 0 &&
	           json_integer_value(json_object_get(f0, "runid")) > 0 &&
	           json_integer_value(json_object_get(r0, "runid")) > 0;
	if (yes)
		l->st = st;
	else
		json_decref(st);
	return yes;
}

/* Run RUNID in the table is JOB's, with STATUS, ended at END_UNIX (to the millisecond). */
static void assert_row(struct itest_env *e, json_int_t runid, const char *job, const char *status,
                       double end_unix)
{
	char q[512];
	snprintf(q, sizeof(q),
	         "SELECT job_name || ' ' || status || ' ' || (abs(extract(epoch FROM end_time) - "
	         "%.6f) < 0.001) FROM pgcrond.job_run_details WHERE runid = %lld",
	         end_unix, (long long)runid);
	char *got = itest_scalar(e->db, q), want[128];
	snprintf(want, sizeof(want), "%s %s true", job, status);
	ck_assert_msg(got && strcmp(got, want) == 0, "run %lld: %s, the status says %s",
	              (long long)runid, got ? got : "no row", want);
	free(got);
}

START_TEST(status_and_page_remember_after_restart)
{
	struct itest_env e;
	itest_env_init(&e, "page-memory", "it_page_memory");
	char *tf = itest_env_path(&e, "http.token");
	itest_write_file(tf, "%s\n", TOKEN);
	itest_chown_user(tf);
	chmod(tf, 0600);
	itest_env_main(&e, "http = { listen = \"127.0.0.1:0\"; token_file = \"http.token\"; };\n");
	write_jobs(&e, true);
	/* pg_cron's API, and a role that schedules a failing job in SQL */
	int rc;
	char *out = itest_cli(&rc, "install", "-c", e.conf, NULL);
	ck_assert_msg(rc == 0, "pgcrond install: %d %s", rc, out);
	free(out);
	PQclear(PQexec(e.db, "DROP OWNED BY it_page_memory_app; DROP ROLE it_page_memory_app"));
	itest_exec(e.db, "CREATE ROLE it_page_memory_app LOGIN;"
	                 "GRANT USAGE ON SCHEMA cron TO it_page_memory_app");
	char app_ci[1024];
	snprintf(app_ci, sizeof(app_ci), "%s user=it_page_memory_app", e.ci);
	PGconn *app = itest_connect(app_ci);
	char *sql_id = itest_scalar(app, "SELECT cron.schedule('sql-bad', '1 seconds', "
	                                 "'SELECT 1/0')");
	ck_assert_ptr_nonnull(sql_id);
	itest_env_start(&e);

	/* runs of every kind: successes, failures (division by zero), skips (overlap) */
	ck_assert_msg(
	    itest_env_wait(&e, 30,
	                   "SELECT count(*) FILTER (WHERE job_name = 'good' AND status = "
	                   "'succeeded') >= 12 AND count(*) FILTER (WHERE job_name = 'bad' "
	                   "AND status = 'failed') >= 3 AND count(*) FILTER (WHERE "
	                   "job_name = 'slow' AND status = 'skipped') >= 1 AND count(*) FILTER "
	                   "(WHERE job_name = 'sql-bad' AND status = 'failed') >= 2 FROM "
	                   "pgcrond.job_run_details"),
	    "no runs:\n%s", tail(itest_read_file(e.log)));
	/* live: the runs of the running daemon show their run ids too, once written */
	struct live l = {.port = logged_port(e.log, 1)};
	ck_assert_int_gt(l.port, 0);
	ck_assert_msg(itest_wait_until(live_ids, &l, 20), "no run ids for the live runs:\n%s",
	              tail(itest_read_file(e.log)));
	json_t *live = l.st;
	const json_t *ll = json_object_get(job_of(live, "bad"), "last_result");
	assert_row(&e, json_integer_value(json_object_get(ll, "runid")), "bad", "failed",
	           json_number_value(json_object_get(ll, "ended_at_unix")));
	const json_t *lf = json_array_get(json_object_get(live, "recent_failures"), 0);
	assert_row(&e, json_integer_value(json_object_get(lf, "runid")),
	           json_string_value(json_object_get(lf, "job")), "failed",
	           json_number_value(json_object_get(lf, "ended_at_unix")));
	const json_t *lr = json_array_get(json_object_get(job_of(live, "good"), "recent_runs"), 0);
	assert_row(&e, json_integer_value(json_object_get(lr, "runid")), "good",
	           json_string_value(json_object_get(lr, "status")),
	           json_number_value(json_object_get(lr, "ended_at_unix")));
	json_decref(live);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);

	/* started again with every job disabled: nothing runs, what shows comes from the
	 * history */
	write_jobs(&e, false);
	char alter[256];
	snprintf(alter, sizeof(alter), "SELECT cron.alter_job(%s, active := false)", sql_id);
	itest_exec(e.db, alter);
	free(sql_id);
	PQfinish(app);
	/* 1,000 other jobs' rows, named before these: the start reads the history back a page
	 * of 1,000 jobs at a time, and these jobs' results come with the second page */
	itest_exec(e.db, "INSERT INTO pgcrond.job_run_details (job_name, status, start_time,"
	                 " end_time, instance, run_key) SELECT 'aaa-' || lpad(g::text, 5, '0'),"
	                 " 'succeeded', now(), now(), 'other', 'o.' || g"
	                 " FROM generate_series(1, 1000) g;"
	                 "ALTER DATABASE it_page_memory SET log_statement = 'all'");
	char *slog = itest_server_log();
	long from = itest_file_size(slog);
	free(slog);
	itest_env_start(&e);
	int port = 0;
	for (int i = 0; i < 200 && !(port = logged_port(e.log, 2)); i++)
		itest_sleep(0.05);
	ck_assert_msg(port > 0, "no listener:\n%s", tail(itest_read_file(e.log)));
	ck_assert_msg(itest_wait_until(restored, &port, 30),
	              "the last results were not read back from the history:\n%s",
	              tail(itest_read_file(e.log)));
	ck_assert_int_eq(
	    itest_server_statements(from, "it_page_memory", "WITH RECURSIVE n(job, k)"), 2);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE status IN ('starting', 'running')"),
	                 0);

	json_t *st = status_json(port);
	/* each job's last result, as the table has it, with its run id */
	const char *jobs[] = {"good", "bad", "slow", "sql-bad"};
	for (size_t k = 0; k < 4; k++) {
		const json_t *j = job_of(st, jobs[k]);
		const json_t *last = json_object_get(j, "last_result");
		char q[512];
		snprintf(
		    q, sizeof(q),
		    "SELECT runid || ' ' || status FROM pgcrond.job_run_details WHERE job_name = "
		    "'%s' AND status IN ('succeeded', 'failed') ORDER BY start_time DESC, runid "
		    "DESC LIMIT 1",
		    jobs[k]);
		char *want = itest_scalar(e.db, q), got[128];
		snprintf(got, sizeof(got), "%lld %s",
		         (long long)json_integer_value(json_object_get(last, "runid")),
		         json_string_value(json_object_get(last, "status")));
		ck_assert_msg(want && strcmp(got, want) == 0, "%s: last result %s, history %s",
		              jobs[k], got, want);
		free(want);
		/* the strip: its last ten runs, newest first, every final status */
		snprintf(q, sizeof(q),
		         "SELECT string_agg(runid || ' ' || status, ',' ORDER BY start_time DESC, "
		         "runid DESC) FROM (SELECT * FROM pgcrond.job_run_details WHERE job_name = "
		         "'%s' AND end_time IS NOT NULL ORDER BY start_time DESC, runid DESC LIMIT "
		         "10) r",
		         jobs[k]);
		want = itest_scalar(e.db, q);
		char strip[1024] = "";
		size_t i;
		const json_t *r;
		json_array_foreach(json_object_get(j, "recent_runs"), i, r)
		{
			size_t l = strlen(strip);
			snprintf(strip + l, sizeof(strip) - l, "%s%lld %s", i ? "," : "",
			         (long long)json_integer_value(json_object_get(r, "runid")),
			         json_string_value(json_object_get(r, "status")));
		}
		ck_assert_msg(want && strcmp(strip, want) == 0, "%s: strip %s, history %s", jobs[k],
		              strip, want);
		free(want);
	}
	const json_t *bad_last = json_object_get(job_of(st, "bad"), "last_result");
	ck_assert_str_eq(json_string_value(json_object_get(bad_last, "message")),
	                 "division by zero");
	ck_assert_str_eq(json_string_value(json_object_get(bad_last, "sqlstate")), "22012");
	char *slow = json_dumps(json_object_get(job_of(st, "slow"), "recent_runs"), 0);
	ck_assert_msg(slow && strstr(slow, "\"skipped\""), "slow's strip: %s", slow);
	free(slow);

	/* the recent failures: the newest of the table, with text and run id */
	const json_t *f0 = json_array_get(json_object_get(st, "recent_failures"), 0);
	ck_assert_msg(f0, "no recent failures after the restart");
	char *newest = itest_scalar(e.db, "SELECT runid || ' ' || job_name FROM "
	                                  "pgcrond.job_run_details WHERE status = 'failed' "
	                                  "ORDER BY start_time DESC, runid DESC LIMIT 1");
	char got0[128];
	snprintf(got0, sizeof(got0), "%lld %s",
	         (long long)json_integer_value(json_object_get(f0, "runid")),
	         json_string_value(json_object_get(f0, "job")));
	ck_assert_msg(newest && strcmp(got0, newest) == 0, "newest failure %s, history %s", got0,
	              newest);
	free(newest);
	long long bad_runid = json_integer_value(json_object_get(bad_last, "runid"));
	ck_assert_str_eq(json_string_value(json_object_get(f0, "message")), "division by zero");
	ck_assert_int_eq(json_array_size(json_object_get(st, "recent_failures")),
	                 itest_env_count(&e, "SELECT least(count(*), 20) FROM "
	                                     "pgcrond.job_run_details WHERE status = 'failed'"));
	long long good_runid = json_integer_value(
	    json_object_get(json_object_get(job_of(st, "good"), "last_result"), "runid"));
	json_decref(st);

	/* pgcrond status: the same, for a terminal */
	char idtext[64];
	snprintf(idtext, sizeof(idtext), "run %lld", bad_runid);
	out = itest_cli(&rc, "status", "-c", e.conf, NULL);
	ck_assert_msg(rc == 0 && strstr(out, idtext) && strstr(out, "division by zero") &&
	                  strstr(out, "recent failures"),
	              "pgcrond status (%d): %s", rc, out);
	free(out);
	out = itest_cli(&rc, "status", "-c", e.conf, "bad", NULL);
	ck_assert_msg(rc == 0 && strstr(out, "last runs:") && strstr(out, idtext) &&
	                  strstr(out, "sqlstate:     22012"),
	              "pgcrond status bad (%d): %s", rc, out);
	free(out);
	/* ... and the id leads to the run */
	snprintf(idtext, sizeof(idtext), "%lld", bad_runid);
	out = itest_cli(&rc, "history", "-c", e.conf, "--run", idtext, NULL);
	ck_assert_msg(rc == 0 && strstr(out, "division by zero"), "history --run (%d): %s", rc,
	              out);
	free(out);

	/* the page as served with the token (opened from a file: a browser cannot send the
	 * header with the page), in chromium */
	int code;
	char *html = get(port, "/", &code);
	ck_assert_int_eq(code, 200);
	char *page = itest_env_path(&e, "page.html"), *js = itest_env_path(&e, "page.js");
	itest_write_file(page, "%s", html);
	free(html);
	html = get(port, "/page.js", &code); /* its script, beside it */
	ck_assert_int_eq(code, 200);
	itest_write_file(js, "%s", html);
	free(html);
	free(js);
	char url[1200];
	snprintf(url, sizeof(url), "file://%s", page);
	char *dom = itest_chromium(e.dir, "--dump-dom", url);
	char *domf = itest_env_path(&e, "dom.html"); /* what the messages point to */
	itest_write_file(domf, "%s", dom);
	char want[256];
	/* the strip: ten cells a job, the runs coloured by outcome with their ids */
	snprintf(want, sizeof(want),
	         "class=\"cell run-failed\" data-status=\"failed\" data-runid=\"%lld\"", bad_runid);
	ck_assert_msg(strstr(dom, want), "no strip cell for run %lld: %s", bad_runid, domf);
	ck_assert_msg(strstr(dom, "class=\"cell run-succeeded\"") &&
	                  strstr(dom, "class=\"cell run-skipped\""),
	              "no success or skip in the strips: %s", domf);
	ck_assert_msg(strstr(dom, "aria-label=\"10 last runs\""), "%s", domf);
	/* the last results with their run ids and absolute times with the zone */
	snprintf(want, sizeof(want), "· run %lld</span>", good_runid);
	ck_assert_msg(strstr(dom, want), "no run id %lld in the last result: %s", good_runid, domf);
	ck_assert_msg(strstr(dom, " UTC ("), "no absolute time with its zone: %s", domf);
	/* the failures: text, and the command that shows the run */
	snprintf(want, sizeof(want), "<code class=\"runid\">pgcrond history --run %lld</code>",
	         bad_runid);
	ck_assert_msg(strstr(dom, want), "no run id in the failures: %s", domf);
	ck_assert_msg(strstr(dom, "<pre>division by zero</pre>"), "no failure text: %s", domf);
	ck_assert_msg(strstr(dom, "Last runs, oldest to newest:"), "no legend: %s", domf);
	free(dom);
	free(domf);
	char shot[1100], arg[1200];
	snprintf(shot, sizeof(shot), "%s/page-memory.png", e.dir);
	snprintf(arg, sizeof(arg), "--screenshot=%s", shot);
	free(itest_chromium(e.dir, arg, url));
	struct stat sb;
	ck_assert_msg(stat(shot, &sb) == 0 && sb.st_size > 10000, "no screenshot at %s", shot);
	const char *keep = getenv("PGCROND_SCREENSHOT_MEMORY");
	if (keep && *keep) {
		char cmd[2400];
		snprintf(cmd, sizeof(cmd), "cp %s '%s'", shot, keep);
		ck_assert_int_eq(system(cmd), 0);
	}
	free(page);
	free(tf);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("page_memory");
	TCase *tc = tcase_create("restart");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, status_and_page_remember_after_restart);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
