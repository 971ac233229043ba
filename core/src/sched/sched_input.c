/* What makes a job fire besides its timer, or stops its run: notifications (triggers.c), a
 * listener's catch-up after a reconnect, manual triggers (ctl.c), a dead instance's runs and
 * pending work taken over, and another instance's run of the job: one a run here waits for,
 * that ended or replaces this one's, a graph run's start or success (cluster.c, coord.h).
 * Split from sched.c; it goes through the scheduler's inside (sched_priv.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"
#include "cron.h"
#include "exec.h"
#include "job_kind.h"
#include "log.h"
#include "retry.h"
#include "sched.h"
#include "sched_priv.h"
#include "text.h"

/* Whether a run of J's instant US (its claim may still be asked for), or a catch-up run of
 * J at or after US, is under way or was started here: one outage is one catch-up run
 * (catchup = once), whether the start's catch-up or the unserved fire comes first (they are
 * asked on two sessions: judged by the history's rows alone, at two moments with another
 * instance's row written between them, a fire claimed by a killed process could be served
 * by neither). */
static bool served_here(const struct job *j, int64_t us)
{
	const struct run *mine[] = {j->active, j->pending, j->graph ? j->graph->parked : NULL};
	if (j->last && j->last->catchup_s >= us / 1000000)
		return true;
	for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++)
		if (mine[i] &&
		    (mine[i]->scheduled_us == us ||
		     (mine[i]->scheduled_us >= us && mine[i]->trigger == TRIGGER_CATCHUP)))
			return true;
	return false;
}

/* A scheduled fire that instance O->dead claimed and never ran: its claim is gone, so this
 * instance claims it like any fire; the job's catch-up policy decides, as for a fire missed
 * while the daemon was down. */
static void serve_unserved(struct job *j, const struct cluster_orphan *o)
{
	char at[CRON_TIME_BUFSZ], why[240];
	cron_time_format(o->scheduled_us / 1000000, at, sizeof(at)); /* always fits */
	if (o->silent)
		snprintf(why, sizeof(why),
		         "the fire at %s was claimed by instance %s, which has neither started it "
		         "nor sent a heartbeat since (frozen, cut off or stalled)",
		         at, o->dead);
	else
		snprintf(why, sizeof(why),
		         "the fire at %s was claimed by instance %s, which %s before running it",
		         at, o->dead,
		         (o->stopped && !o->died) || strcmp(o->dead, j->s->instance) == 0
		             ? "was stopped"
		             : "died");
	if (!j->conf->enabled)
		return;
	if (served_here(j, o->scheduled_us)) {
		sched_job_log(j, LOG_LVL_INFO, "%s; a run here serves it", why);
		return;
	}
	/* a stop's NOTIFY comes about at the instant: this process may not have fired it yet (its
	 * timer claims it, now that the claim is gone), and a catch-up beside it would be a
	 * second (a silent instance's fire is seconds old, but this loop may be late too) */
	if ((o->stopped || o->silent) && j->next_fire != CRON_NEVER &&
	    j->next_fire <= o->scheduled_us / 1000000)
		return;
	if (j->conf->catchup == CATCHUP_ONCE) {
		struct run *r = sched_run_new(j, o->scheduled_us, TRIGGER_CATCHUP);
		if (!r)
			return;
		sched_job_log(j, LOG_LVL_NOTICE, "%s; running it now (catchup = once)", why);
		sched_fire_run(r);
		return;
	}
	char msg[280];
	snprintf(msg, sizeof(msg), "%s; catchup = skip", why);
	sched_job_log(j, LOG_LVL_NOTICE, "%s", msg);
	struct run *r = sched_run_new(j, o->scheduled_us, TRIGGER_SCHEDULE);
	if (r)
		sched_skip_claimed(&r, msg, true);
}

/* A dead instance's run closed by a reap that answered once this instance began to stop: its
 * retry goes back to the dead instance's pending work (cluster_lock.c reap_done, coord_note),
 * which the others take when this instance's stop wakes them. */
static void hand_over_retry(struct job *j, const struct cluster_orphan *o)
{
	struct coord_work w = {.job = j->conf->name,
	                       .kind = TRIGGER_RETRY,
	                       .graph_run = o->graph_run,
	                       .scheduled_us = o->scheduled_us,
	                       .attempt = o->attempt + 1};
	sched_job_log(j, LOG_LVL_NOTICE,
	              "instance %s died while running it (attempt %d); this instance is stopping: "
	              "its retry (attempt %d of %d) is left to the other instances",
	              o->dead, o->attempt, w.attempt, j->conf->retries + 1);
	admit_work_note(j->s->admit, &w, o->dead);
}

void sched_takeover(struct sched *s, const struct cluster_orphan *o)
{
	struct job *j = sched_job_find(s, o->job_name);
	if (o->unserved) {
		if (j && !j->removed && !s->draining)
			serve_unserved(j, o);
		else
			log_warning(
			    "cluster: a fire of job %s that instance %s claimed and never ran "
			    "was taken over here and is not served: %s",
			    o->job_name, o->dead,
			    s->draining ? "this instance is stopping"
			                : "the job is not configured here");
		return;
	}
	if (!j || j->removed) {
		log_info("cluster: instance %s died running job %s, which is not configured here; "
		         "not retried here",
		         o->dead, o->job_name);
		return;
	}
	/* the dead instance's connection broke: as transient as a failure gets */
	if (!retry_should(j->conf, o->attempt, "08006", false)) {
		sched_job_log(
		    j, LOG_LVL_NOTICE,
		    "instance %s died while running it (attempt %d); not retried (retries = %d)",
		    o->dead, o->attempt, j->conf->retries);
		return;
	}
	if (s->draining) {
		hand_over_retry(j, o);
		return;
	}
	struct run *r = sched_run_new(j, o->scheduled_us, TRIGGER_RETRY);
	if (!r)
		return;
	r->attempt = o->attempt + 1;
	r->waited = true;
	if (o->graph_run && !(r->graph_run = strdup(o->graph_run))) {
		sched_run_free(&r);
		return;
	}
	sched_job_log(
	    j, LOG_LVL_NOTICE,
	    "instance %s died while running it (attempt %d); retrying here (attempt %d of %d)",
	    o->dead, o->attempt, r->attempt, j->conf->retries + 1);
	sched_fire_run(r);
}

void sched_take_work(struct sched *s, const struct coord_work *w)
{
	struct job *j = sched_job_find(s, w->job);
	if (!j || j->removed || s->draining) {
		log_info("cluster: pending %s work of job %s taken over from a dead instance is "
		         "dropped: %s",
		         run_trigger_names[w->kind], w->job,
		         s->draining ? "this instance is stopping"
		                     : "the job is not configured here");
		return;
	}
	bool notify = w->kind == TRIGGER_NOTIFY;
	struct run *r = sched_run_new(j, w->kind == TRIGGER_RETRY ? w->scheduled_us : 0, w->kind);
	if (!r)
		return;
	r->attempt = w->attempt > 0 ? w->attempt : 1;
	r->waited = !notify;
	/* taken with a DELETE that hands each row to one instance: that is its claim */
	r->adm = ADMIT_FREE;
	if (w->graph_run && !(r->graph_run = strdup(w->graph_run)))
		goto oom;
	if (w->n_payloads) {
		if (!(r->payloads = calloc(w->n_payloads, sizeof(*r->payloads))))
			goto oom;
		for (; r->n_payloads < w->n_payloads; r->n_payloads++)
			if (!(r->payloads[r->n_payloads] = strdup(w->payloads[r->n_payloads])))
				goto oom;
	}
	sched_job_log(j, LOG_LVL_NOTICE, "taking over a %s run a dead instance owed (attempt %d)",
	              run_trigger_names[w->kind], r->attempt);
	if (notify && j->active) {
		if (!sched_job_more(j))
			goto oom;
		if (!j->more->notify_wait) {
			sched_run_to(r, RUN_NOTIFY_WAIT);
			return;
		}
		/* one run serves them all */
		struct run *q = j->more->notify_wait;
		char **all = realloc(q->payloads, (q->n_payloads + r->n_payloads) * sizeof(*all));
		if (all) {
			memcpy(all + q->n_payloads, r->payloads, r->n_payloads * sizeof(*all));
			q->payloads = all;
			q->n_payloads += r->n_payloads;
			r->n_payloads = 0;
		}
		q->adm = ADMIT_FREE;
		sched_run_free(&r);
		return;
	}
	sched_fire_run(r);
	return;
oom:
	sched_job_log(j, LOG_LVL_ERROR, "out of memory taking over a dead instance's %s run",
	              run_trigger_names[w->kind]);
	sched_run_free(&r);
}

static void ended(struct job *j)
{
	struct run *r = j->active;
	if (!r || r->state != RUN_CLUSTER_WAIT)
		return;
	sched_run_to(r, RUN_DUE);
	sched_job_log(j, LOG_LVL_DEBUG, "the run on another instance ended; claiming again");
	sched_rowless_row(r); /* its message may say the due time that changes here */
	r->queue_at_us = sched_now_us(j->s);
	sched_run_admit(r);
}

void sched_cluster_ended(struct sched *s, const char *job)
{
	if (s->draining)
		return;
	if (job) {
		struct job *j = sched_job_find(s, job);
		if (j)
			ended(j);
		return;
	}
	for (struct job *j = s->jobs; j; j = j->next)
		ended(j);
}

void sched_cluster_cancel(struct sched *s, const char *job, const char *by)
{
	struct job *j = sched_job_find(s, job);
	struct run *r = j ? j->active : NULL;
	char why[256];
	snprintf(why, sizeof(why),
	         "cancelled: replaced by a newer run on instance %s (overlap = replace)", by);
	if (r && r->state == RUN_RUNNING && !r->er && (r->hc || r->mark_wait)) {
		sched_http_cancel(r, why);
		return;
	}
	if (!r || r->state != RUN_RUNNING || !r->er) {
		log_info("cluster: instance \"%s\" asked to cancel the run of job %s, which is not "
		         "running here any more",
		         by, job);
		return;
	}
	sched_job_log(j, LOG_LVL_NOTICE,
	              "instance \"%s\" replaces this run; cancelling it (overlap = replace)", by);
	exec_cancel(r->er, why);
}

void sched_cluster_graph(struct sched *s, const char *job, bool started)
{
	struct job *j = sched_job_find(s, job);
	if (!j || j->removed)
		return;
	if (started)
		j->start_seq = ++s->flow_seq;
	else
		j->success_seq = ++s->flow_seq;
}

void sched_notify_pending(struct sched *s, const char *name, bool pending)
{
	struct job *j = sched_job_find(s, name);
	if (j)
		j->notify_pending = pending;
}

/* Notifications are never skipped: while the job is busy they gather in one waiting run. */
int sched_notify_run(struct sched *s, const char *name, char **payloads, size_t n)
{
	struct job *j = s->draining ? NULL : sched_job_find(s, name);
	if (!j) {
		text_free_list(payloads, n);
		return s->draining ? -ESHUTDOWN : -ENOENT;
	}
	struct run *r = sched_job_notified(j);
	if (r) {
		char **all = realloc(r->payloads, (r->n_payloads + n + 1) * sizeof(*all));
		if (!all) {
			sched_job_log(j, LOG_LVL_ERROR, "out of memory; %zu payload(s) dropped", n);
			for (size_t i = 0; i < n; i++)
				free(payloads[i]);
		} else {
			if (n > 0) /* a full run after a reconnect brings none (PAYLOADS NULL) */
				memcpy(all + r->n_payloads, payloads, n * sizeof(*all));
			r->payloads = all;
			r->n_payloads += n;
		}
		free(payloads);
		sched_work_note(r, 0);
		return 0;
	}
	/* (a busy job's run waits in its job_more) */
	r = j->active && !sched_job_more(j) ? NULL : sched_run_new(j, 0, TRIGGER_NOTIFY);
	if (!r) {
		text_free_list(payloads, n);
		return -ENOMEM;
	}
	r->payloads = payloads;
	r->n_payloads = n;
	if (j->active) {
		sched_job_log(j, LOG_LVL_DEBUG,
		              "notified while busy; runs when the current run ends");
		sched_run_to(r, RUN_NOTIFY_WAIT);
		sched_work_note(r, 0);
		return 0;
	}
	sched_fire_run(r);
	return 0;
}

static bool upstream_in(const struct job *j, struct job *const *set, size_t n)
{
	for (size_t i = 0; j->graph && i < j->graph->n_ups; i++)
		for (size_t k = 0; k < n; k++)
			if (j->graph->ups[i] == set[k])
				return true;
	return false;
}

int sched_notify_catchup(struct sched *s, const char *const *names, size_t n)
{
	if (s->draining)
		return -ESHUTDOWN;
	struct job **set = calloc(n ? n : 1, sizeof(*set));
	if (!set)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		struct job *j = sched_job_find(s, names[i]);
		if (j && !j->removed)
			set[k++] = j;
	}
	/* decided for the whole set before anything starts: a run starting first must not make
	 * its downstream look like a root */
	for (size_t i = 0; i < k; i++)
		set[i]->reconnect_owed = upstream_in(set[i], set, k);
	int rc = 0;
	for (size_t i = 0; i < k; i++) {
		struct job *j = set[i];
		if (j->reconnect_owed) {
			sched_job_log(j, LOG_LVL_INFO,
			              "runs after its upstream jobs' catch-up runs");
			continue;
		}
		int r = sched_notify_run(s, j->conf->name, NULL, 0);
		if (r < 0 && rc == 0)
			rc = r;
	}
	free(set);
	return rc;
}

int sched_trigger_check(struct sched *s, const char *name, bool force)
{
	if (s->draining)
		return -ESHUTDOWN;
	struct job *j = sched_job_find(s, name);
	if (!j || j->removed)
		return -ENOENT;
	return !j->conf->enabled && !force ? -EPERM : 0;
}

int sched_trigger(struct sched *s, const char *name, enum run_trigger trigger, bool force)
{
	int rc = sched_trigger_check(s, name, force);
	if (rc < 0)
		return rc;
	struct job *j = sched_job_find(s, name);
	sched_job_fire(j, 0, trigger);
	return 0;
}
