/* The instance lock, the heartbeat and reaping (cluster.h): the answers to the statements
 * that take this instance's name, find who holds it, beat, and hand the work of instances
 * that stopped beating to the hooks. The connection that carries them is cluster.c's. */
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "cluster.h"
#include "cluster_priv.h"
#include "config.h"
#include "log.h"
#include "pgconn.h"

static const char sql_holder[] =
    "SELECT coalesce(host, '?'), coalesce(pid, 0), boot_id,"
    " (extract(epoch FROM last_seen) * 1000000)::bigint,"
    " to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    " FROM pgcrond.instance WHERE name = $1";

/* The lock or the heartbeat found that another instance declared this process dead
 * (sql_reap; NOTE: "found dead by instance X at T"): it was stopped, frozen or cut off
 * for longer than its cluster_dead_after. Its rows say so: the runs it had in flight were closed
 * by X (and retried there), and their late ends here leave X's verdict (history.c). */
static void told_dead(const struct cluster *c, const PGresult *r, int col)
{
	const char *note = PQnfields(r) > col ? cluster_res_val(r, 0, col) : NULL;
	if (note)
		log_warning("cluster: this instance (\"%s\") was %s: no heartbeat of it for %d s "
		            "(the process stopped, its host frozen or cut off); the runs it had in "
		            "flight were closed there and retried by their retry policy, and their "
		            "ends here are not recorded over that verdict",
		            c->instance, note, (int)(c->dead_after_ms / 1000));
}

void cluster_lock_done(struct cluster *c, const struct stmtq_result *sr)
{
	const PGresult *r = sr->res;
	bool legacy = false;
	if (sr->failed && strcmp(sr->sqlstate, "42703") == 0) {
		/* pgcrond.instance without step 11's columns: no name can be held safely */
		if (log_complain(&c->schema_complaint))
			log_warning(
			    "cluster: the history database's pgcrond schema is older than this "
			    "pgcrond (%s): no run starts until 'pgcrond install' has upgraded "
			    "it; checking every %d s",
			    sr->err, SCHEMA_RETRY_MS / 1000);
		c->schema_old = true;
		cluster_conn_failed(c, "the pgcrond schema needs 'pgcrond install'",
		                    SCHEMA_RETRY_MS);
		return;
	}
	c->schema_old = false;
	if (sr->failed && strcmp(sr->sqlstate, "42P01") == 0) {
		legacy = true; /* no pgcrond.instance at all: uncoordinated (beat_done says so) */
	} else if (sr->failed && strcmp(sr->sqlstate, "25006") != 0) {
		cluster_conn_failed(c, sr->err, 0);
		return;
	} else if (!sr->failed && (!r || PQntuples(r) != 1)) {
		cluster_conn_failed(c, "no answer to the lock query", 0);
		return;
	}
	if (sr->failed && !legacy) { /* read-only: a standby */
		if (log_complain(&c->recovery_complaint))
			log_warning(
			    "cluster: history database %s is in recovery (a hot standby): no "
			    "run starts and no history is written until it is promoted or the "
			    "conninfo reaches a primary (target_session_attrs=read-write); "
			    "checking every %d s",
			    c->safe_conninfo, CLUSTER_RECOVERY_RETRY_MS / 1000);
		c->in_recovery = true;
		c->st.in_recovery = true;
		cluster_conn_failed(c, "in recovery", CLUSTER_RECOVERY_RETRY_MS);
		return;
	}
	if (c->in_recovery) {
		log_notice("cluster: history database %s is a primary now: runs resume",
		           c->safe_conninfo);
		log_complaint_reset(&c->recovery_complaint);
	}
	c->in_recovery = false;
	c->st.in_recovery = false;
	if (!legacy && strcmp(PQgetvalue(r, 0, 1), "t") != 0) {
		const char *p[] = {c->instance};
		cluster_send_stmt(c, OP_HOLDER, sql_holder, 1, p);
		return;
	}
	if (!legacy)
		told_dead(c, r, 3);
	c->locked = true;
	c->st.connected = true;
	c->holder_looked = false;
	if (log_complaint_reset(&c->down_complaint))
		log_notice("cluster: history database %s is reachable again", c->safe_conninfo);
	else
		log_debug("cluster: instance \"%s\" holds its name on %s", c->instance,
		          c->safe_conninfo);
	c->beat_due = c->reap_due = true;
	c->jobs_due = true;
	c->jobs_next = 0;
	c->listen_due = c->hooks.notified != NULL;
	/* peers reconnect within RETRY_MAX_MS, then beat: a short cluster_dead_after does not
	 * shorten that */
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
void cluster_holder_done(struct cluster *c, const struct stmtq_result *sr)
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
		conndrv_retry(&c->q.drv, LOCK_RECHECK_MS);
		return;
	}
	if (!have || seen != c->holder_seen_us) {
		char msg[1024];
		if (have)
			snprintf(
			    msg, sizeof(msg),
			    "another pgcrond is running as instance \"%s\" (host %s, pid %s, last "
			    "heartbeat %s) against history database %s; give this one its own "
			    "name with instance = \"...\" in pgcrond.conf (and its own "
			    "state_dir), or stop the other",
			    c->instance, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
			    PQgetvalue(r, 0, 4), c->safe_conninfo);
		else
			snprintf(
			    msg, sizeof(msg),
			    "another pgcrond is running as instance \"%s\" against history "
			    "database %s (it holds the instance's lock); give this one its own "
			    "name with instance = \"...\" in pgcrond.conf (and its own "
			    "state_dir), or stop the other",
			    c->instance, c->safe_conninfo);
		c->refused = true;
		cluster_answer_claims(c, cluster_is_overdue, cluster_v_offline);
		if (c->hooks.refused)
			c->hooks.refused(c->hooks.arg, msg);
		return;
	}
	if (log_complain(&c->lock_complaint))
		log_warning("cluster: instance name \"%s\" is still held by a session but its "
		            "heartbeat stopped at %s: a dead process whose session the server has "
		            "not dropped yet; waiting for it",
		            c->instance, PQgetvalue(r, 0, 4));
	conndrv_retry(&c->q.drv, CLUSTER_RECOVERY_RETRY_MS);
}

void cluster_beat_done(struct cluster *c, const struct stmtq_result *sr)
{
	const PGresult *r = sr->res;
	if (sr->failed) {
		if (strcmp(sr->sqlstate, "42P01") == 0) {
			if (log_complain(&c->schema_complaint))
				log_warning(
				    "cluster: pgcrond.instance does not exist: instances are not "
				    "coordinated; run 'pgcrond install' to upgrade the schema");
			c->schema_missing = true;
		} else {
			log_warning("cluster: heartbeat failed: %s", sr->err);
		}
		return;
	}
	if (!r || PQntuples(r) != 1)
		return;
	size_t n = (size_t)atoll(PQgetvalue(r, 0, 1));
	const char *names = cluster_res_val(r, 0, 2);
	if (n != c->peers_live || strcmp(names ? names : "", c->peers) != 0) {
		if (n)
			log_info("cluster: instance \"%s\"; other live instances: %s", c->instance,
			         names ? names : "");
		else if (c->peers_live)
			log_info("cluster: instance \"%s\" is the only live instance", c->instance);
	}
	told_dead(c, r, 4);
	c->peers_live = n;
	snprintf(c->peers, sizeof(c->peers), "%s", names ? names : "");
	c->st.peers_live = n;
	if (PQnfields(r) > 3 && cluster_res_val(r, 0, 3)) {
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
	}
}

void cluster_reap_done(struct cluster *c, const struct stmtq_result *sr)
{
	const PGresult *r = sr->res;
	if (sr->failed) {
		if (strcmp(sr->sqlstate, "42P01") != 0)
			log_warning("cluster: cannot look for dead instances: %s", sr->err);
		return;
	}
	if (!r)
		return;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *name = PQgetvalue(r, i, 0);
		if (PQgetisnull(r, i, 1)) {
			size_t closed = 0, unserved = 0;
			for (int k = 0; k < PQntuples(r); k++) {
				if (PQgetisnull(r, k, 1) || strcmp(PQgetvalue(r, k, 0), name) != 0)
					continue;
				if (strcmp(PQgetvalue(r, k, 2), "unserved") == 0)
					unserved++;
				else
					closed++;
			}
			if (unserved)
				log_warning("cluster: instance \"%s\" had claimed %zu scheduled "
				            "fire(s) it never ran: serving them here",
				            name, unserved);
			c->st.dead_found++;
			if (cluster_res_val(r, i, 7) && atoll(PQgetvalue(r, i, 7)) > 0)
				log_warning(
				    "cluster: instance \"%s\" sent no heartbeat since %s but its "
				    "session was still open: ended it",
				    name, PQgetvalue(r, i, 6));
			if (closed)
				log_warning(
				    "cluster: instance \"%s\" died (last seen %s); closed its %zu "
				    "running run(s) as failed",
				    name, PQgetvalue(r, i, 6), closed);
			else
				log_notice(
				    "cluster: instance \"%s\" died (last seen %s); it left no "
				    "running run",
				    name, PQgetvalue(r, i, 6));
			continue;
		}
		bool unserved = strcmp(PQgetvalue(r, i, 2), "unserved") == 0;
		struct cluster_orphan o = {
		    .job_name = PQgetvalue(r, i, 1),
		    .trigger = unserved ? "schedule" : cluster_res_val(r, i, 2),
		    .unserved = unserved,
		    .graph_run = cluster_res_val(r, i, 3),
		    .dead = name,
		    .scheduled_us = cluster_res_val(r, i, 4) ? atoll(PQgetvalue(r, i, 4)) : 0,
		    .attempt = cluster_res_val(r, i, 5) ? atoi(PQgetvalue(r, i, 5)) : 1,
		};
		if (c->hooks.orphan)
			c->hooks.orphan(c->hooks.arg, &o);
	}
	for (int i = 0; c->hooks.reaped && i < PQntuples(r); i++)
		if (PQgetisnull(r, i, 1))
			c->hooks.reaped(c->hooks.arg, PQgetvalue(r, i, 0));
}

void cluster_serve_unserved(struct cluster *c)
{
	if (!c || c->unserved_asked)
		return;
	c->unserved_asked = c->unserved_due = true;
	cluster_kick(c);
}

void cluster_unserved_done(struct cluster *c, const struct stmtq_result *sr)
{
	const PGresult *r = sr->res;
	if (sr->failed) {
		if (strcmp(sr->sqlstate, "42P01") != 0)
			log_warning("cluster: cannot look for fires an earlier process of this "
			            "instance claimed and never ran: %s",
			            sr->err);
		return;
	}
	if (!r || PQntuples(r) == 0)
		return;
	log_warning("cluster: an earlier process of this instance claimed %d scheduled fire(s) "
	            "and was stopped before running them: serving them here",
	            PQntuples(r));
	for (int i = 0; i < PQntuples(r); i++) {
		struct cluster_orphan o = {
		    .job_name = PQgetvalue(r, i, 0),
		    .trigger = "schedule",
		    .dead = c->instance,
		    .scheduled_us = atoll(PQgetvalue(r, i, 1)),
		    .unserved = true,
		};
		if (c->hooks.orphan)
			c->hooks.orphan(c->hooks.arg, &o);
	}
}
