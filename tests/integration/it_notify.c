/* The LISTEN connection against a real PostgreSQL: notifications arrive with their payloads
 * on quoted channel names, and after pg_terminate_backend on the listening backend the
 * listener reconnects, listens again and says so. */
#include <check.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "log.h"
#include "notify.h"

struct seen {
	int notifications;
	int listening;
	int first;
	char last_channel[64];
	char last_payload[256];
};

static void on_notify(void *arg, const char *channel, const char *payload)
{
	struct seen *s = arg;
	s->notifications++;
	snprintf(s->last_channel, sizeof(s->last_channel), "%s", channel);
	snprintf(s->last_payload, sizeof(s->last_payload), "%s", payload);
}

static void on_listening(void *arg, bool first)
{
	struct seen *s = arg;
	s->listening++;
	if (first)
		s->first++;
}

/* Run the loop until *COUNTER reaches WANT or TIMEOUT_S passes. */
static bool loop_until(struct event_base *base, const int *counter, int want, double timeout_s)
{
	double end = itest_now() + timeout_s;
	while (*counter < want && itest_now() < end) {
		struct timeval tv = {0, 20000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	return *counter >= want;
}

START_TEST(notifications_and_reconnect)
{
	log_init(LOG_LVL_ERROR);
	char *ci = itest_fresh_db("it_notify");
	PGconn *c = itest_connect(ci);
	struct event_base *base = event_base_new();
	struct seen s = {0};
	struct notify_callbacks cb = {on_notify, on_listening, &s};
	struct notify *n;
	ck_assert_int_eq(notify_new(base, "it_notify", ci, &cb, &n), 0);
	const char *channels[] = {"submission_scored", "Mixed \"Case\""};
	ck_assert_int_eq(notify_set_channels(n, channels, 2), 0);
	ck_assert_msg(loop_until(base, &s.listening, 1, 10), "never listening");
	ck_assert_int_eq(s.first, 1);

	itest_exec(c, "SELECT pg_notify('submission_scored', '{\"submission_id\": 42}')");
	ck_assert(loop_until(base, &s.notifications, 1, 5));
	ck_assert_str_eq(s.last_channel, "submission_scored");
	ck_assert_str_eq(s.last_payload, "{\"submission_id\": 42}");
	itest_exec(c, "SELECT pg_notify('Mixed \"Case\"', '')");
	ck_assert(loop_until(base, &s.notifications, 2, 5));
	ck_assert_str_eq(s.last_channel, "Mixed \"Case\"");
	ck_assert_str_eq(s.last_payload, "");
	/* a channel nobody asked for is not delivered */
	itest_exec(c, "SELECT pg_notify('other', 'x')");
	itest_exec(c, "SELECT pg_notify('submission_scored', 'after-other')");
	ck_assert(loop_until(base, &s.notifications, 3, 5));
	ck_assert_str_eq(s.last_payload, "after-other");

	/* a second listener of the same database shares the session: one session in all, and
	 * each hears only its own channels */
	struct seen s2 = {0};
	struct notify_callbacks cb2 = {on_notify, on_listening, &s2};
	struct notify *n2;
	ck_assert_int_eq(notify_new(base, "it_notify", ci, &cb2, &n2), 0);
	const char *channels2[] = {"second"};
	ck_assert_int_eq(notify_set_channels(n2, channels2, 1), 0);
	ck_assert_msg(loop_until(base, &s2.listening, 1, 10), "the second never listening");
	ck_assert_int_eq(itest_scalar_ll(c, "SELECT count(*) FROM pg_stat_activity"
	                                    " WHERE application_name = 'pgcrond'"
	                                    " AND datname = 'it_notify'"),
	                 1);
	itest_exec(c, "SELECT pg_notify('second', 'for-two')");
	itest_exec(c, "SELECT pg_notify('submission_scored', 'for-one')");
	ck_assert(loop_until(base, &s.notifications, 4, 5));
	ck_assert(loop_until(base, &s2.notifications, 1, 5));
	ck_assert_str_eq(s.last_payload, "for-one");
	ck_assert_str_eq(s2.last_payload, "for-two");
	ck_assert_int_eq(s.notifications, 4);
	/* the second goes: the first's channels stay */
	notify_free(&n2);
	itest_exec(c, "SELECT pg_notify('submission_scored', 'after-two')");
	ck_assert(loop_until(base, &s.notifications, 5, 5));
	ck_assert_str_eq(s.last_payload, "after-two");

	/* kill the listening backend: the listener comes back and says so */
	ck_assert_int_eq(
	    itest_scalar_ll(c, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
	                       "WHERE application_name = 'pgcrond' AND datname = 'it_notify'"),
	    1);
	ck_assert_msg(loop_until(base, &s.listening, 2, 15), "did not reconnect");
	ck_assert_int_eq(s.first, 1);
	ck_assert_int_eq(s.listening, 2);
	itest_exec(c, "SELECT pg_notify('submission_scored', 'after-reconnect')");
	ck_assert(loop_until(base, &s.notifications, 6, 5));
	ck_assert_str_eq(s.last_payload, "after-reconnect");

	notify_free(&n);
	ck_assert_ptr_null(n);
	event_base_free(base);
	PQfinish(c);
	free(ci);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("notify");
	TCase *tc = tcase_create("notify");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, notifications_and_reconnect);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
