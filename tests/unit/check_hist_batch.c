/* The run key -> start map of the history writer (hist_batch.h): what a run's end looks up
 * to name its row's day partition. Open addressing with deletion by re-placing: every key
 * still in the map must be found after any mix of puts and deletes. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "hist_batch.h"

START_TEST(keys_are_found_until_deleted)
{
	struct hist_keymap m = {0};
	ck_assert_int_eq(hist_keymap_get(&m, 1), 0); /* empty */
	for (uint64_t k = 1; k <= 20000; k++)
		ck_assert_int_eq(hist_keymap_put(&m, k, (int64_t)(k * 1000 + 7)), 0);
	ck_assert_uint_eq(m.n, 20000);
	/* delete every third key, as runs end out of order */
	for (uint64_t k = 3; k <= 20000; k += 3)
		hist_keymap_del(&m, k);
	for (uint64_t k = 1; k <= 20000; k++)
		ck_assert_int_eq(hist_keymap_get(&m, k), k % 3 ? (int64_t)(k * 1000 + 7) : 0);
	ck_assert_uint_eq(m.n, 20000 - 20000 / 3);
	/* a key put again takes its new start; an unknown key and key 0 are absent */
	ck_assert_int_eq(hist_keymap_put(&m, 4, 99), 0);
	ck_assert_int_eq(hist_keymap_get(&m, 4), 99);
	ck_assert_int_eq(hist_keymap_get(&m, 1u << 30), 0);
	ck_assert_int_eq(hist_keymap_put(&m, 0, 1), -EINVAL);
	hist_keymap_del(&m, 123456789); /* absent: nothing happens */
	ck_assert_uint_eq(m.n, 20000 - 20000 / 3);
	hist_keymap_free(&m);
	ck_assert_int_eq(hist_keymap_get(&m, 1), 0);
}
END_TEST

START_TEST(deleting_everything_leaves_an_empty_map)
{
	struct hist_keymap m = {0};
	for (uint64_t k = 1; k <= 5000; k++)
		ck_assert_int_eq(hist_keymap_put(&m, k * 7919, 1), 0);
	for (uint64_t k = 5000; k >= 1; k--)
		hist_keymap_del(&m, k * 7919);
	ck_assert_uint_eq(m.n, 0);
	for (size_t i = 0; i < m.cap; i++)
		ck_assert_uint_eq(m.keys[i], 0);
	hist_keymap_free(&m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hist_batch");
	TCase *tc = tcase_create("keymap");
	tcase_add_test(tc, keys_are_found_until_deleted);
	tcase_add_test(tc, deleting_everything_leaves_an_empty_map);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
