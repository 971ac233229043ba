/* A relay on 127.0.0.1 in front of a sandbox's unix socket (itest.h), in a process of its own:
 * the faults a network gives a daemon. Killing it cuts every connection through it (the
 * server sees them closed); SIGUSR1 freezes the connections it holds (kept open, never
 * forwarded again: a NAT that forgot them) while new ones still go through; SIGUSR2 also
 * leaves new ones unanswered (a host that accepts and never answers). */
#include <arpa/inet.h>
#include <check.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

#define RELAY_PAIRS 64

static volatile sig_atomic_t freeze_held, hold_new;

static void on_usr1(int sig)
{
	(void)sig;
	freeze_held = 1;
}

static void on_usr2(int sig)
{
	(void)sig;
	hold_new = 1;
}

/* One relayed connection: the daemon's side, the server's side (-1 while held), and whether
 * it is frozen. */
struct pair {
	int a, b;
	bool frozen;
};

static void pass(struct pair *p, int from, int to)
{
	char buf[16384];
	ssize_t n = read(from, buf, sizeof(buf));
	for (ssize_t off = 0; n > 0 && off < n;) {
		ssize_t w = write(to, buf + off, (size_t)(n - off));
		if (w <= 0)
			break;
		off += w;
	}
	if (n <= 0) {
		close(p->a);
		if (p->b >= 0)
			close(p->b);
		p->a = p->b = -1;
	}
}

/* A new connection from the daemon: to the server, unless new ones are held. */
static bool accept_one(int listener, const char *path, struct pair *p)
{
	int a = accept(listener, NULL, NULL), b = -1;
	if (a < 0)
		return false;
	if (!hold_new) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		memcpy(sa.sun_path, path, strlen(path) + 1); /* fits: itest_relay_start */
		b = socket(AF_UNIX, SOCK_STREAM, 0);
		if (b < 0 || connect(b, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			if (b >= 0)
				close(b);
			close(a);
			return false;
		}
	}
	*p = (struct pair){a, b, false};
	return true;
}

static void relay_main(int listener, const char *path)
{
	struct pair pairs[RELAY_PAIRS];
	size_t n = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* a write to a side the server (a restart) or the daemon just closed fails with EPIPE:
	 * that pair closes (pass), and the relay goes on serving the reconnects; the default
	 * SIGPIPE would end the relay, and every reconnect after it would be refused */
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		if (freeze_held) {
			for (size_t i = 0; i < n; i++)
				pairs[i].frozen = true;
			freeze_held = 0;
		}
		struct pollfd pfd[1 + 2 * RELAY_PAIRS];
		struct pair *owner[1 + 2 * RELAY_PAIRS];
		size_t k = 0;
		pfd[k++] = (struct pollfd){.fd = listener, .events = POLLIN};
		for (size_t i = 0; i < n; i++) {
			if (pairs[i].frozen || pairs[i].b < 0)
				continue;
			owner[k] = &pairs[i];
			pfd[k++] = (struct pollfd){.fd = pairs[i].a, .events = POLLIN};
			owner[k] = &pairs[i];
			pfd[k++] = (struct pollfd){.fd = pairs[i].b, .events = POLLIN};
		}
		/* a signal interrupts it; the timeout closes the gap before it is entered */
		if (poll(pfd, k, 200) < 0)
			continue; /* EINTR: a signal changed the mode */
		for (size_t i = 1; i < k; i++) {
			struct pair *p = owner[i];
			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) || p->a < 0)
				continue;
			if (pfd[i].fd == p->a)
				pass(p, p->a, p->b);
			else if (pfd[i].fd == p->b)
				pass(p, p->b, p->a);
		}
		size_t m = 0; /* closed pairs go, so that a relay serves reconnects without end */
		for (size_t i = 0; i < n; i++)
			if (pairs[i].a >= 0)
				pairs[m++] = pairs[i];
		n = m;
		if ((pfd[0].revents & POLLIN) && n < RELAY_PAIRS &&
		    accept_one(listener, path, &pairs[n]))
			n++;
	}
}

pid_t itest_relay_start(const char *ci, int *port)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(ci, &err);
	ck_assert_msg(opts != NULL, "%s", err ? err : "conninfo");
	const char *host = NULL, *pgport = NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			pgport = o->val;
	}
	ck_assert(host && pgport);
	char path[512];
	snprintf(path, sizeof(path), "%s/.s.PGSQL.%s", host, pgport);
	PQconninfoFree(opts);
	ck_assert_msg(strlen(path) < sizeof(((struct sockaddr_un *)0)->sun_path),
	              "the server's socket path is too long for a relay: %s", path);

	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	ck_assert_int_ge(l, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(l, 64), 0);
	socklen_t len = sizeof(sa);
	ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	/* before the fork, so that a signal sent at once never finds the default action */
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, on_usr2);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		relay_main(l, path);
		_exit(0);
	}
	close(l);
	return pid;
}

void itest_relay_stop(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}
