/* The executor: per-database pools of async libpq connections on the daemon's event_base.
 *
 * Each connection is driven by conndrv.c (connect, deadlines, socket, liveness check); here
 * it is CONNECTING, IDLE (in its pool, watched for EV_READ so that a server-side close is
 * noticed), BUSY with one run, or
 * RESETTING: after every run, before it is idle again, its session goes back to the
 * connection's defaults (exec_conn_release, exec_reset.c), so that no run sees what an earlier one
 * left. A run waits in its pool's queue until a connection is free; pools open connections on
 * demand up to their size and back off exponentially after a failed attempt. Nothing here blocks:
 * a statement is cancelled through its connection's cancel key by cancel.c's worker
 * threads (PQcancel() connects synchronously), never by pid from another connection,
 * which behind a pooler or after a failover may be another session.
 *
 * This file is the runs' API: submitting, cancelling (and the escalation when a cancel is
 * not enough), releasing a held run, and each run's end reported from the loop. The pools'
 * API is exec_pool.c's; what the connections' events drive, exec_drive.c's; the reset
 * between runs, exec_reset.c's; a run and a connection as records, exec_run.c's
 * (exec_priv.h). */
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

#include "cancel.h"
#include "clock.h"
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

/* ---- runs ----------------------------------------------------------------------------- */

/* A run that ended outside a connection's reading (exec_run_complete) is told from here. */
static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	exec_run_report(arg);
}

static void cancel_done(void *arg, bool ok, const char *message)
{
	struct exec_run *r = arg;
	r->stop.req = NULL;
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
	cancel_forget(r->stop.req);
	r->stop.req = cancel_send(r->ex->cancel, r->conn->drv.conn, cancel_done, r);
	if (!r->stop.req)
		log_warning("could not queue a cancel request for backend %d", r->pid);
}

static void run_stop(struct exec_run *r, const char *message, bool timed_out)
{
	if (r->phase == EXEC_DONE || r->stop.msg)
		return;
	/* a cancel cannot undo a COMMIT (one waiting for a synchronous standby commits all the
	 * same): its answer decides the run's outcome */
	if (r->xact == XACT_COMMIT)
		return;
	r->stop.msg = strdup(message);
	if (!r->stop.msg)
		r->stop.msg = strdup("cancelled");
	r->out.timed_out = timed_out;
	r->out.cancelled = !timed_out;
	if (r->phase == EXEC_WAITING) {
		if (r->link.reserved) {
			r->link.reserved->reset.next_run = NULL; /* its reset goes on; it stays */
			r->link.reserved = NULL;
		} else {
			exec_wait_remove(r);
		}
		exec_run_complete(r);
		return;
	}
	/* nothing was sent, or nothing is in flight before a COMMIT (the reset rolls back):
	 * no cancel to ask for */
	if (exec_run_parked(r)) {
		struct conn *c = r->conn;
		r->conn = NULL;
		exec_conn_release(c, false);
		exec_run_complete(r);
		return;
	}
	r->stop.escalation = 1;
	run_send_cancel(r);
	clock_event_in(&r->stop.timer_ev, ESCALATE_MS); /* (in place of the timeout, if armed) */
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec_run *r = arg;
	if (!r->stop.msg) {
		char d[32], buf[160];
		duration_format(r->timeout_ms, d, sizeof(d));
		if (r->phase == EXEC_WAITING)
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
	if (r->stop.escalation == 1 && r->conn) {
		log_warning("backend %d did not stop after a cancel request; asking again", r->pid);
		r->stop.escalation = 2;
		run_send_cancel(r);
		clock_event_in(&r->stop.timer_ev, ESCALATE_MS);
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

static int run_alloc(struct exec *ex, const struct exec_run_spec *spec, struct exec_run **out)
{
	struct exec_run *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->ex = ex;
	event_assign(&r->done_ev, ex->base, -1, 0, done_cb, r); /* (exec_run_free deletes both) */
	event_priority_set(&r->done_ev, EXEC_IO_PRIORITY);
	evtimer_assign(&r->stop.timer_ev, ex->base, timer_cb, r);
	r->stmts = spec->n_stmts <= 1 ? &r->one : calloc(spec->n_stmts, sizeof(*r->stmts));
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
		d->carry = i == 0 ? -1 : 0; /* scanned if ever asked (exec_run_may_carry) */
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
	r->cb.on_pid = spec->on_pid;
	r->cb.on_xid = spec->on_xid;
	r->held = spec->hold;
	/* its own transaction: a command of several statements, sent as written */
	if (spec->own_xact && spec->on_xid && r->n_stmts == 1 && r->stmts[0].simple) {
		r->stmts[0].carry = sqlscan_pipeline_safe(r->stmts[0].sql);
		if (!r->stmts[0].carry)
			r->xact = XACT_PLANNED;
	}
	r->cb.on_row = spec->on_row;
	r->cb.on_done = spec->on_done;
	r->cb.arg = spec->arg;
	r->start_us = clock_wall_us();
	*out = r;
	return 0;
out:
	exec_run_free(&r);
	return -ENOMEM;
}

/* P has a connection in STATE (its socket not looked at: exec_pool_idle does that). */
static bool pool_has(const struct exec_pool *p, enum conn_state state)
{
	for (const struct conn *c = LIST_FIRST(&p->conns); c; c = LIST_NEXT(c, in_pool))
		if (c->state == state)
			return true;
	return false;
}

int exec_submit(struct exec *ex, const struct exec_run_spec *spec, struct exec_run **out)
{
	struct exec_pool *p =
	    spec->pool && *spec->pool ? *spec->pool : exec_pool_find(ex, spec->database);
	if (p && spec->pool)
		*spec->pool = p;
	if (!p || p->removed)
		return -ENOENT;
	struct exec_run *r;
	int err = run_alloc(ex, spec, &r);
	if (err < 0)
		return err;
	r->pool = p; /* r->phase: EXEC_WAITING, as calloc'd */
	if (r->timeout_ms > 0)
		clock_event_in(&r->stop.timer_ev, r->timeout_ms + CLIENT_TIMEOUT_SLACK_MS);
	LIST_INSERT_HEAD(&ex->runs, r, link.all);
	ex->n_runs++;
	*out = r;
	/* an idle connection, no run waiting before R, none given back (R rides its reset:
	 * exec_pool_dispatch): R is its run at once, never queued */
	struct conn *idle = ex->halted || TAILQ_FIRST(&p->waiting) || pool_has(p, CONN_USED)
	                        ? NULL
	                        : exec_pool_idle(p, CONN_IDLE);
	if (idle) {
		exec_run_start(r, idle);
		return 0;
	}
	/* others wait too, or every connection is connected and taken (none idle) */
	if (spec->name_unless_burst &&
	    (TAILQ_FIRST(&p->waiting) ||
	     (p->n_conns - p->n_connecting >= (size_t)p->size && !pool_has(p, CONN_IDLE))))
		r->app_name[0] = '\0';
	TAILQ_INSERT_TAIL(&p->waiting, r, link.wait);
	p->n_waiting++;
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

bool exec_withdraw(struct exec_run *run, const char *message)
{
	if (!run || run->phase != EXEC_WAITING || run->link.reserved || run->stop.msg)
		return false;
	const char *err = run->pool->failures > 0 ? run->pool->last_error : NULL;
	char m[1024]; /* the server's refusal, while it refuses: what to do about it */
	snprintf(m, sizeof(m), err ? "%s (the last connection error: %s)" : "%s", message, err);
	run_stop(run, m, false);
	return true;
}

void exec_release(struct exec_run *r, bool go, const char *why)
{
	if (!r || r->phase == EXEC_DONE || r->stop.msg || !r->held)
		return;
	r->held = false;
	switch (r->phase) {
	case EXEC_UNWRAP_PENDING: /* rolled back to go again as written */
	case EXEC_UNWRAP_CALLING:
	case EXEC_UNWRAP_WAITING:
		exec_run_unwrap_released(r, go, why);
		return;
	case EXEC_WAITING:
	case EXEC_HELD:
	case EXEC_SETTING:
	case EXEC_ON_CONN:
	case EXEC_COPY_OUT:
	case EXEC_COMMIT_WAIT:
	case EXEC_DONE:
		break;
	}
	if (r->xact != XACT_NONE && r->xact != XACT_PLANNED) { /* its COMMIT waited for this */
		if (!go)
			r->commit_refused =
			    strdup(why ? why : "its transaction id was not recorded");
		if (r->phase == EXEC_COMMIT_WAIT && exec_run_to(r, EXEC_ON_CONN))
			exec_run_commit(r);
		return;
	}
	/* waiting for a connection, or holding one idle: nothing was sent */
	if (!go || r->ex->halted)
		run_stop(r, !go && why ? why : "not started: pgcrond was stopping", false);
	else if (r->phase == EXEC_HELD) {
		exec_run_to(r, EXEC_ON_CONN);
		exec_run_start(r, r->conn);
	} /* else it is sent as it gets its connection, carried or not */
}
