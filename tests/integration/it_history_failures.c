/* History by outcome (a job's history = "failures"; docs/operations.md, "History by outcome"):
 * an every-second job whose command fails on every third try, with runs in flight (each takes
 * 0.2 s). The command counts its tries itself, in a sequence (not rolled back with a failure),
 * and its successes in a table. Asserted: no succeeded row, a failed row for every failure,
 * the counts' runs per hour equal to the successes, /metrics (read by the reference
 * Prometheus parser) counting every run, and a job after it still run on its successes. With
 * two instances: each fire claimed once (a second run of a fire would fail on the successes'
 * unique second) and the counts not doubled. Run one case with CK_RUN_CASE=<name>. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define DB "pgcrond_it_history_failures"
#define PROM_PARSE TEST_SOURCE_DIR "/integration/prom_parse.py"
#define PYTHON "/usr/bin/python3" /* Debian's, with python3-prometheus-client */

/* hf.step(): a try, numbered by hf.tries; every third fails (before its insert, in the same
 * transaction); the others note their number and the second they ran in. */
static const char setup_sql[] =
    "CREATE SCHEMA hf; CREATE SEQUENCE hf.tries;"
    "CREATE TABLE hf.ok (n bigint, at timestamptz UNIQUE);"
    "CREATE TABLE hf.down (at timestamptz DEFAULT now());"
    "CREATE FUNCTION hf.step() RETURNS void LANGUAGE plpgsql AS $$"
    " DECLARE n bigint := nextval('hf.tries'); BEGIN"
    "  PERFORM pg_sleep(0.2);"
    "  IF n % 3 = 0 THEN RAISE EXCEPTION 'planned failure of try %', n; END IF;"
    "  INSERT INTO hf.ok VALUES (n, date_trunc('second', statement_timestamp()));"
    " END $$;"
    "GRANT USAGE ON SCHEMA hf TO PUBLIC; GRANT ALL ON ALL TABLES IN SCHEMA hf TO PUBLIC;"
    "GRANT ALL ON SEQUENCE hf.tries TO PUBLIC";

static const char jobs[] =
    "jobs = ( { name = \"hf\"; database = \"app\"; schedule = \"* * * * * *\";"
    " history = \"failures\"; command = \"SELECT hf.step()\"; },\n"
    " { name = \"hf-down\"; database = \"app\"; after = [ \"hf\" ];"
    " command = \"INSERT INTO hf.down DEFAULT VALUES\"; } );\n";

/* The tries made, the failures among them (every third) and the successes noted. */
static void tries(PGconn *db, long long *n, long long *failed, long long *ok)
{
	*n = itest_scalar_ll(db, "SELECT CASE WHEN is_called THEN last_value ELSE 0 END"
	                         " FROM hf.tries");
	*failed = *n / 3;
	*ok = itest_scalar_ll(db, "SELECT count(*) FROM hf.ok");
	ck_assert_int_eq(*ok, *n - *failed);
}

/* Once the history has everything (within 20 s): no succeeded row of hf, a failed row per
 * failure and none other, and the counts' runs per hour those of the successes. */
static void assert_history(struct itest_env *e, const char *logs)
{
	long long n, failed, ok;
	tries(e->db, &n, &failed, &ok);
	ck_assert_msg(n >= 6, "only %lld tries:\n%s", n, logs);
	bool done = itest_env_wait(
	    e, 20,
	    "SELECT (SELECT count(*) FROM pgcrond.job_run_details WHERE job_name = 'hf') = %lld"
	    " AND (SELECT coalesce(sum(runs), 0) FROM pgcrond.job_run_counts"
	    "  WHERE job_name = 'hf') = %lld",
	    failed, ok);
	char *rows = itest_scalar(
	    e->db, "SELECT string_agg(status || ' ' || coalesce(return_message, ''), '; ')"
	           " FROM pgcrond.job_run_details WHERE job_name = 'hf'");
	char *counts = itest_scalar(e->db, "SELECT string_agg(hour || ': ' || runs, '; ')"
	                                   " FROM pgcrond.job_run_counts WHERE job_name = 'hf'");
	ck_assert_msg(done, "%lld tries, %lld failed: rows %s; counts %s\n%s", n, failed,
	              rows ? rows : "none", counts ? counts : "none", logs);
	ck_assert_int_eq(itest_env_count(e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                    " WHERE job_name = 'hf' AND status = 'failed'"
	                                    " AND return_message LIKE 'planned failure of try %%'"),
	                 failed);
	/* per hour: the successes by the hour their run started */
	ck_assert_int_eq(itest_env_count(e, "SELECT count(*) FROM (SELECT date_trunc('hour', at)"
	                                    " AS hour, count(*) AS n FROM hf.ok GROUP BY 1) o"
	                                    " FULL JOIN (SELECT hour, runs FROM"
	                                    " pgcrond.job_run_counts WHERE job_name = 'hf') c"
	                                    " USING (hour) WHERE o.n IS DISTINCT FROM c.runs"),
	                 0);
	/* each run took 0.2 s and a little: the median says so, within a bucket (19%) */
	ck_assert_int_eq(itest_env_count(e, "SELECT count(*) FROM pgcrond.run_counts"
	                                    " WHERE job_name = 'hf' AND p50_ms BETWEEN 200 AND 300"
	                                    " AND p99_ms >= p50_ms AND mean_ms >= 200"),
	                 itest_env_count(e, "SELECT count(*) FROM pgcrond.job_run_counts"
	                                    " WHERE job_name = 'hf'"));
	free(rows);
	free(counts);
}

/* The value of pgcrond_job_runs_total{job=JOB,status=STATUS} on PAGE, read by the reference
 * Prometheus parser. */
static long long runs_total(const char *dir, const char *page, const char *job, const char *status)
{
	char in[1024], cmd[4096];
	snprintf(in, sizeof(in), "%s/metrics.txt", dir);
	itest_write_file(in, "%s", page);
	snprintf(cmd, sizeof(cmd),
	         PYTHON " %s < %s | " PYTHON " -c 'import json, sys; print(int(sum(s[\"value\"]"
	                " for f in json.load(sys.stdin)[\"families\"] for s in f[\"samples\"]"
	                " if s[\"name\"] == \"pgcrond_job_runs_total\" and s[\"labels\"] == "
	                "{\"job\": \"%s\", \"status\": \"%s\"})))'",
	         PROM_PARSE, in, job, status);
	FILE *f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	long long v = -1;
	ck_assert_msg(fscanf(f, "%lld", &v) == 1, "the parser read nothing of:\n%s", page);
	pclose(f);
	return v;
}

START_TEST(failures_only)
{
	struct itest_env e;
	itest_env_setup(&e, "hfail", DB);
	itest_env_main(&e, "http = { listen = \"127.0.0.1:0\"; };\n");
	itest_exec(e.db, setup_sql);
	itest_env_job(&e, "10-jobs.conf", "%s", jobs);
	itest_env_start(&e);
	ck_assert_msg(itest_env_wait(&e, 30, "SELECT count(*) >= 12 FROM hf.ok"),
	              "the job does not run:\n%s", itest_tail(e.log));
	/* quiet: no fire after the pause, and the run in flight over (its try noted) */
	int status;
	char *out = itest_cli(&status, "pause", "-c", e.conf, "hf", NULL);
	ck_assert_msg(status == 0, "pause: %s", out);
	free(out);
	itest_sleep(1.5);
	long long n, failed, ok;
	tries(e.db, &n, &failed, &ok);
	char *page = itest_env_metrics(&e);
	ck_assert_int_eq(runs_total(e.dir, page, "hf", "succeeded"), ok);
	ck_assert_int_eq(runs_total(e.dir, page, "hf", "failed"), failed);
	free(page);
	char *logs = itest_tail(e.log);
	assert_history(&e, logs);
	free(logs);
	/* pgcrond.view_status: the last success is the last counted one, the last result the
	 * last try's (every third fails), no failure since a success that came last */
	char want[160];
	snprintf(want, sizeof(want), "%s|true|%s", n % 3 == 0 ? "failed" : "succeeded",
	         n % 3 == 0 ? "1" : "0");
	itest_assert_scalar(e.db,
	                    "SELECT last_status || '|' || (last_success = (SELECT max(last_end)"
	                    " FROM pgcrond.job_run_counts WHERE job_name = 'hf')) || '|'"
	                    " || failures_since_success FROM pgcrond.view_status"
	                    " WHERE job_name = 'hf'",
	                    want);
	/* the job after it ran on its successes, whose rows were never written */
	ck_assert_int_gt(itest_env_count(&e, "SELECT count(*) FROM hf.down"), 0);
	ck_assert_int_eq(itest_env_count(&e,
	                                 "SELECT count(*) FROM pgcrond.job_run_details"
	                                 " WHERE job_name = 'hf-down' AND status = 'succeeded'"),
	                 itest_env_count(&e, "SELECT count(*) FROM hf.down"));
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 30), 0);
	/* a claim of a fire a counted run served, made not started (as an instance that ran
	 * alone claims its fires when another comes), is started: no process serves it again,
	 * as the fire's row would have told them; a claim of a fire no run served stays open */
	itest_exec(e.db,
	           "INSERT INTO pgcrond.fire_claim (job_name, fire_key, instance, boot_id,"
	           " started) SELECT 'hf', 's:' || extract(epoch FROM at)::bigint, 'x', 'y',"
	           " NULL::boolean FROM hf.ok UNION ALL SELECT 'hf', 's:' || (extract(epoch FROM"
	           " min(at))::bigint - 100), 'x', 'y', NULL FROM hf.ok");
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.fire_claim"
	                                     " WHERE instance = 'x' AND started"),
	                 itest_env_count(&e, "SELECT count(*) FROM hf.ok"));
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.fire_claim"
	                                     " WHERE instance = 'x' AND started IS NULL"),
	                 1);
	itest_env_teardown(&e);
}
END_TEST

START_TEST(two_instances)
{
	struct itest_env e;
	struct itest_inst a, b;
	itest_env_setup(&e, "hfail2", DB);
	itest_exec(e.db, setup_sql);
	itest_inst_init(&a, &e, "hfa", jobs);
	itest_inst_init(&b, &e, "hfb", jobs);
	itest_inst_up(&e, &a);
	itest_inst_up(&e, &b);
	ck_assert_msg(itest_env_wait(&e, 30, "SELECT count(*) >= 12 FROM hf.ok"),
	              "the job does not run:\n%s\n%s", itest_tail(a.log), itest_tail(b.log));
	/* both ran some: each fire is claimed by one of them */
	ck_assert_int_eq(itest_inst_stop(&a, SIGTERM), 0);
	ck_assert_int_eq(itest_inst_stop(&b, SIGTERM), 0);
	char logs[8192];
	char *ta = itest_tail(a.log), *tb = itest_tail(b.log);
	snprintf(logs, sizeof(logs), "%s\n%s", ta, tb);
	free(ta);
	free(tb);
	/* no fire ran twice: a second success in a second would have failed on hf.ok's key */
	ck_assert_int_eq(itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details"
	                                     " WHERE job_name = 'hf' AND return_message"
	                                     " NOT LIKE 'planned failure of try %%'"),
	                 0);
	assert_history(&e, logs);
	itest_inst_free(&a);
	itest_inst_free(&b);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("history_failures");
	TCase *tc = tcase_create("failures_only");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, failures_only);
	suite_add_tcase(s, tc);
	tc = tcase_create("two_instances");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, two_instances);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
