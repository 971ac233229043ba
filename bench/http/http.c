/* bench_http: what HTTP jobs (docs/jobs.md "HTTP jobs") cost the loop. N HTTP jobs (default 1,000)
 * all due at the same instant every HTTP_PERIOD seconds (a six-field schedule whose seconds step
 * by it), each a GET to a server this bench runs on 127.0.0.1 (plain HTTP, keep-alive, answers
 * "200 ok" at once), beside one SQL job every second (an INSERT of statement_timestamp(), as
 * bench_fire's). Per burst: the request's arrival at the server minus the burst's instant (first,
 * p50, p99, max), and the SQL job's start lateness in the burst's second, the second after, and
 * the quiet seconds between bursts (the loop's lateness for other jobs meanwhile). Prints the
 * median and the spread (min-max) over HTTP_RUNS bursts after one warm-up burst; never fails on
 * time.
 *
 *   scripts/pg-sandbox run -- build/rel/bench/http/bench_http [N]
 *   (HTTP_RUNS=5: bursts measured; HTTP_PERIOD=5: seconds between bursts, a divisor of 60;
 *   HTTP_CONCURRENT: http_client.max_concurrent (unset: its default, 16); HTTP_MAX_RUNNING:
 *   max_running (unset: N + 64, no fire waits for a slot); HTTP_POOL=8: the SQL database's pool;
 *   HTTP_LOG_LEVEL=notice: the daemon's log_level; BENCH_PGCROND=PATH: another pgcrond build) */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define DB "bench_http"
#define MAX_RUNS 64
#define CONN_BUF 4096

/* What the server saw: one arrival per request, its wall-clock time (the clock the fires'
 * instants and the server's statement_timestamp() are on). Written by the server's thread,
 * read by the main thread under the lock. */
static struct {
	pthread_mutex_t lock;
	double *at;
	size_t n, cap;
	long bad; /* requests that were not "GET /jN" */
} arrivals = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct conn {
	int fd;
	size_t len;
	char buf[CONN_BUF];
};

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void note_arrival(double t, bool good)
{
	pthread_mutex_lock(&arrivals.lock);
	if (!good) {
		arrivals.bad++;
	} else {
		if (arrivals.n == arrivals.cap) {
			size_t cap = arrivals.cap ? arrivals.cap * 2 : 16384;
			double *at = realloc(arrivals.at, cap * sizeof(double));
			if (!at)
				bench_die("out of memory", NULL);
			arrivals.at = at;
			arrivals.cap = cap;
		}
		arrivals.at[arrivals.n++] = t;
	}
	pthread_mutex_unlock(&arrivals.lock);
}

static void conn_close(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

/* Read what C has, answer each whole request in it (keep-alive, pipelined ones too).
 * The requests carry no body (GET). */
static void conn_read(int ep, struct conn *c)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	                            "Content-Length: 2\r\n\r\nok";
	for (;;) {
		ssize_t r = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0) {
			conn_close(ep, c);
			return;
		}
		double t = wall_now();
		c->len += (size_t)r;
		c->buf[c->len] = '\0';
		char *end;
		while ((end = strstr(c->buf, "\r\n\r\n")) != NULL) {
			note_arrival(t, strncmp(c->buf, "GET /j", 6) == 0);
			/* a reply this small fits an empty socket buffer; a client that left its
			 * buffer full is dropped, never waited for */
			if (write(c->fd, reply, sizeof(reply) - 1) != (ssize_t)sizeof(reply) - 1) {
				conn_close(ep, c);
				return;
			}
			size_t used = (size_t)(end + 4 - c->buf);
			memmove(c->buf, c->buf + used, c->len - used + 1);
			c->len -= used;
		}
		if (c->len == sizeof(c->buf) - 1) { /* a header this long is not ours */
			conn_close(ep, c);
			return;
		}
	}
}

static void *serve(void *arg)
{
	int lfd = *(int *)arg, ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[64];
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0)
		bench_die("epoll", strerror(errno));
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr) {
				conn_read(ep, evs[i].data.ptr);
				continue;
			}
			int fd;
			while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
				struct conn *c = calloc(1, sizeof(*c));
				if (!c)
					bench_die("out of memory", NULL);
				c->fd = fd;
				struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
				if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) != 0)
					bench_die("epoll", strerror(errno));
			}
		}
	}
	return NULL;
}

/* The server on 127.0.0.1, a port the kernel picks; returns the port. */
static int server_start(void)
{
	static int lfd;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 4096) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
		bench_die("server socket", strerror(errno));
	pthread_t th;
	if (pthread_create(&th, NULL, serve, &lfd) != 0)
		bench_die("pthread_create", NULL);
	pthread_detach(th);
	return ntohs(a.sin_port);
}

static int env_int(const char *name, int def, int lo, int hi)
{
	const char *v = getenv(name);
	int n = v && *v ? atoi(v) : def;
	return n >= lo && n <= hi ? n : def;
}

/* HTTP_MAX_RUNNING: unset, N + 64, so that no fire waits for a run slot and the SQL job's
 * lateness is the loop's; the daemon's default, 32, shows the slot queue instead (HTTP runs
 * hold slots like SQL runs). */
static int max_running(int n)
{
	return env_int("HTTP_MAX_RUNNING", n + 64, 1, 1000000);
}

static void write_config(const char *dir, const char *ci, int n, int port, int period)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/pgcrond.conf", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		bench_die("write", path);
	const char *lvl = getenv("HTTP_LOG_LEVEL");
	fprintf(f,
	        "instance = \"bench\";\ntimezone = \"UTC\";\nplugin_dir = \"%s\";\n"
	        "conf_dir = \"conf.d\";\nstate_dir = \"%s/state\";\nlog_level = \"%s\";\n"
	        "max_running = %d;\nshutdown_grace = \"5s\";\n"
	        "databases = { bench = { conninfo = \"%s\"; pool = %d; }; };\n"
	        "history = { database = \"bench\"; retain = \"1d\"; };\n",
	        dir, dir, lvl && *lvl ? lvl : "notice", max_running(n), ci,
	        env_int("HTTP_POOL", 8, 1, 1000));
	if (getenv("HTTP_CONCURRENT") && *getenv("HTTP_CONCURRENT"))
		fprintf(f, "http_client = { max_concurrent = %d; };\n",
		        env_int("HTTP_CONCURRENT", 16, 1, 10000));
	fclose(f);
	snprintf(path, sizeof(path), "%s/conf.d/other.conf", dir);
	if (!(f = fopen(path, "w")))
		bench_die("write", path);
	fprintf(f, "job = { name = \"other\"; database = \"bench\"; schedule = \"* * * * * *\";\n"
	           "        command = \"INSERT INTO ticks VALUES (statement_timestamp())\"; };\n");
	fclose(f);
	/* files of 1,000 jobs (a configuration file holds at most 1 MiB) */
	for (int first = 0; first < n; first += 1000) {
		int last = first + 1000 < n ? first + 1000 : n;
		snprintf(path, sizeof(path), "%s/conf.d/http-%06d.conf", dir, first);
		if (!(f = fopen(path, "w")))
			bench_die("write", path);
		fprintf(f, "jobs = (\n");
		for (int i = first; i < last; i++)
			fprintf(f,
			        "  { name = \"h%d\"; schedule = \"*/%d * * * * *\";\n"
			        "    http = { url = \"http://127.0.0.1:%d/j%d\"; }; }%s\n",
			        i, period, port, i, i + 1 < last ? "," : "");
		fprintf(f, ");\n");
		fclose(f);
	}
}

/* "median (min-max)" of N values, with DIGITS decimals. */
static void spread(const double *v, int n, int digits, char *out, size_t len)
{
	double s[MAX_RUNS * 60];
	memcpy(s, v, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof(double), bench_cmp_double);
	double med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	snprintf(out, len, "%.*f (%.*f-%.*f)", digits, med, digits, s[0], digits, s[n - 1]);
}

/* The Q quantile of the N sorted values V (nearest rank). */
static double quantile(const double *v, size_t n, double q)
{
	size_t i = (size_t)(q * (double)n + 0.999999);
	return v[i > 0 ? (i <= n ? i - 1 : n - 1) : 0];
}

int main(int argc, char **argv)
{
	const char *sandbox = getenv("PGCROND_SANDBOX");
	if (!sandbox) {
		fprintf(stderr,
		        "bench_http: run it in a sandbox: scripts/pg-sandbox run -- %s [N]\n",
		        argv[0]);
		return 0;
	}
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	if (n < 1 || n > 100000)
		bench_die("N must be 1 to 100000", argv[1]);
	int runs = env_int("HTTP_RUNS", 5, 1, MAX_RUNS);
	int period = env_int("HTTP_PERIOD", 5, 2, 30);
	if (60 % period != 0)
		bench_die("HTTP_PERIOD must divide 60", getenv("HTTP_PERIOD"));

	char ci[1200], dir[] = "/tmp/bench-http-XXXXXX", path[700], log[700];
	PGconn *c = bench_fresh_db(sandbox, DB, ci, sizeof(ci));
	bench_exec(c, "CREATE UNLOGGED TABLE ticks (at timestamptz)");
	bench_exec(c, "GRANT ALL ON ticks TO PUBLIC");
	bench_exec(c, "GRANT ALL ON ALL TABLES IN SCHEMA pgcrond TO PUBLIC");
	if (!mkdtemp(dir))
		bench_die("mkdtemp", strerror(errno));
	chmod(dir, 0755);
	snprintf(path, sizeof(path), "%s/conf.d", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/state", dir);
	mkdir(path, 0700);
	bench_chown_user(path);

	double load[3] = {0};
	if (getloadavg(load, 3) == 3)
		printf("load average at start: %.2f %.2f %.2f (%ld CPUs)\n", load[0], load[1],
		       load[2], sysconf(_SC_NPROCESSORS_ONLN));
	int port = server_start();
	write_config(dir, ci, n, port, period);
	snprintf(path, sizeof(path), "%s/pgcrond.conf", dir);
	snprintf(log, sizeof(log), "%s/daemon.log", dir);
	pid_t pid = bench_daemon_start(path, log);

	/* The first instant at least 2 s away is the warm-up burst (the client's connections
	 * to the server opened, the pools filled); the measured bursts are the RUNS after it. */
	double now = wall_now();
	long long warm = ((long long)now + 2 + period - 1) / period * period;
	long long i0 = warm + period;
	double end = (double)(i0 + (long long)runs * period) - 0.3; /* before the next burst */
	bench_sleep(end - now);
	double t_stop = bench_now();
	bench_daemon_stop(pid);
	double stop_s = bench_now() - t_stop;

	/* the HTTP bursts: each arrival in [i0, i0 + runs * period) counts for the burst whose
	 * instant is the latest before it */
	static double pmin[MAX_RUNS], p50[MAX_RUNS], p99[MAX_RUNS], pmax[MAX_RUNS];
	long got[MAX_RUNS] = {0};
	pthread_mutex_lock(&arrivals.lock);
	double *lat = malloc(sizeof(double) * (arrivals.n + 1));
	if (!lat)
		bench_die("out of memory", NULL);
	for (int k = 0; k < runs; k++) {
		size_t m = 0;
		double at0 = (double)(i0 + (long long)k * period);
		for (size_t j = 0; j < arrivals.n; j++)
			if (arrivals.at[j] >= at0 && arrivals.at[j] < at0 + period)
				lat[m++] = (arrivals.at[j] - at0) * 1000;
		qsort(lat, m, sizeof(double), bench_cmp_double);
		got[k] = (long)m;
		pmin[k] = m ? lat[0] : 0;
		p50[k] = m ? quantile(lat, m, 0.5) : 0;
		p99[k] = m ? quantile(lat, m, 0.99) : 0;
		pmax[k] = m ? lat[m - 1] : 0;
	}
	long bad = arrivals.bad;
	pthread_mutex_unlock(&arrivals.lock);
	free(lat);

	/* the SQL job's lateness each second of the measured bursts, by the second's place in
	 * its burst: 0 is the burst's own second */
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT floor(extract(epoch FROM at))::bigint, extract(epoch FROM at -"
	         " date_trunc('second', at)) * 1000 FROM ticks WHERE at >= to_timestamp(%lld)"
	         " AND at < to_timestamp(%lld) ORDER BY 1",
	         i0, i0 + (long long)runs * period);
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("ticks", PQresultErrorMessage(r));
	static double at_burst[MAX_RUNS], after[MAX_RUNS], quiet[MAX_RUNS * 60];
	int nb = 0, na = 0, nq = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		long long s = atoll(PQgetvalue(r, i, 0));
		double l = atof(PQgetvalue(r, i, 1));
		int place = (int)((s - i0) % period);
		if (place == 0)
			at_burst[nb++] = l;
		else if (place == 1)
			after[na++] = l;
		else
			quiet[nq++] = l;
	}
	int seconds = PQntuples(r);
	PQclear(r);

	char b[7][96];
	spread(pmin, runs, 1, b[6], sizeof(b[6]));
	spread(p50, runs, 1, b[0], sizeof(b[0]));
	spread(p99, runs, 1, b[1], sizeof(b[1]));
	spread(pmax, runs, 1, b[2], sizeof(b[2]));
	printf("N=%d HTTP jobs due every %d s (one burst), %d bursts after a warm-up, "
	       "http_client.max_concurrent %s, max_running %d, median (min-max) over the bursts:\n",
	       n, period, runs,
	       getenv("HTTP_CONCURRENT") && *getenv("HTTP_CONCURRENT") ? getenv("HTTP_CONCURRENT")
	                                                               : "16 (default)",
	       max_running(n));
	printf("  burst's instant to the request at the server, ms  first %s  p50 %s  p99 %s  max "
	       "%s\n",
	       b[6], b[0], b[1], b[2]);
	printf("  requests per burst:");
	for (int k = 0; k < runs; k++)
		printf(" %ld", got[k]);
	printf(" (expected %d); not a job's request: %ld\n", n, bad);
	if (nb)
		spread(at_burst, nb, 1, b[3], sizeof(b[3]));
	if (na)
		spread(after, na, 1, b[4], sizeof(b[4]));
	if (nq)
		spread(quiet, nq, 1, b[5], sizeof(b[5]));
	printf("  every-second SQL job, start lateness ms: in the burst's second %s; the second "
	       "after %s; the %d quiet seconds %s\n",
	       nb ? b[3] : "none", na ? b[4] : "none", nq, nq ? b[5] : "none");
	printf("  SQL job runs in the %d s measured: %d (expected %d)\n", runs * period, seconds,
	       runs * period);

	r = PQexec(c, "SELECT count(*) FILTER (WHERE status = 'succeeded'),"
	              " count(*) FILTER (WHERE status = 'failed'),"
	              " count(*) FILTER (WHERE status = 'skipped'),"
	              " count(*) FILTER (WHERE status IN ('starting', 'running'))"
	              " FROM pgcrond.job_run_details WHERE job_name <> 'other'");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("history counts", PQresultErrorMessage(r));
	printf("  HTTP runs in the history (warm-up and the bursts): succeeded %s, failed %s, "
	       "skipped %s, still running %s; daemon stop took %.1f s\n",
	       PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3),
	       stop_s);
	PQclear(r);
	r = PQexec(c, "SELECT return_message FROM pgcrond.job_run_details WHERE status = 'failed'"
	              " ORDER BY runid LIMIT 1");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
		printf("  the first failed run said: %s\n", PQgetvalue(r, 0, 0));
	PQclear(r);
	printf("logs and configs: %s\n", dir);
	PQfinish(c);
	return 0;
}
