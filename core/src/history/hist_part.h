#ifndef PGCROND_HIST_PART_H
#define PGCROND_HIST_PART_H

/* The history's partitions (sql/pgcrond--6.sql): creating the daily partitions ahead of time
 * and applying the retention by detaching whole days CONCURRENTLY and dropping them, as
 * statements on the history database's own session (ownsess.h), one of its clients beside
 * the history's records and the cluster's heartbeats. A pass is a few short statements, each
 * waiting for a lock a moment at most: a reader of the history (a long report, any role with
 * SELECT on it) that holds what a step needs makes the step give way and the pass start again
 * a few seconds later, so nothing behind it on the session waits. Loop thread only. */

#include <event2/event.h>
#include <stdint.h>

/* A DDL statement of the history on the own session (a pass's steps here, and history.c's
 * partitions at connect and for a row whose day has none) waits for a lock this long at most
 * (ms): less than the history's batches allow themselves (history.c BATCH_TIMEOUT), for the
 * same reason: the cluster's heartbeat and everything else on the session waits behind it. */
#define HIST_PART_LOCK_TIMEOUT_MS "200"
/* The FROM item that gives such a statement, when it is a single SELECT of a function, that
 * lock_timeout for its own transaction only (set before the function runs). */
#define HIST_PART_SHORT_LOCKS                                                                      \
	"pg_catalog.set_config('lock_timeout', '" HIST_PART_LOCK_TIMEOUT_MS "', true)"
/* After a statement gave way to a lock (SQLSTATE 55P03), it is tried again this much later
 * (ms). */
#define HIST_PART_WAIT_RETRY_MS 5000

struct hist_part;

struct hist_part_stats {
	uint64_t runs;         /* maintenance passes completed */
	uint64_t dropped;      /* partitions dropped by the retention */
	uint64_t dropped_rows; /* their rows, as estimated by the planner's statistics */
	uint64_t failures;     /* passes that failed (connection lost, old schema, an error) */
	uint64_t waits;        /* passes that gave way to a lock held elsewhere */
};

/* Join the own session of CONNINFO on BASE: a pass at each connect (the first one at start),
 * then every INTERVAL_MS. RETAIN_MS <= 0 keeps every partition (only creates). Returns 0 or
 * -ENOMEM. */
int hist_part_start(struct event_base *base, const char *conninfo, int64_t retain_ms,
                    int64_t interval_ms, struct hist_part **out)
    __attribute__((warn_unused_result));
/* Change the interval between passes (from the next pass's end). */
void hist_part_set_interval(struct hist_part *p, int64_t interval_ms);
void hist_part_get_stats(const struct hist_part *p, struct hist_part_stats *out);
/* Leave the session and free (NULL: nothing). A statement in flight runs to its end without
 * a callback; the lock_timeout it was given is reset behind it all the same. */
void hist_part_stop(struct hist_part **p);

#endif
