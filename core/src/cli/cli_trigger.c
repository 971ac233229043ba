/* pgcrond trigger [--force] [--wait [--timeout D]] JOB: ask the running daemon to run JOB
 * now. On the daemon's host it goes through the control socket (ctl.h), whose file
 * permissions decide who may ask; --wait then waits for the run's outcome. Without a local
 * daemon, the request is a row that pgcrond.trigger() writes in the history database (who
 * asked is recorded there), and a NOTIFY with its id wakes the daemon, which claims the row
 * and runs the job. PostgreSQL decides who may ask: any role for its own jobs made in SQL,
 * the daemon's role and the members of pgcrond_operator for any. It works from any host that
 * reaches that database; the command waits for the daemon's announcement of the outcome, so it
 * never claims a success nobody answered. */
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "clock.h"
#include "config.h"
#include "duration.h"
#include "ctl.h"
#include "history.h"
#include "pgconn.h"
#include "text.h"

/* How long plain trigger waits for a daemon to answer a request made in the database. */
#define ANSWER_DEFAULT_MS 10000

static const char usage[] =
    "Usage: pgcrond trigger [-c FILE] [--force] [--wait [--timeout D]] JOB\n\n"
    "Ask the running daemon to run JOB now, outside its schedule (also a paused\n"
    "job). On the daemon's host the request goes over its control socket,\n"
    "<state_dir>/" CTL_SOCKET_NAME ", open to the daemon's user and group.\n"
    "Elsewhere it goes through pgcrond.trigger(JOB) in the history database, which\n"
    "records who asked: a role may run its own jobs made in SQL, the daemon's\n"
    "role and members of pgcrond_operator any (GRANT pgcrond_operator TO alice;);\n"
    "the command then waits up to --timeout (default 10s) for a daemon to take the\n"
    "request.\n"
    "The run shows in 'pgcrond history' with trigger \"manual\".\n\n"
    "Exit status: 0 the run started (with --wait: it succeeded); 1 it failed,\n"
    "was skipped or refused (the message is printed); 64 an unknown job, or a\n"
    "disabled one without --force; 69 no daemon answered (a request left in the\n"
    "database is still served if a daemon starts within an hour); 75 --wait's\n"
    "timeout passed before the run ended (it goes on); 77 not allowed to ask.\n\n"
    "Options:\n"
    "  -c, --config FILE  the main configuration file (default " PGCROND_DEFAULT_CONF ")\n"
    "  -f, --force        run JOB even if it is disabled\n"
    "  -w, --wait         wait for the run (and its retries) to end; from another\n"
    "                     host, for the daemon's announcement of it (a daemon that\n"
    "                     stops meanwhile makes none: give --timeout)\n"
    "  -t, --timeout D    give up waiting after D (\"30s\", \"5m\"); default: no\n"
    "                     limit with --wait, 10s without\n"
    "  -h, --help         show this help\n";

struct trigger_args {
	const char *conf, *job;
	bool force, wait;
	int64_t timeout_ms; /* -1: the default */
};

static int parse_args(int argc, char **argv, struct trigger_args *a)
{
	const char *timeout = NULL;
	const struct cli_option more[] = {{"force", 'f', &a->force, NULL},
	                                  {"wait", 'w', &a->wait, NULL},
	                                  {"timeout", 't', NULL, &timeout},
	                                  {NULL, 0, NULL, NULL}};
	char err[256];
	int first;

	int rc = cli_parse_args(argc, argv, usage, &a->conf, more, 1, 1, &first);
	if (rc)
		return rc;
	if (timeout && (duration_parse(timeout, &a->timeout_ms, err, sizeof(err)) < 0 ||
	                a->timeout_ms > INT32_MAX)) {
		fprintf(stderr, "pgcrond trigger: --timeout \"%s\": %s\n", timeout,
		        a->timeout_ms > INT32_MAX ? "at most 24 days" : err);
		return EX_USAGE;
	}
	a->job = argv[first];
	if (!a->job[0]) {
		fprintf(stderr, "pgcrond trigger: the job name is empty; give a job name, the name "
		                "given to cron.schedule, or a jobid\n");
		return EX_USAGE;
	}
	return 0;
}

/* The daemon's answer to --wait: 0 succeeded, 1 anything else. */
static int print_result(const char *job, const json_t *res)
{
	const char *status = json_string_value(json_object_get(res, "status"));
	const char *msg = json_string_value(json_object_get(res, "message"));
	const char *state = json_string_value(json_object_get(res, "sqlstate"));
	long long ms = (long long)json_integer_value(json_object_get(res, "duration_ms"));
	long long attempt = (long long)json_integer_value(json_object_get(res, "attempt"));
	if (status && strcmp(status, "succeeded") == 0) {
		printf("%s succeeded in %lld ms (attempt %lld): %s\n", job, ms, attempt,
		       msg ? msg : "");
		return 0;
	}
	fprintf(stderr, "pgcrond trigger: %s %s", job, status ? status : "ended");
	if (status && strcmp(status, "failed") == 0)
		fprintf(stderr, " after %lld ms (attempt %lld)", ms, attempt);
	fprintf(stderr, ": %s", msg ? msg : "");
	if (state)
		fprintf(stderr, " (SQLSTATE %s)", state);
	fprintf(stderr, "\n");
	return 1;
}

/* The daemon's announcement of a run's end, "STATUS[ SQLSTATE]: message": 0 succeeded, 1
 * anything else. */
static int print_finished(const char *job, const char *text)
{
	if (strncmp(text, "succeeded: ", 11) == 0) {
		printf("%s succeeded: %s\n", job, text + 11);
		return 0;
	}
	fprintf(stderr, "pgcrond trigger: %s %s\n", job, text);
	return 1;
}

/* Over the local control socket. Returns an exit code, or -1 when no daemon listens there
 * (the caller goes on to the database). */
static int trigger_local(const struct trigger_args *a)
{
	struct ctl_request rq = {.cmd = CTL_TRIGGER, .force = a->force, .wait = a->wait};
	json_t *ans = NULL;
	/* as written: the daemon resolves it (a name longer than PostgreSQL's 63 bytes was
	 * cut there when it was scheduled, and is cut here the same way) */
	text_copy(rq.job, sizeof(rq.job), a->job);
	int timeout = a->wait ? (int)a->timeout_ms : ANSWER_DEFAULT_MS;
	int rc = cli_ctl_call("trigger", a->conf, &rq, timeout, true, &ans);
	if (rc == EX_UNAVAILABLE && !ans)
		return -1;
	if (rc == EX_TEMPFAIL) {
		if (a->wait)
			fprintf(stderr,
			        "pgcrond trigger: %s had not ended after --timeout; it goes on "
			        "('pgcrond status %s' shows it)\n",
			        a->job, a->job);
		else
			fprintf(stderr, "pgcrond trigger: the daemon did not answer within %d s\n",
			        ANSWER_DEFAULT_MS / 1000);
		return a->wait ? EX_TEMPFAIL : EX_UNAVAILABLE;
	}
	if (rc)
		return rc;
	/* the daemon's name of the job it ran */
	const char *job = json_string_value(json_object_get(ans, "job"));
	const json_t *res = json_object_get(ans, "result");
	if (!job && res)
		job = json_string_value(json_object_get(res, "job"));
	if (!job)
		job = rq.job;
	if (!json_is_true(json_object_get(ans, "ok"))) {
		rc = cli_ctl_error("trigger", ans);
	} else if (a->wait) {
		rc = print_result(job, res);
	} else {
		printf("the daemon started %s%s\n", job, a->force ? " (forced)" : "");
		rc = EX_OK;
	}
	json_decref(ans);
	return rc;
}

/* Request ID's outcome as the daemon recorded it in pgcrond.trigger_request (read with
 * pgcrond.trigger_outcome(), sql/pgcrond--11.sql): 1 with OUTCOME, 0 while there is none,
 * -EPROTO when it cannot be read (said on stderr). */
static int read_outcome(PGconn *conn, const char *id, char *outcome, size_t len)
{
	const char *p[] = {id};
	PGresult *r = PQexecParams(conn, "SELECT pgcrond.trigger_outcome($1::pg_catalog.int8)", 1,
	                           NULL, p, NULL, NULL, 0);
	int rc = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		char why[512];
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		pgconn_result_error(r, why, sizeof(why));
		fprintf(stderr, "pgcrond trigger: cannot read the outcome of request %s: %s%s\n",
		        id, why,
		        state && strcmp(state, "42883") == 0
		            ? "\nthe history database's pgcrond schema is older than this "
		              "pgcrond: run 'pgcrond install'"
		            : "");
		rc = -EPROTO;
	} else if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
		snprintf(outcome, len, "%s", PQgetvalue(r, 0, 0));
		rc = 1;
	}
	PQclear(r);
	return rc;
}

/* After pgcrond.trigger() returned request ID: wait for its outcome (on a socket, no
 * polling of the table). A notification on the outcome channel only wakes us: anyone may
 * send one, so the outcome is read from the request's row, which only the daemon writes.
 * PAST: an outcome already seen ("started"), waited past. 0 with OUTCOME, or -ETIMEDOUT,
 * -EIO, -EPROTO. */
static int await_outcome(PGconn *conn, const char *id, int64_t timeout_ms, const char *past,
                         char *outcome, size_t len)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	bool look = true; /* the outcome may be there before any notification */
	for (;;) {
		PGnotify *n;
		while ((n = PQnotifies(conn)) != NULL) {
			look = true;
			PQfreemem(n);
		}
		if (look) {
			look = false;
			int rc = read_outcome(conn, id, outcome, len);
			if (rc < 0)
				return rc;
			if (rc == 1 && (!past || strcmp(outcome, past) != 0))
				return 0;
			continue; /* the read may have brought notifications */
		}
		int64_t left = deadline - clock_mono_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};
		int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0 && errno != EINTR)
			return -EIO;
		if (r > 0 && !PQconsumeInput(conn))
			return -EIO;
	}
}

/* Whether JOB is a job made in SQL (pgcrond.job, source sql); *ENABLED says if it is
 * active. */
static bool sql_job_enabled(PGconn *conn, const char *job, bool *enabled)
{
	static const char sql[] =
	    "SELECT enabled FROM pgcrond.job WHERE jobname OPERATOR(pg_catalog.=) $1"
	    " AND source OPERATOR(pg_catalog.=) 'sql' AND removed_at IS NULL";
	const char *p[] = {job};
	PGresult *r = PQexecParams(conn, sql, 1, NULL, p, NULL, NULL, 0);
	bool found = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
	*enabled = found && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return found;
}

int cli_trigger(int argc, char **argv)
{
	struct trigger_args a = {.conf = PGCROND_DEFAULT_CONF, .timeout_ms = -1};
	struct pgc_config *cfg = NULL;
	PGconn *conn = NULL;
	int rc;
	bool sql_enabled = false;

	rc = parse_args(argc, argv, &a);
	if (rc)
		return rc == CLI_HELP ? EX_OK : rc;
	rc = trigger_local(&a);
	if (rc >= 0)
		return rc;
	char job[64];

	rc = hist_cli_open("trigger", a.conf, "the jobs in them cannot be triggered", &cfg, &conn);
	if (rc != EX_OK)
		return rc;
	rc = cli_resolve_job("trigger", conn, a.job, job, sizeof(job));
	if (rc != 0)
		goto out;
	const struct conf_job *j = config_job(cfg, job);
	if (!j && sql_job_enabled(conn, job, &sql_enabled)) {
		/* a job made in SQL (cron.schedule): the daemon has it too */
	} else if (!j) {
		char q[260];
		fprintf(stderr,
		        "pgcrond trigger: no job %s in %s and its conf.d, nor made in SQL; "
		        "'pgcrond list' shows the configured jobs\n",
		        text_quote(job, q, sizeof(q)), a.conf);
		rc = EX_USAGE;
		goto out;
	}
	if ((j ? !j->enabled : !sql_enabled) && !a.force) {
		fprintf(stderr,
		        "pgcrond trigger: job \"%s\" is disabled (enabled = false); "
		        "'pgcrond trigger --force %s' runs it anyway\n",
		        job, job);
		rc = EX_USAGE;
		goto out;
	}

	const char *params[] = {job, a.force ? "true" : "false"};
	PGresult *r = PQexec(conn, "LISTEN " PGCROND_TRIGGER_OUTCOME_CHANNEL);
	PQclear(r);
	r = PQexecParams(conn, "SELECT pgcrond.trigger($1, $2::pg_catalog.bool)", 2, NULL, params,
	                 NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		char why[512];
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		pgconn_result_error(r, why, sizeof(why));
		if (state && strcmp(state, "42501") == 0) {
			fprintf(stderr,
			        "pgcrond trigger: %s\nrole \"%s\" may run only its own jobs "
			        "made in SQL; a superuser or the owner of the pgcrond schema "
			        "can allow it every job: GRANT pgcrond_operator TO \"%s\";\n",
			        why, PQuser(conn), PQuser(conn));
			rc = EX_NOPERM;
		} else if (state && (strcmp(state, "42883") == 0 || strcmp(state, "3F000") == 0)) {
			fprintf(stderr,
			        "pgcrond trigger: %s\nthe history database \"%s\" has no "
			        "pgcrond.trigger(): run 'pgcrond install' to upgrade its "
			        "schema\n",
			        why, cfg->history_database);
			rc = EX_UNAVAILABLE;
		} else {
			fprintf(stderr, "pgcrond trigger: %s\n", why);
			rc = EX_UNAVAILABLE;
		}
	} else {
		char outcome[8000];
		int64_t wait = a.timeout_ms >= 0 && (!a.wait || a.timeout_ms < ANSWER_DEFAULT_MS)
		                   ? a.timeout_ms
		                   : ANSWER_DEFAULT_MS;
		int64_t t0 = clock_mono_ms();
		int w =
		    await_outcome(conn, PQgetvalue(r, 0, 0), wait, NULL, outcome, sizeof(outcome));
		if (w == 0 && a.wait && strcmp(outcome, "started") == 0) {
			/* then its end, which the daemon announces too */
			int64_t left = a.timeout_ms < 0 ? INT64_MAX / 2
			                                : a.timeout_ms - (clock_mono_ms() - t0);
			w = await_outcome(conn, PQgetvalue(r, 0, 0), left > 0 ? left : 0, "started",
			                  outcome, sizeof(outcome));
			if (w == -ETIMEDOUT) {
				fprintf(stderr,
				        "pgcrond trigger: %s had not ended after --timeout; it "
				        "goes on (request %s)\n",
				        job, PQgetvalue(r, 0, 0));
				rc = EX_TEMPFAIL;
				goto done;
			}
		}
		if (w == -EPROTO) {
			rc = EX_UNAVAILABLE; /* said */
		} else if (w == 0 && a.wait && strncmp(outcome, "finished ", 9) == 0) {
			rc = print_finished(job, outcome + 9);
		} else if (w == 0 && (strcmp(outcome, "started") == 0 ||
		                      strncmp(outcome, "finished ", 9) == 0)) {
			printf("the daemon started %s%s (request %s in "
			       "pgcrond.trigger_request on database \"%s\")\n",
			       job,
			       (j ? !j->enabled : !sql_enabled) ? ", even though it is disabled"
			                                        : "",
			       PQgetvalue(r, 0, 0), cfg->history_database);
			rc = EX_OK;
		} else if (w == 0) {
			fprintf(stderr, "pgcrond trigger: the daemon %s (request %s)\n", outcome,
			        PQgetvalue(r, 0, 0));
			rc = 1;
		} else {
			fprintf(stderr,
			        "pgcrond trigger: no daemon answered within %lld ms; request %s "
			        "stays in pgcrond.trigger_request on database \"%s\" and is served "
			        "if a daemon starts within an hour\n",
			        (long long)wait, PQgetvalue(r, 0, 0), cfg->history_database);
			rc = EX_UNAVAILABLE;
		}
	}
done:
	PQclear(r);
out:
	PQfinish(conn);
	config_free(&cfg);
	return rc;
}
