/* Many timers behind one libevent timer (firetimer.h). */
#include "firetimer.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <time.h>

struct firetimer_set {
	struct event_base *base;
	struct event *ev; /* armed for heap[0] */
	firetimer_fn cb;
	void *arg;
	struct firetimer **heap;
	size_t n, cap;
	bool dispatching;
	int64_t dispatch_now; /* the pass's "now": what is armed meanwhile waits for the next */
};

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void place(struct firetimer_set *s, size_t i, struct firetimer *t)
{
	s->heap[i] = t;
	t->pos = i + 1;
}

static void sift_up(struct firetimer_set *s, size_t i)
{
	struct firetimer *t = s->heap[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (s->heap[p]->at_us <= t->at_us)
			break;
		place(s, i, s->heap[p]);
		i = p;
	}
	place(s, i, t);
}

static void sift_down(struct firetimer_set *s, size_t i)
{
	struct firetimer *t = s->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= s->n)
			break;
		if (c + 1 < s->n && s->heap[c + 1]->at_us < s->heap[c]->at_us)
			c++;
		if (t->at_us <= s->heap[c]->at_us)
			break;
		place(s, i, s->heap[c]);
		i = c;
	}
	place(s, i, t);
}

static void remove_at(struct firetimer_set *s, size_t i)
{
	s->heap[i]->pos = 0;
	struct firetimer *last = s->heap[--s->n];
	if (i == s->n)
		return;
	place(s, i, last);
	if (i > 0 && s->heap[(i - 1) / 2]->at_us > last->at_us)
		sift_up(s, i);
	else
		sift_down(s, i);
}

/* The libevent timer follows the earliest deadline (not during a pass: it ends with this). */
static void rearm(struct firetimer_set *s)
{
	if (s->dispatching)
		return;
	if (s->n == 0) {
		event_del(s->ev);
		return;
	}
	int64_t d = s->heap[0]->at_us - mono_us();
	if (d < 0)
		d = 0;
	struct timeval tv = {(time_t)(d / 1000000), (suseconds_t)(d % 1000000)};
	event_add(s->ev, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct firetimer_set *s = arg;
	(void)fd;
	(void)what;
	s->dispatching = true;
	s->dispatch_now = mono_us();
	while (s->n > 0 && s->heap[0]->at_us <= s->dispatch_now) {
		struct firetimer *t = s->heap[0];
		remove_at(s, 0);
		s->cb(t, s->arg);
	}
	s->dispatching = false;
	rearm(s);
}

int firetimer_set_new(struct event_base *base, firetimer_fn cb, void *arg,
                      struct firetimer_set **out)
{
	struct firetimer_set *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base = base;
	s->cb = cb;
	s->arg = arg;
	s->ev = evtimer_new(base, on_timer, s);
	if (!s->ev) {
		free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void firetimer_set_free(struct firetimer_set **sp)
{
	struct firetimer_set *s = sp ? *sp : NULL;
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		s->heap[i]->pos = 0;
	event_free(s->ev);
	free(s->heap);
	free(s);
	*sp = NULL;
}

int firetimer_add(struct firetimer_set *s, struct firetimer *t, int64_t delay_us)
{
	int64_t at = mono_us() + (delay_us > 0 ? delay_us : 0);
	if (s->dispatching && at <= s->dispatch_now)
		at = s->dispatch_now + 1; /* the next pass, as libevent would */
	if (t->pos) {
		size_t i = t->pos - 1;
		int64_t old = t->at_us;
		t->at_us = at;
		if (at < old)
			sift_up(s, i);
		else
			sift_down(s, i);
	} else {
		if (s->n == s->cap) {
			size_t cap = s->cap ? s->cap * 2 : 64;
			struct firetimer **h = realloc(s->heap, cap * sizeof(*h));
			if (!h)
				return -ENOMEM;
			s->heap = h;
			s->cap = cap;
		}
		t->at_us = at;
		place(s, s->n++, t);
		sift_up(s, s->n - 1);
	}
	if (s->heap[0] == t)
		rearm(s);
	return 0;
}

void firetimer_del(struct firetimer_set *s, struct firetimer *t)
{
	if (!t->pos)
		return;
	bool first = t->pos == 1;
	remove_at(s, t->pos - 1);
	if (first)
		rearm(s);
}

size_t firetimer_count(const struct firetimer_set *s)
{
	return s->n;
}
