/* A run as a record (exec_priv.h): given its connection (exec_run_attach), its statements'
 * results taken into its outcome, the rows of a COPY read and dropped, failed, completed
 * (reported from the loop, never re-entrantly: exec_run_report) and freed. Sending its
 * statements and reading their answers is exec_drive.c's. And the connections and pools as
 * records: a connection's error text, its flush and its close, a pool's queue of waiting runs,
 * the pools by name. The bottom of the executor: every other file calls these, and these call
 * none of them. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cancel.h"
#include "clock.h"
#include "conndrv.h"
#include "duration.h"
#include "exec.h"
#include "exec_priv.h"
#include "pgconn.h"
#include "text.h"

/* ---- pure helpers --------------------------------------------------------------------- */

/* libpq's messages end in a newline and may continue on tab-indented lines ("Is the server
 * running locally ..."); a return_message is one line. */
static char *one_line(const char *text)
{
	char *s = strdup(text ? text : "");
	if (!s)
		return NULL;
	size_t w = 0;
	bool space = false;
	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
			space = w > 0;
			continue;
		}
		if (space) {
			s[w++] = ' ';
			space = false;
		}
		s[w++] = s[i];
	}
	s[w] = '\0';
	return s;
}

/* ---- its phases ----------------------------------------------------------------------- */

static const char *const phase_names[] = {
    [EXEC_WAITING] = "waiting for a connection",
    [EXEC_HELD] = "held",
    [EXEC_SETTING] = "setting its timeout",
    [EXEC_ON_CONN] = "on its connection",
    [EXEC_COPY_OUT] = "reading a COPY",
    [EXEC_COMMIT_WAIT] = "waiting to commit",
    [EXEC_UNWRAP_PENDING] = "rolled back, its id's answer to come",
    [EXEC_UNWRAP_CALLING] = "rolled back, telling its id",
    [EXEC_UNWRAP_WAITING] = "rolled back, waiting to go again",
    [EXEC_DONE] = "done",
};
_Static_assert(sizeof(phase_names) / sizeof(phase_names[0]) == EXEC_DONE + 1, "phase_names");

/* (GCC's -Warray-bounds at -O2 cannot see that a phase is at most EXEC_DONE) */
static const char *phase_name(enum exec_phase p)
{
	return (unsigned)p <= EXEC_DONE ? phase_names[p] : "(unknown)";
}

/* The moves a run's phase may make (exec_priv.h, enum exec_phase). */
static bool phase_may(enum exec_phase from, enum exec_phase to)
{
	switch (from) {
	case EXEC_WAITING: /* given a connection (exec_run_attach), or stopped */
		return to == EXEC_ON_CONN || to == EXEC_DONE;
	case EXEC_HELD:           /* released (exec_release), or stopped, or its connection lost */
	case EXEC_SETTING:        /* its set_config() answered */
	case EXEC_COPY_OUT:       /* the COPY's data is over */
	case EXEC_COMMIT_WAIT:    /* released: COMMIT, or fail */
	case EXEC_UNWRAP_PENDING: /* released: the id is told (UNWRAP_CALLING), or it fails */
	case EXEC_UNWRAP_WAITING: /* released: sent again, or it fails */
		return to == EXEC_ON_CONN || to == EXEC_DONE;
	case EXEC_UNWRAP_CALLING: /* on_xid() did not release it */
		return to == EXEC_UNWRAP_WAITING || to == EXEC_ON_CONN || to == EXEC_DONE;
	case EXEC_ON_CONN: /* back in the queue: its carried statement was skipped */
		return to == EXEC_WAITING || to == EXEC_HELD || to == EXEC_SETTING ||
		       to == EXEC_COPY_OUT || to == EXEC_COMMIT_WAIT || to == EXEC_UNWRAP_PENDING ||
		       to == EXEC_UNWRAP_CALLING || to == EXEC_DONE;
	case EXEC_DONE:
		return false;
	}
	return false;
}

bool exec_run_to(struct exec_run *r, enum exec_phase to)
{
	if (!phase_may(r->phase, to)) {
		log_error("job %s: internal error: a run %s cannot become %s; please report it",
		          r->name ? r->name : "(pgcrond's own)", phase_name(r->phase),
		          phase_name(to));
		return false;
	}
	r->phase = to;
	return true;
}

bool exec_run_parked(const struct exec_run *r)
{
	switch (r->phase) {
	case EXEC_HELD:
	case EXEC_COMMIT_WAIT:
	case EXEC_UNWRAP_PENDING:
	case EXEC_UNWRAP_CALLING:
	case EXEC_UNWRAP_WAITING:
		return true;
	case EXEC_WAITING:
	case EXEC_SETTING:
	case EXEC_ON_CONN:
	case EXEC_COPY_OUT:
	case EXEC_DONE:
		return false;
	}
	return false;
}

/* ---- a run on its connection ---------------------------------------------------------- */

/* C is R's from now on. */
void exec_run_attach(struct exec_run *r, struct conn *c)
{
	exec_run_to(r, EXEC_ON_CONN);
	r->conn = c;
	r->attach_us = clock_wall_us();
	/* a connection opened while the run waited: the connect was part of its wait */
	if (c->runs_served++ == 0 && c->open_us >= r->start_us)
		r->connect_us = c->connected_us - c->open_us;
	c->state = CONN_BUSY;
	c->run = r;
	conndrv_busy(&c->drv, 0); /* a busy connection answers to its run's timeout instead */
	r->pid = PQbackendPID(c->drv.conn);
	if (c->drv.notices.logged) /* what came while idle is not the job's */
		pgconn_notices_flush(&c->drv.notices);
	c->drv.notices.job = r->name;
	if (r->cb.on_pid && r->pid > 0)
		r->cb.on_pid(r->cb.arg, r->pid);
	r->read.cur = 0;
	r->read.rows = 0;
}

void exec_run_take_result(struct exec_run *r, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	char buf[256];

	if (r->read.xid_pending) {
		if ((st == PGRES_SINGLE_TUPLE || st == PGRES_TUPLES_OK) && PQntuples(res) == 1 &&
		    PQnfields(res) == 2 && !PQgetisnull(res, 0, 0) && r->cb.on_xid)
			r->cb.on_xid(r->cb.arg, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
			             false);
		return;
	}
	if (r->xact == XACT_BEGIN && st == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    PQnfields(res) == 2) {
		if (!PQgetisnull(res, 0, 0)) { /* (a standby gives none: nothing to wait for) */
			r->held = true; /* no COMMIT before exec_release(), which may come now */
			r->cb.on_xid(r->cb.arg, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), true);
		}
		return;
	}
	/* BEGIN, COMMIT and ROLLBACK answer for pgcrond, not for the run's statements */
	if (r->xact != XACT_NONE && r->xact != XACT_USER && st == PGRES_COMMAND_OK)
		return;
	if (r->phase == EXEC_SETTING) {
		if (st == PGRES_TUPLES_OK) {
			r->conn->timeout_ms = r->timeout_ms;
			snprintf(r->conn->app_name, sizeof(r->conn->app_name), "%s", r->app_name);
		} else if (!r->out.failed)
			goto error;
		return;
	}
	switch ((int)st) { /* (libpq's statuses) */
	case PGRES_SINGLE_TUPLE:
		r->read.rows++;
		if (r->cb.on_row && !r->out.failed) {
			const char *vals[16];
			int nf = PQnfields(res) < 16 ? PQnfields(res) : 16;
			for (int i = 0; i < nf; i++)
				vals[i] = PQgetisnull(res, 0, i) ? NULL : PQgetvalue(res, 0, i);
			r->cb.on_row(r->cb.arg, nf, vals);
		}
		return;
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
	case PGRES_EMPTY_QUERY:
		if (r->out.failed)
			return;
		/* return_message as pg_cron writes it: "N row(s)" for a query, the command tag
		 * ("INSERT 0 1") for a command; in single-row mode the set ends with an empty
		 * TUPLES_OK, and the next set starts counting afresh */
		if (st == PGRES_TUPLES_OK) {
			long n = r->read.rows + (long)PQntuples(res);
			snprintf(buf, sizeof(buf), "%ld %s", n, n == 1 ? "row" : "rows");
		} else {
			text_copy(buf, sizeof(buf),
			          PQcmdStatus(res)); /* every run's: no snprintf */
		}
		r->read.rows = 0;
		free(r->out.message);
		r->out.message = strdup(buf);
		return;
	default:
		break;
	}
error:
	if (r->out.failed)
		return; /* the first error is the one to report */
	r->out.failed = true;
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	/* the whole message, with the server's DETAIL and HINT (which key is duplicated, what
	 * to do); sized to fit, since the history row keeps it all */
	const char *fields[] = {PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
	                        PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL),
	                        PQresultErrorField(res, PG_DIAG_MESSAGE_HINT)};
	size_t need = 64 + strlen(PQresultErrorMessage(res));
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		need += fields[i] ? strlen(fields[i]) : 0;
	char *text = malloc(need);
	free(r->out.message);
	r->out.message = text ? one_line(pgconn_result_error(res, text, need)) : NULL;
	free(text);
	snprintf(r->out.sqlstate, sizeof(r->out.sqlstate), "%s", state ? state : "");
	const char *where = PQresultErrorField(res, PG_DIAG_SOURCE_FUNCTION);
	r->read.parse_refused = where && strcmp(where, "exec_parse_message") == 0;
	if (!r->stop.msg && state && strcmp(state, "57014") == 0 && r->timeout_ms > 0 &&
	    strstr(r->out.message ? r->out.message : "", "statement timeout"))
		r->out.timed_out = true;
}

/* Read and drop the rows of a COPY TO STDOUT (a job has nowhere to put them; the command
 * tag still counts them). Never blocks: returns 1 when the data is over and PQgetResult has
 * the COPY's own result, 0 when the socket must be read first, -1 if the connection broke. */
int exec_run_drain_copy(struct exec_run *r)
{
	for (;;) {
		char *data = NULL;
		int n = PQgetCopyData(r->conn->drv.conn, &data, 1);
		if (n > 0) {
			PQfreemem(data);
			continue;
		}
		if (n == 0)
			return 0;
		if (n == -1) {
			exec_run_to(r, EXEC_ON_CONN);
			return 1;
		}
		return -1;
	}
}

/* A statement entered a COPY state (ST). COPY TO STDOUT is drained by exec_run_read; COPY FROM
 * STDIN and COPY BOTH need a client that sends data, which a job does not have: the run
 * fails with that reason. Returns false if the connection must be dropped. */
bool exec_run_start_copy(struct exec_run *r, ExecStatusType st)
{
	struct conn *c = r->conn;
	const char *why;

	switch ((int)st) { /* (libpq's statuses) */
	case PGRES_COPY_OUT:
		exec_run_to(r, EXEC_COPY_OUT);
		return true;
	case PGRES_COPY_IN:
		why = "COPY FROM STDIN needs a client to send data; pgcrond has none";
		break;
	default:
		why = "COPY BOTH (replication) needs a client to stream with; pgcrond has none";
		break;
	}
	if (!r->out.failed) {
		/* The first error is the one reported: the server's answer to the CopyFail below
		 * ("COPY from stdin failed", 57014) would read like a cancel. */
		r->out.failed = true;
		free(r->out.message);
		r->out.message = strdup(why);
		snprintf(r->out.sqlstate, sizeof(r->out.sqlstate), "0A000");
	}
	if (st != PGRES_COPY_IN)
		return false; /* a replication stream has no clean end: close the connection */
	/* End the COPY with an error; the server then answers and the connection is reusable. */
	if (PQputCopyEnd(c->drv.conn, why) != 1)
		return false;
	return conndrv_flush(&c->drv);
}

/* ---- its end -------------------------------------------------------------------------- */

void exec_run_fail(struct exec_run *r, const char *message, const char *sqlstate)
{
	if (r->phase == EXEC_DONE)
		return;
	/* Keep an error already recorded (the first one is reported), but not the tag of an
	 * earlier statement that succeeded ("SELECT 1; COPY ..." losing its connection). */
	if (!r->out.failed || !r->out.message) {
		free(r->out.message);
		r->out.message = strdup(message ? message : "");
		snprintf(r->out.sqlstate, sizeof(r->out.sqlstate), "%s", sqlstate ? sqlstate : "");
	}
	r->out.failed = true;
	exec_run_complete(r);
}

/* The run has ended (its connection already released): report it from the loop (done_ev, at
 * the connections' priority: in the same pass of the loop, after the callbacks of the
 * other connections whose answers were read with it, so their next statements go out
 * before the runs' owners are told; the owners may then submit runs, cancel others, and
 * close or take connections). */
void exec_run_complete(struct exec_run *r)
{
	if (r->phase == EXEC_DONE)
		return;
	exec_run_to(r, EXEC_DONE);
	r->conn = NULL;
	event_del(&r->stop.timer_ev);
	/* However the statement died (cancelled, terminated, connection closed), say why we
	 * stopped it, or that the server's statement_timeout did. */
	char d[32], buf[128];
	const char *why = r->stop.msg;
	if (!why && r->out.failed && r->out.timed_out && r->timeout_ms > 0) {
		duration_format(r->timeout_ms, d, sizeof(d));
		snprintf(buf, sizeof(buf), "timed out after %s; the statement was cancelled", d);
		why = buf;
	}
	if (why) {
		r->out.failed = true;
		free(r->out.message);
		r->out.message = strdup(why);
		snprintf(r->out.sqlstate, sizeof(r->out.sqlstate), "57014");
	} else if (!r->out.failed && !r->out.message) {
		r->out.message = strdup("");
	}
	event_active(&r->done_ev, 0, 0);
}

void exec_run_report(struct exec_run *r)
{
	struct exec *ex = r->ex;
	struct exec_outcome o = {
	    .ok = !r->out.failed,
	    .timed_out = r->out.timed_out,
	    .cancelled = r->out.cancelled,
	    .message = r->out.message ? r->out.message : "",
	    .sqlstate = r->out.failed ? r->out.sqlstate : NULL,
	    .backend_pid = r->pid,
	    .unknown_commit = r->out.unknown_commit,
	    .duration_us = clock_wall_us() - r->start_us,
	    .wait_us = r->attach_us ? r->attach_us - r->start_us : 0,
	    .connect_us = r->connect_us,
	    .carried = r->carried,
	};
	LIST_REMOVE(r, link.all);
	ex->n_runs--;
	if (r->cb.on_done)
		r->cb.on_done(r->cb.arg, &o); /* may submit more runs */
	exec_run_free(&r);
	if (ex->n_runs == 0 && ex->on_drained)
		event_active(&ex->drained_ev, 0, 0);
}

void exec_run_free(struct exec_run **rp)
{
	struct exec_run *r = *rp;
	if (!r)
		return;
	event_del(&r->stop.timer_ev);
	event_del(&r->done_ev);
	if (r->stop.req) /* a cancel request still under way */
		cancel_forget(r->stop.req);
	for (size_t i = 0; i < r->n_stmts; i++) {
		free(r->stmts[i].sql);
		for (int j = 0; j < r->stmts[i].n_params; j++)
			free(r->stmts[i].params[j]);
		free(r->stmts[i].params);
	}
	if (r->stmts != &r->one)
		free(r->stmts);
	free(r->stop.msg);
	free(r->commit_refused);
	free(r->out.message);
	free(r->name);
	free(r);
	*rp = NULL;
}

/* ---- connections ---------------------------------------------------------------------- */

/* libpq's error for the connection as one line (malloc'd; NULL if out of memory). */
char *exec_conn_error(const PGconn *pg, const char *conninfo)
{
	char buf[1024];
	/* the password scrubbed: libpq may quote a malformed connection string */
	return strdup(pgconn_error_safe(pg, conninfo, buf, sizeof(buf)));
}

static void conn_unreserve(struct conn *c)
{
	struct exec_run *r = c->reset.next_run;
	if (!r)
		return;
	c->reset.next_run = NULL;
	r->link.reserved = NULL;
	exec_wait_push_front(c->pool, r);
}

void exec_conn_close(struct conn **cp)
{
	struct conn *c = *cp;
	if (!c)
		return;
	struct exec_pool *p = c->pool;
	conn_unreserve(c);
	conndrv_close(&c->drv);
	if (c->state == CONN_CONNECTING)
		p->n_connecting--;
	LIST_REMOVE(c, in_pool);
	p->n_conns--;
	free(c);
	*cp = NULL;
}

bool exec_conn_idle_expired(const struct conn *c)
{
	const struct exec_pool *p = c->pool;
	return c->state == CONN_IDLE && p->idle_timeout_ms > 0 &&
	       clock_mono_us() - c->used_us >= p->idle_timeout_ms * 1000;
}

/* ---- pools ---------------------------------------------------------------------------- */

void exec_wait_remove(struct exec_run *r)
{
	TAILQ_REMOVE(&r->pool->waiting, r, link.wait);
	r->pool->n_waiting--;
}

/* A run reserved by a connection that will not serve it after all (conn_unreserve), or whose
 * statement the server skipped (exec_run_unsend), goes back to the head of the queue, where it
 * was. */
void exec_wait_push_front(struct exec_pool *p, struct exec_run *r)
{
	TAILQ_INSERT_HEAD(&p->waiting, r, link.wait);
	p->n_waiting++;
}

struct conn *exec_pool_idle(struct exec_pool *p, enum conn_state state)
{
	for (struct conn *c = LIST_FIRST(&p->conns), *next; c; c = next) {
		next = LIST_NEXT(c, in_pool);
		if (c->state != state || c->generation != p->generation || c->tainted)
			continue;
		/* whatever the server sent it is read now, without blocking, and parsed: EOF, or
		 * the FATAL it sends before it closes (pgconn_notices.fatal), which may have come
		 * with the last run's answer, the close still on its way */
		PGconn *pg = c->drv.conn;
		if (PQconsumeInput(pg) && !PQisBusy(pg) && !c->drv.notices.fatal &&
		    PQstatus(pg) == CONNECTION_OK && PQtransactionStatus(pg) == PQTRANS_IDLE)
			return c;
		exec_conn_close(&c);
	}
	return NULL;
}

struct exec_pool *exec_pool_find(struct exec *ex, const char *name)
{
	for (struct exec_pool *p = ex->pools; p; p = p->next)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}
