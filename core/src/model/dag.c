#include "dag.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

static int edge_cmp(const void *a, const void *b)
{
	const struct dag_edge *x = a, *y = b;
	if (x->from != y->from)
		return x->from < y->from ? -1 : 1;
	if (x->to != y->to)
		return x->to < y->to ? -1 : 1;
	return 0;
}

/* Index of the first edge leaving node I (edges are sorted by from). */
static size_t first_out(const struct dag *g, size_t i)
{
	size_t lo = 0, hi = g->n_edges;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (g->edges[mid].from < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

enum { WHITE, GREY, BLACK };

struct walk {
	struct dag *g;
	unsigned char *colour;
	size_t *stack; /* nodes on the current DFS path */
	size_t depth;
	size_t unplaced; /* g->order is filled from its end: reverse post-order */
	struct diag_list *dl;
	int cycles;
};

static void report_cycle(struct walk *w, size_t from_depth, size_t closing_edge)
{
	char text[1024];
	size_t len = 0;
	const struct dag_edge *at = &w->g->edges[closing_edge];

	text[0] = '\0';
	for (size_t k = from_depth; k < w->depth; k++) {
		int r =
		    snprintf(text + len, sizeof(text) - len, "%s -> ", w->g->names[w->stack[k]]);
		if (r < 0 || (size_t)r >= sizeof(text) - len)
			break; /* a very long cycle is still named by its first jobs */
		len += (size_t)r;
	}
	if (len < sizeof(text))
		snprintf(text + len, sizeof(text) - len, "%s", w->g->names[w->stack[from_depth]]);
	diag_add(w->dl, at->file, at->line,
	         "jobs depend on each other in a cycle: %s; remove one of these dependencies",
	         text);
	w->cycles++;
}

/* Iterative DFS would be kinder to huge graphs, but job graphs are small (hundreds) and the
 * recursion depth is bounded by the longest dependency chain. */
static void visit(struct walk *w, size_t v)
{
	w->colour[v] = GREY;
	w->stack[w->depth++] = v;
	for (size_t e = first_out(w->g, v); e < w->g->n_edges && w->g->edges[e].from == v; e++) {
		size_t to = w->g->edges[e].to;
		if (w->colour[to] == WHITE) {
			visit(w, to);
		} else if (w->colour[to] == GREY) {
			size_t k = 0;
			while (w->stack[k] != to)
				k++;
			report_cycle(w, k, e);
		}
	}
	w->depth--;
	w->colour[v] = BLACK;
	w->g->order[--w->unplaced] = v;
}

int dag_build(struct dag *g, size_t n, const char *const *names, const struct dag_edge *edges,
              size_t n_edges, struct diag_list *dl)
{
	struct walk w = {0};
	int ret = -ENOMEM;

	*g = (struct dag){.n = n, .names = names};
	g->edges = malloc((n_edges ? n_edges : 1) * sizeof(*g->edges));
	g->order = malloc((n ? n : 1) * sizeof(*g->order));
	w.colour = calloc(n ? n : 1, 1);
	w.stack = malloc((n ? n : 1) * sizeof(size_t));
	if (!g->edges || !g->order || !w.colour || !w.stack)
		goto out;

	for (size_t i = 0; i < n_edges; i++) {
		if (edges[i].from >= n || edges[i].to >= n) {
			ret = -EINVAL;
			goto out;
		}
		g->edges[i] = edges[i];
	}
	qsort(g->edges, n_edges, sizeof(*g->edges), edge_cmp);
	/* merge duplicates, keeping the first declaration's location */
	size_t kept = 0;
	for (size_t i = 0; i < n_edges; i++) {
		if (kept > 0 && edge_cmp(&g->edges[kept - 1], &g->edges[i]) == 0)
			continue;
		g->edges[kept++] = g->edges[i];
	}
	g->n_edges = kept;

	w.g = g;
	w.dl = dl;
	/* reverse post-order is a topological order: upstreams first */
	w.unplaced = n;
	for (size_t v = 0; v < n; v++)
		if (w.colour[v] == WHITE)
			visit(&w, v);
	ret = w.cycles ? -EINVAL : 0;
out:
	free(w.colour);
	free(w.stack);
	if (ret != 0)
		dag_free(g);
	return ret;
}

void dag_free(struct dag *g)
{
	free(g->edges);
	free(g->order);
	g->edges = NULL;
	g->order = NULL;
	g->n = g->n_edges = 0;
}

size_t dag_downstreams(const struct dag *g, size_t i, size_t *out, size_t max)
{
	size_t count = 0;
	for (size_t e = first_out(g, i); e < g->n_edges && g->edges[e].from == i; e++) {
		if (count < max)
			out[count] = g->edges[e].to;
		count++;
	}
	return count;
}

size_t dag_upstreams(const struct dag *g, size_t i, size_t *out, size_t max)
{
	size_t count = 0;
	for (size_t e = 0; e < g->n_edges; e++) {
		if (g->edges[e].to != i)
			continue;
		if (count < max)
			out[count] = g->edges[e].from;
		count++;
	}
	return count;
}

/* DOT IDs are quoted strings: escape quotes and backslashes. */
static void dot_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		if (*s == '\n') {
			fputs("\\n", out);
			continue;
		}
		fputc(*s, out);
	}
	fputc('"', out);
}

static const char *status_colour(const char *st)
{
	if (!st)
		return "grey80";
	if (strcmp(st, "succeeded") == 0)
		return "palegreen";
	if (strcmp(st, "failed") == 0 || strcmp(st, "upstream_failed") == 0)
		return "lightpink";
	if (strcmp(st, "running") == 0)
		return "lightblue";
	return "grey80";
}

void dag_write_dot(const struct dag *g, FILE *out, const char *const *labels,
                   const char *const *status)
{
	fputs("digraph pgcrond {\n\trankdir=LR;\n\tnode [shape=box, style=\"rounded,filled\"];\n",
	      out);
	for (size_t i = 0; i < g->n; i++) {
		char label[512];
		const char *extra = labels ? labels[i] : NULL;
		const char *st = status ? status[i] : NULL;
		int r;
		if (extra && st)
			r = snprintf(label, sizeof(label), "%s\n%s\n%s", g->names[i], extra, st);
		else if (extra)
			r = snprintf(label, sizeof(label), "%s\n%s", g->names[i], extra);
		else
			r = snprintf(label, sizeof(label), "%s", g->names[i]);
		if (r < 0)
			label[0] = '\0';
		fputc('\t', out);
		dot_string(out, g->names[i]);
		fputs(" [label=", out);
		dot_string(out, label);
		fprintf(out, ", fillcolor=%s];\n", status_colour(st));
	}
	for (size_t e = 0; e < g->n_edges; e++) {
		fputc('\t', out);
		dot_string(out, g->names[g->edges[e].from]);
		fputs(" -> ", out);
		dot_string(out, g->names[g->edges[e].to]);
		if (g->edges[e].why) {
			fputs(" [style=dashed, tooltip=", out);
			dot_string(out, g->edges[e].why);
			fputc(']', out);
		}
		fputs(";\n", out);
	}
	fputs("}\n", out);
}
