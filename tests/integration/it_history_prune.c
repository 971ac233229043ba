/* The history's start-up reads at scale (core/src/history/hist_startup.c, sql/pgcrond--8.sql)
 * against a real PostgreSQL: the orphans update and the last-fires lookup skip the partitions past
 * `retain` (pruned when the statement is planned) and the orphans are found through the
 * partial index of rows in progress instead of reading every row; and they still close the
 * rows an earlier process left running. The plans are checked with EXPLAIN of the very
 * statements the daemon sends, with the parameters it sends. */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hist_startup.h"
#include "hist_install.h"
#include "history.h"
#include "itest.h"

#define INSTANCE "it-prune"
#define RETAIN_MS (30LL * 86400000)

static char *plan(PGconn *c, const char *sql, int n, const char *const *params)
{
	char q[4096];
	snprintf(q, sizeof(q), "EXPLAIN (COSTS OFF) %s", sql);
	PGresult *r = PQexecParams(c, q, n, NULL, params, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "EXPLAIN: %s", PQerrorMessage(c));
	size_t len = 1;
	for (int i = 0; i < PQntuples(r); i++)
		len += strlen(PQgetvalue(r, i, 0)) + 1;
	char *out = calloc(1, len);
	ck_assert(out != NULL);
	for (int i = 0; i < PQntuples(r); i++) {
		strcat(out, PQgetvalue(r, i, 0));
		strcat(out, "\n");
	}
	PQclear(r);
	return out;
}

static void partition_name(char *out, size_t outlen, int days_ago)
{
	time_t t = time(NULL) - (time_t)days_ago * 86400;
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, outlen, "job_run_details_p%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday);
}

/* A history of 40 days ago, 35 days ago (both past a 30-day retention the daemon has not
 * applied yet: it was away) and yesterday, a third of it skipped fires (an overloaded
 * pool), with a few rows left running. */
static void fill(PGconn *c)
{
	itest_exec(c,
	           "SELECT pgcrond.history_partition_create((now() AT TIME ZONE 'UTC')::date - 40),"
	           " pgcrond.history_partition_create((now() AT TIME ZONE 'UTC')::date - 35)");
	itest_exec(c, "INSERT INTO pgcrond.job_run_details (status, start_time, end_time, job_name,"
	              " trigger, scheduled_time, instance, run_key, boot_id)"
	              " SELECT CASE WHEN g % 3 = 0 THEN 'skipped' ELSE 'succeeded' END,"
	              "  d + g * interval '1 second', d + g * interval '1 second',"
	              "  'job' || g % 500, 'schedule', d + g * interval '1 second', '" INSTANCE "',"
	              "  'k' || d || g, 'old-boot'"
	              " FROM unnest(ARRAY[(now() AT TIME ZONE 'UTC')::date - 40,"
	              "   (now() AT TIME ZONE 'UTC')::date - 35,"
	              "   (now() AT TIME ZONE 'UTC')::date - 1]::timestamp[]) AS u(d0),"
	              "  LATERAL (SELECT d0 AT TIME ZONE 'UTC' AS d) dd,"
	              "  generate_series(1, 20000) g");
	/* left running by an earlier process: one past retention, two kept */
	itest_exec(c,
	           "INSERT INTO pgcrond.job_run_details (status, start_time, job_name, trigger,"
	           " scheduled_time, instance, run_key, boot_id)"
	           " SELECT 'running', t, 'job' || n, 'schedule', t, '" INSTANCE "', 'r' || n,"
	           "  'old-boot'"
	           " FROM (VALUES (1, now() - interval '40 days'), (2, now() - interval '1 day'),"
	           "   (3, now() - interval '1 minute')) v(n, t)");
	itest_exec(c, "ANALYZE pgcrond.job_run_details");
}

START_TEST(startup_reads_prune_the_partitions_past_retention)
{
	char *ci = itest_fresh_db("it_prune_plan");
	PGconn *c = itest_connect(ci);
	char err[1024];
	int from, to;
	ck_assert_msg(hist_install_begin(c, hist_sql_dir(), &from, &to, err, sizeof(err)) == 0,
	              "install: %s", err);
	itest_exec(c, "COMMIT");
	fill(c);

	char floor[40], old40[64], old35[64], recent[64];
	ck_assert_str_ne(
	    hist_startup_floor((int64_t)time(NULL) * 1000000, RETAIN_MS, floor, sizeof(floor)),
	    "-infinity");
	partition_name(old40, sizeof(old40), 40);
	partition_name(old35, sizeof(old35), 35);
	partition_name(recent, sizeof(recent), 1);

	const char *lp[] = {floor};
	char *p = plan(c, hist_sql_last_fires, 1, lp);
	ck_assert_msg(strstr(p, recent) != NULL, "last fires: the kept day is read:\n%s", p);
	ck_assert_msg(!strstr(p, old40) && !strstr(p, old35),
	              "last fires: the days past retention are pruned:\n%s", p);
	free(p);

	const char *op[] = {INSTANCE, "this-boot", "closed", floor, "{\"sql\": \"\"}"};
	p = plan(c, hist_sql_orphans, 5, op);
	ck_assert_msg(!strstr(p, old40) && !strstr(p, old35),
	              "orphans: the days past retention are pruned:\n%s", p);
	/* (an empty partition, today's or one ahead, may be "scanned": it has no page) */
	char want[200];
	snprintf(want, sizeof(want), "using %s_instance_idx on %s", recent, recent);
	ck_assert_msg(strstr(p, want) != NULL,
	              "orphans: found through the index of rows in progress, not by reading "
	              "yesterday's rows:\n%s",
	              p);
	free(p);

	/* what the daemon does with them: the kept rows left running are closed */
	PGresult *r = PQexecParams(c, hist_sql_orphans, 5, NULL, op, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	/* two closed, no backend of theirs to end (none is connected), none left busy */
	ck_assert_str_eq(PQgetvalue(r, 0, 0), "2");
	ck_assert_str_eq(PQgetvalue(r, 0, 1), "0");
	ck_assert(PQgetisnull(r, 0, 2));
	PQclear(r);
	itest_assert_scalar(c,
	                    "SELECT string_agg(job_name || ' ' || status, ', ' ORDER BY job_name)"
	                    " FROM pgcrond.job_run_details WHERE run_key LIKE 'r_'",
	                    "job1 running, job2 failed, job3 failed");
	/* and the lookup still answers every job of the kept days */
	r = PQexecParams(c, hist_sql_last_fires, 1, NULL, lp, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	ck_assert_int_eq(PQntuples(r), 500);
	PQclear(r);
	PQfinish(c);
	free(ci);
}
END_TEST

/* The floor is the start of the UTC day that holds now - retain; no retention: no floor. */
START_TEST(the_floor_is_the_oldest_day_retention_keeps)
{
	char out[40];
	/* 2026-11-22T10:30:00Z, 30 days: 2026-10-23 10:30 -> that day's start */
	ck_assert_str_eq(hist_startup_floor(1795343400LL * 1000000, RETAIN_MS, out, sizeof(out)),
	                 "2026-10-23 00:00:00+00");
	ck_assert_str_eq(hist_startup_floor(1795343400LL * 1000000, 0, out, sizeof(out)),
	                 "-infinity");
	ck_assert_str_eq(hist_startup_floor(0, RETAIN_MS, out, 4), "-infinity");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("history_prune");
	TCase *tc = tcase_create("history_prune");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, startup_reads_prune_the_partitions_past_retention);
	tcase_add_test(tc, the_floor_is_the_oldest_day_retention_keeps);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
