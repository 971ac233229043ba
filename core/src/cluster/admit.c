/* Admission (admit.h): the two policies behind the scheduler's one question. The cluster
 * (cluster_lone.c) says which one answers: an instance alone grants a fire in the call
 * (cluster_lone_grant), several instances claim it (cluster_claim).
 *
 * Fires kept unrecorded. Refused fires: fires this instance could not claim for a cause of its own
 * (cluster_served_elsewhere): the history database unreachable from here, this host's clock
 * off. The other instances live at the last contact fire and claim them too, so a `skipped`
 * row here would be a second row for a fire one of them ran (every fire of the outage
 * twice). Nor may the fire go without a row when the others could not claim it either (the
 * history database was down for all). So the fire waits here, and once this instance can
 * claim again and the fire's instant is UNCLAIMED_SETTLE_US old, its claim is asked for
 * again, without the job's lock: a fire another instance claimed is theirs to record; a fire
 * nobody claimed becomes this instance's, which records it `skipped` (one row, since the
 * claim is unique).
 *
 * Local skips: a fire this instance would skip without claiming it (its own run of the job
 * still under way, overlap = skip; a missed fire under catchup = skip). Another instance may
 * claim and run that fire, or skip it for the same run (its claim finds the job's lock
 * held), and record it: two rows for one second (at the edge of a cut: `ra skipped
 * previous run still running` beside `rb succeeded`). So the skip's claim is asked for at
 * once, the same way, and the row written only if the claim is this instance's (the skip
 * itself is logged at once: this instance did skip it).
 *
 * A fire this instance then runs itself (the catch-up after its database is back serves
 * the latest refused instant) is dropped from the list (admit_ran): the claim the
 * check finds is the run's, and the run has its row. A fire still waiting at shutdown is
 * only counted in the log: the next start's catch-up, which reads the history, counts it as
 * missed. */
#include "admit.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "clock.h"
#include "cluster.h"
#include "coord.h"
#include "cron.h"
#include "job_kind.h"
#include "log.h"
#include "strmap.h"

struct unclaimed;

struct admit {
	struct cluster *c; /* NULL: alone, without a history database */
	struct coord *co;  /* its pending work; NULL: none */
	struct admit_hooks hooks;
	struct clock *clock;
	bool stopping;       /* admit_stop */
	struct strmap early; /* the fires claimed before their instant, by job (struct early) */
	/* scheduled fires not claimed here while other instances were live, checked once this
	 * instance can claim (oldest first), and the timer that checks */
	TAILQ_HEAD(, unclaimed) uncl;
	size_t n_uncl;
	struct clock_timer uncl_ev;
	bool uncl_asking; /* a check is under way */
	struct log_complaint uncl_complaint;
};

void admit_set_cluster(struct admit *a, struct cluster *c)
{
	if (a->c)
		cluster_set_again_fn(a->c, NULL, NULL);
	a->c = c;
	if (c) /* the runs granted lone under way hold their locks from then on */
		cluster_set_again_fn(c, a->hooks.claiming_again, a->hooks.arg);
}

/* ---- fires claimed before their instant ---------------------------------------------- *
 *
 * Claimed at its instant, a fire waits a round trip (and the claims of a busy second before
 * it), so the scheduler asks before the instant (admit_early) and the fire's admit() is
 * answered from that claim. Only a grant is kept: any other answer may no longer hold at the
 * instant. An instance that dies before an instant it claimed leaves a claim no run serves, as
 * one that dies between a claim and its run's start does: the instance that finds it dead (or
 * its own next process) serves it (cluster_serve_unserved). */

/* A fire claimed before its instant: at most one per job. */
struct early {
	struct strmap_node node;
	struct admit *a;
	int64_t scheduled_us;
	bool granted; /* answered so (else still asked): it holds the job's lock */
	/* the run that waits for the answer since its instant (admit) */
	cluster_claim_fn fn;
	void *arg;
	char job[];
};

static struct early *early_of(struct admit *a, const char *job, int64_t scheduled_us)
{
	struct early *e = STRMAP_ENTRY(strmap_find(&a->early, job), struct early, node);
	return e && (!scheduled_us || e->scheduled_us == scheduled_us) ? e : NULL;
}

static void early_free(struct admit *a, struct early *e)
{
	strmap_remove(&a->early, &e->node);
	free(e);
}

/* E, which no run took, goes: the lock of its grant given back, or its answer forgotten
 * (which gives back the lock a grant takes: cluster_claim_forget) */
static void early_drop(struct admit *a, struct early *e)
{
	if (e->granted)
		cluster_release(a->c, e->job);
	else
		cluster_claim_forget(a->c, e);
	early_free(a, e);
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
	/* a fire with no claim at all (cluster_fire_key: a manual run, @reboot's, their
	 * retries) runs as it comes */
	if (!a || !a->c ||
	    (!f->scheduled_us && !(f->graph_run && *f->graph_run) &&
	     (f->attempt > 1 || f->trigger != TRIGGER_NOTIFY)))
		return false;
	struct early *e = f->attempt == 1 && f->scheduled_us && a->early.n
	                      ? early_of(a, f->job, f->scheduled_us)
	                      : NULL;
	if (e && e->granted) { /* its lock goes back as the run ends */
		early_free(a, e);
		*h = ADMIT_LOCKED;
		return false;
	}
	if (e) { /* its answer is the run's */
		e->fn = fn;
		e->arg = arg;
		*h = ADMIT_NONE;
		return true;
	}
	/* An instance alone grants it at once (GRANTED as FN would be told, a loop hop later),
	 * without its key: the run goes on in this call, as a run that needs no claim does. Not
	 * for a fire whose answer the scheduler decides (F->later). */
	if (!f->later && cluster_lone_grant(a->c, f->job, f->trigger, f->scheduled_us, f->graph_run,
	                                    f->attempt)) {
		*h = ADMIT_LONE; /* no lock to give back (admit_claim_again) */
		return false;
	}
	if (cluster_fire_key(f->trigger, f->scheduled_us, f->graph_run, f->attempt, f->debounce_ms,
	                     key, sizeof(key), &window) <= 0)
		return false;
	if (cluster_claim(a->c, f->job, key, window, fn, arg) < 0) {
		log_error("%s: out of memory claiming the fire; running unclaimed", f->job);
		return false;
	}
	*h = ADMIT_NONE;
	return true;
}

void admit_answered(enum admit_hold *h, enum cluster_verdict v)
{
	/* a grant holds the job's lock, released as the run ends (admit_end), run or not */
	if (v == CLUSTER_GRANTED)
		*h = ADMIT_LOCKED;
	else if (v == CLUSTER_UNCLAIMED)
		*h = ADMIT_FREE;
}

void admit_end(struct admit *a, const struct admit_fire *f, enum admit_hold *h, void *waiting,
               void *marked)
{
	struct early *e =
	    a && a->early.n && f->scheduled_us ? early_of(a, f->job, f->scheduled_us) : NULL;
	/* its fire decided without a question (skipped, dropped), or its answer awaited */
	if (e && (!e->fn || e->arg == waiting))
		early_drop(a, e);
	if (waiting && a)
		cluster_claim_forget(a->c, waiting);
	if (marked && a)
		cluster_mark_forget(a->c, marked);
	if (f->noted && a)
		coord_done(a->co, f->job, f->trigger);
	if (*h != ADMIT_LOCKED)
		return;
	if (a)
		cluster_release(a->c, f->job);
	*h = ADMIT_FREE;
}

void admit_claim_again(struct admit *a, enum admit_hold *h, const char *job)
{
	if (*h == ADMIT_LONE && cluster_lone_hold(a->c, job))
		*h = ADMIT_LOCKED;
}

static void early_answered(void *arg, enum cluster_verdict v, const char *why)
{
	struct early *e = arg;
	struct admit *a = e->a;
	cluster_claim_fn fn = e->fn;
	void *run = e->arg;
	char key[64];
	int64_t window = 0;
	e->granted = v == CLUSTER_GRANTED;
	if (!fn && e->granted)
		return; /* kept for its instant */
	/* not granted, its run waiting: asked again, as at its instant */
	bool again = fn && !e->granted;
	bool oom = again && (cluster_fire_key(TRIGGER_SCHEDULE, e->scheduled_us, NULL, 1, 0, key,
	                                      sizeof(key), &window) <= 0 ||
	                     cluster_claim(a->c, e->job, key, 0, fn, run) < 0);
	if (oom)
		log_msg(LOG_LVL_ERROR, e->job,
		        "out of memory claiming the fire; running unclaimed");
	early_free(a, e);
	if (oom)
		fn(run, CLUSTER_UNCLAIMED, "out of memory claiming the fire");
	else if (fn && !again)
		fn(run, v, why);
}

bool admit_early(struct admit *a, const struct admit_fire *f)
{
	char key[64];
	int64_t window = 0;
	if (!admit_ahead(a))
		return false;
	struct early *e = a->early.n ? early_of(a, f->job, 0) : NULL;
	if (e && (e->fn || e->scheduled_us == f->scheduled_us))
		return !e->fn; /* asked already; or a run waits for an earlier one */
	if (e)
		early_drop(a, e);
	size_t n = strlen(f->job) + 1;
	if (cluster_fire_key(f->trigger, f->scheduled_us, NULL, 1, 0, key, sizeof(key), &window) <=
	        0 ||
	    !(e = calloc(1, sizeof(*e) + n)))
		return false;
	memcpy(e->job, f->job, n);
	e->a = a;
	e->scheduled_us = f->scheduled_us;
	if (cluster_claim(a->c, e->job, key, 0, early_answered, e) < 0) {
		free(e);
		return false;
	}
	strmap_insert(&a->early, &e->node, e->job);
	return true;
}

void admit_early_drop(struct admit *a, const char *job, int64_t scheduled_us, const char *why)
{
	struct early *e = a && a->early.n ? early_of(a, job, scheduled_us) : NULL;
	if (!e || e->fn)
		return; /* a run took it */
	struct admit_fire f = {
	    .job = job, .trigger = TRIGGER_SCHEDULE, .scheduled_us = e->scheduled_us, .attempt = 1};
	bool granted = e->granted;
	early_drop(a, e); /* (before its row: recording it ends a run of the fire, admit_end) */
	/* with other instances live, one of them may have served the fire while this process
	 * missed it (it took the claim over), so the skip is written only if the fire's claim is
	 * still, or again, this instance's (admit_skip) */
	if (why && granted && !admit_skip(a, &f, why) &&
	    !a->hooks.record(a->hooks.arg, job, f.trigger, f.scheduled_us, why))
		log_notice("job %s: a missed fire (%s) has no history row: the job is gone", job,
		           why);
}

/* ---- fires kept unrecorded ---------------------------------------------------------- */

/* Another instance claims a fire at its instant (or PRECLAIM_LEAD_US before); one that is
 * this old and unclaimed was missed by all. */
#define UNCLAIMED_SETTLE_US 10000000
/* While this instance cannot claim, look again this often. */
#define UNCLAIMED_RETRY_US ((int64_t)CLUSTER_HEARTBEAT_MS * 1000)
/* Fires kept at most (past it, a fire is recorded `skipped` at once) and asked per
 * statement. */
#define UNCLAIMED_MAX 10000
#define UNCLAIMED_BATCH 1000

struct unclaimed {
	TAILQ_ENTRY(unclaimed) link;
	char *job;
	char *why;
	int64_t scheduled_us;
	int64_t due_us; /* asked from then on */
	enum run_trigger trigger;
	char key[48];
	bool skip;   /* a local skip (WHY is its whole message), not a refused fire */
	bool sent;   /* in the statement under way */
	bool unseen; /* no other instance claimed it */
	bool ran;    /* this instance ran the fire after all: no row here */
};

static int64_t now_us(const struct admit *a)
{
	return a->hooks.now_us(a->hooks.arg);
}

static void entry_free(struct unclaimed *u)
{
	free(u->job);
	free(u->why);
	free(u);
}

/* The list walked once. With RAN, that fire's entries go, but one in the statement under way
 * stays, marked ran (its answer is on its way). Else the statement's answer came (DROP: the
 * entries it asked go) or it failed, and no entry is in a statement any more. */
static void sweep(struct admit *a, const struct admit_fire *ran, bool drop)
{
	for (struct unclaimed *u = TAILQ_FIRST(&a->uncl), *next; u; u = next) {
		next = TAILQ_NEXT(u, link);
		bool of_ran = ran && u->scheduled_us / 1000000 == ran->scheduled_us / 1000000 &&
		              strcmp(u->job, ran->job) == 0;
		u->ran = u->ran || (of_ran && u->sent);
		if (ran ? of_ran && !u->sent : u->sent && drop) {
			TAILQ_REMOVE(&a->uncl, u, link);
			entry_free(u);
			a->n_uncl--;
			continue;
		}
		if (!ran)
			u->sent = u->unseen = false;
	}
}

/* The timer, in DELAY_US (negative: now); with KEEP, not if it is armed already. */
static void arm(struct admit *a, int64_t delay_us, bool keep)
{
	if (keep && clock_armed(&a->uncl_ev))
		return;
	if (clock_arm(a->clock, &a->uncl_ev, delay_us) < 0)
		log_error("cluster: cannot arm the timer of the fires not claimed here");
}

/* F into the list, checked at once if SKIP (a local skip), else once other instances would
 * have claimed it. False if it cannot wait (its row is written now). */
static bool park(struct admit *a, const struct admit_fire *f, const char *why, bool skip)
{
	int64_t window = 0, now = now_us(a);
	/* no other instance live at the last heartbeat (or no claims at all: no schema for
	 * them, a standby): nobody else claims it, and a lone instance sends no statement */
	if ((f->trigger != TRIGGER_SCHEDULE && f->trigger != TRIGGER_CATCHUP) || f->attempt > 1 ||
	    !f->scheduled_us || !a->c || a->stopping || a->n_uncl >= UNCLAIMED_MAX ||
	    !cluster_served_elsewhere(a->c))
		return false;
	struct unclaimed *u = calloc(1, sizeof(*u));
	if (!u)
		return false;
	u->job = strdup(f->job);
	u->why = strdup(why);
	if (!u->job || !u->why ||
	    cluster_fire_key(f->trigger, f->scheduled_us, NULL, 1, 0, u->key, sizeof(u->key),
	                     &window) <= 0) {
		entry_free(u);
		return false;
	}
	u->scheduled_us = f->scheduled_us;
	u->due_us = skip ? now : f->scheduled_us + UNCLAIMED_SETTLE_US;
	u->skip = skip;
	u->trigger = f->trigger;
	TAILQ_INSERT_TAIL(&a->uncl, u, link);
	a->n_uncl++;
	if (!a->uncl_asking)
		arm(a, u->due_us - now, !skip);
	return true;
}

bool admit_park(struct admit *a, const struct admit_fire *f, const char *why)
{
	if (!a || !park(a, f, why, false))
		return false;
	log_msg(LOG_LVL_DEBUG, f->job,
	        "%s fire not claimed here (%s); left to the other instances, checked once this "
	        "instance can claim",
	        run_trigger_names[f->trigger], why);
	return true;
}

bool admit_skip(struct admit *a, const struct admit_fire *f, const char *why)
{
	return a && park(a, f, why, true);
}

void admit_ran(struct admit *a, const struct admit_fire *f)
{
	if (f->noted && a)
		coord_done(a->co, f->job, f->trigger);
	if (a && a->n_uncl && f->scheduled_us && f->attempt == 1)
		sweep(a, f, false);
}

static void asked(void *arg, const PGresult *res, const char *err, const char *sqlstate)
{
	struct admit *a = arg;
	struct unclaimed *u;
	(void)sqlstate;
	a->uncl_asking = false;
	if (!res || (err && *err)) {
		if (log_complain(&a->uncl_complaint, err))
			log_warning(
			    "cluster: cannot check whether other instances ran the fires not "
			    "claimed here: %s",
			    err && *err ? err : "no answer");
		sweep(a, NULL, false);
		arm(a, UNCLAIMED_RETRY_US, false);
		return;
	}
	log_complaint_reset(&a->uncl_complaint);
	for (int i = 0; i < PQntuples(res); i++) {
		const char *job = PQgetvalue(res, i, 0), *key = PQgetvalue(res, i, 1);
		TAILQ_FOREACH(u, &a->uncl, link)
			if (u->sent && !u->unseen && strcmp(u->key, key) == 0 &&
			    strcmp(u->job, job) == 0) {
				u->unseen = true;
				break;
			}
	}
	size_t served = 0, none = 0;
	bool soon = false;
	TAILQ_FOREACH(u, &a->uncl, link) {
		if (!u->sent) {
			soon = soon || u->skip;
			continue;
		}
		if (!u->unseen || u->ran) {
			if (u->skip && !u->ran)
				log_msg(LOG_LVL_DEBUG, u->job,
				        "the skip of a %s fire is not recorded here: another "
				        "instance claimed the fire",
				        run_trigger_names[u->trigger]);
			else if (!u->skip)
				served++;
			continue;
		}
		if (!u->skip)
			none++;
		char msg[1024];
		snprintf(msg, sizeof(msg), u->skip ? "%s" : "%s; no other instance claimed it",
		         u->why);
		if (!a->hooks.record(a->hooks.arg, u->job, u->trigger, u->scheduled_us, msg))
			log_notice(
			    "job %s: a fire no instance claimed (%s) has no history row: the "
			    "job is gone",
			    u->job, u->why);
	}
	if (served + none) /* a local skip is logged as one, once recorded */
		log_info("cluster: %zu fire(s) not claimed here were checked: %zu run by another "
		         "instance, %zu by none (recorded as skipped)",
		         served + none, served, none);
	sweep(a, NULL, true);
	/* a local skip is asked at once; the rest together, not one statement (and line) per
	 * second */
	if (soon)
		arm(a, 0, false);
	else if (!TAILQ_EMPTY(&a->uncl))
		arm(a, UNCLAIMED_RETRY_US, false);
}

static void unclaimed_cb(void *arg)
{
	struct admit *a = arg;
	struct unclaimed *u;
	if (a->uncl_asking || TAILQ_EMPTY(&a->uncl))
		return;
	int64_t now = now_us(a), next = INT64_MAX;
	const char *jobs[UNCLAIMED_BATCH], *keys[UNCLAIMED_BATCH];
	size_t n = 0;
	for (u = TAILQ_FIRST(&a->uncl); u && n < UNCLAIMED_BATCH; u = TAILQ_NEXT(u, link)) {
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
		arm(a, next - now, false);
		return;
	}
	int rc = a->c ? cluster_settle_refused(a->c, n, jobs, keys, asked, a) : -1;
	if (rc < 0) {
		arm(a, UNCLAIMED_RETRY_US, false); /* not connected (yet) */
		return;
	}
	a->uncl_asking = true;
	size_t k = 0;
	for (u = TAILQ_FIRST(&a->uncl); u && k < n; u = TAILQ_NEXT(u, link))
		if (u->due_us <= now) {
			u->sent = true;
			k++;
		}
}

/* ---- the rest of several instances ------------------------------------------------- */

void admit_set_coord(struct admit *a, struct coord *co)
{
	a->co = co;
}

bool admit_unclaimed(const struct admit *a)
{
	return !admit_ahead(a) || cluster_lone_undecided(a->c);
}

void admit_work_note(struct admit *a, const struct coord_work *w, const char *dead)
{
	coord_note(a->co, w, dead);
}

void admit_work_done(struct admit *a, const char *job, enum run_trigger kind)
{
	coord_done(a->co, job, kind);
}

void admit_graph(struct admit *a, const char *job, bool started)
{
	coord_graph(a->co, job, started);
}

void admit_cancel_other(struct admit *a, const char *job)
{
	coord_cancel_other(a->co, job);
}

bool admit_marks(const struct admit *a)
{
	return a && cluster_marks_runs(a->c);
}

int admit_mark_start(struct admit *a, const struct admit_fire *f, enum admit_hold h,
                     const char *run_key, const char *fenced, cluster_mark_fn fn, void *arg)
{
	/* the scheduled fire it serves, whose claim a takeover must not serve again */
	bool fire = f->attempt == 1 && f->scheduled_us > 0 &&
	            (f->trigger == TRIGGER_SCHEDULE || f->trigger == TRIGGER_CATCHUP);
	return cluster_note_start(a->c, run_key, f->job, fire ? f->scheduled_us / 1000000 : 0,
	                          h == ADMIT_LOCKED, fenced, fn, arg);
}

int admit_mark_xact(struct admit *a, const char *run_key, const char *xid, const char *server,
                    cluster_mark_fn fn, void *arg)
{
	return cluster_note_xact(a->c, run_key, xid, server, fn, arg);
}

bool admit_mark_end(struct admit *a, const char *run_key)
{
	return cluster_xact_end(a->c, run_key);
}

/* The history database shows the runs that wait (pgcrond.view_backlog): the instance's rows
 * are replaced by a JSON array of {"job", "for", "trigger", "scheduled_for", "since" (Unix
 * us), "attempt"}. */
static const char backlog_sql[] = "SELECT pgcrond.backlog_publish($1, $2::pg_catalog.jsonb)";

static void backlog_sent(void *arg, const PGresult *res, const char *err, const char *sqlstate)
{
	static struct log_complaint complaint;
	(void)arg;
	(void)res;
	(void)sqlstate;
	if (err && *err && log_complain(&complaint, NULL))
		log_warning("cannot show the waiting runs in pgcrond.view_backlog: %s", err);
	else if (!(err && *err) && log_complaint_reset(&complaint))
		log_notice("the waiting runs are shown in pgcrond.view_backlog again");
}

int admit_publish_backlog(struct admit *a, const char *json)
{
	const char *p[] = {a->c ? cluster_instance(a->c) : NULL, json};
	return a->c ? cluster_submit(a->c, backlog_sql, 2, p, backlog_sent, NULL) : -ENOTCONN;
}

/* ---- stopping --------------------------------------------------------------------- */

void admit_stop(struct admit *a)
{
	a->stopping = true;
	cluster_stopping(a->c); /* it takes over nothing more */
}

bool admit_left_to_others(struct admit *a, const struct admit_fire *f, enum admit_hold h)
{
	struct early *e = a && a->early.n && f->scheduled_us && f->attempt == 1
	                      ? early_of(a, f->job, f->scheduled_us)
	                      : NULL;
	return h == ADMIT_NONE && !(e && e->granted) && a && a->c && cluster_served_elsewhere(a->c);
}

bool admit_leave(struct admit *a, const struct admit_fire *f)
{
	if (!a || !a->c || !f->scheduled_us || f->attempt > 1 || !cluster_served_elsewhere(a->c))
		return false;
	char at[CRON_TIME_BUFSZ];
	cron_time_format(f->scheduled_us / 1000000, at, sizeof(at)); /* always fits */
	log_msg(LOG_LVL_NOTICE, f->job,
	        "this instance is stopping: the fire at %s it just claimed is left to the other "
	        "instances (%s)",
	        at, cluster_peers(a->c));
	return true;
}

void admit_give_back(struct admit *a)
{
	bool any = false;
	for (struct strmap_node *n = a ? strmap_first(&a->early) : NULL, *next; n; n = next) {
		next = strmap_next(&a->early, n);
		struct early *e = STRMAP_ENTRY(n, struct early, node);
		if (!e->fn) { /* no run took it: it will not run here */
			early_drop(a, e);
			any = true;
		}
	}
	struct cluster *c = a ? a->c : NULL;
	if (!any || !cluster_ready(c))
		return;
	/* One statement for them all, after the claims' own on the same connection: this
	 * process's claims of instants still to come were all made early (a fire is otherwise
	 * claimed at or after its instant), and the recent ones are found by claimed_at's
	 * index. A claim within ADMIT_GIVE_BACK_MARGIN of its instant, judged as each row is read,
	 * stays: the others may have asked for it at its instant already and lost, so it is
	 * theirs to serve once this instance's row says stopped (cluster_serve_stopped); given
	 * back then, nobody would serve the fire (it_cluster "giveback" checks it). */
	const char *params[] = {cluster_instance(c), cluster_boot_id(c)};
	if (cluster_submit(c, ADMIT_SQL_GIVE_BACK, 2, params, cluster_warn_failed,
	                   (void *)"could not give back a fire claimed before its instant") < 0)
		log_warning("cluster: cannot give back the fires claimed before their instant");
}

/* ---- lifetime ------------------------------------------------------------------------ */

int admit_new(struct clock *clock, const struct admit_hooks *hooks, struct admit **out)
{
	struct admit *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->hooks = *hooks;
	a->clock = clock;
	TAILQ_INIT(&a->uncl);
	clock_timer_init(&a->uncl_ev, unclaimed_cb, a);
	*out = a;
	return 0;
}

void admit_free(struct admit **ap)
{
	struct admit *a = *ap;
	if (!a)
		return;
	while (a->early.n)
		early_free(a, STRMAP_ENTRY(strmap_first(&a->early), struct early, node));
	strmap_free(&a->early);
	admit_set_cluster(a, NULL);
	clock_disarm(a->clock, &a->uncl_ev);
	if (a->n_uncl)
		log_notice("cluster: %zu fire(s) not claimed here were not checked (were they run "
		           "by another instance?): those that were not have no history row",
		           a->n_uncl);
	for (struct unclaimed *u; (u = TAILQ_FIRST(&a->uncl));) {
		TAILQ_REMOVE(&a->uncl, u, link);
		entry_free(u);
	}
	free(a);
	*ap = NULL;
}
