/* Debounce with a ceiling: quiet periods trigger a run, a steady stream cannot postpone it
 * past max_delay, and untrusted payloads are bounded and validated. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debounce.h"

START_TEST(nothing_pending)
{
	struct debounce d;
	debounce_init(&d, 5000, 60000);
	ck_assert_int_eq(debounce_due(&d), -1);
	debounce_free(&d);
}
END_TEST

START_TEST(quiet_period_after_last)
{
	struct debounce d;
	debounce_init(&d, 5000, 60000);
	debounce_note(&d, 1000, "a");
	ck_assert_int_eq(debounce_due(&d), 6000);
	debounce_note(&d, 3000, "b");
	ck_assert_int_eq(debounce_due(&d), 8000);
	size_t n;
	bool over;
	char **p = debounce_take(&d, &n, &over);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(p[0], "a");
	ck_assert_str_eq(p[1], "b");
	ck_assert(!over);
	free(p[0]);
	free(p[1]);
	free(p);
	ck_assert_int_eq(debounce_due(&d), -1);
	debounce_free(&d);
}
END_TEST

START_TEST(steady_stream_is_capped_by_max_delay)
{
	struct debounce d;
	debounce_init(&d, 5000, 60000);
	/* one notification every second for two minutes: never 5 s of quiet */
	for (int64_t t = 0; t <= 120000; t += 1000) {
		debounce_note(&d, t, "x");
		ck_assert_int_le(debounce_due(&d), 60000);
	}
	ck_assert_int_eq(debounce_due(&d), 60000);
	debounce_free(&d);
}
END_TEST

START_TEST(thousand_payloads_kept_in_order)
{
	struct debounce d;
	debounce_init(&d, 500, 60000);
	char buf[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(buf, sizeof(buf), "{\"id\":%d}", i);
		ck_assert_int_eq(debounce_note(&d, i * 2, buf), DEBOUNCE_KEPT);
	}
	size_t n;
	bool over;
	char **p = debounce_take(&d, &n, &over);
	ck_assert_uint_eq(n, 1000);
	ck_assert_str_eq(p[999], "{\"id\":999}");
	for (size_t i = 0; i < n; i++)
		free(p[i]);
	free(p);
	debounce_free(&d);
}
END_TEST

START_TEST(untrusted_payloads)
{
	struct debounce d;
	debounce_init(&d, 500, 60000);
	char *big = malloc(DEBOUNCE_MAX_PAYLOAD + 2);
	memset(big, 'a', DEBOUNCE_MAX_PAYLOAD + 1);
	big[DEBOUNCE_MAX_PAYLOAD + 1] = '\0';
	ck_assert_int_eq(debounce_note(&d, 0, big), DEBOUNCE_OVERSIZED);
	free(big);
	ck_assert_int_eq(debounce_note(&d, 1, "bad \xc3\x28 utf8"), DEBOUNCE_MALFORMED);
	ck_assert_int_eq(debounce_note(&d, 2, "bell\x07"), DEBOUNCE_MALFORMED);
	ck_assert_int_eq(debounce_note(&d, 3, "overlong \xc0\xaf"), DEBOUNCE_MALFORMED);
	ck_assert_int_eq(debounce_note(&d, 4, "surrogate \xed\xa0\x80"), DEBOUNCE_MALFORMED);
	ck_assert_int_eq(debounce_note(&d, 5, "truncated \xe2\x82"), DEBOUNCE_MALFORMED);
	ck_assert_int_eq(debounce_note(&d, 6, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
	                 DEBOUNCE_KEPT);
	ck_assert_int_eq(debounce_note(&d, 7, "'; DROP TABLE x; --"), DEBOUNCE_KEPT);
	/* dropped payloads still count as notifications: the run happens */
	ck_assert_int_eq(debounce_due(&d), 507);
	size_t n;
	char **p = debounce_take(&d, &n, NULL);
	ck_assert_uint_eq(n, 2);
	for (size_t i = 0; i < n; i++)
		free(p[i]);
	free(p);
	debounce_free(&d);
}
END_TEST

START_TEST(overflow_is_flagged)
{
	struct debounce d;
	debounce_init(&d, 500, 60000);
	for (int i = 0; i < DEBOUNCE_MAX_PAYLOADS; i++)
		ck_assert_int_eq(debounce_note(&d, i, "p"), DEBOUNCE_KEPT);
	ck_assert_int_eq(debounce_note(&d, 1, "one too many"), DEBOUNCE_NOTED);
	size_t n;
	bool over;
	char **p = debounce_take(&d, &n, &over);
	ck_assert_uint_eq(n, DEBOUNCE_MAX_PAYLOADS);
	ck_assert(over);
	for (size_t i = 0; i < n; i++)
		free(p[i]);
	free(p);
	debounce_free(&d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("debounce");
	TCase *tc = tcase_create("debounce");
	tcase_add_test(tc, nothing_pending);
	tcase_add_test(tc, quiet_period_after_last);
	tcase_add_test(tc, steady_stream_is_capped_by_max_delay);
	tcase_add_test(tc, thousand_payloads_kept_in_order);
	tcase_add_test(tc, untrusted_payloads);
	tcase_add_test(tc, overflow_is_flagged);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
