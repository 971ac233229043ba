#ifndef PGCROND_BENCH_CPU_H
#define PGCROND_BENCH_CPU_H

/* What a run costs the server, measured where it is paid: the CPU time of the server's
 * processes, read from /proc as bench/session/cpu_by_process.sh reads it (the server runs on
 * this machine; in ns from /proc/PID/schedstat, the ended processes in clock ticks), split by
 * backend:
 *   runs  the client backends of the bench's database (the pool's connections, pg_cron's job
 *         connections, a floor's connections): the reset, the job's statement, the protocol;
 *   own   pgcrond's own session there (pgcrond.instance's backend_pid): the history's writes,
 *         the cluster's and the registry's statements;
 *   rest  every other process of the server, those that ended meanwhile too (the postmaster's
 *         children's times): WAL writer, checkpointer, autovacuum, pg_cron's scheduler
 *         (which writes pg_cron's history), other databases.
 * And, where pg_stat_statements is loaded, the time the statements executed (its
 * total_exec_time, which leaves out parsing and the protocol), by what they are: the session
 * reset (DISCARD, SHOW, SET, RESET, set_config but the history's), the job's statement, the
 * history's statements (pgcrond.job_run_details, count_runs), and the others (the own
 * session's other statements, pg_cron's own). The bench's own connection is not counted
 * (bench_cpu_take sets pg_stat_statements.track = none on it). */

#include <libpq-fe.h>
#include <stdbool.h>

/* PID's utime + stime (+ cutime + cstime with CHILDREN) in clock ticks, its parent pid into
 * PPID (NULL: not wanted); -1 if it is gone. */
long long bench_proc_ticks(long pid, bool children, long *ppid);

#define BENCH_CPU_MAX_PIDS 512

struct bench_cpu {
	long long total; /* ns: the postmaster's and all its children's, ended ones too */
	int n;
	struct {
		int pid;
		long long ns; /* of CPU */
		char cls;     /* 'r' runs, 'o' own */
	} p[BENCH_CPU_MAX_PIDS];
	double stmt_ms[4]; /* reset, job, history, other; stmt_ms[0] < 0: no pg_stat_statements */
};

/* A snapshot through C (the bench's connection to the measured database); JOB_LIKE: a LIKE
 * pattern of the job's statement ("INSERT INTO ticks%"). */
void bench_cpu_take(PGconn *c, const char *job_like, struct bench_cpu *s);
/* Between A and B, per run (RUNS runs), in µs: V[0] runs' backends, V[1] own session, V[2]
 * rest of the server, V[3] all; V[4..7] statement time: reset, job, history, other (-1 each
 * without pg_stat_statements). */
void bench_cpu_per_run(const struct bench_cpu *a, const struct bench_cpu *b, double runs,
                       double v[8]);
/* The two lines of V (medians over windows, or one measurement) for WHO, indented. */
void bench_cpu_print(const char *who, const double v[8]);

#endif
