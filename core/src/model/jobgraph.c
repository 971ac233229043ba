#include "jobgraph.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "config.h"
#include "plugin.h"
#include "text.h"

struct edges {
	struct dag_edge *items;
	size_t n, cap;
};

static int add_edge(struct edges *e, size_t from, size_t to, const struct conf_job *j, int line,
                    const char *why)
{
	if (array_grow(&e->items, e->n, &e->cap, sizeof(*e->items), 16) < 0)
		return -ENOMEM;
	e->items[e->n++] = (struct dag_edge){from, to, j->file, line > 0 ? line : j->line, why};
	return 0;
}

/* Edges for "job I's plugin reads plugin R": from every job running R. */
static int add_read_edges(struct jobgraph *g, struct edges *e, const struct pgc_config *cfg,
                          size_t i, const char *reads)
{
	const struct conf_job *j = &cfg->jobs[i];
	for (size_t k = 0; k < cfg->n_jobs; k++) {
		if (!cfg->jobs[k].plugin || strcmp(cfg->jobs[k].plugin, reads) != 0)
			continue;
		if (array_grow(&g->whys, g->n_whys, &g->cap_whys, sizeof(*g->whys), 8) < 0 ||
		    asprintf(&g->whys[g->n_whys], "plugin %s reads %s", j->plugin, reads) < 0)
			return -ENOMEM;
		if (add_edge(e, k, i, j, j->plugin_line, g->whys[g->n_whys++]) != 0)
			return -ENOMEM;
	}
	return 0;
}

int jobgraph_build(const struct pgc_config *cfg, const struct plugin_registry *reg,
                   struct jobgraph *g, struct diag_list *dl)
{
	struct edges e = {0};
	int ret = -ENOMEM;

	memset(g, 0, sizeof(*g));
	g->names = malloc((cfg->n_jobs ? cfg->n_jobs : 1) * sizeof(*g->names));
	if (!g->names)
		goto out;
	for (size_t i = 0; i < cfg->n_jobs; i++)
		g->names[i] = cfg->jobs[i].name;

	for (size_t i = 0; i < cfg->n_jobs; i++) {
		const struct conf_job *j = &cfg->jobs[i];
		for (size_t a = 0; a < j->n_after; a++) {
			const struct conf_job *up = config_job(cfg, j->after[a]);
			if (up &&
			    add_edge(&e, (size_t)(up - cfg->jobs), i, j, j->after_line, NULL) != 0)
				goto out;
		}
		const struct plugin *p =
		    reg && j->plugin ? plugin_registry_find(reg, j->plugin) : NULL;
		if (!p || !p->decl.reads)
			continue;
		for (const char *const *r = p->decl.reads; *r; r++)
			if (add_read_edges(g, &e, cfg, i, *r) != 0)
				goto out;
	}
	ret = dag_build(&g->dag, cfg->n_jobs, g->names, e.items, e.n, dl);
out:
	free(e.items);
	if (ret != 0)
		jobgraph_free(g);
	return ret;
}

void jobgraph_free(struct jobgraph *g)
{
	dag_free(&g->dag);
	free(g->names);
	text_free_list(g->whys, g->n_whys);
	memset(g, 0, sizeof(*g));
}
