/* A run's connection gone silent (exec_priv.h): a NAT, firewall or proxy that stopped
 * forwarding it without closing it, a failover without a reset. The run waits for an answer
 * that never comes, and nothing on its own connection tells that from a statement still at
 * work: the peer's kernel answers TCP keepalives and acknowledges what is sent, so neither
 * the keepalives nor tcp_user_timeout ever give it up. pgcrond's own session of the run's
 * database (ownsess.h) can tell: once a run's connection has been silent for half the
 * connection check (conndrv's silent()), and again each time that session comes back after
 * losing its own connection, one statement looks at the backends of the pool's silent runs in
 * pg_stat_activity. A backend idle (or idle in a transaction) while its run waits, or blocked
 * reading from or writing to the connection, is ended there (pg_terminate_backend, waiting for
 * it to go, so that the job cannot run twice at once), and its run fails as a lost connection
 * (SQLSTATE 08006, retried under its job's policy), its connection closed; so does a run whose
 * backend is gone from the server. A run that may have committed (its backend idle with its
 * statement over, or gone) is not retried: a retry could do its work twice, where the next
 * fire does it once. A backend at work is left alone and looked at again when
 * its connection has been silent for another half check.
 *
 * Nothing is sent while no run's connection is silent: a lone instance at rest, or whose runs
 * answer within half the check, pays nothing. The session is joined for a look and left once
 * no run of the pool is silent; when the database is the history's, that session is open
 * anyway. No verdict is given where the session cannot be sure it sees the run's backend: it
 * reached another address than the run's connection did, or a pid the server gives it is not
 * the one its connection reported (a pooler between them). */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conndrv.h"
#include "exec_priv.h"
#include "log.h"
#include "ownsess.h"
#include "pgconn.h"

/* A backend idle for less than this part of the connection check may have sent an answer
 * still on its way: it is not judged yet. */
#define IDLE_PART 4
/* Runs looked at in one statement; the others at the next look, which follows at once. */
#define LOOK_MAX 64

/* SQL: for each backend $1[i] (pids) whose run's connection has been silent for $2[i] ms
 * (the same backend only if it started before that silence did, so a pid reused since is
 * never taken for it): gone (not on the server), stuck (idle, or idle in a transaction, for
 * $3 ms at least, or blocked on its connection), early (idle since before the silence began:
 * the run's last statement never reached it), its state and wait, and, where stuck, whether
 * it was ended; and this session's own pid, which a pooler would not give. */
/* ... backend S ended (the takeover's fence: pgconn.h) */
#define END_BACKEND_S PGCONN_SQL_END_BACKEND("s")
/* ... the times, by the server's clock: $3 ms ago, and the run's silence (and 1 s more) ago */
#define IDLE_SINCE                                                                                 \
	"(pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-)"                                     \
	" ($3::pg_catalog.int8 OPERATOR(pg_catalog.*) interval '1 millisecond'))"
#define SILENT_SINCE                                                                               \
	"(pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-)"                                     \
	" (w.quiet OPERATOR(pg_catalog.*) interval '1 millisecond'))"
#define BEFORE_SILENCE                                                                             \
	"(pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) ((w.quiet OPERATOR(pg_catalog.+)"    \
	" 1000) OPERATOR(pg_catalog.*) interval '1 millisecond'))"
static const char sql_look[] =
    "SELECT s.pid, s.gone, s.stuck, s.early, s.state, s.wait_event,"
    "  CASE WHEN s.stuck THEN " END_BACKEND_S " ELSE false END,"
    "  pg_catalog.pg_backend_pid()"
    " FROM (SELECT w.pid, a.usesysid, a.state, a.wait_event, a.pid IS NULL AS gone,"
    "   coalesce((a.state OPERATOR(pg_catalog.=) ANY (ARRAY['idle', 'idle in transaction',"
    "      'idle in transaction (aborted)'])"
    "     AND a.state_change OPERATOR(pg_catalog.<=) " IDLE_SINCE ")"
    "    OR (a.state OPERATOR(pg_catalog.=) 'active'"
    "     AND a.wait_event OPERATOR(pg_catalog.=) ANY (ARRAY['ClientRead', 'ClientWrite'])),"
    "    false) AS stuck,"
    "   coalesce(a.state OPERATOR(pg_catalog.<>) 'active'"
    "    AND a.state_change OPERATOR(pg_catalog.<) " BEFORE_SILENCE ", false) AS early"
    "  FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int4[]),"
    "   pg_catalog.unnest($2::pg_catalog.int8[])) AS w(pid, quiet)"
    "  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) w.pid"
    "   AND a.backend_start OPERATOR(pg_catalog.<=) " SILENT_SINCE ") s";

static void look(evutil_socket_t fd, short what, void *arg);

/* R waits for an answer from its server (not for exec_release(), nor for a cancel's end). */
static bool awaiting(const struct exec_run *r)
{
	if (!r || r->stop.msg || r->pid <= 0)
		return false;
	switch (r->phase) {
	case EXEC_SETTING:
	case EXEC_ON_CONN:
	case EXEC_COPY_OUT:
		return true;
	case EXEC_WAITING:
	case EXEC_HELD:
	case EXEC_COMMIT_WAIT:
	case EXEC_UNWRAP_PENDING:
	case EXEC_UNWRAP_CALLING:
	case EXEC_UNWRAP_WAITING:
	case EXEC_DONE:
		return false;
	}
	return false;
}

/* C's run waits for an answer, and nothing came or went for half the connection check. */
static bool silent(const struct conn *c, int64_t now_us)
{
	return c->state == CONN_BUSY && awaiting(c->run) &&
	       now_us - c->drv.io_us >= c->drv.check_ms * 500;
}

static bool same(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* A and B reached the same address (host, the address it resolved to, port). */
static bool same_server(PGconn *a, PGconn *b)
{
	return a && b && same(PQhost(a), PQhost(b)) && same(PQhostaddr(a), PQhostaddr(b)) &&
	       same(PQport(a), PQport(b));
}

static void leave(struct exec_watch *w)
{
	if (!w->joined)
		return;
	ownsess_leave(&w->sess);
	w->joined = w->looking = w->all_due = false;
}

/* WHY for the run whose backend PID row I of RES describes, silent for QUIET_S. */
static void verdict(const PGresult *res, int i, int pid, long long quiet_s, char *why, size_t len)
{
	const char *state = PQgetvalue(res, i, 4), *wait = PQgetvalue(res, i, 5);
	int n;

	if (*PQgetvalue(res, i, 1) == 't')
		n = snprintf(
		    why, len,
		    "connection went silent: no answer for %lld s, and its backend (pid %d) "
		    "is no longer on the server (a NAT, firewall or proxy that stopped "
		    "forwarding, or a failover); whether its statement committed is not "
		    "known, so it is not retried",
		    quiet_s, pid);
	else if (strcmp(state, "active") == 0)
		n = snprintf(
		    why, len,
		    "connection went silent: no answer for %lld s while its backend (pid %d) "
		    "waited on the connection (%s): a NAT, firewall or proxy that stopped "
		    "forwarding; the backend was ended, which rolled its statement back",
		    quiet_s, pid, wait);
	else if (strcmp(state, "idle") != 0)
		n = snprintf(
		    why, len,
		    "connection went silent: no answer for %lld s while its backend (pid %d) "
		    "sat %s on the server: a NAT, firewall or proxy that stopped forwarding; "
		    "the backend was ended, which rolled its transaction back",
		    quiet_s, pid, state);
	else if (*PQgetvalue(res, i, 3) == 't')
		n = snprintf(
		    why, len,
		    "connection went silent: no answer for %lld s while its backend (pid %d) "
		    "sat idle on the server, which never got the statement: a NAT, firewall "
		    "or proxy that stopped forwarding; the backend was ended",
		    quiet_s, pid);
	else
		n = snprintf(
		    why, len,
		    "connection went silent: no answer for %lld s while its backend (pid %d) "
		    "sat idle on the server, its statement over but the answer lost on the "
		    "way (a NAT, firewall or proxy that stopped forwarding), so it may have "
		    "committed; the backend was ended, and the run is not retried",
		    quiet_s, pid);
	if (n < 0 || (size_t)n >= len) /* cut: still a message (snprintf ended it) */
		why[len - 1] = '\0';
}

/* The look's answer: each run still silent since the look went out, whose backend was ended
 * or is gone, fails as a lost connection. */
static struct exec_pool *pool_of(struct ownsess_item *it)
{
	return (struct exec_pool *)((char *)it - offsetof(struct exec_pool, watch.look));
}

static void look_lost(struct ownsess_item *it, const char *why)
{
	struct exec_watch *w = &pool_of(it)->watch;
	w->looking = false;
	w->all_due = true; /* looked at again as the session comes back (watch_connected) */
}

static void looked(struct ownsess_item *it, const struct stmtq_result *r)
{
	struct exec_pool *p = pool_of(it);
	struct exec_watch *w = &p->watch;
	PGconn *own = stmtq_conn(ownsess_q(&w->sess));

	w->looking = false;
	bool complained = false;
	if (r->failed || !r->res) {
		complained = true;
		if (log_complain(&w->complaint, NULL))
			log_warning(
			    "database %s: cannot look at the backends of runs whose connection "
			    "went silent: %s",
			    p->name, r->failed ? r->err : "no answer");
	}
	for (int i = 0; !complained && i < PQntuples(r->res); i++) {
		int pid = atoi(PQgetvalue(r->res, i, 0));
		if (atoi(PQgetvalue(r->res, i, 7)) != PQbackendPID(own)) {
			complained = true;
			if (log_complain(&w->complaint, NULL))
				log_warning(
				    "database %s: cannot look at the backends of runs whose "
				    "connection went silent: pgcrond's own session is not given "
				    "its backend's pid (a pooler?); such a run waits for its "
				    "timeout",
				    p->name);
			break;
		}
		struct conn *c = LIST_FIRST(&p->conns);
		while (c && !(c->state == CONN_BUSY && awaiting(c->run) && c->run->pid == pid))
			c = LIST_NEXT(c, in_pool);
		/* still silent since the look went out, and on the server the session sees */
		if (!c || c->drv.io_us >= w->sent_us || !same_server(own, c->drv.conn))
			continue;
		bool gone = *PQgetvalue(r->res, i, 1) == 't',
		     stuck = *PQgetvalue(r->res, i, 2) == 't',
		     ended = *PQgetvalue(r->res, i, 6) == 't';
		if (!gone && stuck && !ended) {
			complained = true;
			if (log_complain(&w->complaint, NULL))
				log_warning(
				    "database %s: backend %d of a run of %s sits %s while its "
				    "connection is silent, and pgcrond could not end it (it may "
				    "not, or it did not go within 3 s); looked at again later",
				    p->name, pid, c->run->name ? c->run->name : "pgcrond",
				    PQgetvalue(r->res, i, 4));
		}
		if (!gone && !(stuck && ended))
			continue;
		char why[512];
		verdict(r->res, i, pid, (long long)((clock_mono_us() - c->drv.io_us) / 1000000),
		        why, sizeof(why));
		log_warning("database %s: a run of %s: %s", p->name,
		            c->run->name ? c->run->name : "pgcrond", why);
		/* gone, or idle with its statement over: it may have committed (verdict) */
		c->run->out.unknown_commit =
		    gone || (strcmp(PQgetvalue(r->res, i, 4), "idle") == 0 &&
		             *PQgetvalue(r->res, i, 3) != 't');
		exec_run_conn_lost(c->run, why);
	}
	if (!complained)
		log_complaint_reset(&w->complaint);
	event_active(&w->ev, EV_TIMEOUT, 0); /* what came due meanwhile, or the session left */
}

/* The look at the silent runs that are due (a run's silence, or the session back), an item
 * of the session's outbox. */
static bool send_look(struct ownsess_item *it)
{
	struct exec_pool *p = pool_of(it);
	struct exec_watch *w = &p->watch;
	int64_t now_us = clock_mono_us();
	char pids[LOOK_MAX * 12 + 3], quiet[LOOK_MAX * 21 + 3], idle[24];
	size_t np = 0, nq = 0, n = 0;

	pids[np++] = quiet[nq++] = '{';
	for (struct conn *c = LIST_FIRST(&p->conns); c && n < LOOK_MAX; c = LIST_NEXT(c, in_pool)) {
		if (!silent(c, now_us) || !(c->watch_due || w->all_due))
			continue;
		c->watch_due = false;
		np += (size_t)snprintf(pids + np, sizeof(pids) - np, "%s%d", n ? "," : "",
		                       c->run->pid);
		nq += (size_t)snprintf(quiet + nq, sizeof(quiet) - nq, "%s%lld", n ? "," : "",
		                       (long long)((now_us - c->drv.io_us) / 1000));
		n++;
	}
	snprintf(pids + np, sizeof(pids) - np, "}");
	snprintf(quiet + nq, sizeof(quiet) - nq, "}");
	w->all_due = false;
	if (n == 0)
		return false;
	snprintf(idle, sizeof(idle), "%lld", (long long)(p->ex->check_ms / IDLE_PART));
	const char *params[3] = {pids, quiet, idle};
	w->looking = true;
	w->sent_us = now_us;
	(void)ownsess_push(it, 0, sql_look, 3, params);
	return true;
}

static void watch_connected(void *arg)
{
	struct exec_pool *p = arg;
	p->watch.all_due = true;
	event_active(&p->watch.ev, EV_TIMEOUT, 0);
}

static bool watch_failed(void *arg, const char *why, bool was_ready)
{
	struct exec_pool *p = arg;
	return p->watch.joined; /* it stays joined only while a run is silent */
}

static const struct ownsess_ops watch_ops = {
    .connected = watch_connected,
    .failed = watch_failed,
};

/* The pool's look: at the runs due, on the session (joined first, if need be); the session
 * left once none of the pool's runs is silent. */
static void look(evutil_socket_t fd, short what, void *arg)
{
	struct exec_pool *p = arg;
	struct exec_watch *w = &p->watch;
	int64_t now = clock_mono_us();
	bool any = false, due = false;

	for (struct conn *c = LIST_FIRST(&p->conns); c; c = LIST_NEXT(c, in_pool))
		if (silent(c, now)) {
			any = true;
			due |= c->watch_due || w->all_due;
		}
	if (!any) {
		if (!w->looking)
			leave(w);
		return;
	}
	if (!due)
		return;
	if (!w->joined) {
		if (ownsess_join(&w->sess, p->ex->base, p->conninfo, &watch_ops, p) < 0) {
			if (log_complain(&w->complaint, NULL))
				log_warning(
				    "database %s: cannot look at runs whose connection went "
				    "silent: out of memory",
				    p->name);
			return;
		}
		w->joined = true;
		return; /* watch_connected() looks */
	}
	/* (one look at a time: its answer looks again; the session away, watch_connected()
	 * does) */
	if (!w->looking && !w->look.queued && stmtq_ready(ownsess_q(&w->sess)))
		ownsess_queue(&w->sess, &w->look);
}

void exec_watch_init(struct exec_pool *p)
{
	event_assign(&p->watch.ev, p->ex->base, -1, 0, look, p);
	p->watch.look = (struct ownsess_item){.send = send_look, .done = looked, .lost = look_lost};
}

void exec_watch_free(struct exec_pool *p)
{
	leave(&p->watch);
	event_del(&p->watch.ev);
}
