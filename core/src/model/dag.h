#ifndef PGCROND_DAG_H
#define PGCROND_DAG_H

/* The job dependency graph: nodes are jobs (by index), an edge runs from an upstream to a
 * downstream job (from a job's `after` list, or from a plugin that reads another plugin's
 * relation). Pure logic: cycle detection with the cycle named, topological order, fan-out
 * lookups and Graphviz output. */

#include <stddef.h>
#include <stdio.h>

struct diag_list;

struct dag_edge {
	size_t from;      /* upstream job index */
	size_t to;        /* downstream job index */
	const char *file; /* where the edge was declared (for messages), may be NULL */
	int line;
	const char
	    *why; /* NULL for `after`, or e.g. "plugin weakness_patterns reads lane_distribution" */
};

struct dag {
	size_t n; /* nodes */
	const char *const *names;
	struct dag_edge *edges; /* copied, sorted by (from, to) */
	size_t n_edges;
	size_t *order; /* a topological order (upstreams first), valid after dag_build */
};

/* Build the graph over N named nodes. Duplicate edges are merged. Every cycle is reported in
 * DL as "FILE:LINE: jobs depend on each other in a cycle: a -> b -> c -> a; remove one of
 * these dependencies" (FILE:LINE of an edge on the cycle). Returns 0, -EINVAL if there is a
 * cycle (the graph is then unusable), or -ENOMEM. NAMES must outlive the dag. */
int dag_build(struct dag *g, size_t n, const char *const *names, const struct dag_edge *edges,
              size_t n_edges, struct diag_list *dl) __attribute__((warn_unused_result));
void dag_free(struct dag *g);

/* The upstreams / downstreams of node I: writes up to MAX indexes, returns how many exist. */
size_t dag_upstreams(const struct dag *g, size_t i, size_t *out, size_t max);
size_t dag_downstreams(const struct dag *g, size_t i, size_t *out, size_t max);

/* Graphviz DOT. LABELS[i] (may be NULL) is a second line under each node's name, e.g. its
 * schedule and last status; STATUS[i] (may be NULL) colours the node: "succeeded" green,
 * "failed"/"upstream_failed" red, "running" blue, anything else grey. */
void dag_write_dot(const struct dag *g, FILE *out, const char *const *labels,
                   const char *const *status);

#endif
