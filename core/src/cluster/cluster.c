/* Several instances on one history database (cluster.h, README "Running several instances").
 *
 * One dedicated connection, fully asynchronous on the daemon's event_base, one statement in
 * flight at a time. Claims wait in a FIFO; whatever waits when the connection is idle goes
 * out as ONE statement (the fires of a busy second share it), so a claim costs a fraction of
 * a round trip. When no claim can be made (the server is down, or a standby) the verdict
 * depends on what was known at the last contact: a lone instance runs its fires unclaimed,
 * as before coordination existed, and its history spools; an instance that saw others live
 * runs nothing unclaimed, since they may be running the same fires. */
#include "cluster.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "pgconn.h"
#include "stmtq.h"

#include "cluster_lone_priv.h"
#include "cluster_priv.h"

/* A clean stop; the work it leaves in pgcrond.pending_work is the others' (coord.c: the
 * NOTIFY only wakes them, they read which instances stopped). Its job locks go. */
static const char sql_stop[] =
    "WITH s AS (UPDATE pgcrond.instance SET stopped_at = pg_catalog.now(), stop_note = 'stopped'"
    "  WHERE name OPERATOR(pg_catalog.=) $1 AND boot_id OPERATOR(pg_catalog.=) $2 RETURNING 1),"
    " l AS (DELETE FROM pgcrond.job_lock WHERE instance OPERATOR(pg_catalog.=) $1"
    "  AND boot_id OPERATOR(pg_catalog.=) $2 RETURNING 1)"
    " SELECT (SELECT pg_catalog.count(*) FROM s), pg_catalog.pg_notify('" CLUSTER_CHANNEL
    "', 'stopped')";

static const char sql_purge[] = "DELETE FROM pgcrond.fire_claim WHERE ctid = ANY (ARRAY("
                                " SELECT ctid FROM pgcrond.fire_claim"
                                "  WHERE claimed_at < now() - interval '" CLAIM_KEEP_S "'"
                                "  AND fire_key <> 'n' LIMIT 5000))";

/* A part of this instance's jobs and their definitions' hashes: the jobs named from $4 to
 * before $5 in byte order (NULL: no bound), all of this instance's in that range; answers
 * the jobs some other live instance defines differently, with those instances. 100,000 jobs
 * in one statement kept 8 MB of literals for the next reconnect and 4 MB of libpq's send
 * buffer; a part is made from the configuration as it is sent (JOBS_PART). */
static const char sql_jobs[] =
    "WITH mine AS (SELECT j, h FROM unnest($2::text[], $3::text[]) AS m(j, h)),"
    " gone AS (DELETE FROM pgcrond.instance_job o WHERE o.instance = $1"
    "  AND ($4::text IS NULL OR o.job_name COLLATE \"C\" >= $4)"
    "  AND ($5::text IS NULL OR o.job_name COLLATE \"C\" < $5)"
    "  AND NOT EXISTS (SELECT 1 FROM mine WHERE mine.j = o.job_name)),"
    " upd AS (INSERT INTO pgcrond.instance_job (instance, job_name, def_hash)"
    "  SELECT $1, j, h FROM mine"
    "  ON CONFLICT (instance, job_name) DO UPDATE SET def_hash = EXCLUDED.def_hash)"
    " SELECT o.job_name, string_agg(o.instance, ', ' ORDER BY o.instance)"
    " FROM pgcrond.instance_job o"
    " JOIN pgcrond.instance i ON i.name = o.instance AND i.stopped_at IS NULL"
    " JOIN mine ON mine.j = o.job_name AND mine.h <> o.def_hash"
    " WHERE o.instance <> $1 GROUP BY 1 ORDER BY 1";

static const char sql_listen[] = "LISTEN " CLUSTER_CHANNEL;
/* Sent once listening (after taking the name, or a reconnect): the others beat at once, and
 * their heartbeats' answers, not this payload (anyone may send it), tell them this instance is
 * live, so that they mark their runs from then (cluster_marks_runs), not up to a heartbeat
 * later. */
#define HELLO_BEAT_MS 1000
static const char sql_hello[] = "SELECT pg_catalog.pg_notify('" CLUSTER_CHANNEL "', 'hello')";

/* The jobs whose runs ended: their locks go (one hold per run; the row when none is left).
 * A run of a job in $2 (overlap queue or replace, or a listen job) may wait on another
 * instance for this one's end: wake it (coord.c; it claims again, the row decides). */
static const char sql_unlock[] =
    "WITH u AS (SELECT j, pg_catalog.count(*)::pg_catalog.int4 AS k"
    "  FROM pg_catalog.unnest($1::text[]) AS j GROUP BY j),"
    /* the rows are locked in the jobs' order first, as a claim locks them (sql_claim): in
     * the order of u (a hash's), an unlock and another instance's claim of the same jobs
     * could each hold a row the other waits for */
    " lk AS (SELECT l.job_name FROM pgcrond.job_lock l"
    "  WHERE l.job_name OPERATOR(pg_catalog.=) ANY ($1::text[])"
    "   AND l.instance OPERATOR(pg_catalog.=) $3 AND l.boot_id OPERATOR(pg_catalog.=) $4"
    "  ORDER BY l.job_name COLLATE \"C\" FOR UPDATE OF l),"
    " dl AS (DELETE FROM pgcrond.job_lock l USING u"
    "  WHERE l.job_name OPERATOR(pg_catalog.=) u.j AND l.instance OPERATOR(pg_catalog.=) $3"
    "   AND l.boot_id OPERATOR(pg_catalog.=) $4 AND l.holds OPERATOR(pg_catalog.<=) u.k"
    "   AND l.job_name IN (SELECT lk.job_name FROM lk)"
    "  RETURNING l.job_name),"
    " up AS (UPDATE pgcrond.job_lock l SET holds = l.holds OPERATOR(pg_catalog.-) u.k FROM u"
    "  WHERE l.job_name OPERATOR(pg_catalog.=) u.j AND l.instance OPERATOR(pg_catalog.=) $3"
    "   AND l.boot_id OPERATOR(pg_catalog.=) $4 AND l.holds OPERATOR(pg_catalog.>) u.k"
    "   AND l.job_name IN (SELECT lk.job_name FROM lk)"
    "  RETURNING 1)"
    " SELECT pg_catalog.pg_notify('" CLUSTER_CHANNEL "', 'end ' OPERATOR(pg_catalog.||)"
    "  dl.job_name) FROM dl WHERE dl.job_name OPERATOR(pg_catalog.=) ANY ($2::text[])";

/* The heartbeat, and who else is live. */
static const char sql_beat[] =
    "WITH hb AS (INSERT INTO pgcrond.instance AS i (name, boot_id, host, pid, version,"
    "   dead_after_ms)"
    "  VALUES ($1, $2, $3, $4::integer, $5, $6::integer)"
    "  ON CONFLICT (name) DO UPDATE SET last_seen = now(), stopped_at = NULL, stop_note = NULL,"
    "   dead_after_ms = EXCLUDED.dead_after_ms,"
    "   started_at = CASE WHEN i.boot_id = EXCLUDED.boot_id THEN i.started_at ELSE now() END,"
    "   boot_id = EXCLUDED.boot_id, host = EXCLUDED.host, pid = EXCLUDED.pid,"
    "   version = EXCLUDED.version"
    "  RETURNING 1)"
    " SELECT (SELECT count(*) FROM hb),"
    /* live: seen within 30 s, or within its own cluster_dead_after and 10 s if longer */
    "  (SELECT count(*) FROM pgcrond.instance WHERE name <> $1 AND stopped_at IS NULL"
    "    AND last_seen > now() - greatest(interval '30 seconds',"
    "     (coalesce(dead_after_ms, 20000) + 10000) * interval '1 millisecond')),"
    "  (SELECT string_agg(name, ', ' ORDER BY name) FROM pgcrond.instance"
    "    WHERE name <> $1 AND stopped_at IS NULL AND last_seen > now() - greatest("
    "     interval '30 seconds', (coalesce(dead_after_ms, 20000) + 10000)"
    "     * interval '1 millisecond')),"
    /* the database's clock, for this host's offset from it (cluster_clock_offset) */
    "  (pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) OPERATOR(pg_catalog.*)"
    "   1000000)::pg_catalog.int8,"
    /* this process was found dead meanwhile (sql_reap), as in cluster_sql_lock */
    " (SELECT pg_catalog.format('%s at %s', w.stop_note, pg_catalog.to_char(w.stopped_at"
    "    AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))"
    "   FROM pgcrond.instance w WHERE w.name OPERATOR(pg_catalog.=) $1"
    "    AND w.boot_id OPERATOR(pg_catalog.=) $2 AND w.stopped_at IS NOT NULL"
    "    AND" SQL_FOUND_DEAD_W "),"
    /* others not stopped whose heartbeat is late by a claim's lease: a claim of theirs may
     * have outlived it (cluster_serve_leased, which looks only then) */
    " (SELECT pg_catalog.count(*) FROM pgcrond.instance s"
    "   WHERE s.name OPERATOR(pg_catalog.<>) $1 AND s.stopped_at IS NULL"
    "    AND s.last_seen OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-)"
    "     (" SQL_LEASE_MS(
        "s") "::pg_catalog.float8 OPERATOR(pg_catalog.*)"
             "      interval '1 millisecond'))"
             "    AND s.last_seen OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-)"
             "     interval '2 minutes')),"
             /* others not stopped, live or not: an instance alone looks for dead ones only
              * when there is one (cluster_lone.c) */
             " (SELECT pg_catalog.count(*) FROM pgcrond.instance o"
             "   WHERE o.name OPERATOR(pg_catalog.<>) $1 AND o.stopped_at IS NULL)";

static void op_done(void *arg, int tag, const struct stmtq_result *sr);

void cluster_arm_ms(struct event *ev, int64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(ev, &tv);
}

/* The unsent unlocks start gathering now (UNLOCK_GATHER_MS). */
static void unlock_gather(struct cluster *c)
{
	c->unlock_since_ms = clock_mono_ms();
	cluster_arm_ms(&c->unlock_ev, UNLOCK_GATHER_MS);
}

static void on_unlock_due(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;
	(void)fd;
	(void)what;
	/* due, whatever the two clocks say (libevent's timer runs on its cached time) */
	c->unlock_due = true;
	cluster_kick(c);
}

/* Whether the unsent unlocks wait for the runs under way (UNLOCK_HOLD_MS); if so, they go
 * when the hold ends or cluster_wake() comes. */
static bool unlock_held(struct cluster *c)
{
	if (c->closing || !c->hooks.busy || c->n_unlock >= CLAIM_BATCH_MAX ||
	    !c->hooks.busy(c->hooks.arg))
		return false;
	int64_t held = clock_mono_ms() - c->unlock_since_ms;
	if (held >= UNLOCK_HOLD_MS)
		return false;
	evtimer_del(&c->unlock_ev);
	cluster_arm_ms(&c->unlock_ev, UNLOCK_HOLD_MS - held);
	return true;
}

void cluster_wake(struct cluster *c)
{
	if (c && c->n_unlock > 0)
		cluster_kick(c);
}

/* ---- the connection -------------------------------------------------------------------- */

static void task_free(struct task *t)
{
	stmtq_free_held(t->stmt);
	free(t);
}

/* The state that dies with the connection (the session's own: stmtq.h). */
static void forget_conn(struct cluster *c)
{
	c->locked = false;
	/* the job locks are rows (sql/pgcrond--11.sql): they stay, and the unlocks still due
	 * (also those whose statement got no answer) go after the reconnect */
	c->unlock_sent = 0;
	c->reap_sent = false;
	/* the look for an earlier process's unserved claims is asked once: asked again after
	 * the reconnect if its answer was lost (its DELETE rolled back with the session, unless
	 * the commit came just before) */
	if (c->unserved_sent) {
		c->unserved_sent = false;
		c->unserved_due = true;
	}
	c->st.connected = false;
	/* statements of other modules: their answer cannot come now */
	while (c->task_head) {
		struct task *t = c->task_head;
		c->task_head = t->next;
		if (!c->closing)
			t->fn(t->arg, NULL, "the coordination connection was lost", "08006");
		task_free(t);
	}
	c->task_tail = NULL;
}

/* The session's failed(): the connection is gone. Reconnect unless stopping (or refused:
 * the daemon stops). */
static bool on_conn_failed(void *arg, const char *why, bool was_ready)
{
	struct cluster *c = arg;

	forget_conn(c);
	if (c->closing)
		return false;
	bool too_old = !was_ready && c->q->drv.too_old;
	if (!c->in_recovery && !too_old && log_complain(&c->down_complaint))
		log_warning("cluster: history database %s %s: %s", c->safe_conninfo,
		            was_ready ? "connection lost" : "unreachable", why);
	cluster_xact_lost(c);
	if (too_old && !c->refused) {
		/* a server too old for pgcrond: the daemon stops (as for a name held by another
		 * instance), with that one line */
		char msg[700];
		snprintf(msg, sizeof(msg), "history database %s: %s", c->safe_conninfo, why);
		c->refused = true;
		if (c->hooks.refused)
			c->hooks.refused(c->hooks.arg, msg);
	}
	/* claims in flight or waiting: their answer cannot come now */
	cluster_answer_claims(c, cluster_is_sent, cluster_v_offline);
	cluster_answer_claims(c, cluster_is_overdue, cluster_v_offline);
	return !c->refused;
}

/* Give the connection up for WHY (libpq's error if NULL), reconnecting after RETRY_MS (the
 * backoff if 0). */
void cluster_conn_failed(struct cluster *c, const char *why, int64_t retry_ms)
{
	stmtq_fail(c->q, why, retry_ms);
}

bool cluster_send_stmt(struct cluster *c, enum op op, const char *sql, int n,
                       const char *const *params)
{
	return stmtq_push(c->q, op, sql, n, params, c->q->drv.check_ms, op_done, c);
}

static void send_lock(struct cluster *c)
{
	char pid[24];
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	char dead[24];
	snprintf(dead, sizeof(dead), "%" PRId64, c->dead_after_ms);
	const char *p[] = {c->instance, c->boot_id, c->host, pid, PGCROND_VERSION, dead};
	cluster_send_stmt(c, OP_LOCK, cluster_sql_lock, 6, p);
}

static void on_connected(void *arg)
{
	struct cluster *c = arg;
	c->offset.known = false; /* perhaps another server (a failover), with its own clock */
	send_lock(c);
}

/* The retry timer (ownsess_retry): try the lock again (it waits behind the other clients'
 * statements in flight). */
static void on_retry(void *arg)
{
	struct cluster *c = arg;
	if (stmtq_ready(c->q) && !c->locked)
		send_lock(c);
}

/* The session is idle after a statement: the next one. */
static void on_idle(void *arg)
{
	cluster_kick(arg);
}

/* Wake-ups from other instances (coord.c), between statements. */
static void on_notify(void *arg, const char *channel, const char *extra)
{
	(void)channel; /* the only one it claims: CLUSTER_CHANNEL */
	struct cluster *c = arg;
	if (extra && strcmp(extra, "hello") == 0) {
		/* a wake-up only: at most one beat a second, whoever sends it; one that comes
		 * sooner is beaten for when the second is up */
		int64_t wait = c->hello_beat_ms + HELLO_BEAT_MS - clock_mono_ms();
		if (!c->closing && !evtimer_pending(&c->hello_ev, NULL))
			cluster_arm_ms(&c->hello_ev, wait > 0 ? wait : 0);
		return;
	}
	if (c->hooks.notified && !c->closing)
		c->hooks.notified(c->hooks.arg, extra);
}

static const struct ownsess_ops conn_ops = {
    .connected = on_connected,
    .failed = on_conn_failed,
    .idle = on_idle,
    .retry = on_retry,
    .notify = on_notify,
};

/* Another instance said hello (on_notify): beat now. */
static void on_hello(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;
	(void)fd;
	(void)what;
	c->hello_beat_ms = clock_mono_ms();
	c->beat_due = true;
	cluster_kick(c);
}

static void on_beat(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;
	(void)fd;
	(void)what;
	c->beat_due = c->reap_due = true;
	if (clock_mono_ms() - c->last_purge_ms >= PURGE_INTERVAL_MS)
		c->purge_due = true;
	cluster_kick(c);
}

/* ---- results --------------------------------------------------------------------------- */

const char *cluster_res_val(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static void jobs_done(struct cluster *c, const struct stmtq_result *sr)
{
	const PGresult *r = sr->res;
	if (sr->failed) {
		if (strcmp(sr->sqlstate, "42P01") != 0)
			log_warning("cluster: cannot publish this instance's jobs: %s", sr->err);
		c->jobs_due = false; /* the rest of the parts waits for the next connect or set */
		return;
	}
	/* the last part: the claims of stopped or dead instances that this instance is to serve
	 * may have waited for it (SQL_TAKER_DEFINES) */
	if (!c->jobs_due)
		cluster_serve_stopped(c);
	for (int i = 0; r && i < PQntuples(r); i++)
		log_warning("cluster: job %s is defined differently on instance(s) %s (a rolling "
		            "configuration change?); each fire runs with the definition of the "
		            "instance that claims it",
		            PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
}

/* Statement OP is complete (stmtq.h): what its answer means. The next statement follows
 * when this returns (the session's idle(): cluster_kick). */
static void op_done(void *arg, int tag, const struct stmtq_result *sr)
{
	struct cluster *c = arg;
	enum op op = (enum op)tag;
	if (sr->lost)
		return; /* the connection is gone: on_conn_failed */
	switch (op) {
	case OP_LOCK:
		cluster_lock_done(c, sr);
		break;
	case OP_HOLDER:
		cluster_holder_done(c, sr);
		break;
	case OP_BEAT:
		cluster_beat_done(c, sr);
		break;
	case OP_REAP:
		c->reap_sent = false;
		cluster_reap_done(c, sr);
		break;
	case OP_UNSERVED:
		cluster_unserved_done(c, sr);
		break;
	case OP_XACT:
		cluster_xact_done(c, sr);
		break;
	case OP_CLAIM:
	case OP_TURN:
		c->claim_rtt_us += clock_mono_us() - c->claim_sent_us;
		cluster_claim_done(c, op, sr);
		break;
	case OP_UNLOCK:
		/* sent or not, they are done: a failed unlock leaves a lock this session drops
		 * at its end at the latest */
		for (size_t i = 0; i < c->unlock_sent; i++)
			free(c->unlock[i]);
		memmove(c->unlock, c->unlock + c->unlock_sent,
		        (c->n_unlock - c->unlock_sent) * sizeof(*c->unlock));
		c->n_unlock -= c->unlock_sent;
		c->unlock_sent = 0;
		if (c->n_unlock > 0)
			unlock_gather(c);
		break;
	case OP_JOBS:
		jobs_done(c, sr);
		break;
	case OP_PURGE:
		if (sr->failed && strcmp(sr->sqlstate, "42P01") != 0)
			log_warning("cluster: purging old claims failed: %s", sr->err);
		break;
	case OP_STOP:
		c->stop_done = true;
		break;
	case OP_LISTEN:
		if (sr->failed)
			log_warning("cluster: cannot listen for other instances: %s", sr->err);
		else
			c->hello_due = true;
		break;
	case OP_HELLO:
		break; /* a wake-up; the heartbeats tell the rest */
	case OP_TASK:
		if (c->task_head) {
			struct task *t = c->task_head;
			c->task_head = t->next;
			if (!c->task_head)
				c->task_tail = NULL;
			t->fn(t->arg, sr->failed ? NULL : sr->res, sr->failed ? sr->err : "",
			      sr->failed ? sr->sqlstate : "");
			task_free(t);
		}
		break;
	}
}

/* ---- what to send next ----------------------------------------------------------------- */

/* The next part of the jobs (sql_jobs), made now from the configuration. */
static void send_jobs_part(struct cluster *c)
{
	size_t n = c->jobs_cfg->n_jobs, first = c->jobs_next < n ? c->jobs_next : n;
	size_t end = n - first > JOBS_PART ? first + JOBS_PART : n, k = end - first;
	struct claim *items = calloc(k ? k : 1, sizeof(*items));
	char(*hashes)[24] = calloc(k ? k : 1, sizeof(*hashes));
	char *names = NULL, *hl = NULL;
	if (items && hashes) {
		for (size_t i = 0; i < k; i++) {
			const struct conf_job *j = c->jobs_sorted[first + i];
			cluster_job_hash(j, hashes[i], sizeof(hashes[i]));
			items[i].job = j->name;
			items[i].key = hashes[i];
			items[i].next = i + 1 < k ? &items[i + 1] : NULL;
		}
		names = cluster_array_literal(k ? items : NULL, k, false);
		hl = cluster_array_literal(k ? items : NULL, k, true);
	}
	if (names && hl) {
		const char *p[] = {c->instance, names, hl,
		                   first > 0 ? c->jobs_sorted[first]->name : NULL,
		                   end < n ? c->jobs_sorted[end]->name : NULL};
		c->jobs_next = end;
		c->jobs_due = end < n;
		cluster_send_stmt(c, OP_JOBS, sql_jobs, 5, p);
	} else {
		log_warning("cluster: out of memory publishing the jobs");
		c->jobs_due = false;
	}
	free(names);
	free(hl);
	free(items);
	free(hashes);
}

/* The head task goes; it stays the head until its answer (op_done, OP_TASK). */
static void send_task(struct cluster *c)
{
	struct stmtq_stmt *s = c->task_head->stmt;
	c->task_head->stmt = NULL;
	if (s)
		(void)stmtq_push_held(c->q, s, c->q->drv.check_ms);
}

bool cluster_has_unsent(const struct cluster *c)
{
	for (const struct claim *q = c->head; q; q = q->next)
		if (!q->sent)
			return true;
	return false;
}

bool cluster_resend_worthy(const char *sqlstate)
{
	return strcmp(sqlstate, "40P01") == 0 || strcmp(sqlstate, "40001") == 0 ||
	       strcmp(sqlstate, "55P03") == 0;
}

void cluster_kick(struct cluster *c)
{
	if (!stmtq_ready(c->q) || stmtq_busy(c->q) || !c->locked)
		return;
	if (c->closing) {
		/* statements asked for before the stop go first (a stop's give-back of the fires it
		 * claimed early, sched_preclaim.c), within the stop's grace */
		if (c->task_head) {
			send_task(c);
			return;
		}
		if (!c->stop_done) {
			const char *p[] = {c->instance, c->boot_id};
			cluster_send_stmt(c, OP_STOP, sql_stop, 2, p);
		}
		return;
	}
	/* Runs waiting for their start marks first: their statements wait for them now */
	if (cluster_xact_waiting(c) && cluster_xact_send(c))
		return;
	/* Claims come last: they are many, and a heartbeat that waited behind them would make
	 * this instance look dead. First the locks of runs that ended: another instance's next
	 * fire waits for them; but not in the middle of a burst of claims, whose runs wait for
	 * their claims now (claim_cap). */
	if (c->n_unlock > 0 && !c->schema_missing && !(c->claim_cap && cluster_has_unsent(c)) &&
	    (c->unlock_due || c->n_unlock >= UNLOCK_GATHER_MAX ||
	     clock_mono_ms() - c->unlock_since_ms >= UNLOCK_GATHER_MS) &&
	    !unlock_held(c)) {
		struct claim *tmp = NULL, **tt = &tmp;
		size_t n = c->n_unlock < CLAIM_BATCH_MAX ? c->n_unlock : CLAIM_BATCH_MAX;
		/* the array literal takes claims: borrow the names */
		struct claim *items = calloc(n, sizeof(*items));
		if (items) {
			for (size_t i = 0; i < n; i++) {
				items[i].job = c->unlock[i];
				*tt = &items[i];
				tt = &items[i].next;
			}
			char *jobs = cluster_array_literal(tmp, n, false);
			free(items);
			if (jobs) {
				const char *p[] = {jobs, c->announce ? c->announce : "{}",
				                   c->instance, c->boot_id};
				c->unlock_sent = n;
				c->unlock_due = false;
				cluster_send_stmt(c, OP_UNLOCK, sql_unlock, 4, p);
				free(jobs);
				return;
			}
		}
	}
	/* runs' transaction ids, neither in the middle of a burst of claims */
	if (!(c->claim_cap && cluster_has_unsent(c)) && cluster_xact_send(c))
		return;
	if (c->listen_due) {
		c->listen_due = false;
		cluster_send_stmt(c, OP_LISTEN, sql_listen, 0, NULL);
		return;
	}
	if (c->hello_due) {
		c->hello_due = false;
		cluster_send_stmt(c, OP_HELLO, sql_hello, 0, NULL);
		return;
	}
	if (c->beat_due) {
		c->beat_due = false;
		char pid[24];
		snprintf(pid, sizeof(pid), "%ld", (long)getpid());
		char dead[24];
		snprintf(dead, sizeof(dead), "%" PRId64, c->dead_after_ms);
		const char *p[] = {c->instance, c->boot_id, c->host, pid, PGCROND_VERSION, dead};
		c->beat_wall_us = clock_wall_us();
		c->beat_mono_us = clock_mono_us();
		cluster_send_stmt(c, OP_BEAT, sql_beat, 6, p);
		return;
	}
	/* (a stopping instance takes nothing over: the others reap) */
	if (c->reap_due && !c->schema_missing && clock_mono_ms() >= c->reap_after_ms &&
	    !cluster_jobs_unpublished(c) && !c->stopping && !cluster_lone_quiet(c)) {
		c->reap_due = false;
		char dead[24];
		snprintf(dead, sizeof(dead), "%d", CLUSTER_DEAD_MS);
		const char *p[] = {c->instance, dead};
		const char *sql = cluster_reap_sql(c->xact_table, c->xact_fenced);
		if (sql) {
			c->reap_sent = true;
			cluster_send_stmt(c, OP_REAP, sql, 2, p);
			return;
		}
	}
	if (c->unserved_due && !c->schema_missing) {
		c->unserved_due = false;
		cluster_unserved_send(c);
		return;
	}
	if (c->purge_due && !c->schema_missing && !cluster_lone_on(c)) {
		c->purge_due = false;
		c->last_purge_ms = clock_mono_ms();
		cluster_send_stmt(c, OP_PURGE, sql_purge, 0, NULL);
		return;
	}
	/* The parts of the jobs published after a start or a reload take turns with the claims
	 * of fires due: at 100,000 jobs the 50 parts took 3 s, and every fire waited behind
	 * them (bench_scale, "fires during a reload"). */
	if (c->jobs_due && c->jobs_cfg && !c->schema_missing &&
	    (!cluster_has_unsent(c) || c->claims_went)) {
		c->claims_went = false;
		send_jobs_part(c);
		return;
	}
	if (c->task_head) {
		send_task(c);
		return;
	}
	if (cluster_has_unsent(c) && !c->schema_missing) {
		c->claim_sent_us = clock_mono_us();
		c->claims_went = true;
		cluster_send_claims(c);
		return;
	}
}

/* ---- lifetime -------------------------------------------------------------------------- */

int cluster_open(struct event_base *base, const char *conninfo, const char *instance,
                 const char *boot_id, const struct cluster_hooks *hooks, struct cluster **out)
{
	*out = NULL;
	if (!base || !conninfo || !instance || !*instance || !boot_id)
		return -EINVAL;
	struct cluster *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->base = base;
	c->conninfo = strdup(conninfo);
	c->instance = strdup(instance);
	c->boot_id = strdup(boot_id);
	if (!c->conninfo || !c->instance || !c->boot_id) {
		free(c->conninfo);
		free(c->instance);
		free(c->boot_id);
		free(c);
		return -ENOMEM;
	}
	if (hooks)
		c->hooks = *hooks;
	if (gethostname(c->host, sizeof(c->host)) != 0)
		snprintf(c->host, sizeof(c->host), "?");
	c->host[sizeof(c->host) - 1] = '\0';
	pgconn_redact_conninfo(conninfo, c->safe_conninfo, sizeof(c->safe_conninfo));
	c->last_purge_ms = clock_mono_ms() - PURGE_INTERVAL_MS; /* a purge after the first beat */
	evtimer_assign(&c->flush_ev, base, cluster_on_flush, c);
	evtimer_assign(&c->unlock_ev, base, on_unlock_due, c);
	evtimer_assign(&c->hello_ev, base, on_hello, c);
	c->dead_after_ms = CLUSTER_DEAD_MS;
	c->beat_ms = CLUSTER_HEARTBEAT_MS;
	event_assign(&c->beat_ev, base, -1, EV_PERSIST, on_beat, c);
	cluster_arm_ms(&c->beat_ev, c->beat_ms);
	/* the database's own session, shared with the history (ownsess.h): the instance's name
	 * is held by that session (cluster_sql_lock) */
	if (ownsess_join(&c->sess, base, c->conninfo, &conn_ops, c) < 0 ||
	    ownsess_claim_channel(&c->sess, CLUSTER_CHANNEL) < 0) {
		ownsess_leave(&c->sess);
		event_del(&c->beat_ev);
		free(c->conninfo);
		free(c->instance);
		free(c->boot_id);
		free(c);
		return -ENOMEM;
	}
	c->q = ownsess_q(&c->sess);
	*out = c;
	return 0;
}

void cluster_close(struct cluster **cp)
{
	struct cluster *c = *cp;
	if (!c)
		return;
	c->closing = true;
	c->stopping = true; /* (also without a drain before: an answer now takes nothing over) */
	if (c->st.statements)
		log_notice("cluster: %" PRIu64 " claims (%" PRIu64 " ours, %" PRIu64
		           " another instance's) in %" PRIu64
		           " statements, %.2f ms each on average",
		           c->st.claims, c->st.granted, c->st.taken, c->st.statements,
		           (double)c->claim_rtt_us / 1000.0 / (double)c->st.statements);
	event_del(&c->beat_ev);
	event_del(&c->flush_ev);
	event_del(&c->unlock_ev);
	event_del(&c->hello_ev);
	/* forget the claims: nobody waits for them any more */
	while (c->head) {
		struct claim *q = c->head;
		c->head = q->next;
		cluster_claim_free(q);
	}
	c->tail = NULL;
	/* a clean stop says so, so no survivor takes this instance for dead; bounded, since
	 * the daemon is exiting (the loop no longer runs: poll the socket here) */
	if (stmtq_ready(c->q) && c->locked) {
		cluster_kick(c); /* sends the stop, or it follows the statement in flight */
		int64_t until =
		    clock_mono_ms() + (c->reap_sent ? STOP_GRACE_REAP_MS : STOP_GRACE_MS);
		while (stmtq_conn(c->q) && stmtq_ready(c->q) && !c->stop_done) {
			int64_t left = until - clock_mono_ms();
			if (left <= 0 || PQflush(stmtq_conn(c->q)) < 0)
				break;
			struct pollfd pfd = {.fd = PQsocket(stmtq_conn(c->q)), .events = POLLIN};
			if (poll(&pfd, 1, (int)left) <= 0 || !PQconsumeInput(stmtq_conn(c->q)))
				break;
			stmtq_read(c->q); /* may drop the connection */
		}
	}
	if (c->task_head)
		log_warning(
		    "cluster: stopped with statements of the stop unsent (the connection "
		    "went, or its grace ran out): claims or pending work they handed over to "
		    "the others are served when their holder is found dead, or never");
	ownsess_leave(&c->sess);
	forget_conn(c);
	for (size_t i = 0; i < c->n_unlock; i++)
		free(c->unlock[i]); /* unlocks never sent: the rows hold nothing once we are gone */
	free(c->unlock);
	free(c->announce);
	cluster_xact_free(c);
	cluster_lone_free(c);
	free(c->jobs_sorted);
	config_free(&c->jobs_cfg);
	free(c->conninfo);
	free(c->instance);
	free(c->boot_id);
	free(c);
	*cp = NULL;
}

/* 64-bit FNV-1a, continued from H over S and a separator: a definition's fingerprint, kept
 * in pgcrond.instance_job (so not the string map's hash, which may change). */
static uint64_t def_fnv(uint64_t h, const char *s)
{
	for (const char *p = s ? s : "\x01"; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 1099511628211ULL;
	}
	h ^= 0xff;
	return h * 1099511628211ULL;
}

void cluster_job_hash(const struct conf_job *j, char *out, size_t len)
{
	char num[96];
	uint64_t h = 14695981039346656037ULL;
	const char *text[] = {j->name, j->plugin, j->command, j->database, j->schedule, j->listen};
	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		h = def_fnv(h, text[i]);
	for (size_t i = 0; i < j->n_after; i++)
		h = def_fnv(h, j->after[i]);
	for (size_t i = 0; i < j->n_settings; i++) {
		h = def_fnv(h, j->settings[i].key);
		h = def_fnv(h, j->settings[i].value);
	}
	snprintf(num, sizeof(num), "%d/%" PRId64 "/%d/%d/%d/%" PRId64, j->enabled, j->timeout_ms,
	         (int)j->overlap, j->retries, (int)j->catchup, j->debounce_ms);
	h = def_fnv(h, num);
	snprintf(out, len, "%016" PRIx64, h);
}

static int by_name(const void *a, const void *b)
{
	const struct conf_job *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

void cluster_set_dead_after(struct cluster *c, int64_t ms)
{
	if (!c || ms <= 0 || ms == c->dead_after_ms)
		return;
	c->dead_after_ms = ms;
	int64_t beat = ms / 4 < CLUSTER_HEARTBEAT_MS ? ms / 4 : CLUSTER_HEARTBEAT_MS;
	if (beat != c->beat_ms) {
		c->beat_ms = beat;
		event_del(&c->beat_ev);
		cluster_arm_ms(&c->beat_ev, beat);
	}
	/* the others read the new value from the next heartbeat */
}

int cluster_set_jobs(struct cluster *c, const struct pgc_config *cfg,
                     const struct conf_job ***sortedp)
{
	const struct conf_job **sorted = sortedp ? *sortedp : NULL;
	if (sortedp)
		*sortedp = NULL;
	if (!c) {
		free(sorted);
		return 0;
	}
	if (!sorted && (sorted = calloc(cfg->n_jobs ? cfg->n_jobs : 1, sizeof(*sorted)))) {
		/* in byte order, as the parts' ranges are read (COLLATE "C") */
		for (size_t i = 0; i < cfg->n_jobs; i++)
			sorted[i] = &cfg->jobs[i];
		qsort(sorted, cfg->n_jobs, sizeof(*sorted), by_name);
	}
	ownsess_set_check(&c->sess, cfg->connection_check_ms);
	cluster_set_dead_after(c, cfg->cluster_dead_after_ms);
	size_t n = cfg->n_jobs, m = 0;
	for (size_t i = 0; i < n; i++)
		m += cfg->jobs[i].overlap != OVERLAP_SKIP || cfg->jobs[i].listen;
	/* (as many as announced: 100,000 zeroed items were a 5 MB calloc on the loop) */
	struct claim *items = calloc(m ? m : 1, sizeof(*items));
	int rc = -ENOMEM;
	if (!sorted || !items)
		goto out;
	/* the jobs whose runs another instance may wait for (sql_unlock, coord.c) */
	size_t k = 0;
	for (size_t i = 0; i < n && k < m; i++)
		if (cfg->jobs[i].overlap != OVERLAP_SKIP || cfg->jobs[i].listen) {
			items[k].job = cfg->jobs[i].name;
			items[k].next = NULL;
			if (k)
				items[k - 1].next = &items[k];
			k++;
		}
	char *ann = cluster_array_literal(k ? items : NULL, k, false);
	if (!ann)
		goto out;
	free(c->announce);
	c->announce = ann;
	free(c->jobs_sorted);
	c->jobs_sorted = sorted;
	sorted = NULL;
	config_free(&c->jobs_cfg); /* our reference: the caller has its own */
	c->jobs_cfg = config_ref(cfg);
	c->jobs_next = 0;
	c->jobs_due = true;
	cluster_kick(c);
	rc = 0;
out:
	free(sorted);
	free(items);
	return rc;
}

void cluster_release(struct cluster *c, const char *job)
{
	if (!c || c->schema_missing || cluster_lone_release(c, job))
		return; /* no lock was taken */
	if (c->n_unlock == c->cap_unlock) {
		size_t cap = c->cap_unlock ? 2 * c->cap_unlock : 16;
		char **u = realloc(c->unlock, cap * sizeof(*u));
		if (!u)
			return; /* the row stays until this process ends (then it holds nothing) */
		c->unlock = u;
		c->cap_unlock = cap;
	}
	char *name = strdup(job);
	if (!name)
		return;
	c->unlock[c->n_unlock++] = name;
	if (c->n_unlock - c->unlock_sent == 1)
		unlock_gather(c);
	cluster_kick(c);
}

void cluster_get_stats(const struct cluster *c, struct cluster_stats *out)
{
	*out = c->st;
}

bool cluster_clock_offset(int64_t sent_wall_us, int64_t rtt_us, int64_t db_us, int64_t *offset_us)
{
	if (rtt_us < 0)
		rtt_us = 0;
	/* the database read its clock somewhere within the round trip: the middle is the best
	 * guess, and off by at most half of it */
	*offset_us = db_us - (sent_wall_us + rtt_us / 2);
	int64_t mag = *offset_us < 0 ? -*offset_us : *offset_us;
	return mag - rtt_us / 2 > (int64_t)CLUSTER_MAX_OFFSET_MS * 1000;
}

int cluster_fire_key(const char *trigger, int64_t scheduled_us, const char *graph_run, int attempt,
                     int64_t debounce_ms, char *out, size_t len, int64_t *window_ms)
{
	int n;
	*window_ms = 0;
	if (scheduled_us)
		n = snprintf(out, len, "s:%" PRId64, scheduled_us / 1000000);
	else if (graph_run && *graph_run)
		n = snprintf(out, len, "g:%s", graph_run);
	else if (trigger && strcmp(trigger, "notify") == 0 && attempt <= 1) {
		/* instances get the same burst within milliseconds of each other; half the
		 * debounce (at least a second) tells a burst's late claims from the next burst */
		*window_ms = debounce_ms / 2 > 1000 ? debounce_ms / 2 : 1000;
		n = snprintf(out, len, "n");
	} else
		return 0; /* manual (claimed by request id), @reboot (per start), the winner's retry
		           */
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	if (attempt > 1) {
		int m = snprintf(out + n, len - (size_t)n, "/a%d", attempt);
		if (m < 0 || (size_t)m >= len - (size_t)n)
			return -ENOSPC;
	}
	return 1;
}

int cluster_submit(struct cluster *c, const char *sql, int n, const char *const *params,
                   cluster_result_fn fn, void *arg)
{
	if (!cluster_ready(c))
		return -ENOTCONN;
	return cluster_submit_closing(c, sql, n, params, fn, arg);
}

int cluster_submit_closing(struct cluster *c, const char *sql, int n, const char *const *params,
                           cluster_result_fn fn, void *arg)
{
	if (!c || !stmtq_ready(c->q) || !c->locked || c->refused)
		return -ENOTCONN;
	struct task *t = calloc(1, sizeof(*t));
	if (!t || !(t->stmt = stmtq_hold(OP_TASK, sql, n, params, op_done, c))) {
		free(t);
		return -ENOMEM;
	}
	t->fn = fn;
	t->arg = arg;
	if (c->task_tail)
		c->task_tail->next = t;
	else
		c->task_head = t;
	c->task_tail = t;
	/* sent from the loop (the flush timer kicks), never from inside this call; while
	 * closing, before the stop (cluster_kick, from cluster_close's wait) */
	if (!c->closing && !evtimer_pending(&c->flush_ev, NULL))
		cluster_arm_ms(&c->flush_ev, 0);
	return 0;
}

bool cluster_jobs_unpublished(const struct cluster *c)
{
	return c->jobs_due && c->jobs_cfg && !c->schema_missing;
}

bool cluster_ready(const struct cluster *c)
{
	return c && stmtq_ready(c->q) && c->locked && !c->closing && !c->refused;
}

const char *cluster_instance(const struct cluster *c)
{
	return c->instance;
}

const char *cluster_boot_id(const struct cluster *c)
{
	return c->boot_id;
}

const char *cluster_peers(const struct cluster *c)
{
	return c->peers;
}

/* The heartbeats' clock samples (cluster.h): the offset of the quickest round trip, which ages
 * so that a lasting change is taken. */
int64_t cluster_offset_filter(struct cluster_offset_filter *f, int64_t offset_us, int64_t rtt_us)
{
	if (rtt_us < 0)
		rtt_us = 0;
	if (f->known)
		f->rtt_us += CLUSTER_OFFSET_AGE_US;
	if (!f->known || rtt_us <= f->rtt_us) {
		f->known = true;
		f->offset_us = offset_us;
		f->rtt_us = rtt_us;
	}
	return f->offset_us;
}
