/* text.c: cutting on UTF-8 character boundaries and checking UTF-8, as PostgreSQL would. */
#include <check.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

/* "é" is 2 bytes, "€" 3, "𝄞" (U+1D11E) 4 */
#define E2 "\xc3\xa9"
#define E3 "\xe2\x82\xac"
#define E4 "\xf0\x9d\x84\x9e"

START_TEST(test_prefix)
{
	static const struct {
		const char *s;
		size_t max, want;
	} cases[] = {
	    {"abc", 10, 3},
	    {"abc", 2, 2},
	    {"a" E2, 2, 1},
	    {"a" E2, 3, 3},
	    {"a" E2, 1, 1},
	    {E3 "x", 1, 0},
	    {E3 "x", 2, 0},
	    {E3 "x", 3, 3},
	    {E4, 3, 0},
	    {E4 E4, 7, 4},
	    {E4 E4, 8, 8},
	    {"ab" E3, 4, 2},
	    {"\x80\x80\x80\x80x", 2, 2}, /* not UTF-8: cut where asked */
	    {"\xe9t\xe9", 2, 2},         /* LATIN1 bytes: each counts as one */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(text_utf8_prefix(cases[i].s, strlen(cases[i].s), cases[i].max) ==
		                  cases[i].want,
		              "case %zu: %zu", i,
		              text_utf8_prefix(cases[i].s, strlen(cases[i].s), cases[i].max));
}
END_TEST

/* Every cut of a text of mixed widths is valid UTF-8 and as long as it can be. */
START_TEST(test_every_cut_is_valid)
{
	const char *s = "x" E2 E3 "y" E4 E2 "z" E4 E3;
	size_t len = strlen(s);
	char buf[64];

	for (size_t size = 1; size <= len + 1; size++) {
		bool cut = text_copy(buf, size, s);
		ck_assert(text_utf8_valid(buf));
		ck_assert_uint_le(strlen(buf), size - 1);
		ck_assert_uint_ge(strlen(buf) + 3,
		                  size - 1 < len ? size - 1 : len); /* at most 3 lost */
		ck_assert(cut == (size - 1 < len));
		ck_assert(strncmp(buf, s, strlen(buf)) == 0);

		int n = text_format(buf, size, "%s", s);
		ck_assert_int_eq(n, (int)len);
		ck_assert(text_utf8_valid(buf));
		ck_assert(strncmp(buf, s, strlen(buf)) == 0);
	}
}
END_TEST

START_TEST(test_trim)
{
	char a[] = "ab" E3;
	char b[] = "ab\xe2\x82"; /* a cut 3-byte character */
	char c[] = "ab\xf0";
	char d[] = "";
	char e[] = "\xc3"; /* nothing but a lead byte */

	text_utf8_trim(a);
	ck_assert_str_eq(a, "ab" E3);
	text_utf8_trim(b);
	ck_assert_str_eq(b, "ab");
	text_utf8_trim(c);
	ck_assert_str_eq(c, "ab");
	text_utf8_trim(d);
	ck_assert_str_eq(d, "");
	text_utf8_trim(e);
	ck_assert_str_eq(e, "");
}
END_TEST

START_TEST(test_valid)
{
	ck_assert(text_utf8_valid(""));
	ck_assert(text_utf8_valid("plain ASCII"));
	ck_assert(text_utf8_valid("caf" E2 " " E3 " " E4));
	ck_assert(text_utf8_valid("\xef\xbf\xbf"));      /* U+FFFF */
	ck_assert(text_utf8_valid("\xf4\x8f\xbf\xbf"));  /* U+10FFFF */
	ck_assert(!text_utf8_valid("caf\xe9"));          /* LATIN1 */
	ck_assert(!text_utf8_valid("\xc0\xaf"));         /* overlong '/' */
	ck_assert(!text_utf8_valid("\xe0\x80\xaf"));     /* overlong */
	ck_assert(!text_utf8_valid("\xed\xa0\x80"));     /* surrogate U+D800 */
	ck_assert(!text_utf8_valid("\xf4\x90\x80\x80")); /* past U+10FFFF */
	ck_assert(!text_utf8_valid("\xf8\x88\x80\x80\x80"));
	ck_assert(!text_utf8_valid("\x80"));
	ck_assert(!text_utf8_valid("ab\xe2\x82")); /* cut short */
	ck_assert_uint_eq(text_utf8_invalid_at("SELECT 'caf\xe9'", 13), 11);
	ck_assert_uint_eq(text_utf8_invalid_at("ok" E2, 4), 4);
}
END_TEST

START_TEST(test_escape_ctl)
{
	char buf[64], small[6];

	ck_assert_str_eq(text_escape_ctl("a\x01"
	                                 "b\nc\x7f" E2,
	                                 buf, sizeof(buf)),
	                 "a\\x01b\\nc\\x7f" E2);
	ck_assert_str_eq(text_escape_ctl("ab\x01", small, sizeof(small)),
	                 "ab"); /* no half escape */
	ck_assert_str_eq(text_escape_ctl("abc" E3, small, sizeof(small)), "abc");
	ck_assert_str_eq(text_escape_ctl(NULL, buf, sizeof(buf)), "");
}
END_TEST

/* A pg_cron job name in a log line or on a terminal: quoted, its quotes and backslashes
 * escaped, controls as everywhere, spaces, "&" and non-ASCII as they are. */
START_TEST(test_quote)
{
	char buf[64], small[8];

	ck_assert_str_eq(text_quote("User Checkout & Session", buf, sizeof(buf)),
	                 "\"User Checkout & Session\"");
	ck_assert_str_eq(text_quote("nettoyage \xc3\xa9tape 2", buf, sizeof(buf)),
	                 "\"nettoyage \xc3\xa9tape 2\"");
	ck_assert_str_eq(text_quote("a\"b\\c\nd", buf, sizeof(buf)), "\"a\\\"b\\\\c\\nd\"");
	ck_assert_str_eq(text_quote("abcd\xc3\xa9", small, sizeof(small)), "\"abcd\"");
	ck_assert_str_eq(text_quote(NULL, buf, sizeof(buf)), "\"\"");
	ck_assert_str_eq(text_quote("x", small, 2), "");
}
END_TEST

/* One function for every place that prints server text: C0, DEL and C1 (CSI, OSC in 8 bits)
 * escaped, in three modes; other UTF-8 untouched. */
START_TEST(test_escape_dup)
{
	char *e = text_escape_dup("x\x1b]52;c;QQ==\x07 \xc2\x9b"
	                          "31m\xc2\xa0" E2 "\n\ty\r",
	                          0);
	ck_assert_str_eq(e, "x\\x1b]52;c;QQ==\\x07 \\u009b31m\xc2\xa0" E2 "\\n\\ty\\r");
	free(e);
	e = text_escape_dup("a\nb\tc\rd\x1b", TEXT_KEEP_NEWLINES);
	ck_assert_str_eq(e, "a\nb\tc\\rd\\x1b");
	free(e);
	e = text_escape_dup("a\nb\tc\rd\x1b", TEXT_FOLD_NEWLINES);
	ck_assert_str_eq(e, "a b c d\\x1b");
	free(e);
	e = text_escape_dup(NULL, 0);
	ck_assert_str_eq(e, "");
	free(e);
	e = text_escape_dup("\xc2", 0); /* a lone lead byte at the end: kept, not read past */
	ck_assert_str_eq(e, "\xc2");
	free(e);
}
END_TEST

START_TEST(test_url_redact)
{
	char b[64];
	ck_assert_str_eq(text_url_redact("https://u:pw@h.example:8443/a/b", b, sizeof(b)),
	                 "https://...@h.example:8443/a/b");
	ck_assert_str_eq(text_url_redact("https://h.example/a@b?token=x#f", b, sizeof(b)),
	                 "https://h.example/a@b?...");
	ck_assert_str_eq(text_url_redact("https://a@b:p@w@h/x", b, sizeof(b)), "https://...@h/x");
	ck_assert_str_eq(text_url_redact("https//u:pw@h/x", b, sizeof(b)), "https//...@h/x");
	ck_assert_str_eq(text_url_redact("u:pw@h/x", b, sizeof(b)), "...@h/x");
	ck_assert_str_eq(text_url_redact("https://h?u:pw@x", b, sizeof(b)), "https://h?...");
	ck_assert_str_eq(text_url_redact("", b, sizeof(b)), "");
	ck_assert_str_eq(text_url_redact("https://u:pw@h/xxxxxxxx", b, 12), "https://...");
}
END_TEST

/* text_width: the columns a terminal gives a text, not its bytes nor its characters. */
START_TEST(test_width)
{
	static const struct {
		const char *s;
		size_t width;
	} cases[] = {
	    {"", 0},
	    {"nettoyage", 9},
	    {"nettoyage \xc3\xa9tape 2", 17},                        /* é: 2 bytes, 1 column */
	    {"\xc3\x84rger-B\xc3\xbcro", 10},                        /* Ärger-Büro */
	    {"\xe6\x97\xa5\xe6\xac\xa1\xe9\x9b\x86\xe8\xa8\x88", 8}, /* 日次集計: 2 each */
	    {"e\xcc\x81", 1}, /* e and a combining acute accent */
	    {"a\xff"
	     "b",
	     3}, /* a byte that is not UTF-8: one */
	    {E3 E4, 2},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(text_width(cases[i].s) == cases[i].width,
		              "\"%s\": %zu columns, not %zu", cases[i].s, text_width(cases[i].s),
		              cases[i].width);
}
END_TEST

/* text_i64 writes what snprintf writes, cut alike. */
START_TEST(test_i64)
{
	static const int64_t values[] = {
	    0,
	    1,
	    -1,
	    9,
	    10,
	    -10,
	    1234567890123,
	    INT64_MAX,
	    INT64_MIN,
	    INT64_MIN + 1,
	    1800000000000000,
	};
	char got[24], want[24];

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		for (size_t len = 0; len <= sizeof(got); len++) {
			memset(got, 'x', sizeof(got));
			memset(want, 'x', sizeof(want));
			snprintf(want, len, "%" PRId64, values[i]);
			ck_assert_ptr_eq(text_i64(got, len, values[i]), got);
			ck_assert_mem_eq(got, want, sizeof(got));
		}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("utf8");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_prefix);
	tcase_add_test(tc, test_every_cut_is_valid);
	tcase_add_test(tc, test_trim);
	tcase_add_test(tc, test_valid);
	tcase_add_test(tc, test_escape_ctl);
	tcase_add_test(tc, test_quote);
	tcase_add_test(tc, test_escape_dup);
	tcase_add_test(tc, test_url_redact);
	tcase_add_test(tc, test_i64);
	tcase_add_test(tc, test_width);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
