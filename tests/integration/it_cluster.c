/* Several instances on one history database (cluster.h, docs/several-instances.md):
 * every fire runs once in the whole cluster, across SIGKILLs; a second live
 * instance of the same name refuses to start; a dead instance's runs are closed by a
 * survivor; a notification burst is one run. The SIGKILL rotation runs ~30 s by default and
 * for PGCROND_SOAK_S seconds (default 180) with PGCROND_SOAK=1. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <linux/sched.h> /* CLONE_NEWUTS (<sched.h> is core/src/sched/sched.h here) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cron.h"
#include "itest.h"

#define DB "pgcrond_it_cluster"

/* The shared database: every schema step, including step 4 (applied here as well, since a
 * branch may lack an earlier step and itest_env_setup stops at the first gap). */
static void cluster_db(struct itest_env *e, const char *tag)
{
	itest_env_setup(e, tag, DB);
	char *sql = itest_read_file(TEST_SOURCE_DIR "/../sql/pgcrond--4.sql");
	ck_assert_msg(sql[0], "no sql/pgcrond--4.sql");
	itest_exec(e->db, sql);
	free(sql);
	itest_exec(e->db, "GRANT ALL ON ALL TABLES IN SCHEMA pgcrond TO PUBLIC");
}

/* An instance alone claims nothing (it_lone): the cases that look at one instance's claims
 * (their batching, their order, a slow one, a killed process's) run beside another live
 * instance, here only its row: seen an hour ahead, it is never late and never found dead. */
static void claims_alone(struct itest_env *e)
{
	itest_exec(e->db, "INSERT INTO pgcrond.instance (name, boot_id, last_seen, dead_after_ms)"
	                  " VALUES ('peer', 'peer-boot', now() + interval '1 hour', 3600000)");
}

/* The instance holds its name once its heartbeat row exists. */
static void wait_live(struct itest_env *e, const struct itest_inst *in)
{
	ck_assert_msg(
	    itest_env_wait(e, 15,
	                   "SELECT count(*) = 1 FROM pgcrond.instance WHERE name = '%s'"
	                   " AND stopped_at IS NULL AND last_seen > now() - '10 s'::interval",
	                   in->name),
	    "instance %s did not come up:\n%s", in->name, itest_tail(in->log));
}

START_TEST(same_name_refused_and_runs_kept)
{
	struct itest_env e;
	struct itest_inst a, b;
	cluster_db(&e, "cl-same");
	const char *jobs =
	    "job = { name = \"slow\"; command = \"SELECT pg_sleep(25)\";"
	    " database = \"app\"; schedule = \"* * * * * *\"; overlap = \"skip\"; };\n";
	itest_inst_init(&a, &e, "alpha", jobs);
	itest_inst_init(&b, &e, "alpha", jobs);
	itest_inst_start(&a);
	wait_live(&e, &a);
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'slow' AND status = 'running'"),
	              "no running row:\n%s", itest_tail(a.log));
	/* a second daemon with the same name, its own state_dir, the same database */
	itest_inst_start(&b);
	int st = itest_daemon_stop(b.pid, 0, 20); /* signal 0: only wait for its exit */
	b.pid = 0;
	char *log = itest_read_file(b.log);
	ck_assert_msg(st == 78, "second instance exit status %d, want 78:\n%s", st, log);
	ck_assert_msg(strstr(log, "another pgcrond is running as instance \"alpha\""),
	              "no clear message:\n%s", log);
	free(log);
	/* the first one's run was left alone, and it ran nothing twice */
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 'slow'"
	                    " AND status = 'running'",
	                    "1");
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 'slow'"
	                    " AND status = 'failed'",
	                    "0");
	ck_assert_int_eq(itest_inst_stop(&a, SIGKILL), 128 + SIGKILL);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* An instance that starts says hello (a NOTIFY after it holds its name): the live ones beat
 * at once and see it within a second, instead of at their next heartbeat (5 s): from then on
 * they mark their runs, which a takeover needs (docs/faults.md). Measured on the daemons' own
 * log stamps, from the newcomer's first heartbeat (its line naming the others) to the line of
 * ha's that names it, with 1 s of slack for a loaded machine: the test's own polling is not
 * in the figure. Three newcomers in a row: without the hello all three are seen within 2 s by
 * chance about once in sixteen tries ((2/5)^3). */
START_TEST(newcomer_is_seen_at_once)
{
	struct itest_env e;
	struct itest_inst in[4];
	const char *names[] = {"ha", "hb", "hc", "hd"},
	           *seen[] = {NULL, "other live instances: hb", "other live instances: hb, hc",
	                      "other live instances: hb, hc, hd"};
	cluster_db(&e, "cl-hello");
	const char *jobs = "job = { name = \"tick\"; command = \"SELECT 1\";"
	                   " database = \"app\"; schedule = \"* * * * * *\"; };\n";
	for (int i = 0; i < 4; i++) {
		itest_inst_init(&in[i], &e, names[i], jobs);
		itest_inst_start(&in[i]);
		wait_live(&e, &in[i]);
		if (i == 0) {
			itest_sleep(2); /* its first heartbeat is behind it */
			continue;
		}
		ck_assert_msg(itest_wait_log(in[0].log, seen[i], 15), "ha never saw %s:\n%s",
		              names[i], itest_tail(in[0].log));
		char first_beat[64];
		snprintf(first_beat, sizeof(first_beat), "cluster: instance \"%s\"; other live",
		         names[i]);
		ck_assert_msg(itest_wait_log(in[i].log, first_beat, 15), "%s never saw ha:\n%s",
		              names[i], itest_tail(in[i].log));
		double lag =
		    itest_log_stamp(in[0].log, seen[i]) - itest_log_stamp(in[i].log, first_beat);
		ck_assert_msg(lag < 2.0, "ha saw %s %.3f s after its first heartbeat:\n%s\n%s:\n%s",
		              names[i], lag, itest_tail(in[0].log), names[i],
		              itest_tail(in[i].log));
	}
	for (int i = 0; i < 4; i++) {
		itest_inst_stop(&in[i], SIGTERM);
		itest_inst_free(&in[i]);
	}
	itest_env_teardown(&e);
}
END_TEST

START_TEST(bad_instance_name_is_a_config_error)
{
	struct itest_env e;
	itest_env_init(&e, "cl-badname", DB);
	itest_env_main(&e, "instance = \"no spaces/here\";\n");
	int st;
	char *out = itest_cli(&st, "check", "-c", e.conf, NULL);
	ck_assert_msg(st == 78, "status %d:\n%s", st, out);
	ck_assert_msg(strstr(out, "pgcrond.conf:") &&
	                  strstr(out, "instance \"no spaces/here\": a name is 1 to 63 characters, "
	                              "letters, digits, '.', '_' or '-'; give each pgcrond sharing "
	                              "a history database its own"),
	              "message:\n%s", out);
	free(out);
	itest_env_teardown(&e);
}
END_TEST

/* In the daemon's child, before it drops root: a host name of its own, too long to name an
 * instance (64 characters, which Linux allows). */
static void long_host_name(void *arg)
{
	(void)arg;
	char name[65];
	memset(name, 'h', 64);
	name[64] = '\0';
	if (syscall(SYS_unshare, CLONE_NEWUTS) != 0 || sethostname(name, 64) != 0) {
		fprintf(stderr, "it_cluster: cannot set a host name: %s\n", strerror(errno));
		_exit(127);
	}
}

/* The default name, the host name, is checked like a written one: refused with what to do. */
START_TEST(host_name_that_cannot_name_an_instance)
{
	struct itest_env e;
	itest_env_setup(&e, "cl-hostname", DB);
	e.pid = itest_daemon_start_with(e.conf, e.log, long_host_name, NULL);
	/* the daemon exits by itself: a SIGTERM sent once the line is logged could reach it
	 * before that exit and be reported as 143 */
	ck_assert_int_eq(itest_daemon_wait_exit(e.pid, 20), 78);
	e.pid = 0;
	char *log = itest_read_file(e.log);
	ck_assert_msg(strstr(log, "pgcrond.conf: the host name \"hhhh") &&
	                  strstr(log, "cannot name this instance (1 to 63 characters, letters, "
	                              "digits, '.', '_' or '-'); set instance = \"NAME\"; in it"),
	              "%s", log);
	free(log);
	itest_env_teardown(&e);
}
END_TEST

/* A survivor closes a dead instance's running row within 30 s, naming it, and retries. */
/* Instances "one" (A) and "two" (B) of E with JOBS, each found dead 5 s after it goes silent
 * (a heartbeat every 1.25 s: the survivor looks for the dead sooner than every 5 s), both
 * live. */
static void pair_up(struct itest_env *e, struct itest_inst *a, struct itest_inst *b,
                    const char *jobs)
{
	itest_inst_init(a, e, "one", jobs);
	itest_inst_init(b, e, "two", jobs);
	struct itest_inst *both[] = {a, b};
	for (int i = 0; i < 2; i++) {
		char *conf = itest_read_file(both[i]->conf);
		itest_write_file(both[i]->conf, "cluster_dead_after = \"5s\";\n%s", conf);
		free(conf);
		itest_inst_start(both[i]);
	}
	wait_live(e, a);
	wait_live(e, b);
}

/* Which of A ("one") and B runs JOB now (its history row running, within 10 s). */
static struct itest_inst *running_on(struct itest_env *e, struct itest_inst *a,
                                     struct itest_inst *b, const char *job)
{
	ck_assert_msg(itest_env_wait(e, 10,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = '%s' AND status = 'running'",
	                             job),
	              "no running row:\n%s", itest_tail(a->log));
	bool one = itest_env_count(e,
	                           "SELECT count(*) FROM pgcrond.job_run_details WHERE"
	                           " job_name = '%s' AND status = 'running' AND instance = 'one'",
	                           job) > 0;
	return one ? a : b;
}

START_TEST(survivor_closes_dead_runs_and_retries)
{
	struct itest_env e;
	struct itest_inst a, b;
	cluster_db(&e, "cl-dead");
	static const char job[] =
	    "job = { name = \"slow\"; command = \"SELECT pg_sleep(4)\"; database = \"app\";"
	    " schedule = \"%s\"; retries = 1; retry_delay = \"1s\"; };\n";
	char jobs[512];
	snprintf(jobs, sizeof(jobs), job, "0 0 1 1 *");
	pair_up(&e, &a, &b, jobs);
	/* the fire comes with a reload once both run (a loaded machine's start took longer than
	 * the seconds to a fire written before it) */
	char sched[64];
	itest_schedule_soon(sched, sizeof(sched), 3);
	snprintf(jobs, sizeof(jobs), job, sched);
	itest_inst_reload(&a, jobs);
	itest_inst_reload(&b, jobs);
	struct itest_inst *dead = running_on(&e, &a, &b, "slow");
	struct itest_inst *alive = dead == &a ? &b : &a;
	double t0 = itest_now();
	itest_inst_stop(dead, SIGKILL);
	ck_assert_msg(
	    itest_env_wait(&e, 30,
	                   "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                   " WHERE job_name = 'slow' AND attempt = 1 AND status = 'failed'"
	                   " AND return_message LIKE 'instance %s died (last seen %%)%%"
	                   "closed by instance %s'",
	                   dead->name, alive->name),
	    "the dead run was not closed within 30 s:\n%s", itest_tail(alive->log));
	ck_assert_msg(itest_now() - t0 <= 30.0, "closed after %.1f s", itest_now() - t0);
	/* the survivor retries it, as the job's retry policy says */
	ck_assert_msg(
	    itest_env_wait(&e, 20,
	                   "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                   " WHERE job_name = 'slow' AND attempt = 2 AND trigger = 'retry'"
	                   " AND instance = '%s' AND status = 'succeeded'",
	                   alive->name),
	    "no retry by the survivor:\n%s", itest_tail(alive->log));
	/* pgcrond history shows which instance ran what */
	int st;
	char *out = itest_cli(&st, "history", "-c", alive->conf, "slow", NULL);
	ck_assert_msg(st == 0 && strstr(out, "INSTANCE"), "history:\n%s", out);
	char want_dead[64], want_alive[64];
	snprintf(want_dead, sizeof(want_dead), "  %s  ", dead->name);
	snprintf(want_alive, sizeof(want_alive), "  %s  ", alive->name);
	ck_assert_msg(strstr(out, want_dead) && strstr(out, want_alive), "history:\n%s", out);
	free(out);
	itest_inst_stop(alive, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* Claims of scheduled fires that never became a run are served once: one an
 * earlier process of this instance made and was killed before running (a later fire of the
 * job ran since, so the start's catch-up does not cover it), and those of an instance found
 * dead: a passed fire runs here as a catch-up (catchup = once) or gets one skipped row
 * (catchup = skip); a coming one is claimed and run at its instant by whoever fires it. The
 * claim rows are what a SIGKILL between a claim and a run's start leaves. */
START_TEST(claimed_fires_never_run_are_served)
{
	struct itest_env e;
	struct itest_inst a;
	long long t3;
	/* The claims are made before the start (the start's check and the first look for dead
	 * instances find them), so u3's fire cannot come with a reload once the instance runs.
	 * A round whose look for dead instances came less than a second before u3's fire (a
	 * loaded machine's start is slow) is done again from a fresh database, the fire further
	 * ahead: a fast machine goes round once. */
	for (int ahead = 6;; ahead *= 2) {
		cluster_db(&e, "cl-unserved");
		itest_exec(e.db,
		           "CREATE TABLE ran (job text, at timestamptz DEFAULT clock_timestamp());"
		           "GRANT ALL ON ran TO PUBLIC");
		/* u3's fire, a few seconds from now; the others' are given relative to it */
		t3 = (long long)time(NULL) + ahead;
		char soon[64];
		snprintf(soon, sizeof(soon), "%lld * * * * *", t3 % 60);
		char jobs[1024];
		/* u, u2, u4: a schedule that does not come round during the test */
		snprintf(
		    jobs, sizeof(jobs),
		    "jobs = ( { name = \"u\"; command = \"INSERT INTO ran (job) VALUES ('u')\";"
		    " database = \"app\"; schedule = \"0 0 1 1 *\"; },\n"
		    "{ name = \"u2\"; command = \"INSERT INTO ran (job) VALUES ('u2')\";"
		    " database = \"app\"; schedule = \"0 0 1 1 *\"; },\n"
		    "{ name = \"u3\"; command = \"INSERT INTO ran (job) VALUES ('u3')\";"
		    " database = \"app\"; schedule = \"%s\"; },\n"
		    "{ name = \"u4\"; command = \"INSERT INTO ran (job) VALUES ('u4')\";"
		    " database = \"app\"; schedule = \"0 0 1 1 *\"; catchup = \"skip\"; },\n"
		    "{ name = \"u5\"; command = \"INSERT INTO ran (job) VALUES ('u5')\";"
		    " database = \"app\"; schedule = \"0 0 1 1 *\"; } );\n",
		    soon);
		/* what a killed earlier process of "one" left: its claim of u at T, and the later
		 * fire of u at T + 1 that another instance served */
		char sql[1024];
		snprintf(
		    sql, sizeof(sql),
		    "INSERT INTO pgcrond.fire_claim (job_name, fire_key, instance, boot_id)"
		    " VALUES ('u', 's:%lld', 'one', 'old');"
		    "INSERT INTO pgcrond.job_run_details (job_name, status, start_time, end_time,"
		    "  scheduled_time, instance, run_key, trigger)"
		    " SELECT 'u', 'succeeded', t, t, t, 'other', 'x1', 'schedule'"
		    " FROM (SELECT to_timestamp(%lld) t) x",
		    t3 - 36, t3 - 35);
		itest_exec(e.db, sql);
		/* an instance that died 1 h ago with three claims: u2 and u4 passed, u3 to come;
		 * and a fourth, u5 passed, made while it marked nothing (started NULL: it may have
		 * run) */
		snprintf(
		    sql, sizeof(sql),
		    "INSERT INTO pgcrond.instance (name, boot_id, last_seen)"
		    " VALUES ('zz', 'zzboot', now() - '1 hour'::interval);"
		    "INSERT INTO pgcrond.fire_claim (job_name, fire_key, instance, boot_id) VALUES"
		    " ('u2', 's:%lld', 'zz', 'zzboot'), ('u4', 's:%lld', 'zz', 'zzboot'),"
		    " ('u3', 's:%lld', 'zz', 'zzboot');"
		    "INSERT INTO pgcrond.fire_claim (job_name, fire_key, instance, boot_id, "
		    "started)"
		    " VALUES ('u5', 's:%lld', 'zz', 'zzboot', NULL)",
		    t3 - 26, t3 - 26, t3, t3 - 26);
		itest_exec(e.db, sql);
		itest_inst_init(&a, &e, "one", jobs);
		itest_inst_start(&a);
		wait_live(&e, &a);
		static const char reap[] = "instance \"zz\" had claimed";
		ck_assert_msg(itest_wait_log(a.log, reap, 20),
		              "the dead instance's claims were not found:\n%s", itest_tail(a.log));
		if (itest_log_stamp(a.log, reap) < (double)t3 - 1)
			break;
		ck_assert_msg(ahead < 24,
		              "the dead instance's claims were found only %.1f s before"
		              " u3's fire, with the fire %d s ahead:\n%s",
		              (double)t3 - itest_log_stamp(a.log, reap), ahead, itest_tail(a.log));
		itest_inst_stop(&a, SIGKILL);
		itest_inst_free(&a);
		itest_env_teardown(&e);
	}
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'u' AND instance = 'one'"
	                             " AND trigger = 'catchup' AND status = 'succeeded'"
	                             " AND scheduled_time = to_timestamp(%lld - 36)",
	                             t3),
	              "the earlier process's claimed fire was not served:\n%s", itest_tail(a.log));
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'u2' AND instance = 'one'"
	                             " AND trigger = 'catchup' AND status = 'succeeded'"
	                             " AND scheduled_time = to_timestamp(%lld - 26)",
	                             t3),
	              "the dead instance's claimed fire was not served:\n%s", itest_tail(a.log));
	ck_assert_msg(
	    itest_env_wait(&e, 15,
	                   "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                   " WHERE job_name = 'u4' AND status = 'skipped'"
	                   " AND return_message LIKE '%%claimed by instance zz, which died"
	                   " before running it; catchup = skip'"),
	    "no skipped row for u4 (catchup = skip):\n%s", itest_tail(a.log));
	/* 15 s from its instant */
	ck_assert_msg(itest_env_wait(&e, (double)(t3 - (long long)time(NULL)) + 15,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'u3' AND instance = 'one'"
	                             " AND trigger = 'schedule' AND status = 'succeeded'"
	                             " AND scheduled_time = to_timestamp(%lld)",
	                             t3),
	              "the coming fire the dead instance had claimed did not run:\n%s",
	              itest_tail(a.log));
	itest_sleep(1.5); /* nothing more comes */
	itest_inst_stop(&a, SIGTERM);
	itest_assert_scalar(e.db,
	                    "SELECT string_agg(job || '=' || n, ',' ORDER BY job) FROM"
	                    " (SELECT job, count(*) n FROM ran GROUP BY job) x",
	                    "u=1,u2=1,u3=1");
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.fire_claim WHERE (instance = 'zz'"
	                    " OR boot_id = 'old') AND job_name <> 'u5'",
	                    "0");
	/* the claim made while zz marked nothing is left (to zz's next process), and not run */
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.fire_claim WHERE instance = 'zz'"
	                    " AND job_name = 'u5' AND started IS NULL",
	                    "1");
	char *log = itest_read_file(a.log);
	ck_assert_msg(strstr(log, "an earlier process of this instance claimed 1 scheduled fire(s)"
	                          " and was stopped before running them") &&
	                  strstr(log, "instance \"zz\" had claimed 2 scheduled fire(s) it never "
	                              "ran"),
	              "log:\n%s", log);
	free(log);
	itest_inst_free(&a);
	itest_env_teardown(&e);
}
END_TEST

/* What the history and the claims hold of job "s" around FIRE (unix s): said when a case
 * finds the fire unserved, so that the reason is in the failure (no row and no log line
 * would say why). */
static char *s_rows_near(struct itest_env *e, long long fire)
{
	char sql[1024];
	snprintf(
	    sql, sizeof(sql),
	    "SELECT coalesce(string_agg(to_char(scheduled_time AT TIME ZONE 'UTC', 'HH24:MI:SS')"
	    "  || ' ' || status || ' ' || trigger || ' ' || coalesce(return_message, ''),"
	    "  E'\\n' ORDER BY scheduled_time, start_time), 'none')"
	    " || E'\\nclaims left: ' || coalesce((SELECT string_agg(fire_key || ' started '"
	    "  || coalesce(started::text, 'unknown'), ', ') FROM pgcrond.fire_claim"
	    "  WHERE job_name = 's'), 'none')"
	    " FROM pgcrond.job_run_details WHERE job_name = 's'"
	    " AND scheduled_time BETWEEN to_timestamp(%lld - 3) AND to_timestamp(%lld + 3)",
	    fire, fire);
	return itest_scalar(e->db, sql);
}

/* A process killed after it claimed a fire ahead of its instant and before the run's start,
 * with run records still in its spill file (its history's writes were refused): its
 * next process serves that fire once, and its check of the claims says so (were the check
 * left to the next start while records wait, no one would serve the fire). A run of "long"
 * (3 s) is in flight at the kill: its row, spooled as running, is written and closed once, and
 * its fire is not run again. */
START_TEST(killed_with_records_spooled_serves_its_claim)
{
	struct itest_env e;
	struct itest_inst a;
	cluster_db(&e, "cl-spooled");
	claims_alone(&e);
	itest_exec(e.db, "CREATE TABLE ran (job text, at timestamptz DEFAULT clock_timestamp());"
	                 "GRANT ALL ON ran TO PUBLIC");
	/* while public.refuse has a row, the history's records are refused (a write error the
	 * history retries: they wait in its spill file) */
	itest_exec(e.db, "CREATE TABLE public.refuse (on_ bool);"
	                 "CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql"
	                 " SET search_path = pg_catalog AS $f$ BEGIN"
	                 "  IF EXISTS (SELECT FROM public.refuse) THEN"
	                 "   RAISE EXCEPTION 'refused' USING ERRCODE = '55000'; END IF;"
	                 "  RETURN NEW; END $f$;"
	                 "CREATE TRIGGER refuse BEFORE INSERT ON pgcrond.job_run_details"
	                 " FOR EACH ROW EXECUTE FUNCTION public.refuse()");
	itest_inst_init(&a, &e, "one",
	                "jobs = ( { name = \"s\"; command = \"INSERT INTO ran (job) VALUES ('s')\";"
	                " database = \"app\"; schedule = \"* * * * * *\"; },\n"
	                "{ name = \"long\"; command = \"SELECT pg_sleep(3)\"; database = \"app\";"
	                " schedule = \"* * * * * *\"; } );\n");
	itest_inst_up(&e, &a);
	long long fire = 0;
	int rounds = 0;
	char sql[1024];
	/* a kill lands between a claim (100 ms ahead) and the run's start on a loaded machine
	 * too, mostly; a round where it came late is tried again */
	while (!fire && rounds++ < 6) {
		/* the history's writes are refused (the session is the claims' too, so it is not
		 * ended): its records wait in the file */
		itest_exec(e.db, "INSERT INTO public.refuse VALUES (true)");
		long long t = 0;
		double t0 = itest_now();
		while (itest_now() - t0 < 6) {
			if (itest_now() - t0 > 1.5 &&
			    (t = itest_scalar_ll(
			         e.db, "SELECT coalesce(max(substr(fire_key, 3)::bigint), 0)"
			               " FROM pgcrond.fire_claim WHERE instance = 'one'"
			               " AND job_name = 's' AND substr(fire_key, 3)::bigint >"
			               " extract(epoch FROM clock_timestamp())")) > 0)
				break;
			itest_sleep(0.01);
		}
		ck_assert_msg(t > 0, "no fire claimed ahead of its instant:\n%s",
		              itest_tail(a.log));
		itest_inst_stop(&a, SIGKILL);
		/* the next process starts after the claimed fire's instant: one started before
		 * it fires it on its own schedule (on an idle machine a restart takes 40 ms, and
		 * the claim is made 100 ms ahead), and the check of the claims is not what is
		 * tested */
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		double ahead = (double)t + 0.05 - ((double)now.tv_sec + (double)now.tv_nsec / 1e9);
		if (ahead > 0)
			itest_sleep(ahead);
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) FROM pgcrond.run_start WHERE instance = 'one'"
		         " AND job_name = 's' AND scheduled_s = %lld",
		         t);
		bool started = itest_scalar_ll(e.db, sql) > 0;
		/* the killed daemon's backend of long still sleeps: its run was in flight */
		bool inflight = itest_scalar_ll(e.db, "SELECT count(*) FROM pg_stat_activity"
		                                      " WHERE application_name = 'pgcrond: long'"
		                                      " AND state = 'active'") > 0;
		const char *waited = "run records from an earlier run wait in";
		int before = itest_count_in_file(a.log, waited);
		itest_inst_start(&a);
		/* the next process fires on while its history is kept from replaying the records
		 * until 2 s after its start: its start's catch-up finds it fired since, and only
		 * the check of the earlier process's claims serves the fire */
		double up = 0;
		for (double t1 = itest_now(); itest_now() - t1 < 30; itest_sleep(0.05)) {
			if (!up && itest_inst_wait_started(&a, 0))
				up = itest_now();
			if (up && itest_now() - up > 2)
				break;
		}
		itest_exec(e.db, "DELETE FROM public.refuse");
		ck_assert_msg(up > 0, "no start:\n%s", itest_tail(a.log));
		bool spooled = itest_count_in_file(a.log, waited) > before;
		if (started || !spooled || !inflight) {
			fprintf(stderr, "it_cluster spooled: round %d: %s\n", rounds,
			        started    ? "the kill came after the run's start"
			        : !spooled ? "no record waited"
			                   : "no run of long was in flight");
			wait_live(&e, &a);
			itest_sleep(1);
			continue;
		}
		fire = t;
	}
	ck_assert_msg(fire > 0, "no kill landed between a claim and its run with records waiting"
	                        " and a run in flight");
	ck_assert_msg(
	    itest_env_wait(&e, 15,
	                   "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                   " WHERE job_name = 's' AND instance = 'one'"
	                   " AND scheduled_time = to_timestamp(%lld)"
	                   " AND status = 'succeeded' AND trigger = 'catchup'",
	                   fire),
	    "the fire the killed process claimed (%lld) was not served; rows of s near it:"
	    "\n%s\n%s",
	    fire, s_rows_near(&e, fire), itest_tail(a.log));
	itest_sleep(1.5); /* nothing more comes for it */
	itest_inst_stop(&a, SIGTERM);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 's'"
	         " AND scheduled_time = to_timestamp(%lld)",
	         fire);
	itest_assert_scalar(e.db, sql, "1");
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM (SELECT scheduled_time FROM"
	                    " pgcrond.job_run_details WHERE job_name = 's' AND status = 'succeeded'"
	                    " GROUP BY 1 HAVING count(*) > 1) d",
	                    "0");
	/* long's runs in flight at the kills: their rows written from the spill file and closed
	 * by the next process, once each, none left open, none of their fires run again */
	ck_assert_msg(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                  " WHERE job_name = 'long' AND status = 'failed'"
	                                  " AND return_message LIKE 'pgcrond process ended while"
	                                  " this run was in progress%%'") >= 1,
	              "no run of long in flight at a kill was closed:\n%s", itest_tail(a.log));
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 'long'"
	                    " AND status IN ('starting', 'running')",
	                    "0");
	itest_assert_scalar(
	    e.db,
	    "SELECT count(*) FROM (SELECT scheduled_time FROM"
	    " pgcrond.job_run_details WHERE job_name = 'long' AND status <> 'skipped'"
	    " GROUP BY 1 HAVING count(*) > 1) d",
	    "0");
	char *log = itest_read_file(a.log);
	/* the check of the earlier process's claims found the fire and says so: it served it
	 * ("running it now"), or the start's catch-up had just served it ("a run here serves
	 * it"), whichever came first (the catch-up, when the records were written before the
	 * next fire, as on a fast machine); once either way, as counted above */
	char line[200], at[32];
	time_t ft = (time_t)fire;
	strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", gmtime(&ft));
	snprintf(line, sizeof(line),
	         "the fire at %s was claimed by instance one, which was stopped before running it;",
	         at);
	const char *said = strstr(log, line);
	ck_assert_msg(said && (strncmp(said + strlen(line), " running it now", 15) == 0 ||
	                       strncmp(said + strlen(line), " a run here serves it", 21) == 0),
	              "no \"%s running it now\" (or \"a run here serves it\") in the log:\n%s",
	              line, log);
	free(log);
	itest_inst_free(&a);
	itest_env_teardown(&e);
}
END_TEST

/* overlap = skip holds across instances: a run on one instance makes the others skip. */
START_TEST(overlap_skip_across_instances)
{
	struct itest_env e;
	struct itest_inst a, b;
	cluster_db(&e, "cl-overlap");
	const char *jobs =
	    "job = { name = \"long\"; command = \"SELECT pg_sleep(2.5)\";"
	    " database = \"app\"; schedule = \"* * * * * *\"; overlap = \"skip\"; };\n";
	itest_inst_init(&a, &e, "ov1", jobs);
	itest_inst_init(&b, &e, "ov2", jobs);
	itest_inst_start(&a);
	itest_inst_start(&b);
	wait_live(&e, &a);
	wait_live(&e, &b);
	/* until two runs succeeded and a fire was skipped for a run on the other instance */
	itest_env_wait(&e, 30,
	               "SELECT count(*) FILTER (WHERE status = 'succeeded') >= 2 AND count(*)"
	               " FILTER (WHERE status = 'skipped' AND return_message = 'a run of the job is"
	               " still running on another instance; overlap = skip') >= 1"
	               " FROM pgcrond.job_run_details");
	itest_inst_stop(&a, SIGTERM);
	itest_inst_stop(&b, SIGTERM);
	/* no two runs of the job overlapped in time, whichever instance ran them */
	itest_assert_scalar(
	    e.db,
	    "SELECT count(*) FROM pgcrond.job_run_details x"
	    " JOIN pgcrond.job_run_details y ON x.runid < y.runid"
	    " AND x.status = 'succeeded' AND y.status = 'succeeded'"
	    " AND tstzrange(x.start_time, x.end_time) && tstzrange(y.start_time, y.end_time)",
	    "0");
	ck_assert_msg(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                  " WHERE status = 'succeeded'") >= 2,
	              "the job hardly ran:\n%s", itest_tail(a.log));
	ck_assert_msg(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                  " WHERE status = 'skipped' AND return_message ="
	                                  " 'a run of the job is still running on another instance;"
	                                  " overlap = skip'") >= 1,
	              "no skip for a run on the other instance");
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* A job two instances define differently (a rolling config change) is logged by both. */
START_TEST(different_definitions_are_logged)
{
	struct itest_env e;
	struct itest_inst a, b;
	cluster_db(&e, "cl-defs");
	itest_inst_init(&a, &e, "d1",
	                "job = { name = \"nightly\"; command = \"SELECT 1\"; database = \"app\";"
	                " schedule = \"0 3 * * *\"; };\n");
	itest_inst_init(&b, &e, "d2",
	                "job = { name = \"nightly\"; command = \"SELECT 2\"; database = \"app\";"
	                " schedule = \"0 3 * * *\"; };\n");
	itest_inst_start(&a);
	wait_live(&e, &a);
	/* the instance that publishes second says it: d1 first (live is its heartbeat, and its
	 * jobs follow it on a session it shares with the history's start-up work) */
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 1 FROM pgcrond.instance_job"
	                             " WHERE instance = 'd1' AND job_name = 'nightly'"),
	              "d1 did not publish its jobs:\n%s", itest_tail(a.log));
	itest_inst_start(&b);
	ck_assert_msg(
	    itest_wait_log(b.log, "job nightly is defined differently on instance(s) d1", 15),
	    "d2 did not say so:\n%s", itest_tail(b.log));
	itest_assert_scalar(e.db,
	                    "SELECT count(DISTINCT def_hash) FROM pgcrond.instance_job"
	                    " WHERE job_name = 'nightly'",
	                    "2");
	itest_inst_stop(&a, SIGTERM);
	itest_inst_stop(&b, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* 4,500 jobs, written out of name order, CFG_KEEP(i) of them kept: the configuration text. */
#define PARTS_N 4500
static char *parts_jobs(bool (*keep)(int), const char *extra)
{
	size_t cap = PARTS_N * 120 + 256, len = 0;
	char *t = malloc(cap);
	ck_assert_ptr_nonnull(t);
	len += (size_t)snprintf(t + len, cap - len, "jobs = (\n");
	bool first = true;
	for (int k = 0; k < PARTS_N; k++) {
		int i = (int)((k * 7919L) % PARTS_N); /* 7919 is prime: every i once */
		if (!keep(i))
			continue;
		len += (size_t)snprintf(t + len, cap - len,
		                        "%s  { name = \"t-%04d\"; command = \"SELECT %d\";"
		                        " database = \"app\"; schedule = \"0 3 1 1 *\"; }\n",
		                        first ? "" : ",", i, i);
		first = false;
	}
	len += (size_t)snprintf(t + len, cap - len, "%s);\n", extra);
	return t;
}

static bool keep_all(int i)
{
	(void)i;
	return true;
}

static bool keep_not_third(int i)
{
	return i % 3 != 0;
}

/* The jobs are published in parts of 500 by name (JOBS_PART in cluster_priv.h): all of them,
 * and each part retires this instance's rows in its range that it does not name: rows left
 * from before (before, between and after the parts), and the jobs a reload removed. */
START_TEST(jobs_published_in_parts)
{
	struct itest_env e;
	struct itest_inst a;
	cluster_db(&e, "cl-parts");
	itest_exec(e.db, "INSERT INTO pgcrond.instance_job VALUES ('p1', 'a-old', 'x'),"
	                 " ('p1', 't-2500a', 'x'), ('p1', 'z-old', 'x'), ('p2', 'z-old', 'x')");
	char *jobs = parts_jobs(keep_all, "");
	itest_inst_init(&a, &e, "p1", jobs);
	free(jobs);
	itest_inst_start(&a);
	wait_live(&e, &a);
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) = %d AND count(*) FILTER (WHERE job_name"
	                             " !~ '^t-[0-9]{4}$') = 0 FROM pgcrond.instance_job"
	                             " WHERE instance = 'p1'",
	                             PARTS_N),
	              "p1's jobs were not published as they are:\n%s", itest_tail(a.log));
	itest_assert_scalar(e.db, "SELECT count(*) FROM pgcrond.instance_job WHERE instance = 'p2'",
	                    "1");

	/* a reload removes every third job and adds one after them all */
	char path[1100];
	snprintf(path, sizeof(path), "%s/conf.d/10-jobs.conf", a.dir);
	jobs = parts_jobs(keep_not_third,
	                  ",\n  { name = \"u-new\"; command = \"SELECT 1\"; database = \"app\";"
	                  " schedule = \"0 3 1 1 *\"; }\n");
	itest_write_file(path, "%s", jobs);
	free(jobs);
	kill(a.pid, SIGHUP);
	ck_assert_msg(itest_wait_log(a.log, "configuration reloaded", 30), "no reload:\n%s",
	              itest_tail(a.log));
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) = %d AND count(*) FILTER (WHERE job_name ="
	                             " 'u-new') = 1 AND count(*) FILTER (WHERE job_name ~ '^t-'"
	                             " AND substr(job_name, 3)::int %% 3 = 0) = 0"
	                             " FROM pgcrond.instance_job WHERE instance = 'p1'",
	                             PARTS_N - PARTS_N / 3 + 1),
	              "p1's jobs after the reload are not its configuration's:\n%s",
	              itest_tail(a.log));
	itest_inst_stop(&a, SIGTERM);
	itest_inst_free(&a);
	itest_env_teardown(&e);
}
END_TEST

/* The claims of fires due take turns with the parts of the jobs published after a start (or
 * a reload): at 100,000 jobs the parts take seconds, and no fire of that time may wait behind
 * them (skipped: "previous fire still being claimed"). The first part is held up by a lock
 * while a job's fires wait for their claims; once it is released, the claims go before the
 * parts still to send (statements on one connection run in turn: their transaction ids say
 * in which order). */
START_TEST(claims_go_between_the_jobs_parts)
{
	struct itest_env e;
	struct itest_inst a;
	cluster_db(&e, "cl-turns");
	claims_alone(&e);
	char *jobs = parts_jobs(keep_all, "");
	itest_exec(e.db, "BEGIN");
	itest_exec(e.db, "LOCK TABLE pgcrond.instance_job IN SHARE MODE");
	itest_inst_init(&a, &e, "turns1", jobs);
	free(jobs);
	itest_inst_start(&a);
	/* the tick comes with a reload once the first part waits for the lock (in the start's
	 * configuration, its first claim could go before that part) */
	PGconn *look = itest_connect(e.ci);
	ck_assert_msg(itest_wait_sql(look,
	                             "SELECT count(*) > 0 FROM pg_catalog.pg_stat_activity"
	                             " WHERE wait_event_type = 'Lock'"
	                             " AND query LIKE '%pgcrond.instance_job%'",
	                             30),
	              "the first part does not wait for the lock:\n%s", itest_tail(a.log));
	PQfinish(look);
	char path[1024];
	snprintf(path, sizeof(path), "%s/conf.d/10-jobs.conf", a.dir);
	jobs = parts_jobs(keep_all, ",\n  { name = \"tick\"; command = \"SELECT 1\";"
	                            " database = \"app\"; schedule = \"* * * * * *\"; }\n");
	itest_write_file(path, "%s", jobs);
	free(jobs);
	kill(a.pid, SIGHUP);
	/* the tick's fires wait for their claims, queued behind the part the lock holds up: the
	 * next fire finds its claim still pending */
	ck_assert_msg(itest_wait_log(a.log, "tick: skipped: previous fire still being claimed", 15),
	              "the tick's claims do not wait:\n%s", itest_tail(a.log));
	itest_exec(e.db, "COMMIT");
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) = %d FROM pgcrond.instance_job"
	                             " WHERE instance = 'turns1'",
	                             PARTS_N + 1),
	              "the jobs were not published:\n%s", itest_tail(a.log));
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) > 0 FROM pgcrond.fire_claim"
	                             " WHERE instance = 'turns1' AND job_name = 'tick'"),
	              "no claim of the tick:\n%s", itest_tail(a.log));
	itest_assert_scalar(e.db,
	                    "SELECT (SELECT min(xmin::text::bigint) FROM pgcrond.fire_claim"
	                    "  WHERE instance = 'turns1' AND job_name = 'tick')"
	                    " < (SELECT max(xmin::text::bigint) FROM pgcrond.instance_job"
	                    "  WHERE instance = 'turns1')",
	                    "t");
	itest_inst_stop(&a, SIGTERM);
	itest_inst_free(&a);
	itest_env_teardown(&e);
}
END_TEST

/* The fires due together are claimed together, those waiting for a run slot (max_running)
 * too: one claim statement a second for twelve jobs, where claiming each fire only once it
 * had a slot took a statement for about every run that ended. Each fire still runs once. */
START_TEST(fires_waiting_for_a_slot_are_claimed_together)
{
	struct itest_env e;
	struct itest_inst a;
	char jobs[4096] = "jobs = (\n";
	cluster_db(&e, "cl-batch");
	claims_alone(&e);
	for (int i = 0; i < 12; i++) {
		size_t n = strlen(jobs);
		snprintf(jobs + n, sizeof(jobs) - n,
		         "  { name = \"b%d\"; command = \"SELECT 1\"; database = \"app\";"
		         " schedule = \"* * * * * *\"; }%s\n",
		         i, i < 11 ? "," : "");
	}
	strcat(jobs, ");\n");
	itest_inst_init(&a, &e, "batch1", jobs);
	itest_write_file(a.conf,
	                 "instance = \"batch1\";\n"
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/conf.d\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "max_running = 2;\n"
	                 "databases = { app = { conninfo = \"%s\"; pool = 1; }; };\n"
	                 "history = { database = \"app\"; };\n",
	                 a.dir, a.dir, e.ci);
	itest_inst_start(&a);
	wait_live(&e, &a);
	/* about eight seconds' fires claimed */
	itest_env_wait(&e, 20,
	               "SELECT count(*) >= 96 FROM pgcrond.fire_claim WHERE instance = 'batch1'");
	itest_inst_stop(&a, SIGTERM);
	/* "cluster: N claims (N ours, 0 another instance's) in M statements, ..." at its stop */
	char *log = itest_read_file(a.log);
	const char *line = strstr(log, "cluster: ");
	unsigned long claims = 0, statements = 0;
	while (line && sscanf(line, "cluster: %lu claims (%*[^)]) in %lu statements", &claims,
	                      &statements) != 2)
		line = strstr(line + 1, "cluster: ");
	ck_assert_msg(claims >= 24, "too few claims (%lu): %.300s", claims, line ? line : log);
	ck_assert_msg(statements * 4 <= claims,
	              "%lu claims took %lu statements: fires waiting for a slot were claimed one "
	              "by one",
	              claims, statements);
	/* and claimed before their instant, so that the runs start at it: all but the fires of
	 * the first seconds after the start (and a few a busy machine delays: a loaded one once
	 * claimed the first two seconds' late, as the start's own statements went first) */
	itest_assert_scalar(e.db,
	                    "WITH c AS (SELECT claimed_at, to_timestamp(split_part(fire_key, ':',"
	                    " 2)::bigint) AS instant FROM pgcrond.fire_claim"
	                    " WHERE fire_key LIKE 's:%')"
	                    " SELECT count(*) FILTER (WHERE claimed_at < instant) * 2 > count(*)"
	                    " FROM c WHERE instant > (SELECT min(instant) + '1 s' FROM c)",
	                    "t");
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM (SELECT job_name, scheduled_time"
	                    " FROM pgcrond.job_run_details WHERE status = 'succeeded'"
	                    " GROUP BY 1, 2 HAVING count(*) > 1) d",
	                    "0");
	free(log);
	itest_inst_free(&a);
	itest_env_teardown(&e);
}
END_TEST

/* Instances A and B (named NA and NB) on E, not started, each with N jobs g0..g<N-1> every
 * second (SELECT 1, or with RAN an INSERT of its name into table ran), and A alone also
 * "busy" every second, its other keys BUSY. */
static void pair_with_busy(struct itest_env *e, struct itest_inst *a, struct itest_inst *b,
                           const char *na, const char *nb, int n, bool ran, const char *busy)
{
	char jobs[2048] = "jobs = (\n", cmd[256], jobs_a[2560];
	for (int i = 0; i < n; i++) {
		size_t len = strlen(jobs);
		if (ran)
			snprintf(cmd, sizeof(cmd), "INSERT INTO ran (job) VALUES ('g%d')", i);
		else
			snprintf(cmd, sizeof(cmd), "SELECT 1");
		snprintf(jobs + len, sizeof(jobs) - len,
		         "  { name = \"g%d\"; command = \"%s\"; database = \"app\";"
		         " schedule = \"* * * * * *\"; }%s\n",
		         i, cmd, i < n - 1 ? "," : "");
	}
	snprintf(jobs_a, sizeof(jobs_a),
	         "%s,\n  { name = \"busy\"; database = \"app\"; schedule = \"* * * * * *\"; %s }"
	         "\n);\n",
	         jobs, busy);
	strcat(jobs, ");\n");
	itest_inst_init(a, e, na, jobs_a);
	itest_inst_init(b, e, nb, jobs);
}

/* An instance stopped 40 ms before an instant: the other instance runs every fire of the
 * instant, once. The stop keeps its claims within 50 ms of their instant (the other may
 * have asked for them already), and the other serves those once the stopped instance's row
 * says stopped (cluster_serve_stopped), or claimed them itself. _i 1: as on a loaded
 * machine, the stop's give-back starts after the instant (a trigger holds each of its
 * claim statements 120 ms after their inserts, so the give-back waits behind its claims of
 * that instant, and the other instance's claims wait for them and lose); given back then,
 * the fires would be lost. _i 2: stopped 100 ms after the instant, its claims of it still in
 * flight (held 300 ms), its runs waiting for them: granted once the stop began, they are left
 * to the other instance (recorded "skipped: pgcrond was shutting down", no one would run
 * them; a loaded machine meets this with _i 1 too). */
START_TEST(stop_gives_back_early_claims)
{
	struct itest_env e;
	struct itest_inst a, b;
	cluster_db(&e, _i == 0   ? "cl-giveback"
	               : _i == 1 ? "cl-giveback-late"
	                         : "cl-giveback-after");
	/* gb1 alone also runs "busy", one run after the other: a run in flight when it stops,
	 * which the stop waits for before its row says stopped */
	pair_with_busy(&e, &a, &b, "gb1", "gb2", 8, false,
	               "command = \"SELECT pg_sleep(3)\"; overlap = \"queue\";");
	itest_inst_start(&a);
	itest_inst_start(&b);
	wait_live(&e, &a);
	wait_live(&e, &b);
	/* both claim fires ahead of their instants, as instances that see each other (which one
	 * wins is a race: on a loaded machine gb1 can win every claim for 15 s) */
	ck_assert_msg(itest_wait_log(a.log, "other live instances", 15) &&
	                  itest_wait_log(b.log, "other live instances", 15) &&
	                  itest_env_wait(&e, 15,
	                                 "SELECT count(*) > 0 FROM pgcrond.fire_claim"
	                                 " WHERE instance IN ('gb1', 'gb2')"),
	              "the instances do not claim as a pair:\n%s\n%s", itest_tail(a.log),
	              itest_tail(b.log));
	/* from the next second on, a pair: before it, a fire gb2 skipped by its own overlap
	 * policy (its first run late, as both started) could be run by gb1 too (below) */
	char *paired = itest_scalar(e.db, "SELECT (date_trunc('second', clock_timestamp())"
	                                  " + interval '1 second')::text");
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT EXISTS (SELECT FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'busy' AND status = 'running')"),
	              "busy does not run:\n%s", itest_tail(a.log));
	if (_i > 0) {
		/* gb1's claims held after their inserts, gb2's before theirs: gb1 wins them all */
		char sql[1200];
		snprintf(sql, sizeof(sql),
		         "CREATE FUNCTION public.slow_claim() RETURNS trigger LANGUAGE plpgsql"
		         " AS $$ BEGIN IF pg_backend_pid() = (SELECT backend_pid FROM"
		         " pgcrond.instance WHERE name = TG_ARGV[0]) THEN"
		         " PERFORM pg_sleep(TG_ARGV[1]::float8); END IF; RETURN NULL; END $$;"
		         "CREATE TRIGGER slow_claim_gb1 AFTER INSERT ON pgcrond.fire_claim"
		         " FOR EACH STATEMENT EXECUTE FUNCTION public.slow_claim('gb1', '%s');"
		         "CREATE TRIGGER slow_claim_gb2 BEFORE INSERT ON pgcrond.fire_claim"
		         " FOR EACH STATEMENT EXECUTE FUNCTION public.slow_claim('gb2', '%s')",
		         _i == 1 ? "0.12" : "0.3", _i == 1 ? "0.03" : "0.15");
		itest_exec(e.db, sql);
		itest_sleep(2); /* a window: gb1 claims every fire from now on */
	}
	/* 40 ms before a whole second: both have asked for its fires' claims (100 ms ahead);
	 * _i 2: 100 ms after it, gb1's claims of it still in flight */
	double stop_frac = _i == 2 ? 0.10 : 0.96;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double frac = (double)ts.tv_nsec / 1e9;
	itest_sleep(frac < stop_frac ? stop_frac - frac : 1 + stop_frac - frac);
	clock_gettime(CLOCK_REALTIME, &ts);
	long long instant = (long long)ts.tv_sec + (_i == 2 ? 0 : 1);
	ck_assert_int_eq(kill(a.pid, SIGTERM), 0);
	char *stop_at = itest_scalar(e.db, "SELECT clock_timestamp()::text");
	char sql[1024];
	snprintf(sql, sizeof(sql),
	         "SELECT count(DISTINCT job_name) FROM pgcrond.job_run_details"
	         " WHERE job_name ~ '^g[0-9]$' AND scheduled_time = to_timestamp(%lld)"
	         " AND (status = 'succeeded'"
	         "  OR return_message ~ '^previous (run still running|fire still being claimed)')",
	         instant);
	/* the instant's eight fires served (run, or skipped by b's overlap policy on a loaded
	 * machine: its claim taken, its row written), within 5 s of a's exit (the fires a kept
	 * are served once its row says stopped). Not busy's: on a loaded machine gb1 can take
	 * the SIGTERM just after the instant, its busy fire of it already skipped by its own
	 * overlap policy, a row of that instant that is not one of the eight */
	itest_inst_stop(&a, 0); /* its exit, by the SIGTERM above, after the run in flight */
	itest_env_wait(&e, 5, "SELECT (%s) = 8", sql);
	long long ran = itest_scalar_ll(e.db, sql);
	/* the run in flight at the stop ended well, after it */
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 'busy'"
	         " AND status = 'succeeded' AND start_time < '%s' AND end_time > '%s'",
	         stop_at, stop_at);
	/* (_i 1 and 2: its claims are slow, so its next run may be waiting for its claim at the
	 * stop, not running, as on a loaded machine with _i 1 when the stop comes 115 ms after a
	 * run's end) */
	ck_assert_msg(_i > 0 || itest_scalar_ll(e.db, sql) == 1,
	              "no run of busy was in flight at the stop");
	free(stop_at);
	/* and none twice, nor with a second row beside its run (a claim's answer that comes
	 * while the stop drains must not make a "skipped: pgcrond was shutting down" row, for a
	 * fire the other instance ran) */
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM (SELECT job_name FROM pgcrond.job_run_details"
	                    " WHERE status = 'succeeded' GROUP BY job_name, scheduled_time"
	                    " HAVING count(*) > 1) d",
	                    "0");
	/* a fire of the pair's with two rows. Not before the pair: an instance records a skip
	 * by its overlap policy without a claim, so the first second's fire, skipped by gb2
	 * (its run of the second before, late at its start, still running) and run by gb1,
	 * can have two rows (a known limit: docs/several-instances.md) */
	char *twice = itest_fires_twice(e.db, "g_", paired);
	ck_assert_msg(!twice, "fires with two rows: %.1500s", twice);
	free(paired);
	snprintf(sql, sizeof(sql),
	         "SELECT string_agg(job_name || ' ' || instance, ', ' ORDER BY job_name)"
	         " FROM pgcrond.fire_claim WHERE fire_key = 's:%lld'",
	         instant);
	char *claims = itest_scalar(e.db, sql);
	ck_assert_msg(ran == 8,
	              "%lld of 8 fires of the instant after the stop ran (claims: %.400s)", ran,
	              claims ? claims : "none");
	free(claims);
	itest_inst_stop(&b, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* An instance frozen (SIGSTOP) 40 ms before an instant, holding that instant's claims, for
 * 15 s: less than its cluster_dead_after (20 s), so it is never found dead. The other serves
 * the fires it claimed and did not start once their lease ran out (the frozen one's heartbeat
 * period and half that past the instant, no heartbeat of it since: 7.5 s here), while it is
 * still frozen, each once; back, it runs none of them. It has a run in flight when it is
 * stopped ("busy", 18 s, its job defined on it alone, so not served by the other), which ends
 * well: those fires do not wait for the frozen instance to come back (and skip them) or to
 * be found dead (20-25 s). g5 is defined differently on lb (a rolling config change: its
 * timeout): its fire stays la's, which meets it when back (lb must not serve it by its own
 * definition, nor drop it had that been disabled there). */
/* A fire served: its run succeeded, or the overlap policy skipped it for a run under way. */
#define SERVED                                                                                     \
	"(status = 'succeeded' OR (status = 'skipped'"                                             \
	" AND return_message LIKE 'previous run still running%%'))"

START_TEST(silent_holders_claims_are_served)
{
	struct itest_env e;
	struct itest_inst a, b;
	cluster_db(&e, "cl-lease");
	itest_exec(e.db, "CREATE TABLE public.ran (job text, at timestamptz DEFAULT"
	                 " clock_timestamp()); CREATE SEQUENCE public.busy_try;"
	                 "GRANT ALL ON public.ran, public.busy_try TO PUBLIC");
	pair_with_busy(&e, &a, &b, "la", "lb", 6, true,
	               "command = \"SELECT pg_sleep(CASE WHEN nextval('busy_try') = 1 THEN 18"
	               " ELSE 0 END)\";");
	/* la is silent up to 15 s and its last heartbeat up to 5 s before that: it must not be
	 * found dead (its heartbeat's period stays 5 s, so its claims' lease is 7.5 s) */
	char *conf = itest_read_file(a.conf);
	itest_write_file(a.conf, "cluster_dead_after = \"30s\";\n%s", conf);
	free(conf);
	char b_jobs[512];
	snprintf(b_jobs, sizeof(b_jobs), "%s/conf.d/10-jobs.conf", b.dir);
	conf = itest_read_file(b_jobs);
	char *g5 = strstr(conf, "('g5')\";");
	ck_assert(g5);
	int head = (int)(g5 - conf) + (int)strlen("('g5')\";");
	itest_write_file(b_jobs, "%.*s timeout = \"40s\";%s", head, conf, conf + head);
	free(conf);
	itest_inst_start(&a);
	itest_inst_start(&b);
	wait_live(&e, &a);
	wait_live(&e, &b);
	/* both mark their runs (so a claim says whether its run started) */
	ck_assert_msg(itest_wait_log(a.log, "other live instances", 15) &&
	                  itest_wait_log(b.log, "other live instances", 15),
	              "the instances never saw each other:\n%s\n%s", itest_tail(a.log),
	              itest_tail(b.log));
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT EXISTS (SELECT FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'busy' AND status = 'running')"),
	              "busy does not run:\n%s", itest_tail(a.log));
	/* lb's claims wait 30 ms before their inserts: la wins every fire */
	itest_exec(e.db, "CREATE FUNCTION public.slow_claim() RETURNS trigger LANGUAGE plpgsql"
	                 " AS $$ BEGIN IF pg_backend_pid() = (SELECT backend_pid FROM"
	                 " pgcrond.instance WHERE name = 'lb') THEN"
	                 " PERFORM pg_sleep(0.03); END IF; RETURN NULL; END $$;"
	                 "CREATE TRIGGER slow_claim BEFORE INSERT ON pgcrond.fire_claim"
	                 " FOR EACH STATEMENT EXECUTE FUNCTION public.slow_claim()");
	itest_sleep(2);
	/* 40 ms before a second whose fires la claimed (100 ms ahead) and has not started */
	long long instant = 0;
	char *held = NULL; /* those fires' jobs, a text[] literal */
	char sql[1024];
	struct timespec stopped;
	for (int tries = 0; tries < 10 && !held; tries++) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		double frac = (double)ts.tv_nsec / 1e9;
		itest_sleep(frac < 0.96 ? 0.96 - frac : 1.96 - frac);
		clock_gettime(CLOCK_REALTIME, &ts);
		instant = (long long)ts.tv_sec + 1;
		snprintf(sql, sizeof(sql),
		         "SELECT '{' || string_agg(job_name, ',') || '}' FROM pgcrond.fire_claim"
		         " WHERE instance = 'la' AND fire_key = 's:%lld' AND started = false"
		         " AND job_name LIKE 'g_' AND job_name <> 'g5'"
		         " HAVING EXISTS (SELECT FROM pgcrond.fire_claim"
		         "  WHERE instance = 'la' AND fire_key = 's:%lld' AND started = false"
		         "  AND job_name = 'g5')",
		         instant, instant);
		char *before = itest_scalar(e.db, sql);
		if (!before)
			continue;
		free(before);
		clock_gettime(CLOCK_REALTIME, &ts);
		if ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9 > (double)instant - 0.02)
			continue; /* too close to the instant (a loaded machine): the next second */
		ck_assert_int_eq(kill(a.pid, SIGSTOP), 0);
		clock_gettime(CLOCK_MONOTONIC, &stopped);
		/* what it had not started when it stopped (a start mark it sent just before has
		 * landed by now) */
		itest_sleep(0.3);
		held = itest_scalar(e.db, sql);
		if (!held)
			ck_assert_int_eq(kill(a.pid, SIGCONT), 0);
	}
	ck_assert_msg(held, "la never held a coming second's claims:\n%s", itest_tail(b.log));
	char *stop_at = itest_scalar(e.db, "SELECT clock_timestamp()::text");
	/* served by lb while la is still frozen (and never found dead): run, or skipped by the
	 * job's overlap policy when lb serves it as its own run of a later second is under way
	 * (as when the lease ends on a whole second) */
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) = cardinality('%s'::text[]) FROM pgcrond.job_run_details"
	         " WHERE job_name = ANY ('%s') AND scheduled_time = to_timestamp(%lld)"
	         " AND " SERVED " AND instance = 'lb'",
	         held, held, instant);
	bool served = itest_env_wait(&e, 14, "%s", sql);
	char *late = itest_scalar(e.db, "SELECT (max(start_time) - min(scheduled_time))::text"
	                                " FROM pgcrond.job_run_details WHERE instance = 'lb'"
	                                " AND trigger = 'catchup'");
	fprintf(stderr, "it_cluster lease: la held %s of the instant; lb served them %s after it\n",
	        held, late ? late : "(none)");
	free(late);
	long long alive =
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond.instance WHERE name = 'la'"
	                        " AND stopped_at IS NULL");
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double frozen =
	    (double)(now.tv_sec - stopped.tv_sec) + (double)(now.tv_nsec - stopped.tv_nsec) / 1e9;
	if (frozen < 15)
		itest_sleep(15 - frozen); /* the fault's length, by design */
	ck_assert_int_eq(kill(a.pid, SIGCONT), 0);
	char *blog = itest_read_file(b.log);
	size_t blen = strlen(blog);
	ck_assert_msg(served && alive == 1,
	              "la's fires %s of the instant not all served by lb while la was frozen (la "
	              "%s); lb's log ends:\n%s",
	              held, alive ? "not found dead" : "found dead",
	              blen > 2000 ? blog + blen - 2000 : blog); /* Check bounds its messages */
	free(blog);
	/* the run in flight at the stop ended well once la was back */
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'busy' AND status = 'succeeded'"
	                             " AND start_time < '%s' AND end_time > '%s'",
	                             stop_at, stop_at),
	              "busy's run in flight at the stop did not succeed:\n%s", itest_tail(a.log));
	free(stop_at);
	itest_sleep(2); /* la, back, has met its runs of those fires */
	itest_inst_stop(&a, SIGTERM);
	itest_inst_stop(&b, SIGTERM);
	/* not before the lease (7.5 s after the instant, by the database's clock) */
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = ANY ('%s')"
	         " AND scheduled_time = to_timestamp(%lld) AND instance = 'lb'"
	         " AND start_time < to_timestamp(%lld) + interval '7 seconds'",
	         held, instant, instant);
	itest_assert_scalar(e.db, sql, "0");
	/* la, back, ran none of those fires and wrote no row for them but the refusal of its
	 * run's start; the skip its timer's catch-up folds its missed fires into is not written
	 * for a fire another instance claimed (not "14 fires from ... missed (the timer woke
	 * 15.0 s late ...)" for this instant, beside lb's run) */
	snprintf(sql, sizeof(sql),
	         "SELECT string_agg(format('%%s %%s: %%s', job_name, status, return_message), '; ')"
	         " FROM pgcrond.job_run_details WHERE job_name = ANY ('%s')"
	         " AND scheduled_time = to_timestamp(%lld) AND instance = 'la'"
	         " AND NOT (status = 'skipped' AND return_message LIKE"
	         "  'not started: this instance no longer holds the fire''s claim%%')",
	         held, instant);
	char *odd = itest_scalar(e.db, sql);
	ck_assert_msg(!odd, "la's rows of the fires lb served: %s", odd);
	/* g5's fire, which lb defines differently, was left to la: one row, la's */
	snprintf(sql, sizeof(sql),
	         "SELECT string_agg(format('%%s %%s: %%s', instance, status, return_message), '; ')"
	         " FROM pgcrond.job_run_details WHERE job_name = 'g5'"
	         " AND scheduled_time = to_timestamp(%lld)",
	         instant);
	char *g5_rows = itest_scalar(e.db, sql);
	ck_assert_msg(g5_rows && strncmp(g5_rows, "la ", 3) == 0 && !strchr(g5_rows, ';'),
	              "g5's fire of the instant, defined differently on lb: %s",
	              g5_rows ? g5_rows : "no row");
	free(g5_rows);
	/* each other fire of the instant was served once; nothing ran twice, or without its row */
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name LIKE 'g_'"
	         " AND job_name <> 'g5' AND scheduled_time = to_timestamp(%lld) AND " SERVED,
	         instant);
	itest_assert_scalar(e.db, sql, "5");
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM (SELECT job_name FROM pgcrond.job_run_details"
	                    " WHERE status = 'succeeded' GROUP BY job_name, scheduled_time"
	                    " HAVING count(*) > 1) d",
	                    "0");
	itest_assert_scalar(e.db,
	                    "SELECT (SELECT count(*) FROM ran) = (SELECT count(*) FROM"
	                    " pgcrond.job_run_details WHERE job_name LIKE 'g_'"
	                    " AND status = 'succeeded')",
	                    "t");
	free(held);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* A claim slower than a second is not a run: the next fire waits for its answer instead of
 * being skipped as "previous fire still being claimed" (with several instances that skip
 * would take the fire's claim from the instance that would have run it, as it_cluster
 * "kills" can). Here the next fire is decided once the slow claim is answered: the run it granted
 * is under way then, so the fire is skipped for that run, or it runs. Each run lasts 0.3 s, so the
 * claim is slow while the previous fire's run is in flight. */
START_TEST(slow_claim_holds_the_next_fire)
{
	struct itest_env e;
	struct itest_inst a;
	cluster_db(&e, "cl-slowclaim");
	claims_alone(&e);
	itest_exec(e.db,
	           "CREATE TABLE public.slow_once (x int); GRANT ALL ON public.slow_once TO"
	           " PUBLIC;"
	           "CREATE FUNCTION public.slow_claim() RETURNS trigger LANGUAGE plpgsql AS $$"
	           " BEGIN IF EXISTS (SELECT FROM public.slow_once) THEN"
	           " DELETE FROM public.slow_once; PERFORM pg_sleep(1.5); END IF;"
	           " RETURN NULL; END $$;"
	           "CREATE TRIGGER slow_claim BEFORE INSERT ON pgcrond.fire_claim"
	           " FOR EACH STATEMENT EXECUTE FUNCTION public.slow_claim()");
	itest_inst_init(&a, &e, "sc1",
	                "jobs = ( { name = \"tick\"; command = \"SELECT pg_sleep(0.3)\";"
	                " database = \"app\"; schedule = \"* * * * * *\"; } );\n");
	itest_inst_start(&a);
	wait_live(&e, &a);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) >= 2 FROM pgcrond.job_run_details"
	                             " WHERE status = 'succeeded'"),
	              "the job does not run:\n%s", itest_tail(a.log));
	char *from = itest_scalar(e.db, "SELECT date_trunc('second', now())::text");
	itest_exec(e.db, "INSERT INTO public.slow_once VALUES (1)"); /* the next claim: 1.5 s */
	ck_assert_msg(itest_env_wait(&e, 10, "SELECT NOT EXISTS (SELECT FROM public.slow_once)"),
	              "no claim came");
	itest_sleep(3); /* a window: the fires after the slow claim */
	char *to =
	    itest_scalar(e.db, "SELECT (date_trunc('second', now()) - '1 s'::interval)::text");
	itest_inst_stop(&a, SIGTERM);
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.job_run_details"
	                    " WHERE return_message LIKE 'previous fire still being claimed%'",
	                    "0");
	/* every fire of the window has its row: a run, or a skip for a run under way */
	char sql[1024];
	snprintf(sql, sizeof(sql),
	         "SELECT count(DISTINCT scheduled_time) = extract(epoch FROM '%s'::timestamptz"
	         " - '%s'::timestamptz)::bigint + 1 FROM pgcrond.job_run_details"
	         " WHERE scheduled_time BETWEEN '%s' AND '%s'",
	         to, from, from, to);
	itest_assert_scalar(e.db, sql, "t");
	free(from);
	free(to);
	itest_inst_free(&a);
	itest_env_teardown(&e);
}
END_TEST

/* Three instances, three jobs every second, one instance SIGKILLed and restarted every 10 s. */
START_TEST(three_instances_every_fire_once_across_kills)
{
	struct itest_env e;
	struct itest_inst in[3];
	const char *soak = getenv("PGCROND_SOAK");
	double run_s = 30;
	if (soak && strcmp(soak, "1") == 0)
		run_s = getenv("PGCROND_SOAK_S") ? atof(getenv("PGCROND_SOAK_S")) : 180;
	cluster_db(&e, "cl-three");
	itest_exec(e.db, "CREATE TABLE ran (job text, at timestamptz DEFAULT clock_timestamp());"
	                 "GRANT ALL ON ran TO PUBLIC");
	const char *jobs =
	    "jobs = ( { name = \"j1\"; command = \"INSERT INTO ran (job) VALUES ('j1')\";"
	    " database = \"app\"; schedule = \"* * * * * *\"; },\n"
	    "{ name = \"j2\"; command = \"INSERT INTO ran (job) VALUES ('j2')\";"
	    " database = \"app\"; schedule = \"* * * * * *\"; },\n"
	    "{ name = \"j3\"; command = \"SELECT pg_sleep(0.2); INSERT INTO ran (job) VALUES "
	    "('j3')\";"
	    " database = \"app\"; schedule = \"* * * * * *\"; } );\n";
	const char *names[] = {"n1", "n2", "n3"};
	for (int i = 0; i < 3; i++) {
		itest_inst_init(&in[i], &e, names[i], jobs);
		itest_inst_start(&in[i]);
	}
	for (int i = 0; i < 3; i++)
		wait_live(&e, &in[i]);
	/* the cluster serves every job of a second before the window opens */
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT EXISTS (SELECT FROM pgcrond.job_run_details"
	                             " WHERE status = 'succeeded' GROUP BY scheduled_time"
	                             " HAVING count(DISTINCT job_name) = 3)"),
	              "the three jobs do not run:\n%s", itest_tail(in[0].log));
	char *from = itest_scalar(e.db, "SELECT date_trunc('second', now())::text");
	double t0 = itest_now();
	int victim = 0, kills = 0;
	char killed_at[2048] = "{"; /* the kills' times, by the database's clock */
	char *killed_boot = NULL;   /* the last one killed's boot id */
	while (itest_now() - t0 < run_s) {
		itest_sleep(10); /* the rotation's period: a time by design */
		char *at = itest_scalar(e.db, "SELECT clock_timestamp()::text");
		size_t used = strlen(killed_at);
		if (used + strlen(at) + 8 < sizeof(killed_at)) /* a soak of hours: the first ones */
			snprintf(killed_at + used, sizeof(killed_at) - used, "%s\"%s\"",
			         kills ? "," : "", at);
		free(at);
		char q[256];
		snprintf(q, sizeof(q), "SELECT boot_id FROM pgcrond.instance WHERE name = '%s'",
		         in[victim].name);
		free(killed_boot);
		killed_boot = itest_scalar(e.db, q);
		itest_inst_stop(&in[victim], SIGKILL);
		kills++;
		itest_sleep(0.3); /* down for a moment, by design */
		itest_inst_start(&in[victim]);
		victim = (victim + 1) % 3;
	}
	/* The last one restarted closes what its killed process left running once its name is
	 * its own and those records are written (docs/faults.md); stopped before that, they wait
	 * for its next start. A stop that comes within a start's first moments leaves such
	 * rows "running" until then, which is not what this case checks. Its name is its own when
	 * the instance's row has a boot id other than the killed one's (under ASan a restart
	 * takes 2 s to get there). */
	const struct itest_inst *last = &in[(victim + 2) % 3];
	ck_assert_msg(killed_boot &&
	                  itest_env_wait(&e, 30,
	                                 "SELECT (SELECT boot_id FROM pgcrond.instance WHERE name ="
	                                 " '%s') <> '%s' AND NOT EXISTS (SELECT FROM"
	                                 " pgcrond.job_run_details d WHERE d.boot_id = '%s'"
	                                 " AND d.status IN ('running', 'starting'))",
	                                 last->name, killed_boot, killed_boot),
	              "instance %s did not take its name and close its killed process's runs:\n%s",
	              last->name, itest_tail(last->log));
	free(killed_boot);
	char *to =
	    itest_scalar(e.db, "SELECT (date_trunc('second', now()) - '3 s'::interval)::text");
	char sql[8192];
	/* until every fire of the window is served, 4 s at most (what the test always gave) */
	strcat(killed_at, "}");
	/* A kill while a run is under way leaves its job's lock held (its backend may still be
	 * running it) until the lease ends, 1.5 s after the lock's last use (docs/faults.md): the
	 * next fire of that job is skipped, "still running on another instance". Such a skip is
	 * a served fire only within 2 s after a kill. On a loaded machine j3's run (0.2 s of
	 * sleep) can start late enough to be still running at the next second (or a slow claim
	 * can start it then: slow_claim_holds_the_next_fire): that fire is skipped by j3's
	 * overlap policy, and it is served if a run of an earlier fire of j3 was indeed under way
	 * past its instant by the recorded times, on this instance ("previous run still
	 * running") or on another one ("still running on another instance": the stress loop met
	 * it once in the ASan build, a run of j3 started 878 ms late and ended 132 ms into the
	 * next second). (r is the row's alias wherever this is used.) */
	char served_sql[4096];
	snprintf(served_sql, sizeof(served_sql),
	         "(r.status IN ('succeeded', 'failed', 'running') OR (r.status = 'skipped' AND"
	         " r.return_message LIKE 'a run of the job is still running on another instance%%'"
	         " AND EXISTS (SELECT FROM unnest('%s'::timestamptz[]) k WHERE r.scheduled_time > k"
	         " AND r.scheduled_time <= k + '2 s'::interval)) OR (r.status = 'skipped' AND"
	         " (r.return_message LIKE 'previous run still running%%' OR r.return_message LIKE"
	         " 'a run of the job is still running on another instance%%') AND EXISTS (SELECT"
	         " FROM pgcrond.job_run_details p WHERE p.job_name = r.job_name AND p.status IN"
	         " ('succeeded', 'failed') AND p.scheduled_time < r.scheduled_time"
	         " AND p.end_time > r.scheduled_time)))",
	         killed_at);
	snprintf(
	    sql, sizeof(sql),
	    "SELECT count(DISTINCT (job_name, scheduled_time)) = 3 * (extract(epoch FROM"
	    " '%s'::timestamptz - '%s'::timestamptz)::bigint + 1) FROM pgcrond.job_run_details r"
	    " WHERE %s AND r.scheduled_time BETWEEN '%s' AND '%s'",
	    to, from, served_sql, from, to);
	itest_wait_sql(e.db, sql, 30); /* (served at once on a quiet machine; judged below) */
	for (int i = 0; i < 3; i++)
		itest_inst_stop(&in[i], SIGTERM);
	/* zero fires run twice among successful runs */
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM (SELECT job_name, scheduled_time"
	                    " FROM pgcrond.job_run_details WHERE status = 'succeeded'"
	                    " GROUP BY 1, 2 HAVING count(*) > 1) d",
	                    "0");
	/* every fire in the window was served (a run started), also one a killed instance had
	 * claimed an instant early or just before its run's start (claimed_fires_never_run_are_
	 * served) */
	snprintf(sql, sizeof(sql),
	         "SELECT count(DISTINCT (job_name, scheduled_time)) FROM pgcrond.job_run_details r"
	         " WHERE %s AND r.scheduled_time BETWEEN '%s' AND '%s'",
	         served_sql, from, to);
	long long served = itest_scalar_ll(e.db, sql);
	snprintf(
	    sql, sizeof(sql),
	    "SELECT 3 * (extract(epoch FROM '%s'::timestamptz - '%s'::timestamptz)::bigint + 1)",
	    to, from);
	long long expected = itest_scalar_ll(e.db, sql);
	fprintf(stderr, "it_cluster: %d kills, %lld of %lld fires served (%.2f%%)\n", kills, served,
	        expected, 100.0 * (double)served / (double)expected);
	if (served != expected) {
		/* the fires without a served row (a log would overflow Check's message) */
		snprintf(
		    sql, sizeof(sql),
		    "SELECT string_agg(format('%%s %%s: %%s', j, t::time, coalesce((SELECT"
		    " string_agg(format('%%s %%s %%s', d.instance, d.status, d.return_message),"
		    " '; ') FROM pgcrond.job_run_details d WHERE d.job_name = j"
		    " AND d.scheduled_time = t), 'no row')), E'\\n')"
		    " FROM unnest(ARRAY['j1', 'j2', 'j3']) j, generate_series('%s'::timestamptz,"
		    " '%s'::timestamptz, '1 s'::interval) t WHERE NOT EXISTS (SELECT FROM"
		    " pgcrond.job_run_details r WHERE r.job_name = j AND r.scheduled_time = t"
		    " AND %s)",
		    from, to, served_sql);
		char *missing = itest_scalar(e.db, sql);
		fprintf(stderr, "fires not served (kills at %s):\n%s\n", killed_at,
		        missing ? missing : "");
		free(missing);
	}
	ck_assert_msg(served == expected, "%lld of %lld fires served", served, expected);
	/* nothing left running once all stopped */
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.job_run_details"
	                    " WHERE status IN ('running', 'starting')",
	                    "0");
	/* every statement that succeeded has its row: as many j1 inserts as j1 successes, give
	 * or take the runs a kill interrupted after their commit */
	long long ran = itest_scalar_ll(e.db, "SELECT count(*) FROM ran WHERE job = 'j1'");
	long long ok = itest_scalar_ll(e.db, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE job_name = 'j1' AND status = 'succeeded'");
	ck_assert_msg(ran >= ok && ran - ok <= kills, "j1: %lld statements, %lld successes", ran,
	              ok);
	free(from);
	free(to);
	for (int i = 0; i < 3; i++)
		itest_inst_free(&in[i]);
	itest_env_teardown(&e);
}
END_TEST

/* One burst of notifications, seen by three instances: one run in the whole cluster. */
START_TEST(notification_burst_is_one_run)
{
	struct itest_env e;
	struct itest_inst in[3];
	cluster_db(&e, "cl-notify");
	itest_exec(e.db, "CREATE TABLE notified (at timestamptz DEFAULT clock_timestamp());"
	                 "GRANT ALL ON notified TO PUBLIC");
	const char *jobs =
	    "job = { name = \"ev\"; command = \"INSERT INTO notified DEFAULT VALUES\";"
	    " database = \"app\"; listen = \"burst\"; debounce = \"300ms\"; };\n";
	const char *names[] = {"l1", "l2", "l3"};
	for (int i = 0; i < 3; i++) {
		itest_inst_init(&in[i], &e, names[i], jobs);
		itest_inst_start(&in[i]);
	}
	for (int i = 0; i < 3; i++)
		wait_live(&e, &in[i]);
	ck_assert_msg(itest_log_listening(in[0].log, "burst", 15) &&
	                  itest_log_listening(in[1].log, "burst", 15) &&
	                  itest_log_listening(in[2].log, "burst", 15),
	              "not every instance listens");
	ck_assert(itest_env_wait(&e, 15,
	                         "SELECT count(*) = 0 FROM pgcrond.job_run_details"
	                         " WHERE status IN ('starting', 'running')"));
	long long before = itest_scalar_ll(e.db, "SELECT count(*) FROM notified");
	for (int burst = 0; burst < 2; burst++) {
		for (int i = 0; i < 20; i++)
			itest_exec(e.db, "NOTIFY burst, 'x'");
		itest_env_wait(&e, 10, "SELECT count(*) >= %lld FROM notified", before + burst + 1);
		/* a time window: a second run of the burst (another instance's) would show by now
		 */
		itest_sleep(1.5);
	}
	long long runs = itest_scalar_ll(e.db, "SELECT count(*) FROM notified") - before;
	ck_assert_msg(runs == 2, "2 bursts made %lld runs in the cluster", runs);
	for (int i = 0; i < 3; i++)
		itest_inst_stop(&in[i], SIGTERM);
	for (int i = 0; i < 3; i++)
		itest_inst_free(&in[i]);
	itest_env_teardown(&e);
}
END_TEST

/* A downstream with two upstreams whose fires different instances serve (fan-in across
 * instances): each upstream's start and success is told to the other instances, so the
 * downstream runs once per round on the instance that ended the last upstream (counting only
 * the successes it saw itself, an instance would run the downstream only in the rounds where
 * it happened to serve both upstreams). */
START_TEST(fan_in_across_instances)
{
	struct itest_env e;
	struct itest_inst in[3];
	cluster_db(&e, "cl-fanin");
	/* u1 on even seconds, u2 on odd ones: their fires are claimed apart, by any instance */
	const char *jobs = "jobs = (\n"
	                   "{ name = \"u1\"; database = \"app\"; schedule = \"*/2 * * * * *\"; "
	                   "command = \"SELECT 1\"; },\n"
	                   "{ name = \"u2\"; database = \"app\"; schedule = \"1-59/2 * * * * *\"; "
	                   "command = \"SELECT 2\"; },\n"
	                   "{ name = \"d\"; database = \"app\"; after = [\"u1\", \"u2\"]; command "
	                   "= \"SELECT 3\"; }\n"
	                   ");\n";
	const char *names[] = {"fa", "fb", "fc"};
	for (int i = 0; i < 3; i++) {
		itest_inst_init(&in[i], &e, names[i], jobs);
		itest_inst_start(&in[i]);
	}
	for (int i = 0; i < 3; i++)
		wait_live(&e, &in[i]);
	/* six rounds, one of them with its upstreams on different instances */
	itest_env_wait(
	    &e, 45,
	    "SELECT (SELECT least(count(*) FILTER (WHERE job_name = 'u1'), count(*) FILTER"
	    "  (WHERE job_name = 'u2')) >= 6 FROM pgcrond.job_run_details WHERE status ="
	    "  'succeeded') AND EXISTS (SELECT FROM pgcrond.job_run_details d WHERE d.job_name ="
	    "  'd' AND (SELECT instance FROM pgcrond.job_run_details r WHERE r.job_name = 'u1'"
	    "  AND r.status = 'succeeded' AND r.end_time <= d.start_time ORDER BY r.end_time"
	    "  DESC LIMIT 1) IS DISTINCT FROM (SELECT instance FROM pgcrond.job_run_details r"
	    "  WHERE r.job_name = 'u2' AND r.status = 'succeeded' AND r.end_time <= d.start_time"
	    "  ORDER BY r.end_time DESC LIMIT 1))");
	/* all three at once: one stopping alone skips its ready fire of d ("pgcrond was
	 * shutting down") while the others go on */
	for (int i = 0; i < 3; i++)
		kill(in[i].pid, SIGTERM);
	for (int i = 0; i < 3; i++)
		itest_inst_stop(&in[i], 0);
	long long n1 = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                   " WHERE job_name = 'u1' AND status = 'succeeded'");
	long long n2 = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                   " WHERE job_name = 'u2' AND status = 'succeeded'");
	long long rounds = n1 < n2 ? n1 : n2;
	long long d = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                  " WHERE job_name = 'd' AND status = 'succeeded'");
	/* each run of d (a skipped fire is none) comes after a success of both upstreams since
	 * the run of d before it */
	long long early = itest_env_count(
	    &e, "WITH d AS (SELECT start_time, lag(start_time, 1, '-infinity') OVER (ORDER BY"
	        "  start_time) AS prev FROM pgcrond.job_run_details WHERE job_name = 'd'"
	        "  AND status <> 'skipped')"
	        " SELECT count(*) FROM d WHERE EXISTS (SELECT FROM unnest(ARRAY['u1', 'u2']) u(j)"
	        "  WHERE NOT EXISTS (SELECT FROM pgcrond.job_run_details r WHERE r.job_name = u.j"
	        "   AND r.status = 'succeeded' AND r.end_time > d.prev"
	        "   AND r.end_time <= d.start_time))");
	/* the runs of d whose two upstreams' latest successes came from different instances */
	long long split = itest_env_count(
	    &e, "SELECT count(*) FROM pgcrond.job_run_details d WHERE d.job_name = 'd' AND"
	        " (SELECT instance FROM pgcrond.job_run_details r WHERE r.job_name = 'u1' AND"
	        "  r.status = 'succeeded' AND r.end_time <= d.start_time ORDER BY r.end_time DESC"
	        "  LIMIT 1) IS DISTINCT FROM"
	        " (SELECT instance FROM pgcrond.job_run_details r WHERE r.job_name = 'u2' AND"
	        "  r.status = 'succeeded' AND r.end_time <= d.start_time ORDER BY r.end_time DESC"
	        "  LIMIT 1)");
	char *runs = itest_scalar(
	    e.db, "SELECT string_agg(job_name || ' ' || instance || ' ' || status || ' ' ||"
	          " to_char(start_time, 'SS.MS') || CASE WHEN status <> 'succeeded' THEN ': ' ||"
	          " coalesce(return_message, '') ELSE '' END, E'\\n' ORDER BY start_time)"
	          " FROM pgcrond.job_run_details");
	ck_assert_msg(rounds >= 6, "only %lld rounds:\n%s", rounds, runs);
	/* which instance wins a claim is the servers' race: one instance can win every claim
	 * for the whole wait, and then no round is split; the checks
	 * below (once per round, never early) stand either way, and are about a split round
	 * when there was one */
	if (split == 0)
		fprintf(
		    stderr,
		    "it_cluster fanin: one instance won every claim; no round had its upstreams "
		    "on different instances (the rounds are checked all the same)\n");
	/* once per round: none missed (the stop may cut the last), none early or twice */
	ck_assert_msg(d >= rounds - 1 && d <= rounds && early == 0,
	              "d ran %lld times for %lld rounds, %lld of them without both upstreams:\n%s",
	              d, rounds, early, runs);
	free(runs);
	for (int i = 0; i < 3; i++)
		itest_inst_free(&in[i]);
	itest_env_teardown(&e);
}
END_TEST

/* Spread across two instances (docs/calendars.md, "Spread"): twelve jobs on "* * * * *" with
 * spread = "30s", each run 2 s long so that runs are in flight as the next jobs' fires come,
 * on two instances. Every job's fire is at its own second of the minute, the one its name
 * hashes to (cron_spread_offset), within the first 30 s, and starts then; the jobs' instants
 * differ; each fire has one row, succeeded: claimed at the moved instant, run once. */
START_TEST(spread_fires_once_over_the_window)
{
	struct itest_env e;
	struct itest_inst a, b;
	enum { N = 12 };
	char jobs[4096] = "jobs = (";
	size_t used = strlen(jobs);
	cluster_db(&e, "cl-spread");
	for (int i = 0; i < N; i++)
		used += (size_t)snprintf(jobs + used, sizeof(jobs) - used,
		                         "%s{ name = \"sp-%02d\"; command = \"SELECT pg_sleep(2)\";"
		                         " database = \"app\"; schedule = \"* * * * *\";"
		                         " spread = \"30s\"; }\n",
		                         i ? ", " : "", i);
	used += (size_t)snprintf(jobs + used, sizeof(jobs) - used, ");\n");
	ck_assert(used < sizeof(jobs));
	itest_inst_init(&a, &e, "spa", jobs);
	itest_inst_init(&b, &e, "spb", jobs);
	itest_inst_up(&e, &a);
	itest_inst_up(&e, &b);
	char *up = itest_scalar(e.db, "SELECT (now() + interval '1 s')::text");
	/* every job's next fire: at most a minute away */
	ck_assert_msg(itest_env_wait(&e, 75,
	                             "SELECT count(DISTINCT job_name) = %d FROM"
	                             " pgcrond.job_run_details WHERE scheduled_time > '%s'"
	                             " AND status = 'succeeded'",
	                             N, up),
	              "not every job ran:\n%s\n%s", itest_tail(a.log), itest_tail(b.log));
	/* the fires looked at: those before a run could be in flight at the stop */
	char *until = itest_scalar(e.db, "SELECT (now() - interval '5 s')::text");
	ck_assert_int_eq(itest_inst_stop(&a, SIGTERM), 0);
	ck_assert_int_eq(itest_inst_stop(&b, SIGTERM), 0);

	char sql[1024];
	int distinct = 0;
	for (int i = 0; i < N; i++) {
		char name[16];
		snprintf(name, sizeof(name), "sp-%02d", i);
		int off = cron_spread_offset(name, 30);
		bool seen = false;
		for (int k = 0; k < i; k++) {
			char other[16];
			snprintf(other, sizeof(other), "sp-%02d", k);
			seen |= cron_spread_offset(other, 30) == off;
		}
		distinct += !seen;
		/* its fires at its second, started then, one row each, succeeded */
		snprintf(
		    sql, sizeof(sql),
		    "SELECT coalesce(string_agg(scheduled_time || ' ' || status || ' started '"
		    " || start_time, ', '), '') FROM (SELECT scheduled_time, status, start_time,"
		    " count(*) OVER (PARTITION BY scheduled_time) AS n FROM"
		    " pgcrond.job_run_details WHERE job_name = '%s' AND scheduled_time > '%s'"
		    " AND scheduled_time < '%s') r"
		    " WHERE n <> 1 OR status <> 'succeeded' OR extract(second FROM"
		    " scheduled_time) <> %d OR start_time < scheduled_time"
		    " OR start_time > scheduled_time + interval '5 s'",
		    name, up, until, off);
		char *bad = itest_scalar(e.db, sql);
		ck_assert_msg(!*bad, "%s (its second: %d): %s", name, off, bad);
		free(bad);
	}
	ck_assert_int_ge(distinct, 4);
	/* the instants differ across jobs as the offsets do */
	snprintf(sql, sizeof(sql),
	         "SELECT count(DISTINCT extract(second FROM scheduled_time)) FROM"
	         " pgcrond.job_run_details WHERE scheduled_time > '%s'",
	         up);
	ck_assert_int_eq(itest_scalar_ll(e.db, sql), distinct);
	free(up);
	free(until);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* An HTTP server for http_request_waits_for_its_mark: on each request it looks in
 * pgcrond.run_start (psql, DIR/psql.txt and DIR/ci.txt) for the start mark of job h's fire
 * of the last 1.5 s and appends its instant to DIR/requests.txt ("0": none), then answers
 * 200 once DIR/sleep.txt no longer says "hold". Writes its port. */
static const char mark_server_py[] =
    "import http.server, socketserver, sys, os, time, subprocess\n"
    "d = sys.argv[1]\n"
    "rd = lambda n: open(os.path.join(d, n)).read().strip()\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *a): pass\n"
    "    def do_GET(self):\n"
    "        t = time.time()\n"
    "        q = \"SELECT scheduled_s FROM pgcrond.run_start WHERE job_name = 'h'\"\n"
    "        out = subprocess.run([rd('psql.txt'), '-XAtq', '-c', q, rd('ci.txt')],\n"
    "                             capture_output=True, text=True).stdout.split()\n"
    "        m = [x for x in out if t - 1.5 < float(x) <= t + 0.5]\n"
    "        with open(os.path.join(d, 'requests.txt'), 'a') as f:\n"
    "            f.write((m[0] if m else '0') + '\\n')\n"
    "        while os.path.exists(os.path.join(d, 'sleep.txt')) and rd('sleep.txt') == 'hold':\n"
    "            time.sleep(0.05)\n"
    "        try:\n"
    "            self.send_response(200)\n"
    "            self.send_header('Content-Length', '2')\n"
    "            self.end_headers()\n"
    "            self.wfile.write(b'ok')\n"
    "        except (BrokenPipeError, ConnectionResetError): pass\n"
    "class S(socketserver.ThreadingMixIn, http.server.HTTPServer):\n"
    "    daemon_threads = True\n"
    "s = S(('127.0.0.1', 0), H)\n"
    "open(os.path.join(d, 'ports.tmp'), 'w').write(str(s.server_address[1]))\n"
    "os.rename(os.path.join(d, 'ports.tmp'), os.path.join(d, 'ports.txt'))\n"
    "s.serve_forever()\n";

/* The server's requests.txt: fails if a request came without its fire's start mark ("0") or
 * a fire's request came twice; returns how many requests came. */
static int requests_marked_once(const char *path)
{
	char *all = itest_read_file(path), *save = NULL;
	long long seen[512];
	int n = 0;
	for (char *l = strtok_r(all, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		long long s = atoll(l);
		ck_assert_msg(s > 0, "request %d reached the server before its start mark:\n%s",
		              n + 1, itest_read_file(path));
		for (int i = 0; i < n; i++)
			ck_assert_msg(seen[i] != s, "the fire of %lld was requested twice", s);
		ck_assert_int_lt(n, 512);
		seen[n++] = s;
	}
	free(all);
	return n;
}

/* With several instances an HTTP run's request waits for its start mark, as a SQL run's
 * statement does (docs/faults.md, "An HTTP job"): the server finds the mark in
 * pgcrond.run_start when each request reaches it. An instance frozen while the server holds
 * its request is found dead: the survivor closes that run failed ("the request may have
 * reached the server") and does not serve its fire again, and the frozen one, resumed,
 * sends nothing twice: each fire's request comes once (no retries). */
/* mark_server_py started in E's DIR (E->dir/http): its pid, its port in *PORT */
static pid_t mark_server_start(const struct itest_env *e, char *dir, size_t dirlen, int *port)
{
	char path[1100], *ports;
	snprintf(dir, dirlen, "%s/http", e->dir);
	mkdir(dir, 0755);
	snprintf(path, sizeof(path), "%s/psql.txt", dir);
	itest_write_file(path, "%s/psql", itest_pgbin());
	snprintf(path, sizeof(path), "%s/ci.txt", dir);
	char *ci = itest_conninfo_db(DB);
	itest_write_file(path, "%s", ci);
	free(ci);
	pid_t srv = itest_script_start(dir, mark_server_py, &ports);
	*port = atoi(ports);
	ck_assert_msg(*port > 0, "the HTTP server did not start: %s", ports);
	free(ports);
	return srv;
}

START_TEST(http_request_waits_for_its_mark)
{
	struct itest_env e;
	struct itest_inst a, b;
	cluster_db(&e, "cl-httpmark");
	char dir[1024], path[1100], sleep_txt[1100];
	int port;
	pid_t srv = mark_server_start(&e, dir, sizeof(dir), &port);
	snprintf(sleep_txt, sizeof(sleep_txt), "%s/sleep.txt", dir);
	snprintf(path, sizeof(path), "%s/requests.txt", dir);
	char jobs[512];
	snprintf(jobs, sizeof(jobs),
	         "job = { name = \"h\"; schedule = \"2 seconds\";"
	         " http = { url = \"http://127.0.0.1:%d/h\"; }; };\n",
	         port);
	pair_up(&e, &a, &b, jobs);
	itest_sleep(3); /* each knows it is not alone: runs are marked from now on */
	unlink(path);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) >= 2 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'h' AND status = 'succeeded'"
	                             " AND start_time > now() - interval '6 s'"),
	              "no runs:\n%s", itest_tail(a.log));
	itest_sleep(4);
	ck_assert_int_ge(requests_marked_once(path), 2);

	/* a request held by the server, its instance frozen */
	itest_write_file(sleep_txt, "hold");
	struct itest_inst *frozen = running_on(&e, &a, &b, "h");
	struct itest_inst *alive = frozen == &a ? &b : &a;
	kill(frozen->pid, SIGSTOP);
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'h' AND status = 'failed'"
	                             " AND return_message LIKE 'instance %s died%%closed by"
	                             " instance %s; the request may have reached the server%%'",
	                             frozen->name, alive->name),
	              "the frozen instance's run was not closed:\n%s", itest_tail(alive->log));
	itest_sleep(3); /* the survivor's next fires, held too */
	kill(frozen->pid, SIGCONT);
	itest_sleep(2);
	itest_write_file(sleep_txt, "0");
	itest_sleep(5); /* the resumed instance finds itself dead; the held answers come */
	ck_assert_int_ge(requests_marked_once(path), 5);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM (SELECT scheduled_time FROM"
	                                     " pgcrond.job_run_details WHERE job_name = 'h'"
	                                     " AND status IN ('succeeded', 'failed', 'running')"
	                                     " GROUP BY 1 HAVING count(*) > 1) t"),
	                 0);
	itest_inst_stop(alive, SIGTERM);
	itest_inst_stop(frozen, SIGTERM);
	itest_relay_stop(srv);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* The instance of L whose `pgcrond status --json` lists a run of job h waiting for its start
 * mark ("mark"), in L->found. */
struct mark_look {
	struct itest_inst *in[2];
	struct itest_inst *found;
	char *status; /* that instance's `pgcrond status h` */
};

static bool h_waits_for_its_mark(void *arg)
{
	struct mark_look *l = arg;
	for (int i = 0; i < 2 && !l->found; i++) {
		int st;
		char *out = itest_cli(&st, "status", "-c", l->in[i]->conf, "--json", NULL);
		json_t *doc = st == 0 ? json_loads(out, 0, NULL) : NULL, *j, *w;
		size_t x, y;
		json_array_foreach(json_object_get(doc, "jobs"), x, j)
		{
			if (strcmp(json_string_value(json_object_get(j, "name")), "h") != 0)
				continue;
			json_array_foreach(json_object_get(j, "waiting"), y, w)
			{
				if (strcmp(json_string_value(json_object_get(w, "for")), "mark") ==
				    0)
					l->found = l->in[i];
			}
		}
		json_decref(doc);
		free(out);
		if (l->found)
			l->status = itest_cli(&st, "status", "-c", l->found->conf, "h", NULL);
	}
	return l->found != NULL;
}

/* With several instances, an HTTP run waiting for its start mark sent nothing yet: `pgcrond
 * status` lists it as waiting ("mark"), and `pgcrond drop` withdraws it as it does a SQL run
 * waiting for its connection (docs/operations.md, the backlog): its request never reaches
 * the server, its one row is skipped "dropped by ...", and the job's later fires run. The
 * marks are held by a lock the test takes on pgcrond.run_start, between two fires. */
START_TEST(http_run_waiting_for_its_mark_dropped)
{
	struct itest_env e;
	struct itest_inst a, b;
	cluster_db(&e, "cl-httpdrop");
	char dir[1024], path[1100], jobs[512];
	int port;
	pid_t srv = mark_server_start(&e, dir, sizeof(dir), &port);
	snprintf(path, sizeof(path), "%s/requests.txt", dir);
	snprintf(jobs, sizeof(jobs),
	         "job = { name = \"h\"; schedule = \"*/5 * * * * *\";"
	         " http = { url = \"http://127.0.0.1:%d/h\"; }; };\n",
	         port);
	itest_inst_init(&a, &e, "one", jobs);
	itest_inst_init(&b, &e, "two", jobs);
	itest_inst_up(&e, &a);
	itest_inst_up(&e, &b);
	itest_sleep(3); /* each knows it is not alone: runs are marked from now on */
	char *up = itest_scalar(e.db, "SELECT clock_timestamp()::text");
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) >= 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'h' AND status = 'succeeded'"
	                             " AND start_time > '%s'",
	                             up),
	              "no runs:\n%s", itest_tail(a.log));

	/* between two fires (2 s after one, its run over and its mark gone: the statement that
	 * deletes it would hold up its instance's session, and the claim of the next fire behind
	 * it), the marks' table locked: the next fire's run waits for its mark on the instance
	 * that claimed it */
	char *wait = itest_scalar(e.db, "SELECT (7 - extract(epoch FROM clock_timestamp())"
	                                " % 5) % 5");
	itest_sleep(atof(wait));
	free(wait);
	ck_assert_msg(itest_env_wait(&e, 2,
	                             "SELECT NOT EXISTS (SELECT FROM pgcrond.job_run_details"
	                             "  WHERE job_name = 'h' AND status = 'running')"
	                             " AND NOT EXISTS (SELECT FROM pgcrond.run_start)"),
	              "a run of h goes on:\n%s", itest_tail(a.log));
	PGconn *lock = itest_connect(e.ci);
	itest_exec(lock, "BEGIN; LOCK TABLE pgcrond.run_start IN SHARE MODE");
	struct mark_look l = {.in = {&a, &b}};
	ck_assert_msg(itest_wait_until(h_waits_for_its_mark, &l, 12),
	              "no run of h waits for its mark:\none:\n%s\ntwo:\n%s", itest_tail(a.log),
	              itest_tail(b.log));
	ck_assert_msg(strstr(l.status, "waiting:\n  for its start mark [mark]"), "status h: %s",
	              l.status);
	free(l.status);
	int st;
	char *out = itest_cli(&st, "drop", "-c", l.found->conf, "h", NULL);
	static const char dropped[] = "h: 1 waiting run(s) dropped (dropped by ";
	ck_assert_msg(st == 0 && strncmp(out, dropped, strlen(dropped)) == 0, "drop h: %d %s", st,
	              out);
	free(out);
	itest_sleep(1); /* a request would go once the mark is written: it must not */
	itest_exec(lock, "COMMIT");
	PQfinish(lock);

	/* its one row: skipped, dropped, without a SQLSTATE */
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 AND bool_and(r.status = 'skipped'"
	                             " AND r.return_message LIKE 'dropped by %%, uid %%'"
	                             " AND r.sqlstate IS NULL AND r.instance = '%s'"
	                             " AND (SELECT count(*) FROM pgcrond.job_run_details o"
	                             "  WHERE o.job_name = 'h'"
	                             "  AND o.scheduled_time = r.scheduled_time) = 1)"
	                             " FROM pgcrond.job_run_details r WHERE r.job_name = 'h'"
	                             " AND r.return_message LIKE 'dropped%%'",
	                             l.found->name),
	              "h's dropped row: %s\n%s",
	              itest_scalar(e.db, "SELECT json_agg(r) FROM pgcrond.job_run_details r"
	                                 " WHERE job_name = 'h' AND start_time > now() - '20 s'"),
	              itest_tail(l.found->log));
	/* the later fires run */
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) >= 2 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'h' AND status = 'succeeded'"
	                             " AND scheduled_time > (SELECT scheduled_time FROM"
	                             "  pgcrond.job_run_details WHERE job_name = 'h'"
	                             "  AND return_message LIKE 'dropped%%')"),
	              "no later fire of h ran:\n%s", itest_tail(l.found->log));
	ck_assert_int_eq(itest_inst_stop(&a, SIGTERM), 0);
	ck_assert_int_eq(itest_inst_stop(&b, SIGTERM), 0);
	/* each request the server got is a success's: none was the dropped run's */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE job_name = 'h' AND status = 'succeeded'"),
	                 itest_count_in_file(path, "\n"));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE job_name = 'h' AND status = 'failed'"),
	                 0);
	free(up);
	itest_relay_stop(srv);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cluster");
	/* one case per test, so CK_RUN_CASE=<name> runs one */
	const struct {
		const char *name;
		const TTest *test;
	} cases[] = {
	    {"config", bad_instance_name_is_a_config_error},
	    {"hostname", host_name_that_cannot_name_an_instance},
	    {"same_name", same_name_refused_and_runs_kept},
	    {"dead", survivor_closes_dead_runs_and_retries},
	    {"notify", notification_burst_is_one_run},
	    {"overlap", overlap_skip_across_instances},
	    {"definitions", different_definitions_are_logged},
	    {"parts", jobs_published_in_parts},
	    {"turns", claims_go_between_the_jobs_parts},
	    {"batch", fires_waiting_for_a_slot_are_claimed_together},
	    {"kills", three_instances_every_fire_once_across_kills},
	    {"fanin", fan_in_across_instances},
	    {"giveback", stop_gives_back_early_claims},
	    {"slowclaim", slow_claim_holds_the_next_fire},
	    {"lease", silent_holders_claims_are_served},
	    {"unserved", claimed_fires_never_run_are_served},
	    {"spooled", killed_with_records_spooled_serves_its_claim},
	    {"hello", newcomer_is_seen_at_once},
	    {"spread", spread_fires_once_over_the_window},
	    {"httpmark", http_request_waits_for_its_mark},
	    {"httpdrop", http_run_waiting_for_its_mark_dropped},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_set_timeout(tc, 600);
		if (cases[i].test == stop_gives_back_early_claims) /* and with a late give-back */
			tcase_add_loop_test(tc, cases[i].test, 0, 3);
		else
			tcase_add_test(tc, cases[i].test);
		itest_add_tcase(s, tc);
	}
	SRunner *sr = srunner_create(s);
	int failed = itest_run_share(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
