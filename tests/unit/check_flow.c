/* The pure parts of sched_flow.c: graph-run ids, the catch-up decision, fan-in readiness. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "sched_flow_priv.h"

static cron_expr expr(const char *text)
{
	cron_expr e;
	char err[128];
	ck_assert_msg(cron_parse(text, &e, err, sizeof(err)) == 0, "%s: %s", text, err);
	return e;
}

static int64_t at(const char *iso)
{
	int64_t t;
	char err[128];
	ck_assert_msg(cron_time_parse(iso, &t, err, sizeof(err)) == 0, "%s: %s", iso, err);
	return t;
}

START_TEST(graph_run_id)
{
	char id[64];
	ck_assert_int_eq(flow_graph_run_id(id, sizeof(id), "host", 1700000000123456, "a"), 0);
	ck_assert_str_eq(id, "host-1700000000123456-a");
	char small[8];
	ck_assert_int_eq(flow_graph_run_id(small, sizeof(small), "host", 1, "job"), -ENOSPC);
}
END_TEST

START_TEST(catchup_nothing_missed)
{
	cron_expr e = expr("*/30 * * * *");
	long missed = -1;
	/* last served 10:00, now 10:29:59: the 10:30 fire is still ahead */
	ck_assert(flow_catchup_instant(&e, NULL, at("2026-01-01T10:00:00Z"),
	                               at("2026-01-01T10:29:59Z"), &missed) == CRON_NEVER);
	ck_assert_int_eq(missed, 0);
	/* never served (a new job): nothing to catch up */
	ck_assert(flow_catchup_instant(&e, NULL, 0, at("2026-01-01T10:29:59Z"), NULL) ==
	          CRON_NEVER);
}
END_TEST

START_TEST(catchup_once_for_the_latest)
{
	cron_expr e = expr("*/30 * * * *");
	long missed = 0;
	/* down from 10:10 to 11:45: 10:30, 11:00, 11:30 were missed; one run stands for 11:30 */
	int64_t t = flow_catchup_instant(&e, NULL, at("2026-01-01T10:00:00Z"),
	                                 at("2026-01-01T11:45:00Z"), &missed);
	ck_assert(t == at("2026-01-01T11:30:00Z"));
	ck_assert_int_eq(missed, 3);
	/* a fire exactly now counts (the timer serves only instants after now) */
	t = flow_catchup_instant(&e, NULL, at("2026-01-01T10:00:00Z"), at("2026-01-01T10:30:00Z"),
	                         &missed);
	ck_assert(t == at("2026-01-01T10:30:00Z"));
	ck_assert_int_eq(missed, 1);
}
END_TEST

START_TEST(catchup_seconds_and_long_outages)
{
	cron_expr e = expr("*/3 * * * * *");
	long missed = 0;
	int64_t t = flow_catchup_instant(&e, NULL, at("2026-01-01T10:00:00Z"),
	                                 at("2026-01-01T10:00:07Z"), &missed);
	ck_assert(t == at("2026-01-01T10:00:06Z"));
	ck_assert_int_eq(missed, 2);
	/* a year of every-second fires: bounded work, still one instant at or before now */
	e = expr("* * * * * *");
	t = flow_catchup_instant(&e, NULL, at("2025-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z"),
	                         &missed);
	ck_assert(t == at("2026-01-01T00:00:00Z"));
	ck_assert_int_gt(missed, 0);
	/* @reboot never catches up */
	e = expr("@reboot");
	ck_assert(flow_catchup_instant(&e, NULL, 1, at("2026-01-01T00:00:00Z"), NULL) ==
	          CRON_NEVER);
}
END_TEST

START_TEST(catchup_interval)
{
	cron_expr e = expr("5 seconds");
	long missed = 0;
	int64_t t = flow_catchup_instant(&e, NULL, 1000, 1012, &missed);
	ck_assert(t == 1010);
	ck_assert_int_eq(missed, 2);
	ck_assert(flow_catchup_instant(&e, NULL, 1000, 1004, NULL) == CRON_NEVER);
}
END_TEST

START_TEST(fanin)
{
	uint64_t ups[3] = {5, 7, 9};
	ck_assert(flow_fanin_ready(ups, 3, 4));
	ck_assert(!flow_fanin_ready(ups, 3, 5)); /* the first upstream succeeded before our start */
	ck_assert(!flow_fanin_ready(ups, 0, 0)); /* no upstreams: never upstream-driven */
	uint64_t never[2] = {0, 3};
	ck_assert(!flow_fanin_ready(never, 2, 0));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("flow");
	TCase *tc = tcase_create("pure");
	tcase_add_test(tc, graph_run_id);
	tcase_add_test(tc, catchup_nothing_missed);
	tcase_add_test(tc, catchup_once_for_the_latest);
	tcase_add_test(tc, catchup_seconds_and_long_outages);
	tcase_add_test(tc, catchup_interval);
	tcase_add_test(tc, fanin);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
