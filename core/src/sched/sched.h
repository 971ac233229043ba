#ifndef PGCROND_SCHED_H
#define PGCROND_SCHED_H

/* The scheduler: one timer per job on its clock (clock.h), armed at the job's next instant
 * (cron_next), the overlap policy per job (skip | queue | replace), the global max_running
 * cap with a queue ordered by scheduled instant, and the bookkeeping of each run (history
 * row, log line). Runs are carried out by the executor (exec.h, or a test's: struct
 * sched_executor). See DESIGN.md "Execution". */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "cron.h"

struct event_base;
struct exec;
struct hist;
struct sched;
struct plugin_registry;

/* EX runs the statements; H records runs (may be NULL: nothing is recorded). */
int sched_new(struct event_base *base, struct exec *ex, struct hist *h, struct sched **out)
    __attribute__((warn_unused_result));
/* The executor the scheduler hands runs to: exec.h's functions themselves (sched_new), or a
 * unit test's, with exec.h's signatures (its own state passed as CTX, converted). */
struct exec_run;
struct exec_run_spec;
struct sched_executor {
	/* Start a run, as exec_submit(): SPEC is copied; SPEC->on_done is called exactly once,
	 * from the loop, never from inside submit or cancel. 0 with *OUT, -ENOENT (no such
	 * database), -ENOMEM. */
	int (*submit)(struct exec *ctx, const struct exec_run_spec *spec, struct exec_run **out);
	/* Stop RUN, as exec_cancel(): it ends through its on_done, cancelled, with MESSAGE. */
	void (*cancel)(struct exec_run *run, const char *message);
	/* Watch DATABASE until it answers again, then call sched_db_reachable(), as
	 * exec_probe(). 0 or a negative errno. */
	int (*probe)(struct exec *ctx, const char *database);
	/* N runs on DATABASE are due in a moment: make its connections ready, as exec_warm().
	 * May be NULL (nothing is warmed). */
	void (*warm)(struct exec *ctx, const char *database, size_t n);
	/* A run submitted with spec.hold sends its statement (GO) or ends with WHY, as
	 * exec_release(). May be NULL (no run is held). */
	void (*release)(struct exec_run *run, bool go, const char *why);
	/* Stop RUN if nothing of it was sent, as exec_withdraw(): true if it ends through its
	 * on_done, cancelled, with MESSAGE. May be NULL (none is). */
	bool (*withdraw)(struct exec_run *run, const char *message);
	/* Start no run any more, as exec_halt(): before the runs are cancelled at the end of a
	 * stop's grace period. May be NULL. */
	void (*halt)(struct exec *ctx);
	struct exec *ctx;
};
/* exec.h's executor EX as a sched_executor (what sched_new() uses). */
struct sched_executor sched_exec_executor(struct exec *ex);
/* sched_new() with the clock CLOCK (borrowed until sched_free(): clock.h, real or
 * simulated) and the executor EX (copied; its ctx borrowed). */
struct clock;
int sched_new_with(struct event_base *base, struct clock *clock, const struct sched_executor *ex,
                   struct hist *h, struct sched **out) __attribute__((warn_unused_result));
/* DATABASE answers again after failed runs (the executor's probe): jobs owed a catch-up run
 * get it. sched_new() wires this to exec.h itself. */
void sched_db_reachable(struct sched *s, const char *database);
/* Fire by the history database's clock: OFFSET_US is its time minus this host's, as the
 * cluster's heartbeat measured it (cluster_hooks.clock_offset). The scheduler's time (fires,
 * their lateness, runs' starts) is the host's plus the offset applied. A change smaller than
 * SCHED_DB_OFFSET_MIN_US is not applied (the measurement's own noise, half a round trip);
 * a larger one re-arms the job timers. */
#define SCHED_DB_OFFSET_MIN_US 20000
void sched_set_db_offset(struct sched *s, int64_t offset_us);
/* Stops every timer; runs still going are forgotten (drain first). */
void sched_free(struct sched **s);
/* HTTP jobs' requests go through C (borrowed until sched_free() or the next call; NULL:
 * HTTP jobs fail, saying there is no client). */
struct httpc;
void sched_set_http(struct sched *s, struct httpc *c);

/* Make CFG's jobs the scheduled ones. A job that keeps its name keeps its runtime state
 * (running run, queued fire); a changed schedule is re-armed; a removed job stops firing and
 * its running run finishes. CFG, TZ and PLUGINS (the loaded plugins of CFG's plugin jobs;
 * may be NULL if there are none) are borrowed until the next sched_apply() or sched_free().
 * FIRST: the daemon is starting, so @reboot jobs fire now. */
int sched_apply(struct sched *s, const struct pgc_config *cfg, const cron_tz *tz,
                const struct plugin_registry *plugins, bool first)
    __attribute__((warn_unused_result));

/* The same, in slices from the loop, so that fires due meanwhile are not held up: at 100,000
 * jobs every job must be pointed at the new configuration (about 100 ms in one turn). Each
 * loop turn takes up to 8,192 jobs or 2 ms of them, then timers and connections go. Until
 * DONE(ARG, RC) is called (from the loop, in a turn of its own; RC 0 or -ENOMEM), a job not
 * reached yet runs on its old configuration, so the previous configuration must stay alive
 * (and IN's GONE and the tz and plugins of both). A job added shows up when it is reached.
 * What a reload built beside the configuration is used rather than made again on the loop. */
struct jobgraph;
struct sched_apply_in {
	const struct pgc_config *cfg;
	const cron_tz *tz;
	const struct plugin_registry *plugins; /* may be NULL */
	struct jobgraph *graph; /* CFG's job graph (jobgraph.h), taken (zeroed); NULL: made */
	/* the jobs of OLD (the configuration in force) that CFG no longer has, by index
	 * (config_diff.h); NULL, or OLD not the one in force: every job of it is looked up */
	const struct pgc_config *old;
	const size_t *gone;
	size_t n_gone;
	bool first;
};
int sched_apply_start(struct sched *s, const struct sched_apply_in *in,
                      void (*done)(void *arg, int rc), void *arg)
    __attribute__((warn_unused_result));
/* An apply started by sched_apply_start() has not called DONE yet. */
bool sched_applying(const struct sched *s);
/* How the last apply held the loop (logged after each reload, daemon.c). */
struct sched_apply_stats {
	unsigned turns;     /* loop turns it took */
	size_t most_jobs;   /* the most jobs (or edges) one turn went through */
	int64_t longest_us; /* the longest turn */
	int64_t total_us;   /* all turns */
};
void sched_apply_stats(const struct sched *s, struct sched_apply_stats *out);
/* Test hook: at most N jobs a turn (0: the default, 8,192; a turn also ends after 2 ms). */
void sched_set_apply_slice(struct sched *s, size_t n);

/* Alerts go to ALERTS (may be NULL: none); INSTANCE names this daemon in graph-run ids.
 * Both borrowed until sched_free(). */
struct alerter;
void sched_set_context(struct sched *s, struct alerter *alerts, const char *instance);

/* Several instances: every run claims its fire through C (borrowed until sched_free; NULL:
 * none) before it starts. */
struct cluster;
struct cluster_orphan;
void sched_set_cluster(struct sched *s, struct cluster *c);
/* A dead instance's run O was closed: retry it here if the job is ours and its retry policy
 * allows (the retry is claimed like any fire, so one survivor runs it). */
void sched_takeover(struct sched *s, const struct cluster_orphan *o);

/* Several instances, beyond the claims (coord.h, through admit.h). CO is borrowed until
 * sched_free (NULL: none). */
struct coord;
struct coord_work;
void sched_set_coord(struct sched *s, struct coord *co);
struct coord *sched_coord(const struct sched *s);
/* Pending work W of a dead instance (or of an earlier process of this one): run it here. */
void sched_take_work(struct sched *s, const struct coord_work *w);
/* A run of JOB on another instance ended (NULL: any may have, the holder died or this
 * instance reconnected): a run of it waiting for that (overlap queue or replace) tries
 * again. */
void sched_cluster_ended(struct sched *s, const char *job);
/* Another instance started (STARTED) or ended with success a run of graph job JOB: its
 * downstreams' readiness here counts it (nothing starts on it). */
void sched_cluster_graph(struct sched *s, const char *job, bool started);
/* Instance BY replaces JOB's run here (overlap = replace): cancel it. */
void sched_cluster_cancel(struct sched *s, const char *job, const char *by);
/* The cluster's paused set is NAMES (N): pause and resume to match. True if anything
 * changed here. */
bool sched_follow_paused(struct sched *s, const char *const *names, size_t n);

/* Job NAME has notifications not yet served (PENDING), or no longer: its downstreams wait
 * for that coming run as they wait for a running one. */
void sched_notify_pending(struct sched *s, const char *name, bool pending);
/* Run job NAME for notifications with PAYLOADS (N of them; ownership of the strings and the
 * array passes to the scheduler, also on error). If the job is busy they wait, merged with
 * any others, until its run ends: notification runs are never skipped. -ENOENT, -ESHUTDOWN,
 * -ENOMEM. */
int sched_notify_run(struct sched *s, const char *name, char **payloads, size_t n);

/* A listener reconnected: notifications to the listening jobs NAMES (N) may be lost, so each
 * runs once without payloads. In graph order: a job with an upstream among NAMES does not
 * start by itself; it runs when its upstreams among them have succeeded, in their graph run
 * (or gets upstream_failed). -ESHUTDOWN, -ENOMEM. */
int sched_notify_catchup(struct sched *s, const char *const *names, size_t n);

/* Fire job NAME now with TRIGGER (an operator's: TRIGGER_MANUAL); the overlap policy applies.
 * -ENOENT if there is no such job, -EPERM if it is disabled and not FORCE, -ESHUTDOWN while
 * draining. */
int sched_trigger(struct sched *s, const char *name, enum run_trigger trigger, bool force)
    __attribute__((warn_unused_result));
/* What sched_trigger() would return, without firing. */
int sched_trigger_check(struct sched *s, const char *name, bool force)
    __attribute__((warn_unused_result));

/* ---- the control channel (ctl.h): waiting for a run, pause, resume ------------------- */

/* How a run ended, for a waiter. Strings valid during the callback only. */
struct sched_result {
	const char *job;
	const char *status;   /* succeeded | failed | skipped | upstream_failed | cancelled */
	const char *message;  /* return_message or why it did not run; never NULL */
	const char *sqlstate; /* NULL if none */
	int attempt;          /* of the final attempt */
	int64_t duration_us;  /* of the final attempt, 0 if it never started */
};
/* Embedded in its owner; DONE is called exactly once, from the loop, with the final outcome
 * (after the retries), or with "cancelled" if the run is dropped (shutdown, sched_free). */
struct sched_waiter {
	void (*done)(struct sched_waiter *w, const struct sched_result *res);
};
/* sched_trigger(NAME, TRIGGER_MANUAL, FORCE), telling W how that run ends. Same returns. */
int sched_trigger_wait(struct sched *s, const char *name, bool force, struct sched_waiter *w)
    __attribute__((warn_unused_result));

/* Pause job NAME: no new run starts for it (a run under way goes on; a manual trigger still
 * runs it); it stays paused across reloads, and sched_resume() handles the fires that came
 * due meanwhile by the job's catch-up policy (once: one catchup run; skip: one skipped
 * row). -ENOENT no such job, -EALREADY already paused (not paused, for resume), -ENOMEM. */
int sched_pause(struct sched *s, const char *name) __attribute__((warn_unused_result));
int sched_resume(struct sched *s, const char *name) __attribute__((warn_unused_result));
bool sched_is_paused(const struct sched *s, const char *name);
/* Names to treat as paused (the saved state at start, before the first sched_apply(); jobs
 * not configured yet are paused when they appear). 0 or -ENOMEM. */
int sched_set_paused(struct sched *s, const char *const *names, size_t n)
    __attribute__((warn_unused_result));
/* The paused names (borrowed until the next pause/resume); returns their number. */
size_t sched_paused_names(const struct sched *s, const char *const **names);

/* Drop job NAME's waiting runs (sched_job_view's WAITING; a started one waiting for its
 * connection if nothing of it was sent, which then ends from the loop, freeing its slot): each
 * is recorded skipped with WHY ("dropped by alice"), once; a run under way and the runs of
 * other jobs are left alone, and later fires run. Returns how many were dropped, or -ENOENT
 * (no such job). */
int sched_drop(struct sched *s, const char *name, const char *why)
    __attribute__((warn_unused_result));

/* Shutdown: stop firing, drop what has not started (recorded as skipped), let running runs
 * finish within GRACE_MS, then cancel them. DONE(ARG) is called from the loop once no run
 * is left. */
void sched_drain(struct sched *s, int64_t grace_ms, void (*done)(void *), void *arg);

/* Job NAME's next scheduled instant (Unix seconds); CRON_NEVER if none or no such job. */
int64_t sched_job_next(struct sched *s, const char *name);

/* Compare the wall clock with the monotonic clock now and handle a step (the scheduler does
 * this itself every 5 s and at a timer wake-up off its instant): forward, the fires stepped over
 * are missed fires (catch-up policy, a log line, a skipped row); back, wildcard and "N seconds"
 * jobs go on from the new time and fixed-time jobs wait for their next instant. */
void sched_check_clock(struct sched *s);

/* Each recorded run is counted in M (metrics.h; may be NULL: none), borrowed until
 * sched_free(). */
struct metrics;
void sched_set_metrics(struct sched *s, struct metrics *m);

/* The random numbers the scheduler draws (retry jitter, retry.h), uniform over
 * 0..UINT32_MAX: RANDOM(ARG), or arc4random() when RANDOM is NULL (the default). Time and
 * randomness are inputs, so a simulation can pin both. */
void sched_set_random(struct sched *s, uint32_t (*random)(void *arg), void *arg);
/* The configuration last given to sched_apply() (NULL before). */
const struct pgc_config *sched_config(const struct sched *s);

/* Runs started and not finished / fires waiting for a max_running slot. */
size_t sched_running(const struct sched *s);
size_t sched_queued(const struct sched *s);

/* ---- a read-only view of the scheduler (the status document, ops/status.c) ------------- */

/* What the scheduler as a whole shows, at the scheduler's now. */
struct sched_view {
	int64_t now_us;                        /* the scheduler's clock (wall µs) */
	const struct pgc_config *cfg;          /* as sched_config() */
	const struct plugin_registry *plugins; /* the plugins in force, may be NULL */
	bool draining;                         /* shutting down: nothing new starts */
	int max_running;
	size_t running, queued; /* as sched_running() and sched_queued() */
};
void sched_view(const struct sched *s, struct sched_view *out);

/* What a job with freshness shows (docs/freshness.md; all zero for a job without). */
struct fresh_view {
	bool on;                    /* the job has freshness */
	int64_t sla_ms;             /* its SLA */
	int64_t lag_us;             /* age of the oldest change not reflected; 0: up to date */
	int64_t fresh_as_of_us;     /* the sources were seen unchanged since its last success at
	                             * this instant (counts as a success for staleness), 0 if not */
	int64_t next_run_us;        /* the run planned, 0 if none */
	const char *fallback;       /* why it runs every period instead, NULL if it does not */
	int64_t changed_since_us;   /* the oldest change not reflected (lower bound), 0 if none */
	int64_t unchanged_since_us; /* the last check saw its sources as the start of its last
	                             * success left them: unchanged since then; 0 if not */
};

/* What one job shows. The strings are the scheduler's, valid until the next sched_apply()
 * or the loop runs again. */
/* A job's recent runs, for the status and its page (sched_state.c keeps them, sched_recent.c reads
 * them back). */
/* How many runs of each job the strip keeps. */
#define SCHED_RECENT_RUNS 10

/* One ended run; STATUS indexes sched_recent_statuses. 24 bytes: every job that ran keeps a
 * strip. It ended at START_US plus DUR_US (a run of more than 2^40 µs, 12.7 days, shows that). */
struct sched_recent_run {
	int64_t start_us; /* Unix µs */
	uint64_t id;      /* WRITTEN: job_run_details.runid; else the history's key of a run of this
	                   * process, or 0 */
	uint64_t dur_us : 40, attempt : 20, status : 3, written : 1;
};
struct sched_recent {
	struct sched_recent_run runs[SCHED_RECENT_RUNS]; /* newest first (by start) */
	uint32_t n;
};

/* The final statuses the strip shows (a run's, sched_record's), by index. NULL-terminated. */
enum sched_status { SCHED_SUCCEEDED, SCHED_FAILED, SCHED_SKIPPED, SCHED_UPSTREAM_FAILED };
extern const char *const sched_recent_statuses[];

/* What a run waits for (pgcrond status, pgcrond drop, pgcrond.view_backlog), and its word
 * there, by index: "slot", "connection", "upstream", "retry", "own_run", "notifications",
 * "instance", "claim", "mark". */
enum sched_wait_for {
	SCHED_WAIT_SLOT,       /* a max_running slot */
	SCHED_WAIT_CONNECTION, /* started: a connection of its database */
	SCHED_WAIT_UPSTREAM,   /* its running upstream jobs */
	SCHED_WAIT_RETRY,      /* its retry delay */
	SCHED_WAIT_OWN_RUN,    /* the job's run under way to end (overlap queue or replace) */
	SCHED_WAIT_NOTIFY,     /* notifications gathered while the job runs: its run to end */
	SCHED_WAIT_INSTANCE,   /* the job's run on another instance to end */
	SCHED_WAIT_CLAIM,      /* its claim's answer (several instances) */
	SCHED_WAIT_MARK,       /* started: an HTTP run's start mark (several instances) */
};
extern const char *const sched_wait_names[];
/* A job has at most four runs waiting: its active one, pending, parked and notified. */
#define SCHED_MAX_WAITING 4
struct sched_waiting {
	enum sched_wait_for why;
	const char *trigger;  /* its trigger's name (run_trigger_names) */
	int64_t scheduled_us; /* its instant (wall µs); 0: not a scheduled fire */
	int64_t since_us;     /* since when it waits (wall µs): its fire taken, or its start for a
	                         connection */
	int attempt;
};

struct sched_job_view {
	const char *name, *plugin, *database, *schedule; /* plugin NULL: not a plugin job */
	enum job_kind kind;
	const struct conf_job *conf; /* NULL once removed */
	bool enabled, paused, removed;
	bool parked;         /* a fire waits for a running upstream */
	bool notify_pending; /* notifications not yet served */
	int64_t next_fire;   /* Unix seconds or CRON_NEVER */
	struct { /* the active run (HAS): waits for a slot, its retry, another instance; STARTED */
		bool has, started, retry_wait, cluster_wait;
		int64_t start_us;         /* STARTED: since when */
		int backend_pid, attempt; /* BACKEND_PID 0 before it is connected */
		const char *trigger;
	} run;
	bool retry_armed; /* waiting to retry: at RETRY_AT_US (wall µs) */
	int64_t retry_at_us;
	struct { /* the last run that ended; STATUS "" before the first */
		const char *status, *message, *sqlstate, *trigger;
		int attempt;
		int64_t start_us, end_us, runid; /* RUNID: its row's once known; 0 */
	} last;
	int64_t last_success_us;           /* 0: none */
	int consecutive;                   /* final failures since the last success */
	const struct sched_recent *recent; /* its last runs, newest first; NULL before the first */
	struct fresh_view fresh;
	struct sched_waiting waiting[SCHED_MAX_WAITING]; /* its runs that wait, and for what */
	size_t n_waiting;
};
/* The job named NAME at NOW_US: 0, or -ENOENT if the scheduler has no job of that name. */
int sched_job_view(struct sched *s, const char *name, int64_t now_us, struct sched_job_view *out)
    __attribute__((warn_unused_result));

/* ---- the max_running queue (pure; exposed for unit tests) ------------------------------ */

/* A binary min-heap of fires ordered by scheduled instant, then by arrival (SEQ). */
struct sched_qitem {
	int64_t at_us;
	uint64_t seq;
	void *data;
};
struct sched_queue {
	struct sched_qitem *items;
	size_t n, cap;
};

int sched_queue_push(struct sched_queue *q, int64_t at_us, uint64_t seq, void *data)
    __attribute__((warn_unused_result));
/* Remove DATA wherever it is (items[0], the earliest, is found at once); true if it was
 * there. */
bool sched_queue_remove(struct sched_queue *q, void *data);
void sched_queue_clear(struct sched_queue *q);

/* The instant (Unix seconds) job expression E fires next, given that the previous fire was
 * scheduled at PREV (0 if none) and it is NOW (Unix seconds): the first instant strictly
 * after max(PREV, NOW). So fires missed while a late timer waited are not served one by one
 * (the scheduler reports them and applies the catch-up policy once), and a daemon
 * restarted within the second of a fire does not serve it twice. For "N seconds" that is N
 * after the previous start. CRON_NEVER if none (and for @reboot). Pure; exposed for unit
 * tests. */
int64_t sched_next_fire(const cron_expr *e, const cron_tz *tz, int64_t prev, int64_t now);

#endif
