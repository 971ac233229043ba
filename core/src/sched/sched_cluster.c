/* The scheduler's side of several instances beyond a run's own (admit.h): admission's hooks,
 * the cluster and its pending work set, and runs that wait for another instance's run of
 * their job to end (overlap queue and replace). A run's marks and pending work are
 * sched_state.c's; what the other instances make happen here (work taken over, a run ended or
 * to cancel there) is sched_input.c's. */
#include "admit.h"
#include "log.h"
#include "sched.h"
#include "sched_priv.h"

/* admit_hooks.claiming_again: the runs under way are each the active run of its job
 * (running or ending). */
void sched_claiming_again(void *arg)
{
	struct sched *s = arg;
	for (struct job *j = s->jobs; j; j = j->next)
		if (j->active)
			admit_claim_again(s->admit, &j->active->adm, j->name);
}

int64_t sched_admit_now_us(void *arg)
{
	return sched_now_us(arg);
}

bool sched_admit_record(void *arg, const char *job, enum run_trigger trigger, int64_t scheduled_us,
                        const char *message)
{
	struct job *j = sched_job_find(arg, job);
	if (!j)
		return false;
	struct run *r = sched_run_new(j, scheduled_us, trigger);
	if (r)
		sched_record(&r, SCHED_SKIPPED, message);
	return true;
}

void sched_set_cluster(struct sched *s, struct cluster *c)
{
	s->cluster = c;
	admit_set_cluster(s->admit, c);
}

void sched_set_coord(struct sched *s, struct coord *co)
{
	s->coord = co;
	admit_set_coord(s->admit, co);
}

struct coord *sched_coord(const struct sched *s)
{
	return s->coord;
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

bool sched_cluster_busy(struct run *r, const char *why)
{
	struct job *j = r->job;
	bool notify = r->trigger == TRIGGER_NOTIFY;
	if (j->overlap == OVERLAP_SKIP && !notify)
		return false;
	/* its instance announces the end (cluster.c's unlock), or dies (coord_reaped) */
	sched_run_to(r, RUN_CLUSTER_WAIT);
	log_job(LOG_LVL_INFO, j->name, "%s; waiting for it to end (%s)", why,
	        j->overlap == OVERLAP_QUEUE     ? "overlap = queue"
	        : j->overlap == OVERLAP_REPLACE ? "overlap = replace"
	                                        : "notifications are never skipped");
	if (j->overlap == OVERLAP_REPLACE)
		admit_cancel_other(j->s->admit, j->name);
	return true;
}
