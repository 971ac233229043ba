#include "itest.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char conninfo_buf[1024];

static void quiet_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* The integration tests share several sandbox servers, "lanes" (tests/integration/
 * CMakeLists.txt): $PGCROND_SANDBOX/lane-K for K below $PGCROND_SANDBOX_LANES. A test holds
 * one lane for its whole run, so what a suite does to its server (roles, a restart) meets no
 * other suite. Given the lanes' resource spec (scripts/test passes it), ctest hands each test
 * a free lane in CTEST_RESOURCE_GROUP_0_PGLANE ("id:K,slots:1"). Without it (a plain
 * `ctest -j2`), the test takes the first lane nobody holds, or waits for one. Either way the
 * lane is held by an flock on its directory, taken here, before main and before Check forks
 * the cases, so every case of a suite sees the same server; PGCROND_SANDBOX is then the
 * lane's directory. */
/* The databases the suites that held this lane before left behind. Nothing reads them
 * again (each suite makes its own), but autovacuum visits every database once a minute, with
 * a new process each time: a lane that had gathered 84 of them spent 4.3 CPU seconds a minute
 * idle (fork and start of a backend cost about 40 ms of CPU on this project's machine), with
 * eight lanes on two cores. Dropped when the lane is taken, before any case runs. */
/* The conninfo the sandbox in DIR wrote (scripts/pg-sandbox) into BUF; false if none. */
static bool read_conninfo(const char *dir, char *buf, size_t len)
{
	char path[1100];
	snprintf(path, sizeof(path), "%s/conninfo", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	bool read = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (read)
		buf[strcspn(buf, "\n")] = '\0';
	return read;
}

static void drop_earlier_databases(const char *dir)
{
	char ci[1024];
	if (!read_conninfo(dir, ci, sizeof(ci)))
		return; /* no sandbox: itest_conninfo says so */
	PGconn *c = PQconnectdb(ci);
	PQsetNoticeProcessor(c, quiet_notice, NULL);
	/* (the schema templates stay: the next suite's cases copy from them, itest_env_setup) */
	PGresult *r = PQexec(c, "SELECT format('DROP DATABASE %I WITH (FORCE)', datname)"
	                        " FROM pg_catalog.pg_database WHERE NOT datistemplate"
	                        " AND datname <> 'postgres'");
	for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++)
		PQclear(PQexec(c, PQgetvalue(r, i, 0))); /* one that cannot go stays */
	PQclear(r);
	PQfinish(c);
}

__attribute__((constructor)) static void itest_take_lane(void)
{
	const char *base = getenv("PGCROND_SANDBOX");
	const char *n_env = getenv("PGCROND_SANDBOX_LANES");
	int lanes = n_env ? atoi(n_env) : 0;
	if (!base || lanes < 1)
		return;
	const char *given = getenv("CTEST_RESOURCE_GROUP_0_PGLANE");
	int lane = -1, fd = -1;
	char dir[1024], lock[1100];
	if (given && sscanf(given, "id:%d", &lane) == 1 && lane >= 0 && lane < lanes) {
		snprintf(dir, sizeof(dir), "%s/lane-%d", base, lane);
		snprintf(lock, sizeof(lock), "%s/itest.lock", dir);
		fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	} else {
		for (lane = 0; lane < lanes; lane++) {
			snprintf(dir, sizeof(dir), "%s/lane-%d", base, lane);
			snprintf(lock, sizeof(lock), "%s/itest.lock", dir);
			fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
			if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
				break;
			if (fd >= 0)
				close(fd);
			fd = -1;
		}
		if (lane == lanes) { /* all held: wait for one */
			lane = (int)(getpid() % lanes);
			snprintf(dir, sizeof(dir), "%s/lane-%d", base, lane);
			snprintf(lock, sizeof(lock), "%s/itest.lock", dir);
			fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		}
	}
	if (fd < 0 || flock(fd, LOCK_EX) != 0) {
		/* itest_conninfo then says there is no sandbox at the lane's directory */
		fprintf(stderr, "itest: cannot hold sandbox lane %s: %s\n", lock, strerror(errno));
	}
	/* fd stays open: the lane is held until this process exits */
	setenv("PGCROND_SANDBOX", dir, 1);
	drop_earlier_databases(dir);
}

const char *itest_conninfo(void)
{
	if (conninfo_buf[0])
		return conninfo_buf;
	const char *dir = getenv("PGCROND_SANDBOX");
	ck_assert_msg(dir != NULL,
	              "PGCROND_SANDBOX is not set: run integration tests through ctest");
	ck_assert_msg(read_conninfo(dir, conninfo_buf, sizeof(conninfo_buf)),
	              "no sandbox at %s (is the ctest fixture running?)", dir);
	return conninfo_buf;
}

bool itest_jit_available(void)
{
	char ci[1024];
	const char *dir = getenv("PGCROND_SANDBOX");
	if (!dir || !read_conninfo(dir, ci, sizeof(ci)))
		return false;
	PGconn *c = PQconnectdb(ci);
	PGresult *r = PQexec(c, "SELECT pg_catalog.pg_jit_available()");
	bool yes = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	           strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	PQfinish(c);
	return yes;
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

PGconn *itest_connect(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect %s: %s", conninfo, PQerrorMessage(c));
	PQsetNoticeProcessor(c, NULL, NULL);
	return c;
}

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

time_t itest_schedule_soon_at(char *out, size_t outlen, int ahead)
{
	/* at least AHEAD whole seconds from now (time(NULL) + AHEAD was as little as AHEAD - 1
	 * ahead: a reload on a loaded machine once came 34 ms after such an instant, and the
	 * fire was a minute away) */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	time_t t = ts.tv_sec + ahead + 1;
	snprintf(out, outlen, "%d * * * * *", (int)(t % 60));
	return t;
}

void itest_schedule_soon(char *out, size_t outlen, int ahead)
{
	(void)itest_schedule_soon_at(out, outlen, ahead);
}

/* The stamp (seconds since the epoch, UTC) of the line holding the last NEEDLE in LOG; -1 if
 * there is none. A line starts "2026-11-26T11:46:16.957Z ". */
static double last_line_stamp(const char *log, const char *needle)
{
	char *text = itest_read_file(log);
	const char *hit = NULL;
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		hit = p;
	double stamp = -1;
	if (hit) {
		while (hit > text && hit[-1] != '\n')
			hit--;
		struct tm tm = {0};
		int ms = 0;
		if (sscanf(hit, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
		           &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) == 7) {
			tm.tm_year -= 1900;
			tm.tm_mon -= 1;
			stamp = (double)timegm(&tm) + ms / 1000.0;
		}
	}
	free(text);
	return stamp;
}

double itest_log_stamp(const char *log, const char *needle)
{
	return last_line_stamp(log, needle);
}

bool itest_reload_began_late(const char *log, time_t at)
{
	return last_line_stamp(log, "SIGHUP: reloading") >= (double)at;
}

int itest_insts_soon_again(struct itest_inst *const *in, int n, time_t at, int ahead)
{
	for (int i = 0; i < n - 1; i++)
		if (!itest_reload_began_late(in[i]->log, at))
			return 0;
	return itest_soon_again(in[n - 1]->log, at, ahead);
}

int itest_soon_again(const char *log, time_t at, int ahead)
{
	if (!itest_reload_began_late(log, at))
		return 0;
	ck_assert_msg(ahead < 16, "the daemon took more than %d s to begin a reload:\n%s", ahead,
	              itest_tail(log));
	return ahead * 2;
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

char *itest_wait_value(PGconn *c, const char *sql, double timeout_s)
{
	double end = itest_now() + timeout_s;
	char *v;
	while (!(v = itest_scalar(c, sql)) && itest_now() <= end)
		itest_sleep(0.05);
	return v;
}

bool itest_wait_until(bool (*cond)(void *), void *arg, double timeout_s)
{
	double end = itest_now() + timeout_s;
	for (;;) {
		bool ok = cond(arg);
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
	ck_assert_msg(chown(path, pw->pw_uid, pw->pw_gid) == 0, "chown %s: %s", path,
	              strerror(errno));
}

/* The suite's scratch directory, where itest_tmpdir makes its directories: /tmp/SUITE.XXXXXX,
 * short, because a daemon's control socket (STATE_DIR/pgcrond.sock) and a second sandbox's
 * data live there and a unix socket's path may not exceed 107 bytes, which a checkout's path
 * plus this build directory's would (a hosted CI's checkout is 33 bytes long). The build
 * directory keeps a link to it, tmp-SUITE[-SHARD], so that a failed run's files (the
 * daemons' logs) are where they always were; the next run of the suite removes the
 * directory the link names, so that there is one per suite and build at most. Made before
 * Check forks the cases, so that every case's directories are in the one scratch. */
static char scratch[128];

__attribute__((constructor)) static void itest_make_scratch(void)
{
	const char *suite = program_invocation_short_name;
	const char *sh = getenv("ITEST_SHARD");
	unsigned k, n;
	char link[1100], old[256];
	if (sh && sscanf(sh, "%u/%u", &k, &n) == 2)
		snprintf(link, sizeof(link), "%s/tmp-%s-%u", TEST_BINARY_DIR, suite, k);
	else
		snprintf(link, sizeof(link), "%s/tmp-%s", TEST_BINARY_DIR, suite);
	ssize_t len = readlink(link, old, sizeof(old) - 1);
	if (len > 0) {
		old[len] = '\0';
		char prefix[128];
		snprintf(prefix, sizeof(prefix), "/tmp/%.40s.", suite);
		/* only what an earlier run of this suite made: a directory of ours (its
		 * subdirectories are the sandbox user's: rm, unlike a walk by path names, follows
		 * no link one of them was swapped for) */
		struct stat st;
		if (strncmp(old, prefix, strlen(prefix)) == 0 &&
		    strlen(old) == strlen(prefix) + 6 &&
		    strspn(old + strlen(prefix),
		           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		           "0123456789") == 6 &&
		    lstat(old, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid()) {
			char cmd[400];
			snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", old);
			if (system(cmd) != 0)
				fprintf(stderr, "itest: could not remove %s\n", old);
		}
	}
	unlink(link);
	snprintf(scratch, sizeof(scratch), "/tmp/%.40s.XXXXXX", suite);
	if (!mkdtemp(scratch)) {
		fprintf(stderr, "itest: cannot make a scratch directory %s: %s\n", scratch,
		        strerror(errno));
		exit(1);
	}
	chmod(scratch, 0755);
	if (symlink(scratch, link) != 0)
		fprintf(stderr, "itest: no link %s to the scratch %s: %s\n", link, scratch,
		        strerror(errno));
}

void itest_failed(const char *file, int line, const char *expr, const char *msg, ...)
{
	enum { KEEP = 3000, HEAD = 700 };
	char *text = NULL;
	if (msg) {
		va_list ap;
		va_start(ap, msg);
		if (vasprintf(&text, msg, ap) < 0)
			text = NULL;
		va_end(ap);
	}
	size_t n = text ? strlen(text) : 0;
	if (n <= KEEP)
		_ck_assert_failed(file, line, expr, text ? "%s" : NULL, text);
	const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
	char path[400];
	snprintf(path, sizeof(path), "%s/failure-%s-%d-%ld.txt", scratch, base, line,
	         (long)getpid());
	FILE *f = fopen(path, "w");
	bool kept = f != NULL;
	if (f) {
		fprintf(f, "%s:%d: %s\n%s\n", file, line, expr, text);
		fclose(f);
	}
	_ck_assert_failed(file, line, expr,
	                  "%.*s\n[... %zu bytes more; the whole message is in %s ...]\n%s", HEAD,
	                  text, n - HEAD - (KEEP - HEAD - 300), kept ? path : "(no file)",
	                  text + n - (KEEP - HEAD - 300));
}

char *itest_tmpdir(const char *tag)
{
	char tmpl[512];
	snprintf(tmpl, sizeof(tmpl), "%s/%s-XXXXXX", scratch, tag);
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

char *itest_tail(const char *path)
{
	char *buf = itest_read_file(path);
	size_t n = strlen(buf);
	if (n > 2000)
		memmove(buf, buf + n - 2000, 2001);
	return buf;
}

char *itest_server_log(void)
{
	const char *dir = getenv("PGCROND_SANDBOX");
	ck_assert_msg(dir != NULL, "PGCROND_SANDBOX is not set");
	size_t len = strlen(dir) + 16;
	char *p = malloc(len);
	ck_assert(p != NULL);
	snprintf(p, len, "%s/server.log", dir);
	return p;
}

long itest_file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

int itest_server_statements(long from, const char *db, const char *needle)
{
	char *log = itest_server_log(), *text = itest_read_file(log), *save = NULL, tag[160];
	int n = 0;
	snprintf(tag, sizeof(tag), "@%s ", db);
	if ((long)strlen(text) >= from)
		for (char *line = strtok_r(text + from, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save))
			n += strstr(line, tag) && strstr(line, "LOG:  ") && strstr(line, needle);
	free(text);
	free(log);
	return n;
}

char *itest_fires_twice(PGconn *c, const char *jobs, const char *since)
{
	const char *p[] = {jobs, since};
	PGresult *r = PQexecParams(
	    c,
	    "SELECT string_agg(format('%s %s: %s', job_name, scheduled_time, rows), '; ')"
	    " FROM (SELECT job_name, scheduled_time, string_agg(format('%s %s %s', instance,"
	    "  status, return_message), ' | ') AS rows FROM pgcrond.job_run_details"
	    "  WHERE job_name LIKE $1 AND scheduled_time >= coalesce($2::timestamptz, '-infinity')"
	    "  GROUP BY 1, 2 HAVING count(*) > 1) d",
	    2, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	char *out = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return out;
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

/* Daemons started and not yet stopped: killed at exit if a failed assertion left one
 * behind (Check ends a failed test by exiting its process). */
static pid_t running[8];

static void kill_running_at_exit(void)
{
	for (size_t i = 0; i < sizeof(running) / sizeof(running[0]); i++)
		if (running[i] > 0)
			kill(running[i], SIGKILL);
}

static void track_running(pid_t old, pid_t new)
{
	static bool registered;

	if (!registered) {
		atexit(kill_running_at_exit);
		registered = true;
	}
	for (size_t i = 0; i < sizeof(running) / sizeof(running[0]); i++) {
		if (running[i] == old) {
			running[i] = new;
			return;
		}
	}
}

pid_t itest_daemon_start(const char *conf, const char *log)
{
	return itest_daemon_start_with(conf, log, NULL, NULL);
}

pid_t itest_daemon_start_with(const char *conf, const char *log, void (*in_child)(void *),
                              void *arg)
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
		if (in_child)
			in_child(arg);
		drop_privileges();
		execl(PGCROND_BIN, "pgcrond", "run", "-c", conf, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", PGCROND_BIN, strerror(errno));
		_exit(127);
	}
	track_running(0, pid);
	return pid;
}

int itest_daemon_stop(pid_t pid, int sig, double timeout_s)
{
	int status;
	track_running(pid, 0);
	if (sig)
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

int itest_daemon_wait_exit(pid_t pid, double timeout_s)
{
	return itest_daemon_stop(pid, 0, timeout_s);
}

void itest_copy_file(const char *from, const char *to, mode_t mode)
{
	FILE *in = fopen(from, "rb");
	ck_assert_msg(in != NULL, "%s missing: build it first", from);
	FILE *out = fopen(to, "wb");
	ck_assert_msg(out != NULL, "cannot write %s: %s", to, strerror(errno));
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
	fclose(in);
	ck_assert_int_eq(fclose(out), 0);
	ck_assert_int_eq(chmod(to, mode), 0); /* the plugin loader refuses writable-by-others */
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

/* ---- a daemon environment ------------------------------------------------------------- */

static void vformat(char *out, size_t len, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void vformat(char *out, size_t len, const char *fmt, va_list ap)
{
	int n = vsnprintf(out, len, fmt, ap);
	ck_assert_msg(n >= 0 && (size_t)n < len, "longer than %zu bytes: %.60s...", len, fmt);
}

char *itest_env_path(const struct itest_env *e, const char *name)
{
	size_t n = strlen(e->dir) + strlen(name) + 2;
	char *p = malloc(n);
	ck_assert_ptr_nonnull(p);
	snprintf(p, n, "%s/%s", e->dir, name);
	return p;
}

void itest_env_main(const struct itest_env *e, const char *fmt, ...)
{
	char extra[4096] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vformat(extra, sizeof(extra), fmt, ap);
		va_end(ap);
	}
	itest_write_file(e->conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = { app = { conninfo = \"%s\"; pool = 4; }; };\n"
	                 "history = { database = \"app\"; };\n"
	                 "%s",
	                 e->dir, e->dir, e->ci, extra);
}

void itest_env_main_with_db(const struct itest_env *e, const char *name, const char *conninfo)
{
	itest_write_file(e->conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = { app = { conninfo = \"%s\"; };\n"
	                 "  %s = { conninfo = \"%s\"; }; };\n"
	                 "history = { database = \"app\"; };\n",
	                 e->dir, e->dir, e->ci, name, conninfo);
}

json_t *itest_env_status(struct itest_env *e, const char *job)
{
	int status;
	char *out = job ? itest_cli(&status, "status", "-c", e->conf, "--json", job, NULL)
	                : itest_cli(&status, "status", "-c", e->conf, "--json", NULL);
	ck_assert_msg(status == 0, "pgcrond status: %d %s", status, out);
	json_error_t je;
	json_t *st = json_loads(out, 0, &je);
	ck_assert_msg(st != NULL, "status --json is not JSON (%s): %s", je.text, out);
	free(out);
	return st;
}

char *itest_env_metrics(struct itest_env *e)
{
	return itest_env_http(e, "/metrics", NULL);
}

char *itest_env_http(struct itest_env *e, const char *path, int *code)
{
	/* a listener with tls_cert_file serves https, with the tests' self-signed certificate */
	static const char needle[] = "http: listening on http";
	ck_assert_msg(itest_wait_log(e->log, needle, 10), "no listener:\n%s", itest_tail(e->log));
	char *text = itest_read_file(e->log);
	char *p = strstr(text, needle) + sizeof(needle) - 1;
	bool tls = *p == 's';
	p += tls + sizeof("://") - 1;
	int port = atoi(strchr(p, ':') + 1);
	free(text);
	char cmd[640];
	snprintf(cmd, sizeof(cmd),
	         "python3 -c 'import ssl, urllib.request, urllib.error\n"
	         "try: a = urllib.request.urlopen(\"http%s://127.0.0.1:%d%s\","
	         " context=ssl._create_unverified_context())\n"
	         "except urllib.error.HTTPError as x: a = x\n"
	         "print(a.status)\n"
	         "print(a.read().decode())'",
	         tls ? "s" : "", port, path);
	FILE *f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	size_t cap = 1 << 20, n = 0;
	char *out = malloc(cap);
	ck_assert_ptr_nonnull(out);
	while (n + 1 < cap && (cap - n - 1) > 0) {
		size_t r = fread(out + n, 1, cap - n - 1, f);
		if (r == 0)
			break;
		n += r;
	}
	out[n] = '\0';
	pclose(f);
	char *body = strchr(out, '\n');
	ck_assert_msg(body != NULL, "no answer from %s: %s", path, out);
	if (code)
		*code = atoi(out);
	memmove(out, body + 1, strlen(body + 1) + 1);
	return out;
}

void itest_env_each_second(const struct itest_env *e, const char *file, int n, const char *prefix,
                           const char *command)
{
	char jobs[8192] = "jobs = (\n", name[64], cmd[512];
	for (int i = 0; i < n; i++) {
		size_t used = strlen(jobs);
		snprintf(name, sizeof(name), "%s%d", prefix, i);
		const char *at = strstr(command, "%s"); /* the job's name goes there */
		ck_assert_ptr_nonnull(at);
		snprintf(cmd, sizeof(cmd), "%.*s%s%s", (int)(at - command), command, name, at + 2);
		ck_assert_int_lt(
		    snprintf(jobs + used, sizeof(jobs) - used,
		             "{ name = \"%s\"; database = \"app\"; schedule = \"* * * * * *\";"
		             "  command = \"%s\"; }%s\n",
		             name, cmd, i + 1 < n ? "," : ""),
		    (int)(sizeof(jobs) - used));
	}
	itest_env_job(e, file, "%s);\n", jobs);
}

void itest_env_job(const struct itest_env *e, const char *file, const char *fmt, ...)
{
	char body[8192], name[256];
	va_list ap;
	va_start(ap, fmt);
	vformat(body, sizeof(body), fmt, ap);
	va_end(ap);
	snprintf(name, sizeof(name), "conf.d/%s", file);
	char *p = itest_env_path(e, name);
	itest_write_file(p, "%s", body);
	free(p);
}

void itest_env_plugin(const struct itest_env *e, const char *from, const char *name)
{
	char to[1024];
	snprintf(to, sizeof(to), "%s/plugins/%s.so", e->dir, name);
	itest_copy_file(from, to, 0755);
}

/* A database NAME made afresh from TEMPLATE (NULL: template1); its conninfo. */
static char *fresh_db_from(const char *name, const char *template)
{
	PGconn *c = itest_connect(itest_conninfo());
	char sql[512];
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
	itest_exec(c, sql);
	/* FILE_COPY: copies the template's files (and checkpoints), where the default writes
	 * every page of it to the WAL; 80 ms of the server's CPU instead of 190 here. (15 and
	 * later: 14 has the file copy only, and no STRATEGY) */
	snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\" TEMPLATE \"%s\"%s", name,
	         template ? template : "template1",
	         PQserverVersion(c) >= 150000 ? " STRATEGY = FILE_COPY" : "");
	itest_exec(c, sql);
	PQfinish(c);
	return itest_conninfo_db(name);
}

char *itest_fresh_db(const char *name)
{
	return fresh_db_from(name, NULL);
}

static void env_init(struct itest_env *e, const char *tag, const char *dbname, const char *template)
{
	memset(e, 0, sizeof(*e));
	e->dir = itest_tmpdir(tag);
	e->conf = itest_env_path(e, "pgcrond.conf");
	e->log = itest_env_path(e, "daemon.log");
	const char *subdirs[] = {"conf.d", "plugins"};
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		char *d = itest_env_path(e, subdirs[i]);
		ck_assert_msg(mkdir(d, 0755) == 0, "mkdir %s: %s", d, strerror(errno));
		free(d);
	}
	e->ci = fresh_db_from(dbname, template);
	itest_env_main(e, NULL);
	e->db = itest_connect(e->ci);
	itest_exec(e->db, "SET client_min_messages = warning");
}

void itest_env_init(struct itest_env *e, const char *tag, const char *dbname)
{
	env_init(e, tag, dbname, NULL);
}

/* Schema step V's text from the source tree, "" if there is no such step (a number may be
 * missing: steps are handed out to branches that merge in any order). */
#define SCHEMA_STEPS 100
static char *schema_step(int v)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/../sql/pgcrond--%d.sql", TEST_SOURCE_DIR, v);
	char *sql = itest_read_file(path);
	ck_assert_msg(sql[0] != '\0' || v > 1, "no sql/pgcrond--1.sql");
	return sql;
}

/* Every schema step, as pgcrond install applies them, and what every role may use, on C. */
static void apply_schema(PGconn *c)
{
	for (int v = 1; v < SCHEMA_STEPS; v++) {
		char *sql = schema_step(v);
		if (sql[0] != '\0')
			itest_exec(c, sql);
		free(sql);
	}
	itest_exec(c, "GRANT USAGE ON SCHEMA pgcrond TO PUBLIC;"
	              "GRANT ALL ON ALL TABLES IN SCHEMA pgcrond TO PUBLIC;"
	              "GRANT ALL ON ALL SEQUENCES IN SCHEMA pgcrond TO PUBLIC;"
	              "GRANT ALL ON SCHEMA public TO PUBLIC");
}

/* The schema applied once in a lane, into a template the cases' databases are copied from
 * (the steps cost the server 280 ms of CPU each time, a copy 80). Named by the steps' text
 * and the day (the partitions of the history are made for the day of the install), so a
 * step changed or a day passed makes a new one. NAME gets the template's name. */
static void schema_template(char *name, size_t len)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a over the steps */
	for (int v = 1; v < SCHEMA_STEPS; v++) {
		char *sql = schema_step(v);
		for (const char *p = sql; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ULL;
		h = (h ^ (uint64_t)v) * 1099511628211ULL;
		free(sql);
	}
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	snprintf(name, len, "itest_schema_%04d%02d%02d_%016llx", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, (unsigned long long)h);
	PGconn *c = itest_connect(itest_conninfo());
	char sql[512];
	snprintf(sql, sizeof(sql), /* (the name is ours: digits and hex) */
	         "SELECT count(*) FROM pg_catalog.pg_database WHERE datname = '%s'"
	         " AND datistemplate",
	         name);
	if (itest_scalar_ll(c, sql) ==
	    0) { /* (a case that failed while making it left it unmarked: made again) */
		char *ci = fresh_db_from(name, NULL);
		PGconn *t = itest_connect(ci);
		itest_exec(t, "SET client_min_messages = warning");
		apply_schema(t);
		PQfinish(t);
		free(ci);
		snprintf(sql, sizeof(sql),
		         "ALTER DATABASE \"%s\" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
		         name);
		itest_exec(c, sql);
	}
	PQfinish(c);
}

void itest_env_setup(struct itest_env *e, const char *tag, const char *dbname)
{
	char template[128];
	schema_template(template, sizeof(template));
	env_init(e, tag, dbname, template);
}

/* Occurrences of NEEDLE in the file at PATH. */
int itest_count_in_file(const char *path, const char *needle)
{
	char *text = itest_read_file(path);
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	free(text);
	return n;
}

/* Whether LOG holds more than BEFORE lines with NEEDLE within TIMEOUT_S: a daemon started
 * again appends to the log its earlier one wrote, whose lines must not count (under load the
 * test would go on before the new daemon had said a word). */
static bool wait_more(const char *log, const char *needle, int before, double timeout_s)
{
	double end = itest_now() + timeout_s;
	for (;;) {
		bool more = itest_count_in_file(log, needle) > before;
		if (more || itest_now() > end)
			return more;
		itest_sleep(0.02);
	}
}

void itest_env_start(struct itest_env *e)
{
	int before = itest_count_in_file(e->log, "started:");
	e->pid = itest_daemon_start(e->conf, e->log);
	/* 30 s: an ASan build reading a few thousand job files on a machine running other suites
	 * beside it (scripts/test's lanes) can take over 10 s */
	ck_assert_msg(wait_more(e->log, "started:", before, 30), "daemon did not start:\n%s",
	              itest_read_file(e->log));
}

int itest_env_stop(struct itest_env *e, int sig, double timeout_s)
{
	int st = itest_daemon_stop(e->pid, sig, timeout_s);
	e->pid = 0;
	return st;
}

/* SIGHUP the daemon PID and wait until LOG says the reload is applied. */
static void reload_and_wait(pid_t pid, const char *log)
{
	static const char done[] = "configuration reloaded";
	int before = itest_count_in_file(log, done);
	ck_assert_int_eq(kill(pid, SIGHUP), 0);
	ck_assert_msg(wait_more(log, done, before, 20), "the reload was not applied:\n%s",
	              itest_tail(log));
}

void itest_env_reload(struct itest_env *e)
{
	reload_and_wait(e->pid, e->log);
}

void itest_inst_reload(struct itest_inst *in, const char *jobs)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/conf.d/10-jobs.conf", in->dir);
	itest_write_file(path, "%s", jobs);
	reload_and_wait(in->pid, in->log);
}

void itest_env_teardown(struct itest_env *e)
{
	if (e->pid)
		itest_env_stop(e, SIGKILL, 5);
	PQfinish(e->db);
	free(e->dir);
	free(e->conf);
	free(e->log);
	free(e->ci);
}

bool itest_env_wait(struct itest_env *e, double timeout_s, const char *fmt, ...)
{
	char sql[4096];
	va_list ap;
	va_start(ap, fmt);
	vformat(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return itest_wait_sql(e->db, sql, timeout_s);
}

long long itest_env_count(struct itest_env *e, const char *fmt, ...)
{
	char sql[4096];
	va_list ap;
	va_start(ap, fmt);
	vformat(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return itest_scalar_ll(e->db, sql);
}

bool itest_log_listening(const char *log, const char *channel, double timeout_s)
{
	char quoted[256];
	snprintf(quoted, sizeof(quoted), "\"%s\"", channel);
	double end = itest_now() + timeout_s;
	for (;;) {
		char *text = itest_read_file(log);
		bool found = false;
		for (char *l = strstr(text, "listening on "); l && !found;
		     l = strstr(l + 1, "listening on ")) {
			char *eol = strchr(l, '\n');
			if (eol)
				*eol = '\0';
			found = strstr(l, quoted) != NULL;
			if (eol)
				*eol = '\n';
		}
		free(text);
		if (found || itest_now() > end)
			return found;
		itest_sleep(0.05);
	}
}

bool itest_env_listening(struct itest_env *e, double timeout_s)
{
	return itest_log_listening(e->log, "pgcrond_trigger", timeout_s);
}

void itest_env_kill_own_waiting(struct itest_env *e, const char *what, const char *then)
{
	/* seen and terminated in one statement: a wait may end on a lock_timeout */
	if (!itest_env_wait(e, 20,
	                    "SELECT count(pg_catalog.pg_terminate_backend(pid)) = 1 FROM "
	                    "pg_stat_activity WHERE " ITEST_OWN_SESSIONS
	                    " AND wait_event_type = 'Lock' AND strpos(query, '%s') > 0",
	                    what))
		ck_abort_msg("the daemon's own session does not wait for a lock in %s:\n%s", what,
		             itest_read_file(e->log));
	if (then && !itest_wait_log(e->log, then, 30))
		ck_abort_msg("no \"%s\" in the log after the session was terminated:\n%s", then,
		             itest_read_file(e->log));
}

char *itest_env_other_host(const struct itest_env *e)
{
	char *other = itest_env_path(e, "other.conf");
	char *main_text = itest_read_file(e->conf);
	char *sd = strstr(main_text, "/state\"");
	ck_assert(sd != NULL);
	*sd = '\0';
	itest_write_file(other, "%s/elsewhere\"%s", main_text, sd + strlen("/state\""));
	char *dir = itest_env_path(e, "elsewhere");
	ck_assert(mkdir(dir, 0755) == 0);
	free(dir);
	free(main_text);
	return other;
}

/* ---- a second server ------------------------------------------------------------------ */

#define SANDBOX_SCRIPT TEST_SOURCE_DIR "/../scripts/pg-sandbox"

static char sandbox2_dir[1024];

static void sandbox2_stop_at_exit(void)
{
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "%s stop --dir %s >/dev/null 2>&1", SANDBOX_SCRIPT,
	         sandbox2_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "itest: could not stop the second sandbox at %s\n", sandbox2_dir);
}

const char *itest_pgbin(void)
{
	const char *b = getenv("PGSANDBOX_PGBIN");
	return b && *b ? b : ITEST_DEBIAN_PGBIN;
}

int itest_server_major(void)
{
	const char *v = getenv("PGCROND_TEST_SERVER");
	return v && *v ? atoi(v) : 15;
}

char *itest_sandbox2_start(const char *dir)
{
	return itest_sandbox2_start_with(dir, NULL);
}

char *itest_sandbox2_start_with(const char *dir, const char *pgbin)
{
	char cmd[2600], path[1100];
	ck_assert_msg(!sandbox2_dir[0], "one second sandbox per test process");
	snprintf(sandbox2_dir, sizeof(sandbox2_dir), "%s/pg2", dir);
	atexit(sandbox2_stop_at_exit);
	snprintf(path, sizeof(path), "%s/pg2.conninfo", dir);
	snprintf(cmd, sizeof(cmd), "PGSANDBOX_PGBIN='%s' %s start --dir %s --owner %d > %s",
	         pgbin ? pgbin : itest_pgbin(), SANDBOX_SCRIPT, sandbox2_dir, (int)getpid(), path);
	ck_assert_msg(system(cmd) == 0, "cannot start a second sandbox: %s", cmd);
	char *ci = itest_read_file(path);
	ci[strcspn(ci, "\n")] = '\0';
	ck_assert_msg(ci[0], "the second sandbox printed no conninfo");
	return ci;
}

char *itest_sandbox2_db(const char *ci, const char *db)
{
	PGconn *c = itest_connect(ci);
	char sql[200], *out = NULL;
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
	itest_exec(c, sql);
	PQfinish(c);
	const char *p = strstr(ci, "dbname=");
	ck_assert_ptr_nonnull(p);
	size_t name = strcspn(p + 7, " ");
	ck_assert(asprintf(&out, "%.*sdbname=%s%s", (int)(p - ci), ci, db, p + 7 + name) > 0);
	return out;
}

char *itest_pgcron_start(const char *dir, const char *db)
{
	char conf[300];
	snprintf(conf, sizeof(conf), "shared_preload_libraries = pg_cron\ncron.database_name = %s",
	         db);
	setenv("PGSANDBOX_CONF", conf, 1);
	char *ci2 = itest_sandbox2_start_with(dir, ITEST_DEBIAN_PGBIN);
	unsetenv("PGSANDBOX_CONF");
	char *ci = itest_sandbox2_db(ci2, db);
	free(ci2);
	PGconn *c = itest_connect(ci);
	itest_exec(c, "CREATE EXTENSION pg_cron");
	PQfinish(c);
	return ci;
}

void itest_sandbox2(const char *what)
{
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "%s %s --dir %s", SANDBOX_SCRIPT, what, sandbox2_dir);
	ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
}

void itest_inst_init(struct itest_inst *in, const struct itest_env *e, const char *name,
                     const char *jobs)
{
	memset(in, 0, sizeof(*in));
	snprintf(in->name, sizeof(in->name), "%s", name);
	in->dir = itest_tmpdir(name);
	size_t n = strlen(in->dir) + 64;
	in->conf = malloc(n);
	in->log = malloc(n);
	char *confd = malloc(n), *job = malloc(n);
	ck_assert(in->conf && in->log && confd && job);
	snprintf(in->conf, n, "%s/pgcrond.conf", in->dir);
	snprintf(in->log, n, "%s/daemon.log", in->dir);
	snprintf(confd, n, "%s/conf.d", in->dir);
	snprintf(job, n, "%s/conf.d/10-jobs.conf", in->dir);
	ck_assert(mkdir(confd, 0755) == 0);
	itest_write_file(in->conf,
	                 "instance = \"%s\";\n"
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = { app = { conninfo = \"%s\"; pool = 4; }; };\n"
	                 "history = { database = \"app\"; };\n"
	                 "%s",
	                 name, confd, in->dir, e->ci,
	                 getenv("ITEST_DEBUG") ? "log_level = \"debug\";\n" : "");
	itest_write_file(job, "%s", jobs);
	free(confd);
	free(job);
}

void itest_inst_start(struct itest_inst *in)
{
	in->starts = itest_count_in_file(in->log, "started:");
	in->pid = itest_daemon_start(in->conf, in->log);
}

bool itest_inst_wait_started(const struct itest_inst *in, double timeout_s)
{
	return wait_more(in->log, "started:", in->starts, timeout_s);
}

void itest_inst_up(struct itest_env *e, struct itest_inst *in)
{
	itest_inst_start(in);
	ck_assert_msg(itest_inst_wait_started(in, 15), "no start:\n%s", itest_read_file(in->log));
	ck_assert_msg(
	    itest_env_wait(e, 15,
	                   "SELECT count(*) = 1 FROM pgcrond.instance WHERE name = '%s'"
	                   " AND stopped_at IS NULL AND last_seen > now() - '10 s'::interval",
	                   in->name),
	    "instance %s did not come up:\n%s", in->name, itest_read_file(in->log));
}

int itest_inst_stop(struct itest_inst *in, int sig)
{
	int st = in->pid ? itest_daemon_stop(in->pid, sig, 30) : 0;
	in->pid = 0;
	return st;
}

void itest_inst_free(struct itest_inst *in)
{
	itest_inst_stop(in, SIGKILL);
	free(in->dir);
	free(in->conf);
	free(in->log);
}

char *itest_chromium(const char *dir, const char *args, const char *url)
{
	static const char chromium[] = "/usr/bin/chromium";
	char cmd[4096], out[1024], errf[1024];
	ck_assert_msg(access(chromium, X_OK) == 0,
	              "%s is missing: scripts/setup installs it (Debian package chromium)",
	              chromium);
	snprintf(out, sizeof(out), "%s/chromium.out", dir);
	snprintf(errf, sizeof(errf), "%s/chromium.err", dir);
	snprintf(cmd, sizeof(cmd),
	         "rm -rf %s/chromium-profile && %s --headless --no-sandbox --disable-gpu "
	         "--disable-quic --no-first-run --disable-background-networking "
	         "--disable-component-update --disable-sync --user-data-dir=%s/chromium-profile "
	         "--window-size=1280,1000 --hide-scrollbars %s '%s' > %s 2> %s",
	         dir, chromium, dir, args, url, out, errf);
	int rc = system(cmd);
	ck_assert_msg(rc == 0, "chromium failed (%d): %s", rc, itest_read_file(errf));
	return itest_read_file(out);
}

/* ITEST_SHARD=K/N: this process's share of its suite's cases. Returns false without one (or
 * with one that does not parse, said once). */
static bool shard(unsigned *k, unsigned *n)
{
	const char *v = getenv("ITEST_SHARD");
	if (!v || !*v)
		return false;
	if (sscanf(v, "%u/%u", k, n) == 2 && *n > 0 && *k < *n)
		return true;
	static bool told;
	if (!told)
		fprintf(stderr,
		        "itest: ITEST_SHARD=\"%s\" is not K/N with K < N; every case runs\n", v);
	told = true;
	return false;
}

void itest_add_tcase(Suite *s, TCase *tc)
{
	static unsigned added;
	unsigned k, n;
	/* Check runs the cases carrying the tag itest_run_share asks for */
	if (shard(&k, &n))
		tcase_set_tags(tc, added % n == k ? "share" : "other");
	added++;
	suite_add_tcase(s, tc);
}

int itest_run_share(SRunner *sr)
{
	unsigned k, n;
	if (shard(&k, &n))
		srunner_run_tagged(sr, NULL, NULL, "share", NULL, CK_ENV);
	else
		srunner_run_all(sr, CK_ENV);
	return srunner_ntests_failed(sr);
}

/* ---- local HTTPS servers ---------------------------------------------------------------- */

static void sh_in(const char *dir, const char *cmd)
{
	char buf[2048];
	snprintf(buf, sizeof(buf), "cd '%s' && %s >/dev/null 2>&1", dir, cmd);
	ck_assert_msg(system(buf) == 0, "failed: %s", cmd);
}

void itest_make_certs(const char *dir)
{
	sh_in(dir, "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
	           "-subj /CN=pgcrond-test-ca");
	sh_in(dir, "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext && "
	           "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr "
	           "-subj /CN=localhost && openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
	           "-CAcreateserial -out srv.pem -days 2 -extfile san.ext");
	sh_in(dir, "openssl req -x509 -newkey rsa:2048 -nodes -keyout self.key -out self.pem "
	           "-days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1");
	sh_in(dir, "chmod 0644 ca.pem");
}

pid_t itest_script_start(const char *dir, const char *script, char **ports)
{
	char path[1024], done[1024];
	snprintf(path, sizeof(path), "%s/server.py", dir);
	snprintf(done, sizeof(done), "%s/ports.txt", dir);
	itest_write_file(path, "%s", script);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execlp("python3", "python3", path, dir, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200 && access(done, R_OK) != 0; i++)
		itest_sleep(0.05);
	*ports = itest_read_file(done);
	return pid;
}
