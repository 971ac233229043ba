/* sqlscan.c: which job commands may share a pipeline with the session reset. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "job_kind.h"
#include "sqlscan.h"

START_TEST(test_one_statement_that_may_follow_others)
{
	static const char *const yes[] = {
	    "SELECT 1",
	    "  select 1;",
	    "INSERT INTO t VALUES (statement_timestamp())",
	    "-- the nightly purge\nDELETE FROM s WHERE at < now() - interval '30 days';  -- done",
	    "/* a /* nested */ comment */ UPDATE t SET a = 1",
	    "REFRESH MATERIALIZED VIEW CONCURRENTLY public.lane_distributions",
	    "WITH d AS (DELETE FROM q RETURNING *) INSERT INTO a SELECT * FROM d",
	    "(SELECT 1) UNION (SELECT 2)",
	    "SELECT 'a;b', \"x;y\", $$;$$, $t$ ; $x$ ; $t$ FROM t",
	    "SELECT E'it\\'s; fine'",
	    "SELECT 'it''s; fine';;",
	    "SELECT $1::int",
	    "TABLE t",
	    "VALUES (1)",
	    "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE",
	};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		ck_assert_msg(sqlscan_pipeline_safe(yes[i]), "should be safe: %s", yes[i]);
}
END_TEST

START_TEST(test_what_goes_out_on_its_own)
{
	static const char *const no[] = {
	    "VACUUM ANALYZE t",
	    "CALL purge()",
	    "DO $$ BEGIN COMMIT; END $$",
	    "BEGIN; INSERT INTO t VALUES (1)",
	    "SELECT 1; SELECT 2",
	    "SET ROLE pg_monitor; SELECT 1",
	    "SELECT 1; -- two\n VACUUM",
	    "SELECT 'never closed",
	    "SELECT 1 /* never closed",
	    "SELECT $q$ never closed",
	    "COPY t TO STDOUT",
	    "CREATE INDEX CONCURRENTLY i ON t (a)",
	    "LOCK TABLE t",
	    "SELECTX 1",
	    "SELECT 'a''; VACUUM",
	    "SELECT date'2026-01-01\\'; VACUUM; '", /* no E: the backslash ends nothing */
	    "",
	    "  -- only a comment",
	    NULL,
	};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		ck_assert_msg(!sqlscan_pipeline_safe(no[i]), "should not be safe: %s",
		              no[i] ? no[i] : "(null)");
}
END_TEST

/* The classes of docs/faults.md: the commands a pg_cron user writes. */
START_TEST(test_command_classes)
{
	static const struct {
		const char *sql;
		enum sqlscan_class want;
		const char *once;
	} cases[] = {
	    {"SELECT purge_sessions()", SQLSCAN_ONE_TRANSACTION, "yes"},
	    {"REFRESH MATERIALIZED VIEW CONCURRENTLY mv", SQLSCAN_ONE_TRANSACTION, "yes"},
	    {"INSERT INTO tick(job) VALUES ('l1'); SELECT pg_sleep(3)", SQLSCAN_ONE_TRANSACTION,
	     "yes"},
	    {"DELETE FROM cron.job_run_details WHERE end_time < now() - interval '7 days'",
	     SQLSCAN_ONE_TRANSACTION, "yes"},
	    {"TRUNCATE t; ANALYZE t", SQLSCAN_ONE_TRANSACTION, "yes"},
	    {"PREPARE p AS SELECT 1; EXECUTE p", SQLSCAN_ONE_TRANSACTION, "yes"},
	    {"ALTER TABLE t ADD COLUMN c int", SQLSCAN_ONE_TRANSACTION, "yes"},
	    {"VACUUM ANALYZE public.submissions", SQLSCAN_NO_BLOCK, "fenced: no transaction block"},
	    {"vacuum", SQLSCAN_NO_BLOCK, "fenced: no transaction block"},
	    {"SELECT 1; VACUUM t", SQLSCAN_NO_BLOCK, "fenced: no transaction block"},
	    {"CREATE INDEX CONCURRENTLY i ON t (a)", SQLSCAN_NO_BLOCK,
	     "fenced: no transaction block"},
	    {"create unique index concurrently i on t (a)", SQLSCAN_NO_BLOCK,
	     "fenced: no transaction block"},
	    {"REINDEX TABLE CONCURRENTLY t", SQLSCAN_NO_BLOCK, "fenced: no transaction block"},
	    {"REINDEX SCHEMA public", SQLSCAN_NO_BLOCK, "fenced: no transaction block"},
	    {"reindex (verbose) database d", SQLSCAN_NO_BLOCK, "fenced: no transaction block"},
	    {"REINDEX TABLE t", SQLSCAN_ONE_TRANSACTION, "yes"},
	    {"DROP INDEX CONCURRENTLY i", SQLSCAN_NO_BLOCK, "fenced: no transaction block"},
	    {"CREATE DATABASE d", SQLSCAN_NO_BLOCK, "fenced: no transaction block"},
	    {"ALTER SYSTEM SET work_mem = '64MB'", SQLSCAN_NO_BLOCK,
	     "fenced: no transaction block"},
	    {"CREATE INDEX i ON t (concurrently)", SQLSCAN_NO_BLOCK,
	     "fenced: no transaction block"},
	    {"CREATE INDEX i ON t (\"concurrently\")", SQLSCAN_ONE_TRANSACTION, "yes"},
	    {"SELECT 'VACUUM; CALL p()'", SQLSCAN_ONE_TRANSACTION, "yes"},
	    {"CALL archive_old_orders()", SQLSCAN_PROCEDURE, "fenced: procedure"},
	    {"DO $$ BEGIN PERFORM 1; COMMIT; END $$", SQLSCAN_PROCEDURE, "fenced: procedure"},
	    {"VACUUM t; CALL p()", SQLSCAN_PROCEDURE, "fenced: procedure"},
	    {"BEGIN; DELETE FROM t; COMMIT;", SQLSCAN_TRANSACTION, "fenced: transaction control"},
	    {"start transaction; select 1; end", SQLSCAN_TRANSACTION,
	     "fenced: transaction control"},
	    {"SELECT 1; SAVEPOINT a; SELECT 2", SQLSCAN_TRANSACTION, "fenced: transaction control"},
	    {"CALL p(); COMMIT", SQLSCAN_TRANSACTION, "fenced: transaction control"},
	    {"SELECT 'never closed", SQLSCAN_UNREADABLE, "fenced: unreadable"},
	    {"  -- only a comment", SQLSCAN_UNREADABLE, "fenced: unreadable"},
	    {";;", SQLSCAN_UNREADABLE, "fenced: unreadable"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(sqlscan_classify(cases[i].sql) == cases[i].want, "%s: %s, want %s",
		              cases[i].sql, sqlscan_class_name(sqlscan_classify(cases[i].sql)),
		              sqlscan_class_name(cases[i].want));
		char once[64];
		job_kind_once(JOB_KIND_SQL, cases[i].sql, once, sizeof(once));
		ck_assert_msg(strcmp(once, cases[i].once) == 0, "%s: \"%s\", want \"%s\"",
		              cases[i].sql, once, cases[i].once);
	}
	char once[64];
	job_kind_once(JOB_KIND_PLUGIN, NULL, once, sizeof(once));
	ck_assert_str_eq(once, "fenced: plugin");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sqlscan");
	TCase *tc = tcase_create("pipeline_safe");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_one_statement_that_may_follow_others);
	tcase_add_test(tc, test_what_goes_out_on_its_own);
	tcase_add_test(tc, test_command_classes);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
