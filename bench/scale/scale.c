/* bench_scale: the daemon with many jobs (files of 1,000 jobs on yearly schedules, so none
 * is due): how long `pgcrond check` and `pgcrond list` take, how long the daemon takes from
 * exec to its "started" line, how long a SIGHUP reload takes (signal to its "configuration
 * reloaded" line), and the daemon's RSS after start and after the reload. Each figure is the
 * median (min-max) over RUNS runs. Never fails on time.
 *
 *   scripts/pg-sandbox run -- build/dev/bench/scale/bench_scale [N ...]   (default 10000 100000)
 *   (SCALE_RUNS=3; SCALE_LOG_LEVEL=notice: the daemon's log_level, debug for the time a
 *   reload holds the loop; BENCH_PGCROND=PATH: that pgcrond binary instead of this build's) */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define DB "bench_scale"
#define MAX_RUNS 16

static char db_ci[1200];

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
	        "databases = { bench = { conninfo = \"%s\"; pool = 8; }; };\n"
	        "history = { database = \"bench\"; retain = \"1d\"; };\n",
	        dir, getenv("SCALE_LOG_LEVEL") ? getenv("SCALE_LOG_LEVEL") : "notice", db_ci);
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

/* Wait until LOG holds NEEDLE (at most 120 s); returns the seconds waited. */
static double wait_log(const char *log, const char *needle, double t0)
{
	for (;;) {
		FILE *f = fopen(log, "r");
		char line[4096];
		bool found = false;
		while (f && fgets(line, sizeof(line), f))
			found |= strstr(line, needle) != NULL;
		if (f)
			fclose(f);
		if (found)
			return bench_now() - t0;
		if (bench_now() - t0 > 120)
			bench_die("no log line", needle);
		bench_sleep(0.005); /* a benchmark may poll; the daemon never does */
	}
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

static void report(const char *what, double *v, int n, const char *unit, double scale)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	printf("  %-28s %8.2f %s (%.2f-%.2f)\n", what, v[n / 2] * scale, unit, v[0] * scale,
	       v[n - 1] * scale);
}

int main(int argc, char **argv)
{
	const char *sandbox = getenv("PGCROND_SANDBOX");
	const char *rv = getenv("SCALE_RUNS");
	int runs = rv ? atoi(rv) : 3;
	if (runs < 1 || runs > MAX_RUNS)
		runs = 3;
	if (!sandbox) {
		fprintf(stderr,
		        "bench_scale: run it in a sandbox: scripts/pg-sandbox run -- %s [N ...]\n",
		        argv[0]);
		return 0;
	}
	PGconn *c = bench_fresh_db(sandbox, DB, db_ci, sizeof(db_ci));
	double load[3] = {0};
	if (getloadavg(load, 3) < 0)
		load[0] = load[1] = load[2] = -1;
	printf("load average at start: %.2f %.2f %.2f (%ld CPUs)\n", load[0], load[1], load[2],
	       sysconf(_SC_NPROCESSORS_ONLN));
	fflush(stdout); /* before any fork */
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
		snprintf(conf, sizeof(conf), "%s/pgcrond.conf", dir);
		double check[MAX_RUNS], list[MAX_RUNS], start[MAX_RUNS], reload[MAX_RUNS];
		double rss0[MAX_RUNS], rss1[MAX_RUNS];
		for (int r = 0; r < runs; r++) {
			check[r] = time_cmd(conf, "check");
			list[r] = time_cmd(conf, "list");
			snprintf(log, sizeof(log), "%s/daemon-%d-%d.log", dir, n, r);
			double t0 = bench_now();
			pid_t pid = bench_daemon_start(conf, log);
			start[r] = wait_log(log, "started:", t0);
			bench_sleep(2);
			rss0[r] = (double)rss_kb(pid);
			t0 = bench_now();
			kill(pid, SIGHUP);
			reload[r] = wait_log(log, "configuration reloaded", t0);
			bench_sleep(1);
			rss1[r] = (double)rss_kb(pid);
			bench_daemon_stop(pid);
		}
		printf("N=%d jobs in %d files, %d runs, median (min-max):\n", n, (n + 999) / 1000,
		       runs);
		report("pgcrond check", check, runs, "s", 1);
		report("pgcrond list", list, runs, "s", 1);
		report("daemon exec to started", start, runs, "s", 1);
		report("SIGHUP to reloaded", reload, runs, "s", 1);
		report("RSS after start", rss0, runs, "MB", 1.0 / 1024);
		report("RSS after a reload", rss1, runs, "MB", 1.0 / 1024);
		printf("  logs and configs: %s\n", dir);
		fflush(stdout);
	}
	PQfinish(c);
	return 0;
}
