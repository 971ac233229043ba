/* Freshness (sched_fresh_priv.h) in simulated time: the real scheduler with a fake executor that
 * answers the change checks from a simulated counter and ends runs after a set duration, no
 * PostgreSQL. What a user would check: every write is reflected by a run that ends within
 * the SLA (plus the run's duration) of the write, writes are gathered (fewer runs than
 * writes), a quiet period costs no run, and an unreadable source runs every period. Plus the
 * pure plan (fresh_plan). */
#include <check.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "cron.h"
#include "exec.h"
#include "sched_fresh_priv.h"
#include "log.h"
#include "sched.h"

#define T0 1795305630LL
#define MAX_RUNS 512

struct sub {
	bool check; /* a change check (the daemon's own statement) rather than a job's run */
	int64_t at_us;
	int64_t snapshot; /* the counter the statement saw */
	void (*on_row)(void *, int, const char *const *);
	void (*on_done)(void *, const struct exec_outcome *);
	void *arg;
	bool ended;
	int64_t end_us;
};

struct sim {
	struct event_base *base;
	struct clock *clock;
	cron_tz *tz; /* the scheduler borrows it until sched_free() */
	struct sched *s;
	struct pgc_config cfg;
	struct conf_job job;
	struct conf_job_more more;
	char *sources[1];
	int64_t counter; /* statements that wrote the source, committed */
	bool unreadable; /* the check reports a problem for the source */
	int64_t run_us;  /* how long a run takes */
	struct sub subs[MAX_RUNS * 8];
	size_t n_subs;
	int saved_stderr;
};

static int fake_submit(struct exec *ctx, const struct exec_run_spec *spec, struct exec_run **out)
{
	struct sim *m = (struct sim *)ctx;
	ck_assert_uint_lt(m->n_subs, sizeof(m->subs) / sizeof(m->subs[0]));
	struct sub *x = &m->subs[m->n_subs++];
	*x = (struct sub){.check = spec->name == NULL,
	                  .at_us = clock_now_us(m->clock),
	                  .snapshot = m->counter,
	                  .on_row = spec->on_row,
	                  .on_done = spec->on_done,
	                  .arg = spec->arg};
	*out = (struct exec_run *)x;
	return 0;
}

static void fake_cancel(struct exec_run *run, const char *message)
{
	(void)run;
	(void)message;
}

static int fake_probe(struct exec *ctx, const char *database)
{
	(void)ctx;
	(void)database;
	return 0;
}

static void sim_init(struct sim *m, int64_t sla_ms, int64_t run_ms)
{
	memset(m, 0, sizeof(*m));
	fflush(stderr);
	m->saved_stderr = dup(2);
	char path[] = "/tmp/check_fresh.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_ge(dup2(fd, 2), 0);
	close(fd);
	log_init(LOG_LVL_INFO);
	m->base = event_base_new();
	ck_assert_int_eq(clock_new_sim(T0 * 1000000, &m->clock), 0);
	m->run_us = run_ms * 1000;
	m->sources[0] = "public.src";
	m->more = config_job_more_defaults;
	m->more.retry.delay_ms = 10000;
	m->more.fresh =
	    (struct conf_job_fresh){.sla_ms = sla_ms, .sources = m->sources, .n_sources = 1};
	m->job = (struct conf_job){.name = "view",
	                           .command = "REFRESH MATERIALIZED VIEW public.v",
	                           .database = "db",
	                           .enabled = true,
	                           .overlap = OVERLAP_SKIP,
	                           .catchup = CATCHUP_ONCE,
	                           .more = &m->more};
	m->cfg = (struct pgc_config){.max_running = 8, .jobs = &m->job, .n_jobs = 1};
	const struct sched_executor fx = {.submit = fake_submit,
	                                  .cancel = fake_cancel,
	                                  .probe = fake_probe,
	                                  .ctx = (struct exec *)m};
	ck_assert_int_eq(cron_tz_open("UTC", &m->tz, NULL, 0), 0);
	ck_assert_int_eq(sched_new_with(m->base, m->clock, &fx, NULL, &m->s), 0);
	ck_assert_int_eq(sched_apply(m->s, &m->cfg, m->tz, NULL, true), 0);
}

static void sim_free(struct sim *m)
{
	sched_free(&m->s);
	cron_tz_free(&m->tz);
	clock_free(&m->clock);
	event_base_free(m->base);
	fflush(stderr);
	dup2(m->saved_stderr, 2);
	close(m->saved_stderr);
}

/* Answer checks at once and end runs RUN_US after they start, as the loop would. */
static void sim_serve(struct sim *m)
{
	int64_t now = clock_now_us(m->clock);
	for (size_t i = 0; i < m->n_subs; i++) {
		struct sub *x = &m->subs[i];
		if (x->ended)
			continue;
		if (x->check) {
			char n[32];
			snprintf(n, sizeof(n), "%lld", (long long)m->counter);
			x->snapshot = m->counter;
			const char *row[] = {"1", n, m->unreadable ? "does not exist" : NULL};
			x->on_row(x->arg, 3, row);
		} else if (now - x->at_us < m->run_us) {
			continue;
		}
		x->ended = true;
		x->end_us = now;
		struct exec_outcome o = {.ok = true, .message = "1 row"};
		x->on_done(x->arg, &o);
	}
}

/* Let SECONDS pass in steps of 50 ms, serving the executor. */
static void sim_advance(struct sim *m, double seconds)
{
	for (double t = 0; t < seconds; t += 0.05) {
		clock_sim_advance(m->clock, 50000, m->base);
		sim_serve(m);
	}
}

static size_t runs_between(const struct sim *m, int64_t from_us, int64_t to_us)
{
	size_t n = 0;
	for (size_t i = 0; i < m->n_subs; i++)
		n += !m->subs[i].check && m->subs[i].at_us >= from_us && m->subs[i].at_us < to_us;
	return n;
}

/* The first run that saw write number K (counter >= K) ends by when? */
static int64_t reflected_at(const struct sim *m, int64_t k)
{
	for (size_t i = 0; i < m->n_subs; i++)
		if (!m->subs[i].check && m->subs[i].ended && m->subs[i].snapshot >= k)
			return m->subs[i].end_us;
	return INT64_MAX;
}

START_TEST(random_writes_kept_within_sla_and_gathered)
{
	struct sim m;
	const int64_t sla_us = 5000000, run_us = 300000;
	sim_init(&m, sla_us / 1000, run_us / 1000);
	sim_advance(&m, 10); /* the first run (nothing known at start) */
	int64_t writes_at[200];
	int n = 0;
	srandom(7);
	int64_t end = clock_now_us(m.clock) + 60 * 1000000LL;
	while (clock_now_us(m.clock) < end && n < 200) {
		sim_advance(&m, (double)(random() % 4000) / 1000.0);
		writes_at[n++] = clock_now_us(m.clock);
		m.counter++;
	}
	sim_advance(&m, 10);
	int64_t worst = 0;
	int64_t base = m.counter - n;
	for (int k = 0; k < n; k++) {
		int64_t at = reflected_at(&m, base + k + 1);
		ck_assert_msg(at != INT64_MAX, "write %d never reflected", k);
		if (at - writes_at[k] > worst)
			worst = at - writes_at[k];
	}
	ck_assert_msg(worst <= sla_us + run_us, "a write waited %lld ms (SLA 5000 ms + run %lld)",
	              (long long)(worst / 1000), (long long)(run_us / 1000));
	size_t runs = runs_between(&m, T0 * 1000000 + 10000000, INT64_MAX);
	ck_assert_msg(runs < (size_t)n, "%zu runs for %d writes: not gathered", runs, n);
	ck_assert_msg(runs > 0, "no run at all");

	/* quiet: a minute without writes, no run */
	int64_t q = clock_now_us(m.clock);
	sim_advance(&m, 60);
	ck_assert_uint_eq(runs_between(&m, q, INT64_MAX), 0);
	sim_free(&m);
}
END_TEST

START_TEST(unreadable_source_runs_every_period)
{
	struct sim m;
	sim_init(&m, 10000, 100);
	m.unreadable = true;
	sim_advance(&m, 1);
	int64_t from = clock_now_us(m.clock);
	sim_advance(&m, 60);
	size_t runs = runs_between(&m, from, INT64_MAX);
	ck_assert_msg(runs >= 5 && runs <= 7, "%zu runs in 60 s with a 10 s period", runs);
	/* readable again: it stops once what it reflects is known */
	m.unreadable = false;
	sim_advance(&m, 20);
	from = clock_now_us(m.clock);
	sim_advance(&m, 60);
	ck_assert_uint_eq(runs_between(&m, from, INT64_MAX), 0);
	sim_free(&m);
}
END_TEST

static void drained(void *arg)
{
	*(bool *)arg = true;
}

/* The daemon stops while a change check is in flight (its answer never comes: the loop ends
 * first). The check's state is freed all the same: under the ASan build, LeakSanitizer fails
 * this test otherwise (it did in it_freshness, by chance of timing). */
START_TEST(stop_with_a_check_in_flight)
{
	struct sim m;
	sim_init(&m, 10000, 100);
	clock_sim_advance(m.clock, 50000, m.base); /* the first check goes out, unanswered */
	ck_assert_uint_eq(m.n_subs, 1);
	ck_assert(m.subs[0].check && !m.subs[0].ended);
	bool done = false;
	sched_drain(m.s, 1000, drained, &done);
	clock_sim_advance(m.clock, 50000, m.base);
	ck_assert_msg(done, "no run was going: the drain ends at once");
	ck_assert_uint_eq(m.n_subs, 1); /* no check after the stop */
	sim_free(&m);
}
END_TEST

START_TEST(plan_gathers_and_keeps_the_sla)
{
	struct fresh_plan_in in = {.now_us = 100000000, .sla_us = 10000000};
	ck_assert(fresh_plan(&in) == INT64_MAX); /* nothing changed: no run */
	in.change_since_us = 99000000;
	in.est_run_us = 1000000;
	/* the oldest change + SLA - 2 runs - SLA/10 */
	ck_assert_int_eq(fresh_plan(&in), 99000000 + 10000000 - 2000000 - 1000000);
	in.change_since_us = 80000000; /* overdue: now or earlier */
	ck_assert(fresh_plan(&in) <= in.now_us);
	in.fallback = true;
	in.last_start_us = 95000000;
	ck_assert_int_eq(fresh_plan(&in), 95000000 + 10000000 - 3000000);
	ck_assert_int_eq(fresh_check_every_us(5000000), 1250000);
	ck_assert_int_eq(fresh_check_every_us(100000), 250000);
	ck_assert_int_eq(fresh_sla_for_downstream(10000000, 1000000), 8000000);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fresh");
	TCase *tc = tcase_create("fresh");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, plan_gathers_and_keeps_the_sla);
	tcase_add_test(tc, random_writes_kept_within_sla_and_gathered);
	tcase_add_test(tc, unreadable_source_runs_every_period);
	tcase_add_test(tc, stop_with_a_check_in_flight);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
