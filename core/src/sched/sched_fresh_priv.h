#ifndef PGCROND_SCHED_FRESH_PRIV_H
#define PGCROND_SCHED_FRESH_PRIV_H

/* Freshness against schedules (docs/freshness.md): a job with `freshness` runs when the
 * tables it reads changed, early enough that its relation never lags a change by more than
 * the SLA, and not when nothing changed. Changes are counted by triggers on each source
 * and the tables under and above it (sql/freshness.sql, put there by `pgcrond install`), in
 * the writer's own transaction; the daemon reads a print of those counters and of the
 * relations' catalog rows (what fires no trigger: rewrites, partitions detached) for all the
 * sources of a database in one statement per check interval (the shortest SLA of its jobs
 * / 4), on the job's database through the executor, never blocking the loop.
 *
 * The pure part (fresh_plan) decides when to run; the rest is the scheduler's (sched_priv.h
 * struct job.fresh), wired from sched_apply.c, flow.c and status.c. */

#include <stdbool.h>
#include <stdint.h>

struct sched;
struct job;
struct run;

/* ---- the decision, pure (unit-tested in simulated time: check_fresh) ------------------ */

struct fresh_plan_in {
	int64_t now_us;
	int64_t sla_us;          /* the SLA in force: the job's, or less for its downstreams' */
	int64_t change_since_us; /* lower bound of the oldest change not reflected; 0: none */
	int64_t est_run_us;      /* how long a run takes (recent longest); 0: not known */
	bool fallback;           /* the sources cannot be read: run every period */
	int64_t last_start_us;   /* start of the last successful run (fallback), 0: none */
};

/* When a run should start (wall µs): at most NOW (run now), INT64_MAX (no run needed).
 * Changes are gathered: the run starts as late as keeps the relation inside the SLA (the
 * oldest change plus the SLA, less twice the run's duration and a tenth of the SLA). */
int64_t fresh_plan(const struct fresh_plan_in *in);

/* How often the counters of a job with SLA SLA_US are read: a quarter of it, between
 * 250 ms and 5 minutes. */
int64_t fresh_check_every_us(int64_t sla_us);

/* The SLA a job must keep so that a downstream with SLA DOWN_SLA_US, whose runs take
 * DOWN_RUN_US, keeps its own after this job's refresh: DOWN_SLA_US less twice that. */
int64_t fresh_sla_for_downstream(int64_t down_sla_us, int64_t down_run_us);

/* ---- the scheduler's side (sched.c's executor; nothing here blocks) ------------------ */

/* After an apply: jobs with freshness get their state, those without lose it; each
 * database's check is (re)built from its jobs' sources. */
void fresh_applied(struct sched *s);
/* J goes (sched.c sched_job_free). */
void fresh_job_free(struct job *j);
/* Shutdown and sched_free: stop every timer; a check under way ends unanswered. */
void fresh_stop(struct sched *s);
/* fresh_stop(), and the change checks still in flight freed: for sched_free() */
void fresh_free(struct sched *s);
/* R, of a job with freshness, started (each attempt): the counters seen by the last check
 * are what it reflects at least. */
void fresh_run_begin(struct run *r);
/* R, of a job with freshness or downstreams, ended; OK: it succeeded, so its relation
 * reflects what it started from. Downstreams with freshness count an upstream's success as
 * a change. The next run is planned from the loop. */
void fresh_run_end(struct run *r, bool ok, int64_t end_us);

/* J's freshness run may be due and could not start then (it was paused, or its parked run
 * was dropped): plan it again from the loop. No-op for a job without freshness. */
void fresh_replan(struct job *j);

/* What status, metrics and alerts show of J (struct fresh_view: sched.h). */
struct fresh_view;
void fresh_view(const struct job *j, int64_t now_us, struct fresh_view *out);

#endif
