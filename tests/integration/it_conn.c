/* Connections that go silent. A relay on 127.0.0.1 stands between the daemon and
 * the sandbox server, as a NAT or a firewall would: on SIGUSR1 it stops forwarding the
 * connections it holds, without closing them (a NAT that forgot them), while new connections
 * still go through; on SIGUSR2 it also stops forwarding new ones (a host that accepts and
 * never answers). The daemon must notice within `connection_check` and go on with new
 * connections, losing no run and leaving none `running`. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <linux/sched.h> /* CLONE_NEWNS (<sched.h> is core/src/sched/sched.h here) */
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

/* The daemon's main file: history on the unix socket ("app"), a short connection check, and
 * the databases DBS (libconfig lines). */
static void write_conf(const struct itest_env *e, const char *dbs)
{
	itest_write_file(e->conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "connection_check = \"4s\";\n"
	                 "databases = {\n"
	                 "  app = { conninfo = \"%s\"; pool = 2; };\n"
	                 "%s"
	                 "};\n"
	                 "history = { database = \"app\"; };\n",
	                 e->dir, e->dir, e->ci, dbs);
}

/* ... with the job's database "far" through the relay. */
static void write_main(const struct itest_env *e, const char *dbname, int port)
{
	char dbs[256];
	snprintf(dbs, sizeof(dbs),
	         "  far = { conninfo = \"host=127.0.0.1 port=%d user=postgres dbname=%s\"; "
	         "pool = 1; };\n",
	         port, dbname);
	write_conf(e, dbs);
}

START_TEST(silent_idle_connection_is_replaced)
{
	struct itest_env e;
	int port = 0;

	itest_env_setup(&e, "conn_silent", "it_conn_silent");
	pid_t relay = itest_relay_start(e.ci, &port);
	itest_exec(e.db, "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp())");
	write_main(&e, "it_conn_silent", port);
	/* every 10 s: the relay goes silent right after a run, and the connection check (4 s)
	 * must find it before the next fire */
	itest_env_job(
	    &e, "10-tick.conf",
	    "job = { name = \"tick\"; database = \"far\"; schedule = \"*/10 * * * * *\";\n"
	    "        timeout = \"60s\"; command = \"INSERT INTO ticks DEFAULT VALUES\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 25,
	                             "SELECT count(*) >= 1 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND status = 'succeeded'"),
	              "the job does not run through the relay:\n%s", itest_read_file(e.log));
	long long before = itest_env_count(&e, "SELECT count(*) FROM ticks");
	kill(relay, SIGUSR1); /* the connection the job used is now silent */

	/* the next fire runs on a new connection, well before the job's 60 s timeout */
	ck_assert_msg(itest_env_wait(&e, 16, "SELECT count(*) > %lld FROM ticks", before),
	              "no run after the connection went silent:\n%s", itest_read_file(e.log));
	ck_assert_msg(itest_wait_log(e.log, "did not answer within", 10), "%s",
	              itest_read_file(e.log));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE job_name = 'tick' AND status <> 'succeeded' "
	                                     "AND status <> 'running'"),
	                 0);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE status = 'running'"),
	                 0);
	itest_relay_stop(relay);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(connect_that_never_answers_fails_within_the_check)
{
	struct itest_env e;
	int port = 0;

	itest_env_setup(&e, "conn_hold", "it_conn_hold");
	pid_t relay = itest_relay_start(e.ci, &port);
	kill(relay, SIGUSR2); /* accepts, never answers */
	write_main(&e, "it_conn_hold", port);
	itest_env_job(
	    &e, "10-tick.conf",
	    "job = { name = \"tick\"; database = \"far\"; schedule = \"*/10 * * * * *\";\n"
	    "        timeout = \"60s\"; command = \"SELECT 1\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 25,
	                             "SELECT count(*) >= 1 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND status = 'failed' AND "
	                             "return_message LIKE 'could not connect within 4000 ms%%' "
	                             "AND sqlstate = '08001'"),
	              "a connect that never completes was not given up:\n%s",
	              itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	itest_relay_stop(relay);
	itest_env_teardown(&e);
}
END_TEST

/* NOTIFY until a run with trigger "notify" starts after AFTER (a timestamptz literal). */
static bool notify_until_run(struct itest_env *e, const char *after, double timeout_s)
{
	double end = itest_now() + timeout_s;
	while (itest_now() < end) {
		itest_exec(e->db, "NOTIFY it_ping");
		if (itest_env_wait(e, 1,
		                   "SELECT count(*) > 0 FROM pgcrond.job_run_details WHERE "
		                   "job_name = 'on_ping' AND trigger = 'notify' AND status = "
		                   "'succeeded' AND start_time > '%s'",
		                   after))
			return true;
	}
	return false;
}

/* The listener's connection goes silent: it is replaced within the connection check and
 * notifications start runs again. */
START_TEST(silent_listener_is_replaced)
{
	struct itest_env e;
	int port = 0;

	itest_env_setup(&e, "conn_listen", "it_conn_listen");
	pid_t relay = itest_relay_start(e.ci, &port);
	itest_exec(e.db, "CREATE TABLE pings (at timestamptz DEFAULT clock_timestamp())");
	write_main(&e, "it_conn_listen", port);
	itest_env_job(&e, "10-ping.conf",
	              "job = { name = \"on_ping\"; database = \"far\"; listen = \"it_ping\";\n"
	              "        debounce = \"1s\"; max_delay = \"2s\"; timeout = \"3s\";\n"
	              "        command = \"INSERT INTO pings DEFAULT VALUES\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(notify_until_run(&e, "-infinity", 20), "no notify run through the relay:\n%s",
	              itest_read_file(e.log));
	char *frozen = itest_scalar(e.db, "SELECT clock_timestamp()::text");
	kill(relay, SIGUSR1); /* the listener's connection (and the pool's) are now silent */
	ck_assert_msg(itest_wait_log(e.log, "listener on database far lost", 10), "%s",
	              itest_read_file(e.log));
	/* a run sent into the silent pool connection before its check ends with its timeout */
	ck_assert_msg(notify_until_run(&e, frozen, 40),
	              "notifications start no run after the listener went silent:\n%s",
	              itest_read_file(e.log));
	free(frozen);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	itest_relay_stop(relay);
	itest_env_teardown(&e);
}
END_TEST

/* A run's connection goes silent while the daemon's own session of the history does not:
 * only the job's database is behind the relay. A run whose statement takes three
 * times half the connection check is looked at from pgcrond's own session of that database
 * and left alone (its backend is at work); a run in flight when the relay stops forwarding is
 * found once its backend sits idle on the server, that backend is ended, and the run fails as a
 * lost connection, within the connection check and a look; the next fire runs on a new
 * connection. */
START_TEST(silent_run_is_found_and_a_long_one_left_alone)
{
	struct itest_env e;
	int port = 0;

	itest_env_setup(&e, "conn_run", "it_conn_run");
	pid_t relay = itest_relay_start(e.ci, &port);
	itest_exec(e.db, "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp())");
	write_main(&e, "it_conn_run", port);
	/* the first run sleeps 6 s (silent for 2 s three times over), the others 1 s */
	itest_env_job(&e, "10-tick.conf",
	              "job = { name = \"tick\"; database = \"far\"; schedule = \"*/2 * * * * *\";\n"
	              "        retries = 0; command = \"SELECT pg_sleep(CASE WHEN"
	              " (SELECT count(*) FROM ticks) = 0 THEN 6 ELSE 1 END);"
	              " INSERT INTO ticks DEFAULT VALUES\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 25,
	                             "SELECT count(*) >= 2 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND status = 'succeeded'"),
	              "the job does not run through the relay:\n%s", itest_read_file(e.log));
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 'tick'"
	                    " AND status = 'succeeded' AND duration_ms >= 6000",
	                    "1");
	ck_assert_msg(itest_count_in_file(e.log, "went silent") == 0,
	              "a run at work was judged:\n%s", itest_tail(e.log));
	const char *active = "SELECT pid FROM pg_stat_activity WHERE datname = 'it_conn_run'"
	                     " AND state = 'active' AND query LIKE 'SELECT pg_sleep(CASE%'"
	                     " AND clock_timestamp() - query_start < '0.3 s'::interval";
	char *pid = itest_wait_value(e.db, active, 10);
	ck_assert_msg(pid != NULL, "no run under way:\n%s", itest_tail(e.log));
	int stuck = atoi(pid);
	free(pid);
	kill(relay, SIGUSR1); /* the run's connection is now silent */
	char *frozen = itest_scalar(e.db, "SELECT clock_timestamp()::text");

	ck_assert_msg(
	    itest_env_wait(&e, 10,
	                   "SELECT count(*) = 1 FROM pgcrond.job_run_details "
	                   "WHERE job_name = 'tick' AND job_pid = %d AND status = 'failed'"
	                   " AND sqlstate = '08006' AND return_message LIKE 'connection "
	                   "went silent: no answer for %% s while its backend (pid %d) "
	                   "sat idle on the server, its statement over but the answer "
	                   "lost on the way %%; the backend was ended, and the run is not "
	                   "retried'",
	                   stuck, stuck),
	    "the silent run was not failed as a lost connection:\n%s", itest_read_file(e.log));
	ck_assert_msg(itest_env_wait(&e, 8,
	                             "SELECT count(*) > 0 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND status = 'succeeded' "
	                             "AND start_time > '%s'",
	                             frozen),
	              "no run after the silent one:\n%s", itest_read_file(e.log));
	char q[128];
	snprintf(q, sizeof(q), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", stuck);
	itest_assert_scalar(e.db, q, "0");
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	itest_assert_scalar(
	    e.db, "SELECT count(*) FROM pgcrond.job_run_details WHERE status = 'running'", "0");
	free(frozen);
	itest_relay_stop(relay);
	itest_env_teardown(&e);
}
END_TEST

/* E's main file: the history in "app", and database DB of ROLE (CONNECTION LIMIT LIMIT) with a
 * pool of POOL connections and the keys EXTRA ("" for none). */
static void limited_role_conf(struct itest_env *e, const char *db, const char *role, int limit,
                              int pool, const char *extra)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "DO $$ BEGIN CREATE ROLE %s LOGIN; "
	         "EXCEPTION WHEN duplicate_object THEN NULL; END $$",
	         role);
	itest_exec(e->db, sql);
	snprintf(sql, sizeof(sql), "ALTER ROLE %s CONNECTION LIMIT %d", role, limit);
	itest_exec(e->db, sql);
	itest_write_file(e->conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = {\n"
	                 "  app = { conninfo = \"%s\"; pool = 2; };\n"
	                 "  %s = { conninfo = \"%s user=%s\"; pool = %d; %s };\n"
	                 "};\n"
	                 "history = { database = \"app\"; };\n",
	                 e->dir, e->dir, e->ci, db, e->ci, role, pool, extra);
}

/* The server refuses more connections than the role's CONNECTION LIMIT (53300) while the
 * pool holds two: the runs due at once wait for those two instead of failing. */
START_TEST(runs_wait_for_a_connection_when_the_server_refuses_more)
{
	struct itest_env e;

	itest_env_setup(&e, "conn_limit", "it_conn_limit");
	limited_role_conf(&e, "limited", "it_conn_limited", 2, 4, "");
	char when[32];
	itest_env_start(&e);
	/* the jobs come with a reload once the daemon runs (itest_env_reload) */
	itest_schedule_soon(when, sizeof(when), 3);
	for (int i = 0; i < 8; i++) {
		char file[32];
		snprintf(file, sizeof(file), "1%d-sleep.conf", i);
		itest_env_job(&e, file,
		              "job = { name = \"sleep%d\"; database = \"limited\"; "
		              "schedule = \"%s\"; timeout = \"60s\"; retries = 0;\n"
		              "        command = \"SELECT pg_sleep(0.5)\"; };\n",
		              i, when);
	}
	itest_env_reload(&e);
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) = 8 FROM pgcrond.job_run_details "
	                             "WHERE job_name LIKE 'sleep%%' AND status <> 'running'"),
	              "the runs did not end:\n%s", itest_read_file(e.log));
	ck_assert_msg(
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                        "WHERE job_name LIKE 'sleep%%' AND status = 'succeeded'") == 8,
	    "runs failed although the pool held connections:\n%s", itest_read_file(e.log));
	/* the server did refuse: the daemon logged it */
	ck_assert_msg(itest_wait_log(e.log, "too many connections", 10), "%s",
	              itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	itest_env_teardown(&e);
}
END_TEST

/* The server takes no connection of the role at all (its CONNECTION LIMIT is held by another
 * session: 53300) when the runs are due, and the pool holds none: the runs wait for a slot
 * within their timeout, and run once the other session ends; none fails for it. */
START_TEST(runs_wait_for_a_slot_when_the_server_takes_none)
{
	struct itest_env e;

	itest_env_setup(&e, "conn_full", "it_conn_full");
	itest_exec(e.db, "CREATE TABLE ticks (job text)");
	limited_role_conf(&e, "full", "it_conn_full_role", 1, 2, "");
	itest_exec(e.db, "GRANT INSERT ON ticks TO it_conn_full_role");
	itest_env_start(&e);
	/* the role's one slot, held by someone else from before the fire */
	char other_ci[1400];
	snprintf(other_ci, sizeof(other_ci), "%s user=it_conn_full_role", e.ci);
	PGconn *other = itest_connect(other_ci);
	char when[32];
	itest_schedule_soon(when, sizeof(when), 3);
	for (int i = 0; i < 3; i++) {
		char file[32];
		snprintf(file, sizeof(file), "1%d-tick.conf", i);
		itest_env_job(&e, file,
		              "job = { name = \"tick%d\"; database = \"full\"; "
		              "schedule = \"%s\"; timeout = \"60s\"; retries = 0;\n"
		              "        command = \"INSERT INTO ticks VALUES ('tick%d')\"; };\n",
		              i, when, i);
	}
	itest_env_reload(&e);
	/* the server refused the pool's connects while the runs were due */
	ck_assert_msg(itest_wait_log(e.log, "tick2: started", 30), "%s", itest_read_file(e.log));
	ck_assert_msg(itest_wait_log(e.log, "too many connections for role", 10), "%s",
	              itest_read_file(e.log));
	itest_sleep(2);
	itest_assert_scalar(e.db, "SELECT count(*) FROM ticks", "0");
	PQfinish(other);
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) = 3 FROM pgcrond.job_run_details "
	                             "WHERE job_name LIKE 'tick%%' AND status <> 'running'"),
	              "the runs did not end:\n%s", itest_read_file(e.log));
	ck_assert_msg(
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                        "WHERE job_name LIKE 'tick%%' AND status = 'succeeded'") == 3,
	    "runs failed although the server only waited for a slot:\n%s", itest_read_file(e.log));
	itest_assert_scalar(e.db, "SELECT count(*) FROM ticks", "3");
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A pool refused for one reason, then for another: the new reason is logged when it comes,
 * not once the repeats' minute is over (the server that restarted and came back full). */
START_TEST(a_new_reason_to_refuse_is_logged_at_once)
{
	struct itest_env e;

	itest_env_setup(&e, "conn_reason", "it_conn_reason");
	limited_role_conf(&e, "reason", "it_conn_reason_role", 4, 2, "");
	itest_exec(e.db, "ALTER ROLE it_conn_reason_role NOLOGIN");
	itest_env_start(&e);
	itest_env_job(&e, "10-tick.conf",
	              "job = { name = \"tick\"; database = \"reason\"; "
	              "schedule = \"* * * * * *\"; retries = 0; command = \"SELECT 1\"; };\n");
	itest_env_reload(&e);
	ck_assert_msg(itest_wait_log(e.log, "is not permitted to log in", 20),
	              "the first refusal was not logged:\n%s", itest_read_file(e.log));
	itest_exec(e.db, "ALTER ROLE it_conn_reason_role LOGIN CONNECTION LIMIT 0");
	ck_assert_msg(itest_wait_log(e.log, "too many connections for role", 20),
	              "the new reason was not logged:\n%s", itest_read_file(e.log));
	/* the run that waits for a slot gets one, and the stop does not wait for it */
	itest_exec(e.db, "ALTER ROLE it_conn_reason_role CONNECTION LIMIT 4");
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A stop does not wait for a run that waits for a connection the server refuses (its role's
 * CONNECTION LIMIT 0): nothing of it is on the server, so it ends at once, not run, saying
 * why, while the stop waits for the run whose statement is on the server. */
START_TEST(a_stop_waits_only_for_statements_on_the_server)
{
	struct itest_env e;

	itest_env_setup(&e, "conn_stop", "it_conn_stop");
	limited_role_conf(&e, "refused", "it_conn_stop_role", 0, 2, "");
	itest_env_start(&e);
	char when[32];
	itest_schedule_soon(when, sizeof(when), 3);
	itest_env_job(&e, "10-refused.conf",
	              "job = { name = \"refused\"; database = \"refused\"; schedule = \"%s\";\n"
	              "        timeout = \"120s\"; retries = 0; command = \"SELECT 1\"; };\n",
	              when);
	itest_env_job(&e, "20-sleeper.conf",
	              "job = { name = \"sleeper\"; database = \"app\"; schedule = \"%s\";\n"
	              "        timeout = \"120s\"; retries = 0;\n"
	              "        command = \"SELECT pg_sleep(5)\"; };\n",
	              when);
	itest_env_reload(&e);
	ck_assert_msg(itest_wait_log(e.log, "too many connections for role", 30), "%s",
	              itest_read_file(e.log));
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'sleeper' AND job_pid IS NOT NULL"),
	              "the sleeper did not start:\n%s", itest_read_file(e.log));
	double t0 = itest_now();
	/* the default shutdown_grace is 30 s: the stop ends with the sleeper's statement */
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 60), 0);
	double took = itest_now() - t0;
	ck_assert_msg(took < 15, "the stop took %.1f s:\n%s", took, itest_read_file(e.log));
	itest_assert_scalar(e.db,
	                    "SELECT string_agg(job_name || ' ' || status, ', ' ORDER BY job_name)"
	                    " FROM pgcrond.job_run_details WHERE end_time IS NOT NULL",
	                    "refused skipped, sleeper succeeded");
	itest_assert_scalar(e.db, "SELECT count(*) FROM pgcrond.job_run_details", "2");
	itest_assert_scalar(e.db,
	                    "SELECT return_message LIKE 'not run: pgcrond was stopping while it "
	                    "waited for a connection (the last connection error: %too many "
	                    "connections for role%' FROM pgcrond.job_run_details"
	                    " WHERE job_name = 'refused'",
	                    "t");
	itest_env_teardown(&e);
}
END_TEST

/* idle_timeout: the connections a burst opened close once no run used them for that long,
 * all but the one the every-second job keeps using (a pool whose fires are further apart than
 * idle_timeout keeps none: it_warm). */
START_TEST(idle_connections_close_but_one)
{
	struct itest_env e;

	itest_env_setup(&e, "conn_idle", "it_conn_idle");
	/* idle connections are looked at every 15 s (connection_check 30 s), and the every-second
	 * job's warm-up resets them every 5 s meanwhile: that warm-up closes those past their
	 * idle_timeout that the next instant does not need */
	limited_role_conf(&e, "jobs", "it_conn_idle_role", -1, 4, "idle_timeout = \"1s\";");
	itest_env_start(&e);
	char when[32];
	itest_schedule_soon(when, sizeof(when), 3);
	for (int i = 0; i < 3; i++) {
		char file[32];
		snprintf(file, sizeof(file), "1%d-sleep.conf", i);
		itest_env_job(
		    &e, file,
		    "job = { name = \"sleep%d\"; database = \"jobs\"; schedule = \"%s\";\n"
		    "        command = \"SELECT pg_sleep(0.5)\"; };\n",
		    i, when);
	}
	itest_env_job(&e, "20-tick.conf",
	              "job = { name = \"tick\"; database = \"jobs\"; schedule = \"* * * * * *\";\n"
	              "        command = \"SELECT 1\"; };\n");
	itest_env_reload(&e);
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) = 3 FROM pgcrond.job_run_details "
	                             "WHERE job_name LIKE 'sleep%%' AND status = 'succeeded'"),
	              "the runs did not succeed:\n%s", itest_read_file(e.log));
	/* three ran side by side, on three connections */
	itest_assert_scalar(e.db,
	                    "SELECT count(DISTINCT job_pid) FROM pgcrond.job_run_details "
	                    "WHERE job_name LIKE 'sleep%'",
	                    "3");
	/* 1 s unused, then the next warm-up that needs one connection (within 6 s) */
	ck_assert_msg(itest_env_wait(&e, 12,
	                             "SELECT count(*) = 1 FROM pg_stat_activity "
	                             "WHERE usename = 'it_conn_idle_role'"),
	              "the idle connections stayed open:\n%s", itest_read_file(e.log));
	itest_sleep(3); /* the last one stays */
	itest_assert_scalar(
	    e.db, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'it_conn_idle_role'", "1");
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	itest_env_teardown(&e);
}
END_TEST

/* The server ends idle pooled connections (pg_terminate_backend, idle_session_timeout, a
 * restart of a pooler): the next runs go on new connections and none fails for it. */
START_TEST(idle_connection_killed_by_the_server_fails_no_run)
{
	struct itest_env e;

	itest_env_setup(&e, "conn_kill", "it_conn_kill");
	itest_exec(e.db, "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp())");
	itest_env_main(&e, NULL);
	itest_env_job(&e, "10-tick.conf",
	              "job = { name = \"tick\"; schedule = \"*/2 * * * * *\"; retries = 0;\n"
	              "        command = \"INSERT INTO ticks DEFAULT VALUES\"; };\n");
	itest_env_start(&e);
	ck_assert(itest_env_wait(&e, 20, "SELECT count(*) >= 2 FROM ticks"));
	/* kill every idle connection of the daemon to this database, ten times over; 0.45 s
	 * after a fire (the job fires every even second, and its run takes milliseconds), and
	 * only connections idle for 200 ms: a connection handed to a run between the read of
	 * pg_stat_activity and the kill would fail that run, rightly (not what this tests). All
	 * are signalled at once, then the test waits up to 1.3 s for them to be gone, before the
	 * next fire: a backend that takes its signal after a run was handed its connection (it
	 * looked alive) fails that run, and on a busy machine under ASan one can take over
	 * 0.55 s */
	for (int i = 0; i < 10; i++) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		double into = (double)(now.tv_sec % 2) + now.tv_nsec / 1e9;
		itest_sleep(into < 0.45 ? 0.45 - into : 2.45 - into);
		char *pids = itest_scalar(
		    e.db, "SELECT array_agg(pid)::text FROM (SELECT pid, pg_terminate_backend(pid) "
		          "FROM pg_stat_activity "
		          "WHERE datname = current_database() AND pid <> pg_backend_pid() "
		          "AND application_name LIKE 'pgcrond%' AND state = 'idle' "
		          "AND state_change < clock_timestamp() - interval '200 ms' "
		          "AND NOT " ITEST_OWN_SESSIONS ") k");
		if (pids) {
			char sql[4096];
			snprintf(sql, sizeof(sql),
			         "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = "
			         "ANY('%s'))",
			         pids);
			if (!itest_wait_sql(e.db, sql, 1.3)) /* the next run may fail: say why */
				fprintf(stderr,
				        "it_conn: killed backends %s still there after 1.3 s\n",
				        pids);
			free(pids);
		}
	}
	long long before = itest_env_count(&e, "SELECT count(*) FROM ticks");
	ck_assert(itest_env_wait(&e, 10, "SELECT count(*) >= %lld + 2 FROM ticks", before));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	char *failed = itest_scalar(
	    e.db, "SELECT left(string_agg(status || ': ' || return_message, "
	          "E'\\n'), 3000) FROM pgcrond.job_run_details "
	          "WHERE job_name = 'tick' AND status NOT IN ('succeeded', 'skipped')");
	/* (a skip is a policy's: a fire due during a reconnect of the claims' connection, or
	 * the stop) */
	ck_assert_msg(!failed || !*failed,
	              "a run failed for a connection that died while idle:\n%s", failed);
	free(failed);
	itest_env_teardown(&e);
}
END_TEST

/* A connection a run gives back, with no run waiting and the pool's others idle, waits
 * RESET_LATER_MS (CONN_USED) before its reset, and a run that comes meanwhile is carried in
 * that reset's round trip, as the downstream of a run, submitted as that run ends, is. Here the
 * server ends the backend right after the upstream's statement (pg_terminate_backend, as a
 * server shutdown or idle_session_timeout would) while the daemon is stopped: the upstream's
 * answer and the server's FATAL wait in the daemon's socket together, and the connection's end
 * comes only later (the backend's exit waits for a lock the test holds on its temp table, as a
 * busy server's exit takes its time). The downstream must not go out on that connection (it
 * would fail "server closed the connection unexpectedly" once the backend was gone: a run
 * whose statement never reached a live backend) but run once, on another, and fail
 * not; the upstream's run, over before the fault, succeeds. */
START_TEST(used_connection_killed_by_the_server_fails_no_run)
{
	struct itest_env e;

	itest_env_setup(&e, "conn_used", "it_conn_used");
	itest_exec(e.db, "CREATE TABLE execs (job text, pid int, at timestamptz DEFAULT "
	                 "clock_timestamp())");
	itest_env_main(&e, NULL);
	/* each run counts itself in its own transaction; the upstream leaves a temp table in its
	 * session (which the reset after it drops) */
	itest_env_job(&e, "10-pair.conf",
	              "jobs = (\n"
	              "{ name = \"up\"; schedule = \"*/3 * * * * *\"; command = \"CREATE TEMP "
	              "TABLE up_tmp (a int); INSERT INTO execs (job, pid) SELECT 'up', "
	              "pg_backend_pid() FROM pg_sleep(1)\"; },\n"
	              "{ name = \"down\"; after = [\"up\"]; command = \"INSERT INTO execs (job, "
	              "pid) VALUES ('down', pg_backend_pid())\"; }\n);\n");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 20, "SELECT count(*) >= 1 FROM execs WHERE job = 'down'"),
	              "the pair did not run:\n%s", itest_read_file(e.log));
	PGconn *lock = itest_connect(e.ci);
	const char *up = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
	                 "AND pid <> pg_backend_pid() AND state = 'active' "
	                 "AND query LIKE '%execs (job, pid) SELECT ''up''%'";
	for (int i = 0; i < 3; i++) {
		long long had = itest_env_count(
		    &e, "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 'down'");
		/* the upstream's statement at work (it sleeps 1 s) */
		ck_assert_msg(itest_env_wait(&e, 10, "SELECT EXISTS (%s)", up),
		              "up did not run:\n%s", itest_read_file(e.log));
		long long pid = itest_env_count(&e, "%s", up);
		ck_assert_int_eq(kill(e.pid, SIGSTOP), 0);
		/* over and answered, into the stopped daemon's socket */
		bool idle = itest_env_wait(&e, 10,
		                           "SELECT state = 'idle' FROM pg_stat_activity "
		                           "WHERE pid = %lld",
		                           pid);
		/* its temp table locked: the backend's exit, which drops it, waits for the lock */
		itest_exec(lock,
		           "BEGIN; DO $$DECLARE t regclass; BEGIN FOR t IN SELECT oid FROM "
		           "pg_class WHERE relname = 'up_tmp' AND relpersistence = 't' LOOP "
		           "EXECUTE format('LOCK TABLE %s IN ACCESS SHARE MODE', t); END LOOP; "
		           "END$$");
		/* ended: its FATAL went out before its exit began */
		bool ending =
		    idle &&
		    itest_env_count(&e, "SELECT pg_terminate_backend(%lld)::int", pid) == 1 &&
		    itest_env_wait(&e, 10,
		                   "SELECT wait_event_type = 'Lock' FROM pg_stat_activity "
		                   "WHERE pid = %lld",
		                   pid);
		ck_assert_int_eq(kill(e.pid, SIGCONT), 0);
		/* the daemon reads the answer and takes the downstream (the connection still
		 * open), then the backend goes */
		bool taken = ending && itest_env_wait(&e, 10,
		                                      "SELECT count(*) > %lld FROM "
		                                      "pgcrond.job_run_details WHERE job_name = "
		                                      "'down'",
		                                      had);
		itest_exec(lock, "COMMIT");
		ck_assert_msg(ending, "up's backend %lld did not end (idle %d)", pid, idle);
		ck_assert_msg(taken, "down did not start after the fault:\n%s",
		              itest_read_file(e.log));
		ck_assert_msg(itest_env_wait(&e, 10,
		                             "SELECT count(*) > %lld FROM pgcrond.job_run_details "
		                             "WHERE job_name = 'down' AND status <> 'running'",
		                             had),
		              "down did not end after the fault:\n%s", itest_read_file(e.log));
	}
	PQfinish(lock);
	/* the daemon goes on: two more pairs */
	long long downs = itest_env_count(&e, "SELECT count(*) FROM execs WHERE job = 'down'");
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) >= %lld + 2 FROM execs "
	                             "WHERE job = 'down'",
	                             downs),
	              "the pair stopped running:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	char *failed = itest_scalar(
	    e.db, "SELECT left(string_agg(job_name || ' ' || status || ': ' || return_message, "
	          "E'\\n'), 3000) FROM pgcrond.job_run_details "
	          "WHERE status NOT IN ('succeeded', 'skipped')");
	ck_assert_msg(!failed || !*failed,
	              "a run failed for a connection whose backend ended before its "
	              "statement:\n%s\n%s",
	              failed, itest_tail(e.log));
	free(failed);
	/* every fire one row, every run that succeeded executed once, every up's down once */
	char *twice = itest_fires_twice(e.db, "%", NULL);
	ck_assert_msg(!twice, "fires with two rows: %s", twice);
	char *rows = itest_scalar(e.db, "SELECT count(*) FILTER (WHERE job_name = 'up') || ' ' || "
	                                "count(*) FILTER (WHERE job_name = 'down') "
	                                "FROM pgcrond.job_run_details WHERE status = 'succeeded'");
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FILTER (WHERE job = 'up') || ' ' || "
	                    "count(*) FILTER (WHERE job = 'down') FROM execs",
	                    rows);
	free(rows);
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM (SELECT graph_run FROM pgcrond.job_run_details "
	                    "GROUP BY graph_run HAVING count(*) FILTER (WHERE job_name = 'down') "
	                    "> 1) d",
	                    "0");
	itest_env_teardown(&e);
}
END_TEST

/* The history writer's connection goes silent while runs keep ending: its
 * batch gets no answer within connection_check, it reconnects, and the records of the runs
 * meanwhile are written, once each. The jobs run on the unix socket; only the history goes
 * through the relay. */
START_TEST(silent_history_connection_is_replaced)
{
	struct itest_env e;
	int port = 0;

	itest_env_setup(&e, "conn_hist", "it_conn_hist");
	pid_t relay = itest_relay_start(e.ci, &port);
	itest_exec(e.db, "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp())");
	itest_write_file(e.conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "connection_check = \"4s\";\n"
	                 "databases = {\n"
	                 "  app = { conninfo = \"%s\"; pool = 2; };\n"
	                 "  far = { conninfo = \"host=127.0.0.1 port=%d user=postgres "
	                 "dbname=it_conn_hist\"; pool = 1; };\n"
	                 "};\n"
	                 "history = { database = \"far\"; };\n",
	                 e.dir, e.dir, e.ci, port);
	itest_env_job(&e, "10-tick.conf",
	              "job = { name = \"tick\"; database = \"app\"; schedule = \"* * * * * *\";\n"
	              "        command = \"INSERT INTO ticks DEFAULT VALUES\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) >= 2 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND status = 'succeeded'"),
	              "no history through the relay:\n%s", itest_read_file(e.log));
	kill(relay, SIGUSR1); /* the history's connection is now silent */
	itest_sleep(0.5);
	char *frozen = itest_scalar(e.db, "SELECT clock_timestamp()::text");

	/* runs that started after it went silent get their rows within the connection check
	 * (4 s) plus a reconnect, not after a minute */
	ck_assert_msg(itest_env_wait(&e, 12,
	                             "SELECT count(*) >= 2 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND status = 'succeeded' "
	                             "AND start_time > '%s'",
	                             frozen),
	              "the history did not come back after its connection went silent:\n%s",
	              itest_read_file(e.log));
	char *log = itest_read_file(e.log);
	ck_assert_msg(strstr(log, "dbname=it_conn_hist host=127.0.0.1") &&
	                  strstr(log, "connection lost: no answer within"),
	              "%s", log);
	free(log);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	/* one row per run: nothing lost, nothing doubled, nothing left running */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE job_name = 'tick' AND status = 'succeeded'"),
	                 itest_env_count(&e, "SELECT count(*) FROM ticks"));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE status = 'running'"),
	                 0);
	free(frozen);
	itest_relay_stop(relay);
	itest_env_teardown(&e);
}
END_TEST

/* Host names are resolved by the daemon (evdns, off the loop) and handed to libpq as
 * addresses: a conninfo naming localhost works, a name that does not resolve is skipped in a
 * multi-host list, and when no name resolves the run fails at once with the resolver's
 * words, while the other jobs keep running. */
START_TEST(host_names_are_resolved)
{
	struct itest_env e;
	int port = 0;
	char dbs[512];

	itest_env_setup(&e, "conn_dns", "it_conn_dns");
	pid_t relay = itest_relay_start(e.ci, &port);
	itest_exec(e.db, "CREATE TABLE ticks (db text, at timestamptz DEFAULT clock_timestamp())");
	snprintf(dbs, sizeof(dbs),
	         "  named = { conninfo = \"host=localhost port=%d user=postgres "
	         "dbname=it_conn_dns\"; };\n"
	         "  second = { conninfo = \"host=no-such-host.invalid,localhost port=%d "
	         "user=postgres dbname=it_conn_dns\"; };\n"
	         "  nowhere = { conninfo = \"host=no-such-host.invalid port=5432 "
	         "user=postgres dbname=it_conn_dns\"; };\n",
	         port, port);
	write_conf(&e, dbs);
	itest_env_job(
	    &e, "10-named.conf",
	    "job = { name = \"named\"; database = \"named\"; schedule = \"* * * * * *\";\n"
	    "        retries = 0; command = \"INSERT INTO ticks VALUES ('named')\"; };\n");
	itest_env_job(
	    &e, "20-second.conf",
	    "job = { name = \"second\"; database = \"second\"; schedule = \"* * * * * *\";\n"
	    "        retries = 0; command = \"INSERT INTO ticks VALUES ('second')\"; };\n");
	itest_env_job(&e, "30-nowhere.conf",
	              "job = { name = \"nowhere\"; database = \"nowhere\"; "
	              "schedule = \"* * * * * *\";\n"
	              "        retries = 0; command = \"SELECT 1\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 20, "SELECT count(DISTINCT db) = 2 FROM ticks"),
	              "no run through a conninfo naming localhost:\n%s", itest_read_file(e.log));
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) > 0 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'nowhere' AND status = 'failed' "
	                             "AND sqlstate = '08001' AND return_message LIKE "
	                             "'could not translate host name \"no-such-host.invalid\" "
	                             "to address: %%'"),
	              "a host name that does not resolve gave no clear error:\n%s",
	              itest_read_file(e.log));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE job_name IN ('named', 'second') "
	                                     "AND status NOT IN ('succeeded', 'running')"),
	                 0);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	itest_relay_stop(relay);
	itest_env_teardown(&e);
}
END_TEST

/* In the daemon's child, before it drops root: a mount namespace of its own, in which the
 * file ARG stands for /etc/resolv.conf. */
static void bind_resolv_conf(void *arg)
{
	const char *path = arg;
	if (syscall(SYS_unshare, CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount(path, "/etc/resolv.conf", NULL, MS_BIND, NULL) != 0) {
		fprintf(stderr, "it_conn: cannot put %s over /etc/resolv.conf: %s\n", path,
		        strerror(errno));
		_exit(127);
	}
}

/* The nameserver takes the queries and never answers (a resolver down, a firewall that drops
 * DNS). libpq would wait for it in getaddrinfo(), holding up the whole daemon for the
 * resolver's timeout at every connect; the daemon's own lookup waits off the loop and gives
 * up within the connection check, so the other jobs run on time meanwhile. */
START_TEST(silent_nameserver_holds_up_nothing)
{
	struct itest_env e;

	itest_env_setup(&e, "conn_ns", "it_conn_ns");
	/* an address of this process's own (the plain and sanitizer suites run side by side) */
	char addr[32];
	snprintf(addr, sizeof(addr), "127.83.%d.%d", (int)(getpid() >> 8) & 255,
	         (int)(getpid() & 255) | 1);
	int ns = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
	ck_assert_int_eq(inet_pton(AF_INET, addr, &a.sin_addr), 1);
	ck_assert_msg(ns >= 0 && bind(ns, (struct sockaddr *)&a, sizeof(a)) == 0,
	              "cannot bind %s:53 (the test runs as root): %s", addr, strerror(errno));
	char *resolv = itest_env_path(&e, "resolv.conf");
	itest_write_file(resolv, "nameserver %s\noptions timeout:5 attempts:1\n", addr);
	ck_assert_int_eq(chmod(resolv, 0644), 0);
	itest_exec(e.db, "CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp())");
	write_conf(&e, "  slow = { conninfo = \"host=slow-dns.example port=5432 user=postgres "
	               "dbname=it_conn_ns\"; };\n");
	itest_env_job(&e, "10-tick.conf",
	              "job = { name = \"tick\"; schedule = \"* * * * * *\"; retries = 0;\n"
	              "        command = \"INSERT INTO ticks DEFAULT VALUES\"; };\n");
	itest_env_job(&e, "20-slow.conf",
	              "job = { name = \"slow\"; database = \"slow\"; schedule = \"* * * * * *\";\n"
	              "        retries = 0; command = \"SELECT 1\"; };\n");
	e.pid = itest_daemon_start_with(e.conf, e.log, bind_resolv_conf, resolv);
	ck_assert_msg(itest_wait_log(e.log, "started:", 10), "%s", itest_read_file(e.log));
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) > 0 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'slow' AND status = 'failed' "
	                             "AND return_message LIKE 'could not translate host name "
	                             "\"slow-dns.example\" to address: no answer from the "
	                             "nameservers of /etc/resolv.conf%%'"),
	              "a lookup with no answer gave no clear error:\n%s", itest_read_file(e.log));
	/* meanwhile the lookups go on: the ticks of the next 6 s all start on time */
	char *from = itest_scalar(e.db, "SELECT clock_timestamp()::text");
	/* (the window's 6 s and 5 s more: true as soon as four of its ticks started on time) */
	ck_assert_msg(itest_env_wait(&e, 11,
	                             "SELECT count(*) >= 4 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND scheduled_time > '%s' "
	                             "AND scheduled_time < '%s'::timestamptz + interval '6 s' "
	                             "AND start_time < scheduled_time + interval '1.5 s'",
	                             from, from),
	              "ticks were held up while a lookup waited:\n%s", itest_read_file(e.log));
	free(from);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	close(ns);
	free(resolv);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("conn");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, silent_idle_connection_is_replaced);
	tcase_add_test(tc, connect_that_never_answers_fails_within_the_check);
	tcase_add_test(tc, runs_wait_for_a_connection_when_the_server_refuses_more);
	tcase_add_test(tc, runs_wait_for_a_slot_when_the_server_takes_none);
	tcase_add_test(tc, a_new_reason_to_refuse_is_logged_at_once);
	tcase_add_test(tc, idle_connections_close_but_one);
	tcase_add_test(tc, idle_connection_killed_by_the_server_fails_no_run);
	tcase_add_test(tc, silent_listener_is_replaced);
	tcase_add_test(tc, silent_run_is_found_and_a_long_one_left_alone);
	suite_add_tcase(s, tc);
	TCase *td = tcase_create("dns");
	tcase_set_timeout(td, 60);
	tcase_add_test(td, host_names_are_resolved);
	tcase_add_test(td, silent_nameserver_holds_up_nothing);
	suite_add_tcase(s, td);
	TCase *ts = tcase_create("stop"); /* CK_RUN_CASE=stop runs it alone */
	tcase_set_timeout(ts, 120);
	tcase_add_test(ts, a_stop_waits_only_for_statements_on_the_server);
	suite_add_tcase(s, ts);
	/* a case of its own, so that CK_RUN_CASE=history runs it alone */
	TCase *th = tcase_create("history");
	tcase_set_timeout(th, 120);
	tcase_add_test(th, silent_history_connection_is_replaced);
	suite_add_tcase(s, th);
	TCase *tu = tcase_create("used");
	tcase_set_timeout(tu, 120);
	tcase_add_test(tu, used_connection_killed_by_the_server_fails_no_run);
	suite_add_tcase(s, tu);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
