/* The scheduler's part of coordination beyond the claims (sched.h, coord.h): pending work
 * written down while it waits and taken over from dead instances, runs waiting for another
 * instance's run of their job to end (overlap queue and replace), cancels asked by another
 * instance, and the cluster's paused set. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "coord.h"
#include "exec.h"
#include "history.h"
#include "log.h"
#include "sched.h"
#include "sched_priv.h"
#include "sqlscan.h"

/* R's start mark is written (OK), or R must send nothing (WHY): cluster_note_start */
static void on_marked(void *arg, bool ok, const char *why)
{
	struct run *r = arg;
	struct sched *s = r->job->s;
	r->mark_wait = false;
	r->unmarked = !ok; /* its end logs and records WHY as a skip (sched.c: run_end) */
	if (r->er)         /* else it ended already */
		s->ex.release(s->ex.ctx, r->er, ok, why);
}

/* R is about to be handed to the executor: with several instances its start is marked where
 * a takeover looks (cluster.h: cluster_note_start), and R's statement waits for that mark
 * (spec.hold). Marked as the run begins, not as it gets its backend, so that the marks of a
 * burst go in one statement while the runs wait for their connections, and a run whose mark
 * is written by then is sent as it would be without it. Returns 1 (R waits: spec.hold), 0
 * (nothing to wait for), -1 (the mark cannot be noted: R must not run). */
int sched_mark_start(struct run *r)
{
	struct sched *s = r->job->s;
	if (!cluster_marks_runs(s->cluster) || !s->hist || !r->hist_key || !s->ex.release)
		return 0;
	bool fire = r->attempt == 1 && r->scheduled_us > 0 &&
	            (strcmp(r->trigger, "schedule") == 0 || strcmp(r->trigger, "catchup") == 0);
	char key[96], once[64];
	hist_run_key(s->hist, r->hist_key, key, sizeof(key));
	/* a command whose commit a takeover cannot ask about: its class, for the history */
	sqlscan_once_under_faults(r->job->command, once, sizeof(once));
	const char *fenced = strncmp(once, "fenced: ", 8) == 0 ? once + 8 : NULL;
	int w =
	    cluster_note_start(s->cluster, key, r->job->name, fire ? r->scheduled_us / 1000000 : 0,
	                       r->job_locked, fenced, on_marked, r);
	r->mark_wait = w == 1;
	return w;
}

/* exec_run_spec.on_pid: R has its backend */
void sched_on_pid(void *arg, int pid)
{
	struct run *r = arg;
	struct sched *s = r->job->s;
	r->backend_pid = pid;
	r->backend_at_us = sched_now_us(s);
	if (s->hist)
		hist_set_pid(s->hist, r->hist_key, pid);
	log_job(LOG_LVL_DEBUG, r->job->name, "running on backend %d", pid);
}

/* R's transaction id is written (OK): it may COMMIT; or it must roll back (WHY), and is
 * recorded skipped, never retried here, when another instance found this one dead */
static void on_xid_marked(void *arg, bool ok, const char *why)
{
	struct run *r = arg;
	struct sched *s = r->job->s;
	if (!ok && why && strcmp(why, CLUSTER_NOT_COMMITTED_DEAD) == 0)
		r->unmarked = true; /* sched.c: run_end */
	if (r->er)                  /* else it ended already */
		s->ex.release(s->ex.ctx, r->er, ok, why);
}

/* exec_run_spec.on_xid: run R's transaction id, for whoever closes it if this process dies
 * (cluster.h: cluster_note_xact); in a transaction pgcrond opened (COMMIT_WAITS), its COMMIT
 * waits for the id to be written */
void sched_on_xid(void *arg, const char *xid, const char *server, bool commit_waits)
{
	struct run *r = arg;
	struct sched *s = r->job->s;
	char key[96];
	int w = 0;
	if (s->hist && r->hist_key) {
		hist_run_key(s->hist, r->hist_key, key, sizeof(key));
		w = cluster_note_xact(s->cluster, key, xid, server,
		                      commit_waits ? on_xid_marked : NULL, r);
	}
	if (commit_waits && w != 1)
		on_xid_marked(r, w == 0,
		              "its transaction id could not be noted for the history database "
		              "(out of memory, or too many marks waiting to be written)");
}

void sched_set_coord(struct sched *s, struct coord *co)
{
	s->coord = co;
}

struct coord *sched_coord(const struct sched *s)
{
	return s->coord;
}

void sched_work_note(struct run *r, const char *kind, int64_t due_us)
{
	struct sched *s = r->job->s;
	if (!s->coord)
		return;
	struct coord_work w = {.job = r->job->name,
	                       .kind = kind,
	                       .graph_run = r->graph_run,
	                       .scheduled_us = r->scheduled_us,
	                       .attempt = r->attempt,
	                       .due_us = due_us,
	                       .payloads = r->payloads,
	                       .n_payloads = r->n_payloads};
	coord_note(s->coord, &w);
	snprintf(r->noted, sizeof(r->noted), "%s", kind);
}

void sched_work_gone(struct run *r)
{
	if (!r->noted[0])
		return;
	coord_done(r->job->s->coord, r->job->name, r->noted);
	r->noted[0] = '\0';
}

void sched_job_owes(struct job *j, const char *graph_run)
{
	if (!j->s->coord)
		return;
	struct coord_work w = {.job = j->name, .kind = "upstream", .graph_run = graph_run};
	coord_note(j->s->coord, &w);
	j->up_noted = true;
}

void sched_job_owes_not(struct job *j)
{
	if (!j->up_noted)
		return;
	coord_done(j->s->coord, j->name, "upstream");
	j->up_noted = false;
}

void sched_take_work(struct sched *s, const struct coord_work *w)
{
	struct job *j = sched_job_find(s, w->job);
	if (!j || !j->conf || j->removed || s->draining) {
		log_info("cluster: pending %s work of job %s taken over from a dead instance is "
		         "dropped: %s",
		         w->kind, w->job,
		         s->draining ? "this instance is stopping"
		                     : "the job is not configured here");
		return;
	}
	bool notify = strcmp(w->kind, "notify") == 0;
	const char *trigger = notify                          ? "notify"
	                      : strcmp(w->kind, "retry") == 0 ? "retry"
	                                                      : "upstream";
	struct run *r =
	    sched_run_new(j, strcmp(trigger, "retry") == 0 ? w->scheduled_us : 0, trigger);
	if (!r)
		return;
	r->attempt = w->attempt > 0 ? w->attempt : 1;
	r->waited = !notify;
	/* taken with a DELETE that hands each row to one instance: that is its claim */
	r->claimed = true;
	if (w->graph_run && !(r->graph_run = strdup(w->graph_run)))
		goto oom;
	if (w->n_payloads) {
		if (!(r->payloads = calloc(w->n_payloads, sizeof(*r->payloads))))
			goto oom;
		for (; r->n_payloads < w->n_payloads; r->n_payloads++)
			if (!(r->payloads[r->n_payloads] = strdup(w->payloads[r->n_payloads])))
				goto oom;
	}
	log_job(LOG_LVL_NOTICE, j->name, "taking over a %s run a dead instance owed (attempt %d)",
	        trigger, r->attempt);
	if (notify && j->active) {
		if (!j->notify_wait) {
			sched_run_to(r, RUN_NOTIFY_WAIT);
			return;
		}
		/* one run serves them all */
		struct run *q = j->notify_wait;
		char **all = realloc(q->payloads, (q->n_payloads + r->n_payloads) * sizeof(*all));
		if (all) {
			memcpy(all + q->n_payloads, r->payloads, r->n_payloads * sizeof(*all));
			q->payloads = all;
			q->n_payloads += r->n_payloads;
			r->n_payloads = 0;
		}
		q->claimed = true;
		sched_run_free(&r);
		return;
	}
	sched_fire_run(r);
	return;
oom:
	log_job(LOG_LVL_ERROR, j->name, "out of memory taking over a dead instance's %s run",
	        trigger);
	sched_run_free(&r);
}

static void ended(struct job *j)
{
	struct run *r = j->active;
	if (!r || r->state != RUN_CLUSTER_WAIT)
		return;
	sched_run_to(r, RUN_DUE);
	log_job(LOG_LVL_DEBUG, j->name, "the run on another instance ended; claiming again");
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

void sched_cluster_cancel(struct sched *s, const char *job, const char *by)
{
	struct job *j = sched_job_find(s, job);
	struct run *r = j ? j->active : NULL;
	if (r && r->state == RUN_RUNNING && !r->er && r->hc) {
		char why[256];
		snprintf(why, sizeof(why),
		         "cancelled: replaced by a newer run on instance %s (overlap = replace)",
		         by);
		sched_http_cancel(r, why);
		return;
	}
	if (!r || r->state != RUN_RUNNING || !r->er) {
		log_info("cluster: instance \"%s\" asked to cancel the run of job %s, which is not "
		         "running here any more",
		         by, job);
		return;
	}
	char msg[256];
	snprintf(msg, sizeof(msg),
	         "cancelled: replaced by a newer run on instance %s (overlap = replace)", by);
	log_job(LOG_LVL_NOTICE, j->name,
	        "instance \"%s\" replaces this run; cancelling it (overlap = replace)", by);
	exec_cancel(r->er, msg);
}

bool sched_cluster_busy(struct run *r, const char *why)
{
	struct job *j = r->job;
	bool notify = strcmp(r->trigger, "notify") == 0;
	if (j->overlap == OVERLAP_SKIP && !notify)
		return false;
	/* its instance announces the end (cluster.c's unlock), or dies (coord_reaped) */
	sched_run_to(r, RUN_CLUSTER_WAIT);
	log_job(LOG_LVL_INFO, j->name, "%s; waiting for it to end (%s)", why,
	        j->overlap == OVERLAP_QUEUE     ? "overlap = queue"
	        : j->overlap == OVERLAP_REPLACE ? "overlap = replace"
	                                        : "notifications are never skipped");
	if (j->overlap == OVERLAP_REPLACE)
		coord_cancel_other(j->s->coord, j->name);
	return true;
}

const char *sched_work_keep(struct run *r, const char *why)
{
	if (!r->noted[0] || !r->job->s->coord)
		return why;
	r->noted[0] = '\0'; /* the row stays: sched_run_free must not delete it */
	return "pgcrond was shutting down; handed over to the other instances (or its next "
	       "start) in pgcrond.pending_work";
}
