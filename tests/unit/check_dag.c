/* The dependency graph: cycles are named, order is topological, DOT is well formed. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dag.h"

static const char *const names[] = {"a", "b", "c", "d", "e"};

static size_t pos(const struct dag *g, size_t node)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->order[i] == node)
			return i;
	ck_abort_msg("node %zu not in order", node);
	return 0;
}

START_TEST(diamond_is_ordered)
{
	/* a -> b, a -> c, b -> d, c -> d */
	struct dag_edge e[] = {{0, 1, "f.conf", 1, NULL},
	                       {0, 2, "f.conf", 2, NULL},
	                       {1, 3, "f.conf", 3, NULL},
	                       {2, 3, "f.conf", 4, NULL}};
	struct diag_list dl = {0};
	struct dag g;
	ck_assert_int_eq(dag_build(&g, 4, names, e, 4, &dl), 0);
	ck_assert_uint_eq(dl.n, 0);
	ck_assert_uint_lt(pos(&g, 0), pos(&g, 1));
	ck_assert_uint_lt(pos(&g, 0), pos(&g, 2));
	ck_assert_uint_lt(pos(&g, 1), pos(&g, 3));
	ck_assert_uint_lt(pos(&g, 2), pos(&g, 3));
	size_t out[4];
	ck_assert_uint_eq(dag_downstreams(&g, 0, out, 4), 2);
	ck_assert_uint_eq(out[0], 1);
	ck_assert_uint_eq(out[1], 2);
	ck_assert_uint_eq(dag_upstreams(&g, 3, out, 4), 2);
	dag_free(&g);
	diag_clear(&dl);
}
END_TEST

START_TEST(cycle_is_named)
{
	/* a -> b -> c -> a, d alone */
	struct dag_edge e[] = {{0, 1, "conf.d/10-a.conf", 4, NULL},
	                       {1, 2, "conf.d/20-b.conf", 5, NULL},
	                       {2, 0, "conf.d/30-c.conf", 6, NULL}};
	struct diag_list dl = {0};
	struct dag g;
	ck_assert_int_eq(dag_build(&g, 4, names, e, 3, &dl), -EINVAL);
	ck_assert_uint_eq(dl.n, 1);
	ck_assert_str_eq(dl.items[0].message,
	                 "jobs depend on each other in a cycle: a -> b -> c -> a; "
	                 "remove one of these dependencies");
	ck_assert_str_eq(dl.items[0].file, "conf.d/30-c.conf");
	ck_assert_int_eq(dl.items[0].line, 6);
	diag_clear(&dl);
}
END_TEST

START_TEST(self_dependency_is_a_cycle)
{
	struct dag_edge e[] = {{1, 1, "x.conf", 9, NULL}};
	struct diag_list dl = {0};
	struct dag g;
	ck_assert_int_eq(dag_build(&g, 2, names, e, 1, &dl), -EINVAL);
	ck_assert_uint_eq(dl.n, 1);
	ck_assert_str_eq(dl.items[0].message, "jobs depend on each other in a cycle: b -> b; "
	                                      "remove one of these dependencies");
	diag_clear(&dl);
}
END_TEST

START_TEST(two_cycles_both_reported)
{
	/* a <-> b and c <-> d */
	struct dag_edge e[] = {
	    {0, 1, "f", 1, NULL}, {1, 0, "f", 2, NULL}, {2, 3, "f", 3, NULL}, {3, 2, "f", 4, NULL}};
	struct diag_list dl = {0};
	struct dag g;
	ck_assert_int_eq(dag_build(&g, 4, names, e, 4, &dl), -EINVAL);
	ck_assert_uint_eq(dl.n, 2);
	ck_assert(strstr(dl.items[0].message, "a -> b -> a") != NULL);
	ck_assert(strstr(dl.items[1].message, "c -> d -> c") != NULL);
	diag_clear(&dl);
}
END_TEST

START_TEST(duplicate_edges_merge)
{
	struct dag_edge e[] = {{0, 1, "f", 1, NULL}, {0, 1, "g", 2, "plugin b reads a"}};
	struct diag_list dl = {0};
	struct dag g;
	ck_assert_int_eq(dag_build(&g, 2, names, e, 2, &dl), 0);
	ck_assert_uint_eq(g.n_edges, 1);
	dag_free(&g);
}
END_TEST

START_TEST(out_of_range_edge_refused)
{
	struct dag_edge e[] = {{0, 7, "f", 1, NULL}};
	struct diag_list dl = {0};
	struct dag g;
	ck_assert_int_eq(dag_build(&g, 2, names, e, 1, &dl), -EINVAL);
}
END_TEST

START_TEST(dot_output)
{
	struct dag_edge e[] = {{0, 1, "f", 1, NULL}, {1, 2, "f", 2, "plugin c reads b"}};
	struct diag_list dl = {0};
	struct dag g;
	ck_assert_int_eq(dag_build(&g, 3, names, e, 2, &dl), 0);
	const char *labels[] = {"*/10 * * * *", NULL, "after b"};
	const char *status[] = {"succeeded", "failed", NULL};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	dag_write_dot(&g, f, labels, status);
	fclose(f);
	ck_assert_msg(strncmp(buf, "digraph pgcrond {", 17) == 0, "%s", buf);
	ck_assert_msg(
	    strstr(buf, "\"a\" [label=\"a\\n*/10 * * * *\\nsucceeded\", fillcolor=palegreen];") !=
	        NULL,
	    "%s", buf);
	ck_assert_msg(strstr(buf, "\"b\" [label=\"b\", fillcolor=lightpink];") != NULL, "%s", buf);
	ck_assert_msg(strstr(buf, "\"a\" -> \"b\";") != NULL, "%s", buf);
	ck_assert_msg(strstr(buf, "\"b\" -> \"c\" [style=dashed, tooltip=\"plugin c reads b\"];") !=
	                  NULL,
	              "%s", buf);
	ck_assert(buf[len - 2] == '}');
	free(buf);
	dag_free(&g);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dag");
	TCase *tc = tcase_create("dag");
	tcase_add_test(tc, diamond_is_ordered);
	tcase_add_test(tc, cycle_is_named);
	tcase_add_test(tc, self_dependency_is_a_cycle);
	tcase_add_test(tc, two_cycles_both_reported);
	tcase_add_test(tc, duplicate_edges_merge);
	tcase_add_test(tc, out_of_range_edge_refused);
	tcase_add_test(tc, dot_output);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
