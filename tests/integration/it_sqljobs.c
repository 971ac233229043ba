/* Jobs made in SQL against a real PostgreSQL: pgcrond install provides pg_cron's
 * API (cron.schedule, cron.unschedule, cron.job, cron.job_run_details) where the database
 * has no cron schema; an application role with only USAGE ON SCHEMA cron schedules a job
 * that the running daemon picks up at commit, without a reload, and runs logged in as that
 * role; the role sees only its own jobs and runs, and stops the job with cron.unschedule. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "itest.h"
#include "../unit/rrule_table.h"

#define DB "it_sqljobs"
#define APP "it_sqljobs_app"
#define OTHER "it_sqljobs_other"
#define BURST_DB "it_sqljobs_burst"

static PGconn *role_conn(const struct itest_env *e, const char *role)
{
	char ci[1024];
	snprintf(ci, sizeof(ci), "%s user=%s", e->ci, role);
	return itest_connect(ci);
}

/* The error SQL fails with on C (primary message), or "" if it succeeds. */
static char *error_of(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	char *out = strdup(m ? m : "");
	PQclear(r);
	return out;
}

/* pgcrond install with E's configuration. */
static void install(const struct itest_env *e)
{
	int status;
	char *out = itest_cli(&status, "install", "-c", e->conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	free(out);
}

static void setup_roles(struct itest_env *e)
{
	install(e);
	const char *roles[] = {APP, OTHER};
	for (int i = 0; i < 2; i++) {
		char sql[512];
		snprintf(sql, sizeof(sql), "DROP OWNED BY %s; DROP ROLE %s", roles[i], roles[i]);
		PQclear(PQexec(e->db, sql));
		snprintf(sql, sizeof(sql),
		         "CREATE ROLE %s LOGIN; GRANT USAGE ON SCHEMA cron TO %s;"
		         "GRANT USAGE ON SCHEMA public TO %s",
		         roles[i], roles[i], roles[i]);
		itest_exec(e->db, sql);
	}
}

static void setup(struct itest_env *e)
{
	itest_env_init(e, "sqljobs", DB);
	setup_roles(e);
	itest_exec(e->db,
	           "CREATE TABLE ticks (job text, who text DEFAULT session_user,"
	           " cur text DEFAULT current_user, at timestamptz DEFAULT clock_timestamp());"
	           "GRANT INSERT, SELECT ON ticks TO PUBLIC");
}

START_TEST(app_role_schedules_runs_and_unschedules)
{
	struct itest_env e;
	setup(&e);
	PGconn *app = role_conn(&e, APP), *other = role_conn(&e, OTHER);
	/* made before the daemon starts: runs once when it starts, as in pg_cron */
	itest_assert_scalar(app,
	                    "SELECT cron.schedule('at-start', '@restart',"
	                    " $$INSERT INTO ticks (job) VALUES ('at-start')$$) > 0",
	                    "t");
	itest_env_start(&e);
	ck_assert_msg(itest_wait_log(e.log, "jobs made in SQL changed", 10),
	              "the daemon did not read the SQL jobs:\n%s", itest_read_file(e.log));
	ck_assert_msg(
	    itest_env_wait(&e, 10, "SELECT count(*) = 1 FROM ticks WHERE job = 'at-start'"),
	    "the @restart job did not run at start:\n%s", itest_read_file(e.log));
	itest_exec(app, "SELECT cron.unschedule('at-start')");

	/* a job of another role, which APP must not see */
	itest_assert_scalar(other,
	                    "SELECT cron.schedule('other-tick', '1 seconds',"
	                    " $$INSERT INTO ticks (job) VALUES ('other')$$) > 0",
	                    "t");
	double t0 = itest_now();
	char *id = itest_scalar(app, "SELECT cron.schedule('app-tick', '1 seconds',"
	                             " $$INSERT INTO ticks (job) VALUES ('app')$$)");
	ck_assert_msg(itest_env_wait(&e, 10, "SELECT count(*) > 0 FROM ticks WHERE job = 'app'"),
	              "the SQL job did not run:\n%s", itest_read_file(e.log));
	fprintf(stderr, "it_sqljobs: commit of cron.schedule to first run: %.2f s\n",
	        itest_now() - t0);
	/* it ran logged in as its owner, not as the daemon's role */
	itest_assert_scalar(e.db,
	                    "SELECT string_agg(DISTINCT who || '/' || cur, ',') FROM ticks "
	                    "WHERE job = 'app'",
	                    APP "/" APP);
	ck_assert(itest_env_wait(&e, 10, "SELECT count(*) > 0 FROM ticks WHERE job = 'other'"));
	itest_assert_scalar(e.db,
	                    "SELECT string_agg(DISTINCT who, ',') FROM ticks "
	                    "WHERE job = 'other'",
	                    OTHER);

	/* pgcrond list shows it beside the file jobs */
	int status;
	char *out = itest_cli(&status, "list", "-c", e.conf, NULL);
	char *line = strstr(out, "\napp-tick ");
	char *eol = line ? strchr(line + 1, '\n') : NULL;
	if (eol)
		*eol = '\0';
	ck_assert_msg(status == 0 && line && strstr(line, " sql, role " APP ", jobid ") &&
	                  strstr(line, " 1 seconds ") && strstr(line, " yes "),
	              "%d %s", status, out);
	free(out);

	out = itest_cli(&status, "graph", "-c", e.conf, NULL);
	ck_assert_msg(status == 0 && strstr(out, "\"app-tick\""), "%d %s", status, out);
	free(out);

	/* APP sees only its own job and its own runs, with pg_cron's columns */
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT jobid || ' ' || jobname || ' ' || username || ' ' || database || ' ' "
	         "|| active FROM cron.job");
	char want[256];
	snprintf(want, sizeof(want), "%s app-tick " APP " " DB " true", id);
	free(id);
	itest_assert_scalar(app, sql, want);
	ck_assert_msg(itest_wait_sql(app,
	                             "SELECT count(*) > 0 FROM cron.job_run_details WHERE "
	                             "status = 'succeeded'",
	                             10),
	              "no finished run in cron.job_run_details");
	itest_assert_scalar(app,
	                    "SELECT string_agg(DISTINCT username || ' ' || database, ',')"
	                    " FROM cron.job_run_details",
	                    APP " " DB);
	/* nor can it change or remove another role's job */
	char *err = error_of(app, "SELECT cron.unschedule('other-tick')");
	ck_assert_str_eq(err, "could not find valid entry for job 'other-tick'");
	free(err);
	err = error_of(app, "SELECT cron.schedule('x', '*/0 * * * *', 'SELECT 1')");
	ck_assert_str_eq(err, "invalid schedule: */0 * * * *");
	free(err);
	/* a row written directly gets its jobid from the sequence, whatever it says */
	itest_assert_scalar(app,
	                    "WITH r AS (INSERT INTO cron.job (jobid, schedule, command, jobname)"
	                    " VALUES (999999, '@daily', 'SELECT 1', 'direct') RETURNING jobid)"
	                    " SELECT jobid < 999999 FROM r",
	                    "t");
	itest_exec(app, "SELECT cron.unschedule('direct')");
	err = error_of(app, "SELECT cron.alter_job(1, active := false)");
	ck_assert_str_eq(err, "permission denied for function alter_job");
	free(err);

	/* unscheduled at commit: no run starts after the daemon applied it */
	itest_assert_scalar(app, "SELECT cron.unschedule('app-tick')", "t");
	ck_assert_msg(itest_wait_log(e.log, "removed", 15), "the removal was not applied:\n%s",
	              itest_read_file(e.log));
	/* a run started just before the removal ends, and its row says so (0.5 s alone was a
	 * moment, which a loaded machine overran) */
	itest_sleep(0.5);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT NOT EXISTS (SELECT FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'app-tick'"
	                             " AND status IN ('starting', 'running'))"),
	              "a run of app-tick did not end:\n%s", itest_read_file(e.log));
	long long n = itest_env_count(&e, "SELECT count(*) FROM ticks WHERE job = 'app'");
	itest_sleep(2.5); /* a window: no run after the removal */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM ticks WHERE job = 'app'"), n);
	itest_assert_scalar(app, "SELECT count(*) FROM cron.job", "0");

	PQfinish(app);
	PQfinish(other);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	itest_env_teardown(&e);
}
END_TEST

/* Beside file jobs: a SQL job of the same name is another job; a superuser's
 * schedule_in_database runs a job in another database of the server, as its owner; a job
 * whose owner cannot log in is not run, and the log says what to configure. */
START_TEST(file_jobs_other_database_and_nologin)
{
	struct itest_env e;
	itest_env_init(&e, "sqljobs-more", DB);
	itest_env_job(
	    &e, "10-file.conf",
	    "job = { name = \"file-job\"; schedule = \"0 0 1 1 *\"; command = \"SELECT 1\"; };\n");
	setup_roles(&e);
	char *other_ci = itest_fresh_db(DB "_other");
	PGconn *other = itest_connect(other_ci);
	itest_exec(other, "CREATE TABLE ticks (job text, who text DEFAULT session_user);"
	                  "GRANT INSERT ON ticks TO PUBLIC");
	itest_env_start(&e);
	ck_assert(itest_wait_log(e.log, "jobs made in SQL changed", 10));
	PGconn *app = role_conn(&e, APP);

	/* names are unique per role, as in pg_cron: APP's own "file-job" is taken, and pgcrond
	 * names it by its jobid (job files own their names) */
	char *fid = itest_scalar(app, "SELECT cron.schedule('file-job', '0 0 1 1 *', 'SELECT 2')");
	char fq[160], fwant[64];
	snprintf(fq, sizeof(fq), "SELECT jobname FROM pgcrond.job WHERE jobid = %s", fid);
	snprintf(fwant, sizeof(fwant), "cron-job-%s", fid);
	itest_assert_scalar(e.db, fq, fwant);
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.job WHERE jobname = 'file-job'"
	                    " AND source = 'file'",
	                    "1");
	itest_exec(app, "SELECT cron.unschedule('file-job')");
	free(fid);
	/* the daemon's role, whose cron.job rows the file jobs are, cannot change one */
	char *err = error_of(e.db, "SELECT cron.schedule('file-job', '* * * * *', 'SELECT 2')");
	ck_assert_msg(strstr(err, "job \"file-job\" is defined in ") &&
	                  strstr(err, "10-file.conf:1; edit it there"),
	              "%s", err);
	free(err);
	/* listed in cron.job for the daemon's role, not for APP */
	itest_assert_scalar(e.db, "SELECT count(*) FROM cron.job WHERE jobname = 'file-job'", "1");
	itest_assert_scalar(app, "SELECT count(*) FROM cron.job", "0");
	/* a reload's file jobs reach the registry without pgcrond install */
	itest_env_job(
	    &e, "20-two.conf",
	    "job = { name = \"file-two\"; schedule = \"@daily\"; command = \"SELECT 2\"; };\n");
	/* a job file whose name is not UTF-8 (Latin-1 "caf\xe9"): its jobs are recorded, the name's
	 * stray byte shown as '?' */
	itest_env_job(
	    &e, "21-caf\xe9.conf",
	    "job = { name = \"file-three\"; schedule = \"@daily\"; command = \"SELECT 3\"; };\n");
	kill(e.pid, SIGHUP);
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pgcrond.job WHERE jobname = "
	                             "'file-three' AND defined_at LIKE '%%/21-caf?.conf:1'"),
	              "the job of a file named in Latin-1 is not in the registry:\n%s",
	              itest_read_file(e.log));
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) = 1 FROM pgcrond.job j JOIN cron.job c USING "
	                             "(jobid) WHERE j.jobname = 'file-two' AND j.source = 'file'"
	                             " AND j.defined_at LIKE '%%/20-two.conf:1'"),
	              "the reloaded file job is not in the registry:\n%s", itest_read_file(e.log));
	itest_assert_scalar(
	    e.db, "SELECT count(*) FROM pgcrond.view_status WHERE job_name = 'file-two'", "1");

	itest_exec(e.db,
	           "SELECT cron.schedule_in_database('elsewhere', '1 seconds',"
	           " $$INSERT INTO ticks (job) VALUES ('elsewhere')$$, '" DB "_other', '" APP "')");
	ck_assert_msg(itest_wait_sql(other, "SELECT count(*) > 0 FROM ticks", 10),
	              "the job did not run in the other database:\n%s", itest_read_file(e.log));
	itest_assert_scalar(other, "SELECT string_agg(DISTINCT who, ',') FROM ticks", APP);
	ck_assert(itest_wait_sql(app, "SELECT count(*) > 0 FROM cron.job_run_details", 10));
	itest_assert_scalar(app,
	                    "SELECT string_agg(DISTINCT database, ',') FROM cron.job_run_details",
	                    DB "_other");

	/* an owner who may not connect: the run fails saying what to configure */
	itest_exec(e.db,
	           "SELECT cron.schedule_in_database('locked-out', '1 seconds', 'SELECT 1', '" DB
	           "_other', '" OTHER "')");
	itest_exec(e.db, "REVOKE CONNECT ON DATABASE " DB "_other FROM PUBLIC");
	ck_assert_msg(
	    itest_env_wait(&e, 15,
	                   "SELECT count(*) > 0 FROM cron.job_run_details WHERE "
	                   "status = 'failed' AND username = '" OTHER "' AND return_message "
	                   "LIKE '%%HINT: this job runs logged in as its owner, role \"" OTHER
	                   "\": give it LOGIN and CONNECT on the database%%'"),
	    "%s", itest_read_file(e.log));
	itest_exec(e.db,
	           "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'locked-out'");

	/* the owner loses LOGIN: at the next read the job is left out, and the log says why */
	itest_exec(e.db, "ALTER ROLE " OTHER " NOLOGIN");
	itest_exec(e.db, "SELECT cron.schedule_in_database('nologin', '1 seconds', 'SELECT 1', '" DB
	                 "', '" APP "')");
	itest_exec(e.db, "UPDATE cron.job SET username = '" OTHER "' WHERE jobname = 'nologin'");
	ck_assert_msg(itest_wait_log(e.log,
	                             "its owner, role \"" OTHER "\", cannot log in; ALTER ROLE ... "
	                             "LOGIN",
	                             5),
	              "%s", itest_read_file(e.log));
	itest_exec(e.db, "ALTER ROLE " OTHER " LOGIN");

	PQfinish(app);
	PQfinish(other);
	free(other_ci);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	itest_env_teardown(&e);
}
END_TEST

/* pgcrond.schedule(): a job file's settings from SQL. Bad options are refused at the call;
 * good ones take effect (a timeout cancels the run); a job the daemon refuses (after a job
 * that does not exist) is logged and left out, and the others are applied all the same. */
START_TEST(native_schedule_with_options)
{
	struct itest_env e;
	setup(&e);
	itest_env_start(&e);
	ck_assert(itest_wait_log(e.log, "jobs made in SQL changed", 10));
	PGconn *app = role_conn(&e, APP);

	char *err = error_of(app, "SELECT pgcrond.schedule('x', '* * * * *', 'SELECT 1',"
	                          " '{\"retrys\": 3}')");
	ck_assert_msg(
	    strstr(err, "invalid options: unknown option \"retrys\"; the options are after, ") ==
	        err,
	    "%s", err);
	free(err);
	err = error_of(app, "SELECT pgcrond.schedule('x', '* * * * *', 'SELECT 1',"
	                    " '{\"timezone\": \"Mars/Base\"}')");
	ck_assert_str_eq(err,
	                 "invalid options: unknown timezone \"Mars/Base\"; use a name from the "
	                 "tz database like \"UTC\" or \"Europe/Berlin\"");
	free(err);
	/* what the daemon's job files refuse is refused here too, not left out later */
	static const struct {
		const char *options, *message;
	} refused[] = {
	    {"{\"timeout\": \"5 m\"}",
	     "timeout must be a duration like \"30s\", \"5m\", \"2h\" or \"7d\", not \"5 m\": "
	     "write "
	     "whole numbers with a unit (ms, s, m, h or d) and no spaces"},
	    {"{\"retry_delay\": \"30m1h\"}",
	     "retry_delay must be a duration like \"30s\", \"5m\", \"2h\" or \"7d\", not "
	     "\"30m1h\": "
	     "write the larger unit first, each once, like \"1h30m\""},
	    {"{\"max_staleness\": \"36501d\"}",
	     "max_staleness must be a duration like \"30s\", \"5m\", \"2h\" or \"7d\", not "
	     "\"36501d\": at most 100 years (\"36500d\")"},
	    {"{\"retry_backoff\": 1001}",
	     "retry_backoff must be a number from 1 to 1000, not 1001"},
	    {"{\"retries\": 1000000001}",
	     "retries must be a whole number from 0 to 1000000000, not 1000000001"},
	    /* freshness (docs/freshness.md): check_freshness's rules */
	    {"{\"freshness\": \"15 m\", \"sources\": [\"public.ticks\"]}",
	     "freshness must be a duration like \"30s\", \"5m\", \"2h\" or \"7d\", not \"15 m\": "
	     "write whole numbers with a unit (ms, s, m, h or d) and no spaces"},
	    {"{\"freshness\": \"500ms\", \"sources\": [\"public.ticks\"]}",
	     "freshness must be at least \"1s\", not \"500ms\"; the daemon cannot promise a "
	     "relation fresher than that"},
	    {"{\"freshness\": \"15m\", \"sources\": \"public.ticks\"}",
	     "sources must be an array of table names like [\"public.submissions\"], not "
	     "\"public.ticks\""},
	    {"{\"freshness\": \"15m\", \"sources\": [1]}",
	     "sources must be an array of table names like [\"public.submissions\"], not [1]"},
	    {"{\"freshness\": \"15m\", \"sources\": [\"ticks\"]}",
	     "source \"ticks\" is not a schema-qualified table name; write it as \"schema.table\" "
	     "in lower case (or a quoted part like \"public.\\\"Orders\\\"\"), e.g. "
	     "\"public.submissions\""},
	    {"{\"freshness\": \"15m\", \"sources\": [\"Public.Ticks\"]}",
	     "source \"Public.Ticks\" is not a schema-qualified table name; write it as "
	     "\"schema.table\" in lower case (or a quoted part like \"public.\\\"Orders\\\"\"), "
	     "e.g. \"public.submissions\""},
	    {"{\"freshness\": \"15m\", \"sources\": [\"public.ticks\", \"public.ticks\"]}",
	     "sources lists \"public.ticks\" twice; remove one"},
	    {"{\"sources\": [\"public.ticks\"]}",
	     "sources are read only for freshness; add \"freshness\": \"15m\" (the longest the "
	     "relation may lag its sources) or remove sources"},
	    /* spread (docs/calendars.md): its shape at the call, its fit by the daemon */
	    {"{\"spread\": \"1500ms\"}",
	     "spread must be whole seconds like \"30s\" or \"5m\", not \"1500ms\": a spread "
	     "is whole seconds"},
	    {"{\"history\": \"some\"}", "history must be one of all, failures, not \"some\""},
	    {"{\"spread\": \"30 s\"}",
	     "spread must be whole seconds like \"30s\" or \"5m\", not \"30 s\": write whole "
	     "numbers with a unit (ms, s, m, h or d) and no spaces"},
	    /* a calendar (docs/calendars.md): its name's shape and one of the two at the call,
	     * whether the main file has it by the daemon */
	    {"{\"skip_dates\": [\"holidays\"]}",
	     "skip_dates must be the name of a calendar of the daemon's main file (calendars = { "
	     "NAME = { ... }; }), like \"holidays\", not [\"holidays\"]"},
	    {"{\"skip_dates\": \"holidays\", \"only_dates\": \"closing\"}",
	     "a job takes one calendar: skip_dates or only_dates, not both; keep the dates to skip "
	     "out of the only_dates calendar"},
	    {"{\"freshness\": \"15m\"}",
	     "freshness needs to know what the job reads; add \"sources\": [\"schema.table\", "
	     "...] (the tables its command reads) or \"after\": [...] (the jobs whose relations "
	     "it reads)"},
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char sql[512], want[512];
		snprintf(sql, sizeof(sql),
		         "SELECT pgcrond.schedule('x', '* * * * *', 'SELECT 1', '%s')",
		         refused[i].options);
		snprintf(want, sizeof(want), "invalid options: %s", refused[i].message);
		err = error_of(app, sql);
		ck_assert_str_eq(err, want);
		free(err);
	}
	itest_assert_scalar(app,
	                    "SELECT pgcrond.schedule('fine', '@yearly', 'SELECT 1',"
	                    " '{\"timeout\": \"1h30m\", \"retry_backoff\": 1000}') > 0",
	                    "t");

	itest_assert_scalar(app,
	                    "SELECT pgcrond.schedule('orphan', '1 seconds', 'SELECT 1',"
	                    " '{\"after\": [\"no-such-job\"]}') > 0",
	                    "t");
	itest_assert_scalar(app,
	                    "SELECT pgcrond.schedule('slow', '2 seconds', 'SELECT pg_sleep(5)',"
	                    " '{\"timeout\": \"1s\", \"timezone\": \"Asia/Tokyo\"}') > 0",
	                    "t");
	ck_assert_msg(itest_wait_sql(
	                  app,
	                  "SELECT count(*) > 0 FROM cron.job_run_details WHERE "
	                  "status = 'failed' AND return_message LIKE 'ERROR:  timed out after 1s%'",
	                  10),
	              "the timeout did not apply:\n%s", itest_read_file(e.log));
	ck_assert_msg(
	    itest_wait_log(e.log,
	                   "job \"orphan\" runs after unknown job \"no-such-job\"; it is not "
	                   "run",
	                   5),
	    "%s", itest_read_file(e.log));
	itest_assert_scalar(e.db,
	                    "SELECT options->>'timezone' FROM pgcrond.job WHERE jobname = 'slow'",
	                    "Asia/Tokyo");

	/* the setting pgcrond install writes the file jobs' rows with skips the checks: any
	 * role may SET it, only the table's owner may use it */
	const char *bypass[] = {"INSERT INTO cron.job (jobid, schedule, command) VALUES (999999, "
	                        "'* * * * *', 'SELECT 1')",
	                        "UPDATE cron.job SET database = 'postgres' WHERE jobname = 'slow'",
	                        "DELETE FROM cron.job WHERE jobname = 'slow'"};
	for (size_t i = 0; i < sizeof(bypass) / sizeof(*bypass); i++) {
		char sql[512];
		snprintf(sql, sizeof(sql), "SET pgcrond.file_sync = 'on'; %s", bypass[i]);
		err = error_of(app, sql);
		ck_assert_msg(strcmp(err, "pgcrond.file_sync is reserved for pgcrond install") == 0,
		              "%s: %s", bypass[i], err);
		free(err);
		itest_exec(app, "RESET pgcrond.file_sync");
	}
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM cron.job WHERE jobname = 'slow' AND database = "
	                    "current_database()",
	                    "1");
	/* and what the call took, the daemon took too */
	ck_assert_msg(itest_wait_log(e.log, "sql jobs: added job \"fine\"", 5), "%s",
	              itest_read_file(e.log));

	/* a spread: list shows it with this job's move; one longer than the schedule's gaps is
	 * the daemon's to refuse, with the job file's words */
	itest_assert_scalar(app,
	                    "SELECT pgcrond.schedule('spread', '0 3 1 1 *', 'SELECT 1',"
	                    " '{\"spread\": \"30s\"}') > 0",
	                    "t");
	itest_assert_scalar(app,
	                    "SELECT pgcrond.schedule('spread-long', '* * * * *', 'SELECT 1',"
	                    " '{\"spread\": \"2m\"}') > 0",
	                    "t");
	ck_assert_msg(itest_wait_log(e.log, "sql jobs: added job \"spread\"", 5), "%s",
	              itest_read_file(e.log));
	ck_assert_msg(itest_wait_log(
	                  e.log, "spread \"120s\" is longer than the shortest time between two", 5),
	              "%s", itest_read_file(e.log));
	itest_assert_scalar(app,
	                    "SELECT pgcrond.schedule('no-calendar', '0 3 * * *', 'SELECT 1',"
	                    " '{\"skip_dates\": \"holidays\"}') > 0",
	                    "t");
	ck_assert_msg(itest_wait_log(e.log, "unknown calendar \"holidays\"; define it in ", 5),
	              "%s", itest_read_file(e.log));
	char shown[64];
	snprintf(shown, sizeof(shown), "0 3 1 1 *, spread 30s (+%ds)",
	         cron_spread_offset("spread", 30));
	int status;
	char *list = itest_cli(&status, "list", "-c", e.conf, NULL);
	ck_assert_msg(strstr(list, shown), "list does not show \"%s\":\n%s", shown, list);
	free(list);

	PQfinish(app);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	itest_env_teardown(&e);
}
END_TEST

/* The schedules cron.schedule accepts are exactly those `pgcrond next` (cron_parse) accepts:
 * a corpus of hand-picked expressions and a few thousand built from valid and broken fields. */
START_TEST(sql_validator_agrees_with_cron_parse)
{
	static const char *const special[] = {
	    "",
	    " ",
	    "\t",
	    "@daily",
	    "@DAILY",
	    "@restart",
	    "@reboot",
	    "@yearly",
	    "@annually",
	    "@monthly",
	    "@weekly",
	    "@midnight",
	    "@hourly",
	    "@foo",
	    "@daily x",
	    "@",
	    "1 seconds",
	    "59 seconds",
	    "60 seconds",
	    "0 seconds",
	    "10seconds",
	    "5 second",
	    "5 Seconds",
	    "x seconds",
	    "5 minutes",
	    "1",
	    "* * * *",
	    "* * * * * * *",
	    "0 0 $ * *",
	    "0 0 $ 2 *",
	    "0 0 1,$ * *",
	    "*/30 * * * * *",
	    " 0  3\t* * * ",
	    "0 0 30 2 *",
	    "5/15 * * * *",
	    "1-5/ * * * *",
	    "*/2147483648 * * * *",
	    "*/2147483647 * * * *",
	    "0 0 1 January *",
	    "0 0 * * Sunday",
	    "0 0 * jan-dec sun-sat",
	    "0 0 * * 0-7",
	    "0 0 * * 8",
	};
	static const char *const pool[] = {
	    "*",      "*/5",     "*/0",     "0",   "59",      "60",  "1-5", "5-1",     "1-5/2",
	    "5/15",   "jan",     "JAN-mar", "sun", "mon-fri", "7",   "8",   "$",       "1,2,3",
	    "1,,2",   "a",       "*/",      "-1",  "1-",      "0x1", "*-5", "30",      "12",
	    "13",     "23",      "24",      "31",  "32",      "1,",  ",1",  "0-59/15", "sat-sun",
	    "*/1000", "Feb,Aug", "1-31",    "00",  "007",
	};
	struct itest_env e;
	itest_env_init(&e, "sqljobs-corpus", DB);
	install(&e);

	size_t npool = sizeof(pool) / sizeof(pool[0]),
	       nspecial = sizeof(special) / sizeof(special[0]);
	unsigned long long seed = 11, accepted = 0, total = 0, six_said = 0;
	for (size_t i = 0; i < nspecial + 3000; i++) {
		char expr[256];
		if (i < nspecial) {
			snprintf(expr, sizeof(expr), "%s", special[i]);
		} else {
			int fields = 5 + (int)(i % 2), o = 0;
			for (int f = 0; f < fields; f++) {
				seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
				/* mostly valid-looking fields, so whole expressions pass often */
				size_t pick = (seed >> 33) % (npool * 2);
				const char *tok =
				    pick >= npool ? (f == 2 ? "1-5" : "*") : pool[pick];
				o += snprintf(expr + o, sizeof(expr) - (size_t)o, "%s%s",
				              f ? " " : "", tok);
			}
		}
		cron_expr ce;
		bool c_ok = cron_parse(expr, &ce, NULL, 0) == 0;
		const char *p[] = {expr};
		PGresult *r = PQexecParams(e.db, "SELECT pgcrond.schedule_problem($1)", 1, NULL, p,
		                           NULL, NULL, 0);
		ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
		bool sql_ok = PQgetisnull(r, 0, 0);
		ck_assert_msg(c_ok == sql_ok,
		              "\"%s\": pgcrond next %s it, cron.schedule %s it (%s)", expr,
		              c_ok ? "accepts" : "refuses", sql_ok ? "accepts" : "refuses",
		              sql_ok ? "" : PQgetvalue(r, 0, 0));
		PQclear(r);
		/* a six-field schedule is said alike by cron.schedule's NOTICE and by pgcrond
		 * import and check */
		struct cron_six six;
		char c_note[sizeof(six.what) + sizeof(six.hint) + 2] = "";
		if (cron_six_fields(expr, &six))
			snprintf(c_note, sizeof(c_note), "%s\n%s", six.what, six.hint);
		r = PQexecParams(e.db,
		                 "SELECT coalesce(n[1] || E'\\n' || n[2], '')"
		                 " FROM pgcrond.six_fields_note($1) n",
		                 1, NULL, p, NULL, NULL, 0);
		ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
		ck_assert_msg(strcmp(c_note, PQgetvalue(r, 0, 0)) == 0,
		              "\"%s\": pgcrond import and check say\n%s\ncron.schedule says\n%s",
		              expr, c_note, PQgetvalue(r, 0, 0));
		six_said += c_note[0] != '\0';
		PQclear(r);
		accepted += c_ok;
		total++;
	}
	/* the corpus exercises both sides */
	ck_assert_msg(accepted > total / 10 && accepted < total * 9 / 10, "%llu of %llu accepted",
	              accepted, total);
	ck_assert_msg(six_said > 50, "only %llu six-field schedules said", six_said);
	itest_env_teardown(&e);
}
END_TEST

/* The notices a connection receives, as "SEVERITY: message" and "HINT: hint" lines. */
struct notices {
	char text[8192];
	size_t len;
};

static void collect_notice(void *arg, const PGresult *r)
{
	struct notices *n = arg;
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	const char *hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
	int w =
	    snprintf(n->text + n->len, sizeof(n->text) - n->len, "%s: %s\n%s%s%s", sev ? sev : "?",
	             msg ? msg : "", hint ? "HINT: " : "", hint ? hint : "", hint ? "\n" : "");
	if (w > 0 && (size_t)w < sizeof(n->text) - n->len)
		n->len += (size_t)w;
}

/* SQL's notices on C (SQL must succeed), malloc'd. */
static char *notices_of(PGconn *c, const char *sql)
{
	struct notices n = {.len = 0};
	n.text[0] = '\0';
	PQnoticeReceiver old = PQsetNoticeReceiver(c, collect_notice, &n);
	PGresult *r = PQexec(c, sql);
	PQsetNoticeReceiver(c, old, NULL);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK,
	              "%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return strdup(n.text);
}

/* A six-field schedule given to pg_cron's API: pgcrond keeps its reading (seconds
 * first) and says, in a NOTICE, how pg_cron would read it and what to write so that both read
 * it alike: cron.schedule (both forms), cron.schedule_in_database, cron.alter_job; five
 * fields and "N seconds" pass without a word. */
#define SIX_30                                                                                     \
	"NOTICE: schedule \"*/30 * * * * *\" has six fields: pgcrond reads the first as seconds "  \
	"(every 30 seconds); pg_cron ignores a sixth field (every 30 minutes)\n"                   \
	"HINT: So that both read it alike, write \"*/30 * * * *\" for pg_cron's reading or \"30 "  \
	"seconds\" for pgcrond's.\n"
START_TEST(six_fields_said_at_the_call)
{
	struct itest_env e;
	setup(&e);
	PGconn *app = role_conn(&e, APP);

	char *n = notices_of(app, "SELECT cron.schedule('half', '*/30 * * * * *', 'SELECT 1')");
	ck_assert_str_eq(n, SIX_30);
	free(n);
	n = notices_of(app, "SELECT cron.schedule('*/30 * * * * *', 'SELECT 2')");
	ck_assert_str_eq(n, SIX_30);
	free(n);
	/* kept as written: pgcrond runs it every 30 seconds */
	itest_assert_scalar(app, "SELECT string_agg(schedule, ',') FROM cron.job",
	                    "*/30 * * * * *,"
	                    "*/30 * * * * *");
	itest_exec(e.db, "SET client_min_messages = notice");
	n = notices_of(e.db,
	               "SELECT cron.schedule_in_database('there', '0 15 10 * * 1', 'SELECT 3',"
	               " '" DB "', '" APP "')");
	ck_assert_str_eq(n, "NOTICE: schedule \"0 15 10 * * 1\" has six fields: pgcrond reads the "
	                    "first as seconds (second 0 of \"15 10 * * 1\"); pg_cron ignores a "
	                    "sixth field (as \"0 15 10 * *\")\n"
	                    "HINT: So that both read it alike, write \"0 15 10 * *\" for pg_cron's "
	                    "reading or \"15 10 * * 1\" for pgcrond's.\n");
	free(n);
	n = notices_of(e.db, "SELECT cron.alter_job((SELECT jobid FROM cron.job WHERE jobname ="
	                     " 'half'), schedule := ' 0 0 0 * * * ')");
	ck_assert_str_eq(n, "NOTICE: schedule \"0 0 0 * * *\" has six fields: pgcrond reads the "
	                    "first as seconds (second 0 of \"0 0 * * *\"); pg_cron ignores a sixth "
	                    "field (as \"0 0 0 * *\", which is no valid schedule)\n"
	                    "HINT: So that both read it alike, write \"0 0 * * *\" for pgcrond's "
	                    "reading.\n");
	free(n);
	/* nothing to say */
	const char *quiet[] = {
	    "SELECT cron.schedule('five', '*/30 * * * *', 'SELECT 4')",
	    "SELECT cron.schedule('secs', '30 seconds', 'SELECT 5')",
	    "SELECT cron.schedule('daily', '@daily', 'SELECT 6')",
	    "SELECT cron.alter_job((SELECT jobid FROM cron.job WHERE jobname = 'half'),"
	    " command := 'SELECT 7')",
	};
	for (size_t i = 0; i < sizeof(quiet) / sizeof(quiet[0]); i++) {
		n = notices_of(i < 3 ? app : e.db, quiet[i]);
		ck_assert_msg(n[0] == '\0', "%s: %s", quiet[i], n);
		free(n);
	}
	PQfinish(app);
	itest_env_teardown(&e);
}
END_TEST

/* `pgcrond history JOB` of a job made in SQL that has not run yet: it
 * knows the job from pgcrond.job (not from the files), by pgcrond's name, by the jobid and
 * by the name given to cron.schedule, and says it has no runs yet, whose it is and when it
 * fires next; an inactive one says so; --failed; a name no job has. No daemon runs. */
START_TEST(history_of_a_sql_job_not_run_yet)
{
	struct itest_env e;
	int status;
	char sql[512], want[1024];
	setup(&e);
	PGconn *app = role_conn(&e, APP);
	long long later = itest_scalar_ll(app, "SELECT cron.schedule('later', '0 0 29 2 *', "
	                                       "'SELECT 1')");
	long long unnamed = itest_scalar_ll(app, "SELECT cron.schedule('0 0 29 2 *', 'SELECT 2')");
	itest_exec(e.db, "SELECT cron.schedule_in_database('off', '0 0 29 2 *', 'SELECT 3', '" DB
	                 "', '" APP "', false)");
	/* the next Feb 29 at midnight UTC, as pgcrond list says it */
	cron_expr ce;
	ck_assert_int_eq(cron_parse("0 0 29 2 *", &ce, NULL, 0), 0);
	char next[CRON_TIME_BUFSZ];
	ck_assert_int_eq(
	    cron_time_format(cron_next(&ce, NULL, (int64_t)time(NULL)), next, sizeof(next)), 0);

	char *out = itest_cli(&status, "history", "-c", e.conf, "later", NULL);
	snprintf(want, sizeof(want),
	         "no runs of \"later\" recorded yet: a job made in SQL by role \"" APP
	         "\", jobid %lld, schedule \"0 0 29 2 *\", next fire %s\n",
	         later, next);
	ck_assert_msg(status == 0 && strcmp(out, want) == 0, "%d %s", status, out);
	free(out);
	/* the unnamed one, by its jobid and by pgcrond's name of it */
	char id[32], name[64];
	snprintf(id, sizeof(id), "%lld", unnamed);
	snprintf(name, sizeof(name), "cron-job-%lld", unnamed);
	snprintf(want, sizeof(want),
	         "no runs of \"%s\" recorded yet: a job made in SQL by role \"" APP
	         "\", jobid %lld, schedule \"0 0 29 2 *\", next fire %s\n",
	         name, unnamed, next);
	const char *by[] = {id, name};
	for (int i = 0; i < 2; i++) {
		out = itest_cli(&status, "history", "-c", e.conf, by[i], NULL);
		ck_assert_msg(status == 0 && strcmp(out, want) == 0, "%s: %d %s", by[i], status,
		              out);
		free(out);
	}
	out = itest_cli(&status, "history", "-c", e.conf, "off", NULL);
	ck_assert_msg(status == 0 &&
	                  strstr(out, "no runs of \"off\" recorded yet: a job made in "
	                              "SQL by role \"" APP "\", jobid ") &&
	                  strstr(out, ", schedule \"0 0 29 2 *\", inactive (its active is false "
	                              "in cron.job)\n"),
	              "%d %s", status, out);
	free(out);
	out = itest_cli(&status, "history", "-c", e.conf, "--failed", "later", NULL);
	snprintf(want, sizeof(want),
	         "no failed runs of \"later\" recorded (a job made in SQL by role \"" APP
	         "\", jobid %lld)\n",
	         later);
	ck_assert_msg(status == 0 && strcmp(out, want) == 0, "%d %s", status, out);
	free(out);
	out = itest_cli(&status, "history", "-c", e.conf, "nosuch", NULL);
	ck_assert_msg(status == 64 &&
	                  strcmp(out,
	                         "pgcrond history: no job \"nosuch\" is configured and none "
	                         "of its runs is recorded; 'pgcrond list' lists the jobs\n") == 0,
	              "%d %s", status, out);
	free(out);
	/* once unscheduled, the name is no job's */
	snprintf(sql, sizeof(sql), "SELECT cron.unschedule(%lld)", later);
	itest_exec(app, sql);
	out = itest_cli(&status, "history", "-c", e.conf, "later", NULL);
	ck_assert_msg(status == 64 && strstr(out, "no job \"later\" is configured"), "%d %s",
	              status, out);
	free(out);
	PQfinish(app);
	itest_env_teardown(&e);
}
END_TEST

/* Job names as pg_cron users have them: spaces, "&", non-ASCII, 63 bytes, a
 * longer one (cut to 63 bytes, as pg_cron's name column cuts it), and "cleanup" for two
 * roles: each is scheduled, listed (cron.job, pgcrond list, pgcrond status), run (a row in
 * cron.job_run_details), triggered by the name as written and unscheduled by name. pgcrond's
 * own name of each follows docs/sql-api.md, "Job names". */
#define NAME63 "nettoyage-" /* 10 */ "0123456789012345678901234567890123456789012345678901x"
START_TEST(pg_cron_job_names)
{
	struct itest_env e;
	setup(&e);
	PGconn *app = role_conn(&e, APP), *other = role_conn(&e, OTHER);
	itest_env_start(&e);
	ck_assert(itest_wait_log(e.log, "jobs made in SQL changed", 10));
	ck_assert_int_eq((int)strlen(NAME63), 63);

	static const char *const names[] = {
	    "Job Run Details Maintenance",
	    "User Checkout & Session Maintenance",
	    "nettoyage \xc3\xa9tape 2",
	    NAME63,
	};
	char sql[1024], ids[4][24];
	for (int i = 0; i < 4; i++) {
		const char *p[] = {names[i], i == 0 ? "0 0 1 1 *" : "1 seconds"};
		snprintf(sql, sizeof(sql), "INSERT INTO ticks (job) VALUES ('n%d')", i);
		const char *pp[] = {p[0], p[1], sql};
		PGresult *r = PQexecParams(app, "SELECT cron.schedule($1, $2, $3)", 3, NULL, pp,
		                           NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "cron.schedule('%s'): %s",
		              names[i], PQresultErrorMessage(r));
		snprintf(ids[i], sizeof(ids[i]), "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
		/* listed in cron.job as written; pgcrond's name: the jobid's, or its own */
		const char *q[] = {ids[i]};
		r = PQexecParams(
		    e.db,
		    "SELECT c.jobname || '|' || j.jobname || '|' || j.cron_jobname"
		    "  FROM cron.job c JOIN pgcrond.job j USING (jobid) WHERE jobid = $1",
		    1, NULL, q, NULL, NULL, 0);
		char want[300];
		snprintf(want, sizeof(want), "%s|%s%s|%s", names[i], i == 3 ? "" : "cron-job-",
		         i == 3 ? NAME63 : ids[i], names[i]);
		ck_assert_msg(PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), want) == 0,
		              "got %s, want %s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "nothing",
		              want);
		PQclear(r);
	}
	/* longer than a name: cut to 63 bytes on a character boundary, as under pg_cron (a
	 * 62-byte prefix and a two-byte character do not fit) */
	itest_exec(app, "SELECT cron.schedule(repeat('x', 62) || 'éé', '0 0 1 1 *', 'SELECT 1')");
	itest_assert_scalar(
	    app, "SELECT octet_length(jobname) FROM cron.job WHERE jobname LIKE 'xxx%'", "62");
	itest_assert_scalar(app, "SELECT cron.unschedule(repeat('x', 62) || 'éé')", "t");
	/* "cleanup" for two roles, as pg_cron allows; again by the same role: the same job */
	char *c1 = itest_scalar(app, "SELECT cron.schedule('cleanup', '0 0 1 1 *',"
	                             " $$INSERT INTO ticks (job) VALUES ('c1')$$)");
	char *c2 = itest_scalar(other, "SELECT cron.schedule('cleanup', '0 0 1 1 *',"
	                               " $$INSERT INTO ticks (job) VALUES ('c2')$$)");
	char *c1b = itest_scalar(app, "SELECT cron.schedule('cleanup', '0 0 1 2 *',"
	                              " $$INSERT INTO ticks (job) VALUES ('c1')$$)");
	ck_assert_str_eq(c1, c1b);
	snprintf(sql, sizeof(sql),
	         "SELECT string_agg(jobname, ',' ORDER BY jobid) FROM pgcrond.job"
	         " WHERE jobid IN (%s, %s)",
	         c1, c2);
	char want[128];
	snprintf(want, sizeof(want), "cleanup,cron-job-%s", c2);
	itest_assert_scalar(e.db, sql, want);

	/* each runs, and its runs are in cron.job_run_details under its jobid */
	for (int i = 1; i < 4; i++) {
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) > 0 FROM cron.job_run_details WHERE jobid = %s"
		         " AND status = 'succeeded'",
		         ids[i]);
		ck_assert_msg(itest_wait_sql(app, sql, 15), "%s did not run:\n%s", names[i],
		              itest_read_file(e.log));
	}
	/* pgcrond list: pgcrond's name, and the name as written */
	int status;
	char *out = itest_cli(&status, "list", "-c", e.conf, NULL);
	char line[200];
	snprintf(line, sizeof(line), "cron-job-%s ", ids[1]);
	ck_assert_msg(status == 0 && strstr(out, line) &&
	                  strstr(out, "named \"User Checkout & Session Maintenance\"") &&
	                  strstr(out, "named \"nettoyage \xc3\xa9tape 2\""),
	              "%d %s", status, out);
	free(out);

	/* triggered by the name as written: it runs once, now */
	out = itest_cli(&status, "trigger", "--wait", "-c", e.conf, "Job Run Details Maintenance",
	                NULL);
	snprintf(line, sizeof(line), "cron-job-%s succeeded", ids[0]);
	ck_assert_msg(status == 0 && strstr(out, line), "%d %s", status, out);
	free(out);
	itest_assert_scalar(e.db, "SELECT count(*) FROM ticks WHERE job = 'n0'", "1");
	/* status and history take it too, and show both names */
	out = itest_cli(&status, "status", "-c", e.conf, "Job Run Details Maintenance", NULL);
	ck_assert_msg(status == 0 && strstr(out, "named:        \"Job Run Details Maintenance\""),
	              "%d %s", status, out);
	free(out);
	out = itest_cli(&status, "status", "--json", "-c", e.conf, ids[0], NULL);
	ck_assert_msg(status == 0 && strstr(out, "\"cron_name\": \"Job Run Details Maintenance\""),
	              "%d %s", status, out);
	free(out);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) > 0 FROM cron.job_run_details WHERE jobid = %s"
	         " AND status = 'succeeded'",
	         ids[0]);
	ck_assert_msg(itest_wait_sql(app, sql, 10), "the manual run is not in the history:\n%s",
	              itest_read_file(e.log));
	out = itest_cli(&status, "history", "-c", e.conf, "Job Run Details Maintenance", NULL);
	snprintf(line, sizeof(line), "cron-job-%s", ids[0]);
	ck_assert_msg(status == 0 && strstr(out, line) && strstr(out, "succeeded"), "%d %s", status,
	              out);
	free(out);
	/* two roles' "cleanup": ambiguous, both listed with their jobids */
	out = itest_cli(&status, "trigger", "-c", e.conf, "cleanup", NULL);
	char j1[32], j2[32];
	snprintf(j1, sizeof(j1), "jobid %s ", c1);
	snprintf(j2, sizeof(j2), "jobid %s ", c2);
	ck_assert_msg(status == 64 && strstr(out, "ambiguous") && strstr(out, j1) &&
	                  strstr(out, j2),
	              "%d %s", status, out);
	free(out);
	out = itest_cli(&status, "pause", "-c", e.conf, "cleanup", NULL);
	ck_assert_msg(status == 64 && strstr(out, "ambiguous"), "%d %s", status, out);
	free(out);
	out = itest_cli(&status, "trigger", "--wait", "-c", e.conf, c2, NULL);
	ck_assert_msg(status == 0, "%d %s", status, out);
	free(out);
	itest_assert_scalar(e.db, "SELECT string_agg(who, ',') FROM ticks WHERE job = 'c2'", OTHER);
	/* unscheduled by name, each */
	for (int i = 0; i < 4; i++) {
		const char *p[] = {names[i]};
		PGresult *r =
		    PQexecParams(app, "SELECT cron.unschedule($1)", 1, NULL, p, NULL, NULL, 0);
		ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK &&
		                  strcmp(PQgetvalue(r, 0, 0), "t") == 0,
		              "cron.unschedule('%s'): %s", names[i], PQresultErrorMessage(r));
		PQclear(r);
	}
	itest_assert_scalar(app, "SELECT cron.unschedule('cleanup')", "t");
	itest_assert_scalar(app, "SELECT count(*) FROM cron.job", "0");
	itest_assert_scalar(other, "SELECT count(*) FROM cron.job", "1");
	free(c1);
	free(c2);
	free(c1b);
	PQfinish(app);
	PQfinish(other);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	itest_env_teardown(&e);
}
END_TEST

/* Recurrence rules through pg_cron's API (sql/pgcrond--26.sql, --31.sql): cron.schedule,
 * alter_job and pgcrond.schedule take a rule whose shape and values are right, and the daemon's
 * parser (the job files') decides the rest: every rule `pgcrond next` accepts passes at the
 * call, a rule refused at the call is refused by `pgcrond next` too, and a value out of its
 * range (BYHOUR=25) is refused at the call in the parser's words; a rule that needs the whole
 * rule to be refused (BYMONTHDAY with FREQ=WEEKLY) passes at the call and the daemon leaves the
 * job out, as it does for a cron schedule that never fires (0 0 30 2 *): it says why once in
 * its log, and list, next --job, status, trigger and history say it too; a good rule runs at
 * its instants, and `pgcrond list` shows its next fire; a rule says no NOTICE. */
START_TEST(recurrence_rules_through_sql)
{
	static const char *const shapes[] = {
	    "RRULE:FREQ=DAILY",
	    "rrule:freq=weekly;byday=mo",
	    " RRULE:FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=18 ",
	    "RRULE:",
	    "RRULE:BYHOUR=1",
	    "RRULE:FREQ=DAILY;",
	    "RRULE:FREQ=DAILY;;BYHOUR=1",
	    "RRULE:FREQ=DAILY; BYHOUR=1",
	    "RRULE:FREQ=DAILY;COUNT=3",
	    "RRULE:FREQ=DAILY;BYHOURS=2",
	    "RRULE:FREQ=DAILY;BYHOUR=1;BYHOUR=2",
	    "RRULE:FREQ=DAILY;BYHOUR",
	    "RRULE:FREQ=DAILY;BYHOUR=25",
	    "RRULE:FREQ=FORTNIGHTLY",
	    "RRULE:FREQ=DAILY;UNTIL=20261231",
	    "RRULE:FREQ=DAILY;UNTIL=20261231T000000Z",
	    "RRULE:FREQ=WEEKLY;BYMONTHDAY=2",
	    "RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
	    "RRULE:FREQ=DAILY;BYHOUR=1\nBYMINUTE=2",
	};
	struct itest_env e;
	setup(&e);
	size_t nshapes = sizeof(shapes) / sizeof(*shapes),
	       ntable = sizeof(rrule_cases) / sizeof(*rrule_cases);
	int sql_refused = 0;
	for (size_t i = 0; i < nshapes + ntable; i++) {
		const char *rule = i < nshapes ? shapes[i] : rrule_cases[i - nshapes].rule;
		cron_expr ce;
		char c_err[512];
		bool c_ok = cron_parse(rule, &ce, c_err, sizeof(c_err)) == 0;
		const char *p[] = {rule};
		PGresult *r = PQexecParams(e.db, "SELECT pgcrond.schedule_problem($1)", 1, NULL, p,
		                           NULL, NULL, 0);
		ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
		bool sql_ok = PQgetisnull(r, 0, 0);
		ck_assert_msg(sql_ok || !c_ok,
		              "\"%s\": pgcrond next accepts it, cron.schedule refuses it (%s)",
		              rule, PQgetvalue(r, 0, 0));
		/* a value out of its range: refused at the call, in the same words */
		ck_assert_msg(c_ok || !strstr(c_err, " takes ") ||
		                  (!sql_ok && strstr(c_err, PQgetvalue(r, 0, 0))),
		              "\"%s\": pgcrond next says %s, cron.schedule says %s", rule, c_err,
		              sql_ok ? "nothing" : PQgetvalue(r, 0, 0));
		sql_refused += !sql_ok;
		PQclear(r);
	}
	ck_assert_int_ge(sql_refused, 8);

	PGconn *app = role_conn(&e, APP);
	/* refused at the call, the part named in the DETAIL */
	PGresult *r = PQexec(app, "SELECT cron.schedule('rr-count', 'RRULE:FREQ=DAILY;COUNT=3',"
	                          " 'SELECT 1')");
	ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY),
	                 "invalid schedule: RRULE:FREQ=DAILY;COUNT=3");
	ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL),
	                 "COUNT counts fires from the rule's start, 1970-01-01 for pgcrond; end "
	                 "the rule with UNTIL instead");
	PQclear(r);
	char *err = error_of(app, "SELECT pgcrond.schedule('rr-twice',"
	                          " 'RRULE:FREQ=DAILY;BYHOUR=1;BYHOUR=2', 'SELECT 1')");
	ck_assert_str_eq(err, "invalid schedule: RRULE:FREQ=DAILY;BYHOUR=1;BYHOUR=2");
	free(err);

	/* taken at the call, without a word */
	char *n =
	    notices_of(app, "SELECT cron.schedule('rr-tick', 'RRULE:FREQ=SECONDLY;INTERVAL=2',"
	                    " $$INSERT INTO ticks (job) VALUES ('rr-tick')$$)");
	ck_assert_msg(n[0] == '\0', "%s", n);
	free(n);
	itest_assert_scalar(
	    app,
	    "SELECT pgcrond.schedule('rr-berlin', 'RRULE:FREQ=WEEKLY;BYDAY=MO;"
	    "BYHOUR=6;BYMINUTE=30', 'SELECT 1', '{\"timezone\": \"Europe/Berlin\"}')"
	    " > 0",
	    "t");
	/* a value out of range, refused at the call as pg_cron refuses a bad schedule */
	r = PQexec(app, "SELECT cron.schedule('rr-25', 'RRULE:FREQ=DAILY;BYHOUR=25', 'SELECT 1')");
	ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL),
	                 "BYHOUR=25: BYHOUR takes hours 0-23, separated by commas");
	PQclear(r);
	/* the daemon's to refuse: a part its FREQ does not take, as a day no month has */
	long long bad = itest_scalar_ll(app, "SELECT cron.schedule('rr-bad',"
	                                     " 'RRULE:FREQ=WEEKLY;BYMONTHDAY=2', 'SELECT 1')");
	long long feb30 =
	    itest_scalar_ll(app, "SELECT cron.schedule('feb-30', '0 0 30 2 *', 'SELECT 1')");
	itest_env_start(&e);
	char want[512], why[300];
	snprintf(why, sizeof(why),
	         "schedule \"RRULE:FREQ=WEEKLY;BYMONTHDAY=2\": BYMONTHDAY does not go with "
	         "FREQ=WEEKLY; use FREQ=MONTHLY or BYDAY (column 7)");
	snprintf(want, sizeof(want), "job \"rr-bad\" (jobid %lld, role \"" APP "\") is not run: %s",
	         bad, why);
	ck_assert_msg(itest_wait_log(e.log, want, 15), "no \"%s\" in:\n%s", want,
	              itest_read_file(e.log));
	char feb[300];
	snprintf(feb, sizeof(feb),
	         "job \"feb-30\" (jobid %lld, role \"" APP
	         "\") is not run: schedule \"0 0 30 2 *\" never fires",
	         feb30);
	ck_assert_msg(itest_wait_log(e.log, feb, 5), "no \"%s\" in:\n%s", feb,
	              itest_read_file(e.log));
	/* every command that names it says why, as the daemon last said it; the log said it
	 * once, not again at the next change of the jobs made in SQL */
	itest_exec(app, "SELECT cron.schedule('rr-other', '0 0 1 1 *', 'SELECT 1')");
	ck_assert_msg(itest_wait_log(e.log, "sql jobs: added job \"rr-other\"", 15), "%s",
	              itest_tail(e.log));
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT refused = $$%s$$ FROM pgcrond.job"
	                             " WHERE jobname = 'rr-bad'",
	                             why),
	              "pgcrond.job.refused of rr-bad:\n%s", itest_tail(e.log));
	ck_assert_int_eq(itest_count_in_file(e.log, want), 1);
	int status;
	char *out = itest_cli(&status, "list", "-c", e.conf, NULL);
	char list_line[400];
	snprintf(list_line, sizeof(list_line), "not run: %s\n", why);
	ck_assert_msg(status == 0 && strstr(out, list_line), "list:\n%s", out);
	free(out);
	const char *cmds[][3] = {{"next", "--job", "rr-bad"},
	                         {"status", "rr-bad", NULL},
	                         {"trigger", "rr-bad", NULL},
	                         {"pause", "rr-bad", NULL}};
	for (int i = 0; i < 4; i++) {
		out = itest_cli(&status, cmds[i][0], "-c", e.conf, cmds[i][1], cmds[i][2], NULL);
		ck_assert_msg(status == 65 && strstr(out, want), "pgcrond %s %s: %d\n%s",
		              cmds[i][0], cmds[i][1], status, out);
		free(out);
	}
	out = itest_cli(&status, "history", "-c", e.conf, "rr-bad", NULL);
	snprintf(list_line, sizeof(list_line), "not run: %s\n", why);
	ck_assert_msg(status == 0 && strstr(out, list_line), "history rr-bad:\n%s", out);
	free(out);

	/* the rule runs at its instants: even seconds */
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) >= 2 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'rr-tick' AND status = 'succeeded'"),
	              "rr-tick did not run:\n%s", itest_read_file(e.log));
	itest_assert_scalar(e.db,
	                    "SELECT bool_and(extract(epoch FROM scheduled_time)::bigint % 2 = 0)"
	                    " FROM pgcrond.job_run_details WHERE job_name = 'rr-tick'",
	                    "t");
	ck_assert_int_ge(itest_env_count(&e, "SELECT count(*) FROM ticks WHERE job = 'rr-tick'"),
	                 2);

	/* cron.alter_job to a rule: list shows the rule and its next fire, in the job's zone */
	itest_exec(e.db, "SELECT cron.alter_job((SELECT jobid FROM cron.job WHERE jobname ="
	                 " 'rr-bad'), schedule := 'RRULE:FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=18')");
	ck_assert_msg(itest_wait_log(e.log, "sql jobs: added job \"rr-bad\"", 15), "%s",
	              itest_read_file(e.log));
	out = itest_cli(&status, "list", "-c", e.conf, NULL);
	ck_assert_int_eq(status, 0);
	const char *rules[][3] = {
	    {"rr-bad", "RRULE:FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=18", "UTC"},
	    {"rr-berlin", "RRULE:FREQ=WEEKLY;BYDAY=MO;BYHOUR=6;BYMINUTE=30", "Europe/Berlin"},
	};
	for (int i = 0; i < 2; i++) {
		cron_expr ce;
		cron_tz *tz = NULL;
		char next[CRON_TIME_BUFSZ], line[256];
		ck_assert_int_eq(cron_parse(rules[i][1], &ce, NULL, 0), 0);
		ck_assert_int_eq(cron_tz_open(rules[i][2], &tz, NULL, 0), 0);
		ck_assert_int_eq(
		    cron_time_format(cron_next(&ce, tz, (int64_t)time(NULL)), next, sizeof(next)),
		    0);
		cron_tz_free(&tz);
		snprintf(line, sizeof(line), "\n%s ", rules[i][0]);
		char *at = strstr(out, line);
		ck_assert_msg(at, "list has no %s:\n%s", rules[i][0], out);
		char *eol = strchr(at + 1, '\n');
		ck_assert_msg(
		    eol && memmem(at, (size_t)(eol - at), rules[i][1], strlen(rules[i][1])) &&
		        memmem(at, (size_t)(eol - at), next, strlen(next)),
		    "list shows %s without %s and %s:\n%s", rules[i][0], rules[i][1], next, out);
	}
	free(out);
	PQfinish(app);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);
	itest_env_teardown(&e);
}
END_TEST

/* A burst of notifications costs one read of the jobs made in SQL: 50 notifications committed
 * together (a cron.schedule among them) come to the daemon at once, and the one read they queue,
 * sent after them, sees what they committed; it read the jobs twice (the read queued counted as
 * one in flight, which a notification must be followed by: its snapshot may be older). The
 * reads counted by the server's log. */
START_TEST(notifications_burst_costs_one_read)
{
	struct itest_env e;
	itest_env_init(&e, "sqljobs-burst", BURST_DB);
	install(&e);
	itest_exec(e.db, "ALTER DATABASE " BURST_DB " SET log_statement = 'all'");
	itest_env_start(&e);
	ck_assert_msg(itest_wait_log(e.log, "jobs made in SQL changed", 10),
	              "the daemon did not read the SQL jobs:\n%s", itest_tail(e.log));
	char *log = itest_server_log();
	long from = itest_file_size(log);
	itest_exec(e.db, "BEGIN;"
	                 " SELECT cron.schedule('burst', '1 seconds', 'SELECT 1');"
	                 " SELECT pg_catalog.pg_notify('pgcrond_jobs', g::text)"
	                 "   FROM pg_catalog.generate_series(1, 50) g;"
	                 " COMMIT");
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT count(*) > 0 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'burst'"),
	              "the job scheduled did not run:\n%s", itest_tail(e.log));
	itest_sleep(1.5); /* a read after it would have been logged */
	int reads = itest_server_statements(from, BURST_DB, "FROM pgcrond.job j WHERE source");
	ck_assert_msg(reads == 1, "a burst of 50 notifications cost %d reads of the jobs", reads);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	free(log);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sqljobs");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, app_role_schedules_runs_and_unschedules);
	tcase_add_test(tc, sql_validator_agrees_with_cron_parse);
	tcase_add_test(tc, file_jobs_other_database_and_nologin);
	tcase_add_test(tc, native_schedule_with_options);
	tcase_add_test(tc, pg_cron_job_names);
	tcase_add_test(tc, six_fields_said_at_the_call);
	tcase_add_test(tc, history_of_a_sql_job_not_run_yet);
	tcase_add_test(tc, recurrence_rules_through_sql);
	suite_add_tcase(s, tc);
	TCase *burst = tcase_create("burst");
	tcase_set_timeout(burst, 120);
	tcase_add_test(burst, notifications_burst_costs_one_read);
	suite_add_tcase(s, burst);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
