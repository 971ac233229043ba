#ifndef PGCROND_HIST_BATCH_H
#define PGCROND_HIST_BATCH_H

/* The history's writes (used by history.c), set-based. A batch of the spool's records becomes at
 * most three statements instead of one per line: one INSERT of every row (a run's start, its pid
 * and its end merged into one complete row when they are all in the batch, so a short run
 * costs one row written once and no UPDATE), one UPDATE of the pids and ends of runs whose row
 * an earlier batch wrote, and one more for such lines that do not name their run's start. A
 * run's lines are found with its start by the number its run key ends in, without a lookup.
 * Values travel as array parameters unnested on the server. The updates name the row's
 * start_time, so each touches one day's partition. This is the only way records are written:
 * a line the database refuses is found by halving the batch (history.c).
 *
 * Needs schema 6 (the key (instance, run_key, start_time)). */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct hist_spool_line;

/* Every record statement answers with the rows it wrote that ended (not those still
 * running): run_key, runid, job_name, status, end time (Unix µs), so that the status can
 * show the run id of a run of this process (history.h, hist_set_written_fn). T is the
 * table's alias with its dot ("d.") or "". */
#define HIST_WRITTEN_OPEN "WITH w AS ("
#define HIST_WRITTEN_CLOSE(t)                                                                      \
	" RETURNING " t "run_key, " t "runid, " t "job_name, " t "status,"                         \
	" (extract(epoch FROM " t "end_time) * 1000000)::bigint AS end_us)"                        \
	" SELECT w.run_key, w.runid, w.job_name, w.status, w.end_us FROM w"                        \
	" WHERE w.status <> 'running'"

/* A skip record of a fire that another instance's row already records is not written: a
 * stop's "pgcrond was shutting down" row that waited in the spill file while the history
 * database was unreachable, written at the next start after another instance served the
 * fire (docs/several-instances.md). WHOLE (the row is one record line, not a run's start
 * merged with its end, whose start row may be in the table already), STATUS, JOB, SCHED (a
 * timestamptz) and INSTANCE are the row's expressions; the run's start bounds the look, as
 * the catch-up's does. */
#define HIST_UNLESS_SERVED(whole, status, job, sched, instance)                                    \
	" WHERE NOT (coalesce(" whole " AND " status " = 'skipped', false) AND EXISTS (SELECT"     \
	"  FROM pgcrond.job_run_details o WHERE o.job_name = " job                                 \
	" AND o.scheduled_time = " sched "  AND o.start_time >= " sched                            \
	" - interval '1 minute' AND o.instance <> " instance "))"

/* A batch's row, pointing into the records' fields: inserted, or an update of a row an
 * earlier batch wrote (instance, run key, pid, end, and the start if the lines name it). */
enum hist_batch_col {
	HB_INSTANCE,
	HB_RUN_KEY,
	HB_BOOT_ID,
	HB_JOB_NAME,
	HB_DATABASE,
	HB_USERNAME,
	HB_COMMAND,
	HB_TRIGGER,
	HB_GRAPH_RUN,
	HB_SCHED_US,
	HB_START_US,
	HB_ATTEMPT,
	HB_STATUS,
	HB_MESSAGE,
	HB_SQLSTATE,
	HB_END_US,
	HB_PID,
	HB_WHOLE, /* "t": the row is one record line (R1), not a start and its end */
	HB_N
};
struct hist_batch_row {
	const char *f[HB_N];
	bool insert;
};

/* The rows of a batch of records from HEAD on (hist_spool.h), at most MAX, pure: a pid or an
 * end completes its run's start row only if the start in the batch has its key and instance,
 * else it is an update row. The batch ends before a record it cannot read (damaged, or of a
 * kind this version does not know) and before a start it holds already (a spill line written
 * twice). *ORDER (one allocation: free it): the rows by statement, NSET[0] inserts, NSET[1]
 * updates naming their start, NSET[2] those that do not. Returns the records taken (>= 1), 0
 * if the first cannot be read (nothing allocated), or -ENOMEM. */
int hist_batch_make(const struct hist_spool_line *head, size_t max, struct hist_batch_row ***order,
                    size_t nset[3]) __attribute__((warn_unused_result));

/* Queue on CONN (in pipeline mode already) the statements of hist_batch_make's batch (the
 * rows point into the records until this returns); *TAKEN is set to the records it holds.
 * REPLAY: some record may have been sent before (its rows may be there: the insert skips or
 * completes them); false only when none was, and then a row already there fails the batch
 * (it is halved as for a refused line, history.c). Returns the number of statements queued
 * (>= 1), 0 if the first record cannot be read (the caller drops it), or -1 if libpq failed
 * (the connection's error says why) or memory ran out. TIMEOUT_MS (NULL: none) bounds the
 * batch's statements and their lock waits (statement_timeout and lock_timeout for its
 * transaction): the session it goes on is shared (ownsess.h), and the cluster's heartbeat
 * waits behind it. */
int hist_batch_send(PGconn *conn, const struct hist_spool_line *head, size_t max, bool replay,
                    const char *timeout_ms, size_t *taken);

#endif
