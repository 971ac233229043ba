/* Jobs made in SQL, the parts without a database: the conninfo a job's runs log in with
 * (owner and database replaced, the daemon's password never offered) and the merge of SQL
 * jobs into a loaded configuration (a bad job is left out alone, with check's message). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_sql.h"
#include "sqljobs.h"

START_TEST(conninfo_logs_in_as_the_owner)
{
	char *ci = sqljobs_conninfo_as("host=/tmp port=5433 user=pgcrond password=s3cret "
	                               "dbname=analytics sslmode=disable",
	                               "app db", "o'neil");
	ck_assert_ptr_nonnull(ci);
	ck_assert_msg(strstr(ci, "user='o\\'neil'") && strstr(ci, "dbname='app db'") &&
	                  strstr(ci, "port='5433'") && strstr(ci, "sslmode='disable'") &&
	                  !strstr(ci, "s3cret") && !strstr(ci, "pgcrond"),
	              "%s", ci);
	free(ci);
	/* a URI too; the database kept when none is given */
	ci = sqljobs_conninfo_as("postgresql://daemon:pw@db.example:5432/hist", NULL, "alice");
	ck_assert_ptr_nonnull(ci);
	ck_assert_msg(strstr(ci, "user='alice'") && strstr(ci, "dbname='hist'") &&
	                  strstr(ci, "host='db.example'") && !strstr(ci, "pw"),
	              "%s", ci);
	free(ci);
	ck_assert_ptr_null(sqljobs_conninfo_as("host='unterminated", NULL, "x"));
}
END_TEST

static struct conf_job file_job(const char *name)
{
	return (struct conf_job){.name = (char *)name,
	                         .command = "SELECT 1",
	                         .database = "app",
	                         .schedule = "@daily",
	                         .enabled = true,
	                         .more = &config_job_more_defaults,
	                         .file = "conf.d/10.conf",
	                         .line = 1};
}

/* A cycle whose way back goes through an upstream other than the first (A after B and C,
 * C after A): found and left out, not handed to the job graph (which would refuse the whole
 * configuration, for every role, at every change and reload). */
START_TEST(merge_finds_a_cycle_through_any_upstream)
{
	struct conf_database db = {.name = "app", .conninfo = "dbname=app", .pool = 4};
	struct pgc_config files = {.file = "pgcrond.conf",
	                           .timezone = "UTC",
	                           .databases = &db,
	                           .n_databases = 1,
	                           .history_database = "app"};
	struct config_sql_db sdb = {.name = "app/alice", .conninfo = "dbname=app user=alice"};
	struct config_sql_job jobs[] = {
	    {"cron.job jobid 1",
	     "job = { name = \"B\"; command = \"SELECT 1\"; schedule = \"@daily\"; "
	     "database = \"app/alice\"; };",
	     "alice", "app", NULL, 0},
	    {"cron.job jobid 2",
	     "job = { name = \"A\"; command = \"SELECT 1\"; database = \"app/alice\"; "
	     "after = [\"B\", \"C\"]; };",
	     "alice", "app", NULL, 0},
	    {"cron.job jobid 3",
	     "job = { name = \"C\"; command = \"SELECT 1\"; database = \"app/alice\"; "
	     "after = [\"A\"]; };",
	     "alice", "app", NULL, 0},
	};
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	ck_assert_int_eq(config_with_sql_jobs(&files, &sdb, 1, jobs, 3, &cfg, &dl), 0);
	/* A or C goes (whichever is looked at first), then the other runs after a missing job */
	ck_assert_uint_eq(cfg->n_jobs, 1);
	ck_assert_str_eq(cfg->jobs[0].name, "B");
	ck_assert_uint_eq(dl.n, 2);
	ck_assert_msg(strstr(dl.items[0].message, "(a cycle); it is not run"), "%s",
	              dl.items[0].message);
	diag_clear(&dl);
	config_free(&cfg);
}
END_TEST

/* No SQL job: the configuration in force is the files' one itself, not a copy of every job;
 * each owner frees it, and it goes with the last. */
START_TEST(merge_without_sql_jobs_shares_the_files)
{
	struct pgc_config *files = calloc(1, sizeof(*files));
	ck_assert(files != NULL);
	files->file = strdup("pgcrond.conf");
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	ck_assert_int_eq(config_with_sql_jobs(files, NULL, 0, NULL, 0, &cfg, &dl), 0);
	ck_assert_ptr_eq(cfg, files);
	config_free(&files); /* cfg still owns it (ASan: no use after free below) */
	ck_assert_ptr_null(files);
	ck_assert_str_eq(cfg->file, "pgcrond.conf");
	config_free(&cfg);
	ck_assert_ptr_null(cfg);
}
END_TEST

/* Many file jobs and one SQL job: the copy's index of names grows past its first size. */
START_TEST(merge_with_many_file_jobs)
{
	enum { N = 3000 };
	struct conf_database db = {.name = "app", .conninfo = "dbname=app", .pool = 4};
	struct conf_job *fj = calloc(N, sizeof(*fj));
	char(*names)[16] = calloc(N, sizeof(*names));
	ck_assert(fj && names);
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "f%d", i);
		fj[i] = file_job(names[i]);
	}
	struct pgc_config files = {.file = "pgcrond.conf",
	                           .timezone = "UTC",
	                           .databases = &db,
	                           .n_databases = 1,
	                           .history_database = "app",
	                           .jobs = fj,
	                           .n_jobs = N};
	struct config_sql_db sdb = {.name = "app/alice", .conninfo = "dbname=app user=alice"};
	struct config_sql_job job = {"cron.job jobid 1",
	                             "job = { name = \"s\"; command = \"SELECT 1\"; "
	                             "database = \"app/alice\"; after = [\"f2999\"]; };",
	                             "alice",
	                             "app",
	                             NULL,
	                             0};
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	ck_assert_int_eq(config_with_sql_jobs(&files, &sdb, 1, &job, 1, &cfg, &dl), 0);
	ck_assert_uint_eq(dl.n, 0);
	ck_assert_uint_eq(cfg->n_jobs, N + 1);
	ck_assert_ptr_eq(config_job(cfg, "s"), &cfg->jobs[N]);
	ck_assert_ptr_eq(config_job(cfg, "f1234"), &cfg->jobs[1234]);
	config_free(&cfg);
	free(fj);
	free(names);
}
END_TEST

START_TEST(merge_leaves_out_only_the_bad_jobs)
{
	struct conf_database db = {.name = "app", .conninfo = "dbname=app", .pool = 4};
	struct conf_job fj[] = {file_job("nightly")};
	struct pgc_config files = {.file = "pgcrond.conf",
	                           .timezone = "UTC",
	                           .databases = &db,
	                           .n_databases = 1,
	                           .history_database = "app",
	                           .jobs = fj,
	                           .n_jobs = 1};
	struct config_sql_db sdb = {.name = "app/alice", .conninfo = "dbname=app user=alice"};
	struct config_sql_job jobs[] = {
	    {"cron.job jobid 1",
	     "job = { name = \"ok\"; command = \"SELECT 1\"; schedule = \"1 seconds\"; "
	     "database = \"app/alice\"; retries = 2; timezone = \"Europe/Berlin\"; };",
	     "alice", "app", NULL, 0},
	    {"cron.job jobid 2",
	     "job = { name = \"nightly\"; command = \"SELECT 1\"; schedule = \"@daily\"; "
	     "database = \"app/alice\"; };",
	     "alice", "app", NULL, 0},
	    {"cron.job jobid 3",
	     "job = { name = \"typo\"; command = \"SELECT 1\"; schedule = \"@daily\"; "
	     "database = \"app/alice\"; retrys = 2; };",
	     "alice", "app", NULL, 0},
	    {"cron.job jobid 4",
	     "job = { name = \"orphan\"; command = \"SELECT 1\"; schedule = \"@daily\"; "
	     "database = \"app/alice\"; after = [\"nope\"]; };",
	     "alice", "app", NULL, 0},
	    {"cron.job jobid 5",
	     "job = { name = \"loop-a\"; command = \"SELECT 1\"; database = \"app/alice\"; "
	     "after = [\"loop-b\"]; };",
	     "alice", "app", NULL, 0},
	    {"cron.job jobid 6",
	     "job = { name = \"loop-b\"; command = \"SELECT 1\"; database = \"app/alice\"; "
	     "after = [\"loop-a\"]; };",
	     "alice", "app", NULL, 0},
	    {"cron.job jobid 7",
	     "job = { name = \"after-file\"; command = \"SELECT 1\"; database = \"app/alice\"; "
	     "after = [\"nightly\"]; };",
	     "alice", "app", NULL, 0},
	};
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	ck_assert_int_eq(config_with_sql_jobs(&files, &sdb, 1, jobs, 7, &cfg, &dl), 0);
	ck_assert_uint_eq(cfg->n_jobs, 3);
	ck_assert_str_eq(cfg->jobs[0].name, "nightly");
	ck_assert_str_eq(cfg->jobs[1].name, "ok");
	ck_assert_str_eq(cfg->jobs[1].more->sql.username, "alice");
	ck_assert_str_eq(cfg->jobs[1].more->sql.database, "app");
	ck_assert_int_eq(cfg->jobs[1].retries, 2);
	ck_assert_ptr_nonnull(cfg->jobs[1].more->cal.tz);
	ck_assert_str_eq(cfg->jobs[2].name, "after-file");
	ck_assert_ptr_nonnull(config_database(cfg, "app/alice"));
	/* the file config is untouched */
	ck_assert_uint_eq(files.n_jobs, 1);

	const char *want[] = {
	    "job \"nightly\" is already defined at conf.d/10.conf:1; rename one of them",
	    "unknown key \"retrys\" in job \"typo\"; did you mean \"retries\"?",
	    "job \"orphan\" runs after unknown job \"nope\"; it is not run",
	    "runs after itself through other jobs (a cycle); it is not run",
	};
	for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
		bool found = false;
		for (size_t i = 0; i < dl.n; i++)
			found |= strstr(dl.items[i].message, want[w]) != NULL &&
			         strncmp(dl.items[i].file, "cron.job jobid ", 15) == 0;
		ck_assert_msg(found, "no diagnostic \"%s\" (%zu in all; first: %s)", want[w], dl.n,
		              dl.n ? dl.items[0].message : "");
	}
	diag_clear(&dl);
	config_free(&cfg);
}
END_TEST

/* The names a user writes on the command line (`pgcrond trigger NAME`): a file job's name,
 * a jobid, pgcrond's name of a SQL job or the name its owner gave it in cron.schedule; one
 * that SQL jobs of two roles answer to is ambiguous, with both listed. */
START_TEST(resolve_a_job_as_the_user_writes_it)
{
	struct conf_database db = {.name = "app", .conninfo = "dbname=app", .pool = 4};
	struct conf_job fj[] = {file_job("nightly")};
	struct pgc_config files = {.file = "pgcrond.conf",
	                           .timezone = "UTC",
	                           .databases = &db,
	                           .n_databases = 1,
	                           .history_database = "app",
	                           .jobs = fj,
	                           .n_jobs = 1};
	struct config_sql_db sdb[] = {{.name = "app/alice", .conninfo = "dbname=app user=alice"},
	                              {.name = "app/bob", .conninfo = "dbname=app user=bob"}};
	struct config_sql_job jobs[] = {
	    {"cron.job jobid 11",
	     "job = { name = \"cleanup\"; command = \"SELECT 1\"; schedule = \"@daily\"; "
	     "database = \"app/alice\"; };",
	     "alice", "app", "cleanup", 11},
	    {"cron.job jobid 12",
	     "job = { name = \"cron-job-12\"; command = \"SELECT 1\"; schedule = \"@daily\"; "
	     "database = \"app/bob\"; };",
	     "bob", "app", "cleanup", 12},
	    {"cron.job jobid 13",
	     "job = { name = \"cron-job-13\"; command = \"SELECT 1\"; schedule = \"@daily\"; "
	     "database = \"app/bob\"; };",
	     "bob", "app", "Job Run Details Maintenance", 13},
	    {"cron.job jobid 14",
	     "job = { name = \"cron-job-14\"; command = \"SELECT 1\"; schedule = \"@daily\"; "
	     "database = \"app/bob\"; };",
	     "bob", "app", "nightly", 14},
	    {"cron.job jobid 15",
	     "job = { name = \"cron-job-15\"; command = \"SELECT 1\"; schedule = \"@daily\"; "
	     "database = \"app/bob\"; };",
	     "bob", "app", "11", 15},
	};
	struct diag_list dl = {0};
	struct pgc_config *cfg = NULL;
	ck_assert_int_eq(config_with_sql_jobs(&files, sdb, 2, jobs, 5, &cfg, &dl), 0);
	ck_assert_msg(dl.n == 0, "%s", dl.n ? dl.items[0].message : "");
	const struct conf_job *j, *c[4];
	size_t n;

	ck_assert_int_eq(config_resolve_job(cfg, "Job Run Details Maintenance", &j, c, 4, &n), 0);
	ck_assert_str_eq(j->name, "cron-job-13");
	ck_assert_str_eq(j->more->sql.cron_name, "Job Run Details Maintenance");
	ck_assert_int_eq(j->more->sql.jobid, 13);
	ck_assert_int_eq(config_resolve_job(cfg, "cron-job-13", &j, c, 4, &n), 0);
	ck_assert_int_eq(j->more->sql.jobid, 13);
	ck_assert_int_eq(config_resolve_job(cfg, "13", &j, c, 4, &n), 0);
	ck_assert_str_eq(j->name, "cron-job-13");
	/* a jobid before a name of digits; a file job before a SQL job's pg_cron name */
	ck_assert_int_eq(config_resolve_job(cfg, "11", &j, c, 4, &n), 0);
	ck_assert_str_eq(j->name, "cleanup");
	ck_assert_int_eq(config_resolve_job(cfg, "nightly", &j, c, 4, &n), 0);
	ck_assert_ptr_null(j->more->sql.username);
	/* two roles' "cleanup": both listed */
	ck_assert_int_eq(config_resolve_job(cfg, "cleanup", &j, c, 4, &n), -ENOTUNIQ);
	ck_assert_ptr_null(j);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(c[0]->more->sql.jobid + c[1]->more->sql.jobid, 23);
	ck_assert_int_eq(config_resolve_job(cfg, "cleanup", &j, NULL, 0, &n), -ENOTUNIQ);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(config_resolve_job(cfg, "job run details maintenance", &j, c, 4, &n),
	                 -ENOENT);
	ck_assert_int_eq(config_resolve_job(cfg, "99", &j, c, 4, &n), -ENOENT);
	config_free(&cfg);
}
END_TEST

START_TEST(quote_is_a_libconfig_string)
{
	char *q = config_sql_quote("a \"b\" \\ c\nd\x01");
	ck_assert_str_eq(q, "\"a \\\"b\\\" \\\\ c\\nd\\x01\"");
	free(q);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sqljobs");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, conninfo_logs_in_as_the_owner);
	tcase_add_test(tc, merge_leaves_out_only_the_bad_jobs);
	tcase_add_test(tc, merge_finds_a_cycle_through_any_upstream);
	tcase_add_test(tc, merge_with_many_file_jobs);
	tcase_add_test(tc, merge_without_sql_jobs_shares_the_files);
	tcase_add_test(tc, quote_is_a_libconfig_string);
	tcase_add_test(tc, resolve_a_job_as_the_user_writes_it);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
