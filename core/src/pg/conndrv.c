/* One asynchronous libpq connection (conndrv.h). */
#include "conndrv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "text.h"

/* Addresses tried per host name: libpq tries them in turn, as it would its own. */
#define DNS_MAX_ADDRS 8

/* Why a connection is given up: FAIL_DEADLINE a deadline passed (timed_out), FAIL_TOO_OLD the
 * server is older than pgcrond supports (too_old). */
enum fail_kind { FAIL_PLAIN, FAIL_DEADLINE, FAIL_TOO_OLD };
static void fail(struct conndrv *d, const char *why, enum fail_kind kind);
static int start_libpq(struct conndrv *d, const char *host, const char *hostaddr, const char *port);

/* ---- servers (conndrv.h) ----------------------------------------------------------------- */

static LIST_HEAD(, conndrv_waiter) waiters = LIST_HEAD_INITIALIZER(waiters); /* loop thread only */

/* The last word on each server, and the conninfos found on a server too old, each said once
 * (conndrv_tell_too_old) until a connection with the same conninfo succeeds; few, so a small
 * table, the oldest entry reused. */
#define SERVER_STATES 64
static struct server_state {
	struct event_base *base;
	char server[CONNDRV_SERVER_KEY]; /* or "#" and a too-old conninfo's hash (no password) */
	int up;                          /* 1 up, 0 down */
	char why[512];                   /* as long as a failure's message (fail()), so never cut */
	uint64_t seq;                    /* for reuse: the least recently told */
} server_states[SERVER_STATES];
static uint64_t server_seq;

static struct server_state *server_state_find(struct event_base *base, const char *server,
                                              bool make)
{
	struct server_state *oldest = &server_states[0];
	for (size_t i = 0; i < SERVER_STATES; i++) {
		struct server_state *st = &server_states[i];
		if (st->base == base && strcmp(st->server, server) == 0)
			return st;
		if (st->seq < oldest->seq)
			oldest = st;
	}
	if (!make)
		return NULL;
	memset(oldest, 0, sizeof(*oldest));
	oldest->base = base;
	snprintf(oldest->server, sizeof(oldest->server), "%s", server);
	oldest->seq = ++server_seq;
	return oldest;
}

/* D's conninfo's entry as one found on a server too old. */
static struct server_state *told_too_old(const struct conndrv *d, bool make)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)d->conninfo; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	char key[24];
	snprintf(key, sizeof(key), "#%016llx", (unsigned long long)h);
	return server_state_find(d->base, key, make);
}

bool conndrv_tell_too_old(const struct conndrv *d)
{
	if (!d->too_old || !d->conninfo || told_too_old(d, false))
		return false;
	(void)told_too_old(d, true);
	return true;
}

void conndrv_server_key(const char *conninfo, char *out, size_t outlen)
{
	PQconninfoOption *o = conninfo ? PQconninfoParse(conninfo, NULL) : NULL;

	snprintf(out, outlen, "%s", "");
	if (o)
		snprintf(out, outlen, "host=%s hostaddr=%s port=%s service=%s",
		         pgconn_option(o, "host"), pgconn_option(o, "hostaddr"),
		         pgconn_option(o, "port"), pgconn_option(o, "service"));
	PQconninfoFree(o);
}

void conndrv_unwait_server(struct conndrv_waiter *w)
{
	if (!w->linked)
		return;
	LIST_REMOVE(w, link);
	w->linked = false;
}

void conndrv_wait_server(struct conndrv_waiter *w, struct event_base *base, const char *server,
                         void (*wake)(void *arg), void *arg)
{
	conndrv_unwait_server(w);
	w->base = base;
	w->server = server;
	w->wake = wake;
	w->arg = arg;
	LIST_INSERT_HEAD(&waiters, w, link);
	w->linked = true;
}

static void server_tell(struct event_base *base, const char *server, int up, const char *why)
{
	struct server_state *st = server_state_find(base, server, true);
	st->up = up;
	snprintf(st->why, sizeof(st->why), "%s", why ? why : "");
	st->seq = ++server_seq;
}

/* A connection to SERVER succeeded: its waiters try again now. */
static void server_up(struct event_base *base, const char *server)
{
	server_tell(base, server, 1, NULL);
	/* WAKE only arms timers, so the list does not change under the walk but for W itself */
	for (struct conndrv_waiter *w = LIST_FIRST(&waiters), *next; w; w = next) {
		next = LIST_NEXT(w, link);
		if (w->base != base || strcmp(w->server, server) != 0)
			continue;
		conndrv_unwait_server(w);
		w->wake(w->arg);
	}
}

int conndrv_server_state(struct event_base *base, const char *server, const char **why)
{
	struct server_state *st = server_state_find(base, server, false);
	if (!st)
		return -1;
	if (why)
		*why = st->why;
	return st->up;
}

bool conndrv_server_answered(const char *why)
{
	return strstr(why, "FATAL:") && !strstr(why, "the database system is");
}

bool conndrv_server_full(const char *why)
{
	return strstr(why, "too many clients") || strstr(why, "too many connections for") ||
	       strstr(why, "remaining connection slots are reserved");
}

/* The driver's own wait: its backoff ends at once. */
static void wake_retry(void *arg)
{
	struct conndrv *d = arg;
	if (evtimer_pending(&d->retry.ev, NULL))
		conndrv_retry(d, 0);
}

/* ---- host names, resolved off the loop's back -----------------------------------------
 *
 * libpq resolves a host name with getaddrinfo(), which blocks, even in PQconnectPoll. So the
 * names of the conninfo's "host" list are resolved here with evdns first, one after the
 * other, and libpq gets the same list with each name repeated once per address, "hostaddr"
 * listing those addresses: it then connects without a lookup, and still uses the name for
 * TLS (SNI, verify-full) and .pgpass. Socket directories and numeric addresses are passed
 * through as they are; a conninfo that sets "hostaddr" itself is left alone. */

struct conndrv_dns {
	struct evdns_base *base;
	struct evdns_getaddrinfo_request *req;
	struct event next_ev; /* the answer is taken up from the loop, never inside evdns */
	char **hosts, **ports;
	size_t n_hosts, n_ports, i;
	int rc; /* the answer to hosts[i] */
	struct evutil_addrinfo *res;
	/* the lists being built for libpq */
	char *out_host, *out_addr, *out_port;
	size_t n_out;
	char why[256]; /* the last name that could not be resolved */
};

/* A comma-separated libpq list into *OUT (empty entries kept). */
static int split(const char *list, char ***out, size_t *n)
{
	size_t cap = 1;
	for (const char *p = list; *p; p++)
		cap += *p == ',';
	char **v = calloc(cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t k = 0;
	for (const char *p = list;; k++) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		v[k] = strndup(p, len);
		if (!v[k]) {
			text_free_list(v, k);
			return -ENOMEM;
		}
		if (!e)
			break;
		p = e + 1;
	}
	*out = v;
	*n = k + 1;
	return 0;
}

static bool is_name(const char *h)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return *h && *h != '/' && *h != '@' && inet_pton(AF_INET, h, buf) != 1 &&
	       inet_pton(AF_INET6, h, buf) != 1;
}

static int append(char **list, const char *item)
{
	size_t old = *list ? strlen(*list) : 0, add = strlen(item);
	char *n = realloc(*list, old + add + 2);
	if (!n)
		return -ENOMEM;
	if (*list)
		n[old++] = ',';
	memcpy(n + old, item, add + 1);
	*list = n;
	return 0;
}

static int add_entry(struct conndrv_dns *r, const char *host, const char *addr)
{
	const char *port = r->n_ports == 1 ? r->ports[0] : r->i < r->n_ports ? r->ports[r->i] : "";
	if (append(&r->out_host, host) < 0 || append(&r->out_addr, addr) < 0 ||
	    (r->n_ports > 1 && append(&r->out_port, port) < 0))
		return -ENOMEM;
	r->n_out++;
	return 0;
}

static void dns_free(struct conndrv *d)
{
	struct conndrv_dns *r = d->dns;
	if (!r)
		return;
	d->dns = NULL;
	if (r->req)
		evdns_getaddrinfo_cancel(r->req); /* its callback sees EVUTIL_EAI_CANCEL */
	event_del(&r->next_ev);
	if (r->res)
		evutil_freeaddrinfo(r->res);
	if (r->base)
		evdns_base_free(r->base, 0);
	text_free_list(r->hosts, r->n_hosts);
	text_free_list(r->ports, r->n_ports);
	free(r->out_host);
	free(r->out_addr);
	free(r->out_port);
	free(r);
}

static void on_dns_answer(int rc, struct evutil_addrinfo *res, void *arg)
{
	struct conndrv *d = arg;

	if (rc == EVUTIL_EAI_CANCEL) {
		if (res)
			evutil_freeaddrinfo(res);
		return; /* D is closing */
	}
	d->dns->req = NULL;
	d->dns->rc = rc;
	d->dns->res = res;
	event_active(&d->dns->next_ev, EV_TIMEOUT, 0);
}

/* Resolve the next name of the list, or, at its end, connect to what was found. */
static void dns_next(struct conndrv *d)
{
	struct conndrv_dns *r = d->dns;

	for (; r->i < r->n_hosts; r->i++) {
		if (is_name(r->hosts[r->i])) {
			struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
			                                .ai_socktype = SOCK_STREAM,
			                                .ai_protocol = IPPROTO_TCP};
			/* may answer at once (the hosts file): on_dns_answer defers either way */
			r->req = evdns_getaddrinfo(r->base, r->hosts[r->i], NULL, &hints,
			                           on_dns_answer, d);
			return;
		}
		/* a socket directory or an address: libpq needs no lookup for it */
		if (add_entry(r, r->hosts[r->i], "") < 0) {
			fail(d, "out of memory resolving the host names", FAIL_PLAIN);
			return;
		}
	}
	if (r->n_out == 0) {
		char why[256];
		snprintf(why, sizeof(why), "%s", r->why);
		fail(d, why, FAIL_PLAIN);
		return;
	}
	char *host = r->out_host, *addr = r->out_addr, *port = r->out_port;
	r->out_host = r->out_addr = r->out_port = NULL;
	dns_free(d);
	(void)start_libpq(d, host, addr, port);
	free(host);
	free(addr);
	free(port);
}

/* The answer for hosts[i] (from the loop): its addresses join the lists. */
static void on_dns_next(evutil_socket_t fd, short what, void *arg)
{
	struct conndrv *d = arg;
	struct conndrv_dns *r = d->dns;
	int n = 0;

	if (r->rc == EVUTIL_EAI_AGAIN || r->rc == EVUTIL_EAI_FAIL)
		snprintf(r->why, sizeof(r->why),
		         "could not translate host name \"%s\" to address: no answer from the "
		         "nameservers of /etc/resolv.conf (%s)",
		         r->hosts[r->i], evutil_gai_strerror(r->rc));
	else if (r->rc != 0)
		snprintf(r->why, sizeof(r->why),
		         "could not translate host name \"%s\" to address: %s", r->hosts[r->i],
		         evutil_gai_strerror(r->rc));
	for (struct evutil_addrinfo *a = r->res; a && n < DNS_MAX_ADDRS; a = a->ai_next) {
		char text[INET6_ADDRSTRLEN];
		const void *in =
		    a->ai_family == AF_INET
		        ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
		        : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
		if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
		    !evutil_inet_ntop(a->ai_family, in, text, sizeof(text)))
			continue;
		if (add_entry(r, r->hosts[r->i], text) < 0) {
			fail(d, "out of memory resolving the host names", FAIL_PLAIN);
			return;
		}
		n++;
	}
	if (r->res) {
		evutil_freeaddrinfo(r->res);
		r->res = NULL;
	}
	r->i++;
	dns_next(d);
}

/* Start resolving the conninfo's host names, if it has any (and sets no "hostaddr"): true if
 * under way. */
static bool dns_start(struct conndrv *d)
{
	PQconninfoOption *o = PQconninfoParse(d->conninfo, NULL);
	const char *hosts = pgconn_option(o, "host"), *ports = pgconn_option(o, "port");
	struct conndrv_dns *r = calloc(1, sizeof(*r));
	bool names = false;

	if (!*hosts && getenv("PGHOST"))
		hosts = getenv("PGHOST"); /* what libpq would use */
	if (r)
		evtimer_assign(&r->next_ev, d->base, on_dns_next, d);
	if (!o || *pgconn_option(o, "hostaddr") || !*hosts)
		goto out;
	if (!r || split(hosts, &r->hosts, &r->n_hosts) < 0 ||
	    (*ports && split(ports, &r->ports, &r->n_ports) < 0))
		goto fallback;
	for (size_t i = 0; i < r->n_hosts; i++)
		names |= is_name(r->hosts[i]);
	if (!names)
		goto out;
	/* the nameservers of resolv.conf and the hosts file, read now, so a change is seen at
	 * the next connect; inactive between requests, so it keeps no event on the loop */
	r->base = evdns_base_new(d->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	                                      EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!r->base)
		goto fallback;
	/* the lookup gives up, with its own words, within half the connect's deadline, even
	 * when no nameserver answers at all (resolv.conf's default: 5 s, 2 attempts) */
	char timeout[32];
	int64_t per_try = d->check_ms / 4 > 100 ? d->check_ms / 4 : 100;
	snprintf(timeout, sizeof(timeout), "%lld.%03lld", (long long)(per_try / 1000),
	         (long long)(per_try % 1000));
	evdns_base_set_option(r->base, "timeout:", timeout);
	evdns_base_set_option(r->base, "attempts:", "2");
	PQconninfoFree(o);
	d->dns = r;
	dns_next(d);
	return true;
fallback:
	/* libpq resolves the names itself (blocking) rather than not at all */
	log_debug("cannot set up the host name resolver; libpq resolves the names");
out:
	PQconninfoFree(o);
	if (r) {
		d->dns = r;
		dns_free(d);
	}
	return false;
}

/* ---- the connection -------------------------------------------------------------------- */

static void arm(struct conndrv *d, struct event *ev, int64_t ms)
{
	if (ev == &d->timer_ev)
		d->timer_ms = ms;
	clock_event_in(ev, ms);
}

/* Watch the socket for WHAT (0: nothing). The socket can change while connecting (libpq tries each
 * address of a multi-host conninfo in turn, each on a new socket): re-assign whenever it
 * differs. */
static void watch(struct conndrv *d, short what)
{
	evutil_socket_t fd = d->conn ? PQsocket(d->conn) : -1;

	if (d->sock.added && fd == d->sock.fd && what == d->sock.what)
		return;
	if (d->sock.added) {
		event_del(&d->sock.ev);
		d->sock.added = false;
	}
	if (fd < 0 || !what)
		return;
	event_assign(&d->sock.ev, d->base, fd, (short)(what | EV_PERSIST), conndrv_serve, d);
	if (d->priority >= 0)
		event_priority_set(&d->sock.ev, d->priority);
	if (event_add(&d->sock.ev, NULL) == 0) {
		d->sock.added = true;
		d->sock.fd = fd;
		d->sock.what = what;
	}
}

static void drop(struct conndrv *d)
{
	watch(d, 0);
	evtimer_del(&d->timer_ev);
	dns_free(d);
	PQfinish(d->conn);
	d->conn = NULL;
	d->state = CONNDRV_DOWN;
	d->busy = false;
	d->watching = false;
}

static void fail(struct conndrv *d, const char *why, enum fail_kind kind)
{
	char buf[512];
	bool was_ready = d->state == CONNDRV_READY;

	if (!why)
		pgconn_error_safe(d->conn, d->conninfo, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "%s", why); /* WHY may point into the connection */
	drop(d);
	d->timed_out = kind == FAIL_DEADLINE;
	d->too_old = kind == FAIL_TOO_OLD;
	d->answered = !was_ready && (conndrv_server_answered(buf) || d->too_old);
	if (!was_ready && !d->answered)
		server_tell(d->base, d->server, 0, buf);
	d->ops->failed(d->arg, buf, was_ready); /* last: it may free D */
}

void conndrv_fail(struct conndrv *d, const char *why)
{
	fail(d, why, FAIL_PLAIN);
}

static void connected(struct conndrv *d)
{
	evtimer_del(&d->timer_ev);
	if (PQsetnonblocking(d->conn, 1) != 0) {
		conndrv_fail(d, NULL);
		return;
	}
	char why[160];
	if (pgconn_server_too_old(d->conn, why, sizeof(why))) {
		fail(d, why, FAIL_TOO_OLD);
		return;
	}
	struct server_state *t = told_too_old(d, false);
	if (t) /* the server was replaced by a supported one: a refusal is said again */
		memset(t, 0, sizeof(*t));
	d->state = CONNDRV_READY;
	d->io_us = clock_mono_us();
	watch(d, EV_READ); /* also while idle: a server that went away is noticed at once */
	conndrv_idle(d);
	server_up(d->base, d->server);
	d->ops->connected(d->arg);
}

static void poll_connect(struct conndrv *d)
{
	switch (PQconnectPoll(d->conn)) {
	case PGRES_POLLING_READING:
		watch(d, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		watch(d, EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		connected(d);
		break;
	case PGRES_POLLING_FAILED:
	case PGRES_POLLING_ACTIVE: /* (libpq no longer answers it) */
		conndrv_fail(d, NULL);
		break;
	}
}

void conndrv_serve(evutil_socket_t fd, short what, void *arg)
{
	struct conndrv *d = arg;

	if (d->state == CONNDRV_CONNECTING) {
		poll_connect(d);
		return;
	}
	if (d->state != CONNDRV_READY)
		return;
	if (what & EV_WRITE) {
		int r = PQflush(d->conn);
		if (r < 0) {
			conndrv_fail(d, NULL);
			return;
		}
		if (r == 0)
			watch(d, EV_READ);
	}
	if (!(what & EV_READ))
		return;
	if (!PQconsumeInput(d->conn)) {
		conndrv_fail(d, NULL);
		return;
	}
	d->io_us = clock_mono_us();
	d->ops->readable(d->arg); /* last: it may free D */
}

/* The one timer: the connect's deadline, the deadline of the statement in flight, or, while
 * idle, the liveness check. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conndrv *d = arg;
	char why[128];

	if (d->state == CONNDRV_CONNECTING) {
		/* libpq leaves a non-blocking connect's deadline to its caller */
		snprintf(why, sizeof(why), "could not connect within %lld ms (connection_check)",
		         (long long)d->timer_ms);
		fail(d, why, FAIL_DEADLINE);
	} else if (d->state == CONNDRV_READY && d->busy && d->watching) {
		/* silent for half the check since the last byte either way, or armed again for
		 * the rest of that half */
		int64_t half = d->check_ms / 2, quiet = (clock_mono_us() - d->io_us) / 1000;
		arm(d, &d->timer_ev, quiet < half ? half - quiet : half);
		if (quiet >= half)
			d->ops->silent(d->arg); /* last: it may free D */
	} else if (d->state == CONNDRV_READY && d->busy) {
		snprintf(why, sizeof(why), "no answer within %lld ms (connection_check)",
		         (long long)d->timer_ms);
		fail(d, why, FAIL_DEADLINE);
	} else if (d->state == CONNDRV_READY && d->ops->check) {
		/* armed again first: the check may send nothing, or fail and free D */
		conndrv_idle(d);
		d->ops->check(d->arg);
	}
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct conndrv *d = arg;

	conndrv_unwait_server(&d->retry.wait);
	if (d->conninfo && d->state == CONNDRV_DOWN)
		(void)conndrv_connect(d, d->conninfo, d->app_name);
}

void conndrv_init(struct conndrv *d, struct event_base *base, const struct conndrv_ops *ops,
                  void *arg, const char *label, unsigned limit, int64_t window_ms, int64_t check_ms)
{
	*d = (struct conndrv){
	    .base = base,
	    .ops = ops,
	    .arg = arg,
	    .priority = -1,
	    .sock.fd = -1,
	    .check_ms = check_ms,
	    .retry = {.min_ms = CONNDRV_RETRY_MIN_MS, .max_ms = CONNDRV_RETRY_MAX_MS}};
	pgconn_notices_init(&d->notices, label, limit, window_ms);
	evtimer_assign(&d->timer_ev, base, on_timer, d);
	evtimer_assign(&d->retry.ev, base, on_retry, d);
}

void conndrv_set_job_session(struct conndrv *d)
{
	d->job_session = true;
}

void conndrv_set_priority(struct conndrv *d, int priority)
{
	d->priority = priority;
}

void conndrv_set_check(struct conndrv *d, int64_t ms)
{
	if (ms <= 0 || ms == d->check_ms)
		return; /* the next check stays where it is */
	d->check_ms = ms;
	if (d->state == CONNDRV_READY && !d->busy)
		conndrv_idle(d);
}

void conndrv_set_backoff(struct conndrv *d, int64_t min_ms, int64_t max_ms)
{
	if (min_ms > 0)
		d->retry.min_ms = min_ms;
	if (max_ms > 0)
		d->retry.max_ms = max_ms;
}

/* Hand the conninfo to libpq, with the resolved lists (NULL: as it is). Returns 0, or
 * -ECONNREFUSED after failed() was called (D may be gone). */
static int start_libpq(struct conndrv *d, const char *host, const char *hostaddr, const char *port)
{
	char why[512];

	if (pgconn_start_at(d->conninfo, d->app_name, !d->job_session, host, hostaddr, port,
	                    &d->conn) != 0) {
		if (!d->conn)
			fail(d, "out of memory", FAIL_PLAIN);
		else
			fail(d, pgconn_error_safe(d->conn, d->conninfo, why, sizeof(why)),
			     FAIL_PLAIN);
		return -ECONNREFUSED;
	}
	pgconn_log_notices(d->conn, &d->notices);
	/* libpq: after PQconnectStart, wait for the socket to be writable before polling */
	watch(d, EV_WRITE);
	return 0;
}

int conndrv_connect(struct conndrv *d, const char *conninfo, const char *application_name)
{
	drop(d);
	conndrv_cancel_retry(d);
	conndrv_server_key(conninfo, d->server, sizeof(d->server));
	d->conninfo = conninfo;
	if (application_name != d->app_name)
		snprintf(d->app_name, sizeof(d->app_name), "%s", application_name);
	d->state = CONNDRV_CONNECTING;
	/* one deadline for the lookup and the connect */
	arm(d, &d->timer_ev, d->check_ms);
	if (dns_start(d))
		return 0;
	return start_libpq(d, NULL, NULL, NULL);
}

void conndrv_adopt(struct conndrv *d, PGconn *conn, const char *conninfo)
{
	conndrv_close(d);
	conndrv_server_key(conninfo, d->server, sizeof(d->server));
	d->conninfo = conninfo;
	d->conn = conn;
	d->state = CONNDRV_CONNECTING;
	pgconn_log_notices(d->conn, &d->notices);
	connected(d);
}

void conndrv_close(struct conndrv *d)
{
	drop(d);
	conndrv_cancel_retry(d);
}

void conndrv_cancel_retry(struct conndrv *d)
{
	evtimer_del(&d->retry.ev);
	conndrv_unwait_server(&d->retry.wait);
}

void conndrv_retry(struct conndrv *d, int64_t ms)
{
	conndrv_cancel_retry(d);
	arm(d, &d->retry.ev,
	    ms >= 0 ? ms : pgconn_backoff_ms(d->failures++, d->retry.min_ms, d->retry.max_ms));
	/* a backoff ends when another connection finds the server back; not one after the
	 * server's own refusal, which another connection's success says nothing about */
	if (ms < 0 && d->server[0] && !d->answered)
		conndrv_wait_server(&d->retry.wait, d->base, d->server, wake_retry, d);
}

void conndrv_succeeded(struct conndrv *d)
{
	d->failures = 0;
}

void conndrv_busy(struct conndrv *d, int64_t deadline_ms)
{
	d->busy = true;
	evtimer_del(&d->timer_ev);
	d->watching = deadline_ms <= 0 && d->ops->silent != NULL;
	if (deadline_ms > 0)
		arm(d, &d->timer_ev, deadline_ms);
	else if (d->watching)
		arm(d, &d->timer_ev, d->check_ms / 2);
}

/* (also the driver's own: connected, and each idle check) The next liveness check in
 * connection check / 2, so a silent connection is found out (the check's own deadline is the
 * other half) within one connection check. */
void conndrv_idle(struct conndrv *d)
{
	conndrv_idle_within(d, d->check_ms / 2);
}

void conndrv_idle_within(struct conndrv *d, int64_t ms)
{
	d->busy = false;
	d->watching = false;
	evtimer_del(&d->timer_ev);
	if (d->state == CONNDRV_READY && d->ops->check)
		arm(d, &d->timer_ev, ms < d->check_ms / 2 ? ms : d->check_ms / 2);
}

bool conndrv_flush(struct conndrv *d)
{
	int r = PQflush(d->conn);
	if (r < 0)
		return false;
	d->io_us = clock_mono_us();
	watch(d, r ? EV_READ | EV_WRITE : EV_READ);
	return true;
}

short conndrv_watching(const struct conndrv *d)
{
	return d->sock.added ? d->sock.what : 0;
}
