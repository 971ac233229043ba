/* A plugin job's statements: what its plugin builds and the guards of the views it refreshes
 * CONCURRENTLY (sched_priv.h; run_begin in sched.c sends them). */
#include <stdio.h>
#include <stdlib.h>

#include "exec.h"
#include "plugin.h"
#include "sched_priv.h"
#include "text.h"

int sched_plugin_stmts(struct run *r, struct run_stmts *b, char *command, size_t cmdlen, char *err,
                       size_t errlen)
{
	static const char guard_sql[] =
	    "SELECT pgcrond.prepare_concurrent_refresh($1::pg_catalog.regclass)";
	struct job *j = r->job;
	/* built by its plugin (values as parameters) */
	const struct plugin *p = j->plug;
	int rc = -1;
	if (!p)
		snprintf(err, errlen, "plugin \"%s\" is not loaded", j->conf->plugin);
	else if (plugin_build_run(p, j->conf, (const char *const *)r->payloads, r->n_payloads,
	                          &b->pr, err, errlen) == 0)
		rc = 0;
	if (rc == 0 && !(b->v = calloc(b->pr->n_stmts + SCHED_MAX_GUARDS, sizeof(*b->v)))) {
		snprintf(err, errlen, "out of memory building the run");
		rc = -1;
	}
	/* DESIGN.md: a view refreshed CONCURRENTLY must have a usable unique index, checked before
	 * the refresh (never a silent blocking fallback), and a view never populated gets one
	 * plain refresh first. pgcrond.prepare_concurrent_refresh() (sql/refresh.sql, put into each
	 * job database by `pgcrond install`) does both; it runs ahead of the plugin's statements,
	 * on the same connection, with the view's name as a parameter. Nothing to do is a success
	 * without statements, guards included. Of the declared relations and a per-job one
	 * (sql_view's view, ABI 1.1 job_relation): */
	struct pgc_relation_decl *rels = NULL;
	size_t n_rels = 0, g = 0;
	if (rc == 0 && b->pr->n_stmts &&
	    plugin_job_relations(p, j->conf, &rels, &n_rels, err, errlen) != 0)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < n_rels; i++) {
		if (rels[i].kind != PGC_RELATION_MATVIEW ||
		    !(rels[i].flags & PGC_RELATION_CONCURRENT))
			continue;
		/* never refresh without the guard: a view it cannot cover fails the run */
		if (g == SCHED_MAX_GUARDS) {
			snprintf(err, errlen,
			         "more than %d views refreshed CONCURRENTLY in one job",
			         SCHED_MAX_GUARDS);
			rc = -1;
		} else if (plugin_quote_qualified(rels[i].name, b->guard_names[g], 512) < 0) {
			text_format(err, errlen, "cannot quote the view name \"%s\"", rels[i].name);
			rc = -1;
		} else {
			b->guard_params[g] = b->guard_names[g];
			b->v[g] = (struct exec_stmt){
			    .sql = guard_sql, .params = &b->guard_params[g], .n_params = 1};
			g++;
		}
	}
	plugin_relations_free(&rels);
	for (size_t i = 0; rc == 0 && i < b->pr->n_stmts; i++)
		b->v[g + i] =
		    (struct exec_stmt){.sql = b->pr->stmts[i].sql,
		                       .params = (const char *const *)b->pr->stmts[i].params,
		                       .n_params = b->pr->stmts[i].n_params};
	b->n = rc == 0 ? g + b->pr->n_stmts : 0;
	snprintf(command, cmdlen, "plugin %s: %s", j->conf->plugin,
	         b->pr && b->pr->n_stmts ? b->pr->stmts[0].sql : "");
	return rc;
}

void sched_plugin_stmts_free(struct run_stmts *b)
{
	free(b->v);
	b->v = NULL;
	plugin_run_free(&b->pr);
}
