/* bench_metrics: what one /metrics scrape costs, and how large it is, for N jobs that have
 * each run (every series present): the copy of the counters, which holds the daemon's loop,
 * and the rendering, which http.c runs on a worker thread, with the live values of a status
 * document (status_metrics). Prints figures; never fails on time.
 *   build/bench/bench_metrics [N ...]      (default 100 1000 10000) */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "status.h"

#define ROUNDS 5

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int bench(int n)
{
	struct metrics *m;
	json_t *st = json_pack("{s:s, s:[]}", "version", "bench", "jobs");
	char(*names)[32] = calloc((size_t)n, 32);
	double ms[ROUNDS], copy_ms[ROUNDS];
	size_t bytes = 0;

	if (!st || !names || metrics_new(&m) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		snprintf(names[i], 32, "refresh-view-%05d", i);
		if (json_array_append_new(json_object_get(st, "jobs"),
		                          json_pack("{s:s, s:f, s:f}", "name", names[i],
		                                    "next_fire_unix", 1.8e9, "last_success_unix",
		                                    1.8e9)) < 0)
			return -1;
		metrics_run_end(m, &(struct metrics_run){names[i], "succeeded", 120000, 3000, 1,
		                                         NULL, NULL, NULL});
		metrics_run_end(m, &(struct metrics_run){names[i], "failed", 900000, 2000, 2,
		                                         "boom", "XX000", NULL});
	}
	for (int r = 0; r < ROUNDS; r++) {
		struct metrics *c;
		double t0 = now();
		if (metrics_copy_counters(m, &c) < 0)
			return -1;
		copy_ms[r] = (now() - t0) * 1e3;
		metrics_free(&c);
	}
	for (int r = 0; r < ROUNDS; r++) {
		char *text = NULL;
		FILE *f = open_memstream(&text, &bytes);
		double t0 = now();
		if (!f || status_metrics(m, st, f) < 0)
			return -1;
		fclose(f);
		ms[r] = (now() - t0) * 1e3;
		free(text);
	}
	qsort(ms, ROUNDS, sizeof(ms[0]), cmp);
	qsort(copy_ms, ROUNDS, sizeof(copy_ms[0]), cmp);
	printf("%6d jobs: copy on the loop %6.2f ms median (%.2f-%.2f); render on the worker "
	       "%7.1f ms median (%.1f-%.1f), over %d rounds; %.1f MB, %.0f bytes/job\n",
	       n, copy_ms[ROUNDS / 2], copy_ms[0], copy_ms[ROUNDS - 1], ms[ROUNDS / 2], ms[0],
	       ms[ROUNDS - 1], ROUNDS, (double)bytes / 1e6, (double)bytes / n);
	metrics_free(&m);
	json_decref(st);
	free(names);
	return 0;
}

int main(int argc, char **argv)
{
	int defaults[] = {100, 1000, 10000};
	int n = argc > 1 ? argc - 1 : 3;
	for (int i = 0; i < n; i++)
		if (bench(argc > 1 ? atoi(argv[i + 1]) : defaults[i]) < 0) {
			fprintf(stderr, "bench_metrics: out of memory\n");
			return 1;
		}
	return 0;
}
