#ifndef PGCROND_EXEC_H
#define PGCROND_EXEC_H

/* The executor: a small pool of libpq connections per configured database, driven on the
 * daemon's event_base, fully asynchronous (PQconnectStart/Poll, PQsendQuery[Params],
 * PQflush, PQconsumeInput/PQisBusy/PQgetResult). A run is a list of statements executed in
 * order on one connection; it ends with one outcome (succeeded or failed, with pg_cron's
 * return_message and the SQLSTATE). Timeouts and cancellation stop the backend for real:
 * a cancel request with the connection's own cancel key (cancel.c, off the loop), again if
 * the statement has not stopped within a few seconds, then the connection is dropped. A run
 * whose connection goes silent (no answer for half the connection check) is looked at from
 * pgcrond's own session of its database (exec_watch.c): its backend found idle there is ended
 * and the run fails as a lost connection. See DESIGN.md "Execution". */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct exec;
struct exec_run;
struct exec_pool;

/* The libevent priority of the executor's connection events: 0, the highest. A daemon
 * that initialises more than one priority has them handled before its timers. */
#define EXEC_IO_PRIORITY 0

/* One statement of a run. */
struct exec_stmt {
	const char *sql;
	const char *const *params; /* N_PARAMS text values (NULL = SQL NULL), sent out of line */
	int n_params;
	/* Send with PQsendQuery (simple protocol): for a command job's operator-written SQL,
	 * which may hold several statements. Must have no params. */
	bool simple;
};

/* How a run ended. Strings are valid during the on_done callback only. A run that leaves a
 * transaction open (or aborted) fails: its work is rolled back, and the connection's
 * session is reset (DISCARD ALL) before it serves another run. */
struct exec_outcome {
	bool ok;
	bool timed_out;       /* the run's timeout expired */
	bool cancelled;       /* exec_cancel() stopped it (message says why) */
	const char *message;  /* return_message: "INSERT 0 1", "1 row", the error, DETAIL, HINT */
	const char *sqlstate; /* NULL on success; "57014" for timeouts and cancels, "08001" when
	                       * no connection could be made, "08006" when it was lost */
	int backend_pid;      /* 0 if never connected */
	/* its answer was lost while its statement may have committed (a silent connection whose
	 * backend sat idle, its statement over, or was gone: exec_watch.c): a retry could do
	 * its work twice, so it is not retried */
	bool unknown_commit;
	int64_t duration_us; /* from exec_submit() to the end */
	/* where the time went (the log's per-run stages, sched_warm.c):
	 * from exec_submit() until the run had a connection (0 if it never had one); of that, the
	 * connect of a connection opened while it waited (0: it found one open); CARRIED: it waited
	 * for another run's end on its connection, and the reset after that run prepared it (its
	 * statement in the same pipeline when it may follow other statements) */
	int64_t wait_us;
	int64_t connect_us;
	bool carried;
};

struct exec_run_spec {
	const char *database; /* a database given to exec_set_database() */
	/* Where the caller keeps DATABASE's pool (NULL: looked up on every run): found by name
	 * while *POOL is NULL, then kept. A pool lasts as long as the executor (a removed
	 * database's too), so the caller forgets it (NULL) only if its DATABASE changes. */
	struct exec_pool **pool;
	const char *name;              /* the job, named in the log lines of its server notices
	                                * (copied); NULL for the daemon's own statements */
	const struct exec_stmt *stmts; /* copied */
	size_t n_stmts;
	int64_t timeout_ms; /* 0 = none; covers the wait for a connection too */
	/* application_name 'pgcrond: NAME' for the run, so pg_stat_activity shows it; false:
	 * the startup 'pgcrond' (a set_config() less, when the timeout is the default too) */
	bool name_backend;
	/* ... unless the run has to wait for another run's end (a burst: other runs wait, or
	 * the pool is full): a name costs a set_config() in the run's round trip, which a
	 * burst of unnamed runs on reset connections never sends */
	bool name_unless_burst;
	/* Called once the run has a connection, with its backend pid (job_pid). May be NULL. */
	void (*on_pid)(void *arg, int pid);
	/* Non-NULL: the run's transaction id is reported before its statement runs, so that its
	 * commit can be told from outside if this process dies meanwhile (a fenced takeover,
	 * cluster.h). Only for a first statement that may follow others (sqlscan.h): a
	 * statement before it in the same pipeline, so in the same transaction, assigns the
	 * id and returns it, XID (decimal text) with SERVER, the server's start time (an id
	 * means something only on the server that gave it, until its next restart). Called
	 * again with NULLs if the statement goes out once more on its own after all (its
	 * Parse refused several statements): that id is not its transaction's. COMMIT_WAITS:
	 * what comes next waits for exec_release(): the COMMIT of a run in its own transaction
	 * (own_xact), or, after NULLs, the statement sent again. */
	void (*on_xid)(void *arg, const char *xid, const char *server, bool commit_waits);
	/* Nothing of the run is sent until exec_release() (it may get its connection
	 * meanwhile, and hold it): its start is recorded elsewhere first (cluster.h, a run's
	 * start mark), so that whoever finds this process dead knows whether it may have sent
	 * it. */
	bool hold;
	/* With on_xid, for a command of several statements (one simple-protocol statement that
	 * sqlscan_classify() calls one transaction): pgcrond opens the transaction itself
	 * (BEGIN and the id in one round trip), reports the id, sends the command as written,
	 * and sends COMMIT only once exec_release(run, true, ...) says the id is recorded
	 * elsewhere (exec_release(run, false, WHY): ROLLBACK, and the run fails with WHY,
	 * SQLSTATE 08006). A statement that refuses a transaction block (25001) rolls it back
	 * and goes again as written, on its own (on_xid with NULLs and COMMIT_WAITS), once
	 * exec_release(run, true, ...) says that no id is recorded for it any more (GO false:
	 * it fails with WHY, SQLSTATE 08006, without being sent again). */
	bool own_xact;
	/* Called for each row the statements return, from the event loop, with its N_FIELDS
	 * values as text (NULL for SQL NULL), valid during the call only; must not call back
	 * into the executor. NULL: rows are counted and dropped (a job's). For the daemon's own
	 * small queries (freshness's change counters). */
	void (*on_row)(void *arg, int n_fields, const char *const *values);
	/* Called exactly once, from the event loop (never from inside exec_submit() or
	 * exec_cancel()); the run is freed right after it returns. */
	void (*on_done)(void *arg, const struct exec_outcome *o);
	void *arg;
};

int exec_new(struct event_base *base, struct exec **out) __attribute__((warn_unused_result));
/* Closes every connection at once (running statements are not waited for: cancel and drain
 * first). Runs still registered end without their callbacks being called. */
void exec_free(struct exec **ex);

/* Add a database or update it (a reload). A changed conninfo closes its idle connections;
 * busy ones finish their run and are closed then. POOL is the cap on run connections; one
 * more may be opened to cancel a statement when all are busy. A connection no run has used
 * for IDLE_TIMEOUT_MS is closed at its next idle check, the pool's last one too: what fires
 * next is opened ahead of it (exec_warm); 0: none is closed for being idle. */
int exec_set_database(struct exec *ex, const char *name, const char *conninfo, int pool,
                      int64_t idle_timeout_ms) __attribute__((warn_unused_result));
/* Forget databases not named in NAMES (a reload removed them); idle connections close now. */
void exec_retain_databases(struct exec *ex, const char *const *names, size_t n);

/* Start a run; it waits for a connection if the pool is busy or reconnecting. Returns 0 and
 * *OUT (a handle valid until on_done returns), or -ENOENT for an unknown database, -ENOMEM. */
int exec_submit(struct exec *ex, const struct exec_run_spec *spec, struct exec_run **out)
    __attribute__((warn_unused_result));
/* Stop a run: it ends failed with MESSAGE and SQLSTATE 57014 (on_done still comes, from
 * the loop). A run already being cancelled keeps its first message. */
void exec_cancel(struct exec_run *run, const char *message);
/* Stop RUN as exec_cancel() does, MESSAGE with the pool's last connection error, if nothing of
 * it was sent: it waits for a connection none promised (a reset carrying it); false if not. */
bool exec_withdraw(struct exec_run *run, const char *message) __attribute__((warn_unused_result));
/* A run submitted with spec.hold may send its statement now (GO), or ends without sending
 * anything, failed with WHY as a run pgcrond stopped (cancelled: never retried; SQLSTATE
 * 57014). In its own transaction (spec.own_xact), once its id was reported: it may COMMIT
 * (GO), or must roll back and fail with WHY (SQLSTATE 08006); rolled back to go again as
 * written (spec.own_xact), it is sent (GO) or fails with WHY (08006). Nothing if it ended
 * already. */
void exec_release(struct exec_run *run, bool go, const char *why);

/* A connect, a session reset and an idle connection's liveness check must each be answered
 * within MS (an idle connection is checked every MS / 2); a connection that is not is closed
 * and replaced. Default 30 s; MS <= 0 restores it. */
void exec_set_connection_check(struct exec *ex, int64_t ms);

/* FN(ARG, DATABASE) is called from the loop when a connection to DATABASE succeeds after
 * failed attempts, or after exec_probe(): the database is reachable again (catch-up). */
void exec_set_reachable_cb(struct exec *ex, void (*fn)(void *arg, const char *database), void *arg);
/* Keep trying to connect to DATABASE (with the pool's backoff) even if no run waits, until
 * one connection succeeds; then the reachable callback runs. -ENOENT: unknown database. */
int exec_probe(struct exec *ex, const char *database) __attribute__((warn_unused_result));

/* A burst of N runs on DATABASE is due soon (sched_warm.c): open connections up to N (at
 * most the pool's size), and send a reset down each idle one unused for a while (a round
 * trip that wakes its backend and reads the session's defaults again, so a run after it
 * needs no set_config() of its own), so the burst finds them ready instead of connecting
 * and resetting at its instant. Nothing while the database fails to answer (its runs
 * reconnect, with backoff). */
void exec_warm(struct exec *ex, const char *database, size_t n);
/* The number of runs under way (submitted, not yet reported), kept up to date at this address
 * until exec_free(): for an owner that reads it at turns of its own without a call (the
 * history holds its records back while it is not 0). */
const size_t *exec_runs_under_way(const struct exec *ex);
/* Runs waiting for a connection, in every pool. */
size_t exec_waiting_runs(const struct exec *ex);
/* FN(ARG) is called once, from the loop (never from inside an exec call), when the last run
 * has ended (exec_runs_under_way() is 0); set again for the next time. For an owner that held
 * something back for the runs under way: asked when it does, so that a run's end tells no
 * one when nothing waits for it. NULL: not told. */
void exec_set_drained_cb(struct exec *ex, void (*fn)(void *arg), void *arg);
/* No run starts from now on: a run waiting for a connection is never given one (it waits
 * until it is cancelled), and a run submitted ends at once, not started. For the end of a
 * stop's grace period, which cancels the runs one after another: a run cancelled gave its
 * connection back, whose reset carried the statement of a run still waiting, sent before
 * that run's own cancel came (a fire executed, and recorded as cancelled). */
void exec_halt(struct exec *ex);

/* One database's pool as it is now, for status and metrics. */
struct exec_db_stats {
	const char *name;       /* borrowed until the next reload */
	int pool;               /* the configured cap */
	size_t open;            /* connections open (idle + busy + resetting) */
	size_t idle, busy;      /* of those: waiting for a run / running one */
	size_t connecting;      /* connects under way */
	size_t waiting;         /* runs waiting for a connection */
	int failures;           /* consecutive failed connects of this pool */
	int reachable;          /* 1 yes (a connection is open, or the server's last word from
	                         * any connection to it was a success), 0 no (this pool failed,
	                         * or a connect to its server failed since), -1 not known yet */
	const char *last_error; /* why not reachable, NULL if none; borrowed */
};
/* Fill OUT with up to MAX databases (configuration order not kept); returns how many there
 * are in all. */
size_t exec_database_stats(const struct exec *ex, struct exec_db_stats *out, size_t max);

#endif
