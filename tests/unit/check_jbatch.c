/* jbatch.c's steps without a session: what the next statement holds under the caps, and
 * a failed statement's items put back in front of those added since. */
#include <check.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "jbatch.h"

/* B with ids FIRST.. FIRST+N-1 waiting, each item {"id":i,"s":"<PAD x's>"} */
static void add_items(struct jbatch *b, int first, int n, size_t pad)
{
	char *s = malloc(pad + 1);
	memset(s, 'x', pad);
	s[pad] = '\0';
	for (int i = first; i < first + n; i++)
		json_array_append_new(b->waiting, json_pack("{s:i, s:s}", "id", i, "s", s));
	free(s);
}

/* The ids in DOC, a JSON array, as "1,2,3". */
static char *ids(const char *doc)
{
	json_t *a = json_loads(doc, 0, NULL);
	char *out = calloc(1, 4096);
	size_t i;
	json_t *v;
	ck_assert_ptr_nonnull(a);
	json_array_foreach(a, i, v)
	{
		char one[24];
		snprintf(one, sizeof(one), "%s%lld", i ? "," : "",
		         (long long)json_integer_value(json_object_get(v, "id")));
		size_t at = strlen(out);
		snprintf(out + at, 4096 - at, "%s", one);
	}
	json_decref(a);
	return out;
}

static void check_take(struct jbatch *b, const char *want, size_t max_doc)
{
	char *doc = jbatch_take(b);
	ck_assert_ptr_nonnull(doc);
	ck_assert_msg(strlen(doc) <= max_doc, "a statement of %zu bytes: %s", strlen(doc), doc);
	char *got = ids(doc);
	ck_assert_str_eq(got, want);
	free(got);
	free(doc);
}

START_TEST(test_caps_and_put_back)
{
	struct event_base *base = event_base_new();
	struct jbatch b;
	ck_assert_int_eq(jbatch_init(&b, NULL, NULL, NULL, NULL), 0);
	b.max_items = 3;
	b.max_bytes = 100;
	ck_assert_ptr_null(jbatch_take(&b)); /* nothing waits */

	/* at most 3 items */
	add_items(&b, 1, 5, 1);
	check_take(&b, "1,2,3", 100);
	ck_assert_uint_eq(json_array_size(b.waiting), 2);
	/* the statement fails: its items go back in front of those added since, in order */
	add_items(&b, 6, 1, 1);
	jbatch_unsend(&b);
	ck_assert_ptr_null(b.sending);
	ck_assert_uint_eq(json_array_size(b.waiting), 6);
	check_take(&b, "1,2,3", 100);
	json_decref(b.sending); /* answered */
	b.sending = NULL;
	check_take(&b, "4,5,6", 100);
	json_decref(b.sending);
	b.sending = NULL;
	ck_assert_ptr_null(jbatch_take(&b));

	/* at most 100 bytes: items of about 40 bytes go two by two */
	add_items(&b, 10, 3, 25);
	check_take(&b, "10,11", 100);
	jbatch_unsend(&b);
	check_take(&b, "10,11", 100);
	json_decref(b.sending);
	b.sending = NULL;
	/* an item larger than the cap goes, alone */
	add_items(&b, 20, 1, 300);
	check_take(&b, "12", 100);
	json_decref(b.sending);
	b.sending = NULL;
	check_take(&b, "20", 400);
	jbatch_unsend(&b);
	ck_assert_uint_eq(json_array_size(b.waiting), 1);
	jbatch_free(&b);
	event_base_free(base);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jbatch");
	TCase *tc = tcase_create("steps");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_caps_and_put_back);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
