/* The executor's pools and lifetime (exec.h): a pool per database, kept across a reload
 * or dropped, warming, the executor's creation and end, its statistics, the drain at
 * shutdown and the reachability probe. Running, releasing and connecting are
 * exec_drive.c's; the runs' API is exec.c's. */
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "cancel.h"
#include "clock.h"
#include "conndrv.h"
#include "exec.h"
#include "exec_priv.h"
#include "ownsess.h"

/* The connection check's default (exec_set_connection_check): a connect, a session reset
 * and an idle connection's liveness check must each be answered within it. */
#define CONNECTION_CHECK_DEFAULT_MS 30000
/* exec_warm() resets an idle connection before a burst when no run has used it for this
 * long: a backend idle for seconds answers its first statement slower, and the default
 * statement_timeout a reset reads is trusted for 10 s (exec_reset.c). A run, not the idle
 * connection's check (a reset every half connection check): a check 4 s before the instant
 * left the backend as cold, and it skipped the warm-up of the first minute after a start. */
#define WARM_IDLE_MS 5000

/* ---- pools ---------------------------------------------------------------------------- */

static void backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec_pool *p = arg;
	conndrv_unwait_server(&p->wait);
	p->backing_off = false;
	exec_pool_dispatch(p);
}

void exec_warm(struct exec *ex, const char *database, size_t n)
{
	struct exec_pool *p = exec_pool_find(ex, database);
	if (!p || p->removed || p->failures > 0 || p->backing_off)
		return;
	size_t want = n < (size_t)p->size ? n : (size_t)p->size;
	int64_t now = clock_mono_us();
	for (struct conn *c = LIST_FIRST(&p->conns), *next; c; c = next) {
		next = LIST_NEXT(c, in_pool); /* a reset that cannot be sent closes C */
		if (p->n_conns > want && exec_conn_idle_expired(c))
			exec_conn_close(&c); /* not needed now, and unused for idle_timeout */
		else if (c->state == CONN_IDLE && c->generation == p->generation && !c->tainted &&
		         now - c->used_us >= WARM_IDLE_MS * 1000)
			exec_conn_reset(c);
	}
	/* a connect refused at once backs the pool off (exec_conn_connect_failed) */
	while (p->n_conns < want && p->failures == 0 && !p->backing_off)
		if (exec_conn_open(p) < 0)
			break;
}

static void pool_close_idle(struct exec_pool *p)
{
	for (struct conn *c = LIST_FIRST(&p->conns), *next; c; c = next) {
		next = LIST_NEXT(c, in_pool);
		if (c->state != CONN_BUSY)
			exec_conn_close(&c);
	}
}

int exec_set_database(struct exec *ex, const char *name, const char *conninfo, int pool,
                      int64_t idle_timeout_ms)
{
	struct exec_pool *p = exec_pool_find(ex, name);
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
		p->idle_timeout_ms = idle_timeout_ms;
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
	p->idle_timeout_ms = idle_timeout_ms;
	conndrv_server_key(p->conninfo, p->server, sizeof(p->server));
	evtimer_assign(&p->backoff_ev, ex->base, backoff_cb, p);
	exec_watch_init(p);
	TAILQ_INIT(&p->waiting);
	p->next = ex->pools;
	ex->pools = p;
	return 0;
}

void exec_retain_databases(struct exec *ex, const char *const *names, size_t n)
{
	for (struct exec_pool *p = ex->pools; p; p = p->next) {
		bool keep = false;
		for (size_t i = 0; i < n && !keep; i++)
			keep = strcmp(names[i], p->name) == 0;
		if (!keep) {
			/* Kept as a husk: running runs still point at it; no new ones can come. */
			p->removed = true;
			pool_close_idle(p);
			for (struct exec_run *r; (r = TAILQ_FIRST(&p->waiting));) {
				exec_wait_remove(r);
				exec_run_fail(r, "the database was removed from the configuration",
				              "08003");
			}
		}
	}
}

/* ---- lifetime ------------------------------------------------------------------------- */

static void drained_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec *ex = arg;
	void (*fn)(void *) = ex->on_drained;
	if (!fn || ex->n_runs > 0)
		return; /* a run began meanwhile: told when that one ends */
	ex->on_drained = NULL;
	fn(ex->drained_arg);
}

int exec_new(struct event_base *base, struct exec **out)
{
	struct exec *ex = calloc(1, sizeof(*ex));
	if (!ex)
		return -ENOMEM;
	ex->base = base;
	ex->check_ms = CONNECTION_CHECK_DEFAULT_MS;
	ex->own_starving = ownsess_starving();
	event_assign(&ex->drained_ev, base, -1, 0, drained_cb, ex);
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
	for (struct exec_pool *p = ex->pools; p; p = p->next)
		for (struct conn *c = LIST_FIRST(&p->conns); c; c = LIST_NEXT(c, in_pool))
			c->reset.next_run = NULL; /* freed below with every run */
	for (struct exec_run *r; (r = LIST_FIRST(&ex->runs));) {
		LIST_REMOVE(r, link.all);
		exec_run_free(&r);
	}
	while (ex->pools) {
		struct exec_pool *p = ex->pools;
		ex->pools = p->next;
		exec_watch_free(p);
		for (struct conn *c; (c = LIST_FIRST(&p->conns));)
			exec_conn_close(&c);
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
	for (struct exec_pool *p = ex->pools; p; p = p->next)
		for (struct conn *c = LIST_FIRST(&p->conns); c; c = LIST_NEXT(c, in_pool)) {
			conndrv_set_check(&c->drv, ex->check_ms);
			if (c->state == CONN_USED) /* its check is its reset: soon still */
				conndrv_idle_within(&c->drv, RESET_LATER_MS);
		}
}

size_t exec_database_stats(const struct exec *ex, struct exec_db_stats *out, size_t max)
{
	size_t n = 0;
	for (const struct exec_pool *p = ex->pools; p; p = p->next) {
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
			for (const struct conn *c = LIST_FIRST(&p->conns); c;
			     c = LIST_NEXT(c, in_pool)) {
				if (c->state == CONN_CONNECTING)
					continue;
				st->open++;
				st->idle += c->state == CONN_IDLE || c->state == CONN_USED;
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

const size_t *exec_runs_under_way(const struct exec *ex)
{
	return &ex->n_runs;
}

size_t exec_waiting_runs(const struct exec *ex)
{
	size_t n = 0;
	for (const struct exec_pool *p = ex->pools; p; p = p->next)
		n += p->n_waiting;
	return n;
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
	struct exec_pool *p = exec_pool_find(ex, database);
	if (!p || p->removed)
		return -ENOENT;
	p->probing = true;
	exec_pool_dispatch(p);
	return 0;
}
