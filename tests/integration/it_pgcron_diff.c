/* pgcrond's pg_cron API against the real extension: a second throwaway
 * server loads Debian's pg_cron (shared_preload_libraries); the same calls, by the same
 * unprivileged roles, go to pg_cron there and to pgcrond's API here, and must give the same
 * results, the same errors (message and SQLSTATE) and the same cron.job rows, as each role
 * sees them and as a superuser does (nodeport aside: the two servers listen on different
 * ports). The deliberate differences (docs/sql-api.md) are asserted apart. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define DB "it_pgcron_diff"
#define APP "it_diff_app"
#define APP2 "it_diff_app2"
#define NOLOGIN "it_diff_nologin"

struct side {
	const char *what;
	char *ci; /* superuser conninfo of DB */
	PGconn *su, *app, *app2;
};

static PGconn *as(const char *ci, const char *role)
{
	char buf[1400];
	snprintf(buf, sizeof(buf), "%.1200s user=%s", ci, role);
	PGconn *c = itest_connect(buf);
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	return c;
}

/* "ok: VALUE" or "error SQLSTATE: MESSAGE" (malloc'd). */
static char *outcome(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	char buf[1200];
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		snprintf(buf, sizeof(buf), "ok: %s",
		         PQntuples(r) == 0      ? "(none)"
		         : PQgetisnull(r, 0, 0) ? "NULL"
		                                : PQgetvalue(r, 0, 0));
	else if (PQresultStatus(r) == PGRES_COMMAND_OK)
		snprintf(buf, sizeof(buf), "ok");
	else
		snprintf(buf, sizeof(buf), "error %s: %s", PQresultErrorField(r, PG_DIAG_SQLSTATE),
		         PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
	PQclear(r);
	return strdup(buf);
}

static PGconn *conn_of(struct side *s, const char *role)
{
	return strcmp(role, "su") == 0 ? s->su : strcmp(role, "app") == 0 ? s->app : s->app2;
}

static void roles(PGconn *su)
{
	itest_exec(su, "SET client_min_messages = warning");
	const char *drop[] = {APP, APP2, NOLOGIN};
	for (int i = 0; i < 3; i++) {
		char sql[256];
		snprintf(sql, sizeof(sql), "DROP OWNED BY %s; DROP ROLE %s", drop[i], drop[i]);
		PQclear(PQexec(su, sql));
	}
	itest_exec(su, "CREATE ROLE " APP " LOGIN; CREATE ROLE " APP2 " LOGIN;"
	               "CREATE ROLE " NOLOGIN " NOLOGIN;"
	               "GRANT USAGE ON SCHEMA cron TO " APP ", " APP2);
}

/* Every step, by role: "su", "app" or "app2". */
static const struct step {
	const char *role;
	const char *sql;
} steps[] = {
    {"app", "SELECT cron.schedule('* * * * *', 'SELECT 1')"},
    {"app", "SELECT cron.schedule('nightly', '0 3 * * *', 'VACUUM')"},
    {"app", "SELECT cron.schedule('nightly', '0 4 * * *', 'VACUUM ANALYZE')"},
    {"app", "SELECT cron.schedule('bad', '*/0 * * * *', 'SELECT 1')"},
    {"app", "SELECT cron.schedule('bad', '61 * * * *', 'SELECT 1')"},
    {"app", "SELECT cron.schedule('5/15 * * * *', 'SELECT 1')"},
    {"app", "SELECT cron.schedule('@daily', 'SELECT 2')"},
    {"app", "SELECT cron.schedule('weekdays', '30 8 * * mon-fri', 'SELECT 3')"},
    {"app", "SELECT cron.schedule('boot', '@reboot', 'SELECT 4')"},
    {"app", "SELECT cron.schedule(NULL, 'SELECT 1') IS NULL"},
    {"app", "SELECT cron.schedule('n', NULL, 'SELECT 1')"},
    {"app", "SELECT cron.schedule(NULL, '* * * * *', 'SELECT 1')"},
    {"app", "SELECT cron.schedule('n', '* * * * *', NULL)"},
    {"app", "SELECT cron.unschedule(NULL::bigint) IS NULL"},
    {"app", "SELECT cron.unschedule(999)"},
    {"app2", "SELECT cron.unschedule(1)"},
    {"app2", "SELECT cron.unschedule('nightly')"},
    {"app2", "SELECT count(*) FROM cron.job"},
    {"app", "SELECT cron.alter_job(2, active := false)"},
    {"app", "SELECT cron.schedule_in_database('x', '* * * * *', 'SELECT 1', '" DB "')"},
    {"su", "GRANT EXECUTE ON FUNCTION cron.alter_job(bigint, text, text, text, text, boolean),"
           " cron.schedule_in_database(text, text, text, text, text, boolean) TO " APP},
    {"app", "SELECT cron.alter_job(2, schedule := '5 5 * * *', active := false)"},
    {"app", "SELECT cron.alter_job(2, schedule := 'never')"},
    {"app", "SELECT cron.alter_job(1)"},
    {"app", "SELECT cron.alter_job(NULL, command := 'x')"},
    {"app", "SELECT cron.alter_job(2, username := '" APP2 "')"},
    {"app", "SELECT cron.alter_job(5, command := 'SELECT 6')"},
    {"app", "SELECT cron.schedule_in_database('elsewhere', '0 1 * * *', 'SELECT 7', 'postgres')"},
    {"app",
     "SELECT cron.schedule_in_database('as-other', '0 1 * * *', 'SELECT 7', '" DB "', '" APP2 "')"},
    {"app", "SELECT cron.schedule_in_database('nodb', '0 1 * * *', 'SELECT 7', 'no_such_db')"},
    {"su", "SELECT cron.schedule_in_database('for-app2', '0 2 * * *', 'SELECT 8', '" DB "', '" APP2
           "') > 0"},
    {"su", "SELECT cron.schedule_in_database('nologin', '0 2 * * *', 'SELECT 8', '" DB
           "', '" NOLOGIN "')"},
    {"su", "SELECT cron.schedule_in_database('noone', '0 2 * * *', 'SELECT 8', '" DB
           "', 'no_such_role')"},
    {"su", "SELECT cron.alter_job(2, command := 'SELECT 9')"},
    {"app2", "SELECT count(*) FROM cron.job"},
    {"app", "SELECT cron.unschedule('weekdays')"},
    {"app", "SELECT cron.unschedule(1)"},
    {"app", "SELECT cron.unschedule('weekdays')"},
    {"app", "SELECT cron.schedule('weekdays', '30 9 * * 1-5', 'SELECT 10')"},
    /* job names as pg_cron takes them: any text of a name, unique per role */
    {"app", "SELECT cron.schedule('Job Run Details Maintenance', '0 1 * * *', 'SELECT 11')"},
    {"app",
     "SELECT cron.schedule('User Checkout & Session Maintenance', '0 2 * * *', 'SELECT 12')"},
    {"app", "SELECT cron.schedule('nettoyage étape 2', '0 3 * * *', 'SELECT 13')"},
    {"app", "SELECT cron.schedule('it''s \"quoted\"', '0 3 * * *', 'SELECT 13')"},
    {"app", "SELECT cron.schedule(repeat('n', 63), '0 4 * * *', 'SELECT 14')"},
    {"app", "SELECT cron.schedule(repeat('m', 64), '0 4 * * *', 'SELECT 15')"},
    {"app", "SELECT cron.schedule(repeat('é', 40), '0 4 * * *', 'SELECT 16')"},
    {"app", "SELECT cron.schedule('', '0 4 * * *', 'SELECT 17')"},
    {"app", "SELECT cron.schedule('cron-job-1', '0 5 * * *', 'SELECT 18')"},
    {"app", "SELECT cron.schedule('42', '0 5 * * *', 'SELECT 19')"},
    {"app2", "SELECT cron.schedule('nightly', '0 6 * * *', 'SELECT 20')"},
    {"app2", "SELECT cron.schedule('weekdays', '0 6 * * *', 'SELECT 21')"},
    {"app", "SELECT cron.schedule('Job Run Details Maintenance', '0 7 * * *', 'SELECT 22')"},
    {"app", "SELECT cron.unschedule('User Checkout & Session Maintenance')"},
    {"app", "SELECT cron.unschedule(repeat('m', 70))"},
    {"app", "SELECT cron.unschedule('nettoyage étape 2')"},
    {"app2", "SELECT cron.unschedule('Job Run Details Maintenance')"},
};

/* The cron.job rows C sees, nodeport left out. */
static char *jobs_seen(PGconn *c)
{
	return itest_scalar(c, "SELECT coalesce(string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s', jobid,"
	                       " schedule, command, nodename, database, username, active, jobname),"
	                       " E'\\n' ORDER BY jobid), '') FROM cron.job");
}

START_TEST(same_calls_same_outcomes)
{
	struct itest_env e;
	struct side pgcron = {.what = "pg_cron"}, ours = {.what = "pgcrond"};

	/* pgcrond's side: its API made by pgcrond install in a fresh database */
	itest_env_init(&e, "pgcron-diff", DB);
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	free(out);
	ours.ci = e.ci;
	ours.su = as(ours.ci, "postgres");
	roles(ours.su);

	/* pg_cron's side: a server of its own with the extension in a database of that name */
	char *ci = itest_pgcron_start(e.dir, DB);
	pgcron.ci = ci;
	pgcron.su = as(pgcron.ci, "postgres");
	roles(pgcron.su);

	struct side *sides[] = {&pgcron, &ours};
	for (int i = 0; i < 2; i++) {
		sides[i]->app = as(sides[i]->ci, APP);
		sides[i]->app2 = as(sides[i]->ci, APP2);
	}

	/* the API itself: signatures, results, defaults, strictness; the table's columns */
	const char *catalog[] = {
	    "SELECT string_agg(p.oid::regprocedure::text || ' -> ' || pg_get_function_result(p.oid)"
	    " || ' (' || pg_get_function_arguments(p.oid) || ')' || CASE WHEN p.proisstrict THEN"
	    " ' strict' ELSE '' END, E'\\n' ORDER BY p.oid::regprocedure::text) FROM pg_proc p"
	    " WHERE pronamespace = 'cron'::regnamespace AND prorettype <> 'trigger'::regtype",
	    "SELECT string_agg(table_name || '.' || column_name || ' ' || data_type, E'\\n'"
	    " ORDER BY table_name, ordinal_position) FROM information_schema.columns"
	    " WHERE table_schema = 'cron'",
	    "SELECT string_agg(format('%s %s %s', r, f, has_function_privilege(r, f, 'EXECUTE')),"
	    " E'\\n' ORDER BY r, f) FROM unnest(ARRAY['" APP "', '" APP2 "']) r,"
	    " unnest(ARRAY['cron.schedule(text,text)', 'cron.schedule(text,text,text)',"
	    " 'cron.unschedule(bigint)', 'cron.unschedule(name)',"
	    " 'cron.alter_job(bigint,text,text,text,text,boolean)',"
	    " 'cron.schedule_in_database(text,text,text,text,text,boolean)']) f",
	};
	for (size_t i = 0; i < sizeof(catalog) / sizeof(catalog[0]); i++) {
		char *a = itest_scalar(pgcron.su, catalog[i]),
		     *b = itest_scalar(ours.su, catalog[i]);
		ck_assert_msg(strcmp(a, b) == 0, "%s\npg_cron:\n%s\npgcrond:\n%s", catalog[i], a,
		              b);
		free(a);
		free(b);
	}

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		const struct step *st = &steps[i];
		char *a = outcome(conn_of(&pgcron, st->role), st->sql);
		char *b = outcome(conn_of(&ours, st->role), st->sql);
		ck_assert_msg(strcmp(a, b) == 0, "step %zu (%s) %s\npg_cron: %s\npgcrond: %s",
		              i + 1, st->role, st->sql, a, b);
		free(a);
		free(b);
		/* and the rows, as each role sees them */
		const char *who[] = {"su", "app", "app2"};
		for (int w = 0; w < 3; w++) {
			char *ja = jobs_seen(conn_of(&pgcron, who[w]));
			char *jb = jobs_seen(conn_of(&ours, who[w]));
			ck_assert_msg(
			    strcmp(ja, jb) == 0,
			    "after step %zu (%s) %s, cron.job as %s:\npg_cron:\n%s\npgcrond:\n%s",
			    i + 1, st->role, st->sql, who[w], ja, jb);
			free(ja);
			free(jb);
		}
	}

	/* The deliberate differences, each as README lists it. pgcrond takes pg_cron 1.5's
	 * "N seconds" and "$", which Debian's pg_cron 1.4 refuses ... */
	const struct {
		const char *sql, *pgcron, *pgcrond;
	} diffs[] = {
	    {"SELECT cron.schedule('1 seconds', 'SELECT 1') > 0",
	     "error 22023: invalid schedule: 1 seconds", "ok: t"},
	    {"SELECT cron.schedule('0 0 $ * *', 'SELECT 1') > 0",
	     "error 22023: invalid schedule: 0 0 $ * *", "ok: t"},
	    /* ... reads a sixth field as seconds first, and refuses a seventh ... */
	    {"SELECT cron.schedule('0 0 0 * * *', 'SELECT 1') > 0",
	     "error 22023: invalid schedule: 0 0 0 * * *", "ok: t"},
	    {"SELECT cron.schedule('* * * * * * *', 'SELECT 1') > 0", "ok: t",
	     "error 22023: invalid schedule: * * * * * * *"},
	    {"SELECT cron.schedule('0 0 1 * * extra', 'SELECT 1') > 0", "ok: t",
	     "error 22023: invalid schedule: 0 0 1 * * extra"},
	    /* a role may write its own rows of cron.job directly, with the functions' checks */
	    {"UPDATE cron.job SET active = false", "error 42501: permission denied for table job",
	     "error 42501: permission denied for function alter_job"},
	    {"UPDATE cron.job SET command = 'SELECT 11' WHERE jobname = 'for-app2'",
	     "error 42501: permission denied for table job", "ok"},
	};
	for (size_t i = 0; i < sizeof(diffs) / sizeof(diffs[0]); i++) {
		char *a = outcome(pgcron.app2, diffs[i].sql), *b = outcome(ours.app2, diffs[i].sql);
		ck_assert_msg(strcmp(a, diffs[i].pgcron) == 0, "pg_cron: %s: %s", diffs[i].sql, a);
		ck_assert_msg(strcmp(b, diffs[i].pgcrond) == 0, "pgcrond: %s: %s", diffs[i].sql, b);
		free(a);
		free(b);
	}

	for (int i = 0; i < 2; i++) {
		PQfinish(sides[i]->su);
		PQfinish(sides[i]->app);
		PQfinish(sides[i]->app2);
	}
	free(ci);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pgcron_diff");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, same_calls_same_outcomes);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
