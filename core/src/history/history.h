#ifndef PGCROND_HISTORY_H
#define PGCROND_HISTORY_H

/* Run history in pgcrond.job_run_details of the history database (DESIGN.md "Run
 * history"). A run's row is inserted when it starts and completed when it ends. Writes go
 * through one dedicated async libpq connection on the daemon's event_base, never blocking
 * the loop. While the database is unreachable, records are queued (bounded in memory) and
 * appended to a spill file under state_dir, and replayed in order when it returns: nothing
 * is lost, also across a restart of the daemon. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct hist;

/* What is known when a run starts. Strings are copied. */
struct hist_run {
	const char *job_name;
	const char *database; /* the configured database key */
	const char *username; /* role the job runs as, NULL if not known yet */
	const char *command;  /* the SQL, or "plugin NAME: <first statement>" */
	const char *trigger;  /* schedule | manual | retry | catchup | notify | upstream | reboot */
	const char *graph_run; /* id shared by the runs one upstream run caused; NULL */
	int64_t scheduled_us;  /* the fire instant this run serves (Unix µs), 0 if none */
	int64_t start_us;      /* Unix µs */
	int attempt;           /* 1 for the first */
	int64_t jobid; /* a SQL job's jobid (cron.job's); 0: the history knows the job's id by
	                * its name, from pgcrond.job read at each connect */
	int pid;       /* its backend's pid when it has one at its start (job_pid), else 0:
	                * hist_set_pid tells it later */
};

/* Final statuses, as text in the status column (pg_cron's: starting, running, succeeded,
 * failed; ours added: skipped, upstream_failed). */
#define HIST_SUCCEEDED "succeeded"
#define HIST_FAILED "failed"
#define HIST_SKIPPED "skipped"
#define HIST_UPSTREAM_FAILED "upstream_failed"

/* Open: connects asynchronously on BASE; replays STATE_DIR's spill file first; closes
 * rows a dead previous process left "running" for INSTANCE (a stable name of this daemon,
 * default the host name) as failed. Returns 0 or a negative errno. */
int hist_open(struct event_base *base, const char *conninfo, const char *state_dir,
              const char *instance, int64_t retain_ms, struct hist **out)
    __attribute__((warn_unused_result));
/* Several instances (cluster.h): HOLD true keeps the rows a previous process of INSTANCE
 * left running open until it is called with false, once the instance's name is known to
 * be ours (a second live instance of the same name must not close the first one's runs).
 * Call right after hist_open. */
void hist_hold_orphans(struct hist *h, bool hold);
/* FN(ARG), once: the records an earlier process of this instance left are written and the
 * runs it left open are closed (or their closing failed, logged): from then on a fire it
 * claimed without a row in the history was never served by it (cluster.h,
 * cluster_serve_unserved). */
void hist_set_earlier_fn(struct hist *h, void (*fn)(void *arg), void *arg);
/* This process's boot id (the boot_id column; unique per process). */
const char *hist_boot_id(const struct hist *h);
/* Flush what can be flushed within the grace period, spill the rest, disconnect. */
void hist_close(struct hist **h);
/* The stop's first flush, once the loop no longer runs: what waits is written within the
 * grace period, which hist_close's flush shares (it spills what is left), before the daemon
 * announces the stop to the other instances, which serve a stopped instance's fires that
 * have no row. */
void hist_flush_stopping(struct hist *h);

/* Record a start; returns the run's key (unique within this process, > 0). */
uint64_t hist_start(struct hist *h, const struct hist_run *run);
/* The run_key column of run KEY of this process (at most 96 bytes with its NUL). */
void hist_run_key(const struct hist *h, uint64_t key, char *buf, size_t len);
/* The backend pid once known (job_pid). START_US is the run's start as hist_start was given
 * it, which names the row's day partition (0: unknown, the row is looked for in every
 * partition). */
void hist_set_pid(struct hist *h, uint64_t key, int64_t start_us, int pid);
/* Record the end; START_US as hist_set_pid's. SQLSTATE may be NULL; MESSAGE is
 * return_message (pg_cron: "INSERT 0 1", "1 row", or the error text), never containing a
 * password. */
void hist_finish(struct hist *h, uint64_t key, int64_t start_us, const char *status,
                 const char *message, const char *sqlstate, int64_t end_us);
/* Record the success of run KEY (hist_start's) of a job whose history is "failures": its row
 * goes and the run is counted in pgcrond.job_run_counts (runs and durations per job and
 * hour; schema 27) instead. RUN is as hist_start was given it (its job, trigger, instants);
 * END_US as hist_finish's. It travels the spool as rows do. */
void hist_count(struct hist *h, uint64_t key, const struct hist_run *run, int64_t end_us);
/* A run that never started (overlap skip, upstream_failed): one complete row. Returns its
 * key (as hist_start's), 0 without a history. */
uint64_t hist_record(struct hist *h, const struct hist_run *run, const char *status,
                     const char *message);

/* A run of this process whose row is written with its final status (once its batch has
 * committed): KEY is hist_start's or hist_record's, RUNID the row's runid (what `pgcrond
 * history --run` takes). The strings live only for the call. */
struct hist_written {
	uint64_t key;
	int64_t runid;
	int64_t end_us; /* Unix µs */
	const char *job, *status;
};
typedef void (*hist_written_fn)(void *arg, const struct hist_written *w);
void hist_set_written_fn(struct hist *h, hist_written_fn fn, void *arg);

/* Records waiting to be written (memory + spill file), for tests and status. */
uint64_t hist_pending(const struct hist *h);

/* Limits; a zero field keeps the default (in brackets). */
struct hist_tuning {
	size_t memory_limit;       /* records kept in memory while waiting [10000]; the rest
	                            * wait in the spill file only */
	int64_t spill_max_bytes;   /* spill file size at which new records are dropped, with an
	                            * error [256 MiB] */
	int64_t purge_interval_ms; /* [10 min]; a purge also runs after each connect */
	int64_t close_grace_ms;    /* hist_close's wait for pending writes [5 s]; it
	                            * stops after 1 s without progress */
	int64_t retry_min_ms;      /* reconnect backoff [the own session's: ownsess.h] */
	int64_t retry_max_ms;
	uint64_t backlog_max; /* records waiting behind the batch being written, while the
	                       * database is connected and taking them, past which new runs are held
	                       * back (hist_backlogged) [8192] */
};
void hist_tune(struct hist *h, const struct hist_tuning *t);

/* RUNS points at the number of runs under way, which the executor keeps up to date
 * (exec_runs_under_way), so the history reads it at its turns without asking: while it is
 * not 0, record batches are held back, at most 1 s (then they go on until it is 0), so that
 * history statements do not compete with runs due at the same instant on the same server,
 * and HELD(ARG) is called, for hist_wake() to follow once the last run has ended. RUNS NULL:
 * never held back. */
void hist_set_runs(struct hist *h, const size_t *runs, void (*held)(void *arg), void *arg);
/* No run is under way any more (exec_set_drained_cb): records held back go now. */
void hist_wake(struct hist *h);

/* Backpressure (docs/operations.md, "When the history cannot keep up"): true while the
 * database is connected and taking records but more than tuning.backlog_max of them wait,
 * until at most half of that wait, or the connection is lost (then records go to the spill
 * file, bounded, and runs go on: docs/faults.md). The scheduler starts no new run meanwhile,
 * so that what ran is what is recorded; each change is logged once and counted
 * (hist_stats.holds). FN(ARG) is called from the loop when it ends (FN NULL: no longer). */
bool hist_backlogged(const struct hist *h);
void hist_set_caught_up_fn(struct hist *h, void (*fn)(void *arg), void *arg);

/* Whether a run's row must be checked against another instance's claim of its fire
 * (hist_batch.c): this instance has run alone without a break since SINCE_US (Unix µs), and
 * does until UNTIL_US (monotonic, clock_mono_us) unless told again; 0, 0: it does not
 * (cluster_hooks.lone tells it as it changes). A run that started in that period serves a
 * fire no other instance can have claimed, and its row is written without the look. Never
 * told: every row is checked. */
void hist_set_lone(struct hist *h, int64_t since_us, int64_t until_us);

/* Counters for tests and the status endpoint. */
struct hist_stats {
	bool connected;
	uint64_t pending;        /* = hist_pending() */
	uint64_t written;        /* records acknowledged by the database */
	uint64_t dropped;        /* records given up (spill file full, unwritable data) */
	uint64_t orphans_closed; /* rows of a dead previous process closed as failed */
	uint64_t purged;         /* rows dropped by the retention (estimated: whole partitions) */
	uint64_t purge_waits;    /* partition passes that gave way to another session's lock */
	uint64_t connects;       /* successful (re)connects */
	uint64_t partitions_dropped; /* history partitions dropped by the retention */
	bool backlogged;             /* hist_backlogged() */
	uint64_t holds;              /* times it held new runs back */
};
void hist_get_stats(const struct hist *h, struct hist_stats *out);

/* Catch-up and staleness across restarts: once the connection is up and a previous
 * process's rows are closed, FN is called for each job in the history with the last fire
 * instant (Unix seconds) any instance served for it (trigger schedule or catchup; 0 if none)
 * and the end of its last success (Unix µs; 0 if none), then once with JOB_NAME NULL to end
 * the answer. */
typedef void (*hist_last_fires_fn)(void *arg, const char *job_name, int64_t last_fire_s,
                                   int64_t last_success_us);
void hist_request_last_fires(struct hist *h, hist_last_fires_fn fn, void *arg);
/* The status's memory across restarts: once the connection is up and a previous process's
 * rows are closed, one statement (hist_startup.h) reads, for every job in the history, its
 * last result and its last MAX_RUNS ended runs, and the last MAX_FAILURES failed runs of all
 * jobs. FN is called for each row, KIND saying which (newest first within a kind), then once
 * with R NULL to end the answer (also when the read failed: logged). The strings live only
 * for the call. */
enum hist_past_kind {
	HIST_PAST_LAST = 'L',    /* a job's last result (succeeded or failed), with its message */
	HIST_PAST_RUN = 'S',     /* one of a job's last runs, any final status; no message */
	HIST_PAST_FAILURE = 'F', /* one of the last failures, with its message */
};
struct hist_past_run {
	const char *job, *status, *message, *sqlstate,
	    *trigger; /* message, sqlstate: NULL if none */
	int attempt;
	int64_t start_us, end_us; /* Unix µs */
	int64_t runid;            /* job_run_details.runid (pgcrond history --run) */
};
typedef void (*hist_last_results_fn)(void *arg, enum hist_past_kind kind,
                                     const struct hist_past_run *r);
void hist_request_last_results(struct hist *h, int max_failures, int max_runs,
                               hist_last_results_fn fn, void *arg);

/* The freshness state of the jobs (a JSON array, schema step 19's
 * pgcrond.freshness_publish), which the history database shows in pgcrond.view_status. The
 * latest replaces one not yet sent: state, not history, so nothing of it is spooled or
 * retried (the next one follows soon). Takes JSON (malloc'd). */
void hist_publish_freshness(struct hist *h, char *json);
/* The asker goes away: the start-up reads it asked for (hist_request_last_fires,
 * hist_request_last_results) and the written runs (hist_set_written_fn) are no longer told,
 * also when their answers arrive while hist_close() flushes. */
void hist_forget_asker(struct hist *h);

/* The NOTIFY channel pgcrond.trigger() (sql/pgcrond--2.sql) sends a request's id on, in the
 * history database; the daemon LISTENs on it. */
#define PGCROND_TRIGGER_CHANNEL "pgcrond_trigger"
/* ... and the channel it announces each request's outcome on: "ID OUTCOME" ("42 started",
 * "43 refused: ..."), a wake-up only: anyone may NOTIFY it, so `pgcrond trigger` reads the
 * outcome from the request's row (pgcrond.trigger_outcome, sql/pgcrond--11.sql). */
#define PGCROND_TRIGGER_OUTCOME_CHANNEL "pgcrond_trigger_outcome"

#endif
