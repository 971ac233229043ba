/* sqlscan.c: which job commands may share a pipeline with the session reset. */
#include <check.h>
#include <stdlib.h>

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

int main(void)
{
	Suite *s = suite_create("sqlscan");
	TCase *tc = tcase_create("pipeline_safe");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_one_statement_that_may_follow_others);
	tcase_add_test(tc, test_what_goes_out_on_its_own);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
