#ifndef PGCROND_HTTP_H
#define PGCROND_HTTP_H

/* The optional HTTP listener (http = { listen = "127.0.0.1:9187"; } in pgcrond.conf),
 * libevent's evhttp on the daemon's event_base:
 *   GET /metrics      Prometheus text format (metrics.h)
 *   GET /health       200 {"status":"ok",...} while the history database answers (health.h),
 *                     503 {"status":"unavailable","reason":...} otherwise or while stopping
 *   GET /             the status page: one self-contained HTML file (http_page.html)
 *   GET /status.json  what the page shows
 *   GET /page.js      the page's script
 *   POST /jobs/NAME/trigger   run NAME now, with the bearer token
 * and the page's, for a PostgreSQL role logged in to it (http_session.c), form-encoded with
 * the session's token in the field csrf:
 *   POST /login (role, password), /logout, /jobs (name, schedule, command),
 *   POST /jobs/NAME/ACTION   pause, resume, edit (schedule, command), trigger, drop, unschedule
 *   GET /session.json  the role's jobs and what it may do;  GET /schedule.json?schedule=S
 * With http.token_file set, every other request but /health must carry "Authorization:
 * Bearer TOKEN" (/ without it is the page without state, which asks for the token). A
 * control request needs the token or a login; without token_file, only a login. */

struct event_base;
struct metrics;
struct pgc_config;
struct http;

/* What the endpoints read; borrowed until http_free(). */
struct status_src;
struct http_sources {
	const struct status_src *status; /* the live state (status.h) */
	struct metrics *metrics;
	const char *history_conninfo; /* NULL: no history database; copied */
	const char *history_database; /* its name, for /health; copied */
};

/* Listen as CFG->http says. *OUT is NULL (and 0 returned) when CFG has no http group.
 * -errno when the address cannot be bound (logged with the address). */
int http_open(struct event_base *base, const struct pgc_config *cfg, const struct http_sources *src,
              struct http **out) __attribute__((warn_unused_result));
/* A reload: the token follows CFG; an http group added, changed or removed is logged and
 * applies at the next start (H NULL: there is no listener yet). */
void http_apply(struct http *h, const struct pgc_config *cfg);
/* Shutting down: /health answers 503. */
void http_set_stopping(struct http *h);
/* Raise the soft limit on open descriptors to the hard one (at start, before any pool opens),
 * so that job connections have room; the listener keeps its connections to a quarter of it.
 * Returns the limit in force. */
int http_raise_fd_limit(void);
void http_free(struct http **h);

#endif
