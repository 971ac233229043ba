/* bench_fire: how late do jobs start, how many runs per second are sustained, and what the
 * daemon costs. For each N (default 100, 1000, 10000): N jobs on "* * * * * *", each an
 * INSERT of statement_timestamp(); lateness is the statement's start on the server minus
 * the whole second it was scheduled for. Then the same N jobs idle (a yearly schedule) to
 * measure idle CPU. Prints figures; never fails on time.
 *
 *   scripts/pg-sandbox run -- build/bench/fire/bench_fire [N ...]
 *   (FIRE_SECONDS=10 sets the measured busy period) */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DB "bench_fire"

static char base_ci[1024], db_ci[1200];

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "bench_fire: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	exit(1);
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static PGconn *connect_or_die(const char *ci)
{
	PGconn *c = PQconnectdb(ci);
	if (PQstatus(c) != CONNECTION_OK)
		die("connect", PQerrorMessage(c));
	return c;
}

static void exec_or_die(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		die(sql, PQresultErrorMessage(r));
	PQclear(r);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		die("cannot read", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		die("cannot read", path);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static const char *run_user(void)
{
	const char *u = getenv("PGSANDBOX_USER");
	return u && *u ? u : "pgsandbox";
}

static void chown_user(const char *path)
{
	struct passwd *pw;
	if (getuid() == 0 && (pw = getpwnam(run_user())) &&
	    chown(path, pw->pw_uid, pw->pw_gid) != 0)
		die("chown", path);
}

/* The daemon refuses root: run it as the sandbox user then. */
static pid_t start_daemon(const char *conf, const char *log)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork", strerror(errno));
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		if (getuid() == 0) {
			struct passwd *pw = getpwnam(run_user());
			if (!pw || setgroups(0, NULL) || setgid(pw->pw_gid) || setuid(pw->pw_uid))
				_exit(127);
		}
		execl(PGCROND_BIN, "pgcrond", "run", "-c", conf, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void stop_daemon(pid_t pid)
{
	int st;
	kill(pid, SIGTERM);
	for (int i = 0; i < 300; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return;
		sleep_s(0.1);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
}

/* utime + stime in clock ticks, and VmRSS in kB, from /proc. */
static long long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	unsigned long long ut = 0, st = 0;
	if (p &&
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
		return (long long)(ut + st);
	return 0;
}

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

static void write_config(const char *dir, int n, const char *schedule)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/pgcrond.conf", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		die("write", path);
	fprintf(f,
	        "timezone = \"UTC\";\nplugin_dir = \"%s\";\nconf_dir = \"conf.d\";\n"
	        "state_dir = \"%s/state\";\nlog_level = \"warning\";\nmax_running = 64;\n"
	        "shutdown_grace = \"5s\";\n"
	        "databases = { bench = { conninfo = \"%s\"; pool = 8; }; };\n"
	        "history = { database = \"bench\"; retain = \"1d\"; };\n",
	        dir, dir, db_ci);
	fclose(f);
	snprintf(path, sizeof(path), "%s/conf.d/jobs.conf", dir);
	f = fopen(path, "w");
	if (!f)
		die("write", path);
	fprintf(f, "jobs = (\n");
	for (int i = 0; i < n; i++)
		fprintf(f,
		        "  { name = \"j%d\"; database = \"bench\"; schedule = \"%s\";\n"
		        "    command = \"INSERT INTO ticks VALUES (statement_timestamp())\"; }%s\n",
		        i, schedule, i + 1 < n ? "," : "");
	fprintf(f, ");\n");
	fclose(f);
}

static void bench(PGconn *c, const char *dir, int n, double seconds)
{
	char conf[512], log[512], sql[512];
	snprintf(conf, sizeof(conf), "%s/pgcrond.conf", dir);
	snprintf(log, sizeof(log), "%s/daemon-%d.log", dir, n);
	long hz = sysconf(_SC_CLK_TCK);

	/* busy: every job every second */
	exec_or_die(c, "TRUNCATE ticks, pgcrond.job_run_details");
	write_config(dir, n, "* * * * * *");
	pid_t pid = start_daemon(conf, log);
	sleep_s(3); /* warm-up: connections, the first fires */
	PGresult *r = PQexec(c, "SELECT now()");
	char t0[64];
	snprintf(t0, sizeof(t0), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	long long cpu0 = cpu_ticks(pid);
	sleep_s(seconds);
	long long cpu1 = cpu_ticks(pid);
	long rss_busy = rss_kb(pid);
	r = PQexec(c, "SELECT now()");
	char t1[64];
	snprintf(t1, sizeof(t1), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	stop_daemon(pid);

	snprintf(
	    sql, sizeof(sql),
	    "SELECT count(*), "
	    "round((percentile_cont(0.5) WITHIN GROUP (ORDER BY l))::numeric, 2), "
	    "round((percentile_cont(0.99) WITHIN GROUP (ORDER BY l))::numeric, 2), "
	    "round(max(l)::numeric, 2) FROM (SELECT extract(epoch FROM at - "
	    "date_trunc('second', at)) * 1000 AS l FROM ticks WHERE at >= '%s' AND at < '%s') s",
	    t0, t1);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		die("stats", PQresultErrorMessage(r));
	double runs = atof(PQgetvalue(r, 0, 0));
	printf("N=%-6d runs/s %8.0f (expected %d)  lateness ms p50 %s p99 %s max %s  "
	       "busy CPU %5.1f%%  RSS %ld kB\n",
	       n, runs / seconds, n, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3),
	       100.0 * (double)(cpu1 - cpu0) / (double)hz / seconds, rss_busy);
	PQclear(r);

	/* idle: the same jobs, none due */
	write_config(dir, n, "0 0 1 1 *");
	pid = start_daemon(conf, log);
	sleep_s(5); /* past the start-up work (config, plugins, history) */
	cpu0 = cpu_ticks(pid);
	sleep_s(5);
	cpu1 = cpu_ticks(pid);
	long rss_idle = rss_kb(pid);
	stop_daemon(pid);
	printf("N=%-6d idle CPU %5.2f%%  RSS %ld kB\n", n,
	       100.0 * (double)(cpu1 - cpu0) / (double)hz / 5.0, rss_idle);
	fflush(stdout);
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
	char path[1024];
	snprintf(path, sizeof(path), "%s/conninfo", sandbox);
	char *ci = slurp(path);
	ci[strcspn(ci, "\n")] = '\0';
	snprintf(base_ci, sizeof(base_ci), "%s", ci);
	snprintf(db_ci, sizeof(db_ci), "%s dbname=%s", ci, DB);
	free(ci);

	PGconn *c = connect_or_die(base_ci);
	exec_or_die(c, "DROP DATABASE IF EXISTS " DB " WITH (FORCE)");
	exec_or_die(c, "CREATE DATABASE " DB);
	PQfinish(c);
	c = connect_or_die(db_ci);
	char *schema = slurp(PGCROND_SOURCE_SQL_DIR "/pgcrond--1.sql");
	exec_or_die(c, schema);
	free(schema);
	exec_or_die(c, "CREATE UNLOGGED TABLE ticks (at timestamptz)");
	exec_or_die(c, "GRANT ALL ON ticks TO PUBLIC");

	char dir[] = "/tmp/bench-fire-XXXXXX";
	if (!mkdtemp(dir))
		die("mkdtemp", strerror(errno));
	chmod(dir, 0755);
	snprintf(path, sizeof(path), "%s/state", dir);
	mkdir(path, 0700);
	chown_user(path);
	snprintf(path, sizeof(path), "%s/conf.d", dir);
	mkdir(path, 0755);

	const char *secs = getenv("FIRE_SECONDS");
	double seconds = secs ? atof(secs) : 10;
	if (seconds < 1)
		seconds = 10;
	int defaults[] = {100, 1000, 10000};
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			bench(c, dir, atoi(argv[i]), seconds);
	} else {
		for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
			bench(c, dir, defaults[i], seconds);
	}
	printf("logs and configs: %s\n", dir);
	PQfinish(c);
	return 0;
}
