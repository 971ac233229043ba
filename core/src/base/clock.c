/* Time readings, and the scheduler's clock (see clock.h). */
#include "array.h"
#include "clock.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdlib.h>
#include <time.h>

static int64_t read_us(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t clock_wall_us(void)
{
	return read_us(CLOCK_REALTIME);
}

int64_t clock_wall_ms(void)
{
	return clock_wall_us() / 1000;
}

int64_t clock_mono_us(void)
{
	return read_us(CLOCK_MONOTONIC);
}

int64_t clock_mono_ms(void)
{
	return clock_mono_us() / 1000;
}

void clock_event_in(struct event *ev, int64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(ev, &tv);
}

/* How long one callback of the loop fires due timers (run_due) before the loop reads its
 * sockets again. A minute's burst of a hundred job timers takes under a millisecond and
 * goes in one pass, so every run is queued before the first answers come back and each
 * connection's reset carries the next run's statement; the 15,000 fires of a busy second
 * take over a hundred milliseconds,
 * a few hundred passes: the answers are read between passes. */
#define CLOCK_PASS_US 500

struct clock {
	bool sim;
	/* real */
	struct event ev; /* at the earliest due instant */
	/* simulated */
	int64_t sim_mono_us;
	int64_t sim_offset_us; /* wall minus monotonic */

	struct clock_timer **heap;
	size_t n, cap;
	uint64_t seq;
	bool running; /* inside run_due(): the libevent timer is set once at its end */
};

/* ---- the heap ------------------------------------------------------------------------ */

static bool t_less(const struct clock_timer *a, const struct clock_timer *b)
{
	return a->due_us < b->due_us || (a->due_us == b->due_us && a->seq < b->seq);
}

static void h_set(struct clock *c, size_t i, struct clock_timer *t)
{
	c->heap[i] = t;
	t->slot = i + 1;
}

/* T into slot I (the last one, or one it just left), then up to its place. */
static void h_up(struct clock *c, size_t i, struct clock_timer *t)
{
	while (i > 0 && t_less(t, c->heap[(i - 1) / 2])) {
		h_set(c, i, c->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	h_set(c, i, t);
}

static void h_down(struct clock *c, size_t i)
{
	struct clock_timer *t = c->heap[i];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = l;
		if (l >= c->n)
			break;
		if (r < c->n && t_less(c->heap[r], c->heap[l]))
			m = r;
		if (!t_less(c->heap[m], t))
			break;
		h_set(c, i, c->heap[m]);
		i = m;
	}
	h_set(c, i, t);
}

static void h_remove(struct clock *c, struct clock_timer *t)
{
	size_t i = t->slot - 1;
	t->slot = 0;
	struct clock_timer *last = c->heap[--c->n];
	if (i == c->n)
		return;
	h_set(c, i, last);
	h_down(c, i);
	h_up(c, last->slot - 1, last);
}

/* ---- timers --------------------------------------------------------------------------- */

int64_t clock_mono_now_us(const struct clock *c)
{
	return c->sim ? c->sim_mono_us : clock_mono_us();
}

int64_t clock_now_us(const struct clock *c)
{
	return c->sim ? c->sim_mono_us + c->sim_offset_us : clock_wall_us();
}

/* The real clock's libevent timer, at the earliest due instant. Not inside run_due(): it
 * sets it once, at its end. */
static void set_event(struct clock *c)
{
	if (c->sim)
		return;
	if (c->n == 0) {
		event_del(&c->ev);
		return;
	}
	int64_t delay = c->heap[0]->due_us - clock_mono_us();
	if (delay < 0)
		delay = 0;
	/* libevent adds the delay to the time its loop iteration began: from now instead, so a
	 * timer armed late in a busy iteration does not wake early and wait again */
	event_base_update_cache_time(event_get_base(&c->ev));
	struct timeval tv = {(time_t)(delay / 1000000), (suseconds_t)(delay % 1000000)};
	event_add(&c->ev, &tv);
}

void clock_timer_init(struct clock_timer *t, void (*fn)(void *arg), void *arg)
{
	*t = (struct clock_timer){.fn = fn, .arg = arg};
}

int clock_arm(struct clock *c, struct clock_timer *t, int64_t delay_us)
{
	if (delay_us < 0)
		delay_us = 0;
	if (t->slot)
		h_remove(c, t);
	/* T was not armed when the heap is full (an armed one left room): nothing changed yet */
	if (array_grow(&c->heap, c->n, &c->cap, sizeof(*c->heap), 64) < 0)
		return -ENOMEM;
	t->due_us = clock_mono_now_us(c) + delay_us;
	t->seq = ++c->seq;
	h_up(c, c->n++, t);
	if (t->slot == 1 && !c->running)
		set_event(c);
	return 0;
}

void clock_disarm(struct clock *c, struct clock_timer *t)
{
	if (!t->slot)
		return;
	bool first = t->slot == 1;
	h_remove(c, t);
	if (first && !c->running)
		set_event(c);
}

bool clock_armed(const struct clock_timer *t)
{
	return t->slot != 0;
}

/* Fire the timers due at NOW, earliest first, for at most CLOCK_PASS_US (of real time; a
 * simulated clock fires them all): then the loop reads its sockets before the next pass
 * (the libevent timer is due at once). One armed meanwhile waits for the next pass (even
 * if due at once), so a timer that re-arms itself cannot hold the loop. */
static void run_due(struct clock *c, int64_t now)
{
	uint64_t limit = c->seq;
	int64_t end = c->sim ? INT64_MAX : clock_mono_us() + CLOCK_PASS_US;
	c->running = true;
	while (c->n && c->heap[0]->due_us <= now && c->heap[0]->seq <= limit &&
	       (c->sim || clock_mono_us() < end)) {
		struct clock_timer *t = c->heap[0];
		h_remove(c, t);
		t->fn(t->arg);
	}
	c->running = false;
	set_event(c);
}

static void event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct clock *c = arg;
	run_due(c, clock_mono_us());
}

int clock_new(struct event_base *base, struct clock **out)
{
	struct clock *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	evtimer_assign(&c->ev, base, event_cb, c);
	*out = c;
	return 0;
}

int clock_new_sim(int64_t wall_us, struct clock **out)
{
	struct clock *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->sim = true;
	c->sim_offset_us = wall_us;
	*out = c;
	return 0;
}

void clock_free(struct clock **cp)
{
	struct clock *c = *cp;
	if (!c)
		return;
	if (!c->sim)
		event_del(&c->ev);
	for (size_t i = 0; i < c->n; i++)
		c->heap[i]->slot = 0;
	free(c->heap);
	free(c);
	*cp = NULL;
}

/* ---- simulated time ------------------------------------------------------------------- */

void clock_sim_step(struct clock *c, int64_t wall_us)
{
	c->sim_offset_us = wall_us - c->sim_mono_us;
}

void clock_sim_stall(struct clock *c, int64_t us)
{
	c->sim_mono_us += us > 0 ? us : 0;
}

static void run_ready(struct event_base *base)
{
	while (base && event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE) > 0)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

void clock_sim_advance(struct clock *c, int64_t us, struct event_base *base)
{
	int64_t end = c->sim_mono_us + (us > 0 ? us : 0);
	run_ready(base);
	while (c->n && c->heap[0]->due_us <= end) {
		if (c->heap[0]->due_us > c->sim_mono_us)
			c->sim_mono_us = c->heap[0]->due_us;
		run_due(c, c->sim_mono_us);
		run_ready(base);
	}
	c->sim_mono_us = end;
}
