/* Per-partition refresh of the agent analytics plugins (lane_distribution, weakness_patterns and
 * time_to_first_win per challenge, agent_progress per agent), as a property: random
 * batches of changes to public.submissions (newly scored, re-scored, moved out of scored, a
 * new lane appearing in a challenge, deleted), each batch one transaction that announces
 * every submission it touched the production way (one pg_notify on submission_scored per
 * submission, with submission_id, challenge_id and agent_id). The test receives the
 * notifications on its own LISTEN, hands them to each plugin's build_run() as the daemon
 * does, runs the statements, and then checks that each table equals its reference query run
 * afresh, that the run replaced only the notified partitions (the other rows are untouched,
 * same ctid), and that a batch with a malformed payload made a full run saying why.
 *
 * The seed of the random choices is printed; PGCROND_PROPERTY_SEED replays one, and
 * PGCROND_PROPERTY_BATCHES runs more batches than the default (30: a new seed every run; a soak
 * runs more). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "itest.h"
#include "plugin.h"

#define REPO_DIR TEST_SOURCE_DIR "/.."
#define DEFAULT_BATCHES 30

static const struct table {
	const char *plugin;
	const char *relation;
	const char *key;   /* the partition key: a payload field and the table's column */
	const char *order; /* its unique key, for a stable ctid digest */
} tables[] = {
    {"lane_distribution", "public.mv_lane_score_distribution", "challenge_id",
     "challenge_id, lane_key"},
    {"weakness_patterns", "public.mv_weakness_patterns", "challenge_id",
     "agent_id, challenge_id, lane_key"},
    {"agent_progress", "public.mv_agent_progress", "agent_id", "agent_id, challenge_id, week"},
    {"time_to_first_win", "public.mv_time_to_first_win", "challenge_id", "challenge_id"},
};
#define N_TABLES (sizeof(tables) / sizeof(tables[0]))

/* Announce each row a change returns, as the production trigger does. */
#define ANNOUNCE                                                                                   \
	" RETURNING pg_notify('submission_scored', json_build_object('submission_id', u.id, "      \
	"'challenge_id', u.challenge_id, 'agent_id', u.agent_id)::text)"
/* New lane scores for a submission of challenge row c: each lane 0..100, two decimals. */
#define NEW_SCORES                                                                                 \
	"(SELECT jsonb_object_agg(l, round((random() * 100)::numeric, 2)) FROM unnest(c.lanes) l)"
/* One submission chosen by the batch's random number $1 among those matching WHERE. */
#define PICK(where)                                                                                \
	"(SELECT id FROM public.submissions WHERE " where " ORDER BY md5(id::text || $1) LIMIT 1)"

/* The kinds of change, each one statement taking a random number as $1. */
static const struct change {
	const char *name;
	const char *sql;
} changes[] = {
    {"newly scored",
     "UPDATE public.submissions u SET status = 'scored', scored_at = now(), "
     "final_lane_scores = " NEW_SCORES " FROM public.challenges c WHERE c.id = u.challenge_id "
     "AND u.id = " PICK("status <> 'scored'") ANNOUNCE},
    {"re-scored", "UPDATE public.submissions u SET final_lane_scores = " NEW_SCORES
                  " FROM public.challenges c WHERE c.id = u.challenge_id AND u.id = " PICK(
                      "status = 'scored'") ANNOUNCE},
    {"moved out of scored", "UPDATE public.submissions u SET status = 'failed' WHERE id = " PICK(
                                "status = 'scored'") ANNOUNCE},
    {"new lane in a challenge",
     "UPDATE public.submissions u SET final_lane_scores = final_lane_scores || "
     "jsonb_build_object('lane_' || $1, round((random() * 100)::numeric, 2)) "
     "WHERE id IN (SELECT id FROM public.submissions WHERE status = 'scored' "
     "AND jsonb_typeof(final_lane_scores) = 'object' AND challenge_id = "
     "(SELECT challenge_id FROM public.submissions ORDER BY md5(id::text || $1) LIMIT 1) "
     "ORDER BY md5(id::text || $1) LIMIT 6)" ANNOUNCE},
    {"deleted", "DELETE FROM public.submissions u WHERE id = " PICK("true") ANNOUNCE},
};
#define N_CHANGES (sizeof(changes) / sizeof(changes[0]))

static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static void exec_file(PGconn *c, const char *path)
{
	char *sql = itest_read_file(path);
	ck_assert_msg(*sql, "%s is missing or empty", path);
	itest_exec(c, sql);
	free(sql);
}

static void exec_param(PGconn *c, const char *sql, const char *param)
{
	const char *params[] = {param};
	PGresult *r = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
	              PQerrorMessage(c));
	PQclear(r);
}

/* Digest of the ctids of the rows of T outside the partitions KEYS (a PostgreSQL array
 * literal): a row rewritten gets a new ctid. */
static char *untouched_digest(PGconn *c, const struct table *t, const char *keys)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT md5(coalesce(string_agg(ctid::text, ',' ORDER BY %s), '')) FROM %s "
	         "WHERE %s <> ALL ($1::uuid[])",
	         t->order, t->relation, t->key);
	const char *params[] = {keys};
	PGresult *r = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	char *v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* One run of plugin P with PAYLOADS, statement by statement as the daemon sends them.
 * Returns the run's full-refresh reason (malloc'd, NULL for a partial run). */
static char *run_with(PGconn *c, const struct plugin *p, char **payloads, size_t n_payloads,
                      bool *partial)
{
	struct conf_job job = {.name = "it-incremental",
	                       .more = &config_job_more_defaults,
	                       .plugin = p->name,
	                       .line = 1};
	struct pgc_run *run;
	char err[1024];

	ck_assert_msg(plugin_build_run(p, &job, (const char *const *)payloads, n_payloads, &run,
	                               err, sizeof(err)) == 0,
	              "%s", err);
	/* BEGIN, DELETE, INSERT, COMMIT; the DELETE takes the keys only on a partial run */
	ck_assert_uint_eq(run->n_stmts, 4);
	*partial = run->stmts[1].n_params == 1;
	for (size_t i = 0; i < run->n_stmts; i++) {
		const struct plugin_stmt *st = &run->stmts[i];
		PGresult *r = PQexecParams(c, st->sql, st->n_params, NULL,
		                           (const char *const *)st->params, NULL, NULL, 0);
		ExecStatusType s = PQresultStatus(r);
		ck_assert_msg(s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK, "%s: %s", st->sql,
		              PQerrorMessage(c));
		PQclear(r);
	}
	char *reason = run->full_reason ? strdup(run->full_reason) : NULL;
	plugin_run_free(&run);
	return reason;
}

/* T equals its reference (plugins/<plugin>/reference.sql) row for row, and is not empty. */
static void expect_reference(PGconn *c, const struct table *t, unsigned seed, int batch)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/plugins/%s/reference.sql", REPO_DIR, t->plugin);
	char *ref = itest_read_file(path);
	ck_assert_msg(*ref, "%s is missing", path);
	size_t cap = 2 * strlen(ref) + 512;
	char *sql = malloc(cap);
	ck_assert_ptr_nonnull(sql);
	snprintf(sql, cap,
	         "SELECT (SELECT count(*) FROM %s), "
	         "(SELECT count(*) FROM (SELECT * FROM %s EXCEPT ALL SELECT * FROM (\n%s\n) r) d), "
	         "(SELECT count(*) FROM (SELECT * FROM (\n%s\n) r EXCEPT ALL SELECT * FROM %s) d)",
	         t->relation, t->relation, ref, ref, t->relation);
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	long long rows = atoll(PQgetvalue(r, 0, 0)), extra = atoll(PQgetvalue(r, 0, 1)),
	          missing = atoll(PQgetvalue(r, 0, 2));
	PQclear(r);
	ck_assert_msg(rows > 0 && extra == 0 && missing == 0,
	              "seed %u, batch %d: %s differs from its reference: %lld of its %lld rows "
	              "are not in it, %lld reference rows are missing",
	              seed, batch, t->relation, extra, rows, missing);
	free(sql);
	free(ref);
}

START_TEST(test_random_batches)
{
	const char *env_seed = getenv("PGCROND_PROPERTY_SEED");
	const char *env_batches = getenv("PGCROND_PROPERTY_BATCHES");
	unsigned seed = env_seed ? (unsigned)strtoul(env_seed, NULL, 10) : (unsigned)time(NULL);
	int batches = env_batches ? atoi(env_batches) : DEFAULT_BATCHES;
	const struct plugin *plugins[N_TABLES];
	char err[1024], *dir = itest_tmpdir("incremental"), path[600], from[600];

	fprintf(stderr,
	        "it_incremental: seed %u (PGCROND_PROPERTY_SEED=%u replays it), %d batches\n", seed,
	        seed, batches);
	srand(seed);
	for (size_t i = 0; i < N_TABLES; i++) {
		snprintf(from, sizeof(from), "%s/%s.so", PLUGIN_BUILD_DIR, tables[i].plugin);
		snprintf(path, sizeof(path), "%s/%s.so", dir, tables[i].plugin);
		itest_copy_file(from, path, 0644);
		ck_assert_msg(plugin_load(dir, tables[i].plugin, &plugins[i], err, sizeof(err)) ==
		                  0,
		              "%s", err);
	}

	char *ci = itest_fresh_db("pgcrond_it_incremental");
	PGconn *c = itest_connect(ci);
	PQsetNoticeProcessor(c, quiet, NULL);
	exec_file(c, REPO_DIR "/sql/demo/schema.sql");
	exec_file(c, REPO_DIR "/sql/demo/generate.sql");
	/* six challenges, so a batch leaves most of them alone */
	itest_exec(c, "SELECT count(*) FROM pgcrond_demo.generate(4000, 40, 6)");
	char setseed[64];
	snprintf(setseed, sizeof(setseed), "SELECT setseed(%f)", (double)(seed % 1000) / 1000.0);
	itest_exec(c, setseed);
	for (size_t i = 0; i < N_TABLES; i++)
		itest_exec(c, plugins[i]->decl.install_sql);
	for (size_t i = 0; i < N_TABLES; i++)
		expect_reference(c, &tables[i], seed, 0);
	itest_exec(c, "LISTEN submission_scored");

	int partial_runs = 0, full_runs = 0;
	for (int b = 1; b <= batches; b++) {
		int n = 1 + rand() % 4;
		bool malformed = rand() % 8 == 0;
		char what[256] = "";
		itest_exec(c, "BEGIN");
		for (int k = 0; k < n; k++) {
			const struct change *ch = &changes[rand() % N_CHANGES];
			char r[16];
			snprintf(r, sizeof(r), "%d", rand() % 1000000);
			exec_param(c, ch->sql, r);
			snprintf(what + strlen(what), sizeof(what) - strlen(what), "%s%s",
			         k ? ", " : "", ch->name);
		}
		if (malformed)
			itest_exec(
			    c, "SELECT pg_notify('submission_scored', '{\"bulk_load\": true}')");
		itest_exec(c, "COMMIT");

		/* the payloads the batch announced (a change that found nothing announced none) */
		char **payloads = NULL;
		size_t n_payloads = 0;
		PGnotify *nf;
		PQconsumeInput(c);
		while ((nf = PQnotifies(c))) {
			payloads = realloc(payloads, (n_payloads + 1) * sizeof(*payloads));
			ck_assert_ptr_nonnull(payloads);
			payloads[n_payloads++] = strdup(nf->extra);
			PQfreemem(nf);
		}
		if (n_payloads == 0)
			continue;
		char *keys[2]; /* challenge_id, agent_id */
		for (int f = 0; f < 2; f++) {
			/* the partitions the payloads name, as the plugins should find them */
			size_t cap = 64;
			for (size_t i = 0; i < n_payloads; i++)
				cap += strlen(payloads[i]) + 8;
			char *sql = malloc(cap);
			ck_assert_ptr_nonnull(sql);
			snprintf(
			    sql, cap,
			    "SELECT coalesce(array_agg(DISTINCT p->>'%s') FILTER (WHERE p ? '%s'), "
			    "'{}')::text FROM jsonb_array_elements($1) p",
			    f ? "agent_id" : "challenge_id", f ? "agent_id" : "challenge_id");
			char *arr = malloc(cap);
			ck_assert_ptr_nonnull(arr);
			strcpy(arr, "[");
			for (size_t i = 0; i < n_payloads; i++) {
				strcat(arr, i ? "," : "");
				strcat(arr, payloads[i]);
			}
			strcat(arr, "]");
			const char *params[] = {arr};
			PGresult *r = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
			ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s",
			              PQerrorMessage(c));
			keys[f] = strdup(PQgetvalue(r, 0, 0));
			PQclear(r);
			free(sql);
			free(arr);
		}

		for (size_t i = 0; i < N_TABLES; i++) {
			const char *tkeys = keys[strcmp(tables[i].key, "agent_id") == 0];
			char *before = untouched_digest(c, &tables[i], tkeys);
			bool partial;
			char *reason = run_with(c, plugins[i], payloads, n_payloads, &partial);
			if (malformed) {
				ck_assert_msg(
				    !partial,
				    "batch %d (%s): a malformed payload, yet a partial run", b,
				    what);
				ck_assert_ptr_nonnull(reason);
				char expect[128];
				snprintf(expect, sizeof(expect),
				         "payload %zu of %zu has no \"%s\": ", n_payloads,
				         n_payloads, tables[i].key);
				ck_assert_msg(strncmp(reason, expect, strlen(expect)) == 0,
				              "reason: %s", reason);
			} else {
				ck_assert_msg(partial, "batch %d (%s): a full run: %s", b, what,
				              reason ? reason : "");
				ck_assert_ptr_null(reason);
				char *after = untouched_digest(c, &tables[i], tkeys);
				ck_assert_msg(strcmp(before, after) == 0,
				              "seed %u, batch %d (%s): %s rows outside the "
				              "partitions %s were rewritten",
				              seed, b, what, tables[i].relation, tkeys);
				free(after);
			}
			partial ? partial_runs++ : full_runs++;
			free(reason);
			free(before);
		}
		for (size_t i = 0; i < N_TABLES; i++)
			expect_reference(c, &tables[i], seed, b);
		for (size_t i = 0; i < n_payloads; i++)
			free(payloads[i]);
		free(payloads);
		free(keys[0]);
		free(keys[1]);
	}
	fprintf(stderr,
	        "it_incremental: %d partial runs, %d full runs, all equal to the references\n",
	        partial_runs, full_runs);
	ck_assert_int_gt(partial_runs, 0);
	PQfinish(c);
	free(ci);
	free(dir);
}
END_TEST

/* An earlier install's materialized views become the tables, through each plugin's install
 * DDL (what `pgcrond install` runs), keeping their names, unique indexes and rows; an object
 * of the operator's that depends on a view stops the migration with a message saying what to
 * do. The old views are stood in for by views of the reference queries, with the dependency
 * of mv_weakness_patterns on mv_lane_score_distribution. */
START_TEST(test_migrate_matviews)
{
	const struct plugin *plugins[N_TABLES];
	char err[1024], *dir = itest_tmpdir("incremental-migrate"), path[600], from[600];

	for (size_t i = 0; i < N_TABLES; i++) {
		snprintf(from, sizeof(from), "%s/%s.so", PLUGIN_BUILD_DIR, tables[i].plugin);
		snprintf(path, sizeof(path), "%s/%s.so", dir, tables[i].plugin);
		itest_copy_file(from, path, 0644);
		ck_assert_msg(plugin_load(dir, tables[i].plugin, &plugins[i], err, sizeof(err)) ==
		                  0,
		              "%s", err);
	}
	char *ci = itest_fresh_db("pgcrond_it_incremental_migrate");
	PGconn *c = itest_connect(ci);
	PQsetNoticeProcessor(c, quiet, NULL);
	exec_file(c, REPO_DIR "/sql/demo/schema.sql");
	exec_file(c, REPO_DIR "/sql/demo/generate.sql");
	itest_exec(c, "SELECT count(*) FROM pgcrond_demo.generate(3000, 30, 4)");
	for (size_t i = 0; i < N_TABLES; i++) {
		snprintf(path, sizeof(path), "%s/plugins/%s/reference.sql", REPO_DIR,
		         tables[i].plugin);
		char *ref = itest_read_file(path);
		size_t cap = strlen(ref) + 512;
		char *sql = malloc(cap);
		ck_assert_ptr_nonnull(sql);
		snprintf(sql, cap, "CREATE MATERIALIZED VIEW %s AS SELECT * FROM (\n%s\n) r%s",
		         tables[i].relation, ref,
		         i == 1
		             ? "\nWHERE EXISTS (SELECT 1 FROM public.mv_lane_score_distribution d "
		               "WHERE d.challenge_id = r.challenge_id)"
		             : "");
		itest_exec(c, sql);
		free(sql);
		free(ref);
	}
	itest_exec(c,
	           "CREATE UNIQUE INDEX idx_mv_lane_dist_pk ON public.mv_lane_score_distribution "
	           "(challenge_id, lane_key)");
	itest_exec(c, "CREATE VIEW public.my_progress AS SELECT * FROM public.mv_agent_progress");

	/* lane_distribution first, as install orders it: it drops weakness's view, which reads
	 * its own; agent_progress's view has a dependent view of the operator's */
	itest_exec(c, plugins[0]->decl.install_sql);
	itest_exec(c, plugins[1]->decl.install_sql);
	PGresult *r = PQexec(c, plugins[2]->decl.install_sql);
	ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY),
	                 "cannot turn materialized view public.mv_agent_progress into a table: "
	                 "other objects depend on it");
	ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_MESSAGE_HINT),
	                 "drop them (DROP MATERIALIZED VIEW ... CASCADE lists them), run pgcrond "
	                 "install again, then create them again");
	PQclear(r);
	ck_assert_int_eq(itest_scalar_ll(c,
	                                 "SELECT count(*) FROM pg_class WHERE oid = "
	                                 "'public.mv_agent_progress'::regclass AND relkind = 'm'"),
	                 1);
	itest_exec(c, "DROP VIEW public.my_progress");
	itest_exec(c, plugins[2]->decl.install_sql);
	itest_exec(c, plugins[3]->decl.install_sql);

	for (size_t i = 0; i < N_TABLES; i++) {
		char sql[256];
		snprintf(sql, sizeof(sql),
		         "SELECT relkind::text FROM pg_class WHERE oid = '%s'::regclass",
		         tables[i].relation);
		char *kind = itest_scalar(c, sql);
		ck_assert_msg(strcmp(kind, "r") == 0, "%s is of kind %s", tables[i].relation, kind);
		free(kind);
		snprintf(
		    sql, sizeof(sql),
		    "SELECT count(*) FROM pg_index WHERE indrelid = '%s'::regclass AND indisunique",
		    tables[i].relation);
		ck_assert_int_eq(itest_scalar_ll(c, sql), 1);
		expect_reference(c, &tables[i], 0, 0);
	}
	PQfinish(c);
	free(ci);
	free(dir);
}
END_TEST

/* Through the daemon: the demo's trigger announces scored submissions of one challenge on
 * submission_scored, the listening job's run replaces that challenge's rows only (the other
 * challenges' rows keep their ctid) and the table equals its reference; a payload without
 * the key makes the next run replace every row, and the log says why. */
START_TEST(test_daemon_notified_runs)
{
	struct itest_env e;
	const struct table *lanes = &tables[0];

	itest_env_setup(&e, "incremental-daemon", "it_incremental_daemon");
	PQsetNoticeProcessor(e.db, quiet, NULL);
	exec_file(e.db, REPO_DIR "/sql/demo/schema.sql");
	exec_file(e.db, REPO_DIR "/sql/demo/generate.sql");
	itest_exec(e.db, "SELECT count(*) FROM pgcrond_demo.generate(3000, 30, 4)");
	exec_file(e.db, REPO_DIR "/plugins/lane_distribution/lane_distribution.sql");
	itest_env_plugin(&e, PLUGIN_BUILD_DIR "/lane_distribution.so", "lane_distribution");
	itest_env_job(
	    &e, "10-lanes.conf",
	    "job = { name = \"lanes\"; plugin = \"lane_distribution\"; database = \"app\";"
	    " schedule = \"@yearly\"; listen = \"submission_scored\";"
	    " debounce = \"300ms\"; max_delay = \"2s\"; };\n");
	itest_env_start(&e);
	ck_assert_msg(itest_env_listening(&e, 10), "the daemon does not listen:\n%s",
	              itest_read_file(e.log));
	/* a run the listener's first connection may start settles first (none should start:
	 * docs/jobs.md, "Jobs that behave") */
	ck_assert(itest_env_wait(&e, 15,
	                         "SELECT count(*) = 0 FROM pgcrond.job_run_details"
	                         " WHERE status IN ('starting', 'running')"));
	long long runs = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
	                                     "WHERE job_name = 'lanes' AND status = 'succeeded'");

	/* five submissions of one challenge judged again and scored: five notifications */
	char *ch = itest_scalar(e.db, "SELECT challenge_id::text FROM public.submissions "
	                              "ORDER BY id LIMIT 1");
	char keys[80];
	snprintf(keys, sizeof(keys), "{%s}", ch);
	char *before = untouched_digest(e.db, lanes, keys);
	const char *params[] = {ch};
	PGresult *r = PQexecParams(e.db,
	                           "UPDATE public.submissions SET status = 'judging' WHERE id IN "
	                           "(SELECT id FROM public.submissions WHERE challenge_id = $1 "
	                           "AND status = 'scored' ORDER BY id LIMIT 5)",
	                           1, NULL, params, NULL, NULL, 0);
	ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	r = PQexecParams(e.db,
	                 "UPDATE public.submissions SET status = 'scored', final_lane_scores = "
	                 "(SELECT jsonb_object_agg(l, 99.5) FROM public.challenges c, "
	                 "unnest(c.lanes) l WHERE c.id = challenge_id) "
	                 "WHERE status = 'judging' AND challenge_id = $1",
	                 1, NULL, params, NULL, NULL, 0);
	ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	ck_assert_msg(itest_env_wait(&e, 20,
	                             "SELECT count(*) = %lld FROM pgcrond.job_run_details WHERE "
	                             "job_name = 'lanes' AND status = 'succeeded'",
	                             runs + 1),
	              "no run after the notifications:\n%s", itest_read_file(e.log));
	expect_reference(e.db, lanes, 0, 1);
	char *after = untouched_digest(e.db, lanes, keys);
	ck_assert_msg(
	    strcmp(before, after) == 0,
	    "the notified run rewrote rows of challenges it was not told about: runs %s\n%s",
	    itest_scalar(e.db, "SELECT string_agg(trigger || ' ' || status, ', ' ORDER "
	                       "BY runid) FROM pgcrond.job_run_details"),
	    itest_read_file(e.log));
	free(after);

	/* a payload without the key: everything, and the reason in the log */
	itest_exec(e.db, "SELECT pg_notify('submission_scored', '{\"bulk_load\": true}')");
	ck_assert_msg(itest_wait_log(e.log,
	                             "job lanes (plugin lane_distribution): refreshing everything, "
	                             "not only the notified partitions: payload 1 of 1 has no "
	                             "\"challenge_id\": '{\"bulk_load\": true}'",
	                             20),
	              "%s", itest_read_file(e.log));
	ck_assert(itest_env_wait(&e, 20,
	                         "SELECT count(*) = %lld FROM pgcrond.job_run_details WHERE "
	                         "job_name = 'lanes' AND status = 'succeeded'",
	                         runs + 2));
	after = untouched_digest(e.db, lanes, keys);
	ck_assert_msg(strcmp(before, after) != 0, "the full run left the other challenges' rows");
	expect_reference(e.db, lanes, 0, 2);
	free(after);
	free(before);
	free(ch);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

/* Continuous scoring: notifications every 100 ms, so the lane job always has another run
 * coming. The weakness job, which listens too and runs after it, must still run after each
 * lane run, not wait for a quiet moment that never comes (it was starved: parked behind an
 * upstream that always had notifications pending). */
START_TEST(test_daemon_downstream_under_continuous_scoring)
{
	struct itest_env e;

	itest_env_setup(&e, "incremental-continuous", "it_incremental_continuous");
	PQsetNoticeProcessor(e.db, quiet, NULL);
	exec_file(e.db, REPO_DIR "/sql/demo/schema.sql");
	exec_file(e.db, REPO_DIR "/sql/demo/generate.sql");
	itest_exec(e.db, "SELECT count(*) FROM pgcrond_demo.generate(2000, 20, 4)");
	exec_file(e.db, REPO_DIR "/plugins/lane_distribution/lane_distribution.sql");
	exec_file(e.db, REPO_DIR "/plugins/weakness_patterns/weakness_patterns.sql");
	/* each lane run takes over a second, as at a million submissions: notifications keep
	 * coming while it runs */
	itest_exec(e.db, "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
	                 "$$ BEGIN PERFORM pg_sleep(1.2); RETURN NULL; END $$");
	itest_exec(e.db, "CREATE TRIGGER slow AFTER INSERT ON public.mv_lane_score_distribution "
	                 "FOR EACH STATEMENT EXECUTE FUNCTION slow()");
	itest_env_plugin(&e, PLUGIN_BUILD_DIR "/lane_distribution.so", "lane_distribution");
	itest_env_plugin(&e, PLUGIN_BUILD_DIR "/weakness_patterns.so", "weakness_patterns");
	itest_env_job(&e, "10-views.conf",
	              "jobs = (\n"
	              " { name = \"lanes\"; plugin = \"lane_distribution\"; database = \"app\";"
	              "   schedule = \"@yearly\"; listen = \"submission_scored\";"
	              "   debounce = \"500ms\"; max_delay = \"1500ms\"; },\n"
	              " { name = \"weakness\"; plugin = \"weakness_patterns\"; database = \"app\";"
	              "   schedule = \"@yearly\"; after = [ \"lanes\" ];"
	              "   listen = \"submission_scored\"; debounce = \"500ms\";"
	              "   max_delay = \"1500ms\"; }\n"
	              ");\n");
	itest_env_start(&e);
	ck_assert_msg(itest_env_listening(&e, 10), "the daemon does not listen:\n%s",
	              itest_read_file(e.log));

	char *payload = itest_scalar(
	    e.db, "SELECT json_build_object('submission_id', id, 'challenge_id', challenge_id, "
	          "'agent_id', agent_id)::text FROM public.submissions ORDER BY id LIMIT 1");
	const char *params[] = {payload};
	/* a notification every 100 ms (the 500 ms debounce never settles) until both ran, 30 s
	 * at most: max_delay (1.5 s) makes them run (in about 3 s on an idle machine) */
	double t0 = itest_now();
	long long lanes = 0, weak = 0;
	while (!(lanes >= 2 && weak >= 1) && itest_now() - t0 < 30) {
		PGresult *r = PQexecParams(e.db, "SELECT pg_notify('submission_scored', $1)", 1,
		                           NULL, params, NULL, NULL, 0);
		ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
		PQclear(r);
		itest_sleep(0.1);
		lanes = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
		                            "WHERE job_name = 'lanes' AND status = 'succeeded'");
		weak = itest_env_count(&e, "SELECT count(*) FROM pgcrond.job_run_details "
		                           "WHERE job_name = 'weakness' AND status = 'succeeded'");
	}
	ck_assert_msg(lanes >= 2 && weak >= 1,
	              "during %.0f s of notifications the lane job ran %lld times, the weakness "
	              "job %lld:\n%s",
	              itest_now() - t0, lanes, weak, itest_read_file(e.log));
	free(payload);
	ck_assert_int_eq(itest_env_stop(&e, SIGTERM, 10), 0);
	itest_env_teardown(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("incremental");
	TCase *tc = tcase_create("incremental");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_random_batches);
	tcase_add_test(tc, test_migrate_matviews);
	tcase_add_test(tc, test_daemon_notified_runs);
	tcase_add_test(tc, test_daemon_downstream_under_continuous_scoring);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
