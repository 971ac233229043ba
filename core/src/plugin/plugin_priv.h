#ifndef PGCROND_PLUGIN_PRIV_H
#define PGCROND_PLUGIN_PRIV_H

/* What the plugin loader's files share, not for other modules: plugin_run.c (the context,
 * quoting, a run's statements), which the others call; plugin_keys.c (payload_keys,
 * run_replace); plugin.c (the API table, a job's checks, builds); plugin_load.c (loading,
 * the registry, a configuration's check), which calls the others. */

#include <stddef.h>

struct plugin;
struct conf_job;
struct pgc_run;

/* snprintf into ERR (ERRLEN bytes; nothing when ERR is NULL); a cut message will do. */
void plugin_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Who is being called into (P, and JOB or NULL), so the plugin's api->log() lines say it;
 * cleared when the call returns. */
void plugin_set_context(const struct plugin *p, const struct conf_job *job);
void plugin_clear_context(void);
/* The context plugin_set_context() set ("job J (plugin P)", "plugin P"), or NULL. */
const char *plugin_log_context(void);
/* api->log(): LEVEL (PGC_LOG_*, clamped) with the context. */
void plugin_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* api->run_add(), api->run_add_param() and api->run_error() (see pgcrond/plugin.h); a failed
 * add is remembered in run->add_error, the first error in run->error. */
int plugin_run_add(struct pgc_run *run, const char *sql);
int plugin_run_add_param(struct pgc_run *run, const char *value);
void plugin_run_error(struct pgc_run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Free the keys payload_keys() handed out, which RUN owns (its full_reason stays). */
void plugin_run_keys_free(struct pgc_run *run);

/* Whether VALUE is a valid setting value of TYPE (PGC_SETTING_*): 0, or -EINVAL with the
 * reason in ERR. */
int plugin_check_value(int type, const char *value, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
