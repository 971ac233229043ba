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
#include "pgconn.h"

enum hstate { H_DOWN, H_CONNECTING, H_IDLE, H_QUERY };

struct waiter {
	health_fn fn;
	void *arg;
	struct waiter *next;
};

struct health {
	struct event_base *base;
	char *conninfo;
	PGconn *conn;
	enum hstate st;
	struct event io, deadline;
	bool io_added;
	bool retried; /* the kept connection failed once in this check: a new one was tried */
	struct waiter *waiters;
	int64_t answered_ms; /* monotonic, 0: never */
	bool ok;
	char why[512];
	struct pgconn_notices notices;
};

static void on_io(evutil_socket_t fd, short what, void *arg);

static void watch(struct health *h, short what)
{
	if (h->io_added)
		event_del(&h->io);
	h->io_added = false;
	if (!h->conn || PQsocket(h->conn) < 0)
		return;
	event_assign(&h->io, h->base, PQsocket(h->conn), what, on_io, h);
	h->io_added = event_add(&h->io, NULL) == 0;
}

static void drop_conn(struct health *h)
{
	if (h->io_added)
		event_del(&h->io);
	h->io_added = false;
	if (h->conn)
		PQfinish(h->conn);
	h->conn = NULL;
	h->st = H_DOWN;
}

/* The answer: to every waiter, each called once (a callback may ask again). */
static void answer(struct health *h, bool ok, const char *why)
{
	event_del(&h->deadline);
	h->ok = ok;
	snprintf(h->why, sizeof(h->why), "%s", ok ? "" : why);
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

static void failed_libpq(struct health *h, bool connecting)
{
	char why[512], msg[600];
	if (connecting)
		pgconn_error_safe(h->conn, h->conninfo, why, sizeof(why));
	else
		pgconn_error(h->conn, why, sizeof(why));
	snprintf(msg, sizeof(msg), "history database: %s", why);
	failed(h, msg);
}

static void send_query(struct health *h)
{
	h->st = H_QUERY;
	if (!PQsendQuery(h->conn, "SELECT 1")) {
		failed_libpq(h, false);
		return;
	}
	int f = PQflush(h->conn);
	if (f < 0) {
		failed_libpq(h, false);
		return;
	}
	watch(h, f ? EV_READ | EV_WRITE : EV_READ);
}

static void poll_connect(struct health *h)
{
	switch (PQconnectPoll(h->conn)) {
	case PGRES_POLLING_READING:
		watch(h, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		watch(h, EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(h->conn, 1) != 0) {
			failed_libpq(h, false);
			return;
		}
		send_query(h);
		break;
	default:
		failed_libpq(h, true);
		break;
	}
}

static void read_result(struct health *h)
{
	if (!PQconsumeInput(h->conn)) {
		failed_libpq(h, false);
		return;
	}
	if (PQisBusy(h->conn)) {
		watch(h, EV_READ);
		return;
	}
	PGresult *res;
	bool ok = false;
	char why[600] = "history database: SELECT 1 returned nothing", err[512];
	while ((res = PQgetResult(h->conn)) != NULL) {
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			ok = true;
		else
			snprintf(why, sizeof(why), "history database: %s",
			         pgconn_result_error(res, err, sizeof(err)));
		PQclear(res);
	}
	h->st = H_IDLE;
	watch(h, 0);
	answer(h, ok, why);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	struct health *h = arg;
	h->io_added = false;
	if (h->st == H_CONNECTING) {
		poll_connect(h);
		return;
	}
	if (h->st != H_QUERY)
		return;
	if (what & EV_WRITE) {
		int f = PQflush(h->conn);
		if (f < 0) {
			failed_libpq(h, false);
			return;
		}
		if (f > 0) {
			watch(h, EV_READ | EV_WRITE);
			return;
		}
	}
	read_result(h);
}

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
	if (pgconn_start(h->conninfo, "pgcrond health", &h->conn) != 0) {
		failed_libpq(h, true);
		return;
	}
	pgconn_log_notices(h->conn, &h->notices);
	h->st = H_CONNECTING;
	watch(h, EV_WRITE);
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
	pgconn_notices_init(&h->notices, "health check", PGCONN_NOTICES_PER_MIN, 60000);
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
