#ifndef PGCROND_CANCEL_H
#define PGCROND_CANCEL_H

/* Cancel requests through a connection's own cancel key, sent off the event loop.
 *
 * libpq 15's PQcancel() opens a new connection to the server and waits for it, so it may
 * block for as long as a connect can take; it runs here on a small worker thread, and its
 * outcome comes back to the event loop through a pipe. The cancel key names exactly the
 * session that runs the statement, also behind a pooler or after a failover, where a backend
 * pid seen from another connection may be someone else's session. A cancel request does not
 * count against max_connections or a role's connection limit. */

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdbool.h>

struct cancel;
struct cancel_req;

/* The worker for BASE; it starts its threads on the first request. 0 or -errno. */
int cancel_new(struct event_base *base, struct cancel **out) __attribute__((warn_unused_result));

/* Stops the threads after the requests under way (each is bounded by the connect timeout
 * of its conninfo, or the kernel's), and frees everything. Callbacks not yet run are not
 * run. */
void cancel_free(struct cancel **cq);

/* Ask the server to cancel what PG's session runs now. DONE(ARG, ok, message) is called
 * later on the loop, never from inside cancel_send (message: libpq's error as one line when
 * !ok, else ""). PG may be closed right after this call: the request holds a copy of the
 * key. Returns the request, or NULL if it could not be queued (out of memory, or PG has no
 * cancel key); then DONE is never called. */
struct cancel_req *cancel_send(struct cancel *cq, PGconn *pg,
                               void (*done)(void *arg, bool ok, const char *message), void *arg);

/* The owner of REQ goes away: its DONE is not called. REQ may have completed already (its
 * DONE not yet run); NULL is a no-op. REQ itself is freed by the worker. */
void cancel_forget(struct cancel_req *req);

#endif
