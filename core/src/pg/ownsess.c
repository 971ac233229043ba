/* pgcrond's own session of a database (ownsess.h): one connection and its statement in
 * flight, shared by its clients. */
#include "ownsess.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conndrv.h"
#include "log.h"
#include "pgconn.h"
#include "text.h"

/* The connection check until the configuration's (ownsess_set_check). */
#define DEF_CHECK_MS 30000

struct ownsess {
	LIST_ENTRY(ownsess) link; /* in the open sessions (loop thread only) */
	struct event_base *base;
	char *conninfo;
	struct stmtq q;
	TAILQ_HEAD(, ownsess_client) clients; /* in the order they joined */
	struct event start_ev;                /* the first connect, at the loop's next turn */
	struct event turn_ev;                 /* the clients' turns (on_idle), from the loop */
	struct event later_ev;                /* the first item queued for later comes due ... */
	int64_t later_ms;                     /* ... at this monotonic time */
	struct ownsess_item *flight;          /* the item whose statement is in flight */
	int64_t flight_ms;                    /* when it was sent (monotonic) */
	int64_t bulk_at_ms; /* no bulk item before: 7 times the last one's time after its end */
	bool full;          /* the last connect was refused because the server takes no more
	                     * (conndrv_server_full): ownsess_starved() (set_full) */
	const char *steps;  /* ownsess_need_steps' (NULL: none needed) ... */
	int newest;         /* ... and the newest of them */
	bool gating;        /* connected, the schema's steps being read: no client knows yet */
	char gate_why[720]; /* a schema found older: what failed() says, once the names are read */
	/* this connection's LISTEN on OWNSESS_INSTALL_CHANNEL (asked once a schema is found
	 * older): a session held by an older schema waits for it (q.gated) */
	enum { LISTEN_NONE, LISTEN_ON, LISTEN_REFUSED } listen;
	bool woken; /* a notification on it since the steps were last read */
};

static LIST_HEAD(, ownsess) sessions;
static unsigned n_full;                 /* of them, full (ownsess_starving) */
static int64_t check_ms = DEF_CHECK_MS; /* ownsess_set_check's */

static void set_full(struct ownsess *s, bool full)
{
	n_full = n_full - s->full + full;
	s->full = full;
}

static struct ownsess *of_q(struct stmtq *q)
{
	return (struct ownsess *)((char *)q - offsetof(struct ownsess, q));
}

static void on_idle(struct ownsess *s);

/* Connected and nothing in flight (held by an older schema too: the session's own
 * statements go on it). */
static bool idle(const struct stmtq *q)
{
	return q->drv.state == CONNDRV_READY && !q->sent;
}

static void check_done(void *arg, const struct stmtq_result *r)
{
	if (!r->lost && r->failed)
		stmtq_fail(arg, r->err, 0);
}

static void forgotten(void *arg, const struct stmtq_result *r) {}

/* ---- the statement in flight ----------------------------------------------------------- */

static void result_reset(struct stmtq_result *r)
{
	PQclear(r->res);
	PQclear(r->err_res);
	memset(r, 0, sizeof(*r));
}

/* The statement in flight, if any, is complete with LOST for WHY. */
static void lose_flight(struct stmtq *q, const char *why)
{
	struct stmtq_result lost = {.failed = true, .lost = true, .sqlstate = "08006"};
	snprintf(lost.err, sizeof(lost.err), "%s", why ? why : "the connection was lost");

	if (q->sent) {
		q->sent = false;
		result_reset(&q->cur.r);
		q->cur.done(q->cur.arg, &lost);
	}
}

void stmtq_end(struct stmtq *q)
{
	if (!q->sent)
		return;
	conndrv_idle(&q->drv);
	q->last_arg = q->cur.arg;
	q->sent = false;
	struct stmtq_result r = q->cur.r;
	memset(&q->cur.r, 0, sizeof(q->cur.r));
	q->completing = &r;
	q->cur.done(q->cur.arg, &r); /* may send the one that follows it */
	q->completing = NULL;
	result_reset(&r);
	if (idle(q))
		on_idle(of_q(q));
}

/* Gather one result of a pushed statement. */
static void gather(struct stmtq *q, PGresult *r)
{
	struct stmtq_result *g = &q->cur.r;
	ExecStatusType st = PQresultStatus(r);

	if (st == PGRES_TUPLES_OK && !g->res && !g->failed) {
		g->rows += atoll(PQcmdTuples(r));
		g->res = r; /* kept for the callback */
		return;
	}
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		g->rows += atoll(PQcmdTuples(r));
	else if (stmtq_note_error(q, r) && st == PGRES_FATAL_ERROR) {
		g->err_res = r; /* kept for the callback */
		return;
	}
	PQclear(r);
}

void stmtq_fail(struct stmtq *q, const char *why, int64_t retry_ms)
{
	q->next_retry_ms = retry_ms;
	conndrv_fail(&q->drv, why);
}

/* Put a statement in flight: SQL with N text PARAMS, or, SQL NULL, what the caller wrote
 * itself, whose results go to EACH(ARG) until stmtq_end; answered within DEADLINE_MS;
 * DONE(ARG, result) when complete. False if the session is not connected and idle (DONE is
 * not called), or the connection failed (DONE was called with LOST). The result is clean:
 * every statement's is reset as it completes or is lost. */
static bool send_stmt(struct stmtq *q, const char *sql, int n, const char *const *params,
                      int64_t deadline_ms, void (*each)(struct ownsess_item *it, PGresult *r),
                      void (*done)(void *arg, const struct stmtq_result *r), void *arg)
{
	if (q->sent || q->drv.state != CONNDRV_READY) {
		log_error("internal error: a statement sent while pgcrond's own session is %s; "
		          "please report it",
		          q->sent ? "busy" : "down");
		return false;
	}
	q->cur.done = done;
	q->cur.each = each;
	q->cur.arg = arg;
	q->sent = true;
	bool ok = !sql || PQsendQueryParams(q->drv.conn, sql, n, NULL, params, NULL, NULL, 0);
	conndrv_busy(&q->drv, deadline_ms);
	if (!ok || !conndrv_flush(&q->drv)) {
		stmtq_fail(q, NULL, 0);
		return false;
	}
	return true;
}

bool stmtq_note_error(struct stmtq *q, const PGresult *r)
{
	struct stmtq_result *g = &q->cur.r;

	if (g->failed)
		return false;
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	g->failed = true;
	pgconn_result_error(r, g->err, sizeof(g->err));
	snprintf(g->sqlstate, sizeof(g->sqlstate), "%s", state ? state : "");
	return true;
}

bool stmtq_busy(const struct stmtq *q)
{
	return q->sent;
}

bool stmtq_failed(const struct stmtq *q)
{
	return q->completing ? q->completing->failed : q->cur.r.failed;
}

PGconn *stmtq_conn(const struct stmtq *q)
{
	return q->drv.conn;
}

bool stmtq_ready(const struct stmtq *q)
{
	return q->drv.state == CONNDRV_READY && !q->gated;
}

/* ---- the session's callbacks: decided once, or handed to each client ------------------ */

/* No longer held by an older schema (or never was): what it told the clients is over. */
static void unhold(struct ownsess *s)
{
	s->q.gated = NULL;
	s->q.schema_step = -1;
	s->q.schema_names[0] = '\0';
}

/* The connect is complete (and the schema has the steps needed): every client hears it. */
static void tell_connected(struct ownsess *s)
{
	s->gating = false;
	unhold(s);
	for (struct ownsess_client *cl = TAILQ_FIRST(&s->clients), *next; cl && stmtq_ready(&s->q);
	     cl = next) {
		next = TAILQ_NEXT(cl, link);
		if (cl->ops->connected)
			cl->ops->connected(cl->arg);
	}
	event_active(&s->turn_ev, EV_TIMEOUT, 0); /* the items queued meanwhile */
}

/* SQL: the newest schema step the database has, and how many of those in $1 it has. */
static const char sql_steps[] =
    "SELECT COALESCE(pg_catalog.max(version), 0), pg_catalog.count(*) FILTER"
    " (WHERE version OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int4[]))"
    " FROM pgcrond.schema_version";

/* SQL: the instances that used this history database in the last 7 days, and those of them
 * whose last process did not stop cleanly, a '*' after the name (a schema older than this
 * pgcrond's: whether others may claim the fires meanwhile, or a killed predecessor's runs
 * may still be at work). */
static const char sql_names[] =
    "SELECT pg_catalog.string_agg(name OPERATOR(pg_catalog.||) CASE WHEN stopped_at IS NULL"
    " THEN '*' ELSE '' END, ',' ORDER BY name) FROM pgcrond.instance"
    " WHERE last_seen OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-)"
    " '7 days'::pg_catalog.interval)";

static bool tell_failed(struct ownsess *s, const char *why, bool was_ready);
static void steps_done(void *arg, const struct stmtq_result *r);

static void read_steps(struct ownsess *s)
{
	const char *p[] = {s->steps};
	s->woken = false;
	(void)send_stmt(&s->q, sql_steps, 1, p, s->q.drv.check_ms / 2, NULL, steps_done, s);
}

/* The schema is older (gate_why says so) and the instances that used it are read: every
 * client hears failed(), as if the database could not be reached. The connection stays, idle
 * (the connection check still asks it), held until a notification on OWNSESS_INSTALL_CHANNEL
 * has the steps read again (on_idle): no reconnect meanwhile. Without the LISTEN (a standby
 * refuses it) it is given up, and the backoff's reconnect looks again. */
static void hold(struct ownsess *s)
{
	if (s->listen != LISTEN_ON) {
		stmtq_fail(&s->q, s->gate_why, 0);
		return;
	}
	s->gating = false;
	s->q.gated = s->gate_why;
	if (!tell_failed(s, s->gate_why, true)) { /* nobody wants the database any more */
		conndrv_close(&s->q.drv);
		unhold(s);
	}
}

static void names_done(void *arg, const struct stmtq_result *r)
{
	struct ownsess *s = arg;
	if (r->lost) {
		s->q.schema_step =
		    -1; /* the clients hear of a lost connection, not of the schema */
		return;
	}
	if (r->res && PQntuples(r->res) == 1)
		snprintf(s->q.schema_names, sizeof(s->q.schema_names), "%s",
		         PQgetvalue(r->res, 0, 0));
	hold(s);
}

/* The LISTEN is answered: the steps are read again, the read that counts (an install that
 * committed before the LISTEN sent its notification to nobody). */
static void listen_done(void *arg, const struct stmtq_result *r)
{
	struct ownsess *s = arg;
	if (r->lost)
		return;
	s->listen = r->failed ? LISTEN_REFUSED : LISTEN_ON;
	read_steps(s);
}

/* The schema's steps read (ownsess_need_steps): the clients hear of the connect, or of a
 * failure as if the database could not be reached (no schema at all: step 0); with an older
 * schema, once the session LISTENs for the install and the instances that used it are read
 * (sql_names; from step 4 on), then held (hold). Held already, a read that finds the schema
 * still older changes nothing. */
static void steps_done(void *arg, const struct stmtq_result *r)
{
	struct ownsess *s = arg;
	char *why = s->gate_why;
	bool none = !strcmp(r->sqlstate, "42P01") || !strcmp(r->sqlstate, "3F000");
	int step = none ? 0 : r->failed || !r->res ? -1 : atoi(PQgetvalue(r->res, 0, 0));
	int have = r->res ? atoi(PQgetvalue(r->res, 0, 1)) : 0, want = 1;

	if (r->lost)
		return; /* (the clients hear failed()) */
	for (const char *p = s->steps; *p; p++)
		want += *p == ',';
	if (step < 0) {
		snprintf(why, sizeof(s->gate_why), "cannot read its pgcrond schema's step: %s",
		         r->err);
	} else if (have < want && s->q.gated) {
		return; /* still older: held on (on_idle) */
	} else if (have < want) {
		s->q.schema_step = step;
		snprintf(why, sizeof(s->gate_why),
		         "has pgcrond schema step %d, this pgcrond needs step %d: run 'pgcrond "
		         "install'",
		         step, s->newest);
		/* (a send that fails fails the connection: its done() hears it) */
		if (s->listen == LISTEN_NONE)
			(void)send_stmt(&s->q, "LISTEN " OWNSESS_INSTALL_CHANNEL, 0, NULL,
			                s->q.drv.check_ms / 2, NULL, listen_done, s);
		else if (step >= 4)
			(void)send_stmt(&s->q, sql_names, 0, NULL, s->q.drv.check_ms / 2, NULL,
			                names_done, s);
		else
			hold(s);
		return;
	} else {
		tell_connected(s);
		return;
	}
	stmtq_fail(&s->q, why, 0);
}

static void on_connected(void *arg)
{
	struct ownsess *s = arg;
	conndrv_succeeded(&s->q.drv);
	set_full(s, false);
	s->q.last_arg = NULL; /* the turns start with the first client to join */
	s->listen = LISTEN_NONE;
	s->gating = s->steps != NULL;
	if (!s->gating)
		tell_connected(s);
	else
		read_steps(s);
}

/* An item for one answer (ownsess_ask): its statement, with its parameters copied. */
struct ask {
	struct ownsess_item it;
	ownsess_answer_fn fn;
	void (*lost)(void *arg);
	void *arg;
	const char *sql;
	int n;
	char *params[];
};

static void ask_free(struct ownsess_item *it)
{
	struct ask *a = (struct ask *)it;
	for (int i = 0; i < a->n; i++)
		free(a->params[i]);
	free(a);
}

static void ask_lost(struct ownsess_item *it, const char *why)
{
	struct ask *a = (struct ask *)it;
	if (a->lost)
		a->lost(a->arg);
	ask_free(it);
}

static bool ask_send(struct ownsess_item *it)
{
	struct ask *a = (struct ask *)it;
	return ownsess_push(it, 0, a->sql, a->n, (const char *const *)a->params);
}

static void ask_done(struct ownsess_item *it, const struct stmtq_result *r)
{
	struct ask *a = (struct ask *)it;
	a->fn(a->arg, r->res ? r->res : r->err_res);
	ask_free(it);
}

/* CL's items leave its outbox: lost(TELL) if TELL, a why (what it queues again waits for
 * the connect), else dropped without a call (its client leaves). */
static void lose_items(struct ownsess_client *cl, const char *tell)
{
	struct ownsess_item *it = STAILQ_FIRST(&cl->outbox);
	STAILQ_INIT(&cl->outbox);
	while (it) {
		struct ownsess_item *next = STAILQ_NEXT(it, link);
		it->queued = false;
		if (tell && it->lost)
			it->lost(it, tell);
		else if (it->send == ask_send)
			ask_free(it);
		it = next;
	}
}

/* Every client hears failed(WHY, WAS_READY), its items lost first. True if one of them wants
 * the connection again. */
static bool tell_failed(struct ownsess *s, const char *why, bool was_ready)
{
	bool again = false;
	for (struct ownsess_client *cl = TAILQ_FIRST(&s->clients); cl; cl = TAILQ_NEXT(cl, link))
		lose_items(cl, why ? why : "the connection was lost");
	for (struct ownsess_client *cl = TAILQ_FIRST(&s->clients), *next; cl; cl = next) {
		next = TAILQ_NEXT(cl, link);
		if (cl->ops->failed)
			again |= cl->ops->failed(cl->arg, why, was_ready);
	}
	return again;
}

static void on_failed(void *arg, const char *why, bool was_ready)
{
	struct ownsess *s = arg;
	int64_t retry_ms = s->q.next_retry_ms;

	s->q.next_retry_ms = 0;
	conndrv_close(&s->q.drv);
	lose_flight(&s->q, why);
	s->gating = false;
	s->woken = false;
	if (s->q.gated) /* the clients heard of the schema already: this is a connection lost */
		unhold(s);
	set_full(s, !was_ready && conndrv_server_full(why));
	bool again = tell_failed(s, why, was_ready);
	unhold(s); /* (schema_step is for failed() only) */
	if (again)
		conndrv_retry(&s->q.drv, retry_ms > 0 ? retry_ms : CONNDRV_BACKOFF);
}

/* CL's first item, if it is due (else the timer for when it is). */
static struct ownsess_item *due_item(struct ownsess *s, struct ownsess_client *cl)
{
	struct ownsess_item *it = STAILQ_FIRST(&cl->outbox);
	int64_t at = it ? it->not_before_ms : 0;
	if (it && it->bulk && s->bulk_at_ms > at)
		at = s->bulk_at_ms;
	int64_t wait = at - clock_mono_ms();
	if (wait <= 0)
		return it;
	if (!evtimer_pending(&s->later_ev, NULL) || at < s->later_ms) {
		s->later_ms = at;
		clock_event_in(&s->later_ev, wait);
	}
	return NULL;
}

/* CL's turn: its first item due that has something to send. True if the session is busy (or
 * down). */
static bool client_turn(struct ownsess *s, struct ownsess_client *cl)
{
	for (struct ownsess_item *it; (it = due_item(s, cl)) != NULL;) {
		STAILQ_REMOVE_HEAD(&cl->outbox, link);
		it->queued = false;
		if (it->send(it) || !stmtq_ready(&s->q) || stmtq_busy(&s->q))
			return true;
	}
	return !stmtq_ready(&s->q) || stmtq_busy(&s->q);
}

/* Nothing in flight: the clients' outboxes in turn, from the one after the client whose
 * statement completed last. */
static void on_idle(struct ownsess *s)
{
	struct ownsess_client *cl = TAILQ_FIRST(&s->clients);

	if (s->q.gated) { /* held by an older schema: no turns, the steps read if woken */
		if (s->woken)
			read_steps(s);
		return;
	}

	for (struct ownsess_client *o = cl; o; o = TAILQ_NEXT(o, link))
		if (o->arg == s->q.last_arg) {
			cl = TAILQ_NEXT(o, link) ? TAILQ_NEXT(o, link) : TAILQ_FIRST(&s->clients);
			break;
		}

	evtimer_del(&s->later_ev);
	for (struct ownsess_client *first = cl; cl;) {
		struct ownsess_client *next =
		    TAILQ_NEXT(cl, link) ? TAILQ_NEXT(cl, link) : TAILQ_FIRST(&s->clients);
		/* (an empty outbox has no turn to take) */
		if (!STAILQ_EMPTY(&cl->outbox) && client_turn(s, cl))
			return;
		cl = next == first ? NULL : next;
	}
}

/* The turns asked for from a caller's stack (an item queued), or a later item come due. */
static void on_turn(evutil_socket_t fd, short what, void *arg)
{
	struct ownsess *s = arg;

	if (stmtq_ready(&s->q) && !stmtq_busy(&s->q))
		on_idle(s);
}

/* The connection check: an idle connection is asked whether it still answers (a busy one is
 * watched by its statement's deadline). */
static void on_check(void *arg)
{
	struct ownsess *s = arg;

	if (idle(&s->q)) /* (held by an older schema too) */
		(void)send_stmt(&s->q, "SELECT 1", 0, NULL, s->q.drv.check_ms / 2, NULL, check_done,
		                &s->q);
}

static bool claims(const struct ownsess_client *cl, const char *channel, size_t *at)
{
	for (size_t i = 0; i < cl->n_channels; i++)
		if (strcmp(cl->channels[i], channel) == 0) {
			if (at)
				*at = i;
			return true;
		}
	return false;
}

/* A notification: to the clients that claimed its channel. */
static void on_notify(struct ownsess *s, const char *channel, const char *extra)
{
	/* one on OWNSESS_INSTALL_CHANNEL wakes a session held by an older schema: its steps are
	 * read again (now, or after the check in flight: on_idle), and only what they say
	 * decides. Any role may send one: all it can do is have them read again. */
	if (s->listen == LISTEN_ON && strcmp(channel, OWNSESS_INSTALL_CHANNEL) == 0) {
		s->woken = true;
		if (s->q.gated && idle(&s->q))
			on_idle(s);
	}
	for (struct ownsess_client *cl = TAILQ_FIRST(&s->clients), *next; cl; cl = next) {
		next = TAILQ_NEXT(cl, link);
		if (cl->ops->notify && claims(cl, channel, NULL))
			cl->ops->notify(cl->arg, channel, extra);
	}
}

/* The driver's readable(): what the server sent is read in. */
static void on_readable(void *arg)
{
	struct ownsess *s = arg;
	struct stmtq *q = &s->q;

	while (q->drv.conn && q->sent && !PQisBusy(q->drv.conn)) {
		PGresult *r = PQgetResult(q->drv.conn);
		if (q->cur.each) {
			q->cur.each(q->cur.arg, r); /* may end it, and send the next */
			PQclear(r);
		} else if (!r) {
			stmtq_end(q); /* may send the next */
		} else {
			gather(q, r);
		}
	}
	PGnotify *nt;
	while (q->drv.conn && (nt = PQnotifies(q->drv.conn)) != NULL) {
		on_notify(s, nt->relname, nt->extra ? nt->extra : "");
		PQfreemem(nt);
	}
	if (q->drv.conn && PQstatus(q->drv.conn) == CONNECTION_BAD)
		stmtq_fail(q, NULL, 0);
}

static const struct conndrv_ops drv_ops = {
    .connected = on_connected,
    .readable = on_readable,
    .failed = on_failed,
    .check = on_check,
};

/* A connected session a client joins: its connected() at the loop's next turn, never from
 * inside ownsess_join. */
static void on_join_connected(evutil_socket_t fd, short what, void *arg)
{
	struct ownsess_client *cl = arg;

	if (cl->s && cl->s->q.gated) {
		/* held by an older schema: as the other clients heard at the hold */
		if (cl->ops->failed)
			(void)cl->ops->failed(cl->arg, cl->s->q.gated, true);
	} else if (cl->s && stmtq_ready(&cl->s->q) && !cl->s->gating) {
		if (cl->ops->connected)
			cl->ops->connected(cl->arg);
		if (stmtq_ready(&cl->s->q) && !stmtq_busy(&cl->s->q))
			on_idle(cl->s);
	}
}

static void on_start(evutil_socket_t fd, short what, void *arg)
{
	struct ownsess *s = arg;

	(void)conndrv_connect(&s->q.drv, s->conninfo, OWNSESS_APP_NAME);
}

/* What the notices' log lines call the session: its database as the conninfo names it. */
static void session_label(const char *conninfo, char *out, size_t len)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	const char *db = pgconn_option(opts, "dbname");

	if (*db && !strchr(db, '=') && !strstr(db, "://")) /* (never a conninfo: a password) */
		snprintf(out, len, "pgcrond's session of database %s", db);
	else
		snprintf(out, len, "pgcrond's session of a database");
	PQconninfoFree(opts);
}

/* ---- the clients' calls ---------------------------------------------------------------- */

int ownsess_join(struct ownsess_client *cl, struct event_base *base, const char *conninfo,
                 const struct ownsess_ops *ops, void *arg)
{
	struct ownsess *s = LIST_FIRST(&sessions);

	while (s && (s->base != base || strcmp(s->conninfo, conninfo) != 0))
		s = LIST_NEXT(s, link);
	memset(cl, 0, sizeof(*cl));
	STAILQ_INIT(&cl->outbox);
	cl->ops = ops;
	cl->arg = arg;
	evtimer_assign(&cl->join_ev, base, on_join_connected, cl);
	bool fresh = !s;
	if (fresh) {
		s = calloc(1, sizeof(*s));
		if (!s || !(s->conninfo = strdup(conninfo))) {
			free(s);
			return -ENOMEM;
		}
		s->base = base;
		TAILQ_INIT(&s->clients);
		s->q.schema_step = -1;
		char label[96];
		session_label(conninfo, label, sizeof(label));
		conndrv_init(&s->q.drv, base, &drv_ops, s, label, PGCONN_NOTICES_PER_MIN, 60000,
		             check_ms);
		conndrv_set_backoff(&s->q.drv, OWNSESS_RETRY_MIN_MS, OWNSESS_RETRY_MAX_MS);
		evtimer_assign(&s->start_ev, base, on_start, s);
		evtimer_assign(&s->turn_ev, base, on_turn, s);
		evtimer_assign(&s->later_ev, base, on_turn, s);
		LIST_INSERT_HEAD(&sessions, s, link);
	}
	TAILQ_INSERT_TAIL(&s->clients, cl, link);
	cl->s = s;
	if (fresh)
		event_active(&s->start_ev, EV_TIMEOUT, 0);
	else if (stmtq_ready(&s->q) || s->q.gated)
		event_active(&cl->join_ev, EV_TIMEOUT, 0);
	return 0;
}

void ownsess_leave(struct ownsess_client *cl)
{
	struct ownsess *s = cl->s;

	if (!s)
		return;
	evtimer_del(&cl->join_ev);
	text_free_list(cl->channels, cl->n_channels);
	cl->channels = NULL;
	cl->n_channels = 0;
	TAILQ_REMOVE(&s->clients, cl, link);
	cl->s = NULL;
	struct ownsess_item *flight = s->flight && s->flight->cl == cl ? s->flight : NULL;
	if (flight && s->q.sent && s->q.cur.arg == flight) {
		/* its statement is read to its end without a callback; one it reads itself
		 * (ownsess_begin) gives the connection up: nobody else can tell where it ends */
		s->q.cur.done = forgotten;
		if (s->q.cur.each) {
			s->q.cur.each = NULL;
			stmtq_fail(&s->q, "its statement's owner went away", 0);
		}
	}
	if (flight) {
		s->flight = NULL;
		if (flight->send == ask_send)
			ask_free(flight);
	}
	lose_items(cl, NULL);
	if (!TAILQ_EMPTY(&s->clients))
		return;
	evtimer_del(&s->start_ev);
	evtimer_del(&s->turn_ev);
	evtimer_del(&s->later_ev);
	set_full(s, false);
	conndrv_close(&s->q.drv);
	result_reset(&s->q.cur.r);
	conndrv_cancel_retry(&s->q.drv);
	LIST_REMOVE(s, link);
	free(s->conninfo);
	free(s);
}

struct stmtq *ownsess_q(const struct ownsess_client *cl)
{
	return &cl->s->q;
}

/* IT at the end of CL's outbox, due at NOT_BEFORE_MS (0: now); the session's turn from the
 * loop if it is idle. */
static void enqueue(struct ownsess_client *cl, struct ownsess_item *it, int64_t not_before_ms)
{
	it->not_before_ms = not_before_ms;
	if (!it->queued) {
		it->cl = cl;
		it->queued = true;
		STAILQ_INSERT_TAIL(&cl->outbox, it, link);
	}
	if (stmtq_ready(&cl->s->q) && !stmtq_busy(&cl->s->q))
		event_active(&cl->s->turn_ev, EV_TIMEOUT, 0);
}

void ownsess_queue(struct ownsess_client *cl, struct ownsess_item *it)
{
	enqueue(cl, it, 0);
}

void ownsess_queue_later(struct ownsess_client *cl, struct ownsess_item *it, int64_t ms)
{
	const struct conndrv *d = &cl->s->q.drv;
	if (ms < 0)
		ms = pgconn_backoff_ms(it->failures++, d->retry.min_ms, d->retry.max_ms);
	enqueue(cl, it, clock_mono_ms() + ms);
}

void ownsess_item_ok(struct ownsess_item *it)
{
	it->failures = 0;
	it->not_before_ms = 0;
}

/* The answer of an item's statement (ARG: the item). */
static void item_done(void *arg, const struct stmtq_result *r)
{
	struct ownsess_item *it = arg;
	struct ownsess *s = it->cl->s;

	int64_t now = clock_mono_ms();
	if (it->bulk)
		s->bulk_at_ms = now + OWNSESS_BULK_WAIT * (now - s->flight_ms);
	s->flight = NULL;
	s->q.last_arg = it->cl->arg; /* its client had the turn (on_idle) */
	if (!r->lost)
		it->done(it, r);
	else if (it->lost && !it->queued) /* (one queued again is lost with the outbox) */
		it->lost(it, r->err);
}

bool ownsess_push(struct ownsess_item *it, int64_t deadline_ms, const char *sql, int n,
                  const char *const *params)
{
	struct ownsess *s = it->cl->s;

	s->flight = it;
	s->flight_ms = clock_mono_ms();
	return send_stmt(&s->q, sql, n, params,
	                 deadline_ms > 0 ? deadline_ms : s->q.drv.check_ms / 2, NULL, item_done,
	                 it);
}

bool ownsess_begin(struct ownsess_item *it, int64_t deadline_ms,
                   void (*each)(struct ownsess_item *it, PGresult *r))
{
	struct ownsess *s = it->cl->s;

	s->flight = it;
	s->flight_ms = clock_mono_ms();
	return send_stmt(&s->q, NULL, 0, NULL,
	                 deadline_ms > 0 ? deadline_ms : s->q.drv.check_ms / 2, each, item_done,
	                 it);
}

int ownsess_ask(struct ownsess_client *cl, const char *sql, int n, const char *const *params,
                ownsess_answer_fn fn, void (*lost)(void *arg), void *arg, bool bulk)
{
	struct ask *a = calloc(1, sizeof(*a) + (size_t)n * sizeof(a->params[0]));
	if (!a)
		return -ENOMEM;
	*a =
	    (struct ask){.it = {.send = ask_send, .done = ask_done, .lost = ask_lost, .bulk = bulk},
	                 .fn = fn,
	                 .lost = lost,
	                 .arg = arg,
	                 .sql = sql};
	for (; a->n < n; a->n++)
		if (params[a->n] && !(a->params[a->n] = strdup(params[a->n]))) {
			ask_free(&a->it);
			return -ENOMEM;
		}
	ownsess_queue(cl, &a->it);
	return 0;
}

void ownsess_drain(struct ownsess_client *cl, int64_t (*left_ms)(void *arg))
{
	struct ownsess *s = cl->s;
	int64_t left;

	while (stmtq_ready(&s->q) && (left = left_ms(cl->arg)) > 0) {
		if (!stmtq_busy(&s->q))
			on_idle(s);
		if (!stmtq_busy(&s->q) || !stmtq_conn(&s->q))
			return;
		struct pollfd p = {
		    PQsocket(stmtq_conn(&s->q)),
		    (short)(POLLIN | ((conndrv_watching(&s->q.drv) & EV_WRITE) ? POLLOUT : 0)), 0};
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		short what = (short)(((p.revents & (POLLIN | POLLERR | POLLHUP)) ? EV_READ : 0) |
		                     ((p.revents & POLLOUT) ? EV_WRITE : 0));
		conndrv_serve(p.fd, what, &s->q.drv); /* may drop the connection */
	}
}

int ownsess_claim_channel(struct ownsess_client *cl, const char *channel)
{
	if (claims(cl, channel, NULL))
		return 0;
	char **v = realloc(cl->channels, (cl->n_channels + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	cl->channels = v;
	if (!(v[cl->n_channels] = strdup(channel)))
		return -ENOMEM;
	cl->n_channels++;
	return 0;
}

void ownsess_release_channel(struct ownsess_client *cl, const char *channel)
{
	size_t i;

	if (!claims(cl, channel, &i))
		return;
	free(cl->channels[i]);
	cl->channels[i] = cl->channels[--cl->n_channels];
}

bool ownsess_claimed_elsewhere(const struct ownsess_client *cl, const char *channel)
{
	for (const struct ownsess_client *o = cl->s ? TAILQ_FIRST(&cl->s->clients) : NULL; o;
	     o = TAILQ_NEXT(o, link))
		if (o != cl && claims(o, channel, NULL))
			return true;
	return false;
}

void ownsess_set_check(int64_t ms)
{
	check_ms = ms > 0 ? ms : DEF_CHECK_MS;
	for (struct ownsess *s = LIST_FIRST(&sessions); s; s = LIST_NEXT(s, link))
		conndrv_set_check(&s->q.drv, check_ms);
}

void ownsess_need_steps(struct ownsess_client *cl, const char *steps, int newest)
{
	cl->s->steps = steps;
	cl->s->newest = newest;
}

void ownsess_set_backoff(struct ownsess_client *cl, int64_t min_ms, int64_t max_ms)
{
	conndrv_set_backoff(&cl->s->q.drv, min_ms, max_ms);
}

static struct ownsess *starved(const struct event_base *base, const char *conninfo)
{
	for (struct ownsess *s = LIST_FIRST(&sessions); s; s = LIST_NEXT(s, link))
		if (s->base == base && s->full && !stmtq_ready(&s->q) &&
		    strcmp(s->conninfo, conninfo) == 0)
			return s;
	return NULL;
}

const unsigned *ownsess_starving(void)
{
	return &n_full;
}

bool ownsess_starved(const struct event_base *base, const char *conninfo)
{
	return starved(base, conninfo) != NULL;
}

void ownsess_take_slot(const struct event_base *base, const char *conninfo)
{
	struct ownsess *s = starved(base, conninfo);
	if (s && s->q.drv.state == CONNDRV_DOWN)
		conndrv_retry(&s->q.drv, 0);
}
