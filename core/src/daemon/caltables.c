/* Table calendars, read on the own sessions of their databases (see caltables.h). */
#include "caltables.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "config.h"
#include "cron.h"
#include "log.h"
#include "notify.h"
#include "ownsess.h"
#include "pgconn.h"

#define CHANNEL "pgcrond_calendars"

struct cal {                   /* one table calendar */
	struct notify_read rd; /* its read, on the session (one for many notifications) */
	struct calreader *r;
	char *name, *table, *sql, *where; /* WHERE: the calendar's FILE:LINE */
	const struct cron_dates *dates;   /* the last good ones; NULL: none read yet */
	struct log_complaint complaint;
};

struct calreader { /* the calendars of one database, on its own session */
	struct caltables *ct;
	char *database, *conninfo;
	struct notify *n;
	struct cal *cals;
	size_t n_cals;
};

struct caltables {
	struct event_base *base;
	struct calreader **r;
	size_t n;
	void (*changed)(void *arg);
	void *arg;
};

/* The statement that reads TABLE's dates as days since 1970-01-01. TABLE passed
 * config_valid_source: each part is lower case, or quoted with no '"' inside, so quoting the
 * bare parts makes every part an identifier. NULL on ENOMEM. */
static char *read_sql(const char *table)
{
	char name[160], *sql = NULL;
	const char *dot =
	    table[0] == '"' ? strchr(strchr(table + 1, '"'), '.') : strchr(table, '.');
	int a = (int)(dot - table);
	const char *b = dot + 1;
	snprintf(name, sizeof(name), table[0] == '"' ? "%.*s." : "\"%.*s\".", a, table);
	size_t l = strlen(name);
	snprintf(name + l, sizeof(name) - l, b[0] == '"' ? "%s" : "\"%s\"", b);
	if (asprintf(&sql,
	             "SELECT DISTINCT d OPERATOR(pg_catalog.-) '1970-01-01'::pg_catalog.date"
	             "  FROM (SELECT (\"date\")::pg_catalog.date AS d FROM %s) s"
	             " WHERE pg_catalog.isfinite(d) LIMIT %d",
	             name, CRON_DATES_MAX + 1) < 0)
		return NULL;
	return sql;
}

/* RES's dates into *OUT; false with a reason in WHY. */
static bool parse_dates(const PGresult *res, const struct cron_dates **out, char *why,
                        size_t whylen)
{
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		if (res)
			pgconn_result_error(res, why, whylen);
		else
			snprintf(why, whylen, "no answer");
		return false;
	}
	int n = PQntuples(res);
	if (n > CRON_DATES_MAX) {
		snprintf(
		    why, whylen,
		    "more than %d dates; a calendar lists holidays and closing days, not every "
		    "day (a schedule says that)",
		    CRON_DATES_MAX);
		return false;
	}
	int64_t *days = malloc(((size_t)n + 1) * sizeof(*days));
	for (int i = 0; days && i < n; i++)
		days[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	*out = days ? cron_dates_make(days, (size_t)n) : NULL;
	free(days);
	if (!*out)
		snprintf(why, whylen, "out of memory");
	return *out != NULL;
}

/* ---- the daemon's reads ------------------------------------------------------------ */

static void send_read(struct notify_read *rd)
{
	(void)ownsess_push(&rd->it, 0, ((struct cal *)rd)->sql, 0, NULL);
}

static void read_done(struct notify_read *rd, const struct stmtq_result *r)
{
	struct cal *c = (struct cal *)rd;
	const struct cron_dates *d = NULL;
	char why[512];

	if (r->failed || !parse_dates(r->res, &d, why, sizeof(why))) {
		if (r->failed)
			snprintf(why, sizeof(why), "%s", r->err);
		if (log_complain(&c->complaint, NULL))
			log_error(
			    "calendar \"%s\": cannot read its dates from table %s of database "
			    "\"%s\": %s; %s (%zu date(s)); give the table a column \"date\" "
			    "of type date, one date a row, that pgcrond's role may read (the "
			    "calendar is at %s)",
			    c->name, c->table, c->r->database, why,
			    c->dates ? "its jobs keep its last dates"
			             : "its jobs do not fire until it is read",
			    cron_dates_count(c->dates), c->where);
		return;
	}
	if (log_complaint_reset(&c->complaint) || d != c->dates)
		log_info("calendar \"%s\": %zu date(s) read from table %s of database \"%s\"",
		         c->name, cron_dates_count(d), c->table, c->r->database);
	if (d == c->dates)
		return;
	c->dates = d;
	log_info("the dates of table calendar \"%s\" changed; applying them", c->name);
	c->r->ct->changed(c->r->ct->arg);
}

static void on_notify(void *arg, const char *channel, const char *payload)
{
	struct calreader *r = arg;
	(void)payload; /* untrusted, and not needed: every calendar of the database is read */
	for (size_t i = 0; i < r->n_cals; i++)
		notify_read_ask(r->n, &r->cals[i].rd);
}

static void on_listening(void *arg, bool first)
{
	on_notify(arg, CHANNEL, "");
}

static void reader_free(struct calreader **rp)
{
	struct calreader *r = *rp;
	if (!r)
		return;
	notify_free(&r->n); /* its items are dropped with it */
	for (size_t i = 0; i < r->n_cals; i++) {
		free(r->cals[i].name);
		free(r->cals[i].table);
		free(r->cals[i].sql);
		free(r->cals[i].where);
	}
	free(r->cals);
	free(r->database);
	free(r->conninfo);
	free(r);
	*rp = NULL;
}

/* The reader of DB's calendars in CFG, the dates of those CT reads already kept; NULL on
 * ENOMEM. */
static struct calreader *reader_new(struct caltables *ct, const struct pgc_config *cfg,
                                    const struct conf_database *db)
{
	struct calreader *r = calloc(1, sizeof(*r));
	bool ok = r && (r->cals = calloc(cfg->n_calendars, sizeof(*r->cals))) &&
	          (r->database = strdup(db->name)) && (r->conninfo = strdup(db->conninfo));

	for (size_t i = 0; ok && i < cfg->n_calendars; i++) {
		const struct conf_calendar *cc = &cfg->calendars[i];
		if (!cc->table || strcmp(cc->database, db->name) != 0)
			continue;
		struct cal *c = &r->cals[r->n_cals++];
		c->r = r;
		c->rd = (struct notify_read){.send = send_read, .done = read_done};
		ok = (c->name = strdup(cc->name)) && (c->table = strdup(cc->table)) &&
		     (c->sql = read_sql(cc->table)) &&
		     asprintf(&c->where, "%s:%d", cc->file, cc->line) >= 0;
		if (!ok)
			c->where = NULL;
		for (size_t k = 0; ok && k < ct->n; k++)
			for (size_t m = 0; m < ct->r[k]->n_cals; m++) {
				const struct cal *o = &ct->r[k]->cals[m];
				if (strcmp(ct->r[k]->database, db->name) == 0 &&
				    strcmp(o->name, c->name) == 0 &&
				    strcmp(o->table, c->table) == 0)
					c->dates = o->dates;
			}
	}
	r->ct = ct;
	struct notify_callbacks cb = {
	    .on_notify = on_notify, .on_listening = on_listening, .arg = r};
	const char *channels[] = {CHANNEL};
	if (!ok || notify_new(ct->base, db->name, db->conninfo, &cb, &r->n) < 0 ||
	    notify_set_channels(r->n, channels, 1) < 0)
		reader_free(&r);
	return r;
}

/* Whether R reads just DB's table calendars of CFG, in their order. */
static bool reader_same(const struct calreader *r, const struct pgc_config *cfg,
                        const struct conf_database *db)
{
	size_t k = 0;
	if (strcmp(r->database, db->name) != 0 || strcmp(r->conninfo, db->conninfo) != 0)
		return false;
	for (size_t i = 0; i < cfg->n_calendars; i++) {
		const struct conf_calendar *c = &cfg->calendars[i];
		if (!c->table || strcmp(c->database, db->name) != 0)
			continue;
		if (k == r->n_cals || strcmp(r->cals[k].name, c->name) != 0 ||
		    strcmp(r->cals[k].table, c->table) != 0)
			return false;
		k++;
	}
	return k == r->n_cals;
}

/* caltables_apply; 0 or -ENOMEM. */
static int apply(struct caltables *ct, const struct pgc_config *cfg)
{
	struct calreader **next = calloc(cfg->n_databases + 1, sizeof(*next));
	size_t n = 0;

	if (!next)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_databases; i++) {
		const struct conf_database *db = &cfg->databases[i];
		bool used = false;
		for (size_t k = 0; k < cfg->n_calendars && !used; k++)
			used = cfg->calendars[k].table &&
			       strcmp(cfg->calendars[k].database, db->name) == 0;
		if (!used)
			continue;
		for (size_t k = 0; k < ct->n && !next[n]; k++)
			if (ct->r[k] && reader_same(ct->r[k], cfg, db)) {
				next[n] = ct->r[k]; /* kept: read again below */
				ct->r[k] = NULL;
				on_notify(next[n], CHANNEL, "");
			}
		/* a new reader joins the session before an old one of it leaves: no reconnect */
		if (!next[n] && !(next[n] = reader_new(ct, cfg, db))) {
			for (size_t k = 0; k < n; k++)
				reader_free(&next[k]);
			free(next);
			return -ENOMEM;
		}
		n++;
	}
	for (size_t k = 0; k < ct->n; k++)
		reader_free(&ct->r[k]);
	free(ct->r);
	ct->r = next;
	ct->n = n;
	return 0;
}

void caltables_apply(struct caltables *ct, const struct pgc_config *cfg)
{
	if (apply(ct, cfg) < 0)
		log_error("out of memory reading the table calendars; those read so far keep "
		          "their dates");
}

int caltables_new(struct event_base *base, const struct pgc_config *cfg, void (*changed)(void *arg),
                  void *arg, struct caltables **out)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	**out = (struct caltables){.base = base, .changed = changed, .arg = arg};
	int rc = apply(*out, cfg);
	if (rc < 0)
		caltables_free(out);
	return rc;
}

void caltables_free(struct caltables **ctp)
{
	struct caltables *ct = *ctp;
	if (!ct)
		return;
	for (size_t k = 0; k < ct->n; k++)
		reader_free(&ct->r[k]);
	free(ct->r);
	free(ct);
	*ctp = NULL;
}

/* ---- snapshots --------------------------------------------------------------------- */

/* IN[0..N) as one block: the array, then its strings. */
static int pack(const struct config_table_dates *in, size_t n, struct config_table_dates **out)
{
	size_t len = n * sizeof(*in);
	*out = NULL;
	for (size_t i = 0; i < n; i++)
		len += strlen(in[i].calendar) + strlen(in[i].database) + strlen(in[i].table) + 3;
	if (!n)
		return 0;
	struct config_table_dates *v = malloc(len);
	if (!v)
		return -ENOMEM;
	char *s = (char *)(v + n);
	for (size_t i = 0; i < n; i++) {
		const char *from[] = {in[i].calendar, in[i].database, in[i].table};
		const char **to[] = {&v[i].calendar, &v[i].database, &v[i].table};
		for (int f = 0; f < 3; f++) {
			size_t l = strlen(from[f]) + 1;
			memcpy(s, from[f], l);
			*to[f] = s;
			s += l;
		}
		v[i].dates = in[i].dates;
	}
	*out = v;
	return 0;
}

int caltables_snapshot(const struct caltables *ct, struct config_table_dates **out, size_t *n)
{
	size_t cap = 0, k = 0;
	*out = NULL;
	*n = 0;
	for (size_t i = 0; ct && i < ct->n; i++)
		cap += ct->r[i]->n_cals;
	struct config_table_dates *v = calloc(cap + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; ct && i < ct->n; i++)
		for (size_t m = 0; m < ct->r[i]->n_cals; m++) {
			const struct cal *c = &ct->r[i]->cals[m];
			if (c->dates)
				v[k++] = (struct config_table_dates){c->name, ct->r[i]->database,
				                                     c->table, c->dates};
		}
	int rc = pack(v, k, out);
	*n = rc == 0 ? k : 0;
	free(v);
	return rc;
}

int caltables_read_now(const struct pgc_config *cfg, const char *cmd,
                       struct config_table_dates **out, size_t *n)
{
	struct config_table_dates *v = calloc(cfg->n_calendars + 1, sizeof(*v));
	size_t k = 0;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_calendars && rc == 0; i++) {
		const struct conf_calendar *c = &cfg->calendars[i];
		const struct conf_database *db =
		    c->table ? config_database(cfg, c->database) : NULL;
		char why[512] = "", *sql = db ? read_sql(c->table) : NULL;
		PGconn *conn =
		    sql ? pgconn_connect_blocking(db->conninfo, OWNSESS_APP_NAME, why, sizeof(why))
		        : NULL;
		PGresult *res = conn ? PQexec(conn, sql) : NULL;
		const struct cron_dates *d = NULL;
		if (db && !sql)
			rc = -ENOMEM;
		else if (conn && parse_dates(res, &d, why, sizeof(why)))
			v[k++] = (struct config_table_dates){c->name, c->database, c->table, d};
		else if (db)
			fprintf(
			    stderr,
			    "pgcrond %s: calendar \"%s\": cannot read its dates from table %s of "
			    "database \"%s\": %s; the running daemon fires its jobs on the dates "
			    "it last read ('pgcrond status JOB' shows when)\n",
			    cmd, c->name, c->table, c->database, why);
		PQclear(res);
		PQfinish(conn);
		free(sql);
	}
	if (rc == 0)
		rc = pack(v, k, out);
	*n = rc == 0 ? k : 0;
	free(v);
	return rc;
}
