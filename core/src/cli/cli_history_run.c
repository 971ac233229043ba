/* pgcrond history --run ID: one run whole (the table cuts messages), and the --json forms of
 * the history command. */
#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pgconn.h"
#include "text.h"

/* Columns whose text is a number in JSON. */
static bool numeric_column(const char *name)
{
	static const char *const nums[] = {"runid",   "jobid",       "attempt",
	                                   "job_pid", "duration_ms", "round"};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		if (strcmp(name, nums[i]) == 0)
			return true;
	return false;
}

static json_t *row_json(const PGresult *r, int row)
{
	json_t *o = json_object();
	for (int c = 0; o && c < PQnfields(r); c++) {
		const char *name = PQfname(r, c);
		if (strcmp(name, "to_char") == 0)
			continue; /* the table's local start time; start_time is there in UTC */
		if (strcmp(name, "round") == 0)
			name = "duration_ms";
		if (json_object_get(o, name))
			continue;
		const char *text = PQgetvalue(r, row, c);
		double d = strtod(text, NULL); /* a numeric column's value */
		json_t *v;
		if (PQgetisnull(r, row, c))
			v = json_null();
		else if (numeric_column(name)) /* a whole number as an integer */
			v = d == (double)(json_int_t)d ? json_integer((json_int_t)d) : json_real(d);
		else if (!(v = json_string(text)))
			v = json_stringn_nocheck(text, (size_t)PQgetlength(r, row, c));
		if (json_object_set_new(o, name, v) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

int cli_history_print_json(const PGresult *r)
{
	json_t *arr = json_array();
	for (int i = 0; arr && i < PQntuples(r); i++) {
		json_t *o = row_json(r, i);
		if (!o || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	if (!arr) {
		fprintf(stderr, "pgcrond history: out of memory\n");
		return EX_SOFTWARE;
	}
	json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(15)); /* 2.1, not 2.10...01 */
	printf("\n");
	json_decref(arr);
	return EX_OK;
}

/* LABEL and VALUE, text a job or a server chose, its control characters escaped (text.h):
 * an error raised with ESC ]52 must not reach the reader's terminal as a command. */
static void print_field(const char *label, const char *value)
{
	char *safe = text_escape_dup(value, TEXT_KEEP_NEWLINES);
	printf("%-14s %s\n", label, safe ? safe : "(out of memory)");
	free(safe);
}

/* The server's DETAIL and HINT follow the message on its line (pgconn.c): split them out
 * again for reading. MSG is changed in place. */
static void split_message(char *msg, const char **detail, const char **hint)
{
	char *h = strstr(msg, " HINT: "), *d = strstr(msg, " DETAIL: ");
	*detail = *hint = NULL;
	if (h) {
		*h = '\0';
		*hint = h + 7;
	}
	if (d && (!h || d < h)) {
		*d = '\0';
		*detail = d + 9;
	}
}

int cli_history_show_run(const char *cmd, PGconn *conn, const char *tz, const char *id, bool json)
{
	static const char *const labels[][2] = {
	    {"runid", "run"},         {"job_name", "job"},        {"status", "status"},
	    {"trigger", "trigger"},   {"attempt", "attempt"},     {"scheduled", "scheduled"},
	    {"started", "started"},   {"ended", "ended"},         {"duration_ms", "duration (ms)"},
	    {"database", "database"}, {"username", "user"},       {"job_pid", "backend pid"},
	    {"instance", "instance"}, {"graph_run", "graph run"}, {"jobid", "jobid"},
	    {"sqlstate", "SQLSTATE"}, {"command", "command"},
	};
	const char *params[] = {id, tz};
	PGresult *r = PQexecParams(
	    conn,
	    "SELECT runid, job_name, status, trigger, attempt,"
	    "       pg_catalog.to_char(scheduled_time AT TIME ZONE $2, 'YYYY-MM-DD HH24:MI:SS')"
	    "         AS scheduled,"
	    "       pg_catalog.to_char(start_time AT TIME ZONE $2, 'YYYY-MM-DD HH24:MI:SS.MS')"
	    "         AS started,"
	    "       pg_catalog.to_char(end_time AT TIME ZONE $2, 'YYYY-MM-DD HH24:MI:SS.MS') AS "
	    "ended,"
	    "       pg_catalog.round(duration_ms::pg_catalog.numeric, 1) AS duration_ms,"
	    "       database, username, job_pid,"
	    "       instance, graph_run, jobid, sqlstate, command, return_message,"
	    "       pg_catalog.to_char(start_time AT TIME ZONE 'UTC',"
	    "         'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS start_time,"
	    "       pg_catalog.to_char(end_time AT TIME ZONE 'UTC',"
	    "         'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS end_time,"
	    "       pg_catalog.to_char(scheduled_time AT TIME ZONE 'UTC',"
	    "         'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS scheduled_time"
	    "  FROM pgcrond.job_run_details WHERE runid OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
	    2, NULL, params, NULL, NULL, 0);
	int rc = EX_OK;

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		char why[512];
		fprintf(stderr, "pgcrond %s: %s\n", cmd, pgconn_result_error(r, why, sizeof(why)));
		rc = EX_UNAVAILABLE;
	} else if (PQntuples(r) == 0) {
		fprintf(stderr,
		        "pgcrond %s: no run %s in pgcrond.job_run_details (it may have been purged "
		        "after history.retain); 'pgcrond history' lists the recent ones\n",
		        cmd, id);
		rc = EX_DATAERR;
	} else if (json) {
		json_t *o = row_json(r, 0);
		if (o) {
			/* the local-time texts are for people; the JSON has the UTC times */
			json_object_del(o, "scheduled");
			json_object_del(o, "started");
			json_object_del(o, "ended");
			json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
			printf("\n");
			json_decref(o);
		} else {
			rc = EX_SOFTWARE;
		}
	} else {
		for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
			int c = PQfnumber(r, labels[i][0]);
			if (c < 0 || PQgetisnull(r, 0, c))
				continue;
			print_field(labels[i][1], PQgetvalue(r, 0, c));
		}
		printf("%-14s %s\n", "timezone", tz);
		int c = PQfnumber(r, "return_message");
		char *msg = PQgetisnull(r, 0, c) ? NULL : strdup(PQgetvalue(r, 0, c));
		if (msg) {
			const char *detail, *hint;
			split_message(msg, &detail, &hint);
			print_field("message", msg);
			if (detail)
				print_field("DETAIL", detail);
			if (hint)
				print_field("HINT", hint);
			free(msg);
		}
	}
	PQclear(r);
	return rc;
}
