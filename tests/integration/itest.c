#include "itest.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char conninfo_buf[1024];

const char *itest_conninfo(void)
{
	if (conninfo_buf[0])
		return conninfo_buf;
	const char *dir = getenv("PGCROND_SANDBOX");
	ck_assert_msg(dir != NULL, "PGCROND_SANDBOX is not set: run integration tests through ctest");
	char path[1024];
	snprintf(path, sizeof(path), "%s/conninfo", dir);
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "no sandbox at %s (is the ctest fixture running?)", dir);
	ck_assert(fgets(conninfo_buf, sizeof(conninfo_buf), f) != NULL);
	fclose(f);
	conninfo_buf[strcspn(conninfo_buf, "\n")] = '\0';
	return conninfo_buf;
}

char *itest_conninfo_db(const char *dbname)
{
	const char *base = itest_conninfo();
	const char *p = strstr(base, "dbname=");
	size_t prefix = p ? (size_t)(p - base) : strlen(base);
	size_t n = prefix + strlen(dbname) + 16;
	char *out = malloc(n);
	snprintf(out, n, "%.*s%sdbname=%s", (int)prefix, base, p ? "" : " ", dbname);
	return out;
}

char *itest_fresh_db(const char *name)
{
	PGconn *c = itest_connect(itest_conninfo());
	char sql[512];
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
	itest_exec(c, sql);
	snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", name);
	itest_exec(c, sql);
	PQfinish(c);
	return itest_conninfo_db(name);
}

PGconn *itest_connect(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect %s: %s", conninfo, PQerrorMessage(c));
	PQsetNoticeProcessor(c, NULL, NULL);
	return c;
}

static void quiet_notice(void *arg, const char *msg) { (void)arg; (void)msg; }

void itest_exec(PGconn *c, const char *sql)
{
	PQsetNoticeProcessor(c, quiet_notice, NULL);
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
		      PQresultErrorMessage(r));
	PQclear(r);
}

char *itest_scalar(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
	char *out = NULL;
	if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		out = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return out;
}

long long itest_scalar_ll(PGconn *c, const char *sql)
{
	char *v = itest_scalar(c, sql);
	ck_assert_msg(v != NULL, "%s returned no value", sql);
	long long n = strtoll(v, NULL, 10);
	free(v);
	return n;
}

void itest_assert_scalar_at(const char *file, int line, PGconn *c, const char *sql,
			    const char *expected)
{
	char *v = itest_scalar(c, sql);
	const char *got = v ? v : "NULL";
	bool same = strcmp(got, expected) == 0;
	char msg[2048];
	snprintf(msg, sizeof(msg), "%s:%d: %s\n  got:      %s\n  expected: %s", file, line, sql,
		 got, expected);
	free(v);
	ck_assert_msg(same, "%s", msg);
}

double itest_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void itest_sleep(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

bool itest_wait_sql(PGconn *c, const char *sql, double timeout_s)
{
	double end = itest_now() + timeout_s;
	for (;;) {
		char *v = itest_scalar(c, sql);
		bool ok = v && v[0] == 't';
		free(v);
		if (ok || itest_now() > end)
			return ok;
		itest_sleep(0.05);
	}
}

const char *itest_user(void)
{
	const char *u = getenv("PGSANDBOX_USER");
	return u && *u ? u : "pgsandbox";
}

void itest_chown_user(const char *path)
{
	if (getuid() != 0)
		return;
	struct passwd *pw = getpwnam(itest_user());
	ck_assert_msg(pw != NULL, "user %s missing (scripts/pg-sandbox creates it)", itest_user());
	ck_assert_msg(chown(path, pw->pw_uid, pw->pw_gid) == 0, "chown %s: %s", path, strerror(errno));
}

char *itest_tmpdir(const char *tag)
{
	char tmpl[512];
	snprintf(tmpl, sizeof(tmpl), "%s/tmp-%s-XXXXXX", TEST_BINARY_DIR, tag);
	ck_assert_msg(mkdtemp(tmpl) != NULL, "mkdtemp: %s", strerror(errno));
	chmod(tmpl, 0755);
	char state[600];
	snprintf(state, sizeof(state), "%s/state", tmpl);
	ck_assert(mkdir(state, 0700) == 0);
	itest_chown_user(state);
	return strdup(tmpl);
}

void itest_write_file(const char *path, const char *fmt, ...)
{
	FILE *f = fopen(path, "w");
	ck_assert_msg(f != NULL, "write %s: %s", path, strerror(errno));
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
	chmod(path, 0644);
}

char *itest_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return strdup("");
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	size_t got;
	while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += got;
		if (cap - n < 2) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void drop_privileges(void)
{
	if (getuid() != 0)
		return;
	struct passwd *pw = getpwnam(itest_user());
	if (!pw || setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
		fprintf(stderr, "itest: cannot become %s: %s\n", itest_user(), strerror(errno));
		_exit(127);
	}
}

pid_t itest_daemon_start(const char *conf, const char *log)
{
	pid_t pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		drop_privileges();
		execl(PGCROND_BIN, "pgcrond", "run", "-c", conf, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", PGCROND_BIN, strerror(errno));
		_exit(127);
	}
	return pid;
}

int itest_daemon_stop(pid_t pid, int sig, double timeout_s)
{
	int status;
	kill(pid, sig);
	double end = itest_now() + timeout_s;
	while (itest_now() < end) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		itest_sleep(0.02);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

bool itest_wait_log(const char *log, const char *needle, double timeout_s)
{
	double end = itest_now() + timeout_s;
	for (;;) {
		char *text = itest_read_file(log);
		bool found = strstr(text, needle) != NULL;
		free(text);
		if (found || itest_now() > end)
			return found;
		itest_sleep(0.05);
	}
}

char *itest_cli(int *status, const char *arg, ...)
{
	const char *argv[64];
	int argc = 0;
	argv[argc++] = "pgcrond";
	va_list ap;
	va_start(ap, arg);
	for (const char *a = arg; a && argc < 63; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;

	int pipefd[2];
	ck_assert(pipe(pipefd) == 0);
	pid_t pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		close(pipefd[0]);
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		close(pipefd[1]);
		drop_privileges();
		execv(PGCROND_BIN, (char *const *)argv);
		_exit(127);
	}
	close(pipefd[1]);
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	ssize_t got;
	while ((got = read(pipefd[0], buf + n, cap - n - 1)) > 0) {
		n += (size_t)got;
		if (cap - n < 2) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
	}
	buf[n] = '\0';
	close(pipefd[0]);
	int st;
	waitpid(pid, &st, 0);
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return buf;
}
