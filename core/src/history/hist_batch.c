/* Set-based history writes (hist_batch.h). */
#include "hist_batch.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hist_spool.h"

/* ---- the batch ----------------------------------------------------------------------- */

/* Spill line kinds (history.c). */
enum { F_INSTANCE, F_RUN_KEY }; /* first two fields of every kind */
enum ins_col {
	I_INSTANCE,
	I_RUN_KEY,
	I_BOOT_ID,
	I_JOB_NAME,
	I_DATABASE,
	I_USERNAME,
	I_COMMAND,
	I_TRIGGER,
	I_GRAPH_RUN,
	I_SCHED_US,
	I_START_US,
	I_ATTEMPT,
	I_STATUS,
	I_MESSAGE,
	I_SQLSTATE,
	I_END_US,
	I_PID,
	I_WHOLE, /* "t": the row is one record line (R1), not a start and its end */
	I_N
};
enum upd_col {
	U_INSTANCE,
	U_RUN_KEY,
	U_START_US,
	U_STATUS,
	U_MESSAGE,
	U_SQLSTATE,
	U_END_US,
	U_PID,
	U_N
};

/* The rows of lines never sent before: none of them can be in the table yet, so the
 * insert needs no conflict check (the arbiter index probe and the speculative insertion
 * were about a tenth of the history backend's time at 15,000 runs/s). A row there after all
 * fails the batch (23505), which is then sent again as a replay (sql_ins). */
#define U_SCHED HIST_US_TIME("u.sched_us")
#define SQL_INS                                                                                    \
	"INSERT INTO pgcrond.job_run_details AS d"                                                 \
	" (jobid, database, username, command, status, return_message, start_time, end_time,"      \
	"  job_name, trigger, scheduled_time, attempt, duration_ms, sqlstate, instance, run_key,"  \
	"  boot_id, graph_run, job_pid)"                                                           \
	" SELECT (SELECT j.jobid FROM pgcrond.job j"                                               \
	"  WHERE j.jobname OPERATOR(pg_catalog.=) u.job_name),"                                    \
	"  u.database, u.username, u.command, u.status, u.message,"                                \
	"  " HIST_U_START ", " HIST_U_END ", u.job_name, u.trigger, " U_SCHED ", u.attempt,"       \
	"  ((u.end_us OPERATOR(pg_catalog.-) u.start_us) OPERATOR(pg_catalog./) 1000.0),"          \
	"  u.sqlstate, u.instance, u.run_key, u.boot_id, u.graph_run, u.pid"                       \
	" FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"                               \
	"  pg_catalog.unnest($2::pg_catalog.text[]), pg_catalog.unnest($3::pg_catalog.text[]),"    \
	"  pg_catalog.unnest($4::pg_catalog.text[]), pg_catalog.unnest($5::pg_catalog.text[]),"    \
	"  pg_catalog.unnest($6::pg_catalog.text[]), pg_catalog.unnest($7::pg_catalog.text[]),"    \
	"  pg_catalog.unnest($8::pg_catalog.text[]), pg_catalog.unnest($9::pg_catalog.text[]),"    \
	"  pg_catalog.unnest($10::pg_catalog.int8[]),"                                             \
	"  pg_catalog.unnest($11::pg_catalog.int8[]),"                                             \
	"  pg_catalog.unnest($12::pg_catalog.int4[]),"                                             \
	"  pg_catalog.unnest($13::pg_catalog.text[]),"                                             \
	"  pg_catalog.unnest($14::pg_catalog.text[]),"                                             \
	"  pg_catalog.unnest($15::pg_catalog.text[]),"                                             \
	"  pg_catalog.unnest($16::pg_catalog.int8[]),"                                             \
	"  pg_catalog.unnest($17::pg_catalog.int4[]),"                                             \
	"  pg_catalog.unnest($18::pg_catalog.bool[]))"                                             \
	"  AS u(instance, run_key, boot_id, job_name, database, username, command, trigger,"       \
	"  graph_run, sched_us, start_us, attempt, status, message, sqlstate, end_us, pid, whole)"
/* The fire's row is the one of the instance that holds its claim: a first run of a scheduled
 * fire that did not succeed is not written when another instance holds the fire's claim
 * ("s:<unix s>", cluster_fire_key) or its retry's ("/a2" appended). That instance found this
 * one dead while the run's row was still on its way here (in a batch or the spill file): it
 * served the fire, whose claim this run never started (it failed or was refused waiting for its
 * start mark), or it retried the run, whose transaction the fence left rolled back
 * (cluster_lock.c, reap_rolled). This row would be a second one of the fire. This instance's
 * own retry claims "/a2" as itself; a run that succeeded, the common row, skips the look. */
#define SQL_FIRE_KEY                                                                               \
	"('s:' OPERATOR(pg_catalog.||) (u.sched_us OPERATOR(pg_catalog./) "                        \
	"1000000)::pg_catalog.text)"
#define SQL_NOT_RETRIED_ELSEWHERE                                                                  \
	" NOT COALESCE(u.status OPERATOR(pg_catalog.<>) 'succeeded'"                               \
	"  AND u.attempt OPERATOR(pg_catalog.=) 1 AND EXISTS (SELECT"                              \
	"  FROM pgcrond.fire_claim c WHERE c.job_name OPERATOR(pg_catalog.=) u.job_name"           \
	"   AND c.fire_key OPERATOR(pg_catalog.=) ANY (ARRAY[" SQL_FIRE_KEY ","                    \
	"    " SQL_FIRE_KEY " OPERATOR(pg_catalog.||) '/a2'])"                                     \
	"   AND c.instance OPERATOR(pg_catalog.<>) u.instance), false)"
static const char sql_ins_new[] =
    HIST_WRITTEN_OPEN SQL_INS " WHERE" SQL_NOT_RETRIED_ELSEWHERE HIST_WRITTEN_CLOSE("d.");
/* a replay: the row is there; a start changes nothing, an end completes a running row; a
 * skip record of a fire another instance served is not written (HIST_UNLESS_SERVED), nor a
 * run another instance retried */
static const char sql_ins[] = HIST_WRITTEN_OPEN SQL_INS HIST_UNLESS_SERVED(
    "u.whole", "u.status", "u.job_name", U_SCHED,
    "u.instance") " AND" SQL_NOT_RETRIED_ELSEWHERE
                  " ON CONFLICT (instance, run_key, start_time) DO UPDATE"
                  " SET status = EXCLUDED.status, return_message = EXCLUDED.return_message,"
                  "  sqlstate = EXCLUDED.sqlstate, end_time = EXCLUDED.end_time,"
                  "  duration_ms = EXCLUDED.duration_ms, job_pid = coalesce(EXCLUDED.job_pid, "
                  "d.job_pid)"
                  " WHERE EXCLUDED.status OPERATOR(pg_catalog.<>) 'running'"
                  " AND d.status OPERATOR(pg_catalog.=) 'running'" HIST_WRITTEN_CLOSE("d.");

static const char sql_upd[] = HIST_SQL_UPD(HIST_SQL_UPD_START);
static const char sql_upd_any[] = HIST_SQL_UPD("");

/* A row to insert or to update. */
struct row {
	const char *f[I_N];
	bool insert; /* else an update of a row an earlier batch wrote */
};

/* Queue the statement SQL over N columns of ROWS (NROWS of them, at least one), column c being
 * the rows' field COLS[c] (COLS NULL: field c). Each column is one text[] parameter in the
 * array input syntax, {"a","b",NULL}; all of them go in one buffer, sized by one pass over
 * the values and filled by another, with no call per value: a batch is on every run's route.
 * Returns 0, or -1 if libpq failed or memory ran out. */
static int send_set(PGconn *conn, const char *sql, struct row *const *rows, size_t nrows,
                    const int *cols, int n)
{
	const char *p[I_N];
	size_t size = 0;

	for (int c = 0; c < n; c++) {
		for (size_t i = 0; i < nrows; i++) {
			const char *v = rows[i]->f[cols ? cols[c] : c];
			size += 1 + (v ? 2 : 4); /* ',' or '{', and the quotes or NULL */
			for (; v && *v; v++)
				size += 1 + (*v == '"' || *v == '\\');
		}
		size += 2; /* '}' and the NUL */
	}
	char *buf = malloc(size), *o = buf;
	if (!buf)
		return -1;
	for (int c = 0; c < n; c++) {
		p[c] = o;
		for (size_t i = 0; i < nrows; i++) {
			const char *v = rows[i]->f[cols ? cols[c] : c];
			*o++ = i ? ',' : '{';
			if (!v) {
				memcpy(o, "NULL", 4);
				o += 4;
				continue;
			}
			*o++ = '"';
			for (; *v; v++) {
				if (*v == '"' || *v == '\\')
					*o++ = '\\';
				*o++ = *v;
			}
			*o++ = '"';
		}
		*o++ = '}';
		*o++ = '\0';
	}
	int rc = PQsendQueryParams(conn, sql, n, NULL, p, NULL, NULL, 0) ? 0 : -1;
	free(buf);
	return rc;
}

/* Two columns: never taken for written rows (hist_written_rows reads five). */
static const char sql_timeout[] = "SELECT pg_catalog.set_config('statement_timeout', $1, true),"
                                  " pg_catalog.set_config('lock_timeout', $1, true)";

int hist_batch_send(PGconn *conn, const struct hist_spool_line *head, size_t max, bool replay,
                    const char *timeout_ms, size_t *taken)
{
	size_t n = 0;
	for (const struct hist_spool_line *l = head; l && n < max; l = l->next)
		n++;
	struct row *rows = calloc(n ? n : 1, sizeof(*rows));
	struct row **starts = malloc((n ? n : 1) * sizeof(*starts));
	struct row **order = malloc((n ? n : 1) * sizeof(*order));
	size_t nrows = 0, nstarts = 0, first_at = 0, nset[3] = {0};
	uint64_t first = 0; /* the run number of STARTS[FIRST_AT], which those after it follow */
	int rc = -1;

	if (!rows || !starts || !order)
		goto out;
	/* the rows point into the records' fields: no copy, no decoding */
	const struct hist_spool_line *l = head;
	for (size_t i = 0; i < n; i++, l = l->next) {
		const char *kind = l->kind ? l->kind : "";
		const char *const *f = l->f;
		int nf = l->n;
		bool start = nf == 12 && !strcmp(kind, "S1"),
		     record = nf == 16 && !strcmp(kind, "R1");
		bool pid = nf == 4 && !strcmp(kind, "P2"), fin = nf == 7 && !strcmp(kind, "F2");
		bool p1 = nf == 3 && !strcmp(kind, "P1"), f1 = nf == 6 && !strcmp(kind, "F1");
		if (!(start || record || pid || fin || p1 || f1) || !f[F_INSTANCE] ||
		    !f[F_RUN_KEY]) {
			if (i == 0) {
				rc = 0; /* a damaged line at the head: the caller drops it */
				goto out;
			}
			n = i; /* the batch ends before it; at the head, it is dropped */
			break;
		}
		/* a run key ends in its run's number, one more for each run of a process
		 * (hist_run_key); the starts of a batch mostly follow one another */
		const char *dot = strrchr(f[F_RUN_KEY], '.');
		uint64_t k = dot ? strtoull(dot + 1, NULL, 10) : 0;
		/* the row of the run's start, found by the run's number among the starts that
		 * follow one another since the last gap (the key and instance say it is the
		 * run's) */
		struct row *its = k >= first && k - first < nstarts - first_at
		                      ? starts[first_at + (k - first)]
		                      : NULL;
		if (its && (strcmp(its->f[I_RUN_KEY], f[F_RUN_KEY]) != 0 ||
		            strcmp(its->f[I_INSTANCE], f[F_INSTANCE]) != 0))
			its = NULL;
		struct row *r = &rows[nrows];
		if (start || record) {
			if (its) {
				n = i; /* the same start twice (a spill line written again): it
				          goes in the next batch, which it would fail (23505/21000)
				        */
				break;
			}
			memcpy(r->f, f, sizeof(*f) * (size_t)nf);
			r->f[I_STATUS] = start ? "running" : r->f[I_STATUS];
			r->f[I_WHOLE] = record ? "t" : "f";
			r->insert = true;
			if (!nstarts || k != first + (nstarts - first_at)) {
				first = k; /* the first, or one after a gap, or another process's */
				first_at = nstarts;
			}
			starts[nstarts++] = r;
			nrows++;
			continue;
		}
		/* a later line of a run whose start is in the batch completes that row; one
		 * whose start is not is an update of its own (a pid and an end: input rows the
		 * UPDATE groups) */
		if (its) {
			r = its;
		} else {
			r->f[I_INSTANCE] = f[0];
			r->f[I_RUN_KEY] = f[1];
			nrows++;
		}
		if (pid || p1) {
			r->f[I_PID] = f[2];
			if (!r->insert && pid)
				r->f[I_START_US] = f[3];
		} else {
			r->f[I_STATUS] = f[2];
			r->f[I_MESSAGE] = f[3];
			r->f[I_SQLSTATE] = f[4];
			r->f[I_END_US] = f[5];
			if (!r->insert && fin)
				r->f[I_START_US] = f[6];
		}
	}
	*taken = n;
	/* the rows by statement (NSET of each): inserts, updates naming their start, updates
	 * that do not */
	for (size_t set = 0, at = 0; set < 3; set++) {
		for (size_t i = 0; i < nrows; i++) {
			const struct row *r = &rows[i];
			if (set == (r->insert ? 0u : r->f[I_START_US] ? 1u : 2u)) {
				order[at++] = &rows[i];
				nset[set]++;
			}
		}
	}
	/* the batch's transaction is bounded (hist_batch.h) */
	if (timeout_ms) {
		const char *p[] = {timeout_ms};
		if (!PQsendQueryParams(conn, sql_timeout, 1, NULL, p, NULL, NULL, 0))
			goto out;
	}
	/* the inserts first: an update may be for a row of the same batch's transaction */
	static const int upd_cols[U_N] = {
	    [U_INSTANCE] = I_INSTANCE, [U_RUN_KEY] = I_RUN_KEY, [U_START_US] = I_START_US,
	    [U_STATUS] = I_STATUS,     [U_MESSAGE] = I_MESSAGE, [U_SQLSTATE] = I_SQLSTATE,
	    [U_END_US] = I_END_US,     [U_PID] = I_PID};
	const char *sql[3] = {replay ? sql_ins : sql_ins_new, sql_upd, sql_upd_any};
	int sent = 0;
	for (size_t set = 0, at = 0; set < 3; at += nset[set++]) {
		if (nset[set] && send_set(conn, sql[set], order + at, nset[set],
		                          set ? upd_cols : NULL, set ? U_N : I_N) < 0)
			goto out;
		sent += nset[set] > 0;
	}
	rc = sent;
out:
	free(starts);
	free(order);
	free(rows);
	return rc;
}
