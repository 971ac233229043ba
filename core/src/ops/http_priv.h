#ifndef PGCROND_HTTP_PRIV_H
#define PGCROND_HTTP_PRIV_H

/* Inside the HTTP listener: the listener's state, its replies (http_reply.c), and the page's
 * sessions (http_session.c), which http.c routes to. */

#include <event2/event_struct.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "cron_tz.h"
#include "http.h"
#include "log.h"

struct sess;

struct http {
	struct event_base *base;
	struct evhttp *evh;
	struct evhttp_bound_socket *bound;
	int port;
	char *listen;
	char *token; /* NULL: none configured */
	struct http_sources src;
	char *history_database;
	struct health *health;
	bool stopping;
	/* the page's sessions (http_session.c) */
	char *conninfo; /* the history database's, whose host, port and dbname a login uses */
	cron_tz *tz;    /* the daemon's zone, for the next fires of a schedule typed */
	struct ssl_ctx_st *tls; /* NULL: plain HTTP */
	LIST_HEAD(, sess) sessions;
	int n_sessions;
	struct bgwork *login_bg; /* the logins' connects (http_session.c) */
	struct login_tries {
		char key[112]; /* the address and the role */
		int64_t since_us;
		int failed;
	} tries[32]; /* the logins of the last addresses and roles */
	struct log_complaint auth_complaint;
	/* /metrics is rendered on a worker thread from copies: 10,000 jobs make 34 MB of text,
	 * about 140 ms of formatting that would otherwise delay every fire due meanwhile */
	struct bgwork *bg;
	int scrapes; /* under way */
	/* Open connections, so that local users cannot take the daemon's descriptors: at MAX the
	 * listener LEV stops accepting (the kernel's backlog holds the rest); an accept() that
	 * fails (EMFILE) stops it for ACCEPT_BACKOFF_MS instead of a busy loop. */
	struct {
		struct evconnlistener *lev;
		int n, max;
		LIST_HEAD(, conn) adopted, pending; /* PENDING: accepted, for adopt_cb to adopt */
		struct event adopt_ev;              /* activated for the pending */
		struct event backoff_ev; /* re-enables the listener after a failed accept */
		bool at_cap;
		unsigned round; /* adopt_cb's rounds */
		struct log_complaint accept_complaint, cap_complaint;
	} conns;
};

/* Replies with the headers every reply carries; BUF and BODY are copied, J is taken. */
void http_reply_buf(struct evhttp_request *req, int code, const char *reason, const char *type,
                    struct evbuffer *buf);
void http_reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                const char *body, size_t len);
void http_reply_json(struct evhttp_request *req, int code, const char *reason, json_t *j);
void http_reply_error(struct evhttp_request *req, int code, const char *reason,
                      const char *message);
/* REQ's client address (the connection's: valid while REQ is), "?" if unknown. */
const char *http_peer(struct evhttp_request *req);
/* A and B equal, compared in a time that tells nothing of where they differ. */
bool http_same_secret(const char *a, const char *b);

/* The page's requests: POST /login, /logout, /jobs, /jobs/NAME/ACTION without a bearer
 * token, GET /session.json and /schedule.json. Returns false for any other, unanswered. */
bool http_session_route(struct http *h, struct evhttp_request *req, const char *path, bool post);
/* End every session (the listener closes). */
void http_sessions_free(struct http *h);

#endif
