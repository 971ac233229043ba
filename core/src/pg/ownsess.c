/* pgcrond's own session of a database (ownsess.h): one stmtq shared by its clients. */
#include "ownsess.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conndrv.h"

/* The default connection check until a client sets it. */
#define DEF_CHECK_MS 30000

struct ownsess {
	struct ownsess *next; /* the open sessions (loop thread only) */
	struct event_base *base;
	char *conninfo;
	struct stmtq q;
	struct ownsess_client *clients; /* in the order they joined */
	struct event start_ev;          /* the first connect, at the loop's next turn */
	struct event turn_ev;           /* the clients' turns (on_idle), from the loop */
	struct event later_ev;          /* the first item queued for later comes due ... */
	int64_t later_ms;               /* ... at this monotonic time */
	struct ownsess_item *flight;    /* the item whose statement is in flight */
	bool full; /* the last connect was refused because the server takes no more
	            * (conndrv_server_full): ownsess_starved() (set_full) */
};

static struct ownsess *sessions;
static unsigned n_full; /* of them, full (ownsess_starving) */

static void set_full(struct ownsess *s, bool full)
{
	n_full = n_full - s->full + full;
	s->full = full;
}

static void check_done(void *arg, int tag, const struct stmtq_result *r)
{
	struct ownsess *s = arg;
	(void)tag;

	if (!r->lost && r->failed)
		stmtq_fail(&s->q, r->err, 0);
}

/* ---- the session's callbacks: decided once, or handed to each client ------------------ */

static void on_connected(void *arg)
{
	struct ownsess *s = arg;
	set_full(s, false);

	for (struct ownsess_client *cl = s->clients, *next; cl && stmtq_ready(&s->q); cl = next) {
		next = cl->next;
		if (cl->ops->connected)
			cl->ops->connected(cl->arg);
	}
	event_active(&s->turn_ev, EV_TIMEOUT, 0); /* the items queued meanwhile */
}

/* An item for one answer (ownsess_ask): its statement, with its parameters copied. */
struct ask {
	struct ownsess_item it;
	ownsess_answer_fn fn;
	void *arg;
	const char *sql;
	int n;
	char *params[];
};

static void ask_free(struct ownsess_item *it)
{
	struct ask *a = (struct ask *)it;
	for (int i = 0; i < a->n; i++)
		free(a->params[i]);
	free(a);
}

static void ask_lost(struct ownsess_item *it, const char *why)
{
	(void)why;
	ask_free(it);
}

static bool ask_send(struct ownsess_item *it)
{
	struct ask *a = (struct ask *)it;
	return ownsess_push(it, a->sql, a->n, (const char *const *)a->params);
}

static void ask_done(struct ownsess_item *it, const struct stmtq_result *r)
{
	struct ask *a = (struct ask *)it;
	a->fn(a->arg, r->res ? r->res : r->err_res);
	ask_free(it);
}

/* CL's items leave its outbox: lost(TELL) if TELL, a why (what it queues again waits for
 * the connect), else dropped without a call (its client leaves). */
static void lose_items(struct ownsess_client *cl, const char *tell)
{
	struct ownsess_item *it = cl->head;
	cl->head = cl->tail = NULL;
	while (it) {
		struct ownsess_item *next = it->next;
		it->queued = false;
		if (tell && it->lost)
			it->lost(it, tell);
		else if (it->send == ask_send)
			ask_free(it);
		it = next;
	}
}

static bool on_failed(void *arg, const char *why, bool was_ready)
{
	struct ownsess *s = arg;
	bool again = false;

	set_full(s, !was_ready && conndrv_server_full(why));
	for (struct ownsess_client *cl = s->clients; cl; cl = cl->next)
		lose_items(cl, why ? why : "the connection was lost");
	for (struct ownsess_client *cl = s->clients, *next; cl; cl = next) {
		next = cl->next;
		if (cl->ops->failed)
			again |= cl->ops->failed(cl->arg, why, was_ready);
	}
	return again;
}

/* CL's first item, if it is due (else the timer for when it is). */
static struct ownsess_item *due_item(struct ownsess *s, struct ownsess_client *cl)
{
	struct ownsess_item *it = cl->head;
	int64_t wait = it ? it->not_before_ms - clock_mono_ms() : 0;
	if (wait <= 0)
		return it;
	struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
	if (!evtimer_pending(&s->later_ev, NULL) || it->not_before_ms < s->later_ms) {
		s->later_ms = it->not_before_ms;
		evtimer_add(&s->later_ev, &tv);
	}
	return NULL;
}

/* CL's turn: its first item due, else its idle(). True if the session is busy (or down). */
static bool client_turn(struct ownsess *s, struct ownsess_client *cl)
{
	for (struct ownsess_item *it; (it = due_item(s, cl)) != NULL;) {
		cl->head = it->next;
		if (!cl->head)
			cl->tail = NULL;
		it->queued = false;
		if (it->send(it) || !stmtq_ready(&s->q) || stmtq_busy(&s->q))
			return true;
	}
	if (cl->want && cl->ops->idle)
		cl->ops->idle(cl->arg);
	return !stmtq_ready(&s->q) || stmtq_busy(&s->q);
}

/* Nothing in flight or waiting: the clients that want in turn, from the one after the client
 * whose statement completed last (however it was sent: from here, or from its own timer). */
static void on_idle(void *arg)
{
	struct ownsess *s = arg;
	struct ownsess_client *cl = s->clients;

	for (struct ownsess_client *o = s->clients; o; o = o->next)
		if (o->arg == s->q.last_arg) {
			cl = o->next ? o->next : s->clients;
			break;
		}

	evtimer_del(&s->later_ev);
	for (struct ownsess_client *first = cl; cl;) {
		struct ownsess_client *next = cl->next ? cl->next : s->clients;
		if (client_turn(s, cl))
			return;
		cl = next == first ? NULL : next;
	}
}

/* The turns asked for from a caller's stack (ownsess_want), or a later item come due. */
static void on_turn(evutil_socket_t fd, short what, void *arg)
{
	struct ownsess *s = arg;
	(void)fd;
	(void)what;

	if (stmtq_ready(&s->q) && !stmtq_busy(&s->q))
		on_idle(s);
}

/* The connection check: an idle connection is asked whether it still answers (a busy one is
 * watched by its statement's deadline). */
static void on_check(void *arg)
{
	struct ownsess *s = arg;

	if (!stmtq_busy(&s->q))
		(void)stmtq_push(&s->q, 0, "SELECT 1", 0, NULL, s->q.drv.check_ms / 2, check_done,
		                 s);
}

static void on_notify(void *arg, const char *channel, const char *extra)
{
	struct ownsess *s = arg;

	for (struct ownsess_client *cl = s->clients, *next; cl; cl = next) {
		next = cl->next;
		for (size_t i = 0; i < cl->n_channels; i++)
			if (strcmp(cl->channels[i], channel) == 0) {
				if (cl->ops->notify)
					cl->ops->notify(cl->arg, channel, extra);
				break;
			}
	}
}

static const struct stmtq_ops sess_ops = {
    .connected = on_connected,
    .failed = on_failed,
    .idle = on_idle,
    .check = on_check,
    .notify = on_notify,
};

static void on_client_retry(evutil_socket_t fd, short what, void *arg)
{
	struct ownsess_client *cl = arg;
	(void)fd;
	(void)what;

	if (cl->ops->retry)
		cl->ops->retry(cl->arg);
}

/* A connected session a client joins: its connected() at the loop's next turn, never from
 * inside ownsess_join. */
static void on_join_connected(evutil_socket_t fd, short what, void *arg)
{
	struct ownsess_client *cl = arg;
	(void)fd;
	(void)what;

	if (cl->s && stmtq_ready(&cl->s->q)) {
		if (cl->ops->connected)
			cl->ops->connected(cl->arg);
		if (stmtq_ready(&cl->s->q) && !stmtq_busy(&cl->s->q))
			on_idle(cl->s);
	}
}

static void on_start(evutil_socket_t fd, short what, void *arg)
{
	struct ownsess *s = arg;
	(void)fd;
	(void)what;

	stmtq_connect(&s->q, s->conninfo, OWNSESS_APP_NAME);
}

/* What the notices' log lines call the session: its database as the conninfo names it. */
static void session_label(const char *conninfo, char *out, size_t len)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	const char *db = NULL;

	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, "dbname") == 0 && o->val)
			db = o->val;
	if (db && !strchr(db, '=') && !strstr(db, "://")) /* (never a conninfo: a password) */
		snprintf(out, len, "pgcrond's session of database %s", db);
	else
		snprintf(out, len, "pgcrond's session of a database");
	PQconninfoFree(opts);
}

/* ---- the clients' calls ---------------------------------------------------------------- */

int ownsess_join(struct ownsess_client *cl, struct event_base *base, const char *conninfo,
                 const struct ownsess_ops *ops, void *arg)
{
	struct ownsess *s = sessions;

	while (s && (s->base != base || strcmp(s->conninfo, conninfo) != 0))
		s = s->next;
	memset(cl, 0, sizeof(*cl));
	cl->want = true;
	cl->ops = ops;
	cl->arg = arg;
	evtimer_assign(&cl->retry_ev, base, on_client_retry, cl);
	evtimer_assign(&cl->join_ev, base, on_join_connected, cl);
	bool fresh = !s;
	if (fresh) {
		s = calloc(1, sizeof(*s));
		if (!s || !(s->conninfo = strdup(conninfo))) {
			free(s);
			return -ENOMEM;
		}
		s->base = base;
		char label[96];
		session_label(conninfo, label, sizeof(label));
		stmtq_init(&s->q, base, &sess_ops, s, label, DEF_CHECK_MS);
		conndrv_set_backoff(&s->q.drv, OWNSESS_RETRY_MIN_MS, OWNSESS_RETRY_MAX_MS);
		evtimer_assign(&s->start_ev, base, on_start, s);
		evtimer_assign(&s->turn_ev, base, on_turn, s);
		evtimer_assign(&s->later_ev, base, on_turn, s);
		s->next = sessions;
		sessions = s;
	}
	struct ownsess_client **tail = &s->clients;
	while (*tail)
		tail = &(*tail)->next;
	*tail = cl;
	cl->s = s;
	if (fresh)
		event_active(&s->start_ev, EV_TIMEOUT, 0);
	else if (stmtq_ready(&s->q))
		event_active(&cl->join_ev, EV_TIMEOUT, 0);
	return 0;
}

void ownsess_leave(struct ownsess_client *cl)
{
	struct ownsess *s = cl->s;

	if (!s)
		return;
	evtimer_del(&cl->retry_ev);
	evtimer_del(&cl->join_ev);
	for (size_t i = 0; i < cl->n_channels; i++)
		free(cl->channels[i]);
	free(cl->channels);
	cl->channels = NULL;
	cl->n_channels = 0;
	for (struct ownsess_client **pp = &s->clients; *pp; pp = &(*pp)->next)
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	cl->s = NULL;
	stmtq_forget(&s->q, cl->arg);
	struct ownsess_item *flight = s->flight;
	if (flight && flight->cl == cl) {
		s->flight = NULL;
		stmtq_forget(&s->q, flight);
		if (flight->send == ask_send)
			ask_free(flight);
	}
	lose_items(cl, NULL);
	if (s->clients)
		return;
	evtimer_del(&s->start_ev);
	evtimer_del(&s->turn_ev);
	evtimer_del(&s->later_ev);
	set_full(s, false);
	stmtq_close(&s->q);
	conndrv_cancel_retry(&s->q.drv);
	for (struct ownsess **pp = &sessions; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	free(s->conninfo);
	free(s);
}

struct stmtq *ownsess_q(const struct ownsess_client *cl)
{
	return &cl->s->q;
}

void ownsess_queue(struct ownsess_client *cl, struct ownsess_item *it)
{
	it->cl = cl;
	it->next = NULL;
	it->queued = true;
	if (cl->tail)
		cl->tail->next = it;
	else
		cl->head = it;
	cl->tail = it;
	ownsess_want(cl);
}

void ownsess_queue_later(struct ownsess_client *cl, struct ownsess_item *it)
{
	it->not_before_ms =
	    clock_mono_ms() +
	    pgconn_backoff_ms(it->failures++, OWNSESS_RETRY_MIN_MS, OWNSESS_RETRY_MAX_MS);
	ownsess_queue(cl, it);
}

void ownsess_item_ok(struct ownsess_item *it)
{
	it->failures = 0;
	it->not_before_ms = 0;
}

void ownsess_item_done(void *arg, int tag, const struct stmtq_result *r)
{
	struct ownsess_item *it = arg;
	struct ownsess *s = it->cl->s;
	(void)tag;

	s->flight = NULL;
	s->q.last_arg = it->cl->arg; /* its client had the turn (on_idle) */
	if (!r->lost)
		it->done(it, r);
	else if (it->lost)
		it->lost(it, r->err);
}

bool ownsess_push(struct ownsess_item *it, const char *sql, int n, const char *const *params)
{
	struct ownsess *s = it->cl->s;

	s->flight = it;
	return stmtq_push(&s->q, 0, sql, n, params, s->q.drv.check_ms / 2, ownsess_item_done, it);
}

int ownsess_ask(struct ownsess_client *cl, const char *sql, int n, const char *const *params,
                ownsess_answer_fn fn, void *arg)
{
	struct ask *a = calloc(1, sizeof(*a) + (size_t)n * sizeof(a->params[0]));
	if (!a)
		return -ENOMEM;
	*a = (struct ask){.it = {.send = ask_send, .done = ask_done, .lost = ask_lost},
	                  .fn = fn,
	                  .arg = arg,
	                  .sql = sql};
	for (; a->n < n; a->n++)
		if (params[a->n] && !(a->params[a->n] = strdup(params[a->n]))) {
			ask_free(&a->it);
			return -ENOMEM;
		}
	ownsess_queue(cl, &a->it);
	return 0;
}

void ownsess_want(struct ownsess_client *cl)
{
	cl->want = true;
	if (stmtq_ready(&cl->s->q) && !stmtq_busy(&cl->s->q))
		event_active(&cl->s->turn_ev, EV_TIMEOUT, 0);
}

void ownsess_retry(struct ownsess_client *cl, int64_t ms)
{
	if (ms == CONNDRV_BACKOFF)
		ms = conndrv_backoff_ms(&cl->s->q.drv);
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_del(&cl->retry_ev);
	evtimer_add(&cl->retry_ev, &tv);
}

static bool claims(const struct ownsess_client *cl, const char *channel, size_t *at)
{
	for (size_t i = 0; i < cl->n_channels; i++)
		if (strcmp(cl->channels[i], channel) == 0) {
			if (at)
				*at = i;
			return true;
		}
	return false;
}

int ownsess_claim_channel(struct ownsess_client *cl, const char *channel)
{
	if (claims(cl, channel, NULL))
		return 0;
	char **v = realloc(cl->channels, (cl->n_channels + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	cl->channels = v;
	if (!(v[cl->n_channels] = strdup(channel)))
		return -ENOMEM;
	cl->n_channels++;
	return 0;
}

void ownsess_release_channel(struct ownsess_client *cl, const char *channel)
{
	size_t i;

	if (!claims(cl, channel, &i))
		return;
	free(cl->channels[i]);
	cl->channels[i] = cl->channels[--cl->n_channels];
}

bool ownsess_claimed_elsewhere(const struct ownsess_client *cl, const char *channel)
{
	for (const struct ownsess_client *o = cl->s ? cl->s->clients : NULL; o; o = o->next)
		if (o != cl && claims(o, channel, NULL))
			return true;
	return false;
}

void ownsess_set_check(struct ownsess_client *cl, int64_t ms)
{
	conndrv_set_check(&cl->s->q.drv, ms > 0 ? ms : DEF_CHECK_MS);
}

void ownsess_set_backoff(struct ownsess_client *cl, int64_t min_ms, int64_t max_ms)
{
	conndrv_set_backoff(&cl->s->q.drv, min_ms, max_ms);
}

static struct ownsess *starved(const struct event_base *base, const char *conninfo)
{
	for (struct ownsess *s = sessions; s; s = s->next)
		if (s->base == base && s->full && !stmtq_ready(&s->q) &&
		    strcmp(s->conninfo, conninfo) == 0)
			return s;
	return NULL;
}

const unsigned *ownsess_starving(void)
{
	return &n_full;
}

bool ownsess_starved(const struct event_base *base, const char *conninfo)
{
	return starved(base, conninfo) != NULL;
}

void ownsess_take_slot(const struct event_base *base, const char *conninfo)
{
	struct ownsess *s = starved(base, conninfo);
	if (s && s->q.drv.state == CONNDRV_DOWN)
		conndrv_retry(&s->q.drv, 0);
}
