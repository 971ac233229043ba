/* The clock (clock.h): the timer heap in simulated time, and the real clock's timers on a
 * libevent loop. */
#include <check.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "clock.h"

struct rec {
	struct clock *c;
	char order[256];
	size_t len;
	int64_t at_us[16];
	int n;
};

struct tmr {
	struct clock_timer t;
	struct rec *rec;
	char name;
	int rearm; /* times left to re-arm itself at once */
};

static void fire(void *arg)
{
	struct tmr *x = arg;
	struct rec *r = x->rec;
	r->order[r->len++] = x->name;
	r->order[r->len] = '\0';
	if (r->n < 16)
		r->at_us[r->n++] = clock_mono_now_us(r->c);
	if (x->rearm > 0) {
		x->rearm--;
		ck_assert_int_eq(clock_arm(r->c, &x->t, 0), 0);
	}
}

static void tmr_init(struct tmr *x, struct rec *r, char name)
{
	memset(x, 0, sizeof(*x));
	x->rec = r;
	x->name = name;
	clock_timer_init(&x->t, fire, x);
}

/* Timers fire at their instants, earliest first, those due together in arming order; a
 * moved or disarmed timer fires at its new instant or not at all. */
START_TEST(sim_order_move_disarm)
{
	struct rec r = {0};
	ck_assert_int_eq(clock_new_sim(1000000, &r.c), 0);
	struct tmr t[200];
	for (int i = 0; i < 6; i++)
		tmr_init(&t[i], &r, (char)('a' + i));
	ck_assert_int_eq(clock_arm(r.c, &t[0].t, 3000), 0); /* a at 3 ms */
	ck_assert_int_eq(clock_arm(r.c, &t[1].t, 1000), 0); /* b at 1 ms */
	ck_assert_int_eq(clock_arm(r.c, &t[2].t, 2000), 0); /* c at 2 ms */
	ck_assert_int_eq(clock_arm(r.c, &t[3].t, 2000), 0); /* d at 2 ms, after c */
	ck_assert_int_eq(clock_arm(r.c, &t[4].t, 500), 0);  /* e: disarmed */
	ck_assert_int_eq(clock_arm(r.c, &t[5].t, 100), 0);  /* f: moved to 5 ms */
	ck_assert(clock_armed(&t[4].t));
	clock_disarm(r.c, &t[4].t);
	ck_assert(!clock_armed(&t[4].t));
	ck_assert_int_eq(clock_arm(r.c, &t[5].t, 5000), 0);
	clock_sim_advance(r.c, 2500, NULL);
	ck_assert_str_eq(r.order, "bcd");
	ck_assert_int_eq(r.at_us[0], 1000);
	ck_assert_int_eq(r.at_us[1], 2000);
	ck_assert_int_eq(clock_mono_now_us(r.c), 2500);
	ck_assert_int_eq(clock_now_us(r.c), 1002500);
	clock_sim_advance(r.c, 10000, NULL);
	ck_assert_str_eq(r.order, "bcdaf");
	ck_assert(!clock_armed(&t[0].t));

	/* many timers in scrambled order come out sorted */
	r.len = 0;
	r.n = 0;
	for (int i = 0; i < 200; i++) {
		tmr_init(&t[i], &r, 'x');
		ck_assert_int_eq(clock_arm(r.c, &t[i].t, ((i * 7919) % 200) * 10), 0);
	}
	for (int i = 0; i < 200; i += 3)
		clock_disarm(r.c, &t[i].t);
	int64_t last = -1;
	for (int step = 0; step < 2000; step += 10) {
		size_t before = r.len;
		clock_sim_advance(r.c, 10, NULL);
		ck_assert_uint_le(r.len - before, 1);
		if (r.len > before) {
			ck_assert_int_gt(clock_mono_now_us(r.c), last);
			last = clock_mono_now_us(r.c);
		}
	}
	ck_assert_uint_eq(r.len, 200 - 67);
	clock_free(&r.c);
}
END_TEST

/* A step of the wall clock moves no timer; a timer that re-arms itself at once fires again
 * in the next pass, not in a loop that never returns. */
START_TEST(sim_step_and_rearm)
{
	struct rec r = {0};
	ck_assert_int_eq(clock_new_sim(5000000, &r.c), 0);
	struct tmr a;
	tmr_init(&a, &r, 'a');
	a.rearm = 3;
	ck_assert_int_eq(clock_arm(r.c, &a.t, 1000000), 0);
	clock_sim_step(r.c, 9000000);
	ck_assert_int_eq(clock_now_us(r.c), 9000000);
	clock_sim_advance(r.c, 999999, NULL);
	ck_assert_str_eq(r.order, "");
	clock_sim_advance(r.c, 1, NULL);
	ck_assert_str_eq(r.order, "aaaa");
	ck_assert(!clock_armed(&a.t));
	clock_free(&r.c);
}
END_TEST

struct real {
	struct rec rec; /* first: a timer's rec is its struct real */
	struct event_base *base;
};

static void real_fire(void *arg)
{
	struct tmr *x = arg;
	fire(arg);
	if (x->rec->len == 3)
		event_base_loopbreak(((struct real *)x->rec)->base);
}

/* The real clock: timers fire from the libevent loop, in order, not before their instant. */
START_TEST(real_clock_on_the_loop)
{
	struct real rl = {0};
	rl.base = event_base_new();
	ck_assert_ptr_nonnull(rl.base);
	ck_assert_int_eq(clock_new(rl.base, &rl.rec.c), 0);
	struct tmr t[3];
	const int64_t delay[3] = {30000, 10000, 20000};
	int64_t start = clock_mono_us();
	for (int i = 0; i < 3; i++) {
		tmr_init(&t[i], &rl.rec, (char)('a' + i));
		clock_timer_init(&t[i].t, real_fire, &t[i]);
		ck_assert_int_eq(clock_arm(rl.rec.c, &t[i].t, delay[i]), 0);
	}
	ck_assert_str_eq(rl.rec.order, ""); /* never from inside clock_arm() */
	event_base_dispatch(rl.base);
	ck_assert_str_eq(rl.rec.order, "bca");
	ck_assert_int_ge(rl.rec.at_us[0] - start, 10000);
	ck_assert_int_ge(rl.rec.at_us[2] - start, 30000);
	clock_free(&rl.rec.c);
	event_base_free(rl.base);
}
END_TEST

/* A burst: 40 timers due at the same instant, each 200 us of work (8 ms in all). The first
 * makes a socket readable; the loop reads it before the burst's later timers (as a run's
 * answer is read while the same second's other fires wait), not after all 40 (clock.c,
 * CLOCK_PASS_US: 2 ms a pass). */
struct burst {
	struct real rl;
	evutil_socket_t sv[2];
	int fired;
};

static void burst_fire(void *arg)
{
	struct tmr *x = arg;
	struct burst *b = (struct burst *)x->rec;
	fire(arg);
	for (int64_t until = clock_mono_us() + 200; clock_mono_us() < until;)
		;
	if (b->fired++ == 0)
		ck_assert_int_eq(send(b->sv[1], "x", 1, 0), 1);
	if (b->fired == 40)
		event_base_loopbreak(b->rl.base);
}

static void burst_read(evutil_socket_t fd, short what, void *arg)
{
	struct burst *b = arg;
	char ch;
	(void)what;
	ck_assert_int_eq(recv(fd, &ch, 1, 0), 1);
	b->rl.rec.order[b->rl.rec.len++] = '!';
	b->rl.rec.order[b->rl.rec.len] = '\0';
}

START_TEST(real_clock_reads_sockets_in_a_burst)
{
	struct burst b = {0};
	b.rl.base = event_base_new();
	ck_assert_ptr_nonnull(b.rl.base);
	ck_assert_int_eq(event_base_priority_init(b.rl.base, 2), 0);
	ck_assert_int_eq(evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, b.sv), 0);
	struct event *ev = event_new(b.rl.base, b.sv[0], EV_READ | EV_PERSIST, burst_read, &b);
	ck_assert_int_eq(event_priority_set(ev, 0), 0);
	ck_assert_int_eq(event_add(ev, NULL), 0);
	ck_assert_int_eq(clock_new(b.rl.base, &b.rl.rec.c), 0);
	struct tmr t[40];
	for (int i = 0; i < 40; i++) {
		tmr_init(&t[i], &b.rl.rec, (char)('A' + i % 26));
		clock_timer_init(&t[i].t, burst_fire, &t[i]);
		ck_assert_int_eq(clock_arm(b.rl.rec.c, &t[i].t, 5000), 0);
	}
	event_base_dispatch(b.rl.base);
	ck_assert_int_eq(b.fired, 40);
	const char *bang = strchr(b.rl.rec.order, '!');
	ck_assert_msg(bang, "the socket was not read during the burst: %s", b.rl.rec.order);
	ck_assert_msg(bang - b.rl.rec.order <= 20, "the socket was read after %d of 40 timers: %s",
	              (int)(bang - b.rl.rec.order), b.rl.rec.order);
	event_free(ev);
	evutil_closesocket(b.sv[0]);
	evutil_closesocket(b.sv[1]);
	clock_free(&b.rl.rec.c);
	event_base_free(b.rl.base);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("clock");
	TCase *tc = tcase_create("clock");
	tcase_add_test(tc, sim_order_move_disarm);
	tcase_add_test(tc, sim_step_and_rearm);
	tcase_add_test(tc, real_clock_on_the_loop);
	tcase_add_test(tc, real_clock_reads_sockets_in_a_burst);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
