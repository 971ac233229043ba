#ifndef PGCROND_CLUSTER_H
#define PGCROND_CLUSTER_H

/* Several pgcrond instances on one history database (DESIGN.md "Scaling past one machine";
 * docs/several-instances.md). Coordination is PostgreSQL's own, on pgcrond's own
 * session of the history database (ownsess.h, shared with the history):
 *
 * - identity: its row in pgcrond.instance records the session that holds its name (backend
 *   pid and start); a second live instance of the same name sees that session alive and the
 *   heartbeat moving, and refuses to start. No advisory lock: any role may take one
 *   (docs/security.md "Locks and notifications");
 * - heartbeat: every CLUSTER_HEARTBEAT_MS (or a quarter of a shorter cluster_dead_after)
 *   the instance's row in pgcrond.instance, with its cluster_dead_after;
 * - claims: before a run starts, one row in pgcrond.fire_claim per (job, fire), taken with
 *   INSERT ... ON CONFLICT DO NOTHING; fires due together share one statement;
 * - overlap: a granted claim also takes the job's row in pgcrond.job_lock, held until the
 *   run ends (cluster_release); a dead or restarted instance's rows hold nothing;
 * - liveness: an instance whose recorded session is gone, or whose heartbeat is older
 *   than its own cluster_dead_after (CLUSTER_DEAD_MS by default), is dead: the first survivor to
 * see it closes its running rows (naming it and when it was last seen) and hands them to the
 * scheduler for retry; after a reconnect of its own (the server restarted or failed over: every
 * lock went with it) an instance judges no other for CLUSTER_DEAD_MS (or its longer
 * cluster_dead_after), time for them to come back;
 * - recovery: a server in recovery (a standby) gets no claim, so nothing runs, and the
 *   connection is retried every CLUSTER_RECOVERY_RETRY_MS until it reaches a primary.
 *
 * Never blocks the loop; every callback is called from the loop, never from inside the
 * call that asked for it. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster_types.h"

struct event_base;
struct cluster;

#define CLUSTER_HEARTBEAT_MS 5000
#define CLUSTER_DEAD_MS 20000
#define CLUSTER_RECOVERY_RETRY_MS 2000
/* This host's clock may be this far off the history database's (measured at each heartbeat)
 * before the instance claims nothing: an instance ahead would win every claim and run fires
 * early by its offset. */
#define CLUSTER_MAX_OFFSET_MS 1000

struct sched;
struct hist;

/* Called on the loop. SCHED and HIST are the targets of the hooks that take them, ARG that of
 * the others. */
struct cluster_hooks {
	/* The instance name is held by another live instance, or the history database's server
	 * is one pgcrond does not support: MESSAGE says which, or is NULL when another
	 * connection to that server said it already (conndrv_tell_too_old); the daemon stops
	 * (exit 78). */
	void (*refused)(void *arg, const char *message);
	/* The name is ours (the lock is held): rows an earlier process of ours left running
	 * may now be closed (hist_open_orphans). Called after each (re)connect. */
	void (*identity)(void *arg);
	/* A dead instance's running row was closed: apply the retry policy. */
	void (*orphan)(struct sched *s, const struct cluster_orphan *o);
	/* Instance NAME was found dead by this one (after its orphans): its pending work is
	 * this instance's to take over (coord.h). May be NULL. */
	void (*reaped)(void *arg, const char *name);
	/* A notification on channel CLUSTER_CHANNEL (LISTENed after each connect): PAYLOAD is
	 * a hint only, never an instruction (coord.h reads the rows it points at); NULL once
	 * the LISTEN after a connect is answered (or failed): every kind is read. May be NULL. */
	void (*notified)(void *arg, const char *payload);
	/* Runs wait for the jobs' connections (a burst): the locks of runs that ended may wait
	 * (60 ms at most), so that their statement does not take the server's CPU from the runs
	 * still to start. cluster_wake() sends them sooner. May be NULL. */
	bool (*busy)(void *arg);
	/* A heartbeat measured the history database's clock: OFFSET_US is its time minus this
	 * host's (within CLUSTER_MAX_OFFSET_MS; beyond it this instance claims nothing, and
	 * this is not called). May be NULL. */
	void (*clock_offset)(struct sched *s, int64_t offset_us);
	/* Whether claims are answered alone changed (cluster_lone): SINCE_US, when (Unix µs) this
	 * instance began to run alone without a break (no other instance's claim got through
	 * since), and UNTIL_US, until when (monotonic, clock_mono_us) that holds without another
	 * heartbeat; both 0 when it does not run alone. Told as the state, the lease or the
	 * connection change, never per claim (the history writes the rows of runs started in
	 * that period without looking for another instance's claim: hist_set_lone). Not called
	 * once cluster_close() began. May be NULL. */
	void (*lone)(struct hist *h, int64_t since_us, int64_t until_us);
	void *arg;
	struct sched *sched;
	struct hist *hist;
};

/* The channel instances wake each other on (coord.h). */
#define CLUSTER_CHANNEL "pgcrond_cluster"

/* Connects at once to CONNINFO (the history database, DB_NAME in the configuration) on BASE.
 * DB_NAME, INSTANCE and BOOT_ID are copied. Returns 0 or a negative errno. */
int cluster_open(struct event_base *base, const char *db_name, const char *conninfo,
                 const char *instance, const char *boot_id, const struct cluster_hooks *hooks,
                 struct cluster **out) __attribute__((warn_unused_result));
/* Clean stop: marks the instance stopped (best effort, bounded), releases the name. No
 * callback is called afterwards, also not for claims still waiting. */
void cluster_close(struct cluster **c);
/* Once per process, after the instance's name is held: the scheduled fires an earlier
 * process of this instance claimed and never ran (it was killed between a claim and the
 * run's start) come back as orphans (cluster_hooks.orphan, unserved) when a later fire of
 * the job was served since; the start's catch-up serves the others. Call it when the
 * history has no record of an earlier process left to write (hist_pending() == 0): a
 * record still in the spill file would make its run look unserved. */
void cluster_serve_unserved(struct cluster *c);
/* Another instance stopped or was found dead (a NOTIFY, a wake-up only), or this instance's
 * jobs were published: serve the scheduled fires the stopped instances claimed at their
 * instant and never ran, and those a dead instance's reaper left to this one, which defines
 * the jobs as the dead one did (hooks.orphan, unserved and stopped set). No-op without a
 * connection, and until this instance's jobs are published. */
void cluster_serve_stopped(struct cluster *c);
/* After a heartbeat that found another instance's heartbeat late by a claim's lease (only
 * then is the statement sent), with other instances live: serve the scheduled fires a live but
 * silent instance claimed and has not started, once the instant is past by its heartbeat's
 * period and a margin (half that period, at least 1 s) and it has not beaten since the
 * instant (frozen, cut off, its loop stalled): hooks.orphan, unserved and silent set. The
 * claim is taken in the database, so the holder's run, if it comes, is refused its start
 * (cluster_note_start). An answer that comes once this process is stopping gives the
 * claims back to their holders. No-op without schema steps 17 and 18 or a connection. */
void cluster_serve_leased(struct cluster *c);
/* This process is stopping (its scheduler drains): it takes over nothing more, neither
 * another stopped instance's fires nor its pending work (coord.c), which it could not run. */
void cluster_stopping(struct cluster *c);
bool cluster_is_stopping(const struct cluster *c);
/* Run RUN_KEY (hist_run_key) of this process begins: a run of job JOB serving
 * the scheduled fire SCHEDULED_S (Unix s; 0 if it serves none, or is a retry), holding the
 * job's lock (and that fire's claim) if LOCKED. Marked in pgcrond.run_start (schema steps 17
 * and 18; nothing without them), so that an instance that finds this one dead never serves
 * that fire's claim again (sql_reap). With FN, the run waits to send its statement: FN(ARG,
 * OK, WHY) is called once from the loop when the mark is written (OK), or cannot be, or the
 * claim or the job's lock is no longer ours (WHY says so; the run must send nothing). Returns 1 if
 * FN will be called, 0 if nothing is marked (the run goes on), -1 if the mark cannot be noted (out
 * of memory, too many waiting: the run must not go on when FN was given). FENCED (NULL: none)
 * names the class of a command whose commit cannot be asked (job_kind_once):
 * the history row of a run closed by a takeover says it may have committed. */
int cluster_note_start(struct cluster *c, const char *run_key, const char *job, int64_t scheduled_s,
                       bool locked, const char *fenced, cluster_mark_fn fn, void *arg);
/* The run ARG no longer waits for its mark (it ended): its FN is not called. */
void cluster_mark_forget(struct cluster *c, void *arg);
/* Whether runs are marked now: another instance was live at a heartbeat of this process, from then
 * on (a lone instance is taken over by no one: its runs cost nothing extra). */
bool cluster_marks_runs(const struct cluster *c);
/* Marked run RUN_KEY runs in transaction XID of the server that started at SERVER
 * (exec_run_spec.on_xid): so that an instance that closes the run after this one died asks
 * whether it committed before it retries it (sql_reap). NULL XID: the id noted is not the
 * run's. With FN, the run's COMMIT waits for the id to be written (with a NULL XID: the run's
 * statement, sent again as written, waits for the id to be written off, since a takeover
 * retries a run whose id it finds rolled back): FN(ARG, OK, WHY) as cluster_note_start's,
 * and the return value likewise (0: not marked, the run may go on; -1: it may not). Written
 * only while this process's instance row says it is live. */
int cluster_note_xact(struct cluster *c, const char *run_key, const char *xid, const char *server,
                      cluster_mark_fn fn, void *arg);
/* Run RUN_KEY's end is in the history (hist_written_fn): its row goes. True if its start
 * was marked (cluster_note_start). */
bool cluster_xact_end(struct cluster *c, const char *run_key);

/* Ask for the claim of JOB's fire KEY (see sql/pgcrond--4.sql for the keys). WINDOW_MS > 0:
 * a turn-claim (notifications) that succeeds when the last claim of KEY is ours or older
 * than WINDOW_MS. FN(ARG, ...) is called once from the loop; WHY is a short reason for
 * TAKEN/REFUSED/UNCLAIMED (borrowed). Returns 0 or -ENOMEM (FN is then not called). */
int cluster_claim(struct cluster *c, const char *job, const char *key, int64_t window_ms,
                  cluster_claim_fn fn, void *arg) __attribute__((warn_unused_result));
/* JOB's fire (TRIGGER, SCHEDULED_US, GRAPH_RUN or NULL, ATTEMPT: one with a
 * key, cluster_fire_key) granted at once, without its key, where a lone instance answers it
 * (cluster_lone): true if GRANTED, false if it must be asked with cluster_claim. Its run
 * takes no job lock, unless the instance claims again while it runs: cluster_lone_hold(C, JOB)
 * then counts it among the runs whose locks the switch takes (false: out of memory), and it
 * gives that lock back as a granted claim's run does (cluster_release). */
bool cluster_lone_grant(struct cluster *c, const char *job, enum run_trigger trigger,
                        int64_t scheduled_us, const char *graph_run, int attempt);
bool cluster_lone_hold(struct cluster *c, const char *job);
/* Whether other instances were live at the last contact and nothing every instance shares
 * stops them claiming (a standby, an old schema): a fire this instance does not claim (its
 * claim REFUSED for a cause of its own, the history database unreachable from here or this
 * host's clock off; or one it leaves as it stops) they claim and run, and it is theirs to
 * record.
 * Whether one of them did is known only once this instance can ask again (admit.c: admit_park
 * asks with cluster_settle_refused). */
bool cluster_served_elsewhere(const struct cluster *c);
/* Ask again for the claims of N fires (JOBS[i], KEYS[i]) that were REFUSED while other
 * instances were live, once this instance can claim: each fire no other instance claimed is
 * claimed for this one (without the job's lock: it is not run, only recorded) and returned
 * as a row (job_name, fire_key) to FN, as cluster_submit's. 0, -ENOTCONN or -ENOMEM (FN is
 * then not called). */
struct pg_result;
typedef void (*cluster_result_fn)(void *arg, const struct pg_result *res, const char *err,
                                  const char *sqlstate);
int cluster_settle_refused(struct cluster *c, size_t n, const char *const *jobs,
                           const char *const *keys, cluster_result_fn fn, void *arg)
    __attribute__((warn_unused_result));
/* A GRANTED claim took the job's lock (its row in pgcrond.job_lock): release it when the
 * run ends (sent after a reconnect if the connection is down meanwhile). */
void cluster_release(struct cluster *c, const char *job);
/* Forget every waiting claim of ARG: FN is not called for them. */
void cluster_claim_forget(struct cluster *c, void *arg);

/* The claim key of a run (sql/pgcrond--4.sql): into OUT, with *WINDOW_MS > 0 for a turn
 * (notifications; DEBOUNCE_MS is the job's debounce). Returns 1, 0 when the run needs no
 * claim (a manual run is claimed by its request id, an @reboot run belongs to its start, a
 * retry of those is made by the instance that ran them), or -ENOSPC. Pure. */
int cluster_fire_key(enum run_trigger trigger, int64_t scheduled_us, const char *graph_run,
                     int attempt, int64_t debounce_ms, char *out, size_t len, int64_t *window_ms)
    __attribute__((warn_unused_result));

/* The jobs this instance defines (CFG's; called at start and after each reload): they are
 * published in pgcrond.instance_job with a hash of each definition, in parts made as they
 * are sent, and a job that another live instance defines differently is logged (a rolling
 * config change). CFG is kept (config_ref) until the next call or cluster_close. 0 or
 * -ENOMEM. On the event loop. */
struct pgc_config;
struct conf_job;
/* SORTED: NULL, or CFG's jobs already sorted by name (strcmp), as config_diff.h gives them
 * off the loop, taken (*SORTED set to NULL, also on error; *SORTED NULL: sorted here). */
int cluster_set_jobs(struct cluster *c, const struct pgc_config *cfg,
                     const struct conf_job ***sorted);
/* A hash of job J's definition, as 16 hex digits into OUT (LEN >= 17). Pure. */
void cluster_job_hash(const struct conf_job *j, char *out, size_t len);

/* A statement of another module (coord.c) on the coordination connection, after the
 * heartbeat and before the claims. FN(ARG, RES, ERR, SQLSTATE) is called once from the loop:
 * RES the tuples (NULL on failure; borrowed), ERR and SQLSTATE the failure ("" if none).
 * SQL must be a string that outlives the call (a literal); PARAMS are copied. Returns 0,
 * -ENOTCONN when the connection is not ready (FN is then not called), or -ENOMEM. */
int cluster_submit(struct cluster *c, const char *sql, int n, const char *const *params,
                   cluster_result_fn fn, void *arg) __attribute__((warn_unused_result));
/* cluster_submit, also once the stop has begun and while cluster_close waits for it: the
 * statement goes before the stop's own, within its grace (what an answer that comes while
 * stopping hands over to the other instances). */
int cluster_submit_closing(struct cluster *c, const char *sql, int n, const char *const *params,
                           cluster_result_fn fn, void *arg);
/* A cluster_result_fn for a statement whose answer matters only if it failed: ARG is a string
 * literal saying what could not be done and what follows from it, logged with the error. */
void cluster_warn_failed(void *arg, const struct pg_result *res, const char *err,
                         const char *sqlstate);
/* Whether this instance runs alone: no other instance is live, and a claim is answered at
 * once without a statement (docs/several-instances.md "An instance alone"):
 * nothing is claimed ahead of its instant. */
bool cluster_lone(const struct cluster *c);
/* FN(ARG) is called from the loop each time this instance claims again after it ran lone
 * (FN NULL: no longer). / Whether this process runs lone now (from going lone to claiming
 * again, not at each fire): it claims nothing before an instant, marks no run
 * (cluster_marks_runs), takes no job lock and purges nothing; its claims are answered at
 * once while its heartbeat is recent. */
void cluster_set_again_fn(struct cluster *c, void (*fn)(void *arg), void *arg);
bool cluster_lone_on(const struct cluster *c);
/* Whether this process does not know yet if it is alone: from its start to the answer of its
 * first heartbeat (and of the go_lone that follows, if any), which go before its claims. */
bool cluster_lone_undecided(const struct cluster *c);
/* Whether the connection is up with the name's lock held (statements can be submitted). */
bool cluster_ready(const struct cluster *c);
/* The other instances live at the last heartbeat, "a, b" ("" if none; borrowed). */
const char *cluster_peers(const struct cluster *c);
/* This instance's name and boot id (borrowed). */
const char *cluster_instance(const struct cluster *c);
const char *cluster_boot_id(const struct cluster *c);

/* For status and tests. */
struct cluster_stats {
	bool connected;      /* and the name's lock is held */
	bool in_recovery;    /* the last server reached was a standby */
	uint64_t claims;     /* asked */
	uint64_t granted;    /* ours */
	uint64_t taken;      /* another instance's */
	uint64_t statements; /* claim statements sent (claims share them) */
	size_t peers_live;   /* other instances live at the last heartbeat */
	bool clock_offset_known;
	int64_t clock_offset_ms; /* the database's clock minus this host's, at the last beat */
};
void cluster_get_stats(const struct cluster *c, struct cluster_stats *out);

/* This host's clock offset from the database's: a statement sent at SENT_WALL_US (this
 * host's wall clock) answered after RTT_US with the database's clock DB_US. Sets *OFFSET_US
 * (database minus host); true when it is more than CLUSTER_MAX_OFFSET_MS off even allowing
 * for the round trip. Pure. */
bool cluster_clock_offset(int64_t sent_wall_us, int64_t rtt_us, int64_t db_us, int64_t *offset_us);

/* The offset the scheduler fires by (cluster_hooks.clock_offset): of the recent samples, the
 * one with the shortest round trip, whose error is at most half of it (as NTP's clock filter
 * does). A kept sample's round trip counts CLUSTER_OFFSET_AGE_US longer at each new sample,
 * so that a real change of either clock is followed even when no round trip is as short
 * again: at once over a round trip as short as the kept one's, after N beats over one
 * N * 5 ms longer (a beat every 5 s: a minute for 60 ms). A step beyond
 * CLUSTER_MAX_OFFSET_MS starts it afresh. A loaded host reads some answers late: each such
 * round trip is long, its middle a guess tens of milliseconds off, and taking every sample as
 * it came moved the fires' clock back and forth (a queue job's runs then overlapped in its
 * history). */
#define CLUSTER_OFFSET_AGE_US 5000
struct cluster_offset_filter {
	bool known;
	int64_t offset_us, rtt_us; /* the sample kept, its round trip as aged */
};
/* Feed F a sample (OFFSET_US measured over RTT_US); returns the offset to fire by. Pure. */
int64_t cluster_offset_filter(struct cluster_offset_filter *f, int64_t offset_us, int64_t rtt_us);

/* The runs the busy hook waited for are done: send what waited for them. */
void cluster_wake(struct cluster *c);

#endif
