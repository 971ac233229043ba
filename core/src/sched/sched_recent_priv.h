#ifndef PGCROND_SCHED_RECENT_PRIV_H
#define PGCROND_SCHED_RECENT_PRIV_H

/* Each job's recent runs, for the status (status.c) and its page: the last few ended runs
 * (the strip of coloured cells, as Airflow's grid shows them) and the last result, kept as
 * runs end and, at start, read back from the history (hist_request_last_results), so that a
 * restart does not wipe what the operator was looking at. The failures of all jobs read back
 * go to the metrics' ring (metrics_seed_failure). A run of this process gets its run id once
 * its row is written (a moment after it ends; later while the history is down).
 *
 * The live half (a run's end, its row written) is sched_state.c's, the read-back
 * sched_recent.c's.
 *
 * A job the history names that is not scheduled yet when the answer comes (a job made in SQL
 * arrives with the SQL jobs' first read) gets its rows when it appears. */

#include <stdint.h>

#include "history.h"
#include "sched.h"

struct job;
struct run;
struct sched;

/* struct sched_recent, SCHED_RECENT_RUNS, sched_recent_statuses: sched.h (the view shows
 * them). */

/* J's last result, made if it has none yet (NULL: out of memory, the status shows none). */
struct job_last *sched_job_last(struct job *j);
/* R, a run of this process, ended at END_US as ST, with MESSAGE and SQLSTATE (may be NULL):
 * its job's last result, and its strip. */
void sched_recent_ended(struct run *r, enum sched_status st, const char *message,
                        const char *sqlstate, int64_t end_us);
/* J's run that started at START_US ended at END_US as ST: its strip only (sched_record: a
 * fire recorded without running; a row read back from the history). Into the strip by start
 * time, newest first; the oldest falls off a full strip. KEY: the history's key of a run of
 * this process (hist_start), else 0; RUNID: its row's, 0 if not known yet. The same run twice
 * (read back after this process kept it): it only gets its run id. */
void sched_recent_note(struct job *j, enum sched_status st, int64_t start_us, int64_t end_us,
                       int attempt, uint64_t key, int64_t runid);
/* The history wrote a run of this process (hist_set_written_fn; ARG is the sched): its run id
 * goes to the strip, the last result and the failures that show it. */
void sched_recent_written(void *arg, const struct hist_written *w);
/* J was just scheduled: the rows the history had for it, if they came before it. */
void sched_recent_job_added(struct job *j);
/* J goes: its strip goes with it. */
void sched_recent_job_free(struct job *j);
/* The first load: ask the history (when there is one) for what the status showed. */
void sched_recent_request(struct sched *s);
/* One row of the history's answer (R NULL: its end): the hist_last_results_fn (ARG: the sched). */
void sched_recent_take(void *arg, enum hist_past_kind kind, const struct hist_past_run *r);
/* The rows kept for jobs that never appeared. */
void sched_recent_free(struct sched *s);

#endif
