/* bench_scoring: the lane and weakness tables under continuous scoring, through the daemon.
 * Generates SUBMISSIONS (default 1,000,000) submissions, installs lane_distribution and
 * weakness_patterns, and runs the daemon with their jobs as conf.d ships them (listen on
 * submission_scored, debounce 5 s, max_delay 60 s, weakness after lanes; the schedules are
 * yearly, so that only notified runs are measured: a job with `after` and no schedule would
 * also run, without payloads, after each run of its upstream). A scorer moves pending submissions
 * to 'scored' at SCORING_RATE per second (default 20), one transaction each, so the demo's trigger
 * announces each one, for SCORING_SECONDS (default 180) per window, in four windows:
 *   scenario "all": the demo's scorer (pgcrond_demo.score_pending(1): the oldest pending
 *     submission, whatever its challenge: all challenges change all the time);
 *   scenario "focused": only submissions of three challenges (a competition running on a
 *     few challenges): each tick sends one back to 'judging' and scores the oldest pending
 *     one of those challenges;
 * each with max_partitions = 0 (before: every notified run recomputes every challenge) and
 * the default (after: only the notified challenges). Prints per window and job: runs, run
 * time median and max, the age of the table (now minus the start of the last run that has
 * ended: how old the scores readers see are) p50 / p99 / max, sampled every 100 ms after the
 * job's first run, and the share of the server's CPU spent by pgcrond's run connections,
 * with the server's total CPU (in cores). Prints figures; never fails on time.
 *
 *   scripts/pg-sandbox run -- build/bench/views/bench_scoring [SUBMISSIONS] */
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "cpu.h"

#define DB "bench_scoring"
#define MAX_PIDS 64

static char db_ci[1200], sandbox_dir[512];

/* The server's CPU so far: the postmaster with its reaped children, plus its live ones. */
static long long server_ticks(long postmaster)
{
	long long total = bench_proc_ticks(postmaster, true, NULL);
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10), ppid = 0;
		if (*end || pid <= 0)
			continue;
		long long t = bench_proc_ticks(pid, false, &ppid);
		if (t >= 0 && ppid == postmaster)
			total += t;
	}
	if (d)
		closedir(d);
	return total;
}

/* pgcrond's run connections (application_name "pgcrond"): CPU first and last seen. */
struct backends {
	long pid[MAX_PIDS];
	long long first[MAX_PIDS], last[MAX_PIDS];
	int n;
};

static void backends_sample(PGconn *c, struct backends *b)
{
	PGresult *r = PQexec(c, "SELECT pid FROM pg_stat_activity WHERE application_name = "
	                        "'pgcrond' AND datname = current_database() AND pid NOT IN"
	                        " (SELECT backend_pid FROM pgcrond.instance"
	                        "  WHERE backend_pid IS NOT NULL)");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("pg_stat_activity", PQresultErrorMessage(r));
	for (int i = 0; i < PQntuples(r); i++) {
		long pid = atol(PQgetvalue(r, i, 0));
		long long t = bench_proc_ticks(pid, false, NULL);
		if (t < 0)
			continue;
		int k = 0;
		while (k < b->n && b->pid[k] != pid)
			k++;
		if (k == b->n) {
			if (b->n == MAX_PIDS)
				continue;
			b->pid[b->n] = pid;
			b->first[b->n++] = t;
		}
		b->last[k] = t;
	}
	PQclear(r);
}

static long long backends_ticks(const struct backends *b)
{
	long long t = 0;
	for (int i = 0; i < b->n; i++)
		t += b->last[i] - b->first[i];
	return t;
}

static void write_config(const char *dir, const char *state, int max_partitions)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/pgcrond.conf", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		bench_die("write", path);
	fprintf(f,
	        "timezone = \"UTC\";\nplugin_dir = \"%s/plugins\";\nconf_dir = \"conf.d\";\n"
	        "state_dir = \"%s/%s\";\nlog_level = \"notice\";\nshutdown_grace = \"5s\";\n"
	        "databases = { analytics = { conninfo = \"%s\"; }; };\n"
	        "history = { database = \"analytics\"; retain = \"1d\"; };\n",
	        dir, dir, state, db_ci);
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s", dir, state);
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		bench_die("mkdir", path);
	bench_chown_user(path);
	snprintf(path, sizeof(path), "%s/conf.d/jobs.conf", dir);
	f = fopen(path, "w");
	if (!f)
		bench_die("write", path);
	fprintf(f,
	        "jobs = (\n"
	        "  { name = \"refresh-lane-distributions\"; plugin = \"lane_distribution\";\n"
	        "    database = \"analytics\"; schedule = \"@yearly\";\n"
	        "    listen = \"submission_scored\"; debounce = \"5s\";\n"
	        "    max_delay = \"60s\"; timeout = \"10m\"; max_partitions = %d; },\n"
	        "  { name = \"refresh-weakness-patterns\"; plugin = \"weakness_patterns\";\n"
	        "    database = \"analytics\"; schedule = \"@yearly\";\n"
	        "    after = [ \"refresh-lane-distributions\" ];\n"
	        "    listen = \"submission_scored\"; debounce = \"5s\"; max_delay = \"60s\";\n"
	        "    timeout = \"10m\"; max_partitions = %d; }\n"
	        ");\n",
	        max_partitions, max_partitions);
	fclose(f);
}

static void print_job(PGconn *c, const char *job, const char *t0, const char *t1)
{
	const char *params[] = {job, t0, t1};
	PGresult *r = PQexecParams(
	    c,
	    "WITH r AS (SELECT start_time, end_time, duration_ms FROM pgcrond.job_run_details "
	    "  WHERE job_name = $1 AND status = 'succeeded' AND end_time <= $3::timestamptz), "
	    "w AS (SELECT * FROM r WHERE start_time >= $2::timestamptz), "
	    "s AS (SELECT t FROM generate_series((SELECT min(end_time) FROM w), $3::timestamptz, "
	    "  interval '100 ms') t), "
	    "a AS (SELECT extract(epoch FROM s.t - (SELECT max(start_time) FROM r "
	    "  WHERE r.end_time <= s.t)) AS age FROM s) "
	    "SELECT (SELECT count(*) FROM w), "
	    "  (SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms))::numeric) "
	    "   FROM w), (SELECT round(max(duration_ms)::numeric) FROM w), "
	    "  round((percentile_cont(0.5) WITHIN GROUP (ORDER BY age))::numeric, 1), "
	    "  round((percentile_cont(0.99) WITHIN GROUP (ORDER BY age))::numeric, 1), "
	    "  round(max(age)::numeric, 1) FROM a",
	    3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("history", PQresultErrorMessage(r));
	printf("  %-28s runs %3s  run ms p50 %7s max %7s  age s p50 %6s p99 %6s max %6s\n", job,
	       PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3),
	       PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 5));
	PQclear(r);
}

static void server_now(PGconn *c, char *out, size_t outlen)
{
	PGresult *r = PQexec(c, "SELECT now()::text");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("now", PQresultErrorMessage(r));
	snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
}

/* One window: the daemon with MAX_PARTITIONS, the scorer's SQL at RATE per second. */
static void window(PGconn *c, const char *dir, long postmaster, const char *scenario,
                   const char *score_sql, int max_partitions, double seconds, double rate)
{
	char conf[700], log[700], state[64], t0[64], t1[64];
	static int n_windows;
	long hz = sysconf(_SC_CLK_TCK);

	snprintf(state, sizeof(state), "state-%d", ++n_windows);
	write_config(dir, state, max_partitions);
	snprintf(conf, sizeof(conf), "%s/pgcrond.conf", dir);
	snprintf(log, sizeof(log), "%s/daemon-%d.log", dir, n_windows);
	bench_exec(c, "TRUNCATE pgcrond.job_run_details");
	pid_t pid = bench_daemon_start(conf, log);
	bench_sleep(3); /* the listener in place */

	struct backends b = {0};
	double load[3] = {0};
	getloadavg(load, 3);
	server_now(c, t0, sizeof(t0));
	long long s0 = server_ticks(postmaster);
	double m0 = bench_now();
	long scored = 0;
	for (long i = 0;; i++) {
		double due = m0 + (double)i / rate;
		double now = bench_now();
		if (now - m0 >= seconds)
			break;
		if (due > now)
			bench_sleep(due - now);
		PGresult *r = PQexec(c, score_sql);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			bench_die("scorer", PQresultErrorMessage(r));
		scored += atol(PQgetvalue(r, 0, 0));
		PQclear(r);
		if (i % (long)rate == 0)
			backends_sample(c, &b);
	}
	backends_sample(c, &b);
	double wall = bench_now() - m0;
	long long s1 = server_ticks(postmaster);
	server_now(c, t1, sizeof(t1));
	bench_daemon_stop(pid);

	double server_cores = (double)(s1 - s0) / (double)hz / wall;
	double refresh_cores = (double)backends_ticks(&b) / (double)hz / wall;
	printf("\n%s, %s: %ld submissions scored in %.0f s (load average at start %.2f)\n",
	       scenario,
	       max_partitions ? "after (only the notified challenges)"
	                      : "before (max_partitions = 0: every challenge, every run)",
	       scored, wall, load[0]);
	printf("  server CPU %.2f cores; pgcrond's runs %.2f cores = %.0f %% of it\n", server_cores,
	       refresh_cores, server_cores > 0 ? 100.0 * refresh_cores / server_cores : 0.0);
	print_job(c, "refresh-lane-distributions", t0, t1);
	print_job(c, "refresh-weakness-patterns", t0, t1);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *sandbox = getenv("PGCROND_SANDBOX");
	if (!sandbox) {
		fprintf(stderr,
		        "bench_scoring: run it in a sandbox: scripts/pg-sandbox run -- %s "
		        "[SUBMISSIONS]\n",
		        argv[0]);
		return 0;
	}
	long submissions = argc > 1 ? atol(argv[1]) : 1000000;
	const char *v = getenv("SCORING_SECONDS");
	double seconds = v ? atof(v) : 180;
	v = getenv("SCORING_RATE");
	double rate = v ? atof(v) : 20;
	if (submissions < 1000 || seconds < 10 || rate <= 0 || rate > 1000) {
		fprintf(stderr, "bench_scoring: SUBMISSIONS >= 1000, SCORING_SECONDS >= 10, "
		                "SCORING_RATE 0..1000\n");
		return 64;
	}
	snprintf(sandbox_dir, sizeof(sandbox_dir), "%s", sandbox);
	char path[700];
	snprintf(path, sizeof(path), "%s/data/postmaster.pid", sandbox_dir);
	char *pm = bench_slurp(path);
	long postmaster = atol(pm);
	free(pm);
	setvbuf(stdout, NULL, _IOLBF, 0);

	PGconn *c = bench_fresh_db(sandbox, DB, db_ci, sizeof(db_ci));
	bench_quiet_notices(c);
	bench_exec_file(c, REPO_DIR "/sql/demo/schema.sql");
	bench_exec_file(c, REPO_DIR "/sql/demo/generate.sql");
	char sql[512];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pgcrond_demo.generate(%ld)", submissions);
	double g0 = bench_now();
	bench_exec(c, sql);
	printf("bench_scoring: %ld submissions (generated in %.0f s), %.0f s per window, %.0f "
	       "scored/s; %ld CPUs\n",
	       submissions, bench_now() - g0, seconds, rate, sysconf(_SC_NPROCESSORS_ONLN));
	bench_exec_file(c, REPO_DIR "/plugins/lane_distribution/lane_distribution.sql");
	bench_exec_file(c, REPO_DIR "/plugins/weakness_patterns/weakness_patterns.sql");
	bench_exec(c, "ANALYZE");

	char dir[] = "/tmp/bench-scoring-XXXXXX";
	if (!mkdtemp(dir))
		bench_die("mkdtemp", strerror(errno));
	chmod(dir, 0755);
	snprintf(path, sizeof(path), "%s/conf.d", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/plugins", dir);
	mkdir(path, 0755);
	bench_copy_plugin(path, "lane_distribution");
	bench_copy_plugin(path, "weakness_patterns");

	/* the focused scorer: one submission of three challenges scored (again) per tick, as a
	 * re-judging would: one back to 'judging', then the oldest pending or judging one of
	 * those challenges scored, so their pending pool never runs dry */
	const char *focused =
	    "UPDATE public.submissions SET status = 'judging' WHERE id = (SELECT id FROM "
	    "public.submissions WHERE status = 'scored' AND challenge_id IN (SELECT id FROM "
	    "public.challenges ORDER BY slug LIMIT 3) AND id >= (SELECT (random() * "
	    "max(id))::bigint "
	    "FROM public.submissions) ORDER BY id LIMIT 1); "
	    "WITH picked AS (SELECT s.id, c.lanes FROM public.submissions s "
	    "JOIN public.challenges c ON c.id = s.challenge_id "
	    "WHERE s.status IN ('pending', 'judging') AND s.challenge_id IN "
	    "(SELECT id FROM public.challenges ORDER BY slug LIMIT 3) "
	    "ORDER BY s.created_at, s.id LIMIT 1 FOR UPDATE OF s SKIP LOCKED), "
	    "sc AS (SELECT p.id, jsonb_object_agg(l, round((40 + 50 * random())::numeric, 1)) AS "
	    "lanes FROM picked p CROSS JOIN LATERAL unnest(p.lanes) l GROUP BY p.id), "
	    "upd AS (UPDATE public.submissions s SET status = 'scored', final_lane_scores = "
	    "sc.lanes, composite_score = 50, scored_at = now() FROM sc WHERE s.id = sc.id "
	    "RETURNING 1) SELECT count(*) FROM upd";
	const char *all = "SELECT pgcrond_demo.score_pending(1)";
	window(c, dir, postmaster, "all challenges", all, 0, seconds, rate);
	window(c, dir, postmaster, "all challenges", all, 100, seconds, rate);
	window(c, dir, postmaster, "three challenges", focused, 0, seconds, rate);
	window(c, dir, postmaster, "three challenges", focused, 100, seconds, rate);
	PQfinish(c);
	return 0;
}
