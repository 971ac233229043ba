/* The instance lock, the heartbeat and reaping (cluster.h): the statements that take this
 * instance's name, find who holds it, beat, and hand the work of instances that stopped
 * beating to the hooks, and their answers. The connection that carries them is
 * cluster_conn.c's. */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "cluster.h"
#include "cluster_priv.h"
#include "job_kind.h"
#include "log.h"
#include "pgconn.h"

/* SQL: the note of this process's row ($1, $2) when another instance found it dead (sql_reap;
 * told_dead), read before the statement writes the row. */
#define SQL_TOLD_DEAD                                                                              \
	" (SELECT pg_catalog.format('%s at %s', w.stop_note, pg_catalog.to_char(w.stopped_at"      \
	"    AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))"                               \
	"   FROM pgcrond.instance w WHERE w.name OPERATOR(pg_catalog.=) $1"                        \
	"    AND w.boot_id OPERATOR(pg_catalog.=) $2 AND w.stopped_at IS NOT NULL"                 \
	"    AND" SQL_FOUND_DEAD_W "),"

/* SQL: what the lock (sql_lock) and the heartbeat (sql_beat) write into this process's row of
 * pgcrond.instance (alias i) when it is there already. */
#define SQL_INSTANCE_UPSERT                                                                        \
	"  ON CONFLICT (name) DO UPDATE SET last_seen = pg_catalog.now(), stopped_at = NULL,"      \
	"   stop_note = NULL, dead_after_ms = EXCLUDED.dead_after_ms,"                             \
	"   started_at = CASE WHEN i.boot_id OPERATOR(pg_catalog.=) EXCLUDED.boot_id"              \
	"    THEN i.started_at ELSE pg_catalog.now() END,"                                         \
	"   boot_id = EXCLUDED.boot_id, host = EXCLUDED.host, pid = EXCLUDED.pid,"                 \
	"   version = EXCLUDED.version"

static const char sql_holder[] =
    "SELECT coalesce(host, '?'), coalesce(pid, 0), boot_id,"
    " (EXTRACT(epoch FROM last_seen) OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8,"
    " pg_catalog.to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    " FROM pgcrond.instance WHERE name OPERATOR(pg_catalog.=) $1";

/* The instance's name (docs/security.md "Locks and notifications"): its row in
 * pgcrond.instance records the session that holds it (backend pid and start, as
 * pg_stat_activity shows them), and an instance is live while that session exists. The name
 * is ours when the row is our own process's (boot id $2: an earlier session of this process
 * whose connection went silent is ended first, waiting up to 5 s for it to go), when the
 * session it records is gone, or when there is no row. No advisory lock: any role may take
 * or queue for one, and a role holding the name's stopped every fire. Answers (false, true)
 * when the name is ours, (false, false) when another live session holds it; on a standby the
 * INSERT fails (25006). */
static const char sql_lock[] =
    "WITH me AS (SELECT a.backend_start FROM pg_catalog.pg_stat_activity a"
    "  WHERE a.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()),"
    " old AS (SELECT pg_catalog.count(pg_catalog.pg_terminate_backend(a.pid, 5000)) AS n"
    "  FROM pgcrond.instance i JOIN pg_catalog.pg_stat_activity a"
    "   ON a.pid OPERATOR(pg_catalog.=) i.backend_pid"
    "   AND a.backend_start OPERATOR(pg_catalog.=) i.backend_start"
    "  WHERE i.name OPERATOR(pg_catalog.=) $1 AND i.boot_id OPERATOR(pg_catalog.=) $2"
    "   AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()),"
    " ins AS (INSERT INTO pgcrond.instance AS i"
    "   (name, boot_id, host, pid, version, backend_pid, backend_start, dead_after_ms)"
    "  SELECT $1, $2, $3, $4::pg_catalog.int4, $5, pg_catalog.pg_backend_pid(), me.backend_start,"
    "   $6::pg_catalog.int4"
    "   FROM me" SQL_INSTANCE_UPSERT ", backend_pid = EXCLUDED.backend_pid,"
    "   backend_start = EXCLUDED.backend_start"
    "  WHERE i.boot_id OPERATOR(pg_catalog.=) EXCLUDED.boot_id OR i.backend_pid IS NULL"
    "   OR NOT EXISTS (SELECT FROM pg_catalog.pg_stat_activity a"
    "    WHERE a.pid OPERATOR(pg_catalog.=) i.backend_pid"
    "     AND (a.backend_start IS NULL"
    "      OR a.backend_start OPERATOR(pg_catalog.=) i.backend_start))"
    "  RETURNING 1)"
    /* once the name is ours, and before this process claims anything: the backends of the
     * runs an earlier process of it left busy in their statements (killed, they would commit
     * when their statements end) are ended, as a reap fences a dead instance's (cluster_lock.c)
     * and as the history does for rows its spill file still held (hist_startup.c) */
    " , fence AS (SELECT pg_catalog.count(*) FILTER (WHERE f.gone) AS n FROM ("
    "   SELECT " END_BACKEND_A " AS gone"
    "   FROM pgcrond.job_run_details d JOIN pg_catalog.pg_stat_activity a ON " RUN_BACKEND_D_A
    "   WHERE d.instance OPERATOR(pg_catalog.=) $1"
    "    AND (d.boot_id OPERATOR(pg_catalog.=) $2) IS NOT TRUE"
    "    AND d.status OPERATOR(pg_catalog.=) ANY (ARRAY['starting', 'running'])"
    "    AND EXISTS (SELECT FROM ins)) f)"
    " SELECT false, (SELECT pg_catalog.count(*) FROM ins) OPERATOR(pg_catalog.>) 0,"
    "  (SELECT n FROM old)," SQL_TOLD_DEAD " (SELECT n FROM fence)";

/* The heartbeat, and who else is live: seen within 30 s, or within its own
 * cluster_dead_after and 10 s if longer. */
#define SQL_LIVE_OTHER                                                                             \
	" name OPERATOR(pg_catalog.<>) $1 AND stopped_at IS NULL"                                  \
	" AND last_seen OPERATOR(pg_catalog.>)"                                                    \
	" (pg_catalog.now() OPERATOR(pg_catalog.-) greatest(interval '30 seconds',"                \
	"  (coalesce(dead_after_ms, 20000) OPERATOR(pg_catalog.+) 10000)"                          \
	"  OPERATOR(pg_catalog.*) interval '1 millisecond'))"
static const char sql_beat[] =
    "WITH hb AS (INSERT INTO pgcrond.instance AS i (name, boot_id, host, pid, version,"
    "   dead_after_ms)"
    "  VALUES ($1, $2, $3, $4::pg_catalog.int4, $5, $6::pg_catalog.int4)" SQL_INSTANCE_UPSERT
    "  RETURNING 1)"
    " SELECT (SELECT pg_catalog.count(*) FROM hb),"
    "  (SELECT pg_catalog.count(*) FROM pgcrond.instance WHERE" SQL_LIVE_OTHER "),"
    "  (SELECT pg_catalog.string_agg(name, ', ' ORDER BY name) FROM pgcrond.instance"
    "   WHERE" SQL_LIVE_OTHER "),"
    /* the database's clock, for this host's offset from it (cluster_clock_offset) */
    "  (pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) OPERATOR(pg_catalog.*)"
    "   1000000)::pg_catalog.int8," SQL_TOLD_DEAD
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

/* The parameters of sql_lock and sql_beat: $1 name, $2 boot id, $3 host, $4 pid, $5 version,
 * $6 dead_after_ms. */
static bool send_mine(struct cluster *c, enum op op, const char *sql)
{
	char pid[24];
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	char dead[24];
	snprintf(dead, sizeof(dead), "%" PRId64, c->dead_after_ms);
	const char *p[] = {c->instance, c->boot_id, c->host, pid, PGCROND_VERSION, dead};
	return cluster_send_stmt(c, op, sql, 6, p);
}

static bool lock_send(struct cluster *c)
{
	/* a refused instance is stopping: its name is not asked for again */
	return c->state != CS_REFUSED && send_mine(c, OP_LOCK, sql_lock);
}

static bool beat_send(struct cluster *c)
{
	c->beat_wall_us = clock_wall_us();
	c->beat_mono_us = clock_mono_us();
	send_mine(c, OP_BEAT, sql_beat);
	return true;
}

/* The lock or the heartbeat found that another instance declared this process dead
 * (sql_reap; NOTE: "found dead by instance X at T"): it was stopped, frozen or cut off
 * for longer than its cluster_dead_after. Its rows say so: the runs it had in flight were closed
 * by X (and retried there), and their late ends here leave X's verdict (history.c). Its runs
 * still waiting to send their statements send nothing: X served their fires, or closed their
 * rows and retried them. */
static bool told_dead(struct cluster *c, const PGresult *r, int col)
{
	const char *note = cluster_res_val(r, 0, col);
	if (!note)
		return false;
	log_warning("cluster: this instance (\"%s\") was %s: no heartbeat of it for %d s "
	            "(the process stopped, its host frozen or cut off); the runs it had in "
	            "flight were closed there and retried by their retry policy, and their "
	            "ends here are not recorded over that verdict",
	            c->instance, note, (int)(c->dead_after_ms / 1000));
	cluster_marks_refuse(c);
	return true;
}

static void lock_done(struct cluster *c, const struct stmtq_result *sr)
{
	const PGresult *r = sr->res;
	if ((sr->failed && strcmp(sr->sqlstate, "25006") != 0) ||
	    (!sr->failed && (!r || PQntuples(r) != 1))) {
		/* the session stays (it is the history's and the listeners' too): the claims are
		 * answered as while the database cannot be reached, and the name is asked for
		 * again on the cluster's own timer */
		if (log_complain(&c->down_complaint, sr->failed ? sr->err : NULL))
			log_warning("cluster: cannot take instance name \"%s\" on history database "
			            "%s: %s; trying again every %d s",
			            c->instance, c->safe_conninfo,
			            sr->failed ? sr->err : "no answer to the lock query",
			            CLUSTER_RECOVERY_RETRY_MS / 1000);
		/* (a standby stays one: its claims are answered so) */
		cluster_to(c, c->state == CS_RECOVERY ? CS_RECOVERY : CS_LOCK_FAILED);
		cluster_answer_overdue(c);
		cluster_due_at(c, OP_LOCK, clock_mono_ms() + CLUSTER_RECOVERY_RETRY_MS);
		return;
	}
	if (sr->failed) { /* read-only: a standby */
		if (log_complain(&c->recovery_complaint, NULL))
			log_warning(
			    "cluster: history database %s is in recovery (a hot standby): no "
			    "run starts and no history is written until it is promoted or the "
			    "conninfo reaches a primary (target_session_attrs=read-write); "
			    "checking every %d s",
			    c->safe_conninfo, CLUSTER_RECOVERY_RETRY_MS / 1000);
		cluster_to(c, CS_RECOVERY);
		stmtq_fail(c->q, "in recovery", CLUSTER_RECOVERY_RETRY_MS);
		return;
	}
	if (strcmp(PQgetvalue(r, 0, 1), "t") != 0) {
		/* held by another session: a failed lock stays failed (its claims answered so)
		 * until the name is ours */
		if (c->state != CS_LOCK_FAILED)
			cluster_to(c, CS_UNLOCKED);
		const char *p[] = {c->instance};
		cluster_send_stmt(c, OP_HOLDER, sql_holder, 1, p);
		return;
	}
	told_dead(c, r, 3);
	long long fenced = atoll(PQgetvalue(r, 0, 4));
	if (fenced > 0)
		log_notice("cluster: ended %lld backend(s) of runs an earlier process of instance "
		           "\"%s\" left busy in their statements, before this one claims anything "
		           "(their transactions rolled back; the history closes those runs as "
		           "failed)",
		           fenced, c->instance);
	cluster_to(c, CS_LOCKED);
	c->holder_looked = false;
	cluster_lone_locked(c);
	if (log_complaint_reset(&c->down_complaint))
		log_notice("cluster: history database %s is reachable again", c->safe_conninfo);
	else
		log_debug("cluster: instance \"%s\" holds its name on %s", c->instance,
		          c->safe_conninfo);
	int64_t now = clock_mono_ms();
	cluster_due_at(c, OP_BEAT, now);
	cluster_due_at(c, OP_REAP, now);
	cluster_due_at(c, OP_JOBS, now);
	c->jobs_next = 0;
	if (c->hooks.notified)
		cluster_due_at(c, OP_LISTEN, now);
	/* peers reconnect within their backoff's longest wait, then beat: a short
	 * cluster_dead_after does not shorten that */
	if (c->ever_locked)
		c->reap_after_ms =
		    clock_mono_ms() +
		    (c->dead_after_ms > CLUSTER_DEAD_MS ? c->dead_after_ms : CLUSTER_DEAD_MS);
	c->ever_locked = true;
	if (c->hooks.identity)
		c->hooks.identity(c->hooks.arg);
}

/* The name's lock is held by another session: a live instance of the same name (refuse) or
 * the session of a process that died where the server has not noticed yet (wait). */
static void holder_done(struct cluster *c, const struct stmtq_result *sr)
{
	const PGresult *r = sr->res;
	bool have = !sr->failed && r && PQntuples(r) == 1;
	int64_t seen = have ? atoll(PQgetvalue(r, 0, 3)) : 0;
	if (!c->holder_looked) {
		c->holder_looked = true;
		c->holder_seen_us = seen;
		log_notice("cluster: instance name \"%s\" is held by another live session; "
		           "checking in %d s whether that instance is alive",
		           c->instance, LOCK_RECHECK_MS / 1000);
		cluster_due_at(c, OP_LOCK, clock_mono_ms() + LOCK_RECHECK_MS);
		return;
	}
	if (!have || seen != c->holder_seen_us) {
		char msg[1536], who[512] = ""; /* a host name is up to 255 bytes */
		if (have)
			snprintf(who, sizeof(who), " (host %s, pid %s, last heartbeat %s)",
			         PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 4));
		snprintf(msg, sizeof(msg),
		         "another pgcrond is running as instance \"%s\"%s against history database "
		         "%s%s; give this one its own name with instance = \"...\" in pgcrond.conf "
		         "(and its own state_dir), or stop the other",
		         c->instance, who, c->safe_conninfo,
		         have ? "" : " (it holds the instance's lock)");
		cluster_to(c, CS_REFUSED);
		cluster_answer_overdue(c);
		if (c->hooks.refused)
			c->hooks.refused(c->hooks.arg, msg);
		return;
	}
	if (log_complain(&c->lock_complaint, NULL))
		log_warning("cluster: instance name \"%s\" is still held by a session but its "
		            "heartbeat stopped at %s: a dead process whose session the server has "
		            "not dropped yet; waiting for it",
		            c->instance, PQgetvalue(r, 0, 4));
	cluster_due_at(c, OP_LOCK, clock_mono_ms() + CLUSTER_RECOVERY_RETRY_MS);
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

static void beat_done(struct cluster *c, const struct stmtq_result *sr)
{
	const PGresult *r = sr->res;
	c->lone.known = true; /* (a failed one too: not lone, as before it) */
	if (sr->failed) {
		log_warning("cluster: heartbeat failed: %s", sr->err);
		return;
	}
	if (!r || PQntuples(r) != 1)
		return;
	size_t n = (size_t)atoll(PQgetvalue(r, 0, 1));
	const char *names = cluster_res_val(r, 0, 2);
	if (n != c->st.peers_live || strcmp(names ? names : "", c->peers) != 0) {
		if (n)
			log_info("cluster: instance \"%s\"; other live instances: %s", c->instance,
			         names ? names : "");
		else if (c->st.peers_live)
			log_info("cluster: instance \"%s\" is the only live instance", c->instance);
	}
	bool dead = told_dead(c, r, 4);
	c->st.peers_live = n;
	c->marking = c->marking || n > 0;
	snprintf(c->peers, sizeof(c->peers), "%s", names ? names : "");
	if (cluster_res_val(r, 0, 3)) {
		int64_t off_us = 0, rtt_us = clock_mono_us() - c->beat_mono_us;
		bool skewed = cluster_clock_offset(c->beat_wall_us, rtt_us,
		                                   atoll(PQgetvalue(r, 0, 3)), &off_us);
		c->st.clock_offset_ms = off_us / 1000;
		c->st.clock_offset_known = true;
		if (skewed && !c->skewed)
			log_error("cluster: this host's clock is %+" PRId64 " ms off the history "
			          "database's (round trip %" PRId64
			          " ms; at most %d ms allowed): this "
			          "instance claims no fire until it is in step (check NTP)",
			          c->st.clock_offset_ms, rtt_us / 1000, CLUSTER_MAX_OFFSET_MS);
		else if (!skewed && c->skewed)
			log_notice("cluster: this host's clock is in step with the history "
			           "database's again (%+" PRId64 " ms): claims resume",
			           c->st.clock_offset_ms);
		c->skewed = skewed;
		if (skewed) {
			c->offset.known =
			    false; /* what it kept was of the clocks before the step */
		} else {
			int64_t use = cluster_offset_filter(&c->offset, off_us, rtt_us);
			c->st.clock_offset_ms = use / 1000; /* status shows the offset fired by */
			if (c->hooks.clock_offset)
				c->hooks.clock_offset(c->hooks.sched, use);
		}
	}
	cluster_lone_beat(c, dead, atoll(PQgetvalue(r, 0, 6)) > 0);
	if (atoll(PQgetvalue(r, 0, 5)) > 0)
		cluster_serve_leased(c);
}

/* Whether a dead instance's run D committed, in the statement below: pgcrond.run_start
 * holds its transaction, which the server still knows (cluster_xact.c); asked after the fence
 * ended its backend (only rows whose backend went are closed), so the answer is final. */
#define REAP_COMMITTED                                                                             \
	"(SELECT pgcrond.xact_committed(x.xid, x.server) FROM pgcrond.run_start x"                 \
	" WHERE x.instance OPERATOR(pg_catalog.=) d.instance"                                      \
	"  AND x.run_key OPERATOR(pg_catalog.=) d.run_key) IS TRUE"

/* Dead instances: not stopped, and either the session their row records is gone (the
 * process is gone and the server knows it) or their heartbeat stopped (a host or network
 * gone, whose session the server has not dropped yet). The UPDATE of their instance row is
 * what makes one survivor alone close their runs: a second one finds stopped_at set. Their
 * job locks (pgcrond.job_lock) go with them. A row without a recorded session is judged by
 * its heartbeat alone. */
static const char sql_reap[] =
    "WITH dead AS ("
    "  UPDATE pgcrond.instance i SET stopped_at = pg_catalog.now(),"
    "         stop_note = '" SQL_FOUND_DEAD_PREFIX "instance ' OPERATOR(pg_catalog.||) $1"
    "   WHERE i.name OPERATOR(pg_catalog.<>) $1 AND i.stopped_at IS NULL"
    /* judged by its own cluster_dead_after (its heartbeat's period goes with it), or the
     * default for a row an older pgcrond wrote (COALESCE is syntax, not a function) */
    "     AND (i.last_seen OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-)"
    "          (COALESCE(i.dead_after_ms, $2::pg_catalog.int4)::pg_catalog.float8"
    "           OPERATOR(pg_catalog.*) interval '1 millisecond'))"
    "      OR (i.backend_pid IS NOT NULL AND NOT EXISTS (SELECT"
    "          FROM pg_catalog.pg_stat_activity a"
    "          WHERE a.pid OPERATOR(pg_catalog.=) i.backend_pid"
    "            AND (a.backend_start IS NULL"
    "             OR a.backend_start OPERATOR(pg_catalog.=) i.backend_start))))"
    "  RETURNING i.name, i.last_seen, i.boot_id, i.backend_pid, i.backend_start),"
    /* the fence: the backends of its runs (by pid, the run's application name and a start
     * before the run's, so a reused pid is never hit) are ended, waiting up to 3 s each
     * for them to go, so that a run's transaction cannot commit after its retry starts; one
     * this role may not end counts as not gone (END_BACKEND_A) */
    " fence_runs AS ("
    "   SELECT d.instance, d.run_key, a.pid"
    "   FROM pgcrond.job_run_details d JOIN dead ON d.instance OPERATOR(pg_catalog.=) dead.name"
    "   JOIN pg_catalog.pg_stat_activity a ON " RUN_BACKEND_D_A
    "  WHERE d.status OPERATOR(pg_catalog.=) ANY (ARRAY['starting', 'running'])"
    /* ... and the backends whose transaction is one of its runs' (an id
     * is never two running transactions' at once), also before the run's pid is in the history.
     * Each backend is ended once, whatever number of rows found it: a second
     * pg_terminate_backend() of one gone says false, and left its run open */
    "  UNION SELECT x.instance, x.run_key, a.pid"
    "   FROM pgcrond.run_start x JOIN dead ON x.instance OPERATOR(pg_catalog.=) dead.name"
    "   JOIN pg_catalog.pg_stat_activity a ON a.backend_xid IS NOT NULL"
    "    AND a.backend_xid::pg_catalog.text::pg_catalog.int8 OPERATOR(pg_catalog.=)"
    "     (x.xid OPERATOR(pg_catalog.%) 4294967296)"
    "  WHERE x.xid OPERATOR(pg_catalog.>) 0 AND x.server OPERATOR(pg_catalog.=)"
    "   " PGCONN_SQL_SERVER_ID "  ),"
    " fence_pids AS (SELECT a.pid, " END_BACKEND_A " AS gone"
    "  FROM (SELECT DISTINCT pid FROM fence_runs) p"
    "  JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) p.pid),"
    " fence AS (SELECT r.instance, r.run_key, p.gone FROM fence_runs r"
    "  JOIN fence_pids p ON p.pid OPERATOR(pg_catalog.=) r.pid),"
    " closed AS ("
    "  UPDATE pgcrond.job_run_details d"
    "     SET status = CASE WHEN " REAP_COMMITTED
    " THEN 'succeeded' ELSE 'failed' END, end_time = pg_catalog.now(),"
    "         duration_ms = pg_catalog.date_part('epoch', pg_catalog.now()"
    "           OPERATOR(pg_catalog.-) d.start_time) OPERATOR(pg_catalog.*) 1000,"
    "         return_message = pg_catalog.format(CASE WHEN " REAP_COMMITTED
    " THEN 'committed; instance %s died (last seen %s) before it recorded the end; run"
    " closed by instance %s' ELSE 'instance %s died (last seen %s); run closed by instance"
    " %s' END, dead.name,"
    "           pg_catalog.to_char(dead.last_seen AT TIME ZONE 'UTC',"
    "            'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), $1)"
    /* ... (what a run whose commit could not be asked may have done) ... */
    " OPERATOR(pg_catalog.||) COALESCE((SELECT '; may have committed: '"
    "   OPERATOR(pg_catalog.||) x.fenced FROM pgcrond.run_start x"
    "  WHERE x.instance OPERATOR(pg_catalog.=) d.instance"
    "   AND x.run_key OPERATOR(pg_catalog.=) d.run_key), '')"
    /* the kind's note (job_kind_lost_note: an HTTP request may have reached its server), by the
     * job's kind in the registry; $3 is every kind's, job_kind_lost_notes_json */
    " OPERATOR(pg_catalog.||) COALESCE($3::pg_catalog.jsonb OPERATOR(pg_catalog.->>)"
    "  (SELECT j.kind FROM pgcrond.job j WHERE j.jobname OPERATOR(pg_catalog.=) d.job_name), '')"
    "    FROM dead"
    "   WHERE d.instance OPERATOR(pg_catalog.=) dead.name"
    "     AND d.status OPERATOR(pg_catalog.=) ANY (ARRAY['starting', 'running'])"
    /* a backend that did not go in time: its run stays open, never retried (docs/faults.md) */
    "     AND NOT EXISTS (SELECT FROM fence f WHERE f.instance OPERATOR(pg_catalog.=) d.instance"
    "      AND f.run_key OPERATOR(pg_catalog.=) d.run_key AND NOT f.gone)"
    "  RETURNING dead.name, d.job_name, d.trigger, d.graph_run,"
    "   (pg_catalog.date_part('epoch', d.scheduled_time) OPERATOR(pg_catalog.*) 1000000)"
    "    ::pg_catalog.int8 AS sched, d.attempt, d.status AS st)"
    /* its claims of scheduled fires that never became a run (no row in the history: it
     * died between a claim and its run's start, or claimed an instant early and died
     * before it): given back, and the passed ones are served here (sched_takeover) */
    " , unserved AS (" SQL_UNSERVED_DELETE " USING dead"
    "   WHERE c.instance OPERATOR(pg_catalog.=) dead.name AND " SQL_UNSERVED_WHERE
        SQL_UNSERVED_STARTED SQL_TAKER_DEFINES
    "   RETURNING dead.name, c.job_name," SQL_UNSERVED_INSTANT " AS s, c.fire_key, c.boot_id)"
    /* ... its runs of scheduled fires with no history row yet (start rows wait up
     * to a second behind the runs) whose transaction the fence left rolled back: retried as a
     * closed run (by the claim the dead instance's own retry asks for, if it comes back; that
     * claim, held here, keeps the dead instance's late row of the run out: hist_batch.c); one
     * that committed, or whose id is not known, stays so */
    " , rolled AS (SELECT dead.name, m.job_name,"
    "   m.scheduled_s OPERATOR(pg_catalog.*) 1000000 AS sched"
    "  FROM pgcrond.run_start m JOIN dead ON m.instance OPERATOR(pg_catalog.=) dead.name"
    "  WHERE m.xid OPERATOR(pg_catalog.>) 0 AND m.fenced IS NULL"
    "   AND EXISTS (SELECT FROM pgcrond.fire_claim c"
    "    WHERE c.job_name OPERATOR(pg_catalog.=) m.job_name AND c.fire_key OPERATOR(pg_catalog.=)"
    "     ('s:' OPERATOR(pg_catalog.||) m.scheduled_s::pg_catalog.text)"
    "     AND c.instance OPERATOR(pg_catalog.=) m.instance AND c.started)"
    "   AND NOT" SQL_FIRE_HAS_ROW("m.job_name", "m.scheduled_s")
    /* asked once the fence ended its backend */
    "   AND (SELECT pg_catalog.count(*) FROM fence) OPERATOR(pg_catalog.>=) 0"
    "   AND pgcrond.xact_committed(m.xid, m.server) IS FALSE)"
    /* the job locks of its runs: the runs are closed */
    " , unlocked AS (DELETE FROM pgcrond.job_lock l USING dead"
    "   WHERE l.instance OPERATOR(pg_catalog.=) dead.name RETURNING 1)"
    /* a host that went silent may still hold its session: end it, so it writes nothing
     * more as this instance (by pid and backend start, so a reused pid is never hit) */
    " , term AS ("
    "  SELECT d.name, pg_catalog.pg_terminate_backend(a.pid) AS t FROM dead d"
    "   JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) d.backend_pid"
    "    AND a.backend_start OPERATOR(pg_catalog.=) d.backend_start"
    "   WHERE " MAY_END_A ")"
    " SELECT name, NULL, NULL, NULL, NULL, NULL,"
    "  pg_catalog.to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    "  (SELECT pg_catalog.count(*) FROM term"
    "    WHERE term.name OPERATOR(pg_catalog.=) dead.name AND term.t),"
    "  (SELECT pg_catalog.count(*) FROM unlocked), NULL, NULL"
    " FROM dead"
    /* a run that committed is recorded, never retried */
    " UNION ALL SELECT name, job_name, CASE WHEN st OPERATOR(pg_catalog.=) 'succeeded'"
    "  THEN 'committed' ELSE trigger END, graph_run, sched, attempt, NULL, NULL, NULL, NULL,"
    "  NULL FROM closed"
    /* (the claim's key and boot id: given back as it was if this instance began to stop
     * meanwhile, reap_done) */
    " UNION ALL SELECT name, job_name, 'unserved', NULL, s OPERATOR(pg_catalog.*) 1000000, 0,"
    "  NULL, NULL, NULL, fire_key, boot_id FROM unserved WHERE " SQL_UNSERVED_PASSED
    /* (a count where the others have none: reap_done tells them apart) */
    " UNION ALL SELECT name, job_name, 'schedule', NULL, sched, 1, NULL, 1::pg_catalog.int8,"
    "  NULL, NULL, NULL FROM rolled";

/* A stopping instance takes nothing over (the others reap), nor does one alone whose last
 * heartbeat found no other instance's row not stopped. */
static bool reap_skip(struct cluster *c)
{
	bool early = clock_mono_ms() < c->reap_after_ms;
	if (early)
		cluster_due_at(c, OP_REAP, c->reap_after_ms); /* its timer kicks when it may go */
	return early || cluster_jobs_unpublished(c) || c->stopping ||
	       (cluster_lone_on(c) && !c->lone.unstopped);
}

static bool reap_send(struct cluster *c)
{
	static char *notes; /* every kind's note, made once */
	char dead[24];
	snprintf(dead, sizeof(dead), "%d", CLUSTER_DEAD_MS);
	if (!notes)
		notes = job_kind_lost_notes_json();
	const char *p[] = {c->instance, dead, notes};
	if (!notes)
		return false; /* out of memory: at the next heartbeat's */
	cluster_send_stmt(c, OP_REAP, sql_reap, 3, p);
	return true;
}

/* Sent once a reap found an instance dead: the claims it left to an instance that defines
 * the job as the dead one did (SQL_TAKER_DEFINES) are that instance's to serve, and the
 * notification (its payload trusted for nothing) makes every instance look. */
static const char sql_reaped_wake[] =
    "SELECT pg_catalog.pg_notify('" CLUSTER_CHANNEL "', 'stopped')";

static const char reaped_wake_failed[] =
    "could not tell the other instances that one died (a fire it claimed that they define as "
    "it did waits for their next look: another stop, or their next start or reload, within 2 "
    "minutes)";

/* The reap's answer. One that comes once this process began to stop (its statement may wait
 * up to 3 s for a dead instance's backends to go; cluster_close sets `stopping` too) hands
 * what it took over to the others: the claims of fires never run go back to the dead
 * instance as they were, and the retries of the runs it closed go to the dead instance's
 * pending work (sched_takeover, coord_note); the others take both, as a stopped
 * instance's, when this stop's NOTIFY wakes them. */
static void reap_done(struct cluster *c, const struct stmtq_result *sr)
{
	const PGresult *r = sr->res;
	bool stopping = c->stopping;
	if (sr->failed) {
		log_warning("cluster: cannot look for dead instances: %s", sr->err);
		return;
	}
	if (!r)
		return;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *name = PQgetvalue(r, i, 0);
		if (PQgetisnull(r, i, 1)) {
			size_t closed = 0, unserved = 0, committed = 0, rolled = 0;
			for (int k = 0; k < PQntuples(r); k++) {
				if (PQgetisnull(r, k, 1) || strcmp(PQgetvalue(r, k, 0), name) != 0)
					continue;
				if (cluster_res_val(r, k, 7))
					rolled++;
				else if (strcmp(PQgetvalue(r, k, 2), "unserved") == 0)
					unserved++;
				else if (strcmp(PQgetvalue(r, k, 2), "committed") == 0)
					committed++;
				else
					closed++;
			}
			if (committed)
				log_warning(
				    "cluster: instance \"%s\" died after %zu of its runs had "
				    "committed: recorded as succeeded, not retried",
				    name, committed);
			if (unserved)
				log_warning("cluster: instance \"%s\" had claimed %zu scheduled "
				            "fire(s) it never ran: %s",
				            name, unserved,
				            stopping
				                ? "this instance is stopping: left to the others"
				                : "serving them here");
			if (cluster_res_val(r, i, 7) && atoll(PQgetvalue(r, i, 7)) > 0)
				log_warning(
				    "cluster: instance \"%s\" sent no heartbeat since %s but its "
				    "session was still open: ended it",
				    name, PQgetvalue(r, i, 6));
			if (rolled)
				log_warning(
				    "cluster: instance \"%s\" died just after %zu of its run(s) "
				    "began, before their history rows were written: rolled "
				    "back, retried by their retry policy",
				    name, rolled);
			if (closed)
				log_warning(
				    "cluster: instance \"%s\" died (last seen %s); closed its %zu "
				    "running run(s) as failed",
				    name, PQgetvalue(r, i, 6), closed);
			else if (!committed && !rolled)
				log_notice(
				    "cluster: instance \"%s\" died (last seen %s); it left no "
				    "running run",
				    name, PQgetvalue(r, i, 6));
			continue;
		}
		if (strcmp(PQgetvalue(r, i, 2), "committed") == 0)
			continue; /* its work is done: recorded, never retried */
		bool unserved = strcmp(PQgetvalue(r, i, 2), "unserved") == 0;
		if (unserved && stopping)
			continue; /* given back below */
		struct cluster_orphan o = {
		    .job_name = PQgetvalue(r, i, 1),
		    .unserved = unserved,
		    .graph_run = cluster_res_val(r, i, 3),
		    .dead = name,
		    .scheduled_us = cluster_res_val(r, i, 4) ? atoll(PQgetvalue(r, i, 4)) : 0,
		    .attempt = cluster_res_val(r, i, 5) ? atoi(PQgetvalue(r, i, 5)) : 1,
		};
		if (c->hooks.orphan)
			c->hooks.orphan(c->hooks.sched, &o);
	}
	if (stopping) {
		const int cols[4] = {1, 9, 0, 10}; /* job, key, instance, boot id */
		cluster_give_back(c, r, cols);
	}
	bool any = false;
	for (int i = 0; i < PQntuples(r); i++) {
		if (!PQgetisnull(r, i, 1))
			continue;
		any = true;
		if (c->hooks.reaped)
			c->hooks.reaped(c->hooks.arg, PQgetvalue(r, i, 0));
	}
	void *what = (void *)reaped_wake_failed;
	if (any && cluster_submit(c, sql_reaped_wake, 0, NULL, cluster_warn_failed, what) < 0 &&
	    !c->closing)
		cluster_warn_failed(what, NULL, "not connected", "");
}

const struct cluster_row cluster_row_lock = {.op = OP_LOCK, .send = lock_send, .done = lock_done};
const struct cluster_row cluster_row_holder = {.op = OP_HOLDER, .done = holder_done};
const struct cluster_row cluster_row_beat = {
    .op = OP_BEAT, .period_ms = ROW_BEAT, .send = beat_send, .done = beat_done};
const struct cluster_row cluster_row_reap = {
    .op = OP_REAP, .period_ms = ROW_BEAT, .skip = reap_skip, .send = reap_send, .done = reap_done};
