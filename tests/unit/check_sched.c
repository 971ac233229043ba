/* Scheduler and executor pure logic: the max_running queue, next-fire computation, and
 * pg_cron's return_message for successful results. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "exec.h"
#include "sched.h"

START_TEST(queue_orders_by_instant_then_arrival)
{
	struct sched_queue q = {0};
	int tags[8];
	const int64_t at[8] = {50, 10, 30, 10, 20, 50, 5, 30};
	for (int i = 0; i < 8; i++) {
		tags[i] = i;
		ck_assert_int_eq(sched_queue_push(&q, at[i], (uint64_t)i, &tags[i]), 0);
	}
	/* expected: 6(5) 1(10) 3(10) 4(20) 2(30) 7(30) 0(50) 5(50) */
	const int want[8] = {6, 1, 3, 4, 2, 7, 0, 5};
	for (int i = 0; i < 8; i++) {
		int *t = sched_queue_pop(&q);
		ck_assert_ptr_nonnull(t);
		ck_assert_int_eq(*t, want[i]);
	}
	ck_assert_ptr_null(sched_queue_pop(&q));
	sched_queue_clear(&q);
}
END_TEST

START_TEST(queue_remove_keeps_order)
{
	struct sched_queue q = {0};
	int tags[200];
	for (int i = 0; i < 200; i++) {
		tags[i] = i;
		/* a scrambled but deterministic order of instants */
		ck_assert_int_eq(sched_queue_push(&q, (i * 7919) % 200, (uint64_t)i, &tags[i]), 0);
	}
	for (int i = 0; i < 200; i += 3)
		ck_assert(sched_queue_remove(&q, &tags[i]));
	ck_assert(!sched_queue_remove(&q, &tags[0]));
	int64_t last = -1;
	size_t n = 0;
	int *t;
	while ((t = sched_queue_pop(&q)) != NULL) {
		ck_assert_int_ne(*t % 3, 0);
		int64_t at = (*t * 7919) % 200;
		ck_assert_int_ge(at, last);
		last = at;
		n++;
	}
	ck_assert_uint_eq(n, 200 - 67);
	sched_queue_clear(&q);
}
END_TEST

static const cron_tz *utc(void)
{
	static cron_tz *tz;
	if (!tz)
		ck_assert_int_eq(cron_tz_open("UTC", &tz, NULL, 0), 0);
	return tz;
}

START_TEST(next_fire_is_strictly_after_now_and_prev)
{
	cron_expr e;
	ck_assert_int_eq(cron_parse("* * * * * *", &e, NULL, 0), 0);
	/* at start (no previous fire) the current second is never served: a restart within
	 * the second of a fire must not run it twice */
	ck_assert_int_eq(sched_next_fire(&e, utc(), 0, 1000), 1001);
	/* a timer on time */
	ck_assert_int_eq(sched_next_fire(&e, utc(), 1000, 1000), 1001);
	/* a late timer: the late fire stands for the missed ones */
	ck_assert_int_eq(sched_next_fire(&e, utc(), 1000, 1005), 1006);
	/* the wall clock went back: never before the previous fire */
	ck_assert_int_eq(sched_next_fire(&e, utc(), 1000, 990), 1001);

	ck_assert_int_eq(cron_parse("0 * * * *", &e, NULL, 0), 0);
	ck_assert_int_eq(sched_next_fire(&e, utc(), 0, 3600), 7200);
	ck_assert_int_eq(sched_next_fire(&e, utc(), 0, 3599), 3600);
}
END_TEST

START_TEST(next_fire_interval_and_reboot)
{
	cron_expr e;
	ck_assert_int_eq(cron_parse("10 seconds", &e, NULL, 0), 0);
	ck_assert_int_eq(sched_next_fire(&e, utc(), 0, 1000), 1010);
	ck_assert_int_eq(sched_next_fire(&e, utc(), 1010, 1012), 1022);
	ck_assert_int_eq(cron_parse("@reboot", &e, NULL, 0), 0);
	ck_assert(sched_next_fire(&e, utc(), 0, 1000) == CRON_NEVER);
}
END_TEST

START_TEST(success_message_like_pg_cron)
{
	char buf[64];
	exec_format_success(false, 0, "INSERT 0 1", buf, sizeof(buf));
	ck_assert_str_eq(buf, "INSERT 0 1");
	exec_format_success(true, 1, "SELECT 1", buf, sizeof(buf));
	ck_assert_str_eq(buf, "1 row");
	exec_format_success(true, 0, "SELECT 0", buf, sizeof(buf));
	ck_assert_str_eq(buf, "0 rows");
	exec_format_success(true, 42, "SELECT 42", buf, sizeof(buf));
	ck_assert_str_eq(buf, "42 rows");
	exec_format_success(false, 0, "REFRESH MATERIALIZED VIEW", buf, sizeof(buf));
	ck_assert_str_eq(buf, "REFRESH MATERIALIZED VIEW");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sched");
	TCase *tc = tcase_create("queue");
	tcase_add_test(tc, queue_orders_by_instant_then_arrival);
	tcase_add_test(tc, queue_remove_keeps_order);
	suite_add_tcase(s, tc);
	tc = tcase_create("next_fire");
	tcase_add_test(tc, next_fire_is_strictly_after_now_and_prev);
	tcase_add_test(tc, next_fire_interval_and_reboot);
	suite_add_tcase(s, tc);
	tc = tcase_create("exec");
	tcase_add_test(tc, success_message_like_pg_cron);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
