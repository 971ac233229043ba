/* Install with the least privilege: the daemon's role, an
 * ordinary login role without CREATEROLE or superuser, runs `pgcrond install` itself after a
 * superuser ran the block of docs/security.md ("Installing with the least privilege") once;
 * without that block install fails with exit 77 and says what to grant (not 69,
 * "unreachable", and it needs no CREATEROLE for a COMMENT ON ROLE once pgcrond_operator
 * exists). Then the daemon runs as that role. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define DB "it_install_priv"
#define DAEMON "it_install_priv_daemon"

/* The superuser's block, as docs/security.md gives it (database and role names filled in). */
static const char superuser_block[] =
    "DO $$ BEGIN\n"
    "  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgcrond_operator') THEN\n"
    "    CREATE ROLE pgcrond_operator NOLOGIN;\n"
    "  END IF;\n"
    "END $$;\n"
    "GRANT CREATE ON DATABASE " DB " TO " DAEMON ";\n"
    "ALTER ROLE " DAEMON " SET search_path = pg_catalog, \"$user\", public;\n";

START_TEST(non_superuser_installs_after_the_documented_grants)
{
	struct itest_env e;
	itest_env_init(&e, "install-priv", DB);
	itest_exec(e.db, "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '" DAEMON
	                 "') THEN EXECUTE 'DROP OWNED BY " DAEMON
	                 " CASCADE'; EXECUTE 'DROP ROLE " DAEMON "'; END IF; END $$;"
	                 "CREATE ROLE " DAEMON " LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB");
	itest_exec(e.db, "CREATE TABLE public.ticks (job text, who text DEFAULT current_user);"
	                 "GRANT INSERT, SELECT ON public.ticks TO " DAEMON);
	/* schema public as PostgreSQL 15 and later make it: no CREATE for every role (14 gave
	 * it to PUBLIC) */
	itest_exec(e.db, "REVOKE CREATE ON SCHEMA public FROM PUBLIC");
	/* the daemon's configuration connects as its own role */
	char *su_ci = e.ci;
	char ci[1024];
	snprintf(ci, sizeof(ci), "%s user=%s", su_ci, DAEMON);
	e.ci = ci;
	itest_env_main(&e, NULL);
	e.ci = su_ci;
	itest_env_job(&e, "10-tick.conf",
	              "job = { name = \"tick\"; database = \"app\"; schedule = \"1 seconds\";"
	              " command = \"INSERT INTO public.ticks (job) VALUES ('tick')\"; };\n");
	/* a plugin job whose objects go into schema public */
	itest_env_plugin(&e, PLUGIN_BUILD_DIR "/sql_view.so", "sql_view");
	itest_env_job(&e, "20-view.conf",
	              "job = { name = \"priv-view\"; plugin = \"sql_view\"; database = \"app\";"
	              " schedule = \"@daily\"; view = \"public.mv_priv\"; unique_key = \"a\";"
	              " query = \"SELECT 1 AS a\"; };\n");

	/* without the grants: a privilege error, not "unreachable", and what to do */
	int status;
	char *out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 77, "install without the grants: %d (wanted 77): %s", status, out);
	ck_assert_msg(strstr(out, "permission denied") && strstr(out, "SQLSTATE 42501") &&
	                  strstr(out, "role \"" DAEMON "\" lacks a privilege that install needs") &&
	                  strstr(out, "GRANT CREATE ON DATABASE " DB " TO \"" DAEMON "\"") &&
	                  strstr(out, "Installing with the least privilege"),
	              "%s", out);
	free(out);

	/* the superuser's block, once; then install as the daemon's role */
	itest_exec(e.db, superuser_block);
	itest_assert_scalar(
	    e.db, "SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = '" DAEMON "'",
	    "f");
	/* without the grant on schema public the plugin job's objects are refused (77) */
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 77, "install without CREATE on public: %d: %s", status, out);
	ck_assert_msg(strstr(out, "schema pgcrond created") &&
	                  strstr(out,
	                         "20-view.conf:1: job \"priv-view\": cannot create its objects "
	                         "in database \"app\": permission denied for schema public"),
	              "%s", out);
	free(out);
	itest_exec(e.db, "GRANT CREATE ON SCHEMA public TO " DAEMON);
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0, "install as " DAEMON ": %d: %s", status, out);
	ck_assert_msg(strstr(out, "plugins' objects created"), "%s", out);
	free(out);
	out = itest_cli(&status, "install", "-c", e.conf, NULL);
	ck_assert_msg(status == 0 && strstr(out, "nothing to change"), "%d: %s", status, out);
	free(out);
	itest_assert_scalar(e.db,
	                    "SELECT nspowner::regrole::text FROM pg_namespace"
	                    " WHERE nspname = 'pgcrond'",
	                    DAEMON);

	/* and the daemon runs as that role */
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 15,
	                             "SELECT count(*) > 0 FROM pgcrond.job_run_details"
	                             " WHERE job_name = 'tick' AND status = 'succeeded'"),
	              "the job did not run as " DAEMON ":\n%s", itest_read_file(e.log));
	itest_assert_scalar(e.db, "SELECT string_agg(DISTINCT who, ',') FROM public.ticks", DAEMON);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("install_privilege");
	TCase *tc = tcase_create("least");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, non_superuser_installs_after_the_documented_grants);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
