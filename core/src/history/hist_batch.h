#ifndef PGCROND_HIST_BATCH_H
#define PGCROND_HIST_BATCH_H

/* The history's writes (used by history.c), set-based. A batch of the spool's records becomes at
 * most four statements instead of one per line: one INSERT of every row (a run's start, its pid
 * and its end merged into one complete row when they came before the start went out, so a
 * short run costs one row written once and no UPDATE), one UPDATE of the pids and ends of runs
 * whose row an earlier batch wrote, one more for such lines that do not name their run's start,
 * and one call adding the successes counted instead of written (a job's history = "failures": a
 * short run's start and its count write no row at all). A run's lines are found with its start
 * by the number its run key ends in, without a lookup.
 * Values travel as array parameters unnested on the server. The updates name the row's
 * start_time, so each touches one day's partition. This is the only way records are written:
 * a line the database refuses is found by halving the batch (history.c).
 *
 * Needs schema 6 (the key (instance, run_key, start_time)). */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hist_spool_line;

/* Every record statement answers with the rows it wrote that ended (not those still
 * running): run_key, runid, job_name, status, end time (Unix µs), so that the status can
 * show the run id of a run of this process (history.h, hist_set_written_fn). T is the
 * table's alias with its dot ("d.") or "". */
#define HIST_WRITTEN_OPEN "WITH w AS ("
#define HIST_WRITTEN_CLOSE(t)                                                                      \
	" RETURNING " t "run_key, " t "runid, " t "job_name, " t "status,"                         \
	" (EXTRACT(epoch FROM " t "end_time) OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8"     \
	" AS end_us) SELECT w.run_key, w.runid, w.job_name, w.status, w.end_us FROM w"             \
	" WHERE w.status OPERATOR(pg_catalog.<>) 'running'"
#define HIST_WRITTEN_CLOSE_D HIST_WRITTEN_CLOSE("d.")
/* SQL: the time US Unix µs name, a timestamptz; the ends and starts of rows u. */
#define HIST_US_TIME(us)                                                                           \
	"(pg_catalog.timestamptz 'epoch' OPERATOR(pg_catalog.+) (" us                              \
	" OPERATOR(pg_catalog.*) interval '1 microsecond'))"
#define HIST_U_END HIST_US_TIME("u.end_us")
#define HIST_U_START HIST_US_TIME("u.start_us")

/* A skip record of a fire that another instance's row already records is not written: a
 * stop's "pgcrond was shutting down" row that waited in the spill file while the history
 * database was unreachable, written at the next start after another instance served the
 * fire (docs/several-instances.md). WHOLE (the row is one record line, not a run's start
 * merged with its end, whose start row may be in the table already), STATUS, JOB, SCHED (a
 * timestamptz) and INSTANCE are the row's expressions; the run's start bounds the look, as
 * the catch-up's does. */
#define HIST_UNLESS_SERVED(whole, status, job, sched, instance)                                    \
	" WHERE NOT (coalesce(" whole " AND " status " OPERATOR(pg_catalog.=) 'skipped', false)"   \
	" AND EXISTS (SELECT FROM pgcrond.job_run_details o"                                       \
	"  WHERE o.job_name OPERATOR(pg_catalog.=) " job                                           \
	"  AND o.scheduled_time OPERATOR(pg_catalog.=) " sched                                     \
	"  AND o.start_time OPERATOR(pg_catalog.>=) (" sched                                       \
	"  OPERATOR(pg_catalog.-) interval '1 minute')"                                            \
	"  AND o.instance OPERATOR(pg_catalog.<>) " instance "))"

/* SQL: the pids and ends of runs an earlier batch wrote. HIST_SQL_UPD(COND): COND names the row's
 * start_time, so that each update touches one day's partition; a P1 or F1 line (its run's
 * start unknown to the process that wrote it) has none, and its row is looked for in every
 * partition (sql_upd_any). A run's pid and end are two input rows (the batch pairs a run's
 * lines with its start only), made one per run here: an UPDATE takes one input row per row it
 * changes. An end leaves a row another instance closed (it found this one dead: cluster.h)
 * with that instance's verdict. */
#define HIST_SQL_UPD(start_cond)                                                                   \
	HIST_WRITTEN_OPEN                                                                          \
	"UPDATE pgcrond.job_run_details d"                                                         \
	" SET status = coalesce(u.status, d.status),"                                              \
	"  return_message = CASE WHEN u.status IS NULL THEN d.return_message ELSE u.message END,"  \
	"  sqlstate = CASE WHEN u.status IS NULL THEN d.sqlstate ELSE u.sqlstate END,"             \
	"  end_time = coalesce(" HIST_U_END ", d.end_time),"                                       \
	"  duration_ms = coalesce(EXTRACT(epoch FROM " HIST_U_END                                  \
	"   OPERATOR(pg_catalog.-) d.start_time) OPERATOR(pg_catalog.*) 1000, d.duration_ms),"     \
	"  job_pid = coalesce(u.pid, d.job_pid)"                                                   \
	" FROM (SELECT instance, run_key, pg_catalog.max(start_us) AS start_us,"                   \
	"  pg_catalog.max(status) AS status, pg_catalog.max(message) AS message,"                  \
	"  pg_catalog.max(sqlstate) AS sqlstate, pg_catalog.max(end_us) AS end_us,"                \
	"  pg_catalog.max(pid) AS pid"                                                             \
	"  FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"                              \
	"   pg_catalog.unnest($2::pg_catalog.text[]),"                                             \
	"   pg_catalog.unnest($3::pg_catalog.int8[]),"                                             \
	"   pg_catalog.unnest($4::pg_catalog.text[]),"                                             \
	"   pg_catalog.unnest($5::pg_catalog.text[]),"                                             \
	"   pg_catalog.unnest($6::pg_catalog.text[]),"                                             \
	"   pg_catalog.unnest($7::pg_catalog.int8[]), pg_catalog.unnest($8::pg_catalog.int4[]))"   \
	"   AS v(instance, run_key, start_us, status, message, sqlstate, end_us, pid)"             \
	"  GROUP BY instance, run_key) u"                                                          \
	" WHERE d.instance OPERATOR(pg_catalog.=) u.instance"                                      \
	" AND d.run_key OPERATOR(pg_catalog.=) u.run_key" start_cond                               \
	" AND (u.status IS NULL OR d.status OPERATOR(pg_catalog.=) ANY"                            \
	"  (ARRAY['starting', 'running']))" HIST_WRITTEN_CLOSE_D
/* The condition that takes one partition. */
#define HIST_SQL_UPD_START " AND d.start_time OPERATOR(pg_catalog.=) " HIST_U_START

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
	HB_WHOLE,      /* "t": the row is one record line (R1), not a start and its end */
	HB_JOBID,      /* the job's id (hist_batch_ctx), NULL: looked up by its name */
	HB_CLAIMS,     /* "t": looked for in other instances' claims (hist_batch_ctx) */
	HB_N,          /* (the insert's columns end here) */
	HB_SEQ = HB_N, /* a counted success's place among its process's (K_COUNT) */
	HB_ALL
};
struct hist_batch_row {
	const char *f[HB_ALL];
	bool insert;
	bool count; /* a success counted: its row goes (or is never inserted), and it is added to
	             * pgcrond.job_run_counts */
};

/* The rows of a batch of records from HEAD on (hist_spool.h), at most MAX: a pid or an end
 * completes its run's start row only if the start in the batch has its key and instance, else
 * it is an update row; a count makes its run's start row (or a row of its own) a count row,
 * which inserts nothing. A pid, end or count behind the batch whose start is in it completes
 * that row too and is marked merged: its batch skips it, its fields are in the table once this
 * one commits (hist_batch_unmerge undoes the marks when it fails). The batch ends before a
 * record it cannot read (damaged, or of a kind this version does not know) and before a start
 * it holds already (a spill line written twice). *ORDER (one allocation: free it): the rows by
 * statement, NSET[0] inserts, NSET[1] updates naming their start, NSET[2] those that do not,
 * NSET[3] counts. Returns the records taken (>= 1), 0 if the first cannot be read (nothing
 * allocated), or -ENOMEM. */
int hist_batch_make(struct hist_spool_line *head, size_t max, struct hist_batch_row ***order,
                    size_t nset[4]) __attribute__((warn_unused_result));
/* A batch failed, or its answer was lost: no line from HEAD on is merged any more. */
void hist_batch_unmerge(struct hist_spool_line *head);

/* What the sender knows beside the records, so that a row costs no lookup on the server. */
struct hist_batch_ctx {
	/* JOB's id as text, NULL if not known (the insert then looks it up in pgcrond.job) */
	const char *(*jobid)(const void *arg, const char *job);
	const void *arg;
	/* this process's runs from LONE_FIRST on (its boot BOOT_ID's run numbers, hist_run_key)
	 * started while this instance has run alone, without a break until now: no other
	 * instance can hold their fires' claims, and their rows are not looked for there. 0:
	 * every row that did not succeed on a first attempt is. */
	uint64_t lone_first;
	const char *boot_id;
	const char *retain_ms; /* the retention (ms, as text; NULL or "0": none): counts older
	                        * than it go as counts are added */
	/* set: the names of the jobs whose id was not known, as a text[] literal (malloc'd;
	 * NULL: none) */
	char *unknown;
};

/* Queue on CONN (in pipeline mode already) the statements of hist_batch_make's batch (the
 * rows point into the records until this returns); *TAKEN is set to the records it holds.
 * REPLAY: some record may have been sent before (its rows may be there: the insert skips or
 * completes them); false only when none was, and then a row already there fails the batch
 * (23505) and the same records go again as a replay (history.c). Returns the number of
 * statements queued (>= 1), 0 if the first record cannot be read (the caller drops it), or -1
 * if libpq failed (the connection's error says why) or memory ran out. TIMEOUT_MS bounds the
 * batch's statements and their lock waits (statement_timeout and lock_timeout for its
 * transaction): the session it goes on is shared (ownsess.h), and the cluster's heartbeat
 * waits behind it. */
int hist_batch_send(PGconn *conn, struct hist_spool_line *head, size_t max, bool replay,
                    const char *timeout_ms, struct hist_batch_ctx *ctx, size_t *taken);

#endif
