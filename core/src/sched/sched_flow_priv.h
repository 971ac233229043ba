#ifndef PGCROND_SCHED_FLOW_PRIV_H
#define PGCROND_SCHED_FLOW_PRIV_H

/* The behaviour of jobs between and after their runs, the part of
 * the scheduler that sched.c hands each run's start and end to:
 *  - the job graph at run time: fan-in (a job with `after` and no schedule runs once every
 *    upstream has succeeded since its own last run), fan-out (ready downstreams start
 *    together within max_running), scheduled jobs wait for a running upstream, a final
 *    upstream failure gives the downstreams an `upstream_failed` row and an alert, and one
 *    graph-run id ties together the runs one upstream run caused;
 *  - retries of transient failures with growing, jittered delays (retry.h);
 *  - catch-up after the daemon or a job's database was down across fires (catchup = once);
 *  - the alert conditions: failed / consecutive_failures, stale, slow, upstream_failed.
 * Its state lives in struct job / struct run (sched_priv.h). */

#include <event2/util.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cron.h"

struct job;
struct run;
struct sched;

/* How a run ended. */
struct flow_outcome {
	bool ok;
	bool timed_out;
	bool cancelled; /* stopped by pgcrond (overlap = replace, shutdown): never retried */
	const char *message;
	const char *sqlstate; /* NULL if none */
	/* a failure of the kind retry_on = "transient" retries, without a SQLSTATE to tell
	 * (an HTTP job's lost connection, timeout or 5xx) */
	bool transient;
	bool unknown_commit; /* exec_outcome's: never retried */
};

/* Frees the job's flow state, including fires waiting for upstreams or notifications. */
void flow_job_free(struct job *j);
/* Shutdown: stop the job's staleness timer. */
void flow_job_drain(struct job *j);

/* A (re)load, job by job (sched_apply.c). J's edges are those of node I of G (NULL: none),
 * its graph neighbours found by name among the jobs scheduled: 0 or -ENOMEM (then it has
 * none). Unlink: J has no edge. Applied: J's staleness timer follows its configuration. */
struct dag;
int flow_job_edges(struct job *j, const struct dag *g, size_t i)
    __attribute__((warn_unused_result));
void flow_job_unlink(struct job *j);
void flow_job_applied(struct job *j);
/* Every job of a (re)load is in place; on FIRST, ask the history for the last served fires
 * (catch-up). */
void flow_applied(struct sched *s, bool first);

/* A fire of a job with upstreams about to be admitted: if one of them is busy, keep it
 * until they are done and return true (R is taken). */
bool flow_park(struct run *r);
/* R, of a job with a graph edge, freshness or warn_duration, has started: its freshness,
 * fan-in bookkeeping, its graph-run id, the warn_duration timer. */
void flow_run_begin(struct run *r);
/* R ended as O at END_US (a success's counts are reset; the job's active run is cleared,
 * or is R's retry, sched.c's): a success's freshness, the alerts it ends, the staleness
 * timer and downstream runs (run_end leaves out a success with none of these), or, without
 * a retry, a final failure (alerts, upstream_failed downstream, catch-up once the database
 * is back). Downstream runs are handed to the loop (sched_run_defer), never started inside
 * this call: a run's end does not start another run. */
void flow_run_end(struct run *r, const struct flow_outcome *o, int64_t end_us);
/* J, with downstreams or a run owed to its upstreams (graph_again), has no run left after
 * one ended: that run, and fires of its downstreams that waited for it (queued, as
 * above). */
void flow_job_idle(struct job *j);
/* R, a fire handed to the loop, has its turn (sched_deferred_cb): true if it is taken
 * (freed), a downstream run whose job is busy by then becoming a run once more after it. */
bool flow_deferred_taken(struct run *r);
/* J was removed from the configuration: its queued fires get a skipped row saying WHY; its
 * staleness timer and edges go. */
void flow_job_removed(struct job *j, const char *why);
/* Stop J's retry timer (its retry-waiting run is being dropped by the caller). */
void flow_retry_disarm(struct job *j);

/* exec's reachable callback: DATABASE answers again (ARG is the sched). */
void flow_db_reachable(void *arg, const char *database);
/* A run's warn_duration timer (ARG is the run). */
void flow_slow_cb(void *arg);

/* ---- pure parts, exposed for unit tests ---------------------------------------------- */

/* The graph-run id of a root run: "<instance>-<start µs>-<job>" into OUT. 0, or -ENOSPC if
 * it does not fit. */
int flow_graph_run_id(char *out, size_t outlen, const char *instance, int64_t start_us,
                      const char *job) __attribute__((warn_unused_result));

/* Catch-up: E's latest fire in (LAST, NOW] (Unix seconds), or CRON_NEVER if none was
 * missed. *MISSED (may be NULL) gets how many fires were missed (counted up to a bound). */
int64_t flow_catchup_instant(const cron_expr *e, const cron_tz *tz, int64_t last, int64_t now,
                             long *missed);

/* Fan-in: true if every upstream's last success (UP_SUCCESS_SEQ[i], 0 = never) is newer
 * than the job's last start (START_SEQ). False without upstreams. */
bool flow_fanin_ready(const uint64_t *up_success_seq, size_t n, uint64_t start_seq);

#endif
