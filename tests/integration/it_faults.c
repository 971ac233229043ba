/* Faults that land while a run is in flight (docs/faults.md): every execution is
 * counted in a table (the job INSERTs pg_backend_pid() in the run's own transaction) and
 * matched to the history. Run one case with CK_RUN_CASE=<name>. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

#define DB "pgcrond_it_faults"

/* IN may be found dead after 5 s without a heartbeat (cluster_dead_after; it beats every
 * 1.25 s) instead of the default 20 s. */
static void dead_after_5s(struct itest_inst *in)
{
	char *conf = itest_read_file(in->conf);
	itest_write_file(in->conf, "cluster_dead_after = \"5s\";\n%s", conf);
	free(conf);
}

/* Instances NA and NB on E, both up and with one job "long" (COMMAND, plus EXTRA keys) due a
 * few seconds after both have seen the other live; returns the one whose run of it is in flight
 * (its row running, with its backend); *OTHER is the other. */
static void inst_via_relay(struct itest_inst *in, const struct itest_env *e, int port);

/* long_run_in_flight, each instance through a relay of its own on PORTS[0] and PORTS[1] (NULL:
 * none) */
static struct itest_inst *long_run_via(struct itest_env *e, struct itest_inst *a,
                                       struct itest_inst *b, const char *na, const char *nb,
                                       const char *command, const char *extra, const int *ports,
                                       struct itest_inst **other);

static struct itest_inst *long_run_in_flight(struct itest_env *e, struct itest_inst *a,
                                             struct itest_inst *b, const char *na, const char *nb,
                                             const char *command, const char *extra,
                                             struct itest_inst **other)
{
	return long_run_via(e, a, b, na, nb, command, extra, NULL, other);
}

static struct itest_inst *long_run_via(struct itest_env *e, struct itest_inst *a,
                                       struct itest_inst *b, const char *na, const char *nb,
                                       const char *command, const char *extra, const int *ports,
                                       struct itest_inst **other)
{
	static const char job[] = "job = { name = \"long\"; database = \"app\"; schedule = \"%s\";"
	                          " command = \"%s\";%s };\n";
	char jobs[512], sched[64];
	snprintf(jobs, sizeof(jobs), job, "0 0 1 1 *", command, extra);
	itest_inst_init(a, e, na, jobs);
	itest_inst_init(b, e, nb, jobs);
	dead_after_5s(a);
	dead_after_5s(b);
	if (ports) {
		inst_via_relay(a, e, ports[0]);
		inst_via_relay(b, e, ports[1]);
	}
	itest_inst_up(e, a);
	itest_inst_up(e, b);
	/* each marks its runs once a heartbeat has seen the other live (docs/faults.md); then
	 * the fire comes with a reload (a loaded machine's two starts took longer than the
	 * seconds to a fire written before them) */
	struct itest_inst *both[] = {a, b};
	for (int i = 0; i < 2; i++)
		ck_assert_msg(itest_wait_log(both[i]->log, "other live instances", 15),
		              "%s never saw the other live:\n%s", both[i]->name,
		              itest_tail(both[i]->log));
	for (int ahead = 3; ahead;) {
		/* once an hour: at the minute and second AHEAD s from now */
		time_t at = itest_schedule_soon_at(sched, sizeof(sched), ahead);
		struct tm tm;
		gmtime_r(&at, &tm);
		snprintf(sched, sizeof(sched), "%d %d * * * *", tm.tm_sec, tm.tm_min);
		snprintf(jobs, sizeof(jobs), job, sched, command, extra);
		itest_inst_reload(a, jobs);
		itest_inst_reload(b, jobs);
		ahead = itest_insts_soon_again(both, 2, at, ahead);
	}
	char *runner = itest_wait_value(e->db,
	                                "SELECT min(instance) FROM pgcrond.job_run_details"
	                                " WHERE job_name = 'long' AND status = 'running'"
	                                " AND job_pid IS NOT NULL HAVING count(*) = 1",
	                                20);
	ck_assert_msg(runner != NULL, "no running row with its backend:\n%s\n%s",
	              itest_read_file(a->log), itest_read_file(b->log));
	struct itest_inst *x = strcmp(runner, na) == 0 ? a : b;
	free(runner);
	*other = x == a ? b : a;
	return x;
}

/* The history of job "long", one line per run, for a failure message (malloc'd). */
static char *long_runs(struct itest_env *e)
{
	return itest_scalar(e->db,
	                    "SELECT string_agg(format('attempt %s on %s: %s %s', attempt, instance,"
	                    " status, return_message), E'\\n' ORDER BY runid)"
	                    " FROM pgcrond.job_run_details WHERE job_name = 'long'");
}

/* X (sent SIG) and Y stopped, instances A and B freed, E torn down. */
static void two_down(struct itest_env *e, struct itest_inst *x, int sig, struct itest_inst *y,
                     struct itest_inst *a, struct itest_inst *b)
{
	itest_inst_stop(x, sig);
	itest_inst_stop(y, SIGTERM);
	itest_inst_free(a);
	itest_inst_free(b);
	itest_env_teardown(e);
}

/* The retry of "long" (attempt 2) ended within WAIT_S, and past the time attempt 1 would
 * have committed (it ran SLEEP_S): the job's work (a row in execs) was done once, recorded
 * as a success, and attempt 1 says its instance died. CONT (> 0) gets SIGCONT first. */
static void done_once_by_the_retry(struct itest_env *e, const struct itest_inst *y, int wait_s,
                                   int sleep_s, pid_t cont)
{
	bool done = itest_env_wait(e, wait_s,
	                           "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                           " WHERE job_name = 'long' AND attempt = 2"
	                           " AND status IN ('succeeded', 'failed')");
	itest_env_wait(e, 30,
	               "SELECT now() > (SELECT start_time + interval '%d seconds'"
	               " FROM pgcrond.job_run_details WHERE job_name = 'long' AND attempt = 1)",
	               sleep_s + 2);
	char *runs = long_runs(e);
	long long execs = itest_env_count(e, "SELECT count(*) FROM execs");
	long long unrecorded = itest_env_count(
	    e, "SELECT count(*) FROM execs x WHERE NOT EXISTS (SELECT FROM"
	       " pgcrond.job_run_details d WHERE d.job_pid = x.pid AND d.status = 'succeeded')");
	if (cont > 0)
		ck_assert_int_eq(kill(cont, SIGCONT), 0);
	ck_assert_msg(done && execs == 1 && unrecorded == 0,
	              "the job's work was committed %lld times, %lld of them not recorded as a "
	              "success:\n%s\n%s",
	              execs, unrecorded, runs ? runs : "", itest_read_file(y->log));
	itest_assert_scalar(e->db,
	                    "SELECT return_message LIKE 'instance % died%' FROM"
	                    " pgcrond.job_run_details WHERE job_name = 'long' AND attempt = 1",
	                    "t");
	free(runs);
}

/* An instance's run of 40 s is in flight when SIG lands on it (SIGSTOP: found dead after 5 s
 * of silence, its cluster_dead_after; SIGKILL: its session is gone at once, but the run's backend,
 * busy in its statement, would commit at its end): the survivor ends the run's backend (its
 * transaction rolls back) before it retries, so the job's work is done once, by the retry, and the
 * history says so. */
static void in_flight_run_is_fenced_before_retry(int sig)
{
	struct itest_env e;
	struct itest_inst a, b;
	itest_env_setup(&e, sig == SIGSTOP ? "ft-stop" : "ft-kill", DB);
	itest_exec(e.db, "CREATE TABLE public.execs (pid integer, at timestamptz DEFAULT now());"
	                 "GRANT ALL ON public.execs TO PUBLIC");
	struct itest_inst *y,
	    *x = long_run_in_flight(&e, &a, &b, "fa", "fb",
	                            "INSERT INTO execs (pid) VALUES (pg_backend_pid());"
	                            " SELECT pg_sleep(40)",
	                            " retries = 1; retry_on = \"any\"; retry_delay = \"1s\";", &y);
	ck_assert_int_eq(kill(x->pid, sig), 0);
	/* found dead (after 5 s of silence for SIGSTOP), its run retried at once (40 s) */
	done_once_by_the_retry(&e, y, 100, 40, 0);
	two_down(&e, x, SIGKILL, y, &a, &b);
}

START_TEST(sigstop_in_flight)
{
	in_flight_run_is_fenced_before_retry(SIGSTOP);
}
END_TEST

START_TEST(sigkill_in_flight)
{
	in_flight_run_is_fenced_before_retry(SIGKILL);
}
END_TEST

/* A relay that stops forwarding (a frozen network path: the sessions stay open on the server)
 * while an instance's run is in flight: the survivor finds it dead after 5 s of silence, ends
 * the run's backend before it retries, and the work is done once, by the retry. */
START_TEST(relay_freeze_in_flight)
{
	struct itest_env e;
	struct itest_inst a, b;
	itest_env_setup(&e, "ft-freeze", DB);
	itest_exec(e.db, "CREATE TABLE public.execs (pid integer, at timestamptz DEFAULT now());"
	                 "GRANT ALL ON public.execs TO PUBLIC");
	int ports[2] = {0, 0}; /* any free ports */
	pid_t relays[2] = {itest_relay_start(e.ci, &ports[0]), itest_relay_start(e.ci, &ports[1])};
	struct itest_inst *y,
	    *x = long_run_via(
	        &e, &a, &b, "za", "zb",
	        "INSERT INTO execs (pid) VALUES (pg_backend_pid()); SELECT pg_sleep(10)",
	        " retries = 1; retry_on = \"any\"; retry_delay = \"1s\";", ports, &y);
	pid_t frozen = relays[x == &a ? 0 : 1];
	ck_assert_int_eq(kill(frozen, SIGSTOP), 0);
	done_once_by_the_retry(&e, y, 60, 10, frozen);
	itest_relay_stop(frozen); /* X's sessions go: it stops on its own term below */
	two_down(&e, x, SIGTERM, y, &a, &b);
	itest_relay_stop(relays[x == &a ? 1 : 0]);
}
END_TEST

/* A run that committed while its instance was frozen is recorded as succeeded, not retried
 * (a fenced takeover): X's run of one statement (an INSERT that takes 4 s) writes its
 * transaction id before it runs (pgcrond.run_start); X is stopped (SIGSTOP) while it runs; the
 * statement commits on the server meanwhile; the survivor finds X dead after 5 s, ends the
 * backend, asks the server whether that transaction committed, and records the run as
 * succeeded without retrying it: the work is done once. */
START_TEST(committed_run_is_not_retried)
{
	struct itest_env e;
	struct itest_inst a, b;
	itest_env_setup(&e, "ft-commit", DB);
	itest_exec(e.db, "CREATE TABLE public.execs (pid integer, at timestamptz DEFAULT now());"
	                 "GRANT ALL ON public.execs TO PUBLIC");
	struct itest_inst *y,
	    *x = long_run_in_flight(
	        &e, &a, &b, "ca", "cb",
	        "INSERT INTO execs (pid) SELECT pg_backend_pid() FROM pg_sleep(4)",
	        " retries = 1; retry_on = \"any\"; retry_delay = \"1s\";", &y);
	ck_assert_msg(itest_env_wait(&e, 5,
	                             "SELECT count(*) = 1 FROM pgcrond.run_start WHERE xid IS NOT "
	                             "NULL AND instance = '%s'",
	                             x->name),
	              "the run's transaction id was not written:\n%s", itest_read_file(x->log));
	ck_assert_int_eq(kill(x->pid, SIGSTOP), 0);
	bool closed =
	    itest_env_wait(&e, 30,
	                   "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                   " WHERE job_name = 'long' AND attempt = 1 AND status = 'succeeded'"
	                   " AND return_message LIKE 'committed; instance %s died%%'",
	                   x->name);
	itest_sleep(4); /* a retry would have started by now (retry_delay 1 s) */
	char *runs = long_runs(&e);
	long long execs = itest_env_count(&e, "SELECT count(*) FROM execs");
	long long rows = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE job_name = 'long'");
	ck_assert_int_eq(kill(x->pid, SIGCONT), 0);
	ck_assert_msg(closed && execs == 1 && rows == 1,
	              "committed %lld times, %lld history rows:\n%s\n%s", execs, rows,
	              runs ? runs : "", itest_read_file(y->log));
	char *ylog = itest_read_file(y->log);
	ck_assert_msg(strstr(ylog, "died after 1 of its runs had committed: recorded as succeeded, "
	                           "not retried"),
	              "%s", ylog);
	free(ylog);
	free(runs);
	two_down(&e, x, SIGTERM, y, &a, &b);
}
END_TEST

/* The database is the clock: `pgcrond status` shows this host's offset from the history
 * database's clock (measured at each heartbeat; claims stop beyond CLUSTER_MAX_OFFSET_MS). */
START_TEST(status_shows_the_clock_offset)
{
	struct itest_env e;
	struct itest_inst a;
	itest_env_setup(&e, "ft-clock", DB);
	itest_inst_init(&a, &e, "ca",
	                "job = { name = \"t\"; database = \"app\"; schedule = \"* * * * * *\";"
	                " command = \"SELECT 1\"; };\n");
	itest_inst_up(&e, &a);
	int status = -1;
	char *out = NULL;
	for (int i = 0; i < 40; i++) { /* the first heartbeat's answer */
		free(out);
		out = itest_cli(&status, "status", "-c", a.conf, NULL);
		if (strstr(out, "clock offset"))
			break;
		itest_sleep(0.25);
	}
	const char *line = strstr(out, "cluster: clock offset ");
	long long ms = line ? atoll(line + strlen("cluster: clock offset ")) : 99999;
	ck_assert_msg(status == 0 && line && strstr(line, " ms from the history database's") &&
	                  llabs(ms) < 1000,
	              "pgcrond status: %d\n%s", status, out);
	/* and the fires went on: a host in step claims */
	ck_assert(itest_env_wait(&e, 10,
	                         "SELECT count(*) >= 2 FROM pgcrond.job_run_details"
	                         " WHERE job_name = 't' AND status = 'succeeded'"));
	free(out);
	itest_inst_stop(&a, SIGTERM);
	itest_inst_free(&a);
	itest_env_teardown(&e);
}
END_TEST

/* A returning instance learns that it was declared dead, and its late record of the run it
 * had in flight does not overwrite the survivor's verdict on that run: B runs a long job,
 * is stopped (SIGSTOP) past the dead-instance timeout (its cluster_dead_after, 5 s), the
 * survivor A closes B's running row ("instance B died ...") well before the default 20 s, B
 * is continued (SIGCONT), its run ends (its backend was ended by A's fence) and it records
 * that end: the row keeps A's verdict, and B's log says it was found dead. */
START_TEST(returning_instance_keeps_the_survivors_verdict)
{
	struct itest_env e;
	struct itest_inst a, b;
	itest_env_setup(&e, "ft-back", DB);
	struct itest_inst *y,
	    *x = long_run_in_flight(&e, &a, &b, "ba", "bb", "SELECT pg_sleep(40)", "", &y);
	double t0 = itest_now();
	ck_assert_int_eq(kill(x->pid, SIGSTOP), 0);
	bool closed = itest_env_wait(&e, 60,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'long' AND status = 'failed'"
	                             " AND return_message LIKE 'instance %% died%%'");
	ck_assert_int_eq(kill(x->pid, SIGCONT), 0);
	double took = itest_now() - t0;
	ck_assert_msg(closed, "the survivor did not close the run:\n%s", itest_read_file(y->log));
	/* 5 s of silence, a heartbeat of the survivor (1.25 s), the fence (up to 3 s) */
	ck_assert_msg(took < 15, "found dead after %.1f s, not within cluster_dead_after:\n%s",
	              took, itest_read_file(y->log));
	/* X's run ends (its backend is gone) and X records it, over the row of before */
	ck_assert_msg(itest_wait_log(x->log, "long: failed", 30), "X's run did not end:\n%s",
	              itest_read_file(x->log));
	bool told = itest_wait_log(x->log, "was found dead by instance", 15);
	ck_assert(itest_env_wait(&e, 15,
	                         "SELECT last_seen > now() - interval '3 seconds'"
	                         " FROM pgcrond.instance WHERE name = '%s'",
	                         x->name));
	itest_sleep(2); /* its history records, written after its run's end */
	char *runs = long_runs(&e);
	long long kept = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE job_name = 'long' AND status = 'failed'"
	                                     " AND return_message LIKE 'instance %% died%%'");
	ck_assert_msg(kept == 1, "the survivor's verdict was overwritten:\n%s", runs ? runs : "");
	char *xlog = itest_read_file(x->log);
	ck_assert_msg(told, "X does not say it was found dead:\n%s", xlog);
	free(xlog);
	free(runs);
	two_down(&e, x, SIGTERM, y, &a, &b);
}
END_TEST

/* IN's daemon reaches the database through a relay on 127.0.0.1:PORT instead of E's
 * conninfo (its history, its claims and its runs). */
static void inst_via_relay(struct itest_inst *in, const struct itest_env *e, int port)
{
	char *conf = itest_read_file(in->conf), *at = strstr(conf, e->ci);
	ck_assert(at != NULL);
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(e->ci, &err);
	ck_assert(opts != NULL);
	const char *db = NULL, *user = NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (strcmp(o->keyword, "dbname") == 0)
			db = o->val;
		else if (strcmp(o->keyword, "user") == 0)
			user = o->val;
	}
	ck_assert(db && user);
	*at = '\0';
	/* the server sees the relay's sessions on its unix socket: their name tells them apart */
	itest_write_file(in->conf,
	                 "%shost=127.0.0.1 port=%d user=%s dbname=%s application_name=via-relay%s",
	                 conf, port, user, db, at + strlen(e->ci));
	PQconninfoFree(opts);
	free(conf);
}

/* IN's `pgcrond status` shows OTHER as a live instance (within 15 s: a heartbeat). */
static void sees(struct itest_inst *in, const char *other)
{
	char want[64];
	snprintf(want, sizeof(want), "other live instances: %s", other);
	int status = -1;
	char *out = NULL;
	for (int i = 0; i < 60; i++) {
		free(out);
		out = itest_cli(&status, "status", "-c", in->conf, NULL);
		if (strstr(out, want))
			break;
		itest_sleep(0.25);
	}
	ck_assert_msg(strstr(out, want), "%s does not see %s:\n%s", in->name, other, out);
	free(out);
}

/* Occurrences of NEEDLE in HAY. */
static int occurrences(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Whether a run of JOB is in flight by LOG within TIMEOUT_S: more "JOB: started" lines than
 * lines of an end. */
static bool in_flight_in_log(const char *log, const char *job, double timeout_s)
{
	char started[64], ok[64], failed[64];
	snprintf(started, sizeof(started), "%s: started", job);
	snprintf(ok, sizeof(ok), "%s: succeeded", job);
	snprintf(failed, sizeof(failed), "%s: failed", job);
	for (double waited = 0; waited <= timeout_s; waited += 0.02) {
		char *text = itest_read_file(log);
		bool busy =
		    occurrences(text, started) > occurrences(text, ok) + occurrences(text, failed);
		free(text);
		if (busy)
			return true;
		itest_sleep(0.02);
	}
	return false;
}

/* A truthful history: an instance that cannot claim (its history database cut off, every
 * fire refused since the other instance was live) writes no `skipped` row for the fires the
 * other instance ran; and when the other could not claim either (BOTH cut off), the fires
 * nobody ran get one `skipped` row, not one per instance: each second of the every-second
 * job has exactly one row. */
static void refused_case(bool both)
{
	struct itest_env e;
	struct itest_inst a, b;
	itest_env_setup(&e, both ? "ft-refused2" : "ft-refused", DB);
	/* half of every second has a run in flight */
	const char *jobs = "job = { name = \"tick\"; database = \"app\";"
	                   " schedule = \"* * * * * *\"; command = \"SELECT pg_sleep(0.5)\"; };\n";
	int port = 0, port_a = 0;
	pid_t relay = itest_relay_start(e.ci, &port),
	      relay_a = both ? itest_relay_start(e.ci, &port_a) : 0;
	itest_inst_init(&a, &e, "ra", jobs);
	itest_inst_init(&b, &e, "rb", jobs);
	inst_via_relay(&b, &e, port);
	if (both)
		inst_via_relay(&a, &e, port_a);
	itest_inst_up(&e, &a);
	itest_inst_up(&e, &b);
	/* each knows the other is live (its heartbeat saw the other's row): a fire one cannot
	 * claim is the other's */
	sees(&b, "ra");
	sees(&a, "rb");
	ck_assert(itest_env_wait(&e, 10,
	                         "SELECT count(*) >= 3 FROM pgcrond.job_run_details"
	                         " WHERE job_name = 'tick' AND status = 'succeeded'"));
	/* the cut lands while a run of the job goes through the relay */
	/* rb reaches the server through the relay, so ra wins most claims: wait for one of rb's
	 * (its log says it started and not yet how it ended: a run's backend carries its job's
	 * name, not the relay's application name, with several instances) */
	ck_assert_msg(in_flight_in_log(b.log, "tick", 30),
	              "no run of rb through the relay; sessions:\n%s\nrb:\n%s",
	              itest_scalar(e.db,
	                           "SELECT string_agg(format('%s %s %s', application_name, state,"
	                           " left(query, 60)), E'\\n') FROM pg_stat_activity"
	                           " WHERE datname = current_database()"),
	              itest_read_file(b.log));
	char *cut = itest_scalar(e.db, "SELECT now()");
	itest_relay_stop(relay);
	if (both)
		itest_relay_stop(relay_a);
	itest_sleep(8);
	char *back = itest_scalar(e.db, "SELECT now()");
	relay = itest_relay_start(e.ci, &port);
	if (both)
		relay_a = itest_relay_start(e.ci, &port_a);
	/* B is back (its heartbeat moves; its history records, spooled meanwhile, written) */
	bool beat = itest_env_wait(&e, 30,
	                           "SELECT last_seen > '%s' FROM pgcrond.instance"
	                           " WHERE name = 'rb'",
	                           back);
	itest_wait_log(b.log, "is reachable again; writing", 10);
	/* each fire is checked once its instant is 10 s old, at most 5 s apart: the last one's */
	itest_env_wait(&e, 40, "SELECT now() > '%s'::timestamptz + interval '16 seconds'", back);
	bool checked = itest_wait_log(b.log, "not claimed here were checked", 10);
	itest_sleep(1);
	char q[2048];
	snprintf(q, sizeof(q),
	         "scheduled_time >= '%s'::timestamptz - interval '1 second'"
	         " AND scheduled_time < '%s'::timestamptz + interval '3 seconds'",
	         cut, back);
	char sql[4096];
	snprintf(sql, sizeof(sql),
	         "SELECT coalesce(string_agg(format('%%s: %%s', to_char(t, 'HH24:MI:SS'), rows),"
	         " E'\\n' ORDER BY t), '') FROM (SELECT scheduled_time AS t, string_agg("
	         "format('%%s %%s %%s', instance, status, left(return_message, 60)), ' | ') AS rows"
	         " FROM pgcrond.job_run_details WHERE job_name = 'tick' AND %s GROUP BY 1) x",
	         q);
	char *rows = itest_scalar(e.db, sql);
	long long twice = itest_env_count(&e,
	                                  "SELECT count(*) FROM (SELECT scheduled_time FROM"
	                                  " pgcrond.job_run_details WHERE job_name = 'tick' AND %s"
	                                  " GROUP BY 1 HAVING count(*) > 1) x",
	                                  q);
	long long none = itest_env_count(
	    &e,
	    "SELECT count(*) FROM generate_series(date_trunc('second', '%s'::timestamptz),"
	    " date_trunc('second', '%s'::timestamptz), interval '1 second') AS s(t)"
	    " WHERE NOT EXISTS (SELECT FROM pgcrond.job_run_details"
	    " WHERE job_name = 'tick' AND scheduled_time = s.t)",
	    cut, back);
	long long skipped =
	    itest_env_count(&e,
	                    "SELECT count(*) FROM pgcrond.job_run_details"
	                    " WHERE job_name = 'tick' AND status = 'skipped' AND %s",
	                    q);
	char *blog = itest_read_file(b.log);
	ck_assert_msg(strstr(blog, "no claim can be made"), "B was never refused a claim:\n%s",
	              blog);
	ck_assert_msg(beat, "B did not come back:\n%s", blog);
	ck_assert_msg(twice == 0 && none == 0,
	              "%lld seconds have more than one row, %lld none (cut %s, back %s):\n%s",
	              twice, none, cut, back, rows ? rows : "");
	/* cut off together, nobody ran those fires: they are recorded, once */
	ck_assert_msg(!both || skipped >= 5, "only %lld skipped rows:\n%s", skipped,
	              rows ? rows : "");
	/* and their claims, made to record them once the instances could claim again, say no
	 * run of theirs is known to have started (NULL): no other instance would serve them,
	 * also had the recorder been found dead before its rows landed */
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FILTER (WHERE c.started IS NULL) || ' recorded;'"
	         " || coalesce(string_agg(format(' %%s %%s', c.fire_key, c.started), ',')"
	         "  FILTER (WHERE c.started IS NOT NULL), '')"
	         " FROM pgcrond.job_run_details d JOIN pgcrond.fire_claim c"
	         "  ON c.job_name = d.job_name AND c.instance = d.instance"
	         "  AND c.fire_key = 's:' || extract(epoch FROM d.scheduled_time)::bigint"
	         " WHERE d.job_name = 'tick' AND d.status = 'skipped' AND %s"
	         "  AND d.return_message LIKE '%%no claim can be made%%'",
	         q);
	char *servable = itest_scalar(e.db, sql);
	ck_assert_msg(!both || (servable && atoi(servable) >= 5 && strchr(servable, ';')[1] == 0),
	              "claims made to record skipped fires (those another instance could serve "
	              "after ';'): %s",
	              servable ? servable : "(query failed)");
	free(servable);
	ck_assert_msg(checked, "B did not check the fires it could not claim:\n%s", blog);
	free(blog);
	free(rows);
	free(cut);
	free(back);
	itest_inst_stop(&a, SIGTERM);
	itest_inst_stop(&b, SIGTERM);
	itest_relay_stop(relay);
	if (both)
		itest_relay_stop(relay_a);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}

/* The last 3,000 bytes of LOG (Check's messages are bounded; LOG is kept). */
static const char *tail_of(const char *log)
{
	size_t n = log ? strlen(log) : 0;
	return n > 3000 ? log + n - 3000 : log ? log : "";
}

/* Three instances (TAG), ten every-second jobs and, with LONG, a long one (40 s, retries = 2,
 * retry_on = "transient"); the instance whose long run is in flight (else the one that
 * claimed most of the coming second's fires, asked 20 ms before the stop) is
 * stopped (SIGSTOP) for FREEZE_S at fraction PHASE of a second by the database's clock
 * (PGCROND_FREEZE_PHASE: another), with DEAD_5S found dead after 5 s (else the default 20 s).
 * Over the whole seconds it is stopped: every fire of the every-second jobs has its row, no
 * execution was done twice or without its success row, and with LONG the long job's work was
 * done once (by its retry: the stopped run's backend was ended before it). Returns how many
 * of how many fires (*EXPECTED) were skipped. The retry sleeps 1 s, not 40 (a sequence counts
 * the attempts outside their transactions). */
/* three_stopped() found a moment when the stopped instance had no run under way (or did not
 * look for one) */
static bool three_quiet;

/* three_stopped()'s jobs in OUT: ten every second, and "long" at LONG_AT (NULL: none) */
static void three_jobs(char *out, size_t outlen, const char *long_at)
{
	int n = snprintf(out, outlen, "jobs = (\n");
	if (long_at)
		n +=
		    snprintf(out + n, outlen - (size_t)n,
		             "{ name = \"long\"; database = \"app\"; schedule = \"%s\";"
		             " retries = 2; retry_on = \"transient\"; retry_delay = \"1s\";"
		             " command = \"INSERT INTO execs (job, pid) VALUES ('long',"
		             " pg_backend_pid()); SELECT pg_sleep(CASE WHEN nextval('long_try') = 1"
		             " THEN 40 ELSE 1 END)\"; },\n",
		             long_at);
	for (int i = 0; i < 10; i++)
		n += snprintf(out + n, outlen - (size_t)n,
		              "%s{ name = \"s%d\"; database = \"app\"; schedule = \"* * * * * *\";"
		              " command = \"INSERT INTO execs (job, pid) VALUES ('s%d',"
		              " pg_backend_pid())\"; }",
		              i ? ",\n" : "", i, i);
	ck_assert_msg((size_t)n < outlen, "three_jobs: %d bytes", n);
	snprintf(out + n, outlen - (size_t)n, "\n);\n");
}

static long long three_stopped(const char *tag, double phase, int freeze_s, bool dead_5s,
                               bool long_job, long long *expected)
{
	struct itest_env e;
	struct itest_inst in[3];
	itest_env_setup(&e, tag, DB);
	itest_exec(e.db, "CREATE TABLE public.execs (job text, pid integer,"
	                 " at timestamptz DEFAULT now());"
	                 "CREATE SEQUENCE public.long_try;"
	                 "GRANT ALL ON public.execs, public.long_try TO PUBLIC");
	char jobs[4096];
	three_jobs(jobs, sizeof(jobs), long_job ? "0 0 1 1 *" : NULL);
	const char *names[] = {"ta", "tb", "tc"};
	for (int i = 0; i < 3; i++) {
		itest_inst_init(&in[i], &e, names[i], jobs);
		if (dead_5s)
			dead_after_5s(&in[i]);
		itest_inst_up(&e, &in[i]);
	}
	/* each marks its runs from its first heartbeat that sees another live (docs/faults.md:
	 * a run before that is unmarked, and a takeover may run its fire again) */
	for (int i = 0; i < 3; i++)
		ck_assert_msg(itest_wait_log(in[i].log, "other live instances", 15),
		              "%s never saw the others live:\n%s", names[i],
		              tail_of(itest_read_file(in[i].log)));
	/* the long job's fire comes with a reload once all three run and mark (their starts on
	 * a loaded machine took longer than the seconds to a fire written before them) */
	for (int ahead = 3; long_job && ahead;) {
		char sched[64];
		time_t at = itest_schedule_soon_at(sched, sizeof(sched), ahead);
		struct tm tm;
		gmtime_r(&at, &tm);
		snprintf(sched, sizeof(sched), "%d %d * * * *", tm.tm_sec, tm.tm_min);
		three_jobs(jobs, sizeof(jobs), sched);
		struct itest_inst *all[] = {&in[0], &in[1], &in[2]};
		for (int i = 0; i < 3; i++)
			itest_inst_reload(&in[i], jobs);
		ahead = itest_insts_soon_again(all, 3, at, ahead);
	}
	struct itest_inst *x = &in[0];
	if (long_job) {
		ck_assert_msg(itest_env_wait(&e, 25,
		                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
		                             " WHERE job_name = 'long' AND status = 'running'"
		                             " AND job_pid IS NOT NULL"),
		              "no running row of the long job:\n%s",
		              tail_of(itest_read_file(in[0].log)));
		char *runner =
		    itest_scalar(e.db, "SELECT instance FROM pgcrond.job_run_details"
		                       " WHERE job_name = 'long' AND status = 'running'");
		for (int i = 0; i < 3; i++)
			if (strcmp(runner, names[i]) == 0)
				x = &in[i];
		free(runner);
	} else {
		ck_assert(itest_env_wait(&e, 15,
		                         "SELECT count(*) >= 10 FROM pgcrond.job_run_details"
		                         " WHERE status = 'succeeded'"));
	}

	char *f = itest_scalar(e.db, "SELECT extract(epoch FROM clock_timestamp())"
	                             " - floor(extract(epoch FROM clock_timestamp()))");
	double frac = atof(f);
	free(f);
	const char *ph = getenv("PGCROND_FREEZE_PHASE");
	if (ph && *ph)
		phase = atof(ph);
	double lead = long_job ? 0 : 0.02;
	double at_ph = phase - lead < 0 ? phase - lead + 1 : phase - lead;
	itest_sleep(frac < at_ph ? at_ph - frac : 1 + at_ph - frac);
	/* stopped late in a second, the test is of an instance whose runs ended: on a loaded
	 * machine a second's runs can still be under way then (their locks rightly hold), so
	 * it waits for a second where they are not, 15 at most */
	bool quiet = long_job || phase < 0.5;
	for (int tries = 0; !long_job && tries < 15; tries++) {
		/* the instance that claimed most of the coming second's fires (100 ms early): the
		 * one whose stop costs the others most; and how many of its runs are under way */
		char *holder = itest_scalar(
		    e.db, "SELECT c.instance || ' ' || (SELECT count(*) FROM pgcrond.run_start r"
		          "  WHERE r.instance = c.instance AND (r.xid IS NULL OR r.xid <= 0"
		          "   OR txid_status(r.xid) IS DISTINCT FROM 'committed'))"
		          " FROM pgcrond.fire_claim c WHERE c.fire_key = 's:'"
		          " || ceil(extract(epoch FROM clock_timestamp()))::bigint"
		          " GROUP BY c.instance ORDER BY count(*) DESC, 1 LIMIT 1");
		char *busy = holder ? strchr(holder, ' ') : NULL;
		if (busy)
			*busy++ = '\0';
		for (int i = 0; holder && i < 3; i++)
			if (strcmp(holder, names[i]) == 0)
				x = &in[i];
		bool settled = busy && atoi(busy) == 0;
		free(holder);
		if (quiet || settled) {
			quiet = true;
			break;
		}
		itest_sleep(1 - lead); /* the same phase of the next second */
	}
	if (!long_job)
		itest_sleep(lead);
	three_quiet = quiet;
	/* the window: the whole seconds X is stopped */
	char *from =
	    itest_scalar(e.db, "SELECT (date_trunc('second', now()) + '1 s'::interval)::text");
	ck_assert_int_eq(kill(x->pid, SIGSTOP), 0);
	itest_sleep(freeze_s); /* the fault's length, by design */
	char *to =
	    itest_scalar(e.db, "SELECT (date_trunc('second', now()) - '1 s'::interval)::text");
	ck_assert_int_eq(kill(x->pid, SIGCONT), 0);

	/* the long job's retry ended, and attempt 1 would have committed by now (40 s) */
	bool retried =
	    !long_job || itest_env_wait(&e, 60,
	                                "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                                " WHERE job_name = 'long' AND attempt = 2"
	                                " AND status IN ('succeeded', 'failed')");
	if (long_job)
		itest_env_wait(
		    &e, 30,
		    "SELECT now() > (SELECT start_time + interval '42 seconds'"
		    " FROM pgcrond.job_run_details WHERE job_name = 'long' AND attempt = 1)");
	*expected = itest_env_count(
	    &e,
	    "SELECT 10 * (extract(epoch FROM '%s'::timestamptz - '%s'::timestamptz)::bigint + 1)",
	    to, from);
	/* every fire of the window has its row (a late one too: up to 10 s more), and X wrote
	 * the rows of what it ran before it was stopped */
	itest_env_wait(&e, 10,
	               "SELECT count(DISTINCT (job_name, scheduled_time)) >= %lld"
	               " FROM pgcrond.job_run_details WHERE job_name LIKE 's_'"
	               " AND status <> 'running' AND scheduled_time BETWEEN '%s' AND '%s'",
	               *expected, from, to);
	itest_sleep(2);
	for (int i = 0; i < 3; i++)
		itest_inst_stop(&in[i], SIGTERM);
	/* X, continued, found a run of its own still under way from before the stop (its quiet
	 * second was judged too early, on a loaded machine): that run's lock rightly held */
	char *xlog = itest_read_file(x->log);
	if (xlog && strstr(xlog, "previous run still running"))
		three_quiet = false;
	free(xlog);

	long long rowed = itest_env_count(&e,
	                                  "SELECT count(DISTINCT (job_name, scheduled_time))"
	                                  " FROM pgcrond.job_run_details WHERE job_name LIKE 's_'"
	                                  " AND scheduled_time BETWEEN '%s' AND '%s'",
	                                  from, to);
	long long skipped = itest_env_count(&e,
	                                    "SELECT count(DISTINCT (job_name, scheduled_time))"
	                                    " FROM pgcrond.job_run_details WHERE job_name LIKE 's_'"
	                                    " AND status = 'skipped'"
	                                    " AND scheduled_time BETWEEN '%s' AND '%s'",
	                                    from, to);
	/* an execution is a row in execs: each has its own success row (same job, backend and
	 * time), and no fire has two successes */
	long long unrecorded = itest_env_count(
	    &e, "SELECT count(*) FROM execs x WHERE NOT EXISTS (SELECT FROM"
	        " pgcrond.job_run_details d WHERE d.job_name = x.job AND d.job_pid = x.pid"
	        " AND d.status = 'succeeded' AND x.at BETWEEN d.start_time - '50 ms'::interval"
	        " AND d.end_time + '50 ms'::interval)");
	/* of those, the ones a takeover closed as failed ("instance ... died"): a run that
	 * committed before its transaction id was marked (docs/faults.md, not fenced yet) */
	long long closed = itest_env_count(
	    &e, "SELECT count(*) FROM execs x WHERE NOT EXISTS (SELECT FROM"
	        " pgcrond.job_run_details d WHERE d.job_name = x.job AND d.job_pid = x.pid"
	        " AND d.status = 'succeeded' AND x.at BETWEEN d.start_time - '50 ms'::interval"
	        " AND d.end_time + '50 ms'::interval) AND EXISTS (SELECT FROM"
	        " pgcrond.job_run_details d WHERE d.job_name = x.job AND d.job_pid = x.pid"
	        " AND d.status = 'failed' AND d.return_message LIKE 'instance %% died%%'"
	        " AND x.at BETWEEN d.start_time - '50 ms'::interval AND d.end_time)");
	long long twice =
	    itest_env_count(&e, "SELECT count(*) FROM (SELECT job_name, scheduled_time"
	                        " FROM pgcrond.job_run_details WHERE status = "
	                        "'succeeded' GROUP BY 1, 2 HAVING count(*) > 1) d");
	long long long_execs = itest_env_count(&e, "SELECT count(*) FROM execs WHERE job = 'long'");
	char *odd = itest_scalar(
	    e.db,
	    "SELECT string_agg(format('%s %s %s %s attempt %s on %s at %s: %s', job_name,"
	    " scheduled_time, trigger, status, attempt, instance, start_time, return_message),"
	    " E'\\n' ORDER BY scheduled_time, job_name)"
	    " FROM pgcrond.job_run_details d WHERE (status NOT IN ('succeeded')"
	    "  AND return_message NOT LIKE 'a run of the job is still running%')"
	    " OR job_name = 'long' OR (SELECT count(*) FROM pgcrond.job_run_details o"
	    "  WHERE o.job_name = d.job_name AND o.scheduled_time = d.scheduled_time"
	    "  AND o.status = 'succeeded') > 1");
	fprintf(stderr,
	        "it_faults %s: stopped at %.2f s for %d s: %lld of %lld fires with a row, %lld "
	        "skipped (%.1f%%), %lld executions without their success row, %lld fires "
	        "succeeded twice, long job executed %lld time(s)\n",
	        tag, phase, freeze_s, rowed, *expected, skipped,
	        100.0 * (double)skipped / (double)*expected, unrecorded, twice, long_execs);
	/* stopped at an instant, a run may commit before its id is marked: its row says its
	 * instance died, and it is not retried (no retries here), so it ran once */
	if (!long_job)
		unrecorded -= closed;
	if (unrecorded) {
		/* each execution without its success row, and the rows of its job near it */
		char *lost = itest_scalar(
		    e.db,
		    "SELECT string_agg(format('%s pid %s at %s; rows: %s', x.job, x.pid, x.at,"
		    " (SELECT string_agg(format('[%s %s pid %s %s-%s %s]', d.instance, d.status,"
		    "  d.job_pid, d.start_time::time, d.end_time::time, d.return_message), ' ')"
		    "  FROM pgcrond.job_run_details d WHERE d.job_name = x.job"
		    "  AND d.start_time BETWEEN x.at - '3 s'::interval AND x.at + '3 "
		    "s'::interval)),"
		    " E'\\n') FROM execs x WHERE NOT EXISTS (SELECT FROM"
		    " pgcrond.job_run_details d WHERE d.job_name = x.job AND d.job_pid = x.pid"
		    " AND d.status = 'succeeded' AND x.at BETWEEN d.start_time - '50 ms'::interval"
		    " AND d.end_time + '50 ms'::interval)");
		fprintf(stderr, "executions without their success row:\n%s\n", lost ? lost : "");
		free(lost);
	}
	ck_assert_msg(retried && rowed == *expected && unrecorded == 0 && twice == 0 &&
	                  long_execs == (long_job ? 1 : 0),
	              "stopped %s for %d s: %lld of %lld fires with a row, %lld executions without "
	              "their success row, %lld fires succeeded twice, long job executed %lld "
	              "time(s); rows other than successes:\n%s",
	              x->name, freeze_s, rowed, *expected, unrecorded, twice, long_execs,
	              tail_of(odd));
	free(odd);
	free(from);
	free(to);
	for (int i = 0; i < 3; i++)
		itest_inst_free(&in[i]);
	itest_env_teardown(&e);
	return skipped;
}

/* What a stall may cost: the instance running the long job stopped for 30 s in the
 * middle of a second, with the defaults: besides the above, at most 5 % of the fires skipped
 * (the long job's lock holds: its run is under way). */
START_TEST(three_instances_one_frozen_30s)
{
	long long expected = 0,
	          skipped = three_stopped("ft-three", 0.5, 30, false, true, &expected);
	ck_assert_msg(skipped * 20 <= expected, "%lld of %lld fires skipped", skipped, expected);
}
END_TEST

/* Stopped just before a second (0.97) for 10 s (found dead after 20 s: it comes back alive),
 * an instance holds the job locks of the fires it claimed 100 ms before the second (one
 * instance often wins a second's every claim): were the locks held until it is found dead, the
 * others would skip those jobs all that time. A lock whose holder has no run under way is
 * taken over after 1.5 s (LOCK_LEASE): each job loses at most that second's fire and the one
 * the stopped instance had claimed, which it records as skipped when it is back (that fire
 * has its row too); no fire runs twice. The stop waits for a
 * second where the stopped instance's earlier runs ended (three_stopped): a run under way
 * holds its lock until the instance is found dead, as it should. */
START_TEST(stopped_before_the_second_blocks_nothing)
{
	long long expected = 0,
	          skipped = three_stopped("ft-edge", 0.97, 10, false, false, &expected);
	if (!three_quiet) {
		/* every second of 15 had runs under way at 0.95 (a machine that loaded): their
		 * locks hold until the instance is found dead, as they should; the rest was checked
		 */
		fprintf(stderr,
		        "it_faults edge: no second without runs under way; the skips (%lld "
		        "of %lld) are not judged\n",
		        skipped, expected);
		return;
	}
	ck_assert_msg(skipped <= 2 * 10, "%lld of %lld fires skipped (at most 2 per job)", skipped,
	              expected);
}
END_TEST

/* An instance stopped in the first milliseconds of a second, as it sends its runs'
 * statements: before schema step 18 the survivor served those fires as never run while their
 * statements had committed (5 and 9 of 10 fires ran twice in 2 of 7 runs); now a run sends
 * its statement only once its start mark is written. Found dead after 5 s, stopped 10 s. */
START_TEST(stopped_at_the_instant_runs_nothing_twice)
{
	long long expected = 0;
	three_stopped("ft-instant", 0.0, 10, true, false, &expected);
}
END_TEST

/* Two instances A and B (named NA and NB) running JOBS, up, both marking their runs (each sees
 * the other). */
static void two_marking(struct itest_env *e, struct itest_inst *a, struct itest_inst *b,
                        const char *na, const char *nb, const char *jobs)
{
	itest_inst_init(a, e, na, jobs);
	itest_inst_init(b, e, nb, jobs);
	itest_inst_up(e, a);
	itest_inst_up(e, b);
	ck_assert(itest_wait_log(a->log, "other live instances", 15));
	ck_assert(itest_wait_log(b->log, "other live instances", 15));
	/* a fire claimed before its instance saw the other is not marked and its run does not
	 * wait for a mark (docs/faults.md); the claims made just before that (100 ms ahead of
	 * an instant) run in the next second unwaited: a loaded machine may see the other just
	 * before an instant, and the trigger below would refuse those runs' marks after they ran */
	itest_sleep(2);
}

/* two_marking, then a trigger makes the first two inserts of run marks fail with ERRCODE;
 * returns once a third went through. */
static void marks_fail_twice(struct itest_env *e, struct itest_inst *a, struct itest_inst *b,
                             const char *na, const char *nb, const char *jobs, const char *errcode)
{
	two_marking(e, a, b, na, nb, jobs);
	char sql[1024];
	snprintf(sql, sizeof(sql),
	         "CREATE SEQUENCE public.mark_fail;"
	         "CREATE FUNCTION public.mark_fail() RETURNS trigger LANGUAGE plpgsql"
	         " SET search_path = pg_catalog AS $f$ BEGIN"
	         "  IF nextval('public.mark_fail') <= 2 THEN"
	         "   RAISE EXCEPTION 'simulated %s' USING ERRCODE = '%s';"
	         "  END IF; RETURN NEW; END $f$;"
	         "CREATE TRIGGER mark_fail BEFORE INSERT ON pgcrond.run_start"
	         " FOR EACH ROW EXECUTE FUNCTION public.mark_fail()",
	         errcode, errcode);
	itest_exec(e->db, sql);
	ck_assert(
	    itest_env_wait(e, 20, "SELECT last_value >= 3 AND is_called FROM public.mark_fail"));
}

/* The statement that marks runs under way fails on a deadlock (a trigger raises 40P01 for its
 * first two inserts): it changed nothing, so it is sent again; before, every run waiting for
 * it ended without sending its statement ("not started: its start could not be written"). */
START_TEST(marks_statement_failing_on_a_deadlock_is_sent_again)
{
	struct itest_env e;
	struct itest_inst a, b;
	itest_env_setup(&e, "ft-markretry", DB);
	const char *jobs =
	    "jobs = ( { name = \"m1\"; database = \"app\"; schedule = \"* * * * * *\";"
	    " command = \"SELECT 1\"; }, { name = \"m2\"; database = \"app\";"
	    " schedule = \"* * * * * *\"; command = \"SELECT 2\"; } );\n";
	marks_fail_twice(&e, &a, &b, "ma", "mb", jobs, "deadlock_detected");
	itest_sleep(3);
	itest_inst_stop(&a, SIGTERM);
	itest_inst_stop(&b, SIGTERM);
	long long refused = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                        " WHERE return_message LIKE 'not started%%'");
	char *la = itest_read_file(a.log), *lb = itest_read_file(b.log);
	bool again = strstr(la, "sending the marks again") || strstr(lb, "sending the marks again");
	if (!again || refused)
		fprintf(stderr, "ma:\n%s\nmb:\n%s\n", tail_of(la), tail_of(lb));
	ck_assert_msg(again && refused == 0, "marks sent again: %s; runs not started: %lld",
	              again ? "yes" : "no", refused);
	free(la);
	free(lb);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* The statement that marks runs under way fails for good (a trigger refuses the first two
 * inserts with an error that is not worth sending again): the runs waiting for it send nothing
 * and end skipped, saying why, not failed (no alert, no retry: another instance may serve the
 * fire). Each success executed once; a skipped run executed nothing. */
START_TEST(runs_whose_mark_is_refused_are_skipped)
{
	struct itest_env e;
	struct itest_inst a, b;
	itest_env_setup(&e, "ft-markrefused", DB);
	itest_exec(e.db, "CREATE TABLE public.execs (job text, at timestamptz DEFAULT now());"
	                 "GRANT ALL ON public.execs TO PUBLIC");
	const char *jobs =
	    "jobs = ( { name = \"r1\"; database = \"app\"; schedule = \"* * * * * *\";"
	    " command = \"INSERT INTO public.execs VALUES ('r1')\"; },"
	    " { name = \"r2\"; database = \"app\"; schedule = \"* * * * * *\";"
	    " command = \"INSERT INTO public.execs VALUES ('r2')\"; } );\n";
	marks_fail_twice(&e, &a, &b, "ra", "rb", jobs, "check_violation");
	ck_assert(itest_env_wait(&e, 10,
	                         "SELECT count(*) >= 1 FROM pgcrond.job_run_details"
	                         " WHERE return_message LIKE 'not started%%'"));
	itest_sleep(2); /* runs after the refusals, marked as before */
	itest_inst_stop(&a, SIGTERM);
	itest_inst_stop(&b, SIGTERM);
	char *rows = itest_scalar(
	    e.db, "SELECT string_agg(format('%s %s %s on %s: %s', job_name, scheduled_time, status,"
	          " instance, return_message), E'\\n' ORDER BY scheduled_time, job_name)"
	          " FROM pgcrond.job_run_details WHERE status <> 'succeeded'");
	long long unstarted_not_skipped = itest_env_count(
	    &e, "SELECT count(*) FROM pgcrond.job_run_details"
	        " WHERE return_message LIKE 'not started%%' AND status <> 'skipped'");
	long long failed = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                       " WHERE status = 'failed'");
	long long succeeded = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                          " WHERE status = 'succeeded'");
	long long execs = itest_env_count(&e, "SELECT count(*) FROM public.execs");
	ck_assert_msg(unstarted_not_skipped == 0 && failed == 0,
	              "runs not started must be skipped, none failed:\n%s", rows ? rows : "");
	ck_assert_msg(
	    succeeded > 0 && execs == succeeded,
	    "%lld executions for %lld successes (a skipped run must execute nothing):\n%s", execs,
	    succeeded, rows ? rows : "");
	free(rows);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* The coordination connection is lost while the statement marking a burst's runs is in flight
 * (a trigger holds that statement in pg_sleep, and the test ends its backend): whether it
 * committed is not known, so it is sent again on the next connection, and its runs go on or
 * are refused by what it finds. Left unanswered, each run would hold its connection, its
 * statement unsent, until the stop's grace period ended. */
START_TEST(marks_lost_with_the_connection_are_sent_again)
{
	struct itest_env e;
	struct itest_inst a, b;
	itest_env_setup(&e, "ft-marklost", DB);
	itest_exec(e.db, "CREATE TABLE public.execs (job text, pid integer,"
	                 " at timestamptz DEFAULT now());"
	                 "GRANT ALL ON public.execs TO PUBLIC");
	const char *jobs =
	    "jobs = ( { name = \"l1\"; database = \"app\"; schedule = \"* * * * * *\";"
	    " command = \"INSERT INTO public.execs (job, pid) VALUES ('l1', pg_backend_pid())\"; },"
	    " { name = \"l2\"; database = \"app\"; schedule = \"* * * * * *\";"
	    " command = \"INSERT INTO public.execs (job, pid) VALUES ('l2', pg_backend_pid())\"; }"
	    " );\n";
	two_marking(&e, &a, &b, "la", "lb", jobs);
	/* the next insert of a run mark sleeps: its statement stays in flight */
	itest_exec(e.db, "CREATE SEQUENCE public.mark_slow;"
	                 "CREATE FUNCTION public.mark_slow() RETURNS trigger LANGUAGE plpgsql"
	                 " SET search_path = pg_catalog AS $f$ BEGIN"
	                 "  IF nextval('public.mark_slow') = 1 THEN PERFORM pg_sleep(60); END IF;"
	                 "  RETURN NEW; END $f$;"
	                 "CREATE TRIGGER mark_slow BEFORE INSERT ON pgcrond.run_start"
	                 " FOR EACH ROW EXECUTE FUNCTION public.mark_slow()");
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 1 FROM pg_stat_activity"
	                             " WHERE application_name = 'pgcrond'"
	                             " AND wait_event = 'PgSleep'"),
	              "no marks statement was held");
	long long ended =
	    itest_env_count(&e, "SELECT count(*) FROM (SELECT pg_terminate_backend(pid)"
	                        " FROM pg_stat_activity"
	                        " WHERE application_name = 'pgcrond'"
	                        " AND wait_event = 'PgSleep') t");
	ck_assert_int_eq(ended, 1);
	itest_sleep(3); /* a reconnect, the marks sent again, the runs' ends */
	double t0 = itest_now();
	ck_assert_int_eq(itest_inst_stop(&a, SIGTERM), 0);
	ck_assert_int_eq(itest_inst_stop(&b, SIGTERM), 0);
	double took = itest_now() - t0;
	char *la = itest_read_file(a.log), *lb = itest_read_file(b.log);
	bool waited = strstr(la, "shutdown_grace") || strstr(lb, "shutdown_grace");
	if (waited || took > 10)
		fprintf(stderr, "la:\n%s\nlb:\n%s\n", tail_of(la), tail_of(lb));
	ck_assert_msg(!waited && took < 10,
	              "runs whose marks were lost with the connection still waited at the stop "
	              "(the stops took %.1f s)",
	              took);
	/* each execution is a success's, none ran without its row */
	long long unrecorded = itest_env_count(
	    &e, "SELECT count(*) FROM execs x WHERE NOT EXISTS (SELECT FROM"
	        " pgcrond.job_run_details d WHERE d.job_name = x.job AND d.job_pid = x.pid"
	        " AND d.status = 'succeeded' AND x.at BETWEEN d.start_time - '50 ms'::interval"
	        " AND d.end_time + '50 ms'::interval)");
	ck_assert_int_eq(unrecorded, 0);
	free(la);
	free(lb);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* libfaketime (Debian's faketime, installed by scripts/setup), where this architecture keeps
 * it; NULL if it is not installed. */
static const char *libfaketime(void)
{
	static const char *const paths[] = {
	    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
	    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
	    "/usr/lib/faketime/libfaketime.so.1",
	};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (access(paths[i], R_OK) == 0)
			return paths[i];
	return NULL;
}

/* In the daemon's child: this host's wall clock 0.8 s ahead (ARG: libfaketime's path; the
 * monotonic clock is left alone). */
static void clock_ahead(void *arg)
{
	setenv("LD_PRELOAD", arg, 1);
	setenv("FAKETIME", "+0.8", 1);
	setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
	/* an ASan build refuses a library preloaded before its runtime */
	const char *asan = getenv("ASAN_OPTIONS");
	char opts[512];
	snprintf(opts, sizeof(opts), "%s%sverify_asan_link_order=0", asan ? asan : "",
	         asan && *asan ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
}

/* The database is the clock: an instance whose host clock is 0.8 s ahead (within the 1 s
 * bound, so it claims) fires by the history database's clock once its heartbeat measured the
 * offset. Each run's recorded start is the database's time (its execution's clock_timestamp()
 * falls within it and its end), and its execution is at or after its fire's instant (within
 * the offset's accuracy: half a round trip, and the 20 ms a change must exceed; 100 ms
 * allowed); before,
 * each ran about 0.8 s before it by the database's clock (and such an instance won every
 * claim), and its start was recorded by the host's clock, 0.8 s after its execution. */
START_TEST(a_clock_ahead_fires_by_the_database_clock)
{
	struct itest_env e;
	struct itest_inst k;
	itest_env_setup(&e, "ft-ahead", DB);
	itest_exec(e.db, "CREATE TABLE public.execs (job text, pid integer,"
	                 " at timestamptz DEFAULT clock_timestamp());"
	                 "GRANT ALL ON public.execs TO PUBLIC");
	itest_inst_init(&k, &e, "ka",
	                "job = { name = \"k\"; database = \"app\"; schedule = \"* * * * * *\";"
	                " command = \"INSERT INTO public.execs (job, pid)"
	                " VALUES ('k', pg_backend_pid())\"; };\n");
	const char *faketime = libfaketime();
	ck_assert_msg(faketime, "libfaketime is missing: run scripts/setup (Debian's faketime)");
	k.pid = itest_daemon_start_with(k.conf, k.log, clock_ahead, (void *)faketime);
	/* its first heartbeat measured the offset (on a daemon that does not apply it, the test
	 * goes on to find the runs' times wrong) */
	itest_wait_log(k.log, "firing by the history database's clock", 20);
	itest_sleep(1.5);
	char *from = itest_scalar(e.db, "SELECT clock_timestamp()::text");
	itest_sleep(4);
	/* three runs recorded since FROM (a loaded machine may take longer than 4 s) */
	itest_env_wait(&e, 20,
	               "SELECT count(*) >= 3 FROM pgcrond.job_run_details WHERE job_name = 'k'"
	               " AND status = 'succeeded' AND scheduled_time > '%s'",
	               from);
	ck_assert_int_eq(itest_inst_stop(&k, SIGTERM), 0);
#define AHEAD_RUNS                                                                                 \
	" FROM pgcrond.job_run_details d JOIN execs x ON x.pid = d.job_pid"                        \
	" AND x.at BETWEEN d.start_time - '100 ms'::interval"                                      \
	" AND d.end_time + '100 ms'::interval"                                                     \
	" WHERE d.status = 'succeeded' AND d.scheduled_time > '%s'"
	char sql[1024];
	snprintf(sql, sizeof(sql), "SELECT count(*)" AHEAD_RUNS, from);
	long long n = itest_env_count(&e, "%s", sql);
	snprintf(
	    sql, sizeof(sql),
	    "SELECT string_agg(format('%%s ran at %%s', d.scheduled_time, x.at), E'\\n')" AHEAD_RUNS
	    " AND x.at < d.scheduled_time - '100 ms'::interval",
	    from);
	char *early = itest_scalar(e.db, sql);
	ck_assert_msg(n >= 3 && (!early || !*early),
	              "%lld runs whose recorded start is their execution's time by the database's "
	              "clock (3 or more expected); executed before their instant by it:\n%s",
	              n, early ? early : "");
	free(early);
	free(from);
	itest_inst_free(&k);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(refused_instance_writes_no_rows_for_fires_others_ran)
{
	refused_case(false);
}
END_TEST

START_TEST(fires_nobody_could_claim_get_one_row)
{
	refused_case(true);
}
END_TEST

/* A fire the survivor retried has the retry's row alone (docs/faults.md): instance tb's run of
 * a fire has its mark (its claim started, its transaction id written) while its history rows
 * wait (a trigger refuses them: still on their way when the fault lands); tb is cut off in the
 * middle of the run and found dead at once (its session is gone), a survivor ends the
 * run's backend, finds its transaction rolled back and retries the fire (retries = 1); tb comes
 * back and writes its late record of that run, failed: left out, since the survivor took the
 * fire over. */
START_TEST(a_retried_fire_keeps_the_retrys_row_alone)
{
	struct itest_env e;
	struct itest_inst a, b, c;
	itest_env_setup(&e, "ft-taken", DB);
	/* tb fires the job; ta and tc, which would win the claims, only retry it */
	static const char job[] = "job = { name = \"slow\"; database = \"app\";"
	                          " schedule = \"%s\"; command = \"SELECT 1; SELECT pg_sleep(8)\";"
	                          " retries = 1; retry_on = \"any\"; retry_delay = \"1s\"; };\n";
	char jobs_a[512], jobs_b[512];
	snprintf(jobs_a, sizeof(jobs_a), job, "0 0 1 1 *");
	snprintf(jobs_b, sizeof(jobs_b), job, "* * * * * *");
	itest_exec(e.db, "CREATE FUNCTION public.hold_tb() RETURNS trigger LANGUAGE plpgsql AS $$"
	                 " BEGIN IF NEW.instance = 'tb' THEN RAISE EXCEPTION USING"
	                 " ERRCODE = '55000', MESSAGE = 'held back by the test'; END IF;"
	                 " RETURN NEW; END $$");
	itest_exec(e.db, "CREATE TRIGGER hold_tb BEFORE INSERT ON pgcrond.job_run_details"
	                 " FOR EACH ROW EXECUTE FUNCTION public.hold_tb()");
	int port = 0;
	pid_t relay = itest_relay_start(e.ci, &port);
	itest_inst_init(&a, &e, "ta", jobs_a);
	itest_inst_init(&b, &e, "tb", jobs_b);
	/* two survivors: neither goes alone once tb is found dead, so the retry is claimed (one
	 * alone claims it only when tb's hello comes, docs/faults.md) */
	itest_inst_init(&c, &e, "tc", jobs_a);
	inst_via_relay(&b, &e, port);
	itest_inst_up(&e, &a);
	itest_inst_up(&e, &b);
	itest_inst_up(&e, &c);
	sees(&b, "ta");
	sees(&a, "tb");
	/* a run of tb's under way, its transaction's id written (a command of several statements:
	 * pgcrond opens the transaction and reports its id before sending it) */
	static const char running[] = " FROM pgcrond.run_start m JOIN pg_catalog.pg_stat_activity x"
	                              "  ON x.backend_xid::text::bigint = m.xid % 4294967296"
	                              " WHERE m.instance = 'tb' AND m.xid > 0";
	ck_assert_msg(itest_env_wait(&e, 60, "SELECT count(*) = 1%s", running),
	              "no run of tb under way with its id written:\n%s", itest_tail(b.log));
	char sql[1024];
	snprintf(sql, sizeof(sql), "SELECT to_timestamp(m.scheduled_s)%s", running);
	char *fire = itest_scalar(e.db, sql);
	itest_relay_stop(relay);
	/* a survivor ends its backend, finds its transaction rolled back, retries the fire */
	bool retried = itest_env_wait(&e, 30,
	                              "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                              " WHERE job_name = 'slow' AND scheduled_time = '%s'"
	                              " AND instance <> 'tb' AND trigger = 'retry'",
	                              fire);
	ck_assert_msg(retried, "no survivor retried tb's run of %s:\n%s", fire, itest_tail(a.log));
	itest_exec(e.db, "DROP TRIGGER hold_tb ON pgcrond.job_run_details");
	char *back = itest_scalar(e.db, "SELECT now()");
	relay = itest_relay_start(e.ci, &port);
	ck_assert_msg(itest_wait_log(b.log, "was found dead by instance", 30),
	              "tb does not say it was found dead:\n%s", itest_tail(b.log));
	/* tb's records, held back until now, are written in order: once a row of a fire after its
	 * return is there, so is whatever it did with its record of that run */
	bool wrote = itest_env_wait(&e, 30,
	                            "SELECT count(*) > 0 FROM pgcrond.job_run_details"
	                            " WHERE instance = 'tb' AND scheduled_time > '%s'",
	                            back);
	snprintf(sql, sizeof(sql),
	         "SELECT string_agg(format('%%s %%s %%s %%s', instance, trigger, status,"
	         " left(return_message, 60)), E'\\n') FROM pgcrond.job_run_details"
	         " WHERE job_name = 'slow' AND scheduled_time = '%s'",
	         fire);
	char *rows = itest_scalar(e.db, sql);
	long long n = itest_env_count(&e,
	                              "SELECT count(*) FROM pgcrond.job_run_details"
	                              " WHERE job_name = 'slow' AND scheduled_time = '%s'",
	                              fire);
	ck_assert_msg(wrote, "tb wrote no record once back:\n%s", itest_tail(b.log));
	ck_assert_msg(n == 1, "the fire of %s has %lld rows, not the retry's alone:\n%s", fire, n,
	              rows ? rows : "");
	free(rows);
	free(back);
	free(fire);
	itest_inst_stop(&a, SIGTERM);
	itest_inst_stop(&b, SIGTERM);
	itest_inst_stop(&c, SIGTERM);
	itest_relay_stop(relay);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_inst_free(&c);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("faults");
	const struct {
		const char *name;
		const TTest *test;
	} cases[] = {
	    {"sigstop", sigstop_in_flight},
	    {"sigkill", sigkill_in_flight},
	    {"committed", committed_run_is_not_retried},
	    {"freeze", relay_freeze_in_flight},
	    {"clock", status_shows_the_clock_offset},
	    {"refused", refused_instance_writes_no_rows_for_fires_others_ran},
	    {"refused_all", fires_nobody_could_claim_get_one_row},
	    {"back", returning_instance_keeps_the_survivors_verdict},
	    {"taken", a_retried_fire_keeps_the_retrys_row_alone},
	    {"three", three_instances_one_frozen_30s},
	    {"instant", stopped_at_the_instant_runs_nothing_twice},
	    {"edge", stopped_before_the_second_blocks_nothing},
	    {"mark_retry", marks_statement_failing_on_a_deadlock_is_sent_again},
	    {"mark_refused", runs_whose_mark_is_refused_are_skipped},
	    {"mark_lost", marks_lost_with_the_connection_are_sent_again},
	    {"ahead", a_clock_ahead_fires_by_the_database_clock},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_set_timeout(tc, 240);
		tcase_add_test(tc, cases[i].test);
		itest_add_tcase(s, tc);
	}
	SRunner *sr = srunner_create(s);
	int failed = itest_run_share(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
