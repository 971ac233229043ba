/* Jobs between and after their runs: the job graph at run time, catch-up and the
 * alert conditions (sched_flow_priv.h). Everything here runs in the loop, driven by run ends and
 * timers; nothing polls. */
#include "sched_flow_priv.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "admit.h"
#include "config.h"
#include "duration.h"
#include "sched_fresh_priv.h"
#include "history.h"
#include "jobgraph.h"
#include "log.h"
#include "sched_priv.h"
#include "sched_recent_priv.h"
#include "text.h"

/* Catch-up counts missed fires up to this many (a six-field schedule down for a day has
 * 86,400): the count is only for the log line. */
#define CATCHUP_COUNT_MAX 100000

/* ---- pure parts ----------------------------------------------------------------------- */

int flow_graph_run_id(char *out, size_t outlen, const char *instance, int64_t start_us,
                      const char *job)
{
	int n = snprintf(out, outlen, "%s-%lld-%s", instance, (long long)start_us, job);
	return n < 0 || (size_t)n >= outlen ? -ENOSPC : 0;
}

int64_t flow_catchup_instant(const cron_expr *e, const cron_tz *tz, int64_t last, int64_t now,
                             long *missed)
{
	long count = 0;
	int64_t latest = CRON_NEVER;
	if (e->kind == CRON_REBOOT || last <= 0)
		goto out;
	int64_t t = cron_next(e, tz, last);
	while (t != CRON_NEVER && t <= now) {
		latest = t;
		if (++count >= CATCHUP_COUNT_MAX)
			break;
		t = cron_next(e, tz, t);
	}
	if (count >= CATCHUP_COUNT_MAX) {
		/* too many to walk from LAST: walk from a recent point instead, so the run still
		 * stands for the latest missed fire */
		static const int64_t spans[] = {60, 3600, 86400, 32 * 86400, 367 * 86400};
		for (size_t i = 0; i < sizeof(spans) / sizeof(spans[0]); i++) {
			int64_t from = now - spans[i] > last ? now - spans[i] : last;
			int64_t u = cron_next(e, tz, from);
			if (u == CRON_NEVER || u > now)
				continue;
			for (int k = 0; u != CRON_NEVER && u <= now && k < CATCHUP_COUNT_MAX; k++) {
				latest = u;
				u = cron_next(e, tz, u);
			}
			break;
		}
	}
out:
	if (missed)
		*missed = count;
	return latest;
}

bool flow_fanin_ready(const uint64_t *up_success_seq, size_t n, uint64_t start_seq)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (up_success_seq[i] <= start_seq)
			return false;
	return true;
}

/* ---- helpers -------------------------------------------------------------------------- */

static void arm_ms(struct sched *s, struct clock_timer *t, int64_t ms)
{
	if (clock_arm(s->clock, t, ms * 1000) < 0)
		log_error("out of memory arming a timer");
}

static void condition(struct job *j, enum alert_kind kind, bool active, const char *message)
{
	if (active)
		j->alerts_clear = false;
	if (j->s->alerts)
		alert_condition(j->s->alerts, kind, j->conf->name, active, message);
}

static bool job_ready(const struct job *j)
{
	uint64_t seqs[64];
	size_t n_ups = j->graph ? j->graph->n_ups : 0;
	if (n_ups == 0)
		return false;
	for (size_t i = 0; i < n_ups; i += 64) {
		size_t n = n_ups - i < 64 ? n_ups - i : 64;
		for (size_t k = 0; k < n; k++)
			seqs[k] = j->graph->ups[i + k]->success_seq;
		if (!flow_fanin_ready(seqs, n, j->start_seq))
			return false;
	}
	return true;
}

/* J's first upstream whose run started or waits, or with NOTIFIED one with notifications
 * pending, or with OWED one that owes a listener-reconnect run (its catch-up) or holds
 * notifications for after its run; NULL if none. */
static const struct job *upstream_busy(const struct job *j, bool notified, bool owed)
{
	for (size_t i = 0; j->graph && i < j->graph->n_ups; i++) {
		const struct job *u = j->graph->ups[i];
		if (u->active || (notified && u->notify_pending) ||
		    (owed && (u->reconnect_owed || sched_job_notified(u))))
			return u;
	}
	return NULL;
}

/* A job its upstreams' successes start: one with neither a schedule nor freshness (with
 * freshness an upstream's success is a change of its sources, gathered until its SLA asks
 * for a run: sched_fresh.c). */
static bool upstream_driven(const struct job *j)
{
	return j->graph && j->graph->n_ups > 0 && !j->conf->schedule && !j->fresh &&
	       j->conf->enabled && !j->removed;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* ---- job lifetime --------------------------------------------------------------------- */

static void stale_cb(void *arg);
static void drop_deferred(struct job *j, const char *why);

/* A job's retry and staleness timers are made when first needed (sched.c retry, stale_arm):
 * most jobs never retry and set no max_staleness, and two events embedded in every job would
 * be 25 MB at 100,000 jobs. */
void flow_retry_disarm(struct job *j)
{
	if (j->more && j->more->retry)
		clock_disarm(j->s->clock, &j->more->retry->ev);
}

static void stale_disarm(struct job *j)
{
	if (j->more && j->more->stale)
		clock_disarm(j->s->clock, &j->more->stale->ev);
}

struct job_more *sched_job_more(struct job *j)
{
	if (!j->more)
		j->more = calloc(1, sizeof(*j->more));
	return j->more;
}

void flow_job_drain(struct job *j)
{
	stale_disarm(j);
}

void flow_job_free(struct job *j)
{
	flow_retry_disarm(j);
	stale_disarm(j);
	flow_job_unlink(j);
	if (j->graph) {
		sched_run_free(&j->graph->parked);
		free(j->graph->graph_again_id);
	}
	if (j->more) {
		sched_run_free(&j->more->notify_wait);
		free(j->more->retry);
		free(j->more->stale);
	}
	drop_deferred(j, NULL);
	free(j->graph);
	j->graph = NULL;
	free(j->more);
	j->more = NULL;
}

/* ---- the graph ------------------------------------------------------------------------ */

/* The jobs at dag indexes IDX (N of them) as a malloc'd array; *OUT_N may be less than N
 * if a job is not scheduled (it failed to load). NULL when N is 0 (most jobs have no edge:
 * an empty array each would be a 32-byte chunk, 6 MB at 100,000 jobs), or out of memory. */
static struct job **jobs_of(struct sched *s, const struct dag *g, const size_t *idx, size_t n,
                            size_t *out_n)
{
	*out_n = 0;
	if (n == 0)
		return NULL;
	struct job **out = calloc(n, sizeof(*out));
	size_t k = 0;
	for (size_t i = 0; out && i < n; i++) {
		struct job *j = sched_job_find(s, g->names[idx[i]]);
		if (j)
			out[k++] = j;
	}
	*out_n = k;
	return out;
}

static int set_edges(struct sched *s, struct job *j, const struct dag *g, size_t i)
{
	size_t nu = dag_upstreams(g, i, NULL, 0), nd = dag_downstreams(g, i, NULL, 0);
	if (nu == 0 && nd == 0)
		return 0; /* no edge: no graph made */
	size_t *idx = calloc((nu > nd ? nu : nd) + 1, sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	bool want_ups = nu > 0, want_downs = nd > 0;
	dag_upstreams(g, i, idx, nu);
	struct job **ups = jobs_of(s, g, idx, nu, &nu);
	dag_downstreams(g, i, idx, nd);
	struct job **downs = jobs_of(s, g, idx, nd, &nd);
	free(idx);
	if ((want_ups && !ups) || (want_downs && !downs) ||
	    (!j->graph && !(j->graph = calloc(1, sizeof(*j->graph))))) {
		free(ups);
		free(downs);
		return -ENOMEM;
	}
	j->graph->ups = ups;
	j->graph->n_ups = nu;
	j->graph->downs = downs;
	j->graph->n_downs = nd;
	return 0;
}

static void last_fires_cb(void *arg, const char *job_name, int64_t last_fire_s,
                          int64_t last_success_us);

static void stale_arm(struct job *j)
{
	int64_t max_ms = j->conf->more->alerts.max_staleness_ms;
	stale_disarm(j);
	/* a disabled job is not expected to run, so it cannot be stale */
	if (max_ms <= 0 || j->removed || !j->conf->enabled || j->s->draining)
		return;
	int64_t now = sched_now_us(j->s);
	/* no success known (here or in the history): counted from when pgcrond started */
	int64_t base = j->last && j->last->success_us ? j->last->success_us : now;
	struct job_more *m = sched_job_more(j);
	if (m && !m->stale && (m->stale = malloc(sizeof(*m->stale))) != NULL)
		clock_timer_init(&m->stale->ev, stale_cb, j);
	if (!m || !m->stale)
		return; /* out of memory: no staleness alert */
	arm_ms(j->s, &m->stale->ev, (base - now) / 1000 + max_ms);
	m->stale->ms = max_ms;
}

void flow_job_unlink(struct job *j)
{
	if (!j->graph)
		return;
	free(j->graph->ups);
	free(j->graph->downs);
	j->graph->ups = j->graph->downs = NULL;
	j->graph->n_ups = j->graph->n_downs = 0;
}

int flow_job_edges(struct job *j, const struct dag *g, size_t i)
{
	flow_job_unlink(j);
	return g ? set_edges(j->s, j, g, i) : 0;
}

void flow_job_applied(struct job *j)
{
	int64_t want = !j->removed && j->conf->enabled ? j->conf->more->alerts.max_staleness_ms : 0;
	if (want <= 0)
		stale_disarm(j);
	else if (!j->more || !j->more->stale || !clock_armed(&j->more->stale->ev) ||
	         j->more->stale->ms != want)
		stale_arm(j);
}

void flow_applied(struct sched *s, bool first)
{
	if (first && s->hist && !s->catchup_asked) {
		s->catchup_asked = true;
		hist_request_last_fires(s->hist, last_fires_cb, s);
		sched_recent_request(s); /* what the status showed before the restart */
	}
}

bool flow_park(struct run *r)
{
	struct job *j = r->job;
	if (r->waited || r->trigger == TRIGGER_UPSTREAM || r->trigger == TRIGGER_RETRY)
		return false;
	const struct job *u = upstream_busy(j, true, false);
	if (!u)
		return false;
	r->waited = true;
	if (j->graph->parked) /* (upstream_busy found an upstream: J has its graph) */
		sched_record(&j->graph->parked, SCHED_SKIPPED,
		             "superseded by a newer fire while waiting for an upstream job");
	sched_run_to(r, RUN_PARKED);
	sched_job_log(j, LOG_LVL_INFO, "waiting for upstream job %s to finish", u->conf->name);
	return true;
}

/* Start downstream D because its upstreams succeeded, within graph run GRAPH_RUN: queued,
 * and decided when its turn comes (D may be busy by then). */
static void fire_downstream(struct job *d, const char *graph_run)
{
	struct run *r = sched_run_new(d, 0, TRIGGER_UPSTREAM);
	if (!r)
		return;
	r->waited = true;
	r->graph_run = dup_or_null(graph_run);
	sched_run_defer(r);
}

bool flow_deferred_taken(struct run *r)
{
	struct job *d = r->job;
	if (!d->active || r->trigger != TRIGGER_UPSTREAM || !d->graph)
		return false;
	/* it runs now with older data: run once more when it ends */
	d->graph->graph_again = true;
	free(d->graph->graph_again_id);
	d->graph->graph_again_id = r->graph_run;
	r->graph_run = NULL;
	sched_job_owes(d, d->graph->graph_again_id); /* a survivor runs it if we die */
	sched_run_free(&r);
	return true;
}

/* Take J's queued fires out of the queue; with WHY, each gets a skipped row saying so. */
static void drop_deferred(struct job *j, const char *why)
{
	struct run *next;
	for (struct run *r = TAILQ_FIRST(&j->s->flow); r; r = next) {
		next = TAILQ_NEXT(r, defer);
		if (r->job != j)
			continue;
		if (why)
			sched_record_skipped(&r, why);
		sched_run_free(&r);
	}
}

void flow_job_removed(struct job *j, const char *why)
{
	drop_deferred(j, why);
	stale_disarm(j);
	flow_job_unlink(j);
}

void flow_job_idle(struct job *j)
{
	if (j->graph && j->graph->graph_again) {
		j->graph->graph_again = false;
		sched_job_owes_not(j);
		char *id = j->graph->graph_again_id;
		j->graph->graph_again_id = NULL;
		if (job_ready(j))
			fire_downstream(j, id);
		free(id);
	}
	for (size_t i = 0; j->graph && i < j->graph->n_downs; i++) {
		struct job *d = j->graph->downs[i];
		/* The parked run waited for the upstream runs due when it fired; one that merely
		 * has notifications pending again does not hold it back, or a downstream of a job
		 * notified without pause would never run. */
		if (d->graph && d->graph->parked && !upstream_busy(d, false, false)) {
			sched_job_log(d, LOG_LVL_DEBUG, "upstream jobs done; running");
			sched_run_defer(d->graph->parked);
		}
	}
}

/* A final failure of U: the downstream jobs it would have caused get upstream_failed rows
 * and alerts, transitively; MARK keeps a diamond from visiting a job twice. */
static void fail_downstream(struct job *d, const struct job *u, const struct job *root,
                            const char *graph_run, uint64_t mark)
{
	if (d->graph->mark == mark || d->removed)
		return;
	d->graph->mark = mark;
	if (d->fresh && !d->reconnect_owed) {
		/* not started by its upstreams: a run of it waiting for U goes on with what it
		 * has (its own sources' changes, an earlier success of U) */
		if (d->graph->parked)
			sched_run_defer(d->graph->parked);
		return;
	}
	if (!upstream_driven(d) && !d->graph->parked && !d->reconnect_owed)
		return;
	d->reconnect_owed = false;
	char msg[512];
	if (u == root)
		snprintf(msg, sizeof(msg), "not run: upstream job %s failed", root->conf->name);
	else
		snprintf(msg, sizeof(msg), "not run: upstream job %s failed (via %s)",
		         root->conf->name, u->conf->name);
	struct run *r = d->graph->parked ? d->graph->parked : sched_run_new(d, 0, TRIGGER_UPSTREAM);
	if (r) {
		if (!r->graph_run)
			r->graph_run = dup_or_null(graph_run);
		sched_record(&r, SCHED_UPSTREAM_FAILED, msg);
	}
	sched_job_log(d, LOG_LVL_WARNING, "%s", msg);
	condition(d, ALERT_UPSTREAM_FAILED, true, msg);
	for (size_t i = 0; d->graph && i < d->graph->n_downs; i++)
		fail_downstream(d->graph->downs[i], d, root, graph_run, mark);
}

static void on_success(struct run *r)
{
	struct job *j = r->job;
	struct sched *s = j->s;
	for (size_t i = 0; j->graph && i < j->graph->n_downs; i++)
		if (j->graph->downs[i]->graph->n_ups >
		    1) { /* a fan-in's other upstreams may run elsewhere */
			admit_graph(s->admit, j->conf->name, false);
			break;
		}
	/* ends the alerts raised since the last success (one lookup each): a job that stays
	 * healthy asks once, at its first success */
	if (!j->alerts_clear) {
		condition(j, ALERT_FAILED, false, "the job succeeded again");
		condition(j, ALERT_CONSECUTIVE, false, "the job succeeded again");
		condition(j, ALERT_UPSTREAM_FAILED, false, "the job succeeded again");
		condition(j, ALERT_STALE, false, "refreshed again");
		j->alerts_clear = true;
	}
	stale_arm(j); /* (none without max_staleness) */
	/* fan-out: every ready downstream starts now, within max_running */
	for (size_t i = 0; j->graph && i < j->graph->n_downs; i++) {
		struct job *d = j->graph->downs[i];
		/* a listener reconnect's catch-up: the downstream runs after its upstreams, in
		 * the same graph run, whether or not it has a schedule of its own */
		bool owed = d->reconnect_owed && !d->removed && !upstream_busy(d, false, true);
		if ((upstream_driven(d) && job_ready(d)) || owed) {
			d->reconnect_owed = false;
			fire_downstream(d, r->graph_run);
		}
	}
}

static void on_final_failure(struct run *r, const struct flow_outcome *o)
{
	struct job *j = r->job;
	struct sched *s = j->s;
	const struct conf_job *c = j->conf;
	char msg[768];

	j->consecutive++;
	if (o->sqlstate && strncmp(o->sqlstate, "08", 2) == 0 && !j->removed &&
	    c->catchup == CATCHUP_ONCE && j->conf->schedule && !s->draining) {
		/* the database did not answer: run once when it does (catch-up) */
		j->owed_catchup = true;
		if (s->ex.probe(s->ex.ctx, j->conf->database) < 0)
			j->owed_catchup = false;
	}
	int after = c->more->alerts.after > 1 ? c->more->alerts.after : 1;
	if (after <= 1) {
		/* the kind already says "failed": the message says why, once; cut on a character
		 * (a notify sink's NOTIFY refuses a broken one) */
		text_format(msg, sizeof(msg), "%s%s%s%s%s", r->attempt > 1 ? "after retries: " : "",
		            o->message ? o->message : "", o->sqlstate ? " (SQLSTATE " : "",
		            o->sqlstate ? o->sqlstate : "", o->sqlstate ? ")" : "");
		condition(j, ALERT_FAILED, true, msg);
	} else if (j->consecutive >= after) {
		text_format(msg, sizeof(msg), "failed %d times in a row; last error: %s",
		            j->consecutive, o->message ? o->message : "");
		condition(j, ALERT_CONSECUTIVE, true, msg);
	} else {
		sched_job_log(j, LOG_LVL_INFO, "failure %d of %d before alerting (alert_after)",
		              j->consecutive, after);
	}
	uint64_t mark = ++s->flow_seq;
	if (j->graph)
		j->graph->mark = mark;
	for (size_t i = 0; j->graph && i < j->graph->n_downs; i++)
		fail_downstream(j->graph->downs[i], j, j, r->graph_run, mark);
}

void flow_run_begin(struct run *r)
{
	struct job *j = r->job;
	struct sched *s = j->s;
	if (!r->graph_run && j->graph && (j->graph->n_downs || j->graph->n_ups)) {
		char id[320];
		if (flow_graph_run_id(id, sizeof(id), s->instance, r->start_us, j->conf->name) == 0)
			r->graph_run = strdup(id);
	}
	if (j->fresh)
		fresh_run_begin(r);
	if (j->conf->more->alerts.warn_duration_ms > 0) {
		clock_timer_init(&r->slow_ev, flow_slow_cb, r);
		r->slow_armed = clock_arm(s->clock, &r->slow_ev,
		                          j->conf->more->alerts.warn_duration_ms * 1000) == 0;
		if (!r->slow_armed)
			log_error("out of memory arming a timer");
	}
	if (j->graph && j->graph->n_ups > 1)
		admit_graph(s->admit, j->conf->name, true);
}

void flow_slow_cb(void *arg)
{
	struct run *r = arg;
	char d[32], msg[160];
	r->slow_armed = false;
	/* a job removed while it ran has no warn_duration any more, and nobody to alert about */
	if (r->job->removed)
		return;
	r->slow_alerted = true;
	duration_format(r->job->conf->more->alerts.warn_duration_ms, d, sizeof(d));
	snprintf(msg, sizeof(msg), "running for more than %s (warn_duration); still running", d);
	condition(r->job, ALERT_SLOW, true, msg);
}

void flow_run_end(struct run *r, const struct flow_outcome *o, int64_t end_us)
{
	struct job *j = r->job;
	struct sched *s = j->s;

	if (r->slow_armed) {
		clock_disarm(s->clock, &r->slow_ev);
		r->slow_armed = false;
	}
	if (j->fresh ||
	    (j->graph && j->graph->n_downs)) /* its own freshness, its downstreams' sources */
		fresh_run_end(r, o->ok, end_us);
	if (r->slow_alerted) {
		char msg[96];
		snprintf(msg, sizeof(msg), "finished after %lld s",
		         (long long)((end_us - r->start_us) / 1000000));
		condition(j, ALERT_SLOW, false, msg);
	}
	if (o->ok) {
		on_success(r);
		return;
	}
	if (o->cancelled || j->active)
		return; /* pgcrond stopped it (replace, shutdown): policy; or its retry (sched.c) */
	on_final_failure(r, o);
}

/* ---- staleness ------------------------------------------------------------------------ */

static void stale_cb(void *arg)
{
	struct job *j = arg;
	struct sched *s = j->s;
	char d[32], age[32], msg[256];
	int64_t max_ms = j->conf->more->alerts.max_staleness_ms;
	if (max_ms <= 0 || !j->conf->enabled || j->removed || s->draining)
		return;
	/* freshness: sources seen unchanged since the last success count as one */
	struct fresh_view fv;
	int64_t now = sched_now_us(s), ok_us = j->last ? j->last->success_us : 0;
	fresh_view(j, now, &fv);
	if (fv.fresh_as_of_us > ok_us && now - fv.fresh_as_of_us < max_ms * 1000) {
		arm_ms(s, &j->more->stale->ev, (fv.fresh_as_of_us - now) / 1000 + max_ms);
		return;
	}
	duration_format(max_ms, d, sizeof(d));
	if (ok_us) {
		/* whole seconds: "1h2s", not "1h2s13ms" */
		duration_format((sched_now_us(s) - ok_us) / 1000000 * 1000, age, sizeof(age));
		snprintf(msg, sizeof(msg), "last success %s ago, older than max_staleness (%s)",
		         age, d);
	} else {
		snprintf(msg, sizeof(msg),
		         "no success recorded, and pgcrond started longer "
		         "than max_staleness (%s) ago",
		         d);
	}
	condition(j, ALERT_STALE, true, msg);
	/* repeats come from alert_condition at alert_repeat; a success re-arms from scratch */
	int64_t repeat = s->cfg ? s->cfg->alert_repeat_ms : 0;
	if (repeat > 0)
		arm_ms(s, &j->more->stale->ev, repeat);
}

/* ---- catch-up ------------------------------------------------------------------------- */

static bool catchup_wanted(const struct job *j)
{
	return j->conf->catchup == CATCHUP_ONCE && j->conf->enabled && !j->removed &&
	       j->conf->schedule && j->conf->cron.kind != CRON_REBOOT && !j->s->draining;
}

/* A start's catch-ups logged one a line; the rest at debug, and one line counts them (a
 * restart of 15,000 jobs every second would log 15,000 lines). */
#define CATCHUPS_TOLD 10

static void fire_catchup(struct job *j, int64_t instant_s, const char *why, bool start)
{
	if (j->active) {
		sched_job_log(j, LOG_LVL_INFO, "%s; the run in progress stands for the catch-up",
		              why);
		return;
	}
	bool told = !start || ++j->s->catchups <= CATCHUPS_TOLD;
	sched_job_log(j, told ? LOG_LVL_NOTICE : LOG_LVL_DEBUG, "%s; running once (catchup = once)",
	              why);
	struct run *r = sched_run_new(j, instant_s * 1000000, TRIGGER_CATCHUP);
	if (r)
		sched_run_defer(r);
}

static void last_fires_cb(void *arg, const char *job_name, int64_t last_fire_s,
                          int64_t last_success_us)
{
	struct sched *s = arg;
	if (!job_name) {
		if (s->catchups > CATCHUPS_TOLD)
			log_notice(
			    "%ld more jobs missed scheduled fires while pgcrond was not running; "
			    "each runs once now (catchup = once; trigger catchup in the history)",
			    s->catchups - CATCHUPS_TOLD);
		s->catchups = 0;
		return;
	}
	struct job *j = sched_job_find(s, job_name);
	if (!j)
		return;
	/* staleness counts from the last success any earlier process saw, not from our start */
	struct job_last *l = last_success_us > 0 ? sched_job_last(j) : NULL;
	if (l && last_success_us > l->success_us) {
		l->success_us = last_success_us;
		stale_arm(j);
	}
	if (!catchup_wanted(j) || last_fire_s <= 0)
		return;
	/* a fire served since pgcrond started already ran "as soon as it could"; so did a fire
	 * after the last one recorded that a killed process claimed and never ran, which this
	 * one served as its catch-up (sched_input.c) */
	if (j->last_fire > last_fire_s || (j->last && j->last->catchup_s > last_fire_s))
		return;
	long missed = 0;
	int64_t now = sched_now_us(s) / 1000000;
	int64_t at =
	    flow_catchup_instant(&j->conf->cron, sched_job_tz(j), last_fire_s, now, &missed);
	if (at == CRON_NEVER)
		return;
	char why[160];
	snprintf(why, sizeof(why), "%ld scheduled fire(s) passed while pgcrond was not running",
	         missed);
	fire_catchup(j, at, why, true);
}

void flow_db_reachable(void *arg, const char *database)
{
	struct sched *s = arg;
	for (struct job *j = s->jobs; j; j = j->next) {
		if (!j->owed_catchup || strcmp(j->conf->database, database) != 0)
			continue;
		j->owed_catchup = false;
		if (!catchup_wanted(j))
			continue;
		char why[160];
		snprintf(why, sizeof(why), "database %s is reachable again after failed fires",
		         database);
		fire_catchup(j, j->last_fire > 0 ? j->last_fire : sched_now_us(s) / 1000000, why,
		             false);
	}
}
