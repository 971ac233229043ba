#ifndef PGCROND_EXEC_PRIV_H
#define PGCROND_EXEC_PRIV_H

/* The executor's insides, shared by its files (exec.c, exec_pool.c, exec_drive.c,
 * exec_reset.c, exec_run.c) and by nothing outside them. */

#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "conndrv.h"
#include "exec.h"
#include "log.h"
#include "ownsess.h"
#include "pgconn.h"

/* USED: a run gave it back, none waited, and it left no transaction open: its session is that
 * run's until the reset, which goes when a run takes it (before an idle one: that run's statement
 * in the reset, one send, one round trip; a burst over many databases, a pool each, has no reset
 * between its runs) or RESET_LATER_MS after (exec_conn_release) */
#define RESET_LATER_MS 100
enum conn_state { CONN_CONNECTING, CONN_IDLE, CONN_USED, CONN_BUSY, CONN_RESETTING };

struct conn {
	struct exec_pool *pool;
	/* the connection (conndrv.h): the connect's deadline, the reset's, and while idle the
	 * connection check; its notices are logged for the job whose run has it */
	struct conndrv drv;
	enum conn_state state;
	struct exec_run *run; /* when BUSY */
	unsigned generation;  /* the pool's conninfo generation it was opened with */
	int64_t timeout_ms;   /* statement_timeout last set on it, -1 = unknown */
	/* the statement_timeout DISCARD ALL restores (the role's, database's or server's
	 * default), as the SHOW at default_at_us read it; -1 = unknown */
	int64_t default_timeout_ms;
	int64_t default_at_us;
	char app_name[80]; /* application_name a run set on it; "" = the startup one */
	bool tainted;      /* a cancel was aimed at it: never reuse */
	/* BUSY: its run waits for an answer and nothing came for connection check / 2
	 * (conndrv's silent()): the pool's watch looks at its backend (exec_watch.c) */
	bool watch_due;
	LIST_ENTRY(conn) in_pool; /* in its pool's conns */
	/* RESETTING (conn_reset): the STEP of reset_sql being answered, the SYNCS answered,
	 * whether a step FAILED (then it is closed), the statement_timeout and application_name
	 * its last step sets (TIMEOUT_MS -1: it SHOWs the default instead; APP "": the startup
	 * one), or NO_SET: no last step (the next run wants the settings DISCARD ALL restores, or
	 * none waits and they are known, default_timeout_ms); NEXT_RUN: the run first in the queue
	 * when it was sent, which it prepares and which gets the connection once it is clean */
	struct {
		size_t step;
		int syncs;
		bool failed, no_set;
		int64_t timeout_ms;
		char app[80];
		struct exec_run *next_run;
	} reset;
	/* BUSY: c->run's first statement went out in the pipeline of the reset, or of its
	 * set_config() (conn_carry): the answers before it are read first (conn_reset_read) */
	bool carrying;
	/* a statement of a run went out on its own (not carried): it may have left any setting,
	 * a tiny statement_timeout too, so the next reset sets that to 0 first (exec_reset.c) */
	bool guard_reset;
	/* for the runs' stages (exec_outcome): when the connect began and ended (clock_wall_us),
	 * runs served */
	int64_t open_us, connected_us;
	unsigned runs_served;
	/* when a run last gave it back, or it connected (clock_mono_us): exec_warm(), and
	 * idle_timeout */
	int64_t used_us;
};

/* A pool's watch of its runs' silent connections (exec_watch.c): what pgcrond's own session
 * of the database sees of their backends. */
struct exec_watch {
	struct ownsess_client sess; /* while joined: a run's connection is silent */
	bool joined;
	bool looking;             /* a look is in flight on the session */
	struct ownsess_item look; /* the look, an item of the session's outbox */
	bool all_due;             /* the session came back: every silent run is looked at */
	int64_t sent_us;          /* when the look in flight went out (clock_mono_us) */
	struct event ev;          /* the look, at the loop's next turn (exec_watch.c) */
	struct log_complaint complaint;
};

struct exec_pool {
	struct exec *ex;
	char *name;
	char *conninfo;
	int size;
	int64_t idle_timeout_ms; /* exec_set_database's; 0: never */
	unsigned generation;
	LIST_HEAD(, conn) conns;
	size_t n_conns, n_connecting;
	TAILQ_HEAD(, exec_run) waiting; /* the runs that wait for a connection, first first */
	size_t n_waiting;
	int failures;
	bool backing_off;
	struct event backoff_ev;
	char server[CONNDRV_SERVER_KEY]; /* conndrv_server_key(conninfo) */
	struct conndrv_waiter wait;      /* while backing off: another connection to the server
	                                  * succeeding ends the backoff (conndrv.h) */
	bool connected_once;             /* a connect of this pool has succeeded */
	char *last_error;
	struct log_complaint complaint;
	bool removed;
	bool probing; /* exec_probe(): connect even with no run waiting, until one succeeds */
	struct exec_watch watch;
	struct exec_pool *next;
};

/* Where a run is in its life inside the executor: the inside of the scheduler's "running"
 * (docs/layout.md, "A run's states"). Moved only by exec_run_to(), which refuses a move its
 * table does not hold. In its own transaction (spec.own_xact), r->xact says which of
 * pgcrond's statements is in flight while it is EXEC_ON_CONN. Held, commit wait and the
 * unwrap's three: it has its connection, idle, and waits for exec_release()
 * (exec_run_parked()). */
enum exec_phase {
	EXEC_WAITING,  /* for a connection: in its pool's queue, or reserved by a resetting one */
	EXEC_HELD,     /* has its connection, idle: nothing is sent until exec_release() */
	EXEC_SETTING,  /* the set_config() of its timeout (and name) is in flight, alone */
	EXEC_ON_CONN,  /* its statements go out and are answered on its connection */
	EXEC_COPY_OUT, /* its statement streams COPY TO STDOUT: the rows are read and dropped */
	EXEC_COMMIT_WAIT, /* its own transaction's statement is done: no COMMIT before that */
	/* rolled back after its statement refused the transaction block (run_unwrap), it is sent
	 * again as written once exec_release() says its id is written off (UNWRAP_WAITING;
	 * UNWRAP_CALLING while on_xid(), which may say so at once, is called); UNWRAP_PENDING:
	 * the answer about the id itself is still to come, and goes first */
	EXEC_UNWRAP_PENDING,
	EXEC_UNWRAP_CALLING,
	EXEC_UNWRAP_WAITING,
	EXEC_DONE, /* ended: its end is told from the loop (exec_run_report), then freed */
};

struct run_stmt {
	char *sql;
	char **params;
	int n_params;
	bool simple;
	/* may share a pipeline with what precedes it (sqlscan_pipeline_safe): 1 yes, 0 no, -1
	 * not scanned yet: scanned when first asked (exec_run_may_carry), so a run that goes
	 * alone (an idle connection with its settings) is never scanned */
	signed char carry;
};

struct exec_run {
	struct exec *ex;
	struct exec_pool *pool;
	enum exec_phase phase;  /* exec_run_to() */
	struct run_stmt *stmts; /* &one for a single statement: no allocation of its own */
	size_t n_stmts;
	struct run_stmt one;
	struct {                    /* where its answers stand (exec_drive.c) */
		size_t cur;         /* statement being executed */
		long rows;          /* rows of the current result set, read one at a time */
		bool in_pipeline;   /* its statement is in a pipeline: a Sync follows its results */
		bool sync_due;      /* ... and they are all read */
		bool xid_pending;   /* the answer to XID_SQL is read before its statement's */
		bool parse_refused; /* its error came from the server's Parse: nothing of it ran */
	} read;
	bool held; /* nothing is sent before exec_release() (spec.hold); own_xact: no COMMIT */
	/* spec.own_xact: where the run is in the transaction pgcrond opened for it (exec_drive.c,
	 * run_next_step) */
	enum { XACT_NONE, XACT_PLANNED, XACT_BEGIN, XACT_USER, XACT_COMMIT, XACT_UNWRAP } xact;
	char *commit_refused; /* exec_release(run, false, WHY) in an own transaction: WHY */
	char timeout_text[32];
	char app_name[80]; /* "pgcrond: JOB" for pg_stat_activity; "" for the daemon's own */
	int64_t timeout_ms;
	int64_t start_us;
	int64_t attach_us;  /* when it got its connection (clock_wall_us), 0 before */
	int64_t connect_us; /* the connect of that connection, if opened while it waited */
	bool carried;       /* it waited for a run's end on its connection, whose reset it is */
	struct conn *conn;
	int pid;
	struct { /* exec_run_spec's */
		void (*on_pid)(void *, int);
		void (*on_xid)(void *, const char *, const char *, bool);
		void (*on_row)(void *arg, int n_fields, const char *const *values);
		void (*on_done)(void *, const struct exec_outcome *);
		void *arg;
	} cb;
	struct event done_ev; /* completion is reported from the loop, never re-entrantly (at
	                       * EXEC_IO_PRIORITY: exec_run_complete) */
	struct {              /* the timeout, then the cancel escalation */
		struct event timer_ev;
		int escalation;         /* 0 none, 1 cancel sent, 2 cancel sent again */
		struct cancel_req *req; /* the cancel request under way (cancel.c) */
		char *msg;              /* why it was stopped */
	} stop;
	struct { /* the outcome being built (exec_outcome's) */
		bool failed, timed_out, cancelled, unknown_commit;
		char *message;
		char sqlstate[6];
	} out;
	char *name; /* the job's name, for the log lines of its server notices; may be NULL */
	struct {    /* where it is linked */
		TAILQ_ENTRY(exec_run) wait; /* its pool's wait queue */
		struct conn *reserved;      /* out of it: the resetting connection it gets */
		LIST_ENTRY(exec_run) all;   /* exec's list of all runs */
	} link;
};

struct exec {
	struct event_base *base;
	struct exec_pool *pools;
	LIST_HEAD(, exec_run) runs;
	size_t n_runs;
	void (*on_reachable)(void *arg, const char *database);
	void *reachable_arg;
	int64_t check_ms;             /* exec_set_connection_check() */
	const unsigned *own_starving; /* ownsess_starving(): a pool asks ownsess_starved() then */
	struct cancel *cancel;
	/* exec_set_drained_cb(): told once, from the loop, when the last run has ended */
	void (*on_drained)(void *arg);
	void *drained_arg;
	struct event drained_ev;
	bool halted; /* exec_halt(): no run starts any more */
};

/* the steps of exec_reset.c's reset_sql, the last of which sets the next run's settings */
#define RESET_STEPS 4
#define SET_TIMEOUT_SQL "SELECT pg_catalog.set_config('statement_timeout', $1, false)"
/* ... with the job's name, so pg_stat_activity shows which job a backend runs: in the same
 * round trip as the timeout, which a reset connection often needs anyway */
#define SET_RUN_SQL                                                                                \
	"SELECT pg_catalog.set_config('statement_timeout', $1, false), "                           \
	"pg_catalog.set_config('application_name', $2, false)"
#define RESET_SYNCS 2
/* Before a run's statement, in its transaction (exec_run_spec.on_xid): never an error, so it
 * never aborts the pipeline (a standby assigns no id: NULL there). txid_current(), not
 * pg_current_xact_id(): the same number, and known to servers before 13 too. */
#define XID_SQL                                                                                    \
	"SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL"                                \
	" ELSE pg_catalog.txid_current()::pg_catalog.text END,"                                    \
	" " PGCONN_SQL_SERVER_ID

/* Calls point one way (scripts/callgraph): exec.c (the runs' API) and exec_pool.c (the
 * pools' API) call exec_watch.c and exec_drive.c, exec_watch.c calls exec_drive.c, which
 * calls exec_reset.c and exec_run.c, each calling only those after it. What
 * exec_drive.c has to tell the watch (a connection silent, a run ended) it tells through the
 * pool's watch.ev, which exec_watch.c assigned. */

/* exec_watch.c: a run's connection gone silent, found from pgcrond's own session of its
 * database (exec_watch.c says how) */
void exec_watch_init(struct exec_pool *p);
void exec_watch_free(struct exec_pool *p);

/* exec_drive.c: a run's steps on its connection, the connections' events, release, reset,
 * connect and dispatch */
void exec_run_start(struct exec_run *r, struct conn *c);
/* R's connection broke: closed, and R fails with WHY (libpq's reason if NULL), SQLSTATE
 * 08006 */
void exec_run_conn_lost(struct exec_run *r, const char *why);
void exec_run_commit(struct exec_run *r);
/* exec_release() for R, rolled back to go again as written (EXEC_UNWRAP_*): GO or not, WHY */
void exec_run_unwrap_released(struct exec_run *r, bool go, const char *why);
int exec_conn_open(struct exec_pool *p);
void exec_conn_release(struct conn *c, bool broken);
void exec_conn_reset(struct conn *c);
void exec_pool_dispatch(struct exec_pool *p);

/* exec_reset.c */
bool exec_conn_reset_send(struct conn *c, bool carry);
void exec_conn_reset_result(struct conn *c, PGresult *res);
bool exec_run_may_carry(struct exec_run *r);
bool exec_conn_carry(struct conn *c, struct exec_run *r);

/* exec_run.c */
/* R is at phase TO from now on; false (and an internal error logged, R unmoved) for a move
 * the table in exec_run.c does not hold. */
bool exec_run_to(struct exec_run *r, enum exec_phase to);
/* R has its connection, idle, and waits for exec_release(): nothing of it is in flight. */
bool exec_run_parked(const struct exec_run *r);
void exec_run_attach(struct exec_run *r, struct conn *c);
void exec_run_take_result(struct exec_run *r, PGresult *res);
int exec_run_drain_copy(struct exec_run *r);
bool exec_run_start_copy(struct exec_run *r, ExecStatusType st);
void exec_run_fail(struct exec_run *r, const char *message, const char *sqlstate);
void exec_run_complete(struct exec_run *r);
/* R's end told to its owner (on_done), and R freed: from the loop, never inside an exec call
 * (exec.h), nor inside libpq's reading of a connection, which on_done may close or give to
 * another run. */
void exec_run_report(struct exec_run *r);
void exec_run_free(struct exec_run **rp);

/* exec_run.c: connections and pools as records */
char *exec_conn_error(const PGconn *pg, const char *conninfo);
void exec_conn_close(struct conn **cp);
/* C is idle and no run used it for its pool's idle_timeout: it may be closed, the pool's last
 * one too (the warm-up opens it again ahead of the database's next fire: sched_warm.c). */
bool exec_conn_idle_expired(const struct conn *c);
void exec_wait_remove(struct exec_run *r);
void exec_wait_push_front(struct exec_pool *p, struct exec_run *r);
/* The first connection of P in STATE (CONN_IDLE, or CONN_USED: its reset is to carry the run)
 * that may serve a run (of its current conninfo, never aimed at by a cancel), or NULL. One
 * that died while idle, whose event is still on its way, is closed on the way, before it
 * serves a run: no run fails for what happened before it began. */
struct conn *exec_pool_idle(struct exec_pool *p, enum conn_state state);
struct exec_pool *exec_pool_find(struct exec *ex, const char *name);

#endif
