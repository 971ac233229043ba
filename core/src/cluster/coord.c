/* Pending work, overlap and the paused set across instances (coord.h; sql/pgcrond--7.sql).
 *
 * Every statement goes through cluster_submit, so it shares the coordination connection,
 * its deadlines and its reconnects; nothing here has a connection of its own. The only
 * timers are the wake-ups' gaps (struct wake): any role may NOTIFY the channel, so each kind
 * of wake-up reads its rows once at a time, and those that are not about fan-in at most once
 * a second.
 * Statements are sent only while the connection holds the instance's name: a survivor can
 * only take over what was written, and a pause made while the database is away is kept in
 * the list of changes to send and reaches the table at the next connect. */
#include "coord.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "clock.h"
#include "cluster.h"
#include "job_kind.h"
#include "log.h"
#include "text.h"

/* $1 instance, $2 boot, $3 job, $4 kind, $5 graph run, $6 scheduled (Unix us, 0: none),
 * $7 attempt, $8 due (Unix us, 0: now), $9 payloads (text[], or NULL) */
#define SQL_NOTE_ROW                                                                               \
	"INSERT INTO pgcrond.pending_work AS w (instance, boot_id, job_name, kind, graph_run,"     \
	" scheduled_time, attempt, due_at, payloads)"                                              \
	" VALUES ($1, $2, $3, $4, $5,"                                                             \
	"  CASE WHEN $6::pg_catalog.int8 OPERATOR(pg_catalog.>) 0 THEN pg_catalog.to_timestamp("   \
	"$6::pg_catalog.int8 OPERATOR(pg_catalog./) 1000000.0) END, $7::pg_catalog.int4,"          \
	"  CASE WHEN $8::pg_catalog.int8 OPERATOR(pg_catalog.>) 0 THEN pg_catalog.to_timestamp("   \
	"$8::pg_catalog.int8 OPERATOR(pg_catalog./) 1000000.0) ELSE pg_catalog.now() END,"         \
	"  $9::pg_catalog.text[])"
static const char sql_note[] =
    SQL_NOTE_ROW " ON CONFLICT (instance, job_name, kind) DO UPDATE SET boot_id = EXCLUDED.boot_id,"
                 "  graph_run = EXCLUDED.graph_run, scheduled_time = EXCLUDED.scheduled_time,"
                 "  attempt = EXCLUDED.attempt, due_at = EXCLUDED.due_at,"
                 "  payloads = EXCLUDED.payloads, noted_at = pg_catalog.now()";
/* Work a dead instance owed, handed back to it by a stopping instance (coord_note):
 * work of its own already there for the job is kept, never overwritten. */
static const char sql_hand_over[] = SQL_NOTE_ROW " ON CONFLICT DO NOTHING RETURNING 1";
static const char sql_done[] =
    "DELETE FROM pgcrond.pending_work WHERE instance OPERATOR(pg_catalog.=) $1"
    " AND job_name OPERATOR(pg_catalog.=) $2 AND kind OPERATOR(pg_catalog.=) $3";
/* The work of instance $1 written by a process other than boot $2 (a dead one). The DELETE
 * hands each row to one taker. */
static const char sql_take[] =
    "DELETE FROM pgcrond.pending_work WHERE instance OPERATOR(pg_catalog.=) $1"
    " AND boot_id OPERATOR(pg_catalog.<>) $2"
    " RETURNING job_name, kind, graph_run,"
    "  (extract(epoch FROM scheduled_time) OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8,"
    "  attempt,"
    "  (extract(epoch FROM due_at) OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8,"
    "  pg_catalog.array_to_json(payloads)::pg_catalog.text, instance";
/* The work of instances that stopped (a clean stop's NOTIFY only wakes us: which instances
 * stopped is read from their rows, which only pgcrond's roles write). The DELETE hands each
 * row to one taker. */
static const char sql_take_stopped[] =
    "DELETE FROM pgcrond.pending_work w USING pgcrond.instance i"
    " WHERE i.name OPERATOR(pg_catalog.=) w.instance AND i.stopped_at IS NOT NULL"
    "  AND i.name OPERATOR(pg_catalog.<>) $1"
    " RETURNING w.job_name, w.kind, w.graph_run,"
    "  (pg_catalog.date_part('epoch', w.scheduled_time) OPERATOR(pg_catalog.*) 1000000)"
    "   ::pg_catalog.int8,"
    "  w.attempt,"
    "  (pg_catalog.date_part('epoch', w.due_at) OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8,"
    "  pg_catalog.array_to_json(w.payloads)::pg_catalog.text, w.instance";
/* The live instances that hold job $1's lock (a claim takes it for a run): ask them to
 * cancel that run, and wake them. */
static const char sql_cancel[] =
    "WITH h AS (SELECT DISTINCT l.instance AS name FROM pgcrond.job_lock l"
    "  JOIN pgcrond.instance i ON i.name OPERATOR(pg_catalog.=) l.instance"
    "   AND i.boot_id OPERATOR(pg_catalog.=) l.boot_id AND i.stopped_at IS NULL"
    "  WHERE l.job_name OPERATOR(pg_catalog.=) $1 AND l.instance OPERATOR(pg_catalog.<>) $2),"
    " ins AS (INSERT INTO pgcrond.cancel_request AS r (instance, job_name, requested_by)"
    "  SELECT name, $1, $2 FROM h"
    "  ON CONFLICT (instance, job_name) DO UPDATE"
    "   SET requested_by = EXCLUDED.requested_by, requested_at = pg_catalog.now()"
    "  RETURNING instance)"
    " SELECT instance, pg_catalog.pg_notify('" CLUSTER_CHANNEL
    "', 'cancel ' OPERATOR(pg_catalog.||)"
    "  instance) FROM ins";
/* This instance's cancel requests; one older than a minute is stale (its run is over). */
static const char sql_cancels[] =
    "DELETE FROM pgcrond.cancel_request WHERE instance OPERATOR(pg_catalog.=) $1"
    " RETURNING job_name, requested_by, requested_at OPERATOR(pg_catalog.>)"
    "  (pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 minute')";
static const char sql_pause[] =
    "WITH p AS (INSERT INTO pgcrond.job_pause (job_name, paused_by)"
    "  SELECT $1, $2 WHERE $3::boolean ON CONFLICT (job_name) DO NOTHING RETURNING 1),"
    " r AS (DELETE FROM pgcrond.job_pause WHERE NOT $3::boolean"
    "  AND job_name OPERATOR(pg_catalog.=) $1 RETURNING 1)"
    " SELECT pg_catalog.pg_notify('" CLUSTER_CHANNEL "', 'pause')"
    "  WHERE EXISTS (SELECT FROM p) OR EXISTS (SELECT FROM r)";
static const char sql_paused[] = "SELECT job_name FROM pgcrond.job_pause ORDER BY 1";

/* A pause or resume not yet in pgcrond.job_pause. */
struct change {
	STAILQ_ENTRY(change) link;
	char *job;
	bool pause;
	bool sent;
};

/* The kinds of wake-up (a NOTIFY's payload), each a pass of statements that reads the rows it
 * is about. */
enum wake_kind { WAKE_GRAPH, WAKE_PAUSED, WAKE_CANCELS, WAKE_STOPPED, WAKE_KINDS };

/* A NOTIFY costs its sender one statement and every instance a pass: at most one pass of a
 * kind is under way, and the wake-ups that come meanwhile make one more pass after it (what
 * they woke for is in the rows by then). A kind also starts at most one pass per gap, so that
 * a role flooding the channel costs each instance a statement a second (ten for the fan-in's
 * reads, whose delay delays a downstream), not one per notification, and the claims of the
 * fires due are not held behind them. */
struct wake {
	struct coord *co;
	enum wake_kind kind;
	struct event *gap;
	bool busy;  /* a pass's answer is awaited */
	bool again; /* woken since the pass began */
};

static const int wake_gap_ms[WAKE_KINDS] = {
    [WAKE_GRAPH] = 100, [WAKE_PAUSED] = 1000, [WAKE_CANCELS] = 1000, [WAKE_STOPPED] = 1000};

struct coord {
	struct cluster *c;
	struct coord_hooks hooks;
	struct wake wake[WAKE_KINDS];
	STAILQ_HEAD(, change) changes; /* in the order made */
	struct log_complaint complaint;
};

static void on_gap(evutil_socket_t fd, short what, void *arg);

int coord_open(struct event_base *base, struct cluster *c, const struct coord_hooks *hooks,
               struct coord **out)
{
	struct coord *co = calloc(1, sizeof(*co));
	if (!co)
		return -ENOMEM;
	co->c = c;
	co->hooks = *hooks;
	STAILQ_INIT(&co->changes);
	for (int k = 0; k < WAKE_KINDS; k++) {
		struct wake *w = &co->wake[k];
		w->co = co;
		w->kind = (enum wake_kind)k;
		if (!(w->gap = evtimer_new(base, on_gap, w))) {
			*out = co;
			coord_free(out);
			return -ENOMEM;
		}
	}
	*out = co;
	return 0;
}

void coord_free(struct coord **cop)
{
	struct coord *co = *cop;
	if (!co)
		return;
	for (int k = 0; k < WAKE_KINDS; k++)
		if (co->wake[k].gap)
			event_free(co->wake[k].gap);
	for (struct change *ch; (ch = STAILQ_FIRST(&co->changes));) {
		STAILQ_REMOVE_HEAD(&co->changes, link);
		free(ch->job);
		free(ch);
	}
	free(co);
	*cop = NULL;
}

/* A failed statement is logged (one lost with the connection is not). */
static bool failed(struct coord *co, const char *what, const char *err, const char *sqlstate)
{
	if (!err || !*err)
		return false;
	if (strcmp(sqlstate, "08006") != 0 && log_complain(&co->complaint, err)) {
		log_warning("cluster: %s: %s", what, err);
	}
	return true;
}

/* Whether the statement was queued (FN is then called once). */
static bool send_stmt(struct coord *co, const char *what, const char *sql, int n,
                      const char *const *p, cluster_result_fn fn)
{
	int rc = cluster_submit(co->c, sql, n, p, fn, co);
	if (rc < 0 && rc != -ENOTCONN)
		log_warning("cluster: %s: %s", what, strerror(-rc));
	return rc == 0;
}

/* ---- wake-ups -------------------------------------------------------------------------- */

static bool pass_send(struct coord *co, enum wake_kind kind);

static void pass_start(struct wake *w)
{
	w->again = false;
	w->busy = pass_send(w->co, w->kind);
	if (w->busy)
		clock_event_in(w->gap, wake_gap_ms[w->kind]);
}

/* A wake-up of KIND (a notification, or a connect's first read). */
static void wake(struct coord *co, enum wake_kind kind)
{
	struct wake *w = &co->wake[kind];
	if (w->busy || evtimer_pending(w->gap, NULL))
		w->again = true;
	else
		pass_start(w);
}

/* The answer of KIND's pass came (or its connection was lost). */
static void pass_answered(struct coord *co, enum wake_kind kind)
{
	struct wake *w = &co->wake[kind];
	w->busy = false;
	if (w->again && !evtimer_pending(w->gap, NULL))
		pass_start(w);
}

static void on_gap(evutil_socket_t fd, short what, void *arg)
{
	struct wake *w = arg;
	(void)fd;
	(void)what;
	if (w->again && !w->busy)
		pass_start(w);
}

/* ---- pending work ---------------------------------------------------------------------- */

static void note_done(void *arg, const PGresult *res, const char *err, const char *sqlstate)
{
	(void)res;
	failed(arg, "cannot record pending work", err, sqlstate);
}

static void hand_over_done(void *arg, const PGresult *res, const char *err, const char *sqlstate)
{
	(void)arg;
	(void)sqlstate;
	if (err && *err)
		log_warning("cluster: cannot hand a dead instance's pending work over to the other "
		            "instances (it is lost): %s",
		            err);
	else if (res && PQntuples(res) == 0)
		log_warning("cluster: a dead instance's pending work handed over to the other "
		            "instances was already pending for it (one run of it is left)");
}

void coord_note(struct coord *co, const struct coord_work *w, const char *dead)
{
	char sched[24], attempt[16], due[24];
	if (!co)
		return;
	snprintf(sched, sizeof(sched), "%" PRId64, w->scheduled_us);
	snprintf(attempt, sizeof(attempt), "%d", w->attempt > 0 ? w->attempt : 1);
	snprintf(due, sizeof(due), "%" PRId64, w->due_us);
	char *payloads =
	    w->n_payloads ? text_pg_array((const char *const *)w->payloads, w->n_payloads) : NULL;
	const char *p[] = {dead ? dead : cluster_instance(co->c),
	                   cluster_boot_id(co->c),
	                   w->job,
	                   run_trigger_names[w->kind],
	                   w->graph_run,
	                   sched,
	                   attempt,
	                   due,
	                   payloads};
	if (!dead)
		send_stmt(co, "cannot record pending work", sql_note, 9, p, note_done);
	else if (cluster_submit_closing(co->c, sql_hand_over, 9, p, hand_over_done, co) < 0)
		log_warning("cluster: cannot hand the pending work of job %s over to the other "
		            "instances: not connected",
		            w->job);
	free(payloads);
}

void coord_done(struct coord *co, const char *job, enum run_trigger kind)
{
	if (!co)
		return;
	const char *p[] = {cluster_instance(co->c), job, run_trigger_names[kind]};
	send_stmt(co, "cannot record pending work", sql_done, 3, p, note_done);
}

static void take_done(void *arg, const PGresult *r, const char *err, const char *sqlstate)
{
	struct coord *co = arg;
	if (failed(co, "cannot take over pending work", err, sqlstate) || !r)
		return;
	for (int i = 0; i < PQntuples(r); i++) {
		struct coord_work w = {
		    .job = PQgetvalue(r, i, 0),
		    .graph_run = PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2),
		    .scheduled_us = PQgetisnull(r, i, 3) ? 0 : atoll(PQgetvalue(r, i, 3)),
		    .attempt = atoi(PQgetvalue(r, i, 4)),
		    .due_us = atoll(PQgetvalue(r, i, 5)),
		};
		char **payloads = NULL;
		size_t n = 0;
		if (run_trigger_parse(PQgetvalue(r, i, 1), &w.kind) < 0)
			continue; /* (no other kind is written) */
		json_t *a = PQgetisnull(r, i, 6) ? NULL : json_loads(PQgetvalue(r, i, 6), 0, NULL);
		if (json_is_array(a) && json_array_size(a) > 0 &&
		    (payloads = calloc(json_array_size(a), sizeof(*payloads)))) {
			for (size_t k = 0; k < json_array_size(a); k++) {
				const char *v = json_string_value(json_array_get(a, k));
				if (v && (payloads[n] = strdup(v)))
					n++;
			}
		}
		json_decref(a);
		w.payloads = payloads;
		w.n_payloads = n;
		if (!cluster_is_stopping(co->c)) {
			co->hooks.take_work(co->hooks.sched, &w);
		} else {
			/* taken by a statement sent before this stop began: the scheduler runs
			 * nothing more, so the row goes back to whom it was taken from, and the
			 * others take it when this stop's NOTIFY wakes them */
			const char *from = PQgetvalue(r, i, 7);
			log_info(
			    "cluster: pending %s work of job %s taken from instance \"%s\" goes "
			    "back to it: this instance is stopping (the others take it)",
			    run_trigger_names[w.kind], w.job, from);
			coord_note(co, &w, from);
		}
		text_free_list(payloads, n);
	}
}

static void take(struct coord *co, const char *instance, const char *boot_id)
{
	const char *p[] = {instance, boot_id};
	send_stmt(co, "cannot take over pending work", sql_take, 2, p, take_done);
}

static void stopped_done(void *arg, const PGresult *r, const char *err, const char *sqlstate)
{
	pass_answered(arg, WAKE_STOPPED);
	take_done(arg, r, err, sqlstate);
}

/* Some instance stopped cleanly (a wake-up: the payload names nothing we trust): what the
 * stopped instances left is ours to run. The scheduled fires' statement goes first (or once
 * this instance's jobs are all published, which it depends on), so the pass ends with the
 * answer about the pending work. */
static bool stopped(struct coord *co)
{
	if (cluster_is_stopping(co->c))
		return false; /* its work would be taken and dropped here */
	const char *p[] = {cluster_instance(co->c)};
	cluster_serve_stopped(co->c);
	return send_stmt(co, "cannot take over pending work", sql_take_stopped, 1, p, stopped_done);
}

/* ---- overlap across instances ---------------------------------------------------------- */

static void cancel_sent(void *arg, const PGresult *r, const char *err, const char *sqlstate)
{
	struct coord *co = arg;
	if (failed(co, "cannot ask another instance to cancel its run", err, sqlstate) || !r)
		return;
	for (int i = 0; i < PQntuples(r); i++)
		log_info("cluster: asked instance \"%s\" to cancel its run (overlap = replace)",
		         PQgetvalue(r, i, 0));
}

void coord_cancel_other(struct coord *co, const char *job)
{
	if (!co)
		return;
	const char *p[] = {job, cluster_instance(co->c)};
	send_stmt(co, "cannot ask another instance to cancel its run", sql_cancel, 2, p,
	          cancel_sent);
}

static void cancels_done(void *arg, const PGresult *r, const char *err, const char *sqlstate)
{
	struct coord *co = arg;
	pass_answered(co, WAKE_CANCELS);
	if (failed(co, "cannot read cancel requests", err, sqlstate) || !r)
		return;
	for (int i = 0; i < PQntuples(r); i++)
		if (strcmp(PQgetvalue(r, i, 2), "t") == 0)
			co->hooks.cancel(co->hooks.sched, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
}

/* ---- the paused set -------------------------------------------------------------------- */

static void paused_done(void *arg, const PGresult *r, const char *err, const char *sqlstate)
{
	struct coord *co = arg;
	pass_answered(co, WAKE_PAUSED);
	if (failed(co, "cannot read the paused jobs", err, sqlstate) || !r)
		return;
	size_t n = (size_t)PQntuples(r), extra = 0;
	for (struct change *ch = STAILQ_FIRST(&co->changes); ch; ch = STAILQ_NEXT(ch, link))
		extra++;
	const char **names = calloc(n + extra + 1, sizeof(*names));
	if (!names)
		return;
	for (size_t i = 0; i < n; i++)
		names[i] = PQgetvalue(r, (int)i, 0);
	/* a change of ours not yet in the table stays as this instance made it */
	for (struct change *ch = STAILQ_FIRST(&co->changes); ch; ch = STAILQ_NEXT(ch, link)) {
		size_t k = 0;
		while (k < n && strcmp(names[k], ch->job) != 0)
			k++;
		if (ch->pause && k == n)
			names[n++] = ch->job;
		else if (!ch->pause && k < n)
			names[k] = names[--n];
	}
	if (co->hooks.follow_paused(co->hooks.sched, names, n) && co->hooks.paused_changed)
		co->hooks.paused_changed(co->hooks.arg);
	free(names);
}

static void change_sent(void *arg, const PGresult *r, const char *err, const char *sqlstate)
{
	struct coord *co = arg;
	(void)r;
	/* the oldest change sent is the one answered (statements are answered in order) */
	struct change *ch = STAILQ_FIRST(&co->changes);
	while (ch && !ch->sent)
		ch = STAILQ_NEXT(ch, link);
	if (!ch)
		return;
	if (failed(co, "cannot share a pause or resume with the other instances", err, sqlstate)) {
		ch->sent = false; /* sent again at the next connect */
		return;
	}
	STAILQ_REMOVE(&co->changes, ch, change, link);
	free(ch->job);
	free(ch);
}

static void send_changes(struct coord *co)
{
	for (struct change *ch = STAILQ_FIRST(&co->changes); ch; ch = STAILQ_NEXT(ch, link)) {
		const char *p[] = {ch->job, cluster_instance(co->c), ch->pause ? "true" : "false"};
		if (!ch->sent)
			ch->sent = send_stmt(co, "cannot share a pause or resume", sql_pause, 3, p,
			                     change_sent);
	}
}

int coord_pause(struct coord *co, const char *job, bool pause)
{
	if (!co)
		return 0;
	struct change *ch = calloc(1, sizeof(*ch));
	if (!ch || !(ch->job = strdup(job))) {
		free(ch);
		return -ENOMEM;
	}
	ch->pause = pause;
	STAILQ_INSERT_TAIL(&co->changes, ch, link);
	send_changes(co);
	return ch->sent ? 0 : -ENOTCONN;
}

/* ---- the connection's events ----------------------------------------------------------- */

void coord_identity(struct coord *co)
{
	if (!co)
		return;
	for (struct change *ch = STAILQ_FIRST(&co->changes); ch; ch = STAILQ_NEXT(ch, link))
		ch->sent = false;
	/* what an earlier process of this instance left: ours to run */
	take(co, cluster_instance(co->c), cluster_boot_id(co->c));
	send_changes(co); /* the reads come once the LISTEN is in place (coord_notified) */
}

void coord_reaped(struct coord *co, const char *dead)
{
	/* a stopping instance takes nothing more (its scheduler would drop it): the dead one's
	 * row says stopped now, and the others take its work when this stop's NOTIFY wakes
	 * them */
	if (!co || cluster_is_stopping(co->c))
		return;
	take(co, dead, "");
	/* its session, and with it the locks of its runs, is gone: no end will be announced */
	co->hooks.ended(co->hooks.sched, NULL);
}

/* A run of a graph job started or succeeded here: a row for each other live instance (at
 * its boot), which reads and deletes its rows when the NOTIFY wakes it. Anyone may send the
 * NOTIFY; only pgcrond's roles may write the rows (sql/pgcrond--11.sql). */
static const char sql_graph[] =
    "WITH e AS (INSERT INTO pgcrond.graph_event"
    "  (recipient, recipient_boot, sender, job_name, started)"
    "  SELECT i.name, i.boot_id, $1, $2, $3::pg_catalog.bool FROM pgcrond.instance i"
    "   WHERE i.name OPERATOR(pg_catalog.<>) $1 AND i.stopped_at IS NULL RETURNING 1)"
    " SELECT pg_catalog.pg_notify('" CLUSTER_CHANNEL "', 'graph')"
    "  WHERE EXISTS (SELECT FROM e)";
/* This instance's graph events, oldest first; those addressed to an earlier process of it
 * (another boot) are dropped, and so are any a day old (their recipient never came back). */
static const char sql_graph_read[] =
    "WITH d AS (DELETE FROM pgcrond.graph_event WHERE recipient OPERATOR(pg_catalog.=) $1"
    "  RETURNING id, recipient_boot, job_name, started),"
    " old AS (DELETE FROM pgcrond.graph_event WHERE noted_at OPERATOR(pg_catalog.<)"
    "  (pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 day'))"
    " SELECT job_name, started FROM d WHERE recipient_boot OPERATOR(pg_catalog.=) $2"
    " ORDER BY id";

static void graph_sent(void *arg, const PGresult *res, const char *err, const char *sqlstate)
{
	(void)res;
	failed(arg, "cannot tell the other instances of a graph job's run", err, sqlstate);
}

void coord_graph(struct coord *co, const char *job, bool started)
{
	if (!co)
		return;
	const char *p[] = {cluster_instance(co->c), job, started ? "true" : "false"};
	send_stmt(co, "graph", sql_graph, 3, p, graph_sent);
}

static void graph_read(void *arg, const PGresult *r, const char *err, const char *sqlstate)
{
	struct coord *co = arg;
	pass_answered(co, WAKE_GRAPH);
	if (failed(co, "cannot read the other instances' graph runs", err, sqlstate) || !r)
		return;
	for (int i = 0; i < PQntuples(r); i++)
		co->hooks.graph(co->hooks.sched, PQgetvalue(r, i, 0),
		                PQgetvalue(r, i, 1)[0] == 't');
}

static bool pass_send(struct coord *co, enum wake_kind kind)
{
	const char *me[] = {cluster_instance(co->c), cluster_boot_id(co->c)};
	switch (kind) {
	case WAKE_GRAPH:
		return send_stmt(co, "cannot read the other instances' graph runs", sql_graph_read,
		                 2, me, graph_read);
	case WAKE_PAUSED:
		return send_stmt(co, "cannot read the paused jobs", sql_paused, 0, NULL,
		                 paused_done);
	case WAKE_CANCELS:
		return send_stmt(co, "cannot read cancel requests", sql_cancels, 1, me,
		                 cancels_done);
	case WAKE_STOPPED:
		return stopped(co);
	case WAKE_KINDS:
		break;
	}
	return false;
}

void coord_notified(struct coord *co, const char *payload)
{
	if (!co)
		return;
	/* wake-ups only: each reads the rows it is about, never takes a fact from PAYLOAD */
	if (!payload) {
		/* listening after a connect: every kind reads what came while this instance was
		 * away or not yet listening (the graph's pass also drops what was addressed to an
		 * earlier process; the stops' takes what stopped instances left, once, by its
		 * DELETE), and a run waiting for another instance's end looks again */
		for (int k = 0; k < WAKE_KINDS; k++)
			wake(co, (enum wake_kind)k);
		co->hooks.ended(co->hooks.sched, NULL);
	} else if (strcmp(payload, "graph") == 0)
		wake(co, WAKE_GRAPH);
	else if (strncmp(payload, "end ", 4) == 0)
		co->hooks.ended(co->hooks.sched, payload + 4); /* claims again: the row decides */
	else if (strcmp(payload, "stopped") == 0)
		wake(co, WAKE_STOPPED);
	else if (strcmp(payload, "pause") == 0)
		wake(co, WAKE_PAUSED);
	else if (strncmp(payload, "cancel ", 7) == 0 &&
	         strcmp(payload + 7, cluster_instance(co->c)) == 0)
		wake(co, WAKE_CANCELS);
}
