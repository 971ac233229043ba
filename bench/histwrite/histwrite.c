/* bench_histwrite: how many run records per second the history writer (core/src/history/history.c)
 * puts into PostgreSQL, on its own: no jobs run, so the server only serves the history. For
 * RATE runs a second during SECONDS s, every 100 ms a tenth of them start, report their
 * pid and end (three records each, as a short job makes), with the daemon's spill file and
 * its event loop. Prints the runs written per second while offered, how far the history
 * trailed when the offer stopped, and how long until everything was written.
 *
 * Twice: against a database at schema 2 (a plain table; one statement per record, as before
 * version 6) and at the newest schema (partitioned by day; set-based batches).
 *
 *   scripts/pg-sandbox run -- build/dev/bench/histwrite/bench_histwrite [RATE [SECONDS]]
 *   (default 15000 10) */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "common.h"
#include "hist_spool.h"
#include "history.h"
#include "log.h"

static void fresh(const char *sandbox, const char *db, int upto, char *ci, size_t cilen)
{
	PGconn *c = bench_fresh_db(sandbox, db, ci, cilen); /* every step */
	if (upto == 2) {
		/* back to a plain table as schema 2 had it: drop and apply steps 1-2 afresh */
		bench_exec(c, "DROP SCHEMA pgcrond CASCADE");
		bench_exec_file(c, PGCROND_SOURCE_SQL_DIR "/pgcrond--1.sql");
		bench_exec_file(c, PGCROND_SOURCE_SQL_DIR "/pgcrond--2.sql");
	}
	PQfinish(c);
}

static void one(const char *label, const char *ci, long rate, int seconds)
{
	struct event_base *base = event_base_new();
	struct hist *h = NULL;
	char state[] = "/tmp/bench-histwrite-XXXXXX";
	if (!mkdtemp(state))
		bench_die("mkdtemp", strerror(errno));
	if (hist_open(base, ci, state, "bench", 0, &h) != 0)
		bench_die("hist_open", ci);
	struct hist_tuning t = {.memory_limit = 2000000};
	hist_tune(h, &t);
	struct hist_run run = {.job_name = "tenant-job",
	                       .database = "app",
	                       .username = "app",
	                       .command = "INSERT INTO ticks VALUES (statement_timestamp())",
	                       .trigger = "schedule",
	                       .attempt = 1};
	/* connected and idle before the clock starts */
	struct hist_stats st;
	double until = bench_now() + 10;
	do {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		hist_get_stats(h, &st);
	} while (!st.connected && bench_now() < until);
	double t0 = bench_now();
	long offered = 0;
	int pid = 1;
	for (int tick = 0; tick < seconds * 10; tick++) {
		for (long i = 0; i < rate / 10; i++) {
			run.start_us = clock_wall_us();
			uint64_t k = hist_start(h, &run);
			hist_set_pid(h, k, run.start_us, pid++);
			hist_finish(h, k, run.start_us, HIST_SUCCEEDED, "INSERT 0 1", NULL, 0);
			offered++;
		}
		double next = t0 + (tick + 1) * 0.1;
		while (bench_now() < next)
			event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	double t1 = bench_now();
	hist_get_stats(h, &st);
	uint64_t trailing = st.pending / 3, written_runs = st.written / 3;
	while (hist_pending(h) > 0 && bench_now() < t1 + 300)
		event_base_loop(base, EVLOOP_ONCE);
	double t2 = bench_now();
	printf("%-44s offered %ld runs/s for %d s: written %.0f runs/s while offered; %llu runs "
	       "trailing at the stop; all written %.1f s after it (%.0f runs/s overall)\n",
	       label, rate, seconds, written_runs / (t1 - t0), (unsigned long long)trailing,
	       t2 - t1, offered / (t2 - t0));
	fflush(stdout);
	hist_close(&h);
	event_base_free(base);
	char spool[128];
	snprintf(spool, sizeof(spool), "%s/%s", state, HIST_SPOOL_FILE);
	unlink(spool);
	rmdir(state);
}

int main(int argc, char **argv)
{
	const char *sandbox = getenv("PGCROND_SANDBOX");
	long rate = argc > 1 ? atol(argv[1]) : 15000;
	int seconds = argc > 2 ? atoi(argv[2]) : 10;
	char ci[1200];
	if (!sandbox) {
		fprintf(stderr,
		        "bench_histwrite: run it in a sandbox: scripts/pg-sandbox run -- %s\n",
		        argv[0]);
		return 0;
	}
	if (rate < 10 || seconds < 1)
		bench_die("usage", "bench_histwrite [RATE >= 10 [SECONDS >= 1]]");
	log_init(LOG_LVL_WARNING);
	double load[3] = {0};
	if (getloadavg(load, 3) < 0)
		load[0] = -1;
	printf("load average at start: %.2f %.2f %.2f (%ld CPUs)\n", load[0], load[1], load[2],
	       sysconf(_SC_NPROCESSORS_ONLN));
	fresh(sandbox, "bench_hist2", 2, ci, sizeof(ci));
	one("schema 2 (plain table, a statement a record)", ci, rate, seconds);
	fresh(sandbox, "bench_hist6", 6, ci, sizeof(ci));
	one("schema 6 (by day, set-based batches)", ci, rate, seconds);
	return 0;
}
