/* bench_fire: how late do jobs start, how many runs per second are sustained, and what the
 * daemon costs. For each N (default 100, 1000, 10000): N jobs on "* * * * * *", each an
 * INSERT of statement_timestamp(); lateness is the statement's start on the server minus
 * the whole second it was scheduled for. Then the same N jobs idle (a yearly schedule) to
 * measure idle CPU. Prints figures; never fails on time.
 *
 * Each figure is measured in several consecutive windows of one daemon and printed as the
 * median and the spread (min-max) over them. History is checked too: statements executed
 * against history rows recorded, and how far the history trails while busy.
 *
 *   scripts/pg-sandbox run -- build/bench/fire/bench_fire [N ...]
 *   (FIRE_SECONDS=5: length of a busy window; FIRE_WINDOWS=3: windows per N; FIRE_POOL=8: the
 *   job database's pool; FIRE_HISTORY=down: the history database is one nobody answers for,
 *   so every record is spooled; FIRE_RELOAD=M: M more job files, one job each, none due,
 *   and a reload (SIGHUP) in the middle of every window; FIRE_RELOAD_PHASE=MS: that SIGHUP
 *   at MS ms into a wall-clock second (950: the parse ends as the fires are due); FIRE_INSTANCES=1:
 * instances running the same jobs on the same database, each fire claimed by one of them (README
 * "Running several instances"); FIRE_NO_CLAIMS=1: no claim table, so no claims: the baseline of
 *   their cost; FIRE_LOG_LEVEL=notice: the daemons' log_level; BENCH_PGCROND=PATH: run that
 *   pgcrond binary instead of this build's, to compare two builds back to back;
 *   FIRE_FLOORS=bare,raw,hist: the floors measured after pgcrond's busy windows, "none": none;
 *   FIRE_SPREAD=30s: instead, the N jobs on "* * * * *", FIRE_WINDOWS minutes without a spread
 *   and as many with this one: the server's peak of new runs in one second, each way)
 *
 * The server's CPU per run (bench/cpu.h), in each busy window and for each floor: the runs'
 * backends, pgcrond's own session (the history), the rest of the server, and with
 * pg_stat_statements preloaded (PGSANDBOX_CONF="shared_preload_libraries = pg_stat_statements")
 * the statements' time by what they are (reset, the job's, history, other).
 *
 * The floor (bench/floor.h): after pgcrond's windows, with the daemon stopped, a minimal libpq
 * client on FIRE_POOL connections runs the same N INSERTs at every whole second, measured in
 * the same windows the same way; printed with the ratios pgcrond / floor of the medians. The
 * ratios are what compares from machine to machine, not the ms. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
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

#define DB "bench_fire"
#define JOB_LIKE "INSERT INTO ticks%" /* the jobs' statement, for bench_cpu_take */

static char db_ci[1200];

/* FIRE_INSTANCES (default 1, at most 8): daemons with the same jobs, in DIR/i0, DIR/i1 ... */
static int fire_instances(void)
{
	const char *v = getenv("FIRE_INSTANCES");
	int n = v ? atoi(v) : 0;
	return n >= 1 && n <= 8 ? n : 1;
}

/* The job database's pool (FIRE_POOL, default 8): how many runs may be on the server at once. */
static int fire_pool(void)
{
	const char *v = getenv("FIRE_POOL");
	int n = v ? atoi(v) : 0;
	return n >= 1 && n <= 1000 ? n : 8;
}

/* VmRSS in kB, from /proc. */
static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* STATE names the state_dir under DIR: each phase gets its own, so that history a busy
 * daemon left spooled is not replayed inside the idle measurement. */
static void make_state_dir(const char *dir, const char *state)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, state);
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		bench_die("mkdir", path);
	bench_chown_user(path);
}

/* Lines in the instances' history spill files (DIR/i<K>/STATE): records not yet written
 * when the daemons stopped. */
static long spooled_records(const char *dir, const char *state)
{
	long n = 0;
	for (int k = 0; k < fire_instances(); k++) {
		char path[600];
		snprintf(path, sizeof(path), "%s/i%d/%s/history.spool", dir, k, state);
		FILE *f = fopen(path, "r");
		int ch;
		if (!f)
			continue;
		while ((ch = getc(f)) != EOF)
			n += ch == '\n';
		fclose(f);
	}
	return n;
}

/* FIRE_HISTORY=down: the history database does not answer (a socket dir that does not
 * exist), so the daemon spools every record while the jobs run. */
static bool history_down(void)
{
	const char *v = getenv("FIRE_HISTORY");
	return v && strcmp(v, "down") == 0;
}

/* FIRE_RELOAD_PHASE=MS: the reload's SIGHUP goes MS milliseconds into a wall-clock second
 * (950: the parse ends about when the next second's fires are due, the worst moment); unset
 * or negative: half-way through the window, wherever in its second that falls. */
static int reload_phase_ms(void)
{
	const char *v = getenv("FIRE_RELOAD_PHASE");
	int ms = v && *v ? atoi(v) : -1;
	return ms < 1000 ? ms : -1;
}

/* Sleep until PHASE ms into the next wall-clock second (the fires' seconds). */
static void sleep_to_phase(int phase)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double into = (double)ts.tv_nsec / 1e9, want = phase / 1000.0;
	bench_sleep(want > into ? want - into : 1.0 - into + want);
}

/* FIRE_RELOAD=M: M job files to re-read in a reload during each window (0: no reload). */
static int reload_files(void)
{
	const char *v = getenv("FIRE_RELOAD");
	int n = v ? atoi(v) : 0;
	return n >= 0 && n <= 100000 ? n : 0;
}

/* FIRE_SPREAD: the spread of the jobs' minute fires measured against none ("" unset). */
static const char *fire_spread(void)
{
	const char *v = getenv("FIRE_SPREAD");
	return v ? v : "";
}

static void write_config(const char *dir, const char *state, int n, const char *schedule,
                         const char *spread, const char *instance)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/pgcrond.conf", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		bench_die("write", path);
	fprintf(f,
	        "instance = \"%s\";\n"
	        "timezone = \"UTC\";\nplugin_dir = \"%s\";\nconf_dir = \"conf.d\";\n"
	        "state_dir = \"%s/%s\";\nlog_level = \"%s\";\nmax_running = 64;\n"
	        "shutdown_grace = \"5s\";\n"
	        "databases = { bench = { conninfo = \"%s\"; pool = %d; };\n"
	        "  gone = { conninfo = \"host=/nonexistent-pgcrond-bench dbname=x\"; }; };\n"
	        "history = { database = \"%s\"; retain = \"1d\"; };\n",
	        instance, dir, dir, state,
	        getenv("FIRE_LOG_LEVEL") ? getenv("FIRE_LOG_LEVEL") : "notice", db_ci, fire_pool(),
	        history_down() ? "gone" : "bench");
	fclose(f);
	/* files of 1,000 jobs (a configuration file may hold at most 1 MiB), none left over
	 * from a larger N */
	snprintf(path, sizeof(path), "%s/conf.d", dir);
	DIR *d = opendir(path);
	for (struct dirent *e; d && (e = readdir(d));) {
		char old[1024];
		if (strncmp(e->d_name, "jobs-", 5) == 0 &&
		    snprintf(old, sizeof(old), "%s/conf.d/%s", dir, e->d_name) < (int)sizeof(old))
			unlink(old);
	}
	if (d)
		closedir(d);
	for (int first = 0; first < n; first += 1000) {
		int last = first + 1000 < n ? first + 1000 : n;
		snprintf(path, sizeof(path), "%s/conf.d/jobs-%06d.conf", dir, first);
		f = fopen(path, "w");
		if (!f)
			bench_die("write", path);
		fprintf(f, "jobs = (\n");
		for (int i = first; i < last; i++)
			fprintf(
			    f,
			    "  { name = \"j%d\"; database = \"bench\"; schedule = \"%s\";%s%s%s\n"
			    "    command = \"INSERT INTO ticks VALUES "
			    "(statement_timestamp())\"; }%s\n",
			    i, schedule, *spread ? " spread = \"" : "", spread,
			    *spread ? "\";" : "", i + 1 < last ? "," : "");
		fprintf(f, ");\n");
		fclose(f);
	}
	for (int i = 0; i < reload_files(); i++) {
		snprintf(path, sizeof(path), "%s/conf.d/reload-%05d.conf", dir, i);
		f = fopen(path, "w");
		if (!f)
			bench_die("write", path);
		fprintf(f,
		        "job = { name = \"r%d\"; database = \"bench\"; schedule = \"0 0 1 1 *\";\n"
		        "        command = \"SELECT %d\"; };\n",
		        i, i);
		fclose(f);
	}
}

/* One measured window of a busy daemon: from t0 to t1 (server clock), and its CPU. */
struct window {
	char t0[64], t1[64];
	double seconds, cpu_pct;
	double runs_s, p50, p99, max;
	double lag_ms;      /* the history's lag at the window's end */
	double hist_rows_s; /* history rows written */
	double cpu[8];      /* the server's CPU per run (bench_cpu_per_run) */
};

static void server_now(PGconn *c, char *out, size_t len)
{
	PGresult *r = PQexec(c, "SELECT now()");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("SELECT now()", PQresultErrorMessage(r));
	snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
}

static long long count_of(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die(sql, PQresultErrorMessage(r));
	long long n = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return n;
}

/* The lateness (p50, p99, max in ms) and the runs a second of the ticks inserted between T0 and
 * T1 (timestamps), SECONDS apart: pgcrond's runs and the floor's are measured alike. */
static void window_stats(PGconn *c, const char *t0, const char *t1, double seconds, double *p50,
                         double *p99, double *max, double *runs_s)
{
	const char *params[] = {t0, t1};
	PGresult *r = bench_query(
	    c,
	    "SELECT count(*), coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY l), 0),"
	    " coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY l), 0), coalesce(max(l), 0)"
	    " FROM (SELECT extract(epoch FROM at - date_trunc('second', at)) * 1000 AS l"
	    " FROM ticks WHERE at >= $1::timestamptz AND at < $2::timestamptz) s",
	    2, params);
	*p50 = atof(PQgetvalue(r, 0, 1));
	*p99 = atof(PQgetvalue(r, 0, 2));
	*max = atof(PQgetvalue(r, 0, 3));
	*runs_s = atof(PQgetvalue(r, 0, 0)) / seconds;
	PQclear(r);
}

/* The medians over the windows that the ratios to the floor are of. */
struct figures {
	double p50, p99, runs_s;
};

/* DIR/i<K>, with its conf.d, for instance K. */
static void instance_dir(const char *dir, int k, char *out, size_t len)
{
	char path[600];
	snprintf(out, len, "%s/i%d", dir, k);
	if (mkdir(out, 0755) != 0 && errno != EEXIST)
		bench_die("mkdir", out);
	snprintf(path, sizeof(path), "%s/conf.d", out);
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		bench_die("mkdir", path);
}

static struct figures busy(PGconn *c, const char *dir, int n, double seconds, int windows)
{
	char conf[600], log[8][600], buf[8][96], idir[8][512], name[24];
	struct window w[64];
	struct bench_cpu *scpu = malloc(2 * sizeof(*scpu));
	if (!scpu)
		bench_die("malloc", "out of memory");
	double v[8][64];
	long hz = sysconf(_SC_CLK_TCK);
	int k = fire_instances();
	pid_t pid[8];

	bench_exec(c, "TRUNCATE ticks, pgcrond.job_run_details");
	if (count_of(c, "SELECT count(*) FROM pg_tables WHERE schemaname = 'pgcrond'"
	                " AND tablename = 'fire_claim'") > 0)
		bench_exec(c, "TRUNCATE pgcrond.fire_claim");
	char state[64];
	snprintf(state, sizeof(state), "state-busy-%d", n);
	for (int i = 0; i < k; i++) {
		instance_dir(dir, i, idir[i], sizeof(idir[i]));
		make_state_dir(idir[i], state);
		snprintf(name, sizeof(name), "bench%d", i);
		write_config(idir[i], state, n, "* * * * * *", "", name);
		snprintf(conf, sizeof(conf), "%s/pgcrond.conf", idir[i]);
		snprintf(log[i], sizeof(log[i]), "%s/daemon-%d.log", idir[i], n);
		pid[i] = bench_daemon_start(conf, log[i]);
	}
	bench_sleep(3 + n / 5000.0); /* warm-up: config, connections, the first fires */
	for (int i = 0; i < windows; i++) {
		/* the bench's own queries (counts over the growing history) go half-way between two
		 * whole seconds, away from the fires they measure: a count that fell on a second's
		 * burst of 1,000 runs would take the server's CPU from them */
		sleep_to_phase(500);
		server_now(c, w[i].t0, sizeof(w[i].t0));
		long long cpu0 = 0, cpu1 = 0;
		long long rows0 = count_of(c, "SELECT count(*) FROM pgcrond.job_run_details");
		long long runs0 = count_of(c, "SELECT count(*) FROM ticks");
		bench_cpu_take(c, JOB_LIKE, &scpu[0]);
		for (int j = 0; j < k; j++)
			cpu0 += bench_proc_ticks(pid[j], false, NULL);
		double m0 = bench_now();
		if (reload_files() > 0) {
			/* a reload that re-reads every job file, mid-window */
			double half = bench_now();
			/* half-way (to the phase asked for, within the second before) */
			bench_sleep(seconds / 2 > 1 ? seconds / 2 - 1 : 0);
			if (reload_phase_ms() >= 0)
				sleep_to_phase(reload_phase_ms());
			else
				bench_sleep(seconds / 2 > 1 ? 1 : seconds / 2);
			for (int j = 0; j < k; j++)
				kill(pid[j], SIGHUP);
			double left = seconds - (bench_now() - half);
			bench_sleep(left > 0.5 ? left - 0.5 : 0);
		} else {
			bench_sleep(seconds - 0.5);
		}
		sleep_to_phase(500);
		for (int j = 0; j < k; j++)
			cpu1 += bench_proc_ticks(pid[j], false, NULL);
		w[i].seconds = bench_now() - m0;
		server_now(c, w[i].t1, sizeof(w[i].t1));
		w[i].cpu_pct = 100.0 * (double)(cpu1 - cpu0) / (double)hz / w[i].seconds;
		bench_cpu_take(c, JOB_LIKE, &scpu[1]);
		bench_cpu_per_run(&scpu[0], &scpu[1],
		                  (double)(count_of(c, "SELECT count(*) FROM ticks") - runs0),
		                  w[i].cpu);
		w[i].hist_rows_s =
		    (double)(count_of(c, "SELECT count(*) FROM pgcrond.job_run_details") - rows0) /
		    w[i].seconds;
		/* how far behind the history is at the window's end: the records go out in the
		 * order the runs ended, so the newest end recorded is where the writer is */
		PGresult *r = PQexec(c, "SELECT coalesce(extract(epoch FROM clock_timestamp() -"
		                        " max(end_time)) * 1000, -1) FROM pgcrond.job_run_details"
		                        " WHERE status IN ('succeeded', 'failed')");
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			bench_die("history lag", PQresultErrorMessage(r));
		w[i].lag_ms = atof(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	long rss = rss_kb(pid[0]);
	/* How far the history trails the runs while busy: statements executed so far minus
	 * runs whose row is complete. */
	long long ticks_now = count_of(c, "SELECT count(*) FROM ticks");
	long long done_now = count_of(c, "SELECT count(*) FROM pgcrond.job_run_details"
	                                 " WHERE status IN ('succeeded', 'failed')");
	double t_stop = bench_now();
	for (int i = 0; i < k; i++)
		bench_daemon_stop(pid[i]); /* flushes what history still holds, within its grace */
	double stop_s = bench_now() - t_stop;
	for (int i = 0; i < windows; i++) {
		window_stats(c, w[i].t0, w[i].t1, w[i].seconds, v[0] + i, v[1] + i, v[2] + i,
		             v[3] + i);
		v[4][i] = w[i].cpu_pct;
		v[5][i] = w[i].lag_ms;
		v[6][i] = w[i].hist_rows_s;
	}
	double cpu[8], cv[64];
	for (int k = 0; k < 8; k++) {
		for (int i = 0; i < windows; i++)
			cv[i] = w[i].cpu[k];
		cpu[k] = bench_spread(cv, windows, 1, buf[7], sizeof(buf[7]));
	}
	struct figures fig = {
	    .p50 = bench_spread(v[0], windows, 1, buf[0], sizeof(buf[0])),
	    .p99 = bench_spread(v[1], windows, 1, buf[1], sizeof(buf[1])),
	    .runs_s = bench_spread(v[3], windows, 0, buf[3], sizeof(buf[3])),
	};
	bench_spread(v[2], windows, 1, buf[2], sizeof(buf[2]));
	bench_spread(v[4], windows, 1, buf[4], sizeof(buf[4]));
	bench_spread(v[5], windows, 0, buf[5], sizeof(buf[5]));
	bench_spread(v[6], windows, 0, buf[6], sizeof(buf[6]));
	printf("N=%-6d busy, %d instance(s), %d windows of %.0f s, median (min-max)%s%s:\n", n, k,
	       windows, seconds, history_down() ? ", history database down (spooling)" : "",
	       reload_files() > 0 ? ", a reload of the job files mid-window" : "");
	if (reload_files() > 0)
		printf("  %d more job files re-read by each reload%s\n", reload_files(),
		       reload_phase_ms() >= 0
		           ? ", its SIGHUP sent at FIRE_RELOAD_PHASE ms into a second"
		           : "");
	printf("  lateness ms  p50 %s  p99 %s  max %s\n", buf[0], buf[1], buf[2]);
	printf("  runs/s %s (expected %d)  daemon CPU %% %s (all instances)  RSS %ld kB\n", buf[3],
	       n, buf[4], rss);
	printf("  history lag ms at each window's end (now minus the newest end recorded) %s\n",
	       buf[5]);
	printf("  history rows written/s %s\n", buf[6]);
	bench_cpu_print("pgcrond", cpu); /* (medians over the windows) */

	/* Every statement executed should have its history row, complete. */
	PGresult *r = PQexec(c, "SELECT (SELECT count(*) FROM ticks),"
	                        " count(*),"
	                        " count(*) FILTER (WHERE status = 'succeeded'),"
	                        " count(*) FILTER (WHERE status = 'failed'),"
	                        " count(*) FILTER (WHERE status = 'skipped'),"
	                        " count(*) FILTER (WHERE status IN ('starting', 'running'))"
	                        " FROM pgcrond.job_run_details");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("history counts", PQresultErrorMessage(r));
	printf("  statements executed %s; history rows %s: succeeded %s, failed %s, skipped %s, "
	       "still running %s\n",
	       PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3),
	       PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 5));
	printf("  history trailing at the end of the busy period: %lld runs; daemon stop took "
	       "%.1f s; records left in the spill file: %ld\n",
	       ticks_now - done_now, stop_s, spooled_records(dir, state));
	PQclear(r);
	/* exactly once: no fire with two successful runs, and how the claims went */
	bool claims = count_of(c, "SELECT count(*) FROM pg_tables WHERE schemaname = 'pgcrond'"
	                          " AND tablename = 'fire_claim'") > 0;
	printf("  fires run twice: %lld; claims taken: %lld\n",
	       count_of(c, "SELECT count(*) FROM (SELECT job_name, scheduled_time"
	                   " FROM pgcrond.job_run_details WHERE status = 'succeeded'"
	                   " GROUP BY 1, 2 HAVING count(*) > 1) d"),
	       claims ? count_of(c, "SELECT count(*) FROM pgcrond.fire_claim") : -1LL);
	for (int i = 0; i < k; i++) {
		/* the line "cluster: N claims (...) in M statements, X ms each" of its stop */
		char *text = bench_slurp(log[i]), *line = text;
		while ((line = strstr(line, "cluster: ")) != NULL) {
			int len = (int)strcspn(line, "\n");
			char *claims = strstr(line, " claims (");
			if (claims && claims < line + len) {
				printf("  instance bench%d: %.*s\n", i, len, line);
				break;
			}
			line += len;
		}
		free(text);
	}
	fflush(stdout);
	free(scpu);
	return fig;
}

/* The same jobs, none due: RSS and CPU in consecutive windows after start-up, so that
 * start-up work still running would show as a falling series. */
static void idle(const char *dir, int n, int windows)
{
	char conf[512], log[512], buf[96];
	double v[64], first = 0;
	long hz = sysconf(_SC_CLK_TCK);

	snprintf(conf, sizeof(conf), "%s/pgcrond.conf", dir);
	snprintf(log, sizeof(log), "%s/daemon-%d-idle.log", dir, n);
	char state[64];
	snprintf(state, sizeof(state), "state-idle-%d", n);
	make_state_dir(dir, state);
	write_config(dir, state, n, "0 0 1 1 *", "", "bench-idle");
	pid_t pid = bench_daemon_start(conf, log);
	bench_sleep(5); /* past the start-up work (config, plugins, history) */
	long long start_cpu = bench_proc_ticks(pid, false, NULL);
	for (int i = 0; i < windows; i++) {
		long long cpu0 = bench_proc_ticks(pid, false, NULL);
		double m0 = bench_now();
		bench_sleep(2);
		long long cpu1 = bench_proc_ticks(pid, false, NULL);
		v[i] = 100.0 * (double)(cpu1 - cpu0) / (double)hz / (bench_now() - m0);
		if (i == 0)
			first = v[i];
	}
	long rss = rss_kb(pid);
	bench_daemon_stop(pid);
	bench_spread(v, windows, 2, buf, sizeof(buf));
	printf("N=%-6d idle: CPU %% %s over %d windows of 2 s (first %.2f); CPU during the 5 s "
	       "start-up %.2f s; RSS %ld kB\n",
	       n, buf, windows, first, (double)start_cpu / (double)hz, rss);
	fflush(stdout);
}

/* The server's clock's text for wall-clock time T (the bench runs on the server's machine). */
static void ts_text(PGconn *c, double t, char *out, size_t len)
{
	char arg[64];
	snprintf(arg, sizeof(arg), "%.6f", t);
	const char *params[] = {arg};
	PGresult *r = bench_query(c, "SELECT to_timestamp($1::float8)", 1, params);
	snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
}

/* The floor KIND (floor.h) for N jobs, in the same run on the same server: a minimal client on
 * the pool's FIRE_POOL connections sends the jobs' INSERT, N at every whole second, measured
 * in WINDOWS windows of SECONDS as pgcrond's runs are. Prints its figures and pgcrond's
 * medians (PG) over its own. */
static void floor_phase(PGconn *c, const char *kind, int n, double seconds, int windows,
                        struct figures pg)
{
	struct floor f;
	double v[4][64];
	char buf[4][96];
	if (!floor_kind(&f, kind)) {
		fprintf(stderr, "bench_fire: FIRE_FLOORS: no floor \"%s\" (bare, raw, hist)\n",
		        kind);
		return;
	}
	if (f.history)
		floor_history_create(c);
	floor_open(&f, db_ci, fire_pool(), "INSERT INTO ticks VALUES (statement_timestamp())", NULL,
	           false);
	/* 2 s of warm-up, then the windows from half a second past a whole second, as pgcrond's */
	double from = (double)(long long)bench_wall_now() + 3.5, cpu[8];
	struct bench_cpu *scpu = malloc(2 * sizeof(*scpu));
	if (!scpu)
		bench_die("malloc", "out of memory");
	long long runs0 = count_of(c, "SELECT count(*) FROM ticks");
	bench_cpu_take(c, JOB_LIKE, &scpu[0]);
	floor_every_second(&f, n, from + seconds * windows);
	bench_cpu_take(c, JOB_LIKE, &scpu[1]);
	bench_cpu_per_run(&scpu[0], &scpu[1],
	                  (double)(count_of(c, "SELECT count(*) FROM ticks") - runs0), cpu);
	free(scpu);
	floor_close(&f);
	for (int i = 0; i < windows; i++) {
		char t0[64], t1[64];
		ts_text(c, from + seconds * i, t0, sizeof(t0));
		ts_text(c, from + seconds * (i + 1), t1, sizeof(t1));
		window_stats(c, t0, t1, seconds, v[0] + i, v[1] + i, v[2] + i, v[3] + i);
	}
	struct figures fl = {
	    .p50 = bench_spread(v[0], windows, 1, buf[0], sizeof(buf[0])),
	    .p99 = bench_spread(v[1], windows, 1, buf[1], sizeof(buf[1])),
	    .runs_s = bench_spread(v[3], windows, 0, buf[3], sizeof(buf[3])),
	};
	bench_spread(v[2], windows, 1, buf[2], sizeof(buf[2]));
	printf("  floor %-4s lateness ms  p50 %s  p99 %s  max %s; runs/s %s; runs not started in "
	       "their second %ld\n",
	       kind, buf[0], buf[1], buf[2], buf[3], f.skipped);
	char who[32];
	snprintf(who, sizeof(who), "floor %s", kind);
	bench_cpu_print(who, cpu); /* (over its warm-up and windows) */
	printf("  pgcrond / floor %-4s  p50 %.2fx  p99 %.2fx  runs/s %.3fx\n", kind,
	       fl.p50 > 0 ? pg.p50 / fl.p50 : 0, fl.p99 > 0 ? pg.p99 / fl.p99 : 0,
	       fl.runs_s > 0 ? pg.runs_s / fl.runs_s : 0);
	fflush(stdout);
}

/* FIRE_FLOORS (default "bare,raw,hist"; "none": none): the floors measured after each N. */
static void floors(PGconn *c, int n, double seconds, int windows, struct figures pg)
{
	const char *p = getenv("FIRE_FLOORS") ? getenv("FIRE_FLOORS") : "bare,raw,hist";
	if (strcmp(p, "none") == 0 || !*p)
		return;
	printf("  the floor: a minimal libpq client on %d connections (the pool), the same N every "
	       "second, %d windows of %.0f s (bench/floor.h)\n",
	       fire_pool(), windows, seconds);
	while (*p) {
		char kind[16];
		size_t len = strcspn(p, ",");
		snprintf(kind, sizeof(kind), "%.*s", (int)(len < 15 ? len : 15), p);
		floor_phase(c, kind, n, seconds, windows, pg);
		p += len + (p[len] == ',');
	}
}

/* N jobs on "* * * * *" with SPREAD ("": none), one daemon, WINDOWS minute fires: per fire,
 * the server's peak of new runs in one second (statements started in that second), the
 * seconds the fire's runs started over, and its runs. Returns the median peak. */
static double minute_fires(PGconn *c, const char *dir, int n, const char *spread, int windows)
{
	char conf[600], log[600], state[64], buf[3][96];
	double v[3][64];
	snprintf(state, sizeof(state), "state-minute-%d-%s", n, *spread ? spread : "none");
	make_state_dir(dir, state);
	write_config(dir, state, n, "* * * * *", spread, "bench-spread");
	snprintf(conf, sizeof(conf), "%s/pgcrond.conf", dir);
	snprintf(log, sizeof(log), "%s/daemon-%d-spread-%s.log", dir, n, *spread ? spread : "none");
	bench_exec(c, "TRUNCATE ticks, pgcrond.job_run_details");
	pid_t pid = bench_daemon_start(conf, log);
	/* the first minute that starts at least 5 s after the start (warm-up), then one window
	 * a minute, each read once its fires' window (up to 60 s) is over */
	double first = ((long long)(bench_wall_now() + 5) / 60 + 1) * 60.0;
	for (int i = 0; i < windows; i++) {
		double m = first + 60.0 * i;
		double wait = m + 62 - bench_wall_now();
		if (wait > 0)
			bench_sleep(wait);
		char t0[64], t1[64];
		ts_text(c, m, t0, sizeof(t0));
		ts_text(c, m + 60, t1, sizeof(t1));
		const char *params[] = {t0, t1};
		PGresult *r = bench_query(
		    c,
		    "SELECT coalesce(max(k), 0), count(*), coalesce(sum(k), 0) FROM (SELECT"
		    " date_trunc('second', at) s, count(*) k FROM ticks"
		    " WHERE at >= $1::timestamptz AND at < $2::timestamptz GROUP BY 1) x",
		    2, params);
		v[0][i] = atof(PQgetvalue(r, 0, 0));
		v[1][i] = atof(PQgetvalue(r, 0, 1));
		v[2][i] = atof(PQgetvalue(r, 0, 2));
		PQclear(r);
	}
	bench_daemon_stop(pid);
	double peak = bench_spread(v[0], windows, 0, buf[0], sizeof(buf[0]));
	bench_spread(v[1], windows, 0, buf[1], sizeof(buf[1]));
	bench_spread(v[2], windows, 0, buf[2], sizeof(buf[2]));
	printf("  spread %-5s  peak new runs in one second %s; seconds with runs %s; runs per fire "
	       "%s (expected %d); mean per second with runs %.1f\n",
	       *spread ? spread : "none", buf[0], buf[1], buf[2], n,
	       v[1][0] > 0 ? v[2][0] / v[1][0] : 0);
	fflush(stdout);
	return peak;
}

/* FIRE_SPREAD: the peak of new runs a second on the server, N minute jobs without a spread
 * and with FIRE_SPREAD, WINDOWS fires each (median (min-max) over the fires). */
static void spread_bench(PGconn *c, const char *dir, int n, int windows)
{
	char when[32];
	snprintf(when, sizeof(when), "before N=%d", n);
	bench_print_load(when);
	printf("N=%-6d jobs on \"* * * * *\", %d minute fires each way, median (min-max):\n", n,
	       windows);
	double none = minute_fires(c, dir, n, "", windows);
	double with = minute_fires(c, dir, n, fire_spread(), windows);
	printf("  peak without / peak with spread %s: %.1fx\n", fire_spread(),
	       with > 0 ? none / with : 0);
	fflush(stdout);
}

static void bench(PGconn *c, const char *dir, int n, double seconds, int windows)
{
	if (*fire_spread()) {
		spread_bench(c, dir, n, windows);
		return;
	}
	char when[32];
	snprintf(when, sizeof(when), "before N=%d", n);
	bench_print_load(when);
	struct figures pg = busy(c, dir, n, seconds, windows);
	floors(c, n, seconds, windows, pg);
	idle(dir, n, windows);
}

int main(int argc, char **argv)
{
	const char *sandbox = getenv("PGCROND_SANDBOX");
	if (!sandbox) {
		fprintf(stderr,
		        "bench_fire: run it in a sandbox: scripts/pg-sandbox run -- %s [N ...]\n",
		        argv[0]);
		return 0;
	}
	PGconn *c = bench_fresh_db(sandbox, DB, db_ci, sizeof(db_ci));
	bench_exec(c, "CREATE UNLOGGED TABLE ticks (at timestamptz)");
	bench_exec(c, "GRANT ALL ON ticks TO PUBLIC");
	/* FIRE_NO_CLAIMS=1: without the claim table coordination is off, the baseline of what
	 * the claims cost. bench_fresh_db applied every schema step, step 4's claim table too,
	 * so it is dropped here (applying step 4 only when claims were wanted did nothing). */
	const char *no_claims = getenv("FIRE_NO_CLAIMS");
	if (no_claims && strcmp(no_claims, "1") == 0)
		bench_exec(c, "DROP TABLE IF EXISTS pgcrond.fire_claim");
	bench_exec(c, "GRANT ALL ON ALL TABLES IN SCHEMA pgcrond TO PUBLIC");

	char path[1024], dir[] = "/tmp/bench-fire-XXXXXX";
	if (!mkdtemp(dir))
		bench_die("mkdtemp", strerror(errno));
	chmod(dir, 0755);
	snprintf(path, sizeof(path), "%s/conf.d", dir);
	mkdir(path, 0755);

	const char *secs = getenv("FIRE_SECONDS"), *wins = getenv("FIRE_WINDOWS");
	double seconds = secs ? atof(secs) : 5;
	int windows = wins ? atoi(wins) : 3;
	if (seconds < 1)
		seconds = 5;
	if (windows < 1 || windows > 64)
		windows = 3;
	bench_print_load("at start");
	int defaults[] = {100, 1000, 10000};
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			bench(c, dir, atoi(argv[i]), seconds, windows);
	} else {
		for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
			bench(c, dir, defaults[i], seconds, windows);
	}
	bench_print_load("at the end");
	printf("logs and configs: %s\n", dir);
	PQfinish(c);
	return 0;
}
