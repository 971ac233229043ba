#ifndef PGCROND_PLUGIN_H
#define PGCROND_PLUGIN_H

/*
 * pgcrond/plugin.h: the only header a pgcrond view plugin includes.
 *
 * A plugin is a shared object, <plugin_dir>/<name>.so, that says *what* to do for the views
 * it maintains: its install DDL, the relations it maintains, the plugins it reads from, its
 * settings, and the statements of one run. The core decides *when*, owns every connection,
 * and runs the statements asynchronously with timeouts and retries. A plugin therefore does
 * no I/O, never blocks, and links against no pgcrond symbol: everything it needs from the
 * core comes through the function table (struct pgc_api) handed to pgcrond_plugin_init().
 *
 * A plugin exports exactly two functions, both declared below:
 *
 *   pgcrond_plugin_magic()  defined for you by PGCROND_PLUGIN_MAGIC("name", "version");
 *   pgcrond_plugin_init()   written by the plugin: keeps the API table, returns its
 *                           declaration (struct pgc_plugin).
 *
 * Build with -fvisibility=hidden and -Wl,-z,defs (pgcrond_add_plugin() in CMake does both);
 * the declarations below give the two entry points default visibility.
 *
 * Compatibility (docs/plugin-abi.md): the magic block never changes layout. The ABI major
 * changes only when something here changes incompatibly; plugins must then be rebuilt. The
 * minor grows when entries are appended to struct pgc_api or struct pgc_plugin; a plugin
 * built against minor N loads into any core of the same major with minor >= N. Structs are
 * append-only and carry their own size first, so neither side reads past what the other
 * side knows.
 *
 * Threading: the core calls a plugin from one thread only, and never concurrently. Every
 * callback must return promptly (it runs on the daemon's event loop).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. */
#define PGC_PLUGIN_ABI_MAJOR 1
#define PGC_PLUGIN_ABI_MINOR 3

/* Names of the two exported entry points, for the loader's dlsym(). */
#define PGC_PLUGIN_MAGIC_SYMBOL "pgcrond_plugin_magic"
#define PGC_PLUGIN_INIT_SYMBOL "pgcrond_plugin_init"

#if defined(__GNUC__)
#define PGC_EXPORT __attribute__((visibility("default")))
#define PGC_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define PGC_EXPORT
#define PGC_PRINTF(fmt_index, first_arg)
#endif

/* ---- the magic block ------------------------------------------------------------------ */

/*
 * Identifies a file as a pgcrond plugin and says which ABI it was built against. The loader
 * reads it before anything else and refuses the plugin, naming the field that differs, when:
 * the size is not sizeof(struct pgc_plugin_magic), the major differs from the core's, the
 * minor is newer than the core's, or the name differs from the file name (<name>.so).
 * This layout is frozen for ever: new information goes into struct pgc_plugin instead.
 */
struct pgc_plugin_magic {
	size_t size;         /* sizeof(struct pgc_plugin_magic), as the plugin was compiled */
	uint32_t abi_major;  /* PGC_PLUGIN_ABI_MAJOR the plugin was compiled with */
	uint32_t abi_minor;  /* PGC_PLUGIN_ABI_MINOR the plugin was compiled with */
	const char *name;    /* the plugin's name: equals the file name without ".so";
	                      * letters, digits, '_' and '-' only */
	const char *version; /* the plugin's own version, free text ("1.2.0"), shown by pgcrond */
};

/*
 * Defines pgcrond_plugin_magic() returning a static magic block. Use it exactly once, at file
 * scope, in one source file of the plugin (like PostgreSQL's PG_MODULE_MAGIC):
 *
 *   PGCROND_PLUGIN_MAGIC("lane_distribution", "1.0.0");
 */
#define PGCROND_PLUGIN_MAGIC(name_, version_)                                                      \
	const struct pgc_plugin_magic *pgcrond_plugin_magic(void)                                  \
	{                                                                                          \
		static const struct pgc_plugin_magic pgc_magic_block_ = {                          \
		    sizeof(struct pgc_plugin_magic), PGC_PLUGIN_ABI_MAJOR, PGC_PLUGIN_ABI_MINOR,   \
		    (name_), (version_)};                                                          \
		return &pgc_magic_block_;                                                          \
	}                                                                                          \
	struct pgc_plugin_magic_semicolon_ /* lets the macro be followed by ';' */

/* ---- opaque handles owned by the core ------------------------------------------------- */

/* A job's settings for this plugin (the keys of the job group that are not core job keys),
 * already checked against the plugin's declared settings and types. Valid only during the
 * callback it is passed to. */
struct pgc_settings;

/* The run being built by build_run() (or job_install()): the list of statements the core
 * will execute, in order, on one connection. Valid only during that callback. */
struct pgc_run;

/* ---- logging levels (syslog's numbers) ----------------------------------------------------- */

enum pgc_log_level {
	PGC_LOG_ERROR = 3,
	PGC_LOG_WARNING = 4,
	PGC_LOG_NOTICE = 5,
	PGC_LOG_INFO = 6,
	PGC_LOG_DEBUG = 7,
};

/* ---- the core's function table ------------------------------------------------------------- */

/*
 * Handed to pgcrond_plugin_init(); valid for the life of the process (the plugin keeps the
 * pointer in a static variable). Append-only: entries are only ever added at the end, with
 * a minor ABI bump. A plugin built against minor N may use every entry of minor <= N
 * without checking; to use a newer entry optionally, compare `size` against
 * offsetof(struct pgc_api, entry) + sizeof(void (*)(void)).
 */
struct pgc_api {
	/* sizeof(struct pgc_api) in the core. */
	size_t size;
	/* The core's PGC_PLUGIN_ABI_MAJOR / PGC_PLUGIN_ABI_MINOR. */
	uint32_t abi_major;
	uint32_t abi_minor;
	/* The core's version, e.g. "0.1.0". Static storage. */
	const char *core_version;

	/* -- ABI 1.0 -- */

	/*
	 * Log a message at LEVEL (enum pgc_log_level) through the daemon's logger. printf-style
	 * FMT. The core prefixes the plugin's (and, during a run, the job's) name, so messages
	 * should not repeat it. One line per message; no trailing newline needed.
	 */
	void (*log)(int level, const char *fmt, ...) PGC_PRINTF(2, 3);

	/*
	 * Settings getters. KEY must be one of the plugin's declared settings (struct
	 * pgc_setting_decl) of the matching type. They return the job's value if the job sets
	 * the key, else the declared default, else DEF (for settings declared without a default).
	 * The core validated every value against its type before any callback runs, so these
	 * cannot fail; asking for an undeclared key or the wrong type is a plugin bug, logged as
	 * a warning, and returns DEF.
	 *
	 * setting_str: the returned string is owned by the core and valid during the callback
	 *   (copy it to keep it). May return DEF, which may be NULL.
	 * setting_int: a PGC_SETTING_INT value (decimal, optional sign, 64-bit).
	 * setting_bool: a PGC_SETTING_BOOL value (true/false, yes/no, on/off, 1/0).
	 * setting_duration_ms: a PGC_SETTING_DURATION value ("250ms", "30s", "5m", "2h", "7d")
	 *   in milliseconds.
	 * setting_is_set: whether the job itself sets KEY (defaults do not count).
	 */
	const char *(*setting_str)(const struct pgc_settings *s, const char *key, const char *def);
	int64_t (*setting_int)(const struct pgc_settings *s, const char *key, int64_t def);
	bool (*setting_bool)(const struct pgc_settings *s, const char *key, bool def);
	int64_t (*setting_duration_ms)(const struct pgc_settings *s, const char *key, int64_t def);
	bool (*setting_is_set)(const struct pgc_settings *s, const char *key);

	/*
	 * Report a problem with setting KEY of the job (KEY may be NULL for a problem with the
	 * job as a whole). Meant for check_settings(): the core prints it as
	 * "FILE:LINE: job "NAME": setting "KEY": <message>" and the configuration is rejected.
	 * Called during build_run() it is logged as an error instead. FMT is printf-style; say
	 * what is wrong and what to do.
	 */
	void (*setting_error)(const struct pgc_settings *s, const char *key, const char *fmt, ...)
	    PGC_PRINTF(3, 4);

	/*
	 * Quote IDENT as a PostgreSQL identifier: always double-quoted, internal double quotes
	 * doubled, case preserved ("MyView" stays MyView, not myview). Writes the NUL-terminated
	 * result into OUT (OUTLEN bytes). Returns its length, -EINVAL for an empty IDENT, or
	 * -ENOSPC if OUT is too small. Needs no connection (UTF-8 server encoding assumed).
	 */
	int (*quote_ident)(const char *ident, char *out, size_t outlen);

	/*
	 * Quote a possibly schema-qualified name, "schema.relation" or "relation", part by part:
	 * public.mv_x becomes "public"."mv_x". Each part is taken literally (no case folding);
	 * a part cannot contain '.'. Returns the length written to OUT, -EINVAL for an empty
	 * part or more than one '.', or -ENOSPC.
	 */
	int (*quote_qualified)(const char *name, char *out, size_t outlen);

	/*
	 * Append a statement to RUN. SQL is one SQL statement, copied by the core; values go in
	 * as parameters $1, $2 ... added with run_add_param(), never pasted into SQL, and
	 * identifiers only through quote_ident()/quote_qualified(). Returns 0, -EINVAL (empty
	 * SQL) or -ENOMEM.
	 */
	int (*run_add)(struct pgc_run *run, const char *sql);

	/*
	 * Append a text parameter to the statement last added to RUN: the first call gives $1,
	 * the next $2, and so on. VALUE is copied; NULL means SQL NULL. Returns 0, -EINVAL if no
	 * statement was added yet, -E2BIG past 65535 parameters, or -ENOMEM.
	 */
	int (*run_add_param)(struct pgc_run *run, const char *value);

	/*
	 * Say why the run cannot be built; build_run() then returns a negative errno. The
	 * message becomes the run's return_message in the history. printf-style FMT.
	 */
	void (*run_error)(struct pgc_run *run, const char *fmt, ...) PGC_PRINTF(2, 3);

	/* The name of the job whose settings S are (for messages). Static for the callback. */
	const char *(*job_name)(const struct pgc_settings *s);

	/* -- ABI 1.1 -- */

	/*
	 * Append the refresh of a materialized view to RUN, the statement nearly every view
	 * plugin's build_run() consists of, so plugins need not format and quote it themselves:
	 *   REFRESH MATERIALIZED VIEW [CONCURRENTLY] "schema"."view"
	 * followed, with PGC_REFRESH_ANALYZE, by
	 *   ANALYZE "schema"."view"
	 *
	 * RELATION: the view, spelled as in `relations` ("schema.view", or "view" to go through
	 *   the search_path); taken literally (no case folding) and quoted by the core. Borrowed:
	 *   the core copies what it needs before returning. NULL means every materialized view
	 *   the job maintains, in declaration order: the `relations` entries of kind
	 *   PGC_RELATION_MATVIEW, then the one job_relation() names (if it is a materialized
	 *   view); each is refreshed, and with PGC_REFRESH_ANALYZE analyzed, before the next.
	 *   Tables (PGC_RELATION_TABLE) are skipped: how a table is filled is the plugin's own.
	 * FLAGS: PGC_REFRESH_* bits. CONCURRENTLY is used when FLAGS has
	 *   PGC_REFRESH_CONCURRENTLY *or* the job declares the view PGC_RELATION_CONCURRENT
	 *   (in `relations` or through job_relation()): a view the core guards for a concurrent
	 *   refresh is never refreshed in a blocking way, whatever FLAGS say.
	 *
	 * Returns 0; -EINVAL for an invalid name (empty, an empty part, more than one '.') or an
	 * unknown flag; -ENOENT if RELATION is NULL and the job maintains no materialized view;
	 * -ENAMETOOLONG; -ENOMEM. Each failure also records its reason, as run_error() would, so
	 * the build fails with a message even if the plugin ignores the return value. Usable in
	 * build_run() and job_install(); pure, like them.
	 */
	int (*run_refresh)(struct pgc_run *run, const char *relation, unsigned flags);

	/* -- ABI 1.2 -- */

	/*
	 * The partitions a notification-triggered run names, for a plugin that keeps a table
	 * partitioned by a key (a challenge, an agent) and can recompute one partition alone.
	 * Reads FIELD of each of the N_PAYLOADS payloads build_run() got, each a JSON object
	 * such as {"submission_id":7,"challenge_id":"9f..","agent_id":"1c.."}; FIELD's value must
	 * be a non-empty string or an integer, and with FLAGS PGC_KEY_UUID a uuid
	 * (8-4-4-4-12 hex digits, or 32 without dashes), with PGC_KEY_INT an integer (a JSON
	 * number, or a string of digits with an optional '-'): what the key column's type accepts,
	 * so that a bad key makes a full run rather than a failed one. The distinct values, sorted,
	 * go to *KEYS (N_KEYS of them), owned by RUN and valid until the core frees it (after
	 * build_run()).
	 *
	 * Returns 1 when *KEYS names the partitions to recompute. Returns 0 when the run must
	 * recompute everything instead: there are no payloads (a scheduled, upstream-triggered
	 * or manual run), or a payload is not a JSON object, lacks FIELD or has it of another
	 * type (or not of the form FLAGS ask), or the payloads name more than MAX_KEYS distinct
	 * values (MAX_KEYS 0: always everything). In those last cases the core logs the reason once
	 * per run (at notice level), naming the first offending payload. Returns -ENOMEM, or
	 * -EINVAL for unknown FLAGS (recorded as run_error() would). Pure, no I/O.
	 */
	int (*payload_keys)(struct pgc_run *run, const char *const *payloads, size_t n_payloads,
	                    const char *field, unsigned flags, size_t max_keys,
	                    const char *const **keys, size_t *n_keys);

	/*
	 * Append the replacement of some (or all) rows of a table the plugin fills, as one
	 * transaction, so readers never wait for it and see the rows of a partition either all
	 * old or all new:
	 *   BEGIN
	 *   DELETE FROM "schema"."table" WHERE "key_column" OPERATOR(pg_catalog.=) ANY ($1)
	 *                                                           -- or every row (no WHERE)
	 *   INSERT INTO "schema"."table" <SELECT_SQL>               -- with $1 the same
	 *   COMMIT
	 * RELATION: the table ("schema.table" or "table"), quoted by the core. KEY_COLUMN: the
	 * column the partitions are keyed on, quoted by the core. SELECT_SQL: one SELECT (or
	 * VALUES, or TABLE) giving the table's rows in its column order; it reads the keys as
	 * parameter $1, an array of the key column's type holding KEYS, or SQL NULL when every
	 * row is replaced, and must then return every row: write its filter as
	 * `($1 IS NULL OR challenge_id OPERATOR(pg_catalog.=) ANY ($1))` (casts as the key's type
	 * needs), or call a set-returning SQL function that does, with $1 cast to its argument's
	 * type (`public.t_rows($1::pg_catalog.uuid[])`: an untyped $1 would match another role's
	 * overload t_rows(text) better). SELECT_SQL runs with the job's search_path, which other
	 * roles may have planted objects in: qualify every name in it, and in such a function's
	 * body (pg_catalog.count, OPERATOR(pg_catalog.=), ::pg_catalog.float8). KEYS (N_KEYS of
	 * them) are passed as one array parameter, never pasted into SQL; NULL (N_KEYS 0)
	 * replaces every row.
	 * The core writes the BEGIN and COMMIT: do not wrap the call in your own.
	 * Returns 0; -EINVAL for an invalid name or an empty SELECT_SQL; -ENAMETOOLONG; -ENOMEM.
	 * Each failure also records its reason, as run_error() would. Pure, no I/O.
	 */
	int (*run_replace)(struct pgc_run *run, const char *relation, const char *key_column,
	                   const char *select_sql, const char *const *keys, size_t n_keys);
};

/* Flags of pgc_api.payload_keys(): the form every key must have. */
#define PGC_KEY_UUID 0x1u /* a uuid: 8-4-4-4-12 hex digits, or 32 without dashes */
#define PGC_KEY_INT 0x2u  /* a whole number: optional '-', then digits */

/* Flags of pgc_api.run_refresh(). */
#define PGC_REFRESH_CONCURRENTLY 0x1u /* REFRESH ... CONCURRENTLY even if not declared so */
#define PGC_REFRESH_ANALYZE 0x2u      /* ANALYZE each view right after its refresh */

/* ---- what a plugin declares ---------------------------------------------------------------- */

/* The type of a plugin setting; the core checks job values against it. */
enum pgc_setting_type {
	PGC_SETTING_STRING = 1,   /* any text */
	PGC_SETTING_INT = 2,      /* 64-bit decimal integer */
	PGC_SETTING_BOOL = 3,     /* true/false, yes/no, on/off, 1/0 (any case) */
	PGC_SETTING_DURATION = 4, /* "250ms", "30s", "5m", "2h", "7d" */
};

/*
 * One setting a job may give the plugin (job = { plugin = "x"; KEY = VALUE; }). The core
 * rejects keys a plugin does not declare, listing the ones it does, and values that do not
 * parse as TYPE, each with FILE:LINE. Arrays of these end with an entry whose name is NULL.
 */
struct pgc_setting_decl {
	const char *name;          /* the key: lower-case letters, digits and '_', not a core
	                            * job key (name, schedule, timeout, ...) */
	int type;                  /* enum pgc_setting_type */
	const char *default_value; /* in job-file spelling ("30s", "true", "100"), or NULL for
	                            * no default (the getter's DEF applies) */
	const char *doc;           /* one line for people: what it does */
};

/* The kind of a relation a plugin maintains. */
enum pgc_relation_kind {
	PGC_RELATION_MATVIEW = 1, /* a materialized view the plugin refreshes */
	PGC_RELATION_TABLE = 2,   /* an ordinary table the plugin fills (analytics_*) */
};

/*
 * The materialized view is refreshed CONCURRENTLY. Before a job's first run the core checks
 * that the view has a usable unique index (unique, valid, not partial, on plain columns) and
 * fails the job with a clear message if not, rather than ever refreshing it in a blocking
 * way behind the operator's back; and if the view has never been populated it runs one plain
 * REFRESH MATERIALIZED VIEW first (CONCURRENTLY refuses unpopulated views).
 */
#define PGC_RELATION_CONCURRENT 0x1u

/* A relation the plugin maintains. Arrays of these end with an entry whose name is NULL. */
struct pgc_relation_decl {
	const char *name; /* schema-qualified, exactly as in the catalog: "public.mv_x" */
	int kind;         /* enum pgc_relation_kind */
	unsigned flags;   /* PGC_RELATION_* flags */
};

/*
 * The plugin's declaration, returned by pgcrond_plugin_init(). It must stay valid and
 * unchanged for the life of the process (make it a static const). Append-only, like
 * struct pgc_api: `size` tells the core how much of it the plugin knows; fields past that
 * size read as zero.
 */
struct pgc_plugin {
	/* sizeof(struct pgc_plugin) as the plugin was compiled. */
	size_t size;

	/* One line describing what the plugin maintains, for `pgcrond list` and docs. */
	const char *description;

	/* The relations it maintains, ending with {NULL}. At least one, unless the plugin sets
	 * job_relation (ABI 1.1), which names each job's relation from its settings. */
	const struct pgc_relation_decl *relations;

	/*
	 * The DDL that creates its objects, run by `pgcrond install` as one simple-protocol
	 * query string (several statements separated by ';' are fine). It must be idempotent:
	 * CREATE ... IF NOT EXISTS, CREATE OR REPLACE. NULL if the plugin creates nothing.
	 */
	const char *install_sql;

	/*
	 * Names of the plugins whose relations this plugin's relations read, ending with NULL;
	 * NULL for none. Jobs of this plugin run after the jobs of those plugins (the DAG).
	 */
	const char *const *reads;

	/* Settings a job may set, ending with {NULL}; NULL for none. */
	const struct pgc_setting_decl *settings;

	/*
	 * Optional: check a job's settings beyond their types (ranges, combinations), once per
	 * job when the configuration is loaded. Report each problem with api->setting_error().
	 * Returns 0, or a negative errno if it reported a problem. NULL if not needed.
	 */
	int (*check_settings)(const struct pgc_settings *s);

	/*
	 * The statements of one run of a job, given its settings and the notification
	 * payloads that triggered it. A core of ABI 1.2 or later accepts NULL from a plugin
	 * that declares a materialized view (or sets job_relation): each run is then
	 * api->run_refresh(run, NULL, 0), every materialized view of the job refreshed; a
	 * plugin meant to load into a 1.0 or 1.1 core must set it. Adds statements with
	 * api->run_add() / api->run_add_param(). S: the job's settings (api->setting_*). PAYLOADS:
	 * the NOTIFY payloads received on the job's `listen` channel since the last run
	 * (debounced), oldest first, N_PAYLOADS of them; N_PAYLOADS is 0 for scheduled,
	 *     upstream-triggered and manual runs. Owned by the core, valid during the call.
	 *   RUN: where the statements go.
	 * Returns 0 on success (adding no statement means "nothing to do": the run succeeds
	 * without touching the database), or a negative errno after api->run_error() said why.
	 * Must be pure: the same inputs give the same statements; no I/O.
	 */
	int (*build_run)(const struct pgc_settings *s, const char *const *payloads,
	                 size_t n_payloads, struct pgc_run *run);

	/* -- ABI 1.1 -- (a plugin built against 1.0 has neither field: the core reads NULL) */

	/*
	 * Optional: the relation one job maintains, for a plugin whose relation is named by the
	 * job's settings instead of fixed at build time (sql_view's `view` setting). Fills *OUT
	 * like an entry of `relations`; OUT->name may be a string the plugin got from
	 * api->setting_str() (the core copies it before the callback returns), schema-qualified
	 * ("schema.relation") or plain (then found through the connection's search_path).
	 * The core treats it as a relation of that job in addition to `relations`: it gets the
	 * PGC_RELATION_CONCURRENT checks, it is the job's relation in pgcrond.job and the status
	 * view. Called only for jobs whose settings passed check_settings(). Returns 0, or a
	 * negative errno after api->setting_error() said why. A plugin that sets it may leave
	 * `relations` empty (NULL or {NULL}). NULL if every job maintains `relations` only.
	 */
	int (*job_relation)(const struct pgc_settings *s, struct pgc_relation_decl *out);

	/*
	 * Optional: the objects of one job, for DDL that depends on the job's settings (which
	 * install_sql, one string per plugin, cannot express). `pgcrond install` calls it for
	 * each configured job of the plugin and runs the statements it adds to RUN, in order, in
	 * the job's database, after the plugin's install_sql. Same rules as build_run(): add
	 * statements with api->run_add() (values only as api->run_add_param() parameters,
	 * identifiers only quoted), pure, no I/O; returns 0 or a negative errno after
	 * api->run_error(). The statements must be idempotent (IF NOT EXISTS), like install_sql.
	 * NULL if install_sql is all the plugin needs.
	 */
	int (*job_install)(const struct pgc_settings *s, struct pgc_run *run);

	/* -- ABI 1.3 -- (a plugin built against 1.0-1.2 has no such field: the core reads NULL) */

	/*
	 * The tables its relations read, other than relations of plugins named in `reads`
	 * (those are edges of the job graph), ending with NULL; NULL for none. Each is
	 * schema-qualified, as the catalog spells it unquoted ("public.submissions"; a part
	 * with upper case or punctuation in double quotes: "public.\"Orders\""). A job with
	 * `freshness` watches them (and any `sources` its job file adds) for changes and runs
	 * when they changed, not when they did not (docs/freshness.md). `pgcrond install`
	 * puts a change-counting trigger on each. Static storage, like the rest of the
	 * declaration. The loader refuses a name that is not schema-qualified.
	 */
	const char *const *sources;
};

/* ---- the entry points a plugin exports ----------------------------------------------------- */

/* Defined by PGCROND_PLUGIN_MAGIC(). Returns the plugin's static magic block. */
PGC_EXPORT const struct pgc_plugin_magic *pgcrond_plugin_magic(void);

/*
 * Defined by the plugin. Called once, after the magic block was accepted.
 *   API: the core's function table, valid for the life of the process; keep the pointer.
 *   DECL: set *DECL to the plugin's declaration (static storage).
 * Returns 0, or a negative errno (the plugin is then refused; log why through api->log).
 */
PGC_EXPORT int pgcrond_plugin_init(const struct pgc_api *api, const struct pgc_plugin **decl);

#ifdef __cplusplus
}
#endif

#endif
