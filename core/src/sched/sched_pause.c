/* Pause and resume (sched.h), manual runs whose end a waiter hears, and a job's waiting runs
 * dropped: the scheduler's part of the control channel (ctl.h). Split from sched.c, whose timers it
 * drives through the sched_job_* helpers of sched_priv.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sched_flow_priv.h"
#include "sched_fresh_priv.h"
#include "array.h"
#include "history.h"
#include "log.h"
#include "sched.h"
#include "sched_priv.h"

int sched_trigger_wait(struct sched *s, const char *name, bool force, struct sched_waiter *w)
{
	int rc = sched_trigger_check(s, name, force);
	if (rc < 0)
		return rc;
	struct run *r = sched_run_new(sched_job_find(s, name), 0, TRIGGER_MANUAL);
	if (!r)
		return -ENOMEM;
	r->waiter = w;
	sched_fire_run(r);
	return 0;
}

/* ---- pause and resume ----------------------------------------------------------------- */

static bool name_in(const char *name, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

bool sched_is_paused(const struct sched *s, const char *name)
{
	return name_in(name, (const char *const *)s->paused, s->n_paused);
}

size_t sched_paused_names(const struct sched *s, const char *const **names)
{
	*names = (const char *const *)s->paused;
	return s->n_paused;
}

static int paused_add(struct sched *s, const char *name)
{
	if (sched_is_paused(s, name))
		return 0;
	if (array_grow(&s->paused, s->n_paused, &s->cap_paused, sizeof(*s->paused), 8) < 0 ||
	    !(s->paused[s->n_paused] = strdup(name)))
		return -ENOMEM;
	s->n_paused++;
	return 0;
}

int sched_set_paused(struct sched *s, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = paused_add(s, names[i]);
		if (rc < 0)
			return rc;
		struct job *j = sched_job_find(s, names[i]);
		if (j) {
			j->paused = true;
			sched_job_disarm(j);
		}
	}
	return 0;
}

int sched_pause(struct sched *s, const char *name)
{
	struct job *j = sched_job_find(s, name);
	if (!j || j->removed)
		return -ENOENT;
	if (j->paused)
		return -EALREADY;
	/* (next_fire stays: resume serves what came due meanwhile) */
	if (sched_set_paused(s, &name, 1) < 0)
		return -ENOMEM;
	sched_job_log(j, LOG_LVL_NOTICE, "paused; a run under way goes on, no new run starts");
	return 0;
}

int sched_resume(struct sched *s, const char *name)
{
	struct job *j = sched_job_find(s, name);
	if (!j || j->removed)
		return -ENOENT;
	if (!j->paused)
		return -EALREADY;
	for (size_t i = 0; i < s->n_paused; i++)
		if (strcmp(s->paused[i], name) == 0) {
			free(s->paused[i]);
			s->paused[i] = s->paused[--s->n_paused];
			break;
		}
	j->paused = false;
	sched_job_log(j, LOG_LVL_NOTICE, "resumed");
	if (s->draining)
		return 0;
	int64_t now = sched_now_us(s);
	struct run *a = j->active, *n = sched_job_notified(j), *p = a ? NULL : n ? n : j->pending;
	if (a && a->state == RUN_RETRY_WAIT && !clock_armed(&j->more->retry->ev)) {
		p = a; /* its retry came due while paused */
		p->queue_at_us = now;
	}
	bool served = p;
	if (p) {
		sched_run_to(p, RUN_DUE);
		sched_run_admit(p);
	}
	/* Fires that came due while paused (the timer's, or held ones: catch-up, upstream,
	 * notifications) are handled once, by the catch-up policy, like fires missed while
	 * the daemon was down. */
	bool due =
	    sched_job_schedulable(j) && j->next_fire != CRON_NEVER && j->next_fire * 1000000 <= now;
	bool owed = j->paused_owed || due;
	j->paused_owed = false;
	fresh_replan(j); /* a freshness run that came due while paused */
	sched_job_owes_not(j);
	int64_t latest = now / 1000000;
	if (due) {
		int64_t l = flow_catchup_instant(&j->conf->cron, sched_job_tz(j), j->next_fire,
		                                 now / 1000000, NULL);
		latest = l == CRON_NEVER ? j->next_fire : l;
		j->last_fire = latest;
		sched_job_schedule(j, latest);
	} else {
		sched_job_arm(j, sched_now_us(s)); /* after the runs it admitted */
	}
	if (owed && !served) {
		if (!j->removed && j->conf->catchup == CATCHUP_ONCE) {
			sched_job_log(j, LOG_LVL_NOTICE,
			              "fires came due while paused; running once (catchup = once)");
			sched_job_fire(j, latest * 1000000, TRIGGER_CATCHUP);
		} else {
			sched_job_log(j, LOG_LVL_NOTICE,
			              "fires came due while paused; none runs (catchup = skip)");
			struct run *r = sched_run_new(j, latest * 1000000, TRIGGER_CATCHUP);
			if (r)
				sched_record(
				    &r, SCHED_SKIPPED,
				    "fires came due while the job was paused; catchup = skip");
		}
	}
	sched_admit_queued(s);
	return 0;
}

bool sched_follow_paused(struct sched *s, const char *const *names, size_t n)
{
	bool changed = false;
	for (size_t i = 0; i < n; i++) {
		if (sched_is_paused(s, names[i]))
			continue;
		struct job *j = sched_job_find(s, names[i]);
		if (j && !j->removed) {
			if (sched_pause(s, names[i]) == 0) {
				log_job(LOG_LVL_NOTICE, names[i], "paused on every instance");
				changed = true;
			}
		} else if (sched_set_paused(s, &names[i], 1) == 0) {
			changed = true; /* paused when it appears here */
		}
	}
	for (size_t i = 0; i < s->n_paused;) {
		if (name_in(s->paused[i], names, n)) {
			i++;
			continue;
		}
		struct job *j = sched_job_find(s, s->paused[i]);
		changed = true;
		if (j && !j->removed && j->paused) {
			char *name = strdup(s->paused[i]);
			int rc = name ? sched_resume(s, name) : -ENOMEM;
			if (rc == 0)
				log_job(LOG_LVL_NOTICE, name, "resumed on every instance");
			free(name);
			if (rc == 0)
				continue; /* sched_resume took it out of the list */
		}
		free(s->paused[i]);
		s->paused[i] = s->paused[--s->n_paused];
	}
	return changed;
}

/* ---- the backlog ---------------------------------------------------------------------- */

int sched_job_drop_waiting(struct job *j, const char *why)
{
	int n = 0;
	/* the active run before it started (a slot, its retry, its claim, another instance) */
	struct run **waiting[] = {&j->pending, j->graph ? &j->graph->parked : NULL,
	                          j->more ? &j->more->notify_wait : NULL, &j->active};
	for (size_t w = 0; w < sizeof(waiting) / sizeof(waiting[0]); w++) {
		struct run *r = waiting[w] ? *waiting[w] : NULL;
		if (!r || r->state == RUN_RUNNING || r->state == RUN_ENDING)
			continue;
		if (r == j->active)
			flow_retry_disarm(j);
		sched_record_skipped(waiting[w], why);
		n++;
	}
	return n;
}

int sched_drop(struct sched *s, const char *name, const char *why)
{
	struct job *j = sched_job_find(s, name);
	if (!j)
		return -ENOENT;
	int n = sched_job_drop_waiting(j, why);
	return n + sched_run_withdraw(j->active, why);
}

bool sched_run_withdraw(struct run *r, const char *why)
{
	struct sched *s = r ? r->job->s : NULL;
	if (!r || r->state != RUN_RUNNING ||
	    !(r->er ? !r->backend_pid && s->ex.withdraw && s->ex.withdraw(r->er, why)
	            : sched_http_unsent(r) && sched_http_cancel(r, why)))
		return false;
	return r->unmarked = true; /* it ends skipped with its start row (sched.c, run_end) */
}
