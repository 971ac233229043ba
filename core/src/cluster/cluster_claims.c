/* Claims (cluster.h: cluster_claim): the FIFO of fires waiting for a verdict, the claim
 * statements that ask for them, the rows that grant them, the verdict when no statement can
 * be made, and the release of the job's lock a grant took. The connection that carries them
 * is cluster_conn.c's. */
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cluster.h"
#include "cluster_priv.h"
#include "log.h"
#include "text.h"
#include "pgconn.h"
#include "strmap.h"

/* A claim is refused, with SQLSTATE
 * CLUSTER_LONE_SQLSTATE, while another instance runs its fires unclaimed (cluster_lone.c):
 * claim_gate holds the gate's row while it looks, so that instance went lone either before
 * (and is seen) or after this statement (and saw this instance live). */
#define SQL_GATE " WHERE (SELECT pgcrond.claim_gate($3::pg_catalog.text))"

/* The fires of a claim: jobs $1 and fire keys $2, parallel arrays. */
#define SQL_FIRES                                                                                  \
	" ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"                                    \
	" pg_catalog.unnest($2::pg_catalog.text[]))"

/* A claim says whether this instance marks its runs (a turn's $6, a claim's $5): the job's lock
 * may then be taken over once its runs ended (cluster_priv.h), and the claim's `started` is false
 * (its run marks it true as it begins) where it would otherwise be NULL: a process that marks
 * nothing cannot tell another instance whether its run began, so that instance never serves the
 * claim (cluster_lock.c, SQL_UNSERVED_STARTED). A turn: ours if nobody else took it within the
 * window. */
static const char sql_turn[] =
    "WITH c AS (INSERT INTO pgcrond.fire_claim AS c (job_name, fire_key, instance, boot_id,"
    " started) SELECT $1, $2, $3, $4, CASE WHEN $6::pg_catalog.bool THEN false END" SQL_GATE
    " ON CONFLICT (job_name, fire_key) DO UPDATE"
    "   SET instance = EXCLUDED.instance, boot_id = EXCLUDED.boot_id,"
    "   claimed_at = pg_catalog.now()"
    " WHERE c.instance OPERATOR(pg_catalog.=) EXCLUDED.instance"
    "    OR c.claimed_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-)"
    "     ($5::pg_catalog.int8 OPERATOR(pg_catalog.*) interval '1 millisecond'))"
    " RETURNING 1),"
    " l AS (" SQL_JOB_LOCK_M
    " SELECT $1, $3, $4, 1, $6::pg_catalog.bool FROM c" SQL_JOB_LOCK_CONFLICT_F ")"
    " SELECT 1, EXISTS (SELECT FROM l) FROM c";

/* The fires waiting, as two parallel arrays: one statement for all of them. A fire already
 * claimed by this instance (another process of it) is ours again: a fire claimed by a
 * process that died before running it, or whose run failed when its database was down, is
 * served by the catch-up of the same instant. Every instance inserts the same fires in the
 * same order: a claim may wait for another instance's claim of the same fire, never
 * deadlock with it. Then the job's lock, held while its run runs: a run of the job on
 * another live instance (which holds it) makes this fire a skip (overlap across instances).
 * (A claim this instance made to record the fire, started NULL (sql_settle), is one its run
 * will mark again.) */
static const char sql_claim[] =
    "WITH c AS (INSERT INTO pgcrond.fire_claim AS c (job_name, fire_key, instance, boot_id,"
    " started) SELECT u.j, u.k, $3, $4, CASE WHEN $5::pg_catalog.bool THEN false END"
    " FROM (SELECT DISTINCT j, k FROM" SQL_FIRES " AS x(j, k)) AS u" SQL_GATE
    " ORDER BY u.j COLLATE pg_catalog.\"C\", u.k COLLATE pg_catalog.\"C\""
    " ON CONFLICT (job_name, fire_key) DO UPDATE"
    "   SET boot_id = EXCLUDED.boot_id, claimed_at = pg_catalog.now(),"
    " started = COALESCE(c.started, EXCLUDED.started)"
    " WHERE c.instance OPERATOR(pg_catalog.=) EXCLUDED.instance"
    " RETURNING c.job_name, c.fire_key),"
    " n AS (SELECT c.job_name, pg_catalog.count(*)::pg_catalog.int4 AS k FROM c"
    "  GROUP BY c.job_name),"
    " l AS (" SQL_JOB_LOCK_M " SELECT n.job_name, $3, $4, n.k, $5::pg_catalog.bool FROM n"
    "  ORDER BY n.job_name COLLATE pg_catalog.\"C\"" SQL_JOB_LOCK_CONFLICT_F ")"
    " SELECT c.job_name, c.fire_key,"
    "  EXISTS (SELECT FROM l WHERE l.job_name OPERATOR(pg_catalog.=) c.job_name) FROM c";

/* A scheduled fire with a history row is not claimed either: an instance
 * alone ran it without a claim (and was found dead before it claimed its fires again) */
#define SQL_SETTLE_RAN                                                                             \
	" AND NOT CASE WHEN u.k OPERATOR(pg_catalog.~) '^s:[0-9]{1,12}$' THEN" SQL_FIRE_HAS_ROW(   \
	    "u.j", "pg_catalog.substr(u.k, 3)::pg_catalog.int8") " ELSE false END"
/* Fires this instance could not claim, asked again once it can (cluster_settle_refused):
 * each is claimed for this instance unless another instance claimed it, without the job's
 * lock (no run follows). A fire this instance claimed before (the statement committed but
 * its answer was lost) is returned too: its run never started. The claim's `started` is NULL
 * (unless a run of it did start): it is claimed to be recorded as skipped by this instance, whose
 * record may still be on its way (spooled), so no other instance serves it, neither past its lease
 * nor once this one is found dead; this instance's next process serves it if no row was written
 * (cluster_serve.c, sql_unserved). */
static const char sql_settle[] =
    "INSERT INTO pgcrond.fire_claim AS c (job_name, fire_key, instance, boot_id, started)"
    " SELECT u.j, u.k, $3, $4, NULL::pg_catalog.bool FROM (SELECT DISTINCT j, k FROM" SQL_FIRES
    " AS x(j, k)) AS u" SQL_GATE SQL_SETTLE_RAN
    " ORDER BY u.j COLLATE pg_catalog.\"C\", u.k COLLATE pg_catalog.\"C\""
    " ON CONFLICT (job_name, fire_key) DO UPDATE SET boot_id = EXCLUDED.boot_id,"
    " started = CASE WHEN c.started THEN true END"
    " WHERE c.instance OPERATOR(pg_catalog.=) EXCLUDED.instance"
    " RETURNING c.job_name, c.fire_key";

/* ---- claims ---------------------------------------------------------------------------- */

void cluster_claim_free(struct claim *q)
{
	free(q->job);
	free(q->key);
	free(q);
}

/* What a claim gets when none can be made now. */
static enum cluster_verdict v_offline(struct cluster *c, struct claim *q, char *why, size_t len)
{
	(void)q;
	const char *cause = c->op_cause[0] ? c->op_cause : "the history database is unreachable";
	if (cluster_lone_refusal(c, why, len))
		return CLUSTER_REFUSED; /* whatever this instance saw: the lone one runs it */
	if (c->state == CS_REFUSED) {
		snprintf(why, len, "another live instance has this instance's name");
		return CLUSTER_REFUSED;
	}
	if (c->skewed) {
		snprintf(why, len,
		         "this host's clock is %+" PRId64 " ms off the history database's (at most "
		         "%d ms allowed): no claim until it is in step (check NTP)",
		         c->st.clock_offset_ms, CLUSTER_MAX_OFFSET_MS);
		return CLUSTER_REFUSED;
	}
	if (c->state == CS_RECOVERY) {
		snprintf(why, len,
		         "the history database is in recovery (a standby): no run "
		         "starts until a primary is reached");
		return CLUSTER_REFUSED;
	}
	if (c->st.peers_live > 0) {
		snprintf(why, len,
		         "no claim can be made (%s) and other instances were live at the last "
		         "contact (%s): a fire runs only where it is claimed",
		         cause, c->peers);
		return CLUSTER_REFUSED;
	}
	snprintf(why, len,
	         "no claim can be made (%s) and no other instance was live: running unclaimed",
	         cause);
	return CLUSTER_UNCLAIMED;
}

bool cluster_served_elsewhere(const struct cluster *c)
{
	/* not for causes every instance shares (a standby) or a name held twice */
	return c->st.peers_live > 0 &&
	       (c->state == CS_UNLOCKED || c->state == CS_LOCK_FAILED || c->state == CS_LOCKED);
}

/* Answer and remove every claim for which WHICH holds. Callbacks may ask for new claims
 * (appended at the tail, never answered here: they are not marked). */
static void answer(struct cluster *c, bool (*which)(struct cluster *, const struct claim *),
                   enum cluster_verdict (*verdict)(struct cluster *, struct claim *, char *,
                                                   size_t))
{
	TAILQ_HEAD(, claim) mine = TAILQ_HEAD_INITIALIZER(mine);
	for (struct claim *q = TAILQ_FIRST(&c->claims), *next; q; q = next) {
		next = TAILQ_NEXT(q, link);
		if (which(c, q)) {
			TAILQ_REMOVE(&c->claims, q, link);
			TAILQ_INSERT_TAIL(&mine, q, link);
		}
	}
	for (struct claim *q; (q = TAILQ_FIRST(&mine));) {
		TAILQ_REMOVE(&mine, q, link);
		char why[1400] = "";
		enum cluster_verdict v = verdict(c, q, why, sizeof(why));
		c->st.granted += v == CLUSTER_GRANTED;
		c->st.taken += v == CLUSTER_TAKEN || v == CLUSTER_BUSY;
		/* a standby was reported when it was found (lock_done), a lone instance's refusal
		 * as it came (cluster_lone_refused) */
		if ((v == CLUSTER_UNCLAIMED || v == CLUSTER_REFUSED) && c->state != CS_RECOVERY &&
		    !cluster_lone_refusal(c, NULL, 0) && log_complain(&c->offline_complaint, why))
			log_warning("cluster: %s", why);
		if (q->fn)
			q->fn(q->arg, v, why);
		else if (v == CLUSTER_GRANTED)
			cluster_release(c, q->job); /* forgotten after it was sent: its lock goes */
		cluster_claim_free(q);
	}
}

static bool is_sent(struct cluster *c, const struct claim *q)
{
	(void)c;
	return q->sent;
}
static bool is_overdue(struct cluster *c, const struct claim *q)
{
	/* while connecting, or connected without the name's lock, a claim waits: a connect
	 * that fails answers it (claims_lost), and without our name nothing may run; a session
	 * held by an older schema is a database away (ownsess_need_steps) */
	return !q->sent && (c->q->drv.state == CONNDRV_DOWN || c->q->gated || c->skewed ||
	                    (c->state != CS_UNLOCKED && c->state != CS_LOCKED));
}

void cluster_answer_overdue(struct cluster *c)
{
	answer(c, is_overdue, v_offline);
}

static enum cluster_verdict v_result(struct cluster *c, struct claim *q, char *why, size_t len)
{
	if (q->granted && q->busy) {
		snprintf(why, len, "a run of the job is still running on another instance");
		return CLUSTER_BUSY;
	}
	if (q->granted)
		return CLUSTER_GRANTED;
	if (stmtq_failed(c->q)) /* the claim statement being answered */
		return v_offline(c, q, why, len);
	snprintf(why, len, "another instance claimed it");
	return CLUSTER_TAKEN;
}

void cluster_on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;
	(void)fd;
	(void)what;
	answer(c, cluster_lone_which, cluster_lone_verdict);
	cluster_answer_overdue(c);
	cluster_kick(c);
}

int cluster_claim(struct cluster *c, const char *job, const char *key, int64_t window_ms,
                  cluster_claim_fn fn, void *arg)
{
	struct claim *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->job = strdup(job);
	q->key = strdup(key);
	if (!q->job || !q->key) {
		cluster_claim_free(q);
		return -ENOMEM;
	}
	q->window_ms = window_ms;
	q->fn = fn;
	q->arg = arg;
	TAILQ_INSERT_TAIL(&c->claims, q, link);
	c->st.claims++;
	/* answered from the loop, never from inside this call */
	if (!evtimer_pending(&c->flush_ev, NULL))
		event_active(&c->flush_ev, EV_TIMEOUT, 1);
	return 0;
}

void cluster_claim_forget(struct cluster *c, void *arg)
{
	if (!c)
		return;
	for (struct claim *q = TAILQ_FIRST(&c->claims), *next; q; q = next) {
		next = TAILQ_NEXT(q, link);
		if (q->arg != arg || !q->fn)
			continue;
		/* one whose statement is on its way stays, unowned: the answer must still give
		 * back the job lock a grant takes (answer) */
		q->fn = NULL;
		q->arg = NULL;
		if (!q->sent) {
			TAILQ_REMOVE(&c->claims, q, link);
			cluster_claim_free(q);
		}
	}
}

/* The rows of a claim statement (R) granted these claims: matched through a map of the
 * claims sent, by job (the key is an instant many jobs share), not each row against the whole
 * queue (that is quadratic in the fires of an instant: a tenth of the daemon's CPU at 15,000
 * jobs a second). A fire asked for twice in one statement is granted once (the statement's
 * DISTINCT), to the first asked. */
static void claim_match(struct cluster *c, const PGresult *r)
{
	struct strmap sent = {0};
	for (struct claim *q = TAILQ_FIRST(&c->claims); q; q = TAILQ_NEXT(q, link))
		if (q->sent && !q->granted)
			strmap_insert(&sent, &q->sent_node, q->job);
	for (int i = 0; i < PQntuples(r); i++) {
		const char *job = PQgetvalue(r, i, 0);
		const char *key = PQgetvalue(r, i, 1);
		struct claim *q = NULL;
		for (struct strmap_node *n = strmap_find(&sent, job); n && !q;
		     n = strmap_find_next(n)) {
			struct claim *x = STRMAP_ENTRY(n, struct claim, sent_node);
			if (!x->granted && strcmp(x->key, key) == 0)
				q = x;
		}
		if (q) {
			q->granted = true;
			q->busy = strcmp(PQgetvalue(r, i, 2), "t") != 0;
		}
	}
	strmap_free(&sent);
}

static void claims_done(struct cluster *c, const struct stmtq_result *sr)
{
	const PGresult *r = sr->res;
	c->claim_rtt_us += clock_mono_us() - c->claim_sent_us;
	if (sr->failed && strcmp(sr->sqlstate, CLUSTER_LONE_SQLSTATE) == 0) {
		cluster_lone_refused(c, sr->err); /* answered REFUSED, with the lone one's name */
	} else if (sr->failed && strcmp(sr->sqlstate, "25006") == 0) {
		/* read-only: a standby, or default_transaction_read_only */
		cluster_to(c, CS_RECOVERY);
	} else if (sr->failed && cluster_resend_worthy(sr->sqlstate) && c->claim_retries++ < 3) {
		/* send the same claims again: nothing of the failed statement stayed */
		log_debug("cluster: claim statement retried: %s", sr->err);
		for (struct claim *q = TAILQ_FIRST(&c->claims); q; q = TAILQ_NEXT(q, link))
			q->sent = false;
		return;
	} else if (sr->failed) {
		log_warning("cluster: a claim failed: %s (SQLSTATE %s)", sr->err, sr->sqlstate);
		snprintf(c->op_cause, sizeof(c->op_cause), "the claim failed: %s", sr->err);
	}
	c->claim_retries = 0;
	/* a turn goes alone (claims_send): its row, if any, grants it */
	bool turn = false;
	for (struct claim *q = TAILQ_FIRST(&c->claims); q; q = TAILQ_NEXT(q, link))
		if (q->sent && q->window_ms > 0) {
			turn = true;
			q->granted = r && !sr->failed && PQntuples(r) == 1;
			q->busy = q->granted && strcmp(PQgetvalue(r, 0, 1), "t") != 0;
		}
	if (!turn && r && !sr->failed)
		claim_match(c, r);
	answer(c, is_sent, v_result);
	if (!cluster_has_unsent(c))
		c->claim_cap = 0; /* the burst is over */
	c->op_cause[0] = '\0';
	cluster_lone_refused(c, NULL);
	if (c->state == CS_RECOVERY && sr->failed)
		stmtq_fail(c->q, "the server is read-only", CLUSTER_RECOVERY_RETRY_MS);
}

/* Claims in flight or waiting: their answer cannot come now. */
static void claims_lost(struct cluster *c)
{
	answer(c, is_sent, v_offline);
	cluster_answer_overdue(c);
}

/* The claims not sent yet, if any. */
static bool claims_send(struct cluster *c)
{
	struct claim *first = TAILQ_FIRST(&c->claims);
	while (first && first->sent)
		first = TAILQ_NEXT(first, link);
	if (!first)
		return false;
	c->claim_sent_us = clock_mono_us();
	c->claims_went = true;
	if (cluster_lone(c)) {
		/* answered from the loop without a statement (cluster_on_flush) */
		if (!evtimer_pending(&c->flush_ev, NULL))
			event_active(&c->flush_ev, EV_TIMEOUT, 1);
		return false;
	}
	if (first->window_ms > 0) { /* a turn goes alone: its condition is its own */
		char w[24];
		snprintf(w, sizeof(w), "%" PRId64, first->window_ms);
		const char *p[] = {first->job, first->key, c->instance,
		                   c->boot_id, w,          cluster_marks_runs(c) ? "t" : "f"};
		first->sent = true;
		c->st.statements++;
		cluster_send_stmt(c, OP_CLAIM, sql_turn, 6, p);
		return true;
	}
	size_t n = 0, cap = c->claim_cap ? c->claim_cap : CLAIM_FIRST;
	for (struct claim *q = first; q && n < cap && q->window_ms == 0; q = TAILQ_NEXT(q, link))
		n++;
	c->claim_cap = cap * 4 < CLAIM_BATCH_MAX ? cap * 4 : CLAIM_BATCH_MAX;
	const char **v = malloc(2 * n * sizeof(*v)); /* the jobs, then the keys */
	struct claim *q = first;
	for (size_t i = 0; v && i < n; i++, q = TAILQ_NEXT(q, link)) {
		v[i] = q->job;
		v[n + i] = q->key;
	}
	char *jobs = v ? text_pg_array(v, n) : NULL;
	char *keys = v ? text_pg_array(v + n, n) : NULL;
	free(v);
	if (!jobs || !keys) {
		free(jobs);
		free(keys);
		log_error("cluster: out of memory sending claims");
		return false;
	}
	q = first;
	for (size_t i = 0; i < n; i++, q = TAILQ_NEXT(q, link))
		q->sent = true;
	const char *p[] = {jobs, keys, c->instance, c->boot_id, cluster_marks_runs(c) ? "t" : "f"};
	c->st.statements++;
	cluster_send_stmt(c, OP_CLAIM, sql_claim, 5, p);
	free(jobs);
	free(keys);
	return true;
}

const struct cluster_row cluster_row_claims = {.op = OP_CLAIM,
                                               .flags = ROW_ITEMS,
                                               .send = claims_send,
                                               .done = claims_done,
                                               .lost = claims_lost};

int cluster_settle_refused(struct cluster *c, size_t n, const char *const *jobs,
                           const char *const *keys, cluster_result_fn fn, void *arg)
{
	if (!cluster_ready(c))
		return -ENOTCONN;
	char *j = text_pg_array(jobs, n), *k = text_pg_array(keys, n);
	int rc = -ENOMEM;
	if (j && k) {
		const char *p[] = {j, k, c->instance, c->boot_id};
		rc = cluster_submit(c, sql_settle, 4, p, fn, arg);
	}
	free(j);
	free(k);
	return rc;
}
