/* A real failover (docs/several-instances.md): a streaming standby of a
 * throwaway server (pg_basebackup), the primary stopped, the standby promoted. pgcrond with a
 * two-host conninfo (target_session_attrs=read-write) goes on running jobs and writing
 * history on the new primary without a restart; a pgcrond pointed at the standby alone
 * runs nothing while it is in recovery, says so once, and starts within 10 s of the
 * promotion. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"

/* the server's bin directory (itest_pgbin), which must hold pg_basebackup: main skips the
 * suite without it */
static const char *pgbin;

static char standby_dir[1024], standby_sock[64];

static int as_user(const char *cmd)
{
	char full[9000];
	if (getuid() == 0)
		snprintf(full, sizeof(full), "runuser -u %s -- sh -c '%s'", itest_user(), cmd);
	else
		snprintf(full, sizeof(full), "sh -c '%s'", cmd);
	return system(full);
}

static void standby_stop_at_exit(void)
{
	char cmd[1400];
	snprintf(cmd, sizeof(cmd),
	         "%s/pg_ctl -D %s/data -m immediate -w -t 30 stop >/dev/null 2>&1", pgbin,
	         standby_dir);
	if (as_user(cmd) != 0)
		fprintf(stderr, "it_failover: the standby at %s was not running at exit\n",
		        standby_dir);
	rmdir(standby_sock); /* empty once the server is stopped */
}

static void write_conf(const char *path, const char *dir, const char *name, const char *ci)
{
	itest_write_file(path,
	                 "instance = \"%s\";\n"
	                 "timezone = \"UTC\";\n"
	                 "plugin_dir = \"%s/conf.d\";\n"
	                 "conf_dir = \"conf.d\";\n"
	                 "state_dir = \"%s/state\";\n"
	                 "databases = { app = { conninfo = \"%s\"; pool = 2; }; };\n"
	                 "history = { database = \"app\"; };\n",
	                 name, dir, dir, ci);
}

START_TEST(promoted_standby_takes_over)
{
	char *dir = itest_tmpdir("failover");
	char cmd[8192], path[1200];
	char *primary = itest_sandbox2_start(dir);
	const char *pp = strstr(primary, "port=");
	ck_assert_msg(pp, "no port in %s", primary);
	int port = atoi(pp + 5);
	/* the sockets' directories as the servers know them: short ones under /tmp (a socket's
	 * path may not exceed 107 bytes, and DIR may be deep in a build tree) */
	char psock[1100], ssock[1100];
	const char *ph = strstr(primary, "host=");
	ck_assert_msg(ph, "no host in %s", primary);
	snprintf(psock, sizeof(psock), "%.*s", (int)strcspn(ph + 5, " "), ph + 5);

	/* the primary: replication over its socket, the schema and the job's table */
	snprintf(cmd, sizeof(cmd),
	         "printf \"local replication all trust\\n\" >> %s/pg2/data/pg_hba.conf && "
	         "%s/pg_ctl -D %s/pg2/data reload >/dev/null",
	         dir, pgbin, dir);
	ck_assert_msg(as_user(cmd) == 0, "%s", cmd);
	PGconn *p = itest_connect(primary);
	itest_exec(p, "SET client_min_messages = warning");
	for (int v = 1; v < 100; v++) { /* every step, as pgcrond install applies them */
		snprintf(path, sizeof(path), "%s/../sql/pgcrond--%d.sql", TEST_SOURCE_DIR, v);
		char *sql = itest_read_file(path);
		if (sql[0])
			itest_exec(p, sql);
		free(sql);
	}
	itest_exec(p, "CREATE TABLE ticks (by text, at timestamptz DEFAULT clock_timestamp(),"
	              " standby boolean DEFAULT pg_is_in_recovery());"
	              "GRANT USAGE ON SCHEMA pgcrond TO PUBLIC;"
	              "GRANT ALL ON ALL TABLES IN SCHEMA pgcrond TO PUBLIC;"
	              "GRANT ALL ON ALL SEQUENCES IN SCHEMA pgcrond TO PUBLIC;"
	              "GRANT ALL ON ticks TO PUBLIC");

	/* the standby: a base backup streaming from it, its own socket dir, same port number */
	snprintf(standby_dir, sizeof(standby_dir), "%s/sb", dir);
	snprintf(standby_sock, sizeof(standby_sock), "/tmp/pgsb.XXXXXX");
	ck_assert_msg(mkdtemp(standby_sock) != NULL, "mkdtemp %s", standby_sock);
	snprintf(ssock, sizeof(ssock), "%s", standby_sock);
	itest_chown_user(ssock);
	snprintf(cmd, sizeof(cmd),
	         "chmod 700 %s && %s/pg_basebackup -h %s -p %d -U postgres"
	         " -D %s/data -R -X stream -c fast >/dev/null 2>&1",
	         standby_dir, pgbin, psock, port, standby_dir);
	ck_assert_msg(mkdir(standby_dir, 0700) == 0, "mkdir %s", standby_dir);
	itest_chown_user(standby_dir);
	ck_assert_msg(as_user(cmd) == 0, "pg_basebackup failed: %s", cmd);
	atexit(standby_stop_at_exit);
	snprintf(cmd, sizeof(cmd),
	         "%s/pg_ctl -D %s/data -l %s/server.log -w -t 60"
	         " -o \"-c unix_socket_directories=%s -c hot_standby=on\" start >/dev/null",
	         pgbin, standby_dir, standby_dir, ssock);
	ck_assert_msg(as_user(cmd) == 0, "the standby did not start: %s", cmd);
	/* and stopped when this process ends however it ends (a timeout's SIGKILL runs no
	 * atexit handler), the way pg-sandbox's watcher stops a sandbox */
	snprintf(cmd, sizeof(cmd),
	         "setsid nohup sh -c \"tail --pid=%ld -f /dev/null; "
	         "%s/pg_ctl -D %s/data -m immediate -w -t 30 stop\" >/dev/null 2>&1 </dev/null &",
	         (long)getpid(), pgbin, standby_dir);
	ck_assert_msg(as_user(cmd) == 0, "no watcher for the standby: %s", cmd);
	char sci[1400];
	snprintf(sci, sizeof(sci), "host=%s port=%d user=postgres dbname=postgres", ssock, port);
	PGconn *s = itest_connect(sci);
	itest_assert_scalar(s, "SELECT pg_is_in_recovery()", "t");

	/* A: both hosts, read-write wanted. B: the standby alone. */
	char aci[2600];
	snprintf(aci, sizeof(aci),
	         "host=%s,%s port=%d,%d user=postgres dbname=postgres "
	         "target_session_attrs=read-write connect_timeout=2",
	         psock, ssock, port, port);
	/* each its own job (a job defined on one instance runs only there), so B's first run
	 * after the promotion does not depend on winning a claim from A */
	const char *jobs[] = {
	    "job = { name = \"tick_a\"; command = \"INSERT INTO ticks (by) VALUES "
	    "('a')\"; database = \"app\"; schedule = \"* * * * * *\"; };\n",
	    "job = { name = \"tick_b\"; command = \"INSERT INTO ticks (by) VALUES "
	    "('b')\"; database = \"app\"; schedule = \"* * * * * *\"; };\n"};
	char *da = itest_tmpdir("fo-a"), *db = itest_tmpdir("fo-b");
	char confa[1200], confb[1200], loga[1200], logb[1200];
	const char *dirs[] = {da, db};
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/conf.d", dirs[i]);
		ck_assert(mkdir(path, 0755) == 0);
		snprintf(path, sizeof(path), "%s/conf.d/10-tick.conf", dirs[i]);
		itest_write_file(path, "%s", jobs[i]);
	}
	snprintf(confa, sizeof(confa), "%s/pgcrond.conf", da);
	snprintf(confb, sizeof(confb), "%s/pgcrond.conf", db);
	snprintf(loga, sizeof(loga), "%s/daemon.log", da);
	snprintf(logb, sizeof(logb), "%s/daemon.log", db);
	write_conf(confa, da, "fo-a", aci);
	write_conf(confb, db, "fo-b", sci);
	pid_t a = itest_daemon_start(confa, loga);
	pid_t b = itest_daemon_start(confb, logb);
	ck_assert_msg(itest_wait_sql(p,
	                             "SELECT count(*) >= 2 FROM pgcrond.job_run_details"
	                             " WHERE status = 'succeeded' AND instance = 'fo-a'",
	                             10),
	              "A runs nothing on the primary:\n%s", itest_read_file(loga));
	/* B sees a standby: it waits, and says so once */
	ck_assert_msg(itest_wait_log(logb, "is in recovery", 10), "B:\n%s", itest_read_file(logb));
	itest_sleep(3);
	char *lb = itest_read_file(logb);
	ck_assert_msg(!strstr(lb, "tick_b: started"), "B started a run on the standby:\n%s", lb);
	int said = 0;
	for (const char *q = lb; (q = strstr(q, "is in recovery")) != NULL; q++)
		said++;
	ck_assert_msg(said == 1, "said %d times:\n%s", said, lb);
	free(lb);

	/* failover: the primary goes away, the standby is promoted */
	itest_sandbox2("pause");
	double t0 = itest_now();
	snprintf(cmd, sizeof(cmd), "%s/pg_ctl -D %s/data -w -t 30 promote >/dev/null", pgbin,
	         standby_dir);
	ck_assert_msg(as_user(cmd) == 0, "promote failed");
	itest_assert_scalar(s, "SELECT pg_is_in_recovery()", "f");
	/* both go on against the new primary, without a restart: B within 10 s */
	ck_assert_msg(itest_wait_sql(s,
	                             "SELECT count(*) >= 1 FROM pgcrond.job_run_details"
	                             " WHERE status = 'succeeded' AND instance = 'fo-b'",
	                             10),
	              "B did not start within 10 s of the promotion:\n%s", itest_read_file(logb));
	fprintf(stderr, "it_failover: B's first run %.1f s after the promotion\n",
	        itest_now() - t0);
	ck_assert_msg(itest_wait_sql(s,
	                             "SELECT count(*) >= 1 FROM pgcrond.job_run_details"
	                             " WHERE status = 'succeeded' AND instance = 'fo-a'"
	                             " AND start_time > now() - interval '5 s'",
	                             30),
	              "A does not run on the new primary:\n%s", itest_read_file(loga));
	itest_sleep(2); /* a window for a fire run twice to show */
	/* nothing ran while its server was a standby, and no fire ran twice */
	itest_assert_scalar(s, "SELECT count(*) FROM ticks WHERE standby", "0");
	itest_assert_scalar(
	    s,
	    "SELECT count(*) FROM (SELECT job_name, scheduled_time FROM pgcrond.job_run_details"
	    " WHERE status = 'succeeded' GROUP BY 1, 2 HAVING count(*) > 1) d",
	    "0");
	ck_assert_int_eq(itest_daemon_stop(a, SIGTERM, 20), 0);
	ck_assert_int_eq(itest_daemon_stop(b, SIGTERM, 20), 0);
	PQfinish(s);
	PQfinish(p);
	free(primary);
	free(da);
	free(db);
	free(dir);
}
END_TEST

int main(void)
{
	pgbin = itest_pgbin();
	char tool[1100];
	snprintf(tool, sizeof(tool), "%s/pg_basebackup", pgbin);
	if (access(tool, X_OK) != 0) {
		printf("it_failover: skipped: no %s (the standby is a base backup of the server's "
		       "own version; "
		       "the npm registry's servers come without it)\n",
		       tool);
		return 77;
	}
	Suite *s = suite_create("failover");
	TCase *tc = tcase_create("failover");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, promoted_standby_takes_over);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
