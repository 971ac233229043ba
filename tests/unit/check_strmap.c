/* strmap.c: the one string map: several entries under one key, found in their order; one
 * of them removed; growth past many entries; iteration; the empty key. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

struct item {
	char name[32];
	int value;
	int seen;
	struct strmap_node node;
};

/* Items named NAMES, valued 1, 2, ..., inserted into M in that order. */
static void put(struct strmap *m, struct item *it, const char *const *names, int n)
{
	for (int i = 0; i < n; i++) {
		snprintf(it[i].name, sizeof(it[i].name), "%s", names[i]);
		it[i].value = i + 1;
		strmap_insert(m, &it[i].node, it[i].name);
	}
}

static struct item *find(const struct strmap *m, const char *key)
{
	struct strmap_node *n = strmap_find(m, key);
	return STRMAP_ENTRY(n, struct item, node);
}

static struct item *after(const struct item *it)
{
	struct strmap_node *n = strmap_find_next(&it->node);
	return STRMAP_ENTRY(n, struct item, node);
}

START_TEST(test_zeroed_map_is_empty)
{
	struct strmap m = {0};

	ck_assert_ptr_null(strmap_find(&m, "x"));
	ck_assert_ptr_null(strmap_find(&m, ""));
	ck_assert_ptr_null(strmap_first(&m));
	strmap_free(&m);
	ck_assert_uint_eq(m.n, 0);
}
END_TEST

START_TEST(test_duplicates_in_order)
{
	struct strmap m = {0};
	struct item it[5] = {0};

	put(&m, it, (const char *[]){"a", "b", "a", "c", "a"}, 5);
	ck_assert_uint_eq(m.n, 5);
	struct item *x = find(&m, "a");
	ck_assert_ptr_eq(x, &it[0]);
	ck_assert_ptr_eq(x = after(x), &it[2]);
	ck_assert_ptr_eq(x = after(x), &it[4]);
	ck_assert_ptr_null(after(x));
	ck_assert_ptr_eq(find(&m, "b"), &it[1]);
	ck_assert_ptr_null(after(&it[1]));
	ck_assert_ptr_null(find(&m, "d"));
	ck_assert_ptr_null(find(&m, "aa"));
	strmap_free(&m);
}
END_TEST

START_TEST(test_remove_one_of_several)
{
	struct strmap m = {0};
	struct item it[4] = {0};

	put(&m, it, (const char *[]){"job", "job", "other", "job"}, 4);
	strmap_remove(&m, &it[1].node); /* the middle one */
	ck_assert_uint_eq(m.n, 3);
	ck_assert_ptr_eq(find(&m, "job"), &it[0]);
	ck_assert_ptr_eq(after(&it[0]), &it[3]);
	ck_assert_ptr_null(after(&it[3]));
	strmap_remove(&m, &it[0].node); /* the first */
	ck_assert_ptr_eq(find(&m, "job"), &it[3]);
	ck_assert_ptr_eq(find(&m, "other"), &it[2]);
	/* inserted again: after the one left */
	strmap_insert(&m, &it[0].node, it[0].name);
	ck_assert_ptr_eq(find(&m, "job"), &it[3]);
	ck_assert_ptr_eq(after(&it[3]), &it[0]);
	strmap_remove(&m, &it[3].node);
	strmap_remove(&m, &it[0].node);
	ck_assert_ptr_null(find(&m, "job"));
	ck_assert_uint_eq(m.n, 1);
	strmap_free(&m);
}
END_TEST

/* Past many growths, every key is still found, the duplicates of one key keep their
 * order, and a walk sees every entry exactly once. */
START_TEST(test_growth_and_iteration)
{
	enum { N = 50000, DUPS = 300 };
	struct item *it = calloc(N + DUPS, sizeof(*it));
	struct strmap m = {0};

	ck_assert_ptr_nonnull(it);
	for (int i = 0; i < N; i++) {
		snprintf(it[i].name, sizeof(it[i].name), "job-%d", i);
		it[i].value = i;
		strmap_insert(&m, &it[i].node, it[i].name);
		if (i % 167 == 0 && i / 167 < DUPS) {
			struct item *d = &it[N + i / 167];
			snprintf(d->name, sizeof(d->name), "dup");
			d->value = i / 167;
			strmap_insert(&m, &d->node, d->name);
		}
	}
	ck_assert_uint_eq(m.n, N + DUPS);
	ck_assert_uint_ge(m.n_buckets, N);
	for (int i = 0; i < N; i++) {
		char key[32];
		snprintf(key, sizeof(key), "job-%d", i);
		struct item *x = find(&m, key);
		ck_assert_ptr_eq(x, &it[i]);
		ck_assert_ptr_null(after(x));
	}
	int k = 0;
	for (struct item *x = find(&m, "dup"); x; x = after(x))
		ck_assert_int_eq(x->value, k++);
	ck_assert_int_eq(k, DUPS);

	size_t walked = 0;
	for (struct strmap_node *n = strmap_first(&m); n; n = strmap_next(&m, n)) {
		STRMAP_ENTRY(n, struct item, node)->seen++;
		walked++;
	}
	ck_assert_uint_eq(walked, N + DUPS);
	for (int i = 0; i < N + DUPS; i++)
		ck_assert_int_eq(it[i].seen, 1);

	/* removing while walking: take the next first */
	for (struct strmap_node *n = strmap_first(&m), *next; n; n = next) {
		next = strmap_next(&m, n);
		if (STRMAP_ENTRY(n, struct item, node)->value % 2)
			strmap_remove(&m, n);
	}
	for (int i = 0; i < N; i++)
		ck_assert((find(&m, it[i].name) != NULL) == (i % 2 == 0));
	strmap_free(&m);
	ck_assert_ptr_null(strmap_first(&m));
	free(it);
}
END_TEST

START_TEST(test_empty_key)
{
	struct strmap m = {0};
	struct item it[3] = {0};

	ck_assert_ptr_null(find(&m, ""));
	put(&m, it, (const char *[]){"", "x", ""}, 3);
	ck_assert_ptr_eq(find(&m, ""), &it[0]);
	ck_assert_ptr_eq(after(&it[0]), &it[2]);
	ck_assert_ptr_eq(find(&m, "x"), &it[1]);
	strmap_remove(&m, &it[0].node);
	ck_assert_ptr_eq(find(&m, ""), &it[2]);
	strmap_free(&m);
}
END_TEST

/* The owner may point its node at an equal copy of the key (sched_job_own_strs does). */
START_TEST(test_key_moved_to_copy)
{
	struct strmap m = {0};
	struct item a = {0};
	char *copy = strdup("moving");

	put(&m, &a, (const char *[]){"moving"}, 1);
	a.node.key = copy;
	ck_assert_ptr_eq(find(&m, "moving"), &a);
	strmap_remove(&m, &a.node);
	ck_assert_ptr_null(find(&m, "moving"));
	free(copy);
	strmap_free(&m);
}
END_TEST

START_TEST(test_hash)
{
	/* 64-bit FNV-1a's published values */
	ck_assert_uint_eq(strmap_hash(""), 0xcbf29ce484222325ULL);
	ck_assert_uint_eq(strmap_hash("a"), 0xaf63dc4c8601ec8cULL);
	ck_assert_uint_eq(strmap_hash("foobar"), 0x85944171f73967e8ULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("strmap");
	TCase *tc = tcase_create("strmap");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_zeroed_map_is_empty);
	tcase_add_test(tc, test_duplicates_in_order);
	tcase_add_test(tc, test_remove_one_of_several);
	tcase_add_test(tc, test_growth_and_iteration);
	tcase_add_test(tc, test_empty_key);
	tcase_add_test(tc, test_key_moved_to_copy);
	tcase_add_test(tc, test_hash);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
