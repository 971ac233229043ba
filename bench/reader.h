#ifndef PGCROND_BENCH_READER_H
#define PGCROND_BENCH_READER_H

/* A reader: a child process that runs one query again and again on its own connection,
 * timing each read, until it is stopped; its reads are then looked at by the process that
 * started it. bench_views measures readers of a view refreshed CONCURRENTLY with it, and
 * tests/integration/it_views checks them. The query returns one number (a count(*)): a read
 * that fails, or returns 0 or less, is a failure (a view read as empty during a refresh is
 * the bug this is there to catch). libpq only: no Check, no exit on error. */

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

struct reader_sample {
	double start, end; /* reader_now(): the same clock in both processes */
	long long rows;    /* the query's value, -1 when it failed */
};

/* In shared memory: the child appends one sample per read (up to cap), the parent reads
 * them once the child exited. */
struct reader {
	pid_t pid; /* the child, set by the parent only */
	atomic_int ready, stop, failed;
	atomic_long n;
	long cap;
	char error[256]; /* the first failure */
	struct reader_sample samples[];
};

/* Fork a reader of SQL on CONNINFO keeping at most MAX_SAMPLES reads; NULL (errno set) when
 * it cannot. */
struct reader *reader_start(const char *conninfo, const char *sql, long max_samples);
/* Wait until the reader is connected and has done MIN_READS reads, it failed, or TIMEOUT_S
 * passed; true in the first case. */
bool reader_wait(struct reader *r, long min_reads, double timeout_s);
/* Tell it to stop and wait for it: 0 if it exited normally (r->failed says whether reads
 * failed), -1 if not. */
int reader_stop(struct reader *r);
void reader_free(struct reader **r);

/* Monotonic seconds. */
double reader_now(void);

/* The latency of the reads inside [FROM, TO) (or overlapping it, when OVERLAP), in ms:
 * how many, median, 99th percentile and max. 0, or -ENOMEM. */
struct reader_latency {
	long n;
	double p50, p99, max;
};
int reader_latency(const struct reader *r, double from, double to, bool overlap,
                   struct reader_latency *out) __attribute__((warn_unused_result));

#endif
