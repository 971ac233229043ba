/* The session reset between two runs on a pooled connection, and the next run's statement
 * that may travel in the same pipeline (exec_priv.h): sending the reset
 * (exec_conn_reset_send) and taking each of its answers (exec_conn_reset_result);
 * exec_drive.c reads them and acts on them (the run carried, the connection idle or closed),
 * as it reads a run's answers and exec_run.c takes each one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "exec_priv.h"
#include "pgconn.h"
#include "sqlscan.h"

/* The reset, as one pipeline (one round trip):
 *  - ROLLBACK, if the run left a transaction open or aborted;
 *  - statement_timeout = 0, if the run may have left it tiny ('1ms'): a timeout that
 *    expires while DISCARD ALL works is left pending by the server and cancels the next
 *    statement. A run whose statements all went with a reset set only its own timeout
 *    (one carried SELECT, INSERT ...), so when that is 0 or at least RESET_GUARD_MS, this
 *    step and its Sync are left out: one implicit transaction instead of two. Should such
 *    a statement have set a tiny timeout all the same, what the timeout cancels is in the
 *    same part of the pipeline (DISCARD ALL, the set_config(), the carried statement) and
 *    the reset fails: the connection is replaced and the carried run waits for another;
 *  - Sync: DISCARD ALL refuses to run after another statement of the same pipeline;
 *  - DISCARD ALL: the role (SET SESSION AUTHORIZATION DEFAULT), every setting back to its
 *    value at connection start (so pgcrond's own settings belong in the startup
 *    parameters, never in a SET), temp tables, prepared statements, cursors, advisory
 *    locks and LISTENs. It commits at once, so a statement may follow before the Sync;
 *  - the statement_timeout and application_name of the run first in the pool's queue,
 *    which this connection serves as soon as the reset is answered (conn->reset.next_run), or
 *    else SHOW the default that DISCARD ALL restored: either way a run whose settings
 *    match needs no set_config() round trip of its own. Nothing, when that run wants what
 *    DISCARD ALL restores (the default timeout a SHOW read in the last DEFAULT_TRUST_US,
 *    and no name), or when no run waits after a run and that default is known;
 *  - that run's statement itself, when it may follow other statements in one implicit
 *    transaction (sqlscan_pipeline_safe: one SELECT, INSERT, REFRESH ...; not VACUUM, CALL
 *    or several statements): it runs only if DISCARD ALL and the set_config() succeeded,
 *    since the server skips the rest of a pipeline's part after an error (run_unsend). A
 *    run on a reused connection then costs one round trip, not two;
 *  - Sync. */
static const char *const reset_sql[] = {
    "ROLLBACK",                  /* only if a transaction is open or aborted */
    "SET statement_timeout = 0", /* then a Sync */
    "DISCARD ALL",
    "SHOW statement_timeout", /* not pg_settings: reading that view costs ten times more */
};

/* The default statement_timeout a SHOW read is trusted this long: a server reload may change
 * it (postgresql.conf), and a pool never idle would not SHOW it again. After that, runs set
 * their timeout until the connection's next idle reset reads it anew. */
#define DEFAULT_TRUST_US 10000000 /* 10 s */
/* A statement_timeout under this, left by a run, is set to 0 before DISCARD ALL. */
#define RESET_GUARD_MS 1000
_Static_assert(sizeof(reset_sql) / sizeof(reset_sql[0]) == RESET_STEPS, "RESET_STEPS");

/* Put R's first statement into C's open pipeline, after a set_config() of R's settings, and
 * give C to R: the answers before it are read first (exec_drive.c, conn_reset_read). False if libpq
 * could not take it (then nothing of it was sent). */
bool exec_conn_carry(struct conn *c, struct exec_run *r)
{
	const struct run_stmt *st = &r->stmts[0];
	if (r->cb.on_xid && !PQsendQueryParams(c->drv.conn, XID_SQL, 0, NULL, NULL, NULL, NULL, 0))
		return false;
	r->read.xid_pending = r->cb.on_xid != NULL;
	if (!PQsendQueryParams(c->drv.conn, st->sql, st->n_params, NULL,
	                       (const char *const *)st->params, NULL, NULL, 0))
		return false;
	if (c->reset.next_run == r) {
		c->reset.next_run = NULL;
		r->link.reserved = NULL;
	}
	if (r->conn != c)
		exec_run_attach(r, c);
	c->carrying = true;
	r->read.in_pipeline = true;
	return true;
}

bool exec_run_may_carry(struct exec_run *r)
{
	if (r->n_stmts == 0 || r->timeout_ms < 0 || r->stop.msg || r->held)
		return false;
	struct run_stmt *st = &r->stmts[0];
	if (st->carry < 0)
		st->carry = sqlscan_pipeline_safe(st->sql);
	return st->carry > 0;
}

/* Begin C's reset (see reset_sql): it is RESETTING from now on, and the reset's pipeline is
 * sent; with CARRY, the next run's statement may go in it. False if it could not be sent
 * (then the caller gives up on the connection). */
bool exec_conn_reset_send(struct conn *c, bool carry)
{
	PGTransactionStatusType ts = PQtransactionStatus(c->drv.conn);
	/* the run that waits first, which this connection serves next: none once halted */
	struct exec_run *next = c->pool->ex->halted ? NULL : TAILQ_FIRST(&c->pool->waiting);
	/* the timeout the session has now, if only pgcrond set it */
	bool guard = c->guard_reset || c->timeout_ms < 0 ||
	             (c->timeout_ms > 0 && c->timeout_ms < RESET_GUARD_MS) || ts != PQTRANS_IDLE;
	bool ok = true;

	c->guard_reset = false;
	c->state = CONN_RESETTING;
	c->timeout_ms = -1;
	c->app_name[0] = '\0'; /* DISCARD ALL restores the startup application_name */
	/* answered within half the connection check (the driver's, exec_set_connection_check), as
	 * the idle connection's check is asked every other half (conndrv.h), so a connection that
	 * went silent while idle (a NAT or firewall that forgot it, a failover without a reset) is
	 * replaced within one connection check: TCP keepalives alone cannot see a peer whose
	 * kernel still answers them */
	conndrv_busy(&c->drv, c->drv.check_ms / 2);
	if (ts != PQTRANS_IDLE && ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR)
		return false; /* active or unknown: nothing sane to reuse */
	if (!PQenterPipelineMode(c->drv.conn))
		return false;
	c->reset.step = ts != PQTRANS_IDLE ? 0 : guard ? 1 : 2;
	c->reset.syncs = guard ? 0 : RESET_SYNCS - 1;
	c->reset.failed = false;
	c->reset.timeout_ms = -1;
	c->reset.app[0] = '\0';
	if (next) {
		/* it is this connection's: no round trip of its own to set its timeout and
		 * name, and none to wait for a connection another run took meanwhile */
		exec_wait_remove(next);
		c->reset.next_run = next;
		next->link.reserved = c;
		next->carried = true; /* it waited for the run before it on C */
	}
	if (c->reset.step == 0)
		ok = PQsendQueryParams(c->drv.conn, reset_sql[0], 0, NULL, NULL, NULL, NULL, 0);
	if (guard)
		ok = ok &&
		     PQsendQueryParams(c->drv.conn, reset_sql[1], 0, NULL, NULL, NULL, NULL, 0) &&
		     PQpipelineSync(c->drv.conn);
	ok = ok && PQsendQueryParams(c->drv.conn, reset_sql[2], 0, NULL, NULL, NULL, NULL, 0);
	if (c->default_timeout_ms >= 0 && clock_mono_us() - c->default_at_us >= DEFAULT_TRUST_US)
		c->default_timeout_ms = -1;
	/* after a run (CARRY) with none waiting, the default is known: no SHOW; an idle
	 * connection's reset (its check, exec_warm) reads it anew */
	c->reset.no_set =
	    c->default_timeout_ms >= 0 &&
	    (next ? next->timeout_ms == c->default_timeout_ms && !next->app_name[0] : carry);
	if (c->reset.no_set) {
		/* what DISCARD ALL restores is what the run wants: no set_config() (a statement
		 * per run, a quarter of the pool's throughput when many runs are due at once) */
		if (ok && next && carry && exec_run_may_carry(next))
			ok = exec_conn_carry(c, next);
	} else if (next && next->timeout_ms >= 0) {
		bool app = next->app_name[0] != '\0';
		const char *params[2] = {next->timeout_text, next->app_name};
		c->reset.timeout_ms = next->timeout_ms;
		if (app)
			snprintf(c->reset.app, sizeof(c->reset.app), "%s", next->app_name);
		if (ok)
			ok = PQsendQueryParams(c->drv.conn, app ? SET_RUN_SQL : SET_TIMEOUT_SQL,
			                       app ? 2 : 1, NULL, params, NULL, NULL, 0);
		if (ok && carry && exec_run_may_carry(next))
			ok = exec_conn_carry(c, next);
	} else {
		ok = ok &&
		     PQsendQueryParams(c->drv.conn, reset_sql[3], 0, NULL, NULL, NULL, NULL, 0);
	}
	if (!ok || !PQpipelineSync(c->drv.conn))
		return false;
	return conndrv_flush(&c->drv);
}

/* A time setting as SHOW prints it ("0", "250ms", "30s", "5min", "2h", "1d") in ms, or -1
 * if it reads otherwise (then the next run sets its timeout anyway). */
static int64_t show_timeout_ms(const char *v)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"", 1},        {"ms", 1},      {"s", 1000},
	             {"min", 60000}, {"h", 3600000}, {"d", 86400000}};
	char *end = NULL;
	long long n = strtoll(v, &end, 10);

	if (end == v || n < 0)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(end, units[i].unit) == 0)
			return (int64_t)n * units[i].ms;
	return -1;
}

/* One answer of the reset's pipeline, read by exec_drive.c (conn_reset_read): a statement's
 * result, or a Sync. */
void exec_conn_reset_result(struct conn *c, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	char buf[256];

	if (st == PGRES_PIPELINE_SYNC) {
		c->reset.syncs++;
		return;
	}
	if (c->reset.step >= RESET_STEPS)
		return; /* a carried statement's, which exec_run_read takes */
	if (st == PGRES_TUPLES_OK && c->reset.step == RESET_STEPS - 1) {
		if (c->reset.timeout_ms >= 0) {
			c->timeout_ms = c->reset.timeout_ms;
			snprintf(c->app_name, sizeof(c->app_name), "%s", c->reset.app);
		} else if (PQntuples(res) == 1) {
			c->timeout_ms = show_timeout_ms(PQgetvalue(res, 0, 0));
			c->default_timeout_ms = c->timeout_ms;
			c->default_at_us = clock_mono_us();
		}
		return;
	}
	if (st == PGRES_COMMAND_OK)
		return;
	if (!c->reset.failed)
		log_warning("database %s: could not reset a connection after a run (%s: %s); "
		            "closing it",
		            c->pool->name,
		            reset_sql[c->reset.step < RESET_STEPS ? c->reset.step : 0],
		            pgconn_result_error(res, buf, sizeof(buf)));
	c->reset.failed = true;
}
