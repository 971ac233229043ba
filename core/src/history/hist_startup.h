#ifndef PGCROND_HIST_STARTUP_H
#define PGCROND_HIST_STARTUP_H

/* The two reads the history makes when the daemon starts (used by history.c): closing the
 * rows an earlier process left running, and the last fire and success of every job for
 * catch-up and staleness. Both name a lower bound on start_time, so PostgreSQL prunes the
 * partitions the retention is about to drop (days past `retain` that a daemon away for days
 * left behind); the rows a previous process left running are found through the small
 * partial index of schema step 8 (job_run_details_open_idx), not by reading every row.
 *
 * Parameters: orphans $1 instance, $2 boot id, $3 message, $4 floor; last fires $1 floor.
 * The floor is a timestamptz literal (hist_startup_floor): a typed parameter, not an
 * expression, so the planner prunes when it plans the statement. */

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

extern const char hist_sql_orphans[];
extern const char hist_sql_last_fires[];
/* The answer RES to hist_sql_orphans, logged: returns the rows it closed. */
long long hist_orphans_closed(const PGresult *res);
/* What the status showed before a restart (hist_request_last_results), a page of jobs at a
 * time: $1 floor, $2 how many failures, $3 how many runs of each job, $4 the last job of the
 * page before (NULL: the first page). */
#define HIST_RESULTS_PAGE "1000"
extern const char hist_sql_last_results[];

/* The oldest start_time the history still keeps at NOW_US (Unix µs) with RETAIN_MS of
 * retention: the start of the UTC day that holds NOW - RETAIN (the retention drops whole
 * days once they ended more than RETAIN ago), written into OUT as a timestamptz literal, and
 * returned; "-infinity" with RETAIN_MS <= 0 (keep everything) or a day OUT cannot hold. */
const char *hist_startup_floor(int64_t now_us, int64_t retain_ms, char *out, size_t outlen);

#endif
