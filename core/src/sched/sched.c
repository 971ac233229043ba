/* The scheduler: job timers, overlap policies, the max_running queue, run bookkeeping.
 *
 * Each job owns one timer (a clock_timer in struct job, on the scheduler's clock: clock.h),
 * armed for its next instant as a relative delay computed from the wall clock. Delays run on
 * the monotonic clock, so a timer that wakes before its instant (wall clock stepped back) is
 * simply re-armed. A timer that wakes late (the loop stalled, the process was stopped, the system
 * suspended) serves the fires it missed by the job's catch-up policy, never silently. Steps
 * of the wall clock are noticed every few seconds, and at a wake-up off its instant, by
 * comparing it with the monotonic clock; they are handled as cronie does (see
 * sched_check_clock). */
#include "sched.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admit.h"
#include "alert.h"
#include "duration.h"
#include "exec.h"
#include "sched_fresh_priv.h"
#include "sched_flow_priv.h"
#include "history.h"
#include "job_kind.h"
#include "log.h"
#include "metrics.h"
#include "retry.h"
#include "sched_priv.h"
#include "sched_recent_priv.h"
#include "text.h"

/* A step back by more than this recomputes every job's next instant from the new time, as
 * cronie does (the clock was wrong, not adjusted): fixed-time jobs wait out smaller steps so
 * that a fire already served is not served again. */
#define CLOCK_BACK_RECOMPUTE_S (3 * 3600)
/* A fire served within this long after its instant is on time; later, it was missed and the
 * job's catch-up policy decides (docs/jobs.md, "Jobs that behave": missed fires). */
#define MISSED_TOLERANCE_US 1000000
/* A job whose last run held its connection this long (or that has not run since the start,
 * unless its run comes in a burst: exec.h, name_unless_burst) has its runs named in
 * pg_stat_activity ('pgcrond: JOB'); a shorter run would hardly be seen there, and naming it
 * costs a statement per run (exec.h: name_backend). */
#define NAMED_RUN_MS 1000

static void run_begin(struct run *r);
static void after_run(struct job *j);

/* ---- timers --------------------------------------------------------------------------- */

int64_t sched_next_fire(const cron_expr *e, const cron_tz *tz, int64_t prev, int64_t now)
{
	if (e->kind == CRON_REBOOT)
		return CRON_NEVER;
	return cron_next(e, tz, prev > now ? prev : now);
}

/* The one pair that arms and disarms a job's timer. */
void sched_timer_disarm(struct job *j)
{
	clock_disarm(j->s->clock, &j->timer);
}

void sched_job_arm(struct job *j, int64_t now)
{
	if (j->next_fire == CRON_NEVER || j->s->draining || j->paused) {
		sched_timer_disarm(j);
		return; /* paused: next_fire stays, so sched_resume() sees what was missed */
	}
	/* clock_arm() moves a timer already armed. Only a cluster that claims fires claims them
	 * early (not a lone instance): J wakes PRECLAIM_LEAD_US before its fire's instant, once
	 * per fire, whatever the claim's fate (preclaim_ask), while that moment is still to come */
	int64_t lead = admit_ahead(j->s->admit) && j->early_us != j->next_fire * 1000000 &&
	                       j->next_fire * 1000000 - PRECLAIM_LEAD_US > now
	                   ? PRECLAIM_LEAD_US
	                   : 0;
	int64_t delay = j->next_fire * 1000000 - now - lead;
	if (clock_arm(j->s->clock, &j->timer, delay) < 0)
		sched_job_log(j, LOG_LVL_ERROR, "cannot arm the job's timer");
	else
		sched_warm_note(j->s, j->next_fire, now);
}

bool sched_job_schedulable(const struct job *j)
{
	return j->conf->enabled && !j->removed && j->conf->schedule &&
	       j->conf->cron.kind != CRON_REBOOT;
}

/* J's next_fire moved (a new schedule, a clock step, disabled): a fire claimed before its
 * instant (preclaim_ask) that is still to come and no longer the next goes back. */
static void early_stale(struct job *j)
{
	if (j->early_us > j->last_fire * 1000000 && j->early_us != j->next_fire * 1000000)
		admit_early_drop(j->s->admit, j->conf->name, j->early_us, NULL);
}

/* Compute the next instant from now (after PREV) and arm it (none: disarmed). */
void sched_job_schedule(struct job *j, int64_t prev)
{
	int64_t now = sched_now_us(j->s);
	j->next_fire = sched_job_schedulable(j)
	                   ? sched_next_fire(&j->conf->cron, sched_job_tz(j), prev, now / 1000000)
	                   : CRON_NEVER;
	early_stale(j);
	sched_job_arm(j, now);
}

/* ---- runs ----------------------------------------------------------------------------- */

void sched_job_free(struct job **jp)
{
	struct job *j = *jp;
	if (!j)
		return;
	sched_timer_disarm(j);
	admit_early_drop(j->s->admit, j->conf->name, 0, NULL);
	fresh_job_free(j);
	flow_job_free(j);
	sched_recent_job_free(j);
	if (j->last)
		free(j->last->message);
	free(j->last);
	if (j->own_conf)
		free((void *)j->conf); /* with its strings (sched_apply.c: own_conf) */
	free(j);
	*jp = NULL;
}

void sched_job_unlink_free(struct job *j)
{
	struct sched *s = j->s;
	strmap_remove(&s->index, &j->hnode);
	if (j->prev)
		j->prev->next = j->next;
	else
		s->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	sched_job_free(&j);
}

static bool ask_admission(struct run *r);

/* Make R the job's active run: ask whether it may run here (admit.h: with several
 * instances, its claim), then start it or wait for a max_running slot. The claim comes
 * first, without a slot, so that the fires due together are claimed in one statement however
 * many of them wait for a slot, and a run that gets a slot starts at once. */
void sched_run_admit(struct run *r)
{
	struct sched *s = r->job->s;
	if (r->adm == ADMIT_NONE && r->state != RUN_CLAIMING && ask_admission(r))
		return; /* on_admit() admits it */
	/* a run waits for a slot, and for a history that cannot keep up with the runs */
	bool backlog = sched_held_back(s);
	if (s->n_running < (size_t)s->max_running && s->queue.n == 0 && !backlog) {
		run_begin(r);
		return;
	}
	if (!sched_run_to(r, RUN_QUEUED)) {
		sched_job_log(r->job, LOG_LVL_ERROR, "out of memory; fire dropped");
		sched_run_free(&r);
		return;
	}
	if (backlog)
		sched_job_log(r->job, LOG_LVL_DEBUG, "waiting for the history to catch up");
	else
		sched_job_log(r->job, LOG_LVL_DEBUG, "waiting for a run slot (max_running = %d)",
		              s->max_running);
	if (!r->noted && r->trigger == TRIGGER_UPSTREAM)
		sched_work_note(r, 0); /* only this instance knows it is due */
}

static void retry_cb(void *arg)
{
	struct job *j = arg;
	struct run *r = j->active;
	if (!r || r->state != RUN_RETRY_WAIT || j->paused)
		return; /* paused: the retry waits for sched_resume() */
	sched_run_to(r, RUN_DUE);
	r->queue_at_us = sched_now_us(j->s);
	sched_run_admit(r);
}

/* R failed as O: its retry, if its job's policy wants one, becomes the job's active run
 * (RUN_RETRY_WAIT), its timer armed (made at first use: most jobs never retry). */
static void retry(struct run *r, const struct flow_outcome *o)
{
	struct job *j = r->job;
	struct sched *s = j->s;
	const struct conf_job *c = j->conf;
	if (o->cancelled || s->draining || j->removed || o->unknown_commit ||
	    !retry_should(c, r->attempt, o->transient ? RETRY_SQLSTATE_CONNECTION : o->sqlstate,
	                  o->transient ? false : o->timed_out))
		return; /* cancelled: pgcrond stopped it (replace, shutdown), policy */
	int64_t delay =
	    retry_delay_ms(c, r->attempt, s->random ? s->random(s->random_arg) : arc4random());
	struct run *nr = NULL;
	struct job_more *m = sched_job_more(j);
	if (m && !m->retry && (m->retry = malloc(sizeof(*m->retry))) != NULL)
		clock_timer_init(&m->retry->ev, retry_cb, j);
	/* a retry waits for its timer alone: without one the failure is final */
	if (!m || !m->retry || clock_arm(s->clock, &m->retry->ev, delay * 1000) < 0)
		sched_job_log(j, LOG_LVL_ERROR, "out of memory arming the retry: no retry");
	else if (!(nr = sched_run_new(j, r->scheduled_us, TRIGGER_RETRY)))
		flow_retry_disarm(j);
	if (!nr)
		return;
	nr->attempt = r->attempt + 1;
	nr->waited = true;
	sched_run_to(nr, RUN_RETRY_WAIT);
	nr->graph_run = r->graph_run;
	r->graph_run = NULL;
	nr->waiter = r->waiter; /* the waiter hears the final attempt */
	r->waiter = NULL;
	nr->payloads = r->payloads; /* the retry serves the same notifications */
	nr->n_payloads = r->n_payloads;
	r->payloads = NULL;
	r->n_payloads = 0;
	char d[32];
	duration_format(delay, d, sizeof(d));
	sched_job_log(j, LOG_LVL_NOTICE, "retrying in %s (attempt %d of %d)", d, nr->attempt,
	              c->retries + 1);
	m->retry->at_us = sched_now_us(s) + delay * 1000;
	sched_work_note(nr, m->retry->at_us); /* a survivor's if we die */
}

/* R is over as O: its history, retries, alerts; what waited for it goes next. */
static void run_end(struct run *r, const struct flow_outcome *o)
{
	struct job *j = r->job;
	struct sched *s = j->s;
	int64_t end = r->start_us + (sched_mono_us(s) - r->start_mono_us);
	bool ok = o->ok;
	/* a run whose start mark was refused sent nothing: another instance runs the job */
	const char *message = o->message, *sqlstate = r->unmarked ? NULL : o->sqlstate;
	enum sched_status st = ok ? SCHED_SUCCEEDED : r->unmarked ? SCHED_SKIPPED : SCHED_FAILED;
	const char *status = sched_recent_statuses[st];
	struct job_last *l = sched_job_last(j); /* NULL: out of memory */

	/* history = "failures": a success is counted, its row goes (the claim fences a run, not
	 * its row: docs/several-instances.md) */
	if (s->hist && ok && !j->removed && j->conf->history == HISTORY_FAILURES) {
		struct hist_run hr = {.job_name = j->conf->name,
		                      .trigger = run_trigger_names[r->trigger],
		                      .scheduled_us = r->scheduled_us,
		                      .start_us = r->start_us}; /* what a count says of its run */
		hist_count(s->hist, r->hist_key, &hr, end);
	} else if (s->hist) {
		hist_finish(s->hist, r->hist_key, r->start_us, status, message, sqlstate, end);
	}
	/* lateness of scheduled first attempts only: a retry or a catch-up is late on purpose */
	bool timely = r->attempt == 1 && r->scheduled_us && r->trigger == TRIGGER_SCHEDULE;
	struct metrics_run mr = {.job = j->conf->name,
	                         .counters = l ? &l->counters : NULL,
	                         .status = status,
	                         .duration_us = end - r->start_us,
	                         .lateness_us = timely ? r->start_us - r->scheduled_us : -1,
	                         .end_us = end,
	                         .message = message,
	                         .sqlstate = sqlstate};
	metrics_run_end(s->metrics, &mr);
	long long ms = (long long)((end - r->start_us) / 1000);
	if (ok)
		sched_job_log(j, LOG_LVL_INFO, "succeeded in %lld ms: %s", ms, message);
	else if (r->unmarked)
		sched_job_log(j, LOG_LVL_INFO, "skipped: %s", message);
	else if (sqlstate && *sqlstate)
		sched_job_log(j, LOG_LVL_WARNING, "failed after %lld ms: %s (SQLSTATE %s)", ms,
		              message, sqlstate);
	else
		sched_job_log(j, LOG_LVL_WARNING, "failed after %lld ms: %s", ms, message);

	sched_run_to(r, RUN_ENDED); /* its job lock goes */
	sched_recent_ended(r, st, message, sqlstate, end);
	if (ok) { /* what a success resets, for every job (flow_run_end: a failure counts) */
		j->success_seq = ++s->flow_seq;
		j->owed_catchup = false;
		j->consecutive = 0;
		if (l)
			l->success_us = end;
	}
	if (!ok)
		retry(r, o); /* the waiter moves to it */
	/* the graph, freshness, staleness, alerts (a final failure: no retry came). A success of
	 * a job with none of them, no alert raised since its last success and no warn_duration
	 * alert of its own, has nothing there. */
	if (!ok || j->graph || j->fresh || r->slow_alerted || !j->alerts_clear ||
	    j->conf->more->alerts.max_staleness_ms > 0)
		flow_run_end(r, o, end);
	if (r->waiter) /* a trigger --wait */
		sched_run_answer(r, status, message, sqlstate);
	sched_run_free(&r);
	after_run(j);
}

/* J's active run is over (ended, or not run at all): what waited for it goes next. */
static void after_run(struct job *j)
{
	struct sched *s = j->s;
	if (j->paused) {
		/* what waits for it starts on sched_resume() */
	} else if (!j->active && (sched_job_notified(j) || j->pending) && !s->draining) {
		/* notifications gathered while it ran first: never skipped, they carry payloads */
		struct run *p = sched_job_notified(j) ? sched_job_notified(j) : j->pending;
		sched_run_to(p, RUN_DUE);
		sched_run_admit(p);
	}
	if (!j->active && !s->draining && j->graph)
		flow_job_idle(j); /* its downstreams, or its own run once more */
	if (j->removed && !j->active && !j->pending && !sched_job_notified(j))
		sched_job_unlink_free(j);
	if (s->queue.n) /* a slot it freed */
		sched_admit_queued(s);
}

/* A failed run's message. A plugin job's relation or schema that does not exist was never
 * installed (or was dropped): the server's message alone leaves a new user guessing, so say
 * what creates it. */
static const char *with_install_hint(const struct run *r, const struct exec_outcome *o, char *buf,
                                     size_t len)
{
	/* a job made in SQL logs in as its owner: say what lets it (sqljobs.h) */
	const char *owner = r->job->conf->more->sql.username;
	if (owner && o->sqlstate && strcmp(o->sqlstate, "08001") == 0 && o->message) {
		int n =
		    snprintf(buf, len,
		             "%s HINT: this job runs logged in as its owner, role \"%s\": give it "
		             "LOGIN and CONNECT on the database, and let this host authenticate it "
		             "(pg_hba.conf, a .pgpass entry in pgcrond's home, or a client "
		             "certificate)",
		             o->message, owner);
		return n < 0 || (size_t)n >= len ? o->message : buf;
	}
	if (!r->job->conf->plugin || !o->sqlstate || !o->message ||
	    (strcmp(o->sqlstate, "42P01") != 0 && strcmp(o->sqlstate, "3F000") != 0) ||
	    strstr(o->message, " HINT: "))
		return o->message;
	int n = snprintf(buf, len,
	                 "%s HINT: pgcrond install creates the job's objects; run pgcrond install "
	                 "with this configuration",
	                 o->message);
	return n < 0 || (size_t)n >= len ? o->message : buf;
}

static void on_done(void *arg, const struct exec_outcome *o)
{
	struct run *r = arg;
	char msg[4352];
	r->er = NULL;
	if (log_min_level >= LOG_LVL_DEBUG)
		sched_log_stages(r, o); /* sched_warm.c */
	struct flow_outcome fo = {
	    .ok = o->ok,
	    .timed_out = o->timed_out,
	    .cancelled = o->cancelled,
	    .message = o->ok ? o->message : with_install_hint(r, o, msg, sizeof(msg)),
	    .sqlstate = o->sqlstate,
	    .unknown_commit = o->unknown_commit,
	};
	run_end(r, &fo);
}

/* An HTTP run's response (sched_http.c reads it) */
static void on_http_done(void *arg, const struct httpc_response *resp)
{
	struct run *r = arg;
	char msg[1024];
	struct flow_outcome fo;
	r->hc = NULL;
	sched_http_outcome(r, resp, &fo, msg, sizeof(msg));
	run_end(r, &fo);
}

/* R's claim found its job running on another instance (WHY): true if R waits for that run's
 * end (overlap queue or replace, or notifications, which are never skipped). */
static bool cluster_busy(struct run *r, const char *why)
{
	struct job *j = r->job;
	bool notify = r->trigger == TRIGGER_NOTIFY;
	if (j->conf->overlap == OVERLAP_SKIP && !notify)
		return false;
	/* its instance announces the end (cluster.c's unlock), or dies (coord_reaped) */
	sched_run_to(r, RUN_CLUSTER_WAIT);
	sched_job_log(j, LOG_LVL_INFO, "%s; waiting for it to end (%s)", why,
	              j->conf->overlap == OVERLAP_QUEUE     ? "overlap = queue"
	              : j->conf->overlap == OVERLAP_REPLACE ? "overlap = replace"
	                                                    : "notifications are never skipped");
	if (j->conf->overlap == OVERLAP_REPLACE)
		admit_cancel_other(j->s->admit, j->conf->name);
	return true;
}

/* The answer to run R's admission (admit.h), which R waits for (RUN_CLAIMING): run it, or
 * leave it to the instance that claimed it. */
static void on_admit(void *arg, enum cluster_verdict v, const char *why)
{
	struct run *r = arg;
	struct job *j = r->job;
	struct sched *s = j->s;
	sched_run_to(r, RUN_DUE);
	admit_answered(&r->adm, v);
	if (!s->draining && (v == CLUSTER_GRANTED || v == CLUSTER_UNCLAIMED)) {
		sched_run_admit(r);
		if (j->conf->overlap == OVERLAP_SKIP && j->pending && j->active) {
			struct run *held = j->pending; /* a fire held while R was claimed */
			sched_run_to(held, RUN_DUE);
			sched_fire_run(held); /* skipped now: R runs */
		}
		return;
	}
	if (v == CLUSTER_BUSY && !s->draining && cluster_busy(r, why))
		return; /* it runs once that run ends (overlap queue or replace) */
	char msg[300];
	struct admit_fire f = sched_admit_fire(r);
	/* granted as the stop began: left to the other instances, if live (it_cluster
	 * "giveback") */
	if (s->draining && v == CLUSTER_GRANTED && admit_leave(s->admit, &f))
		;
	else if (s->draining && v != CLUSTER_TAKEN) /* taken: the other's fire, and row */
		sched_record_skipped(&r, "pgcrond was shutting down");
	else if (v == CLUSTER_REFUSED) {
		/* parked: checked later (admit_park); the cluster logs why, rate-limited */
		if (!admit_park(s->admit, &f, why))
			sched_record(&r, SCHED_SKIPPED, why);
	} else if (v == CLUSTER_BUSY) {
		admit_ran(s->admit, &f); /* the claim is ours: this row is the fire's */
		snprintf(msg, sizeof(msg), "%s; overlap = %s", why,
		         config_overlap_names[j->conf->overlap]);
		sched_record_skipped(&r, msg);
	} else
		sched_job_log(j, LOG_LVL_DEBUG, "%s fire served by another instance",
		              run_trigger_names[r->trigger]);
	sched_run_free(&r);
	after_run(j);
}

/* Ask whether R may run (admit.h); true if R now waits for the answer (as its job's active
 * run), false if it may start. */
static bool ask_admission(struct run *r)
{
	struct job *j = r->job;
	/* Answered in the call, R goes on in it, as a run without a cluster does, which every
	 * caller of sched_run_admit and run_begin takes. */
	struct admit_fire f = sched_admit_fire(r);
	if (!admit(j->s->admit, &f, &r->adm, on_admit, r))
		return false;
	sched_run_to(r, RUN_CLAIMING);
	return true;
}

/* J's timer woke before j->next_fire: that fire is claimed now (admit_early), once. */
static void preclaim_ask(struct job *j)
{
	if (j->next_fire == CRON_NEVER || j->early_us == j->next_fire * 1000000 ||
	    !admit_ahead(j->s->admit))
		return; /* (an instance alone claims nothing: its runs hold no early claim) */
	j->early_us = j->next_fire * 1000000;
	/* A run of the job still under way (or waiting for its claim) decides the fire at its
	 * instant (overlap): it is claimed then, if it runs at all, as without this */
	struct admit_fire f = {
	    .job = j->conf->name, .trigger = TRIGGER_SCHEDULE, .scheduled_us = j->early_us};
	if (!j->active)
		admit_early(j->s->admit, &f); /* not asked: at its instant */
}

/* An HTTP run's start mark answered, or the run cancelled while it waited (run.mark_ev) */
static void http_marked_cb(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	char err[256];
	(void)fd;
	(void)what;
	if (r->state != RUN_RUNNING || r->hc)
		return;
	if (r->mark_ev->why)
		sched_run_end_later(r, r->mark_ev->why);
	else if (sched_http_submit(r, on_http_done, err, sizeof(err)) < 0)
		sched_run_end_later(r, err);
	else
		sched_backlog_changed(r->job->s, r); /* no longer waiting for its mark */
}

void sched_ended_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	struct run *r;
	while ((r = TAILQ_FIRST(&s->ended)) != NULL) {
		struct flow_outcome fo = {.ok = false,
		                          .cancelled = r->cancelled,
		                          .message = r->start_error ? r->start_error
		                                                    : "cannot start the run"};
		run_end(r, &fo);
	}
}

/* R starts now: it is running (its claim is its own: sched_run_to), its start instant is
 * taken, and its graph and alerts hear of it. */
static void run_started(struct run *r)
{
	struct job *j = r->job;
	struct sched *s = j->s;
	sched_run_to(r, RUN_RUNNING);
	r->start_us = sched_now_us(s);
	/* it starts after the job's last run here ended, also in its history when the database's
	 * clock offset moved back meanwhile (sched_set_db_offset: less than 2 s): a skip or queue
	 * job's runs never overlap there. Not past a step of the wall clock (sched_check_clock). */
	int64_t ran_end_us = j->last ? j->last->ran_end_us : 0;
	if (r->start_us < ran_end_us && ran_end_us - r->start_us < 2 * CLOCK_JUMP_US)
		r->start_us = ran_end_us;
	r->start_mono_us = sched_mono_us(s);
	j->start_seq = ++s->flow_seq; /* its upstreams' successes count from here (fan-in) */
	if (j->graph || j->fresh || j->conf->more->alerts.warn_duration_ms > 0)
		flow_run_begin(r); /* nothing there for a job without them */
	struct job_last *l = r->trigger == TRIGGER_CATCHUP ? sched_job_last(j) : NULL;
	if (l && r->scheduled_us / 1000000 > l->catchup_s)
		l->catchup_s = r->scheduled_us / 1000000;
}

/* R starts, once admitted: its statements or request go out, its start is recorded. */
static void run_begin(struct run *r)
{
	struct job *j = r->job;
	struct sched *s = j->s;
	char err[512] = "", command[COMMAND_KEEP];
	struct exec_stmt one = {.sql = j->conf->command, .simple = true};
	struct run_stmts b = {.v = &one, .n = 1};
	bool build_failed = false;

	if (r->adm == ADMIT_NONE && ask_admission(r))
		return;
	run_started(r);
	/* A command job runs its SQL as given, like pg_cron: operator-written config text that
	 * may hold several statements, hence the simple protocol. */
	const char *shown = command; /* what its history row says it runs */
	switch (j->conf->kind) {
	case JOB_KIND_HTTP:
		shown = j->conf->http->shown;
		break;
	case JOB_KIND_SQL:
		shown = sched_command_kept(j->conf->command, command);
		break;
	case JOB_KIND_PLUGIN:
		b.v = NULL;
		build_failed =
		    sched_plugin_stmts(r, &b, command, sizeof(command), err, sizeof(err)) < 0;
		break;
	}
	if (shown == command)
		text_utf8_trim(command); /* a cut command must still be valid text for its row */
	/* With several instances the run's start and id go where a takeover looks (cluster.h),
	 * and its backend is named: a takeover ends it by that name before it retries the run.
	 * A lone instance marks nothing. */
	bool marked = admit_marks(s->admit);
	/* a SQL run not marked records its start as it is handed to the executor, with its
	 * backend's pid when a connection was free for it (sched_on_pid): one record */
	bool start_with_pid = j->conf->kind != JOB_KIND_HTTP && !build_failed && !marked;
	if (!start_with_pid)
		r->hist_key = sched_hist_put(r, r->start_us, shown, NULL, NULL);
	sched_run_log_started(r);
	if (build_failed)
		goto fail;
	int mark = marked ? sched_mark_start(r) : 0; /* sched_state.c */
	if (mark < 0) {
		snprintf(err, sizeof(err),
		         "not started: its start mark could not be noted (out of "
		         "memory, or too many marks waiting to be written)");
		goto fail;
	}
	if (j->conf->kind == JOB_KIND_HTTP) {
		/* a request marked waits for its mark, as a statement does: http_marked_cb */
		if (mark == 1) {
			if (!(r->mark_ev = calloc(1, sizeof(*r->mark_ev)))) {
				snprintf(err, sizeof(err), "not started: out of memory");
				goto fail;
			}
			event_assign(&r->mark_ev->ev, s->base, -1, 0, http_marked_cb, r);
			sched_backlog_changed(s, r); /* it waits: pgcrond drop withdraws it */
			goto out;
		}
		if (sched_http_submit(r, on_http_done, err, sizeof(err)) == 0)
			goto out;
		goto fail;
	}
	/* its statements to the executor (marked: sched_on_pid, sched_on_xid and on_done hear of
	 * its backend, transaction and end) */
	struct exec_run_spec spec = {
	    .database = j->conf->database,
	    .pool = &j->pool,
	    .name = j->conf->name,
	    .stmts = b.v,
	    .n_stmts = b.n,
	    .timeout_ms = j->conf->timeout_ms,
	    .name_backend =
	        marked || !j->last || !j->last->end_us || j->last->backend_ms >= NAMED_RUN_MS,
	    /* a job not run since the start, whose runs may be short: not in a burst (the first
	     * minute after a start would pay a statement per run that no later minute pays) */
	    .name_unless_burst = !marked && (!j->last || !j->last->end_us),
	    .on_pid = sched_on_pid,
	    .on_xid = marked ? sched_on_xid : NULL,
	    /* several statements in one transaction: pgcrond opens it, to know its id */
	    .own_xact = marked && j->conf->kind == JOB_KIND_SQL && !j->conf->fenced,
	    .hold = r->mark_wait,
	    .on_done = on_done,
	    .arg = r,
	};
	int rc = s->ex.submit(s->ex.ctx, &spec, &r->er); /* copies the statements */
	if (start_with_pid)
		r->hist_key = sched_hist_put(r, r->start_us, shown, NULL, NULL);
	if (rc == 0 && !r->backend_pid) /* it waits for a connection */
		sched_backlog_changed(s, r);
	if (rc == 0)
		goto out;
	if (rc == -ENOENT)
		snprintf(err, sizeof(err), "database \"%s\" is not configured", j->conf->database);
	else
		snprintf(err, sizeof(err), "cannot start the run: %s", strerror(-rc));
fail:
	sched_run_end_later(r, err);
out:
	if (j->conf->kind == JOB_KIND_PLUGIN)
		sched_plugin_stmts_free(&b);
}

void sched_admit_queued(struct sched *s)
{
	/* run_begin takes the first out of the queue (sched_run_to) */
	while (!s->draining && s->n_running < (size_t)s->max_running && s->queue.n &&
	       !sched_held_back(s))
		run_begin(s->queue.items[0].data);
}

/* A fire of job J: start it, or apply the overlap policy. */
void sched_job_fire(struct job *j, int64_t scheduled_us, enum run_trigger trigger)
{
	if (j->s->draining)
		return;
	struct run *r = sched_run_new(j, scheduled_us, trigger);
	if (r)
		sched_fire_run(r);
}

void sched_deferred_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	struct run *r;
	while ((r = TAILQ_FIRST(&s->flow)) != NULL) {
		sched_run_to(r, RUN_DUE);
		if (!flow_deferred_taken(r))
			sched_fire_run(r);
	}
}

void sched_fire_run(struct run *r)
{
	struct job *j = r->job;
	struct sched *s = j->s;
	if (s->draining) {
		sched_run_free(&r);
		return;
	}
	/* paused: held (payloads dropped: the run on resume is a full one); a manual run is
	 * an operator's explicit request and goes on */
	if (j->paused && r->trigger != TRIGGER_MANUAL) {
		sched_job_log(j, LOG_LVL_INFO, "paused: a %s fire is held until it is resumed",
		              run_trigger_names[r->trigger]);
		j->paused_owed = true;
		if (r->trigger == TRIGGER_UPSTREAM)
			sched_job_owes(j, r->graph_run); /* a survivor runs it if we die */
		sched_run_answer(r, HIST_SKIPPED, "the job is paused", NULL);
		sched_run_free(&r);
		return;
	}
	/* a scheduled job whose upstream is running waits for it */
	if (j->graph && flow_park(r))
		return;
	if (!j->active) {
		sched_run_admit(r);
		return;
	}
	char msg[256], what[128];
	sched_run_describe(j->active, j->active->state, what, sizeof(what));
	switch (j->conf->overlap) {
	case OVERLAP_SKIP:
		if (j->active->state == RUN_CLAIMING && !j->pending) {
			/* no run yet, a claim in flight: on_admit decides */
			sched_run_to(r, RUN_PENDING);
			return;
		}
		/* its run is held back for a history that cannot keep up (hist_backlogged): a
		 * skip row of each fire behind it is what the history cannot take (at 15,000
		 * jobs a second they keep it behind, and every run held, for good); counted, and
		 * logged as the runs start again. An instance alone's (claiming nothing ahead): a
		 * claimed fire needs its row, which tells the others it was served */
		bool unclaimed = admit_unclaimed(s->admit);
		if (j->active->state == RUN_QUEUED && !admit_ahead(s->admit) &&
		    sched_held_back(s)) {
			s->unrecorded++;
			sched_run_free(&r);
			return;
		}
		snprintf(msg, sizeof(msg), SCHED_SKIP_FMT, what);
		/* ... and of the fires skipped behind one run, only the first has a row (the
		 * others are logged and counted) when they need no claim: alone, or not knowing
		 * yet (a start: one left unclaimed is a live instance's to serve, if any). One
		 * row a run, not one a fire, which at 15,000 jobs a second is two rows in three
		 * and holds the runs back */
		if (j->active->skipped != SKIPPED_NONE && unclaimed)
			sched_skip_rowless(&r, j->active, msg);
		else
			sched_skip_claimed(&r, msg, false);
		if (j->active->skipped == SKIPPED_NONE)
			j->active->skipped = SKIPPED_ROW;
		return;
	case OVERLAP_QUEUE:
		if (j->pending) {
			snprintf(msg, sizeof(msg),
			         "%s and another run is already queued; overlap = queue", what);
			sched_skip_claimed(&r, msg, false);
			return;
		}
		sched_run_to(r, RUN_PENDING);
		sched_job_log(j, LOG_LVL_INFO, "%s; queued behind it (overlap = queue)", what);
		return;
	case OVERLAP_REPLACE:
		if (j->pending) {
			sched_skip_claimed(&j->pending,
			                   "superseded by a newer fire; overlap = replace", false);
		}
		if (j->active->state != RUN_RUNNING && j->active->state != RUN_ENDING &&
		    j->active->state != RUN_CLAIMING) {
			/* Not started yet: the newer fire takes its place in the queue. */
			sched_record_skipped(&j->active,
			                     "superseded by a newer fire before it started; "
			                     "overlap = replace");
			flow_retry_disarm(j);
			sched_run_admit(r);
			return;
		}
		sched_run_to(r, RUN_PENDING);
		const char *why = "cancelled: replaced by a newer run (overlap = replace)";
		if (j->active->er || j->active->hc)
			sched_job_log(j, LOG_LVL_INFO, "%s; cancelling it (overlap = replace)",
			              what);
		if (j->active->er)
			s->ex.cancel(j->active->er, why);
		else
			sched_http_cancel(j->active, why);
		return;
	}
}

/* J's armed instant, j->next_fire, is due at NOW_US, and with it maybe later fires of its
 * schedule. Those not served on time (MISSED_TOLERANCE_US) are missed: CAUSE says why (NULL:
 * the timer woke late). With catchup = once one run, trigger catchup, serves the latest due
 * fire and stands for them all; with catchup = skip they get one skipped history row (for
 * the latest missed fire) and the latest fire runs only if it is on time. Either way one
 * log line counts them: a job never runs more than once for a batch of missed fires. */
static void job_due(struct job *j, int64_t now_us, const char *cause)
{
	int64_t first = j->next_fire;
	int64_t next = cron_next(&j->conf->cron, sched_job_tz(j), first);
	if ((next == CRON_NEVER || next > now_us / 1000000) &&
	    now_us - first * 1000000 <= MISSED_TOLERANCE_US) {
		/* on time, none missed: the instant after it is the next fire, computed once */
		j->last_fire = first;
		j->next_fire = next;
		if (j->early_us > first * 1000000) /* claimed early, perhaps not the next one now */
			early_stale(j);
		sched_job_arm(j, now_us);
		sched_job_fire(j, first * 1000000, TRIGGER_SCHEDULE);
		return;
	}
	long later = 0;
	int64_t latest =
	    flow_catchup_instant(&j->conf->cron, sched_job_tz(j), first, now_us / 1000000, &later);
	if (latest == CRON_NEVER)
		latest = first;
	bool latest_on_time = now_us - latest * 1000000 <= MISSED_TOLERANCE_US;
	long missed = later + 1 - (latest_on_time ? 1 : 0);

	j->last_fire = latest;
	sched_job_schedule(j, latest);
	if (missed <= 0) {
		sched_job_fire(j, latest * 1000000, TRIGGER_SCHEDULE);
		return;
	}
	int64_t last_missed = latest;
	if (latest_on_time) {
		last_missed =
		    flow_catchup_instant(&j->conf->cron, sched_job_tz(j), first, latest - 1, NULL);
		if (last_missed == CRON_NEVER)
			last_missed = first;
	}
	char from[CRON_TIME_BUFSZ], to[CRON_TIME_BUFSZ], late[160], why[400], msg[480];
	cron_time_format(first, from, sizeof(from));
	cron_time_format(last_missed, to, sizeof(to));
	if (!cause) {
		snprintf(late, sizeof(late), "the timer woke %.1f s late: %s",
		         (double)(now_us - first * 1000000) / 1e6,
		         "the event loop was stalled, the process stopped or the system suspended");
		cause = late;
	}
	if (missed == 1)
		snprintf(why, sizeof(why), "1 fire at %s missed (%s)", from, cause);
	else
		snprintf(why, sizeof(why), "%ld fires from %s to %s missed (%s)", missed, from, to,
		         cause);

	if (first != (j->conf->catchup == CATCHUP_ONCE ? latest : last_missed))
		admit_early_drop(j->s->admit, j->conf->name, first * 1000000, why);
	if (j->conf->catchup == CATCHUP_ONCE) {
		cron_time_format(latest, to, sizeof(to));
		sched_job_log(j, LOG_LVL_NOTICE, "%s; running once for %s (catchup = once)", why,
		              to);
		sched_job_fire(j, latest * 1000000, TRIGGER_CATCHUP);
		return;
	}
	snprintf(msg, sizeof(msg), "%s; catchup = skip", why);
	sched_job_log(j, LOG_LVL_NOTICE, "%s", msg);
	struct run *r = sched_run_new(j, last_missed * 1000000, TRIGGER_SCHEDULE);
	if (r)
		sched_skip_claimed(&r, msg, true);
	if (latest_on_time)
		sched_job_fire(j, latest * 1000000, TRIGGER_SCHEDULE);
}

/* Compare the wall clock with the monotonic clock (libevent's timers run on the latter).
 * A step forward makes fires due at once: missed fires, by the catch-up policy. A step back
 * re-arms wildcard jobs (minute or hour field starting with '*') and "N seconds" jobs from
 * the new time, so they go on at once; fixed-time jobs keep their next instant, so a fire
 * already served is not served again, unless the step exceeds CLOCK_BACK_RECOMPUTE_S
 * (cronie's rules). */
void sched_check_clock(struct sched *s)
{
	int64_t now = sched_now_us(s);
	int64_t offset = now - sched_mono_us(s);
	int64_t step = offset - s->clock_offset_us;
	s->clock_offset_us = offset;
	if (s->draining || (step < CLOCK_JUMP_US && step > -CLOCK_JUMP_US))
		return;
	log_notice("the wall clock stepped by %+.1f s; re-arming the job timers",
	           (double)step / 1e6);
	char cause[160];
	snprintf(cause, sizeof(cause),
	         "the wall clock stepped forward by %.1f s, or the system was suspended",
	         (double)step / 1e6);
	bool far_back = step < -(int64_t)CLOCK_BACK_RECOMPUTE_S * 1000000;
	struct job *next;
	for (struct job *j = s->jobs; j; j = next) {
		next = j->next;
		if (!sched_job_schedulable(j) || j->next_fire == CRON_NEVER || j->paused)
			continue;
		if (step > 0 && j->next_fire * 1000000 <= now)
			job_due(j, sched_now_us(s),
			        cause); /* it arms the next fire from this time */
		else if (step < 0 && (far_back || (j->conf->cron.flags & CRON_WILDCARD) ||
		                      j->conf->cron.kind == CRON_INTERVAL))
			sched_job_schedule(j, 0);
		else /* read again: a step's pass over many jobs takes a while */
			sched_job_arm(j, sched_now_us(s));
	}
}

void sched_job_timer_cb(void *arg)
{
	struct job *j = arg;
	int64_t now = sched_now_us(j->s);
	/* A wake-up off its instant (beyond a pre-claim's lead and the step the clock check lets
	 * pass) may follow a step of the wall clock since the timer was armed: the step is dealt
	 * with first, as it may deal with J. At its instant, the wall clock kept pace with the
	 * monotonic one since then; an older step is the clock check's (sched_clock_cb). */
	if (j->next_fire == CRON_NEVER ||
	    now < j->next_fire * 1000000 - PRECLAIM_LEAD_US - CLOCK_JUMP_US ||
	    now > j->next_fire * 1000000 + CLOCK_JUMP_US) {
		sched_check_clock(j->s);
		if (clock_armed(&j->timer))
			return; /* the check dealt with J */
		now = sched_now_us(j->s);
	}
	/* J is schedulable: a job that stops being so has its timer disarmed (sched_job_schedule,
	 * job_retire), and only sched_job_arm arms it */
	if (j->next_fire == CRON_NEVER || j->s->draining)
		return;
	/* Woken early: to claim the fire first (several instances), or by the timer's
	 * granularity. Wait the rest. */
	if (now < j->next_fire * 1000000) {
		preclaim_ask(j);
		sched_job_arm(j, now);
		return;
	}
	job_due(j, now, NULL); /* it takes the fire's run made at its pre-claim */
}

void sched_clock_cb(void *arg)
{
	struct sched *s = arg;
	sched_check_clock(s);
	if (!s->draining && clock_arm(s->clock, &s->clock_ev, CLOCK_CHECK_MS * 1000) < 0)
		log_error("cannot arm the clock check; steps are noticed at job wake-ups only");
}

void sched_job_disarm(struct job *j)
{
	sched_timer_disarm(j);
	/* paused: the fire may not come (a fire already at its instant waits for its claim's
	 * answer as the job's active run, and goes on as a run under way does); resumed, it is
	 * claimed early again */
	admit_early_drop(j->s->admit, j->conf->name, 0, NULL);
	j->early_us = 0;
}
