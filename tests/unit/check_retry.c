/* Retry policy: which SQLSTATEs are retried, and how the delays grow. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "config.h"
#include "retry.h"

static const struct {
	const char *sqlstate;
	bool transient;
} states[] = {
    {"08006", true},  {"08001", true},  {"08P01", true},  {"40001", true},  {"40P01", true},
    {"55P03", true},  {"57P01", true},  {"53100", true},  {"53200", true},  {"53300", true},
    {"42P01", false}, {"42601", false}, {"42501", false}, {"23505", false}, {"22012", false},
    {"57014", false}, {"40002", false}, {"55000", false}, {"57P02", false}, {NULL, false},
    {"", false},      {"0800", false},
};

/* A job with RETRIES, the rest of its retry keys in M. */
static struct conf_job job(struct conf_job_more *m, int retries, int64_t delay, double backoff,
                           int64_t max)
{
	*m = config_job_more_defaults;
	m->retry.delay_ms = delay;
	m->retry.backoff = backoff;
	m->retry.max_delay_ms = max;
	return (struct conf_job){.retries = retries, .more = m};
}

START_TEST(transient_states)
{
	struct conf_job_more m;
	struct conf_job j = job(&m, 1, 1000, 2, 60000);
	ck_assert_msg(retry_should(&j, 1, states[_i].sqlstate, false) == states[_i].transient, "%s",
	              states[_i].sqlstate ? states[_i].sqlstate : "(null)");
}
END_TEST

START_TEST(timeouts_only_when_asked)
{
	struct conf_job_more m;
	struct conf_job j = job(&m, 3, 1000, 2, 60000);
	ck_assert(!retry_should(&j, 1, "57014", true));
	m.retry.on_timeout = true;
	ck_assert(retry_should(&j, 1, "57014", true));
}
END_TEST

START_TEST(attempts_are_bounded)
{
	struct conf_job_more m;
	struct conf_job j = job(&m, 2, 1000, 2, 60000);
	ck_assert(retry_should(&j, 1, "40P01", false));
	ck_assert(retry_should(&j, 2, "40P01", false));
	ck_assert(!retry_should(&j, 3, "40P01", false)); /* 1 try + 2 retries */
	ck_assert(!retry_should(&j, 1, "42P01", false)); /* undefined_table fails at once */
	m.retry.on = RETRY_ON_ANY;
	ck_assert(retry_should(&j, 1, "42P01", false));
	j.retries = 0;
	ck_assert(!retry_should(&j, 1, "40P01", false));
}
END_TEST

START_TEST(delays_grow_and_cap)
{
	struct conf_job_more m, n;
	struct conf_job j = job(&m, 10, 1000, 2, 10000);
	/* without jitter's extremes: mid-point random gives exactly the nominal delay */
	ck_assert_int_eq(retry_delay_ms(&j, 1, UINT32_MAX / 2), 999);
	ck_assert_int_eq(retry_delay_ms(&j, 2, UINT32_MAX / 2), 1999);
	ck_assert_int_eq(retry_delay_ms(&j, 3, UINT32_MAX / 2), 3999);
	ck_assert_int_le(retry_delay_ms(&j, 8, UINT32_MAX), 10000);
	ck_assert_int_ge(retry_delay_ms(&j, 8, 0), 9000);
	/* jitter stays within ±10% */
	ck_assert_int_eq(retry_delay_ms(&j, 1, 0), 900);
	ck_assert_int_eq(retry_delay_ms(&j, 1, UINT32_MAX), 1100);
	/* growth survives the worst jitter pairing */
	for (int a = 1; a < 3; a++)
		ck_assert_int_gt(retry_delay_ms(&j, a + 1, 0), retry_delay_ms(&j, a, UINT32_MAX));
	/* a backoff below 1 is treated as 1: constant delays */
	struct conf_job k = job(&n, 3, 500, 0.5, 0);
	ck_assert_int_eq(retry_delay_ms(&k, 3, 0), 450);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("retry");
	TCase *tc = tcase_create("retry");
	tcase_add_loop_test(tc, transient_states, 0, sizeof(states) / sizeof(states[0]));
	tcase_add_test(tc, timeouts_only_when_asked);
	tcase_add_test(tc, attempts_are_bounded);
	tcase_add_test(tc, delays_grow_and_cap);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
