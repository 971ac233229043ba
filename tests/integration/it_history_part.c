/* The partitioned history (sql/pgcrond--6.sql, hist_part.c) against a real PostgreSQL:
 * "pgcrond install" migrates a version-2 history with its rows, runids, grants and the
 * views over it; the retention drops whole days and, on the writer's own session, gives way
 * to a reader instead of holding the writer up; it finishes what a pass cut short left; a
 * replayed spill file adds no duplicate rows; a short run is one row written once. */
#include <check.h>
#include <dirent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "history.h"
#include "hist_install.h"
#include "hist_spool.h"
#include "itest.h"

#define INSTANCE "it-part"

static struct event_base *base;

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

static bool all_written(void *arg)
{
	struct hist_stats st;
	hist_get_stats(arg, &st);
	return st.connected && st.pending == 0;
}

static bool dropped_one(void *arg)
{
	struct hist_stats st;
	hist_get_stats(arg, &st);
	return st.partitions_dropped >= 1;
}

/* The retention gave way to a lock twice: at its first pass and at the next one. */
static bool gave_way_twice(void *arg)
{
	struct hist_stats st;
	hist_get_stats(arg, &st);
	return st.purge_waits >= 2;
}

/* Serve the loop for S seconds. */
static void drive_for(double s)
{
	double end = itest_now() + s;
	while (itest_now() < end) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		itest_sleep(0.002);
	}
}

/* The newest schema step shipped (later steps than 6 come from other branches). */
static int newest(void)
{
	int best = 0;
	char path[1024];
	for (int n = 1; n < 100; n++) {
		snprintf(path, sizeof(path), "%s/pgcrond--%d.sql", hist_sql_dir(), n);
		struct stat st;
		if (stat(path, &st) == 0)
			best = n;
	}
	return best;
}

/* Install the schema from DIR (steps up to whichever files it holds). */
static void install_from(const char *ci, const char *dir, int want_from, int want_to)
{
	PGconn *c = itest_connect(ci);
	char err[1024];
	int from, to;
	ck_assert_msg(hist_install_begin(c, dir, &from, &to, err, sizeof(err)) == 0, "install: %s",
	              err);
	itest_exec(c, "COMMIT");
	ck_assert_int_eq(from, want_from);
	ck_assert_int_eq(to, want_to);
	PQfinish(c);
}

/* A directory with the schema as it was at version 2. */
static char *version2_sql_dir(void)
{
	char *dir = itest_tmpdir("hist-v2-sql");
	const char *files[] = {"pgcrond--1.sql", "pgcrond--2.sql"};
	char from[1024], to[1024];
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		snprintf(from, sizeof(from), "%s/%s", hist_sql_dir(), files[i]);
		snprintf(to, sizeof(to), "%s/%s", dir, files[i]);
		itest_copy_file(from, to, 0644);
	}
	/* and the compatibility views as version 2 shipped them (today's need step 3) */
	snprintf(from, sizeof(from), "%s/integration/data/pg_cron_compat-v2.sql", TEST_SOURCE_DIR);
	snprintf(to, sizeof(to), "%s/pg_cron_compat.sql", dir);
	itest_copy_file(from, to, 0644);
	return dir;
}

static struct hist *open_hist(const char *ci, const char *state_dir, int64_t retain_ms)
{
	struct hist *h = NULL;
	ck_assert_int_eq(hist_open(base, ci, state_dir, INSTANCE, retain_ms, &h), 0);
	struct hist_tuning t = {.retry_min_ms = 50, .retry_max_ms = 200};
	hist_tune(h, &t);
	return h;
}

START_TEST(install_migrates_a_version_2_history_with_its_rows)
{
	char *ci = itest_fresh_db("it_part_migrate");
	char *v2 = version2_sql_dir();
	install_from(ci, v2, 0, 2);
	PGconn *c = itest_connect(ci);
	/* a history of four days, one run still open, and what operators built on it */
	itest_exec(c, "INSERT INTO pgcrond.job_run_details (job_name, status, start_time, end_time,"
	              " instance, run_key, trigger, scheduled_time) SELECT 'j' || (i % 3),"
	              " CASE WHEN i = 400 THEN 'running' ELSE 'succeeded' END,"
	              " now() - (i * interval '15 minutes'), now() - (i * interval '15 minutes')"
	              " + interval '1 second', 'old-host', 'k' || i, 'schedule',"
	              " now() - (i * interval '15 minutes') FROM generate_series(1, 400) i");
	itest_exec(c, "CREATE VIEW public.daily AS SELECT job_name, count(*) AS runs"
	              " FROM pgcrond.job_run_details GROUP BY job_name");
	itest_exec(c, "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname ="
	              " 'it_part_reader') THEN CREATE ROLE it_part_reader; END IF; END $$");
	itest_exec(c, "GRANT SELECT ON pgcrond.job_run_details TO it_part_reader");
	char *before =
	    itest_scalar(c, "SELECT md5(string_agg(format('%s %s %s %s %s', runid,"
	                    " job_name, status, start_time, run_key), ',' ORDER BY runid))"
	                    " FROM pgcrond.job_run_details");
	long long max_runid = itest_scalar_ll(c, "SELECT max(runid) FROM pgcrond.job_run_details");

	install_from(ci, hist_sql_dir(), 2, newest());

	itest_assert_scalar(c,
	                    "SELECT relkind FROM pg_class WHERE oid ="
	                    " 'pgcrond.job_run_details'::regclass",
	                    "p");
	char *after =
	    itest_scalar(c, "SELECT md5(string_agg(format('%s %s %s %s %s', runid,"
	                    " job_name, status, start_time, run_key), ',' ORDER BY runid))"
	                    " FROM pgcrond.job_run_details");
	ck_assert_str_eq(before, after);
	/* every row sits in its day's partition; the next runid follows the old ones */
	ck_assert_int_ge(
	    itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.history_partition_list()"), 5 + 3);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details d"
	                                    " JOIN pgcrond.history_partition_list() p"
	                                    "   ON d.tableoid = format('%I.%I', p.schema_name,"
	                                    "      p.partition_name)::regclass"
	                                    " WHERE d.start_time >= p.from_time"
	                                    "   AND d.start_time < p.to_time"),
	                 400);
	itest_exec(c, "INSERT INTO pgcrond.job_run_details (job_name, status, start_time, instance,"
	              " run_key) VALUES ('j0', 'succeeded', now(), 'new-host', 'n1')");
	ck_assert_int_gt(itest_scalar_ll(c, "SELECT runid FROM pgcrond.job_run_details"
	                                    " WHERE run_key = 'n1'"),
	                 max_runid);
	/* the views over it follow it: pg_cron's name, the status view, the operator's own */
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM cron.job_run_details"), 401);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT sum(runs) FROM public.daily"), 401);
	itest_exec(c, "SELECT * FROM pgcrond.view_status");
	itest_assert_scalar(c,
	                    "SELECT has_table_privilege('it_part_reader',"
	                    " 'pgcrond.job_run_details', 'SELECT')",
	                    "t");
	/* the indexes each row pays for, each one a query's (steps 25, 34): no partial index of
	 * successes, only failures in the failures' one, and the writer's key led by the start
	 * (it serves the queries by start_time) */
	itest_assert_scalar(c,
	                    "SELECT string_agg(c.relname || ': ' || regexp_replace("
	                    "pg_get_indexdef(i.indexrelid), '.* USING btree ', ''), '; '"
	                    " ORDER BY c.relname) FROM pg_index i JOIN pg_class c"
	                    " ON c.oid = i.indexrelid"
	                    " WHERE i.indrelid = 'pgcrond.job_run_details'::regclass",
	                    "job_run_details_client_key: (start_time, instance, run_key); "
	                    "job_run_details_failed_idx: (start_time DESC) WHERE (status = ANY "
	                    "(ARRAY['failed'::text, 'upstream_failed'::text])); "
	                    "job_run_details_job_start_idx: (job_name, start_time DESC); "
	                    "job_run_details_open_idx: (instance) WHERE (status = ANY "
	                    "(ARRAY['starting'::text, 'running'::text])); "
	                    "job_run_details_pkey: (runid, start_time)");
	/* the writer's key holds the partition key */
	itest_assert_scalar(c,
	                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
	                    " WHERE conname = 'job_run_details_client_key'",
	                    "UNIQUE (start_time, instance, run_key)");
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pg_class WHERE relname ="
	                                    " 'job_run_details_v1'"),
	                 0);

	/* a second install changes nothing */
	install_from(ci, hist_sql_dir(), newest(), newest());
	PQfinish(c);
	free(before);
	free(after);
	free(v2);
	free(ci);
}
END_TEST

START_TEST(retention_drops_whole_days_without_holding_up_the_writer)
{
	char *ci = itest_fresh_db("it_part_retain");
	install_from(ci, hist_sql_dir(), 0, newest());
	PGconn *c = itest_connect(ci);
	itest_exec(c,
	           "SELECT pgcrond.history_partition_create((now() - interval '40 days')::date)");
	itest_exec(c,
	           "SELECT pgcrond.history_partition_create((now() - interval '29 days')::date)");
	itest_exec(c, "INSERT INTO pgcrond.job_run_details (job_name, status, start_time, instance,"
	              " run_key) SELECT 'old', 'succeeded', date_trunc('day', now() - interval"
	              " '40 days') + i * interval '1 second', 'h', 'k' || i"
	              " FROM generate_series(1, 2500) i");
	itest_exec(c, "INSERT INTO pgcrond.job_run_details (job_name, status, start_time, instance,"
	              " run_key) SELECT 'new', 'succeeded', date_trunc('day', now() - interval"
	              " '29 days') + i * interval '1 second', 'h', 'n' || i"
	              " FROM generate_series(1, 10) i");
	itest_exec(c, "ANALYZE pgcrond.job_run_details");

	/* A report reading the history keeps its transaction open: DETACH CONCURRENTLY waits
	 * for it. The retention's statements are on the writer's session: they give way to the
	 * report, and the writer goes on between the retention's tries. */
	PGconn *reader = itest_connect(ci);
	itest_exec(reader, "BEGIN ISOLATION LEVEL REPEATABLE READ");
	itest_exec(reader, "SELECT count(*) FROM pgcrond.job_run_details");

	struct hist *h = open_hist(ci, NULL, 30LL * 86400 * 1000);
	struct hist_run run = {.job_name = "during",
	                       .database = "analytics",
	                       .command = "SELECT 1",
	                       .trigger = "schedule",
	                       .attempt = 1};
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 5; i++) {
			run.start_us = clock_wall_us();
			uint64_t k = hist_start(h, &run);
			hist_finish(h, k, run.start_us, HIST_SUCCEEDED, "SELECT 1", NULL, 0);
		}
		ck_assert_msg(drive_until(all_written, h, 10),
		              "the writer waited for the retention");
		drive_for(2);
	}
	ck_assert_msg(drive_until(gave_way_twice, h, 20), "the retention did not try again");
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details"
	                                    " WHERE job_name = 'during' AND status = 'succeeded'"),
	                 20);
	struct hist_stats st;
	hist_get_stats(h, &st);
	ck_assert_int_eq(st.partitions_dropped, 0);
	/* no session of its own */
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pg_stat_activity WHERE"
	                                    " application_name = 'pgcrond retention'"),
	                 0);

	/* the report ends: the old day goes, as a whole */
	itest_exec(reader, "COMMIT");
	ck_assert(drive_until(dropped_one, h, 30));
	hist_get_stats(h, &st);
	ck_assert_int_eq(st.partitions_dropped, 1);
	ck_assert_int_eq(st.purged, 2500); /* as ANALYZE counted them */
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details"
	                                    " WHERE job_name = 'old'"),
	                 0);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details"
	                                    " WHERE job_name = 'new'"),
	                 10);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pg_class WHERE relname ="
	                                    " 'job_run_details_p' || to_char(now() AT TIME ZONE"
	                                    " 'UTC' - interval '40 days', 'YYYYMMDD')"),
	                 0);
	/* and the days ahead are there */
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.history_partition_list()"
	                                    " WHERE from_time > now()"),
	                 3);
	hist_close(&h);
	PQfinish(reader);
	PQfinish(c);
	free(ci);
}
END_TEST

static bool dropped_two(void *arg)
{
	struct hist_stats st;
	hist_get_stats(arg, &st);
	return st.partitions_dropped >= 2;
}

/* A pass cut short (the daemon killed, its connection lost, a step that gave way) leaves a
 * day detached but not dropped, or its detach pending: the next pass finishes both. */
START_TEST(a_pass_cut_short_is_finished_by_the_next)
{
	char *ci = itest_fresh_db("it_part_repair");
	install_from(ci, hist_sql_dir(), 0, newest());
	PGconn *c = itest_connect(ci);
	char sql[512];
	const char *days[] = {"41", "40"};
	char *part[2];
	for (int i = 0; i < 2; i++) {
		snprintf(sql, sizeof(sql),
		         "SELECT pgcrond.history_partition_create((now() AT TIME ZONE 'UTC')::date"
		         " - %s)",
		         days[i]);
		itest_exec(c, sql);
		snprintf(sql, sizeof(sql),
		         "SELECT 'job_run_details_p' || to_char((now() AT TIME ZONE 'UTC')::date"
		         " - %s, 'YYYYMMDD')",
		         days[i]);
		part[i] = itest_scalar(c, sql);
	}
	/* day -41: detached, never dropped */
	snprintf(sql, sizeof(sql),
	         "ALTER TABLE pgcrond.job_run_details DETACH PARTITION pgcrond.%s", part[0]);
	itest_exec(c, sql);
	/* day -40: its DETACH CONCURRENTLY gave up waiting for a reader, half-way */
	PGconn *reader = itest_connect(ci);
	itest_exec(reader, "BEGIN ISOLATION LEVEL REPEATABLE READ");
	itest_exec(reader, "SELECT count(*) FROM pgcrond.job_run_details");
	itest_exec(c, "SET lock_timeout = 200");
	snprintf(sql, sizeof(sql),
	         "ALTER TABLE pgcrond.job_run_details DETACH PARTITION pgcrond.%s CONCURRENTLY",
	         part[1]);
	PGresult *r = PQexec(c, sql);
	ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "55P03");
	PQclear(r);
	itest_exec(c, "RESET lock_timeout");
	itest_exec(reader, "COMMIT");
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM pgcrond.history_partition_list() WHERE partition_name = '%s'"
	         " AND detach_pending",
	         part[1]);
	ck_assert_int_eq(itest_scalar_ll(c, sql), 1);

	struct hist *h = open_hist(ci, NULL, 30LL * 86400 * 1000);
	ck_assert_msg(drive_until(dropped_two, h, 20), "the days a pass left are still there");
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_class WHERE relname IN ('%s', '%s')",
	         part[0], part[1]);
	ck_assert_int_eq(itest_scalar_ll(c, sql), 0);
	hist_close(&h);
	PQfinish(reader);
	PQfinish(c);
	free(part[0]);
	free(part[1]);
	free(ci);
}
END_TEST

/* The lines a process sent but whose acknowledgement it never saw (the connection lost
 * after the commit, a crash before truncating the spill file) are sent again: the rows must
 * not double. */
START_TEST(replayed_records_do_not_duplicate_rows)
{
	char *ci = itest_fresh_db("it_part_replay");
	install_from(ci, hist_sql_dir(), 0, newest());
	char *dir1 = itest_tmpdir("part-replay1");
	char *dir2 = itest_tmpdir("part-replay2");
	char state1[1024], state2[1024], spool1[1100], spool2[1100];
	snprintf(state1, sizeof(state1), "%s/state", dir1);
	snprintf(state2, sizeof(state2), "%s/state", dir2);
	snprintf(spool1, sizeof(spool1), "%s/%s", state1, HIST_SPOOL_FILE);
	snprintf(spool2, sizeof(spool2), "%s/%s", state2, HIST_SPOOL_FILE);

	/* the records as a process leaves them in its spill file while the database has not
	 * acknowledged them (its writes run on a writer thread: a process that never reached
	 * the database is the way to see all of them there at once) */
	struct hist *h = open_hist("host=/nonexistent dbname=none", state1, 0);
	struct hist_run run = {.job_name = "r",
	                       .database = "analytics",
	                       .command = "SELECT 1",
	                       .trigger = "schedule",
	                       .attempt = 1};
	for (int i = 0; i < 30; i++) {
		run.start_us = clock_wall_us();
		uint64_t k = hist_start(h, &run);
		hist_set_pid(h, k, run.start_us, 4242);
		if (i % 3)
			hist_finish(h, k, run.start_us, HIST_SUCCEEDED, "SELECT 1", NULL, 0);
	}
	hist_record(h, &run, HIST_SKIPPED, "overlap");
	hist_close(&h);
	char *pending = itest_read_file(spool1);
	ck_assert_int_gt(strlen(pending), 0);
	/* the first process that reaches the database writes them */
	h = open_hist(ci, state1, 0);
	ck_assert(drive_until(all_written, h, 20));
	hist_close(&h);
	PGconn *c = itest_connect(ci);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details"), 31);

	itest_write_file(spool2, "%s", pending);
	chmod(spool2, 0600);
	h = open_hist(ci, state2, 0);
	ck_assert(drive_until(all_written, h, 20));
	hist_close(&h);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details"), 31);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details"
	                                    " WHERE status = 'succeeded' AND job_pid = 4242"),
	                 20);
	PQfinish(c);
	free(pending);
	free(dir1);
	free(dir2);
	free(ci);
}
END_TEST

/* A run that ends before its start is written costs one complete row, no UPDATE; a run that
 * outlasts its batch is completed by an UPDATE of its own day's row. */
START_TEST(short_runs_are_written_once)
{
	char *ci = itest_fresh_db("it_part_once");
	install_from(ci, hist_sql_dir(), 0, newest());
	PGconn *c = itest_connect(ci);
	struct hist *h = open_hist(ci, NULL, 0);
	struct hist_run run = {.job_name = "short",
	                       .database = "analytics",
	                       .command = "SELECT 1",
	                       .trigger = "schedule",
	                       .attempt = 1};
	for (int i = 0; i < 150; i++) { /* 450 lines: one batch */
		run.start_us = clock_wall_us();
		uint64_t k = hist_start(h, &run);
		hist_set_pid(h, k, run.start_us, 1000 + i);
		hist_finish(h, k, run.start_us, i % 10 ? HIST_SUCCEEDED : HIST_FAILED, "done", NULL,
		            0);
	}
	run.job_name = "long";
	run.start_us = clock_wall_us();
	uint64_t long_key = hist_start(h, &run);
	ck_assert(drive_until(all_written, h, 20));
	hist_set_pid(h, long_key, run.start_us, 77);
	hist_finish(h, long_key, run.start_us, HIST_SUCCEEDED, "done late", NULL, 0);
	ck_assert(drive_until(all_written, h, 20));
	hist_close(&h);

	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details"
	                                    " WHERE job_name = 'short' AND job_pid >= 1000"
	                                    " AND end_time IS NOT NULL AND duration_ms >= 0"),
	                 150);
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pgcrond.job_run_details"
	                                    " WHERE job_name = 'short' AND status = 'failed'"),
	                 15);
	itest_assert_scalar(c,
	                    "SELECT format('%s %s %s', status, job_pid, return_message)"
	                    " FROM pgcrond.job_run_details WHERE job_name = 'long'",
	                    "succeeded 77 done late");
	/* the server's counters: 151 rows inserted, the long run's row updated once */
	ck_assert(itest_wait_sql(c,
	                         "SELECT sum(n_tup_ins) >= 151 FROM pg_stat_user_tables"
	                         " WHERE schemaname = 'pgcrond'"
	                         "   AND relname LIKE 'job_run_details_p%'",
	                         20));
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT sum(n_tup_upd) FROM pg_stat_user_tables"
	                                    " WHERE schemaname = 'pgcrond'"
	                                    "   AND relname LIKE 'job_run_details_p%'"),
	                 1);
	PQfinish(c);
	free(ci);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("history_part");
	TCase *tc = tcase_create("history_part");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, install_migrates_a_version_2_history_with_its_rows);
	tcase_add_test(tc, retention_drops_whole_days_without_holding_up_the_writer);
	tcase_add_test(tc, a_pass_cut_short_is_finished_by_the_next);
	tcase_add_test(tc, replayed_records_do_not_duplicate_rows);
	tcase_add_test(tc, short_runs_are_written_once);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
