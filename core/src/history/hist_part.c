/* History partition maintenance (hist_part.h), a client of the history database's own session
 * (ownsess.h). A pass, one statement at a time:
 *  1. ENSURE: the partitions up to AHEAD_DAYS ahead (pgcrond.history_partitions_ensure);
 *  2. LIST: what the retention drops: the partitions whose day ended before now - retain, and
 *     the tables a crash left detached but not dropped;
 *  3. for each of them in turn: DETACH: ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY
 *     (SHARE UPDATE EXCLUSIVE on the parent, so inserts and updates go on), or ... FINALIZE
 *     for one whose detach was interrupted; then DROP: DROP TABLE on the detached table
 *     (which locks only that table).
 * Each statement is the retention's item of the session's outbox and waits for its turn with
 * the other clients' (the session takes them in turn), so the history's records and the
 * cluster's heartbeats go between the steps of a pass.
 *
 * Any reader of the history can hold a step up for as long as its transaction lasts: DETACH
 * waits for every transaction that still sees the partition, FINALIZE and DROP for the
 * partition's ACCESS EXCLUSIVE lock, the ensure's ATTACH for SHARE UPDATE EXCLUSIVE on the
 * parent. On this session that wait would hold up every statement behind it, so a step waits
 * for a lock HIST_PART_LOCK_TIMEOUT_MS at most; then (SQLSTATE 55P03) it gives way, the pass
 * ends, and the next one comes HIST_PART_WAIT_RETRY_MS later. A DETACH that gave way in its
 * second phase leaves the partition "detach pending": the next pass FINALIZEs it.
 *
 * DETACH CONCURRENTLY may not run in a transaction block, so its lock_timeout cannot be local
 * to a transaction: a DDL step sets it for the session and resets it after, each of the three
 * statements sent from the answer of the one before (a chain), so that no other client's
 * statement comes between them and none runs with the short lock_timeout. */
#include "hist_part.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ownsess.h"

#define AHEAD_DAYS "3"
#define DEF_INTERVAL_MS 600000

static const char sql_ensure[] =
    "SELECT pgcrond.history_partitions_ensure(" AHEAD_DAYS ") FROM " HIST_PART_SHORT_LOCKS;
/* Attached partitions past the retention, then tables a crash left detached; a pending
 * detach first: no other partition can be detached CONCURRENTLY until it is finalized. */
#define CUTOFF                                                                                     \
	" (pg_catalog.now() OPERATOR(pg_catalog.-)"                                                \
	"  ($1::pg_catalog.int8 OPERATOR(pg_catalog.*) interval '1 millisecond'))"
static const char sql_list[] =
    "SELECT schema_name, partition_name, detach_pending, true, est_rows"
    "  FROM pgcrond.history_partition_list() WHERE to_time OPERATOR(pg_catalog.<=)" CUTOFF
    " UNION ALL "
    "SELECT n.nspname, c.relname, false, false, greatest(c.reltuples, 0)::pg_catalog.int8"
    "  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
    "   ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
    " WHERE n.nspname OPERATOR(pg_catalog.=) 'pgcrond' AND c.relkind OPERATOR(pg_catalog.=) 'r'"
    "   AND NOT c.relispartition"
    "   AND c.relname OPERATOR(pg_catalog.~) '^job_run_details_p[0-9]{8}$'"
    "   AND ((pg_catalog.to_date(pg_catalog.substr(c.relname, 18), 'YYYYMMDD')"
    "    OPERATOR(pg_catalog.+) 1)::timestamp AT TIME ZONE 'UTC') OPERATOR(pg_catalog.<=)" CUTOFF
    " ORDER BY 3 DESC, 2";
static const char sql_set[] = "SET lock_timeout = " HIST_PART_LOCK_TIMEOUT_MS;
static const char sql_reset[] = "RESET lock_timeout";

/* A pass's statements. */
enum part_step { STEP_NONE, STEP_ENSURE, STEP_LIST, STEP_DETACH, STEP_DROP };
/* The statement in flight: a step's (ENSURE, LIST), or one of a DDL step's three. */
enum part_flight { PF_NONE, PF_STEP, PF_SET, PF_DDL, PF_RESET };

static const char *const step_what[] = {
    [STEP_NONE] = "",
    [STEP_ENSURE] = "creating partitions ahead",
    [STEP_LIST] = "listing expired partitions",
    [STEP_DETACH] = "detaching an expired partition",
    [STEP_DROP] = "dropping an expired partition",
};

/* A partition (or a detached table) the retention drops. */
struct expired {
	char *schema, *name;
	bool pending;  /* its detach was interrupted: FINALIZE */
	bool attached; /* false: detached already, only dropped */
	long long rows;
};

enum pass_end { PASS_DONE, PASS_GAVE_WAY, PASS_FAILED, PASS_LOST };

struct hist_part {
	struct ownsess_client sess; /* the history database's own session (ownsess.h) ... */
	struct stmtq *q;            /* ... and its statements */
	struct ownsess_item item;   /* the pass's statements: an item of that outbox */
	int64_t retain_ms, interval_ms;
	enum part_step step;     /* the pass's next statement (STEP_NONE: no pass under way) ... */
	enum part_flight flight; /* ... and the statement in flight */
	struct expired *drop;    /* LIST's answer; STEP_DETACH and STEP_DROP work on drop[at] */
	size_t n_drop, at;
	char *ddl; /* the DDL step's text, borrowed by the session until it is sent */
	struct hist_part_stats st;
	struct log_complaint wait_complaint;
};

#define PART_OF(it) ((struct hist_part *)((char *)(it)-offsetof(struct hist_part, item)))

static void step_done(struct hist_part *p, const struct stmtq_result *r);

static void free_list(struct hist_part *p)
{
	for (size_t i = 0; i < p->n_drop; i++) {
		free(p->drop[i].schema);
		free(p->drop[i].name);
	}
	free(p->drop);
	p->drop = NULL;
	p->n_drop = p->at = 0;
}

/* The pass is over: the next one after the interval, or sooner after giving way to a lock;
 * after a lost connection, at the reconnect (on_connected). */
static void end_pass(struct hist_part *p, enum pass_end how)
{
	free_list(p);
	free(p->ddl);
	p->ddl = NULL;
	p->step = STEP_NONE;
	switch (how) {
	case PASS_DONE:
		p->st.runs++;
		log_complaint_reset(&p->wait_complaint);
		break;
	case PASS_GAVE_WAY:
		p->st.waits++;
		break;
	case PASS_FAILED:
	case PASS_LOST:
		p->st.failures++;
		break;
	}
	if (how != PASS_LOST) /* (its send() starts the pass) */
		ownsess_queue_later(&p->sess, &p->item,
		                    how == PASS_GAVE_WAY ? HIST_PART_WAIT_RETRY_MS
		                                         : p->interval_ms);
}

/* "ALTER TABLE ... DETACH ... SCHEMA.NAME SUFFIX" or "DROP TABLE SCHEMA.NAME" with both names
 * quoted by libpq; NULL on error. */
static char *part_sql(PGconn *c, const char *head, const char *schema, const char *name,
                      const char *tail)
{
	char *s = PQescapeIdentifier(c, schema, strlen(schema));
	char *t = PQescapeIdentifier(c, name, strlen(name));
	char *out = NULL;

	if (s && t) {
		size_t len = strlen(head) + strlen(s) + strlen(t) + strlen(tail) + 4;
		out = malloc(len);
		if (out && snprintf(out, len, "%s %s.%s%s", head, s, t, tail) >= (int)len) {
			free(out);
			out = NULL;
		}
	}
	PQfreemem(s);
	PQfreemem(t);
	return out;
}

/* The SET before a DDL step: the DDL follows it at once (a chain: no other statement comes
 * between them), and must not run without its lock_timeout. */
static void set_done(struct hist_part *p, const struct stmtq_result *r)
{
	if (r->failed) { /* the step ends with the connection, given up now */
		stmtq_fail(p->q, r->err, 0);
		end_pass(p, PASS_LOST);
		return;
	}
	p->flight = PF_DDL; /* (false: lost() ended the pass) */
	(void)ownsess_push(&p->item, p->q->drv.check_ms, p->ddl, 0, NULL);
}

static bool push_ddl(struct hist_part *p)
{
	const struct expired *e = &p->drop[p->at];

	p->ddl =
	    p->step == STEP_DETACH
	        ? part_sql(stmtq_conn(p->q), "ALTER TABLE pgcrond.job_run_details DETACH PARTITION",
	                   e->schema, e->name, e->pending ? " FINALIZE" : " CONCURRENTLY")
	        : part_sql(stmtq_conn(p->q), "DROP TABLE", e->schema, e->name, "");
	if (!p->ddl) {
		log_error("history retention: out of memory");
		end_pass(p, PASS_FAILED);
		return false;
	}
	p->flight = PF_SET;
	(void)ownsess_push(&p->item, p->q->drv.check_ms, sql_set, 0, NULL);
	return true;
}

/* The item's send(): the pass's next statement (a new pass once its wait is over). */
static bool send_step(struct ownsess_item *it)
{
	struct hist_part *p = PART_OF(it);
	char retain[24];
	const char *params[] = {retain};

	if (p->step == STEP_NONE)
		p->step = STEP_ENSURE;
	switch (p->step) {
	case STEP_ENSURE:
	case STEP_LIST:
		snprintf(retain, sizeof(retain), "%" PRId64, p->retain_ms);
		p->flight = PF_STEP;
		(void)ownsess_push(it, p->q->drv.check_ms,
		                   p->step == STEP_ENSURE ? sql_ensure : sql_list,
		                   p->step == STEP_ENSURE ? 0 : 1, params);
		return true;
	case STEP_DETACH:
	case STEP_DROP:
		return push_ddl(p);
	case STEP_NONE:
		break;
	}
	return false;
}

/* The item's done(): the answer of the statement in flight. */
static void part_done(struct ownsess_item *it, const struct stmtq_result *r)
{
	struct hist_part *p = PART_OF(it);
	enum part_flight was = p->flight;

	p->flight = PF_NONE;
	switch (was) {
	case PF_SET:
		set_done(p, r);
		return;
	case PF_STEP:
	case PF_DDL:
		step_done(p, r);
		return;
	case PF_RESET: /* the session must not keep the short lock_timeout */
		if (r->failed)
			stmtq_fail(p->q, r->err, 0);
		return;
	case PF_NONE:
		return;
	}
}

/* The item's lost(): a pass cut short starts again at the reconnect (on_connected). */
static void part_lost(struct ownsess_item *it, const char *why)
{
	struct hist_part *p = PART_OF(it);
	(void)why;

	if (p->flight != PF_NONE && p->flight != PF_RESET)
		end_pass(p, PASS_LOST); /* the history says why */
	p->flight = PF_NONE;
}

/* LIST's answer into drop[]. False if out of memory. */
static bool take_list(struct hist_part *p, const PGresult *res)
{
	int n = res ? PQntuples(res) : 0;

	if (n == 0)
		return true;
	p->drop = calloc((size_t)n, sizeof(*p->drop));
	if (!p->drop)
		return false;
	p->n_drop = (size_t)n;
	for (int i = 0; i < n; i++) {
		struct expired *e = &p->drop[i];
		e->schema = strdup(PQgetvalue(res, i, 0));
		e->name = strdup(PQgetvalue(res, i, 1));
		e->pending = PQgetvalue(res, i, 2)[0] == 't';
		e->attached = PQgetvalue(res, i, 3)[0] == 't';
		e->rows = atoll(PQgetvalue(res, i, 4));
		if (!e->schema || !e->name)
			return false;
	}
	return true;
}

/* drop[at]'s first step, or the pass's end. */
static void next_expired(struct hist_part *p)
{
	if (p->at >= p->n_drop)
		end_pass(p, PASS_DONE);
	else
		p->step = p->drop[p->at].attached ? STEP_DETACH : STEP_DROP;
}

static void step_answered(struct hist_part *p, enum part_step step, const struct stmtq_result *r);

static void step_failed(struct hist_part *p, enum part_step step, const struct stmtq_result *r)
{
	if (strcmp(r->sqlstate, "55P03") == 0) {
		/* a lock another session holds, past HIST_PART_LOCK_TIMEOUT_MS */
		if (log_complain(&p->wait_complaint, NULL)) {
			if (step == STEP_DETACH || step == STEP_DROP)
				log_notice(
				    "history retention: partition %s.%s is in use (another "
				    "transaction, a report reading the history say, holds a lock "
				    "on it); dropping it waits, trying again every %d s",
				    p->drop[p->at].schema, p->drop[p->at].name,
				    HIST_PART_WAIT_RETRY_MS / 1000);
			else
				log_notice(
				    "history retention: %s waits for a lock another transaction "
				    "holds on the history; trying again every %d s",
				    step_what[step], HIST_PART_WAIT_RETRY_MS / 1000);
		}
		end_pass(p, PASS_GAVE_WAY);
		return;
	}
	log_warning("history retention: %s: %s", step_what[step], r->err);
	end_pass(p, PASS_FAILED);
}

/* A statement of the pass is complete; the next one goes at the item's next turn. */
static void step_done(struct hist_part *p, const struct stmtq_result *r)
{
	enum part_step step = p->step;

	free(p->ddl); /* sent: the session no longer reads it */
	p->ddl = NULL;
	/* the RESET follows a DDL step at once (a chain): the session must not keep the short
	 * lock_timeout */
	if (step == STEP_DETACH || step == STEP_DROP) {
		p->flight = PF_RESET;
		(void)ownsess_push(&p->item, p->q->drv.check_ms, sql_reset, 0, NULL);
	}
	if (r->failed)
		step_failed(p, step, r);
	else
		step_answered(p, step, r);
	if (p->step != STEP_NONE) /* the pass's next statement (after the RESET) */
		ownsess_queue(&p->sess, &p->item);
}

/* What the answer of STEP says. */
static void step_answered(struct hist_part *p, enum part_step step, const struct stmtq_result *r)
{
	switch (step) {
	case STEP_ENSURE: {
		long long made =
		    r->res && PQntuples(r->res) == 1 ? atoll(PQgetvalue(r->res, 0, 0)) : 0;
		if (made > 0)
			log_debug("history: created %lld partitions", made);
		if (p->retain_ms <= 0)
			end_pass(p, PASS_DONE);
		else
			p->step = STEP_LIST;
		return;
	}
	case STEP_LIST:
		if (!take_list(p, r->res)) {
			log_error("history retention: out of memory");
			end_pass(p, PASS_FAILED);
			return;
		}
		next_expired(p);
		return;
	case STEP_DETACH:
		p->step = STEP_DROP;
		return;
	case STEP_DROP: {
		const struct expired *e = &p->drop[p->at];
		log_info("history: dropped partition %s.%s (about %lld runs past the retention)",
		         e->schema, e->name, e->rows);
		p->st.dropped++;
		p->st.dropped_rows += e->rows > 0 ? (uint64_t)e->rows : 0;
		p->at++;
		next_expired(p);
		return;
	}
	case STEP_NONE:
		return;
	}
}

/* ---- the session's callbacks ------------------------------------------------------------ */

/* A pass at every connect: the first one at start, and one after an outage that may have cut
 * a pass short (every statement in flight was completed as lost before). */
static void on_connected(void *arg)
{
	struct hist_part *p = arg;

	free_list(p);
	free(p->ddl);
	p->ddl = NULL;
	p->step = STEP_ENSURE;
	ownsess_queue(&p->sess, &p->item);
}

static bool on_failed(void *arg, const char *why, bool was_ready)
{
	(void)arg;
	(void)why;
	(void)was_ready;
	return true;
}

static const struct ownsess_ops sess_ops = {
    .connected = on_connected,
    .failed = on_failed,
};

/* ---- public API ------------------------------------------------------------------------ */

int hist_part_start(struct event_base *base, const char *conninfo, int64_t retain_ms,
                    int64_t interval_ms, struct hist_part **out)
{
	struct hist_part *p = calloc(1, sizeof(*p));
	int rc;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->retain_ms = retain_ms;
	p->interval_ms = interval_ms > 0 ? interval_ms : DEF_INTERVAL_MS;
	p->item = (struct ownsess_item){.send = send_step, .done = part_done, .lost = part_lost};
	rc = ownsess_join(&p->sess, base, conninfo, &sess_ops, p);
	if (rc < 0) {
		free(p);
		return rc;
	}
	p->q = ownsess_q(&p->sess);
	*out = p;
	return 0;
}

void hist_part_set_interval(struct hist_part *p, int64_t interval_ms)
{
	if (p && interval_ms > 0)
		p->interval_ms = interval_ms;
}

void hist_part_get_stats(const struct hist_part *p, struct hist_part_stats *out)
{
	if (!p) {
		memset(out, 0, sizeof(*out));
		return;
	}
	*out = p->st;
}

void hist_part_stop(struct hist_part **pp)
{
	struct hist_part *p = *pp;

	if (!p)
		return;
	*pp = NULL;
	/* a SET whose DDL and RESET will not follow now: the session must not keep the short
	 * lock_timeout */
	if ((p->flight == PF_SET || p->flight == PF_DDL) && stmtq_ready(p->q))
		stmtq_fail(p->q, "the history retention stopped in the middle of a step", 0);
	ownsess_leave(&p->sess);
	free_list(p);
	free(p->ddl);
	free(p);
}
