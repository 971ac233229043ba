/* pgcrond status [JOB] [--json], pause JOB, resume JOB, drop JOB: talk to the running daemon over
 * its control socket (ctl.h), and the client side of that socket for `trigger` (cli_ctl_call). */
#include <errno.h>
#include <jansson.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "cluster.h"
#include "config.h"
#include "ctl.h"
#include "text.h"

/* How long status, pause and resume wait for the answer. */
#define ANSWER_TIMEOUT_MS 10000

/* Read one line from FD into a malloc'd string, each read within TIMEOUT_MS (< 0: no limit;
 * the daemon sends an answer whole); -ETIMEDOUT when one is not. */
static int read_line(int fd, int timeout_ms, char **out)
{
	struct timeval tv = {timeout_ms / 1000, timeout_ms % 1000 * 1000 + (timeout_ms == 0)};
	FILE *f = NULL;
	size_t cap = 0;
	*out = NULL;
	if ((timeout_ms >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) ||
	    !(f = fdopen(dup(fd), "r")))
		return -errno;
	errno = 0;
	ssize_t n = getline(out, &cap, f);
	int e = errno == EAGAIN ? ETIMEDOUT : errno ? errno : ECONNRESET;
	fclose(f);
	if (n > 0 && (*out)[n - 1] == '\n') {
		(*out)[n - 1] = '\0';
		return 0;
	}
	free(*out);
	*out = NULL;
	return -e;
}

int cli_ctl_call(const char *cmd, const char *conf, const struct ctl_request *rq, int timeout_ms,
                 bool quiet_absent, json_t **answer)
{
	struct pgc_config *cfg = NULL;
	char path[128], *line = NULL, *text = NULL, *skipped = NULL;
	int fd = -1, rc;

	*answer = NULL;
	/* only state_dir is needed: a broken job file must not lock the operator out */
	rc = cli_load_config(cmd, conf, &cfg, &skipped);
	if (rc)
		return rc;
	if (ctl_socket_path(cfg->state_dir, path, sizeof(path)) < 0) {
		fprintf(stderr, "pgcrond %s: state_dir %s is too long for a unix socket path\n",
		        cmd, cfg->state_dir);
		rc = EX_CONFIG;
		goto out;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		if (quiet_absent && (e == ENOENT || e == ECONNREFUSED)) {
			rc = EX_UNAVAILABLE;
		} else if (e == EACCES || e == EPERM) {
			fprintf(
			    stderr,
			    "pgcrond %s: %s: permission denied; the control socket is for the "
			    "daemon's user and group (add yourself to its group, or use sudo -u "
			    "pgcrond)\n",
			    cmd, path);
			rc = EX_NOPERM; /* the socket's permissions keep this user out */
		} else {
			fprintf(stderr,
			        "pgcrond %s: no pgcrond answers on %s (%s); is the daemon running "
			        "with this configuration (state_dir = \"%s\")?\n",
			        cmd, path, strerror(e), cfg->state_dir);
			rc = EX_UNAVAILABLE;
		}
		goto out;
	}
	cli_warn_skipped(cmd, conf, skipped, CLI_SKIP_DAEMON);
	text = ctl_format_request(rq);
	size_t len = text ? strlen(text) : 0;
	if (!text || write(fd, text, len) != (ssize_t)len) {
		fprintf(stderr, "pgcrond %s: cannot send the request on %s: %s\n", cmd, path,
		        text ? strerror(errno) : "out of memory");
		rc = EX_UNAVAILABLE;
		goto out;
	}
	rc = read_line(fd, timeout_ms, &line);
	if (rc == -ETIMEDOUT) {
		rc = EX_TEMPFAIL;
		goto out;
	}
	if (rc < 0) {
		fprintf(stderr, "pgcrond %s: the daemon closed %s without an answer (%s)\n", cmd,
		        path, strerror(-rc));
		rc = EX_UNAVAILABLE;
		goto out;
	}
	json_error_t je;
	*answer = json_loads(line, 0, &je);
	if (!*answer || !json_is_object(*answer)) {
		fprintf(stderr, "pgcrond %s: the daemon's answer is not JSON: %s\n", cmd, je.text);
		json_decref(*answer);
		*answer = NULL;
		rc = EX_PROTOCOL;
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(line);
	free(text);
	free(skipped);
	config_free(&cfg);
	return rc;
}

int cli_ctl_error(const char *cmd, const json_t *answer)
{
	const char *code = json_string_value(json_object_get(answer, "code"));
	const char *err = json_string_value(json_object_get(answer, "error"));
	fprintf(stderr, "pgcrond %s: %s\n", cmd, err ? err : "the daemon refused the request");
	if (code && (strcmp(code, "no_such_job") == 0 || strcmp(code, "ambiguous") == 0 ||
	             strcmp(code, "disabled") == 0 || strcmp(code, "bad_request") == 0))
		return EX_USAGE;
	if (code && strcmp(code, "refused") == 0)
		return EX_DATAERR; /* a job made in SQL the daemon cannot run: its settings */
	return EX_UNAVAILABLE;
}

/* ---- printing the state ----------------------------------------------------------------- */

/* Every string of the document as it will be printed: a failure's text, a database's last
 * error are text a job or a server chose, and their control characters must not reach the
 * terminal (text.h). The JSON form needs nothing: JSON escapes them. */
static void escape_strings(json_t *v)
{
	size_t i;
	const char *k;
	json_t *x;
	char *e =
	    json_is_string(v) ? text_escape_dup(json_string_value(v), TEXT_FOLD_NEWLINES) : NULL;
	if (e)
		json_string_set(v, e);
	free(e);
	json_object_foreach(v, k, x) escape_strings(x);
	json_array_foreach(v, i, x) escape_strings(x);
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static long long jint(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static bool jtrue(const json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key));
}

static void print_daemon(const json_t *st)
{
	char up[32];
	size_t i;
	json_t *v;

	cli_format_span(json_number_value(json_object_get(st, "uptime_s")), up, sizeof(up));
	printf("pgcrond %s on %s, pid %lld, up %s%s; %lld running, %lld waiting for a slot "
	       "(max_running %lld)\n",
	       jstr(st, "version"), jstr(st, "instance"), jint(st, "pid"), up,
	       jtrue(st, "draining") ? ", shutting down" : "", jint(st, "running"),
	       jint(st, "queued"), jint(st, "max_running"));
	const json_t *h = json_object_get(st, "history");
	if (*jstr(h, "database"))
		printf("history: database %s, %s, %lld record(s) waiting%s, spool %lld bytes\n",
		       jstr(h, "database"), jtrue(h, "connected") ? "connected" : "NOT connected",
		       jint(h, "pending"),
		       jtrue(h, "backlogged") ? " (new runs held back until it catches up)" : "",
		       jint(h, "spool_bytes"));
	const json_t *cl = json_object_get(st, "cluster");
	if (cl)
		printf("cluster: instance %s, %s%s, %s%s\n", jstr(st, "instance"),
		       jtrue(cl, "connected") ? "coordinating" : "NOT coordinating",
		       jtrue(cl, "in_recovery") ? " (server in recovery)" : "",
		       *jstr(cl, "peers")   ? "other live instances: "
		       : jtrue(cl, "alone") ? "alone (it claims nothing)"
		                            : "no other live instance",
		       jstr(cl, "peers"));
	if (cl && json_is_integer(json_object_get(cl, "clock_offset_ms")))
		printf("cluster: clock offset %+lld ms from the history database's (claims stop "
		       "beyond %d ms)\n",
		       jint(cl, "clock_offset_ms"), CLUSTER_MAX_OFFSET_MS);
	json_array_foreach(json_object_get(st, "databases"), i, v)
	{
		printf(
		    "database %s: %lld open (%lld busy, %lld idle), %lld connecting, %lld run(s) "
		    "waiting, pool %lld, %s%s\n",
		    jstr(v, "name"), jint(v, "open"), jint(v, "busy"), jint(v, "idle"),
		    jint(v, "connecting"), jint(v, "waiting"), jint(v, "pool"),
		    jtrue(v, "reachable")                            ? "reachable"
		    : json_is_false(json_object_get(v, "reachable")) ? "UNREACHABLE: "
		                                                     : "not connected yet",
		    json_is_false(json_object_get(v, "reachable")) ? jstr(v, "last_error") : "");
	}
	json_array_foreach(json_object_get(st, "plugins"), i, v)
	    printf("plugin %s %s (%s)\n", jstr(v, "name"), jstr(v, "version"), jstr(v, "path"));
}

/* "running 12s (pid 4242)", "retrying (attempt 2)", ... */
static void describe_state(const json_t *j, char *out, size_t outlen)
{
	const char *state = jstr(j, "state");
	char span[32], pid[32] = "connecting";
	if (strcmp(state, "running") == 0) {
		const json_t *r = json_object_get(j, "running");
		cli_format_span(json_number_value(json_object_get(r, "elapsed_s")), span,
		                sizeof(span));
		if (jint(r, "backend_pid"))
			snprintf(pid, sizeof(pid), "pid %lld", jint(r, "backend_pid"));
		snprintf(out, outlen, "running %s (%s)%s", span, pid,
		         jtrue(j, "paused") ? ", paused" : "");
	} else if (strcmp(state, "retrying") == 0) {
		snprintf(out, outlen, "retrying (attempt %lld)",
		         jint(json_object_get(j, "retry"), "attempt"));
	} else if (strcmp(state, "debouncing") == 0 && json_object_get(j, "debounce")) {
		snprintf(out, outlen, "debouncing (%lld payload(s))",
		         jint(json_object_get(j, "debounce"), "payloads"));
	} else {
		snprintf(out, outlen, "%s", state);
	}
}

/* A SQL job's name as its owner gave it is any text (spaces, quotes, "&", non-ASCII): in
 * the text form it is printed quoted (text_quote), which leaves escape_strings nothing to
 * do in it. */
static void quote_cron_names(json_t *st)
{
	json_t *j;
	size_t i;
	json_array_foreach(json_object_get(st, "jobs"), i, j)
	{
		const char *n = json_string_value(json_object_get(j, "cron_name"));
		char q[260];
		if (n)
			json_object_set_new(j, "cron_name",
			                    json_string(text_quote(n, q, sizeof(q))));
	}
}

/* Job J's schedule, its spread and calendar after it (docs/calendars.md), or "-". */
static void schedule_cell(const json_t *j, char *out, size_t outlen)
{
	char tail[160];
	cli_schedule_tail(jint(j, "spread_ms"), (int)jint(j, "spread_offset_s"),
	                  jstr(j, "skip_dates"), jstr(j, "only_dates"), tail, sizeof(tail));
	snprintf(out, outlen, "%s%s", *jstr(j, "schedule") ? jstr(j, "schedule") : "-", tail);
}

static void print_jobs_table(const json_t *st)
{
	static const char *const head[] = {"JOB",  "SCHEDULE", "STATE", "NEXT FIRE (UTC)",
	                                   "LAST", "AGE"};
	enum { NC = 6 };
	const json_t *jobs = json_object_get(st, "jobs");
	size_t n = json_array_size(jobs), i;
	char(*cells)[NC][256] = calloc(n ? n : 1, sizeof(*cells));
	json_t *j;

	if (!cells)
		return;
	json_array_foreach(jobs, i, j)
	{
		/* with the name its owner gave it in SQL, where that differs */
		const char *cn = jstr(j, "cron_name");
		char qn[260];
		snprintf(qn, sizeof(qn), "\"%s\"", jstr(j, "name"));
		bool named = *cn && strcmp(cn, qn) != 0;
		text_format(cells[i][0], 256, "%s%s%s", jstr(j, "name"), named ? " " : "",
		            named ? cn : "");
		schedule_cell(j, cells[i][1], 256);
		describe_state(j, cells[i][2], 256);
		snprintf(cells[i][3], 256, "%s",
		         *jstr(j, "next_fire") ? jstr(j, "next_fire") : "-");
		const json_t *last = json_object_get(j, "last_result"), *age;
		char run[32] = "", span[32] = "-";
		if (jint(last, "runid") > 0)
			snprintf(run, sizeof(run), " (run %lld)", jint(last, "runid"));
		snprintf(cells[i][4], 256, "%s%s%s%s", last ? jstr(last, "status") : "-",
		         last ? " " : "", jstr(last, "ended_at"), run);
		if ((age = json_object_get(j, "age_s")))
			cli_format_span(json_number_value(age), span, sizeof(span));
		snprintf(cells[i][5], 256, "%s%s%s", span, jtrue(j, "stale") ? " STALE" : "",
		         jtrue(json_object_get(j, "freshness"), "over_sla") ? " LAG>SLA" : "");
	}
	printf("\n");
	cli_print_table(head, cells[0][0], n, NC, sizeof(cells[0][0]), 0);
	free(cells);
}

/* A job's last runs, newest first, with the run ids to give 'pgcrond history --run'. */
static void print_recent_runs(const json_t *j)
{
	const json_t *runs = json_object_get(j, "recent_runs"), *r;
	size_t i;
	if (!json_array_size(runs))
		return;
	printf("last runs:\n");
	json_array_foreach(runs, i, r)
	{
		char took[32];
		cli_format_span((double)jint(r, "duration_ms") / 1000, took, sizeof(took));
		printf("  %s  %-15s %8s", jstr(r, "ended_at"), jstr(r, "status"), took);
		if (jint(r, "attempt") > 1)
			printf("  attempt %lld", jint(r, "attempt"));
		if (jint(r, "runid") > 0)
			printf("  run %lld", jint(r, "runid"));
		printf("\n");
	}
}

/* The runs that wait, and for what: of job J, or of every job (J NULL: ST's jobs). */
static void print_waiting(const json_t *st, const json_t *only)
{
	static const struct {
		const char *key, *text;
	} fors[] = {{"slot", "a max_running slot"},
	            {"connection", "a connection to its database"},
	            {"upstream", "its upstream jobs"},
	            {"retry", "its retry delay"},
	            {"own_run", "the job's run under way"},
	            {"notifications", "the job's run under way (notified)"},
	            {"instance", "the job's run on another instance"},
	            {"claim", "its claim"},
	            {"mark", "its start mark"}};
	const json_t *jobs = only ? NULL : json_object_get(st, "jobs"), *j = only, *w, *u;
	size_t i = 0, k, x, shown = 0;
	do {
		if (jobs)
			j = json_array_get(jobs, i);
		json_array_foreach(json_object_get(j, "waiting"), k, w)
		{
			const char *f = jstr(w, "for"), *text = f;
			for (x = 0; x < sizeof(fors) / sizeof(fors[0]); x++)
				if (strcmp(fors[x].key, f) == 0)
					text = fors[x].text;
			if (!shown++)
				printf(only ? "waiting:\n"
				            : "\nwaiting runs ('pgcrond drop JOB' drops "
				              "a job's):\n");
			printf("  %s%sfor %s", only ? "" : jstr(j, "name"), only ? "" : ": ", text);
			/* its upstream jobs by name: those of its "after" */
			json_array_foreach(
			    strcmp(f, "upstream") ? NULL : json_object_get(j, "after"), x, u)
			    printf("%s%s", x ? ", " : " ", json_string_value(u));
			printf(" [%s] (%s%s%s, attempt %lld, since %s)\n", f, jstr(w, "trigger"),
			       *jstr(w, "scheduled_for") ? " " : "", jstr(w, "scheduled_for"),
			       jint(w, "attempt"), jstr(w, "since"));
		}
	} while (jobs && ++i < json_array_size(jobs));
}

/* The jobs made in SQL that the daemon leaves out, each with why. */
static void print_refused(const json_t *st)
{
	const char *id;
	const json_t *r, *all = json_object_get(st, "refused");
	if (json_object_size(all))
		printf("\nnot run (cron.alter_job mends a job, cron.unschedule drops it):\n");
	json_object_foreach((json_t *)all, id, r) printf("  %s\n", jstr(r, "said"));
}

/* The last failures, newest first (of one job, or of all). */
static void print_failures(const json_t *st)
{
	const json_t *fails = json_object_get(st, "recent_failures"), *f;
	size_t i;
	if (!json_array_size(fails))
		return;
	printf("\nrecent failures (newest first; 'pgcrond history --run ID' shows one whole):\n");
	json_array_foreach(fails, i, f)
	{
		printf("  %s  %s", jstr(f, "ended_at"), jstr(f, "job"));
		if (jint(f, "runid") > 0)
			printf("  run %lld", jint(f, "runid"));
		if (*jstr(f, "sqlstate"))
			printf("  SQLSTATE %s", jstr(f, "sqlstate"));
		printf("\n    %s\n", jstr(f, "message"));
	}
}

/* Job J's kind, with a plugin job's plugin and a SQL-made job's owner and jobid (the document
 * has each where it applies). */
static void print_kind(const json_t *j)
{
	printf("kind:         %s%s%s", jstr(j, "kind"), *jstr(j, "plugin") ? " " : "",
	       jstr(j, "plugin"));
	if (*jstr(j, "owner"))
		printf(", role %s, jobid %lld", jstr(j, "owner"), jint(j, "jobid"));
	printf("\n");
}

static void print_job(const json_t *j)
{
	char state[300], span[32], sched[300];
	const json_t *o;

	describe_state(j, state, sizeof(state));
	printf("job:          %s\n", jstr(j, "name"));
	print_kind(j);
	if (*jstr(j, "cron_name")) /* quoted by quote_cron_names */
		printf("named:        %s (in cron.job)\n", jstr(j, "cron_name"));
	if (*jstr(j, "database")) /* (an HTTP job has none) */
		printf("database:     %s\n", jstr(j, "database"));
	schedule_cell(j, sched, sizeof(sched));
	printf("schedule:     %s\n", sched);
	if (*jstr(j, "listen"))
		printf("listen:       %s\n", jstr(j, "listen"));
	if (*jstr(j, "once_under_faults")) /* docs/faults.md */
		printf("once under faults: %s\n", jstr(j, "once_under_faults"));
	printf("state:        %s%s\n", state,
	       json_is_false(json_object_get(j, "enabled")) ? " (disabled)" : "");
	printf("paused:       %s\n", jtrue(j, "paused") ? "yes" : "no");
	if ((o = json_object_get(j, "running"))) {
		char on[160] = ""; /* (an HTTP run has no database) */
		if (*jstr(o, "database"))
			snprintf(on, sizeof(on), " on database %s, backend pid %lld",
			         jstr(o, "database"), jint(o, "backend_pid"));
		printf("running:      since %s%s, %s, attempt %lld\n", jstr(o, "since"), on,
		       jstr(o, "trigger"), jint(o, "attempt"));
	}
	if ((o = json_object_get(j, "retry")))
		printf("retry:        attempt %lld at %s\n", jint(o, "attempt"),
		       *jstr(o, "next_try") ? jstr(o, "next_try") : "when resumed");
	if ((o = json_object_get(j, "debounce")))
		printf("debounce:     %lld payload(s), runs at %s\n", jint(o, "payloads"),
		       jstr(o, "due"));
	printf("next fire:    %s\n", *jstr(j, "next_fire") ? jstr(j, "next_fire") : "-");
	if (*jstr(j, "next_scheduled"))
		printf("next in schedule: %s\n", jstr(j, "next_scheduled"));
	if ((o = json_object_get(j, "last_result"))) {
		char took[32];
		cli_format_span((double)jint(o, "duration_ms") / 1000, took, sizeof(took));
		printf("last result:  %s at %s (%s, attempt %lld, %s)", jstr(o, "status"),
		       jstr(o, "ended_at"), jstr(o, "trigger"), jint(o, "attempt"), took);
		if (jint(o, "runid") > 0)
			printf(", run %lld", jint(o, "runid"));
		printf("\nmessage:      %s\n", jstr(o, "message"));
		if (*jstr(o, "sqlstate"))
			printf("sqlstate:     %s\n", jstr(o, "sqlstate"));
	} else {
		printf("last result:  - (none in the history's recent past)\n");
	}
	print_recent_runs(j);
	if (json_object_get(j, "age_s")) {
		cli_format_span(json_number_value(json_object_get(j, "age_s")), span, sizeof(span));
		printf("last success: %s (%s ago)\n", jstr(j, "last_success"), span);
	}
	if (json_object_get(j, "max_staleness_s"))
		printf("stale:        %s (max_staleness %llds)\n", jtrue(j, "stale") ? "YES" : "no",
		       jint(j, "max_staleness_s"));
	const json_t *fr = json_object_get(j, "freshness");
	if (fr) {
		char lag[64];
		cli_format_span(json_number_value(json_object_get(fr, "lag_s")), lag, sizeof(lag));
		printf("freshness:    SLA %llds, lag %s%s", jint(fr, "sla_s"), lag,
		       jtrue(fr, "over_sla") ? " (OVER the SLA)" : "");
		if (*jstr(fr, "changed_since"))
			printf(", sources changed since %s", jstr(fr, "changed_since"));
		else if (*jstr(fr, "unchanged_since"))
			printf(", sources unchanged since %s", jstr(fr, "unchanged_since"));
		if (*jstr(fr, "next_run"))
			printf(", next run %s", jstr(fr, "next_run"));
		printf("\n");
		if (*jstr(fr, "fallback"))
			printf("              runs every period: %s\n", jstr(fr, "fallback"));
	}
	printf("consecutive failures: %lld\n", jint(j, "consecutive_failures"));
}

/* ---- the commands ----------------------------------------------------------------------- */

/* Ask the daemon RQ about JOB (NULL: none) as written, pgcrond's name, cron.schedule's or a
 * jobid: the daemon resolves it (cut as PostgreSQL cut it to a name). Returns 0 with *ANSWER,
 * an {"ok":true} one (json_decref it), or the exit code after saying why: an empty JOB, no
 * answer within ANSWER_TIMEOUT_MS, a refusal. */
static int ask(const char *cmd, const char *conf, struct ctl_request *rq, const char *job,
               json_t **answer)
{
	if (job && !job[0]) {
		fprintf(stderr, "pgcrond %s: the job name is empty\n", cmd);
		return EX_USAGE;
	}
	if (job)
		text_copy(rq->job, sizeof(rq->job), job);
	int rc = cli_ctl_call(cmd, conf, rq, ANSWER_TIMEOUT_MS, false, answer);
	if (rc == EX_TEMPFAIL)
		fprintf(stderr, "pgcrond %s: the daemon did not answer within %d s\n", cmd,
		        ANSWER_TIMEOUT_MS / 1000);
	if (rc || jtrue(*answer, "ok"))
		return rc;
	rc = cli_ctl_error(cmd, *answer);
	json_decref(*answer);
	return rc;
}

static const char status_usage[] =
    "Usage: pgcrond status [-c FILE] [--json] [JOB]\n\n"
    "Ask the running daemon (over its control socket, <state_dir>/" CTL_SOCKET_NAME
    ") for its live\n"
    "state: version, uptime, connections per database, runs going and waiting, the\n"
    "history spool, loaded plugins, and per job its schedule (spread, calendar), what\n"
    "it does now (running since when on which backend, queued, waiting for another\n"
    "instance's run or an upstream, debouncing, retrying, paused, disabled, idle),\n"
    "its next fire as the daemon holds it, its last result and staleness; the jobs made\n"
    "in SQL that it does not run, and why. With JOB,\n"
    "that job in full (the last message whole). Works while the databases are down.\n"
    "Exits 69 if no daemon answers, 64 for an unknown job, 65 for a refused one.\n\n"
    "Options:\n"
    "  -c, --config FILE  the main configuration file (default " PGCROND_DEFAULT_CONF ")\n"
    "  -j, --json         print the state as JSON (docs/operations.md, \"The status\n"
    "                     document\")\n"
    "  -h, --help         show this help\n";

int cli_status(int argc, char **argv)
{
	const char *conf;
	bool as_json = false;
	const struct cli_option more[] = {{"json", 'j', &as_json, NULL}, {NULL, 0, NULL, NULL}};
	struct ctl_request rq = {.cmd = CTL_STATUS};
	int first;

	int rc = cli_parse_args(argc, argv, status_usage, &conf, more, 0, 1, &first);
	if (rc)
		return rc == CLI_HELP ? EX_OK : rc;
	json_t *a;
	rc = ask("status", conf, &rq, argc - first == 1 ? argv[first] : NULL, &a);
	if (rc)
		return rc;
	json_t *st = json_object_get(a, "status"),
	       *job = json_array_get(json_object_get(st, "jobs"), 0);
	if (as_json) {
		json_dumpf(st, stdout, JSON_INDENT(2));
		printf("\n");
	} else {
		quote_cron_names(st);
		escape_strings(st);
		if (rq.job[0]) {
			print_job(job);
			print_waiting(st, job);
		} else {
			print_daemon(st);
			print_jobs_table(st);
			print_waiting(st, NULL);
			print_refused(st);
		}
		print_failures(st);
	}
	json_decref(a);
	return EX_OK;
}

static const char pause_usage[] =
    "Usage: pgcrond pause [-c FILE] JOB\n"
    "       pgcrond resume [-c FILE] JOB\n\n"
    "pause: no new run of JOB starts, at once (a run under way finishes; 'pgcrond\n"
    "trigger' still runs it on demand). The daemon keeps the paused jobs in its\n"
    "state_dir, so a restart keeps JOB paused, records it in pgcrond.job.paused and\n"
    "shows it in 'pgcrond status'.\n"
    "resume: JOB runs again; the fires that came due while it was paused are handled\n"
    "by its catchup policy (once: one catch-up run; skip: one skipped history row).\n"
    "Both go through the daemon's control socket; exit 69 if no daemon answers.\n"
    "Several instances sharing a history database (schema version 7) pause and\n"
    "resume JOB together (pgcrond.job_pause); while that database is unreachable\n"
    "the change acts on this instance and reaches the others when it is back.\n\n"
    "Options:\n"
    "  -c, --config FILE  the main configuration file (default " PGCROND_DEFAULT_CONF ")\n"
    "  -h, --help         show this help\n";

int cli_pause_resume(int argc, char **argv)
{
	const char *conf, *name = argv[0];
	enum ctl_cmd cmd = strcmp(name, "pause") == 0 ? CTL_PAUSE : CTL_RESUME;
	int first;
	int rc = cli_parse_args(argc, argv, pause_usage, &conf, NULL, 1, 1, &first);
	if (rc)
		return rc == CLI_HELP ? EX_OK : rc;
	struct ctl_request rq = {.cmd = cmd};
	json_t *a;
	rc = ask(name, conf, &rq, argv[first], &a);
	if (rc)
		return rc;
	bool changed = jtrue(a, "changed");
	/* the daemon's name of the job (the user may have written cron.schedule's) */
	const char *job = json_string_value(json_object_get(a, "job"));
	if (!job)
		job = rq.job;
	if (cmd == CTL_PAUSE)
		printf(changed ? "paused %s: no new run starts until 'pgcrond resume %s'\n"
		               : "%s was already paused ('pgcrond resume %s' resumes it)\n",
		       job, job);
	else
		printf(changed ? "resumed %s\n" : "%s was not paused\n", job);
	const char *warn = json_string_value(json_object_get(a, "warning"));
	if (warn)
		fprintf(stderr, "pgcrond %s: warning: %s\n", name, warn);
	json_decref(a);
	return EX_OK;
}

static const char drop_usage[] =
    "Usage: pgcrond drop [-c FILE] JOB\n\n"
    "Drop JOB's runs that wait (those 'pgcrond status JOB' lists under waiting: for a\n"
    "max_running slot, its upstream jobs, its retry delay, the job's run under way,\n"
    "another instance's run, a claim, a connection or an HTTP run's start mark while\n"
    "nothing of it was sent).\n"
    "Each is recorded once, as skipped, with the message \"dropped by USER, uid N\n"
    "(pid P)\": USER is your login name, N and P your uid and process as the daemon's\n"
    "kernel sees them. A run under way is left alone, and so are the runs of other\n"
    "jobs; the job's next fires run. Goes through the daemon's control socket;\n"
    "exit 69 if no daemon answers, 64 if no such job is configured. In SQL:\n"
    "pgcrond.drop_waiting(job).\n\n"
    "Options:\n"
    "  -c, --config FILE  the main configuration file (default " PGCROND_DEFAULT_CONF ")\n"
    "  -h, --help         show this help\n";

int cli_drop(int argc, char **argv)
{
	const char *conf;
	int first;
	int rc = cli_parse_args(argc, argv, drop_usage, &conf, NULL, 1, 1, &first);
	if (rc)
		return rc == CLI_HELP ? EX_OK : rc;
	struct ctl_request rq = {.cmd = CTL_DROP};
	/* who asks, by name (the daemon adds the uid it sees): a name the protocol takes */
	const struct passwd *pw = getpwuid(getuid());
	if (pw && pw->pw_name && strlen(pw->pw_name) < sizeof(rq.by) &&
	    strspn(pw->pw_name,
	           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
	        strlen(pw->pw_name))
		text_copy(rq.by, sizeof(rq.by), pw->pw_name);
	json_t *a;
	rc = ask("drop", conf, &rq, argv[first], &a);
	if (rc)
		return rc;
	const char *job = json_string_value(json_object_get(a, "job"));
	if (jint(a, "dropped") > 0)
		printf("%s: %lld waiting run(s) dropped (%s)\n", job ? job : rq.job,
		       jint(a, "dropped"), jstr(a, "by"));
	else
		printf("%s: no run was waiting; nothing dropped\n", job ? job : rq.job);
	json_decref(a);
	return EX_OK;
}
