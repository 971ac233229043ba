/* Run history against a real PostgreSQL: the schema and "pgcrond install", the rows the
 * history module writes, orphans of a dead process, the spill file while the database is
 * unreachable, reconnecting after a lost connection, and the
 * history and trigger commands. */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "history.h"
#include "hist_install.h"
#include "hist_spool.h"
#include "itest.h"

#define INSTANCE "it-host"

/* ---- helpers ------------------------------------------------------------------------ */

static int notices;
static void count_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
	notices++;
}

/* The schema, as "pgcrond install" applies it, without a config file. */
static void install_schema(const char *ci)
{
	PGconn *c = itest_connect(ci);
	char err[1024];
	int from, to;
	ck_assert_msg(hist_install_begin(c, hist_sql_dir(), &from, &to, err, sizeof(err)) == 0,
	              "install: %s", err);
	itest_exec(c, "COMMIT");
	PQfinish(c);
}

static struct event_base *base;

static bool drive_until(bool (*cond)(void *), void *arg, double timeout_s)
{
	double end = itest_now() + timeout_s;
	while (!cond(arg)) {
		if (itest_now() > end)
			return false;
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		itest_sleep(0.002);
	}
	return true;
}

static void drive_for(double seconds)
{
	double end = itest_now() + seconds;
	while (itest_now() < end) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		itest_sleep(0.002);
	}
}

static bool all_written(void *arg)
{
	struct hist_stats st;
	hist_get_stats(arg, &st);
	return st.connected && st.pending == 0;
}

static bool orphans_handled(void *arg)
{
	struct hist_stats st;
	hist_get_stats(arg, &st);
	return st.connected && st.orphans_closed > 0;
}

static struct hist *open_hist(const char *ci, const char *state_dir, int64_t retain_ms)
{
	struct hist *h = NULL;
	ck_assert_int_eq(hist_open(base, ci, state_dir, INSTANCE, retain_ms, &h), 0);
	/* quick reconnects keep the tests short */
	struct hist_tuning t = {.retry_min_ms = 50, .retry_max_ms = 200};
	hist_tune(h, &t);
	return h;
}

/* open_hist on CI with its state in a new temporary directory (*DIR, tag TAG). */
static struct hist *open_hist_tmp(const char *ci, const char *tag, char **dir)
{
	char state[1024];
	*dir = itest_tmpdir(tag);
	snprintf(state, sizeof(state), "%s/state", *dir);
	return open_hist(ci, state, 0);
}

/* A new process writes the PENDING records left in STATE's spill file within TIMEOUT_S:
 * WRITTEN of them, the rest dropped. Returns its history. */
static struct hist *write_left(const char *ci, const char *state, int pending, int written,
                               double timeout_s)
{
	struct hist *h = open_hist(ci, state, 0);
	ck_assert_int_eq(hist_pending(h), pending);
	ck_assert(drive_until(all_written, h, timeout_s));
	struct hist_stats st;
	hist_get_stats(h, &st);
	ck_assert_int_eq(st.written, written);
	ck_assert_int_eq(st.dropped, pending - written);
	return h;
}

/* 2029-01-01T00:00:00Z: a recognisable instant */
#define T0_US 1861920000000000LL

static void assert_scalar(PGconn *c, const char *sql, const char *want)
{
	char *v = itest_scalar(c, sql);
	ck_assert_msg(v && strcmp(v, want) == 0, "%s: got \"%s\", want \"%s\"", sql, v ? v : "NULL",
	              want);
	free(v);
}

static struct hist_run sample_run(const char *job)
{
	struct hist_run r = {
	    .job_name = job,
	    .database = "analytics",
	    .username = "reporter",
	    .command = "SELECT 1",
	    .trigger = "schedule",
	    .graph_run = NULL,
	    .scheduled_us = T0_US,
	    .start_us = T0_US + 1500,
	    .attempt = 2,
	};
	return r;
}

/* "host=... port=N ..." with the port replaced by one where nothing listens. */
static char *dead_conninfo(const char *db)
{
	char *ci = itest_conninfo_db(db);
	char *p = strstr(ci, "port=");
	ck_assert(p != NULL);
	char *end = p + 5;
	while (*end >= '0' && *end <= '9')
		end++;
	size_t n = strlen(ci) + 8;
	char *out = malloc(n);
	snprintf(out, n, "%.*sport=1%s", (int)(p - ci), ci, end);
	free(ci);
	return out;
}

static char *spool_path(const char *dir)
{
	size_t n = strlen(dir) + 64;
	char *p = malloc(n);
	snprintf(p, n, "%s/state/%s", dir, HIST_SPOOL_FILE);
	return p;
}

static int count_lines(const char *path)
{
	char *text = itest_read_file(path);
	int n = 0;
	for (char *p = text; *p; p++)
		n += *p == '\n';
	free(text);
	return n;
}

/* The spill file holds N lines (its writes run on the writer thread: the loop delivers
 * their outcome). */
struct lines_want {
	const char *path;
	int n;
};

static bool spool_has(void *arg)
{
	const struct lines_want *w = arg;
	return count_lines(w->path) == w->n;
}

static void setup(void)
{
	base = event_base_new();
	ck_assert(base != NULL);
}

static void teardown(void)
{
	event_base_free(base);
	base = NULL;
}

/* ---- pgcrond install -------------------------------------------------------------- */

static char *write_config(const char *dir, const char *ci, bool with_b)
{
	char path[1024], confd[1024];
	snprintf(confd, sizeof(confd), "%s/conf.d", dir);
	mkdir(confd, 0755);
	snprintf(path, sizeof(path), "%s/conf.d/10-jobs.conf", dir);
	itest_write_file(
	    path,
	    "jobs = (\n"
	    "  { name = \"job-a\"; command = \"SELECT 1\"; schedule = \"*/5 * * * *\";\n"
	    "    max_staleness = \"10m\"; }%s\n"
	    ");\n",
	    with_b ? ",\n  { name = \"job-b\"; command = \"SELECT 2\"; after = [ \"job-a\" ]; }"
	           : "");
	snprintf(path, sizeof(path), "%s/pgcrond.conf", dir);
	itest_write_file(path,
	                 "timezone = \"UTC\";\n"
	                 "conf_dir = \"%s/conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = { analytics = { conninfo = \"%s\"; }; };\n"
	                 "history = { database = \"analytics\"; retain = \"30d\"; };\n",
	                 dir, dir, ci);
	return strdup(path);
}

START_TEST(install_is_idempotent)
{
	char *ci = itest_fresh_db("it_hist_install");
	char *dir = itest_tmpdir("hist-install");
	char *conf = write_config(dir, ci, true);
	int status;

	char *out = itest_cli(&status, "install", "-c", conf, NULL);
	ck_assert_msg(status == 0, "install: %s", out);
	ck_assert_msg(strstr(out, "created (version ") && strstr(out, "2 added"), "%s", out);
	free(out);

	PGconn *c = itest_connect(ci);
	char *before =
	    itest_scalar(c, "SELECT string_agg(xmin::text || jobname, ',' ORDER BY jobid)"
	                    " FROM pgcrond.job");
	out = itest_cli(&status, "install", "-c", conf, NULL);
	ck_assert_msg(status == 0, "second install: %s", out);
	ck_assert_msg(strstr(out, "up to date (version ") && strstr(out, "0 added, 0 changed") &&
	                  strstr(out, "2 unchanged"),
	              "%s", out);
	ck_assert_msg(!strstr(out, "NOTICE") && !strstr(out, "WARNING"), "raised: %s", out);
	free(out);
	char *after = itest_scalar(c, "SELECT string_agg(xmin::text || jobname, ',' ORDER BY jobid)"
	                              " FROM pgcrond.job");
	ck_assert_str_eq(before, after); /* not even rewritten */

	/* The schema step itself raises nothing, down to DEBUG1 (below that the server
	 * narrates every transaction). */
	PGconn *c2 = itest_connect(ci);
	itest_exec(c2, "SET client_min_messages = debug1");
	notices = 0;
	PQsetNoticeProcessor(c2, count_notice, NULL);
	char err[1024];
	int from, to;
	ck_assert_int_eq(hist_install_begin(c2, hist_sql_dir(), &from, &to, err, sizeof(err)), 0);
	ck_assert_int_eq(from, to); /* the latest step, whichever number that is */
	ck_assert_int_ge(to, 2);
	/* while one installer holds the transaction, another cannot take the lock */
	assert_scalar(c, "SELECT pg_try_advisory_xact_lock(31638874210922084)", "f");
	itest_exec(c2, "COMMIT");
	ck_assert_int_eq(notices, 0);
	PQfinish(c2);

	/* the registry mirrors the config */
	assert_scalar(c, "SELECT after::text FROM pgcrond.job WHERE jobname = 'job-b'", "{job-a}");
	assert_scalar(c,
	              "SELECT max_staleness::text FROM pgcrond.job"
	              " WHERE jobname = 'job-a'",
	              "00:10:00");
	assert_scalar(c,
	              "SELECT staleness FROM pgcrond.view_status"
	              " WHERE job_name = 'job-a'",
	              "NEVER");
	/* pg_cron's catalog names work on a host without pg_cron */
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM cron.job"), 2);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM cron.job_run_details"), 0);

	/* a job removed from the config stays, disabled, with its jobid */
	long long jobid_b =
	    itest_scalar_ll(c, "SELECT jobid FROM pgcrond.job WHERE jobname = 'job-b'");
	free(conf);
	conf = write_config(dir, ci, false);
	out = itest_cli(&status, "install", "-c", conf, NULL);
	ck_assert_msg(status == 0 && strstr(out, "1 removed"), "%s", out);
	free(out);
	assert_scalar(c,
	              "SELECT format('%s %s', enabled, removed_at IS NOT NULL)"
	              " FROM pgcrond.job WHERE jobname = 'job-b'",
	              "f t");
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.view_status"), 1);
	/* and comes back with the same jobid */
	free(conf);
	conf = write_config(dir, ci, true);
	out = itest_cli(&status, "install", "-c", conf, NULL);
	ck_assert_msg(status == 0 && strstr(out, "1 changed"), "%s", out);
	free(out);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT jobid FROM pgcrond.job WHERE jobname = 'job-b'"
	                                    " AND enabled AND removed_at IS NULL"),
	                 jobid_b);

	PQfinish(c);
	free(before);
	free(after);
	free(conf);
	free(dir);
	free(ci);
}
END_TEST

START_TEST(install_reports_unreachable_and_config_errors)
{
	char *dir = itest_tmpdir("hist-install-bad");
	char *dead = dead_conninfo("nowhere");
	char *conf = write_config(dir, dead, true);
	int status;

	char *out = itest_cli(&status, "install", "-c", conf, NULL);
	ck_assert_msg(status == 69, "status %d: %s", status, out);
	ck_assert_msg(strstr(out, "cannot connect"), "%s", out);
	free(out);

	char path[1024];
	snprintf(path, sizeof(path), "%s/broken.conf", dir);
	itest_write_file(path, "databases = { x = { conninfo = 5; }; };\n");
	out = itest_cli(&status, "install", "-c", path, NULL);
	ck_assert_msg(status == 78, "status %d: %s", status, out);
	free(out);

	/* a password never reaches an error message */
	free(conf);
	size_t cilen = strlen(dead) + 32;
	char *ci = malloc(cilen);
	snprintf(ci, cilen, "%s password=hunter2", dead);
	conf = write_config(dir, ci, true);
	out = itest_cli(&status, "history", "-c", conf, NULL);
	ck_assert_int_eq(status, 69);
	ck_assert_msg(!strstr(out, "hunter2"), "%s", out);
	free(out);
	free(ci);
	free(conf);
	free(dead);
	free(dir);
}
END_TEST

/* ---- rows ---------------------------------------------------------------------------- */

/* A file job NAME in the registry; its jobid. */
static long long add_job(PGconn *c, const char *name)
{
	const char *p[] = {name};
	PQclear(PQexecParams(c,
	                     "INSERT INTO pgcrond.job (jobname, kind, command, database)"
	                     " VALUES ($1, 'sql', 'SELECT 1', 'analytics')",
	                     1, NULL, p, NULL, NULL, 0));
	PGresult *r = PQexecParams(c, "SELECT jobid FROM pgcrond.job WHERE jobname = $1", 1, NULL,
	                           p, NULL, NULL, 0);
	ck_assert_int_eq(PQntuples(r), 1);
	long long id = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return id;
}

START_TEST(start_and_finish_make_one_row)
{
	char *ci = itest_fresh_db("it_hist_rows");
	char *dir = itest_tmpdir("hist-rows");
	char state[1024];
	snprintf(state, sizeof(state), "%s/state", dir);
	install_schema(ci);
	PGconn *c = itest_connect(ci);
	long long jobid = add_job(c, "refresh-x");

	struct hist *h = open_hist(ci, state, 0);
	struct hist_run run = sample_run("refresh-x");
	/* all before the loop runs: the finish arrives before the start was written */
	uint64_t k = hist_start(h, &run);
	ck_assert(k > 0);
	hist_set_pid(h, k, run.start_us, 4242);
	hist_finish(h, k, run.start_us, HIST_SUCCEEDED, "INSERT 0 1", NULL, run.start_us + 2500000);

	struct hist_run run2 = sample_run("refresh-x");
	run2.trigger = "retry";
	run2.start_us += 10000000; /* the retry, 10 s later */
	run2.command = "SELECT 1/0";
	uint64_t k2 = hist_start(h, &run2);
	hist_finish(h, k2, run2.start_us, HIST_FAILED, "division by zero", "22012",
	            run2.start_us + 1000);

	struct hist_run skipped = sample_run("refresh-y");
	skipped.trigger = "upstream";
	hist_record(h, &skipped, HIST_UPSTREAM_FAILED, "upstream refresh-x failed");
	ck_assert(drive_until(all_written, h, 20));

	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details"), 3);
	char *row = itest_scalar(
	    c, "SELECT format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s',"
	       " jobid, job_pid, database, username, command, status, return_message,"
	       " start_time AT TIME ZONE 'UTC', end_time AT TIME ZONE 'UTC', job_name, trigger,"
	       " scheduled_time AT TIME ZONE 'UTC', attempt, duration_ms, sqlstate, instance)"
	       " FROM pgcrond.job_run_details WHERE trigger = 'schedule'");
	char want[1024];
	snprintf(want, sizeof(want),
	         "%lld|4242|analytics|reporter|SELECT 1|succeeded|INSERT 0 1|"
	         "2029-01-01 00:00:00.0015|2029-01-01 00:00:02.5015|refresh-x|schedule|"
	         "2029-01-01 00:00:00|2|2500||" INSTANCE,
	         jobid);
	ck_assert_str_eq(row, want);
	free(row);
	row = itest_scalar(c, "SELECT format('%s|%s|%s|%s|%s', status, return_message, sqlstate,"
	                      " duration_ms, job_pid IS NULL) FROM pgcrond.job_run_details"
	                      " WHERE trigger = 'retry'");
	ck_assert_str_eq(row, "failed|division by zero|22012|1|t");
	free(row);
	row = itest_scalar(
	    c, "SELECT format('%s|%s|%s|%s', status, return_message, jobid IS NULL,"
	       " duration_ms) FROM pgcrond.job_run_details WHERE job_name = 'refresh-y'");
	ck_assert_str_eq(row, "upstream_failed|upstream refresh-x failed|t|0");
	free(row);
	/* runid is pg_cron's: distinct, increasing */
	ck_assert_int_eq(
	    itest_scalar_ll(c, "SELECT count(DISTINCT runid) FROM pgcrond.job_run_details"), 3);
	/* the status view sees the success */
	assert_scalar(c,
	              "SELECT last_status FROM pgcrond.view_status"
	              " WHERE job_name = 'refresh-x'",
	              "failed");
	assert_scalar(c,
	              "SELECT last_success IS NOT NULL AND age IS NOT NULL"
	              " FROM pgcrond.view_status WHERE job_name = 'refresh-x'",
	              "t");

	/* nothing left behind: the spill file is empty once all is written */
	char *spool = spool_path(dir);
	ck_assert(drive_until(spool_has, &(struct lines_want){spool, 0}, 5));
	hist_close(&h);
	ck_assert(h == NULL);
	free(spool);
	PQfinish(c);
	free(dir);
	free(ci);
}
END_TEST

/* A row's jobid costs the server no lookup: a SQL job's is the one the daemon's
 * configuration gives the run (the registry may not have the job yet); a file job's is read
 * from pgcrond.job once a connection; a job the registry gets later is still found. */
START_TEST(job_ids_come_from_memory)
{
	char *ci = itest_fresh_db("it_hist_jobids");
	install_schema(ci);
	PGconn *c = itest_connect(ci);
	long long a = add_job(c, "file-a");
	char *dir;
	struct hist *h = open_hist_tmp(ci, "hist-jobids", &dir);
	struct hist_run run = sample_run("file-a");
	hist_record(h, &run, HIST_SKIPPED, "overlap");
	run = sample_run("sql-b");
	run.jobid = 4711; /* cron.job's, not in pgcrond.job */
	hist_record(h, &run, HIST_SKIPPED, "overlap");
	ck_assert(drive_until(all_written, h, 20));
	long long jc = add_job(c, "file-c");
	run = sample_run("file-c");
	hist_record(h, &run, HIST_SKIPPED, "overlap");
	ck_assert(drive_until(all_written, h, 20));
	char *got =
	    itest_scalar(c, "SELECT string_agg(job_name || '=' || coalesce(jobid::text, '-'),"
	                    " ' ' ORDER BY job_name) FROM pgcrond.job_run_details");
	char want[256];
	snprintf(want, sizeof(want), "file-a=%lld file-c=%lld sql-b=4711", a, jc);
	ck_assert_str_eq(got, want);
	free(got);
	hist_close(&h);
	PQfinish(c);
	free(dir);
	free(ci);
}
END_TEST

START_TEST(running_row_is_written_at_start)
{
	char *ci = itest_fresh_db("it_hist_running");
	install_schema(ci);
	PGconn *c = itest_connect(ci);
	struct hist *h = open_hist(ci, NULL, 0);
	struct hist_run run = sample_run("long-job");
	uint64_t k = hist_start(h, &run);
	ck_assert(drive_until(all_written, h, 20));
	assert_scalar(c,
	              "SELECT format('%s|%s', status, end_time IS NULL)"
	              " FROM pgcrond.job_run_details",
	              "running|t");
	hist_finish(h, k, run.start_us, HIST_SUCCEEDED, "1 row", NULL, 0);
	ck_assert(drive_until(all_written, h, 20));
	assert_scalar(c, "SELECT status FROM pgcrond.job_run_details", "succeeded");
	hist_close(&h);
	PQfinish(c);
	free(ci);
}
END_TEST

/* ---- orphans ------------------------------------------------------------------------- */

START_TEST(orphans_of_a_dead_process_are_closed)
{
	char *ci = itest_fresh_db("it_hist_orphans");
	install_schema(ci);
	PGconn *c = itest_connect(ci);
	/* as a previous process of this instance, and another instance, would have left them */
	itest_exec(
	    c, "INSERT INTO pgcrond.job_run_details (job_name, status, start_time, instance,"
	       " run_key, boot_id) VALUES"
	       " ('x', 'running', now() - interval '1 hour', '" INSTANCE "', 'old.1', 'old'),"
	       " ('x', 'succeeded', now() - interval '2 hours', '" INSTANCE "', 'old.0', 'old'),"
	       " ('x', 'running', now() - interval '1 hour', 'other-host', 'o.1', 'o')");

	struct hist *h = open_hist(ci, NULL, 0);
	struct hist_run run = sample_run("x");
	hist_start(h, &run); /* ours: must stay running */
	ck_assert(drive_until(orphans_handled, h, 20));
	ck_assert(drive_until(all_written, h, 20));

	char *row = itest_scalar(
	    c, "SELECT format('%s|%s|%s', status, end_time IS NOT NULL,"
	       " return_message) FROM pgcrond.job_run_details WHERE run_key = 'old.1'");
	ck_assert_str_eq(row, "failed|t|pgcrond process ended while this run was in progress "
	                      "(closed at restart by instance " INSTANCE ")");
	free(row);
	assert_scalar(c,
	              "SELECT status FROM pgcrond.job_run_details"
	              " WHERE run_key = 'old.0'",
	              "succeeded");
	assert_scalar(c,
	              "SELECT status FROM pgcrond.job_run_details"
	              " WHERE instance = 'other-host'",
	              "running");
	assert_scalar(c,
	              "SELECT status FROM pgcrond.job_run_details"
	              " WHERE instance = '" INSTANCE "' AND run_key <> 'old.1'"
	              " AND run_key <> 'old.0'",
	              "running");
	struct hist_stats st;
	hist_get_stats(h, &st);
	ck_assert_int_eq(st.orphans_closed, 1);
	hist_close(&h);
	PQfinish(c);
	free(ci);
}
END_TEST

static bool is_connected(void *arg)
{
	struct hist_stats st;
	hist_get_stats(arg, &st);
	return st.connected;
}

/* At shutdown the daemon's loop no longer runs: close writes what it can by itself. */
START_TEST(close_flushes_pending_records)
{
	char *ci = itest_fresh_db("it_hist_close");
	char *dir = itest_tmpdir("hist-close");
	char state[1024];
	snprintf(state, sizeof(state), "%s/state", dir);
	char *spool = spool_path(dir);
	install_schema(ci);
	struct hist *h = open_hist(ci, state, 0);
	ck_assert(drive_until(is_connected, h, 20));
	for (int i = 0; i < 20; i++) {
		struct hist_run run = sample_run("a");
		run.start_us += i;
		uint64_t k = hist_start(h, &run);
		hist_finish(h, k, run.start_us, HIST_SUCCEEDED, "ok", NULL, 0);
	}
	hist_close(&h);
	PGconn *c = itest_connect(ci);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details"
	                                    " WHERE status = 'succeeded'"),
	                 20);
	ck_assert_int_eq(count_lines(spool), 0);
	PQfinish(c);
	free(spool);
	free(dir);
	free(ci);
}
END_TEST

/* ---- spill --------------------------------------------------------------------------- */

#define N_SPILL 60

START_TEST(spill_file_keeps_runs_until_the_database_is_back)
{
	char *ci = itest_fresh_db("it_hist_spill");
	char *dead = dead_conninfo("it_hist_spill");
	char *dir = itest_tmpdir("hist-spill");
	char state[1024];
	snprintf(state, sizeof(state), "%s/state", dir);
	char *spool = spool_path(dir);
	install_schema(ci);

	/* the database is unreachable: everything waits, in memory and in the file */
	struct hist *h = open_hist(dead, state, 0);
	struct hist_tuning t = {.memory_limit = 7}; /* most records wait in the file only */
	hist_tune(h, &t);
	for (int i = 0; i < N_SPILL; i++) {
		char name[32];
		snprintf(name, sizeof(name), "job-%d", i % 5);
		struct hist_run run = sample_run(name);
		run.start_us += i;
		uint64_t k = hist_start(h, &run);
		hist_finish(h, k, run.start_us, i % 3 ? HIST_SUCCEEDED : HIST_FAILED,
		            "tab\there\nnewline \\N", NULL, run.start_us + 1000);
		if (i % 10 == 0)
			drive_for(0.05); /* let connection attempts fail meanwhile */
	}
	struct hist_stats st;
	hist_get_stats(h, &st);
	ck_assert(!st.connected);
	ck_assert_int_eq(hist_pending(h), 2 * N_SPILL);
	ck_assert(drive_until(spool_has, &(struct lines_want){spool, 2 * N_SPILL}, 5));
	hist_close(&h);
	ck_assert_int_eq(count_lines(spool), 2 * N_SPILL);
	char *saved = itest_read_file(spool);

	/* a restart with the database back: every run appears exactly once */
	h = open_hist(ci, state, 0);
	ck_assert_int_eq(hist_pending(h), 2 * N_SPILL);
	ck_assert(drive_until(all_written, h, 30));
	PGconn *c = itest_connect(ci);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details"),
	                 N_SPILL);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details"
	                                    " WHERE status = 'running' OR end_time IS NULL"),
	                 0);
	ck_assert_int_eq(itest_scalar_ll(c,
	                                 "SELECT count(*) FROM pgcrond.job_run_details"
	                                 " WHERE return_message = E'tab\\there\\nnewline \\\\N'"),
	                 N_SPILL);
	/* the order of the original starts survives: runid follows start_time */
	ck_assert_int_eq(
	    itest_scalar_ll(c, "SELECT count(*) FROM (SELECT runid, lag(runid) OVER"
	                       " (ORDER BY start_time) AS prev FROM pgcrond.job_run_details) s"
	                       " WHERE prev > runid"),
	    0);
	ck_assert(drive_until(spool_has, &(struct lines_want){spool, 0}, 5));
	hist_close(&h);

	/* replaying the same records again (a crash before the file was truncated) changes
	 * nothing */
	itest_write_file(spool, "%s", saved);
	h = open_hist(ci, state, 0);
	ck_assert(drive_until(all_written, h, 30));
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details"),
	                 N_SPILL);
	hist_close(&h);

	PQfinish(c);
	free(saved);
	free(spool);
	free(dir);
	free(dead);
	free(ci);
}
END_TEST

START_TEST(torn_last_line_is_dropped)
{
	char *ci = itest_fresh_db("it_hist_torn");
	char *dir = itest_tmpdir("hist-torn");
	char state[1024];
	snprintf(state, sizeof(state), "%s/state", dir);
	char *spool = spool_path(dir);
	char *dead = dead_conninfo("it_hist_torn");
	install_schema(ci);

	struct hist *h = open_hist(dead, state, 0);
	struct hist_run run = sample_run("a");
	hist_record(h, &run, HIST_SKIPPED, "overlap");
	hist_close(&h);
	/* a crash in the middle of appending the next record */
	char *text = itest_read_file(spool);
	itest_write_file(spool, "%sS1\tit-host\tpartial", text);
	free(text);

	h = open_hist(ci, state, 0);
	ck_assert_int_eq(hist_pending(h), 1);
	ck_assert(drive_until(all_written, h, 20));
	PGconn *c = itest_connect(ci);
	assert_scalar(c,
	              "SELECT string_agg(status || ' ' || return_message, ',')"
	              " FROM pgcrond.job_run_details",
	              "skipped overlap");
	hist_close(&h);
	PQfinish(c);
	free(dead);
	free(spool);
	free(dir);
	free(ci);
}
END_TEST

START_TEST(two_processes_cannot_share_a_spill_file)
{
	char *dir = itest_tmpdir("hist-lock");
	char state[1024];
	snprintf(state, sizeof(state), "%s/state", dir);
	char *dead = dead_conninfo("postgres");
	struct hist *h = open_hist(dead, state, 0), *h2 = NULL;
	ck_assert_int_eq(hist_open(base, dead, state, INSTANCE, 0, &h2), -EBUSY);
	ck_assert(h2 == NULL);
	hist_close(&h);
	free(dead);
	free(dir);
}
END_TEST

/* A connection that dies under a running daemon (the server restarted, a proxy dropped
 * it): records written meanwhile wait and go out after the reconnect. */
START_TEST(lost_connection_reconnects_and_writes_everything)
{
	char *ci = itest_fresh_db("it_hist_lost");
	char *dir = itest_tmpdir("hist-lost");
	char state[1024];
	snprintf(state, sizeof(state), "%s/state", dir);
	install_schema(ci);
	PGconn *c = itest_connect(ci);

	struct hist *h = open_hist(ci, state, 0);
	struct hist_run run = sample_run("a");
	hist_start(h, &run);
	ck_assert(drive_until(all_written, h, 20));
	struct hist_stats st;
	hist_get_stats(h, &st);
	ck_assert_int_eq(st.connects, 1);

	for (int round = 0; round < 3; round++) {
		itest_exec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
		              " WHERE application_name = 'pgcrond'");
		for (int i = 0; i < 10; i++) {
			run.start_us += 1;
			uint64_t k = hist_start(h, &run);
			hist_finish(h, k, run.start_us, HIST_SUCCEEDED, "ok", NULL, 0);
			drive_for(0.01);
		}
	}
	ck_assert(drive_until(all_written, h, 30));
	hist_get_stats(h, &st);
	ck_assert_int_ge(st.connects, 2);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details"), 31);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details"
	                                    " WHERE status = 'succeeded'"),
	                 30);
	hist_close(&h);
	PQfinish(c);
	free(dir);
	free(ci);
}
END_TEST

/* Without the schema, records wait (and say "pgcrond install") instead of being lost. */
START_TEST(missing_schema_keeps_records)
{
	char *ci = itest_fresh_db("it_hist_noschema");
	char *dir;
	struct hist *h = open_hist_tmp(ci, "hist-noschema", &dir);
	struct hist_run run = sample_run("a");
	hist_record(h, &run, HIST_SKIPPED, "overlap");
	drive_for(0.5);
	ck_assert_int_eq(hist_pending(h), 1);
	install_schema(ci);
	ck_assert(drive_until(all_written, h, 20));
	PGconn *c = itest_connect(ci);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details"), 1);
	hist_close(&h);
	PQfinish(c);
	free(dir);
	free(ci);
}
END_TEST

/* ---- pgcrond history / trigger ------------------------------------------------------- */

START_TEST(history_and_trigger_commands)
{
	char *ci = itest_fresh_db("it_hist_cli");
	char *dir = itest_tmpdir("hist-cli");
	char *conf = write_config(dir, ci, true);
	int status;
	char *out = itest_cli(&status, "install", "-c", conf, NULL);
	ck_assert_msg(status == 0, "%s", out);
	free(out);

	struct hist *h = open_hist(ci, NULL, 0);
	for (int i = 0; i < 25; i++) {
		struct hist_run run = sample_run(i % 2 ? "job-a" : "job-b");
		run.start_us += (int64_t)i * 1000000;
		uint64_t k = hist_start(h, &run);
		hist_finish(h, k, run.start_us, i == 7 ? HIST_FAILED : HIST_SUCCEEDED,
		            i == 7 ? "relation \"mv_x\" does not exist"
		                   : "REFRESH MATERIALIZED VIEW",
		            i == 7 ? "42P01" : NULL, run.start_us + 1234567);
	}
	ck_assert(drive_until(all_written, h, 20));
	hist_close(&h);

	out = itest_cli(&status, "history", "-c", conf, NULL);
	ck_assert_msg(status == 0, "%s", out);
	int lines = 0;
	for (char *p = out; *p; p++)
		lines += *p == '\n';
	ck_assert_msg(lines == 21, "header + 20 by default: %s", out);
	ck_assert_msg(strstr(out, "RUNID") && strstr(out, "START (UTC)") && strstr(out, "1.2 s") &&
	                  strstr(out, "REFRESH MATERIALIZED VIEW"),
	              "%s", out);
	free(out);

	out = itest_cli(&status, "history", "-c", conf, "job-a", "--failed", NULL);
	ck_assert_msg(status == 0 && strstr(out, "failed") && strstr(out, "mv_x") &&
	                  !strstr(out, "succeeded"),
	              "%s", out);
	free(out);
	out = itest_cli(&status, "history", "-c", conf, "--limit", "3", "job-b", NULL);
	lines = 0;
	for (char *p = out; *p; p++)
		lines += *p == '\n';
	ck_assert_msg(status == 0 && lines == 4 && !strstr(out, "job-a"), "%s", out);
	free(out);
	out = itest_cli(&status, "history", "-c", conf, "--limit", "0", NULL);
	ck_assert_int_eq(status, 64);
	free(out);
	out = itest_cli(&status, "history", "--help", NULL);
	ck_assert_msg(status == 0 && strstr(out, "--failed"), "%s", out);
	free(out);

	/* trigger: a request row and a NOTIFY with its id, which the daemon would receive; no
	 * daemon runs, so nothing answers it: 69, not a claimed success */
	PGconn *l = itest_connect(ci);
	itest_exec(l, "LISTEN " PGCROND_TRIGGER_CHANNEL);
	out = itest_cli(&status, "trigger", "-c", conf, "--timeout", "1s", "job-b", NULL);
	ck_assert_msg(status == 69 && strstr(out, "request 1 ") &&
	                  strstr(out, "no daemon answered"),
	              "%d %s", status, out);
	free(out);
	PGnotify *n = NULL;
	for (int i = 0; i < 100 && !n; i++) {
		PQconsumeInput(l);
		n = PQnotifies(l);
		if (!n)
			itest_sleep(0.02);
	}
	ck_assert_msg(n != NULL, "no notification");
	ck_assert_str_eq(n->relname, PGCROND_TRIGGER_CHANNEL);
	ck_assert_str_eq(n->extra, "1");
	PQfreemem(n);
	itest_assert_scalar(l,
	                    "SELECT job_name || ' ' || force || ' ' || (claimed_at IS NULL) "
	                    "FROM pgcrond.trigger_request WHERE id = 1",
	                    "job-b false true");
	out = itest_cli(&status, "trigger", "-c", conf, "no-such-job", NULL);
	ck_assert_msg(status == 64 && strstr(out, "no-such-job"), "%d %s", status, out);
	free(out);
	out = itest_cli(&status, "trigger", NULL);
	ck_assert_int_eq(status, 64);
	free(out);
	PQfinish(l);
	free(conf);
	free(dir);
	free(ci);
}
END_TEST

/* Records are written in batches (one transaction each): a record the database refuses
 * for its data must still be dropped alone, its neighbours in the same batch written. */
START_TEST(refused_record_is_dropped_alone)
{
	char *ci = itest_fresh_db("it_hist_refused");
	char *dir = itest_tmpdir("hist-refused");
	char state[1024];
	snprintf(state, sizeof(state), "%s/state", dir);
	char *spool = spool_path(dir);
	char *dead = dead_conninfo("it_hist_refused");
	install_schema(ci);

	/* 41 records in one batch, 60 apart; the bad one 23rd */
	struct hist *h = open_hist(dead, state, 0);
	for (int i = 0; i < 60; i++) {
		char job[16];
		snprintf(job, sizeof(job), "%c%02d", i < 22 ? 'a' : 'b', i);
		struct hist_run run = sample_run(job);
		hist_record(h, &run, HIST_SKIPPED, "overlap");
	}
	hist_close(&h);
	/* between them, a record whose attempt is not a number (SQLSTATE 22P02) */
	const char *f[16] = {INSTANCE,
	                     "bad-key",
	                     "bad-boot",
	                     "bad",
	                     "analytics",
	                     NULL,
	                     "SELECT 1",
	                     "schedule",
	                     NULL,
	                     "1861920000000000",
	                     "1861920000001500",
	                     "many",
	                     HIST_SKIPPED,
	                     "overlap",
	                     NULL,
	                     "1861920000001500"};
	char *bad;
	size_t bad_len;
	ck_assert_int_eq(hist_spool_encode("R1", f, 16, &bad, &bad_len), 0);
	ck_assert_int_eq(count_lines(spool), 60);
	char *text = itest_read_file(spool);
	char *after = text;
	for (int i = 0; i < 22; i++) {
		after = strchr(after, '\n');
		ck_assert_ptr_nonnull(after);
		after++;
	}
	itest_write_file(spool, "%.*s%s%s", (int)(after - text), text, bad, after);
	free(text);
	free(bad);

	h = write_left(ci, state, 61, 60, 20);
	PGconn *c = itest_connect(ci);
	assert_scalar(c,
	              "SELECT format('%s %s %s %s', count(*), count(DISTINCT job_name),"
	              " count(*) FILTER (WHERE job_name LIKE 'a%'), count(*) FILTER (WHERE"
	              " job_name = 'bad')) FROM pgcrond.job_run_details",
	              "60 60 22 0");
	hist_close(&h);
	PQfinish(c);
	free(dead);
	free(spool);
	free(dir);
	free(ci);
}
END_TEST

/* A run's pid and end whose start the writing process did not know (spill kinds P1 and F1:
 * hist_set_pid and hist_finish given no start) complete its row,
 * which an earlier batch wrote, whatever day's partition holds it. After them, another run's
 * start twice (a line written twice: the batch that holds both fails and is halved until they
 * are apart), its pid and its end, found with its start by the number its run key ends in
 * (hist_batch.h): one complete row, no record dropped. */
START_TEST(end_without_its_start_completes_the_row)
{
	char *ci = itest_fresh_db("it_hist_nostart");
	char *dir = itest_tmpdir("hist-nostart");
	char state[1024];
	snprintf(state, sizeof(state), "%s/state", dir);
	char *spool = spool_path(dir);
	install_schema(ci);
	struct hist *h = open_hist(ci, state, 0);
	struct hist_run run = sample_run("nostart");
	ck_assert(hist_start(h, &run) > 0);
	ck_assert(drive_until(all_written, h, 20));
	hist_close(&h);
	PGconn *c = itest_connect(ci);
	char *key = itest_scalar(c, "SELECT run_key FROM pgcrond.job_run_details");
	ck_assert_ptr_nonnull(key);

	const char *pid[3] = {INSTANCE, key, "4343"};
	const char *fin[6] = {INSTANCE, key, HIST_SUCCEEDED, "SELECT 1", NULL, "1861920000501500"};
	const char *start[12] = {
	    INSTANCE,   "old.7",    "old", "replayed",         "analytics",        "reporter",
	    "SELECT 1", "schedule", NULL,  "1861920000000000", "1861920000001500", "1"};
	const char *pid2[4] = {INSTANCE, "old.7", "4343", "1861920000001500"};
	const char *fin2[7] = {INSTANCE,          "old.7", HIST_SUCCEEDED,
	                       "SELECT 1",        NULL,    "1861920000501500",
	                       "1861920000001500"};
	char *l1, *l2, *l3, *l4, *l5;
	size_t n1, n2, n3, n4, n5;
	ck_assert_int_eq(hist_spool_encode("P1", pid, 3, &l1, &n1), 0);
	ck_assert_int_eq(hist_spool_encode("F1", fin, 6, &l2, &n2), 0);
	ck_assert_int_eq(hist_spool_encode("S1", start, 12, &l3, &n3), 0);
	ck_assert_int_eq(hist_spool_encode("P2", pid2, 4, &l4, &n4), 0);
	ck_assert_int_eq(hist_spool_encode("F2", fin2, 7, &l5, &n5), 0);
	itest_write_file(spool, "%s%s%s%s%s%s", l1, l2, l3, l3, l4, l5);
	h = open_hist(ci, state, 0);
	ck_assert_int_eq(hist_pending(h), 6);
	ck_assert(drive_until(all_written, h, 20));
	struct hist_stats st;
	hist_get_stats(h, &st);
	ck_assert_int_eq(st.dropped, 0);
	assert_scalar(c,
	              "SELECT string_agg(format('%s %s %s %s', status, return_message, job_pid,"
	              " duration_ms), ', ' ORDER BY job_name) FROM pgcrond.job_run_details",
	              "succeeded SELECT 1 4343 500, succeeded SELECT 1 4343 500");
	hist_close(&h);
	PQfinish(c);
	free(l1);
	free(l2);
	free(l3);
	free(l4);
	free(l5);
	free(key);
	free(spool);
	free(dir);
	free(ci);
}
END_TEST

/* A server slow enough that a batch of 256 rows or more takes longer than the history's
 * bound on a batch (300 ms; here 1.5 ms a row, by a trigger) and one of 128 does not: the
 * writer finds the size that fits and keeps to it. A writer that went back to its full size
 * after the next success would follow every batch that succeeded with two or three that time
 * out, each thrown away (rolled back, its runids lost) after 300 ms of the server's time: at
 * 15,000 runs/s on a busy machine, most of what the history's backend does. */
START_TEST(slow_server_batches_shrink_and_stay_small)
{
	char *ci = itest_fresh_db("it_hist_slow");
	char *dir = itest_tmpdir("hist-slow");
	char state[1024];
	snprintf(state, sizeof(state), "%s/state", dir);
	char *dead = dead_conninfo("it_hist_slow");
	install_schema(ci);
	struct hist *h = open_hist(dead, state, 0);
	for (int i = 0; i < 1024; i++) {
		char job[16];
		snprintf(job, sizeof(job), "slow%04d", i);
		struct hist_run run = sample_run(job);
		hist_record(h, &run, HIST_SKIPPED, "overlap");
	}
	hist_close(&h);

	PGconn *c = itest_connect(ci);
	/* every batch the server starts counts (a sequence is not rolled back) */
	itest_exec(c, "CREATE SEQUENCE public.batch_tries;"
	              "CREATE FUNCTION public.slow_batch() RETURNS trigger LANGUAGE plpgsql AS $$"
	              " BEGIN PERFORM pg_catalog.nextval('public.batch_tries');"
	              " PERFORM pg_catalog.pg_sleep(0.0015 * (SELECT pg_catalog.count(*) FROM n));"
	              " RETURN NULL; END $$;"
	              "CREATE TRIGGER slow AFTER INSERT ON pgcrond.job_run_details"
	              " REFERENCING NEW TABLE AS n FOR EACH STATEMENT"
	              " EXECUTE FUNCTION public.slow_batch()");
	h = write_left(ci, state, 1024, 1024, 60);
	assert_scalar(c, "SELECT count(*) FROM pgcrond.job_run_details", "1024");
	/* 1024, 512 and 256 time out, then eight batches of 128: 11 (a few more timeouts for
	 * moments of load are allowed); before, each batch that got through came after two or
	 * three that timed out from a size as large as what was left: 24 */
	char *tries = itest_scalar(c, "SELECT last_value FROM public.batch_tries");
	ck_assert_msg(atoi(tries) <= 16, "%s batches started for 8 that wrote 128 rows each",
	              tries);
	free(tries);
	hist_close(&h);
	PQfinish(c);
	free(dead);
	free(dir);
	free(ci);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("history");
	TCase *tc = tcase_create("history");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, install_is_idempotent);
	tcase_add_test(tc, install_reports_unreachable_and_config_errors);
	tcase_add_test(tc, start_and_finish_make_one_row);
	tcase_add_test(tc, job_ids_come_from_memory);
	tcase_add_test(tc, running_row_is_written_at_start);
	tcase_add_test(tc, orphans_of_a_dead_process_are_closed);
	tcase_add_test(tc, close_flushes_pending_records);
	tcase_add_test(tc, spill_file_keeps_runs_until_the_database_is_back);
	tcase_add_test(tc, torn_last_line_is_dropped);
	tcase_add_test(tc, refused_record_is_dropped_alone);
	tcase_add_test(tc, end_without_its_start_completes_the_row);
	tcase_add_test(tc, slow_server_batches_shrink_and_stay_small);
	tcase_add_test(tc, two_processes_cannot_share_a_spill_file);
	tcase_add_test(tc, lost_connection_reconnects_and_writes_everything);
	tcase_add_test(tc, missing_schema_keeps_records);
	tcase_add_test(tc, history_and_trigger_commands);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
