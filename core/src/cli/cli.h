#ifndef PGCROND_CLI_H
#define PGCROND_CLI_H

/* The subcommands of the pgcrond binary. Each takes argc/argv starting at the subcommand's
 * name (argv[0] = "next") and returns a sysexits code. main.c only dispatches. */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sysexits.h> /* EX_OK 0, EX_USAGE 64, EX_DATAERR 65, EX_UNAVAILABLE 69, EX_CONFIG 78 */

int cli_run(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_next(int argc, char **argv);
int cli_list(int argc, char **argv);
int cli_install(int argc, char **argv);
int cli_trigger(int argc, char **argv);
int cli_history(int argc, char **argv);
int cli_graph(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_pause_resume(int argc, char **argv); /* pause or resume, as ARGV[0] says */
int cli_drop(int argc, char **argv);

/* The client side of the daemon's control socket (ctl.h), in cli_status.c: load CONF for its
 * state_dir, send RQ, wait up to TIMEOUT_MS (< 0: no limit) for the answer. Returns 0 with
 * *ANSWER (json_decref it); EX_TEMPFAIL on timeout (nothing printed); or a sysexits code
 * after a message prefixed "pgcrond CMD: " (69: no daemon answers; QUIET_ABSENT: no message
 * when there is no socket or nobody listens on it). */
struct ctl_request;
struct json_t;
int cli_ctl_call(const char *cmd, const char *conf, const struct ctl_request *rq, int timeout_ms,
                 bool quiet_absent, struct json_t **answer) __attribute__((warn_unused_result));
/* history --run ID (cli_history_run.c): one run whole, as key: value lines or JSON; and the
 * --json form of the history table (every column of R by name). Return exit codes. */
struct pg_result;
struct pg_conn; /* libpq's PGconn */
struct pgc_config;
int cli_history_show_run(const char *cmd, struct pg_conn *conn, const char *tz, const char *id,
                         bool json);
int cli_history_print_json(const struct pg_result *r);

/* The job ARG names as a user writes it (config_resolve_job's rule, read from the registry
 * in the history database on CONN): pgcrond's name of it into NAME (NAMELEN bytes), or ARG
 * itself when no configured job answers to it (a removed job's history, say). Returns 0, or
 * EX_USAGE after listing the candidates on stderr when jobs of several roles answer to it. */
int cli_resolve_job(const char *cmd, struct pg_conn *conn, const char *arg, char *name,
                    size_t namelen) __attribute__((warn_unused_result));

/* CFG's history database, connected (blocking) for CMD; NULL when none is configured, or
 * when it cannot be reached, after "pgcrond CMD: MISSING: why" on stderr (MISSING: what the
 * command goes without; NULL: nothing, the command needs it). */
struct pg_conn *cli_history_connect(const char *cmd, const struct pgc_config *cfg,
                                    const char *missing);

/* Print an {"ok":false} ANSWER's error; returns the exit code it calls for. */
int cli_ctl_error(const char *cmd, const struct json_t *answer);
int cli_import(int argc, char **argv);
int cli_uninstall(int argc, char **argv);

/* Load CONF for a command that must work while a job file is broken (config_load_partial):
 * errors in the main file are printed (prefixed "pgcrond CMD: " when they name no file) and
 * returned as an exit code (EX_CONFIG, EX_OSERR); otherwise 0 with *CFG, and *SKIPPED the
 * left-out job files as one "a.conf, b.conf" string (NULL: none; free it). SKIPPED NULL:
 * every file must load (config_load), and an error in any is printed and returned. */
int cli_load_config(const char *cmd, const char *conf, struct pgc_config **cfg, char **skipped)
    __attribute__((warn_unused_result));
/* The one warning line about SKIPPED (from cli_load_config; nothing when NULL) on stderr,
 * ending with CONSEQUENCE, what the command does about it. */
void cli_warn_skipped(const char *cmd, const char *conf, const char *skipped,
                      const char *consequence);
#define CLI_SKIP_DAEMON                                                                            \
	"the running daemon keeps the configuration it last loaded, which may differ from the "    \
	"files"

/* A table on stdout: the heading HEAD[0..COLS), then ROWS rows of COLS cells, CELL_SIZE bytes
 * each, at CELLS (a char [ROWS][COLS][CELL_SIZE] array). Each column is as wide as its widest
 * text in display columns (text_width), right-aligned where RIGHT has its bit (1u << column),
 * left-aligned otherwise; the last column is not padded (no trailing blanks). COLS is at most 32.
 */
void cli_print_table(const char *const *head, const char *cells, size_t rows, int cols,
                     size_t cell_size, unsigned right);

/* The next fire of job J after NOW (Unix seconds) as `pgcrond list` and `pgcrond history`
 * show it: UTC ISO 8601 ("2026-11-24T10:05:00Z"), "disabled", "at startup" (@reboot),
 * "unknown (calendar not read)" (its calendar, which only the daemon's last read knows),
 * or "-" (no schedule, or one that never fires). J's schedule in its own zone, else CFG's. */
struct conf_job;
void cli_next_fire(const struct pgc_config *cfg, const struct conf_job *j, int64_t now, char *out,
                   size_t outlen);
/* What list, status and next --job show after a job's schedule (docs/calendars.md): its spread,
 * ", spread 30s (+17s)", the window SPREAD_MS and the job's own offset OFFSET_S (none when
 * SPREAD_MS is 0), then its calendar, ", skip_dates holidays" (SKIP or ONLY its name; none
 * when both are NULL or ""). */
void cli_schedule_tail(int64_t spread_ms, int offset_s, const char *skip, const char *only,
                       char *out, size_t outlen);
/* CFG (the files' jobs) with the jobs made in SQL as the daemon loads them (sqljobs_merge_from,
 * so that their schedules, zones and spreads are the daemon's), read on CONN; NULL when they
 * cannot be read (CFG alone is then all there is). Its daemon's zone is not opened: give
 * cli_next_fire CFG. */
struct pgc_config *cli_with_sql_jobs(struct pg_conn *conn, const struct pgc_config *cfg);
/* *CFG with the dates of its table calendars, read now from their tables (config_set_table_dates);
 * one that cannot be read is said on stderr, and its jobs' fires are unknown (cli_next_fire). */
void cli_table_dates(const char *cmd, struct pgc_config **cfg);

/* S seconds for a person, as `pgcrond status` and `pgcrond history` show a time span:
 * "850 ms", "12.4 s", "4m10s", "2h05m", "3d04h"; "-" when negative. */
void cli_format_span(double s, char *out, size_t outlen);

/* The message for getopt_long's answer OPT, ':' (ARGV's last option lacks its value) or
 * '?' (unknown), on stderr; returns EX_USAGE. */
int cli_bad_option(const char *cmd, int opt, char **argv);

/* The options of every command that reads the configuration: -c/--config FILE (default
 * PGCROND_DEFAULT_CONF) and -h/--help, and MORE (NULL, or an array ended by a NULL name, at
 * most CLI_OPTIONS_MAX): --NAME, and -LETTER unless LETTER is 0, sets *FLAG, or, with VALUE
 * set, takes a value into *VALUE (the last one given counts). ARGV[0] is the command's name.
 * Positional arguments must number MIN_ARGS..MAX_ARGS; the first is argv[*FIRST_ARG]
 * (FIRST_ARG may be NULL). Returns 0; CLI_HELP after printing USAGE to stdout (the command
 * exits 0); or EX_USAGE after a message on stderr. */
#define CLI_HELP (-1)
/* A number macro as text, for a help text built at compile time ("default " CLI_STR(20)). */
#define CLI_STR(x) CLI_STR_(x)
#define CLI_STR_(x) #x
#define CLI_OPTIONS_MAX 8
struct cli_option {
	const char *name;
	char letter;
	bool *flag;
	const char **value;
};
int cli_parse_args(int argc, char **argv, const char *usage, const char **conf,
                   const struct cli_option *more, int min_args, int max_args, int *first_arg)
    __attribute__((warn_unused_result));

/* Shared by the commands that use the history database (cli_history.c): load CONF_PATH,
 * then connect (blocking) to its history database. Prints what went wrong prefixed with
 * "pgcrond CMD: " and returns a sysexits code: 0 with *CFG and *CONN set, EX_CONFIG (78)
 * for configuration problems, EX_UNAVAILABLE (69) if the database is unreachable. */
/* CONSEQUENCE NULL: every file must load (install, import); otherwise, for the commands that
 * must work while a job file is broken (history, trigger without a daemon), job files with
 * errors are left out, with one warning line on stderr that ends with CONSEQUENCE. */
int hist_cli_open(const char *cmd, const char *conf_path, const char *consequence,
                  struct pgc_config **cfg, struct pg_conn **conn)
    __attribute__((warn_unused_result));

#endif
