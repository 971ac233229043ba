/* bench_scale: the daemon with many jobs (files of 1,000 jobs on yearly schedules, so none
 * is due): how long `pgcrond check` and `pgcrond list` take, how long the daemon takes from
 * exec to its "started" line, how long a SIGHUP reload takes (signal to its "configuration
 * reloaded" line), and the daemon's RSS after start and after the reloads. Each figure is the
 * median (min-max) over RUNS runs, an odd number so that the median is one of them (the
 * reloads: over every reload of every run, the mean of the middle two when they are even in
 * number); each line says over how many.
 *
 * Whether a reload delays the fires due meanwhile: TICKS more jobs run every second (an
 * INSERT of statement_timestamp() into bench_scale_tick; lateness is that minus the whole
 * second it was scheduled for), and each run reloads RELOADS times. After the first, each
 * SIGHUP is timed so that a second begins about 50 ms before the reload's end (the end of
 * the swap, where the loop is busy with the jobs), from how long the reload before took.
 * Printed: the lateness of the fires scheduled between a SIGHUP and its "reloaded" line (the
 * worst of each reload, then median (min-max) over the reloads), the same for fires outside
 * any reload, and with log_level debug the longest the loop was held by a reload (the
 * daemon's "reload: the loop spent ..." line). Never fails on time.
 *
 * The floor (bench/floor.h), in each run after the daemon's stop, on the same server: a minimal
 * libpq client on the pool's connections runs the ticks' INSERT, TICKS at every whole second,
 * for 3 s (each kind of SCALE_FLOORS); and pgbench runs on as many connections for
 * SCALE_PGBENCH_SECONDS what the pool sends for a run, in one pipelined round trip: the
 * session reset (DISCARD ALL, SHOW statement_timeout) and the ticks' INSERT. Printed beside
 * pgcrond's quiet window: the worst lateness and the runs a second, pgcrond's recorded in its
 * history, and the ratios pgcrond / floor and pgcrond's runs/s recorded / pgbench's tps
 * (SCALE_TICKS=15000: 15,000 jobs every second, the runs/s as a ratio to what the same server does
 * for pgbench).
 *
 *   scripts/pg-sandbox run -- build/dev/bench/scale/bench_scale [N ...]   (default 10000 100000)
 *   (SCALE_RUNS=3: an even number is made odd, one run more; SCALE_RELOADS=4: reloads per run;
 * SCALE_TICKS=4 (at most 50,000); SCALE_POOL=8: the pool; SCALE_LOG_LEVEL=notice: the daemon's
 * log_level, debug for the time a reload holds the loop; SCALE_FLOORS=bare,raw,hist ("none": none);
 * SCALE_PGBENCH_SECONDS=5 (0: no pgbench); SCALE_PGBENCH=/usr/lib/postgresql/15/bin/pgbench;
 * BENCH_PGCROND=PATH: that pgcrond binary instead of this build's). The bar's setup:
 * SCALE_TICKS=15000 SCALE_POOL=16, 100,000 idle jobs and 15,000 more every second (its RSS is that
 * of a busy daemon). */
#include <errno.h>
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
#include "floor.h"

#define DB "bench_scale"
#define MAX_RUNS 15
#define MAX_RELOADS 16
#define MAX_FLOORS 3

static char db_ci[1200];
static int pool = 8; /* the job database's pool (SCALE_POOL), and pgbench's connections */

static int env_int(const char *name, int dflt, int lo, int hi)
{
	const char *v = getenv(name);
	int n = v ? atoi(v) : dflt;
	return n >= lo && n <= hi ? n : dflt;
}

/* TICKS jobs every second, in files of 1,000 of their own (a file may hold at most 1 MiB). */
static void write_ticks(const char *dir, int ticks)
{
	for (int first = 0; first < ticks || first == 0; first += 1000) {
		char path[1024];
		snprintf(path, sizeof(path), "%s/conf.d/ticks-%05d.conf", dir, first);
		FILE *f = fopen(path, "w");
		if (!f)
			bench_die("write", path);
		fprintf(f, "jobs = (\n");
		for (int i = first; i < first + 1000 && i < ticks; i++)
			fprintf(f,
			        "  { name = \"tick-%d\"; database = \"bench\"; schedule = \"* * * "
			        "* * *\";"
			        " command = \"INSERT INTO bench_scale_tick VALUES ('tick-%d', "
			        "statement_timestamp())\"; }%s\n",
			        i, i, i + 1 < first + 1000 && i + 1 < ticks ? "," : "");
		fprintf(f, ");\n");
		fclose(f);
	}
}

static void write_config(const char *dir, int n)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/pgcrond.conf", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		bench_die("write", path);
	fprintf(f,
	        "timezone = \"UTC\";\nconf_dir = \"conf.d\";\nstate_dir = \"%s/state\";\n"
	        "log_level = \"%s\";\n"
	        "databases = { bench = { conninfo = \"%s\"; pool = %d; }; };\n"
	        "history = { database = \"bench\"; retain = \"1d\"; };\n",
	        dir, getenv("SCALE_LOG_LEVEL") ? getenv("SCALE_LOG_LEVEL") : "notice", db_ci, pool);
	fclose(f);
	snprintf(path, sizeof(path), "%s/conf.d", dir);
	mkdir(path, 0755);
	for (int first = 0; first < n; first += 1000) {
		snprintf(path, sizeof(path), "%s/conf.d/jobs-%06d.conf", dir, first);
		f = fopen(path, "w");
		if (!f)
			bench_die("write", path);
		fprintf(f, "jobs = (\n");
		for (int i = first; i < first + 1000 && i < n; i++)
			fprintf(f,
			        "  { name = \"tenant-%d-refresh\"; database = \"bench\";"
			        " schedule = \"%d %d %d %d *\"; command = \"SELECT %d\"; }%s\n",
			        i, i % 60, i % 24, i % 28 + 1, i % 12 + 1, i,
			        i + 1 < first + 1000 && i + 1 < n ? "," : "");
		fprintf(f, ");\n");
		fclose(f);
	}
}

/* Seconds a command takes, its output thrown away. */
static double time_cmd(const char *conf, const char *sub)
{
	double t = bench_now();
	pid_t pid = fork();
	if (pid == 0) {
		if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
			_exit(127);
		execl(PGCROND_BIN, "pgcrond", sub, "-c", conf, (char *)NULL);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		bench_die(sub, "failed");
	return bench_now() - t;
}

/* Wait until LOG holds NEEDLE COUNT times (at most 120 s); returns the seconds waited. */
static double wait_log_n(const char *log, const char *needle, int count, double t0)
{
	for (;;) {
		FILE *f = fopen(log, "r");
		char line[4096];
		int found = 0;
		while (f && fgets(line, sizeof(line), f))
			found += strstr(line, needle) != NULL;
		if (f)
			fclose(f);
		if (found >= count)
			return bench_now() - t0;
		if (bench_now() - t0 > 120)
			bench_die("no log line", needle);
		bench_sleep(0.005); /* a benchmark may poll; the daemon never does */
	}
}

static double wait_log(const char *log, const char *needle, double t0)
{
	return wait_log_n(log, needle, 1, t0);
}

/* The longest the loop was held by each reload in LOG (log_level debug), into V (at most
 * MAX); returns how many. A build before the swap went in slices logged only the swap's
 * total: one turn. */
static int read_holds(const char *log, double *v, int max)
{
	FILE *f = fopen(log, "r");
	char line[4096];
	int n = 0;
	while (f && fgets(line, sizeof(line), f) && n < max) {
		const char *p = strstr(line, "reload: the loop spent ");
		double plugins, swap, longest;
		unsigned turns;
		if (!p)
			continue;
		int k = sscanf(p,
		               "reload: the loop spent %lf ms on the plugins and %lf ms on the "
		               "swap, in %u turn(s) of at most %lf ms",
		               &plugins, &swap, &turns, &longest);
		if (k == 4)
			v[n++] = longest > plugins ? longest : plugins;
		else if (k >= 2)
			v[n++] = swap > plugins ? swap : plugins;
	}
	if (f)
		fclose(f);
	return n;
}

/* The worst lateness (ms) of the ticks' fires scheduled in [FROM, TO) (wall seconds); -1 if
 * none. N counts them, WANT the fires of TICKS jobs due then. */
static double worst_late(PGconn *c, double from, double to, int ticks, long *n, long *want)
{
	for (long long s = (long long)from + 1; (double)s < to; s++)
		*want += ticks;
	if ((double)(long long)from == from)
		*want += ticks;
	char a[64], b[64];
	snprintf(a, sizeof(a), "%.6f", from);
	snprintf(b, sizeof(b), "%.6f", to);
	const char *params[] = {a, b};
	PGresult *r = bench_query(
	    c,
	    "SELECT count(*), coalesce(max(extract(epoch FROM at - date_trunc('second', at)) * "
	    "1000), -1) FROM bench_scale_tick WHERE date_trunc('second', at) >= "
	    "to_timestamp($1::float8) AND date_trunc('second', at) < to_timestamp($2::float8)",
	    2, params);
	*n += atol(PQgetvalue(r, 0, 0));
	double v = atof(PQgetvalue(r, 0, 1));
	PQclear(r);
	return v;
}

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* Prints "median (min-max)" of N values (times SCALE, in UNIT), over N OF; returns the
 * median (unscaled). */
static double report(const char *what, const double *v, int n, const char *of, const char *unit,
                     double scale)
{
	double s[MAX_RUNS * MAX_RELOADS];
	char spread[96];
	for (int i = 0; i < n; i++)
		s[i] = v[i] * scale;
	double median = bench_spread(s, n, 2, spread, sizeof(spread));
	printf("  %-30s %s %s, %d %s\n", what, spread, unit, n, of);
	return median / scale;
}

/* The ticks' runs a second that pgcrond's history recorded as succeeded, of the fires
 * scheduled in the whole seconds within [FROM, TO) (wall seconds). */
static double recorded_per_s(PGconn *c, double from, double to)
{
	char a[64], b[64];
	long long s0 = (long long)from + ((double)(long long)from < from), s1 = (long long)to;
	if (s1 <= s0)
		return 0;
	snprintf(a, sizeof(a), "%lld", s0);
	snprintf(b, sizeof(b), "%lld", s1);
	const char *params[] = {a, b};
	PGresult *r = bench_query(
	    c,
	    "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name LIKE 'tick-%' AND status"
	    " = 'succeeded' AND scheduled_time >= to_timestamp($1::float8) AND scheduled_time <"
	    " to_timestamp($2::float8)",
	    2, params);
	double v = atof(PQgetvalue(r, 0, 0)) / (double)(s1 - s0);
	PQclear(r);
	return v;
}

/* The rows the history's partitions were given so far: inserted into *INS, updated into *UPD
 * (a run's row written twice: inserted at its start, completed at its end). */
static void hist_rows(PGconn *c, double *ins, double *upd)
{
	PGresult *r =
	    bench_query(c,
	                "SELECT coalesce(sum(n_tup_ins), 0), coalesce(sum(n_tup_upd), 0) FROM"
	                " pg_stat_user_tables WHERE relid IN (SELECT inhrelid FROM pg_inherits"
	                " WHERE inhparent = 'pgcrond.job_run_details'::regclass)",
	                0, NULL);
	*ins = atof(PQgetvalue(r, 0, 0));
	*upd = atof(PQgetvalue(r, 0, 1));
	PQclear(r);
	PQclear(bench_query(c, "SELECT pg_stat_clear_snapshot()", 0, NULL));
}

/* The floor KIND for TICKS jobs: 1 s of warm-up, then 3 whole seconds measured as pgcrond's
 * quiet window is: the worst lateness into LATE, the runs a second into RUNS_S. */
static void floor_ticks(PGconn *c, const char *kind, int ticks, double *late, double *runs_s)
{
	struct floor f;
	long n = 0, want = 0;
	floor_kind(&f, kind);
	if (f.history)
		floor_history_create(c);
	floor_open(&f, db_ci, pool,
	           "INSERT INTO bench_scale_tick VALUES ($1, statement_timestamp())", kind, false);
	double from = (double)(long long)bench_wall_now() + 2;
	floor_every_second(&f, ticks, from + 3);
	floor_close(&f);
	*late = worst_late(c, from, from + 3, ticks, &n, &want);
	*runs_s = (double)n / 3;
}

/* pgbench on the pool's connections for SECONDS doing what pgcrond's pool does for a run, in
 * one pipelined round trip: the session reset (DISCARD ALL, SHOW statement_timeout) and the
 * ticks' INSERT. Its tps (-1: no pgbench). */
static double pgbench_tps(const char *dir, int seconds)
{
	const char *bin = getenv("SCALE_PGBENCH") ? getenv("SCALE_PGBENCH")
	                                          : "/usr/lib/postgresql/15/bin/pgbench";
	char script[1100], cmd[4096], line[512];
	double tps = -1;
	if (access(bin, X_OK) != 0)
		return -1;
	snprintf(script, sizeof(script), "%s/pgbench.sql", dir);
	FILE *f = fopen(script, "w");
	if (!f)
		bench_die("write", script);
	fprintf(f, "\\startpipeline\nDISCARD ALL;\nSHOW statement_timeout;\n"
	           "INSERT INTO bench_scale_tick VALUES ('pgbench', statement_timestamp());\n"
	           "\\endpipeline\n");
	fclose(f);
	/* db_ci holds no quote: the sandbox's socket path, port, user and database name */
	if (snprintf(cmd, sizeof(cmd), "%s -n -M extended -f %s -c %d -j 2 -T %d '%s' 2>&1", bin,
	             script, pool, seconds, db_ci) >= (int)sizeof(cmd))
		bench_die("pgbench", "command too long");
	FILE *p = popen(cmd, "r");
	if (!p)
		bench_die("popen", cmd);
	while (fgets(line, sizeof(line), p))
		if (strncmp(line, "tps = ", 6) == 0)
			tps = atof(line + 6);
	if (pclose(p) != 0 || tps < 0)
		bench_die("pgbench failed", cmd);
	return tps;
}

int main(int argc, char **argv)
{
	const char *sandbox = getenv("PGCROND_SANDBOX");
	int runs = env_int("SCALE_RUNS", 3, 1, MAX_RUNS);
	if (runs % 2 == 0) {
		fprintf(stderr, "bench_scale: SCALE_RUNS=%d: %d runs, an odd number\n", runs,
		        runs + 1);
		runs++;
	}
	if (!sandbox) {
		fprintf(stderr,
		        "bench_scale: run it in a sandbox: scripts/pg-sandbox run -- %s [N ...]\n",
		        argv[0]);
		return 0;
	}
	PGconn *c = bench_fresh_db(sandbox, DB, db_ci, sizeof(db_ci));
	int reloads = env_int("SCALE_RELOADS", 4, 1, MAX_RELOADS);
	int ticks = env_int("SCALE_TICKS", 4, 0, 50000);
	pool = env_int("SCALE_POOL", 8, 1, 100);
	int pgbench_s = env_int("SCALE_PGBENCH_SECONDS", 5, 0, 600);
	/* SCALE_FLOORS: the floors' kinds, each run */
	const char *floors_env = getenv("SCALE_FLOORS") ? getenv("SCALE_FLOORS") : "bare,raw,hist";
	char kinds[MAX_FLOORS][8];
	int nfloor = 0;
	for (const char *p = floors_env;
	     *p && strcmp(floors_env, "none") != 0 && nfloor < MAX_FLOORS;) {
		size_t len = strcspn(p, ",");
		struct floor probe;
		snprintf(kinds[nfloor], sizeof(kinds[nfloor]), "%.*s", (int)(len < 7 ? len : 7), p);
		if (floor_kind(&probe, kinds[nfloor]))
			nfloor++;
		else
			fprintf(stderr,
			        "bench_scale: SCALE_FLOORS: no floor \"%s\" (bare, raw, hist)\n",
			        kinds[nfloor]);
		p += len + (p[len] == ',');
	}
	if (ticks == 0)
		nfloor = 0;
	bench_exec(c, "CREATE TABLE bench_scale_tick (job text, at timestamptz)");
	bench_print_load("at start"); /* flushed: before any fork */
	int ns[16] = {10000, 100000}, nn = 2;
	if (argc > 1) {
		nn = 0;
		for (int i = 1; i < argc && nn < 16; i++)
			ns[nn++] = atoi(argv[i]);
	}
	for (int k = 0; k < nn; k++) {
		int n = ns[k];
		char dir[] = "/tmp/bench-scale-XXXXXX", conf[1100], log[1100], state[1100];
		if (!mkdtemp(dir))
			bench_die("mkdtemp", strerror(errno));
		chmod(dir, 0755);
		snprintf(state, sizeof(state), "%s/state", dir);
		mkdir(state, 0700);
		bench_chown_user(state);
		write_config(dir, n);
		write_ticks(dir, ticks);
		snprintf(conf, sizeof(conf), "%s/pgcrond.conf", dir);
		double check[MAX_RUNS], list[MAX_RUNS], start[MAX_RUNS];
		double reload[MAX_RUNS * MAX_RELOADS], late_in[MAX_RUNS * MAX_RELOADS];
		double hold[MAX_RUNS * MAX_RELOADS], late_out[MAX_RUNS];
		double rss0[MAX_RUNS], rss1[MAX_RUNS], recorded[MAX_RUNS], tps[MAX_RUNS];
		double twice[MAX_RUNS], ins0, upd0, ins1, upd1;
		double fl_late[MAX_FLOORS][MAX_RUNS], fl_runs[MAX_FLOORS][MAX_RUNS];
		int n_reload = 0, n_in = 0, n_hold = 0, n_out = 0;
		long fires_in = 0, fires_out = 0, want_in = 0, want_out = 0;
		for (int r = 0; r < runs; r++) {
			check[r] = time_cmd(conf, "check");
			list[r] = time_cmd(conf, "list");
			snprintf(log, sizeof(log), "%s/daemon-%d-%d.log", dir, n, r);
			double t0 = bench_now();
			hist_rows(c, &ins0, &upd0);
			pid_t pid = bench_daemon_start(conf, log);
			start[r] = wait_log(log, "started:", t0);
			bench_sleep(2);
			rss0[r] = (double)rss_kb(pid);
			/* the ticks' fires of a quiet second, as the baseline */
			double q0 = bench_wall_now();
			bench_sleep(3);
			double q1 = bench_wall_now(), prev = 0;
			for (int k = 0; k < reloads; k++) {
				if (k > 0) {
					/* a second boundary 50 ms before the end of this reload */
					double now = bench_wall_now(), at = now + 0.3 + prev - 0.05;
					double boundary = (double)(long long)at + 1;
					bench_sleep(boundary - (prev - 0.05) - now);
				}
				double w0 = bench_wall_now();
				t0 = bench_now();
				kill(pid, SIGHUP);
				prev = wait_log_n(log, "configuration reloaded", k + 1, t0);
				double w1 = bench_wall_now();
				reload[n_reload++] = prev;
				bench_sleep(1.2); /* the rows of the reload's fires are in */
				double v = worst_late(c, w0, w1, ticks, &fires_in, &want_in);
				if (v >= 0)
					late_in[n_in++] = v;
			}
			double v = worst_late(c, q0, q1, ticks, &fires_out, &want_out);
			if (v >= 0)
				late_out[n_out++] = v;
			rss1[r] = (double)rss_kb(pid);
			bench_daemon_stop(pid);
			n_hold += read_holds(log, hold + n_hold, MAX_RUNS * MAX_RELOADS - n_hold);
			recorded[r] = recorded_per_s(c, q0, q1);
			/* the floor, and pgbench, on the same server with the daemon stopped */
			for (int i = 0; i < nfloor; i++)
				floor_ticks(c, kinds[i], ticks, &fl_late[i][r], &fl_runs[i][r]);
			tps[r] = pgbench_s > 0 ? pgbench_tps(dir, pgbench_s) : -1;
			bench_sleep(1); /* the daemon's session has reported its counts */
			hist_rows(c, &ins1, &upd1);
			twice[r] = ins1 > ins0 ? 100 * (upd1 - upd0) / (ins1 - ins0) : 0;
		}
		printf("N=%d jobs in %d files, %d runs, median (min-max):\n", n, (n + 999) / 1000,
		       runs);
		report("pgcrond check", check, runs, "runs", "s", 1);
		report("pgcrond list", list, runs, "runs", "s", 1);
		report("daemon exec to started", start, runs, "runs", "s", 1);
		report("SIGHUP to reloaded", reload, n_reload, "reloads", "s", 1);
		printf("  (RSS with %d jobs every second running: SCALE_TICKS)\n", ticks);
		report("RSS after start", rss0, runs, "runs", "MB", 1.0 / 1024);
		report("RSS after the reloads", rss1, runs, "runs", "MB", 1.0 / 1024);
		if (n_in)
			report("fires during a reload, late", late_in, n_in, "reloads", "ms", 1);
		double pg_late = -1; /* the quiet windows' median, if each run had one */
		if (n_out) {
			double m =
			    report("fires in a quiet 3 s, late", late_out, n_out, "runs", "ms", 1);
			pg_late = n_out == runs ? m : -1;
		}
		printf(
		    "  (the worst of each window's fires; reloads: %ld of %ld fires ran, %d of %d "
		    "windows had one; quiet: %ld of %ld fires ran)\n",
		    fires_in, want_in, n_in, n_reload, fires_out, want_out);
		if (n_hold)
			report("longest loop hold, reload", hold, n_hold, "reloads", "ms", 1);
		double pg_rec =
		    report("ticks' runs/s recorded, quiet", recorded, runs, "runs", "/s", 1);
		report("history rows updated, of inserted", twice, runs, "runs", "%", 1);
		if (nfloor)
			printf(
			    "  the floor: a minimal libpq client, %d connections, %d INSERTs every "
			    "second, 3 s (bench/floor.h):\n",
			    pool, ticks);
		for (int i = 0; i < nfloor; i++) {
			char what[64];
			snprintf(what, sizeof(what), "floor %s fires late", kinds[i]);
			double late = report(what, fl_late[i], runs, "runs", "ms", 1);
			snprintf(what, sizeof(what), "floor %s runs/s", kinds[i]);
			double rs = report(what, fl_runs[i], runs, "runs", "/s", 1);
			printf(
			    "  pgcrond / floor %-4s  worst lateness in a quiet 3 s %.2fx  runs/s "
			    "recorded %.3fx\n",
			    kinds[i], pg_late > 0 && late > 0 ? pg_late / late : 0,
			    rs > 0 ? pg_rec / rs : 0);
		}
		if (tps[0] >= 0) {
			double t =
			    report("pgbench tps (the pool's conns)", tps, runs, "runs", "/s", 1);
			printf("  pgcrond's ticks' runs/s recorded / pgbench's tps: %.3g (pgbench: "
			       "the reset and the ticks' INSERT pipelined, %d connections, %d s)\n",
			       t > 0 ? pg_rec / t : 0, pool, pgbench_s);
		}
		printf("  logs and configs: %s\n", dir);
		fflush(stdout);
	}
	bench_print_load("at the end");
	PQfinish(c);
	return 0;
}
