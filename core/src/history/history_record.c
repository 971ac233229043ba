/* The records (history.h: hist_start, hist_set_pid, hist_finish, hist_record): each becomes
 * one record of the spool, keyed by this process's boot id and the run's key, for history.c's
 * next batch. And what comes back of them: the rows written (their run ids, for the status)
 * and the rows of the status's start-up read. history.c calls this file, and nothing here
 * calls history.c: a record waits in the spool, and the linger timer sends it. */
#include <event2/event.h>
#include <event2/event_struct.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "clock.h"
#include "conndrv.h"
#include "hist_spool.h"
#include "history.h"
#include "history_priv.h"
#include "log.h"
#include "pgconn.h"
#include "text.h"

void hist_run_key(const struct hist *h, uint64_t key, char *buf, size_t len)
{
	snprintf(buf, len, "%s.%" PRIu64, h->boot_id, key); /* fits: boot_id < 64 */
}

/* Accept one record: into the spool (hist_spool.c, which keeps its fields for the next batch
 * and has the spill file's writer append it), then a
 * short wait for company (LINGER_MS) unless a statement of the history's is under way (its
 * answer queues the next batch). */
static void emit(struct hist *h, const char *kind, const char *const *fields, int n)
{
	hist_spool_put(h->spool, kind, fields, n);
	hist_backlog_update(h, true);
	if (h->op == OP_NONE && !evtimer_pending(&h->linger_ev, NULL)) {
		struct timeval tv = {0, LINGER_MS * 1000};
		evtimer_add(&h->linger_ev, &tv);
	}
}

/* ---- the jobs' ids ------------------------------------------------------------------ */

/* A job's id by its name: what the insert would otherwise look up for every row. */
struct jobid {
	struct strmap_node node;
	char id[24];
	char name[];
};

const char hist_sql_jobids[] =
    "SELECT j.jobname, j.jobid FROM pgcrond.job j"
    " WHERE j.jobname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])";

static void jobid_set(struct hist *h, const char *name, const char *id)
{
	struct jobid *j = STRMAP_ENTRY(strmap_find(&h->jobids, name), struct jobid, node);
	size_t len = strlen(name);
	if (!j) {
		if (!(j = malloc(sizeof(*j) + len + 1)))
			return; /* the insert looks it up */
		memcpy(j->name, name, len + 1);
		strmap_insert(&h->jobids, &j->node, j->name);
	}
	snprintf(j->id, sizeof(j->id), "%s", id);
}

const char *hist_jobid(const void *arg, const char *job)
{
	const struct hist *h = arg;
	const struct jobid *j = STRMAP_ENTRY(strmap_find(&h->jobids, job), struct jobid, node);
	return j ? j->id : NULL;
}

void hist_jobids_read(struct hist *h, const PGresult *r)
{
	for (int i = 0; PQnfields(r) == 2 && i < PQntuples(r); i++)
		jobid_set(h, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
}

void hist_jobids_free(struct hist *h)
{
	for (struct strmap_node *n = strmap_first(&h->jobids), *next; n; n = next) {
		next = strmap_next(&h->jobids, n);
		strmap_remove(&h->jobids, n);
		free(STRMAP_ENTRY(n, struct jobid, node));
	}
	strmap_free(&h->jobids);
}

/* ---- backpressure --------------------------------------------------------------------- */

void hist_backlog_update(struct hist *h, bool on_only)
{
	/* the batch under way is being written: only the records behind it wait */
	uint64_t out = h->op == OP_BATCH ? h->batch_n : 0, n = hist_spool_pending(h->spool);
	uint64_t max = h->tun.backlog_max;
	n = n > out ? n - out : 0;
	h->hold_futile = h->hold_futile && n > max / 2;
	if (!h->st.backlogged && n <= max)
		return; /* what every record finds: nothing to weigh */
	bool taking = stmtq_ready(h->q) && h->writes == WRITES_OK;
	int64_t now = clock_mono_ms();
	if (!h->st.backlogged) {
		if (!taking || n <= max || h->hold_futile)
			return;
		h->st.backlogged = true;
		h->hold_told = !h->st.holds++ || now - h->hold_end_ms > HOLD_QUIET_MS;
		h->hold_at_ms = now;
		h->hold_pending = n;
		log_msg(h->hold_told ? LOG_LVL_WARNING : LOG_LVL_DEBUG, NULL,
		        "history: %" PRIu64 " run records wait to be written (more than %" PRIu64
		        "): the history database does not take them as fast as the runs make them; "
		        "new runs are held back until at most %" PRIu64 " wait",
		        n, max, max / 2);
		return;
	}
	if (on_only)
		return;
	if (taking && n > max / 2 && now - h->hold_at_ms > HOLD_FUTILE_MS) {
		h->hold_futile = n >= h->hold_pending; /* else it shrinks: hold on */
		h->hold_at_ms = now;
		h->hold_pending = n;
	}
	if (taking && n > max / 2 && !h->hold_futile)
		return;
	h->st.backlogged = false;
	h->hold_end_ms = now;
	enum log_level level = h->hold_told ? LOG_LVL_NOTICE : LOG_LVL_DEBUG;
	h->hold_told = false;
	if (h->hold_futile)
		log_warning("history: with new runs held back for %d s, %" PRIu64 " run records "
		            "still wait: holding runs back does not let the history catch up; they "
		            "go on, and the records wait in %s",
		            HOLD_FUTILE_MS / 1000, n, hist_spool_where(h->spool));
	else if (taking)
		log_msg(level, NULL,
		        "history: %" PRIu64 " run records wait to be written; new runs start again "
		        "(held back again within %d s: not logged)",
		        n, HOLD_QUIET_MS / 1000);
	else
		log_msg(level, NULL,
		        "history: the database does not take records now (%" PRIu64
		        " wait in %s); new runs start again",
		        n, hist_spool_where(h->spool));
	if (h->caught_up_fn)
		event_active(&h->caught_up_ev, EV_TIMEOUT, 0);
}

bool hist_backlogged(const struct hist *h)
{
	return h && h->st.backlogged;
}

/* The caught-up event: the scheduler starts what it held back. */
static void on_caught_up(evutil_socket_t fd, short what, void *arg)
{
	struct hist *h = arg;
	if (h->caught_up_fn && !h->st.backlogged)
		h->caught_up_fn(h->caught_up_arg);
}

void hist_set_caught_up_fn(struct hist *h, void (*fn)(void *arg), void *arg)
{
	if (!h)
		return;
	if (!h->caught_up_fn && fn)
		event_assign(&h->caught_up_ev, h->base, -1, 0, on_caught_up, h);
	else if (h->caught_up_fn && !fn)
		event_del(&h->caught_up_ev);
	h->caught_up_fn = fn;
	h->caught_up_arg = arg;
}

void hist_set_lone(struct hist *h, int64_t since_us, int64_t until_us)
{
	if (!h)
		return;
	h->lone_told = since_us;
	h->lone_until = until_us;
}

/* ---- the records ---------------------------------------------------------------------- */

/* A new run's key K (returned; its text into KEY) and the fields a start and a complete row
 * share (N_START of them). Whether this instance runs alone since before K (hist_batch_ctx): a
 * new period of running alone begins with K. */
static uint64_t run_fields(struct hist *h, const struct hist_run *run, char *key, char *sched,
                           char *start, char *attempt, const char **f)
{
	uint64_t k = ++h->next_key;
	hist_run_key(h, k, key, 96);
	int64_t since = h->lone_told && clock_mono_us() < h->lone_until ? h->lone_told : 0;
	if (since != h->lone_since) {
		h->lone_since = since;
		h->lone_first = since ? k : 0;
	}
	f[0] = h->instance;
	f[1] = key;
	f[2] = h->boot_id;
	f[3] = run->job_name ? run->job_name : "";
	f[4] = run->database;
	f[5] = run->username;
	f[6] = run->command;
	f[7] = run->trigger;
	f[8] = run->graph_run;
	f[9] = run->scheduled_us ? text_i64(sched, 24, run->scheduled_us) : NULL;
	f[10] = text_i64(start, 24, run->start_us ? run->start_us : clock_wall_us());
	f[11] = text_i64(attempt, 24, run->attempt > 0 ? run->attempt : 1);
	if (run->jobid > 0 && run->job_name) { /* a SQL job's, as the configuration has it now */
		char id[24];
		jobid_set(h, run->job_name, text_i64(id, sizeof(id), run->jobid));
	}
	return k;
}

uint64_t hist_start(struct hist *h, const struct hist_run *run)
{
	char key[96], sched[24], start[24], attempt[24], pid[24];
	const char *f[N_START_PID];

	if (!h || !run)
		return 0;
	uint64_t k = run_fields(h, run, key, sched, start, attempt, f);
	/* a run that found a connection free has its pid already: one record, not two */
	f[N_START] = run->pid > 0 ? text_i64(pid, sizeof(pid), run->pid) : NULL;
	if (f[N_START])
		emit(h, K_START_PID, f, N_START_PID);
	else
		emit(h, K_START, f, N_START);
	return k;
}

void hist_set_pid(struct hist *h, uint64_t k, int64_t start_us, int pid)
{
	char key[96], pidbuf[24];

	if (!h || !k)
		return;
	hist_run_key(h, k, key, sizeof(key));
	char startbuf[24];
	const char *f[N_PID + 1] = {h->instance, key, text_i64(pidbuf, sizeof(pidbuf), pid),
	                            text_i64(startbuf, sizeof(startbuf), start_us)};
	emit(h, start_us ? K_PID2 : K_PID, f, start_us ? N_PID + 1 : N_PID);
}

void hist_finish(struct hist *h, uint64_t k, int64_t start_us, const char *status,
                 const char *message, const char *sqlstate, int64_t end_us)
{
	char key[96], end[24];

	if (!h || !k)
		return;
	hist_run_key(h, k, key, sizeof(key));
	char startbuf[24];
	const char *f[N_FINISH + 1] = {
	    h->instance, key,      status ? status : HIST_FAILED,
	    message,     sqlstate, text_i64(end, sizeof(end), end_us ? end_us : clock_wall_us())};
	f[N_FINISH] = text_i64(startbuf, sizeof(startbuf), start_us);
	emit(h, start_us ? K_FINISH2 : K_FINISH, f, start_us ? N_FINISH + 1 : N_FINISH);
}

void hist_count(struct hist *h, uint64_t k, const struct hist_run *run, int64_t end_us)
{
	char key[96], end[24], start[24], sched[24], seq[24];

	if (!h || !k || !run)
		return;
	hist_run_key(h, k, key, sizeof(key));
	/* the sequence makes a batch sent again after a lost answer count each run once */
	const char *f[N_COUNT] = {
	    h->instance,
	    key,
	    text_i64(end, sizeof(end), end_us ? end_us : clock_wall_us()),
	    text_i64(start, sizeof(start), run->start_us),
	    run->job_name ? run->job_name : "",
	    run->trigger,
	    run->scheduled_us ? text_i64(sched, sizeof(sched), run->scheduled_us) : NULL,
	    text_i64(seq, sizeof(seq), (int64_t)++h->count_seq)};
	emit(h, K_COUNT, f, N_COUNT);
}

uint64_t hist_record(struct hist *h, const struct hist_run *run, const char *status,
                     const char *message)
{
	char key[96], sched[24], start[24], attempt[24];
	const char *f[N_RECORD];

	if (!h || !run)
		return 0;
	uint64_t k = run_fields(h, run, key, sched, start, attempt, f);
	f[12] = status ? status : HIST_FAILED;
	f[13] = message;
	f[14] = NULL;
	f[15] = f[10]; /* it never ran: it ended when it started */
	emit(h, K_RECORD, f, N_RECORD);
	return k;
}

/* ---- what the database gives back -------------------------------------------------- */

void hist_set_earlier_fn(struct hist *h, void (*fn)(void *arg), void *arg)
{
	if (!h)
		return;
	h->earlier_fn = fn;
	h->earlier_arg = arg;
}

void hist_earlier_done(struct hist *h)
{
	h->orphans = ORPHANS_CLOSED;
	if (h->earlier_fn)
		h->earlier_fn(h->earlier_arg);
	h->earlier_fn = NULL;
}

void hist_set_written_fn(struct hist *h, hist_written_fn fn, void *arg)
{
	if (!h)
		return;
	h->written_fn = fn;
	h->written_arg = arg;
}

/* The rows the batch in flight wrote: told (COMMITTED) or forgotten (it failed: a line is sent
 * again, and its row gets another runid). */
void hist_written_done(struct hist *h, bool committed)
{
	for (size_t i = 0; i < h->n_written; i++) {
		struct written *w = &h->written[i];
		if (committed && h->written_fn)
			h->written_fn(h->written_arg, &(struct hist_written){.key = w->key,
			                                                     .runid = w->runid,
			                                                     .end_us = w->end_us,
			                                                     .job = w->job,
			                                                     .status = w->status});
		free(w->job);
	}
	h->n_written = 0;
}

void hist_written_rows(struct hist *h, const PGresult *r)
{
	size_t boot = strlen(h->boot_id);
	for (int i = 0; h->written_fn && i < PQntuples(r) && PQnfields(r) == 5; i++) {
		const char *key = PQgetvalue(r, i, 0);
		if (strncmp(key, h->boot_id, boot) != 0 || key[boot] != '.' || PQgetisnull(r, i, 1))
			continue; /* a row an earlier process left in the spill file */
		if (array_grow(&h->written, h->n_written, &h->cap_written, sizeof(*h->written),
		               64) < 0)
			return; /* the status shows these runs without their ids */
		struct written *w = &h->written[h->n_written];
		if (!(w->job = strdup(PQgetvalue(r, i, 2))))
			return;
		w->key = strtoull(key + boot + 1, NULL, 10);
		w->runid = atoll(PQgetvalue(r, i, 1));
		w->end_us = PQgetisnull(r, i, 4) ? 0 : atoll(PQgetvalue(r, i, 4));
		snprintf(w->status, sizeof(w->status), "%s", PQgetvalue(r, i, 3));
		h->n_written++;
	}
}

static const char *opt_value(PGresult *r, int i, int col)
{
	return PQgetisnull(r, i, col) ? NULL : PQgetvalue(r, i, col);
}

void hist_past_row(struct hist *h, PGresult *r, int i)
{
	const char *sqlstate = opt_value(r, i, 4);
	struct hist_past_run pr = {
	    .job = PQgetvalue(r, i, 1),
	    .status = PQgetvalue(r, i, 2),
	    .message = opt_value(r, i, 3),
	    .sqlstate = sqlstate && sqlstate[0] ? sqlstate : NULL,
	    .trigger = PQgetisnull(r, i, 5) ? "" : PQgetvalue(r, i, 5),
	    .attempt = atoi(PQgetvalue(r, i, 6)),
	    .start_us = PQgetisnull(r, i, 7) ? 0 : atoll(PQgetvalue(r, i, 7)),
	    .end_us = PQgetisnull(r, i, 8) ? 0 : atoll(PQgetvalue(r, i, 8)),
	    .runid = atoll(PQgetvalue(r, i, 9)),
	};
	h->last_results_fn(h->last_results_arg, (enum hist_past_kind)PQgetvalue(r, i, 0)[0], &pr);
}
