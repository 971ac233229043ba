/* The history's start-up reads, bounded so the partitions past retention are pruned
 * (hist_startup.h). */
#include "hist_startup.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "pgconn.h"

/* Rows a previous process of this instance left running: any boot but ours. A killed process's
 * run may still be busy in its statement (its backend notices the closed connection only when
 * it next writes to it) and would commit when the statement ends, after its row says failed
 * and while this process may run the job again: its backend is ended first (by pid, the run's
 * application name and a start before the run's, so a reused pid is never hit), waiting up to
 * 3 s for it to go, as a survivor fences a dead instance's runs (cluster_lock.c, sql_reap). A
 * row whose backend did not go in time, or that this role may not end (the job database's
 * conninfo names another role), stays open and is logged. Answers the rows closed, the
 * backends ended and those that did not go. */
#define RUN_BACKEND_D_A PGCONN_SQL_RUN_BACKEND("d", "a")
#define END_BACKEND_A PGCONN_SQL_END_BACKEND("a")
#define EQ " OPERATOR(pg_catalog.=) "
#define START_US                                                                                   \
	"(EXTRACT(epoch FROM d.start_time) OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8"
#define END_US "(EXTRACT(epoch FROM d.end_time) OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8"
#define SINCE_1 "d.start_time OPERATOR(pg_catalog.>=) $1::pg_catalog.timestamptz"
/* the open rows of instance $1 a process other than boot $2 wrote since $4 */
#define ORPHAN_ROWS                                                                                \
	" d.instance" EQ "$1 AND d.status" EQ "ANY (ARRAY['starting', 'running'])"                 \
	" AND (d.boot_id" EQ "$2) IS NOT TRUE"                                                     \
	" AND d.start_time OPERATOR(pg_catalog.>=) $4::pg_catalog.timestamptz"
const char hist_sql_orphans[] =
    "WITH fence AS ("
    "  SELECT d.run_key, d.job_name, a.pid, " END_BACKEND_A " AS gone"
    "   FROM pgcrond.job_run_details d JOIN pg_catalog.pg_stat_activity a"
    "   ON " RUN_BACKEND_D_A " WHERE" ORPHAN_ROWS "),"
    " closed AS ("
    "  UPDATE pgcrond.job_run_details d"
    "     SET status = 'failed', end_time = pg_catalog.now(),"
    /* the kind's note (job_kind_lost_note), by the job's kind in the registry */
    "         return_message = $3 OPERATOR(pg_catalog.||) coalesce($5::pg_catalog.jsonb"
    "          OPERATOR(pg_catalog.->>) (SELECT j.kind FROM pgcrond.job j"
    "           WHERE j.jobname OPERATOR(pg_catalog.=) d.job_name), ''),"
    "         duration_ms = EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-)"
    "          d.start_time) OPERATOR(pg_catalog.*) 1000"
    "   WHERE" ORPHAN_ROWS " AND NOT EXISTS (SELECT FROM fence f"
    "    WHERE f.run_key" EQ "d.run_key AND NOT f.gone)"
    "  RETURNING 1)"
    " SELECT (SELECT pg_catalog.count(*) FROM closed),"
    "  (SELECT pg_catalog.count(*) FROM fence WHERE gone),"
    "  (SELECT pg_catalog.string_agg(pg_catalog.format('%s (backend %s)', job_name, pid), ', ')"
    "    FROM fence WHERE NOT gone)";

/* Per job (any instance): the last fire it served, what catch-up compares the schedule with,
 * and the end of its last success, where its staleness counts from; from its rows and from
 * its successes counted instead (history = "failures") */
#define LAST_FIRES(fire, end, from)                                                                \
	"SELECT job_name, EXTRACT(epoch FROM pg_catalog.max(" fire "))::pg_catalog.int8,"          \
	" (EXTRACT(epoch FROM pg_catalog.max(" end "))"                                            \
	"  OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8 FROM " from " GROUP BY job_name"
#define LAST_FIRES_ROWS                                                                            \
	LAST_FIRES("scheduled_time) FILTER (WHERE scheduled_time IS NOT NULL"                      \
	           " AND trigger" EQ "ANY (ARRAY['schedule', 'catchup'])",                         \
	           "end_time) FILTER (WHERE status" EQ "'succeeded'",                              \
	           "pgcrond.job_run_details d WHERE " SINCE_1)
const char hist_sql_last_fires[] =
    "SELECT job_name, pg_catalog.max(f), pg_catalog.max(e) FROM (" LAST_FIRES_ROWS
    " UNION ALL " LAST_FIRES("last_fire", "last_end",
                             "pgcrond.job_run_counts WHERE hour OPERATOR(pg_catalog.>=)"
                             " $1::pg_catalog.timestamptz") ") AS l(job_name, f, e)"
                                                            " GROUP BY job_name";

/* What the status showed before the restart, for every job in the history (any instance):
 * its last result ('L', with its message), its last $3 ended runs ('S', the strip), and the
 * last $2 failures of all jobs ('F'). The job names come from a skip scan over the index on
 * (job_name, start_time), one probe a name, and each job's rows from that index, newest first:
 * no sort of the whole table, however long the history. A page holds the jobs named after $4
 * (NULL: from the first, with the failures), HIST_RESULTS_PAGE of them, and ends with an 'N'
 * row naming the last if more may follow: a statement of a second or more, and an answer of
 * tens of MB, would hold the history's batches and the heap. Rows: kind, job_name, status,
 * return_message, sqlstate, trigger, attempt, start and end in Unix µs, runid; newest first
 * within each kind. */
const char hist_sql_last_results[] =
    "WITH RECURSIVE n(job, k) AS ("
    " SELECT pg_catalog.min(d.job_name), 1 FROM pgcrond.job_run_details d WHERE " SINCE_1
    "  AND ($4::pg_catalog.text IS NULL OR d.job_name OPERATOR(pg_catalog.>) $4) UNION ALL"
    " SELECT (SELECT pg_catalog.min(d.job_name) FROM pgcrond.job_run_details d"
    "   WHERE d.job_name OPERATOR(pg_catalog.>) n.job AND " SINCE_1
    "), n.k OPERATOR(pg_catalog.+) 1"
    " FROM n WHERE n.job IS NOT NULL AND n.k OPERATOR(pg_catalog.<) " HIST_RESULTS_PAGE ")"
    " SELECT * FROM ("
    " SELECT 'L' AS kind, r.* FROM n CROSS JOIN LATERAL ("
    "  SELECT d.job_name, d.status, d.return_message, d.sqlstate, d.trigger, d.attempt,"
    "  " START_US " AS start_us, " END_US " AS end_us, d.runid"
    "  FROM pgcrond.job_run_details d WHERE d.job_name" EQ "n.job AND " SINCE_1
    "   AND d.end_time IS NOT NULL AND d.status" EQ "ANY (ARRAY['succeeded', 'failed'])"
    "  ORDER BY d.start_time DESC, d.runid DESC LIMIT 1) r"
    " UNION ALL"
    " SELECT 'S', r.* FROM n CROSS JOIN LATERAL ("
    "  SELECT d.job_name, d.status, NULL::pg_catalog.text, NULL::pg_catalog.text, d.trigger,"
    "  d.attempt, " START_US ", " END_US ", d.runid"
    "  FROM pgcrond.job_run_details d WHERE d.job_name" EQ "n.job AND " SINCE_1
    "   AND d.end_time IS NOT NULL AND d.status" EQ "ANY (ARRAY['succeeded', 'failed',"
    "    'skipped', 'upstream_failed'])"
    "  ORDER BY d.start_time DESC, d.runid DESC LIMIT $3::pg_catalog.int4) r"
    " UNION ALL"
    " (SELECT 'F', d.job_name, d.status, d.return_message, d.sqlstate, d.trigger, d.attempt,"
    "  " START_US ", " END_US ", d.runid"
    "  FROM pgcrond.job_run_details d WHERE " SINCE_1 " AND $4::pg_catalog.text IS NULL"
    "   AND d.end_time IS NOT NULL AND d.status" EQ "'failed'"
    "  ORDER BY d.start_time DESC, d.runid DESC LIMIT $2::pg_catalog.int4)"
    " UNION ALL"
    " SELECT 'N', pg_catalog.max(n.job), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM n"
    "  HAVING pg_catalog.count(n.job) OPERATOR(pg_catalog.>=) " HIST_RESULTS_PAGE ") AS p"
    " ORDER BY p.kind, p.start_us DESC, p.runid DESC";

long long hist_orphans_closed(const PGresult *res)
{
	bool one = res && PQntuples(res) == 1 && PQnfields(res) == 3;
	long long closed = one ? atoll(PQgetvalue(res, 0, 0)) : 0;
	long long ended = one ? atoll(PQgetvalue(res, 0, 1)) : 0;

	if (closed > 0 && ended > 0)
		log_notice(
		    "history: closed %lld runs a previous pgcrond process left running as "
		    "failed; %lld of them were still busy in their statement: their backends "
		    "were ended first, so their transactions rolled back",
		    closed, ended);
	else if (closed > 0)
		log_notice("history: closed %lld runs a previous pgcrond process left running as "
		           "failed",
		           closed);
	if (one && !PQgetisnull(res, 0, 2))
		log_warning("history: runs a previous pgcrond process left running are still busy "
		            "in their statement, and their backends could not be ended (not gone "
		            "within 3 s, or another role's and this role lacks pg_signal_backend): "
		            "%s; their rows stay running until the next start",
		            PQgetvalue(res, 0, 2));
	return closed;
}

const char *hist_startup_floor(int64_t now_us, int64_t retain_ms, char *out, size_t outlen)
{
	int64_t s = now_us / 1000000 - retain_ms / 1000;
	s -= ((s % 86400) + 86400) % 86400; /* the start of its UTC day */
	time_t t = (time_t)s;
	struct tm tm;
	int n = retain_ms > 0 && gmtime_r(&t, &tm)
	            ? snprintf(out, outlen, "%04d-%02d-%02d 00:00:00+00", tm.tm_year + 1900,
	                       tm.tm_mon + 1, tm.tm_mday)
	            : -1;
	return n < 0 || (size_t)n >= outlen ? "-infinity" : out;
}
