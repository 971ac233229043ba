/* bench_freshness: freshness against schedules (docs/freshness.md) on the five analytics views.
 * Generates SUBMISSIONS (default 1,000,000) submissions of the demo (sql/demo), installs the
 * analytics view plugins with `pgcrond install`, then lives through one simulated day twice,
 * each time with the daemon running the five view jobs:
 *   "cron":      the original schedules (every 10 min, 30 min, hourly, 4-hourly, hourly);
 *   "freshness": freshness = the same periods, no schedule.
 * Neither has `listen` (the shipped lane and weakness jobs do): the comparison is of the
 * clock against the SLA alone. Writes come only in a few hours of the day (default 09:00 to
 * 13:00): every 0.25-0.75 s (real time) a transaction scores 10 random submissions again and
 * logs one chat request, and the time after its commit is kept.
 *
 * Time is compressed by SPEED (--speed F, default 60): one real second is F simulated
 * seconds, so a simulated day lasts 86400/F real seconds (24 min at 60) and each period is
 * divided by F (10 min -> 10 s at 60). The refreshes themselves do not shrink: keep each
 * view's refresh well under its compressed period (the bench says when one is not), so at
 * 1,000,000 submissions a lower --speed than on a small data set.
 *
 * Prints per view and mode, side by side: the runs, the refresh time (the sum of the runs'
 * duration_ms in pgcrond.job_run_details: a refresh keeps one backend of the database busy
 * for its duration, so this is the database CPU the refreshes take, at most), and the worst
 * staleness: for each write, the start of the first successful run of the view that started
 * after it (for weakness_patterns, after the end of the first lane run that did) less the
 * write's time, in simulated minutes; the largest over the day's writes. Every run of the
 * day counts, the first ones of the daemon's start included. Never fails on time.
 *
 *   scripts/pg-sandbox run -- build/bench/freshness/bench_freshness [--submissions N]
 *       [--speed F] [--hours H] [--writes FROM-TO] [--quick]
 *   --quick: 20,000 submissions, --speed 600, a 6-hour day with writes from 01:00 to 02:00
 *   (about a minute and a half in all): a smoke test, not figures. */
#include <errno.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

#define DB "bench_freshness"

static const struct view {
	const char *job, *plugin;
	const char *upstream;      /* the view it reads (its plugin's edge), or NULL */
	int period_s;              /* simulated: the original schedule's period */
	const char *original_cron; /* that schedule */
} views[] = {
    {"refresh-lane-distributions", "lane_distribution", NULL, 600, "*/10 * * * *"},
    {"refresh-weakness-patterns", "weakness_patterns", "refresh-lane-distributions", 1800,
     "*/30 * * * *"},
    {"refresh-agent-progress", "agent_progress", NULL, 3600, "0 * * * *"},
    {"refresh-time-to-first-win", "time_to_first_win", NULL, 14400, "0 */4 * * *"},
    {"refresh-telemetry-summary-hourly", "chat_telemetry", NULL, 3600, "5 * * * *"},
};
#define N_VIEWS (sizeof(views) / sizeof(views[0]))

struct figures {
	long runs, failed;
	double refresh_s, longest_s;
	long writes, unreflected;
	double worst_s; /* real seconds */
};

static char db_ci[1200], dir[64];
static int speed = 60;

/* The cron expression of a period of P real seconds that fires evenly, or false. */
static bool cron_of(int p, char *out, size_t len)
{
	if (p >= 1 && p <= 59)
		snprintf(out, len, "%d seconds", p);
	else if (p % 60 == 0 && 3600 % p == 0)
		snprintf(out, len, "0 */%d * * * *", p / 60);
	else if (p % 3600 == 0 && 86400 % p == 0)
		snprintf(out, len, "0 0 */%d * * *", p / 3600);
	else
		return false;
	return true;
}

static bool speed_ok(int f)
{
	char x[64];
	for (size_t i = 0; i < N_VIEWS; i++)
		if (views[i].period_s % f != 0 || !cron_of(views[i].period_s / f, x, sizeof(x)))
			return false;
	return true;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		bench_die("cannot write", path);
}

/* pgcrond.conf and conf.d/views.conf for MODE ("cron" or "freshness"). */
static void write_config(const char *mode)
{
	char path[256], state[128], buf[8192];
	bool fresh = strcmp(mode, "freshness") == 0;
	snprintf(state, sizeof(state), "%s/state-%s", dir, mode);
	if (mkdir(state, 0700) != 0 && errno != EEXIST)
		bench_die("mkdir", state);
	bench_chown_user(state);
	snprintf(buf, sizeof(buf),
	         "timezone = \"UTC\";\nplugin_dir = \"%s/plugins\";\nconf_dir = \"conf.d\";\n"
	         "state_dir = \"%s\";\nlog_level = \"notice\";\nshutdown_grace = \"5s\";\n"
	         "databases = { analytics = { conninfo = \"%s\"; }; };\n"
	         "history = { database = \"analytics\"; retain = \"7d\"; };\n",
	         dir, state, db_ci);
	snprintf(path, sizeof(path), "%s/pgcrond.conf", dir);
	write_file(path, buf);
	size_t n = (size_t)snprintf(buf, sizeof(buf), "jobs = (\n");
	for (size_t i = 0; i < N_VIEWS && n < sizeof(buf); i++) {
		char when[64];
		int p = views[i].period_s / speed;
		if (fresh)
			snprintf(when, sizeof(when), "freshness = \"%ds\"", p);
		else {
			char expr[48];
			if (!cron_of(p, expr, sizeof(expr)))
				bench_die("no even cron expression for a period", views[i].job);
			snprintf(when, sizeof(when), "schedule = \"%s\"", expr);
		}
		n += (size_t)snprintf(
		    buf + n, sizeof(buf) - n,
		    "  { name = \"%s\"; plugin = \"%s\"; database = \"analytics\";\n"
		    "    %s; timeout = \"2h\"; }%s\n",
		    views[i].job, views[i].plugin, when, i + 1 < N_VIEWS ? "," : "");
	}
	if (n >= sizeof(buf) - 8)
		bench_die("configuration too long", NULL);
	snprintf(buf + n, sizeof(buf) - n, ");\n");
	snprintf(path, sizeof(path), "%s/conf.d/views.conf", dir);
	write_file(path, buf);
}

static void server_now(PGconn *c, char *out, size_t len)
{
	PGresult *r = PQexec(c, "SELECT clock_timestamp()::text");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("now", PQresultErrorMessage(r));
	snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
}

/* One write: 10 random submissions scored again and a chat request logged, one transaction;
 * then the time after its commit. */
static void write_once(PGconn *c, const char *max_id)
{
	const char *params[] = {max_id};
	PGresult *r = PQexecParams(
	    c,
	    "WITH s AS (UPDATE public.submissions SET status = 'scored', scored_at = now(), "
	    "  composite_score = round((random() * 100)::numeric, 3) WHERE id IN "
	    "  (SELECT 1 + (random() * ($1::bigint - 1))::bigint FROM generate_series(1, 10)) "
	    "  RETURNING 1) "
	    "INSERT INTO public.chat_telemetry (domain, model, success, input_tokens, "
	    "  output_tokens, cost_usd, duration_ms) "
	    "SELECT 'shop-' || lpad((random() * 50)::int::text, 3, '0') || '.example.com', "
	    "  'gpt-4o-mini', true, 120, 300, 0.0004, 900 FROM (SELECT count(*) FROM s) x",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		bench_die("write", PQresultErrorMessage(r));
	PQclear(r);
	bench_exec(c, "INSERT INTO public.bench_writes (at) VALUES (clock_timestamp())");
}

static void measure(PGconn *c, const struct view *v, const char *t0, const char *t1,
                    struct figures *f)
{
	const char *params[] = {v->job, t0, t1, v->upstream};
	PGresult *r = PQexecParams(
	    c,
	    "SELECT count(*) FILTER (WHERE status IN ('succeeded', 'failed')), "
	    "  count(*) FILTER (WHERE status = 'failed'), "
	    "  COALESCE(sum(duration_ms) FILTER (WHERE status IN ('succeeded', 'failed')), 0), "
	    "  COALESCE(max(duration_ms), 0) "
	    "FROM pgcrond.job_run_details WHERE job_name = $1 "
	    "AND start_time >= $2::timestamptz AND start_time < $3::timestamptz",
	    3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("history", PQresultErrorMessage(r));
	f->runs = atol(PQgetvalue(r, 0, 0));
	f->failed = atol(PQgetvalue(r, 0, 1));
	f->refresh_s = atof(PQgetvalue(r, 0, 2)) / 1e3;
	f->longest_s = atof(PQgetvalue(r, 0, 3)) / 1e3;
	PQclear(r);
	/* a write is reflected by the first successful run that started after it (after the
	 * upstream's first such run ended, for a view that reads an upstream's) */
	r = PQexecParams(
	    c,
	    "WITH d AS (SELECT job_name, start_time, end_time FROM pgcrond.job_run_details "
	    "  WHERE status = 'succeeded' AND start_time >= $2::timestamptz "
	    "  AND start_time < $3::timestamptz), "
	    "x AS (SELECT w.at, CASE WHEN $4::text IS NULL THEN w.at ELSE (SELECT end_time FROM d "
	    "  WHERE job_name = $4 AND start_time >= w.at ORDER BY start_time LIMIT 1) END AS "
	    "ready "
	    "  FROM public.bench_writes w WHERE w.at >= $2::timestamptz "
	    "  AND w.at < $3::timestamptz), "
	    "y AS (SELECT at, (SELECT min(start_time) FROM d WHERE job_name = $1 "
	    "  AND start_time >= x.ready) AS seen FROM x) "
	    "SELECT count(*), count(*) FILTER (WHERE seen IS NULL), "
	    "  COALESCE(max(extract(epoch FROM seen - at)), 0) FROM y",
	    4, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("staleness", PQresultErrorMessage(r));
	f->writes = atol(PQgetvalue(r, 0, 0));
	f->unreflected = atol(PQgetvalue(r, 0, 1));
	f->worst_s = atof(PQgetvalue(r, 0, 2));
	PQclear(r);
}

/* One simulated day in MODE: the daemon started, the writes in [FROM, TO) hours. */
static void day(PGconn *c, const char *mode, double hours, double from, double to,
                const char *max_id, struct figures *out)
{
	char conf[128], log[128], t0[64], t1[64];
	write_config(mode);
	snprintf(conf, sizeof(conf), "%s/pgcrond.conf", dir);
	snprintf(log, sizeof(log), "%s/daemon-%s.log", dir, mode);
	double load[3] = {0};
	getloadavg(load, 3);
	server_now(c, t0, sizeof(t0));
	pid_t pid = bench_daemon_start(conf, log);
	double m0 = bench_now(), real_day = hours * 3600.0 / speed;
	long writes = 0;
	srandom(27);
	for (;;) {
		double t = bench_now() - m0, sim = t * speed;
		if (t >= real_day)
			break;
		if (sim >= from * 3600.0 && sim < to * 3600.0) {
			write_once(c, max_id);
			writes++;
		}
		double gap = 0.25 + (double)(random() % 500) / 1000.0;
		double left = real_day - (bench_now() - m0);
		bench_sleep(gap < left ? gap : left > 0 ? left : 0);
	}
	server_now(c, t1, sizeof(t1));
	bench_daemon_stop(pid);
	printf("%s: a day of %.0f s (load average at its start %.2f), %ld writes\n", mode, real_day,
	       load[0], writes);
	for (size_t i = 0; i < N_VIEWS; i++)
		measure(c, &views[i], t0, t1, &out[i]);
}

static void usage(const char *argv0)
{
	fprintf(stderr,
	        "usage: %s [--submissions N] [--speed F] [--hours H] [--writes FROM-TO] "
	        "[--quick]\n"
	        "  --speed F: simulated seconds per real second; F divides every period "
	        "evenly:",
	        argv0);
	for (int f = 1; f <= 600; f++)
		if (speed_ok(f))
			fprintf(stderr, " %d", f);
	fprintf(stderr, "\n");
	exit(64);
}

static void fmt_stale(const struct figures *f, char *out, size_t len)
{
	if (f->writes == 0)
		snprintf(out, len, "no write");
	else if (f->unreflected)
		snprintf(out, len, "%ld of %ld unseen", f->unreflected, f->writes);
	else
		snprintf(out, len, "%.1f min", f->worst_s * speed / 60.0);
}

int main(int argc, char **argv)
{
	long submissions = 1000000;
	double hours = 24, from = 9, to = 13;
	static const struct option opts[] = {
	    {"submissions", required_argument, NULL, 'n'},
	    {"speed", required_argument, NULL, 's'},
	    {"hours", required_argument, NULL, 'h'},
	    {"writes", required_argument, NULL, 'w'},
	    {"quick", no_argument, NULL, 'q'},
	    {NULL, 0, NULL, 0},
	};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'n':
			submissions = atol(optarg);
			break;
		case 's':
			speed = atoi(optarg);
			break;
		case 'h':
			hours = atof(optarg);
			break;
		case 'w':
			if (sscanf(optarg, "%lf-%lf", &from, &to) != 2)
				usage(argv[0]);
			break;
		case 'q':
			submissions = 20000;
			speed = 600;
			hours = 6;
			from = 1;
			to = 2;
			break;
		default:
			usage(argv[0]);
		}
	}
	if (optind < argc || submissions < 1000 || speed < 1 || !speed_ok(speed) || hours <= 0 ||
	    hours > 24 || from < 0 || to <= from || to > hours)
		usage(argv[0]);
	const char *sandbox = getenv("PGCROND_SANDBOX");
	if (!sandbox) {
		fprintf(stderr,
		        "bench_freshness: run it in a sandbox: scripts/pg-sandbox run -- %s\n",
		        argv[0]);
		return 0;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	PGconn *c = bench_fresh_db(sandbox, DB, db_ci, sizeof(db_ci));
	bench_quiet_notices(c);
	bench_exec_file(c, REPO_DIR "/sql/demo/schema.sql");
	bench_exec_file(c, REPO_DIR "/sql/demo/generate.sql");
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pgcrond_demo.generate(%ld)", submissions);
	double g0 = bench_now();
	bench_exec(c, sql);
	bench_exec(c, "CREATE TABLE public.bench_writes (at timestamptz NOT NULL); ANALYZE");
	PGresult *r = PQexec(c, "SELECT max(id)::text FROM public.submissions");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("submissions", PQresultErrorMessage(r));
	char max_id[32];
	snprintf(max_id, sizeof(max_id), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	printf("bench_freshness: %ld submissions (generated in %.0f s); 1 real s = %d simulated "
	       "s, a simulated day of %.0f h = %.1f real min, writes from %02.0f:%02.0f to "
	       "%02.0f:%02.0f; %ld CPUs\n",
	       submissions, bench_now() - g0, speed, hours, hours * 60.0 / speed, from,
	       (from - (int)from) * 60, to, (to - (int)to) * 60, sysconf(_SC_NPROCESSORS_ONLN));

	snprintf(dir, sizeof(dir), "/tmp/bench-freshness-XXXXXX");
	if (!mkdtemp(dir) || chmod(dir, 0755) != 0)
		bench_die("mkdtemp", strerror(errno));
	char path[256];
	snprintf(path, sizeof(path), "%s/conf.d", dir);
	if (mkdir(path, 0755) != 0)
		bench_die("mkdir", path);
	snprintf(path, sizeof(path), "%s/plugins", dir);
	if (mkdir(path, 0755) != 0)
		bench_die("mkdir", path);
	for (size_t i = 0; i < N_VIEWS; i++)
		bench_copy_plugin(path, views[i].plugin);
	/* the plugins' objects, the CONCURRENTLY guard, and the change counters on the
	 * sources, as an operator installs them (with the freshness jobs configured) */
	write_config("freshness");
	char conf[128], log[128];
	snprintf(conf, sizeof(conf), "%s/pgcrond.conf", dir);
	snprintf(log, sizeof(log), "%s/install.log", dir);
	int st = bench_pgcrond("install", conf, log);
	if (st != 0) {
		char *text = bench_slurp(log);
		fprintf(stderr, "%s", text);
		free(text);
		bench_die("pgcrond install failed; its output is above", log);
	}

	struct figures cron[N_VIEWS], fresh[N_VIEWS];
	day(c, "cron", hours, from, to, max_id, cron);
	day(c, "freshness", hours, from, to, max_id, fresh);

	printf("\n%-34s %9s | %-40s | %-40s\n", "", "", "cron (the original schedules)",
	       "freshness = the same periods");
	printf("%-34s %9s | %5s %12s %21s | %5s %12s %21s\n", "view", "period", "runs", "refresh s",
	       "worst staleness", "runs", "refresh s", "worst staleness");
	double tot_c = 0, tot_f = 0;
	char saturated[512] = "";
	long failed = 0;
	for (size_t i = 0; i < N_VIEWS; i++) {
		char sc[40], sf[40], per[16];
		fmt_stale(&cron[i], sc, sizeof(sc));
		fmt_stale(&fresh[i], sf, sizeof(sf));
		snprintf(per, sizeof(per), "%d min", views[i].period_s / 60);
		printf("%-34s %9s | %5ld %12.1f %21s | %5ld %12.1f %21s\n", views[i].job, per,
		       cron[i].runs, cron[i].refresh_s, sc, fresh[i].runs, fresh[i].refresh_s, sf);
		if (cron[i].failed || fresh[i].failed)
			printf(
			    "  (failed runs: cron %ld, freshness %ld; the daemon's logs are kept "
			    "in %s)\n",
			    cron[i].failed, fresh[i].failed, dir);
		failed += cron[i].failed + fresh[i].failed;
		tot_c += cron[i].refresh_s;
		tot_f += fresh[i].refresh_s;
		double real_period = (double)views[i].period_s / speed;
		double longest =
		    cron[i].longest_s > fresh[i].longest_s ? cron[i].longest_s : fresh[i].longest_s;
		size_t k = strlen(saturated);
		if (longest > real_period / 2 && k < sizeof(saturated))
			snprintf(saturated + k, sizeof(saturated) - k, "%s %s (%.1f s of %.0f s)",
			         k ? "," : "", views[i].plugin, longest, real_period);
	}
	printf("%-34s %9s | %5s %12.1f %21s | %5s %12.1f %21s\n", "all five", "", "", tot_c, "", "",
	       tot_f, "");
	if (tot_c > 0)
		printf("freshness spent %.0f %% of the cron refresh time\n", 100.0 * tot_f / tot_c);
	printf("refresh s: the sum of the runs' duration_ms (real seconds: a refresh keeps one "
	       "backend busy that long); staleness in simulated minutes, from the writes' commit "
	       "times to the start of the first run that reflects them\n");
	if (saturated[0])
		printf("NOTE: a refresh took more than half its compressed period:%s; durations do "
		       "not compress, so these figures are distorted: use a lower --speed\n",
		       saturated);
	PQfinish(c);
	/* the logs are kept when something failed, not after a clean run */
	if (failed)
		return 0;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_freshness: could not remove %s\n", dir);
	return 0;
}
