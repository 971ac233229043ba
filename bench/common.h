#ifndef PGCROND_BENCH_COMMON_H
#define PGCROND_BENCH_COMMON_H

/* What the benchmarks share: libpq calls that end the program on failure, the clock, and
 * the daemon run as the sandbox user. A failure prints "bench_NAME: what: detail" (the
 * program's name) and exits 1, so atexit handlers (a sandbox to stop) still run. */

#include <libpq-fe.h>
#include <sys/types.h>

void bench_die(const char *what, const char *detail) __attribute__((noreturn));

double bench_now(void); /* monotonic seconds */
void bench_sleep(double seconds);
int bench_cmp_double(const void *a, const void *b); /* for qsort of doubles */
double bench_wall_now(void);                        /* CLOCK_REALTIME seconds */
/* "median (min-max)" of N values, with DIGITS decimals (an even N: the mean of the middle
 * two); returns the median. */
double bench_spread(const double *v, int n, int digits, char *out, size_t len);
/* "load average WHEN: 1 5 15 (uptime's), N CPUs (nproc)", a line on stdout: the benches print
 * it at their start and end, since every figure depends on what else the machine runs. */
void bench_print_load(const char *when);

PGconn *bench_connect(const char *conninfo);
/* Drop the server's notices (DROP ... IF EXISTS and the like) instead of printing them. */
void bench_quiet_notices(PGconn *c);
void bench_exec(PGconn *c, const char *sql);
/* SQL with N text parameters, its rows expected (the caller PQclear()s the result). */
PGresult *bench_query(PGconn *c, const char *sql, int n, const char *const *params);
/* The whole of PATH, malloc'd. */
char *bench_slurp(const char *path);
/* Copy plugin NAME's .so from the build into PLUGIN_DIR, mode 0644 (the daemon refuses a
 * plugin others could write). */
void bench_copy_plugin(const char *plugin_dir, const char *name);
void bench_exec_file(PGconn *c, const char *path);

/* The unprivileged user the sandbox and the daemon run as ($PGSANDBOX_USER, "pgsandbox"). */
/* A fresh database DBNAME (dropped if present) in the sandbox at SANDBOX ($PGCROND_SANDBOX)
 * with the pgcrond schema; its conninfo goes into CI. Returns a connection to it. */
PGconn *bench_fresh_db(const char *sandbox, const char *dbname, char *ci, size_t cilen);
const char *bench_user(void);
/* Give PATH to bench_user() when running as root. */
void bench_chown_user(const char *path);
/* DIR/WHO, its conf.d and its state (both given to bench_user() when root), for one daemon's
 * files; the path of its pgcrond.conf (not written) into CONF. */
void bench_daemon_dir(const char *dir, const char *who, char *conf, size_t len);
/* Start "pgcrond run -c CONF" (as bench_user() when root: the daemon refuses root), its
 * output appended to LOG. */
pid_t bench_daemon_start(const char *conf, const char *log);
/* "pgcrond SUB -c CONF" (install, check ...) as bench_daemon_start() runs the daemon; waits
 * for it and returns its exit status. */
int bench_pgcrond(const char *sub, const char *conf, const char *log);
/* SIGTERM, then SIGKILL after 30 s. */
void bench_daemon_stop(pid_t pid);

#endif
