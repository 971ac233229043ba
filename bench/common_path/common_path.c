/* bench_common_path: what a lone pgcrond costs the server at rest and on a full server.
 * Three parts, one fresh daemon each, on the sandbox's server:
 *
 *   rest        one database, 3 jobs (every 10 s, every 5 minutes, one that listens): the
 *               daemon's sessions on the server after it settled (pg_stat_activity), by
 *               application_name;
 *   statements  10 jobs every second: every statement the server received in 8 s
 *               (log_statement = 'all' for the window, read back from the server's log), the
 *               daemon's own (not its runs', whose sessions are named "pgcrond: JOB") split
 *               into history writes (job_run_details) and the rest;
 *   full        the server's slots taken by another role's sessions until only the 3 reserved
 *               ones are left (the daemon connects as a superuser, the others cannot take
 *               those), then 20 jobs every second for 8 s: runs succeeded and failed, from the
 *               history and from the rows the runs inserted; FULL_RUNS times (5), then once
 *               more after an outage (the server stopped for 3 s while the jobs ran, so the
 *               history waits in the spill file) with the slots taken again at once.
 *
 * Prints the figures; never fails on them.
 *
 *   scripts/pg-sandbox run -- build/bench/common_path/bench_common_path
 *   FULL_RUNS=5  BENCH_PGCROND=PATH: another build of the daemon (two builds side by side) */
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

#define DB "bench_common_path"
#define HOG_ROLE "bench_common_path_other"
#define MAX_HOGS 1000

static const char *sandbox;
static char ci[1200], dir[] = "/tmp/bench_common_path.XXXXXX";

static long long scalar(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die(sql, PQerrorMessage(c));
	long long v = PQgetisnull(r, 0, 0) ? 0 : atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* A configuration of N jobs every second (INSERT into ticks; SCHEDULES[i] instead where given),
 * and with LISTEN a job that listens; returns the path of the main file. */
static const char *idle_timeout = "5m"; /* the databases' idle_timeout (the default) */

static const char *write_conf_at(int n, int pool, bool listen, const char *const *schedules)
{
	static char path[1300];
	char p[1300];
	snprintf(p, sizeof(p), "rm -rf %s/conf.d %s/state; mkdir -p %s/conf.d %s/state", dir, dir,
	         dir, dir);
	if (system(p) != 0)
		bench_die("cannot prepare", dir);
	for (int i = 0; i < n + (listen ? 1 : 0); i++) {
		snprintf(p, sizeof(p), "%s/conf.d/%02d.conf", dir, i);
		FILE *f = fopen(p, "w");
		if (!f)
			bench_die("cannot write", p);
		if (i < n)
			fprintf(f,
			        "job = { name = \"t%d\"; database = \"app\"; schedule = \"%s\";\n"
			        "  command = \"INSERT INTO ticks VALUES ('t%d', "
			        "clock_timestamp())\"; };\n",
			        i, schedules ? schedules[i] : "* * * * * *", i);
		else
			fprintf(
			    f,
			    "job = { name = \"l\"; database = \"app\"; schedule = \"0 0 1 1 *\";\n"
			    "  listen = \"bench_common_path\"; command = \"SELECT 1\"; };\n");
		fclose(f);
		bench_chown_user(p);
	}
	snprintf(path, sizeof(path), "%s/pgcrond.conf", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		bench_die("cannot write", path);
	fprintf(f,
	        "databases = { app = { conninfo = \"%s\"; pool = %d; idle_timeout = \"%s\"; }; };\n"
	        "history = { database = \"app\"; };\nstate_dir = \"%s/state\";\n"
	        "conf_dir = \"conf.d\";\nlog_level = \"info\";\n",
	        ci, pool, idle_timeout, dir);
	fclose(f);
	bench_chown_user(path);
	snprintf(p, sizeof(p), "%s/conf.d", dir);
	bench_chown_user(p);
	snprintf(p, sizeof(p), "%s/state", dir);
	bench_chown_user(p);
	return path;
}

static const char *write_conf(int n, int pool, bool listen)
{
	return write_conf_at(n, pool, listen, NULL);
}

static pid_t start(const char *conf)
{
	char log[1300];
	snprintf(log, sizeof(log), "%s/daemon.log", dir);
	return bench_daemon_start(conf, log);
}

/* ---- rest ------------------------------------------------------------------------------ */

static void rest_count(PGconn *c, const char *when)
{
	PGresult *r =
	    PQexec(c, "SELECT coalesce(application_name, '') || ' (' || state || ', last: '"
	              " || left(regexp_replace(query, '\\s+', ' ', 'g'), 40) || ')', count(*)"
	              " FROM pg_stat_activity"
	              " WHERE datname = current_database() AND pid <> pg_backend_pid()"
	              " AND backend_type = 'client backend' GROUP BY 1 ORDER BY 1");
	int total = 0;
	printf("rest: one database, 3 jobs (every 10 s, every 5 minutes, one that listens), %s:\n",
	       when);
	for (int i = 0; i < PQntuples(r); i++) {
		printf("  %-70s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
		total += atoi(PQgetvalue(r, i, 1));
	}
	printf("  sessions: %d\n", total);
	PQclear(r);
}

/* The sessions 12 s after a start (the start-up's warm-up opens a connection for each job due
 * in its first 90 s), then again with idle_timeout = "20s" once a connection unused that long
 * was closed (at the warm-up before an instant that does not need it, or at its idle check
 * every half connection_check; the every-5-minute job may have used both meanwhile). */
static void rest(PGconn *c)
{
	static const char *const every[] = {"*/10 * * * * *", "0 */5 * * * *"};
	pid_t pid = start(write_conf_at(2, 4, true, every));
	bench_sleep(12);
	rest_count(c, "12 s after the start");
	bench_daemon_stop(pid);
	idle_timeout = "20s";
	pid = start(write_conf_at(2, 4, true, every));
	bench_sleep(65);
	rest_count(c, "idle_timeout = \"20s\", 65 s after the start");
	bench_daemon_stop(pid);
	idle_timeout = "5m";
}

/* ---- statements ------------------------------------------------------------------------- */

static void statements(PGconn *c)
{
	pid_t pid = start(write_conf(10, 4, false));
	bench_sleep(6);
	bench_exec(c, "ALTER SYSTEM SET log_line_prefix = '%p|%a|'");
	bench_exec(c, "ALTER SYSTEM SET log_statement = 'all'");
	bench_exec(c, "SELECT pg_reload_conf()");
	bench_sleep(0.5);
	bench_exec(c, "SELECT 'bench_common_path: window begins'");
	bench_sleep(8);
	bench_exec(c, "SELECT 'bench_common_path: window ends'");
	bench_exec(c, "ALTER SYSTEM RESET log_statement");
	bench_exec(c, "ALTER SYSTEM RESET log_line_prefix");
	bench_exec(c, "SELECT pg_reload_conf()");
	bench_daemon_stop(pid);

	char path[1100];
	snprintf(path, sizeof(path), "%s/server.log", sandbox);
	FILE *f = fopen(path, "r");
	if (!f)
		bench_die("cannot read the server's log", path);
	/* A session that runs a job's command or resets after one (DISCARD ALL) is a run's;
	 * the others are the daemon's own. Lines: "PID|APPLICATION|LOG:  statement: ..." */
	char line[8192];
	bool in = false;
	enum { MAXL = 4096 };
	static int pid_of[MAXL];
	static char text_of[MAXL][96];
	int n = 0;
	int run_pids[256], n_run_pids = 0;
	while (fgets(line, sizeof(line), f) && n < MAXL) {
		if (strstr(line, "bench_common_path: window begins'")) {
			in = true;
			continue;
		}
		if (strstr(line, "bench_common_path: window ends'"))
			break;
		char *what = strstr(line, "LOG:  ");
		char *app = strchr(line, '|');
		if (!in || !what || !app || strncmp(app + 1, "pgcrond", 7) != 0)
			continue;
		what += 6;
		if (strncmp(what, "statement: ", 11) != 0 && strncmp(what, "execute ", 8) != 0)
			continue;
		char *text = strchr(what, ':') + 1;
		text += strspn(text, " ");
		int pid = atoi(line);
		if ((strncmp(text, "DISCARD ALL", 11) == 0 ||
		     strncmp(text, "INSERT INTO ticks", 17) == 0) &&
		    n_run_pids < 256) {
			bool known = false;
			for (int i = 0; i < n_run_pids; i++)
				known |= run_pids[i] == pid;
			if (!known)
				run_pids[n_run_pids++] = pid;
		}
		pid_of[n] = pid;
		snprintf(text_of[n], sizeof(text_of[n]), "%.*s| %.50s", (int)(what - 6 - app - 2),
		         app + 1, text);
		text_of[n][strcspn(text_of[n], "\n")] = '\0';
		n++;
	}
	int runs = 0, history = 0, bounds = 0, own = 0;
	char kinds[32][96];
	int counts[32] = {0}, nk = 0;
	for (int i = 0; i < n; i++) {
		bool run = false;
		for (int k = 0; k < n_run_pids; k++)
			run |= run_pids[k] == pid_of[i];
		if (run) {
			runs++;
			continue;
		}
		if (strstr(text_of[i], "job_run_details")) {
			history++;
			continue;
		}
		if (strstr(text_of[i], "set_config('statement_timeout'")) {
			bounds++; /* a history batch's own time bound, sent with it */
			continue;
		}
		own++;
		int k = 0;
		while (k < nk && strcmp(kinds[k], text_of[i]) != 0)
			k++;
		if (k == nk && nk < 32)
			memcpy(kinds[nk++], text_of[i], sizeof(kinds[0]));
		if (k < 32)
			counts[k]++;
	}
	fclose(f);
	printf("statements: a lone instance, 10 jobs every second, 8 s:\n"
	       "  on the runs' %d session(s): %d; history writes: %d (and %d set_config of their "
	       "time bounds); its own besides the history: %d\n",
	       n_run_pids, runs, history, bounds, own);
	for (int k = 0; k < nk; k++)
		printf("    %4d  %s\n", counts[k], kinds[k]);
}

/* ---- full server ------------------------------------------------------------------------ */

static PGconn *hogs[MAX_HOGS];
static int n_hogs;

/* Another role's sessions take every slot but the reserved ones. */
static void take_slots(void)
{
	char hog_ci[1400];
	snprintf(hog_ci, sizeof(hog_ci), "%s user=" HOG_ROLE, ci);
	while (n_hogs < MAX_HOGS) {
		PGconn *h = PQconnectdb(hog_ci);
		if (PQstatus(h) != CONNECTION_OK) {
			PQfinish(h);
			break;
		}
		hogs[n_hogs++] = h;
	}
}

static void free_slots(void)
{
	while (n_hogs > 0)
		PQfinish(hogs[--n_hogs]);
}

/* 20 jobs every second for 8 s with the slots taken; OUTAGE: the server stopped 3 s first. */
static void full_once(PGconn **c, int round, bool outage)
{
	bench_exec(*c, "TRUNCATE ticks");
	const char *conf = write_conf(20, 4, false);
	pid_t pid = 0;
	if (outage) {
		pid = start(conf);
		bench_sleep(3);
		PQfinish(*c);
		char cmd[1200];
		snprintf(cmd, sizeof(cmd), "%s/scripts/pg-sandbox pause --dir %s",
		         PGCROND_SOURCE_DIR, sandbox);
		if (system(cmd) != 0)
			bench_die("cannot stop the server", cmd);
		bench_sleep(3);
		snprintf(cmd, sizeof(cmd), "%s/scripts/pg-sandbox resume --dir %s",
		         PGCROND_SOURCE_DIR, sandbox);
		if (system(cmd) != 0)
			bench_die("cannot start the server", cmd);
		*c = bench_connect(ci);
		take_slots();
	} else {
		take_slots();
		pid = start(conf);
	}
	PGresult *r = PQexec(*c, "SELECT extract(epoch FROM clock_timestamp())");
	double t0 = atof(PQgetvalue(r, 0, 0));
	PQclear(r);
	bench_sleep(8);
	free_slots(); /* the stop may write what it kept */
	bench_daemon_stop(pid);
	bench_sleep(1);
	/* the spill file of an outage is written at the next start: a short one, not counted */
	if (outage) {
		pid = start(write_conf(0, 4, false));
		bench_sleep(5);
		bench_daemon_stop(pid);
	}
	char sql[600];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FILTER (WHERE status = 'succeeded'),"
	         " count(*) FILTER (WHERE status = 'failed'),"
	         " count(*) FILTER (WHERE status NOT IN ('succeeded', 'failed')),"
	         " (SELECT count(*) FROM ticks WHERE at >= to_timestamp(%.3f)"
	         "   AND at < to_timestamp(%.3f) + interval '8 s')"
	         " FROM pgcrond.job_run_details WHERE start_time >= to_timestamp(%.3f)"
	         " AND start_time < to_timestamp(%.3f) + interval '8 s' AND job_name LIKE 't%%'",
	         t0, t0, t0, t0);
	r = PQexec(*c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die(sql, PQerrorMessage(*c));
	printf("  %s%d: %s succeeded, %s failed, %s otherwise (history); %s rows inserted by runs "
	       "within the 8 s\n",
	       outage ? "after an outage " : "", round, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
	       PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3));
	PQclear(r);
	snprintf(sql, sizeof(sql),
	         "SELECT left(return_message, 110), count(*) FROM pgcrond.job_run_details"
	         " WHERE start_time >= to_timestamp(%.3f) AND status = 'failed'"
	         " GROUP BY 1 ORDER BY 2 DESC LIMIT 3",
	         t0);
	r = PQexec(*c, sql);
	for (int i = 0; i < PQntuples(r); i++)
		printf("      %s x %s\n", PQgetvalue(r, i, 1), PQgetvalue(r, i, 0));
	PQclear(r);
	bench_exec(*c, "DELETE FROM pgcrond.job_run_details");
}

int main(int argc, char **argv)
{
	(void)argc;
	setvbuf(stdout, NULL, _IOLBF, 0); /* each figure as it comes */
	sandbox = getenv("PGCROND_SANDBOX");
	if (!sandbox) {
		fprintf(stderr,
		        "bench_common_path: run it in a sandbox: scripts/pg-sandbox run -- %s\n",
		        argv[0]);
		return 0;
	}
	const char *fr = getenv("FULL_RUNS");
	int full_runs = fr && atoi(fr) > 0 ? atoi(fr) : 5;
	PGconn *c = bench_fresh_db(sandbox, DB, ci, sizeof(ci));
	bench_exec(c, "CREATE TABLE ticks (job text, at timestamptz)");
	bench_exec(c, "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '" HOG_ROLE
	              "') THEN CREATE ROLE " HOG_ROLE " LOGIN; END IF; END $$");
	if (!mkdtemp(dir))
		bench_die("mkdtemp", dir);
	bench_chown_user(dir);
	char log[1300];
	snprintf(log, sizeof(log), "%s/daemon.log", dir);
	if (bench_pgcrond("install", write_conf(0, 4, false), log) != 0)
		bench_die("pgcrond install failed; see", log);

	FILE *la = fopen("/proc/loadavg", "r");
	char load[64] = "?";
	if (la) {
		if (!fgets(load, sizeof(load), la))
			snprintf(load, sizeof(load), "?");
		fclose(la);
	}
	printf("bench_common_path (load average at the start: %.*s)\n", (int)strcspn(load, "\n"),
	       load);
	rest(c);
	statements(c);
	printf("full: another role holds every slot but the %lld reserved ones; 20 jobs every "
	       "second, 8 s:\n",
	       scalar(c, "SELECT current_setting('superuser_reserved_connections')::int"));
	for (int i = 1; i <= full_runs; i++)
		full_once(&c, i, false);
	full_once(&c, 1, true);
	PQfinish(c);
	printf("daemon log: %s\n", log);
	return 0;
}
