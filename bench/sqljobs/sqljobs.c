/* bench_sqljobs: how soon does a job made in SQL run? An application role commits
 * cron.schedule(NAME, '1 seconds', ...) against a running daemon; the figure is the job's
 * first statement start on the server (clock_timestamp() in the INSERT it runs) minus the
 * commit (clock_timestamp() read right after it, on the same server clock). Repeated RUNS
 * times (default 20), a fresh job each time; prints the median, p99 and spread. A "1 seconds"
 * job first fires one to two seconds after the daemon applies it (its interval counts from
 * the whole second), so the pick-up itself is the figure minus that; the daemon's log line
 * "jobs made in SQL changed" comes first. Never fails on time.
 *
 *   scripts/pg-sandbox run -- build/bench/sqljobs/bench_sqljobs [RUNS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

#define DB "bench_sqljobs"
#define ROLE "bench_sqljobs_app"

static double percentile(const double *v, int n, double p)
{
	int i = (int)(p * (n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

int main(int argc, char **argv)
{
	const char *sandbox = getenv("PGCROND_SANDBOX");
	int runs = argc > 1 ? atoi(argv[1]) : 20;
	char ci[1200], app_ci[1400], dir[] = "/tmp/bench_sqljobs.XXXXXX", path[1300], log[1300];

	if (!sandbox) {
		fprintf(stderr,
		        "bench_sqljobs: run it in a sandbox: scripts/pg-sandbox run -- %s [RUNS]\n",
		        argv[0]);
		return 0;
	}
	if (runs < 1)
		runs = 20;
	PGconn *c = bench_fresh_db(sandbox, DB, ci, sizeof(ci));
	bench_quiet_notices(c);
	bench_exec_file(c, PGCROND_SOURCE_SQL_DIR "/pgcrond--3.sql");
	bench_exec_file(c, PGCROND_SOURCE_SQL_DIR "/pg_cron_compat.sql");
	PQclear(PQexec(c, "DROP OWNED BY " ROLE));
	PQclear(PQexec(c, "DROP ROLE " ROLE));
	bench_exec(c, "CREATE ROLE " ROLE " LOGIN; GRANT USAGE ON SCHEMA cron TO " ROLE ";"
	              "CREATE TABLE ticks (job text, at timestamptz);"
	              "GRANT INSERT ON ticks TO " ROLE);

	if (!mkdtemp(dir))
		bench_die("mkdtemp", dir);
	snprintf(path, sizeof(path), "%s/conf.d", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/pgcrond.conf", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		bench_die("cannot write", path);
	fprintf(f,
	        "databases = { app = { conninfo = \"%s\"; pool = 4; }; };\n"
	        "history = { database = \"app\"; };\nstate_dir = \"%s\";\nconf_dir = \"conf.d\";\n"
	        "log_level = \"warning\";\n",
	        ci, dir);
	fclose(f);
	bench_chown_user(dir);
	bench_chown_user(path);
	snprintf(log, sizeof(log), "%s/daemon.log", dir);
	pid_t pid = bench_daemon_start(path, log);
	bench_sleep(1.0);

	snprintf(app_ci, sizeof(app_ci), "%s user=" ROLE, ci);
	PGconn *app = bench_connect(app_ci);
	double *lat = calloc((size_t)runs, sizeof(*lat));
	for (int i = 0; i < runs; i++) {
		char sql[512];
		snprintf(sql, sizeof(sql),
		         "SELECT cron.schedule('b%d', '1 seconds',"
		         " $$INSERT INTO ticks VALUES ('b%d', clock_timestamp())$$)",
		         i, i);
		bench_exec(app, sql);
		PGresult *r = PQexec(app, "SELECT extract(epoch FROM clock_timestamp())");
		double committed = atof(PQgetvalue(r, 0, 0));
		PQclear(r);
		snprintf(sql, sizeof(sql),
		         "SELECT extract(epoch FROM min(at)) FROM ticks WHERE job = 'b%d'", i);
		double first = 0, deadline = bench_now() + 10;
		while (bench_now() < deadline) { /* the bench waits; the daemon does not poll */
			r = PQexec(c, sql);
			if (!PQgetisnull(r, 0, 0))
				first = atof(PQgetvalue(r, 0, 0));
			PQclear(r);
			if (first > 0)
				break;
			bench_sleep(0.02);
		}
		lat[i] = first > 0 ? first - committed : 1e9;
		snprintf(sql, sizeof(sql), "SELECT cron.unschedule('b%d')", i);
		bench_exec(app, sql);
		bench_sleep(0.3 + 0.037 * (i % 7)); /* spread the commits over the second */
	}
	bench_daemon_stop(pid);
	qsort(lat, (size_t)runs, sizeof(*lat), bench_cmp_double);
	double load[3] = {0};
	f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
			load[0] = -1;
		fclose(f);
	}
	printf("bench_sqljobs: commit of cron.schedule('1 seconds') to first run, %d runs:\n"
	       "  p50 %.3f s, p99 %.3f s, min %.3f s, max %.3f s (load average %.2f)\n",
	       runs, percentile(lat, runs, 0.5), percentile(lat, runs, 0.99), lat[0], lat[runs - 1],
	       load[0]);
	PQfinish(app);
	PQfinish(c);
	free(lat);
	return 0;
}
