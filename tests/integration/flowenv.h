/* A daemon environment for the "jobs that behave" suites (it_flow, it_listen, it_alerts):
 * a fresh database with the pgcrond schema, a temp dir with pgcrond.conf and conf.d/, and
 * the daemon run as the sandbox user. Header-only: each suite is one executable. */
#ifndef PGCROND_FLOWENV_H
#define PGCROND_FLOWENV_H

#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

struct fenv {
	char *dir;
	char *conf;
	char *log;
	char *ci;
	PGconn *db;
	pid_t pid;
};

static pid_t fenv_running; /* killed at exit if a failed assertion left it behind */

static void fenv_kill_at_exit(void)
{
	if (fenv_running > 0)
		kill(fenv_running, SIGKILL);
}

__attribute__((unused)) static char *fenv_path(const struct fenv *e, const char *name)
{
	size_t n = strlen(e->dir) + strlen(name) + 2;
	char *p = malloc(n);
	snprintf(p, n, "%s/%s", e->dir, name);
	return p;
}

/* The main file; EXTRA (printf format) is appended verbatim (alerts, plugin_dir ...). */
__attribute__((unused, format(printf, 2, 3))) static void fenv_main(const struct fenv *e,
                                                                    const char *fmt, ...)
{
	char extra[4096] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(extra, sizeof(extra), fmt, ap);
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

__attribute__((unused, format(printf, 3, 4))) static void fenv_job(const struct fenv *e,
                                                                   const char *file,
                                                                   const char *fmt, ...)
{
	char body[8192], name[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	snprintf(name, sizeof(name), "conf.d/%s", file);
	char *p = fenv_path(e, name);
	itest_write_file(p, "%s", body);
	free(p);
}

/* Copy the shared object FROM into the environment's plugin dir as NAME.so. */
__attribute__((unused)) static void fenv_plugin(const struct fenv *e, const char *from,
                                                const char *name)
{
	char to[1024];
	snprintf(to, sizeof(to), "%s/plugins/%s.so", e->dir, name);
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	ck_assert_msg(in && out, "cannot copy %s to %s", from, to);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		ck_assert(fwrite(buf, 1, n, out) == n);
	fclose(in);
	fclose(out);
	ck_assert(chmod(to, 0755) == 0);
}

/* DBNAME: a fresh database; SETUP_SQL runs in it before the schema is installed. */
__attribute__((unused)) static void fenv_setup(struct fenv *e, const char *tag, const char *dbname)
{
	memset(e, 0, sizeof(*e));
	atexit(fenv_kill_at_exit);
	e->dir = itest_tmpdir(tag);
	e->conf = fenv_path(e, "pgcrond.conf");
	e->log = fenv_path(e, "daemon.log");
	char *d = fenv_path(e, "conf.d");
	ck_assert(mkdir(d, 0755) == 0);
	free(d);
	d = fenv_path(e, "plugins");
	ck_assert(mkdir(d, 0755) == 0);
	free(d);
	e->ci = itest_fresh_db(dbname);
	fenv_main(e, NULL);
	e->db = itest_connect(e->ci);
	itest_exec(e->db, "SET client_min_messages = warning");
	char *sql = itest_read_file(TEST_SOURCE_DIR "/../sql/pgcrond--1.sql");
	ck_assert_msg(sql[0], "no sql/pgcrond--1.sql");
	itest_exec(e->db, sql);
	free(sql);
	itest_exec(e->db, "GRANT USAGE ON SCHEMA pgcrond TO PUBLIC;"
	                  "GRANT ALL ON ALL TABLES IN SCHEMA pgcrond TO PUBLIC;"
	                  "GRANT ALL ON ALL SEQUENCES IN SCHEMA pgcrond TO PUBLIC;"
	                  "GRANT ALL ON SCHEMA public TO PUBLIC");
}

__attribute__((unused)) static void fenv_start(struct fenv *e)
{
	e->pid = itest_daemon_start(e->conf, e->log);
	fenv_running = e->pid;
	ck_assert_msg(itest_wait_log(e->log, "started:", 10), "daemon did not start:\n%s",
	              itest_read_file(e->log));
}

__attribute__((unused)) static int fenv_stop(struct fenv *e, int sig, double timeout_s)
{
	int st = itest_daemon_stop(e->pid, sig, timeout_s);
	fenv_running = 0;
	e->pid = 0;
	return st;
}

__attribute__((unused)) static void fenv_teardown(struct fenv *e)
{
	if (e->pid)
		fenv_stop(e, SIGKILL, 5);
	PQfinish(e->db);
	free(e->dir);
	free(e->conf);
	free(e->log);
	free(e->ci);
}

__attribute__((unused, format(printf, 3, 4))) static bool fenv_wait(struct fenv *e,
                                                                    double timeout_s,
                                                                    const char *fmt, ...)
{
	char sql[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return itest_wait_sql(e->db, sql, timeout_s);
}

__attribute__((unused, format(printf, 2, 3))) static long long fenv_count(struct fenv *e,
                                                                         const char *fmt, ...)
{
	char sql[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return itest_scalar_ll(e->db, sql);
}

/* A six-field schedule firing once a minute, AHEAD seconds from now. */
__attribute__((unused)) static void fenv_soon(char *out, size_t outlen, int ahead)
{
	time_t t = time(NULL) + ahead;
	snprintf(out, outlen, "%d * * * * *", (int)(t % 60));
}

#endif
