/* pgcrond import: jobs made with pg_cron's own functions on a second
 * server that loads Debian's pg_cron move into pgcrond in one command, with their names (a
 * stable one for unnamed jobs and names pgcrond cannot carry), owners, databases, active flags
 * and schedules; warnings for meanings that differ; --dry-run changes nothing; a name clash
 * refuses the import; --disable-source switches the pg_cron jobs off; the imported jobs run in
 * pgcrond as their owners; --to-files writes a job file. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define DB "it_import"
#define A "it_import_a"
#define B "it_import_b"

static void make_roles(PGconn *su)
{
	itest_exec(su, "SET client_min_messages = warning");
	const char *r[] = {A, B};
	for (int i = 0; i < 2; i++) {
		char sql[256];
		snprintf(sql, sizeof(sql), "DROP OWNED BY %s; DROP ROLE %s", r[i], r[i]);
		PQclear(PQexec(su, sql));
		snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN", r[i]);
		itest_exec(su, sql);
	}
}

static PGconn *as(const char *ci, const char *role)
{
	char buf[1400];
	snprintf(buf, sizeof(buf), "%.1200s user=%s", ci, role);
	return itest_connect(buf);
}

/* The "as jobid N" of each line of OUT, space-separated. */
static void jobids_of(const char *out, char *ids, size_t len)
{
	size_t o = 0;
	ids[0] = '\0';
	for (const char *p = strstr(out, " as jobid "); p; p = strstr(p + 1, " as jobid ")) {
		long long id = atoll(p + strlen(" as jobid "));
		int w = snprintf(ids + o, len - o, "%s%lld", o ? " " : "", id);
		if (w < 0 || (size_t)w >= len - o)
			break;
		o += (size_t)w;
	}
}

START_TEST(import_moves_a_pg_cron_installation)
{
	struct itest_env e;
	itest_env_init(&e, "import", DB);
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "pgcrond install: %d %s", status, out);
	free(out);
	make_roles(e.db);
	itest_exec(e.db, "CREATE TABLE ticks (job text, who text DEFAULT session_user);"
	                 "GRANT INSERT ON ticks TO PUBLIC");

	/* pg_cron's server, and its jobs made with its own functions */
	char *ci = itest_pgcron_start(e.dir, DB);
	PGconn *su = itest_connect(ci);
	make_roles(su);
	itest_exec(su, "GRANT USAGE ON SCHEMA cron TO " A ", " B);
	PGconn *a = as(ci, A), *b = as(ci, B);
	itest_exec(a, "SELECT cron.schedule('nightly-a', '0 3 * * *',"
	              " $$INSERT INTO ticks (job) VALUES ('nightly-a')$$)");
	itest_exec(a, "SELECT cron.schedule('*/5 * * * *', 'SELECT 1')");
	itest_exec(a, "SELECT cron.schedule('my job', '0 0 1 * * ignored', 'SELECT 2')");
	itest_exec(b, "SELECT cron.schedule('yearly-b', '@yearly', 'SELECT 3')");
	itest_exec(su, "SELECT cron.schedule_in_database('off', '0 4 * * *', 'SELECT 4', '" DB
	               "', '" B "', false)");
	/* every 30 minutes in pg_cron, which ignores a sixth field */
	itest_exec(a, "SELECT cron.schedule('half', '*/30 * * * * *', 'SELECT 5')");
	/* a name pgcrond cannot carry, longer than the 39 bytes its rewrite keeps */
	itest_exec(a, "SELECT cron.schedule('n\xc3\xa4"
	              "chtliche Aggregation der Verkaufszahlen', '0 5 * * *', 'SELECT 6')");

	/* --dry-run: what would happen, nothing changed; an owner who cannot log in to
	 * pgcrond's server is named (tried for real, as the job's runs will connect) */
	itest_exec(e.db, "ALTER ROLE " B " NOLOGIN");
	out = itest_cli(&status, "import", "-c", e.conf, "--from", ci, "--dry-run",
	                "--disable-source", NULL);
	itest_exec(e.db, "ALTER ROLE " B " LOGIN");
	ck_assert_msg(status == 0 && strstr(out, "would import \"nightly-a\" (pg_cron job 1)") &&
	                  strstr(out, "would set the imported jobs inactive"),
	              "%d %s", status, out);
	ck_assert_msg(strstr(out, "job \"yearly-b\": its owner, role \"" B "\", cannot log in to "
	                          "database \"" DB "\""),
	              "the dry run does not report the owner without LOGIN: %s", out);
	ck_assert_msg(!strstr(out, "role \"" A "\", cannot log in"), "%s", out);
	char dry_ids[256];
	jobids_of(out, dry_ids, sizeof(dry_ids));
	free(out);
	itest_assert_scalar(e.db, "SELECT count(*) FROM pgcrond.job WHERE source = 'sql'", "0");
	itest_assert_scalar(su, "SELECT bool_and(active) FROM cron.job WHERE jobname <> 'off'",
	                    "t");

	out = itest_cli(&status, "import", "-c", e.conf, "--from", ci, "--disable-source", NULL);
	ck_assert_msg(status == 0, "%d %s", status, out);
	/* the dry run printed the ids the real run gives */
	char real_ids[256];
	jobids_of(out, real_ids, sizeof(real_ids));
	ck_assert_msg(real_ids[0], "no ids in: %s", out);
	ck_assert_str_eq(dry_ids, real_ids);
	/* meanings that differ are said */
	ck_assert_msg(strstr(out,
	                     "schedule \"0 0 1 * * ignored\" has more than five fields; pg_cron "
	                     "ignores the rest and so does the import: \"0 0 1 * *\""),
	              "%s", out);
	ck_assert_msg(strstr(out, "@yearly never fired in pg_cron"), "%s", out);
	/* both readings of six fields, as cron.schedule's NOTICE says them */
	ck_assert_msg(strstr(out, "pg_cron job 6 (\"half\"): schedule \"*/30 * * * * *\" has six "
	                          "fields: pgcrond reads the first as seconds (every 30 seconds); "
	                          "pg_cron ignores a sixth field (every 30 minutes); imported with "
	                          "pg_cron's reading, \"*/30 * * * *\", as it ran there; for "
	                          "pgcrond's, change its schedule to \"30 seconds\" after the "
	                          "import\n"),
	              "%s", out);
	free(out);
	itest_assert_scalar(
	    e.db,
	    "SELECT string_agg(format('%s|%s|%s|%s|%s', jobname, schedule, username,"
	    " database, active), E'\\n' ORDER BY jobid) FROM cron.job",
	    "nightly-a|0 3 * * *|" A "|" DB "|t\n"
	    "pg_cron-2|*/5 * * * *|" A "|" DB "|t\n"
	    "my-job-3|0 0 1 * *|" A "|" DB "|t\n"
	    "yearly-b|@yearly|" B "|" DB "|t\n"
	    "off|0 4 * * *|" B "|" DB "|f\n"
	    "half|*/30 * * * *|" A "|" DB "|t\n"
	    "n--chtliche-Aggregation-der-Verkaufszah-7|0 5 * * *|" A "|" DB "|t");
	/* ... and pg_cron's are off */
	itest_assert_scalar(su, "SELECT bool_or(active) FROM cron.job", "f");

	/* a second import clashes and changes nothing */
	out = itest_cli(&status, "import", "-c", e.conf, "--from", ci, NULL);
	ck_assert_msg(status == 65 &&
	                  strstr(out, "the name \"nightly-a\" is taken by a SQL job of "
	                              "role " A) &&
	                  strstr(out, "nothing imported"),
	              "%d %s", status, out);
	free(out);
	itest_assert_scalar(e.db, "SELECT count(*) FROM cron.job", "7");

	/* the imported jobs run in pgcrond, as their owners */
	itest_env_start(&e);
	ck_assert(itest_wait_log(e.log, "jobs made in SQL changed", 10));
	out = itest_cli(&status, "trigger", "-c", e.conf, "nightly-a", NULL);
	ck_assert_msg(status == 0, "%d %s", status, out);
	free(out);
	ck_assert_msg(itest_env_wait(&e, 10, "SELECT count(*) > 0 FROM ticks"), "%s",
	              itest_read_file(e.log));
	itest_assert_scalar(e.db, "SELECT string_agg(DISTINCT job || ' ' || who, ',') FROM ticks",
	                    "nightly-a " A);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);

	/* --to-files: the same jobs as a job file */
	char *dir = itest_env_path(&e, "imported");
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "mkdir -p %s && chmod 777 %s", dir, dir);
	ck_assert_int_eq(system(cmd), 0);
	out = itest_cli(&status, "import", "-c", e.conf, "--from", ci, "--to-files", dir, NULL);
	ck_assert_msg(status == 0 && strstr(out, "wrote 7 job(s)"), "%d %s", status, out);
	free(out);
	snprintf(cmd, sizeof(cmd), "%s/pg_cron-import.conf", dir);
	char *file = itest_read_file(cmd);
	ck_assert_msg(strstr(file, "name = \"my-job-3\"; command = \"SELECT 2\";\n"
	                           "    schedule = \"0 0 1 * *\"; database = \"" DB "\";"),
	              "%s", file);
	free(file);
	free(dir);

	PQfinish(a);
	PQfinish(b);
	PQfinish(su);
	free(ci);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pgcron_import");
	TCase *tc = tcase_create("import");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, import_moves_a_pg_cron_installation);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
