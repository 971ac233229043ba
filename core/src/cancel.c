/* Cancel requests through the cancel key, on worker threads (see cancel.h).
 *
 * (C11 threads, not pthread.h: that includes <sched.h>, which core/src/sched.h shadows.)
 *
 * The loop queues a request with a copy of the connection's key (PQgetCancel); a worker
 * sends it with PQcancel(), which blocks, puts the outcome on the done list and writes a
 * byte to a pipe; the loop's read event on that pipe runs the callbacks. The workers touch
 * nothing but the requests, under the mutex. Two workers, so one cancel stuck in a connect
 * to a silent server does not hold up the others. */
#include "cancel.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>
#include <unistd.h>
#include <event2/event_struct.h>

#define CANCEL_WORKERS 2

struct cancel_req {
	PGcancel *key;
	void (*done)(void *arg, bool ok, const char *message); /* NULL once forgotten */
	void *arg;
	bool ok;
	char message[256];
	struct cancel_req *next;
};

struct cancel {
	struct event_base *base;
	mtx_t mu;
	cnd_t cv;
	thrd_t threads[CANCEL_WORKERS];
	int n_threads;
	bool stopping;
	struct cancel_req *todo_head, *todo_tail; /* queued, oldest first */
	struct cancel_req *done_list;             /* sent, callbacks still to run */
	int pipe_rd, pipe_wr;
	struct event pipe_ev;
	bool pipe_added;
};

static void req_free(struct cancel_req *r)
{
	if (r->key)
		PQfreeCancel(r->key);
	free(r);
}

static int worker(void *arg)
{
	struct cancel *cq = arg;
	/* signals belong to the loop's thread (libevent's evsignal) */
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	mtx_lock(&cq->mu);
	for (;;) {
		while (!cq->todo_head && !cq->stopping)
			cnd_wait(&cq->cv, &cq->mu);
		if (cq->stopping)
			break;
		struct cancel_req *r = cq->todo_head;
		cq->todo_head = r->next;
		if (!cq->todo_head)
			cq->todo_tail = NULL;
		mtx_unlock(&cq->mu);

		char err[256] = "";
		bool ok = PQcancel(r->key, err, (int)sizeof(err)) == 1;

		mtx_lock(&cq->mu);
		r->ok = ok;
		/* libpq's message ends in a newline */
		size_t n = strcspn(err, "\r\n");
		err[n] = '\0';
		snprintf(r->message, sizeof(r->message), "%s", ok ? "" : err);
		r->next = cq->done_list;
		cq->done_list = r;
		/* a full pipe already holds a wake-up: nothing is lost */
		ssize_t w = write(cq->pipe_wr, "", 1);
		(void)w;
	}
	mtx_unlock(&cq->mu);
	return 0;
}

static void pipe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cancel *cq = arg;
	char buf[64];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	mtx_lock(&cq->mu);
	struct cancel_req *list = cq->done_list;
	cq->done_list = NULL;
	mtx_unlock(&cq->mu);
	/* oldest first: the list was built by pushing */
	struct cancel_req *rev = NULL;
	while (list) {
		struct cancel_req *next = list->next;
		list->next = rev;
		rev = list;
		list = next;
	}
	while (rev) {
		struct cancel_req *r = rev;
		rev = r->next;
		/* cancel_forget runs on this thread too, so done is stable here */
		if (r->done)
			r->done(r->arg, r->ok, r->message);
		req_free(r);
	}
}

int cancel_new(struct event_base *base, struct cancel **out)
{
	struct cancel *cq = calloc(1, sizeof(*cq));
	if (!cq)
		return -ENOMEM;
	cq->base = base;
	cq->pipe_rd = cq->pipe_wr = -1;
	mtx_init(&cq->mu, mtx_plain);
	cnd_init(&cq->cv);
	*out = cq;
	return 0;
}

/* The pipe and the threads, at the first request: most daemons never cancel anything. */
static int cancel_start(struct cancel *cq)
{
	if (cq->pipe_rd < 0) {
		int fds[2];
		if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
			return -errno;
		cq->pipe_rd = fds[0];
		cq->pipe_wr = fds[1];
		event_assign(&cq->pipe_ev, cq->base, cq->pipe_rd, EV_READ | EV_PERSIST, pipe_cb,
		             cq);
		if (event_add(&cq->pipe_ev, NULL) < 0)
			return -EIO;
		cq->pipe_added = true;
	}
	while (cq->n_threads < CANCEL_WORKERS) {
		if (thrd_create(&cq->threads[cq->n_threads], worker, cq) != thrd_success)
			return cq->n_threads > 0 ? 0 : -EAGAIN;
		cq->n_threads++;
	}
	return 0;
}

struct cancel_req *cancel_send(struct cancel *cq, PGconn *pg,
                               void (*done)(void *arg, bool ok, const char *message), void *arg)
{
	if (!cq || !pg || cancel_start(cq) < 0)
		return NULL;
	struct cancel_req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->key = PQgetCancel(pg);
	if (!r->key) {
		free(r);
		return NULL;
	}
	r->done = done;
	r->arg = arg;
	mtx_lock(&cq->mu);
	if (cq->todo_tail)
		cq->todo_tail->next = r;
	else
		cq->todo_head = r;
	cq->todo_tail = r;
	cnd_signal(&cq->cv);
	mtx_unlock(&cq->mu);
	return r;
}

void cancel_forget(struct cancel_req *req)
{
	/* the workers never read done; pipe_cb, which does, runs on this thread */
	if (req)
		req->done = NULL;
}

void cancel_free(struct cancel **cqp)
{
	struct cancel *cq = *cqp;
	if (!cq)
		return;
	mtx_lock(&cq->mu);
	cq->stopping = true;
	cnd_broadcast(&cq->cv);
	mtx_unlock(&cq->mu);
	for (int i = 0; i < cq->n_threads; i++)
		thrd_join(cq->threads[i], NULL);
	struct cancel_req *lists[2] = {cq->todo_head, cq->done_list};
	for (int i = 0; i < 2; i++) {
		while (lists[i]) {
			struct cancel_req *next = lists[i]->next;
			req_free(lists[i]);
			lists[i] = next;
		}
	}
	if (cq->pipe_added)
		event_del(&cq->pipe_ev);
	if (cq->pipe_rd >= 0)
		close(cq->pipe_rd);
	if (cq->pipe_wr >= 0)
		close(cq->pipe_wr);
	cnd_destroy(&cq->cv);
	mtx_destroy(&cq->mu);
	free(cq);
	*cqp = NULL;
}
