/* The cluster's session and what it sends next (cluster_priv.h): the lowest of its files,
 * which knows the connection and the state and calls none of the others. What goes next is
 * a loop over the table of rows (cluster_row), the timed ones by their due times (one timer,
 * for the first still ahead); answers go back to the rows by their tags. The lower files
 * give items to two kinds kept here: the job locks of runs that ended (cluster_unlock) and
 * other modules' statements (cluster_submit). */
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "array.h"
#include "clock.h"
#include "cluster.h"
#include "cluster_priv.h"
#include "log.h"
#include "text.h"

/* Another instance's hello (it listens now) makes this one beat, at most once a second
 * whoever sends it: their heartbeats' answers, not the payload (anyone may send it), tell
 * them this instance is live, so that they mark their runs from then (cluster_marks_runs),
 * not up to a heartbeat later. */
#define HELLO_BEAT_MS 1000

/* The jobs whose runs ended: their locks go (one hold per run; the row when none is left).
 * A run of a job in $2 (overlap queue or replace, or a listen job) may wait on another
 * instance for this one's end: wake it (coord.c; it claims again, the row decides). */
static const char sql_unlock[] =
    "WITH u AS (SELECT j, pg_catalog.count(*)::pg_catalog.int4 AS k"
    "  FROM pg_catalog.unnest($1::pg_catalog.text[]) AS j GROUP BY j),"
    /* the rows are locked in the jobs' order first, as a claim locks them (sql_claim): in
     * the order of u (a hash's), an unlock and another instance's claim of the same jobs
     * could each hold a row the other waits for */
    " lk AS (SELECT l.job_name FROM pgcrond.job_lock l"
    "  WHERE l.job_name OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])"
    "   AND l.instance OPERATOR(pg_catalog.=) $3 AND l.boot_id OPERATOR(pg_catalog.=) $4"
    "  ORDER BY l.job_name COLLATE pg_catalog.\"C\" FOR UPDATE OF l),"
    " dl AS (DELETE FROM pgcrond.job_lock l USING u"
    "  WHERE l.job_name OPERATOR(pg_catalog.=) u.j AND l.instance OPERATOR(pg_catalog.=) $3"
    "   AND l.boot_id OPERATOR(pg_catalog.=) $4 AND l.holds OPERATOR(pg_catalog.<=) u.k"
    "   AND l.job_name OPERATOR(pg_catalog.=) ANY (SELECT lk.job_name FROM lk)"
    "  RETURNING l.job_name),"
    " up AS (UPDATE pgcrond.job_lock l SET holds = l.holds OPERATOR(pg_catalog.-) u.k FROM u"
    "  WHERE l.job_name OPERATOR(pg_catalog.=) u.j AND l.instance OPERATOR(pg_catalog.=) $3"
    "   AND l.boot_id OPERATOR(pg_catalog.=) $4 AND l.holds OPERATOR(pg_catalog.>) u.k"
    "   AND l.job_name OPERATOR(pg_catalog.=) ANY (SELECT lk.job_name FROM lk)"
    "  RETURNING 1)"
    " SELECT pg_catalog.pg_notify('" CLUSTER_CHANNEL "', 'end ' OPERATOR(pg_catalog.||)"
    "  dl.job_name) FROM dl WHERE dl.job_name OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.text[])";

/* ---- the table's turns ----------------------------------------------------------------- */

static const struct cluster_row *row_of(const struct cluster *c, enum op op)
{
	for (const struct cluster_row *const *w = c->rows; *w; w++)
		if ((*w)->op == op)
			return *w;
	return NULL;
}

/* The timer, for AT unless it is armed sooner already. */
static void arm_tick(struct cluster *c, int64_t at)
{
	if (at == CLUSTER_NEVER || c->closing ||
	    (evtimer_pending(&c->tick_ev, NULL) && c->tick_at_ms <= at))
		return;
	int64_t wait = at - clock_mono_ms();
	wait = wait > 0 ? wait : 0;
	struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
	c->tick_at_ms = at;
	evtimer_add(&c->tick_ev, &tv); /* (moves a pending one) */
}

void cluster_due_at(struct cluster *c, enum op op, int64_t at)
{
	if (at < c->due[op])
		c->due[op] = at;
	arm_tick(c, at);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;
	(void)fd;
	(void)what;
	cluster_kick(c);
	/* a row due but skipped is looked at again at the next kick (any answer), not here */
	int64_t now = clock_mono_ms(), first = CLUSTER_NEVER;
	for (int op = 1; op < OP_N; op++)
		if (c->due[op] > now && c->due[op] < first)
			first = c->due[op];
	arm_tick(c, first);
}

/* Row W goes now: when it is due again. A periodic row keeps its phase (a late one is due a
 * period after it went). */
static void next_due(struct cluster *c, const struct cluster_row *w, int64_t now)
{
	int64_t period = w->period_ms == ROW_BEAT ? c->beat_ms : w->period_ms;
	int64_t next = c->due[w->op] + period;
	c->due[w->op] = CLUSTER_NEVER;
	if (period > 0)
		cluster_due_at(c, w->op, next > now ? next : now + period);
}

#define CLUSTER_OF(it) ((struct cluster *)((char *)(it)-offsetof(struct cluster, turn)))

/* Row W would go now (turn_send): due, not skipped, not held by the stop. */
static bool row_goes(struct cluster *c, const struct cluster_row *w, int64_t now)
{
	return (w->send || w->sql) && (!c->closing || (w->flags & ROW_CLOSING)) &&
	       ((w->flags & ROW_ITEMS) || c->due[w->op] <= now) && !(w->skip && w->skip(c));
}

/* Whatever kicks brings work (a row come due, an item queued, an answer): the cluster's turn
 * (an item of the session's outbox), from the loop (never inside a run's state change), until
 * one finds nothing to send (turn_send). */
void cluster_kick(struct cluster *c)
{
	int64_t now = clock_mono_ms();
	const struct cluster_row *const *w = c->rows;
	while (*w && !row_goes(c, *w, now))
		w++;
	/* the turn can wait while what it would send first can (the publication's parts), on
	 * an instance alone: with others, a reap of a dead one waits for the publication */
	c->turn.bulk = c->state == CS_LOCKED && !c->n_tasks && c->lone.state == LONE_ON && *w &&
	               ((*w)->flags & ROW_BULK);
	ownsess_queue(&c->sess, &c->turn);
}

/* The turn's done(): the row of the statement in flight takes the answer; the cluster is
 * asked again after it (unless the answer sent the next one). */
static void op_done(struct ownsess_item *it, const struct stmtq_result *sr)
{
	struct cluster *c = CLUSTER_OF(it);
	const struct cluster_row *w = row_of(c, c->flight);
	c->flight = 0;
	if (w && w->done)
		w->done(c, sr);
	if (!c->flight)
		cluster_kick(c);
}

/* The turn's lost(): the connection is gone (on_conn_failed tells the rows). */
static void op_lost(struct ownsess_item *it, const char *why)
{
	struct cluster *c = CLUSTER_OF(it);
	const struct cluster_row *w = row_of(c, c->flight);
	(void)why;
	c->flight = 0;
	if (w && (w->flags & ROW_AGAIN))
		cluster_due_at(c, w->op, 0);
}

bool cluster_send_stmt(struct cluster *c, enum op op, const char *sql, int n,
                       const char *const *params)
{
	c->flight = op;
	return ownsess_push(&c->turn, c->q->drv.check_ms, sql, n, params);
}

/* ---- the state --------------------------------------------------------------------------- */

static const char *const state_names[CS_STATES] = {
    [CS_UNLOCKED] = "unlocked", [CS_LOCK_FAILED] = "lock failed", [CS_RECOVERY] = "on a standby",
    [CS_LOCKED] = "locked",     [CS_REFUSED] = "refused",
};

bool cluster_state_may(enum cluster_state from, enum cluster_state to)
{
	/* a held lock is never asked for again: it goes with its connection, or a claim finds the
	 * server read-only (the connection goes next); a refused instance stops; else the lock's
	 * answer, or the look at its holder, may make anything of it */
	if (from == CS_LOCKED)
		return to == CS_UNLOCKED || to == CS_RECOVERY;
	return from < CS_REFUSED && to < CS_STATES;
}

bool cluster_to(struct cluster *c, enum cluster_state to)
{
	enum cluster_state from = c->state;
	if (!cluster_state_may(from, to)) {
		log_error(
		    "cluster: internal error: an instance %s cannot become %s; please report it",
		    state_names[from], state_names[to]);
		return false;
	}
	if (from == CS_RECOVERY && (to == CS_UNLOCKED || to == CS_LOCKED)) {
		log_notice("cluster: history database %s is a primary now: runs resume",
		           c->safe_conninfo);
		log_complaint_reset(&c->recovery_complaint);
	}
	if (from != to)
		log_debug("cluster: %s, then %s", state_names[from], state_names[to]);
	c->state = to;
	c->st.connected = to == CS_LOCKED;
	c->st.in_recovery = to == CS_RECOVERY;
	cluster_lone_tell(c);
	return true;
}

void cluster_lone_tell(struct cluster *c)
{
	struct cluster_lone *l = &c->lone;
	/* answers_at's terms but the clock: the lease's end is told, the reader compares */
	bool on = l->state == LONE_ON && c->state == CS_LOCKED && !c->closing && !c->stopping &&
	          !c->skewed;
	int64_t since = on ? l->since_us : 0, until = on ? l->lease_end_us : 0;
	if (since == l->told_since_us && until == l->told_until_us)
		return;
	l->told_since_us = since;
	l->told_until_us = until;
	if (c->hooks.lone && !c->closing)
		c->hooks.lone(c->hooks.hist, since, until);
}

/* ---- the connection -------------------------------------------------------------------- */

/* The session's failed(): the connection is gone. Reconnect unless stopping (or refused:
 * the daemon stops). */
/* The history database's schema is older than this pgcrond's (ownsess_need_steps): nothing
 * is claimed until `pgcrond install`. Other instances that used it in the last 7 days may
 * still be claiming there (a rolling upgrade: the others not upgraded yet) or be upgraded
 * and waiting as this one; and when this instance's last process did not stop cleanly, its
 * runs may still be at work, and the statement that takes the name, which would end them,
 * cannot run. Then no fire runs here unclaimed, as when others were live at the last
 * contact; otherwise this instance runs its fires unclaimed and spools their history. */
static void old_schema_peers(struct cluster *c)
{
	char others[sizeof(c->peers)] = "";
	size_t n = 0, used = 0, len = strlen(c->instance);
	for (const char *p = c->q->schema_names; *p;) {
		const char *end = strchr(p, ',');
		size_t l = end ? (size_t)(end - p) : strlen(p);
		bool killed = l > 0 && p[l - 1] == '*';
		size_t name_l = l - killed;
		bool mine = name_l == len && strncmp(p, c->instance, len) == 0;
		if ((!mine || killed) && used + name_l + 48 < sizeof(others)) {
			used += (size_t)snprintf(
			    others + used, sizeof(others) - used, "%s%.*s%s", n ? ", " : "",
			    (int)name_l, p, mine ? " (its last process did not stop cleanly)" : "");
			n++;
		}
		p += l + (end != NULL);
	}
	snprintf(c->op_cause, sizeof(c->op_cause),
	         "the history database's pgcrond schema is older than this pgcrond's: run "
	         "'pgcrond install'");
	if (n == 0)
		return;
	if (c->st.peers_live == 0)
		log_warning("cluster: instances %s used the history database %s in the last 7 days "
		            "and its schema is older than this pgcrond's: no fire runs here until "
		            "'pgcrond install' (they may claim them)",
		            others, c->safe_conninfo);
	c->st.peers_live = n;
	snprintf(c->peers, sizeof(c->peers), "%s", others);
}

static bool on_conn_failed(void *arg, const char *why, bool was_ready)
{
	struct cluster *c = arg;
	if (c->state == CS_LOCKED)
		cluster_to(c, CS_UNLOCKED); /* the rest stands until the next lock's answer */
	if (c->closing)
		return false; /* cluster_close says if statements of the stop went unsent */
	bool too_old = !was_ready && c->q->drv.too_old;
	if (c->q->schema_step >= 0)
		old_schema_peers(c);
	/* (an older schema: the history says it, ownsess_need_steps) */
	if (c->state != CS_RECOVERY && !too_old && c->q->schema_step < 0 &&
	    log_complain(&c->down_complaint, why))
		log_warning("cluster: history database %s %s: %s", c->safe_conninfo,
		            was_ready ? "connection lost" : "unreachable", why);
	if (too_old && c->state != CS_REFUSED) {
		/* a server too old for pgcrond: the daemon stops (as for a name held by another
		 * instance), with that one line, unless a run's connection to the database said
		 * it first; the session's other clients say nothing of it */
		char msg[900];
		snprintf(msg, sizeof(msg), "database \"%s\": %s", c->db_name, why);
		cluster_to(c, CS_REFUSED);
		if (c->hooks.refused)
			c->hooks.refused(c->hooks.arg,
			                 conndrv_tell_too_old(&c->q->drv) ? msg : NULL);
	}
	/* what waits for an answer that cannot come now, in the table's order (the claims last:
	 * their verdict reads what the connection's end left) */
	for (const struct cluster_row *const *w = c->rows; *w; w++)
		if ((*w)->lost)
			(*w)->lost(c);
	return c->state != CS_REFUSED;
}

/* The name's lock, at the cluster's next turn (after the history's first statement). */
static void on_connected(void *arg)
{
	struct cluster *c = arg;
	c->op_cause[0] = '\0';   /* (an older schema's: old_schema_peers) */
	c->offset.known = false; /* perhaps another server (a failover), with its own clock */
	c->due[OP_LOCK] = 0;
	cluster_kick(c);
}

/* The turn's send(): the next statement. Not before other modules' statements (cluster_submit:
 * items queued on the session before or after the turn; the last one's answer kicks), and
 * until the name is held, only the lock when it is due (a connect, or a retry's time:
 * cluster_due_at). A turn that sends nothing leaves the cluster unasked (a lone instance's
 * runs, whose history statements make turns, enter no row) until something kicks it: every
 * row that comes due has its timer, every item queued (unlock, mark, claim, task) kicks, a
 * statement of its own is followed by a turn, and a row skipped for a while (an unlock held,
 * a reap too early) arms the timer for the end of it. */
static bool turn_send(struct ownsess_item *it)
{
	struct cluster *c = CLUSTER_OF(it);
	int64_t now = clock_mono_ms();
	if (c->n_tasks)
		return false;
	if (c->state != CS_LOCKED) {
		if (c->due[OP_LOCK] > now)
			return false;
		c->due[OP_LOCK] = CLUSTER_NEVER;
		return row_of(c, OP_LOCK)->send(c);
	}
	const char *mine[] = {c->instance, c->boot_id};
	for (const struct cluster_row *const *r = c->rows; *r; r++) {
		const struct cluster_row *w = *r;
		if (!row_goes(c, w, now))
			continue;
		if (!(w->flags & ROW_ITEMS))
			next_due(c, w, now);
		if (!w->send) {
			cluster_send_stmt(c, w->op, w->sql, w->n, mine);
			return true;
		}
		if (w->send(c))
			return true;
	}
	return false;
}

/* Wake-ups from other instances (coord.c), between statements. */
static void on_notify(void *arg, const char *channel, const char *extra)
{
	(void)channel; /* the only one it claims: CLUSTER_CHANNEL */
	struct cluster *c = arg;
	if (c->closing)
		return;
	if (strcmp(extra, "hello") == 0) {
		/* one that comes while the beat the last one asked for is still ahead adds none */
		int64_t now = clock_mono_ms(), at = c->hello_beat_ms + HELLO_BEAT_MS;
		if (c->hello_beat_ms <= now) {
			c->hello_beat_ms = at > now ? at : now;
			cluster_due_at(c, OP_BEAT, c->hello_beat_ms);
		}
		return;
	}
	if (c->hooks.notified)
		c->hooks.notified(c->hooks.arg, extra);
}

static const struct ownsess_ops conn_ops = {
    .connected = on_connected,
    .failed = on_conn_failed,
    .notify = on_notify,
};

int cluster_conn_open(struct cluster *c, const struct cluster_row *const *rows)
{
	c->rows = rows;
	for (int op = 0; op < OP_N; op++)
		c->due[op] = CLUSTER_NEVER;
	evtimer_assign(&c->tick_ev, c->base, on_tick, c);
	c->turn = (struct ownsess_item){.send = turn_send, .done = op_done, .lost = op_lost};
	/* the database's own session, shared with the history (ownsess.h): the instance's name
	 * is held by that session (cluster_lock.c) */
	if (ownsess_join(&c->sess, c->base, c->conninfo, &conn_ops, c) < 0 ||
	    ownsess_claim_channel(&c->sess, CLUSTER_CHANNEL) < 0) {
		ownsess_leave(&c->sess);
		return -ENOMEM;
	}
	c->q = ownsess_q(&c->sess);
	return 0;
}

/* ---- helpers --------------------------------------------------------------------------- */

const char *cluster_res_val(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

bool cluster_resend_worthy(const char *sqlstate)
{
	return strcmp(sqlstate, "40P01") == 0 || strcmp(sqlstate, "40001") == 0 ||
	       strcmp(sqlstate, "55P03") == 0;
}

bool cluster_has_unsent(const struct cluster *c)
{
	const struct claim *q;
	TAILQ_FOREACH(q, &c->claims, link)
		if (!q->sent)
			return true;
	return false;
}

bool cluster_in_burst(const struct cluster *c)
{
	return c->claim_cap && cluster_has_unsent(c);
}

bool cluster_jobs_unpublished(const struct cluster *c)
{
	return c->due[OP_JOBS] != CLUSTER_NEVER && c->jobs_cfg;
}

/* ---- the unlocks ----------------------------------------------------------------------- */

/* The unsent unlocks start gathering now (UNLOCK_GATHER_MS). */
static void unlock_gather(struct cluster *c)
{
	c->unlock_since_ms = clock_mono_ms();
	c->due[OP_UNLOCK] = CLUSTER_NEVER;
	cluster_due_at(c, OP_UNLOCK, c->unlock_since_ms + UNLOCK_GATHER_MS);
}

void cluster_unlock(struct cluster *c, const char *job)
{
	if (array_grow(&c->unlock, c->n_unlock, &c->cap_unlock, sizeof(*c->unlock), 16) < 0)
		return; /* the row stays until this process ends (then it holds nothing) */
	char *name = strdup(job);
	if (!name)
		return;
	c->unlock[c->n_unlock++] = name;
	if (c->n_unlock - c->unlock_sent == 1)
		unlock_gather(c);
	if (c->n_unlock >= UNLOCK_GATHER_MAX)
		cluster_due_at(c, OP_UNLOCK, 0);
	cluster_kick(c);
}

/* Whether the unsent unlocks wait for the runs under way (UNLOCK_HOLD_MS); if so, they go
 * at a kick once the runs no longer wait (cluster_wake), or when the hold ends. */
static bool unlock_held(struct cluster *c)
{
	if (c->closing || !c->hooks.busy || c->n_unlock >= CLAIM_BATCH_MAX ||
	    !c->hooks.busy(c->hooks.arg))
		return false;
	if (clock_mono_ms() - c->unlock_since_ms >= UNLOCK_HOLD_MS)
		return false;
	arm_tick(c, c->unlock_since_ms + UNLOCK_HOLD_MS);
	return true;
}

/* Another instance's next fire waits for them; but not in the middle of a burst of claims,
 * whose runs wait for their claims now. */
static bool unlock_skip(struct cluster *c)
{
	return c->n_unlock == 0 || cluster_in_burst(c) || unlock_held(c);
}

static bool unlock_send(struct cluster *c)
{
	size_t n = c->n_unlock < CLAIM_BATCH_MAX ? c->n_unlock : CLAIM_BATCH_MAX;
	char *jobs = text_pg_array((const char *const *)c->unlock, n);
	if (!jobs) {
		unlock_gather(c); /* out of memory: tried again later */
		return false;
	}
	const char *p[] = {jobs, c->announce ? c->announce : "{}", c->instance, c->boot_id};
	c->unlock_sent = n;
	cluster_send_stmt(c, OP_UNLOCK, sql_unlock, 4, p);
	free(jobs);
	return true;
}

static void unlock_done(struct cluster *c, const struct stmtq_result *sr)
{
	(void)sr;
	/* sent or not, they are done: a failed unlock leaves a lock this session drops at its end
	 * at the latest */
	for (size_t i = 0; i < c->unlock_sent; i++)
		free(c->unlock[i]);
	memmove(c->unlock, c->unlock + c->unlock_sent,
	        (c->n_unlock - c->unlock_sent) * sizeof(*c->unlock));
	c->n_unlock -= c->unlock_sent;
	c->unlock_sent = 0;
	if (c->n_unlock > 0)
		unlock_gather(c);
}

/* The job locks are rows (sql/pgcrond--11.sql): they stay, and the unlocks still due (also
 * those whose statement got no answer) go after the reconnect. */
static void unlock_lost(struct cluster *c)
{
	c->unlock_sent = 0;
}

const struct cluster_row cluster_row_unlock = {.op = OP_UNLOCK,
                                               .flags = ROW_AGAIN,
                                               .skip = unlock_skip,
                                               .send = unlock_send,
                                               .done = unlock_done,
                                               .lost = unlock_lost};

void cluster_wake(struct cluster *c)
{
	if (c && c->n_unlock > 0)
		cluster_kick(c);
}

/* ---- other modules' statements --------------------------------------------------------- */

/* A statement of another module (cluster_submit): an item of the session's outbox
 * (ownsess_ask), sent in the cluster's turn before its rows. */
struct task {
	struct cluster *c;
	cluster_result_fn fn;
	void *arg;
};

static void task_answered(void *arg, const PGresult *res)
{
	struct task *t = arg;
	char err[512] = "";
	const char *state = "";
	if (--t->c->n_tasks == 0)
		cluster_kick(t->c); /* the rows' turn, which waited for the tasks */
	if (res && PQresultStatus(res) == PGRES_FATAL_ERROR) { /* (NULL: no rows, no error) */
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		pgconn_result_error(res, err, sizeof(err));
		res = NULL;
	}
	t->fn(t->arg, res, err, state ? state : "");
	free(t);
}

static void task_lost(void *arg)
{
	struct task *t = arg;
	t->c->n_tasks--;
	if (!t->c->closing)
		t->fn(t->arg, NULL, "the coordination connection was lost", "08006");
	free(t);
}

int cluster_submit(struct cluster *c, const char *sql, int n, const char *const *params,
                   cluster_result_fn fn, void *arg)
{
	/* (cluster_submit_closing looks at the connection) */
	return c && !c->closing ? cluster_submit_closing(c, sql, n, params, fn, arg) : -ENOTCONN;
}

int cluster_submit_closing(struct cluster *c, const char *sql, int n, const char *const *params,
                           cluster_result_fn fn, void *arg)
{
	if (!c || !stmtq_ready(c->q) || c->state != CS_LOCKED)
		return -ENOTCONN;
	struct task *t = malloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	*t = (struct task){.c = c, .fn = fn, .arg = arg};
	/* sent from the loop, never from inside this call; while closing, before the stop
	 * (cluster_close's wait runs the session's turns) */
	if (ownsess_ask(&c->sess, sql, n, params, task_answered, task_lost, t, false) < 0) {
		free(t);
		return -ENOMEM;
	}
	c->n_tasks++;
	return 0;
}

void cluster_warn_failed(void *arg, const struct pg_result *res, const char *err,
                         const char *sqlstate)
{
	if (err && *err)
		log_warning("cluster: %s: %s", (const char *)arg, err);
}

/* ---- what others read ------------------------------------------------------------------ */

bool cluster_ready(const struct cluster *c)
{
	return c && stmtq_ready(c->q) && c->state == CS_LOCKED && !c->closing;
}

const char *cluster_instance(const struct cluster *c)
{
	return c->instance;
}

const char *cluster_boot_id(const struct cluster *c)
{
	return c->boot_id;
}

const char *cluster_peers(const struct cluster *c)
{
	return c->peers;
}

void cluster_get_stats(const struct cluster *c, struct cluster_stats *out)
{
	*out = c->st;
}
