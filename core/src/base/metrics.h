#ifndef PGCROND_METRICS_H
#define PGCROND_METRICS_H

/* The daemon's counters for Prometheus (served by http.c at /metrics): per job, the runs by
 * final status, the run duration and the firing lateness as histograms, and when the last
 * failure ended. The scheduler feeds it with one call per recorded run (metrics_run_end);
 * live values (running, queued, staleness, connections, the spool) are read at scrape time
 * from the status document (status_metrics). Pure logic: no libevent, no libpq; times are
 * inputs. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct metrics;

int metrics_new(struct metrics **out) __attribute__((warn_unused_result));
void metrics_free(struct metrics **m);
/* A copy of M's per-job counters (not its last failures) in *OUT, for rendering on another
 * thread while M goes on counting. 0 or -ENOMEM. */
int metrics_copy_counters(const struct metrics *m, struct metrics **out)
    __attribute__((warn_unused_result));

/* One job's counters in a struct metrics: they live as long as it does. */
struct metrics_job;

/* One history row's worth of outcome. */
struct metrics_run {
	const char *job;
	const char *status;   /* succeeded | failed | skipped | upstream_failed (history.h) */
	int64_t duration_us;  /* start to end; < 0 for a fire that never ran */
	int64_t lateness_us;  /* start minus the scheduled instant, for a scheduled fire's first
	                       * attempt; < 0 otherwise */
	int64_t end_us;       /* Unix µs */
	const char *message;  /* return_message: kept whole for the last failures; may be NULL */
	const char *sqlstate; /* may be NULL */
	/* JOB's counters, where the caller keeps them: found by name (or made) and stored here
	 * when *counters is NULL, so that a caller that keeps them looks each job up once, not
	 * on every run. NULL: found by name every time. */
	struct metrics_job **counters;
};
/* Count R (strings copied as needed). Out of memory loses the observation, logged once. */
void metrics_run_end(struct metrics *m, const struct metrics_run *r);

/* The last METRICS_FAILURES failed runs, newest first: FN(ARG, ...) for each. RUNID is the
 * run's job_run_details.runid: read back from the history (metrics_seed_failure) or told
 * once its row is written (metrics_failure_runid); 0 until then. */
#define METRICS_FAILURES 20
void metrics_each_failure(const struct metrics *m,
                          void (*fn)(void *arg, const char *job, int64_t end_us, int64_t runid,
                                     const char *message, const char *sqlstate),
                          void *arg);

/* At start, a failure an earlier process recorded (read from the history, newest first):
 * kept as older than those already kept, in a free slot of the ring (none: dropped), unless
 * the same failure (JOB, END_US) is there already (then it gets RUNID). Not counted as a
 * run. */
void metrics_seed_failure(struct metrics *m, const char *job, int64_t end_us, int64_t runid,
                          const char *message, const char *sqlstate);

/* The failure of JOB that ended at END_US, if it is kept, has run id RUNID (its history row
 * was written after it ended). */
void metrics_failure_runid(struct metrics *m, const char *job, int64_t end_us, int64_t runid);

/* The Prometheus text exposition format (version 0.0.4). The families of M's counters for the
 * jobs JOBS (N of them, in this order): pgcrond_job_runs_total by status and the histograms
 * pgcrond_job_run_duration_seconds and pgcrond_job_lateness_seconds; a job with no runs yet
 * has its series at 0. The live values (ops/status.c) come from the status document. */
void metrics_render_counters(const struct metrics *m, const char *const *jobs, size_t n, FILE *out);
/* When JOB's last failed run since the start ended, Unix µs; 0: none. */
int64_t metrics_last_failure_us(const struct metrics *m, const char *job);
/* The format's pieces: a family's HELP and TYPE lines; a label value (backslash, double quote
 * and newline escaped); a sample NAME{KEY="VAL"} V (no label when KEY is NULL). */
void metrics_head(FILE *out, const char *name, const char *type, const char *help);
void metrics_label(FILE *out, const char *v);
void metrics_sample(FILE *out, const char *name, const char *key, const char *val, double v);

#endif
