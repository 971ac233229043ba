/* bgwork: blocking work runs on a worker thread while the loop goes on, and its completion
 * is delivered on the loop's thread; bgwork_free waits for work under way and delivers what
 * is left. */
#include <check.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <threads.h>
#include <time.h>

#include "bgwork.h"

struct job {
	struct bgwork_job j; /* first */
	thrd_t work_thread, done_thread;
	atomic_bool started; /* its work began (set on the worker) */
	int done_calls;
	bool ran;
	struct event_base *base;
};

static void slow_work(struct bgwork_job *bj)
{
	struct job *job = (struct job *)bj;
	job->work_thread = thrd_current();
	atomic_store(&job->started, true);
	struct timespec ts = {0, 200 * 1000 * 1000};
	thrd_sleep(&ts, NULL); /* a disk that takes its time */
}

static void done_exit(struct bgwork_job *bj, bool ran)
{
	struct job *job = (struct job *)bj;
	job->done_thread = thrd_current();
	job->done_calls++;
	job->ran = ran;
	if (job->base)
		event_base_loopexit(job->base, NULL);
}

static int ticks;
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	ticks++;
}

START_TEST(work_leaves_the_loop)
{
	struct event_base *base = event_base_new();
	struct bgwork *w;
	ck_assert_int_eq(bgwork_new(base, 1, &w), 0);
	struct job job = {.j = {.work = slow_work, .done = done_exit}, .base = base};
	ck_assert_int_eq(bgwork_submit(w, &job.j), 0);
	ck_assert_int_eq(job.done_calls, 0); /* never from inside submit */
	/* the loop keeps serving a 10 ms timer while the work sleeps 200 ms */
	struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	struct timeval tv = {0, 10000};
	event_add(tick, &tv);
	ticks = 0;
	event_base_dispatch(base);
	ck_assert_int_eq(job.done_calls, 1);
	ck_assert(job.ran);
	ck_assert_int_ge(ticks, 5);
	ck_assert(!thrd_equal(job.work_thread, thrd_current()));
	ck_assert(thrd_equal(job.done_thread, thrd_current()));
	event_free(tick);
	bgwork_free(&w);
	ck_assert_ptr_null(w);
	event_base_free(base);
}
END_TEST

START_TEST(free_delivers_what_is_left)
{
	struct event_base *base = event_base_new();
	struct bgwork *w;
	ck_assert_int_eq(bgwork_new(base, 1, &w), 0);
	struct job a = {.j = {.work = slow_work, .done = done_exit}};
	struct job b = {.j = {.work = slow_work, .done = done_exit}};
	ck_assert_int_eq(bgwork_submit(w, &a.j), 0);
	ck_assert_int_eq(bgwork_submit(w, &b.j), 0);
	/* a is under way, b waits behind it on the one worker (a loaded machine can take over
	 * 50 ms to start a) */
	struct timespec ts = {0, 5 * 1000 * 1000};
	for (int i = 0; i < 2000 && !atomic_load(&a.started); i++)
		thrd_sleep(&ts, NULL);
	ck_assert(atomic_load(&a.started));
	bgwork_free(&w);
	ck_assert_int_eq(a.done_calls, 1);
	ck_assert_int_eq(b.done_calls, 1);
	ck_assert(a.ran);
	ck_assert(!b.ran);
	event_base_free(base);
}
END_TEST

/* A quiet job's end wakes nobody: the loop runs no DONE for it until its owner collects it
 * (bgwork_collect), or a job that wakes the loop ends; collected while under way, its end
 * wakes the loop after all. */
START_TEST(a_quiet_job_waits_to_be_collected)
{
	struct event_base *base = event_base_new();
	struct bgwork *w;
	ck_assert_int_eq(bgwork_new(base, 1, &w), 0);
	struct job q = {.j = {.work = slow_work, .done = done_exit, .quiet = true}};
	ck_assert_int_eq(bgwork_submit(w, &q.j), 0);
	struct timespec ts = {0, 400 * 1000 * 1000};
	thrd_sleep(&ts, NULL); /* its work is over */
	ck_assert_int_eq(event_base_loop(base, EVLOOP_NONBLOCK), 0);
	ck_assert_int_eq(q.done_calls, 0);
	ck_assert(bgwork_collect(w, &q.j));
	ck_assert_int_eq(q.done_calls, 1);
	ck_assert(q.ran);
	ck_assert(thrd_equal(q.done_thread, thrd_current()));
	/* collected while under way: the loop hears of its end */
	struct job u = {.j = {.work = slow_work, .done = done_exit, .quiet = true}, .base = base};
	ck_assert_int_eq(bgwork_submit(w, &u.j), 0);
	ck_assert(!bgwork_collect(w, &u.j));
	event_base_dispatch(base);
	ck_assert_int_eq(u.done_calls, 1);
	/* behind a job that wakes the loop, it is delivered with it, oldest first */
	struct job a = {.j = {.work = slow_work, .done = done_exit, .quiet = true}};
	struct job b = {.j = {.work = slow_work, .done = done_exit}, .base = base};
	ck_assert_int_eq(bgwork_submit(w, &a.j), 0);
	ck_assert_int_eq(bgwork_submit(w, &b.j), 0);
	event_base_dispatch(base);
	ck_assert_int_eq(a.done_calls, 1);
	ck_assert_int_eq(b.done_calls, 1);
	bgwork_free(&w);
	ck_assert_int_eq(q.done_calls, 1);
	event_base_free(base);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("bgwork");
	TCase *tc = tcase_create("bgwork");
	tcase_add_test(tc, work_leaves_the_loop);
	tcase_add_test(tc, free_delivers_what_is_left);
	tcase_add_test(tc, a_quiet_job_waits_to_be_collected);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
