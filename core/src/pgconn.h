#ifndef PGCROND_PGCONN_H
#define PGCROND_PGCONN_H

/* Small helpers for libpq connections shared by the I/O modules (history, executor, notify)
 * and the CLI commands. No state, no event loop: the owners drive their connections. */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Start a non-blocking connection (PQconnectStartParams with the conninfo expanded and
 * APPLICATION_NAME as fallback_application_name, so a conninfo's own application_name
 * wins). On success *OUT is the connection to drive with PQconnectPoll, waiting first for
 * the socket to become writable. Returns 0, -ENOMEM, or -ECONNREFUSED when libpq failed at
 * once (the message is in PQerrorMessage(*OUT); the caller still PQfinish()es it). */
int pgconn_start(const char *conninfo, const char *application_name, PGconn **out)
    __attribute__((warn_unused_result));

/* Blocking connect for the CLI commands. Returns the connection, or NULL with a one-line
 * message in ERR that names the (redacted) conninfo. */
PGconn *pgconn_connect_blocking(const char *conninfo, const char *application_name, char *err,
                                size_t errlen);

/* The connection's or the result's error as one line (newlines folded, trailing blanks
 * trimmed) in BUF; returns BUF. Never contains the conninfo. */
const char *pgconn_error(const PGconn *conn, char *buf, size_t len);
const char *pgconn_result_error(const PGresult *res, char *buf, size_t len);

/* Capped exponential backoff with jitter for the ATTEMPT-th consecutive failure (0 for the
 * first): a delay in [d/2, d] where d = min(MAX_MS, MIN_MS * 2^ATTEMPT), so reconnecting
 * clients do not stampede a database that just came back. */
int64_t pgconn_backoff_ms(unsigned attempt, int64_t min_ms, int64_t max_ms);

/* Whether an error with SQLSTATE (NULL = no server answer at all) is worth retrying as is:
 * connection exceptions (08), insufficient resources (53), operator intervention (57),
 * serialization failure and deadlock (40001, 40P01), read-only transaction on a standby
 * (25006), lock not available (55P03), and no SQLSTATE. */
bool pgconn_sqlstate_transient(const char *sqlstate);

#endif
