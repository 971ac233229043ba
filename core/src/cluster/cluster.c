/* Several instances on one history database (cluster.h, docs/several-instances.md).
 *
 * The statements go on the history database's own session (cluster_conn.c), one of the
 * cluster's in flight at a time, chosen from the table below. Claims wait in a FIFO; whatever
 * waits when the session is idle goes out as ONE statement (the fires of a busy second share
 * it), so a claim costs a fraction of a round trip. When no claim can be made (the server is
 * down, or a standby) the verdict depends on what was known at the last contact: a lone
 * instance runs its fires unclaimed, as if it had no peers, and its history spools;
 * an instance that saw others live runs nothing unclaimed, since they may be running the
 * same fires. Here: the table, lifetime and the publishing of this instance's jobs. */

#include "cluster.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "pgconn.h"
#include "text.h"

#include "cluster_priv.h"

/* A clean stop; the work it leaves in pgcrond.pending_work is the others' (coord.c: the
 * NOTIFY only wakes them, they read which instances stopped). Its job locks go. */
static const char sql_stop[] =
    "WITH s AS (UPDATE pgcrond.instance SET stopped_at = pg_catalog.now(), stop_note = 'stopped'"
    "  WHERE name OPERATOR(pg_catalog.=) $1 AND boot_id OPERATOR(pg_catalog.=) $2 RETURNING 1),"
    " l AS (DELETE FROM pgcrond.job_lock WHERE instance OPERATOR(pg_catalog.=) $1"
    "  AND boot_id OPERATOR(pg_catalog.=) $2 RETURNING 1)"
    " SELECT (SELECT pg_catalog.count(*) FROM s), pg_catalog.pg_notify('" CLUSTER_CHANNEL
    "', 'stopped')";

static const char sql_purge[] =
    "DELETE FROM pgcrond.fire_claim WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
    " SELECT ctid FROM pgcrond.fire_claim WHERE claimed_at OPERATOR(pg_catalog.<)"
    "  (pg_catalog.now() OPERATOR(pg_catalog.-) interval '" CLAIM_KEEP_S "')"
    "  AND fire_key OPERATOR(pg_catalog.<>) 'n' LIMIT 5000))";

/* A part of this instance's jobs and their definitions' hashes: the jobs named from $4 to
 * before $5 in byte order (NULL: no bound, instance_job_name_idx), all of this instance's in
 * that range, writing (and locking) only the rows that change (their lookup bounded by the
 * range too, whatever the statistics say); answers the jobs another live instance defines
 * differently, with those instances. 100,000 jobs
 * in one statement would keep 8 MB of literals for the next reconnect and 4 MB of libpq's send
 * buffer; a part is made from the configuration as it is sent (JOBS_PART). */
static const char sql_jobs[] =
    "WITH mine AS (SELECT j, h FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.text[]),"
    "  pg_catalog.unnest($3::pg_catalog.text[])) AS m(j, h)),"
    " gone AS (DELETE FROM pgcrond.instance_job o WHERE o.instance OPERATOR(pg_catalog.=) $1"
    "  AND ($4::pg_catalog.text IS NULL"
    "   OR o.job_name COLLATE pg_catalog.\"C\" OPERATOR(pg_catalog.>=) $4)"
    "  AND ($5::pg_catalog.text IS NULL"
    "   OR o.job_name COLLATE pg_catalog.\"C\" OPERATOR(pg_catalog.<) $5)"
    "  AND NOT (o.job_name OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.text[]))),"
    " upd AS (INSERT INTO pgcrond.instance_job AS o (instance, job_name, def_hash)"
    "  SELECT $1, j, h FROM mine WHERE NOT EXISTS (SELECT 1 FROM pgcrond.instance_job x"
    "   WHERE x.instance OPERATOR(pg_catalog.=) $1"
    "   AND ($4 IS NULL OR x.job_name COLLATE pg_catalog.\"C\" OPERATOR(pg_catalog.>=) $4)"
    "   AND ($5 IS NULL OR x.job_name COLLATE pg_catalog.\"C\" OPERATOR(pg_catalog.<) $5)"
    "   AND x.job_name OPERATOR(pg_catalog.=) j AND x.def_hash OPERATOR(pg_catalog.=) h)"
    "  ON CONFLICT (instance, job_name) DO UPDATE SET def_hash = EXCLUDED.def_hash"
    "   WHERE o.def_hash OPERATOR(pg_catalog.<>) EXCLUDED.def_hash)"
    " SELECT o.job_name, pg_catalog.string_agg(o.instance, ', ' ORDER BY o.instance)"
    " FROM pgcrond.instance_job o JOIN pgcrond.instance i"
    "  ON i.name OPERATOR(pg_catalog.=) o.instance AND i.stopped_at IS NULL"
    "  AND i.name OPERATOR(pg_catalog.<>) $1"
    " JOIN mine ON mine.j OPERATOR(pg_catalog.=) o.job_name"
    "  AND mine.h OPERATOR(pg_catalog.<>) o.def_hash"
    " GROUP BY 1 ORDER BY 1";

static const char sql_listen[] = "LISTEN " CLUSTER_CHANNEL;
/* Sent once listening (after taking the name, or a reconnect): the others beat at once
 * (cluster_conn.c, on_notify). */
static const char sql_hello[] = "SELECT pg_catalog.pg_notify('" CLUSTER_CHANNEL "', 'hello')";

static void jobs_done(struct cluster *c, const struct stmtq_result *sr)
{
	const PGresult *r = sr->res;
	if (sr->failed) {
		log_warning("cluster: cannot publish this instance's jobs: %s", sr->err);
		/* the rest of the parts waits for the next connect or set */
		c->due[OP_JOBS] = CLUSTER_NEVER;
		return;
	}
	/* the last part: the claims of stopped or dead instances that this instance is to serve
	 * may have waited for it (SQL_TAKER_DEFINES) */
	if (c->due[OP_JOBS] == CLUSTER_NEVER)
		cluster_serve_stopped(c);
	for (int i = 0; r && i < PQntuples(r); i++)
		log_warning("cluster: job %s is defined differently on instance(s) %s (a rolling "
		            "configuration change?); each fire runs with the definition of the "
		            "instance that claims it",
		            PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
}

/* The next part of the jobs (sql_jobs), made now from the configuration. */
static bool jobs_send(struct cluster *c)
{
	size_t n = c->jobs_cfg->n_jobs, first = c->jobs_next < n ? c->jobs_next : n;
	size_t end = n - first > JOBS_PART ? first + JOBS_PART : n, k = end - first;
	const char **v = calloc(2 * k + 1, sizeof(*v)); /* the names, then the hashes */
	char(*hash)[24] = calloc(k ? k : 1, sizeof(*hash));
	char *nl = NULL, *hl = NULL;
	if (v && hash) {
		for (size_t i = 0; i < k; i++) {
			const struct conf_job *j = c->jobs_sorted[first + i];
			cluster_job_hash(j, hash[i], sizeof(hash[i]));
			v[i] = j->name;
			v[k + i] = hash[i];
		}
		nl = text_pg_array(v, k);
		hl = text_pg_array(v + k, k);
	}
	bool sent = nl && hl;
	c->claims_went = false;
	if (sent) {
		const char *p[] = {c->instance, nl, hl,
		                   first > 0 ? c->jobs_sorted[first]->name : NULL,
		                   end < n ? c->jobs_sorted[end]->name : NULL};
		c->jobs_next = end;
		if (end < n)
			cluster_due_at(c, OP_JOBS, 0);
		cluster_send_stmt(c, OP_JOBS, sql_jobs, 5, p);
	} else {
		log_warning("cluster: out of memory publishing the jobs");
	}
	free(nl);
	free(hl);
	free(v);
	free(hash);
	return sent;
}

/* The parts of the jobs published after a start or a reload take turns with the claims of
 * fires due: the 50 parts of 100,000 jobs take seconds, and no fire should wait behind
 * them. */
static bool jobs_skip(struct cluster *c)
{
	return !c->jobs_cfg || (cluster_has_unsent(c) && !c->claims_went);
}

static void listen_done(struct cluster *c, const struct stmtq_result *sr)
{
	if (sr->failed)
		log_warning("cluster: cannot listen for other instances: %s", sr->err);
	else
		cluster_due_at(c, OP_HELLO, 0);
	/* the connect's reads of the shared rows go after the LISTEN, so that a change another
	 * instance makes meanwhile is in the rows they read or wakes them again */
	if (c->hooks.notified)
		c->hooks.notified(c->hooks.arg, NULL);
}

static bool purge_skip(struct cluster *c)
{
	return cluster_lone_on(c);
}

static void purge_done(struct cluster *c, const struct stmtq_result *sr)
{
	(void)c;
	if (sr->failed)
		log_warning("cluster: purging old claims failed: %s", sr->err);
}

static const struct cluster_row row_listen = {
    .op = OP_LISTEN, .sql = sql_listen, .done = listen_done};
/* (a wake-up: the heartbeats tell the rest) */
static const struct cluster_row row_hello = {.op = OP_HELLO, .sql = sql_hello};
static const struct cluster_row row_purge = {.op = OP_PURGE,
                                             .period_ms = PURGE_INTERVAL_MS,
                                             .skip = purge_skip,
                                             .sql = sql_purge,
                                             .done = purge_done};
static const struct cluster_row row_jobs = {
    .op = OP_JOBS, .flags = ROW_BULK, .skip = jobs_skip, .send = jobs_send, .done = jobs_done};
static const struct cluster_row row_stop = {
    .op = OP_STOP, .flags = ROW_CLOSING, .sql = sql_stop, .n = 2};

/* What this instance sends, in the order cluster_kick considers it. */
static const struct cluster_row *const rows[] = {
    &cluster_row_marks_awaited, /* runs wait for their marks: their statements wait for them */
    &cluster_row_unlock,        /* another instance's next fire may wait for a job's lock */
    &cluster_row_marks,         /* (but neither in the middle of a burst of claims) */
    &row_listen, &row_hello, &cluster_row_beat, &cluster_row_reap, &cluster_row_unserved,
    &row_purge, &row_jobs,
    &cluster_row_claims, /* last: many, and a beat behind them would make this one look dead */
    &row_stop,
    /* never due: sent at each connect, by the lock's answer */
    &cluster_row_lock, &cluster_row_holder, NULL};

/* ---- lifetime -------------------------------------------------------------------------- */

int cluster_open(struct event_base *base, const char *db_name, const char *conninfo,
                 const char *instance, const char *boot_id, const struct cluster_hooks *hooks,
                 struct cluster **out)
{
	*out = NULL;
	if (!base || !db_name || !conninfo || !instance || !*instance || !boot_id)
		return -EINVAL;
	struct cluster *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->base = base;
	TAILQ_INIT(&c->claims);
	STAILQ_INIT(&c->mark_unsent);
	STAILQ_INIT(&c->mark_sent);
	snprintf(c->db_name, sizeof(c->db_name), "%s", db_name);
	c->conninfo = strdup(conninfo);
	c->instance = strdup(instance);
	c->boot_id = strdup(boot_id);
	if (hooks)
		c->hooks = *hooks;
	if (gethostname(c->host, sizeof(c->host)) != 0)
		snprintf(c->host, sizeof(c->host), "?");
	c->host[sizeof(c->host) - 1] = '\0';
	pgconn_redact_conninfo(conninfo, c->safe_conninfo, sizeof(c->safe_conninfo));
	evtimer_assign(&c->flush_ev, base, cluster_on_flush, c);
	c->dead_after_ms = CLUSTER_DEAD_MS;
	c->beat_ms = CLUSTER_HEARTBEAT_MS;
	if (!c->conninfo || !c->instance || !c->boot_id || cluster_conn_open(c, rows) < 0) {
		free(c->conninfo);
		free(c->instance);
		free(c->boot_id);
		free(c);
		return -ENOMEM;
	}
	/* a heartbeat's period from now (and at once when the name is held): the beat, the look
	 * for dead instances and a purge of old claims */
	int64_t first = clock_mono_ms() + c->beat_ms;
	cluster_due_at(c, OP_BEAT, first);
	cluster_due_at(c, OP_REAP, first);
	cluster_due_at(c, OP_PURGE, first);
	*out = c;
	return 0;
}

/* How long the stop still waits for its statements (cluster_close). */
static int64_t stop_left(void *arg)
{
	const struct cluster *c = arg;
	bool unsent = c->flight || c->n_tasks || c->due[OP_STOP] != CLUSTER_NEVER;
	return unsent ? c->stop_until_ms - clock_mono_ms() : 0;
}

void cluster_close(struct cluster **cp)
{
	struct cluster *c = *cp;
	if (!c)
		return;
	c->closing = true;
	c->stopping = true; /* (also without a drain before: an answer now takes nothing over) */
	if (c->st.statements)
		log_notice("cluster: %" PRIu64 " claims (%" PRIu64 " ours, %" PRIu64
		           " another instance's) in %" PRIu64
		           " statements, %.2f ms each on average",
		           c->st.claims, c->st.granted, c->st.taken, c->st.statements,
		           (double)c->claim_rtt_us / 1000.0 / (double)c->st.statements);
	event_del(&c->tick_ev);
	event_del(&c->flush_ev);
	/* forget the claims: nobody waits for them any more */
	for (struct claim *q; (q = TAILQ_FIRST(&c->claims));) {
		TAILQ_REMOVE(&c->claims, q, link);
		cluster_claim_free(q);
	}
	/* a clean stop says so, so no survivor takes this instance for dead; bounded, since
	 * the daemon is exiting (the statements of the stop first: other modules' items) */
	if (stmtq_ready(c->q) && c->state == CS_LOCKED) {
		cluster_due_at(c, OP_STOP, 0);
		cluster_kick(c);
		c->stop_until_ms =
		    clock_mono_ms() + (c->flight == OP_REAP ? STOP_GRACE_REAP_MS : STOP_GRACE_MS);
		ownsess_drain(&c->sess, stop_left);
	}
	if (c->n_tasks)
		log_warning(
		    "cluster: stopped with statements of the stop unsent or unanswered (the "
		    "connection went, or its grace ran out): claims or pending work they "
		    "handed over to the others are served when their holder is found dead, "
		    "or never");
	ownsess_leave(&c->sess);
	/* unlocks never sent: the rows hold nothing once we are gone */
	text_free_list(c->unlock, c->n_unlock);
	free(c->announce);
	cluster_xact_free(c);
	cluster_lone_free(c);
	free(c->jobs_sorted);
	config_free(&c->jobs_cfg);
	free(c->conninfo);
	free(c->instance);
	free(c->boot_id);
	free(c);
	*cp = NULL;
}

/* 64-bit FNV-1a, continued from H over S and a separator: a definition's fingerprint, kept
 * in pgcrond.instance_job (so not the string map's hash, which may change). */
static uint64_t def_fnv(uint64_t h, const char *s)
{
	for (const char *p = s ? s : "\x01"; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 1099511628211ULL;
	}
	h ^= 0xff;
	return h * 1099511628211ULL;
}

void cluster_job_hash(const struct conf_job *j, char *out, size_t len)
{
	char num[96];
	uint64_t h = 14695981039346656037ULL;
	const char *text[] = {j->name,     j->plugin,   j->command,
	                      j->database, j->schedule, j->more->notify.listen};
	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		h = def_fnv(h, text[i]);
	for (size_t i = 0; i < j->n_after; i++)
		h = def_fnv(h, j->after[i]);
	for (size_t i = 0; i < j->more->n_settings; i++) {
		h = def_fnv(h, j->more->settings[i].key);
		h = def_fnv(h, j->more->settings[i].value);
	}
	snprintf(num, sizeof(num), "%d/%" PRId64 "/%d/%d/%d/%" PRId64, j->enabled, j->timeout_ms,
	         (int)j->overlap, j->retries, (int)j->catchup, j->more->notify.debounce_ms);
	h = def_fnv(h, num);
	snprintf(out, len, "%016" PRIx64, h);
}

static int by_name(const void *a, const void *b)
{
	const struct conf_job *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

/* This instance's cluster_dead_after (ms; <= 0: unchanged): how long the others wait for its
 * heartbeat before they declare it dead; it beats every quarter of it, at most every
 * CLUSTER_HEARTBEAT_MS. */
static void set_dead_after(struct cluster *c, int64_t ms)
{
	if (!c || ms <= 0 || ms == c->dead_after_ms)
		return;
	c->dead_after_ms = ms;
	int64_t beat = ms / 4 < CLUSTER_HEARTBEAT_MS ? ms / 4 : CLUSTER_HEARTBEAT_MS;
	if (beat != c->beat_ms) {
		c->beat_ms = beat;
		cluster_due_at(c, OP_BEAT, clock_mono_ms() + beat);
		cluster_due_at(c, OP_REAP, clock_mono_ms() + beat);
	}
	/* the others read the new value from the next heartbeat */
}

int cluster_set_jobs(struct cluster *c, const struct pgc_config *cfg,
                     const struct conf_job ***sortedp)
{
	const struct conf_job **sorted = sortedp ? *sortedp : NULL;
	if (sortedp)
		*sortedp = NULL;
	if (!c) {
		free(sorted);
		return 0;
	}
	if (!sorted && (sorted = calloc(cfg->n_jobs ? cfg->n_jobs : 1, sizeof(*sorted)))) {
		/* in byte order, as the parts' ranges are read (COLLATE "C") */
		for (size_t i = 0; i < cfg->n_jobs; i++)
			sorted[i] = &cfg->jobs[i];
		qsort(sorted, cfg->n_jobs, sizeof(*sorted), by_name);
	}
	set_dead_after(c, cfg->cluster_dead_after_ms);
	size_t n = cfg->n_jobs, m = 0;
	for (size_t i = 0; i < n; i++)
		m += cfg->jobs[i].overlap != OVERLAP_SKIP || cfg->jobs[i].more->notify.listen;
	/* (as many as announced: 100,000 zeroed items would be a 5 MB calloc on the loop) */
	const char **items = calloc(m ? m : 1, sizeof(*items));
	int rc = -ENOMEM;
	if (!sorted || !items)
		goto out;
	/* the jobs whose runs another instance may wait for (sql_unlock, coord.c) */
	size_t k = 0;
	for (size_t i = 0; i < n && k < m; i++)
		if (cfg->jobs[i].overlap != OVERLAP_SKIP || cfg->jobs[i].more->notify.listen)
			items[k++] = cfg->jobs[i].name;
	char *ann = text_pg_array(items, k);
	if (!ann)
		goto out;
	free(c->announce);
	c->announce = ann;
	free(c->jobs_sorted);
	c->jobs_sorted = sorted;
	sorted = NULL;
	config_free(&c->jobs_cfg); /* our reference: the caller has its own */
	c->jobs_cfg = config_ref(cfg);
	c->jobs_next = 0;
	cluster_due_at(c, OP_JOBS, 0);
	cluster_kick(c);
	rc = 0;
out:
	free(sorted);
	free(items);
	return rc;
}
