/* Configuration loads off the event loop (reload.h): one thread per load, its end reported
 * by a byte on a pipe that the loop watches (libevent is not set up for threads, so no
 * event_active() from the thread). */
#include "reload.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h> /* not pthread.h: it includes <sched.h>, which core/src/sched.h shadows */
#include <unistd.h>

struct conf_loader {
	conf_loaded_fn fn;
	void *arg;
	int pipe_fd[2];
	struct event ev;
	bool busy;
	thrd_t thread;
	/* written by the thread, read on the loop after the join */
	const char *path;
	int rc;
	struct pgc_config *cfg;
	struct diag_list dl;
};

static int load_thread(void *arg)
{
	struct conf_loader *l = arg;
	char byte = 1;

	l->rc = config_load(l->path, &l->cfg, &l->dl);
	while (write(l->pipe_fd[1], &byte, 1) < 0 && errno == EINTR)
		;
	return 0;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	struct conf_loader *l = arg;
	char buf[16];

	while (read(fd, buf, sizeof(buf)) < 0 && errno == EINTR)
		;
	if (!l->busy)
		return;
	thrd_join(l->thread, NULL);
	l->busy = false;
	struct pgc_config *cfg = l->cfg;
	struct diag_list dl = l->dl;
	l->cfg = NULL;
	memset(&l->dl, 0, sizeof(l->dl));
	l->fn(l->arg, l->rc, cfg, &dl); /* may start the next load */
}

int conf_loader_new(struct event_base *base, conf_loaded_fn fn, void *arg, struct conf_loader **out)
{
	struct conf_loader *l = calloc(1, sizeof(*l));

	*out = NULL;
	if (!l)
		return -ENOMEM;
	if (pipe2(l->pipe_fd, O_CLOEXEC | O_NONBLOCK) != 0) {
		int e = errno;
		free(l);
		return -e;
	}
	l->fn = fn;
	l->arg = arg;
	event_assign(&l->ev, base, l->pipe_fd[0], EV_READ | EV_PERSIST, on_done, l);
	if (event_add(&l->ev, NULL) != 0) {
		close(l->pipe_fd[0]);
		close(l->pipe_fd[1]);
		free(l);
		return -ENOMEM;
	}
	*out = l;
	return 0;
}

int conf_loader_start(struct conf_loader *l, const char *path)
{
	if (l->busy)
		return -EBUSY;
	l->path = path;
	l->rc = 0;
	l->cfg = NULL;
	memset(&l->dl, 0, sizeof(l->dl));
	if (thrd_create(&l->thread, load_thread, l) != thrd_success)
		return -EAGAIN;
	l->busy = true;
	return 0;
}

void conf_loader_free(struct conf_loader **lp)
{
	struct conf_loader *l = *lp;

	if (!l)
		return;
	*lp = NULL;
	if (l->busy) {
		thrd_join(l->thread, NULL);
		config_free(&l->cfg);
		diag_clear(&l->dl);
	}
	event_del(&l->ev);
	close(l->pipe_fd[0]);
	close(l->pipe_fd[1]);
	free(l);
}
