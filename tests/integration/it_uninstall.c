/* pgcrond uninstall: refused while the daemon runs, or another daemon of
 * the history database (another configuration) does; afterwards it removes
 * the pgcrond and cron schemas and a second install works; --keep-history keeps the runs;
 * DROP SCHEMA cron CASCADE stops the jobs made in SQL; --restore-pg-cron hands the jobs made
 * in SQL back to a real pg_cron (Debian's, on a second server), active again. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define DB "it_uninstall"

/* The daemon's log (ARG: struct removal) says "removed" more often than it did before. */
struct removal {
	const char *log;
	int before;
};

static bool removal_logged(void *arg)
{
	const struct removal *r = arg;
	return itest_count_in_file(r->log, "removed") > r->before;
}

START_TEST(uninstall_refuses_then_removes)
{
	struct itest_env e;
	itest_env_init(&e, "uninstall", DB);
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install: %d %s", status, out);
	free(out);
	itest_exec(e.db, "CREATE TABLE ticks (at timestamptz DEFAULT now());"
	                 "GRANT INSERT ON ticks TO PUBLIC");
	itest_exec(e.db, "SELECT cron.schedule('tick', '* * * * * *', 'INSERT INTO ticks DEFAULT "
	                 "VALUES')");

	/* DROP SCHEMA cron CASCADE stops the job made in SQL */
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 15, "SELECT count(*) > 0 FROM ticks"), "%s",
	              itest_read_file(e.log));

	out = itest_cli(&status, "uninstall", "-c", e.conf, NULL);
	ck_assert_msg(status == 75, "uninstall while running: %d %s", status, out);
	ck_assert_msg(strstr(out, "stop it first"), "%s", out);
	free(out);
	itest_assert_scalar(e.db, "SELECT to_regnamespace('pgcrond') IS NOT NULL", "t");

	struct removal rm = {e.log, itest_count_in_file(e.log, "removed")};
	itest_exec(e.db, "SET client_min_messages = warning; DROP SCHEMA cron CASCADE");
	itest_assert_scalar(e.db,
	                    "SELECT count(*) FROM pgcrond.job WHERE source = 'sql'"
	                    " AND removed_at IS NULL",
	                    "0");
	/* the daemon applied it (its log says the job was removed), and a run started just
	 * before has ended */
	ck_assert_msg(itest_wait_until(removal_logged, &rm, 15), "the removal was not applied:\n%s",
	              itest_read_file(e.log));
	/* ... and its row says so (0.5 s alone was a moment, which a loaded machine overran) */
	itest_sleep(0.5);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT NOT EXISTS (SELECT FROM pgcrond.job_run_details"
	                             " WHERE status IN ('starting', 'running'))"),
	              "a run did not end:\n%s", itest_read_file(e.log));
	long long before = itest_env_count(&e, "SELECT count(*) FROM ticks");
	itest_sleep(3);
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM ticks"), before);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 15), 0);

	/* the cron schema again, for uninstall to remove */
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install: %d %s", status, out);
	free(out);
	long long runs = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details");
	ck_assert(runs > 0);

	/* a long option that has no letter, given a value it does not take, is named as
	 * written, and nothing is dropped */
	out = itest_cli(&status, "uninstall", "--keep-history=yes", "-c", e.conf, NULL);
	ck_assert_msg(status == 64, "bad option: %d %s", status, out);
	ck_assert_msg(strstr(out, "unknown option \"--keep-history=yes\""), "%s", out);
	free(out);

	out = itest_cli(&status, "uninstall", "-c", e.conf, "--dry-run", NULL);
	ck_assert_msg(status == 0, "dry run: %d %s", status, out);
	ck_assert_msg(strstr(out, "would drop schema pgcrond"), "%s", out);
	free(out);
	itest_assert_scalar(e.db, "SELECT to_regnamespace('pgcrond') IS NOT NULL", "t");

	out = itest_cli(&status, "uninstall", "-c", e.conf, "--keep-history", NULL);
	ck_assert_msg(status == 0, "uninstall: %d %s", status, out);
	ck_assert_msg(strstr(out, "dropped schema cron"), "%s", out);
	ck_assert_msg(strstr(out, "dropped schema net"), "%s", out);
	ck_assert_msg(strstr(out, "dropped schema pgcrond"), "%s", out);
	ck_assert_msg(strstr(out, "moved pgcrond.job_run_details"), "%s", out);
	free(out);
	itest_assert_scalar(
	    e.db,
	    "SELECT to_regnamespace('pgcrond') IS NULL"
	    " AND to_regnamespace('cron') IS NULL AND to_regnamespace('net') IS NULL",
	    "t");
	ck_assert_int_eq(
	    itest_env_count(&e, "SELECT count(*) FROM pgcrond_history.job_run_details"), runs);

	/* a second install works again, and a second uninstall without --keep-history */
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install again: %d %s", status, out);
	free(out);
	itest_assert_scalar(e.db, "SELECT count(*) FROM pgcrond.job_run_details", "0");
	out = itest_cli(&status, "uninstall", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "uninstall again: %d %s", status, out);
	free(out);
	itest_assert_scalar(e.db, "SELECT to_regnamespace('pgcrond') IS NULL", "t");
	out = itest_cli(&status, "uninstall", "-c", e.conf, NULL);
	ck_assert_msg(status == 0 && strstr(out, "nothing to uninstall"), "%d %s", status, out);
	free(out);
	out = itest_cli(&status, "uninstall", "-c", e.conf, "--restore-pg-cron", NULL);
	ck_assert_msg(status == 64 && strstr(out, "needs --to"), "%d %s", status, out);
	free(out);

	/* a net schema someone else made is neither served nor removed */
	itest_exec(e.db, "CREATE SCHEMA net; CREATE TABLE net.mine (x int)");
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install beside another net: %d %s", status, out);
	free(out);
	out = itest_cli(&status, "uninstall", "-c", e.conf, NULL);
	ck_assert_msg(status == 0 && !strstr(out, "schema net"), "%d %s", status, out);
	free(out);
	itest_assert_scalar(e.db, "SELECT to_regclass('net.mine') IS NOT NULL", "t");

	/* nor one a role made with pgcrond's own comment on it (nor such a cron): the comment is
	 * that role's word, and install would otherwise build pgcrond's queue in a schema the role
	 * owns */
	itest_exec(e.db, "DROP SCHEMA net CASCADE");
	itest_exec(e.db, "SET client_min_messages = warning");
	PQclear(PQexec(e.db, "DROP OWNED BY it_uninstall_h; DROP ROLE it_uninstall_h"));
	itest_exec(e.db, "CREATE ROLE it_uninstall_h");
	itest_exec(e.db, "GRANT CREATE ON DATABASE " DB " TO it_uninstall_h");
	itest_exec(e.db, "SET ROLE it_uninstall_h; CREATE SCHEMA net; "
	                 "COMMENT ON SCHEMA net IS 'pgcrond: pg_net compatibility'; RESET ROLE");
	itest_exec(e.db, "SET client_min_messages = warning; DROP SCHEMA IF EXISTS cron CASCADE");
	itest_exec(e.db,
	           "SET ROLE it_uninstall_h; CREATE SCHEMA cron; "
	           "COMMENT ON SCHEMA cron IS 'pgcrond: pg_cron compatibility views'; RESET ROLE");
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install beside a role's net: %d %s", status, out);
	free(out);
	itest_assert_scalar(e.db, "SELECT to_regclass('net.http_request_queue') IS NULL", "t");
	itest_assert_scalar(e.db, "SELECT to_regclass('cron.job') IS NULL", "t");
	itest_assert_scalar(
	    e.db, "SELECT to_regprocedure('net.http_get(text,jsonb,jsonb,integer)') IS NULL", "t");
	out = itest_cli(&status, "uninstall", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "uninstall beside a role's net: %d %s", status, out);
	free(out);
	itest_assert_scalar(
	    e.db, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'net'",
	    "it_uninstall_h");
	itest_assert_scalar(
	    e.db, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'cron'",
	    "it_uninstall_h");
	itest_exec(e.db, "DROP SCHEMA net; DROP SCHEMA cron; REVOKE CREATE ON DATABASE " DB
	                 " FROM it_uninstall_h; "
	                 "DROP ROLE it_uninstall_h");
	itest_env_teardown(&e);
}
END_TEST

#define O_DB "it_uninstall_o"

/* A daemon of another configuration on the same history database (another host, or another
 * state_dir: its control socket is not this configuration's) is told by its instance row and
 * its session: uninstall with this configuration, whose daemon never ran, is refused, names
 * that instance and drops nothing while a run of it is in flight; once that daemon stopped
 * cleanly, uninstall goes on. */
START_TEST(uninstall_refuses_while_another_instance_runs)
{
	struct itest_env e;
	struct itest_inst b;
	itest_env_init(&e, "uninstall-other", O_DB);
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install: %d %s", status, out);
	free(out);
	itest_inst_init(&b, &e, "elsewhere",
	                "job = { name = \"slow\"; command = \"SELECT pg_sleep(3)\";"
	                " database = \"app\"; schedule = \"* * * * * *\"; };\n");
	itest_inst_up(&e, &b);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) = 1 FROM pg_stat_activity WHERE state ="
	                             " 'active' AND query LIKE 'SELECT pg_sleep(3)%%'"
	                             " AND datname = '" O_DB "'"),
	              "no run in flight:\n%s", itest_read_file(b.log));
	char *run = itest_wait_value(e.db,
	                             "SELECT min(runid) FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'slow' AND status = 'running'"
	                             " HAVING count(*) = 1",
	                             15);
	ck_assert_msg(run != NULL, "no row of the run in flight:\n%s", itest_read_file(b.log));

	out = itest_cli(&status, "uninstall", "-c", e.conf, NULL);
	ck_assert_msg(status == 75, "uninstall while another instance runs: %d %s", status, out);
	ck_assert_msg(strstr(out, "(live instance: elsewhere); stop every daemon first"), "%s",
	              out);
	free(out);
	itest_assert_scalar(e.db,
	                    "SELECT to_regnamespace('pgcrond') IS NOT NULL"
	                    " AND to_regnamespace('cron') IS NOT NULL",
	                    "t");
	char q[256];
	snprintf(q, sizeof(q), "SELECT count(*) FROM pgcrond.job_run_details WHERE runid = %s",
	         run);
	itest_assert_scalar(e.db, q, "1");

	/* stopped cleanly: the run ends within the grace, and its row says so */
	ck_assert_int_eq(itest_inst_stop(&b, SIGTERM), 0);
	snprintf(q, sizeof(q), "SELECT status FROM pgcrond.job_run_details WHERE runid = %s", run);
	itest_assert_scalar(e.db, q, "succeeded");
	out = itest_cli(&status, "uninstall", "-c", e.conf, "--dry-run", NULL);
	ck_assert_msg(status == 0 && strstr(out, "would drop schema pgcrond"), "dry run: %d %s",
	              status, out);
	free(out);
	out = itest_cli(&status, "uninstall", "-c", e.conf, NULL);
	ck_assert_msg(status == 0 && strstr(out, "dropped schema pgcrond"), "uninstall: %d %s",
	              status, out);
	free(out);
	itest_assert_scalar(e.db, "SELECT to_regnamespace('pgcrond') IS NULL", "t");
	free(run);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

#define R_DB "it_uninstall_r"
#define R_ROLE "it_uninstall_a"

static void make_role(PGconn *su)
{
	itest_exec(su, "SET client_min_messages = warning");
	PQclear(PQexec(su, "DROP OWNED BY " R_ROLE "; DROP ROLE " R_ROLE));
	itest_exec(su, "CREATE ROLE " R_ROLE " LOGIN");
}

START_TEST(restore_pg_cron_hands_the_jobs_back)
{
	struct itest_env e;
	itest_env_init(&e, "uninstall-restore", R_DB);
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install: %d %s", status, out);
	free(out);
	make_role(e.db);
	itest_exec(e.db, "GRANT USAGE ON SCHEMA cron TO " R_ROLE);

	/* pg_cron's server: a named and an unnamed job of the role */
	char *ci = itest_pgcron_start(e.dir, R_DB);
	char ci_a[1400], hist_a[1400];
	PGconn *su = itest_connect(ci);
	make_role(su);
	itest_exec(su, "GRANT USAGE ON SCHEMA cron TO " R_ROLE);
	snprintf(ci_a, sizeof(ci_a), "%s user=" R_ROLE, ci);
	PGconn *a = itest_connect(ci_a);
	itest_exec(a, "SELECT cron.schedule('nightly-a', '0 3 * * *', 'SELECT 1')");
	itest_exec(a, "SELECT cron.schedule('*/5 * * * *', 'SELECT 2')");
	PQfinish(a);

	out = itest_cli(&status, "import", "-c", e.conf, "--from", ci, "--disable-source", NULL);
	ck_assert_msg(status == 0, "import: %d %s", status, out);
	free(out);
	itest_assert_scalar(su, "SELECT bool_or(active) FROM cron.job", "f");
	/* a job made in pgcrond since, which pg_cron lacks */
	snprintf(hist_a, sizeof(hist_a), "%s user=" R_ROLE, e.ci);
	a = itest_connect(hist_a);
	itest_exec(a, "SELECT cron.schedule('new-a', '0 5 * * *', 'SELECT 3')");
	PQfinish(a);

	out = itest_cli(&status, "uninstall", "-c", e.conf, "--restore-pg-cron", "--to", ci,
	                "--dry-run", NULL);
	ck_assert_msg(status == 0, "dry run: %d %s", status, out);
	ck_assert_msg(
	    strstr(out, "would hand back job \"nightly-a\" to pg_cron (pg_cron job 1") &&
	        strstr(out, "would hand back job \"pg_cron-2\" to pg_cron (pg_cron job 2") &&
	        strstr(out, "would hand back job \"new-a\" to pg_cron (scheduled there"),
	    "%s", out);
	free(out);
	itest_assert_scalar(su, "SELECT count(*) || ' ' || bool_or(active) FROM cron.job",
	                    "2 false");
	itest_assert_scalar(e.db, "SELECT to_regnamespace('pgcrond') IS NOT NULL", "t");

	out = itest_cli(&status, "uninstall", "-c", e.conf, "--restore-pg-cron", "--to", ci, NULL);
	ck_assert_msg(status == 0, "uninstall --restore-pg-cron: %d %s", status, out);
	ck_assert_msg(strstr(out, "handed back job \"nightly-a\"") &&
	                  strstr(out, "dropped schema pgcrond"),
	              "%s", out);
	free(out);
	itest_assert_scalar(su,
	                    "SELECT string_agg(coalesce(jobname, '-') || '|' || schedule || '|' ||"
	                    " username || '|' || database || '|' || active, ' ' ORDER BY jobid)"
	                    " FROM cron.job",
	                    "nightly-a|0 3 * * *|" R_ROLE "|" R_DB "|true"
	                    " -|*/5 * * * *|" R_ROLE "|" R_DB "|true"
	                    " new-a|0 5 * * *|" R_ROLE "|" R_DB "|true");
	itest_assert_scalar(e.db,
	                    "SELECT to_regnamespace('pgcrond') IS NULL"
	                    " AND to_regnamespace('cron') IS NULL",
	                    "t");
	PQfinish(su);
	free(ci);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("uninstall");
	TCase *tc = tcase_create("uninstall");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, uninstall_refuses_then_removes);
	tcase_add_test(tc, uninstall_refuses_while_another_instance_runs);
	tcase_add_test(tc, restore_pg_cron_hands_the_jobs_back);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
