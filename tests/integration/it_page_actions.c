/* The page acts as a PostgreSQL role (POST /login), in headless chromium driven by selenium
 * (page_actions.py), against the sandbox server asking two roles for their passwords
 * (scram-sha-256 in pg_hba.conf): a wrong password is refused; the first role creates a job
 * from the page and it runs as that role; pause, resume, edit, run now and unschedule do what
 * they do in SQL; the other role's job cannot be paused, run or unscheduled from its session;
 * a POST without the page's token and one from an ended session are refused; the session
 * cookie is HttpOnly and SameSite=Strict. Skipped (77) where selenium or chromedriver is
 * missing. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"

#define DB "it_page_actions"
#define ALICE "page_alice"
#define BOB "page_bob"
#define HBA_LINE "local all " ALICE "," BOB " scram-sha-256\n"

static bool have_selenium(void)
{
	return access("/usr/bin/chromedriver", X_OK) == 0 &&
	       system("/usr/bin/python3 -c 'import selenium' 2>/dev/null") == 0;
}

static int logged_port(const char *log)
{
	static const char needle[] = "http: listening on http://127.0.0.1:";
	ck_assert_msg(itest_wait_log(log, needle, 10), "no listener:\n%s", itest_read_file(log));
	char *text = itest_read_file(log);
	int port = atoi(strstr(text, needle) + sizeof(needle) - 1);
	free(text);
	ck_assert_int_gt(port, 0);
	return port;
}

START_TEST(a_role_acts_from_the_page)
{
	struct itest_env e;
	itest_env_init(&e, "page-actions", DB);
	itest_env_main(&e, "http = { listen = \"127.0.0.1:0\"; };\n");
	int rc;
	char *out = itest_cli(&rc, "install", "-c", e.conf, NULL);
	ck_assert_msg(rc == 0, "pgcrond install: %d %s", rc, out);
	free(out);
	const char *roles[] = {ALICE, BOB};
	for (int i = 0; i < 2; i++) {
		char sql[512];
		snprintf(sql, sizeof(sql), "DROP OWNED BY %s; DROP ROLE %s", roles[i], roles[i]);
		PQclear(PQexec(e.db, sql));
		snprintf(
		    sql, sizeof(sql),
		    "SET password_encryption = 'scram-sha-256';"
		    "CREATE ROLE %s LOGIN PASSWORD '%s-secret';"
		    "GRANT USAGE ON SCHEMA cron TO %s;"
		    "GRANT EXECUTE ON FUNCTION cron.alter_job(bigint,text,text,text,text,boolean)"
		    " TO %s",
		    roles[i], roles[i], roles[i], roles[i]);
		itest_exec(e.db, sql);
	}
	itest_exec(e.db, "CREATE TABLE ticks (job text, who text DEFAULT session_user,"
	                 " at timestamptz DEFAULT clock_timestamp());"
	                 "GRANT INSERT, SELECT ON ticks TO PUBLIC");
	/* the server asks the two roles for their passwords; its file is put back at the end */
	char *hba_path = itest_scalar(e.db, "SHOW hba_file");
	char *hba = itest_read_file(hba_path);
	if (!strstr(hba, HBA_LINE))
		itest_write_file(hba_path, HBA_LINE "%s", hba);
	itest_exec(e.db, "SELECT pg_reload_conf()");
	/* the daemon runs their jobs logged in as them: with a password file, as a host does */
	char *pgpass = itest_env_path(&e, "pgpass");
	itest_write_file(pgpass,
	                 "*:*:*:" ALICE ":" ALICE "-secret\n*:*:*:" BOB ":" BOB "-secret\n");
	itest_chown_user(pgpass);
	ck_assert(chmod(pgpass, 0600) == 0);
	setenv("PGPASSFILE", pgpass, 1);
	itest_env_start(&e);
	unsetenv("PGPASSFILE");
	int port = logged_port(e.log);

	char shot[1024], cmd[4096];
	snprintf(shot, sizeof(shot), "%s/page-actions.png", e.dir);
	snprintf(cmd, sizeof(cmd),
	         "/usr/bin/python3 %s/integration/page_actions.py http://127.0.0.1:%d/ '%s' %s %s "
	         ">%s/selenium.out 2>&1",
	         TEST_SOURCE_DIR, port, e.ci, shot, e.dir, e.dir);
	rc = system(cmd);
	char outfile[1100];
	snprintf(outfile, sizeof(outfile), "%s/selenium.out", e.dir);
	char *said = itest_read_file(outfile);
	itest_write_file(hba_path, "%s", hba);
	itest_exec(e.db, "SELECT pg_reload_conf()");
	ck_assert_msg(rc == 0, "page_actions.py: %d\n%s\ndaemon:\n%s", rc, said, itest_tail(e.log));
	/* every action is logged with the role, and no password anywhere */
	ck_assert_msg(itest_count_in_file(e.log, "http: role " ALICE ": create job") == 1, "%s",
	              itest_tail(e.log));
	ck_assert_int_eq(itest_count_in_file(e.log, "secret"), 0);
	const char *keep = getenv("PGCROND_SCREENSHOT");
	if (keep && *keep) {
		snprintf(cmd, sizeof(cmd), "cp %s '%s'", shot, keep);
		ck_assert_int_eq(system(cmd), 0);
	}
	free(said);
	free(pgpass);
	free(hba);
	free(hba_path);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	if (!have_selenium()) {
		fprintf(stderr, "it_page_actions: skipped: python3-selenium or chromium-driver is "
		                "missing (scripts/setup installs them)\n");
		return 77;
	}
	Suite *s = suite_create("page_actions");
	TCase *tc = tcase_create("page");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, a_role_acts_from_the_page);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
