#ifndef PGCROND_FIRETIMER_H
#define PGCROND_FIRETIMER_H

/* Many timers behind one libevent timer: a binary min-heap of deadlines (monotonic clock)
 * and one event armed for the earliest. The scheduler gives every job a timer for its next
 * fire; 100,000 jobs with a libevent event each cost 128 bytes a job plus libevent's own
 * heap, a firetimer costs 16. Callbacks run from the event loop, earliest first; a timer
 * armed again from a callback with no delay runs on the next pass of the loop, never in the
 * pass that is running (as a libevent timer would). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct firetimer_set;

struct firetimer {
	int64_t at_us; /* the deadline, monotonic µs */
	size_t pos;    /* 1 + its index in the heap; 0: not armed */
};

/* CB(T, ARG) runs when T is due; T is no longer armed then (arm it again from CB if need
 * be). */
typedef void (*firetimer_fn)(struct firetimer *t, void *arg);

int firetimer_set_new(struct event_base *base, firetimer_fn cb, void *arg,
                      struct firetimer_set **out) __attribute__((warn_unused_result));
void firetimer_set_free(struct firetimer_set **s);

/* Arm T to run in DELAY_US (<= 0: on the next pass of the loop), replacing its deadline if
 * it was armed. 0, or -ENOMEM (T is then not armed). */
int firetimer_add(struct firetimer_set *s, struct firetimer *t, int64_t delay_us)
    __attribute__((warn_unused_result));
void firetimer_del(struct firetimer_set *s, struct firetimer *t);

static inline bool firetimer_armed(const struct firetimer *t)
{
	return t->pos != 0;
}

size_t firetimer_count(const struct firetimer_set *s);

#endif
