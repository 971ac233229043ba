/* Runs under way (cluster.h: cluster_note_start, cluster_note_xact, cluster_xact_end;
 * sql/pgcrond--17.sql).
 *
 * As a run of a claimed fire begins, its instance marks its start in pgcrond.run_start, on
 * the connection that made the claim, and the run sends its statement only once the mark is
 * written (exec.h, spec.hold); its transaction id follows when the
 * server gives it (exec.h, on_xid). The mark of a run that holds a scheduled fire's claim
 * sets the claim's `started` (schema step 18) in the same statement, and is written only if
 * the claim is still this instance's: an instance that found this one dead may have served
 * the fire meanwhile (the claim is gone), and then the run sends nothing. Likewise the mark of
 * a run that holds its job's lock touches the lock, and is written only if the lock is still
 * this process's: another instance may have taken it over while this one did not answer
 * (cluster_priv.h, SQL_JOB_LOCK_CONFLICT_F), and runs the job there. Whoever closes the run
 * after this process is gone (another instance that found it dead, sql_reap) asks the server
 * whether that transaction committed instead of retrying work that is done, and serves the claims
 * of fires with neither a start mark nor a history row (never run). Marks gather while a statement
 * is in flight and go in one statement; a run's row is deleted once its history row is written with
 * its end, so the table holds the runs under way. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "cluster_priv.h"
#include "log.h"
#include "pgconn.h"

/* $2: lines "KIND TAB run_key TAB a TAB b [TAB c [TAB d]]": S (a start: job, scheduled Unix s
 * or empty, c holds "l" if the run holds the job's lock, "c" if it holds that fire's claim,
 * and d the class of a command whose commit cannot be asked),
 * X (a transaction id: xid, server; c "w" if the run's COMMIT waits for it, which is written
 * only while this process's instance row says it is live: one found dead may not commit
 * what a takeover may have retried), D (the end is written: the row goes). Per run, a D among
 * its lines deletes; else the values of its lines together are written, a start holding a
 * claim only if the claim is still ours, one holding the lock only if the lock is still this
 * process's ($3: its boot id). Returns the runs written (run_key, NULL) and those refused
 * because the lock is gone (run_key, 'lock'). */
static const char cluster_sql_xact[] =
    "WITH l AS (SELECT pg_catalog.string_to_array(t, E'\\t') AS f, u.n"
    "  FROM pg_catalog.unnest(pg_catalog.string_to_array($2, E'\\n')) WITH ORDINALITY AS u(t, n)"
    "  WHERE t OPERATOR(pg_catalog.<>) ''),"
    " v AS (SELECT f[2] AS k,"
    "  pg_catalog.max(f[3]) FILTER (WHERE f[1] OPERATOR(pg_catalog.=) 'S') AS job,"
    "  pg_catalog.max(CASE WHEN f[4] OPERATOR(pg_catalog.<>) '' THEN f[4] END)"
    "   FILTER (WHERE f[1] OPERATOR(pg_catalog.=) 'S')"
    "   ::pg_catalog.int8 AS sched,"
    /* a run's last X line: "0" after its id turned out not to be its transaction's */
    "  (pg_catalog.array_agg(f[3] ORDER BY n DESC) FILTER (WHERE f[1] OPERATOR(pg_catalog.=)"
    "   'X'))[1]::pg_catalog.int8 AS x,"
    "  (pg_catalog.array_agg(f[4] ORDER BY n DESC) FILTER (WHERE f[1] OPERATOR(pg_catalog.=)"
    "   'X'))[1] AS s,"
    "  pg_catalog.bool_or(f[1] OPERATOR(pg_catalog.=) 'D') AS d,"
    /* COALESCE is syntax, not a function: a line without the field holds nothing */
    "  pg_catalog.bool_or(f[1] OPERATOR(pg_catalog.=) 'S'"
    "   AND pg_catalog.strpos(COALESCE(f[5], ''), 'c') OPERATOR(pg_catalog.>) 0) AS claim,"
    "  pg_catalog.bool_or(f[1] OPERATOR(pg_catalog.=) 'S'"
    "   AND pg_catalog.strpos(COALESCE(f[5], ''), 'l') OPERATOR(pg_catalog.>) 0) AS lock,"
    "  pg_catalog.bool_or(f[1] OPERATOR(pg_catalog.=) 'X'"
    "   AND COALESCE(f[5], '') OPERATOR(pg_catalog.=) 'w') AS w,"
    "  pg_catalog.max(CASE WHEN f[6] OPERATOR(pg_catalog.<>) '' THEN f[6] END)"
    "   FILTER (WHERE f[1] OPERATOR(pg_catalog.=) 'S')"
    "   AS fenced"
    "  FROM l GROUP BY f[2]),"
    /* a scheduled fire's claim, still ours, is started (its row lock orders this against a
     * takeover's DELETE of claims not started, sql_reap); the rows are locked in the order
     * the claims take them (sql_claim), or another instance's claim of the same fires, which
     * locks them too, could deadlock with this */
    " lk AS (SELECT c.job_name, c.fire_key, v.k FROM pgcrond.fire_claim c JOIN v"
    "   ON c.job_name OPERATOR(pg_catalog.=) v.job AND c.fire_key OPERATOR(pg_catalog.=)"
    "    ('s:' OPERATOR(pg_catalog.||) v.sched::pg_catalog.text)"
    "  WHERE v.claim AND NOT v.d AND c.instance OPERATOR(pg_catalog.=) $1"
    "  ORDER BY c.job_name COLLATE pg_catalog.\"C\", c.fire_key COLLATE pg_catalog.\"C\""
    "  FOR UPDATE OF c),"
    " st AS (UPDATE pgcrond.fire_claim c SET started = true FROM lk"
    "  WHERE c.job_name OPERATOR(pg_catalog.=) lk.job_name"
    "   AND c.fire_key OPERATOR(pg_catalog.=) lk.fire_key RETURNING lk.k),"
    /* the job's lock, still this process's, is touched: it is not taken over for another
     * LOCK_LEASE (its row lock orders this against a takeover). Locked after the claims,
     * in the jobs' order, as a claim locks them (the count makes lk go first) */
    " ll AS (SELECT j.job_name FROM pgcrond.job_lock j"
    "  WHERE j.job_name OPERATOR(pg_catalog.=) ANY (SELECT v.job FROM v WHERE v.lock AND NOT v.d)"
    "   AND j.instance OPERATOR(pg_catalog.=) $1 AND j.boot_id OPERATOR(pg_catalog.=) $3"
    "   AND (SELECT pg_catalog.count(*) FROM lk) OPERATOR(pg_catalog.>=) 0"
    "  ORDER BY j.job_name COLLATE pg_catalog.\"C\" FOR UPDATE OF j),"
    " lt AS (UPDATE pgcrond.job_lock j SET locked_at = pg_catalog.clock_timestamp() FROM ll"
    "  WHERE j.job_name OPERATOR(pg_catalog.=) ll.job_name),"
    " gone AS (DELETE FROM pgcrond.run_start r USING v"
    "  WHERE r.instance OPERATOR(pg_catalog.=) $1 AND r.run_key OPERATOR(pg_catalog.=) v.k"
    "   AND v.d),"
    /* what a process that died before its runs' ends were written left (two days) */
    " old AS (DELETE FROM pgcrond.run_start r WHERE r.noted_at OPERATOR(pg_catalog.<)"
    "  (pg_catalog.now() OPERATOR(pg_catalog.-) interval '2 days')),"
    " ok AS (SELECT v.* FROM v WHERE NOT v.d"
    "  AND (NOT v.claim OR v.k OPERATOR(pg_catalog.=) ANY (SELECT st.k FROM st))"
    "  AND (NOT v.w OR EXISTS (SELECT FROM pgcrond.instance i"
    "   WHERE i.name OPERATOR(pg_catalog.=) $1 AND i.boot_id OPERATOR(pg_catalog.=) $3"
    "    AND i.stopped_at IS NULL))),"
    " ins AS (INSERT INTO pgcrond.run_start AS r (instance, run_key, job_name, scheduled_s, xid,"
    "  server, fenced)"
    " SELECT $1, ok.k, ok.job, ok.sched, ok.x, ok.s, ok.fenced FROM ok"
    "  WHERE NOT ok.lock OR ok.job OPERATOR(pg_catalog.=) ANY (SELECT ll.job_name FROM ll)"
    " ON CONFLICT (instance, run_key) DO UPDATE SET"
    "  job_name = COALESCE(EXCLUDED.job_name, r.job_name),"
    "  scheduled_s = COALESCE(EXCLUDED.scheduled_s, r.scheduled_s),"
    "  fenced = COALESCE(EXCLUDED.fenced, r.fenced),"
    "  xid = COALESCE(EXCLUDED.xid, r.xid), server = COALESCE(EXCLUDED.server, r.server)"
    " RETURNING r.run_key)"
    " SELECT ins.run_key, NULL::pg_catalog.text FROM ins"
    " UNION ALL SELECT ok.k, 'lock' FROM ok"
    "  WHERE ok.lock AND NOT ok.job OPERATOR(pg_catalog.=) ANY (SELECT ll.job_name FROM ll)";

/* A marks statement that failed on a deadlock, a serialization failure or a lock it could
 * not get changed nothing: it is sent again (with what gathered since), this many times,
 * before its runs are refused. */
#define XACT_RETRIES 3

/* Marks waiting to be sent, at most (bytes): while the coordination connection is down they
 * gather; past this, new ones are dropped (a dropped mark makes a takeover retry the run as
 * before, or serve its claim again: what an unmarked run gets). */
#define XACT_BUF_MAX (1 << 20)

/* A run waiting for its start mark to be written (cluster_note_start), or for its
 * transaction id before its COMMIT (cluster_note_xact). */
struct mark_wait {
	STAILQ_ENTRY(mark_wait) link;
	cluster_mark_fn fn; /* NULL: forgotten */
	void *arg;
	bool ok;        /* its mark is among the rows the statement wrote */
	bool lock_gone; /* refused: its job's lock is no longer this process's */
	bool xid;       /* the mark is its transaction id */
	char key[];
};

struct xact_key {
	struct strmap_node node;
	struct mark_wait *wait; /* the run waits for this mark; NULL */
	char key[];
};

static bool note(struct cluster *c, char kind, const char *key, const char *a, const char *b,
                 const char *e)
{
	size_t need = strlen(key) + strlen(a) + strlen(b) + strlen(e) + 7;
	if (c->xact_len + need > XACT_BUF_MAX) {
		if (!c->xact_dropped++)
			log_warning(
			    "cluster: %d KiB of run marks wait for the history database; "
			    "new ones are dropped until they are sent (a run without its mark "
			    "is retried by a takeover even if it committed)",
			    XACT_BUF_MAX / 1024);
		return false;
	}
	if (c->xact_len + need > c->xact_cap) {
		size_t cap = c->xact_cap ? c->xact_cap * 2 : 4096;
		while (cap < c->xact_len + need)
			cap *= 2;
		char *buf = realloc(c->xact_buf, cap);
		if (!buf)
			return false; /* the run is then closed as failed, and retried */
		c->xact_buf = buf;
		c->xact_cap = cap;
	}
	c->xact_len += (size_t)snprintf(c->xact_buf + c->xact_len, c->xact_cap - c->xact_len,
	                                "%c\t%s\t%s\t%s%s%s\n", kind, key, a, b, *e ? "\t" : "", e);
	cluster_kick(c);
	return true;
}

/* Text that the lines' format cannot carry is not noted. */
static bool plain(const char *s)
{
	return s && !strpbrk(s, "\t\n");
}

bool cluster_marks_runs(const struct cluster *c)
{
	return c && c->marking && !cluster_lone_on(c);
}

/* The run RUN_KEY's start noted (cluster_note_start), NULL if none. */
static struct xact_key *key_of(struct cluster *c, const char *run_key)
{
	return STRMAP_ENTRY(strmap_find(&c->xact_keys, run_key), struct xact_key, node);
}

/* A wait of the run FN(ARG, ...) for the mark of RUN_KEY (NULL: out of memory), first of
 * those the next statement answers: waiting before the line is noted, since noting it may
 * send it at once. */
static struct mark_wait *mark_wait_new(struct cluster *c, const char *run_key, bool xid,
                                       cluster_mark_fn fn, void *arg)
{
	size_t len = strlen(run_key) + 1;
	struct mark_wait *w = malloc(sizeof(*w) + len);
	if (!w)
		return NULL;
	memcpy(w->key, run_key, len);
	w->fn = fn;
	w->arg = arg;
	w->ok = w->lock_gone = false;
	w->xid = xid;
	STAILQ_INSERT_HEAD(&c->mark_unsent, w, link);
	return w;
}

/* W's line could not be noted: nothing was sent, so it is still the first waiting. */
static void mark_wait_undo(struct cluster *c, struct mark_wait *w)
{
	if (w)
		STAILQ_REMOVE_HEAD(&c->mark_unsent, link);
	free(w);
}

int cluster_note_start(struct cluster *c, const char *run_key, const char *job, int64_t scheduled_s,
                       bool locked, const char *fenced, cluster_mark_fn fn, void *arg)
{
	if (!cluster_marks_runs(c) || !plain(run_key) || !plain(job) || key_of(c, run_key))
		return 0;
	if (!plain(fenced))
		fenced = "";
	size_t len = strlen(run_key) + 1;
	struct xact_key *k = malloc(sizeof(*k) + len);
	struct mark_wait *w = k && fn ? mark_wait_new(c, run_key, false, fn, arg) : NULL;
	if (!k || (fn && !w)) {
		free(k);
		return -1;
	}
	memcpy(k->key, run_key, len);
	k->wait = w;
	char sched[24] = "";
	if (scheduled_s > 0)
		snprintf(sched, sizeof(sched), "%" PRId64, scheduled_s);
	char flags[64];
	snprintf(flags, sizeof(flags), "%s%s%s",
	         !locked           ? ""
	         : scheduled_s > 0 ? "cl"
	                           : "l",
	         *fenced ? "\t" : "", fenced);
	if (!note(c, 'S', run_key, job, sched, flags)) {
		mark_wait_undo(c, w);
		free(k);
		return -1;
	}
	strmap_insert(&c->xact_keys, &k->node, k->key);
	return w ? 1 : 0;
}

/* The marks go first while a run waits for one: its statement waits for it now. */
static bool marks_awaited_skip(struct cluster *c)
{
	return STAILQ_EMPTY(&c->mark_unsent);
}

/* ... otherwise while any wait (lines to send, or runs waiting: xact_send), and not in the
 * middle of a burst of claims, whose runs wait for them. */
static bool marks_skip(struct cluster *c)
{
	return (!c->xact_len && STAILQ_EMPTY(&c->mark_unsent)) || cluster_in_burst(c);
}

void cluster_mark_forget(struct cluster *c, void *arg)
{
	if (!c)
		return;
	struct mark_waits *lists[] = {&c->mark_unsent, &c->mark_sent};
	for (size_t i = 0; i < 2; i++)
		for (struct mark_wait *w = STAILQ_FIRST(lists[i]); w; w = STAILQ_NEXT(w, link))
			if (w->arg == arg)
				w->fn = NULL;
}

/* Answer the runs of LIST, emptied first (an answer may make more), whose marks went in the
 * statement answered by SR (NULL: none will be). A mark is written if the statement returned
 * its run's key; with REFUSED, none is, for that reason. */
static void marks_answered(struct cluster *c, struct mark_waits *list,
                           const struct stmtq_result *sr, const char *refused)
{
	struct mark_waits ws = STAILQ_HEAD_INITIALIZER(ws);
	STAILQ_CONCAT(&ws, list);
	if (sr && !sr->failed && sr->res)
		for (int i = 0; i < PQntuples(sr->res); i++) {
			struct xact_key *k = key_of(c, PQgetvalue(sr->res, i, 0));
			if (k && k->wait) {
				k->wait->lock_gone = !PQgetisnull(sr->res, i, 1);
				k->wait->ok = !k->wait->lock_gone;
			}
		}
	const char *why =
	    refused ? refused
	    : sr && !sr->failed
	        ? "not started: this instance no longer holds the fire's claim "
	          "(another instance served the fire: this one was found dead, or silent past "
	          "the claim's lease)"
	        : "not started: its start could not be written to the history "
	          "database (another instance may serve the fire)";
	for (struct mark_wait *w; (w = STAILQ_FIRST(&ws));) {
		STAILQ_REMOVE_HEAD(&ws, link);
		struct xact_key *k = key_of(c, w->key);
		if (k && k->wait == w)
			k->wait = NULL;
		bool ok = !refused && w->ok;
		/* an id not written by a statement that succeeded: this process is no longer live
		 * in its instance row */
		bool dead = refused || (sr && !sr->failed);
		if (w->fn)
			w->fn(w->arg, ok,
			      ok               ? NULL
			      : w->xid && dead ? CLUSTER_NOT_COMMITTED_DEAD
			      : w->xid ? "its transaction id could not be written to the history "
			                 "database before its COMMIT (without it, another "
			                 "instance that finds this one dead could run it again)"
			      : w->lock_gone
			          ? "not started: its job's lock was taken over by another "
			            "instance while this one did not answer (stopped, frozen "
			            "or cut off for over " LOCK_LEASE "); the job runs there"
			          : why);
		free(w);
	}
}

void cluster_marks_refuse(struct cluster *c)
{
	marks_answered(c, &c->mark_unsent, NULL,
	               "not started: this instance was found dead by another instance while the "
	               "run waited for its start mark; the fire is left to that instance");
}

int cluster_note_xact(struct cluster *c, const char *run_key, const char *xid, const char *server,
                      cluster_mark_fn fn, void *arg)
{
	struct xact_key *k = c && plain(run_key) ? key_of(c, run_key) : NULL;
	if (!k)
		return 0;
	if (!xid || !server) { /* the id is not the run's after all: a zero one means none */
		xid = "0";
		server = "";
	} else if (!plain(xid) || !plain(server))
		return 0;
	/* (its start mark was answered before the run could send anything) */
	struct mark_wait *w = fn && !k->wait ? mark_wait_new(c, run_key, true, fn, arg) : NULL;
	if (fn && !w)
		return -1;
	k->wait = w;
	if (!note(c, 'X', run_key, xid, server, w ? "w" : "")) {
		k->wait = NULL;
		mark_wait_undo(c, w);
		return -1;
	}
	return w ? 1 : 0;
}

bool cluster_xact_end(struct cluster *c, const char *run_key)
{
	struct xact_key *k = c ? key_of(c, run_key) : NULL;
	if (!k)
		return false;
	strmap_remove(&c->xact_keys, &k->node);
	free(k);
	note(c, 'D', run_key, "", "", "");
	return true;
}

static bool xact_send(struct cluster *c)
{
	if (!c->xact_len)
		return false;
	const char *p[] = {c->instance, c->xact_buf, c->boot_id};
	/* there is room: each line was written with its NUL */
	c->xact_buf[c->xact_len] = '\0';
	free(c->xact_inflight);
	c->xact_inflight = strdup(c->xact_buf); /* NULL: not sent again if it fails */
	cluster_send_stmt(c, OP_XACT, cluster_sql_xact, 3, p);
	c->xact_len = 0;
	c->xact_dropped = 0;
	STAILQ_CONCAT(&c->mark_sent, &c->mark_unsent);
	return true;
}

/* The failed statement's lines go before those gathered since, and its runs wait again. */
static bool xact_requeue(struct cluster *c)
{
	size_t n = strlen(c->xact_inflight);
	if (c->xact_len + n + 1 > c->xact_cap) {
		char *buf = realloc(c->xact_buf, c->xact_len + n + 1);
		if (!buf)
			return false;
		c->xact_buf = buf;
		c->xact_cap = c->xact_len + n + 1;
	}
	memmove(c->xact_buf + n, c->xact_buf, c->xact_len);
	memcpy(c->xact_buf, c->xact_inflight, n);
	c->xact_len += n;
	STAILQ_CONCAT(&c->mark_sent, &c->mark_unsent);
	STAILQ_CONCAT(&c->mark_unsent, &c->mark_sent);
	free(c->xact_inflight); /* its lines are queued again: not in flight any more */
	c->xact_inflight = NULL;
	cluster_kick(c);
	return true;
}

/* Whether the statement committed is not known. Its lines write the same rows again, and a
 * start is refused then only if its claim or its job's lock went meanwhile: sent again, it
 * tells its runs what the first would have told them, rather than leaving them waiting. */
static void xact_lost(struct cluster *c)
{
	if (c->xact_inflight && xact_requeue(c))
		return;
	free(c->xact_inflight);
	c->xact_inflight = NULL;
	marks_answered(c, &c->mark_sent, NULL, NULL); /* none, or lines that could not be kept */
}

static void xact_done(struct cluster *c, const struct stmtq_result *sr)
{
	if (sr->failed && c->xact_inflight && c->xact_retries < XACT_RETRIES &&
	    cluster_resend_worthy(sr->sqlstate)) {
		c->xact_retries++;
		log_notice("cluster: marking runs under way failed (%s); sending the marks again "
		           "(%u of %d)",
		           sr->err, c->xact_retries, XACT_RETRIES);
		if (xact_requeue(c))
			return;
	}
	c->xact_retries = 0;
	free(c->xact_inflight);
	c->xact_inflight = NULL;
	marks_answered(c, &c->mark_sent, sr, NULL);
	if (!sr->failed)
		return;
	log_warning("cluster: cannot mark runs under way (pgcrond.run_start): %s; a run closed "
	            "by another instance after this one died is retried even if it committed",
	            sr->err);
}

const struct cluster_row cluster_row_marks_awaited = {.op = OP_XACT,
                                                      .flags = ROW_ITEMS,
                                                      .skip = marks_awaited_skip,
                                                      .send = xact_send,
                                                      .done = xact_done,
                                                      .lost = xact_lost};

const struct cluster_row cluster_row_marks = {
    .op = OP_XACT, .flags = ROW_ITEMS, .skip = marks_skip, .send = xact_send};

void cluster_xact_free(struct cluster *c)
{
	for (struct strmap_node *n = strmap_first(&c->xact_keys), *next; n; n = next) {
		next = strmap_next(&c->xact_keys, n);
		free(STRMAP_ENTRY(n, struct xact_key, node));
	}
	strmap_free(&c->xact_keys);
	/* no callback after a stop (cluster_close): the runs that waited end with the daemon */
	STAILQ_CONCAT(&c->mark_unsent, &c->mark_sent);
	for (struct mark_wait *w; (w = STAILQ_FIRST(&c->mark_unsent));) {
		STAILQ_REMOVE_HEAD(&c->mark_unsent, link);
		free(w);
	}
	free(c->xact_buf);
	free(c->xact_inflight);
	c->xact_buf = c->xact_inflight = NULL;
	c->xact_len = c->xact_cap = 0;
}
