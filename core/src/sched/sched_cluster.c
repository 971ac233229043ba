/* The scheduler's part of coordination beyond the claims (sched.h, coord.h): a run's start
 * mark and transaction id where a takeover looks, the upstream-caused runs a job owes, and
 * runs that wait for another instance's run of their job to end (overlap queue and replace).
 * What the other instances make happen here (work taken over, a run ended or to cancel
 * there) is sched_input.c's. */
#include <event2/event.h>
#include <string.h>

#include "admit.h"
#include "cluster.h"
#include "coord.h"
#include "history.h"
#include "log.h"
#include "sched.h"
#include "sched_priv.h"
#include "job_kind.h"

/* R's start mark is written (OK), or R must send nothing (WHY): cluster_note_start */
static void on_marked(void *arg, bool ok, const char *why)
{
	struct run *r = arg;
	struct sched *s = r->job->s;
	r->mark_wait = false;
	if (!ok) /* its end logs and records WHY as a skip (sched.c: run_end); a run dropped
	          * before the answer keeps its skip */
		r->unmarked = true;
	if (r->er) /* else it ended already, or it is an HTTP run's request */
		s->ex.release(r->er, ok, why);
	else if (r->mark_ev_set && r->state == RUN_RUNNING && !r->hc) {
		if (!ok && !r->mark_why)
			r->mark_why =
			    strdup(why ? why : "not started: its start mark was not written");
		event_active(&r->mark_ev, 0, 0); /* sched.c sends its request, or ends it */
	}
}

/* R is about to be handed to the executor, and runs are marked (several instances:
 * cluster_marks_runs): its start is marked where a takeover looks (cluster.h:
 * cluster_note_start), and R's statement waits for that mark (spec.hold), or its HTTP
 * request (on_marked). Marked as the run begins,
 * not as it gets its backend, so that the marks of a burst go in one statement while the runs wait
 * for their connections, and a run whose mark is written by then is sent as it would be without it.
 * Returns 1 (R waits: spec.hold), 0 (nothing to wait for), -1 (the mark cannot be noted: R must not
 * run). */
int sched_mark_start(struct run *r)
{
	struct sched *s = r->job->s;
	if (!s->hist || !r->hist_key || !s->ex.release)
		return 0;
	bool fire = r->attempt == 1 && r->scheduled_us > 0 &&
	            (strcmp(r->trigger, "schedule") == 0 || strcmp(r->trigger, "catchup") == 0);
	char key[96], once[64];
	hist_run_key(s->hist, r->hist_key, key, sizeof(key));
	/* a command whose commit a takeover cannot ask about: its class, for the history */
	job_kind_once(r->job->kind, r->job->command, once, sizeof(once));
	const char *fenced = strncmp(once, "fenced: ", 8) == 0 ? once + 8 : NULL;
	int w =
	    cluster_note_start(s->cluster, key, r->job->name, fire ? r->scheduled_us / 1000000 : 0,
	                       r->adm == ADMIT_LOCKED, fenced, on_marked, r);
	/* (with its FN, a mark noted is always waited for) */
	r->mark_wait = r->marked = w == 1;
	s->n_marked += r->marked;
	return w;
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
		s->ex.release(r->er, ok, why);
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

bool sched_admit_record(void *arg, const char *job, const char *trigger, int64_t scheduled_us,
                        const char *message)
{
	struct job *j = sched_job_find(arg, job);
	if (!j)
		return false;
	struct run *r = sched_run_new(j, scheduled_us, trigger);
	if (r) {
		sched_record(r, SCHED_SKIPPED, message);
		sched_run_free(&r);
	}
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
}

struct coord *sched_coord(const struct sched *s)
{
	return s->coord;
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
