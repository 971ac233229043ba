/* The HTTP listener: evhttp on the daemon's loop, its routes, and the bearer token check.
 * Every handler answers from what is in memory, except /health, which waits (at most
 * HEALTH_TIMEOUT_MS) for the history database to answer a query; evhttp keeps a request
 * whose reply is deferred alive even when its client goes away. */
#include "http.h"
#include "http_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "bgwork.h"
#include "clock.h"
#include "config.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "sched.h"
#include "status.h"
#include "tls_listen.h"

/* The status page, made from http_page.html at build time (core/CMakeLists.txt). */
extern const char http_page_html[], http_page_js[];
extern const size_t http_page_html_len, http_page_js_len;

/* The connection cap without http.max_connections, and the timeout without http.timeout. */
#define HTTP_MAX_CONNS_DEFAULT 64
#define HTTP_TIMEOUT_MS_DEFAULT 10000
/* After a failed accept() (out of descriptors), the listener rests this long. */
#define ACCEPT_BACKOFF_MS 500

/* Scrapes rendering at once; a scraper asking for more is told to come back. */
#define SCRAPES_MAX 4

/* ---- authorization ---------------------------------------------------------------------- */

static bool authorized(struct http *h, struct evhttp_request *req)
{
	const char *auth =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	return h->token && auth && strncmp(auth, "Bearer ", 7) == 0 &&
	       http_same_secret(auth + 7, h->token);
}

static void refuse(struct http *h, struct evhttp_request *req, bool control)
{
	if (log_complain(&h->auth_complaint, NULL))
		log_warning("http: refused a request from %s without a valid bearer token",
		            http_peer(req));
	if (control && !h->token) {
		http_reply_error(
		    req, 403, "Forbidden",
		    "control requests need http.token_file in pgcrond.conf and that token in "
		    "an Authorization: Bearer header");
		return;
	}
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	evhttp_add_header(hdr, "WWW-Authenticate", "Bearer realm=\"pgcrond\"");
	http_reply_error(req, 401, "Unauthorized",
	                 "send the token of http.token_file as Authorization: Bearer TOKEN");
}

/* ---- /metrics, /status.json ------------------------------------------------------------ */

/* One /metrics request: what the loop copied for the worker, and what the worker made. */
struct scrape {
	struct bgwork_job job; /* first: the job is the scrape */
	struct http *h;
	struct evhttp_request *req;
	json_t *st;        /* the status document, owned by the scrape */
	struct metrics *m; /* a copy of the counters */
	char *text;
	size_t len;
	int rc;
};

static void scrape_work(struct bgwork_job *job)
{
	struct scrape *s = (struct scrape *)job;
	FILE *f = open_memstream(&s->text, &s->len);
	s->rc = -ENOMEM;
	if (f) {
		s->rc = status_metrics(s->m, s->st, f);
		if (fclose(f) != 0)
			s->rc = -EIO;
	}
}

static void free_text(const void *data, size_t len, void *arg)
{
	free((void *)data);
}

static void scrape_done(struct bgwork_job *job, bool ran)
{
	struct scrape *s = (struct scrape *)job;
	s->h->scrapes--;
	struct evbuffer *buf = ran && s->rc == 0 ? evbuffer_new() : NULL;
	if (buf && evbuffer_add_reference(buf, s->text, s->len, free_text, NULL) == 0) {
		s->text =
		    NULL; /* the buffer frees it once sent: 34 MB at 10,000 jobs, not copied */
		http_reply_buf(s->req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", buf);
	} else {
		http_reply_error(s->req, 500, "Internal Server Error",
		                 ran ? "out of memory rendering the metrics"
		                     : "pgcrond is stopping");
	}
	if (buf)
		evbuffer_free(buf);
	free(s->text);
	metrics_free(&s->m);
	json_decref(s->st);
	free(s);
}

static void serve_metrics(struct http *h, struct evhttp_request *req)
{
	if (h->scrapes >= SCRAPES_MAX) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
		http_reply_error(
		    req, 503, "Service Unavailable",
		    "other scrapes of /metrics are being rendered; try again in a second");
		return;
	}
	struct scrape *s = calloc(1, sizeof(*s));
	if (s)
		*s = (struct scrape){.job = {.work = scrape_work, .done = scrape_done},
		                     .h = h,
		                     .req = req,
		                     .st = status_snapshot(h->src.status, NULL)};
	if (!s || !s->st || metrics_copy_counters(h->src.metrics, &s->m) < 0 ||
	    (!h->bg && bgwork_new(h->base, 1, &h->bg) < 0) || bgwork_submit(h->bg, &s->job) < 0) {
		if (s) {
			metrics_free(&s->m);
			json_decref(s->st);
		}
		free(s);
		http_reply_error(req, 500, "Internal Server Error",
		                 "out of memory rendering the metrics");
		return;
	}
	h->scrapes++;
}

/* Without a token every local user reads the listener, while row-level security hides
 * other roles' runs from them in SQL: they get states and counts, not the text of a failure
 * (a job's last message, the recent failures' messages, a database's last connection error,
 * why a job made in SQL is not run), which may carry data. */
static void redact(json_t *st)
{
	size_t i;
	const char *k;
	json_t *o;
	json_object_set_new(st, "redacted", json_true());
	json_object_foreach(json_object_get(st, "refused"), k, o)
	{
		json_object_del(o, "why");
		json_object_del(o, "said");
	}
	json_array_foreach(json_object_get(st, "jobs"), i, o)
	    json_object_del(json_object_get(o, "last_result"), "message");
	json_array_foreach(json_object_get(st, "recent_failures"), i, o)
	    json_object_del(o, "message");
	json_array_foreach(json_object_get(st, "databases"), i, o) json_object_del(o, "last_error");
}

/* The status document (status.h), with the last failures: with their whole text when a
 * token guards the listener (and so was sent), redacted otherwise. */
static json_t *status_doc(struct http *h)
{
	json_t *st = status_snapshot(h->src.status, NULL);
	if (!st)
		return NULL;
	if (!h->token)
		redact(st);
	return st;
}

static void serve_status(struct http *h, struct evhttp_request *req)
{
	json_t *st = status_doc(h);
	if (!st) {
		http_reply_error(req, 500, "Internal Server Error", "out of memory");
		return;
	}
	http_reply_json(req, 200, "OK", st);
}

/* The page with the status document inlined where it holds the marker, so it shows
 * everything at its first paint (and in a browser that runs no more than its load event);
 * it then refreshes itself from /status.json. */
static void serve_page(struct http *h, struct evhttp_request *req, bool with_state)
{
	static const char marker[] = "/*STATUS*/null";
	json_t *st = with_state ? status_doc(h) : NULL;
	char *doc = !with_state ? strdup("null") : st ? json_dumps(st, JSON_COMPACT) : NULL;
	const char *at = memmem(http_page_html, http_page_html_len, marker, sizeof(marker) - 1);
	struct evbuffer *buf = evbuffer_new();
	json_decref(st);
	if (!doc || !at || !buf) {
		free(doc);
		if (buf)
			evbuffer_free(buf);
		http_reply_error(req, 500, "Internal Server Error", "out of memory");
		return;
	}
	size_t pre = (size_t)(at - http_page_html);
	evbuffer_add(buf, http_page_html, pre);
	/* inside <script>, "</script" ends it and "<!--" changes how it is read: every "<"
	 * (only ever inside a JSON string) goes in as \u003c */
	for (const char *p = doc, *lt; *p; p = lt + 1) {
		lt = strchr(p, '<');
		if (!lt) {
			evbuffer_add(buf, p, strlen(p));
			break;
		}
		evbuffer_add(buf, p, (size_t)(lt - p));
		evbuffer_add(buf, "\\u003c", 6);
	}
	evbuffer_add(buf, at + sizeof(marker) - 1, http_page_html_len - pre - (sizeof(marker) - 1));
	free(doc);
	/* nothing from elsewhere, no inline script (the state is a JSON data block) */
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	evhttp_add_header(hdr, "Content-Security-Policy",
	                  "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
	                  "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
	                  "frame-ancestors 'none'");
	evhttp_add_header(hdr, "X-Frame-Options", "DENY");
	http_reply_buf(req, 200, "OK", "text/html; charset=utf-8", buf);
	evbuffer_free(buf);
}

/* ---- /health ------------------------------------------------------------------------------ */

struct health_req {
	struct http *h;
	struct evhttp_request *req;
};

/* OK and WHY as the check says, or unavailable while pgcrond stops. */
static void health_reply(struct http *h, struct evhttp_request *req, bool ok, const char *why)
{
	if (h->stopping) {
		ok = false;
		why = "pgcrond is shutting down";
	}
	http_reply_json(
	    req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable",
	    json_pack("{s:s,s:s,s:I,s:s?,s:s?}", "status", ok ? "ok" : "unavailable", "version",
	              PGCROND_VERSION, "uptime_seconds",
	              (json_int_t)((clock_wall_us() - h->src.status->started_us) / 1000000),
	              "history_database", h->history_database, "reason", ok ? NULL : why));
}

static void health_done(void *arg, bool ok, const char *why)
{
	struct health_req *hr = arg;
	health_reply(hr->h, hr->req, ok, why);
	free(hr);
}

static void serve_health(struct http *h, struct evhttp_request *req)
{
	if (h->stopping || !h->health) {
		/* no history database: the loop answering is all there is to say */
		health_reply(h, req, true, "");
		return;
	}
	struct health_req *hr = calloc(1, sizeof(*hr));
	if (!hr) {
		http_reply_error(req, 500, "Internal Server Error", "out of memory");
		return;
	}
	hr->h = h;
	hr->req = req;
	if (health_check(h->health, health_done, hr) < 0) {
		free(hr);
		http_reply_error(req, 500, "Internal Server Error", "out of memory");
	}
}

/* ---- control --------------------------------------------------------------------------- */

/* POST /jobs/NAME/trigger */
static void serve_trigger(struct http *h, struct evhttp_request *req, const char *name)
{
	char msg[256];
	int rc = sched_trigger(h->src.status->sched, name, TRIGGER_MANUAL, false);
	if (rc == 0) {
		log_job(LOG_LVL_NOTICE, name, "triggered over HTTP");
		http_reply_json(req, 202, "Accepted",
		                json_pack("{s:s,s:s}", "job", name, "status", "triggered"));
		return;
	}
	if (rc == -ENOENT) {
		snprintf(msg, sizeof(msg), "no job is named \"%s\"", name);
		http_reply_error(req, 404, "Not Found", msg);
	} else if (rc == -EPERM) {
		http_reply_error(req, 409, "Conflict", "the job is disabled");
	} else if (rc == -ESHUTDOWN) {
		http_reply_error(req, 503, "Service Unavailable", "pgcrond is shutting down");
	} else {
		snprintf(msg, sizeof(msg), "cannot trigger: %s", strerror(-rc));
		http_reply_error(req, 500, "Internal Server Error", msg);
	}
}

/* ---- routing ------------------------------------------------------------------------------ */

static void mark_asked(struct http *h, const struct evhttp_connection *evcon);

/* A POST's Origin, when sent, is this listener's own scheme://Host, and its Sec-Fetch-Site,
 * when sent, same-origin or none: another site's form or script is refused (403), so that it
 * can neither log a browser in as its own role nor act through the browser's session. */
static bool same_origin(const struct http *h, struct evhttp_request *req)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *origin = evhttp_find_header(in, "Origin");
	const char *site = evhttp_find_header(in, "Sec-Fetch-Site");
	const char *host = evhttp_find_header(in, "Host");
	char own[300];
	snprintf(own, sizeof(own), "http%s://%s", h->tls ? "s" : "", host ? host : "");
	if ((!origin || (host && strcasecmp(origin, own) == 0)) &&
	    (!site || strcmp(site, "same-origin") == 0 || strcmp(site, "none") == 0))
		return true;
	log_warning("http: a POST from another site (Origin %.100s, Sec-Fetch-Site %.20s) refused",
	            origin ? origin : "none", site ? site : "none");
	http_reply_error(req, 403, "Forbidden",
	                 "a POST from another site is refused (its Origin or Sec-Fetch-Site)");
	return false;
}

static void route(struct evhttp_request *req, void *arg)
{
	struct http *h = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;

	if (!path || !*path)
		path = "/";
	mark_asked(h, evhttp_request_get_connection(req));
	if (get && strcmp(path, "/health") == 0) {
		serve_health(h, req);
		return;
	}
	if (cmd == EVHTTP_REQ_POST && !same_origin(h, req))
		return;
	bool bearer = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (!bearer && (cmd == EVHTTP_REQ_POST || get) &&
	    http_session_route(h, req, path, cmd == EVHTTP_REQ_POST))
		return;
	if (get && strcmp(path, "/page.js") == 0) {
		http_reply(req, 200, "OK", "text/javascript; charset=utf-8", http_page_js,
		           http_page_js_len);
		return;
	}
	if (cmd == EVHTTP_REQ_POST) {
		static const char prefix[] = "/jobs/", suffix[] = "/trigger";
		size_t n = strlen(path);
		if (!authorized(h, req)) {
			refuse(h, req, true);
			return;
		}
		if (n > sizeof(prefix) - 1 + sizeof(suffix) - 1 &&
		    strncmp(path, prefix, sizeof(prefix) - 1) == 0 &&
		    strcmp(path + n - (sizeof(suffix) - 1), suffix) == 0) {
			char name[128];
			size_t nl = n - (sizeof(prefix) - 1) - (sizeof(suffix) - 1);
			if (nl >= sizeof(name)) {
				http_reply_error(req, 404, "Not Found", "no such job");
				return;
			}
			memcpy(name, path + sizeof(prefix) - 1, nl);
			name[nl] = '\0';
			serve_trigger(h, req, name);
			return;
		}
		http_reply_error(req, 404, "Not Found",
		                 "POST /jobs/NAME/trigger is the one control request");
		return;
	}
	if (!get) {
		http_reply_error(req, 405, "Method Not Allowed", "use GET");
		return;
	}
	bool page = strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0;
	if (h->token && !authorized(h, req)) {
		/* A browser cannot send the header with a page it opens: the page comes without
		 * any state, asks for the token and sends it with its requests for the state. */
		if (page)
			serve_page(h, req, false);
		else
			refuse(h, req, false);
		return;
	}
	if (strcmp(path, "/metrics") == 0)
		serve_metrics(h, req);
	else if (page)
		serve_page(h, req, true);
	else if (strcmp(path, "/status.json") == 0)
		serve_status(h, req);
	else
		http_reply_error(req, 404, "Not Found", "try /, /status.json, /metrics or /health");
}

/* ---- connections ----------------------------------------------------------------------- */

/* libevent 2.1 (Debian 12) has no evhttp_set_max_connections and hands no accepted socket to
 * the application: each new connection is seen through the bufferevent evhttp asks us for
 * (evhttp_set_bevcb), and once evhttp has set it up (its callbacks' argument is then the
 * connection), adopted with a close callback that counts it out. */
struct conn {
	LIST_ENTRY(conn) link;
	struct http *h;
	struct bufferevent *bev;         /* pending: referenced until adopted */
	struct evhttp_connection *evcon; /* adopted */
	bool asked;                      /* a whole request came on it (route) */
	unsigned round;                  /* the adopt_cb round that adopted it */
};

/* Connections accepted past the cap in one round of the listener, before adopt_cb makes room */
#define CONNS_OVER_CAP 8

/* A whole request came on EVCON (route). */
static void mark_asked(struct http *h, const struct evhttp_connection *evcon)
{
	struct conn *c;
	LIST_FOREACH(c, &h->conns.adopted, link)
		if (c->evcon == evcon)
			c->asked = true;
}

/* The oldest connection on which no whole request came yet, adopted before this round, or
 * NULL. At the cap such a connection is closed to make room for a new one: clients that hold
 * connections open without asking anything (slowloris) then keep no probe's /health
 * waiting, since a request that comes whole is never among those closed, and a connection
 * just accepted has a round of the loop at least to send its own. (The list's head is the
 * newest.) */
static struct conn *oldest_silent(const struct http *h, bool this_round_too)
{
	struct conn *oldest = NULL, *c;
	LIST_FOREACH(c, &h->conns.adopted, link)
		if (!c->asked && (this_round_too || c->round != h->conns.round))
			oldest = c;
	return oldest;
}

/* Close C (oldest_silent's): counted out here, not by its close callback (which libevent
 * calls only for a connection it still counts as connected). */
static void evict(struct http *h, struct conn *c)
{
	struct evhttp_connection *evcon = c->evcon;
	evhttp_connection_set_closecb(evcon, NULL, NULL);
	LIST_REMOVE(c, link);
	free(c);
	h->conns.n--;
	evhttp_connection_free(evcon);
}

/* Accept again when neither the cap (with no silent connection to close) nor a back-off
 * holds the listener. */
static void listener_update(struct http *h)
{
	bool full = h->conns.n >= h->conns.max;
	/* (this round's count: the next accept starts a round that may close them) */
	bool cap = full && !oldest_silent(h, true);
	if (full && !h->conns.at_cap && log_complain(&h->conns.cap_complaint, NULL))
		log_warning(
		    "http: %d connections open, the most http.max_connections allows; "
		    "the oldest that asked nothing yet are closed to make room, and new ones "
		    "wait when none is left (a client holding connections open?)",
		    h->conns.n);
	h->conns.at_cap = full;
	if (!h->conns.lev)
		return;
	if (cap || evtimer_pending(&h->conns.backoff_ev, NULL))
		evconnlistener_disable(h->conns.lev);
	else
		evconnlistener_enable(h->conns.lev);
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct conn *c = arg;
	struct http *h = c->h;
	LIST_REMOVE(c, link);
	free(c);
	h->conns.n--;
	listener_update(h);
}

static void adopt_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = arg;
	h->conns.round++;
	struct conn *c;
	while ((c = LIST_FIRST(&h->conns.pending))) {
		void *cbarg = NULL;
		LIST_REMOVE(c, link);
		bufferevent_getcb(c->bev, NULL, NULL, NULL, &cbarg);
		bufferevent_decref(c->bev);
		c->bev = NULL;
		if (!cbarg) {
			/* evhttp gave it up already (out of memory): freed, callbacks cleared */
			free(c);
			h->conns.n--;
			continue;
		}
		c->evcon = cbarg;
		c->round = h->conns.round;
		LIST_INSERT_HEAD(&h->conns.adopted, c, link);
		evhttp_connection_set_closecb(c->evcon, conn_closed, c);
	}
	while (h->conns.n > h->conns.max && (c = oldest_silent(h, false)) != NULL)
		evict(h, c);
	listener_update(h);
}

/* evhttp's request for a bufferevent for a connection it just accepted. */
static struct bufferevent *new_conn(struct event_base *base, void *arg)
{
	struct http *h = arg;
	struct conn *c = calloc(1, sizeof(*c));
	struct bufferevent *bev = h->tls ? tls_listen_bev(h->tls, base)
	                                 : bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!c || !bev) {
		free(c);
		return bev; /* evhttp manages it (or makes its own): not counted, not capped */
	}
	c->h = h;
	c->bev = bev;
	bufferevent_incref(bev); /* until adopted: evhttp may free it first */
	LIST_INSERT_HEAD(&h->conns.pending, c, link);
	h->conns.n++;
	event_active(&h->conns.adopt_ev, EV_TIMEOUT, 1);
	if (h->conns.n >= h->conns.max + CONNS_OVER_CAP && h->conns.lev)
		evconnlistener_disable(h->conns.lev); /* until adopt_cb has made room */
	return bev;
}

static void backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = arg;
	listener_update(h);
}

/* accept() failed with something other than EAGAIN/EINTR: out of descriptors, most often.
 * libevent would log and retry at once, in a loop; rest the listener instead. */
static void accept_error(struct evconnlistener *lev, void *arg)
{
	struct http *h = arg;
	int err = EVUTIL_SOCKET_ERROR();
	if (log_complain(&h->conns.accept_complaint, NULL))
		log_error("http: cannot accept a connection: %s (%d HTTP connections open); the "
		          "listener pauses %d ms after each failure (this is logged at most once a "
		          "minute, less often while it lasts)",
		          strerror(err), h->conns.n, ACCEPT_BACKOFF_MS);
	struct timeval tv = {0, ACCEPT_BACKOFF_MS * 1000};
	evtimer_add(&h->conns.backoff_ev, &tv);
	listener_update(h);
}

int http_raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t old = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			rl.rlim_cur = old;
	}
	return rl.rlim_cur > 1 << 20 ? 1 << 20 : (int)rl.rlim_cur;
}

/* ---- lifetime ------------------------------------------------------------------------------ */

void http_apply(struct http *h, const struct pgc_config *cfg)
{
	const struct conf_http *c = &cfg->http;
	if (!h) {
		if (c->listen)
			log_warning(
			    "http.listen is set; the listener starts when pgcrond restarts");
		return;
	}
	if (!c->listen || strcmp(c->listen, h->listen) != 0) {
		/* the token too: a listener on another host's reach never loses its token */
		log_warning("http changed; the listener stays on %s as it was until pgcrond "
		            "restarts",
		            h->listen);
		return;
	}
	char *tok = c->token ? strdup(c->token) : NULL;
	if (c->token && !tok) {
		log_error("http: out of memory; the bearer token is unchanged");
		return;
	}
	if (h->token) {
		explicit_bzero(h->token, strlen(h->token));
		free(h->token);
	}
	h->token = tok;
}

void http_set_stopping(struct http *h)
{
	if (h)
		h->stopping = true;
}

int http_open(struct event_base *base, const struct pgc_config *cfg, const struct http_sources *src,
              struct http **out)
{
	const struct conf_http *c = &cfg->http;
	struct http *h;
	int rc = -ENOMEM;

	*out = NULL;
	if (!c->listen)
		return 0;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->base = base;
	h->src = *src;
	h->src.history_conninfo = NULL;
	h->src.history_database = NULL;
	if (!(h->listen = strdup(c->listen)) || !(h->evh = evhttp_new(base)))
		goto fail;
	if (src->history_database && !(h->history_database = strdup(src->history_database)))
		goto fail;
	if (src->history_conninfo && (health_new(base, src->history_conninfo, &h->health) < 0 ||
	                              !(h->conninfo = strdup(src->history_conninfo))))
		goto fail;
	if (cron_tz_open(cfg->timezone, &h->tz, NULL, 0) < 0)
		h->tz = NULL; /* UTC */
	char err[256];
	if (c->tls_cert_file && c->tls_key_file &&
	    (rc = tls_listen_open(c->tls_cert_file, c->tls_key_file, &h->tls, err, sizeof(err))) <
	        0) {
		log_error("http: cannot serve TLS with tls_cert_file %s and tls_key_file %s: %s; "
		          "give a PEM certificate chain and its private key",
		          c->tls_cert_file, c->tls_key_file, err);
		goto fail;
	}
	http_apply(h, cfg);
	evhttp_set_allowed_methods(h->evh, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	evhttp_set_max_body_size(h->evh, 65536); /* a job's command, from the page */
	evhttp_set_max_headers_size(h->evh, 16384);
	/* a client that sends its request slowly, or keeps an idle connection, is dropped */
	int64_t tms = c->timeout_ms > 0 ? c->timeout_ms : HTTP_TIMEOUT_MS_DEFAULT;
	struct timeval tv = {(time_t)(tms / 1000), (suseconds_t)(tms % 1000 * 1000)};
	evhttp_set_timeout_tv(h->evh, &tv);
	evhttp_set_gencb(h->evh, route, h);
	int room = http_raise_fd_limit() / 4;
	h->conns.max = c->max_connections > 0 ? c->max_connections : HTTP_MAX_CONNS_DEFAULT;
	if (h->conns.max > room) {
		log_warning("http: max_connections %d leaves too few descriptors for the jobs' "
		            "connections (the limit is %d); serving at most %d",
		            h->conns.max, room * 4, room > 0 ? room : 1);
		h->conns.max = room > 0 ? room : 1;
	}
	event_assign(&h->conns.adopt_ev, base, -1, 0, adopt_cb, h);
	evtimer_assign(&h->conns.backoff_ev, base, backoff_cb, h);
	evhttp_set_bevcb(h->evh, new_conn, h);
	h->bound = evhttp_bind_socket_with_handle(h->evh, c->host, (ev_uint16_t)c->port);
	if (!h->bound) {
		rc = errno ? -errno : -EADDRNOTAVAIL;
		log_error("http: cannot listen on %s: %s; free the port or change http.listen",
		          c->listen, strerror(-rc));
		goto fail;
	}
	h->conns.lev = evhttp_bound_socket_get_listener(h->bound);
	evconnlistener_set_error_cb(h->conns.lev, accept_error);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(evhttp_bound_socket_get_fd(h->bound), (struct sockaddr *)&ss, &sl) == 0)
		h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                                         : ((struct sockaddr_in *)&ss)->sin_port);
	const char *v6 = strchr(c->host, ':') ? "[" : "";
	log_notice("http: listening on http%s://%s%s%s:%d/ (%s)", h->tls ? "s" : "", v6, c->host,
	           *v6 ? "]" : "", h->port,
	           h->token ? "bearer token required"
	                    : "no token: loopback only, no control requests");
	*out = h;
	return 0;
fail:
	http_free(&h);
	return rc;
}

void http_free(struct http **hp)
{
	struct http *h = *hp;
	if (!h)
		return;
	http_sessions_free(h);
	health_free(&h->health);
	cron_tz_free(&h->tz);
	if (h->conninfo)
		explicit_bzero(h->conninfo, strlen(h->conninfo));
	free(h->conninfo);
	bgwork_free(&h->bg); /* scrapes under way are answered first */
	if (h->evh) {
		h->conns.lev = NULL;
		if (event_initialized(&h->conns.adopt_ev)) {
			event_del(&h->conns.adopt_ev);
			event_del(&h->conns.backoff_ev);
			adopt_cb(-1, 0, h); /* so that every connection has its close callback */
		}
		evhttp_free(h->evh); /* closes them: conn_closed frees each */
	}
	for (struct conn *c; (c = LIST_FIRST(&h->conns.adopted));) {
		LIST_REMOVE(c, link);
		free(c);
	}
	if (h->token) {
		explicit_bzero(h->token, strlen(h->token));
		free(h->token);
	}
	tls_listen_free(&h->tls);
	free(h->listen);
	free(h->history_database);
	free(h);
	*hp = NULL;
}
