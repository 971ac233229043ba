#ifndef PGCROND_CLOCK_H
#define PGCROND_CLOCK_H

/* Time: the readings every module takes (the wall clock for what a person reads, the
 * monotonic clock for intervals), and the scheduler's clock: its readings and its timers
 * behind one small interface, real or simulated, so scheduling behaviour (overlap, retries,
 * catch-up, the graph) is unit-tested in simulated time without PostgreSQL.
 *
 * A clock's timers are one binary min-heap of due instants behind one libevent timer (the
 * real clock) or behind clock_sim_advance() (the simulated one): a timer is a small struct
 * embedded in its owner, not one libevent event per job. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event;
struct event_base;

/* ---- readings ---------------------------------------------------------------------------- */

/* CLOCK_REALTIME: Unix microseconds / milliseconds. */
int64_t clock_wall_us(void);
int64_t clock_wall_ms(void);
/* CLOCK_MONOTONIC: microseconds / milliseconds since an arbitrary point. */
int64_t clock_mono_us(void);
int64_t clock_mono_ms(void);
/* Arm libevent's timer EV to fire MS milliseconds from now (as evtimer_add: a pending one is
 * moved). */
void clock_event_in(struct event *ev, int64_t ms);

/* ---- the scheduler's clock ---------------------------------------------------------------- */

struct clock;

/* A timer, embedded in its owner. clock_timer_init() before use; it calls FN(ARG) from the
 * loop once its instant has come (never from inside clock_arm()). */
struct clock_timer {
	void (*fn)(void *arg);
	void *arg;
	int64_t due_us; /* on the clock's monotonic scale, while armed */
	uint64_t seq;   /* arming order: timers due at the same instant run in that order */
	size_t slot;    /* its place in the heap plus one; 0 when not armed */
};

void clock_timer_init(struct clock_timer *t, void (*fn)(void *arg), void *arg);
/* Arm T to fire DELAY_US from now (negative: now); an armed T moves. 0 or -ENOMEM. */
int clock_arm(struct clock *c, struct clock_timer *t, int64_t delay_us)
    __attribute__((warn_unused_result));
/* Disarm T (nothing if it is not armed). */
void clock_disarm(struct clock *c, struct clock_timer *t);
/* Whether T is armed. */
bool clock_armed(const struct clock_timer *t);

/* The real clock, its timers run by BASE's loop. */
int clock_new(struct event_base *base, struct clock **out) __attribute__((warn_unused_result));
/* A simulated clock at WALL_US (its monotonic reading starts at 0). Time moves only through
 * clock_sim_step() and clock_sim_advance(). */
int clock_new_sim(int64_t wall_us, struct clock **out) __attribute__((warn_unused_result));
/* Armed timers are forgotten (their owners disarm or free them first). */
void clock_free(struct clock **c);

/* The wall clock (Unix microseconds) and the monotonic one (microseconds). */
int64_t clock_now_us(const struct clock *c);
int64_t clock_mono_now_us(const struct clock *c);

/* Simulated clocks only. The wall clock jumps to WALL_US while the monotonic clock (and so
 * every armed timer) stays: what an NTP step or a suspend looks like. */
void clock_sim_step(struct clock *c, int64_t wall_us);
/* Let US microseconds pass without a loop turn (a stalled loop): no timer fires; those
 * that came due fire late, at the next clock_sim_advance(). */
void clock_sim_stall(struct clock *c, int64_t us);
/* Let US microseconds pass: each timer due meanwhile fires at its instant, in order, and
 * after each (and before the first) BASE's ready events run (work deferred through
 * event_active), until none is left. BASE may be NULL. */
void clock_sim_advance(struct clock *c, int64_t us, struct event_base *base);

#endif
