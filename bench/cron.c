/* bench_cron: nanoseconds per cron_parse and per cron_next over a mix of expressions, in UTC
 * and in Europe/Berlin. Prints the median and the spread (min, max) of several runs; it
 * never fails on time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"

#define RUNS 9
#define ITERS 200000
#define NAFTER 1024

static const char *const five[] = {
    "* * * * *",         "*/15 * * * *", "0 3 * * *",  "30 2 * * mon-fri", "0 0 1 */3 *",
    "5,35 8-18 * * 1-5", "0 0 */2 * 1",  "0 0 13 * 5", "0 0 29 2 *",       "59 23 31 12 *",
};
static const char *const six[] = {"*/30 * * * * *", "15 30 2 * * *", "0 0 0 $ * *"};
static const char *const last[] = {"0 12 $ * *", "0 0 $ 2 *"};
static const char *const macro[] = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly"};

static volatile int64_t sink;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, double *runs)
{
	qsort(runs, RUNS, sizeof(*runs), cmp);
	printf("%-34s median %7.1f ns/op   min %7.1f   max %7.1f\n", what, runs[RUNS / 2], runs[0],
	       runs[RUNS - 1]);
}

static void bench_parse(const char *what, const char *const *exprs, int n)
{
	double runs[RUNS];
	cron_expr e;

	for (int r = 0; r < RUNS; r++) {
		double t0 = now_ns();
		for (int i = 0; i < ITERS; i++) {
			if (cron_parse(exprs[i % n], &e, NULL, 0) < 0)
				abort();
			sink += e.min;
		}
		runs[r] = (now_ns() - t0) / ITERS;
	}
	report(what, runs);
}

static void bench_next(const char *what, const char *const *exprs, int n, const cron_tz *tz,
                       const int64_t *after)
{
	double runs[RUNS];
	cron_expr *es = calloc((size_t)n, sizeof(*es));

	if (!es)
		abort();
	for (int i = 0; i < n; i++)
		if (cron_parse(exprs[i], &es[i], NULL, 0) < 0)
			abort();
	for (int r = 0; r < RUNS; r++) {
		double t0 = now_ns();
		for (int i = 0; i < ITERS; i++)
			sink += cron_next(&es[i % n], tz, after[i % NAFTER]);
		runs[r] = (now_ns() - t0) / ITERS;
	}
	report(what, runs);
	free(es);
}

#define N(a) ((int)(sizeof(a) / sizeof(a[0])))

int main(void)
{
	static int64_t after[NAFTER], far[NAFTER], rule[NAFTER];
	char err[256];
	cron_tz *berlin = NULL;
	unsigned seed = 1;

	/* Instants spread over 2020-2040 (in Berlin's TZif table), 2100-2120 (the table as
	 * extended from the footer rule at open time) and 2500-2520 (the rule evaluated for each
	 * instant). */
	for (int i = 0; i < NAFTER; i++) {
		int64_t r = (int64_t)rand_r(&seed) << 16 ^ rand_r(&seed);
		after[i] = 1577836800 + r % (20 * 31556952LL);
		far[i] = 4102444800 + r % (20 * 31556952LL);
		rule[i] = 16725225600 + r % (20 * 31556952LL);
	}
	if (cron_tz_open("Europe/Berlin", &berlin, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_cron: %s; the Berlin figures are skipped\n", err);
		berlin = NULL;
	}
	printf("bench_cron: %d runs of %d operations each\n", RUNS, ITERS);
	bench_parse("parse five-field", five, N(five));
	bench_parse("parse six-field", six, N(six));
	bench_parse("parse macro", macro, N(macro));
	bench_next("next five-field UTC", five, N(five), NULL, after);
	bench_next("next six-field UTC", six, N(six), NULL, after);
	bench_next("next $ UTC", last, N(last), NULL, after);
	bench_next("next macro UTC", macro, N(macro), NULL, after);
	if (berlin) {
		bench_next("next five-field Berlin 2020-2040", five, N(five), berlin, after);
		bench_next("next five-field Berlin 2100-2120", five, N(five), berlin, far);
		bench_next("next five-field Berlin 2500-2520", five, N(five), berlin, rule);
		bench_next("next six-field Berlin", six, N(six), berlin, after);
		bench_next("next macro Berlin", macro, N(macro), berlin, after);
	}
	cron_tz_free(&berlin);
	return 0;
}
