/* Putting a configuration in force (sched.h: sched_apply, sched_apply_start).
 *
 * Every scheduled job points into the configuration in force (its strings, its compiled
 * schedule, its conf_job), so a reload must visit every job: in one turn, 100,000 jobs would
 * hold the loop about 100 ms, and the fires due meanwhile would be that late. The apply goes
 * in slices instead, one per loop turn, 2 ms or 8,192 jobs at most (APPLY_SLICE_*), through
 * these phases:
 *
 *   update  each job of the new configuration: found by name (or made), pointed at its new
 *           entry, rescheduled if its schedule, enabled or zone changed, its staleness timer
 *           set; jobs with graph edges (before or after) are noted;
 *   edges   the noted jobs get their edges from the new graph (built off the loop);
 *   unlink  the jobs the new configuration no longer has lose their edges;
 *   retire  ... and go: their waiting fires are recorded as skipped, a run of theirs goes on
 *           (with copies of their strings).
 *
 * Between two slices the loop serves timers and connections. A job not reached yet still
 * points into the old configuration, which the caller keeps alive until DONE, so its fire
 * runs as before the reload. Nothing is freed that a job reached later points to: a job
 * leaves only in "retire", after every kept job's edges were set from the new graph and the
 * leaving jobs' edges were dropped. A job is "visited" when its seen flag equals the
 * apply's parity, which flips at each apply: no pass clears the flags. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "clock.h"
#include "sched_fresh_priv.h"
#include "sched_flow_priv.h"
#include "jobgraph.h"
#include "log.h"
#include "plugin.h"
#include "sched_priv.h"
#include "sched_recent_priv.h"

/* How long one turn goes on, and how many jobs it takes at most: about 300 ns a job (a
 * cache miss or three), so some 6,000 jobs in 2 ms. Fires due meanwhile are that much late
 * at most (docs/scaling.md "A reload without delaying due fires"). */
#define APPLY_SLICE_US 2000
#define APPLY_SLICE_JOBS 8192
/* The clock is read every this many jobs. */
#define APPLY_CHECK_EVERY 32

enum phase { AP_NONE, AP_UPDATE, AP_EDGES, AP_UNLINK, AP_RETIRE, AP_DONE };

static void apply_turn(void *arg);

/* A new job of configuration entry CJ, linked and indexed (NULL: out of memory). */
static struct job *job_add(struct sched *s, const struct conf_job *cj)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->conf = cj;
	j->s = s;
	j->next_fire = CRON_NEVER;
	j->paused = sched_is_paused(s, cj->name);
	clock_timer_init(&j->timer, sched_job_timer_cb, j);
	j->next = s->jobs;
	if (s->jobs)
		s->jobs->prev = j;
	s->jobs = j;
	strmap_insert(&s->index, &j->hnode, j->conf->name);
	return j;
}

/* J is removed: the configuration its entry is in goes after this reload, while a run of J may
 * go on. What the run reads of the entry is copied with its strings into one block; its other
 * keys are zero (sched_job_free frees it). */
static void own_conf(struct job *j)
{
	static const struct conf_job_more none; /* a removed job's keys: none set */
	static const struct conf_job lost = {.name = "?", .more = &none};
	const struct conf_job *cj = j->conf;
	size_t len = sizeof(*cj);
	const char *from[] = {cj->name, cj->command, cj->plugin, cj->database, cj->schedule};
	for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++)
		len += from[i] ? strlen(from[i]) + 1 : 0;
	struct conf_job *c = malloc(len);
	if (!c) {
		/* Its run ends without them. The name changes: out of the index first (the
		 * later removal will not find it there, and does nothing). */
		sched_job_log(j, LOG_LVL_ERROR,
		              "out of memory copying the removed job's definition");
		strmap_remove(&j->s->index, &j->hnode);
		j->conf = &lost;
		return;
	}
	*c = (struct conf_job){.more = &none, .kind = cj->kind, .enabled = cj->enabled};
	char **to[] = {&c->name, &c->command, &c->plugin, &c->database, &c->schedule};
	char *p = (char *)(c + 1);
	for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
		if (!from[i])
			continue;
		size_t n = strlen(from[i]) + 1;
		*to[i] = memcpy(p, from[i], n);
		p += n;
	}
	j->conf = c;
	j->hnode.key = j->conf->name; /* the index's key: the copy, equal to the one going */
	j->own_conf = true;
}

/* J is gone from the configuration: stop it, record its waiting fires as skipped, free it
 * unless a run of it goes on. */
static void job_retire(struct job *j)
{
	sched_job_log(j, LOG_LVL_INFO, "removed from the configuration");
	j->removed = true;
	j->plug = NULL; /* (the registry goes with the configuration) */
	own_conf(j);
	sched_timer_disarm(j);
	const char *why = "the job was removed from the configuration";
	(void)sched_job_drop_waiting(j, why);
	flow_job_removed(j, why);
	if (!j->active)
		sched_job_unlink_free(j);
}

/* Point J at its entry CJ; true if its next instant must be computed again. */
static bool job_update(struct job *j, const struct conf_job *cj)
{
	const struct conf_job *o = j->conf;
	const char *old_tz = o->more->cal.timezone;
	bool sched_changed = (o->schedule == NULL) != (cj->schedule == NULL) ||
	                     (o->schedule && strcmp(o->schedule, cj->schedule) != 0) ||
	                     o->enabled != cj->enabled ||
	                     (old_tz == NULL) != (cj->more->cal.timezone == NULL) ||
	                     (old_tz && strcmp(old_tz, cj->more->cal.timezone) != 0) ||
	                     o->more->cal.spread_ms != cj->more->cal.spread_ms ||
	                     o->cron.dates != cj->cron.dates || o->cron.flags != cj->cron.flags;
	/* kept for as long as its configuration is in force (sched_apply) */
	j->conf = cj;
	j->hnode.key = j->conf->name; /* the index's key (an equal string) goes with it */
	j->plug =
	    cj->plugin && j->s->plugins ? plugin_registry_find(j->s->plugins, cj->plugin) : NULL;
	j->pool = NULL; /* the database's pool, found again at its next run (exec.h) */
	return sched_changed;
}

static void note_edged(struct sched_apply_state *ap, struct job *j)
{
	if (ap->edged_all)
		return;
	if (array_grow(&ap->edged, ap->n_edged, &ap->cap_edged, sizeof(*ap->edged), 64) < 0) {
		ap->edged_all = true; /* the edges phase goes through every job instead */
		return;
	}
	ap->edged[ap->n_edged++] = j;
}

static void update_one(struct sched *s, size_t i)
{
	struct sched_apply_state *ap = &s->ap;
	const struct conf_job *cj = &s->cfg->jobs[i];
	struct job *j = i < ap->places.n_now ? ap->places.now[i] : NULL;
	bool fresh = false;

	/* the job of the old configuration's entry I, if it has this one's name */
	if (!j || j->conf != &ap->old->jobs[i] || strcmp(j->conf->name, cj->name) != 0)
		j = sched_job_find(s, cj->name);
	if (j && j->seen == ap->parity)
		return; /* a second job of that name (the configuration's check refuses it) */
	if (!j) {
		if (!(j = job_add(s, cj))) {
			ap->rc = -ENOMEM;
			return;
		}
		fresh = true;
		sched_recent_job_added(j); /* rows the history had for it, read before it came */
	}
	j->seen = ap->parity;
	if (ap->places.next)
		ap->places.next[i] = j;
	bool reschedule = job_update(j, cj);
	if (fresh || reschedule || ap->tz_changed)
		sched_job_schedule(j, 0);
	flow_job_applied(j);
	if (j->graph || (ap->has_edges && ap->has_edges[i]))
		note_edged(ap, j);
}

static void edges_one(struct sched *s, struct job *j)
{
	struct sched_apply_state *ap = &s->ap;
	size_t i = (size_t)(j->conf - s->cfg->jobs);
	if (flow_job_edges(j, ap->graph_ok ? &ap->graph.dag : NULL, i) < 0)
		ap->rc = -ENOMEM;
}

/* The job of the old configuration's entry K, if the new one does not have it. */
static struct job *leaving(struct sched *s, size_t k)
{
	struct sched_apply_state *ap = &s->ap;
	struct job *j = sched_job_find(s, ap->old->jobs[k].name);
	return j && j->seen != ap->parity ? j : NULL;
}

/* How many items the phase has. */
static size_t phase_len(const struct sched *s)
{
	const struct sched_apply_state *ap = &s->ap;
	switch (ap->phase) {
	case AP_UPDATE:
		return s->cfg->n_jobs;
	case AP_EDGES:
		return ap->edged_all ? s->cfg->n_jobs : ap->n_edged;
	case AP_UNLINK:
		if (!ap->unlink)
			return 0;
		/* fall through */
	case AP_RETIRE:
		return !ap->old ? 0 : ap->gone ? ap->n_gone : ap->old->n_jobs;
	default:
		return 0;
	}
}

static void do_item(struct sched *s, size_t pos)
{
	struct sched_apply_state *ap = &s->ap;
	struct job *j;
	switch (ap->phase) {
	case AP_UPDATE:
		update_one(s, pos);
		break;
	case AP_EDGES:
		j = ap->edged_all ? sched_job_find(s, s->cfg->jobs[pos].name) : ap->edged[pos];
		if (j)
			edges_one(s, j);
		break;
	case AP_UNLINK:
	case AP_RETIRE:
		j = leaving(s, ap->gone ? ap->gone[pos] : pos);
		if (j && ap->phase == AP_UNLINK)
			flow_job_unlink(j);
		else if (j)
			job_retire(j);
		break;
	}
}

/* What the apply built to work with: the new graph and the lists of jobs with edges. */
static void free_work(struct sched_apply_state *ap)
{
	jobgraph_free(&ap->graph);
	free(ap->has_edges);
	free(ap->edged);
	ap->has_edges = NULL;
	ap->edged = NULL;
	ap->n_edged = ap->cap_edged = 0;
}

/* Every job is in place: what comes once per apply. */
static void finish(struct sched *s)
{
	struct sched_apply_state *ap = &s->ap;
	flow_applied(s, ap->first);
	fresh_applied(s);
	if (ap->first) {
		for (struct job *j = s->jobs; j; j = j->next)
			if (j->conf->enabled && j->conf->schedule &&
			    j->conf->cron.kind == CRON_REBOOT)
				sched_job_fire(j, sched_now_us(s) / 1000000 * 1000000,
				               TRIGGER_REBOOT);
	}
	sched_admit_queued(s); /* max_running may have grown */
	free_work(ap);
	free(ap->places.now);
	ap->places.now = ap->places.next;
	ap->places.n_now = ap->places.now ? s->cfg->n_jobs : 0;
	ap->places.next = NULL;
	ap->edged_all = false;
	ap->old = NULL;
	ap->gone = NULL;
	ap->phase = AP_DONE;
}

/* Go through the phases: a slice of them (SLICED), or to the end. */
static void run_phases(struct sched *s, bool sliced)
{
	struct sched_apply_state *ap = &s->ap;
	int64_t t0 = clock_mono_us();
	size_t done = 0, slice = ap->slice ? ap->slice : APPLY_SLICE_JOBS;

	while (ap->phase != AP_DONE) {
		size_t n = phase_len(s);
		while (ap->pos < n) {
			if (sliced && done > 0 &&
			    (done >= slice || (done % APPLY_CHECK_EVERY == 0 &&
			                       clock_mono_us() - t0 >= APPLY_SLICE_US)))
				goto out;
			do_item(s, ap->pos++);
			done++;
		}
		ap->pos = 0;
		if (ap->phase == AP_RETIRE)
			finish(s);
		else
			ap->phase++;
	}
out:
	if (done > ap->st.most_jobs)
		ap->st.most_jobs = done;
}

static void account(struct sched_apply_state *ap, int64_t t0)
{
	int64_t us = clock_mono_us() - t0;
	ap->st.turns++;
	ap->st.total_us += us;
	if (us > ap->st.longest_us)
		ap->st.longest_us = us;
}

/* The apply is over: tell the caller. */
static void deliver(struct sched *s)
{
	struct sched_apply_state *ap = &s->ap;
	void (*done)(void *, int) = ap->done;
	clock_disarm(s->clock, &ap->ev);
	ap->phase = AP_NONE;
	ap->done = NULL;
	if (done)
		done(ap->done_arg, ap->rc);
}

static void apply_turn(void *arg)
{
	struct sched *s = arg;
	struct sched_apply_state *ap = &s->ap;
	int64_t t0 = clock_mono_us();

	if (ap->phase == AP_NONE)
		return;
	if (ap->phase == AP_DONE) {
		deliver(s); /* the turn after the last slice: the caller's part, on its own */
		return;
	}
	run_phases(s, true);
	if (clock_arm(s->clock, &ap->ev, 0) < 0) {
		run_phases(s, false); /* no timer: the rest in this turn */
		account(ap, t0);
		apply_turn(s);
		return;
	}
	account(ap, t0);
}

/* The first turn of an apply: the configuration-wide part, the job graph. */
static void begin(struct sched *s, const struct sched_apply_in *in)
{
	struct sched_apply_state *ap = &s->ap;
	const struct pgc_config *cfg = in->cfg;

	sched_apply_finish(s); /* one at a time */
	if (ap->phase == AP_DONE)
		deliver(s); /* its DONE was still to come: now, before this apply's */
	ap->rc = 0;
	ap->st = (struct sched_apply_stats){0};
	ap->first = in->first;
	/* A reload opens the zone again: only another zone reschedules every job.
	 * Rescheduling from "now" after a reload that held the loop across a second boundary
	 * lost the fires due meanwhile, without a trace. */
	ap->tz_changed = strcmp(cron_tz_name(s->tz), cron_tz_name(in->tz)) != 0;
	ap->old = s->cfg;
	ap->gone = in->gone && in->old && in->old == s->cfg ? in->gone : NULL;
	ap->n_gone = ap->gone ? in->n_gone : 0;
	ap->parity = !ap->parity;
	if (!ap->old) /* (the entries of no configuration) */
		ap->places.n_now = 0;
	free(ap->places.next); /* (a clear cut an apply short) */
	ap->places.next = calloc(cfg->n_jobs ? cfg->n_jobs : 1, sizeof(*ap->places.next));
	s->cfg = cfg;
	s->plugins = in->plugins;
	s->tz = in->tz;
	s->max_running = cfg->max_running > 0 ? cfg->max_running : 1;

	if (in->graph) {
		ap->graph = *in->graph;
		memset(in->graph, 0, sizeof(*in->graph));
		ap->graph_ok = true;
	} else {
		struct diag_list dl = {0};
		int rc = jobgraph_build(cfg, in->plugins, &ap->graph, &dl);
		for (size_t i = 0; i < dl.n; i++)
			log_error("%s:%d: %s", dl.items[i].file ? dl.items[i].file : "?",
			          dl.items[i].line, dl.items[i].message);
		diag_clear(&dl);
		if (rc == -ENOMEM)
			ap->rc = rc;
		else if (rc < 0)
			log_error("the job graph has a cycle; jobs run without their dependencies");
		ap->graph_ok = rc == 0;
	}
	if (ap->graph_ok && ap->graph.dag.n_edges) {
		ap->has_edges = calloc(cfg->n_jobs ? cfg->n_jobs : 1, 1);
		if (!ap->has_edges) {
			ap->edged_all = true;
		} else {
			for (size_t e = 0; e < ap->graph.dag.n_edges; e++) {
				const struct dag_edge *ed = &ap->graph.dag.edges[e];
				ap->has_edges[ed->from] = ap->has_edges[ed->to] = 1;
			}
		}
	}
	/* edges exist only where an apply's graph had some: without, no job loses any */
	ap->unlink = ap->had_edges;
	ap->had_edges = ap->graph_ok && ap->graph.dag.n_edges > 0;
	if (!clock_armed(&ap->ev))
		clock_timer_init(&ap->ev, apply_turn, s);
	ap->pos = 0;
	ap->phase = AP_UPDATE;
	sched_admit_queued(s); /* max_running may have grown */
}

int sched_apply_start(struct sched *s, const struct sched_apply_in *in,
                      void (*done)(void *arg, int rc), void *arg)
{
	struct sched_apply_state *ap = &s->ap;

	/* (this turn is the caller's: it is not counted in the stats) */
	begin(s, in);
	ap->done = done;
	ap->done_arg = arg;
	if (clock_arm(s->clock, &ap->ev, 0) < 0) {
		run_phases(s, false);
		ap->phase = AP_NONE;
		ap->done = NULL;
		return ap->rc < 0 ? ap->rc : -ENOMEM;
	}
	return 0;
}

int sched_apply(struct sched *s, const struct pgc_config *cfg, const cron_tz *tz,
                const struct plugin_registry *plugins, bool first)
{
	struct sched_apply_state *ap = &s->ap;
	struct sched_apply_in in = {.cfg = cfg, .tz = tz, .plugins = plugins, .first = first};
	int64_t t0 = clock_mono_us();

	begin(s, &in);
	run_phases(s, false);
	ap->phase = AP_NONE;
	account(ap, t0);
	return ap->rc;
}

void sched_apply_finish(struct sched *s)
{
	struct sched_apply_state *ap = &s->ap;
	if (ap->phase == AP_NONE || ap->phase == AP_DONE)
		return;
	int64_t t0 = clock_mono_us();
	run_phases(s, false);
	account(ap, t0);
	/* DONE comes in a turn of its own, as it would have */
	if (clock_arm(s->clock, &ap->ev, 0) < 0)
		log_error("out of memory arming a timer; the reload's end is not logged");
}

void sched_apply_clear(struct sched *s)
{
	struct sched_apply_state *ap = &s->ap;
	clock_disarm(s->clock, &ap->ev);
	free_work(ap);
	free(ap->places.now);
	free(ap->places.next);
	ap->places.now = ap->places.next = NULL;
	ap->places.n_now = 0;
	ap->phase = AP_NONE;
	ap->done = NULL;
}

bool sched_applying(const struct sched *s)
{
	return s->ap.phase != AP_NONE;
}

void sched_apply_stats(const struct sched *s, struct sched_apply_stats *out)
{
	*out = s->ap.st;
}

void sched_set_apply_slice(struct sched *s, size_t n)
{
	s->ap.slice = n;
}
