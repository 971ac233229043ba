/* The scheduler seen from outside, read only (sched.h's view API): what the status document
 * (ops/status.c) shows of the scheduler and of each job, so that nothing above sched/ reads
 * sched_priv.h. */
#include <errno.h>

#include "job_kind.h"
#include "sched.h"
#include "sched_fresh_priv.h"
#include "sched_priv.h"

void sched_view(const struct sched *s, struct sched_view *out)
{
	*out = (struct sched_view){
	    .now_us = sched_now_us(s),
	    .cfg = s->cfg,
	    .plugins = s->plugins,
	    .draining = s->draining,
	    .max_running = s->max_running,
	    .running = sched_running(s),
	    .queued = sched_queued(s),
	};
}

int sched_job_view(struct sched *s, const char *name, int64_t now_us, struct sched_job_view *out)
{
	const struct job *j = sched_job_find(s, name);
	if (!j)
		return -ENOENT;
	const struct run *a = j->active;
	const struct job_last *l = j->last;
	*out = (struct sched_job_view){
	    .name = j->conf->name,
	    .plugin = j->conf->plugin,
	    .kind = j->conf->kind,
	    .database = j->conf->database,
	    .schedule = j->conf->schedule,
	    .conf = j->removed ? NULL : j->conf,
	    .enabled = j->conf->enabled,
	    .paused = j->paused,
	    .removed = j->removed,
	    .parked = j->graph && j->graph->parked,
	    .notify_pending = j->notify_pending,
	    .next_fire = j->next_fire,
	    .run.has = a != NULL,
	    .run.started = a && (a->state == RUN_RUNNING || a->state == RUN_ENDING),
	    .run.retry_wait = a && a->state == RUN_RETRY_WAIT,
	    .run.cluster_wait = a && a->state == RUN_CLUSTER_WAIT,
	    .run.start_us = a ? a->start_us : 0,
	    .run.backend_pid = a ? a->backend_pid : 0,
	    .run.trigger = a ? run_trigger_names[a->trigger] : NULL,
	    .run.attempt = a ? a->attempt : 0,
	    .retry_armed = j->more && j->more->retry && clock_armed(&j->more->retry->ev),
	    .retry_at_us = j->more && j->more->retry ? j->more->retry->at_us : 0,
	    .last.status = l && l->status ? l->status : "",
	    .last.message = l ? l->message : NULL,
	    .last.sqlstate = l ? l->sqlstate : "",
	    .last.trigger = l ? l->trigger : "",
	    .last.attempt = l ? l->attempt : 0,
	    .last.start_us = l ? l->start_us : 0,
	    .last.end_us = l ? l->end_us : 0,
	    .last_success_us = l ? l->success_us : 0,
	    .consecutive = j->consecutive,
	    .last.runid = l ? l->runid : 0,
	    .recent = j->recent,
	};
	fresh_view(j, now_us, &out->fresh);
	out->n_waiting = sched_waiting_of(j, out->waiting);
	return 0;
}

int64_t sched_job_next(struct sched *s, const char *name)
{
	struct job *j = sched_job_find(s, name);
	return j && sched_job_schedulable(j) ? j->next_fire : CRON_NEVER;
}
