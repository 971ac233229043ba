/* Set-based history writes (hist_batch.h). */
#include "hist_batch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hist_spool.h"
#include "text.h"

/* ---- the batch ----------------------------------------------------------------------- */

/* The rows of lines never sent before: none of them can be in the table yet, so the
 * insert needs no conflict check (the arbiter index probe and the speculative insertion
 * are about a tenth of the history backend's time at 15,000 runs/s). A row there after all
 * fails the batch (23505), which is then sent again as a replay (sql_ins). */
#define U_SCHED HIST_US_TIME("u.sched_us")
#define SQL_INS                                                                                    \
	"INSERT INTO pgcrond.job_run_details AS d"                                                 \
	" (jobid, database, username, command, status, return_message, start_time, end_time,"      \
	"  job_name, trigger, scheduled_time, attempt, duration_ms, sqlstate, instance, run_key,"  \
	"  boot_id, graph_run, job_pid)"                                                           \
	" SELECT coalesce(u.jobid, (SELECT j.jobid FROM pgcrond.job j"                             \
	"  WHERE j.jobname OPERATOR(pg_catalog.=) u.job_name)),"                                   \
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
	"  pg_catalog.unnest($18::pg_catalog.bool[]),"                                             \
	"  pg_catalog.unnest($19::pg_catalog.int8[]),"                                             \
	"  pg_catalog.unnest($20::pg_catalog.bool[]))"                                             \
	"  AS u(instance, run_key, boot_id, job_name, database, username, command, trigger,"       \
	"  graph_run, sched_us, start_us, attempt, status, message, sqlstate, end_us, pid, whole," \
	"  jobid, claims)"
/* The fire's row is the one of the instance that holds its claim: a first run of a scheduled
 * fire that did not succeed is not written when another instance holds the fire's claim
 * ("s:<unix s>", cluster_fire_key) or its retry's ("/a2" appended). That instance found this
 * one dead while the run's row was still on its way here (in a batch or the spill file): it
 * served the fire, whose claim this run never started (it failed or was refused waiting for its
 * start mark), or it retried the run, whose transaction the fence left rolled back
 * (cluster_lock.c, reap_rolled). This row would be a second one of the fire. This instance's
 * own retry claims "/a2" as itself; a run that succeeded, the common row, skips the look, and
 * so does a run of an instance alone (u.claims false: hist_batch_ctx), which no other instance
 * can have found dead. */
#define SQL_FIRE_KEY                                                                               \
	"('s:' OPERATOR(pg_catalog.||) (u.sched_us OPERATOR(pg_catalog./) "                        \
	"1000000)::pg_catalog.text)"
#define SQL_NOT_RETRIED_ELSEWHERE                                                                  \
	" NOT COALESCE(u.claims AND u.status OPERATOR(pg_catalog.<>) 'succeeded'"                  \
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

/* The successes counted (schema 27): their rows go, if an earlier batch wrote them, and
 * they are added to their job's hour (pgcrond.count_runs, sql/pgcrond--27.sql). */
static const char sql_count[] =
    "SELECT pgcrond.count_runs($1::pg_catalog.text[], $2::pg_catalog.text[],"
    " $3::pg_catalog.int8[], $4::pg_catalog.int8[], $5::pg_catalog.text[],"
    " $6::pg_catalog.text[], $7::pg_catalog.int8[], $8::pg_catalog.int8[],"
    " $9::pg_catalog.int8)";

/* Two columns: never taken for written rows (hist_written_rows reads five). */
static const char sql_timeout[] = "SELECT pg_catalog.set_config('statement_timeout', $1, true),"
                                  " pg_catalog.set_config('lock_timeout', $1, true)";

int hist_batch_make(struct hist_spool_line *head, size_t max, struct hist_batch_row ***out,
                    size_t nset[4])
{
	size_t n = 0;
	for (const struct hist_spool_line *l = head; l && n < max; l = l->next)
		n++;
	size_t cap = n ? n : 1, nrows = 0, nstarts = 0, first_at = 0;
	uint64_t first = 0; /* the run number of STARTS[FIRST_AT], which those after it follow */
	/* one block: the rows in statement order, the starts among them, the rows */
	struct hist_batch_row **order = calloc(cap, 2 * sizeof(*order) + sizeof(**order));
	if (!order)
		return -ENOMEM;
	struct hist_batch_row **starts = order + cap,
	                      *rows = (struct hist_batch_row *)(starts + cap);

	/* the rows point into the records' fields: no copy, no decoding; the lines behind the
	 * batch complete the rows of its runs that ended before it went out (hist_batch.h) */
	struct hist_spool_line *l = head;
	for (size_t i = 0; l; i++, l = l->next) {
		bool beyond = i >= n;
		if (l->merged)
			continue;
		const char *kind = l->kind ? l->kind : "";
		const char *const *f = l->f;
		int nf = l->n;
		bool start = (nf == 12 && !strcmp(kind, "S1")) || (nf == 13 && !strcmp(kind, "S2")),
		     record = nf == 16 && !strcmp(kind, "R1");
		bool pid = nf == 4 && !strcmp(kind, "P2"), fin = nf == 7 && !strcmp(kind, "F2");
		bool p1 = nf == 3 && !strcmp(kind, "P1"), f1 = nf == 6 && !strcmp(kind, "F1");
		bool count = nf == 8 && !strcmp(kind, "C1");
		/* every kind's first two fields are a row's: its instance and run key */
		if (!(start || record || pid || fin || p1 || f1 || count) || !f[HB_INSTANCE] ||
		    !f[HB_RUN_KEY]) {
			if (i == 0) {
				free(order); /* a damaged line at the head: the caller drops it */
				return 0;
			}
			n = beyond ? n : i; /* the batch ends before it */
			continue;
		}
		/* a run key ends in its run's number, one more for each run of a process
		 * (hist_run_key); the starts of a batch mostly follow one another */
		const char *dot = strrchr(f[HB_RUN_KEY], '.');
		uint64_t k = dot ? strtoull(dot + 1, NULL, 10) : 0;
		/* the row of the run's start, found by the run's number among the starts that
		 * follow one another since the last gap (the key and instance say it is the
		 * run's) */
		struct hist_batch_row *its = k >= first && k - first < nstarts - first_at
		                                 ? starts[first_at + (k - first)]
		                                 : NULL;
		if (its && (strcmp(its->f[HB_RUN_KEY], f[HB_RUN_KEY]) != 0 ||
		            strcmp(its->f[HB_INSTANCE], f[HB_INSTANCE]) != 0))
			its = NULL;
		struct hist_batch_row *r = &rows[nrows];
		if (beyond && !(its && !start && !record))
			continue;
		if (start || record) {
			if (its) {
				n = i; /* the same start twice (a spill line written again): it
				          goes in the next batch, which it would fail (23505/21000)
				        */
				continue;
			}
			memcpy(r->f, f, sizeof(*f) * (size_t)(start ? 12 : nf));
			r->f[HB_STATUS] = start ? "running" : r->f[HB_STATUS];
			if (nf == 13) /* S2: the start with its pid */
				r->f[HB_PID] = f[12];
			r->f[HB_WHOLE] = record ? "t" : "f";
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
		l->merged = beyond; /* (hist_batch_unmerge if the batch fails) */
		if (its) {
			r = its;
		} else {
			r->f[HB_INSTANCE] = f[0];
			r->f[HB_RUN_KEY] = f[1];
			nrows++;
		}
		if (count) { /* the run's row is not written, or goes */
			r->insert = false;
			r->count = true;
			static const int to[] = {HB_END_US,  HB_START_US, HB_JOB_NAME,
			                         HB_TRIGGER, HB_SCHED_US, HB_SEQ};
			for (size_t c = 0; c < sizeof(to) / sizeof(*to); c++)
				r->f[to[c]] = f[2 + c];
		} else if (pid || p1) {
			r->f[HB_PID] = f[2];
			if (!r->insert && pid)
				r->f[HB_START_US] = f[3];
		} else {
			r->f[HB_STATUS] = f[2];
			r->f[HB_MESSAGE] = f[3];
			r->f[HB_SQLSTATE] = f[4];
			r->f[HB_END_US] = f[5];
			if (!r->insert && fin)
				r->f[HB_START_US] = f[6];
		}
	}
	/* the rows by statement: inserts, updates naming their start, updates that do not,
	 * counts */
	for (size_t set = 0, at = 0; set < 4; set++) {
		nset[set] = 0;
		for (size_t i = 0; i < nrows; i++) {
			struct hist_batch_row *r = &rows[i];
			if (set == (r->count ? 3u : r->insert ? 0u : r->f[HB_START_US] ? 1u : 2u)) {
				order[at++] = &rows[i];
				nset[set]++;
			}
		}
	}
	*out = order;
	return (int)n;
}

/* Whether row R is one of a run this instance started while it ran alone (hist_batch_ctx). */
static bool run_lone(const struct hist_batch_ctx *ctx, const struct hist_batch_row *r)
{
	const char *key = r->f[HB_RUN_KEY];
	size_t boot = ctx->boot_id ? strlen(ctx->boot_id) : 0;
	if (!ctx->lone_first || !boot || strncmp(key, ctx->boot_id, boot) != 0 || key[boot] != '.')
		return false;
	return strtoull(key + boot + 1, NULL, 10) >= ctx->lone_first;
}

void hist_batch_unmerge(struct hist_spool_line *head)
{
	for (; head; head = head->next)
		head->merged = false;
}

int hist_batch_send(PGconn *conn, struct hist_spool_line *head, size_t max, bool replay,
                    const char *timeout_ms, struct hist_batch_ctx *ctx, size_t *taken)
{
	struct hist_batch_row **order;
	size_t nset[4];
	int n = hist_batch_make(head, max, &order, nset), rc = -1, sent = 1;
	if (n <= 0)
		return n < 0 ? -1 : 0;
	*taken = (size_t)n;
	/* the inserted rows' job ids from memory, and whether each is looked for in claims */
	const char **unknown = calloc(nset[0] + 1, sizeof(*unknown));
	size_t n_unknown = 0;
	for (size_t i = 0; i < nset[0]; i++) {
		struct hist_batch_row *r = order[i];
		r->f[HB_JOBID] = ctx->jobid ? ctx->jobid(ctx->arg, r->f[HB_JOB_NAME]) : NULL;
		if (!r->f[HB_JOBID] && unknown)
			unknown[n_unknown++] = r->f[HB_JOB_NAME];
		r->f[HB_CLAIMS] = run_lone(ctx, r) ? "f" : "t";
	}
	ctx->unknown = n_unknown ? text_pg_array(unknown, n_unknown) : NULL;
	free(unknown);
	/* the batch's transaction is bounded (hist_batch.h); a batch of merged lines is this alone
	 */
	if (!PQsendQueryParams(conn, sql_timeout, 1, NULL, (const char *const[]){timeout_ms}, NULL,
	                       NULL, 0))
		goto out;
	/* the inserts first: an update may be for a row of the same batch's transaction */
	static const int upd_cols[] = {HB_INSTANCE, HB_RUN_KEY, HB_START_US, HB_STATUS, HB_MESSAGE,
	                               HB_SQLSTATE, HB_END_US,  HB_PID}; /* SQL_UPD's */
	static const int count_cols[] = {HB_INSTANCE, HB_RUN_KEY, HB_START_US, HB_END_US,
	                                 HB_JOB_NAME, HB_TRIGGER, HB_SCHED_US, HB_SEQ};
	const int *set_cols[] = {NULL, upd_cols, upd_cols, count_cols};
	const char *sql[4] = {replay ? sql_ins : sql_ins_new, sql_upd, sql_upd_any, sql_count};
	/* A set's statement takes each column (COLS[c], or field c) as one text[] parameter in
	 * the array input syntax, {"a","b",NULL}; all of them go in one buffer, sized by one
	 * pass over the values and filled by another, with no call per value: a batch is on
	 * every run's route. */
	for (size_t set = 0, at = 0; set < 4; at += nset[set++]) {
		struct hist_batch_row *const *rows = order + at;
		/* (the updates and the counts take 8 columns each) */
		const int *cols = set_cols[set], ncols = set ? 8 : HB_N;
		const char *p[HB_N] = {[8] = ctx->retain_ms ? ctx->retain_ms : "0"};
		size_t size = 0;
		if (!nset[set])
			continue;
		for (int c = 0; c < ncols; c++) {
			for (size_t i = 0; i < nset[set]; i++) {
				const char *v = rows[i]->f[cols ? cols[c] : c];
				size += 1 + (v ? 2 : 4); /* ',' or '{', and the quotes or NULL */
				for (; v && *v; v++)
					size += 1 + (*v == '"' || *v == '\\');
			}
			size += 2; /* '}' and the NUL */
		}
		char *buf = malloc(size), *o = buf;
		if (!buf)
			goto out;
		for (int c = 0; c < ncols; c++) {
			p[c] = o;
			for (size_t i = 0; i < nset[set]; i++) {
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
		int ok = PQsendQueryParams(conn, sql[set], ncols + (set == 3), NULL, p, NULL, NULL,
		                           0); /* (the counts' last: the retention, p[8]) */
		free(buf);
		if (!ok)
			goto out;
		sent++;
	}
	rc = sent;
out:
	free(order);
	return rc;
}
