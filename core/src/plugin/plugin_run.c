/* What every other file of the plugin loader calls, and which calls none of them: who is
 * being called into (the context that names the plugin and job in api->log() lines, and
 * error text), the identifier quoting a plugin's SQL uses, and the run a plugin builds
 * (struct pgc_run: its statements and parameters, the error it reports, freeing it). */
#include "plugin.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "config.h"
#include "log.h"
#include "plugin_priv.h"
#include "text.h"

/* PostgreSQL's protocol carries the parameter count in 16 bits. */
#define MAX_PARAMS 65535

/* Who is calling into a plugin right now, so api->log() can say which plugin (and job) a
 * message is about without the plugin repeating it. */
static char log_context[192];

/* ---- who is being called ------------------------------------------------------------ */

void plugin_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen)
		TEXT_VA_FORMAT(err, errlen, fmt); /* a cut message is still better than none */
}

void plugin_set_context(const struct plugin *p, const struct conf_job *job)
{
	/* long names: a cut prefix will do */
	if (job)
		text_format(log_context, sizeof(log_context), "job %s (plugin %s)", job->name,
		            p->name);
	else
		text_format(log_context, sizeof(log_context), "plugin %s", p->name);
}

void plugin_clear_context(void)
{
	log_context[0] = '\0';
}

const char *plugin_log_context(void)
{
	return log_context[0] ? log_context : NULL;
}

void plugin_log(int level, const char *fmt, ...)
{
	char msg[1024];

	if (level < PGC_LOG_ERROR)
		level = PGC_LOG_ERROR;
	if (level > PGC_LOG_DEBUG)
		level = PGC_LOG_DEBUG;
	TEXT_VA_FORMAT(msg, sizeof(msg), fmt); /* a cut log line is still a log line */
	log_msg((enum log_level)level, log_context[0] ? log_context : NULL, "%s", msg);
}

/* ---- identifier quoting ------------------------------------------------------------- */

/* Like PQescapeIdentifier() but without a connection: a UTF-8 (or any ASCII-safe) server
 * encoding is assumed, so only '"' needs doubling. Always quoting keeps case and makes
 * reserved words safe. */
static int quote_part(const char *s, size_t len, char *out, size_t outlen)
{
	size_t need = 2 + len + 1, o = 0;

	for (size_t i = 0; i < len; i++)
		if (s[i] == '"')
			need++;
	if (need > outlen || need > INT_MAX)
		return -ENOSPC;
	out[o++] = '"';
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"')
			out[o++] = '"';
		out[o++] = s[i];
	}
	out[o++] = '"';
	out[o] = '\0';
	return (int)o;
}

int plugin_quote_ident(const char *ident, char *out, size_t outlen)
{
	if (!ident || !*ident)
		return -EINVAL;
	return quote_part(ident, strlen(ident), out, outlen);
}

int plugin_quote_qualified(const char *name, char *out, size_t outlen)
{
	if (!name || !*name)
		return -EINVAL;
	const char *dot = strchr(name, '.');
	if (!dot)
		return plugin_quote_ident(name, out, outlen);
	if (dot == name || !dot[1] || strchr(dot + 1, '.'))
		return -EINVAL;
	int a = quote_part(name, (size_t)(dot - name), out, outlen);
	if (a < 0)
		return a;
	if ((size_t)a + 1 >= outlen)
		return -ENOSPC;
	out[a] = '.';
	int b = quote_part(dot + 1, strlen(dot + 1), out + a + 1, outlen - (size_t)a - 1);
	if (b < 0)
		return b;
	return a + 1 + b;
}

/* ---- a run ------------------------------------------------------------------------- */

/* A failed add is remembered, so a plugin that ignores the return value still cannot
 * produce a run with a statement or parameter silently missing. */
static int add_failed(struct pgc_run *run, int rc)
{
	if (!run->add_error)
		run->add_error = rc;
	return rc;
}

int plugin_run_add(struct pgc_run *run, const char *sql)
{
	if (!sql || !*sql)
		return add_failed(run, -EINVAL);
	if (array_grow(&run->stmts, run->n_stmts, &run->cap, sizeof(*run->stmts), 4) < 0)
		return add_failed(run, -ENOMEM);
	char *copy = strdup(sql);
	if (!copy)
		return add_failed(run, -ENOMEM);
	run->stmts[run->n_stmts++] = (struct plugin_stmt){.sql = copy};
	return 0;
}

int plugin_run_add_param(struct pgc_run *run, const char *value)
{
	if (run->n_stmts == 0)
		return add_failed(run, -EINVAL);
	struct plugin_stmt *st = &run->stmts[run->n_stmts - 1];
	if (st->n_params >= MAX_PARAMS)
		return add_failed(run, -E2BIG);
	char *copy = NULL;
	if (value && !(copy = strdup(value)))
		return add_failed(run, -ENOMEM);
	/* Parameters are few (a handful per statement): grow one at a time. */
	char **params = realloc(st->params, ((size_t)st->n_params + 1) * sizeof(*params));
	if (!params) {
		free(copy);
		return add_failed(run, -ENOMEM);
	}
	params[st->n_params++] = copy;
	st->params = params;
	return 0;
}

void plugin_run_error(struct pgc_run *run, const char *fmt, ...)
{
	char msg[768];
	TEXT_VA_FORMAT(msg, sizeof(msg), fmt);
	if (run->error)
		return;           /* the first reason is the one that matters */
	run->error = strdup(msg); /* on ENOMEM the run still fails, with a generic message */
}

void plugin_run_keys_free(struct pgc_run *run)
{
	text_free_list(run->keys, run->n_keys);
	run->keys = NULL;
	run->n_keys = 0;
}

void plugin_run_free(struct pgc_run **run)
{
	struct pgc_run *r = *run;

	if (!r)
		return;
	for (size_t i = 0; i < r->n_stmts; i++) {
		for (int j = 0; j < r->stmts[i].n_params; j++)
			free(r->stmts[i].params[j]);
		free(r->stmts[i].params);
		free(r->stmts[i].sql);
	}
	free(r->stmts);
	free(r->error);
	plugin_run_keys_free(r);
	free(r->full_reason);
	free(r);
	*run = NULL;
}
