/* Fires claimed before their instant (sched_priv.h, cluster.h).
 *
 * With several instances every scheduled fire is claimed before it runs. Claimed at its
 * instant, a fire waited a round trip to the history database, and the fires of a busy
 * second waited for the claims of the fires before them (one statement of 1,000 claims
 * took 10 to 15 ms on a 2-core machine). So a job's timer wakes PRECLAIM_LEAD_US before
 * the instant, makes the fire's run and asks for its claim then (RUN_PRECLAIMING, held in
 * job.pre); at the instant the run is taken from there, its claim made. The ask and its answer
 * are sched.c's, beside the claims made at the instant.
 *
 * Only a granted claim is kept: an answer that the fire is another instance's, or that the
 * job runs on another instance, or that no claim could be made, may no longer hold at the
 * instant, so the run asks again then, as it would have without this. A granted claim
 * holds the job's cluster lock (cluster.h), which the run releases when it ends or is
 * dropped (the job was paused or removed, its fire skipped). A run whose answer is still to
 * come at its instant waits for it if it is admitted at once; a fire that waits for something
 * else first (an upstream, the job's run) gives that claim up and asks again once admitted.
 * A job whose run is under way when its timer wakes is not claimed early: its overlap
 * policy decides the fire at the instant, and only a fire that runs is claimed, as before. A
 * stop gives back what it claimed for instants it will not serve (the rows deleted), so
 * another instance claims them. An instance that dies in the PRECLAIM_LEAD_US before an
 * instant it claimed leaves a claim no run serves, as one that dies between a claim and its
 * run's start does: the instance that finds it dead (or its own next process) serves it
 * (cluster_serve_unserved, sql_reap). */
#include <stdio.h>

#include "log.h"

#include "sched_priv.h"

int64_t sched_preclaim_lead_us(const struct job *j, int64_t now_us)
{
	/* once the early wake-up is due, the timer waits for the instant itself: whatever the
	 * claim's fate, J wakes early once per fire */
	if ((j->pre && j->pre->scheduled_us == j->next_fire * 1000000) ||
	    j->next_fire * 1000000 - PRECLAIM_LEAD_US <= now_us)
		return 0;
	return PRECLAIM_LEAD_US;
}

struct run *sched_preclaim_take(struct job *j, int64_t scheduled_us, const char *trigger)
{
	struct run *r = j->pre;
	if (!r || r->scheduled_us != scheduled_us)
		return sched_run_new(j, scheduled_us, trigger);
	r->trigger = trigger;
	r->fired_us = sched_now_us(j->s);
	if (r->state == RUN_PRECLAIMED)
		sched_run_to(r, RUN_DUE);
	return r;
}

void sched_preclaim_fold(struct job *j, int64_t instant, const char *why)
{
	struct run *r = j->pre;
	if (!r || r->scheduled_us != instant * 1000000)
		return;
	/* with other instances live, one of them may have served the fire while this process
	 * missed it (it took the claim over: cluster_serve_leased, or a dead verdict), so the skip
	 * is written only if the fire's claim is still, or again, this instance's */
	if (r->adm != ADMIT_NONE)
		sched_skip_claimed(r, why, true);
	sched_run_free(&j->pre); /* its lock released, or the claim's answer forgotten */
}

void sched_preclaim_stale(struct job *j)
{
	if (j->pre->scheduled_us > j->last_fire * 1000000 &&
	    j->pre->scheduled_us != j->next_fire * 1000000)
		sched_run_free(&j->pre);
}

void sched_preclaim_give_back(struct sched *s)
{
	bool any = false;

	for (struct job *j = s->jobs; j; j = j->next) {
		any = any ||
		      (j->pre && (j->pre->state == RUN_PRECLAIMING || j->pre->adm != ADMIT_NONE));
		sched_run_free(&j->pre);
	}
	if (any)
		admit_give_back(s->admit);
}
