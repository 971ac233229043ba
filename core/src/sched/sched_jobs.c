/* The scheduler's lifetime (sched.h, sched_priv.h): the setters (the cluster and its pending
 * work among them), the drain at shutdown, and the scheduler's creation and freeing with
 * admission's hooks. Timers and the run lifecycle are sched.c's; the index's lookups are
 * sched_state.c's, jobs added and retired as configurations come and go sched_apply.c's. */
#include <errno.h>
#include <inttypes.h>
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
#include "history.h"
#include "log.h"
#include "metrics.h"
#include "plugin.h"
#include "sched.h"
#include "sched_flow_priv.h"
#include "sched_fresh_priv.h"
#include "sched_priv.h"
#include "sched_recent_priv.h"
#include "text.h"

/* ---- config --------------------------------------------------------------------------- */

void sched_set_random(struct sched *s, uint32_t (*random)(void *arg), void *arg)
{
	s->random = random;
	s->random_arg = arg;
}

void sched_set_metrics(struct sched *s, struct metrics *m)
{
	s->metrics = m;
	/* the counters a job keeps were the old metrics' */
	for (struct job *j = s->jobs; j; j = j->next)
		if (j->last)
			j->last->counters = NULL;
}

void sched_set_context(struct sched *s, struct alerter *alerts, const char *instance)
{
	s->alerts = alerts;
	snprintf(s->instance, sizeof(s->instance), "%s", instance ? instance : "pgcrond");
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

/* ---- shutdown ------------------------------------------------------------------------- */

static void drained_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	event_del(&s->grace_ev);
	if (s->drained) {
		void (*done)(void *) = s->drained;
		s->drained = NULL;
		done(s->drained_arg);
	}
}

void sched_set_db_offset(struct sched *s, int64_t offset_us)
{
	int64_t change = offset_us - s->db_offset_us;
	if ((change < SCHED_DB_OFFSET_MIN_US && change > -SCHED_DB_OFFSET_MIN_US) ||
	    offset_us >= CLOCK_JUMP_US || offset_us <= -CLOCK_JUMP_US)
		return;
	s->clock_offset_us += change; /* not a step of the wall clock (sched_check_clock) */
	log_info("firing by the history database's clock: it is %+.3f s from this host's",
	         (double)offset_us / 1e6);
	s->db_offset_us = offset_us;
	/* the timers were armed for the instants by the old offset; those of paused, removed or
	 * draining jobs stay as they are (sched_job_arm leaves them disarmed) */
	for (struct job *j = s->jobs; j; j = j->next)
		if (clock_armed(&j->timer))
			sched_job_arm(j, sched_now_us(s));
}

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	char d[32], msg[200];
	duration_format(s->cfg ? s->cfg->shutdown_grace_ms : 0, d, sizeof(d));
	if (s->grace_cut) /* not the grace period's end: the operator's second signal */
		snprintf(msg, sizeof(msg),
		         "cancelled: pgcrond was told to stop again (a second SIGTERM or SIGINT) "
		         "before the run finished");
	else
		snprintf(msg, sizeof(msg),
		         "cancelled: pgcrond was shutting down and the run did not finish within "
		         "shutdown_grace (%s)",
		         d);
	if (!s->grace_cut)
		log_notice("shutdown_grace (%s) is over; cancelling %zu running run(s)", d,
		           s->n_running);
	/* first: a run cancelled gives its connection back, and a run still waiting for one
	 * must not start on it before its own cancel (exec_halt) */
	if (s->ex.halt)
		s->ex.halt(s->ex.ctx);
	for (struct job *j = s->jobs; j; j = j->next)
		if (j->active && j->active->er)
			s->ex.cancel(j->active->er, msg);
		else if (j->active)
			sched_http_cancel(j->active, msg);
}

/* what a run started but not sent records as a stop ends it (sched_run_withdraw) */
static const char *const stopped_unsent[] = {
    "not run: pgcrond was stopping while it waited for its start mark",
    "not run: pgcrond was stopping while it waited for a connection"};

void sched_drain(struct sched *s, int64_t grace_ms, void (*done)(void *), void *arg)
{
	s->drained = done;
	s->drained_arg = arg;
	struct timeval tv = {(time_t)(grace_ms / 1000), (suseconds_t)(grace_ms % 1000 * 1000)};
	if (s->draining && s->n_running > 0) {
		/* a second call (another SIGTERM) shortens the grace period already running */
		s->grace_cut = true;
		event_add(&s->grace_ev, &tv);
	} else if (!s->draining) {
		sched_apply_finish(s); /* every job on the new configuration, removed ones gone */
		s->draining = true;
		fresh_stop(s);
		clock_disarm(s->clock, &s->clock_ev);
		sched_warm_stop(s);
		const char *why = "pgcrond was shutting down";
		admit_stop(s->admit); /* it takes over nothing more */
		size_t gone = 0;      /* runs withdrawn: they end from the loop */
		for (struct job *j = s->jobs; j; j = j->next) {
			sched_timer_disarm(j);
			flow_job_drain(j);
			struct run **waiting[] = {&j->pending, j->graph ? &j->graph->parked : NULL,
			                          j->more ? &j->more->notify_wait : NULL};
			for (size_t w = 0; w < sizeof(waiting) / sizeof(waiting[0]); w++) {
				struct run *r = waiting[w] ? *waiting[w] : NULL;
				if (!r)
					continue;
				/* a fire this instance never claimed, with other instances live:
				 * theirs to claim, run and record (no row here beside theirs) */
				struct admit_fire f = sched_admit_fire(r);
				if (!r->noted && admit_left_to_others(s->admit, &f, r->adm)) {
					sched_job_log(
					    j, LOG_LVL_INFO,
					    "not recorded here: a fire this instance did not "
					    "claim, left to the other instances as it stops");
					sched_run_free(waiting[w]);
				} else
					sched_record_skipped(waiting[w], sched_work_keep(r, why));
			}
			struct run *a = j->active;
			if (a && (a->state == RUN_RETRY_WAIT || a->state == RUN_CLUSTER_WAIT)) {
				flow_retry_disarm(j);
				sched_record_skipped(&j->active, sched_work_keep(a, why));
			} else if (sched_run_withdraw(a, stopped_unsent[a && a->er]))
				gone++; /* nothing of it on the server: nothing to wait for */
		}
		admit_give_back(s->admit); /* the fires claimed before their instant, no run's */
		while (s->queue.n) {
			struct run *r = s->queue.items[0].data;
			sched_record_skipped(&r, sched_work_keep(r, why));
		}
		if (s->n_running > gone) {
			log_notice("waiting up to %lld ms for %zu running run(s) to finish",
			           (long long)grace_ms, s->n_running - gone);
			event_add(&s->grace_ev, &tv);
		}
	}
	sched_check_drained(s);
}

const struct pgc_config *sched_config(const struct sched *s)
{
	return s->cfg;
}

size_t sched_running(const struct sched *s)
{
	return s->n_running;
}
size_t sched_queued(const struct sched *s)
{
	return s->queue.n;
}

/* ---- lifetime ------------------------------------------------------------------------- */

/* admit_hooks.claiming_again: the runs under way are each the active run of its job
 * (running or ending). */
static void claiming_again(void *arg)
{
	struct sched *s = arg;
	for (struct job *j = s->jobs; j; j = j->next)
		if (j->active)
			admit_claim_again(s->admit, &j->active->adm, j->conf->name);
}

/* admit_hooks.now_us and record */
static int64_t admit_now_us(void *arg)
{
	return sched_now_us(arg);
}

static bool admit_record(void *arg, const char *job, enum run_trigger trigger, int64_t scheduled_us,
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

/* The history caught up (hist_backlogged): the runs it held back start. */
static void history_caught_up(void *arg)
{
	struct sched *s = arg;
	if (s->unrecorded)
		log_info("%" PRIu64 " fires were skipped while their jobs' runs were held back "
		         "for the history (overlap = skip), without a row each",
		         s->unrecorded);
	s->unrecorded = 0;
	sched_admit_queued(s);
}

int sched_new_with(struct event_base *base, struct clock *clock, const struct sched_executor *ex,
                   struct hist *h, struct sched **out)
{
	struct sched *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base = base;
	s->clock = clock;
	s->ex = *ex;
	s->hist = h;
	if (h) {
		hist_set_written_fn(h, sched_recent_written, s); /* run ids for the status */
		hist_set_caught_up_fn(h, history_caught_up, s);  /* what its backlog held */
	}
	s->max_running = 32;
	snprintf(s->instance, sizeof(s->instance), "pgcrond");
	clock_timer_init(&s->clock_ev, sched_clock_cb, s);
	clock_timer_init(&s->warm_ev, sched_warm_cb, s);
	clock_timer_init(&s->backlog_ev, sched_backlog_cb, s);
	evtimer_assign(&s->grace_ev, base, grace_cb, s);
	event_assign(&s->drained_ev, base, -1, 0, drained_cb, s);
	event_assign(&s->ended_ev, base, -1, 0, sched_ended_cb, s);
	event_assign(&s->flow_ev, base, -1, 0, sched_deferred_cb, s);
	TAILQ_INIT(&s->ended);
	TAILQ_INIT(&s->flow);
	s->clock_offset_us = clock_now_us(clock) - clock_mono_now_us(clock);
	const struct admit_hooks ah = {.claiming_again = claiming_again,
	                               .now_us = admit_now_us,
	                               .record = admit_record,
	                               .arg = s};
	if (admit_new(clock, &ah, &s->admit) < 0 ||
	    clock_arm(clock, &s->clock_ev, CLOCK_CHECK_MS * 1000) < 0) {
		admit_free(&s->admit);
		free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

struct sched_executor sched_exec_executor(struct exec *ex)
{
	return (struct sched_executor){.submit = exec_submit,
	                               .cancel = exec_cancel,
	                               .probe = exec_probe,
	                               .warm = exec_warm,
	                               .release = exec_release,
	                               .withdraw = exec_withdraw,
	                               .halt = exec_halt,
	                               .ctx = ex};
}

int sched_new(struct event_base *base, struct exec *ex, struct hist *h, struct sched **out)
{
	const struct sched_executor real = sched_exec_executor(ex);
	struct clock *c;
	int rc = clock_new(base, &c);
	if (rc < 0)
		return rc;
	if ((rc = sched_new_with(base, c, &real, h, out)) < 0) {
		clock_free(&c);
		return rc;
	}
	(*out)->own_clock = true;
	exec_set_reachable_cb(ex, flow_db_reachable, *out);
	return 0;
}

void sched_db_reachable(struct sched *s, const char *database)
{
	flow_db_reachable(s, database);
}

void sched_free(struct sched **sp)
{
	struct sched *s = *sp;
	if (!s)
		return;
	hist_set_caught_up_fn(s->hist, NULL, NULL);
	sched_apply_clear(s);
	fresh_free(s);
	clock_disarm(s->clock, &s->clock_ev);
	sched_warm_stop(s);
	event_del(&s->grace_ev);
	event_del(&s->drained_ev);
	event_del(&s->ended_ev); /* its runs are their jobs' active runs, freed below */
	event_del(&s->flow_ev);
	while (s->queue.n) {
		struct run *r = s->queue.items[0].data;
		sched_run_free(&r);
	}
	sched_queue_clear(&s->queue);
	while (s->jobs) {
		struct job *j = s->jobs;
		s->jobs = j->next;
		sched_run_free(&j->pending);
		/* the executor's handle dies with exec_free; the run record is ours */
		sched_run_free(&j->active);
		sched_job_free(&j);
	}
	clock_disarm(s->clock, &s->backlog_ev); /* (armed again as the runs went) */
	text_free_list(s->paused, s->n_paused);
	strmap_free(&s->index);
	sched_recent_free(s);
	admit_free(&s->admit);
	hist_forget_asker(s->hist); /* hist_close() may still get answers: not for us */
	if (s->own_clock)
		clock_free(&s->clock);
	free(s);
	*sp = NULL;
}
