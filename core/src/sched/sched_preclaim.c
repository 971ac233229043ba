/* Fires claimed before their instant (sched_priv.h, cluster.h).
 *
 * With several instances every scheduled fire is claimed before it runs. Claimed at its
 * instant, a fire waited a round trip to the history database, and the fires of a busy
 * second waited for the claims of the fires before them (one statement of 1,000 claims
 * took 10 to 15 ms on a 2-core machine). So a job's timer wakes PRECLAIM_LEAD_US before
 * the instant and asks for the claim then; at the instant the run finds it made.
 *
 * Only a granted claim is used: an answer that the fire is another instance's, or that the
 * job runs on another instance, or that no claim could be made, may no longer hold at the
 * instant, so the run asks again then, as it would have without this. A granted claim
 * holds the job's cluster lock (cluster.h); a fire that no run takes (the job was paused
 * or removed, or its previous run ended late) gives it back. A job whose run is under way
 * when its timer wakes is not claimed early: its overlap policy decides the fire at the
 * instant, and only a fire that runs is claimed, as before. A stop gives back what it claimed
 * for instants it will not serve (the rows deleted), so another instance claims them. An
 * instance that dies in the PRECLAIM_LEAD_US before an instant it claimed leaves a claim no
 * run serves, as one that dies between a claim and its run's start does: the instance that
 * finds it dead (or its own next process) serves it (cluster_serve_unserved, sql_reap). */
#include <stdlib.h>

#include "log.h"

#include "sched_priv.h"

enum pre_state { PRE_ASKED, PRE_GRANTED, PRE_OTHER };

/* A stop gives back the claims of instants at least this far ahead (an interval) */
#define GIVE_BACK_MARGIN "50 milliseconds"

struct preclaim {
	struct job *job;
	int64_t instant; /* Unix seconds: the fire claimed */
	enum pre_state state;
	struct run *waiter; /* the fire's run, waiting for the answer; NULL */
};

int64_t sched_preclaim_lead_us(const struct job *j, int64_t now_us)
{
	/* once the early wake-up is due, the timer waits for the instant itself: whatever the
	 * claim's fate, J wakes early once per fire */
	if (!j->s->cluster || cluster_lone(j->s->cluster) ||
	    (j->pre && j->pre->instant == j->next_fire) ||
	    j->next_fire * 1000000 - PRECLAIM_LEAD_US <= now_us)
		return 0;
	return PRECLAIM_LEAD_US;
}

/* The claim key of a scheduled fire at INSTANT (Unix seconds) into KEY. */
static bool pre_key(int64_t instant, char *key, size_t len)
{
	int64_t window = 0;
	return cluster_fire_key("schedule", instant * 1000000, NULL, 1, 0, key, len, &window) > 0;
}

/* The job lock a granted claim took goes back. */
static void pre_free(struct job *j)
{
	struct preclaim *p = j->pre;
	if (!p)
		return;
	if (p->state == PRE_ASKED)
		cluster_claim_forget(j->s->cluster, p);
	else if (p->state == PRE_GRANTED)
		cluster_release(j->s->cluster, j->name);
	free(p);
	j->pre = NULL;
}

/* Is a run of J still to take the claim of INSTANT (queued behind J's running run, or
 * parked until an upstream ends)? */
static bool pre_wanted(const struct job *j, int64_t instant)
{
	const struct run *later[] = {j->pending, j->parked, j->active};
	if (j->last_fire < instant)
		return true; /* not fired yet */
	for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++)
		if (later[i] && !later[i]->claimed && later[i]->state != RUN_CLAIMING &&
		    later[i]->scheduled_us == instant * 1000000)
			return true;
	return false;
}

static void on_preclaim(void *arg, enum cluster_verdict v, const char *why)
{
	struct preclaim *p = arg;
	struct job *j = p->job;
	struct run *r = p->waiter;

	p->state = v == CLUSTER_GRANTED ? PRE_GRANTED : PRE_OTHER;
	if (r) {
		/* the run came first and waits: the answer is its own, or it asks again */
		p->waiter = NULL;
		if (v == CLUSTER_GRANTED) {
			p->state = PRE_OTHER; /* the lock is the run's now */
			sched_claim_answer(r, v, why);
		} else {
			sched_run_to(r, RUN_DUE);
			sched_run_admit(r);
		}
		return;
	}
	if (!pre_wanted(j, p->instant))
		pre_free(j);
}

void sched_preclaim_ask(struct job *j)
{
	struct sched *s = j->s;
	char key[64];

	/* an instance alone claims nothing: its fire's claim is answered at the instant, at
	 * once (cluster_lone) */
	if (!s->cluster || cluster_lone(s->cluster) || j->next_fire == CRON_NEVER ||
	    (j->pre && j->pre->instant == j->next_fire))
		return;
	if (j->pre && j->pre->waiter)
		return; /* an earlier fire's run still waits for its answer */
	pre_free(j);
	/* A run of the job still under way decides the fire at its instant (overlap): it is
	 * claimed then, if it runs at all, as without this */
	if (j->active)
		return;
	if (!pre_key(j->next_fire, key, sizeof(key)))
		return;
	struct preclaim *p = calloc(1, sizeof(*p));
	if (!p)
		return; /* it is claimed at its instant */
	p->job = j;
	p->instant = j->next_fire;
	p->state = PRE_ASKED;
	if (cluster_claim(s->cluster, j->name, key, 0, on_preclaim, p) < 0) {
		free(p);
		return;
	}
	j->pre = p;
}

bool sched_preclaim_take(struct run *r, bool *waits)
{
	struct job *j = r->job;
	struct preclaim *p = j->pre;

	*waits = false;
	if (!p || r->attempt > 1 || r->scheduled_us != p->instant * 1000000 || p->waiter)
		return false;
	switch (p->state) {
	case PRE_ASKED:
		p->waiter = r;
		sched_run_to(r, RUN_CLAIMING);
		*waits = true;
		return true;
	case PRE_GRANTED:
		p->state = PRE_OTHER; /* the lock is R's now */
		pre_free(j);
		r->claimed = true;
		r->job_locked = true;
		return true;
	case PRE_OTHER:
		break;
	}
	pre_free(j);
	return false;
}

void sched_preclaim_settle(struct job *j)
{
	if (j->pre && j->pre->state != PRE_ASKED && !pre_wanted(j, j->pre->instant))
		pre_free(j);
}

void sched_preclaim_fold(struct job *j, int64_t instant, const char *why)
{
	struct preclaim *p = j->pre;
	bool waits = false;
	if (!p || p->instant != instant || p->state != PRE_GRANTED || p->waiter)
		return;
	struct run *r = sched_run_new(j, instant * 1000000, "schedule");
	if (!r)
		return; /* its lock goes at the settle; the fire keeps no row */
	/* with other instances live, one of them may have served the fire while this process
	 * missed it (it took the claim over: cluster_serve_leased, or a dead verdict), so the skip
	 * is written only if the fire's claim is still, or again, this instance's */
	if (sched_preclaim_take(r, &waits))
		sched_skip_claimed(r, why, true);
	sched_run_unlock(r);
	sched_run_free(&r);
}

void sched_preclaim_stale(struct job *j)
{
	struct preclaim *p = j->pre;
	if (p && !p->waiter && p->instant > j->last_fire && p->instant != j->next_fire)
		pre_free(j);
}

static void on_given_back(void *arg, const struct pg_result *res, const char *err,
                          const char *sqlstate)
{
	(void)arg;
	(void)res;
	(void)sqlstate;
	if (err && *err)
		log_warning("cluster: could not give back a fire claimed before its instant: %s",
		            err);
}

void sched_preclaim_give_back(struct sched *s)
{
	struct cluster *c = s->cluster;
	bool any = false;

	for (struct job *j = s->jobs; j; j = j->next) {
		if (!j->pre || j->pre->waiter)
			continue;
		any = any || j->pre->state != PRE_OTHER;
		pre_free(j);
	}
	if (!any || !cluster_ready(c))
		return;
	/* One statement for them all, after the claims' own on the same connection: this
	 * process's claims of instants still to come were all made early (a fire is otherwise
	 * claimed at or after its instant), and the recent ones are found by claimed_at's
	 * index. A claim within GIVE_BACK_MARGIN of its instant, judged as each row is read,
	 * stays: the others may have asked for it at its instant already and lost, so it is
	 * theirs to serve once this instance's row says stopped (cluster_serve_stopped); given
	 * back then, the fire was lost (it_cluster "giveback", AddressSanitizer build). */
	const char *params[] = {cluster_instance(c), cluster_boot_id(c)};
	if (cluster_submit(c,
	                   "DELETE FROM pgcrond.fire_claim WHERE instance = $1 AND boot_id = $2"
	                   " AND claimed_at > now() - interval '1 minute'"
	                   " AND fire_key ~ '^s:[0-9]+$'"
	                   " AND substr(fire_key, 3)::bigint > extract(epoch FROM"
	                   "  clock_timestamp() + interval '" GIVE_BACK_MARGIN "')",
	                   2, params, on_given_back, NULL) < 0)
		log_warning("cluster: cannot give back the fires claimed before their instant");
}

bool sched_preclaim_waited(const struct job *j)
{
	return j->pre && j->pre->waiter;
}

void sched_preclaim_drop(struct job *j)
{
	if (j->pre)
		j->pre->waiter = NULL;
	pre_free(j);
}
