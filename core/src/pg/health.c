/* The history database's health check: one kept connection, SELECT 1 with a deadline. */
#include "health.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "conndrv.h"
#include "pgconn.h"
#include "text.h"

/* H_IDLE and H_QUERY: the driver's connection is READY */
enum hstate { H_DOWN, H_CONNECTING, H_IDLE, H_QUERY };

struct waiter {
	health_fn fn;
	void *arg;
	struct waiter *next;
};

struct health {
	struct event_base *base;
	char *conninfo;
	struct conndrv drv; /* the kept connection (conndrv.h) */
	enum hstate st;
	struct event deadline; /* of the whole check, connect included */
	bool retried; /* the kept connection failed once in this check: a new one was tried */
	struct waiter *waiters;
	int64_t answered_ms; /* monotonic, 0: never */
	bool ok;
	char why[512];
};

static void drop_conn(struct health *h)
{
	conndrv_close(&h->drv);
	h->st = H_DOWN;
}

/* The answer: to every waiter, each called once (a callback may ask again). */
static void answer(struct health *h, bool ok, const char *why)
{
	event_del(&h->deadline);
	h->ok = ok;
	text_copy(h->why, sizeof(h->why), ok ? "" : why); /* cut on a character if long */
	h->answered_ms = clock_mono_ms();
	struct waiter *w = h->waiters;
	h->waiters = NULL;
	while (w) {
		struct waiter *n = w->next;
		w->fn(w->arg, ok, h->why);
		free(w);
		w = n;
	}
}

static void start(struct health *h);

/* The connection failed: a kept one may just have been closed by a server restart, so one
 * fresh connection is tried before the answer is no. */
static void failed(struct health *h, const char *why)
{
	bool kept = h->st == H_QUERY && !h->retried;
	drop_conn(h);
	if (kept) {
		h->retried = true;
		start(h);
		return;
	}
	answer(h, false, why);
}

/* The driver's failed(). A kept connection closed while no check is under way is only
 * dropped: the next check connects again. */
static void on_failed(void *arg, const char *why, bool was_ready)
{
	struct health *h = arg;
	char msg[600];
	(void)was_ready;

	if (!h->waiters) {
		drop_conn(h);
		return;
	}
	snprintf(msg, sizeof(msg), "history database: %s", why);
	failed(h, msg);
}

static void send_query(struct health *h)
{
	h->st = H_QUERY;
	if (!conndrv_send(&h->drv, "SELECT 1", 0, NULL, 0)) /* the check's deadline covers it */
		conndrv_fail(&h->drv, NULL);
}

static void on_connected(void *arg)
{
	send_query(arg);
}

/* The driver's readable(). */
static void on_readable(void *arg)
{
	struct health *h = arg;

	if (h->st != H_QUERY || PQisBusy(h->drv.conn))
		return;
	PGresult *res;
	bool ok = false;
	char why[600] = "history database: SELECT 1 returned nothing", err[512];
	while ((res = PQgetResult(h->drv.conn)) != NULL) {
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			ok = true;
		else
			snprintf(why, sizeof(why), "history database: %s",
			         pgconn_result_error(res, err, sizeof(err)));
		PQclear(res);
	}
	h->st = H_IDLE;
	conndrv_idle(&h->drv);
	answer(h, ok, why);
}

static const struct conndrv_ops conn_ops = {
    .connected = on_connected,
    .readable = on_readable,
    .failed = on_failed,
};

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct health *h = arg;
	char why[160];
	/* a stopped server keeps its socket open: only the deadline tells */
	drop_conn(h);
	snprintf(why, sizeof(why), "history database did not answer SELECT 1 within %d ms",
	         HEALTH_TIMEOUT_MS);
	answer(h, false, why);
}

static void start(struct health *h)
{
	if (h->st == H_IDLE) {
		send_query(h);
		return;
	}
	h->st = H_CONNECTING;
	(void)conndrv_connect(&h->drv, h->conninfo, "pgcrond health");
}

int health_check(struct health *h, health_fn fn, void *arg)
{
	if (h->answered_ms && !h->waiters && clock_mono_ms() - h->answered_ms < HEALTH_REUSE_MS) {
		fn(arg, h->ok, h->why);
		return 0;
	}
	struct waiter *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fn = fn;
	w->arg = arg;
	w->next = h->waiters;
	bool idle = h->waiters == NULL;
	h->waiters = w;
	if (!idle)
		return 0; /* joins the check under way */
	h->retried = false;
	struct timeval tv = {HEALTH_TIMEOUT_MS / 1000, (HEALTH_TIMEOUT_MS % 1000) * 1000};
	event_add(&h->deadline, &tv);
	start(h);
	return 0;
}

int health_new(struct event_base *base, const char *conninfo, struct health **out)
{
	struct health *h = calloc(1, sizeof(*h));
	if (!h || !(h->conninfo = strdup(conninfo))) {
		free(h);
		return -ENOMEM;
	}
	h->base = base;
	evtimer_assign(&h->deadline, base, on_deadline, h);
	/* the check's own deadline (on_deadline) answers first, with its message */
	conndrv_init(&h->drv, base, &conn_ops, h, "health check", PGCONN_NOTICES_PER_MIN, 60000,
	             2 * HEALTH_TIMEOUT_MS);
	*out = h;
	return 0;
}

void health_free(struct health **hp)
{
	struct health *h = *hp;
	if (!h)
		return;
	drop_conn(h);
	if (h->waiters)
		answer(h, false, "pgcrond is shutting down");
	event_del(&h->deadline);
	free(h->conninfo);
	free(h);
	*hp = NULL;
}
