/* A run: its states and the moves between them (sched_priv.h, enum run_state; the table is
 * drawn in docs/layout.md, "A run's states"), and the run as a record: made, answered to its
 * waiter, its backend and marks noted (sched_on_pid, sched_mark_start, sched_on_xid), its
 * pending work, recorded when it does not run, freed with what it holds, and what it leaves for
 * the status (its job's last result and recent runs). The scheduler's clock and its jobs by
 * name. Every change of a run's state goes through sched_run_to(), which refuses a move the
 * table does not hold, moves the run between the holders of its old and new states and keeps
 * the counts of the runs claiming and running (as pgbouncer's change_server_state() moves a
 * server between its lists), and then does what follows, read from the same table (follow):
 * admission told, the backlog published, a stop's end. Below the rest of sched/; the
 * max_running queue, one of a run's holders, is here too (sched.h). */
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admit.h"
#include "array.h"
#include "history.h"
#include "httpc.h"
#include "job_kind.h"
#include "log.h"
#include "metrics.h"
#include "sched_priv.h"
#include "sched_recent_priv.h"
#include "text.h"

#define TO(st) (1u << (st))
/* The states in which a run is its job's active run. */
#define ACTIVE                                                                                     \
	(TO(RUN_CLAIMING) | TO(RUN_CLUSTER_WAIT) | TO(RUN_QUEUED) | TO(RUN_RETRY_WAIT) |           \
	 TO(RUN_RUNNING) | TO(RUN_ENDING))
/* What follows a move out of a state or into it (follow(), the one place that reads them):
 * WAITS, a run in it is in the backlog (waits_for), so a move in or out changes what is
 * published; STOP, a stop waits for the runs in it, so a move out may end the drain; RAN, into
 * it the fire runs: admission hears it (admit_ran: its claim is the run's, its pending work
 * goes); GIVE_BACK, into it what the run holds of several instances goes back (admit_end). */
enum { WAITS = 1, STOP = 2, RAN = 4, GIVE_BACK = 8 };

/* Each state: its name for the log, the states a run may go to from it, and what follows a
 * move out of it or into it. */
static const struct {
	const char *name;
	unsigned moves, follows;
} states[RUN_STATES] = {
    /* a fire waits where its job's state says, is claimed, queued, started or ended
     * (skipped, dropped); a retry waits for its delay; a claim granted on a job that runs on
     * another instance waits for that run */
    [RUN_DUE] = {"due",
                 TO(RUN_PENDING) | TO(RUN_PARKED) | TO(RUN_NOTIFY_WAIT) | TO(RUN_DEFERRED) |
                     TO(RUN_CLAIMING) | TO(RUN_CLUSTER_WAIT) | TO(RUN_QUEUED) | TO(RUN_RETRY_WAIT) |
                     TO(RUN_RUNNING) | TO(RUN_ENDED),
                 0},
    /* its wait is over: it is decided again, or dropped */
    [RUN_PENDING] = {"waiting behind the job's run", TO(RUN_DUE) | TO(RUN_ENDED), WAITS},
    /* its upstreams are done: handed to the loop */
    [RUN_PARKED] = {"waiting for an upstream job", TO(RUN_DEFERRED) | TO(RUN_ENDED), WAITS},
    [RUN_NOTIFY_WAIT] = {"notified, waiting for the job's run", TO(RUN_DUE) | TO(RUN_ENDED), WAITS},
    [RUN_DEFERRED] = {"handed to the loop", TO(RUN_DUE) | TO(RUN_ENDED), 0},
    /* the answer came (the run is due again: admitted, or waits for the other instance's
     * run), or the run was dropped */
    [RUN_CLAIMING] = {"claiming", TO(RUN_DUE) | TO(RUN_ENDED), WAITS | STOP},
    [RUN_CLUSTER_WAIT] = {"waiting for another instance's run", TO(RUN_DUE) | TO(RUN_ENDED), WAITS},
    /* a slot came: it starts, or (queued unclaimed) asks for its claim first */
    [RUN_QUEUED] = {"waiting for a run slot", TO(RUN_RUNNING) | TO(RUN_CLAIMING) | TO(RUN_ENDED),
                    WAITS | STOP},
    [RUN_RETRY_WAIT] = {"waiting to retry", TO(RUN_DUE) | TO(RUN_ENDED), WAITS},
    /* it could not be handed to the executor: it ends from the loop */
    [RUN_RUNNING] = {"running", TO(RUN_ENDING) | TO(RUN_ENDED), WAITS | STOP | RAN},
    [RUN_ENDING] = {"ending without a start", TO(RUN_ENDED), STOP},
    [RUN_ENDED] = {"ended", 0, GIVE_BACK},
};

const char *sched_run_state_name(enum run_state st)
{
	return (unsigned)st < RUN_STATES ? states[st].name : "?";
}

bool sched_run_may(enum run_state from, enum run_state to)
{
	return (unsigned)from < RUN_STATES && (unsigned)to < RUN_STATES &&
	       (states[from].moves & TO(to));
}

/* What holds a run of job J in a state: the job's slot, a list of the loop's (either may be
 * NULL, an ending run is in both), and whether it counts as running (max_running). The slots
 * of a parked and a notified run are in blocks made at first use: NULL while J has none. */
struct holder {
	struct run **slot;
	struct run_list *list;
	bool running;
};

static struct holder holder(struct job *j, enum run_state st)
{
	return (struct holder){
	    .slot = ACTIVE & TO(st)         ? &j->active
	            : st == RUN_PENDING     ? &j->pending
	            : st == RUN_PARKED      ? (j->graph ? &j->graph->parked : NULL)
	            : st == RUN_NOTIFY_WAIT ? (j->more ? &j->more->notify_wait : NULL)
	                                    : NULL,
	    .list = st == RUN_DEFERRED ? &j->s->flow
	            : st == RUN_ENDING ? &j->s->ended
	                               : NULL,
	    .running = st == RUN_RUNNING || st == RUN_ENDING,
	};
}

/* Whether R, leaving FROM for its end, holds anything of several instances that admit_end
 * gives back: a job lock, a claim asked (its own, or its fire's before its instant), a start
 * mark, pending work. A run of an instance alone holds none, and its end enters no file of
 * cluster/. */
static bool holds_several(const struct run *r, enum run_state from)
{
	return r->adm == ADMIT_LOCKED || from == RUN_CLAIMING || r->marked || r->noted ||
	       (r->scheduled_us && r->scheduled_us == r->job->early_us);
}

/* What follows R's move out of FROM into its state now, as the table says. */
static void follow(struct run *r, enum run_state from)
{
	struct sched *s = r->job->s;
	unsigned out = states[from].follows, in = states[r->state].follows;
	if ((in & RAN) || ((in & GIVE_BACK) && holds_several(r, from))) {
		struct admit_fire f = sched_admit_fire(r);
		if (in & RAN)
			admit_ran(s->admit, &f);
		else
			admit_end(s->admit, &f, &r->adm, from == RUN_CLAIMING ? r : NULL,
			          r->marked ? r : NULL);
		r->noted = false;
	}
	if ((out | in) & WAITS)
		sched_backlog_changed(s, r);
	if (out & STOP) /* a stop waits for these runs, and this is where they go */
		sched_check_drained(s);
}

bool sched_run_to(struct run *r, enum run_state to)
{
	struct job *j = r->job;
	struct sched *s = j->s;
	enum run_state from = r->state;
	struct holder in = holder(j, from), out = holder(j, to);
	const char *why = NULL;
	if (!sched_run_may(from, to))
		why = "cannot become";
	else if (out.slot && *out.slot && *out.slot != r)
		why = "finds another run where it would go as";
	else if (!out.slot && (to == RUN_PARKED || to == RUN_NOTIFY_WAIT))
		why = "finds no block of its job's to hold it as";
	if (why) {
		log_error("job %s: internal error: a run %s %s %s; please report it", j->conf->name,
		          sched_run_state_name(from), why, sched_run_state_name(to));
		return false;
	}
	/* the move, as pgbouncer's change_server_state(): into the queue first (the one holder
	 * that may refuse: out of memory), out of the old holders, into the new ones, the counts */
	if (to == RUN_QUEUED && sched_queue_push(&s->queue, r->queue_at_us, ++s->seq, r) < 0)
		return false;
	if (from == RUN_QUEUED)
		sched_queue_remove(&s->queue, r); /* the first, sched_admit_queued's, at once */
	if (in.list)
		TAILQ_REMOVE(in.list, r, defer);
	if (in.slot && *in.slot == r && in.slot != out.slot)
		*in.slot = NULL;
	if (out.slot)
		*out.slot = r;
	if (out.list)
		TAILQ_INSERT_TAIL(out.list, r, defer);
	s->n_claiming -= from == RUN_CLAIMING;
	s->n_running -= in.running;
	s->n_claiming += to == RUN_CLAIMING;
	s->n_running += out.running;
	r->state = to;
	follow(r, from);
	return true;
}

void sched_run_defer(struct run *r)
{
	sched_run_to(r, RUN_DEFERRED);
	event_active(&r->job->s->flow_ev, 0, 0);
}

/* (from the loop, so that run_begin() never re-enters run_end) */
void sched_run_end_later(struct run *r, const char *err)
{
	r->start_error = strdup(err);
	sched_run_to(r, RUN_ENDING);
	event_active(&r->job->s->ended_ev, 0, 0);
}

/* US (Unix microseconds) as "10:00:01Z". */
static void sched_fmt_hms(int64_t us, char *out, size_t outlen)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	if (strftime(out, outlen, "%H:%M:%SZ", &tm) == 0 && outlen)
		out[0] = '\0';
}

void sched_run_log_started(const struct run *r)
{
	char when[16], what[48] = "";
	if (log_min_level < LOG_LVL_INFO) /* a thousand runs due at once: not per run */
		return;
	if (r->scheduled_us) {
		sched_fmt_hms(r->scheduled_us, when, sizeof(when));
		snprintf(what, sizeof(what), "scheduled %s, ", when);
	} else if (r->n_payloads) {
		snprintf(what, sizeof(what), "%zu payload(s), ", r->n_payloads);
	}
	sched_job_log(r->job, LOG_LVL_INFO, "started (%s, %sattempt %d)",
	              run_trigger_names[r->trigger], what, r->attempt);
}

void sched_check_drained(struct sched *s)
{
	if (s->draining && s->n_running == 0 && s->n_claiming == 0 && s->queue.n == 0 && s->drained)
		event_active(&s->drained_ev, 0, 0);
}

void sched_job_log(const struct job *j, enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, j->conf->name, fmt, ap);
	va_end(ap);
}

void sched_run_describe(const struct run *a, enum run_state st, char *out, size_t outlen)
{
	char when[16];
	switch (st) {
	case RUN_CLAIMING:
		snprintf(out, outlen, "previous fire still being claimed");
		break;
	case RUN_CLUSTER_WAIT:
		snprintf(out, outlen, "previous fire waiting for a run on another instance");
		break;
	case RUN_RUNNING:
	case RUN_ENDING:
	case RUN_ENDED:
		sched_fmt_hms(a->start_us, when, sizeof(when));
		snprintf(out, outlen, "previous run still running (started %s)", when);
		break;
	case RUN_RETRY_WAIT:
		snprintf(out, outlen, "previous run waiting to retry (attempt %d)", a->attempt);
		break;
	case RUN_DUE:
	case RUN_PENDING:
	case RUN_PARKED:
	case RUN_NOTIFY_WAIT:
	case RUN_DEFERRED:
	case RUN_QUEUED:
		sched_fmt_hms(a->queue_at_us, when, sizeof(when));
		snprintf(out, outlen, "previous run still waiting for a run slot (due %s)", when);
		break;
	}
}

/* ---- the max_running queue: a binary min-heap of fires ordered by scheduled instant, then
 * by arrival ------------------------------------------------------------------------- */

static bool q_less(const struct sched_qitem *a, const struct sched_qitem *b)
{
	return a->at_us < b->at_us || (a->at_us == b->at_us && a->seq < b->seq);
}

static void q_swap(struct sched_queue *q, size_t i, size_t j)
{
	struct sched_qitem t = q->items[i];
	q->items[i] = q->items[j];
	q->items[j] = t;
}

static void q_up(struct sched_queue *q, size_t i)
{
	while (i > 0 && q_less(&q->items[i], &q->items[(i - 1) / 2])) {
		q_swap(q, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void q_down(struct sched_queue *q, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < q->n && q_less(&q->items[l], &q->items[m]))
			m = l;
		if (r < q->n && q_less(&q->items[r], &q->items[m]))
			m = r;
		if (m == i)
			return;
		q_swap(q, i, m);
		i = m;
	}
}

int sched_queue_push(struct sched_queue *q, int64_t at_us, uint64_t seq, void *data)
{
	if (array_grow(&q->items, q->n, &q->cap, sizeof(*q->items), 16) < 0)
		return -ENOMEM;
	q->items[q->n] = (struct sched_qitem){at_us, seq, data};
	q_up(q, q->n++);
	return 0;
}

bool sched_queue_remove(struct sched_queue *q, void *data)
{
	for (size_t i = 0; i < q->n; i++) {
		if (q->items[i].data != data)
			continue;
		q->items[i] = q->items[--q->n];
		if (i < q->n) {
			q_down(q, i);
			q_up(q, i);
		}
		return true;
	}
	return false;
}

void sched_queue_clear(struct sched_queue *q)
{
	free(q->items);
	q->items = NULL;
	q->n = q->cap = 0;
}

/* ---- the run as a record ---------------------------------------------------------- */

struct run *sched_run_new(struct job *j, int64_t scheduled_us, enum run_trigger trigger)
{
	struct run *r = calloc(1, sizeof(*r));
	if (!r) {
		sched_job_log(j, LOG_LVL_ERROR, "out of memory; fire dropped");
		return NULL;
	}
	r->job = j;
	r->scheduled_us = scheduled_us;
	r->fired_us = sched_now_us(j->s);
	r->queue_at_us = scheduled_us ? scheduled_us : r->fired_us;
	r->trigger = trigger;
	r->attempt = 1;
	return r;
}

void sched_run_free(struct run **rp)
{
	struct run *r = *rp;
	if (!r)
		return;
	if (r->state != RUN_ENDED)
		sched_run_to(r, RUN_ENDED);
	sched_rowless_row(r);
	if (r->hc) /* a request still in flight: never heard of again */
		httpc_drop(&r->hc);
	if (r->waiter)
		sched_run_answer(r, "cancelled",
		                 "the run was dropped before it ended (shutdown or reload)", NULL);
	if (r->mark_ev) {
		event_del(&r->mark_ev->ev);
		free(r->mark_ev->why);
	}
	free(r->mark_ev);
	if (r->slow_armed)
		clock_disarm(r->job->s->clock, &r->slow_ev);
	text_free_list(r->payloads, r->n_payloads);
	free(r->graph_run);
	free(r->start_error);
	free(r);
	*rp = NULL;
}

void sched_run_answer(struct run *r, const char *status, const char *message, const char *sqlstate)
{
	struct sched_waiter *w = r->waiter;
	if (!w)
		return;
	r->waiter = NULL;
	struct sched_result res = {
	    .job = r->job->conf->name,
	    .status = status,
	    .message = message ? message : "",
	    .sqlstate = sqlstate,
	    .attempt = r->attempt,
	    .duration_us = r->start_mono_us ? sched_mono_us(r->job->s) - r->start_mono_us : 0,
	};
	w->done(w, &res);
}

uint64_t sched_hist_put(const struct run *r, int64_t start_us, const char *shown,
                        const char *status, const char *message)
{
	const struct job *j = r->job;
	/* what a SQL job is in cron.job (a removed job: nothing) */
	const struct conf_job_sql *sql = &j->conf->more->sql;
	char command[COMMAND_KEEP];
	if (!j->s->hist)
		return 0;
	struct hist_run hr = {
	    .job_name = j->conf->name,
	    /* a SQL job's rows name its real database and its owner, as pg_cron's do */
	    .database = sql->database ? sql->database : j->conf->database,
	    .username = sql->username,
	    .command = shown ? shown
	                     : sched_command_kept(
	                           j->conf->command ? j->conf->command : j->conf->plugin, command),
	    .trigger = run_trigger_names[r->trigger],
	    .graph_run = r->graph_run,
	    .scheduled_us = r->scheduled_us,
	    .start_us = start_us,
	    .attempt = r->attempt,
	    .jobid = sql ? sql->jobid : 0,
	    .pid = r->backend_pid,
	};
	return status ? hist_record(j->s->hist, &hr, status, message) : hist_start(j->s->hist, &hr);
}

const char *sched_command_kept(const char *command, char *buf)
{
	size_t len = command ? strlen(command) : 0;
	/* whole, and ending in an ASCII byte: no character to cut (text_utf8_trim), no copy */
	if (len < COMMAND_KEEP && (len == 0 || (unsigned char)command[len - 1] < 0x80))
		return command ? command : "";
	snprintf(buf, COMMAND_KEEP, "%s", command);
	text_utf8_trim(buf);
	return buf;
}

/* A fire that will not run: one complete history row (STATUS: skipped, upstream_failed);
 * with ROWLESS, answered and counted as one, with no row (sched_fire_run); then freed. */
static void record(struct run **rp, enum sched_status st, const char *message, bool rowless)
{
	struct run *r = *rp;
	struct sched *s = r->job->s;
	const char *status = sched_recent_statuses[st];
	int64_t now = sched_now_us(s);
	sched_run_answer(r, status, message, NULL);
	uint64_t key = rowless ? 0 : sched_hist_put(r, now, NULL, status, message);
	struct job_last *l = sched_job_last(r->job);
	struct metrics_run mr = {.job = r->job->conf->name,
	                         .counters = l ? &l->counters : NULL,
	                         .status = status,
	                         .duration_us = -1,
	                         .lateness_us = -1,
	                         .end_us = now,
	                         .message = message};
	if (!rowless)
		sched_recent_note(r->job, st, now, now, r->attempt, key, 0);
	sched_run_free(rp);
	metrics_run_end(s->metrics, &mr); /* (its job's, which outlives the run) */
}

void sched_record(struct run **rp, enum sched_status st, const char *message)
{
	record(rp, st, message, false);
}

/* ... and a log line. */
void sched_record_skipped(struct run **rp, const char *message)
{
	sched_job_log((*rp)->job, LOG_LVL_INFO, "skipped: %s", message);
	record(rp, SCHED_SKIPPED, message, false);
}

void sched_skip_rowless(struct run **rp, struct run *behind, const char *message)
{
	sched_job_log(behind->job, LOG_LVL_INFO, "skipped: %s (no history row)", message);
	behind->skipped = (uint8_t)(SKIPPED_ROWLESS + behind->state);
	behind->rowless_us = (*rp)->scheduled_us;
	behind->rowless_trigger = (*rp)->trigger;
	record(rp, SCHED_SKIPPED, message, true);
}

/* R ends (or is dropped): the last fire skipped behind it without a row gets one, so that the
 * history says which fire was the job's last (the catch-up at the next start reads it); its
 * message made again from R as it was then (what it says of R does not change after) */
void sched_rowless_row(struct run *r)
{
	char what[128], msg[256];
	if (r->skipped < SKIPPED_ROWLESS)
		return;
	sched_run_describe(r, (enum run_state)(r->skipped - SKIPPED_ROWLESS), what, sizeof(what));
	snprintf(msg, sizeof(msg), SCHED_SKIP_FMT, what);
	struct run last = {.job = r->job,
	                   .trigger = r->rowless_trigger,
	                   .scheduled_us = r->rowless_us,
	                   .attempt = 1};
	int64_t now = sched_now_us(r->job->s);
	(void)sched_hist_put(&last, now, NULL, "skipped", msg);
	r->skipped = SKIPPED_ROW;
}

void sched_skip_claimed(struct run **rp, const char *why, bool logged)
{
	struct run *r = *rp;
	if (!logged) /* at once: this instance skips it, whoever records it */
		sched_job_log(r->job, LOG_LVL_INFO, "skipped: %s", why);
	struct admit_fire f = sched_admit_fire(r);
	if (admit_skip(r->job->s->admit, &f, why))
		sched_run_free(rp);
	else
		sched_record(rp, SCHED_SKIPPED, why);
}

/* exec_run_spec.on_pid: R has its backend */
void sched_on_pid(void *arg, int pid)
{
	struct run *r = arg;
	struct sched *s = r->job->s;
	r->backend_pid = pid;
	r->backend_at_us = sched_now_us(s);
	sched_backlog_changed(s, r); /* no longer waiting for its connection */
	if (s->hist && r->hist_key)  /* else its start is recorded with it (sched.c) */
		hist_set_pid(s->hist, r->hist_key, r->start_us, pid);
	sched_job_log(r->job, LOG_LVL_DEBUG, "running on backend %d", pid);
}

/* R's start mark is written (OK), or R must send nothing (WHY): admit_mark_start */
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
	else if (r->mark_ev && r->state == RUN_RUNNING && !r->hc) {
		if (!ok && !r->mark_ev->why)
			r->mark_ev->why =
			    strdup(why ? why : "not started: its start mark was not written");
		event_active(&r->mark_ev->ev, 0, 0); /* sched.c sends its request, or ends it */
	}
}

/* R is about to be handed to the executor, and runs are marked (several instances:
 * admit_marks): its start is marked where a takeover looks (admit_mark_start), and R's
 * statement waits for that mark (spec.hold), or its HTTP request (on_marked). Marked as the
 * run begins, not as it gets its backend, so that the marks of a burst go in one statement
 * while the runs wait for their connections, and a run whose mark is written by then is sent
 * as it would be without it. Returns 1 (R waits: spec.hold), 0 (nothing to wait for), -1 (the
 * mark cannot be noted: R must not run). */
int sched_mark_start(struct run *r)
{
	struct sched *s = r->job->s;
	if (!s->hist || !r->hist_key || !s->ex.release)
		return 0;
	struct admit_fire f = sched_admit_fire(r);
	char key[96];
	hist_run_key(s->hist, r->hist_key, key, sizeof(key));
	/* (a command whose commit a takeover cannot ask about: its class, for the history) */
	int w = admit_mark_start(s->admit, &f, r->adm, key, r->job->conf->fenced, on_marked, r);
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
 * (admit_mark_xact); in a transaction pgcrond opened (COMMIT_WAITS), its COMMIT
 * waits for the id to be written */
void sched_on_xid(void *arg, const char *xid, const char *server, bool commit_waits)
{
	struct run *r = arg;
	struct sched *s = r->job->s;
	char key[96];
	int w = 0;
	if (s->hist && r->hist_key) {
		hist_run_key(s->hist, r->hist_key, key, sizeof(key));
		w = admit_mark_xact(s->admit, key, xid, server, commit_waits ? on_xid_marked : NULL,
		                    r);
	}
	if (commit_waits && w != 1)
		on_xid_marked(r, w == 0,
		              "its transaction id could not be noted for the history database "
		              "(out of memory, or too many marks waiting to be written)");
}

struct admit_fire sched_admit_fire(const struct run *r)
{
	const struct job *j = r->job;
	return (struct admit_fire){
	    .job = j->conf->name,
	    .trigger = r->trigger,
	    .graph_run = r->graph_run,
	    .scheduled_us = r->scheduled_us,
	    .debounce_ms = j->conf->more->notify.debounce_ms,
	    .attempt = r->attempt,
	    /* not answered in the call while draining, nor with a fire held for R's answer
	     * (OVERLAP_SKIP): sched.c decides those on the answer */
	    .later = j->s->draining || (j->conf->overlap == OVERLAP_SKIP && j->pending),
	    .noted = r->noted,
	};
}

/* W is written as pending work (coord.h), when pending work is written at all. */
static bool work_note(struct sched *s, const struct coord_work *w)
{
	if (!s->coord)
		return false;
	admit_work_note(s->admit, w, NULL);
	return true;
}

void sched_work_note(struct run *r, int64_t due_us)
{
	struct coord_work w = {.job = r->job->conf->name,
	                       .kind = r->trigger,
	                       .graph_run = r->graph_run,
	                       .scheduled_us = r->scheduled_us,
	                       .attempt = r->attempt,
	                       .due_us = due_us,
	                       .payloads = r->payloads,
	                       .n_payloads = r->n_payloads};
	if (work_note(r->job->s, &w))
		r->noted = true;
}

const char *sched_work_keep(struct run *r, const char *why)
{
	if (!r->noted || !r->job->s->coord)
		return why;
	r->noted = false; /* the row stays: sched_run_free must not delete it */
	return "pgcrond was shutting down; handed over to the other instances (or its next "
	       "start) in pgcrond.pending_work";
}

void sched_job_owes(struct job *j, const char *graph_run)
{
	struct coord_work w = {
	    .job = j->conf->name, .kind = TRIGGER_UPSTREAM, .graph_run = graph_run};
	if (work_note(j->s, &w))
		j->up_noted = true;
}

void sched_job_owes_not(struct job *j)
{
	if (!j->up_noted)
		return;
	admit_work_done(j->s->admit, j->conf->name, TRIGGER_UPSTREAM);
	j->up_noted = false;
}

/* (a predicate on the run's own fields, here with its states: every SQL run's backlog check
 * asks it, and sched_http.c stays off a SQL run's way) */
bool sched_http_unsent(const struct run *r)
{
	return r->state == RUN_RUNNING && !r->hc && r->mark_ev && r->mark_wait && !r->cancelled;
}

/* ---- what waits (the backlog: status, pgcrond drop, pgcrond.view_backlog) ------------- */

const char *const sched_wait_names[] = {"slot",     "connection", "upstream",
                                        "retry",    "own_run",    "notifications",
                                        "instance", "claim",      "mark"};

/* What R waits for, or -1: nothing (being decided, handed to the loop, on its connection). */
static int waits_for(const struct run *r)
{
	switch (r->state) {
	case RUN_QUEUED:
		return SCHED_WAIT_SLOT;
	case RUN_PARKED:
		return SCHED_WAIT_UPSTREAM;
	case RUN_RETRY_WAIT:
		return SCHED_WAIT_RETRY;
	case RUN_PENDING:
		return SCHED_WAIT_OWN_RUN;
	case RUN_NOTIFY_WAIT:
		return SCHED_WAIT_NOTIFY;
	case RUN_CLUSTER_WAIT:
		return SCHED_WAIT_INSTANCE;
	case RUN_CLAIMING:
		return SCHED_WAIT_CLAIM;
	case RUN_RUNNING: /* a SQL run without its backend yet, an HTTP run without its mark */
		if (r->er)
			return r->backend_pid ? -1 : SCHED_WAIT_CONNECTION;
		return sched_http_unsent(r) ? SCHED_WAIT_MARK : -1;
	case RUN_DUE:
	case RUN_DEFERRED:
	case RUN_ENDING:
	case RUN_ENDED:
		return -1;
	}
	return -1;
}

/* The signature of nothing waiting (sched_backlog_cb's FNV-1a basis). */
#define BACKLOG_NONE 1469598103934665603ULL

void sched_backlog_changed(struct sched *s, const struct run *r)
{
	/* a run that stops waiting before BACKLOG_PUBLISH_US was never published: the timer
	 * goes when R waits now or what was published last may have changed */
	if (s->cluster && (waits_for(r) >= 0 || s->backlog_sig != BACKLOG_NONE) &&
	    !clock_armed(&s->backlog_ev) &&
	    clock_arm(s->clock, &s->backlog_ev, BACKLOG_PUBLISH_US) < 0)
		log_warning("the waiting runs are not published: out of memory");
}

size_t sched_waiting_of(const struct job *j, struct sched_waiting *out)
{
	const struct run *runs[SCHED_MAX_WAITING] = {
	    j->active, j->pending, j->graph ? j->graph->parked : NULL, sched_job_notified(j)};
	size_t n = 0;
	for (size_t i = 0; i < SCHED_MAX_WAITING; i++) {
		int why = runs[i] ? waits_for(runs[i]) : -1;
		if (why >= 0)
			out[n++] = (struct sched_waiting){
			    .why = (enum sched_wait_for)why,
			    .trigger = run_trigger_names[runs[i]->trigger],
			    .scheduled_us = runs[i]->scheduled_us,
			    .since_us = runs[i]->state == RUN_RUNNING ? runs[i]->start_us
			                                              : runs[i]->fired_us,
			    .attempt = runs[i]->attempt};
	}
	return n;
}

void sched_backlog_cb(void *arg)
{
	struct sched *s = arg;
	/* written one entry at a time: a tree of every waiting run held 15 MB at 40,000 */
	char *json = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&json, &len);
	bool ok = f && fputc('[', f) != EOF;
	uint64_t sig = BACKLOG_NONE;
	int64_t now = sched_now_us(s);
	bool young = false;
	size_t shown = 0;
	for (struct job *j = s->jobs; ok && j && shown < BACKLOG_PUBLISH_MAX; j = j->next) {
		struct sched_waiting w[SCHED_MAX_WAITING];
		size_t n = sched_waiting_of(j, w);
		for (size_t i = 0; i < n && shown < BACKLOG_PUBLISH_MAX; i++) {
			char key[160];
			/* a run on its way (its slot or connection coming, its claim or mark
			 * answered) for less than the publishing delay is not a backlog: published
			 * once it lasts, so a busy instance sends nothing while nothing piles up
			 * (a burst of more fires than max_running queues most of them briefly) */
			if ((w[i].why == SCHED_WAIT_SLOT || w[i].why == SCHED_WAIT_CONNECTION ||
			     w[i].why == SCHED_WAIT_CLAIM || w[i].why == SCHED_WAIT_MARK) &&
			    now - w[i].since_us < BACKLOG_PUBLISH_US) {
				young = true;
				continue;
			}
			snprintf(key, sizeof(key), "%s %d %lld %d", j->conf->name, (int)w[i].why,
			         (long long)w[i].scheduled_us, w[i].attempt);
			sig = (sig ^ strmap_hash(key)) * 1099511628211ULL;
			json_t *o =
			    json_pack("{s:s, s:s, s:s, s:I, s:I, s:i}", "job", j->conf->name, "for",
			              sched_wait_names[w[i].why], "trigger", w[i].trigger, "since",
			              (json_int_t)w[i].since_us, "scheduled_for",
			              (json_int_t)w[i].scheduled_us, "attempt", w[i].attempt);
			ok = ok && o && (shown++ == 0 || fputc(',', f) != EOF) &&
			     json_dumpf(o, f, JSON_COMPACT) == 0;
			json_decref(o);
		}
	}
	if (young && !clock_armed(&s->backlog_ev) &&
	    clock_arm(s->clock, &s->backlog_ev, BACKLOG_PUBLISH_US) < 0)
		log_warning("the waiting runs are not published: out of memory");
	ok = ok && fputc(']', f) != EOF;
	ok = f && fclose(f) == 0 && ok; /* JSON is complete once F is closed */
	/* (the same as what was published last: not sent again) */
	int rc = !ok ? -ENOMEM : sig == s->backlog_sig ? 0 : admit_publish_backlog(s->admit, json);
	free(json);
	if (rc == 0)
		s->backlog_sig = sig;
	else if (clock_arm(s->clock, &s->backlog_ev, 5 * BACKLOG_PUBLISH_US) < 0)
		log_warning("the waiting runs are not published: out of memory");
	/* (the history database away, or out of memory: again once it may be back) */
}

/* ---- the clock and the jobs by name -------------------------------------------------- */

int64_t sched_now_us(const struct sched *s)
{
	/* the history database's time (sched_set_db_offset) */
	return clock_now_us(s->clock) + s->db_offset_us;
}

int64_t sched_mono_us(const struct sched *s)
{
	return clock_mono_now_us(s->clock);
}

bool sched_held_back(const struct sched *s)
{
	return hist_backlogged(s->hist);
}

struct run *sched_job_notified(const struct job *j)
{
	return j->more ? j->more->notify_wait : NULL;
}

const cron_tz *sched_job_tz(const struct job *j)
{
	return j->conf->more->cal.tz ? j->conf->more->cal.tz : j->s->tz;
}

struct job *sched_job_find(struct sched *s, const char *name)
{
	for (struct strmap_node *n = strmap_find(&s->index, name); n; n = strmap_find_next(n)) {
		struct job *j = STRMAP_ENTRY(n, struct job, hnode);
		if (!j->removed)
			return j;
	}
	return NULL;
}

/* ---- what a run leaves: its job's last result and recent runs (sched_recent_priv.h) ---- */

const char *const sched_recent_statuses[] = {[SCHED_SUCCEEDED] = HIST_SUCCEEDED,
                                             [SCHED_FAILED] = HIST_FAILED,
                                             [SCHED_SKIPPED] = HIST_SKIPPED,
                                             [SCHED_UPSTREAM_FAILED] = HIST_UPSTREAM_FAILED,
                                             NULL};

struct job_last *sched_job_last(struct job *j)
{
	if (!j->last)
		j->last = calloc(1, sizeof(*j->last));
	return j->last;
}

void sched_recent_note(struct job *j, enum sched_status st, int64_t start_us, int64_t end_us,
                       int attempt, uint64_t key, int64_t runid)
{
	struct sched_recent *r = j->recent;
	if (!r && !(r = j->recent = calloc(1, sizeof(*r))))
		return; /* out of memory: the page shows fewer runs */
	uint64_t dur = end_us > start_us ? (uint64_t)(end_us - start_us) : 0,
	         max = (1ULL << 40) - 1;
	dur = dur < max ? dur : max;
	uint32_t at = 0;
	for (uint32_t i = 0; i < r->n; i++) {
		struct sched_recent_run *e = &r->runs[i];
		if (e->start_us == start_us && e->dur_us == dur && e->status == st) {
			if (!e->written && runid) {
				e->id = (uint64_t)runid;
				e->written = 1;
			}
			return;
		}
		if (e->start_us > start_us)
			at = i + 1;
	}
	if (at >= SCHED_RECENT_RUNS)
		return; /* older than every run kept */
	uint32_t n = r->n < SCHED_RECENT_RUNS ? r->n : SCHED_RECENT_RUNS - 1;
	memmove(&r->runs[at + 1], &r->runs[at], (n - at) * sizeof(r->runs[0]));
	r->runs[at] = (struct sched_recent_run){
	    .start_us = start_us,
	    .id = runid ? (uint64_t)runid : key,
	    .dur_us = dur,
	    .attempt = (uint32_t)attempt < 0xfffff ? (uint32_t)attempt : 0xfffff,
	    .status = st,
	    .written = runid != 0};
	r->n = n + 1;
}

void sched_recent_ended(struct run *r, enum sched_status st, const char *message,
                        const char *sqlstate, int64_t end_us)
{
	struct job_last *l = sched_job_last(r->job);
	if (l) {
		l->status = sched_recent_statuses[st]; /* both string literals: kept, not copied */
		snprintf(l->trigger, sizeof(l->trigger), "%s", run_trigger_names[r->trigger]);
		free(l->message);
		l->message = message ? strdup(message) : NULL;
		text_copy(l->sqlstate, sizeof(l->sqlstate), sqlstate); /* a success has none: "" */
		l->start_us = r->start_us;
		l->end_us = end_us;
		l->ran_end_us = end_us;
		l->attempt = r->attempt;
		l->runid = 0; /* its row is written after this (sched_recent_written) */
		l->hist_key = r->hist_key;
		/* from its connection to now, both on the database's wall time: END_US is the
		 * start (which may have been moved to the job's last end) plus the run's duration
		 */
		int64_t busy_ms =
		    r->backend_at_us ? (sched_now_us(r->job->s) - r->backend_at_us) / 1000 : 0;
		l->backend_ms = busy_ms > INT32_MAX ? INT32_MAX : (int32_t)busy_ms;
	}
	sched_recent_note(r->job, st, r->start_us, end_us, r->attempt, r->hist_key, 0);
}

void sched_recent_written(void *arg, const struct hist_written *w)
{
	struct sched *s = arg;
	if (s->n_marked && w->key) { /* the end is written: no takeover asks for its xid */
		char key[96];
		hist_run_key(s->hist, w->key, key, sizeof(key));
		s->n_marked -= admit_mark_end(s->admit, key);
	}
	struct job *j = sched_job_find(s, w->job);
	if (!j || !w->key)
		return;
	if (j->last && j->last->hist_key == w->key && !j->last->runid)
		j->last->runid = w->runid;
	for (uint32_t i = 0; j->recent && i < j->recent->n; i++)
		if (j->recent->runs[i].id == w->key && !j->recent->runs[i].written) {
			j->recent->runs[i].id = (uint64_t)w->runid;
			j->recent->runs[i].written = 1;
		}
	if (strcmp(w->status, HIST_FAILED) == 0)
		metrics_failure_runid(s->metrics, w->job, w->end_us, w->runid);
}

void sched_recent_job_free(struct job *j)
{
	free(j->recent);
	j->recent = NULL;
}
