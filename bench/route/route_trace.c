/* The tracer of pgcrond_route (bench_route): GCC's -finstrument-functions calls
 * __cyg_profile_func_enter and _exit around every function of the instrumented daemon; this
 * file is built without the flag. It keeps a depth per thread and, in the thread that runs the
 * loop, records one run's route as a list of entries and exits (function address, depth),
 * written to $PGCROND_ROUTE_OUT once the route is over. Addresses are the symbol table's
 * (pgcrond_route is linked without PIE). Without $PGCROND_ROUTE_OUT it records nothing.
 *
 *   PGCROND_ROUTE_START  address of the function that starts a route (the job's timer callback)
 *   PGCROND_ROUTE_MARK   address of a function that, entered inside START's call, makes that
 *                        call a fire (an early wake-up that only re-arms is no fire)
 *   PGCROND_ROUTE_FIRE   which fire to record (1 for the first; default 3)
 *   PGCROND_ROUTE_END    address of the function entered once the run's row is written; the
 *                        recording goes on to the end of that event-loop callback, and
 *                        bench_route cuts it where the history's completion returns
 *
 * A fire's recording starts at START's entry and is dropped when START returns, unless MARK
 * was entered and this is the fire wanted, or START woke early (no MARK: to claim the fire
 * before its instant) after the fire before the one wanted: then it goes on through the next
 * calls of START until one fires. The output: "route EVENTS OTHER TRUNCATED", then
 * one line per event: "> ADDR DEPTH" (an entry), "< ADDR DEPTH" (an exit), DEPTH the frames of
 * instrumented functions below it. OTHER counts the entries in other threads (the worker
 * threads) while the route was recorded. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NOTRACE __attribute__((no_instrument_function))
#define MAX_EVENTS (1 << 20)

void __cyg_profile_func_enter(void *fn, void *site) NOTRACE;
void __cyg_profile_func_exit(void *fn, void *site) NOTRACE;

/* IDLE: waiting for START; TENTATIVE: inside a call of START; WAKE: START woke early for the
 * fire wanted, recording until the call that fires; ON: the fire wanted, recording to the end */
enum state { OFF, IDLE, TENTATIVE, WAKE, ON, DONE };

struct event {
	uintptr_t fn;
	int depth; /* negative: an exit at -depth - 1 */
};

static __thread int depth;
static enum state state;
static pthread_t loop;
static uintptr_t start_fn, mark_fn, end_fn;
static int fire_want = 3, fires, start_depth, min_depth;
static bool mark_seen, end_seen, truncated;
static struct event *ev;
static size_t n_ev;
static unsigned long other;

static NOTRACE uintptr_t env_addr(const char *name)
{
	const char *v = getenv(name);
	return v ? (uintptr_t)strtoull(v, NULL, 0) : 0;
}

static NOTRACE __attribute__((constructor)) void route_init(void)
{
	if (!getenv("PGCROND_ROUTE_OUT"))
		return;
	start_fn = env_addr("PGCROND_ROUTE_START");
	mark_fn = env_addr("PGCROND_ROUTE_MARK");
	end_fn = env_addr("PGCROND_ROUTE_END");
	if (getenv("PGCROND_ROUTE_FIRE"))
		fire_want = atoi(getenv("PGCROND_ROUTE_FIRE"));
	ev = malloc(MAX_EVENTS * sizeof(*ev));
	if (ev && start_fn && end_fn && fire_want > 0)
		state = IDLE;
}

static NOTRACE void dump(void)
{
	const char *out = getenv("PGCROND_ROUTE_OUT");
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.part", out);
	FILE *f = fopen(tmp, "w");
	state = DONE;
	if (!f)
		return;
	fprintf(f, "route %zu %lu %d\n", n_ev, __atomic_load_n(&other, __ATOMIC_RELAXED),
	        truncated);
	for (size_t i = 0; i < n_ev; i++)
		fprintf(f, "%c %#lx %d\n", ev[i].depth < 0 ? '<' : '>', (unsigned long)ev[i].fn,
		        ev[i].depth < 0 ? -ev[i].depth - 1 : ev[i].depth);
	if (fclose(f) == 0)
		rename(tmp, out);
}

static NOTRACE void put(uintptr_t fn, int d)
{
	if (n_ev == MAX_EVENTS) {
		truncated = true;
		dump();
		return;
	}
	ev[n_ev].fn = fn;
	ev[n_ev].depth = d;
	n_ev++;
}

void __cyg_profile_func_enter(void *fn, void *site)
{
	int d = depth++;
	if (state == OFF || state == DONE || (state == IDLE && (uintptr_t)fn != start_fn))
		return;
	if (state == IDLE) {
		loop = pthread_self();
		n_ev = 0;
		min_depth = d;
	}
	if (!pthread_equal(pthread_self(), loop)) {
		if (state == ON || state == WAKE)
			__atomic_add_fetch(&other, 1, __ATOMIC_RELAXED);
		return;
	}
	if ((uintptr_t)fn == start_fn && (state == IDLE || state == WAKE)) {
		state = TENTATIVE;
		start_depth = d;
		mark_seen = false;
	}
	if ((uintptr_t)fn == mark_fn && state == TENTATIVE)
		mark_seen = true;
	if ((uintptr_t)fn == end_fn && state == ON)
		end_seen = true;
	if (d < min_depth)
		min_depth = d;
	put((uintptr_t)fn, d);
}

void __cyg_profile_func_exit(void *fn, void *site)
{
	int d = --depth;
	if (state != TENTATIVE && state != WAKE && state != ON)
		return;
	if (!pthread_equal(pthread_self(), loop))
		return;
	put((uintptr_t)fn, -d - 1);
	if (d < min_depth)
		min_depth = d;
	if (state == TENTATIVE && d == start_depth) {
		/* START returns: keep it if it fired and is the fire wanted, or if it woke early
		 * (to claim the fire) after the fire before the one wanted */
		if (mark_seen)
			state = ++fires == fire_want ? ON : IDLE;
		else
			state = fires + 1 == fire_want ? WAKE : IDLE;
	} else if (state == ON && end_seen && d == min_depth) {
		/* the event-loop callback in which the row was written returns */
		dump();
	}
}
