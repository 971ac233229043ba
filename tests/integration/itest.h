#ifndef PGCROND_ITEST_H
#define PGCROND_ITEST_H

/* Helpers for the integration suites: the sandbox PostgreSQL started by the ctest fixture
 * (scripts/pg-sandbox; $PGCROND_SANDBOX is its directory), fresh databases, temp dirs the
 * unprivileged sandbox user can read, and the pgcrond binary run as that user (the daemon
 * refuses root, and tests run as root in CI). Failures abort the current Check test. */

#include <check.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <sys/types.h>

/* A failed assertion's message that Check would refuse (over 3,000 bytes: Check's limit is
 * 4,096, and a longer one is replaced by "Message string too long", the reason lost) goes
 * whole to a file in the suite's scratch directory (the build's tmp-SUITE link), and the
 * message keeps its start and its end and names the file. Every ck_assert* goes through it. */
void itest_failed(const char *file, int line, const char *expr, const char *msg, ...)
    __attribute__((noreturn, format(printf, 4, 5)));
#undef ck_assert_msg
#define ck_assert_msg(expr, ...)                                                                   \
	((expr) ? _mark_point(__FILE__, __LINE__)                                                  \
	        : itest_failed(__FILE__, __LINE__, "Assertion '" #expr "' failed", ##__VA_ARGS__))
#undef ck_abort_msg
#define ck_abort_msg(...) itest_failed(__FILE__, __LINE__, "Failed", ##__VA_ARGS__)

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
#define itest_assert_scalar(c, sql, expected)                                                      \
	itest_assert_scalar_at(__FILE__, __LINE__, (c), (sql), (expected))
void itest_assert_scalar_at(const char *file, int line, PGconn *c, const char *sql,
                            const char *expected);
/* Poll SQL (returning one boolean) every 50 ms until true or TIMEOUT_S; returns the last
 * value. Polling is fine in a test; the daemon itself never polls. */
bool itest_wait_sql(PGconn *c, const char *sql, double timeout_s);
/* Poll SQL (returning one value) every 50 ms until it is not NULL or TIMEOUT_S; returns it
 * (malloc'd) or NULL. One statement both finds and reads what changes on its own (a run in
 * flight), which a wait and a second read could see end between them. */
char *itest_wait_value(PGconn *c, const char *sql, double timeout_s);

/* Call COND(ARG) every 50 ms until it returns true or TIMEOUT_S passed; returns its last
 * value. For conditions neither SQL nor a log line shows (a file, a count read some other
 * way); the deadline only bounds a failure, success returns at once. */
bool itest_wait_until(bool (*cond)(void *), void *arg, double timeout_s);

/* The unprivileged user the sandbox and the daemon run as. */
const char *itest_user(void);
/* A new temp dir, mode 0755, owned by root (so plugin-directory checks pass) but whose
 * "state" subdir is owned by itest_user(). Returns the path (malloc'd). */
char *itest_tmpdir(const char *tag);
void itest_write_file(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *itest_read_file(const char *path); /* malloc'd, "" if missing */
/* Its last 2,000 bytes at most (a Check message stays whole), malloc'd. */
char *itest_tail(const char *path);
/* How many times NEEDLE occurs in the file at PATH (0 if it is missing). */
int itest_count_in_file(const char *path, const char *needle);
/* The size of the file at PATH in bytes, 0 if it is missing. */
long itest_file_size(const char *path);
/* The sandbox server's log ($PGCROND_SANDBOX/server.log), malloc'd. */
char *itest_server_log(void);
/* How many statements of database DB whose text has NEEDLE the server logged from byte FROM of
 * its log on (log_statement = 'all' for DB: ALTER DATABASE ... SET, before the sessions). */
int itest_server_statements(long from, const char *db, const char *needle);
/* The fires of the jobs whose names are LIKE JOBS that have more than one row in the history,
 * each with its rows ("job instant: instance status message | ...", "; " between fires),
 * malloc'd; NULL if there is none. Only instants from SINCE on (a timestamptz literal; NULL:
 * all). */
char *itest_fires_twice(PGconn *c, const char *jobs, const char *since);
/* Headless chromium (Debian's, which scripts/setup installs) on URL with ARGS ("--dump-dom",
 * "--screenshot=FILE", ...) in a 1280x1000 window, its own profile under DIR; its stdout
 * (malloc'd). Fails the test if chromium is missing or fails. */
char *itest_chromium(const char *dir, const char *args, const char *url);
/* A relay on 127.0.0.1:*PORT (0: any; set to the one taken, so that a relay stopped can be
 * started again on the same port) in front of the unix socket of the server CI names, in a
 * process of its own (itest_relay.c): itest_relay_stop() cuts every connection through it;
 * `kill(pid, SIGUSR1)` freezes those it holds, SIGUSR2 also leaves new ones unanswered. */
pid_t itest_relay_start(const char *ci, int *port);

/* ---- local HTTPS servers (HTTP jobs, pg_net) -------------------------------------------- */
/* In DIR: a CA (ca.pem), a server certificate it signs for localhost and 127.0.0.1 (srv.pem,
 * srv.key), and a self-signed one (self.pem, self.key). */
void itest_make_certs(const char *dir);
/* Run the Python SCRIPT (its text) as `python3 DIR/server.py DIR`; it writes DIR/ports.txt
 * (through a rename) once it listens. Returns its pid; *PORTS gets that file's text
 * (malloc'd). */
pid_t itest_script_start(const char *dir, const char *script, char **ports);
void itest_relay_stop(pid_t pid);
void itest_chown_user(const char *path);

/* Copy FROM (a built plugin, say) to TO and give it MODE; fails the test if FROM is missing. */
void itest_copy_file(const char *from, const char *to, mode_t mode);

/* Start "pgcrond run -c CONF" as itest_user(), stdout+stderr appended to LOG. A daemon not
 * stopped with itest_daemon_stop (a failed assertion ends the test first) is killed when
 * the test process exits. */
pid_t itest_daemon_start(const char *conf, const char *log);
/* ... calling IN_CHILD(ARG) in the child before it drops root and execs the daemon (a
 * namespace, a bind mount); on failure it writes why to the log and _exit()s. */
pid_t itest_daemon_start_with(const char *conf, const char *log, void (*in_child)(void *),
                              void *arg);
/* Send SIG (none if 0), wait up to TIMEOUT_S for exit; returns the exit status as from
 * waitpid's WEXITSTATUS, 128+signal if killed by a signal, or -1 after SIGKILL on timeout. */
int itest_daemon_stop(pid_t pid, int sig, double timeout_s);
/* Wait up to TIMEOUT_S for PID to exit by itself (no signal sent), as itest_daemon_stop(). */
int itest_daemon_wait_exit(pid_t pid, double timeout_s);
/* Wait until LOG contains NEEDLE; true if it did within TIMEOUT_S. */
bool itest_wait_log(const char *log, const char *needle, double timeout_s);

/* Run "pgcrond ARGS..." (NULL-terminated) as itest_user(); returns its combined output
 * (malloc'd) and sets *STATUS to the exit code. */
char *itest_cli(int *status, const char *arg, ...) __attribute__((sentinel));

double itest_now(void); /* monotonic seconds */
void itest_sleep(double seconds);

/* A six-field schedule firing once a minute, at a second more than AHEAD seconds (at most
 * AHEAD + 1) from now. */
void itest_schedule_soon(char *out, size_t outlen, int ahead);
/* ... and the instant it names (seconds since the epoch). */
time_t itest_schedule_soon_at(char *out, size_t outlen, int ahead);
/* The stamp (seconds since the epoch, UTC, with milliseconds) of the line holding the last
 * NEEDLE in LOG, a daemon's log; -1 if there is none. For a bound on the daemon's own timing
 * that the test's polling, slowed on a loaded machine, would blur. */
double itest_log_stamp(const char *log, const char *needle);
/* Whether the daemon logging to LOG began its last reload (its "SIGHUP: reloading" line is
 * stamped) at or after AT: a fire at AT that the reload was to bring passed before the daemon
 * had the job, so it never comes (a loaded machine's daemon took seconds to take up a
 * SIGHUP). A reload that began before AT may still have been applied after it: that fire is
 * left to the test to wait for, as before. */
bool itest_reload_began_late(const char *log, time_t at);
/* A fire AHEAD seconds ahead (instant AT) written and reloaded: 0 if LOG's reload began in
 * time, else the AHEAD to write it again with (doubled; the test fails past 16 s). The loop:
 *   for (int ahead = 2; ahead;) {
 *       time_t at = itest_schedule_soon_at(when, sizeof(when), ahead);
 *       ...write the job with WHEN...; itest_env_reload(&e);
 *       ahead = itest_soon_again(e.log, at, ahead);
 *   }
 * The wait is for the daemon, not for a moment: a fast machine goes round once. */
int itest_soon_again(const char *log, time_t at, int ahead);

/* ---- a second server --------------------------------------------------------------------
 * A sandbox PostgreSQL of the test's own (scripts/pg-sandbox) in DIR/pg2, for a database
 * that the test takes away and brings back; stopped when the test process exits. One per
 * process. Returns its conninfo (malloc'd). */
char *itest_sandbox2_start(const char *dir);
/* ... run from PGBIN, a server's bin directory (NULL: itest_pgbin()'s) */
char *itest_sandbox2_start_with(const char *dir, const char *pgbin);
/* The bin directory of the server the tests run against: $PGSANDBOX_PGBIN (scripts/test
 * --servers), else Debian's PostgreSQL 15 (ITEST_DEBIAN_PGBIN). */
#define ITEST_DEBIAN_PGBIN "/usr/lib/postgresql/15/bin"
const char *itest_pgbin(void);
/* Its major version: $PGCROND_TEST_SERVER (scripts/test --servers), else 15. */
int itest_server_major(void);
/* Whether it compiles statements with JIT. Outside a test case too (in main: no Check
 * assertion), false when it cannot be asked. */
bool itest_jit_available(void);
/* A database DB made on the second server whose conninfo (any database's) is CI; returns
 * DB's conninfo (malloc'd). */
char *itest_sandbox2_db(const char *ci, const char *db);
/* The second server (Debian's PostgreSQL 15, which pg_cron's library is built for) loading
 * the real pg_cron for database DB, which is made there with the extension in it; returns
 * DB's conninfo (malloc'd). */
char *itest_pgcron_start(const char *dir, const char *db);
/* Stop the second server keeping its data ("pause") or start it again ("resume"). */
void itest_sandbox2(const char *what);

/* ---- a daemon environment -------------------------------------------------------------
 * A fresh database, a temp dir holding pgcrond.conf, conf.d/ and plugins/, and the daemon
 * run on them as itest_user(). The main file names the database "app" (pool 4), which also
 * holds the history; plugin_dir is DIR/plugins, conf_dir "conf.d", timezone UTC. */
struct itest_env {
	char *dir;  /* the temp dir */
	char *conf; /* DIR/pgcrond.conf */
	char *log;  /* DIR/daemon.log: the daemon's output */
	char *ci;   /* conninfo of the database */
	PGconn *db; /* the test's connection to it */
	pid_t pid;  /* the running daemon, 0 if none */
};

/* The temp dir (tag TAG), the database DBNAME (dropped and created) and pgcrond.conf; no
 * pgcrond schema yet. */
void itest_env_init(struct itest_env *e, const char *tag, const char *dbname);
/* itest_env_init, then the pgcrond schema from the source tree, usable by every role. */
void itest_env_setup(struct itest_env *e, const char *tag, const char *dbname);
/* Rewrite pgcrond.conf; FMT (printf, may be NULL) is appended verbatim (alerts ...). */
void itest_env_main(const struct itest_env *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* E's main configuration with a second database, NAME at CONNINFO, beside "app" (which holds
 * the history). */
void itest_env_main_with_db(const struct itest_env *e, const char *name, const char *conninfo);
/* Write conf.d/FILE from FMT (printf). */
void itest_env_job(const struct itest_env *e, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copy the shared object FROM into the plugin dir as NAME.so. */
void itest_env_plugin(const struct itest_env *e, const char *from, const char *name);
/* DIR/NAME, malloc'd. */
char *itest_env_path(const struct itest_env *e, const char *name);
/* Start the daemon and wait until it logs "started:". */
void itest_env_start(struct itest_env *e);
/* Stop it as itest_daemon_stop does; returns its exit status. */
int itest_env_stop(struct itest_env *e, int sig, double timeout_s);
/* SIGHUP the daemon and wait until it logs that the reload is applied. A job whose fire is
 * a few seconds ahead (itest_schedule_soon) is written and reloaded once the daemon runs: a
 * loaded machine's daemon start took longer than 2 s, and the fire passed before it. */
void itest_env_reload(struct itest_env *e);
/* Kill a daemon still running, close the connection, free E's strings. */
void itest_env_teardown(struct itest_env *e);
/* itest_wait_sql and itest_scalar_ll on E's database, with the SQL from FMT (printf). */
bool itest_env_wait(struct itest_env *e, double timeout_s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
long long itest_env_count(struct itest_env *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Whether the daemon's listener on E's database has its LISTENs in place within TIMEOUT_S:
 * it logs the channels it listens on once their LISTENs are answered (notify.c), the manual
 * triggers' first (itest_log_listening). */
/* N jobs PREFIX0, PREFIX1 ... in conf.d/FILE, each every second on database "app", running
 * COMMAND with its "%s" replaced by the job's name. */
void itest_env_each_second(const struct itest_env *e, const char *file, int n, const char *prefix,
                           const char *command);
/* `pgcrond status --json [JOB]` (JOB NULL: every job), parsed; fails the test unless it exits
 * 0. */
json_t *itest_env_status(struct itest_env *e, const char *job);
/* The daemon's /metrics page (its config has an http listener on port 0: the port is read
 * from its log), malloc'd. */
char *itest_env_metrics(struct itest_env *e);
/* ... any PATH of it ("/health"), its status code in *CODE (if not NULL): its body (an
 * error's too). */
char *itest_env_http(struct itest_env *e, const char *path, int *code);
bool itest_env_listening(struct itest_env *e, double timeout_s);
/* Whether LOG has, within TIMEOUT_S, a listener's line saying it listens on CHANNEL. */
bool itest_log_listening(const char *log, const char *channel, double timeout_s);
/* SQL: the daemons' own sessions on the history database (ownsess.h: application_name
 * "pgcrond", as the pools' connections are), told from the pools' by the instance rows that
 * record them (cluster_lock.c, sql_lock). */
#define ITEST_OWN_SESSIONS "pid IN (SELECT backend_pid FROM pgcrond.instance)"
/* Terminate the daemon's own session as soon as it waits (within 20 s) for a lock in a
 * statement whose text holds WHAT (a lock another session holds); then, unless THEN is
 * NULL, wait (30 s) for the log line THEN (the statement failing on the next session). */
void itest_env_kill_own_waiting(struct itest_env *e, const char *what, const char *then);
/* Another host's pgcrond.conf: E's with a state_dir holding no control socket, so the CLI
 * goes through the database. Returns its path (malloc'd). */
char *itest_env_other_host(const struct itest_env *e);

/* One of several daemons sharing E's database (several instances): its own dir, state_dir
 * and log, instance NAME, JOBS as its conf.d/10-jobs.conf, pool 4, history in "app". */
struct itest_inst {
	char name[32];
	char *dir, *conf, *log;
	pid_t pid;
	int starts; /* "started:" lines in its log before its last start */
};
/* An instance NAME of E's database with JOBS as its conf.d; with ITEST_DEBUG set in the
 * environment it logs at debug level (a case looked into by hand). */
void itest_inst_init(struct itest_inst *in, const struct itest_env *e, const char *name,
                     const char *jobs);
void itest_inst_start(struct itest_inst *in);
/* Whether the daemon itest_inst_start started last has said "started:" within TIMEOUT_S (an
 * earlier start's line in the same log does not count). */
bool itest_inst_wait_started(const struct itest_inst *in, double timeout_s);
/* Start it and wait until it has started and its heartbeat row says it is live (it holds
 * its name; it listens for the others once its coordination session is idle after the
 * LISTEN). */
void itest_inst_up(struct itest_env *e, struct itest_inst *in);
/* Stop it with SIG (waits up to 30 s); its exit status as itest_daemon_stop's. */
int itest_inst_stop(struct itest_inst *in, int sig);
/* Make JOBS its conf.d/10-jobs.conf, reload it and wait until the reload is applied (as
 * itest_env_reload). */
void itest_inst_reload(struct itest_inst *in, const char *jobs);
/* itest_soon_again for a fire that reloads of the N instances IN were to bring: again only if
 * every one of them began its reload too late (one that had the fire runs it: a fire written
 * again would be a second run). A test that needs each of them to have it fails the usual
 * way when only some did, which is rare: an instance that runs takes up a SIGHUP in
 * milliseconds. */
int itest_insts_soon_again(struct itest_inst *const *in, int n, time_t at, int ahead);
/* Kill it if it runs, and free. */
void itest_inst_free(struct itest_inst *in);

/* A suite whose cases add up to minutes is run by ctest as N shares side by side, one per
 * sandbox lane (tests/integration/CMakeLists.txt): ITEST_SHARD=K/N in the environment makes
 * this process run the Kth of every N of its cases, counted in the order they were added.
 * Without it, every case runs. CK_RUN_CASE still picks one case from all of them. */
void itest_add_tcase(Suite *s, TCase *tc);
/* srunner_run_all(SR, CK_ENV) over this process's share; the number of failed tests. */
int itest_run_share(SRunner *sr);

#endif
