/* Bounded inputs: a command longer than max_command_size is refused by
 * cron.schedule and by `pgcrond check` for a file job, with a message saying what to do; a
 * role past max_jobs_per_role cannot schedule another; pgcrond install writes both from
 * pgcrond.conf; a row over the limit that already exists is not loaded by the daemon, which
 * names the job and its owner. */
#include <check.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define DB "it_limits"
#define ROLE "it_limits_app"

static char *error_of(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	const char *h = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
	char *out = malloc(2048);
	snprintf(out, 2048, "%s%s%s", m ? m : "", h ? " HINT: " : "", h ? h : "");
	PQclear(r);
	return out;
}

START_TEST(commands_and_jobs_are_bounded)
{
	struct itest_env e;
	int status;

	itest_env_init(&e, "limits", DB);
	itest_env_main(&e, "max_command_size = 4096;\nmax_jobs_per_role = 2;\n");
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	free(out);
	itest_assert_scalar(e.db,
	                    "SELECT string_agg(name || '=' || value, ',' ORDER BY name) FROM "
	                    "pgcrond.setting",
	                    "max_command_size=4096,max_jobs_per_role=2");
	PQclear(PQexec(e.db, "DROP OWNED BY " ROLE "; DROP ROLE " ROLE));
	itest_exec(e.db, "CREATE ROLE " ROLE " LOGIN; GRANT USAGE ON SCHEMA cron TO " ROLE);
	char ci[1024];
	snprintf(ci, sizeof(ci), "%s user=%s", e.ci, ROLE);
	PGconn *app = itest_connect(ci);

	/* too long a command */
	char *err = error_of(app, "SELECT cron.schedule('big', '0 0 1 1 *', 'SELECT 1 -- ' || "
	                          "repeat('B', 5000))");
	ck_assert_msg(strcmp(err,
	                     "the command of job \"big\" is 5012 bytes, more than the 4096 bytes a "
	                     "job's command may have HINT: keep the SQL in a function or "
	                     "procedure and schedule a call of it; the limit is max_command_size "
	                     "in pgcrond.conf") == 0,
	              "%s", err);
	free(err);
	/* the jobs of one role */
	itest_exec(app, "SELECT cron.schedule('a', '0 0 1 1 *', 'SELECT 1')");
	itest_exec(app, "SELECT cron.schedule('b', '0 0 1 1 *', 'SELECT 1')");
	err = error_of(app, "SELECT cron.schedule('c', '0 0 1 1 *', 'SELECT 1')");
	ck_assert_msg(strcmp(err, "role \"" ROLE "\" has 2 jobs, the most one role may have HINT: "
	                          "unschedule jobs it no longer needs; the limit is "
	                          "max_jobs_per_role in pgcrond.conf") == 0,
	              "%s", err);
	free(err);
	itest_exec(app, "SELECT cron.unschedule('b')");
	itest_exec(app, "SELECT cron.schedule('c', '0 0 1 1 *', 'SELECT 1')");

	/* a row past the limit from before it: the daemon leaves it out and says whose */
	itest_exec(e.db, "ALTER TABLE pgcrond.job DISABLE TRIGGER job_limits;"
	                 "UPDATE pgcrond.setting SET value = 10 WHERE name = 'max_jobs_per_role'");
	itest_exec(app, "SELECT cron.schedule('old-big', '0 0 1 1 *', 'SELECT 1 -- ' || "
	                "repeat('B', 8000))");
	itest_exec(e.db, "ALTER TABLE pgcrond.job ENABLE TRIGGER job_limits");
	itest_env_start(&e);
	char *said = itest_scalar(e.db, "SELECT format('job \"old-big\" (jobid %s, role \"%s\") is"
	                                " not run: its command is 8012 bytes, more than"
	                                " max_command_size (4096 bytes)', jobid, username)"
	                                " FROM pgcrond.job WHERE jobname = 'old-big'");
	ck_assert_msg(itest_wait_log(e.log, said, 10), "%s", itest_read_file(e.log));
	free(said);
	/* the daemon's jobs: the others, not it, which its status lists among those it does not
	 * run (pgcrond list shows the registry's rows) */
	json_t *st = itest_env_status(&e, NULL), *j, *r;
	char *jobs = json_dumps(json_object_get(st, "jobs"), 0);
	ck_assert_msg(strstr(jobs, "\"name\": \"c\"") && !strstr(jobs, "old-big"), "%s", jobs);
	free(jobs);
	bool listed = false;
	const char *id;
	json_object_foreach(json_object_get(st, "refused"), id, r)
	{
		j = json_object_get(r, "name");
		listed |= j && strcmp(json_string_value(j), "old-big") == 0;
	}
	ck_assert_msg(listed, "status does not list old-big as not run");
	json_decref(st);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);

	/* a file job: pgcrond check names the file and line */
	itest_env_job(&e, "10-big.conf",
	              "job = { name = \"filebig\"; schedule = \"@daily\";\n"
	              "  command = \"SELECT 1 -- %05000d\"; };\n",
	              0);
	char *file = itest_env_path(&e, "conf.d/10-big.conf");
	char want[1024];
	snprintf(want, sizeof(want),
	         "%s:1: job \"filebig\": the command is 5012 bytes, more than max_command_size "
	         "(4096 bytes); keep the SQL in a function or procedure and call it from the job, "
	         "or raise max_command_size in %s",
	         file, e.conf);
	out = itest_cli(&status, "check", "-c", e.conf, NULL);
	ck_assert_msg(status == 78 && strstr(out, want), "%d %s\nwanted %s", status, out, want);
	free(out);
	free(file);
	PQfinish(app);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("limits");
	TCase *tc = tcase_create("limits");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, commands_and_jobs_are_bounded);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
