#ifndef PGCROND_OWNSESS_H
#define PGCROND_OWNSESS_H

/* pgcrond's own session of a database: one connection (application_name "pgcrond"), one
 * statement at a time on it (below), shared by every module that talks to that database on
 * pgcrond's own behalf (the history writer, the cluster's claims and heartbeats, the
 * listeners of notify.h: the jobs', the SQL jobs' reader's, pg_net's queue's). Runs do not
 * use it: they use the executor's pool.
 *
 * A module joins the session of a conninfo as a client; the first client of a conninfo (on
 * one event_base) opens the session and connects, the last one to leave closes it. The
 * session decides once for all its clients what concerns the connection: the reconnect and
 * its backoff, and the idle connection check (a SELECT 1 every connection check / 2 that
 * must be answered within the other half). It tells every client when the connection is
 * made or lost, and when nothing is in flight it takes the clients' outboxes in turn,
 * starting after the client whose statement completed last (after a connect: with the first
 * to join), one statement each, so that no client's stream of statements starves another's
 * (a large history batch and then the heartbeat). The statements that can wait (items marked
 * bulk: the parts of a publication of 100,000 jobs) take at most an eighth of the session's
 * time: the next waits seven times as long as the last one took, so that under a load of runs
 * the history goes on being written while the registry of jobs is brought up to date. A
 * notification goes to the client that claimed its channel (ownsess_claim_channel).
 *
 * The outbox: every statement a client sends for itself is an item (struct ownsess_item:
 * send, done, lost) queued on its client (ownsess_queue); the session sends it from the
 * loop, never from inside the call that queued it (a run's state change only queues), in
 * the client's turn, in the order queued. An item that failed goes again after a delay
 * (ownsess_queue_later: the session's backoff, OWNSESS_RETRY_MIN_MS doubling to
 * OWNSESS_RETRY_MAX_MS, jittered, the one retry policy of the session, which its reconnects
 * follow too; or a delay of the client's). When the connection fails the statement in
 * flight is completed with LOST, and every item queued is lost(), before failed() is called.
 * A deadline is a statement's own: it runs from when the statement is sent. A client gives
 * the connection up with stmtq_fail (every client then hears failed()). Loop thread only. */

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <libpq-fe.h>

#include "conndrv.h"

struct ownsess_item;

/* ---- the statement in flight ------------------------------------------------------------
 * The session carries one statement at a time (ownsess_q). Its results are read and
 * gathered (the first tuples result, the rows affected, the first error with its SQLSTATE)
 * and its item's done() is called with them; done() may send the statement that follows it
 * (a chain: the session is idle again during the call, and no other client has a turn
 * before it returns). A statement is sent only when the session is connected and idle: from
 * an item's send(), or the done() of the one before. When the connection fails, the
 * statement in flight is completed with LOST (ERR says why, SQLSTATE 08006: its item's
 * lost()); a statement is never sent twice. */

/* What a statement came to; valid during its completion callback only. */
struct stmtq_result {
	PGresult *res;     /* its first tuples result (NULL if none); cleared after the callback */
	PGresult *err_res; /* its first error result (NULL if none, or LOST); cleared after */
	long long rows;    /* rows its results affected (PQcmdTuples, summed) */
	bool failed;       /* one of its results was an error (or LOST) */
	bool lost;         /* it got no complete answer: the connection failed */
	char err[512];     /* the first error for a person (pgconn_result_error), "" if none */
	char sqlstate[6];
};

struct stmtq {
	/* The connection: clients read its fields, but send through the calls below. */
	struct conndrv drv;

	/* private */
	int64_t next_retry_ms; /* stmtq_fail's: the delay before reconnecting, 0 = the backoff */
	bool sent;             /* a statement is in flight */
	struct {
		void (*done)(void *arg, const struct stmtq_result *r);
		void (*each)(struct ownsess_item *it, PGresult *r); /* ownsess_begin's */
		void *arg;
		struct stmtq_result r;
	} cur;                                 /* the statement in flight */
	const struct stmtq_result *completing; /* the answer whose callback runs */
	const void *last_arg; /* the client of the statement completed last (the turns) */
	/* Held by an older schema (ownsess_need_steps): what failed() said, the clients' database
	 * being away while the session waits, connected, for the install; NULL otherwise. */
	const char *gated;
	/* In failed() (and while gated): the step of the schema found older than
	 * ownsess_need_steps' (0: no schema); -1 otherwise. */
	int schema_step;
	/* With it: the names of the instances pgcrond.instance saw in the last 7 days, comma
	 * separated, each followed by '*' if its last process did not stop cleanly ("" if none
	 * or unknown), for the cluster's verdict on the fires meanwhile. */
	char schema_names[512];
};

/* Give the connection up for WHY (libpq's error if NULL): every client hears failed(), then
 * a reconnect after RETRY_MS (the backoff if 0) if one of them asks for one. */
void stmtq_fail(struct stmtq *q, const char *why, int64_t retry_ms);
/* R is an error of the statement in flight: recorded if it is the first. Returns true if it
 * was the first. */
bool stmtq_note_error(struct stmtq *q, const PGresult *r);
/* The statement ownsess_begin() put in flight is complete: its item's done() is called. */
void stmtq_end(struct stmtq *q);
/* A statement is in flight. */
bool stmtq_busy(const struct stmtq *q);
/* The statement in flight (or the one whose completion callback runs) has failed so far. */
bool stmtq_failed(const struct stmtq *q);
/* The connection (NULL if none), for ownsess_begin's writing. */
PGconn *stmtq_conn(const struct stmtq *q);
/* Connected (the driver's READY), and not held by an older schema (gated). */
bool stmtq_ready(const struct stmtq *q);

/* The application_name of pgcrond's own sessions. */
#define OWNSESS_APP_NAME "pgcrond"
/* The channel `pgcrond install` notifies as it commits (hist_install.h): a session held by an
 * older schema LISTENs on it (ownsess_need_steps). */
#define OWNSESS_INSTALL_CHANNEL "pgcrond_install"
/* The session's one retry policy: its reconnects and its items sent again (the history is
 * back within 5 s of its database; one attempt every few seconds costs a down server nothing). */
#define OWNSESS_RETRY_MIN_MS 1000
#define OWNSESS_RETRY_MAX_MS 4000

/* A bulk statement (struct ownsess_item's bulk) waits this many times as long as the last
 * one took: they take at most an eighth of the session. */
#define OWNSESS_BULK_WAIT 7
struct ownsess; /* the session (ownsess.c) */
struct ownsess_client;

/* An item of the outbox: one statement a client sends for itself, in its owner's memory. */
struct ownsess_item {
	/* Send it now: ownsess_push() its statement (or write it and ownsess_begin()); return
	 * false if there is nothing to send after all (the item leaves the outbox). Called from
	 * the session's turn, connected and idle. */
	bool (*send)(struct ownsess_item *it);
	/* Its answer (valid during the call). The item has left the outbox (unless it was
	 * queued again while in flight): the call may queue it again (ownsess_queue_later to
	 * retry after the backoff), or send its next statement at once (a chain: ownsess_push
	 * or ownsess_begin). */
	void (*done)(struct ownsess_item *it, const struct stmtq_result *r);
	/* The connection went before its answer (or before it was sent), for WHY: no answer
	 * will come (not called when its client leaves). Called once, the item having left the
	 * outbox. NULL: nothing to do. */
	void (*lost)(struct ownsess_item *it, const char *why);
	/* It waits OWNSESS_BULK_WAIT times as long as the last bulk statement took (above), and
	 * its client's items queued behind it with it; its owner sets it. */
	bool bulk;
	/* private */
	struct ownsess_client *cl;
	STAILQ_ENTRY(ownsess_item) link; /* in its client's outbox */
	int64_t not_before_ms;           /* ownsess_queue_later's, monotonic; 0: due */
	unsigned failures; /* in a row, for the backoff; 0 after an answer that worked */
	bool queued;
};

struct ownsess_ops {
	/* The connect completed. NULL: nothing. */
	void (*connected)(void *arg);
	/* The connection is gone (the statement in flight was completed with LOST). Return true if
	 * this client wants the session to reconnect; it reconnects while any client does.
	 * NULL: it does not ask to. */
	bool (*failed)(void *arg, const char *why, bool was_ready);
	/* A notification on a channel this client claimed; EXTRA is its payload (never NULL,
	 * untrusted), both borrowed. NULL: none is read. */
	void (*notify)(void *arg, const char *channel, const char *extra);
};

struct ownsess_client {
	/* The channels it claims (ownsess_claim_channel), in no order: to read only. */
	char **channels;
	size_t n_channels;
	/* private */
	struct ownsess *s;
	const struct ownsess_ops *ops;
	void *arg;
	TAILQ_ENTRY(ownsess_client) link; /* in its session's clients */
	STAILQ_HEAD(, ownsess_item) outbox;
	struct event join_ev;
};

/* CL joins the session of CONNINFO on BASE (opened, and connecting from the loop's next turn,
 * if it is the first), with OPS and ARG. connected() or failed() follows, never from inside
 * this call (at the loop's next turn if the session is connected already). Returns 0 or
 * -ENOMEM. */
int ownsess_join(struct ownsess_client *cl, struct event_base *base, const char *conninfo,
                 const struct ownsess_ops *ops, void *arg) __attribute__((warn_unused_result));
/* CL leaves: its items are dropped and the statement in flight, if its, gets
 * no callback (one it writes itself, ownsess_begin's, gives the connection up: nobody else can
 * read its results); no callback of CL's is called after this. The last client closes the session.
 * A client that never joined (zeroed) is a no-op. */
void ownsess_leave(struct ownsess_client *cl);

/* The session's statement in flight, for the stmtq_* calls (never NULL after a join). */
struct stmtq *ownsess_q(const struct ownsess_client *cl);

/* IT goes at the end of CL's outbox, sent from the loop in CL's turn; one queued already
 * stays in its place and is due now (also one ownsess_queue_later put off). */
void ownsess_queue(struct ownsess_client *cl, struct ownsess_item *it);
/* IT (not queued) the same, but not before MS, or the session's backoff when MS is
 * OWNSESS_BACKOFF (a delay that grows with each such call until an answer that worked:
 * ownsess_item_ok). */
#define OWNSESS_BACKOFF (-1)
void ownsess_queue_later(struct ownsess_client *cl, struct ownsess_item *it, int64_t ms);
/* IT's last answer worked: its backoff starts over. */
void ownsess_item_ok(struct ownsess_item *it);
/* From send() (or done()): IT's statement SQL (borrowed: it must outlive the statement, a
 * constant) with N text PARAMS (not copied), answered within DEADLINE_MS (<= 0: the
 * connection check / 2) or the connection is given up. False: the connection failed
 * (lost() was called). */
bool ownsess_push(struct ownsess_item *it, int64_t deadline_ms, const char *sql, int n,
                  const char *const *params);
/* From send() (or done()): the client wrote IT's statement (or a pipeline) to stmtq_conn()
 * itself; it is in flight from now on, as a pushed one (the deadline runs, the socket is
 * flushed and watched), but its results go to EACH (R, or the NULL with which libpq ends a
 * statement's results; cleared after the call) until the client calls stmtq_end(); it notes
 * errors with stmtq_note_error. False as ownsess_push. */
bool ownsess_begin(struct ownsess_item *it, int64_t deadline_ms,
                   void (*each)(struct ownsess_item *it, PGresult *r));
/* An item made for one statement: SQL (borrowed: a constant) with N text PARAMS (copied;
 * NULL = SQL NULL), queued on CL; FN(ARG, RES) with its first tuples result, or its error
 * result (NULL: neither; valid during the call). One lost: LOST(ARG) (NULL: dropped without
 * a call). -ENOMEM. */
typedef void (*ownsess_answer_fn)(void *arg, const PGresult *res);
int ownsess_ask(struct ownsess_client *cl, const char *sql, int n, const char *const *params,
                ownsess_answer_fn fn, void (*lost)(void *arg), void *arg, bool bulk)
    __attribute__((warn_unused_result));
/* At the stop, the loop no longer running: the session's turns are taken and its answers
 * read here (a wait on its socket) while LEFT_MS(CL's arg) says how long CL still waits for
 * them (<= 0: no longer), until nothing is left to send or the connection goes. */
void ownsess_drain(struct ownsess_client *cl, int64_t (*left_ms)(void *arg));
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

/* The configuration's connection_check (ms; <= 0: the default, 30 s), for every own session,
 * open or to come: a connect must complete within it, a statement be answered within half of
 * it, and an idle connection is asked (SELECT 1) every half of it and must answer within the
 * other half; otherwise the session reconnects. */
void ownsess_set_check(int64_t ms);
/* The session's database must have pgcrond's schema steps STEPS (a text form of an int4[],
 * "{1,2,...}", borrowed: a constant), the newest NEWEST: at each connect the session reads
 * them once, before any client hears connected(); a database without every one of them is
 * to the clients one not reached (every client hears failed(), WHY saying what to do, and
 * schema_step is set; a client joining meanwhile hears the same), but the session keeps the
 * connection, idle and checked as any (q.gated; stmtq_ready() is false), LISTENing on
 * OWNSESS_INSTALL_CHANNEL: each notification there has the steps read again, and once they
 * are all there the clients hear connected(). No reconnect, no polling meanwhile; a
 * connection lost reconnects as usual, and on a server that refuses the LISTEN (a standby)
 * the connection is given up and the backoff's reconnect looks again. From the next
 * connect. */
void ownsess_need_steps(struct ownsess_client *cl, const char *steps, int newest);
/* The session's reconnect backoff, decided for all its clients: the last call wins. */
void ownsess_set_backoff(struct ownsess_client *cl, int64_t min_ms, int64_t max_ms);

#endif
