/* The history database's health check: SELECT 1 on its own session, with a deadline. */
#include "health.h"

#include <errno.h>
#include <stddef.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "conndrv.h"
#include "ownsess.h"
#include "text.h"

struct waiter {
	health_fn fn;
	void *arg;
	struct waiter *next;
};

struct health {
	struct ownsess_client sess; /* of the history database (ownsess.h) */
	struct event deadline;      /* of the check under way */
	struct ownsess_item check;  /* the SELECT 1, an item of the session's outbox */
	bool queued;                /* ... queued or in flight */
	struct waiter *waiters;
	int64_t answered_ms; /* monotonic, 0: never */
	bool ok;
	char why[512];
};

/* The answer: to every waiter, each called once (a callback may ask again). */
static void answer(struct health *h, bool ok, const char *why)
{
	event_del(&h->deadline);
	h->ok = ok;
	text_copy(h->why, sizeof(h->why), ok ? "" : why); /* cut on a character if long */
	h->answered_ms = clock_mono_ms();
	struct waiter *w = h->waiters, *n;
	h->waiters = NULL;
	for (; w; w = n) {
		n = w->next;
		w->fn(w->arg, ok, h->why);
		free(w);
	}
}

#define HEALTH_OF(it) ((struct health *)((char *)(it)-offsetof(struct health, check)))

/* The SELECT 1 came back, maybe after its check's deadline: the newest answer all the same. */
static void checked(struct ownsess_item *it, const struct stmtq_result *r)
{
	struct health *h = HEALTH_OF(it);
	char why[600] = "history database: SELECT 1 returned nothing";

	h->queued = false;
	if (r->failed)
		snprintf(why, sizeof(why), "history database: %s", r->err);
	answer(h, !r->failed && r->res, why);
}

static void lost(struct ownsess_item *it, const char *why)
{
	struct stmtq_result r = {.failed = true};
	snprintf(r.err, sizeof(r.err), "%s", why);
	checked(it, &r);
}

/* Given up only after what the session's own idle check allows: the connection is the
 * history's too. */
static bool send_check(struct ownsess_item *it)
{
	(void)ownsess_push(it, 0, "SELECT 1", 0, NULL);
	return true;
}

static void ask(struct health *h)
{
	struct stmtq *q = ownsess_q(&h->sess);

	/* a session held by an older schema has its answer; one in its backoff connects now:
	 * the check asks about the server as it is */
	if (q->gated) {
		lost(&h->check, q->gated);
		return;
	}
	if (q->drv.state == CONNDRV_DOWN)
		conndrv_retry(&q->drv, 0);
	if (!h->queued) /* else the SELECT 1 under way answers this check too */
		ownsess_queue(&h->sess, &h->check);
	h->queued = true;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct health *h = arg;
	char why[160];

	/* a stopped server keeps its socket open: only the deadline tells */
	snprintf(why, sizeof(why), "history database did not answer SELECT 1 within %d ms",
	         HEALTH_TIMEOUT_MS);
	answer(h, false, why);
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
	*w = (struct waiter){fn, arg, h->waiters};
	bool idle = h->waiters == NULL;
	h->waiters = w;
	if (!idle)
		return 0; /* joins the check under way */
	clock_event_in(&h->deadline, HEALTH_TIMEOUT_MS);
	ask(h);
	return 0;
}

/* The SELECT 1 waiting goes out at the connect, and its loss answers a failure; the history
 * decides the reconnects. */
static const struct ownsess_ops sess_ops = {0};

int health_new(struct event_base *base, const char *conninfo, struct health **out)
{
	struct health *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	evtimer_assign(&h->deadline, base, on_deadline, h);
	h->check = (struct ownsess_item){.send = send_check, .done = checked, .lost = lost};
	if (ownsess_join(&h->sess, base, conninfo, &sess_ops, h) < 0) {
		free(h);
		return -ENOMEM;
	}
	*out = h;
	return 0;
}

void health_free(struct health **hp)
{
	struct health *h = *hp;
	if (!h)
		return;
	if (h->waiters)
		answer(h, false, "pgcrond is shutting down");
	ownsess_leave(&h->sess);
	event_del(&h->deadline);
	free(h);
	*hp = NULL;
}
