/* The scheduler in simulated time (clock.h's simulated clock) with a fake executor, no
 * PostgreSQL: overlap (skip, queue, replace), retries, catch-up, the job graph and the
 * max_running queue, each seen as a user sees it: which runs start, when, and how each fire
 * is counted (pgcrond_job_runs_total by status, as /metrics shows it), plus the log line. */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alert.h"
#include "clock.h"
#include "config.h"
#include "cron.h"
#include "exec.h"
#include "log.h"
#include "metrics.h"
#include "sched.h"
#include "test_log.h"

/* ---- the fake executor: records each run it is given; the test ends them --------------- */

struct fake_run {
	char job[64];
	int64_t at_s; /* simulated seconds since the test began */
	void (*on_done)(void *arg, const struct exec_outcome *o);
	void *arg;
	bool ended;
	char cancel[256]; /* "" unless the scheduler asked to cancel it */
};

struct harness {
	struct event_base *base;
	struct clock *clock;
	struct sched *s;
	struct metrics *m;
	struct pgc_config cfg;
	struct conf_job jobs[8];
	struct conf_job_more mores[8]; /* jobs[i]'s */
	char *after[8][4];
	int64_t t0_us;
	struct fake_run runs[64];
	size_t n_runs;
	int probes;
	uint32_t random; /* every random number the scheduler draws */
	char log[64];
	int saved_stderr;
};

static int fake_submit(struct exec *ctx, const struct exec_run_spec *spec, struct exec_run **out)
{
	struct harness *h = (struct harness *)ctx;
	if (strcmp(spec->database, "missing") == 0)
		return -ENOENT;
	ck_assert_uint_lt(h->n_runs, 64);
	struct fake_run *r = &h->runs[h->n_runs++];
	snprintf(r->job, sizeof(r->job), "%s", spec->name);
	r->at_s = (clock_now_us(h->clock) - h->t0_us) / 1000000;
	r->on_done = spec->on_done;
	r->arg = spec->arg;
	*out = (struct exec_run *)r;
	return 0;
}

static void fake_cancel(struct exec_run *run, const char *message)
{
	struct fake_run *r = (struct fake_run *)run;
	snprintf(r->cancel, sizeof(r->cancel), "%s", message);
}

static uint32_t fake_random(void *arg)
{
	return ((struct harness *)arg)->random;
}

static int fake_probe(struct exec *ctx, const char *database)
{
	struct harness *h = (struct harness *)ctx;
	h->probes++;
	return 0;
}

static const cron_tz *utc(void)
{
	static cron_tz *tz;
	if (!tz)
		ck_assert_int_eq(cron_tz_open("UTC", &tz, NULL, 0), 0);
	return tz;
}

/* 2026-11-22T00:00:30Z: the first minute boundary is 30 s away. */
#define T0 1795305630LL

static void h_init(struct harness *h)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->log, sizeof(h->log), "/tmp/check_sched_sim.XXXXXX");
	int fd = mkstemp(h->log);
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	h->saved_stderr = dup(2);
	ck_assert_int_ge(dup2(fd, 2), 0);
	close(fd);
	log_init(LOG_LVL_INFO);
	h->t0_us = T0 * 1000000;
	h->base = event_base_new();
	ck_assert_ptr_nonnull(h->base);
	ck_assert_int_eq(clock_new_sim(h->t0_us, &h->clock), 0);
	ck_assert_int_eq(metrics_new(&h->m), 0);
	h->cfg = (struct pgc_config){.max_running = 8, .jobs = h->jobs, .alert_repeat_ms = 3600000};
}

/* Add job NAME (SCHEDULE may be NULL) to the configuration; returned for the test to set
 * its policies before h_start(). */
static struct conf_job *h_job(struct harness *h, const char *name, const char *schedule)
{
	struct conf_job_more *m = &h->mores[h->cfg.n_jobs];
	struct conf_job *j = &h->jobs[h->cfg.n_jobs++];
	*m = config_job_more_defaults;
	m->retry.delay_ms = 10000;
	*j = (struct conf_job){.name = (char *)name,
	                       .command = "SELECT 1",
	                       .database = "db",
	                       .schedule = (char *)schedule,
	                       .enabled = true,
	                       .overlap = OVERLAP_SKIP,
	                       .catchup = CATCHUP_ONCE,
	                       .more = m};
	if (schedule)
		ck_assert_int_eq(cron_parse(schedule, &j->cron, NULL, 0), 0);
	return j;
}

static void h_after(struct harness *h, struct conf_job *j, const char *up)
{
	size_t i = (size_t)(j - h->jobs);
	h->after[i][j->n_after++] = (char *)up;
	j->after = h->after[i];
}

static void h_start(struct harness *h)
{
	const struct sched_executor fx = {.submit = fake_submit,
	                                  .cancel = fake_cancel,
	                                  .probe = fake_probe,
	                                  .ctx = (struct exec *)h};
	ck_assert_int_eq(sched_new_with(h->base, h->clock, &fx, NULL, &h->s), 0);
	sched_set_metrics(h->s, h->m);
	sched_set_random(h->s, fake_random, h);
	ck_assert_int_eq(sched_apply(h->s, &h->cfg, utc(), NULL, true), 0);
}

/* Let SECONDS of simulated time pass (timers and deferred work run in order). */
static void h_advance(struct harness *h, double seconds)
{
	clock_sim_advance(h->clock, (int64_t)(seconds * 1e6), h->base);
}

/* The Nth run (0-based) the executor was given. */
static struct fake_run *h_run(struct harness *h, size_t n)
{
	ck_assert_msg(n < h->n_runs, "run %zu asked for; %zu started", n, h->n_runs);
	return &h->runs[n];
}

/* End run N as the executor would (from the loop): OK, or failed with SQLSTATE. */
static void h_end(struct harness *h, size_t n, bool ok, const char *sqlstate)
{
	struct fake_run *r = h_run(h, n);
	ck_assert(!r->ended);
	r->ended = true;
	struct exec_outcome o = {.ok = ok,
	                         .cancelled = r->cancel[0] != '\0',
	                         .message = ok             ? "SELECT 1"
	                                    : r->cancel[0] ? r->cancel
	                                                   : "boom",
	                         .sqlstate = ok ? NULL : sqlstate};
	r->on_done(r->arg, &o);
}

/* Runs started so far, as "job@seconds job@seconds". */
static const char *h_starts(struct harness *h)
{
	static char buf[1024];
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < h->n_runs; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s@%lld", i ? " " : "",
		                        h->runs[i].job, (long long)h->runs[i].at_s);
	return buf;
}

/* pgcrond_job_runs_total{job=JOB,status=STATUS}, as /metrics shows it (0 if absent). */
static long h_count(struct harness *h, const char *job, const char *status)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	metrics_render_counters(h->m, &job, 1, f);
	fclose(f);
	char key[160];
	snprintf(key, sizeof(key), "pgcrond_job_runs_total{job=\"%s\",status=\"%s\"} ", job,
	         status);
	const char *p = strstr(text, key);
	long n = p ? strtol(p + strlen(key), NULL, 10) : 0;
	free(text);
	return n;
}

static void h_stop(struct harness *h)
{
	sched_free(&h->s);
	clock_free(&h->clock);
	metrics_free(&h->m);
	event_base_free(h->base);
	fflush(stderr);
	dup2(h->saved_stderr, 2);
	close(h->saved_stderr);
	unlink(h->log);
}

/* J's conf_job_more, for the test to set (h_job gave it one of its own). */
static struct conf_job_more *h_more(struct harness *h, const struct conf_job *j)
{
	return &h->mores[j - h->jobs];
}

/* ---- reloads ------------------------------------------------------------------------------ */

/* A configuration of one job whose strings are its own (freed by cfg_free, as config_free
 * frees a loaded one's): NAME on "* * * * *". */
static void cfg_one(struct pgc_config *c, struct conf_job *j, const char *name)
{
	*j = (struct conf_job){.name = strdup(name),
	                       .command = strdup("SELECT 1"),
	                       .database = strdup("db"),
	                       .schedule = strdup("* * * * *"),
	                       .enabled = true,
	                       .overlap = OVERLAP_SKIP,
	                       .catchup = CATCHUP_ONCE,
	                       .more = &config_job_more_defaults};
	ck_assert_int_eq(cron_parse(j->schedule, &j->cron, NULL, 0), 0);
	*c = (struct pgc_config){
	    .max_running = 8, .jobs = j, .n_jobs = 1, .alert_repeat_ms = 3600000};
}

/* Overwritten, then freed: a scheduler that still read them would see "xxx" (or ASan
 * would stop it). */
static void cfg_free(struct pgc_config *c)
{
	for (size_t i = 0; i < c->n_jobs; i++) {
		char *f[] = {c->jobs[i].name, c->jobs[i].command, c->jobs[i].database,
		             c->jobs[i].schedule};
		for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
			memset(f[k], 'x', strlen(f[k]));
			free(f[k]);
		}
	}
	c->n_jobs = 0;
}

/* The scheduler points at the configuration's strings (no copies at 100,000 jobs): a job
 * kept by a reload, and a job removed by one while it runs, are still named when their
 * runs end after the old configuration is gone. */
START_TEST(runs_outlive_their_configuration)
{
	struct harness h;
	h_init(&h);
	struct pgc_config c1, c2, c3 = {.max_running = 8, .alert_repeat_ms = 3600000};
	struct conf_job j1, j2;
	cfg_one(&c1, &j1, "tenant-a");
	cfg_one(&c2, &j2, "tenant-a");
	const struct sched_executor fx = {.submit = fake_submit,
	                                  .cancel = fake_cancel,
	                                  .probe = fake_probe,
	                                  .ctx = (struct exec *)&h};
	ck_assert_int_eq(sched_new_with(h.base, h.clock, &fx, NULL, &h.s), 0);
	sched_set_metrics(h.s, h.m);
	ck_assert_int_eq(sched_apply(h.s, &c1, utc(), NULL, true), 0);
	h_advance(&h, 30);
	ck_assert_str_eq(h_starts(&h), "tenant-a@30");

	/* kept: the same job in a new configuration, the old one freed */
	ck_assert_int_eq(sched_apply(h.s, &c2, utc(), NULL, false), 0);
	cfg_free(&c1);
	h_end(&h, 0, true, NULL);
	ck_assert_int_eq(h_count(&h, "tenant-a", "succeeded"), 1);
	h_advance(&h, 60);
	ck_assert_str_eq(h_starts(&h), "tenant-a@30 tenant-a@90");

	/* removed while it runs: the run ends after its configuration is gone */
	ck_assert_int_eq(sched_apply(h.s, &c3, utc(), NULL, false), 0);
	cfg_free(&c2);
	h_end(&h, 1, false, "42P01");
	ck_assert_int_eq(h_count(&h, "tenant-a", "failed"), 1);
	ck_assert_log(&h, "tenant-a: removed from the configuration");
	ck_assert_log(&h, "tenant-a: failed after");
	h_advance(&h, 120);
	ck_assert_str_eq(h_starts(&h), "tenant-a@30 tenant-a@90");
	h_stop(&h);
}
END_TEST

/* ---- an apply in slices --------------------------------------------------------------------- */

/* A configuration whose strings are its own (cfg_free_all overwrites and frees them): JOBS of
 * "name schedule [after]" ("-" for no schedule), each job on overlap = queue. */
static void cfg_make(struct pgc_config *c, const char *const *jobs, size_t n)
{
	struct conf_job *v = calloc(n, sizeof(*v));
	ck_assert_ptr_nonnull(v);
	for (size_t i = 0; i < n; i++) {
		char name[64], sched[64] = "", after[64] = "";
		int k = sscanf(jobs[i], "%63s %63[^|]|%63s", name, sched, after);
		ck_assert_int_ge(k, 2);
		size_t sl = strlen(sched);
		while (sl && sched[sl - 1] == ' ')
			sched[--sl] = '\0';
		v[i] = (struct conf_job){.name = strdup(name),
		                         .command = strdup("SELECT 1"),
		                         .database = strdup("db"),
		                         .schedule = strcmp(sched, "-") ? strdup(sched) : NULL,
		                         .enabled = true,
		                         .overlap = OVERLAP_QUEUE,
		                         .catchup = CATCHUP_ONCE,
		                         .more = &config_job_more_defaults};
		if (v[i].schedule)
			ck_assert_int_eq(cron_parse(v[i].schedule, &v[i].cron, NULL, 0), 0);
		if (k == 3) {
			v[i].after = calloc(1, sizeof(char *));
			v[i].after[0] = strdup(after);
			v[i].n_after = 1;
		}
	}
	*c = (struct pgc_config){
	    .max_running = 8, .jobs = v, .n_jobs = n, .alert_repeat_ms = 3600000};
}

static void cfg_free_all(struct pgc_config *c)
{
	for (size_t i = 0; i < c->n_jobs; i++) {
		struct conf_job *j = &c->jobs[i];
		char *f[] = {j->name, j->command, j->database, j->schedule,
		             j->n_after ? j->after[0] : NULL};
		for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
			if (f[k]) {
				memset(f[k], 'x', strlen(f[k]));
				free(f[k]);
			}
		}
		free(j->after);
	}
	memset(c->jobs, 0x55, c->n_jobs * sizeof(*c->jobs));
	free(c->jobs);
	c->n_jobs = 0;
}

/* What the loop sees between two slices of the apply (a timer of its own, due at once each
 * time, runs between the apply's turns). */
struct probe {
	struct harness *h;
	struct clock_timer t;
	int turns;           /* probes while the apply went on */
	bool triggered;      /* keep-150 was started, before the apply reached it */
	bool new_seen_early; /* job "new" was scheduled at the first probe */
	bool done;
	int rc;
};

static void probe_cb(void *arg)
{
	struct probe *p = arg;
	if (!sched_applying(p->h->s))
		return;
	if (p->turns++ == 0) {
		p->new_seen_early = sched_job_next(p->h->s, "new") != CRON_NEVER;
		/* not reached yet: it runs on its definition in the old configuration */
		ck_assert_int_eq(sched_trigger(p->h->s, "keep-150", TRIGGER_MANUAL, false), 0);
		p->triggered = true;
	}
	ck_assert_int_eq(clock_arm(p->h->clock, &p->t, 0), 0);
}

static void applied(void *arg, int rc)
{
	struct probe *p = arg;
	p->done = true;
	p->rc = rc;
}

/* A reload of many jobs is applied a slice of jobs per loop turn, the loop serving what is
 * due in between (at 100,000 jobs, one turn held it about 100 ms): a job not reached yet
 * runs on its old definition, which stays alive until the apply is done; once done, a
 * changed job is rescheduled, an added one scheduled, a removed one gone (its waiting fire
 * recorded as skipped, its running run ending under its name), every kept job points into
 * the new configuration only (the old one is overwritten and freed: ASan, and the names
 * counted below, would show a pointer into it), and the job graph is the new one. */
START_TEST(a_big_apply_goes_in_slices)
{
	struct harness h;
	h_init(&h);
	enum { KEEP = 200 };
	const char *v1[KEEP + 6], *v2[KEEP + 5];
	char keep[KEEP][64];
	for (int i = 0; i < KEEP; i++) {
		snprintf(keep[i], sizeof(keep[i]), "keep-%d 0 0 1 1 *", i);
		v1[i] = v2[i] = keep[i];
	}
	const char *more1[] = {"chg 0 0 1 1 *", "gone * * * * *",    "up 0 0 1 1 *",
	                       "down -|up",     "gone-up 0 0 1 1 *", "gone-down -|gone-up"};
	const char *more2[] = {"chg * * * * *", "new * * * * *", "up 0 0 1 1 *", "down -|up",
	                       "down2 -|up"};
	memcpy(v1 + KEEP, more1, sizeof(more1));
	memcpy(v2 + KEEP, more2, sizeof(more2));
	struct pgc_config c1, c2;
	cfg_make(&c1, v1, KEEP + 6);
	cfg_make(&c2, v2, KEEP + 5);
	const struct sched_executor fx = {.submit = fake_submit,
	                                  .cancel = fake_cancel,
	                                  .probe = fake_probe,
	                                  .ctx = (struct exec *)&h};
	ck_assert_int_eq(sched_new_with(h.base, h.clock, &fx, NULL, &h.s), 0);
	sched_set_metrics(h.s, h.m);
	ck_assert_int_eq(sched_apply(h.s, &c1, utc(), NULL, true), 0);
	h_advance(&h, 90); /* "gone" runs at 00:01:00; its 00:02:00 fire waits (overlap = queue) */
	ck_assert_str_eq(h_starts(&h), "gone@30");

	sched_set_apply_slice(h.s, 20);
	struct probe p = {.h = &h};
	struct sched_apply_in in = {.cfg = &c2, .tz = utc(), .old = &c1};
	ck_assert_int_eq(sched_apply_start(h.s, &in, applied, &p), 0);
	/* nothing of it ran inside the call: the loop's turns do it */
	ck_assert(sched_applying(h.s));
	ck_assert_int_eq(sched_job_next(h.s, "new"), CRON_NEVER);
	clock_timer_init(&p.t, probe_cb, &p);
	ck_assert_int_eq(clock_arm(h.clock, &p.t, 0), 0);
	h_advance(&h, 0);
	ck_assert(p.done);
	ck_assert_int_eq(p.rc, 0);
	ck_assert(!sched_applying(h.s));
	ck_assert(p.triggered);
	ck_assert(!p.new_seen_early);
	struct sched_apply_stats st;
	sched_apply_stats(h.s, &st);
	ck_assert_uint_le(st.most_jobs, 20);
	ck_assert_uint_ge(st.turns, (KEEP + 5) / 20);
	ck_assert_int_ge(p.turns, (KEEP + 5) / 20 - 1);
	ck_assert_str_eq(h_starts(&h), "gone@30 keep-150@90");
	ck_assert_ptr_eq(sched_config(h.s), &c2);

	/* the old configuration goes, as the daemon frees it after DONE */
	cfg_free_all(&c1);
	ck_assert_int_eq(h_count(&h, "gone", "skipped"), 1);
	ck_assert_log(&h, "gone: removed from the configuration");
	ck_assert_log(&h, "gone: skipped: the job was removed from the configuration");
	h_end(&h, 0, true, NULL); /* gone's run, after its configuration was freed */
	h_end(&h, 1, true, NULL); /* keep-150's, started on the old one */
	ck_assert_int_eq(h_count(&h, "gone", "succeeded"), 1);
	ck_assert_int_eq(h_count(&h, "keep-150", "succeeded"), 1);
	ck_assert_int_eq(sched_job_next(h.s, "gone"), CRON_NEVER);
	ck_assert_int_eq(sched_job_next(h.s, "gone-up"), CRON_NEVER);
	ck_assert_int_eq(sched_job_next(h.s, "chg"), T0 - 30 + 180);
	ck_assert_int_eq(sched_job_next(h.s, "new"), T0 - 30 + 180);
	ck_assert_int_eq(sched_job_next(h.s, "keep-7"), 1798761600); /* 2027-01-01 */

	/* the new graph: up -> down, down2 */
	ck_assert_int_eq(sched_trigger(h.s, "up", TRIGGER_MANUAL, false), 0);
	h_advance(&h, 0);
	ck_assert_str_eq(h_starts(&h), "gone@30 keep-150@90 up@90");
	h_end(&h, 2, true, NULL);
	h_advance(&h, 0);
	ck_assert_str_eq(h_starts(&h), "gone@30 keep-150@90 up@90 down@90 down2@90");
	h_advance(&h, 60); /* 00:03:00: chg and new */
	ck_assert_str_eq(h_starts(&h),
	                 "gone@30 keep-150@90 up@90 down@90 down2@90 chg@150 new@150");
	h_stop(&h);
	cfg_free_all(&c2);
}
END_TEST

/* ---- the warm-up ------------------------------------------------------------------------- */

/* What the fake executor was asked to warm: calls, runs announced, the most for one call. */
static size_t warm_calls, warm_runs, warm_most;

static void fake_warm(struct exec *ctx, const char *database, size_t n)
{
	(void)ctx;
	(void)database;
	warm_calls++;
	warm_runs += n;
	warm_most = n > warm_most ? n : warm_most;
}

/* A database per tenant: every database with a job at the instant is warmed, once, for as
 * many runs as it has jobs then, with no bound on the databases (a hundred here). */
START_TEST(every_database_of_an_instant_is_warmed)
{
	struct harness h;
	h_init(&h);
	enum { DBS = 100 };
	const char *v[DBS + 1];
	char spec[DBS + 1][32];
	for (int i = 0; i <= DBS; i++) {
		snprintf(spec[i], sizeof(spec[i]), "j%d * * * * *", i);
		v[i] = spec[i];
	}
	struct pgc_config c;
	cfg_make(&c, v, DBS + 1);
	for (int i = 0; i < DBS; i++) { /* j0 to j99 on db0 to db99, j100 on db99 too */
		char db[16];
		snprintf(db, sizeof(db), "db%d", i);
		free(c.jobs[i].database);
		c.jobs[i].database = strdup(db);
	}
	free(c.jobs[DBS].database);
	c.jobs[DBS].database = strdup("db99");
	const struct sched_executor fx = {.submit = fake_submit,
	                                  .cancel = fake_cancel,
	                                  .probe = fake_probe,
	                                  .warm = fake_warm,
	                                  .ctx = (struct exec *)&h};
	ck_assert_int_eq(sched_new_with(h.base, h.clock, &fx, NULL, &h.s), 0);
	warm_calls = warm_runs = warm_most = 0;
	ck_assert_int_eq(sched_apply(h.s, &c, utc(), NULL, true), 0);
	h_advance(&h, 1); /* the start-up's warm-up, at once: the first minute's jobs */
	ck_assert_uint_eq(warm_calls, DBS);
	ck_assert_uint_eq(warm_runs, DBS + 1);
	ck_assert_uint_eq(warm_most, 2);
	h_advance(&h, 28.8); /* the instant's own, half a second ahead of it (T0 + 29.5) */
	ck_assert_uint_eq(warm_calls, 2 * DBS);
	ck_assert_uint_eq(warm_runs, 2 * (DBS + 1));
	h_stop(&h);
	cfg_free_all(&c);
}
END_TEST

/* ---- overlap ------------------------------------------------------------------------------ */

/* overlap = skip: a fire while the run goes on gets a skipped row; the next fire after it
 * ends runs. */
START_TEST(overlap_skip)
{
	struct harness h;
	h_init(&h);
	h_job(&h, "a", "* * * * *");
	h_start(&h);
	h_advance(&h, 29);
	ck_assert_str_eq(h_starts(&h), "");
	h_advance(&h, 1);
	ck_assert_str_eq(h_starts(&h), "a@30");
	h_advance(&h, 60); /* 00:02:00, still running */
	ck_assert_str_eq(h_starts(&h), "a@30");
	ck_assert_int_eq(h_count(&h, "a", "skipped"), 1);
	ck_assert_log(&h,
	              "skipped: previous run still running (started 00:01:00Z); overlap = skip");
	h_end(&h, 0, true, NULL);
	h_advance(&h, 60);
	ck_assert_str_eq(h_starts(&h), "a@30 a@150");
	ck_assert_int_eq(h_count(&h, "a", "succeeded"), 1);
	h_stop(&h);
}
END_TEST

/* A run's duration is measured on the monotonic clock: the host's wall clock stepping an hour
 * forward while the run runs (an NTP correction, a skewed clock set right) does not make a
 * 3 s run last an hour in the log, the metrics or its history row (its end is its start plus
 * the 3 s). */
START_TEST(duration_ignores_a_wall_clock_step)
{
	struct harness h;
	h_init(&h);
	h_job(&h, "a", "* * * * *");
	h_start(&h);
	h_advance(&h, 30);
	ck_assert_str_eq(h_starts(&h), "a@30");
	h_advance(&h, 1);
	clock_sim_step(h.clock, clock_now_us(h.clock) + 3600 * INT64_C(1000000));
	h_advance(&h, 2);
	h_end(&h, 0, true, NULL);
	ck_assert_log(&h, "a: succeeded in 3000 ms");
	h_stop(&h);
}
END_TEST

/* The database is the clock: with the history database's clock 0.8 s behind this host's
 * (the cluster's heartbeat measured it), a minute job fires at the minute by the database's
 * clock, 0.8 s after the minute by the host's; by the host's it would fire 0.8 s early by the
 * database's, and an instance whose clock ran ahead would win every claim. A
 * change within the measurement's noise re-arms nothing; one back to 0 fires by the host's
 * again. */
START_TEST(fires_by_the_database_clock)
{
	struct harness h;
	h_init(&h);
	h_job(&h, "a", "* * * * *");
	h_start(&h);
	sched_set_db_offset(h.s, -800000);
	ck_assert_log(&h,
	              "firing by the history database's clock: it is -0.800 s from this host's");
	h_advance(&h, 30.5); /* the host at 00:01:00.5, the database at 00:00:59.7 */
	ck_assert_str_eq(h_starts(&h), "");
	h_advance(&h, 0.4); /* the database at 00:01:00.1 */
	ck_assert_str_eq(h_starts(&h), "a@30");
	h_end(&h, 0, true, NULL);
	sched_set_db_offset(h.s, -790000); /* noise: not applied */
	h_advance(&h, 59.8);               /* the host at 00:02:00.7, the database at 00:01:59.9 */
	ck_assert_str_eq(h_starts(&h), "a@30");
	h_advance(&h, 0.2);
	ck_assert_str_eq(h_starts(&h), "a@30 a@90");
	h_end(&h, 1, true, NULL);
	sched_set_db_offset(h.s, 0); /* in step again: the host's clock */
	h_advance(&h, 59.05);        /* the host at 00:02:59.95 */
	ck_assert_str_eq(h_starts(&h), "a@30 a@90");
	h_advance(&h, 0.1);
	ck_assert_str_eq(h_starts(&h), "a@30 a@90 a@150");
	h_stop(&h);
}
END_TEST

/* The database's clock offset moving back while a run runs (the heartbeat's measurement
 * changed by more than its noise): the queued run that starts as it ends still starts, in
 * its history, at or after that end. A loaded machine's samples once moved the offset 21 ms
 * back, and a queue job's two runs overlapped by 5 ms in pgcrond.job_run_details. */
START_TEST(offset_moved_back_runs_do_not_overlap)
{
	struct harness h;
	struct sched_job_view v;
	h_init(&h);
	h_job(&h, "a", "* * * * *")->overlap = OVERLAP_QUEUE;
	h_start(&h);
	h_advance(&h, 30 + 60 + 1); /* fires at 30 and 90 (queued behind it) */
	ck_assert_str_eq(h_starts(&h), "a@30");
	sched_set_db_offset(h.s, -50000);
	h_end(&h, 0, true, NULL);
	ck_assert_int_eq(sched_job_view(h.s, "a", clock_now_us(h.clock), &v), 0);
	int64_t first_end = v.last.end_us;
	h_advance(&h, 0);
	ck_assert_str_eq(h_starts(&h), "a@30 a@91");
	h_advance(&h, 2);
	h_end(&h, 1, true, NULL);
	ck_assert_int_eq(sched_job_view(h.s, "a", clock_now_us(h.clock), &v), 0);
	ck_assert_msg(v.last.start_us >= first_end,
	              "the queued run started %lld us before its previous run ended",
	              (long long)(first_end - v.last.start_us));
	ck_assert_int_eq(v.last.end_us - v.last.start_us, 2000000); /* its own duration */
	h_stop(&h);
}
END_TEST

/* That bound is not a step of the wall clock: set an hour back after a run, the next run
 * starts by the clock as it is now, not at the previous end an hour ahead of it (which would
 * have carried into its end, its lateness and its freshness). */
START_TEST(wall_clock_step_back_is_not_bounded_by_the_last_end)
{
	struct harness h;
	struct sched_job_view v;
	h_init(&h);
	h_job(&h, "a", "* * * * *");
	h_start(&h);
	h_advance(&h, 31);
	h_end(&h, 0, true, NULL);
	ck_assert_int_eq(sched_job_view(h.s, "a", clock_now_us(h.clock), &v), 0);
	int64_t first_end = v.last.end_us;
	clock_sim_step(h.clock, clock_now_us(h.clock) - 3600 * INT64_C(1000000));
	h_advance(&h, 60);
	ck_assert_int_eq((int)h.n_runs, 2);
	h_end(&h, 1, true, NULL);
	ck_assert_int_eq(sched_job_view(h.s, "a", clock_now_us(h.clock), &v), 0);
	ck_assert_msg(v.last.start_us < first_end - 3000 * INT64_C(1000000),
	              "the run after the step started %lld s after the clock's now",
	              (long long)((v.last.start_us - clock_now_us(h.clock)) / 1000000));
	h_stop(&h);
}
END_TEST

/* overlap = queue: one fire waits behind the run and starts the moment it ends; a second
 * one while one waits is skipped. */
START_TEST(overlap_queue)
{
	struct harness h;
	h_init(&h);
	h_job(&h, "a", "* * * * *")->overlap = OVERLAP_QUEUE;
	h_start(&h);
	h_advance(&h, 30 + 60 + 60 + 15); /* fires at 30, 90 (queued), 150 (skipped); now 165 */
	ck_assert_str_eq(h_starts(&h), "a@30");
	ck_assert_int_eq(h_count(&h, "a", "skipped"), 1);
	ck_assert_log(&h, "and another run is already queued; overlap = queue");
	h_end(&h, 0, true, NULL);
	h_advance(&h, 0);
	ck_assert_str_eq(h_starts(&h), "a@30 a@165");
	ck_assert_log(&h, "started (schedule, scheduled 00:02:00Z, attempt 1)");
	h_stop(&h);
}
END_TEST

/* overlap = replace: the running run is cancelled, and the newer fire runs once it has
 * stopped (a cancel is not a failure: no retry, no failed alert). */
START_TEST(overlap_replace)
{
	struct harness h;
	h_init(&h);
	struct conf_job *a = h_job(&h, "a", "* * * * *");
	a->overlap = OVERLAP_REPLACE;
	a->retries = 3;
	h_start(&h);
	h_advance(&h, 90);
	ck_assert_str_eq(h_starts(&h), "a@30");
	ck_assert_str_eq(h_run(&h, 0)->cancel,
	                 "cancelled: replaced by a newer run (overlap = replace)");
	h_advance(&h, 2);
	h_end(&h, 0, false, "57014");
	h_advance(&h, 0);
	ck_assert_str_eq(h_starts(&h), "a@30 a@92");
	ck_assert_log(&h, "started (schedule, scheduled 00:02:00Z, attempt 1)");
	ck_assert_int_eq(h_count(&h, "a", "failed"), 1);
	h_stop(&h);
}
END_TEST

/* ---- retries ----------------------------------------------------------------------------- */

/* A transient failure is retried after retry_delay (jittered by at most 10%), growing by
 * retry_backoff; the third attempt succeeds. Each attempt is a row. */
START_TEST(retry_transient_then_success)
{
	struct harness h;
	h_init(&h);
	h_job(&h, "a", "0 * * * *")->retries = 2;
	h_start(&h);
	ck_assert_int_eq(sched_trigger(h.s, "a", TRIGGER_MANUAL, false), 0);
	h_advance(&h, 0);
	ck_assert_str_eq(h_starts(&h), "a@0");
	h_end(&h, 0, false, "08006");
	h_advance(&h, 8.9);
	ck_assert_uint_eq(h.n_runs, 1);
	h_advance(&h, 2.2); /* 11.1 s: 10 s +- 10% */
	ck_assert_uint_eq(h.n_runs, 2);
	ck_assert_log(&h, "started (retry, attempt 2)");
	h_end(&h, 1, false, "40001");
	h_advance(&h, 17.9); /* 20 s +- 10% after the second attempt ended */
	ck_assert_uint_eq(h.n_runs, 2);
	h_advance(&h, 4.2);
	ck_assert_uint_eq(h.n_runs, 3);
	ck_assert_log(&h, "started (retry, attempt 3)");
	h_end(&h, 2, true, NULL);
	ck_assert_int_eq(h_count(&h, "a", "failed"), 2);
	ck_assert_int_eq(h_count(&h, "a", "succeeded"), 1);
	h_stop(&h);
}
END_TEST

/* The jitter is drawn from the scheduler's random source: at its lowest a 10 s delay is
 * 9 s, at its highest 11 s, to the millisecond. */
START_TEST(retry_jitter_comes_from_the_random_source)
{
	const uint32_t draws[] = {0, UINT32_MAX};
	const double delays[] = {9.0, 11.0};
	for (int i = 0; i < 2; i++) {
		struct harness h;
		h_init(&h);
		h.random = draws[i];
		h_job(&h, "a", "0 * * * *")->retries = 1;
		h_start(&h);
		ck_assert_int_eq(sched_trigger(h.s, "a", TRIGGER_MANUAL, false), 0);
		h_advance(&h, 0);
		h_end(&h, 0, false, "08006");
		h_advance(&h, delays[i] - 0.001);
		ck_assert_uint_eq(h.n_runs, 1);
		h_advance(&h, 0.001);
		ck_assert_uint_eq(h.n_runs, 2);
		h_stop(&h);
	}
}
END_TEST

/* A failure that is not transient is final at once; so is the last attempt. */
START_TEST(retry_not_for_permanent_errors)
{
	struct harness h;
	h_init(&h);
	h_job(&h, "a", "0 * * * *")->retries = 2;
	h_start(&h);
	ck_assert_int_eq(sched_trigger(h.s, "a", TRIGGER_MANUAL, false), 0);
	h_advance(&h, 0);
	h_end(&h, 0, false, "42P01");
	h_advance(&h, 600);
	ck_assert_str_eq(h_starts(&h), "a@0");
	ck_assert_int_eq(h_count(&h, "a", "failed"), 1);
	h_stop(&h);
}
END_TEST

/* The clock's timer heap out of memory (CMakeLists.txt links this suite with
 * --wrap=realloc): while oom_fill is set every realloc fails and the first pointer refused is
 * kept; after it, that pointer's (the full heap's) alone. */
void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);
static bool oom_fill;
static void *oom_heap;

void *__wrap_realloc(void *p, size_t n)
{
	if (oom_fill && p && !oom_heap)
		oom_heap = p;
	if (oom_fill || (p && p == oom_heap))
		return NULL;
	return __real_realloc(p, n);
}

/* A retry whose timer cannot be armed (out of memory) is not retried: the failure is final
 * and says so, and the job's next fire runs; it does not stay waiting for a timer that never
 * fires, skipping every fire after it. */
START_TEST(retry_timer_out_of_memory_is_final)
{
	struct harness h;
	h_init(&h);
	h_job(&h, "a", "* * * * *")->retries = 2;
	h_start(&h);
	h_advance(&h, 30);
	ck_assert_str_eq(h_starts(&h), "a@30");
	struct clock_timer fill[256];
	size_t n = 0;
	oom_fill = true;
	for (; n < 256; n++) {
		clock_timer_init(&fill[n], NULL, NULL);
		if (clock_arm(h.clock, &fill[n], INT64_C(86400000000)) < 0)
			break;
	}
	oom_fill = false;
	ck_assert_msg(n < 256 && oom_heap, "the timer heap never filled");
	h_end(&h, 0, false, "08006");
	ck_assert_log(&h, "out of memory arming the retry: no retry");
	ck_assert_int_eq(h_count(&h, "a", "failed"), 1);
	h_advance(&h, 60);
	ck_assert_str_eq(h_starts(&h), "a@30 a@90");
	ck_assert_int_eq(h_count(&h, "a", "skipped"), 0);
	for (size_t i = 0; i < n; i++)
		clock_disarm(h.clock, &fill[i]);
	oom_heap = NULL;
	h_stop(&h);
}
END_TEST

/* A fire of a job waiting to retry is subject to its overlap policy (skip). */
START_TEST(retry_wait_counts_as_busy)
{
	struct harness h;
	h_init(&h);
	struct conf_job *a = h_job(&h, "a", "* * * * *");
	a->retries = 1;
	h_more(&h, a)->retry.delay_ms = 50000;
	h_more(&h, a)->retry.max_delay_ms = 50000;
	h_start(&h);
	h_advance(&h, 30);
	h_end(&h, 0, false, "08006"); /* retry in 45..50 s: after the next fire at 90 */
	h_advance(&h, 40);
	ck_assert_str_eq(h_starts(&h), "a@30");
	ck_assert_int_eq(h_count(&h, "a", "skipped"), 0);
	h_advance(&h, 20); /* 90: the retry is due at 75..80 and runs; the fire is skipped */
	ck_assert_uint_eq(h.n_runs, 2);
	ck_assert_int_ge(h_run(&h, 1)->at_s, 75);
	ck_assert_int_le(h_run(&h, 1)->at_s, 80);
	ck_assert_int_eq(h_count(&h, "a", "skipped"), 1);
	ck_assert_log(&h, "skipped: previous run still running");
	h_stop(&h);
}
END_TEST

/* ---- catch-up ---------------------------------------------------------------------------- */

/* The system was suspended for five minutes: catchup = once runs once for the latest fire,
 * within the clock check's 5 s, and says how many were missed. */
START_TEST(catchup_once_after_a_suspend)
{
	struct harness h;
	h_init(&h);
	h_job(&h, "a", "* * * * *");
	h_start(&h);
	h_advance(&h, 1);
	clock_sim_step(h.clock, (T0 + 301) * 1000000); /* 00:05:31 */
	h_advance(&h, 5);
	ck_assert_uint_eq(h.n_runs, 1);
	ck_assert_log(&h, "5 fires from 2026-11-22T00:01:00Z to 2026-11-22T00:05:00Z missed");
	ck_assert_log(&h, "started (catchup, scheduled 00:05:00Z, attempt 1)");
	h_stop(&h);
}
END_TEST

/* A job paused over its instant and resumed: the missed fire is the one of the job's own
 * timezone (09:00 in Tokyo is 00:00Z), not of the daemon's (UTC). */
START_TEST(resume_catches_up_in_the_jobs_timezone)
{
	struct harness h;
	h_init(&h);
	cron_tz *tokyo;
	ck_assert_int_eq(cron_tz_open("Asia/Tokyo", &tokyo, NULL, 0), 0);
	struct conf_job *j = h_job(&h, "a", "0 9 * * *");
	h_more(&h, j)->cal.timezone = "Asia/Tokyo";
	h_more(&h, j)->cal.tz = tokyo;
	h_start(&h);
	ck_assert_int_eq(sched_pause(h.s, "a"), 0);
	clock_sim_step(h.clock, (T0 + 86400 + 36000) * 1000000); /* the next day, 10:00:30Z */
	h_advance(&h, 1);
	ck_assert_uint_eq(h.n_runs, 0);
	ck_assert_int_eq(sched_resume(h.s, "a"), 0);
	h_advance(&h, 1);
	ck_assert_uint_eq(h.n_runs, 1);
	ck_assert_log(&h, "started (catchup, scheduled 00:00:00Z, attempt 1)");
	h_stop(&h);
	cron_tz_free(&tokyo);
}
END_TEST

START_TEST(catchup_skip_after_a_suspend)
{
	struct harness h;
	h_init(&h);
	h_job(&h, "a", "* * * * *")->catchup = CATCHUP_SKIP;
	h_start(&h);
	h_advance(&h, 1);
	clock_sim_step(h.clock, (T0 + 301) * 1000000);
	h_advance(&h, 5);
	ck_assert_uint_eq(h.n_runs, 0);
	ck_assert_int_eq(h_count(&h, "a", "skipped"), 1);
	h_advance(&h, 25); /* 00:06:00 comes on time */
	ck_assert_uint_eq(h.n_runs, 1);
	h_stop(&h);
}
END_TEST

/* A job a reload disables across its fires and a later reload enables again does not catch
 * up (pgcrond.conf(5), catchup): its next run is its schedule's next fire after the reload. */
START_TEST(reenabled_by_a_reload_no_catchup)
{
	struct harness h;
	h_init(&h);
	h_job(&h, "a", "* * * * *");
	h_start(&h);
	h_advance(&h, 30);
	ck_assert_str_eq(h_starts(&h), "a@30");
	h_end(&h, 0, true, NULL);
	struct conf_job off_job = h.jobs[0];
	off_job.enabled = false;
	struct pgc_config off = h.cfg;
	off.jobs = &off_job;
	ck_assert_int_eq(sched_apply(h.s, &off, utc(), NULL, false), 0);
	h_advance(&h, 170); /* 00:03:50: the fires of 00:02 and 00:03 passed */
	ck_assert_int_eq(sched_apply(h.s, &h.cfg, utc(), NULL, false), 0);
	h_advance(&h, 5);
	ck_assert_str_eq(h_starts(&h), "a@30");
	h_advance(&h, 10); /* 00:04:00 */
	ck_assert_str_eq(h_starts(&h), "a@30 a@210");
	ck_assert_int_eq(test_log_count(h.log, "catchup"), 0);
	ck_assert_int_eq(test_log_count(h.log, "missed"), 0);
	h_stop(&h);
}
END_TEST

/* Its database refused a connection: once it answers again, one catch-up run. */
START_TEST(catchup_when_the_database_is_back)
{
	struct harness h;
	h_init(&h);
	h_job(&h, "a", "0 * * * *");
	h_start(&h);
	ck_assert_int_eq(sched_trigger(h.s, "a", TRIGGER_MANUAL, false), 0);
	h_advance(&h, 0);
	h_end(&h, 0, false, "08001");
	ck_assert_int_eq(h.probes, 1);
	h_advance(&h, 120);
	ck_assert_uint_eq(h.n_runs, 1);
	sched_db_reachable(h.s, "db");
	h_advance(&h, 0);
	ck_assert_str_eq(h_starts(&h), "a@0 a@120");
	ck_assert_log(&h, "database db is reachable again after failed fires; running once");
	h_stop(&h);
}
END_TEST

/* ---- the graph --------------------------------------------------------------------------- */

/* a -> b -> c: each downstream starts after its upstream succeeded, from the loop (never
 * inside the upstream's end); a final failure gives the rest upstream_failed rows. */
START_TEST(graph_in_order_from_the_loop)
{
	struct harness h;
	h_init(&h);
	h_job(&h, "a", "* * * * *");
	h_after(&h, h_job(&h, "b", NULL), "a");
	h_after(&h, h_job(&h, "c", NULL), "b");
	h_start(&h);
	h_advance(&h, 30);
	ck_assert_str_eq(h_starts(&h), "a@30");
	h_advance(&h, 5);
	h_end(&h, 0, true, NULL);
	/* the end returned before b started: follow-up work goes through the loop */
	ck_assert_str_eq(h_starts(&h), "a@30");
	h_advance(&h, 0);
	ck_assert_str_eq(h_starts(&h), "a@30 b@35");
	ck_assert_log(&h, "started (upstream, attempt 1)");
	h_advance(&h, 5);
	h_end(&h, 1, true, NULL);
	h_advance(&h, 0);
	ck_assert_str_eq(h_starts(&h), "a@30 b@35 c@40");
	h_end(&h, 2, true, NULL);

	h_advance(&h, 50); /* 00:02:00 */
	ck_assert_str_eq(h_starts(&h), "a@30 b@35 c@40 a@90");
	h_end(&h, 3, false, "42P01");
	h_advance(&h, 0);
	ck_assert_uint_eq(h.n_runs, 4);
	ck_assert_int_eq(h_count(&h, "b", "upstream_failed"), 1);
	ck_assert_int_eq(h_count(&h, "c", "upstream_failed"), 1);
	ck_assert_log(&h, "not run: upstream job a failed (via b)");
	h_stop(&h);
}
END_TEST

/* A downstream still running when its upstream succeeds again runs once more after it, not
 * twice at once; fan-in waits for every upstream. */
START_TEST(graph_busy_downstream_runs_again_and_fanin)
{
	struct harness h;
	h_init(&h);
	h_job(&h, "a", "* * * * *");
	h_job(&h, "x", "* * * * *");
	struct conf_job *b = h_job(&h, "b", NULL);
	h_after(&h, b, "a");
	h_after(&h, b, "x");
	h_start(&h);
	h_advance(&h, 30);
	ck_assert_str_eq(h_starts(&h), "a@30 x@30");
	h_end(&h, 0, true, NULL);
	h_advance(&h, 1);
	ck_assert_uint_eq(h.n_runs, 2); /* x has not succeeded yet */
	h_end(&h, 1, true, NULL);
	h_advance(&h, 0);
	ck_assert_str_eq(h_starts(&h), "a@30 x@30 b@31");
	/* b runs long; a and x succeed again meanwhile */
	h_advance(&h, 59);
	ck_assert_str_eq(h_starts(&h), "a@30 x@30 b@31 a@90 x@90");
	h_end(&h, 3, true, NULL);
	h_end(&h, 4, true, NULL);
	h_advance(&h, 10);
	ck_assert_uint_eq(h.n_runs, 5);
	h_end(&h, 2, true, NULL);
	h_advance(&h, 0);
	ck_assert_str_eq(h_starts(&h), "a@30 x@30 b@31 a@90 x@90 b@100");
	h_stop(&h);
}
END_TEST

/* A scheduled job whose upstream is running waits for it, then runs. */
START_TEST(graph_scheduled_waits_for_running_upstream)
{
	struct harness h;
	h_init(&h);
	h_job(&h, "a", "* * * * *");
	h_after(&h, h_job(&h, "d", "* * * * *"), "a");
	h_start(&h);
	h_advance(&h, 30);
	ck_assert_str_eq(h_starts(&h), "a@30");
	ck_assert_log(&h, "waiting for upstream job a to finish");
	h_advance(&h, 3);
	h_end(&h, 0, true, NULL);
	h_advance(&h, 0);
	ck_assert_str_eq(h_starts(&h), "a@30 d@33");
	h_stop(&h);
}
END_TEST

/* ---- alerts ------------------------------------------------------------------------------ */

/* A success ends the failed alert, and only a success after a failure asks the alerter: a
 * job that fails again after it recovered alerts again and recovers again. */
START_TEST(failed_alert_recovers_each_time)
{
	struct harness h;
	struct conf_alert_sink sink = {.sink = "log"};
	struct alerter *a;
	h_init(&h);
	h.cfg.alerts = &sink;
	h.cfg.n_alerts = 1;
	h_job(&h, "a", "* * * * *");
	h_start(&h);
	ck_assert_int_eq(alert_open(h.base, &h.cfg, "test", NULL, NULL, NULL, &a), 0);
	sched_set_context(h.s, a, "test");
	bool ok[] = {false, true, true, false, true};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		h_advance(&h, i ? 60 : 31);
		h_end(&h, i, ok[i], "22012");
	}
	ck_assert_int_eq(test_log_count(h.log, "ALERT failed"), 2);
	ck_assert_int_eq(test_log_count(h.log, "recovered from failed"), 2);
	sched_set_context(h.s, NULL, "test");
	alert_close(&a);
	h_stop(&h);
}
END_TEST

/* ---- max_running ------------------------------------------------------------------------- */

/* With max_running = 1, fires due together run one after the other, in order; a run that
 * cannot start (its database is unknown) fails from the loop and frees its slot. */
START_TEST(max_running_queue_and_failed_starts)
{
	struct harness h;
	h_init(&h);
	h.cfg.max_running = 1;
	h_job(&h, "a", "* * * * *");
	h_job(&h, "bad", "* * * * *")->database = "missing";
	h_job(&h, "c", "* * * * *");
	h_start(&h);
	h_advance(&h, 30);
	ck_assert_uint_eq(h.n_runs, 1);
	ck_assert_uint_eq(sched_queued(h.s), 2);
	h_advance(&h, 2);
	h_end(&h, 0, true, NULL);
	h_advance(&h, 0);
	/* bad failed at once, and the next one got the slot */
	ck_assert_int_eq(h_count(&h, "bad", "failed"), 1);
	ck_assert_log(&h, "failed after 0 ms: database \"missing\" is not configured");
	ck_assert_uint_eq(h.n_runs, 2);
	ck_assert_uint_eq(sched_queued(h.s), 0);
	ck_assert_uint_eq(sched_running(h.s), 1);
	h_stop(&h);
}
END_TEST

/* overlap = replace with a fire still waiting for a max_running slot: the newer fire takes
 * its place, and the older one gets a skipped row. */
START_TEST(overlap_replace_before_start)
{
	struct harness h;
	h_init(&h);
	h.cfg.max_running = 1;
	h_job(&h, "long", "0 * * * *");
	h_job(&h, "a", "* * * * *")->overlap = OVERLAP_REPLACE;
	h_start(&h);
	ck_assert_int_eq(sched_trigger(h.s, "long", TRIGGER_MANUAL, false), 0);
	h_advance(&h, 90); /* a's fires at 30 and 90 wait for the slot */
	ck_assert_str_eq(h_starts(&h), "long@0");
	ck_assert_uint_eq(sched_queued(h.s), 1);
	ck_assert_int_eq(h_count(&h, "a", "skipped"), 1);
	ck_assert_log(&h, "superseded by a newer fire before it started; overlap = replace");
	h_end(&h, 0, true, NULL);
	h_advance(&h, 0);
	ck_assert_str_eq(h_starts(&h), "long@0 a@90");
	ck_assert_log(&h, "started (schedule, scheduled 00:02:00Z, attempt 1)");
	h_stop(&h);
}
END_TEST

static char **payloads(const char *a, const char *b)
{
	char **p = calloc(2, sizeof(*p));
	ck_assert_ptr_nonnull(p);
	p[0] = strdup(a);
	p[1] = b ? strdup(b) : NULL;
	return p;
}

/* Notifications are never skipped: those that come while the job runs are served by one
 * run after it, with all their payloads. */
START_TEST(notifications_while_busy_run_once_after)
{
	struct harness h;
	h_init(&h);
	h_job(&h, "n", NULL);
	h_start(&h);
	ck_assert_int_eq(sched_notify_run(h.s, "n", payloads("1", NULL), 1), 0);
	h_advance(&h, 1);
	ck_assert_str_eq(h_starts(&h), "n@0");
	ck_assert_int_eq(sched_notify_run(h.s, "n", payloads("2", "3"), 2), 0);
	ck_assert_int_eq(sched_notify_run(h.s, "n", payloads("4", NULL), 1), 0);
	h_advance(&h, 1);
	ck_assert_uint_eq(h.n_runs, 1);
	h_end(&h, 0, true, NULL);
	h_advance(&h, 0);
	ck_assert_str_eq(h_starts(&h), "n@0 n@2");
	ck_assert_log(&h, "started (notify, 3 payload(s), attempt 1)");
	ck_assert_int_eq(h_count(&h, "n", "skipped"), 0);
	h_stop(&h);
}
END_TEST

static void drained(void *arg)
{
	*(bool *)arg = true;
}

/* Shutdown: fires not started get a skipped row at once, the running run finishes, then
 * the scheduler says it is drained; no timer fires meanwhile. */
START_TEST(drain_skips_waiting_fires_and_waits_for_the_run)
{
	struct harness h;
	h_init(&h);
	h.cfg.max_running = 1;
	h_job(&h, "a", "* * * * *");
	h_job(&h, "b", "* * * * *");
	h_start(&h);
	h_advance(&h, 30);
	ck_assert_str_eq(h_starts(&h), "a@30");
	bool done = false;
	sched_drain(h.s, 60000, drained, &done);
	ck_assert_int_eq(h_count(&h, "b", "skipped"), 1);
	ck_assert_log(&h, "skipped: pgcrond was shutting down");
	h_advance(&h, 120);
	ck_assert(!done);
	ck_assert_str_eq(h_starts(&h), "a@30");
	h_end(&h, 0, true, NULL);
	h_advance(&h, 0);
	ck_assert(done);
	ck_assert_int_eq(h_count(&h, "a", "succeeded"), 1);
	h_stop(&h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sched_sim");
	TCase *tc = tcase_create("overlap");
	tcase_add_test(tc, overlap_skip);
	tcase_add_test(tc, duration_ignores_a_wall_clock_step);
	tcase_add_test(tc, fires_by_the_database_clock);
	tcase_add_test(tc, offset_moved_back_runs_do_not_overlap);
	tcase_add_test(tc, wall_clock_step_back_is_not_bounded_by_the_last_end);
	tcase_add_test(tc, runs_outlive_their_configuration);
	tcase_add_test(tc, a_big_apply_goes_in_slices);
	tcase_add_test(tc, every_database_of_an_instant_is_warmed);
	tcase_add_test(tc, overlap_queue);
	tcase_add_test(tc, overlap_replace);
	tcase_add_test(tc, overlap_replace_before_start);
	tcase_add_test(tc, notifications_while_busy_run_once_after);
	suite_add_tcase(s, tc);
	tc = tcase_create("retry");
	tcase_add_test(tc, retry_transient_then_success);
	tcase_add_test(tc, retry_jitter_comes_from_the_random_source);
	tcase_add_test(tc, retry_not_for_permanent_errors);
	tcase_add_test(tc, retry_wait_counts_as_busy);
	tcase_add_test(tc, retry_timer_out_of_memory_is_final);
	tcase_add_test(tc, failed_alert_recovers_each_time);
	suite_add_tcase(s, tc);
	tc = tcase_create("catchup");
	tcase_add_test(tc, catchup_once_after_a_suspend);
	tcase_add_test(tc, resume_catches_up_in_the_jobs_timezone);
	tcase_add_test(tc, catchup_skip_after_a_suspend);
	tcase_add_test(tc, catchup_when_the_database_is_back);
	tcase_add_test(tc, reenabled_by_a_reload_no_catchup);
	suite_add_tcase(s, tc);
	tc = tcase_create("graph");
	tcase_add_test(tc, graph_in_order_from_the_loop);
	tcase_add_test(tc, graph_busy_downstream_runs_again_and_fanin);
	tcase_add_test(tc, graph_scheduled_waits_for_running_upstream);
	suite_add_tcase(s, tc);
	tc = tcase_create("max_running");
	tcase_add_test(tc, max_running_queue_and_failed_starts);
	tcase_add_test(tc, drain_skips_waiting_fires_and_waits_for_the_run);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
