/* ownsess: the outbox's items and the session's failure handling, without PostgreSQL: items
 * queued while the connection is not up wait in order, and a connect that fails (a closed
 * port refuses it; a listener that accepts and never answers is given up) makes each of them
 * lost(), in order, before failed() is told; failed() decides the reconnect. The answers of a
 * real server are it_history's and it_cluster's. */
#include <check.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ownsess.h"

struct fixture;
struct item {
	struct ownsess_item it;
	struct fixture *f;
	int tag;
};

struct fixture {
	struct event_base *base;
	struct ownsess_client cl;
	struct item items[10];
	char events[64][200]; /* what happened, in order */
	int n_events;
	int failed, fail_limit; /* failed() asks for a reconnect until fail_limit */
	int queue_on_lost;      /* the loss of this item queues item 9 */
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

static bool item_send(struct ownsess_item *it)
{
	return ownsess_push(it, 0, "SELECT 1", 0, NULL);
}

static void item_done(struct ownsess_item *it, const struct stmtq_result *r)
{
	(void)r;
	ck_abort_msg("item %d answered", ((struct item *)it)->tag);
}

static void item_lost(struct ownsess_item *it, const char *why)
{
	struct item *i = (struct item *)it;
	note(i->f, "lost %d: %s", i->tag, why);
	if (i->tag == i->f->queue_on_lost)
		ownsess_queue(&i->f->cl, &i->f->items[9].it);
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

static const struct ownsess_ops ops = {
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
 * nothing listens on (bound, then closed), which refuses a connect. The client joins its
 * session, which connects at the loop's first turn. */
static void setup(struct fixture *f, bool listening)
{
	char ci[128];
	memset(f, 0, sizeof(*f));
	f->fail_limit = 1;
	f->queue_on_lost = -1;
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
	for (int i = 0; i < 10; i++)
		f->items[i] =
		    (struct item){.it = {.send = item_send, .done = item_done, .lost = item_lost},
		                  .f = f,
		                  .tag = i};
	ownsess_set_check(300);
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d user=u dbname=d", f->port);
	ck_assert_int_eq(ownsess_join(&f->cl, f->base, ci, &ops, f), 0);
	ownsess_set_backoff(&f->cl, 50, 50);
}

static void teardown(struct fixture *f)
{
	ownsess_leave(&f->cl);
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

static void queue3(struct fixture *f)
{
	for (int i = 1; i <= 3; i++)
		ownsess_queue(&f->cl, &f->items[i].it);
}

/* Items queued before the connect wait; the refused connect makes each lost, in the order
 * they were queued, then tells failed(), which asks for no reconnect. */
START_TEST(refused_connect_loses_the_waiting_items_in_order)
{
	struct fixture f;

	setup(&f, false);
	queue3(&f);
	ck_assert(!stmtq_ready(ownsess_q(&f.cl)));
	run(&f);
	ck_assert_int_eq(f.n_events, 4);
	ck_assert(strncmp(f.events[0], "lost 1: ", 8) == 0);
	ck_assert(strncmp(f.events[1], "lost 2: ", 8) == 0);
	ck_assert(strncmp(f.events[2], "lost 3: ", 8) == 0);
	ck_assert_msg(strncmp(f.events[3], "failed: ", 8) == 0 && strstr(f.events[3], "refused"),
	              "%s", f.events[3]);
	ck_assert(!f.items[1].it.queued && !f.items[3].it.queued);
	ck_assert_int_eq(ownsess_q(&f.cl)->drv.state, CONNDRV_DOWN);
	teardown(&f);
}
END_TEST

/* failed() asking for a reconnect: the session connects again by itself after the backoff;
 * an item queued again by its lost() waits for that connect and is lost with it. */
START_TEST(reconnects_after_the_backoff_and_an_item_queued_again_goes_with_the_next_connect)
{
	struct fixture f;

	setup(&f, false);
	f.fail_limit = 3;
	f.queue_on_lost = 2;
	queue3(&f);
	run(&f);
	ck_assert_int_eq(f.failed, 3);
	ck_assert_int_eq(f.n_events, 7);
	ck_assert(strncmp(f.events[0], "lost 1: ", 8) == 0);
	ck_assert(strncmp(f.events[1], "lost 2: ", 8) == 0);
	ck_assert(strncmp(f.events[2], "lost 3: ", 8) == 0);
	ck_assert(strncmp(f.events[3], "failed: ", 8) == 0);
	ck_assert(strncmp(f.events[4], "lost 9: ", 8) == 0); /* queued by "lost 2" */
	ck_assert(strncmp(f.events[5], "failed: ", 8) == 0);
	ck_assert(strncmp(f.events[6], "failed: ", 8) == 0);
	ck_assert_uint_eq(ownsess_q(&f.cl)->drv.failures, 2);
	teardown(&f);
}
END_TEST

/* stmtq_fail gives a connect up with the client's reason, which the lost items carry, and
 * reconnects after the delay it names: a listener that never answers sees two connects. */
static void give_up(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *f = arg;
	(void)fd;
	(void)what;
	stmtq_fail(ownsess_q(&f->cl), "given up by the owner", 100);
}

START_TEST(fail_names_the_reason_and_the_reconnect_delay)
{
	struct fixture f;

	setup(&f, true);
	f.fail_limit = 2;
	ownsess_set_backoff(&f.cl, 20000, 20000); /* the delay given, not the backoff */
	ownsess_queue(&f.cl, &f.items[7].it);
	struct event *t = evtimer_new(f.base, give_up, &f);
	struct timeval tv = {0, 100 * 1000};
	evtimer_add(t, &tv);
	run(&f);
	event_free(t);
	ck_assert_int_eq(f.failed, 2);
	ck_assert_str_eq(f.events[0], "lost 7: given up by the owner");
	ck_assert_str_eq(f.events[1], "failed: given up by the owner");
	/* the second connect was made after the delay, and timed out (300 ms) */
	ck_assert_msg(strstr(f.events[2], "could not connect within 300 ms"), "%s", f.events[2]);
	ck_assert_int_eq(f.accepted, 2);
	teardown(&f);
}
END_TEST

/* A client that leaves takes its items along without a call. */
START_TEST(leaving_drops_the_items_without_callbacks)
{
	struct fixture f;

	setup(&f, false);
	queue3(&f);
	ownsess_leave(&f.cl);
	ck_assert(!f.items[1].it.queued && !f.items[2].it.queued && !f.items[3].it.queued);
	event_base_loop(f.base, EVLOOP_NONBLOCK); /* (its connect would have started now) */
	ck_assert_int_eq(f.n_events, 0);
	memset(&f.cl, 0, sizeof(f.cl)); /* (left: teardown's leave is a no-op) */
	teardown(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ownsess");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, refused_connect_loses_the_waiting_items_in_order);
	tcase_add_test(
	    tc, reconnects_after_the_backoff_and_an_item_queued_again_goes_with_the_next_connect);
	tcase_add_test(tc, fail_names_the_reason_and_the_reconnect_delay);
	tcase_add_test(tc, leaving_drops_the_items_without_callbacks);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
