/* The command line's tables (cli_print_table): what `pgcrond list`, `status` and `history`
 * print lines up on a terminal, whatever letters the names hold. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* What cli_print_table prints for HEAD and the ROWS x 2 CELLS, RIGHT as it takes it. */
static char *table(const char *const head[2], const char (*cells)[2][32], size_t rows,
                   unsigned right)
{
	static char out[4096];
	FILE *f = tmpfile();
	ck_assert_ptr_nonnull(f);
	fflush(stdout);
	int saved = dup(1);
	dup2(fileno(f), 1);
	cli_print_table(head, cells[0][0], rows, 2, sizeof(cells[0][0]), right);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	rewind(f);
	size_t n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	fclose(f);
	return out;
}

/* A name with accents or CJK letters takes fewer columns than bytes: the next column still
 * starts where the others' does. */
START_TEST(test_columns_not_bytes)
{
	static const char *const head[2] = {"NAME", "KIND"};
	static const char cells[][2][32] = {
	    {"nettoyage \xc3\xa9tape 2", "sql"},
	    {"\xc3\x84rger-B\xc3\xbcro", "sql"},
	    {"\xe6\x97\xa5\xe6\xac\xa1\xe9\x9b\x86\xe8\xa8\x88", "http"},
	};
	ck_assert_str_eq(table(head, cells, 3, 0),
	                 "NAME               KIND\n"
	                 "nettoyage \xc3\xa9tape 2  sql\n"
	                 "\xc3\x84rger-B\xc3\xbcro         sql\n"
	                 "\xe6\x97\xa5\xe6\xac\xa1\xe9\x9b\x86\xe8\xa8\x88           http\n");
}
END_TEST

/* A right-aligned column is padded on its left, by columns too. */
START_TEST(test_right_aligned)
{
	static const char *const head[2] = {"RUNS", "JOB"};
	static const char cells[][2][32] = {{"\xc3\xa9\xc3\xa9", "a"}, {"1234", "b"}};
	ck_assert_str_eq(table(head, cells, 2, 1u), "RUNS  JOB\n"
	                                            "  \xc3\xa9\xc3\xa9  a\n"
	                                            "1234  b\n");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("table");
	tcase_add_test(tc, test_columns_not_bytes);
	tcase_add_test(tc, test_right_aligned);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
