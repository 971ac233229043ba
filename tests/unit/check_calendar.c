/* Calendars (cron_dates.c and cron_next): a business-day job's fires, skipping the holidays of
 * calendar_holidays.ics, equal those calendar_table.py computes without libical and without
 * pgcrond (its own .ics reader, python3-dateutil, zoneinfo); the same for a recurrence rule and
 * for only_dates; the dates judged in the job's zone before its spread, across DST; long runs of
 * dates; and the .ics refusals with their messages and lines. */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "cron_parse_ok.h"
#include "calendar_table.h"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s", path);
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static const struct cron_dates *holidays(void)
{
	int64_t *days = NULL;
	size_t n = 0, cap = 0;
	int line;
	char err[512];
	int rc = cron_ics_dates(slurp(TEST_SOURCE_DIR "/unit/calendar_holidays.ics"), &days, &n,
	                        &cap, &line, err, sizeof(err));
	ck_assert_msg(rc == 0, "line %d: %s", line, err);
	const struct cron_dates *d = cron_dates_make(days, n);
	free(days);
	ck_assert_uint_eq(cron_dates_count(d), CALENDAR_DATES);
	return d;
}

START_TEST(test_table)
{
	const struct calendar_case *c = &calendar_cases[_i];
	cron_expr e = parse_ok(c->schedule);
	cron_tz *tz = NULL;
	ck_assert(cron_tz_open(c->zone, &tz, NULL, 0) == 0);
	e.dates = holidays();
	if (c->only)
		e.flags |= CRON_ONLY_DATES;
	int64_t t = c->from;
	for (int k = 0; k < 12; k++) {
		t = cron_next(&e, tz, t);
		ck_assert_msg(t == c->fires[k],
		              "%s in %s from %lld: fire %d is %lld, the table says %lld",
		              c->schedule, c->zone, (long long)c->from, k, (long long)t,
		              (long long)c->fires[k]);
	}
	cron_tz_free(&tz);
}
END_TEST

static int64_t day(int y, int m, int d)
{
	struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
	return (int64_t)timegm(&tm) / 86400;
}

static int64_t at(const char *iso)
{
	int64_t t;
	ck_assert(cron_time_parse(iso, &t, NULL, 0) == 0);
	return t;
}

START_TEST(test_interned)
{
	int64_t a[] = {day(2026, 12, 25), day(2026, 1, 1), day(2026, 12, 24), day(2026, 1, 1)};
	int64_t b[] = {day(2026, 12, 24), day(2026, 12, 25), day(2026, 1, 1)};
	const struct cron_dates *x = cron_dates_make(a, 4), *y = cron_dates_make(b, 3);
	ck_assert_ptr_eq(x, y); /* the same dates: the same set, one pointer (a reload's test) */
	ck_assert_uint_eq(cron_dates_count(x), 3);
	ck_assert_ptr_ne(cron_dates_make(b, 2), x);
}
END_TEST

/* In Europe/Berlin, 2026-03-29 has 23 hours: its midnight is 2026-03-28T23:00Z, the next one
 * 2026-03-29T22:00Z. */
START_TEST(test_dst)
{
	cron_tz *tz = NULL;
	ck_assert(cron_tz_open("Europe/Berlin", &tz, NULL, 0) == 0);
	cron_expr e = parse_ok("*/30 * * * *");
	int64_t d28 = day(2026, 3, 28), d29 = day(2026, 3, 29);
	e.dates = cron_dates_make(&d28, 1);
	ck_assert_int_eq(cron_next(&e, tz, at("2026-03-27T22:45Z")), at("2026-03-28T23:00Z"));
	e.dates = cron_dates_make(&d29, 1);
	ck_assert_int_eq(cron_next(&e, tz, at("2026-03-28T22:45Z")), at("2026-03-29T22:00Z"));
	/* a fixed time in the gap runs at its end, on its date */
	e = parse_ok("30 2 * * *");
	e.dates = cron_dates_make(&d29, 1);
	e.flags |= CRON_ONLY_DATES;
	ck_assert_int_eq(cron_next(&e, tz, at("2026-03-01T00:00Z")), at("2026-03-29T01:00Z"));
	ck_assert_int_eq(cron_next(&e, tz, at("2026-03-29T01:00Z")), CRON_NEVER);
	cron_tz_free(&tz);
}
END_TEST

/* The date is the schedule's, before the spread moves the fire past midnight. */
START_TEST(test_spread)
{
	cron_expr e = parse_ok("50 59 23 * * *");
	int64_t d = day(2026, 5, 4);
	e.offset = 20;
	e.dates = cron_dates_make(&d, 1);
	ck_assert_int_eq(cron_next(&e, NULL, at("2026-05-04T12:00Z")), at("2026-05-06T00:00:10Z"));
	e.flags |= CRON_ONLY_DATES;
	ck_assert_int_eq(cron_next(&e, NULL, at("2026-05-01T12:00Z")), at("2026-05-05T00:00:10Z"));
}
END_TEST

/* Five years of dates skipped by a job of every minute: one step over the run. */
START_TEST(test_long_run)
{
	size_t n = (size_t)(day(2031, 1, 1) - day(2026, 1, 1));
	int64_t *days = malloc(n * sizeof(*days));
	for (size_t i = 0; i < n; i++)
		days[i] = day(2026, 1, 1) + (int64_t)i;
	cron_expr e = parse_ok("* * * * *");
	e.dates = cron_dates_make(days, n);
	free(days);
	ck_assert_uint_eq(cron_dates_count(e.dates), n);
	ck_assert_int_eq(cron_next(&e, NULL, at("2025-12-31T23:59Z")), at("2031-01-01T00:00Z"));
	e.flags |= CRON_ONLY_DATES;
	ck_assert_int_eq(cron_next(&e, NULL, at("2030-12-31T23:59Z")), CRON_NEVER);
}
END_TEST

#define CAL(body) "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//t//EN\n" body "END:VCALENDAR\n"
static const struct {
	const char *text, *msg;
	int line;
} bad[] = {
    {"BEGIN:VEVENT\nDTSTART;VALUE=DATE:20261225\nEND:VEVENT\n", "not an iCalendar file", 0},
    {CAL("BEGIN:VEVENT\nDTSTART;VALUE=DATE:20261225\n"), "not an iCalendar file", 0},
    {CAL("BEGIN:VEVENT\nSUMMARY:x\nDTSTART;TZID=Europe/Berlin:20261225T100000\nEND:VEVENT\n"),
     "this event has a time of day (2026-12-25 at 10:00); a calendar of dates takes all-day "
     "events: write DTSTART;VALUE=DATE:20261225",
     6},
    {CAL("BEGIN:VEVENT\nDTSTART;VALUE=DATE:20261225\nEND:VEVENT\nBEGIN:VEVENT\n"
         "DTSTART;VALUE=DATE:2026XX25\nEND:VEVENT\n"),
     "this event cannot be read: Can't parse as DATE value in DTSTART property", 8},
    {CAL("BEGIN:VEVENT\nDTSTART;VALUE=DATE:20261225\nFOO BAR\nEND:VEVENT\n"),
     "could not find a property name or component begin tag: FOO BAR; fix the line", 6},
    {CAL("BEGIN:VEVENT\nSUMMARY:no date\nEND:VEVENT\n"),
     "this event has no date; give it DTSTART;VALUE=DATE:YYYYMMDD", 4},
    {CAL("BEGIN:VEVENT\nDTSTART;VALUE=DATE:19000101\nRRULE:FREQ=DAILY\nEND:VEVENT\n"),
     "more than 100000 dates", 4},
    {CAL("BEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\nDTEND;VALUE=DATE:20280101\nEND:VEVENT\n"),
     "this event lasts 730 days", 4},
};

START_TEST(test_bad)
{
	int64_t *days = NULL;
	size_t n = 0, cap = 0;
	int line = -1;
	char err[512];
	ck_assert_int_eq(cron_ics_dates(bad[_i].text, &days, &n, &cap, &line, err, sizeof(err)),
	                 -EINVAL);
	ck_assert_msg(strstr(err, bad[_i].msg), "case %d: %s", _i, err);
	ck_assert_msg(line == bad[_i].line, "case %d: line %d, not %d (%s)", _i, line, bad[_i].line,
	              err);
	free(days);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("calendar");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_table, 0, sizeof(calendar_cases) / sizeof(calendar_cases[0]));
	tcase_add_test(tc, test_interned);
	tcase_add_test(tc, test_dst);
	tcase_add_test(tc, test_spread);
	tcase_add_test(tc, test_long_run);
	tcase_add_loop_test(tc, test_bad, 0, sizeof(bad) / sizeof(bad[0]));
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
