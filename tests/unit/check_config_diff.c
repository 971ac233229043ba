/* The reload's job diff: the lines an operator reads in the log after SIGHUP. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config_diff.h"

/* Each job made here has a conf_job_more of its own (a test's jobs are fewer than these). */
static struct conf_job_more mores[16];
static size_t n_mores;

static struct conf_job job(const char *name, const char *schedule)
{
	struct conf_job_more *m = &mores[n_mores++ % 16];

	*m = config_job_more_defaults;
	return (struct conf_job){.name = (char *)name,
	                         .command = "SELECT 1",
	                         .schedule = (char *)schedule,
	                         .enabled = true,
	                         .more = m};
}

/* J's own conf_job_more (job()'s), to set. */
static struct conf_job_more *more(struct conf_job *j)
{
	return (struct conf_job_more *)j->more;
}

START_TEST(test_added_changed_removed)
{
	struct conf_setting s_old[] = {{.key = "view", .value = "public.a"},
	                               {.key = "unique_key", .value = "id"}};
	struct conf_setting s_new[] = {{.key = "view", .value = "public.b"},
	                               {.key = "analyze", .value = "true"}};
	struct conf_job old_jobs[] = {job("same", "* * * * *"), job("resched", "*/5 * * * *"),
	                              job("gone", "@hourly"), job("sql", "@daily"),
	                              job("view", "@daily")};
	struct conf_job new_jobs[] = {job("new", "@daily"), job("view", "@daily"),
	                              job("sql", "@daily"), job("resched", "*/10 * * * *"),
	                              job("same", "* * * * *")};
	old_jobs[3].timeout_ms = 60000;
	new_jobs[2].command = "SELECT 2";
	new_jobs[2].timeout_ms = 0;
	new_jobs[2].enabled = false;
	more(&new_jobs[2])->alerts.max_staleness_ms = 600000;
	old_jobs[4].command = NULL;
	old_jobs[4].plugin = "sql_view";
	more(&old_jobs[4])->settings = s_old;
	more(&old_jobs[4])->n_settings = 2;
	new_jobs[1].command = NULL;
	new_jobs[1].plugin = "sql_view";
	more(&new_jobs[1])->settings = s_new;
	more(&new_jobs[1])->n_settings = 2;
	struct pgc_config old = {.jobs = old_jobs, .n_jobs = 5};
	struct pgc_config new_cfg = {.jobs = new_jobs, .n_jobs = 5};
	struct config_diff d = {0};

	ck_assert_int_eq(config_diff_jobs(&old, &new_cfg, &d), 0);
	ck_assert_uint_eq(d.n, 5);
	/* in the new file order, then the removed ones; unchanged jobs are not mentioned */
	ck_assert_str_eq(d.lines[0], "added job \"new\"");
	ck_assert_str_eq(d.lines[1], "changed job \"view\": setting \"view\", setting \"analyze\", "
	                             "setting \"unique_key\"");
	ck_assert_str_eq(d.lines[2],
	                 "changed job \"sql\": command, enabled \"true\" -> "
	                 "\"false\", timeout 1m -> (none), max_staleness (none) -> 10m");
	ck_assert_str_eq(d.lines[3],
	                 "changed job \"resched\": schedule \"*/5 * * * *\" -> \"*/10 * * * *\"");
	ck_assert_str_eq(d.lines[4], "removed job \"gone\"");
	ck_assert_uint_eq(d.added, 1);
	ck_assert_uint_eq(d.changed, 3);
	ck_assert_uint_eq(d.removed, 1);
	config_diff_free(&d);
	ck_assert_ptr_null(d.lines);

	/* the same config: nothing to say */
	ck_assert_int_eq(config_diff_jobs(&old, &old, &d), 0);
	ck_assert_uint_eq(d.n, 0);
	ck_assert_uint_eq(d.added + d.changed + d.removed, 0);
	config_diff_free(&d);
}
END_TEST

START_TEST(test_schedule_removed_and_after)
{
	const char *up1[] = {"a"}, *up2[] = {"a", "b"};
	struct conf_job o = job("j", "@daily"), n = job("j", NULL);
	o.after = (char **)up1;
	o.n_after = 1;
	n.after = (char **)up2;
	n.n_after = 2;
	struct pgc_config old = {.jobs = &o, .n_jobs = 1};
	struct pgc_config new_cfg = {.jobs = &n, .n_jobs = 1};
	struct config_diff d = {0};

	ck_assert_int_eq(config_diff_jobs(&old, &new_cfg, &d), 0);
	ck_assert_uint_eq(d.n, 1);
	ck_assert_str_eq(d.lines[0], "changed job \"j\": schedule \"@daily\" -> (none), after");
	config_diff_free(&d);
}
END_TEST

/* a job's own zone or its role alone changed: the reload applies it, and the log says so */
START_TEST(test_timezone_and_username)
{
	struct conf_job o = job("j", "0 3 * * *"), n = job("j", "0 3 * * *");
	more(&n)->cal.timezone = "Europe/Berlin";
	more(&o)->sql.username = "alice";
	more(&n)->sql.username = "bob";
	struct pgc_config old = {.jobs = &o, .n_jobs = 1};
	struct pgc_config new_cfg = {.jobs = &n, .n_jobs = 1};
	struct config_diff d = {0};

	ck_assert_int_eq(config_diff_jobs(&old, &new_cfg, &d), 0);
	ck_assert_uint_eq(d.n, 1);
	ck_assert_str_eq(d.lines[0], "changed job \"j\": timezone (none) -> \"Europe/Berlin\", "
	                             "username \"alice\" -> \"bob\"");
	ck_assert_uint_eq(d.changed, 1);
	config_diff_free(&d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config_diff");
	TCase *tc = tcase_create("diff");
	tcase_add_test(tc, test_added_changed_removed);
	tcase_add_test(tc, test_schedule_removed_and_after);
	tcase_add_test(tc, test_timezone_and_username);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
