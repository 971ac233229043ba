#ifndef PGCROND_SCHED_PRIV_H
#define PGCROND_SCHED_PRIV_H

/* The scheduler's inside, shared by sched.c (timers, overlap, the max_running queue, retries,
 * run bookkeeping) and sched_flow.c (the job graph at run time, catch-up, alert conditions),
 * by sched_pause.c (pause, resume, waited-for runs) and sched_input.c (notifications,
 * triggers, takeover), and read (never written) by sched_view.c for the status; other
 * modules use sched.h. sched.c calls sched_flow.c at a run's start and end; the runs a run's end
 * causes (downstreams, fires that waited for it) sched_flow.c hands back through the loop
 * (sched_run_defer), as sched_fresh.c does its fires, and a run that cannot start ends from the
 * loop too: no call chain goes from a run's end into another run's start and back. */

#include <event2/event_struct.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "admit.h"
#include "clock.h"
#include "config.h"
#include "cron.h"
#include "jobgraph.h"
#include "log.h"
#include "sched.h"
#include "strmap.h"

/* How often the wall clock is compared with the monotonic clock when no timer wakes, and
 * the step that counts as a jump. */
#define CLOCK_CHECK_MS 5000
#define CLOCK_JUMP_US 1000000

struct alerter;
struct exec_pool;
struct metrics_job;
struct plugin;
struct run;

/* Runs in arrival order, linked through their field defer (sched_run_to). */
TAILQ_HEAD(run_list, run);

/* A configuration being put in force, a slice of jobs per loop turn (sched_apply.c). */
struct sched_apply_state {
	int phase;                    /* what is being done; 0: no apply */
	size_t pos;                   /* the next item of the phase */
	const struct pgc_config *old; /* in force before: its jobs not kept go */
	const size_t *gone;           /* OLD's jobs not in the new one (NULL: look) */
	size_t n_gone;
	struct jobgraph graph;     /* the new configuration's */
	bool graph_ok;             /* GRAPH is usable (no cycle, no error) */
	unsigned char *has_edges;  /* per job of the new configuration */
	struct job **edged;        /* jobs whose edges are set again */
	size_t n_edged, cap_edged; /* (out of memory: all jobs are) */
	bool edged_all;
	bool first, tz_changed;
	bool unlink;    /* jobs may have edges to drop (the last graph had edges) */
	bool had_edges; /* this apply's graph has edges */
	bool parity;    /* the value of job.seen that means "visited by this apply" */
	int rc;
	/* the jobs of the configuration in force, by its job numbers (NULL: not known), and of
	 * the new one, filled by the update: a job at the same place in the next configuration
	 * is found without a lookup by name (a random touch of the index per job) */
	struct {
		struct job **now, **next;
		size_t n_now;
	} places;
	size_t slice;          /* jobs per turn at most (a test's); 0: by time */
	struct clock_timer ev; /* the next turn */
	void (*done)(void *arg, int rc);
	void *done_arg;
	struct sched_apply_stats st;
};

struct job {
	struct sched *s;
	/* Its entry in the configuration in force, read there (its name, command, schedule ...),
	 * not copied: 100,000 jobs would keep it twice. A removed job, whose configuration goes,
	 * gets a copy of what its run reads (own_conf). Never NULL. */
	const struct conf_job *conf;
	const struct plugin *plug; /* found once in the registry in force (NULL: not loaded) */
	struct clock_timer
	    timer;           /* armed and disarmed only by sched_job_arm / sched_timer_disarm */
	int64_t next_fire;   /* Unix seconds or CRON_NEVER */
	int64_t last_fire;   /* the last scheduled instant fired (Unix seconds), 0 if none */
	struct run *active;  /* the run started, waiting for a slot, or waiting to retry */
	struct run *pending; /* overlap = queue | replace: the fire to run after it */
	struct job *prev, *next;
	struct strmap_node hnode; /* in the sched's name index: its key is conf's name,
	                           * and moves with it to an equal string (job_update, own_conf) */
	int64_t
	    early_us; /* the instant its timer woke before, to claim it (sched.c: preclaim_ask) */
	struct exec_pool *pool; /* its database's pool, kept at its first run (exec.h) */

	/* ---- sched_flow.c ---- */
	/* (fields grouped by size so that the struct has no holes, its flags one bit each, and
	 * what few jobs use in blocks made at first use: 100,000 jobs) */
	struct job_graph *graph; /* made at its first edge: most jobs have none */
	uint64_t success_seq;    /* flow sequence number of the last success */
	uint64_t start_seq;      /* ... of the last start */
	struct job_more *more;   /* its retry, staleness, notified run: NULL until the first */
	struct fresh_job *fresh; /* sched_fresh.c: NULL for a job without freshness */
	int consecutive;         /* final failures since the last success */
	bool removed : 1;        /* gone from the config; freed when its run ends */
	bool seen : 1;           /* == s->ap.parity: the apply under way has visited it */
	bool own_conf : 1;       /* conf is the job's own copy (removed) */
	bool paused : 1;         /* sched_pause */
	bool paused_owed : 1;    /* a notification or upstream fire came while paused */
	bool alerts_clear : 1;   /* none of the alerts a success ends is raised (on_success
	                          * ended them, condition() raised none since): a success
	                          * asks the alerter nothing */
	bool notify_pending : 1; /* notifications not yet served: a run comes within max_delay,
	                          * so downstreams wait for it as for a running job (triggers.c) */
	bool owed_catchup : 1;   /* its database was unreachable across a fire */
	bool reconnect_owed : 1; /* a listener reconnect owes it a run, which comes after its
	                          * upstreams' catch-up runs, in their graph run */
	bool up_noted : 1;       /* an upstream-caused run it owes is in pending_work (coord.h) */

	/* ---- the last result (status.c) ---- */
	struct job_last *last; /* NULL before its first result (job_last) */
	struct sched_recent
	    *recent; /* its last runs (sched_recent_priv.h); NULL before the first */
};

/* A job's place in the job graph, made at its first edge (kept when it has none again), and
 * its parked fire, which only a job with upstreams has: no slot for it in 100,000 jobs. */
struct job_graph {
	struct job **ups, **downs; /* upstreams / downstreams */
	size_t n_ups, n_downs;
	uint64_t mark;        /* upstream_failed propagation visit mark */
	char *graph_again_id; /* the graph-run id for the run graph_again owes */
	struct run *parked;   /* a fire waiting for a running upstream */
	bool graph_again;     /* upstreams succeeded while it ran: run again after */
};

/* What only jobs with rare features use, made at first use (sched_job_more) and kept while
 * the job lasts: one pointer in each of 100,000 jobs instead of three. */
struct job_more {
	struct job_retry *retry; /* for RUN_RETRY_WAIT, which needs it (sched.c retry) */
	struct job_stale *stale; /* sched_flow.c stale_arm */
	struct run *notify_wait; /* a notification run waiting for the active run to end */
};

/* A job's retry timer and when it fires. */
struct job_retry {
	struct clock_timer ev; /* armed for the next attempt */
	int64_t at_us;         /* when it fires (wall clock, for status) */
};

/* A job's staleness timer and the max_staleness it was armed with. */
struct job_stale {
	struct clock_timer ev; /* armed at last success + max_staleness */
	int64_t ms;
};

/* A job's last result, for the status: made at its first (a run of it ends, or the history
 * has one at start), so that the jobs that never ran keep none (100,000 idle jobs: 10 MB). */
struct job_last {
	char *message; /* its return_message */
	int64_t start_us, end_us;
	int64_t ran_end_us; /* the end of this process's last run of it (run_start) */
	int64_t catchup_s;  /* the latest instant a catch-up run of this process served */
	int64_t success_us; /* its last success (here or in the history); 0 if none known */
	/* its counters in s->metrics, kept at its first recorded run: no lookup by name on
	 * every run (metrics_run) */
	struct metrics_job *counters;
	int64_t runid;     /* its row's runid once known; 0 */
	uint64_t hist_key; /* its history key (hist_start); 0 if read back */
	int attempt;
	int32_t backend_ms; /* how long its last run had a connection (sched.c NAMED_RUN_MS) */
	const char *status; /* one of sched_recent_statuses; NULL before the first */
	char trigger[16];   /* what started it (run.trigger, or the history's row); "" if none */
	char sqlstate[6];   /* "" if none */
};

/* A run's state: the wait it is in, which decides what may happen to it next and which holder
 * has it (docs/layout.md, "A run's states"). sched_run_to() moves a run from one state to
 * another: it refuses a move the table of sched_state.c does not allow, takes the run out of
 * its old state's holder and puts it in the new one's, and keeps the scheduler's counts of the
 * runs claiming and running. Nothing else links or unlinks a run. A run is freed from any
 * state (sched_run_free ends it first). */
enum run_state {
	RUN_DUE,          /* made (a fire, a retry or a wait that is over), held by its caller
	                   * only, for as long as the call that decides where it goes */
	RUN_PENDING,      /* behind the job's active run (job.pending: overlap queue or
	                   * replace, or overlap skip while the active run's claim is asked) */
	RUN_PARKED,       /* waiting for a running upstream (job_graph.parked) */
	RUN_NOTIFY_WAIT,  /* notifications gathered while the job is busy (job_more) */
	RUN_DEFERRED,     /* handed to the loop (sched.flow list): a downstream fire, or one an
	                   * upstream's end released */
	RUN_CLAIMING,     /* the job's active run, waiting for its claim (cluster.h, or a
	                   * pre-claim's answer) */
	RUN_CLUSTER_WAIT, /* the job's active run, claimed; the job's run on another instance
	                   * must end first */
	RUN_QUEUED,       /* the job's active run, waiting for a max_running slot (sched.queue) */
	RUN_RETRY_WAIT,   /* the job's active run, waiting for its retry delay (job_more) */
	RUN_RUNNING,      /* the job's active run, started: its statements or request are under
	                   * way */
	RUN_ENDING,       /* the job's active run, started but not handed to the executor: it
	                   * ends from the loop (sched.ended list), holding its run slot */
	RUN_ENDED,        /* over: recorded (or dropped), about to be freed */
};
#define RUN_STATES (RUN_ENDED + 1)
/* run.skipped */
enum { SKIPPED_NONE, SKIPPED_ROW, SKIPPED_ROWLESS };

/* An HTTP run's wait for its start mark (several instances), made as it starts waiting: woken
 * by the mark's answer (sched_state.c) or a cancel (sched_http.c), it sends the request or ends
 * the run from the loop (sched.c). */
struct run_mark_wait {
	struct event ev;
	char *why; /* why it must send nothing (NULL: it may) */
};

struct run {
	struct job *job;
	enum run_state state; /* sched_run_to() only */
	int64_t scheduled_us; /* 0 for a manual run */
	int64_t queue_at_us;  /* ordering in the max_running queue */
	enum run_trigger trigger;
	int attempt;
	/* what its admission holds (admit.h): set and read by admit()'s functions; what it
	 * holds goes back as it goes to RUN_ENDED (sched_run_to), whatever ended it */
	enum admit_hold adm;
	bool mark_wait; /* its statement waits for its start mark (admit_mark_start, exec
	                 * spec.hold) */
	bool marked;    /* its start is marked (several instances): the cluster may hold a
	                 * wait of its (forgotten at its end: admit_end) */
	bool unmarked;  /* its start mark was refused, or it was dropped waiting for its
	                 * connection or its start mark (sched_drop): it ends skipped, having
	                 * sent nothing */
	bool cancelled; /* an HTTP run cancelled while it waited for its start mark */
	struct run_mark_wait *mark_ev; /* NULL: not waiting for its start mark */
	bool waited;                   /* already waited for its upstreams */
	/* the fires skipped behind it (overlap = skip): the first has its row; of those after it
	 * (sched_skip_rowless), the last has one written as this run ends, from its instant and
	 * trigger and the state this run was in then, whose message it says again
	 * (sched_run_describe): SKIPPED_NONE, SKIPPED_ROW (none after the first yet), or
	 * SKIPPED_ROWLESS + that state */
	uint8_t skipped;
	int64_t rowless_us;
	enum run_trigger rowless_trigger;
	bool noted; /* written in pending_work (of its trigger's kind: sched_work_note) */
	uint64_t hist_key;
	int64_t start_us;
	/* the monotonic clock at its start: its duration is measured on it, so a step of the
	 * host's wall clock while it runs does not change it (its end is START_US plus it) */
	int64_t start_mono_us;
	struct exec_run *er;
	struct httpc_call *hc;       /* an HTTP job's request in flight (sched_http.c) */
	int backend_pid;             /* once connected, 0 before */
	int64_t backend_at_us;       /* when it got the connection (sched_now_us), 0 before */
	int64_t fired_us;            /* when its fire was taken (sched_now_us): its stages */
	struct sched_waiter *waiter; /* told how the run ends (moves to its retry); NULL */
	char *graph_run;             /* shared by the runs one upstream run caused; NULL */
	char **payloads;             /* notification payloads for the plugin */
	size_t n_payloads;
	struct clock_timer slow_ev; /* warn_duration */
	bool slow_armed, slow_alerted;
	TAILQ_ENTRY(run) defer; /* RUN_DEFERRED, RUN_ENDING: in a list the loop drains */
	char *start_error;      /* why it could not start (ended from the loop); NULL */
};

struct sched {
	struct event_base *base;
	struct clock *clock; /* every reading and timer of the scheduler and sched_flow.c */
	bool own_clock;
	struct sched_executor ex; /* exec.h's, or a test's */
	struct httpc *http;       /* HTTP jobs' client (sched_set_http); NULL: none */
	struct hist *hist;
	struct alerter *alerts;
	struct cluster *cluster; /* NULL: no coordination (no history database) */
	struct admit *admit;     /* whether a fire may run here (admit.h), on that cluster */
	/* runs whose start mark was noted and whose end is not written yet: admit_mark_end
	 * forgets their marks (none on a lone instance, which marks nothing) */
	size_t n_marked;
	struct coord *coord;           /* NULL: none (coord.h) */
	struct metrics *metrics;       /* may be NULL (sched_set_metrics) */
	uint32_t (*random)(void *arg); /* retry jitter (sched_set_random); NULL: arc4random */
	void *random_arg;
	char instance[128];
	const struct pgc_config *cfg;
	const cron_tz *tz;
	const struct plugin_registry *plugins;
	struct job *jobs;
	/* Every job of the list, by name: sched_job_find runs for each job of a config load
	 * and each catch-up answer: a walk of the list there would make starting or reloading
	 * 10,000 jobs cost seconds of CPU. A removed job still running stays in it beside its
	 * successor of the same name. */
	struct strmap index;
	int max_running;
	size_t n_running;
	size_t n_claiming;   /* fires waiting for their claim (they hold no run slot) */
	uint64_t unrecorded; /* fires skipped without a row behind a run held for the history */
	long catchups;       /* the start's catch-ups so far (sched_flow.c: CATCHUPS_TOLD) */
	struct sched_queue queue;
	uint64_t seq;
	uint64_t flow_seq;
	struct clock_timer clock_ev;
	/* sched_warm.c: the timer that warms the pool before the instant WARM_FOR (Unix s, 0:
	 * none armed); the last instant warmed; whether the start-up's warm-up was armed, and
	 * whether it is the one armed now */
	struct clock_timer warm_ev;
	int64_t warm_for, warm_done;
	bool warm_started, warm_startup;
	int64_t clock_offset_us; /* wall clock minus monotonic clock at the last check */
	int64_t db_offset_us;    /* sched_set_db_offset(): added to the clock's time */
	bool draining;
	bool grace_cut; /* a second sched_drain() ended the grace period early */
	/* Runs that could not start (RUN_ENDING), ended from the loop (never inside the call that
	 * started them, as the executor ends runs) */
	struct event ended_ev;
	struct run_list ended;
	/* fires handed to the loop (RUN_DEFERRED, sched_run_defer: downstream runs, parked runs
	 * released, catch-up and freshness fires): a run's end never starts another run inside it
	 */
	struct event flow_ev;
	struct run_list flow;
	bool catchup_asked;
	struct sched_recent_store *recent_store; /* sched_recent.c: rows for jobs not here yet */
	size_t recent_runs_read, recent_failures_read; /* ... and what it read (for the log) */
	struct event grace_ev;
	struct event drained_ev;
	void (*drained)(void *);
	void *drained_arg;
	struct sched_apply_state ap; /* sched_apply.c */
	/* sched_fresh.c: one change check per database; those dropped while it was in flight */
	LIST_HEAD(, fresh_db) fresh_dbs, fresh_orphans;
	int64_t fresh_pub_us;   /* the freshness state last published (wall) ... */
	uint64_t fresh_pub_sig; /* ... and what it said */
	char fresh_key[33];     /* sched_fresh.c: the key of the change prints (hex) */
	/* jobs paused by name (sched_pause), kept across reloads: a job that comes back by
	 * that name is paused */
	char **paused;
	size_t n_paused, cap_paused;
	/* the runs that wait, published in the history database (pgcrond.view_backlog): armed
	 * by a run's move (sched_run_to), fired BACKLOG_PUBLISH_US later; what was sent last */
	struct clock_timer backlog_ev;
	uint64_t backlog_sig;
};

/* sched_state.c: the scheduler's wall clock and its monotonic clock (microseconds); a job by
 * name (not a removed one). */
int64_t sched_now_us(const struct sched *s);
int64_t sched_mono_us(const struct sched *s);
/* sched_state.c: whether runs are held back for a history that cannot keep up with them
 * (hist_backlogged): they wait for a slot until it catches up. */
bool sched_held_back(const struct sched *s);
struct job *sched_job_find(struct sched *s, const char *name);
/* sched_flow.c: J's struct job_more, made if it has none yet (NULL: out of memory). */
struct job_more *sched_job_more(struct job *j);
/* sched_state.c: J's notification run waiting for its active run (NULL: none). */
struct run *sched_job_notified(const struct job *j);
/* sched_state.c: J's zone: its own, else the daemon's. */
const cron_tz *sched_job_tz(const struct job *j);
/* sched_state.c: a run of J's fire at SCHEDULED_US (0 for a manual run) with TRIGGER, due
 * (NULL: out of memory, logged) / R ended if it was not, and
 * freed with what it holds: its job lock, its pending work (coord.h), its marks, its waiter (told
 * it was cancelled). */
struct run *sched_run_new(struct job *j, int64_t scheduled_us, enum run_trigger trigger);
void sched_run_free(struct run **r);
/* Tell R's waiter (if any) how it ended, once; the waiter is detached. */
void sched_run_answer(struct run *r, const char *status, const char *message, const char *sqlstate);
/* R's record in the history, started at START_US, its row as far as its job and fire say
 * (SHOWN: the command it says it runs, NULL: the job's, cut to COMMAND_KEEP): its start
 * (STATUS NULL; with its backend's pid if it has one) or, for a fire that does not run, its
 * complete row (hist_record). Returns its history key, 0 without a history. */
uint64_t sched_hist_put(const struct run *r, int64_t start_us, const char *shown,
                        const char *status, const char *message);
/* A fire that will not run (*RP, freed and set to NULL): one complete history row (ST:
 * skipped, upstream_failed); ... skipped, with a log line. */
void sched_record(struct run **rp, enum sched_status st, const char *message);
void sched_record_skipped(struct run **rp, const char *message);
/* ... answered, logged and counted (pgcrond_job_runs_total) as one, without the row: a fire
 * skipped behind run BEHIND, whose first skipped fire has it (sched_fire_run); the last such
 * fire gets its row as BEHIND ends */
void sched_skip_rowless(struct run **rp, struct run *behind, const char *message);
/* The row of the last fire skipped behind R without one (sched_skip_rowless), if any: written
 * as R ends, or before what its message says of R changes */
void sched_rowless_row(struct run *r);
/* *RP, a fire this instance skips without a claim (WHY: its own run still under way, a missed
 * fire), is logged at once (unless LOGGED: the caller did) and recorded `skipped` only if
 * this instance gets the fire's claim (admit_skip): with several instances another one may
 * have run or skipped it. Freed either way. */
void sched_skip_claimed(struct run **rp, const char *why, bool logged);
/* R's fire, as admission sees it (admit.h). */
struct admit_fire sched_admit_fire(const struct run *r);
/* The bytes of a command a history row keeps (cut back to a whole character), a run's or a
 * skip's alike */
#define COMMAND_KEEP 1024
/* COMMAND (may be NULL) as a history row keeps it: itself when it fits, else cut into BUF
 * (COMMAND_KEEP bytes) */
const char *sched_command_kept(const char *command, char *buf);
/* R waits as pending work (of its trigger's kind), due at DUE_US (0: now); the row goes as R
 * starts or ends (sched_run_to). */
void sched_work_note(struct run *r, int64_t due_us);
/* Shutdown drops R, which waited (WHY says so): its pending work stays written for another
 * instance or this one's next start (coord.h); returns the message to record. */
const char *sched_work_keep(struct run *r, const char *why);
/* sched_pause.c: record J's runs that wait skipped (WHY) and free them: its pending, parked
 * and notified runs, and its active one before it started; how many. */
int sched_job_drop_waiting(struct job *j, const char *why);
/* R started but sent nothing yet (no connection or start mark): it ends skipped (WHY), or false */
bool sched_run_withdraw(struct run *r, const char *why);
/* sched_state.c: J's runs that wait, and for what, into OUT (SCHED_MAX_WAITING); how many;
 * the timer's callback that publishes them all (sched.backlog_ev), armed when what waits
 * changed (R moved, or got its backend or none: sched_backlog_changed). */
size_t sched_waiting_of(const struct job *j, struct sched_waiting *out);
void sched_backlog_cb(void *arg);
void sched_backlog_changed(struct sched *s, const struct run *r);
/* A change is published within this (one statement for all the changes meanwhile). */
#define BACKLOG_PUBLISH_US 1000000
/* The runs published at most (in the jobs' order): the 15,000 catch-up runs of a restart
 * would make a statement of a second, every second, on the history's session. */
#define BACKLOG_PUBLISH_MAX 1000
/* sched_state.c: move R to state TO (the table there), out of its state's holder and into
 * TO's. False if R keeps its state and holder: a move the table does not allow, or into a
 * job's slot another run holds or its job has no block for (a bug: logged), or the queue out
 * of memory (the caller drops R). Keeps sched.n_claiming and sched.n_running; then does what
 * follows the move, as the same table says: admission told the fire runs (admit_ran) or
 * given back what the run holds of several instances (admit_end), the backlog published, a
 * stop's end checked. */
bool sched_run_to(struct run *r, enum run_state to);
/* R, due, is fired from the loop (sched_deferred_cb): how the files below sched.c start a run
 * without calling up into it, and a run's end never starts another run inside it. */
void sched_run_defer(struct run *r);
/* R, started, could not be handed to the executor: it ends from the loop with ERR
 * (sched_ended_cb), as a run the executor ended would. / R's "started" line. */
void sched_run_end_later(struct run *r, const char *err);
void sched_run_log_started(const struct run *r);
/* While draining: once no run is claiming, queued or running, the drain's callback goes
 * (from the loop). sched_run_to() calls it as those counts drop; sched_drain() once. */
void sched_check_drained(struct sched *s);
/* Whether the table allows FROM -> TO; the state's name for log lines. */
bool sched_run_may(enum run_state from, enum run_state to);
const char *sched_run_state_name(enum run_state st);
/* What the job's active run A is doing in state ST, for a fire that meets it ("previous run
 * still running (started 10:00:01Z)"). */
void sched_run_describe(const struct run *a, enum run_state st, char *out, size_t outlen);
/* The message of a fire skipped behind a run doing WHAT (sched_run_describe), overlap = skip */
#define SCHED_SKIP_FMT "%s; overlap = skip"
/* A line of job J's log (J as log_msg's context): the one place its lines are written. */
void sched_job_log(const struct job *j, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Start R or queue it for a max_running slot; R becomes the job's active run. */
void sched_run_admit(struct run *r);
/* Apply the overlap policy to a ready fire R (takes R). */
void sched_fire_run(struct run *r);
/* sched_state.c: job J owes an upstream-caused run (GRAPH_RUN may be NULL) / no longer;
 * exec_run_spec's on_pid and on_xid of a run. */
void sched_job_owes(struct job *j, const char *graph_run);
void sched_job_owes_not(struct job *j);
void sched_on_pid(void *arg, int pid);
void sched_on_xid(void *arg, const char *xid, const char *server, bool commit_waits);
/* sched_state.c: mark R's start before it is handed to the executor (r->mark_wait: its
 * statement waits for the mark); 1, 0, or -1 if R must not run. */
int sched_mark_start(struct run *r);
/* sched_warm.c: a job's timer is armed for INSTANT (Unix s) at NOW_US (sched_now_us): the
 * pool is warmed before it (exec_warm) / the warm-up timer's callback / no more warm-ups (a
 * stop) */
void sched_warm_note(struct sched *s, int64_t instant, int64_t now_us);
void sched_warm_cb(void *arg);
void sched_warm_stop(struct sched *s);
/* sched_warm.c: at log level debug, where scheduled run R's lateness went (its stages) */
struct exec_outcome;
void sched_log_stages(const struct run *r, const struct exec_outcome *o);
/* With several instances, a scheduled fire is claimed PRECLAIM_LEAD_US before its instant
 * (admit_early), so that its run starts at the instant instead of a round trip (and the
 * claims of a busy second) after it. */
#define PRECLAIM_LEAD_US 100000
/* sched.c: the timers and fires, for the other files. */
void sched_job_disarm(struct job *j);
/* Arm J's timer for j->next_fire, from NOW_US: the caller's reading of sched_now_us, taken
 * for its callback, not again for each step of it */
void sched_job_arm(struct job *j, int64_t now_us);
bool sched_job_schedulable(const struct job *j);
void sched_job_schedule(struct job *j, int64_t prev);
void sched_job_fire(struct job *j, int64_t scheduled_us, enum run_trigger trigger);
void sched_admit_queued(struct sched *s);
/* Shared by sched.c (timers, runs) and sched_jobs.c (the job index, lifetime). */
void sched_timer_disarm(struct job *j);
void sched_job_free(struct job **jp);
void sched_job_timer_cb(void *arg);
void sched_job_unlink_free(struct job *j);
/* sched_plugin.c: a plugin job's statements for the executor, built by its plugin (values as
 * parameters) behind the guards of the views it refreshes CONCURRENTLY (at most
 * SCHED_MAX_GUARDS), into B, whose fields they point into; COMMAND: what its history row says
 * it runs. 0, or -1 with the reason in ERR; B is freed by sched_plugin_stmts_free either way. */
#define SCHED_MAX_GUARDS 8
struct pgc_run;
struct exec_stmt;
struct run_stmts {
	struct exec_stmt *v; /* N statements, the guards first; allocated */
	size_t n;
	struct pgc_run *pr;                         /* what the plugin built, which V points into */
	char guard_names[SCHED_MAX_GUARDS][512];    /* the guards' parameters: quoted view names */
	const char *guard_params[SCHED_MAX_GUARDS]; /* ... as the statements' parameter arrays */
};
int sched_plugin_stmts(struct run *r, struct run_stmts *b, char *command, size_t cmdlen, char *err,
                       size_t errlen);
void sched_plugin_stmts_free(struct run_stmts *b);
void sched_clock_cb(void *arg);
void sched_ended_cb(evutil_socket_t fd, short what, void *arg);
void sched_deferred_cb(evutil_socket_t fd, short what, void *arg);

/* sched_apply.c: the apply under way ends now, in this call (shutdown, sched_free). */
void sched_apply_finish(struct sched *s);
void sched_apply_clear(struct sched *s);

/* sched_http.c: an HTTP job's run (its history text is job_kind_command's). Sending R's
 * request, whose response goes to ON_DONE (0, or -1 with ERR: R must end with it); how R
 * ended, read from its response RESP (its message into MSG); whether R started and waits for
 * its start mark, nothing sent (run.mark_ev; defined in sched_state.c, beside the run's
 * states); stopping R (true), its request in flight or its wait for the mark, ending it
 * cancelled with WHY. */
struct httpc_response;
struct flow_outcome;
int sched_http_submit(struct run *r, void (*on_done)(void *arg, const struct httpc_response *resp),
                      char *err, size_t errlen);
void sched_http_outcome(const struct run *r, const struct httpc_response *resp,
                        struct flow_outcome *out, char *msg, size_t msglen);
bool sched_http_unsent(const struct run *r);
bool sched_http_cancel(struct run *r, const char *why);

#endif
