/* Planted objects (the pattern of CVE-2018-1058). A role, mallory, that
 * may create objects in schema public (GRANT CREATE ON SCHEMA public TO PUBLIC, the default
 * before PostgreSQL 15) plants better-matching stand-ins for what pgcrond calls: functions
 * of the same name and signature, overloads that match a literal better, types named like
 * one-argument functions (a call with a literal is then a cast to her type, as in pg_cron's
 * regression case "Override function"), implicit casts and "=" operators. Each stand-in
 * notes its call in a sequence (not rolled back with a failing transaction) and a table, and
 * tries to rewrite the other roles' jobs. Then the superuser runs `pgcrond install` twice and
 * the daemon runs file and SQL jobs: none of her objects may ever be called by pgcrond, and
 * no other role's job may change. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hist_batch.h"
#include "hist_startup.h"
#include "history.h"
#include "itest.h"
#include "sched_priv.h"
#include "triggers.h"

#define DB "it_hostile"
#define MALLORY "it_hostile_mallory"
#define APP "it_hostile_app"

static PGconn *role_conn(const struct itest_env *e, const char *role)
{
	char ci[1024];
	snprintf(ci, sizeof(ci), "%s user=%s", e->ci, role);
	return itest_connect(ci);
}

/* The roles, mallory's record of calls, and what every stand-in does: note the call (the
 * sequence survives a rollback), then try to rewrite every other role's SQL job. */
static PGconn *setup(struct itest_env *e)
{
	itest_env_init(e, "hostile", DB);
	/* the test's own statements never resolve through public */
	itest_exec(e->db, "SET search_path = pg_catalog, pg_temp");
	const char *roles[] = {MALLORY, APP};
	for (int i = 0; i < 2; i++) {
		char sql[512];
		snprintf(
		    sql, sizeof(sql),
		    "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN "
		    "EXECUTE 'DROP OWNED BY %s CASCADE'; EXECUTE 'DROP ROLE %s'; END IF; END $$",
		    roles[i], roles[i], roles[i]);
		itest_exec(e->db, sql);
		snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN", roles[i]);
		itest_exec(e->db, sql);
	}
	itest_exec(e->db, "GRANT CREATE, USAGE ON SCHEMA public TO PUBLIC;"
	                  "CREATE TABLE public.ticks (job text, at timestamptz"
	                  " DEFAULT pg_catalog.clock_timestamp());"
	                  "GRANT INSERT, SELECT ON public.ticks TO PUBLIC");
	PGconn *m = role_conn(e, MALLORY);
	itest_exec(m,
	           "SET search_path = pg_catalog, pg_temp;"
	           "CREATE SEQUENCE public.mallory_seq;"
	           "CREATE TABLE public.mallory_calls (fn text, by_role name DEFAULT current_user);"
	           "GRANT USAGE, SELECT, UPDATE ON SEQUENCE public.mallory_seq TO PUBLIC;"
	           "GRANT INSERT, SELECT ON public.mallory_calls TO PUBLIC;"
	           "CREATE FUNCTION public.mallory_note(fn text) RETURNS boolean"
	           " LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$ BEGIN"
	           "  PERFORM pg_catalog.nextval('public.mallory_seq');"
	           "  INSERT INTO public.mallory_calls (fn) VALUES (fn);"
	           "  BEGIN"
	           "   UPDATE pgcrond.job SET command = 'SELECT ''pwned'''"
	           "    WHERE username IS DISTINCT FROM '" MALLORY "';"
	           "   UPDATE cron.job SET command = 'SELECT ''pwned'''"
	           "    WHERE username IS DISTINCT FROM '" MALLORY "';"
	           "  EXCEPTION WHEN OTHERS THEN NULL; END;"
	           "  RETURN true; END $f$");
	return m;
}

/* Stand-ins with pg_catalog's own signatures (they win where the path names public before
 * pg_catalog) and overloads that match a literal better (they win whenever the path holds
 * public), each delegating to pg_catalog's after noting the call. */
static void plant_functions(PGconn *m)
{
	static const char *const fns[][3] = {
	    /* name, arguments, result */
	    {"now", "", "timestamptz"},
	    {"clock_timestamp", "", "timestamptz"},
	    {"statement_timestamp", "", "timestamptz"},
	    {"hashtextextended", "a text, b bigint", "bigint"},
	    {"set_config", "a text, b text, c boolean", "text"},
	    {"current_setting", "a text", "text"},
	    {"current_setting", "a text, b boolean", "text"},
	    {"to_regclass", "a text", "regclass"},
	    {"pg_notify", "a text, b text", "void"},
	    {"pg_try_advisory_lock", "a bigint", "boolean"},
	    {"pg_advisory_lock", "a bigint", "void"},
	    {"pg_advisory_unlock", "a bigint", "boolean"},
	    {"pg_advisory_xact_lock", "a bigint", "void"},
	    {"pg_try_advisory_xact_lock", "a bigint", "boolean"},
	    {"pg_backend_pid", "", "integer"},
	    {"pg_is_in_recovery", "", "boolean"},
	    {"pg_get_serial_sequence", "a text, b text", "text"},
	    {"has_function_privilege", "a text, b text", "boolean"},
	    {"lower", "a text", "text"},
	};
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		char args[128] = "", sql[1024];
		const char *names[] = {"a", "b", "c"};
		int n = 0;
		for (const char *p = fns[i][1]; *p; p++)
			n += *p == ',';
		n += fns[i][1][0] != '\0';
		for (int k = 0; k < n; k++)
			snprintf(args + strlen(args), sizeof(args) - strlen(args), "%s%s",
			         k ? ", " : "", names[k]);
		bool is_void = strcmp(fns[i][2], "void") == 0;
		snprintf(sql, sizeof(sql),
		         "CREATE FUNCTION public.%s(%s) RETURNS %s LANGUAGE plpgsql"
		         " SET search_path = pg_catalog, pg_temp AS $f$ BEGIN"
		         " PERFORM public.mallory_note('%s(%s)'); %s pg_catalog.%s(%s); %s END $f$",
		         fns[i][0], fns[i][1], fns[i][2], fns[i][0], fns[i][1],
		         is_void ? "PERFORM" : "RETURN", fns[i][0], args, is_void ? "RETURN;" : "");
		itest_exec(m, sql);
	}
	itest_exec(
	    m,
	    /* better matches for a literal: an integer where pg_catalog's takes a bigint (as the
	     * daemon's lock keys would be), and a varchar overload */
	    "CREATE FUNCTION public.hashtextextended(a text, b integer) RETURNS bigint"
	    " LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$ BEGIN"
	    " PERFORM public.mallory_note('hashtextextended(text, integer)');"
	    " RETURN pg_catalog.hashtextextended(a, b); END $f$;"
	    "CREATE FUNCTION public.pg_try_advisory_lock(a integer) RETURNS boolean"
	    " LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$ BEGIN"
	    " PERFORM public.mallory_note('pg_try_advisory_lock(integer)');"
	    " RETURN pg_catalog.pg_try_advisory_lock(a); END $f$;"
	    "CREATE FUNCTION public.pg_notify(a varchar, b varchar) RETURNS void"
	    " LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$ BEGIN"
	    " PERFORM public.mallory_note('pg_notify(varchar, varchar)');"
	    " PERFORM pg_catalog.pg_notify(a, b); END $f$;"
	    /* "=" for text and for bigint */
	    "CREATE FUNCTION public.mallory_texteq(a text, b text) RETURNS boolean"
	    " LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$ BEGIN"
	    " PERFORM public.mallory_note('= (text, text)'); RETURN pg_catalog.texteq(a, b);"
	    " END $f$;"
	    "CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text,"
	    " FUNCTION = public.mallory_texteq);"
	    "CREATE FUNCTION public.mallory_int8eq(a bigint, b bigint) RETURNS boolean"
	    " LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$ BEGIN"
	    " PERFORM public.mallory_note('= (bigint, bigint)'); RETURN pg_catalog.int8eq(a, b);"
	    " END $f$;"
	    "CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint,"
	    " FUNCTION = public.mallory_int8eq)");
}

/* pg_cron's "Override function", reproduced: a type named like a function called with one
 * literal turns the call into a cast to that type, whatever pg_catalog holds. An enum
 * current_setting with an implicit cast to text (her function runs on the cast), and a
 * domain to_regclass whose CHECK runs her function on every value. */
static void plant_types(PGconn *m)
{
	itest_exec(m, "CREATE TYPE public.current_setting AS ENUM"
	              " ('search_path', 'pgcrond.file_sync', 'server_version_num', 'TimeZone');"
	              "CREATE FUNCTION public.mallory_cs(public.current_setting) RETURNS text"
	              " LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$ BEGIN"
	              " PERFORM public.mallory_note('cast current_setting to text');"
	              " RETURN pg_catalog.current_setting($1::text); END $f$;"
	              "CREATE CAST (public.current_setting AS text)"
	              " WITH FUNCTION public.mallory_cs(public.current_setting) AS IMPLICIT;"
	              "CREATE DOMAIN public.to_regclass AS text"
	              " CHECK (public.mallory_note('domain to_regclass'));"
	              "CREATE DOMAIN public.regclass AS text"
	              " CHECK (public.mallory_note('domain regclass'))");
}

/* What mallory's stand-ins recorded, one line per call: "" when none ran. */
static char *calls(const struct itest_env *e)
{
	char *n = itest_scalar(e->db, "SELECT CASE WHEN is_called THEN last_value END"
	                              " FROM public.mallory_seq");
	char *list = itest_scalar(e->db, "SELECT pg_catalog.string_agg(DISTINCT fn || ' as ' ||"
	                                 " by_role, '; ') FROM public.mallory_calls");
	char *out = NULL;
	if (asprintf(&out, "%s%s%s", n ? n : "", n ? " calls: " : "", list ? list : "") < 0)
		out = NULL;
	free(n);
	free(list);
	return out;
}

static void assert_no_calls(const struct itest_env *e, const char *when)
{
	char *c = calls(e);
	ck_assert_msg(c && c[0] == '\0', "%s: mallory's planted objects ran: %s\n%s", when, c,
	              itest_read_file(e->log));
	free(c);
}

static char *install(const struct itest_env *e, int want)
{
	int status;
	char *out = itest_cli(&status, "install", "-c", e->conf, NULL);
	ck_assert_msg(status == want, "pgcrond install: %d, wanted %d: %s", status, want, out);
	return out;
}

/* Stand-ins for the operators, functions and types pgcrond's own statements use (manual
 * requests, the give-back of pre-claimed fires, the history's updates and start-up reads), each an
 * exact match for the arguments those statements give, so each wins over pg_catalog's wherever
 * public comes first on the path. */
static void plant_operators(PGconn *m)
{
	static const char *const ops[][4] = {
	    /* operator, left, right, result */
	    {"<>", "text", "text", "boolean"},
	    {"=", "boolean", "boolean", "boolean"},
	    {">", "text", "text", "boolean"},
	    {"~", "text", "text", "boolean"},
	    {"||", "text", "text", "text"},
	    {"||", "bigint", "text", "text"},
	    {"-", "bigint", "bigint", "bigint"},
	    {"*", "bigint", "interval", "interval"},
	    {"*", "numeric", "integer", "numeric"},
	    {">", "bigint", "numeric", "boolean"},
	    {"=", "timestamptz", "timestamptz", "boolean"},
	    {"<", "timestamptz", "timestamptz", "boolean"},
	    {">", "timestamptz", "timestamptz", "boolean"},
	    {">=", "timestamptz", "timestamptz", "boolean"},
	    {"+", "timestamptz", "interval", "timestamptz"},
	    {"-", "timestamptz", "interval", "timestamptz"},
	    {"-", "timestamptz", "timestamptz", "interval"},
	};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		char sql[1024];
		snprintf(
		    sql, sizeof(sql),
		    "CREATE FUNCTION public.mallory_op%zu(a %s, b %s) RETURNS %s LANGUAGE plpgsql"
		    " SET search_path = pg_catalog, pg_temp AS $f$ BEGIN"
		    " PERFORM public.mallory_note('%s (%s, %s)');"
		    " RETURN a OPERATOR(pg_catalog.%s) b; END $f$;"
		    "CREATE OPERATOR public.%s (LEFTARG = %s, RIGHTARG = %s,"
		    " FUNCTION = public.mallory_op%zu)",
		    i, ops[i][1], ops[i][2], ops[i][3], ops[i][0], ops[i][1], ops[i][2], ops[i][0],
		    ops[i][0], ops[i][1], ops[i][2], i);
		itest_exec(m, sql);
	}
	itest_exec(
	    m, "CREATE FUNCTION public.substr(a text, b integer) RETURNS text LANGUAGE plpgsql"
	       " SET search_path = pg_catalog, pg_temp AS $f$ BEGIN"
	       " PERFORM public.mallory_note('substr(text, integer)');"
	       " RETURN pg_catalog.substr(a, b); END $f$;"
	       "CREATE FUNCTION public.unnest(a text[]) RETURNS SETOF text LANGUAGE plpgsql"
	       " SET search_path = pg_catalog, pg_temp AS $f$ BEGIN"
	       " PERFORM public.mallory_note('unnest(text[])');"
	       " RETURN QUERY SELECT pg_catalog.unnest(a); END $f$;"
	       "CREATE FUNCTION public.mallory_max(a text, b text) RETURNS text LANGUAGE plpgsql"
	       " SET search_path = pg_catalog, pg_temp AS $f$ BEGIN"
	       " PERFORM public.mallory_note('max(text)');"
	       " RETURN pg_catalog.text_larger(a, b); END $f$;"
	       "CREATE AGGREGATE public.max(text) (SFUNC = public.mallory_max, STYPE = text);"
	       "CREATE FUNCTION public.mallory_min(a text, b text) RETURNS text LANGUAGE plpgsql"
	       " SET search_path = pg_catalog, pg_temp AS $f$ BEGIN"
	       " PERFORM public.mallory_note('min(text)');"
	       " RETURN pg_catalog.text_smaller(a, b); END $f$;"
	       "CREATE AGGREGATE public.min(text) (SFUNC = public.mallory_min, STYPE = text);"
	       "CREATE DOMAIN public.jsonb AS pg_catalog.jsonb"
	       " CHECK (public.mallory_note('domain jsonb'))");
}

/* One of pgcrond's own statements, with its parameters, on OWN: none of mallory's stand-ins
 * runs, and it succeeds, answering (or changing) WANT rows. */
static void own_statement(const struct itest_env *e, PGconn *own, const char *what, const char *sql,
                          int n, const char *const *params, int want)
{
	PGresult *r = PQexecParams(own, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	assert_no_calls(e, what);
	ck_assert_msg(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s: %s", what,
	              PQresultErrorMessage(r));
	int rows = st == PGRES_TUPLES_OK ? PQntuples(r) : atoi(PQcmdTuples(r));
	ck_assert_msg(rows == want, "%s: %d rows, wanted %d", what, rows, want);
	PQclear(r);
}

/* pgcrond's own statements on a session whose search_path is NOT pinned, public first (as
 * mallory, who owns the database, could set it for every session that does not pin its
 * own), over rows they act on, so that every operator, function and type they name is
 * resolved and evaluated: none of her stand-ins runs. The daemon sends these statements on
 * sessions pinned to pg_catalog, pg_temp (pgconn.h), which no stand-in reaches anyway: this
 * case shows that the statements themselves name nothing another role can capture, so that
 * they stay right should one ever run on a job's session or without the pin. It fails when
 * any name in them is left unqualified that has a stand-in above. */
START_TEST(own_statements_unpinned)
{
	struct itest_env e;
	PQfinish(setup(&e));
	free(install(&e, 0));
	PGconn *m = role_conn(&e, MALLORY);
	plant_functions(m);
	plant_operators(m);

	/* the rows: two manual requests, a fire claimed ahead, a run of this boot still running */
	char *id = itest_scalar(e.db, "WITH r AS (INSERT INTO pgcrond.trigger_request (job_name)"
	                              " VALUES ('one'), ('two') RETURNING id)"
	                              " SELECT pg_catalog.min(id) FROM r");
	ck_assert_ptr_nonnull(id);
	itest_exec(e.db, "SELECT pgcrond.history_partition_create(CURRENT_DATE);"
	                 "INSERT INTO pgcrond.fire_claim (job_name, fire_key, instance, boot_id)"
	                 " SELECT 'one', 's:' OPERATOR(pg_catalog.||) (EXTRACT(epoch FROM"
	                 " pg_catalog.now())::pg_catalog.int8 OPERATOR(pg_catalog.+) 3600),"
	                 " 'it', 'boot';"
	                 "INSERT INTO pgcrond.job_run_details (job_name, status, start_time,"
	                 " instance, run_key) VALUES ('one', 'running',"
	                 " pg_catalog.date_trunc('second', pg_catalog.now()), 'it', 'boot.1')");
	char start_us[32], end_us[32], outcomes[128];
	long long s = itest_scalar_ll(
	    e.db,
	    "SELECT EXTRACT(epoch FROM start_time)::pg_catalog.int8 FROM pgcrond.job_run_details");
	snprintf(start_us, sizeof(start_us), "{%lld000000}", s);
	snprintf(end_us, sizeof(end_us), "{%lld000000}", s + 1);
	snprintf(outcomes, sizeof(outcomes), "[{\"id\": %s, \"outcome\": \"started\"}]", id);

	PGconn *own = itest_connect(e.ci);
	itest_exec(own, "SET search_path = public, pg_catalog");
	const char *claim_one[] = {id, "it"}, *claim_all[] = {"it"}, *done[] = {outcomes},
	           *give_back[] = {"it", "boot"},
	           *upd[] = {"{it}",   "{boot.1}", start_us, "{succeeded}",
	                     "{done}", "{NULL}",   end_us,   "{4242}"};
	own_statement(&e, own, "claim one request", TRIGGERS_SQL_CLAIM_ONE, 2, claim_one, 1);
	own_statement(&e, own, "claim the others", TRIGGERS_SQL_CLAIM_ALL, 1, claim_all, 1);
	own_statement(&e, own, "record outcomes", TRIGGERS_SQL_OUTCOMES, 1, done, 1);
	own_statement(&e, own, "give back", ADMIT_SQL_GIVE_BACK, 2, give_back, 1);
	own_statement(&e, own, "history update", HIST_SQL_UPD(HIST_SQL_UPD_START), 8, upd, 1);
	own_statement(&e, own, "history update, any partition", HIST_SQL_UPD(""), 8, upd, 0);
	/* the start-up reads: every job's last fires and results, then the rows an earlier
	 * process of this instance left running */
	const char *since[] = {"2000-01-01", "10", "10", NULL},
	           *orphans[] = {"it", "boot", "closed", "2000-01-01", "{\"sql\": \"\"}"};
	own_statement(&e, own, "last fires", hist_sql_last_fires, 1, since, 1);
	own_statement(&e, own, "last results", hist_sql_last_results, 4, since, 2);
	itest_exec(e.db, "INSERT INTO pgcrond.job_run_details (job_name, status, start_time,"
	                 " instance, run_key, boot_id) VALUES ('two', 'running',"
	                 " pg_catalog.now(), 'it', 'old.1', 'old')");
	own_statement(&e, own, "orphans", hist_sql_orphans, 5, orphans, 1);
	PQfinish(own);
	itest_assert_scalar(e.db,
	                    "SELECT pg_catalog.string_agg(status OPERATOR(pg_catalog.||) ' '"
	                    " OPERATOR(pg_catalog.||) coalesce(job_pid, 0), ',' ORDER BY job_name)"
	                    " FROM pgcrond.job_run_details",
	                    "succeeded 4242,failed 0");
	free(id);
	PQfinish(m);
	itest_env_teardown(&e);
}
END_TEST

/* pg_cron's case, on the default search_path ("$user", public): pg_catalog comes first, yet
 * a literal argument makes the call a cast to her type. The superuser installs and
 * installs again (an install that changes nothing must not run a planted cast either). */
START_TEST(override_function_types)
{
	struct itest_env e;
	PQfinish(setup(&e));
	PGconn *m = role_conn(&e, MALLORY);
	plant_types(m);
	itest_env_job(&e, "10-file.conf",
	              "job = { name = \"file-tick\"; database = \"app\"; schedule = \"1 seconds\";"
	              " command = \"INSERT INTO public.ticks (job) VALUES ('file')\"; };\n");
	free(install(&e, 0));
	assert_no_calls(&e, "first install");
	char *out = install(&e, 0);
	ck_assert_msg(strstr(out, "nothing to change"), "%s", out);
	free(out);
	assert_no_calls(&e, "second install");

	/* the daemon's own connections: history, listener, SQL jobs' reader */
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) >= 2 FROM public.ticks"
	                             " WHERE job OPERATOR(pg_catalog.=) 'file'"),
	              "the file job did not run:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	assert_no_calls(&e, "daemon");
	PQfinish(m);
	itest_env_teardown(&e);
}
END_TEST

/* Mallory owns the database and, after the superuser installed, puts public before
 * pg_catalog on its path (ALTER DATABASE SET search_path): every unqualified name any
 * session resolves is hers. The application role schedules jobs (named and unnamed), the
 * daemon runs them and a file job, the superuser installs again: nothing of hers runs in
 * pgcrond's statements, and no job's command changes. */
START_TEST(planted_overloads_daemon_and_install)
{
	struct itest_env e;
	PQfinish(setup(&e));
	itest_exec(e.db, "ALTER DATABASE " DB " OWNER TO " MALLORY);
	itest_env_job(&e, "10-file.conf",
	              "job = { name = \"file-tick\"; database = \"app\"; schedule = \"1 seconds\";"
	              " command = \"INSERT INTO public.ticks (job) VALUES ('file')\"; };\n");
	free(install(&e, 0));
	itest_exec(e.db, "GRANT USAGE ON SCHEMA cron TO " APP);

	/* what she plants after the install: the daemon's statements, then a re-install */
	PGconn *m = role_conn(&e, MALLORY);
	plant_functions(m);
	plant_operators(m);
	itest_exec(m, "ALTER DATABASE " DB " SET search_path = public, pg_catalog");
	PGconn *app = role_conn(&e, APP);
	itest_exec(app, "SET search_path = pg_catalog, pg_temp;"
	                "SELECT cron.schedule('app-tick', '1 seconds',"
	                " $$INSERT INTO public.ticks (job) VALUES ('app')$$);"
	                "SELECT cron.schedule('1 seconds',"
	                " $$INSERT INTO public.ticks (job) VALUES ('app-unnamed')$$)");
	assert_no_calls(&e, "cron.schedule");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 20, "SELECT count(DISTINCT job) = 3 FROM public.ticks"),
	              "the jobs did not run:\n%s", itest_read_file(e.log));
	/* a changed SQL job is read again */
	itest_exec(app, "SELECT cron.schedule('app-tick', '2 seconds',"
	                " $$INSERT INTO public.ticks (job) VALUES ('app')$$)");
	ck_assert_msg(itest_wait_log(e.log, "jobs made in SQL changed", 10), "%s",
	              itest_read_file(e.log));
	/* a pause is recorded in pgcrond.job on a job's session of the history database, whose
	 * path is the server's: hers */
	int status;
	char *out = itest_cli(&status, "pause", "-c", e.conf, "file-tick", NULL);
	ck_assert_msg(status == 0, "pause: %d %s", status, out);
	free(out);
	ck_assert_msg(itest_env_wait(&e, 10,
	                             "SELECT paused FROM pgcrond.job"
	                             " WHERE jobname OPERATOR(pg_catalog.=) 'file-tick'"),
	              "the pause was not recorded:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	assert_no_calls(&e, "daemon");

	out = install(&e, 0);
	ck_assert_msg(strstr(out, "nothing to change"), "%s", out);
	free(out);
	assert_no_calls(&e, "install again");
	itest_assert_scalar(e.db,
	                    "SELECT pg_catalog.count(*) FROM pgcrond.job"
	                    " WHERE command OPERATOR(pg_catalog.~~) '%pwned%'",
	                    "0");
	PQfinish(app);
	PQfinish(m);
	itest_env_teardown(&e);
}
END_TEST

/* Names nobody can squat: a role that names its job cron-job-N does
 * not take pgcrond's name of the unnamed job with jobid N (the job is named as
 * written in cron.job, and by its own jobid in pgcrond), an unnamed job whose name is held anyway
 * (a row from before the rule) gets another, and a SQL job holding the name of a job file's new job
 * no longer stops `pgcrond install`: the file job takes its name, the SQL job is moved aside, named
 * after its owner in the warning, and both run. */
START_TEST(names_cannot_be_squatted)
{
	struct itest_env e;
	PQfinish(setup(&e));
	free(install(&e, 0));
	itest_exec(e.db, "GRANT USAGE ON SCHEMA cron TO " MALLORY ", " APP);
	PGconn *m = role_conn(&e, MALLORY), *app = role_conn(&e, APP);

	/* a name of the unnamed jobs to come */
	char sql[512];
	long long next = itest_scalar_ll(e.db, "SELECT last_value FROM pgcrond.job_jobid_seq");
	snprintf(sql, sizeof(sql), "SELECT cron.schedule('cron-job-%lld', '0 0 1 1 *', 'SELECT 1')",
	         next + 5);
	/* taken as pg_cron takes it, as the name in cron.job; pgcrond's name of it is its own
	 * jobid's, so the unnamed job with jobid N still gets cron-job-N */
	PGresult *r = PQexec(m, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	char want[128], q0[160];
	snprintf(want, sizeof(want), "cron-job-%s", PQgetvalue(r, 0, 0));
	snprintf(q0, sizeof(q0), "SELECT jobname FROM pgcrond.job WHERE jobid = %s",
	         PQgetvalue(r, 0, 0));
	itest_assert_scalar(e.db, q0, want);
	PQclear(r);
	/* a squatter from before the rule: the unnamed job is named around it */
	itest_exec(e.db, "INSERT INTO pgcrond.job (jobid, jobname, kind, command, schedule,"
	                 " database, enabled, source, username)"
	                 " SELECT 999999, 'cron-job-' || (s.last_value + 1), 'sql', 'SELECT 1',"
	                 " '0 0 1 1 *', '" DB "', false, 'sql', '" MALLORY "'"
	                 " FROM pgcrond.job_jobid_seq s");
	char *id = itest_scalar(app, "SELECT cron.schedule('0 0 1 1 *', 'SELECT 2')");
	char q[256], name[64];
	snprintf(q, sizeof(q), "SELECT jobname FROM pgcrond.job WHERE jobid = %s", id);
	snprintf(name, sizeof(name), "cron-job-%s.1", id);
	itest_assert_scalar(e.db, q, name);
	free(id);

	/* mallory takes the name of a job the operator adds to a file later */
	itest_exec(m, "SELECT cron.schedule('nightly-report', '1 seconds',"
	              " $$INSERT INTO public.ticks (job) VALUES ('mallory')$$)");
	itest_env_job(&e, "10-file.conf",
	              "job = { name = \"nightly-report\"; database = \"app\"; schedule = \"1 "
	              "seconds\"; command = \"INSERT INTO public.ticks (job) VALUES ('file')\"; "
	              "};\n");
	/* the daemon, before the install: the file job runs, the SQL job is left out with a
	 * line naming its owner */
	itest_env_start(&e);
	ck_assert_msg(itest_wait_log(e.log,
	                             "role \"" MALLORY "\") is not run: job \"nightly-report\" is "
	                             "already defined at ",
	                             15),
	              "%s", itest_read_file(e.log));
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) > 0 FROM public.ticks"
	                             " WHERE job = 'file'"),
	              "the file job did not run:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);

	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	id = itest_scalar(e.db, "SELECT jobid FROM cron.job WHERE username = '" MALLORY "'"
	                        " AND jobname = 'nightly-report'");
	char line[512];
	snprintf(line, sizeof(line),
	         "10-file.conf:1: warning: job \"nightly-report\": the name was held by a job that "
	         "role \"" MALLORY "\" scheduled in SQL (cron.job jobid %s); job files own their "
	         "names, so that job now runs as \"nightly-report.sql-%s\"",
	         id, id);
	ck_assert_msg(status == 0 && strstr(out, line), "install: %d %s\nwanted: %s", status, out,
	              line);
	free(out);
	snprintf(line, sizeof(line), "file nightly-report, sql nightly-report.sql-%s", id);
	itest_assert_scalar(e.db,
	                    "SELECT string_agg(source || ' ' || jobname, ', ' ORDER BY source)"
	                    " FROM pgcrond.job WHERE jobname LIKE 'nightly-report%'",
	                    line);
	/* her changes to it go on without taking the name back */
	itest_exec(m, "SELECT cron.schedule('nightly-report', '2 seconds',"
	              " $$INSERT INTO public.ticks (job) VALUES ('mallory')$$)");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(DISTINCT job) = 2 FROM public.ticks"
	                             " WHERE job IN ('file', 'mallory')"),
	              "both jobs did not run:\n%s", itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	free(id);
	PQfinish(app);
	PQfinish(m);
	itest_env_teardown(&e);
}
END_TEST

/* A role that may create schemas in the database (an application's owner role) creates
 * schema pgcrond before the first install, with a view where the installer reads the schema's
 * version and a trigger function named like the change counters': the install refuses,
 * naming her, runs none of it and creates nothing; once the superuser dropped her schema, it
 * installs. */
START_TEST(squatted_schema_is_refused)
{
	struct itest_env e;
	PGconn *m = setup(&e);
	itest_exec(e.db, "GRANT CREATE ON DATABASE " DB " TO " MALLORY);
	itest_exec(m, "CREATE SCHEMA pgcrond;"
	              "CREATE VIEW pgcrond.schema_version AS SELECT 19 AS version,"
	              " 'x'::text AS pgcrond_version WHERE public.mallory_note('schema_version');"
	              "CREATE FUNCTION pgcrond.source_changed() RETURNS trigger LANGUAGE plpgsql"
	              " AS $f$ BEGIN PERFORM public.mallory_note('source_changed'); RETURN NULL;"
	              " END $f$;"
	              "GRANT USAGE ON SCHEMA pgcrond TO PUBLIC;"
	              "GRANT SELECT ON pgcrond.schema_version TO PUBLIC");
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status != 0 &&
	                  strstr(out, "schema pgcrond in database " DB " is owned by role " MALLORY
	                              ", not by postgres:"
	                              " what that role put there would run as postgres,"
	                              " so nothing is installed") &&
	                  strstr(out, "install as " MALLORY ", or as a superuser ALTER SCHEMA"
	                              " pgcrond OWNER TO postgres"),
	              "install: %d %s", status, out);
	free(out);
	assert_no_calls(&e, "install into her schema");
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n"
	                    " ON n.oid = c.relnamespace WHERE n.nspname = 'pgcrond'",
	                    "1");
	itest_exec(e.db, "DROP SCHEMA pgcrond CASCADE");
	free(install(&e, 0));
	assert_no_calls(&e, "install");
	itest_assert_scalar(e.db,
	                    "SELECT r.rolname FROM pg_namespace n JOIN pg_roles r"
	                    " ON r.oid = n.nspowner WHERE n.nspname = 'pgcrond'",
	                    "postgres");
	PQfinish(m);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hostile_sql");
	TCase *tc = tcase_create("planted");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, override_function_types);
	tcase_add_test(tc, planted_overloads_daemon_and_install);
	tcase_add_test(tc, names_cannot_be_squatted);
	tcase_add_test(tc, squatted_schema_is_refused);
	tcase_add_test(tc, own_statements_unpinned);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
