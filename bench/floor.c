#include "floor.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common.h"

bool floor_kind(struct floor *f, const char *kind)
{
	f->reset = strcmp(kind, "raw") == 0 || strcmp(kind, "hist") == 0;
	f->history = strcmp(kind, "hist") == 0;
	return f->reset || strcmp(kind, "bare") == 0;
}

void floor_history_create(PGconn *c)
{
	bench_exec(c, "DROP TABLE IF EXISTS floor_history");
	bench_exec(c, "CREATE TABLE floor_history (LIKE pgcrond.job_run_details INCLUDING ALL)");
}

/* Parse F's statement once on C (unnamed, never executed) and wait for it. */
static void floor_parse(struct floor *f, PGconn *c)
{
	if (!PQsendPrepare(c, "", f->sql, f->param ? 1 : 0, NULL) || !PQpipelineSync(c) ||
	    PQflush(c) != 0)
		bench_die("floor parse", PQerrorMessage(c));
	for (;;) {
		PGresult *r = PQgetResult(c);
		if (!r)
			continue;
		ExecStatusType st = PQresultStatus(r);
		PQclear(r);
		if (st == PGRES_FATAL_ERROR)
			bench_die("floor parse", PQerrorMessage(c));
		if (st == PGRES_PIPELINE_SYNC)
			return;
	}
}

void floor_open(struct floor *f, const char *ci, int pool, const char *sql, const char *param,
                bool parse)
{
	if (pool < 1 || pool > FLOOR_MAX_POOL)
		bench_die("floor", "pool out of range");
	f->pool = pool;
	f->sql = sql;
	f->param = param;
	f->skipped = 0;
	for (int i = 0; i < pool; i++) {
		f->c[i] = bench_connect(ci);
		if (!PQenterPipelineMode(f->c[i]))
			bench_die("pipeline mode", PQerrorMessage(f->c[i]));
		if (parse)
			floor_parse(f, f->c[i]);
	}
}

void floor_close(struct floor *f)
{
	for (int i = 0; i < f->pool; i++)
		PQfinish(f->c[i]);
	f->pool = 0;
}

/* One run down C in one round trip: the reset (kinds raw and hist), the job's statement, the
 * history row (hist) that a scheduler would write for run number SEQ of job number JOB. */
static void floor_send(struct floor *f, PGconn *c, int job, long seq)
{
	const char *params[] = {f->param};
	if (f->reset &&
	    (!PQsendQueryParams(c, "DISCARD ALL", 0, NULL, NULL, NULL, NULL, 0) ||
	     !PQsendQueryParams(c, "SHOW statement_timeout", 0, NULL, NULL, NULL, NULL, 0)))
		bench_die("floor send", PQerrorMessage(c));
	if (!PQsendQueryParams(c, f->sql, f->param ? 1 : 0, NULL, params, NULL, NULL, 0))
		bench_die("floor send", PQerrorMessage(c));
	if (f->history) {
		char name[32], key[32];
		snprintf(name, sizeof(name), "j%d", job);
		snprintf(key, sizeof(key), "%ld", seq);
		const char *hp[] = {f->sql, name, key};
		if (!PQsendQueryParams(
		        c,
		        "INSERT INTO floor_history (job_pid, database, username, command, status,"
		        " return_message, start_time, end_time, job_name, trigger, scheduled_time,"
		        " duration_ms, instance, run_key) VALUES (pg_backend_pid(),"
		        " current_database(), current_user, $1, 'succeeded', 'INSERT 0 1',"
		        " statement_timestamp(), clock_timestamp(), $2, 'schedule',"
		        " date_trunc('second', statement_timestamp()), extract(epoch FROM"
		        " clock_timestamp() - statement_timestamp()) * 1000, 'floor', $3)",
		        3, NULL, hp, NULL, NULL, 0))
			bench_die("floor send", PQerrorMessage(c));
	}
	if (!PQpipelineSync(c) || PQflush(c) != 0)
		bench_die("floor send", PQerrorMessage(c));
}

static bool may_send(int sent, int jobs, double deadline)
{
	return sent < jobs && (deadline <= 0 || bench_wall_now() < deadline);
}

int floor_burst(struct floor *f, int jobs, double deadline)
{
	static long seq; /* the history rows' run_key */
	struct pollfd pf[FLOOR_MAX_POOL];
	int sent = 0, busy = 0;
	for (int i = 0; i < f->pool; i++) {
		pf[i] = (struct pollfd){.fd = PQsocket(f->c[i]), .events = 0};
		if (may_send(sent, jobs, deadline)) {
			floor_send(f, f->c[i], sent++, seq++);
			busy++;
			pf[i].events = POLLIN;
		}
	}
	while (busy > 0) {
		if (poll(pf, (nfds_t)f->pool, 5000) <= 0)
			bench_die("floor poll", "no answer in 5 s");
		for (int i = 0; i < f->pool; i++) {
			if (!(pf[i].revents & POLLIN))
				continue;
			if (!PQconsumeInput(f->c[i]))
				bench_die("floor read", PQerrorMessage(f->c[i]));
			while (!PQisBusy(f->c[i])) {
				PGresult *r = PQgetResult(f->c[i]);
				if (!r)
					continue; /* between two statements' results */
				ExecStatusType st = PQresultStatus(r);
				PQclear(r);
				if (st == PGRES_FATAL_ERROR)
					bench_die("floor run", PQerrorMessage(f->c[i]));
				if (st != PGRES_PIPELINE_SYNC)
					continue;
				if (may_send(sent, jobs, deadline)) {
					floor_send(f, f->c[i], sent++, seq++);
				} else {
					busy--;
					pf[i].events = 0;
				}
				break;
			}
		}
	}
	return sent;
}

static void sleep_until(double wall)
{
	struct timespec at = {(time_t)wall, (long)((wall - (double)(time_t)wall) * 1e9)};
	while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &at, NULL) == EINTR)
		;
}

void floor_every_second(struct floor *f, int jobs, double until)
{
	double at = (double)(long long)bench_wall_now() + 1;
	while (at < until) {
		sleep_until(at);
		f->skipped += jobs - floor_burst(f, jobs, at + 1);
		double now = bench_wall_now(), next = at + 1;
		if (now >= next + 1) { /* whole seconds passed with no burst: their fires skipped */
			f->skipped += (long)(now - next) * jobs;
			next = (double)(long long)now;
		}
		at = next;
	}
}
