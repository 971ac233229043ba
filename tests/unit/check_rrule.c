/* Recurrence rules ("RRULE:..." schedules, cron_rrule.c) and a job's spread: fires equal those
 * python3-dateutil computes (rrule_table.h, made by rrule_table.py), the refusals and their
 * messages, DST, and the spread's offset. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "cron_parse_ok.h"
#include "rrule_table.h"

START_TEST(test_table)
{
	const struct rrule_case *c = &rrule_cases[_i];
	cron_expr e = parse_ok(c->rule);
	ck_assert(cron_can_fire(&e));
	int64_t t = c->from;
	for (int k = 0; k < 6; k++) {
		t = cron_next(&e, NULL, t);
		int64_t want = c->fires[k] ? c->fires[k] : CRON_NEVER;
		ck_assert_msg(t == want, "%s from %lld: fire %d is %lld, dateutil says %lld",
		              c->rule, (long long)c->from, k, (long long)t, (long long)want);
		if (t == CRON_NEVER)
			break;
	}
}
END_TEST

static const struct {
	const char *rule, *msg;
	int col;
} bad[] = {
    {"RRULE:FREQ=DAILY;BYHOUR=25", "BYHOUR=25: BYHOUR takes hours 0-23", 18},
    {"RRULE:FREQ=DAILY;BYHOURS=2", "unknown part \"BYHOURS\"", 18},
    {"rrule:freq=daily;;byhour=1", "an empty part", 18},
    {"RRULE:BYHOUR=1", "the rule has no FREQ", 7},
    {"RRULE:FREQ=DAILY;COUNT=3", "end the rule with UNTIL instead", 18},
    {"RRULE:FREQ=DAILY;UNTIL=20261231T000000Z", "UNTIL takes a local date and time", 18},
    {"RRULE:FREQ=DAILY;UNTIL=20261231", "UNTIL takes a local date and time", 18},
    {"RRULE:FREQ=DAILY;BYHOUR=1;BYHOUR=2", "BYHOUR is given twice", 27},
    {"RRULE:FREQ=FORTNIGHTLY", "FREQ takes SECONDLY, MINUTELY", 7},
    {"RRULE:FREQ=WEEKLY;BYDAY=1MO", "a numbered BYDAY (like 1MO) goes with FREQ=MONTHLY", 7},
    {"RRULE:FREQ=MONTHLY;BYWEEKNO=2", "BYWEEKNO goes with FREQ=YEARLY only", 7},
    {"RRULE:FREQ=WEEKLY;BYMONTHDAY=2", "BYMONTHDAY does not go with FREQ=WEEKLY", 7},
    {"RRULE:FREQ=MINUTELY;INTERVAL=7;BYHOUR=3", "INTERVAL=7 with FREQ=MINUTELY and BY parts", 7},
    {"RRULE:FREQ=HOURLY;BYSETPOS=1;BYDAY=MO", "BYSETPOS picks from the occurrences of one hour", 7},
    {"RRULE:FREQ=YEARLY;BYDAY=MO,TU,WE,TH,FR,SA,SU;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,"
     "15,16,17,18,19,20,21,22,23;BYMINUTE=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,"
     "21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,"
     "51,52,53,54,55,56,57,58,59",
     "more than 10000 fires in two of its periods", 7},
};

START_TEST(test_reject)
{
	cron_expr e;
	char err[512], col[32];
	ck_assert_int_eq(cron_parse(bad[_i].rule, &e, err, sizeof(err)), -22);
	ck_assert_msg(strstr(err, bad[_i].msg), "%s: %s lacks %s", bad[_i].rule, err, bad[_i].msg);
	snprintf(col, sizeof(col), "(column %d)", bad[_i].col);
	ck_assert_msg(strstr(err, col), "%s: %s lacks %s", bad[_i].rule, err, col);
	ck_assert_int_eq(e.kind, 0);
}
END_TEST

/* A rule that never fires parses, and says so; check refuses it (check_config). */
START_TEST(test_never)
{
	const char *never[] = {"RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
	                       "RRULE:FREQ=SECONDLY;BYMONTH=4;BYMONTHDAY=31",
	                       "RRULE:FREQ=MINUTELY;INTERVAL=15;BYMINUTE=7",
	                       "RRULE:FREQ=DAILY;UNTIL=19691231T000000"};
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
		cron_expr e = parse_ok(never[i]);
		ck_assert_msg(!cron_can_fire(&e), "%s", never[i]);
		ck_assert(cron_next(&e, NULL, 1767225600) == CRON_NEVER);
	}
}
END_TEST

/* DST as for cron: a daily rule is a fixed-time job (a skipped time runs at the gap's end, a
 * repeated one once); an hourly one follows the wall clock. Europe/Berlin, 2026-03-29 02:00 CET
 * becomes 03:00 CEST; 2026-10-25 03:00 CEST becomes 02:00 CET. */
START_TEST(test_dst)
{
	cron_tz *tz = NULL;
	char err[256];
	ck_assert(cron_tz_open("Europe/Berlin", &tz, err, sizeof(err)) == 0);
	cron_expr d = parse_ok("RRULE:FREQ=DAILY;BYHOUR=2;BYMINUTE=30");
	ck_assert_int_eq(cron_next(&d, tz, 1774699200), 1774746000); /* 03-28T12Z: 03-29T01:00Z */
	ck_assert_int_eq(cron_next(&d, tz, 1774746000), 1774830600); /* then 03-30T00:30Z */
	ck_assert_int_eq(cron_next(&d, tz, 1792886400), 1792888200); /* 10-25T00:00Z: 00:30Z */
	ck_assert_int_eq(cron_next(&d, tz, 1792888200), 1792978200); /* once: 10-26T01:30Z */
	cron_expr h = parse_ok("RRULE:FREQ=HOURLY");
	ck_assert_int_eq(cron_next(&h, tz, 1774742400), 1774746000); /* 03-29T00:00Z: 01:00Z */
	ck_assert_int_eq(cron_next(&h, tz, 1792886400), 1792890000); /* 02:00 CEST, then CET */
	ck_assert_int_eq(cron_next(&h, tz, 1792890000), 1792893600);
	cron_tz_free(&tz);
}
END_TEST

START_TEST(test_spread)
{
	/* stable: the same on every instance and start (FNV-1a of the name) */
	ck_assert_int_eq(cron_spread_offset("nightly-report", 30),
	                 cron_spread_offset("nightly-report", 30));
	ck_assert_int_eq(cron_spread_offset("x", 0), 0);
	int seen[30] = {0};
	char name[32];
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "job-%d", i);
		int o = cron_spread_offset(name, 30);
		ck_assert(o >= 0 && o < 30);
		seen[o]++;
	}
	for (int o = 0; o < 30; o++) /* every second of the window is used, about evenly */
		ck_assert_msg(seen[o] > 50 && seen[o] < 150, "offset %d: %d of 3000", o, seen[o]);

	cron_expr e = parse_ok("* * * * *");
	e.offset = 17;
	ck_assert_int_eq(cron_next(&e, NULL, 1767225600), 1767225617); /* 00:00:17 */
	ck_assert_int_eq(cron_next(&e, NULL, 1767225617), 1767225677); /* 00:01:17 */
	ck_assert_int_eq(cron_next(&e, NULL, 1767225616), 1767225617);

	ck_assert_int_eq(cron_shortest_gap(&e, NULL), 60);
	cron_expr r = parse_ok("RRULE:FREQ=DAILY;BYHOUR=6,7;BYMINUTE=0,45");
	ck_assert_int_eq(cron_shortest_gap(&r, NULL), 900);
	cron_expr s = parse_ok("*/20 * * * * *");
	ck_assert_int_eq(cron_shortest_gap(&s, NULL), 20);
}
END_TEST

static Suite *rrule_suite(void)
{
	Suite *s = suite_create("rrule");
	TCase *tc = tcase_create("rrule");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_table, 0, sizeof(rrule_cases) / sizeof(rrule_cases[0]));
	tcase_add_loop_test(tc, test_reject, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, test_never);
	tcase_add_test(tc, test_dst);
	tcase_add_test(tc, test_spread);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(rrule_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
