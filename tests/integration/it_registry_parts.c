/* The daemon records its file jobs in the registry (pgcrond.job) in parts
 * (pgcrond.record_file_jobs_part, sql/pgcrond--8.sql), not as one statement of every job that
 * leaves the connection with a send buffer the size of all of them: every job arrives, a job
 * removed at a reload is retired, and a sequence of parts that was cut retires nothing. A
 * restart that changes one job writes (and locks) no row of the others. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define DB "it_regparts"
#define N 4500 /* three parts */

static void write_jobs_in(const struct itest_env *e, const char *file, int from, int to,
                          const char *last)
{
	char *path = itest_env_path(e, file);
	FILE *f = fopen(path, "w");
	ck_assert(f != NULL);
	fprintf(f, "jobs = (\n");
	for (int i = from; i < to; i++)
		fprintf(f,
		        "  { name = \"tenant-%d\"; database = \"app\"; schedule = \"0 0 1 1 *\";"
		        " command = \"SELECT %d\"; }%s\n",
		        i, i, i + 1 < to || last ? "," : "");
	if (last) /* last in byte order: in the last part of every sequence */
		fprintf(f,
		        "  { name = \"%s\"; database = \"app\"; schedule = \"0 0 1 1 *\";"
		        " command = \"SELECT 0\"; }\n",
		        last);
	fprintf(f, ");\n");
	fclose(f);
	free(path);
}

static void write_jobs_and(const struct itest_env *e, int from, int to, const char *last)
{
	write_jobs_in(e, "conf.d/many.conf", from, to, last);
}

static void write_jobs(const struct itest_env *e, int from, int to)
{
	write_jobs_and(e, from, to, NULL);
}

START_TEST(file_jobs_are_recorded_in_parts)
{
	struct itest_env e;
	itest_env_setup(&e, "regparts", DB);
	/* the server counts the calls of each PL/pgSQL function in this database */
	itest_exec(e.db, "ALTER DATABASE " DB " SET track_functions = 'pl'");
	write_jobs(&e, 0, N);
	itest_env_start(&e);

	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT count(*) = %d FROM pgcrond.job"
	                             " WHERE source = 'file' AND removed_at IS NULL",
	                             N),
	              "the file jobs are not all in the registry:\n%s", itest_read_file(e.log));
	/* a backend's counts reach the statistics when it has been idle a while: PostgreSQL 15
	 * flushes them at most once a second and, when it could not, after 10 s idle
	 * (PGSTAT_IDLE_INTERVAL), which a loaded machine can take past a 10 s wait */
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT coalesce(sum(calls), 0) >= 3 FROM"
	                             " pg_stat_user_functions WHERE schemaname = 'pgcrond'"
	                             " AND funcname = 'record_file_jobs_part'"),
	              "not recorded in parts of a few thousand jobs");

	/* a reload without tenant-0: retired, the others stay */
	write_jobs(&e, 1, N);
	kill(e.pid, SIGHUP);
	ck_assert_msg(
	    itest_env_wait(&e, 30,
	                   "SELECT removed_at IS NOT NULL AND NOT enabled FROM pgcrond.job"
	                   " WHERE jobname = 'tenant-0'"),
	    "the removed job is not retired:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job"
	                                     " WHERE source = 'file' AND removed_at IS NULL"),
	                 N - 1);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);

	/* the last part of a sequence whose first parts went to another session (the connection
	 * dropped): its names are not all the jobs, so nothing is retired */
	itest_exec(e.db,
	           "SELECT pgcrond.record_file_jobs_part("
	           " '[{\"name\": \"tenant-1\", \"command\": \"SELECT 1\","
	           "   \"schedule\": \"0 0 1 1 *\", \"database\": \"app\", \"enabled\": true}]',"
	           " false, true, 4499)");
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job"
	                                     " WHERE source = 'file' AND removed_at IS NULL"),
	                 N - 1);
	itest_env_teardown(&e);
}
END_TEST

/* Every row version of the file jobs that stay (pgcrond.job, their cron.job rows, this
 * instance's definitions): a row written or locked again has another xmin or xmax. */
#define VERSIONS(tab, key)                                                                         \
	"(SELECT pg_catalog.md5(pg_catalog.string_agg(" key " || ':' || xmin || ':' || xmax, ','"  \
	" ORDER BY " key ")) FROM " tab " WHERE " key " LIKE 'tenant-%')"

START_TEST(an_unchanged_job_is_not_written_again)
{
	struct itest_env e;
	itest_env_setup(&e, "regsame", DB "_same");
	write_jobs_and(&e, 0, N, "zz-gone");
	itest_env_start(&e);
	const char *all_there = "SELECT count(*) = 1 FROM pgcrond.instance_job"
	                        " WHERE job_name = 'zz-gone'";
	ck_assert_msg(itest_env_wait(&e, 30, "%s", all_there) &&
	                  itest_env_wait(&e, 30,
	                                 "SELECT count(*) = %d FROM pgcrond.job"
	                                 " WHERE source = 'file' AND removed_at IS NULL",
	                                 N + 1),
	              "the jobs are not published:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	bool cron = itest_env_count(&e, "SELECT count(*) FROM pg_catalog.pg_class c"
	                                " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	                                " WHERE n.nspname = 'cron' AND c.relname = 'job'") == 1;
	char sql[1024];
	snprintf(sql, sizeof(sql), "SELECT %s || %s || %s", VERSIONS("pgcrond.job", "jobname"),
	         VERSIONS("pgcrond.instance_job", "job_name"),
	         cron ? VERSIONS("cron.job", "jobname::text") : "''");
	char *before = itest_scalar(e.db, sql);
	/* one md5 a table: a table without its rows would make the whole text NULL ("") */
	ck_assert_msg(strlen(before) == (cron ? 96u : 64u), "the jobs' rows are not all there");

	/* the same jobs but the last: every part goes again, the last one retires it */
	write_jobs(&e, 0, N);
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT removed_at IS NOT NULL FROM pgcrond.job"
	                             " WHERE jobname = 'zz-gone'"),
	              "the removed job is not retired:\n%s", itest_read_file(e.log));
	ck_assert_msg(itest_env_wait(&e, 30,
	                             "SELECT NOT EXISTS (SELECT FROM pgcrond.instance_job"
	                             " WHERE job_name = 'zz-gone')"),
	              "the removed job is still published:\n%s", itest_read_file(e.log));
	char *after = itest_scalar(e.db, sql);
	ck_assert_msg(strcmp(before, after) == 0,
	              "a restart that changed one job wrote or locked the rows of the others");
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job"
	                                     " WHERE source = 'file' AND removed_at IS NULL"),
	                 N);
	free(before);
	free(after);
	itest_env_teardown(&e);
}
END_TEST

/* The first install of 60,000 jobs into a bare database lists them in cron.job, which it
 * makes in the same transaction: the rows already there are read once, not once for each job
 * listed (time in the square of the jobs). 60,000: with fewer, the planner reads the table
 * once even without the schema's setting, and the test could not fail. */
START_TEST(a_first_install_of_many_jobs_reads_cron_job_once)
{
	struct itest_env e;
	itest_env_init(&e, "reginstall", DB "_install");
	for (int i = 0; i < 60; i++) {
		char file[64];
		snprintf(file, sizeof(file), "conf.d/many-%02d.conf", i);
		write_jobs_in(&e, file, i * 1000, (i + 1) * 1000, NULL);
	}
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0 && strstr(out, "60000 added"), "pgcrond install: %d: %s", status,
	              out);
	free(out);
	/* the install's counts reach the statistics as its session ends */
	const char *scans = "SELECT seq_scan FROM pg_catalog.pg_stat_user_tables"
	                    " WHERE relid = 'cron.job'::pg_catalog.regclass";
	ck_assert(itest_env_wait(&e, 30, "SELECT (%s) > 0", scans));
	long long n = itest_env_count(&e, "%s", scans);
	ck_assert_msg(n < 100, "cron.job was read %lld times listing 60,000 new jobs in it", n);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("registry_parts");
	TCase *tc = tcase_create("registry_parts");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, file_jobs_are_recorded_in_parts);
	tcase_add_test(tc, an_unchanged_job_is_not_written_again);
	tcase_add_test(tc, a_first_install_of_many_jobs_reads_cron_job_once);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
