/* bench_route: one run's route, from its timer to its history row (the functions, files and
 * layers it enters, its event-loop hops), counted so that it can be measured before and after
 * a change.
 *
 * The daemon is pgcrond_route: the same sources built with GCC's -finstrument-functions and a
 * tracer (route_trace.c) that records, in the loop's thread, every entry into and exit from a
 * pgcrond function, with its depth. The scenario: a fresh database of the sandbox's server that
 * is also the history database, one job (schedule "* * * * * *", command "SELECT 1"), a lone
 * instance, log level warning. The 3rd run is traced (the first ones pay for connecting and
 * warming up; ROUTE_RUN sets another).
 *
 * The route starts at the job's timer callback (sched_job_timer_cb) for that run: its early
 * wake-up, PRECLAIM_LEAD_US before the instant, which asks the cluster for the fire's claim
 * (every daemon with a history database has the cluster session, a lone one too), then the
 * wake-up at the instant whose call fires the job (enters job_due). Both are printed: from the
 * early wake-up (the route) and from the firing call alone, and then from the fire's first
 * entry into sched_fire_run (the way of the run: the overlap policy, admission, the run's
 * start, its statement, its end and its row; the timer's own work, the next instant and its
 * arming, left out). It ends when the history's
 * statement completion that carries the run's row returns: the first call of
 * sched_recent_written (the history telling the scheduler that a row with its final status
 * is committed) after the fire, cut at the return of the outermost function of
 * core/src/history on the stack at that moment (history.c's op_done, called by the stmtq).
 * Between the two, everything the loop's thread entered counts, whatever asked for it (with
 * one job nothing else is due in those milliseconds; ROUTE_LIST shows every callback).
 *
 *   functions  distinct functions entered (by address: a static inline function is one
 *              function, wherever it was inlined; GCC instruments inlined copies too)
 *   files      the distinct source files of those functions (addr2line on the -g build)
 *   folders    their folders under core/src (the layers, docs/layout.md)
 *   entries    all entries, a function entered twice counted twice
 *   hops       separate callbacks from libevent's dispatch: the timer's, then each entry at the
 *              depth of the loop's callbacks (the lowest depth seen in the route)
 *   and how many of the functions entered another one (the rest are leaves)
 *
 * Then the same for a second job in the same second: two such jobs, the 3rd second's first fire
 * traced, to the first row written after it (both runs' rows normally go in one batch, so this
 * is the route of both runs). Only pgcrond's own functions are instrumented: libc, libpq and
 * libevent are not counted. Entries in worker threads meanwhile are shown apart.
 *
 * Prints the figures; never fails on them (a route that was not recorded is reported).
 *
 *   scripts/pg-sandbox run -- build/dev/bench/route/bench_route
 *   ROUTE_LIST=1   the functions by file with their entries, and the hops
 *   ROUTE_TREE=1   every entry of the route in order, indented by its depth
 *   ROUTE_RUN=3    which run to trace
 *   ROUTE_PGCROND  another pgcrond_route (another commit's build) to measure */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

#define DB "bench_route"

static const char *sandbox, *exe;
static char ci[1200], dir[] = "/tmp/bench_route.XXXXXX";

/* ---- the executable's symbols ---------------------------------------------------------- */

/* The address of function NAME defined in a file ending in FILE ("nm -l"), 0 if none. */
static unsigned long sym_addr(const char *name, const char *file)
{
	char cmd[1400], line[4096];
	snprintf(cmd, sizeof(cmd), "nm -l --defined-only '%s'", exe);
	FILE *p = popen(cmd, "r");
	if (!p)
		bench_die("cannot run", cmd);
	unsigned long found = 0;
	while (fgets(line, sizeof(line), p)) {
		unsigned long a;
		char type, sym[1024], where[2048] = "";
		if (sscanf(line, "%lx %c %1023s %2047s", &a, &type, sym, where) < 3 ||
		    (type != 't' && type != 'T') || strcmp(sym, name) != 0)
			continue;
		char *colon = strrchr(where, ':');
		if (colon)
			*colon = '\0';
		size_t wl = strlen(where), fl = strlen(file);
		if (wl >= fl && strcmp(where + wl - fl, file) == 0)
			found = a;
	}
	pclose(p);
	return found;
}

struct fn {
	unsigned long addr;
	char *name, *file, *folder; /* file: relative to core/src */
	long entries;
	bool in_route, caller; /* caller: entered another function in the route */
};

static struct fn *fns;
static size_t n_fns;

static struct fn *fn_of(unsigned long addr)
{
	size_t lo = 0, hi = n_fns;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (fns[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n_fns && fns[lo].addr == addr ? &fns[lo] : NULL;
}

static int cmp_addr(const void *a, const void *b)
{
	unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
	return (x > y) - (x < y);
}

/* By file, then address: the order of the functions in their file. */
static int cmp_file(const void *a, const void *b)
{
	const struct fn *x = *(const struct fn *const *)a, *y = *(const struct fn *const *)b;
	int c = strcmp(x->file, y->file);
	return c ? c : (x->addr > y->addr) - (x->addr < y->addr);
}

/* Names, files and folders of the N sorted distinct addresses (addr2line -f). */
static void resolve(const unsigned long *addrs, size_t n)
{
	char path[1300], cmd[3000], name[1024], where[2048];
	snprintf(path, sizeof(path), "%s/addrs", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		bench_die("cannot write", path);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%#lx\n", addrs[i]);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "addr2line -f -e '%s' < '%s'", exe, path);
	FILE *p = popen(cmd, "r");
	if (!p)
		bench_die("cannot run", cmd);
	fns = calloc(n, sizeof(*fns));
	n_fns = n;
	for (size_t i = 0; i < n; i++) {
		if (!fgets(name, sizeof(name), p) || !fgets(where, sizeof(where), p))
			bench_die("addr2line", "short output");
		name[strcspn(name, "\n")] = '\0';
		where[strcspn(where, ":\n")] = '\0';
		const char *rel = strstr(where, "core/src/");
		rel = rel ? rel + strlen("core/src/") : where;
		const char *slash = strchr(rel, '/');
		fns[i].addr = addrs[i];
		fns[i].name = strdup(name);
		fns[i].file = strdup(rel);
		fns[i].folder = slash ? strndup(rel, (size_t)(slash - rel)) : strdup("?");
	}
	pclose(p);
}

/* ---- the scenario ---------------------------------------------------------------------- */

/* The configuration of JOBS jobs every second; returns the path of the main file. */
static const char *write_conf(int jobs)
{
	static char path[1300];
	char p[1300];
	snprintf(p, sizeof(p), "rm -rf %s/conf.d %s/state; mkdir -p %s/conf.d %s/state", dir, dir,
	         dir, dir);
	if (system(p) != 0)
		bench_die("cannot prepare", dir);
	for (int i = 0; i < jobs; i++) {
		snprintf(p, sizeof(p), "%s/conf.d/r%d.conf", dir, i);
		FILE *f = fopen(p, "w");
		if (!f)
			bench_die("cannot write", p);
		fprintf(f,
		        "job = { name = \"r%d\"; database = \"app\"; schedule = \"* * * * * *\";\n"
		        "  command = \"SELECT 1\"; };\n",
		        i);
		fclose(f);
		bench_chown_user(p);
	}
	snprintf(path, sizeof(path), "%s/pgcrond.conf", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		bench_die("cannot write", path);
	fprintf(f,
	        "databases = { app = { conninfo = \"%s\"; pool = 4; }; };\n"
	        "history = { database = \"app\"; };\nstate_dir = \"%s/state\";\n"
	        "conf_dir = \"conf.d\";\nlog_level = \"warning\";\n",
	        ci, dir);
	fclose(f);
	bench_chown_user(path);
	snprintf(p, sizeof(p), "%s/conf.d", dir);
	bench_chown_user(p);
	snprintf(p, sizeof(p), "%s/state", dir);
	bench_chown_user(p);
	return path;
}

struct event {
	unsigned long fn;
	int depth;
	bool enter;
};

static bool env_on(const char *name)
{
	const char *v = getenv(name);
	return v && *v && strcmp(v, "0") != 0;
}

/* Count and print the route's events FROM..CUT (ROOT: the depth of the loop's callbacks). */
static void report(const char *what, const struct event *ev, size_t from, size_t cut, int root,
                   unsigned long *stack, int max_depth, bool detail)
{
	for (size_t i = 0; i < n_fns; i++) {
		fns[i].entries = 0;
		fns[i].in_route = fns[i].caller = false;
	}
	memset(stack, 0, ((size_t)max_depth + 2) * sizeof(*stack));
	long entries = 0, hops = ev[from].depth > root ? 1 : 0, callers = 0;
	for (size_t i = from; i <= cut; i++) {
		if (!ev[i].enter)
			continue;
		entries++;
		struct fn *s = fn_of(ev[i].fn);
		s->entries++;
		s->in_route = true;
		stack[ev[i].depth] = ev[i].fn;
		if (i > from && ev[i].depth > 0 && stack[ev[i].depth - 1])
			fn_of(stack[ev[i].depth - 1])->caller = true;
		if (ev[i].depth == root)
			hops++;
	}
	long functions = 0, files = 0, folders = 0;
	for (size_t i = 0; i < n_fns; i++) {
		if (!fns[i].in_route)
			continue;
		functions++;
		callers += fns[i].caller;
		bool file_seen = false, folder_seen = false;
		for (size_t k = 0; k < i; k++) {
			if (!fns[k].in_route)
				continue;
			file_seen |= strcmp(fns[k].file, fns[i].file) == 0;
			folder_seen |= strcmp(fns[k].folder, fns[i].folder) == 0;
		}
		files += !file_seen;
		folders += !folder_seen;
	}
	printf("  %s:\n    functions %ld, files %ld, folders %ld, entries %ld, hops %ld"
	       " (%ld of the functions entered another one)\n",
	       what, functions, files, folders, entries, hops, callers);
	if (!detail)
		return;

	/* the most entered */
	printf("    most entered:");
	for (int top = 0; top < 8; top++) {
		struct fn *best = NULL;
		for (size_t i = 0; i < n_fns; i++)
			if (fns[i].in_route && fns[i].entries > 0 &&
			    (!best || fns[i].entries > best->entries))
				best = &fns[i];
		if (!best)
			break;
		printf("%s %s %ld", top ? "," : "", best->name, best->entries);
		best->entries = -best->entries; /* taken; restored below */
	}
	printf("\n");
	for (size_t i = 0; i < n_fns; i++)
		if (fns[i].entries < 0)
			fns[i].entries = -fns[i].entries;

	if (env_on("ROUTE_LIST")) {
		printf("    the functions by file (entries):\n");
		struct fn **by = calloc(n_fns, sizeof(*by));
		size_t nb = 0;
		for (size_t i = 0; i < n_fns; i++)
			if (fns[i].in_route)
				by[nb++] = &fns[i];
		qsort(by, nb, sizeof(*by), cmp_file);
		for (size_t i = 0; i < nb; i++) {
			if (i == 0 || strcmp(by[i - 1]->file, by[i]->file) != 0)
				printf("%s      %s:", i ? "\n" : "", by[i]->file);
			printf(" %s %ld", by[i]->name, by[i]->entries);
		}
		printf("\n");
		free(by);
		printf("    the hops (the callback libevent called, entries in it):\n");
		long hop = 0, in_hop = 0;
		const char *name = fn_of(ev[from].fn)->name;
		for (size_t i = from; i <= cut; i++) {
			if (!ev[i].enter)
				continue;
			if (ev[i].depth == root && in_hop) {
				printf("      %ld. %s %ld\n", ++hop, name, in_hop);
				in_hop = 0;
			}
			if (ev[i].depth == root)
				name = fn_of(ev[i].fn)->name;
			in_hop++;
		}
		printf("      %ld. %s %ld\n", ++hop, name, in_hop);
	}
	if (env_on("ROUTE_TREE")) {
		printf("    the calls, indented by depth (a hop starts at the margin):\n");
		for (size_t i = from; i <= cut; i++) {
			if (!ev[i].enter)
				continue;
			struct fn *s = fn_of(ev[i].fn);
			printf("      %*s%s (%s)\n", 2 * (ev[i].depth - root), "", s->name,
			       s->file);
		}
	}
}

/* Run the daemon with JOBS jobs and trace fire FIRE; prints the route under TITLE. */
static void route(const char *title, int jobs, int fire)
{
	char out[1300], log[1300], v[64];
	unsigned long start = sym_addr("sched_job_timer_cb", "sched/sched.c"),
	              mark = sym_addr("job_due", "sched/sched.c"),
	              way = sym_addr("sched_fire_run", "sched/sched.c"),
	              end = sym_addr("sched_recent_written", "sched/sched_state.c");
	if (!end) /* an older build, measured beside this one */
		end = sym_addr("sched_recent_written", "sched/sched_recent.c");
	if (!start || !mark || !end) {
		printf("%s: not measured: %s lacks sched_job_timer_cb, job_due or "
		       "sched_recent_written\n",
		       title, exe);
		return;
	}
	snprintf(out, sizeof(out), "%s/state/route.out", dir);
	snprintf(log, sizeof(log), "%s/daemon.log", dir);
	setenv("PGCROND_ROUTE_OUT", out, 1);
	snprintf(v, sizeof(v), "%#lx", start);
	setenv("PGCROND_ROUTE_START", v, 1);
	snprintf(v, sizeof(v), "%#lx", mark);
	setenv("PGCROND_ROUTE_MARK", v, 1);
	snprintf(v, sizeof(v), "%#lx", end);
	setenv("PGCROND_ROUTE_END", v, 1);
	snprintf(v, sizeof(v), "%d", fire);
	setenv("PGCROND_ROUTE_FIRE", v, 1);

	pid_t pid = bench_daemon_start(write_conf(jobs), log);
	double deadline = bench_now() + 30;
	while (access(out, R_OK) != 0 && bench_now() < deadline)
		bench_sleep(0.1);
	bench_daemon_stop(pid);
	FILE *f = fopen(out, "r");
	if (!f) {
		printf("%s: not measured: no route recorded in 30 s (the daemon's log: %s)\n",
		       title, log);
		return;
	}

	size_t n = 0, got = 0;
	unsigned long other = 0;
	int truncated = 0;
	if (fscanf(f, "route %zu %lu %d\n", &n, &other, &truncated) != 3)
		bench_die("unreadable", out);
	struct event *ev = calloc(n + 1, sizeof(*ev));
	unsigned long *addrs = calloc(n + 1, sizeof(*addrs));
	char dir_c;
	while (got < n && fscanf(f, " %c %lx %d", &dir_c, &ev[got].fn, &ev[got].depth) == 3) {
		ev[got].enter = dir_c == '>';
		addrs[got] = ev[got].fn;
		got++;
	}
	fclose(f);
	n = got;
	if (n == 0) {
		printf("%s: not measured: an empty recording\n", title);
		free(ev);
		free(addrs);
		return;
	}
	qsort(addrs, n, sizeof(*addrs), cmp_addr);
	size_t distinct = 0;
	for (size_t i = 0; i < n; i++)
		if (distinct == 0 || addrs[distinct - 1] != addrs[i])
			addrs[distinct++] = addrs[i];
	resolve(addrs, distinct);

	/* the firing call: the last entry into the timer callback before the fire's mark */
	size_t fire_at = 0;
	for (size_t i = 0; i < n; i++) {
		if (ev[i].enter && ev[i].fn == start)
			fire_at = i;
		if (ev[i].enter && ev[i].fn == mark)
			break;
	}
	/* the cut: the return of the outermost history frame on the stack when the row is
	 * reported written */
	int max_depth = 0;
	for (size_t i = 0; i < n; i++)
		if (ev[i].depth > max_depth)
			max_depth = ev[i].depth;
	unsigned long *stack = calloc((size_t)max_depth + 2, sizeof(*stack));
	size_t cut = n - 1;
	bool ended = false;
	for (size_t i = fire_at; i < n; i++) {
		if (!ev[i].enter)
			continue;
		stack[ev[i].depth] = ev[i].fn;
		if (ev[i].fn != end)
			continue;
		int at = ev[i].depth;
		for (int d = 0; d < ev[i].depth; d++) {
			struct fn *s = stack[d] ? fn_of(stack[d]) : NULL;
			if (s && strcmp(s->folder, "history") == 0) {
				at = d;
				break;
			}
		}
		for (size_t k = i + 1; k < n; k++)
			if (!ev[k].enter && ev[k].depth == at) {
				cut = k;
				ended = true;
				break;
			}
		break;
	}
	/* the loop's callbacks are at the lowest depth seen */
	int root = ev[0].depth;
	for (size_t i = 0; i <= cut; i++)
		if (ev[i].depth < root)
			root = ev[i].depth;

	printf("%s%s%s\n", title, ended ? "" : " (NOT ENDED: no row written in the recording)",
	       truncated ? " (TRUNCATED)" : "");
	if (fire_at > 0)
		report("from the early wake-up that claims the fire (the route)", ev, 0, cut, root,
		       stack, max_depth, true);
	report(fire_at > 0 ? "from the wake-up at the fire's instant" : "from the timer", ev,
	       fire_at, cut, root, stack, max_depth, fire_at == 0);
	/* the way of the run: from its fire's decision on, the timer's own work left out */
	for (size_t i = fire_at; way && jobs == 1 && i <= cut; i++)
		if (ev[i].enter && ev[i].fn == way) {
			report("the way of the run, from sched_fire_run", ev, i, cut, root, stack,
			       max_depth, false);
			break;
		}
	if (other)
		printf("  meanwhile %lu entries in worker threads (not counted)\n", other);
	for (size_t i = 0; i < n_fns; i++) {
		free(fns[i].name);
		free(fns[i].file);
		free(fns[i].folder);
	}
	free(fns);
	fns = NULL;
	n_fns = 0;
	free(stack);
	free(addrs);
	free(ev);
	unlink(out);
}

int main(void)
{
	sandbox = getenv("PGCROND_SANDBOX");
	if (!sandbox) {
		fprintf(stderr, "bench_route: run it in a sandbox: scripts/pg-sandbox run -- %s\n",
		        program_invocation_name);
		return 0;
	}
	exe = getenv("ROUTE_PGCROND");
	if (!exe || !*exe)
		exe = ROUTE_PGCROND;
	setenv("BENCH_PGCROND", exe, 1);
	int run = getenv("ROUTE_RUN") ? atoi(getenv("ROUTE_RUN")) : 3;
	if (run < 1)
		run = 3;

	double load = -1;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &load) != 1)
			load = -1;
		fclose(f);
	}
	PGconn *c = bench_fresh_db(sandbox, DB, ci, sizeof(ci));
	PQfinish(c);
	if (!mkdtemp(dir))
		bench_die("mkdtemp", dir);
	bench_chown_user(dir);
	printf("bench_route: %s, load average %.2f\n", exe, load);
	char title[200];
	snprintf(title, sizeof(title),
	         "one run's route, timer to history row (run %d of one job every second)", run);
	route(title, 1, run);
	snprintf(title, sizeof(title), "with a second job in the same second (run %d of each)",
	         run);
	route(title, 2, 2 * (run - 1) + 1);
	char cmd[1400];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_route: cannot remove %s\n", dir);
	return 0;
}
