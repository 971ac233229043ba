#ifndef PGCROND_PLUGIN_LOADER_H
#define PGCROND_PLUGIN_LOADER_H

/* The plugin loader, core side: loads <plugin_dir>/<name>.so safely (see DESIGN.md
 * "Plugins"), checks its magic block and declaration, validates jobs' plugin settings, and
 * builds the statements of a run. Plugins are never unloaded: a loaded plugin stays mapped
 * for the life of the process, so no run can outlive its code, and a reload reuses it (a
 * replaced .so file takes effect at restart). Pure apart from dlopen(): no libpq, no
 * libevent; everything but loading is unit-testable without a database. */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pgcrond/plugin.h"

struct pgc_config;
struct conf_job;
struct diag_list;

/* A loaded plugin. Owned by the loader for the life of the process. */
struct plugin {
	char *name;          /* as in the config, equals the magic block's name */
	char *path;          /* <plugin_dir>/<name>.so as loaded */
	const char *version; /* the magic block's version (the plugin's static storage) */
	uint32_t abi_minor;  /* the minor it was built against */
	void *handle;        /* dlopen() handle, never closed */
	/* The declaration, copied and zero-extended to the core's struct size, so fields a
	 * plugin built against an older minor does not know read as zero. */
	struct pgc_plugin decl;
	size_t n_relations, n_settings, n_reads;
	/* the file as loaded, to notice it being replaced on disk (kept loaded until restart) */
	dev_t dev;
	ino_t ino;
	int64_t mtime_ns;
	off_t size;
	int64_t warned_mtime_ns; /* the replacement already logged; 0 if none */
};

/* One statement of a run. */
struct plugin_stmt {
	char *sql;
	char **params; /* N_PARAMS values; NULL = SQL NULL */
	int n_params;
};

/* The statements of one run (struct pgc_run is opaque to plugins). Owned by the caller of
 * plugin_build_run(), freed with plugin_run_free(). */
struct pgc_run {
	struct plugin_stmt *stmts;
	size_t n_stmts, cap;
	char *error;   /* what run_error() said, or NULL */
	int add_error; /* the first failed run_add()/run_add_param(), 0 if none */
	/* Whose run it is, for run_refresh(NULL): the job's relations. NULL in a run built
	 * outside plugin_build_run()/plugin_build_install() (tests). */
	const struct plugin *plugin;
	const struct conf_job *job;
	/* payload_keys() (plugin_keys.c): the keys it handed out, owned by the run, and the
	 * reason it last chose a full run (logged once per run), or NULL */
	char **keys;
	size_t n_keys;
	char *full_reason;
};

/* The distinct plugins one configuration names, loaded once each. Load failures are
 * remembered so each is attempted and reported once per configuration. */
struct plugin_registry {
	char *plugin_dir;
	const struct plugin **plugins;
	size_t n_plugins, cap_plugins;
	struct plugin_failure {
		char *name;
		char *message;
		int rc; /* what plugin_load() returned */
	} * failures;
	size_t n_failures, cap_failures;
};

/* Load plugin NAME from PLUGIN_DIR, or return the one already loaded from the same path.
 * Returns 0 and *OUT, or a negative errno with one sentence in ERR naming the path, what is
 * wrong and what to do: -EINVAL bad name, -ENOENT no file, -EPERM unsafe file or directory
 * (symlink, not regular, wrong owner, writable by group or others), -ENOEXEC not a plugin or
 * an incompatible one (magic block, declaration), -ENOMEM. */
int plugin_load(const char *plugin_dir, const char *name, const struct plugin **out, char *err,
                size_t errlen) __attribute__((warn_unused_result));

/* A registry for PLUGIN_DIR (copied). Returns 0 or -ENOMEM. */
int plugin_registry_new(const char *plugin_dir, struct plugin_registry **out)
    __attribute__((warn_unused_result));
void plugin_registry_free(struct plugin_registry **reg);
/* The plugin NAME, loading it on first use; a failure is remembered and its message returned
 * again (in ERR) on later calls. Same returns as plugin_load(). */
int plugin_registry_get(struct plugin_registry *reg, const char *name, const struct plugin **out,
                        char *err, size_t errlen) __attribute__((warn_unused_result));
/* NAME if it was loaded successfully, else NULL. */
const struct plugin *plugin_registry_find(const struct plugin_registry *reg, const char *name);

/* Load every plugin CFG's jobs name (from cfg->plugin_dir) and check each such job's
 * settings: unknown keys (listing the known ones), values that do not parse as the declared
 * type, and the plugin's own check_settings(). Every problem goes into DL as
 * "FILE:LINE: ..." (the job's line, or the setting's line). Returns 0 with *OUT set, or
 * -EINVAL if any problem was found (*OUT still set, holding what did load, so `pgcrond
 * check` can go on to check the DAG), or -ENOMEM. */
int plugin_check_config(const struct pgc_config *cfg, struct plugin_registry **out,
                        struct diag_list *dl) __attribute__((warn_unused_result));

/* Check JOB's settings against plugin P (the part of plugin_check_config() for one job).
 * Returns 0 or -EINVAL with the problems in DL. */
int plugin_check_job(const struct plugin *p, const struct conf_job *job, struct diag_list *dl)
    __attribute__((warn_unused_result));

/* Build the statements of one run of JOB (whose settings were checked) with plugin P and the
 * notification PAYLOADS (N_PAYLOADS may be 0). Returns 0 and *OUT (free it with
 * plugin_run_free(); zero statements means nothing to do), or a negative errno with the
 * reason in ERR (the plugin's run_error() message when it gave one). */
int plugin_build_run(const struct plugin *p, const struct conf_job *job,
                     const char *const *payloads, size_t n_payloads, struct pgc_run **out,
                     char *err, size_t errlen) __attribute__((warn_unused_result));
void plugin_run_free(struct pgc_run **run);

/* The statements `pgcrond install` runs for JOB in its database after P's install_sql: what
 * the plugin's job_install() (ABI 1.1) adds, none if it has none. Same returns and
 * ownership as plugin_build_run(). */
int plugin_build_install(const struct plugin *p, const struct conf_job *job, struct pgc_run **out,
                         char *err, size_t errlen) __attribute__((warn_unused_result));

/* The relations JOB maintains: P's declared relations, then the one P's job_relation()
 * (ABI 1.1) names from JOB's settings. This, not p->decl.relations, is what the
 * CONCURRENTLY guard, pgcrond.job.relation and the status view should use. Returns 0 with
 * *OUT (*N entries, then one whose name is NULL; names are copies; free with
 * plugin_relations_free()), or a negative errno with the reason in ERR. Names are spelled
 * as in the catalog, unquoted: quote them with plugin_quote_qualified() before using them in
 * SQL, also as the text of a $1::regclass parameter (regclass input folds case). */
int plugin_job_relations(const struct plugin *p, const struct conf_job *job,
                         struct pgc_relation_decl **out, size_t *n, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void plugin_relations_free(struct pgc_relation_decl **rels);

/* PostgreSQL identifier quoting without a connection (also in the plugin API table):
 * always quoted, '"' doubled, case kept. Return the length written, -EINVAL (empty name,
 * empty part, more than one '.') or -ENOSPC. */
int plugin_quote_ident(const char *ident, char *out, size_t outlen)
    __attribute__((warn_unused_result));
int plugin_quote_qualified(const char *name, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/* The table handed to plugins (exposed for tests). */
const struct pgc_api *plugin_api(void);

/* ABI 1.2's payload_keys() and run_replace() (plugin_keys.c); see pgcrond/plugin.h. */
int plugin_payload_keys(struct pgc_run *run, const char *const *payloads, size_t n_payloads,
                        const char *field, unsigned flags, size_t max_keys,
                        const char *const **keys, size_t *n_keys);
int plugin_run_replace(struct pgc_run *run, const char *relation, const char *key_column,
                       const char *select_sql, const char *const *keys, size_t n_keys);

#endif
