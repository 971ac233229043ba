/* stmtq: the statement session's queue and failure handling, without PostgreSQL: statements
 * pushed while the connection is not up wait in order, and a connect that fails (a closed
 * port refuses it; a listener that accepts and never answers is given up) completes each of
 * them with LOST, in order, before failed() is told; failed() decides the reconnect. The
 * answers of a real server are it_history's and it_cluster's. */
#include <check.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stmtq.h"

struct fixture {
	struct event_base *base;
	struct stmtq q;
	char events[64][200]; /* what happened, in order */
	int n_events;
	int failed, fail_limit; /* failed() asks for a reconnect until fail_limit */
	int push_on_lost;       /* a completion of this tag pushes tag 9 */
	int listen_fd, port;    /* a listener that accepts and never answers (0: none) */
	struct event *accept_ev;
	int accepted, held[8];
};

__attribute__((format(printf, 2, 3))) static void note(struct fixture *f, const char *fmt, ...)
{
	va_list ap;
	if (f->n_events >= 64)
		return;
	va_start(ap, fmt);
	vsnprintf(f->events[f->n_events++], sizeof(f->events[0]), fmt, ap);
	va_end(ap);
}

static void on_done(void *arg, int tag, const struct stmtq_result *r)
{
	struct fixture *f = arg;
	ck_assert(r->failed);
	ck_assert(r->lost);
	ck_assert_str_eq(r->sqlstate, "08006");
	ck_assert_ptr_null(r->res);
	note(f, "lost %d", tag);
	if (tag == f->push_on_lost)
		ck_assert(stmtq_push(&f->q, 9, "SELECT 9", 0, NULL, 0, on_done, f));
}

static void on_connected(void *arg)
{
	note(arg, "connected");
}

static bool on_failed(void *arg, const char *why, bool was_ready)
{
	struct fixture *f = arg;
	ck_assert(!was_ready);
	note(f, "failed: %s", why);
	f->failed++;
	if (f->failed < f->fail_limit)
		return true;
	event_base_loopexit(f->base, NULL);
	return false;
}

static const struct stmtq_ops ops = {
    .connected = on_connected,
    .failed = on_failed,
};

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *f = arg;
	(void)what;
	int c = accept(fd, NULL, NULL);
	if (c < 0)
		return;
	if (f->accepted < 8)
		f->held[f->accepted] = c; /* kept open, never answered */
	else
		close(c);
	f->accepted++;
}

/* A port on 127.0.0.1: LISTENING, a listener that accepts and never answers; else a port
 * nothing listens on (bound, then closed), which refuses a connect. */
static void setup(struct fixture *f, bool listening)
{
	memset(f, 0, sizeof(*f));
	f->fail_limit = 1;
	f->push_on_lost = -1;
	f->base = event_base_new();
	ck_assert_ptr_nonnull(f->base);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	f->port = ntohs(a.sin_port);
	if (listening) {
		ck_assert_int_eq(listen(fd, 8), 0);
		f->listen_fd = fd;
		f->accept_ev = event_new(f->base, fd, EV_READ | EV_PERSIST, on_accept, f);
		event_add(f->accept_ev, NULL);
	} else {
		close(fd);
	}
	stmtq_init(&f->q, f->base, &ops, f, "test", 300);
	conndrv_set_backoff(&f->q.drv, 50, 50);
}

static void teardown(struct fixture *f)
{
	stmtq_close(&f->q);
	if (f->accept_ev) {
		event_free(f->accept_ev);
		close(f->listen_fd);
	}
	for (int i = 0; i < f->accepted && i < 8; i++)
		close(f->held[i]);
	event_base_free(f->base);
}

/* Run the loop; a guard ends it after 10 s whatever happens. */
static void run(struct fixture *f)
{
	struct timeval guard = {10, 0};
	event_base_loopexit(f->base, &guard);
	event_base_dispatch(f->base);
}

static void push3(struct fixture *f)
{
	const char *p[] = {"a", NULL};
	ck_assert(stmtq_push(&f->q, 1, "SELECT $1", 1, p, 0, on_done, f));
	ck_assert(stmtq_push(&f->q, 2, "SELECT $1, $2", 2, p, 0, on_done, f));
	ck_assert(stmtq_push(&f->q, 3, "SELECT 3", 0, NULL, 0, on_done, f));
}

/* Statements pushed before the connect wait; the refused connect completes each with LOST,
 * in the order they were pushed, then tells failed(), which asks for no reconnect. */
START_TEST(refused_connect_loses_the_waiting_statements_in_order)
{
	struct fixture f;
	char ci[128];

	setup(&f, false);
	push3(&f);
	ck_assert(stmtq_busy(&f.q));
	ck_assert(!stmtq_ready(&f.q));
	ck_assert_int_eq(f.n_events, 0);
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d user=u dbname=d", f.port);
	stmtq_connect(&f.q, ci, "test");
	run(&f);
	ck_assert_int_eq(f.n_events, 4);
	ck_assert_str_eq(f.events[0], "lost 1");
	ck_assert_str_eq(f.events[1], "lost 2");
	ck_assert_str_eq(f.events[2], "lost 3");
	ck_assert_msg(strncmp(f.events[3], "failed: ", 8) == 0 && strstr(f.events[3], "refused"),
	              "%s", f.events[3]);
	ck_assert(!stmtq_busy(&f.q));
	ck_assert_int_eq(f.q.drv.state, CONNDRV_DOWN);
	teardown(&f);
}
END_TEST

/* failed() asking for a reconnect: the session connects again by itself after the backoff;
 * what a LOST completion pushes waits for that connect and is lost with it. */
START_TEST(reconnects_after_the_backoff_and_what_waits_goes_with_the_next_connect)
{
	struct fixture f;
	char ci[128];

	setup(&f, false);
	f.fail_limit = 3;
	f.push_on_lost = 2;
	push3(&f);
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d user=u dbname=d", f.port);
	stmtq_connect(&f.q, ci, "test");
	run(&f);
	ck_assert_int_eq(f.failed, 3);
	ck_assert_int_eq(f.n_events, 7);
	ck_assert_str_eq(f.events[0], "lost 1");
	ck_assert_str_eq(f.events[1], "lost 2");
	ck_assert_str_eq(f.events[2], "lost 3");
	ck_assert(strncmp(f.events[3], "failed: ", 8) == 0);
	ck_assert_str_eq(f.events[4], "lost 9"); /* pushed by "lost 2", lost at the next try */
	ck_assert(strncmp(f.events[5], "failed: ", 8) == 0);
	ck_assert(strncmp(f.events[6], "failed: ", 8) == 0);
	ck_assert_uint_eq(f.q.drv.failures, 2);
	teardown(&f);
}
END_TEST

/* stmtq_fail gives a connect up with the owner's reason, which the lost statements carry,
 * and reconnects after the delay it names: a listener that never answers sees two connects. */
static void give_up(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *f = arg;
	(void)fd;
	(void)what;
	stmtq_fail(&f->q, "given up by the owner", 100);
}

static void on_done_why(void *arg, int tag, const struct stmtq_result *r)
{
	struct fixture *f = arg;
	note(f, "%s %d", r->err, tag);
}

START_TEST(fail_names_the_reason_and_the_reconnect_delay)
{
	struct fixture f;
	char ci[128];

	setup(&f, true);
	f.fail_limit = 2;
	conndrv_set_backoff(&f.q.drv, 20000, 20000); /* the delay given, not the backoff */
	ck_assert(stmtq_push(&f.q, 7, "SELECT 7", 0, NULL, 0, on_done_why, &f));
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d user=u dbname=d", f.port);
	stmtq_connect(&f.q, ci, "test");
	struct event *t = evtimer_new(f.base, give_up, &f);
	struct timeval tv = {0, 100 * 1000};
	evtimer_add(t, &tv);
	run(&f);
	event_free(t);
	ck_assert_int_eq(f.failed, 2);
	ck_assert_str_eq(f.events[0], "given up by the owner 7");
	ck_assert_str_eq(f.events[1], "failed: given up by the owner");
	/* the second connect was made after the delay, and timed out (300 ms) */
	ck_assert_msg(strstr(f.events[2], "could not connect within 300 ms"), "%s", f.events[2]);
	ck_assert_int_eq(f.accepted, 2);
	teardown(&f);
}
END_TEST

/* Closing forgets what waits without a callback. */
START_TEST(close_forgets_without_callbacks)
{
	struct fixture f;

	setup(&f, false);
	push3(&f);
	stmtq_close(&f.q);
	ck_assert(!stmtq_busy(&f.q));
	ck_assert_int_eq(f.n_events, 0);
	teardown(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stmtq");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, refused_connect_loses_the_waiting_statements_in_order);
	tcase_add_test(tc, reconnects_after_the_backoff_and_what_waits_goes_with_the_next_connect);
	tcase_add_test(tc, fail_names_the_reason_and_the_reconnect_delay);
	tcase_add_test(tc, close_forgets_without_callbacks);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
