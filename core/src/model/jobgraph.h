#ifndef PGCROND_JOBGRAPH_H
#define PGCROND_JOBGRAPH_H

/* The job graph of a configuration: the `after` lists of its jobs plus the edges its plugins
 * declare (a job whose plugin reads plugin P runs after every job that runs P). Bridges the
 * config and the plugin registry to the pure dag module. */

#include "dag.h"

struct pgc_config;
struct plugin_registry;
struct diag_list;

struct jobgraph {
	struct dag dag;     /* node i = cfg->jobs[i] */
	const char **names; /* borrowed from the config */
	char **whys;        /* edge explanations the dag points at */
	size_t n_whys, cap_whys;
};

/* Build CFG's job graph. REG may be NULL (no plugin edges). `after` names that are not jobs
 * are left to the config check. Cycles go into DL with the cycle named. Returns 0, -EINVAL
 * (a cycle; G is then empty) or -ENOMEM. */
int jobgraph_build(const struct pgc_config *cfg, const struct plugin_registry *reg,
                   struct jobgraph *g, struct diag_list *dl) __attribute__((warn_unused_result));
void jobgraph_free(struct jobgraph *g);

#endif
