/* firetimer: many timers behind one libevent timer, run by a real event loop. */
#include <check.h>
#include <event2/event.h>
#include <stdlib.h>

#include "firetimer.h"

struct rec {
	struct firetimer_set *set;
	int order[16];
	int n;
	struct firetimer t[8];
	int again; /* timer index to arm again with no delay from its own callback, -1: none */
	int again_passes;
};

static void on_due(struct firetimer *t, void *arg)
{
	struct rec *r = arg;
	int i = (int)(t - r->t);
	ck_assert(!firetimer_armed(t));
	r->order[r->n++] = i;
	if (i == r->again && r->again_passes-- > 0)
		ck_assert_int_eq(firetimer_add(r->set, t, 0), 0);
}

static void run_for(struct event_base *b, int ms)
{
	struct timeval tv = {0, ms * 1000};
	event_base_loopexit(b, &tv);
	event_base_dispatch(b);
}

START_TEST(timers_run_earliest_first)
{
	struct event_base *b = event_base_new();
	struct rec r = {.again = -1};
	ck_assert_int_eq(firetimer_set_new(b, on_due, &r, &r.set), 0);
	/* armed out of order; 3 is moved earlier, 1 later, 2 removed */
	int64_t delays[] = {40000, 10000, 30000, 50000, 20000};
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(firetimer_add(r.set, &r.t[i], delays[i]), 0);
	ck_assert_int_eq(firetimer_add(r.set, &r.t[3], 5000), 0);
	ck_assert_int_eq(firetimer_add(r.set, &r.t[1], 60000), 0);
	firetimer_del(r.set, &r.t[2]);
	ck_assert(!firetimer_armed(&r.t[2]));
	ck_assert_uint_eq(firetimer_count(r.set), 4);
	run_for(b, 120);
	ck_assert_int_eq(r.n, 4);
	int want[] = {3, 4, 0, 1};
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(r.order[i], want[i]);
	ck_assert_uint_eq(firetimer_count(r.set), 0);
	firetimer_set_free(&r.set);
	event_base_free(b);
}
END_TEST

/* A timer armed again with no delay from its callback runs on a later pass, not in a loop
 * within the pass, and the others still run. */
START_TEST(rearmed_from_its_callback_runs_on_a_later_pass)
{
	struct event_base *b = event_base_new();
	struct rec r = {.again = 0, .again_passes = 3};
	ck_assert_int_eq(firetimer_set_new(b, on_due, &r, &r.set), 0);
	ck_assert_int_eq(firetimer_add(r.set, &r.t[0], 0), 0);
	ck_assert_int_eq(firetimer_add(r.set, &r.t[1], 0), 0);
	ck_assert_int_eq(event_base_loop(b, EVLOOP_ONCE), 0);
	ck_assert_int_eq(r.n, 2); /* one pass: 0 and 1, and 0 armed again for the next */
	ck_assert(firetimer_armed(&r.t[0]));
	run_for(b, 20);
	ck_assert_int_eq(r.n, 5); /* three more passes of 0 */
	firetimer_set_free(&r.set);
	event_base_free(b);
}
END_TEST

static void never(struct firetimer *t, void *arg)
{
	(void)t;
	(void)arg;
	ck_abort_msg("no timer is due");
}

/* Freeing the set with timers armed leaves them unarmed; many timers keep their order. */
START_TEST(many_timers)
{
	enum { N = 5000 };
	struct event_base *b = event_base_new();
	struct firetimer_set *s;
	struct firetimer *t = calloc(N, sizeof(*t));
	ck_assert_int_eq(firetimer_set_new(b, never, NULL, &s), 0);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(firetimer_add(s, &t[i], 1000000 + (int64_t)((i * 7919) % N)), 0);
	for (int i = 0; i < N; i += 2)
		firetimer_del(s, &t[i]);
	ck_assert_uint_eq(firetimer_count(s), N / 2);
	firetimer_set_free(&s);
	for (int i = 0; i < N; i++)
		ck_assert(!firetimer_armed(&t[i]));
	free(t);
	event_base_free(b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("firetimer");
	TCase *tc = tcase_create("firetimer");
	tcase_add_test(tc, timers_run_earliest_first);
	tcase_add_test(tc, rearmed_from_its_callback_runs_on_a_later_pass);
	tcase_add_test(tc, many_timers);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
