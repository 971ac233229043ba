/* The executor: per-database pools of async libpq connections on the daemon's event_base.
 *
 * Each connection is driven by conndrv.c (connect, deadlines, socket, liveness check); here
 * it is CONNECTING, IDLE (in its pool, watched for EV_READ so that a server-side close is
 * noticed), BUSY with one run, or
 * RESETTING: after every run, before it is idle again, its session goes back to the
 * connection's defaults (exec_conn_reset), so that no run sees what an earlier one left. A run
 * waits in its pool's queue until a connection is free; pools open connections on demand up
 * to their size and back off exponentially after a failed attempt. Nothing here blocks:
 * a statement is cancelled through its connection's cancel key by cancel.c's worker
 * threads (PQcancel() connects synchronously), never by pid from another connection,
 * which behind a pooler or after a failover may be another session. */
#include "exec.h"
#include "exec_priv.h"

#include <errno.h>
#include <limits.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cancel.h"
#include "clock.h"
#include "config.h"
#include "conndrv.h"
#include "duration.h"
#include "log.h"
#include "pgconn.h"
#include "sqlscan.h"

/* After asking the backend to cancel, wait this long before asking again (a request that
 * reached the server between two statements of the backend is lost), and as long again
 * before giving up on the connection altogether. */
#define ESCALATE_MS 3000
/* The client-side timer trails the server's statement_timeout slightly, so that the server
 * normally stops the statement itself and the connection stays usable. */
#define CLIENT_TIMEOUT_SLACK_MS 500

static void run_next_step(struct exec_run *r);
static void run_stop(struct exec_run *r, const char *message, bool timed_out);
static void timer_cb(evutil_socket_t fd, short what, void *arg);

struct timeval exec_ms_tv(int64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	return tv;
}

/* ---- pure helpers --------------------------------------------------------------------- */

void exec_format_success(bool tuples, long ntuples, const char *cmd_status, char *out,
                         size_t outlen)
{
	if (tuples)
		snprintf(out, outlen, "%ld %s", ntuples, ntuples == 1 ? "row" : "rows");
	else
		snprintf(out, outlen, "%s", cmd_status ? cmd_status : "");
}

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

/* ---- running statements --------------------------------------------------------------- */

/* The run's connection broke: discard it and fail the run with WHY (libpq's reason if
 * NULL). */
void exec_run_conn_lost(struct exec_run *r, const char *why)
{
	struct conn *c = r->conn;
	char *err = why ? strdup(why) : exec_conn_error(c->drv.conn, c->pool->conninfo);
	r->conn = NULL;
	exec_conn_release(c, true);
	exec_run_fail(r, err && *err ? err : "connection to the server was lost", "08006");
	free(err);
}

/* After a send: wait for the answer, and for the socket to take the rest if libpq could not
 * flush it all. Returns false when the connection is broken. */
static bool run_flush(struct exec_run *r)
{
	return exec_conn_flush(r->conn);
}

/* C is R's from now on. */
void exec_run_attach(struct exec_run *r, struct conn *c)
{
	r->state = RUN_ACTIVE;
	r->conn = c;
	r->attach_us = clock_wall_us();
	/* a connection opened while the run waited: the connect was part of its wait */
	if (c->runs_served++ == 0 && c->open_us >= r->start_us)
		r->connect_us = c->connected_us - c->open_us;
	c->state = CONN_BUSY;
	c->run = r;
	conndrv_busy(&c->drv, 0); /* a busy connection answers to its run's timeout instead */
	r->pid = PQbackendPID(c->drv.conn);
	pgconn_notices_flush(&c->drv.notices); /* what came while idle is not the job's */
	c->drv.notices.job = r->name;
	if (r->on_pid && r->pid > 0)
		r->on_pid(r->arg, r->pid);
	r->cur = 0;
	r->rows = 0;
	r->setting_timeout = false;
}

/* R's first statement on its connection, after a set_config() of its timeout and name if
 * the session's differ: in one pipeline (one round trip) when the statement may follow
 * another (exec_conn_carry), else one after the other. */
static void run_send_first(struct exec_run *r)
{
	struct conn *c = r->conn;
	if (r->held) {
		r->hold_waiting = true; /* exec_release() sends it, or ends it */
		return;
	}
	bool app = r->app_name[0] && strcmp(c->app_name, r->app_name) != 0;
	/* an id to report: the statement goes in a pipeline after it (exec_conn_carry), and the
	 * set_config() that opens the pipeline costs no round trip of its own */
	bool xid = r->on_xid && exec_run_may_carry(r);
	if ((r->timeout_ms >= 0 && c->timeout_ms != r->timeout_ms) || app || xid) {
		const char *params[2] = {r->timeout_text, r->app_name};
		const char *sql = app ? SET_RUN_SQL : SET_TIMEOUT_SQL;
		if (exec_run_may_carry(r) && PQenterPipelineMode(c->drv.conn)) {
			/* read as the last step of a reset whose first part is answered */
			c->reset_step = RESET_STEPS - 1;
			c->reset_no_set = false;
			c->reset_syncs = RESET_SYNCS - 1;
			c->reset_failed = false;
			c->reset_timeout_ms = r->timeout_ms;
			snprintf(c->reset_app, sizeof(c->reset_app), "%s",
			         app ? r->app_name : c->app_name);
			if (!PQsendQueryParams(c->drv.conn, sql, app ? 2 : 1, NULL, params, NULL,
			                       NULL, 0) ||
			    !exec_conn_carry(c, r) || !PQpipelineSync(c->drv.conn) || !run_flush(r))
				exec_run_conn_lost(r, NULL);
			return;
		}
		r->setting_timeout = true;
		if (!PQsendQueryParams(c->drv.conn, sql, app ? 2 : 1, NULL, params, NULL, NULL,
		                       0) ||
		    !run_flush(r))
			exec_run_conn_lost(r, NULL);
		return;
	}
	run_next_step(r);
}

void exec_run_start_on(struct exec_run *r, struct conn *c)
{
	exec_run_attach(r, c);
	run_send_first(r);
}

/* The run's last statement is done (or it failed): a transaction it left open is never
 * committed for it. pg_cron's fresh connection would have rolled it back at disconnect, so
 * the run failed whatever its statements said; the reset rolls it back. */
static void run_finish(struct exec_run *r)
{
	struct conn *c = r->conn;
	PGTransactionStatusType ts = PQtransactionStatus(c->drv.conn);

	/* (in a transaction pgcrond opened, what is left open is its own to roll back) */
	if ((ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) && !r->cancel_msg &&
	    r->xact == XACT_NONE) {
		const char *why = "the run left a transaction open (no COMMIT); its work was "
		                  "rolled back";
		if (!r->failed) {
			free(r->message);
			r->message = strdup(why);
			snprintf(r->sqlstate, sizeof(r->sqlstate), "25001");
		} else {
			/* keep the error that aborted the transaction first, and say what became
			 * of the transaction */
			char *m = NULL;
			if (asprintf(&m, "%s; the transaction it left open was rolled back",
			             r->message ? r->message : "") >= 0) {
				free(r->message);
				r->message = m;
			}
		}
		r->failed = true;
	}
	r->conn = NULL;
	exec_conn_release(c, false);
	exec_run_complete(r);
}

/* The statements of a run in its own transaction (spec.own_xact) are done: COMMIT, once
 * exec_release() said so; else wait for it, or fail (the reset rolls the transaction
 * back). */
static void run_commit(struct exec_run *r)
{
	if (r->held) {
		r->xact = XACT_COMMIT_WAIT; /* exec_release() goes on */
		return;
	}
	if (r->commit_refused) {
		char *m = NULL;
		r->failed = true;
		free(r->message);
		r->message = asprintf(&m, "rolled back: %s", r->commit_refused) >= 0 ? m : NULL;
		snprintf(r->sqlstate, sizeof(r->sqlstate), "08006");
		run_finish(r);
		return;
	}
	r->xact = XACT_COMMIT;
	if (!PQsendQuery(r->conn->drv.conn, "COMMIT") || !run_flush(r))
		exec_run_conn_lost(r, NULL);
}

/* Send statement r->cur, or finish the run when there is none left. A run in its own
 * transaction: BEGIN and the id first (XACT_BEGIN), its statement (XACT_USER), then
 * COMMIT (run_commit). */
static void run_next_step(struct exec_run *r)
{
	struct conn *c = r->conn;
	if (r->cur >= r->n_stmts || r->cancel_msg) {
		if (r->cancel_msg)
			r->failed = true;
		if (!r->failed && r->xact == XACT_USER)
			run_commit(r);
		else
			run_finish(r);
		return;
	}
	if (r->xact == XACT_PLANNED) {
		r->xact = XACT_BEGIN;
		if (!PQsendQuery(c->drv.conn, "BEGIN; " XID_SQL) || !run_flush(r))
			exec_run_conn_lost(r, NULL);
		return;
	}
	struct run_stmt *s = &r->stmts[r->cur];
	c->guard_reset = true;
	int sent = s->simple ? PQsendQuery(c->drv.conn, s->sql)
	                     : PQsendQueryParams(c->drv.conn, s->sql, s->n_params, NULL,
	                                         (const char *const *)s->params, NULL, NULL, 0);
	/* Rows arrive one at a time and are counted, never held: a job that returns 300 MB
	 * costs the daemon one row's memory. */
	r->rows = 0;
	if (sent)
		PQsetSingleRowMode(c->drv.conn);
	if (!sent || !run_flush(r))
		exec_run_conn_lost(r, NULL);
}

static void run_take_result(struct exec_run *r, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	char buf[256];

	if (r->xid_pending) {
		if ((st == PGRES_SINGLE_TUPLE || st == PGRES_TUPLES_OK) && PQntuples(res) == 1 &&
		    PQnfields(res) == 2 && !PQgetisnull(res, 0, 0) && r->on_xid)
			r->on_xid(r->arg, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), false);
		return;
	}
	if (r->xact == XACT_BEGIN && st == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    PQnfields(res) == 2) {
		if (!PQgetisnull(res, 0, 0)) { /* (a standby gives none: nothing to wait for) */
			r->held = true; /* no COMMIT before exec_release(), which may come now */
			r->on_xid(r->arg, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), true);
		}
		return;
	}
	/* BEGIN, COMMIT and ROLLBACK answer for pgcrond, not for the run's statements */
	if (r->xact != XACT_NONE && r->xact != XACT_USER && st == PGRES_COMMAND_OK)
		return;
	if (r->setting_timeout) {
		if (st == PGRES_TUPLES_OK) {
			r->conn->timeout_ms = r->timeout_ms;
			snprintf(r->conn->app_name, sizeof(r->conn->app_name), "%s", r->app_name);
		} else if (!r->failed)
			goto error;
		return;
	}
	switch (st) {
	case PGRES_SINGLE_TUPLE:
		r->rows++;
		if (r->on_row && !r->failed) {
			const char *vals[16];
			int nf = PQnfields(res) < 16 ? PQnfields(res) : 16;
			for (int i = 0; i < nf; i++)
				vals[i] = PQgetisnull(res, 0, i) ? NULL : PQgetvalue(res, 0, i);
			r->on_row(r->arg, nf, vals);
		}
		return;
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
	case PGRES_EMPTY_QUERY:
		if (r->failed)
			return;
		/* in single-row mode the set ends with an empty TUPLES_OK; the next set starts
		 * counting afresh */
		exec_format_success(st == PGRES_TUPLES_OK, r->rows + (long)PQntuples(res),
		                    PQcmdStatus(res), buf, sizeof(buf));
		r->rows = 0;
		free(r->message);
		r->message = strdup(buf);
		return;
	default:
		break;
	}
error:
	if (r->failed)
		return; /* the first error is the one to report */
	r->failed = true;
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
	free(r->message);
	r->message = text ? one_line(pgconn_result_error(res, text, need)) : NULL;
	free(text);
	snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", state ? state : "");
	const char *where = PQresultErrorField(res, PG_DIAG_SOURCE_FUNCTION);
	r->parse_refused = where && strcmp(where, "exec_parse_message") == 0;
	if (!r->cancel_msg && state && strcmp(state, "57014") == 0 && r->timeout_ms > 0 &&
	    strstr(r->message ? r->message : "", "statement timeout"))
		r->timed_out = true;
}

/* Read and drop the rows of a COPY TO STDOUT (a job has nowhere to put them; the command
 * tag still counts them). Never blocks: returns 1 when the data is over and PQgetResult has
 * the COPY's own result, 0 when the socket must be read first, -1 if the connection broke. */
static int run_drain_copy(struct exec_run *r)
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
			r->copy_out = false;
			return 1;
		}
		return -1;
	}
}

/* A statement entered a COPY state (ST). COPY TO STDOUT is drained by exec_run_read; COPY FROM
 * STDIN and COPY BOTH need a client that sends data, which a job does not have: the run
 * fails with that reason. Returns false if the connection must be dropped. */
static bool run_start_copy(struct exec_run *r, ExecStatusType st)
{
	struct conn *c = r->conn;
	const char *why;

	switch (st) {
	case PGRES_COPY_OUT:
		r->copy_out = true;
		return true;
	case PGRES_COPY_IN:
		why = "COPY FROM STDIN needs a client to send data; pgcrond has none";
		break;
	default:
		why = "COPY BOTH (replication) needs a client to stream with; pgcrond has none";
		break;
	}
	if (!r->failed) {
		/* The first error is the one reported: the server's answer to the CopyFail below
		 * ("COPY from stdin failed", 57014) would read like a cancel. */
		r->failed = true;
		free(r->message);
		r->message = strdup(why);
		snprintf(r->sqlstate, sizeof(r->sqlstate), "0A000");
	}
	if (st != PGRES_COPY_IN)
		return false; /* a replication stream has no clean end: close the connection */
	/* End the COPY with an error; the server then answers and the connection is reusable. */
	if (PQputCopyEnd(c->drv.conn, why) != 1)
		return false;
	return exec_conn_flush(c);
}

/* The server skipped R's carried statement, because a step of the reset before it failed:
 * it never ran, so it waits for another connection (or ends, if it was stopped meanwhile),
 * and this one, whose reset failed, is closed. */
void exec_run_unsend(struct exec_run *r)
{
	struct conn *c = r->conn;
	struct pool *p = c->pool;
	c->run = NULL;
	r->conn = NULL;
	r->in_pipeline = r->sync_due = r->xid_pending = false;
	exec_conn_close(&c);
	if (r->cancel_msg) {
		exec_run_complete(r);
	} else {
		r->state = RUN_WAITING;
		exec_wait_push_front(p, r);
	}
	exec_pool_dispatch(p);
}

/* The server refused a carried statement at its Parse, as it refuses several statements in
 * one (what sqlscan could not see), before anything of it ran (a syntax error raised while
 * it runs, by a function's dynamic SQL, is the run's own); the set_config() before it was
 * rolled back with it. Send it again, as written. */
static bool run_uncarry(struct exec_run *r)
{
	struct run_stmt *st = &r->stmts[0];
	if (r->cur != 0 || !st->carry || !r->failed || !r->parse_refused ||
	    strcmp(r->sqlstate, "42601") != 0 || r->cancel_msg)
		return false;
	st->carry = false;
	if (r->on_xid)
		r->on_xid(r->arg, NULL, NULL, false);
	r->failed = false;
	free(r->message);
	r->message = NULL;
	r->sqlstate[0] = '\0';
	r->conn->timeout_ms = -1;
	r->conn->app_name[0] = '\0';
	run_send_first(r);
	return true;
}

/* A statement of R in its own transaction refused the transaction block (what sqlscan
 * could not see, as REINDEX SCHEMA): roll it back, then send the run's statement again, as
 * written, on its own; its id is not the run's. */
static bool run_unwrap(struct exec_run *r)
{
	if (r->xact != XACT_USER || !r->failed || strcmp(r->sqlstate, "25001") != 0 ||
	    r->cancel_msg || r->commit_refused)
		return false;
	r->xact = XACT_UNWRAP;
	if (!PQsendQuery(r->conn->drv.conn, "ROLLBACK") || !run_flush(r))
		exec_run_conn_lost(r, NULL);
	return true;
}

/* R's statement r->cur has all its answers. */
static void run_stmt_done(struct exec_run *r)
{
	if (r->setting_timeout) {
		r->setting_timeout = false;
		if (r->failed) {
			run_finish(r);
			return;
		}
		run_next_step(r);
		return;
	}
	switch (r->xact) {
	case XACT_BEGIN: /* its transaction is open: the run's statement, unless refused */
		r->xact = XACT_USER;
		if (r->failed)
			run_finish(r);
		else if (r->commit_refused)
			run_commit(r);
		else
			run_next_step(r);
		return;
	case XACT_COMMIT:
		run_finish(r);
		return;
	case XACT_UNWRAP: /* rolled back (its answer is not an error of the run's) */
		r->xact = XACT_NONE;
		r->held = false; /* what exec_release() says of the id no longer matters */
		r->failed = false;
		free(r->message);
		r->message = NULL;
		r->sqlstate[0] = '\0';
		r->on_xid(r->arg, NULL, NULL, false);
		run_next_step(r);
		return;
	default:
		break;
	}
	if (r->failed) {
		if (!run_uncarry(r) && !run_unwrap(r))
			run_finish(r);
		return;
	}
	r->cur++;
	run_next_step(r);
}

/* Read what the server sent; returns false if the connection broke. Returns to the loop
 * whenever libpq needs more input: PQisBusy() is false during a COPY, so the COPY state is
 * handled first and waits for EV_READ on its own. */
bool exec_run_read(struct exec_run *r)
{
	struct conn *c = r->conn;
	if (r->hold_waiting || r->xact == XACT_COMMIT_WAIT) {
		/* nothing is in flight: what came is a notice or a notification (the server's
		 * FATAL before it closes the connection arrives so), never the run's answer; a
		 * closed connection is a lost one */
		PGnotify *n;
		while ((n = PQnotifies(c->drv.conn)) != NULL)
			PQfreemem(n);
		return PQstatus(c->drv.conn) == CONNECTION_OK;
	}
	for (;;) {
		if (r->copy_out) {
			int d = run_drain_copy(r);
			if (d < 0)
				return false;
			if (d == 0)
				return true; /* more rows to come: wait for EV_READ */
		}
		if (PQisBusy(c->drv.conn))
			return true;
		PGresult *res = PQgetResult(c->drv.conn);
		if (!res) {
			if (r->xid_pending) {
				/* the id's answer is over: the statement's rows come one at a time
				 */
				r->xid_pending = false;
				PQsetSingleRowMode(c->drv.conn);
				continue;
			}
			/* the statement is complete; in a pipeline, once its Sync is read too */
			if (r->in_pipeline) {
				r->sync_due = true;
				continue;
			}
			run_stmt_done(r);
			return true;
		}
		ExecStatusType st = PQresultStatus(res);
		if (r->in_pipeline && (st == PGRES_PIPELINE_ABORTED || st == PGRES_PIPELINE_SYNC)) {
			PQclear(res);
			if (st == PGRES_PIPELINE_ABORTED) {
				exec_run_unsend(r);
				return true;
			}
			if (!r->sync_due)
				return false; /* a Sync before the statement's end: not ours */
			r->in_pipeline = r->sync_due = false;
			if (r->failed) {
				/* its error rolled back the set_config() of its part */
				c->timeout_ms = -1;
				c->app_name[0] = '\0';
			}
			if (!PQexitPipelineMode(c->drv.conn))
				return false;
			run_stmt_done(r);
			return true;
		}
		if (st == PGRES_COPY_OUT || st == PGRES_COPY_IN || st == PGRES_COPY_BOTH) {
			PQclear(res);
			if (!run_start_copy(r, st))
				return false;
			continue;
		}
		run_take_result(r, res);
		PQclear(res);
		if (PQstatus(c->drv.conn) == CONNECTION_BAD)
			return false;
	}
}

/* The driver's readable(): what the server sent was read in. */
void exec_on_conn_readable(void *arg)
{
	struct conn *c = arg;

	switch (c->state) {
	case CONN_CONNECTING:
		return;
	case CONN_IDLE: {
		/* Idle: the server closed it, or sent a notice/notification; drop the former. */
		if (PQstatus(c->drv.conn) != CONNECTION_OK) {
			exec_conn_close(&c);
			return;
		}
		PGnotify *n;
		while ((n = PQnotifies(c->drv.conn)) != NULL)
			PQfreemem(n);
		return;
	}
	case CONN_RESETTING:
		exec_conn_reset_read(c);
		return;
	case CONN_BUSY:
		if (c->carrying)
			exec_conn_reset_read(c);
		else if (!exec_run_read(c->run))
			exec_run_conn_lost(c->run, NULL);
		return;
	}
}

/* The driver's failed(): the connection is gone (already closed). */
void exec_on_conn_failed(void *arg, const char *why, bool was_ready)
{
	struct conn *c = arg;
	struct pool *p = c->pool;
	(void)was_ready;

	switch (c->state) {
	case CONN_CONNECTING:
		exec_conn_connect_failed(c, why);
		return;
	case CONN_IDLE:
		exec_conn_close(&c);
		return;
	case CONN_RESETTING:
		if (c->drv.timed_out)
			log_warning("database %s: a connection did not answer within %lld ms; "
			            "closing it (it will be replaced when a run needs it)",
			            p->name, (long long)exec_conn_idle_check_ms(c));
		exec_conn_close(&c);
		exec_pool_dispatch(p);
		return;
	case CONN_BUSY:
		exec_run_conn_lost(c->run, why);
		return;
	}
}

/* ---- runs ----------------------------------------------------------------------------- */

void exec_run_free(struct exec_run **rp)
{
	struct exec_run *r = *rp;
	if (!r)
		return;
	if (r->timer_set)
		event_del(&r->timer_ev);
	event_del(&r->done_ev);
	cancel_forget(r->cancel_req);
	for (size_t i = 0; i < r->n_stmts; i++) {
		free(r->stmts[i].sql);
		for (int j = 0; j < r->stmts[i].n_params; j++)
			free(r->stmts[i].params[j]);
		free(r->stmts[i].params);
	}
	free(r->stmts);
	free(r->cancel_msg);
	free(r->commit_refused);
	free(r->message);
	free(r->name);
	free(r);
	*rp = NULL;
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec_run *r = arg;
	struct exec *ex = r->ex;
	struct exec_outcome o = {
	    .ok = !r->failed,
	    .timed_out = r->timed_out,
	    .cancelled = r->cancelled,
	    .message = r->message ? r->message : "",
	    .sqlstate = r->failed ? r->sqlstate : NULL,
	    .backend_pid = r->pid,
	    .duration_us = clock_wall_us() - r->start_us,
	    .wait_us = r->attach_us ? r->attach_us - r->start_us : 0,
	    .connect_us = r->connect_us,
	    .carried = r->carried,
	};
	if (r->aprev)
		r->aprev->anext = r->anext;
	else
		ex->runs = r->anext;
	if (r->anext)
		r->anext->aprev = r->aprev;
	ex->n_runs--;
	if (r->on_done)
		r->on_done(r->arg, &o); /* may submit more runs */
	exec_run_free(&r);
	if (ex->n_runs == 0 && ex->on_drained)
		event_active(&ex->drained_ev, 0, 0);
}

/* The run has ended (its connection already released): report it from the loop. */
void exec_run_complete(struct exec_run *r)
{
	if (r->state == RUN_DONE)
		return;
	r->state = RUN_DONE;
	r->conn = NULL;
	if (r->timer_set) {
		event_del(&r->timer_ev);
		r->timer_set = false;
	}
	if (r->cancel_msg) {
		/* However the statement died (cancelled, terminated, connection closed), say why
		 * we stopped it. */
		r->failed = true;
		free(r->message);
		r->message = strdup(r->cancel_msg);
		snprintf(r->sqlstate, sizeof(r->sqlstate), "57014");
	} else if (r->failed && r->timed_out && r->timeout_ms > 0) {
		char d[32], buf[128];
		duration_format(r->timeout_ms, d, sizeof(d));
		snprintf(buf, sizeof(buf), "timed out after %s; the statement was cancelled", d);
		free(r->message);
		r->message = strdup(buf);
		snprintf(r->sqlstate, sizeof(r->sqlstate), "57014");
	} else if (!r->failed && !r->message) {
		r->message = strdup("");
	}
	event_active(&r->done_ev, 0, 0);
}

static int run_alloc(struct exec *ex, const struct exec_run_spec *spec, struct exec_run **out)
{
	int err = -ENOMEM;
	struct exec_run *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->ex = ex;
	r->stmts = calloc(spec->n_stmts ? spec->n_stmts : 1, sizeof(*r->stmts));
	if (!r->stmts)
		goto out;
	r->n_stmts = spec->n_stmts;
	for (size_t i = 0; i < spec->n_stmts; i++) {
		const struct exec_stmt *s = &spec->stmts[i];
		struct run_stmt *d = &r->stmts[i];
		d->simple = s->simple;
		d->sql = strdup(s->sql);
		if (!d->sql)
			goto out;
		d->carry = i == 0 && sqlscan_pipeline_safe(d->sql);
		if (s->n_params > 0) {
			d->params = calloc((size_t)s->n_params, sizeof(char *));
			if (!d->params)
				goto out;
			d->n_params = s->n_params;
			for (int j = 0; j < s->n_params; j++) {
				if (s->params[j] && !(d->params[j] = strdup(s->params[j])))
					goto out;
			}
		}
	}
	r->timeout_ms = spec->timeout_ms > 0 ? spec->timeout_ms : 0;
	/* statement_timeout in ms; "0" (none) is set too, since pooled connections are shared
	 * by jobs with different timeouts. */
	/* the server takes at most INT_MAX ms (24.8 days); a longer timeout is left to the
	 * client-side timer alone */
	snprintf(r->timeout_text, sizeof(r->timeout_text), "%lld",
	         (long long)(r->timeout_ms > INT_MAX ? 0 : r->timeout_ms));
	if (spec->name && !(r->name = strdup(spec->name)))
		goto out;
	if (spec->name && spec->name_backend) /* the server cuts it at 63 bytes */
		snprintf(r->app_name, sizeof(r->app_name), PGCONN_JOB_APP_PREFIX "%.63s",
		         spec->name);
	r->on_pid = spec->on_pid;
	r->on_xid = spec->on_xid;
	r->held = spec->hold;
	/* its own transaction: a command of several statements, sent as written */
	if (spec->own_xact && spec->on_xid && r->n_stmts == 1 && r->stmts[0].simple &&
	    !r->stmts[0].carry)
		r->xact = XACT_PLANNED;
	r->on_row = spec->on_row;
	r->on_done = spec->on_done;
	r->arg = spec->arg;
	r->start_us = clock_wall_us();
	event_assign(&r->done_ev, ex->base, -1, 0, done_cb, r);
	evtimer_assign(&r->timer_ev, ex->base, timer_cb, r);
	*out = r;
	return 0;
out:
	exec_run_free(&r);
	return err;
}

static void cancel_done(void *arg, bool ok, const char *message)
{
	struct exec_run *r = arg;
	r->cancel_req = NULL;
	if (!ok)
		log_warning("could not send a cancel request to backend %d: %s", r->pid, message);
}

/* Ask the server, through the cancel key of R's connection, to cancel R's statement. The
 * connection is never reused: the request may arrive after the statement ended and cancel
 * whatever the connection would run next. */
static void run_send_cancel(struct exec_run *r)
{
	if (!r->conn)
		return;
	r->conn->tainted = true;
	cancel_forget(r->cancel_req);
	r->cancel_req = cancel_send(r->ex->cancel, r->conn->drv.conn, cancel_done, r);
	if (!r->cancel_req)
		log_warning("could not queue a cancel request for backend %d", r->pid);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec_run *r = arg;
	r->timer_set = false;
	if (!r->cancel_msg) {
		char d[32], buf[160];
		duration_format(r->timeout_ms, d, sizeof(d));
		if (r->state == RUN_WAITING)
			snprintf(buf, sizeof(buf),
			         "timed out after %s waiting for a connection to database %s", d,
			         r->pool->name);
		else
			snprintf(buf, sizeof(buf),
			         "timed out after %s; the statement was cancelled", d);
		run_stop(r, buf, true);
		return;
	}
	/* escalation: cancel did not stop it in time */
	if (r->escalation == 1 && r->conn) {
		log_warning("backend %d did not stop after a cancel request; asking again", r->pid);
		r->escalation = 2;
		run_send_cancel(r);
		struct timeval tv = exec_ms_tv(ESCALATE_MS);
		if (event_add(&r->timer_ev, &tv) == 0)
			r->timer_set = true;
		return;
	}
	/* Still no answer: give up on the connection. */
	if (r->conn) {
		struct conn *c = r->conn;
		r->conn = NULL;
		exec_conn_release(c, true);
	}
	exec_run_complete(r);
}

static void run_stop(struct exec_run *r, const char *message, bool timed_out)
{
	if (r->state == RUN_DONE || r->cancel_msg)
		return;
	/* a cancel cannot undo a COMMIT (one waiting for a synchronous standby commits all the
	 * same): its answer decides the run's outcome */
	if (r->xact == XACT_COMMIT)
		return;
	r->cancel_msg = strdup(message);
	if (!r->cancel_msg)
		r->cancel_msg = strdup("cancelled");
	r->timed_out = timed_out;
	r->cancelled = !timed_out;
	if (r->state == RUN_WAITING) {
		if (r->reserved) {
			r->reserved->next_run = NULL; /* its reset goes on; the connection stays */
			r->reserved = NULL;
		} else {
			exec_wait_remove(r);
		}
		exec_run_complete(r);
		return;
	}
	/* nothing was sent, or nothing is in flight before a COMMIT (the reset rolls back):
	 * no cancel to ask for */
	if (r->hold_waiting || r->xact == XACT_COMMIT_WAIT) {
		r->hold_waiting = false;
		struct conn *c = r->conn;
		r->conn = NULL;
		exec_conn_release(c, false);
		exec_run_complete(r);
		return;
	}
	r->escalation = 1;
	run_send_cancel(r);
	if (r->timer_set)
		event_del(&r->timer_ev);
	struct timeval tv = exec_ms_tv(ESCALATE_MS);
	r->timer_set = event_add(&r->timer_ev, &tv) == 0;
}

int exec_submit(struct exec *ex, const struct exec_run_spec *spec, struct exec_run **out)
{
	struct pool *p = exec_pool_find(ex, spec->database);
	if (!p || p->removed)
		return -ENOENT;
	struct exec_run *r;
	int err = run_alloc(ex, spec, &r);
	if (err < 0)
		return err;
	r->pool = p;
	r->state = RUN_WAITING;
	if (r->timeout_ms > 0) {
		struct timeval tv = exec_ms_tv(r->timeout_ms + CLIENT_TIMEOUT_SLACK_MS);
		r->timer_set = event_add(&r->timer_ev, &tv) == 0;
	}
	r->anext = ex->runs;
	if (ex->runs)
		ex->runs->aprev = r;
	ex->runs = r;
	ex->n_runs++;
	r->wprev = p->wait_tail;
	if (p->wait_tail)
		p->wait_tail->wnext = r;
	else
		p->wait_head = r;
	p->wait_tail = r;
	p->n_waiting++;
	*out = r;
	if (ex->halted)
		run_stop(r, "not started: pgcrond was stopping", false);
	else
		exec_pool_dispatch(p);
	return 0;
}

void exec_halt(struct exec *ex)
{
	ex->halted = true;
}

void exec_cancel(struct exec_run *run, const char *message)
{
	if (run)
		run_stop(run, message ? message : "cancelled", false);
}

void exec_release(struct exec_run *r, bool go, const char *why)
{
	if (!r || r->state == RUN_DONE || r->cancel_msg || !r->held)
		return;
	r->held = false;
	if (r->xact != XACT_NONE && r->xact != XACT_PLANNED) { /* its COMMIT waited for this */
		if (!go)
			r->commit_refused =
			    strdup(why ? why : "its transaction id was not recorded");
		if (r->xact == XACT_COMMIT_WAIT)
			run_commit(r);
		return;
	}
	/* waiting for a connection, or holding one idle: nothing was sent */
	if (!go || r->ex->halted)
		run_stop(r, !go && why ? why : "not started: pgcrond was stopping", false);
	else if (r->hold_waiting) {
		r->hold_waiting = false;
		run_send_first(r);
	} /* else it is sent as it gets its connection, carried or not */
}
