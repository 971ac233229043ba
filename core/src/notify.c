#include "notify.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

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
	PGconn *conn;
	enum state state;
	struct event io;    /* on PQsocket while connected or connecting */
	struct event retry; /* reconnect timer */
	struct event kick;  /* the next command, started from the loop, never a caller's stack */
	/* the watchdog: the deadline of the connect or command under way, or, while idle, when
	 * to ask the server whether it is still there (notify_set_connection_check) */
	struct event check;
	int64_t check_ms;
	bool io_added;
	unsigned failures;
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
	struct pgconn_notices notices;
};

static void on_io(evutil_socket_t fd, short what, void *arg);

static void drop_io(struct notify *n)
{
	if (n->io_added) {
		event_del(&n->io);
		n->io_added = false;
	}
}

static void wait_io(struct notify *n, short what)
{
	drop_io(n);
	event_assign(&n->io, n->base, PQsocket(n->conn), what, on_io, n);
	event_add(&n->io, NULL);
	n->io_added = true;
}

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

/* Arm the watchdog for MS (none if MS <= 0). */
static void watchdog(struct notify *n, int64_t ms)
{
	evtimer_del(&n->check);
	if (ms <= 0)
		return;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(&n->check, &tv);
}

static void schedule_reconnect(struct notify *n, const char *why)
{
	watchdog(n, 0);
	drop_io(n);
	drop_queries(n);
	if (n->conn) {
		PQfinish(n->conn);
		n->conn = NULL;
	}
	n->state = ST_WAITING;
	if (log_complain(&n->complaint))
		log_warning("listener on database %s lost: %s; reconnecting", n->name, why);
	int64_t ms = pgconn_backoff_ms(n->failures, 500, 30000);
	n->failures++;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(&n->retry, &tv);
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
		char *q = PQescapeIdentifier(n->conn, n->channels[i], strlen(n->channels[i]));
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
	if (!ok || !PQsendQuery(n->conn, sql)) {
		free(sql);
		char err[512];
		schedule_reconnect(n, ok ? pgconn_error_safe(n->conn, n->conninfo, err, sizeof(err))
		                         : "out of memory");
		return;
	}
	free(sql);
	n->dirty = false;
	n->state = ST_LISTENING_SENT;
	watchdog(n, n->check_ms / 2);
	n->connect_batch = connect;
	/* the batch is tiny: flush may still need a writable socket */
	wait_io(n, PQflush(n->conn) == 1 ? EV_READ | EV_WRITE | EV_PERSIST : EV_READ | EV_PERSIST);
}

static void deliver(struct notify *n)
{
	PGnotify *nf;
	while ((nf = PQnotifies(n->conn)) != NULL) {
		if (n->cb.on_notify)
			n->cb.on_notify(n->cb.arg, nf->relname, nf->extra ? nf->extra : "");
		PQfreemem(nf);
	}
}

static void send_query(struct notify *n)
{
	struct nquery *q = n->queries;
	char err[512];

	if (!PQsendQueryParams(n->conn, q->sql, q->n_params, NULL, (const char *const *)q->params,
	                       NULL, NULL, 0)) {
		schedule_reconnect(n, pgconn_error_safe(n->conn, n->conninfo, err, sizeof(err)));
		return;
	}
	n->state = ST_QUERY_SENT;
	watchdog(n, n->check_ms / 2);
	wait_io(n, PQflush(n->conn) == 1 ? EV_READ | EV_WRITE | EV_PERSIST : EV_READ | EV_PERSIST);
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

static void on_readable(struct notify *n)
{
	char err[512];

	if (!PQconsumeInput(n->conn)) {
		schedule_reconnect(n, pgconn_error_safe(n->conn, n->conninfo, err, sizeof(err)));
		return;
	}
	bool ended = false;
	while (!PQisBusy(n->conn)) {
		PGresult *r = PQgetResult(n->conn);
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
			n->failures = 0;
			if (log_complaint_reset(&n->complaint))
				log_notice("listener on database %s is back", n->name);
			/* the owner may change channels or queue queries from here, not free us */
			if (n->cb.on_listening)
				n->cb.on_listening(n->cb.arg, first);
		}
		next_command(n);
	}
	if (!n->conn)
		return;
	if (ended && n->state == ST_IDLE)
		watchdog(n, n->check_ms / 2); /* quiet from here: check on it in a while */
	deliver(n);
	if (PQstatus(n->conn) == CONNECTION_BAD)
		schedule_reconnect(n, "the server closed the connection");
}

/* The watchdog fired. Idle: ask the server (a query with a deadline; a listener hears
 * nothing when nothing is notified, and a connection a NAT forgot is quiet too). Otherwise
 * the connect or command under way got no answer in time: reconnect, which runs the
 * listening jobs once, since notifications may have been missed. */
static void check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct notify *n = arg;
	char why[128];

	switch (n->state) {
	case ST_IDLE:
		if (!n->queries && notify_query(n, "SELECT 1", NULL, 0, NULL, NULL) < 0)
			watchdog(n, n->check_ms / 2);
		return;
	case ST_WAITING:
		return;
	default:
		snprintf(why, sizeof(why), "no answer within %lld ms (connection_check)",
		         (long long)(n->state == ST_CONNECTING ? n->check_ms : n->check_ms / 2));
		schedule_reconnect(n, why);
		return;
	}
}

void notify_set_connection_check(struct notify *n, int64_t ms)
{
	n->check_ms = ms > 0 ? ms : NOTIFY_CHECK_DEFAULT_MS;
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	struct notify *n = arg;
	char err[512];

	if (n->state == ST_CONNECTING) {
		switch (PQconnectPoll(n->conn)) {
		case PGRES_POLLING_READING:
			wait_io(n, EV_READ);
			return;
		case PGRES_POLLING_WRITING:
			wait_io(n, EV_WRITE);
			return;
		case PGRES_POLLING_OK:
			if (PQsetnonblocking(n->conn, 1) != 0) {
				schedule_reconnect(
				    n, pgconn_error_safe(n->conn, n->conninfo, err, sizeof(err)));
				return;
			}
			send_listens(n, true);
			return;
		default:
			schedule_reconnect(
			    n, pgconn_error_safe(n->conn, n->conninfo, err, sizeof(err)));
			return;
		}
	}
	if ((what & EV_WRITE) && PQflush(n->conn) == 0 && n->io_added)
		wait_io(n, EV_READ | EV_PERSIST);
	if (what & EV_READ)
		on_readable(n);
}

static void start_connect(evutil_socket_t fd, short what, void *arg)
{
	struct notify *n = arg;
	char err[512];

	if (pgconn_start(n->conninfo, "pgcrond listener", &n->conn) != 0) {
		schedule_reconnect(n, pgconn_error_safe(n->conn, n->conninfo, err, sizeof(err)));
		return;
	}
	if (n->notices.limit == 0) {
		char label[96];
		snprintf(label, sizeof(label), "listener on database %s", n->name);
		pgconn_notices_init(&n->notices, label, PGCONN_NOTICES_PER_MIN, 60000);
	}
	pgconn_log_notices(n->conn, &n->notices);
	n->state = ST_CONNECTING;
	watchdog(n, n->check_ms); /* libpq leaves a non-blocking connect's deadline to us */
	/* libpq: after PQconnectStart, wait for the socket to be writable before polling */
	wait_io(n, EV_WRITE);
}

int notify_new(struct event_base *base, const char *name, const char *conninfo,
               const struct notify_callbacks *cb, struct notify **out)
{
	struct notify *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->base = base;
	n->name = strdup(name);
	n->conninfo = strdup(conninfo);
	n->cb = *cb;
	if (!n->name || !n->conninfo) {
		notify_free(&n);
		return -ENOMEM;
	}
	evtimer_assign(&n->retry, base, start_connect, n);
	evtimer_assign(&n->kick, base, kick_cb, n);
	evtimer_assign(&n->check, base, check_cb, n);
	n->check_ms = NOTIFY_CHECK_DEFAULT_MS;
	struct timeval now = {0, 0};
	evtimer_add(&n->retry, &now);
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
	drop_io(n);
	drop_queries(n);
	if (n->base) {
		evtimer_del(&n->retry);
		evtimer_del(&n->kick);
		evtimer_del(&n->check);
	}
	if (n->conn)
		PQfinish(n->conn);
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
