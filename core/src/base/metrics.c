/* Counters for /metrics, and the Prometheus text format they are served in. Names follow
 * Prometheus' conventions: the pgcrond_ prefix, _total on counters, base units (seconds),
 * histograms as cumulative _bucket{le} series with _sum and _count. */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strmap.h"

/* Run durations: from a quick refresh to the hour-long rebuild of a large view. */
static const double metrics_duration_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                  2.5,   5,    10,    30,   60,  300,  900, 3600};
/* Firing lateness: a healthy daemon starts within milliseconds of the instant. */
static const double metrics_lateness_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                  0.25,  0.5,    1,     2.5,  5,     10,   60};

#define N_DUR (sizeof(metrics_duration_buckets) / sizeof(metrics_duration_buckets[0]))
#define N_LATE (sizeof(metrics_lateness_buckets) / sizeof(metrics_lateness_buckets[0]))

static const char *const statuses[] = {"succeeded", "failed", "skipped", "upstream_failed"};
#define N_STATUS (sizeof(statuses) / sizeof(statuses[0]))

/* One block a job that ran: 15,000 jobs may run every second. */
struct metrics_job {
	struct strmap_node node; /* in metrics.jobs, under name */
	uint64_t runs[N_STATUS];
	/* the histograms: per bound, not cumulative, the last +Inf (their _count is the sum); 32
	 * bits, which a job run every second fills in 136 years */
	uint32_t dur_b[N_DUR + 1], late_b[N_LATE + 1];
	double dur_sum, late_sum;
	int64_t last_failure_us;
	char name[];
};

struct failure {
	char *job, *message;
	char sqlstate[6];
	int64_t end_us;
	int64_t runid; /* 0: not known (a run of this process) */
};

struct metrics {
	/* the jobs by name, looked up on every run's end: a fixed table of 1,024 chains would
	 * make every run of 100,000 jobs walk about a hundred names (strcmp a tenth of the
	 * daemon's CPU at 15,000 runs a second) */
	struct strmap jobs;
	struct failure failures[METRICS_FAILURES]; /* a ring; next is the oldest */
	size_t next_failure;
	bool complained;
};

int metrics_new(struct metrics **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void metrics_free(struct metrics **mp)
{
	struct metrics *m = *mp;
	if (!m)
		return;
	for (struct strmap_node *n = strmap_first(&m->jobs), *next; n; n = next) {
		next = strmap_next(&m->jobs, n);
		struct metrics_job *j = STRMAP_ENTRY(n, struct metrics_job, node);
		free(j);
	}
	for (size_t i = 0; i < METRICS_FAILURES; i++) {
		free(m->failures[i].job);
		free(m->failures[i].message);
	}
	strmap_free(&m->jobs);
	free(m);
	*mp = NULL;
}

static struct metrics_job *find(const struct metrics *m, const char *name)
{
	struct strmap_node *n = strmap_find(&m->jobs, name);
	return STRMAP_ENTRY(n, struct metrics_job, node);
}

static struct metrics_job *find_or_add(struct metrics *m, const char *name)
{
	struct metrics_job *j = find(m, name);
	if (j)
		return j;
	size_t len = strlen(name) + 1;
	if (!(j = calloc(1, sizeof(*j) + len)))
		return NULL;
	memcpy(j->name, name, len);
	strmap_insert(&m->jobs, &j->node, j->name);
	return j;
}

int metrics_copy_counters(const struct metrics *m, struct metrics **out)
{
	struct metrics *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (struct strmap_node *n = strmap_first(&m->jobs); n; n = strmap_next(&m->jobs, n)) {
		const struct metrics_job *j = STRMAP_ENTRY(n, struct metrics_job, node);
		struct metrics_job *k = find_or_add(c, j->name);
		if (!k) {
			metrics_free(&c);
			return -ENOMEM;
		}
		memcpy(k->runs, j->runs, sizeof(k->runs));
		memcpy(k->dur_b, j->dur_b, sizeof(k->dur_b));
		memcpy(k->late_b, j->late_b, sizeof(k->late_b));
		k->dur_sum = j->dur_sum;
		k->late_sum = j->late_sum;
		k->last_failure_us = j->last_failure_us;
	}
	*out = c;
	return 0;
}

static void observe(uint32_t *buckets, double *sum, const double *bounds, size_t n, double v)
{
	size_t i = 0;
	while (i < n && v > bounds[i])
		i++;
	buckets[i]++;
	*sum += v;
}

/* F holds the failure given, its old strings freed; false (F as it was) when out of memory. */
static bool put_failure(struct failure *f, const char *job, const char *message,
                        const char *sqlstate, int64_t end_us, int64_t runid)
{
	char *j = strdup(job), *msg = strdup(message ? message : "");
	if (!j || !msg) {
		free(j);
		free(msg);
		return false;
	}
	free(f->job);
	free(f->message);
	f->job = j;
	f->message = msg;
	snprintf(f->sqlstate, sizeof(f->sqlstate), "%s", sqlstate ? sqlstate : "");
	f->end_us = end_us;
	f->runid = runid;
	return true;
}

static void keep_failure(struct metrics *m, const struct metrics_run *r)
{
	if (put_failure(&m->failures[m->next_failure], r->job, r->message, r->sqlstate, r->end_us,
	                0))
		m->next_failure = (m->next_failure + 1) % METRICS_FAILURES;
}

static struct failure *failure_of(struct metrics *m, const char *job, int64_t end_us)
{
	for (size_t i = 0; i < METRICS_FAILURES; i++) {
		struct failure *f = &m->failures[i];
		if (f->job && f->end_us == end_us && strcmp(f->job, job) == 0)
			return f;
	}
	return NULL;
}

void metrics_seed_failure(struct metrics *m, const char *job, int64_t end_us, int64_t runid,
                          const char *message, const char *sqlstate)
{
	if (!m || !job)
		return;
	struct failure *f = failure_of(m, job, end_us);
	if (f) {
		f->runid = runid; /* one this process kept: now its id is known */
		return;
	}
	size_t kept = 0;
	for (size_t i = 0; i < METRICS_FAILURES; i++)
		kept += m->failures[i].job != NULL;
	if (kept >= METRICS_FAILURES)
		return;
	/* the kept ones are the KEPT slots before next: the one before them is free */
	f = &m->failures[(m->next_failure + 2 * METRICS_FAILURES - kept - 1) % METRICS_FAILURES];
	if (!f->job)
		put_failure(f, job, message, sqlstate, end_us, runid);
}

void metrics_failure_runid(struct metrics *m, const char *job, int64_t end_us, int64_t runid)
{
	struct failure *f = m && job ? failure_of(m, job, end_us) : NULL;
	if (f)
		f->runid = runid;
}

void metrics_each_failure(const struct metrics *m,
                          void (*fn)(void *arg, const char *job, int64_t end_us, int64_t runid,
                                     const char *message, const char *sqlstate),
                          void *arg)
{
	for (size_t k = 1; k <= METRICS_FAILURES; k++) {
		const struct failure *f =
		    &m->failures[(m->next_failure + METRICS_FAILURES - k) % METRICS_FAILURES];
		if (f->job)
			fn(arg, f->job, f->end_us, f->runid, f->message,
			   f->sqlstate[0] ? f->sqlstate : NULL);
	}
}

void metrics_run_end(struct metrics *m, const struct metrics_run *r)
{
	if (!m)
		return;
	struct metrics_job *j = r->counters && *r->counters ? *r->counters : find_or_add(m, r->job);
	if (j && r->counters)
		*r->counters = j;
	if (!j) {
		if (!m->complained)
			log_error("metrics: out of memory; some runs are not counted");
		m->complained = true;
		return;
	}
	for (size_t i = 0; i < N_STATUS; i++)
		if (strcmp(r->status, statuses[i]) == 0) {
			j->runs[i]++;
			break;
		}
	if (strcmp(r->status, "failed") == 0) {
		j->last_failure_us = r->end_us;
		keep_failure(m, r);
	}
	if (r->duration_us >= 0)
		observe(j->dur_b, &j->dur_sum, metrics_duration_buckets, N_DUR,
		        (double)r->duration_us / 1e6);
	if (r->lateness_us >= 0)
		observe(j->late_b, &j->late_sum, metrics_lateness_buckets, N_LATE,
		        (double)r->lateness_us / 1e6);
}

/* ---- the text format ------------------------------------------------------------------ */

void metrics_label(FILE *out, const char *v)
{
	if (!strpbrk(v, "\\\"\n")) {
		fputs(v, out); /* the usual case: job and database names have none */
		return;
	}
	for (; *v; v++) {
		if (*v == '\\')
			fputs("\\\\", out);
		else if (*v == '"')
			fputs("\\\"", out);
		else if (*v == '\n')
			fputs("\\n", out);
		else
			fputc(*v, out);
	}
}

void metrics_head(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_sample(FILE *out, const char *name, const char *key, const char *val, double v)
{
	fputs(name, out);
	if (key) {
		fprintf(out, "{%s=\"", key);
		metrics_label(out, val);
		fputs("\"}", out);
	}
	fprintf(out, " %.17g\n", v);
}

/* B: the job's buckets (NULL: none yet), SUM their values' sum. */
static void histogram(FILE *out, const char *name, const char *job, const uint32_t *b, double sum,
                      const double *bounds, size_t n)
{
	static const uint32_t zero[N_DUR > N_LATE ? N_DUR + 1 : N_LATE + 1];
	uint64_t cum = 0;
	b = b ? b : zero;

	for (size_t i = 0; i <= n; i++) {
		cum += b[i];
		fputs(name, out);
		fputs("_bucket{job=\"", out);
		metrics_label(out, job);
		if (i < n)
			fprintf(out, "\",le=\"%g\"} %" PRIu64 "\n", bounds[i], cum);
		else
			fprintf(out, "\",le=\"+Inf\"} %" PRIu64 "\n", cum);
	}
	fprintf(out, "%s_sum{job=\"", name);
	metrics_label(out, job);
	fprintf(out, "\"} %.17g\n", sum);
	fprintf(out, "%s_count{job=\"", name);
	metrics_label(out, job);
	fprintf(out, "\"} %" PRIu64 "\n", cum);
}

void metrics_render_counters(const struct metrics *m, const char *const *jobs, size_t n, FILE *out)
{
	metrics_head(out, "pgcrond_job_runs_total", "counter",
	             "Runs per job by final status since the start (also the successes a job with "
	             "history = \"failures\" counts instead of writing).");
	for (size_t i = 0; i < n; i++) {
		const struct metrics_job *c = find(m, jobs[i]);
		for (size_t s = 0; s < N_STATUS; s++) {
			fputs("pgcrond_job_runs_total{job=\"", out);
			metrics_label(out, jobs[i]);
			fprintf(out, "\",status=\"%s\"} %" PRIu64 "\n", statuses[s],
			        c ? c->runs[s] : 0);
		}
	}
	metrics_head(out, "pgcrond_job_run_duration_seconds", "histogram",
	             "How long runs took, from start to end, per job.");
	for (size_t i = 0; i < n; i++) {
		const struct metrics_job *c = find(m, jobs[i]);
		histogram(out, "pgcrond_job_run_duration_seconds", jobs[i], c ? c->dur_b : NULL,
		          c ? c->dur_sum : 0, metrics_duration_buckets, N_DUR);
	}
	metrics_head(
	    out, "pgcrond_job_lateness_seconds", "histogram",
	    "How late scheduled runs started after their instant (first attempts), per job.");
	for (size_t i = 0; i < n; i++) {
		const struct metrics_job *c = find(m, jobs[i]);
		histogram(out, "pgcrond_job_lateness_seconds", jobs[i], c ? c->late_b : NULL,
		          c ? c->late_sum : 0, metrics_lateness_buckets, N_LATE);
	}
}

int64_t metrics_last_failure_us(const struct metrics *m, const char *job)
{
	const struct metrics_job *c = find(m, job);
	return c ? c->last_failure_us : 0;
}
