#ifndef PGCROND_OWNSESS_H
#define PGCROND_OWNSESS_H

/* pgcrond's own session of a database: one connection (application_name "pgcrond"), one
 * statement session on it (stmtq.h), shared by every module that talks to that database on
 * pgcrond's own behalf (the history writer, the cluster's claims and heartbeats, the
 * listeners of notify.h: the jobs', the SQL jobs' reader's, pg_net's queue's). Runs do not
 * use it: they use the executor's pool.
 *
 * A module joins the session of a conninfo as a client; the first client of a conninfo (on
 * one event_base) opens the session and connects, the last one to leave closes it. The
 * session decides once for all its clients what concerns the connection: the reconnect and
 * its backoff, and the idle connection check (a SELECT 1 every connection check / 2 that
 * must be answered within the other half). It tells every client when the connection is
 * made or lost, and when nothing is in flight or waiting it asks the clients that want in
 * turn, starting after the one asked last, for their next statement, so that no client's
 * stream of statements starves another's (a large history batch and then the heartbeat). A
 * notification goes to the client that claimed its channel (ownsess_claim_channel).
 *
 * The outbox: a statement a client sends for itself is an item (struct ownsess_item:
 * send, done, lost) queued on its client (ownsess_queue); the session sends it from the
 * loop, never from inside the call that queued it (a run's state change only queues), in
 * the client's turn, in the order queued. An item that failed goes again after the session's
 * backoff (ownsess_queue_later: OWNSESS_RETRY_MIN_MS doubling to OWNSESS_RETRY_MAX_MS,
 * jittered, the one retry policy of the session, which its reconnects follow too). A client
 * may also push statements on ownsess_q() itself, with stmtq's calls and rules, from its
 * idle() turn: a statement is never sent twice, and when the connection fails every
 * statement in flight or waiting is completed with LOST (each to its own client), and every
 * item queued is lost(), before failed() is called. A deadline is a statement's own: it runs
 * from when the statement is sent, never while it waits behind another client's. A client
 * gives the connection up with stmtq_fail (every client then hears failed()); a client that
 * only wants to try again later arms its own timer (ownsess_retry), which touches no other
 * client. Loop thread only. */

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdint.h>

#include "stmtq.h"

/* The application_name of pgcrond's own sessions. */
#define OWNSESS_APP_NAME "pgcrond"
/* The session's one retry policy: its reconnects and its items sent again (the history is
 * back within 5 s of its database; one attempt every few seconds costs a down server nothing). */
#define OWNSESS_RETRY_MIN_MS 1000
#define OWNSESS_RETRY_MAX_MS 4000

struct ownsess; /* the session (ownsess.c) */
struct ownsess_client;

/* An item of the outbox: one statement a client sends for itself, in its owner's memory. */
struct ownsess_item {
	/* Send it now: ownsess_push() its statement (or write it with stmtq_begin, passing
	 * ownsess_item_done and the item); return false if there is nothing to send after all
	 * (the item leaves the outbox). Called from the session's turn, connected and idle. */
	bool (*send)(struct ownsess_item *it);
	/* Its answer (valid during the call). The item has left the outbox: the call may queue
	 * it again (ownsess_queue_later to retry after the backoff). */
	void (*done)(struct ownsess_item *it, const struct stmtq_result *r);
	/* The connection went before its answer (or before it was sent), for WHY: no answer
	 * will come (not called when its client leaves). The item has left the outbox. NULL:
	 * nothing to do. */
	void (*lost)(struct ownsess_item *it, const char *why);
	/* private */
	struct ownsess_client *cl;
	struct ownsess_item *next;
	int64_t not_before_ms; /* ownsess_queue_later's, monotonic */
	unsigned failures;     /* in a row, for the backoff; 0 after an answer that worked */
	bool queued;
};

struct ownsess_ops {
	/* The connect completed. NULL: nothing. */
	void (*connected)(void *arg);
	/* The connection is gone (every statement was completed with LOST). Return true if
	 * this client wants the session to reconnect; it reconnects while any client does.
	 * NULL: it does not ask to. */
	bool (*failed)(void *arg, const char *why, bool was_ready);
	/* Connected, nothing in flight or waiting, and the client wants (ownsess_client's
	 * want): push the next statement, or nothing. NULL: nothing. */
	void (*idle)(void *arg);
	/* The timer ownsess_retry() armed fired. NULL: nothing. */
	void (*retry)(void *arg);
	/* A notification on a channel this client claimed; EXTRA is its payload (never NULL,
	 * untrusted), both borrowed. NULL: none is read. */
	void (*notify)(void *arg, const char *channel, const char *extra);
};

struct ownsess_client {
	/* The client's to set: whether it has a statement to send. The session's idle turns ask
	 * (idle()) only the clients that want; a client joins wanting, so one that never sets it
	 * is asked at every turn. One that sets it false says true again when work comes while
	 * the session is busy (a statement to send, or one of its own under way with more
	 * behind it). */
	bool want;
	/* The channels it claims (ownsess_claim_channel), in no order: to read only. */
	char **channels;
	size_t n_channels;
	/* private */
	struct ownsess *s;
	const struct ownsess_ops *ops;
	void *arg;
	struct ownsess_client *next;
	struct ownsess_item *head, *tail; /* its outbox */
	struct event retry_ev, join_ev;
};

/* CL joins the session of CONNINFO on BASE (opened, and connecting from the loop's next turn,
 * if it is the first), with OPS and ARG. connected() or failed() follows, never from inside
 * this call (at the loop's next turn if the session is connected already). Returns 0 or
 * -ENOMEM. */
int ownsess_join(struct ownsess_client *cl, struct event_base *base, const char *conninfo,
                 const struct ownsess_ops *ops, void *arg) __attribute__((warn_unused_result));
/* CL leaves: its items and its statements waiting are dropped and the one in flight, if its, gets
 * no callback (one it writes itself, stmtq_begin's, gives the connection up: nobody else can read
 * its results); no callback of CL's is called after this. The last client closes the session. A
 * client that never joined (zeroed) is a no-op. */
void ownsess_leave(struct ownsess_client *cl);

/* The statement session, for stmtq_push and the others (never NULL after a join). */
struct stmtq *ownsess_q(const struct ownsess_client *cl);

/* IT (not queued) goes at the end of CL's outbox, sent from the loop in CL's turn. */
void ownsess_queue(struct ownsess_client *cl, struct ownsess_item *it);
/* The same after the session's backoff, which grows with each call until an answer that
 * worked (ownsess_item_ok). */
void ownsess_queue_later(struct ownsess_client *cl, struct ownsess_item *it);
/* IT's last answer worked: its backoff starts over. */
void ownsess_item_ok(struct ownsess_item *it);
/* From send(): stmtq_push of SQL (borrowed: a constant) with N text PARAMS (copied if it
 * waits), answered within the connection check / 2. False: the connection failed (lost()
 * was called). */
bool ownsess_push(struct ownsess_item *it, const char *sql, int n, const char *const *params);
/* The stmtq_done_fn of an item's statement (ARG: the item), for one written with
 * stmtq_begin. */
void ownsess_item_done(void *arg, int tag, const struct stmtq_result *r);
/* An item made for one statement: SQL (borrowed: a constant) with N text PARAMS (copied;
 * NULL = SQL NULL), queued on CL; FN(ARG, RES) with its first tuples result, or its error
 * result (NULL: neither; valid during the call). One lost is dropped without a call.
 * -ENOMEM. */
typedef void (*ownsess_answer_fn)(void *arg, const PGresult *res);
int ownsess_ask(struct ownsess_client *cl, const char *sql, int n, const char *const *params,
                ownsess_answer_fn fn, void *arg) __attribute__((warn_unused_result));
/* CL has something to send (its want set): the session's next turn, from the loop. */
void ownsess_want(struct ownsess_client *cl);
/* Arm CL's retry timer: after MS, or after the driver's backoff when MS is CONNDRV_BACKOFF. */
void ownsess_retry(struct ownsess_client *cl, int64_t ms);
/* Notifications on CHANNEL (copied) go to CL (and to any other client that claimed it). The
 * client LISTENs itself. Returns 0 or -ENOMEM. */
int ownsess_claim_channel(struct ownsess_client *cl, const char *channel)
    __attribute__((warn_unused_result));
/* The own session of CONNINFO on BASE has no connection because the server refused it for
 * being full (53300, a CONNECTION LIMIT): a run's connection of the same database that is
 * given back should be closed, so that this session, which the history and the claims need,
 * gets the slot. False when there is no such session. */
bool ownsess_starved(const struct event_base *base, const char *conninfo);
/* How many own sessions have no connection for a full server, kept up to date at this address
 * (loop thread only): ownsess_starved() is false while it is 0, so a caller that would ask at
 * each of its runs asks only then. */
const unsigned *ownsess_starving(void);
/* A slot of that server was just given back for the starved own session of CONNINFO: it
 * connects now, before a run's connect takes the slot (nothing if it is not starved). */
void ownsess_take_slot(const struct event_base *base, const char *conninfo);
/* CL no longer wants CHANNEL's notifications. */
void ownsess_release_channel(struct ownsess_client *cl, const char *channel);
/* Another client of CL's session claims CHANNEL (so CL must not UNLISTEN it). */
bool ownsess_claimed_elsewhere(const struct ownsess_client *cl, const char *channel);

/* The session's connection check (conndrv_set_check) and reconnect backoff, decided for all
 * its clients: the last call wins. */
void ownsess_set_check(struct ownsess_client *cl, int64_t ms);
void ownsess_set_backoff(struct ownsess_client *cl, int64_t min_ms, int64_t max_ms);

#endif
