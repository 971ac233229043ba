/* The page acts as a PostgreSQL role (POST /login), in headless chromium driven by selenium
 * (page_actions.py), against the sandbox server asking two roles for their passwords
 * (scram-sha-256 in pg_hba.conf): a wrong password is refused; the first role creates a job
 * from the page and it runs as that role; pause, resume, edit, run now and unschedule do what
 * they do in SQL; the other role's job cannot be paused, run or unscheduled from its session;
 * a POST without the page's token and one from an ended session are refused; the session
 * cookie is HttpOnly and SameSite=Strict (those cases are skipped where selenium or
 * chromedriver is missing); and the login refuses what an attacker tries (page_refusals.py). */
#include <arpa/inet.h>
#include <check.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"

#define DB "it_page_actions"
#define ALICE "page_alice"
#define BOB "page_bob"
#define SLOW "page_slow"
#define HBA_LINE "local all " ALICE "," BOB "," SLOW " scram-sha-256\n"

static bool have_selenium(void)
{
	return access("/usr/bin/chromedriver", X_OK) == 0 &&
	       access("/usr/bin/chromium", X_OK) == 0 &&
	       system("/usr/bin/python3 -c 'import selenium' 2>/dev/null") == 0;
}

/* The port the daemon logging to LOG listens on, its URLs' SCHEME "http" or "https". */
static int logged_port(const char *log, const char *scheme)
{
	char needle[64];
	snprintf(needle, sizeof(needle), "http: listening on %s://", scheme);
	ck_assert_msg(itest_wait_log(log, needle, 10), "no listener:\n%s", itest_read_file(log));
	char *text = itest_read_file(log);
	const char *colon = strchr(strstr(text, needle) + strlen(needle), ':');
	int port = colon ? atoi(colon + 1) : 0;
	free(text);
	ck_assert_int_gt(port, 0);
	return port;
}

/* The two roles, their passwords, and what an administrator grants them for the page. */
static void roles(struct itest_env *e)
{
	int rc;
	char *out = itest_cli(&rc, "install", "-c", e->conf, NULL);
	ck_assert_msg(rc == 0, "pgcrond install: %d %s", rc, out);
	free(out);
	const char *roles[] = {ALICE, BOB};
	for (int i = 0; i < 2; i++) {
		char sql[512];
		/* (roles are the server's: a case before may have made them) */
		snprintf(sql, sizeof(sql), "CREATE ROLE %s", roles[i]);
		PQclear(PQexec(e->db, sql));
		snprintf(
		    sql, sizeof(sql),
		    "SET password_encryption = 'scram-sha-256';"
		    "ALTER ROLE %s LOGIN PASSWORD '%s-secret';"
		    "GRANT USAGE ON SCHEMA cron TO %s;"
		    "GRANT EXECUTE ON FUNCTION cron.alter_job(bigint,text,text,text,text,boolean)"
		    " TO %s",
		    roles[i], roles[i], roles[i], roles[i]);
		itest_exec(e->db, sql);
	}
}

/* The server asks the two roles for their passwords (scram-sha-256); returns the text of
 * pg_hba.conf as it was, and in *PATH its path, to put it back. */
static char *ask_passwords(struct itest_env *e, char **path)
{
	*path = itest_scalar(e->db, "SHOW hba_file");
	char *hba = itest_read_file(*path);
	if (!strstr(hba, HBA_LINE))
		itest_write_file(*path, HBA_LINE "%s", hba);
	itest_exec(e->db, "SELECT pg_reload_conf()");
	return hba;
}

START_TEST(a_role_acts_from_the_page)
{
	struct itest_env e;
	itest_env_init(&e, "page-actions", DB);
	itest_env_main(&e, "http = { listen = \"127.0.0.1:0\"; };\n");
	roles(&e);
	itest_exec(e.db, "CREATE TABLE ticks (job text, who text DEFAULT session_user,"
	                 " at timestamptz DEFAULT clock_timestamp());"
	                 "GRANT INSERT, SELECT ON ticks TO PUBLIC");
	char *hba_path = NULL, *hba = ask_passwords(&e, &hba_path);
	/* the daemon runs their jobs logged in as them: with a password file, as a host does */
	char *pgpass = itest_env_path(&e, "pgpass");
	itest_write_file(pgpass,
	                 "*:*:*:" ALICE ":" ALICE "-secret\n*:*:*:" BOB ":" BOB "-secret\n");
	itest_chown_user(pgpass);
	ck_assert(chmod(pgpass, 0600) == 0);
	setenv("PGPASSFILE", pgpass, 1);
	itest_env_start(&e);
	unsetenv("PGPASSFILE");
	int port = logged_port(e.log, "http");

	char shot[1024], cmd[4096];
	snprintf(shot, sizeof(shot), "%s/page-actions.png", e.dir);
	snprintf(cmd, sizeof(cmd),
	         "/usr/bin/python3 %s/integration/page_actions.py http://127.0.0.1:%d/ '%s' %s %s "
	         ">%s/selenium.out 2>&1",
	         TEST_SOURCE_DIR, port, e.ci, shot, e.dir, e.dir);
	int rc = system(cmd);
	char outfile[1100];
	snprintf(outfile, sizeof(outfile), "%s/selenium.out", e.dir);
	char *said = itest_read_file(outfile);
	itest_write_file(hba_path, "%s", hba);
	itest_exec(e.db, "SELECT pg_reload_conf()");
	ck_assert_msg(rc == 0, "page_actions.py: %d\n%s\ndaemon:\n%s", rc, said, itest_tail(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	/* every action is logged with the role, and no password anywhere */
	/* ajob, ojob refused without the grant, then ojob */
	ck_assert_msg(itest_count_in_file(e.log, "http: role " ALICE ": create job") == 3, "%s",
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

/* An address of this host beyond loopback (up), into OUT; false if there is none. */
static bool outside_address(char *out, size_t len)
{
	struct ifaddrs *ifs = NULL;
	bool found = false;
	if (getifaddrs(&ifs) < 0)
		return false;
	for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET) {
			struct in_addr a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
			found = (ntohl(a.s_addr) >> 24) != 127 && inet_ntop(AF_INET, &a, out, len);
		}
	freeifaddrs(ifs);
	return found;
}

/* page_login.py's output for ROLE logging in at URL (malloc'd). */
static char *login_from(struct itest_env *e, const char *url, const char *role, const char *pw)
{
	char cmd[2048], out[1100];
	snprintf(out, sizeof(out), "%s/login.out", e->dir);
	snprintf(cmd, sizeof(cmd),
	         "/usr/bin/python3 %s/integration/page_login.py %s %s %s >%s 2>&1", TEST_SOURCE_DIR,
	         url, role, pw, out);
	int rc = system(cmd);
	char *said = itest_read_file(out);
	ck_assert_msg(rc == 0, "page_login.py: %d %s", rc, said);
	return said;
}

/* A listener beyond loopback: without TLS a login from another address is refused, with
 * TLS (tls_cert_file, tls_key_file) it is taken, the cookie Secure as well. */
START_TEST(logins_beyond_loopback_need_tls)
{
	char ip[64];
	if (!outside_address(ip, sizeof(ip))) {
		fprintf(stderr, "it_page_actions: this host has no address beyond loopback; the "
		                "TLS case is not run\n");
		return;
	}
	struct itest_env e;
	itest_env_init(&e, "page-tls", DB "_tls");
	roles(&e);
	char *hba_path = NULL, *hba = ask_passwords(&e, &hba_path);
	char *tf = itest_env_path(&e, "http.token");
	itest_write_file(tf, "page-tls-t0ken-0123456789abcdef\n");
	itest_make_certs(e.dir);
	char *key = itest_env_path(&e, "self.key");
	const char *own[] = {tf, key};
	for (int i = 0; i < 2; i++) {
		itest_chown_user(own[i]);
		ck_assert(chmod(own[i], 0600) == 0);
	}
	itest_env_main(&e, "http = { listen = \"0.0.0.0:0\"; allow_remote = true;"
	                   " token_file = \"http.token\"; };\n");
	itest_env_start(&e);
	int port = logged_port(e.log, "http");
	char url[128];
	snprintf(url, sizeof(url), "http://%s:%d/", ip, port);
	char *said = login_from(&e, url, ALICE, ALICE "-secret");
	ck_assert_msg(strncmp(said, "403 ", 4) == 0 && strstr(said, "needs TLS"), "%s", said);
	free(said);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);

	itest_env_main(&e, "http = { listen = \"0.0.0.0:0\"; allow_remote = true;"
	                   " token_file = \"http.token\"; tls_cert_file = \"self.pem\";"
	                   " tls_key_file = \"self.key\"; };\n");
	itest_env_start(&e);
	port = logged_port(e.log, "https");
	snprintf(url, sizeof(url), "https://%s:%d/", ip, port);
	said = login_from(&e, url, ALICE, "wrong");
	ck_assert_msg(strncmp(said, "401 ", 4) == 0, "%s", said);
	free(said);
	said = login_from(&e, url, ALICE, ALICE "-secret");
	itest_write_file(hba_path, "%s", hba);
	itest_exec(e.db, "SELECT pg_reload_conf()");
	ck_assert_msg(
	    strncmp(said, "200 ", 4) == 0 && strstr(said, "HttpOnly; SameSite=Strict; Secure") &&
	        strstr(said, "session.json: 200 ") && strstr(said, "\"role\": \"" ALICE "\""),
	    "%s", said);
	free(said);
	ck_assert_int_eq(itest_count_in_file(e.log, "secret"), 0);
	free(key);
	free(tf);
	free(hba);
	free(hba_path);
	itest_env_teardown(&e);
}
END_TEST

/* The login refuses what an attacker tries (page_refusals.py): a role whose verifier names
 * 2,000,000 iterations does not hold up the daemon while its login is checked; a POST from
 * another site is refused; the cookie is found by its exact name; a role has at most four
 * sessions and an address ten logins a minute for a role. In SQL, the owner of a job may run
 * it now but not force it. */
START_TEST(the_login_refuses_attacks)
{
	struct itest_env e;
	itest_env_init(&e, "page-refusals", DB "_refusals");
	itest_env_main(&e, "http = { listen = \"127.0.0.1:0\"; };\n");
	roles(&e);
	char cmd[4096], out[1100];
	snprintf(out, sizeof(out), "%s/verifier.out", e.dir);
	snprintf(cmd, sizeof(cmd),
	         "/usr/bin/python3 %s/integration/page_refusals.py verifier its-password 2000000 "
	         ">%s",
	         TEST_SOURCE_DIR, out);
	ck_assert_int_eq(system(cmd), 0);
	char *verifier = itest_read_file(out), sql[512];
	verifier[strcspn(verifier, "\n")] = '\0';
	PQclear(PQexec(e.db, "CREATE ROLE " SLOW " LOGIN"));
	snprintf(sql, sizeof(sql), "ALTER ROLE " SLOW " PASSWORD '%s'", verifier);
	itest_exec(e.db, sql);
	char *hba_path = NULL, *hba = ask_passwords(&e, &hba_path);
	itest_env_start(&e);
	int port = logged_port(e.log, "http");
	snprintf(out, sizeof(out), "%s/refusals.out", e.dir);
	snprintf(cmd, sizeof(cmd),
	         "/usr/bin/python3 %s/integration/page_refusals.py http://127.0.0.1:%d/ %s %s %s "
	         ">%s 2>&1",
	         TEST_SOURCE_DIR, port, ALICE, BOB, SLOW, out);
	int rc = system(cmd);
	char *said = itest_read_file(out);
	itest_write_file(hba_path, "%s", hba);
	itest_exec(e.db, "SELECT pg_reload_conf()");
	ck_assert_msg(rc == 0, "page_refusals.py: %d\n%s\ndaemon:\n%s", rc, said,
	              itest_tail(e.log));
	ck_assert_int_eq(itest_count_in_file(e.log, "secret"), 0);
	ck_assert_int_eq(itest_count_in_file(e.log, "its-password"), 0);

	/* a job's owner runs it now, but only an operator forces a disabled one */
	itest_exec(e.db, "SET SESSION AUTHORIZATION " ALICE ";"
	                 "SELECT cron.schedule('alices', '0 0 1 1 *', 'SELECT 1')");
	itest_exec(e.db, "SELECT pgcrond.trigger('alices')");
	PGresult *r = PQexec(e.db, "SELECT pgcrond.trigger('alices', true)");
	const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	ck_assert_msg(st && strcmp(st, "42501") == 0, "force by the owner: %s",
	              PQresultErrorMessage(r));
	PQclear(r);
	itest_exec(e.db, "RESET SESSION AUTHORIZATION");
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	free(said);
	free(verifier);
	free(hba);
	free(hba_path);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("page_actions");
	TCase *tc = tcase_create("page");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, the_login_refuses_attacks);
	if (have_selenium()) {
		tcase_add_test(tc, a_role_acts_from_the_page);
		tcase_add_test(tc, logins_beyond_loopback_need_tls);
	} else {
		fprintf(stderr, "it_page_actions: the cases in chromium are skipped: chromium, "
		                "chromium-driver or python3-selenium is missing (scripts/setup "
		                "installs them)\n");
	}
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
