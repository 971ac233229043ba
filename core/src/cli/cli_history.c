/* pgcrond history: recent runs from pgcrond.job_run_details, as a table for people. Also
 * hist_cli_open(), which the install and trigger commands share. */
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "config.h"
#include "duration.h"
#include "pgconn.h"
#include "text.h"

#define DEFAULT_LIMIT 20
#define MAX_LIMIT 100000
#define MESSAGE_WIDTH 60
/* A timestamptz column as UTC ISO 8601 text named as the column, for --json. */
#define UTC_TEXT(col)                                                                              \
	"pg_catalog.to_char(" col                                                                  \
	" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS " col
#define UTC_START UTC_TEXT("start_time")
#define UTC_END UTC_TEXT("end_time")
#define UTC_SCHEDULED UTC_TEXT("scheduled_time")

int hist_cli_open(const char *cmd, const char *conf_path, const char *consequence,
                  struct pgc_config **cfg, struct pg_conn **conn)
{
	char *skipped = NULL;

	*cfg = NULL;
	*conn = NULL;
	int rc = cli_load_config(cmd, conf_path, cfg, consequence ? &skipped : NULL);
	if (rc)
		return rc;
	cli_warn_skipped(cmd, conf_path, skipped, consequence);
	free(skipped);
	if (!config_database(*cfg, (*cfg)->history_database)) {
		fprintf(
		    stderr,
		    "pgcrond %s: %s: no history database: set history = { database = \"NAME\"; } "
		    "to one of the databases\n",
		    cmd, conf_path);
		config_free(cfg);
		return EX_CONFIG;
	}
	*conn = cli_history_connect(cmd, *cfg, NULL);
	if (!*conn) {
		config_free(cfg);
		return EX_UNAVAILABLE;
	}
	return EX_OK;
}

static const char usage[] =
    "Usage: pgcrond history [-c FILE] [JOB] [--failed] [--limit N] [--since WHEN] "
    "[--json]\n"
    "       pgcrond history [-c FILE] --run ID [--json]\n\n"
    "Show the most recent runs, newest first, from pgcrond.job_run_details in the\n"
    "history database: all jobs, or only JOB. Times are in the configured timezone.\n"
    "The table cuts long messages; --run shows one run whole: its message, the\n"
    "server's DETAIL and HINT, SQLSTATE, command, graph run, attempt and instance.\n\n"
    "Options:\n"
    "  -c, --config FILE  the main configuration file (default " PGCROND_DEFAULT_CONF ")\n"
    "  -f, --failed       only failed runs (failed, upstream_failed)\n"
    "  -n, --limit N      at most N runs (default " CLI_STR(
        DEFAULT_LIMIT) ")\n"
                       "  -s, --since WHEN   only runs started since WHEN: a duration back from "
                       "now\n"
                       "                     (\"2h\", \"7d\") or a time PostgreSQL reads "
                       "(\"2026-11-22\n"
                       "                     10:00\", in the configured timezone)\n"
                       "  -r, --run ID       the run whose RUNID is ID, whole\n"
                       "  -j, --json         JSON instead of a table (every column, times in UTC)\n"
                       "  -h, --help         show this help\n";

/* One line, at most WIDTH bytes, cut on a UTF-8 character boundary, "..." if cut. */
static void shorten(const char *raw, char *out, size_t width)
{
	/* the text a job or a server chose, on one line, its controls escaped (text.h) */
	char *in = text_escape_dup(raw, TEXT_FOLD_NEWLINES);
	if (!in) {
		snprintf(out, width + 1, "(out of memory)");
		return;
	}
	size_t len = strlen(in);

	if (len <= width)
		snprintf(out, width + 1, "%s", in);
	else
		snprintf(out, width + 1, "%.*s...", (int)text_utf8_prefix(in, len, width - 3), in);
	free(in);
}

enum {
	C_RUNID,
	C_JOB,
	C_STATUS,
	C_TRIGGER,
	C_ATTEMPT,
	C_INSTANCE, /* which pgcrond ran it (several instances: README) */
	C_START,
	C_DURATION,
	C_MESSAGE,
	N_COLS
};

static const char *const headers[N_COLS] = {"RUNID",    "JOB",   "STATUS",   "TRIGGER", "ATTEMPT",
                                            "INSTANCE", "START", "DURATION", "MESSAGE"};

static int print_table(PGresult *r, const char *tz)
{
	int rows = PQntuples(r);
	const char *head[N_COLS];
	char start_head[80];
	char(*cells)[N_COLS][MESSAGE_WIDTH + 8] = calloc((size_t)rows + 1, sizeof(*cells));

	if (!cells)
		return -ENOMEM;
	memcpy(head, headers, sizeof(head));
	if (snprintf(start_head, sizeof(start_head), "START (%s)", tz) < (int)sizeof(start_head))
		head[C_START] = start_head;
	for (int i = 0; i < rows; i++) {
		for (int c = 0; c < N_COLS; c++) {
			const char *v = PQgetisnull(r, i, c) ? "" : PQgetvalue(r, i, c);
			if (c == C_DURATION && *v)
				cli_format_span(strtod(v, NULL) / 1000, cells[i][c],
				                sizeof(cells[i][c]));
			else
				shorten(v, cells[i][c], c == C_MESSAGE ? MESSAGE_WIDTH : 40);
		}
	}
	cli_print_table(head, cells[0][0], (size_t)rows, N_COLS, sizeof(cells[0][0]),
	                1u << C_RUNID | 1u << C_ATTEMPT | 1u << C_DURATION);
	free(cells);
	return 0;
}

/* What "no runs" means for JOB (pgcrond's name; NULL: all jobs), FAILED and FILTERED (by
 * --since) as asked: a job of the files, one made in SQL (cron.schedule, pgcrond.schedule:
 * in pgcrond.job in the history database on CONN, not in the files), or none of that name:
 * EX_USAGE after saying so on stderr (0 otherwise; with JSON, nothing else is said). */
static int say_no_runs(PGconn *conn, const struct pgc_config *cfg, const char *job, bool failed,
                       bool filtered, bool json)
{
	char q[260];
	const char *some = failed ? "failed " : "";

	if (job)
		text_quote(job, q, sizeof(q));
	if (!job || config_job(cfg, job)) {
		if (!json)
			printf(job ? "no %sruns of %s recorded\n" : "no %sruns recorded\n", some,
			       q);
		return 0;
	}
	const char *p[] = {job};
	PGresult *r =
	    PQexecParams(conn,
	                 "SELECT username, jobid, schedule, enabled, paused, refused"
	                 "  FROM pgcrond.job WHERE jobname OPERATOR(pg_catalog.=) $1"
	                 "   AND source OPERATOR(pg_catalog.=) 'sql' AND removed_at IS NULL",
	                 1, NULL, p, NULL, NULL, 0);
	/* (a schema without SQL jobs: none of them) */
	bool none = PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1;
	if (none)
		fprintf(stderr,
		        "pgcrond history: no job %s is configured and none of its runs is "
		        "recorded; 'pgcrond list' lists the jobs\n",
		        q);
	if (none || json) {
		PQclear(r);
		return none ? EX_USAGE : 0;
	}
	char role[200], sched[300], next[64] = "-";
	text_escape_ctl(PQgetvalue(r, 0, 0), role, sizeof(role));
	text_quote(PQgetvalue(r, 0, 2), sched, sizeof(sched));
	bool enabled = PQgetvalue(r, 0, 3)[0] == 't';
	/* its next fire as the daemon loads the job (none when the daemon leaves it out) */
	struct pgc_config *loaded = cli_with_sql_jobs(conn, cfg);
	const struct conf_job *lj = loaded ? config_job(loaded, job) : NULL;
	if (lj)
		cli_next_fire(cfg, lj, (int64_t)time(NULL), next, sizeof(next));
	config_free(&loaded);
	if (filtered || failed) {
		printf("no %sruns of %s recorded (a job made in SQL by role \"%s\", jobid %s)\n",
		       some, q, role, PQgetvalue(r, 0, 1));
	} else {
		char when[1200], why[1024];
		if (!enabled)
			snprintf(when, sizeof(when), "inactive (its active is false in cron.job)");
		else if (!PQgetisnull(r, 0, 5)) /* why the daemon leaves it out, as it last said */
			snprintf(when, sizeof(when), "not run: %s",
			         text_escape_ctl(PQgetvalue(r, 0, 5), why, sizeof(why)));
		else if (strcmp(next, "-") == 0)
			snprintf(when, sizeof(when), "never fires");
		else
			snprintf(when, sizeof(when), "next fire %s", next);
		printf("no runs of %s recorded yet: a job made in SQL by role \"%s\", jobid %s, "
		       "schedule %s, %s%s\n",
		       q, role, PQgetvalue(r, 0, 1), sched, when,
		       PQgetvalue(r, 0, 4)[0] == 't' ? "; paused (pgcrond resume starts its runs)"
		                                     : "");
	}
	PQclear(r);
	return 0;
}

int cli_history(int argc, char **argv)
{
	const char *conf, *job = NULL, *since = NULL, *run_id = NULL, *limit_arg = NULL;
	bool failed = false, json = false;
	const struct cli_option more[] = {
	    {"failed", 'f', &failed, NULL}, {"limit", 'n', NULL, &limit_arg},
	    {"since", 's', NULL, &since},   {"run", 'r', NULL, &run_id},
	    {"json", 'j', &json, NULL},     {NULL, 0, NULL, NULL},
	};
	long limit = DEFAULT_LIMIT;
	struct pgc_config *cfg = NULL;
	PGconn *conn = NULL;
	int rc, first;
	char *end;

	rc = cli_parse_args(argc, argv, usage, &conf, more, 0, 1, &first);
	if (rc)
		return rc == CLI_HELP ? EX_OK : rc;
	if (run_id &&
	    (strspn(run_id, "0123456789") != strlen(run_id) || !*run_id || strlen(run_id) > 18)) {
		fprintf(stderr, "pgcrond history: --run \"%s\": give a run id (the RUNID column)\n",
		        run_id);
		return EX_USAGE;
	}
	if (limit_arg) {
		errno = 0;
		limit = strtol(limit_arg, &end, 10);
		if (errno || *end || end == limit_arg || limit < 1 || limit > MAX_LIMIT) {
			fprintf(stderr,
			        "pgcrond history: --limit \"%s\": give a number from 1 to %d\n",
			        limit_arg, MAX_LIMIT);
			return EX_USAGE;
		}
	}
	if (first < argc)
		job = argv[first];

	char since_ms[24] = "", err[256];
	int64_t ms;
	if (since && duration_parse(since, &ms, err, sizeof(err)) == 0)
		snprintf(since_ms, sizeof(since_ms), "%lld", (long long)ms);
	if (run_id && (job || failed || since)) {
		fprintf(stderr,
		        "pgcrond history: --run shows one run; it takes no JOB, --failed or "
		        "--since\n");
		return EX_USAGE;
	}

	rc = hist_cli_open("history", conf,
	                   "the history is read all the same; the running daemon may "
	                   "run other jobs than the files say",
	                   &cfg, &conn);
	if (rc != EX_OK)
		return rc;
	const char *tz = cfg->timezone ? cfg->timezone : "UTC";
	if (run_id) {
		rc = cli_history_show_run("history", conn, tz, run_id, json);
		goto out;
	}

	/* the job as the user wrote it: pgcrond's name, cron.schedule's, or a jobid */
	char job_name[64];
	if (job) {
		rc = cli_resolve_job("history", conn, job, job_name, sizeof(job_name));
		if (rc != 0)
			goto out;
		job = job_name;
	}
	char limit_text[24];
	snprintf(limit_text, sizeof(limit_text), "%ld", limit);
	const char *params[] = {
	    job, failed ? "true" : "false",     limit_text,
	    tz,  since_ms[0] ? since_ms : NULL, since && !since_ms[0] ? since : NULL};
	/* --since TIME without a zone is in the configured timezone */
	const char *tzp[] = {tz};
	PQclear(PQexecParams(conn, "SELECT pg_catalog.set_config('TimeZone', $1, false)", 1, NULL,
	                     tzp, NULL, NULL, 0));
	/* Filter and order as the indexes have them (start_time is never NULL: no NULLS LAST). */
	PGresult *r = PQexecParams(
	    conn,
	    "SELECT runid, job_name, status, trigger, attempt, instance,"
	    "       pg_catalog.to_char(start_time AT TIME ZONE $4, 'YYYY-MM-DD HH24:MI:SS'),"
	    "       pg_catalog.round(duration_ms::pg_catalog.numeric, 1), return_message,"
	    /* the rest only for --json */
	    "       sqlstate, instance, graph_run, database, job_pid, username, command,"
	    "       " UTC_START ", " UTC_END ", " UTC_SCHEDULED " FROM pgcrond.job_run_details"
	    " WHERE ($1::pg_catalog.text IS NULL OR job_name OPERATOR(pg_catalog.=) $1)"
	    "   AND ($5::pg_catalog.int8 IS NULL OR start_time OPERATOR(pg_catalog.>=)"
	    "    (pg_catalog.now() OPERATOR(pg_catalog.-)"
	    "     ($5::pg_catalog.int8 OPERATOR(pg_catalog.*) interval '1 ms')))"
	    "   AND ($6::pg_catalog.text IS NULL"
	    "    OR start_time OPERATOR(pg_catalog.>=) $6::pg_catalog.timestamptz)"
	    "   AND (NOT $2::pg_catalog.bool OR (status OPERATOR(pg_catalog.<>) 'succeeded'"
	    "    AND status OPERATOR(pg_catalog.=) ANY (ARRAY['failed', 'upstream_failed'])))"
	    " ORDER BY start_time DESC, runid DESC"
	    " LIMIT $3::pg_catalog.int4",
	    6, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		char why[512];
		pgconn_result_error(r, why, sizeof(why));
		rc = EX_UNAVAILABLE;
		if (state && since && strncmp(state, "22", 2) == 0) {
			fprintf(stderr,
			        "pgcrond history: --since \"%s\" is neither a duration (\"2h\", "
			        "\"7d\") nor a time (\"2026-11-22 10:00\"): %s\n",
			        since, why);
			rc = EX_USAGE;
		} else if (state && (strcmp(state, "42P01") == 0 || strcmp(state, "3F000") == 0))
			fprintf(stderr,
			        "pgcrond history: %s: the history table does not exist yet; "
			        "run 'pgcrond install'\n",
			        why);
		else
			fprintf(stderr, "pgcrond history: %s\n", why);
	} else if (PQntuples(r) == 0 &&
	           (rc = say_no_runs(conn, cfg, job, failed, since != NULL, json)) != 0) {
		/* no such job: said */
	} else if (json) {
		rc = cli_history_print_json(r);
	} else if (PQntuples(r) > 0 && print_table(r, tz) != 0) {
		fprintf(stderr, "pgcrond history: out of memory\n");
		rc = EX_SOFTWARE;
	}
	PQclear(r);
out:
	PQfinish(conn);
	config_free(&cfg);
	return rc;
}
