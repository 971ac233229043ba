/* Scheduler and executor pure logic: the max_running queue, next-fire computation, and
 * pg_cron's return_message for successful results; and the scheduler itself on a simulated
 * wall clock (missed fires, clock steps), with no database: its runs fail at once for want
 * of one, and the log lines say what it fired. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "cron.h"
#include "exec.h"
#include "log.h"
#include "history.h"
#include "sched.h"
#include "sched_priv.h"
#include "sched_recent_priv.h"
#include "status.h"
#include "test_log.h"

/* The queue's first item, taken out (the scheduler takes it as sched_run_to moves its run). */
static void *queue_take(struct sched_queue *q)
{
	void *first = q->n ? q->items[0].data : NULL;
	if (first)
		ck_assert(sched_queue_remove(q, first));
	return first;
}

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
		int *t = queue_take(&q);
		ck_assert_ptr_nonnull(t);
		ck_assert_int_eq(*t, want[i]);
	}
	ck_assert_ptr_null(queue_take(&q));
	sched_queue_clear(&q);
}
END_TEST

/* A run's states (sched_state.c, docs/layout.md "A run's states"): every move the table of
 * the docs draws is allowed, every other one refused with the run left as it was; the run is
 * in its state's holder and nowhere else, and the counts of runs claiming and running follow
 * the states. */
static const struct {
	enum run_state from, to;
} allowed[] = {
    {RUN_DUE, RUN_PENDING},        {RUN_DUE, RUN_PARKED},     {RUN_DUE, RUN_NOTIFY_WAIT},
    {RUN_DUE, RUN_DEFERRED},       {RUN_DUE, RUN_CLAIMING},   {RUN_DUE, RUN_CLUSTER_WAIT},
    {RUN_DUE, RUN_QUEUED},         {RUN_DUE, RUN_RETRY_WAIT}, {RUN_DUE, RUN_RUNNING},
    {RUN_DUE, RUN_ENDED},          {RUN_PENDING, RUN_DUE},    {RUN_PENDING, RUN_ENDED},
    {RUN_PARKED, RUN_DEFERRED},    {RUN_PARKED, RUN_ENDED},   {RUN_NOTIFY_WAIT, RUN_DUE},
    {RUN_NOTIFY_WAIT, RUN_ENDED},  {RUN_DEFERRED, RUN_DUE},   {RUN_DEFERRED, RUN_ENDED},
    {RUN_CLAIMING, RUN_DUE},       {RUN_CLAIMING, RUN_ENDED}, {RUN_CLUSTER_WAIT, RUN_DUE},
    {RUN_CLUSTER_WAIT, RUN_ENDED}, {RUN_QUEUED, RUN_RUNNING}, {RUN_QUEUED, RUN_CLAIMING},
    {RUN_QUEUED, RUN_ENDED},       {RUN_RETRY_WAIT, RUN_DUE}, {RUN_RETRY_WAIT, RUN_ENDED},
    {RUN_RUNNING, RUN_ENDING},     {RUN_RUNNING, RUN_ENDED},  {RUN_ENDING, RUN_ENDED},
};

static bool in_allowed(enum run_state from, enum run_state to)
{
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (allowed[i].from == from && allowed[i].to == to)
			return true;
	return false;
}

/* The holders of a run: the job's slots, the max_running queue, the loop's two lists. */
enum {
	H_ACTIVE = 1,
	H_PENDING = 2,
	H_PARKED = 4,
	H_NOTIFY = 8,
	H_QUEUE = 32,
	H_FLOW = 64,
	H_ENDED = 128
};

static const unsigned holder[RUN_STATES] = {
    [RUN_PENDING] = H_PENDING,         [RUN_PARKED] = H_PARKED,     [RUN_NOTIFY_WAIT] = H_NOTIFY,
    [RUN_DEFERRED] = H_FLOW,           [RUN_CLAIMING] = H_ACTIVE,   [RUN_CLUSTER_WAIT] = H_ACTIVE,
    [RUN_QUEUED] = H_ACTIVE | H_QUEUE, [RUN_RETRY_WAIT] = H_ACTIVE, [RUN_RUNNING] = H_ACTIVE,
    [RUN_ENDING] = H_ACTIVE | H_ENDED,
};

static unsigned held_by(const struct sched *s, const struct job *j, const struct run *r)
{
	unsigned h = (j->active == r ? H_ACTIVE : 0) | (j->pending == r ? H_PENDING : 0) |
	             (j->graph && j->graph->parked == r ? H_PARKED : 0) |
	             (sched_job_notified(j) == r ? H_NOTIFY : 0);
	for (size_t i = 0; i < s->queue.n; i++)
		if (s->queue.items[i].data == r)
			h |= H_QUEUE;
	const struct run *l;
	TAILQ_FOREACH(l, &s->flow, defer)
		h |= l == r ? H_FLOW : 0;
	TAILQ_FOREACH(l, &s->ended, defer)
		h |= l == r ? H_ENDED : 0;
	return h;
}

/* A scheduler with nothing but its lists of runs, set up as sched_new_with does. */
#define BARE_SCHED(s)                                                                              \
	struct sched s = {0};                                                                      \
	TAILQ_INIT(&s.flow);                                                                       \
	TAILQ_INIT(&s.ended)

/* The configuration entry of the bare scheduler's job */
static const struct conf_job bare_conf = {.name = "j", .more = &config_job_more_defaults};

#define COUNTED_RUNNING(st) ((st) == RUN_RUNNING || (st) == RUN_ENDING)

/* Bring R, due, to state ST through the table's moves (a run ends from the loop once it
 * was started). */
static void reach(struct run *r, enum run_state st)
{
	if (st == RUN_ENDING)
		ck_assert(sched_run_to(r, RUN_RUNNING));
	if (st != RUN_DUE)
		ck_assert(sched_run_to(r, st));
}

START_TEST(run_moves_only_between_allowed_states)
{
	int moves = 0;
	for (int from = 0; from < RUN_STATES; from++)
		for (int to = 0; to < RUN_STATES; to++) {
			BARE_SCHED(s);
			/* with the blocks a parked and a notified run are held in */
			struct job_graph g = {0};
			struct job_more m = {0};
			struct job j = {.s = &s, .conf = &bare_conf, .graph = &g, .more = &m};
			struct run r = {.job = &j};
			reach(&r, (enum run_state)from);
			ck_assert_uint_eq(held_by(&s, &j, &r), holder[from]);
			size_t claiming = s.n_claiming, running = s.n_running;
			bool ok = sched_run_to(&r, (enum run_state)to);
			bool want = in_allowed((enum run_state)from, (enum run_state)to);
			ck_assert_msg(ok == want, "%s -> %s: %s", sched_run_state_name(from),
			              sched_run_state_name(to), ok ? "allowed" : "refused");
			ck_assert_int_eq(sched_run_may(from, to), want);
			enum run_state now = ok ? (enum run_state)to : (enum run_state)from;
			moves += ok;
			ck_assert_int_eq(r.state, now);
			ck_assert_uint_eq(held_by(&s, &j, &r), holder[now]);
			ck_assert_uint_eq(s.n_claiming, claiming - (from == RUN_CLAIMING) +
			                                    (now == RUN_CLAIMING));
			ck_assert_uint_eq(s.n_running,
			                  running - COUNTED_RUNNING(from) + COUNTED_RUNNING(now));
			sched_queue_clear(&s.queue);
		}
	ck_assert_int_eq(moves, (int)(sizeof(allowed) / sizeof(allowed[0])));
	/* nothing leaves the end */
	ck_assert(!sched_run_may(RUN_ENDED, RUN_DUE));
}
END_TEST

/* A job's slot holds one run: a second run that would go there is refused and stays where
 * it was; the first one's leaving frees the slot. A job without the blocks that hold a parked
 * and a notified run (made at first use) takes none. */
START_TEST(run_slot_holds_one)
{
	BARE_SCHED(s);
	struct job j = {.s = &s, .conf = &bare_conf};
	struct run a = {.job = &j}, b = {.job = &j};
	ck_assert(!sched_run_to(&a, RUN_PARKED));
	ck_assert(!sched_run_to(&a, RUN_NOTIFY_WAIT));
	ck_assert_int_eq(a.state, RUN_DUE);
	ck_assert(sched_run_to(&a, RUN_RUNNING));
	ck_assert(!sched_run_to(&b, RUN_QUEUED));
	ck_assert_int_eq(b.state, RUN_DUE);
	ck_assert_uint_eq(s.queue.n, 0);
	ck_assert(sched_run_to(&b, RUN_PENDING));
	ck_assert(sched_run_to(&a, RUN_ENDED));
	ck_assert_ptr_null(j.active);
	ck_assert(sched_run_to(&b, RUN_DUE));
	ck_assert_ptr_null(j.pending);
	ck_assert(sched_run_to(&b, RUN_RUNNING));
	ck_assert_ptr_eq(j.active, &b);
	ck_assert_uint_eq(s.n_running, 1);
}
END_TEST

/* A fire's usual life with several instances: claimed, queued for a slot, run, ended; the
 * counts come back to zero. */
START_TEST(run_life_keeps_the_counts)
{
	BARE_SCHED(s);
	struct job j = {.s = &s, .conf = &bare_conf};
	struct run r = {.job = &j};
	const enum run_state life[] = {RUN_CLAIMING, RUN_DUE, RUN_QUEUED, RUN_RUNNING};
	for (size_t i = 0; i < sizeof(life) / sizeof(life[0]); i++) {
		ck_assert(sched_run_to(&r, life[i]));
		ck_assert_uint_eq(s.n_claiming, life[i] == RUN_CLAIMING);
		ck_assert_uint_eq(s.n_running, life[i] == RUN_RUNNING);
	}
	ck_assert(sched_run_to(&r, RUN_ENDED));
	ck_assert_uint_eq(s.n_claiming + s.n_running, 0);
	ck_assert_ptr_null(j.active);
	ck_assert_uint_eq(s.queue.n, 0);
	ck_assert(!sched_run_to(&r, RUN_RUNNING)); /* refused: the run stays ended */
	ck_assert_int_eq(r.state, RUN_ENDED);
	ck_assert_uint_eq(s.n_running, 0);
	sched_queue_clear(&s.queue);
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
	while ((t = queue_take(&q)) != NULL) {
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

/* ---- the scheduler on a simulated clock (clock.h) ----------------------------------------
 * Time moves only when the test says: h_run lets it pass with the loop turning, h_step steps
 * the wall clock (NTP, a suspend), h_stall lets it pass with the loop held. The runs go to
 * the real executor, which has no database "nowhere": each fails at once, from the loop. */

static int64_t at(const char *iso)
{
	int64_t t;
	ck_assert_int_eq(cron_time_parse(iso, &t, NULL, 0), 0);
	return t;
}

struct harness {
	struct event_base *base;
	struct clock *clock;
	struct exec *ex;
	struct sched *s;
	struct pgc_config cfg;
	struct conf_job job;
	char log[64];
	int saved_stderr;
};

/* A scheduler on the harness's clock and executor. */
static void h_sched(struct harness *h)
{
	const struct sched_executor ex = sched_exec_executor(h->ex);
	ck_assert_int_eq(sched_new_with(h->base, h->clock, &ex, NULL, &h->s), 0);
}

/* One job "tick" with SCHEDULE and CATCHUP, the clock set to START_US; stderr (the log) goes
 * to a file. */
static void h_start(struct harness *h, const char *schedule, enum catchup_policy catchup,
                    int64_t start_us)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->log, sizeof(h->log), "/tmp/check_sched.XXXXXX");
	int fd = mkstemp(h->log);
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	h->saved_stderr = dup(2);
	ck_assert_int_ge(dup2(fd, 2), 0);
	close(fd);
	log_init(LOG_LVL_INFO);

	h->base = event_base_new();
	ck_assert_ptr_nonnull(h->base);
	ck_assert_int_eq(clock_new_sim(start_us, &h->clock), 0);
	ck_assert_int_eq(exec_new(h->base, &h->ex), 0);
	h_sched(h);
	h->job = (struct conf_job){.name = "tick",
	                           .command = "SELECT 1",
	                           .database = "nowhere",
	                           .schedule = (char *)schedule,
	                           .enabled = true,
	                           .catchup = catchup,
	                           .more = &config_job_more_defaults};
	ck_assert_int_eq(cron_parse(schedule, &h->job.cron, NULL, 0), 0);
	h->cfg = (struct pgc_config){.max_running = 4, .jobs = &h->job, .n_jobs = 1};
	ck_assert_int_eq(sched_apply(h->s, &h->cfg, utc(), NULL, true), 0);
}

/* Let SECONDS pass, the loop turning (timers and deferred work run in order). */
static void h_run(struct harness *h, double seconds)
{
	clock_sim_advance(h->clock, (int64_t)(seconds * 1e6), h->base);
}

/* Step the simulated wall clock to WALL_US; the scheduler notices at its next wake-up. */
static void h_step(struct harness *h, int64_t wall_us)
{
	clock_sim_step(h->clock, wall_us);
	sched_check_clock(h->s);
}

/* Let SECONDS pass with the loop held: timers due meanwhile fire late, at the next h_run. */
static void h_stall(struct harness *h, double seconds)
{
	clock_sim_stall(h->clock, (int64_t)(seconds * 1e6));
}

static int64_t h_next(struct harness *h)
{
	return sched_job_next(h->s, "tick");
}

static void h_stop(struct harness *h)
{
	sched_free(&h->s);
	exec_free(&h->ex);
	clock_free(&h->clock);
	event_base_free(h->base);
	fflush(stderr);
	dup2(h->saved_stderr, 2);
	close(h->saved_stderr);
	unlink(h->log);
}

/* A job with a timezone of its own reads its schedule there (the daemon's zone is UTC); a
 * reload that changes only the job's zone moves its next fire. */
START_TEST(job_timezone_is_its_own)
{
	struct harness h;
	h_start(&h, "0 9 * * *", CATCHUP_ONCE, at("2026-07-01T00:00:00Z") * 1000000);
	ck_assert_int_eq(h_next(&h), at("2026-07-01T09:00:00Z"));
	struct conf_job j2 = h.job;
	struct conf_job_more m2 = *h.job.more;
	m2.cal.timezone = "Europe/Berlin";
	ck_assert_int_eq(cron_tz_open(m2.cal.timezone, &m2.cal.tz, NULL, 0), 0);
	j2.more = &m2;
	struct pgc_config c2 = h.cfg;
	c2.jobs = &j2;
	ck_assert_int_eq(sched_apply(h.s, &c2, utc(), NULL, false), 0);
	/* 09:00 in Berlin's summer time is 07:00 UTC */
	ck_assert_int_eq(h_next(&h), at("2026-07-01T07:00:00Z"));
	/* and back to the daemon's zone */
	ck_assert_int_eq(sched_apply(h.s, &h.cfg, utc(), NULL, false), 0);
	ck_assert_int_eq(h_next(&h), at("2026-07-01T09:00:00Z"));
	cron_tz_free(&m2.cal.tz);
	h_stop(&h);
}
END_TEST

/* A reload finds each job at its old place when it kept it, by name when it moved: two jobs
 * that swap places (one of them with another schedule) keep their own definitions. */
START_TEST(reload_finds_jobs_that_moved)
{
	struct harness h;
	h_start(&h, "0 9 * * *", CATCHUP_ONCE, at("2026-07-01T00:00:00Z") * 1000000);
	struct conf_job ab[2] = {h.job, h.job}, ba[2];
	ab[1].name = "other";
	ab[1].schedule = "0 10 * * *";
	ck_assert_int_eq(cron_parse(ab[1].schedule, &ab[1].cron, NULL, 0), 0);
	struct pgc_config c2 = h.cfg, c3 = h.cfg;
	c2.jobs = ab;
	c2.n_jobs = 2;
	ck_assert_int_eq(sched_apply(h.s, &c2, utc(), NULL, false), 0);
	ba[0] = ab[1];
	ba[1] = ab[0];
	ba[0].schedule = "0 11 * * *";
	ck_assert_int_eq(cron_parse(ba[0].schedule, &ba[0].cron, NULL, 0), 0);
	c3.jobs = ba;
	c3.n_jobs = 2;
	ck_assert_int_eq(sched_apply(h.s, &c3, utc(), NULL, false), 0);
	struct job *tick = sched_job_find(h.s, "tick"), *other = sched_job_find(h.s, "other");
	ck_assert_ptr_eq(tick->conf, &ba[1]);
	ck_assert_ptr_eq(other->conf, &ba[0]);
	ck_assert_int_eq(tick->next_fire, at("2026-07-01T09:00:00Z"));
	ck_assert_int_eq(other->next_fire, at("2026-07-01T11:00:00Z"));
	ck_assert_int_eq(sched_apply(h.s, &h.cfg, utc(), NULL, false), 0);
	ck_assert_ptr_null(sched_job_find(h.s, "other"));
	ck_assert_int_eq(h_next(&h), at("2026-07-01T09:00:00Z"));
	h_stop(&h);
}
END_TEST

START_TEST(backward_step_wildcard_goes_on_at_the_new_time)
{
	struct harness h;
	h_start(&h, "* * * * *", CATCHUP_ONCE, at("2026-11-22T10:01:59Z") * 1000000 + 600000);
	ck_assert_int_eq(h_next(&h), at("2026-11-22T10:02:00Z"));
	h_run(&h, 1.2);
	ck_assert_log(&h, "scheduled 10:02:00Z");
	ck_assert_int_eq(h_next(&h), at("2026-11-22T10:03:00Z"));
	/* just before the next fire, the clock goes back 2 h */
	h_step(&h, at("2026-11-22T10:02:59Z") * 1000000 + 600000);
	h_step(&h, at("2026-11-22T08:02:59Z") * 1000000 + 600000);
	/* cronie: a wildcard job goes on at the new time, not 2 h later */
	ck_assert_int_eq(h_next(&h), at("2026-11-22T08:03:00Z"));
	h_run(&h, 1.2);
	ck_assert_log(&h, "scheduled 08:03:00Z");
	ck_assert_int_eq(h_next(&h), at("2026-11-22T08:04:00Z"));
	ck_assert_int_eq(test_log_count(h.log, "started ("), 2);
	h_stop(&h);
}
END_TEST

START_TEST(backward_step_interval_goes_on)
{
	struct harness h;
	h_start(&h, "2 seconds", CATCHUP_ONCE, at("2026-11-22T10:00:00Z") * 1000000);
	ck_assert_int_eq(h_next(&h), at("2026-11-22T10:00:02Z"));
	h_run(&h, 2.6);
	ck_assert_log(&h, "scheduled 10:00:02Z");
	h_step(&h, clock_now_us(h.clock) - 2 * 3600 * INT64_C(1000000));
	/* two seconds from the new time, not from the old one */
	ck_assert_int_le(h_next(&h), at("2026-11-22T08:00:06Z"));
	h_run(&h, 2.6);
	ck_assert_log(&h, "scheduled 08:00:0");
	h_stop(&h);
}
END_TEST

START_TEST(backward_step_fixed_time_not_served_twice)
{
	struct harness h;
	h_start(&h, "30 2 * * *", CATCHUP_ONCE, at("2026-11-22T02:29:59Z") * 1000000 + 600000);
	h_run(&h, 1.2);
	ck_assert_log(&h, "scheduled 02:30:00Z");
	ck_assert_int_eq(h_next(&h), at("2026-11-23T02:30:00Z"));
	/* the clock goes back to 02:00: 02:30 today was served already */
	h_step(&h, at("2026-11-22T02:00:00Z") * 1000000);
	ck_assert_int_eq(h_next(&h), at("2026-11-23T02:30:00Z"));
	/* ... and it reaches 02:30 again (a step, to keep the test short): no second run */
	h_step(&h, at("2026-11-22T02:29:59Z") * 1000000 + 600000);
	h_run(&h, 1.2);
	ck_assert_int_eq(test_log_count(h.log, "started ("), 1);
	ck_assert_int_eq(test_log_count(h.log, "missed"), 0);
	ck_assert_int_eq(h_next(&h), at("2026-11-23T02:30:00Z"));
	h_stop(&h);
}
END_TEST

START_TEST(forward_step_reports_missed_fires_skip)
{
	struct harness h;
	h_start(&h, "* * * * *", CATCHUP_SKIP, at("2026-11-22T10:00:30Z") * 1000000);
	h_step(&h, at("2026-11-22T10:05:30Z") * 1000000);
	ck_assert_log(&h, "tick: 5 fires from 2026-11-22T10:01:00Z to 2026-11-22T10:05:00Z missed "
	                  "(the wall clock stepped forward by 300.0 s");
	ck_assert_log(&h, "catchup = skip");
	ck_assert_int_eq(test_log_count(h.log, "started ("), 0);
	ck_assert_int_eq(h_next(&h), at("2026-11-22T10:06:00Z"));
	h_stop(&h);
}
END_TEST

START_TEST(forward_step_catches_up_once)
{
	struct harness h;
	h_start(&h, "* * * * *", CATCHUP_ONCE, at("2026-11-22T10:00:30Z") * 1000000);
	h_step(&h, at("2026-11-22T10:05:30Z") * 1000000);
	h_run(&h, 0.3);
	ck_assert_log(&h, "5 fires from 2026-11-22T10:01:00Z to 2026-11-22T10:05:00Z missed");
	ck_assert_log(&h, "running once for 2026-11-22T10:05:00Z (catchup = once)");
	ck_assert_log(&h, "started (catchup, scheduled 10:05:00Z");
	ck_assert_int_eq(test_log_count(h.log, "started ("), 1);
	ck_assert_int_eq(h_next(&h), at("2026-11-22T10:06:00Z"));
	h_stop(&h);
}
END_TEST

START_TEST(stalled_loop_reports_missed_fires)
{
	struct harness h;
	h_start(&h, "* * * * * *", CATCHUP_SKIP, at("2026-11-22T10:00:00Z") * 1000000 + 500000);
	/* the loop does not run for 3.2 s: the fires at :01 and :02 cannot be served */
	h_stall(&h, 3.2);
	h_run(&h, 0.3);
	ck_assert_log(&h, "fires from 2026-11-22T10:00:01Z to");
	ck_assert_log(&h, "missed (the timer woke ");
	ck_assert_log(&h, "catchup = skip");
	/* nothing ran for the missed fires */
	ck_assert_int_eq(test_log_count(h.log, "scheduled 10:00:01Z"), 0);
	ck_assert_int_eq(test_log_count(h.log, "scheduled 10:00:02Z"), 0);
	h_stop(&h);
}
END_TEST

/* ---- pause and resume, and the live state status.c reads ------------------------------ */

static json_t *h_status(struct harness *h)
{
	struct status_src src = {
	    .sched = h->s, .ex = h->ex, .instance = "test", .started_us = clock_now_us(h->clock)};
	json_t *st = status_snapshot(&src, "tick");
	ck_assert_ptr_nonnull(st);
	return st;
}

static const char *h_job_str(json_t *st, const char *key)
{
	return json_string_value(
	    json_object_get(json_array_get(json_object_get(st, "jobs"), 0), key));
}

/* ---- what the status remembers across a restart --------------------------------------- */

static json_t *h_status_of(struct harness *h, const char *job)
{
	struct status_src src = {
	    .sched = h->s, .ex = h->ex, .instance = "test", .started_us = clock_now_us(h->clock)};
	json_t *st = status_snapshot(&src, job);
	ck_assert_ptr_nonnull(st);
	return json_array_get(json_object_get(st, "jobs"), 0) ? st : NULL;
}

/* "RUNID STATUS,..." of the job's strip, newest first. */
static void strip_of(json_t *st, char *out, size_t len)
{
	size_t i;
	json_t *r;
	out[0] = '\0';
	json_array_foreach(
	    json_object_get(json_array_get(json_object_get(st, "jobs"), 0), "recent_runs"), i, r)
	{
		size_t l = strlen(out);
		snprintf(out + l, len - l, "%s%lld %s", i ? "," : "",
		         (long long)json_integer_value(json_object_get(r, "runid")),
		         json_string_value(json_object_get(r, "status")));
	}
}

static void past(struct harness *h, enum hist_past_kind kind, const char *job, const char *status,
                 int64_t start_s, int64_t runid)
{
	struct hist_past_run pr = {.job = job,
	                           .status = status,
	                           .message = strcmp(status, "failed") == 0 ? "boom" : "1 row",
	                           .sqlstate = strcmp(status, "failed") == 0 ? "22012" : NULL,
	                           .trigger = "schedule",
	                           .attempt = 1,
	                           .start_us = start_s * 1000000,
	                           .end_us = start_s * 1000000 + 5000,
	                           .runid = runid};
	sched_recent_take(h->s, kind, &pr);
}

/* The history's answer at start: a scheduled job gets its last result and strip at once; a job
 * not scheduled yet (a SQL job read a moment later) gets them when it appears; a run that ends
 * afterwards goes first in the strip, and a skip leaves the last result as it is. */
START_TEST(status_remembers_runs_read_back)
{
	struct harness h;
	int64_t t0 = at("2026-11-22T10:00:30Z");
	h_start(&h, "* * * * *", CATCHUP_SKIP, t0 * 1000000);
	past(&h, HIST_PAST_FAILURE, "tick", "failed", t0 - 60, 7);
	past(&h, HIST_PAST_LAST, "later", "succeeded", t0 - 50, 9);
	past(&h, HIST_PAST_LAST, "tick", "failed", t0 - 60, 7);
	past(&h, HIST_PAST_RUN, "later", "succeeded", t0 - 50, 9);
	past(&h, HIST_PAST_RUN, "tick", "failed", t0 - 60, 7);
	past(&h, HIST_PAST_RUN, "later", "skipped", t0 - 55, 8);
	past(&h, HIST_PAST_RUN, "tick", "succeeded", t0 - 120, 5);
	sched_recent_take(h.s, HIST_PAST_LAST, NULL);

	json_t *st = h_status_of(&h, "tick");
	json_t *last =
	    json_object_get(json_array_get(json_object_get(st, "jobs"), 0), "last_result");
	ck_assert_int_eq(json_integer_value(json_object_get(last, "runid")), 7);
	ck_assert_str_eq(json_string_value(json_object_get(last, "message")), "boom");
	ck_assert_str_eq(json_string_value(json_object_get(last, "sqlstate")), "22012");
	char strip[256];
	strip_of(st, strip, sizeof(strip));
	ck_assert_str_eq(strip, "7 failed,5 succeeded");
	json_decref(st);

	/* "later" comes with the next load */
	struct conf_job jobs[2] = {h.job, h.job};
	jobs[1].name = "later";
	struct pgc_config c2 = h.cfg;
	c2.jobs = jobs;
	c2.n_jobs = 2;
	ck_assert_int_eq(sched_apply(h.s, &c2, utc(), NULL, false), 0);
	st = h_status_of(&h, "later");
	last = json_object_get(json_array_get(json_object_get(st, "jobs"), 0), "last_result");
	ck_assert_int_eq(json_integer_value(json_object_get(last, "runid")), 9);
	ck_assert_str_eq(json_string_value(json_object_get(last, "status")), "succeeded");
	strip_of(st, strip, sizeof(strip));
	ck_assert_str_eq(strip, "9 succeeded,8 skipped");
	json_decref(st);

	/* live: a skip of this process, newest, without a run id; the last result stays */
	struct job *j = sched_job_find(h.s, "tick");
	sched_recent_note(j, SCHED_SKIPPED, (t0 + 1) * 1000000, (t0 + 1) * 1000000, 1, 0, 0);
	st = h_status_of(&h, "tick");
	strip_of(st, strip, sizeof(strip));
	ck_assert_str_eq(strip, "0 skipped,7 failed,5 succeeded");
	last = json_object_get(json_array_get(json_object_get(st, "jobs"), 0), "last_result");
	ck_assert_int_eq(json_integer_value(json_object_get(last, "runid")), 7);
	json_decref(st);
	/* eleven more: the strip keeps ten */
	for (int i = 2; i < 13; i++)
		sched_recent_note(j, SCHED_SUCCEEDED, (t0 + i) * 1000000, (t0 + i) * 1000000 + 1, 1,
		                  0, 0);
	st = h_status_of(&h, "tick");
	ck_assert_int_eq(json_array_size(json_object_get(
	                     json_array_get(json_object_get(st, "jobs"), 0), "recent_runs")),
	                 SCHED_RECENT_RUNS);
	json_decref(st);
	ck_assert_int_eq(sched_apply(h.s, &h.cfg, utc(), NULL, false), 0);
	h_stop(&h);
}
END_TEST

START_TEST(pause_holds_fires_and_resume_catches_up_once)
{
	struct harness h;
	h_start(&h, "* * * * *", CATCHUP_ONCE, at("2026-11-22T10:00:30Z") * 1000000);
	json_t *st = h_status(&h);
	ck_assert_str_eq(h_job_str(st, "state"), "idle");
	ck_assert_str_eq(h_job_str(st, "next_fire"), "2026-11-22T10:01:00Z");
	json_decref(st);

	ck_assert_int_eq(sched_pause(h.s, "tick"), 0);
	ck_assert_int_eq(sched_pause(h.s, "tick"), -EALREADY);
	ck_assert_int_eq(sched_pause(h.s, "nosuch"), -ENOENT);
	ck_assert(sched_is_paused(h.s, "tick"));
	/* five fires pass while paused: none starts, none is reported missed yet */
	h_step(&h, at("2026-11-22T10:05:30Z") * 1000000);
	h_run(&h, 0.3);
	ck_assert_int_eq(test_log_count(h.log, "started ("), 0);
	ck_assert_int_eq(test_log_count(h.log, "missed"), 0);
	st = h_status(&h);
	ck_assert_str_eq(h_job_str(st, "state"), "paused");
	ck_assert_ptr_null(h_job_str(st, "next_fire")); /* nothing fires until resume */
	ck_assert_str_eq(h_job_str(st, "next_scheduled"), "2026-11-22T10:01:00Z");
	json_decref(st);

	ck_assert_int_eq(sched_resume(h.s, "tick"), 0);
	ck_assert_int_eq(sched_resume(h.s, "tick"), -EALREADY);
	h_run(&h, 0.3);
	ck_assert_log(&h, "fires came due while paused; running once (catchup = once)");
	ck_assert_log(&h, "started (catchup, scheduled 10:05:00Z");
	ck_assert_int_eq(test_log_count(h.log, "started ("), 1);
	ck_assert_int_eq(h_next(&h), at("2026-11-22T10:06:00Z"));
	st = h_status(&h);
	ck_assert_str_eq(h_job_str(st, "next_fire"), "2026-11-22T10:06:00Z");
	/* the run failed at once (no database here): its result is the last one */
	json_t *last =
	    json_object_get(json_array_get(json_object_get(st, "jobs"), 0), "last_result");
	ck_assert_str_eq(json_string_value(json_object_get(last, "status")), "failed");
	ck_assert_str_eq(json_string_value(json_object_get(last, "trigger")), "catchup");
	json_decref(st);
	h_stop(&h);
}
END_TEST

START_TEST(resume_with_catchup_skip_runs_nothing)
{
	struct harness h;
	h_start(&h, "* * * * *", CATCHUP_SKIP, at("2026-11-22T10:00:30Z") * 1000000);
	ck_assert_int_eq(sched_pause(h.s, "tick"), 0);
	h_step(&h, at("2026-11-22T10:03:30Z") * 1000000);
	ck_assert_int_eq(sched_resume(h.s, "tick"), 0);
	h_run(&h, 0.3);
	ck_assert_log(&h, "fires came due while paused; none runs (catchup = skip)");
	ck_assert_int_eq(test_log_count(h.log, "started ("), 0);
	ck_assert_int_eq(h_next(&h), at("2026-11-22T10:04:00Z"));
	h_stop(&h);
}
END_TEST

/* A pause that no fire passed: resume just re-arms. A name paused before the job exists
 * (the saved state at start) pauses it when it appears. */
START_TEST(resume_without_due_fires_and_paused_at_start)
{
	struct harness h;
	h_start(&h, "* * * * *", CATCHUP_ONCE, at("2026-11-22T10:00:30Z") * 1000000);
	ck_assert_int_eq(sched_pause(h.s, "tick"), 0);
	ck_assert_int_eq(sched_resume(h.s, "tick"), 0);
	ck_assert_int_eq(h_next(&h), at("2026-11-22T10:01:00Z"));
	h_step(&h, at("2026-11-22T10:00:59Z") * 1000000 + 700000);
	h_run(&h, 0.6);
	ck_assert_log(&h, "started (schedule, scheduled 10:01:00Z");
	ck_assert_int_eq(test_log_count(h.log, "came due while paused"), 0);
	h_stop(&h);

	h_start(&h, "* * * * *", CATCHUP_ONCE, at("2026-11-22T10:00:59Z") * 1000000 + 700000);
	sched_free(&h.s);
	h_sched(&h);
	const char *names[] = {"tick"};
	ck_assert_int_eq(sched_set_paused(h.s, names, 1), 0);
	ck_assert_int_eq(sched_apply(h.s, &h.cfg, utc(), NULL, true), 0);
	h_run(&h, 0.6);
	ck_assert_int_eq(test_log_count(h.log, "started ("), 0);
	const char *const *p;
	ck_assert_uint_eq(sched_paused_names(h.s, &p), 1);
	ck_assert_str_eq(p[0], "tick");
	h_stop(&h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sched");
	TCase *tc = tcase_create("queue");
	tcase_add_test(tc, queue_orders_by_instant_then_arrival);
	tcase_add_test(tc, queue_remove_keeps_order);
	tcase_add_test(tc, run_moves_only_between_allowed_states);
	tcase_add_test(tc, run_slot_holds_one);
	tcase_add_test(tc, run_life_keeps_the_counts);
	suite_add_tcase(s, tc);
	tc = tcase_create("next_fire");
	tcase_add_test(tc, next_fire_is_strictly_after_now_and_prev);
	tcase_add_test(tc, next_fire_interval_and_reboot);
	suite_add_tcase(s, tc);
	tc = tcase_create("clock");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, job_timezone_is_its_own);
	tcase_add_test(tc, reload_finds_jobs_that_moved);
	tcase_add_test(tc, backward_step_wildcard_goes_on_at_the_new_time);
	tcase_add_test(tc, backward_step_interval_goes_on);
	tcase_add_test(tc, backward_step_fixed_time_not_served_twice);
	tcase_add_test(tc, forward_step_reports_missed_fires_skip);
	tcase_add_test(tc, forward_step_catches_up_once);
	tcase_add_test(tc, stalled_loop_reports_missed_fires);
	tcase_add_test(tc, pause_holds_fires_and_resume_catches_up_once);
	tcase_add_test(tc, resume_with_catchup_skip_runs_nothing);
	tcase_add_test(tc, resume_without_due_fires_and_paused_at_start);
	suite_add_tcase(s, tc);
	tc = tcase_create("exec");
	tcase_add_test(tc, status_remembers_runs_read_back);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
