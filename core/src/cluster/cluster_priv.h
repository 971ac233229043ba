#ifndef PGCROND_CLUSTER_PRIV_H
#define PGCROND_CLUSTER_PRIV_H

/* The cluster's inside (cluster.h), shared by its files: cluster_conn.c (the session and what
 * to send next), cluster_lone.c, cluster_xact.c (the runs' marks), cluster_claims.c,
 * cluster_serve.c (fires other processes left unserved), cluster_lock.c (the instance lock,
 * the heartbeat, reaping dead instances) and cluster.c (the table, lifetime, publishing). */

#include <event2/event_struct.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "clock.h"
#include "cluster.h"
#include "config.h"
#include "log.h"
#include "ownsess.h"
#include "pgconn.h"
#include "strmap.h"

#define CLAIM_BATCH_MAX 1000
#define JOBS_PART 500 /* jobs per statement publishing them (sql_jobs) */
/* The first claim statement of a burst carries at most this many fires, each next one four
 * times as many (up to CLAIM_BATCH_MAX): the first runs start after a short statement, and
 * the rest are claimed while they run. One statement for 1,000 fires takes milliseconds on a
 * busy machine, and every run of the second would wait for it. */
#define CLAIM_FIRST 16
/* The locks of runs that ended go back in one statement every UNLOCK_GATHER_MS (or once
 * UNLOCK_GATHER_MAX are due): sent as each run ends, a burst's 1,000 runs would make about a
 * hundred statements that competed with the runs still to start. A job's lock is held that
 * much longer than its run, a wait another instance sees like a round trip's. */
#define UNLOCK_GATHER_MS 20
#define UNLOCK_GATHER_MAX 256
/* While runs wait for connections (the busy hook: a burst), the locks wait up to
 * UNLOCK_HOLD_MS (or until CLAIM_BATCH_MAX are due): the unlock statements take the CPU of
 * the server the runs still to start needed. Short, since another instance's claim of the
 * job's next fire finds the job busy until its lock is back. */
#define UNLOCK_HOLD_MS 60
#define CLUSTER_STR_(x) #x
#define CLUSTER_STR(x) CLUSTER_STR_(x)
/* SQL: the heartbeat period (cluster_dead_after) of the instance whose pgcrond.instance
 * row is A, and a claim's lease past the fire's instant: that period plus half of it, at least
 * 1 s (docs/several-instances.md), in ms. LEAST, GREATEST and COALESCE are
 * syntax, not functions. */
#define SQL_BEAT_MS(a)                                                                             \
	"LEAST(" CLUSTER_STR(CLUSTER_HEARTBEAT_MS) ", COALESCE(" a ".dead_after_ms, " CLUSTER_STR( \
	    CLUSTER_DEAD_MS) ") OPERATOR(pg_catalog./) 4)"
#define SQL_LEASE_MS(a)                                                                            \
	"(" SQL_BEAT_MS(a) " OPERATOR(pg_catalog.+) GREATEST(" SQL_BEAT_MS(                        \
	    a) " OPERATOR(pg_catalog./) 2, 1000))"
/* SQL: whether the stop note NOTE of a pgcrond.instance row says its instance was found dead
 * (written by the reap, sql_reap: "found dead by instance X"), not stopped cleanly. */
#define SQL_FOUND_DEAD_PREFIX "found dead by "
#define SQL_FOUND_DEAD(note)                                                                       \
	" pg_catalog.left(" note ", 14) OPERATOR(pg_catalog.=) '" SQL_FOUND_DEAD_PREFIX "'"
#define SQL_FOUND_DEAD_W SQL_FOUND_DEAD("w.stop_note")
#define SQL_FOUND_DEAD_I SQL_FOUND_DEAD("i.stop_note")
/* The name is held by another session: look again after a heartbeat has had time to move. */
#define LOCK_RECHECK_MS (CLUSTER_HEARTBEAT_MS + 1500)
/* Claims older than this are purged (catch-up compares with the history, not the claims). */
#define CLAIM_KEEP_S "2 days"
#define PURGE_INTERVAL_MS (10 * 60 * 1000)
#define STOP_GRACE_MS 2000
/* ... and longer while a look for dead instances is under way, whose fence waits up to 3 s
 * for a backend to go (sql_reap): what it took goes back once it answers */
#define STOP_GRACE_REAP_MS 5000

/* The fence of the runs of a process that is gone (pgconn.h): "a" serves the run of row
 * "d", and is ended unless it may not be (another role's, without pg_signal_backend). */
#define RUN_BACKEND_D_A PGCONN_SQL_RUN_BACKEND("d", "a")
#define END_BACKEND_A PGCONN_SQL_END_BACKEND("a")
#define MAY_END_A PGCONN_SQL_MAY_SIGNAL("a")

/* A job's lock (pgcrond.job_lock, sql/pgcrond--11.sql): the rows of the SELECT that follows
 * (job, instance, boot id, holds[, marked]) become ours unless another live instance holds
 * them. A row of a dead or restarted instance (its boot id is not the live one) holds nothing.
 * A lock whose every hold was taken by an instance that
 * marks its runs holds nothing either once its holder has no run of the job that may still be
 * under way (each of its marks has a transaction the server says ended: xid 0 is a run whose
 * transaction is not known) and the lock was neither taken nor touched by a run's mark
 * (cluster_xact.c) for LOCK_LEASE: a holder stopped or cut off right after its claim or its
 * run no longer makes the others skip the job until it is found dead. Its runs not started yet
 * then find the lock gone as they are marked, and send nothing. */
#define LOCK_LEASE "1500 ms"
#define SQL_JOB_LOCK_SAME                                                                          \
	"l.instance OPERATOR(pg_catalog.=) EXCLUDED.instance"                                      \
	" AND l.boot_id OPERATOR(pg_catalog.=) EXCLUDED.boot_id"
#define SQL_JOB_LOCK_M                                                                             \
	"INSERT INTO pgcrond.job_lock AS l (job_name, instance, boot_id, holds, marked)"
/* (ADD: a further condition for adding the holds of the same process rather than setting
 * them: the lone switch's, sent again after its answer was lost, sets them) */
#define SQL_JOB_LOCK_ADD_ON(add, set, takeover)                                                    \
	" ON CONFLICT (job_name) DO UPDATE SET holds = CASE WHEN " SQL_JOB_LOCK_SAME add           \
	"   THEN l.holds OPERATOR(pg_catalog.+) EXCLUDED.holds ELSE EXCLUDED.holds END," set       \
	"  instance = EXCLUDED.instance, boot_id = EXCLUDED.boot_id, locked_at = pg_catalog.now()" \
	" WHERE (" SQL_JOB_LOCK_SAME ")"                                                           \
	"  OR NOT EXISTS (SELECT FROM pgcrond.instance i"                                          \
	"   WHERE i.name OPERATOR(pg_catalog.=) l.instance"                                        \
	"    AND i.boot_id OPERATOR(pg_catalog.=) l.boot_id AND i.stopped_at IS NULL)" takeover    \
	" RETURNING l.job_name"
#define SQL_XID_UNKNOWN "r.xid IS NULL OR r.xid OPERATOR(pg_catalog.<=) 0"
/* A lock need not wait for LOCK_LEASE once nothing of its holder's may
 * still run: each of its holder's marks of the job has a transaction id (the clause above
 * asks that it ended) and a command whose commit can be asked (a fenced one's id, such as a
 * plugin's first statement's, does not cover the whole run), and no fire of the job the
 * holder claimed within LOCK_LEASE waits for its run's mark (a scheduled fire's mark sets
 * the claim's started; other claims never do, and keep the lease). So an instance stopped
 * just after its runs of the job ended (the others claim the next fire 100 ms before its
 * instant) no longer makes them skip it; one stopped between a claim and its run's mark, or
 * with a run waiting for a connection, still holds the job for the lease: it may be only
 * slow. The claim statement's snapshot may miss a claim committed while it waited for the
 * lock's row: the holder's run of that claim then finds the lock gone at its mark and sends
 * nothing (cluster_xact.c), as after the lease. */
#define SQL_JOB_LOCK_ENDED                                                                         \
	"   OR (NOT EXISTS (SELECT FROM pgcrond.run_start r"                                       \
	"     WHERE r.instance OPERATOR(pg_catalog.=) l.instance"                                  \
	"      AND r.job_name OPERATOR(pg_catalog.=) l.job_name"                                   \
	"      AND (" SQL_XID_UNKNOWN " OR r.fenced IS NOT NULL))"                                 \
	"    AND NOT EXISTS (SELECT FROM pgcrond.fire_claim fc"                                    \
	"     WHERE fc.job_name OPERATOR(pg_catalog.=) l.job_name"                                 \
	"      AND fc.instance OPERATOR(pg_catalog.=) l.instance"                                  \
	"      AND fc.boot_id OPERATOR(pg_catalog.=) l.boot_id AND fc.started IS NOT TRUE"         \
	"      AND fc.claimed_at OPERATOR(pg_catalog.>=) (pg_catalog.now()"                        \
	"       OPERATOR(pg_catalog.-) interval '" LOCK_LEASE "')))"
/* A mark whose id is not known yet holds the job only while its run may
 * be at work on the server: a command that cannot report its id (fenced), or a backend named
 * for the job (every run's, while another instance is live) busy or in a transaction (a
 * backend another role's that this one cannot see counts as busy). A one-transaction run whose
 * instance froze before its id was marked (it waited for a connection, or for the id's answer)
 * has committed, rolled back or not begun on the server: the others no longer skip the job
 * until that instance is found dead (a run not begun that the frozen instance sends once it
 * resumes may then overlap another instance's run of a later fire). */
#define SQL_JOB_LOCK_CONFLICT_F                                                                    \
	SQL_JOB_LOCK_ADD_ON(                                                                       \
	    "",                                                                                    \
	    " marked = CASE WHEN " SQL_JOB_LOCK_SAME                                               \
	    "  THEN l.marked AND EXCLUDED.marked ELSE EXCLUDED.marked END,",                       \
	    "  OR (l.marked AND (l.locked_at OPERATOR(pg_catalog.<) (pg_catalog.now()"             \
	    "   OPERATOR(pg_catalog.-) interval '" LOCK_LEASE "')" SQL_JOB_LOCK_ENDED ")"          \
	    "   AND NOT EXISTS (SELECT FROM pgcrond.run_start r"                                   \
	    "    WHERE r.instance OPERATOR(pg_catalog.=) l.instance"                               \
	    "     AND r.job_name OPERATOR(pg_catalog.=) l.job_name"                                \
	    "     AND (((" SQL_XID_UNKNOWN ") AND (r.fenced IS NOT NULL"                           \
	    "  OR EXISTS (SELECT FROM pg_catalog.pg_stat_activity a"                               \
	    "   WHERE a.application_name OPERATOR(pg_catalog.=) "                                  \
	    "pg_catalog.left('" PGCONN_JOB_APP_PREFIX "' OPERATOR(pg_catalog.||) r.job_name, 63)"  \
	    "    AND (a.state OPERATOR(pg_catalog.=) 'idle') IS NOT TRUE)))"                       \
	    " OR (r.xid OPERATOR(pg_catalog.>) 0"                                                  \
	    "      AND pgcrond.xact_committed(r.xid, r.server) IS NULL))))")

struct claim {
	TAILQ_ENTRY(claim) link; /* in struct cluster's claims, oldest first */
	char *job, *key;
	int64_t window_ms;
	cluster_claim_fn fn;
	void *arg;
	bool sent;
	bool granted;
	bool busy; /* granted, but the job's lock is held elsewhere: it runs on another instance */
	struct strmap_node sent_node; /* under job, while claim_match matches rows to claims */
};

/* The statements, by what their answers mean (struct cluster's flight). */
enum op {
	OP_LOCK = 1,
	OP_HOLDER,
	OP_BEAT,
	OP_REAP,
	OP_UNSERVED,
	OP_XACT,
	OP_CLAIM,
	OP_UNLOCK,
	OP_JOBS,
	OP_PURGE,
	OP_STOP,
	OP_LISTEN,
	OP_HELLO,
	OP_N
};

/* A row's due time when it is not due (cluster_row). */
#define CLUSTER_NEVER INT64_MAX

/* A row of the table of statements (cluster.c; each row is defined beside its functions): a
 * statement due at a time (periodic, or when asked for: cluster_due_at), or a kind of
 * outgoing item (marks, unlocks, other modules' statements, claims), due while items wait.
 * cluster_kick sends the first row, in the table's order, that is due and not skipped; the
 * answer comes back to the row of its op. */
struct cluster_row {
	enum op op; /* what its answer comes back as (struct cluster's flight) */
	/* due again this long after it went (ROW_BEAT: the heartbeat's period); 0: only when
	 * something asks for it */
	int64_t period_ms;
	unsigned flags;
	/* Whether it waits although it is due (an instance alone,
	 * the middle of a burst of claims). NULL: never. */
	bool (*skip)(struct cluster *c);
	/* Push its statement: false if nothing was sent after all. NULL: SQL is sent (with N
	 * parameters of this instance's name and boot id), or it is sent only by another row's
	 * answer or by the session (the name's lock, at each connect). */
	bool (*send)(struct cluster *c);
	const char *sql;
	int n;
	/* Its answer (never called for one lost with the connection). */
	void (*done)(struct cluster *c, const struct stmtq_result *sr);
	/* The connection is gone: what waited for an answer that cannot come. NULL: nothing. */
	void (*lost)(struct cluster *c);
};
#define ROW_BEAT (-1)
#define ROW_ITEMS 1u   /* due while items wait (its send: false if none), not by time */
#define ROW_CLOSING 2u /* sent also once the stop has begun (and only these rows then) */
#define ROW_AGAIN 4u   /* due again when its answer was lost with the connection */
#define ROW_BULK 8u    /* can wait behind the session's other statements (ownsess.h) */

/* What the last answer to the name's lock said, kept until the next one; a lock taken goes
 * with its connection (docs/layout.md, "The cluster's states"). */
enum cluster_state {
	CS_UNLOCKED,    /* not asked on this connection yet, or held by another session */
	CS_LOCK_FAILED, /* the lock statement failed: asked again (cluster_lock.c) */
	CS_RECOVERY,    /* the last server reached was a standby */
	CS_LOCKED,      /* the name's lock is ours on this connection */
	CS_REFUSED,     /* another live instance has the name, or the server is too old */
	CS_STATES
};

enum lone_state {
	LONE_OFF,       /* claiming (also before the first heartbeat) */
	LONE_GOING,     /* pgcrond.go_lone sent */
	LONE_ON,        /* lone: claims answered without a statement */
	LONE_LEAVING,   /* claiming again: the switch's statement is due (switch_send) ... */
	LONE_SWITCHING, /* ... or sent, its answer awaited */
};

/* An instance alone (cluster_lone.c). */
struct cluster_lone {
	enum lone_state state;
	bool leave_after; /* a peer was seen while going lone */
	bool switch_lost; /* an earlier one's answer was lost: it may have committed */
	bool refusing;    /* a claim statement's gate refusal is being answered */
	bool unstopped;   /* the last heartbeat found another instance's row not stopped */
	bool known;       /* whether it is alone was decided once (cluster_lone_undecided) */
	char refused[600];
	struct log_complaint refused_complaint;
	int64_t beat_ok_us; /* when the last answered heartbeat was sent (monotonic) */
	/* while lone, claims are answered lone until then: beat_ok_us plus lease_us, set as it
	 * goes lone and at each heartbeat answered, not worked out at each claim; 0 otherwise */
	int64_t lease_end_us;
	int64_t since_us;                     /* when it went lone last (wall clock) */
	int64_t told_since_us, told_until_us; /* what hooks.lone was told last (lone_tell) */
	struct strmap jobs;
	struct lone_note *ring;    /* the fires run lone, a ring (cluster_lone.c) */
	size_t head, n_fires, cap; /* N_FIRES from HEAD (the oldest), room for CAP */
};

struct cluster {
	struct event_base *base;
	char *conninfo;
	char safe_conninfo[512];
	char db_name[256]; /* the history database's name in the configuration */
	char *instance;
	char *boot_id;
	char host[256];
	struct cluster_hooks hooks;

	struct ownsess_client sess; /* the history database's own session (ownsess.h) ... */
	struct stmtq *q;            /* ... and its statements (ownsess.h) */
	const struct cluster_row *const *rows; /* the statements, in the order considered */
	int64_t due[OP_N];    /* each timed row's due time (monotonic ms), CLUSTER_NEVER if none */
	struct event tick_ev; /* at the first due time still ahead ... */
	int64_t tick_at_ms;   /* ... which is this */
	struct ownsess_item turn; /* the rows' statements: an item of that outbox (cluster_kick) */
	enum op flight;           /* the statement of the cluster's in flight, 0 if none */
	int64_t stop_until_ms;    /* the stop's grace ends (cluster_close) */
	char op_cause[600]; /* why the claims being answered got no answer, "" if unreachable */
	struct event flush_ev;
	/* cluster_dead_after: how long others wait for this instance's heartbeat before they
	 * declare it dead (written in its row), and the heartbeat's period, a quarter of it */
	int64_t dead_after_ms, beat_ms;
	int64_t unlock_since_ms; /* when the oldest unsent unlock was asked for */

	enum cluster_state state; /* only cluster_to() changes it */
	bool skewed;              /* this host's clock is off the database's: nothing is claimed */
	int64_t beat_wall_us, beat_mono_us;  /* when the heartbeat in flight was sent */
	struct cluster_offset_filter offset; /* the beats' clock samples (cluster_offset_filter) */
	int64_t hello_beat_ms; /* the beat another instance's hello asked for (on_notify) */
	bool unserved_asked;   /* cluster_serve_unserved: once per process */
	bool stopping;         /* cluster_stopping */
	/* cluster_xact.c: the marks not sent yet (lines); the runs marked and not ended */
	char *xact_buf;
	size_t xact_len, xact_cap;
	unsigned xact_dropped; /* marks dropped since the last sent (XACT_BUF_MAX) */
	char *xact_inflight;   /* the lines of the statement in flight, sent again if it fails */
	unsigned xact_retries; /* of that statement, after a deadlock or a serialization failure */
	struct strmap xact_keys;
	STAILQ_HEAD(mark_waits, mark_wait) mark_unsent, mark_sent; /* runs awaiting marks */
	/* After a reconnect (the database restarted or failed over) every instance's lock is
	 * gone and its heartbeat old until it reconnects too: no reaping before this. */
	int64_t reap_after_ms;
	bool ever_locked;
	/* the name was found held by another session and its holder looked at (holder_done):
	 * its last_seen then; kept across failed locks until the name is ours */
	bool holder_looked;
	int64_t holder_seen_us;
	bool closing;
	int64_t claim_sent_us;  /* when the claim statement in flight was sent */
	size_t claim_cap;       /* fires the next claim statement may carry; 0: a burst's first */
	int64_t claim_rtt_us;   /* summed over the claim statements answered */
	unsigned claim_retries; /* consecutive deadlock / serialization retries */

	TAILQ_HEAD(, claim) claims;
	/* the configured jobs, sent in parts by name after each connect and each
	 * cluster_set_jobs (while OP_JOBS is due): the configuration (a reference of ours), its
	 * jobs by name (byte order), the next to send */
	struct pgc_config *jobs_cfg;
	const struct conf_job **jobs_sorted;
	size_t jobs_next;
	bool claims_went; /* the last of claims and parts sent was claims: a part goes next */
	/* jobs whose locks to release (their runs ended), and how many are in flight */
	char **unlock;
	size_t n_unlock, cap_unlock, unlock_sent;
	char *announce;   /* text[] of the jobs whose end is announced (sql_unlock) */
	unsigned n_tasks; /* other modules' statements queued or in flight (cluster_submit) */
	/* another instance was live at a heartbeat of this process: its runs are marked from then
	 * on (cluster_marks_runs), so that a lock claimed as marked never holds an unmarked run */
	bool marking;
	char peers[512];
	struct cluster_lone lone;    /* an instance alone (cluster_lone.c) */
	void (*again_fn)(void *arg); /* cluster_set_again_fn */
	void *again_arg;

	struct log_complaint down_complaint, recovery_complaint, offline_complaint, lock_complaint,
	    lease_complaint;
	struct cluster_stats st;
};

/* Files call one way, each only those listed before it: cluster_conn.c, cluster_lone.c,
 * cluster_xact.c, cluster_claims.c, cluster_serve.c, cluster_lock.c, cluster.c. A lower file
 * reaches a higher one only through the rows of the table (cluster.c). */

/* ---- cluster_conn.c: the session, the table's turns, the unlocks and other modules'
 * statements */
extern const struct cluster_row cluster_row_unlock;
/* Set C's session and the table ROWS (NULL-terminated) up (cluster_open): 0 or -ENOMEM. */
int cluster_conn_open(struct cluster *c, const struct cluster_row *const *rows);
/* Move C to state TO, unless cluster_state_may(C's, TO) refuses it: false, logged as an
 * internal error, and C keeps its state. */
bool cluster_to(struct cluster *c, enum cluster_state to);
/* Tell hooks.lone if whether claims are answered alone changed: called where answers_at's
 * terms change (the lone state and the lease, cluster_lone.c; the connection's state; stopping;
 * the clock's step, at each heartbeat's answer). */
void cluster_lone_tell(struct cluster *c);
bool cluster_state_may(enum cluster_state from, enum cluster_state to);
/* The next statement, the first row due and not skipped, is sent at the session's next turn,
 * from the loop (or from the stop's ownsess_drain, when the loop no longer runs). */
void cluster_kick(struct cluster *c);
/* Row OP (a timed one) is due at AT (monotonic ms) at the latest. */
void cluster_due_at(struct cluster *c, enum op op, int64_t at);
/* Push statement OP (its row's answer takes it). False if the connection failed meanwhile. */
bool cluster_send_stmt(struct cluster *c, enum op op, const char *sql, int n,
                       const char *const *params);
const char *cluster_res_val(const PGresult *r, int row, int col);
/* A statement of this instance's that failed with SQLSTATE changed nothing and may simply be
 * sent again: a deadlock, a serialization failure, a row lock it could not get. */
bool cluster_resend_worthy(const char *sqlstate);
/* Whether claims wait to be sent; ... and the first of a burst went: the runs wait for them. */
bool cluster_has_unsent(const struct cluster *c);
bool cluster_in_burst(const struct cluster *c);
/* Whether parts of this instance's jobs are still to be published (pgcrond.instance_job):
 * a statement that takes claims by them waits (SQL_TAKER_DEFINES). */
bool cluster_jobs_unpublished(const struct cluster *c);
/* The job's lock of a run that ended goes back (gathered: UNLOCK_GATHER_MS). */
void cluster_unlock(struct cluster *c, const char *job);

/* ---- cluster_lone.c: an instance alone (docs/several-instances.md "An
 * instance alone"): while no other instance is live it claims nothing, takes no job lock and
 * marks no run; its heartbeat is its only statement */
/* A claim statement refused because another instance runs unclaimed (pgcrond.claim_gate). */
#define CLUSTER_LONE_SQLSTATE "PGCL1"

/* The name is held (after each connect). A process that was lone, or going lone, claims again
 * first: its row may still say lone. */
void cluster_lone_locked(struct cluster *c);
/* A heartbeat answered (st.peers_live set); TOLD_DEAD: this process was found dead meanwhile;
 * UNSTOPPED: another instance's row is not stopped (live, or dead and not yet found so). */
void cluster_lone_beat(struct cluster *c, bool told_dead, bool unstopped);
/* For cluster_on_flush: the claims answered lone, and their verdict (GRANTED: the run
 * releases "its lock" at its end, which cluster_release counts). */
bool cluster_lone_which(struct cluster *c, const struct claim *q);
enum cluster_verdict cluster_lone_verdict(struct cluster *c, struct claim *q, char *why,
                                          size_t len);
/* The claim statement being answered was refused by the gate (ERR, the server's message), or
 * (NULL) its answer is over. */
void cluster_lone_refused(struct cluster *c, const char *err);
/* While such an answer is given: true, with the reason in WHY (if not NULL). */
bool cluster_lone_refusal(const struct cluster *c, char *why, size_t len);
void cluster_lone_free(struct cluster *c);

/* ---- cluster_xact.c: the runs' marks (first while a run waits for its own) */
extern const struct cluster_row cluster_row_marks_awaited, cluster_row_marks;
void cluster_xact_free(struct cluster *c);
/* This instance was found dead: the runs whose marks are not sent yet send nothing. */
void cluster_marks_refuse(struct cluster *c);

/* ---- cluster_claims.c: claims and their verdicts */
extern const struct cluster_row cluster_row_claims;
/* The claims that cannot be sent now (connecting, refused, a standby, this host's clock off) get
 * the verdict of a claim that cannot be made. */
void cluster_answer_overdue(struct cluster *c);
void cluster_on_flush(evutil_socket_t fd, short what, void *arg);
void cluster_claim_free(struct claim *q);

/* ---- cluster_serve.c: fires other processes claimed and never ran */
/* SQL: a scheduled fire's instant, of claim c's key. */
#define SQL_UNSERVED_INSTANT " pg_catalog.substr(c.fire_key, 3)::pg_catalog.int8"
#define SQL_UNSERVED_DELETE "  DELETE FROM pgcrond.fire_claim c"
/* Claims of scheduled fires (pgcrond--4.sql: "s:<unix s>", no retry's "/a<attempt>") that
 * no history row serves (any instance's row for the job and the instant: a run, or a skip)
 * and whose run's start the claiming instance did not mark (pgcrond.run_start, written on
 * the connection that made the claim, as the run begins, and with the claim's `started`
 * before its statement is sent: SQL_UNSERVED_STARTED). A
 * run's row starts within 1 s before its instant at the earliest (a clock in step). */
#define SQL_UNSERVED_WHERE                                                                         \
	" c.fire_key OPERATOR(pg_catalog.~) '^s:[0-9]{1,12}$'"                                     \
	" AND NOT" SQL_FIRE_HAS_ROW("c.job_name", SQL_UNSERVED_INSTANT)
/* SQL: whether a history row serves job JOB's scheduled fire at instant S (Unix s) */
#define SQL_FIRE_HAS_ROW(job, s)                                                                   \
	" EXISTS (SELECT FROM pgcrond.job_run_details d"                                           \
	"  WHERE d.job_name OPERATOR(pg_catalog.=) " job                                           \
	"   AND d.scheduled_time OPERATOR(pg_catalog.=) pg_catalog.to_timestamp(" s ")"            \
	"   AND d.start_time OPERATOR(pg_catalog.>=) (pg_catalog.to_timestamp(" s ")"              \
	"    OPERATOR(pg_catalog.-) interval '1 minute'))"
/* (`started` NULL: claimed by a process that marked nothing then, so whether its run began is
 * not known here: never served by another instance, only by that instance's next process,
 * whose history (its spill file written first) knows; sql_unserved) */
#define SQL_UNSERVED_STARTED_AS(started)                                                           \
	" AND NOT " started " AND NOT EXISTS (SELECT FROM pgcrond.run_start m"                     \
	"  WHERE m.instance OPERATOR(pg_catalog.=) c.instance"                                     \
	"   AND m.job_name OPERATOR(pg_catalog.=) c.job_name"                                      \
	"   AND m.scheduled_s OPERATOR(pg_catalog.=)" SQL_UNSERVED_INSTANT ")"
#define SQL_UNSERVED_STARTED SQL_UNSERVED_STARTED_AS("c.started")
#define SQL_UNSERVED_STARTED_OWN SQL_UNSERVED_STARTED_AS("COALESCE(c.started, false)")
/* an instant passed: the others tried to claim it and lost to the dead one (a coming one
 * is claimed by whoever fires it, now that the claim is gone) */
#define SQL_UNSERVED_PASSED                                                                        \
	" s OPERATOR(pg_catalog.<=) pg_catalog.date_part('epoch', pg_catalog.now())"
/* A claim of an instant still ahead (given back: whoever fires it claims it), or of a job
 * that instance $1 defines, as its holder did, or otherwise when no other live instance does:
 * a rolling configuration change whose holder is gone is served by the definition the others
 * moved to. One that another live instance defines as the holder did is left to that
 * instance (sql_unserved_stopped: a reap's NOTIFY wakes it, and so does the end of its jobs'
 * publishing), and one that $1 does not define to an instance that does. By
 * pgcrond.instance_job: a holder without rows there (an older pgcrond) is matched by no one,
 * so any instance defining the job takes it. */
#define SQL_TAKER_DEFINES                                                                          \
	" AND (pg_catalog.to_timestamp(" SQL_UNSERVED_INSTANT ") OPERATOR(pg_catalog.>)"           \
	"  pg_catalog.now() OR EXISTS (SELECT FROM pgcrond.instance_job ij"                        \
	"  WHERE ij.instance OPERATOR(pg_catalog.=) $1"                                            \
	"   AND ij.job_name OPERATOR(pg_catalog.=) c.job_name"                                     \
	"   AND (EXISTS (SELECT FROM pgcrond.instance_job hj"                                      \
	"     WHERE hj.instance OPERATOR(pg_catalog.=) c.instance"                                 \
	"      AND hj.job_name OPERATOR(pg_catalog.=) c.job_name"                                  \
	"      AND hj.def_hash OPERATOR(pg_catalog.=) ij.def_hash)"                                \
	"    OR NOT EXISTS (SELECT FROM pgcrond.instance_job hj"                                   \
	"     JOIN pgcrond.instance_job oj ON oj.job_name OPERATOR(pg_catalog.=) hj.job_name"      \
	"      AND oj.def_hash OPERATOR(pg_catalog.=) hj.def_hash"                                 \
	"     JOIN pgcrond.instance o ON o.name OPERATOR(pg_catalog.=) oj.instance"                \
	"     WHERE hj.instance OPERATOR(pg_catalog.=) c.instance"                                 \
	"      AND hj.job_name OPERATOR(pg_catalog.=) c.job_name"                                  \
	"      AND o.name OPERATOR(pg_catalog.<>) c.instance AND o.name OPERATOR(pg_catalog.<>) "  \
	"$1"                                                                                       \
	"      AND o.stopped_at IS NULL"                                                           \
	"      AND o.last_seen OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-)"    \
	"       (COALESCE(o.dead_after_ms, 20000)::pg_catalog.float8"                              \
	"        OPERATOR(pg_catalog.*) interval '1 millisecond'))))))"
/* The claims R's rows carry (a key), with the job, key, holder and boot id in columns COLS,
 * go back to their holders: an answer that took them over came once this process stops. */
void cluster_give_back(struct cluster *c, const PGresult *r, const int cols[4]);
extern const struct cluster_row cluster_row_unserved;

/* ---- cluster_lock.c: the instance lock (sent at each connect), the heartbeat, reaping */
extern const struct cluster_row cluster_row_lock, cluster_row_holder, cluster_row_beat,
    cluster_row_reap;

#endif
