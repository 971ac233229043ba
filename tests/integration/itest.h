#ifndef PGCROND_ITEST_H
#define PGCROND_ITEST_H

/* Helpers for the integration suites: the sandbox PostgreSQL started by the ctest fixture
 * (scripts/pg-sandbox; $PGCROND_SANDBOX is its directory), fresh databases, temp dirs the
 * unprivileged sandbox user can read, and the pgcrond binary run as that user (the daemon
 * refuses root, and tests run as root in CI). Failures abort the current Check test. */

#include <libpq-fe.h>
#include <stdbool.h>
#include <sys/types.h>

/* The sandbox's conninfo (dbname=postgres) and its socket dir / port. */
const char *itest_conninfo(void);
/* "host=... port=... user=postgres dbname=NAME" for another database. */
char *itest_conninfo_db(const char *dbname);
/* Drop (if present) and create database NAME; returns its conninfo (malloc'd). */
char *itest_fresh_db(const char *name);

PGconn *itest_connect(const char *conninfo);
void itest_exec(PGconn *c, const char *sql);
/* First column of the first row, malloc'd, or NULL for no row / SQL NULL. */
char *itest_scalar(PGconn *c, const char *sql);
long long itest_scalar_ll(PGconn *c, const char *sql);
/* Assert that SQL's first value is EXPECTED ("NULL" matches SQL NULL or no row). */
#define itest_assert_scalar(c, sql, expected) itest_assert_scalar_at(__FILE__, __LINE__, (c), (sql), (expected))
void itest_assert_scalar_at(const char *file, int line, PGconn *c, const char *sql,
			    const char *expected);
/* Poll SQL (returning one boolean) every 50 ms until true or TIMEOUT_S; returns the last
 * value. Polling is fine in a test; the daemon itself never polls. */
bool itest_wait_sql(PGconn *c, const char *sql, double timeout_s);

/* The unprivileged user the sandbox and the daemon run as. */
const char *itest_user(void);
/* A new temp dir, mode 0755, owned by root (so plugin-directory checks pass) but whose
 * "state" subdir is owned by itest_user(). Returns the path (malloc'd). */
char *itest_tmpdir(const char *tag);
void itest_write_file(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *itest_read_file(const char *path); /* malloc'd, "" if missing */
void itest_chown_user(const char *path);

/* Start "pgcrond run -c CONF" as itest_user(), stdout+stderr appended to LOG. */
pid_t itest_daemon_start(const char *conf, const char *log);
/* Send SIG, wait up to TIMEOUT_S for exit; returns the exit status as from waitpid's
 * WEXITSTATUS, 128+signal if killed by a signal, or -1 after SIGKILL on timeout. */
int itest_daemon_stop(pid_t pid, int sig, double timeout_s);
/* Wait until LOG contains NEEDLE; true if it did within TIMEOUT_S. */
bool itest_wait_log(const char *log, const char *needle, double timeout_s);

/* Run "pgcrond ARGS..." (NULL-terminated) as itest_user(); returns its combined output
 * (malloc'd) and sets *STATUS to the exit code. */
char *itest_cli(int *status, const char *arg, ...) __attribute__((sentinel));

double itest_now(void); /* monotonic seconds */
void itest_sleep(double seconds);

#endif
