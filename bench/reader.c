#include "reader.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double reader_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t reader_size(long cap)
{
	return sizeof(struct reader) + (size_t)cap * sizeof(struct reader_sample);
}

/* Only the first failure is kept: later ones are usually its consequences. */
static void fail(struct reader *r, const char *what)
{
	if (atomic_load(&r->failed))
		return;
	snprintf(r->error, sizeof(r->error), "%s", what);
	atomic_store(&r->failed, 1);
}

static _Noreturn void reader_main(struct reader *r, const char *conninfo, const char *sql)
{
	PGconn *c = PQconnectdb(conninfo);

	if (PQstatus(c) != CONNECTION_OK) {
		fail(r, PQerrorMessage(c));
		_exit(1);
	}
	atomic_store(&r->ready, 1);
	while (!atomic_load(&r->stop)) {
		struct reader_sample s = {.start = reader_now()};
		PGresult *res = PQexec(c, sql);
		s.end = reader_now();
		s.rows = PQresultStatus(res) == PGRES_TUPLES_OK ? atoll(PQgetvalue(res, 0, 0)) : -1;
		if (s.rows < 0)
			fail(r, PQerrorMessage(c));
		else if (s.rows == 0)
			fail(r, "the view read as empty");
		PQclear(res);
		long i = atomic_load(&r->n);
		if (i < r->cap) {
			r->samples[i] = s;
			atomic_store(&r->n, i + 1);
		}
	}
	PQfinish(c);
	_exit(0);
}

struct reader *reader_start(const char *conninfo, const char *sql, long max_samples)
{
	struct reader *r = mmap(NULL, reader_size(max_samples), PROT_READ | PROT_WRITE,
	                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED)
		return NULL;
	r->cap = max_samples;
	fflush(NULL);       /* nothing buffered twice */
	pid_t pid = fork(); /* not into r->pid: the child shares r and would write 0 there */
	if (pid < 0) {
		int e = errno;
		munmap(r, reader_size(max_samples));
		errno = e;
		return NULL;
	}
	if (pid == 0)
		reader_main(r, conninfo, sql);
	r->pid = pid;
	return r;
}

bool reader_wait(struct reader *r, long min_reads, double timeout_s)
{
	double deadline = reader_now() + timeout_s;
	struct timespec tick = {0, 10 * 1000 * 1000};

	for (;;) {
		bool ok = atomic_load(&r->ready) && atomic_load(&r->n) >= min_reads;
		if (ok || atomic_load(&r->failed) || reader_now() >= deadline)
			return ok;
		nanosleep(&tick, NULL);
	}
}

int reader_stop(struct reader *r)
{
	int status;

	atomic_store(&r->stop, 1);
	if (waitpid(r->pid, &status, 0) != r->pid)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

void reader_free(struct reader **pr)
{
	if (!*pr)
		return;
	munmap(*pr, reader_size((*pr)->cap));
	*pr = NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double pct(const double *sorted, long n, double q)
{
	if (n <= 0)
		return 0;
	long i = (long)(q * (double)(n - 1) + 0.5);
	return sorted[i];
}

int reader_latency(const struct reader *r, double from, double to, bool overlap,
                   struct reader_latency *out)
{
	long n = atomic_load(&r->n), k = 0;
	double *l = calloc((size_t)n + 1, sizeof(double));

	if (!l)
		return -ENOMEM;
	for (long i = 0; i < n; i++) {
		const struct reader_sample *s = &r->samples[i];
		bool in =
		    overlap ? (s->end > from && s->start < to) : (s->start >= from && s->end <= to);
		if (in)
			l[k++] = (s->end - s->start) * 1e3;
	}
	qsort(l, (size_t)k, sizeof(double), cmp_double);
	out->n = k;
	out->p50 = pct(l, k, 0.50);
	out->p99 = pct(l, k, 0.99);
	out->max = k ? l[k - 1] : 0;
	free(l);
	return 0;
}
