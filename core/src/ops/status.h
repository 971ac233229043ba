#ifndef PGCROND_STATUS_H
#define PGCROND_STATUS_H

/* The daemon's live state as one JSON document (jansson), built on demand from the
 * scheduler, the executor, the history writer and the listeners, on the event loop: the
 * answer of `pgcrond status` (ctl.h) and the source of the HTTP endpoints. Reading only; no
 * I/O apart from one stat() of the history spool file.
 *
 * The document (times as UTC ISO-8601 strings "2026-11-22T10:00:01Z", each with a
 * "<key>_unix" twin in Unix seconds as a number; absent keys mean "none"):
 *
 *   { "version", "instance", "pid", "started_at", "uptime_s", "now", "draining",
 *     "running", "queued" (fires waiting for a max_running slot), "max_running",
 *     "databases": [ { "name", "pool", "open", "idle", "busy", "connecting", "waiting",
 *                      "reachable", "last_error" } ],
 *     "history":   { "database", "connected", "pending" (records not yet written),
 *                    "spool_bytes", "written", "dropped" },
 *     "plugins":   [ { "name", "version", "path", "abi_minor" } ],
 *     "cluster":   { "connected", "in_recovery", "peers_live", "peers" }, -- with a history
 *                                                    database: the other live instances
 *     "jobs": [ {
 *        "name", "kind" ("sql" | "plugin"), "plugin", "database", "schedule", "after": [],
 *        "listen", "enabled", "paused",
 *        "state": "running" | "queued" | "waiting_instance" | "waiting_upstream"
 *                 | "debouncing" | "retrying" | "paused" | "disabled" | "idle",
 *        "running":   { "since", "elapsed_s", "database", "backend_pid", "trigger",
 *                       "attempt" },                          -- while a run is under way
 *        "retry":     { "attempt", "next_try" },             -- waiting to retry
 *        "debounce":  { "payloads", "due" },                 -- notifications gathered
 *        "next_scheduled",                                   -- the job's next cron instant
 *        "next_fire",                        -- the earliest of next_scheduled, the retry and
 *                                               the debounce deadline, as the daemon holds them
 *        "last_result": { "status", "message", "sqlstate", "trigger", "attempt",
 *                         "started_at", "ended_at", "duration_ms",
 *                         "runid" },  -- the row's runid (pgcrond history --run), once
 *                                        the row is written (or read back at start)
 *        "recent_runs": [ { "status" (succeeded | failed | skipped | upstream_failed),
 *                           "started_at", "ended_at", "duration_ms", "attempt", "runid" } ],
 *                     -- its last ended runs (at most 10), newest first: read back from
 *                        the history at start, then kept as runs end
 *        "last_success", "max_staleness_s", "age_s" (since the last success), "stale",
 *        "consecutive_failures",
 *        "waiting": [ { "for" ("slot" | "connection" | "upstream" | "retry" | "own_run"
 *                       | "notifications" | "instance" | "claim" | "mark"), "trigger",
 *                       "attempt", "scheduled_for" (a scheduled fire's instant), "since" } ]
 *                     -- its runs that wait, and for what (sched.h: pgcrond drop drops them,
 *                        one waiting for its connection or its start mark while nothing of
 *                        it was sent) } ],
 *     "refused": { "<jobid>": { "name", "cron_name", "role", "why", "said" } },
 *                     -- the jobs made in SQL that the daemon does not run, and why (not
 *                        with JOB_OR_NULL: a command on such a job gets "said" as its error)
 *     "recent_failures": [ { "job", "ended_at", "message", "sqlstate", "runid" } ] }
 *                     -- the last 20 failed runs (of JOB_OR_NULL only, when given),
 *                        newest first; those from before the start read back from the
 *                        history; runid once the row is written
 *
 * A paused job's state is "paused" unless a run of it is under way ("running", with
 * "paused": true). */

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

struct sched;
struct exec;
struct hist;
struct triggers;
struct cluster;
struct metrics;

/* Where the state comes from; owned by the daemon, which keeps it current (the pointers
 * may change across a shutdown: triggers becomes NULL). Everything borrowed. */
struct status_src {
	struct sched *sched;
	struct exec *ex;
	struct hist *hist;          /* NULL: no history database */
	struct triggers **triggers; /* points to the daemon's pointer, which may be NULL */
	json_t **refused; /* the jobs made in SQL left out, the daemon's (sqljobs_note_refused) */
	const char *instance;
	struct cluster *cluster; /* NULL: not coordinated with other instances (cluster.h) */
	int64_t started_us;      /* Unix µs */
	struct metrics *metrics; /* the last failures (metrics.h); NULL: none shown */
};

/* The whole state, or with JOB_OR_NULL only that job in "jobs" (the daemon part is always
 * there). Returns a new reference (json_decref it), or NULL with errno ENOENT (no such
 * job) or ENOMEM. */
json_t *status_snapshot(const struct status_src *src, const char *job_or_null);

/* The Prometheus text (GET /metrics) of the status document ST and M's counters
 * (metrics.h), so the page, `pgcrond status` and the metrics never disagree. Reads only its
 * arguments (the scrape runs it on a worker thread, over copies). Returns 0, or -EIO when F
 * failed, -ENOMEM. */
int status_metrics(const struct metrics *m, const json_t *st, FILE *f)
    __attribute__((warn_unused_result));

#endif
