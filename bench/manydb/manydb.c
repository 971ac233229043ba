/* bench_manydb: a database per tenant. DBS job databases, one job each, an
 * INSERT of clock_timestamp() into the database's own table; the history in a database of its
 * own. Prints:
 *  - the sessions pgcrond holds (pg_stat_activity rows whose application_name starts with
 *    "pgcrond"; on the history database and on the job databases) with yearly jobs, 20 s after
 *    the start, and 45 s after hourly jobs all fired with idle_timeout = "10s";
 *  - the lateness of DBS jobs on "* * * * *" spread over the DBS databases ("many") and of the
 *    same jobs in one database ("one"): the statement's clock_timestamp() past the minute, p50
 *    and p99 of the first minute after the start and of the second, per run; then the median
 *    (min-max) over the runs of the second minute's, and many / one.
 * Each run starts the daemon at second 40 of a minute; a run of the three phases takes about
 * four minutes. Prints; never fails on time.
 *
 *   PGSANDBOX_CONF='max_connections = 500' scripts/pg-sandbox run --
 * build/bench/manydb/bench_manydb (MANYDB_DBS=200; MANYDB_RUNS=3; MANYDB_POOL=4: each database's
 * pool; MANYDB_PHASES= yearly,hourly,many,one; MANYDB_LOG_LEVEL: the daemon's log_level, its
 * default if unset; MANYDB_MAX_RUNNING: its max_running, its default 32 if unset;
 * BENCH_PGCROND=PATH: that pgcrond binary instead of this build's, two builds
 * side by side) */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define DB "bench_manydb"
#define MAX_RUNS 16

/* the history database's; a job database's is it with a dbname after (libpq takes the last) */
static char hist_ci[1200];
static int n_dbs, pool;

static int env_int(const char *name, int dflt, int lo, int hi)
{
	const char *v = getenv(name);
	int n = v && *v ? atoi(v) : dflt;
	return n >= lo && n <= hi ? n : dflt;
}

/* Sleep until second SEC of a minute (at least a second from now). */
static void sleep_to_second(int sec)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double wait = (double)sec - ((double)(ts.tv_sec % 60) + (double)ts.tv_nsec / 1e9);
	if (wait < 1)
		wait += 60;
	bench_sleep(wait);
}

static void sleep_until(time_t at)
{
	time_t now = time(NULL);
	if (at > now)
		bench_sleep((double)(at - now));
}

static char *tenant_ci(int i)
{
	static char ci[1300];
	snprintf(ci, sizeof(ci), "%s dbname=" DB "_t%d", hist_ci, i);
	return ci;
}

/* The databases: the history's (with the one-database phase's table), a template with the
 * table, and the tenants made from it. */
static void make_databases(const char *sandbox)
{
	char sql[512];
	PGconn *c = bench_fresh_db(sandbox, DB, hist_ci, sizeof(hist_ci));
	bench_exec(c, "CREATE UNLOGGED TABLE ticks (who text, at timestamptz)");
	PGresult *r = PQexec(c, "SHOW max_connections");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || atoi(PQgetvalue(r, 0, 0)) < 2 * n_dbs + 50) {
		fprintf(stderr,
		        "bench_manydb: the server's max_connections (%s) is too low for %d "
		        "databases: start the sandbox with PGSANDBOX_CONF='max_connections = %d'\n",
		        PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "?", n_dbs,
		        2 * n_dbs + 100);
		exit(1);
	}
	PQclear(r);
	bench_exec(c, "DROP DATABASE IF EXISTS " DB "_tpl");
	bench_exec(c, "CREATE DATABASE " DB "_tpl");
	char tpl[1300];
	snprintf(tpl, sizeof(tpl), "%s dbname=" DB "_tpl", hist_ci);
	PGconn *t = bench_connect(tpl);
	bench_exec(t, "CREATE UNLOGGED TABLE ticks (who text, at timestamptz)");
	PQfinish(t);
	double t0 = bench_now();
	for (int i = 0; i < n_dbs; i++) {
		snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS " DB "_t%d", i);
		bench_exec(c, sql);
		snprintf(sql, sizeof(sql),
		         "CREATE DATABASE " DB "_t%d TEMPLATE " DB "_tpl STRATEGY FILE_COPY", i);
		bench_exec(c, sql);
	}
	printf("%d databases made in %.0f s\n", n_dbs, bench_now() - t0);
	PQfinish(c);
}

/* A daemon's directory under DIR/WHO with its config: the history database, and the job
 * databases with IDLE ("": the default idle_timeout). */
static void write_config(const char *dir, const char *who, const char *idle, char *conf, size_t len)
{
	bench_daemon_dir(dir, who, conf, len);
	FILE *f = fopen(conf, "w");
	if (!f)
		bench_die("write", conf);
	const char *level = getenv("MANYDB_LOG_LEVEL"), *max = getenv("MANYDB_MAX_RUNNING");
	if (max && *max)
		fprintf(f, "max_running = %d;\n", atoi(max));
	fprintf(f,
	        "timezone = \"UTC\";\nplugin_dir = \"%s\";\nconf_dir = \"conf.d\";\n"
	        "state_dir = \"%s/%s/state\";\nshutdown_grace = \"5s\";\n%s%s%s"
	        "history = { database = \"hist\"; retain = \"1d\"; };\n"
	        "databases = {\n  hist = { conninfo = \"%s\"; pool = %d; };\n",
	        dir, dir, who, level ? "log_level = \"" : "", level ? level : "",
	        level ? "\";\n" : "", hist_ci, pool);
	for (int i = 0; i < n_dbs; i++)
		fprintf(f, "  t%d = { conninfo = \"%s\"; pool = %d;%s%s%s };\n", i, tenant_ci(i),
		        pool, *idle ? " idle_timeout = \"" : "", idle, *idle ? "\";" : "");
	fprintf(f, "};\n");
	fclose(f);
}

/* DBS jobs on SCHEDULE, each an INSERT of WHO's row: over the job databases, or all on the
 * history database (ONE). Named after WHO: the history knows no earlier run of theirs, so
 * none is caught up at the start. */
static void write_jobs(const char *dir, const char *who, const char *schedule, bool one)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/%s/conf.d/jobs.conf", dir, who);
	FILE *f = fopen(path, "w");
	if (!f)
		bench_die("write", path);
	fprintf(f, "jobs = (\n");
	for (int i = 0; i < n_dbs; i++) {
		char db[16];
		snprintf(db, sizeof(db), one ? "hist" : "t%d", i);
		fprintf(
		    f,
		    "  { name = \"%s-%d\"; database = \"%s\"; schedule = \"%s\";\n"
		    "    command = \"INSERT INTO ticks VALUES ('%s', clock_timestamp())\"; }%s\n",
		    who, i, db, schedule, who, i + 1 < n_dbs ? "," : "");
	}
	fprintf(f, ");\n");
	fclose(f);
}

/* pgcrond's sessions: on the history database, on the job databases. */
static void sessions(const char *when)
{
	PGconn *c = bench_connect(hist_ci);
	PGresult *r = PQexec(c, "SELECT count(*) FILTER (WHERE datname = '" DB "'),"
	                        " count(*) FILTER (WHERE datname LIKE '" DB "\\_t%')"
	                        " FROM pg_stat_activity WHERE application_name LIKE 'pgcrond%'");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("sessions", PQerrorMessage(c));
	int h = atoi(PQgetvalue(r, 0, 0)), j = atoi(PQgetvalue(r, 0, 1));
	printf("  sessions %s: %d (history database %d, job databases %d)\n", when, h + j, h, j);
	fflush(stdout);
	PQclear(r);
	PQfinish(c);
}

static void phase_yearly(const char *dir)
{
	char conf[700], log[800];
	write_config(dir, "yearly", "10s", conf, sizeof(conf));
	write_jobs(dir, "yearly", "0 0 1 1 *", false);
	snprintf(log, sizeof(log), "%s/yearly/daemon.log", dir);
	pid_t pid = bench_daemon_start(conf, log);
	bench_sleep(20);
	sessions("with yearly jobs, 20 s after the start");
	bench_daemon_stop(pid);
}

/* Started at second 40, the jobs' minute is the next one: they fire 20 s after the start,
 * and not again for an hour. */
static void phase_hourly(const char *dir, int run)
{
	char conf[700], log[800], who[16], schedule[32];
	snprintf(who, sizeof(who), "hourly%d", run);
	write_config(dir, who, "10s", conf, sizeof(conf));
	sleep_to_second(38);
	time_t fire = (time(NULL) / 60 + 1) * 60;
	snprintf(schedule, sizeof(schedule), "%d * * * *", (int)(fire / 60 % 60));
	write_jobs(dir, who, schedule, false);
	snprintf(log, sizeof(log), "%s/%s/daemon.log", dir, who);
	sleep_to_second(40);
	pid_t pid = bench_daemon_start(conf, log);
	sleep_until(fire + 45);
	sessions("45 s after hourly jobs fired (idle_timeout 10s)");
	bench_daemon_stop(pid);
}

struct lateness {
	double p50[2], p99[2]; /* the first minute, the second */
	int n[2];
};

static int cmp_double(const void *a, const void *b)
{
	return bench_cmp_double(a, b);
}

static double pct(double *v, int n, double p)
{
	if (n == 0)
		return -1;
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	return v[(int)(p * (n - 1) + 0.5)];
}

/* WHO's rows of the minutes START + 1 and START + 2 on CI, added to V (ms past the minute). */
static void collect(const char *ci, const char *who, time_t start, double *v[2], int n[2])
{
	char first[24], sql[512];
	snprintf(first, sizeof(first), "%lld", (long long)(start / 60 + 1) * 60);
	const char *params[] = {who, first};
	PGconn *c = bench_connect(ci);
	snprintf(sql, sizeof(sql),
	         "SELECT (extract(epoch FROM date_trunc('minute', at)) - $2::float8 > 30)::int,"
	         " extract(epoch FROM at - date_trunc('minute', at)) * 1000 FROM ticks"
	         " WHERE who = $1 AND at >= to_timestamp($2::float8)"
	         " AND at < to_timestamp($2::float8 + 120)");
	PGresult *r = PQexecParams(c, sql, 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("lateness", PQerrorMessage(c));
	for (int i = 0; i < PQntuples(r); i++) {
		int m = atoi(PQgetvalue(r, i, 0));
		v[m][n[m]++] = atof(PQgetvalue(r, i, 1));
	}
	PQclear(r);
	PQfinish(c);
}

/* DBS jobs on "* * * * *", over the job databases or in one, from second 40 to the end of
 * the second minute. */
static struct lateness phase_minute(const char *dir, int run, bool one)
{
	char conf[700], log[800], who[16];
	struct lateness out = {0};
	snprintf(who, sizeof(who), "%s%d", one ? "one" : "many", run);
	write_config(dir, who, "", conf, sizeof(conf));
	write_jobs(dir, who, "* * * * *", one);
	snprintf(log, sizeof(log), "%s/%s/daemon.log", dir, who);
	sleep_to_second(40);
	time_t start = time(NULL);
	pid_t pid = bench_daemon_start(conf, log);
	sleep_until((start / 60 + 2) * 60 + 8);
	bench_daemon_stop(pid);
	double *v[2] = {calloc((size_t)n_dbs * 2, sizeof(double)),
	                calloc((size_t)n_dbs * 2, sizeof(double))};
	if (!v[0] || !v[1])
		bench_die("calloc", "lateness");
	if (one)
		collect(hist_ci, who, start, v, out.n);
	else
		for (int i = 0; i < n_dbs; i++)
			collect(tenant_ci(i), who, start, v, out.n);
	for (int m = 0; m < 2; m++) {
		out.p50[m] = pct(v[m], out.n[m], 0.5);
		out.p99[m] = pct(v[m], out.n[m], 0.99);
		free(v[m]);
	}
	printf("  %-4s run %d: first minute p50 %7.1f ms p99 %7.1f ms (%d runs); second minute "
	       "p50 %7.1f ms p99 %7.1f ms (%d runs)\n",
	       one ? "one" : "many", run, out.p50[0], out.p99[0], out.n[0], out.p50[1], out.p99[1],
	       out.n[1]);
	fflush(stdout);
	return out;
}

/* Median (min-max) of V[0..N). */
static void spread(const char *what, double *v, int n)
{
	if (n == 0)
		return;
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	printf("    %s %.1f (%.1f-%.1f)", what, n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2,
	       v[0], v[n - 1]);
}

int main(void)
{
	n_dbs = env_int("MANYDB_DBS", 200, 1, 2000);
	pool = env_int("MANYDB_POOL", 4, 1, 100);
	int runs = env_int("MANYDB_RUNS", 3, 1, MAX_RUNS);
	const char *phases =
	    getenv("MANYDB_PHASES") ? getenv("MANYDB_PHASES") : "yearly,hourly,many,one";
	const char *sandbox = getenv("PGCROND_SANDBOX");
	if (!sandbox) {
		fprintf(stderr,
		        "bench_manydb: run it in a sandbox: PGSANDBOX_CONF='max_connections "
		        "= 500' scripts/pg-sandbox run -- bench_manydb\n");
		return 1;
	}
	char dir[] = "/tmp/bench-manydb-XXXXXX";
	if (!mkdtemp(dir))
		bench_die("mkdtemp", strerror(errno));
	chmod(dir, 0755);
	make_databases(sandbox);
	double load[3] = {0};
	if (getloadavg(load, 3) == 3)
		printf("load average at start: %.2f %.2f %.2f (%ld CPUs)\n", load[0], load[1],
		       load[2], sysconf(_SC_NPROCESSORS_ONLN));
	printf("%d job databases, one job each, pool %d; %d run(s)\n", n_dbs, pool, runs);
	fflush(stdout);

	if (strstr(phases, "yearly"))
		phase_yearly(dir);
	double p50[2][MAX_RUNS], p99[2][MAX_RUNS];
	int k = 0;
	for (int run = 0; run < runs; run++) {
		if (strstr(phases, "hourly"))
			phase_hourly(dir, run);
		struct lateness many = {0}, one = {0};
		if (strstr(phases, "many"))
			many = phase_minute(dir, run, false);
		if (strstr(phases, "one"))
			one = phase_minute(dir, run, true);
		p50[0][k] = many.p50[1];
		p99[0][k] = many.p99[1];
		p50[1][k] = one.p50[1];
		p99[1][k++] = one.p99[1];
	}
	if (strstr(phases, "many") && strstr(phases, "one")) {
		double r50[MAX_RUNS], r99[MAX_RUNS];
		for (int i = 0; i < k; i++) {
			r50[i] = p50[1][i] > 0 ? p50[0][i] / p50[1][i] : 0;
			r99[i] = p99[1][i] > 0 ? p99[0][i] / p99[1][i] : 0;
		}
		printf("second minute, median (min-max) over %d run(s), ms:\n  many:", k);
		spread("p50", p50[0], k);
		spread("p99", p99[0], k);
		printf("\n  one: ");
		spread("p50", p50[1], k);
		spread("p99", p99[1], k);
		printf("\n  many / one:");
		spread("p50", r50, k);
		spread("p99", r99, k);
		printf("\n");
	}
	if (getloadavg(load, 3) == 3)
		printf("load average at the end: %.2f %.2f %.2f\n", load[0], load[1], load[2]);
	printf("logs and configs: %s\n", dir);
	return 0;
}
