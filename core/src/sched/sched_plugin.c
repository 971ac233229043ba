/* A plugin job's statements: what its plugin builds and the guards of the views it refreshes
 * CONCURRENTLY (sched_priv.h; run_begin in sched.c sends them). */
#include <stdio.h>
#include <stdlib.h>

#include "exec.h"
#include "plugin.h"
#include "sched_priv.h"
#include "text.h"

/* DESIGN.md: a view refreshed CONCURRENTLY must have a usable unique index, checked before
 * the refresh (never a silent blocking fallback), and a view never populated gets one plain
 * refresh first. pgcrond.prepare_concurrent_refresh() (sql/refresh.sql, put into each job
 * database by `pgcrond install`) does both; it runs ahead of the plugin's statements, on the
 * same connection, with the view's name as a parameter. Returns the number of guards. */
static long concurrent_guards(const struct plugin *p, const struct conf_job *conf,
                              char names[][512], struct exec_stmt *out, char *err, size_t errlen)
{
	static const char guard_sql[] =
	    "SELECT pgcrond.prepare_concurrent_refresh($1::pg_catalog.regclass)";
	struct pgc_relation_decl *rels = NULL;
	size_t n_rels = 0;
	long n = 0;

	/* the declared relations and a per-job one (sql_view's view, ABI 1.1 job_relation) */
	if (plugin_job_relations(p, conf, &rels, &n_rels, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < n_rels; i++) {
		if (rels[i].kind != PGC_RELATION_MATVIEW ||
		    !(rels[i].flags & PGC_RELATION_CONCURRENT))
			continue;
		/* never refresh without the guard: a view it cannot cover fails the run */
		if (n == SCHED_MAX_GUARDS) {
			snprintf(err, errlen,
			         "more than %d views refreshed CONCURRENTLY in one job",
			         SCHED_MAX_GUARDS);
			n = -1;
			break;
		}
		if (plugin_quote_qualified(rels[i].name, names[n], 512) < 0) {
			text_format(err, errlen, "cannot quote the view name \"%s\"", rels[i].name);
			n = -1;
			break;
		}
		out[n] = (struct exec_stmt){.sql = guard_sql, .n_params = 1};
		n++;
	}
	plugin_relations_free(&rels);
	return n;
}

int sched_plugin_stmts(struct run *r, struct run_stmts *b, char *command, size_t cmdlen, char *err,
                       size_t errlen)
{
	struct job *j = r->job;
	/* built by its plugin (values as parameters), found once for the build and its guards */
	const struct plugin *p =
	    j->s->plugins ? plugin_registry_find(j->s->plugins, j->plugin) : NULL;
	int rc = -1;
	if (!p || !j->conf)
		snprintf(err, errlen, "plugin \"%s\" is not loaded", j->plugin);
	else if (plugin_build_run(p, j->conf, (const char *const *)r->payloads, r->n_payloads,
	                          &b->pr, err, errlen) == 0)
		rc = 0;
	if (rc == 0 && !(b->v = calloc(b->pr->n_stmts + SCHED_MAX_GUARDS, sizeof(*b->v)))) {
		snprintf(err, errlen, "out of memory building the run");
		rc = -1;
	}
	if (rc == 0) {
		/* nothing to do is a success without statements, guards included */
		long g = b->pr->n_stmts
		             ? concurrent_guards(p, j->conf, b->guard_names, b->v, err, errlen)
		             : 0;
		for (long i = 0; i < g; i++) {
			b->guard_params[i] = b->guard_names[i];
			b->v[i].params = &b->guard_params[i];
		}
		size_t first = g > 0 ? (size_t)g : 0;
		for (size_t i = 0; i < b->pr->n_stmts; i++)
			b->v[first + i] = (struct exec_stmt){
			    .sql = b->pr->stmts[i].sql,
			    .params = (const char *const *)b->pr->stmts[i].params,
			    .n_params = b->pr->stmts[i].n_params};
		b->n = first + b->pr->n_stmts;
		rc = g < 0 ? -1 : 0;
	}
	snprintf(command, cmdlen, "plugin %s: %s", j->plugin,
	         b->pr && b->pr->n_stmts ? b->pr->stmts[0].sql : "");
	return rc;
}

void sched_plugin_stmts_free(struct run_stmts *b)
{
	free(b->v);
	b->v = NULL;
	if (b->pr)
		plugin_run_free(&b->pr);
}
