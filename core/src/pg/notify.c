#include "notify.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conndrv.h"
#include "log.h"
#include "pgconn.h"

/* ST_LISTENING_SENT: a LISTEN batch is in flight (connect_batch tells whether it is the
 * first after a connect); ST_QUERY_SENT: the owner's query (notify_query) is. */
enum state { ST_WAITING, ST_CONNECTING, ST_LISTENING_SENT, ST_QUERY_SENT, ST_IDLE };

struct nquery {
	char *sql;
	char **params;
	int n_params;
	notify_result_fn cb;
	void *arg;
	struct nquery *next;
};

struct notify {
	struct event_base *base;
	char *name;
	char *conninfo;
	struct notify_callbacks cb;
	/* the connection (conndrv.h): its deadlines, and while idle the connection check that
	 * asks the server whether it is still there (notify_set_connection_check) */
	struct conndrv drv;
	enum state state;
	struct event kick; /* the next command, started from the loop, never a caller's stack */
	unsigned connects;
	char **channels; /* wanted */
	size_t n_channels;
	bool dirty;         /* the wanted channels differ from those sent */
	bool connect_batch; /* the LISTEN batch in flight is the first after a connect */
	struct nquery *queries, *queries_tail; /* notify_query; the head is in flight in
	                                        * ST_QUERY_SENT */
	size_t n_queries;
	PGresult *result; /* the in-flight query's result so far */
	struct log_complaint complaint;
};

static void query_free(struct nquery **qp)
{
	struct nquery *q = *qp;
	if (!q)
		return;
	for (int i = 0; i < q->n_params; i++)
		free(q->params[i]);
	free(q->params);
	free(q->sql);
	free(q);
	*qp = NULL;
}

/* Queries die with their connection: the owner asks again what it needs once the LISTENs
 * are back (on_listening), so nothing stale is sent on a new session. */
static void drop_queries(struct notify *n)
{
	while (n->queries) {
		struct nquery *q = n->queries;
		n->queries = q->next;
		query_free(&q);
	}
	n->queries_tail = NULL;
	n->n_queries = 0;
	if (n->result) {
		PQclear(n->result);
		n->result = NULL;
	}
}

/* The driver's failed(): the connection is gone; reconnect after the backoff. */
static void on_conn_failed(void *arg, const char *why, bool was_ready)
{
	struct notify *n = arg;
	(void)was_ready;

	drop_queries(n);
	n->state = ST_WAITING;
	if (log_complain(&n->complaint))
		log_warning("listener on database %s lost: %s; reconnecting", n->name, why);
	conndrv_retry(&n->drv, CONNDRV_BACKOFF);
}

static void schedule_reconnect(struct notify *n, const char *why)
{
	conndrv_fail(&n->drv, why);
}

/* One batch of LISTEN/UNLISTEN: UNLISTEN * then LISTEN each wanted channel, so the set on the
 * server is exactly the wanted one. Identifiers are quoted by libpq. */
static void send_listens(struct notify *n, bool connect)
{
	size_t cap = 32, len = 0;
	char *sql = malloc(cap);
	bool ok = sql != NULL;

#define APPEND(s)                                                                                  \
	do {                                                                                       \
		size_t l_ = strlen(s);                                                             \
		if (ok && len + l_ + 1 > cap) {                                                    \
			while (len + l_ + 1 > cap)                                                 \
				cap *= 2;                                                          \
			char *g_ = realloc(sql, cap);                                              \
			if (!g_)                                                                   \
				ok = false;                                                        \
			else                                                                       \
				sql = g_;                                                          \
		}                                                                                  \
		if (ok) {                                                                          \
			memcpy(sql + len, s, l_ + 1);                                              \
			len += l_;                                                                 \
		}                                                                                  \
	} while (0)

	if (ok)
		sql[0] = '\0';
	APPEND("UNLISTEN *;");
	for (size_t i = 0; i < n->n_channels && ok; i++) {
		char *q = PQescapeIdentifier(n->drv.conn, n->channels[i], strlen(n->channels[i]));
		if (!q) {
			ok = false;
			break;
		}
		APPEND(" LISTEN ");
		APPEND(q);
		APPEND(";");
		PQfreemem(q);
	}
#undef APPEND
	if (!ok || !PQsendQuery(n->drv.conn, sql)) {
		free(sql);
		schedule_reconnect(n, ok ? NULL : "out of memory");
		return;
	}
	free(sql);
	n->dirty = false;
	n->state = ST_LISTENING_SENT;
	n->connect_batch = connect;
	conndrv_busy(&n->drv, n->drv.check_ms / 2);
	if (!conndrv_flush(&n->drv))
		schedule_reconnect(n, NULL);
}

static void deliver(struct notify *n)
{
	PGnotify *nf;
	while ((nf = PQnotifies(n->drv.conn)) != NULL) {
		if (n->cb.on_notify)
			n->cb.on_notify(n->cb.arg, nf->relname, nf->extra ? nf->extra : "");
		PQfreemem(nf);
	}
}

static void send_query(struct notify *n)
{
	struct nquery *q = n->queries;

	n->state = ST_QUERY_SENT;
	if (!conndrv_send(&n->drv, q->sql, q->n_params, (const char *const *)q->params,
	                  n->drv.check_ms / 2))
		schedule_reconnect(n, NULL);
}

/* Idle: bring the channels up to date first, then the next query. */
static void next_command(struct notify *n)
{
	if (n->state != ST_IDLE)
		return;
	if (n->dirty)
		send_listens(n, false);
	else if (n->queries)
		send_query(n);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	next_command(arg);
}

/* The query in flight ended with RES (ours; NULL if no result came): hand it over. */
static void query_done(struct notify *n, PGresult *res)
{
	struct nquery *q = n->queries;
	n->queries = q->next;
	if (!n->queries)
		n->queries_tail = NULL;
	n->n_queries--;
	n->state = ST_IDLE;
	if (q->cb)
		q->cb(q->arg, res);
	PQclear(res);
	query_free(&q);
}

/* The driver's readable(): answers, and notifications. */
static void on_readable(void *arg)
{
	struct notify *n = arg;
	char err[512];

	bool ended = false;
	while (!PQisBusy(n->drv.conn)) {
		PGresult *r = PQgetResult(n->drv.conn);
		if (!r) {
			ended = true;
			break;
		}
		if (n->state == ST_QUERY_SENT) {
			/* the owner's query: its last result, an error included, is the owner's */
			PQclear(n->result);
			n->result = r;
			continue;
		}
		ExecStatusType st = PQresultStatus(r);
		if (st != PGRES_COMMAND_OK) {
			pgconn_result_error(r, err, sizeof(err));
			PQclear(r);
			schedule_reconnect(n, err);
			return;
		}
		PQclear(r);
	}
	if (ended && n->state == ST_QUERY_SENT) {
		PGresult *res = n->result;
		n->result = NULL;
		query_done(n, res);
		next_command(n);
	} else if (ended && n->state == ST_LISTENING_SENT) {
		bool connect = n->connect_batch;
		n->state = ST_IDLE;
		if (connect && n->dirty) {
			/* the channels changed meanwhile: the connect completes with the new set */
			send_listens(n, true);
			return;
		}
		if (connect) {
			bool first = n->connects == 0;
			n->connects++;
			conndrv_succeeded(&n->drv);
			if (log_complaint_reset(&n->complaint))
				log_notice("listener on database %s is back", n->name);
			/* the owner may change channels or queue queries from here, not free us */
			if (n->cb.on_listening)
				n->cb.on_listening(n->cb.arg, first);
		}
		next_command(n);
	}
	if (!n->drv.conn)
		return;
	if (ended && n->state == ST_IDLE)
		conndrv_idle(&n->drv); /* quiet from here: check on it in a while */
	deliver(n);
	if (PQstatus(n->drv.conn) == CONNECTION_BAD)
		schedule_reconnect(n, "the server closed the connection");
}

/* The connection check, while idle: ask the server (a query with a deadline; a listener
 * hears nothing when nothing is notified, and a connection a NAT forgot is quiet too). A
 * connect or command that gets no answer in time fails the connection (the driver), and
 * the reconnect runs the listening jobs once, since notifications may have been missed. */
static void on_check(void *arg)
{
	struct notify *n = arg;

	/* a query that cannot be queued is tried again at the next check */
	if (n->state == ST_IDLE && !n->queries &&
	    notify_query(n, "SELECT 1", NULL, 0, NULL, NULL) < 0)
		log_debug("listener on database %s: the connection check waits", n->name);
}

void notify_set_connection_check(struct notify *n, int64_t ms)
{
	conndrv_set_check(&n->drv, ms > 0 ? ms : NOTIFY_CHECK_DEFAULT_MS);
}

static void on_connected(void *arg)
{
	send_listens(arg, true);
}

/* The driver's retry timer (and the first connect). */
static void start_connect(void *arg)
{
	struct notify *n = arg;

	n->state = ST_CONNECTING;
	(void)conndrv_connect(&n->drv, n->conninfo,
	                      n->cb.app_name ? n->cb.app_name : "pgcrond listener");
}

static const struct conndrv_ops conn_ops = {
    .connected = on_connected,
    .readable = on_readable,
    .failed = on_conn_failed,
    .check = on_check,
    .retry = start_connect,
};

int notify_new(struct event_base *base, const char *name, const char *conninfo,
               const struct notify_callbacks *cb, struct notify **out)
{
	struct notify *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->name = strdup(name);
	n->conninfo = strdup(conninfo);
	n->cb = *cb;
	if (!n->name || !n->conninfo) {
		notify_free(&n); /* no base yet: no events to remove */
		return -ENOMEM;
	}
	n->base = base;
	char label[96];
	snprintf(label, sizeof(label), "listener on database %s", n->name);
	conndrv_init(&n->drv, base, &conn_ops, n, label, PGCONN_NOTICES_PER_MIN, 60000,
	             NOTIFY_CHECK_DEFAULT_MS);
	evtimer_assign(&n->kick, base, kick_cb, n);
	conndrv_retry(&n->drv, 0); /* from the loop, not the caller's stack */
	*out = n;
	return 0;
}

static void free_channels(struct notify *n)
{
	for (size_t i = 0; i < n->n_channels; i++)
		free(n->channels[i]);
	free(n->channels);
	n->channels = NULL;
	n->n_channels = 0;
}

void notify_free(struct notify **np)
{
	struct notify *n = *np;
	if (!n)
		return;
	drop_queries(n);
	if (n->base) {
		conndrv_close(&n->drv);
		evtimer_del(&n->kick);
	}
	free_channels(n);
	free(n->name);
	free(n->conninfo);
	free(n);
	*np = NULL;
}

/* The same channels, in any order? (A few channels: quadratic is fine.) */
static bool same_channels(const struct notify *n, const char *const *channels, size_t count)
{
	if (count != n->n_channels)
		return false;
	for (size_t i = 0; i < count; i++) {
		bool found = false;
		for (size_t k = 0; k < n->n_channels && !found; k++)
			found = strcmp(channels[i], n->channels[k]) == 0;
		if (!found)
			return false;
	}
	return true;
}

int notify_set_channels(struct notify *n, const char *const *channels, size_t count)
{
	/* a reload with the same channels leaves the session alone: no LISTEN batch, no run */
	if (n->channels && same_channels(n, channels, count))
		return 0;
	char **copy = calloc(count ? count : 1, sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		copy[i] = strdup(channels[i]);
		if (!copy[i]) {
			while (i > 0)
				free(copy[--i]);
			free(copy);
			return -ENOMEM;
		}
	}
	free_channels(n);
	n->channels = copy;
	n->n_channels = count;
	/* connected: changed in place (UNLISTEN * and the LISTENs in one transaction, so no
	 * notification falls between them); otherwise the connect sends them */
	n->dirty = true;
	if (n->state == ST_IDLE)
		event_active(&n->kick, EV_TIMEOUT, 0);
	return 0;
}

int notify_query(struct notify *n, const char *sql, const char *const *params, int n_params,
                 notify_result_fn cb, void *arg)
{
	if (n->state == ST_WAITING || n->state == ST_CONNECTING)
		return -ENOTCONN;
	if (n->n_queries >= NOTIFY_MAX_QUERIES)
		return -EAGAIN;
	struct nquery *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->sql = strdup(sql);
	q->params = calloc(n_params > 0 ? (size_t)n_params : 1, sizeof(*q->params));
	q->n_params = n_params;
	q->cb = cb;
	q->arg = arg;
	bool ok = q->sql && q->params;
	for (int i = 0; ok && i < n_params; i++)
		ok = !params[i] || (q->params[i] = strdup(params[i])) != NULL;
	if (!ok) {
		query_free(&q);
		return -ENOMEM;
	}
	if (n->queries_tail)
		n->queries_tail->next = q;
	else
		n->queries = q;
	n->queries_tail = q;
	n->n_queries++;
	if (n->state == ST_IDLE)
		event_active(&n->kick, EV_TIMEOUT, 0);
	return 0;
}

bool notify_is_listening(const struct notify *n)
{
	return n->state == ST_IDLE || n->state == ST_QUERY_SENT ||
	       (n->state == ST_LISTENING_SENT && !n->connect_batch);
}
unsigned notify_connects(const struct notify *n)
{
	return n->connects;
}
