/* An instance alone (docs/several-instances.md "An instance alone"): it claims
 * nothing and unlocks nothing per run, its heartbeat is its only statement on its
 * coordination session (counted from the server's own log: log_statement = 'all' for the
 * database, the lines of that session's backend); when another instance says hello, both
 * claim before either fires again, and when the other stops or dies the one left goes lone
 * again: every fire runs once across the switches, with runs in flight at each. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

#define DB "pgcrond_it_lone"

static void lone_db(struct itest_env *e, const char *tag)
{
	itest_env_setup(e, tag, DB);
	itest_exec(e->db, "GRANT ALL ON ALL TABLES IN SCHEMA pgcrond TO PUBLIC");
	/* every statement of every new session of the database goes to the server's log */
	itest_exec(e->db, "ALTER DATABASE " DB " SET log_statement = 'all'");
}

static void wait_live(struct itest_env *e, const struct itest_inst *in)
{
	ck_assert_msg(
	    itest_env_wait(e, 15,
	                   "SELECT count(*) = 1 FROM pgcrond.instance WHERE name = '%s'"
	                   " AND stopped_at IS NULL AND last_seen > now() - '10 s'::interval",
	                   in->name),
	    "instance %s did not come up:\n%s", in->name, itest_tail(in->log));
}

/* The daemon logging to LOG goes lone, and JOB has N runs within 40 s. */
static void wait_lone_runs(struct itest_env *e, const char *log, const char *job, int n)
{
	ck_assert_msg(itest_wait_log(log, "is alone", 20), "it never went lone:\n%s",
	              itest_tail(log));
	ck_assert_msg(itest_env_wait(e, 40,
	                             "SELECT count(*) >= %d FROM pgcrond.job_run_details"
	                             " WHERE job_name = '%s' AND status = 'succeeded'",
	                             n, job),
	              "%s has not run %d times:\n%s", job, n, itest_tail(log));
}

struct count_arg {
	const char *log, *needle;
	int n;
};

static bool count_reached(void *arg)
{
	const struct count_arg *a = arg;
	return itest_count_in_file(a->log, a->needle) >= a->n;
}

/* Whether LOG holds NEEDLE N times within TIMEOUT_S. */
static bool wait_count(const char *log, const char *needle, int n, double timeout_s)
{
	struct count_arg a = {log, needle, n};
	return itest_wait_until(count_reached, &a, timeout_s);
}

/* The statements the backend PID ran, by the server's log, from byte FROM on: their count,
 * and their first 60 characters each into OUT. */
static int statements_of(const char *log, long from, int pid, char *out, size_t len)
{
	FILE *f = fopen(log, "r");
	ck_assert_msg(f != NULL, "cannot read %s", log);
	fseek(f, from, SEEK_SET);
	char tag[32], line[65536];
	snprintf(tag, sizeof(tag), " [%d] ", pid);
	int n = 0;
	size_t used = 0;
	out[0] = '\0';
	/* the session carries the history's writes too (one session per database): a batch
	 * (INSERT ... pgcrond.job_run_details), and the set_config of its time bound just before
	 * it, are the history's, not counted */
	bool bound = false;
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, tag))
			continue;
		char *s = strstr(line, "LOG:  execute ");
		if (!s)
			s = strstr(line, "LOG:  statement: ");
		if (!s)
			continue;
		if (strstr(s, "job_run_details")) {
			bound = false;
			continue;
		}
		if (bound)
			n++; /* the set_config before was not a batch's */
		bound = strstr(s, "set_config('statement_timeout'") != NULL;
		if (bound)
			continue;
		n++;
		int w = snprintf(out + used, len - used, "  %.60s\n", s + 6);
		if (w > 0 && (size_t)w < len - used)
			used += (size_t)w;
	}
	fclose(f);
	return n + bound;
}

/* Statements the coordination session of instance IN sends in 8 s, once settled. */
static int count_8s(struct itest_env *e, const struct itest_inst *in, char *what, size_t len)
{
	char q[256];
	snprintf(q, sizeof(q), "SELECT backend_pid FROM pgcrond.instance WHERE name = '%s'",
	         in->name);
	int pid = (int)itest_scalar_ll(e->db, q);
	char *log = itest_server_log();
	long from = itest_file_size(log);
	itest_sleep(8);
	/* the same backend all along (a reconnect would hide statements) */
	ck_assert_msg(itest_scalar_ll(e->db, q) == pid, "the coordination session changed");
	int n = statements_of(log, from, pid, what, len);
	free(log);
	return n;
}

static char *ten_jobs(void)
{
	static char jobs[4096];
	size_t used = 0;
	used += (size_t)snprintf(jobs + used, sizeof(jobs) - used, "jobs = (");
	for (int i = 0; i < 10; i++)
		used += (size_t)snprintf(jobs + used, sizeof(jobs) - used,
		                         "%s{ name = \"t%d\"; command = \"SELECT 1\";"
		                         " database = \"app\"; schedule = \"* * * * * *\"; }",
		                         i ? ",\n" : "", i);
	snprintf(jobs + used, sizeof(jobs) - used, " );\n");
	return jobs;
}

/* A lone instance claims nothing: with 10 every-second jobs it sends at most 2
 * statements of its own in 8 s (its heartbeat), besides its history's. The same instance
 * beside another one claims: that count shows the log sees every statement. */
START_TEST(lone_instance_sends_only_its_heartbeat)
{
	struct itest_env e;
	struct itest_inst a;
	lone_db(&e, "lone-quiet");
	itest_inst_init(&a, &e, "solo", ten_jobs());
	itest_inst_start(&a);
	wait_live(&e, &a);
	ck_assert_msg(itest_wait_log(a.log, "is alone", 20), "it never went lone:\n%s",
	              itest_tail(a.log));
	itest_sleep(2); /* its start's statements (jobs, purge) behind it */
	long long before = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details");
	char what[8192];
	int n = count_8s(&e, &a, what, sizeof(what));
	long long ran =
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details") - before;
	fprintf(stderr,
	        "it_lone: lone, 10 jobs every second: %d statement(s) in 8 s, %lld runs:\n%s", n,
	        ran, what);
	ck_assert_msg(ran >= 60, "only %lld runs in 8 s", ran);
	ck_assert_msg(n <= 2, "%d statements in 8 s:\n%s", n, what);
	itest_assert_scalar(e.db, "SELECT count(*) FROM pgcrond.fire_claim", "0");
	itest_assert_scalar(e.db, "SELECT count(*) FROM pgcrond.job_lock", "0");
	int st = 0;
	char *out = itest_cli(&st, "status", "-c", a.conf, NULL);
	ck_assert_msg(st == 0 && strstr(out, "alone (it claims nothing)"), "status (%d):\n%s", st,
	              out);
	free(out);

	/* beside another instance: it claims */
	struct itest_inst b;
	itest_inst_init(&b, &e, "other", ten_jobs());
	itest_inst_start(&b);
	wait_live(&e, &b);
	itest_sleep(3);
	int claiming = count_8s(&e, &a, what, sizeof(what));
	fprintf(stderr, "it_lone: beside another, the same: %d statements in 8 s\n", claiming);
	ck_assert_msg(claiming >= 8, "only %d statements in 8 s while claiming:\n%s", claiming,
	              what);
	ck_assert_int_eq(itest_inst_stop(&b, SIGTERM), 0);
	ck_assert_int_eq(itest_inst_stop(&a, SIGTERM), 0);
	itest_inst_free(&b);
	itest_inst_free(&a);
	itest_env_teardown(&e);
}
END_TEST

/* Every `skipped` row of JOB (its message "previous run ...") says MESSAGE, an expression of
 * P, the row of the job's run ahead of the fire (the last before it that was not skipped). */
static void assert_skips_name(struct itest_env *e, const char *job, const char *message)
{
	char q[2048];
	snprintf(q, sizeof(q),
	         "SELECT coalesce(string_agg(s.scheduled_time || ': ' || s.return_message, E'\\n'),"
	         " '') FROM pgcrond.job_run_details s WHERE s.job_name = '%s' AND s.status ="
	         " 'skipped' AND s.return_message LIKE 'previous run %%' AND s.return_message IS"
	         " DISTINCT FROM (SELECT %s FROM pgcrond.job_run_details p WHERE p.job_name ="
	         " s.job_name AND p.status <> 'skipped' AND p.scheduled_time < s.scheduled_time"
	         " ORDER BY p.scheduled_time DESC LIMIT 1)",
	         job, message);
	char *wrong = itest_scalar(e->db, q);
	ck_assert_msg(wrong && !*wrong, "skipped rows that do not say what the fire met:\n%s",
	              wrong);
	free(wrong);
}

/* A lone instance writes two `skipped` rows a run for the fires skipped behind it (overlap =
 * skip), the first and the last, not one a fire (at 15,000 jobs a second those rows would be
 * two in three of the history's and hold the runs back): a job every second whose runs
 * take 3.2 s, a run in flight at the stop; the fires skipped without a row are logged each, and
 * the fire before each run has its row (what a start's catch-up reads as served last). */
START_TEST(lone_skips_one_row_a_run)
{
	struct itest_env e;
	struct itest_inst a;
	lone_db(&e, "lone-skips");
	itest_inst_init(&a, &e, "solo",
	                "job = { name = \"slow\"; command = \"SELECT pg_sleep(3.2)\";"
	                " database = \"app\"; schedule = \"* * * * * *\"; };\n");
	itest_inst_start(&a);
	wait_live(&e, &a);
	wait_lone_runs(&e, a.log, "slow", 4);
	ck_assert_msg(
	    itest_env_wait(&e, 10,
	                   "SELECT count(*) = 1 FROM pg_stat_activity WHERE state = 'active'"
	                   " AND query LIKE 'SELECT pg_sleep(3.2)%%'"),
	    "no run in flight");
	ck_assert_int_eq(itest_inst_stop(&a, SIGTERM), 0);
	long long runs = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE job_name = 'slow' AND status = 'succeeded'");
	long long rows = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE job_name = 'slow' AND status = 'skipped'"
	                                     " AND return_message LIKE 'previous run %%'");
	int rowless = itest_count_in_file(a.log, "(no history row)");
	fprintf(stderr, "it_lone: %lld runs, %lld skipped rows, %d skips without a row\n", runs,
	        rows, rowless);
	/* the run in flight at the stop had its skipped fires too */
	ck_assert_msg(rows >= runs - 1 && rows <= 2 * (runs + 1),
	              "%lld skipped rows for %lld runs:\n%s", rows, runs, itest_tail(a.log));
	/* the fire just before each run (but the first) is in the history, and the job's last
	 * fire before the stop too */
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.job_run_details r WHERE job_name = 'slow'"
	                    " AND status = 'succeeded' AND scheduled_time > (SELECT"
	                    " min(scheduled_time) FROM pgcrond.job_run_details WHERE job_name ="
	                    " 'slow' AND status = 'succeeded') AND NOT EXISTS (SELECT 1 FROM"
	                    " pgcrond.job_run_details p WHERE p.job_name = 'slow' AND"
	                    " p.scheduled_time = r.scheduled_time - interval '1 s')",
	                    "0");
	ck_assert_msg(rowless >= runs, "%d fires skipped without a row for %lld runs", rowless,
	              runs);
	/* each row says what its fire met, the last's (written as the run ended) too: the run
	 * ahead of it, started when that run's row says */
	assert_skips_name(&e, "slow",
	                  "'previous run still running (started ' || to_char(p.start_time AT TIME"
	                  " ZONE 'UTC', 'HH24:MI:SS') || 'Z); overlap = skip'");
	itest_inst_free(&a);
	itest_env_teardown(&e);
}
END_TEST

/* The same behind a run that waits for a run slot (max_running = 1, held by a job whose runs
 * take 3.5 s): its rows, the last's too, say it was waiting, due when it was, as the log said
 * of each fire, not that it was running (it ran after, before the last row was written). */
START_TEST(lone_skips_behind_a_queued_run)
{
	struct itest_env e;
	struct itest_inst a;
	lone_db(&e, "lone-skipsq");
	itest_inst_init(&a, &e, "solo",
	                "jobs = ( { name = \"hog\"; command = \"SELECT pg_sleep(3.5)\";"
	                " database = \"app\"; schedule = \"*/4 * * * * *\"; },\n"
	                "  { name = \"q\"; command = \"SELECT 1\";"
	                " database = \"app\"; schedule = \"* * * * * *\"; } );\n");
	FILE *f = fopen(a.conf, "a");
	ck_assert(f != NULL);
	fputs("max_running = 1;\n", f);
	fclose(f);
	itest_inst_start(&a);
	wait_live(&e, &a);
	wait_lone_runs(&e, a.log, "hog", 3);
	ck_assert_int_eq(itest_inst_stop(&a, SIGTERM), 0);
	/* a row written as a run ended, for a fire skipped without one while it waited */
	ck_assert_msg(itest_env_count(&e,
	                              "SELECT count(*) FROM pgcrond.job_run_details s"
	                              " WHERE job_name = 'q' AND status = 'skipped' AND"
	                              " start_time > (SELECT min(r.start_time) FROM"
	                              " pgcrond.job_run_details r WHERE r.job_name = 'q'"
	                              " AND r.status = 'succeeded' AND r.scheduled_time <"
	                              " s.scheduled_time AND r.start_time > s.scheduled_time)") > 0,
	              "no row of a fire skipped without one:\n%s", itest_tail(a.log));
	assert_skips_name(&e, "q",
	                  "'previous run still waiting for a run slot (due ' ||"
	                  " to_char(p.scheduled_time AT TIME ZONE 'UTC', 'HH24:MI:SS') ||"
	                  " 'Z); overlap = skip'");
	itest_inst_free(&a);
	itest_env_teardown(&e);
}
END_TEST

/* The fires of jobs s1..s3 from FROM to TO that have no served row (a run; a skip only where
 * a run of an earlier fire of its job was still under way past the instant, or within 2 s of
 * the kill at KILLED, whose run's job lock waits for its lease), and those with more than one
 * row: into OUT; returns how many of each in *MISSING and *TWICE, and in *LEFT_N the fires
 * the kill left (LEFT_BY_KILL). */
/* A fire (job j, instant t) whose run la began (its start mark set its claim's `started`) and
 * was killed before its history row was written: whether it ran is not known, so no survivor
 * serves it (docs/faults.md); it is its instance's next process's to look at. */
#define LEFT_BY_KILL                                                                               \
	"(NOT EXISTS (SELECT FROM pgcrond.job_run_details r WHERE r.job_name = j"                  \
	" AND r.scheduled_time = t) AND EXISTS (SELECT FROM pgcrond.fire_claim c"                  \
	" WHERE c.job_name = j AND c.fire_key = 's:' || extract(epoch FROM t)::bigint"             \
	" AND c.instance = 'la' AND c.started AND t BETWEEN '%s'::timestamptz - '2 s'::interval"   \
	" AND '%s'::timestamptz))"

static void judge(struct itest_env *e, const char *from, const char *to, const char *killed,
                  long long *missing, long long *left_n, long long *twice, char **out)
{
	char served[2048], left[1024], sql[8192];
	snprintf(left, sizeof(left), LEFT_BY_KILL, killed, killed);
	snprintf(served, sizeof(served),
	         "(r.status IN ('succeeded', 'failed', 'running') OR (r.status = 'skipped' AND"
	         " r.scheduled_time > '%s'::timestamptz AND r.scheduled_time <= '%s'::timestamptz"
	         " + '2 s'::interval) OR (r.status = 'skipped' AND EXISTS (SELECT FROM"
	         " pgcrond.job_run_details p WHERE p.job_name = r.job_name AND p.status IN"
	         " ('succeeded', 'failed') AND p.scheduled_time < r.scheduled_time"
	         " AND p.end_time > r.scheduled_time)))",
	         killed, killed);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM unnest(ARRAY['s1', 's2', 's3']) j,"
	         " generate_series('%s'::timestamptz, '%s'::timestamptz, '1 s'::interval) t"
	         " WHERE NOT EXISTS (SELECT FROM pgcrond.job_run_details r WHERE r.job_name = j"
	         " AND r.scheduled_time = t AND %s) AND NOT %s",
	         from, to, served, left);
	*missing = itest_scalar_ll(e->db, sql);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM unnest(ARRAY['s1', 's2', 's3']) j,"
	         " generate_series('%s'::timestamptz, '%s'::timestamptz, '1 s'::interval) t"
	         " WHERE %s",
	         from, to, left);
	*left_n = itest_scalar_ll(e->db, sql);
	snprintf(
	    sql, sizeof(sql),
	    "SELECT count(*) FROM (SELECT FROM pgcrond.job_run_details WHERE job_name LIKE 's_'"
	    " AND scheduled_time BETWEEN '%s' AND '%s' GROUP BY job_name, scheduled_time"
	    " HAVING count(*) > 1) d",
	    from, to);
	*twice = itest_scalar_ll(e->db, sql);
	snprintf(sql, sizeof(sql),
	         "SELECT string_agg(format('%%s %%s: %%s', j, t::time, coalesce((SELECT"
	         " string_agg(format('%%s %%s %%s', d.instance, d.status, d.return_message),"
	         " ' | ') FROM pgcrond.job_run_details d WHERE d.job_name = j"
	         " AND d.scheduled_time = t), 'no row')), E'\\n')"
	         " FROM unnest(ARRAY['s1', 's2', 's3']) j, generate_series('%s'::timestamptz,"
	         " '%s'::timestamptz, '1 s'::interval) t WHERE (SELECT count(*) FROM"
	         " pgcrond.job_run_details r WHERE r.job_name = j AND r.scheduled_time = t) > 1"
	         " OR NOT EXISTS (SELECT FROM pgcrond.job_run_details r WHERE r.job_name = j"
	         " AND r.scheduled_time = t AND %s)",
	         from, to, served);
	*out = itest_scalar(e->db, sql);
}

/* A lone instance (la) meets a newcomer (lb): both claim, from la's answer to lb's hello;
 * lb stops (SIGTERM): la goes lone again; another (lc) comes: both claim; la is killed
 * (SIGKILL): lc finds it dead and goes lone; la's next process comes (both claim) and stops
 * (lc is alone again). Jobs s1 and s2 insert a row, s3 sleeps 0.9 s
 * first: a run of it is under way at most moments of each switch. Every fire of the window
 * has one row, and a served one (what the kill leaves: its run closed and a skip within the
 * lock's lease); s1's inserts match its successes. */
START_TEST(lone_and_claiming_switch_both_ways)
{
	struct itest_env e;
	struct itest_inst a, b, c;
	lone_db(&e, "lone-switch");
	itest_exec(e.db, "CREATE TABLE ran (job text, at timestamptz DEFAULT clock_timestamp());"
	                 "GRANT ALL ON ran TO PUBLIC");
	const char *jobs =
	    "jobs = ( { name = \"s1\"; command = \"INSERT INTO ran (job) VALUES ('s1')\";"
	    " database = \"app\"; schedule = \"* * * * * *\"; },\n"
	    "{ name = \"s2\"; command = \"INSERT INTO ran (job) VALUES ('s2')\";"
	    " database = \"app\"; schedule = \"* * * * * *\"; },\n"
	    "{ name = \"s3\"; command = \"SELECT pg_sleep(0.9); INSERT INTO ran (job) VALUES "
	    "('s3')\"; database = \"app\"; schedule = \"* * * * * *\"; } );\n";
	itest_inst_init(&a, &e, "la", jobs);
	itest_inst_init(&b, &e, "lb", jobs);
	itest_inst_init(&c, &e, "lc", jobs);
	itest_inst_start(&a);
	wait_live(&e, &a);
	ck_assert_msg(itest_wait_log(a.log, "is alone", 20), "la never went lone:\n%s",
	              itest_tail(a.log));
	char *from =
	    itest_scalar(e.db, "SELECT (date_trunc('second', now()) + '1 s'::interval)::text");
	itest_sleep(3);

	/* a newcomer: la claims again at its hello */
	itest_inst_start(&b);
	wait_live(&e, &b);
	ck_assert_msg(itest_wait_log(a.log, "claims every fire again", 15),
	              "la did not claim again when lb came:\n%s", itest_tail(a.log));
	itest_sleep(5);
	itest_assert_scalar(e.db,
	                    "SELECT count(*) > 0 FROM pgcrond.job_run_details WHERE instance = 'lb'"
	                    " AND status = 'succeeded'",
	                    "t");
	/* it stops: la goes lone again (at its next heartbeat) */
	ck_assert_int_eq(itest_inst_stop(&b, SIGTERM), 0);
	ck_assert_msg(wait_count(a.log, "is alone", 2, 25),
	              "la did not go lone again after lb stopped:\n%s", itest_tail(a.log));
	itest_sleep(3);

	/* another comes, and la is killed while both claim: lc goes lone */
	itest_inst_start(&c);
	wait_live(&e, &c);
	ck_assert_msg(wait_count(a.log, "claims every fire again", 2, 15),
	              "la did not claim again when lc came:\n%s", itest_tail(a.log));
	itest_sleep(4);
	char *killed = itest_scalar(e.db, "SELECT clock_timestamp()::text");
	ck_assert_int_eq(itest_inst_stop(&a, SIGKILL), 128 + SIGKILL);
	ck_assert_msg(itest_wait_log(c.log, "is alone", 30),
	              "lc never went lone after la died:\n%s", itest_tail(c.log));
	itest_sleep(2);
	/* la's next process: both claim again, and lc is alone once it stops */
	itest_inst_start(&a);
	wait_live(&e, &a);
	ck_assert_msg(wait_count(c.log, "claims every fire again", 1, 15),
	              "lc did not claim again when la came back:\n%s", itest_tail(c.log));
	itest_sleep(3);
	ck_assert_int_eq(itest_inst_stop(&a, SIGTERM), 0);
	ck_assert_msg(wait_count(c.log, "is alone", 2, 25),
	              "lc did not go lone again after la stopped:\n%s", itest_tail(c.log));
	itest_sleep(2);
	char *to =
	    itest_scalar(e.db, "SELECT (date_trunc('second', now()) - '1 s'::interval)::text");
	/* the served rows of the window are in (a fire's row is written as its run starts) */
	itest_sleep(2);
	ck_assert_int_eq(itest_inst_stop(&c, SIGTERM), 0);

	long long missing = 0, left = 0, twice = 0;
	char *bad = NULL;
	judge(&e, from, to, killed, &missing, &left, &twice, &bad);
	long long fires = itest_env_count(
	    &e,
	    "SELECT 3 * (extract(epoch FROM '%s'::timestamptz - '%s'::timestamptz)::bigint + 1)",
	    to, from);
	fprintf(stderr,
	        "it_lone: switch both ways: %lld fires from %s to %s (la killed at %s): %lld not "
	        "served, %lld left by the kill (begun, no row), %lld with two rows\n%s\n",
	        fires, from, to, killed, missing, left, twice, bad ? bad : "");
	ck_assert_msg(missing == 0 && twice == 0, "%lld fires not served, %lld twice:\n%s", missing,
	              twice, bad ? bad : "");
	/* every statement that succeeded has its row, and none ran twice (a kill may leave one
	 * committed run closed as failed) */
	long long ran = itest_env_count(
	    &e, "SELECT count(*) FROM ran WHERE job = 's1' AND at >= '%s'::timestamptz", from);
	long long ok =
	    itest_env_count(&e,
	                    "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name"
	                    " = 's1' AND status = 'succeeded' AND scheduled_time >= '%s'",
	                    from);
	ck_assert_msg(ran >= ok && ran - ok <= 1, "s1: %lld statements, %lld successes", ran, ok);
	free(bad);
	free(from);
	free(to);
	free(killed);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_inst_free(&c);
	itest_env_teardown(&e);
}
END_TEST

/* An instance alone is frozen (SIGSTOP) while another starts: the newcomer's claims are
 * refused (the frozen one may resume and run those fires unclaimed) until it finds the frozen
 * one dead, here once it is killed; the fires of that time, which nobody ran, get one
 * `skipped` row each, written by the newcomer once it can claim (docs/faults.md, "Frozen
 * while alone"), and none has two rows. */
START_TEST(frozen_while_alone)
{
	struct itest_env e;
	struct itest_inst a, b;
	lone_db(&e, "lone-frozen");
	const char *jobs = "jobs = ( { name = \"s1\"; command = \"SELECT 1\";"
	                   " database = \"app\"; schedule = \"* * * * * *\"; },\n"
	                   "{ name = \"s2\"; command = \"SELECT 2\";"
	                   " database = \"app\"; schedule = \"* * * * * *\"; } );\n";
	itest_inst_init(&a, &e, "fa", jobs);
	itest_inst_init(&b, &e, "fb", jobs);
	itest_inst_start(&a);
	wait_live(&e, &a);
	ck_assert_msg(itest_wait_log(a.log, "is alone", 20), "fa never went lone:\n%s",
	              itest_tail(a.log));
	itest_sleep(2);
	ck_assert_int_eq(kill(a.pid, SIGSTOP), 0);
	itest_inst_start(&b);
	wait_live(&e, &b);
	/* (fires from fb's start on: those before had only fa, frozen) */
	char *from =
	    itest_scalar(e.db, "SELECT (date_trunc('second', now()) + '2 s'::interval)::text");
	ck_assert_msg(itest_wait_log(b.log, "runs unclaimed and has not yet answered", 15),
	              "fb's claims were not refused:\n%s", itest_tail(b.log));
	itest_sleep(3);
	ck_assert_int_eq(itest_inst_stop(&a, SIGKILL), 128 + SIGKILL);
	ck_assert_msg(itest_wait_log(b.log, "instance \"fa\" died", 15),
	              "fb never found fa dead:\n%s", itest_tail(b.log));
	ck_assert_msg(itest_wait_log(b.log, "is alone", 15), "fb never went lone:\n%s",
	              itest_tail(b.log));
	char *to =
	    itest_scalar(e.db, "SELECT (date_trunc('second', now()) - '1 s'::interval)::text");
	/* each refused fire is checked once its instant is 10 s old */
	itest_env_wait(&e, 40, "SELECT now() > '%s'::timestamptz + interval '16 seconds'", to);
	char sql[2048];
	snprintf(sql, sizeof(sql),
	         "SELECT string_agg(format('%%s %%s: %%s', j, t::time, coalesce((SELECT"
	         " string_agg(format('%%s %%s %%s', d.instance, d.status, d.return_message),"
	         " ' | ') FROM pgcrond.job_run_details d WHERE d.job_name = j"
	         " AND d.scheduled_time = t), 'no row')), E'\\n')"
	         " FROM unnest(ARRAY['s1', 's2']) j, generate_series('%s'::timestamptz,"
	         " '%s'::timestamptz, '1 s'::interval) t WHERE (SELECT count(*) FROM"
	         " pgcrond.job_run_details r WHERE r.job_name = j AND r.scheduled_time = t) <> 1",
	         from, to);
	char *bad = itest_scalar(e.db, sql);
	long long skipped =
	    itest_env_count(&e,
	                    "SELECT count(*) FROM pgcrond.job_run_details WHERE status = 'skipped'"
	                    " AND return_message LIKE '%%runs unclaimed%%' AND scheduled_time "
	                    "BETWEEN '%s' AND '%s'",
	                    from, to);
	fprintf(stderr,
	        "it_lone: frozen while alone: fires from %s to %s: %lld skipped, wrong:\n%s\n",
	        from, to, skipped, bad ? bad : "(none)");
	ck_assert_msg(bad == NULL, "fires without exactly one row:\n%s", bad);
	ck_assert_msg(skipped > 0, "no fire was recorded skipped");
	ck_assert_int_eq(itest_inst_stop(&b, SIGTERM), 0);
	free(from);
	free(to);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* A run's connection goes silent: a relay on 127.0.0.1 carries every connection of
 * a lone instance, its job's and its own session's (the history and the heartbeat), and stops
 * forwarding them while a run is under way, as a NAT that forgot them would: the old flows
 * are dead, new ones go through. The own session is back within connection_check (30 s); the
 * run, whose backend sat idle on the server while it waited for an answer that never came, is
 * failed as a lost connection, its backend ended, and retried, and the job runs again within
 * 45 s of the fault. No two runs of the job overlap (each run notes its span on the server),
 * and no fire has two rows of one attempt. */
START_TEST(silent_run_connection_is_found)
{
	struct itest_env e;
	int port = 0;
	itest_env_setup(&e, "lone-silent", DB);
	pid_t relay = itest_relay_start(e.ci, &port);
	itest_exec(e.db, "CREATE TABLE ticks (started timestamptz, ended timestamptz, pid int)");
	itest_write_file(e.conf,
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = {\n"
	                 "  app = { conninfo = \"host=127.0.0.1 port=%d user=postgres dbname=" DB
	                 "\"; pool = 1; };\n"
	                 "};\n"
	                 "history = { database = \"app\"; };\n",
	                 e.dir, e.dir, port);
	itest_env_job(&e, "10-tick.conf",
	              "job = { name = \"tick\"; database = \"app\"; schedule = \"*/2 * * * * *\";\n"
	              "        retries = 1; retry_delay = \"1s\";\n"
	              "        command = \"SELECT pg_sleep(1.5); INSERT INTO ticks"
	              " VALUES (now(), clock_timestamp(), pg_backend_pid())\"; };\n");
	itest_env_start(&e);
	wait_lone_runs(&e, e.log, "tick", 2); /* through the relay */
	/* a run under way, at least 1 s of its sleep still to go */
	const char *active = "SELECT pid FROM pg_stat_activity WHERE datname = '" DB "'"
	                     " AND state = 'active' AND query LIKE 'SELECT pg_sleep(1.5)%'"
	                     " AND clock_timestamp() - query_start < '0.5 s'::interval";
	char *pid = itest_wait_value(e.db, active, 10);
	ck_assert_msg(pid != NULL, "no run under way:\n%s", itest_tail(e.log));
	int stuck = atoi(pid);
	free(pid);
	kill(relay, SIGUSR1); /* every connection the daemon holds is now silent */
	double fault = itest_now();
	char *frozen = itest_scalar(e.db, "SELECT clock_timestamp()::text");
	ck_assert_msg(stuck > 0, "the run's backend was not found");

	ck_assert_msg(itest_env_wait(&e, 45,
	                             "SELECT count(*) > 0 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND status = 'succeeded' "
	                             "AND start_time > '%s'",
	                             frozen),
	              "the job did not run again within 45 s of the fault:\n%s", itest_tail(e.log));
	fprintf(stderr, "it_lone: silent: the job ran again %.1f s after the fault\n",
	        itest_now() - fault);
	char q[1024];
	snprintf(q, sizeof(q),
	         "SELECT format('%%s %%s %%s', status, sqlstate, return_message)"
	         " FROM pgcrond.job_run_details WHERE job_name = 'tick' AND job_pid = %d"
	         " AND start_time < '%s' ORDER BY start_time DESC LIMIT 1",
	         stuck, frozen);
	char *row = itest_scalar(e.db, q);
	fprintf(stderr, "it_lone: silent: the stuck run's row: %s\n", row ? row : "(none)");
	ck_assert_msg(
	    row && strncmp(row, "failed 08006 connection went silent: no answer for ", 51) == 0 &&
	        strstr(row, "backend") && strstr(row, "was ended"),
	    "the stuck run's row: %s\n%s", row ? row : "(none)", itest_tail(e.log));
	/* its backend is gone from the server; its statement had ended there (the freeze came
	 * during its sleep), so it committed its tick, and it is not retried: a retry would
	 * tick twice for one fire */
	snprintf(q, sizeof(q), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", stuck);
	ck_assert_int_eq(itest_scalar_ll(e.db, q), 0);
	ck_assert_msg(strstr(row, "not retried"), "the stuck run's row: %s", row);
	snprintf(q, sizeof(q),
	         "SELECT count(*) FROM ticks WHERE pid = %d AND started >= (SELECT start_time"
	         " FROM pgcrond.job_run_details WHERE job_pid = %d ORDER BY start_time DESC"
	         " LIMIT 1) - '0.5 s'::interval",
	         stuck, stuck);
	ck_assert_int_eq(itest_scalar_ll(e.db, q), 1);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE job_name = 'tick' AND trigger = 'retry'"),
	                 0);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	itest_assert_scalar(
	    e.db, "SELECT count(*) FROM pgcrond.job_run_details WHERE status = 'running'", "0");
	/* no two runs at once, by the server's clock and by the history's */
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM ticks a JOIN ticks b ON a.ctid < b.ctid"
	                    " AND tstzrange(a.started, a.ended) && tstzrange(b.started, b.ended)",
	                    "0");
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.job_run_details a"
	                    " JOIN pgcrond.job_run_details b ON a.runid < b.runid"
	                    " AND tstzrange(a.start_time, a.end_time) && tstzrange(b.start_time,"
	                    " b.end_time) WHERE a.job_name = 'tick' AND b.job_name = 'tick'"
	                    " AND a.status IN ('succeeded', 'failed')"
	                    " AND b.status IN ('succeeded', 'failed')",
	                    "0");
	/* nothing recorded twice: one run per fire and attempt (a fire skipped while the run hung
	 * may be served by the catch-up that follows a final lost connection: docs/jobs.md,
	 * "Catch-up"), one tick per success */
	char *twice =
	    itest_scalar(e.db, "SELECT string_agg(format('%s %s %s %s %s', scheduled_time,"
	                       " attempt, trigger, status, left(return_message, 40)), '; ')"
	                       " FROM pgcrond.job_run_details d WHERE job_name = 'tick'"
	                       " AND status <> 'skipped' AND (scheduled_time, attempt) IN"
	                       " (SELECT scheduled_time, attempt FROM pgcrond.job_run_details"
	                       " WHERE job_name = 'tick' AND status <> 'skipped'"
	                       " GROUP BY 1, 2 HAVING count(*) > 1)");
	ck_assert_msg(twice == NULL || !*twice, "fires recorded twice: %s", twice);
	free(twice);
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.job_run_details d"
	                    " WHERE d.job_name = 'tick' AND d.status = 'succeeded' AND (SELECT"
	                    " count(*) FROM ticks t WHERE t.started BETWEEN d.start_time"
	                    " - '1 s'::interval AND d.end_time) <> 1",
	                    "0");
	free(row);
	free(frozen);
	itest_relay_stop(relay);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lone");
	const struct {
		const char *name;
		const TTest *test;
	} cases[] = {
	    {"quiet", lone_instance_sends_only_its_heartbeat},
	    {"skips", lone_skips_one_row_a_run},
	    {"skipsq", lone_skips_behind_a_queued_run},
	    {"switch", lone_and_claiming_switch_both_ways},
	    {"frozen", frozen_while_alone},
	    {"silent", silent_run_connection_is_found},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_set_timeout(tc, 300);
		tcase_add_test(tc, cases[i].test);
		itest_add_tcase(s, tc);
	}
	SRunner *sr = srunner_create(s);
	int failed = itest_run_share(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
