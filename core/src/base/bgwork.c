/* Worker threads for blocking calls (bgwork.h).
 *
 * (C11 threads, not pthread.h: that includes <sched.h>, which core/src/sched/sched.h shadows in the
 * layers that see sched/.)
 *
 * The loop puts a job on the todo list; a worker takes it, runs its WORK, puts it on the
 * done list and writes a byte to a pipe (not for a quiet job, whose owner collects it); the
 * loop's read event on that pipe runs the DONE callbacks, oldest first. The lists are guarded
 * by the mutex; nothing else is shared. */
#include "bgwork.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <threads.h>
#include <unistd.h>

#define BGWORK_MAX_THREADS 4

struct bgwork {
	struct event_base *base;
	mtx_t mu;
	cnd_t cv;
	thrd_t threads[BGWORK_MAX_THREADS];
	int want_threads, n_threads;
	bool stopping;
	STAILQ_HEAD(, bgwork_job) todo, done; /* oldest first */
	int pipe_rd, pipe_wr;
	struct event pipe_ev;
	bool pipe_added;
};

static int worker(void *arg)
{
	struct bgwork *w = arg;
	/* signals belong to the loop's thread (libevent's evsignal) */
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	mtx_lock(&w->mu);
	for (;;) {
		while (STAILQ_EMPTY(&w->todo) && !w->stopping)
			cnd_wait(&w->cv, &w->mu);
		if (w->stopping)
			break;
		struct bgwork_job *j = STAILQ_FIRST(&w->todo);
		STAILQ_REMOVE_HEAD(&w->todo, link);
		mtx_unlock(&w->mu);

		j->work(j);

		mtx_lock(&w->mu);
		bool wake = !j->quiet; /* (under the lock: bgwork_collect may change it) */
		j->ran = true;
		STAILQ_INSERT_TAIL(&w->done, j, link);
		/* the wake-up is written outside the lock: the loop, taking it to submit or to
		 * collect, does not sleep on the mutex for this system call (a context switch
		 * each time, hundreds a second while the history spools at 15,000 runs/s). A
		 * loop that collected J already reads one byte too many: harmless. A full pipe
		 * already holds a wake-up: nothing is lost. */
		mtx_unlock(&w->mu);
		if (wake) {
			ssize_t n = write(w->pipe_wr, "", 1);
			(void)n;
		}
		mtx_lock(&w->mu);
	}
	mtx_unlock(&w->mu);
	return 0;
}

static void pipe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bgwork *w = arg;
	char buf[64];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	STAILQ_HEAD(, bgwork_job) list = STAILQ_HEAD_INITIALIZER(list);
	mtx_lock(&w->mu);
	STAILQ_CONCAT(&list, &w->done);
	mtx_unlock(&w->mu);
	for (struct bgwork_job *j; (j = STAILQ_FIRST(&list));) {
		STAILQ_REMOVE_HEAD(&list, link);
		j->done(j, true); /* may free j */
	}
}

bool bgwork_collect(struct bgwork *w, struct bgwork_job *job)
{
	mtx_lock(&w->mu);
	struct bgwork_job *j = STAILQ_FIRST(&w->done);
	while (j && j != job)
		j = STAILQ_NEXT(j, link);
	bool found = j != NULL;
	if (found)
		STAILQ_REMOVE(&w->done, job, bgwork_job, link);
	else
		job->quiet = false; /* under way: its end wakes the loop after all */
	mtx_unlock(&w->mu);
	if (found)
		job->done(job, true);
	return found;
}

int bgwork_new(struct event_base *base, int threads, struct bgwork **out)
{
	struct bgwork *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->base = base;
	w->want_threads = threads < 1 ? 1 : threads;
	if (w->want_threads > BGWORK_MAX_THREADS)
		w->want_threads = BGWORK_MAX_THREADS;
	w->pipe_rd = w->pipe_wr = -1;
	STAILQ_INIT(&w->todo);
	STAILQ_INIT(&w->done);
	if (mtx_init(&w->mu, mtx_plain) != thrd_success) {
		free(w);
		return -ENOMEM;
	}
	if (cnd_init(&w->cv) != thrd_success) {
		mtx_destroy(&w->mu);
		free(w);
		return -ENOMEM;
	}
	*out = w;
	return 0;
}

/* The pipe and the threads, at the first job (most daemons never need them), or when the
 * owner knows it will (bgwork_start). */
int bgwork_start(struct bgwork *w)
{
	if (w->pipe_rd < 0) {
		int fds[2];
		if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
			return -errno;
		w->pipe_rd = fds[0];
		w->pipe_wr = fds[1];
		event_assign(&w->pipe_ev, w->base, w->pipe_rd, EV_READ | EV_PERSIST, pipe_cb, w);
		if (event_add(&w->pipe_ev, NULL) < 0)
			return -EIO;
		w->pipe_added = true;
	}
	while (w->n_threads < w->want_threads) {
		if (thrd_create(&w->threads[w->n_threads], worker, w) != thrd_success)
			return w->n_threads > 0 ? 0 : -EAGAIN;
		w->n_threads++;
	}
	return 0;
}

int bgwork_submit(struct bgwork *w, struct bgwork_job *job)
{
	/* (the pipe and the threads once, unless a thread could not be started) */
	int err = w->n_threads < w->want_threads ? bgwork_start(w) : 0;
	if (err < 0)
		return err;
	job->ran = false;
	mtx_lock(&w->mu);
	STAILQ_INSERT_TAIL(&w->todo, job, link);
	mtx_unlock(&w->mu);
	/* after the unlock: the woken worker does not find the mutex still held */
	cnd_signal(&w->cv);
	return 0;
}

void bgwork_free(struct bgwork **wp)
{
	struct bgwork *w = *wp;
	if (!w)
		return;
	*wp = NULL;
	mtx_lock(&w->mu);
	w->stopping = true;
	cnd_broadcast(&w->cv);
	mtx_unlock(&w->mu);
	for (int i = 0; i < w->n_threads; i++)
		thrd_join(w->threads[i], NULL);
	/* the threads are gone: the lists are the loop's alone (the done ones first) */
	STAILQ_CONCAT(&w->done, &w->todo);
	for (struct bgwork_job *j; (j = STAILQ_FIRST(&w->done));) {
		STAILQ_REMOVE_HEAD(&w->done, link);
		j->done(j, j->ran);
	}
	if (w->pipe_added)
		event_del(&w->pipe_ev);
	if (w->pipe_rd >= 0)
		close(w->pipe_rd);
	if (w->pipe_wr >= 0)
		close(w->pipe_wr);
	cnd_destroy(&w->cv);
	mtx_destroy(&w->mu);
	free(w);
}
