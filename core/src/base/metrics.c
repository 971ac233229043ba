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

struct histo {
	uint64_t *buckets; /* per bound, not cumulative; the last is +Inf */
	uint64_t count;
	double sum;
};

struct metrics_job {
	char *name;
	uint64_t runs[N_STATUS];
	uint64_t dur_b[N_DUR + 1], late_b[N_LATE + 1];
	struct histo dur, late;
	int64_t last_failure_us;
	struct strmap_node node; /* in metrics.jobs, under name */
};

struct failure {
	char *job, *message;
	char sqlstate[6];
	int64_t end_us;
	int64_t runid; /* 0: not known (a run of this process) */
};

struct metrics {
	/* the jobs by name, looked up on every run's end: a fixed table of 1,024 chains made
	 * every run of 100,000 jobs walk about a hundred names (strcmp was a tenth of the
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
		free(j->name);
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
	j = calloc(1, sizeof(*j));
	if (!j || !(j->name = strdup(name))) {
		free(j);
		return NULL;
	}
	j->dur.buckets = j->dur_b;
	j->late.buckets = j->late_b;
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
		k->dur = (struct histo){k->dur_b, j->dur.count, j->dur.sum};
		k->late = (struct histo){k->late_b, j->late.count, j->late.sum};
		k->last_failure_us = j->last_failure_us;
	}
	*out = c;
	return 0;
}

static void observe(struct histo *h, const double *bounds, size_t n, double v)
{
	size_t i = 0;
	while (i < n && v > bounds[i])
		i++;
	h->buckets[i]++;
	h->count++;
	h->sum += v;
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
		observe(&j->dur, metrics_duration_buckets, N_DUR, (double)r->duration_us / 1e6);
	if (r->lateness_us >= 0)
		observe(&j->late, metrics_lateness_buckets, N_LATE, (double)r->lateness_us / 1e6);
}

/* ---- the text format ------------------------------------------------------------------ */

/* A label value: backslash, double quote and newline escaped. */
static void put_label(FILE *out, const char *v)
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

static void head(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* NAME{KEY="VAL"} VALUE */
static void sample(FILE *out, const char *name, const char *key, const char *val, double v)
{
	fputs(name, out);
	if (key) {
		fprintf(out, "{%s=\"", key);
		put_label(out, val);
		fputs("\"}", out);
	}
	fprintf(out, " %.17g\n", v);
}

static void sample_u(FILE *out, const char *name, const char *key, const char *val, uint64_t v)
{
	fputs(name, out);
	if (key) {
		fprintf(out, "{%s=\"", key);
		put_label(out, val);
		fputs("\"}", out);
	}
	fprintf(out, " %" PRIu64 "\n", v);
}

/* A metric of one sample without labels. */
static void one(FILE *out, const char *name, const char *type, const char *help, uint64_t v)
{
	head(out, name, type, help);
	sample_u(out, name, NULL, NULL, v);
}

static void histogram(FILE *out, const char *name, const char *job, const struct histo *h,
                      const double *bounds, size_t n)
{
	static const uint64_t zero[N_DUR > N_LATE ? N_DUR + 1 : N_LATE + 1];
	const uint64_t *b = h ? h->buckets : zero;
	uint64_t cum = 0;

	for (size_t i = 0; i <= n; i++) {
		cum += b[i];
		fputs(name, out);
		fputs("_bucket{job=\"", out);
		put_label(out, job);
		if (i < n)
			fprintf(out, "\",le=\"%g\"} %" PRIu64 "\n", bounds[i], cum);
		else
			fprintf(out, "\",le=\"+Inf\"} %" PRIu64 "\n", cum);
	}
	fprintf(out, "%s_sum{job=\"", name);
	put_label(out, job);
	fprintf(out, "\"} %.17g\n", h ? h->sum : 0.0);
	fprintf(out, "%s_count{job=\"", name);
	put_label(out, job);
	fprintf(out, "\"} %" PRIu64 "\n", h ? h->count : 0);
}

int metrics_render(const struct metrics *m, const struct metrics_live *live, FILE *out)
{
	const size_t nj = live->n_jobs;

	head(out, "pgcrond_build_info", "gauge", "The pgcrond version, as a label; always 1.");
	fputs("pgcrond_build_info{version=\"", out);
	put_label(out, live->version);
	fputs("\"} 1\n", out);
	head(out, "pgcrond_start_time_seconds", "gauge",
	     "When this daemon started, in seconds since the epoch.");
	sample(out, "pgcrond_start_time_seconds", NULL, NULL, live->start_time);
	head(out, "pgcrond_max_running", "gauge", "The max_running setting: runs at once.");
	sample(out, "pgcrond_max_running", NULL, NULL, live->max_running);

	/* the `job` label is pgcrond's name; a SQL job's own name is any text, here once */
	head(out, "pgcrond_job_info", "gauge",
	     "1 per job: its kind (sql, plugin, http); for a job made in SQL also its owner, "
	     "jobid and the name given to cron.schedule.");
	for (size_t i = 0; i < nj; i++) {
		const struct metrics_job_live *l = &live->jobs[i];
		fputs("pgcrond_job_info{job=\"", out);
		put_label(out, l->name);
		fputs("\",kind=\"", out);
		put_label(out, l->kind ? l->kind : "");
		if (l->owner) {
			fputs("\",owner=\"", out);
			put_label(out, l->owner);
			fprintf(out, "\",jobid=\"%lld\",cron_name=\"", l->jobid);
			put_label(out, l->cron_name ? l->cron_name : "");
		}
		fputs("\"} 1\n", out);
	}
	head(out, "pgcrond_job_runs_total", "counter",
	     "Runs recorded per job by final status (one per history row) since the start.");
	for (size_t i = 0; i < nj; i++) {
		const struct metrics_job *c = find(m, live->jobs[i].name);
		for (size_t s = 0; s < N_STATUS; s++) {
			fputs("pgcrond_job_runs_total{job=\"", out);
			put_label(out, live->jobs[i].name);
			fprintf(out, "\",status=\"%s\"} %" PRIu64 "\n", statuses[s],
			        c ? c->runs[s] : 0);
		}
	}
	head(out, "pgcrond_job_run_duration_seconds", "histogram",
	     "How long runs took, from start to end, per job.");
	for (size_t i = 0; i < nj; i++) {
		const struct metrics_job *c = find(m, live->jobs[i].name);
		histogram(out, "pgcrond_job_run_duration_seconds", live->jobs[i].name,
		          c ? &c->dur : NULL, metrics_duration_buckets, N_DUR);
	}
	head(out, "pgcrond_job_lateness_seconds", "histogram",
	     "How late scheduled runs started after their instant (first attempts), per job.");
	for (size_t i = 0; i < nj; i++) {
		const struct metrics_job *c = find(m, live->jobs[i].name);
		histogram(out, "pgcrond_job_lateness_seconds", live->jobs[i].name,
		          c ? &c->late : NULL, metrics_lateness_buckets, N_LATE);
	}
	head(out, "pgcrond_job_last_success_timestamp_seconds", "gauge",
	     "When the job's last successful run ended (also one before this daemon started).");
	for (size_t i = 0; i < nj; i++)
		if (live->jobs[i].last_success > 0)
			sample(out, "pgcrond_job_last_success_timestamp_seconds", "job",
			       live->jobs[i].name, live->jobs[i].last_success);
	head(out, "pgcrond_job_last_failure_timestamp_seconds", "gauge",
	     "When the job's last failed run ended, since this daemon started.");
	for (size_t i = 0; i < nj; i++) {
		const struct metrics_job *c = find(m, live->jobs[i].name);
		if (c && c->last_failure_us > 0)
			sample(out, "pgcrond_job_last_failure_timestamp_seconds", "job",
			       live->jobs[i].name, (double)c->last_failure_us / 1e6);
	}
	head(out, "pgcrond_job_next_fire_timestamp_seconds", "gauge",
	     "The job's next scheduled instant; absent when it has none.");
	for (size_t i = 0; i < nj; i++)
		if (live->jobs[i].next_fire >= 0)
			sample(out, "pgcrond_job_next_fire_timestamp_seconds", "job",
			       live->jobs[i].name, live->jobs[i].next_fire);
	head(out, "pgcrond_job_running", "gauge", "1 while a run of the job is in progress.");
	for (size_t i = 0; i < nj; i++)
		sample(out, "pgcrond_job_running", "job", live->jobs[i].name,
		       live->jobs[i].running);
	head(out, "pgcrond_job_queued", "gauge", "1 while a fire of the job waits for a run slot.");
	for (size_t i = 0; i < nj; i++)
		sample(out, "pgcrond_job_queued", "job", live->jobs[i].name, live->jobs[i].queued);
	head(out, "pgcrond_job_paused", "gauge", "1 while the job is paused (pgcrond pause).");
	for (size_t i = 0; i < nj; i++)
		sample(out, "pgcrond_job_paused", "job", live->jobs[i].name, live->jobs[i].paused);
	head(out, "pgcrond_job_max_staleness_seconds", "gauge",
	     "The job's max_staleness setting; absent when it has none.");
	for (size_t i = 0; i < nj; i++)
		if (live->jobs[i].max_staleness_s > 0)
			sample(out, "pgcrond_job_max_staleness_seconds", "job", live->jobs[i].name,
			       live->jobs[i].max_staleness_s);
	head(out, "pgcrond_job_stale", "gauge",
	     "1 when the job's last success is older than its max_staleness.");
	for (size_t i = 0; i < nj; i++)
		if (live->jobs[i].max_staleness_s > 0)
			sample(out, "pgcrond_job_stale", "job", live->jobs[i].name,
			       live->jobs[i].stale);

	head(out, "pgcrond_job_freshness_seconds", "gauge",
	     "The job's freshness SLA; absent when it has none.");
	for (size_t i = 0; i < nj; i++)
		if (live->jobs[i].freshness_s > 0)
			sample(out, "pgcrond_job_freshness_seconds", "job", live->jobs[i].name,
			       live->jobs[i].freshness_s);
	head(out, "pgcrond_job_freshness_lag_seconds", "gauge",
	     "Age of the oldest change to the job's sources its relation does not reflect yet "
	     "(0: up to date); absent without freshness.");
	for (size_t i = 0; i < nj; i++)
		if (live->jobs[i].freshness_s > 0)
			sample(out, "pgcrond_job_freshness_lag_seconds", "job", live->jobs[i].name,
			       live->jobs[i].freshness_lag_s);

	head(out, "pgcrond_database_connections", "gauge",
	     "Open connections of each database's pool, by state.");
	for (size_t i = 0; i < live->n_dbs; i++) {
		const struct metrics_db_live *d = &live->dbs[i];
		const struct {
			const char *state;
			size_t n;
		} st[] = {{"connecting", d->connecting},
		          {"idle", d->idle},
		          {"busy", d->busy},
		          /* open and neither idle nor busy: its session is being reset */
		          {"resetting",
		           d->open - (d->open < d->idle + d->busy ? d->open : d->idle + d->busy)}};
		for (size_t s = 0; s < sizeof(st) / sizeof(st[0]); s++) {
			fputs("pgcrond_database_connections{database=\"", out);
			put_label(out, d->name);
			fprintf(out, "\",state=\"%s\"} %zu\n", st[s].state, st[s].n);
		}
	}
	head(out, "pgcrond_database_pool_size", "gauge", "The pool setting of each database.");
	for (size_t i = 0; i < live->n_dbs; i++)
		sample(out, "pgcrond_database_pool_size", "database", live->dbs[i].name,
		       live->dbs[i].pool);
	head(out, "pgcrond_database_waiting_runs", "gauge",
	     "Runs waiting for a connection of each database.");
	for (size_t i = 0; i < live->n_dbs; i++)
		sample_u(out, "pgcrond_database_waiting_runs", "database", live->dbs[i].name,
		         live->dbs[i].waiting);

	if (live->have_history) {
		one(out, "pgcrond_history_connected", "gauge",
		    "1 while the history database's connection is up.", live->history_connected);
		one(out, "pgcrond_history_spool_records", "gauge",
		    "History records waiting to be written (in memory and in the spill file).",
		    live->spool_records);
		one(out, "pgcrond_history_records_written_total", "counter",
		    "History records the database acknowledged.", live->history_written);
		one(out, "pgcrond_history_records_dropped_total", "counter",
		    "History records given up (spill file full, data the database refused).",
		    live->history_dropped);
		one(out, "pgcrond_history_backlogged", "gauge",
		    "1 while new runs are held back: more history records wait than the database "
		    "takes.",
		    live->history_backlogged);
		one(out, "pgcrond_history_backlog_holds_total", "counter",
		    "Times new runs were held back for the history to catch up.",
		    live->history_holds);
	}
	return ferror(out) ? -EIO : 0;
}
