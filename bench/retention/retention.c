/* bench_retention: the history retention on a large history (sql/pgcrond--6.sql,
 * core/src/history/hist_part.c). Fills DAYS past days of ROWS_PER_DAY rows each (default 10 x 1
 * million = 10 million rows), then runs the daemon's retention pass PASSES times, each with
 * a retention one day shorter, so each pass drops one whole day. Prints the time of each pass
 * (connect the own session, ensure the days ahead, detach CONCURRENTLY, drop), and how long a
 * writer inserting one row at a time on a connection of its own, meanwhile, waited at most.
 * Never fails on time.
 *
 *   scripts/pg-sandbox run -- build/bench/retention/bench_retention
 *   (RET_DAYS=10, RET_ROWS_PER_DAY=1000000, RET_PASSES=5) */
#include <event2/event.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "hist_part.h"
#include "log.h"

#define DB "bench_retention"

static long env_long(const char *name, long def)
{
	const char *v = getenv(name);
	long n = v ? atol(v) : 0;
	return n > 0 ? n : def;
}

int main(void)
{
	const char *sandbox = getenv("PGCROND_SANDBOX");
	long days = env_long("RET_DAYS", 10), per_day = env_long("RET_ROWS_PER_DAY", 1000000);
	long passes = env_long("RET_PASSES", 5);
	char ci[1200], sql[1024];

	if (!sandbox)
		sandbox = getenv("PGSANDBOX_DIR");
	if (!sandbox) {
		fprintf(stderr, "bench_retention: run it under scripts/pg-sandbox run (no "
		                "$PGCROND_SANDBOX / $PGSANDBOX_DIR)\n");
		return 64;
	}
	if (passes > days - 1)
		passes = days - 1;
	log_init(LOG_LVL_WARNING);
	PGconn *c = bench_fresh_db(sandbox, DB, ci, sizeof(ci));
	bench_exec(c, "SET synchronous_commit = off");

	double t0 = bench_now();
	for (long d = days; d >= 1; d--) {
		snprintf(sql, sizeof(sql),
		         "SELECT pgcrond.history_partition_create((now() AT TIME ZONE 'UTC')::date "
		         "- %ld)",
		         d);
		bench_exec(c, sql);
		snprintf(
		    sql, sizeof(sql),
		    "INSERT INTO pgcrond.job_run_details (jobid, database, command, status,"
		    " return_message, start_time, end_time, job_name, trigger, scheduled_time,"
		    " duration_ms, instance, run_key, boot_id)"
		    " SELECT i %% 1000, 'app', 'SELECT 1', 'succeeded', 'SELECT 1', t, t +"
		    " interval '2 ms', 'job-' || (i %% 1000), 'schedule', date_trunc('second', t),"
		    " 2, 'bench', 'd%ld.' || i, 'd%ld'"
		    "  FROM generate_series(1, %ld) i,"
		    "  LATERAL (SELECT ((now() AT TIME ZONE 'UTC')::date - %ld)::timestamp"
		    "           AT TIME ZONE 'UTC' + i * (interval '86399 s' / %ld)) s(t)",
		    d, d, per_day, d, per_day);
		bench_exec(c, sql);
		printf("filled day -%ld: %ld rows (%.0f s so far)\n", d, per_day, bench_now() - t0);
		fflush(stdout);
	}
	bench_exec(c, "VACUUM ANALYZE pgcrond.job_run_details");
	PGresult *r = PQexec(c, "SELECT (SELECT count(*) FROM pgcrond.job_run_details),"
	                        " pg_size_pretty((SELECT sum(pg_total_relation_size(format('%I.%I',"
	                        " schema_name, partition_name)::regclass))"
	                        " FROM pgcrond.history_partition_list())::bigint)");
	printf("history: %s rows, %s with indexes, filled in %.0f s\n", PQgetvalue(r, 0, 0),
	       PQgetvalue(r, 0, 1), bench_now() - t0);
	PQclear(r);

	/* the writer: one row at a time into today's partition, as the daemon's writer does */
	PGconn *w = bench_connect(ci);
	bench_exec(w, "SET synchronous_commit = off");
	bench_exec(w, "PREPARE ins AS INSERT INTO pgcrond.job_run_details (job_name, status,"
	              " start_time, instance, run_key) VALUES ('w', 'succeeded', now(), 'bench-w',"
	              " $1) ON CONFLICT DO NOTHING");
	long wrow = 0;
	double all_max_wait = 0;
	struct event_base *base = event_base_new();
	if (!base)
		bench_die("event_base_new", "failed");
	double *pass_s = calloc((size_t)passes, sizeof(double));
	for (long p = 0; p < passes; p++) {
		/* day -days is the oldest; a retention of (days - 1 - p) days drops one day */
		int64_t retain_ms = (int64_t)(days - 1 - p) * 86400 * 1000 - 3600 * 1000;
		struct hist_part *hp;
		struct hist_part_stats st;
		double start = bench_now(), max_wait = 0;
		if (hist_part_start(base, ci, retain_ms, 3600 * 1000, &hp) != 0)
			bench_die("hist_part_start", "failed");
		do {
			/* the pass's statements, on the loop as in the daemon */
			event_base_loop(base, EVLOOP_NONBLOCK);
			char key[32];
			snprintf(key, sizeof(key), "%ld", ++wrow);
			const char *params[] = {key};
			double t = bench_now();
			PGresult *ir = PQexecPrepared(w, "ins", 1, params, NULL, NULL, 0);
			if (PQresultStatus(ir) != PGRES_COMMAND_OK)
				bench_die("writer insert", PQerrorMessage(w));
			PQclear(ir);
			t = bench_now() - t;
			if (t > max_wait)
				max_wait = t;
			bench_sleep(0.001);
			hist_part_get_stats(hp, &st);
		} while (st.runs + st.failures + st.waits == 0);
		pass_s[p] = bench_now() - start;
		hist_part_stop(&hp);
		printf("pass %ld: dropped %" PRIu64 " partition(s), about %" PRIu64
		       " rows, in %.3f s; the writer's longest insert meanwhile %.1f ms%s\n",
		       p + 1, st.dropped, st.dropped_rows, pass_s[p], max_wait * 1000,
		       st.failures ? " (the pass FAILED)"
		       : st.waits  ? " (it gave way to a lock)"
		                   : "");
		if (max_wait > all_max_wait)
			all_max_wait = max_wait;
	}
	qsort(pass_s, (size_t)passes, sizeof(double), bench_cmp_double);
	printf("retention pass dropping one day of %ld rows out of %ld: median %.3f s"
	       " (%.3f-%.3f over %ld passes); writer's longest insert %.1f ms\n",
	       per_day, per_day * days, pass_s[passes / 2], pass_s[0], pass_s[passes - 1], passes,
	       all_max_wait * 1000);
	free(pass_s);
	event_base_free(base);
	PQfinish(w);
	PQfinish(c);
	return 0;
}
