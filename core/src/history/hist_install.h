#ifndef PGCROND_HIST_INSTALL_H
#define PGCROND_HIST_INSTALL_H

/* The schema installer of "pgcrond install" (cli_install.c): blocking libpq calls, never on
 * the daemon's loop, so it lives apart from the asynchronous history writer (history.c). */

#include <stdbool.h>
#include <stddef.h>

/* Schema install, blocking: for "pgcrond install" (never on the daemon's loop). Inside one
 * transaction holding an advisory lock, brings pgcrond's schema to the newest version
 * found in SQL_DIR (pgcrond--N.sql files, each the step from N-1 to N), then applies
 * pg_cron_compat.sql. *FROM and *TO get the versions before and after (equal: nothing was
 * changed). CONN must not be in a transaction. Returns 0, or a negative errno with a
 * message in ERR: -EACCES when the server refused for want of a privilege (SQLSTATE
 * 42501), -ENOTCONN when the connection was lost, -ENOENT without schema files, -EIO for
 * any other refusal. Every statement runs with search_path pinned to pg_catalog, pg_temp. On
 * success the transaction is still open: the caller adds its own statements (the job registry) and
 * COMMITs, or ROLLBACKs on error; its COMMIT notifies OWNSESS_INSTALL_CHANNEL (ownsess.h). */
struct pg_conn; /* libpq's PGconn */
int hist_install_begin(struct pg_conn *conn, const char *sql_dir, int *from, int *to, char *err,
                       size_t errlen) __attribute__((warn_unused_result));
/* A statement that fails (SQLSTATE 42501) if schema pgcrond exists and is owned by a role that
 * is neither the session's user nor a superuser: whatever that role put in it (a trigger on
 * a table a step fills, a function a step or the daemon calls) would run as the installer,
 * and it could replace what the install makes. Run before every SQL file of an install, in
 * every database (the schema steps, refresh.sql, freshness.sql). */
extern const char hist_sql_owner_check[];
/* The SQL file DIR/NAME applied in CONN as one simple-protocol query (it holds many
 * statements), after hist_sql_owner_check and, with PIN, after restating the pinned
 * search_path for the transaction (SET LOCAL: the install's steps share one). Returns 0, or
 * pgconn_check()'s error with WHAT (NULL: the file's path) in front of the message in ERR; a
 * file that cannot be read, its negative errno (-ENOENT: none) with "cannot read PATH: ...". */
int hist_apply_file(struct pg_conn *conn, const char *dir, const char *name, bool pin,
                    const char *what, char *err, size_t errlen) __attribute__((warn_unused_result));
/* The directory of the schema SQL: $PGCROND_SQL_DIR, else the build tree's copy of sql/ if it
 * exists (running from a build tree), else the installed one. */
const char *hist_sql_dir(void);

#endif
