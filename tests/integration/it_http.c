/* The HTTP listener against a running daemon: /metrics read by the reference Prometheus
 * parser (python3-prometheus-client) and its values checked against the runs recorded in the
 * history table; /health answering 200 while the history database answers and 503 with the
 * reason while it is stopped or silent; the status page rendered by headless chromium; the
 * bearer token on a non-loopback listener and for control requests. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"

#define PYTHON "/usr/bin/python3"
#define PROM_PARSE TEST_SOURCE_DIR "/integration/prom_parse.py"

/* ---- a small HTTP/1.0 client ------------------------------------------------------------ */

struct resp {
	int code;
	char *head; /* status line and headers */
	char *body;
};

static void resp_free(struct resp *r)
{
	free(r->head);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* METHOD PATH on HOST:PORT with an optional bearer TOKEN; the whole answer. */
static struct resp http_req(const char *host, int port, const char *method, const char *path,
                            const char *token)
{
	struct resp r = {0};
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(inet_pton(AF_INET, host, &sa.sin_addr), 1);
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s:%d: %s",
	              host, port, strerror(errno));
	char req[1024], auth[600] = "";
	if (token)
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
	int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: %s\r\n%s%s\r\n", method, path,
	                 host, auth, strcmp(method, "POST") == 0 ? "Content-Length: 0\r\n" : "");
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
	ck_assert_msg(sep, "no HTTP answer from %s %s: \"%s\"", method, path, buf);
	*sep = '\0';
	r.head = strdup(buf);
	r.body = strdup(sep + 4);
	ck_assert_int_eq(sscanf(buf, "HTTP/1.%*d %d", &r.code), 1);
	free(buf);
	return r;
}

static struct resp get(int port, const char *path)
{
	return http_req("127.0.0.1", port, "GET", path, NULL);
}

/* The port the daemon logged ("http: listening on http://127.0.0.1:PORT/"). */
static int logged_port(const char *log)
{
	static const char needle[] = "http: listening on http://";
	ck_assert_msg(itest_wait_log(log, needle, 10), "no listener:\n%s", itest_read_file(log));
	char *text = itest_read_file(log);
	char *p = strstr(text, needle) + sizeof(needle) - 1;
	char *colon = strchr(p, ':');
	int port = colon ? atoi(colon + 1) : 0;
	free(text);
	ck_assert_int_gt(port, 0);
	return port;
}

static json_t *parse_json(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);
	ck_assert_msg(j, "not JSON (%s): %s", err.text, text);
	return j;
}

/* ---- the Prometheus parser ---------------------------------------------------------------- */

/* TEXT read by the reference parser: its families as JSON. */
static json_t *prom_parse(const char *dir, const char *text)
{
	char in[1024], out[1024], errf[1024], cmd[4096];
	ck_assert_msg(system(PYTHON " -c 'import prometheus_client' 2>/dev/null") == 0,
	              "the Prometheus parser is missing: scripts/setup installs it (Debian package "
	              "python3-prometheus-client)");
	snprintf(in, sizeof(in), "%s/metrics.txt", dir);
	snprintf(out, sizeof(out), "%s/metrics.json", dir);
	snprintf(errf, sizeof(errf), "%s/metrics.err", dir);
	itest_write_file(in, "%s", text);
	snprintf(cmd, sizeof(cmd), "%s %s < %s > %s 2> %s", PYTHON, PROM_PARSE, in, out, errf);
	int rc = system(cmd);
	ck_assert_msg(rc == 0, "the Prometheus parser refused /metrics: %s\n%s",
	              itest_read_file(errf), text);
	char *js = itest_read_file(out);
	json_t *j = parse_json(js);
	free(js);
	return json_object_get(j, "families") ? j : NULL;
}

static const json_t *family(const json_t *parsed, const char *name)
{
	const json_t *fams = json_object_get(parsed, "families"), *f;
	size_t i;
	json_array_foreach(fams, i, f) if (strcmp(json_string_value(json_object_get(f, "name")),
	                                          name) == 0) return f;
	return NULL;
}

/* The value of sample NAME whose labels include K1=V1 (and K2=V2 if K2); NAN if none. */
static double value(const json_t *parsed, const char *fam, const char *name, const char *k1,
                    const char *v1, const char *k2, const char *v2)
{
	const json_t *f = family(parsed, fam), *s;
	size_t i;
	ck_assert_msg(f, "no metric family %s", fam);
	json_array_foreach(json_object_get(f, "samples"), i, s)
	{
		const json_t *l = json_object_get(s, "labels");
		const char *a = k1 ? json_string_value(json_object_get(l, k1)) : NULL;
		const char *b = k2 ? json_string_value(json_object_get(l, k2)) : NULL;
		if (strcmp(json_string_value(json_object_get(s, "name")), name) == 0 &&
		    (!k1 || (a && strcmp(a, v1) == 0)) && (!k2 || (b && strcmp(b, v2) == 0)))
			return json_number_value(json_object_get(s, "value"));
	}
	return NAN;
}

/* The naming conventions: the prefix, _total on counters only, seconds as the unit, and
 * histograms with cumulative le buckets ending in +Inf equal to _count. */
static void check_conventions(const json_t *parsed)
{
	const json_t *f, *s;
	size_t i, k;
	json_array_foreach(json_object_get(parsed, "families"), i, f)
	{
		const char *name = json_string_value(json_object_get(f, "name"));
		const char *type = json_string_value(json_object_get(f, "type"));
		ck_assert_msg(strncmp(name, "pgcrond_", 8) == 0, "%s lacks the pgcrond_ prefix",
		              name);
		ck_assert_msg(!strstr(name, "_ms") && !strstr(name, "millis"),
		              "%s: use seconds, not milliseconds", name);
		ck_assert_msg(strcmp(type, "untyped") != 0 && strcmp(type, "unknown") != 0,
		              "%s has no TYPE", name);
		json_array_foreach(json_object_get(f, "samples"), k, s)
		{
			const char *sn = json_string_value(json_object_get(s, "name"));
			size_t n = strlen(sn);
			bool total = n > 6 && strcmp(sn + n - 6, "_total") == 0;
			ck_assert_msg(total == (strcmp(type, "counter") == 0),
			              "%s: _total is for counters and every counter (type %s)", sn,
			              type);
		}
		if (strcmp(type, "histogram") != 0)
			continue;
		double prev = -1, last = -1, count = -2;
		const char *job = NULL;
		json_array_foreach(json_object_get(f, "samples"), k, s)
		{
			const char *sn = json_string_value(json_object_get(s, "name"));
			const json_t *l = json_object_get(s, "labels");
			double v = json_number_value(json_object_get(s, "value"));
			const char *le = json_string_value(json_object_get(l, "le"));
			const char *sj = json_string_value(json_object_get(l, "job"));
			if (!job || strcmp(job, sj) != 0) {
				job = sj;
				prev = -1;
			}
			if (strstr(sn, "_bucket")) {
				ck_assert_msg(le, "%s without le", sn);
				ck_assert_msg(v >= prev, "%s{le=%s}: buckets must be cumulative",
				              sn, le);
				prev = v;
				if (strcmp(le, "+Inf") == 0)
					last = v;
			} else if (strstr(sn, "_count")) {
				count = v;
				ck_assert_msg(count == last, "%s: _count %g != +Inf bucket %g",
				              name, count, last);
			}
		}
		ck_assert_msg(count >= 0, "%s has no _count", name);
	}
}

/* ---- chromium ------------------------------------------------------------------------------- */

/* ---- the tests ------------------------------------------------------------------------------ */

static void write_jobs(const struct itest_env *e, bool enabled)
{
	const char *en = enabled ? "true" : "false";
	itest_env_job(e, "10-jobs.conf",
	              "jobs = (\n"
	              " { name = \"ok-job\"; schedule = \"* * * * * *\"; enabled = %s;\n"
	              "   command = \"SELECT 1\"; max_staleness = \"1h\"; },\n"
	              " { name = \"bad-job\"; schedule = \"*/2 * * * * *\"; enabled = %s;\n"
	              "   command = \"DO $$ BEGIN RAISE EXCEPTION 'could not refresh %%: %%', "
	              "'weakness_patterns', rtrim(repeat('source rows are late; ', 8)) USING "
	              "DETAIL = 'the lag is 3 hours', HINT = 'check the loader'; END $$\"; },\n"
	              " { name = \"slow-job\"; schedule = \"*/2 * * * * *\"; enabled = %s;\n"
	              "   command = \"SELECT pg_sleep(2.5)\"; },\n"
	              " { name = \"after-ok\"; after = [ \"ok-job\" ]; command = \"SELECT 2\"; },\n"
	              " { name = \"report\"; after = [ \"after-ok\", \"bad-job\" ];\n"
	              "   command = \"SELECT 3\"; }\n"
	              ");\n",
	              en, en, en);
}

/* Job NAME's state is "running", for less than half a second (the status document). */
static bool job_just_started(int port, const char *name)
{
	struct resp r = get(port, "/status.json");
	json_t *st = parse_json(r.body), *j;
	size_t i;
	bool yes = false;
	json_array_foreach(json_object_get(st, "jobs"), i, j)
	{
		const char *n = json_string_value(json_object_get(j, "name"));
		const json_t *run = json_object_get(j, "running");
		if (n && strcmp(n, name) == 0 && run)
			yes = json_number_value(json_object_get(run, "elapsed_s")) < 0.5;
	}
	json_decref(st);
	resp_free(&r);
	return yes;
}

/* Nothing running or waiting in the daemon, no history record unwritten, no run open in the
 * history table. */
static bool settled(struct itest_env *e, int port)
{
	struct resp r = get(port, "/status.json");
	json_t *st = parse_json(r.body), *j;
	size_t i;
	bool quiet =
	    json_integer_value(json_object_get(st, "running")) == 0 &&
	    json_integer_value(json_object_get(st, "queued")) == 0 &&
	    json_integer_value(json_object_get(json_object_get(st, "history"), "pending")) == 0;
	json_array_foreach(json_object_get(st, "jobs"), i, j)
	{
		const char *state = json_string_value(json_object_get(j, "state"));
		quiet &= state && (strcmp(state, "idle") == 0 || strcmp(state, "disabled") == 0);
	}
	json_decref(st);
	resp_free(&r);
	return quiet && itest_env_count(e, "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                                   "status IN ('starting', 'running')") == 0;
}

static long long db_count(struct itest_env *e, const char *job, const char *status)
{
	return itest_env_count(e,
	                       "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = '%s' "
	                       "AND status = '%s'",
	                       job, status);
}

START_TEST(metrics_match_history_and_page_renders)
{
	struct itest_env e;
	itest_env_setup(&e, "http", "it_http");
	itest_env_main(&e, "http = { listen = \"127.0.0.1:0\"; };\n");
	write_jobs(&e, true);
	itest_env_start(&e);
	int port = logged_port(e.log);

	/* a few successes and failures, then the schedules stop so the counts hold still */
	ck_assert_msg(
	    itest_env_wait(&e, 20,
	                   "SELECT count(*) FILTER (WHERE job_name = 'ok-job' AND status = "
	                   "'succeeded') >= 3 AND count(*) FILTER (WHERE job_name = "
	                   "'bad-job' AND status = 'failed') >= 2 AND count(*) FILTER (WHERE "
	                   "job_name = 'slow-job' AND status = 'skipped') >= 1 FROM "
	                   "pgcrond.job_run_details"),
	    "no runs:\n%s", itest_read_file(e.log));
	/* a screenshot while the jobs run (the README's, with PGCROND_SCREENSHOT=FILE), taken
	 * when slow-job has just started, so a running job is in it */
	for (int i = 0; i < 50 && !job_just_started(port, "slow-job"); i++)
		itest_sleep(0.05);
	char shot[1100], arg[1200], url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	const char *keep = getenv("PGCROND_SCREENSHOT");
	snprintf(shot, sizeof(shot), "%s/status-page.png", e.dir);
	snprintf(arg, sizeof(arg), "--screenshot=%s", shot);
	free(itest_chromium(e.dir, arg, url));
	struct stat sb;
	ck_assert_msg(stat(shot, &sb) == 0 && sb.st_size > 10000, "no screenshot at %s", shot);
	char *png = itest_read_file(shot);
	ck_assert_msg(memcmp(png, "\x89PNG", 4) == 0, "the screenshot is not a PNG");
	free(png);
	if (keep && *keep) {
		char cmd[2400];
		snprintf(cmd, sizeof(cmd), "cp %s '%s'", shot, keep);
		ck_assert_int_eq(system(cmd), 0);
	}

	write_jobs(&e, false);
	kill(e.pid, SIGHUP);
	ck_assert(itest_wait_log(e.log, "configuration reloaded", 10));
	/* Quiet: nothing runs or waits (a downstream starts after its upstream's last run), every
	 * history record is written, and the table agrees; the same twice, 0.3 s apart. */
	int quiet = 0;
	for (int i = 0; i < 200 && quiet < 2; i++) {
		quiet = settled(&e, port) ? quiet + 1 : 0;
		itest_sleep(quiet ? 0.3 : 0.05);
	}
	ck_assert_msg(quiet == 2, "the daemon did not settle:\n%s", itest_read_file(e.log));
	struct resp r;
	r = get(port, "/metrics");
	ck_assert_int_eq(r.code, 200);
	ck_assert_msg(strstr(r.head, "Content-Type: text/plain; version=0.0.4"), "%s", r.head);
	json_t *m = prom_parse(e.dir, r.body);
	ck_assert_ptr_nonnull(m);
	check_conventions(m);

	/* counters against the history table */
	const char *jobs[] = {"ok-job", "bad-job", "slow-job", "after-ok", "report"};
	const char *statuses[] = {"succeeded", "failed", "skipped", "upstream_failed"};
	long long ran[5] = {0};
	for (size_t j = 0; j < 5; j++) {
		for (size_t s = 0; s < 4; s++) {
			double v = value(m, "pgcrond_job_runs", "pgcrond_job_runs_total", "job",
			                 jobs[j], "status", statuses[s]);
			long long want = db_count(&e, jobs[j], statuses[s]);
			ck_assert_msg(v == (double)want, "%s %s: metrics %g, history %lld", jobs[j],
			              statuses[s], v, want);
			if (s < 2)
				ran[j] += want;
		}
		/* every run that ran is in the duration histogram */
		double c =
		    value(m, "pgcrond_job_run_duration_seconds",
		          "pgcrond_job_run_duration_seconds_count", "job", jobs[j], NULL, NULL);
		ck_assert_msg(c == (double)ran[j], "%s: %g durations for %lld runs", jobs[j], c,
		              ran[j]);
	}
	ck_assert_int_ge(db_count(&e, "slow-job", "skipped"), 1); /* overlap = skip */
	ck_assert_int_ge(ran[3], 3);                              /* after-ok ran after ok-job */
	ck_assert_int_ge(db_count(&e, "report", "upstream_failed"), 1); /* bad-job failed */
	/* lateness: each scheduled first attempt, and none for the graph's downstreams */
	long long sched_ok =
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                        "WHERE job_name = 'ok-job' AND trigger = 'schedule' "
	                        "AND attempt = 1 AND status = 'succeeded'");
	ck_assert(value(m, "pgcrond_job_lateness_seconds", "pgcrond_job_lateness_seconds_count",
	                "job", "ok-job", NULL, NULL) == (double)sched_ok);
	ck_assert(value(m, "pgcrond_job_lateness_seconds", "pgcrond_job_lateness_seconds_count",
	                "job", "after-ok", NULL, NULL) == 0);
	/* the last success and failure, to the millisecond the history has them */
	double ls =
	    value(m, "pgcrond_job_last_success_timestamp_seconds",
	          "pgcrond_job_last_success_timestamp_seconds", "job", "ok-job", NULL, NULL);
	double lf =
	    value(m, "pgcrond_job_last_failure_timestamp_seconds",
	          "pgcrond_job_last_failure_timestamp_seconds", "job", "bad-job", NULL, NULL);
	char *db_ls = itest_scalar(e.db, "SELECT extract(epoch FROM max(end_time)) FROM "
	                                 "pgcrond.job_run_details WHERE job_name = 'ok-job' AND "
	                                 "status = 'succeeded'");
	char *db_lf = itest_scalar(e.db, "SELECT extract(epoch FROM max(end_time)) FROM "
	                                 "pgcrond.job_run_details WHERE job_name = 'bad-job' AND "
	                                 "status = 'failed'");
	ck_assert_msg(fabs(ls - atof(db_ls)) < 0.01, "last success %f vs %s", ls, db_ls);
	ck_assert_msg(fabs(lf - atof(db_lf)) < 0.01, "last failure %f vs %s", lf, db_lf);
	free(db_ls);
	free(db_lf);
	/* live gauges: nothing runs now; the pool and the spool as they are */
	ck_assert(value(m, "pgcrond_job_running", "pgcrond_job_running", "job", "ok-job", NULL,
	                NULL) == 0);
	ck_assert(value(m, "pgcrond_job_stale", "pgcrond_job_stale", "job", "ok-job", NULL, NULL) ==
	          0);
	ck_assert(value(m, "pgcrond_job_max_staleness_seconds", "pgcrond_job_max_staleness_seconds",
	                "job", "ok-job", NULL, NULL) == 3600);
	/* the pool by state: every state present, and the runs left connections open */
	double open = 0;
	const char *states[] = {"connecting", "idle", "busy", "resetting"};
	for (size_t i = 0; i < 4; i++) {
		double v = value(m, "pgcrond_database_connections", "pgcrond_database_connections",
		                 "database", "app", "state", states[i]);
		ck_assert_msg(v >= 0, "no connections{state=%s}", states[i]);
		open += i ? v : 0;
	}
	ck_assert_msg(open >= 1 && open <= 4, "%g connections open in a pool of 4", open);
	ck_assert(value(m, "pgcrond_database_pool_size", "pgcrond_database_pool_size", "database",
	                "app", NULL, NULL) == 4);
	ck_assert(value(m, "pgcrond_history_spool_records", "pgcrond_history_spool_records", NULL,
	                NULL, NULL, NULL) == 0);
	ck_assert(value(m, "pgcrond_build_info", "pgcrond_build_info", "version", PGCROND_VERSION,
	                NULL, NULL) == 1);
	json_decref(m);
	resp_free(&r);

	/* /health while the history database answers */
	r = get(port, "/health");
	ck_assert_msg(r.code == 200, "%d %s", r.code, r.body);
	json_t *h = parse_json(r.body);
	ck_assert_str_eq(json_string_value(json_object_get(h, "status")), "ok");
	json_decref(h);
	resp_free(&r);

	/* the page in a real browser: jobs with their states, the graph, the failure's text */
	char *dom = itest_chromium(e.dir, "--dump-dom", url);
	ck_assert_msg(strstr(dom, "id=\"job-ok-job\" data-state=\"disabled\""), "%s", dom);
	ck_assert_msg(strstr(dom, "id=\"job-after-ok\" data-state=\"idle\""), "%s", dom);
	ck_assert_msg(strstr(dom, "<svg id=\"graph\""), "no graph: %s", dom);
	ck_assert_msg(strstr(dom, "data-job=\"report\""), "no report node: %s", dom);
	ck_assert_msg(strstr(dom, "data-from=\"after-ok\" data-to=\"report\""), "no edge: %s", dom);
	ck_assert_msg(strstr(dom, "data-from=\"bad-job\" data-to=\"report\""), "no edge: %s", dom);
	/* without a token (any local user reads it): the failure, not its text */
	ck_assert_msg(strstr(dom, "data-job=\"bad-job\""), "no failure shown: %s", dom);
	ck_assert_msg(strstr(dom, "(the text is shown with http.token_file only)"), "%s", dom);
	ck_assert_msg(!strstr(dom, "could not refresh") && !strstr(dom, "lag is 3 hours"),
	              "failure text without the token: %s", dom);
	r = get(port, "/status.json");
	ck_assert_msg(r.code == 200 && strstr(r.body, "\"status\":\"failed\"") &&
	                  strstr(r.body, "\"redacted\":true") &&
	                  !strstr(r.body, "could not refresh"),
	              "%d %s", r.code, r.body);
	resp_free(&r);
	ck_assert_msg(strstr(dom, "History database app: connected"), "%s", dom);
	/* nothing is down: no banner; each job's owner and settings; a view's age only for
	 * the jobs that maintain a view (ok-job is a command with max_staleness); times
	 * absolute, with their zone */
	ck_assert_msg(strstr(dom, "<div id=\"banner\" role=\"alert\" hidden=\"\"></div>"),
	              "a banner while nothing is down: %s", dom);
	ck_assert_msg(strstr(dom,
	                     "<td class=\"settings\">pgcrond's role · 0 retries · no timeout · "
	                     "overlap skip</td>"),
	              "no owner and settings: %s", dom);
	ck_assert_msg(strstr(dom, "<td class=\"view-age\"><span class=\"muted\"></span></td>"),
	              "a view age for a job that maintains no view: %s", dom);
	ck_assert_msg(strstr(dom, " UTC</span>"), "no absolute time with its zone: %s", dom);
	free(dom);
	/* it refreshes itself: 7.5 s on (virtual time), the data is from the refresh at 5 s */
	dom = itest_chromium(e.dir, "--virtual-time-budget=7500 --dump-dom", url);
	char *age = strstr(dom, "id=\"age\">");
	ck_assert_msg(age, "%s", dom);
	int old = -1;
	ck_assert_msg(sscanf(age, "id=\"age\">data %ds old", &old) == 1 && old < 5,
	              "the page did not refresh: %.80s", age);
	free(dom);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

/* ---- freshness on the page ------------------------------------------------------------------ */

/* The "freshness" object of job NAME in /status.json, as its field KEY is true or present. */
static bool fresh_has(int port, const char *name, const char *key)
{
	struct resp r = get(port, "/status.json");
	json_t *st = parse_json(r.body), *j;
	size_t i;
	bool yes = false;
	json_array_foreach(json_object_get(st, "jobs"), i, j)
	{
		const char *n = json_string_value(json_object_get(j, "name"));
		const json_t *v = json_object_get(json_object_get(j, "freshness"), key);
		if (n && strcmp(n, name) == 0)
			yes = v && !json_is_false(v);
	}
	json_decref(st);
	resp_free(&r);
	return yes;
}

/* The row of job NAME in the page's DOM (malloc'd). */
static char *job_row(const char *dom, const char *name)
{
	char id[128];
	snprintf(id, sizeof(id), "id=\"job-%s\"", name);
	const char *a = strstr(dom, id);
	ck_assert_msg(a, "no row for %s: %s", name, dom);
	const char *b = strstr(a, "</tr>");
	ck_assert_msg(b, "the row of %s does not end: %s", name, a);
	return strndup(a, (size_t)(b - a));
}

START_TEST(page_shows_freshness_lag_against_its_sla)
{
	struct itest_env e;
	itest_env_setup(&e, "http-fresh", "it_http");
	itest_exec(e.db, "CREATE TABLE public.src (id bigserial PRIMARY KEY);"
	                 "GRANT ALL ON public.src TO PUBLIC;"
	                 "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO PUBLIC");
	/* what `pgcrond install` puts in the job's database */
	char *sql = itest_read_file(TEST_SOURCE_DIR "/../sql/freshness.sql");
	ck_assert_msg(sql[0], "sql/freshness.sql is missing");
	itest_exec(e.db, sql);
	free(sql);
	itest_exec(e.db, "SELECT pgcrond.watch_source('public.src');"
	                 "GRANT SELECT ON pgcrond.source_change TO PUBLIC");
	itest_env_main(&e, "http = { listen = \"127.0.0.1:0\"; };\n");
	itest_env_job(
	    &e, "10-jobs.conf",
	    "jobs = (\n"
	    " { name = \"fresh-view\"; database = \"app\"; freshness = \"3s\";\n"
	    "   sources = [ \"public.src\" ]; command = \"SELECT count(*) FROM public.src\"; },\n"
	    " { name = \"plain\"; schedule = \"*/2 * * * * *\"; command = \"SELECT 1\";\n"
	    "   max_staleness = \"1h\"; }\n"
	    ");\n");
	itest_env_start(&e);
	int port = logged_port(e.log);
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);

	/* its first run (nothing is known at start), then a check finds the sources as it left
	 * them: no lag, and since when */
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) > 0 FROM pgcrond.job_run_details WHERE "
	                             "job_name = 'fresh-view' AND status = 'succeeded'"),
	              "no first run:\n%s", itest_read_file(e.log));
	for (int i = 0; i < 100 && !fresh_has(port, "fresh-view", "unchanged_since"); i++)
		itest_sleep(0.1);
	ck_assert_msg(fresh_has(port, "fresh-view", "unchanged_since"),
	              "status.json never said the sources were unchanged:\n%s",
	              itest_read_file(e.log));
	char *dom = itest_chromium(e.dir, "--dump-dom", url);
	char *row = job_row(dom, "fresh-view");
	char *at = strstr(row, "lag 0s of 3s SLA");
	ck_assert_msg(at, "no lag against the SLA in the row: %s", row);
	ck_assert_msg(!strstr(row, "freshness bad"), "red while fresh: %s", row);
	int hh, mm, ss;
	at = strstr(row, "sources unchanged since ");
	ck_assert_msg(at && sscanf(at, "sources unchanged since %d:%d:%d UTC", &hh, &mm, &ss) == 3,
	              "no \"sources unchanged since HH:MM:SS UTC\": %s", row);
	ck_assert_msg(strstr(row, "freshness 3s"), "no freshness in the schedule column: %s", row);
	free(row);
	row = job_row(dom, "plain");
	ck_assert_msg(!strstr(row, "SLA") && !strstr(row, "freshness") && !strstr(row, "unchanged"),
	              "freshness shown for a job without it: %s", row);
	free(row);
	free(dom);

	/* paused, so the change is not reflected: a write, and the lag grows past the SLA */
	int status;
	char *out = itest_cli(&status, "pause", "-c", e.conf, "fresh-view", NULL);
	ck_assert_msg(status == 0, "pause: %d %s", status, out);
	free(out);
	itest_exec(e.db, "INSERT INTO public.src DEFAULT VALUES");
	for (int i = 0; i < 150 && !fresh_has(port, "fresh-view", "over_sla"); i++)
		itest_sleep(0.1);
	ck_assert_msg(fresh_has(port, "fresh-view", "over_sla"),
	              "the lag never passed the SLA:\n%s", itest_read_file(e.log));
	dom = itest_chromium(e.dir, "--dump-dom", url);
	row = job_row(dom, "fresh-view");
	at = strstr(row, "<span class=\"freshness bad\"");
	ck_assert_msg(at, "the lag past the SLA is not red: %s", row);
	at = strstr(at, ">lag ");
	int lag = -1;
	char sla[8] = "";
	ck_assert_msg(at && sscanf(at, ">lag %ds of %7s SLA", &lag, sla) == 2 && lag >= 3 &&
	                  strcmp(sla, "3s") == 0,
	              "no \"lag Ns of 3s SLA\" past the SLA: %s", row);
	ck_assert_msg(!strstr(row, "unchanged since"), "unchanged while changed: %s", row);
	free(row);
	row = job_row(dom, "plain");
	ck_assert_msg(!strstr(row, "SLA") && !strstr(row, "freshness"),
	              "freshness shown for a job without it: %s", row);
	free(row);
	free(dom);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(health_follows_the_history_database)
{
	struct itest_env e;
	itest_env_init(&e, "http-health", "it_http_health");
	char *hist_ci = itest_sandbox2_start(e.dir);
	itest_write_file(
	    e.conf,
	    "plugin_dir = \"%s\";\n"
	    "state_dir = \"%s/state\";\n"
	    "databases = { app = { conninfo = \"%s\"; }; hist = { conninfo = \"%s\"; }; };\n"
	    "history = { database = \"hist\"; };\n"
	    "http = { listen = \"127.0.0.1:0\"; };\n",
	    e.dir, e.dir, e.ci, hist_ci);
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install: %s", out);
	free(out);
	itest_env_start(&e);
	int port = logged_port(e.log);

	struct resp r = get(port, "/health");
	ck_assert_msg(r.code == 200, "%d %s", r.code, r.body);
	resp_free(&r);
	/* the check asks on the history's own session ("pgcrond", which the pool's connections
	 * are named too before a run): no session of its own, during a check or after it */
	PGconn *hist = itest_connect(hist_ci);
	r = get(port, "/health");
	resp_free(&r);
	char *other = itest_scalar(hist, "SELECT string_agg(application_name, ', ')"
	                                 " FROM pg_stat_activity WHERE backend_type = 'client"
	                                 " backend' AND pid <> pg_backend_pid()"
	                                 " AND application_name <> 'pgcrond'");
	ck_assert_msg(!other, "sessions of their own: %s", other);
	PQfinish(hist);

	/* the history server stops: 503, saying why */
	itest_sandbox2("pause");
	itest_sleep(1.2); /* past the reuse of the last answer */
	r = get(port, "/health");
	ck_assert_msg(r.code == 503, "%d %s", r.code, r.body);
	json_t *h = parse_json(r.body);
	ck_assert_str_eq(json_string_value(json_object_get(h, "status")), "unavailable");
	const char *why = json_string_value(json_object_get(h, "reason"));
	ck_assert_msg(why && strstr(why, "history database"), "reason: %s", r.body);
	json_decref(h);
	resp_free(&r);

	/* back: 200 again, on a new connection (within 10 s: the check connects again) */
	itest_sandbox2("resume");
	for (double until = itest_now() + 10;; resp_free(&r)) {
		itest_sleep(0.3);
		r = get(port, "/health");
		if (r.code == 200 || itest_now() > until)
			break;
	}
	ck_assert_msg(r.code == 200, "%d %s", r.code, r.body);
	resp_free(&r);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	free(hist_ci);
	itest_env_teardown(&e);
}
END_TEST

/* A server that accepts connections and never says a word (a stopped host, a hung
 * server): the check gives up after its deadline. */
START_TEST(health_503_when_history_is_silent)
{
	struct itest_env e;
	itest_env_init(&e, "http-silent", "it_http_silent");
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	ck_assert_int_eq(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(ls, 16), 0);
	ck_assert_int_eq(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
	itest_write_file(e.conf,
	                 "plugin_dir = \"%s\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = { app = { conninfo = \"%s\"; }; hist = { conninfo = "
	                 "\"host=127.0.0.1 port=%d dbname=x user=x connect_timeout=60\"; }; };\n"
	                 "history = { database = \"hist\"; };\n"
	                 "http = { listen = \"127.0.0.1:0\"; };\n",
	                 e.dir, e.dir, e.ci, ntohs(sa.sin_port));
	itest_env_start(&e);
	int port = logged_port(e.log);
	/* a client that leaves before its answer: the answer later goes nowhere, harmlessly */
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in da = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(connect(c, (struct sockaddr *)&da, sizeof(da)), 0);
	static const char req[] = "GET /health HTTP/1.0\r\n\r\n";
	ck_assert_int_eq(write(c, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
	itest_sleep(0.2);
	close(c);
	itest_sleep(2.5); /* past the check's deadline */
	double t0 = itest_now();
	struct resp r = get(port, "/health");
	double took = itest_now() - t0;
	ck_assert_msg(r.code == 503, "%d %s", r.code, r.body);
	ck_assert_msg(strstr(r.body, "did not answer SELECT 1 within 2000 ms"), "%s", r.body);
	ck_assert_msg(took < 5, "took %.1f s", took);
	resp_free(&r);
	/* the rest of the daemon is unaffected meanwhile */
	r = get(port, "/metrics");
	ck_assert_int_eq(r.code, 200);
	resp_free(&r);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	close(ls);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(token_guards_remote_and_control)
{
	struct itest_env e;
	const char *token = "s3cr3t-t0ken-4f2a9c0b7d1e6a5b";
	itest_env_setup(&e, "http-token", "it_http_token");
	char *tf = itest_env_path(&e, "http.token");
	itest_write_file(tf, "%s\n", token);
	chmod(tf, 0600);
	itest_chown_user(tf);
	itest_env_main(&e, "http = { listen = \"0.0.0.0:0\"; allow_remote = true; token_file = "
	                   "\"http.token\"; };\n");
	itest_env_job(
	    &e, "10-j.conf",
	    "jobs = ( { name = \"manual-only\"; schedule = \"0 0 1 1 *\";\n"
	    "        command = \"SELECT 42\"; },\n"
	    "  { name = \"markup\"; schedule = \"@reboot\"; command = \"DO $$ BEGIN RAISE "
	    "EXCEPTION 'markup <!-- <script> <b>x</b>' USING DETAIL = 'the lag is 3 "
	    "hours', HINT = 'check the loader'; END $$\"; } );\n");
	itest_env_start(&e);
	int port = logged_port(e.log);
	ck_assert(itest_env_wait(&e, 10,
	                         "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE job_name "
	                         "= 'markup' AND status = 'failed'"));

	struct resp r = get(port, "/metrics");
	ck_assert_msg(r.code == 401, "%d", r.code);
	ck_assert(strstr(r.head, "WWW-Authenticate: Bearer"));
	resp_free(&r);
	r = http_req("127.0.0.1", port, "GET", "/metrics", "wrong-token-wrong-token");
	ck_assert_int_eq(r.code, 401);
	resp_free(&r);
	r = http_req("127.0.0.1", port, "GET", "/metrics", token);
	ck_assert_int_eq(r.code, 200);
	resp_free(&r);
	r = get(port, "/health"); /* for load balancers, without the token */
	ck_assert_int_eq(r.code, 200);
	resp_free(&r);
	/* the page without the token: no state in it; in a browser it asks for the token */
	r = get(port, "/");
	ck_assert_int_eq(r.code, 200);
	ck_assert_msg(!strstr(r.body, "manual-only"), "state without the token");
	resp_free(&r);
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	char *dom = itest_chromium(e.dir, "--virtual-time-budget=2000 --dump-dom", url);
	ck_assert_msg(strstr(dom, "<form id=\"login\">"), "no token form shown: %s", dom);
	ck_assert_msg(!strstr(dom, "manual-only"), "%s", dom);
	free(dom);
	r = http_req("127.0.0.1", port, "GET", "/", token); /* with it: the state inlined */
	ck_assert_msg(r.code == 200 && strstr(r.body, "manual-only"), "%d", r.code);
	/* and the failure's whole text, shown as text (the page as served, opened from a file:
	 * a browser cannot send the header with the page) */
	char *page = itest_env_path(&e, "page.html"), *js = itest_env_path(&e, "page.js");
	itest_write_file(page, "%s", r.body);
	resp_free(&r);
	r = http_req("127.0.0.1", port, "GET", "/page.js", NULL); /* its script, beside it */
	ck_assert_int_eq(r.code, 200);
	itest_write_file(js, "%s", r.body);
	resp_free(&r);
	free(js);
	snprintf(url, sizeof(url), "file://%s", page);
	dom = itest_chromium(e.dir, "--dump-dom", url);
	ck_assert_msg(strstr(dom, "<pre>markup &lt;!-- &lt;script&gt; &lt;b&gt;x&lt;/b&gt; DETAIL: "
	                          "the lag is 3 hours HINT: check the loader</pre>"),
	              "no whole failure text: %s", dom);
	free(dom);
	free(page);
	r = http_req("127.0.0.1", port, "GET", "/status.json", token);
	ck_assert_msg(r.code == 200 && strstr(r.body, "the lag is 3 hours") &&
	                  !strstr(r.body, "\"redacted\""),
	              "%d %s", r.code, r.body);
	resp_free(&r);

	/* control: only with the token, and then the run happens */
	r = http_req("127.0.0.1", port, "POST", "/jobs/manual-only/trigger", NULL);
	ck_assert_int_eq(r.code, 401);
	resp_free(&r);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                                     "job_name = 'manual-only'"),
	                 0);
	r = http_req("127.0.0.1", port, "POST", "/jobs/manual-only/trigger", token);
	ck_assert_msg(r.code == 202, "%d %s", r.code, r.body);
	resp_free(&r);
	ck_assert(
	    itest_env_wait(&e, 10,
	                   "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE job_name = "
	                   "'manual-only' AND trigger = 'manual' AND status = 'succeeded'"));
	r = http_req("127.0.0.1", port, "POST", "/jobs/no-such-job/trigger", token);
	ck_assert_int_eq(r.code, 404);
	resp_free(&r);

	/* a new token takes effect at a reload; the old one stops working */
	const char *token2 = "another-t0ken-9d8c7b6a5f4e3d2c";
	itest_write_file(tf, "%s\n", token2); /* mode 0644 */
	kill(e.pid, SIGHUP);
	ck_assert(itest_wait_log(e.log, "can be read by others (mode 0644)", 10));
	r = http_req("127.0.0.1", port, "GET", "/status.json", token); /* the old one stays */
	ck_assert_int_eq(r.code, 200);
	resp_free(&r);
	chmod(tf, 0600);
	kill(e.pid, SIGHUP);
	ck_assert(itest_wait_log(e.log, "configuration reloaded", 10));
	r = http_req("127.0.0.1", port, "GET", "/status.json", token);
	ck_assert_int_eq(r.code, 401);
	resp_free(&r);
	r = http_req("127.0.0.1", port, "GET", "/status.json", token2);
	ck_assert_int_eq(r.code, 200);
	resp_free(&r);
	/* the http group removed by a reload: the listener stays as it was, token and all */
	itest_env_main(&e, NULL);
	kill(e.pid, SIGHUP);
	ck_assert(itest_wait_log(e.log, "http changed; the listener stays on 0.0.0.0:0", 10));
	r = get(port, "/status.json");
	ck_assert_int_eq(r.code, 401);
	resp_free(&r);

	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	char *log = itest_read_file(e.log);
	ck_assert_msg(!strstr(log, token) && !strstr(log, token2), "a token is in the log:\n%s",
	              log);
	ck_assert_msg(strstr(log, "refused a request"), "refusals are logged:\n%s", log);
	free(log);
	free(tf);
	itest_env_teardown(&e);
}
END_TEST

/* Without token_file, a loopback listener serves reads and refuses every control request
 * that comes without a login to the page. */
START_TEST(no_control_without_token)
{
	struct itest_env e;
	itest_env_setup(&e, "http-notoken", "it_http_notoken");
	itest_env_main(&e, "http = { listen = \"127.0.0.1:0\"; };\n");
	itest_env_job(
	    &e, "10-j.conf",
	    "jobs = ( { name = \"j\"; schedule = \"0 0 1 1 *\"; command = \"SELECT 1\"; },\n"
	    "  { name = \"markup\"; schedule = \"@reboot\"; command = \"DO $$ BEGIN RAISE "
	    "EXCEPTION 'markup <!-- <script> <b>x</b>'; END $$\"; } );\n");
	itest_env_start(&e);
	int port = logged_port(e.log);
	/* the failure is shown, its text is not: every local user reads this listener */
	ck_assert(itest_env_wait(&e, 10,
	                         "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE job_name "
	                         "= 'markup' AND status = 'failed'"));
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	char *dom = itest_chromium(e.dir, "--dump-dom", url);
	ck_assert_msg(strstr(dom, "data-job=\"markup\"") &&
	                  strstr(dom, "(the text is shown with http.token_file only)") &&
	                  !strstr(dom, "&lt;script"),
	              "%s", dom);
	ck_assert_msg(strstr(dom, "History database app: connected"), "%s", dom);
	free(dom);
	struct resp r = get(port, "/status.json");
	ck_assert_msg(r.code == 200 && !strstr(r.body, "<script"), "%d %s", r.code, r.body);
	resp_free(&r);
	r = http_req("127.0.0.1", port, "POST", "/jobs/j/trigger", NULL);
	ck_assert_int_eq(r.code, 401); /* neither logged in (POST /login) nor with a token */
	ck_assert_msg(strstr(r.body, "log in first") && strstr(r.body, "token_file"), "%s", r.body);
	resp_free(&r);
	r = get(port, "/nope");
	ck_assert_int_eq(r.code, 404);
	resp_free(&r);
	itest_sleep(0.5);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details WHERE "
	                                     "job_name = 'j'"),
	                 0);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

/* While the daemon drains its runs after SIGTERM, a load balancer must stop sending work. */
START_TEST(health_503_while_stopping)
{
	struct itest_env e;
	itest_env_setup(&e, "http-stop", "it_http_stop");
	itest_env_main(&e, "http = { listen = \"127.0.0.1:0\"; };\n");
	itest_env_job(&e, "10-j.conf",
	              "job = { name = \"long\"; schedule = \"* * * * * *\";\n"
	              "        command = \"SELECT pg_sleep(3)\"; };\n");
	itest_env_start(&e);
	int port = logged_port(e.log);
	ck_assert(itest_env_wait(&e, 10,
	                         "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE status = "
	                         "'running'"));
	struct resp r = get(port, "/health");
	ck_assert_msg(r.code == 200, "%d %s", r.code, r.body);
	resp_free(&r);
	kill(e.pid, SIGTERM);
	ck_assert(itest_wait_log(e.log, "shutting down", 5));
	r = get(port, "/health");
	ck_assert_msg(r.code == 503 && strstr(r.body, "\"reason\":\"pgcrond is shutting down\""),
	              "%d %s", r.code, r.body);
	resp_free(&r);
	ck_assert_int_eq(itest_env_stop(&e, 0, 10), 0); /* the run finishes, then it exits */
	itest_env_teardown(&e);
}
END_TEST

/* A port that cannot be bound stops the daemon at start, saying which and why. */
START_TEST(port_in_use_stops_the_start)
{
	struct itest_env e;
	itest_env_init(&e, "http-busy", "it_http_busy");
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	ck_assert_int_eq(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(ls, 1), 0);
	ck_assert_int_eq(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
	itest_env_main(&e, "http = { listen = \"127.0.0.1:%d\"; };\n", ntohs(sa.sin_port));
	e.pid = itest_daemon_start(e.conf, e.log);
	int st = itest_env_stop(&e, 0, 10); /* waits for it to exit by itself */
	char *log = itest_read_file(e.log);
	char want[128];
	snprintf(want, sizeof(want), "http: cannot listen on 127.0.0.1:%d: Address already in use",
	         ntohs(sa.sin_port));
	ck_assert_msg(st == 69 && strstr(log, want), "exit %d:\n%s", st, log);
	free(log);
	close(ls);
	itest_env_teardown(&e);
}
END_TEST

/* The daemon as a service unit with a tight descriptor limit would run it. */
static void limit_fds(void *arg)
{
	(void)arg;
	struct rlimit rl = {256, 256};
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		_exit(70);
}

/* Lines of LOG holding NEEDLE. */
static int log_lines_with(const char *log, const char *needle)
{
	int n = 0;
	for (const char *p = strstr(log, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* A local user opens many more connections than the listener serves and sends nothing whole
 * on them: the daemon must not run out of descriptors (its runs would fail with "Too many
 * open files"), nor hold them all so that /health waits in the kernel's backlog (a liveness
 * probe would restart a healthy daemon). At the cap, the oldest connection that asked
 * nothing yet is closed for each new one: 1,100 such clients, runs go on, /health answers
 * within 3 s, the log says it once. */
START_TEST(slow_clients_cannot_starve_the_jobs)
{
	struct itest_env e;
	itest_env_setup(&e, "http-slow", "it_http_slow");
	itest_env_main(&e, "http = { listen = \"127.0.0.1:0\"; };\n");
	itest_env_job(&e, "10-j.conf",
	              "job = { name = \"tick\"; schedule = \"* * * * * *\";\n"
	              "        command = \"SELECT 1\"; };\n");
	e.pid = itest_daemon_start_with(e.conf, e.log, limit_fds, NULL);
	ck_assert_msg(itest_wait_log(e.log, "started:", 10), "%s", itest_read_file(e.log));
	int port = logged_port(e.log);

	enum { N = 1100 };
	struct rlimit rl;
	ck_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	ck_assert_msg(rl.rlim_max >= N + 100,
	              "the test needs %d descriptors; the hard limit is %llu", N + 100,
	              (unsigned long long)rl.rlim_max);
	rl.rlim_cur = rl.rlim_max;
	ck_assert(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	static int fds[N];
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	for (int i = 0; i < N; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fds[i], 0);
		int rc = connect(fds[i], (struct sockaddr *)&sa, sizeof(sa));
		ck_assert_msg(rc == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
		/* half a request line, never finished */
		if (rc == 0)
			(void)!write(fds[i], "GET /status.json HTTP/1.1\r\n", 27);
	}
	/* the jobs go on while the connections are held */
	long long before = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                       "WHERE job_name = 'tick' AND status = 'succeeded'");
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) >= %lld FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND status = 'succeeded'",
	                             before + 3),
	              "the jobs stopped:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE status = 'failed'"),
	                 0);
	ck_assert_msg(
	    itest_wait_log(e.log, "connections open, the most http.max_connections allows", 5),
	    "%s", itest_read_file(e.log));
	/* a liveness probe, while they are all still held */
	double t0 = itest_now();
	struct resp r = get(port, "/health");
	double took = itest_now() - t0;
	ck_assert_msg(r.code == 200 && took < 3, "/health: %d after %.1f s: %s", r.code, took,
	              r.body);
	resp_free(&r);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	char *log = itest_read_file(e.log);
	ck_assert_msg(!strstr(log, "Too many open files"), "%s", log);
	ck_assert_msg(log_lines_with(log, "http:") <= 4 && strlen(log) < 20000,
	              "the log is flooded (%zu bytes):\n%.4000s", strlen(log), log);
	free(log);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("http");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, metrics_match_history_and_page_renders);
	tcase_add_test(tc, health_follows_the_history_database);
	tcase_add_test(tc, health_503_when_history_is_silent);
	tcase_add_test(tc, token_guards_remote_and_control);
	tcase_add_test(tc, no_control_without_token);
	tcase_add_test(tc, health_503_while_stopping);
	tcase_add_test(tc, port_in_use_stops_the_start);
	tcase_add_test(tc, slow_clients_cannot_starve_the_jobs);
	suite_add_tcase(s, tc);
	/* its own case: CK_RUN_CASE=freshness runs it alone */
	TCase *fresh = tcase_create("freshness");
	tcase_set_timeout(fresh, 120);
	tcase_add_test(fresh, page_shows_freshness_lag_against_its_sla);
	suite_add_tcase(s, fresh);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
