#ifndef PGCROND_PLUGIN_PRIV_H
#define PGCROND_PLUGIN_PRIV_H

/* What plugin.c (the API table, registry, checks, runs) and plugin_load.c (finding, checking
 * and dlopening a plugin) share; not for other modules. */

#include <stddef.h>

struct plugin;
struct conf_job;

/* snprintf into ERR (ERRLEN bytes; nothing when ERR is NULL); a cut message will do. */
void plugin_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Who is being called into (P, and JOB or NULL), so the plugin's api->log() lines say it;
 * cleared when the call returns. */
void plugin_set_context(const struct plugin *p, const struct conf_job *job);
void plugin_clear_context(void);

/* Whether VALUE is a valid setting value of TYPE (PGC_SETTING_*): 0, or -EINVAL with the
 * reason in ERR. */
int plugin_check_value(int type, const char *value, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
