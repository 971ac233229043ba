#include "notify.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"

enum state { ST_WAITING, ST_CONNECTING, ST_LISTENING_SENT, ST_IDLE };

struct notify {
	struct event_base *base;
	char *name;
	char *conninfo;
	struct notify_callbacks cb;
	PGconn *conn;
	enum state state;
	struct event io;    /* on PQsocket while connected or connecting */
	struct event retry; /* reconnect timer */
	bool io_added;
	unsigned failures;
	unsigned connects;
	char **channels; /* wanted */
	size_t n_channels;
	bool dirty; /* channels changed while a LISTEN batch was in flight */
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

static void schedule_reconnect(struct notify *n, const char *why)
{
	drop_io(n);
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
static void send_listens(struct notify *n)
{
	size_t cap = 32, len = 0;
	char *sql = malloc(cap);
	bool ok = sql != NULL;

#define APPEND(s)                                                              \
	do {                                                                   \
		size_t l_ = strlen(s);                                         \
		if (ok && len + l_ + 1 > cap) {                                \
			while (len + l_ + 1 > cap)                             \
				cap *= 2;                                      \
			char *g_ = realloc(sql, cap);                          \
			if (!g_)                                               \
				ok = false;                                    \
			else                                                   \
				sql = g_;                                      \
		}                                                              \
		if (ok) {                                                      \
			memcpy(sql + len, s, l_ + 1);                          \
			len += l_;                                             \
		}                                                              \
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

static void on_readable(struct notify *n)
{
	char err[512];

	if (!PQconsumeInput(n->conn)) {
		schedule_reconnect(n, pgconn_error_safe(n->conn, n->conninfo, err, sizeof(err)));
		return;
	}
	while (!PQisBusy(n->conn)) {
		PGresult *r = PQgetResult(n->conn);
		if (!r)
			break;
		ExecStatusType st = PQresultStatus(r);
		if (st != PGRES_COMMAND_OK) {
			pgconn_result_error(r, err, sizeof(err));
			PQclear(r);
			schedule_reconnect(n, err);
			return;
		}
		PQclear(r);
	}
	if (n->state == ST_LISTENING_SENT && !PQisBusy(n->conn)) {
		bool first = n->connects == 0;
		n->connects++;
		n->failures = 0;
		n->state = ST_IDLE;
		if (log_complaint_reset(&n->complaint))
			log_notice("listener on database %s is back", n->name);
		if (n->dirty) {
			send_listens(n);
			return;
		}
		/* the owner may change channels from here (notify_set_channels), not free us */
		if (n->cb.on_listening)
			n->cb.on_listening(n->cb.arg, first);
	}
	deliver(n);
	if (PQstatus(n->conn) == CONNECTION_BAD)
		schedule_reconnect(n, "the server closed the connection");
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
				schedule_reconnect(n, pgconn_error_safe(n->conn, n->conninfo, err, sizeof(err)));
				return;
			}
			send_listens(n);
			return;
		default:
			schedule_reconnect(n, pgconn_error_safe(n->conn, n->conninfo, err, sizeof(err)));
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
	if (n->base)
		evtimer_del(&n->retry);
	if (n->conn)
		PQfinish(n->conn);
	free_channels(n);
	free(n->name);
	free(n->conninfo);
	free(n);
	*np = NULL;
}

int notify_set_channels(struct notify *n, const char *const *channels, size_t count)
{
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
	if (n->state == ST_IDLE)
		send_listens(n);
	else if (n->state == ST_LISTENING_SENT)
		n->dirty = true;
	return 0;
}

bool notify_is_listening(const struct notify *n) { return n->state == ST_IDLE; }
unsigned notify_connects(const struct notify *n) { return n->connects; }
