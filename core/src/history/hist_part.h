#ifndef PGCROND_HIST_PART_H
#define PGCROND_HIST_PART_H

/* The history's partitions (sql/pgcrond--6.sql): a maintenance thread that, on its own
 * connection to the history database, creates the daily partitions ahead of time and
 * applies the retention by detaching whole days CONCURRENTLY and dropping them.
 *
 * Why a thread with a blocking connection: DETACH ... CONCURRENTLY cannot run in a
 * transaction block and waits for every transaction that might still see the partition
 * (a long report on the history, say). On the writer's connection that wait would hold up
 * every run record; on a connection of its own, driven by a thread, it holds up nothing.
 * The thread shares no state with the event loop but its counters (under a mutex). */

#include <stdint.h>

struct hist_part;

struct hist_part_stats {
	uint64_t runs;         /* maintenance passes completed (connected and done) */
	uint64_t created;      /* partitions created */
	uint64_t dropped;      /* partitions dropped by the retention */
	uint64_t dropped_rows; /* their rows, as estimated by the planner's statistics */
	uint64_t failures;     /* passes that failed (unreachable, old schema, an error) */
};

/* Start the thread: a first pass at once, then every INTERVAL_MS and whenever kicked.
 * RETAIN_MS <= 0 keeps every partition (only creates). Returns 0 or a negative errno. */
int hist_part_start(const char *conninfo, int64_t retain_ms, int64_t interval_ms,
                    struct hist_part **out) __attribute__((warn_unused_result));
/* Ask for a pass as soon as the thread is free (it coalesces). */
void hist_part_kick(struct hist_part *p);
/* Change the interval between passes (takes effect after the current wait). */
void hist_part_set_interval(struct hist_part *p, int64_t interval_ms);
void hist_part_get_stats(struct hist_part *p, struct hist_part_stats *out);
/* Stop the thread and free: an idle thread is joined; one in a pass is left to finish it (or
 * to end with the process) and frees its own state. */
void hist_part_stop(struct hist_part **p);

#endif
