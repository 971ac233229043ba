/* bench_flow: how long after an upstream job commits does its downstream start? Two jobs in
 * a loop (up -> down -> NOTIFY -> up ...); each hand-over's latency is the downstream's first
 * statement time minus the upstream's (single-statement, autocommitted) insert time, so it
 * covers the upstream's commit, the result reaching pgcrond, the graph decision and the
 * downstream's statement reaching the server. Prints p50/p99/max per round and the median
 * and spread over rounds; never fails on time.
 *
 *   scripts/pg-sandbox run -- build/bench/flow/bench_flow [SAMPLES [ROUNDS]]   (200, 5) */
#include <errno.h>
#include <stdbool.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

#define DB "bench_flow"

static char db_ci[1200];

/* The loop: "up" runs on a notification (debounce 1 ms) and records when it ran, in a
 * statement of its own, so the time is that of its commit give or take the commit itself;
 * "down" runs after it, records its own first statement's time and notifies "up" again. */
static void write_config(const char *dir)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/pgcrond.conf", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		bench_die("write", path);
	fprintf(f,
	        "timezone = \"UTC\";\nplugin_dir = \"%s\";\nconf_dir = \"conf.d\";\n"
	        "state_dir = \"%s/state\";\nlog_level = \"warning\";\n"
	        "shutdown_grace = \"5s\";\n"
	        "databases = { bench = { conninfo = \"%s\"; pool = 4; }; };\n"
	        "history = { database = \"bench\"; retain = \"1d\"; };\n",
	        dir, dir, db_ci);
	fclose(f);
	snprintf(path, sizeof(path), "%s/conf.d/jobs.conf", dir);
	f = fopen(path, "w");
	if (!f)
		bench_die("write", path);
	fprintf(f,
	        "jobs = (\n"
	        "  { name = \"up\"; database = \"bench\"; listen = \"flow_go\"; debounce = \"1ms\";"
	        " max_delay = \"1ms\";\n"
	        "    command = \"INSERT INTO up_done VALUES (clock_timestamp())\"; },\n"
	        "  { name = \"down\"; database = \"bench\"; after = [\"up\"];\n"
	        "    command = \"INSERT INTO down_start VALUES (clock_timestamp()); "
	        "SELECT pg_notify('flow_go', '')\"; }\n"
	        ");\n");
	fclose(f);
}

static double scalar(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die(sql, PQresultErrorMessage(r));
	double v = PQgetisnull(r, 0, 0) ? 0 : atof(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* One round of SAMPLES upstream -> downstream hand-overs; *P50, *P99, *MAX in ms. */
static void round_once(PGconn *c, const char *dir, int samples, double *p50, double *p99,
                       double *max)
{
	char conf[512], log[512], sql[512];
	snprintf(conf, sizeof(conf), "%s/pgcrond.conf", dir);
	snprintf(log, sizeof(log), "%s/daemon.log", dir);
	bench_exec(c, "TRUNCATE up_done, down_start, pgcrond.job_run_details");
	pid_t pid = bench_daemon_start(conf, log);
	/* wait for the listener (it logs the channels it listens on), then start the loop */
	for (int i = 0; i < 100; i++) {
		FILE *f = fopen(log, "r");
		char line[1024];
		bool listening = false;
		while (f && !listening && fgets(line, sizeof(line), f))
			listening = strstr(line, "listening on") && strstr(line, "\"flow_go\"");
		if (f)
			fclose(f);
		if (listening)
			break;
		bench_sleep(0.1);
	}
	bench_exec(c, "SELECT pg_notify('flow_go', '')");
	for (int i = 0; i < 600; i++) {
		if (scalar(c, "SELECT count(*) FROM down_start") >= samples)
			break;
		bench_sleep(0.1);
	}
	bench_daemon_stop(pid);
	snprintf(sql, sizeof(sql),
	         "SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY l))::numeric, 3),"
	         " round((percentile_cont(0.99) WITHIN GROUP (ORDER BY l))::numeric, 3),"
	         " round(max(l)::numeric, 3), count(*) FROM ("
	         "  SELECT extract(epoch FROM d.at - u.at) * 1000 AS l"
	         "  FROM (SELECT at, row_number() OVER (ORDER BY at) n FROM up_done) u"
	         "  JOIN (SELECT at, row_number() OVER (ORDER BY at) n FROM down_start) d USING (n)"
	         "  WHERE n <= %d) s",
	         samples);
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("stats", PQresultErrorMessage(r));
	*p50 = atof(PQgetvalue(r, 0, 0));
	*p99 = atof(PQgetvalue(r, 0, 1));
	*max = atof(PQgetvalue(r, 0, 2));
	printf("round: %s hand-overs  latency ms p50 %s  p99 %s  max %s\n", PQgetvalue(r, 0, 3),
	       PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
	fflush(stdout);
	PQclear(r);
}

int main(int argc, char **argv)
{
	const char *sandbox = getenv("PGCROND_SANDBOX");
	if (!sandbox) {
		fprintf(stderr,
		        "bench_flow: run it in a sandbox: scripts/pg-sandbox run -- %s [SAMPLES "
		        "[ROUNDS]]\n",
		        argv[0]);
		return 0;
	}
	int samples = argc > 1 ? atoi(argv[1]) : 200;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	if (samples < 1)
		samples = 200;
	if (rounds < 1 || rounds > 100)
		rounds = 5;
	PGconn *c = bench_fresh_db(sandbox, DB, db_ci, sizeof(db_ci));
	bench_exec(c, "CREATE UNLOGGED TABLE up_done (at timestamptz);"
	              "CREATE UNLOGGED TABLE down_start (at timestamptz);"
	              "GRANT ALL ON up_done, down_start TO PUBLIC");

	char path[1024], dir[] = "/tmp/bench-flow-XXXXXX";
	if (!mkdtemp(dir))
		bench_die("mkdtemp", strerror(errno));
	chmod(dir, 0755);
	snprintf(path, sizeof(path), "%s/state", dir);
	mkdir(path, 0700);
	bench_chown_user(path);
	snprintf(path, sizeof(path), "%s/conf.d", dir);
	mkdir(path, 0755);
	write_config(dir);

	double *p50 = calloc((size_t)rounds, sizeof(double));
	double *p99 = calloc((size_t)rounds, sizeof(double));
	double *mx = calloc((size_t)rounds, sizeof(double));
	if (!p50 || !p99 || !mx)
		bench_die("out of memory", NULL);
	for (int i = 0; i < rounds; i++)
		round_once(c, dir, samples, &p50[i], &p99[i], &mx[i]);
	qsort(p50, (size_t)rounds, sizeof(double), bench_cmp_double);
	qsort(p99, (size_t)rounds, sizeof(double), bench_cmp_double);
	qsort(mx, (size_t)rounds, sizeof(double), bench_cmp_double);
	printf("upstream commit -> downstream start over %d rounds of %d: "
	       "p50 median %.3f ms (%.3f..%.3f), p99 median %.3f ms (%.3f..%.3f), "
	       "max median %.3f ms (%.3f..%.3f); target < 10 ms\n",
	       rounds, samples, p50[rounds / 2], p50[0], p50[rounds - 1], p99[rounds / 2], p99[0],
	       p99[rounds - 1], mx[rounds / 2], mx[0], mx[rounds - 1]);
	printf("logs and configs: %s\n", dir);
	free(p50);
	free(p99);
	free(mx);
	PQfinish(c);
	return 0;
}
