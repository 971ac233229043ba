/* The crossing test: every kind of job through every way a job is made, every command and the
 * faults a lone instance meets with runs in flight (docs/jobs.md, "Kinds of job").
 *
 * Each capability worked in its own lane while the places where two lanes meet broke (an HTTP
 * job in a job file made `pgcrond install` fail; list and status named it as two other
 * kinds). This test walks the kinds of enum job_kind (config.h) from the first to
 * JOB_KIND_COUNT: the fixture below says, for each, how a job of that kind is written, what
 * `install` records as its command, what its history row says it ran and how the test sees
 * that it ran. The switches have no default, so a kind added to the enum fails the build
 * here until it has a fixture, and is then in every cell by being there.
 *
 * The ways a job is made: a job file; cron.schedule() (SQL jobs only: its signature takes a
 * command); `pgcrond import` from a server running the real pg_cron (SQL jobs only: pg_cron
 * has no other kind). The forms of a schedule (docs/calendars.md): a cron expression, a
 * recurrence rule ("RRULE:..."), a cron expression with a spread, a cron expression with a
 * calendar whose date takes its next fire away (skip_dates); each kind's job of each form from
 * every way that can carry the form. Every cell asserts what a user sees: the exit status
 * and the lines of the command, the rows of pgcrond.job, cron.job and the history, what the
 * job did. Every command that names a job, and every one of the whole configuration, also meets
 * what is wrong: a job made in SQL that the daemon refuses, a calendar that can no longer be
 * read (refusals). The fault cells also run an SQL job of two statements with history =
 * "failures" (its successes counted, not written): what it inserted must equal what it
 * counted. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "cron.h"
#include "itest.h"

#define DB "it_crossings"
/* the HTTP jobs' user info and path: secrets that no command, row or log line may show */
#define SECRET_USER "bot"
#define SECRET_PW "pw-crossing-secret"
#define SECRET_PATH "tok-crossing-secret"

/* A plain HTTP server: GET /tok-.../NAME answers 200 "ok NAME" after the number of seconds
 * in DIR/sleep.txt (0 if none; while it says "hold", not before it says something else), and
 * appends "NAME" to DIR/requests.txt when it is asked, before it sleeps. Writes its port. */
static const char server_py[] =
    "import http.server, socketserver, sys, os, time\n"
    "d = sys.argv[1]\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *a): pass\n"
    "    def do_GET(self):\n"
    "        name = self.path.rsplit('/', 1)[-1]\n"
    "        with open(os.path.join(d, 'requests.txt'), 'a') as f: f.write(name + '\\n')\n"
    "        def said():\n"
    "            try: return open(os.path.join(d, 'sleep.txt')).read().strip()\n"
    "            except Exception: return '0'\n"
    "        while said() == 'hold': time.sleep(0.05)\n"
    "        try: s = float(said())\n"
    "        except Exception: s = 0\n"
    "        time.sleep(s)\n"
    "        body = ('ok ' + name).encode()\n"
    "        try:\n"
    "            self.send_response(200)\n"
    "            self.send_header('Content-Length', str(len(body)))\n"
    "            self.end_headers()\n"
    "            self.wfile.write(body)\n"
    "        except (BrokenPipeError, ConnectionResetError): pass\n"
    "class S(socketserver.ThreadingMixIn, http.server.HTTPServer):\n"
    "    daemon_threads = True\n"
    "s = S(('127.0.0.1', 0), H)\n"
    "open(os.path.join(d, 'ports.tmp'), 'w').write(str(s.server_address[1]))\n"
    "os.rename(os.path.join(d, 'ports.tmp'), os.path.join(d, 'ports.txt'))\n"
    "s.serve_forever()\n";

static int http_port;
static char http_dir[1024];

/* ---- the kinds ---------------------------------------------------------------------------- */

static const char *kind_name(enum job_kind k)
{
	switch (k) {
	case JOB_KIND_SQL:
		return "sql";
	case JOB_KIND_PLUGIN:
		return "plugin";
	case JOB_KIND_HTTP:
		return "http";
	}
	ck_abort_msg("kind %d has no fixture", (int)k);
	return NULL;
}

/* The keys that make job NAME of kind K, as a job file writes them. Its run takes the seconds
 * in the jobs database's public.crossing_sleep (SQL and plugin) or in the HTTP server's
 * sleep.txt (HTTP): 0 unless a fault cell sets them. */
static void kind_keys(enum job_kind k, const char *name, char *out, size_t len)
{
	char view[80];
	switch (k) {
	case JOB_KIND_SQL:
		snprintf(out, len,
		         "command = \"SELECT pg_sleep(s) FROM public.crossing_sleep;"
		         " INSERT INTO public.crossing_ticks (job) VALUES ('%s')\";",
		         name);
		return;
	case JOB_KIND_PLUGIN:
		snprintf(view, sizeof(view), "%s", name);
		for (char *p = view; *p; p++)
			if (*p == '-')
				*p = '_';
		snprintf(
		    out, len,
		    "plugin = \"sql_view\"; view = \"public.mv_%s\"; unique_key = \"k\";\n"
		    "\tquery = \"SELECT 1 AS k, (SELECT pg_sleep(s) FROM public.crossing_sleep)"
		    "::text AS slept, count(*) AS n FROM public.crossing_ticks\";",
		    view);
		return;
	case JOB_KIND_HTTP:
		snprintf(out, len,
		         "http = { url = \"http://" SECRET_USER ":" SECRET_PW
		         "@127.0.0.1:%d/" SECRET_PATH "/%s\"; };",
		         http_port, name);
		return;
	}
	ck_abort_msg("kind %d has no fixture", (int)k);
}

/* What pgcrond.job and cron.job record as the command of job NAME of kind K. */
static void kind_recorded(enum job_kind k, const char *name, char *out, size_t len)
{
	switch (k) {
	case JOB_KIND_SQL:
		snprintf(out, len,
		         "SELECT pg_sleep(s) FROM public.crossing_sleep;"
		         " INSERT INTO public.crossing_ticks (job) VALUES ('%s')",
		         name);
		return;
	case JOB_KIND_PLUGIN:
		snprintf(out, len, "plugin sql_view");
		return;
	case JOB_KIND_HTTP:
		snprintf(out, len, "GET http://127.0.0.1:%d/...", http_port);
		return;
	}
	ck_abort_msg("kind %d has no fixture", (int)k);
}

/* How its history rows begin (the command column). */
static void kind_history_command(enum job_kind k, const char *name, char *out, size_t len)
{
	switch (k) {
	case JOB_KIND_SQL:
		kind_recorded(k, name, out, len);
		return;
	case JOB_KIND_PLUGIN:
		snprintf(out, len, "plugin sql_view: ");
		return;
	case JOB_KIND_HTTP:
		kind_recorded(k, name, out, len);
		return;
	}
	ck_abort_msg("kind %d has no fixture", (int)k);
}

/* What list and status say of it under faults (docs/faults.md). */
static const char *kind_once(enum job_kind k)
{
	switch (k) {
	case JOB_KIND_SQL:
		return "yes"; /* (two statements, no transaction control: one transaction) */
	case JOB_KIND_PLUGIN:
		return "fenced: plugin";
	case JOB_KIND_HTTP:
		return "at most once per attempt";
	}
	ck_abort_msg("kind %d has no fixture", (int)k);
	return NULL;
}

/* How many times job NAME of kind K has done its work, as the test sees it from outside: the
 * rows it inserted, the requests the server got, or the plugin's successful refreshes (its
 * view, which the run refreshes, has no trace of its own). */
static long long kind_effects(enum job_kind k, PGconn *jobs, PGconn *hist, const char *name)
{
	char sql[512];
	switch (k) {
	case JOB_KIND_SQL:
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) FROM public.crossing_ticks WHERE job = '%s'", name);
		return itest_scalar_ll(jobs, sql);
	case JOB_KIND_PLUGIN:
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = '%s'"
		         " AND status = 'succeeded'",
		         name);
		return itest_scalar_ll(hist, sql);
	case JOB_KIND_HTTP: {
		char path[1100], needle[128];
		snprintf(path, sizeof(path), "%s/requests.txt", http_dir);
		snprintf(needle, sizeof(needle), "\n%s\n", name);
		char *text = itest_read_file(path), *with_nl = malloc(strlen(text) + 2);
		ck_assert_ptr_nonnull(with_nl);
		snprintf(with_nl, strlen(text) + 2, "\n%s", text);
		long long n = 0;
		for (char *p = with_nl; (p = strstr(p, needle)); p++)
			n++;
		free(text);
		free(with_nl);
		return n;
	}
	}
	ck_abort_msg("kind %d has no fixture", (int)k);
	return 0;
}

/* Whether a run of kind K lives on a database connection, so that a fault of the server or of
 * the connection cuts it (an HTTP request needs no database). */
static bool kind_on_db(enum job_kind k)
{
	switch (k) {
	case JOB_KIND_SQL:
	case JOB_KIND_PLUGIN:
		return true;
	case JOB_KIND_HTTP:
		return false;
	}
	ck_abort_msg("kind %d has no fixture", (int)k);
	return false;
}

/* ---- the ways a job is made --------------------------------------------------------------- */

enum way { WAY_FILE, WAY_CRON_SCHEDULE, WAY_IMPORT };
#define WAY_COUNT 3

static const char *way_name(enum way w)
{
	switch (w) {
	case WAY_FILE:
		return "file";
	case WAY_CRON_SCHEDULE:
		return "cron";
	case WAY_IMPORT:
		return "import";
	}
	return NULL;
}

/* Whether way W makes jobs of kind K: cron.schedule() and pg_cron take a command, so they
 * make SQL jobs; a plugin or an HTTP call is written in a job file. */
static bool way_makes(enum way w, enum job_kind k)
{
	switch (k) {
	case JOB_KIND_SQL:
		return true;
	case JOB_KIND_PLUGIN:
	case JOB_KIND_HTTP:
		return w == WAY_FILE;
	}
	return false;
}

/* ---- the forms of a schedule --------------------------------------------------------------- */

enum form { FORM_CRON, FORM_RRULE, FORM_SPREAD, FORM_SKIP };
#define FORM_COUNT 4

/* The calendar of FORM_SKIP, in the main file: one date, that of "0 3 1 1 *"'s next fire
 * (days since 1970-01-01, UTC), written by write_calendar. */
#define CALENDAR "cross"
static int64_t skip_day;

/* What a job's name ends with for form F. */
static const char *form_suffix(enum form f)
{
	switch (f) {
	case FORM_CRON:
		return "";
	case FORM_RRULE:
		return "-rrule";
	case FORM_SPREAD:
		return "-spread";
	case FORM_SKIP:
		return "-skip";
	}
	return NULL;
}

/* The schedule of form F in ROUND 0 (as made) or 1 (after the reload): January 1st at 03:00 or
 * 04:00, never while the test runs; each run is asked for. */
static void form_schedule(enum form f, int round, char *out, size_t len)
{
	switch (f) {
	case FORM_CRON:
	case FORM_SPREAD:
	case FORM_SKIP:
		snprintf(out, len, "0 %d 1 1 *", 3 + round);
		return;
	case FORM_RRULE:
		snprintf(out, len, "RRULE:FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=1;BYHOUR=%d", 3 + round);
		return;
	}
}

/* Its spread in seconds (0: none). */
static int form_spread(enum form f, int round)
{
	return f == FORM_SPREAD ? 30 - 10 * round : 0;
}

/* The keys of form F beyond its schedule in round ROUND, as a job file writes them ("": none),
 * and as pgcrond.schedule()'s options (NULL: none, cron.schedule() makes it). */
static void form_keys(enum form f, int round, char *keys, size_t klen, char *json, size_t jlen,
                      bool *has_json)
{
	int w = form_spread(f, round);
	keys[0] = json[0] = '\0';
	*has_json = w || f == FORM_SKIP;
	if (w) {
		snprintf(keys, klen, " spread = \"%ds\";", w);
		snprintf(json, jlen, "{\"spread\": \"%ds\"}", w);
	} else if (f == FORM_SKIP) {
		snprintf(keys, klen, " skip_dates = \"" CALENDAR "\";");
		snprintf(json, jlen, "{\"skip_dates\": \"" CALENDAR "\"}");
	}
}

/* Whether way W carries form F: cron.schedule() takes a recurrence rule, and a spread and a
 * calendar through pgcrond.schedule()'s options; the real pg_cron takes none of them (it
 * refuses a rule: the commands cell shows it). */
static bool form_way(enum form f, enum way w)
{
	switch (f) {
	case FORM_CRON:
		return true;
	case FORM_RRULE:
		return w != WAY_IMPORT;
	case FORM_SPREAD:
	case FORM_SKIP:
		return w != WAY_IMPORT;
	}
	return false;
}

/* How list, status and next --job write the schedule of job NAME of form F in round ROUND,
 * with its spread, "0 3 1 1 *, spread 30s (+17s)", or its calendar, "0 3 1 1 *, skip_dates
 * cross". */
static void form_shown(enum form f, int round, const char *name, char *out, size_t len)
{
	char sched[128];
	int w = form_spread(f, round);
	form_schedule(f, round, sched, sizeof(sched));
	int n =
	    w ? snprintf(out, len, "%s, spread %ds (+%ds)", sched, w, cron_spread_offset(name, w))
	    : f == FORM_SKIP ? snprintf(out, len, "%s, skip_dates " CALENDAR, sched)
	                     : snprintf(out, len, "%s", sched);
	ck_assert_int_lt(n, (int)len);
}

/* The next fire after now of job NAME of form F in round ROUND, as list and status show it:
 * with FORM_SKIP, the schedule's next fire on a date other than the calendar's. */
static void form_next(enum form f, int round, const char *name, char *out, size_t len)
{
	char sched[128];
	cron_expr ce;
	form_schedule(f, round, sched, sizeof(sched));
	ck_assert_int_eq(cron_parse(sched, &ce, NULL, 0), 0);
	int64_t t = cron_next(&ce, NULL, (int64_t)time(NULL));
	while (f == FORM_SKIP && t / 86400 == skip_day)
		t = cron_next(&ce, NULL, t);
	ck_assert_int_eq(
	    cron_time_format(t + cron_spread_offset(name, form_spread(f, round)), out, len), 0);
}

/* ---- helpers ------------------------------------------------------------------------------ */

static char *cli(struct itest_env *e, int want, const char *a, const char *b, const char *c)
{
	int status;
	char *out = c   ? itest_cli(&status, a, "-c", e->conf, b, c, NULL)
	            : b ? itest_cli(&status, a, "-c", e->conf, b, NULL)
	                : itest_cli(&status, a, "-c", e->conf, NULL);
	ck_assert_msg(status == want, "pgcrond %s %s %s: exit %d, not %d:\n%s", a, b ? b : "",
	              c ? c : "", status, want, out);
	ck_assert_msg(!strstr(out, SECRET_PW) && !strstr(out, SECRET_PATH),
	              "pgcrond %s shows an HTTP job's secret:\n%s", a, out);
	return out;
}

/* The line of OUT that starts with NEEDLE followed by a blank, or by anything when NEEDLE ends
 * with ':' (malloc'd); fails the test when there is none. */
static char *line_with(const char *out, const char *needle, const char *what)
{
	size_t len = strlen(needle);
	for (const char *p = out; *p; p += strcspn(p, "\n") + (p[strcspn(p, "\n")] != '\0')) {
		if (strncmp(p, needle, len) != 0 ||
		    (needle[len - 1] != ':' && p[len] != ' ' && p[len] != '\t'))
			continue;
		char *line = strndup(p, strcspn(p, "\n"));
		ck_assert_ptr_nonnull(line);
		return line;
	}
	ck_abort_msg("%s: no line starting with \"%s\" in:\n%s", what, needle, out);
	return NULL;
}

/* FORM_SKIP's calendar: the date of "0 3 1 1 *"'s next fire, in DIR/cross.ics. */
static void write_calendar(const char *dir)
{
	cron_expr ce;
	ck_assert_int_eq(cron_parse("0 3 1 1 *", &ce, NULL, 0), 0);
	time_t t = (time_t)cron_next(&ce, NULL, (int64_t)time(NULL));
	struct tm tm;
	gmtime_r(&t, &tm);
	skip_day = (int64_t)t / 86400;
	char path[1100];
	snprintf(path, sizeof(path), "%s/" CALENDAR ".ics", dir);
	itest_write_file(path,
	                 "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//pgcrond//it_crossings//EN\r\n"
	                 "BEGIN:VEVENT\r\nUID:cross@example.com\r\n"
	                 "DTSTART;VALUE=DATE:%04d%02d%02d\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

/* The job files: every kind's job of every form, in ROUND 0 or 1 (form_schedule). */
static void write_files(struct itest_env *e, int round)
{
	char jobs[32768] = "", keys[1024], sched[128], extra[128], json[128];
	size_t used = 0;
	for (int k = 0; k < JOB_KIND_COUNT; k++) {
		char name[64], down[64];
		for (int f = 0; f < FORM_COUNT; f++) {
			snprintf(name, sizeof(name), "%s-file%s", kind_name((enum job_kind)k),
			         form_suffix((enum form)f));
			kind_keys((enum job_kind)k, name, keys, sizeof(keys));
			form_schedule((enum form)f, round, sched, sizeof(sched));
			bool has_json;
			form_keys((enum form)f, round, extra, sizeof(extra), json, sizeof(json),
			          &has_json);
			used +=
			    (size_t)snprintf(jobs + used, sizeof(jobs) - used,
			                     "%s{ name = \"%s\"; schedule = \"%s\";%s\n\t%s }\n",
			                     k || f ? ", " : "", name, sched, extra, keys);
		}
		/* downstream of the next kind's job: every kind after every other, each keeping
		 * only its failures in the history (its successes are counted) */
		snprintf(down, sizeof(down), "%s-down", kind_name((enum job_kind)k));
		kind_keys((enum job_kind)k, down, keys, sizeof(keys));
		used += (size_t)snprintf(jobs + used, sizeof(jobs) - used,
		                         ", { name = \"%s\"; after = [ \"%s-file\" ];"
		                         " history = \"failures\";\n\t%s }\n",
		                         down, kind_name((enum job_kind)((k + 1) % JOB_KIND_COUNT)),
		                         keys);
		ck_assert(used < sizeof(jobs));
	}
	itest_env_job(e, "10-crossings.conf", "jobs = (\n%s);\n", jobs);
}

static void start_http(struct itest_env *e)
{
	snprintf(http_dir, sizeof(http_dir), "%s/http", e->dir);
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "mkdir -p %s", http_dir);
	ck_assert_int_eq(system(cmd), 0);
	char *ports = NULL;
	itest_script_start(http_dir, server_py, &ports);
	http_port = atoi(ports);
	ck_assert_msg(http_port > 0, "the HTTP server did not start: %s", ports);
	free(ports);
}

static void http_sleep(double s)
{
	char path[1100];
	snprintf(path, sizeof(path), "%s/sleep.txt", http_dir);
	itest_write_file(path, "%g", s);
}

/* Its answers wait until http_sleep(). */
static void http_hold(void)
{
	char path[1100];
	snprintf(path, sizeof(path), "%s/sleep.txt", http_dir);
	itest_write_file(path, "hold");
}

/* The names of the jobs of every (kind, way, form) cell the ways make, in order. */
struct cell {
	enum job_kind kind;
	enum way way;
	enum form form;
	char name[64];
};

static int cells_of(struct cell *out)
{
	int n = 0;
	for (int f = 0; f < FORM_COUNT; f++)
		for (int k = 0; k < JOB_KIND_COUNT; k++)
			for (int w = 0; w < WAY_COUNT; w++)
				if (way_makes((enum way)w, (enum job_kind)k) &&
				    form_way((enum form)f, (enum way)w)) {
					out[n].kind = (enum job_kind)k;
					out[n].way = (enum way)w;
					out[n].form = (enum form)f;
					snprintf(out[n].name, sizeof(out[n].name), "%s-%s%s",
					         kind_name((enum job_kind)k), way_name((enum way)w),
					         form_suffix((enum form)f));
					n++;
				}
	return n;
}

/* ---- every command ------------------------------------------------------------------------ */

/* The commands that name a job, as a user writes them ("JOB" stands for the job's name), and
 * whether each reaches the running daemon (the others read the files and the history). */
static const struct {
	const char *a, *b, *c;
	bool daemon;
} job_commands[] = {
    {"status", "JOB", NULL, true},   {"status", "JOB", "--json", true},
    {"next", "--job", "JOB", false}, {"history", "JOB", NULL, false},
    {"pause", "JOB", NULL, true},    {"resume", "JOB", NULL, true},
    {"drop", "JOB", NULL, true},     {"trigger", "--wait", "JOB", true},
    {"trigger", "JOB", NULL, true},
};
/* And those of the whole configuration. */
static const char *const all_commands[][2] = {
    {"list", NULL}, {"status", NULL}, {"status", "--json"}, {"graph", NULL}, {"history", NULL}};
#define N_JOB_COMMANDS (sizeof(job_commands) / sizeof(job_commands[0]))
#define N_ALL_COMMANDS (sizeof(all_commands) / sizeof(all_commands[0]))

/* Job command I for job JOB, exiting WANT; its output (malloc'd). */
static char *job_command(struct itest_env *e, size_t i, const char *job, int want)
{
	const char *b = job_commands[i].b, *c = job_commands[i].c;
	return cli(e, want, job_commands[i].a, strcmp(b, "JOB") ? b : job,
	           c && !strcmp(c, "JOB") ? job : c);
}

/* What a user meets when something is wrong, through every command, with the daemon running:
 * a job made in SQL that the daemon refuses says why wherever it is named (exit 65 where the
 * command needs the job, "not run: WHY" where it lists or reads its history); a calendar that
 * can no longer be read (writable by others) fails check and the reload, and every other
 * command goes on with one warning that names it. Jobs of the files take no run from here but
 * GOOD's (a job of a file that does not use the calendar). */
static void refusals(struct itest_env *e, const char *good)
{
	char why[300], said[400], want[400];
	itest_exec(e->db, "SELECT cron.schedule('sql-refused', '0 0 30 2 *', 'SELECT 1')");
	ck_assert_msg(itest_env_wait(e, 15,
	                             "SELECT refused LIKE 'schedule \"0 0 30 2 *\" never fires%%'"
	                             " FROM pgcrond.job WHERE jobname = 'sql-refused'"),
	              "the daemon did not record why sql-refused is not run:\n%s",
	              itest_tail(e->log));
	char *s =
	    itest_scalar(e->db, "SELECT refused FROM pgcrond.job WHERE jobname = 'sql-refused'");
	snprintf(why, sizeof(why), "%s", s);
	free(s);
	s = itest_scalar(e->db, "SELECT format('job \"sql-refused\" (jobid %s, role \"%s\") is not"
	                        " run: %s', jobid, username, refused) FROM pgcrond.job"
	                        " WHERE jobname = 'sql-refused'");
	snprintf(said, sizeof(said), "%s", s);
	free(s);
	ck_assert_int_eq(itest_count_in_file(e->log, said), 1);
	snprintf(want, sizeof(want), "not run: %s\n", why);
	for (size_t i = 0; i < N_JOB_COMMANDS; i++) {
		bool hist = !strcmp(job_commands[i].a, "history");
		char *out = job_command(e, i, "sql-refused", hist ? 0 : 65);
		ck_assert_msg(strstr(out, hist ? want : said), "pgcrond %s %s %s sql-refused:\n%s",
		              job_commands[i].a, job_commands[i].b,
		              job_commands[i].c ? job_commands[i].c : "", out);
		free(out);
	}
	char *out = cli(e, 0, "list", NULL, NULL), *line = line_with(out, "sql-refused", "list");
	ck_assert_msg(strstr(line, "not run: ") && strstr(line, why), "list: %s", line);
	free(line);
	free(out);
	/* the daemon's state lists it, with why where the reader may see why */
	out = cli(e, 0, "status", NULL, NULL);
	ck_assert_msg(strstr(out, "\nnot run (") && strstr(out, said), "status:\n%s", out);
	free(out);
	s = itest_scalar(e->db, "SELECT jobid FROM pgcrond.job WHERE jobname = 'sql-refused'");
	json_t *st = itest_env_status(e, NULL),
	       *r = json_object_get(json_object_get(st, "refused"), s);
	ck_assert_msg(r && !strcmp(json_string_value(json_object_get(r, "why")), why) &&
	                  !strcmp(json_string_value(json_object_get(r, "name")), "sql-refused"),
	              "status --json has no refused.%s saying %s", s, why);
	json_decref(st);
	out = itest_env_http(e, "/status.json", NULL);
	st = json_loads(out, 0, NULL);
	r = json_object_get(json_object_get(st, "refused"), s);
	ck_assert_msg(r && json_object_get(r, "name") && !json_object_get(r, "why"),
	              "/status.json without a token_file: refused.%s not there or with why:\n%s", s,
	              out);
	json_decref(st);
	free(out);
	free(s);
	out = itest_env_metrics(e);
	ck_assert_msg(strstr(out, "\npgcrond_jobs_refused 1\n"), "/metrics:\n%s", out);
	free(out);
	itest_exec(e->db, "SELECT cron.unschedule('sql-refused')");
	out = itest_env_metrics(e);
	for (int i = 0; i < 150 && !strstr(out, "\npgcrond_jobs_refused 0\n"); i++) {
		free(out);
		usleep(100000);
		out = itest_env_metrics(e);
	}
	ck_assert_msg(strstr(out, "\npgcrond_jobs_refused 0\n"),
	              "/metrics still counts sql-refused 15 s after cron.unschedule:\n%s", out);
	free(out);

	/* the calendar writable by others: check and the reload fail, nothing else */
	char ics[1100];
	snprintf(ics, sizeof(ics), "%s/" CALENDAR ".ics", e->dir);
	ck_assert_int_eq(chmod(ics, 0666), 0);
	ck_assert_int_eq(kill(e->pid, SIGHUP), 0);
	ck_assert_msg(
	    itest_wait_log(e->log, "reload failed; keeping the previous configuration", 15), "%s",
	    itest_tail(e->log));
	out = cli(e, 78, "check", NULL, NULL);
	ck_assert_msg(strstr(out, "calendar \"" CALENDAR "\": refusing "), "check:\n%s", out);
	free(out);
	const char *warning = "warning: calendar \"" CALENDAR "\", ";
	for (size_t i = 0; i < N_JOB_COMMANDS; i++) {
		out = job_command(e, i, good, 0);
		ck_assert_msg(strstr(out, warning), "pgcrond %s %s %s %s with a bad calendar:\n%s",
		              job_commands[i].a, job_commands[i].b,
		              job_commands[i].c ? job_commands[i].c : "", good, out);
		free(out);
	}
	for (size_t i = 0; i < N_ALL_COMMANDS; i++) {
		out = cli(e, 0, all_commands[i][0], all_commands[i][1], NULL);
		ck_assert_msg(strstr(out, warning), "pgcrond %s %s with a bad calendar:\n%s",
		              all_commands[i][0], all_commands[i][1] ? all_commands[i][1] : "",
		              out);
		free(out);
	}
	ck_assert_int_eq(chmod(ics, 0644), 0);
}

START_TEST(every_kind_every_way_every_command)
{
	struct itest_env e;
	itest_env_init(&e, "crossings", DB);
	/* the listener serves TLS, so that its keys are in every command's configuration */
	itest_make_certs(e.dir);
	char *key = itest_env_path(&e, "self.key");
	itest_chown_user(key);
	ck_assert_int_eq(chmod(key, 0600), 0);
	free(key);
	itest_env_main(&e,
	               "http = { listen = \"127.0.0.1:0\"; tls_cert_file = \"self.pem\";"
	               " tls_key_file = \"self.key\"; };\n"
	               "calendars = { " CALENDAR " = { ics = \"%s/" CALENDAR ".ics\"; }; };\n",
	               e.dir);
	write_calendar(e.dir);
	itest_env_plugin(&e, PLUGIN_BUILD_DIR "/sql_view.so", "sql_view");
	itest_exec(e.db, "CREATE TABLE public.crossing_ticks (job text,"
	                 " at timestamptz DEFAULT clock_timestamp());"
	                 "CREATE TABLE public.crossing_sleep (s float8);"
	                 "INSERT INTO public.crossing_sleep VALUES (0);"
	                 "GRANT SELECT, INSERT ON public.crossing_ticks, public.crossing_sleep"
	                 " TO PUBLIC");
	start_http(&e);
	/* the file jobs never fire on their own here: each run is asked for */
	write_files(&e, 0);

	/* check, then install on a fresh database, as the README orders them */
	free(cli(&e, 0, "check", NULL, NULL));
	free(cli(&e, 0, "install", NULL, NULL));

	/* cron.schedule(), as an application would */
	struct cell cells[JOB_KIND_COUNT * WAY_COUNT * FORM_COUNT];
	int n = cells_of(cells);
	char sql[4096], want[1024], sched[128];
	for (int i = 0; i < n; i++) {
		if (cells[i].way != WAY_CRON_SCHEDULE)
			continue;
		ck_assert_int_eq(cells[i].kind, JOB_KIND_SQL);
		kind_recorded(cells[i].kind, cells[i].name, want, sizeof(want));
		form_schedule(cells[i].form, 0, sched, sizeof(sched));
		char keys[128], json[128];
		bool has_json;
		form_keys(cells[i].form, 0, keys, sizeof(keys), json, sizeof(json), &has_json);
		if (has_json)
			snprintf(sql, sizeof(sql),
			         "SELECT pgcrond.schedule('%s', '%s', $c$%s$c$, '%s')",
			         cells[i].name, sched, want, json);
		else
			snprintf(sql, sizeof(sql), "SELECT cron.schedule('%s', '%s', $c$%s$c$)",
			         cells[i].name, sched, want);
		itest_exec(e.db, sql);
	}
	/* pgcrond import from a server running the real pg_cron */
	char *src = itest_pgcron_start(e.dir, DB);
	PGconn *pgcron = itest_connect(src);
	for (int i = 0; i < n; i++) {
		if (cells[i].way != WAY_IMPORT)
			continue;
		kind_recorded(cells[i].kind, cells[i].name, want, sizeof(want));
		snprintf(sql, sizeof(sql), "SELECT cron.schedule('%s', '0 3 1 1 *', $c$%s$c$)",
		         cells[i].name, want);
		itest_exec(pgcron, sql);
	}
	/* pg_cron takes no recurrence rule: nothing of that form to import */
	PGresult *res = PQexec(pgcron, "SELECT cron.schedule('sql-import-rrule',"
	                               " 'RRULE:FREQ=YEARLY;BYMONTH=1', 'SELECT 1')");
	const char *perr = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR && perr &&
	                  strstr(perr, "invalid schedule"),
	              "pg_cron took a recurrence rule: %s", PQresultErrorMessage(res));
	PQclear(res);
	char *out = cli(&e, 0, "import", "--from", src);
	free(out);
	PQfinish(pgcron);
	free(src);

	/* what install and the SQL ways recorded: the kind and the command, in pgcrond.job and
	 * cron.job */
	for (int i = 0; i < n; i++) {
		kind_recorded(cells[i].kind, cells[i].name, want, sizeof(want));
		snprintf(sql, sizeof(sql),
		         "SELECT kind || '|' || command FROM pgcrond.job WHERE jobname = '%s'",
		         cells[i].name);
		char expect[1200];
		snprintf(expect, sizeof(expect), "%s|%s", kind_name(cells[i].kind), want);
		itest_assert_scalar(e.db, sql, expect);
		snprintf(sql, sizeof(sql), "SELECT command FROM cron.job WHERE jobname = '%s'",
		         cells[i].name);
		itest_assert_scalar(e.db, sql, want);
		form_schedule(cells[i].form, 0, sched, sizeof(sched));
		snprintf(sql, sizeof(sql), "SELECT schedule FROM pgcrond.job WHERE jobname = '%s'",
		         cells[i].name);
		itest_assert_scalar(e.db, sql, sched);
	}
	/* install again, over the installed database, with a new job of every kind */
	char added[8192] = "", keys[1024];
	size_t used = 0;
	for (int k = 0; k < JOB_KIND_COUNT; k++) {
		char name[64];
		snprintf(name, sizeof(name), "%s-added", kind_name((enum job_kind)k));
		kind_keys((enum job_kind)k, name, keys, sizeof(keys));
		used += (size_t)snprintf(added + used, sizeof(added) - used,
		                         "%s{ name = \"%s\"; schedule = \"0 3 1 1 *\"; %s }\n",
		                         k ? ", " : "", name, keys);
	}
	itest_env_job(&e, "20-added.conf", "jobs = (\n%s);\n", added);
	out = cli(&e, 0, "install", NULL, NULL);
	free(out);
	for (int k = 0; k < JOB_KIND_COUNT; k++) {
		char name[64];
		snprintf(name, sizeof(name), "%s-added", kind_name((enum job_kind)k));
		kind_recorded((enum job_kind)k, name, want, sizeof(want));
		snprintf(sql, sizeof(sql),
		         "SELECT j.kind || '|' || c.command FROM pgcrond.job j JOIN cron.job c"
		         " USING (jobid) WHERE j.jobname = '%s'",
		         name);
		char expect[1200];
		snprintf(expect, sizeof(expect), "%s|%s", kind_name((enum job_kind)k), want);
		itest_assert_scalar(e.db, sql, expect);
	}
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pgcrond.job WHERE removed_at IS NULL");
	ck_assert_int_eq(itest_scalar_ll(e.db, sql), n + 2 * JOB_KIND_COUNT);

	itest_env_start(&e);
	ck_assert_msg(itest_wait_log(e.log, "jobs made in SQL changed", 15), "%s",
	              itest_tail(e.log));
	out = cli(&e, 0, "list", NULL, NULL);
	char *status_all = cli(&e, 0, "status", NULL, NULL);
	char *page = itest_env_metrics(&e);
	for (int i = 0; i < n; i++) {
		const struct cell *c = &cells[i];
		char *line = line_with(out, c->name, "list");
		ck_assert_msg(strstr(line, kind_name(c->kind)) && strstr(line, kind_once(c->kind)),
		              "list shows %s as: %s (want kind %s, once %s)", c->name, line,
		              kind_name(c->kind), kind_once(c->kind));
		/* its schedule and spread, and its next fire (moved by the spread) */
		char next[CRON_TIME_BUFSZ];
		form_shown(c->form, 0, c->name, sched, sizeof(sched));
		form_next(c->form, 0, c->name, next, sizeof(next));
		ck_assert_msg(strstr(line, sched) && strstr(line, next),
		              "list shows %s as: %s (want schedule %s, next fire %s)", c->name,
		              line, sched, next);
		free(line);
		/* status JOB */
		char *st = cli(&e, 0, "status", c->name, NULL);
		line = line_with(st, "kind:", "status");
		ck_assert_msg(strstr(line, kind_name(c->kind)), "status %s: %s", c->name, line);
		free(line);
		line = line_with(st, "once under faults:", "status");
		ck_assert_msg(strstr(line, kind_once(c->kind)), "status %s: %s", c->name, line);
		free(line);
		line = line_with(st, "schedule:", "status");
		ck_assert_msg(strstr(line, sched), "status %s: %s", c->name, line);
		free(line);
		line = line_with(st, "next fire:", "status");
		ck_assert_msg(strstr(line, next), "status %s: %s (want %s)", c->name, line, next);
		free(line);
		free(st);
		/* status --json names the calendar */
		st = cli(&e, 0, "status", c->name, "--json");
		ck_assert_msg((c->form == FORM_SKIP) ==
		                  (strstr(st, "\"skip_dates\": \"" CALENDAR "\"") != NULL),
		              "status --json %s: %s", c->name, st);
		free(st);
		/* next --job: the same fire, after a line that names the schedule and spread */
		char *nx = cli(&e, 0, "next", "--job", c->name);
		char head[300];
		snprintf(head, sizeof(head), "job %s: schedule %s%s, time zone UTC\n%s\n", c->name,
		         sched, c->form == FORM_SKIP ? " (1 date)" : "", next);
		ck_assert_msg(strncmp(nx, head, strlen(head)) == 0, "next --job %s:\n%s\nwant:\n%s",
		              c->name, nx, head);
		free(nx);
		/* /metrics */
		char label[200];
		snprintf(label, sizeof(label), "pgcrond_job_info{job=\"%s\",kind=\"%s\"", c->name,
		         kind_name(c->kind));
		ck_assert_msg(strstr(page, label), "/metrics has no %s:\n%s", label, page);
		/* history before any run: the job is known, it has no runs */
		char *h = cli(&e, 0, "history", c->name, NULL);
		ck_assert_msg(strstr(h, "no runs") && !strstr(h, "no such job"),
		              "history %s before a run: %s", c->name, h);
		free(h);
	}
	free(out);
	free(status_all);
	free(page);
	out = cli(&e, 64, "next", "--job", "no-such-job");
	ck_assert_msg(strstr(out, "pgcrond next: no job \"no-such-job\" in "), "%s", out);
	free(out);
	refusals(&e, "sql-added");

	/* pause and resume; trigger --wait runs it now, paused or not */
	for (int i = 0; i < n; i++) {
		const struct cell *c = &cells[i];
		free(cli(&e, 0, "pause", c->name, NULL));
		char *st = cli(&e, 0, "status", c->name, NULL);
		char *line = line_with(st, "paused:", "status");
		ck_assert_msg(strstr(line, "yes"), "%s after pause: %s", c->name, line);
		free(line);
		free(st);
		free(cli(&e, 0, "resume", c->name, NULL));
		st = cli(&e, 0, "status", c->name, NULL);
		line = line_with(st, "paused:", "status");
		ck_assert_msg(strstr(line, "no"), "%s after resume: %s", c->name, line);
		free(line);
		free(st);

		long long before = kind_effects(c->kind, e.db, e.db, c->name);
		char *t = cli(&e, 0, "trigger", "--wait", c->name);
		free(t);
		/* (the history row of a plugin's run may follow the exit by a batch) */
		for (int w = 0; w < 100 && kind_effects(c->kind, e.db, e.db, c->name) == before;
		     w++)
			itest_sleep(0.1);
		ck_assert_msg(kind_effects(c->kind, e.db, e.db, c->name) == before + 1,
		              "%s: trigger --wait ended but its work was not done once", c->name);
		kind_history_command(c->kind, c->name, want, sizeof(want));
		/* its row, written once the run ended (a batch may follow the exit) */
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE job_name = '%s'"
		         " AND trigger = 'manual' AND status = 'succeeded' AND left(command, %zu) "
		         "= $c$%s$c$",
		         c->name, strlen(want), want);
		ck_assert_msg(itest_wait_sql(e.db, sql, 10), "%s: no such history row: %s", c->name,
		              sql);
		char *h = cli(&e, 0, "history", c->name, NULL);
		ck_assert_msg(strstr(h, "succeeded"), "history %s after a run: %s", c->name, h);
		free(h);

		/* drop with nothing waiting: nothing dropped (the rows are counted below); in SQL
		 * too, for a job made in SQL, by its name or by its jobid */
		char *d = cli(&e, 0, "drop", c->name, NULL);
		snprintf(want, sizeof(want), "%s: no run was waiting; nothing dropped\n", c->name);
		ck_assert_msg(strncmp(d, want, strlen(want)) == 0, "drop %s: %s", c->name, d);
		free(d);
		if (c->way == WAY_FILE)
			continue;
		snprintf(sql, sizeof(sql),
		         c->way == WAY_IMPORT ? "SELECT pgcrond.drop_waiting(jobid) FROM cron.job"
		                                " WHERE jobname = '%s'"
		                              : "SELECT pgcrond.drop_waiting('%s')",
		         c->name);
		long long request = itest_scalar_ll(e.db, sql);
		snprintf(sql, sizeof(sql),
		         "SELECT pgcrond.trigger_outcome(%lld) = 'dropped 0 waiting run(s)'",
		         request);
		ck_assert_msg(itest_wait_sql(e.db, sql, 10), "%s: drop_waiting's outcome: %s",
		              c->name, sql);
		/* the status page's view of it (pgcrond.page_state, pgcrond.page_jobid), as a
		 * superuser logged in to the page sees it: its jobid, every action */
		snprintf(
		    sql, sizeof(sql),
		    "SELECT (j->>'jobid')::bigint = pgcrond.page_jobid('%1$s') AND j->'actions'"
		    " ?& array['pause', 'edit', 'trigger', 'drop', 'unschedule'] FROM"
		    " jsonb_array_elements(pgcrond.page_state()->'jobs') j"
		    " WHERE j->>'name' = '%1$s'",
		    c->name);
		itest_assert_scalar(e.db, sql, "t");
	}
	/* each kind downstream of another: the upstream's runs above set them off; with
	 * history = "failures", their successes are counted, not written */
	for (int k = 0; k < JOB_KIND_COUNT; k++) {
		ck_assert_msg(
		    itest_env_wait(&e, 30,
		                   "SELECT (SELECT sum(runs) >= 1 FROM pgcrond.job_run_counts"
		                   "  WHERE job_name = '%1$s-down') AND NOT EXISTS (SELECT"
		                   "  FROM pgcrond.job_run_details WHERE job_name ="
		                   "  '%1$s-down' AND status = 'succeeded')",
		                   kind_name((enum job_kind)k)),
		    "%s-down did not run after %s-file:\n%s", kind_name((enum job_kind)k),
		    kind_name((enum job_kind)((k + 1) % JOB_KIND_COUNT)), itest_tail(e.log));
	}
	/* drop: each kind's downstream waits for its upstream, a run of the next kind held in
	 * flight (the jobs database's crossing_sleep locked, the HTTP server holding its
	 * answer); pgcrond drop drops it, with one skipped row "dropped by ..."; the run in
	 * flight goes on, and once it succeeds the downstream runs as before */
	PGconn *lock = itest_connect(e.ci);
	itest_exec(lock, "BEGIN; LOCK TABLE public.crossing_sleep");
	http_hold();
	long long down_ok[JOB_KIND_COUNT];
	for (int k = 0; k < JOB_KIND_COUNT; k++) {
		char name[64];
		snprintf(name, sizeof(name), "%s-file", kind_name((enum job_kind)k));
		free(cli(&e, 0, "trigger", name, NULL));
	}
	for (int k = 0; k < JOB_KIND_COUNT; k++) {
		char name[64];
		snprintf(name, sizeof(name), "%s-down", kind_name((enum job_kind)k));
		down_ok[k] =
		    itest_env_count(&e,
		                    "SELECT coalesce(sum(runs), 0) FROM pgcrond.job_run_counts"
		                    " WHERE job_name = '%s'",
		                    name);
		free(cli(&e, 0, "trigger", name, NULL));
		char *st = cli(&e, 0, "status", name, NULL);
		snprintf(want, sizeof(want), "waiting:\n  for its upstream jobs %s-file [upstream]",
		         kind_name((enum job_kind)((k + 1) % JOB_KIND_COUNT)));
		ck_assert_msg(strstr(st, want), "%s, its upstream in flight: %s", name, st);
		free(st);
		char *d = cli(&e, 0, "drop", name, NULL);
		snprintf(want, sizeof(want), "%s: 1 waiting run(s) dropped (dropped by ", name);
		ck_assert_msg(strncmp(d, want, strlen(want)) == 0, "drop %s: %s", name, d);
		free(d);
		ck_assert_msg(itest_env_wait(&e, 10,
		                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
		                             " WHERE job_name = '%s' AND status = 'skipped'"
		                             " AND return_message LIKE 'dropped by %%, uid %%'",
		                             name),
		              "%s: no skipped row for its dropped run:\n%s", name,
		              itest_tail(e.log));
	}
	itest_exec(lock, "COMMIT");
	PQfinish(lock);
	http_sleep(0);
	for (int k = 0; k < JOB_KIND_COUNT; k++) /* (its successes counted: history = "failures") */
		ck_assert_msg(itest_env_wait(&e, 30,
		                             "SELECT sum(runs) > %lld FROM pgcrond.job_run_counts"
		                             " WHERE job_name = '%s-down'",
		                             down_ok[k], kind_name((enum job_kind)k)),
		              "%s-down did not run after its upstream's run:\n%s",
		              kind_name((enum job_kind)k), itest_tail(e.log));
	/* the only runs dropped are those: each one row, none for a drop with nothing waiting */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE return_message LIKE 'dropped by%%'"
	                                     " AND job_name NOT LIKE '%%-down'"),
	                 0);

	/* graph: every kind's edge */
	out = cli(&e, 0, "graph", NULL, NULL);
	for (int k = 0; k < JOB_KIND_COUNT; k++) {
		char edge[160];
		snprintf(edge, sizeof(edge), "\"%s-file\" -> \"%s-down\"",
		         kind_name((enum job_kind)((k + 1) % JOB_KIND_COUNT)),
		         kind_name((enum job_kind)k));
		ck_assert_msg(strstr(out, edge), "graph has no %s:\n%s", edge, out);
	}
	free(out);

	/* reload: every file job's new schedule reaches the registry, and the daemon's next fire
	 * follows it and the new spread */
	write_files(&e, 1);
	itest_env_reload(&e);
	for (int i = 0; i < n; i++) {
		const struct cell *c = &cells[i];
		if (c->way != WAY_FILE)
			continue;
		form_schedule(c->form, 1, sched, sizeof(sched));
		ck_assert_msg(
		    itest_env_wait(&e, 15,
		                   "SELECT count(*) = 1 FROM pgcrond.job WHERE jobname = '%s'"
		                   " AND schedule = '%s' AND removed_at IS NULL",
		                   c->name, sched),
		    "the reload did not record %s's schedule:\n%s", c->name, itest_tail(e.log));
		char next[CRON_TIME_BUFSZ];
		form_next(c->form, 1, c->name, next, sizeof(next));
		form_shown(c->form, 1, c->name, sched, sizeof(sched));
		char *st = cli(&e, 0, "status", c->name, NULL);
		char *line = line_with(st, "next fire:", "status");
		ck_assert_msg(strstr(line, next), "status %s after the reload: %s (want %s)",
		              c->name, line, next);
		free(line);
		line = line_with(st, "schedule:", "status");
		ck_assert_msg(strstr(line, sched), "status %s after the reload: %s (want %s)",
		              c->name, line, sched);
		free(line);
		free(st);
	}
	ck_assert_msg(!itest_wait_log(e.log, "cannot record the file jobs", 0.5), "%s",
	              itest_tail(e.log));
	ck_assert_msg(itest_count_in_file(e.log, SECRET_PW) == 0 &&
	                  itest_count_in_file(e.log, SECRET_PATH) == 0,
	              "the log shows an HTTP job's secret");
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE command LIKE '%%" SECRET_PATH "%%'"
	                                     " OR return_message LIKE '%%" SECRET_PW "%%'"),
	                 0);

	/* uninstall takes everything away, whatever the kinds */
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	out = cli(&e, 0, "uninstall", NULL, NULL);
	free(out);
	itest_assert_scalar(e.db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgcrond'",
	                    "0");
	itest_env_teardown(&e);
}
END_TEST

/* ---- the faults a lone instance meets, with a run of every kind in flight --------------------
 * The server that holds the history and the jobs' database is a second sandbox of the test's
 * own, so that it can be restarted and filled, and the daemon reaches it through a relay on
 * 127.0.0.1 that can stop forwarding. The faults, in turn: the daemon killed and restarted,
 * the server restarted and back full, every connection silent. Each kind has a job every 2 seconds
 * (overlap skip, one retry); a fault lands while a run of each is in flight (each sleeps 20 s: the
 * test sets it), then the sleep goes back to 0 and every kind must run again, and no fire run
 * twice. */

struct fault_env {
	struct itest_env e;
	PGconn *db2;
	char ci2[1400];
	pid_t relay; /* every connection of the daemon goes through it, to the second server */
};

static void fault_setup(struct fault_env *f)
{
	struct itest_env *e = &f->e;
	itest_env_init(e, "crossing-faults", DB "_f");
	/* a server small enough for the test to fill (superusers have no slot of their own) */
	setenv("PGSANDBOX_CONF", "max_connections = 24\nsuperuser_reserved_connections = 0", 1);
	char *ci = itest_sandbox2_start(e->dir);
	unsetenv("PGSANDBOX_CONF");
	char *fault_ci = itest_sandbox2_db(ci, "crossfault");
	snprintf(f->ci2, sizeof(f->ci2), "%s", fault_ci);
	free(fault_ci);
	int port = 0;
	f->relay = itest_relay_start(f->ci2, &port);
	itest_write_file(e->conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = { app = { conninfo = \"host=127.0.0.1 port=%d user=postgres"
	                 " dbname=crossfault\"; pool = 4; }; };\n"
	                 "history = { database = \"app\"; };\n",
	                 e->dir, e->dir, port);
	itest_env_plugin(e, PLUGIN_BUILD_DIR "/sql_view.so", "sql_view");
	f->db2 = itest_connect(f->ci2);
	itest_exec(f->db2, "CREATE TABLE public.crossing_ticks (job text,"
	                   " at timestamptz DEFAULT clock_timestamp());"
	                   "CREATE TABLE public.crossing_sleep (s float8);"
	                   "INSERT INTO public.crossing_sleep VALUES (0)");
	start_http(e);
	http_sleep(0);
	char jobs[8192] = "", keys[1024];
	size_t used = 0;
	for (int k = 0; k < JOB_KIND_COUNT; k++) {
		char name[64];
		snprintf(name, sizeof(name), "f-%s", kind_name((enum job_kind)k));
		kind_keys((enum job_kind)k, name, keys, sizeof(keys));
		used += (size_t)snprintf(jobs + used, sizeof(jobs) - used,
		                         "%s{ name = \"%s\"; schedule = \"2 seconds\";"
		                         " retries = 1; retry_delay = \"1s\"; timeout = \"60s\";\n"
		                         "\t%s }\n",
		                         k ? ", " : "", name, keys);
	}
	/* and an SQL job of two statements that writes only its failures (its successes are
	 * counted): what it inserted must match what it counted, fault after fault */
	kind_keys(JOB_KIND_SQL, "c-sql", keys, sizeof(keys));
	used +=
	    (size_t)snprintf(jobs + used, sizeof(jobs) - used,
	                     ", { name = \"c-sql\"; schedule = \"2 seconds\"; retries = 1;"
	                     " retry_delay = \"1s\"; timeout = \"60s\"; history = \"failures\";\n"
	                     "\t%s }\n",
	                     keys);
	itest_env_job(e, "10-faults.conf", "jobs = (\n%s);\n", jobs);
	free(cli(e, 0, "install", NULL, NULL));
	free(ci);
}

static void set_sleep(struct fault_env *f, double s)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "UPDATE public.crossing_sleep SET s = %g", s);
	itest_exec(f->db2, sql);
	http_sleep(s);
}

/* Wait until a run of every kind, and one of c-sql, is in flight (its row 'running', started
 * after SINCE). */
static void all_in_flight(struct fault_env *f, const char *since)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT count(DISTINCT job_name) = %d FROM pgcrond.job_run_details"
	         " WHERE status = 'running' AND start_time > '%s'",
	         JOB_KIND_COUNT + 1, since);
	ck_assert_msg(itest_wait_sql(f->db2, sql, 30), "not every kind has a run in flight:\n%s",
	              itest_tail(f->e.log));
	itest_sleep(1); /* well inside their statements and requests */
}

/* Every kind runs again, succeeded and started after SINCE, within 45 s; and no fire ran
 * twice. */
static void all_again(struct fault_env *f, const char *since, const char *what)
{
	char sql_again[512];
	for (int k = 0; k < JOB_KIND_COUNT; k++) {
		char sql[512];
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) >= 1 FROM pgcrond.job_run_details WHERE job_name = 'f-%s'"
		         " AND status = 'succeeded' AND start_time > '%s'",
		         kind_name((enum job_kind)k), since);
		ck_assert_msg(itest_wait_sql(f->db2, sql, 45), "%s: f-%s did not run again:\n%s",
		              what, kind_name((enum job_kind)k), itest_tail(f->e.log));
	}
	/* no fire succeeded twice (a failed attempt and its retry are one fire's rows) */
	char *twice =
	    itest_scalar(f->db2, "SELECT string_agg(job_name || ' ' || scheduled_time, ', ')"
	                         " FROM (SELECT job_name, scheduled_time"
	                         "  FROM pgcrond.job_run_details"
	                         "  WHERE status = 'succeeded' AND scheduled_time IS NOT NULL"
	                         "  GROUP BY 1, 2 HAVING count(*) > 1) t");
	ck_assert_msg(twice == NULL || !*twice, "%s: fires succeeded twice: %s", what, twice);
	free(twice);
	/* c-sql ran again; its inserts are its counted successes and at most the runs whose row
	 * says they may have committed; no instant of it was counted twice */
	snprintf(
	    sql_again, sizeof(sql_again),
	    "SELECT count(*) >= 1 FROM public.crossing_ticks WHERE job = 'c-sql' AND at > '%s'",
	    since);
	ck_assert_msg(itest_wait_sql(f->db2, sql_again, 45), "%s: c-sql did not run again:\n%s",
	              what, itest_tail(f->e.log));
	ck_assert_msg(
	    itest_wait_sql(f->db2,
	                   "SELECT t.n BETWEEN c.ok AND c.ok + s.maybe AND c.ok = c.instants"
	                   " FROM (SELECT count(*) AS n FROM public.crossing_ticks"
	                   "  WHERE job = 'c-sql') t,"
	                   " (SELECT coalesce(sum(runs), 0) AS ok,"
	                   "  coalesce(sum(bit_count(fired)), 0) AS instants"
	                   "  FROM pgcrond.job_run_counts WHERE job_name = 'c-sql') c,"
	                   " (SELECT count(*) AS maybe FROM pgcrond.job_run_details"
	                   "  WHERE job_name = 'c-sql' AND status = 'failed'"
	                   "  AND return_message LIKE '%not retried%') s",
	                   10),
	    "%s: c-sql's inserts and its counted successes differ: %s", what,
	    itest_scalar(f->db2, "SELECT (SELECT count(*) FROM public.crossing_ticks"
	                         " WHERE job = 'c-sql') || ' inserts; counted ' || (SELECT"
	                         " coalesce(string_agg(hour || ' ' || runs || ' runs, '"
	                         " || bit_count(fired) || ' instants', '; '), '-')"
	                         " FROM pgcrond.job_run_counts WHERE job_name = 'c-sql')"
	                         " || '; rows ' || (SELECT coalesce(string_agg(status || ' '"
	                         " || attempt || ' ' || coalesce(left(return_message, 60), ''),"
	                         " E'\n' ORDER BY runid), '-') FROM pgcrond.job_run_details"
	                         " WHERE job_name = 'c-sql' AND status <> 'skipped')"));
	/* what the SQL job did is what its history says it did: every success did its work once,
	 * a run cut off by the fault rolled back, and the only work beyond the successes is that
	 * of runs whose row says they may have committed (and which were not retried) */
	ck_assert_msg(
	    itest_wait_sql(f->db2,
	                   "SELECT t.n BETWEEN s.ok AND s.ok + s.maybe FROM (SELECT"
	                   " count(*) AS n FROM public.crossing_ticks WHERE job = 'f-sql') t,"
	                   " (SELECT count(*) FILTER (WHERE status = 'succeeded') AS ok,"
	                   "  count(*) FILTER (WHERE status = 'failed' AND return_message"
	                   "   LIKE '%not retried%') AS maybe FROM pgcrond.job_run_details"
	                   "  WHERE job_name = 'f-sql') s",
	                   10),
	    "%s: f-sql's inserts and its successes differ: %s", what,
	    itest_scalar(f->db2, "SELECT (SELECT count(*) FROM public.crossing_ticks"
	                         " WHERE job = 'f-sql') || ' inserts; ' || (SELECT string_agg("
	                         "status || ' ' || attempt || ' ' || start_time || ' '"
	                         " || coalesce(left(return_message, 60), ''), E'\n' ORDER BY runid)"
	                         " FROM pgcrond.job_run_details WHERE job_name = 'f-sql'"
	                         " AND status <> 'skipped')"));
	/* no run is left open */
	ck_assert_msg(itest_wait_sql(f->db2,
	                             "SELECT count(*) = 0 FROM pgcrond.job_run_details"
	                             " WHERE status IN ('starting', 'running')"
	                             " AND start_time < now() - interval '30 s'",
	                             30),
	              "%s: runs left open:\n%s", what, itest_tail(f->e.log));
}

/* Connections to CI from FULL[N] on until the server takes no more ("too many clients"),
 * at most CAP in all; returns how many FULL holds. */
static int fill_server(const char *ci, PGconn **full, int n, int cap)
{
	while (n < cap) {
		PGconn *c = PQconnectdb(ci);
		if (PQstatus(c) != CONNECTION_OK) {
			ck_assert_msg(strstr(PQerrorMessage(c), "too many clients"), "%s",
			              PQerrorMessage(c));
			PQfinish(c);
			break;
		}
		full[n++] = c;
	}
	ck_assert_msg(n > 0 && n < cap, "the server did not fill: %d connections", n);
	return n;
}

struct log_from {
	const char *log, *needle;
	size_t from;
};

static bool logged_from(void *arg)
{
	const struct log_from *l = arg;
	char *text = itest_read_file(l->log);
	bool found = strlen(text) > l->from && strstr(text + l->from, l->needle) != NULL;
	free(text);
	return found;
}

/* Whether LOG gets NEEDLE past its first FROM bytes within TIMEOUT_S. */
static bool wait_log_from(const char *log, size_t from, const char *needle, double timeout_s)
{
	struct log_from l = {log, needle, from};
	return itest_wait_until(logged_from, &l, timeout_s);
}

/* After a fault at SINCE that cut the runs in flight on the database: each kind's run there
 * failed (its row also matching the SQL condition CUT, "" for none), and no run of a kind
 * that needs no database failed. */
static void cut_runs_failed(struct fault_env *f, const char *since, const char *cut,
                            const char *what)
{
	for (int k = 0; k < JOB_KIND_COUNT; k++) {
		char sql[768];
		bool on_db = kind_on_db((enum job_kind)k);
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) %s 0 FROM pgcrond.job_run_details WHERE job_name = 'f-%s'"
		         " AND status = 'failed' AND start_time > '%s' %s",
		         on_db ? ">" : "=", kind_name((enum job_kind)k), since, on_db ? cut : "");
		ck_assert_msg(itest_wait_sql(f->db2, sql, on_db ? 10 : 1),
		              "%s: f-%s's run in flight %s:\n%s", what, kind_name((enum job_kind)k),
		              on_db ? "did not fail as it should" : "failed, needing no database",
		              itest_tail(f->e.log));
	}
	char sql[768];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) > 0 FROM pgcrond.job_run_details WHERE job_name = 'c-sql'"
	         " AND status = 'failed' AND start_time > '%s' %s",
	         since, cut);
	ck_assert_msg(itest_wait_sql(f->db2, sql, 10),
	              "%s: c-sql's run in flight did not fail as it should:\n%s", what,
	              itest_tail(f->e.log));
}

START_TEST(lone_instance_faults_with_every_kind_in_flight)
{
	struct fault_env f;
	fault_setup(&f);
	struct itest_env *e = &f.e;
	itest_env_start(e);
	ck_assert_msg(itest_wait_sql(f.db2,
	                             "SELECT count(DISTINCT job_name) = 3 FROM"
	                             " pgcrond.job_run_details WHERE status = 'succeeded'",
	                             30),
	              "the jobs do not run:\n%s", itest_tail(e->log));

	/* the daemon is killed with a run of every kind in flight, and started again */
	char *since = itest_scalar(f.db2, "SELECT now()::text");
	set_sleep(&f, 20);
	all_in_flight(&f, since);
	ck_assert_int_eq(itest_env_stop(e, SIGKILL, 10), 128 + SIGKILL);
	set_sleep(&f, 0);
	free(since);
	since = itest_scalar(f.db2, "SELECT now()::text");
	itest_env_start(e);
	for (int k = 0; k < JOB_KIND_COUNT; k++) {
		char sql[512];
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) = 1 FROM pgcrond.job_run_details WHERE job_name = 'f-%s'"
		         " AND status = 'failed' AND return_message LIKE"
		         " 'pgcrond process ended while this run was in progress%%'",
		         kind_name((enum job_kind)k));
		ck_assert_msg(itest_wait_sql(f.db2, sql, 20),
		              "kill: f-%s's run in flight was not closed as failed:\n%s",
		              kind_name((enum job_kind)k), itest_tail(e->log));
	}
	ck_assert_msg(itest_wait_sql(f.db2,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'c-sql' AND status = 'failed'"
	                             " AND return_message LIKE"
	                             " 'pgcrond process ended while this run was in progress%'",
	                             20),
	              "kill: c-sql's run in flight was not closed as failed:\n%s",
	              itest_tail(e->log));
	all_again(&f, since, "kill");
	/* an HTTP request in flight may have reached its server: its row says so */
	ck_assert_int_eq(itest_scalar_ll(f.db2, "SELECT count(*) FROM pgcrond.job_run_details"
	                                        " WHERE job_name = 'f-http' AND status = 'failed'"
	                                        " AND return_message LIKE '%may have reached%'"),
	                 1);

	/* the server restarts with a run of every kind in flight, and comes back full: other
	 * clients take every slot before pgcrond reconnects, until it has been refused */
	free(since);
	since = itest_scalar(f.db2, "SELECT now()::text");
	set_sleep(&f, 20);
	all_in_flight(&f, since);
	PQfinish(f.db2);
	char *before = itest_read_file(e->log);
	size_t log_at = strlen(before);
	free(before);
	itest_sandbox2("pause");
	itest_sandbox2("resume");
	/* every slot the test's: pgcrond's sessions that got in first are ended and their slots
	 * taken, until none of its sessions holds one (its reconnects race the test's). A
	 * backend still authenticating holds a slot but is not yet in pg_stat_activity: none is
	 * counted gone until two looks 0.3 s apart find none. */
	PGconn *full[48];
	int n_full = fill_server(f.ci2, full, 0, 48);
	for (int round = 0, clear = 0; round < 60 && clear < 2; round++) {
		long long others = itest_scalar_ll(
		    full[0],
		    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
		    " WHERE backend_type = 'client backend' AND application_name LIKE 'pgcrond%'");
		clear = others == 0 ? clear + 1 : 0;
		itest_sleep(0.3);
		n_full = fill_server(f.ci2, full, n_full, 48);
	}
	PQclear(PQexec(full[0], "UPDATE public.crossing_sleep SET s = 0"));
	http_sleep(0);
	/* its next attempt may be a whole backoff away (the attempts that failed while the server
	 * was down and those the test ended doubled it, up to 30 s, conndrv.h) */
	ck_assert_msg(wait_log_from(e->log, log_at, "too many clients", 35),
	              "full: pgcrond was not refused while the server was full:\n%s",
	              itest_tail(e->log));
	itest_sleep(2);
	for (int i = 0; i < n_full; i++)
		PQfinish(full[i]);
	f.db2 = itest_connect(f.ci2);
	all_again(&f, since, "restart, full");
	/* the SQL and plugin runs lost their backends and say so; the HTTP request did not need
	 * the server: it ended as it would have */
	cut_runs_failed(&f, since, "", "restart");

	/* every connection pgcrond holds goes silent (a NAT forgot them; new ones get through)
	 * with a run of every kind in flight */
	free(since);
	since = itest_scalar(f.db2, "SELECT now()::text");
	set_sleep(&f, 20);
	all_in_flight(&f, since);
	kill(f.relay, SIGUSR1);
	set_sleep(&f, 0);
	all_again(&f, since, "silent");
	cut_runs_failed(&f, since,
	                "AND sqlstate = '08006' AND return_message LIKE 'connection went silent%'",
	                "silent");
	free(since);

	ck_assert_int_eq(itest_env_stop(e, SIGTERM, 30), 0);
	itest_relay_stop(f.relay);
	PQfinish(f.db2);
	itest_env_teardown(e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("crossings");
	TCase *tc = tcase_create("commands");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, every_kind_every_way_every_command);
	itest_add_tcase(s, tc);
	tc = tcase_create("faults");
	tcase_set_timeout(tc, 400);
	tcase_add_test(tc, lone_instance_faults_with_every_kind_in_flight);
	itest_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	return itest_run_share(sr);
}
