#ifndef PGCROND_CONFIG_H
#define PGCROND_CONFIG_H

/* The configuration: pgcrond.conf plus every conf.d/ *.conf (sorted by name), read with
 * libconfig into plain structs. Pure logic: no libevent, no libpq. Every problem is reported
 * as "FILE:LINE: message" (what is wrong and what to do) into a diag list, all of them in one
 * pass. A loaded config is immutable; a reload builds a new one beside the old. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cron.h"
#include "diag.h"

/* ---- the config ------------------------------------------------------------------- */

/* The enums a job holds are packed, one byte each: a configuration holds 100,000 jobs. */
enum __attribute__((packed)) overlap_policy { OVERLAP_SKIP, OVERLAP_QUEUE, OVERLAP_REPLACE };
/* Each policy's name as the overlap key takes it ("skip", "queue", "replace"; NULL after). */
extern const char *const config_overlap_names[];
enum __attribute__((packed)) catchup_policy { CATCHUP_ONCE, CATCHUP_SKIP };
/* which runs get a history row: all, or failures only (successes are counted) */
enum __attribute__((packed)) history_policy { HISTORY_ALL, HISTORY_FAILURES };
enum __attribute__((packed)) retry_on { RETRY_ON_TRANSIENT, RETRY_ON_ANY };

/* What a job runs. Set where the job is read (config_job_parse, for job files and jobs made in
 * SQL alike) and never guessed from which fields are set: what each layer needs of a kind is
 * in job_kind.h, and every switch over kinds has no default (-Wswitch-enum), so a kind added
 * here fails the build in each place that must learn it. */
enum __attribute__((packed)) job_kind {
	JOB_KIND_SQL,    /* command = "SQL": run on a pooled connection, like pg_cron's */
	JOB_KIND_PLUGIN, /* plugin = "NAME": a view plugin's statements */
	JOB_KIND_HTTP,   /* http = { ... }: a request made by pgcrond's own HTTP client */
};
#define JOB_KIND_COUNT 3

/* What made a run: its name (run_trigger_names, job_kind.h) is the text the history's trigger
 * column, the log, the status and pgcrond.pending_work.kind hold. */
enum run_trigger {
	TRIGGER_SCHEDULE,  /* an instant of its schedule */
	TRIGGER_CATCHUP,   /* the latest of the fires it missed (catchup = once) */
	TRIGGER_MANUAL,    /* an operator's (pgcrond trigger, the status page) */
	TRIGGER_UPSTREAM,  /* its upstream jobs' runs */
	TRIGGER_RETRY,     /* a failed run's next attempt */
	TRIGGER_NOTIFY,    /* notifications on its channel */
	TRIGGER_REBOOT,    /* @reboot: the daemon's start */
	TRIGGER_FRESHNESS, /* its sources changed */
};
#define TRIGGER_COUNT 8

struct conf_database {
	char *name;              /* key under databases = { ... } */
	char *conninfo;          /* libpq conninfo; never logged without pgconn_redact_conninfo() */
	int pool;                /* connections at most, default 4 */
	int64_t idle_timeout_ms; /* an unused pooled connection's life, all but one (5 min) */
	char *file;
	int line;
};

/* calendars = { NAME = { ics = "PATH"; }; } or { database = "DB"; table = "schema.table"; }:
 * dates a job skips or keeps to (docs/calendars.md). */
struct conf_calendar {
	char *name;
	char *ics; /* an .ics file or a directory of them, as written */
	/* a table's: its database (a databases key) and "schema.table" (config_valid_source) */
	char *database, *table;
	/* an .ics calendar's, read at load (cron_dates_make; NULL if unreadable); a table's as
	 * last read (config_set_table_dates; NULL: not yet, and its jobs do not fire) */
	const struct cron_dates *dates;
	char *file;
	int line, database_line; /* its group's line; its database key's */
};

/* A plugin's own setting in a job, kept as text for the plugin to interpret. */
struct conf_setting {
	char *key;
	char *value; /* strings as-is, numbers and booleans in their libconfig spelling */
	int line;
};

/* http = { ... } in a job file: the request an HTTP job makes (docs/jobs.md). */
struct conf_http_call {
	char *url;      /* http:// or https:// */
	char *method;   /* upper case: GET (the default), or POST when there is a body */
	char **headers; /* "Name: value" lines; may carry credentials: never logged nor recorded */
	size_t n_headers;
	char *body;  /* NULL: none */
	int *expect; /* the status codes that are a success; none: any 2xx */
	size_t n_expect;
	int line; /* of http = { } */
	/* "METHOD scheme://host[:port]" (no user info, path or query: httpc_url_shown), what
	 * lists and its runs' history rows show of it */
	char *shown;
};

/* ---- a job's keys that most jobs leave at their defaults (struct conf_job_more) ---- */

/* A failed run's retries (conf_job.retries: how many). */
struct conf_job_retry {
	int64_t delay_ms;     /* retry_delay, default 30s */
	int64_t max_delay_ms; /* retry_max_delay, default 10m */
	double backoff;       /* retry_backoff: the factor, default 2.0 */
	enum retry_on on;     /* retry_on, default transient */
	bool on_timeout;      /* retry_on_timeout, default false */
};

/* LISTEN/NOTIFY triggers. */
struct conf_job_notify {
	char *listen;         /* the channel, or NULL */
	int64_t debounce_ms;  /* debounce, default 5s */
	int64_t max_delay_ms; /* max_delay, default 60s */
};

/* Alerts beside a failure's. */
struct conf_job_alerts {
	int64_t max_staleness_ms; /* 0 = no staleness alert */
	int64_t warn_duration_ms; /* 0 = none */
	int after;                /* alert_after: consecutive failures, default 1 */
};

/* Freshness (docs/freshness.md). */
struct conf_job_fresh {
	/* freshness: the promise that the job's relation reflects every change to its sources
	 * older than this; 0 = none */
	int64_t sla_ms;
	/* the tables it reads, schema-qualified ("public.submissions"), beside a plugin's own
	 * (struct pgc_plugin.sources); freshness watches them */
	char **sources;
	uint32_t n_sources; /* (the type of conf_job.n_after: both are read by one key type) */
};

/* The zone and the calendar the schedule is read in (docs/calendars.md). */
struct conf_job_cal {
	char *timezone; /* the job's own zone for its schedule; NULL: the daemon's */
	cron_tz *tz;    /* TIMEZONE opened; NULL: the daemon's */
	/* a calendar's name: the schedule's fires on its dates do not exist (skip_dates), or only
	 * those do (only_dates); conf_job.cron.dates is its dates (config_calendar.c) */
	char *skip_dates, *only_dates;
	int64_t spread_ms; /* fires moved within this window (conf_job.cron.offset); 0 = none */
};

/* A job made in SQL (config_sql.h); all NULL and 0 for file jobs. */
struct conf_job_sql {
	char *username; /* the owner, whom the run logs in as */
	char *database; /* the database's real name (conf_job.database is the pool's key) */
	/* conf_job.name is pgcrond's name for a SQL job (docs/sql-api.md, "Job names"); CRON_NAME
	 * is the one given to cron.schedule, as written: any text of up to 63 bytes, unique per
	 * owner only (NULL: unnamed); print it escaped */
	char *cron_name;
	int64_t jobid; /* cron.job's jobid */
};

/* Off struct conf_job, which 100,000 jobs hold 100,000 of, by concern: a job's `more` points
 * at config_job_more_defaults, shared by every job that sets none of these keys, and at a
 * copy of its own once it sets one (config_job_more_own), freed and copied with the job. */
struct conf_job_more {
	struct conf_job_retry retry;
	struct conf_job_notify notify;
	struct conf_job_alerts alerts;
	struct conf_job_fresh fresh;
	struct conf_job_cal cal;
	struct conf_job_sql sql;
	/* the plugin's own settings: every key not listed in config_job_keys, in file order */
	struct conf_setting *settings;
	size_t n_settings;
};

/* The defaults pgcrond.conf(5) lists, which a job without a conf_job_more of its own points
 * at. */
extern const struct conf_job_more config_job_more_defaults;

/* (Fields grouped by size so that the struct has no holes: 100,000 jobs.) */
struct conf_job {
	char *name;
	char *plugin;                /* exactly one of plugin and command is set */
	char *command;               /* plain SQL job, like pg_cron's */
	struct conf_http_call *http; /* an HTTP job (exactly one of plugin, command, http) */
	char *database; /* a key of databases; default: the history database (the config's string:
	                 * config_own_database) */
	char *schedule; /* NULL: runs only after its upstreams / on notifications / trigger */
	cron_expr cron; /* compiled schedule, valid when schedule != NULL */
	int64_t timeout_ms; /* 0 = none */
	/* the rest of its keys: config_job_more_defaults, or its own (never NULL) */
	const struct conf_job_more *more;
	const char *fenced; /* its runs' class if fenced (config_fenced), a static string */
	char *file;         /* where the job = { } group starts */
	char **after;       /* upstream job names */
	uint32_t n_after;   /* (an array's length in the file, an int) */
	int line;
	/* where these keys are, for messages (on every job that has them, not in more: most
	 * jobs have a schedule); 0 if not there */
	int plugin_line;             /* plugin = "...", for the plugin validator's */
	int after_line;              /* after = [ ... ], for the DAG's */
	int schedule_line;           /* schedule = "...", for pgcrond check's warnings */
	int retries;                 /* default 0 (the rest of retrying: more->retry) */
	enum overlap_policy overlap; /* default skip */
	enum job_kind kind;          /* which of plugin, command and http is set */
	enum catchup_policy catchup; /* default once */
	enum history_policy history; /* default all */
	bool enabled;                /* default true */
	/* name, plugin, command and schedule are in the config's string blocks
	 * (config_pack_strs), not each its own */
	bool packed;
};

struct conf_alert_sink {
	char *sink;     /* "log" | "notify" | "webhook" | "exec" */
	char *database; /* notify */
	char *channel;  /* notify */
	char *url;      /* webhook */
	char *command;  /* exec */
	int64_t timeout_ms;
	char *file;
	int line;
};

/* http = { ... }: the HTTP listener (http.c); listen NULL when there is none. */
/* Bounds on what a role may hand the daemon, so that no role can exhaust it: a command's
 * size, enforced by cron.schedule and pgcrond.schedule (pgcrond install writes the values into
 * pgcrond.setting), by `pgcrond check` for file jobs and when the daemon reads SQL jobs; and
 * the number of SQL jobs of one role. */
#define CONFIG_MAX_COMMAND_SIZE (1024 * 1024)
#define CONFIG_MAX_JOBS_PER_ROLE 1000
/* cluster_dead_after's floor, in seconds: an instance beats every quarter of it (at most 5 s),
 * so it is found dead only after 4 heartbeats went missing; below 5 s one statement queued
 * before a heartbeat (a burst of claims, a part of the jobs) or one reconnect could pass for
 * a death, and a live instance's runs would be ended and retried. */
#define CONFIG_DEAD_AFTER_MIN_S 5

struct conf_http {
	char *listen;        /* "ADDRESS:PORT" as written */
	char *host;          /* its numeric address */
	int port;            /* 0: any free port (the daemon logs which) */
	bool allow_remote;   /* a non-loopback address was asked for explicitly */
	char *token_file;    /* absolute, or relative to the main file's directory */
	char *token;         /* the token read from it; never logged */
	char *tls_cert_file; /* TLS: its certificate chain and key (PEM), absolute; NULL: none */
	char *tls_key_file;
	int max_connections; /* open connections at most; 0: the default (http.c) */
	int64_t timeout_ms;  /* a request's read/write and a connection's idle time; 0: default */
	char *file;          /* where the group is */
	int line, token_line;
};

/* http_client = { ... }: the bounds of the HTTP client (net/httpc.h) that HTTP jobs and
 * webhook alerts use; every field has its default after config_load. */
struct conf_http_client {
	char *ca_file;              /* absolute (relative ones are made so); NULL: the system's */
	int max_concurrent;         /* default 16 */
	int64_t timeout_ms;         /* default 30s: a request whose job or sink sets none */
	int64_t connect_timeout_ms; /* default 10s */
	int64_t max_request;        /* bytes, default 1 MB */
	int64_t max_response;       /* bytes, default 1 MB */
	/* bytes of a pg_net response body kept (daemon/pgnet.h), default and at most
	 * CONFIG_PG_NET_MAX_BYTES */
	int64_t pg_net_max_response;
	int max_redirects; /* default 5; 0: none followed */
	int line;          /* of the group; 0 if absent */
};
#define CONFIG_HTTP_MAX_BYTES (256LL * 1024 * 1024)
/* A pg_net response goes to the database as a string in a jsonb batch (pg/jbatch.h), and
 * jsonb holds a string of 256 MB at most; a body's bytes may triple on the way (a byte that
 * is not UTF-8 becomes U+FFFD), so a pg_net body is kept up to 64 MB. */
#define CONFIG_PG_NET_MAX_BYTES (64LL * 1024 * 1024)

/* A job file as a load read it: its text's identity and where its jobs are in the jobs array.
 * A reload parses again only the files whose text changed (config_load_again). */
struct conf_file {
	const char *path; /* the config's one copy (config_own_str) */
	size_t size;      /* of its text, in bytes */
	uint64_t hash;    /* of its text (config_text_hash) */
	size_t first, n;  /* its jobs: jobs[first .. first + n) */
	bool reusable;    /* its jobs depend on its text alone: no @include, no NUL byte */
	bool taken;       /* its jobs were copied from the configuration before, not parsed */
};

/* Every string or array a config points to is its own: config_free frees it, and clone() in
 * config_sql.c copies it (a field added here must be added there too). */
struct pgc_config {
	char *file;       /* the main file */
	char *timezone;   /* default "UTC" */
	char *plugin_dir; /* default PGCROND_DEFAULT_PLUGIN_DIR */
	char *conf_dir;   /* default "conf.d" beside the main file */
	char *state_dir;  /* default "/var/lib/pgcrond" */
	char *log_level;  /* default "info" */
	struct conf_database *databases;
	size_t n_databases;
	char *history_database;    /* history.database; default: the only database if just one */
	int64_t history_retain_ms; /* history.retain, default 30d */
	int history_backlog;       /* history.backlog: records waiting that hold runs back */
	int max_running;           /* default 32 */
	int max_command_size;      /* bytes a job's command may have; 0: CONFIG_MAX_COMMAND_SIZE */
	int max_jobs_per_role;     /* jobs made in SQL per role; 0: CONFIG_MAX_JOBS_PER_ROLE */
	int64_t shutdown_grace_ms; /* default 30s */
	struct conf_alert_sink *alerts;
	size_t n_alerts;
	int64_t alert_repeat_ms; /* default 1h */
	/* a connect, a session reset, an idle connection's check: each answered within this, or
	 * the connection is replaced; default 30s */
	int64_t connection_check_ms;
	/* how long this instance may go without a heartbeat before another declares it dead
	 * (cluster.h); at least CONFIG_DEAD_AFTER_MIN_S */
	int64_t cluster_dead_after_ms;
	/* this daemon's name among instances sharing a history database; NULL: the host
	 * name (cluster.h) */
	char *instance;
	struct conf_http http;
	struct conf_http_client http_client;
	struct conf_calendar *calendars;
	size_t n_calendars;
	struct conf_job *jobs;
	size_t n_jobs;
	cron_tz *tz; /* the opened timezone, owned by the config (freed by config_free) */
	/* jobs by name, for config_job() (built by config_load; NULL: searched in order, as in
	 * a config put together by hand) */
	struct config_job_index *job_index;
	/* the paths of the job files and the names of unknown databases, one copy each:
	 * conf_job.file and conf_job.database point here or to a conf_database's name
	 * (config_own_str; 100,000 jobs in 100 files would keep 100,000 copies of each) */
	char **job_strs;
	size_t n_job_strs;
	/* the job files read, in order (a configuration made other than by config_load has
	 * none), and the main file's text (0 and 0: its jobs are not to be taken again, the main
	 * file had an @include) */
	struct conf_file *job_files;
	size_t n_job_files;
	/* the blocks the jobs' packed strings are in (config_pack_strs): one malloc'd string of
	 * three takes 32 bytes, 100,000 jobs' name, command and schedule 10 MB */
	char **str_blocks;
	size_t n_str_blocks;
	char *str_next; /* the free end of the last block */
	size_t str_left;
	size_t main_size;
	uint64_t main_hash;
	/* owners beyond the first (config_ref): the configuration in force is the files' one
	 * itself when no job is made in SQL, rather than a copy of 100,000 jobs */
	unsigned extra_refs;
};

/* Load PATH and its conf.d. Returns 0 and *OUT on success; on any problem returns -EINVAL,
 * with every problem found in DL (one pass, as many as can be found), and *OUT NULL.
 * Checks: syntax, unknown keys, types, durations, schedules, duplicate job names, unknown
 * databases, plugin/command exclusivity, unknown "after" names. It does not load plugins:
 * plugin names and plugin settings are checked by the caller against the loaded plugins. */
int config_load(const char *path, struct pgc_config **out, struct diag_list *dl)
    __attribute__((warn_unused_result));
/* Like config_load, for a reload: the job files whose text is the one PREV read (PREV: a
 * configuration config_load or this made from PATH, whose main file's text has not changed
 * either) are not parsed again, their jobs are copied from PREV. Their identity is their
 * text's size and hash, not their times: an edit within the same second that keeps the size
 * is seen. PREV may be NULL. */
int config_load_again(const char *path, const struct pgc_config *prev, struct pgc_config **out,
                      struct diag_list *dl) __attribute__((warn_unused_result));
/* Whether B's job files are A's, with the same texts, and its main file's text A's: the same
 * file jobs, at the same lines (A or B NULL: false). */
bool config_same_files(const struct pgc_config *a, const struct pgc_config *b);
/* Like config_load, for the commands that must work while a job file is broken (status,
 * pause, resume, trigger, history, list, graph): a job file with errors is left out, with
 * the files whose jobs depend on its jobs, and the rest loads. Returns 0 with *OUT and the
 * left-out files in *SKIPPED (N_SKIPPED of them; free each and the array); or, when the main
 * file or conf_dir itself has errors, what config_load returns, with those errors in DL. */
int config_load_partial(const char *path, struct pgc_config **out, struct diag_list *dl,
                        char ***skipped, size_t *n_skipped) __attribute__((warn_unused_result));
/* Drops *CFG (one owner of it: freed with the last) and sets it to NULL. */
void config_free(struct pgc_config **cfg);
/* STR (a job's file) as CFG's one copy of it, made at the first use; NULL on ENOMEM. */
char *config_own_str(struct pgc_config *cfg, const char *str);
/* NAME as a job's database in CFG: the name of CFG's database NAME, or CFG's one copy of an
 * unknown name (config_own_str); NULL on ENOMEM. */
char *config_own_database(struct pgc_config *cfg, const char *name);
/* CFG with one more owner (each frees it with config_free). On the event loop only. */
struct pgc_config *config_ref(const struct pgc_config *cfg);

/* An instance name: 1 to 63 of [A-Za-z0-9._-]. */
bool config_instance_name_ok(const char *name);
/* The database NAME of CFG; NULL if there is none (or NAME is NULL: no history database). */
const struct conf_database *config_database(const struct pgc_config *cfg, const char *name);
const struct conf_job *config_job(const struct pgc_config *cfg, const char *name);
/* The calendar NAME of CFG; NULL if there is none. */
const struct conf_calendar *config_calendar(const struct pgc_config *cfg, const char *name);
/* JOB's plugin setting KEY, or NULL (JOB or KEY NULL: none). */
const struct conf_setting *config_job_setting(const struct conf_job *job, const char *key);
/* (Re)build CFG's index of jobs by name, after its jobs array was put together or changed
 * other than by config_load (config_sql.c's copy). */
void config_index_jobs(struct pgc_config *cfg);

/* HOST (numeric) is 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104 (IPv4 loopback over IPv6). */
bool config_http_loopback(const char *host);

/* The candidate closest to WORD so far: at most 2 edits and fewer than WORD's length.
 * Start with {word, NULL, 99}, offer candidates, read best (NULL: nothing close). */
struct suggester {
	const char *word;
	const char *best;
	int best_d;
};

void config_suggest(struct suggester *sg, const char *cand);
/* Offer every standard job key to SG: the plugin validator suggests from the standard keys
 * and the plugin's own settings alike, since a plugin job's typo may be of either. */
void config_suggest_job_keys(struct suggester *sg);

/* A source of freshness: "schema.table", each part a lower-case identifier or a quoted one. */
bool config_valid_source(const char *name);
/* A job name is 1-63 of [A-Za-z0-9_.-]. */
bool config_valid_job_name(const char *name);

/* The job ARG means, as a user writes it on the command line (`pgcrond trigger ARG`):
 * the file job of that name; else, ARG being all digits, the job of that jobid; else the
 * SQL job whose pgcrond name or pg_cron name (cron.schedule's, conf_job.cron_name) is ARG.
 * File jobs and jobids come first because nobody else can take them; a name that SQL jobs
 * of several owners answer to is ambiguous. 0 with *OUT set; -ENOENT; or -ENOTUNIQ with
 * the first MAX candidates in CANDS and their number in *N_CANDS (CANDS may be NULL). */
int config_resolve_job(const struct pgc_config *cfg, const char *arg, const struct conf_job **out,
                       const struct conf_job **cands, size_t max, size_t *n_cands)
    __attribute__((warn_unused_result));

/* A copy of H (NULL: NULL), setting *OOM when out of memory; and its release. */
/* The class after "fenced: " of a run of a job of kind K running COMMAND (job_kind_once), a
 * static string; NULL where a run is not fenced. */
const char *config_fenced(enum job_kind k, const char *command);
struct conf_http_call *config_http_call_dup(const struct conf_http_call *h, bool *oom);
void config_http_call_free(struct conf_http_call **h);
bool config_http_call_eq(const struct conf_http_call *a, const struct conf_http_call *b);

/* Whether NAME is a job key the configuration keeps for itself (struct conf_job): a plugin
 * setting with that name would never reach the plugin. */
bool config_is_job_key(const char *name);

#endif
