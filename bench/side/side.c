/* bench_side: pg_cron and pgcrond side by side on one server. N jobs on
 * "* * * * *", each an INSERT of clock_timestamp(); lateness is that time minus the whole
 * minute. Three phases on one throwaway server that preloads pg_cron (Debian's
 * postgresql-15-cron, installed with apt-get when missing and run as root): pg_cron (its
 * connections over TCP, cron.host = 127.0.0.1), then pgcrond over TCP, then pgcrond over
 * the unix socket, each a fresh start measured for its first minute and SIDE_MINUTES
 * minutes after it. Prints per phase the first minute's p50/p99 apart and the median of the
 * steady minutes' p50/p99, the ratios pg_cron / pgcrond, and for pgcrond where the time went
 * (the per-run stages its debug log gives, sched_warm.c), and for each phase the server's CPU
 * per run over the whole phase, its idle seconds included (bench/cpu.h: the runs' backends,
 * pgcrond's own session, the rest of the server, where pg_cron's scheduler and its history
 * are, and pg_cron's job connections, each of which ends with its run; with
 * pg_stat_statements installed, the statements' time by what they are). Prints; never fails
 * on time.
 *
 *   build/test/bench/side/bench_side            (starts and stops its own sandbox)
 *   SIDE_MINUTES=3: steady minutes per phase; SIDE_JOBS=100; SIDE_POOL=8: pgcrond's pool;
 *   SIDE_PHASES=cron,tcp,unix: which phases, in that order (also raw: a minimal libpq client
 *   on POOL TCP connections sending each run as pgcrond's pool does, its session reset and the
 *   INSERT in one round trip, one run at a time per connection: the floor pgcrond's way of
 *   running can reach on this server; bare: the same without the reset); SIDE_LOG_LEVEL=debug:
 *   pgcrond's log level (the stages need debug; each run's log lines cost the burst time);
 *   SIDE_MAX_RUNNING: pgcrond's max_running (its default, 32, if unset); SIDE_SPIN_MS: the raw
 *   and bare clients keep a core busy that long before each instant (what a machine woken
 *   from idle costs a burst); SIDE_PARSE=1: the raw and bare clients parse the INSERT once on
 *   each connection as they open it (its catalog entries cached before the first minute);
 *   BENCH_PGCROND=PATH:
 *   that pgcrond binary instead of this build's (two builds back to back) */
#include <errno.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "cpu.h"
#include "floor.h"

#define DB "bench_side"
#define JOB_LIKE "INSERT INTO ticks%" /* the jobs' statement, for bench_cpu_take */
#define PG_CRON_SO "/usr/lib/postgresql/15/lib/pg_cron.so"

static char sandbox[512], base_ci[1024], db_ci[1200];
static int port;
/* the bench's connection, and the server's CPU at a phase's start and at its end, taken while
 * its connections are still open (cpu.h) */
static PGconn *bc;
static struct bench_cpu *scpu;

static int env_int(const char *name, int def, int lo, int hi)
{
	const char *v = getenv(name);
	int n = v && *v ? atoi(v) : def;
	return n >= lo && n <= hi ? n : def;
}

static void stop_sandbox(void)
{
	char cmd[1200];
	if (!sandbox[0])
		return;
	snprintf(cmd, sizeof(cmd), "%s/scripts/pg-sandbox stop --dir %s >/dev/null 2>&1",
	         PGCROND_SOURCE_DIR, sandbox);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_side: could not stop the sandbox in %s\n", sandbox);
	sandbox[0] = '\0';
}

/* pg_cron's library, installed if missing (as root); false if it cannot be had. */
static bool have_pg_cron(void)
{
	if (access(PG_CRON_SO, R_OK) == 0)
		return true;
	if (getuid() != 0) {
		fprintf(stderr,
		        "bench_side: %s is missing; install postgresql-15-cron (as root: "
		        "apt-get install postgresql-15-cron); pg_cron's phase is left out\n",
		        PG_CRON_SO);
		return false;
	}
	printf("installing postgresql-15-cron with apt-get ...\n");
	fflush(stdout);
	if (system("DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15-cron "
	           ">/dev/null") != 0 ||
	    access(PG_CRON_SO, R_OK) != 0) {
		fprintf(stderr, "bench_side: apt-get install postgresql-15-cron failed; pg_cron's "
		                "phase is left out\n");
		return false;
	}
	return true;
}

/* A sandbox of its own: pg_cron preloaded (a restart would be needed otherwise), a TCP
 * listener on 127.0.0.1 with trust for it (pg_cron connects over TCP). */
static void start_sandbox(const char *dir, bool pg_cron)
{
	char cmd[1500], conf[512], path[600];
	snprintf(sandbox, sizeof(sandbox), "%s/pg", dir);
	/* pg_stat_statements where installed: the statements' time per run (cpu.h) */
	bool pgss =
	    access("/usr/share/postgresql/15/extension/pg_stat_statements.control", R_OK) == 0;
	snprintf(conf, sizeof(conf),
	         "listen_addresses = '127.0.0.1'\nmax_connections = 200\n"
	         "shared_preload_libraries = '%s%s%s'\n%s",
	         pg_cron ? "pg_cron" : "", pg_cron && pgss ? "," : "",
	         pgss ? "pg_stat_statements" : "",
	         pg_cron ? "cron.database_name = " DB "\ncron.host = '127.0.0.1'\n" : "");
	setenv("PGSANDBOX_CONF", conf, 1);
	snprintf(cmd, sizeof(cmd), "%s/scripts/pg-sandbox start --dir %s --owner %d >/dev/null",
	         PGCROND_SOURCE_DIR, sandbox, (int)getpid());
	if (system(cmd) != 0)
		bench_die("pg-sandbox start", sandbox);
	atexit(stop_sandbox);
	snprintf(path, sizeof(path), "%s/data/pg_hba.conf", sandbox);
	FILE *f = fopen(path, "a");
	if (!f)
		bench_die("open", path);
	fprintf(f, "host all all 127.0.0.1/32 trust\n");
	fclose(f);
	snprintf(path, sizeof(path), "%s/conninfo", sandbox);
	char *ci = bench_slurp(path);
	ci[strcspn(ci, "\n")] = '\0';
	snprintf(base_ci, sizeof(base_ci), "%s", ci);
	const char *p = strstr(ci, "port=");
	port = p ? atoi(p + 5) : 5432;
	free(ci);
	PGconn *c = bench_connect(base_ci);
	bench_exec(c, "SELECT pg_reload_conf()");
	PQfinish(c);
}

/* Sleep until second SEC of a minute. */
static void sleep_to_second(int sec)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double now = (double)(ts.tv_sec % 60) + (double)ts.tv_nsec / 1e9;
	double wait = (double)sec - now;
	if (wait < 1)
		wait += 60;
	bench_sleep(wait);
}

/* Sleep past the end of the next MINUTES minute boundaries, with a few seconds for the
 * last burst to end. */
static void sleep_minutes(int minutes)
{
	time_t t = time(NULL);
	time_t end = (t / 60 + minutes) * 60 + 8;
	bench_sleep((double)(end - t));
}

struct phase_result {
	char who[16];
	bool ran;
	double first_p50, first_p99, steady_p50, steady_p99;
	long first_runs, steady_runs;
	int steady_minutes;
};

static int cmp_double(const void *a, const void *b)
{
	return bench_cmp_double(a, b);
}

static double median(double *v, int n)
{
	if (n == 0)
		return -1;
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The lateness of WHO's rows, minute by minute: the first minute apart, the median of the
 * others' p50 and p99. */
static void lateness(PGconn *c, const char *who, struct phase_result *out)
{
	const char *params[] = {who};
	PGresult *r =
	    PQexecParams(c,
	                 "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),"
	                 " percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) FROM"
	                 " (SELECT date_trunc('minute', at) AS m,"
	                 "   extract(epoch FROM at - date_trunc('minute', at)) * 1000 AS ms"
	                 "  FROM ticks WHERE who = $1) t GROUP BY m ORDER BY m",
	                 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("lateness", PQerrorMessage(c));
	int n = PQntuples(r);
	double p50[64], p99[64];
	int k = 0;
	snprintf(out->who, sizeof(out->who), "%s", who);
	out->ran = n > 0;
	for (int i = 0; i < n; i++) {
		long runs = atol(PQgetvalue(r, i, 0));
		double a = atof(PQgetvalue(r, i, 1)), b = atof(PQgetvalue(r, i, 2));
		if (i == 0) {
			out->first_runs = runs;
			out->first_p50 = a;
			out->first_p99 = b;
		} else if (k < 64) {
			out->steady_runs += runs;
			p50[k] = a;
			p99[k++] = b;
		}
	}
	out->steady_minutes = k;
	out->steady_p50 = median(p50, k);
	out->steady_p99 = median(p99, k);
	PQclear(r);
}

/* ---- where pgcrond's time went: the daemon's "stages:" lines (log level debug) ---------- */

#define N_STAGES 5
static const char *const stage_names[N_STAGES] = {"fired", "started", "connected", "done",
                                                  "connect"};

struct stages {
	double *v[2][N_STAGES]; /* [first minute, steady][stage] */
	int n[2][N_STAGES];
	int carried[2], runs[2];
};

static void stage_add(struct stages *st, int part, int stage, double ms)
{
	if (st->n[part][stage] % 1024 == 0) {
		st->v[part][stage] = realloc(st->v[part][stage],
		                             (size_t)(st->n[part][stage] + 1024) * sizeof(double));
		if (!st->v[part][stage])
			bench_die("realloc", "stages");
	}
	st->v[part][stage][st->n[part][stage]++] = ms;
}

static double pct(double *v, int n, double p)
{
	if (n == 0)
		return -1;
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	int i = (int)(p * (n - 1) + 0.5);
	return v[i];
}

static void print_stages(const char *log_path)
{
	char *text = bench_slurp(log_path);
	struct stages st = {0};
	long first_minute = -1;
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		const char *s = strstr(line, "stages: fired=");
		int y, mo, d, h, mi;
		double sec, v[N_STAGES];
		int carried;
		if (s && sscanf(line, "%d-%d-%dT%d:%d:%lfZ", &y, &mo, &d, &h, &mi, &sec) == 6 &&
		    sscanf(s,
		           "stages: fired=%lf started=%lf connected=%lf done=%lf connect=%lf "
		           "carried=%d",
		           &v[0], &v[1], &v[2], &v[3], &v[4], &carried) == 6) {
			/* the instant: the log line's time minus the run's done stage */
			double at = ((double)(d * 24 + h) * 60 + mi) * 60 + sec - v[3] / 1000;
			long minute = (long)(at / 60 + 0.5);
			if (first_minute < 0)
				first_minute = minute;
			int part = minute == first_minute ? 0 : 1;
			for (int i = 0; i < N_STAGES; i++)
				if (i != 2 || v[2] >= 0)
					stage_add(&st, part, i, v[i]);
			st.carried[part] += carried;
			st.runs[part]++;
		}
		line = nl ? nl + 1 : NULL;
	}
	static const char *const parts[2] = {"first minute", "steady minutes"};
	for (int p = 0; p < 2; p++) {
		if (!st.runs[p])
			continue;
		printf(
		    "    stages, %s (%d runs, %d carried after another run; ms after the instant, "
		    "p50/p99):",
		    parts[p], st.runs[p], st.carried[p]);
		for (int i = 0; i < N_STAGES; i++)
			printf(" %s %.1f/%.1f", stage_names[i], pct(st.v[p][i], st.n[p][i], 0.5),
			       pct(st.v[p][i], st.n[p][i], 0.99));
		printf("\n");
		for (int i = 0; i < N_STAGES; i++)
			free(st.v[p][i]);
	}
	free(text);
}

/* ---- the phases ------------------------------------------------------------------------- */

static void phase_pg_cron(PGconn *c, int jobs, int minutes)
{
	char sql[512];
	sleep_to_second(40);
	printf("pg_cron: %d jobs scheduled at %ld\n", jobs, (long)time(NULL));
	fflush(stdout);
	snprintf(sql, sizeof(sql),
	         "SELECT count(cron.schedule('side' || i, '* * * * *',"
	         " $$INSERT INTO ticks VALUES ('cron', clock_timestamp())$$))"
	         " FROM generate_series(1, %d) i",
	         jobs);
	bench_exec(c, sql);
	sleep_minutes(minutes + 1);
	bench_cpu_take(bc, JOB_LIKE, &scpu[1]);
	bench_exec(c, "SELECT count(cron.unschedule(jobid)) FROM cron.job");
}

static void phase_pgcrond(const char *dir, const char *who, const char *host, int jobs, int minutes,
                          int pool, char *log, size_t loglen)
{
	char path[700], conf[700], ci[1200];
	bench_daemon_dir(dir, who, conf, sizeof(conf));
	snprintf(ci, sizeof(ci), "host=%s port=%d user=postgres dbname=" DB, host, port);
	FILE *f = fopen(conf, "w");
	if (!f)
		bench_die("write", conf);
	fprintf(f,
	        "instance = \"side\";\ntimezone = \"UTC\";\nplugin_dir = \"%s\";\n"
	        "conf_dir = \"conf.d\";\nstate_dir = \"%s/%s/state\";\nlog_level = \"%s\";\n"
	        "shutdown_grace = \"5s\";\n%s%s%s"
	        "databases = { side = { conninfo = \"%s\"; pool = %d; }; };\n"
	        "history = { database = \"side\"; retain = \"1d\"; };\n",
	        dir, dir, who, getenv("SIDE_LOG_LEVEL") ? getenv("SIDE_LOG_LEVEL") : "debug",
	        getenv("SIDE_MAX_RUNNING") ? "max_running = " : "",
	        getenv("SIDE_MAX_RUNNING") ? getenv("SIDE_MAX_RUNNING") : "",
	        getenv("SIDE_MAX_RUNNING") ? ";\n" : "", ci, pool);
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s/conf.d/jobs.conf", dir, who);
	f = fopen(path, "w");
	if (!f)
		bench_die("write", path);
	fprintf(f, "jobs = (\n");
	for (int i = 0; i < jobs; i++)
		fprintf(
		    f,
		    "  { name = \"%s%d\"; database = \"side\"; schedule = \"* * * * *\";\n"
		    "    command = \"INSERT INTO ticks VALUES ('%s', clock_timestamp())\"; }%s\n",
		    who, i, who, i + 1 < jobs ? "," : "");
	fprintf(f, ");\n");
	fclose(f);
	snprintf(log, loglen, "%s/%s/daemon.log", dir, who);
	sleep_to_second(40);
	printf("pgcrond over %s: started at %ld\n", who, (long)time(NULL));
	fflush(stdout);
	pid_t pid = bench_daemon_start(conf, log);
	sleep_minutes(minutes + 1);
	bench_cpu_take(bc, JOB_LIKE, &scpu[1]);
	bench_daemon_stop(pid);
}

/* ---- the floor: what a minimal client gets from the same server, the same way ----------- */

/* The raw phases: POOL connections over TCP opened 20 s before the first minute, then a burst
 * of JOBS runs at each whole minute, nothing in between. */
static void phase_raw(const char *who, int jobs, int minutes, int pool)
{
	char ci[1300];
	struct floor f;
	floor_kind(&f, who);
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d user=postgres dbname=" DB, port);
	sleep_to_second(40);
	printf("%s (a minimal client%s): started at %ld\n", who,
	       f.reset ? ", with pgcrond's reset before each run" : ", INSERTs alone",
	       (long)time(NULL));
	fflush(stdout);
	/* SIDE_PARSE: the INSERT parsed once on each connection, its catalog entries cached */
	floor_open(&f, ci, pool, "INSERT INTO ticks VALUES ($1, clock_timestamp())", who,
	           getenv("SIDE_PARSE") != NULL);
	for (int m = 0; m <= minutes; m++) {
		struct timespec now, at;
		clock_gettime(CLOCK_REALTIME, &now);
		at = (struct timespec){.tv_sec = (now.tv_sec / 60 + 1) * 60};
		int spin = env_int("SIDE_SPIN_MS", 0, 0, 5000);
		struct timespec before = at;
		before.tv_sec -= spin / 1000 + 1;
		before.tv_nsec = 1000000000L - (long)(spin % 1000) * 1000000L;
		if (spin)
			while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &before, NULL) ==
			       EINTR)
				;
		for (struct timespec t = {0}; spin;) {
			clock_gettime(CLOCK_REALTIME, &t);
			if (t.tv_sec >= at.tv_sec)
				break;
		}
		while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &at, NULL) == EINTR)
			;
		floor_burst(&f, jobs, 0);
	}
	bench_cpu_take(bc, JOB_LIKE, &scpu[1]);
	floor_close(&f);
	bench_sleep(1);
}

static void print_result(const struct phase_result *r)
{
	printf("  %-8s first minute p50 %8.1f ms  p99 %8.1f ms (%ld runs); steady (median of %d "
	       "minutes) p50 %8.1f ms  p99 %8.1f ms (%ld runs)\n",
	       r->who, r->first_p50, r->first_p99, r->first_runs, r->steady_minutes, r->steady_p50,
	       r->steady_p99, r->steady_runs);
}

int main(void)
{
	int minutes = env_int("SIDE_MINUTES", 3, 1, 60);
	int jobs = env_int("SIDE_JOBS", 100, 1, 10000);
	int pool = env_int("SIDE_POOL", 8, 1, 100);
	const char *phases = getenv("SIDE_PHASES") ? getenv("SIDE_PHASES") : "cron,tcp,unix";
	bool want_cron = strstr(phases, "cron") != NULL;

	if (want_cron && !have_pg_cron())
		want_cron = false;
	char dir[] = "/tmp/bench-side-XXXXXX";
	if (!mkdtemp(dir))
		bench_die("mkdtemp", strerror(errno));
	chmod(dir, 0755);
	start_sandbox(dir, want_cron);
	bench_print_load("at start");
	printf("%d jobs on \"* * * * *\", an INSERT of clock_timestamp() each; %d steady "
	       "minute(s) per phase after the first; pgcrond pool %d\n",
	       jobs, minutes, pool);
	fflush(stdout);
	PGconn *c = bench_fresh_db(sandbox, DB, db_ci, sizeof(db_ci));
	bench_quiet_notices(c);
	bench_exec(c, "CREATE UNLOGGED TABLE ticks (who text, at timestamptz)");
	bench_exec(c, "GRANT ALL ON ticks TO PUBLIC");
	bench_exec(c, "GRANT ALL ON ALL TABLES IN SCHEMA pgcrond TO PUBLIC");
	if (want_cron)
		bench_exec(c, "CREATE EXTENSION pg_cron");

	char logs[2][800] = {"", ""};
	char unix_dir[600];
	snprintf(unix_dir, sizeof(unix_dir), "%s/sock", sandbox);
	/* in the order SIDE_PHASES names them, the server's CPU measured over each */
	struct phase_result res[5] = {0};
	const char *who[5] = {"cron", "tcp", "unix", "raw", "bare"};
	double cpu[5][8];
	bc = c;
	if (!(scpu = malloc(2 * sizeof(*scpu))))
		bench_die("malloc", "out of memory");
	const char *p = phases;
	while (*p) {
		size_t len = strcspn(p, ",");
		int k = 0;
		while (k < 5 && (strlen(who[k]) != len || strncmp(p, who[k], len) != 0))
			k++;
		bench_cpu_take(c, JOB_LIKE, &scpu[0]);
		if (len == 4 && strncmp(p, "cron", 4) == 0 && want_cron)
			phase_pg_cron(c, jobs, minutes);
		else if (len == 3 && strncmp(p, "tcp", 3) == 0)
			phase_pgcrond(dir, "tcp", "127.0.0.1", jobs, minutes, pool, logs[0],
			              sizeof(logs[0]));
		else if (len == 4 && strncmp(p, "unix", 4) == 0)
			phase_pgcrond(dir, "unix", unix_dir, jobs, minutes, pool, logs[1],
			              sizeof(logs[1]));
		else if (len == 3 && strncmp(p, "raw", 3) == 0)
			phase_raw("raw", jobs, minutes, pool);
		else if (len == 4 && strncmp(p, "bare", 4) == 0)
			phase_raw("bare", jobs, minutes, pool);
		if (k < 5) {
			const char *param[] = {who[k]};
			PGresult *r =
			    bench_query(c, "SELECT count(*) FROM ticks WHERE who = $1", 1, param);
			bench_cpu_per_run(&scpu[0], &scpu[1], atof(PQgetvalue(r, 0, 0)), cpu[k]);
			PQclear(r);
		}
		p += len;
		if (*p == ',')
			p++;
	}

	free(scpu);
	bench_print_load("at the end");
	printf("lateness past the minute (the statement's clock_timestamp()):\n");
	for (int i = 0; i < 5; i++) {
		lateness(c, who[i], &res[i]);
		if (res[i].ran) {
			print_result(&res[i]);
			bench_cpu_print(who[i], cpu[i]);
		}
		if ((i == 1 || i == 2) && logs[i - 1][0])
			print_stages(logs[i - 1]);
	}
	if (res[1].ran && res[3].ran && res[3].steady_p99 > 0 && res[3].first_p99 > 0)
		printf("  pgcrond tcp / the minimal client with the same reset (raw): steady p50 "
		       "%.1fx p99 %.1fx; first minute p50 %.1fx p99 %.1fx\n",
		       res[1].steady_p50 / res[3].steady_p50, res[1].steady_p99 / res[3].steady_p99,
		       res[1].first_p50 / res[3].first_p50, res[1].first_p99 / res[3].first_p99);
	if (res[0].ran) {
		char *failed = NULL;
		PGresult *r = PQexec(c, "SELECT count(*) FILTER (WHERE status <> 'succeeded'),"
		                        " count(*) FROM cron.job_run_details");
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			failed = strdup(PQgetvalue(r, 0, 0));
		PQclear(r);
		printf("  pg_cron runs not succeeded (cron.job_run_details): %s\n",
		       failed ? failed : "?");
		free(failed);
		for (int i = 1; i < 3; i++)
			if (res[i].ran && res[i].steady_p50 > 0 && res[i].first_p50 > 0)
				printf("  pg_cron / pgcrond %s: steady p50 %.1fx p99 %.1fx; first "
				       "minute "
				       "p50 %.1fx p99 %.1fx\n",
				       who[i], res[0].steady_p50 / res[i].steady_p50,
				       res[0].steady_p99 / res[i].steady_p99,
				       res[0].first_p50 / res[i].first_p50,
				       res[0].first_p99 / res[i].first_p99);
	}
	printf("logs and configs: %s\n", dir);
	PQfinish(c);
	return 0;
}
