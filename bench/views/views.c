/* bench_views: what the analytics view plugins cost. Starts its own pg-sandbox, loads the demo
 * schema, and for each size (default 100,000 then 1,000,000 submissions) generates the data,
 * makes every relation complete, then prints for each table a plugin keeps per partition
 * (ABI 1.2), median and min..max over VIEWS_RUNS runs (default 3), each after 20 submissions
 * of the largest challenge were scored:
 *   - before: REFRESH MATERIALIZED VIEW CONCURRENTLY of a materialized view of the same
 *     query, what each run cost when the relations were materialized views;
 *   - a full run (scheduled: every row replaced, one transaction);
 *   - a one-challenge run (notified: one payload per scored submission, naming its
 *     challenge and agent) for the challenge of median size and for the largest, the
 *     speed-up of the full run over each, and whether the table after the median one's
 *     equals the table a full run gives (identical rows).
 * Prints figures; never fails on time.
 *
 *   build/bench/views/bench_views [SUBMISSIONS ...]     (VIEWS_RUNS=N runs per size) */
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "plugin.h"

#define DB "bench_views"
#define MAX_RUNS 20

static const char *const plugin_names[] = {
    "lane_distribution", "weakness_patterns", "agent_progress",
    "time_to_first_win", "chat_telemetry",
};
#define N_PLUGINS (sizeof(plugin_names) / sizeof(plugin_names[0]))

static char sandbox_dir[128], plugin_dir[128], base_ci[1024], db_ci[1200];
static bool sandbox_started;

static void stop_sandbox(void)
{
	char cmd[512];

	if (!sandbox_started)
		return;
	sandbox_started = false;
	int n = snprintf(cmd, sizeof(cmd), "'%s/scripts/pg-sandbox' stop --dir '%s'", REPO_DIR,
	                 sandbox_dir);
	if (n > 0 && (size_t)n < sizeof(cmd) && system(cmd) != 0)
		fprintf(stderr, "bench_views: could not stop the sandbox in %s\n", sandbox_dir);
}

static void remove_plugin_dir(void)
{
	char path[256];

	if (!plugin_dir[0])
		return;
	for (size_t i = 0; i < N_PLUGINS; i++) {
		snprintf(path, sizeof(path), "%s/%s.so", plugin_dir, plugin_names[i]);
		unlink(path);
	}
	rmdir(plugin_dir);
}

/* scripts/pg-sandbox start, owned by this process (its watcher stops the server if we bench_die).
 */
static void start_sandbox(void)
{
	char cmd[512];
	int n;

	n = snprintf(sandbox_dir, sizeof(sandbox_dir), "/tmp/pgcrond-bench-views.%ld",
	             (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(sandbox_dir))
		bench_die("sandbox path too long", NULL);
	n = snprintf(cmd, sizeof(cmd), "'%s/scripts/pg-sandbox' start --dir '%s' --owner %ld",
	             REPO_DIR, sandbox_dir, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(cmd))
		bench_die("command too long", NULL);
	FILE *p = popen(cmd, "r");
	if (!p)
		bench_die("cannot run", cmd);
	sandbox_started = true;
	if (!fgets(base_ci, sizeof(base_ci), p))
		base_ci[0] = '\0';
	if (pclose(p) != 0 || !base_ci[0])
		bench_die("pg-sandbox start failed", cmd);
	base_ci[strcspn(base_ci, "\n")] = '\0';
}

/* Copies of the built plugins in a directory with the modes the loader demands. */
static void load_plugins(const struct plugin **out)
{
	char err[1024];

	snprintf(plugin_dir, sizeof(plugin_dir), "/tmp/pgcrond-bench-views-plugins-XXXXXX");
	if (!mkdtemp(plugin_dir) || chmod(plugin_dir, 0755) != 0)
		bench_die("cannot create a plugin directory", strerror(errno));
	for (size_t i = 0; i < N_PLUGINS; i++) {
		bench_copy_plugin(plugin_dir, plugin_names[i]);
		if (plugin_load(plugin_dir, plugin_names[i], &out[i], err, sizeof(err)) < 0)
			bench_die("cannot load plugin", err);
	}
}

/* The guard for each CONCURRENT relation of P (as the core runs it before every run). */
static void run_guards(PGconn *c, const struct plugin *p)
{
	struct conf_job job = {
	    .name = "bench", .more = &config_job_more_defaults, .plugin = p->name, .line = 1};
	struct pgc_relation_decl *rels;
	size_t n;
	char err[1024], quoted[600];

	if (plugin_job_relations(p, &job, &rels, &n, err, sizeof(err)) < 0)
		bench_die("relations", err);
	for (size_t i = 0; i < n; i++) {
		if (rels[i].kind != PGC_RELATION_MATVIEW ||
		    !(rels[i].flags & PGC_RELATION_CONCURRENT))
			continue;
		if (plugin_quote_qualified(rels[i].name, quoted, sizeof(quoted)) < 0)
			bench_die("cannot quote", rels[i].name);
		const char *params[] = {quoted};
		PGresult *r =
		    PQexecParams(c, "SELECT pgcrond.prepare_concurrent_refresh($1::regclass)", 1,
		                 NULL, params, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			bench_die("guard", PQresultErrorMessage(r));
		PQclear(r);
	}
	plugin_relations_free(&rels);
}

static double exec_stmt(PGconn *c, const char *sql, char **params, int n_params)
{
	double t0 = bench_now();
	PGresult *r =
	    PQexecParams(c, sql, n_params, NULL, (const char *const *)params, NULL, NULL, 0);
	double t = bench_now() - t0;
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die(sql, PQresultErrorMessage(r));
	PQclear(r);
	return t;
}

/* One run of plugin P with PAYLOADS, as the daemon executes it (guards, then the
 * statements in order). Returns its wall time in ms; *PARTIAL says whether it replaced only
 * some partitions. */
static double run_plugin(PGconn *c, const struct plugin *p, char **payloads, size_t n_payloads,
                         bool *partial)
{
	struct conf_job job = {
	    .name = "bench", .more = &config_job_more_defaults, .plugin = p->name, .line = 1};
	struct pgc_run *run;
	char err[1024];

	if (plugin_build_run(p, &job, (const char *const *)payloads, n_payloads, &run, err,
	                     sizeof(err)) < 0)
		bench_die("build_run", err);
	double t0 = bench_now();
	run_guards(c, p);
	for (size_t i = 0; i < run->n_stmts; i++)
		exec_stmt(c, run->stmts[i].sql, run->stmts[i].params, run->stmts[i].n_params);
	double t = (bench_now() - t0) * 1e3;
	if (partial)
		*partial = run->n_stmts > 1 && run->stmts[1].n_params == 1;
	plugin_run_free(&run);
	return t;
}

/* ---- the plugins that keep tables per partition --------------------------------------- */

/* Each table, its unique key (for the materialized view of the same query that stands for
 * the plugins before ABI 1.2) and the payload field of its partitions. */
static const struct keyed {
	const char *plugin;
	const char *table;
	const char *unique_key;
	const char *field;
} keyed[] = {
    {"lane_distribution", "public.mv_lane_score_distribution", "challenge_id, lane_key",
     "challenge_id"},
    {"weakness_patterns", "public.mv_weakness_patterns", "agent_id, challenge_id, lane_key",
     "challenge_id"},
    {"agent_progress", "public.mv_agent_progress", "agent_id, challenge_id, week", "agent_id"},
    {"time_to_first_win", "public.mv_time_to_first_win", "challenge_id", "challenge_id"},
};
#define N_KEYED (sizeof(keyed) / sizeof(keyed[0]))

/* Score (again) SCORED submissions of challenge CH, announced as the demo's trigger does:
 * returns the payloads (malloc'd) and their number in *N. */
static char **score_challenge(PGconn *c, const char *ch, int scored, size_t *n)
{
	char k[16];
	snprintf(k, sizeof(k), "%d", scored);
	const char *params[] = {ch, k};
	PGresult *r = PQexecParams(
	    c,
	    "WITH picked AS (SELECT id FROM public.submissions WHERE challenge_id = $1 "
	    "ORDER BY random() LIMIT $2::int) "
	    "UPDATE public.submissions u SET status = 'scored', scored_at = now(), "
	    "final_lane_scores = (SELECT jsonb_object_agg(l, round((random() * 100)::numeric, 2)) "
	    "FROM unnest(ch.lanes) l), composite_score = round((random() * 100)::numeric, 3) "
	    "FROM public.challenges ch, picked WHERE u.id = picked.id AND ch.id = u.challenge_id "
	    "RETURNING json_build_object('submission_id', u.id, 'challenge_id', u.challenge_id, "
	    "'agent_id', u.agent_id)::text",
	    2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("scoring", PQresultErrorMessage(r));
	*n = (size_t)PQntuples(r);
	char **out = calloc(*n ? *n : 1, sizeof(*out));
	if (!out)
		bench_die("out of memory", NULL);
	for (size_t i = 0; i < *n; i++)
		if (!(out[i] = strdup(PQgetvalue(r, (int)i, 0))))
			bench_die("out of memory", NULL);
	PQclear(r);
	return out;
}

static void free_payloads(char **p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i]);
	free(p);
}

static long long scalar_ll(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die(sql, PQresultErrorMessage(r));
	long long v = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* ---- one size ------------------------------------------------------------------------- */

static const struct plugin *find_plugin(const struct plugin **plugins, const char *name)
{
	for (size_t i = 0; i < N_PLUGINS; i++)
		if (strcmp(plugins[i]->name, name) == 0)
			return plugins[i];
	bench_die("no plugin", name);
	return NULL;
}

static void bench_size(PGconn *c, const struct plugin **plugins, long submissions, int runs)
{
	char sql[1024];
	double t0;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pgcrond_demo.generate(%ld)", submissions);
	t0 = bench_now();
	bench_exec(c, sql);
	printf("\n== %ld submissions (generated in %.1f s)\n", submissions, bench_now() - t0);
	bench_exec(c, "ANALYZE");

	/* the challenge of median size (a typical one-challenge run) and the largest (the
	 * slowest one) */
	PGresult *r = PQexec(c, "SELECT challenge_id::text, count(*) FROM public.submissions "
	                        "GROUP BY 1 ORDER BY 2, 1");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
		bench_die("no challenge", PQresultErrorMessage(r));
	int n_ch = PQntuples(r);
	char ch[64], big[64];
	snprintf(ch, sizeof(ch), "%s", PQgetvalue(r, n_ch / 2, 0));
	snprintf(big, sizeof(big), "%s", PQgetvalue(r, n_ch - 1, 0));
	printf("one-challenge runs: 20 submissions of one challenge scored, one payload each; "
	       "challenge %s has %s submissions (median of %d challenges), the largest %s\n",
	       ch, PQgetvalue(r, n_ch / 2, 1), n_ch, PQgetvalue(r, n_ch - 1, 1));
	PQclear(r);

	/* every relation complete first, in dependency order */
	for (size_t i = 0; i < N_PLUGINS; i++)
		run_plugin(c, plugins[i], NULL, 0, NULL);

	printf("%-36s %9s %22s %22s %22s %8s %22s %8s %s\n", "relation", "rows",
	       "before: matview ms", "full run ms", "median challenge ms", "speed-up",
	       "largest challenge ms", "speed-up", "partial = full");
	for (size_t k = 0; k < N_KEYED; k++) {
		const struct keyed *kd = &keyed[k];
		const struct plugin *p = find_plugin(plugins, kd->plugin);
		double before[MAX_RUNS], full[MAX_RUNS], part[MAX_RUNS], part_big[MAX_RUNS];

		/* before ABI 1.2: a materialized view of the same query, refreshed CONCURRENTLY */
		snprintf(sql, sizeof(sql),
		         "DROP MATERIALIZED VIEW IF EXISTS bench_old; "
		         "CREATE MATERIALIZED VIEW bench_old AS SELECT * FROM "
		         "%s_rows(NULL::pg_catalog.uuid[]); "
		         "CREATE UNIQUE INDEX ON bench_old (%s)",
		         kd->table, kd->unique_key);
		bench_exec(c, sql);
		for (int i = 0; i < runs; i++) {
			size_t n = 0;
			free_payloads(score_challenge(c, ch, 20, &n), n);
			before[i] = exec_stmt(c, "REFRESH MATERIALIZED VIEW CONCURRENTLY bench_old",
			                      NULL, 0) *
			            1e3;
			full[i] = run_plugin(c, p, NULL, 0, NULL);
		}
		bench_exec(c, "DROP MATERIALIZED VIEW bench_old");

		for (int i = 0; i < runs; i++) {
			size_t n = 0;
			char **payloads = score_challenge(c, big, 20, &n);
			if (strcmp(kd->plugin, "weakness_patterns") == 0)
				run_plugin(c, find_plugin(plugins, "lane_distribution"), payloads,
				           n, NULL);
			part_big[i] = run_plugin(c, p, payloads, n, NULL);
			free_payloads(payloads, n);
		}
		long long differ = 0;
		for (int i = 0; i < runs; i++) {
			size_t n = 0;
			bool partial;
			char **payloads = score_challenge(c, ch, 20, &n);
			/* the upstream's partition first, as the job graph orders it */
			if (strcmp(kd->plugin, "weakness_patterns") == 0)
				run_plugin(c, find_plugin(plugins, "lane_distribution"), payloads,
				           n, NULL);
			part[i] = run_plugin(c, p, payloads, n, &partial);
			if (!partial)
				bench_die("the notified run was not partial", kd->plugin);
			free_payloads(payloads, n);
			/* identical rows: the partial run's table against a full run's */
			snprintf(sql, sizeof(sql),
			         "DROP TABLE IF EXISTS bench_partial; "
			         "CREATE TEMP TABLE bench_partial AS SELECT * FROM %s",
			         kd->table);
			bench_exec(c, sql);
			run_plugin(c, p, NULL, 0, NULL);
			snprintf(sql, sizeof(sql),
			         "SELECT (SELECT count(*) FROM (TABLE bench_partial EXCEPT ALL "
			         "TABLE %s) "
			         "a) + (SELECT count(*) FROM (TABLE %s EXCEPT ALL TABLE "
			         "bench_partial) b)",
			         kd->table, kd->table);
			differ += scalar_ll(c, sql);
		}
		qsort(before, (size_t)runs, sizeof(double), bench_cmp_double);
		qsort(full, (size_t)runs, sizeof(double), bench_cmp_double);
		qsort(part, (size_t)runs, sizeof(double), bench_cmp_double);
		qsort(part_big, (size_t)runs, sizeof(double), bench_cmp_double);
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", kd->table);
		long long rows = scalar_ll(c, sql);
		char b[64], f[64], pt[64], pb[64];
		snprintf(pb, sizeof(pb), "%.1f (%.1f..%.1f)", part_big[runs / 2], part_big[0],
		         part_big[runs - 1]);
		snprintf(b, sizeof(b), "%.0f (%.0f..%.0f)", before[runs / 2], before[0],
		         before[runs - 1]);
		snprintf(f, sizeof(f), "%.0f (%.0f..%.0f)", full[runs / 2], full[0],
		         full[runs - 1]);
		snprintf(pt, sizeof(pt), "%.1f (%.1f..%.1f)", part[runs / 2], part[0],
		         part[runs - 1]);
		printf("%-36s %9lld %22s %22s %22s %7.1fx %22s %7.1fx %s\n", kd->table, rows, b, f,
		       pt, full[runs / 2] / part[runs / 2], pb, full[runs / 2] / part_big[runs / 2],
		       differ ? "NO: rows differ" : "identical rows");
		fflush(stdout);
	}
}

int main(int argc, char **argv)
{
	const struct plugin *plugins[N_PLUGINS];
	long sizes[16];
	size_t n_sizes = 0;
	int runs = 3;

	for (int i = 1; i < argc && n_sizes < 16; i++) {
		char *end;
		long v = strtol(argv[i], &end, 10);
		if (*end || v < 1000) {
			fprintf(stderr, "usage: %s [SUBMISSIONS ...]   (each at least 1000)\n",
			        argv[0]);
			return 64;
		}
		sizes[n_sizes++] = v;
	}
	if (!n_sizes) {
		sizes[n_sizes++] = 100000;
		sizes[n_sizes++] = 1000000;
	}
	if (getenv("VIEWS_RUNS")) {
		runs = atoi(getenv("VIEWS_RUNS"));
		if (runs < 1 || runs > MAX_RUNS) {
			fprintf(stderr, "VIEWS_RUNS must be 1..%d\n", MAX_RUNS);
			return 64;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* Loaded plugins stay mapped: their copies are not needed past this point. */
	load_plugins(plugins);
	remove_plugin_dir();
	/* Killed, this process leaves the server to the sandbox's watcher (--owner). */
	start_sandbox();
	atexit(stop_sandbox);

	PGconn *admin = bench_connect(base_ci);
	bench_quiet_notices(admin);
	bench_exec(admin, "DROP DATABASE IF EXISTS " DB);
	bench_exec(admin, "CREATE DATABASE " DB);
	PGresult *v = PQexec(admin, "SELECT version()");
	printf("bench_views: %s\n",
	       PQresultStatus(v) == PGRES_TUPLES_OK ? PQgetvalue(v, 0, 0) : "?");
	PQclear(v);
	PQfinish(admin);
	int n = snprintf(db_ci, sizeof(db_ci), "%s dbname=" DB, base_ci);
	if (n < 0 || (size_t)n >= sizeof(db_ci))
		bench_die("conninfo too long", NULL);
	printf("bench_views: %d timed run(s) per view and size; %ld CPUs\n", runs,
	       sysconf(_SC_NPROCESSORS_ONLN));

	PGconn *c = bench_connect(db_ci);
	bench_quiet_notices(c);
	bench_exec_file(c, REPO_DIR "/sql/demo/schema.sql");
	bench_exec_file(c, REPO_DIR "/sql/demo/generate.sql");
	bench_exec_file(c, REPO_DIR "/sql/refresh.sql");
	for (size_t i = 0; i < N_PLUGINS; i++)
		bench_exec(c, plugins[i]->decl.install_sql);

	for (size_t i = 0; i < n_sizes; i++)
		bench_size(c, plugins, sizes[i], runs);
	PQfinish(c);
	return 0;
}
