/* The job graph of a real configuration: `pgcrond check` names a cycle with FILE:LINE, and
 * an acyclic config yields its dependency order. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "jobgraph.h"

START_TEST(cycle_named_with_file_and_line)
{
	ck_assert_int_eq(chdir(TEST_SOURCE_DIR "/unit/configs"), 0);
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	ck_assert_int_eq(config_load("bad/cycle/pgcrond.conf", &cfg, &dl), 0);
	struct jobgraph g;
	ck_assert_int_eq(jobgraph_build(cfg, NULL, &g, &dl), -EINVAL);
	ck_assert_uint_eq(dl.n, 1);
	ck_assert_str_eq(dl.items[0].file, "bad/cycle/conf.d/10-jobs.conf");
	ck_assert_int_eq(dl.items[0].line, 7);
	ck_assert_str_eq(dl.items[0].message, "jobs depend on each other in a cycle: a -> b -> c "
	                                      "-> a; remove one of these dependencies");
	diag_clear(&dl);
	config_free(&cfg);
}
END_TEST

START_TEST(acyclic_config_is_ordered)
{
	ck_assert_int_eq(chdir(TEST_SOURCE_DIR "/unit/configs"), 0);
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	ck_assert_int_eq(config_load("good/full/pgcrond.conf", &cfg, &dl), 0);
	struct jobgraph g;
	ck_assert_int_eq(jobgraph_build(cfg, NULL, &g, &dl), 0);
	ck_assert_uint_eq(dl.n, 0);
	/* every `after` edge goes from an earlier to a later position in the order */
	for (size_t e = 0; e < g.dag.n_edges; e++) {
		size_t pf = 0, pt = 0;
		for (size_t k = 0; k < g.dag.n; k++) {
			if (g.dag.order[k] == g.dag.edges[e].from)
				pf = k;
			if (g.dag.order[k] == g.dag.edges[e].to)
				pt = k;
		}
		ck_assert_uint_lt(pf, pt);
	}
	jobgraph_free(&g);
	config_free(&cfg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jobgraph");
	TCase *tc = tcase_create("jobgraph");
	tcase_add_test(tc, cycle_named_with_file_and_line);
	tcase_add_test(tc, acyclic_config_is_ordered);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
