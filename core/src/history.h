#ifndef PGCROND_HISTORY_H
#define PGCROND_HISTORY_H

/* Run history in pgcrond.job_run_details of the history database (DESIGN.md "Run
 * history"). A run's row is inserted when it starts and completed when it ends. Writes go
 * through one dedicated async libpq connection on the daemon's event_base, never blocking
 * the loop. While the database is unreachable, records are queued (bounded in memory) and
 * appended to a spill file under state_dir, and replayed in order when it returns: nothing
 * is lost, also across a restart of the daemon. */

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct hist;

/* What is known when a run starts. Strings are copied. */
struct hist_run {
	const char *job_name;
	const char *database;  /* the configured database key */
	const char *username;  /* role the job runs as, NULL if not known yet */
	const char *command;   /* the SQL, or "plugin NAME: <first statement>" */
	const char *trigger;   /* schedule | manual | retry | catchup | notify | upstream | reboot */
	const char *graph_run; /* id shared by the runs one upstream run caused; NULL */
	int64_t scheduled_us;  /* the fire instant this run serves (Unix µs), 0 if none */
	int64_t start_us;      /* Unix µs */
	int attempt;           /* 1 for the first */
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
/* Flush what can be flushed within the grace period, spill the rest, disconnect. */
void hist_close(struct hist **h);

/* Record a start; returns the run's key (unique within this process, > 0). */
uint64_t hist_start(struct hist *h, const struct hist_run *run);
/* The backend pid once known (job_pid). */
void hist_set_pid(struct hist *h, uint64_t key, int pid);
/* Record the end. SQLSTATE may be NULL; MESSAGE is return_message (pg_cron: "INSERT 0 1",
 * "1 row", or the error text), never containing a password. */
void hist_finish(struct hist *h, uint64_t key, const char *status, const char *message,
		 const char *sqlstate, int64_t end_us);
/* A run that never started (overlap skip, upstream_failed): one complete row. */
void hist_record(struct hist *h, const struct hist_run *run, const char *status,
		 const char *message);

/* Records waiting to be written (memory + spill file), for tests and status. */
uint64_t hist_pending(const struct hist *h);

#endif
