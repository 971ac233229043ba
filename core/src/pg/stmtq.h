#ifndef PGCROND_STMTQ_H
#define PGCROND_STMTQ_H

/* One statement session: a dedicated asynchronous connection (conndrv.h) that carries one
 * statement at a time, for pgcrond's own work on a database (ownsess.h runs one per database,
 * for the history writer, the cluster's coordination and the listeners).
 *
 * The session owns the connection and its reconnects, the statement in flight (its results
 * read and gathered: the first tuples result, the rows affected, the first error with its
 * SQLSTATE) and a FIFO of statements waiting for it. Each statement carries a completion
 * callback. The owner decides what to send: it pushes a statement when the session is idle
 * (the idle callback asks for the next one) and hears of the connection through the ops.
 *
 * Rules the owners rely on:
 * - A completion callback is never re-entrant: while it runs the statement still counts as in
 *   flight, so whatever it pushes waits and goes out when it returns (in order). Then, if the
 *   session is connected and nothing waits, idle() asks for the next statement.
 * - When the connection fails (or a connect does), the statement in flight and every waiting
 *   one are completed with LOST set (ERR says why, SQLSTATE 08006), in order, and then
 *   failed() is called; it says whether to reconnect (after the delay stmtq_fail() gave, else
 *   the driver's backoff). A statement is never sent twice.
 * - A statement may be pushed while the connection is down: it waits for the next connect
 *   (and is completed with LOST if that connect fails).
 * Loop thread only. */

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "conndrv.h"

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

/* Statement TAG (the owner's: which statement it was) is complete. */
typedef void (*stmtq_done_fn)(void *arg, int tag, const struct stmtq_result *r);
/* One result of a statement the owner wrote itself (stmtq_begin): R, or NULL where libpq
 * ends a statement's results; cleared after the call. The owner notes errors
 * (stmtq_note_error) and says when the statement is complete (stmtq_end). */
typedef void (*stmtq_each_fn)(void *arg, int tag, PGresult *r);

struct stmtq_ops {
	/* The connect completed (the driver's backoff starts over). Required. */
	void (*connected)(void *arg);
	/* The connection is gone (every statement was completed with LOST). Return true to
	 * reconnect. Required. */
	bool (*failed)(void *arg, const char *why, bool was_ready);
	/* Connected, and nothing in flight or waiting after a statement completed: push the
	 * next statement, or nothing. NULL: nothing. */
	void (*idle)(void *arg);
	/* As conndrv's check: idle for the connection check / 2. NULL: not checked. */
	void (*check)(void *arg);
	/* A notification arrived (LISTEN) on CHANNEL; EXTRA is its payload (untrusted), both
	 * borrowed. NULL: not read. */
	void (*notify)(void *arg, const char *channel, const char *extra);
};

struct stmtq_stmt; /* a waiting statement (stmtq.c) */

struct stmtq {
	/* The connection: the owner reads its fields and may tune it (conndrv_set_check,
	 * conndrv_set_backoff, conndrv_succeeded, conndrv_retry), but sends through the session. */
	struct conndrv drv;

	/* private */
	const struct stmtq_ops *ops;
	void *arg;
	const char *conninfo; /* stmtq_connect's; not owned */
	char app_name[96];
	int64_t next_retry_ms; /* stmtq_fail's: the delay before reconnecting, 0 = the backoff */
	enum { STMTQ_IDLE, STMTQ_SENT, STMTQ_COMPLETING } cur_state;
	struct {
		int tag;
		stmtq_done_fn done;
		stmtq_each_fn each;
		void *arg;
		struct stmtq_result r;
	} cur; /* the statement in flight */
	struct stmtq_stmt *head, *tail;
	const void *last_arg; /* the ARG of the statement completed last (ownsess.c's turns) */
};

/* Set Q up (no connection yet): OPS and ARG for the callbacks; LABEL names the connection in
 * the notices' log lines; CHECK_MS as conndrv_init. */
void stmtq_init(struct stmtq *q, struct event_base *base, const struct stmtq_ops *ops, void *arg,
                const char *label, int64_t check_ms);
/* Start connecting to CONNINFO (which must outlive Q) as APPLICATION_NAME; the session
 * reconnects with the same. connected() or failed() follows, failed() maybe before this
 * returns. */
void stmtq_connect(struct stmtq *q, const char *conninfo, const char *application_name);
/* Close the connection and forget every statement, without a callback. Q may be freed. */
void stmtq_close(struct stmtq *q);
/* Give the connection up for WHY (libpq's error if NULL): failed() as above, then a reconnect
 * after RETRY_MS (the backoff if 0) if failed() asks for one. */
void stmtq_fail(struct stmtq *q, const char *why, int64_t retry_ms);

/* Send SQL (which must outlive the statement: a constant) with N text parameters, answered
 * within DEADLINE_MS (none if <= 0) or the connection is given up; DONE(ARG, TAG, result)
 * when complete. Sent now if the session is connected and idle (PARAMS are then not
 * copied), else it waits (a copy). Returns false if the connection failed meanwhile (DONE
 * was called with LOST), or there was no memory for a copy (DONE is not called). */
bool stmtq_push(struct stmtq *q, int tag, const char *sql, int n, const char *const *params,
                int64_t deadline_ms, stmtq_done_fn done, void *arg);

/* The statements whose callbacks take ARG get none any more (their owner goes away): the
 * waiting ones are dropped; the one in flight is read to its end as usual, unless its owner
 * reads it itself (stmtq_begin): then the connection is given up (failed(), every other
 * statement LOST), since nobody else can tell where its results end. */
void stmtq_forget(struct stmtq *q, const void *arg);

/* The owner wrote a statement (or a pipeline) to stmtq_conn() itself; it is in flight from
 * now on, as a pushed one (the deadline runs, the socket is flushed and watched), but its
 * results go to EACH until the owner calls stmtq_end(). Only while connected and not busy
 * (from idle(), or where stmtq_busy() is false). Returns false if the connection failed
 * (DONE was called with LOST). */
bool stmtq_begin(struct stmtq *q, int tag, int64_t deadline_ms, stmtq_each_fn each,
                 stmtq_done_fn done, void *arg);
/* R is an error of the statement in flight: recorded if it is the first. Returns true if it
 * was the first. */
bool stmtq_note_error(struct stmtq *q, const PGresult *r);
/* The statement stmtq_begin() put in flight is complete: its DONE is called. */
void stmtq_end(struct stmtq *q);

/* A statement is in flight, completing or waiting. */
bool stmtq_busy(const struct stmtq *q);
/* The statement in flight (or the one whose completion callback runs) has failed so far:
 * one of its results was an error. */
bool stmtq_failed(const struct stmtq *q);
/* The connection (NULL if none), for stmtq_begin's writing. */
PGconn *stmtq_conn(const struct stmtq *q);
/* Connected (the driver's READY). */
bool stmtq_ready(const struct stmtq *q);

#endif
