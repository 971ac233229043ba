/* How many sessions pgcrond holds on a database: its own work (the
 * history's records, the claims and heartbeats, the LISTENs of the jobs, of the SQL jobs'
 * changes and of manual triggers) shares one session per database (ownsess.h), and runs use
 * the pool. At rest, one database with three jobs (one listening) costs at most two
 * sessions: that one and one warm run connection. */
#include <check.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"
#include "ownsess.h"

/* The own session of a history database whose schema is older, named APP (for
 * itest_env_wait: '%%'): its last statement read pgcrond's schema, or was its connection
 * check, where the pool's ran the jobs' commands or their resets. */
#define HELD_SESSION(app)                                                                          \
	" FROM pg_stat_activity WHERE datname = current_database() AND application_name = '" app   \
	"' AND (query = 'SELECT 1' OR query LIKE '%%pgcrond.%%')"

/* Every client session on E's database but the test's own. */
#define SESSIONS_SQL                                                                               \
	"FROM pg_stat_activity WHERE datname = current_database()"                                 \
	" AND backend_type = 'client backend' AND pid <> pg_backend_pid()"

START_TEST(at_rest_two_sessions)
{
	struct itest_env e;
	itest_env_setup(&e, "sessions-rest", "it_sessions_rest");
	/* pool = 1: the pool keeps a connection it opened for runs side by side open while
	 * idle (closing idle ones is not built yet), and what is counted here is pgcrond's own
	 * work, which took five sessions of the database before it shared one */
	itest_write_file(e.conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = { app = { conninfo = \"%s\"; pool = 1; }; };\n"
	                 "history = { database = \"app\"; };\n",
	                 e.dir, e.dir, e.ci);
	itest_exec(e.db, "CREATE TABLE public.ran (job text, at timestamptz DEFAULT"
	                 " clock_timestamp()); GRANT ALL ON public.ran TO PUBLIC");
	/* two scheduled jobs that never fire at the same instant (so one run connection serves
	 * both), and one that listens */
	itest_env_job(&e, "10-jobs.conf",
	              "jobs = (\n"
	              "  { name = \"tick\"; command = \"INSERT INTO public.ran (job) VALUES"
	              " ('tick')\"; database = \"app\"; schedule = \"*/4 * * * * *\"; },\n"
	              "  { name = \"tock\"; command = \"INSERT INTO public.ran (job) VALUES"
	              " ('tock')\"; database = \"app\"; schedule = \"2-58/4 * * * * *\"; },\n"
	              "  { name = \"ev\"; command = \"INSERT INTO public.ran (job) VALUES"
	              " ('ev')\"; database = \"app\"; listen = \"it_sessions_ch\";"
	              " debounce = \"200ms\"; }\n"
	              ");\n");
	itest_env_start(&e);
	ck_assert_msg(itest_env_listening(&e, 15), "the daemon does not listen:\n%s",
	              itest_read_file(e.log));
	itest_exec(e.db, "SELECT pg_notify('it_sessions_ch', 'x')");
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) FILTER (WHERE job = 'ev') >= 1"
	                             " AND count(*) FILTER (WHERE job = 'tick') >= 2"
	                             " AND count(*) FILTER (WHERE job = 'tock') >= 2"
	                             " FROM public.ran"),
	              "the jobs did not run:\n%s", itest_read_file(e.log));
	/* the retention's statements go on pgcrond's own session too: no session of its own,
	 * at the start or later (it_retention) */
	ck_assert_msg(itest_env_count(&e, "SELECT count(*) " SESSIONS_SQL) <= 2,
	              "more than 2 sessions: %s",
	              itest_scalar(e.db, "SELECT string_agg(application_name || ': ' ||"
	                                 " left(query, 60), '; ') " SESSIONS_SQL));
	/* and so it stays, over runs of both scheduled jobs and a notification */
	long long most = 0;
	char *seen = NULL;
	for (int i = 0; i < 24; i++) {
		if (i == 8)
			itest_exec(e.db, "SELECT pg_notify('it_sessions_ch', 'y')");
		long long n = itest_env_count(&e, "SELECT count(*) " SESSIONS_SQL);
		if (n > most) {
			most = n;
			free(seen);
			seen = itest_scalar(e.db, "SELECT string_agg(application_name || ': ' ||"
			                          " left(query, 60), '; ') " SESSIONS_SQL);
		}
		itest_sleep(0.25);
	}
	ck_assert_msg(most <= 2, "%lld sessions at rest: %s", most, seen ? seen : "");
	free(seen);
	/* one of them is pgcrond's own session, the one holding the instance's name */
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(*) " SESSIONS_SQL
	                        " AND application_name = 'pgcrond' AND " ITEST_OWN_SESSIONS),
	    1);
	ck_assert_msg(
	    itest_env_wait(&e, 10, "SELECT count(*) >= 2 FROM public.ran WHERE job = 'ev'"),
	    "the second notification did not run ev:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_count(&e,
	                                 "SELECT count(*) FROM pgcrond.job_run_details"
	                                 " WHERE status <> 'succeeded' AND end_time IS NOT NULL"),
	                 0);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A database that refuses more than three of pgcrond's connections (the role's CONNECTION
 * LIMIT: other sessions hold the rest of the server): pgcrond's own work takes one, the pool
 * gets the others, and runs due together wait for a pool connection instead of failing. */
/* E: a database whose role takes at most three connections (its CONNECTION LIMIT: other
 * sessions hold the rest of the server), pool 4, six runs due every second. */
static void slots_env(struct itest_env *e, const char *name, const char *db)
{
	itest_env_setup(e, name, db);
	itest_exec(e->db, "DO $$ BEGIN CREATE ROLE it_sessions_lim LOGIN;"
	                  " EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
	                  "ALTER ROLE it_sessions_lim CONNECTION LIMIT 3;"
	                  /* the privileges of the role that installed pgcrond */
	                  "DO $$ BEGIN EXECUTE pg_catalog.format('GRANT %I TO it_sessions_lim',"
	                  " current_user); END $$");
	itest_write_file(
	    e->conf,
	    "timezone = \"UTC\";\n"
	    "plugin_dir = \"%s/plugins\";\n"
	    "conf_dir = \"conf.d\";\n"
	    "state_dir = \"%s/state\";\n"
	    "databases = { app = { conninfo = \"%s user=it_sessions_lim\"; pool = 4; };"
	    " };\n"
	    "history = { database = \"app\"; };\n",
	    e->dir, e->dir, e->ci);
	/* six runs due every second, more than the connections the server leaves the pool */
	char jobs[2048] = "jobs = (\n";
	for (int i = 0; i < 6; i++) {
		char job[256];
		snprintf(job, sizeof(job),
		         "  { name = \"j%d\"; command = \"SELECT pg_sleep(0.2)\";"
		         " database = \"app\"; schedule = \"* * * * * *\"; timeout = \"30s\";"
		         " retries = 0; }%s\n",
		         i, i < 5 ? "," : "");
		strncat(jobs, job, sizeof(jobs) - strlen(jobs) - 1);
	}
	strncat(jobs, ");\n", sizeof(jobs) - strlen(jobs) - 1);
	itest_env_job(e, "10-jobs.conf", "%s", jobs);
}

START_TEST(few_free_slots_no_run_fails)
{
	struct itest_env e;
	slots_env(&e, "sessions-slots", "it_sessions_slots");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 90,
	                             "SELECT count(*) >= 100 FROM pgcrond.job_run_details"
	                             " WHERE status = 'succeeded'"),
	              "fewer than 100 runs succeeded:\n%s", itest_tail(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	char *failed = itest_scalar(e.db, "SELECT count(*) || ' ' || coalesce(string_agg(DISTINCT"
	                                  " left(return_message, 120), '; '), '')"
	                                  " FROM pgcrond.job_run_details WHERE status = 'failed'");
	ck_assert_msg(failed && strncmp(failed, "0 ", 2) == 0, "runs failed: %s\n%s",
	              failed ? failed : "?", itest_tail(e.log));
	free(failed);
	/* the server did refuse the pool more connections: the slots were few */
	ck_assert_msg(itest_wait_log(e.log, "too many connections", 1),
	              "the server never refused a connection:\n%s", itest_tail(e.log));
	itest_env_teardown(&e);
}
END_TEST

/* The same server, and pgcrond's own session loses its slot to another session of the role
 * (its backend ended, the slot taken at once): when a slot frees, the own session gets it, not
 * the pool, whose runs wait for it (a run's connection given back is closed for it while it
 * waits): the history and the claims need it. (Which connect reaches a freed slot first is a
 * race; under AddressSanitizer the pool can win every slot at a start, and the history would
 * never come back: few_free_slots_no_run_fails.) */
START_TEST(own_session_gets_a_slot_back)
{
	struct itest_env e;
	slots_env(&e, "sessions-back", "it_sessions_back");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) >= 12 FROM pgcrond.job_run_details"
	                             " WHERE status = 'succeeded'"),
	              "no runs:\n%s", itest_tail(e.log));
	char other_ci[1400];
	snprintf(other_ci, sizeof(other_ci), "%s user=it_sessions_lim", e.ci);
	long long own = itest_scalar_ll(e.db, "SELECT backend_pid FROM pgcrond.instance");
	char sql[160];
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%lld)", own);
	PGconn *other = NULL;
	for (int i = 0; i < 50 && !other; i++) { /* take the slot the own session leaves */
		PQclear(PQexec(e.db, sql));
		PGconn *c = PQconnectdb(other_ci);
		if (PQstatus(c) == CONNECTION_OK)
			other = c;
		else
			PQfinish(c);
	}
	ck_assert_msg(other != NULL, "could not take the own session's slot:\n%s",
	              itest_tail(e.log));
	ck_assert_msg(itest_wait_log(e.log, "history database", 10), "%s", itest_tail(e.log));
	itest_sleep(3); /* runs go on meanwhile, recorded in the spill file */
	PQfinish(other);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT backend_pid IS NOT NULL AND backend_pid <> %lld"
	                             " AND EXISTS (SELECT FROM pg_stat_activity a"
	                             "  WHERE a.pid = backend_pid) FROM pgcrond.instance",
	                             own),
	              "the own session did not come back:\n%s", itest_tail(e.log));
	long long later = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                      " WHERE start_time > now() - interval '2 s'");
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) > %lld FROM pgcrond.job_run_details"
	                             " WHERE status = 'succeeded'",
	                             later),
	              "the history does not go on:\n%s", itest_tail(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A history database whose pgcrond schema is older than this pgcrond (steps 1 to 22 applied
 * by hand) is a database away: the daemon says once what it has, what it needs and what to
 * do, writes nothing there (no run record, no claim, no instance row), and its runs go on,
 * their records kept in the spool. After 'pgcrond install', run while runs are in flight
 * (one statement, several, a procedure, a DO block, a VACUUM), every run that ran is in the
 * history exactly once, and so is its effect. */
/* Jobs "tick" (every second) and "slow" (1.5 s, overlap skip) that insert into public.ran:
 * "slow" lasts 1.5 s, so one is in flight whenever the install comes. */
static const char old_schema_jobs[] =
    "jobs = (\n"
    "  { name = \"tick\"; command = \"INSERT INTO public.ran (job) VALUES ('tick')\";"
    " database = \"app\"; schedule = \"* * * * * *\"; },\n"
    "  { name = \"slow\"; command = \"SELECT pg_sleep(1.5); INSERT INTO public.ran (job)"
    " VALUES ('slow')\"; database = \"app\"; schedule = \"* * * * * *\";"
    " overlap = \"skip\"; } );\n";

/* E's database with pgcrond's schema up to step 22 only, and old_schema_jobs. */
static void old_schema_setup(struct itest_env *e, const char *name, const char *db)
{
	itest_env_init(e, name, db);
	for (int v = 1; v <= 22; v++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/../sql/pgcrond--%d.sql", TEST_SOURCE_DIR, v);
		char *sql = itest_read_file(path);
		if (sql[0])
			itest_exec(e->db, sql);
		free(sql);
	}
	itest_exec(e->db, "GRANT USAGE ON SCHEMA pgcrond TO PUBLIC;"
	                  "GRANT ALL ON ALL TABLES IN SCHEMA pgcrond TO PUBLIC;"
	                  "GRANT ALL ON ALL SEQUENCES IN SCHEMA pgcrond TO PUBLIC;"
	                  "CREATE TABLE public.ran (job text, at timestamptz DEFAULT"
	                  " clock_timestamp()); GRANT ALL ON public.ran TO PUBLIC");
	itest_env_job(e, "10-jobs.conf", "%s", old_schema_jobs);
}

/* A run of "slow" (old_schema_jobs) is in flight. */
static void slow_in_flight(struct itest_env *e)
{
	ck_assert_msg(itest_env_wait(e, 10,
	                             "SELECT count(*) > 0 FROM pg_stat_activity"
	                             " WHERE query LIKE 'SELECT pg_sleep(1.5)%%'"),
	              "no run in flight:\n%s", itest_tail(e->log));
}

/* Runs of the kinds the executor sends on their own, as written (sqlscan.h): a procedure
 * that commits inside, a DO block, a VACUUM and several statements, every second on "kinds"
 * (E's database under a second name, with a pool of its own). Each first waits for a lock on
 * public.gate, which the test holds through an install; its effect is a row of public.ran
 * (the VACUUM's: a vacuum of public.gate, ran_once_each). */
#define N_KINDS 4
static const struct {
	const char *job, *command;
} kinds[N_KINDS] = {
    {"k_call", "CALL public.k_call()"},
    {"k_do", "DO $$ BEGIN PERFORM count(*) FROM public.gate;"
             " INSERT INTO public.ran (job) VALUES ('k_do'); END $$"},
    {"k_vacuum", "VACUUM public.gate"},
    {"k_multi", "SELECT count(*) FROM public.gate; INSERT INTO public.ran (job) VALUES"
                " ('k_multi')"},
};

/* E (old_schema_setup) with the kinds' jobs too; public.ran records each insert's backend. */
static void kinds_setup(struct itest_env *e)
{
	char jobs[2048];
	size_t n = 0;
	itest_env_main_with_db(e, "kinds", e->ci);
	itest_exec(e->db, "CREATE TABLE public.gate (x int); GRANT ALL ON public.gate TO PUBLIC;"
	                  "ALTER TABLE public.ran ADD COLUMN pid int DEFAULT pg_backend_pid();"
	                  "CREATE PROCEDURE public.k_call() LANGUAGE plpgsql AS $p$ BEGIN"
	                  " PERFORM count(*) FROM public.gate;"
	                  " INSERT INTO public.ran (job) VALUES ('k_call'); COMMIT; END $p$");
	n += snprintf(jobs + n, sizeof(jobs) - n, "jobs = (\n");
	for (int i = 0; i < N_KINDS; i++)
		n += snprintf(jobs + n, sizeof(jobs) - n,
		              "  { name = \"%s\"; command = \"%s\"; database = \"kinds\";"
		              " schedule = \"* * * * * *\"; overlap = \"skip\"; }%s\n",
		              kinds[i].job, kinds[i].command, i + 1 < N_KINDS ? "," : ");");
	ck_assert(n < sizeof(jobs));
	itest_env_job(e, "20-kinds.conf", "%s", jobs);
}

/* Each kind's run waits for the lock on public.gate (held by the test); PIDS gets their
 * backends (malloc'd). */
static void kinds_in_flight(struct itest_env *e, char *pids[N_KINDS])
{
	for (int i = 0; i < N_KINDS; i++) {
		char sql[512];
		snprintf(sql, sizeof(sql),
		         "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
		         " AND state = 'active' AND wait_event_type = 'Lock'"
		         " AND query = $k$%s$k$",
		         kinds[i].command);
		ck_assert_msg(itest_env_wait(e, 10, "SELECT EXISTS (%s)", sql),
		              "no run of %s in flight:\n%s", kinds[i].job, itest_tail(e->log));
		pids[i] = itest_scalar(e->db, sql);
	}
}

/* The run of each kind in flight at AT (its backend in PIDS) has one history row, which
 * says it succeeded, and its insert (which the lock held until after AT) happened once. */
static void kinds_ran_once(struct itest_env *e, char *const pids[N_KINDS], const char *at)
{
	for (int i = 0; i < N_KINDS; i++) {
		char run[512], sql[1024];
		snprintf(run, sizeof(run),
		         "FROM pgcrond.job_run_details WHERE job_name = '%s' AND job_pid = %s"
		         " AND start_time < '%s' AND end_time > '%s'",
		         kinds[i].job, pids[i], at, at);
		snprintf(sql, sizeof(sql), "SELECT count(*) || ' ' || string_agg(status, ' ') %s",
		         run);
		itest_assert_scalar(e->db, sql, "1 succeeded");
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) FROM public.ran WHERE job = '%s' AND pid = %s"
		         " AND at > '%s' AND at < (SELECT end_time %s)",
		         kinds[i].job, pids[i], at, run);
		if (strcmp(kinds[i].job, "k_vacuum") != 0)
			itest_assert_scalar(e->db, sql, "1");
		free(pids[i]);
	}
}

/* `pgcrond install` with E's configuration, which must work. */
static void install(struct itest_env *e)
{
	int status;
	char *out = itest_cli(&status, "install", "-c", e->conf, NULL);
	ck_assert_msg(status == 0, "install: %d %s", status, out);
	free(out);
}

/* No run is in the history twice, and each job's inserts (k_vacuum's vacuums) are its
 * succeeded rows. */
static void ran_once_each(struct itest_env *e)
{
	itest_assert_scalar(e->db,
	                    "SELECT count(*) = count(DISTINCT (instance, run_key))"
	                    " FROM pgcrond.job_run_details",
	                    "t");
	char *recorded = itest_scalar(e->db, "SELECT string_agg(job_name || ' ' || n, ', '"
	                                     " ORDER BY job_name) FROM (SELECT job_name,"
	                                     " count(*) n FROM pgcrond.job_run_details"
	                                     " WHERE status = 'succeeded' GROUP BY job_name) d");
	itest_assert_scalar(e->db,
	                    "SELECT string_agg(job || ' ' || n, ', ' ORDER BY job) FROM"
	                    " (SELECT job, count(*) n FROM public.ran GROUP BY job"
	                    "  UNION ALL SELECT 'k_vacuum', vacuum_count FROM pg_stat_user_tables"
	                    "  WHERE relid = to_regclass('public.gate') AND vacuum_count > 0) r",
	                    recorded);
	free(recorded);
}

START_TEST(old_schema_keeps_runs_in_the_spool)
{
	struct itest_env e;
	char *pids[N_KINDS];
	old_schema_setup(&e, "sessions-old", "it_sessions_old");
	kinds_setup(&e);
	itest_env_start(&e);
	char line[256];
	snprintf(line, sizeof(line),
	         "has pgcrond schema step 22, this pgcrond needs step %d: run 'pgcrond install' "
	         "(runs are kept in the spool until then)",
	         PGCROND_SCHEMA_STEP);
	ck_assert_msg(itest_wait_log(e.log, line, 15), "not said: %s\n%s", line, itest_tail(e.log));
	ck_assert_msg(
	    itest_env_wait(&e, 20, "SELECT count(*) >= 3 FROM public.ran WHERE job = 'slow'"),
	    "the runs do not go on:\n%s", itest_tail(e.log));
	itest_assert_scalar(e.db,
	                    "SELECT (SELECT count(*) FROM pgcrond.job_run_details)"
	                    " + (SELECT count(*) FROM pgcrond.fire_claim)"
	                    " + (SELECT count(*) FROM pgcrond.instance)",
	                    "0");
	ck_assert_int_eq(itest_count_in_file(e.log, "this pgcrond needs step"), 1);

	/* a run of each kind in flight through the install, and one of "slow" at its start */
	PGconn *gate = itest_connect(e.ci);
	itest_exec(gate, "BEGIN; LOCK TABLE public.gate IN ACCESS EXCLUSIVE MODE");
	kinds_in_flight(&e, pids);
	slow_in_flight(&e);
	char *at = itest_scalar(e.db, "SELECT now()::text");
	install(&e);
	itest_exec(gate, "COMMIT");
	PQfinish(gate);
	ck_assert_msg(
	    itest_wait_log(e.log, "has the pgcrond schema step this pgcrond needs now", 20),
	    "the spool is not written after the install:\n%s", itest_tail(e.log));
	itest_sleep(3);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	/* every run that ran once in the history, and no other */
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.job_run_details"
	                    " WHERE status NOT IN ('succeeded', 'skipped')",
	                    "0");
	kinds_ran_once(&e, pids, at);
	/* the vacuums counted (a server before 15 tells them a moment later) */
	ck_assert_msg(itest_env_wait(&e, 5,
	                             "SELECT vacuum_count = (SELECT count(*) FROM"
	                             " pgcrond.job_run_details WHERE job_name = 'k_vacuum'"
	                             " AND status = 'succeeded') FROM pg_stat_user_tables"
	                             " WHERE relid = 'public.gate'::regclass"),
	              "the vacuums are not the succeeded runs of k_vacuum");
	ran_once_each(&e);
	free(at);
	itest_env_teardown(&e);
}
END_TEST

/* E, with pgcrond.instance holding a row of instance NAME last seen AGO, whose last process
 * did (STOPPED) or did not stop cleanly: the daemon says SAID, runs nothing meanwhile and
 * says so, and runs once `pgcrond install` is done; a run in flight at the stop, every run
 * recorded once. */
static void refused_until_install(struct itest_env *e, const char *name, const char *ago,
                                  bool stopped, const char *said)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "INSERT INTO pgcrond.instance (name, boot_id, last_seen, stopped_at)"
	         " VALUES ('%s', 'b1', now() - interval '%s', %s)",
	         name, ago, stopped ? "now() - interval '1 minute'" : "NULL");
	itest_exec(e->db, sql);
	itest_env_start(e);
	ck_assert_msg(itest_wait_log(e->log, said, 15), "not said: %s\n%s", said,
	              itest_tail(e->log));
	itest_sleep(4); /* four fires of each job */
	itest_assert_scalar(e->db, "SELECT count(*) FROM public.ran", "0");
	ck_assert_msg(itest_wait_log(e->log, "a fire runs only where it is claimed", 5),
	              "the fires' refusal is not said:\n%s", itest_tail(e->log));
	install(e);
	ck_assert_msg(
	    itest_env_wait(e, 20, "SELECT count(*) >= 3 FROM public.ran WHERE job = 'tick'"),
	    "no run after the install:\n%s", itest_tail(e->log));
	/* a run of "slow" in flight at the stop */
	slow_in_flight(e);
	ck_assert_int_eq(itest_env_stop(e, SIGTERM, 15), 0);
	ran_once_each(e);
	itest_env_teardown(e);
}

/* A rolling upgrade: another instance (not upgraded yet) used the history database, whose
 * schema is older than this pgcrond's. This one runs nothing unclaimed meanwhile (the other
 * may be claiming the same fires there), says so, and runs once `pgcrond install` is done. */
START_TEST(old_schema_shared_runs_nothing_unclaimed)
{
	struct itest_env e;
	old_schema_setup(&e, "sessions-old2", "it_sessions_old2");
	refused_until_install(&e, "not-upgraded", "2 days", true,
	                      "cluster: instances not-upgraded used the history database");
}
END_TEST

/* This instance's last process was killed (its row not stopped) and the schema is older: the
 * statement that takes the name, which would end the runs that process left at work, cannot
 * run, so no fire runs here until `pgcrond install`. */
START_TEST(old_schema_after_a_kill_waits_for_install)
{
	struct itest_env e;
	char host[256] = "";
	ck_assert_int_eq(gethostname(host, sizeof(host) - 1), 0);
	old_schema_setup(&e, "sessions-old3", "it_sessions_old3");
	refused_until_install(&e, host, "1 hour", false,
	                      "(its last process did not stop cleanly) used the history database");
}
END_TEST

/* A database held by its older schema is waited on, not polled: the daemon keeps one idle
 * session on it (never a reconnect meanwhile), and `pgcrond install`, run while a run is in
 * flight, wakes it: the instance running its fires unclaimed takes its name on that same
 * session within a second or two, so an up-to-date instance started right after the install
 * finds it there, and no fire runs on both (a session that gave its connection up and
 * connected again every second or so would leave the instance unclaimed until it did). */
START_TEST(old_schema_install_wakes_the_session)
{
	struct itest_env e;
	old_schema_setup(&e, "sessions-old4", "it_sessions_old4");
	itest_env_main(&e, "http = { listen = \"127.0.0.1:0\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(itest_wait_log(e.log, "run 'pgcrond install' (runs are kept", 15),
	              "the older schema is not said:\n%s", itest_tail(e.log));
	ck_assert_msg(
	    itest_env_wait(&e, 20, "SELECT count(*) >= 3 FROM public.ran WHERE job = 'tick'"),
	    "the runs do not go on unclaimed:\n%s", itest_tail(e.log));
	/* the own session, held */
	ck_assert_msg(itest_env_wait(&e, 5, "SELECT count(*) = 1" HELD_SESSION("pgcrond")),
	              "no own session:\n%s", itest_tail(e.log));
	const char *own = "SELECT pg_catalog.string_agg(pid::text || ' ' || backend_start::text,"
	                  " ', ')" HELD_SESSION("pgcrond");
	char *before = itest_scalar(e.db, own);
	itest_sleep(4);
	char *after = itest_scalar(e.db, own);
	ck_assert_msg(after && strcmp(before, after) == 0,
	              "the own session did not stay while the schema is older: %s, then %s:\n%s",
	              before, after ? after : "none", itest_tail(e.log));
	itest_assert_scalar(e.db,
	                    "SELECT (SELECT count(*) FROM pgcrond.job_run_details)"
	                    " + (SELECT count(*) FROM pgcrond.fire_claim)"
	                    " + (SELECT count(*) FROM pgcrond.instance)",
	                    "0");
	/* /health says why (the session held has the answer: no SELECT 1 waits for it) */
	int code = 0;
	char *health = itest_env_http(&e, "/health", &code);
	ck_assert_msg(code == 503 && strstr(health, "this pgcrond needs step"), "%d %s", code,
	              health);
	free(health);

	/* a run of "slow" in flight at the install */
	slow_in_flight(&e);
	install(&e);
	struct itest_inst b;
	itest_inst_init(&b, &e, "upgraded", old_schema_jobs);
	itest_inst_start(&b);
	char *since = itest_scalar(e.db, "SELECT now()::text");
	/* the name taken on the session held (the instance row records its backend) */
	ck_assert_msg(itest_env_wait(&e, 2,
	                             "SELECT count(*) = 1 FROM pgcrond.instance i"
	                             " JOIN pg_stat_activity a ON a.pid = i.backend_pid"
	                             " WHERE i.name <> 'upgraded' AND pg_catalog.strpos('%s',"
	                             " a.pid::text || ' ' || a.backend_start::text) > 0",
	                             before),
	              "the instance did not take its name on its session within 2 s of the "
	              "install:\n%s",
	              itest_tail(e.log));
	ck_assert_msg(itest_inst_wait_started(&b, 20), "%s", itest_tail(b.log));
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(DISTINCT instance) = 2 FROM"
	                             " pgcrond.job_run_details WHERE job_name = 'tick'"
	                             " AND status = 'succeeded' AND start_time > '%s'",
	                             since),
	              "both instances do not run tick:\n%s\n%s", itest_tail(e.log),
	              itest_tail(b.log));
	itest_sleep(3);
	ck_assert_int_eq(itest_inst_stop(&b, SIGTERM), 0);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	char *twice = itest_fires_twice(e.db, "tick", NULL);
	ck_assert_msg(twice == NULL, "fires ran twice: %s\n%s\n%s", twice, itest_tail(e.log),
	              itest_tail(b.log));
	ran_once_each(&e);
	free(before);
	free(after);
	free(since);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* A session held by an older schema is still checked: when its connection goes silent (a NAT
 * that forgot it) the daemon notices within connection_check, connects again and is held on
 * the new connection, and `pgcrond install` wakes that one. The history goes through a relay;
 * the jobs run on the unix socket. */
START_TEST(old_schema_silent_held_session_is_replaced)
{
	struct itest_env e;
	int port = 0;
	old_schema_setup(&e, "sessions-old5", "it_sessions_old5");
	pid_t relay = itest_relay_start(e.ci, &port);
	itest_write_file(e.conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "connection_check = \"4s\";\n"
	                 "databases = {\n"
	                 "  app = { conninfo = \"%s\"; pool = 2; };\n"
	                 "  far = { conninfo = \"host=127.0.0.1 port=%d user=postgres "
	                 "dbname=it_sessions_old5 application_name=held\"; pool = 1; };\n"
	                 "};\n"
	                 "history = { database = \"far\"; };\n",
	                 e.dir, e.dir, e.ci, port);
	itest_env_start(&e);
	ck_assert_msg(itest_wait_log(e.log, "run 'pgcrond install' (runs are kept", 15),
	              "the older schema is not said:\n%s", itest_tail(e.log));
	/* the history's session, through the relay (as the pool's warm connection of "far", on
	 * which no job runs) */
	ck_assert_msg(itest_env_wait(&e, 5, "SELECT count(*) = 1" HELD_SESSION("held")),
	              "no session held:\n%s", itest_tail(e.log));
	char *before = itest_scalar(e.db, "SELECT pid::text" HELD_SESSION("held"));
	slow_in_flight(&e);
	kill(relay, SIGUSR1); /* the held connection is now silent, a run of "slow" in flight */
	ck_assert_msg(itest_wait_log(e.log, "connection lost: no answer within", 12),
	              "the silent held connection was not noticed:\n%s", itest_tail(e.log));
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1" HELD_SESSION("held") " AND pid <> %s",
	                             before),
	              "no new session held:\n%s", itest_tail(e.log));
	install(&e);
	ck_assert_msg(
	    itest_wait_log(e.log, "has the pgcrond schema step this pgcrond needs now", 3),
	    "the install did not wake the new session:\n%s", itest_tail(e.log));
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) >= 3 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'tick'"),
	              "the spool is not written:\n%s", itest_tail(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	ran_once_each(&e);
	free(before);
	itest_relay_stop(relay);
	itest_env_teardown(&e);
}
END_TEST

/* The statement that takes the instance's name fails (here a trigger refuses it): the own
 * session stays, and with it the history's writes and the LISTENs; the name is asked for
 * again, and taken on that same session once the statement works. */
START_TEST(failed_lock_keeps_the_session)
{
	struct itest_env e;
	itest_env_setup(&e, "sessions-lock", "it_sessions_lock");
	itest_exec(e.db, "CREATE FUNCTION public.no_name() RETURNS trigger LANGUAGE plpgsql"
	                 " SET search_path = pg_catalog AS $f$ BEGIN"
	                 "  RAISE EXCEPTION 'no name today'; END $f$;"
	                 "CREATE TRIGGER no_name BEFORE INSERT OR UPDATE ON pgcrond.instance"
	                 " FOR EACH ROW EXECUTE FUNCTION public.no_name()");
	itest_env_job(&e, "10-jobs.conf",
	              "job = { name = \"ev\"; command = \"SELECT 1\"; database = \"app\";"
	              " listen = \"it_sessions_lock\"; debounce = \"200ms\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(itest_wait_log(e.log, "no name today", 15), "%s", itest_tail(e.log));
	ck_assert_msg(itest_env_listening(&e, 10), "the daemon does not listen:\n%s",
	              itest_tail(e.log));
	const char *own = "SELECT pg_catalog.string_agg(pid::text || ' ' || backend_start::text,"
	                  " ', ') FROM pg_stat_activity WHERE datname = current_database()"
	                  " AND application_name = 'pgcrond'";
	char *before = itest_scalar(e.db, own);
	ck_assert_msg(before != NULL, "no session of pgcrond:\n%s", itest_tail(e.log));
	itest_sleep(5); /* a window: the name is asked for again every 2 s meanwhile */
	char *after = itest_scalar(e.db, own);
	ck_assert_msg(after && strcmp(before, after) == 0, "the sessions changed: %s, then %s:\n%s",
	              before, after ? after : "none", itest_tail(e.log));
	itest_exec(e.db, "DROP TRIGGER no_name ON pgcrond.instance");
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 1 FROM pgcrond.instance i"
	                             " JOIN pg_stat_activity a ON a.pid = i.backend_pid"
	                             " WHERE a.application_name = 'pgcrond'"
	                             " AND pg_catalog.strpos('%s', a.pid::text || ' '"
	                             " || a.backend_start::text) > 0",
	                             before),
	              "the name was not taken on the same session:\n%s", itest_tail(e.log));
	/* the listener never reconnected: no run of ev "may have missed" anything */
	ck_assert_int_eq(itest_count_in_file(e.log, "may have been missed"), 0);
	free(before);
	free(after);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* ---- statements that can wait ---------------------------------------------------------- */

/* Two clients of one session: three bulk statements of 0.2 s each (as the parts of the
 * registry of 100,000 jobs are), and another client's stream of short ones (as the history's
 * batches are under a load of runs). */
static struct {
	struct event_base *base;
	struct ownsess_client bulk_cl, other_cl;
	struct ownsess_item bulk[3], other;
	double sent[3], end[3];
	int n_bulk, n_other, n_between; /* answers; the other's while a bulk one waited */
} tn;

static bool bulk_send(struct ownsess_item *it)
{
	tn.sent[it - tn.bulk] = itest_now();
	return ownsess_push(it, 0, "SELECT pg_catalog.pg_sleep(0.2)", 0, NULL);
}

static void bulk_done(struct ownsess_item *it, const struct stmtq_result *r)
{
	ck_assert_msg(!r->failed, "%s", r->err);
	tn.end[it - tn.bulk] = itest_now();
	if (++tn.n_bulk == 3)
		event_base_loopexit(tn.base, NULL);
}

static bool other_send(struct ownsess_item *it)
{
	return ownsess_push(it, 0, "SELECT 1", 0, NULL);
}

static void other_done(struct ownsess_item *it, const struct stmtq_result *r)
{
	ck_assert_msg(!r->failed, "%s", r->err);
	tn.n_other++;
	tn.n_between += tn.n_bulk > 0 && tn.n_bulk < 3;
	if (tn.n_bulk < 3)
		ownsess_queue(&tn.other_cl, it); /* always one due */
}

static void turns_lost(struct ownsess_item *it, const char *why)
{
	ck_abort_msg("a statement was lost: %s", why);
}

/* The bulk statements take at most an eighth of the session's time: after one that took T,
 * the next goes 7 T after its end, and the other client's statements go meanwhile; each of
 * them is answered. */
START_TEST(bulk_statements_take_an_eighth_of_the_session)
{
	static const struct ownsess_ops ops = {0};
	char *ci = itest_conninfo_db("postgres");
	tn.base = event_base_new();
	ck_assert_int_eq(ownsess_join(&tn.bulk_cl, tn.base, ci, &ops, &tn.bulk_cl), 0);
	ck_assert_int_eq(ownsess_join(&tn.other_cl, tn.base, ci, &ops, &tn.other_cl), 0);
	for (int i = 0; i < 3; i++) {
		tn.bulk[i] = (struct ownsess_item){
		    .send = bulk_send, .done = bulk_done, .lost = turns_lost, .bulk = true};
		ownsess_queue(&tn.bulk_cl, &tn.bulk[i]);
	}
	tn.other =
	    (struct ownsess_item){.send = other_send, .done = other_done, .lost = turns_lost};
	ownsess_queue(&tn.other_cl, &tn.other);
	struct timeval limit = {20, 0};
	event_base_loopexit(tn.base, &limit);
	event_base_dispatch(tn.base);

	ck_assert_msg(tn.n_bulk == 3, "bulk answered %d, other %d", tn.n_bulk, tn.n_other);
	for (int i = 1; i < 3; i++) {
		double took = tn.end[i - 1] - tn.sent[i - 1], gap = tn.sent[i] - tn.end[i - 1];
		ck_assert_msg(
		    took >= 0.2 && gap >= 7 * took - 0.01,
		    "bulk statement %d went %.3f s after the one before ended, which took "
		    "%.3f s (at least 7 times that expected)",
		    i, gap, took);
	}
	ck_assert_msg(tn.n_between > 10, "the other client's statements went %d times meanwhile",
	              tn.n_between);
	ownsess_leave(&tn.bulk_cl);
	ownsess_leave(&tn.other_cl);
	event_base_free(tn.base);
	free(ci);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("it_sessions");
	/* an older schema's cases in cases of their own: CK_RUN_CASE=old_schema, =wake */
	TCase *tc = tcase_create("rest"), *old = tcase_create("old_schema");
	TCase *wake = tcase_create("wake");
	tcase_set_timeout(tc, 180);
	tcase_set_timeout(old, 180);
	tcase_set_timeout(wake, 180);
	tcase_add_test(tc, at_rest_two_sessions);
	tcase_add_test(tc, few_free_slots_no_run_fails);
	tcase_add_test(tc, own_session_gets_a_slot_back);
	tcase_add_test(old, old_schema_keeps_runs_in_the_spool);
	tcase_add_test(old, old_schema_shared_runs_nothing_unclaimed);
	tcase_add_test(old, old_schema_after_a_kill_waits_for_install);
	tcase_add_test(wake, old_schema_install_wakes_the_session);
	tcase_add_test(wake, old_schema_silent_held_session_is_replaced);
	tcase_add_test(tc, failed_lock_keeps_the_session);
	tcase_add_test(tc, bulk_statements_take_an_eighth_of_the_session);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, old);
	suite_add_tcase(s, wake);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
