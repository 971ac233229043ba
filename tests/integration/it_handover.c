/* What instances hand each other beyond the claims (coord.h, sql/pgcrond--7.sql,
 * docs/several-instances.md): overlap = queue and replace across instances, the
 * retry a dead instance had scheduled, a downstream run it owed, and the paused set shared
 * by every instance. Two instances with their own names and state_dirs on one database. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

#define DB "pgcrond_it_handover"
/* A heartbeat and a reap after the database's return (cluster.h: every 5 s). */
#define CLUSTER_WAIT_S 6

static void handover_db(struct itest_env *e, const char *tag)
{
	itest_env_setup(e, tag, DB);
	itest_assert_scalar(e->db, "SELECT to_regclass('pgcrond.pending_work') IS NOT NULL", "t");
	itest_exec(e->db, "GRANT ALL ON ALL TABLES IN SCHEMA pgcrond TO PUBLIC");
}

/* The six-field schedule of the second AT of every minute. */
static void at_second(char *out, size_t len, int at)
{
	snprintf(out, len, "%d * * * * *", ((at % 60) + 60) % 60);
}

/* A and B, up, given the jobs JOBS(S0, I, OUT) writes for instance I (0: A, 1: B) with
 * S0 the second of every minute their fires are written around: first with S0 < 0 (nothing
 * comes due), then, once both run, with S0 a few seconds ahead (their starts on a loaded
 * machine took longer than the seconds to a fire written before them) and each has seen
 * the other live; again if both reloads began too late for it. */
static void up_then_soon(struct itest_env *e, struct itest_inst *a, struct itest_inst *b,
                         const char *na, const char *nb,
                         void (*jobs)(int s0, int i, char *out, size_t len))
{
	char ja[1024], jb[1024];
	jobs(-1, 0, ja, sizeof(ja));
	jobs(-1, 1, jb, sizeof(jb));
	itest_inst_init(a, e, na, ja);
	itest_inst_init(b, e, nb, jb);
	itest_inst_up(e, a);
	itest_inst_up(e, b);
	/* each marks its runs (and sees the other's) once a heartbeat saw the other live */
	ck_assert_msg(itest_wait_log(a->log, "other live instances", 15) &&
	                  itest_wait_log(b->log, "other live instances", 15),
	              "the instances never saw each other:\n%s\n%s", itest_tail(a->log),
	              itest_tail(b->log));
	struct itest_inst *both[] = {a, b};
	for (int ahead = 3; ahead;) {
		char s[32];
		time_t at = itest_schedule_soon_at(s, sizeof(s), ahead);
		jobs((int)(at % 60), 0, ja, sizeof(ja));
		jobs((int)(at % 60), 1, jb, sizeof(jb));
		itest_inst_reload(a, ja);
		itest_inst_reload(b, jb);
		ahead = itest_insts_soon_again(both, 2, at, ahead);
	}
}

/* The schedule of the second S0 + D of every minute, or one that does not come round in a
 * test for S0 < 0. */
static void at_second_or_never(char *out, size_t len, int s0, int d)
{
	if (s0 < 0)
		snprintf(out, len, "0 0 1 1 *");
	else
		at_second(out, len, s0 + d);
}

static const char *flaky_delay;

static void flaky_jobs(int s0, int i, char *out, size_t len)
{
	(void)i;
	char s[32];
	at_second_or_never(s, sizeof(s), s0, 0);
	snprintf(out, len,
	         "job = { name = \"flaky\"; command = \"SELECT 1/0\"; database = \"app\";"
	         " schedule = \"%s\"; retries = 1; retry_on = \"any\"; retry_delay = \"%s\"; };\n",
	         s, flaky_delay);
}

/* Instances NA and NB on one database, job "flaky" failing once, soon after both run, with
 * one retry after DELAY: once its first attempt failed and its retry is pending, *RAN is the
 * instance that ran it and *OTHER the other one. */
static void flaky_on_two(struct itest_env *e, struct itest_inst *a, struct itest_inst *b,
                         const char *na, const char *nb, const char *delay, struct itest_inst **ran,
                         struct itest_inst **other)
{
	flaky_delay = delay;
	up_then_soon(e, a, b, na, nb, flaky_jobs);
	ck_assert_msg(
	    itest_env_wait(e, 20,
	                   "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                   " WHERE job_name = 'flaky' AND attempt = 1 AND status = 'failed'"),
	    "no failed first attempt:\n%s\n%s", itest_read_file(a->log), itest_read_file(b->log));
	/* its retry is written down as pending (not asserted here: the user's check follows) */
	itest_env_wait(e, 5,
	               "SELECT count(*) = 1 FROM pgcrond.pending_work"
	               " WHERE job_name = 'flaky' AND kind = 'retry' AND attempt = 2");
	char *runner = itest_scalar(e->db, "SELECT instance FROM pgcrond.job_run_details"
	                                   " WHERE job_name = 'flaky' AND attempt = 1");
	ck_assert(runner);
	*ran = strcmp(runner, na) == 0 ? a : b;
	*other = *ran == a ? b : a;
	free(runner);
}

/* one instance fires it a second after the other: the second fire meets the first run, and
 * waits for it about 5 s (a loaded ASan machine's `pgcrond status` calls and the running row
 * seen late left less than one look within a 2 s wait) */
static void queue_jobs(int s0, int i, char *out, size_t len)
{
	char s[32];
	at_second_or_never(s, sizeof(s), s0, i);
	snprintf(out, len,
	         "job = { name = \"q\"; command = \"SELECT pg_sleep(6)\"; database = \"app\";"
	         " schedule = \"%s\"; overlap = \"queue\"; };\n",
	         s);
}

/* overlap = queue: a fire that finds the job running on the other instance waits for that
 * run's end (announced by a NOTIFY), then runs; before, it was skipped. */
START_TEST(queue_waits_for_the_other_instance)
{
	struct itest_env e;
	struct itest_inst a, b;
	handover_db(&e, "ho-queue");
	up_then_soon(&e, &a, &b, "qa", "qb", queue_jobs);
	/* while qa runs it, qb's status says its fire waits for that */
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'q' AND status = 'running'"),
	              "no run:\n%s", itest_read_file(a.log));
	int st;
	char *out = NULL;
	double t0 = itest_now();
	do {
		free(out);
		out = itest_cli(&st, "status", "-c", b.conf, "q", NULL);
	} while (!strstr(out, "state:        waiting_instance") && itest_now() - t0 < 6 &&
	         (itest_sleep(0.1), 1));
	ck_assert_msg(strstr(out, "state:        waiting_instance"), "status of qb:\n%s", out);
	free(out);
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) = 2 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'q' AND status = 'succeeded'"),
	              "two runs did not succeed:\n%s\n%s", itest_read_file(a.log),
	              itest_read_file(b.log));
	itest_assert_scalar(e.db,
	                    "SELECT string_agg(instance, ',' ORDER BY start_time)"
	                    " FROM pgcrond.job_run_details WHERE job_name = 'q'",
	                    "qa,qb");
	/* the second started after the first ended, on its own instance */
	itest_assert_scalar(e.db,
	                    "SELECT (SELECT start_time FROM pgcrond.job_run_details"
	                    "         WHERE instance = 'qb' AND job_name = 'q')"
	                    "    >= (SELECT end_time FROM pgcrond.job_run_details"
	                    "         WHERE instance = 'qa' AND job_name = 'q')",
	                    "t");
	itest_assert_scalar(
	    e.db, "SELECT count(*) FROM pgcrond.job_run_details WHERE status = 'skipped'", "0");
	/* status says which instance this is and which others are live */
	out = itest_cli(&st, "status", "-c", a.conf, NULL);
	ck_assert_msg(strstr(out, "cluster: instance qa, coordinating, other live instances: qb"),
	              "status of qa:\n%s", out);
	free(out);
	itest_inst_stop(&a, SIGTERM);
	itest_inst_stop(&b, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* ra runs it (60 s) at S0, rb (1 s) at S0 + 2 */
static void replace_jobs(int s0, int i, char *out, size_t len)
{
	char s[32];
	at_second_or_never(s, sizeof(s), s0, 2 * i);
	snprintf(out, len,
	         "job = { name = \"r\"; command = \"SELECT pg_sleep(%d)\"; database = \"app\";"
	         " schedule = \"%s\"; overlap = \"replace\"; };\n",
	         i ? 1 : 60, s);
}

/* overlap = replace: the newer fire on one instance has the other instance cancel its run
 * (through a request row it reads and its own cancel key), then runs. */
START_TEST(replace_cancels_the_other_instance_run)
{
	struct itest_env e;
	struct itest_inst a, b;
	handover_db(&e, "ho-replace");
	up_then_soon(&e, &a, &b, "ra", "rb", replace_jobs);
	ck_assert_msg(itest_env_wait(&e, 25,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'r' AND instance = 'rb'"
	                             " AND status = 'succeeded'"),
	              "the replacing run did not run:\n%s\n%s", itest_read_file(a.log),
	              itest_read_file(b.log));
	itest_assert_scalar(
	    e.db,
	    "SELECT return_message FROM pgcrond.job_run_details"
	    " WHERE job_name = 'r' AND instance = 'ra'",
	    "cancelled: replaced by a newer run on instance rb (overlap = replace)");
	itest_assert_scalar(e.db,
	                    "SELECT (SELECT start_time FROM pgcrond.job_run_details"
	                    "         WHERE instance = 'rb' AND job_name = 'r')"
	                    "    >= (SELECT end_time FROM pgcrond.job_run_details"
	                    "         WHERE instance = 'ra' AND job_name = 'r')",
	                    "t");
	/* the request was consumed by the instance it named */
	itest_assert_scalar(e.db, "SELECT count(*) FROM pgcrond.cancel_request", "0");
	itest_inst_stop(&a, SIGTERM);
	itest_inst_stop(&b, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* A retry scheduled on an instance that then dies runs on the survivor. */
START_TEST(dead_instance_retry_runs_on_survivor)
{
	struct itest_env e;
	struct itest_inst a, b;
	handover_db(&e, "ho-retry");
	struct itest_inst *dead, *alive;
	flaky_on_two(&e, &a, &b, "ta", "tb", "15s", &dead, &alive);
	itest_inst_stop(dead, SIGKILL);
	/* well before the dead one's 15 s delay would have ended: taken over at once */
	ck_assert_msg(itest_env_wait(&e, 12,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'flaky' AND attempt = 2"
	                             " AND trigger = 'retry' AND instance = '%s'",
	                             alive->name),
	              "the survivor did not run the retry:\n%s", itest_read_file(alive->log));
	itest_assert_scalar(e.db, "SELECT count(*) FROM pgcrond.pending_work", "0");
	ck_assert_msg(
	    itest_wait_log(alive->log, "taking over a retry run a dead instance owed", 10),
	    "no log line:\n%s", itest_read_file(alive->log));
	itest_inst_stop(alive, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* pgcrond pause on one instance pauses the job on every instance; a downstream run an
 * instance owed when it died (its upstream ran there, it was held by the pause) runs on the
 * survivor when the job is resumed there. */
START_TEST(pause_is_shared_and_owed_downstream_is_taken_over)
{
	struct itest_env e;
	struct itest_inst a, b;
	handover_db(&e, "ho-pause");
	const char *jobs = "jobs = ( { name = \"up\"; command = \"SELECT 1\"; database = \"app\";"
	                   " schedule = \"0 0 1 1 *\"; },\n"
	                   "  { name = \"down\"; command = \"SELECT 2\"; database = \"app\";"
	                   " after = [ \"up\" ]; } );\n";
	itest_inst_init(&a, &e, "pa", jobs);
	itest_inst_init(&b, &e, "pb", jobs);
	itest_inst_up(&e, &a);
	itest_inst_up(&e, &b);
	int st;
	char *out = itest_cli(&st, "pause", "-c", a.conf, "down", NULL);
	ck_assert_msg(st == 0, "pause: %s", out);
	free(out);
	/* the other instance follows */
	double t0 = itest_now();
	for (;;) {
		out = itest_cli(&st, "status", "-c", b.conf, "down", NULL);
		if (strstr(out, "paused:       yes") || itest_now() - t0 > 10)
			break;
		free(out);
		itest_sleep(0.2);
	}
	ck_assert_msg(strstr(out, "paused:       yes"), "not paused on the other instance:\n%s\n%s",
	              out, itest_read_file(b.log));
	free(out);
	itest_assert_scalar(e.db,
	                    "SELECT string_agg(job_name || '/' || paused_by, ',')"
	                    " FROM pgcrond.job_pause",
	                    "down/pa");
	/* its upstream runs on pa: the downstream run is held there, and written down */
	out = itest_cli(&st, "trigger", "-c", a.conf, "--wait", "up", NULL);
	ck_assert_msg(st == 0, "trigger: %s", out);
	free(out);
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pgcrond.pending_work"
	                             " WHERE instance = 'pa' AND job_name = 'down'"
	                             " AND kind = 'upstream'"),
	              "no owed downstream written:\n%s", itest_read_file(a.log));
	itest_inst_stop(&a, SIGKILL);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 0 FROM pgcrond.pending_work"
	                             " WHERE instance = 'pa'"),
	              "not taken over:\n%s", itest_read_file(b.log));
	out = itest_cli(&st, "resume", "-c", b.conf, "down", NULL);
	ck_assert_msg(st == 0, "resume: %s", out);
	free(out);
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'down' AND instance = 'pb'"
	                             " AND status = 'succeeded'"),
	              "the owed downstream did not run on the survivor:\n%s",
	              itest_read_file(b.log));
	itest_assert_scalar(e.db, "SELECT count(*) FROM pgcrond.job_pause", "0");
	itest_inst_stop(&b, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* Notifications an instance gathered while the job ran there are run by the survivor when
 * that instance dies. Each instance listens on its own channel here, so only the one that
 * dies ever saw them. */
START_TEST(dead_instance_notifications_run_on_survivor)
{
	struct itest_env e;
	struct itest_inst a, b;
	handover_db(&e, "ho-notify");
	itest_inst_init(
	    &a, &e, "na",
	    "job = { name = \"l\"; command = \"SELECT pg_sleep(3)\"; database = \"app\";"
	    " listen = \"ch_a\"; debounce = \"200ms\"; };\n");
	itest_inst_init(
	    &b, &e, "nb",
	    "job = { name = \"l\"; command = \"SELECT pg_sleep(3)\"; database = \"app\";"
	    " listen = \"ch_b\"; debounce = \"200ms\"; };\n");
	itest_inst_up(&e, &a);
	itest_inst_up(&e, &b);
	ck_assert_msg(itest_log_listening(a.log, "ch_a", 15) &&
	                  itest_log_listening(b.log, "ch_b", 15),
	              "not every instance listens");
	ck_assert(itest_env_wait(&e, 15,
	                         "SELECT count(*) = 0 FROM pgcrond.job_run_details"
	                         " WHERE status IN ('starting', 'running')"));
	long long before = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                       " WHERE instance = 'nb'");
	itest_exec(e.db, "NOTIFY ch_a, 'first'");
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE instance = 'na' AND status = 'running'"),
	              "no run on na:\n%s", itest_read_file(a.log));
	/* gathered while the job runs */
	itest_exec(e.db, "NOTIFY ch_a, 'second'");
	itest_env_wait(&e, 5,
	               "SELECT count(*) = 1 FROM pgcrond.pending_work"
	               " WHERE instance = 'na' AND kind = 'notify' AND payloads = '{second}'");
	itest_inst_stop(&a, SIGKILL);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = %lld + 1 FROM pgcrond.job_run_details"
	                             " WHERE instance = 'nb' AND trigger = 'notify'",
	                             before),
	              "the survivor did not run the gathered notifications:\n%s",
	              itest_read_file(b.log));
	itest_inst_stop(&b, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* da's jobs (S0 < 0: nothing comes due, db's): up runs at S0 and holds the only slot; busy
 * comes due a second later and waits for it; when up ends, down queues behind busy */
static void queued_jobs(int s0, char *out, size_t len)
{
	char s_up[32], s_busy[32];
	at_second_or_never(s_up, sizeof(s_up), s0, 0);
	at_second_or_never(s_busy, sizeof(s_busy), s0, 1);
	snprintf(out, len,
	         "jobs = ( { name = \"up\"; command = \"SELECT pg_sleep(2)\";"
	         " database = \"app\"; schedule = \"%s\"; },\n"
	         "  { name = \"busy\"; command = \"SELECT pg_sleep(60)\"; database = \"app\";"
	         " schedule = \"%s\"; },\n"
	         "  { name = \"down\"; command = \"SELECT 2\"; database = \"app\";"
	         " after = [ \"up\" ]; } );\n",
	         s_up, s_busy);
}

/* A downstream run waiting for a run slot (max_running) on an instance that dies runs on
 * the survivor. */
START_TEST(dead_instance_queued_downstream_runs_on_survivor)
{
	struct itest_env e;
	struct itest_inst a, b;
	handover_db(&e, "ho-queued");
	char ja[768];
	queued_jobs(-1, ja, sizeof(ja));
	itest_inst_init(&a, &e, "da", ja);
	itest_inst_init(&b, &e, "db", ja);
	char *main_a = itest_read_file(a.conf);
	itest_write_file(a.conf, "%smax_running = 1;\n", main_a);
	free(main_a);
	itest_inst_up(&e, &a);
	itest_inst_up(&e, &b);
	/* da's fires come with a reload once both run (starts on a loaded machine took longer
	 * than the seconds to a fire written before them) */
	for (int ahead = 3; ahead;) {
		char s[32];
		time_t at = itest_schedule_soon_at(s, sizeof(s), ahead);
		queued_jobs((int)(at % 60), ja, sizeof(ja));
		itest_inst_reload(&a, ja);
		ahead = itest_soon_again(a.log, at, ahead);
	}
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'busy' AND status = 'running'"),
	              "busy did not start:\n%s", itest_read_file(a.log));
	/* down waits on da for the slot busy holds */
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.job_run_details"
	                    " WHERE job_name = 'down'",
	                    "0");
	itest_env_wait(&e, 5,
	               "SELECT count(*) = 1 FROM pgcrond.pending_work"
	               " WHERE instance = 'da' AND job_name = 'down'");
	itest_inst_stop(&a, SIGKILL);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'down' AND instance = 'db'"
	                             " AND status = 'succeeded'"),
	              "the queued downstream did not run on the survivor:\n%s",
	              itest_read_file(b.log));
	itest_inst_stop(&b, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* LOG (a path) has the cluster's "history database ... is reachable again". */
static bool cluster_back(void *log)
{
	char *text = itest_read_file(log);
	bool back = false;
	for (char *l = strstr(text, "cluster: history database "); l && !back;
	     l = strstr(l + 1, "cluster: history database ")) {
		char *end = strchr(l, '\n');
		if (end)
			*end = '\0';
		back = strstr(l, " is reachable again") != NULL;
		if (end)
			*end = '\n';
	}
	free(text);
	return back;
}

/* A pause made while the history database is down acts on its instance at once (the
 * state_dir copy) and reaches the other instances when the database is back. */
START_TEST(pause_while_database_down_reaches_others_later)
{
	struct itest_env e;
	struct itest_inst a, b;
	itest_env_init(&e, "ho-down", DB);
	char *hist_ci = itest_sandbox2_start(e.dir);
	const char *jobs = "job = { name = \"j\"; command = \"SELECT 1\"; database = \"app\";"
	                   " schedule = \"0 0 1 1 *\"; };\n";
	itest_inst_init(&a, &e, "wa", jobs);
	itest_inst_init(&b, &e, "wb", jobs);
	/* the history (and coordination) on the second server */
	struct itest_inst *both[] = {&a, &b};
	for (int i = 0; i < 2; i++) {
		char *m = itest_read_file(both[i]->conf);
		char *dbs = strstr(m, "databases = {");
		ck_assert(dbs);
		*dbs = '\0';
		itest_write_file(both[i]->conf,
		                 "%sdatabases = { app = { conninfo = \"%s\"; };"
		                 " hist = { conninfo = \"%s\"; }; };\n"
		                 "history = { database = \"hist\"; };\n",
		                 m, e.ci, hist_ci);
		free(m);
	}
	int st;
	char *out = itest_cli(&st, "install", "-c", a.conf, NULL);
	ck_assert_msg(st == 0, "install: %s", out);
	free(out);
	PQfinish(e.db);
	e.db = itest_connect(hist_ci); /* itest_env_wait asks the history database */
	itest_inst_up(&e, &a);
	itest_inst_up(&e, &b);
	PQfinish(e.db);
	e.db = NULL;

	itest_sandbox2("pause");
	out = itest_cli(&st, "pause", "-c", a.conf, "j", NULL);
	ck_assert_msg(st == 0, "pause: %s", out);
	free(out);
	out = itest_cli(&st, "status", "-c", a.conf, "j", NULL);
	ck_assert_msg(strstr(out, "paused:       yes"), "not paused on wa:\n%s", out);
	free(out);
	out = itest_cli(&st, "status", "-c", b.conf, "j", NULL);
	ck_assert_msg(strstr(out, "paused:       no"), "wb cannot know yet:\n%s", out);
	free(out);

	/* wa is slow to come back (stopped): wb reconnects first and finds wa's lock gone
	 * with the server's restart; wa is not dead for that */
	kill(a.pid, SIGSTOP);
	itest_sandbox2("resume");
	ck_assert_msg(itest_wait_until(cluster_back, b.log, 30), "wb did not reconnect:\n%s",
	              itest_read_file(b.log));
	kill(a.pid, SIGCONT);
	double t0 = itest_now();
	for (;;) {
		out = itest_cli(&st, "status", "-c", b.conf, "j", NULL);
		if (strstr(out, "paused:       yes") || itest_now() - t0 > 25)
			break;
		free(out);
		itest_sleep(0.3);
	}
	ck_assert_msg(strstr(out, "paused:       yes"),
	              "wb did not follow once the database was back:\n%s\n%s", out,
	              itest_read_file(b.log));
	free(out);
	/* wb did not take wa for dead (it would have taken over its work) */
	itest_sleep(CLUSTER_WAIT_S);
	char *logs[] = {itest_read_file(a.log), itest_read_file(b.log)};
	for (int i = 0; i < 2; i++) {
		ck_assert_msg(!strstr(logs[i], " died (last seen"),
		              "a live instance found dead:\n%s", logs[i]);
		free(logs[i]);
	}
	e.db = itest_connect(hist_ci);
	itest_assert_scalar(e.db,
	                    "SELECT string_agg(job_name || '/' || paused_by, ',')"
	                    " FROM pgcrond.job_pause",
	                    "j/wa");
	itest_inst_stop(&a, SIGTERM);
	itest_inst_stop(&b, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	free(hist_ci);
	itest_env_teardown(&e);
}
END_TEST

/* A clean stop (SIGTERM) hands the retry it had scheduled to the other instance. */
START_TEST(clean_stop_hands_retry_over)
{
	struct itest_env e;
	struct itest_inst a, b;
	handover_db(&e, "ho-stop");
	struct itest_inst *stopped, *other;
	flaky_on_two(&e, &a, &b, "sa", "sb", "60s", &stopped, &other);
	ck_assert_int_eq(itest_inst_stop(stopped, SIGTERM), 0);
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'flaky' AND attempt = 2"
	                             " AND trigger = 'retry' AND instance = '%s'"
	                             " AND status <> 'skipped'",
	                             other->name),
	              "the other instance did not run the retry:\n%s\n%s",
	              itest_read_file(stopped->log), itest_read_file(other->log));
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.job_run_details WHERE status = 'skipped'"
	                    " AND return_message LIKE 'pgcrond was shutting down; handed over%'",
	                    "1");
	itest_inst_stop(other, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* Instances NA (jobs JA) and NB (jobs JB) on database TAG, up, and each has seen the other
 * live at a heartbeat: their claims and marks are those of instances that coordinate (a
 * test's triggers on the claims wait for this). */
static void pair_up(struct itest_env *e, struct itest_inst *a, struct itest_inst *b,
                    const char *tag, const char *na, const char *nb, const char *ja, const char *jb)
{
	handover_db(e, tag);
	itest_inst_init(a, e, na, ja);
	itest_inst_init(b, e, nb, jb);
	itest_inst_up(e, a);
	itest_inst_up(e, b);
	ck_assert_msg(itest_wait_log(a->log, "other live instances", 15) &&
	                  itest_wait_log(b->log, "other live instances", 15),
	              "the instances never saw each other:\n%s\n%s", itest_tail(a->log),
	              itest_tail(b->log));
}

/* A trigger on pgcrond.fire_claim (FOR EACH LEVEL: "ROW" or "STATEMENT") that holds an
 * instance's claim before its insert while the CASE on the instance's name ME (WHENS, the
 * CASE's WHEN clauses) is true, 20 s at most; the test lets claims go with rows in public.go. */
static void hold_claims(struct itest_env *e, const char *level, const char *whens)
{
	itest_exec(e->db, "CREATE TABLE public.go (x int); GRANT ALL ON public.go TO PUBLIC");
	char sql[2048];
	snprintf(sql, sizeof(sql),
	         "CREATE FUNCTION public.held_claim() RETURNS trigger LANGUAGE plpgsql"
	         " AS $$ DECLARE me text := (SELECT name FROM pgcrond.instance"
	         "  WHERE backend_pid = pg_backend_pid()); t0 timestamptz := clock_timestamp();"
	         " BEGIN WHILE clock_timestamp() < t0 + interval '20 s' AND CASE me %s"
	         "  ELSE false END"
	         " LOOP PERFORM pg_sleep(0.02); END LOOP; RETURN %s; END $$;"
	         "CREATE TRIGGER held_claim BEFORE INSERT ON pgcrond.fire_claim"
	         " FOR EACH %s EXECUTE FUNCTION public.held_claim()",
	         whens, strcmp(level, "ROW") == 0 ? "NEW" : "NULL", level);
	itest_exec(e->db, sql);
}

/* A notification's turn that the other instance took while this one was stopping: the other
 * runs it, and the stopping one writes no row for it (the claim's answer, coming while the
 * stop drains, must not write "skipped: pgcrond was shutting down" beside the other's
 * run). A trigger holds both claims before their inserts: tb's until the test lets it go,
 * after the stop began; ta's until tb's claim is in. So the stop lands while ta's claim is
 * on its way, and its answer, once the stop drains, is that tb took the turn. */
START_TEST(stop_writes_no_row_for_a_turn_the_other_took)
{
	struct itest_env e;
	struct itest_inst a, b;
	static const char job[] =
	    "job = { name = \"l\"; command = \"SELECT 1\"; database = \"app\";"
	    " listen = \"ch_turn\"; };\n";
	pair_up(&e, &a, &b, "ho-turn", "ta", "tb", job, job);
	ck_assert_msg(itest_log_listening(a.log, "ch_turn", 15) &&
	                  itest_log_listening(b.log, "ch_turn", 15),
	              "not every instance listens");
	hold_claims(&e, "STATEMENT",
	            "WHEN 'tb' THEN NOT EXISTS (SELECT FROM public.go)"
	            " WHEN 'ta' THEN NOT EXISTS (SELECT FROM pgcrond.fire_claim"
	            "  WHERE instance = 'tb' AND job_name = 'l')");
	itest_exec(e.db, "NOTIFY ch_turn, 'one'");
	/* both claims wait in the trigger (a busy machine's claim of a turn can take seconds) */
	ck_assert_msg(
	    itest_env_wait(&e, 15,
	                   "SELECT count(*) = 2 FROM pg_stat_activity a"
	                   " JOIN pgcrond.instance i ON i.backend_pid = a.pid"
	                   " WHERE i.name IN ('ta', 'tb') AND a.query LIKE '%%fire_claim%%'"
	                   " AND a.state = 'active'"),
	    "the instances never claimed the turn:\n%s\n%s", itest_tail(a.log), itest_tail(b.log));
	ck_assert_int_eq(kill(a.pid, SIGTERM), 0);
	ck_assert_msg(itest_wait_log(a.log, "shutting down", 5), "ta did not stop:\n%s",
	              itest_tail(a.log));
	itest_exec(e.db, "INSERT INTO public.go VALUES (1)");
	ck_assert_int_eq(itest_inst_stop(&a, 0), 0);
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'l' AND instance = 'tb'"
	                             " AND status = 'succeeded'"),
	              "tb did not run the notification:\n%s", itest_tail(b.log));
	char *rows = itest_scalar(e.db, "SELECT string_agg(format('%s %s: %s', instance, status,"
	                                " return_message), '; ') FROM pgcrond.job_run_details"
	                                " WHERE job_name = 'l' AND instance = 'ta'");
	ck_assert_msg(!rows, "ta's rows of a turn tb took: %s\n%s", rows, itest_tail(a.log));
	itest_inst_stop(&b, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* A fire an instance claimed whose claim's answer came once its stop had begun, with another
 * instance live: it gets no row of the stopping instance's, and the other one runs it once
 * the stopped row is written (a `skipped: pgcrond was shutting down` row written before the
 * stopped row would make the other leave it alone: recorded once, never run; written after,
 * the other would run the fire beside it).
 * Triggers hold qa's claims of fires nobody claimed yet until the test lets them go, after
 * the stop began, qb's until qa's claim of the same fire is in, and a "shutting down" row of
 * qa's 0.5 s (a row it still wrote would come late). A fire qa did not claim gets no row of
 * qa's (its run waiting behind the held one is left to qb, with no "shutting down" row
 * beside qb's run). */
START_TEST(stop_writes_its_rows_before_it_says_stopped)
{
	struct itest_env e;
	struct itest_inst a, b;
	static const char job[] =
	    "job = { name = \"g\"; command = \"SELECT 1\"; database = \"app\";"
	    " schedule = \"* * * * * *\"; };\n";
	pair_up(&e, &a, &b, "ho-rows", "qa", "qb", job, job);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(DISTINCT instance) = 2 FROM pgcrond.fire_claim"
	                             " WHERE instance IN ('qa', 'qb')"),
	              "not both instances claim:\n%s\n%s", itest_tail(a.log), itest_tail(b.log));
	hold_claims(&e, "ROW",
	            "WHEN 'qa' THEN NOT EXISTS (SELECT FROM public.go)"
	            "  AND NOT EXISTS (SELECT FROM pgcrond.fire_claim c"
	            "   WHERE c.job_name = NEW.job_name AND c.fire_key = NEW.fire_key)"
	            " WHEN 'qb' THEN NOT EXISTS (SELECT FROM public.go WHERE x = 2)"
	            "  AND NOT EXISTS (SELECT FROM pgcrond.fire_claim c WHERE c.instance = 'qa'"
	            "   AND c.job_name = NEW.job_name AND c.fire_key = NEW.fire_key)");
	itest_exec(e.db, "CREATE FUNCTION public.slow_row() RETURNS trigger LANGUAGE plpgsql"
	                 " AS $$ BEGIN IF NEW.instance = 'qa' AND NEW.return_message LIKE"
	                 "  'pgcrond was shutting down%' THEN PERFORM pg_sleep(0.5); END IF;"
	                 " RETURN NEW; END $$;"
	                 "CREATE TRIGGER slow_row BEFORE INSERT ON pgcrond.job_run_details"
	                 " FOR EACH ROW EXECUTE FUNCTION public.slow_row()");
	/* qa's claim is held; once an instant has passed, a run of qa's waits for it */
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT EXISTS (SELECT FROM pg_stat_activity a"
	                             " JOIN pgcrond.instance i ON i.backend_pid = a.pid"
	                             " WHERE i.name = 'qa' AND a.query LIKE '%%fire_claim%%'"
	                             " AND a.state = 'active')"),
	              "qa never claimed:\n%s", itest_tail(a.log));
	itest_sleep(1.2);
	ck_assert_int_eq(kill(a.pid, SIGTERM), 0);
	ck_assert_msg(itest_wait_log(a.log, "shutting down", 5), "qa did not stop:\n%s",
	              itest_tail(a.log));
	itest_sleep(0.2);
	itest_exec(e.db, "INSERT INTO public.go VALUES (1)");
	ck_assert_int_eq(itest_inst_stop(&a, 0), 0);
	itest_exec(e.db, "INSERT INTO public.go VALUES (2)");
	itest_sleep(3); /* qb has served what it would serve */
	long long skipped = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                        " WHERE instance = 'qa' AND return_message LIKE"
	                                        " 'pgcrond was shutting down%%'");
	char *twice = itest_fires_twice(e.db, "g", NULL);
	ck_assert_msg(!twice, "fires with two rows: %.1500s", twice);
	ck_assert_msg(skipped == 0, "qa wrote %lld 'shutting down' row(s):\n%s", skipped,
	              itest_tail(a.log));
	/* the fire qa claimed as it stopped, served by qb: run, or skipped by its overlap policy
	 * when qb's run of the next fire had begun (qb runs the fires its claims held back
	 * once they go, at the moment it serves qa's) */
	char *log = itest_read_file(a.log);
	const char *left = strstr(log, "g: this instance is stopping: the fire at ");
	ck_assert_msg(left != NULL, "qa's claim was not answered while it stopped:\n%s", log);
	char at[32] = "";
	sscanf(left + strlen("g: this instance is stopping: the fire at "), "%31s", at);
	free(log);
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'g' AND instance = 'qb'"
	                             " AND (status = 'succeeded' OR (status = 'skipped'"
	                             "  AND return_message LIKE 'previous run still running%%'))"
	                             " AND scheduled_time = '%s'",
	                             at),
	              "qb did not serve the fire at %s that qa left:\n%s", at, itest_tail(b.log));
	itest_inst_stop(&b, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* Jobs p, q, s (and r if WITH_R) of instance NAME, each inserting its name and NAME into ran,
 * on a schedule that does not come round during the test. */
static void defs_jobs(char *out, size_t len, const char *name, bool with_r)
{
	static const char *const names[] = {"p", "q", "r", "s"};
	size_t n = 0;
	n += (size_t)snprintf(out + n, len - n, "jobs = (");
	for (size_t i = 0; i < 4; i++) {
		if (names[i][0] == 'r' && !with_r)
			continue;
		n += (size_t)snprintf(
		    out + n, len - n,
		    "%s{ name = \"%s\"; command = \"INSERT INTO ran VALUES"
		    " ('%s', '%s')\"; database = \"app\"; schedule = \"0 0 1 1 *\"; }",
		    n > 8 ? ", " : "", names[i], names[i], name);
	}
	snprintf(out + n, len - n, ");\n");
}

/* A dead instance's claims go to an instance that defines the job as it did (a rolling
 * configuration change): da and db define p, q and s each their own way, and only da defines
 * r. The dead zz defined p and r as da does, q as db does, and s as no one does. Whichever of
 * the two reaps zz, p and r run on da, q on db, and s once on either (the reaper neither
 * serves every claim with its own definitions nor drops those it does not define). */
START_TEST(dead_instance_claims_go_to_the_same_definition)
{
	struct itest_env e;
	struct itest_inst a, b;
	char ja[2048], jb[2048];
	defs_jobs(ja, sizeof(ja), "da", true);
	defs_jobs(jb, sizeof(jb), "db", false);
	pair_up(&e, &a, &b, "ho-defs", "da", "db", ja, jb);
	itest_exec(e.db, "CREATE TABLE ran (job text, def text); GRANT ALL ON ran TO PUBLIC");
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 7 FROM pgcrond.instance_job"
	                             " WHERE instance IN ('da', 'db')"),
	              "the instances did not publish their jobs:\n%s\n%s", itest_tail(a.log),
	              itest_tail(b.log));
	/* zz, dead an hour ago, with its jobs' hashes and a claim of each job 10 s ago */
	itest_exec(e.db,
	           "INSERT INTO pgcrond.instance (name, boot_id, last_seen)"
	           " VALUES ('zz', 'zzboot', now() - '1 hour'::interval);"
	           "INSERT INTO pgcrond.instance_job (instance, job_name, def_hash)"
	           " SELECT 'zz', job_name, def_hash FROM pgcrond.instance_job"
	           "  WHERE (instance, job_name) IN (('da', 'p'), ('db', 'q'), ('da', 'r'))"
	           " UNION ALL SELECT 'zz', 's', 'ffffffffffffffff';"
	           "INSERT INTO pgcrond.fire_claim (job_name, fire_key, instance, boot_id)"
	           " SELECT j, 's:' || (extract(epoch FROM now())::bigint - 10), 'zz', 'zzboot'"
	           " FROM unnest(ARRAY['p', 'q', 'r', 's']) j");
	ck_assert_msg(itest_env_wait(&e, 20, "SELECT count(*) = 4 FROM ran"),
	              "not every fire zz claimed was served:\n%s\n%s", itest_tail(a.log),
	              itest_tail(b.log));
	itest_sleep(1); /* nothing more comes */
	itest_assert_scalar(e.db,
	                    "SELECT string_agg(job || '=' || def, ',' ORDER BY job) FROM ran"
	                    " WHERE job <> 's'",
	                    "p=da,q=db,r=da");
	itest_assert_scalar(e.db, "SELECT count(*) FROM ran WHERE job = 's'", "1");
	itest_assert_scalar(
	    e.db,
	    "SELECT string_agg(job_name || '=' || instance || ' ' || status, ','"
	    "  ORDER BY job_name) FROM pgcrond.job_run_details WHERE job_name <> 's'",
	    "p=da succeeded,q=db succeeded,r=da succeeded");
	itest_assert_scalar(
	    e.db, "SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 's'", "1");
	itest_inst_stop(&a, SIGTERM);
	itest_inst_stop(&b, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

/* Table ran for the jobs, and a trigger that holds every taking (DELETE) of zz's claims until
 * a row is in public.go (at most 20 s). */
static void held_takings(struct itest_env *e)
{
	itest_exec(e->db, "CREATE TABLE ran (job text); GRANT ALL ON ran TO PUBLIC;"
	                  "CREATE TABLE public.go (x int); GRANT ALL ON public.go TO PUBLIC;"
	                  "CREATE FUNCTION public.held_take() RETURNS trigger LANGUAGE plpgsql"
	                  " AS $$ DECLARE t0 timestamptz := clock_timestamp(); BEGIN"
	                  " WHILE OLD.instance = 'zz' AND NOT EXISTS (SELECT FROM public.go)"
	                  "  AND clock_timestamp() < t0 + interval '20 s'"
	                  " LOOP PERFORM pg_sleep(0.02); END LOOP; RETURN OLD; END $$;"
	                  "CREATE TRIGGER held_take BEFORE DELETE ON pgcrond.fire_claim"
	                  " FOR EACH ROW EXECUTE FUNCTION public.held_take()");
}

/* Claims taken over by an instance that is stopping go back to their holder: the stopping
 * one runs nothing more. zz has a claim of k 10 s ago and is either live but silent (SILENT:
 * 15 s without a heartbeat, found dead only after 10 minutes: ga takes the claim by its
 * lease) or stopped (ga takes the claim when a `stopped` notification wakes it). A trigger
 * holds ga's taking of the claim (its DELETE) until ga's stop has begun. A silent holder
 * runs the fire when it is back, or it is served once the holder is found dead; a stopped
 * one's is served by the others, whom the stop's NOTIFY wakes. */
static void stop_gives_claims_back(bool silent)
{
	struct itest_env e;
	struct itest_inst a;
	handover_db(&e, silent ? "ho-leaseback" : "ho-stopback");
	held_takings(&e);
	itest_inst_init(&a, &e, "ga",
	                "job = { name = \"k\"; command = \"INSERT INTO ran VALUES ('k')\";"
	                " database = \"app\"; schedule = \"0 0 1 1 *\"; };\n");
	itest_inst_up(&e, &a);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 1 FROM pgcrond.instance_job"
	                             " WHERE instance = 'ga'"),
	              "ga did not publish its job:\n%s", itest_tail(a.log));
	itest_exec(e.db, silent ? "INSERT INTO pgcrond.instance (name, boot_id, last_seen,"
	                          "  dead_after_ms)"
	                          " VALUES ('zz', 'zzboot', now() - '15 s'::interval, 600000)"
	                        : "INSERT INTO pgcrond.instance (name, boot_id, last_seen,"
	                          "  stopped_at, stop_note)"
	                          " VALUES ('zz', 'zzboot', now() - '5 s'::interval,"
	                          "  now() - '5 s'::interval, 'stopped')");
	itest_exec(e.db, "INSERT INTO pgcrond.instance_job (instance, job_name, def_hash)"
	                 " SELECT 'zz', job_name, def_hash FROM pgcrond.instance_job"
	                 "  WHERE instance = 'ga';"
	                 "INSERT INTO pgcrond.fire_claim (job_name, fire_key, instance, boot_id)"
	                 " VALUES ('k', 's:' || (extract(epoch FROM now())::bigint - 10), 'zz',"
	                 "  'zzboot')");
	if (!silent)
		itest_exec(e.db, "NOTIFY pgcrond_cluster, 'stopped'");
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT EXISTS (SELECT FROM pg_stat_activity a"
	                             " JOIN pgcrond.instance i ON i.backend_pid = a.pid"
	                             " WHERE i.name = 'ga' AND a.wait_event = 'PgSleep')"),
	              "ga never took zz's claim:\n%s", itest_tail(a.log));
	ck_assert_int_eq(kill(a.pid, SIGTERM), 0);
	ck_assert_msg(itest_wait_log(a.log, "shutting down", 5), "ga did not stop:\n%s",
	              itest_tail(a.log));
	itest_exec(e.db, "INSERT INTO public.go VALUES (1)");
	ck_assert_int_eq(itest_inst_stop(&a, 0), 0);
	itest_assert_scalar(e.db,
	                    "SELECT string_agg(instance || ' ' || boot_id || ' ' || started, ',')"
	                    " FROM pgcrond.fire_claim WHERE job_name = 'k'",
	                    "zz zzboot false");
	itest_assert_scalar(e.db,
	                    "SELECT (SELECT count(*) FROM ran) + (SELECT count(*)"
	                    " FROM pgcrond.job_run_details WHERE job_name = 'k')",
	                    "0");
	ck_assert_msg(itest_wait_log(a.log, "go back to their holders", 0), "log:\n%s",
	              itest_tail(a.log));
	itest_inst_free(&a);
	itest_env_teardown(&e);
}

START_TEST(stop_gives_a_silent_holders_claims_back)
{
	stop_gives_claims_back(true);
}
END_TEST

/* (the stopping instance neither deletes the claim nor drops the fire) */
START_TEST(stop_gives_a_stopped_holders_claims_back)
{
	stop_gives_claims_back(false);
}
END_TEST

/* A reap whose answer comes once the reaper began to stop hands what it took over to the
 * others. zz, dead an hour ago, left a claim of k 10 s ago that it never ran, a running run
 * of r (one retry) and a pending retry of p. ga's reap of zz is held by a trigger on its
 * taking of the claim until ga's stop has begun, and ga's run of slow keeps it draining when
 * the answer comes; gb, started meanwhile, waits behind it for zz's row. Woken by ga's stop,
 * gb serves k once and runs r's and p's retries once each (ga's draining scheduler drops
 * none of the three). On a slow machine ga's start-up pass over stopped instances
 * queues behind the held reap and takes p's row once zz reads as stopped, after ga's stop
 * began: that row goes back to zz too (coord.c: take_done), or p would be lost. */
START_TEST(stop_hands_a_reaps_takings_over)
{
	struct itest_env e;
	struct itest_inst a, b;
#define REAPBACK_JOB(name, more)                                                                   \
	"{ name = \"" name "\"; command = \"INSERT INTO ran VALUES ('" name "')\";"                \
	" database = \"app\"; schedule = \"0 0 1 1 *\";" more " }"
#define REAPBACK_JOBS                                                                              \
	REAPBACK_JOB("k", "")                                                                      \
	", " REAPBACK_JOB("p", "") ", " REAPBACK_JOB(                                              \
	    "r", " retries = 1; retry_on = \"any\"; retry_delay = \"1s\";")
	static const char ja[] =
	    "jobs = (" REAPBACK_JOBS ", { name = \"slow\"; database = \"app\";"
	    " schedule = \"0 0 1 1 *\"; command = \"DO $$BEGIN WHILE NOT EXISTS"
	    " (SELECT FROM public.go2) LOOP PERFORM pg_sleep(0.02); END LOOP; END$$\"; });\n";
	static const char jb[] = "jobs = (" REAPBACK_JOBS ");\n";
	handover_db(&e, "ho-reapback");
	held_takings(&e);
	itest_exec(e.db, "CREATE TABLE public.go2 (x int); GRANT ALL ON public.go2 TO PUBLIC");
	itest_inst_init(&a, &e, "ga", ja);
	itest_inst_init(&b, &e, "gb", jb);
	itest_inst_up(&e, &a);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 4 FROM pgcrond.instance_job"
	                             " WHERE instance = 'ga'"),
	              "ga did not publish its jobs:\n%s", itest_tail(a.log));
	int st = 0;
	char *out = itest_cli(&st, "trigger", "-c", a.conf, "slow", NULL);
	ck_assert_msg(st == 0, "trigger: %d %s", st, out);
	free(out);
	ck_assert_msg(
	    itest_env_wait(&e, 15,
	                   "SELECT EXISTS (SELECT FROM pg_stat_activity"
	                   " WHERE application_name = 'pgcrond: slow' AND state = 'active')"),
	    "slow did not start:\n%s", itest_tail(a.log));
	itest_exec(
	    e.db, "INSERT INTO pgcrond.instance (name, boot_id, last_seen)"
	          " VALUES ('zz', 'zzboot', now() - '1 hour'::interval);"
	          "INSERT INTO pgcrond.instance_job (instance, job_name, def_hash)"
	          " SELECT 'zz', job_name, def_hash FROM pgcrond.instance_job"
	          "  WHERE instance = 'ga' AND job_name <> 'slow';"
	          "INSERT INTO pgcrond.fire_claim (job_name, fire_key, instance, boot_id)"
	          " VALUES ('k', 's:' || (extract(epoch FROM now())::bigint - 10), 'zz', 'zzboot');"
	          "INSERT INTO pgcrond.job_run_details (job_name, status, start_time, instance,"
	          "  run_key, boot_id, trigger, scheduled_time, attempt)"
	          " VALUES ('r', 'running', now() - '10 s'::interval, 'zz', 'zz.1', 'zzboot',"
	          "  'schedule', date_trunc('second', now()) - '10 s'::interval, 1);"
	          "INSERT INTO pgcrond.pending_work (instance, boot_id, job_name, kind, attempt)"
	          " VALUES ('zz', 'zzboot', 'p', 'retry', 2)");
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT EXISTS (SELECT FROM pg_stat_activity a"
	                             " JOIN pgcrond.instance i ON i.backend_pid = a.pid"
	                             " WHERE i.name = 'ga' AND a.wait_event = 'PgSleep')"),
	              "ga never reaped zz:\n%s", itest_tail(a.log));
	itest_inst_up(&e, &b);
	ck_assert_int_eq(kill(a.pid, SIGTERM), 0);
	ck_assert_msg(itest_wait_log(a.log, "shutting down", 5), "ga did not stop:\n%s",
	              itest_tail(a.log));
	itest_exec(e.db, "INSERT INTO public.go VALUES (1)");
	/* the answer comes while ga drains (slow runs) */
	ck_assert_msg(itest_wait_log(a.log, "is left to the other instances", 10), "log:\n%s",
	              itest_tail(a.log));
	ck_assert_msg(!itest_wait_log(a.log, "pgcrond stopped", 0), "ga did not drain:\n%s",
	              itest_tail(a.log));
	itest_exec(e.db, "INSERT INTO public.go2 VALUES (1)");
	ck_assert_int_eq(itest_inst_stop(&a, 0), 0);
	ck_assert_msg(itest_wait_log(a.log, "go back to their holders", 0), "log:\n%s",
	              itest_tail(a.log));
	ck_assert_msg(itest_env_wait(&e, 20, "SELECT count(*) = 3 FROM ran"),
	              "what ga took from zz was not served by gb:\n%s\n%s", itest_tail(a.log),
	              itest_tail(b.log));
	itest_sleep(1); /* nothing more comes */
	itest_assert_scalar(e.db, "SELECT string_agg(job, ',' ORDER BY job) FROM ran", "k,p,r");
	itest_assert_scalar(e.db,
	                    "SELECT string_agg(job_name || ' ' || instance || ' ' || attempt || ' '"
	                    "  || status, ',' ORDER BY job_name, attempt)"
	                    " FROM pgcrond.job_run_details WHERE job_name <> 'slow'",
	                    "k gb 1 succeeded,p gb 2 succeeded,r zz 1 failed,r gb 2 succeeded");
	itest_assert_scalar(e.db, "SELECT count(*) FROM pgcrond.pending_work", "0");
	itest_inst_stop(&b, SIGTERM);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
#undef REAPBACK_JOBS
#undef REAPBACK_JOB
}
END_TEST

int main(void)
{
	Suite *s = suite_create("handover");
	struct {
		const char *name;
		const TTest *test;
	} cases[] = {
	    {"queue", queue_waits_for_the_other_instance},
	    {"replace", replace_cancels_the_other_instance_run},
	    {"retry", dead_instance_retry_runs_on_survivor},
	    {"pause", pause_is_shared_and_owed_downstream_is_taken_over},
	    {"notify", dead_instance_notifications_run_on_survivor},
	    {"queued", dead_instance_queued_downstream_runs_on_survivor},
	    {"down", pause_while_database_down_reaches_others_later},
	    {"stop", clean_stop_hands_retry_over},
	    {"turn", stop_writes_no_row_for_a_turn_the_other_took},
	    {"rows", stop_writes_its_rows_before_it_says_stopped},
	    {"defs", dead_instance_claims_go_to_the_same_definition},
	    {"leaseback", stop_gives_a_silent_holders_claims_back},
	    {"stopback", stop_gives_a_stopped_holders_claims_back},
	    {"reapback", stop_hands_a_reaps_takings_over},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_set_timeout(tc, 120);
		tcase_add_test(tc, cases[i].test);
		itest_add_tcase(s, tc);
	}
	SRunner *sr = srunner_create(s);
	int failed = itest_run_share(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
