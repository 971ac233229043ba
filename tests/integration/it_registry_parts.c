/* The daemon records its file jobs in the registry (pgcrond.job) in parts
 * (pgcrond.record_file_jobs_part, sql/pgcrond--8.sql), not as one statement of every job that
 * leaves the connection with a send buffer the size of all of them: every job arrives, a job
 * removed at a reload is retired, and a sequence of parts that was cut retires nothing. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "itest.h"

#define DB "it_regparts"
#define N 4500 /* three parts */

static void write_jobs(const struct itest_env *e, int from, int to)
{
	char *path = itest_env_path(e, "conf.d/many.conf");
	FILE *f = fopen(path, "w");
	ck_assert(f != NULL);
	fprintf(f, "jobs = (\n");
	for (int i = from; i < to; i++)
		fprintf(f,
		        "  { name = \"tenant-%d\"; database = \"app\"; schedule = \"0 0 1 1 *\";"
		        " command = \"SELECT %d\"; }%s\n",
		        i, i, i + 1 < to ? "," : "");
	fprintf(f, ");\n");
	fclose(f);
	free(path);
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

int main(void)
{
	Suite *s = suite_create("registry_parts");
	TCase *tc = tcase_create("registry_parts");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, file_jobs_are_recorded_in_parts);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
