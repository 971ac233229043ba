/* Each job's recent runs and its last result read back from the history at start
 * (sched_recent_priv.h); kept live as runs end by sched_state.c. */
#include "sched_recent_priv.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "history.h"
#include "log.h"
#include "metrics.h"
#include "sched_priv.h"

static int status_index(const char *status)
{
	for (int i = 0; status && sched_recent_statuses[i]; i++)
		if (strcmp(status, sched_recent_statuses[i]) == 0)
			return i;
	return -1;
}

/* ---- read back at start ----------------------------------------------------------------- */

/* A row for a job not scheduled (yet), copied. */
struct pending {
	char *job, *message;
	char status[16], sqlstate[6];
	char trigger[16];
	char kind;
	bool taken;
	int attempt;
	int64_t start_us, end_us, runid;
	size_t seq; /* the answer's order (newest first), kept by the sort */
};

struct sched_recent_store {
	struct pending *v;
	size_t n, cap, left; /* LEFT: not taken yet */
	bool complete;       /* the answer has ended: V is sorted by job */
};

/* The last result of an earlier process, where no run of this one ended yet; or only the
 * run id, where it is the same run. */
static void set_last(struct job *j, const struct hist_past_run *pr)
{
	struct job_last *l = j->last;
	if (l && l->status) {
		if (!l->runid && l->end_us == pr->end_us)
			l->runid = pr->runid;
		return;
	}
	int st = status_index(pr->status); /* succeeded or failed (hist_sql_last_results) */
	char *msg = pr->message ? strdup(pr->message) : NULL;
	if (st < 0 || (pr->message && !msg) || !(l = sched_job_last(j))) {
		free(msg);
		return;
	}
	l->status = sched_recent_statuses[st];
	free(l->message);
	l->message = msg;
	snprintf(l->sqlstate, sizeof(l->sqlstate), "%s", pr->sqlstate ? pr->sqlstate : "");
	snprintf(l->trigger, sizeof(l->trigger), "%s", pr->trigger ? pr->trigger : "");
	l->start_us = pr->start_us;
	l->end_us = pr->end_us;
	l->attempt = pr->attempt;
	l->backend_ms = 0;
	l->runid = pr->runid;
}

static void apply_row(struct job *j, enum hist_past_kind kind, const struct hist_past_run *pr)
{
	if (kind == HIST_PAST_LAST) {
		set_last(j, pr);
	} else if (kind == HIST_PAST_RUN) {
		int st = status_index(pr->status);
		if (st >= 0)
			sched_recent_note(j, (enum sched_status)st, pr->start_us, pr->end_us,
			                  pr->attempt, 0, pr->runid);
	}
}

static void keep_pending(struct sched *s, enum hist_past_kind kind, const struct hist_past_run *pr)
{
	struct sched_recent_store *st = s->recent_store;
	if (!st && !(st = s->recent_store = calloc(1, sizeof(*st))))
		return;
	if (array_grow(&st->v, st->n, &st->cap, sizeof(*st->v), 64) < 0)
		return;
	struct pending *p = &st->v[st->n];
	*p = (struct pending){.kind = (char)kind,
	                      .attempt = pr->attempt,
	                      .start_us = pr->start_us,
	                      .end_us = pr->end_us,
	                      .runid = pr->runid,
	                      .seq = st->n};
	if (!(p->job = strdup(pr->job)) || (pr->message && !(p->message = strdup(pr->message)))) {
		free(p->job);
		return;
	}
	snprintf(p->status, sizeof(p->status), "%s", pr->status);
	snprintf(p->sqlstate, sizeof(p->sqlstate), "%s", pr->sqlstate ? pr->sqlstate : "");
	snprintf(p->trigger, sizeof(p->trigger), "%s", pr->trigger ? pr->trigger : "");
	st->n++;
	st->left++;
}

static int by_job(const void *a, const void *b)
{
	const struct pending *p = a, *q = b;
	int c = strcmp(p->job, q->job);
	return c ? c : (p->seq > q->seq) - (p->seq < q->seq);
}

void sched_recent_free(struct sched *s)
{
	struct sched_recent_store *st = s->recent_store;
	if (!st)
		return;
	for (size_t i = 0; i < st->n; i++) {
		free(st->v[i].job);
		free(st->v[i].message);
	}
	free(st->v);
	free(st);
	s->recent_store = NULL;
}

static void take(struct job *j, struct pending *p)
{
	struct hist_past_run pr = {.job = p->job,
	                           .status = p->status,
	                           .message = p->message,
	                           .sqlstate = p->sqlstate[0] ? p->sqlstate : NULL,
	                           .trigger = p->trigger,
	                           .attempt = p->attempt,
	                           .start_us = p->start_us,
	                           .end_us = p->end_us,
	                           .runid = p->runid};
	apply_row(j, (enum hist_past_kind)p->kind, &pr);
	p->taken = true;
	free(p->message);
	p->message = NULL;
}

void sched_recent_job_added(struct job *j)
{
	struct sched *s = j->s;
	struct sched_recent_store *st = s->recent_store;
	if (!st || !st->complete || !st->left)
		return;
	/* the first row of the job's name: a binary search for the lower bound */
	size_t lo = 0, hi = st->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(st->v[mid].job, j->conf->name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < st->n && strcmp(st->v[i].job, j->conf->name) == 0; i++) {
		if (!st->v[i].taken) {
			take(j, &st->v[i]);
			st->left--;
		}
	}
	if (!st->left)
		sched_recent_free(s);
}

void sched_recent_take(void *arg, enum hist_past_kind kind, const struct hist_past_run *pr)
{
	struct sched *s = arg;
	struct sched_recent_store *st = s->recent_store;
	if (!pr) {
		log_info("history: read back for the status: %zu failure(s), %zu run(s) of the "
		         "jobs scheduled, %zu row(s) kept for jobs not scheduled yet",
		         s->recent_failures_read, s->recent_runs_read, st ? st->n : 0);
		if (st) {
			qsort(st->v, st->n, sizeof(st->v[0]), by_job);
			st->complete = true;
			if (!st->left)
				sched_recent_free(s);
		}
		return;
	}
	if (kind == HIST_PAST_FAILURE) {
		s->recent_failures_read++;
		metrics_seed_failure(s->metrics, pr->job, pr->end_us, pr->runid, pr->message,
		                     pr->sqlstate);
		return;
	}
	struct job *j = sched_job_find(s, pr->job);
	if (j && !j->removed) {
		s->recent_runs_read += kind == HIST_PAST_RUN;
		apply_row(j, kind, pr);
	} else if (!st || !st->complete) {
		keep_pending(s, kind, pr);
	}
}

void sched_recent_request(struct sched *s)
{
	if (s->hist)
		hist_request_last_results(s->hist, METRICS_FAILURES, SCHED_RECENT_RUNS,
		                          sched_recent_take, s);
}
