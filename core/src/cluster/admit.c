/* Admission (admit.h): the two policies behind the scheduler's one question. The cluster
 * (cluster_lone.c) says which one answers: an instance alone grants a fire in the call
 * (cluster_lone_grant), several instances claim it (cluster_claim). */
#include "admit.h"

#include <errno.h>
#include <stdlib.h>

#include "log.h"

struct admit {
	struct cluster *c; /* NULL: alone, without a history database */
	struct admit_hooks hooks;
};

int admit_new(const struct admit_hooks *hooks, struct admit **out)
{
	struct admit *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->hooks = *hooks;
	*out = a;
	return 0;
}

void admit_free(struct admit **ap)
{
	struct admit *a = *ap;
	if (!a)
		return;
	admit_set_cluster(a, NULL);
	free(a);
	*ap = NULL;
}

/* The cluster went lone (LONE) or claims again (cluster_set_lone_fn): then the switch takes
 * the job locks of the runs it granted lone that are still under way, and each gives its lock
 * back as it ends. */
static void on_lone(void *arg, bool lone)
{
	struct admit *a = arg;
	if (!lone && a->hooks.claiming_again)
		a->hooks.claiming_again(a->hooks.arg);
}

void admit_set_cluster(struct admit *a, struct cluster *c)
{
	if (a->c)
		cluster_set_lone_fn(a->c, NULL, NULL);
	a->c = c;
	if (c)
		cluster_set_lone_fn(c, on_lone, a);
}

bool admit_ahead(const struct admit *a)
{
	/* only a cluster that claims fires claims them early: not a lone instance */
	return a && a->c && !cluster_lone_on(a->c);
}

bool admit(struct admit *a, const struct admit_fire *f, enum admit_hold *h, cluster_claim_fn fn,
           void *arg)
{
	char key[600];
	int64_t window = 0;
	*h = ADMIT_FREE;
	if (!a || !a->c ||
	    cluster_fire_key(f->trigger, f->scheduled_us, f->graph_run, f->attempt, f->debounce_ms,
	                     key, sizeof(key), &window) <= 0)
		return false;
	/* An instance alone grants it at once (GRANTED as FN would be told, a loop hop later):
	 * the run goes on in this call, as a run that needs no claim does. Not for a fire whose
	 * answer the scheduler decides (F->later). An instance that claims does not ask. */
	if (cluster_lone_on(a->c) && !f->later && cluster_lone_grant(a->c, f->job, key)) {
		*h = ADMIT_LONE; /* no lock to give back (admit_claim_again) */
		return false;
	}
	if (cluster_claim(a->c, f->job, key, window, fn, arg) < 0) {
		log_job(LOG_LVL_ERROR, f->job, "out of memory claiming the fire; running unclaimed");
		return false;
	}
	*h = ADMIT_NONE;
	return true;
}

bool admit_early(struct admit *a, const struct admit_fire *f, cluster_claim_fn fn, void *arg)
{
	char key[64];
	int64_t window = 0;
	return admit_ahead(a) &&
	       cluster_fire_key(f->trigger, f->scheduled_us, NULL, 1, 0, key, sizeof(key),
	                        &window) > 0 &&
	       cluster_claim(a->c, f->job, key, 0, fn, arg) == 0;
}

void admit_answered(enum admit_hold *h, enum cluster_verdict v, bool early)
{
	/* a grant holds the job's lock, released as the run ends (admit_end), run or not; an
	 * answer before the instant that is not a grant may no longer hold at it: asked again */
	if (v == CLUSTER_GRANTED)
		*h = ADMIT_LOCKED;
	else if (v == CLUSTER_UNCLAIMED && !early)
		*h = ADMIT_FREE;
}

void admit_forget(struct admit *a, void *arg)
{
	if (a)
		cluster_claim_forget(a->c, arg);
}

void admit_end(struct admit *a, enum admit_hold *h, const char *job)
{
	if (*h != ADMIT_LOCKED)
		return;
	if (a)
		cluster_release(a->c, job);
	*h = ADMIT_FREE;
}

void admit_claim_again(struct admit *a, enum admit_hold *h, const char *job)
{
	if (*h == ADMIT_LONE && cluster_lone_hold(a->c, job))
		*h = ADMIT_LOCKED;
}
