#ifndef PGCROND_METRICS_H
#define PGCROND_METRICS_H

/* The daemon's counters for Prometheus (served by http.c at /metrics): per job, the runs by
 * final status, the run duration and the firing lateness as histograms, and when the last
 * failure ended. The scheduler feeds it with one call per recorded run (metrics_run_end);
 * live values (running, queued, staleness, connections, the spool) are read at scrape time
 * and handed to metrics_render(). Pure logic: no libevent, no libpq; times are inputs. */

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

/* What the scrape reads from the running daemon. */
struct metrics_job_live {
	const char *name;
	const char *kind; /* "sql", "plugin" or "http" (job_kind_name) */
	bool paused;
	bool running;
	bool queued;            /* its fire waits for a max_running slot */
	double next_fire;       /* Unix seconds, < 0 when none */
	double last_success;    /* Unix seconds, 0 if none known (also from earlier runs) */
	double max_staleness_s; /* 0: none configured */
	bool stale;             /* the last success is older than max_staleness */
	double freshness_s;     /* its freshness SLA; 0: none */
	double freshness_lag_s; /* the age of the oldest change not reflected */
	/* a SQL job (NULL owner: a file job): its owner, jobid and the name given to
	 * cron.schedule (NULL: none), for pgcrond_job_info */
	const char *owner;
	long long jobid;
	const char *cron_name;
};
struct metrics_db_live {
	const char *name;
	int pool;
	size_t connecting, idle, busy, open; /* connections by state; open counts all
	                                      * but connecting */
	size_t waiting;                      /* runs waiting for a connection */
};
struct metrics_live {
	const char *version;
	double start_time; /* Unix seconds */
	int max_running;
	const struct metrics_job_live *jobs;
	size_t n_jobs;
	const struct metrics_db_live *dbs;
	size_t n_dbs;
	bool have_history;
	bool history_connected;
	bool history_backlogged; /* new runs held back (history.h, hist_backlogged) */
	uint64_t spool_records, history_written, history_dropped, history_holds;
};
/* Write the Prometheus text exposition format (version 0.0.4) of M and LIVE to OUT.
 * Returns 0 or -EIO when OUT failed. */
int metrics_render(const struct metrics *m, const struct metrics_live *live, FILE *out)
    __attribute__((warn_unused_result));

#endif
