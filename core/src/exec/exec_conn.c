/* The executor's connections and pools as records (exec_priv.h): a connection's error text,
 * its flush and its close, a pool's queue of waiting runs, the pools by name. The bottom of
 * the executor: every other file calls these, and these call none of them. */
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "conndrv.h"
#include "exec_priv.h"
#include "pgconn.h"

struct timeval exec_ms_tv(int64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	return tv;
}

/* ---- connections ---------------------------------------------------------------------- */

/* libpq's error for the connection as one line (malloc'd; NULL if out of memory). */
char *exec_conn_error(const PGconn *pg, const char *conninfo)
{
	char buf[1024];
	/* the password scrubbed: libpq may quote a malformed connection string */
	return strdup(pgconn_error_safe(pg, conninfo, buf, sizeof(buf)));
}

void exec_conn_close(struct conn **cp)
{
	struct conn *c = *cp;
	if (!c)
		return;
	struct exec_pool *p = c->pool;
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

void exec_conn_unreserve(struct conn *c)
{
	struct exec_run *r = c->reset.next_run;
	if (!r)
		return;
	c->reset.next_run = NULL;
	r->link.reserved = NULL;
	exec_wait_push_front(c->pool, r);
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
	struct exec_pool *p = r->pool;
	if (r->link.wprev)
		r->link.wprev->link.wnext = r->link.wnext;
	else
		p->wait_head = r->link.wnext;
	if (r->link.wnext)
		r->link.wnext->link.wprev = r->link.wprev;
	else
		p->wait_tail = r->link.wprev;
	r->link.wprev = r->link.wnext = NULL;
	p->n_waiting--;
}

/* A run reserved by a connection that will not serve it after all (exec_conn_unreserve), or whose
 * statement the server skipped (exec_run_unsend), goes back to the head of the queue, where it
 * was. */
void exec_wait_push_front(struct exec_pool *p, struct exec_run *r)
{
	r->link.wprev = NULL;
	r->link.wnext = p->wait_head;
	if (p->wait_head)
		p->wait_head->link.wprev = r;
	else
		p->wait_tail = r;
	p->wait_head = r;
	p->n_waiting++;
}

struct conn *exec_pool_idle(struct exec_pool *p)
{
	for (struct conn *c = p->conns, *next; c; c = next) {
		next = c->next;
		if (c->state != CONN_IDLE || c->generation != p->generation || c->tainted)
			continue;
		/* whatever the server sent it (a FATAL before it closed, EOF) is read now, without
		 * blocking */
		if (PQconsumeInput(c->drv.conn) && PQstatus(c->drv.conn) == CONNECTION_OK &&
		    PQtransactionStatus(c->drv.conn) == PQTRANS_IDLE)
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
