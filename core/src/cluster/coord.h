#ifndef PGCROND_COORD_H
#define PGCROND_COORD_H

/* What instances sharing a history database hand each other beyond the claims of cluster.h
 * (docs/several-instances.md; sql/pgcrond--7.sql), on cluster.h's connection:
 *
 * - pending work: a retry waiting for its delay, a downstream run due on this instance,
 *   notifications gathered while the job ran are written to pgcrond.pending_work while they
 *   wait; the survivor that finds this instance dead (or this instance's next process)
 *   deletes the rows and runs them, so each is taken over once;
 * - overlap across instances: a queued or replacing run that found the job's lock held on
 *   another instance waits for the NOTIFY that instance sends when its run ends (or for the
 *   holder's death); replace first files a row in pgcrond.cancel_request and wakes the
 *   holder, which cancels its own run with its own cancel key;
 * - the paused set: pgcrond.job_pause holds the jobs paused on every instance; a change
 *   wakes the others, which follow. While the database is unreachable pause and resume act
 *   on this instance alone (kept in state_dir) and reach the table when it is back.
 *
 * A NOTIFY on CLUSTER_CHANNEL is a wake-up only: what is done is read from the rows, which
 * PostgreSQL's grants protect, one read of a kind at a time, and at most one a second (ten
 * for the fan-in's): any role may send a flood. Never blocks the loop. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster_types.h"

struct cluster;
struct coord;

/* What coord asks of the scheduler above it, and tells the daemon; wired in daemon.c (coord
 * knows the scheduler only by name: it sits below sched/). Each is called from the loop with
 * SCHED (the scheduler's own functions fit), paused_changed with ARG. */
struct sched;
struct coord_hooks {
	/* Pending work W of a dead instance (or of an earlier process of this one): run it
	 * here (sched_take_work). */
	void (*take_work)(struct sched *s, const struct coord_work *w);
	/* A run of JOB on another instance ended; NULL: any may have (sched_cluster_ended). */
	void (*ended)(struct sched *s, const char *job);
	/* Another instance started (STARTED) or ended with success a run of graph job JOB
	 * (sched_cluster_graph). */
	void (*graph)(struct sched *s, const char *job, bool started);
	/* Instance BY replaces JOB's run here: cancel it (sched_cluster_cancel). */
	void (*cancel)(struct sched *s, const char *job, const char *by);
	/* The cluster's paused set is NAMES (N): follow it; true if anything changed here
	 * (sched_follow_paused). */
	bool (*follow_paused)(struct sched *s, const char *const *names, size_t n);
	/* The paused set changed through another instance (the scheduler's set was updated):
	 * keep the local copy (state_dir) in step. May be NULL. */
	void (*paused_changed)(void *arg);
	void *arg;
	struct sched *sched;
};

/* On cluster C with HOOKS (copied; every hook but paused_changed is required), on BASE (the
 * wake-ups' gaps). Returns 0 or -ENOMEM. */
struct event_base;
int coord_open(struct event_base *base, struct cluster *c, const struct coord_hooks *hooks,
               struct coord **out) __attribute__((warn_unused_result));
void coord_free(struct coord **co);

/* cluster.h's hooks, forwarded by the daemon: the name is ours again (after a connect), an
 * instance was found dead, a wake-up came (PAYLOAD NULL: the LISTEN after a connect is
 * answered, every kind is read). */
void coord_identity(struct coord *co);
void coord_reaped(struct coord *co, const char *dead);
void coord_notified(struct coord *co, const char *payload);

/* Pending work W is due on this instance / was started or dropped (JOB, KIND). Best effort:
 * without a connection nothing is written (a survivor could not take it over anyway). With
 * DEAD, W is work that instance owed (its run closed by this instance's look for dead ones,
 * which answered once this instance began to stop) and goes back to its account: never over
 * work of its own, also once the stop has begun (before the stop's own statement); the others
 * take it, as a stopped instance's, when this stop's NOTIFY wakes them. */
void coord_note(struct coord *co, const struct coord_work *w, const char *dead);
void coord_done(struct coord *co, const char *job, enum run_trigger kind);

/* A run of JOB waits for the run of it on another instance (overlap = replace): ask that
 * instance to cancel it. */
void coord_cancel_other(struct coord *co, const char *job);

/* Fan-in across instances: a run of graph job JOB started (STARTED) or succeeded here. The
 * other instances count it in their downstreams' readiness (sched_cluster_graph) without
 * starting anything on it, so a downstream with several upstreams runs on the instance that
 * ended the last of them, once. Best effort: unsent while the connection is down. */
void coord_graph(struct coord *co, const char *job, bool started);

/* JOB was paused (PAUSE) or resumed on this instance: the cluster follows. 0, or -ENOTCONN
 * when the database is unreachable (sent when it is back). */
int coord_pause(struct coord *co, const char *job, bool pause);

#endif
