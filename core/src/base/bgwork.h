#ifndef PGCROND_BGWORK_H
#define PGCROND_BGWORK_H

/* Blocking calls off the event loop: a few worker threads run each job's WORK, and its DONE
 * runs later on the loop's thread (the outcome comes back through a pipe). For the calls
 * libpq and the kernel offer only in blocking form: PQcancel() (cancel.c), fdatasync() of
 * the spill file (history.c). A job's WORK touches only the job's own data. */

#include <stdbool.h>
#include <sys/queue.h>

struct event_base;
struct bgwork;

/* A job, embedded in (or allocated by) its owner, who keeps it alive until DONE has run. */
struct bgwork_job {
	void (*work)(struct bgwork_job *job); /* on a worker thread */
	/* On the loop's thread, after WORK; or from bgwork_free() for a job that had not been
	 * delivered yet, with RAN false if WORK never started. May free the job. */
	void (*done)(struct bgwork_job *job, bool ran);
	/* Its end wakes nobody: DONE runs at bgwork_collect(), or with the next job's that does
	 * wake the loop, or from bgwork_free(). For a job whose end the owner needs to know only
	 * when it next looks (false when the owner zeroes it). Set before bgwork_submit. */
	bool quiet;
	bool ran;                      /* private */
	STAILQ_ENTRY(bgwork_job) link; /* private */
};

/* THREADS workers (started with the first job) for BASE. 0 or -errno. */
int bgwork_new(struct event_base *base, int threads, struct bgwork **out)
    __attribute__((warn_unused_result));

/* Start the workers now rather than at the first job: for an owner whose first job comes
 * at a busy moment (the spill file's writer: the first minute's burst of runs). 0 or -errno
 * (bgwork_submit tries again). */
int bgwork_start(struct bgwork *w);

/* Queue JOB: its WORK runs on a free worker, in submission order. 0, or -errno when no
 * worker could be started (then JOB is not queued and DONE is never called). */
int bgwork_submit(struct bgwork *w, struct bgwork_job *job) __attribute__((warn_unused_result));

/* For a quiet JOB not yet delivered: if its WORK is over, run its DONE now (on the loop's
 * thread) and return true; else make its end wake the loop after all (it is quiet no more)
 * and return false. */
bool bgwork_collect(struct bgwork *w, struct bgwork_job *job);

/* Wait for the jobs under way, call DONE for every job not yet delivered, stop the threads
 * and free *W. */
void bgwork_free(struct bgwork **w);

#endif
