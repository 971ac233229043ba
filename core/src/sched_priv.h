#ifndef PGCROND_SCHED_PRIV_H
#define PGCROND_SCHED_PRIV_H

/* The scheduler's inside, shared by sched.c (timers, overlap, the max_running queue, run
 * bookkeeping) and flow.c (the job graph at run time, retries, catch-up, alert conditions),
 * by sched_pause.c (pause, resume, waited-for runs), and read (never written) by status.c for
 * the live state; other modules use sched.h. */

#include <event2/event_struct.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "cron.h"
#include "sched.h"

struct alerter;
struct run;

struct job {
	struct sched *s;
	char *name;
	char *command;
	char *plugin;
	char *database;
	char *schedule;
	cron_expr cron;
	int64_t timeout_ms;
	enum overlap_policy overlap;
	bool enabled;
	bool removed;                /* gone from the config; freed when its run ends */
	bool seen;                   /* during sched_apply */
	const struct conf_job *conf; /* NULL once removed */
	struct event timer;
	bool armed;
	int64_t next_fire;   /* Unix seconds or CRON_NEVER */
	int64_t last_fire;   /* the last scheduled instant fired (Unix seconds), 0 if none */
	struct run *active;  /* the run started, waiting for a slot, or waiting to retry */
	struct run *pending; /* overlap = queue | replace: the fire to run after it */
	struct job *prev, *next;
	struct job *hnext; /* in its bucket of the sched's name index */

	/* ---- flow.c ---- */
	struct job **ups, **downs; /* the job graph (upstreams / downstreams) */
	size_t n_ups, n_downs;
	uint64_t success_seq;   /* flow sequence number of the last success */
	uint64_t start_seq;     /* ... of the last start */
	uint64_t mark;          /* upstream_failed propagation visit mark */
	bool busy_final;        /* last run ended in a final failure */
	struct run *parked;     /* a fire waiting for a running upstream */
	bool notify_pending;    /* notifications not yet served: a run comes within max_delay,
	                         * so downstreams wait for it as for a running job (triggers.c) */
	bool graph_again;       /* upstreams succeeded while it ran: run again after */
	char *graph_again_id;   /* the graph-run id for that run */
	struct event *retry_ev; /* the wait before the next attempt (active->retry_wait); made
	                         * at first use (flow.c job_timer) */
	bool retry_armed;
	int consecutive;        /* final failures since the last success */
	struct event *stale_ev; /* armed at last success + max_staleness; made at first use */
	bool stale_armed;
	int64_t last_success_us;
	int64_t stale_ms;        /* max_staleness the timer was armed with */
	bool owed_catchup;       /* its database was unreachable across a fire */
	struct run *notify_wait; /* a notification run waiting for the active run to end */
	bool reconnect_owed;     /* a listener reconnect owes it a run, which comes after its
	                          * upstreams' catch-up runs, in their graph run */
	int64_t retry_at_us;     /* when the armed retry_ev fires (wall clock, for status) */

	/* ---- pause (sched_pause) and the last result (status.c) ---- */
	bool paused;
	bool paused_owed;      /* a notification or upstream fire came while paused */
	char last_status[16];  /* "succeeded" | "failed" | "" before the first end */
	char *last_message;    /* its return_message */
	char last_sqlstate[6]; /* "" if none */
	int64_t last_start_us;
	int64_t last_end_us;
	char last_trigger[16];
	int last_attempt;
};

struct run {
	struct job *job;
	int64_t scheduled_us; /* 0 for a manual run */
	int64_t queue_at_us;  /* ordering in the max_running queue */
	char trigger[16];
	int attempt;
	bool started;
	bool retry_wait; /* waiting for the job's retry timer */
	bool claiming;   /* waiting for its claim (cluster.h), before it waits for a run slot */
	bool claimed;    /* claimed, or needs no claim */
	bool job_locked; /* holds the job's cluster lock (overlap across instances) */
	bool waited;     /* already waited for its upstreams */
	uint64_t hist_key;
	int64_t start_us;
	struct exec_run *er;
	int backend_pid;             /* once connected, 0 before */
	struct sched_waiter *waiter; /* told how the run ends (moves to its retry); NULL */
	char *graph_run;             /* shared by the runs one upstream run caused; NULL */
	char **payloads;             /* notification payloads for the plugin */
	size_t n_payloads;
	struct event slow_ev; /* warn_duration */
	bool slow_armed, slow_alerted;
};

struct sched {
	struct event_base *base;
	struct exec *ex;
	struct hist *hist;
	struct alerter *alerts;
	struct cluster *cluster; /* NULL: no coordination (no history database) */
	struct metrics *metrics; /* may be NULL (sched_set_metrics) */
	char instance[128];
	const struct pgc_config *cfg;
	const cron_tz *tz;
	const struct plugin_registry *plugins;
	struct job *jobs;
	/* Every job of the list, by name: sched_job_find runs for each job of a config load
	 * and each catch-up answer, and walking the list there made starting or reloading
	 * 10,000 jobs cost seconds of CPU. NULL (out of memory): the list is walked. */
	struct job **index;
	size_t n_buckets, n_jobs;
	int max_running;
	size_t n_running;
	size_t n_claiming; /* fires waiting for their claim (they hold no run slot) */
	struct sched_queue queue;
	uint64_t seq;
	uint64_t flow_seq;
	struct event clock_ev;
	int64_t clock_offset_us; /* wall clock minus monotonic clock at the last check */
	bool draining;
	bool admitting;
	bool catchup_asked;
	struct event grace_ev;
	struct event drained_ev;
	void (*drained)(void *);
	void *drained_arg;
	/* jobs paused by name (sched_pause), kept across reloads: a job that comes back by
	 * that name is paused */
	char **paused;
	size_t n_paused;
};

/* sched.c */
int64_t sched_wall_us(void);
/* The zone a job's schedule is read in: its own timezone, else the daemon's. */
const cron_tz *sched_job_tz(const struct job *j);
struct run *sched_run_new(struct job *j, int64_t scheduled_us, const char *trigger);
void sched_run_free(struct run **r);
/* Start R or queue it for a max_running slot; R becomes the job's active run. */
void sched_run_admit(struct run *r);
/* Apply the overlap policy to a ready fire R (takes R). */
void sched_fire_run(struct run *r);
void sched_record(struct run *r, const char *status, const char *message);
/* Tell R's waiter (if any) how it ended, once; the waiter is detached. */
void sched_run_answer(struct run *r, const char *status, const char *message, const char *sqlstate);
struct job *sched_job_find(struct sched *s, const char *name);
/* The timer helpers of sched.c, for sched_pause.c. */
void sched_job_disarm(struct job *j);
void sched_job_arm(struct job *j);
bool sched_job_schedulable(const struct job *j);
void sched_job_schedule(struct job *j, int64_t prev);
void sched_job_fire(struct job *j, int64_t scheduled_us, const char *trigger);
void sched_admit_queued(struct sched *s);

#endif
