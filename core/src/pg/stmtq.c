/* One statement session over conndrv (stmtq.h): the connection, the statement in flight and
 * the ones waiting for it, written once for every module that sends its own statements on a
 * connection of its own. */
#include "stmtq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"

/* A statement waiting for the connection: its text is borrowed, its parameters copied. */
struct stmtq_stmt {
	struct stmtq_stmt *next;
	int tag;
	const char *sql;
	int n;
	char **params;
	int64_t deadline_ms;
	stmtq_done_fn done;
	void *arg;
};

static void stmt_free(struct stmtq_stmt *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n; i++)
		free(s->params[i]);
	free(s->params);
	free(s);
}

static void result_reset(struct stmtq_result *r)
{
	PQclear(r->res);
	PQclear(r->err_res);
	memset(r, 0, sizeof(*r));
}

/* Complete every statement with LOST for WHY: the one in flight, then the waiting ones. What
 * a callback pushes meanwhile waits for the next connect. */
static void lose_all(struct stmtq *q, const char *why)
{
	struct stmtq_result lost = {.failed = true, .lost = true, .sqlstate = "08006"};
	snprintf(lost.err, sizeof(lost.err), "%s", why ? why : "the connection was lost");

	if (q->cur_state == STMTQ_SENT) {
		q->cur_state = STMTQ_IDLE;
		result_reset(&q->cur.r);
		q->cur.done(q->cur.arg, q->cur.tag, &lost);
	}
	struct stmtq_stmt *s = q->head;
	q->head = q->tail = NULL;
	while (s) {
		struct stmtq_stmt *next = s->next;
		s->done(s->arg, s->tag, &lost);
		stmt_free(s);
		s = next;
	}
}

/* (the result is clean: every statement's is reset as it completes or is lost) */
static void start(struct stmtq *q, int tag, stmtq_each_fn each, stmtq_done_fn done, void *arg)
{
	q->cur.tag = tag;
	q->cur.done = done;
	q->cur.each = each;
	q->cur.arg = arg;
	q->cur_state = STMTQ_SENT;
}

/* Send a statement now (connected and idle). False if the connection failed. */
static bool send_now(struct stmtq *q, int tag, const char *sql, int n, const char *const *params,
                     int64_t deadline_ms, stmtq_done_fn done, void *arg)
{
	start(q, tag, NULL, done, arg);
	if (!conndrv_send(&q->drv, sql, n, params, deadline_ms)) {
		stmtq_fail(q, NULL, 0);
		return false;
	}
	return true;
}

/* Send the waiting statements' head while connected and idle. */
static void pump(struct stmtq *q)
{
	while (q->head && q->cur_state == STMTQ_IDLE && q->drv.state == CONNDRV_READY) {
		struct stmtq_stmt *s = q->head;
		q->head = s->next;
		if (!q->head)
			q->tail = NULL;
		(void)send_now(q, s->tag, s->sql, s->n, (const char *const *)s->params,
		               s->deadline_ms, s->done, s->arg);
		stmt_free(s);
	}
}

/* The statement in flight is complete (a pushed one's last result was read, or the owner of
 * one it wrote itself says so): its callback, then the next statement. */
void stmtq_end(struct stmtq *q)
{
	if (q->cur_state != STMTQ_SENT)
		return;
	conndrv_idle(&q->drv);
	q->last_arg = q->cur.arg;
	q->cur_state = STMTQ_COMPLETING;
	q->cur.done(q->cur.arg, q->cur.tag, &q->cur.r);
	q->cur_state = STMTQ_IDLE;
	result_reset(&q->cur.r);
	if (q->drv.state != CONNDRV_READY)
		return;
	if (q->head) /* pushed while it ran, or behind it */
		pump(q);
	if (!stmtq_busy(q) && q->drv.state == CONNDRV_READY && q->ops->idle)
		q->ops->idle(q->arg);
}

/* Gather one result of a pushed statement. */
static void gather(struct stmtq *q, PGresult *r)
{
	struct stmtq_result *g = &q->cur.r;
	ExecStatusType s = PQresultStatus(r);

	if (s == PGRES_TUPLES_OK && !g->res && !g->failed) {
		g->rows += atoll(PQcmdTuples(r));
		g->res = r; /* kept for the callback */
		return;
	}
	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		g->rows += atoll(PQcmdTuples(r));
	else if (stmtq_note_error(q, r) && s == PGRES_FATAL_ERROR) {
		g->err_res = r; /* kept for the callback */
		return;
	}
	PQclear(r);
}

/* ---- the driver's callbacks ------------------------------------------------------------ */

/* The driver's readable(): what the server sent is read in. */
static void on_readable(void *arg)
{
	struct stmtq *q = arg;

	while (q->drv.conn && q->cur_state == STMTQ_SENT && !PQisBusy(q->drv.conn)) {
		PGresult *r = PQgetResult(q->drv.conn);
		if (q->cur.each) {
			q->cur.each(q->cur.arg, q->cur.tag, r); /* may end it, and send the next */
			PQclear(r);
			continue;
		}
		if (!r) {
			stmtq_end(q); /* may send the next */
			continue;
		}
		gather(q, r);
	}
	PGnotify *nt;
	while (q->ops->notify && q->drv.conn && (nt = PQnotifies(q->drv.conn)) != NULL) {
		q->ops->notify(q->arg, nt->relname, nt->extra ? nt->extra : "");
		PQfreemem(nt);
	}
	if (q->drv.conn && PQstatus(q->drv.conn) == CONNECTION_BAD)
		stmtq_fail(q, NULL, 0);
}

static void on_connected(void *arg)
{
	struct stmtq *q = arg;

	conndrv_succeeded(&q->drv);
	q->ops->connected(q->arg);
	pump(q);
}

static void on_failed(void *arg, const char *why, bool was_ready)
{
	struct stmtq *q = arg;
	int64_t retry_ms = q->next_retry_ms;

	q->next_retry_ms = 0;
	conndrv_close(&q->drv);
	lose_all(q, why);
	if (q->ops->failed(q->arg, why, was_ready))
		conndrv_retry(&q->drv, retry_ms > 0 ? retry_ms : CONNDRV_BACKOFF);
}

static void on_check(void *arg)
{
	struct stmtq *q = arg;

	if (q->ops->check)
		q->ops->check(q->arg);
}

static void on_retry(void *arg)
{
	struct stmtq *q = arg;

	if (q->drv.state == CONNDRV_DOWN)
		stmtq_connect(q, q->conninfo, q->app_name);
}

static const struct conndrv_ops drv_ops = {
    .connected = on_connected,
    .readable = on_readable,
    .failed = on_failed,
    .retry = on_retry,
};

/* The same with the idle connection check. */
static const struct conndrv_ops drv_ops_checked = {
    .connected = on_connected,
    .readable = on_readable,
    .failed = on_failed,
    .check = on_check,
    .retry = on_retry,
};

/* ---- the owner's calls ----------------------------------------------------------------- */

void stmtq_init(struct stmtq *q, struct event_base *base, const struct stmtq_ops *ops, void *arg,
                const char *label, int64_t check_ms)
{
	memset(q, 0, sizeof(*q));
	q->ops = ops;
	q->arg = arg;
	conndrv_init(&q->drv, base, ops->check ? &drv_ops_checked : &drv_ops, q, label,
	             PGCONN_NOTICES_PER_MIN, 60000, check_ms);
}

void stmtq_connect(struct stmtq *q, const char *conninfo, const char *application_name)
{
	q->conninfo = conninfo;
	if (application_name != q->app_name)
		snprintf(q->app_name, sizeof(q->app_name), "%s", application_name);
	(void)conndrv_connect(&q->drv, conninfo, q->app_name);
}

void stmtq_close(struct stmtq *q)
{
	conndrv_close(&q->drv);
	if (q->cur_state == STMTQ_SENT)
		q->cur_state = STMTQ_IDLE;
	result_reset(&q->cur.r);
	while (q->head) {
		struct stmtq_stmt *s = q->head;
		q->head = s->next;
		stmt_free(s);
	}
	q->tail = NULL;
}

void stmtq_fail(struct stmtq *q, const char *why, int64_t retry_ms)
{
	q->next_retry_ms = retry_ms;
	conndrv_fail(&q->drv, why);
}

static void forgotten(void *arg, int tag, const struct stmtq_result *r)
{
	(void)arg;
	(void)tag;
	(void)r;
}

void stmtq_forget(struct stmtq *q, const void *arg)
{
	struct stmtq_stmt **pp = &q->head;
	q->tail = NULL;
	while (*pp) {
		struct stmtq_stmt *s = *pp;
		if (s->arg == arg) {
			*pp = s->next;
			stmt_free(s);
			continue;
		}
		q->tail = s;
		pp = &s->next;
	}
	if (q->cur_state == STMTQ_IDLE || q->cur.arg != arg)
		return;
	q->cur.done = forgotten;
	q->cur.arg = NULL;
	if (q->cur.each && q->cur_state == STMTQ_SENT) {
		q->cur.each = NULL;
		stmtq_fail(q, "its statement's owner went away", 0);
	}
}

bool stmtq_push(struct stmtq *q, int tag, const char *sql, int n, const char *const *params,
                int64_t deadline_ms, stmtq_done_fn done, void *arg)
{
	if (!stmtq_busy(q) && q->drv.state == CONNDRV_READY)
		return send_now(q, tag, sql, n, params, deadline_ms, done, arg);
	struct stmtq_stmt *s = calloc(1, sizeof(*s));
	if (!s || !(s->params = calloc(n > 0 ? (size_t)n : 1, sizeof(*s->params)))) {
		free(s);
		return false;
	}
	*s = (struct stmtq_stmt){.tag = tag,
	                         .sql = sql,
	                         .params = s->params,
	                         .deadline_ms = deadline_ms,
	                         .done = done,
	                         .arg = arg};
	for (; s->n < n; s->n++)
		if (params[s->n] && !(s->params[s->n] = strdup(params[s->n]))) {
			stmt_free(s);
			return false;
		}
	if (q->tail)
		q->tail->next = s;
	else
		q->head = s;
	q->tail = s; /* (busy or down: it waits) */
	return true;
}
bool stmtq_begin(struct stmtq *q, int tag, int64_t deadline_ms, stmtq_each_fn each,
                 stmtq_done_fn done, void *arg)
{
	start(q, tag, each, done, arg);
	conndrv_busy(&q->drv, deadline_ms);
	if (!conndrv_flush(&q->drv)) {
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
	return q->cur_state != STMTQ_IDLE || q->head;
}

bool stmtq_failed(const struct stmtq *q)
{
	return q->cur.r.failed;
}

PGconn *stmtq_conn(const struct stmtq *q)
{
	return q->drv.conn;
}

bool stmtq_ready(const struct stmtq *q)
{
	return q->drv.state == CONNDRV_READY;
}
