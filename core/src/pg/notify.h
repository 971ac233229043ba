#ifndef PGCROND_NOTIFY_H
#define PGCROND_NOTIFY_H

/* LISTEN/NOTIFY on pgcrond's own session of a database (ownsess.h: one connection per
 * database carries every LISTEN of pgcrond's, beside the history's and the cluster's
 * statements), fully asynchronous. A listener LISTENs on every channel asked for, hands each
 * notification on them to its owner, and when the session's connection is lost (server
 * restart, pg_terminate_backend) and the session has reconnected, re-issues the LISTENs and
 * tells the owner, who runs the listening jobs once: notifications sent while nobody
 * listened are gone. */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "ownsess.h"

struct event_base;
struct notify;

struct notify_callbacks {
	/* A notification. CHANNEL and PAYLOAD (never NULL, may be "") are valid during the
	 * call only; the payload is untrusted. */
	void (*on_notify)(void *arg, const char *channel, const char *payload);
	/* The LISTENs are in place. FIRST: this is the first connect since notify_new(). */
	void (*on_listening)(void *arg, bool first);
	void *arg;
};

/* NAME (the configured database key) is used in log lines; CONNINFO is never logged
 * unredacted. The connection starts at once. */
int notify_new(struct event_base *base, const char *name, const char *conninfo,
               const struct notify_callbacks *cb, struct notify **out)
    __attribute__((warn_unused_result));
void notify_free(struct notify **n);

/* The channels to listen on. The same set (in any order) changes nothing; another set is
 * changed in place on the same session (the UNLISTENs of the channels no longer wanted, unless
 * another listener of the session wants them, and the LISTENs in one batch), which is not a
 * reconnect: on_listening is not called. Names are quoted as identifiers. */
int notify_set_channels(struct notify *n, const char *const *channels, size_t count)
    __attribute__((warn_unused_result));

/* A statement on the session, for the owner's small bookkeeping (manual trigger claims):
 * an item of the session's outbox (ownsess_ask: SQL a constant, borrowed; N_PARAMS text
 * PARAMS copied, NULL = SQL NULL), sent from the loop in the order queued. CB(ARG, RES) is
 * called with its first tuples result, or its error result (RES may be NULL: neither; valid
 * during the call only). Queries lost with the connection are dropped without a call: ask
 * again from on_listening. ARG is borrowed. BULK: it can wait (ownsess.h). -ENOTCONN until the
 * LISTENs of a connect are in place (so none goes before them), -ENOMEM. */
typedef void (*notify_result_fn)(void *arg, const PGresult *res);
int notify_query(struct notify *n, const char *sql, const char *const *params, int n_params,
                 notify_result_fn cb, void *arg, bool bulk) __attribute__((warn_unused_result));
/* IT, an item of the owner's (ownsess.h), queued on the session's outbox as the listener's:
 * -ENOTCONN as notify_query's. */
int notify_queue(struct notify *n, struct ownsess_item *it);

/* A read of what the notifications of a channel say changed (the jobs made in SQL, a table
 * calendar's dates), an item of the listener's session: notify_read_ask() after each
 * notification, from on_listening and at a reload. A read queued absorbs every notification
 * until it is sent (its snapshot is taken after their commits); one that comes while a read
 * is in flight adds one read after it (that read's snapshot may be older than its commit).
 * SEND puts the statement in flight (ownsess_push(&r->it, ...)); DONE has its answer, the
 * read after it (if one is due) queued already, so that a stream of notifications delays no
 * change. A read lost with the connection is asked again from on_listening. Zeroed but for
 * SEND and DONE before its first ask. */
struct notify_read {
	void (*send)(struct notify_read *r);
	void (*done)(struct notify_read *r, const struct stmtq_result *res);
	struct ownsess_item it;
	/* private */
	struct notify *n;
	enum { NOTIFY_READ_NONE, NOTIFY_READ_QUEUED, NOTIFY_READ_SENT, NOTIFY_READ_AGAIN } state;
};
void notify_read_ask(struct notify *n, struct notify_read *r);

#endif
