/* What drives the executor (exec_priv.h): the connections' events (conndrv.h) drive the
 * runs' statements, one step after another on each run's connection; a run's end releases
 * its connection, which is reset (exec_reset.c) and handed to the next waiting run
 * (exec_pool_dispatch), or closed; a pool opens connections as its runs need them and backs
 * off after a failed connect. These calls go round in a circle (a run's end dispatches the
 * next run, whose failure ends it), so they are one file; exec.c and exec_pool.c above call
 * in, and exec_run.c and exec_reset.c below are called. */
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conndrv.h"
#include "exec.h"
#include "exec_priv.h"
#include "log.h"
#include "ownsess.h"
#include "pgconn.h"

/* The reconnect backoff per database is conndrv's, up to 2 s while the server is full (runs
 * wait for its next free slot). */
#define FULL_RETRY_MAX_MS 2000

static void run_next_step(struct exec_run *r);

/* ---- running statements --------------------------------------------------------------- */

void exec_run_conn_lost(struct exec_run *r, const char *why)
{
	struct conn *c = r->conn;
	char *err = why ? strdup(why) : exec_conn_error(c->drv.conn, c->pool->conninfo);
	r->conn = NULL;
	exec_conn_release(c, true);
	exec_run_fail(r, err && *err ? err : "connection to the server was lost", "08006");
	free(err);
}

/* R's first statement on C, which is R's from now on (exec_run_attach, unless it is already),
 * after a set_config() of its timeout and name if the session's differ: in one pipeline (one
 * round trip) when the statement may follow another (exec_conn_carry), else one after the
 * other. */
void exec_run_start(struct exec_run *r, struct conn *c)
{
	if (r->conn != c)
		exec_run_attach(r, c);
	if (r->held) {
		exec_run_to(r, EXEC_HELD); /* exec_release() sends it, or ends it */
		return;
	}
	bool app = r->app_name[0] && strcmp(c->app_name, r->app_name) != 0;
	/* an id to report: the statement goes in a pipeline after it (exec_conn_carry), and the
	 * set_config() that opens the pipeline costs no round trip of its own */
	bool xid = r->cb.on_xid && exec_run_may_carry(r);
	if ((r->timeout_ms >= 0 && c->timeout_ms != r->timeout_ms) || app || xid) {
		const char *params[2] = {r->timeout_text, r->app_name};
		const char *sql = app ? SET_RUN_SQL : SET_TIMEOUT_SQL;
		bool carry = exec_run_may_carry(r) && PQenterPipelineMode(c->drv.conn);
		if (carry) {
			/* read as the last step of a reset whose first part is answered */
			c->reset.step = RESET_STEPS - 1;
			c->reset.no_set = false;
			c->reset.syncs = RESET_SYNCS - 1;
			c->reset.failed = false;
			c->reset.timeout_ms = r->timeout_ms;
			snprintf(c->reset.app, sizeof(c->reset.app), "%s",
			         app ? r->app_name : c->app_name);
		} else {
			exec_run_to(r, EXEC_SETTING);
		}
		if (!PQsendQueryParams(c->drv.conn, sql, app ? 2 : 1, NULL, params, NULL, NULL,
		                       0) ||
		    (carry && (!exec_conn_carry(c, r) || !PQpipelineSync(c->drv.conn))) ||
		    !conndrv_flush(&c->drv))
			exec_run_conn_lost(r, NULL);
		return;
	}
	run_next_step(r);
}

/* The run's last statement is done (or it failed): a transaction it left open is never
 * committed for it. pg_cron's fresh connection would have rolled it back at disconnect, so
 * the run failed whatever its statements said; the reset rolls it back. */
static void run_finish(struct exec_run *r)
{
	struct conn *c = r->conn;
	PGTransactionStatusType ts = PQtransactionStatus(c->drv.conn);

	/* (in a transaction pgcrond opened, what is left open is its own to roll back) */
	if ((ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) && !r->stop.msg &&
	    r->xact == XACT_NONE) {
		const char *why = "the run left a transaction open (no COMMIT); its work was "
		                  "rolled back";
		if (!r->out.failed) {
			free(r->out.message);
			r->out.message = strdup(why);
			snprintf(r->out.sqlstate, sizeof(r->out.sqlstate), "25001");
		} else {
			/* keep the error that aborted the transaction first, and say what became
			 * of the transaction */
			char *m = NULL;
			if (asprintf(&m, "%s; the transaction it left open was rolled back",
			             r->out.message ? r->out.message : "") >= 0) {
				free(r->out.message);
				r->out.message = m;
			}
		}
		r->out.failed = true;
	}
	r->conn = NULL;
	exec_conn_release(c, false);
	exec_run_complete(r);
}

/* The statements of a run in its own transaction (spec.own_xact) are done: COMMIT, once
 * exec_release() said so; else wait for it, or fail (the reset rolls the transaction
 * back). */
void exec_run_commit(struct exec_run *r)
{
	if (r->held) {
		exec_run_to(r, EXEC_COMMIT_WAIT); /* exec_release() goes on */
		return;
	}
	if (r->commit_refused) {
		char *m = NULL;
		r->out.failed = true;
		free(r->out.message);
		r->out.message = asprintf(&m, "rolled back: %s", r->commit_refused) >= 0 ? m : NULL;
		snprintf(r->out.sqlstate, sizeof(r->out.sqlstate), "08006");
		run_finish(r);
		return;
	}
	r->xact = XACT_COMMIT;
	if (!PQsendQuery(r->conn->drv.conn, "COMMIT") || !conndrv_flush(&r->conn->drv))
		exec_run_conn_lost(r, NULL);
}

/* Send statement r->read.cur, or finish the run when there is none left. A run in its own
 * transaction: BEGIN and the id first (XACT_BEGIN), its statement (XACT_USER), then
 * COMMIT (exec_run_commit). */
static void run_next_step(struct exec_run *r)
{
	struct conn *c = r->conn;
	if (r->read.cur >= r->n_stmts || r->stop.msg) {
		if (r->stop.msg)
			r->out.failed = true;
		if (!r->out.failed && r->xact == XACT_USER)
			exec_run_commit(r);
		else
			run_finish(r);
		return;
	}
	if (r->xact == XACT_PLANNED) {
		r->xact = XACT_BEGIN;
		if (!PQsendQuery(c->drv.conn, "BEGIN; " XID_SQL) || !conndrv_flush(&c->drv))
			exec_run_conn_lost(r, NULL);
		return;
	}
	struct run_stmt *s = &r->stmts[r->read.cur];
	c->guard_reset = true;
	int sent = s->simple ? PQsendQuery(c->drv.conn, s->sql)
	                     : PQsendQueryParams(c->drv.conn, s->sql, s->n_params, NULL,
	                                         (const char *const *)s->params, NULL, NULL, 0);
	/* Rows arrive one at a time and are counted, never held: a job that returns 300 MB
	 * costs the daemon one row's memory. */
	r->read.rows = 0;
	if (sent)
		PQsetSingleRowMode(c->drv.conn);
	if (!sent || !conndrv_flush(&c->drv))
		exec_run_conn_lost(r, NULL);
}

/* The server skipped R's carried statement, because a step of the reset before it failed:
 * it never ran, so it waits for another connection (or ends, if it was stopped meanwhile),
 * and this one, whose reset failed, is closed. */
static void exec_run_unsend(struct exec_run *r)
{
	struct conn *c = r->conn;
	struct exec_pool *p = c->pool;
	c->run = NULL;
	r->conn = NULL;
	r->read.in_pipeline = r->read.sync_due = r->read.xid_pending = false;
	exec_conn_close(&c);
	if (r->stop.msg) {
		exec_run_complete(r);
	} else {
		exec_run_to(r, EXEC_WAITING);
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
	if (r->read.cur != 0 || st->carry <= 0 || !r->out.failed || !r->read.parse_refused ||
	    strcmp(r->out.sqlstate, "42601") != 0 || r->stop.msg)
		return false;
	st->carry = 0;
	/* the id it reported was rolled back with it: sent again once the history database no
	 * longer holds that id as the run's (a takeover retries a run whose id rolled back) */
	if (r->cb.on_xid) {
		r->held = true; /* exec_release() sends it (exec_run_start), or stops it */
		r->cb.on_xid(r->cb.arg, NULL, NULL, true);
	}
	r->out.failed = false;
	free(r->out.message);
	r->out.message = NULL;
	r->out.sqlstate[0] = '\0';
	r->conn->timeout_ms = -1;
	r->conn->app_name[0] = '\0';
	exec_run_start(r, r->conn);
	return true;
}

/* A statement of R in its own transaction refused the transaction block (what sqlscan
 * could not see, as REINDEX SCHEMA): roll it back, then send the run's statement again, as
 * written, on its own; its id is not the run's. */
static bool run_unwrap(struct exec_run *r)
{
	if (r->xact != XACT_USER || !r->out.failed || strcmp(r->out.sqlstate, "25001") != 0 ||
	    r->stop.msg || r->commit_refused)
		return false;
	r->xact = XACT_UNWRAP;
	if (!PQsendQuery(r->conn->drv.conn, "ROLLBACK") || !conndrv_flush(&r->conn->drv))
		exec_run_conn_lost(r, NULL);
	return true;
}

/* R, rolled back (run_unwrap), sends its statement again as written once the history
 * database no longer holds the rolled back id as the run's (a takeover that finds that id
 * rolled back retries the fire: cluster_lock.c, reap_rolled), or fails (exec_run_commit). */
static void unwrap_wait(struct exec_run *r)
{
	r->held = true;
	exec_run_to(r, EXEC_UNWRAP_CALLING);
	r->cb.on_xid(r->cb.arg, NULL, NULL, true);
	switch (r->phase) {
	case EXEC_UNWRAP_CALLING:
		exec_run_to(r, EXEC_UNWRAP_WAITING); /* exec_release() goes on */
		return;
	case EXEC_DONE: /* stopped meanwhile (exec_cancel) */
		return;
	case EXEC_WAITING:
	case EXEC_HELD:
	case EXEC_SETTING:
	case EXEC_ON_CONN: /* released meanwhile (exec_run_unwrap_released) */
	case EXEC_COPY_OUT:
	case EXEC_COMMIT_WAIT:
	case EXEC_UNWRAP_PENDING:
	case EXEC_UNWRAP_WAITING:
		break;
	}
	if (r->commit_refused)
		exec_run_commit(r);
	else
		run_next_step(r);
}

void exec_run_unwrap_released(struct exec_run *r, bool go, const char *why)
{
	enum exec_phase was = r->phase;
	exec_run_to(r, EXEC_ON_CONN);
	if (!go)
		r->commit_refused = strdup(why ? why : "its transaction id was not recorded");
	if (was == EXEC_UNWRAP_PENDING && go)
		unwrap_wait(r);
	else if (was != EXEC_UNWRAP_CALLING && r->commit_refused)
		exec_run_commit(r);
	else if (was != EXEC_UNWRAP_CALLING)
		run_next_step(r);
}

/* R's statement r->read.cur has all its answers. */
static void run_stmt_done(struct exec_run *r)
{
	if (r->phase == EXEC_SETTING) {
		exec_run_to(r, EXEC_ON_CONN);
		if (r->out.failed) {
			run_finish(r);
			return;
		}
		run_next_step(r);
		return;
	}
	switch (r->xact) {
	case XACT_BEGIN: /* its transaction is open: the run's statement, unless refused */
		r->xact = XACT_USER;
		if (r->out.failed)
			run_finish(r);
		else if (r->commit_refused)
			exec_run_commit(r);
		else
			run_next_step(r);
		return;
	case XACT_COMMIT:
		run_finish(r);
		return;
	case XACT_UNWRAP: /* rolled back (its answer is not an error of the run's) */
		r->xact = XACT_NONE;
		r->out.failed = false;
		free(r->out.message);
		r->out.message = NULL;
		r->out.sqlstate[0] = '\0';
		if (r->held) /* the answer about its id is still to come: that first */
			exec_run_to(r, EXEC_UNWRAP_PENDING);
		else
			unwrap_wait(r);
		return;
	case XACT_NONE:
	case XACT_PLANNED:
	case XACT_USER:
		break;
	}
	if (r->out.failed) {
		if (!run_uncarry(r) && !run_unwrap(r))
			run_finish(r);
		return;
	}
	r->read.cur++;
	run_next_step(r);
}

/* Read what the server sent; returns false if the connection broke. Returns to the loop
 * whenever libpq needs more input: PQisBusy() is false during a COPY, so the COPY state is
 * handled first and waits for EV_READ on its own. */
static bool exec_run_read(struct exec_run *r)
{
	struct conn *c = r->conn;
	if (exec_run_parked(r)) {
		/* nothing is in flight: what came is a notice or a notification (the server's
		 * FATAL before it closes the connection arrives so), never the run's answer; a
		 * closed connection is a lost one */
		PGnotify *n;
		while ((n = PQnotifies(c->drv.conn)) != NULL)
			PQfreemem(n);
		return PQstatus(c->drv.conn) == CONNECTION_OK;
	}
	for (;;) {
		if (r->phase == EXEC_COPY_OUT) {
			int d = exec_run_drain_copy(r);
			if (d < 0)
				return false;
			if (d == 0)
				return true; /* more rows to come: wait for EV_READ */
		}
		if (PQisBusy(c->drv.conn))
			return true;
		PGresult *res = PQgetResult(c->drv.conn);
		if (!res) {
			if (r->read.xid_pending) {
				/* the id's answer is over: the statement's rows come one at a time
				 */
				r->read.xid_pending = false;
				PQsetSingleRowMode(c->drv.conn);
				continue;
			}
			/* the statement is complete; in a pipeline, once its Sync is read too */
			if (r->read.in_pipeline) {
				r->read.sync_due = true;
				continue;
			}
			run_stmt_done(r);
			return true;
		}
		ExecStatusType st = PQresultStatus(res);
		if (r->read.in_pipeline &&
		    (st == PGRES_PIPELINE_ABORTED || st == PGRES_PIPELINE_SYNC)) {
			PQclear(res);
			if (st == PGRES_PIPELINE_ABORTED) {
				exec_run_unsend(r);
				return true;
			}
			if (!r->read.sync_due)
				return false; /* a Sync before the statement's end: not ours */
			r->read.in_pipeline = r->read.sync_due = false;
			if (r->out.failed) {
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
			if (!exec_run_start_copy(r, st))
				return false;
			continue;
		}
		exec_run_take_result(r, res);
		PQclear(res);
		if (PQstatus(c->drv.conn) == CONNECTION_BAD)
			return false;
	}
}

/* ---- connections ---------------------------------------------------------------------- */

static void pool_log_failure(struct exec_pool *p, const char *err)
{
	char redacted[1024];
	pgconn_redact_conninfo(p->conninfo, redacted, sizeof(redacted));
	if (log_complain(&p->complaint, err))
		log_warning("database %s (%s): cannot connect: %s; retrying with backoff", p->name,
		            redacted, err);
}

/* A connect found the server too old (conndrv.h: WHY is pgconn_server_too_old's line): the
 * pool's error, and the runs', names the database before it; said once (conndrv_tell_too_old),
 * not as a failure to retry: a pool tries again (the server may be upgraded), but only a
 * server replaced can make that work. */
static char *pool_too_old(struct exec_pool *p, const struct conn *c, const char *why)
{
	char *line = NULL;
	if (asprintf(&line, "database \"%s\": %s", p->name, why) < 0)
		return NULL;
	if (conndrv_tell_too_old(&c->drv)) {
		(void)log_complain(&p->complaint, line); /* "reconnected" when it is replaced */
		log_error("%s", line);
	}
	return line;
}

/* Another connection to the pool's server succeeded: the backoff ends at the loop's next
 * turn (conndrv_wait_server: only a timer is armed here). */
static void backoff_wake(void *arg)
{
	struct exec_pool *p = arg;
	struct timeval now = {0, 0};
	if (p->backing_off)
		event_add(&p->backoff_ev, &now);
}

/* A connection attempt failed (WHY, or libpq's own words): the pool backs off before the
 * next attempt, and if it has no connection left, the runs waiting on it fail. */
static void exec_conn_connect_failed(struct conn *c, const char *why)
{
	struct exec_pool *p = c->pool;
	bool too_old = c->drv.too_old;
	char *err = too_old ? pool_too_old(p, c, why) : strdup(why);
	exec_conn_close(&c);
	p->failures++;
	free(p->last_error);
	p->last_error = err;
	if (!too_old)
		pool_log_failure(p, err ? err : "out of memory");
	/* While the pool holds live connections, or the server said it takes no more now
	 * (53300: full, or a connection limit), waiting runs wait for a connection, within their
	 * timeout, instead of failing: the database is there, and a slot frees when any of its
	 * sessions ends. They fail when no connection is left for another cause. */
	bool full = err && conndrv_server_full(err);
	if (!full && p->n_connecting == 0 && p->n_conns == 0) {
		while (TAILQ_FIRST(&p->waiting)) {
			struct exec_run *r = TAILQ_FIRST(&p->waiting);
			exec_wait_remove(r);
			exec_run_fail(r, err ? err : "could not connect", "08001");
		}
	}
	/* a full server is asked again every FULL_RETRY_MAX_MS at most: runs wait on it */
	int64_t delay = pgconn_backoff_ms((unsigned)(p->failures - 1), CONNDRV_RETRY_MIN_MS,
	                                  full ? FULL_RETRY_MAX_MS : CONNDRV_RETRY_MAX_MS);
	p->backing_off = true;
	clock_event_in(&p->backoff_ev, delay);
	/* another connection to the server succeeding ends the backoff, unless the server
	 * itself refused this one (a role that may not log in) */
	if (!too_old && !conndrv_server_answered(err ? err : ""))
		conndrv_wait_server(&p->wait, p->ex->base, p->server, backoff_wake, p);
}

/* The driver's connected(). */
static void on_conn_connected(void *arg)
{
	struct conn *c = arg;
	struct exec_pool *p = c->pool;
	c->state = CONN_IDLE;
	c->connected_us = clock_wall_us();
	c->used_us = clock_mono_us();
	p->n_connecting--;
	p->connected_once = true;
	bool back = p->failures > 0 || p->probing;
	if (p->failures > 0) {
		p->failures = 0;
		if (log_complaint_reset(&p->complaint))
			log_notice("database %s: reconnected", p->name);
	}
	p->probing = false;
	exec_pool_dispatch(p);
	/* Last: the owner may submit runs from the callback, which dispatch on their own. */
	if (back && p->ex->on_reachable)
		p->ex->on_reachable(p->ex->reachable_arg, p->name);
}

/* An idle connection's reset (its check, exec_warm): a round trip with a deadline that
 * also reads the session's defaults again (exec_reset.c). One that cannot be sent closes the
 * connection. */
void exec_conn_reset(struct conn *c)
{
	if (!exec_conn_reset_send(c, false)) {
		struct exec_pool *p = c->pool;
		exec_conn_close(&c); /* the run it reserved waits again */
		exec_pool_dispatch(p);
	}
}

/* The answers before a carried statement are read: its own are the run's. If a step
 * before it failed in its part of the pipeline, the server skipped it (exec_run_read sees
 * PGRES_PIPELINE_ABORTED, and run_unsend puts the run back in the queue); a step of the
 * part before (the ROLLBACK) does not stop it, and it ran after a DISCARD ALL that
 * succeeded, but the connection is not reused. */
static void conn_carry_handover(struct conn *c)
{
	struct exec_run *r = c->run;
	c->carrying = false;
	if (c->reset.failed)
		c->tainted = true;
	PQsetSingleRowMode(c->drv.conn); /* its rows one at a time, as run_next_step says */
	if (!exec_run_read(r))
		exec_run_conn_lost(r, NULL);
}

/* Read the answers to the reset (on_conn_readable: RESETTING, or BUSY carrying a run's
 * statement; exec_conn_reset_result takes each one), and act on them: the carried
 * statement's own answers are the run's; the reset over, the connection is idle again and
 * serves the run it reserved, or is closed if a step failed or the session is not clean. */
static void conn_reset_read(struct conn *c)
{
	struct exec_pool *p = c->pool;
	/* In pipeline mode a NULL only ends one statement's results; the last Sync ends it
	 * all. */
	int nulls = 0;
	for (;;) {
		if (c->carrying && c->reset.step >= RESET_STEPS) {
			conn_carry_handover(c);
			return;
		}
		if (c->reset.syncs >= RESET_SYNCS)
			break;
		if (PQisBusy(c->drv.conn))
			return; /* more answers to come: wait for the socket */
		PGresult *res = PQgetResult(c->drv.conn);
		if (!res) {
			/* the end of one statement's results; a second NULL: nothing more has
			 * arrived, wait for the socket */
			if (nulls++ > 0)
				return;
			c->reset.step++;
			if (c->reset.step == RESET_STEPS - 1 && c->reset.no_set) {
				/* no set_config() was sent: the session has the defaults */
				c->timeout_ms = c->default_timeout_ms;
				c->app_name[0] = '\0';
				c->reset.step++;
			}
			continue;
		}
		nulls = 0;
		exec_conn_reset_result(c, res);
		PQclear(res);
	}
	if (c->reset.failed || !PQexitPipelineMode(c->drv.conn) ||
	    PQtransactionStatus(c->drv.conn) != PQTRANS_IDLE) {
		exec_conn_close(&c);
		exec_pool_dispatch(p);
		return;
	}
	c->state = CONN_IDLE;
	conndrv_idle(&c->drv);
	if (c->reset.next_run) {
		struct exec_run *r = c->reset.next_run;
		c->reset.next_run = NULL;
		r->link.reserved = NULL;
		exec_run_start(r, c);
	}
	if (TAILQ_FIRST(&p->waiting) || p->probing) /* else nothing waits for a connection */
		exec_pool_dispatch(p);
}

/* The driver's readable(): what the server sent was read in. */
static void exec_on_conn_readable(void *arg)
{
	struct conn *c = arg;

	switch (c->state) {
	case CONN_CONNECTING:
		break;
	case CONN_IDLE:
	case CONN_USED: {
		/* Idle: the server closed it, or sent a notice/notification; drop the former. */
		if (PQstatus(c->drv.conn) != CONNECTION_OK) {
			exec_conn_close(&c);
			break;
		}
		PGnotify *n;
		while ((n = PQnotifies(c->drv.conn)) != NULL)
			PQfreemem(n);
		break;
	}
	case CONN_RESETTING:
		conn_reset_read(c);
		break;
	case CONN_BUSY:
		if (c->carrying)
			conn_reset_read(c);
		else if (!exec_run_read(c->run))
			exec_run_conn_lost(c->run, NULL);
		break;
	}
}

/* The driver's failed(): the connection is gone (already closed). */
static void exec_on_conn_failed(void *arg, const char *why, bool was_ready)
{
	struct conn *c = arg;
	struct exec_pool *p = c->pool;

	switch (c->state) {
	case CONN_CONNECTING:
		exec_conn_connect_failed(c, why);
		return;
	case CONN_IDLE:
	case CONN_USED:
		exec_conn_close(&c);
		return;
	case CONN_RESETTING:
		if (c->drv.timed_out)
			log_warning("database %s: a connection did not answer within %lld ms; "
			            "closing it (it will be replaced when a run needs it)",
			            p->name, (long long)(c->drv.check_ms / 2));
		exec_conn_close(&c);
		exec_pool_dispatch(p);
		return;
	case CONN_BUSY:
		exec_run_conn_lost(c->run, why);
		return;
	}
}

static void on_conn_check(void *arg);

/* The driver's silent(): nothing came for half the connection check while the run waits: the
 * pool's watch looks at its backend (exec_watch.c), at the loop's next turn. */
static void on_conn_silent(void *arg)
{
	struct conn *c = arg;
	if (c->state != CONN_BUSY)
		return;
	c->watch_due = true;
	event_active(&c->pool->watch.ev, EV_TIMEOUT, 0);
}

static const struct conndrv_ops conn_ops = {
    .connected = on_conn_connected,
    .readable = exec_on_conn_readable,
    .failed = exec_on_conn_failed,
    .check = on_conn_check,
    .silent = on_conn_silent,
};

/* One more connection for P, CONNECTING until the driver says connected() or failed().
 * 0, or -ENOMEM. */
int exec_conn_open(struct exec_pool *p)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->pool = p;
	c->generation = p->generation;
	c->timeout_ms = -1;
	c->default_timeout_ms = -1;
	c->state = CONN_CONNECTING;
	c->open_us = clock_wall_us();
	char label[96];
	snprintf(label, sizeof(label), "database %s", p->name); /* cut short, still a label */
	conndrv_init(&c->drv, p->ex->base, &conn_ops, c, label, PGCONN_NOTICES_PER_RUN, 0,
	             p->ex->check_ms);
	conndrv_set_priority(&c->drv, EXEC_IO_PRIORITY);
	conndrv_set_job_session(&c->drv); /* a job's session keeps the user's search_path */
	LIST_INSERT_HEAD(&p->conns, c, in_pool);
	p->n_conns++;
	p->n_connecting++;
	/* a connect refused at once has been failed (exec_conn_connect_failed) already */
	(void)conndrv_connect(&c->drv, p->conninfo, PGCONN_APP_UNNAMED);
	return 0;
}

/* Reset C, which a run gave back, with the pool's first waiting run carried in the reset's round
 * trip if it may be (exec_reset.c). If that cannot be sent, C is closed (the run it reserved
 * waits again) or, when a run's statement went with it, that run's connection is lost (the
 * server may have it). */
static void conn_reuse(struct conn *c)
{
	struct exec_pool *p = c->pool;
	if (exec_conn_reset_send(c, true)) {
		/* the reset took the run first in the queue, if any: the others still wait */
		if (TAILQ_FIRST(&p->waiting) || p->probing)
			exec_pool_dispatch(p);
		return;
	}
	if (c->run) {
		exec_run_conn_lost(c->run, NULL);
		return;
	}
	exec_conn_close(&c);
	ownsess_take_slot(p->ex->base, p->conninfo);
	exec_pool_dispatch(p);
}

/* The driver's check(): an idle connection no run has used for the pool's idle_timeout is
 * closed (the warm-up opens one again ahead of the next fire); the others are checked with a
 * reset, a round trip with a deadline, and harmless. A used one's check is its reset. */
static void on_conn_check(void *arg)
{
	struct conn *c = arg;
	if (c->state == CONN_USED) {
		conn_reuse(c);
		return;
	}
	if (c->state != CONN_IDLE)
		return;
	if (exec_conn_idle_expired(c)) {
		exec_conn_close(&c);
		return;
	}
	exec_conn_reset(c);
}

/* A run is done with C: reset and back to the pool if it can be reused (exec_reset.c; the next
 * run's statement may go with the reset, so that run does not wait for it), closed otherwise.
 * The connection is idle again only if every step of the reset succeeded; otherwise it is
 * closed then. With no run waiting, the reset waits (CONN_USED) for the next run, which takes
 * C before an idle one (exec_pool_dispatch): the run a max_running slot lets in as this run's
 * end is told, after this, or the next fire; or RESET_LATER_MS. */
void exec_conn_release(struct conn *c, bool broken)
{
	struct exec_pool *p = c->pool;
	c->run = NULL;
	c->watch_due = false;
	c->used_us = clock_mono_us();
	if (p->watch.joined) /* the watch leaves its session once no run is silent */
		event_active(&p->watch.ev, EV_TIMEOUT, 0);
	/* "N further notices suppressed" for the run's job (the first ones are logged, so with
	 * none logged there is nothing to say) */
	if (c->drv.notices.logged)
		pgconn_notices_flush(&c->drv.notices);
	c->drv.notices.job = NULL;
	/* a connection given back while the server is full and pgcrond's own session of the
	 * database waits for a slot goes to that session (ownsess.h) */
	bool reusable = !broken && !c->tainted && !p->removed && c->generation == p->generation &&
	                PQstatus(c->drv.conn) == CONNECTION_OK &&
	                p->n_conns - p->n_connecting <= (size_t)p->size &&
	                !(*p->ex->own_starving && ownsess_starved(p->ex->base, p->conninfo));
	if (reusable && !TAILQ_FIRST(&p->waiting) && !p->ex->halted &&
	    PQtransactionStatus(c->drv.conn) == PQTRANS_IDLE) {
		c->state = CONN_USED; /* its check resets it (on_conn_check) */
		conndrv_idle_within(&c->drv, RESET_LATER_MS);
		return;
	}
	if (reusable) {
		conn_reuse(c);
		return;
	}
	exec_conn_close(&c);
	ownsess_take_slot(p->ex->base, p->conninfo);
	exec_pool_dispatch(p);
}

/* ---- pools ---------------------------------------------------------------------------- */

void exec_pool_dispatch(struct exec_pool *p)
{
	if (p->ex->halted)
		return; /* no run starts (exec_halt) */
	/* A probe opens one connection when nothing else would (exec_probe). */
	if (p->probing && !TAILQ_FIRST(&p->waiting) && !p->backing_off && !p->removed &&
	    p->n_connecting == 0 && p->n_conns < (size_t)p->size) {
		if (exec_conn_open(p) < 0)
			p->probing = false;
		return;
	}
	while (TAILQ_FIRST(&p->waiting)) {
		struct exec_run *r = TAILQ_FIRST(&p->waiting);
		/* one a run gave back first: its reset carries this run, one send (and goes on with
		 * the queue); an idle one's run goes alone, and that one's reset after it */
		struct conn *c = exec_pool_idle(p, CONN_USED);
		if (c) {
			conn_reuse(c);
			return;
		}
		if ((c = exec_pool_idle(p, CONN_IDLE)) != NULL) {
			exec_wait_remove(r);
			exec_run_start(r, c);
			continue;
		}
		if (p->backing_off || p->removed)
			return;
		/* Open a connection per waiting run, up to the pool's size; while pgcrond's own
		 * session of the database waits for a slot of a full server, the runs share the
		 * connections the pool has (the history and the claims need that session) */
		if (p->n_connecting >= p->n_waiting || p->n_conns >= (size_t)p->size ||
		    (p->n_conns > 0 && *p->ex->own_starving &&
		     ownsess_starved(p->ex->base, p->conninfo)))
			return;
		int err = exec_conn_open(p);
		if (err < 0) {
			exec_wait_remove(r);
			exec_run_fail(r, "out of memory opening a connection", "53200");
		}
	}
}
