/* Run history (history.h, DESIGN.md "Run history").
 *
 * Every record hist_*() accepts (a run's start, its backend pid, its end, a complete row)
 * becomes one line of the spool (hist_spool.c): appended to the spill file by its writer
 * thread (within one append's time, so a database outage or a kill -9 loses nothing once
 * it is there) and kept in the memory queue, in order and bounded. A line leaves the spool
 * when the database has acknowledged its statement, and the file is emptied whenever
 * nothing is left; replaying what an earlier process left is the same sender working
 * through older lines. Every statement is idempotent on the writer's key (instance,
 * run_key): resending a line whose answer was lost with the connection is harmless.
 *
 * One dedicated connection, fully asynchronous on the daemon's event_base; reconnects with
 * capped exponential backoff and jitter. Records go out in batches of up to SET_BATCH_MAX
 * lines, as set-based statements (hist_batch.c) sent at once in libpq's pipeline mode and
 * ended by one sync, so they form one transaction and cost one round trip (a busy second of
 * 1,000 runs is 3,000 records; sent one by one they keep the server busy against the jobs
 * themselves). A batch's lines are acknowledged together when its sync reports success; a
 * failed batch rolls back as a whole and is sent again (every statement is idempotent). A
 * batch the database refuses for its data is halved until the line it refuses is alone, and
 * that line is dropped. */
#include "history.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hist_batch.h"
#include "hist_part.h"
#include "hist_spool.h"
#include "hist_startup.h"
#include "job_kind.h"
#include "clock.h"
#include "log.h"
#include "ownsess.h"
#include "pgconn.h"
#include "text.h"

#include "history_priv.h"

/* A record of a day without a partition (a clock far off, a record kept for days): make the
 * day's partition and send it again (the retention drops it again if it is past). Its ATTACH
 * waits for a lock only as long as the retention's steps do (hist_part.h): a manual VACUUM or
 * LOCK of the history would hold up everything on the session behind it. */
static const char sql_partition[] =
    "SELECT pgcrond.history_partition_create($1::pg_catalog.date) FROM " HIST_PART_SHORT_LOCKS;

/* A batch's statements, and their lock waits, are bounded by this (ms): the session is the
 * cluster's too, whose heartbeat must not wait long enough behind a batch to miss a claim's
 * lease (its margin is at least 1 s, cluster_priv.h SQL_LEASE_MS). A batch that takes longer
 * is halved, as one with a line the database refuses (a lone line waits for the retry timer),
 * and stays so until a full one is answered within BATCH_QUICK_MS: going back to the full size
 * at once would time out batch after batch. */
#define BATCH_TIMEOUT "300"
#define BATCH_QUICK_MS 150
static const char sql_fresh[] = "SELECT pgcrond.freshness_publish($1, $2::pg_catalog.jsonb)";
#define FRESH_WAIT_MAX_MS 5000 /* the freshness state waits behind records at most this */

#define HIST_OF(it) ((struct hist *)((char *)(it)-offsetof(struct hist, out)))

static void kick(struct hist *h);
static bool send_stmt(struct hist *h, enum hist_op op, const char *sql, int n,
                      const char *const *params);
static void batch_result(struct ownsess_item *it, PGresult *r);

/* ---- small helpers ------------------------------------------------------------------ */

uint64_t hist_pending(const struct hist *h)
{
	return h ? hist_spool_pending(h->spool) : 0;
}

static void on_linger(evutil_socket_t fd, short what, void *arg)
{
	kick(arg);
}

/* Lines came back from the spill file (hist_spool_set_ready_fn). */
static void on_spool_ready(void *arg)
{
	struct hist *h = arg;
	if (h->op != OP_NONE || !evtimer_pending(&h->linger_ev, NULL))
		kick(h); /* (after the statement under way, if one is) */
}

/* The N lines from the head are acknowledged. */
static void pop(struct hist *h, size_t n)
{
	h->head_part_tried = false;
	hist_spool_pop(h->spool, n);
}

/* ---- the connection ---------------------------------------------------------------- */

/* The batch in flight failed, or its answer is lost: its lines go again, never merged. */
static void batch_forget(struct hist *h)
{
	hist_written_done(h, false);
	if (h->spool)
		hist_batch_unmerge(hist_spool_head(h->spool));
}

/* The statement state that dies with a connection (the session's: ownsess.h). */
static void forget_conn(struct hist *h)
{
	batch_forget(h);
	if (h->writes == WRITES_WAIT)
		h->writes = WRITES_RETRY;
}

/* The session's failed(): the connection is gone; reconnect unless closing. */
static bool on_conn_failed(void *arg, const char *why, bool was_ready)
{
	struct hist *h = arg;

	forget_conn(h);
	hist_backlog_update(h, false); /* runs go on: records wait in the spill file */
	hist_spool_sync(h->spool);     /* what waits now may wait long: make it durable */
	/* a server too old: not a database away that comes back, and the cluster, on this
	 * session too, stops the daemon with the one line that says so (cluster_conn.c) */
	h->schema_old = h->q->schema_step >= 0;
	if (h->schema_old && log_complain(&h->down_complaint, why))
		log_warning("the history database %s %s (runs are kept in the spool until then)",
		            h->safe_conninfo, why);
	else if (!h->q->drv.too_old && log_complain(&h->down_complaint, why))
		log_warning("history database %s %s: %s; %" PRIu64
		            " run records wait in %s and are "
		            "written when it is back",
		            h->safe_conninfo, was_ready ? "connection lost" : "unreachable", why,
		            hist_pending(h), hist_spool_where(h->spool));
	return !h->closing;
}

static void on_connected(void *arg)
{
	struct hist *h = arg;

	h->st.connects++;
	if (log_complaint_reset(&h->down_complaint))
		log_notice("history database %s %s; writing %" PRIu64 " waiting run records",
		           h->safe_conninfo,
		           h->schema_old ? "has the pgcrond schema step this pgcrond needs now"
		                         : "is reachable again",
		           hist_pending(h));
	else
		log_debug("history: connected to %s", h->safe_conninfo);
	kick(h);
}

/* ---- statements -------------------------------------------------------------------- */

/* A statement other than a batch: it may go unanswered for the connection check or for
 * QUERY_TIMEOUT_MS, whichever is longer (the catch-up reads scan the table), before the
 * connection is given up; a batch gets the connection check alone (send_batch). Returns false
 * if the connection failed (and was dropped). */
static bool send_stmt(struct hist *h, enum hist_op op, const char *sql, int n,
                      const char *const *params)
{
	int64_t check_ms = h->q->drv.check_ms;

	h->op = op;
	return ownsess_push(&h->out, check_ms > QUERY_TIMEOUT_MS ? check_ms : QUERY_TIMEOUT_MS, sql,
	                    n, params);
}

/* Send the next batch of lines from HEAD, the spool's. Returns 1 if a batch went out, 0 if the
 * head line was unreadable and dropped (try the next), -1 if the connection failed. */
static int send_batch(struct hist *h, struct hist_spool_line *head)
{
	size_t taken = 0;
	PGconn *conn = stmtq_conn(h->q);
	int r = -1;
	/* the runs of this instance alone, in the period noted at their records and still on */
	int64_t lone = h->lone_told && clock_mono_us() < h->lone_until ? h->lone_told : 0;
	char retain[24];
	struct hist_batch_ctx ctx = {.jobid = hist_jobid,
	                             .retain_ms = text_i64(retain, sizeof(retain), h->retain_ms),
	                             .arg = h,
	                             .lone_first =
	                                 lone && lone == h->lone_since ? h->lone_first : 0,
	                             .boot_id = h->boot_id};

	if (PQenterPipelineMode(conn))
		r = hist_batch_send(conn, head, h->batch_cap, !h->head_fresh, BATCH_TIMEOUT, &ctx,
		                    &taken);
	/* jobs not in the map: their ids read (after a read that found none, not at every batch) */
	if (ctx.unknown && !h->jobids_ask && clock_mono_ms() >= h->jobids_next_ms)
		h->jobids_ask = ctx.unknown;
	else
		free(ctx.unknown);
	if (r < 0) {
		stmtq_fail(h->q, NULL, 0); /* libpq failed */
		return -1;
	}
	if (r == 0) {
		PQexitPipelineMode(conn);
		log_error("history: discarding an unreadable record in %s (damaged, or of a kind "
		          "this version does not know)",
		          hist_spool_where(h->spool));
		h->st.dropped++;
		pop(h, 1);
		return 0;
	}
	h->batch_fresh = h->head_fresh;
	h->head_fresh = false; /* until its answer: its commit may be lost with the connection */
	if (!PQpipelineSync(conn)) {
		stmtq_fail(h->q, NULL, 0); /* libpq failed */
		return -1;
	}
	h->batch_n = taken;
	h->batch_sent_ms = h->batch_cap < SET_BATCH_MAX ? clock_mono_ms() : 0; /* (to double) */
	h->batch_synced = false;
	h->op = OP_BATCH;
	/* answered within the connection check (a few small statements), or the connection is
	 * given up */
	if (!ownsess_begin(&h->out, h->q->drv.check_ms, batch_result))
		return -1;
	return 1;
}

static void send_orphans(struct hist *h)
{
	char msg[512]; /* fits: an instance's name is at most 63 bytes, a host name's 64 */
	snprintf(msg, sizeof(msg),
	         "pgcrond process ended while this run was in progress (closed at restart by "
	         "instance %s)",
	         h->instance);
	char floor[40], *notes = job_kind_lost_notes_json();
	const char *p[] = {h->instance, h->boot_id, msg,
	                   hist_startup_floor(clock_wall_us(), h->retain_ms, floor, sizeof(floor)),
	                   notes ? notes : "{}"};
	send_stmt(h, OP_ORPHANS, hist_sql_orphans, 5, p);
	free(notes);
}

/* The freshness state waiting (hist_publish_freshness), sent now: the session is idle. */
static void send_fresh(struct hist *h)
{
	char *json = h->fresh_json;
	h->fresh_json = NULL;
	const char *p[] = {h->instance, json};
	send_stmt(h, OP_FRESH, sql_fresh, 2, p);
	free(json);
}

/* Something to send: the history's item, sent at its turn (not while it waits after a
 * write error). Whatever gives the history work kicks: records or lines of the spill file come
 * (the linger timer, on_spool_ready), an answer with more behind it (op_done), a request. */
static void kick(struct hist *h)
{
	if (h->writes != WRITES_WAIT)
		ownsess_queue(&h->sess, &h->out);
}

/* The item's send(): the next statement, if any: the orphans of an earlier process once its
 * leftover records are written, then records in order (the retention's statements take their
 * own turns: hist_part.c), but not before records that came to an idle history have waited
 * for company (LINGER_MS). */
static bool send_next(struct ownsess_item *it)
{
	struct hist *h = HIST_OF(it);

	if (h->trim) { /* the read-back's answer is cleared by now: its pages go back */
		malloc_trim(0);
		h->trim = false;
	}
	if (h->writes == WRITES_WAIT)
		h->writes = WRITES_RETRY; /* its wait is over */
	for (;;) {
		if (h->jobids_ask) { /* the jobs' ids, so that no row looks its own up */
			send_stmt(h, OP_JOBIDS, hist_sql_jobids, 1,
			          (const char *const[]){h->jobids_ask});
			free(h->jobids_ask);
			h->jobids_ask = NULL;
			return true;
		}
		if (h->orphans == ORPHANS_DUE && hist_spool_leftovers_done(h->spool)) {
			send_orphans(h);
			return true;
		}
		if (h->orphans == ORPHANS_CLOSED && h->last_fires_fn) {
			char floor[40];
			const char *p[] = {hist_startup_floor(clock_wall_us(), h->retain_ms, floor,
			                                      sizeof(floor))};
			send_stmt(h, OP_LAST_FIRES, hist_sql_last_fires, 1, p);
			return true;
		}
		struct hist_spool_line *head = hist_spool_head(h->spool);
		/* while runs or their records wait, the read-back's pages are paced as bulk
		 * statements are (by their own time: the publications' parts would take every
		 * bulk turn of a start), so the records do not wait behind it */
		bool page = h->orphans == ORPHANS_CLOSED && h->last_results_fn;
		if (page && (clock_mono_ms() >= h->results_at_ms ||
		             (!head && !(h->runs && *h->runs > 0)))) {
			char floor[40], fails[16], runs[16];
			snprintf(fails, sizeof(fails), "%d", h->last_results_failures);
			snprintf(runs, sizeof(runs), "%d", h->last_results_runs);
			const char *p[] = {
			    hist_startup_floor(clock_wall_us(), h->retain_ms, floor, sizeof(floor)),
			    fails, runs, h->results_after};
			h->results_at_ms = clock_mono_ms();
			send_stmt(h, OP_LAST_RESULTS, hist_sql_last_results, 4, p);
			return true;
		}
		/* after the records, or between batches under a load that never empties the spool
		 */
		if (h->fresh_json && !h->closing &&
		    (!head || clock_mono_ms() - h->fresh_at_ms > FRESH_WAIT_MAX_MS)) {
			send_fresh(h);
			return true;
		}
		/* (closing: the loop that would fire the timer no longer runs) */
		if (head && !h->closing && evtimer_pending(&h->linger_ev, NULL))
			return false; /* the timer kicks */
		/* held back while runs are under way; once held DEFER_MAX_MS, records flow until
		 * the executor is idle, so a busy executor never starves the history. A full
		 * batch is never held: under a steady load the executor drains for a moment
		 * every second, which would start the wait over, so the history would send one
		 * batch a second and fall further behind every second */
		if (head && !h->closing && h->runs && *h->runs > 0 &&
		    hist_spool_pending(h->spool) < h->batch_cap) {
			int64_t now = clock_mono_ms();
			h->held_fn(h->held_arg); /* hist_wake() at the last run's end */
			if (!h->defer_since_ms)
				h->defer_since_ms = now;
			if (now - h->defer_since_ms < DEFER_MAX_MS) {
				int64_t ms = DEFER_MAX_MS - (now - h->defer_since_ms);
				struct timeval tv = {(time_t)(ms / 1000),
				                     (suseconds_t)(ms % 1000) * 1000};
				evtimer_add(&h->linger_ev, &tv); /* moves a pending one */
				return false;
			}
		} else {
			h->defer_since_ms = 0;
		}
		if (!head) {
			if (page) /* the next page's time */
				ownsess_queue_later(&h->sess, &h->out,
				                    h->results_at_ms - clock_mono_ms());
			return false;
		}
		if (send_batch(h, head) != 0)
			return true;
	}
}

/* The UTC day a start or complete record's row goes to (its start_time), as YYYY-MM-DD. */
static bool line_day(const struct hist_spool_line *l, char *day, size_t len)
{
	if (!l || !l->kind ||
	    !((l->n == N_START && !strcmp(l->kind, K_START)) ||
	      (l->n == N_START_PID && !strcmp(l->kind, K_START_PID)) ||
	      (l->n == N_RECORD && !strcmp(l->kind, K_RECORD))) ||
	    !l->f[10])
		return false;
	long long us = atoll(l->f[10]);
	time_t t = (time_t)(us / 1000000 - (us % 1000000 < 0));
	struct tm tm;
	return gmtime_r(&t, &tm) && strftime(day, len, "%Y-%m-%d", &tm) > 0;
}

/* What answer R says of the history's writes. One that worked ends the backoff a write error
 * counted (a connect's is over already). An error the database may stop making without our
 * help (connection trouble, a missing schema, privileges, a standby) waits for the retry
 * timer: returns false. Otherwise (it worked, or a data error that would repeat forever, 21:
 * a run's row twice in one statement) returns true: the answer is the caller's to use. */
static bool write_outcome(struct hist *h, const struct stmtq_result *r)
{
	if (!r->failed) {
		if (h->writes != WRITES_OK) {
			h->writes = WRITES_OK;
			if (log_complaint_reset(&h->write_complaint))
				log_notice("history: run records are written again");
			ownsess_item_ok(&h->out);
		}
		return true;
	}
	if (pgconn_data_error(r->sqlstate))
		return true;
	if (log_complain(&h->write_complaint, r->err))
		log_warning("history: cannot write run records: %s (SQLSTATE %s); %" PRIu64
		            " wait in %s, retrying",
		            r->err, r->sqlstate, hist_pending(h), hist_spool_where(h->spool));
	h->writes = WRITES_WAIT;
	hist_backlog_update(h, false); /* runs go on: records wait in the spill file */
	ownsess_queue_later(&h->sess, &h->out, OWNSESS_BACKOFF);
	return false;
}

/* OP_BATCH committed: its lines are written. */
static void batch_written(struct hist *h, const struct stmtq_result *r)
{
	write_outcome(h, r);
	hist_written_done(h, true);
	if (h->batch_n >= h->batch_cap && h->batch_cap < SET_BATCH_MAX &&
	    clock_mono_ms() - h->batch_sent_ms < BATCH_QUICK_MS)
		h->batch_cap = h->batch_cap > SET_BATCH_MAX / 2 ? SET_BATCH_MAX : h->batch_cap * 2;
	h->st.written += h->batch_n;
	pop(h, h->batch_n);
	hist_backlog_update(h, false);
	/* what follows was never sent, unless an earlier process left it (all of it is written
	 * once its orphans were closed: hist_earlier_done) */
	h->head_fresh = h->orphans == ORPHANS_CLOSED || hist_spool_leftovers_done(h->spool);
	/* asked again if records are left (the spool's head also brings back lines waiting for
	 * memory), the orphans (after their last leftover record?) or the freshness state. With
	 * no record left none is held back for the runs: the next waits for company
	 * (LINGER_MS), not for hist_wake at the last run's end, which would send it ahead of
	 * the cluster's marks */
	if (h->orphans != ORPHANS_CLOSED || h->fresh_json || hist_spool_head(h->spool))
		kick(h);
	else
		h->defer_since_ms = 0;
}

/* OP_BATCH failed: it rolled back as a whole (hist_written_done: op_done). */
static void batch_failed(struct hist *h, const struct stmtq_result *r)
{
	char day[16];

	if (strcmp(r->sqlstate, "23514") == 0 && !h->head_part_tried &&
	    line_day(hist_spool_head(h->spool), day, sizeof(day))) {
		/* no partition for the head row's day, or a CHECK a row violates: the halving
		 * below finds the line, and once it is the head its day's partition is made; if
		 * the partition was there, the line fails again and is dropped */
		const char *p[] = {day};
		h->head_part_tried = true;
		send_stmt(h, OP_PARTITION, sql_partition, 1, p);
		return;
	}
	/* its lines are as fresh as they were (23505: below) */
	h->head_fresh = h->batch_fresh && strcmp(r->sqlstate, "23505") != 0;
	if (h->batch_n > 1 &&
	    (strcmp(r->sqlstate, "57014") == 0 || strcmp(r->sqlstate, "55P03") == 0)) {
		h->batch_cap = h->batch_n / 2; /* too slow (BATCH_TIMEOUT): a smaller batch */
		return;
	}
	if (!write_outcome(h, r))
		return; /* (a data error: the line is found by halving, and dropped) */
	if (h->batch_fresh && strcmp(r->sqlstate, "23505") == 0) {
		/* a row never sent before was there after all: the lines go again as a replay */
	} else if (h->batch_n > 1) {
		/* A line the database refuses is in the batch, which rolled back whole: send its
		 * first half alone. The half with the line fails again and is halved again, until
		 * the line is alone at the head and is dropped below. */
		h->batch_cap = h->batch_n / 2;
	} else {
		h->st.dropped++;
		log_error("history: the database refuses a run record, dropping it: %s "
		          "(SQLSTATE %s)",
		          r->err, r->sqlstate);
		pop(h, 1);
	}
}

/* OP_ORPHANS: the runs an earlier process left running are closed (or cannot be). */
static void orphans_answered(struct hist *h, const struct stmtq_result *r)
{
	if (!write_outcome(h, r))
		return;
	if (r->failed)
		log_error("history: cannot close the runs a previous process left running: %s",
		          r->err);
	else
		h->st.orphans_closed += (uint64_t)hist_orphans_closed(r->res);
	hist_earlier_done(h);
}

/* OP_LAST_FIRES: each job's last fire to the asker, then the end of the answer (a failure
 * gives only the end). */
static void last_fires_answered(struct hist *h, const struct stmtq_result *r)
{
	if (!write_outcome(h, r))
		return;
	if (r->failed)
		log_error("history: cannot read the last fires for catch-up: %s", r->err);
	else
		for (int i = 0; r->res && h->last_fires_fn && i < PQntuples(r->res); i++)
			h->last_fires_fn(
			    h->last_fires_arg, PQgetvalue(r->res, i, 0),
			    PQgetisnull(r->res, i, 1) ? 0 : atoll(PQgetvalue(r->res, i, 1)),
			    PQgetisnull(r->res, i, 2) ? 0 : atoll(PQgetvalue(r->res, i, 2)));
	if (h->last_fires_fn) /* the end of the answer */
		h->last_fires_fn(h->last_fires_arg, NULL, 0, 0);
	h->last_fires_fn = NULL;
}

/* OP_LAST_RESULTS: a page of the jobs' last results to the asker, then the next page, or the
 * end of the answer as OP_LAST_FIRES'. */
static void last_results_answered(struct hist *h, const struct stmtq_result *r)
{
	if (!write_outcome(h, r))
		return;
	char *next = NULL;
	if (r->failed)
		log_error("history: cannot read the jobs' last results for the status: %s", r->err);
	else
		for (int i = 0; r->res && h->last_results_fn && i < PQntuples(r->res); i++)
			if (*PQgetvalue(r->res, i, 0) != 'N')
				hist_past_row(h, r->res, i);
			else if (!(next = strdup(PQgetvalue(r->res, i, 1))))
				log_error(
				    "history: cannot read the jobs' last results: out of memory");
	free(h->results_after);
	h->results_after = next;
	int64_t now = clock_mono_ms();
	h->results_at_ms = now + OWNSESS_BULK_WAIT * (now - h->results_at_ms);
	if (next)
		return; /* (kicked: the next page, at its time) */
	if (h->last_results_fn)
		h->last_results_fn(h->last_results_arg, HIST_PAST_LAST, NULL);
	h->last_results_fn = NULL;
	h->trim = true; /* (a row for each of every job's last runs: tens of MB) */
}

/* OP_PARTITION: made, or there already: the batch goes again (a failure is the retention's
 * to report: its pass at each connect ensures the partitions, a daemon back after days away
 * filling the gap, and a batch before it whose day has none comes here), unless another transaction
 * holds a lock the ATTACH needs (a manual VACUUM, ANALYZE or LOCK): give way, as the retention
 * does; the records wait in the spool, and the batch goes again later, failing the same way until
 * the partition is made. */
static void partition_answered(struct hist *h, const struct stmtq_result *r)
{
	if (strcmp(r->sqlstate, "55P03") != 0)
		return;
	h->head_part_tried = false;
	if (log_complain(&h->write_complaint, NULL))
		log_warning("history: a new partition waits for a lock another transaction holds "
		            "on the history; %" PRIu64 " run records wait in %s, trying again "
		            "every %d s",
		            hist_pending(h), hist_spool_where(h->spool),
		            HIST_PART_WAIT_RETRY_MS / 1000);
	h->writes = WRITES_WAIT;
	ownsess_queue_later(&h->sess, &h->out, HIST_PART_WAIT_RETRY_MS);
}

/* OP_FRESH: its failure stops nothing: the records go on, and the next state is sent. */
static void fresh_answered(struct hist *h, const struct stmtq_result *r)
{
	if (r->failed && !h->fresh_told) {
		log_warning("history: cannot show the freshness lag in pgcrond.view_status: %s "
		            "(SQLSTATE %s)",
		            r->err, r->sqlstate);
	} else if (!r->failed && h->fresh_told) {
		log_notice("history: the freshness lag is shown in pgcrond.view_status again");
	}
	h->fresh_told = r->failed;
}

/* The item's done(): what the answer of statement OP means; the next statement at the item's
 * next turn (after a batch that succeeded: batch_written says whether there is one). */
static void op_done(struct ownsess_item *it, const struct stmtq_result *r)
{
	struct hist *h = HIST_OF(it);
	enum hist_op op = h->op;

	h->op = OP_NONE;
	if (op == OP_BATCH && r->failed)
		batch_forget(h); /* rolled back: the lines go again */
	if (PQstatus(stmtq_conn(h->q)) == CONNECTION_BAD) {
		stmtq_fail(h->q, NULL, 0); /* libpq failed */
		return;
	}
	switch (op) {
	case OP_BATCH:
		if (r->failed)
			batch_failed(h, r);
		else
			batch_written(h, r);
		break;
	case OP_ORPHANS:
		orphans_answered(h, r);
		break;
	case OP_LAST_FIRES:
		last_fires_answered(h, r);
		break;
	case OP_LAST_RESULTS:
		last_results_answered(h, r);
		break;
	case OP_PARTITION:
		partition_answered(h, r);
		break;
	case OP_FRESH:
		fresh_answered(h, r);
		break;
	case OP_JOBIDS: /* unanswered: the insert looks the ids up */
		if (!r->failed)
			hist_jobids_read(h, r->res);
		h->jobids_next_ms =
		    !r->failed && PQntuples(r->res) > 0 ? 0 : clock_mono_ms() + JOBIDS_REREAD_MS;
		break;
	case OP_NONE:
		break;
	}
	/* (not if the answer sent the next statement, or the item waits after a write error) */
	if ((op != OP_BATCH || r->failed) && h->op == OP_NONE)
		kick(h);
}

/* The item's lost(): the connection is gone (on_conn_failed). */
static void op_lost(struct ownsess_item *it, const char *why)
{
	(void)why;
	HIST_OF(it)->op = OP_NONE;
}

/* One result (or the NULL that ends a statement's results) of the batch in flight (the
 * session's each() for OP_BATCH, which history.c writes itself). */
static void batch_result(struct ownsess_item *it, PGresult *r)
{
	struct hist *h = HIST_OF(it);

	if (!r) {
		if (!h->batch_synced)
			return; /* the end of one of its statements */
		/* the NULL after the sync: the connection is idle */
		if (!PQexitPipelineMode(stmtq_conn(h->q))) {
			stmtq_fail(h->q, "cannot leave pipeline mode", 0);
			return;
		}
		stmtq_end(h->q);
		return;
	}
	switch ((int)PQresultStatus(r)) { /* (libpq's statuses) */
	case PGRES_PIPELINE_SYNC:
		h->batch_synced = true;
		if (PQexitPipelineMode(stmtq_conn(h->q)))
			stmtq_end(h->q);
		return;
	case PGRES_TUPLES_OK:
		/* (never after an error: the pipeline skips the rest; and a batch that failed
		 * forgets what its rows said: op_done) */
		hist_written_rows(h, r);
		return;
	case PGRES_COMMAND_OK:
	case PGRES_PIPELINE_ABORTED: /* skipped after the error: sent again */
		return;
	default:
		stmtq_note_error(h->q, r);
		return;
	}
}

static const struct ownsess_ops conn_ops = {
    .connected = on_connected,
    .failed = on_conn_failed,
};

/* ---- public API -------------------------------------------------------------------- */

int hist_open(struct event_base *base, const char *conninfo, const char *state_dir,
              const char *instance, int64_t retain_ms, struct hist **out)
{
	struct hist *h;
	char *perr = NULL;
	int rc;

	*out = NULL;
	if (!base || !conninfo || !instance || !*instance)
		return -EINVAL;
	/* A conninfo libpq cannot parse would only fail again on every retry. */
	PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
	if (!opts) {
		/* libpq's message is not shown: it may quote the password */
		log_error("history: %s",
		          perr ? "the conninfo cannot be parsed by libpq; check its syntax (the "
		                 "parser's message is not shown because it may quote the password)"
		               : "out of memory");
		PQfreemem(perr);
		return -EINVAL;
	}
	PQconninfoFree(opts);

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->base = base;
	h->retain_ms = retain_ms;
	h->batch_cap = SET_BATCH_MAX;
	h->tun = (struct hist_tuning){
	    DEF_MEMORY_LIMIT,     DEF_SPILL_MAX_BYTES,  DEF_PURGE_INTERVAL_MS, DEF_CLOSE_GRACE_MS,
	    OWNSESS_RETRY_MIN_MS, OWNSESS_RETRY_MAX_MS, DEF_BACKLOG_MAX};
	h->conninfo = strdup(conninfo);
	h->instance = strdup(instance);
	if (!h->conninfo || !h->instance) {
		rc = -ENOMEM;
		goto fail;
	}
	pgconn_redact_conninfo(conninfo, h->safe_conninfo, sizeof(h->safe_conninfo));
	/* Unique per process, so rows of this process are told from a dead one's. */
	snprintf(h->boot_id, sizeof(h->boot_id), "%" PRIx64 "-%ld", (uint64_t)clock_wall_us(),
	         (long)getpid());
	evtimer_assign(&h->linger_ev, base, on_linger, h);
	h->out = (struct ownsess_item){.send = send_next, .done = op_done, .lost = op_lost};
	rc = hist_spool_open(base, state_dir, &h->spool);
	if (rc < 0)
		goto fail;
	hist_spool_set_limits(h->spool, h->tun.memory_limit, h->tun.spill_max_bytes);
	hist_spool_set_ready_fn(h->spool, on_spool_ready, h);
	/* the database's own session, shared with the cluster (ownsess.h); its connect may
	 * fail before this returns (on_conn_failed: the records wait) */
	rc = ownsess_join(&h->sess, base, h->conninfo, &conn_ops, h);
	if (rc < 0) {
		hist_spool_close(&h->spool);
		goto fail;
	}
	h->q = ownsess_q(&h->sess);
	/* nothing is written to an older schema: its records wait as while it is away */
	ownsess_need_steps(&h->sess, PGCROND_SCHEMA_STEPS, PGCROND_SCHEMA_STEP);
	/* the retention, on the same session and after the history: the records' first
	 * statement goes first at each connect */
	rc = hist_part_start(base, h->conninfo, retain_ms, h->tun.purge_interval_ms, &h->part);
	if (rc < 0)
		log_error("history: cannot start the partition maintenance: %s; no retention",
		          strerror(-rc));
	*out = h;
	return 0;
fail:
	free(h->conninfo);
	free(h->instance);
	free(h);
	return rc;
}

void hist_hold_orphans(struct hist *h, bool hold)
{
	if (!h)
		return;
	if (h->orphans != ORPHANS_CLOSED) /* closed already: nothing left to hold */
		h->orphans = hold ? ORPHANS_HELD : ORPHANS_DUE;
	if (!hold)
		kick(h);
}

const char *hist_boot_id(const struct hist *h)
{
	return h->boot_id;
}

void hist_set_runs(struct hist *h, const size_t *runs, void (*held)(void *arg), void *arg)
{
	h->runs = runs;
	h->held_fn = held;
	h->held_arg = arg;
}

void hist_wake(struct hist *h)
{
	if (h && h->defer_since_ms) {
		evtimer_del(&h->linger_ev);
		kick(h);
	}
}

void hist_tune(struct hist *h, const struct hist_tuning *t)
{
	if (t->memory_limit)
		h->tun.memory_limit = t->memory_limit;
	if (t->spill_max_bytes)
		h->tun.spill_max_bytes = t->spill_max_bytes;
	hist_spool_set_limits(h->spool, h->tun.memory_limit, h->tun.spill_max_bytes);
	if (t->close_grace_ms)
		h->tun.close_grace_ms = t->close_grace_ms;
	if (t->retry_min_ms)
		h->tun.retry_min_ms = t->retry_min_ms;
	if (t->retry_max_ms)
		h->tun.retry_max_ms = t->retry_max_ms;
	if (t->backlog_max)
		h->tun.backlog_max = t->backlog_max;
	ownsess_set_backoff(&h->sess, h->tun.retry_min_ms, h->tun.retry_max_ms);
	if (t->purge_interval_ms) {
		h->tun.purge_interval_ms = t->purge_interval_ms;
		hist_part_set_interval(h->part, t->purge_interval_ms);
	}
}

void hist_get_stats(const struct hist *h, struct hist_stats *out)
{
	struct hist_part_stats ps;

	hist_part_get_stats(h->part, &ps);
	*out = h->st;
	out->purged = ps.dropped_rows;
	out->purge_waits = ps.waits;
	out->partitions_dropped = ps.dropped;
	out->connected = stmtq_ready(h->q);
	out->pending = hist_pending(h);
	out->dropped += hist_spool_dropped(h->spool);
}

void hist_forget_asker(struct hist *h)
{
	if (!h)
		return;
	h->last_fires_fn = NULL;
	h->last_results_fn = NULL;
	h->written_fn = NULL;
}

void hist_request_last_fires(struct hist *h, hist_last_fires_fn fn, void *arg)
{
	h->last_fires_fn = fn;
	h->last_fires_arg = arg;
	kick(h);
}

void hist_publish_freshness(struct hist *h, char *json)
{
	if (!h) {
		free(json);
		return;
	}
	if (!h->fresh_json)
		h->fresh_at_ms = clock_mono_ms();
	free(h->fresh_json);
	h->fresh_json = json;
	if (json)
		kick(h);
}

void hist_request_last_results(struct hist *h, int max_failures, int max_runs,
                               hist_last_results_fn fn, void *arg)
{
	h->last_results_fn = fn;
	h->last_results_arg = arg;
	h->last_results_failures = max_failures;
	h->last_results_runs = max_runs;
	free(h->results_after); /* from the first page, now */
	h->results_after = NULL;
	h->results_at_ms = 0;
	kick(h);
}

/* How long the stop still waits for the writes (flush_for_close): until its deadline, or
 * CLOSE_STALL_MS without a batch acknowledged; 0 once nothing is left to write. */
static int64_t close_left(void *arg)
{
	struct hist *h = arg;
	int64_t now = clock_mono_ms();

	if (h->writes == WRITES_WAIT || (!stmtq_busy(h->q) && hist_pending(h) == 0))
		return 0;
	if (h->st.written != h->close_written) {
		h->close_written = h->st.written;
		h->close_progress_ms = now;
	}
	int64_t left = h->close_deadline_ms - now;
	int64_t stall = h->close_progress_ms + CLOSE_STALL_MS - now;
	return stall < left ? stall : left;
}

/* Drive only this connection (not the daemon's loop: other modules are shutting down)
 * until everything is written or the grace period is over. */
static void flush_for_close(struct hist *h)
{
	int64_t start = clock_mono_ms(), deadline = start + h->tun.close_grace_ms;

	/* the stop's flushes (hist_flush_stopping, then hist_close) share one grace period */
	if (h->close_deadline_ms && h->close_deadline_ms < deadline)
		deadline = h->close_deadline_ms;
	h->close_deadline_ms = deadline;
	h->close_progress_ms = start;
	h->close_written = h->st.written;
	if (h->writes == WRITES_WAIT)
		h->writes = WRITES_RETRY;
	kick(h);
	ownsess_drain(&h->sess, close_left);
}

void hist_flush_stopping(struct hist *h)
{
	if (!h)
		return;
	h->closing = true;
	hist_part_stop(&h->part);
	/* the file operation under way ends; from here on the spool reads and writes inline
	 * (the loop serves nothing any more) */
	hist_spool_stop_writer(h->spool);
	if (stmtq_ready(h->q))
		flush_for_close(h);
}

void hist_close(struct hist **hp)
{
	struct hist *h = *hp;

	if (!h)
		return;
	*hp = NULL;
	hist_flush_stopping(h); /* again: what came since */
	/* every record still in memory only goes to the spill file now, if the disk takes it;
	 * the count of those it does not is exact */
	hist_spool_close(&h->spool);
	ownsess_leave(&h->sess);
	forget_conn(h); /* (the rows of a batch in flight are forgotten) */
	evtimer_del(&h->linger_ev);
	hist_set_caught_up_fn(h, NULL, NULL);
	hist_jobids_free(h);
	free(h->jobids_ask);
	free(h->results_after);
	free(h->written);
	free(h->conninfo);
	free(h->instance);
	free(h->fresh_json);
	free(h);
}
