#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void bench_die(const char *what, const char *detail)
{
	fprintf(stderr, "%s: %s%s%s\n", program_invocation_short_name, what, detail ? ": " : "",
	        detail ? detail : "");
	exit(1);
}

double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_sleep(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bench_wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bench_spread(const double *v, int n, int digits, char *out, size_t len)
{
	if (n < 1) {
		snprintf(out, len, "-");
		return 0;
	}
	double *s = malloc(sizeof(double) * (size_t)n);
	if (!s)
		bench_die("bench_spread", "out of memory");
	memcpy(s, v, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof(double), bench_cmp_double);
	double med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	snprintf(out, len, "%.*f (%.*f-%.*f)", digits, med, digits, s[0], digits, s[n - 1]);
	free(s);
	return med;
}

void bench_print_load(const char *when)
{
	double load[3] = {-1, -1, -1};
	if (getloadavg(load, 3) != 3)
		load[0] = load[1] = load[2] = -1;
	printf("load average %s: %.2f %.2f %.2f, %ld CPUs\n", when, load[0], load[1], load[2],
	       sysconf(_SC_NPROCESSORS_ONLN));
	fflush(stdout);
}

PGconn *bench_connect(const char *ci)
{
	PGconn *c = PQconnectdb(ci);
	if (PQstatus(c) != CONNECTION_OK)
		bench_die("connect", PQerrorMessage(c));
	return c;
}

static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

void bench_quiet_notices(PGconn *c)
{
	PQsetNoticeProcessor(c, quiet, NULL);
}

void bench_exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die(sql, PQresultErrorMessage(r));
	PQclear(r);
}

PGresult *bench_query(PGconn *c, const char *sql, int n, const char *const *params)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die(sql, PQresultErrorMessage(r));
	return r;
}

char *bench_slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		bench_die("cannot read", path);
	if (fseek(f, 0, SEEK_END) != 0)
		bench_die("cannot read", path);
	long n = ftell(f);
	if (n < 0)
		bench_die("cannot read", path);
	rewind(f);
	char *buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		bench_die("cannot read", path);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

void bench_exec_file(PGconn *c, const char *path)
{
	char *sql = bench_slurp(path);
	bench_exec(c, sql);
	free(sql);
}

PGconn *bench_fresh_db(const char *sandbox, const char *dbname, char *ci, size_t cilen)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/conninfo", sandbox);
	char *base = bench_slurp(path);
	base[strcspn(base, "\n")] = '\0';
	int n = snprintf(ci, cilen, "%s dbname=%s", base, dbname);
	if (n < 0 || (size_t)n >= cilen)
		bench_die("conninfo too long", base);

	PGconn *c = bench_connect(base);
	bench_quiet_notices(c); /* DROP ... IF EXISTS and the schema steps' notices */
	char sql[256];
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", dbname);
	bench_exec(c, sql);
	snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", dbname);
	bench_exec(c, sql);
	PQfinish(c);
	free(base);
	c = bench_connect(ci);
	bench_quiet_notices(c);
	/* every schema step present, in order, as "pgcrond install" applies them (2: manual
	 * triggers, 6: the partitioned history) */
	for (int step = 1; step < 100; step++) {
		snprintf(path, sizeof(path), "%s/pgcrond--%d.sql", PGCROND_SOURCE_SQL_DIR, step);
		if (access(path, R_OK) == 0)
			bench_exec_file(c, path);
	}
	return c;
}

const char *bench_user(void)
{
	const char *u = getenv("PGSANDBOX_USER");
	return u && *u ? u : "pgsandbox";
}

void bench_chown_user(const char *path)
{
	struct passwd *pw;
	if (getuid() == 0 && (pw = getpwnam(bench_user())) &&
	    chown(path, pw->pw_uid, pw->pw_gid) != 0)
		bench_die("chown", path);
}

/* "pgcrond SUB -c CONF" in a child, as bench_user() when root, its output appended to LOG. */
static pid_t spawn(const char *sub, const char *conf, const char *log)
{
	pid_t parent = getpid(), pid = fork();
	if (pid < 0)
		bench_die("fork", strerror(errno));
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		if (getuid() == 0) {
			struct passwd *pw = getpwnam(bench_user());
			if (!pw || setgroups(0, NULL) || setgid(pw->pw_gid) || setuid(pw->pw_uid))
				_exit(127);
		}
		/* a bench killed mid-run takes its daemon with it (set after the change of user,
		 * which clears it) */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
			_exit(127);
		/* BENCH_PGCROND: another build of the daemon, to compare two builds back to back
		 * on the same machine and load */
		const char *bin = getenv("BENCH_PGCROND");
		execl(bin && *bin ? bin : PGCROND_BIN, "pgcrond", sub, "-c", conf, (char *)NULL);
		_exit(127);
	}
	return pid;
}

void bench_daemon_dir(const char *dir, const char *who, char *conf, size_t len)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, who);
	mkdir(path, 0755);
	bench_chown_user(path);
	snprintf(path, sizeof(path), "%s/%s/conf.d", dir, who);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/state", dir, who);
	mkdir(path, 0700);
	bench_chown_user(path);
	snprintf(conf, len, "%s/%s/pgcrond.conf", dir, who);
}

pid_t bench_daemon_start(const char *conf, const char *log)
{
	return spawn("run", conf, log);
}

int bench_pgcrond(const char *sub, const char *conf, const char *log)
{
	int st;
	pid_t pid = spawn(sub, conf, log);
	if (waitpid(pid, &st, 0) != pid)
		bench_die("waitpid", strerror(errno));
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

void bench_daemon_stop(pid_t pid)
{
	int st;
	kill(pid, SIGTERM);
	for (int i = 0; i < 300; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return;
		bench_sleep(0.1);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
}

void bench_copy_plugin(const char *plugin_dir, const char *name)
{
	char from[700], to[700], buf[65536];
	snprintf(from, sizeof(from), "%s/%s.so", PLUGIN_BUILD_DIR, name);
	snprintf(to, sizeof(to), "%s/%s.so", plugin_dir, name);
	FILE *in = fopen(from, "rb"), *o = fopen(to, "wb");
	if (!in || !o)
		bench_die("cannot copy (is it built?)", from);
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, o) != n)
			bench_die("cannot write", to);
	fclose(in);
	if (fclose(o) != 0 || chmod(to, 0644) != 0)
		bench_die("cannot write", to);
}
