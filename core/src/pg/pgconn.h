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
 * wins), with the conninfo's "host", "hostaddr" and "port" lists replaced by HOST, HOSTADDR
 * and PORT where not NULL (conndrv.c hands over the addresses it resolved, keeping the host
 * names for TLS and .pgpass). On success *OUT is the connection to drive with PQconnectPoll,
 * waiting first for the socket to become writable. Returns 0, -ENOMEM, or -ECONNREFUSED when
 * libpq failed at once (the message is in PQerrorMessage(*OUT); the caller still
 * PQfinish()es it). */
int pgconn_start_at(const char *conninfo, const char *application_name, bool pinned,
                    const char *host, const char *hostaddr, const char *port, PGconn **out)
    __attribute__((warn_unused_result));

/* pgcrond's own connections (history, cluster, listeners, the SQL jobs' reader, health,
 * every CLI command; PINNED above) resolve no name through a schema other roles can write:
 * their search_path is pinned at connect time, as a startup option, so nothing runs before
 * it and DISCARD ALL/RESET ALL return to it. A job's connection is not pinned: the job's
 * own search_path stays the user's, and what pgcrond adds there is schema-qualified. */
#define PGCONN_PINNED_OPTION "-c search_path=pg_catalog,pg_temp"

/* A job's session names itself PGCONN_JOB_APP_PREFIX and the job's name (application_name,
 * which pg_stat_activity shows; the server keeps its first 63 bytes). */
#define PGCONN_JOB_APP_PREFIX "pgcrond: "

/* The application_name of a job's session that is not named (exec.h: name_backend): the
 * pools connect with it as their fallback_application_name. */
#define PGCONN_APP_UNNAMED "pgcrond"

/* SQL: the backend A (an alias of pg_stat_activity) that serves the run of row D (an alias of
 * pgcrond.job_run_details): its recorded pid, its job's application name as the server keeps
 * it (job names are ASCII) or the unnamed session's (a lone instance names a run's session
 * only when the job's last run was slow: a run that became slow is unnamed), and a start no
 * later than the run's (10 s of slack for clocks), so that a pid reused since is never taken
 * for it. */
#define PGCONN_SQL_RUN_BACKEND(d, a)                                                               \
	a ".pid OPERATOR(pg_catalog.=) " d ".job_pid"                                              \
	  " AND " a ".application_name OPERATOR(pg_catalog.=) ANY "                                \
	  "(ARRAY[pg_catalog.left('" PGCONN_JOB_APP_PREFIX "' OPERATOR(pg_catalog.||) " d          \
	  ".job_name, 63), '" PGCONN_APP_UNNAMED "'])"                                             \
	  " AND " a ".backend_start OPERATOR(pg_catalog.<=) (" d                                   \
	  ".start_time OPERATOR(pg_catalog.+)"                                                     \
	  " interval '10 seconds')"

/* SQL: which start of its server a transaction id belongs to (an id means something only
 * there, until the server's next restart), as text that no session setting changes (the
 * text of a timestamptz follows TimeZone and DateStyle, which a role or database may set):
 * the start's Unix time, a numeric. The same in exec_priv.h's XID_SQL, the takeover's fence
 * and pgcrond.xact_committed() (sql/pgcrond--21.sql). */
#define PGCONN_SQL_SERVER_ID                                                                       \
	"EXTRACT(epoch FROM pg_catalog.pg_postmaster_start_time())::pg_catalog.text"

/* SQL: whether this session's role may end backend A, as pg_terminate_backend() judges it:
 * with the privileges of the backend's role, or with pg_signal_backend's for a backend that
 * is not a superuser's. A statement that asks to end a backend it may not end fails whole;
 * one that asks only where this holds does not. */
#define PGCONN_SQL_MAY_SIGNAL(a)                                                                   \
	"(pg_catalog.pg_has_role(" a ".usesysid, 'USAGE')"                                         \
	" OR (pg_catalog.pg_has_role('pg_signal_backend', 'USAGE')"                                \
	"  AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r"                                  \
	"   WHERE r.oid OPERATOR(pg_catalog.=) " a ".usesysid)))"

/* SQL, a boolean: backend A is ended, waiting up to 3 s for it to go (the fence of a run whose
 * process is gone: its transaction rolls back and can commit nothing later); false if it did
 * not go in time or this role may not end it (PGCONN_SQL_MAY_SIGNAL). */
#define PGCONN_SQL_END_BACKEND(a)                                                                  \
	"CASE WHEN " PGCONN_SQL_MAY_SIGNAL(a) " THEN pg_catalog.pg_terminate_backend(" a ".pid,"   \
	                                      " 3000) ELSE false END"

/* The "options" value of a pinned connection to CONNINFO: the conninfo's own options (or
 * PGOPTIONS when it sets none), then PGCONN_PINNED_OPTION, which wins. An "options" set in
 * a service file is replaced (libpq reads the service file only for keys not given): put it
 * in the conninfo instead. malloc'd; NULL when out of memory. */
char *pgconn_pinned_options(const char *conninfo);
/* KEY's value in OPTS (PQconninfoParse's, may be NULL), "" if none. */
const char *pgconn_option(const PQconninfoOption *opts, const char *key);

/* The servers pgcrond supports: PostgreSQL 14 (the schema's partition maintenance reads
 * pg_inherits.inhdetachpending, new in 14) to 18, the versions its tests run on. An older
 * server is refused wherever a connection to it is made: the CLI's (connect_blocking) and
 * the daemon's (conndrv.c, at every connect: a server can be replaced); a newer one is not. */
#define PGCONN_MIN_SERVER_VERSION 140000
#define PGCONN_SUPPORTED_SERVERS "14 to 18"
/* The one check of a server's version: whether CONN's server is older than
 * PGCONN_MIN_SERVER_VERSION. If so, WHY gets one line naming the version found, the ones
 * supported and what to do ("PostgreSQL 13.23 is not supported (14 to 18 are); upgrade the
 * server or point the database's conninfo at a supported one"), which its caller puts after
 * the database's name. */
bool pgconn_server_too_old(const PGconn *conn, char *why, size_t len);
/* Whether SQLSTATE (NULL: none) refuses a statement's data, which sent again would fail again:
 * classes 21 (cardinality), 22 (data exception), 23 (integrity), and 54000 (a value past a
 * limit). Others (a connection, a lock, privileges, a missing schema) may pass later. */
bool pgconn_data_error(const char *sqlstate);

/* Blocking connect for the CLI commands (search_path pinned). Returns the connection, or NULL with
 * a one-line message in ERR that names the (redacted) conninfo and never shows its password;
 * for a server too old, pgconn_server_too_old's line alone (the caller names the database),
 * and errno ENOTSUP (else ECONNREFUSED, or ENOMEM). */
PGconn *pgconn_connect_blocking(const char *conninfo, const char *application_name, char *err,
                                size_t errlen);
/* The same, with the server's search_path (not pinned): for statements an operator wrote
 * for a job (a sql_view job's query in its CREATE MATERIALIZED VIEW), which resolve names
 * as the job's runs do. */
PGconn *pgconn_connect_blocking_job(const char *conninfo, const char *application_name, char *err,
                                    size_t errlen);

/* The connection's error as one line (newlines folded, trailing blanks trimmed), made safe
 * to log, store or show for a connection opened with CONNINFO: every occurrence of the
 * conninfo's password (as parsed, percent-encoded, and as written in a URI) is replaced by
 * "********"; if libpq cannot parse CONNINFO its message is withheld entirely
 * (PGCONN_MESSAGE_WITHHELD), since a parse error quotes the string. CONNINFO NULL: none is
 * known (an established connection's error). Returns BUF. */
#define PGCONN_MESSAGE_WITHHELD                                                                    \
	"libpq could not use the connection string; the message is not shown because it may "      \
	"quote the password"
const char *pgconn_error_safe(const PGconn *conn, const char *conninfo, char *buf, size_t len);

/* pgconn_error_safe() for any text MSG (the scrubbing alone, as one line), for tests and
 * for messages that do not come from a PGconn. Returns BUF. */
const char *pgconn_scrub(const char *msg, const char *conninfo, char *buf, size_t len);

/* Whether libpq's parser accepts CONNINFO (key=value pairs or a URI). Its error message is
 * discarded: it may quote the password. */
bool pgconn_conninfo_parses(const char *conninfo);
/* Whether CONNINFO (key=value pairs or a URI's user:PASSWORD@) sets a password: the commands
 * that take a conninfo on their command line (import --from, uninstall --to) refuse it, as
 * every local user can read it in /proc/PID/cmdline. */
bool pgconn_conninfo_has_password(const char *conninfo);
/* A failed result's error as one line into BUF: the primary message, then " DETAIL: ..."
 * and " HINT: ..." when the server sent them (no "ERROR:" prefix, no LINE/caret lines).
 * Returns BUF. */
const char *pgconn_result_error(const PGresult *res, char *buf, size_t len);

/* Whether R, CONN's answer to a blocking statement (the CLI commands'), failed. If so, ERR
 * gets "WHAT: message (SQLSTATE x)" (without "WHAT: " when WHAT is NULL; CONN's error when R
 * is NULL) and the result is -ENOTCONN when the connection is lost, -EACCES when a privilege
 * is missing (SQLSTATE 42501: a grant to make, not a database away), -EIO for any other
 * refusal; else 0. */
int pgconn_check(const PGconn *conn, const PGresult *r, const char *what, char *err, size_t errlen);
/* A blocking statement for the CLI commands (never on the daemon's loop): SQL with N
 * parameters P, or without parameters through the simple protocol, where SQL may hold
 * several statements (so never a statement an operator wrote: PQexecParams refuses a
 * second one). Returns 0 or pgconn_check()'s error; on success *OUT, when OUT is not
 * NULL, gets the result (PQclear it). */
int pgconn_exec(PGconn *conn, const char *sql, int n, const char *const *p, PGresult **out,
                const char *what, char *err, size_t errlen);

/* Server notices (RAISE NOTICE/WARNING, "relation exists, skipping") and libpq's own
 * warnings go through the logger, never raw to stderr: with level, the job name when one is
 * known, control characters escaped (log_escape), and rate-limited. libpq's default notice
 * receiver prints to stderr, and PQsetNoticeProcessor(conn, NULL, NULL) does NOT turn it off
 * (libpq ignores a NULL processor), so every connection needs pgconn_log_notices().
 *
 * The state belongs to the connection's owner and must outlive the PGconn. At most LIMIT
 * notices are logged per window; the rest are counted, and "N further server notices
 * suppressed" is logged when the window ends: at pgconn_notices_flush() (the end of a run)
 * or, with WINDOW_MS > 0, at the first notice after the window's time has passed. */
struct pgconn_notices {
	const char *job; /* log context: the job whose run has the connection; not owned */
	char label[96];  /* otherwise what the connection is ("listener on database app") */
	unsigned limit;
	int64_t window_ms; /* 0: the window ends only at pgconn_notices_flush() */
	unsigned logged;   /* in the current window */
	unsigned long suppressed;
	int64_t window_start_ms; /* monotonic */
	/* the server said it ends the session: a FATAL or PANIC that came outside a statement,
	 * as a notice (pg_terminate_backend, a shutdown, idle_session_timeout), before it closes
	 * the connection */
	bool fatal;
};
#define PGCONN_NOTICES_PER_RUN 20 /* a run's notices logged before suppression */
#define PGCONN_NOTICES_PER_MIN 20 /* a connection's outside runs, per minute */
void pgconn_notices_init(struct pgconn_notices *n, const char *label, unsigned limit,
                         int64_t window_ms);
/* Install N as CONN's notice receiver (PQsetNoticeReceiver); N's fatal is cleared. */
void pgconn_log_notices(PGconn *conn, struct pgconn_notices *n);
/* End the window: log how many notices were suppressed, if any, and start a new one. */
void pgconn_notices_flush(struct pgconn_notices *n);

/* Capped exponential backoff with jitter for the ATTEMPT-th consecutive failure (0 for the
 * first): a delay in [d/2, d] where d = min(MAX_MS, MIN_MS * 2^ATTEMPT), so reconnecting
 * clients do not stampede a database that just came back. */
int64_t pgconn_backoff_ms(unsigned attempt, int64_t min_ms, int64_t max_ms);

/* Write CONNINFO (key=value pairs or a postgresql:// URI) to OUT as libpq itself reads it:
 * the options it sets, as key=value pairs in libpq's order, values quoted where the conninfo
 * syntax needs it, and the password's value replaced by "********". A string libpq cannot
 * parse is not shown at all (a malformed string may hide a password that no parser can
 * find): OUT gets PGCONN_CONNINFO_NOT_SHOWN instead. Always NUL-terminates; a result longer
 * than OUTLEN is cut short, which never uncovers anything. */
#define PGCONN_CONNINFO_NOT_SHOWN "(connection string not shown: libpq cannot parse it)"
void pgconn_redact_conninfo(const char *conninfo, char *out, unsigned long outlen);

#endif
