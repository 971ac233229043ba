/* bench_views: what the seed view plugins cost. Starts its own pg-sandbox, loads the demo
 * schema, and for each size (default 100,000 then 1,000,000 submissions) generates the data,
 * populates every view, then prints per view:
 *   - the time of REFRESH MATERIALIZED VIEW CONCURRENTLY (the statements the plugin's run
 *     gives, after the core's guard), median and min..max over VIEWS_RUNS runs (default 3),
 *     each after a few pending submissions were scored, so there is a difference to apply;
 *   - the latency of a reader querying the view (SELECT count(*)) on its own connection, in
 *     a child process, idle and while one more concurrent refresh of the view runs:
 *     p50 / p99 / max, and how many reads overlapped the refresh.
 * and, for comparison, one plain (blocking) REFRESH. Prints figures; never fails on time.
 *
 *   build/bench/views/bench_views [SUBMISSIONS ...]     (VIEWS_RUNS=N runs per size) */
#include <errno.h>
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "plugin.h"
#include "reader.h"

#define DB "bench_views"
#define MAX_VIEWS 16
#define MAX_RUNS 20
#define MAX_SAMPLES 500000

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
	char from[512], to[256], err[1024], buf[65536];

	snprintf(plugin_dir, sizeof(plugin_dir), "/tmp/pgcrond-bench-views-plugins-XXXXXX");
	if (!mkdtemp(plugin_dir) || chmod(plugin_dir, 0755) != 0)
		bench_die("cannot create a plugin directory", strerror(errno));
	for (size_t i = 0; i < N_PLUGINS; i++) {
		snprintf(from, sizeof(from), "%s/%s.so", PLUGIN_BUILD_DIR, plugin_names[i]);
		snprintf(to, sizeof(to), "%s/%s.so", plugin_dir, plugin_names[i]);
		FILE *in = fopen(from, "rb"), *o = fopen(to, "wb");
		if (!in || !o)
			bench_die("cannot copy (is it built?)", from);
		size_t n;
		while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
			if (fwrite(buf, 1, n, o) != n)
				bench_die("cannot write", to);
		fclose(in);
		if (fclose(o) != 0 || chmod(to, 0644) != 0)
			bench_die("cannot write", to);
		if (plugin_load(plugin_dir, plugin_names[i], &out[i], err, sizeof(err)) < 0)
			bench_die("cannot load plugin", err);
	}
}

/* One statement of a run: what it refreshes, for the report. */
struct stmt_view {
	const struct plugin *plugin;
	char view[160]; /* the relation the statement names, as written after the keywords */
	char *sql;
	char **params;
	int n_params;
};

/* The guard for each CONCURRENT relation of P (as the core runs it before every run). */
static void run_guards(PGconn *c, const struct plugin *p)
{
	struct conf_job job = {.name = "bench", .plugin = p->name, .line = 1};
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

/* ---- the reader ----------------------------------------------------------------------- */

/* One more concurrent refresh of ST's view (guard first), with a reader on the view:
 * idle for 0.5 s before, then during the refresh. */
static void measure_readers(PGconn *c, const struct stmt_view *st, struct reader_latency *idle,
                            struct reader_latency *during, double *refresh_ms)
{
	char sql[256];
	struct reader *r;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", st->view);
	r = reader_start(db_ci, sql, MAX_SAMPLES);
	if (!r)
		bench_die("cannot start a reader", strerror(errno));
	reader_wait(r, 0, 10);
	double idle_from = bench_now();
	bench_sleep(0.5);
	run_guards(c, st->plugin);
	double t0 = bench_now();
	exec_stmt(c, st->sql, st->params, st->n_params);
	double t1 = bench_now();
	if (reader_stop(r) != 0)
		bench_die("the reader failed", r->error);
	if (atomic_load(&r->failed))
		fprintf(stderr, "bench_views: reader on %s: %s\n", st->view, r->error);
	if (reader_latency(r, idle_from, t0, false, idle) < 0 ||
	    reader_latency(r, t0, t1, true, during) < 0)
		bench_die("out of memory", NULL);
	*refresh_ms = (t1 - t0) * 1e3;
	reader_free(&r);
}

/* ---- one size ------------------------------------------------------------------------- */

static void bench_size(PGconn *c, const struct plugin **plugins, long submissions, int runs)
{
	struct stmt_view views[MAX_VIEWS];
	size_t n_views = 0;
	char sql[256], err[1024];
	double t0;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pgcrond_demo.generate(%ld)", submissions);
	t0 = bench_now();
	bench_exec(c, sql);
	printf("\n== %ld submissions (generated in %.1f s)\n", submissions, bench_now() - t0);
	bench_exec(c, "ANALYZE");

	/* The statements of each plugin's run, one REFRESH per view. */
	for (size_t i = 0; i < N_PLUGINS; i++) {
		struct conf_job job = {.name = "bench", .plugin = plugins[i]->name, .line = 1};
		struct pgc_run *run;
		if (plugin_build_run(plugins[i], &job, NULL, 0, &run, err, sizeof(err)) < 0)
			bench_die("build_run", err);
		for (size_t j = 0; j < run->n_stmts && n_views < MAX_VIEWS; j++) {
			struct stmt_view *v = &views[n_views++];
			const char *name = strrchr(run->stmts[j].sql, ' ');
			v->plugin = plugins[i];
			snprintf(v->view, sizeof(v->view), "%s",
			         name ? name + 1 : run->stmts[j].sql);
			/* the run is freed below: keep the statement */
			v->sql = strdup(run->stmts[j].sql);
			v->n_params = run->stmts[j].n_params;
			v->params =
			    v->n_params ? calloc((size_t)v->n_params, sizeof(char *)) : NULL;
			if (!v->sql || (v->n_params && !v->params))
				bench_die("out of memory", NULL);
			for (int k = 0; k < v->n_params; k++)
				if (run->stmts[j].params[k] &&
				    !(v->params[k] = strdup(run->stmts[j].params[k])))
					bench_die("out of memory", NULL);
		}
		plugin_run_free(&run);
	}

	/* First refresh of everything, in dependency order: the guard populates (a plain
	 * refresh), then the run's concurrent refresh. */
	printf("%-42s %10s %22s %8s   %s\n", "view", "rows", "concurrent ms med (min..max)",
	       "plain ms", "reader ms: idle p50 | during refresh: reads p50 p99 max");
	double plain[MAX_VIEWS] = {0};
	for (size_t i = 0; i < n_views; i++) {
		/* a plain (blocking) refresh: populates, and is the figure to compare with */
		snprintf(sql, sizeof(sql), "REFRESH MATERIALIZED VIEW %s", views[i].view);
		plain[i] = exec_stmt(c, sql, NULL, 0) * 1e3;
		exec_stmt(c, views[i].sql, views[i].params, views[i].n_params);
	}

	double times[MAX_VIEWS][MAX_RUNS];
	for (int r = 0; r < runs; r++) {
		/* a little new data, as between two scheduled runs */
		bench_exec(c, "SELECT pgcrond_demo.score_pending(200)");
		for (size_t i = 0; i < n_views; i++) {
			run_guards(c, views[i].plugin);
			times[i][r] =
			    exec_stmt(c, views[i].sql, views[i].params, views[i].n_params) * 1e3;
		}
	}
	for (size_t i = 0; i < n_views; i++) {
		struct reader_latency idle, during;
		double refresh_ms;
		qsort(times[i], (size_t)runs, sizeof(double), bench_cmp_double);
		measure_readers(c, &views[i], &idle, &during, &refresh_ms);
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", views[i].view);
		PGresult *res = PQexec(c, sql);
		const char *rows =
		    PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "?";
		char spread[64];
		snprintf(spread, sizeof(spread), "%.0f (%.0f..%.0f)", times[i][runs / 2],
		         times[i][0], times[i][runs - 1]);
		printf(
		    "%-42s %10s %22s %8.0f   %6.2f | %5ld %6.2f %6.2f %7.2f  (refresh %.0f ms)\n",
		    views[i].view, rows, spread, plain[i], idle.p50, during.n, during.p50,
		    during.p99, during.max, refresh_ms);
		fflush(stdout);
		PQclear(res);
	}
	for (size_t i = 0; i < n_views; i++) {
		for (int k = 0; k < views[i].n_params; k++)
			free(views[i].params[k]);
		free(views[i].params);
		free(views[i].sql);
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
