/* Unit tests for core/src/cron/cron.c and "pgcrond next" (core/src/cli/cli_next.c).
 *
 * Every expected instant below was worked out by hand from the calendar and checked outside
 * this code: weekdays and leap years with GNU date, DST transitions with zdump -v (the UTC
 * instants of each zone's 2026 and 2104 changes are quoted next to the cases). Instants are
 * written as ISO strings and converted with libc's timegm(), not with the code under test.
 * One more test compares cron_next with a brute-force, minute-by-minute simulation of
 * cronie's DST behaviour built on glibc's localtime_r(). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cron.h"

#define NEVER "never"

/* "2026-03-08T07:00:00Z" to Unix seconds through libc, independent of cron.c. */
static int64_t iso(const char *s)
{
	struct tm tm = {0};
	int y, mo, d, h, mi, sec;
	ck_assert_msg(sscanf(s, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &sec) == 6,
	              "bad test instant %s", s);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	return (int64_t)timegm(&tm);
}

static void show(int64_t t, char *buf, size_t len)
{
	if (t == CRON_NEVER) {
		snprintf(buf, len, NEVER);
		return;
	}
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static cron_tz *zone(const char *name)
{
	cron_tz *tz = NULL;
	char err[256];
	if (strcmp(name, "UTC") == 0)
		return NULL;
	ck_assert_msg(cron_tz_open(name, &tz, err, sizeof(err)) == 0, "%s: %s", name, err);
	return tz;
}

/* ---- parsing: accepted forms and the bitsets they give ---- */

/* "1,5-7" as a bitset: a plain list syntax, read here without cron.c. */
static uint64_t set(const char *s)
{
	uint64_t b = 0;
	while (*s) {
		char *e;
		long lo = strtol(s, &e, 10), hi = lo;
		if (*e == '-')
			hi = strtol(e + 1, &e, 10);
		for (long v = lo; v <= hi; v++)
			b |= UINT64_C(1) << v;
		s = *e == ',' ? e + 1 : e;
	}
	return b;
}

#define ALLF (CRON_DOM_STAR | CRON_DOW_STAR)
static const struct parse_case {
	const char *expr;
	const char *sec, *min, *hour, *dom, *mon, *dow;
	int flags;
} parse_cases[] = {
    {"* * * * *", "0", "0-59", "0-23", "1-31", "1-12", "0-6", ALLF | CRON_WILDCARD},
    {"*/15 * * * *", "0", "0,15,30,45", "0-23", "1-31", "1-12", "0-6", ALLF | CRON_WILDCARD},
    {"5-20/5 3 * * *", "0", "5,10,15,20", "3", "1-31", "1-12", "0-6", ALLF},
    {"0 0 1,15 * *", "0", "0", "0", "1,15", "1-12", "0-6", CRON_DOW_STAR},
    {"0 9-17 * * mon-fri", "0", "0", "9-17", "1-31", "1-12", "1-5", CRON_DOM_STAR},
    {"0 0 * JAN-Mar *", "0", "0", "0", "1-31", "1-3", "0-6", ALLF},
    {"0 0 * feb,AUG,dec *", "0", "0", "0", "1-31", "2,8,12", "0-6", ALLF},
    {"0 0 * * 7", "0", "0", "0", "1-31", "1-12", "0", CRON_DOM_STAR},
    {"0 0 * * 5-7", "0", "0", "0", "1-31", "1-12", "0,5,6", CRON_DOM_STAR},
    {"0 0 * * sun,SAT", "0", "0", "0", "1-31", "1-12", "0,6", CRON_DOM_STAR},
    {"0 0 * * Thu-sat", "0", "0", "0", "1-31", "1-12", "4-6", CRON_DOM_STAR},
    {"0 0 * * 0-7", "0", "0", "0", "1-31", "1-12", "0-6", CRON_DOM_STAR},
    {"0 0 * * */2", "0", "0", "0", "1-31", "1-12", "0,2,4,6", ALLF},
    {"0 0 * * 1-7/2", "0", "0", "0", "1-31", "1-12", "0,1,3,5", CRON_DOM_STAR},
    {"0 0 * * */7", "0", "0", "0", "1-31", "1-12", "0", ALLF},
    {"*/60 1 * * *", "0", "0", "1", "1-31", "1-12", "0-6", ALLF | CRON_WILDCARD},
    {"10-20/30 1 * * *", "0", "10", "1", "1-31", "1-12", "0-6", ALLF},
    {"0-59/20 0 * * *", "0", "0,20,40", "0", "1-31", "1-12", "0-6", ALLF},
    {"1,2,3-5,10-20/3 0 * * *", "0", "1-5,10,13,16,19", "0", "1-31", "1-12", "0-6", ALLF},
    {"0 0 */2 * 1", "0", "0", "0", "1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31", "1-12", "1",
     CRON_DOM_STAR},
    {"0 0 13 * 5", "0", "0", "0", "13", "1-12", "5", 0},
    {"0 0 1 */3 *", "0", "0", "0", "1", "1,4,7,10", "0-6", CRON_DOW_STAR},
    {"* 0 * * *", "0", "0-59", "0", "1-31", "1-12", "0-6", ALLF | CRON_WILDCARD},
    {"0 * * * *", "0", "0", "0-23", "1-31", "1-12", "0-6", ALLF | CRON_WILDCARD},
    {"0 */6,1 * * *", "0", "0", "0,1,6,12,18", "1-31", "1-12", "0-6", ALLF | CRON_WILDCARD},
    {"0 0 $ * *", "0", "0", "0", "", "1-12", "0-6", CRON_DOW_STAR | CRON_LAST_DOM},
    {"0 12 $ 2 1", "0", "0", "12", "", "2", "1", CRON_LAST_DOM},
    {"*/30 * * * * *", "0,30", "0-59", "0-23", "1-31", "1-12", "0-6",
     ALLF | CRON_WILDCARD | CRON_SECONDS},
    {"15 30 2 * * *", "15", "30", "2", "1-31", "1-12", "0-6", ALLF | CRON_SECONDS},
    {"0 0 0 29 2 *", "0", "0", "0", "29", "2", "0-6", CRON_DOW_STAR | CRON_SECONDS},
    {"59 59 23 31 12 sun", "59", "59", "23", "31", "12", "0", CRON_SECONDS},
    {"  \t0 \t 0\t* *   *  \n", "0", "0", "0", "1-31", "1-12", "0-6", ALLF},
    {"@yearly", "0", "0", "0", "1", "1", "0-6", CRON_DOW_STAR},
    {"@annually", "0", "0", "0", "1", "1", "0-6", CRON_DOW_STAR},
    {"@monthly", "0", "0", "0", "1", "1-12", "0-6", CRON_DOW_STAR},
    {"@weekly", "0", "0", "0", "1-31", "1-12", "0", CRON_DOM_STAR},
    {"@daily", "0", "0", "0", "1-31", "1-12", "0-6", ALLF},
    {"@midnight", "0", "0", "0", "1-31", "1-12", "0-6", ALLF},
    {"@hourly", "0", "0", "0-23", "1-31", "1-12", "0-6", ALLF | CRON_WILDCARD},
    {" @Daily ", "0", "0", "0", "1-31", "1-12", "0-6", ALLF},
};

START_TEST(test_parse)
{
	const struct parse_case *c = &parse_cases[_i];
	cron_expr e;
	char err[256];

	ck_assert_msg(cron_parse(c->expr, &e, err, sizeof(err)) == 0, "%s: %s", c->expr, err);
	ck_assert_str_eq(err, "");
	ck_assert_int_eq(e.kind, CRON_CALENDAR);
	ck_assert_msg(e.sec == set(c->sec), "%s: sec %llx", c->expr, (unsigned long long)e.sec);
	ck_assert_msg(e.min == set(c->min), "%s: min %llx", c->expr, (unsigned long long)e.min);
	ck_assert_msg(e.hour == set(c->hour), "%s: hour %x", c->expr, e.hour);
	ck_assert_msg(e.dom == set(c->dom), "%s: dom %x", c->expr, e.dom);
	ck_assert_msg(e.mon == set(c->mon), "%s: mon %x", c->expr, e.mon);
	ck_assert_msg(e.dow == set(c->dow), "%s: dow %x", c->expr, e.dow);
	/* CRON_FIRES: cron_can_fire's own cases */
	ck_assert_msg((e.flags & ~CRON_FIRES) == c->flags, "%s: flags %x, want %x", c->expr,
	              e.flags, c->flags);
}
END_TEST

static const struct other_case {
	const char *expr;
	enum cron_kind kind;
	int interval;
} other_cases[] = {
    {"30 seconds", CRON_INTERVAL, 30}, {"1 second", CRON_INTERVAL, 1},
    {"59 SECONDS", CRON_INTERVAL, 59}, {" 5seconds ", CRON_INTERVAL, 5},
    {"10\tSecond", CRON_INTERVAL, 10}, {"@reboot", CRON_REBOOT, 0},
    {"@Restart", CRON_REBOOT, 0},      {"@REBOOT", CRON_REBOOT, 0},
};

START_TEST(test_parse_other)
{
	const struct other_case *c = &other_cases[_i];
	cron_expr e;
	char err[256];

	ck_assert_msg(cron_parse(c->expr, &e, err, sizeof(err)) == 0, "%s: %s", c->expr, err);
	ck_assert_int_eq(e.kind, c->kind);
	ck_assert_int_eq(e.interval, c->interval);
	ck_assert(cron_can_fire(&e));
}
END_TEST

/* ---- rejections, each with its message ---- */

static const struct reject_case {
	const char *expr, *msg;
} reject_cases[] = {
    {"*/0 * * * *", "\"*/0 * * * *\": step must be at least 1 (column 3)"},
    {"0 0 * * 1-5/0", "\"0 0 * * 1-5/0\": step must be at least 1 (column 13)"},
    /* refused, not wrapped into a small step */
    {"*/5000000000 * * * *",
     "\"*/5000000000 * * * *\": step 5000000000 is out of range 1-2147483647 (column 3)"},
    {"0 0-23/4294967298 * * *",
     "\"0 0-23/4294967298 * * *\": step 4294967298 is out of range 1-2147483647 (column 8)"},
    {"60 * * * *", "\"60 * * * *\": minute 60 is out of range 0-59 (column 1)"},
    {"0 24 * * *", "\"0 24 * * *\": hour 24 is out of range 0-23 (column 3)"},
    {"0 0 0 * *", "\"0 0 0 * *\": day-of-month 0 is out of range 1-31 (column 5)"},
    {"0 0 32 * *", "\"0 0 32 * *\": day-of-month 32 is out of range 1-31 (column 5)"},
    {"0 0 * 13 *", "\"0 0 * 13 *\": month 13 is out of range 1-12 (column 7)"},
    {"0 0 * 0 *", "\"0 0 * 0 *\": month 0 is out of range 1-12 (column 7)"},
    {"0 0 * * 8", "\"0 0 * * 8\": day-of-week 8 is out of range 0-7 (column 9)"},
    {"60 * * * * *", "\"60 * * * * *\": second 60 is out of range 0-59 (column 1)"},
    {"1-99999999999 * * * *",
     "\"1-99999999999 * * * *\": minute 99999999999 is out of range 0-59 (column 3)"},
    {"5-2 * * * *",
     "\"5-2 * * * *\": range 5-2 runs backwards; write the smaller value first (column 1)"},
    {"0 0 * * fri-mon", "\"0 0 * * fri-mon\": range fri-mon runs backwards; write the "
                        "smaller value first (column 9)"},
    {"5/15 * * * *", "\"5/15 * * * *\": a step needs * or a range before it: write */15 or "
                     "5-59/15 (column 2)"},
    {"0 0 * * 1/2", "\"0 0 * * 1/2\": a step needs * or a range before it: write */2 or "
                    "1-7/2 (column 10)"},
    {"*/jan * * * *",
     "\"*/jan * * * *\": a step must be a number, not a name like \"jan\" (column 3)"},
    {"0 0 * */feb *",
     "\"0 0 * */feb *\": a step must be a number, not a name like \"feb\" (column 9)"},
    {"jan * * * *", "\"jan * * * *\": names like \"jan\" are allowed only in the month and "
                    "day-of-week fields (column 1)"},
    {"0 0 mon * *", "\"0 0 mon * *\": names like \"mon\" are allowed only in the month and "
                    "day-of-week fields (column 5)"},
    {"0 0 * mon *",
     "\"0 0 * mon *\": \"mon\" is a day name, not allowed in the month field (column 7)"},
    {"0 0 * * jan", "\"0 0 * * jan\": \"jan\" is a month name, not allowed in the "
                    "day-of-week field (column 9)"},
    {"0 0 * foo *", "\"0 0 * foo *\": unknown month name \"foo\"; use jan-dec or 1-12 (column 7)"},
    {"0 0 * january *",
     "\"0 0 * january *\": unknown month name \"january\"; use jan-dec or 1-12 (column 7)"},
    {"0 0 * * funday", "\"0 0 * * funday\": unknown day-of-week name \"funday\"; use sun-sat "
                       "or 0-7 (column 9)"},
    {"x * * * *", "\"x * * * *\": expected a number in the minute field, found \"x\" (column 1)"},
    {"0 0 * * * * *", "\"0 0 * * * * *\": too many fields: expected 5 (minute hour "
                      "day-of-month month day-of-week), or 6 with seconds first (column 13)"},
    {"0 0 * *", "\"0 0 * *\": expected 5 fields (minute hour day-of-month month day-of-week), "
                "or 6 with seconds first; found 4 (column 8)"},
    {"", "\"\": the schedule is empty; write five fields like \"0 3 * * *\" or a macro like "
         "@daily (column 1)"},
    {" \t ", "\"\": the schedule is empty; write five fields like \"0 3 * * *\" or a macro "
             "like @daily (column 1)"},
    {"5x * * * *", "\"5x * * * *\": unexpected character 'x' in the minute field (column 2)"},
    {"*/5x * * * *", "\"*/5x * * * *\": unexpected character 'x' in the minute field (column 4)"},
    {"*-5 * * * *", "\"*-5 * * * *\": unexpected character '-' in the minute field (column 2)"},
    {"0 0 1-5-7 * *",
     "\"0 0 1-5-7 * *\": unexpected character '-' in the day-of-month field (column 8)"},
    {"0 0 1,,2 * *",
     "\"0 0 1,,2 * *\": unexpected character ',' in the day-of-month field (column 7)"},
    {"0 0 1, * *",
     "\"0 0 1, * *\": the day-of-month field ends after ','; expected a value (column 7)"},
    {"1-5/ * * * *",
     "\"1-5/ * * * *\": expected a number after '/' in the minute field (column 5)"},
    {"@foo", "\"@foo\": unknown macro \"@foo\"; expected @yearly, @annually, @monthly, "
             "@weekly, @daily, @midnight, @hourly, @reboot or @restart (column 1)"},
    {"@daily extra",
     "\"@daily extra\": unexpected text after @daily; a macro stands alone (column 8)"},
    {"0 seconds", "\"0 seconds\": an interval must be 1 to 59 seconds, not 0; for longer "
                  "intervals use a schedule like */5 * * * * (column 1)"},
    {"60 seconds", "\"60 seconds\": an interval must be 1 to 59 seconds, not 60; for longer "
                   "intervals use a schedule like */5 * * * * (column 1)"},
    {"x seconds", "\"x seconds\": expected a whole number of seconds (1-59) before "
                  "\"seconds\" (column 1)"},
    {"0 0 $,1 * *", "\"0 0 $,1 * *\": $ (the last day of the month) is allowed only as the "
                    "whole day-of-month field (column 5)"},
    {"$ 0 * * *", "\"$ 0 * * *\": $ (the last day of the month) is allowed only as the whole "
                  "day-of-month field (column 1)"},
    {"0 0 * * 1#2", "\"0 0 * * 1#2\": unexpected character '#' in the day-of-week field "
                    "(column 10)"},
};

START_TEST(test_reject)
{
	const struct reject_case *c = &reject_cases[_i];
	cron_expr e;
	char err[512];

	memset(&e, 0xa5, sizeof(e));
	ck_assert_int_eq(cron_parse(c->expr, &e, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, c->msg);
	ck_assert_uint_eq(e.min, 0); /* zeroed on error */
	ck_assert_int_eq(cron_parse(c->expr, &e, NULL, 0), -EINVAL);
}
END_TEST

START_TEST(test_reject_small_buffer)
{
	cron_expr e;
	char err[24];

	/* Cut in the middle; the column survives. */
	ck_assert_int_eq(cron_parse("*/0 * * * *", &e, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "\"*/0 * * ... (column 3)");
	ck_assert_int_eq(strlen(err), sizeof(err) - 1);
}
END_TEST

/* ---- the next fire time in UTC ---- */

static const struct next_case {
	const char *expr, *zone, *from, *want;
} utc_cases[] = {
    {"* * * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"},
    {"* * * * *", "UTC", "2026-01-01T00:00:30Z", "2026-01-01T00:01:00Z"},
    {"* * * * *", "UTC", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z"},
    {"*/15 * * * *", "UTC", "2026-01-01T00:14:59Z", "2026-01-01T00:15:00Z"},
    {"*/15 * * * *", "UTC", "2026-01-01T00:45:00Z", "2026-01-01T01:00:00Z"},
    {"0 0 * * *", "UTC", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z"},
    {"0 0 1 1 *", "UTC", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
    {"59 23 31 12 *", "UTC", "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"},
    /* Leap years: 2096 and 2104 are, 2100 is not, 2000 and 2400 are. */
    {"0 0 29 2 *", "UTC", "2096-01-01T00:00:00Z", "2096-02-29T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "2096-02-29T00:00:00Z", "2104-02-29T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "2100-01-01T00:00:00Z", "2104-02-29T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "1999-03-01T00:00:00Z", "2000-02-29T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "2399-01-01T00:00:00Z", "2400-02-29T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "1700-01-01T00:00:00Z", "1704-02-29T00:00:00Z"},
    {"0 0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z"},
    /* Feb 29 that is a Sunday (day-of-week starts with '*': AND): 2004, 2032, 2060, 2088,
     * then 2128 as 2100 breaks the 28-year cycle. */
    {"0 0 29 2 */7", "UTC", "2000-01-01T00:00:00Z", "2004-02-29T00:00:00Z"},
    {"0 0 29 2 */7", "UTC", "2088-02-29T00:00:00Z", "2128-02-29T00:00:00Z"},
    /* Impossible dates. */
    {"0 0 30 2 *", "UTC", "2026-01-01T00:00:00Z", NEVER},
    {"0 0 31 4 *", "UTC", "2026-01-01T00:00:00Z", NEVER},
    {"0 0 31 4,6,9,11 *", "UTC", "2026-01-01T00:00:00Z", NEVER},
    {"0 0 30,31 2 */2", "UTC", "2026-01-01T00:00:00Z", NEVER},
    /* ...but the OR rule makes these fire on the weekdays. 2026-02-02 is a Monday. */
    {"0 0 30 2 mon", "UTC", "2026-01-01T00:00:00Z", "2026-02-02T00:00:00Z"},
    {"0 0 29 2 mon", "UTC", "2026-03-01T00:00:00Z", "2027-02-01T00:00:00Z"},
    /* The star rule. 2026-01-05 and 2026-01-19 are odd Mondays, 2026-01-12 is not odd. */
    {"0 0 */2 * 1", "UTC", "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z"},
    {"0 0 */2 * 1", "UTC", "2026-01-05T00:00:00Z", "2026-01-19T00:00:00Z"},
    {"0 0 * * 1", "UTC", "2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z"},
    /* 13th OR Friday: 2026-01-02 is a Friday, 2026-01-13 a Tuesday. */
    {"0 0 13 * 5", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"},
    {"0 0 13 * 5", "UTC", "2026-01-10T00:00:00Z", "2026-01-13T00:00:00Z"},
    {"0 0 13 * fri", "UTC", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z"},
    /* 13th AND (Sunday or Friday): 2026-02-13 is a Friday. */
    {"0 0 13 * */5", "UTC", "2026-01-01T00:00:00Z", "2026-02-13T00:00:00Z"},
    /* 1st OR Monday: after the 1st comes Monday 2026-01-05. */
    {"0 0 1 * mon", "UTC", "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z"},
    {"0 0 1 * mon", "UTC", "2026-01-26T00:00:00Z", "2026-02-01T00:00:00Z"},
    /* Sunday as 0 and as 7: 2026-01-04 is a Sunday. */
    {"0 0 * * 0", "UTC", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"},
    {"0 0 * * 7", "UTC", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"},
    {"0 0 * * sun", "UTC", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"},
    {"5 4 * * sun", "UTC", "2026-01-04T04:05:00Z", "2026-01-11T04:05:00Z"},
    {"0 0 * * 6,0", "UTC", "2026-01-04T00:00:00Z", "2026-01-10T00:00:00Z"},
    /* 2026-01-02 is a Friday. */
    {"0 9-17 * * mon-fri", "UTC", "2026-01-02T17:00:00Z", "2026-01-05T09:00:00Z"},
    {"0 9-17 * * mon-fri", "UTC", "2026-01-02T09:30:00Z", "2026-01-02T10:00:00Z"},
    {"0 22 * * 1-5", "UTC", "2026-01-02T22:00:00Z", "2026-01-05T22:00:00Z"},
    {"23 0-20/2 * * *", "UTC", "2026-01-01T20:23:00Z", "2026-01-02T00:23:00Z"},
    {"*/20 */6 * * *", "UTC", "2026-01-01T05:50:00Z", "2026-01-01T06:00:00Z"},
    {"*/20 */6 * * *", "UTC", "2026-01-01T06:40:00Z", "2026-01-01T12:00:00Z"},
    {"0 0 1 jan-mar *", "UTC", "2026-03-02T00:00:00Z", "2027-01-01T00:00:00Z"},
    {"0 0 1 */3 *", "UTC", "2026-02-01T00:00:00Z", "2026-04-01T00:00:00Z"},
    {"0 0 1 */3 *", "UTC", "2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z"},
    /* Month ends. */
    {"0 0 31 * *", "UTC", "2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z"},
    {"0 0 31 * *", "UTC", "2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z"},
    {"0 0 31 * *", "UTC", "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z"},
    {"0 0 29 * *", "UTC", "2026-01-29T00:00:00Z", "2026-03-29T00:00:00Z"},
    {"0 0 29 * *", "UTC", "2028-01-29T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 28-31 2 *", "UTC", "2026-02-28T00:00:00Z", "2027-02-28T00:00:00Z"},
    {"0 0 28-31 2 *", "UTC", "2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z"},
    /* $: the last day of the month. */
    {"0 0 $ * *", "UTC", "2026-02-01T00:00:00Z", "2026-02-28T00:00:00Z"},
    {"0 0 $ * *", "UTC", "2028-02-01T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 $ * *", "UTC", "2100-02-01T00:00:00Z", "2100-02-28T00:00:00Z"},
    {"0 0 $ * *", "UTC", "2000-02-01T00:00:00Z", "2000-02-29T00:00:00Z"},
    {"0 0 $ * *", "UTC", "2026-04-30T00:00:00Z", "2026-05-31T00:00:00Z"},
    {"0 0 $ * *", "UTC", "2026-12-31T00:00:00Z", "2027-01-31T00:00:00Z"},
    {"0 12 $ 2 *", "UTC", "2000-03-01T00:00:00Z", "2001-02-28T12:00:00Z"},
    {"0 12 $ * *", "UTC", "2026-11-21T00:00:00Z", "2026-11-30T12:00:00Z"},
    {"0 12 $ * *", "UTC", "2026-11-30T12:00:00Z", "2026-12-31T12:00:00Z"},
    /* $ OR Monday: 2026-01-31 (Saturday) comes before Monday 2026-02-02. */
    {"0 0 $ * 1", "UTC", "2026-01-27T00:00:00Z", "2026-01-31T00:00:00Z"},
    {"0 0 $ * 1", "UTC", "2026-01-31T00:00:00Z", "2026-02-02T00:00:00Z"},
    /* Seconds fields. */
    {"*/30 * * * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T00:00:30Z"},
    {"*/30 * * * * *", "UTC", "2026-01-01T00:00:30Z", "2026-01-01T00:01:00Z"},
    {"*/5 * * * * *", "UTC", "2026-01-01T00:00:59Z", "2026-01-01T00:01:00Z"},
    {"15 30 2 * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T02:30:15Z"},
    {"15 30 2 * * *", "UTC", "2026-01-01T02:30:15Z", "2026-01-02T02:30:15Z"},
    {"0 0 0 1 1 *", "UTC", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
    {"59 59 23 31 12 *", "UTC", "2026-06-01T00:00:00Z", "2026-12-31T23:59:59Z"},
    {"10-20/30 * * * * *", "UTC", "2026-01-01T00:00:10Z", "2026-01-01T00:01:10Z"},
    /* Macros. 2026-01-04 is a Sunday. */
    {"@hourly", "UTC", "2026-01-01T10:30:00Z", "2026-01-01T11:00:00Z"},
    {"@daily", "UTC", "2026-01-01T10:30:00Z", "2026-01-02T00:00:00Z"},
    {"@midnight", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"},
    {"@weekly", "UTC", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"},
    {"@monthly", "UTC", "2026-01-15T00:00:00Z", "2026-02-01T00:00:00Z"},
    {"@yearly", "UTC", "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z"},
    {"@annually", "UTC", "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z"},
    {"@reboot", "UTC", "2026-06-01T00:00:00Z", NEVER},
    /* Intervals: AFTER plus N. */
    {"30 seconds", "UTC", "2026-06-01T00:00:00Z", "2026-06-01T00:00:30Z"},
    {"59 seconds", "UTC", "2026-12-31T23:59:59Z", "2027-01-01T00:00:58Z"},
    /* Before 1970 and far ahead. 1970-01-05 was the first Monday of 1970. */
    {"0 0 1 1 *", "UTC", "1969-06-01T00:00:00Z", "1970-01-01T00:00:00Z"},
    {"0 12 * * *", "UTC", "1900-01-01T00:00:00Z", "1900-01-01T12:00:00Z"},
    {"0 0 * * 1", "UTC", "1970-01-01T00:00:00Z", "1970-01-05T00:00:00Z"},
    {"0 0 1 1 *", "UTC", "9999-06-01T00:00:00Z", "10000-01-01T00:00:00Z"},
};

static void check_next(const struct next_case *c)
{
	cron_expr e;
	char err[256], got[64];
	cron_tz *tz = zone(c->zone);

	ck_assert_msg(cron_parse(c->expr, &e, err, sizeof(err)) == 0, "%s: %s", c->expr, err);
	int64_t n = cron_next(&e, tz, iso(c->from));
	show(n, got, sizeof(got));
	ck_assert_msg(strcmp(c->want, NEVER) == 0 ? n == CRON_NEVER : n == iso(c->want),
	              "%s in %s after %s: got %s, want %s", c->expr, c->zone, c->from, got,
	              c->want);
	if (n != CRON_NEVER && e.kind == CRON_CALENDAR) /* the same instant from just before */
		ck_assert_int_eq(cron_next(&e, tz, n - 1), n);
	cron_tz_free(&tz);
	ck_assert_ptr_null(tz);
}

START_TEST(test_next_utc)
{
	check_next(&utc_cases[_i]);
}
END_TEST

/* ---- DST (cronie's rules) ----
 * zdump -v, 2026:
 *   America/New_York  Mar  8 07:00:00 UT = 03:00 EDT (02:00-02:59 skipped)
 *                     Nov  1 06:00:00 UT = 01:00 EST (01:00-01:59 repeated; EDT until 05:59:59 UT)
 *   Europe/Berlin     Mar 29 01:00:00 UT = 03:00 CEST (02:00-02:59 skipped)
 *                     Oct 25 01:00:00 UT = 02:00 CET (02:00-02:59 repeated)
 *   America/Santiago  Apr  5 03:00:00 UT = Sat Apr 4 23:00 -04 (23:00-23:59 repeated)
 *                     Sep  6 04:00:00 UT = 01:00 -03 (00:00-00:59 skipped)
 *   Australia/Lord_Howe Oct 3 15:30:00 UT = Oct 4 02:30 +11 (02:00-02:29 skipped)
 * 2104 (from the TZif footer rule, past the table's end in 2037):
 *   Europe/Berlin     Mar 30 01:00 UT, Oct 26 01:00 UT
 *   America/New_York  Mar  9 07:00 UT, Nov  2 06:00 UT */
static const struct next_case dst_cases[] = {
    /* NY spring forward: fixed-time jobs in the gap run once at 03:00 EDT = 07:00Z. */
    {"30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
    {"30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"},
    {"0 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
    {"59 2 * * *", "America/New_York", "2026-03-08T06:59:59Z", "2026-03-08T07:00:00Z"},
    {"0 3 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
    {"30 1 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T06:30:00Z"},
    {"15,45 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
    {"15,45 2 * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-09T06:15:00Z"},
    /* Wildcard jobs follow the wall clock: 02:xx does not exist that day. */
    {"*/30 * * * *", "America/New_York", "2026-03-08T06:15:00Z", "2026-03-08T06:30:00Z"},
    {"*/30 * * * *", "America/New_York", "2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z"},
    {"30 * * * *", "America/New_York", "2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z"},
    {"* 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-09T06:00:00Z"},
    /* NY fall back: a fixed-time job in the repeated hour runs once, in EDT. */
    {"30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z"},
    {"30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"},
    {"30 1 * * *", "America/New_York", "2026-11-01T06:10:00Z", "2026-11-02T06:30:00Z"},
    {"0 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T06:00:00Z"},
    {"0 2 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T07:00:00Z"},
    /* ...a wildcard job in both passes: 01:00 EDT, 01:30 EDT, 01:00 EST, 01:30 EST. */
    {"*/30 * * * *", "America/New_York", "2026-11-01T04:59:59Z", "2026-11-01T05:00:00Z"},
    {"*/30 * * * *", "America/New_York", "2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z"},
    {"*/30 * * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z"},
    {"*/30 * * * *", "America/New_York", "2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z"},
    {"*/30 * * * *", "America/New_York", "2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z"},
    {"0 30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"},
    /* Six fields, hour '*': a wildcard job, so 01:01:30 EST (06:01:30Z) counts. */
    {"30 1 * * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-01T06:01:30Z"},
    {"0 * * * *", "America/New_York", "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z"},
    /* Plain days either side keep their offsets: EST -5, EDT -4. */
    {"0 12 * * *", "America/New_York", "2026-01-15T00:00:00Z", "2026-01-15T17:00:00Z"},
    {"0 12 * * *", "America/New_York", "2026-07-15T00:00:00Z", "2026-07-15T16:00:00Z"},
    /* Berlin spring forward. */
    {"30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
    {"30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"},
    {"0 3 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
    {"*/15 * * * *", "Europe/Berlin", "2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z"},
    {"30 2 29 3 *", "Europe/Berlin", "2026-01-01T00:00:00Z", "2026-03-29T01:00:00Z"},
    /* Berlin fall back: 02:30 CEST = 00:30Z first; wildcard also 02:30 CET = 01:30Z. */
    {"30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"},
    {"30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
    {"30 * * * *", "Europe/Berlin", "2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z"},
    {"30 * * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"},
    {"30 * * * *", "Europe/Berlin", "2026-10-25T01:30:00Z", "2026-10-25T02:30:00Z"},
    /* Berlin and New York in 2104, past the TZif table. */
    {"30 2 * * *", "Europe/Berlin", "2104-03-29T12:00:00Z", "2104-03-30T01:00:00Z"},
    {"30 2 * * *", "Europe/Berlin", "2104-10-25T12:00:00Z", "2104-10-26T00:30:00Z"},
    {"0 12 * * *", "Europe/Berlin", "2104-07-01T00:00:00Z", "2104-07-01T10:00:00Z"},
    {"0 12 * * *", "Europe/Berlin", "2104-12-01T00:00:00Z", "2104-12-01T11:00:00Z"},
    {"0 0 29 2 *", "Europe/Berlin", "2096-03-01T00:00:00Z", "2104-02-28T23:00:00Z"},
    {"30 2 * * *", "America/New_York", "2104-03-08T12:00:00Z", "2104-03-09T07:00:00Z"},
    {"30 1 * * *", "America/New_York", "2104-11-01T12:00:00Z", "2104-11-02T05:30:00Z"},
    /* Past 2200 the footer rule is evaluated for each instant (zdump: Berlin 2504-03-30
     * 01:00 UT and 2504-10-26 01:00 UT, 2201-03-29 01:00 UT; Santiago 2201-04-05 03:00 UT,
     * 2201-09-06 04:00 UT; Berlin's 2200-10-26 01:00 UT is the last change kept in the
     * table, extended from the rule at open time). */
    {"30 2 * * *", "Europe/Berlin", "2504-03-29T12:00:00Z", "2504-03-30T01:00:00Z"},
    {"30 2 * * *", "Europe/Berlin", "2504-10-25T12:00:00Z", "2504-10-26T00:30:00Z"},
    {"30 * * * *", "Europe/Berlin", "2504-10-26T00:30:00Z", "2504-10-26T01:30:00Z"},
    {"30 * * * *", "Europe/Berlin", "2200-10-26T00:30:00Z", "2200-10-26T01:30:00Z"},
    {"30 2 * * *", "Europe/Berlin", "2201-03-28T12:00:00Z", "2201-03-29T01:00:00Z"},
    {"0 0 * * *", "America/Santiago", "2201-09-05T12:00:00Z", "2201-09-06T04:00:00Z"},
    {"30 23 * * *", "America/Santiago", "2201-04-04T12:00:00Z", "2201-04-05T02:30:00Z"},
    /* Santiago skips midnight in September: 00:00 -04 -> 01:00 -03. */
    {"0 0 * * *", "America/Santiago", "2026-09-04T12:00:00Z", "2026-09-05T04:00:00Z"},
    {"0 0 * * *", "America/Santiago", "2026-09-05T12:00:00Z", "2026-09-06T04:00:00Z"},
    {"0 0 * * *", "America/Santiago", "2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z"},
    {"30 0 * * *", "America/Santiago", "2026-09-05T12:00:00Z", "2026-09-06T04:00:00Z"},
    {"0 * * * *", "America/Santiago", "2026-09-06T02:30:00Z", "2026-09-06T03:00:00Z"},
    {"0 * * * *", "America/Santiago", "2026-09-06T03:00:00Z", "2026-09-06T04:00:00Z"},
    /* ...and repeats 23:00-23:59 on April 4: 23:30 -03 (02:30Z) only, for a fixed job. */
    {"30 23 * * *", "America/Santiago", "2026-04-04T12:00:00Z", "2026-04-05T02:30:00Z"},
    {"30 23 * * *", "America/Santiago", "2026-04-05T02:30:00Z", "2026-04-06T03:30:00Z"},
    {"0 0 * * *", "America/Santiago", "2026-04-04T12:00:00Z", "2026-04-05T04:00:00Z"},
    /* Lord Howe moves by half an hour. */
    {"15 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z", "2026-10-03T15:30:00Z"},
    {"*/15 * * * *", "Australia/Lord_Howe", "2026-10-03T15:15:00Z", "2026-10-03T15:30:00Z"},
    /* A wildcard job whose only times are always skipped never fires: March 29 that is a
     * Sunday is always the last Sunday of March, Berlin's switch day. */
    {"3 */70 2 29 3 */7", "Europe/Berlin", "2000-01-01T00:00:00Z", NEVER},
    /* The fixed-time form of it runs at the end of each gap. 2026-03-29 is a Sunday. */
    {"3 0 2 29 3 */7", "Europe/Berlin", "2021-01-01T00:00:00Z", "2026-03-29T01:00:00Z"},
};

START_TEST(test_next_dst)
{
	check_next(&dst_cases[_i]);
}
END_TEST

/* ---- cron_can_fire ---- */

static const struct {
	const char *expr;
	bool fires;
} can_cases[] = {
    {"0 0 30 2 *", false},      {"0 0 31 4 *", false},   {"0 0 31 2,4,6,9,11 *", false},
    {"0 0 30,31 feb *", false}, {"0 0 31 4 */2", false}, {"0 0 30 2 mon", true},
    {"0 0 29 2 *", true},       {"0 0 31 * *", true},    {"0 0 31 4,5 *", true},
    {"0 0 $ 2 *", true},        {"@reboot", true},       {"5 seconds", true},
    {"* * * * *", true},
};

START_TEST(test_can_fire)
{
	cron_expr e;
	char err[256];

	ck_assert_msg(cron_parse(can_cases[_i].expr, &e, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(cron_can_fire(&e) == can_cases[_i].fires, "%s", can_cases[_i].expr);
}
END_TEST

START_TEST(test_never_is_quick)
{
	cron_expr e;
	char err[256];
	struct timespec a, b;

	ck_assert_int_eq(cron_parse("0 0 30 2 *", &e, err, sizeof(err)), 0);
	/* the process's CPU time, not the wall clock: beside the integration lanes the wall
	 * clock can pass 2 s under ASan */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
	for (int i = 0; i < 10000; i++)
		ck_assert(cron_next(&e, NULL, iso("2026-01-01T00:00:00Z") + i) == CRON_NEVER);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
	/* 10,000 answers in well under a second (a search would take minutes). */
	ck_assert_msg(b.tv_sec - a.tv_sec < 2, "10,000 answers took %ld s of CPU",
	              (long)(b.tv_sec - a.tv_sec));
	ck_assert(cron_next(NULL, NULL, 0) == CRON_NEVER);
	ck_assert(!cron_can_fire(NULL));
	ck_assert_int_eq(cron_parse("* * * * *", &e, err, sizeof(err)), 0);
	ck_assert(cron_next(&e, NULL, CRON_TIME_MAX + 1) == CRON_NEVER);
	ck_assert(cron_next(&e, NULL, CRON_TIME_MIN - 1) == CRON_NEVER);
}
END_TEST

/* ---- time zones ---- */

START_TEST(test_tz)
{
	cron_tz *tz = NULL;
	char err[512];

	ck_assert_int_eq(cron_tz_open("Mars/Olympus_Mons", &tz, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_null(tz);
	ck_assert_msg(strstr(err, "unknown time zone \"Mars/Olympus_Mons\"") != NULL, "%s", err);
	ck_assert_int_eq(cron_tz_open("../../etc/passwd", &tz, err, sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, "invalid time zone name \"../../etc/passwd\"; use a name like "
	                      "Europe/Berlin or UTC");
	ck_assert_int_eq(cron_tz_open("/etc/localtime", &tz, err, sizeof(err)), -ENOENT);
	ck_assert_int_eq(cron_tz_open("", &tz, err, sizeof(err)), -ENOENT);
	ck_assert_int_eq(cron_tz_open("Europe", &tz, err, sizeof(err)), -ENOENT); /* a dir */
	ck_assert_int_eq(cron_tz_open("Europe/Berlin x", &tz, err, sizeof(err)), -ENOENT);
	if (access("/usr/share/zoneinfo/zone.tab", R_OK) == 0 && !getenv("TZDIR"))
		ck_assert_int_eq(cron_tz_open("zone.tab", &tz, err, sizeof(err)), -EINVAL);
	if (access("/usr/share/zoneinfo/right/UTC", R_OK) == 0 && !getenv("TZDIR"))
		ck_assert_int_eq(cron_tz_open("right/UTC", &tz, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(tz);

	ck_assert_int_eq(cron_tz_open("UTC", &tz, err, sizeof(err)), 0);
	ck_assert_str_eq(cron_tz_name(tz), "UTC");
	ck_assert_int_eq(cron_tz_offset(tz, iso("2026-07-01T00:00:00Z")), 0);
	cron_tz_free(&tz);
	ck_assert_ptr_null(tz);
	cron_tz_free(&tz); /* twice is harmless */
	ck_assert_str_eq(cron_tz_name(NULL), "UTC");

	tz = zone("Europe/Berlin");
	ck_assert_str_eq(cron_tz_name(tz), "Europe/Berlin");
	ck_assert_int_eq(cron_tz_offset(tz, iso("2026-01-15T00:00:00Z")), 3600);
	ck_assert_int_eq(cron_tz_offset(tz, iso("2026-07-15T00:00:00Z")), 7200);
	ck_assert_int_eq(cron_tz_offset(tz, iso("2026-03-29T00:59:59Z")), 3600);
	ck_assert_int_eq(cron_tz_offset(tz, iso("2026-03-29T01:00:00Z")), 7200);
	ck_assert_int_eq(cron_tz_offset(tz, iso("2104-03-30T00:59:59Z")), 3600);
	ck_assert_int_eq(cron_tz_offset(tz, iso("2104-03-30T01:00:00Z")), 7200);
	ck_assert_int_eq(cron_tz_offset(tz, iso("2104-10-26T01:00:00Z")), 3600);
	ck_assert_int_eq(cron_tz_offset(tz, iso("1850-01-01T00:00:00Z")), 3208); /* LMT 0:53:28 */
	ck_assert_int_eq(cron_tz_offset(tz, iso("2504-03-30T00:59:59Z")), 3600);
	ck_assert_int_eq(cron_tz_offset(tz, iso("2504-03-30T01:00:00Z")), 7200);
	ck_assert_int_eq(cron_tz_offset(tz, iso("2504-10-26T00:59:59Z")), 7200);
	ck_assert_int_eq(cron_tz_offset(tz, iso("2504-10-26T01:00:00Z")), 3600);
	cron_tz_free(&tz);
	tz = zone("America/Santiago");
	ck_assert_int_eq(cron_tz_offset(tz, iso("2026-09-06T03:59:59Z")), -14400);
	ck_assert_int_eq(cron_tz_offset(tz, iso("2026-09-06T04:00:00Z")), -10800);
	ck_assert_int_eq(cron_tz_offset(tz, iso("2204-01-01T00:00:00Z")), -10800);
	cron_tz_free(&tz);
}
END_TEST

/* ---- cron_next against a brute-force simulation ----
 * Minute by minute through glibc's localtime_r: a wildcard job fires when the wall clock
 * shows a matching minute; a fixed-time job fires when the wall clock reaches a matching
 * minute it has not shown before, including minutes it jumped over (cronie). */

static bool match_local(const cron_expr *e, int64_t local)
{
	time_t t = (time_t)local;
	struct tm tm, next;
	gmtime_r(&t, &tm);
	time_t tomorrow = t + 86400;
	gmtime_r(&tomorrow, &next);
	if (!(e->min >> tm.tm_min & 1) || !(e->hour >> tm.tm_hour & 1) ||
	    !(e->mon >> (tm.tm_mon + 1) & 1))
		return false;
	bool dom = (e->flags & CRON_LAST_DOM) ? next.tm_mday == 1 : (e->dom >> tm.tm_mday & 1);
	bool dow = e->dow >> tm.tm_wday & 1;
	return (e->flags & (CRON_DOM_STAR | CRON_DOW_STAR)) ? dom && dow : dom || dow;
}

static int64_t local_of(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	localtime_r(&tt, &tm);
	return t + tm.tm_gmtoff;
}

/* The simulated next fire after AFTER within LIMIT minutes, or CRON_NEVER. */
static int64_t simulate(const cron_expr *e, int64_t after, int limit)
{
	bool fixed = !(e->flags & CRON_WILDCARD);
	int64_t m = after - after % 60, seen = INT64_MIN;

	for (int64_t b = m - 4 * 3600; b <= m; b += 60) /* the furthest the clock has shown */
		if (local_of(b) > seen)
			seen = local_of(b);
	for (int i = 1; i <= limit; i++) {
		int64_t t = m + 60 * i, l = local_of(t);
		if (!fixed) {
			if (match_local(e, l))
				return t;
			continue;
		}
		for (int64_t x = seen + 60; x <= l; x += 60)
			if (match_local(e, x))
				return t;
		if (l > seen)
			seen = l;
	}
	return CRON_NEVER;
}

static const char *const sim_zones[] = {"UTC", "America/New_York", "Europe/Berlin",
                                        "America/Santiago", "Australia/Lord_Howe"};
/* Instants near each zone's changes (zdump -v), and plain ones. */
static const char *const sim_times[] = {
    "2026-03-08T07:00:00Z", "2026-11-01T06:00:00Z", "2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z",
    "2026-09-06T04:00:00Z", "2026-04-05T03:00:00Z", "2026-10-03T15:30:00Z", "2026-04-04T15:00:00Z",
    "2104-03-09T07:00:00Z", "2104-03-30T01:00:00Z", "2026-06-15T12:00:00Z", "2028-02-28T22:00:00Z",
    "2504-03-30T01:00:00Z", "2504-10-26T01:00:00Z",
};

static const char *pick(unsigned *seed, const char *const *opts, int n)
{
	return opts[rand_r(seed) % n];
}

START_TEST(test_simulation)
{
	static const char *const mins[] = {"*", "*/15", "0", "30", "0,30", "10-40/10", "45", "*/7"};
	static const char *const hours[] = {"*", "*/2", "0", "1", "2", "3", "23", "1-3", "0,2"};
	static const char *const doms[] = {"*", "*", "*", "1", "$", "*/2", "28-31", "29"};
	static const char *const mons[] = {"*", "*", "*", "2,3", "3,4,9,10,11", "*/2"};
	static const char *const dows[] = {"*", "*", "*", "0", "1-5", "6", "*/3"};
	unsigned seed = 20260308;
	int compared = 0;

	for (size_t z = 0; z < sizeof(sim_zones) / sizeof(sim_zones[0]); z++) {
		cron_tz *tz = zone(sim_zones[z]);
		setenv("TZ", sim_zones[z], 1);
		tzset();
		for (int i = 0; i < 150; i++) {
			char expr[128], err[256], a[64], b[64];
			cron_expr e;
			snprintf(expr, sizeof(expr), "%s %s %s %s %s", pick(&seed, mins, 8),
			         pick(&seed, hours, 9), pick(&seed, doms, 8), pick(&seed, mons, 6),
			         pick(&seed, dows, 7));
			ck_assert_msg(cron_parse(expr, &e, err, sizeof(err)) == 0, "%s", err);
			int64_t after =
			    iso(pick(&seed, sim_times, 14)) - 3 * 3600 + rand_r(&seed) % (6 * 3600);
			int limit = 3 * 24 * 60;
			int64_t want = simulate(&e, after, limit);
			int64_t got = cron_next(&e, tz, after);
			show(got, a, sizeof(a));
			show(want, b, sizeof(b));
			if (want == CRON_NEVER)
				ck_assert_msg(
				    got == CRON_NEVER || got > after + 60 * limit - 60,
				    "%s in %s after %lld: got %s, nothing within the window", expr,
				    sim_zones[z], (long long)after, a);
			else
				ck_assert_msg(got == want, "%s in %s after %lld: got %s, want %s",
				              expr, sim_zones[z], (long long)after, a, b);
			compared += want != CRON_NEVER;
		}
		cron_tz_free(&tz);
	}
	ck_assert_int_gt(compared, 300);
}
END_TEST

/* ---- ISO-8601 times ---- */

static const struct {
	const char *text, *want; /* want NULL: rejected */
} time_cases[] = {
    {"2026-03-08T01:00:00-05:00", "2026-03-08T06:00:00Z"},
    {"2026-03-08T01:00:00+0100", "2026-03-08T00:00:00Z"},
    {"2026-03-08T01:00+01", "2026-03-08T00:00:00Z"},
    {"2026-03-08T01:00:00Z", "2026-03-08T01:00:00Z"},
    {"2026-03-08t01:00z", "2026-03-08T01:00:00Z"},
    {"2026-03-08 01:00:59Z", "2026-03-08T01:00:59Z"},
    {"2000-02-29T23:59:59+05:30", "2000-02-29T18:29:59Z"},
    {"1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"},
    {"@0", "1970-01-01T00:00:00Z"},
    {"@1772953200", "2026-03-08T07:00:00Z"},
    {"2026-03-08T01:00:00", NULL},
    {"2026-02-29T00:00:00Z", NULL},
    {"2100-02-29T00:00:00Z", NULL},
    {"2026-13-01T00:00:00Z", NULL},
    {"2026-01-01T24:00:00Z", NULL},
    {"2026-01-01T00:60:00Z", NULL},
    {"2026-01-01T00:00:00+01:", NULL},
    {"2026-01-01T00:00:00Zjunk", NULL},
    {"2026-1-01T00:00:00Z", NULL},
    {"tomorrow", NULL},
    {"", NULL},
    {"@", NULL},
    {"@12x", NULL},
};

START_TEST(test_time_parse)
{
	int64_t t = 42;
	char err[256];
	int r = cron_time_parse(time_cases[_i].text, &t, err, sizeof(err));

	if (!time_cases[_i].want) {
		ck_assert_msg(r == -EINVAL, "%s accepted", time_cases[_i].text);
		ck_assert_msg(strstr(err, time_cases[_i].text) != NULL, "%s", err);
		return;
	}
	ck_assert_msg(r == 0, "%s: %s", time_cases[_i].text, err);
	ck_assert_int_eq(t, iso(time_cases[_i].want));
}
END_TEST

START_TEST(test_time_format)
{
	char buf[CRON_TIME_BUFSZ];

	ck_assert_int_eq(cron_time_format(0, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "1970-01-01T00:00:00Z");
	ck_assert_int_eq(cron_time_format(951782400, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "2000-02-29T00:00:00Z");
	ck_assert_int_eq(cron_time_format(-1, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "1969-12-31T23:59:59Z");
	ck_assert_int_eq(cron_time_format(4107542400, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "2100-03-01T00:00:00Z");
	ck_assert_int_eq(cron_time_format(4107542399, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "2100-02-28T23:59:59Z");
	ck_assert_int_eq(cron_time_format(CRON_TIME_MAX, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "9999-12-31T23:59:59Z");
	ck_assert_int_eq(cron_time_format(CRON_TIME_MIN, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "0001-01-01T00:00:00Z");
	ck_assert_int_eq(cron_time_format(0, buf, 20), -ENOSPC);
}
END_TEST

/* ---- six fields: pgcrond's reading and pg_cron's (cron_six_fields) ---- */

static const struct six_case {
	const char *text;
	const char *what; /* NULL: not a six-field schedule pgcrond reads */
	const char *hint;
} six_cases[] = {
    {"*/30 * * * * *",
     "schedule \"*/30 * * * * *\" has six fields: pgcrond reads the first as seconds (every 30 "
     "seconds); pg_cron ignores a sixth field (every 30 minutes)",
     "So that both read it alike, write \"*/30 * * * *\" for pg_cron's reading or \"30 "
     "seconds\" for pgcrond's."},
    {" * * * * * *\t",
     "schedule \"* * * * * *\" has six fields: pgcrond reads the first as seconds (every "
     "second); pg_cron ignores a sixth field (every minute)",
     "So that both read it alike, write \"* * * * *\" for pg_cron's reading or \"1 second\" "
     "for pgcrond's."},
    {"0 15 10 * * 1",
     "schedule \"0 15 10 * * 1\" has six fields: pgcrond reads the first as seconds (second 0 "
     "of \"15 10 * * 1\"); pg_cron ignores a sixth field (as \"0 15 10 * *\")",
     "So that both read it alike, write \"0 15 10 * *\" for pg_cron's reading or \"15 10 * * "
     "1\" for pgcrond's."},
    /* "every 45 seconds" would be false: it fires at 0 and 45 */
    {"*/45 * * * * *",
     "schedule \"*/45 * * * * *\" has six fields: pgcrond reads the first as seconds (second "
     "*/45 of \"* * * * *\"); pg_cron ignores a sixth field (as \"*/45 * * * *\")",
     "So that both read it alike, write \"*/45 * * * *\" for pg_cron's reading; pgcrond's has "
     "no form pg_cron reads (pg_cron has no seconds field)."},
    /* pg_cron's reading is no schedule: day-of-month 0 (pg_cron refuses it) */
    {"0 0 0 * * *",
     "schedule \"0 0 0 * * *\" has six fields: pgcrond reads the first as seconds (second 0 of "
     "\"0 0 * * *\"); pg_cron ignores a sixth field (as \"0 0 0 * *\", which is no valid "
     "schedule)",
     "So that both read it alike, write \"0 0 * * *\" for pgcrond's reading."},
    {"5 0 0 * * *",
     "schedule \"5 0 0 * * *\" has six fields: pgcrond reads the first as seconds (second 5 of "
     "\"0 0 * * *\"); pg_cron ignores a sixth field (as \"5 0 0 * *\", which is no valid "
     "schedule)",
     "pgcrond's reading has no form pg_cron reads (pg_cron has no seconds field)."},
    {"*/5 * * * *", NULL, NULL},
    {"30 seconds", NULL, NULL},
    {"@hourly", NULL, NULL},
    {"0 0 1 * * ignored", NULL, NULL},
    {"* * * * * * *", NULL, NULL},
    {"", NULL, NULL},
};

START_TEST(test_six_fields)
{
	const struct six_case *c = &six_cases[_i];
	struct cron_six six;
	bool six_fields = cron_six_fields(c->text, &six);

	ck_assert_msg(six_fields == (c->what != NULL), "\"%s\": %s", c->text,
	              six_fields ? "six fields" : "not six fields");
	if (!c->what)
		return;
	ck_assert_str_eq(six.what, c->what);
	ck_assert_str_eq(six.hint, c->hint);
}
END_TEST

/* ---- pgcrond next, end to end through cli_next() ---- */

static const struct cli_case {
	const char *args[10];
	int rc;
	const char *out; /* stdout exactly */
	const char *err; /* a piece of stderr, or NULL */
} cli_cases[] = {
    {{"next", "--from", "2096-01-01T00:00:00Z", "--count", "2", "0 0 29 2 *"},
     0,
     "2096-02-29T00:00:00Z\n2104-02-29T00:00:00Z\n",
     NULL},
    {{"next", "--from", "2026-11-21T00:00:00Z", "--count", "3", "0", "12", "$", "*", "*"},
     0,
     "2026-11-30T12:00:00Z\n2026-12-31T12:00:00Z\n2027-01-31T12:00:00Z\n",
     NULL},
    {{"next", "--tz", "America/New_York", "--from", "2026-03-07T12:00:00Z", "--count", "2",
      "30 2 * * *"},
     0,
     "2026-03-08T07:00:00Z\n2026-03-09T06:30:00Z\n",
     NULL},
    {{"next", "--from=2026-03-08T01:00:00-05:00", "--count=1", "--tz=UTC", "@hourly"},
     0,
     "2026-03-08T07:00:00Z\n",
     NULL},
    {{"next", "--from", "2026-01-01T00:00:00+0100", "*/30 * * * * *"},
     0,
     "2025-12-31T23:00:30Z\n2025-12-31T23:01:00Z\n2025-12-31T23:01:30Z\n"
     "2025-12-31T23:02:00Z\n2025-12-31T23:02:30Z\n",
     NULL},
    {{"next", "--from", "2026-01-01T00:00Z", "-n", "3", "20", "seconds"},
     0,
     "2026-01-01T00:00:20Z\n2026-01-01T00:00:40Z\n2026-01-01T00:01:00Z\n",
     NULL},
    {{"next", "0 0 30 2 *"}, 0, "never\n", NULL},
    {{"next", "@reboot"}, 0, "@reboot: runs once when the daemon starts\n", NULL},
    {{"next", "*/0 * * * *"}, 65, "", "\"*/0 * * * *\": step must be at least 1 (column 3)"},
    {{"next", "--tz", "Nowhere/Special", "* * * * *"}, 64, "", "unknown time zone"},
    {{"next", "--from", "yesterday", "* * * * *"}, 64, "", "invalid time \"yesterday\""},
    {{"next", "--from", "2026-01-01T00:00:00", "* * * * *"}, 64, "", "add Z"},
    {{"next", "--count", "0", "* * * * *"}, 64, "", "--count must be a number"},
    {{"next", "--count", "many", "* * * * *"}, 64, "", "--count must be a number"},
    {{"next", "--count"}, 64, "", "--count needs a value"},
    {{"next", "--bogus", "* * * * *"}, 64, "", "unknown option \"--bogus\""},
    {{"next", "* * * * *", "-xy"}, 64, "", "unknown option \"-x\""},
    {{"next", "--count=2", "-xy", "* * * * *"}, 64, "", "unknown option \"-x\""},
    {{"next", "--help=x", "* * * * *"}, 64, "", "unknown option \"--help=x\""},
    {{"next", "--from", "2026-01-01T00:00Z", "-n=2", "* * * * *"},
     0,
     "2026-01-01T00:01:00Z\n2026-01-01T00:02:00Z\n",
     NULL},
    {{"next"}, 64, "", "no expression given"},
    /* the commands that read the configuration share one option parser (cli_parse_args):
     * its messages, before any configuration is read */
    {{"history", "-c"}, 64, "", "history: -c needs a file name"},
    {{"uninstall", "--to"}, 64, "", "uninstall: --to needs a value"},
    {{"uninstall", "--keep-history=yes", "-c", "/nonexistent"},
     64,
     "",
     "unknown option \"--keep-history=yes\""},
    {{"history", "--run", "x", "-c", "/nonexistent"}, 64, "", "--run \"x\": give a run id"},
    {{"history", "--limit", "0", "-c", "/nonexistent"}, 64, "", "from 1 to 100000"},
    {{"trigger", "--timeout", "bad", "x", "-c", "/nonexistent"}, 64, "", "is not a duration"},
    {{"import", "--d"}, 64, "", "import: unknown option \"--d\""},
    {{"status", "-c", "/nonexistent", "-jx"}, 64, "", "status: unknown option \"-x\""},
    {{"next", "--", "0", "0", "1", "1", "*", "*", "--from"}, 65, "", "too many fields"},
};

/* Runs cli_next with stdout and stderr sent to files; returns its exit code. */
static int run_cli(const char *const *args, char *out, size_t outlen, char *err, size_t errlen)
{
	char *argv[12];
	int argc = 0;
	FILE *fo = tmpfile(), *fe = tmpfile();
	ck_assert(fo && fe);

	while (argc < 10 && args[argc]) {
		argv[argc] = (char *)args[argc];
		argc++;
	}
	argv[argc] = NULL;
	fflush(stdout);
	fflush(stderr);
	int so = dup(1), se = dup(2);
	dup2(fileno(fo), 1);
	dup2(fileno(fe), 2);
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {{"next", cli_next},     {"history", cli_history},
	            {"status", cli_status}, {"trigger", cli_trigger},
	            {"import", cli_import}, {"uninstall", cli_uninstall}};
	int rc = -1;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[0], cmds[i].name) == 0)
			rc = cmds[i].fn(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	rewind(fo);
	rewind(fe);
	size_t n = fread(out, 1, outlen - 1, fo);
	out[n] = '\0';
	n = fread(err, 1, errlen - 1, fe);
	err[n] = '\0';
	fclose(fo);
	fclose(fe);
	return rc;
}

START_TEST(test_cli)
{
	const struct cli_case *c = &cli_cases[_i];
	char out[4096], err[4096];

	int rc = run_cli(c->args, out, sizeof(out), err, sizeof(err));
	ck_assert_msg(rc == c->rc, "%s...: rc %d, want %d; stderr: %s", c->args[1], rc, c->rc, err);
	ck_assert_str_eq(out, c->out);
	if (c->err)
		ck_assert_msg(strstr(err, c->err) != NULL, "stderr %s lacks %s", err, c->err);
}
END_TEST

/* One formatter for the spans of history and status; the unit changes on the rounded value. */
START_TEST(test_cli_format_span)
{
	static const struct {
		double s;
		const char *want;
	} cases[] = {{-1, "-"},        {0.3, "300 ms"},  {0.9996, "1.0 s"}, {12, "12.0 s"},
	             {59.96, "1m00s"}, {187.4, "3m07s"}, {7500, "2h05m"},   {93600, "1d02h"}};
	char buf[32];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cli_format_span(cases[i].s, buf, sizeof(buf));
		ck_assert_msg(strcmp(buf, cases[i].want) == 0, "%g: %s, want %s", cases[i].s, buf,
		              cases[i].want);
	}
}
END_TEST

START_TEST(test_cli_help_and_now)
{
	const char *help[] = {"next", "--help", NULL};
	const char *now[] = {"next", "--count", "2", "@yearly", NULL};
	char out[4096], err[4096];

	ck_assert_int_eq(run_cli(help, out, sizeof(out), err, sizeof(err)), 0);
	ck_assert(strstr(out, "Usage: pgcrond next") != NULL);
	ck_assert(strstr(out, "@reboot") != NULL && strstr(out, "N seconds") != NULL);
	ck_assert_str_eq(err, "");

	/* Without --from: the next two Januaries after now. */
	ck_assert_int_eq(run_cli(now, out, sizeof(out), err, sizeof(err)), 0);
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	char want[128];
	snprintf(want, sizeof(want), "%04d-01-01T00:00:00Z\n%04d-01-01T00:00:00Z\n",
	         tm.tm_year + 1901, tm.tm_year + 1902);
	ck_assert_str_eq(out, want);
}
END_TEST

/* Under POSIXLY_CORRECT, getopt would stop at the first word; next still takes the options that
 * come after the expression's words, as a user who exported it for another tool expects. */
START_TEST(test_cli_posixly_correct)
{
	const char *args[] = {"next", "0", "12", "*", "*", "*", "--from", "2026-01-01T00:00Z",
	                      "-n",   "2", NULL};
	char out[4096], err[4096];

	ck_assert_int_eq(setenv("POSIXLY_CORRECT", "1", 1), 0);
	int rc = run_cli(args, out, sizeof(out), err, sizeof(err));
	unsetenv("POSIXLY_CORRECT");
	ck_assert_msg(rc == 0, "rc %d; stderr: %s", rc, err);
	ck_assert_str_eq(out, "2026-01-01T12:00:00Z\n2026-01-02T12:00:00Z\n");
}
END_TEST

#define LOOP(tc, fn, table) tcase_add_loop_test(tc, fn, 0, sizeof(table) / sizeof(table[0]))

static Suite *cron_suite(void)
{
	Suite *s = suite_create("cron");
	TCase *tc = tcase_create("parse");
	LOOP(tc, test_parse, parse_cases);
	LOOP(tc, test_parse_other, other_cases);
	LOOP(tc, test_reject, reject_cases);
	tcase_add_test(tc, test_reject_small_buffer);
	LOOP(tc, test_can_fire, can_cases);
	LOOP(tc, test_six_fields, six_cases);
	suite_add_tcase(s, tc);

	tc = tcase_create("next");
	LOOP(tc, test_next_utc, utc_cases);
	LOOP(tc, test_next_dst, dst_cases);
	tcase_add_test(tc, test_never_is_quick);
	tcase_add_test(tc, test_tz);
	suite_add_tcase(s, tc);

	tc = tcase_create("simulation");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_simulation);
	suite_add_tcase(s, tc);

	tc = tcase_create("cli");
	LOOP(tc, test_time_parse, time_cases);
	tcase_add_test(tc, test_time_format);
	LOOP(tc, test_cli, cli_cases);
	tcase_add_test(tc, test_cli_help_and_now);
	tcase_add_test(tc, test_cli_format_span);
	tcase_add_test(tc, test_cli_posixly_correct);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cron_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
