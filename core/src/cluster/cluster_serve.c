/* Fires other processes claimed and never ran (cluster.h: cluster_serve_unserved,
 * cluster_serve_stopped, cluster_serve_leased): an earlier process of this instance's, a
 * stopped instance's, a silent one's past the claim's lease; and, once this process stops,
 * the claims such an answer took over going back to their holders (cluster_give_back). */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "cluster_priv.h"
#include "log.h"
#include "text.h"

/* The claims an earlier process of this instance (another boot) made of scheduled fires
 * that never became a run: it was killed between a claim and its run's start. Given back;
 * the passed ones are returned to be served here, unless a catch-up run of this process
 * serves them already (sched_input.c, served_here), whatever later fire of the job was
 * served since: another instance's row of one may still be in its history batch. */
static const char sql_unserved[] =
    "WITH unserved AS (" SQL_UNSERVED_DELETE
    "   WHERE c.instance OPERATOR(pg_catalog.=) $1 AND c.boot_id OPERATOR(pg_catalog.<>) $2"
    "   AND " SQL_UNSERVED_WHERE SQL_UNSERVED_STARTED_OWN
    " RETURNING c.job_name," SQL_UNSERVED_INSTANT " AS s)"
    " SELECT $1::pg_catalog.text, job_name, s OPERATOR(pg_catalog.*) 1000000 FROM unserved"
    " WHERE " SQL_UNSERVED_PASSED " ORDER BY s";

/* An answer that takes claims over (a lease's, or a stopped instance's) that comes once this
 * process stops: its scheduler takes over nothing more, so the claims go back to their
 * holders as they were ($1 jobs, $2 keys, $3 instances, $4 boot ids): a silent holder runs
 * them when it is back, or they are served once it is found dead; a stopped one's are served
 * by the others, whom this stop's NOTIFY wakes. */
static const char sql_give_back[] =
    "INSERT INTO pgcrond.fire_claim (job_name, fire_key, instance, boot_id, started)"
    " SELECT u.j, u.k, u.i, u.b, false"
    /* (a several-array unnest is syntax, not pg_catalog's function: ROWS FROM is the form
     * that names the schema) */
    " FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
    "  pg_catalog.unnest($2::pg_catalog.text[]), pg_catalog.unnest($3::pg_catalog.text[]),"
    "  pg_catalog.unnest($4::pg_catalog.text[])) AS u(j, k, i, b)"
    " ORDER BY u.j COLLATE pg_catalog.\"C\", u.k COLLATE pg_catalog.\"C\" ON CONFLICT DO NOTHING";

static const char give_back_failed[] =
    "could not give claims taken over back while stopping (those fires are served when their "
    "holder is found dead, or not at all)";

void cluster_give_back(struct cluster *c, const PGresult *r, const int cols[4])
{
	size_t rows = (size_t)PQntuples(r), n = 0;
	const char **v = calloc(4 * (rows ? rows : 1), sizeof(*v));
	char *lit[4] = {NULL, NULL, NULL, NULL};
	bool ok = v != NULL;
	for (size_t i = 0; ok && i < rows; i++) {
		if (PQgetisnull(r, (int)i, cols[1]))
			continue;
		for (int f = 0; f < 4; f++)
			v[f * rows + n] = PQgetvalue(r, (int)i, cols[f]);
		n++;
	}
	if (ok && n == 0) {
		free(v);
		return;
	}
	for (int f = 0; ok && f < 4; f++)
		ok = (lit[f] = text_pg_array(v + f * rows, n)) != NULL;
	/* the rows are by instance: several silent ones may be among them */
	log_notice("cluster: stopping: %zu claim(s) just taken over from other instance(s) go back "
	           "to their holders (the first: \"%s\")",
	           n, v ? v[2 * rows] : "?");
	const char *p[] = {lit[0], lit[1], lit[2], lit[3]};
	void *what = (void *)give_back_failed;
	if (!ok || cluster_submit_closing(c, sql_give_back, 4, p, cluster_warn_failed, what) < 0)
		cluster_warn_failed(what, NULL, ok ? "not connected" : "out of memory", "");
	for (int f = 0; f < 4; f++)
		free(lit[f]);
	free(v);
}

/* The claims of instances that stopped cleanly (the stop's NOTIFY only wakes us: which ones
 * stopped is read from their rows, written by pgcrond's roles only) that no run served. A
 * stop gives back its claims of instants still ahead (admit_give_back), but not
 * those within GIVE_BACK_MARGIN of their instant: the others may have asked for those
 * already and lost to the claim about to be given back. Those are served here, under the
 * job's catch-up policy, as a dead instance's are (a coming one is claimed by whoever fires
 * it). So are the claims a dead instance's reaper left to an instance that defines the job
 * as the dead one did (SQL_TAKER_DEFINES; the reap's NOTIFY says "stopped" too). */
static const char sql_unserved_stopped[] =
    "WITH unserved AS (" SQL_UNSERVED_DELETE " USING pgcrond.instance i"
    "   WHERE c.instance OPERATOR(pg_catalog.=) i.name AND i.stopped_at IS NOT NULL"
    "   AND i.name OPERATOR(pg_catalog.<>) $1 AND c.boot_id OPERATOR(pg_catalog.=) i.boot_id"
    /* instants of the stop's last minutes only (its grace period, 30 s by default): an
     * older claim no run took is a fire that did not come (paused, removed, rescheduled);
     * a dead instance's that its reaper left, within minutes of the reap */
    "   AND (pg_catalog.to_timestamp(" SQL_UNSERVED_INSTANT ") OPERATOR(pg_catalog.>)"
    "    (i.stopped_at OPERATOR(pg_catalog.-) interval '2 minutes')"
    "    OR (" SQL_FOUND_DEAD_I
    "     AND i.stopped_at OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-)"
    "      interval '2 minutes')))"
    "   AND " SQL_UNSERVED_WHERE SQL_UNSERVED_STARTED SQL_TAKER_DEFINES
    " RETURNING i.name, c.job_name," SQL_UNSERVED_INSTANT " AS s,"
    " " SQL_FOUND_DEAD_I " AS died,"
    "  c.fire_key, c.boot_id)"
    " SELECT name, job_name, s OPERATOR(pg_catalog.*) 1000000, died, fire_key, boot_id"
    " FROM unserved WHERE " SQL_UNSERVED_PASSED " ORDER BY s";

/* The claims of live instances that went silent (the claim's lease, docs/faults.md): a
 * scheduled fire whose instant is past by more than its holder's heartbeat period and a
 * margin (its own cluster_dead_after's quarter, at most CLUSTER_HEARTBEAT_MS; the margin half
 * that, at least 1 s), whose run the holder has not marked (its claim not started, no start
 * mark, no history row), and whose holder has not beaten since the instant: frozen (SIGSTOP,
 * a paused VM), cut off, or its loop stalled. A live holder beats every period, so one that
 * merely runs late (a queued run, a busy pool) keeps its claims. Fenced as a dead instance's
 * claims are: the holder's mark is written only while the claim is still its own (the row
 * lock orders the two), so the holder, back, sends nothing for a fire taken here. Only jobs
 * this instance defines as the holder does ($1's rows in pgcrond.instance_job, with the
 * holder's hash): another one would drop them, and one defined otherwise (a rolling config
 * change; disabled here) would be served by a definition the holder did not claim by. By the
 * database's clock only. */
/* a scheduled fire's instant, NULL for any other key (the cast never sees one: the order in
 * which a WHERE's conditions are evaluated is the planner's) */
#define SQL_LEASE_INSTANT                                                                          \
	" pg_catalog.to_timestamp(CASE WHEN c.fire_key OPERATOR(pg_catalog.~) '^s:[0-9]{1,12}$'"   \
	" THEN" SQL_UNSERVED_INSTANT " END)"
static const char sql_leased[] =
    "WITH unserved AS (" SQL_UNSERVED_DELETE "  USING pgcrond.instance i"
    "   WHERE c.instance OPERATOR(pg_catalog.=) i.name AND i.stopped_at IS NULL"
    "   AND i.name OPERATOR(pg_catalog.<>) $1 AND c.boot_id OPERATOR(pg_catalog.=) i.boot_id"
    "   AND c.claimed_at OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-)"
    "    interval '2 minutes')"
    "   AND i.last_seen OPERATOR(pg_catalog.<) " SQL_LEASE_INSTANT "   AND " SQL_LEASE_INSTANT
    " OPERATOR(pg_catalog.<)"
    "    (pg_catalog.now() OPERATOR(pg_catalog.-) (" SQL_LEASE_MS(
        "i") "::pg_catalog.float8"
             "     OPERATOR(pg_catalog.*) interval '1 millisecond'))"
             "   AND EXISTS (SELECT FROM pgcrond.instance_job ij"
             "    JOIN pgcrond.instance_job hj"
             "     ON hj.job_name OPERATOR(pg_catalog.=) ij.job_name"
             "     AND hj.def_hash OPERATOR(pg_catalog.=) ij.def_hash"
             "    WHERE ij.instance OPERATOR(pg_catalog.=) $1"
             "     AND hj.instance OPERATOR(pg_catalog.=) c.instance"
             "     AND ij.job_name OPERATOR(pg_catalog.=) c.job_name)"
             "   AND " SQL_UNSERVED_WHERE SQL_UNSERVED_STARTED
             " RETURNING i.name, c.job_name," SQL_UNSERVED_INSTANT " AS s,"
             "  pg_catalog.to_char(i.last_seen AT TIME ZONE 'UTC',"
             "   'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS seen, c.boot_id, c.fire_key)"
             " SELECT name, job_name, s OPERATOR(pg_catalog.*) 1000000, seen, fire_key, boot_id"
             " FROM unserved"
             " ORDER BY name, s";

/* Whose fires an answer serves: an earlier process of this instance's (sql_unserved), a
 * stopped or dead instance's (sql_unserved_stopped), a silent one's (sql_leased). Each row:
 * the holder, the job, the instant (Unix us), died or last seen, and (but the first kind's)
 * the claim's key and boot id. */
enum serve_kind { SERVE_OWN, SERVE_STOPPED, SERVE_SILENT };

static void serve(struct cluster *c, enum serve_kind k, const PGresult *r, const char *err,
                  const char *sqlstate)
{
	static const char *const what[] = {
	    "an earlier process of this instance claimed and never ran",
	    "a stopped instance claimed and never ran",
	    "a silent instance claimed and did not start"};
	if (err && *err) {
		if (k != SERVE_SILENT || log_complain(&c->lease_complaint, err))
			log_warning("cluster: cannot look for fires %s: %s", what[k], err);
		return;
	}
	if (k == SERVE_SILENT)
		log_complaint_reset(&c->lease_complaint);
	int n = r ? PQntuples(r) : 0;
	if (n == 0 && k == SERVE_OWN)
		log_debug("cluster: no fire %s is left unserved", what[k]);
	if (n > 0 && c->stopping && k != SERVE_OWN) {
		const int cols[4] = {1, 4, 0, 5}; /* job, key, instance, boot id */
		cluster_give_back(c, r, cols);
		return;
	}
	for (int i = 0; i < n; i++) {
		const char *name = PQgetvalue(r, i, 0);
		bool died = k == SERVE_STOPPED && strcmp(PQgetvalue(r, i, 3), "t") == 0;
		if (i == 0 && k == SERVE_OWN)
			log_warning(
			    "cluster: an earlier process of this instance claimed %d scheduled "
			    "fire(s) and was stopped before running them: serving them here",
			    n);
		else if (i == 0 && k == SERVE_STOPPED)
			log_warning(
			    "cluster: instance \"%s\" %s with %d scheduled fire(s) claimed at "
			    "their instant and not run: serving them here",
			    name, died ? "died" : "stopped", n);
		else if (k == SERVE_SILENT &&
		         (i == 0 || strcmp(name, PQgetvalue(r, i - 1, 0)) != 0))
			log_warning(
			    "cluster: instance \"%s\" has not started scheduled fire(s) it "
			    "claimed, nor sent a heartbeat since their instant (last seen %s: "
			    "frozen, cut off or stalled): serving them here",
			    name, PQgetvalue(r, i, 3));
		struct cluster_orphan o = {
		    .job_name = PQgetvalue(r, i, 1),
		    .dead = name,
		    .scheduled_us = atoll(PQgetvalue(r, i, 2)),
		    .unserved = true,
		    .stopped = k == SERVE_STOPPED,
		    .died = died,
		    .silent = k == SERVE_SILENT,
		};
		if (c->hooks.orphan)
			c->hooks.orphan(c->hooks.sched, &o);
	}
}

static void stopped_done(void *arg, const struct pg_result *res, const char *err,
                         const char *sqlstate)
{
	serve(arg, SERVE_STOPPED, (const PGresult *)res, err, sqlstate);
}

static void leased_done(void *arg, const struct pg_result *res, const char *err,
                        const char *sqlstate)
{
	serve(arg, SERVE_SILENT, (const PGresult *)res, err, sqlstate);
}

void cluster_serve_leased(struct cluster *c)
{
	if (!c || c->stopping || c->st.peers_live == 0 || c->skewed || c->state == CS_REFUSED)
		return;
	const char *p[] = {c->instance};
	if (cluster_submit(c, sql_leased, 1, p, leased_done, c) < 0)
		log_debug(
		    "cluster: not connected: a silent instance's claims are looked for at the "
		    "next heartbeat");
}

void cluster_stopping(struct cluster *c)
{
	if (c) {
		c->stopping = true;
		cluster_lone_tell(c);
	}
}

bool cluster_is_stopping(const struct cluster *c)
{
	return c && c->stopping;
}

void cluster_serve_stopped(struct cluster *c)
{
	if (!c || c->stopping)
		return;
	if (cluster_jobs_unpublished(c))
		return; /* the end of the publishing looks (jobs_done) */
	const char *p[] = {c->instance};
	if (cluster_submit(c, sql_unserved_stopped, 1, p, stopped_done, c) < 0)
		log_info("cluster: not connected: the fires a stopped instance left are looked for "
		         "at the next stop's notification");
}

void cluster_serve_unserved(struct cluster *c)
{
	if (c)
		log_debug("cluster: the history holds an earlier process's records; claims it "
		          "left unserved %s",
		          c->unserved_asked ? "were asked for already" : "are looked for");
	if (!c || c->unserved_asked)
		return;
	c->unserved_asked = true;
	cluster_due_at(c, OP_UNSERVED, 0);
	cluster_kick(c);
}

static void unserved_done(struct cluster *c, const struct stmtq_result *sr)
{
	serve(c, SERVE_OWN, sr->res, sr->failed ? sr->err : NULL, sr->sqlstate);
}

const struct cluster_row cluster_row_unserved = {
    .op = OP_UNSERVED, .flags = ROW_AGAIN, .sql = sql_unserved, .n = 2, .done = unserved_done};
