/* Jobs made in SQL, picked up live (see sqljobs.h). */
#include "sqljobs.h"

#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_sql.h"
#include "job_kind.h"
#include "log.h"
#include "notify.h"
#include "pgconn.h"
#include "text.h"

#define CHANNEL "pgcrond_jobs"
/* The pool of each (database, owner): SQL jobs are small, and one role's jobs should not
 * take a server's connection slots. */
#define SQL_POOL 2

struct sql_row {
	char *jobid, *name, *schedule, *command, *database, *username, *options;
	char *cron_name; /* cron.job's jobname, as written (NULL: unnamed) */
	long long bytes; /* the command's, which is not fetched (NULL) past max_command_size */
	bool enabled;
	bool can_login; /* the owner has LOGIN */
};

/* The rows of one read: never changed once read, so a build on another thread shares them
 * (sqljobs_copy) while the loop reads again; freed by the last owner, on the loop. */
struct sql_rows {
	unsigned refs;
	size_t n;
	struct sql_row row[];
};

struct sqljobs {
	struct notify *n;
	struct notify_read rd; /* the read of the rows (one for many notifications) */
	struct sql_rows *rows; /* NULL before the first read */
	char *last; /* the rows last read, as one string, to see whether anything changed */
	/* the file jobs to record in the registry: borrowed (sqljobs_record_files_made), sent in
	 * parts of REC_PART jobs, one part in flight at a time (pgcrond--8.sql) */
	const struct pgc_config *files;
	size_t rec_next, rec_end; /* the part in flight: jobs [rec_next, rec_end) */
	bool rec_busy;            /* a part is in flight */
	bool rec_restart;         /* the jobs changed meanwhile: start again from the first */
	bool rec_current;         /* the registry has FILES' jobs: the last send went through */
	char *first;              /* the first part, made off the loop (sqljobs_first_part) */
	char *refused;            /* what pgcrond.job.refused is to say (sqljobs_record_refused) */
	struct log_complaint complaint;
	void (*changed)(void *arg);
	void *arg;
};

static void row_clear(struct sql_row *r)
{
	free(r->jobid);
	free(r->name);
	free(r->schedule);
	free(r->command);
	free(r->database);
	free(r->username);
	free(r->options);
	free(r->cron_name);
}

static void rows_release(struct sql_rows **rp)
{
	struct sql_rows *rows = *rp;

	*rp = NULL;
	if (!rows || --rows->refs > 0)
		return;
	for (size_t i = 0; i < rows->n; i++)
		row_clear(&rows->row[i]);
	free(rows);
}

/* The columns of rows_sql. */
#define N_COLUMNS 11

/* RES's rows (the query of read_jobs) into *ROWS, and all of them as one string into *ALL
 * (to see whether anything changed). 0 or -ENOMEM. */
static int parse_rows(const PGresult *res, struct sql_rows **rows_out, char **all_out)
{
	int n = PQntuples(res);
	size_t len = 1;
	for (int i = 0; i < n; i++)
		for (int c = 0; c < N_COLUMNS; c++)
			len += (size_t)PQgetlength(res, i, c) + 2;
	char *all = malloc(len), *o = all;
	struct sql_rows *rows = calloc(1, sizeof(*rows) + ((size_t)n + 1) * sizeof(rows->row[0]));
	if (!all || !rows) {
		free(all);
		free(rows);
		return -ENOMEM;
	}
	rows->refs = 1;
	rows->n = (size_t)n;
	bool oom = false;
	for (int i = 0; i < n; i++) {
		for (int c = 0; c < N_COLUMNS; c++) {
			size_t l = (size_t)PQgetlength(res, i, c);
			memcpy(o, PQgetvalue(res, i, c), l);
			o += l;
			*o++ = PQgetisnull(res, i, c) ? '\x01' : '\x02';
			*o++ = '\x03';
		}
		struct sql_row *r = &rows->row[i];
		char **f[] = {&r->jobid,    &r->name,     &r->schedule, &r->command,
		              &r->database, &r->username, &r->options,  &r->cron_name};
		for (int c = 0; c < 8; c++)
			if (!PQgetisnull(res, i, c) && !(*f[c] = strdup(PQgetvalue(res, i, c))))
				oom = true;
		r->enabled = PQgetvalue(res, i, 8)[0] == 't';
		r->can_login = PQgetvalue(res, i, 9)[0] == 't';
		r->bytes = strtoll(PQgetvalue(res, i, 10), NULL, 10);
	}
	*o = '\0';
	if (oom) {
		rows_release(&rows);
		free(all);
		return -ENOMEM;
	}
	*rows_out = rows;
	*all_out = all;
	return 0;
}

#define SQLJOBS_OF(r) ((struct sqljobs *)((char *)(r)-offsetof(struct sqljobs, rd)))

static void on_rows(struct notify_read *rd, const struct stmtq_result *r)
{
	struct sqljobs *sj = SQLJOBS_OF(rd);
	const PGresult *res = r->res;
	struct sql_rows *rows;
	char *all;

	if (r->failed || !res) {
		if (log_complain(&sj->complaint, r->failed ? r->err : NULL))
			log_error("cannot read the jobs made in SQL from pgcrond.job: %s",
			          r->failed ? r->err : "no result");
		return;
	}
	if (parse_rows(res, &rows, &all) < 0) {
		log_error("out of memory reading the jobs made in SQL");
		return;
	}
	bool same = sj->last && strcmp(sj->last, all) == 0;
	rows_release(&sj->rows);
	free(sj->last);
	sj->rows = rows;
	sj->last = all;
	if (!same) {
		log_info("jobs made in SQL changed; applying them");
		sj->changed(sj->arg);
	}
}

/* A command longer than max_command_size is not even fetched (a row written before the
 * limit, or past it by the table's owner): 256 MB would hold the loop for seconds. */
static const char rows_sql[] =
    "SELECT jobid, jobname, schedule,"
    "       CASE WHEN pg_catalog.octet_length(command) OPERATOR(pg_catalog.>) $1::bigint"
    "            THEN NULL ELSE command END,"
    "       database, username, options::pg_catalog.text, cron_jobname, enabled,"
    "       coalesce((SELECT r.rolcanlogin FROM pg_catalog.pg_roles r"
    "                  WHERE r.rolname OPERATOR(pg_catalog.=) j.username), false),"
    "       pg_catalog.octet_length(command)"
    "  FROM pgcrond.job j WHERE source OPERATOR(pg_catalog.=) 'sql' AND removed_at IS NULL"
    " ORDER BY jobid";

static long long max_command(const struct pgc_config *files)
{
	return files && files->max_command_size > 0 ? files->max_command_size
	                                            : CONFIG_MAX_COMMAND_SIZE;
}

static void send_read(struct notify_read *rd)
{
	char limit[24];
	snprintf(limit, sizeof(limit), "%lld", max_command(SQLJOBS_OF(rd)->files));
	const char *p[] = {limit};
	(void)ownsess_push(&rd->it, 0, rows_sql, 1, p);
}

void sqljobs_refresh(struct sqljobs *sj)
{
	/* the reload that calls this has just merged the rows as they stand: only rows that
	 * differ call for another merge (it cost a whole second build on every SIGHUP) */
	if (sj)
		notify_read_ask(sj->n, &sj->rd);
}

/* Jobs per part: about 220 bytes of JSON each, so a part is about 450 kB; libpq keeps a
 * send buffer as large as the largest statement sent for as long as the connection lives
 * (22 MB and a 33 MB buffer for 100,000 jobs in one statement). */
#define REC_PART 2000

/* FILES' jobs [FROM, TO) as the JSON array pgcrond.record_file_jobs takes; NULL on ENOMEM.
 * The loader keeps UTF-8 strings only (config_check_utf8) but for a job file's name, which
 * defined_at shows with its invalid bytes replaced (text_utf8_fix_dup). */
static char *files_json(const struct pgc_config *files, size_t from, size_t to)
{
	json_t *arr = json_array();
	char *text = NULL;
	bool ok = arr != NULL;

	for (size_t i = from; ok && i < to; i++) {
		const struct conf_job *j = &files->jobs[i];
		const char *db = j->database ? j->database : files->history_database;
		char at[4200];
		snprintf(at, sizeof(at), "%s:%d", j->file ? j->file : "", j->line);
		char *fixed = text_utf8_valid(at) ? NULL : text_utf8_fix_dup(at);
		json_t *after = json_array();
		for (size_t a = 0; after && a < j->n_after; a++)
			ok &= json_array_append_new(after, json_string(j->after[a])) == 0;
		char shown[1000];
		json_t *o = json_pack(
		    "{s:s, s:s, s:s?, s:s, s:s?, s:s, s:s?, s:o, s:b, s:I, s:s}", "name", j->name,
		    "kind", job_kind_name(j->kind), "plugin", j->plugin, "command",
		    job_kind_command(j, shown, sizeof(shown)), "schedule", j->schedule, "database",
		    db ? db : "", "listen", j->more->notify.listen, "after", after, "enabled",
		    j->enabled, "max_staleness_ms", (json_int_t)j->more->alerts.max_staleness_ms,
		    "defined_at", fixed ? fixed : at);
		free(fixed);
		ok &= json_array_append_new(arr, o) == 0;
	}
	if (ok)
		text = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return text;
}

static void on_recorded(void *arg, const PGresult *res);

/* Send the part of the file jobs from sj->rec_next. */
static void send_part(struct sqljobs *sj)
{
	size_t n = sj->files->n_jobs, from = sj->rec_next;
	size_t end = n - from <= REC_PART ? n : from + REC_PART;
	char *json = NULL;

	if (sj->first && from == 0 && end == (n <= REC_PART ? n : REC_PART)) {
		json = sj->first; /* made ahead for this very part */
		sj->first = NULL;
	} else {
		json = files_json(sj->files, from, end);
	}
	char total[24];
	int rc;

	if (!json) {
		log_error("cannot record the file jobs in pgcrond.job: out of memory");
		return;
	}
	snprintf(total, sizeof(total), "%zu", n);
	const char *p[] = {json, from == 0 ? "true" : "false", end == n ? "true" : "false", total};
	rc = notify_query(sj->n,
	                  "SELECT pgcrond.record_file_jobs_part($1::pg_catalog.jsonb, $2::boolean,"
	                  " $3::boolean, $4::integer)",
	                  p, 4, on_recorded, sj, true);
	free(json);
	sj->rec_busy = rc == 0; /* down: on_listening sends them again once connected */
	sj->rec_end = end;
}

static void send_files(struct sqljobs *sj)
{
	if (!sj->files)
		return;
	if (sj->rec_busy) {
		sj->rec_restart = true; /* after the part in flight */
		return;
	}
	sj->rec_next = 0;
	sj->rec_restart = false;
	sj->rec_current = false;
	send_part(sj);
}

static void on_recorded(void *arg, const PGresult *res)
{
	struct sqljobs *sj = arg;
	char why[512];
	bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;

	sj->rec_busy = false;
	if (sj->rec_restart) {
		send_files(sj);
		return;
	}
	if (!ok) {
		if (log_complain(&sj->complaint, NULL))
			log_error("cannot record the file jobs in pgcrond.job: %s; pgcrond install "
			          "does it too",
			          res ? pgconn_result_error(res, why, sizeof(why)) : "no result");
		return;
	}
	if (sj->rec_end < sj->files->n_jobs) {
		sj->rec_next = sj->rec_end;
		send_part(sj);
		return;
	}
	sj->rec_current = true;
	log_complaint_reset(&sj->complaint);
	/* the parts' JSON is freed, in pieces among the jobs' allocations: the pages go back
	 * (100,000 jobs: 4 MB of the RSS) */
	malloc_trim(0);
}

char *sqljobs_first_part(const struct pgc_config *files)
{
	return files_json(files, 0, files->n_jobs <= REC_PART ? files->n_jobs : REC_PART);
}

void sqljobs_record_files_made(struct sqljobs *sj, const struct pgc_config *files, char *first,
                               bool same)
{
	if (!sj) {
		free(first);
		return;
	}
	free(sj->first);
	sj->first = first;
	sj->files = files;
	if (same && (sj->rec_current || sj->rec_busy))
		return; /* the registry has these jobs, or the parts on their way are theirs */
	send_files(sj);
}

static void on_refused(void *arg, const PGresult *res)
{
	char why[512];
	if ((!res || PQresultStatus(res) != PGRES_TUPLES_OK) &&
	    log_complain(&((struct sqljobs *)arg)->complaint, NULL))
		log_error("cannot record why jobs made in SQL are not run in pgcrond.job: %s",
		          res ? pgconn_result_error(res, why, sizeof(why)) : "no result");
}

static void send_refused(struct sqljobs *sj)
{
	const char *p[] = {sj->refused};
	if (sj->refused &&
	    notify_query(sj->n, "SELECT pgcrond.record_refused($1::pg_catalog.jsonb)", p, 1,
	                 on_refused, sj, false) == -ENOMEM)
		log_error("cannot record why jobs made in SQL are not run: out of memory");
}

void sqljobs_note_refused(struct sqljobs *sj, const struct diag_list *dl, json_t **refused)
{
	json_t *all = json_object(), *e;
	const char *id;
	for (size_t i = 0; sj && all && i < dl->n; i++) {
		const struct diag *g = &dl->items[i];
		const struct sql_row *r = NULL;
		char key[24] = "", said[2048], *why = NULL;
		/* its row, by the jobid of its origin (sqljobs_merge's) */
		if (g->file && sscanf(g->file, "cron.job jobid %23[0-9]", key) == 1)
			for (size_t k = 0; sj->rows && !r && k < sj->rows->n; k++)
				if (sj->rows->row[k].jobid && !strcmp(sj->rows->row[k].jobid, key))
					r = &sj->rows->row[k];
		if (!r || !r->name)
			continue;
		const char *was =
		    json_string_value(json_object_get(json_object_get(all, key), "why"));
		if (asprintf(&why, "%s%s%s", was ? was : "", was ? "; " : "", g->message) < 0)
			break;
		text_format(said, sizeof(said), "job \"%s\" (jobid %s, role \"%s\") is not run: %s",
		            r->name, key, r->username ? r->username : "?", why);
		json_object_set_new(all, key,
		                    json_pack("{s:s, s:s?, s:s?, s:s, s:s}", "name", r->name,
		                              "cron_name", r->cron_name, "role", r->username, "why",
		                              why, "said", said));
		free(why);
	}
	if (!sj || !all || json_equal(all, *refused)) {
		json_decref(all);
		return;
	}
	json_object_foreach(all, id, e) if (!json_equal(e, json_object_get(*refused, id)))
	    log_error("%s", json_string_value(json_object_get(e, "said")));
	json_decref(*refused);
	*refused = all;
	free(sj->refused);
	sj->refused = json_dumps(all, JSON_COMPACT);
	send_refused(sj); /* and again after every reconnect (on_listening) */
}

static void on_notify(void *arg, const char *channel, const char *payload)
{
	struct sqljobs *sj = arg;
	(void)payload; /* untrusted, and not needed: the whole set is read again */
	notify_read_ask(sj->n, &sj->rd);
}

static void on_listening(void *arg, bool first)
{
	struct sqljobs *sj = arg;
	sj->rec_busy = false;
	notify_read_ask(sj->n, &sj->rd);
	send_files(sj);
	send_refused(sj);
}

int sqljobs_new(struct event_base *base, const char *history_name, const char *conninfo,
                void (*changed)(void *arg), void *arg, struct sqljobs **out)
{
	struct sqljobs *sj = calloc(1, sizeof(*sj));
	const char *channels[] = {CHANNEL};

	*out = NULL;
	if (!sj)
		return -ENOMEM;
	sj->changed = changed;
	sj->arg = arg;
	sj->rd = (struct notify_read){.send = send_read, .done = on_rows};
	struct notify_callbacks cb = {
	    .on_notify = on_notify, .on_listening = on_listening, .arg = sj};
	/* on the history database's own session (notify.h) */
	int rc = notify_new(base, history_name, conninfo, &cb, &sj->n);
	if (rc == 0)
		rc = notify_set_channels(sj->n, channels, 1);
	if (rc < 0) {
		sqljobs_free(&sj);
		return rc;
	}
	*out = sj;
	return 0;
}

int sqljobs_copy(const struct sqljobs *sj, struct sqljobs **out)
{
	*out = NULL;
	if (!sj)
		return 0;
	struct sqljobs *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->rows = sj->rows;
	if (c->rows)
		c->rows->refs++;
	*out = c;
	return 0;
}

void sqljobs_free(struct sqljobs **psj)
{
	struct sqljobs *sj = psj ? *psj : NULL;
	if (!sj)
		return;
	notify_free(&sj->n);
	rows_release(&sj->rows);
	free(sj->last);
	free(sj->first);
	free(sj->refused);
	free(sj);
	*psj = NULL;
}

/* ---- conninfo ------------------------------------------------------------------------ */

static void put_value(FILE *f, const char *v)
{
	fputc('\'', f);
	for (const char *p = v; *p; p++) {
		if (*p == '\'' || *p == '\\')
			fputc('\\', f);
		fputc(*p, f);
	}
	fputc('\'', f);
}

char *sqljobs_conninfo_as(const char *conninfo, const char *dbname, const char *user)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	char *buf = NULL;
	size_t len = 0;

	if (!opts)
		return NULL;
	FILE *f = open_memstream(&buf, &len);
	if (!f) {
		PQconninfoFree(opts);
		return NULL;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		const char *v = o->val;
		if (strcmp(o->keyword, "password") == 0)
			continue; /* the daemon's own: never offered as the owner's */
		if (strcmp(o->keyword, "dbname") == 0 && dbname)
			v = dbname;
		else if (strcmp(o->keyword, "user") == 0 && user)
			v = user;
		if (!v)
			continue;
		fprintf(f, "%s%s=", ftell(f) ? " " : "", o->keyword);
		put_value(f, v);
	}
	PQconninfoFree(opts);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- merging --------------------------------------------------------------------------- */

/* The pool key of (DATABASE, USER): "database/user", with "/" and "%" in either written
 * %2F and %25, so two different pairs never share a key (and so a connection). */
static char *pool_key(const char *database, const char *user)
{
	char *key = malloc(3 * (strlen(database) + strlen(user)) + 2), *o = key;
	const char *part[] = {database, user};
	for (int k = 0; key && k < 2; k++) {
		for (const char *p = part[k]; *p; p++)
			if (*p == '/' || *p == '%')
				o += snprintf(o, 4, "%%%s", *p == '/' ? "2F" : "25");
			else
				*o++ = *p;
		*o++ = k ? '\0' : '/';
	}
	return key;
}

/* Append "key = VALUE;" for each option: pgcrond.schedule() stores validated keys only, and
 * JSON's numbers, booleans, strings and arrays of strings are libconfig's too. */
static void put_options(FILE *f, const char *json)
{
	json_t *o = json_loads(json, 0, NULL), *v;
	const char *k;
	json_object_foreach(o, k, v)
	{
		char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		fprintf(f, "%s = %s;\n", k, text ? text : "?"); /* (no memory: refused) */
		free(text);
	}
	json_decref(o);
}

static char *job_text(const struct sql_row *r, const char *pool)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	char *q[4] = {config_sql_quote(r->name ? r->name : ""),
	              config_sql_quote(r->command ? r->command : ""),
	              config_sql_quote(r->schedule ? r->schedule : ""), config_sql_quote(pool)};
	bool ok = f && q[0] && q[1] && q[2] && q[3];
	if (ok) {
		fprintf(f, "job = {\nname = %s;\ncommand = %s;\ndatabase = %s;\n", q[0], q[1],
		        q[3]);
		/* none: a job on freshness alone (pgcrond.schedule() with a NULL schedule) */
		if (r->schedule && r->schedule[0])
			fprintf(f, "schedule = %s;\n", q[2]);
		fprintf(f, "enabled = %s;\n", r->enabled ? "true" : "false");
		if (r->options && strcmp(r->options, "{}") != 0)
			put_options(f, r->options);
		fputs("};\n", f);
	}
	for (int i = 0; i < 4; i++)
		free(q[i]);
	if (f && fclose(f) != 0)
		ok = false;
	if (!ok) {
		free(buf);
		return NULL;
	}
	return buf;
}

int sqljobs_merge(const struct sqljobs *sj, const struct pgc_config *files, struct pgc_config **out,
                  struct diag_list *dl)
{
	size_t n = sj && sj->rows ? sj->rows->n : 0;
	struct config_sql_db *dbs = calloc(n + 1, sizeof(*dbs));
	struct config_sql_job *jobs = calloc(n + 1, sizeof(*jobs));
	char **origins = calloc(n + 1, sizeof(*origins));
	size_t n_dbs = 0, n_jobs = 0;
	int rc = -ENOMEM;

	if (!dbs || !jobs || !origins)
		goto out;
	const struct conf_database *hist = config_database(files, files->history_database);
	for (size_t i = 0; i < n; i++) {
		const struct sql_row *r = &sj->rows->row[i];
		char origin[160];
		/* the owner too: a job refused for a clash (a job file's name) is someone's */
		if (r->username)
			text_format(origin, sizeof(origin), "cron.job jobid %s (role \"%s\")",
			            r->jobid ? r->jobid : "?", r->username);
		else
			snprintf(origin, sizeof(origin), "cron.job jobid %s",
			         r->jobid ? r->jobid : "?");
		if (!(origins[i] = strdup(origin)))
			goto out;
		if (!r->database || !r->username) {
			diag_add(dl, origin, 0, "no database or owner; the job is not run");
			continue;
		}
		if (!r->command) { /* not even fetched: 256 MB would hold the loop for seconds */
			diag_add(
			    dl, origin, 0,
			    "its command is %lld bytes, more than max_command_size (%lld bytes); "
			    "its owner should schedule a call of a function instead",
			    r->bytes, max_command(files));
			continue;
		}
		if (r->enabled && !r->can_login) {
			/* pg_cron's rule: a job runs logged in as its owner */
			diag_add(
			    dl, origin, 0,
			    "its owner, role \"%s\", cannot log in; ALTER ROLE ... LOGIN, and let "
			    "this host authenticate it (pg_hba.conf, .pgpass or a client "
			    "certificate), or unschedule the job",
			    r->username);
			continue;
		}
		/* a configured entry of that name, else the history database's server */
		const struct conf_database *base = config_database(files, r->database);
		const char *dbname = base ? NULL : r->database;
		if (!base)
			base = hist;
		if (!base) {
			diag_add(
			    dl, origin, 0,
			    "database \"%s\" is not configured and there is no history database "
			    "to reach its server through; add it under databases",
			    r->database);
			continue;
		}
		char *key = pool_key(r->database, r->username);
		char *ci = sqljobs_conninfo_as(base->conninfo, dbname, r->username);
		char *text = key ? job_text(r, key) : NULL;
		if (!key || !ci || !text) {
			free(key);
			free(ci);
			free(text);
			if (!ci && key && text) {
				diag_add(dl, origin, 0,
				         "the conninfo of database \"%s\" does not parse",
				         base->name);
				continue;
			}
			goto out;
		}
		dbs[n_dbs++] =
		    (struct config_sql_db){.name = key, .conninfo = ci, .pool = SQL_POOL};
		jobs[n_jobs++] =
		    (struct config_sql_job){.origin = origins[i],
		                            .text = text,
		                            .username = r->username,
		                            .sql_database = r->database,
		                            .cron_name = r->cron_name,
		                            .jobid = r->jobid ? strtoll(r->jobid, NULL, 10) : 0};
	}
	rc = config_with_sql_jobs(files, dbs, n_dbs, jobs, n_jobs, out, dl);
out:
	for (size_t i = 0; dbs && i < n_dbs; i++) {
		free((char *)dbs[i].name);
		free((char *)dbs[i].conninfo);
	}
	for (size_t i = 0; jobs && i < n_jobs; i++)
		free((char *)jobs[i].text);
	text_free_list(origins, n);
	free(dbs);
	free(jobs);
	return rc;
}

int sqljobs_merge_from(PGconn *conn, const struct pgc_config *files, struct pgc_config **out,
                       struct diag_list *dl)
{
	struct sqljobs tmp = {0};
	char *all = NULL, limit[24];
	snprintf(limit, sizeof(limit), "%lld", max_command(files));
	const char *p[] = {limit};
	PGresult *r = PQexecParams(conn, rows_sql, 1, NULL, p, NULL, NULL, 0);
	int rc = 0;

	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		rc = parse_rows(r, &tmp.rows, &all);
	PQclear(r); /* no schema version 3: no SQL jobs */
	if (rc == 0)
		rc = sqljobs_merge(&tmp, files, out, dl);
	rows_release(&tmp.rows);
	free(all);
	return rc;
}
