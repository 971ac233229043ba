/* pgcrond import keeps the source's password off the command line: a
 * --from holding a password (key=value or URI) is refused before anything is done, with the
 * ways that keep it out of /proc/PID/cmdline, and those ways work against a server that
 * asks for a password: PGPASSWORD, a password file (PGPASSFILE) and a service
 * (PGSERVICEFILE, service=NAME). pgcrond uninstall --restore-pg-cron --to, the way back,
 * refuses a password the same way, and removes nothing then. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "itest.h"

#define DB "it_import_secret"
#define ROLE "it_import_secret_reader"
#define SECRET "hunter2-import"

START_TEST(password_on_the_command_line_is_refused)
{
	struct itest_env e;
	itest_env_init(&e, "import-secret", DB);
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install: %d %s", status, out);
	free(out);

	const char *froms[] = {"host=/nowhere dbname=x password=" SECRET,
	                       "postgresql://someone:" SECRET "@localhost/x"};
	for (int i = 0; i < 2; i++) {
		out = itest_cli(&status, "import", "-c", e.conf, "--from", froms[i], "--dry-run",
		                NULL);
		ck_assert_msg(status == 64, "%s: %d %s", froms[i], status, out);
		ck_assert_msg(strstr(out,
		                     "--from holds a password, which every local user can read "
		                     "in the process list") &&
		                  strstr(out, "PGPASSWORD") && strstr(out, "PGPASSFILE") &&
		                  strstr(out, "service=NAME") && !strstr(out, SECRET),
		              "%s", out);
		free(out);
	}

	/* a server that asks this role for its password: the second sandbox, its pg_hba.conf
	 * asking scram-sha-256 of ROLE before the sandbox's trust line */
	char *ci2 = itest_sandbox2_start(e.dir);
	PGconn *pg2 = itest_connect(ci2);
	itest_exec(pg2,
	           "SET password_encryption = 'scram-sha-256';"
	           "CREATE ROLE " ROLE " LOGIN PASSWORD '" SECRET "';"
	           "CREATE SCHEMA cron; CREATE TABLE cron.job (jobid bigint, schedule text,"
	           " command text, database text, username text, active boolean,"
	           " jobname text);"
	           "GRANT USAGE ON SCHEMA cron TO " ROLE "; GRANT SELECT ON cron.job TO " ROLE);
	char *hba_path = NULL;
	ck_assert(asprintf(&hba_path, "%s/pg2/data/pg_hba.conf", e.dir) > 0);
	char *hba = itest_read_file(hba_path);
	itest_write_file(hba_path, "local all " ROLE " scram-sha-256\n%s", hba);
	free(hba);
	itest_exec(pg2, "SELECT pg_reload_conf()");
	PQfinish(pg2);

	char from[1400];
	snprintf(from, sizeof(from), "%.1200s user=" ROLE, ci2);
	/* no password given: the server's refusal */
	out = itest_cli(&status, "import", "-c", e.conf, "--from", from, "--dry-run", NULL);
	ck_assert_msg(status == 69 && strstr(out, "password"), "%d %s", status, out);
	free(out);

	/* PGPASSWORD */
	setenv("PGPASSWORD", SECRET, 1);
	out = itest_cli(&status, "import", "-c", e.conf, "--from", from, "--dry-run", NULL);
	unsetenv("PGPASSWORD");
	ck_assert_msg(status == 0, "with PGPASSWORD: %d %s", status, out);
	free(out);

	/* a password file */
	char *passfile = itest_env_path(&e, "pgpass");
	itest_write_file(passfile, "*:*:*:" ROLE ":" SECRET "\n");
	itest_chown_user(passfile);
	ck_assert(chmod(passfile, 0600) == 0);
	setenv("PGPASSFILE", passfile, 1);
	out = itest_cli(&status, "import", "-c", e.conf, "--from", from, "--dry-run", NULL);
	ck_assert_msg(status == 0, "with PGPASSFILE: %d %s", status, out);
	free(out);

	/* a service naming the server (the password still from the password file) */
	char *svcfile = itest_env_path(&e, "pg_service.conf");
	char *svc = strdup(from), *w = svc;
	for (char *r = svc; *r; r++) /* key=value pairs, one a line */
		*w++ = *r == ' ' ? '\n' : *r;
	*w = '\0';
	itest_write_file(svcfile, "[pgcron_source]\n%s\n", svc);
	free(svc);
	setenv("PGSERVICEFILE", svcfile, 1);
	out = itest_cli(&status, "import", "-c", e.conf, "--from", "service=pgcron_source",
	                "--dry-run", NULL);
	unsetenv("PGSERVICEFILE");
	unsetenv("PGPASSFILE");
	ck_assert_msg(status == 0, "with service=: %d %s", status, out);
	free(out);

	free(passfile);
	free(svcfile);
	free(hba_path);
	free(ci2);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(uninstall_to_with_a_password_is_refused)
{
	struct itest_env e;
	itest_env_init(&e, "uninstall-secret", DB "_u");
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install: %d %s", status, out);
	free(out);

	const char *tos[] = {"host=/nowhere dbname=x password=" SECRET,
	                     "postgresql://someone:" SECRET "@localhost/x"};
	for (int i = 0; i < 2; i++) {
		const char *dry[] = {"--dry-run", NULL};
		for (int d = 0; d < 2; d++) {
			out = itest_cli(&status, "uninstall", "-c", e.conf, "--restore-pg-cron",
			                "--to", tos[i], dry[d], NULL);
			ck_assert_msg(status == 64, "%s: %d %s", tos[i], status, out);
			ck_assert_msg(strstr(out, "--to holds a password, which every local user "
			                          "can read in the process list") &&
			                  strstr(out, "PGPASSWORD") && strstr(out, "PGPASSFILE") &&
			                  strstr(out, "service=NAME") &&
			                  strstr(out, "nothing was changed") &&
			                  !strstr(out, SECRET),
			              "%s", out);
			free(out);
		}
	}
	/* nothing was removed */
	itest_assert_scalar(e.db,
	                    "SELECT to_regnamespace('pgcrond') IS NOT NULL"
	                    " AND to_regnamespace('cron') IS NOT NULL",
	                    "t");
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("import_secret");
	TCase *tc = tcase_create("secret");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, password_on_the_command_line_is_refused);
	tcase_add_test(tc, uninstall_to_with_a_password_is_refused);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
