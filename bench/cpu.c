/* What a run costs the server (cpu.h). */
#include "cpu.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

long long bench_proc_ticks(long pid, bool children, long *ppid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	long pp = 0;
	long long ut = 0, st = 0, cut = 0, cst = 0;
	if (!p || sscanf(p + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld %lld %lld",
	                 &pp, &ut, &st, &cut, &cst) != 5)
		return -1;
	if (ppid)
		*ppid = pp;
	return ut + st + (children ? cut + cst : 0);
}

/* PID's CPU time in ns (/proc/PID/schedstat: no clock tick's rounding, which would hide a
 * backend's share of 100 runs a minute); -1 if it is gone. */
static long long proc_ns(long pid)
{
	char path[64];
	long long ns = -1;
	snprintf(path, sizeof(path), "/proc/%ld/schedstat", pid);
	FILE *f = fopen(path, "r");
	if (f && fscanf(f, "%lld", &ns) != 1)
		ns = -1;
	if (f)
		fclose(f);
	return ns;
}

void bench_cpu_take(PGconn *c, const char *job_like, struct bench_cpu *s)
{
	memset(s, 0, sizeof(*s));
	PQclear(PQexec(c, "SET pg_stat_statements.track = 'none'"));
	/* the backends of this database's clients, the own session's marked */
	PGresult *r = bench_query(c,
	                          "SELECT to_regclass('pgcrond.instance') IS NOT NULL,"
	                          " pg_backend_pid()",
	                          0, NULL);
	bool own = PQgetvalue(r, 0, 0)[0] == 't';
	long self = atol(PQgetvalue(r, 0, 1)), postmaster = 0;
	PQclear(r);
	r = bench_query(c,
	                own ? "SELECT pid, pid IN (SELECT backend_pid FROM pgcrond.instance)"
	                      " FROM pg_stat_activity WHERE backend_type = 'client backend'"
	                      " AND datname = current_database() AND pid <> pg_backend_pid()"
	                    : "SELECT pid, false FROM pg_stat_activity"
	                      " WHERE backend_type = 'client backend'"
	                      " AND datname = current_database() AND pid <> pg_backend_pid()",
	                0, NULL);
	for (int i = 0; i < PQntuples(r) && s->n < BENCH_CPU_MAX_PIDS; i++) {
		int pid = atoi(PQgetvalue(r, i, 0));
		long long t = proc_ns(pid);
		if (t >= 0) {
			s->p[s->n].pid = pid;
			s->p[s->n].ns = t;
			s->p[s->n++].cls = PQgetvalue(r, i, 1)[0] == 't' ? 'o' : 'r';
		}
	}
	PQclear(r);
	/* the whole server: the postmaster (its children's ended times with it) and its live
	 * children */
	bench_proc_ticks(self, false, &postmaster);
	/* (the children that ended: the postmaster's children's times, in clock ticks) */
	long long tick_ns = 1000000000LL / sysconf(_SC_CLK_TCK);
	s->total =
	    (bench_proc_ticks(postmaster, true, NULL) - bench_proc_ticks(postmaster, false, NULL)) *
	        tick_ns +
	    proc_ns(postmaster);
	DIR *d = opendir("/proc");
	for (struct dirent *e; d && (e = readdir(d));) {
		long pid = atol(e->d_name), pp = 0;
		if (pid > 0 && bench_proc_ticks(pid, false, &pp) >= 0 && pp == postmaster)
			s->total += proc_ns(pid) > 0 ? proc_ns(pid) : 0;
	}
	if (d)
		closedir(d);
	/* the statements' time by what they are, where pg_stat_statements is loaded */
	s->stmt_ms[0] = -1;
	r = PQexec(c, "SELECT current_setting('shared_preload_libraries') LIKE"
	              " '%pg_stat_statements%'");
	bool pgss = PQresultStatus(r) == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!pgss)
		return;
	PQclear(PQexec(c, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"));
	const char *p[] = {job_like};
	r = PQexecParams(
	    c,
	    "SELECT coalesce(sum(t) FILTER (WHERE k = 0), 0), coalesce(sum(t) FILTER (WHERE k = 1),"
	    " 0), coalesce(sum(t) FILTER (WHERE k = 2), 0), coalesce(sum(t) FILTER (WHERE k = 3), "
	    "0)"
	    " FROM (SELECT total_exec_time AS t, CASE"
	    "  WHEN query LIKE '%job_run_details%' OR query LIKE '%count_runs%'"
	    "   OR query LIKE '%lock_timeout%' THEN 2"
	    "  WHEN query LIKE $1 THEN 1"
	    "  WHEN query ~* '^\\s*(DISCARD|SHOW|SET|RESET)\\M' OR query LIKE '%set_config%' THEN 0"
	    "  ELSE 3 END AS k FROM pg_stat_statements"
	    "  WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())) x",
	    1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		for (int k = 0; k < 4; k++)
			s->stmt_ms[k] = atof(PQgetvalue(r, 0, k));
	PQclear(r);
}

/* The CPU (ns) of class CLS between A and B: a backend new in B counts whole, one gone from B
 * is in the rest (the postmaster's children's times). */
static long long class_ns(const struct bench_cpu *a, const struct bench_cpu *b, char cls)
{
	long long t = 0;
	for (int i = 0; i < b->n; i++) {
		if (b->p[i].cls != cls)
			continue;
		long long before = 0;
		for (int j = 0; j < a->n; j++)
			if (a->p[j].pid == b->p[i].pid)
				before = a->p[j].ns;
		t += b->p[i].ns - before;
	}
	return t;
}

void bench_cpu_per_run(const struct bench_cpu *a, const struct bench_cpu *b, double runs,
                       double v[8])
{
	double us = 1e-3 / (runs > 0 ? runs : 1); /* (from ns) */
	long long r = class_ns(a, b, 'r'), o = class_ns(a, b, 'o'), all = b->total - a->total;
	v[0] = (double)r * us;
	v[1] = (double)o * us;
	v[2] = (double)(all - r - o) * us;
	v[3] = (double)all * us;
	for (int k = 0; k < 4; k++)
		v[4 + k] = a->stmt_ms[0] < 0 || b->stmt_ms[0] < 0
		               ? -1
		               : (b->stmt_ms[k] - a->stmt_ms[k]) * 1000 / (runs > 0 ? runs : 1);
}

void bench_cpu_print(const char *who, const double v[8])
{
	printf("  %s: server CPU per run %.0f µs: runs' backends %.0f, own session %.0f, rest of "
	       "the server %.0f\n",
	       who, v[3], v[0], v[1], v[2]);
	if (v[4] >= 0)
		printf(
		    "  %s: statements' time per run (pg_stat_statements) reset %.1f µs, job %.1f, "
		    "history %.1f, other %.1f\n",
		    who, v[4], v[5], v[6], v[7]);
}
