/* Scheduled fires whose history row must wait for the fire's claim (sched_priv.h, cluster.h).
 *
 * Refused fires: fires this instance could not claim for a cause of its own
 * (cluster_served_elsewhere): the history database unreachable from here, this host's clock
 * off. The other instances live at the last contact fire and claim them too, so a `skipped`
 * row here would be a second row for a fire one of them ran (issue 24: 390 such rows in one
 * run). Nor may the fire go without a row when the others could not claim it either (the
 * history database was down for all). So the fire waits here, and once this instance can
 * claim again and the fire's instant is UNCLAIMED_SETTLE_US old, its claim is asked for
 * again, without the job's lock: a fire another instance claimed is theirs to record; a fire
 * nobody claimed becomes this instance's, which records it `skipped` (one row, since the
 * claim is unique).
 *
 * Local skips: a fire this instance would skip without claiming it (its own run of the job
 * still under way, overlap = skip; a missed fire under catchup = skip). Another instance may
 * claim and run that fire, or skip it for the same run (its claim finds the job's lock
 * held), and record it: two rows for one second (issue 24, at the edge of a cut: `ra skipped
 * previous run still running` beside `rb succeeded`). So the skip's claim is asked for at
 * once, the same way, and the row written only if the claim is this instance's (the skip
 * itself is logged at once: this instance did skip it).
 *
 * A fire this instance then runs itself (the catch-up after its database is back serves
 * the latest refused instant) is dropped from the list (sched_unclaimed_ran): the claim the
 * check finds is the run's, and the run has its row. A fire still waiting at shutdown is
 * only counted in the log: the next start's catch-up, which reads the history, counts it as
 * missed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cluster.h"
#include "history.h"
#include "log.h"
#include "sched_priv.h"

/* Another instance claims a fire at its instant (or PRECLAIM_LEAD_US before); one that is
 * this old and unclaimed was missed by all. */
#define UNCLAIMED_SETTLE_US 10000000
/* While this instance cannot claim, look again this often. */
#define UNCLAIMED_RETRY_US ((int64_t)CLUSTER_HEARTBEAT_MS * 1000)
/* Fires kept at most (past it, a fire is recorded at once, as before) and asked per
 * statement. */
#define UNCLAIMED_MAX 10000
#define UNCLAIMED_BATCH 1000

struct sched_unclaimed {
	struct sched_unclaimed *next;
	char *job;
	char *why;
	int64_t scheduled_us;
	int64_t due_us;      /* asked from then on */
	const char *trigger; /* the run's: a string literal */
	char key[48];
	bool skip;   /* a local skip (WHY is its whole message), not a refused fire */
	bool sent;   /* in the statement under way */
	bool unseen; /* no other instance claimed it */
	bool ran;    /* this instance ran the fire after all: no row here */
};

static void entry_free(struct sched_unclaimed *u)
{
	free(u->job);
	free(u->why);
	free(u);
}

static void arm(struct sched *s, int64_t delay_us)
{
	if (clock_armed(&s->uncl_ev))
		clock_disarm(s->clock, &s->uncl_ev);
	if (clock_arm(s->clock, &s->uncl_ev, delay_us < 0 ? 0 : delay_us) < 0)
		log_error("cluster: cannot arm the timer of the fires not claimed here");
}

/* R's fire into the list, checked from DUE_US on; SKIP: a local skip. False if it cannot
 * wait (its row is written now). */
static bool park(struct run *r, const char *why, bool skip, int64_t due_us)
{
	struct sched *s = r->job->s;
	int64_t window = 0;
	if ((strcmp(r->trigger, "schedule") != 0 && strcmp(r->trigger, "catchup") != 0) ||
	    r->attempt > 1 || !r->scheduled_us || !s->cluster || s->draining ||
	    s->n_uncl >= UNCLAIMED_MAX)
		return false;
	struct sched_unclaimed *u = calloc(1, sizeof(*u));
	if (!u)
		return false;
	u->job = strdup(r->job->name);
	u->why = strdup(why);
	if (!u->job || !u->why ||
	    cluster_fire_key(r->trigger, r->scheduled_us, NULL, 1, 0, u->key, sizeof(u->key),
	                     &window) <= 0) {
		entry_free(u);
		return false;
	}
	u->scheduled_us = r->scheduled_us;
	u->due_us = due_us;
	u->skip = skip;
	u->trigger = r->trigger;
	if (s->uncl_tail)
		s->uncl_tail->next = u;
	else
		s->uncl_head = u;
	s->uncl_tail = u;
	s->n_uncl++;
	if (!s->uncl_asking && (!clock_armed(&s->uncl_ev) || skip))
		arm(s, u->due_us - sched_now_us(s));
	return true;
}

bool sched_unclaimed_park(struct run *r, const char *why)
{
	struct sched *s = r->job->s;
	if (!s->cluster || !cluster_served_elsewhere(s->cluster) ||
	    !park(r, why, false, r->scheduled_us + UNCLAIMED_SETTLE_US))
		return false;
	log_job(LOG_LVL_DEBUG, r->job->name,
	        "%s fire not claimed here (%s); left to the other instances, checked once this "
	        "instance can claim",
	        r->trigger, why);
	return true;
}

void sched_skip_claimed(struct run *r, const char *why, bool logged)
{
	struct sched *s = r->job->s;
	if (!logged) /* at once: this instance skips it, whoever records it */
		log_job(LOG_LVL_INFO, r->job->name, "skipped: %s", why);
	/* no other instance live at the last heartbeat (or no claims at all: no schema for
	 * them, a standby): nobody else claims it, and a lone instance sends no statement */
	if (!s->cluster || !cluster_served_elsewhere(s->cluster) ||
	    !park(r, why, true, sched_now_us(s)))
		sched_record(r, SCHED_SKIPPED, why);
}

void sched_unclaimed_ran(struct run *r)
{
	struct sched *s = r->job->s;
	if (!s->n_uncl || !r->scheduled_us || r->attempt > 1)
		return;
	struct sched_unclaimed **pp = &s->uncl_head;
	s->uncl_tail = NULL;
	while (*pp) {
		struct sched_unclaimed *u = *pp;
		if (u->scheduled_us / 1000000 == r->scheduled_us / 1000000 &&
		    strcmp(u->job, r->job->name) == 0) {
			if (u->sent) {
				u->ran = true; /* its answer is on its way */
			} else {
				*pp = u->next;
				entry_free(u);
				s->n_uncl--;
				continue;
			}
		}
		s->uncl_tail = u;
		pp = &u->next;
	}
}

static void unlink_sent(struct sched *s, bool drop)
{
	struct sched_unclaimed **pp = &s->uncl_head;
	s->uncl_tail = NULL;
	while (*pp) {
		struct sched_unclaimed *u = *pp;
		if (u->sent && drop) {
			*pp = u->next;
			entry_free(u);
			s->n_uncl--;
			continue;
		}
		u->sent = false;
		u->unseen = false;
		s->uncl_tail = u;
		pp = &u->next;
	}
}

static void asked(void *arg, const PGresult *res, const char *err, const char *sqlstate)
{
	struct sched *s = arg;
	(void)sqlstate;
	s->uncl_asking = false;
	if (!res || (err && *err)) {
		if (log_complain(&s->uncl_complaint))
			log_warning(
			    "cluster: cannot check whether other instances ran the fires not "
			    "claimed here: %s",
			    err && *err ? err : "no answer");
		unlink_sent(s, false);
		arm(s, UNCLAIMED_RETRY_US);
		return;
	}
	log_complaint_reset(&s->uncl_complaint);
	for (int i = 0; i < PQntuples(res); i++) {
		const char *job = PQgetvalue(res, i, 0), *key = PQgetvalue(res, i, 1);
		for (struct sched_unclaimed *u = s->uncl_head; u; u = u->next)
			if (u->sent && !u->unseen && strcmp(u->key, key) == 0 &&
			    strcmp(u->job, job) == 0) {
				u->unseen = true;
				break;
			}
	}
	size_t served = 0, none = 0;
	bool soon = false;
	for (struct sched_unclaimed *u = s->uncl_head; u; u = u->next) {
		if (!u->sent) {
			soon = soon || u->skip;
			continue;
		}
		struct job *j = sched_job_find(s, u->job);
		if (!u->unseen || u->ran) {
			if (u->skip && !u->ran)
				log_job(LOG_LVL_DEBUG, u->job,
				        "the skip of a %s fire is not recorded here: another "
				        "instance claimed the fire",
				        u->trigger);
			else if (!u->skip)
				served++;
			continue;
		}
		if (!u->skip)
			none++;
		if (!j) {
			log_notice(
			    "job %s: a fire no instance claimed (%s) has no history row: the "
			    "job is gone",
			    u->job, u->why);
			continue;
		}
		char msg[1024];
		snprintf(msg, sizeof(msg), u->skip ? "%s" : "%s; no other instance claimed it",
		         u->why);
		struct run *r = sched_run_new(j, u->scheduled_us, u->trigger);
		if (r) {
			sched_record(r, SCHED_SKIPPED, msg);
			sched_run_free(&r);
		}
	}
	if (served + none) /* a local skip is logged as one, once recorded */
		log_info("cluster: %zu fire(s) not claimed here were checked: %zu run by another "
		         "instance, %zu by none (recorded as skipped)",
		         served + none, served, none);
	unlink_sent(s, true);
	/* a local skip is asked at once; the rest together, not one statement (and line) per
	 * second */
	if (soon)
		arm(s, 0);
	else if (s->uncl_head)
		arm(s, UNCLAIMED_RETRY_US);
}

void sched_unclaimed_cb(void *arg)
{
	struct sched *s = arg;
	if (s->uncl_asking || !s->uncl_head)
		return;
	int64_t now = sched_now_us(s), next = INT64_MAX;
	const char *jobs[UNCLAIMED_BATCH], *keys[UNCLAIMED_BATCH];
	size_t n = 0;
	for (struct sched_unclaimed *u = s->uncl_head; u && n < UNCLAIMED_BATCH; u = u->next) {
		int64_t due = u->due_us;
		if (due > now) {
			next = due < next ? due : next;
			continue;
		}
		jobs[n] = u->job;
		keys[n] = u->key;
		n++;
	}
	if (n == 0) {
		arm(s, next - now);
		return;
	}
	int rc = s->cluster ? cluster_settle_refused(s->cluster, n, jobs, keys, asked, s) : -1;
	if (rc < 0) {
		arm(s, UNCLAIMED_RETRY_US); /* not connected (yet) */
		return;
	}
	s->uncl_asking = true;
	size_t k = 0;
	for (struct sched_unclaimed *u = s->uncl_head; u && k < n; u = u->next)
		if (u->due_us <= now) {
			u->sent = true;
			k++;
		}
}

void sched_unclaimed_free(struct sched *s)
{
	clock_disarm(s->clock, &s->uncl_ev);
	if (s->n_uncl)
		log_notice("cluster: %zu fire(s) not claimed here were not checked (were they run "
		           "by another instance?): those that were not have no history row",
		           s->n_uncl);
	while (s->uncl_head) {
		struct sched_unclaimed *u = s->uncl_head;
		s->uncl_head = u->next;
		entry_free(u);
	}
	s->uncl_tail = NULL;
	s->n_uncl = 0;
}
