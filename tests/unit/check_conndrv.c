/* conndrv: the connect's deadline, host names resolved on the loop (evdns) and handed to
 * libpq, a multi-host list that mixes a socket directory and a name, and the reconnect
 * timer. No PostgreSQL: a TCP listener on 127.0.0.1 that accepts and never answers stands
 * for a server that went silent. */
#include <check.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conndrv.h"

struct fixture {
	struct event_base *base;
	int listen_fd, port;
	struct event *accept_ev;
	int accepted;
	int held[8];
	struct conndrv d;
	int failed, connected;
	bool was_ready, timed_out;
	char why[512];
	int fail_limit; /* stop the loop after this many failures */
};

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *f = arg;
	int c = accept(fd, NULL, NULL);
	if (c < 0)
		return;
	if (f->accepted < 8)
		f->held[f->accepted] = c; /* kept open, never answered */
	else
		close(c);
	f->accepted++;
}

static void on_connected(void *arg)
{
	((struct fixture *)arg)->connected++;
}

static void on_readable(void *arg)
{
	(void)arg;
}

static void on_failed(void *arg, const char *why, bool was_ready)
{
	struct fixture *f = arg;
	f->failed++;
	f->was_ready = was_ready;
	f->timed_out = f->d.timed_out;
	snprintf(f->why, sizeof(f->why), "%s", why);
	if (f->failed >= f->fail_limit)
		event_base_loopexit(f->base, NULL);
	else
		conndrv_retry(&f->d, CONNDRV_BACKOFF);
}

static const struct conndrv_ops ops = {
    .connected = on_connected,
    .readable = on_readable,
    .failed = on_failed,
};

static void setup(struct fixture *f, int64_t check_ms)
{
	memset(f, 0, sizeof(*f));
	f->fail_limit = 1;
	f->base = event_base_new();
	ck_assert_ptr_nonnull(f->base);
	f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	ck_assert_int_eq(bind(f->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(f->listen_fd, 8), 0);
	ck_assert_int_eq(getsockname(f->listen_fd, (struct sockaddr *)&a, &len), 0);
	f->port = ntohs(a.sin_port);
	f->accept_ev = event_new(f->base, f->listen_fd, EV_READ | EV_PERSIST, on_accept, f);
	event_add(f->accept_ev, NULL);
	conndrv_init(&f->d, f->base, &ops, f, "test", 10, 0, check_ms);
	conndrv_set_backoff(&f->d, 50, 50);
}

static void teardown(struct fixture *f)
{
	conndrv_close(&f->d);
	event_free(f->accept_ev);
	for (int i = 0; i < f->accepted && i < 8; i++)
		close(f->held[i]);
	close(f->listen_fd);
	event_base_free(f->base);
}

/* Run the loop; a guard ends it after 10 s whatever happens. */
static void run(struct fixture *f)
{
	struct timeval guard = {10, 0};
	event_base_loopexit(f->base, &guard);
	event_base_dispatch(f->base);
}

/* A server that accepts and never answers: the connect fails at its deadline, says so, and
 * the loop went on meanwhile (the listener, on the same loop, accepted it). */
START_TEST(connect_that_never_answers_fails_at_the_deadline)
{
	struct fixture f;
	char ci[128];

	setup(&f, 300);
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d user=u dbname=d", f.port);
	ck_assert_int_eq(conndrv_connect(&f.d, ci, "test"), 0);
	ck_assert_int_eq(f.d.state, CONNDRV_CONNECTING);
	run(&f);
	ck_assert_int_eq(f.failed, 1);
	ck_assert_int_eq(f.connected, 0);
	ck_assert(!f.was_ready);
	ck_assert(f.timed_out);
	ck_assert_str_eq(f.why, "could not connect within 300 ms (connection_check)");
	ck_assert_int_eq(f.accepted, 1);
	ck_assert_int_eq(f.d.state, CONNDRV_DOWN);
	ck_assert_ptr_null(f.d.conn);
	teardown(&f);
}
END_TEST

/* "localhost" is looked up by the driver (the hosts file) and reaches the listener. */
START_TEST(localhost_is_resolved)
{
	struct fixture f;
	char ci[128];

	setup(&f, 500);
	snprintf(ci, sizeof(ci), "host=localhost port=%d user=u dbname=d", f.port);
	ck_assert_int_eq(conndrv_connect(&f.d, ci, "test"), 0);
	run(&f);
	ck_assert_int_eq(f.accepted, 1);
	ck_assert_int_eq(f.failed, 1);
	ck_assert_str_eq(f.why, "could not connect within 500 ms (connection_check)");
	teardown(&f);
}
END_TEST

/* A socket directory that does not exist fails with libpq's own words, and in a list the
 * name after it is still tried (hostaddr gets an empty entry for the directory). */
START_TEST(socket_directory_then_name)
{
	struct fixture f;
	char ci[160];

	setup(&f, 500);
	/* libpq may fail a socket's connect inside PQconnectStart: then before this returns */
	(void)conndrv_connect(&f.d, "host=/nonexistent-dir port=1 user=u dbname=d", "test");
	run(&f);
	ck_assert_int_eq(f.failed, 1);
	ck_assert_msg(strstr(f.why, "/nonexistent-dir/.s.PGSQL.1"), "%s", f.why);
	ck_assert(!f.timed_out);

	f.failed = 0;
	snprintf(ci, sizeof(ci), "host=/nonexistent-dir,localhost port=%d user=u dbname=d", f.port);
	ck_assert_int_eq(conndrv_connect(&f.d, ci, "test"), 0);
	run(&f);
	ck_assert_int_eq(f.accepted, 1);
	ck_assert(f.timed_out);
	teardown(&f);
}
END_TEST

/* After a failure the reconnect timer (the backoff) connects again by itself. */
START_TEST(retry_reconnects)
{
	struct fixture f;
	char ci[128];

	setup(&f, 200);
	f.fail_limit = 3;
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d user=u dbname=d", f.port);
	ck_assert_int_eq(conndrv_connect(&f.d, ci, "test"), 0);
	run(&f);
	ck_assert_int_eq(f.failed, 3);
	ck_assert_int_eq(f.accepted, 3);
	ck_assert_uint_eq(f.d.failures, 2);
	conndrv_succeeded(&f.d);
	ck_assert_uint_eq(f.d.failures, 0);
	teardown(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("conndrv");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, connect_that_never_answers_fails_at_the_deadline);
	tcase_add_test(tc, localhost_is_resolved);
	tcase_add_test(tc, socket_directory_then_name);
	tcase_add_test(tc, retry_reconnects);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
