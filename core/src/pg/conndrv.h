#ifndef PGCROND_CONNDRV_H
#define PGCROND_CONNDRV_H

/* One asynchronous libpq connection on the daemon's event_base: the part every module that
 * talks to PostgreSQL needs (the executor's pooled connections, the history writer, the
 * listeners, the cluster's coordination connection), written once.
 *
 * The driver owns the PGconn and its life: the host names of the conninfo resolved with
 * libevent's evdns (libpq would resolve them with a blocking getaddrinfo()) and handed to
 * libpq as "hostaddr", the non-blocking connect (pgconn_start_at: TCP keepalives,
 * client_encoding and application_name) under a deadline that covers both, the socket watch
 * (re-assigned when libpq moves to another address or socket), writing out what libpq holds,
 * reading what the server sends, the deadline of a statement in flight, the liveness check
 * of an idle connection, and the reconnect timer with its backoff and jitter. The owner
 * says what to send and reads its own results; it hears back through three callbacks.
 *
 * States: DOWN (no connection), CONNECTING, READY. A READY connection is busy from
 * conndrv_busy() until conndrv_idle(): while busy the statement's deadline
 * runs, or, without one, the owner's silent callback is told each time nothing was sent or
 * read for connection check / 2 (a statement at work says nothing either: only a look from
 * another connection tells the two apart); while idle, every connection check / 2 the
 * owner's check callback is asked to send a round trip (a connection a NAT or firewall forgot
 * is silent, and TCP keepalives alone cannot see a peer whose kernel still answers them, nor
 * can tcp_user_timeout while that kernel acknowledges what is sent).
 *
 * Callbacks are called from the loop (socket and timer events) or, for failures, from the
 * driver call that found them (conndrv_connect, conndrv_fail). When failed() is called the
 * connection is already closed and every event of the driver but the reconnect timer is
 * removed: the owner may free the memory holding the driver from any callback, as long as it
 * calls conndrv_close() first, and the driver never touches itself after a callback. */

#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "pgconn.h"

/* CONNECTING includes resolving the host names (conn is NULL meanwhile). */
enum conndrv_state { CONNDRV_DOWN, CONNDRV_CONNECTING, CONNDRV_READY };

struct conndrv_dns; /* a resolution under way (conndrv.c) */

/* ---- servers: a connection that comes back wakes the others waiting for the same server
 *
 * Every connection to one server (the same host, hostaddr, port and service lists in the
 * conninfo; dbname and user do not count) backs off on its own after failures. When any
 * connection to the server succeeds, the server is back: every waiter on it (a driver in
 * its CONNDRV_BACKOFF wait, an executor pool's backoff) is woken at once, at the loop's next
 * turn, instead of sleeping out its backoff. The last word on each server (up, or down with
 * why) is kept for status reports. Loop thread only. */
#define CONNDRV_SERVER_KEY 320
/* The server CONNINFO connects to, as a key ("" if it cannot be parsed). */
void conndrv_server_key(const char *conninfo, char *out, size_t outlen);

struct conndrv_waiter {
	LIST_ENTRY(conndrv_waiter) link; /* private */
	bool linked;                     /* private */
	struct event_base *base;
	const char *server; /* borrowed: outlives the wait */
	void (*wake)(void *arg);
	void *arg;
};
/* W waits for SERVER (borrowed) on BASE: WAKE(ARG) is called once when a connection to it
 * succeeds. WAKE must only arm timers (it runs inside another connection's callback). A
 * waiter already waiting is moved. */
void conndrv_wait_server(struct conndrv_waiter *w, struct event_base *base, const char *server,
                         void (*wake)(void *arg), void *arg);
/* W stops waiting (a no-op if it was not). */
void conndrv_unwait_server(struct conndrv_waiter *w);
/* WHY, a failed connect's message, is the server's own refusal (a role that may not log in,
 * a database that does not exist: "FATAL: ..."), not a server away or unable to take
 * connections now ("the database system is starting up"). */
bool conndrv_server_answered(const char *why);
/* WHY, a failed connect's message, says the server (or the role's or database's CONNECTION
 * LIMIT) takes no more connections now (SQLSTATE 53300: "too many clients already", the
 * remaining slots reserved for superusers, "too many connections for role"): one frees when
 * a session ends. Read from the server's English text (libpq gives a failed connect no
 * SQLSTATE): a server whose lc_messages is another language is not recognized here. */
bool conndrv_server_full(const char *why);
/* The last word on SERVER: 1 up, 0 down (*WHY, borrowed until the next word, if WHY not
 * NULL), -1 not known. */
int conndrv_server_state(struct event_base *base, const char *server, const char **why);

struct conndrv_ops {
	/* The connect completed; the connection is non-blocking and idle. Required. */
	void (*connected)(void *arg);
	/* What the server sent was read in (PQconsumeInput succeeded): read the results with
	 * PQisBusy/PQgetResult, the notifications with PQnotifies. Required. */
	void (*readable)(void *arg);
	/* The connection failed, or its deadline passed; WHY says how (safe to log: the
	 * conninfo's password is scrubbed). WAS_READY: it had been connected. The connection is
	 * gone (state DOWN). Required. */
	void (*failed)(void *arg, const char *why, bool was_ready);
	/* Idle for connection check / 2: send a round trip (with a deadline: conndrv_busy), or
	 * nothing (the timer is armed again). NULL: idle connections are not checked. */
	void (*check)(void *arg);
	/* Busy without a deadline (conndrv_busy(D, 0)), and nothing sent or read for connection
	 * check / 2 (io_us); told again every connection check / 2 while it stays so. Only a
	 * look from elsewhere tells a statement still at work from a connection gone silent.
	 * NULL: not told. */
	void (*silent)(void *arg);
};

struct conndrv {
	/* read-only for the owner */
	PGconn *conn;
	enum conndrv_state state;
	bool busy;
	unsigned failures; /* consecutive, for the backoff; conndrv_succeeded() */
	bool timed_out;    /* in failed(): the failure was a deadline that passed */
	bool too_old; /* in failed(): the server is older than pgcrond supports (pgconn.h; WHY is
	               * pgconn_server_too_old's line): conndrv_tell_too_old() */
	struct pgconn_notices notices; /* the server's notices; .job may be set by the owner */
	int64_t check_ms;              /* the connection check: connect deadline, idle check * 2 */
	int64_t io_us; /* when something was last sent (conndrv_flush) or read, clock_mono_us */

	/* private */
	struct event_base *base;
	const struct conndrv_ops *ops;
	void *arg;
	const char *conninfo; /* the last conndrv_connect's; not owned */
	char app_name[96];
	int priority;     /* of the socket event; -1: the base's default */
	bool job_session; /* search_path left as the server gives it (conndrv_set_job_session) */
	struct {          /* the socket's event: for WHAT on FD while ADDED */
		struct event ev;
		bool added;
		evutil_socket_t fd;
		short what;
	} sock;
	struct event timer_ev;
	bool watching;    /* busy without a deadline: the timer tells silent() (ops.silent) */
	int64_t timer_ms; /* what the timer was armed with, for the message */
	struct {          /* the backoff between connects, MIN_MS doubling to MAX_MS */
		int64_t min_ms, max_ms;
		struct event ev;
		struct conndrv_waiter wait; /* armed while the timer is a backoff */
	} retry;
	struct conndrv_dns *dns;
	char server[CONNDRV_SERVER_KEY]; /* conndrv_server_key of the conninfo */
	bool answered;                   /* the last failure: conndrv_server_answered() */
};

/* In failed() with too_old set: whether D is the first connection of its conninfo on its base
 * to find the server too old since one last connected (then the server was replaced). The
 * owner that gets true says the one line, the database's name before WHY; the others (a
 * pool's other connections, the other clients of an own session, every reconnect after) say
 * nothing, so that a database refused is one line however many connections find it. */
bool conndrv_tell_too_old(const struct conndrv *d);

/* A connection's reconnect backoff: CONNDRV_RETRY_MIN_MS doubling to CONNDRV_RETRY_MAX_MS,
 * with jitter (the executor's pools too; pgcrond's own sessions have theirs, ownsess.h). */
#define CONNDRV_RETRY_MIN_MS 500
#define CONNDRV_RETRY_MAX_MS 30000

/* Set D up (no connection yet). LABEL names the connection in the notices' log lines
 * ("history database"); LIMIT and WINDOW_MS as pgconn_notices_init(). The connection check
 * defaults to CHECK_MS, the backoff to CONNDRV_RETRY_MIN_MS .. CONNDRV_RETRY_MAX_MS. */
void conndrv_init(struct conndrv *d, struct event_base *base, const struct conndrv_ops *ops,
                  void *arg, const char *label, unsigned limit, int64_t window_ms,
                  int64_t check_ms);
/* The connection serves jobs: its search_path is the user's, not pinned to pg_catalog,
 * pg_temp as every other connection's is (pgconn.h, PGCONN_PINNED_OPTION), so every
 * statement pgcrond itself sends on it must be schema-qualified, operators included. */
void conndrv_set_job_session(struct conndrv *d);
/* Socket events at PRIORITY (event_priority_set) instead of the base's default. */
void conndrv_set_priority(struct conndrv *d, int priority);
/* The connection check (MS > 0); when it changes, an idle connection's next check follows it
 * at once. */
void conndrv_set_check(struct conndrv *d, int64_t ms);
void conndrv_set_backoff(struct conndrv *d, int64_t min_ms, int64_t max_ms);

/* Close what is open and start connecting to CONNINFO (which must outlive the connection)
 * as APPLICATION_NAME (libpq's fallback: the conninfo's own wins). connected() or failed()
 * follows; failed() may be called before this returns, out of memory included. Returns 0
 * if the connect is under way, -ECONNREFUSED after failed() was called (then D may be gone:
 * do not touch it). */
int conndrv_connect(struct conndrv *d, const char *conninfo, const char *application_name);

/* Take CONN, connected in blocking mode elsewhere (CONNINFO, which must outlive it, names
 * its server), as if D had made it: connected() or failed() follows before this returns. */
void conndrv_adopt(struct conndrv *d, PGconn *conn, const char *conninfo);

/* Close the connection and remove every event of D, without a callback. D may then be
 * freed or connected again. */
void conndrv_close(struct conndrv *d);

/* Close the connection and call failed(): WHY, or libpq's error (scrubbed) when NULL. */
void conndrv_fail(struct conndrv *d, const char *why);

/* Arm the reconnect timer: after MS (0: at the loop's next turn), or after the backoff (a
 * jittered delay growing with each consecutive failure) when MS is CONNDRV_BACKOFF. When it
 * fires, a connection still down connects again with its last conninfo and application name. */
#define CONNDRV_BACKOFF (-1)
void conndrv_retry(struct conndrv *d, int64_t ms);
/* Disarm the reconnect timer. */
void conndrv_cancel_retry(struct conndrv *d);
/* The connection is good (the owner's judgement: connected, or its first statement
 * worked): the backoff starts over. */
void conndrv_succeeded(struct conndrv *d);

/* A statement is in flight from now on: no idle check; the connection fails if nothing
 * completes it (conndrv_idle) within DEADLINE_MS; none if <= 0, and then silent() is told
 * of each connection check / 2 without a byte either way (ops.silent). */
void conndrv_busy(struct conndrv *d, int64_t deadline_ms);
/* The statement in flight completed: the idle check's timer runs again. */
void conndrv_idle(struct conndrv *d);
/* The same, the first check within MS (at most connection check / 2, as always after). */
void conndrv_idle_within(struct conndrv *d, int64_t ms);

/* Write out what libpq holds, and watch for the answer (and for a writable socket while
 * some is left). False if the connection broke: nothing is called, the owner decides
 * (usually conndrv_fail(d, NULL)). */
bool conndrv_flush(struct conndrv *d) __attribute__((warn_unused_result));
/* Serve the socket once for WHAT (EV_READ, EV_WRITE); ARG is the struct conndrv. The socket
 * event's callback, and for a caller that waits on PQsocket() itself (a blocking flush at
 * shutdown, with the loop no longer running) as if the event had fired; FD is not read. */
void conndrv_serve(evutil_socket_t fd, short what, void *arg);
/* The events the socket is watched for (EV_READ, EV_WRITE), 0 if none. */
short conndrv_watching(const struct conndrv *d);

#endif
