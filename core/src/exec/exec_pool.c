/* The executor's connections and pools (exec.h, exec_priv.h): opening a connection with
 * backoff, releasing it to its pool or closing it, a pool per database handing its
 * connections to waiting runs (exec_pool_dispatch), warming, the databases kept across a
 * reload, the executor's lifetime and statistics, the drain at shutdown and the
 * reachability probe. Running the statements of a run is exec.c's. */
#include <errno.h>
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
#include "exec.h"
#include "exec_priv.h"
#include "log.h"
#include "pgconn.h"

/* Reconnect backoff per database: 0.5 s doubling to 30 s, with jitter. */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
/* ... and to 2 s while the server is full (runs wait for its next free slot) */
#define FULL_RETRY_MAX_MS 2000
/* The connection check's default (exec_set_connection_check): a connect, a session reset
 * and an idle connection's liveness check must each be answered within it. */
#define CONNECTION_CHECK_DEFAULT_MS 30000
/* exec_warm() resets an idle connection before a burst when it has not been used for this
 * long: a backend idle for seconds answers its first statement slower, and the default
 * statement_timeout a reset reads is trusted for 10 s (exec_reset.c) */
#define WARM_IDLE_MS 5000

/* ---- connections ---------------------------------------------------------------------- */

/* libpq's error for the connection as one line (malloc'd; NULL if out of memory). */
char *exec_conn_error(const PGconn *pg, const char *conninfo)
{
	char buf[1024];
	/* the password scrubbed: libpq may quote a malformed connection string */
	return strdup(pgconn_error_safe(pg, conninfo, buf, sizeof(buf)));
}

/* Send what libpq holds for C; then wait for the answer, and for a writable socket if some
 * of it is still to go. False if the connection broke. */
bool exec_conn_flush(struct conn *c)
{
	return conndrv_flush(&c->drv);
}

void exec_conn_close(struct conn **cp)
{
	struct conn *c = *cp;
	if (!c)
		return;
	struct pool *p = c->pool;
	exec_conn_unreserve(c);
	conndrv_close(&c->drv);
	if (c->state == CONN_CONNECTING)
		p->n_connecting--;
	if (c->prev)
		c->prev->next = c->next;
	else
		p->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	p->n_conns--;
	free(c);
	*cp = NULL;
}

static void pool_log_failure(struct pool *p, const char *err)
{
	char redacted[1024];
	pgconn_redact_conninfo(p->conninfo, redacted, sizeof(redacted));
	if (log_complain(&p->complaint))
		log_warning("database %s (%s): cannot connect: %s; retrying with backoff", p->name,
		            redacted, err);
}

void exec_run_fail(struct exec_run *r, const char *message, const char *sqlstate)
{
	if (r->state == RUN_DONE)
		return;
	/* Keep an error already recorded (the first one is reported), but not the tag of an
	 * earlier statement that succeeded ("SELECT 1; COPY ..." losing its connection). */
	if (!r->failed || !r->message) {
		free(r->message);
		r->message = strdup(message ? message : "");
		snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", sqlstate ? sqlstate : "");
	}
	r->failed = true;
	exec_run_complete(r);
}

void exec_wait_remove(struct exec_run *r)
{
	struct pool *p = r->pool;
	if (r->wprev)
		r->wprev->wnext = r->wnext;
	else
		p->wait_head = r->wnext;
	if (r->wnext)
		r->wnext->wprev = r->wprev;
	else
		p->wait_tail = r->wprev;
	r->wprev = r->wnext = NULL;
	p->n_waiting--;
}

/* A run reserved by a connection that will not serve it after all (exec_conn_unreserve), or whose
 * statement the server skipped (exec_run_unsend), goes back to the head of the queue, where it
 * was. */
void exec_wait_push_front(struct pool *p, struct exec_run *r)
{
	r->wprev = NULL;
	r->wnext = p->wait_head;
	if (p->wait_head)
		p->wait_head->wprev = r;
	else
		p->wait_tail = r;
	p->wait_head = r;
	p->n_waiting++;
}

void exec_conn_unreserve(struct conn *c)
{
	struct exec_run *r = c->next_run;
	if (!r)
		return;
	c->next_run = NULL;
	r->reserved = NULL;
	exec_wait_push_front(c->pool, r);
}

/* An idle connection is checked, and a reset must be answered, within half the connection
 * check each, so a connection that went silent while idle (a NAT or firewall that forgot it,
 * a failover without a reset) is replaced within one connection check. TCP keepalives alone
 * cannot see a peer whose kernel still answers them. */
int64_t exec_conn_idle_check_ms(const struct conn *c)
{
	return c->pool->ex->check_ms / 2;
}

static void backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pool *p = arg;
	conndrv_unwait_server(&p->wait);
	p->backing_off = false;
	exec_pool_dispatch(p);
}

/* Another connection to the pool's server succeeded: the backoff ends at the loop's next
 * turn (conndrv_wait_server: only a timer is armed here). */
static void backoff_wake(void *arg)
{
	struct pool *p = arg;
	struct timeval now = {0, 0};
	if (p->backing_off)
		event_add(&p->backoff_ev, &now);
}

/* A connection attempt failed (WHY, or libpq's own words): the pool backs off before the
 * next attempt, and if it has no connection left, the runs waiting on it fail. */
void exec_conn_connect_failed(struct conn *c, const char *why)
{
	struct pool *p = c->pool;
	char *err = strdup(why);
	exec_conn_close(&c);
	p->failures++;
	free(p->last_error);
	p->last_error = err;
	pool_log_failure(p, err ? err : "out of memory");
	/* While the pool holds live connections, or the server said it takes no more now
	 * (53300: full, or a connection limit), waiting runs wait for a connection, within their
	 * timeout, instead of failing: the database is there, and a slot frees when any of its
	 * sessions ends. They fail when no connection is left for another cause. */
	bool full = err && conndrv_server_full(err);
	if (!full && p->n_connecting == 0 && p->n_conns == 0) {
		while (p->wait_head) {
			struct exec_run *r = p->wait_head;
			exec_wait_remove(r);
			exec_run_fail(r, err ? err : "could not connect", "08001");
		}
	}
	/* a full server is asked again every FULL_RETRY_MAX_MS at most: runs wait on it */
	int64_t delay = pgconn_backoff_ms((unsigned)(p->failures - 1), BACKOFF_MIN_MS,
	                                  full ? FULL_RETRY_MAX_MS : BACKOFF_MAX_MS);
	struct timeval tv = exec_ms_tv(delay);
	p->backing_off = true;
	event_add(&p->backoff_ev, &tv);
	/* another connection to the server succeeding ends the backoff, unless the server
	 * itself refused this one (a role that may not log in) */
	if (!conndrv_server_answered(err ? err : ""))
		conndrv_wait_server(&p->wait, p->ex->base, p->server, backoff_wake, p);
}

/* The driver's connected(). */
static void on_conn_connected(void *arg)
{
	struct conn *c = arg;
	struct pool *p = c->pool;
	c->state = CONN_IDLE;
	c->connected_us = clock_wall_us();
	c->idle_at_ms = clock_mono_ms();
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

static void on_conn_check(void *arg);

static const struct conndrv_ops conn_ops = {
    .connected = on_conn_connected,
    .readable = exec_on_conn_readable,
    .failed = exec_on_conn_failed,
    .check = on_conn_check,
};

static int conn_open(struct pool *p)
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
	c->next = p->conns;
	if (p->conns)
		p->conns->prev = c;
	p->conns = c;
	p->n_conns++;
	p->n_connecting++;
	/* a connect refused at once has been failed (exec_conn_connect_failed) already */
	(void)conndrv_connect(&c->drv, p->conninfo, "pgcrond");
	return 0;
}

/* The driver's check(): the liveness check of an idle connection is a reset, a round trip
 * with a deadline, and harmless. */
static void on_conn_check(void *arg)
{
	struct conn *c = arg;
	if (c->state == CONN_IDLE)
		exec_conn_reset(c, false);
}

/* A run is done with C: reset and back to the pool if it can be reused, closed otherwise. */
void exec_conn_release(struct conn *c, bool broken)
{
	struct pool *p = c->pool;
	c->run = NULL;
	pgconn_notices_flush(
	    &c->drv.notices); /* "N further notices suppressed" for the run's job */
	c->drv.notices.job = NULL;
	if (broken || c->tainted || p->removed || c->generation != p->generation ||
	    PQstatus(c->drv.conn) != CONNECTION_OK ||
	    p->n_conns - p->n_connecting > (size_t)p->size) {
		exec_conn_close(&c);
	} else {
		exec_conn_reset(c, true);
	}
	exec_pool_dispatch(p);
}

/* ---- pools ---------------------------------------------------------------------------- */

/* Whatever the server sent an idle connection (a FATAL before it closed, EOF) is read now,
 * without blocking: false if the connection is gone. */
static bool conn_still_open(struct conn *c)
{
	return PQconsumeInput(c->drv.conn) && PQstatus(c->drv.conn) == CONNECTION_OK &&
	       PQtransactionStatus(c->drv.conn) == PQTRANS_IDLE;
}

void exec_pool_dispatch(struct pool *p)
{
	if (p->ex->halted)
		return; /* no run starts (exec_halt) */
	/* A probe opens one connection when nothing else would (exec_probe). */
	if (p->probing && !p->wait_head && !p->backing_off && !p->removed && p->n_connecting == 0 &&
	    p->n_conns < (size_t)p->size) {
		if (conn_open(p) < 0)
			p->probing = false;
		return;
	}
	while (p->wait_head) {
		struct exec_run *r = p->wait_head;
		struct conn *idle = NULL;
		for (struct conn *c = p->conns; c; c = c->next) {
			if (c->state == CONN_IDLE && c->generation == p->generation &&
			    !c->tainted) {
				idle = c;
				break;
			}
		}
		if (idle && !conn_still_open(idle)) {
			/* it died while idle and its event is still on its way: replace it before
			 * it serves a run, so no run fails for what happened before it began */
			exec_conn_close(&idle);
			continue;
		}
		if (idle) {
			exec_wait_remove(r);
			exec_run_start_on(r, idle);
			continue;
		}
		if (p->backing_off || p->removed)
			return;
		/* Open a connection per waiting run, up to the pool's size. */
		if (p->n_connecting >= p->n_waiting || p->n_conns >= (size_t)p->size)
			return;
		int err = conn_open(p);
		if (err < 0) {
			exec_wait_remove(r);
			exec_run_fail(r, "out of memory opening a connection", "53200");
		}
	}
}

struct pool *exec_pool_find(struct exec *ex, const char *name)
{
	for (struct pool *p = ex->pools; p; p = p->next)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

void exec_warm(struct exec *ex, const char *database, size_t n)
{
	struct pool *p = exec_pool_find(ex, database);
	if (!p || p->removed || p->failures > 0 || p->backing_off)
		return;
	size_t want = n < (size_t)p->size ? n : (size_t)p->size;
	int64_t now = clock_mono_ms();
	for (struct conn *c = p->conns, *next; c; c = next) {
		next = c->next; /* a reset that cannot be sent closes C */
		if (c->state == CONN_IDLE && c->generation == p->generation && !c->tainted &&
		    now - c->idle_at_ms >= WARM_IDLE_MS)
			exec_conn_reset(c, false);
	}
	/* a connect refused at once backs the pool off (exec_conn_connect_failed) */
	while (p->n_conns < want && p->failures == 0 && !p->backing_off)
		if (conn_open(p) < 0)
			break;
}

static void pool_close_idle(struct pool *p)
{
	struct conn *c = p->conns, *next;
	for (; c; c = next) {
		next = c->next;
		if (c->state != CONN_BUSY)
			exec_conn_close(&c);
	}
}

int exec_set_database(struct exec *ex, const char *name, const char *conninfo, int pool)
{
	struct pool *p = exec_pool_find(ex, name);
	if (p) {
		if (strcmp(p->conninfo, conninfo) != 0) {
			char *ci = strdup(conninfo);
			if (!ci)
				return -ENOMEM;
			free(p->conninfo);
			p->conninfo = ci;
			conndrv_server_key(ci, p->server, sizeof(p->server));
			p->generation++;
			p->failures = 0;
			pool_close_idle(p);
		}
		p->size = pool > 0 ? pool : 1;
		p->removed = false;
		exec_pool_dispatch(p);
		return 0;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ex = ex;
	p->name = strdup(name);
	p->conninfo = strdup(conninfo);
	if (!p->name || !p->conninfo) {
		free(p->name);
		free(p->conninfo);
		free(p);
		return -ENOMEM;
	}
	p->size = pool > 0 ? pool : 1;
	conndrv_server_key(p->conninfo, p->server, sizeof(p->server));
	evtimer_assign(&p->backoff_ev, ex->base, backoff_cb, p);
	p->next = ex->pools;
	ex->pools = p;
	return 0;
}

void exec_retain_databases(struct exec *ex, const char *const *names, size_t n)
{
	for (struct pool *p = ex->pools; p; p = p->next) {
		bool keep = false;
		for (size_t i = 0; i < n && !keep; i++)
			keep = strcmp(names[i], p->name) == 0;
		if (!keep) {
			/* Kept as a husk: running runs still point at it; no new ones can come. */
			p->removed = true;
			pool_close_idle(p);
			while (p->wait_head) {
				struct exec_run *r = p->wait_head;
				exec_wait_remove(r);
				exec_run_fail(r, "the database was removed from the configuration",
				              "08003");
			}
		}
	}
}

/* ---- lifetime ------------------------------------------------------------------------- */

int exec_new(struct event_base *base, struct exec **out)
{
	struct exec *ex = calloc(1, sizeof(*ex));
	if (!ex)
		return -ENOMEM;
	ex->base = base;
	ex->check_ms = CONNECTION_CHECK_DEFAULT_MS;
	event_assign(&ex->drained_ev, base, -1, 0, exec_drained_cb, ex);
	int err = cancel_new(base, &ex->cancel);
	if (err < 0) {
		free(ex);
		return err;
	}
	*out = ex;
	return 0;
}

void exec_free(struct exec **exp)
{
	struct exec *ex = *exp;
	if (!ex)
		return;
	for (struct pool *p = ex->pools; p; p = p->next)
		for (struct conn *c = p->conns; c; c = c->next)
			c->next_run = NULL; /* freed below with every run */
	while (ex->runs) {
		struct exec_run *r = ex->runs;
		ex->runs = r->anext;
		exec_run_free(&r);
	}
	while (ex->pools) {
		struct pool *p = ex->pools;
		ex->pools = p->next;
		while (p->conns) {
			struct conn *c = p->conns;
			exec_conn_close(&c);
		}
		event_del(&p->backoff_ev);
		conndrv_unwait_server(&p->wait);
		free(p->name);
		free(p->conninfo);
		free(p->last_error);
		free(p);
	}
	cancel_free(&ex->cancel);
	event_del(&ex->drained_ev);
	free(ex);
	*exp = NULL;
}

void exec_set_connection_check(struct exec *ex, int64_t ms)
{
	ex->check_ms = ms > 0 ? ms : CONNECTION_CHECK_DEFAULT_MS;
	for (struct pool *p = ex->pools; p; p = p->next)
		for (struct conn *c = p->conns; c; c = c->next)
			conndrv_set_check(&c->drv, ex->check_ms);
}

size_t exec_database_stats(const struct exec *ex, struct exec_db_stats *out, size_t max)
{
	size_t n = 0;
	for (const struct pool *p = ex->pools; p; p = p->next) {
		if (p->removed)
			continue;
		if (n < max) {
			struct exec_db_stats *st = &out[n];
			*st = (struct exec_db_stats){.name = p->name,
			                             .pool = p->size,
			                             .connecting = p->n_connecting,
			                             .waiting = p->n_waiting,
			                             .failures = p->failures,
			                             .last_error = p->last_error};
			for (const struct conn *c = p->conns; c; c = c->next) {
				if (c->state == CONN_CONNECTING)
					continue;
				st->open++;
				st->idle += c->state == CONN_IDLE;
				st->busy += c->state == CONN_BUSY;
			}
			/* Not this pool's own word alone: another role's pool, or the history
			 * connection, may have found the server gone (or back) since. */
			const char *why = NULL;
			int server = conndrv_server_state(ex->base, p->server, &why);
			if (st->open > 0)
				st->reachable = 1;
			else if (p->failures > 0)
				st->reachable = 0;
			else if (server == 0) {
				st->reachable = 0;
				st->last_error = why;
			} else
				st->reachable = server == 1 || p->connected_once ? 1 : -1;
		}
		n++;
	}
	return n;
}

size_t exec_active_runs(const struct exec *ex)
{
	return ex->n_runs;
}

size_t exec_waiting_runs(const struct exec *ex)
{
	size_t n = 0;
	for (const struct pool *p = ex->pools; p; p = p->next)
		n += p->n_waiting;
	return n;
}

void exec_drained_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec *ex = arg;
	if (ex->on_drained && ex->n_runs == 0)
		ex->on_drained(ex->drained_arg);
}

void exec_set_drained_cb(struct exec *ex, void (*fn)(void *arg), void *arg)
{
	ex->on_drained = fn;
	ex->drained_arg = arg;
}

/* ---- reachability --------------------------------------------------------------------- */

void exec_set_reachable_cb(struct exec *ex, void (*fn)(void *arg, const char *database), void *arg)
{
	ex->on_reachable = fn;
	ex->reachable_arg = arg;
}

int exec_probe(struct exec *ex, const char *database)
{
	struct pool *p = exec_pool_find(ex, database);
	if (!p || p->removed)
		return -ENOENT;
	p->probing = true;
	exec_pool_dispatch(p);
	return 0;
}
