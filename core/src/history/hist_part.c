/* History partition maintenance (hist_part.h): one thread, one short-lived connection per
 * pass. A pass: create the partitions up to a few days ahead, then for every partition whose
 * day ended before now - retain: DETACH PARTITION ... CONCURRENTLY (SHARE UPDATE EXCLUSIVE on
 * the parent, so inserts and updates go on), then DROP TABLE on the detached table (which
 * locks only that table). A DETACH interrupted half-way (the connection lost) leaves the
 * partition "detach pending"; the next pass ends it with FINALIZE. A table detached but not
 * yet dropped (a crash between the two) is dropped by name. */
#include "hist_part.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdatomic.h>
#include <threads.h> /* not pthread.h: it includes <sched.h>, shadowed by sched/sched.h */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "pgconn.h"

#define APP_NAME "pgcrond retention"
#define AHEAD_DAYS "3"

struct hist_part {
	thrd_t thread;
	mtx_t mu;
	cnd_t cv;
	bool stop, kicked;
	bool busy;     /* in a pass: connecting or running statements */
	bool orphaned; /* stopped while busy: the thread frees this when its pass ends */
	char *conninfo;
	int64_t retain_ms, interval_ms;
	struct hist_part_stats st;
	struct log_complaint complaint; /* used by the thread only */
	struct pgconn_notices notices;  /* ditto */
};

static bool exec_ok(PGconn *c, PGresult *r, const char *what)
{
	ExecStatusType s = PQresultStatus(r);
	char why[512];

	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return true;
	if (!r && PQstatus(c) == CONNECTION_OK && !PQisBusy(c))
		return false; /* not sent: stopping */
	if (r)
		pgconn_result_error(r, why, sizeof(why));
	else
		pgconn_error(c, why, sizeof(why));
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	bool old_schema = state && (!strcmp(state, "42883") || !strcmp(state, "42P01"));
	log_warning("history retention: %s: %s%s", what, why,
	            old_schema ? "; the history needs schema version 6: run 'pgcrond install'"
	                       : "");
	return false;
}

/* One statement, unless the daemon is stopping. */
static PGresult *run(struct hist_part *p, PGconn *c, const char *sql, int n,
                     const char *const *params)
{
	mtx_lock(&p->mu);
	bool stop = p->stop;
	mtx_unlock(&p->mu);
	if (stop)
		return NULL;
	return PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
}

/* "ALTER TABLE ... DETACH ... SCHEMA.NAME SUFFIX" or "DROP TABLE SCHEMA.NAME" with both names
 * quoted by libpq; NULL on error. */
static char *part_sql(PGconn *c, const char *head, const char *schema, const char *name,
                      const char *tail)
{
	char *s = PQescapeIdentifier(c, schema, strlen(schema));
	char *t = PQescapeIdentifier(c, name, strlen(name));
	char *out = NULL;

	if (s && t) {
		size_t len = strlen(head) + strlen(s) + strlen(t) + strlen(tail) + 4;
		out = malloc(len);
		if (out && snprintf(out, len, "%s %s.%s%s", head, s, t, tail) >= (int)len) {
			free(out);
			out = NULL;
		}
	}
	PQfreemem(s);
	PQfreemem(t);
	return out;
}

static bool drop_one(struct hist_part *p, PGconn *c, const char *schema, const char *name,
                     bool pending, bool attached, long long rows)
{
	char *detach = attached
	                   ? part_sql(c, "ALTER TABLE pgcrond.job_run_details DETACH PARTITION",
	                              schema, name, pending ? " FINALIZE" : " CONCURRENTLY")
	                   : NULL;
	char *drop = part_sql(c, "DROP TABLE", schema, name, "");
	bool ok = drop && (!attached || detach);

	if (ok && detach) {
		PGresult *r = run(p, c, detach, 0, NULL);
		ok = exec_ok(c, r, "detaching an expired partition");
		PQclear(r);
	}
	if (ok) {
		PGresult *r = run(p, c, drop, 0, NULL);
		ok = exec_ok(c, r, "dropping an expired partition");
		PQclear(r);
	}
	if (ok) {
		log_info("history: dropped partition %s.%s (about %lld runs past the retention)",
		         schema, name, rows);
		mtx_lock(&p->mu);
		p->st.dropped++;
		p->st.dropped_rows += rows > 0 ? (uint64_t)rows : 0;
		mtx_unlock(&p->mu);
	}
	free(detach);
	free(drop);
	return ok;
}

static bool pass(struct hist_part *p, PGconn *c, int64_t retain_ms)
{
	PGresult *r =
	    run(p, c, "SELECT pgcrond.history_partitions_ensure(" AHEAD_DAYS ")", 0, NULL);
	bool ok = exec_ok(c, r, "creating partitions ahead");

	if (ok && PQntuples(r) == 1) {
		long long made = atoll(PQgetvalue(r, 0, 0));
		mtx_lock(&p->mu);
		p->st.created += made > 0 ? (uint64_t)made : 0;
		mtx_unlock(&p->mu);
		if (made > 0)
			log_debug("history: created %lld partitions", made);
	}
	PQclear(r);
	if (!ok || retain_ms <= 0)
		return ok;

	char retain[24];
	snprintf(retain, sizeof(retain), "%" PRId64, retain_ms);
	const char *params[] = {retain};
	/* attached partitions past the retention, then tables a crash left detached */
	r = run(p, c,
	        "SELECT schema_name, partition_name, detach_pending, true, est_rows"
	        "  FROM pgcrond.history_partition_list()"
	        " WHERE to_time <= now() - $1::bigint * interval '1 millisecond'"
	        " UNION ALL "
	        "SELECT n.nspname, c.relname, false, false, greatest(c.reltuples, 0)::bigint"
	        "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	        " WHERE n.nspname = 'pgcrond' AND c.relkind = 'r' AND NOT c.relispartition"
	        "   AND c.relname ~ '^job_run_details_p[0-9]{8}$'"
	        "   AND (to_date(substr(c.relname, 18), 'YYYYMMDD') + 1)::timestamp"
	        "       AT TIME ZONE 'UTC' <= now() - $1::bigint * interval '1 millisecond'",
	        1, params);
	ok = exec_ok(c, r, "listing expired partitions");
	for (int i = 0; ok && i < PQntuples(r); i++)
		ok = drop_one(p, c, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
		              PQgetvalue(r, i, 2)[0] == 't', PQgetvalue(r, i, 3)[0] == 't',
		              atoll(PQgetvalue(r, i, 4)));
	PQclear(r);
	return ok;
}

static void one_pass(struct hist_part *p)
{
	char err[512];
	mtx_lock(&p->mu);
	int64_t retain_ms = p->retain_ms;
	mtx_unlock(&p->mu);

	PGconn *c = pgconn_connect_blocking(p->conninfo, APP_NAME, err, sizeof(err));
	bool ok = false;
	if (!c) {
		if (log_complain(&p->complaint))
			log_warning("history retention: %s; trying again later", err);
		goto out;
	}
	if (p->notices.limit == 0)
		pgconn_notices_init(&p->notices, "history retention", PGCONN_NOTICES_PER_MIN,
		                    60000);
	pgconn_log_notices(c, &p->notices);
	ok = pass(p, c, retain_ms);
	PQfinish(c);
	if (ok)
		log_complaint_reset(&p->complaint);
out:
	mtx_lock(&p->mu);
	if (ok)
		p->st.runs++;
	else
		p->st.failures++;
	mtx_unlock(&p->mu);
}

/* The last stopped pass still under way (see hist_part_stop). */
static struct hist_part *_Atomic orphan;

static void free_part(struct hist_part *p)
{
	struct hist_part *self = p;
	atomic_compare_exchange_strong(&orphan, &self, NULL);
	cnd_destroy(&p->cv);
	mtx_destroy(&p->mu);
	free(p->conninfo);
	free(p);
}

static int thread_main(void *arg)
{
	struct hist_part *p = arg;

	mtx_lock(&p->mu);
	p->kicked = true; /* a first pass at once */
	while (!p->stop) {
		if (!p->kicked) {
			struct timespec until;
			timespec_get(&until, TIME_UTC);
			until.tv_sec += (time_t)(p->interval_ms / 1000);
			until.tv_nsec += (long)(p->interval_ms % 1000) * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			/* woken by a kick, a stop, or the interval: all three mean "look again" */
			while (!p->kicked && !p->stop &&
			       cnd_timedwait(&p->cv, &p->mu, &until) == thrd_success)
				;
			if (p->stop)
				break;
		}
		p->kicked = false;
		p->busy = true;
		mtx_unlock(&p->mu);
		one_pass(p);
		mtx_lock(&p->mu);
		p->busy = false;
	}
	bool orphaned = p->orphaned;
	mtx_unlock(&p->mu);
	if (orphaned)
		free_part(p);
	return 0;
}

int hist_part_start(const char *conninfo, int64_t retain_ms, int64_t interval_ms,
                    struct hist_part **out)
{
	struct hist_part *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->conninfo = strdup(conninfo);
	if (!p->conninfo) {
		free(p);
		return -ENOMEM;
	}
	p->retain_ms = retain_ms;
	p->interval_ms = interval_ms > 0 ? interval_ms : 600000;
	if (mtx_init(&p->mu, mtx_plain) != thrd_success || cnd_init(&p->cv) != thrd_success) {
		free(p->conninfo);
		free(p);
		return -ENOMEM;
	}
	if (thrd_create(&p->thread, thread_main, p) != thrd_success) {
		cnd_destroy(&p->cv);
		mtx_destroy(&p->mu);
		free(p->conninfo);
		free(p);
		return -EAGAIN;
	}
	*out = p;
	return 0;
}

void hist_part_kick(struct hist_part *p)
{
	if (!p)
		return;
	mtx_lock(&p->mu);
	p->kicked = true;
	cnd_signal(&p->cv);
	mtx_unlock(&p->mu);
}

void hist_part_set_interval(struct hist_part *p, int64_t interval_ms)
{
	if (!p || interval_ms <= 0)
		return;
	mtx_lock(&p->mu);
	p->interval_ms = interval_ms;
	mtx_unlock(&p->mu);
}

void hist_part_get_stats(struct hist_part *p, struct hist_part_stats *out)
{
	if (!p) {
		memset(out, 0, sizeof(*out));
		return;
	}
	mtx_lock(&p->mu);
	*out = p->st;
	mtx_unlock(&p->mu);
}

/* A pass may be stuck on a server that stopped answering (its connect_timeout may be long,
 * and a cancel request would hang on it too): the daemon's stop does not wait for it. A busy
 * thread is left to end its pass (or to end with the process) and frees its state itself;
 * an idle one is joined. */
void hist_part_stop(struct hist_part **pp)
{
	struct hist_part *p = *pp;

	if (!p)
		return;
	*pp = NULL;
	mtx_lock(&p->mu);
	p->stop = true;
	bool busy = p->busy;
	p->orphaned = busy;
	cnd_signal(&p->cv);
	mtx_unlock(&p->mu);
	if (busy) {
		/* kept reachable: the process may end before the thread does */
		orphan = p;
		thrd_detach(p->thread);
		return;
	}
	thrd_join(p->thread, NULL);
	free_part(p);
}
